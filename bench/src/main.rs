//! `runseal-bench`: the measurements behind `docs/bench/RESULTS.md` (issue 8).
//!
//! Every subcommand runs the real release binaries as separate processes (runseald, the agent,
//! the load generator, the peers), on loopback or a Unix socket only, bounded in time and count,
//! and writes one JSON file that `bench/report.py` turns into tables and charts. `bench/run.sh`
//! runs them all. Benchmarks measure; they never assert a speed, so they cannot fail CI on a slow
//! machine. Nothing here ever prints a secret value or a credential: the values are generated
//! filler, and only names, counts and timings are written out.
//!
//! Its own workspace member (bench/Cargo.toml), so the product library and its binaries carry
//! none of it (no etcd proto, no load generator): it drives runseald through the `runseal`
//! library's client like any other user of it.
#![forbid(unsafe_code)]

mod load;
mod memory;
mod peers;
mod procfs;
mod rusage;
mod start;
mod stats;
mod storm;
mod throughput;

use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde::Serialize;

use runseal::auth::Credential;
use runseal::client::{Client, ConnectOptions};
use runseal::secret::SecretBytes;

#[derive(Debug, Parser)]
#[command(
    name = "runseal-bench",
    about = "Benchmarks of runseal beside a bare exec and its peers (see bench/run.sh)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Runner start overhead: runseal-agent -- /bin/true vs /usr/bin/env K=V… /bin/true.
    Start(start::StartArgs),
    /// Scale-up storm through examples/orchestrator, on SQLite and on PostgreSQL replicas.
    Storm(storm::StormArgs),
    /// Snapshot throughput of runseald, driven by `runseal-bench load` in its own process.
    Throughput(throughput::ThroughputArgs),
    /// Peak RSS of the agent, RSS of runseald idle and under load, stripped binary sizes.
    Memory(memory::MemoryArgs),
    /// etcd and PostgreSQL (pgbench -C) serving the same 50 values.
    Peers(peers::PeersArgs),
    /// The load generator (a separate process; started by `throughput`, `memory` and `peers`).
    Load(load::LoadArgs),
    /// Runs one command and prints its own CPU, page faults and peak RSS (used by `start`).
    Rusage(rusage::RusageArgs),
}

/// The load generator allocates per request as runseald does; mimalloc keeps its share of the
/// two cores small, the same for every server it drives (runseald and etcd alike).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runseal-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole program; `main` only reports the error.
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        BenchCommand::Load(args) => load::main(args),
        BenchCommand::Rusage(args) => rusage::main(args),
        command => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                match command {
                    BenchCommand::Start(a) => start::run(a).await,
                    BenchCommand::Storm(a) => storm::run(a).await,
                    BenchCommand::Throughput(a) => throughput::run(a).await,
                    BenchCommand::Memory(a) => memory::run(a).await,
                    BenchCommand::Peers(a) => peers::run(a).await,
                    BenchCommand::Load(_) | BenchCommand::Rusage(_) => {
                        unreachable!("handled above")
                    }
                }
            })
        }
    }
}

/// Options every orchestrating subcommand shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Where runseald, runseal-agent and runseal-bench (release builds) are.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Directory with ca.pem, server.pem, server.key (bench/run.sh makes them with openssl).
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Scratch directory (data dirs, sockets, logs); default: a temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// JSON file to write the results to.
    #[arg(long)]
    pub out: PathBuf,
    /// Fewer runs and shorter load phases (for development; the numbers are noisier).
    #[arg(long)]
    pub quick: bool,
}

impl Common {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A scratch directory that lives as long as the returned guard.
    pub fn scratch(&self, name: &str) -> anyhow::Result<Scratch> {
        match &self.work_dir {
            Some(dir) => {
                let path = dir.join(name);
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path)?;
                // Absolute: some tools (pgbench) run in another directory.
                let path = path.canonicalize()?;
                Ok(Scratch { path, _tmp: None })
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("runseal-bench-{name}-"))
                    .tempdir()?;
                Ok(Scratch {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                })
            }
        }
    }

    pub fn tls_files(&self) -> anyhow::Result<TlsFiles> {
        let dir = self
            .tls_dir
            .as_ref()
            .context("--tls-dir is required (bench/run.sh generates it)")?;
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        for f in [&files.ca, &files.cert, &files.key] {
            if !f.exists() {
                bail!("{} is missing", f.display());
            }
        }
        Ok(files)
    }
}

pub struct Scratch {
    pub path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `value` as pretty JSON to `path` (creating its directory).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("runseal-bench: wrote {}", path.display());
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound and released; the race is acceptable on a bench host).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How to start one runseald.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub tcp_port: Option<u16>,
    pub unix: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub database_url: Option<String>,
    pub log: PathBuf,
}

/// A runseald process started for a benchmark; stopped (SIGTERM) on drop.
pub struct Daemon {
    child: Child,
    pub opts: DaemonOptions,
}

