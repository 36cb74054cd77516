//! The store conformance suite: every store behaviour of the core and agent features, written
//! once and run against each backend (SQLite always; PostgreSQL when RUNSEAL_TEST_DATABASE_URL
//! is set at build time, as `.ci/run` does).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{refused, v, Backend, TestServer};
use runseal::client::{Client, ClientError, IssueOptions};
use runseal::names::{Limits, NamePolicy};
use runseal::service::ManualClock;
use tonic::Code;

async fn server(backend: Backend) -> TestServer {
    TestServer::start_on(backend, Limits::default(), NamePolicy::default()).await
}

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Code {
    r.expect_err("expected an error")
        .code()
        .expect("a gRPC status")
}

async fn snapshot(c: &Client, env: &str, only: &[&str]) -> Vec<(String, String)> {
    let token = c
        .runners()
        .issue(env, IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    let runner = Client::from_channel(
        runseal::client::connect_channel(c.addr(), None, None, Duration::from_secs(5))
            .await
            .unwrap(),
        &token.token,
        c.addr(),
    );
    let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
    let snap = runner.runners().snapshot("", "", &only).await.unwrap();
    snap.secrets
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
        .collect()
}

async fn set_then_list_update_and_unset(b: Backend) {
    let clock = Arc::new(ManualClock::new());
    let s = TestServer::start_on_clock(b, clock.clone()).await;
    let c = s.admin_client().await;
    let r1 = c
        .secrets()
        .set_many("main", vec![("A".into(), v("1")), ("B".into(), v("2"))])
        .await
        .unwrap();
    assert_eq!(r1, 1);
    let list = c.secrets().list("main").await.unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    let created = list[0].created_at;
    clock.advance(Duration::from_millis(5));
    assert_eq!(c.secrets().set("A", v("1b"), "main").await.unwrap(), 2);
    let list = c.secrets().list("main").await.unwrap();
    assert_eq!(list[0].created_at, created, "an update keeps created_at");
    let ms = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        t.seconds * 1000 + t.nanos as i64 / 1_000_000
    };
    assert!(
        ms(&list[0].updated_at) > ms(&created),
        "an update moves updated_at"
    );
    assert_eq!(
        snapshot(&c, "main", &[]).await,
        [("A".into(), "1b".into()), ("B".into(), "2".into())]
    );
    assert_eq!(c.secrets().unset("B", "main").await.unwrap(), 3);
    assert_eq!(code(c.secrets().unset("B", "main").await), Code::NotFound);
    let names = common::secret_names(&c, "main").await;
    assert_eq!(names, ["A"]);
}

async fn environments_are_separate_and_main_is_permanent(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    assert_eq!(
        code(c.secrets().set("A", v("x"), "staging").await),
        Code::NotFound
    );
    c.environments().create("staging").await.unwrap();
    assert_eq!(
        code(c.environments().create("staging").await),
        Code::AlreadyExists
    );
    c.secrets().set("ONLY_MAIN", v("m"), "main").await.unwrap();
    c.secrets().set("SHARED", v("s"), "staging").await.unwrap();
    let staging = common::secret_names(&c, "staging").await;
    assert_eq!(staging, ["SHARED"], "no fallback to main");
    assert_eq!(
        snapshot(&c, "staging", &[]).await,
        [("SHARED".into(), "s".into())]
    );
    let envs: Vec<(String, u32)> = c
        .environments()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.secret_count))
        .collect();
    assert_eq!(envs, [("main".into(), 1), ("staging".into(), 1)]);
    assert_eq!(
        code(c.environments().delete("main", true).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(c.environments().delete("staging", false).await),
        Code::FailedPrecondition
    );
    assert_eq!(c.environments().delete("staging", true).await.unwrap(), 1);
    assert_eq!(code(c.secrets().list("staging").await), Code::NotFound);
    // Re-created, it starts empty.
    c.environments().create("staging").await.unwrap();
    assert!(c.secrets().list("staging").await.unwrap().is_empty());
}

async fn batches_are_atomic_and_limits_hold(b: Backend) {
    let limits = Limits {
        max_secrets_per_environment: 3,
        max_environment_bytes: 10,
        ..Limits::default()
    };
    let s = TestServer::start_on(b, limits, NamePolicy::default()).await;
    let c = s.admin_client().await;
    c.secrets()
        .set_many("main", vec![("A".into(), v("12")), ("B".into(), v("34"))])
        .await
        .unwrap();
    let before = c.secrets().list("main").await.unwrap().len();
    let too_many = c
        .secrets()
        .set_many("main", vec![("C".into(), v("1")), ("D".into(), v("1"))])
        .await;
    assert_eq!(code(too_many), Code::ResourceExhausted);
    let too_big = c.secrets().set("C", v("1234567"), "main").await;
    assert_eq!(code(too_big), Code::ResourceExhausted);
    let invalid_last = c
        .secrets()
        .set_many(
            "main",
            vec![("C".into(), v("1")), ("LD_PRELOAD".into(), v("x"))],
        )
        .await;
    assert_eq!(code(invalid_last), Code::InvalidArgument);
    assert_eq!(
        c.secrets().list("main").await.unwrap().len(),
        before,
        "nothing of a refused batch"
    );
    let env = s.store.environment("main").await.unwrap().unwrap();
    assert_eq!(
        env.revision, 1,
        "a refused batch does not bump the revision"
    );
    // Overwriting within the limits is fine.
    c.secrets()
        .set_many("main", vec![("A".into(), v("1234")), ("C".into(), v("1"))])
        .await
        .unwrap();
}

