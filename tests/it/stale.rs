//! Stale runners: a runner is stale when a change after its start touched a name it got or would
//! get now (its allow-list; without one, what it got and every secret exposed now), not merely
//! when its environment's revision moved. Through the real binaries (runseald, the CLI's
//! `runners list --stale`, runseal-agent starting real runners), then the same rule on both
//! backends in process, the rule of starts recorded before names were kept, and the dashboard.

use crate::common;

use common::web::WebClient;
use common::{ok, runseal, stderr, Backend, Daemon, TestServer};
use runseal::client::{Client, IssueOptions};
use runseal::names::{Limits, NamePolicy};
use runseal::store::{AuditRecord, RunnerRecord};

/// A runseald with its admin key, driven through the CLI and the agent.
struct Fleet {
    _dir: tempfile::TempDir,
    d: Daemon,
    key: String,
}

impl Fleet {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), &[], &[]);
        let key = d.admin_key();
        Self { _dir: dir, d, key }
    }

    fn cli(&self, args: &[&str]) -> String {
        ok(runseal(&self.d.addr, &self.key, args))
    }

    /// Starts runner `id` through runseal-agent with a token minted with `token_args`, the
    /// app's allow-list `only` (`RUNSEAL_SECRETS`; empty: none).
    fn run(&self, id: &str, token_args: &[&str], only: &str) {
        let mut issue = vec!["runner-token", "issue"];
        issue.extend_from_slice(token_args);
        let token = self.cli(&issue).trim().to_string();
        let mut agent = common::agent(&self.d.addr, &token, &["--", "true"]);
        agent.env("RUNSEAL_RUNNER_ID", id);
        if !only.is_empty() {
            agent.env("RUNSEAL_SECRETS", only);
        }
        let out = agent.output().unwrap();
        assert!(out.status.success(), "runner {id}: {}", stderr(&out));
    }

    /// The stale runners of `env` by `runners list --stale`, sorted; checked against the
    /// `stale` field of the full listing.
    fn stale(&self, env: &str) -> Vec<String> {
        let ids = |args: &[&str], only_stale: bool| -> Vec<String> {
            let json = self.cli(args);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let mut ids: Vec<String> = v["runners"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| !only_stale || r["stale"] == true)
                .map(|r| r["runner_id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        };
        let listed = ids(
            &[
                "runners", "list", "--stale", "--env", env, "--output", "json",
            ],
            false,
        );
        let marked = ids(&["runners", "list", "--env", env, "--output", "json"], true);
        assert_eq!(listed, marked, "--stale and the stale field disagree");
        listed
    }
}

#[test]
fn an_allow_list_runner_is_stale_only_after_a_change_of_a_name_it_asked_for() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "A=1", "B=1", "C=1"]);
    f.run("app-list", &[], "A,B");
    f.run("token-list", &["--only", "A"], "");
    f.run("full", &[], "");
    assert!(f.stale("main").is_empty());

    // C is outside both allow-lists: only the full snapshot holds an older value.
    f.cli(&["secrets", "set", "C=2"]);
    assert_eq!(f.stale("main"), ["full"]);
    let json = f.cli(&["runners", "list", "--env", "main", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let app = v["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runner_id"] == "app-list")
        .unwrap();
    assert_eq!(
        (&app["revision"], &app["current_revision"], &app["stale"]),
        (&1.into(), &2.into(), &false.into()),
        "revision behind, yet current: {app}"
    );
    let pretty = f.cli(&["runners", "list", "--env", "main", "--stale"]);
    assert!(
        pretty.contains("full") && !pretty.contains("app-list") && !pretty.contains("token-list"),
        "{pretty}"
    );

    f.cli(&["secrets", "set", "B=2"]);
    assert_eq!(f.stale("main"), ["app-list", "full"]);
    // The token's allow-list is what that runner got.
    f.cli(&["secrets", "set", "A=2"]);
    assert_eq!(f.stale("main"), ["app-list", "full", "token-list"]);
}

#[test]
fn a_full_snapshot_runner_is_stale_after_an_added_name_and_a_change_not_after_a_hidden_name() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "A=1"]);
    f.run("full", &[], "");
    f.run("list", &[], "A");

    // A secret no snapshot gives, set and unset: nothing a runner holds changed.
    f.cli(&["secrets", "set", "H=1", "--not-exposed-by-default"]);
    assert!(f.stale("main").is_empty());
    f.cli(&["secrets", "unset", "H"]);
    assert!(f.stale("main").is_empty());

    // An added exposed name: a new full snapshot would have it.
    f.cli(&["secrets", "set", "N=1"]);
    assert_eq!(f.stale("main"), ["full"]);
    f.run("full-2", &[], "");
    assert_eq!(f.stale("main"), ["full"]);

    // A changed name every runner got.
    f.cli(&["secrets", "set", "A=2"]);
    assert_eq!(f.stale("main"), ["full", "full-2", "list"]);
}

