//! `runseald backup`, `runseald restore` and `runseald recover-admin`, through the real
//! binaries on real SQLite files.
//!
//! The restore drill backs up a runseald under load (secrets set, keys created, runner tokens
//! issued and runners started, all concurrently), restores the file into a new data dir, serves
//! it, and finds every change that was acknowledged before the backup began. The other tests
//! check what an operator relies on: the file is private and holds no value, and a restore
//! refuses (writing nothing) a data dir that holds a database, a wrong master key and a
//! foreign, truncated or damaged file.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    all_files, contains, json, ok, refusal, runseal, runseald, stdout, succeeded, Daemon,
};
use runseal::auth::Credential;
use runseal::client::{Client, IssueOptions};

fn backup(data_dir: &Path, to: &Path) -> Output {
    runseald(&[
        OsStr::new("backup"),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--to"),
        to.as_os_str(),
    ])
}

fn restore(from: &Path, data_dir: &Path, key: &Path) -> Output {
    runseald(&[
        OsStr::new("restore"),
        OsStr::new("--from"),
        from.as_os_str(),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--master-key-file"),
        key.as_os_str(),
    ])
}

/// A random master key file (0600) of its own.
fn other_key(dir: &Path) -> (PathBuf, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt;
    let bytes: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let path = dir.join("other.key");
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, bytes)
}

/// A value nobody else uses, easy to find in bytes.
fn distinct_value(tag: &str) -> String {
    format!("{tag}-{:032x}", rand::random::<u128>())
}

/// One acknowledged change of the drill's load: was it acknowledged before the backup began,
/// and was it sent only after the backup had finished?
#[derive(Debug, Clone, Copy)]
struct When {
    acked_before: bool,
    sent_after: bool,
}

#[derive(Default)]
struct Seen {
    /// Secret name → its value (every name is set once).
    secrets: Vec<(String, String, When)>,
    keys: Vec<(String, When)>,
    tokens: Vec<(String, When)>,
    runners: Vec<(String, When)>,
}

/// The flags the load reads around each call.
struct Phase {
    began: AtomicBool,
    finished: AtomicBool,
    stop: AtomicBool,
}

