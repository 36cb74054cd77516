//! runseal-agent: see `runseal::agent` (and `runseal::agent::build_step` for `runseal-agent build`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // The very first thing: from here on no other process of this user can read this process's
    // memory or /proc/PID/environ (which may hold RUNSEAL_TOKEN). What remains is the window
    // between execve and this call; a token file or the systemd credential avoids it.
    if let Err(e) = runseal::exec::sys::make_non_dumpable() {
        eprintln!("runseal-agent: cannot make the agent non-dumpable: {e}");
        return std::process::ExitCode::from(runseal::agent::Exit::Config as u8);
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The app always follows `--`, so a first argument `build` can only be the subcommand.
    if argv.get(1).is_some_and(|a| a == "build") {
        let argv = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned());
        let args = match runseal::agent::build_step::parse_args_from(argv) {
            Ok(a) => a,
            Err(code) => return code,
        };
        runseal::telemetry::init_agent(tracing::Level::WARN);
        return runseal::agent::build_step::run(args);
    }
    let args = match runseal::agent::parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    runseal::telemetry::init_agent(tracing::Level::WARN);
    runseal::agent::run(args).report()
}
