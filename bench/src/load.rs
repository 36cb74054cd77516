//! The load generator: a process of its own that fetches snapshots from runseald (or does the
//! equivalent prefix read on etcd) with a fixed number of concurrent requests, warm (over K
//! reused connections) or cold (a new connection, and TLS handshake, per fetch, as every new
//! runner does). It prints one JSON object: rate, latency percentiles, its own CPU and, given
//! `--server-pid`, the server's CPU over the same measured window.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::procfs;
use super::stats::{summarize, Summary};
use runseal::auth::Credential;
use runseal::client::{connect_channel, Client};

pub mod etcd {
    //! etcd's KV API (the subset in `proto/etcd/kv.proto`).
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Runseal,
    Etcd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// K connections opened once and reused.
    Warm,
    /// A new connection per fetch.
    Cold,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "runseal")]
    pub target: Target,
    /// http://, https:// or unix: address of the server.
    #[arg(long)]
    pub addr: String,
    /// CA to verify an https:// server.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// runseal: file holding the runner token or snapshot key to fetch with.
    #[arg(long)]
    pub credential_file: Option<PathBuf>,
    /// runseal: environments to fetch, round-robin (empty: the credential's).
    #[arg(long, value_delimiter = ',')]
    pub envs: Vec<String>,
    /// etcd: the key prefix to read.
    #[arg(long, default_value = "/bench/")]
    pub prefix: String,
    /// Secrets (or keys) each answer must hold; a different count is an error.
    #[arg(long)]
    pub expect: Option<usize>,
    #[arg(long, value_enum, default_value = "warm")]
    pub mode: Mode,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Warm mode: connections the requests share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Also report this process's CPU over the measured window (the server's).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// With --server-pid: add the CPU of its reaped children (PostgreSQL's backends).
    #[arg(long)]
    pub server_children: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub target: Target,
    pub mode: Mode,
    pub tls: bool,
    pub concurrency: usize,
    pub connections: usize,
    pub ops: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub rate: f64,
    pub latency: Summary,
    /// CPU seconds of the generator over the window, and as % of one core.
    pub generator_cpu_s: f64,
    pub generator_cpu_pct: f64,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_pct: Option<f64>,
}

