//! runseal-bench: see `runseal::bench` and bench/run.sh.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = runseal::bench::Cli::parse();
    match runseal::bench::main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runseal-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
