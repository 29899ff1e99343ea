//! Runs a pitfile as `pit run` does, with a `Deployer` of your own: here the local backend,
//! timing every step. Usage: `custom-deployer [PITFILE [WORKSPACE]]`.
use std::sync::Arc;

use pit_run::pit_core::deploy::{DeployError, Deployer, Environment, EnvironmentRequest, LocalDeployer, Step};
use pit_run::pit_core::process::Finished;
use pit_run::{async_trait, CancellationToken, Custom, RunSettings};

struct Timed(LocalDeployer);

#[async_trait]
impl Deployer for Timed {
    async fn create_environment(&self, req: &EnvironmentRequest) -> Result<Environment, DeployError> {
        self.0.create_environment(req).await
    }
    async fn remove_environment(&self, env: &Environment) -> Result<(), DeployError> {
        self.0.remove_environment(env).await
    }
    async fn run(&self, env: &Environment, step: &Step, cancel: &CancellationToken) -> Result<Finished, DeployError> {
        let started = std::time::Instant::now();
        let done = self.0.run(env, step, cancel).await;
        println!(
            "{} {}: {:?} in {:?}",
            step.component,
            step.kind.as_str(),
            done.as_ref().map(|d| d.code),
            started.elapsed()
        );
        done
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pitfile = args
        .next()
        .unwrap_or_else(|| "examples/toolkit-compat/node-1/pitfile.yml".into());
    let settings = RunSettings {
        workspace: Some(args.next().unwrap_or_else(|| "examples/toolkit-compat".into()).into()),
        // The sandboxes (and their logs, kept after teardown) go under $XDG_STATE_HOME, as
        // `pit run`'s do, else the temporary directory.
        deployer: Some(Custom(Arc::new(Timed(LocalDeployer::new(
            std::env::var_os("XDG_STATE_HOME")
                .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
                .join("pit-custom-deployer"),
        ))))),
        ..RunSettings::new(pitfile)
    };
    let summary = pit_run::run(&settings, &CancellationToken::new(), &|note: &str| eprintln!("{note}")).await?;
    std::process::exit(summary.exit_code())
}
