//! runseal-bench: see `runseal::bench` and bench/run.sh.
#![forbid(unsafe_code)]

use clap::Parser;

/// The load generator allocates per request as runseald does; mimalloc keeps its share of the
/// two cores small, the same for every server it drives (runseald and etcd alike).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
