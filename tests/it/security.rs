//! Keys: missing, wrong, revoked and out-of-scope keys are refused with the right gRPC code.
//!
//! Also: health answers without a key; a key's secret never appears in `keys list` output nor
//! in any error message; key secrets are stored only as hashes (nowhere in the data dir).
//!
//! Assertion messages never print a key secret: they say where it leaked.

use crate::common;

use common::{all_files, contains, refused, TestServer};
use runseal::auth::Credential;
use runseal::client::{Client, ClientError};
use runseal::datadir::DATABASE_FILE;
use runseal::proto::v1;
use runseal::proto::v1::audit_client::AuditClient;
use runseal::proto::v1::environments_client::EnvironmentsClient;
use runseal::proto::v1::keys_client::KeysClient;
use runseal::proto::v1::secrets_client::SecretsClient;
use runseal::secret::SecretBytes;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(server.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A request carrying exactly this `authorization` value.
fn with_auth<T>(msg: T, value: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", MetadataValue::try_from(value).unwrap());
    req
}

fn list_main() -> v1::ListSecretsRequest {
    v1::ListSecretsRequest {
        environment: "main".into(),
    }
}

fn set_main(name: &str) -> v1::SetSecretsRequest {
    v1::SetSecretsRequest {
        environment: "main".into(),
        secrets: vec![v1::SecretValue {
            name: name.into(),
            value: b"value-of-an-unauthenticated-call".to_vec(),
        }],
        exposed_by_default: None,
    }
}

async fn secret_names(server: &TestServer, env: &str) -> Vec<String> {
    let (_, s) = server.store.list_secrets(env).await.unwrap();
    s.into_iter().map(|m| m.name).collect()
}

async fn audit_len(server: &TestServer) -> usize {
    server.store.list_audit(None, u32::MAX).await.unwrap().len()
}

fn one(name: &str, value: &[u8]) -> Vec<(String, SecretBytes)> {
    vec![(name.to_string(), SecretBytes::new(value.to_vec()))]
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_call_without_a_key_is_unauthenticated_on_every_service() {
    let server = TestServer::start().await;
    let audit_before = audit_len(&server).await;

    let mut secrets = SecretsClient::connect(server.addr.clone()).await.unwrap();
    let needles = ["missing key", "authorization: Bearer KEY_ID:KEY_SECRET"];
    refused(
        secrets.list_secrets(list_main()).await,
        Code::Unauthenticated,
        &needles,
        &[],
        "list without a key",
    );
    refused(
        secrets.set_secrets(set_main("NO_KEY")).await,
        Code::Unauthenticated,
        &needles,
        &[],
        "set without a key",
    );
    refused(
        secrets
            .unset_secret(v1::UnsetSecretRequest {
                environment: "main".into(),
                name: "X".into(),
                names: vec![],
            })
            .await,
        Code::Unauthenticated,
        &needles,
        &[],
        "unset without a key",
    );

    let ch = channel(&server).await;
    let mut envs = EnvironmentsClient::new(ch.clone());
    refused(
        envs.list_environments(v1::ListEnvironmentsRequest {}).await,
        Code::Unauthenticated,
        &needles,
        &[],
        "env list without a key",
    );
    refused(
        envs.create_environment(v1::CreateEnvironmentRequest {
            name: "staging".into(),
        })
        .await,
        Code::Unauthenticated,
        &needles,
        &[],
        "env create without a key",
    );
    let mut keys = KeysClient::new(ch.clone());
    refused(
        keys.list_keys(v1::ListKeysRequest {}).await,
        Code::Unauthenticated,
        &needles,
        &[],
        "keys list without a key",
    );
    refused(
        keys.create_key(v1::CreateKeyRequest {
            scopes: vec!["admin".into()],
            label: "sneaky".into(),
        })
        .await,
        Code::Unauthenticated,
        &needles,
        &[],
        "key create without a key",
    );
    let mut audit = AuditClient::new(ch);
    refused(
        audit
            .list_audit(v1::ListAuditRequest {
                environment: String::new(),
                limit: 0,
                before_id: 0,
            })
            .await,
        Code::Unauthenticated,
        &needles,
        &[],
        "audit without a key",
    );

    assert!(secret_names(&server, "main").await.is_empty());
    assert!(server.store.environment("staging").await.unwrap().is_none());
    assert_eq!(server.store.list_keys().await.unwrap().len(), 1);
    assert_eq!(audit_len(&server).await, audit_before, "no audit entry");
}

#[tokio::test]
async fn a_malformed_authorization_header_is_unauthenticated() {
    let server = TestServer::start().await;
    let admin_secret = server.admin.expose_secret().to_string();
    let line = server.admin.to_line().to_string();
    let id = server.admin.key_id().to_string();
    let mut secrets = SecretsClient::connect(server.addr.clone()).await.unwrap();
    let cases = [
        // The right key, without the scheme.
        line.clone(),
        // The right key under another scheme.
        format!("Basic {line}"),
        format!("Token {line}"),
        // The right key glued to the scheme.
        format!("Bearer{line}"),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer nocolon".to_string(),
        format!("Bearer {id}"),
        format!("Bearer {id}:"),
        format!("Bearer :{admin_secret}"),
        format!("Bearer {id}:{admin_secret}:extra"),
        format!("Bearer {id}:{admin_secret} trailing"),
    ];
    for (i, value) in cases.iter().enumerate() {
        let what = format!("malformed authorization case #{i}");
        refused(
            secrets.list_secrets(with_auth(list_main(), value)).await,
            Code::Unauthenticated,
            &["malformed authorization", "Bearer KEY_ID:KEY_SECRET"],
            &[admin_secret.as_bytes()],
            &what,
        );
        refused(
            secrets
                .set_secrets(with_auth(set_main("MALFORMED"), value))
                .await,
            Code::Unauthenticated,
            &["malformed authorization"],
            &[admin_secret.as_bytes()],
            &what,
        );
    }
    assert!(secret_names(&server, "main").await.is_empty());

    // The well-formed header works on the same connection (so the refusals above were about
    // the header).
    let res = secrets
        .list_secrets(with_auth(list_main(), &format!("Bearer {line}")))
        .await;
    assert!(res.is_ok(), "the admin key itself is accepted");
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_key_id_is_unauthenticated() {
    let server = TestServer::start().await;
    let admin_secret = server.admin.expose_secret().to_string();
    let id = server.admin.key_id().to_string();
    let audit_before = audit_len(&server).await;

    let mut wrong_secrets = vec![
        "0".repeat(64),
        // Almost right: prefix, extension, one character changed, different case.
        admin_secret[..63].to_string(),
        format!("{admin_secret}0"),
        {
            let mut s = admin_secret.clone().into_bytes();
            s[10] = if s[10] == b'a' { b'b' } else { b'a' };
            String::from_utf8(s).unwrap()
        },
        admin_secret.to_uppercase(),
    ];
    wrong_secrets.retain(|s| s != &admin_secret);
    let mut messages = Vec::new();
    for (i, wrong) in wrong_secrets.iter().enumerate() {
        let cred = Credential::parse(&format!("{id}:{wrong}")).unwrap();
        let client = server.client(&cred).await;
        let what = format!("wrong secret #{i} for the admin key id");
        messages.push(refused(
            client.secrets().list("main").await,
            Code::Unauthenticated,
            &["invalid key"],
            &[admin_secret.as_bytes(), wrong.as_bytes()],
            &what,
        ));
        refused(
            client.secrets().set("WRONG", b"v".to_vec(), "main").await,
            Code::Unauthenticated,
            &["invalid key"],
            &[admin_secret.as_bytes(), wrong.as_bytes()],
            &what,
        );
        refused(
            client.keys().create(&["admin".to_string()], "x").await,
            Code::Unauthenticated,
            &["invalid key"],
            &[admin_secret.as_bytes(), wrong.as_bytes()],
            &what,
        );
    }

    // An unknown key id, even with a real key's secret.
    for unknown in ["rk_0000000000000000", "rk_unknown", "admin", "runseald"] {
        let cred = Credential::parse(&format!("{unknown}:{admin_secret}")).unwrap();
        let client = server.client(&cred).await;
        messages.push(refused(
            client.secrets().list("main").await,
            Code::Unauthenticated,
            &["invalid key"],
            &[admin_secret.as_bytes()],
            &format!("unknown key id {unknown}"),
        ));
    }
    // The refusals do not tell an unknown id from a wrong secret.
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "wrong secret and unknown key id give the same message: {messages:?}"
    );

    assert!(secret_names(&server, "main").await.is_empty());
    assert_eq!(server.store.list_keys().await.unwrap().len(), 1);
    assert_eq!(audit_len(&server).await, audit_before);
    let admin_row = server.store.key(&id).await.unwrap().unwrap();
    assert!(admin_row.revoked_at.is_none());
}

#[tokio::test]
async fn a_revoked_key_is_unauthenticated_and_told_so() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let key = server.key_with(&["write:main"]).await;
    let secret = key.expose_secret().to_string();
    let client = server.client(&key).await;
    client
        .secrets()
        .set("BEFORE", b"v".to_vec(), "main")
        .await
        .expect("the key works before it is revoked");

    admin.keys().revoke(key.key_id()).await.unwrap();

    // The same client (same connection) is refused from now on.
    let msg = refused(
        client.secrets().set("AFTER", b"v".to_vec(), "main").await,
        Code::Unauthenticated,
        &["revoked", key.key_id()],
        &[secret.as_bytes()],
        "set with a revoked key",
    );
    assert!(msg.contains("has been revoked"), "message: {msg}");
    refused(
        client.secrets().list("main").await,
        Code::Unauthenticated,
        &["revoked"],
        &[secret.as_bytes()],
        "list with a revoked key",
    );
    refused(
        client.secrets().unset("BEFORE", "main").await,
        Code::Unauthenticated,
        &["revoked"],
        &[secret.as_bytes()],
        "unset with a revoked key",
    );
    // A new connection too.
    let fresh = server.client(&key).await;
    refused(
        fresh.environments().list().await,
        Code::Unauthenticated,
        &["revoked"],
        &[secret.as_bytes()],
        "env list with a revoked key on a new connection",
    );
    assert_eq!(secret_names(&server, "main").await, ["BEFORE"]);

    // Only a caller holding the right secret learns that the key was revoked.
    let guess = Credential::parse(&format!("{}:{}", key.key_id(), "f".repeat(64))).unwrap();
    let msg = refused(
        server.client(&guess).await.secrets().list("main").await,
        Code::Unauthenticated,
        &["invalid key"],
        &[secret.as_bytes()],
        "revoked key id with a wrong secret",
    );
    assert!(
        !msg.contains("revoked"),
        "a wrong secret must not reveal that the key was revoked: {msg}"
    );

    // Listed as revoked; other keys keep working; revoking twice is fine; revoking an unknown
    // id is NOT_FOUND.
    let keys = admin.keys().list().await.unwrap();
    let info = keys.iter().find(|k| k.key_id == key.key_id()).unwrap();
    assert!(info.revoked_at.is_some(), "keys list shows revoked_at");
    let admin_info = keys
        .iter()
        .find(|k| k.key_id == server.admin.key_id())
        .unwrap();
    assert!(admin_info.revoked_at.is_none());
    admin.keys().revoke(key.key_id()).await.unwrap();
    refused(
        admin.keys().revoke("rk_ffffffffffffffff").await,
        Code::NotFound,
        &["rk_ffffffffffffffff"],
        &[],
        "revoke an unknown key",
    );
    admin
        .secrets()
        .list("main")
        .await
        .expect("admin still works");
}

// ---------------------------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------------------------

async fn with_staging() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    admin.environments().create("staging").await.unwrap();
    admin
        .secrets()
        .set("IN_MAIN", b"main-value".to_vec(), "main")
        .await
        .unwrap();
    admin
        .secrets()
        .set("IN_STAGING", b"staging-value".to_vec(), "staging")
        .await
        .unwrap();
    (server, admin)
}

