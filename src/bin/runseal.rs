//! runseal: see `runseal::cli`.
#![forbid(unsafe_code)]

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = runseal::cli::parse();
    match runseal::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runseal: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
