//! The CLI as a new user meets it: exposure in listings and `secrets expose`, unsetting several
//! names at once, `NAME=-` (stdin, and a hidden prompt on a terminal), `whoami`, a mistyped
//! environment, scopes of environments that do not (or no longer) exist, help text and usage
//! hints, and `runseal run`. Through the real binaries.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, cli_refused, json, ok, runseal, runseal_stdin, stderr, stdout, Daemon};

/// The revision of `env`, from `env list --output json`.
fn revision(d: &Daemon, env: &str) -> u64 {
    let v = json(&ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["env", "list", "--output", "json"],
    )));
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == env)
        .unwrap_or_else(|| panic!("no environment {env}"))["revision"]
        .as_u64()
        .unwrap()
}

/// A new key with these scopes (one comma-separated `--scope`), as its `KEY_ID:KEY_SECRET`.
fn key(d: &Daemon, scopes: &str) -> String {
    let out = ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["keys", "create", "--scope", scopes, "--label", "polish"],
    ));
    out.trim().to_string()
}

/// The audit entries of `action`, newest first.
fn audit_of(d: &Daemon, action: &str) -> Vec<Value> {
    let v = json(&ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["audit", "--output", "json"],
    )));
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

/// `runseal run --env ENV -- sh -c SCRIPT` with `key`: the value checks happen inside the
/// child, so no value is ever printed.
fn run_sh(d: &Daemon, key: &str, env: &str, script: &str) -> Output {
    runseal(
        &d.addr,
        key,
        &["run", "--env", env, "--", "sh", "-c", script],
    )
}

