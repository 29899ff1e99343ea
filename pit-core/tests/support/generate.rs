//! Generates pitfiles with a given dependency graph, for property tests and benchmarks.

/// A pitfile with one LOCAL suite whose components are `c0 … c{n-1}`, where component `i`
/// depends on the components listed in `deps[i]`.
pub fn pitfile_with_graph(deps: &[Vec<usize>]) -> String {
    let mut s = String::from(
        "version: \"1.0\"\nprojectName: generated\ntestSuites:\n  - name: Generated\n    id: generated\n    lock:\n      timeout: 5m\n      ids: [shared]\n    deployment:\n      graph:\n        testApp:\n          name: Test app\n          id: test-app\n          deploy: { command: deploy.sh, params: [--all] }\n          undeploy: { command: undeploy.sh }\n        components:\n",
    );
    for (i, ds) in deps.iter().enumerate() {
        s.push_str(&format!("          - name: Component {i}\n            id: c{i}\n            location:\n              path: services/c{i}\n"));
        if !ds.is_empty() {
            let list: Vec<String> = ds.iter().map(|d| format!("c{d}")).collect();
            s.push_str(&format!("            dependsOn: [{}]\n", list.join(", ")));
        }
        s.push_str(&format!(
            "            deploy:\n              timeoutSeconds: 120\n              command: deploy.sh\n              params: [--name, c{i}]\n              statusCheck:\n                command: status.sh\n            undeploy:\n              command: undeploy.sh\n"
        ));
    }
    s
}

/// A deterministic acyclic graph of `n` nodes where each node depends on up to three earlier
/// ones (a linear congruential generator, so benchmarks see the same graph every time).
pub fn layered_dag(n: usize) -> Vec<Vec<usize>> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let mut ds: Vec<usize> = if i == 0 {
                Vec::new()
            } else {
                (0..next() % 4).map(|_| next() % i).collect()
            };
            ds.sort_unstable();
            ds.dedup();
            ds
        })
        .collect()
}
