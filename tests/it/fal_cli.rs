//! The real fal client stack against the real runseald: the `fal` CLI and the Python SDK
//! (`fal.api.SyncServerlessClient`), pinned in `tests/fal/requirements.txt` and installed once
//! into `target/fal-venv` by `tests/fal/venv.sh`, pointed at runseald with
//! `FAL_GRPC_HOST=127.0.0.1:PORT`, `ISOLATE_TEST_MODE=1` (plaintext loopback) or TLS with
//! `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, and `FAL_KEY=KEY_ID:KEY_SECRET`.
//!
//! What fal sets is cross-checked with the runseal CLI and with a runseal-agent started
//! afterwards. fal runs with a fresh HOME and config of its own and only the variables set here,
//! so a user's fal config or keys are never read and nothing reaches fal's hosts. These tests
//! never skip: without python3 (with venv) and the package registry they fail, saying so.
//!
//! Assertion messages never print a secret value or a key secret.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{json, ok, pki, runseal, Daemon};
use serde_json::Value;

/// The venv with the pinned fal, created (or reused) once per test binary.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("tests/fal/venv.sh"))
            .arg(root.join("target/fal-venv"))
            .stdin(Stdio::null())
            .output()
            .expect("run tests/fal/venv.sh");
        assert!(
            out.status.success(),
            "tests/fal/venv.sh failed (python3 with the venv module and the package registry \
             are needed the first time):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A runseald and what a fal user points at it.
struct Setup {
    dir: tempfile::TempDir,
    d: Daemon,
    /// The admin key, `KEY_ID:KEY_SECRET`.
    key: String,
    /// `host:port` for FAL_GRPC_HOST.
    grpc_host: String,
}

impl Setup {
    /// runseald logging at `trace`, so the tests see that not even there a value or key shows.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), &[], &[("RUNSEAL_LOG", "trace")]);
        let key = d.admin_key();
        let grpc_host = d.addr.trim_start_matches("http://").to_string();
        Self {
            dir,
            d,
            key,
            grpc_host,
        }
    }

    /// A `fal` command (or the venv's python with `program = "python"`) with nothing of the
    /// test's environment: its own HOME and fal config, the server, the key.
    fn command(&self, program: &str, key: &str, extra: &[(&str, &str)]) -> Command {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        // Never check for a newer fal (it would query the package registry).
        let config = home.join("fal-config.toml");
        std::fs::write(&config, "check_updates = false\n").unwrap();
        let bin = venv().join("bin");
        let mut c = Command::new(bin.join(program));
        c.env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", &home)
            .env("FAL_CONFIG_PATH", &config)
            .env("FAL_HOME_DIR", home.join(".fal"))
            .env("FAL_GRPC_HOST", &self.grpc_host)
            .env("ISOLATE_TEST_MODE", "1")
            .env("FAL_KEY", key)
            // Any REST call fal might make goes to a closed local port, never to fal's hosts.
            .env("FAL_REST_HOST", "127.0.0.1:9")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("COLUMNS", "200")
            .env("LANG", "C.UTF-8")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn fal_as(&self, key: &str, args: &[&str]) -> Output {
        self.command("fal", key, &[])
            .args(args)
            .output()
            .expect("run fal")
    }

    fn fal(&self, args: &[&str]) -> Output {
        self.fal_as(&self.key, args)
    }

    /// Runs `fal ARGS`, asserts success, returns stdout.
    #[track_caller]
    fn fal_ok(&self, args: &[&str]) -> String {
        let out = self.fal(args);
        assert!(
            out.status.success(),
            "fal {} failed ({:?}):\n{}{}",
            redacted(args),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a Python program with the venv's interpreter and the fal SDK.
    #[track_caller]
    fn python_ok(&self, program: &str) -> String {
        let out = self
            .command("python", &self.key, &[])
            .arg("-c")
            .arg(program)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "the SDK program failed ({:?}):\n{}",
            out.status.code(),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn runseal_ok(&self, args: &[&str]) -> String {
        ok(runseal(&self.d.addr, &self.key, args))
    }

    /// The environment `runseal-agent` gives an app started now in `env` (an `env -0` app).
    fn runner_env(&self, env: &str) -> BTreeMap<String, String> {
        let token = self.runseal_ok(&["runner-token", "issue", "--env", env]);
        let out = common::agent(&self.d.addr, token.trim(), &["--", "env", "-0"])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("run runseal-agent");
        assert!(
            out.status.success(),
            "runseal-agent failed: {}",
            text(&out.stderr)
        );
        out.stdout
            .split(|b| *b == 0)
            .filter_map(|e| {
                let s = String::from_utf8_lossy(e);
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .filter(|(k, _)| !k.starts_with("RUNSEAL_") && k != "PATH")
            .collect()
    }

    /// Asserts that neither the server log nor `outputs` hold any of `secrets`.
    #[track_caller]
    fn assert_never_shown(&self, outputs: &[&str], secrets: &[&str]) {
        let log = self.d.log();
        for s in secrets {
            assert!(!log.contains(s), "a secret reached the runseald log");
            for (i, o) in outputs.iter().enumerate() {
                assert!(!o.contains(s), "a secret reached fal output #{i}");
            }
        }
    }
}

/// The arguments of a fal command for a failure message: `NAME=VALUE` shows as `NAME=…`.
fn redacted(args: &[&str]) -> String {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((name, _)) => format!("{name}=…"),
            None => a.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn audit_contains(audit: &[(String, String, String)], action: &str, env: &str, name: &str) -> bool {
    audit
        .iter()
        .any(|(a, e, n)| a == action && e == env && n.contains(name))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (name, environment, default_exposed) of `fal secrets list --output json`.
fn listed(v: &Value) -> Vec<(String, String, Value)> {
    v["secrets"]
        .as_array()
        .expect("secrets array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["environment"].as_str().unwrap().to_string(),
                s["default_exposed"].clone(),
            )
        })
        .collect()
}

#[test]
fn fal_cli_manages_secrets_and_environments_that_runners_then_get() {
    let s = Setup::start();
    let (main_v, db_v, hidden_v, staging_v) = (
        "hf-main-value-41",
        "postgres://app:pw-db-value-42@db/app",
        "hidden-value-43",
        "hf-staging-value-44",
    );

    // Environments: create, list (table and JSON).
    let out = s.fal_ok(&["environments", "create", "staging"]);
    assert!(out.contains("Created environment 'staging'"), "{out}");
    let table = s.fal_ok(&["environments", "list"]);
    assert!(
        table.contains("main") && table.contains("staging"),
        "{table}"
    );
    let envs = json(&s.fal_ok(&["environments", "list", "--output", "json"]));
    let envs: Vec<(String, bool)> = envs["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["is_default"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        envs,
        [("main".to_string(), true), ("staging".to_string(), false)]
    );

    // Two secrets in one command, one in staging, one not exposed by default.
    let set_out = s.fal_ok(&[
        "secrets",
        "set",
        &format!("HF_TOKEN={main_v}"),
        &format!("DB_URL={db_v}"),
    ]);
    let staging_out = s.fal_ok(&[
        "secrets",
        "set",
        &format!("HF_TOKEN={staging_v}"),
        "--env",
        "staging",
    ]);
    let hidden_out = s.fal_ok(&[
        "secrets",
        "set",
        &format!("HIDDEN={hidden_v}"),
        "--not-exposed-by-default",
    ]);

    // List: a table, and JSON with names, environment and exposure; never values.
    let table = s.fal_ok(&["secrets", "list"]);
    for name in ["HF_TOKEN", "DB_URL", "HIDDEN", "main"] {
        assert!(table.contains(name), "table lacks {name}: {table}");
    }
    let hidden_row = table.lines().find(|l| l.contains("HIDDEN")).unwrap();
    assert!(hidden_row.contains("no"), "{hidden_row}");
    let hf_row = table.lines().find(|l| l.contains("HF_TOKEN")).unwrap();
    assert!(hf_row.contains("yes"), "{hf_row}");
    let main_json = s.fal_ok(&["secrets", "list", "--output", "json"]);
    let v = json(&main_json);
    let mut main_list = listed(&v);
    main_list.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        main_list,
        [
            ("DB_URL".into(), "main".into(), Value::Bool(true)),
            ("HF_TOKEN".into(), "main".into(), Value::Bool(true)),
            ("HIDDEN".into(), "main".into(), Value::Bool(false)),
        ]
    );
    for secret in v["secrets"].as_array().unwrap() {
        let created = secret["created_at"].as_str().unwrap();
        assert!(created.starts_with("20"), "created_at: {created}");
    }
    let staging_json = s.fal_ok(&["secrets", "list", "--env", "staging", "--output", "json"]);
    assert_eq!(
        listed(&json(&staging_json)),
        [("HF_TOKEN".into(), "staging".into(), Value::Bool(true))]
    );

    // Unset.
    let unset_out = s.fal_ok(&["secrets", "unset", "DB_URL"]);
    let after = json(&s.fal_ok(&["secrets", "list", "--output", "json"]));
    let names: Vec<String> = listed(&after).into_iter().map(|(n, _, _)| n).collect();
    assert!(!names.contains(&"DB_URL".to_string()), "{names:?}");

    // Environments: create and delete another one (fal asks for confirmation without --yes).
    s.fal_ok(&["environments", "create", "qa"]);
    s.fal_ok(&["secrets", "set", "QA_ONLY=q", "--env", "qa"]);
    let out = s.fal_ok(&["environments", "delete", "qa", "--yes"]);
    assert!(out.contains("Deleted environment 'qa'"), "{out}");
    let envs = s.fal_ok(&["environments", "list", "--output", "json"]);
    assert!(!envs.contains("\"qa\""), "{envs}");

    // The runseal CLI sees what fal set.
    let runseal_json = json(&s.runseal_ok(&["secrets", "list", "--output", "json"]));
    let mut names: Vec<&str> = runseal_json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["HF_TOKEN", "HIDDEN"]);
    let envs = s.runseal_ok(&["env", "list"]);
    assert!(
        envs.contains("staging") && !envs.contains("qa"),
        "runseal env list: {envs}"
    );
    // Every fal change is in runseal's audit log, under the key fal used.
    let audit = json(&s.runseal_ok(&["audit", "--output", "json"]));
    let audit: Vec<(String, String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["environment"].as_str().unwrap_or_default().to_string(),
                e["names"].to_string(),
            )
        })
        .collect();
    let key_id = s.key.split(':').next().unwrap();
    assert!(
        audit_contains(&audit, "secrets.set", "staging", "HF_TOKEN"),
        "{audit:?}"
    );
    assert!(
        audit_contains(&audit, "secrets.unset", "main", "DB_URL"),
        "{audit:?}"
    );
    assert!(
        audit_contains(&audit, "environment.delete", "qa", ""),
        "{audit:?}"
    );
    assert!(
        s.runseal_ok(&["audit"]).contains(key_id),
        "the audit log names the key"
    );

    // Runners started now get exactly what fal set: per environment, exposure respected, the
    // unset secret gone.
    let main_env = s.runner_env("main");
    assert_eq!(
        main_env.keys().collect::<Vec<_>>(),
        ["HF_TOKEN"],
        "main runner variables"
    );
    assert!(
        main_env["HF_TOKEN"] == main_v,
        "main runner: HF_TOKEN differs"
    );
    let staging_env = s.runner_env("staging");
    assert_eq!(staging_env.keys().collect::<Vec<_>>(), ["HF_TOKEN"]);
    assert!(
        staging_env["HF_TOKEN"] == staging_v,
        "staging runner: HF_TOKEN differs"
    );

    s.assert_never_shown(
        &[
            &set_out,
            &staging_out,
            &hidden_out,
            &table,
            &main_json,
            &staging_json,
            &unset_out,
        ],
        &[
            main_v,
            db_v,
            hidden_v,
            staging_v,
            s.key.split(':').nth(1).unwrap(),
        ],
    );
}

#[test]
fn fal_python_sdk_sets_lists_and_unsets() {
    let s = Setup::start();
    s.runseal_ok(&["env", "create", "staging"]);
    let program = r#"
import json
from fal.api import SyncServerlessClient

client = SyncServerlessClient()
client.secrets.set("SDK_TOKEN", "sdk-staging-value-51", environment_name="staging")
client.secrets.set("SDK_MAIN", "sdk-main-value-52")
client.secrets.set("SDK_GONE", "sdk-gone-value-53", default_exposed=False)
client.secrets.unset("SDK_GONE")
print(json.dumps({
    "staging": [[s.name, s.environment_name, s.default_exposed]
                for s in client.secrets.list(environment_name="staging")],
    "main": sorted(s.name for s in client.secrets.list()),
    "created": client.secrets.list()[0].created_at.year,
    "environments": [[e.name, e.is_default] for e in client.environments.list()],
}))
"#;
    let out = s.python_ok(program);
    let v = json(&out);
    assert_eq!(
        v["staging"],
        serde_json::json!([["SDK_TOKEN", "staging", null]])
    );
    assert_eq!(v["main"], serde_json::json!(["SDK_MAIN"]));
    assert!(v["created"].as_i64().unwrap() >= 2024);
    assert_eq!(
        v["environments"],
        serde_json::json!([["main", true], ["staging", false]])
    );

    let staging = s.runner_env("staging");
    assert_eq!(staging.keys().collect::<Vec<_>>(), ["SDK_TOKEN"]);
    assert!(
        staging["SDK_TOKEN"] == "sdk-staging-value-51",
        "SDK_TOKEN differs"
    );
    let main = s.runner_env("main");
    assert_eq!(main.keys().collect::<Vec<_>>(), ["SDK_MAIN"]);

    s.assert_never_shown(
        &[&out],
        &[
            "sdk-staging-value-51",
            "sdk-main-value-52",
            "sdk-gone-value-53",
            s.key.split(':').nth(1).unwrap(),
        ],
    );
}

/// Runs `fal ARGS` expecting failure; asserts a non-zero exit, one clear message containing
/// every needle, no Python traceback, and no key secret. Returns what fal printed.
#[track_caller]
fn fails(s: &Setup, key: &str, args: &[&str], needles: &[&str]) -> String {
    let out = s.fal_as(key, args);
    let cmd = redacted(args);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let secret = key.split(':').nth(1).unwrap_or_default();
    assert!(
        secret.is_empty() || !shown.contains(secret),
        "fal {cmd}: the key secret was printed"
    );
    assert!(
        !out.status.success(),
        "fal {cmd} succeeded, expected a failure:\n{shown}"
    );
    assert!(
        !shown.contains("Traceback"),
        "fal {cmd}: a traceback instead of a message:\n{shown}"
    );
    for n in needles {
        assert!(shown.contains(n), "fal {cmd}: output lacks {n:?}:\n{shown}");
    }
    shown
}

#[test]
fn fal_cli_errors_read_well_and_exit_non_zero() {
    let s = Setup::start();
    let (id, _) = s.key.split_once(':').unwrap();
    let wrong = format!("{id}:{}", "0".repeat(64));
    let unknown = format!("rk_0000000000000000:{}", "1".repeat(64));

    // Wrong key, every command.
    let commands: [&[&str]; 7] = [
        &["secrets", "set", "A=wrong-key-value-61"],
        &["secrets", "list"],
        &["secrets", "unset", "A"],
        &["environments", "list"],
        &["environments", "create", "x"],
        &["environments", "delete", "x", "--yes"],
        &["secrets", "list", "--env", "staging", "--output", "json"],
    ];
    for args in commands {
        let shown = fails(&s, &wrong, args, &["invalid key", "FAL_KEY"]);
        assert!(!shown.contains("wrong-key-value-61"), "value echoed");
    }
    fails(
        &s,
        &unknown,
        &["secrets", "list"],
        &["invalid key", "FAL_KEY"],
    );

    // A key without the scope.
    let reader = s
        .runseal_ok(&["keys", "create", "--scope", "read:main"])
        .trim()
        .to_string();
    fails(
        &s,
        &reader,
        &["secrets", "set", "A=1"],
        &["lacks the scope write:main"],
    );
    fails(
        &s,
        &reader,
        &["environments", "create", "x"],
        &["lacks the scope admin"],
    );

    // A missing environment.
    let key = s.key.clone();
    for args in [
        &["secrets", "set", "A=1", "--env", "nope"][..],
        &["secrets", "list", "--env", "nope"],
        &["secrets", "unset", "A", "--env", "nope"],
    ] {
        fails(
            &s,
            &key,
            args,
            &[
                "environment \"nope\" does not exist",
                "fal environments create nope",
            ],
        );
    }
    fails(
        &s,
        &key,
        &["environments", "delete", "nope", "--yes"],
        &[
            "environment \"nope\" does not exist",
            "fal environments list",
        ],
    );
    fails(
        &s,
        &key,
        &["secrets", "unset", "NEVER_SET"],
        &["secret \"NEVER_SET\" is not set in environment \"main\""],
    );

    // Invalid names.
    fails(
        &s,
        &key,
        &["secrets", "set", "1BAD=invalid-name-value-62"],
        &["invalid secret name \"1BAD\"", "A-Z, a-z, 0-9 and '_'"],
    );
    fails(
        &s,
        &key,
        &["secrets", "set", "RUNSEAL_X=1"],
        &["reserved", "RUNSEAL_"],
    );
    fails(
        &s,
        &key,
        &["secrets", "set", "A=1", "--env", "Bad_Env"],
        &["invalid environment name \"Bad_Env\"", "a-z, 0-9 and '-'"],
    );
    fails(
        &s,
        &key,
        &["environments", "create", "Bad Env"],
        &["invalid environment name \"Bad Env\""],
    );
    fails(
        &s,
        &key,
        &["environments", "create", "qa", "--description", "for QA"],
        &["runseal environments have no description"],
    );
    fails(
        &s,
        &key,
        &["environments", "delete", "main", "--yes"],
        &["\"main\" cannot be deleted"],
    );

    // Beyond secrets and environments: UNIMPLEMENTED, saying what runseal serves.
    fails(
        &s,
        &key,
        &["apps", "list"],
        &["runseal serves only secrets and environments"],
    );
    fails(
        &s,
        &key,
        &["keys", "list"],
        &[
            "runseal serves only secrets and environments",
            "runseal keys",
        ],
    );

    // Nothing of the refused calls was stored.
    let listed = json(&s.runseal_ok(&["secrets", "list", "--output", "json"]));
    assert_eq!(listed["secrets"], serde_json::json!([]));
    s.assert_never_shown(
        &[],
        &[
            "wrong-key-value-61",
            "invalid-name-value-62",
            s.key.split(':').nth(1).unwrap(),
        ],
    );
}

/// Every method of the real `controller.IsolateController` (from the pinned isolate-proto) is
/// answered: the five runseal serves are reached (here with empty requests, so INVALID_ARGUMENT
/// for the ones needing a name), every other one is UNIMPLEMENTED with runseal's message, not
/// gRPC's bare "unknown method". Requests carry fields, so decoding them is exercised too.
#[test]
fn every_method_of_the_real_controller_service_gets_an_answer() {
    let s = Setup::start();
    let program = r#"
import json, os
import grpc
from isolate_proto import controller_pb2
from google.protobuf.descriptor import FieldDescriptor as F

def filled(cls):
    msg = cls()
    for f in cls.DESCRIPTOR.fields:
        if f.containing_oneof is not None:
            continue
        rep = f.is_repeated if hasattr(f, "is_repeated") else f.label == F.LABEL_REPEATED
        if f.type == F.TYPE_STRING:
            getattr(msg, f.name).append("x") if rep else setattr(msg, f.name, "x")
        elif f.type in (F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64):
            getattr(msg, f.name).append(1) if rep else setattr(msg, f.name, 1)
        elif f.type == F.TYPE_BOOL and not rep:
            setattr(msg, f.name, True)
    return msg

key_id, key_secret = os.environ["FAL_KEY"].split(":", 1)
meta = (("auth-key-id", key_id), ("auth-key", key_secret))
channel = grpc.insecure_channel(os.environ["FAL_GRPC_HOST"])
served = {"SetSecret", "ListSecrets", "ListEnvironments", "CreateEnvironment", "DeleteEnvironment"}
answers = {}
for m in controller_pb2.DESCRIPTOR.services_by_name["IsolateController"].methods:
    cls = getattr(controller_pb2, m.input_type.name)
    out_cls = getattr(controller_pb2, m.output_type.name)
    req = cls() if m.name in served else filled(cls)
    path = f"/controller.IsolateController/{m.name}"
    kw = dict(request_serializer=cls.SerializeToString, response_deserializer=out_cls.FromString)
    try:
        if m.client_streaming and m.server_streaming:
            list(channel.stream_stream(path, **kw)(iter([req]), metadata=meta, timeout=10))
        elif m.server_streaming:
            list(channel.unary_stream(path, **kw)(req, metadata=meta, timeout=10))
        else:
            channel.unary_unary(path, **kw)(req, metadata=meta, timeout=10)
        answers[m.name] = ["OK", ""]
    except grpc.RpcError as e:
        answers[m.name] = [e.code().name, e.details() or ""]
print(json.dumps(answers))
"#;
    let answers = json(&s.python_ok(program));
    let answers = answers.as_object().unwrap();
    for served in [
        "SetSecret",
        "ListSecrets",
        "ListEnvironments",
        "CreateEnvironment",
        "DeleteEnvironment",
    ] {
        assert!(
            answers.contains_key(served),
            "{served} missing: {answers:?}"
        );
    }
    assert!(answers.len() >= 20, "{answers:?}");
    for (method, answer) in answers {
        let (code, details) = (answer[0].as_str().unwrap(), answer[1].as_str().unwrap());
        match method.as_str() {
            "ListSecrets" | "ListEnvironments" => assert_eq!(code, "OK", "{method}: {details}"),
            "SetSecret" | "CreateEnvironment" | "DeleteEnvironment" => {
                assert_eq!(code, "INVALID_ARGUMENT", "{method}: {details}")
            }
            _ => {
                assert_eq!(code, "UNIMPLEMENTED", "{method}: {details}");
                assert!(
                    details.contains("runseal serves only secrets and environments")
                        && details.contains(method.as_str()),
                    "{method}: {details}"
                );
            }
        }
    }
}

/// Without ISOLATE_TEST_MODE fal speaks TLS; with the CA in GRPC_DEFAULT_SSL_ROOTS_FILE_PATH it
/// verifies runseald's certificate and works the same.
#[test]
fn fal_cli_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            p.server_cert.to_str().unwrap(),
            "--tls-key",
            p.server_key.to_str().unwrap(),
        ],
        &[],
    );
    let key = d.admin_key();
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    let s = Setup {
        dir,
        d,
        key,
        grpc_host: format!("localhost:{port}"),
    };
    let ca = p.ca.to_str().unwrap();
    let tls = |args: &[&str]| {
        s.command("fal", &s.key, &[("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca)])
            .env_remove("ISOLATE_TEST_MODE")
            .args(args)
            .output()
            .unwrap()
    };
    let out = tls(&["secrets", "set", "TLS_TOKEN=tls-value-71"]);
    assert!(
        out.status.success(),
        "fal over TLS failed:\n{}",
        text(&out.stderr)
    );
    let out = tls(&["secrets", "list", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = json(&text(&out.stdout));
    assert_eq!(
        listed(&v),
        [("TLS_TOKEN".into(), "main".into(), Value::Bool(true))]
    );
    // Without that CA fal does not trust runseald's certificate: nothing is sent.
    let out = s
        .command("fal", &s.key, &[])
        .env_remove("ISOLATE_TEST_MODE")
        .args(["secrets", "set", "UNTRUSTED=tls-value-72"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "fal trusted an unknown CA");
    let v = json(&text(&tls(&["secrets", "list", "--output", "json"]).stdout));
    assert_eq!(listed(&v).len(), 1, "a secret arrived over untrusted TLS");
}
