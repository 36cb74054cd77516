//! The seed's CLI flow, through the real binaries exactly as a user runs them.

use crate::common;

use common::{ok, runseal, stderr, Daemon};
use serde_json::Value;

fn names_in(json: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(json).expect("list --output json is JSON");
    v["secrets"]
        .as_array()
        .expect("a secrets array")
        .iter()
        .map(|s| {
            for field in ["created_at", "updated_at"] {
                let t = s[field].as_str().expect("RFC 3339 time");
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| panic!("{field} is not RFC 3339: {t}"));
            }
            (
                s["name"].as_str().unwrap().to_string(),
                s["environment"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn seed_flow_set_list_unset_across_environments() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &key, args);

    // Two secrets in one command, into main (the default).
    let out = ok(rs(&[
        "secrets",
        "set",
        "HF_TOKEN=hf_main_value",
        "DB_URL=postgres://x",
    ]));
    assert!(out.contains("HF_TOKEN") && out.contains("DB_URL"), "{out}");

    // A different value of one of them in staging.
    let refused = rs(&[
        "secrets",
        "set",
        "HF_TOKEN=hf_staging_value",
        "--env",
        "staging",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("runseal env create staging"),
        "setting into a missing environment says how to create it: {}",
        stderr(&refused)
    );
    ok(rs(&["env", "create", "staging"]));
    ok(rs(&[
        "secrets",
        "set",
        "HF_TOKEN=hf_staging_value",
        "--env",
        "staging",
    ]));

    // Pretty listings: a table with the four columns, one row per secret.
    let main = ok(rs(&["secrets", "list"]));
    let mut lines = main.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["Name", "Env", "Exposed", "Created At", "Updated At"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{main}");
    assert_eq!(rows[0][..2], ["DB_URL", "main"]);
    assert_eq!(rows[1][..2], ["HF_TOKEN", "main"]);
    let staging = ok(rs(&["secrets", "list", "--env", "staging"]));
    assert_eq!(staging.lines().count(), 2, "{staging}");
    assert!(staging
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("HF_TOKEN  staging"));

    // JSON listings.
    let json = ok(rs(&["secrets", "list", "--output", "json"]));
    assert_eq!(
        names_in(&json),
        [
            ("DB_URL".into(), "main".into()),
            ("HF_TOKEN".into(), "main".into())
        ]
    );
    let json = ok(rs(&[
        "secrets", "list", "--env", "staging", "--output", "json",
    ]));
    assert_eq!(names_in(&json), [("HF_TOKEN".into(), "staging".into())]);

    // Unset, then list again: gone from main, untouched in staging.
    ok(rs(&["secrets", "unset", "HF_TOKEN"]));
    let json = ok(rs(&["secrets", "list", "--output", "json"]));
    assert_eq!(names_in(&json), [("DB_URL".into(), "main".into())]);
    let json = ok(rs(&[
        "secrets", "list", "--env", "staging", "--output", "json",
    ]));
    assert_eq!(names_in(&json), [("HF_TOKEN".into(), "staging".into())]);

    // Unsetting it again is an error that names it.
    let again = rs(&["secrets", "unset", "HF_TOKEN"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).starts_with("runseal: not found:"),
        "{}",
        stderr(&again)
    );
    assert!(stderr(&again).contains("HF_TOKEN"));
}

#[test]
fn no_fallback_between_environments() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &key, args);
    ok(rs(&["env", "create", "staging"]));
    ok(rs(&["secrets", "set", "ONLY_MAIN=v"]));
    let json = ok(rs(&[
        "secrets", "list", "--env", "staging", "--output", "json",
    ]));
    assert!(
        names_in(&json).is_empty(),
        "staging must not see main's secret: {json}"
    );
    // Nor can it be unset through staging.
    let unset = rs(&["secrets", "unset", "ONLY_MAIN", "--env", "staging"]);
    assert_eq!(unset.status.code(), Some(1));
    assert!(stderr(&unset).contains("not set in environment \"staging\""));
}

#[test]
fn serve_on_empty_dir_then_restart_keeps_everything_and_wrong_master_key_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[], &[]);
    let key = d.admin_key();
    assert!(
        d.log().contains("admin.key"),
        "the log names the admin key path"
    );
    ok(runseal(&d.addr, &key, &["secrets", "set", "A=1", "B=2"]));
    let before = ok(runseal(
        &d.addr,
        &key,
        &["secrets", "list", "--output", "json"],
    ));
    let (clean, log) = d.terminate();
    assert!(clean, "SIGTERM is a clean exit: {log}");

    let d = Daemon::start(&data, &[], &[]);
    assert_eq!(d.admin_key(), key, "a restart creates no new admin key");
    let after = ok(runseal(
        &d.addr,
        &key,
        &["secrets", "list", "--output", "json"],
    ));
    assert_eq!(names_in(&before), names_in(&after));
    drop(d);

    // Another 32-byte key in place of the right one: refuse to start, say why.
    std::fs::write(data.join("master.key"), [7u8; 32]).unwrap();
    let log = Daemon::try_start(&data, &[], &[])
        .err()
        .expect("must refuse to start");
    assert!(
        log.contains("master key") && log.contains("does not match"),
        "{log}"
    );
    // No key at all.
    std::fs::remove_file(data.join("master.key")).unwrap();
    let log = Daemon::try_start(&data, &[], &[])
        .err()
        .expect("must refuse to start");
    assert!(
        log.contains("master key file") && log.contains("missing"),
        "{log}"
    );
}