#[test]
fn listings_show_the_exposure_and_expose_changes_it_without_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &admin, args);
    ok(rs(&["secrets", "set", "PLAIN=value-plain"]));
    ok(rs(&[
        "secrets",
        "set",
        "HIDDEN=value-hidden",
        "--not-exposed-by-default",
    ]));

    let listed = json(&ok(rs(&["secrets", "list", "--output", "json"])));
    let of = |v: &Value, name: &str| -> (Value, Value) {
        let s = v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {v}"))
            .clone();
        (s["exposed_by_default"].clone(), s["exposure"].clone())
    };
    assert_eq!(of(&listed, "HIDDEN"), (false.into(), "off".into()));
    assert_eq!(of(&listed, "PLAIN"), (true.into(), "default".into()));
    let pretty = ok(rs(&["secrets", "list"]));
    let header: Vec<&str> = pretty.lines().next().unwrap().split("  ").collect();
    let header: Vec<&str> = header
        .into_iter()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["Name", "Env", "Exposed", "Created At", "Updated At"]
    );
    let row = |name: &str| {
        pretty
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {pretty}"))
            .to_string()
    };
    assert!(row("HIDDEN").contains("  no  "), "{pretty}");
    assert!(row("PLAIN").contains("  yes (default)  "), "{pretty}");

    // Changed without the value: one revision, audited, the value kept.
    let before = revision(&d, "main");
    let out = ok(rs(&["secrets", "expose", "HIDDEN", "--on"]));
    assert!(out.contains("HIDDEN") && out.contains("exposed"), "{out}");
    ok(rs(&[
        "secrets", "expose", "PLAIN", "--off", "--env", "main",
    ]));
    assert_eq!(revision(&d, "main"), before + 2);
    let listed = json(&ok(rs(&["secrets", "list", "--output", "json"])));
    assert_eq!(of(&listed, "HIDDEN"), (true.into(), "on".into()));
    assert_eq!(of(&listed, "PLAIN"), (false.into(), "off".into()));
    let audited = audit_of(&d, "secrets.expose");
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0]["names"], serde_json::json!(["PLAIN"]));
    ok(rs(&["secrets", "expose", "PLAIN", "--default"]));
    let listed = json(&ok(rs(&["secrets", "list", "--output", "json"])));
    assert_eq!(of(&listed, "PLAIN"), (true.into(), "default".into()));

    // A runner without an allow-list now gets HIDDEN, with its value unchanged.
    let snap = key(&d, "snapshot:main");
    let got = run_sh(&d, &snap, "main", r#"test "$HIDDEN" = value-hidden"#);
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));

    // write:ENV is needed; an unknown secret is NOT_FOUND naming it; --on and --off exclude.
    let reader = key(&d, "read:main");
    cli_refused(
        &runseal(&d.addr, &reader, &["secrets", "expose", "PLAIN", "--off"]),
        "write:main",
    );
    cli_refused(&rs(&["secrets", "expose", "NOPE", "--on"]), "NOPE");
    let both = rs(&["secrets", "expose", "PLAIN", "--on", "--off"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    let listed = json(&ok(rs(&["secrets", "list", "--output", "json"])));
    assert_eq!(of(&listed, "PLAIN"), (true.into(), "default".into()));
}

#[test]
fn unset_of_several_names_is_one_change_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &admin, args);
    let names = |env: &str| -> Vec<String> {
        let v = json(&ok(rs(&[
            "secrets", "list", "--env", env, "--output", "json",
        ])));
        v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    ok(rs(&["secrets", "set", "A=1", "B=2", "C=3", "D=4"]));

    // An unknown name among them: NOT_FOUND naming it, nothing unset, no revision.
    let before = revision(&d, "main");
    let refused = rs(&["secrets", "unset", "A", "NOPE", "B"]);
    cli_refused(&refused, "NOPE");
    assert!(
        stderr(&refused).contains("not found"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(names("main"), ["A", "B", "C", "D"]);
    assert_eq!(revision(&d, "main"), before);
    // A name twice is refused too.
    cli_refused(&rs(&["secrets", "unset", "A", "A"]), "\"A\"");

    // Three at once: one revision, one audit entry naming all three.
    let out = ok(rs(&["secrets", "unset", "A", "B", "C"]));
    assert!(out.contains("A, B, C"), "{out}");
    assert_eq!(revision(&d, "main"), before + 1);
    assert_eq!(names("main"), ["D"]);
    let audited = audit_of(&d, "secrets.unset");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["names"], serde_json::json!(["A", "B", "C"]));

    // One name: the RPC as older clients send it.
    ok(rs(&["secrets", "unset", "D"]));
    assert!(names("main").is_empty());
}

#[tokio::test]
async fn the_single_name_unset_rpc_still_works_and_names_join_it() {
    use runseal::proto::v1;
    let server = common::TestServer::start().await;
    let client = server.admin_client().await;
    client
        .secrets()
        .set_many(
            "main",
            vec![
                ("A".into(), common::v("1")),
                ("B".into(), common::v("2")),
                ("C".into(), common::v("3")),
            ],
        )
        .await
        .unwrap();
    let mut raw = v1::secrets_client::SecretsClient::connect(server.addr.clone())
        .await
        .unwrap();
    let mut req = tonic::Request::new(v1::UnsetSecretRequest {
        environment: "main".into(),
        name: "A".into(),
        names: vec!["B".into()],
    });
    req.metadata_mut()
        .insert("authorization", server.admin.bearer().parse().unwrap());
    raw.unset_secret(req).await.unwrap();
    client.secrets().unset("C", "main").await.unwrap();
    assert!(client.secrets().list("main").await.unwrap().is_empty());
    server.stop().await;
}

#[test]
fn name_dash_reads_the_value_from_stdin_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let out = runseal_stdin(
        &d.addr,
        &admin,
        &["secrets", "set", "FROM_STDIN=-"],
        Some(b"piped-value-1\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Two values from one stdin cannot be told apart: refused, nothing set.
    let two = runseal_stdin(
        &d.addr,
        &admin,
        &["secrets", "set", "X1=-", "X2=-"],
        Some(b"v\n"),
    );
    cli_refused(&two, "only one value can be read from stdin");
    let snap = key(&d, "snapshot:main");
    let got = run_sh(
        &d,
        &snap,
        "main",
        r#"test "$FROM_STDIN" = piped-value-1 && test -z "${X1+set}""#,
    );
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
}

/// On a terminal (a pty from `script`), `NAME=-` prompts with echo off: the typed value is
/// stored and never appears on the terminal.
#[test]
fn name_dash_prompts_without_echo_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} secrets set TYPED=-", common::RUNSEAL),
            "/dev/null",
        ])
        .env("RUNSEAL_ADDR", &d.addr)
        .env("RUNSEAL_KEY", &admin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut terminal = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut prompted = false;
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !prompted && common::contains(&seen, b"(input hidden): ") {
                prompted = true;
                let _ = tx.send(());
            }
        }
        seen
    });
    // The prompt is printed once echo is off: typing now is never echoed.
    rx.recv_timeout(Duration::from_secs(30))
        .expect("no prompt on the terminal");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed-secret-42\r").unwrap();
    stdin.flush().unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let seen = reader.join().unwrap();
    let shown = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{shown}");
    assert!(
        !shown.contains("typed-secret-42"),
        "the value was echoed: {shown}"
    );
    assert!(shown.contains("set TYPED in main"), "{shown}");
    let snap = key(&d, "snapshot:main");
    let got = run_sh(&d, &snap, "main", r#"test "$TYPED" = typed-secret-42"#);
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
}

