//! Snapshot throughput of one runseald (SQLite, the default store): the load generator in a
//! separate process fetches snapshots of 10, 50 and 500 secrets, warm and cold, over plaintext
//! and TLS, plus a concurrency sweep (50 secrets) for the chart beside etcd. Every fetch is a
//! real runner start on the server: credential check, sealed rows, opening every value, and the
//! durable record of the start (a use taken from a runner token).

use serde::Serialize;

use super::load::{self, LoadResult, Mode};
use super::{progress, Common, Daemon, DaemonOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds measured per point (default 3, --quick 1).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Concurrency of the per-size table.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub server: &'static str,
    pub transport: &'static str,
    pub secrets: usize,
    pub result: LoadResult,
}

#[derive(Debug, Serialize)]
pub struct ThroughputResults {
    pub duration_s: f64,
    pub table_concurrency: usize,
    /// Points of the per-size table.
    pub table: Vec<Point>,
    /// The concurrency sweep (plaintext, 50 secrets).
    pub sweep: Vec<Point>,
}

pub const SWEEP: &[usize] = &[1, 4, 16, 64, 256];
pub const SWEEP_QUICK: &[usize] = &[1, 16, 256];

/// Arguments of one load generator run.
pub struct LoadSpec<'a> {
    pub addr: &'a str,
    pub ca: Option<&'a std::path::Path>,
    pub mode: Mode,
    pub concurrency: usize,
    pub duration: f64,
    pub server_pid: u32,
    pub extra: Vec<String>,
}

impl LoadSpec<'_> {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--addr".into(),
            self.addr.into(),
            "--mode".into(),
            match self.mode {
                Mode::Warm => "warm",
                Mode::Cold => "cold",
            }
            .into(),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--connections".into(),
            self.concurrency.clamp(1, 4).to_string(),
            "--duration".into(),
            self.duration.to_string(),
            "--warmup".into(),
            (self.duration / 4.0).clamp(0.3, 1.0).to_string(),
            "--server-pid".into(),
            self.server_pid.to_string(),
        ];
        if let Some(ca) = self.ca {
            a.push("--ca-cert".into());
            a.push(ca.display().to_string());
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// Runs the load generator (blocking, in its own process).
pub async fn drive(bench_bin: &std::path::Path, args: Vec<String>) -> anyhow::Result<LoadResult> {
    let bin = bench_bin.to_path_buf();
    tokio::task::spawn_blocking(move || load::spawn(&bin, &args)).await?
}

pub fn describe(r: &LoadResult) -> String {
    format!(
        "{:.0}/s p50 {:.2} ms p99 {:.2} ms, errors {}, cpu server {:.0}% generator {:.0}%",
        r.rate,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.errors,
        r.server_cpu_pct.unwrap_or(f64::NAN),
        r.generator_cpu_pct
    )
}

pub async fn run(args: ThroughputArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let duration = args
        .duration
        .unwrap_or(if common.quick { 1.0 } else { 3.0 });
    let sweep = if common.quick { SWEEP_QUICK } else { SWEEP };
    let scratch = common.scratch("throughput")?;
    let tls = common.tls_files()?;
    let bench = common.bin("runseal-bench");
    let data_dir = scratch.path.join("data");
    let log = scratch.path.join("runseald.log");
    let sizes = [10usize, 50, 500];
    let mut table = Vec::new();
    let mut sweep_points = Vec::new();

    for transport in ["plaintext", "TLS"] {
        let is_tls = transport == "TLS";
        let daemon = Daemon::start(DaemonOptions {
            bin: common.bin("runseald"),
            data_dir: data_dir.clone(),
            tcp_port: Some(super::free_port()?),
            unix: None,
            tls: is_tls.then(|| tls.clone()),
            database_url: None,
            log: log.clone(),
        })?;
        let admin = daemon.admin().await?;
        let addr = daemon.tcp_addr().expect("tcp");
        for &n in &sizes {
            super::seed_environment(&admin, &format!("tp-{n}"), n).await?;
        }
        // One many-use runner token per run: every fetch takes a use, like a runner start.
        let cred_file = scratch.path.join("token");
        let one = |n: usize, mode: Mode, c: usize| {
            let admin = admin.clone();
            let cred_file = cred_file.clone();
            let addr = addr.clone();
            let ca = is_tls.then(|| tls.ca.clone());
            let bench = bench.clone();
            let pid = daemon.pid();
            async move {
                let token = super::mint_tokens(&admin, &format!("tp-{n}"), 1, 1_000_000).await?;
                super::write_credential(&cred_file, &token[0])?;
                let spec = LoadSpec {
                    addr: &addr,
                    ca: ca.as_deref(),
                    mode,
                    concurrency: c,
                    duration,
                    server_pid: pid,
                    extra: vec![
                        "--credential-file".into(),
                        cred_file.display().to_string(),
                        "--expect".into(),
                        n.to_string(),
                    ],
                };
                let r = drive(&bench, spec.args()).await?;
                progress(format!(
                    "throughput: {transport} {n} secrets {mode:?} c={c}: {}",
                    describe(&r)
                ));
                anyhow::Ok(r)
            }
        };
        for &n in &sizes {
            for mode in [Mode::Warm, Mode::Cold] {
                let result = one(n, mode, args.concurrency).await?;
                table.push(Point {
                    server: "runseald",
                    transport,
                    secrets: n,
                    result,
                });
            }
        }
        if !is_tls {
            for mode in [Mode::Warm, Mode::Cold] {
                for &c in sweep {
                    let result = one(50, mode, c).await?;
                    sweep_points.push(Point {
                        server: "runseald",
                        transport,
                        secrets: 50,
                        result,
                    });
                }
            }
        }
        daemon.stop();
    }
    super::write_json(
        &common.out,
        &ThroughputResults {
            duration_s: duration,
            table_concurrency: args.concurrency,
            table,
            sweep: sweep_points,
        },
    )
}
