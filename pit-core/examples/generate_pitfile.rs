//! Prints a valid pitfile with N components (default 500) and a fixed pseudo-random dependency
//! graph, for timing `pit validate` and `pit plan` end to end:
//!
//! ```sh
//! cargo run -p pit-core --example generate_pitfile -- 500 > /tmp/pitfile-500.yml
//! time target/release/pit validate /tmp/pitfile-500.yml
//! ```

#[path = "../tests/support/generate.rs"]
mod generate;

fn main() {
    let n = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 500,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: generate_pitfile [COMPONENTS]  (a whole number above 0)");
            std::process::exit(2);
        }
    };
    print!("{}", generate::pitfile_with_graph(&generate::layered_dag(n)));
}
