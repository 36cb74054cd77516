//! The fault run (hardening item 8, the way etcd and Vault test themselves): a random workload
//! against real runseald processes while runseald is SIGKILLed at random moments and restarted
//! on the same data, then checks of what a user relies on.
//!
//! Workload (the real binaries: runseald, the `runseal` CLI, `runseal-agent`; the
//! `runseal::client` library for the fast calls): batched sets and unsets, environment creation
//! and deletion, runner-token minting and redemption (`runseal-agent -- /bin/sh -c env` and the
//! library's snapshot call), snapshots. Each worker owns a few environments, so each
//! environment's operations are sequential and its model is exact; the workers run
//! concurrently. Every call that returned success is recorded; a call cut off by a kill has an
//! unknown outcome and is resolved by reading the environment back once a server answers: it
//! must then be exactly the state before or exactly the state after the call.
//!
//! Checked at the end, after a final SIGKILL and restart: nothing acknowledged is lost (every
//! environment equals its model, values included); no single-use token served two runner ids
//! (agents' outputs, library answers and `runseal runners list`); every acknowledged start is
//! recorded; no plaintext value or token secret is in any file of the data dir (WAL included;
//! with PostgreSQL, the cluster's own files) or any log; `runseald verify` passes; each
//! environment's audit log holds its changes once each, in order, with the revision each
//! produced (`revision` in `runseal audit --output json`).
//!
//! SQLite: one runseald, killed and restarted several times. PostgreSQL: a private cluster the
//! test starts itself (initdb in a temp dir, Unix socket only, as tests/it/pg_outage.rs does; the
//! shared server on 5432 is never touched), two replicas on it, a random replica killed and
//! restarted at random moments, and the cluster itself restarted once.
//!
//! The seed is printed; `RUNSEAL_FAULT_SEED=N` replays the same workload and kill schedule (the
//! interleaving of calls and kills still depends on timing).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runseal::auth::Credential;
use runseal::client::{Client, ClientError, IssueOptions};
use runseal::secret::SecretBytes;
use serde_json::Value;
use tonic::Code;

use common::{all_files, ok, runseal, stderr, stdout, Daemon, AGENT, RUNSEALD};

/// Concurrent workers; each owns its environments.
const WORKERS: usize = 3;
/// Environments of each worker besides `main` (worker 0 also owns `main`).
const ENVS_PER_WORKER: usize = 2;
/// Secret names used in every environment: `FR_0..FR_9`.
const NAMES: usize = 10;
/// How long the workload and the kills run.
const WORKLOAD: Duration = Duration::from_secs(26);
/// Longest a single call may take before the run calls it hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a worker waits for some server to answer again.
const COME_BACK: Duration = Duration::from_secs(60);

// ----------------------------------------------------------------------------------------
// Seed, counters, outcomes

fn seed() -> u64 {
    match std::env::var("RUNSEAL_FAULT_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| {
            panic!("RUNSEAL_FAULT_SEED must be an unsigned integer, got {s:?}")
        }),
        Err(_) => rand::random(),
    }
}

#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    unknown: AtomicU64,
    unknown_applied: AtomicU64,
    refused_as_expected: AtomicU64,
    agents: AtomicU64,
    redemptions: AtomicU64,
    snapshots: AtomicU64,
    kills: AtomicU64,
    cluster_restarts: AtomicU64,
    checks: AtomicU64,
}

impl Counts {
    fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn summary(&self, label: &str, seed: u64, started: Instant) -> String {
        let counts = self;
        format!(
            "fault run ({label}, seed {seed}) in {:.1?}: {} operations acknowledged, {} cut off by \
             a fault ({} of those applied), {} redemptions ({} by runseal-agent, {} refused as they \
             must be), {} read-back snapshots; {} runseald kills, {} cluster restarts; {} \
             invariants checked",
            started.elapsed(),
            Counts::get(&counts.acked),
            Counts::get(&counts.unknown),
            Counts::get(&counts.unknown_applied),
            Counts::get(&counts.redemptions),
            Counts::get(&counts.agents),
            Counts::get(&counts.refused_as_expected),
            Counts::get(&counts.snapshots),
            Counts::get(&counts.kills),
            Counts::get(&counts.cluster_restarts),
            Counts::get(&counts.checks),
        )
    }

    /// One invariant checked (and held: a failing one panics or is recorded as a violation).
    fn check(&self) {
        Self::inc(&self.checks);
    }
}

/// What a call's result says about whether it took effect.
enum Outcome<T> {
    Done(T),
    /// The server answered with a refusal: nothing was applied.
    Refused(Code, String),
    /// The call was cut off (server killed, store unavailable): applied or not.
    Unknown,
}

async fn outcome<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Outcome<T> {
    let r = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {CALL_TIMEOUT:?}"));
    match r {
        Ok(v) => Outcome::Done(v),
        Err(e) => match e.code() {
            Some(
                c @ (Code::InvalidArgument
                | Code::NotFound
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::ResourceExhausted
                | Code::Unauthenticated
                | Code::OutOfRange
                | Code::DataLoss),
            ) => Outcome::Refused(c, e.to_string()),
            _ => Outcome::Unknown,
        },
    }
}

/// A served value as text; the run only sets ASCII values. The error names the secret, never
/// the bytes.
fn text_value(name: &str, value: &SecretBytes) -> String {
    String::from_utf8(value.expose().to_vec())
        .unwrap_or_else(|_| panic!("{name}: a value the run never set (not UTF-8)"))
}

fn random_value(rng: &mut StdRng) -> String {
    let len = rng.gen_range(24..48);
    rng.sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

// ----------------------------------------------------------------------------------------
// The model

/// An environment as a user would read it back.
#[derive(Clone, PartialEq, Eq, Default)]
struct EnvState {
    revision: u64,
    secrets: BTreeMap<String, String>,
}

/// How two states differ, in names and revisions only (values never reach test output).
fn describe_diff(expected: Option<&EnvState>, found: Option<&EnvState>) -> String {
    match (expected, found) {
        (None, None) => "both absent".into(),
        (Some(_), None) => "expected the environment, found none".into(),
        (None, Some(f)) => format!(
            "expected no environment, found one at revision {}",
            f.revision
        ),
        (Some(e), Some(f)) => {
            let missing: Vec<&String> = e
                .secrets
                .keys()
                .filter(|k| !f.secrets.contains_key(*k))
                .collect();
            let extra: Vec<&String> = f
                .secrets
                .keys()
                .filter(|k| !e.secrets.contains_key(*k))
                .collect();
            let differ: Vec<&String> = e
                .secrets
                .iter()
                .filter(|(k, v)| f.secrets.get(*k).is_some_and(|fv| fv != *v))
                .map(|(k, _)| k)
                .collect();
            format!(
                "revision expected {} found {}; missing {missing:?}; unexpected {extra:?}; other value in {differ:?}",
                e.revision, f.revision
            )
        }
    }
}

/// One change as its audit entry must show it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    revision: u64,
    action: String,
    names: Vec<String>,
}