async fn revisions_count_every_change(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.environments().create("dev").await.unwrap();
    let mut last = 0;
    for i in 0..5 {
        let r = c
            .secrets()
            .set("K", v(&i.to_string()), "dev")
            .await
            .unwrap();
        assert_eq!(r, last + 1);
        last = r;
    }
    assert_eq!(c.secrets().unset("K", "dev").await.unwrap(), last + 1);
    let main = s.store.environment("main").await.unwrap().unwrap();
    assert_eq!(main.revision, 0, "other environments keep their revision");
}

async fn keys_are_hashed_scoped_touched_and_revocable(b: Backend) {
    let s = server(b).await;
    let admin = s.admin_client().await;
    let cred = s.key_with(&["write:main"]).await;
    let row = s.store.key(cred.key_id()).await.unwrap().unwrap();
    assert_ne!(
        row.secret_hash,
        cred.expose_secret().as_bytes(),
        "only a hash is stored"
    );
    assert!(row.last_used_at.is_none());
    let c = s.client(&cred).await;
    c.secrets().set("K", v("x"), "main").await.unwrap();
    let row = s.store.key(cred.key_id()).await.unwrap().unwrap();
    assert!(row.last_used_at.is_some(), "use is recorded");
    assert_eq!(code(c.keys().list().await), Code::PermissionDenied);
    admin.keys().revoke(cred.key_id()).await.unwrap();
    assert_eq!(code(c.secrets().list("main").await), Code::Unauthenticated);
    let listed = admin.keys().list().await.unwrap();
    let k = listed.iter().find(|k| k.key_id == cred.key_id()).unwrap();
    assert!(k.revoked_at.is_some());
    assert_eq!(
        code(admin.keys().revoke("rk_doesnotexist").await),
        Code::NotFound
    );
}

async fn audit_records_every_change_without_values(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.environments().create("qa").await.unwrap();
    c.secrets()
        .set_many(
            "qa",
            vec![("X".into(), v("value-x-1")), ("Y".into(), v("value-y-2"))],
        )
        .await
        .unwrap();
    c.secrets().unset("X", "qa").await.unwrap();
    let entries = c.audit().list("qa", 0).await.unwrap();
    let actions: Vec<(&str, Vec<String>)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.names.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("secrets.unset", vec!["X".to_string()]),
            ("secrets.set", vec!["X".to_string(), "Y".to_string()]),
            ("environment.create", vec![]),
        ]
    );
    assert!(entries.iter().all(|e| e.key_id == s.admin.key_id()));
    let all = format!("{:?}", c.audit().list("", 1000).await.unwrap());
    assert!(
        !all.contains("value-x-1") && !all.contains("value-y-2"),
        "a value reached the audit log"
    );
}

async fn runner_tokens_are_single_use_expire_and_revoke(b: Backend) {
    let clock = Arc::new(ManualClock::new());
    let s = TestServer::start_on_clock(b, clock.clone()).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("v"), "main").await.unwrap();
    let tokens = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                count: 3,
                ttl: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tokens.len(), 3);
    let stored = s
        .store
        .runner_token(&tokens[0].token_id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        stored.secret_hash,
        tokens[0].token.expose_secret().as_bytes()
    );
    let runner =
        |t: &runseal::client::IssuedToken| Client::from_channel(s_channel(&s), &t.token, &s.addr);
    let fut = runner(&tokens[0])
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    assert_eq!(fut.secrets.len(), 1);
    refused(
        runner(&tokens[0]).runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            tokens[0].token_id
        )],
        &[],
        "a used token",
    );
    c.runners().revoke(&tokens[1].token_id).await.unwrap();
    refused(
        runner(&tokens[1]).runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has been revoked",
            tokens[1].token_id
        )],
        &[],
        "a revoked token",
    );
    clock.advance(Duration::from_millis(1100));
    refused(
        runner(&tokens[2]).runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &[&format!("runner token {} has expired", tokens[2].token_id)],
        &[],
        "an expired token",
    );
    // A multi-use token.
    let multi = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                uses: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0);
    let r = runner(&multi);
    r.runners().snapshot("", "", &[]).await.unwrap();
    r.runners().snapshot("", "", &[]).await.unwrap();
    refused(
        r.runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            multi.token_id
        )],
        &[],
        "a multi-use token used up",
    );
}

fn s_channel(s: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(s.addr.clone())
        .unwrap()
        .connect_lazy()
}

