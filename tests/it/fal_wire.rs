//! fal wire compatibility at the gRPC level: `controller.IsolateController` on runseald's port,
//! called with a tonic client generated from `proto/fal/controller.proto`, authenticated the way
//! the fal client does (`auth-key-id` / `auth-key`).
//!
//! What the fal CLI and SDK do end to end is in `tests/it/fal_cli.rs`; here are the exact codes,
//! field mappings and refusals. Assertion messages never print a key secret or a value.

use crate::common;

use common::{refused, TestServer};
use runseal::auth::Credential;
use runseal::proto::controller::isolate_controller_client::IsolateControllerClient;
use runseal::proto::controller::{self, Unsupported};
use runseal::proto::v1;
use runseal::proto::v1::runners_client::RunnersClient;
use runseal::proto::v1::secrets_client::SecretsClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Metadata a request carries, as the fal client sends it.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    /// `auth-key-id` / `auth-key` from `FAL_KEY=ID:SECRET`.
    FalPair(&'a Credential),
    /// Only `auth-key-id`.
    IdOnly(&'a Credential),
    /// The id of one key with the secret of another.
    WrongSecret(&'a Credential, &'a Credential),
    /// runseal's own `authorization: Bearer ID:SECRET`.
    Bearer(&'a Credential),
}

fn req<T>(msg: T, auth: Auth<'_>) -> Request<T> {
    let mut r = Request::new(msg);
    let m = r.metadata_mut();
    let v = |s: &str| MetadataValue::try_from(s).unwrap();
    match auth {
        Auth::None => {}
        Auth::FalPair(k) => {
            m.insert("auth-key-id", v(k.key_id()));
            m.insert("auth-key", v(k.expose_secret()));
        }
        Auth::IdOnly(k) => {
            m.insert("auth-key-id", v(k.key_id()));
        }
        Auth::WrongSecret(k, other) => {
            m.insert("auth-key-id", v(k.key_id()));
            m.insert("auth-key", v(other.expose_secret()));
        }
        Auth::Bearer(k) => {
            m.insert("authorization", v(&k.bearer()));
        }
    }
    r
}

async fn fal(server: &TestServer) -> IsolateControllerClient<Channel> {
    IsolateControllerClient::connect(server.addr.clone())
        .await
        .unwrap()
}

fn set(name: &str, value: Option<&str>, env: Option<&str>) -> controller::SetSecretRequest {
    controller::SetSecretRequest {
        name: name.into(),
        value: value.map(str::to_string),
        environment_name: env.map(str::to_string),
        default_exposed: None,
    }
}

fn list(env: Option<&str>) -> controller::ListSecretsRequest {
    controller::ListSecretsRequest {
        environment_name: env.map(str::to_string),
    }
}

#[tokio::test]
async fn every_rpc_outside_secrets_and_environments_is_unimplemented_and_says_why() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let mut c = fal(&server).await;
    let a = Auth::FalPair(&admin);
    let u = || Unsupported {};
    let empty = || tokio_stream::iter(Vec::<Unsupported>::new());

    let mut answers: Vec<(&str, Result<(), Status>)> = vec![
        ("Run", c.run(req(u(), a)).await.map(drop)),
        (
            "InteractiveRun",
            c.interactive_run(req(empty(), a)).await.map(drop),
        ),
        ("Map", c.map(req(u(), a)).await.map(drop)),
        (
            "RegisterApplication",
            c.register_application(req(u(), a)).await.map(drop),
        ),
        (
            "UpdateApplication",
            c.update_application(req(u(), a)).await.map(drop),
        ),
        (
            "ListApplications",
            c.list_applications(req(u(), a)).await.map(drop),
        ),
        (
            "DeleteApplication",
            c.delete_application(req(u(), a)).await.map(drop),
        ),
        (
            "RolloutApplication",
            c.rollout_application(req(u(), a)).await.map(drop),
        ),
        ("SetAlias", c.set_alias(req(u(), a)).await.map(drop)),
        ("DeleteAlias", c.delete_alias(req(u(), a)).await.map(drop)),
        ("ListAliases", c.list_aliases(req(u(), a)).await.map(drop)),
        (
            "ListAliasRunners",
            c.list_alias_runners(req(u(), a)).await.map(drop),
        ),
        ("StopRunner", c.stop_runner(req(u(), a)).await.map(drop)),
        ("KillRunner", c.kill_runner(req(u(), a)).await.map(drop)),
        ("ListRunners", c.list_runners(req(u(), a)).await.map(drop)),
        (
            "ShellRunner",
            c.shell_runner(req(empty(), a)).await.map(drop),
        ),
        (
            "BuildEnvironment",
            c.build_environment(req(u(), a)).await.map(drop),
        ),
    ];
    for (method, res) in answers.drain(..) {
        let msg = refused(
            res,
            Code::Unimplemented,
            &["runseal serves only secrets and environments", method],
            &[admin.expose_secret().as_bytes()],
            method,
        );
        assert!(msg.contains("fal secrets"), "{method}: {msg}");
    }
    // Keys: fal's presets and permissions have no runseal equivalent; the message says where
    // keys are managed.
    for (method, res) in [
        (
            "CreateUserKey",
            c.create_user_key(req(u(), a)).await.map(drop),
        ),
        (
            "ListUserKeys",
            c.list_user_keys(req(u(), a)).await.map(drop),
        ),
        (
            "RevokeUserKey",
            c.revoke_user_key(req(u(), a)).await.map(drop),
        ),
    ] {
        refused(
            res,
            Code::Unimplemented,
            &[
                "runseal serves only secrets and environments",
                method,
                "runseal keys",
            ],
            &[admin.expose_secret().as_bytes()],
            method,
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn keys_are_checked_like_everywhere_else() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let reader = server.key_with(&["read:main"]).await;
    let mut c = fal(&server).await;

    refused(
        c.list_secrets(req(list(None), Auth::None)).await,
        Code::Unauthenticated,
        &["missing key", "auth-key-id"],
        &[],
        "list_secrets",
    );
    refused(
        c.list_secrets(req(list(None), Auth::IdOnly(&admin))).await,
        Code::Unauthenticated,
        &["auth-key"],
        &[],
        "list_secrets",
    );
    let msg = refused(
        c.set_secret(req(
            set("HF_TOKEN", Some("hf-wire-value"), None),
            Auth::WrongSecret(&admin, &reader),
        ))
        .await,
        Code::Unauthenticated,
        &["invalid key", "FAL_KEY"],
        &[
            admin.expose_secret().as_bytes(),
            reader.expose_secret().as_bytes(),
            "hf-wire-value".as_bytes(),
        ],
        "set_secret",
    );
    assert!(!msg.contains("hf-wire-value"));
    // A read key may list but not set or unset.
    c.list_secrets(req(list(None), Auth::FalPair(&reader)))
        .await
        .unwrap();
    refused(
        c.set_secret(req(
            set("HF_TOKEN", Some("hf-wire-value"), None),
            Auth::FalPair(&reader),
        ))
        .await,
        Code::PermissionDenied,
        &["write:main", reader.key_id()],
        &[
            reader.expose_secret().as_bytes(),
            "hf-wire-value".as_bytes(),
        ],
        "set_secret",
    );
    refused(
        c.set_secret(req(set("HF_TOKEN", None, None), Auth::FalPair(&reader)))
            .await,
        Code::PermissionDenied,
        &["write:main"],
        &[reader.expose_secret().as_bytes()],
        "set_secret",
    );
    refused(
        c.create_environment(req(
            controller::CreateEnvironmentRequest {
                name: "staging".into(),
                description: None,
            },
            Auth::FalPair(&reader),
        ))
        .await,
        Code::PermissionDenied,
        &["admin"],
        &[reader.expose_secret().as_bytes()],
        "create_environment",
    );
    // The scopes of a per-environment key hold on the fal side too: read:main sees nothing of
    // staging.
    refused(
        c.list_secrets(req(list(Some("staging")), Auth::FalPair(&reader)))
            .await,
        Code::PermissionDenied,
        &["read:staging"],
        &[],
        "list_secrets",
    );
    // A revoked key is refused.
    server
        .admin_client()
        .await
        .keys()
        .revoke(reader.key_id())
        .await
        .unwrap();
    refused(
        c.list_secrets(req(list(None), Auth::FalPair(&reader)))
            .await,
        Code::Unauthenticated,
        &["revoked"],
        &[reader.expose_secret().as_bytes()],
        "list_secrets",
    );
    server.stop().await;
}

#[tokio::test]
async fn the_fal_pair_works_on_runseal_v1_and_bearer_on_the_fal_service() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let mut c = fal(&server).await;
    c.set_secret(req(
        set("FROM_BEARER", Some("v"), None),
        Auth::Bearer(&admin),
    ))
    .await
    .unwrap();
    let mut v1c = SecretsClient::connect(server.addr.clone()).await.unwrap();
    let names: Vec<String> = v1c
        .list_secrets(req(
            v1::ListSecretsRequest {
                environment: "main".into(),
            },
            Auth::FalPair(&admin),
        ))
        .await
        .unwrap()
        .into_inner()
        .secrets
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["FROM_BEARER"]);
    let other = server.key_with(&["read:main"]).await;
    refused(
        v1c.list_secrets(req(
            v1::ListSecretsRequest {
                environment: "main".into(),
            },
            Auth::WrongSecret(&admin, &other),
        ))
        .await,
        Code::Unauthenticated,
        &["invalid key"],
        &[
            admin.expose_secret().as_bytes(),
            other.expose_secret().as_bytes(),
        ],
        "list_secrets",
    );
    // A runner token works as the pair too (the credential of GetSnapshot).
    let token = server
        .admin_client()
        .await
        .runners()
        .issue("main", Default::default())
        .await
        .unwrap()
        .remove(0)
        .token;
    let mut runners = RunnersClient::connect(server.addr.clone()).await.unwrap();
    let snap = runners
        .get_snapshot(req(
            v1::GetSnapshotRequest::default(),
            Auth::FalPair(&token),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.environment, "main");
    assert_eq!(snap.secrets.len(), 1);
    assert_eq!(snap.secrets[0].name, "FROM_BEARER");
    server.stop().await;
}

#[tokio::test]
async fn secrets_map_field_by_field() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let a = Auth::FalPair(&admin);
    let mut c = fal(&server).await;
    let runseal = server.admin_client().await;
    runseal.environments().create("staging").await.unwrap();

    // No environment and an empty one both mean main; default_exposed is tri-state.
    let mut r = set("A_DEFAULT", Some("1"), None);
    r.default_exposed = None;
    c.set_secret(req(r, a)).await.unwrap();
    let mut r = set("B_HIDDEN", Some("2"), Some(""));
    r.default_exposed = Some(false);
    c.set_secret(req(r, a)).await.unwrap();
    let mut r = set("C_SHOWN", Some("3"), Some("staging"));
    r.default_exposed = Some(true);
    c.set_secret(req(r, a)).await.unwrap();

    let main = c
        .list_secrets(req(list(None), a))
        .await
        .unwrap()
        .into_inner()
        .secrets;
    let seen: Vec<(&str, Option<&str>, Option<bool>)> = main
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.environment_name.as_deref(),
                s.default_exposed,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("A_DEFAULT", Some("main"), None),
            ("B_HIDDEN", Some("main"), Some(false)),
        ]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for s in &main {
        let t = s.created_time.as_ref().expect("created_time is set");
        assert!((now - t.seconds).abs() < 120, "created_time is now-ish");
    }
    let staging = c
        .list_secrets(req(list(Some("staging")), a))
        .await
        .unwrap()
        .into_inner()
        .secrets;
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0].name, "C_SHOWN");
    assert_eq!(staging[0].environment_name.as_deref(), Some("staging"));
    assert_eq!(staging[0].default_exposed, Some(true));

    // The runseal side sees the same secrets with the same exposure.
    let via_runseal: Vec<(String, Option<bool>)> = runseal
        .secrets()
        .list("main")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.exposed_by_default))
        .collect();
    assert_eq!(
        via_runseal,
        [("A_DEFAULT".into(), None), ("B_HIDDEN".into(), Some(false))]
    );

    // The value stored is the value sent: a snapshot key reads it back.
    let snap_key = server.key_with(&["snapshot:staging"]).await;
    let snap = server
        .client(&snap_key)
        .await
        .runners()
        .snapshot("staging", "", &[])
        .await
        .unwrap();
    assert_eq!(snap.secrets.len(), 1);
    assert_eq!(snap.secrets[0].0, "C_SHOWN");
    assert!(snap.secrets[0].1.expose() == b"3", "staging value differs");

    // Updating without default_exposed keeps the setting; a request without value unsets.
    c.set_secret(req(set("B_HIDDEN", Some("22"), None), a))
        .await
        .unwrap();
    c.set_secret(req(set("A_DEFAULT", None, None), a))
        .await
        .unwrap();
    let main = c
        .list_secrets(req(list(Some("main")), a))
        .await
        .unwrap()
        .into_inner()
        .secrets;
    assert_eq!(main.len(), 1);
    assert_eq!(main[0].name, "B_HIDDEN");
    assert_eq!(main[0].default_exposed, Some(false));
    // Unsetting what is not set is NOT_FOUND, naming the secret and environment.
    refused(
        c.set_secret(req(set("A_DEFAULT", None, None), a)).await,
        Code::NotFound,
        &["A_DEFAULT", "main"],
        &[],
        "set_secret",
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_rule_and_without_the_value() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let a = Auth::FalPair(&admin);
    let mut c = fal(&server).await;
    let value = "bad-input-value-7";
    refused(
        c.set_secret(req(set("1BAD", Some(value), None), a)).await,
        Code::InvalidArgument,
        &["invalid secret name", "1BAD"],
        &[value.as_bytes()],
        "set_secret",
    );
    refused(
        c.set_secret(req(set("RUNSEAL_X", Some(value), None), a))
            .await,
        Code::InvalidArgument,
        &["reserved"],
        &[value.as_bytes()],
        "set_secret",
    );
    refused(
        c.set_secret(req(set("GOOD", Some(value), Some("Bad_Env")), a))
            .await,
        Code::InvalidArgument,
        &["invalid environment name", "Bad_Env"],
        &[value.as_bytes()],
        "set_secret",
    );
    refused(
        c.set_secret(req(set("GOOD", Some(value), Some("nope")), a))
            .await,
        Code::NotFound,
        &["\"nope\" does not exist", "fal environments create nope"],
        &[value.as_bytes()],
        "set_secret",
    );
    refused(
        c.list_secrets(req(list(Some("nope")), a)).await,
        Code::NotFound,
        &["fal environments create nope"],
        &[],
        "list_secrets",
    );
    refused(
        c.set_secret(req(set("NUL", Some("a\0b"), None), a)).await,
        Code::InvalidArgument,
        &["NUL"],
        &[],
        "set_secret",
    );
    // Nothing of the refused calls was stored.
    assert!(c
        .list_secrets(req(list(None), a))
        .await
        .unwrap()
        .into_inner()
        .secrets
        .is_empty());
    server.stop().await;
}