#[tokio::test]
async fn a_read_key_cannot_write() {
    let (server, _admin) = with_staging().await;
    let key = server.key_with(&["read:staging"]).await;
    let secret = key.expose_secret().to_string();
    let c = server.client(&key).await;
    let audit_before = audit_len(&server).await;

    let listed = c
        .secrets()
        .list("staging")
        .await
        .expect("read:staging lists staging");
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["IN_STAGING"]
    );

    refused(
        c.secrets().set("NEW", b"v".to_vec(), "staging").await,
        Code::PermissionDenied,
        &["write:staging", key.key_id()],
        &[secret.as_bytes()],
        "read:staging sets in staging",
    );
    refused(
        c.secrets().unset("IN_STAGING", "staging").await,
        Code::PermissionDenied,
        &["write:staging"],
        &[secret.as_bytes()],
        "read:staging unsets in staging",
    );
    refused(
        c.secrets().list("main").await,
        Code::PermissionDenied,
        &["read:main"],
        &[secret.as_bytes()],
        "read:staging lists main",
    );
    refused(
        c.secrets().set("NEW", b"v".to_vec(), "main").await,
        Code::PermissionDenied,
        &["write:main"],
        &[secret.as_bytes()],
        "read:staging sets in main",
    );
    assert_eq!(secret_names(&server, "staging").await, ["IN_STAGING"]);
    assert_eq!(secret_names(&server, "main").await, ["IN_MAIN"]);
    assert_eq!(audit_len(&server).await, audit_before);
}

