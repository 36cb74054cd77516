//! The life of a secret (issue 16), through the real binaries: history, rollback and purge, the
//! diff and the server-side copy between environments, and the change feed (`runseal watch`).
//! Values are checked inside the runner (`test "$X" = …`), never printed; every output is
//! checked for the values it must not hold.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{agent, cli_refused, json, ok, runseal, stderr, stdout, Daemon, TestServer, RUNSEAL};
use tonic::Code;

/// Every value these tests set: none may appear in any output.
const VALUES: &[&str] = &[
    "hist-value-one",
    "hist-value-two",
    "hist-value-three",
    "copy-value-alpha",
    "copy-value-beta",
];

#[track_caller]
fn no_values(text: &str) {
    for v in VALUES {
        assert!(!text.contains(v), "a value leaked into output: {text}");
    }
}

/// `runseal …` as the admin; output checked for values.
fn cli(d: &Daemon, key: &str, args: &[&str]) -> std::process::Output {
    let out = runseal(&d.addr, key, args);
    no_values(&stdout(&out));
    no_values(&stderr(&out));
    out
}

/// Whether a runner started with `key` (scope snapshot:ENV) sees `X` equal to `want` (or
/// unset, with `None`), checked inside the runner.
fn runner_sees(d: &Daemon, key: &str, env: &str, want: Option<&str>) -> bool {
    let script = match want {
        Some(w) => format!("test \"${{X-}}\" = '{w}'"),
        None => "test -z \"${X+set}\"".to_string(),
    };
    let out = agent(&d.addr, key, &["--env", env, "--", "sh", "-c", &script])
        .output()
        .unwrap();
    no_values(&stdout(&out));
    no_values(&stderr(&out));
    out.status.success()
}

