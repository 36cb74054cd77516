//! Runner start overhead: the whole process, spawn to exit, of `runseal-agent -- /bin/true` with
//! 10, 50 and 500 secrets over loopback plaintext, loopback TLS and a Unix socket, each with its
//! own single-use runner token (as an orchestrator gives each runner), against the floor: a bare
//! `/usr/bin/env K1=V1 … /bin/true` exec with the same variables.
//!
//! Beside it, the parts of a start: the agent's own CPU, page faults and peak RSS (by
//! `runseal-bench rusage`, against `/bin/true` alone and `runseal-agent --version`), the
//! RLIMIT_MEMLOCK it ran with, the server's share (GetSnapshot on a warm connection, on a data
//! dir on disk and on tmpfs) and the TLS handshake's share (ECDSA P-256 and RSA-2048).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::rusage::{self, ChildUsage};
use super::stats::{percentile, summarize, Summary};
use super::{progress, Common, Daemon, DaemonOptions, TlsFiles};
use runseal::auth::Credential;
use runseal::client::{connect_channel, Client};

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

/// A distribution of plain numbers (CPU ms, page faults, KiB): nearest-rank percentiles.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

fn dist(mut v: Vec<f64>) -> Dist {
    v.sort_by(f64::total_cmp);
    Dist {
        n: v.len(),
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// The agent's own resource use per start (loopback plaintext), each run paired with a
/// `/bin/true` run and a `runseal-agent --version` run.
#[derive(Debug, Serialize)]
pub struct UsageRow {
    pub secrets: usize,
    /// CPU of `runseal-agent -- /bin/true` minus that of `/bin/true` in the same round, ms.
    pub agent_cpu_ms: Dist,
    /// CPU of `runseal-agent --version` (start-up and exit of the binary alone), ms.
    pub version_cpu_ms: Dist,
    pub true_cpu_ms: Dist,
    /// agent_cpu_ms.p50 / version_cpu_ms.p50.
    pub cpu_ratio: f64,
    /// Minor + major page faults, the same differences.
    pub agent_faults: Dist,
    pub version_faults: Dist,
    pub true_faults: Dist,
    pub agent_major_faults: Dist,
    /// ru_maxrss of `runseal-agent -- /bin/true` (the agent before its exec, the app after) by
    /// GNU time, KiB.
    pub agent_maxrss_kib: Dist,
    pub errors: usize,
}

/// RLIMIT_MEMLOCK of the benchmark (its children inherit it); `None` is unlimited.
#[derive(Debug, Serialize)]
pub struct Memlock {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    /// At least 64 MiB: the agent locks its memory (mlockall) under this limit.
    pub agent_locks: bool,
}

/// GetSnapshot with single-use runner tokens on one warm connection, one request in flight,
/// request sent to response received (the server's work plus one loopback round trip).
#[derive(Debug, Serialize)]
pub struct ServerShareRow {
    /// "durable write" (data dir on disk) or "no durable write (tmpfs, for comparison only)".
    pub storage: String,
    pub filesystem: String,
    pub secrets: usize,
    pub latency: Summary,
    pub errors: usize,
}

/// TCP connect + TLS handshake to runseald's TLS port, a new connection each time (no
/// resumption), beside the agent's TLS start with that certificate (50 secrets).
#[derive(Debug, Serialize)]
pub struct HandshakeRow {
    pub certificate: String,
    pub handshake: Summary,
    pub tls_start: Summary,
    pub tls_start_secrets: usize,
    /// handshake.p50_ms / tls_start.p50_ms.
    pub share: f64,
    pub errors: usize,
}

#[derive(Debug, Serialize)]
pub struct StartResults {
    pub runs: usize,
    pub program: &'static str,
    pub rows: Vec<StartRow>,
    pub memlock: Memlock,
    pub usage: Vec<UsageRow>,
    pub server_share: Vec<ServerShareRow>,
    pub handshake: Vec<HandshakeRow>,
    /// Runner starts against a data dir on tmpfs, where the token's use is not durable: what the
    /// fsync costs a start, for comparison only (runseald never runs so by choice).
    pub not_durable: Vec<StartRow>,
}

const MIB: u64 = 1024 * 1024;

fn memlock() -> anyhow::Result<Memlock> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) = getrlimit(Resource::RLIMIT_MEMLOCK)?;
    let lim = |v: u64| (v != RLIM_INFINITY).then_some(v);
    Ok(Memlock {
        soft_bytes: lim(soft),
        hard_bytes: lim(hard),
        agent_locks: soft == RLIM_INFINITY || soft >= 64 * MIB,
    })
}

