//! Crash safety, as the README promises it: "a runseald killed with SIGKILL in the middle of a
//! stream of batch sets restarts with every batch either fully applied or absent".
//!
//! The real `runseald serve` takes a continuous stream of batch sets from several concurrent
//! clients and is SIGKILLed mid-stream, three times on the same data dir. After every restart
//! the test checks what a user would check: the listing (real CLI), the audit log, the values
//! themselves (opened with the library while runseald is stopped) and `runseald verify`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{ok, runseal, stderr, stdout, Daemon, RUNSEALD};
use runseal::auth::Credential;
use runseal::client::Client;
use runseal::datadir::DataDir;
use runseal::secret::SecretBytes;
use serde_json::Value;

/// Concurrent writers.
const TASKS: usize = 6;
/// Names of its own in every batch.
const NAMES_PER_BATCH: usize = 20;
/// `SHARED_0..SHARED_9`, overwritten by every batch with that batch's tag.
const SHARED: usize = 10;
/// Kill/restart rounds, with the load that runs before each kill.
const LOAD_BEFORE_KILL: [Duration; 3] = [
    Duration::from_millis(900),
    Duration::from_millis(1400),
    Duration::from_millis(1900),
];

/// One batch of the stream: `B{round}_{task}_{i}_{j}` for j in 0..20, plus the shared names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Batch {
    round: usize,
    task: usize,
    i: usize,
}

impl Batch {
    fn name(&self, j: usize) -> String {
        format!("B{}_{}_{}_{}", self.round, self.task, self.i, j)
    }

    fn value(&self, j: usize) -> Vec<u8> {
        format!("value of {} #{j}", self.tag()).into_bytes()
    }

    /// What the shared names hold after this batch.
    fn tag(&self) -> String {
        format!("round{}-task{}-batch{}", self.round, self.task, self.i)
    }

    fn from_tag(tag: &str) -> Option<Batch> {
        let mut parts = tag.split('-');
        let round = parts.next()?.strip_prefix("round")?.parse().ok()?;
        let task = parts.next()?.strip_prefix("task")?.parse().ok()?;
        let i = parts.next()?.strip_prefix("batch")?.parse().ok()?;
        parts.next().is_none().then_some(Batch { round, task, i })
    }

    /// The batch and index of a per-batch name.
    fn parse_name(name: &str) -> Option<(Batch, usize)> {
        let mut parts = name.strip_prefix('B')?.split('_');
        let mut next = || parts.next()?.parse::<usize>().ok();
        let b = Batch {
            round: next()?,
            task: next()?,
            i: next()?,
        };
        let j = next()?;
        Some((b, j))
    }

    fn secrets(&self) -> Vec<(String, SecretBytes)> {
        let mut v: Vec<(String, SecretBytes)> = (0..NAMES_PER_BATCH)
            .map(|j| (self.name(j), SecretBytes::new(self.value(j))))
            .collect();
        for k in 0..SHARED {
            v.push((
                format!("SHARED_{k}"),
                SecretBytes::new(self.tag().into_bytes()),
            ));
        }
        v
    }
}

/// What one writer saw: the batches acknowledged, and the one whose call failed (if any).
struct TaskOutcome {
    acked: Vec<Batch>,
    failed: Option<(Batch, String, bool)>,
}

/// Drives the stream from `TASKS` clients, SIGKILLs runseald after `load`, and returns what
/// the clients saw.
async fn stream_then_kill(d: Daemon, round: usize, load: Duration) -> Vec<TaskOutcome> {
    let key = Credential::parse(&d.admin_key()).expect("admin.key holds a key");
    let killed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        // One connection per writer, as separate processes would have.
        let client = Client::connect(&d.addr, key.clone())
            .await
            .expect("connect to runseald");
        let killed = killed.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let batch = Batch { round, task, i };
                match client.secrets().set_many("main", batch.secrets()).await {
                    Ok(_) => acked.push(batch),
                    Err(e) => {
                        let after_kill = killed.load(Ordering::SeqCst);
                        return TaskOutcome {
                            acked,
                            failed: Some((batch, e.to_string(), after_kill)),
                        };
                    }
                }
            }
            unreachable!()
        }));
    }
    tokio::time::sleep(load).await;
    killed.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || d.kill9())
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for t in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a writer still hangs 10 s after runseald was killed")
            .expect("writer task panicked");
        outcomes.push(outcome);
    }
    outcomes
}