async fn concurrent_redemption_of_one_token_succeeds_once(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("v"), "main").await.unwrap();
    for _ in 0..3 {
        let t = c
            .runners()
            .issue("main", IssueOptions::default())
            .await
            .unwrap()
            .remove(0);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let client = Client::from_channel(s_channel(&s), &t.token, &s.addr);
            tasks.push(tokio::spawn(async move {
                client
                    .runners()
                    .snapshot("", &format!("racer-{i}"), &[])
                    .await
                    .map(drop)
            }));
        }
        let mut wins = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                // A loser is told the token was used, not some other failure.
                res => {
                    refused(
                        res,
                        Code::Unauthenticated,
                        &[&format!(
                            "runner token {} has already been used",
                            t.token_id
                        )],
                        &[t.token.expose_secret().as_bytes()],
                        &format!("racer-{i}"),
                    );
                }
            }
        }
        assert_eq!(wins, 1);
    }
}

/// A burst of starts, committed together in batches: each single-use token starts one runner,
/// a token of 5 uses raced by 20 runners starts exactly 5, and every start that got a snapshot
/// (and only those) is recorded.
async fn a_burst_of_starts_takes_exactly_the_uses_there_are(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("v"), "main").await.unwrap();
    let single = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                count: 40,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let five = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                uses: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0);
    let mut tasks = Vec::new();
    let tokens = single
        .iter()
        .map(|t| t.token.clone())
        .chain(std::iter::repeat_n(five.token.clone(), 20));
    for (i, token) in tokens.enumerate() {
        let client = Client::from_channel(s_channel(&s), &token, &s.addr);
        tasks.push(tokio::spawn(async move {
            let r = client
                .runners()
                .snapshot("", &format!("burst-{i}"), &[])
                .await;
            (i, r.map(|snap| snap.secrets.len()))
        }));
    }
    let mut started = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(n)) => {
                assert_eq!(n, 1, "runner burst-{i} got its snapshot");
                started.push(format!("burst-{i}"));
            }
            (i, Err(e)) => {
                assert!(i >= 40, "single-use token of burst-{i} refused: {e}");
                common::refused::<(), _>(
                    Err(e),
                    Code::Unauthenticated,
                    &[&format!(
                        "runner token {} has already been used",
                        five.token_id
                    )],
                    &[],
                    &format!("burst-{i}"),
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        started.len(),
        45,
        "40 single-use starts and 5 of the shared token"
    );
    assert_eq!(refused, 15);
    let mut recorded: Vec<String> = c
        .runners()
        .list("main", false, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.runner_id)
        .collect();
    recorded.sort();
    started.sort();
    assert_eq!(recorded, started);
}

/// Admin writes that read before they write (revoking a key checks the other admin keys;
/// deleting an environment counts its secrets) must not fail while a burst of runner starts
/// commits beside them. On SQLite the starts have a writer of their own; with plain `BEGIN`
/// instead of `BEGIN IMMEDIATE` for the admin writes, this failed in about half the runs.
async fn admin_writes_succeed_during_a_burst_of_starts(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("v"), "main").await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..24 {
        keys.push(s.key_with(&["read:main"]).await);
    }
    let tokens = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                count: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The starts share a few connections: what is under test is the database, not accept.
    let channels: Vec<_> = (0..8).map(|_| s_channel(&s)).collect();
    let mut starts = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let client = Client::from_channel(channels[i % channels.len()].clone(), &t.token, &s.addr);
        starts.push(tokio::spawn(async move {
            client
                .runners()
                .snapshot("", &format!("storm-{i}"), &[])
                .await
                .map(|_| ())
        }));
    }
    for (i, k) in keys.iter().enumerate() {
        c.keys()
            .revoke(k.key_id())
            .await
            .unwrap_or_else(|e| panic!("revoking key {i} during the burst: {e}"));
        let env = format!("burst-{i}");
        c.environments().create(&env).await.unwrap();
        c.secrets().set("T", v("t"), &env).await.unwrap();
        c.environments()
            .delete(&env, true)
            .await
            .unwrap_or_else(|e| panic!("deleting {env} during the burst: {e}"));
    }
    for (i, t) in starts.into_iter().enumerate() {
        t.await
            .unwrap()
            .unwrap_or_else(|e| panic!("runner storm-{i}: {e}"));
    }
}

async fn exposure_and_allow_lists(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets()
        .set_many_with("main", vec![("HIDDEN".into(), v("h"))], Some(false))
        .await
        .unwrap();
    c.secrets()
        .set_many(
            "main",
            vec![("PLAIN".into(), v("p")), ("HIDDEN".into(), v("h2"))],
        )
        .await
        .unwrap();
    assert_eq!(
        snapshot(&c, "main", &[]).await,
        [("PLAIN".into(), "p".into())],
        "an update without a setting keeps it"
    );
    assert_eq!(
        snapshot(&c, "main", &["HIDDEN"]).await,
        [("HIDDEN".into(), "h2".into())]
    );
    let listed = c.secrets().list("main").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|s| s.name == "HIDDEN")
            .unwrap()
            .exposed_by_default,
        Some(false)
    );
    assert_eq!(
        listed
            .iter()
            .find(|s| s.name == "PLAIN")
            .unwrap()
            .exposed_by_default,
        None
    );
    c.secrets()
        .set_many_with("main", vec![("HIDDEN".into(), v("h3"))], Some(true))
        .await
        .unwrap();
    assert_eq!(snapshot(&c, "main", &[]).await.len(), 2);
}