impl Phase {
    fn sent(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
    fn acked(&self, sent_after: bool) -> When {
        When {
            acked_before: !self.began.load(Ordering::SeqCst),
            sent_after,
        }
    }
}

const SETTERS: usize = 3;
const STARTERS: usize = 2;
/// Setters, starters, one key creator, one token issuer.
const TASKS: usize = SETTERS + STARTERS + 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_drill_finds_every_change_acknowledged_before_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let live = Daemon::start(&live_dir, &[], &[]);
    let admin = Credential::parse(&live.admin_key()).unwrap();
    let phase = Arc::new(Phase {
        began: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    // Acknowledgements per task: before the backup began, and after it finished.
    let before: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
    let after: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
    let count = {
        let (before, after) = (before.clone(), after.clone());
        move |task: usize, when: When| {
            if when.acked_before {
                before[task].fetch_add(1, Ordering::SeqCst);
            }
            if when.sent_after {
                after[task].fetch_add(1, Ordering::SeqCst);
            }
        }
    };

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = Client::connect(&live.addr, admin.clone()).await.unwrap();
        let (phase, seen, count, addr) = (
            phase.clone(),
            seen.clone(),
            count.clone(),
            live.addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                if phase.stop.load(Ordering::SeqCst) {
                    return;
                }
                let sent_after = phase.sent();
                if task < SETTERS {
                    let name = format!("DRILL_{task}_{i}");
                    let value = distinct_value("drill");
                    client
                        .secrets()
                        .set(
                            &name,
                            runseal::secret::SecretBytes::new(value.clone().into_bytes()),
                            "main",
                        )
                        .await
                        .expect("set under load");
                    let when = phase.acked(sent_after);
                    count(task, when);
                    seen.lock().unwrap().secrets.push((name, value, when));
                } else if task < SETTERS + STARTERS {
                    // A runner start as an orchestrator and its runner make it: mint, start.
                    let issued = client
                        .runners()
                        .issue("main", IssueOptions::default())
                        .await
                        .expect("issue under load");
                    let token = issued.into_iter().next().unwrap().token;
                    let runner_id = format!("drill-{task}-{i}");
                    let runner = Client::connect(&addr, token).await.unwrap();
                    runner
                        .runners()
                        .snapshot("main", &runner_id, &[])
                        .await
                        .expect("runner start under load");
                    let when = phase.acked(sent_after);
                    count(task, when);
                    seen.lock().unwrap().runners.push((runner_id, when));
                } else if task == SETTERS + STARTERS {
                    let (info, _) = client
                        .keys()
                        .create(&["read:main".to_string()], &format!("drill key {i}"))
                        .await
                        .expect("create a key under load");
                    let when = phase.acked(sent_after);
                    count(task, when);
                    seen.lock().unwrap().keys.push((info.key_id, when));
                } else {
                    let opts = IssueOptions {
                        ttl: Some(Duration::from_secs(3600)),
                        ..IssueOptions::default()
                    };
                    let issued = client
                        .runners()
                        .issue("main", opts)
                        .await
                        .expect("issue under load");
                    let when = phase.acked(sent_after);
                    count(task, when);
                    let mut seen = seen.lock().unwrap();
                    seen.tokens
                        .extend(issued.into_iter().map(|t| (t.token_id, when)));
                }
            }
        }));
    }
    let poll = |counts: &Arc<Vec<AtomicUsize>>, at_least: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counts.iter().any(|c| c.load(Ordering::SeqCst) < at_least) {
            assert!(
                Instant::now() < deadline,
                "the load made no progress ({what})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Every kind of change has been acknowledged a few times before the backup begins.
    tokio::task::block_in_place(|| poll(&before, 10, "before the backup"));

    let file = tmp.path().join("drill.runseal-backup");
    phase.began.store(true, Ordering::SeqCst);
    let (dir, to) = (live_dir.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || backup(&dir, &to))
        .await
        .unwrap();
    phase.finished.store(true, Ordering::SeqCst);
    let said = succeeded(out, "runseald backup under load");
    assert!(said.contains("needs the master key"), "{said}");
    // The load went on after the backup: each task has a change sent after it finished.
    tokio::task::block_in_place(|| poll(&after, 1, "after the backup"));
    phase.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let tally = |v: &[When]| {
        let before = v.iter().filter(|w| w.acked_before).count();
        let after = v.iter().filter(|w| w.sent_after).count();
        format!(
            "{before} before, {} during, {after} after",
            v.len() - before - after
        )
    };
    let whens = |v: &[(String, When)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    eprintln!(
        "drill: sets {}; keys {}; tokens {}; runner starts {}",
        tally(&seen.secrets.iter().map(|x| x.2).collect::<Vec<_>>()),
        tally(&whens(&seen.keys)),
        tally(&whens(&seen.tokens)),
        tally(&whens(&seen.runners)),
    );
    let (ok_before, total) = (
        seen.secrets.iter().filter(|s| s.2.acked_before).count(),
        seen.secrets.len(),
    );
    assert!(
        ok_before > 0 && total > ok_before,
        "{ok_before} of {total} sets before the backup"
    );

    // Restore into a new data dir and serve it.
    let restored_dir = tmp.path().join("restored");
    let key = live_dir.join("master.key");
    succeeded(restore(&file, &restored_dir, &key), "runseald restore");
    let (stopped, log) = live.terminate();
    assert!(stopped, "{log}");
    let key_arg = key.to_str().unwrap();
    let restored = Daemon::start(&restored_dir, &["--master-key-file", key_arg], &[]);
    let client = Client::connect(&restored.addr, admin.clone())
        .await
        .unwrap();

    // Secret values, through a runner's snapshot of the restored server.
    let values = common::runner_values(&restored.addr, &admin, "after-restore").await;
    for (name, value, when) in &seen.secrets {
        if when.acked_before {
            assert_eq!(
                values.get(name).map(Vec::as_slice),
                Some(value.as_bytes()),
                "{name}, acknowledged before the backup, is missing or wrong after the restore"
            );
        }
        if when.sent_after {
            assert!(
                !values.contains_key(name),
                "{name}, set after the backup, was restored"
            );
        }
    }

    // Keys, runner tokens, runner starts.
    let keys: BTreeSet<String> = client
        .keys()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    let tokens: BTreeSet<String> = client
        .runners()
        .list_tokens("main", 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_id)
        .collect();
    let runners: BTreeSet<String> = client
        .runners()
        .list("main", false, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.runner_id)
        .collect();
    let check = |what: &str, items: &[(String, When)], found: &BTreeSet<String>| {
        for (id, when) in items {
            if when.acked_before {
                assert!(
                    found.contains(id),
                    "{what} {id}, acknowledged before the backup, was not restored"
                );
            }
            if when.sent_after {
                assert!(
                    !found.contains(id),
                    "{what} {id}, made after the backup, was restored"
                );
            }
        }
    };
    check("key", &seen.keys, &keys);
    check("runner token", &seen.tokens, &tokens);
    check("runner start", &seen.runners, &runners);

    // The audit rows of every acknowledged change, through the CLI.
    let audit = json(&ok(runseal(
        &restored.addr,
        &admin.to_line(),
        &["audit", "--limit", "100000", "--output", "json"],
    )));
    let mut audited: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in audit["entries"].as_array().unwrap() {
        let action = match e["action"].as_str().unwrap() {
            "secrets.set" => "secrets.set",
            "key.create" => "key.create",
            "runner-token.issue" => "runner-token.issue",
            "snapshot" => "snapshot",
            _ => continue,
        };
        let set = audited.entry(action).or_default();
        for n in e["names"].as_array().unwrap() {
            set.insert(n.as_str().unwrap().to_string());
        }
        if let Some(r) = e["runner_id"].as_str() {
            set.insert(r.to_string());
        }
    }
    let empty = BTreeSet::new();
    let secret_names: Vec<(String, When)> = seen
        .secrets
        .iter()
        .map(|(n, _, w)| (n.clone(), *w))
        .collect();
    check(
        "audit of the set of",
        &secret_names,
        audited.get("secrets.set").unwrap_or(&empty),
    );
    check(
        "audit of key",
        &seen.keys,
        audited.get("key.create").unwrap_or(&empty),
    );
    check(
        "audit of token",
        &seen.tokens,
        audited.get("runner-token.issue").unwrap_or(&empty),
    );
    check(
        "audit of runner",
        &seen.runners,
        audited.get("snapshot").unwrap_or(&empty),
    );

    let (stopped, log) = restored.terminate();
    assert!(stopped, "{log}");
    // Every sealed value opens and every row's MAC holds in the restored copy.
    let verify = runseald(&[
        OsStr::new("verify"),
        OsStr::new("--data-dir"),
        restored_dir.as_os_str(),
        OsStr::new("--master-key-file"),
        key.as_os_str(),
    ]);
    let report = succeeded(verify, "runseald verify on the restored data dir");
    assert!(report.contains(", 0 failed"), "{report}");
}

/// A running server with a few distinct values, and its backup.
struct Backed {
    tmp: tempfile::TempDir,
    live_dir: PathBuf,
    file: PathBuf,
    values: Vec<String>,
    names: Vec<String>,
}

fn backed_up() -> Backed {
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let d = Daemon::start(&live_dir, &[], &[]);
    let admin = d.admin_key();
    let names: Vec<String> = (0..3).map(|i| format!("PLAIN_NAME_{i}")).collect();
    let values: Vec<String> = (0..3)
        .map(|i| distinct_value(&format!("plain{i}")))
        .collect();
    let args: Vec<String> = std::iter::once("secrets".to_string())
        .chain(std::iter::once("set".to_string()))
        .chain(names.iter().zip(&values).map(|(n, v)| format!("{n}={v}")))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(runseal(&d.addr, &admin, &args));
    let file = tmp.path().join("b.runseal-backup");
    succeeded(backup(&live_dir, &file), "runseald backup");
    drop(d);
    Backed {
        tmp,
        live_dir,
        file,
        values,
        names,
    }
}

#[test]
fn a_backup_is_private_and_holds_no_plaintext_value() {
    use std::os::unix::fs::PermissionsExt;
    let b = backed_up();
    let mode = std::fs::metadata(&b.file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup mode {mode:o}");
    let bytes = std::fs::read(&b.file).unwrap();
    // The file is the database: names are in it (so the search below can find things)...
    for n in &b.names {
        assert!(
            contains(&bytes, n.as_bytes()),
            "{n} is not in the backup: is it the database?"
        );
    }
    // ...values only sealed, and no master key.
    for v in &b.values {
        assert!(
            !contains(&bytes, v.as_bytes()),
            "a plaintext value is in the backup"
        );
    }
    let master = std::fs::read(b.live_dir.join("master.key")).unwrap();
    assert!(!contains(&bytes, &master) && !contains(&bytes, hex::encode(&master).as_bytes()));
    // The header names the key it needs, as runseald logs it; no temporary file is left.
    let text = String::from_utf8_lossy(&bytes[..200]);
    assert!(
        text.starts_with("runseal-backup v1\nmaster-key-id: "),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(b.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn restore_refuses_a_data_dir_that_holds_a_database_and_changes_nothing() {
    let b = backed_up();
    let before = all_files(&b.live_dir);
    let out = restore(&b.file, &b.live_dir, &b.live_dir.join("master.key"));
    refusal(
        &out,
        &["already holds a database", "runseal.db", "new data dir"],
    );
    assert_eq!(
        all_files(&b.live_dir),
        before,
        "restore changed a data dir it refused"
    );
}

#[test]
fn restore_refuses_a_wrong_master_key_and_names_the_check_values() {
    let b = backed_up();
    let (key, key_bytes) = other_key(b.tmp.path());
    let target = b.tmp.path().join("restored");
    let out = restore(&b.file, &target, &key);
    let err = refusal(&out, &["does not match the backup", "check value id"]);
    assert!(
        !target.exists(),
        "a refused restore wrote {}",
        target.display()
    );
    for secret in [
        key_bytes.clone(),
        hex::encode(&key_bytes).into_bytes(),
        std::fs::read(b.live_dir.join("master.key")).unwrap(),
    ] {
        assert!(
            !contains(err.as_bytes(), &secret),
            "key material in the error: {err}"
        );
    }
    // The same restore with the right key works.
    succeeded(
        restore(&b.file, &target, &b.live_dir.join("master.key")),
        "restore",
    );
    // No key at all: the message says which one is needed.
    let out = restore(
        &b.file,
        &b.tmp.path().join("r2"),
        &b.tmp.path().join("missing.key"),
    );
    refusal(&out, &["is missing", "check value id"]);
}

#[test]
fn restore_refuses_a_foreign_truncated_or_damaged_file_and_writes_nothing() {
    let b = backed_up();
    let good = std::fs::read(&b.file).unwrap();
    let garbage: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let mut flipped = good.clone();
    let i = good.len() / 2;
    flipped[i] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("garbage", garbage, "is not a runseal backup"),
        (
            "sqlite",
            std::fs::read(b.live_dir.join("runseal.db")).unwrap(),
            "is not a runseal backup",
        ),
        ("empty", Vec::new(), "is not a runseal backup"),
        ("truncated", good[..good.len() / 3].to_vec(), "is truncated"),
        ("flipped", flipped, "is corrupt"),
    ];
    let key = b.live_dir.join("master.key");
    for (name, bytes, needle) in cases {
        let file = b.tmp.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let target = b.tmp.path().join(format!("restored-{name}"));
        refusal(&restore(&file, &target, &key), &[needle]);
        assert!(
            !target.exists(),
            "{name}: a refused restore wrote {}",
            target.display()
        );
    }
}

#[test]
fn backup_refuses_postgres_and_a_target_that_is_not_a_backup() {
    let b = backed_up();
    let out = runseald(&[
        OsStr::new("backup"),
        OsStr::new("--data-dir"),
        b.live_dir.as_os_str(),
        OsStr::new("--to"),
        b.tmp.path().join("pg.backup").as_os_str(),
        OsStr::new("--database-url"),
        OsStr::new("postgres://runseal:s3cretpw@127.0.0.1:1/runseal"),
    ]);
    let err = refusal(&out, &["pg_dump"]);
    assert!(!err.contains("s3cretpw"), "{err}");
    // A file that is not a backup is never replaced; a backup is (atomically).
    let precious = b.tmp.path().join("notes.txt");
    std::fs::write(&precious, "keep me").unwrap();
    refusal(
        &backup(&b.live_dir, &precious),
        &["is not a runseal backup", "refusing to replace"],
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    succeeded(
        backup(&b.live_dir, &b.file),
        "a second backup over the first",
    );
}

fn recover_admin<S: AsRef<OsStr>>(data_dir: &Path, extra: &[S]) -> Output {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("recover-admin"),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
    ];
    args.extend(extra.iter().map(AsRef::as_ref));
    runseald(&args)
}

#[test]
fn recover_admin_mints_a_working_audited_admin_key_while_runseald_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Daemon::start(&dir, &[], &[]);
    let out = recover_admin(&dir, &["--label", "break-glass"]);
    let printed = succeeded(out, "runseald recover-admin");
    let line = printed.trim();
    let cred = Credential::parse(line).expect("recover-admin prints a key as init does");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    // The key works against the running server: keys list shows it with its label, as admin.
    let keys = json(&ok(runseal(
        &d.addr,
        line,
        &["keys", "list", "--output", "json"],
    )));
    let row = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == cred.key_id())
        .unwrap_or_else(|| panic!("the recovered key is not listed: {keys}"));
    assert_eq!(row["label"], "break-glass");
    assert_eq!(row["scopes"], serde_json::json!(["admin"]));
    ok(runseal(&d.addr, line, &["env", "create", "after-recovery"]));
    let audit = json(&ok(runseal(&d.addr, line, &["audit", "--output", "json"])));
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.recover_admin")
        .unwrap_or_else(|| panic!("no key.recover_admin in the audit: {audit}"));
    assert_eq!(entry["key_id"], "runseald");
    assert_eq!(entry["names"], serde_json::json!([cred.key_id()]));
    let (stopped, log) = d.terminate();
    assert!(stopped, "{log}");
    assert!(
        !log.contains(line),
        "the recovered key is in runseald's log"
    );
    // The row's MAC is right: verify passes, and the key still works after a restart.
    let report = succeeded(common::runseald_verify(&dir, None), "verify");
    assert!(report.contains(", 0 failed"), "{report}");
    let d = Daemon::start(&dir, &[], &[]);
    ok(runseal(&d.addr, line, &["keys", "list"]));
}

#[test]
fn recover_admin_refuses_a_wrong_master_key_and_a_bad_label() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = Daemon::start(&dir, &[], &[]);
    let admin = d.admin_key();
    let listed = |d: &Daemon| {
        json(&ok(runseal(
            &d.addr,
            &admin,
            &["keys", "list", "--output", "json"],
        )))["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    let keys_before = listed(&d);
    let (key, key_bytes) = other_key(tmp.path());
    let out = recover_admin(&dir, &[OsStr::new("--master-key-file"), key.as_os_str()]);
    let err = refusal(&out, &["does not match"]);
    assert!(
        stdout(&out).is_empty(),
        "a refused recover-admin printed: {}",
        stdout(&out)
    );
    assert!(!contains(
        err.as_bytes(),
        hex::encode(&key_bytes).as_bytes()
    ));
    let out = recover_admin(&dir, &["--label", "bad\u{202e}label"]);
    refusal(&out, &["label", "control characters"]);
    assert_eq!(
        listed(&d),
        keys_before,
        "a refused recover-admin added a key"
    );
}

/// recover-admin on PostgreSQL, from a data dir of its own (the replica's key, no database file),
/// while the replica serves.
#[cfg(runseal_pg_tests)]
#[test]
fn recover_admin_on_postgres_mints_a_key_the_running_replica_accepts() {
    use std::os::unix::fs::PermissionsExt;
    let pg = common::PgDb::create();
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let d = Daemon::start(&da, &["--database-url", &pg.url], &[]);
    std::fs::create_dir(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700)).unwrap();
    common::copy_private(&da.join("master.key"), &db.join("master.key"));
    let out = recover_admin(&db, &["--database-url", pg.url.as_str()]);
    let printed = succeeded(out, "recover-admin on PostgreSQL");
    let cred = Credential::parse(printed.trim()).unwrap();
    let keys = ok(runseal(
        &d.addr,
        printed.trim(),
        &["keys", "list", "--output", "json"],
    ));
    assert!(keys.contains(cred.key_id()), "{keys}");
    let audit = ok(runseal(
        &d.addr,
        printed.trim(),
        &["audit", "--output", "json"],
    ));
    assert!(audit.contains("key.recover_admin"), "{audit}");
    let (key, _) = other_key(tmp.path());
    let out = recover_admin(
        &db,
        &[
            OsStr::new("--database-url"),
            OsStr::new(pg.url.as_str()),
            OsStr::new("--master-key-file"),
            key.as_os_str(),
        ],
    );
    refusal(&out, &["does not match"]);
    drop(d);
}