#[test]
fn an_exposure_change_concerns_the_runners_it_gives_or_takes_a_name_from() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "A=1", "B=1"]);
    f.run("list-a", &[], "A");
    f.run("full", &[], "");

    // B outside the allow-list, no longer given to full snapshots.
    f.cli(&["secrets", "expose", "B", "--off"]);
    assert_eq!(f.stale("main"), ["full"]);
    f.run("full-2", &[], "");
    assert_eq!(f.stale("main"), ["full"]);

    // Given again: full-2 (started without it) would get it now.
    f.cli(&["secrets", "expose", "B", "--on"]);
    assert_eq!(f.stale("main"), ["full", "full-2"]);

    // An exposure change of a name the allow-list asked for.
    f.cli(&["secrets", "expose", "A", "--off"]);
    assert_eq!(f.stale("main"), ["full", "full-2", "list-a"]);
}

#[test]
fn an_unset_of_a_listed_name_makes_its_runners_stale() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "A=1", "B=1"]);
    f.run("list-a", &[], "A");
    f.run("list-b", &["--only", "B"], "");
    f.run("full", &[], "");
    f.cli(&["secrets", "unset", "A"]);
    assert_eq!(f.stale("main"), ["full", "list-a"]);
}

#[test]
fn rollback_copy_into_and_purge_concern_the_runners_of_the_names_they_touch() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "A=1"]);
    f.cli(&["secrets", "set", "A=2", "B=1"]);
    f.cli(&["environments", "create", "staging"]);
    f.cli(&["secrets", "set", "A=s", "B=s", "--env", "staging"]);
    f.run("list-a", &[], "A");
    f.run("list-b", &[], "B");
    f.run("stg-a", &["--env", "staging"], "A");

    f.cli(&["secrets", "rollback", "A", "--to", "1"]);
    assert_eq!(f.stale("main"), ["list-a"]);
    assert!(f.stale("staging").is_empty());

    let copier = f.cli(&[
        "keys",
        "create",
        "--scope",
        "snapshot:main",
        "--scope",
        "write:staging",
    ]);
    let copy = |name: &str| {
        let args = ["secrets", "copy", name, "--from", "main", "--to", "staging"];
        ok(runseal(&f.d.addr, copier.trim(), &args));
    };
    copy("B");
    assert!(f.stale("staging").is_empty(), "B is outside stg-a's list");
    copy("A");
    assert_eq!(f.stale("staging"), ["stg-a"]);

    f.cli(&["secrets", "purge", "B"]);
    assert_eq!(f.stale("main"), ["list-a", "list-b"]);
}

// The same rule on both backends (the statement differs per dialect), in process.

async fn runner(s: &TestServer, id: &str, token_only: &[&str], only: &[&str]) {
    let admin = s.admin_client().await;
    let opts = IssueOptions {
        only: token_only.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    let token = admin.runners().issue("main", opts).await.unwrap().remove(0);
    let only: Vec<String> = only.iter().map(|n| n.to_string()).collect();
    Client::connect(&s.addr, token.token)
        .await
        .unwrap()
        .runners()
        .snapshot("", id, &only)
        .await
        .unwrap();
}

async fn stale_ids(s: &TestServer) -> Vec<String> {
    let admin = s.admin_client().await;
    let mut ids: Vec<String> = admin
        .runners()
        .list("main", true, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            assert!(r.stale, "{} listed as stale but not marked so", r.runner_id);
            r.runner_id
        })
        .collect();
    ids.sort();
    let marked: Vec<String> = admin
        .runners()
        .list("main", false, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.stale)
        .map(|r| r.runner_id)
        .collect();
    assert_eq!(
        ids.len(),
        marked.len(),
        "stale_only and the stale field disagree"
    );
    ids
}