#[test]
fn whoami_shows_the_keys_id_label_and_scopes_never_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let k = key(&d, "read:main,issue:main");
    let (id, secret) = k.split_once(':').unwrap();
    let out = ok(runseal(&d.addr, &k, &["whoami", "--output", "json"]));
    assert!(!out.contains(secret), "the secret was printed");
    let v = json(&out);
    assert_eq!(v["key_id"], id);
    assert_eq!(v["label"], "polish");
    assert_eq!(v["scopes"], serde_json::json!(["read:main", "issue:main"]));
    let pretty = ok(runseal(&d.addr, &k, &["whoami"]));
    assert!(
        pretty.contains(id) && pretty.contains("read:main,issue:main"),
        "{pretty}"
    );
    assert!(!pretty.contains(secret));
    // A wrong secret is refused like any call.
    let wrong = format!("{id}:{}", "0".repeat(64));
    let out = runseal(&d.addr, &wrong, &["whoami"]);
    cli_refused(&out, "key refused");
}

#[test]
fn a_mistyped_environment_gets_the_closest_one_the_key_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &admin, args);
    ok(rs(&["env", "create", "staging"]));
    let out = rs(&["secrets", "list", "--env", "stagin"]);
    cli_refused(
        &out,
        "environment \"stagin\" does not exist; did you mean \"staging\"?",
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // Nothing close: the usual advice only.
    cli_refused(
        &rs(&["secrets", "set", "A=1", "--env", "qa"]),
        "runseal env create qa",
    );
    assert!(!stderr(&rs(&["secrets", "list", "--env", "qa"])).contains("did you mean"));

    // A key that may not see staging is never told it exists.
    let main_only = key(&d, "write:main");
    let out = runseal(&d.addr, &main_only, &["secrets", "list", "--env", "stagin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("\"staging\""), "{}", stderr(&out));
    // One that may is.
    let staging = key(&d, "read:staging");
    let out = runseal(&d.addr, &staging, &["secrets", "list", "--env", "stagin"]);
    cli_refused(&out, "did you mean environment \"staging\"?");

    // Listings of an environment that does not exist say so instead of printing nothing.
    for args in [
        &["runners", "list", "--env", "nope"][..],
        &["audit", "--env", "nope"][..],
    ] {
        let out = rs(args);
        cli_refused(&out, "environment \"nope\" does not exist");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    ok(rs(&["runners", "list", "--env", "staging"]));
    ok(rs(&["audit", "--env", "staging"]));
    // A deleted environment keeps its audit history.
    ok(rs(&["env", "delete", "staging"]));
    let history = json(&ok(rs(&["audit", "--env", "staging", "--output", "json"])));
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "environment.delete"),
        "{history}"
    );
}

