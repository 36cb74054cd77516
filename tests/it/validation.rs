//! Every validation rule has a rejecting test and leaves the store unchanged.
//!
//! Each refused call is checked for: the gRPC code, a message that names the offending
//! name/field and the rule, and an untouched store: no secret of the batch stored or updated,
//! the environment's revision unchanged, no key created, no new audit entry. Batches put their
//! one invalid pair last, after valid ones, so "all or none" is what is being checked.
//!
//! Assertion messages never print a value.

use crate::common;

use common::{refused, TestServer};
use runseal::client::Client;
use runseal::names::{Limits, NamePolicy};
use runseal::secret::SecretBytes;
use tonic::Code;

/// (environment, name, value_len, data key id, nonce, ciphertext) of one stored secret.
type StoredSecret = (String, String, u64, String, Vec<u8>, Vec<u8>);

/// Everything a refused call must leave as it was. Ciphertexts are compared (not printed) so
/// that an update of an existing secret that slipped through is caught too.
struct StoreState {
    /// (name, revision, secret_count)
    environments: Vec<(String, u64, u64)>,
    secrets: Vec<StoredSecret>,
    /// (id, scopes, revoked)
    keys: Vec<(String, String, bool)>,
    /// Ids of every audit entry, newest first.
    audit: Vec<u64>,
}

async fn store_state(server: &TestServer) -> StoreState {
    let environments = server
        .store
        .list_environments()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.revision, e.secret_count))
        .collect();
    let secrets = server
        .store
        .all_sealed_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|(env, s)| {
            (
                env,
                s.name,
                s.value_len,
                s.sealed.key_id,
                s.sealed.nonce,
                s.sealed.ciphertext,
            )
        })
        .collect();
    let keys = server
        .store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.scopes, k.revoked_at.is_some()))
        .collect();
    let audit = server
        .store
        .list_audit(None, u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    StoreState {
        environments,
        secrets,
        keys,
        audit,
    }
}

/// Asserts that the store is exactly as it was in `before`.
async fn assert_unchanged(server: &TestServer, before: &StoreState, what: &str) {
    let after = store_state(server).await;
    assert_eq!(
        before.environments, after.environments,
        "{what}: environments (or their revisions / counts) changed"
    );
    let names = |s: &StoreState| {
        s.secrets
            .iter()
            .map(|(e, n, ..)| format!("{e}/{n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(before),
        names(&after),
        "{what}: the set of stored secrets changed"
    );
    assert!(
        before.secrets == after.secrets,
        "{what}: a stored secret's sealed value changed"
    );
    assert_eq!(before.keys, after.keys, "{what}: the keys changed");
    assert_eq!(
        before.audit, after.audit,
        "{what}: an audit entry was written for a refused call"
    );
}

fn batch(pairs: &[(&str, &[u8])]) -> Vec<(String, SecretBytes)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), SecretBytes::new(v.to_vec())))
        .collect()
}

async fn revision(server: &TestServer, env: &str) -> u64 {
    server
        .store
        .environment(env)
        .await
        .unwrap()
        .expect("environment exists")
        .revision
}

async fn names_in(server: &TestServer, env: &str) -> Vec<String> {
    let (_, secrets) = server.store.list_secrets(env).await.unwrap();
    secrets.into_iter().map(|s| s.name).collect()
}

async fn last_audit_action(server: &TestServer) -> (String, Option<String>, Vec<String>) {
    let a = server.store.list_audit(None, 1).await.unwrap().remove(0);
    (a.action, a.environment, a.names)
}

/// A server with `main` already holding two secrets, so a refused batch that touched them
/// (an update) would be visible.
async fn seeded(limits: Limits, policy: NamePolicy) -> (TestServer, Client) {
    let server = TestServer::start_with(limits, policy).await;
    let admin = server.admin_client().await;
    admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("EXISTING_A", b"old-value-a"),
                ("EXISTING_B", b"old-value-b"),
            ]),
        )
        .await
        .unwrap();
    (server, admin)
}