async fn the_rule_holds(b: Backend) {
    let s = TestServer::start_on(b, Limits::default(), NamePolicy::default()).await;
    let c = s.admin_client().await;
    for (n, val) in [("A", "1"), ("B", "1")] {
        c.secrets().set(n, common::v(val), "main").await.unwrap();
    }
    runner(&s, "list-a", &[], &["A"]).await;
    runner(&s, "token-b", &["B"], &[]).await;
    runner(&s, "full", &[], &[]).await;

    // Hidden, then exposed: a full snapshot would get it now.
    c.secrets()
        .set_many_with("main", vec![("H".into(), common::v("1"))], Some(false))
        .await
        .unwrap();
    assert!(stale_ids(&s).await.is_empty());
    c.secrets()
        .set_exposure("main", "H", Some(true))
        .await
        .unwrap();
    assert_eq!(stale_ids(&s).await, ["full"]);

    c.secrets().set("B", common::v("2"), "main").await.unwrap();
    assert_eq!(stale_ids(&s).await, ["full", "token-b"]);
    // A name that is unset again: a later runner's snapshot has no trace of it.
    runner(&s, "full-2", &[], &[]).await;
    c.secrets().set("T", common::v("1"), "main").await.unwrap();
    c.secrets().unset("T", "main").await.unwrap();
    assert_eq!(stale_ids(&s).await, ["full", "token-b"]);
    c.secrets().unset("A", "main").await.unwrap();
    assert_eq!(stale_ids(&s).await, ["full", "full-2", "list-a", "token-b"]);
}

/// A start recorded without names (before they were kept) is stale once the revision moved,
/// whatever the change touched.
async fn a_start_without_names_keeps_the_revision_rule(b: Backend) {
    let s = TestServer::start_on(b, Limits::default(), NamePolicy::default()).await;
    let c = s.admin_client().await;
    c.secrets().set("A", common::v("1"), "main").await.unwrap();
    let at = s.service.now();
    let record = RunnerRecord {
        runner_id: "old-start".into(),
        environment: "main".into(),
        revision: 1,
        started_at: at,
        credential_id: s.admin.key_id().to_string(),
        retry_hash: None,
        received: None,
    };
    let audit = AuditRecord::new(at, "test", "snapshot", Some("main".into()), vec![]);
    s.store.record_runner(&record, &audit).await.unwrap();
    runner(&s, "list-a", &[], &["A"]).await;
    assert!(stale_ids(&s).await.is_empty());
    c.secrets().set("Z", common::v("1"), "main").await.unwrap();
    assert_eq!(stale_ids(&s).await, ["old-start"]);
}

common::on_both_backends!(
    the_rule_holds,
    a_start_without_names_keeps_the_revision_rule
);

/// The "Stale runners" cell of `env`'s row on /environments.
fn stale_cell(page: &str, env: &str) -> String {
    let row = page
        .split(&format!(">{env}</a></td>"))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for {env}: {page}"));
    // Secrets, revision, stale runners: the third numeric cell.
    row.split(r#"<td class="num">"#)
        .nth(3)
        .and_then(|c| c.split("</td>").next())
        .unwrap_or_else(|| panic!("no stale cell for {env}: {row}"))
        .to_string()
}

#[tokio::test]
async fn the_dashboard_counts_and_marks_the_same_stale_runners() {
    let s = TestServer::start().await;
    let c = s.admin_client().await;
    c.secrets()
        .set_many(
            "main",
            vec![("A".into(), common::v("1")), ("C".into(), common::v("1"))],
        )
        .await
        .unwrap();
    runner(&s, "list-dash", &[], &["A"]).await;
    runner(&s, "full-dash", &[], &[]).await;
    let mut web = WebClient::new(&s.web_addr);
    assert_eq!(web.sign_in(&s.admin.to_line()).await.status, 303);
    assert_eq!(
        stale_cell(&web.get("/environments").await.body, "main"),
        "0"
    );

    c.secrets().set("C", common::v("2"), "main").await.unwrap();
    assert_eq!(stale_ids(&s).await, ["full-dash"]);
    assert_eq!(
        stale_cell(&web.get("/environments").await.body, "main"),
        "1"
    );
    let page = web.get("/runners?env=main&stale=1").await.body;
    assert!(
        page.contains("full-dash") && page.contains("stale (now 2)") && !page.contains("list-dash"),
        "{page}"
    );
    let all = web.get("/runners?env=main").await.body;
    let list_row = all
        .split("list-dash")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    assert!(list_row.contains("current"), "{list_row}");

    c.secrets().set("A", common::v("2"), "main").await.unwrap();
    assert_eq!(
        stale_cell(&web.get("/environments").await.body, "main"),
        "2"
    );
}
