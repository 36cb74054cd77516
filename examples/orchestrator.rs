//! An orchestrator's scale-up, end to end: mint N runner tokens in one call, start N agents with
//! bounded parallelism, each with its own token, and report how long each took from spawn to
//! the app's first instruction (exec of the app done).
//!
//! ```sh
//! cargo run --example orchestrator -- --runners 20
//! cargo run --release --example orchestrator -- --runners 1000 --parallel 32 \
//!     --agent target/release/runseal-agent             # the real agent binary
//! cargo run --example orchestrator -- --runners 50 --addr http://127.0.0.1:7443 \
//!     --key-file runseal-data/admin.key                 # against a running runseald
//! cargo run --example orchestrator -- --runners 100 --json \
//!     --addr http://127.0.0.1:7443,http://127.0.0.1:7444 --key-file admin.key  # two replicas
//! ```
//!
//! `--addr` may list several replicas, comma-separated: the orchestrator talks to the first, and
//! hands the whole list to each agent (as `RUNSEAL_ADDR`), which picks one at random. `--json`
//! prints the summary as one JSON object (what `runseal-bench storm` reads).
//!
//! `--floor` measures the floor of the same storm: the same N runners, the same parallelism and
//! the same spawn and measurement code, but each runner is a bare
//! `/usr/bin/env NAME=VALUE … <probe>` with the same variables (the probe's secret among them):
//! no agent, no token, no server call (and no server is needed).
//!
//! Without `--addr` it runs its own runseald in-process on a temporary SQLite data dir. Without
//! `--agent` it is its own agent (it re-runs itself in agent mode), so no other binary is needed.
//! The app each runner execs is this program in probe mode: it checks that its secret arrived
//! and prints the time it started.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use runseal::auth::Credential;
use runseal::client::{Client, IssueOptions};
use runseal::secret::SecretBytes;

#[derive(Debug, Parser)]
struct Args {
    /// How many runners to start.
    #[arg(long, default_value_t = 20)]
    runners: u32,
    /// How many agents run at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// How many secrets the environment holds.
    #[arg(long, default_value_t = 10)]
    secrets: u32,
    /// A running runseald, or several replicas comma-separated (else one is started in-process).
    #[arg(long)]
    addr: Option<String>,
    /// Key with admin scope (with --addr).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Environment to use (created if missing).
    #[arg(long, default_value = "orchestrator-demo")]
    env: String,
    /// The runseal-agent binary (else this program acts as the agent).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Print one line per runner.
    #[arg(long)]
    verbose: bool,
    /// Print the summary as one JSON object on stdout (and nothing else there).
    #[arg(long)]
    json: bool,
    /// The floor: start `/usr/bin/env NAME=VALUE … <probe>` instead of agents (no server).
    #[arg(long)]
    floor: bool,
}