/// Names listed by `runseal secrets list --output json`.
fn listed_names(d: &Daemon) -> Vec<String> {
    let json = ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["secrets", "list", "--output", "json"],
    ));
    let v: Value = serde_json::from_str(&json).expect("list --output json is JSON");
    v["secrets"]
        .as_array()
        .expect("a secrets array")
        .iter()
        .map(|s| {
            assert_eq!(s["environment"], "main");
            s["name"].as_str().expect("a name").to_string()
        })
        .collect()
}

/// The batches whose names are listed; asserts each is complete and nothing else is there.
fn complete_batches(names: &[String]) -> BTreeSet<Batch> {
    let mut per_batch: BTreeMap<Batch, BTreeSet<usize>> = BTreeMap::new();
    let mut shared = BTreeSet::new();
    for n in names {
        if let Some(k) = n.strip_prefix("SHARED_") {
            shared.insert(k.to_string());
        } else if let Some((b, j)) = Batch::parse_name(n) {
            assert!(j < NAMES_PER_BATCH, "unexpected name {n}");
            assert!(
                per_batch.entry(b).or_default().insert(j),
                "{n} listed twice"
            );
        } else {
            panic!("unexpected name {n} in the listing");
        }
    }
    let torn: Vec<String> = per_batch
        .iter()
        .filter(|(_, js)| js.len() != NAMES_PER_BATCH)
        .map(|(b, js)| format!("{} ({} of {NAMES_PER_BATCH} names)", b.tag(), js.len()))
        .collect();
    assert!(
        torn.is_empty(),
        "batches only partly applied after SIGKILL: {torn:?}"
    );
    if !per_batch.is_empty() {
        assert_eq!(
            shared.len(),
            SHARED,
            "some SHARED_* names are missing: {shared:?}"
        );
    }
    per_batch.into_keys().collect()
}

/// The batches named by the `secrets.set` entries of `runseal audit`.
fn audited_batches(d: &Daemon) -> Vec<Batch> {
    let json = ok(runseal(
        &d.addr,
        &d.admin_key(),
        &[
            "audit", "--env", "main", "--limit", "10000", "--output", "json",
        ],
    ));
    let v: Value = serde_json::from_str(&json).expect("audit --output json is JSON");
    let entries = v["entries"].as_array().expect("an entries array");
    assert!(
        entries.len() < 10_000,
        "the audit log outgrew one page; lower the load of this test"
    );
    entries
        .iter()
        .filter(|e| e["action"] == "secrets.set")
        .map(|e| {
            let names: Vec<&str> = e["names"]
                .as_array()
                .expect("names")
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect();
            let (b, _) = Batch::parse_name(names[0]).expect("a batch name first");
            let expected: Vec<String> = b.secrets().into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names,
                expected,
                "audit entry of {} lists its names",
                b.tag()
            );
            b
        })
        .collect()
}

/// Opens every stored value with the library (runseald stopped); returns the batch that the
/// SHARED_* names hold.
async fn shared_batch_from_values(data: &Path, present: &BTreeSet<Batch>) -> Batch {
    let opened = DataDir::new(data, None)
        .open()
        .await
        .expect("the data dir opens after the crash");
    let (_, rows) = opened
        .store
        .sealed_secrets("main")
        .await
        .expect("sealed secrets of main");
    assert_eq!(rows.len(), present.len() * NAMES_PER_BATCH + SHARED);
    let mut shared = BTreeMap::new();
    for row in &rows {
        let value = opened
            .sealer
            .open("main", &row.name, &row.sealed)
            .unwrap_or_else(|e| panic!("{} does not open after the crash: {e}", row.name));
        if let Some(k) = row.name.strip_prefix("SHARED_") {
            let tag = String::from_utf8(value.expose().to_vec()).expect("a tag");
            shared.insert(k.to_string(), tag);
        } else {
            let (b, j) = Batch::parse_name(&row.name).expect("a batch name");
            assert!(
                value.expose() == b.value(j).as_slice(),
                "{} holds another value than the batch set",
                row.name
            );
        }
    }
    let tags: BTreeSet<&String> = shared.values().collect();
    assert_eq!(
        tags.len(),
        1,
        "SHARED_* hold values of different batches: {shared:?}"
    );
    let tag = tags.into_iter().next().unwrap();
    let batch = Batch::from_tag(tag).unwrap_or_else(|| panic!("SHARED_* hold {tag:?}"));
    assert!(
        present.contains(&batch),
        "SHARED_* hold the values of {tag}, a batch that is not (fully) there"
    );
    batch
}

