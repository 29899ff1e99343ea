//! Loading and validating a generated pitfile with 500 components, and planning it.
//!
//! `cargo bench -p pit-core --bench validate` prints the median and spread of each step over
//! repeated runs, and the size of the input. Figures, not assertions: these machines are noisy.

use std::time::{Duration, Instant};

use pit_core::naming::RunId;
use pit_core::pitfile::{load_str, LoadOptions};
use pit_core::plan::Plan;

#[path = "../tests/support/generate.rs"]
mod generate;

fn measure(name: &str, runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    println!(
        "{name:<34} median {:>8.3} ms   min {:>8.3} ms   p90 {:>8.3} ms   ({runs} runs)",
        ms(median),
        ms(times[0]),
        ms(times[runs * 9 / 10])
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent; keep that run short.
    let runs = if std::env::args().any(|a| a == "--bench") {
        101
    } else {
        3
    };
    let opts = LoadOptions {
        env: Some(Default::default()),
        ..LoadOptions::default()
    };
    for n in [50, 500] {
        let yaml = generate::pitfile_with_graph(&generate::layered_dag(n));
        println!(
            "pitfile with {n} components: {} lines, {} KiB",
            yaml.lines().count(),
            yaml.len() / 1024
        );
        let parse = measure(&format!("yaml parse ({n})"), runs, || {
            pit_core::yaml::parse(&yaml).expect("valid yaml");
        });
        let load = measure(&format!("load + validate ({n})"), runs, || {
            load_str("bench.yml", &yaml, &opts).expect("valid pitfile");
        });
        let loaded = load_str("bench.yml", &yaml, &opts).expect("valid pitfile");
        measure(&format!("plan ({n})"), runs, || {
            Plan::build(&loaded, RunId::generate());
        });
        println!(
            "  parse share of load: {:.0}%",
            100.0 * parse.as_secs_f64() / load.as_secs_f64()
        );
    }
}
