//! runseal-agent: see `runseal::agent`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let args = match runseal::agent::parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    runseal::telemetry::init(runseal::telemetry::LogFormat::Text, "warn");
    runseal::agent::run(args).report()
}
