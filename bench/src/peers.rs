//! Peers serving the same 50 values: etcd (Debian's `etcd-server`, a single member started here
//! on loopback with a scratch data dir and stopped at the end) answering a prefix read, driven
//! by the same load generator as runseald, warm and cold; and PostgreSQL answering a `SELECT` of
//! 50 rows with a new connection per read (`pgbench -C`), which is what "every runner reads the
//! database itself" would cost.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::load::{etcd, LoadResult, Mode};
use super::storm::{pg_database_url, pg_exec};
use super::throughput::{describe, drive, LoadSpec, SWEEP, SWEEP_QUICK};
use super::{procfs, progress, Common};

#[derive(Debug, Clone, clap::Args)]
pub struct PeersArgs {
    #[command(flatten)]
    pub common: Common,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// The pgbench binary.
    #[arg(long, default_value = "pgbench")]
    pub pgbench: PathBuf,
    /// PostgreSQL server for the pgbench peer (a database is created and dropped); none: skip.
    #[arg(long, env = "RUNSEAL_BENCH_PG_URL")]
    pub pg_url: Option<String>,
    /// Seconds measured per point (default 3, --quick 1).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Values read per request.
    #[arg(long, default_value_t = 50)]
    pub keys: usize,
}

#[derive(Debug, Serialize)]
pub struct PgPoint {
    pub clients: usize,
    pub transactions: u64,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub connection_avg_ms: f64,
    /// Per-transaction latency from pgbench's log (the query, without the connection).
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub server_cpu_pct: f64,
    pub generator_cpu_pct: f64,
}

#[derive(Debug, Serialize)]
pub struct PeersResults {
    pub keys: usize,
    pub duration_s: f64,
    pub etcd_version: Option<String>,
    pub etcd: Vec<LoadResult>,
    pub postgres_version: Option<String>,
    pub pgbench: Vec<PgPoint>,
}