#[test]
fn scopes_must_name_existing_environments_and_end_with_a_deleted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &admin, args);
    let key_count = || {
        json(&ok(rs(&["keys", "list", "--output", "json"])))["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    let keys_before = key_count();
    let out = rs(&["keys", "create", "--scope", "read:main,write:stagng"]);
    cli_refused(&out, "stagng");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert_eq!(key_count(), keys_before, "a key was created");
    let bad = rs(&["keys", "create", "--scope", "read:main,bogus"]);
    cli_refused(&bad, "bogus");

    // Repeated and comma-separated scopes mix.
    ok(rs(&["env", "create", "tmp"]));
    let k = ok(rs(&[
        "keys",
        "create",
        "--scope",
        "read:tmp,write:tmp",
        "--scope",
        "read:main",
    ]))
    .trim()
    .to_string();
    let id = k.split_once(':').unwrap().0.to_string();
    let scopes_of = |id: &str| {
        json(&ok(rs(&["keys", "list", "--output", "json"])))["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap()["scopes"]
            .clone()
    };
    assert_eq!(
        scopes_of(&id),
        serde_json::json!(["write:tmp", "read:main", "read:tmp"])
    );
    ok(runseal(
        &d.addr,
        &k,
        &["secrets", "set", "X=1", "--env", "tmp"],
    ));
    let token = ok(rs(&[
        "runner-token",
        "issue",
        "--env",
        "tmp",
        "--uses",
        "5",
    ]));
    ok(rs(&["env", "delete", "tmp", "--force"]));
    assert_eq!(scopes_of(&id), serde_json::json!(["read:main"]));
    // A new environment of the same name inherits nothing; the key still works (its row's
    // MAC is valid) for what it keeps.
    ok(rs(&["env", "create", "tmp"]));
    cli_refused(
        &runseal(&d.addr, &k, &["secrets", "set", "X=1", "--env", "tmp"]),
        "lacks the scope write:tmp",
    );
    ok(runseal(&d.addr, &k, &["secrets", "list"]));
    // Nor does a runner token of the deleted one.
    ok(rs(&["secrets", "set", "X=2", "--env", "tmp"]));
    let out = common::agent(&d.addr, token.trim(), &["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    let who = json(&ok(runseal(&d.addr, &k, &["whoami", "--output", "json"])));
    assert_eq!(who["scopes"], serde_json::json!(["read:main"]));
    drop(d);
    let verify = common::runseald_verify(&dir.path().join("data"), None);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

/// Every subcommand and every argument a user can see, with the path that names it.
fn blanks(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
            out.push(format!("{path} {}", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        let name = format!("{path} {}", sub.get_name());
        if sub.get_name() != "help" && !sub.is_hide_set() && sub.get_about().is_none() {
            out.push(name.clone());
        }
        blanks(sub, &name, out);
    }
}

#[test]
fn every_command_and_option_has_help() {
    use clap::CommandFactory;
    let mut missing = Vec::new();
    for (name, cmd) in [
        ("runseal", runseal::cli::Cli::command()),
        ("runseald", runseal::daemon::Cli::command()),
        ("runseal-agent", runseal::agent::Args::command()),
        (
            "runseal-agent build",
            runseal::agent::build_step::BuildArgs::command(),
        ),
    ] {
        let mut cmd = cmd;
        cmd.build();
        blanks(&cmd, name, &mut missing);
    }
    assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    // The check can fail: a command with a bare argument is found.
    let bare = clap::Command::new("x").arg(clap::Arg::new("thing").long("thing"));
    let mut found = Vec::new();
    blanks(&bare, "x", &mut found);
    assert_eq!(found, ["x thing"]);
}

#[test]
fn usage_mistakes_get_one_line_a_hint_and_exit_2() {
    let rs = |args: &[&str]| runseal("http://127.0.0.1:9", "rk_x:y", args);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--env", "staging", "secrets", "list"],
            "--env goes after the command: `runseal secrets list --env staging`",
        ),
        (&["secrets", "get", "HF_TOKEN"], "values are write-only"),
        (&["secrets", "expose", "X"], "runseal secrets expose --help"),
        (
            &["run", "sh"],
            "the command goes after `--`: `runseal run [--env ENV] -- sh",
        ),
    ];
    for (args, hint) in cases {
        let out = rs(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: one line and a hint: {err}");
        assert!(lines[0].starts_with("runseal: "), "{err}");
        assert!(
            lines[1].starts_with("hint: ") && lines[1].contains(hint),
            "{args:?}: {err}"
        );
    }
    let err = stderr(&rs(&["secrets", "get", "HF_TOKEN"]));
    assert!(err.contains("runseal run"), "{err}");

    // The agent: its app goes after `--` (the agent's usage status is 64).
    let out = Command::new(common::AGENT)
        .args(["env"])
        .env_clear()
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.contains("hint: the app goes after `--`: runseal-agent [OPTIONS] -- env"),
        "{err}"
    );
}

#[test]
fn run_execs_the_command_with_the_environments_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &admin, args);
    ok(rs(&["env", "create", "dev"]));
    ok(rs(&[
        "secrets",
        "set",
        "API_TOKEN=tok-run-1",
        "--env",
        "dev",
    ]));
    ok(rs(&["secrets", "set", "ONLY_MAIN=main-value"]));
    let snap = key(&d, "snapshot:dev");

    // The value arrives; the CLI's key does not; the platform variables are set.
    let out = run_sh(
        &d,
        &snap,
        "dev",
        r#"test "$API_TOKEN" = tok-run-1 && test -z "${RUNSEAL_KEY+set}" && test -z "${ONLY_MAIN+set}" && test "$RUNSEAL_ENVIRONMENT" = dev"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for o in [&out.stdout, &out.stderr] {
        assert!(!common::contains(o, b"tok-run-1"));
    }
    // The child's exit status is the command's.
    let out = run_sh(&d, &snap, "dev", "exit 7");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Without snapshot:ENV it says which scope it needs (admin does not imply it).
    let out = run_sh(&d, &admin, "dev", "true");
    cli_refused(&out, "snapshot:dev");
    assert!(stderr(&out).contains("runseal keys create --scope snapshot:dev"));
    // A command that does not exist: the shell's 127, and no value fetched for it.
    let out = runseal(
        &d.addr,
        &snap,
        &["run", "--env", "dev", "--", "no-such-command-xyz"],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-command-xyz: command not found"));
}

/// The store itself refuses a key whose scope names a missing environment (what closes the race
/// between the service's check and a deletion that rewrites the scopes naming it).
#[tokio::test]
async fn the_store_refuses_a_key_row_scoped_to_a_missing_environment() {
    use runseal::store::{AuditRecord, KeyRow, StoreError};
    let server = common::TestServer::start().await;
    let now = time::OffsetDateTime::now_utc();
    let row = |id: &str, scopes: &str| KeyRow {
        id: id.into(),
        secret_hash: vec![0; 32],
        label: String::new(),
        scopes: scopes.into(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    let audit = || AuditRecord::new(now, "test", "key.create", None, vec![]);
    let err = server
        .store
        .insert_key(row("rk_gone", "read:main,write:gone"), audit())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::EnvironmentNotFound(e) if e == "gone"),
        "{err}"
    );
    assert!(server.store.key("rk_gone").await.unwrap().is_none());
    server
        .store
        .insert_key(row("rk_main", "read:main"), audit())
        .await
        .unwrap();
    server.stop().await;
}

/// On each backend: a deleted environment takes the scopes that name it (the key rows keep a
/// valid MAC and their other scopes), a key cannot be made for a missing environment, and an
/// unset of several names is one change or none.
async fn scopes_end_with_their_environment_and_unsets_are_atomic(b: common::Backend) {
    use runseal::names::{Limits, NamePolicy};
    use tonic::Code;
    let s = common::TestServer::start_on(b, Limits::default(), NamePolicy::default()).await;
    let admin = s.admin_client().await;
    admin.environments().create("tmp").await.unwrap();
    let mixed = s.key_with(&["read:tmp", "write:tmp", "read:main"]).await;
    let only_tmp = s.key_with(&["write:tmp"]).await;
    let scopes = |k: &runseal::auth::Credential| {
        let k = k.clone();
        let store = s.store.clone();
        async move { store.key(k.key_id()).await.unwrap().unwrap().scopes }
    };
    admin.environments().delete("tmp", false).await.unwrap();
    assert_eq!(scopes(&mixed).await, "read:main");
    assert_eq!(scopes(&only_tmp).await, "");
    admin.environments().create("tmp").await.unwrap();
    let c = s.client(&mixed).await;
    c.secrets().list("main").await.unwrap();
    common::refused(
        c.secrets().list("tmp").await,
        Code::PermissionDenied,
        &["read:tmp"],
        &[],
        "a scope of the deleted environment",
    );
    let c = s.client(&only_tmp).await;
    assert_eq!(
        c.keys().who_am_i().await.unwrap().scopes,
        Vec::<String>::new()
    );
    common::refused(
        admin
            .keys()
            .create(&["read:main".into(), "read:nope".into()], "x")
            .await,
        Code::InvalidArgument,
        &["read:nope", "does not exist"],
        &[],
        "a key for a missing environment",
    );

    let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let pairs = ["A", "B", "C"]
        .map(|n| (n.to_string(), common::v(n)))
        .to_vec();
    let rev = admin.secrets().set_many("tmp", pairs).await.unwrap();
    common::refused(
        admin
            .secrets()
            .unset_many("tmp", &names(&["A", "NOPE"]))
            .await,
        Code::NotFound,
        &["NOPE"],
        &[],
        "an unset naming a secret that is not set",
    );
    assert_eq!(admin.secrets().list("tmp").await.unwrap().len(), 3);
    let after = admin
        .secrets()
        .unset_many("tmp", &names(&["A", "B", "C"]))
        .await
        .unwrap();
    assert_eq!(after, rev + 1);
    assert!(admin.secrets().list("tmp").await.unwrap().is_empty());
    s.stop().await;
}

mod sqlite {
    #[tokio::test]
    async fn scopes_end_with_their_environment_and_unsets_are_atomic() {
        super::scopes_end_with_their_environment_and_unsets_are_atomic(
            super::common::Backend::Sqlite,
        )
        .await
    }
}

#[cfg(runseal_pg_tests)]
mod postgres {
    #[tokio::test]
    async fn scopes_end_with_their_environment_and_unsets_are_atomic() {
        super::scopes_end_with_their_environment_and_unsets_are_atomic(
            super::common::Backend::Postgres,
        )
        .await
    }
}

/// runseald's errors say each cause once (an error printing its source, which is also its
/// `source()`, used to repeat it).
#[test]
fn runseald_errors_say_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("short.key");
    std::fs::write(&key, "garbage\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let data = dir.path().join("d");
    let cases: [(&[&str], &str); 3] = [
        (
            &["serve", "--config", "/nonexistent/runseald.toml"],
            "No such file or directory",
        ),
        (
            &[
                "serve",
                "--data-dir",
                "/proc/nonexistent/data",
                "--listen",
                "127.0.0.1:0",
                "--web-listen",
                "off",
            ],
            "does not exist",
        ),
        (
            &[
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--master-key-file",
                key.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--web-listen",
                "off",
            ],
            "exactly 32 bytes",
        ),
    ];
    for (args, cause) in cases {
        let out = std::process::Command::new(common::RUNSEALD)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        // The error is one line (a log line may come before it).
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("runseald: "))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: not one error line: {err}");
        let err = errors[0];
        assert_eq!(
            err.matches(cause).count(),
            1,
            "{args:?}: the cause is not said exactly once: {err}"
        );
    }
}