/// Sends `[EXISTING_A=new, GOOD_NEW=…, bad]` to main and checks it is refused as a whole.
async fn assert_batch_refused(
    server: &TestServer,
    client: &Client,
    bad_name: &str,
    bad_value: &[u8],
    code: Code,
    needles: &[&str],
) -> String {
    let before = store_state(server).await;
    let what = format!("batch ending in {:?}", truncate(bad_name));
    let good_update: &[u8] = b"new-value-for-a";
    let good_new: &[u8] = b"brand-new-value";
    let res = client
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("EXISTING_A", good_update),
                ("GOOD_NEW", good_new),
                (bad_name, bad_value),
            ]),
        )
        .await;
    let msg = refused(
        res,
        code,
        needles,
        &[good_update, good_new, bad_value],
        &what,
    );
    assert_unchanged(server, &before, &what).await;
    msg
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

const SECRET_NAME_RULE: &str =
    "use 1 to 256 characters A-Z, a-z, 0-9 and '_', not starting with a digit";
const ENV_NAME_RULE: &str =
    "use 1 to 63 characters a-z, 0-9 and '-', starting with a letter or digit";

// ---------------------------------------------------------------------------------------------
// Secret names
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_secret_names_are_refused_and_nothing_of_the_batch_is_stored() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let long = format!("A{}", "b".repeat(256));
    assert_eq!(long.len(), 257);
    for bad in ["", "1A", "9", "A-B", "A B", " A", "É", "NAMEÉ", "A.B"] {
        let quoted = format!("{bad:?}");
        assert_batch_refused(
            &server,
            &admin,
            bad,
            b"some-value",
            Code::InvalidArgument,
            &["invalid secret name", &quoted, SECRET_NAME_RULE],
        )
        .await;
    }
    // NAME=VALUE typed as a name: named up to the '=', the rest (likely a value) never shown.
    let msg = assert_batch_refused(
        &server,
        &admin,
        "TOKEN=hunter2-value",
        b"some-value",
        Code::InvalidArgument,
        &["invalid secret name", "\"TOKEN=…\"", SECRET_NAME_RULE],
    )
    .await;
    assert!(!msg.contains("hunter2"), "what followed '=' was echoed");
    // A 257-character name: the message names it (shortened) and the rule.
    let msg = assert_batch_refused(
        &server,
        &admin,
        &long,
        b"some-value",
        Code::InvalidArgument,
        &["invalid secret name", &long[..60], SECRET_NAME_RULE],
    )
    .await;
    assert!(
        msg.len() < 600,
        "a 257-character name should be shortened in the message, got {} bytes",
        msg.len()
    );
    assert_eq!(
        names_in(&server, "main").await,
        ["EXISTING_A", "EXISTING_B"],
        "only the seeded secrets remain"
    );
}

#[tokio::test]
async fn a_secret_name_of_256_characters_and_other_valid_names_are_accepted() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let max = format!("_{}", "Z9".repeat(127) + "z");
    assert_eq!(max.len(), 256);
    let rev = revision(&server, "main").await;
    let new_rev = admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                (&max, b"v1"),
                ("_", b"v2"),
                ("a", b"v3"),
                ("HF_TOKEN2", b"v4"),
            ]),
        )
        .await
        .expect("valid names, including one of 256 characters, are accepted");
    assert_eq!(new_rev, rev + 1, "one batch is one revision");
    assert_eq!(revision(&server, "main").await, rev + 1);
    let mut expected = vec![max.clone(), "HF_TOKEN2".into(), "_".into(), "a".into()];
    expected.sort();
    assert_eq!(names_in(&server, "main").await, expected);
    let (action, env, mut names) = last_audit_action(&server).await;
    names.sort();
    assert_eq!(action, "secrets.set");
    assert_eq!(env.as_deref(), Some("main"));
    assert_eq!(names, expected);
}

#[tokio::test]
async fn the_reserved_prefix_is_refused() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    for bad in ["RUNSEAL_", "RUNSEAL_TOKEN", "RUNSEAL_ENVIRONMENT"] {
        let quoted = format!("{bad:?}");
        assert_batch_refused(
            &server,
            &admin,
            bad,
            b"some-value",
            Code::InvalidArgument,
            &[&quoted, "reserved", "RUNSEAL_"],
        )
        .await;
    }
}

