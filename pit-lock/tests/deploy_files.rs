//! The container build file and Kubernetes manifests stay in step with the service: what they
//! run exists, the settings they give are ones it reads, and secrets come from a Secret.
//! (Issue 7 checks the manifests against a real API server by server-side dry-run.)

use std::path::PathBuf;

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/lock-manager")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_manifests_run_the_service_with_its_secrets_from_a_secret() {
    let text = deploy_file("kubernetes.yaml");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("each document is YAML"))
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "PodDisruptionBudget"]);
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"))
    };
    for secret in ["DATABASE_URL", "PIT_LOCK_TOKENS", "PIT_LOCK_ADMIN_TOKENS"] {
        assert!(
            var(secret)["valueFrom"]["secretKeyRef"]["name"].as_str().is_some(),
            "{secret} comes from a Secret"
        );
        assert!(
            var(secret)["value"].is_null(),
            "{secret} is not written in the manifest"
        );
    }
    let listen = var("PIT_LOCK_LISTEN")["value"].as_str().unwrap();
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(listen.ends_with(&format!(":{port}")), "listens on the container port");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The service serves those routes and reads those variables.
    let server = include_str!("../src/server/mod.rs");
    assert!(server.contains("\"/healthz\"") && server.contains("\"/readyz\""));
    let serve = include_str!("../src/serve.rs");
    for name in [
        "PIT_LOCK_LISTEN",
        "DATABASE_URL",
        "PIT_LOCK_TOKENS",
        "PIT_LOCK_ADMIN_TOKENS",
    ] {
        assert!(serve.contains(name), "the service reads {name}");
    }
}

#[test]
fn the_container_builds_the_binary_that_exists() {
    let dockerfile = deploy_file("Dockerfile");
    assert!(dockerfile.contains("--bin pit-lock-manager"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/pit-lock-manager\"]"));
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_pit-lock-manager")).exists());
    assert!(dockerfile.contains("USER 10001"), "runs as a non-root user");
}