/// Rounds of `/bin/true`, `runseal-agent -- /bin/true` (its own token) and `runseal-agent
/// --version`, each under `runseal-bench rusage`, then the agent's peak RSS under GNU time
/// (a second token): `ru_maxrss` under `runseal-bench rusage` would be the helper's own (a child
/// keeps the peak of the memory it was spawned from across its exec), GNU time is small.
fn usage_runs(
    bench: &Path,
    agent: &Path,
    addr: &str,
    tokens: &[Credential],
    warmup: usize,
    secrets: usize,
    time_out: &Path,
) -> anyhow::Result<UsageRow> {
    let mut cols: [Vec<f64>; 8] = Default::default();
    let mut errors = 0;
    for (i, t) in tokens.chunks(2).enumerate() {
        let round = || -> anyhow::Result<(ChildUsage, ChildUsage, ChildUsage, u64)> {
            let bare = rusage::measure(bench, Path::new(PROGRAM), &[], &[])?;
            let line = t[0].to_line();
            let run = rusage::measure(
                bench,
                agent,
                &["--", PROGRAM],
                &[("RUNSEAL_ADDR", addr), ("RUNSEAL_TOKEN", line.as_str())],
            )?;
            let version = rusage::measure(bench, agent, &["--version"], &[])?;
            let line = t.get(1).context("two tokens per round")?.to_line();
            let mut cmd = super::memory::gnu_time(time_out);
            cmd.arg(agent)
                .arg("--")
                .arg(PROGRAM)
                .env("RUNSEAL_ADDR", addr)
                .env("RUNSEAL_TOKEN", line.as_str())
                .stderr(Stdio::null());
            let rss = super::memory::max_rss(&mut cmd, time_out)?;
            Ok((bare, run, version, rss))
        };
        match round() {
            Ok(_) if i < warmup => {}
            Ok((bare, run, version, rss)) => {
                let vals = [
                    run.cpu_ms - bare.cpu_ms,
                    version.cpu_ms,
                    bare.cpu_ms,
                    run.faults() - bare.faults(),
                    version.faults(),
                    bare.faults(),
                    (run.major_faults - bare.major_faults) as f64,
                    rss as f64,
                ];
                for (c, v) in cols.iter_mut().zip(vals) {
                    c.push(v);
                }
            }
            Err(e) => {
                if errors == 0 {
                    progress(format!("start: rusage round failed: {e:#}"));
                }
                errors += 1;
            }
        }
    }
    let [a, b, c, d, e, f, g, h] = cols.map(dist);
    Ok(UsageRow {
        secrets,
        cpu_ratio: a.p50 / b.p50,
        agent_cpu_ms: a,
        version_cpu_ms: b,
        true_cpu_ms: c,
        agent_faults: d,
        version_faults: e,
        true_faults: f,
        agent_major_faults: g,
        agent_maxrss_kib: h,
        errors,
    })
}

/// GetSnapshot, one single-use token each, on one connection opened first, one at a time.
async fn server_share(
    admin: &Client,
    addr: &str,
    env: &str,
    secrets: usize,
    runs: usize,
    warmup: usize,
) -> anyhow::Result<(Summary, usize)> {
    let tokens = super::mint_tokens(admin, env, runs + warmup, 1).await?;
    let channel = connect_channel(addr, None, None, Duration::from_secs(10)).await?;
    let mut ms = Vec::with_capacity(runs);
    let mut errors = 0;
    for (i, t) in tokens.iter().enumerate() {
        let client = Client::from_channel(channel.clone(), t, addr);
        let t0 = Instant::now();
        let res = client.runners().snapshot("", "", &[]).await;
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        match res {
            Ok(s) if s.secrets.len() == secrets => {
                if i >= warmup {
                    ms.push(elapsed);
                }
            }
            Ok(_) | Err(_) => errors += 1,
        }
    }
    Ok((summarize(ms), errors))
}

