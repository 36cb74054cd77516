//! runseal-agent: see `runseal::agent` (and `runseal::agent::build` for `runseal-agent build`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The app always follows `--`, so a first argument `build` can only be the subcommand.
    if argv.get(1).is_some_and(|a| a == "build") {
        let argv = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned());
        let args = match runseal::agent::build::parse_args_from(argv) {
            Ok(a) => a,
            Err(code) => return code,
        };
        runseal::telemetry::init_agent(tracing::Level::WARN);
        return runseal::agent::build::run(args);
    }
    let args = match runseal::agent::parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    runseal::telemetry::init_agent(tracing::Level::WARN);
    runseal::agent::run(args).report()
}