const PROBE_SECRET: &str = "ORCHESTRATOR_PROBE";

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        // Agent mode: `orchestrator --as-agent [agent options] -- COMMAND…`.
        Some("--as-agent") => {
            let agent_argv = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned());
            let args = match runseal::agent::parse_args_from(agent_argv) {
                Ok(a) => a,
                Err(code) => return code,
            };
            return runseal::agent::run(args).report();
        }
        // Probe mode: the app. It prints when it started, and fails without its secret.
        Some("--probe") => {
            let started = now_ns();
            let expected = argv.get(2).and_then(|s| s.to_str()).unwrap_or_default();
            let got = std::env::var(PROBE_SECRET).unwrap_or_default();
            if got != expected || std::env::var("RUNSEAL_TOKEN").is_ok() {
                eprintln!("probe: the secret did not arrive, or the token leaked");
                return ExitCode::FAILURE;
            }
            println!("{started}");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match rt.block_on(orchestrate(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("orchestrator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn orchestrate(args: Args) -> anyhow::Result<bool> {
    let probe_value = format!("probe-{}", now_ns());
    let mut secrets: Vec<(String, String)> = (0..args.secrets.saturating_sub(1))
        .map(|i| (format!("SECRET_{i}"), format!("value-{i}")))
        .collect();
    secrets.push((PROBE_SECRET.into(), probe_value.clone()));
    if args.floor {
        // The same variables as the agents' snapshot, given to env as arguments.
        let assignments: Vec<String> = secrets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let runners = (0..args.runners).map(|_| Runner::Floor(assignments.clone()));
        return start_runners(&args, runners, &probe_value, "", None).await;
    }
    let _tmp;
    let (addr, key) = match &args.addr {
        Some(addr) => {
            let path = args
                .key_file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--addr needs --key-file"))?;
            let key = Credential::parse(&std::fs::read_to_string(path)?)?;
            (addr.clone(), key)
        }
        None => {
            let dir = tempfile::tempdir()?;
            let (addr, key) = start_server(dir.path()).await?;
            _tmp = dir;
            (addr, key)
        }
    };
    // Admin calls go to the first replica; agents get the whole list.
    let first = addr
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let client = Client::connect(&first, key).await?;
    if !client
        .environments()
        .list()
        .await?
        .iter()
        .any(|e| e.name == args.env)
    {
        client.environments().create(&args.env).await?;
    }
    let secrets = secrets
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::new(v.into_bytes())))
        .collect();
    client.secrets().set_many(&args.env, secrets).await?;

    let minted = Instant::now();
    let tokens = client
        .runners()
        .issue(
            &args.env,
            IssueOptions {
                count: args.runners,
                ..Default::default()
            },
        )
        .await?;
    let mint_ms = minted.elapsed().as_secs_f64() * 1e3;
    if !args.json {
        println!(
            "minted {} runner tokens in one call ({mint_ms:.1} ms)",
            tokens.len()
        );
    }

    let runners = tokens.into_iter().map(|t| Runner::Agent(t.token));
    start_runners(&args, runners, &probe_value, &addr, Some(mint_ms)).await
}

/// What one runner is: an agent with its own token, or the floor's bare env.
enum Runner {
    Agent(Credential),
    Floor(Vec<String>),
}

/// Starts the runners, at most `--parallel` at once, and reports (agents and floor alike).
async fn start_runners(
    args: &Args,
    runners: impl Iterator<Item = Runner>,
    probe_value: &str,
    addr: &str,
    mint_ms: Option<f64>,
) -> anyhow::Result<bool> {
    let me = std::env::current_exe()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, runner) in runners.enumerate() {
        let limit = limit.clone();
        let mut cmd = match runner {
            Runner::Agent(token) => {
                let mut c = match &args.agent {
                    Some(agent) => Command::new(agent),
                    None => {
                        let mut c = Command::new(&me);
                        c.arg("--as-agent");
                        c
                    }
                };
                c.args(["--deadline", "30s", "--"])
                    .arg(&me)
                    .args(["--probe", probe_value])
                    .env("RUNSEAL_ADDR", addr)
                    .env("RUNSEAL_TOKEN", token.to_line().as_str())
                    .env("RUNSEAL_RUNNER_ID", format!("demo-{i}"));
                c
            }
            Runner::Floor(assignments) => {
                let mut c = Command::new("/usr/bin/env");
                c.args(&assignments)
                    .arg(&me)
                    .args(["--probe", probe_value])
                    .env_remove("RUNSEAL_TOKEN");
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let spawned = now_ns();
            let out = tokio::process::Command::from(cmd).output().await;
            (i, spawned, out)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (i, spawned, out) = task.await?;
        match out {
            Ok(out) if out.status.success() => {
                let at: u128 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(spawned);
                let ms = at.saturating_sub(spawned) as f64 / 1e6;
                latencies.push(ms);
                if args.verbose {
                    println!("runner demo-{i}: reached exec in {ms:.2} ms");
                }
            }
            Ok(out) => {
                failures += 1;
                eprintln!(
                    "runner demo-{i} failed ({:?}): {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Err(e) => {
                failures += 1;
                eprintln!("runner demo-{i} could not be spawned: {e}");
            }
        }
    }
    let total = started.elapsed();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let rate = latencies.len() as f64 / total.as_secs_f64().max(f64::EPSILON);
    if args.json {
        let summary = serde_json::json!({
            "runners": args.runners,
            "parallel": args.parallel,
            "secrets": args.secrets,
            "mode": if args.floor { "floor" } else { "agent" },
            "replicas": addr.split(',').filter(|a| !a.trim().is_empty()).count(),
            "started": latencies.len(),
            "failed": failures,
            "mint_ms": mint_ms,
            "seconds": total.as_secs_f64(),
            "starts_per_s": rate,
            "spawn_to_exec_ms": {
                "p50": pct(0.5),
                "p99": pct(0.99),
                "max": pct(1.0),
            },
        });
        println!("{summary}");
    } else {
        if args.floor {
            print!("floor (bare env, no agent): ");
        }
        println!(
            "{} runners started, {failures} failed, in {:.1} ms ({rate:.0} starts/s); spawn to exec: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latencies.len(),
            total.as_secs_f64() * 1e3,
            pct(0.5),
            pct(0.99),
            pct(1.0),
        );
    }
    Ok(failures == 0)
}

/// runseald in this process, on a fresh SQLite data dir, on 127.0.0.1:0.
async fn start_server(dir: &std::path::Path) -> anyhow::Result<(String, Credential)> {
    use runseal::datadir::DataDir;
    use runseal::grpc::{self, Listener};
    use runseal::names::{Limits, NamePolicy};
    use runseal::service::Service;
    let data = DataDir::new(dir.join("data"), None);
    let opened = data.open_or_init().await?;
    let key = opened.new_admin.expect("a new data dir has an admin key");
    let service = Arc::new(Service::new(
        opened.store,
        opened.sealer,
        NamePolicy::default(),
        Limits::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    let routes = grpc::routes(service).await;
    tokio::spawn(async move {
        let _ = grpc::serve(
            routes,
            vec![Listener::Tcp(listener)],
            std::future::pending(),
        )
        .await;
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok((addr, key))
}