#[tokio::test]
async fn environments_map_and_delete_takes_the_secrets_with_it() {
    let server = TestServer::start().await;
    let admin = server.admin.clone();
    let a = Auth::FalPair(&admin);
    let mut c = fal(&server).await;

    let created = c
        .create_environment(req(
            controller::CreateEnvironmentRequest {
                name: "staging".into(),
                description: None,
            },
            a,
        ))
        .await
        .unwrap()
        .into_inner()
        .environment
        .unwrap();
    assert_eq!(created.name, "staging");
    assert!(!created.is_default);
    assert!(created.created_at.is_some());
    assert_eq!(created.description, None);

    let envs = c
        .list_environments(req(controller::ListEnvironmentsRequest {}, a))
        .await
        .unwrap()
        .into_inner()
        .environments;
    let seen: Vec<(&str, bool)> = envs
        .iter()
        .map(|e| (e.name.as_str(), e.is_default))
        .collect();
    assert_eq!(seen, [("main", true), ("staging", false)]);

    refused(
        c.create_environment(req(
            controller::CreateEnvironmentRequest {
                name: "staging".into(),
                description: None,
            },
            a,
        ))
        .await,
        Code::AlreadyExists,
        &["staging"],
        &[],
        "create_environment",
    );
    refused(
        c.create_environment(req(
            controller::CreateEnvironmentRequest {
                name: "Bad Env".into(),
                description: None,
            },
            a,
        ))
        .await,
        Code::InvalidArgument,
        &["invalid environment name"],
        &[],
        "create_environment",
    );
    refused(
        c.create_environment(req(
            controller::CreateEnvironmentRequest {
                name: "qa".into(),
                description: Some("for QA".into()),
            },
            a,
        ))
        .await,
        Code::InvalidArgument,
        &["description"],
        &[],
        "create_environment",
    );

    // fal deletes an environment with its secrets.
    c.set_secret(req(set("IN_STAGING", Some("x"), Some("staging")), a))
        .await
        .unwrap();
    c.delete_environment(req(
        controller::DeleteEnvironmentRequest {
            name: "staging".into(),
        },
        a,
    ))
    .await
    .unwrap();
    let names: Vec<String> = server
        .admin_client()
        .await
        .environments()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["main"]);
    refused(
        c.delete_environment(req(
            controller::DeleteEnvironmentRequest {
                name: "staging".into(),
            },
            a,
        ))
        .await,
        Code::NotFound,
        &["staging"],
        &[],
        "delete_environment",
    );
    refused(
        c.delete_environment(req(
            controller::DeleteEnvironmentRequest {
                name: "main".into(),
            },
            a,
        ))
        .await,
        Code::FailedPrecondition,
        &["main"],
        &[],
        "delete_environment",
    );

    // A key scoped to one environment lists only that one.
    let scoped = server.key_with(&["write:main"]).await;
    let envs = c
        .list_environments(req(
            controller::ListEnvironmentsRequest {},
            Auth::FalPair(&scoped),
        ))
        .await
        .unwrap()
        .into_inner()
        .environments;
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].name, "main");
    server.stop().await;
}

#[test]
fn a_set_request_never_prints_its_value() {
    let r = controller::SetSecretRequest {
        name: "HF_TOKEN".into(),
        value: Some("hf-debug-value".into()),
        environment_name: None,
        default_exposed: Some(true),
    };
    let shown = format!("{r:?} {r:#?}");
    assert!(!shown.contains("hf-debug-value"), "{shown}");
    assert!(shown.contains("HF_TOKEN") && shown.contains("[redacted]"));
}