async fn runner_starts_are_recorded_with_their_revision(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("1"), "main").await.unwrap();
    let start = |id: &'static str| {
        let c = c.clone();
        let s_addr = s.addr.clone();
        let ch = s_channel(&s);
        async move {
            let t = c
                .runners()
                .issue("main", IssueOptions::default())
                .await
                .unwrap()
                .remove(0);
            Client::from_channel(ch, &t.token, &s_addr)
                .runners()
                .snapshot("", id, &[])
                .await
                .unwrap()
        }
    };
    start("a").await;
    c.secrets().set("K", v("2"), "main").await.unwrap();
    start("b").await;
    let stale: Vec<String> = c
        .runners()
        .list("main", true, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.runner_id)
        .collect();
    assert_eq!(stale, ["a"]);
    let all = c.runners().list("main", false, 0).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].runner_id, "b", "newest first");
    assert_eq!((all[1].revision, all[1].current_revision), (1, 2));
    // Pruning drops old records.
    let removed = s
        .store
        .prune_runners(time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(c.runners().list("main", false, 0).await.unwrap().is_empty());
}

async fn sealed_values_are_bound_to_their_row(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets()
        .set_many(
            "main",
            vec![("A".into(), v("alpha")), ("B".into(), v("beta"))],
        )
        .await
        .unwrap();
    let (_, rows) = s.store.sealed_secrets("main").await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(
            !common::contains(&r.sealed.ciphertext, b"alpha")
                && !common::contains(&r.sealed.ciphertext, b"beta")
        );
    }
    // Write A's sealed value under B's name: the snapshot refuses it (DATA_LOSS), serves nothing.
    let mut moved = rows[0].clone();
    moved.name = "B".into();
    s.store
        .set_secrets(
            "main",
            vec![moved],
            &Limits::default(),
            runseal::store::AuditRecord::new(
                time::OffsetDateTime::now_utc(),
                "test",
                "test.tamper",
                Some("main".into()),
                vec!["B".into()],
            ),
        )
        .await
        .unwrap();
    let t = c
        .runners()
        .issue("main", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    let runner = Client::from_channel(s_channel(&s), &t.token, &s.addr);
    assert_eq!(
        code(runner.runners().snapshot("", "", &[]).await),
        Code::DataLoss
    );
    // The refused start did not use up the token: after repair it starts.
    c.secrets().set("B", v("beta2"), "main").await.unwrap();
    assert_eq!(
        runner
            .runners()
            .snapshot("", "", &[])
            .await
            .unwrap()
            .secrets
            .len(),
        2
    );
}