pub fn main(args: LoadArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(generate(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// One kind of request.
#[derive(Clone)]
enum Op {
    Runseal {
        cred: Arc<Credential>,
        envs: Arc<Vec<String>>,
        ca_cert: Option<PathBuf>,
    },
    Etcd {
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
}

impl Op {
    async fn connect(&self, addr: &str) -> anyhow::Result<Channel> {
        match self {
            Op::Runseal { ca_cert, .. } => {
                Ok(connect_channel(addr, ca_cert.as_ref(), None, Duration::from_secs(10)).await?)
            }
            Op::Etcd { .. } => Ok(Endpoint::from_shared(addr.to_string())?
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(10))
                .connect()
                .await?),
        }
    }

    /// One fetch; returns how many values came back.
    async fn call(&self, channel: Channel, addr: &str, i: usize) -> anyhow::Result<usize> {
        match self {
            Op::Runseal { cred, envs, .. } => {
                let env = if envs.is_empty() {
                    ""
                } else {
                    envs[i % envs.len()].as_str()
                };
                let snap = Client::from_channel(channel, cred, addr)
                    .runners()
                    .snapshot(env, "", &[])
                    .await?;
                Ok(snap.secrets.len())
            }
            Op::Etcd { key, range_end } => {
                let res = etcd::kv_client::KvClient::new(channel)
                    .range(etcd::RangeRequest {
                        key: key.clone(),
                        range_end: range_end.clone(),
                        ..Default::default()
                    })
                    .await?;
                Ok(res.into_inner().kvs.len())
            }
        }
    }
}

/// The end of an etcd prefix range: the prefix with its last byte incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub async fn generate(args: LoadArgs) -> anyhow::Result<LoadResult> {
    if args.concurrency == 0 || args.duration <= 0.0 {
        bail!("--concurrency and --duration must be positive");
    }
    let op = match args.target {
        Target::Runseal => {
            let path = args
                .credential_file
                .as_ref()
                .context("--credential-file is required for runseal")?;
            Op::Runseal {
                cred: Arc::new(super::read_credential(path)?),
                envs: Arc::new(args.envs.clone()),
                ca_cert: args.ca_cert.clone(),
            }
        }
        Target::Etcd => Op::Etcd {
            key: args.prefix.as_bytes().to_vec(),
            range_end: prefix_end(args.prefix.as_bytes()),
        },
    };
    let connections = match args.mode {
        Mode::Warm => args.connections.clamp(1, args.concurrency),
        Mode::Cold => 0,
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(op.connect(&args.addr).await?);
    }
    // A first call proves the setup before the clock starts.
    let probe = match channels.first() {
        Some(c) => op.call(c.clone(), &args.addr, 0).await,
        None => {
            let c = op.connect(&args.addr).await?;
            op.call(c, &args.addr, 0).await
        }
    }
    .context("the first request failed")?;
    if let Some(n) = args.expect {
        if probe != n {
            bail!("the first answer held {probe} values, not {n}");
        }
    }

    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency {
        let op = op.clone();
        let addr = args.addr.clone();
        let channel = (!channels.is_empty()).then(|| channels[w % channels.len()].clone());
        let stop = stop.clone();
        let expect = args.expect;
        workers.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let res = async {
                    let ch = match &channel {
                        Some(c) => c.clone(),
                        None => op.connect(&addr).await?,
                    };
                    op.call(ch, &addr, i).await
                }
                .await;
                let t1 = Instant::now();
                i += 1;
                if t1 < window_start || t0 > window_end {
                    continue;
                }
                match res {
                    Ok(n) if expect.is_none_or(|e| e == n) => {
                        lat.push((t1 - t0).as_secs_f64() * 1e3)
                    }
                    Ok(n) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("answer held {n} values"));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    tokio::time::sleep_until(window_start.into()).await;
    let cpu0 = procfs::own_cpu_seconds();
    let server0 = args
        .server_pid
        .map(|p| procfs::cpu_seconds(p, args.server_children))
        .transpose()?;
    tokio::time::sleep_until(window_end.into()).await;
    let cpu1 = procfs::own_cpu_seconds();
    let server1 = args
        .server_pid
        .map(|p| procfs::cpu_seconds(p, args.server_children))
        .transpose()?;
    let wall = (Instant::now() - window_start).as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(r) = workers.join_next().await {
        let (l, e, f) = r?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let ops = lat.len();
    let seconds = args.duration;
    let server_cpu_s = match (server0, server1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(LoadResult {
        target: args.target,
        mode: args.mode,
        tls: args.addr.starts_with("https://"),
        concurrency: args.concurrency,
        connections,
        ops,
        errors,
        first_error,
        seconds,
        rate: ops as f64 / seconds,
        latency: summarize(lat),
        generator_cpu_s: cpu1 - cpu0,
        generator_cpu_pct: (cpu1 - cpu0) / wall * 100.0,
        server_cpu_s,
        server_cpu_pct: server_cpu_s.map(|s| s / wall * 100.0),
    })
}

/// Runs `runseal-bench load` as a separate process and parses its answer.
pub fn spawn(bench_bin: &std::path::Path, args: &[String]) -> anyhow::Result<LoadResult> {
    let out = std::process::Command::new(bench_bin)
        .arg("load")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bench_bin.display()))?;
    if !out.status.success() {
        bail!(
            "load generator failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("unreadable load generator output: {line}"))?;
    LoadResult::from_json(&result)
}

impl LoadResult {
    fn from_json(v: &serde_json::Value) -> anyhow::Result<Self> {
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let u = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0) as usize;
        let lat = v.get("latency").context("no latency")?;
        let lf = |k: &str| lat.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
        Ok(Self {
            target: if v["target"] == "etcd" {
                Target::Etcd
            } else {
                Target::Runseal
            },
            mode: if v["mode"] == "cold" {
                Mode::Cold
            } else {
                Mode::Warm
            },
            tls: v["tls"].as_bool().unwrap_or(false),
            concurrency: u("concurrency"),
            connections: u("connections"),
            ops: u("ops"),
            errors: u("errors"),
            first_error: v["first_error"].as_str().map(str::to_string),
            seconds: f("seconds").unwrap_or(f64::NAN),
            rate: f("rate").unwrap_or(f64::NAN),
            latency: Summary {
                n: lat.get("n").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
                mean_ms: lf("mean_ms"),
                min_ms: lf("min_ms"),
                p50_ms: lf("p50_ms"),
                p99_ms: lf("p99_ms"),
                max_ms: lf("max_ms"),
            },
            generator_cpu_s: f("generator_cpu_s").unwrap_or(f64::NAN),
            generator_cpu_pct: f("generator_cpu_pct").unwrap_or(f64::NAN),
            server_cpu_s: f("server_cpu_s"),
            server_cpu_pct: f("server_cpu_pct"),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_ends() {
        assert_eq!(super::prefix_end(b"/bench/"), b"/bench0".to_vec());
        assert_eq!(super::prefix_end(b"a\xff"), b"b".to_vec());
    }
}
