//! runseald: see `runseal::daemon`.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of glibc's malloc: under load runseald's worker threads allocate and free
/// request, response and h2 buffers across threads, and glibc's allocator took about a sixth of
/// its CPU (`docs/bench/NOTES.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = runseal::daemon::Cli::parse();
    match runseal::daemon::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runseald: {}", runseal::daemon::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