#[tokio::test]
async fn loader_names_and_the_default_deny_list_are_refused() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    for bad in ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_"] {
        let quoted = format!("{bad:?}");
        assert_batch_refused(
            &server,
            &admin,
            bad,
            b"/tmp/evil.so",
            Code::InvalidArgument,
            &[&quoted, "refused", "LD_*"],
        )
        .await;
    }
    for bad in [
        "BASH_ENV",
        "ENV",
        "GCONV_PATH",
        "DYLD_INSERT_LIBRARIES",
        "DYLD_LIBRARY_PATH",
    ] {
        let quoted = format!("{bad:?}");
        assert_batch_refused(
            &server,
            &admin,
            bad,
            b"/tmp/evil.sh",
            Code::InvalidArgument,
            &[&quoted, "refused", bad],
        )
        .await;
    }
    // The deny list is of exact names: names that merely contain one are fine.
    admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("MY_LD_PRELOAD", b"x"),
                ("BASH_ENV_FILE", b"y"),
                ("ENVIRONMENT", b"z"),
            ]),
        )
        .await
        .expect("names merely containing a denied name are accepted");
}

#[tokio::test]
async fn a_custom_deny_list_replaces_the_default_but_loader_and_reserved_names_stay_refused() {
    let policy = NamePolicy::new(vec!["NODE_OPTIONS".into(), "PYTHONSTARTUP".into()]);
    let (server, admin) = seeded(Limits::default(), policy).await;
    for bad in ["NODE_OPTIONS", "PYTHONSTARTUP"] {
        let quoted = format!("{bad:?}");
        assert_batch_refused(
            &server,
            &admin,
            bad,
            b"--require /tmp/x.js",
            Code::InvalidArgument,
            &[&quoted, "refused", bad],
        )
        .await;
    }
    assert_batch_refused(
        &server,
        &admin,
        "LD_PRELOAD",
        b"/tmp/evil.so",
        Code::InvalidArgument,
        &["\"LD_PRELOAD\"", "LD_*"],
    )
    .await;
    assert_batch_refused(
        &server,
        &admin,
        "RUNSEAL_X",
        b"whatever",
        Code::InvalidArgument,
        &["\"RUNSEAL_X\"", "reserved"],
    )
    .await;
    // BASH_ENV is only on the default list, which the custom list replaced.
    admin
        .secrets()
        .set("BASH_ENV", b"/etc/profile".to_vec(), "main")
        .await
        .expect("a name only on the default deny list is accepted with a custom list");
    assert!(names_in(&server, "main")
        .await
        .contains(&"BASH_ENV".to_string()));
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_value_with_a_nul_byte_is_refused() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    for value in [&b"abc\0def"[..], b"\0", b"trailing-nul\0", b"\0leading-nul"] {
        assert_batch_refused(
            &server,
            &admin,
            "WITH_NUL",
            value,
            Code::InvalidArgument,
            &["\"WITH_NUL\"", "NUL"],
        )
        .await;
    }
}

#[tokio::test]
async fn a_value_over_64_kib_is_refused_and_64_kib_is_accepted() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let over = vec![b'x'; 65537];
    let msg = assert_batch_refused(
        &server,
        &admin,
        "TOO_BIG",
        &over,
        Code::InvalidArgument,
        &["\"TOO_BIG\"", "65537", "65536"],
    )
    .await;
    assert!(msg.len() < 1000, "the message should not carry the value");

    let rev = revision(&server, "main").await;
    admin
        .secrets()
        .set("JUST_FITS", vec![b'y'; 65536], "main")
        .await
        .expect("a value of exactly 64 KiB is accepted");
    assert_eq!(revision(&server, "main").await, rev + 1);
    let (_, sealed) = server.store.sealed_secrets("main").await.unwrap();
    let stored = sealed.iter().find(|s| s.name == "JUST_FITS").unwrap();
    assert_eq!(stored.value_len, 65536);
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_name_twice_in_one_batch_is_refused() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("DUP", b"first-value"),
                ("OTHER", b"other-value"),
                ("DUP", b"second-value"),
            ]),
        )
        .await;
    refused(
        res,
        Code::InvalidArgument,
        &["\"DUP\"", "more than once"],
        &[b"first-value", b"other-value", b"second-value"],
        "duplicate name",
    );
    assert_unchanged(&server, &before, "duplicate name").await;

    // The same with an existing name: the existing value must stay.
    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set_many(
            "main",
            batch(&[("EXISTING_A", b"replacement"), ("EXISTING_A", b"again")]),
        )
        .await;
    refused(
        res,
        Code::InvalidArgument,
        &["\"EXISTING_A\"", "more than once"],
        &[b"replacement", b"again"],
        "duplicate existing name",
    );
    assert_unchanged(&server, &before, "duplicate existing name").await;
}