#[test]
fn cli_errors_are_one_line_with_the_right_exit_code() {
    // Unreachable server: names the address, exit 1.
    let out = runseal("http://127.0.0.1:9", "rk_x:y", &["secrets", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("runseal: cannot reach runseald at http://127.0.0.1:9"),
        "{err}"
    );

    // Usage errors exit 2.
    let out = runseal("http://127.0.0.1:9", "rk_x:y", &["secrets", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));

    // A malformed key is refused before connecting, without echoing it.
    let out = runseal(
        "http://127.0.0.1:9",
        "not-a-key-secretish",
        &["secrets", "list"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("KEY_ID:KEY_SECRET"));
    assert!(!stderr(&out).contains("secretish"));

    // Completions are generated for the shells users have.
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(runseal("http://127.0.0.1:9", "", &["completions", shell]));
        assert!(out.contains("secrets"), "{shell}");
    }
}

#[test]
fn init_prints_the_admin_key_once_and_refuses_an_initialised_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prod");
    let out = std::process::Command::new(common::RUNSEALD)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let key = printed.trim();
    assert!(
        runseal::auth::Credential::parse(key).is_ok(),
        "stdout is the key line"
    );
    assert!(
        !data.join("admin.key").exists(),
        "init prints the key instead of writing it"
    );

    let again = std::process::Command::new(common::RUNSEALD)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already initialised"),
        "{}",
        stderr(&again)
    );

    // The printed key works against a server on that dir.
    let d = Daemon::start(&data, &[], &[]);
    ok(runseal(&d.addr, key, &["secrets", "list"]));
}

#[test]
fn values_from_stdin_stay_out_of_argv() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let out = common::runseal_stdin(
        &d.addr,
        &key,
        &["secrets", "set", "FROM_STDIN=-", "OTHER=x"],
        Some(b"piped\n"),
    );
    ok(out);
    let twice = common::runseal_stdin(&d.addr, &key, &["secrets", "set", "A=-", "B=-"], Some(b"v"));
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("only one value can be read from stdin"));
    let json = ok(runseal(
        &d.addr,
        &key,
        &["secrets", "list", "--output", "json"],
    ));
    assert_eq!(
        names_in(&json),
        [
            ("FROM_STDIN".into(), "main".into()),
            ("OTHER".into(), "main".into())
        ]
    );
}

/// `runner-token list` shows ids and metadata, never secrets; `revoke --env ENV --all` ends
/// every active token of the environment; `keys revoke` says how many tokens went with the key;
/// `audit --output json` carries the revision of each change and every runner start.
#[test]
fn runner_tokens_are_listed_and_revoked_from_the_cli_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &key, args);
    ok(rs(&["env", "create", "staging"]));
    ok(rs(&[
        "secrets",
        "set",
        "K=cli-audit-value",
        "--env",
        "staging",
    ]));
    let issuer = ok(rs(&["keys", "create", "--scope", "issue:staging"]));
    let issuer = issuer.trim();
    let minted = ok(runseal(
        &d.addr,
        issuer,
        &[
            "runner-token",
            "issue",
            "--env",
            "staging",
            "--count",
            "3",
            "--uses",
            "2",
        ],
    ));
    let tokens: Vec<&str> = minted.lines().collect();
    assert_eq!(tokens.len(), 3);

    let listed = ok(rs(&[
        "runner-token",
        "list",
        "--env",
        "staging",
        "--output",
        "json",
    ]));
    for t in &tokens {
        let (id, secret) = t.split_once(':').unwrap();
        assert!(listed.contains(id), "token {id} is listed");
        assert!(
            !listed.contains(secret),
            "a token secret appears in the listing"
        );
    }
    let v: Value = serde_json::from_str(&listed).unwrap();
    let first = &v["tokens"][0];
    assert_eq!(first["environment"], "staging");
    assert_eq!(first["uses_left"], 2);
    assert_eq!(first["minted_by"], issuer.split_once(':').unwrap().0);
    assert!(first["expires_at"].as_str().is_some());
    let pretty = ok(rs(&["runner-token", "list"]));
    assert!(pretty.contains("Minted By") && pretty.contains(tokens[0].split_once(':').unwrap().0));

    // A snapshot with one token, then every token of staging revoked at once.
    let agent = std::process::Command::new(env!("CARGO_BIN_EXE_runseal-agent"))
        .args(["--", "/bin/true"])
        .env_clear()
        .env("RUNSEAL_ADDR", &d.addr)
        .env("RUNSEAL_TOKEN", tokens[0])
        .env("RUNSEAL_RUNNER_ID", "r-cli-audit")
        .output()
        .unwrap();
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let out = ok(rs(&["runner-token", "revoke", "--env", "staging", "--all"]));
    assert!(out.contains("revoked 3"), "{out}");
    let listed = ok(rs(&[
        "runner-token",
        "list",
        "--env",
        "staging",
        "--output",
        "json",
    ]));
    let v: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 0, "{listed}");
    let usage = rs(&["runner-token", "revoke", "--all"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--all needs --env: {}",
        stderr(&usage)
    );

    // Revoking a key reports its tokens.
    let again = ok(runseal(
        &d.addr,
        issuer,
        &["runner-token", "issue", "--env", "staging", "--count", "2"],
    ));
    assert_eq!(again.lines().count(), 2);
    let out = ok(rs(&["keys", "revoke", issuer.split_once(':').unwrap().0]));
    assert!(out.contains("2 active runner token(s)"), "{out}");

    let audit = ok(rs(&["audit", "--env", "staging", "--output", "json"]));
    assert!(!audit.contains("cli-audit-value"));
    let v: Value = serde_json::from_str(&audit).unwrap();
    let set = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "secrets.set")
        .expect("the set is audited");
    assert_eq!(set["revision"], 1);
    let started = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "snapshot")
        .expect("the runner start is audited");
    assert_eq!(started["runner_id"], "r-cli-audit");
    assert_eq!(started["revision"], 1);
    assert_eq!(started["value_count"], 1);
    assert_eq!(started["key_id"], tokens[0].split_once(':').unwrap().0);
}