struct Etcd {
    child: Child,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(10);
        while let Ok(None) = self.child.try_wait() {
            if Instant::now() > until {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

fn version_of(cmd: &std::path::Path) -> Option<String> {
    let out = Command::new(cmd).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

async fn run_etcd(
    args: &PeersArgs,
    scratch: &std::path::Path,
    duration: f64,
    out: &mut Vec<LoadResult>,
) -> anyhow::Result<()> {
    let client_port = super::free_port()?;
    let peer_port = super::free_port()?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(scratch.join("etcd.log"))?;
    let child = Command::new(&args.etcd)
        .arg("--name")
        .arg("bench")
        .arg("--data-dir")
        .arg(scratch.join("etcd-data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("bench={peer_url}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (bench/run.sh installs Debian's etcd-server)",
                args.etcd.display()
            )
        })?;
    let etcd_proc = Etcd { child };
    let pid = etcd_proc.child.id();

    // Seed the same 50 names and values the runseal snapshots hold, once etcd answers.
    let until = Instant::now() + Duration::from_secs(30);
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(client_url.clone())?
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => bail!(
                "etcd did not start: {e}; see {}/etcd.log",
                scratch.display()
            ),
        }
    };
    let mut kv = etcd::kv_client::KvClient::new(channel);
    for i in 0..args.keys {
        let put = etcd::PutRequest {
            key: format!("/bench/{}", super::secret_name(i)).into_bytes(),
            value: super::secret_value(i).expose().to_vec(),
            lease: 0,
        };
        loop {
            match kv.put(put.clone()).await {
                Ok(_) => break,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => bail!("etcd refused the seed: {e}"),
            }
        }
    }
    let sweep = if args.common.quick {
        SWEEP_QUICK
    } else {
        SWEEP
    };
    for mode in [Mode::Warm, Mode::Cold] {
        for &c in sweep {
            let spec = LoadSpec {
                addr: &client_url,
                ca: None,
                mode,
                concurrency: c,
                duration,
                server_pid: pid,
                extra: vec![
                    "--target".into(),
                    "etcd".into(),
                    "--prefix".into(),
                    "/bench/".into(),
                    "--expect".into(),
                    args.keys.to_string(),
                ],
            };
            let r = drive(&args.common.bin("runseal-bench"), spec.args()).await?;
            progress(format!("peers: etcd {mode:?} c={c}: {}", describe(&r)));
            out.push(r);
        }
    }
    drop(etcd_proc);
    Ok(())
}

/// The postmaster's PID, from `postmaster.pid` in the data directory.
async fn postmaster_pid(url: &str) -> anyhow::Result<(u32, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&mut conn)
        .await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let text = std::fs::read_to_string(PathBuf::from(&dir).join("postmaster.pid"))
        .with_context(|| format!("cannot read {dir}/postmaster.pid (the server must be local)"))?;
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("malformed postmaster.pid")?;
    Ok((pid, version))
}

fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

fn parse_after(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn run_pgbench(
    args: &PeersArgs,
    base: &str,
    scratch: &std::path::Path,
    duration: f64,
    out: &mut Vec<PgPoint>,
) -> anyhow::Result<String> {
    let db = "runseal_bench_peer";
    pg_exec(base, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    pg_exec(base, &format!("CREATE DATABASE {db}")).await?;
    let url = pg_database_url(base, db)?;
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        sqlx::query("CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .execute(&mut conn)
            .await?;
        for i in 0..args.keys {
            sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2)")
                .bind(super::secret_name(i))
                .bind(String::from_utf8_lossy(super::secret_value(i).expose()).into_owned())
                .execute(&mut conn)
                .await?;
        }
        sqlx::query("VACUUM ANALYZE secrets")
            .execute(&mut conn)
            .await?;
    }
    let (pid, version) = postmaster_pid(&url).await?;
    let script = scratch.join("select.sql");
    std::fs::write(&script, "SELECT name, value FROM secrets;\n")?;
    // pgbench's own clients count against max_connections (100 by default).
    let clients: Vec<usize> = if args.common.quick {
        vec![1, 16, 64]
    } else {
        vec![1, 4, 16, 64]
    };
    for c in clients {
        let logdir = scratch.join(format!("pgbench-{c}"));
        std::fs::create_dir_all(&logdir)?;
        let server0 = procfs::cpu_seconds(pid, true)?;
        let gen0 = children_cpu_seconds();
        let t0 = Instant::now();
        let output = Command::new(&args.pgbench)
            .args(["-n", "-C", "-f"])
            .arg(&script)
            .arg("-c")
            .arg(c.to_string())
            .arg("-j")
            .arg(c.min(2).to_string())
            .arg("-T")
            .arg((duration.ceil() as u64).max(1).to_string())
            .arg("-l")
            .arg("--log-prefix")
            .arg(logdir.join("log"))
            .arg(&url)
            .current_dir(&logdir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", args.pgbench.display()))?;
        let wall = t0.elapsed().as_secs_f64();
        let server1 = procfs::cpu_seconds(pid, true)?;
        let gen1 = children_cpu_seconds();
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut lat = Vec::new();
        for entry in std::fs::read_dir(&logdir)? {
            let text = std::fs::read_to_string(entry?.path())?;
            for line in text.lines() {
                if let Some(us) = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    lat.push(us / 1e3);
                }
            }
        }
        let s = super::stats::summarize(lat);
        let point = PgPoint {
            clients: c,
            transactions: parse_after(&text, "number of transactions actually processed:") as u64,
            tps: parse_after(&text, "tps ="),
            latency_avg_ms: parse_after(&text, "latency average ="),
            connection_avg_ms: parse_after(&text, "average connection time ="),
            latency_p50_ms: s.p50_ms,
            latency_p99_ms: s.p99_ms,
            server_cpu_pct: (server1 - server0) / wall * 100.0,
            generator_cpu_pct: (gen1 - gen0) / wall * 100.0,
        };
        progress(format!(
            "peers: pgbench -C c={c}: {:.0} tps, latency avg {:.2} ms + connection {:.2} ms, cpu server {:.0}% pgbench {:.0}%",
            point.tps, point.latency_avg_ms, point.connection_avg_ms, point.server_cpu_pct, point.generator_cpu_pct
        ));
        out.push(point);
    }
    pg_exec(base, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    Ok(version)
}

pub async fn run(args: PeersArgs) -> anyhow::Result<()> {
    let duration = args
        .duration
        .unwrap_or(if args.common.quick { 1.0 } else { 3.0 });
    let scratch = args.common.scratch("peers")?;
    let mut etcd_points = Vec::new();
    run_etcd(&args, &scratch.path, duration, &mut etcd_points).await?;
    let mut pg_points = Vec::new();
    let postgres_version = match &args.pg_url {
        Some(base) => {
            Some(run_pgbench(&args, base, &scratch.path, duration, &mut pg_points).await?)
        }
        None => {
            progress("peers: no --pg-url: skipping pgbench");
            None
        }
    };
    super::write_json(
        &args.common.out,
        &PeersResults {
            keys: args.keys,
            duration_s: duration,
            etcd_version: version_of(&args.etcd),
            etcd: etcd_points,
            postgres_version,
            pgbench: pg_points,
        },
    )
}