#[tokio::test]
async fn an_empty_batch_is_refused() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let before = store_state(&server).await;
    let res = admin.secrets().set_many("main", vec![]).await;
    refused(
        res,
        Code::InvalidArgument,
        &["no secrets given"],
        &[],
        "empty batch",
    );
    assert_unchanged(&server, &before, "empty batch").await;
}

// ---------------------------------------------------------------------------------------------
// Per-environment limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn more_secrets_than_the_environment_limit_are_refused() {
    let limits = Limits {
        max_secrets_per_environment: 5,
        ..Limits::default()
    };
    let (server, admin) = seeded(limits, NamePolicy::default()).await; // 2 secrets
    admin
        .secrets()
        .set("THIRD", b"v".to_vec(), "main")
        .await
        .unwrap();

    // 3 + 3 new = 6 > 5; the batch also updates an existing secret, which must not stick.
    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("EXISTING_A", b"updated-value"),
                ("NEW_1", b"value-1"),
                ("NEW_2", b"value-2"),
                ("NEW_3", b"value-3"),
            ]),
        )
        .await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "6 secrets", "limit is 5"],
        &[b"updated-value", b"value-1", b"value-2", b"value-3"],
        "6 secrets with a limit of 5",
    );
    assert_unchanged(&server, &before, "6 secrets with a limit of 5").await;

    // Updates do not count twice: 3 existing (updated) + 2 new = 5 fits exactly.
    admin
        .secrets()
        .set_many(
            "main",
            batch(&[
                ("EXISTING_A", b"u1"),
                ("EXISTING_B", b"u2"),
                ("THIRD", b"u3"),
                ("NEW_1", b"n1"),
                ("NEW_2", b"n2"),
            ]),
        )
        .await
        .expect("exactly the limit is accepted");
    assert_eq!(names_in(&server, "main").await.len(), 5);

    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set("ONE_TOO_MANY", b"value-6".to_vec(), "main")
        .await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "6 secrets", "limit is 5"],
        &[b"value-6"],
        "the 6th secret",
    );
    assert_unchanged(&server, &before, "the 6th secret").await;

    // The limit is per environment: another environment starts from zero.
    admin.environments().create("staging").await.unwrap();
    admin
        .secrets()
        .set_many(
            "staging",
            batch(&[
                ("A", b"1"),
                ("B", b"2"),
                ("C", b"3"),
                ("D", b"4"),
                ("E", b"5"),
            ]),
        )
        .await
        .expect("another environment has its own limit");
}

#[tokio::test]
async fn more_bytes_than_the_environment_limit_are_refused() {
    let limits = Limits {
        max_environment_bytes: 100,
        ..Limits::default()
    };
    let server = TestServer::start_with(limits, NamePolicy::default()).await;
    let admin = server.admin_client().await;
    admin
        .secrets()
        .set("BIG", vec![b'a'; 60], "main")
        .await
        .unwrap();

    // 60 + 30 + 20 = 110 > 100.
    let before = store_state(&server).await;
    let b30 = vec![b'b'; 30];
    let c20 = vec![b'c'; 20];
    let res = admin
        .secrets()
        .set_many("main", batch(&[("B30", &b30), ("C20", &c20)]))
        .await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "110 bytes", "limit is 100 bytes"],
        &[&b30, &c20],
        "110 bytes with a limit of 100",
    );
    assert_unchanged(&server, &before, "110 bytes with a limit of 100").await;

    // Growing an existing value past the limit is refused too, and the old value stays.
    let before = store_state(&server).await;
    let res = admin.secrets().set("BIG", vec![b'd'; 101], "main").await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "101 bytes", "limit is 100 bytes"],
        &[],
        "one value of 101 bytes with a limit of 100",
    );
    assert_unchanged(&server, &before, "one value of 101 bytes").await;

    // Replacing counts the new size only: 50 + 30 + 20 = 100 fits exactly.
    admin
        .secrets()
        .set_many(
            "main",
            batch(&[("BIG", &[b'e'; 50]), ("B30", &b30), ("C20", &c20)]),
        )
        .await
        .expect("exactly the byte limit is accepted");

    // And one byte more is not.
    let before = store_state(&server).await;
    let res = admin.secrets().set("ONE", b"z".to_vec(), "main").await;
    refused(
        res,
        Code::ResourceExhausted,
        &["101 bytes", "limit is 100 bytes"],
        &[],
        "one byte over",
    );
    assert_unchanged(&server, &before, "one byte over").await;
}

