//! Memory and size: the agent's peak RSS (GNU time's maximum resident set, which covers the
//! agent before its exec and the app after), runseald's RSS idle and under load with 10,000
//! secrets in 100 environments, and the stripped sizes of the three binaries.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use super::load::Mode;
use super::throughput::{describe, drive, LoadSpec};
use super::{procfs, progress, Common, Daemon, DaemonOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Agent runs per secret count.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

#[derive(Debug, Serialize)]
pub struct AgentRss {
    pub secrets: usize,
    pub runs: usize,
    pub max_kib: u64,
    pub median_kib: u64,
    pub floor_max_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct ServerRss {
    pub phase: String,
    pub rss_kib: u64,
    pub peak_kib: u64,
    pub load: Option<super::load::LoadResult>,
}

#[derive(Debug, Serialize)]
pub struct BinarySize {
    pub name: String,
    pub bytes: u64,
    pub stripped_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct MemoryResults {
    pub agent: Vec<AgentRss>,
    pub server_environments: usize,
    pub server_secrets: usize,
    pub server: Vec<ServerRss>,
    pub binaries: Vec<BinarySize>,
}

/// Maximum resident set (KiB) of a command, by GNU time.
pub fn max_rss(cmd: &mut Command, time_out: &std::path::Path) -> anyhow::Result<u64> {
    let status = cmd.stdin(Stdio::null()).stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("the measured command failed ({status})");
    }
    let text = std::fs::read_to_string(time_out)?;
    text.trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time wrote no maximum RSS")
}

pub fn gnu_time(out: &std::path::Path) -> Command {
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("%M").arg("-o").arg(out);
    c
}

pub async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if !std::path::Path::new("/usr/bin/time").exists() {
        bail!("/usr/bin/time (GNU time) is missing: apt-get install time");
    }
    let scratch = common.scratch("memory")?;
    let data_dir = scratch.path.join("data");
    let daemon = Daemon::start(DaemonOptions {
        bin: common.bin("runseald"),
        data_dir: data_dir.clone(),
        tcp_port: Some(super::free_port()?),
        unix: None,
        tls: None,
        database_url: None,
        log: scratch.path.join("runseald.log"),
    })?;
    let admin = daemon.admin().await?;
    let addr = daemon.tcp_addr().expect("tcp");
    let time_out = scratch.path.join("time.out");

    // The agent.
    let mut agent = Vec::new();
    for n in [10usize, 50, 500] {
        let env = format!("mem-agent-{n}");
        super::seed_environment(&admin, &env, n).await?;
        let tokens = super::mint_tokens(&admin, &env, args.runs, 1).await?;
        let mut kib = Vec::new();
        for t in &tokens {
            let mut cmd = gnu_time(&time_out);
            cmd.arg(common.bin("runseal-agent"))
                .args(["--", "/bin/true"])
                .env("RUNSEAL_ADDR", &addr)
                .env("RUNSEAL_TOKEN", t.to_line().as_str())
                .stderr(Stdio::null());
            kib.push(max_rss(&mut cmd, &time_out)?);
        }
        let assignments: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "{}={}",
                    super::secret_name(i),
                    String::from_utf8_lossy(super::secret_value(i).expose())
                )
            })
            .collect();
        let mut floor = 0;
        for _ in 0..5 {
            let mut cmd = gnu_time(&time_out);
            cmd.arg("/usr/bin/env").args(&assignments).arg("/bin/true");
            floor = floor.max(max_rss(&mut cmd, &time_out)?);
        }
        kib.sort_unstable();
        let row = AgentRss {
            secrets: n,
            runs: kib.len(),
            max_kib: *kib.last().unwrap_or(&0),
            median_kib: kib.get(kib.len() / 2).copied().unwrap_or(0),
            floor_max_kib: floor,
        };
        progress(format!(
            "memory: agent with {n} secrets: peak RSS max {} KiB (floor {} KiB)",
            row.max_kib, row.floor_max_kib
        ));
        agent.push(row);
    }

    // runseald with 10,000 secrets in 100 environments.
    let (envs, per_env) = (100usize, 100usize);
    let mut names = Vec::new();
    for e in 0..envs {
        let env = format!("mem-{e:03}");
        super::seed_environment(&admin, &env, per_env).await?;
        names.push(env);
    }
    let scopes: Vec<String> = names.iter().map(|e| format!("snapshot:{e}")).collect();
    let (_, key) = admin.keys().create(&scopes, "bench memory").await?;
    let key_file = scratch.path.join("snapshot.key");
    super::write_credential(&key_file, &key)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = daemon.pid();
    let mut server = Vec::new();
    let (rss, peak) = procfs::rss_kib(pid)?;
    progress(format!(
        "memory: runseald idle with 10,000 secrets: {rss} KiB"
    ));
    server.push(ServerRss {
        phase: "idle, 10,000 secrets in 100 environments".into(),
        rss_kib: rss,
        peak_kib: peak,
        load: None,
    });
    let duration = if common.quick { 1.0 } else { 3.0 };
    for (mode, c) in [(Mode::Warm, 64usize), (Mode::Cold, 64)] {
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let mut max = 0;
                while sampling.load(Ordering::Relaxed) {
                    if let Ok((rss, _)) = procfs::rss_kib(pid) {
                        max = max.max(rss);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                max
            })
        };
        let spec = LoadSpec {
            addr: &addr,
            ca: None,
            mode,
            concurrency: c,
            duration,
            server_pid: pid,
            extra: vec![
                "--credential-file".into(),
                key_file.display().to_string(),
                "--envs".into(),
                names.join(","),
                "--expect".into(),
                per_env.to_string(),
            ],
        };
        let result = drive(&common.bin("runseal-bench"), spec.args()).await?;
        sampling.store(false, Ordering::Relaxed);
        let max = sampler.join().unwrap_or(0);
        let (_, peak) = procfs::rss_kib(pid)?;
        progress(format!(
            "memory: runseald under {mode:?} load (c={c}, 100 environments): max RSS {max} KiB; {}",
            describe(&result)
        ));
        server.push(ServerRss {
            phase: format!(
                "{} load, {c} concurrent fetches over 100 environments",
                match mode {
                    Mode::Warm => "warm",
                    Mode::Cold => "cold",
                }
            ),
            rss_kib: max,
            peak_kib: peak,
            load: Some(result),
        });
    }
    daemon.stop();

    let mut binaries = Vec::new();
    for name in ["runseald", "runseal", "runseal-agent"] {
        let src = common.bin(name);
        let dst = scratch.path.join(format!("{name}.stripped"));
        std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
        let status = Command::new("strip").arg(&dst).status()?;
        if !status.success() {
            bail!("strip {} failed", dst.display());
        }
        binaries.push(BinarySize {
            name: name.to_string(),
            bytes: std::fs::metadata(&src)?.len(),
            stripped_bytes: std::fs::metadata(&dst)?.len(),
        });
    }
    super::write_json(
        &common.out,
        &MemoryResults {
            agent,
            server_environments: envs,
            server_secrets: envs * per_env,
            server,
            binaries,
        },
    )
}
