//! Scale-up storm: `examples/orchestrator` mints N single-use runner tokens in one call and starts
//! N real `runseal-agent` processes with bounded parallelism, each exec'ing a probe that checks
//! its secret arrived. On one runseald with SQLite, and on two runseald replicas sharing one
//! PostgreSQL database behind a comma-separated `RUNSEAL_ADDR`.
//!
//! Each row has its floor, run right after it: `orchestrator --floor`, the same N, parallelism,
//! variables, probe and spawn/measure code, starting bare `/usr/bin/env NAME=VALUE … <probe>`
//! processes (no agent, no token, no server call); the row reports agent starts/s ÷ floor's.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{progress, Common, Daemon, DaemonOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// The orchestrator example (release build).
    #[arg(long, default_value = "target/release/examples/orchestrator")]
    pub orchestrator: PathBuf,
    /// Runner counts.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub runners: Vec<u32>,
    /// Agents running at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// PostgreSQL server for the replicas' run (a database is created and dropped); none: skip.
    #[arg(long, env = "RUNSEAL_BENCH_PG_URL")]
    pub pg_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StormRow {
    pub store: &'static str,
    pub replicas: usize,
    pub runners: u32,
    pub parallel: usize,
    pub summary: serde_json::Value,
    /// The same storm of bare `/usr/bin/env … <probe>` processes (`orchestrator --floor`).
    pub floor: serde_json::Value,
    /// Agent starts/s ÷ floor starts/s.
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct StormResults {
    pub rows: Vec<StormRow>,
}

fn orchestrate(
    args: &StormArgs,
    addr: &str,
    key_file: &std::path::Path,
    n: u32,
    env: &str,
    floor: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(&args.orchestrator);
    if floor {
        cmd.arg("--floor");
    }
    let out = cmd
        .args(["--json", "--secrets", "10", "--env", env])
        .arg("--runners")
        .arg(n.to_string())
        .arg("--parallel")
        .arg(args.parallel.to_string())
        .arg("--addr")
        .arg(addr)
        .arg("--key-file")
        .arg(key_file)
        .arg("--agent")
        .arg(args.common.bin("runseal-agent"))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", args.orchestrator.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(line).with_context(|| {
        format!(
            "orchestrator ({}) printed no summary: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )
    })?;
    if !out.status.success() {
        // Failed runners are counted in the summary; show the first reasons.
        for l in String::from_utf8_lossy(&out.stderr).lines().take(3) {
            progress(format!("storm: {l}"));
        }
    }
    Ok(summary)
}

/// Agent starts/s ÷ floor starts/s (NaN when either is missing).
fn starts_ratio(agent: &serde_json::Value, floor: &serde_json::Value) -> f64 {
    let rate = |v: &serde_json::Value| v["starts_per_s"].as_f64().unwrap_or(f64::NAN);
    rate(agent) / rate(floor)
}

/// Runs one statement against the server's `postgres`-style base URL.
pub async fn pg_exec(base_url: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base_url)
        .await
        .with_context(|| format!("cannot connect to {}", runseal::store::redact_url(base_url)))?;
    sqlx::query(sql).execute(&mut conn).await?;
    Ok(())
}

/// The URL of database `name` on the same server as `base_url`.
pub fn pg_database_url(base_url: &str, name: &str) -> anyhow::Result<String> {
    let (prefix, _) = base_url
        .rsplit_once('/')
        .context("the PostgreSQL URL must end in /DATABASE")?;
    Ok(format!("{prefix}/{name}"))
}

pub async fn run(args: StormArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if !args.orchestrator.exists() {
        bail!(
            "{} is missing: cargo build --release --example orchestrator",
            args.orchestrator.display()
        );
    }
    let runners: Vec<u32> = if common.quick {
        args.runners.iter().map(|&n| n.min(200)).collect()
    } else {
        args.runners.clone()
    };
    let scratch = common.scratch("storm")?;
    let mut rows = Vec::new();

    // SQLite: one runseald.
    {
        let data_dir = scratch.path.join("sqlite");
        let daemon = Daemon::start(DaemonOptions {
            bin: common.bin("runseald"),
            data_dir: data_dir.clone(),
            tcp_port: Some(super::free_port()?),
            unix: None,
            tls: None,
            database_url: None,
            log: scratch.path.join("sqlite.log"),
        })?;
        let addr = daemon.tcp_addr().expect("tcp");
        for &n in &runners {
            let key = data_dir.join("admin.key");
            let summary = orchestrate(&args, &addr, &key, n, "storm", false)?;
            progress(format!("storm: SQLite, {n} runners: {summary}"));
            let floor = orchestrate(&args, &addr, &key, n, "storm", true)?;
            progress(format!("storm: floor, {n} runners: {floor}"));
            rows.push(StormRow {
                store: "SQLite",
                replicas: 1,
                runners: n,
                parallel: args.parallel,
                ratio: starts_ratio(&summary, &floor),
                summary,
                floor,
            });
        }
        daemon.stop();
    }

    // PostgreSQL: two replicas of one database, one data dir (the shared master key).
    if let Some(base) = &args.pg_url {
        let db = "runseal_bench_storm";
        pg_exec(base, &format!("DROP DATABASE IF EXISTS {db}")).await?;
        pg_exec(base, &format!("CREATE DATABASE {db}")).await?;
        let url = pg_database_url(base, db)?;
        let data_dir = scratch.path.join("pg");
        let mut replicas = Vec::new();
        for i in 0..2 {
            replicas.push(Daemon::start(DaemonOptions {
                bin: common.bin("runseald"),
                data_dir: data_dir.clone(),
                tcp_port: Some(super::free_port()?),
                unix: None,
                tls: None,
                database_url: Some(url.clone()),
                log: scratch.path.join(format!("pg-{i}.log")),
            })?);
        }
        let addr = replicas
            .iter()
            .map(|d| d.tcp_addr().expect("tcp"))
            .collect::<Vec<_>>()
            .join(",");
        for &n in &runners {
            let key = data_dir.join("admin.key");
            let summary = orchestrate(&args, &addr, &key, n, "storm", false)?;
            progress(format!("storm: PostgreSQL x2, {n} runners: {summary}"));
            let floor = orchestrate(&args, &addr, &key, n, "storm", true)?;
            progress(format!("storm: floor, {n} runners: {floor}"));
            rows.push(StormRow {
                store: "PostgreSQL",
                replicas: 2,
                runners: n,
                parallel: args.parallel,
                ratio: starts_ratio(&summary, &floor),
                summary,
                floor,
            });
        }
        for r in replicas {
            r.stop();
        }
        pg_exec(base, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    } else {
        progress("storm: no --pg-url: skipping the PostgreSQL replicas");
    }
    super::write_json(&common.out, &StormResults { rows })
}