#[tokio::test]
async fn the_default_limit_of_1000_secrets_holds() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let thousand: Vec<(String, SecretBytes)> = (0..1000)
        .map(|i| {
            (
                format!("S{i:04}"),
                SecretBytes::new(format!("v{i}").into_bytes()),
            )
        })
        .collect();
    let rev = revision(&server, "main").await;
    admin
        .secrets()
        .set_many("main", thousand)
        .await
        .expect("1,000 secrets in one batch are accepted");
    assert_eq!(revision(&server, "main").await, rev + 1);
    assert_eq!(names_in(&server, "main").await.len(), 1000);

    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set("S1000", b"value-1001".to_vec(), "main")
        .await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "1001 secrets", "limit is 1000"],
        &[b"value-1001"],
        "the 1,001st secret",
    );
    assert_unchanged(&server, &before, "the 1,001st secret").await;

    // At the limit, updating an existing secret is still fine.
    admin
        .secrets()
        .set("S0000", b"updated".to_vec(), "main")
        .await
        .expect("an update at the limit is accepted");
    assert_eq!(names_in(&server, "main").await.len(), 1000);
}

#[tokio::test]
async fn the_default_limit_of_1_mib_per_environment_holds() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    // 16 values of 64 KiB: exactly 1 MiB.
    let full: Vec<(String, SecretBytes)> = (0..16)
        .map(|i| {
            (
                format!("CHUNK_{i:02}"),
                SecretBytes::new(vec![b'a' + i; 65536]),
            )
        })
        .collect();
    admin
        .secrets()
        .set_many("main", full)
        .await
        .expect("exactly 1 MiB is accepted");
    let before = store_state(&server).await;
    let res = admin.secrets().set("ONE_MORE", b"z".to_vec(), "main").await;
    refused(
        res,
        Code::ResourceExhausted,
        &["\"main\"", "1048577 bytes", "limit is 1048576 bytes"],
        &[],
        "1 MiB + 1 byte",
    );
    assert_unchanged(&server, &before, "1 MiB + 1 byte").await;
}

// ---------------------------------------------------------------------------------------------
// Environment names and existence
// ---------------------------------------------------------------------------------------------

fn bad_environment_names() -> Vec<String> {
    let mut v: Vec<String> = ["Main", "MAIN", "-a", "a_b", "a.b", "a b", "é", "main/x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("a".repeat(64));
    v
}

#[tokio::test]
async fn invalid_environment_names_are_refused_by_set_list_and_unset() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    for env in bad_environment_names() {
        let quoted = format!("{env:?}");
        let needles = ["invalid environment name", quoted.as_str(), ENV_NAME_RULE];

        let before = store_state(&server).await;
        let res = admin
            .secrets()
            .set_many(&env, batch(&[("GOOD", b"good-value")]))
            .await;
        let what = format!("set into {env:?}");
        refused(
            res,
            Code::InvalidArgument,
            &needles,
            &[b"good-value"],
            &what,
        );
        assert_unchanged(&server, &before, &what).await;

        let res = admin.secrets().list(&env).await;
        refused(res, Code::InvalidArgument, &needles, &[], "list");

        let before = store_state(&server).await;
        let res = admin.secrets().unset("EXISTING_A", &env).await;
        let what = format!("unset from {env:?}");
        refused(res, Code::InvalidArgument, &needles, &[], &what);
        assert_unchanged(&server, &before, &what).await;
    }
}

#[tokio::test]
async fn invalid_environment_names_are_refused_by_create_and_delete() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let mut names = bad_environment_names();
    names.push(String::new());
    for env in names {
        let quoted = format!("{env:?}");
        let needles = ["invalid environment name", quoted.as_str(), ENV_NAME_RULE];

        let before = store_state(&server).await;
        let what = format!("env create {env:?}");
        let res = admin.environments().create(&env).await;
        refused(res, Code::InvalidArgument, &needles, &[], &what);
        assert_unchanged(&server, &before, &what).await;

        let what = format!("env delete {env:?}");
        let res = admin.environments().delete(&env, true).await;
        refused(res, Code::InvalidArgument, &needles, &[], &what);
        assert_unchanged(&server, &before, &what).await;
    }
    // The longest valid name (63 characters) and a leading digit are fine.
    let longest = "a".repeat(63);
    admin
        .environments()
        .create(&longest)
        .await
        .expect("63 characters is accepted");
    admin
        .environments()
        .create("0-prod-eu")
        .await
        .expect("a leading digit and '-' are accepted");
}

