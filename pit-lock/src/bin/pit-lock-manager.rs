//! `pit-lock-manager`: the Lock Manager service alone, for containers. The same as
//! `pit lock-manager serve`.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "pit-lock-manager", version, about = "The PIT Lock Manager service")]
struct Cli {
    #[command(flatten)]
    serve: pit_lock::serve::ServeArgs,
    /// Log as text instead of JSON lines.
    #[arg(long, env = "PIT_LOG_TEXT")]
    log_text: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    pit_lock::serve::init_logging(!cli.log_text);
    match pit_lock::serve::run(cli.serve).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = pit_core::engine::error_chain(&e);
            tracing::error!(error = %message, "the Lock Manager could not start");
            std::process::ExitCode::from(1)
        }
    }
}
