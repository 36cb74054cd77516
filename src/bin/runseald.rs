//! runseald: see `runseal::daemon`.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = runseal::daemon::Cli::parse();
    match runseal::daemon::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runseald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