impl Daemon {
    pub fn start(opts: DaemonOptions) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.log)?;
        // Throughput fetches with one token of 1,000,000 uses: above the server's default cap
        // (runner_tokens.max_uses = 1000), so the benchmark's servers raise it.
        let config = opts.log.with_extension("toml");
        std::fs::write(&config, "[runner_tokens]\nmax_uses = 1000000\n")?;
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("serve").arg("--data-dir").arg(&opts.data_dir);
        cmd.arg("--config").arg(&config);
        if let Some(port) = opts.tcp_port {
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        if let Some(path) = &opts.unix {
            cmd.arg("--unix").arg(path);
        }
        if let Some(tls) = &opts.tls {
            cmd.arg("--tls-cert").arg(&tls.cert);
            cmd.arg("--tls-key").arg(&tls.key);
        }
        if let Some(url) = &opts.database_url {
            cmd.env("RUNSEALD_DATABASE_URL", url);
        } else {
            cmd.env_remove("RUNSEALD_DATABASE_URL");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", opts.bin.display()))?;
        let mut daemon = Self { child, opts };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "runseald exited during start ({status}); see {}",
                    self.opts.log.display()
                );
            }
            let tcp_ok = self
                .opts
                .tcp_port
                .is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok());
            let unix_ok = self
                .opts
                .unix
                .as_ref()
                .is_none_or(|p| std::os::unix::net::UnixStream::connect(p).is_ok());
            let key_ok = self.opts.data_dir.join("admin.key").exists();
            if tcp_ok && unix_ok && key_ok {
                return Ok(());
            }
            if Instant::now() > until {
                bail!(
                    "runseald did not start listening within 30 s; see {}",
                    self.opts.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The plaintext or TLS address of the TCP listener.
    pub fn tcp_addr(&self) -> Option<String> {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.opts
            .tcp_port
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
    }

    pub fn unix_addr(&self) -> Option<String> {
        self.opts
            .unix
            .as_ref()
            .map(|p| format!("unix:{}", p.display()))
    }

    /// The admin key written on first start.
    pub fn admin_key(&self) -> anyhow::Result<Credential> {
        read_credential(&self.opts.data_dir.join("admin.key"))
    }

    /// An admin client on the TCP (else Unix) listener.
    pub async fn admin(&self) -> anyhow::Result<Client> {
        let addr = self
            .tcp_addr()
            .or_else(|| self.unix_addr())
            .context("runseald has no listener")?;
        let mut opts = ConnectOptions::new(addr, self.admin_key()?);
        opts.ca_cert = self.opts.tls.as_ref().map(|t| t.ca.clone());
        Ok(Client::connect_with(opts).await?)
    }

    /// SIGTERM, then wait for the graceful shutdown.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(10);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > until {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

pub fn read_credential(path: &Path) -> anyhow::Result<Credential> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    Credential::parse(text.trim()).map_err(|_| anyhow::anyhow!("{}: malformed", path.display()))
}

/// Writes a credential to a 0600 file (the load generator reads it from there, never argv).
pub fn write_credential(path: &Path, cred: &Credential) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(cred.to_line().as_bytes())?;
    Ok(())
}

/// The name of secret `i` of a benchmark environment.
pub fn secret_name(i: usize) -> String {
    format!("BENCH_SECRET_{i:04}")
}

/// Filler of a realistic size (40 bytes, like an API key); not a secret, but treated as one.
pub fn secret_value(i: usize) -> SecretBytes {
    SecretBytes::new(format!("bench-value-{i:06}-abcdefghijklmnopqrstuv").into_bytes())
}

/// Creates `env` (if missing) holding exactly secrets 0..n.
pub async fn seed_environment(client: &Client, env: &str, n: usize) -> anyhow::Result<()> {
    if !client
        .environments()
        .list()
        .await?
        .iter()
        .any(|e| e.name == env)
    {
        client.environments().create(env).await?;
    }
    let secrets = (0..n).map(|i| (secret_name(i), secret_value(i))).collect();
    client.secrets().set_many(env, secrets).await?;
    Ok(())
}

/// Mints `count` runner tokens for `env`, each good for `uses` snapshots.
pub async fn mint_tokens(
    client: &Client,
    env: &str,
    count: usize,
    uses: u32,
) -> anyhow::Result<Vec<Credential>> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let batch = (count - out.len()).min(10_000) as u32;
        let tokens = client
            .runners()
            .issue(
                env,
                runseal::client::IssueOptions {
                    count: batch,
                    uses,
                    ttl: Some(Duration::from_secs(3600)),
                    ..Default::default()
                },
            )
            .await?;
        out.extend(tokens.into_iter().map(|t| t.token));
    }
    Ok(out)
}

/// A line on stderr so a long run shows progress.
pub fn progress(what: impl std::fmt::Display) {
    eprintln!("runseal-bench: {what}");
}
