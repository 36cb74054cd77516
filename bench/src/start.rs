//! Runner start overhead: the whole process, spawn to exit, of `runseal-agent -- /bin/true` with
//! 10, 50 and 500 secrets over loopback plaintext, loopback TLS and a Unix socket, each with its
//! own single-use runner token (as an orchestrator gives each runner), against the floor: a bare
//! `/usr/bin/env K1=V1 … /bin/true` exec with the same variables.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::bail;
use serde::Serialize;

use super::stats::{summarize, Summary};
use super::{progress, Common, Daemon, DaemonOptions};
use runseal::auth::Credential;

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub common: Common,
    /// Runs per configuration (default 200, --quick 40).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Secret counts.
    #[arg(long, value_delimiter = ',', default_value = "10,50,500")]
    pub secrets: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct StartRow {
    pub transport: String,
    pub secrets: usize,
    pub agent: Summary,
    pub floor: Summary,
    /// Median added by runseal over the floor, and the ratio of the medians.
    pub added_ms: f64,
    pub ratio: f64,
    pub p99_added_ms: f64,
    pub errors: usize,
}

#[derive(Debug, Serialize)]
pub struct StartResults {
    pub runs: usize,
    pub program: &'static str,
    pub rows: Vec<StartRow>,
}

const PROGRAM: &str = "/bin/true";

/// Spawns, waits; returns the wall time in ms, or the failure.
fn time_once(cmd: &mut Command) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        );
    }
    Ok(ms)
}

/// The floor's arguments: `NAME=VALUE …` for `/usr/bin/env`, the same variables the agent gets.
pub fn floor_assignments(n_secrets: usize) -> Vec<String> {
    (0..n_secrets)
        .map(|i| {
            let v = super::secret_value(i);
            format!(
                "{}={}",
                super::secret_name(i),
                String::from_utf8_lossy(v.expose())
            )
        })
        .collect()
}

/// `runseal-agent -- /bin/true` once per token, each run paired with a floor run right before
/// it, so both see the same machine (it is shared and its load varies).
fn agent_runs(
    agent: &Path,
    addr: &str,
    ca: Option<&Path>,
    tokens: &[Credential],
    warmup: usize,
    floor_args: &[String],
) -> anyhow::Result<(Summary, Summary, usize, Option<String>)> {
    let mut ms = Vec::with_capacity(tokens.len());
    let mut floor = Vec::with_capacity(tokens.len());
    let mut errors = 0;
    let mut first_error = None;
    for (i, t) in tokens.iter().enumerate() {
        let f = time_once(Command::new("/usr/bin/env").args(floor_args).arg(PROGRAM))?;
        if i >= warmup {
            floor.push(f);
        }
        let mut cmd = Command::new(agent);
        cmd.env("RUNSEAL_ADDR", addr)
            .env("RUNSEAL_TOKEN", t.to_line().as_str())
            .env_remove("RUNSEAL_ENV")
            .env_remove("RUNSEAL_SECRETS")
            .env_remove("RUNSEAL_RUNNER_ID")
            .arg("--")
            .arg(PROGRAM);
        match ca {
            Some(ca) => cmd.env("RUNSEAL_CA_CERT", ca),
            None => cmd.env_remove("RUNSEAL_CA_CERT"),
        };
        match time_once(&mut cmd) {
            Ok(t) if i >= warmup => ms.push(t),
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok((summarize(ms), summarize(floor), errors, first_error))
}

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let runs = args.runs.unwrap_or(if common.quick { 40 } else { 200 });
    let warmup = runs / 10;
    let scratch = common.scratch("start")?;
    let tls = common.tls_files()?;
    let agent = common.bin("runseal-agent");
    let data_dir = scratch.path.join("data");
    let socket = scratch.path.join("runseald.sock");
    let log = scratch.path.join("runseald.log");

    let mut rows = Vec::new();
    // Plaintext TCP and the Unix socket on one server, then TLS on a restart of the same data dir.
    for phase in ["plain", "tls"] {
        let daemon = Daemon::start(DaemonOptions {
            bin: common.bin("runseald"),
            data_dir: data_dir.clone(),
            tcp_port: Some(super::free_port()?),
            unix: (phase == "plain").then(|| socket.clone()),
            tls: (phase == "tls").then(|| tls.clone()),
            database_url: None,
            log: log.clone(),
        })?;
        let admin = daemon.admin().await?;
        for &n in &args.secrets {
            let env = format!("start-{n}");
            super::seed_environment(&admin, &env, n).await?;
            let floor_args = floor_assignments(n);
            let transports: Vec<(&str, String)> = if phase == "plain" {
                vec![
                    ("loopback plaintext", daemon.tcp_addr().expect("tcp")),
                    ("unix socket", daemon.unix_addr().expect("unix")),
                ]
            } else {
                vec![("loopback TLS", daemon.tcp_addr().expect("tcp"))]
            };
            for (name, addr) in transports {
                progress(format!("start: agent, {name}, {n} secrets ({runs} runs)"));
                let tokens = super::mint_tokens(&admin, &env, runs + warmup, 1).await?;
                let ca = (phase == "tls").then(|| tls.ca.clone());
                let agent = agent.clone();
                let floor_args = floor_args.clone();
                let (summary, floor, errors, first_error) =
                    tokio::task::spawn_blocking(move || {
                        agent_runs(&agent, &addr, ca.as_deref(), &tokens, warmup, &floor_args)
                    })
                    .await??;
                if let Some(e) = first_error {
                    progress(format!("start: {errors} failed runs; first: {e}"));
                }
                rows.push(StartRow {
                    transport: name.to_string(),
                    secrets: n,
                    agent: summary,
                    floor,
                    added_ms: summary.p50_ms - floor.p50_ms,
                    ratio: summary.p50_ms / floor.p50_ms,
                    p99_added_ms: summary.p99_ms - floor.p99_ms,
                    errors,
                });
            }
        }
        daemon.stop();
    }
    super::write_json(
        &common.out,
        &StartResults {
            runs,
            program: PROGRAM,
            rows,
        },
    )
}
