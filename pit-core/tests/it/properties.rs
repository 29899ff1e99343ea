//! Property tests: plans respect dependencies, cycles are real, and no input makes loading panic.

use std::collections::HashMap;

use pit_core::naming::RunId;
use pit_core::pitfile::load_str;
use pit_core::plan::Plan;
use proptest::prelude::*;

use crate::generate::pitfile_with_graph;

/// Random acyclic graphs: node `i` depends only on nodes before it.
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..40).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::btree_set(0..i, 0..4.min(i + 1))
                        .prop_map(|s| s.into_iter().collect())
                        .boxed()
                }
            })
            .collect::<Vec<_>>()
    })
}

/// Every node that `node` depends on, directly or not.
fn ancestors(deps: &[Vec<usize>], node: usize) -> Vec<usize> {
    let mut seen = vec![false; deps.len()];
    let mut stack = deps[node].clone();
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        if !std::mem::replace(&mut seen[n], true) {
            out.push(n);
            stack.extend(&deps[n]);
        }
    }
    out.sort_unstable();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn plans_list_each_component_once_and_never_before_a_dependency(deps in dag()) {
        let yaml = pitfile_with_graph(&deps);
        let loaded = load_str("generated.yml", &yaml, &Default::default()).map_err(|r| TestCaseError::fail(r.to_string()))?;
        let plan = Plan::build(&loaded, RunId::generate());
        let suite = &plan.suites[0];
        let mut wave_of: HashMap<String, usize> = HashMap::new();
        for (w, wave) in suite.waves.iter().enumerate() {
            for c in wave {
                prop_assert!(wave_of.insert(c.id.to_string(), w).is_none(), "{} planned twice", c.id);
            }
        }
        prop_assert_eq!(wave_of.len(), deps.len());
        for (i, ds) in deps.iter().enumerate() {
            for d in ds {
                prop_assert!(wave_of[&format!("c{d}")] < wave_of[&format!("c{i}")], "c{} planned before its dependency c{}", i, d);
            }
        }
        // Teardown is the exact reverse: the test app first, then the waves backwards.
        prop_assert_eq!(suite.teardown.len(), suite.waves.len() + 1);
        prop_assert_eq!(suite.teardown[0][0].as_str(), "test-app");
    }

    #[test]
    fn a_back_edge_gives_a_cycle_error_naming_a_real_cycle(deps in dag(), pick in any::<prop::sample::Index>(), pick2 in any::<prop::sample::Index>()) {
        let candidates: Vec<usize> = (0..deps.len()).filter(|&j| !deps[j].is_empty()).collect();
        prop_assume!(!candidates.is_empty());
        let j = candidates[pick.index(candidates.len())];
        let up = ancestors(&deps, j);
        let i = up[pick2.index(up.len())];
        let mut cyclic = deps.clone();
        cyclic[i].push(j); // i depends on j, which (transitively) depends on i
        let report = load_str("cyclic.yml", &pitfile_with_graph(&cyclic), &Default::default()).err()
            .ok_or_else(|| TestCaseError::fail("a cyclic graph loaded"))?;
        let cycles: Vec<&str> = report.diagnostics().iter().filter(|d| d.code == "pit::dependency-cycle")
            .map(|d| d.message.trim_start_matches("dependency cycle: ")).collect();
        prop_assert!(!cycles.is_empty(), "no cycle reported: {}", report);
        for cycle in cycles {
            let ids: Vec<usize> = cycle.split(" -> ").map(|s| s.trim_start_matches('c').parse().expect("generated ids")).collect();
            prop_assert!(ids.len() >= 3 && ids.first() == ids.last(), "not closed: {}", cycle);
            for pair in ids.windows(2) {
                prop_assert!(cyclic[pair[0]].contains(&pair[1]), "c{} does not depend on c{} in {}", pair[0], pair[1], cycle);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_make_loading_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str("fuzz.yml", &text, &Default::default());
    }

    #[test]
    fn mangled_pitfiles_never_make_loading_panic(cut in 0usize..2000, insert in "[ -~\n\t]{0,8}") {
        let yaml = pitfile_with_graph(&[vec![], vec![0], vec![0, 1]]);
        let mut cut = cut.min(yaml.len());
        while !yaml.is_char_boundary(cut) { cut -= 1; }
        let mangled = format!("{}{}{}", &yaml[..cut], insert, &yaml[cut..]);
        if let Err(report) = load_str("mangled.yml", &mangled, &Default::default()) {
            for d in report.diagnostics() {
                prop_assert!(d.span.offset <= mangled.len());
            }
            let _ = report.render(false, 80);
        }
    }
}