#[tokio::test]
async fn a_write_key_works_in_its_environment_only_and_has_no_admin_rights() {
    let (server, _admin) = with_staging().await;
    let key = server.key_with(&["write:staging"]).await;
    let secret = key.expose_secret().to_string();
    let id = key.key_id().to_string();
    let c = server.client(&key).await;

    // Its own environment: set, list, unset.
    c.secrets()
        .set_many("staging", one("FROM_WRITER", b"writer-value"))
        .await
        .expect("write:staging sets in staging");
    let mut names: Vec<String> = c
        .secrets()
        .list("staging")
        .await
        .expect("write:staging lists staging")
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(names, ["FROM_WRITER", "IN_STAGING"]);
    c.secrets()
        .unset("FROM_WRITER", "staging")
        .await
        .expect("write:staging unsets in staging");
    let entry = server.store.list_audit(None, 1).await.unwrap().remove(0);
    assert_eq!(entry.key_id, id, "the audit log names the writing key");

    let keys_before = server.store.list_keys().await.unwrap().len();
    let audit_before = audit_len(&server).await;

    // main (and any other environment, existing or not) is out of scope.
    refused(
        c.secrets().set("X", b"v".to_vec(), "main").await,
        Code::PermissionDenied,
        &["write:main", &id],
        &[secret.as_bytes()],
        "write:staging sets in main",
    );
    refused(
        c.secrets().set("X", b"v".to_vec(), "").await,
        Code::PermissionDenied,
        &["write:main"],
        &[secret.as_bytes()],
        "write:staging sets in the default environment",
    );
    refused(
        c.secrets().list("main").await,
        Code::PermissionDenied,
        &["read:main"],
        &[secret.as_bytes()],
        "write:staging lists main",
    );
    refused(
        c.secrets().unset("IN_MAIN", "main").await,
        Code::PermissionDenied,
        &["write:main"],
        &[secret.as_bytes()],
        "write:staging unsets in main",
    );
    // A missing environment is refused for lack of scope, not reported as missing.
    refused(
        c.secrets().set("X", b"v".to_vec(), "ghost").await,
        Code::PermissionDenied,
        &["write:ghost"],
        &[secret.as_bytes()],
        "write:staging sets in a missing environment",
    );

    // Admin-only operations name the `admin` scope.
    let admin_needles = ["lacks the scope admin", id.as_str()];
    refused(
        c.environments().create("prod").await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging creates an environment",
    );
    refused(
        c.environments().delete("staging", true).await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging deletes its environment",
    );
    refused(
        c.keys().list().await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging lists keys",
    );
    refused(
        c.keys().create(&["admin".to_string()], "escalate").await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging creates an admin key",
    );
    refused(
        c.keys()
            .create(&["write:staging".to_string()], "copy")
            .await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging creates a key of its own scope",
    );
    refused(
        c.keys().revoke(server.admin.key_id()).await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging revokes the admin key",
    );
    refused(
        c.audit().list("", 0).await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging reads the audit log",
    );
    refused(
        c.audit().list("staging", 0).await,
        Code::PermissionDenied,
        &admin_needles,
        &[secret.as_bytes()],
        "write:staging reads the audit log of its environment",
    );

    assert_eq!(secret_names(&server, "main").await, ["IN_MAIN"]);
    assert!(server.store.environment("prod").await.unwrap().is_none());
    assert!(server.store.environment("ghost").await.unwrap().is_none());
    assert!(server.store.environment("staging").await.unwrap().is_some());
    assert_eq!(server.store.list_keys().await.unwrap().len(), keys_before);
    let admin_row = server
        .store
        .key(server.admin.key_id())
        .await
        .unwrap()
        .unwrap();
    assert!(
        admin_row.revoked_at.is_none(),
        "the admin key is not revoked"
    );
    assert_eq!(audit_len(&server).await, audit_before, "no audit entry");
}