/// The filesystem a path is on, as `df -T` names it (for the table).
fn filesystem(path: &Path) -> String {
    Command::new("df")
        .arg("-T")
        .arg(path)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// TCP connect + rustls handshake to 127.0.0.1:`port`, a new connection (and full handshake:
/// resumption off, as in a fresh agent process) each time.
async fn handshakes(
    port: u16,
    ca: &Path,
    runs: usize,
    warmup: usize,
) -> anyhow::Result<(Summary, usize)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in runseal::tls::load_certs(ca)? {
        roots.add(cert)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
    let mut ms = Vec::with_capacity(runs);
    let mut errors = 0;
    for i in 0..runs + warmup {
        let t0 = Instant::now();
        let res = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.set_nodelay(true)?;
            anyhow::Ok(connector.connect(name.clone(), tcp).await?)
        }
        .await;
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        match res {
            Ok(conn) => {
                if i >= warmup {
                    ms.push(elapsed);
                }
                drop(conn);
            }
            Err(e) => {
                if errors == 0 {
                    progress(format!("start: TLS handshake failed: {e:#}"));
                }
                errors += 1;
            }
        }
    }
    Ok((summarize(ms), errors))
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

    let bench = common.bin("runseal-bench");
    let memlock = memlock()?;
    progress(format!(
        "start: RLIMIT_MEMLOCK soft {:?} hard {:?} bytes (agent locks its memory: {})",
        memlock.soft_bytes, memlock.hard_bytes, memlock.agent_locks
    ));
    let mut rows = Vec::new();
    let mut usage = Vec::new();
    let mut server_shares = Vec::new();
    let mut handshake = Vec::new();
    let mut not_durable = Vec::new();
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
        let port = daemon.opts.tcp_port.expect("tcp");
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
            if phase == "plain" && (n == 50 || n == 500) {
                progress(format!(
                    "start: agent CPU, page faults, peak RSS, {n} secrets ({runs} rounds)"
                ));
                let tokens = super::mint_tokens(&admin, &env, 2 * (runs + warmup), 1).await?;
                let (bench, agent) = (bench.clone(), agent.clone());
                let addr = daemon.tcp_addr().expect("tcp");
                let time_out = scratch.path.join("time.out");
                let row = tokio::task::spawn_blocking(move || {
                    usage_runs(&bench, &agent, &addr, &tokens, warmup, n, &time_out)
                })
                .await??;
                progress(format!(
                    "start: {n} secrets: agent CPU p50 {:.2} ms p99 {:.2} ms, --version {:.2} ms \
                     ({:.2}x), page faults p50 {:.0}, peak RSS p50 {:.0} KiB",
                    row.agent_cpu_ms.p50,
                    row.agent_cpu_ms.p99,
                    row.version_cpu_ms.p50,
                    row.cpu_ratio,
                    row.agent_faults.p50,
                    row.agent_maxrss_kib.p50
                ));
                usage.push(row);
            }
        }
        if phase == "plain" {
            let addr = daemon.tcp_addr().expect("tcp");
            let fs = filesystem(&data_dir);
            for &n in &args.secrets {
                let (latency, errors) =
                    server_share(&admin, &addr, &format!("start-{n}"), n, runs, warmup).await?;
                progress(format!(
                    "start: server share, durable write ({fs}), {n} secrets: p50 {:.3} ms p99 {:.3} ms",
                    latency.p50_ms, latency.p99_ms
                ));
                server_shares.push(ServerShareRow {
                    storage: "durable write".into(),
                    filesystem: fs.clone(),
                    secrets: n,
                    latency,
                    errors,
                });
            }
        } else {
            let (hs, errors) = handshakes(port, &tls.ca, runs, warmup).await?;
            progress(format!(
                "start: TLS handshake, ECDSA P-256: p50 {:.3} ms p99 {:.3} ms",
                hs.p50_ms, hs.p99_ms
            ));
            if let Some(r) = rows
                .iter()
                .find(|r| r.transport == "loopback TLS" && r.secrets == HANDSHAKE_SECRETS)
            {
                handshake.push(HandshakeRow {
                    certificate: "ECDSA P-256".into(),
                    handshake: hs,
                    tls_start: r.agent,
                    tls_start_secrets: HANDSHAKE_SECRETS,
                    share: hs.p50_ms / r.agent.p50_ms,
                    errors,
                });
            }
        }
        daemon.stop();
    }

    // RSA-2048: the same data dir restarted with the RSA certificate (bench/run.sh makes it).
    let rsa = TlsFiles {
        ca: tls.ca.clone(),
        cert: tls.cert.with_file_name("server-rsa.pem"),
        key: tls.key.with_file_name("server-rsa.key"),
    };
    if rsa.cert.exists() && rsa.key.exists() {
        let daemon = Daemon::start(DaemonOptions {
            bin: common.bin("runseald"),
            data_dir: data_dir.clone(),
            tcp_port: Some(super::free_port()?),
            unix: None,
            tls: Some(rsa.clone()),
            database_url: None,
            log: log.clone(),
        })?;
        let admin = daemon.admin().await?;
        let port = daemon.opts.tcp_port.expect("tcp");
        let (hs, hs_errors) = handshakes(port, &rsa.ca, runs, warmup).await?;
        progress(format!(
            "start: TLS handshake, RSA-2048: p50 {:.3} ms p99 {:.3} ms",
            hs.p50_ms, hs.p99_ms
        ));
        let n = HANDSHAKE_SECRETS;
        let env = format!("start-{n}");
        super::seed_environment(&admin, &env, n).await?;
        progress(format!(
            "start: agent, loopback TLS (RSA-2048), {n} secrets"
        ));
        let tokens = super::mint_tokens(&admin, &env, runs + warmup, 1).await?;
        let (agent, addr, ca) = (
            agent.clone(),
            daemon.tcp_addr().expect("tcp"),
            rsa.ca.clone(),
        );
        let floor_args = floor_assignments(n);
        let (start, _, errors, _) = tokio::task::spawn_blocking(move || {
            agent_runs(&agent, &addr, Some(&ca), &tokens, warmup, &floor_args)
        })
        .await??;
        handshake.push(HandshakeRow {
            certificate: "RSA-2048".into(),
            handshake: hs,
            tls_start: start,
            tls_start_secrets: n,
            share: hs.p50_ms / start.p50_ms,
            errors: hs_errors + errors,
        });
        daemon.stop();
    } else {
        progress("start: no server-rsa.pem in --tls-dir: skipping the RSA-2048 handshake");
    }

    // The server's share again on a data dir on tmpfs, where an fsync is a no-op.
    match shm_scratch() {
        Ok(shm) => {
            let daemon = Daemon::start(DaemonOptions {
                bin: common.bin("runseald"),
                data_dir: shm.path().join("data"),
                tcp_port: Some(super::free_port()?),
                unix: None,
                tls: None,
                database_url: None,
                log: scratch.path.join("runseald-shm.log"),
            })?;
            let admin = daemon.admin().await?;
            let addr = daemon.tcp_addr().expect("tcp");
            let fs = filesystem(shm.path());
            for &n in &args.secrets {
                let env = format!("start-{n}");
                super::seed_environment(&admin, &env, n).await?;
                if n == HANDSHAKE_SECRETS {
                    progress(format!(
                        "start: agent, loopback plaintext, no durable write ({fs}), {n} secrets"
                    ));
                    let tokens = super::mint_tokens(&admin, &env, runs + warmup, 1).await?;
                    let (agent, addr) = (agent.clone(), addr.clone());
                    let floor_args = floor_assignments(n);
                    let (summary, floor, errors, _) = tokio::task::spawn_blocking(move || {
                        agent_runs(&agent, &addr, None, &tokens, warmup, &floor_args)
                    })
                    .await??;
                    not_durable.push(StartRow {
                        transport: format!("loopback plaintext, data dir on {fs}"),
                        secrets: n,
                        agent: summary,
                        floor,
                        added_ms: summary.p50_ms - floor.p50_ms,
                        ratio: summary.p50_ms / floor.p50_ms,
                        p99_added_ms: summary.p99_ms - floor.p99_ms,
                        errors,
                    });
                }
                let (latency, errors) = server_share(&admin, &addr, &env, n, runs, warmup).await?;
                progress(format!(
                    "start: server share, no durable write ({fs}), {n} secrets: p50 {:.3} ms p99 {:.3} ms",
                    latency.p50_ms, latency.p99_ms
                ));
                server_shares.push(ServerShareRow {
                    storage: "no durable write (tmpfs, for comparison only)".into(),
                    filesystem: fs.clone(),
                    secrets: n,
                    latency,
                    errors,
                });
            }
            daemon.stop();
        }
        Err(e) => progress(format!(
            "start: no tmpfs data dir ({e:#}): skipping that row"
        )),
    }

    super::write_json(
        &common.out,
        &StartResults {
            runs,
            program: PROGRAM,
            rows,
            memlock,
            usage,
            server_share: server_shares,
            handshake,
            not_durable,
        },
    )
}

/// The snapshot size of the TLS start the handshake is compared with.
const HANDSHAKE_SECRETS: usize = 50;

/// A scratch directory under /dev/shm (tmpfs), removed when dropped.
fn shm_scratch() -> anyhow::Result<tempfile::TempDir> {
    let shm = PathBuf::from("/dev/shm");
    if !shm.is_dir() {
        bail!("/dev/shm is missing");
    }
    tempfile::Builder::new()
        .prefix("runseal-bench-start-")
        .tempdir_in(&shm)
        .context("cannot create a directory under /dev/shm")
}