/// `runseal secrets import`: a dotenv file (or stdin) as one atomic batch, `$` literal, errors
/// with FILE:LINE and the rule but never the file's text, nothing stored on any refusal.
#[test]
fn secrets_import_sets_a_dotenv_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let rs = |args: &[&str]| runseal(&d.addr, &key, args);
    let file = dir.path().join("app.env");
    std::fs::write(
        &file,
        "\u{feff}# app settings\r\nexport API_KEY=import-value-0001\r\nPASSWORD='pa$word'\r\n\
         HOME_REF=${HOME}\r\nPEM=\"-----BEGIN-----\nimport-line-0002\n-----END-----\"\r\n",
    )
    .unwrap();
    let out = ok(rs(&["secrets", "import", file.to_str().unwrap()]));
    assert!(
        out.contains("set API_KEY, PASSWORD, HOME_REF, PEM in main"),
        "{out}"
    );
    let token = ok(rs(&["runner-token", "issue"]));
    let printed = common::agent(
        &d.addr,
        token.trim(),
        &[
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s|%s' \"$API_KEY\" \"$PASSWORD\" \"$HOME_REF\" \"$PEM\"",
        ],
    )
    .output()
    .unwrap();
    assert!(printed.status.success());
    assert!(
        printed.stdout
            == b"import-value-0001|pa$word|${HOME}|-----BEGIN-----\nimport-line-0002\n-----END-----",
        "the runner's values differ from the file's"
    );

    // From stdin, into another environment.
    ok(rs(&["env", "create", "staging"]));
    let out = common::runseal_stdin(
        &d.addr,
        &key,
        &["secrets", "import", "-", "--env", "staging"],
        Some(b"FROM_STDIN=stdin-value-0003\n"),
    );
    assert!(ok(out).contains("set FROM_STDIN in staging"));

    // A broken line, a denied name, a name twice: refused, nothing stored, no text shown.
    let before = ok(rs(&["secrets", "list", "--env", "staging"]));
    for (text, says) in [
        (
            "GOOD=refused-value-0004\nthis is not a pair refused-0005\n",
            ":2: expected NAME=VALUE",
        ),
        (
            "GOOD=refused-value-0004\nLD_PRELOAD=refused-0005\n",
            "LD_PRELOAD",
        ),
        (
            "GOOD=refused-value-0004\nGOOD=refused-0005\n",
            ":2: GOOD is set twice (first on line 1)",
        ),
        ("GOOD=\"refused-value-0004\n", ":1:"),
    ] {
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, text).unwrap();
        let out = rs(&[
            "secrets",
            "import",
            bad.to_str().unwrap(),
            "--env",
            "staging",
        ]);
        common::cli_refused(&out, says);
        let shown = format!("{}{}", stderr(&out), common::stdout(&out));
        assert!(
            !shown.contains("refused-value-0004") && !shown.contains("refused-0005"),
            "a refusal showed text of the file"
        );
    }
    assert_eq!(ok(rs(&["secrets", "list", "--env", "staging"])), before);
    let out = rs(&[
        "secrets",
        "import",
        dir.path().join("missing.env").to_str().unwrap(),
    ]);
    common::cli_refused(&out, "cannot read");
}