struct EnvModel {
    name: String,
    state: Option<EnvState>,
    /// Changes of each incarnation (created .. deleted), in order.
    incarnations: Vec<Vec<Change>>,
}

impl EnvModel {
    fn incarnation(&self) -> usize {
        self.incarnations.len()
    }

    fn apply(&mut self, post: Option<EnvState>, change: Option<Change>) {
        match (&self.state, &post) {
            (None, Some(_)) => self.incarnations.push(Vec::new()),
            (Some(_), Some(_)) => {
                let c = change.expect("a change of an existing environment");
                self.incarnations.last_mut().unwrap().push(c);
            }
            _ => {}
        }
        self.state = post;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TokenState {
    Fresh,
    /// A redemption was cut off: used or not.
    Unknown,
    Served,
}

struct TokenRec {
    id: String,
    cred: Credential,
    env: String,
    incarnation: usize,
    state: TokenState,
    /// Every runner id it was presented with.
    attempts: Vec<String>,
    /// The runner ids it was served to (more than one is a violation).
    served: BTreeSet<String>,
}

/// Everything every worker saw and every value ever sent.
#[derive(Default)]
struct Record {
    values: Mutex<Vec<String>>,
    token_secrets: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    agent_logs: Mutex<Vec<String>>,
}

impl Record {
    fn violation(&self, v: String) {
        eprintln!("VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
}

// ----------------------------------------------------------------------------------------
// The servers

struct Replica {
    data: PathBuf,
    sock: PathBuf,
    /// PostgreSQL: the database URL (each process adds an `application_name` of its own).
    database_url: Option<String>,
    /// Processes started so far on this data dir.
    generation: u32,
    daemon: Option<Daemon>,
    logs: Vec<Arc<Mutex<String>>>,
}

impl Replica {
    fn new(data: PathBuf, sock: PathBuf, database_url: Option<String>) -> Self {
        Self {
            data,
            sock,
            database_url,
            generation: 0,
            daemon: None,
            logs: Vec::new(),
        }
    }

    /// How PostgreSQL names the sessions of the current process (`pg_stat_activity`).
    fn application_name(&self) -> String {
        format!(
            "fault-{}-{}",
            self.data.file_name().unwrap().to_string_lossy(),
            self.generation
        )
    }

    /// A fixed Unix socket, so clients and agents reach the restarted process at the same
    /// address.
    fn addr(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    fn start(&mut self) {
        assert!(self.daemon.is_none());
        self.generation += 1;
        let url = self
            .database_url
            .as_ref()
            .map(|u| format!("{u}&application_name={}", self.application_name()));
        let mut args: Vec<&str> = vec!["--unix", self.sock.to_str().unwrap()];
        if let Some(url) = &url {
            args.extend(["--database-url", url]);
        }
        let d = Daemon::start(&self.data, &args, &[]);
        self.logs.push(d.log.clone());
        self.daemon = Some(d);
    }

    /// SIGKILL; returns the application name of the killed process's database sessions.
    fn kill(&mut self) -> String {
        self.daemon.take().expect("a running replica").kill9();
        self.application_name()
    }

    fn terminate(&mut self) {
        let (clean, log) = self.daemon.take().expect("a running replica").terminate();
        assert!(clean, "runseald did not exit cleanly on SIGTERM:\n{log}");
    }
}

/// Stops the database the replicas share, waits the given time, and starts it again.
type RestartDatabase = Arc<dyn Fn(Duration) + Send + Sync>;

struct Fleet {
    replicas: Vec<Replica>,
    /// PostgreSQL: the private cluster, restarted once during the run.
    restart_database: Option<RestartDatabase>,
    /// PostgreSQL: where to watch a killed replica's sessions end.
    database_url: Option<String>,
}

impl Fleet {
    fn addrs(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::addr).collect()
    }
}

/// SIGKILLs a random replica at random moments and restarts it; with PostgreSQL, restarts the
/// cluster once, at a random one of those moments.
/// Faults in progress: a call cut off by a fault is resolved only once every fault begun so far
/// has settled, that is once nothing the killed process started can still take effect. A
/// SIGKILLed runseald on SQLite is settled when it is reaped; on PostgreSQL, a COMMIT it sent
/// just before it died may still complete, so it is settled when its sessions have ended.
#[derive(Default)]
struct Settle {
    begun: AtomicU64,
    settled: AtomicU64,
}

impl Settle {
    async fn wait(&self) {
        let begun = self.begun.load(Ordering::SeqCst);
        let deadline = Instant::now() + COME_BACK;
        while self.settled.load(Ordering::SeqCst) < begun {
            assert!(
                Instant::now() < deadline,
                "a fault did not settle within {COME_BACK:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits until PostgreSQL has no session named `application_name` left.
async fn sessions_ended(url: &str, application_name: &str) {
    use sqlx::Connection;
    let deadline = Instant::now() + COME_BACK;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the private cluster");
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(application_name)
                .fetch_one(&mut conn)
                .await
                .expect("query pg_stat_activity");
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} sessions of the killed {application_name} still open after {COME_BACK:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILLs a random replica at random moments and restarts it; with PostgreSQL, restarts the
/// cluster once, at a random one of those moments.
async fn killer(
    fleet: Arc<Mutex<Fleet>>,
    seed: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    settle: Arc<Settle>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b11_1e55);
    let n = fleet.lock().unwrap().replicas.len();
    let mut cluster_restart_at = rng.gen_range(2..5u32);
    let restart_database = fleet.lock().unwrap().restart_database.clone();
    let database_url = fleet.lock().unwrap().database_url.clone();
    let mut round = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1200..3000))).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        round += 1;
        let down = Duration::from_millis(rng.gen_range(0..400));
        settle.begun.fetch_add(1, Ordering::SeqCst);
        if let Some(restart) = restart_database
            .as_ref()
            .filter(|_| round == cluster_restart_at)
        {
            cluster_restart_at = 0;
            let restart = restart.clone();
            tokio::task::spawn_blocking(move || restart(down * 2))
                .await
                .unwrap();
            settle.settled.fetch_add(1, Ordering::SeqCst);
            Counts::inc(&counts.cluster_restarts);
            continue;
        }
        let i = rng.gen_range(0..n);
        let f = fleet.clone();
        let killed = tokio::task::spawn_blocking(move || f.lock().unwrap().replicas[i].kill())
            .await
            .unwrap();
        if let Some(url) = &database_url {
            sessions_ended(url, &killed).await;
        }
        settle.settled.fetch_add(1, Ordering::SeqCst);
        Counts::inc(&counts.kills);
        tokio::time::sleep(down).await;
        let f = fleet.clone();
        tokio::task::spawn_blocking(move || f.lock().unwrap().replicas[i].start())
            .await
            .unwrap();
    }
}

// ----------------------------------------------------------------------------------------
// A worker

/// Clients of one key to each replica, reconnected after a failure.
struct Conn {
    addrs: Vec<String>,
    key: Credential,
    cached: Vec<Option<Client>>,
    rng: StdRng,
}

impl Conn {
    fn new(addrs: &[String], key: Credential, seed: u64) -> Self {
        Self {
            addrs: addrs.to_vec(),
            key,
            cached: vec![None; addrs.len()],
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A client of a random replica that accepts connections (waits for one to come back).
    async fn get(&mut self) -> (usize, Client) {
        let deadline = Instant::now() + COME_BACK;
        let start = self.rng.gen_range(0..self.addrs.len());
        let mut attempt = 0;
        loop {
            let i = (start + attempt) % self.addrs.len();
            attempt += 1;
            if let Some(c) = &self.cached[i] {
                return (i, c.clone());
            }
            match Client::connect(&self.addrs[i], self.key.clone()).await {
                Ok(c) => {
                    self.cached[i] = Some(c.clone());
                    return (i, c);
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no runseald accepted connections at {:?} for {COME_BACK:?}: {e}",
                        self.addrs
                    );
                    if attempt % self.addrs.len() == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }

    fn forget(&mut self, i: usize) {
        self.cached[i] = None;
    }
}

struct Worker {
    w: usize,
    rng: StdRng,
    admin: Conn,
    checker: Conn,
    addrs: Vec<String>,
    envs: Vec<EnvModel>,
    tokens: Vec<TokenRec>,
    runner_seq: usize,
    counts: Arc<Counts>,
    record: Arc<Record>,
    settle: Arc<Settle>,
}

fn env_names(w: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..ENVS_PER_WORKER).map(|k| format!("fr{w}-{k}")).collect();
    if w == 0 {
        v.insert(0, "main".into());
    }
    v
}

/// A runner's answer, from the library or parsed from the agent's `env` output.
struct Served {
    environment: String,
    revision: u64,
    runner_id: String,
    secrets: BTreeMap<String, String>,
}

enum Redemption {
    Served(Served),
    Refused(String),
    /// The agent gave up within its deadline: the token may or may not be used.
    GaveUp(String),
}

impl Worker {
    /// Reads an environment back (existence and revision from the listing, values from a
    /// snapshot with the checker key); `None` while no server answers.
    async fn observe_once(&mut self, env: &str) -> Option<Option<EnvState>> {
        let (i, c) = self.admin.get().await;
        let listed = match outcome("listing environments", c.environments().list()).await {
            Outcome::Done(l) => l,
            Outcome::Refused(code, m) => panic!("listing environments refused: {code:?} {m}"),
            Outcome::Unknown => {
                self.admin.forget(i);
                return None;
            }
        };
        let listed_names: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
        let Some(e) = listed.into_iter().find(|e| e.name == env) else {
            return Some(None);
        };
        self.runner_seq += 1;
        let rid = format!("check-{}-{}", self.w, self.runner_seq);
        let (j, c) = self.checker.get().await;
        let snap = match outcome("a checker snapshot", c.runners().snapshot(env, &rid, &[])).await {
            Outcome::Done(s) => s,
            // Scopes name existing environments and end with a deleted one: the checker gets a
            // key for this worker's environments as they are now (only this worker creates or
            // deletes them), and reads again.
            Outcome::Refused(Code::PermissionDenied, _) => {
                let mut scopes: Vec<String> = self
                    .envs
                    .iter()
                    .map(|m| m.name.clone())
                    .filter(|n| n == env || listed_names.contains(n))
                    .map(|n| format!("snapshot:{n}"))
                    .collect();
                if scopes.is_empty() {
                    scopes.push(format!("snapshot:{env}"));
                }
                let (i, c) = self.admin.get().await;
                match outcome(
                    "a checker key",
                    c.keys().create(&scopes, "fault-run checker"),
                )
                .await
                {
                    Outcome::Done((_, key)) => {
                        self.checker = Conn::new(&self.addrs, key, self.rng.gen());
                    }
                    Outcome::Refused(code, m) => panic!("a checker key was refused: {code:?} {m}"),
                    Outcome::Unknown => self.admin.forget(i),
                }
                return None;
            }
            Outcome::Refused(code, m) => {
                panic!(
                    "a snapshot of {env} (listed at revision {}) was refused: {code:?} {m}",
                    e.revision
                )
            }
            Outcome::Unknown => {
                self.checker.forget(j);
                return None;
            }
        };
        Counts::inc(&self.counts.snapshots);
        assert_eq!(snap.environment, env);
        assert_eq!(
            snap.revision, e.revision,
            "{env}: the snapshot's revision differs from the listing's (nothing else writes it)"
        );
        self.counts.check();
        Some(Some(EnvState {
            revision: snap.revision,
            secrets: snap
                .secrets
                .iter()
                .map(|(n, v)| (n.clone(), text_value(n, v)))
                .collect(),
        }))
    }

    async fn observe(&mut self, env: &str) -> Option<EnvState> {
        let deadline = Instant::now() + COME_BACK;
        loop {
            if let Some(s) = self.observe_once(env).await {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{env} could not be read back for {COME_BACK:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// After a call with an unknown outcome: the environment must be exactly as before or
    /// exactly as after it. Applies it to the model when it took effect.
    async fn resolve(
        &mut self,
        k: usize,
        what: &str,
        post: Option<EnvState>,
        change: Option<Change>,
    ) {
        Counts::inc(&self.counts.unknown);
        let name = self.envs[k].name.clone();
        self.settle.wait().await;
        let found = self.observe(&name).await;
        let pre = self.envs[k].state.clone();
        self.counts.check();
        if found == pre {
            return;
        }
        if found == post {
            Counts::inc(&self.counts.unknown_applied);
            self.envs[k].apply(post, change);
            return;
        }
        panic!(
            "{name}: after {what} was cut off, the environment is neither as before ({}) nor as after ({})",
            describe_diff(pre.as_ref(), found.as_ref()),
            describe_diff(post.as_ref(), found.as_ref())
        );
    }

    fn existing(&self) -> Vec<usize> {
        (0..self.envs.len())
            .filter(|k| self.envs[*k].state.is_some())
            .collect()
    }

    fn pick_existing(&mut self) -> Option<usize> {
        let e = self.existing();
        (!e.is_empty()).then(|| e[self.rng.gen_range(0..e.len())])
    }

    async fn run(mut self, stop: Arc<AtomicBool>) -> Self {
        while !stop.load(Ordering::SeqCst) {
            let roll = self.rng.gen_range(0..100);
            let Some(k) = self.pick_existing() else {
                self.create().await;
                continue;
            };
            match roll {
                0..=37 => self.set(k).await,
                38..=47 => self.unset(k).await,
                48..=52 => self.create().await,
                53..=55 => self.delete().await,
                56..=65 => self.mint(k).await,
                66..=87 => self.redeem().await,
                _ => self.snapshot(k).await,
            }
        }
        self
    }

    async fn set(&mut self, k: usize) {
        let count = self.rng.gen_range(1..=5);
        let mut names: Vec<String> = rand::seq::index::sample(&mut self.rng, NAMES, count)
            .into_iter()
            .map(|i| format!("FR_{i}"))
            .collect();
        names.sort();
        let values: Vec<String> = names.iter().map(|_| random_value(&mut self.rng)).collect();
        self.record
            .values
            .lock()
            .unwrap()
            .extend(values.iter().cloned());
        let env = self.envs[k].name.clone();
        let mut post = self.envs[k].state.clone().unwrap();
        post.revision += 1;
        for (n, v) in names.iter().zip(&values) {
            post.secrets.insert(n.clone(), v.clone());
        }
        let change = Change {
            revision: post.revision,
            action: "secrets.set".into(),
            names: names.clone(),
        };
        let batch: Vec<(String, SecretBytes)> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.clone(), SecretBytes::new(v.clone().into_bytes())))
            .collect();
        let (i, c) = self.admin.get().await;
        match outcome("a batch set", c.secrets().set_many(&env, batch)).await {
            Outcome::Done(rev) => {
                Counts::inc(&self.counts.acked);
                assert_eq!(
                    rev, post.revision,
                    "{env}: a set acknowledged an unexpected revision"
                );
                self.counts.check();
                self.envs[k].apply(Some(post), Some(change));
            }
            Outcome::Refused(code, m) => {
                panic!("a set of {names:?} on {env} was refused: {code:?} {m}")
            }
            Outcome::Unknown => {
                self.admin.forget(i);
                self.resolve(k, "a batch set", Some(post), Some(change))
                    .await;
            }
        }
    }

    async fn unset(&mut self, k: usize) {
        let state = self.envs[k].state.clone().unwrap();
        if state.secrets.is_empty() {
            return self.set(k).await;
        }
        let names: Vec<&String> = state.secrets.keys().collect();
        let name = names[self.rng.gen_range(0..names.len())].clone();
        let env = self.envs[k].name.clone();
        let mut post = state.clone();
        post.revision += 1;
        post.secrets.remove(&name);
        let change = Change {
            revision: post.revision,
            action: "secrets.unset".into(),
            names: vec![name.clone()],
        };
        let (i, c) = self.admin.get().await;
        match outcome("an unset", c.secrets().unset(&name, &env)).await {
            Outcome::Done(rev) => {
                Counts::inc(&self.counts.acked);
                assert_eq!(
                    rev, post.revision,
                    "{env}: an unset acknowledged an unexpected revision"
                );
                self.counts.check();
                self.envs[k].apply(Some(post), Some(change));
            }
            Outcome::Refused(code, m) => panic!("unset {name} on {env} was refused: {code:?} {m}"),
            Outcome::Unknown => {
                self.admin.forget(i);
                self.resolve(k, "an unset", Some(post), Some(change)).await;
            }
        }
    }

    async fn create(&mut self) {
        let absent: Vec<usize> = (0..self.envs.len())
            .filter(|k| self.envs[*k].state.is_none())
            .collect();
        if absent.is_empty() {
            return;
        }
        let k = absent[self.rng.gen_range(0..absent.len())];
        let env = self.envs[k].name.clone();
        let (i, c) = self.admin.get().await;
        match outcome("an environment creation", c.environments().create(&env)).await {
            Outcome::Done(e) => {
                Counts::inc(&self.counts.acked);
                assert_eq!((e.name.as_str(), e.revision), (env.as_str(), 0));
                self.counts.check();
                self.envs[k].apply(Some(EnvState::default()), None);
            }
            Outcome::Refused(code, m) => panic!("creating {env} was refused: {code:?} {m}"),
            Outcome::Unknown => {
                self.admin.forget(i);
                self.resolve(
                    k,
                    "an environment creation",
                    Some(EnvState::default()),
                    None,
                )
                .await;
            }
        }
    }

    async fn delete(&mut self) {
        let deletable: Vec<usize> = self
            .existing()
            .into_iter()
            .filter(|k| self.envs[*k].name != "main")
            .collect();
        if deletable.is_empty() {
            return;
        }
        let k = deletable[self.rng.gen_range(0..deletable.len())];
        let env = self.envs[k].name.clone();
        let count = self.envs[k].state.as_ref().unwrap().secrets.len();
        let (i, c) = self.admin.get().await;
        match outcome(
            "an environment deletion",
            c.environments().delete(&env, true),
        )
        .await
        {
            Outcome::Done(deleted) => {
                Counts::inc(&self.counts.acked);
                assert_eq!(
                    deleted as usize, count,
                    "deleting {env} reported another secret count"
                );
                self.counts.check();
                self.envs[k].apply(None, None);
            }
            Outcome::Refused(code, m) => panic!("deleting {env} was refused: {code:?} {m}"),
            Outcome::Unknown => {
                self.admin.forget(i);
                self.resolve(k, "an environment deletion", None, None).await;
            }
        }
    }

    async fn mint(&mut self, k: usize) {
        let count = self.rng.gen_range(1..=3);
        let env = self.envs[k].name.clone();
        let (i, c) = self.admin.get().await;
        let opts = IssueOptions {
            count,
            uses: 1,
            ..Default::default()
        };
        match outcome("minting runner tokens", c.runners().issue(&env, opts)).await {
            Outcome::Done(tokens) => {
                Counts::inc(&self.counts.acked);
                assert_eq!(tokens.len(), count as usize);
                self.counts.check();
                for t in tokens {
                    self.record
                        .token_secrets
                        .lock()
                        .unwrap()
                        .push(t.token.expose_secret().to_string());
                    self.tokens.push(TokenRec {
                        id: t.token_id,
                        cred: t.token,
                        env: env.clone(),
                        incarnation: self.envs[k].incarnation(),
                        state: TokenState::Fresh,
                        attempts: Vec::new(),
                        served: BTreeSet::new(),
                    });
                }
            }
            Outcome::Refused(code, m) => {
                panic!("minting tokens for {env} was refused: {code:?} {m}")
            }
            // Tokens whose minting answer was lost are unknown to anyone: nothing to track.
            Outcome::Unknown => {
                Counts::inc(&self.counts.unknown);
                self.admin.forget(i);
            }
        }
    }

    /// The library's redemption, as the agent does it: one retry key for the start, every
    /// cut-off try retried until the server answers.
    async fn redeem_with_library(&mut self, t: usize, rid: &str) -> Redemption {
        let retry_key: [u8; 32] = self.rng.gen();
        let mut conn = Conn::new(&self.addrs, self.tokens[t].cred.clone(), self.rng.gen());
        let mut lost = false;
        let deadline = Instant::now() + COME_BACK;
        loop {
            let (i, c) = conn.get().await;
            let mut api = c.runners();
            let call = api.snapshot_with_retry_key("", rid, &[], &retry_key);
            match outcome("a runner's snapshot", call).await {
                Outcome::Done(s) => {
                    return Redemption::Served(Served {
                        environment: s.environment.clone(),
                        revision: s.revision,
                        runner_id: s.runner_id.clone(),
                        secrets: s
                            .secrets
                            .iter()
                            .map(|(n, v)| (n.clone(), text_value(n, v)))
                            .collect(),
                    })
                }
                Outcome::Refused(code, m) => {
                    if lost && self.tokens[t].state == TokenState::Fresh && self.token_alive(t) {
                        panic!(
                            "runner {rid}: the retry (same runner id and retry key) of a snapshot whose \
                             answer was lost was refused; the README promises it is served again: {code:?} {m}"
                        );
                    }
                    return Redemption::Refused(format!("{code:?} {m}"));
                }
                Outcome::Unknown => {
                    lost = true;
                    conn.forget(i);
                    assert!(
                        Instant::now() < deadline,
                        "runner {rid} got no answer for {COME_BACK:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The real agent: `runseal-agent -- /bin/sh -c env`, every replica in RUNSEAL_ADDR.
    async fn redeem_with_agent(&mut self, t: usize, rid: &str) -> Redemption {
        Counts::inc(&self.counts.agents);
        let token = self.tokens[t].cred.to_line();
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(AGENT)
                .args(["--deadline", "30s", "--", "/bin/sh", "-c", "env"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap())
                .env("RUNSEAL_ADDR", self.addrs.join(","))
                .env("RUNSEAL_TOKEN", token.as_str())
                .env("RUNSEAL_RUNNER_ID", rid)
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .expect("runseal-agent hung past its deadline")
        .expect("spawn runseal-agent");
        drop(token);
        let err = stderr(&out);
        self.record.agent_logs.lock().unwrap().push(err.clone());
        match out.status.code() {
            Some(0) => {
                // Never `expect` on these bytes: the error would print the values.
                let Ok(text) = String::from_utf8(out.stdout) else {
                    panic!("runner {rid}: the app's environment is not UTF-8");
                };
                let mut vars: BTreeMap<String, String> = BTreeMap::new();
                for line in text.lines() {
                    if let Some((n, v)) = line.split_once('=') {
                        vars.insert(n.to_string(), v.to_string());
                    }
                }
                let mut take = |n: &str| {
                    vars.remove(n)
                        .unwrap_or_else(|| panic!("runner {rid}: the app's environment has no {n}"))
                };
                let environment = take("RUNSEAL_ENVIRONMENT");
                let revision = take("RUNSEAL_SNAPSHOT_REVISION")
                    .parse()
                    .expect("a revision");
                let runner_id = take("RUNSEAL_RUNNER_ID");
                Redemption::Served(Served {
                    environment,
                    revision,
                    runner_id,
                    secrets: vars
                        .into_iter()
                        .filter(|(n, _)| n.starts_with("FR_"))
                        .collect(),
                })
            }
            Some(77) => Redemption::Refused(err),
            Some(69) => Redemption::GaveUp(err),
            other => panic!("runseal-agent for runner {rid} failed ({other:?}): {err}"),
        }
    }

    fn token_alive(&self, t: usize) -> bool {
        let tok = &self.tokens[t];
        let env = self.envs.iter().find(|e| e.name == tok.env).unwrap();
        env.state.is_some() && env.incarnation() == tok.incarnation
    }

    async fn redeem(&mut self) {
        // Mostly a token never presented; otherwise one presented before (it must refuse
        // another runner) or one of a deleted environment (it must refuse everyone).
        let fresh: Vec<usize> = (0..self.tokens.len())
            .filter(|t| self.tokens[*t].attempts.is_empty())
            .collect();
        let candidates: Vec<usize> = if !fresh.is_empty() && self.rng.gen_bool(0.7) {
            fresh
        } else {
            (0..self.tokens.len())
                .filter(|t| self.tokens[*t].attempts.len() < 3)
                .collect()
        };
        if candidates.is_empty() {
            return;
        }
        let t = candidates[self.rng.gen_range(0..candidates.len())];
        let agent = self.rng.gen_bool(0.35);
        self.redeem_token(t, agent).await;
    }

    /// Presents token `t` as a new runner and judges the answer against the model.
    async fn redeem_token(&mut self, t: usize, agent: bool) {
        self.runner_seq += 1;
        let rid = format!("fr{}-runner-{}", self.w, self.runner_seq);
        self.tokens[t].attempts.push(rid.clone());
        let alive = self.token_alive(t);
        let before = self.tokens[t].state;
        Counts::inc(&self.counts.redemptions);
        let r = if agent {
            self.redeem_with_agent(t, &rid).await
        } else {
            self.redeem_with_library(t, &rid).await
        };
        let id = self.tokens[t].id.clone();
        let env = self.tokens[t].env.clone();
        match r {
            Redemption::Served(s) => {
                self.counts.check();
                if let Some(other) = self.tokens[t].served.iter().next() {
                    self.record.violation(format!(
                        "single-use token {id} served runner {rid} after it had served runner {other}"
                    ));
                }
                if !alive {
                    self.record.violation(format!(
                        "token {id} of a deleted environment {env} served runner {rid}"
                    ));
                }
                assert_eq!(
                    s.runner_id, rid,
                    "token {id}: the snapshot names another runner"
                );
                assert_eq!(
                    s.environment, env,
                    "token {id}: the snapshot is of another environment"
                );
                self.counts.check();
                if alive {
                    let k = self.envs.iter().position(|e| e.name == env).unwrap();
                    let served = EnvState {
                        revision: s.revision,
                        secrets: s.secrets,
                    };
                    let model = self.envs[k].state.as_ref();
                    assert!(
                        model == Some(&served),
                        "runner {rid} of {env} started with other values than acknowledged: {}",
                        describe_diff(model, Some(&served))
                    );
                    self.counts.check();
                }
                self.tokens[t].served.insert(rid);
                self.tokens[t].state = TokenState::Served;
            }
            Redemption::Refused(why) => {
                self.counts.check();
                if before == TokenState::Fresh && alive {
                    panic!("token {id}, minted and never presented, was refused for runner {rid}: {why}");
                }
                Counts::inc(&self.counts.refused_as_expected);
            }
            Redemption::GaveUp(why) => {
                eprintln!("runner {rid} gave up within its deadline: {why}");
                if self.tokens[t].state == TokenState::Fresh {
                    self.tokens[t].state = TokenState::Unknown;
                }
            }
        }
    }

    async fn snapshot(&mut self, k: usize) {
        let env = self.envs[k].name.clone();
        let found = self.observe(&env).await;
        let model = self.envs[k].state.clone();
        assert!(
            found == model,
            "{env}: a snapshot differs from the acknowledged state: {}",
            describe_diff(model.as_ref(), found.as_ref())
        );
        self.counts.check();
    }
}

// ----------------------------------------------------------------------------------------
// The run and its final checks

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("the CLI printed JSON")
}

/// Every plaintext value and token secret of the run, searched for at once.
struct Scanner {
    ac: aho_corasick::AhoCorasick,
    values: usize,
}

impl Scanner {
    fn new(values: &[String], token_secrets: &[String]) -> Self {
        let all: Vec<&String> = values.iter().chain(token_secrets).collect();
        Self {
            ac: aho_corasick::AhoCorasick::new(all).unwrap(),
            values: values.len(),
        }
    }

    /// Records a violation when `bytes` (the file or log `what`) holds any of them.
    fn scan(&self, what: &Path, bytes: &[u8], record: &Record, counts: &Counts) {
        counts.check();
        if let Some(m) = self.ac.find(bytes) {
            let i = m.pattern().as_usize();
            let kind = if i < self.values {
                format!("secret value (#{i} of the run)")
            } else {
                format!("runner-token secret (#{} of the run)", i - self.values)
            };
            record.violation(format!(
                "{} holds a plaintext {kind} at byte {}",
                what.display(),
                m.start()
            ));
        }
    }
}

/// `runseald verify` over the store; every stored value must open.
fn verify(data: &Path, extra: &[String], expected: usize, counts: &Counts) {
    let out = Command::new(RUNSEALD)
        .args(["verify", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("RUNSEAL_LOG")
        .output()
        .expect("run runseald verify");
    assert!(
        out.status.success(),
        "runseald verify failed after the fault run:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = stdout(&out);
    assert!(
        report.contains(&format!("{expected} sealed values checked, 0 failed")),
        "runseald verify does not report the {expected} values of the model: {report}"
    );
    counts.check();
}

/// The audit log of one environment against its model: its changes once each, in order; with
/// `revisions`, also the revision each produced, and snapshot rows the revision they served.
fn check_audit(model: &EnvModel, entries: &[Value], counts: &Counts, revisions: bool) {
    let env = &model.name;
    assert!(
        entries.len() < 10_000,
        "{env}: the audit log outgrew one page; lower the load of this test"
    );
    let mut entries: Vec<&Value> = entries.iter().collect();
    entries.sort_by_key(|e| e["id"].as_u64().expect("an audit id"));
    // Split into incarnations; `main` exists from the start.
    let mut found: Vec<Vec<&Value>> = if env == "main" {
        vec![Vec::new()]
    } else {
        Vec::new()
    };
    let mut open = env == "main";
    let mut snapshots: Vec<(usize, usize, &Value)> = Vec::new();
    for e in entries {
        match e["action"].as_str().expect("an action") {
            "environment.create" => {
                assert!(
                    !open,
                    "{env}: created twice without a deletion in between (audit id {})",
                    e["id"]
                );
                found.push(Vec::new());
                open = true;
            }
            "environment.delete" => {
                assert!(
                    open,
                    "{env}: deleted while it did not exist (audit id {})",
                    e["id"]
                );
                open = false;
            }
            "secrets.set" | "secrets.unset" => {
                assert!(
                    open,
                    "{env}: a change while it did not exist (audit id {})",
                    e["id"]
                );
                found.last_mut().unwrap().push(e);
            }
            "snapshot" => {
                if let Some(inc) = found.len().checked_sub(1) {
                    snapshots.push((inc, found[inc].len(), e));
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        found.len(),
        model.incarnations.len(),
        "{env}: the audit log shows {} creations, the model {}",
        found.len(),
        model.incarnations.len()
    );
    assert_eq!(
        open,
        model.state.is_some(),
        "{env}: the audit log and the model disagree on whether it exists"
    );
    if !revisions {
        counts.check();
    }
    // The changes, as actions and names.
    for (inc, (rows, changes)) in found.iter().zip(&model.incarnations).enumerate() {
        let got: Vec<(String, Vec<String>)> = rows
            .iter()
            .map(|e| {
                let mut names: Vec<String> = e["names"]
                    .as_array()
                    .expect("names")
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect();
                names.sort();
                (e["action"].as_str().unwrap().to_string(), names)
            })
            .collect();
        let want: Vec<(String, Vec<String>)> = changes
            .iter()
            .map(|c| (c.action.clone(), c.names.clone()))
            .collect();
        assert_eq!(
            got, want,
            "{env} (incarnation {inc}): the audit log does not list the acknowledged changes in order"
        );
        if !revisions {
            counts.check();
        }
    }
    if !revisions {
        return;
    }
    // The revision each change produced.
    for (inc, (rows, changes)) in found.iter().zip(&model.incarnations).enumerate() {
        for (row, change) in rows.iter().zip(changes) {
            let Some(rev) = row.get("revision") else {
                panic!(
                    "{env}: audit entries carry no `revision` field (`runseal audit --output json`), so \
                     the log cannot be checked against the revisions (hardening item 6)"
                );
            };
            let rev = rev.as_u64().expect("revision is a number");
            assert_eq!(
                rev, change.revision,
                "{env} (incarnation {inc}): audit id {} shows revision {rev} for the change that produced {}",
                row["id"], change.revision
            );
            counts.check();
        }
        let revs: Vec<u64> = changes.iter().map(|c| c.revision).collect();
        assert_eq!(
            revs,
            (1..=changes.len() as u64).collect::<Vec<_>>(),
            "{env} (incarnation {inc}): revisions are not 1, 2, … once each"
        );
    }
    for (inc, before, e) in snapshots {
        let served = e.get("revision").and_then(Value::as_u64).unwrap_or(0);
        if served != 0 {
            let latest = before
                .checked_sub(1)
                .map_or(0, |i| model.incarnations[inc][i].revision);
            assert_eq!(
                served, latest,
                "{env}: snapshot audit id {} shows revision {served}, but revision {latest} was current",
                e["id"]
            );
            counts.check();
        }
    }
}

fn run(label: &str, fleet: Fleet, scan_dirs: Vec<PathBuf>, verify_args: Vec<String>) {
    let seed = seed();
    eprintln!("fault run ({label}): seed {seed}; replay with RUNSEAL_FAULT_SEED={seed}");
    let started = Instant::now();
    let fleet = Arc::new(Mutex::new(fleet));
    let counts = Arc::new(Counts::default());
    let record = Arc::new(Record::default());
    let settle = Arc::new(Settle::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    let (addrs, first_data) = {
        let mut f = fleet.lock().unwrap();
        for r in f.replicas.iter_mut().filter(|r| r.daemon.is_none()) {
            r.start();
        }
        (f.addrs(), f.replicas[0].data.clone())
    };
    let admin_line = std::fs::read_to_string(first_data.join("admin.key")).unwrap();
    let admin_line = admin_line.trim().to_string();
    let admin = Credential::parse(&admin_line).expect("admin.key holds a key");

    let (database_url, app_names) = {
        let f = fleet.lock().unwrap();
        let names: Vec<String> = f.replicas.iter().map(Replica::application_name).collect();
        (f.database_url.clone(), names)
    };
    if let Some(url) = database_url {
        // The wait for a killed replica's sessions (Settle) relies on their names.
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            for name in &app_names {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
                assert!(n > 0, "no PostgreSQL session is named {name}");
            }
        });
    }
    let workers = rt.block_on(async {
        // The read-back key: scopes name existing environments, so it starts with `main` and
        // each worker replaces it as its environments come and go (`observe_once`).
        let scopes = vec!["snapshot:main".to_string()];
        let (_, checker) = Client::connect(&addrs[0], admin.clone())
            .await
            .unwrap()
            .keys()
            .create(&scopes, "fault-run checker")
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let killer = tokio::spawn(killer(
            fleet.clone(),
            seed,
            stop.clone(),
            counts.clone(),
            settle.clone(),
        ));
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let ws = seed.wrapping_add(w as u64 * 0x9e37_79b9);
            let worker = Worker {
                w,
                rng: StdRng::seed_from_u64(ws),
                admin: Conn::new(&addrs, admin.clone(), ws ^ 1),
                checker: Conn::new(&addrs, checker.clone(), ws ^ 2),
                addrs: addrs.clone(),
                envs: env_names(w)
                    .into_iter()
                    .map(|name| EnvModel {
                        state: (name == "main").then(EnvState::default),
                        incarnations: if name == "main" {
                            vec![Vec::new()]
                        } else {
                            Vec::new()
                        },
                        name,
                    })
                    .collect(),
                tokens: Vec::new(),
                runner_seq: 0,
                counts: counts.clone(),
                record: record.clone(),
                settle: settle.clone(),
            };
            tasks.push(tokio::spawn(worker.run(stop.clone())));
        }
        tokio::time::sleep(WORKLOAD).await;
        eprintln!("[{:.1?}] workload deadline", started.elapsed());
        stop.store(true, Ordering::SeqCst);
        let mut workers = Vec::new();
        for t in tasks {
            workers.push(t.await.expect("a worker failed"));
        }
        killer.await.expect("the killer failed");
        workers
    });
    eprintln!("[{:.1?}] workload done", started.elapsed());

    // A last SIGKILL, so the files are as a crash leaves them (SQLite: the WAL not checkpointed).
    {
        let mut f = fleet.lock().unwrap();
        for r in &mut f.replicas {
            r.kill();
            Counts::inc(&counts.kills);
        }
    }
    let values = record.values.lock().unwrap().clone();
    let token_secrets = record.token_secrets.lock().unwrap().clone();
    let scanner = Scanner::new(&values, &token_secrets);
    for dir in &scan_dirs {
        let files = all_files(dir);
        for (path, bytes) in &files {
            scanner.scan(path, bytes, &record, &counts);
        }
    }

    eprintln!("[{:.1?}] scanned", started.elapsed());
    // Restart, and read everything back as a user would.
    fleet
        .lock()
        .unwrap()
        .replicas
        .iter_mut()
        .for_each(Replica::start);
    // Every token minted and never presented still works after the crashes, once.
    let workers = rt.block_on(async move {
        let mut out = Vec::new();
        for mut w in workers {
            for t in 0..w.tokens.len() {
                if w.tokens[t].attempts.is_empty() && w.token_alive(t) {
                    w.redeem_token(t, false).await;
                }
            }
            out.push(w);
        }
        out
    });
    let envs: Vec<&EnvModel> = workers.iter().flat_map(|w| &w.envs).collect();
    let tokens: Vec<&TokenRec> = workers.iter().flat_map(|w| &w.tokens).collect();
    let addr = addrs[0].clone();
    let cli = |args: &[&str]| ok(runseal(&addr, &admin_line, args));
    let listed = json(&cli(&["env", "list", "--output", "json"]));
    let listed: BTreeMap<String, (u64, u64)> = listed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                (
                    e["revision"].as_u64().unwrap(),
                    e["secret_count"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let checker_snapshots = rt.block_on(async {
        let mut w = Worker {
            w: 99,
            rng: StdRng::seed_from_u64(seed),
            admin: Conn::new(&addrs, admin.clone(), seed),
            checker: workers[0].checker.clone_conn(),
            addrs: addrs.clone(),
            envs: Vec::new(),
            tokens: Vec::new(),
            runner_seq: 0,
            counts: counts.clone(),
            record: record.clone(),
            settle: settle.clone(),
        };
        let mut out = BTreeMap::new();
        for e in &envs {
            out.insert(e.name.clone(), w.observe(&e.name).await);
        }
        out
    });
    let mut stored = 0;
    for e in &envs {
        let model = e.state.as_ref();
        let found = checker_snapshots[&e.name].as_ref();
        assert!(
            model == found,
            "{}: acknowledged changes lost or unacknowledged ones invented: {}",
            e.name,
            describe_diff(model, found)
        );
        counts.check();
        match model {
            None => assert!(
                !listed.contains_key(&e.name),
                "{}: deleted, but listed",
                e.name
            ),
            Some(s) => {
                stored += s.secrets.len();
                assert_eq!(
                    listed.get(&e.name),
                    Some(&(s.revision, s.secrets.len() as u64)),
                    "{}: `runseal env list` shows another revision or count",
                    e.name
                );
                let names = json(&cli(&[
                    "secrets", "list", "--env", &e.name, "--output", "json",
                ]));
                let names: BTreeSet<&str> = names["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["name"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    names,
                    s.secrets.keys().map(String::as_str).collect(),
                    "{}: `runseal secrets list` shows other names",
                    e.name
                );
            }
        }
        counts.check();
    }

    eprintln!("[{:.1?}] states checked", started.elapsed());
    // Single use, as `runseal runners list` records it.
    let runners = json(&cli(&[
        "runners", "list", "--limit", "10000", "--output", "json",
    ]));
    let runners = runners["runners"].as_array().unwrap();
    assert!(runners.len() < 10_000, "the runner list outgrew one page");
    let mut by_credential: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in runners {
        by_credential
            .entry(r["credential_id"].as_str().unwrap())
            .or_default()
            .insert(r["runner_id"].as_str().unwrap());
    }
    for t in &tokens {
        counts.check();
        let recorded = by_credential
            .get(t.id.as_str())
            .cloned()
            .unwrap_or_default();
        if recorded.len() > 1 {
            record.violation(format!(
                "single-use token {} is recorded for runners {recorded:?}",
                t.id
            ));
        }
        for r in &recorded {
            if !t.attempts.iter().any(|a| a == r) {
                record.violation(format!(
                    "token {} is recorded for runner {r}, never started with it",
                    t.id
                ));
            }
        }
        let env = envs.iter().find(|e| e.name == t.env).unwrap();
        let alive = env.state.is_some() && env.incarnation() == t.incarnation;
        for s in &t.served {
            if alive && !recorded.contains(s.as_str()) {
                record.violation(format!(
                    "runner {s} started with token {} but is missing from `runseal runners list`",
                    t.id
                ));
            }
        }
    }

    eprintln!("[{:.1?}] runners checked", started.elapsed());
    // Logs: no value or token secret in what runseald and the agents wrote.
    {
        let f = fleet.lock().unwrap();
        for r in &f.replicas {
            for log in &r.logs {
                let log = log.lock().unwrap().clone();
                scanner.scan(
                    Path::new("a runseald log"),
                    log.as_bytes(),
                    &record,
                    &counts,
                );
            }
        }
    }
    for log in record.agent_logs.lock().unwrap().iter() {
        scanner.scan(
            Path::new("an agent's stderr"),
            log.as_bytes(),
            &record,
            &counts,
        );
    }

    eprintln!("[{:.1?}] logs scanned", started.elapsed());
    let audits: Vec<(usize, Vec<Value>)> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let a = json(&cli(&[
                "audit", "--env", &e.name, "--limit", "10000", "--output", "json",
            ]));
            (i, a["entries"].as_array().unwrap().clone())
        })
        .collect();
    {
        let mut f = fleet.lock().unwrap();
        for r in &mut f.replicas {
            r.terminate();
        }
    }
    verify(&first_data, &verify_args, stored, &counts);

    let violations = record.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "fault run ({label}, seed {seed}) violations:\n{}",
        violations.join("\n")
    );

    eprintln!("[{:.1?}] verified", started.elapsed());
    // Last, as the revisions need the audit `revision` field that hardening item 6 adds.
    eprintln!(
        "before the audit check: {}",
        counts.summary(label, seed, started)
    );
    for (i, entries) in &audits {
        check_audit(envs[*i], entries, &counts, false);
    }
    for (i, entries) in &audits {
        check_audit(envs[*i], entries, &counts, true);
    }

    eprintln!("{}", counts.summary(label, seed, started));
    assert!(
        Counts::get(&counts.kills) >= 4,
        "too few kills to prove anything"
    );
}

impl Conn {
    fn clone_conn(&self) -> Conn {
        Conn::new(&self.addrs, self.key.clone(), 7)
    }
}

#[test]
fn fault_run_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fleet = Fleet {
        replicas: vec![Replica::new(
            data.clone(),
            tmp.path().join("runseald.sock"),
            None,
        )],
        restart_database: None,
        database_url: None,
    };
    run("SQLite", fleet, vec![data], Vec::new());
}

#[cfg(runseal_pg_tests)]
#[test]
fn fault_run_postgres() {
    let pg = Arc::new(common::private_pg::PrivatePg::start());
    let url = pg.url();
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Replica::new(da.clone(), tmp.path().join("a.sock"), Some(url.clone()));
    // The first replica initialises the database; the second joins with its master key.
    a.start();
    common::private_pg::join_dir(&da, &db);
    let fleet = Fleet {
        replicas: vec![
            a,
            Replica::new(db.clone(), tmp.path().join("b.sock"), Some(url.clone())),
        ],
        restart_database: Some({
            let pg = pg.clone();
            Arc::new(move |down| {
                pg.ctl("stop");
                // The outage itself: how long the database stays down.
                std::thread::sleep(down);
                pg.ctl("start");
            })
        }),
        database_url: Some(url.clone()),
    };
    run(
        "PostgreSQL",
        fleet,
        vec![da, db, pg.dir.path().to_path_buf()],
        vec!["--database-url".to_string(), url],
    );
}

/// The audit check itself, on logs written by hand: it accepts a log that matches the model,
/// and names a wrong revision, a missing `revision` field, a lost change and a stale snapshot row.
#[test]
fn the_audit_check_accepts_a_matching_log_and_refuses_others() {
    use serde_json::json;
    let change = |revision, action: &str, names: &[&str]| Change {
        revision,
        action: action.into(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let model = EnvModel {
        name: "fr1-0".into(),
        state: Some(EnvState {
            revision: 1,
            secrets: BTreeMap::new(),
        }),
        incarnations: vec![
            vec![change(1, "secrets.set", &["FR_1", "FR_2"])],
            vec![change(1, "secrets.set", &["FR_3"])],
        ],
    };
    let row = |id: u64, action: &str, names: &[&str], revision: Option<u64>| {
        let mut v = json!({ "id": id, "action": action, "environment": "fr1-0", "names": names });
        if let Some(r) = revision {
            v["revision"] = json!(r);
        }
        v
    };
    let good = vec![
        row(9, "secrets.set", &["FR_3"], Some(1)),
        row(8, "environment.create", &[], None),
        row(7, "environment.delete", &[], Some(0)),
        row(6, "snapshot", &[], Some(1)),
        row(5, "runner-token.issue", &["rt_x"], None),
        row(4, "secrets.set", &["FR_2", "FR_1"], Some(1)),
        row(3, "snapshot", &[], Some(0)),
        row(2, "environment.create", &[], Some(0)),
    ];
    let counts = Counts::default();
    check_audit(&model, &good, &counts, false);
    check_audit(&model, &good, &counts, true);
    let fails = |entries: Vec<Value>, revisions: bool| -> String {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_audit(&model, &entries, &Counts::default(), revisions)
        }));
        let e = r.expect_err("the audit check accepted a log that does not match");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let mut wrong_rev = good.clone();
    wrong_rev[0]["revision"] = json!(2);
    assert!(fails(wrong_rev, true).contains("shows revision 2"));
    let mut no_rev = good.clone();
    no_rev[0].as_object_mut().unwrap().remove("revision");
    assert!(fails(no_rev, true).contains("no `revision` field"));
    let lost: Vec<Value> = good[1..].to_vec();
    assert!(fails(lost, false).contains("does not list the acknowledged changes"));
    let mut stale = good.clone();
    stale[3]["revision"] = json!(0);
    stale[6]["revision"] = json!(1);
    assert!(fails(stale, true).contains("was current"));
}