#[tokio::test]
async fn setting_into_a_missing_environment_says_how_to_create_it() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let before = store_state(&server).await;
    let res = admin
        .secrets()
        .set_many(
            "staging",
            batch(&[("TOKEN", b"staging-token"), ("OTHER", b"other-value")]),
        )
        .await;
    refused(
        res,
        Code::NotFound,
        &[
            "\"staging\"",
            "does not exist",
            "runseal env create staging",
        ],
        &[b"staging-token", b"other-value"],
        "set into a missing environment",
    );
    assert_unchanged(&server, &before, "set into a missing environment").await;
    assert!(
        server.store.environment("staging").await.unwrap().is_none(),
        "setting must not create the environment"
    );

    let res = admin.secrets().list("staging").await;
    refused(
        res,
        Code::NotFound,
        &["\"staging\"", "runseal env create staging"],
        &[],
        "list a missing environment",
    );
    let res = admin.secrets().unset("TOKEN", "staging").await;
    refused(
        res,
        Code::NotFound,
        &["\"staging\""],
        &[],
        "unset in a missing environment",
    );
    let res = admin.environments().delete("staging", true).await;
    refused(
        res,
        Code::NotFound,
        &["\"staging\""],
        &[],
        "delete a missing environment",
    );
    assert_unchanged(&server, &before, "calls on a missing environment").await;

    // Creating an existing environment is refused as well.
    let res = admin.environments().create("main").await;
    refused(
        res,
        Code::AlreadyExists,
        &["\"main\"", "already exists"],
        &[],
        "create main again",
    );
    assert_unchanged(&server, &before, "create main again").await;
}

// ---------------------------------------------------------------------------------------------
// Unset and delete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unsetting_a_name_that_is_not_set_is_not_found_and_changes_nothing() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    let before = store_state(&server).await;
    let res = admin.secrets().unset("NEVER_SET", "main").await;
    refused(
        res,
        Code::NotFound,
        &["\"NEVER_SET\"", "not set", "\"main\""],
        &[],
        "unset a missing name",
    );
    assert_unchanged(&server, &before, "unset a missing name").await;

    // Set in another environment does not count.
    admin.environments().create("staging").await.unwrap();
    admin
        .secrets()
        .set("ONLY_STAGING", b"v".to_vec(), "staging")
        .await
        .unwrap();
    let before = store_state(&server).await;
    let res = admin.secrets().unset("ONLY_STAGING", "main").await;
    refused(
        res,
        Code::NotFound,
        &["\"ONLY_STAGING\"", "\"main\""],
        &[],
        "unset a name set only elsewhere",
    );
    assert_unchanged(&server, &before, "unset a name set only elsewhere").await;

    // An invalid name is refused as invalid, not looked up.
    for bad in ["1A", "A-B", ""] {
        let quoted = format!("{bad:?}");
        let res = admin.secrets().unset(bad, "main").await;
        refused(
            res,
            Code::InvalidArgument,
            &["invalid secret name", &quoted, SECRET_NAME_RULE],
            &[],
            "unset an invalid name",
        );
    }
    let long = "L".repeat(257);
    let res = admin.secrets().unset(&long, "main").await;
    refused(
        res,
        Code::InvalidArgument,
        &["invalid secret name", SECRET_NAME_RULE],
        &[],
        "unset a 257-character name",
    );
    assert_unchanged(&server, &before, "unset invalid names").await;

    // A real unset works and bumps the revision once.
    let rev = revision(&server, "main").await;
    admin.secrets().unset("EXISTING_A", "main").await.unwrap();
    assert_eq!(revision(&server, "main").await, rev + 1);
    assert_eq!(names_in(&server, "main").await, ["EXISTING_B"]);
}

#[tokio::test]
async fn main_cannot_be_deleted() {
    let (server, admin) = seeded(Limits::default(), NamePolicy::default()).await;
    for force in [false, true] {
        let before = store_state(&server).await;
        let res = admin.environments().delete("main", force).await;
        let what = format!("delete main (force={force})");
        refused(
            res,
            Code::FailedPrecondition,
            &["\"main\"", "cannot be deleted"],
            &[],
            &what,
        );
        assert_unchanged(&server, &before, &what).await;
    }
}