async fn deleting_an_environment_takes_its_tokens_and_runner_records(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.environments().create("staging").await.unwrap();
    c.secrets().set("OLD", v("old"), "staging").await.unwrap();
    let unused = c
        .runners()
        .issue("staging", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    snapshot(&c, "staging", &[]).await;
    assert_eq!(
        c.runners().list("staging", false, 10).await.unwrap().len(),
        1
    );

    c.environments().delete("staging", true).await.unwrap();
    assert!(s
        .store
        .runner_token(&unused.token_id)
        .await
        .unwrap()
        .is_none());
    // A new environment of the same name: the token issued for the old one reads nothing.
    c.environments().create("staging").await.unwrap();
    c.secrets().set("NEW", v("new"), "staging").await.unwrap();
    let runner = Client::from_channel(s_channel(&s), &unused.token, &s.addr);
    refused(
        runner.runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &["invalid runner token: unknown id or wrong secret"],
        &[],
        "a token of the deleted environment",
    );
    assert!(c
        .runners()
        .list("staging", false, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn the_last_active_admin_key_cannot_be_revoked(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    let first = s.admin.key_id().to_string();
    assert_eq!(
        code(c.keys().revoke(&first).await),
        Code::FailedPrecondition
    );
    let (second, second_cred) = c
        .keys()
        .create(&["admin".to_string()], "second admin")
        .await
        .unwrap();
    c.keys().revoke(&first).await.unwrap();
    let c2 = s.client(&second_cred).await;
    let err = c2.keys().revoke(&second.key_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition));
    assert!(err.to_string().contains("last active admin key"), "{err}");
    // Other keys come and go as before.
    let (writer, _) = c2
        .keys()
        .create(&["write:main".to_string()], "writer")
        .await
        .unwrap();
    c2.keys().revoke(&writer.key_id).await.unwrap();
}

async fn build_fetches_are_single_use_named_and_audited(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets()
        .set_many(
            "main",
            vec![("A".into(), v("alpha-1")), ("B".into(), v("beta-2"))],
        )
        .await
        .unwrap();
    let issue = |purpose: &str| {
        let c = c.clone();
        let purpose = purpose.to_string();
        async move {
            c.runners()
                .issue(
                    "main",
                    IssueOptions {
                        purpose,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .remove(0)
        }
    };
    let t = issue("build").await;
    let builder = Client::from_channel(s_channel(&s), &t.token, &s.addr);
    // Refusals before the use is taken leave the token usable.
    assert_eq!(
        code(
            builder
                .runners()
                .build_secrets("", &["A".into(), "NOPE".into()])
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(builder.runners().snapshot("", "", &[]).await),
        Code::PermissionDenied
    );
    let got = builder
        .runners()
        .build_secrets("", &["A".into()])
        .await
        .unwrap();
    let names: Vec<&str> = got.secrets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["A"], "only the requested names");
    assert_eq!(got.get("A").unwrap().expose(), b"alpha-1");
    assert_eq!(got.revision, 1);
    refused(
        builder.runners().build_secrets("", &["A".into()]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            t.token_id
        )],
        &[],
        "single-use",
    );
    // A run token is refused.
    let run = issue("run").await;
    let runner = Client::from_channel(s_channel(&s), &run.token, &s.addr);
    assert_eq!(
        code(runner.runners().build_secrets("", &["A".into()]).await),
        Code::PermissionDenied
    );
    // One use, however many race for it.
    let t = issue("build").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = Client::from_channel(s_channel(&s), &t.token, &s.addr);
        tasks.push(tokio::spawn(async move {
            client
                .runners()
                .build_secrets("", &["B".into()])
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
    // A token's allow-list bounds the names a build may fetch.
    let limited = c
        .runners()
        .issue(
            "main",
            IssueOptions {
                purpose: "build".into(),
                only: vec!["A".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0);
    let builder = Client::from_channel(s_channel(&s), &limited.token, &s.addr);
    assert_eq!(
        code(builder.runners().build_secrets("", &["B".into()]).await),
        Code::PermissionDenied
    );
    builder
        .runners()
        .build_secrets("", &["A".into()])
        .await
        .unwrap();
    // A key needs build:ENV (admin does not imply it) and is not used up.
    assert_eq!(
        code(c.runners().build_secrets("main", &["A".into()]).await),
        Code::PermissionDenied
    );
    let key = s.key_with(&["build:main"]).await;
    let k = s.client(&key).await;
    for _ in 0..2 {
        k.runners()
            .build_secrets("", &["A".into(), "B".into()])
            .await
            .unwrap();
    }
    // Audited by name, never by value; build fetches are not runner starts.
    let audit = c.audit().list("main", 100).await.unwrap();
    let fetches: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "build.secrets")
        .collect();
    assert_eq!(fetches.len(), 5, "three token fetches, two key fetches");
    assert!(fetches
        .iter()
        .any(|e| e.key_id == key.key_id() && e.names == ["A", "B"]));
    let all = format!("{audit:?}");
    assert!(!all.contains("alpha-1") && !all.contains("beta-2"));
    assert!(c.runners().list("main", false, 0).await.unwrap().is_empty());
}

async fn a_used_token_is_served_again_only_to_its_runner_with_its_retry_key(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.secrets().set("K", v("v1"), "main").await.unwrap();
    let t = c
        .runners()
        .issue("main", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    let runner = || Client::from_channel(s_channel(&s), &t.token, &s.addr);
    let key = [7u8; 32];
    let first = runner()
        .runners()
        .snapshot_with_retry_key("", "r-1", &[], &key)
        .await
        .unwrap();
    c.secrets().set("K", v("v2"), "main").await.unwrap();
    // Someone who learnt the runner id (runners list, logs) but not the key gets nothing.
    refused(
        runner().runners().snapshot("", "r-1", &[]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            t.token_id
        )],
        &[],
        "the runner id without its retry key",
    );
    refused(
        runner()
            .runners()
            .snapshot_with_retry_key("", "r-1", &[], &[8u8; 32])
            .await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            t.token_id
        )],
        &[],
        "the runner id with a wrong retry key",
    );
    // Nor does another runner id with the key.
    refused(
        runner()
            .runners()
            .snapshot_with_retry_key("", "r-2", &[], &key)
            .await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has already been used",
            t.token_id
        )],
        &[],
        "another runner id with the retry key",
    );
    // The agent retrying after a lost answer: served, with the current values.
    let again = runner()
        .runners()
        .snapshot_with_retry_key("", "r-1", &[], &key)
        .await
        .unwrap();
    assert_eq!(first.revision, 1);
    assert_eq!(again.revision, 2);
    // A key of the wrong size is refused.
    assert_eq!(
        code(
            runner()
                .runners()
                .snapshot_with_retry_key("", "r-1", &[], &[1u8; 8])
                .await
        ),
        Code::InvalidArgument
    );
}

/// A key's runner tokens are its authority, delegated: revoking the key revokes them, so a
/// token minted by a key that leaked stops working with the key.
async fn revoking_a_key_revokes_the_runner_tokens_it_minted(b: Backend) {
    let s = server(b).await;
    let admin = s.admin_client().await;
    admin.secrets().set("K", v("value"), "main").await.unwrap();
    let issuer_key = s.key_with(&["issue:main"]).await;
    let issuer = s.client(&issuer_key).await;
    let minted = issuer
        .runners()
        .issue(
            "main",
            IssueOptions {
                count: 2,
                uses: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A token minted by another key is not touched.
    let other = admin
        .runners()
        .issue("main", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    let runner =
        |t: &runseal::client::IssuedToken| Client::from_channel(s_channel(&s), &t.token, &s.addr);
    runner(&minted[0])
        .runners()
        .snapshot("", "", &[])
        .await
        .expect("a token works while its minting key is active");

    let revoked = admin.keys().revoke(issuer_key.key_id()).await.unwrap();
    assert_eq!(
        revoked, 2,
        "both active tokens of the key are revoked with it"
    );
    for t in &minted {
        let err = runner(t).runners().snapshot("", "", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::Unauthenticated), "{err}");
        assert!(err.to_string().contains("revoked"), "{err}");
    }
    let snap = runner(&other)
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    assert_eq!(snap.secrets.len(), 1);
}

/// Tokens can be listed (never their secrets) and revoked per environment at once; their
/// lifetime and uses are bounded by the server's maxima.
async fn runner_tokens_are_listed_bounded_and_revoked_per_environment(b: Backend) {
    let s = server(b).await;
    let admin = s.admin_client().await;
    admin.environments().create("staging").await.unwrap();
    let minted = admin
        .runners()
        .issue(
            "staging",
            IssueOptions {
                count: 3,
                uses: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let in_main = admin
        .runners()
        .issue("main", IssueOptions::default())
        .await
        .unwrap();

    let reader = s.client(&s.key_with(&["read:staging"]).await).await;
    let listed = reader.runners().list_tokens("staging", 0).await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|t| t.token_id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = minted.iter().map(|t| t.token_id.as_str()).collect();
    want.sort();
    assert_eq!(ids, want);
    for t in &listed {
        assert_eq!(t.environment, "staging");
        assert_eq!(t.uses_left, 2);
        assert_eq!(t.created_by, s.admin.key_id());
        assert!(t.expires_at.is_some());
    }
    let shown = format!("{listed:?}");
    for t in minted.iter().chain(&in_main) {
        assert!(
            !shown.contains(t.token.expose_secret()),
            "a token secret appears in the listing"
        );
    }
    // Every environment needs admin; another environment needs its own scope.
    assert_eq!(
        code(reader.runners().list_tokens("", 0).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(reader.runners().list_tokens("main", 0).await),
        Code::PermissionDenied
    );
    assert_eq!(admin.runners().list_tokens("", 0).await.unwrap().len(), 4);

    // Revoke every token of staging; main's keeps working.
    assert_eq!(
        code(reader.runners().revoke_all("staging").await),
        Code::PermissionDenied,
        "read:staging cannot revoke"
    );
    assert_eq!(admin.runners().revoke_all("staging").await.unwrap(), 3);
    assert!(admin
        .runners()
        .list_tokens("staging", 0)
        .await
        .unwrap()
        .is_empty());
    let runner =
        |t: &runseal::client::IssuedToken| Client::from_channel(s_channel(&s), &t.token, &s.addr);
    refused(
        runner(&minted[0]).runners().snapshot("", "", &[]).await,
        Code::Unauthenticated,
        &[&format!(
            "runner token {} has been revoked",
            minted[0].token_id
        )],
        &[],
        "a token of staging after revoke_all",
    );
    runner(&in_main[0])
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    assert!(
        admin
            .runners()
            .list_tokens("main", 0)
            .await
            .unwrap()
            .is_empty(),
        "a used single-use token is no longer listed as active"
    );

    // The defaults bound a token to a day and a thousand uses.
    let too_long = IssueOptions {
        ttl: Some(Duration::from_secs(24 * 3600 + 1)),
        ..Default::default()
    };
    assert_eq!(
        code(admin.runners().issue("main", too_long).await),
        Code::InvalidArgument
    );
    let too_many = IssueOptions {
        uses: 1001,
        ..Default::default()
    };
    assert_eq!(
        code(admin.runners().issue("main", too_many).await),
        Code::InvalidArgument
    );
    let at_the_limit = IssueOptions {
        ttl: Some(Duration::from_secs(24 * 3600)),
        uses: 1000,
        ..Default::default()
    };
    admin.runners().issue("main", at_the_limit).await.unwrap();
}

/// Every snapshot and build fetch is in the audit log (credential, runner, environment,
/// revision, how many values; never the values), and every change names the revision it made.
async fn audit_rows_carry_revisions_and_every_start(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    let r1 = c
        .secrets()
        .set_many(
            "main",
            vec![
                ("A".into(), v("audit-value-a")),
                ("B".into(), v("audit-value-b")),
            ],
        )
        .await
        .unwrap();
    let r2 = c.secrets().unset("B", "main").await.unwrap();
    let token = c
        .runners()
        .issue("main", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);
    let runner = Client::from_channel(s_channel(&s), &token.token, &s.addr);
    let snap = runner
        .runners()
        .snapshot("", "r-audited", &[])
        .await
        .unwrap();
    assert_eq!(snap.revision, r2);
    let key = s.key_with(&["snapshot:main"]).await;
    let by_key = Client::from_channel(s_channel(&s), &key, &s.addr);
    by_key
        .runners()
        .snapshot("main", "r-by-key", &[])
        .await
        .unwrap();

    let entries = c.audit().list("main", 0).await.unwrap();
    let find = |action: &str, runner: &str| {
        entries
            .iter()
            .find(|e| e.action == action && e.runner_id == runner)
            .unwrap_or_else(|| panic!("no {action} entry for {runner:?}: {entries:?}"))
    };
    assert_eq!(find("secrets.set", "").revision, Some(r1));
    assert_eq!(find("secrets.unset", "").revision, Some(r2));
    let start = find("snapshot", "r-audited");
    assert_eq!(start.key_id, token.token_id);
    assert_eq!(start.environment, "main");
    assert_eq!(start.revision, Some(r2));
    assert_eq!(start.value_count, Some(1));
    let start = find("snapshot", "r-by-key");
    assert_eq!(start.key_id, key.key_id());
    assert_eq!(start.value_count, Some(1));
    let shown = format!("{entries:?}");
    assert!(
        !shown.contains("audit-value"),
        "a value reached the audit log"
    );
}

/// No audit row is too large to list: a batch of 10,000 tokens is summarised (its first names
/// and the total), and the listing pages, so any --limit answers.
async fn audit_rows_are_capped_and_the_listing_pages(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    c.runners()
        .issue(
            "main",
            IssueOptions {
                count: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let entries = c.audit().list("main", 1).await.unwrap();
    let issued = &entries[0];
    assert_eq!(issued.action, "runner-token.issue");
    assert_eq!(issued.names_total, 10_000);
    assert_eq!(issued.names.len(), runseal::store::MAX_AUDIT_NAMES);
    // The listing pages: each page continues below the last id of the one before.
    for i in 0..6 {
        c.secrets()
            .set(&format!("N{i}"), v("x"), "main")
            .await
            .unwrap();
    }
    let mut raw = runseal::proto::v1::audit_client::AuditClient::new(s_channel(&s));
    let page = |before_id: u64| {
        let mut req = tonic::Request::new(runseal::proto::v1::ListAuditRequest {
            environment: "main".into(),
            limit: 3,
            before_id,
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", s.admin.to_line().as_str())
                .parse()
                .unwrap(),
        );
        req
    };
    let first = raw.list_audit(page(0)).await.unwrap().into_inner().entries;
    let second = raw
        .list_audit(page(first[2].id))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let ids: Vec<u64> = first.iter().chain(&second).map(|e| e.id).collect();
    let all: Vec<u64> = c
        .audit()
        .list("main", 6)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, all, "two pages of three are the newest six, in order");
}

/// Audit rows older than the retention are pruned.
async fn audit_retention_prunes_old_rows(b: Backend) {
    let s = server(b).await;
    let now = time::OffsetDateTime::now_utc();
    let old = runseal::store::AuditRecord::new(
        now - time::Duration::days(100),
        "test",
        "test.old",
        None,
        vec![],
    );
    s.store.append_audit(old).await.unwrap();
    let before = s.store.list_audit(None, 1000).await.unwrap().len();
    let removed = s
        .store
        .prune_audit(now - time::Duration::days(90))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let rows = s.store.list_audit(None, 1000).await.unwrap();
    assert_eq!(rows.len(), before - 1);
    assert!(rows.iter().all(|r| r.action != "test.old"));
}

/// A second runseald on the same database and master key (a replica), in this process.
async fn replica(s: &TestServer) -> (String, tokio::sync::oneshot::Sender<()>) {
    use runseal::datadir::DataDir;
    use runseal::grpc::{self, Listener};
    use runseal::service::Service;
    let data = DataDir::new(s.dir.path().join("data"), None)
        .with_database_url(s.pg.as_ref().map(|p| p.url.clone()));
    let opened = data.open().await.unwrap();
    let service = std::sync::Arc::new(Service::new(
        opened.store,
        opened.sealer,
        NamePolicy::default(),
        Limits::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let routes = grpc::routes(service).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(grpc::serve(routes, vec![Listener::Tcp(listener)], async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Snapshots are served from a cache of sealed rows; every change, made here or through another
/// replica, and a deleted and re-created environment, must still show in the next snapshot.
async fn snapshots_see_every_change_at_once(b: Backend) {
    let s = server(b).await;
    let c = s.admin_client().await;
    let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    c.secrets().set("K", v("one"), "main").await.unwrap();
    assert_eq!(snapshot(&c, "main", &[]).await, pair("K", "one"));
    c.secrets().set("K", v("two"), "main").await.unwrap();
    assert_eq!(snapshot(&c, "main", &[]).await, pair("K", "two"));

    let (addr, stop) = replica(&s).await;
    let other = Client::connect(&addr, s.admin.clone()).await.unwrap();
    other.secrets().set("K", v("three"), "main").await.unwrap();
    assert_eq!(snapshot(&c, "main", &[]).await, pair("K", "three"));
    other.secrets().unset("K", "main").await.unwrap();
    other.secrets().set("L", v("four"), "main").await.unwrap();
    assert_eq!(snapshot(&c, "main", &[]).await, pair("L", "four"));

    // Deleted and re-created through the replica, back at the same revision.
    c.environments().create("tmp").await.unwrap();
    c.secrets().set("T", v("old"), "tmp").await.unwrap();
    assert_eq!(snapshot(&c, "tmp", &[]).await, pair("T", "old"));
    other.environments().delete("tmp", true).await.unwrap();
    other.environments().create("tmp").await.unwrap();
    other.secrets().set("T", v("new"), "tmp").await.unwrap();
    assert_eq!(snapshot(&c, "tmp", &[]).await, pair("T", "new"));
    let _ = stop.send(());
}

common::on_both_backends!(
    set_then_list_update_and_unset,
    environments_are_separate_and_main_is_permanent,
    batches_are_atomic_and_limits_hold,
    revisions_count_every_change,
    keys_are_hashed_scoped_touched_and_revocable,
    audit_records_every_change_without_values,
    runner_tokens_are_single_use_expire_and_revoke,
    concurrent_redemption_of_one_token_succeeds_once,
    a_burst_of_starts_takes_exactly_the_uses_there_are,
    admin_writes_succeed_during_a_burst_of_starts,
    exposure_and_allow_lists,
    runner_starts_are_recorded_with_their_revision,
    sealed_values_are_bound_to_their_row,
    deleting_an_environment_takes_its_tokens_and_runner_records,
    the_last_active_admin_key_cannot_be_revoked,
    build_fetches_are_single_use_named_and_audited,
    snapshots_see_every_change_at_once,
    a_used_token_is_served_again_only_to_its_runner_with_its_retry_key,
    revoking_a_key_revokes_the_runner_tokens_it_minted,
    runner_tokens_are_listed_bounded_and_revoked_per_environment,
    audit_rows_carry_revisions_and_every_start,
    audit_rows_are_capped_and_the_listing_pages,
    audit_retention_prunes_old_rows,
);

#[cfg(not(runseal_pg_tests))]
#[test]
fn postgres_conformance_skipped_set_runseal_test_database_url_to_run_it() {
    eprintln!("PostgreSQL conformance tests skipped: set RUNSEAL_TEST_DATABASE_URL and rebuild");
}

/// The SQLite migrator adopts sqlx's `_sqlx_migrations` table: a data dir that v0.1 migrated
/// with sqlx opens, its applied migrations are recognised by version and checksum, the rest are
/// applied and recorded as sqlx records them, and a changed or half-applied migration is
/// refused as sqlx refuses it.
#[tokio::test]
async fn sqlite_adopts_the_migration_history_sqlx_wrote() {
    use runseal::store::{SqliteStore, Store};
    use sha2::{Digest, Sha384};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("runseal.db");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0_1");
    std::fs::copy(fixture.join("sqlite/runseal.db"), &db).unwrap();
    let store = SqliteStore::open(&db).await.unwrap();
    assert!(store.is_initialized().await.unwrap());
    assert!(!store.data_keys().await.unwrap().is_empty());
    store.close().await;

    let c = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = c
        .prepare("SELECT version, description, success, checksum, execution_time FROM _sqlx_migrations ORDER BY version")
        .unwrap();
    let applied: Vec<(i64, String, bool, Vec<u8>, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(stmt);
    let mut files: Vec<_> = std::fs::read_dir(fixture.join("../../../migrations/sqlite"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(applied.len(), files.len());
    for ((version, description, success, checksum, time), file) in applied.iter().zip(&files) {
        let name = file.file_stem().unwrap().to_str().unwrap();
        let (v, d) = name.split_once('_').unwrap();
        assert_eq!(*version, v.parse::<i64>().unwrap());
        assert_eq!(*description, d.replace('_', " "));
        assert!(*success && *time >= 0, "migration {version}");
        let sql = std::fs::read(file).unwrap();
        assert_eq!(
            *checksum,
            Sha384::digest(&sql).to_vec(),
            "migration {version}"
        );
    }

    let refused = |what: &'static str| {
        let db = db.clone();
        async move {
            match SqliteStore::open(&db).await {
                Ok(_) => panic!("opened a database whose migration history {what}"),
                Err(e) => e.to_string(),
            }
        }
    };
    c.execute(
        "UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 2",
        [],
    )
    .unwrap();
    assert!(refused("was changed")
        .await
        .contains("migration 2 was previously applied but has been modified"));
    c.execute(
        "UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = 2",
        [&applied[1].3],
    )
    .unwrap();
    c.execute(
        "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 5",
        [],
    )
    .unwrap();
    assert!(refused("is half applied")
        .await
        .contains("migration 5 is partially applied"));
}
