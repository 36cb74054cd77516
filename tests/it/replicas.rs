//! Several runseald replicas on one PostgreSQL database, as real processes: joining, the master
//! key check, concurrent writes through two replicas, single-use tokens across replicas,
//! read-your-writes, and a replica killed during a stream of runner starts.
//!
//! Compiled only when `RUNSEAL_TEST_DATABASE_URL` is set (`.ci/run` sets it).
#![cfg(runseal_pg_tests)]

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{ok, runseal, stderr, stdout, Daemon, PgDb};
use runseal::auth::Credential;
use runseal::client::{Client, IssueOptions};
use runseal::secret::SecretBytes;

/// Two replicas on one fresh database; `a` initialised it, `b` joined with a copy of the key.
struct Pair {
    a: Daemon,
    b: Daemon,
    admin: String,
    dir: tempfile::TempDir,
    pg: PgDb,
}

fn join_dir(first: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();
    let key = dir.join("master.key");
    std::fs::copy(first.join("master.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

impl Pair {
    fn start() -> Self {
        let pg = PgDb::create();
        let dir = tempfile::tempdir().unwrap();
        let (da, db) = (dir.path().join("a"), dir.path().join("b"));
        let a = Daemon::start(&da, &["--database-url", &pg.url], &[]);
        let admin = a.admin_key();
        join_dir(&da, &db);
        let b = Daemon::start(&db, &["--database-url", &pg.url], &[]);
        Self {
            a,
            b,
            admin,
            dir,
            pg,
        }
    }

    fn cli(&self, d: &Daemon, args: &[&str]) -> String {
        ok(runseal(&d.addr, &self.admin, args))
    }

    async fn client(&self, d: &Daemon) -> Client {
        Client::connect(&d.addr, Credential::parse(&self.admin).unwrap())
            .await
            .unwrap()
    }
}

fn agent(addrs: &str, token: &str, runner_id: &str, script: &str) -> Command {
    let mut c = common::agent(
        addrs,
        token,
        &["--deadline", "20s", "--", "sh", "-c", script],
    );
    c.env("RUNSEAL_RUNNER_ID", runner_id);
    c
}

#[test]
fn a_joining_replica_creates_no_admin_key_and_a_wrong_master_key_is_refused() {
    let p = Pair::start();
    assert!(
        !p.b.data_dir.join("admin.key").exists(),
        "the joining replica wrote a second admin key"
    );
    assert!(!p.b.data_dir.join("admin.key.new").exists());
    // Exactly one key in the database: the first replica's admin key, visible through both.
    for d in [&p.a, &p.b] {
        let keys = p.cli(d, &["keys", "list"]);
        let admin_id = p.admin.split(':').next().unwrap();
        assert!(keys.contains(admin_id), "{keys}");
        assert_eq!(
            keys.lines().filter(|l| l.contains("admin")).count(),
            1,
            "one admin key in the shared database:\n{keys}"
        );
    }

    // A third replica without the master key refuses to start, and says what it needs.
    let dc = p.dir.path().join("c");
    std::fs::create_dir(&dc).unwrap();
    // runseald refuses a data dir that group or others may enter.
    std::fs::set_permissions(&dc, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let log = Daemon::try_start(&dc, &["--database-url", &p.pg.url], &[])
        .err()
        .expect("a replica without the master key started");
    assert!(
        log.contains("master.key is missing, but the database is initialised"),
        "unclear refusal:\n{log}"
    );
    // With a master key of its own, it refuses too.
    let other = runseal::seal::MasterKey::generate();
    runseal::datadir::create_private(&dc.join("master.key"), other.expose()).unwrap();
    let log = Daemon::try_start(&dc, &["--database-url", &p.pg.url], &[])
        .err()
        .expect("a replica with a different master key started");
    assert!(
        log.contains("does not match this database"),
        "unclear refusal:\n{log}"
    );
    assert!(
        !dc.join("admin.key").exists(),
        "the refused replica wrote an admin key"
    );
}

#[test]
fn two_replicas_starting_together_on_an_empty_database_make_one_admin_key() {
    let pg = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    // Both dirs get the same provisioned master key, as an operator would deliver it.
    std::fs::create_dir(&da).unwrap();
    // runseald refuses a data dir that group or others may enter.
    std::fs::set_permissions(&da, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let key = runseal::seal::MasterKey::generate();
    runseal::datadir::create_private(&da.join("master.key"), key.expose()).unwrap();
    join_dir(&da, &db);

    let url = pg.url.clone();
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| Daemon::start(&da, &["--database-url", &url], &[]));
        let hb = s.spawn(|| Daemon::start(&db, &["--database-url", &url], &[]));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let written: Vec<&PathBuf> = [&da, &db]
        .into_iter()
        .filter(|d| d.join("admin.key").exists())
        .collect();
    assert_eq!(written.len(), 1, "exactly one replica initialised");
    assert!(!da.join("admin.key.new").exists() && !db.join("admin.key.new").exists());
    let admin = std::fs::read_to_string(written[0].join("admin.key")).unwrap();
    for d in [&a, &b] {
        ok(runseal(&d.addr, admin.trim(), &["secrets", "list"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_through_two_replicas_lose_nothing_and_never_skip_a_revision() {
    let p = Pair::start();
    const WRITERS: usize = 4;
    const SETS: usize = 25;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = p.client(if w % 2 == 0 { &p.a } else { &p.b }).await;
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..SETS {
                // Everyone writes the shared name, and a name of its own.
                let rev = client
                    .secrets()
                    .set_many(
                        "main",
                        vec![
                            (
                                "SHARED".into(),
                                SecretBytes::new(format!("w{w}-{i}").into_bytes()),
                            ),
                            (
                                format!("OWN_{w}_{i}"),
                                SecretBytes::new(format!("{w}.{i}").into_bytes()),
                            ),
                        ],
                    )
                    .await
                    .unwrap();
                revisions.push((rev, format!("w{w}-{i}")));
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let revs: BTreeSet<u64> = all.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        revs.len(),
        WRITERS * SETS,
        "a revision was handed out twice"
    );
    assert_eq!(
        revs.iter().copied().collect::<Vec<_>>(),
        (1..=(WRITERS * SETS) as u64).collect::<Vec<_>>(),
        "revisions skipped or out of range"
    );

    // The value of the shared name is the one written at the last revision; no own name lost.
    let last = all.iter().max_by_key(|(r, _)| *r).unwrap().1.clone();
    let admin = p.client(&p.b).await;
    let (_, snapshot_key) = admin
        .keys()
        .create(&["snapshot:main".to_string()], "reader")
        .await
        .unwrap();
    let reader = Client::connect(&p.a.addr, snapshot_key).await.unwrap();
    let snap = reader
        .runners()
        .snapshot("main", "checker", &[])
        .await
        .unwrap();
    assert_eq!(snap.revision, (WRITERS * SETS) as u64);
    let shared = snap.secrets.iter().find(|(n, _)| n == "SHARED").unwrap();
    assert!(
        shared.1.expose() == last.as_bytes(),
        "SHARED does not hold the value of the last revision"
    );
    let names: BTreeSet<&str> = snap.secrets.iter().map(|(n, _)| n.as_str()).collect();
    for w in 0..WRITERS {
        for i in 0..SETS {
            assert!(
                names.contains(format!("OWN_{w}_{i}").as_str()),
                "lost OWN_{w}_{i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_use_token_is_redeemed_exactly_once_across_replicas() {
    let p = Pair::start();
    p.cli(&p.a, &["secrets", "set", "K=v"]);
    let admin = p.client(&p.a).await;
    let tokens = admin
        .runners()
        .issue(
            "main",
            IssueOptions {
                count: 20,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let addrs = Arc::new([p.a.addr.clone(), p.b.addr.clone()]);
    for t in tokens {
        // Four runners with different ids race for each token, two on each replica.
        let mut racers = Vec::new();
        for i in 0..4 {
            let addr = addrs[i % 2].clone();
            let cred = t.token.clone();
            racers.push(tokio::spawn(async move {
                let c = Client::connect(&addr, cred).await.unwrap();
                c.runners()
                    .snapshot("", &format!("racer-{i}"), &[])
                    .await
                    .map(|s| s.revision)
            }));
        }
        let mut won = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(_) => won += 1,
                Err(e) => assert_eq!(
                    e.code(),
                    Some(tonic::Code::Unauthenticated),
                    "a losing racer got the wrong error"
                ),
            }
        }
        assert_eq!(won, 1, "token {} was redeemed {won} times", t.token_id);
    }
}

#[test]
fn a_write_through_one_replica_is_seen_by_the_next_runner_on_the_other() {
    let p = Pair::start();
    // Warm the other replica's read path first, so a stale cache would show.
    p.cli(&p.a, &["secrets", "set", "VERSION=0"]);
    for i in 1..=15 {
        let (writer, reader) = if i % 2 == 0 {
            (&p.a, &p.b)
        } else {
            (&p.b, &p.a)
        };
        p.cli(writer, &["secrets", "set", &format!("VERSION={i}")]);
        let token = p.cli(writer, &["runner-token", "issue"]);
        let out = agent(
            &reader.addr,
            token.trim(),
            &format!("ryw-{i}"),
            "printf %s \"$VERSION\"",
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out),
            i.to_string(),
            "a runner on the other replica did not see write {i}"
        );
    }
}

#[test]
fn no_runner_fails_when_a_replica_is_killed_during_a_stream_of_starts() {
    let p = Pair::start();
    p.cli(&p.a, &["secrets", "set", "CHECK=present"]);
    let tokens = p.cli(&p.a, &["runner-token", "issue", "--count", "60"]);
    let tokens: Vec<String> = tokens.lines().map(str::to_string).collect();
    assert_eq!(tokens.len(), 60);
    // Both orders, so about half of the runners try the replica that dies first.
    let both = format!("{},{}", p.a.addr, p.b.addr);

    let Pair { a, b, .. } = p;
    // What the killed replica logged until it died: the starts it served.
    let a_log = a.log.clone();
    let mut a = Some(a);
    let mut failures = Vec::new();
    let mut running = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if i == 20 {
            // SIGKILL in the middle of the stream, while runners are fetching.
            a.take().unwrap().kill9();
        }
        running.push((
            i,
            agent(
                &both,
                token,
                &format!("stream-{i}"),
                "test \"$CHECK\" = present",
            )
            .spawn()
            .unwrap(),
        ));
        if running.len() >= 8 {
            let (i, c) = running.remove(0);
            let out = c.wait_with_output().unwrap();
            if !out.status.success() {
                failures.push((i, stderr(&out)));
            }
        }
    }
    for (i, c) in running {
        let out = c.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push((i, stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "runners failed: {failures:?}");

    // Every start was recorded, once, whichever replica served it.
    let listed = ok(runseal(
        &b.addr,
        &p.admin,
        &["runners", "list", "--env", "main", "--output", "json"],
    ));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let mut recorded: Vec<String> = listed["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap().to_string())
        .collect();
    recorded.sort();
    let mut expected: Vec<String> = (0..tokens.len()).map(|i| format!("stream-{i}")).collect();
    expected.sort();
    assert_eq!(recorded, expected, "the runner records");
    // And the killed replica had served some of them: the kill hit a replica in use.
    let served_by_a: BTreeSet<String> = a_log
        .lock()
        .unwrap()
        .lines()
        .filter(|l| l.contains("snapshot served"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("runner_id=stream-"))
                .map(|n| format!("stream-{n}"))
        })
        .collect();
    assert!(
        !served_by_a.is_empty(),
        "no start went to the replica that was killed"
    );
    assert!(
        served_by_a.iter().all(|r| expected.contains(r)),
        "{served_by_a:?}"
    );
}

/// A dashboard session lives in the database: signed in through one replica, it keeps working
/// through the other (the Host differs, the cookie and its CSRF token are the same).
#[tokio::test]
async fn a_dashboard_session_from_one_replica_works_on_the_other() {
    use common::web::WebClient;
    let pg = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let web = ["--database-url", &pg.url, "--web-listen", "127.0.0.1:0"];
    let a = Daemon::start(&da, &web, &[]);
    let admin = a.admin_key();
    join_dir(&da, &db);
    let b = Daemon::start(&db, &web, &[]);
    let mut on_a = WebClient::new(&a.web_addr());
    assert_eq!(on_a.sign_in(&admin).await.status, 303);
    let csrf = on_a.csrf().await;
    let mut on_b = WebClient::new(&b.web_addr());
    on_b.cookies = on_a.cookies.clone();
    let res = on_b
        .post(
            "/environments/main/secrets",
            &[
                ("csrf", &csrf),
                ("name", "VIA_B"),
                ("value", "replica-value-0001"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let page = on_a.get("/environments/main").await;
    assert!(page.body.contains("VIA_B"));
    // Signing out through b ends it on a too.
    assert_eq!(on_b.post("/logout", &[("csrf", &csrf)]).await.status, 303);
    assert_eq!(on_a.get("/environments/main").await.status, 401);
    drop((a, b));
}

#[test]
fn history_and_rollback_through_one_replica_are_seen_through_the_other() {
    let p = Pair::start();
    for v in ["first-value", "second-value"] {
        p.cli(&p.a, &["secrets", "set", &format!("X={v}")]);
    }
    let h = p.cli(&p.b, &["secrets", "history", "X", "--output", "json"]);
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let versions: Vec<(u64, bool)> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(2, true), (1, false)]);
    p.cli(&p.b, &["secrets", "rollback", "X", "--to", "1"]);
    let token = p.cli(&p.a, &["runner-token", "issue"]);
    let out = agent(
        &p.a.addr,
        token.trim(),
        "hist-1",
        "test \"$X\" = first-value",
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "the other replica's runner did not get the rolled-back value: {}",
        stderr(&out)
    );
}

#[test]
fn a_watcher_on_one_replica_sees_every_change_through_the_other_once_in_order_across_a_reconnect() {
    use crate::lifecycle::Watcher;
    use std::time::Duration;
    let p = Pair::start();
    p.cli(&p.a, &["secrets", "set", "START=1"]);
    let w = Watcher::start(&p.b.addr, &p.admin, &["--env", "main@1"]);
    for i in 2..=6 {
        p.cli(&p.a, &["secrets", "set", &format!("N{i}=v")]);
    }
    for i in 2..=6 {
        assert_eq!(
            w.next(),
            (
                "main".into(),
                i,
                "secrets.set".into(),
                vec![format!("N{i}")]
            )
        );
    }
    w.stop();
    // Changes while nobody watches, through A; the watcher resumes on B after revision 6.
    p.cli(&p.a, &["secrets", "unset", "N2"]);
    p.cli(&p.a, &["secrets", "set", "N7=v"]);
    let w = Watcher::start(&p.b.addr, &p.admin, &["--env", "main@6"]);
    assert_eq!(
        w.next(),
        ("main".into(), 7, "secrets.unset".into(), vec!["N2".into()])
    );
    assert_eq!(
        w.next(),
        ("main".into(), 8, "secrets.set".into(), vec!["N7".into()])
    );
    p.cli(&p.a, &["secrets", "set", "N9=v"]);
    assert_eq!(
        w.next(),
        ("main".into(), 9, "secrets.set".into(), vec!["N9".into()])
    );
    assert!(
        w.quiet(Duration::from_millis(2500)),
        "an event delivered twice"
    );
    w.stop();
}