#[tokio::test]
async fn deleting_an_environment_with_secrets_needs_force() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    admin.environments().create("staging").await.unwrap();
    admin
        .secrets()
        .set_many("staging", batch(&[("A", b"1"), ("B", b"2")]))
        .await
        .unwrap();

    let before = store_state(&server).await;
    let res = admin.environments().delete("staging", false).await;
    refused(
        res,
        Code::FailedPrecondition,
        &["\"staging\"", "2 secret", "--force"],
        &[],
        "delete a non-empty environment",
    );
    assert_unchanged(&server, &before, "delete a non-empty environment").await;

    let deleted = admin
        .environments()
        .delete("staging", true)
        .await
        .expect("delete with force");
    assert_eq!(deleted, 2, "the response counts the deleted secrets");
    assert!(server.store.environment("staging").await.unwrap().is_none());
    assert!(
        server
            .store
            .all_sealed_secrets()
            .await
            .unwrap()
            .iter()
            .all(|(env, _)| env != "staging"),
        "the secrets of a deleted environment are gone"
    );
    let (action, env, _) = last_audit_action(&server).await;
    assert_eq!(action, "environment.delete");
    assert_eq!(env.as_deref(), Some("staging"));

    // Re-created, it starts empty.
    admin.environments().create("staging").await.unwrap();
    assert!(names_in(&server, "staging").await.is_empty());

    // An empty environment needs no force.
    assert_eq!(
        admin.environments().delete("staging", false).await.unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_scopes_on_key_create_are_refused_and_no_key_is_made() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let cases: &[(&[&str], &str)] = &[
        (&["root"], "root"),
        (&["write"], "write"),
        (&["write:"], "write:"),
        (&["write:Main"], "write:Main"),
        (&["write:a_b"], "write:a_b"),
        (&["delete:main"], "delete:main"),
        (&["Admin"], "Admin"),
        (&["read:main", "read:-x"], "read:-x"),
        (&["admin", ""], ""),
    ];
    for (scopes, bad) in cases {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let before = store_state(&server).await;
        let what = format!("key create with scopes {scopes:?}");
        let quoted = format!("{bad:?}");
        let res = admin.keys().create(&scopes, "label").await;
        refused(
            res,
            Code::InvalidArgument,
            &[
                "invalid scope",
                &quoted,
                "admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV or build:ENV",
            ],
            &[],
            &what,
        );
        assert_unchanged(&server, &before, &what).await;
    }

    let before = store_state(&server).await;
    let res = admin.keys().create(&[], "label").await;
    refused(
        res,
        Code::InvalidArgument,
        &["scopes", "at least one"],
        &[],
        "key create without scopes",
    );
    assert_unchanged(&server, &before, "key create without scopes").await;

    let res = admin
        .keys()
        .create(&["read:main".to_string()], "bad\nlabel")
        .await;
    refused(
        res,
        Code::InvalidArgument,
        &["label", "control characters"],
        &[],
        "key create with a control character in the label",
    );
    let res = admin
        .keys()
        .create(&["read:main".to_string()], &"l".repeat(201))
        .await;
    refused(
        res,
        Code::InvalidArgument,
        &["label", "200 characters"],
        &[],
        "key create with a 201-character label",
    );
    assert_unchanged(&server, &before, "key create with bad labels").await;

    // A scope of an environment that does not exist is refused, naming it; nothing is made.
    refused(
        admin
            .keys()
            .create(&["write:staging".to_string()], "ci")
            .await,
        Code::InvalidArgument,
        &["write:staging", "\"staging\" does not exist"],
        &[],
        "key create with a scope of a missing environment",
    );
    assert_unchanged(&server, &before, "key create with a missing environment").await;

    // Valid scopes of existing environments work.
    admin.environments().create("staging").await.unwrap();
    let (info, _) = admin
        .keys()
        .create(
            &["write:staging".to_string(), "read:main".to_string()],
            "ci",
        )
        .await
        .expect("valid scopes are accepted");
    let mut scopes = info.scopes.clone();
    scopes.sort();
    assert_eq!(scopes, ["read:main", "write:staging"]);
}