fn verify(data: &Path) -> String {
    let out = Command::new(RUNSEALD)
        .args(["verify", "--data-dir"])
        .arg(data)
        .env_remove("RUNSEAL_LOG")
        .output()
        .expect("run runseald verify");
    assert!(
        out.status.success(),
        "runseald verify failed after the crash:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn sigkill_mid_stream_leaves_every_batch_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Thousands of batches of 20 names each: far past the default per-environment limits,
    // which must not be what refuses a batch here.
    let config = dir.path().join("runseald.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_secrets_per_environment = 10000000\nmax_environment_bytes = 10000000000\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let args = ["--config", config.as_str()];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    // Every batch ever acknowledged, and every batch ever sent (acknowledged or not).
    let mut acked: BTreeSet<Batch> = BTreeSet::new();
    let mut sent: BTreeSet<Batch> = BTreeSet::new();
    // What the previous restart found: the outcome of earlier rounds must never change.
    let mut found_before: BTreeSet<Batch> = BTreeSet::new();
    let mut sent_before: BTreeSet<Batch> = BTreeSet::new();

    for (round, load) in LOAD_BEFORE_KILL.into_iter().enumerate() {
        let d = Daemon::start(&data, &args, &[]);
        let outcomes = rt.block_on(stream_then_kill(d, round, load));
        let mut in_flight = Vec::new();
        for o in &outcomes {
            acked.extend(o.acked.iter().copied());
            sent.extend(o.acked.iter().copied());
            let (b, err, after_kill) = o.failed.as_ref().expect("every writer stops on an error");
            assert!(
                after_kill,
                "a batch set failed before runseald was killed ({}): {err}",
                b.tag()
            );
            sent.insert(*b);
            in_flight.push(*b);
        }
        let acked_this_round = outcomes.iter().map(|o| o.acked.len()).sum::<usize>();
        assert!(
            acked_this_round >= TASKS,
            "round {round}: only {acked_this_round} batches acknowledged before the kill; \
             the stream never got going"
        );

        // Restart on the same dir; what does a user see?
        let d = Daemon::start(&data, &args, &[]);
        let present = complete_batches(&listed_names(&d));
        let lost: Vec<String> = acked.difference(&present).map(Batch::tag).collect();
        assert!(
            lost.is_empty(),
            "acknowledged batches lost by the crash: {lost:?}"
        );
        let invented: Vec<String> = present.difference(&sent).map(Batch::tag).collect();
        assert!(invented.is_empty(), "batches never sent: {invented:?}");
        let earlier: BTreeSet<Batch> = present.intersection(&sent_before).copied().collect();
        assert_eq!(
            earlier, found_before,
            "batches of earlier rounds changed after this crash"
        );
        // Each change commits with its audit entry: the log names exactly the present batches,
        // newest first, and the newest is the one whose values the shared names hold.
        let audited = audited_batches(&d);
        let audited_set: BTreeSet<Batch> = audited.iter().copied().collect();
        assert_eq!(audited.len(), audited_set.len(), "a batch audited twice");
        assert_eq!(
            audited_set, present,
            "the audit log and the stored batches disagree"
        );
        let (clean, log) = d.terminate();
        assert!(clean, "SIGTERM is a clean exit:\n{log}");

        let shared = rt.block_on(shared_batch_from_values(&data, &present));
        assert_eq!(
            Some(&shared),
            audited.first(),
            "SHARED_* must hold the values of the last committed batch"
        );
        let report = verify(&data);
        let checked = present.len() * NAMES_PER_BATCH + SHARED;
        assert!(
            report.contains(&format!("{checked} sealed values checked, 0 failed")),
            "{report}"
        );
        eprintln!(
            "round {round}: {acked_this_round} batches acknowledged, {} in flight at the kill, \
             {} of those applied; {} batches stored in all",
            in_flight.len(),
            in_flight.iter().filter(|b| present.contains(b)).count(),
            present.len()
        );
        found_before = present;
        sent_before = sent.clone();
    }
}
