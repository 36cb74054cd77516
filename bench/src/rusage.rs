//! `runseal-bench rusage -- COMMAND…`: runs one command and prints the command's own resource use
//! as one JSON object: `getrusage(RUSAGE_CHILDREN)` of this fresh process, whose only child is
//! that command, so the figures (CPU, page faults and `ru_maxrss`, which is a maximum, not a sum)
//! are the command's alone, with no unsafe code and no `wait4`. The start section runs it around
//! `runseal-agent -- /bin/true`, `runseal-agent --version` and `/bin/true`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::sys::resource::{getrusage, UsageWho};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, clap::Args)]
pub struct RusageArgs {
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<OsString>,
}

/// One child's resource use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChildUsage {
    /// The command exited 0.
    pub ok: bool,
    /// User + system CPU, ms.
    pub cpu_ms: f64,
    pub minor_faults: i64,
    pub major_faults: i64,
    /// Peak resident set (ru_maxrss), KiB; it covers the process before and after its exec.
    pub maxrss_kib: i64,
}

impl ChildUsage {
    pub fn faults(&self) -> f64 {
        (self.minor_faults + self.major_faults) as f64
    }
}

pub fn main(args: RusageArgs) -> anyhow::Result<()> {
    let (prog, rest) = args.command.split_first().context("no command")?;
    let status = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", prog.to_string_lossy()))?;
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    let usage = ChildUsage {
        ok: status.success(),
        cpu_ms: ms(u.user_time()) + ms(u.system_time()),
        minor_faults: u.minor_page_faults() as i64,
        major_faults: u.major_page_faults() as i64,
        maxrss_kib: u.max_rss() as i64,
    };
    println!("{}", serde_json::to_string(&usage)?);
    Ok(())
}

/// Runs `cmd` (a `Command` for the measured program, its environment set) under
/// `runseal-bench rusage` and returns its usage; a failed command is an error.
pub fn measure(
    bench: &Path,
    program: &Path,
    args: &[&str],
    cmd_env: &[(&str, &str)],
) -> anyhow::Result<ChildUsage> {
    let mut cmd = Command::new(bench);
    cmd.arg("rusage").arg("--").arg(program).args(args);
    for (k, v) in cmd_env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", bench.display()))?;
    let usage: ChildUsage = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "rusage helper failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if !usage.ok {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(usage)
}