/// (version, current, created_by) of `runseal secrets history X --output json`.
fn history(d: &Daemon, key: &str, env: &str) -> Vec<(u64, bool, String)> {
    let out = ok(cli(
        d,
        key,
        &["secrets", "history", "X", "--env", env, "--output", "json"],
    ));
    json(&out)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["current"].as_bool().unwrap(),
                v["created_by"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn key_id(key: &str) -> String {
    key.split(':').next().unwrap().to_string()
}

#[test]
fn history_rollback_and_purge_keep_numbers_and_never_show_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let reader = &new_key(&d, &admin, &["snapshot:main"]);
    for v in ["hist-value-one", "hist-value-two", "hist-value-three"] {
        ok(cli(&d, &admin, &["secrets", "set", &format!("X={v}")]));
    }
    let me = key_id(&admin);
    assert_eq!(
        history(&d, &admin, "main"),
        [
            (3, true, me.clone()),
            (2, false, me.clone()),
            (1, false, me.clone())
        ]
    );
    // The pretty table: one row per version, the current one marked.
    let table = ok(cli(&d, &admin, &["secrets", "history", "X"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Version"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].starts_with('3') && lines[1].ends_with("yes"),
        "{table}"
    );

    // Rollback: version 1 becomes current as version 4, and the next runner gets it.
    let out = ok(cli(&d, &admin, &["secrets", "rollback", "X", "--to", "1"]));
    assert!(out.contains("version 1"), "{out}");
    let h = history(&d, &admin, "main");
    assert_eq!(h[0], (4, true, me.clone()));
    assert!(h[1..].iter().all(|(_, current, _)| !current), "{h:?}");
    assert!(runner_sees(&d, reader, "main", Some("hist-value-one")));

    // Unset keeps the versions; a rollback sets the name again.
    ok(cli(&d, &admin, &["secrets", "unset", "X"]));
    assert!(runner_sees(&d, reader, "main", None));
    let h = history(&d, &admin, "main");
    assert_eq!(h.len(), 4);
    assert!(h.iter().all(|(_, current, _)| !current), "{h:?}");
    ok(cli(&d, &admin, &["secrets", "rollback", "X", "--to", "2"]));
    assert!(runner_sees(&d, reader, "main", Some("hist-value-two")));
    assert_eq!(history(&d, &admin, "main")[0].0, 5);

    // A version that is not kept, and rolling back to the current one, are refused.
    let out = cli(&d, &admin, &["secrets", "rollback", "X", "--to", "9"]);
    cli_refused(&out, "version 9");
    let out = cli(&d, &admin, &["secrets", "rollback", "X", "--to", "5"]);
    cli_refused(&out, "already the current value");

    // Purge one leaked version: gone for good; the current one cannot be purged alone.
    ok(cli(
        &d,
        &admin,
        &["secrets", "purge", "X", "--version", "3"],
    ));
    let kept: Vec<u64> = history(&d, &admin, "main").iter().map(|h| h.0).collect();
    assert_eq!(kept, [5, 4, 2, 1]);
    let out = cli(&d, &admin, &["secrets", "rollback", "X", "--to", "3"]);
    cli_refused(&out, "version 3");
    let out = cli(&d, &admin, &["secrets", "purge", "X", "--version", "5"]);
    cli_refused(&out, "current value");
    assert!(runner_sees(&d, reader, "main", Some("hist-value-two")));

    // Purge everything: no value, no history; a later set never reuses a number.
    ok(cli(&d, &admin, &["secrets", "purge", "X"]));
    assert!(runner_sees(&d, reader, "main", None));
    let out = cli(&d, &admin, &["secrets", "history", "X"]);
    cli_refused(&out, "not set");
    ok(cli(&d, &admin, &["secrets", "set", "X=hist-value-three"]));
    assert_eq!(history(&d, &admin, "main"), [(6, true, me.clone())]);

    // Scopes: read may list the history, only write may roll back or purge.
    let read = &new_key(&d, &admin, &["read:main"]);
    assert_eq!(history(&d, read, "main").len(), 1);
    for args in [
        &["secrets", "rollback", "X", "--to", "6"][..],
        &["secrets", "purge", "X"],
    ] {
        let out = cli(&d, read, args);
        cli_refused(&out, "lacks the scope write:main");
    }
    assert!(runner_sees(&d, reader, "main", Some("hist-value-three")));

    // Every change is audited, none with a value.
    let audit = ok(cli(&d, &admin, &["audit", "--output", "json"]));
    for action in ["secrets.rollback", "secrets.purge"] {
        assert!(audit.contains(action), "{action} is not audited: {audit}");
    }
    // A master-key rotation (while runseald runs) keeps every kept version: a rollback to a
    // version set before it works, after a restart on the new key too.
    let data = dir.path().join("data");
    let out = Command::new(common::RUNSEALD)
        .args(["rotate-master-key", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");
    let d = Daemon::start(&data, &[], &[]);
    ok(cli(&d, &admin, &["secrets", "set", "X=hist-value-one"]));
    ok(cli(&d, &admin, &["secrets", "rollback", "X", "--to", "6"]));
    assert!(runner_sees(&d, reader, "main", Some("hist-value-three")));
    // verify opens every kept version too.
    let out = common::runseald_verify(&data, None);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("kept versions checked, 0 failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn only_the_configured_number_of_versions_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "[limits]\nversions_kept = 3\n");
    let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
    let admin = d.admin_key();
    for i in 1..=5 {
        ok(cli(&d, &admin, &["secrets", "set", &format!("X=v{i}")]));
    }
    let kept: Vec<u64> = history(&d, &admin, "main").iter().map(|h| h.0).collect();
    assert_eq!(kept, [5, 4, 3]);
    let out = cli(&d, &admin, &["secrets", "rollback", "X", "--to", "1"]);
    cli_refused(&out, "not kept");
}

#[tokio::test]
async fn a_kept_version_changed_in_the_database_is_refused_and_verify_names_it() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    admin
        .secrets()
        .set("X", b"one".to_vec(), "main")
        .await
        .unwrap();
    admin
        .secrets()
        .set("X", b"two".to_vec(), "main")
        .await
        .unwrap();
    // An attacker with the database renumbers version 1 as version 9 (as if it were newer).
    let path = s.dir.path().join("data").join("runseal.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE secret_versions SET version = 9 WHERE name = 'X' AND version = 1",
        [],
    )
    .unwrap();
    drop(c);
    let e = admin
        .lifecycle()
        .history("X", "main")
        .await
        .expect_err("a tampered history must not be served");
    assert_eq!(e.code(), Some(Code::DataLoss), "{e}");
    let e = admin
        .lifecycle()
        .rollback("X", 9, "main")
        .await
        .expect_err("a tampered version must not be rolled back to");
    assert_eq!(e.code(), Some(Code::DataLoss), "{e}");
    // verify (beside the running server) names the row.
    let out = common::runseald_verify(path.parent().unwrap(), None);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("TAMPERED secret_versions main/X version 9"),
        "{}",
        stdout(&out)
    );
    s.stop().await;
}

/// A new key with `scopes`, created by `admin`: its key line.
fn new_key(d: &Daemon, admin: &str, scopes: &[&str]) -> String {
    let mut args = vec!["keys", "create"];
    for scope in scopes {
        args.extend(["--scope", *scope]);
    }
    ok(cli(d, admin, &args)).trim().to_string()
}

/// A runseald with the environments main and staging, and its admin key; its data dir lives
/// as long as the returned directory.
fn with_staging() -> (tempfile::TempDir, Daemon, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    ok(cli(&d, &admin, &["env", "create", "staging"]));
    (dir, d, admin)
}

#[test]
fn diff_compares_names_and_values_only_for_keys_that_may_read_both() {
    let (_dir, d, admin) = with_staging();
    ok(cli(
        &d,
        &admin,
        &[
            "secrets",
            "set",
            "SAME=copy-value-alpha",
            "DIFF=copy-value-alpha",
            "ONLY_MAIN=x",
        ],
    ));
    ok(cli(
        &d,
        &admin,
        &[
            "secrets",
            "set",
            "SAME=copy-value-alpha",
            "DIFF=copy-value-beta",
            "ONLY_STAGING=y",
            "--env",
            "staging",
        ],
    ));

    // Admin reads names, not values: no comparison.
    let out = ok(cli(
        &d,
        &admin,
        &["env", "diff", "main", "staging", "--output", "json"],
    ));
    let v = json(&out);
    assert_eq!(v["only_in_a"], serde_json::json!(["ONLY_MAIN"]));
    assert_eq!(v["only_in_b"], serde_json::json!(["ONLY_STAGING"]));
    assert_eq!(v["values_compared"], false);
    let both: Vec<&str> = v["in_both"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(both, ["DIFF", "SAME"]);
    assert!(v["in_both"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["equal"].is_null()));
    let pretty = ok(cli(&d, &admin, &["env", "diff", "main", "staging"]));
    assert!(pretty.contains("values not compared"), "{pretty}");

    // With snapshot: on both, the server says which are equal.
    let both_key = &new_key(
        &d,
        &admin,
        &[
            "read:main",
            "read:staging",
            "snapshot:main",
            "snapshot:staging",
        ],
    );
    let out = ok(cli(
        &d,
        both_key,
        &["env", "diff", "main", "staging", "--output", "json"],
    ));
    let v = json(&out);
    assert_eq!(v["values_compared"], true);
    let equal: Vec<(String, bool)> = v["in_both"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["equal"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        equal,
        [("DIFF".to_string(), false), ("SAME".to_string(), true)]
    );

    // A key that may read only one of them is refused.
    let one = &new_key(&d, &admin, &["read:main"]);
    let out = cli(&d, one, &["env", "diff", "main", "staging"]);
    cli_refused(&out, "lacks the scope read:staging");
}

#[test]
fn copy_reseals_on_the_server_atomically_and_needs_snapshot_of_the_source() {
    let (_dir, d, admin) = with_staging();
    ok(cli(
        &d,
        &admin,
        &[
            "secrets",
            "set",
            "X=copy-value-alpha",
            "--not-exposed-by-default",
        ],
    ));
    ok(cli(&d, &admin, &["secrets", "set", "Y=copy-value-beta"]));
    let staging_reader = &new_key(&d, &admin, &["snapshot:staging"]);

    // read:main is not enough: a copy then a snapshot of staging would read main's values.
    let weak = &new_key(&d, &admin, &["read:main", "write:staging"]);
    let out = cli(
        &d,
        weak,
        &["secrets", "copy", "X", "--from", "main", "--to", "staging"],
    );
    cli_refused(&out, "lacks the scope snapshot:main");
    // Admin is not snapshot: either.
    let out = cli(
        &d,
        &admin,
        &["secrets", "copy", "X", "--from", "main", "--to", "staging"],
    );
    cli_refused(&out, "lacks the scope snapshot:main");

    let copier = &new_key(&d, &admin, &["snapshot:main", "write:staging"]);
    // A missing name refuses the whole copy: nothing reaches staging.
    let out = cli(
        &d,
        copier,
        &[
            "secrets", "copy", "X", "MISSING", "--from", "main", "--to", "staging",
        ],
    );
    cli_refused(&out, "MISSING");
    let listed = ok(cli(
        &d,
        &admin,
        &["secrets", "list", "--env", "staging", "--output", "json"],
    ));
    assert_eq!(json(&listed)["secrets"], serde_json::json!([]), "{listed}");

    let out = ok(cli(
        &d,
        copier,
        &[
            "secrets", "copy", "X", "Y", "--from", "main", "--to", "staging",
        ],
    ));
    assert!(out.contains("copied X, Y from main to staging"), "{out}");
    // Y is exposed by default, X is not (its setting came along): check each in a runner.
    assert!(runner_sees(&d, staging_reader, "staging", None));
    let out = agent(
        &d.addr,
        staging_reader,
        &[
            "--env",
            "staging",
            "--only",
            "X",
            "--",
            "sh",
            "-c",
            "test \"$X\" = copy-value-alpha",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agent(
        &d.addr,
        staging_reader,
        &[
            "--env",
            "staging",
            "--",
            "sh",
            "-c",
            "test \"$Y\" = copy-value-beta",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let audit = ok(cli(&d, &admin, &["audit", "--output", "json"]));
    assert!(
        audit.contains("secrets.copy") && audit.contains("secrets.copy_out"),
        "{audit}"
    );
}

/// `runseal watch ARGS --output json` as a child, its lines on a channel.
pub struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    pub fn start(addr: &str, key: &str, args: &[&str]) -> Self {
        let mut child = Command::new(RUNSEAL)
            .arg("watch")
            .args(args)
            .args(["--output", "json"])
            .env_clear()
            .env("RUNSEAL_ADDR", addr)
            .env("RUNSEAL_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next event: (environment, revision, action, names).
    pub fn next(&self) -> (String, u64, String, Vec<String>) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("an event within 20 s");
        no_values(&line);
        let v = json(&line);
        (
            v["environment"].as_str().unwrap().to_string(),
            v["revision"].as_u64().unwrap(),
            v["action"].as_str().unwrap().to_string(),
            v["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect(),
        )
    }

    /// Nothing more arrives within `wait`.
    pub fn quiet(&self, wait: Duration) -> bool {
        self.lines.recv_timeout(wait).is_err()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocks until the server has the watch open: a change after `after` (the revision the watch
/// resumes from, so none is missed however long the watcher takes to connect) arrives.
fn synced(w: &Watcher, d: &Daemon, key: &str, env: &str, after: u64) -> u64 {
    ok(cli(d, key, &["secrets", "set", "PROBE=p", "--env", env]));
    let (e, rev, _, names) = w.next();
    assert_eq!(
        (e.as_str(), rev, names),
        (env, after + 1, vec!["PROBE".to_string()])
    );
    rev
}

#[test]
fn watch_prints_each_change_once_in_order_and_resumes_after_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    // A short idle deadline: an open watch is a call in flight, which it must not cut.
    let config = common::write_config(dir.path(), "[net]\nidle_timeout = \"1s\"\n");
    let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
    let admin = d.admin_key();
    ok(cli(&d, &admin, &["env", "create", "staging"]));
    let watcher_key = &new_key(&d, &admin, &["read:main", "read:staging"]);

    // Both environments are at revision 0: watching from there misses nothing.
    let w = Watcher::start(
        &d.addr,
        watcher_key,
        &["--env", "main@0", "--env", "staging@0"],
    );
    let start = synced(&w, &d, &admin, "main", 0);
    ok(cli(&d, &admin, &["secrets", "set", "A=1", "B=2"]));
    ok(cli(
        &d,
        &admin,
        &["secrets", "set", "S=1", "--env", "staging"],
    ));
    ok(cli(&d, &admin, &["secrets", "unset", "A"]));
    assert_eq!(
        w.next(),
        (
            "main".into(),
            start + 1,
            "secrets.set".into(),
            vec!["A".into(), "B".into()]
        )
    );
    assert_eq!(
        w.next(),
        ("staging".into(), 1, "secrets.set".into(), vec!["S".into()])
    );
    assert_eq!(
        w.next(),
        (
            "main".into(),
            start + 2,
            "secrets.unset".into(),
            vec!["A".into()]
        )
    );
    // Longer than the idle deadline: the watch is still open and still delivers.
    assert!(w.quiet(Duration::from_millis(2500)), "an event nobody made");
    ok(cli(&d, &admin, &["secrets", "set", "C=3"]));
    assert_eq!(
        w.next(),
        (
            "main".into(),
            start + 3,
            "secrets.set".into(),
            vec!["C".into()]
        )
    );
    w.stop();

    // Changes made while no one watched are delivered on resume, exactly once, in order.
    ok(cli(&d, &admin, &["secrets", "set", "D=4"]));
    let from = format!("main@{}", start + 3);
    let w = Watcher::start(&d.addr, watcher_key, &["--env", &from]);
    assert_eq!(
        w.next(),
        (
            "main".into(),
            start + 4,
            "secrets.set".into(),
            vec!["D".into()]
        )
    );
    ok(cli(&d, &admin, &["secrets", "set", "E=5"]));
    let (_, rev, action, names) = w.next();
    assert_eq!(
        (rev, action.as_str(), names),
        (start + 5, "secrets.set", vec!["E".to_string()])
    );
    assert!(
        w.quiet(Duration::from_millis(1500)),
        "an event delivered twice"
    );
    w.stop();

    // A resume point the environment never reached is refused with a resync hint.
    let out = cli(&d, watcher_key, &["watch", "--env", "staging@99"]);
    cli_refused(&out, "resync");
    // A key without read: on an environment may not watch it.
    let other = &new_key(&d, &admin, &["read:staging"]);
    let out = cli(&d, other, &["watch", "--env", "main"]);
    cli_refused(&out, "lacks the scope read:main");
    // A key that may read nothing has nothing to watch.
    let issuer = &new_key(&d, &admin, &["issue:staging"]);
    let out = cli(&d, issuer, &["watch"]);
    cli_refused(&out, "may read no environment");
}

#[test]
fn stopping_runseald_ends_open_watches() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let mut w = Watcher::start(&d.addr, &admin, &["--env", "main@0"]);
    synced(&w, &d, &admin, "main", 0);
    let (clean, log) = d.terminate();
    assert!(
        clean,
        "runseald did not stop cleanly with a watch open: {log}"
    );
    let status = w.child.wait().unwrap();
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(w.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("shutting down"), "{err}");
}

#[tokio::test]
async fn a_resume_point_older_than_the_kept_changes_must_resync_and_watches_are_capped_per_key() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    for i in 0..3 {
        admin
            .secrets()
            .set("X", format!("v{i}").into_bytes(), "main")
            .await
            .unwrap();
    }
    // The audit retention drops the change log with the audit rows.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    s.service.store.prune_audit(later).await.unwrap();
    let e = admin
        .lifecycle()
        .watch(vec![("main".into(), Some(1))])
        .await
        .expect_err("a resume point whose changes are gone");
    assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
    assert!(e.to_string().contains("resync"), "{e}");
    // From the current revision it works.
    let mut watches = Vec::new();
    for _ in 0..runseal::service::MAX_WATCHES_PER_KEY {
        watches.push(
            admin
                .lifecycle()
                .watch(vec![("main".into(), Some(3))])
                .await
                .unwrap(),
        );
    }
    let e = admin
        .lifecycle()
        .watch(vec![("main".into(), None)])
        .await
        .expect_err("one watch over the cap");
    assert_eq!(e.code(), Some(Code::ResourceExhausted), "{e}");
    // A closed watch frees its slot.
    drop(watches.pop());
    let mut again = None;
    for _ in 0..100 {
        match admin.lifecycle().watch(vec![("main".into(), None)]).await {
            Ok(w) => {
                again = Some(w);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(again.is_some(), "a closed watch never gave its slot back");
    s.stop().await;
}
