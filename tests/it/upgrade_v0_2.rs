//! Data made by the release binaries of f6ef7b3 (tests/fixtures/v0_2, written by its make.sh),
//! opened by this code's runseald: every environment, secret (by digest), key, runner token,
//! runner record and audit row of the fixture's manifest is found intact through the real CLI
//! and agent, the fixture's credentials still do what they did, and `runseald verify` passes.
//! On SQLite and on PostgreSQL. No secret value appears in any message: values are compared by
//! SHA-256.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0_2")
        .join(path)
}

fn manifest(store: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("{store}/manifest.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A data dir (mode 0700) with the fixture's master key and this store's admin key.
fn data_dir(root: &Path, store: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(store);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    common::copy_private(&fixture("master.key"), &dir.join("master.key"));
    common::copy_private(
        &fixture(&format!("{store}/admin.key")),
        &dir.join("admin.key"),
    );
    dir
}

/// `runseal ARGS… --output json` with the admin key, parsed.
fn listing(d: &common::Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = common::ok(common::runseal(&d.addr, &d.admin_key(), &all));
    serde_json::from_str(&out).unwrap()
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a JSON array")
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string"))
}

/// The listing's entries, sorted by `field`, so order-free listings compare as sets.
fn sorted_by(v: &Value, field: &str) -> Vec<Value> {
    let mut items = array(v).clone();
    items.sort_by(|a, b| str_of(a, field).cmp(str_of(b, field)));
    items
}

/// The environment `runseal-agent` gives the app: each secret's name with the SHA-256 of its
/// value (the agent's own RUNSEAL_* variables and PATH left out). Never the values.
fn started_with(addr: &str, credential: &str, agent_args: &[&str]) -> BTreeMap<String, String> {
    let out = common::agent(addr, credential, &[])
        .args(agent_args)
        .args(["--", "/usr/bin/env", "-0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runseal-agent failed ({:?}): {}",
        out.status.code(),
        common::stderr(&out)
    );
    out.stdout
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .filter_map(|var| {
            let eq = var.iter().position(|b| *b == b'=').expect("NAME=VALUE");
            let name = String::from_utf8(var[..eq].to_vec()).unwrap();
            (name != "PATH" && !name.starts_with("RUNSEAL_"))
                .then(|| (name, hex::encode(Sha256::digest(&var[eq + 1..]))))
        })
        .collect()
}

/// The manifest's secrets of `env`, name → digest; only those exposed by default unless `all`.
fn expected_secrets(m: &Value, env: &str, all: bool) -> BTreeMap<String, String> {
    let e = array(&m["secrets"])
        .iter()
        .find(|e| e["environment"] == env)
        .unwrap_or_else(|| panic!("the manifest lists {env}"));
    array(&e["secrets"])
        .iter()
        .filter(|s| all || s["exposed_by_default"] == true)
        .map(|s| {
            (
                str_of(s, "name").to_string(),
                str_of(s, "sha256").to_string(),
            )
        })
        .collect()
}

/// Names only, for messages: which secrets differ, never their values or digests.
fn differing(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = got.keys().chain(want.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names.retain(|n| got.get(n) != want.get(n));
    names
}

#[track_caller]
fn assert_same_secrets(
    got: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    what: &str,
) {
    assert!(
        got == want,
        "{what}: these secrets are missing, extra or changed: {:?}",
        differing(got, want)
    );
}

fn credential(m: &Value, name: &str) -> String {
    str_of(&m["credentials"], name).to_string()
}

fn token_in(tokens: &Value, id: &str) -> Option<Value> {
    array(&tokens["tokens"])
        .iter()
        .find(|t| t["token_id"] == id)
        .cloned()
}

/// The old audit rows, oldest first, are the first rows of the log now.
#[track_caller]
fn assert_old_audit_rows(d: &common::Daemon, m: &Value) {
    let mut entries = array(&listing(d, &["audit", "--limit", "1000"])["entries"]).clone();
    entries.reverse();
    let n = m["audit_count"].as_u64().unwrap() as usize;
    assert_eq!(array(&m["audit"]).len(), n);
    assert!(
        entries.len() >= n,
        "{} audit rows, the fixture has {n}",
        entries.len()
    );
    assert_eq!(&entries[..n], &array(&m["audit"])[..]);
}

/// Everything in the manifest, found through the CLI and the agent of this code.
fn assert_intact(d: &common::Daemon, m: &Value) {
    // Before anything adds rows: the audit log exactly as the old binaries left it.
    assert_old_audit_rows(d, m);

    assert_eq!(
        sorted_by(&listing(d, &["env", "list"])["environments"], "name"),
        sorted_by(&m["environments"], "name")
    );
    for env in ["main", "staging", "production"] {
        let listed: Vec<String> = array(&listing(d, &["secrets", "list", "--env", env])["secrets"])
            .iter()
            .map(|s| str_of(s, "name").to_string())
            .collect();
        let want: Vec<String> = expected_secrets(m, env, true).into_keys().collect();
        assert_eq!(listed, want, "secret names of {env}");
    }

    let keys: Vec<Value> = sorted_by(&listing(d, &["keys", "list"])["keys"], "key_id")
        .into_iter()
        .map(|mut k| {
            k.as_object_mut().unwrap().remove("last_used_at");
            k
        })
        .collect();
    assert_eq!(keys, sorted_by(&m["keys"], "key_id"));

    let tokens = listing(d, &["runner-token", "list"]);
    assert_eq!(
        sorted_by(&tokens["tokens"], "token_id"),
        sorted_by(&m["active_runner_tokens"], "token_id")
    );
    for id in array(&m["revoked_runner_tokens"]) {
        assert!(
            token_in(&tokens, id.as_str().unwrap()).is_none(),
            "{id} is listed"
        );
    }

    assert_eq!(
        listing(d, &["runners", "list"])["runners"],
        m["runners"],
        "runner records"
    );

    // Every value, by a real runner start per environment: with an allow-list of every name the
    // app gets them all; without one, only those exposed by default.
    for env in ["main", "staging", "production"] {
        let all = expected_secrets(m, env, true);
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        let token = common::ok(common::runseal(
            &d.addr,
            &d.admin_key(),
            &["runner-token", "issue", "--env", env, "--uses", "2"],
        ));
        let only = names.join(",");
        let got = started_with(&d.addr, token.trim(), &["--only", &only]);
        assert_same_secrets(&got, &all, env);
        let got = started_with(&d.addr, token.trim(), &[]);
        assert_same_secrets(&got, &expected_secrets(m, env, false), env);
    }

    // The fixture's credentials do what they did.
    let partly = credential(m, "partly_used_token");
    let partly_id = partly.split(':').next().unwrap();
    let uses_before = token_in(&tokens, partly_id).expect("listed")["uses_left"]
        .as_u64()
        .unwrap();
    let got = started_with(&d.addr, &partly, &[]);
    assert_same_secrets(
        &got,
        &expected_secrets(m, "production", false),
        "partly used token",
    );
    let after = listing(d, &["runner-token", "list"]);
    assert_eq!(
        token_in(&after, partly_id).expect("still listed")["uses_left"],
        uses_before - 1
    );

    let got = started_with(&d.addr, &credential(m, "allow_list_token"), &[]);
    let mut want = expected_secrets(m, "production", true);
    want.retain(|n, _| n == "DB_URL" || n == "SIGNING_KEY");
    assert_same_secrets(&got, &want, "allow-list token");
    // That was its last use.
    let out = common::agent(&d.addr, &credential(m, "allow_list_token"), &[])
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", common::stderr(&out));

    let got = started_with(&d.addr, &credential(m, "snapshot_key"), &[]);
    assert_same_secrets(
        &got,
        &expected_secrets(m, "production", false),
        "snapshot key",
    );

    let revoked = credential(m, "revoked_token");
    let out = common::agent(&d.addr, &revoked, &[])
        .args(["--", "/bin/sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", common::stderr(&out));
    assert!(out.stdout.is_empty(), "the app ran on a revoked token");
    let id = revoked.split(':').next().unwrap();
    assert!(
        common::stderr(&out).contains(&format!("runner token {id} has been revoked")),
        "{}",
        common::stderr(&out)
    );

    let reader = credential(m, "read_staging_key");
    let names = common::ok(common::runseal(
        &d.addr,
        &reader,
        &["secrets", "list", "--env", "staging"],
    ));
    assert!(names.contains("FEATURE_FLAGS"), "{names}");
    let out = common::runseal(
        &d.addr,
        &reader,
        &["secrets", "list", "--env", "production"],
    );
    assert!(!out.status.success(), "read:staging listed production");

    let revoked = credential(m, "revoked_key");
    let out = common::runseal(&d.addr, &revoked, &["secrets", "list", "--env", "main"]);
    assert!(!out.status.success(), "a revoked key listed secrets");
    let id = revoked.split(':').next().unwrap();
    assert!(
        common::stderr(&out).contains(&format!("key {id} has been revoked")),
        "{}",
        common::stderr(&out)
    );

    // What this test added came after the old rows, which are unchanged.
    assert_old_audit_rows(d, m);
}

#[track_caller]
fn assert_verifies(dir: &Path, db_url: Option<&str>) {
    let out = common::runseald_verify(dir, db_url);
    assert!(
        out.status.success(),
        "verify: {}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
}

#[test]
fn a_v0_2_sqlite_data_dir_is_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(tmp.path(), "sqlite");
    common::copy_private(&fixture("sqlite/runseal.db"), &dir.join("runseal.db"));
    let d = common::Daemon::start(&dir, &[], &[]);
    assert_intact(&d, &manifest("sqlite"));
    let (ok, log) = d.terminate();
    assert!(ok, "{log}");
    assert_verifies(&dir, None);
}

#[cfg(runseal_pg_tests)]
#[test]
fn a_v0_2_postgres_database_is_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = common::PgDb::create();
    pg.load_sql(&std::fs::read_to_string(fixture("pg/dump.sql")).unwrap());
    let dir = data_dir(tmp.path(), "pg");
    let d = common::Daemon::start(&dir, &["--database-url", &pg.url], &[]);
    assert_intact(&d, &manifest("pg"));
    let (ok, log) = d.terminate();
    assert!(ok, "{log}");
    assert_verifies(&dir, Some(&pg.url));
}