#[tokio::test]
async fn write_implies_read_of_the_same_environment_only() {
    let (server, admin) = with_staging().await;
    admin.environments().create("prod").await.unwrap();
    let key = server.key_with(&["write:staging", "read:prod"]).await;
    let c = server.client(&key).await;
    c.secrets()
        .list("staging")
        .await
        .expect("write:staging implies read:staging");
    c.secrets()
        .list("prod")
        .await
        .expect("read:prod reads prod");
    refused(
        c.secrets().list("main").await,
        Code::PermissionDenied,
        &["read:main"],
        &[key.expose_secret().as_bytes()],
        "write:staging reads main",
    );
    // And read does not imply write.
    refused(
        c.secrets().set("X", b"v".to_vec(), "prod").await,
        Code::PermissionDenied,
        &["write:prod"],
        &[key.expose_secret().as_bytes()],
        "read:prod writes prod",
    );
}

#[tokio::test]
async fn env_list_for_a_scoped_key_shows_only_its_environments() {
    let (server, admin) = with_staging().await;
    for env in ["prod", "dev", "qa"] {
        admin.environments().create(env).await.unwrap();
    }
    let names = |envs: Vec<v1::Environment>| {
        let mut n: Vec<String> = envs.into_iter().map(|e| e.name).collect();
        n.sort();
        n
    };

    let all = names(admin.environments().list().await.unwrap());
    assert_eq!(all, ["dev", "main", "prod", "qa", "staging"]);

    let key = server.key_with(&["write:staging", "read:prod"]).await;
    let c = server.client(&key).await;
    let seen = c.environments().list().await.unwrap();
    let staging = seen.iter().find(|e| e.name == "staging").unwrap();
    assert_eq!(staging.secret_count, 1);
    assert_eq!(names(seen), ["prod", "staging"]);

    let key = server.key_with(&["read:main"]).await;
    let c = server.client(&key).await;
    assert_eq!(names(c.environments().list().await.unwrap()), ["main"]);

    // A scope for an environment that no longer exists shows nothing (and is gone with it).
    let admin = server.admin_client().await;
    admin.environments().create("later").await.unwrap();
    let key = server.key_with(&["read:later"]).await;
    admin.environments().delete("later", false).await.unwrap();
    let c = server.client(&key).await;
    assert!(c.environments().list().await.unwrap().is_empty());

    // An admin key made through the API sees everything.
    let key = server.key_with(&["admin"]).await;
    let c = server.client(&key).await;
    assert_eq!(names(c.environments().list().await.unwrap()), all);
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_answers_without_a_key() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(channel(&server).await);
    for service in ["", "runseal.v1.Secrets"] {
        let res = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check {service:?} without a key failed: {e}"));
        assert_eq!(
            res.into_inner().status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    let err = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

// ---------------------------------------------------------------------------------------------
// Key secrets never leave
// ---------------------------------------------------------------------------------------------

/// Every form a key secret could leak in: the hex text, its 32 raw bytes, and the stored hash
/// (hash leaking is not a disclosure of the secret, but a listing must not carry it either).
fn forms(cred: &Credential) -> Vec<(&'static str, Vec<u8>)> {
    let secret = cred.expose_secret();
    vec![
        ("secret", secret.as_bytes().to_vec()),
        ("raw secret bytes", hex::decode(secret).unwrap()),
        (
            "secret hash (hex)",
            hex::encode(cred.secret_hash()).into_bytes(),
        ),
    ]
}

#[tokio::test]
async fn a_key_secret_never_appears_in_keys_list_or_error_messages() {
    let (server, admin) = with_staging().await;
    let (created_info, writer) = admin
        .keys()
        .create(&["write:staging".to_string()], "deploy bot")
        .await
        .unwrap();
    let reader = server.key_with(&["read:main"]).await;
    let revoked = server.key_with(&["read:staging"]).await;
    // Use each key once so last_used_at is filled in, then revoke one.
    for k in [&writer, &reader, &revoked] {
        server.client(k).await.environments().list().await.unwrap();
    }
    admin.keys().revoke(revoked.key_id()).await.unwrap();
    let creds = [&server.admin, &writer, &reader, &revoked];

    let keys = admin.keys().list().await.unwrap();
    assert_eq!(keys.len(), 4);
    let ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
    for c in creds {
        assert!(ids.contains(&c.key_id()), "every key is listed by id");
    }
    let mut rendered: Vec<(String, String)> = Vec::new();
    rendered.push(("key create response".into(), format!("{created_info:?}")));
    for k in &keys {
        let label = format!("keys list entry {}", k.key_id);
        rendered.push((format!("{label} key_id"), k.key_id.clone()));
        rendered.push((format!("{label} label"), k.label.clone()));
        rendered.push((format!("{label} scopes"), k.scopes.join(",")));
        rendered.push((format!("{label} (Debug)"), format!("{k:?}")));
    }
    for e in admin.audit().list("", 0).await.unwrap() {
        rendered.push((
            format!("audit entry {} ({})", e.id, e.action),
            format!("{e:?}"),
        ));
    }
    for (place, text) in &rendered {
        for c in creds {
            for (form, bytes) in forms(c) {
                assert!(
                    !contains(text.as_bytes(), &bytes),
                    "{form} of key {} leaked into {place}",
                    c.key_id()
                );
            }
        }
    }

    // Error messages of every kind of refusal, for every key involved.
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, res: Result<(), ClientError>| {
        let e = res.expect_err(what);
        errors.push((what.to_string(), e.to_string()));
    };
    let w = server.client(&writer).await;
    record(
        "permission denied",
        w.secrets().list("main").await.map(drop),
    );
    record("admin only", w.keys().list().await.map(drop));
    let r = server.client(&revoked).await;
    record("revoked", r.secrets().list("staging").await.map(drop));
    let wrong =
        Credential::parse(&format!("{}:{}", writer.key_id(), &reader.expose_secret())).unwrap();
    record(
        "wrong secret",
        server
            .client(&wrong)
            .await
            .secrets()
            .list("staging")
            .await
            .map(drop),
    );
    let unknown =
        Credential::parse(&format!("rk_0123456789abcdef:{}", writer.expose_secret())).unwrap();
    record(
        "unknown key id",
        server
            .client(&unknown)
            .await
            .secrets()
            .list("staging")
            .await
            .map(drop),
    );
    record(
        "invalid argument",
        w.secrets()
            .set("1BAD", b"v".to_vec(), "staging")
            .await
            .map(drop),
    );
    let mut raw = SecretsClient::connect(server.addr.clone()).await.unwrap();
    for (i, header) in [
        writer.to_line().to_string(),
        format!("Basic {}", writer.to_line().as_str()),
        format!("Bearer {}:{}:x", writer.key_id(), writer.expose_secret()),
    ]
    .iter()
    .enumerate()
    {
        let status = raw
            .list_secrets(with_auth(list_main(), header))
            .await
            .expect_err("malformed header");
        errors.push((
            format!("malformed header #{i}"),
            status.message().to_string(),
        ));
    }
    assert_eq!(errors.len(), 9);
    for (what, msg) in &errors {
        for c in creds {
            for (form, bytes) in forms(c) {
                assert!(
                    !contains(msg.as_bytes(), &bytes),
                    "{form} of key {} leaked into the error message of: {what}",
                    c.key_id()
                );
            }
        }
    }
}

#[tokio::test]
async fn key_secrets_are_stored_only_as_hashes() {
    let mut server = TestServer::start().await;
    let admin = server.admin_client().await;
    let k1 = server.key_with(&["write:main"]).await;
    let k2 = server.key_with(&["admin"]).await;
    let k3 = server.key_with(&["read:main"]).await;
    // Use them (a use writes last_used_at), and revoke one.
    server
        .client(&k1)
        .await
        .secrets()
        .set("A", b"v".to_vec(), "main")
        .await
        .unwrap();
    server.client(&k2).await.keys().list().await.unwrap();
    server
        .client(&k3)
        .await
        .secrets()
        .list("main")
        .await
        .unwrap();
    admin.keys().revoke(k3.key_id()).await.unwrap();

    // What is stored for each key is the SHA-256 of its secret.
    for k in [&server.admin, &k1, &k2, &k3] {
        let row = server.store.key(k.key_id()).await.unwrap().unwrap();
        assert_eq!(
            row.secret_hash,
            k.secret_hash().to_vec(),
            "key {} is stored as the hash of its secret",
            k.key_id()
        );
    }

    let admin_cred = server.admin.clone();
    let check = |files: &[(std::path::PathBuf, Vec<u8>)], when: &str| {
        assert!(
            files
                .iter()
                .any(|(p, _)| p.file_name() == Some(DATABASE_FILE.as_ref())),
            "{when}: the database file is among the scanned files"
        );
        for (path, bytes) in files {
            for k in [&k1, &k2, &k3] {
                for (form, needle) in forms(k).into_iter().take(2) {
                    assert!(
                        !contains(bytes, &needle),
                        "{when}: {form} of key {} found in {}",
                        k.key_id(),
                        path.display()
                    );
                }
            }
            // The admin key is written to admin.key on purpose (first start); nowhere else.
            if path.file_name().is_some_and(|n| n == "admin.key") {
                continue;
            }
            for (form, needle) in forms(&admin_cred).into_iter().take(2) {
                assert!(
                    !contains(bytes, &needle),
                    "{when}: {form} of the admin key found in {}",
                    path.display()
                );
            }
        }
    };
    check(&all_files(server.dir.path()), "while running");

    // And after shutdown (WAL checkpointed or not).
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    drop(admin);
    server.stop().await;
    check(&all_files(dir.path()), "after shutdown");
}

#[tokio::test]
async fn a_runner_token_used_as_a_key_is_refused_with_a_message_that_says_so() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    let token = admin
        .runners()
        .issue("main", Default::default())
        .await
        .unwrap()
        .remove(0);
    let as_key = Client::connect(&s.addr, token.token.clone()).await.unwrap();
    let err = as_key.secrets().list("main").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    let shown = err.to_string();
    assert!(
        shown.contains("is a runner token") && shown.contains("needs a key"),
        "{shown}"
    );
    assert!(!shown.contains(token.token.expose_secret()));
    // The token was not spent by the refused call.
    let runner = Client::connect(&s.addr, token.token).await.unwrap();
    runner.runners().snapshot("", "", &[]).await.unwrap();
}
