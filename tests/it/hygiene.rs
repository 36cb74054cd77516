//! Secret hygiene, through the real binaries as a user runs them:
//!
//! - "Values never shown": not in listings (pretty/json), audit output, server logs at `trace`
//!   level, error messages; plaintext absent from every file of the data dir after sets and
//!   unsets (running, after SIGTERM, after SIGKILL).
//! - Key files: `serve` on an empty dir writes master.key and admin.key privately and logs the
//!   admin key's path, never the key.
//! - `rotate-master-key`: a new key that opens everything; the old one is refused.
//! - "Ciphertext swapped between two rows fails to open and is reported, not served."
//!
//! Assertion messages never print a value: they say where it leaked.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    all_files, cli_refused, mode, ok, runseal, runseal_stdin, stderr, stdout, Daemon, RUNSEALD,
};
use serde_json::Value;

/// A secret value and every rendering of it a leak could take: the bytes, lowercase hex, and
/// the `{:?}` of a byte slice (what a derived `Debug` of a request prints).
struct Secret {
    label: &'static str,
    /// What is searched for: the value itself, or for a huge value a unique marker inside it.
    needle: Vec<u8>,
}

impl Secret {
    fn new(label: &'static str, needle: impl Into<Vec<u8>>) -> Self {
        Self {
            label,
            needle: needle.into(),
        }
    }

    fn forms(&self) -> [Vec<u8>; 3] {
        [
            self.needle.clone(),
            hex::encode(&self.needle).into_bytes(),
            format!("{:?}", self.needle.as_slice()).into_bytes(),
        ]
    }
}

/// Bytes as a string of the same length, one char per byte (Latin-1), so that byte search
/// can use the standard library's fast substring search (the logs run to megabytes).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Asserts that no form of any value occurs in `hay`.
#[track_caller]
fn assert_no_value(place: &str, hay: &[u8], secrets: &[Secret]) {
    let hay = latin1(hay);
    for s in secrets {
        for form in s.forms() {
            assert!(
                !hay.contains(&latin1(&form)),
                "the value {} leaked into {place}",
                s.label
            );
        }
    }
}

/// Asserts that no file of the data dir holds a value; returns the file names seen.
#[track_caller]
fn assert_data_dir_clean(data: &Path, when: &str, secrets: &[Secret]) -> Vec<String> {
    let files = all_files(data);
    assert!(!files.is_empty(), "the data dir is empty {when}");
    for (path, bytes) in &files {
        assert_no_value(&format!("{} ({when})", path.display()), bytes, secrets);
    }
    files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn secret_part(key_line: &str) -> String {
    key_line
        .trim()
        .split_once(':')
        .expect("KEY_ID:KEY_SECRET")
        .1
        .to_string()
}

/// Runs a `runseald` subcommand on a data dir (not `serve`).
fn runseald(args: &[&str], data: &Path) -> Output {
    Command::new(RUNSEALD)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("RUNSEAL_LOG")
        .env_remove("RUNSEALD_DATA_DIR")
        .output()
        .expect("run runseald")
}

/// Every command's output, labelled, for the leak scan.
#[derive(Default)]
struct Transcript(Vec<(String, Output)>);

impl Transcript {
    fn record(&mut self, label: &str, out: Output) -> Output {
        self.0.push((label.to_string(), out.clone()));
        out
    }

    #[track_caller]
    fn assert_clean(&self, secrets: &[Secret]) {
        for (label, out) in &self.0 {
            assert_no_value(&format!("the stdout of `{label}`"), &out.stdout, secrets);
            assert_no_value(&format!("the stderr of `{label}`"), &out.stderr, secrets);
        }
    }
}

fn names_listed(json: &str, key: &str, field: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json).expect("JSON output");
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("a {key} array: {json}"))
        .iter()
        .map(|s| s[field].as_str().unwrap().to_string())
        .collect()
}

/// `runseald serve --log-format json` with `RUNSEAL_LOG=trace` (`Daemon::start` reads the
/// address from the `addr` field of the JSON line "listening").
fn start_with_json_trace_log(data: &Path) -> Daemon {
    Daemon::start(data, &["--log-format", "json"], &[("RUNSEAL_LOG", "trace")])
}

fn values_never_shown(log_format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = || match log_format {
        "json" => start_with_json_trace_log(&data),
        _ => Daemon::start(
            &data,
            &["--log-format", log_format],
            &[("RUNSEAL_LOG", "trace")],
        ),
    };
    let d = start();
    let key = d.admin_key();
    let mut t = Transcript::default();
    let mut rs = |label: &str, args: &[&str], input: Option<&[u8]>| {
        t.record(label, runseal_stdin(&d.addr, &key, args, input))
    };

    let db1 = "hyg-db-password-7f3c91e2a4";
    let hf_main = "hyg-hf-main-0b77e3f2c5d1";
    let api_stdin = "hyg-api-from-stdin-9d4a61c8";
    let hf_staging = "hyg-hf-staging-4e2a7c90b3";
    let temp = "hyg-temp-unset-5a8d03f1e6";
    let db2 = "hyg-db-updated-c61f94b2d8";
    let binary_marker = "hyg-binary-2f9e7d41ab";
    let missing_env = "hyg-into-missing-env-81d2";
    let beside_bad = "hyg-beside-bad-name-33fa";
    let bad_named = "hyg-bad-named-value-6c0e";
    let big_marker = "hyg-too-large-marker-a9b4c7";
    let nul_marker = "hyg-with-nul-byte-17e5";
    let denied = "hyg-denied-name-ld-88b1";
    let reserved = "hyg-reserved-name-0d6a";
    let dup1 = "hyg-duplicate-one-4b2e";
    let dup2 = "hyg-duplicate-two-9c7f";
    let no_scope = "hyg-read-only-key-e3d9";
    let bad_key = "hyg-wrong-key-f40a2c";

    // Sets that succeed: two at once, one from stdin, one in staging, one later unset, an
    // update, and a non-UTF-8 value from stdin.
    ok(rs(
        "secrets set (two)",
        &[
            "secrets",
            "set",
            &format!("DB_PASSWORD={db1}"),
            &format!("HF_TOKEN={hf_main}"),
        ],
        None,
    ));
    ok(rs(
        "secrets set API_KEY=-",
        &["secrets", "set", "API_KEY=-"],
        Some(format!("{api_stdin}\n").as_bytes()),
    ));
    ok(rs("env create", &["env", "create", "staging"], None));
    ok(rs(
        "secrets set --env staging",
        &[
            "secrets",
            "set",
            &format!("HF_TOKEN={hf_staging}"),
            "--env",
            "staging",
        ],
        None,
    ));
    ok(rs(
        "secrets set TEMP_TOKEN",
        &["secrets", "set", &format!("TEMP_TOKEN={temp}")],
        None,
    ));
    ok(rs(
        "secrets unset TEMP_TOKEN",
        &["secrets", "unset", "TEMP_TOKEN"],
        None,
    ));
    ok(rs(
        "secrets set (update)",
        &["secrets", "set", &format!("DB_PASSWORD={db2}")],
        None,
    ));
    let mut binary = vec![0xff, 0xfe, 0x80];
    binary.extend_from_slice(binary_marker.as_bytes());
    binary.push(0xc3);
    ok(rs(
        "secrets set BINARY=-",
        &["secrets", "set", "BINARY=-"],
        Some(&binary),
    ));

    // Error paths that carry values.
    cli_refused(
        &rs(
            "set into a missing env",
            &[
                "secrets",
                "set",
                &format!("X={missing_env}"),
                "--env",
                "nope",
            ],
            None,
        ),
        "nope",
    );
    cli_refused(
        &rs(
            "set with an invalid name",
            &[
                "secrets",
                "set",
                &format!("GOOD={beside_bad}"),
                &format!("1BAD={bad_named}"),
            ],
            None,
        ),
        "1BAD",
    );
    let mut big = vec![b'.'; 40 * 1024];
    big.extend_from_slice(big_marker.as_bytes());
    big.extend(vec![b'.'; 40 * 1024]);
    cli_refused(
        &rs(
            "set a value over 64 KiB",
            &["secrets", "set", "BIG=-"],
            Some(&big),
        ),
        "65536",
    );
    // The same through argv, where a usage error could echo it.
    let big_arg = format!("BIG={}", String::from_utf8(big.clone()).unwrap());
    cli_refused(
        &rs(
            "set a value over 64 KiB (argv)",
            &["secrets", "set", &big_arg],
            None,
        ),
        "65536",
    );
    cli_refused(
        &rs(
            "set a value with NUL",
            &["secrets", "set", "NUL_VALUE=-"],
            Some(format!("{nul_marker}\0tail").as_bytes()),
        ),
        "NUL",
    );
    cli_refused(
        &rs(
            "set a denied name",
            &["secrets", "set", &format!("LD_PRELOAD={denied}")],
            None,
        ),
        "LD_PRELOAD",
    );
    cli_refused(
        &rs(
            "set a reserved name",
            &["secrets", "set", &format!("RUNSEAL_X={reserved}")],
            None,
        ),
        "RUNSEAL_X",
    );
    cli_refused(
        &rs(
            "set a name twice",
            &[
                "secrets",
                "set",
                &format!("DUP={dup1}"),
                &format!("DUP={dup2}"),
            ],
            None,
        ),
        "DUP",
    );
    let reader = ok(rs(
        "keys create",
        &[
            "keys",
            "create",
            "--scope",
            "read:main",
            "--label",
            "reader",
        ],
        None,
    ));
    let reader = reader.trim().to_string();
    let out = t.record(
        "set with a read-only key",
        runseal(
            &d.addr,
            &reader,
            &["secrets", "set", &format!("RO={no_scope}")],
        ),
    );
    cli_refused(&out, "write:main");
    let out = t.record(
        "set with a wrong key",
        runseal(
            &d.addr,
            "rk_0000000000000000:00000000000000000000000000000000",
            &["secrets", "set", &format!("WRONG={bad_key}")],
        ),
    );
    cli_refused(&out, "key refused");

    // What a user reads back. The listings hold what was set (so an empty output cannot pass
    // for a clean one), and nothing of the refused batches.
    let mut rs = |label: &str, args: &[&str]| ok(t.record(label, runseal(&d.addr, &key, args)));
    let main = rs(
        "secrets list --output json",
        &["secrets", "list", "--output", "json"],
    );
    assert_eq!(
        names_listed(&main, "secrets", "name"),
        ["API_KEY", "BINARY", "DB_PASSWORD", "HF_TOKEN"],
        "{main}"
    );
    let pretty = rs("secrets list", &["secrets", "list"]);
    assert!(
        pretty.contains("DB_PASSWORD") && pretty.contains("BINARY"),
        "{pretty}"
    );
    let staging = rs(
        "secrets list --env staging --output json",
        &["secrets", "list", "--env", "staging", "--output", "json"],
    );
    assert_eq!(names_listed(&staging, "secrets", "name"), ["HF_TOKEN"]);
    rs(
        "secrets list --env staging",
        &["secrets", "list", "--env", "staging"],
    );
    let audit = rs("audit --output json", &["audit", "--output", "json"]);
    let actions = names_listed(&audit, "entries", "action");
    assert!(
        actions.iter().any(|a| a == "secrets.unset") && actions.iter().any(|a| a == "secrets.set"),
        "{audit}"
    );
    assert!(audit.contains("TEMP_TOKEN"), "{audit}");
    let audit_pretty = rs("audit", &["audit"]);
    assert!(audit_pretty.contains("DB_PASSWORD"), "{audit_pretty}");
    rs("audit --env staging", &["audit", "--env", "staging"]);
    let keys = rs("keys list", &["keys", "list"]);
    assert!(keys.contains("reader"), "{keys}");
    rs(
        "keys list --output json",
        &["keys", "list", "--output", "json"],
    );
    rs("env list", &["env", "list"]);
    rs(
        "env list --output json",
        &["env", "list", "--output", "json"],
    );

    let secrets = vec![
        Secret::new("set in a batch of two", db1),
        Secret::new("set beside it", hf_main),
        Secret::new("read from stdin", api_stdin),
        Secret::new("set in staging", hf_staging),
        Secret::new("set then unset", temp),
        Secret::new("of an update", db2),
        Secret::new("with non-UTF-8 bytes", binary.clone()),
        Secret::new("inside the non-UTF-8 value", binary_marker),
        Secret::new("sent to a missing environment", missing_env),
        Secret::new("sent beside an invalid name", beside_bad),
        Secret::new("of an invalid name", bad_named),
        Secret::new("over 64 KiB", big_marker),
        Secret::new("with a NUL byte", nul_marker),
        Secret::new("of a denied name", denied),
        Secret::new("of a reserved name", reserved),
        Secret::new("of a duplicate name (first)", dup1),
        Secret::new("of a duplicate name (second)", dup2),
        Secret::new("sent with a read-only key", no_scope),
        Secret::new("sent with a wrong key", bad_key),
    ];
    t.assert_clean(&secrets);

    // The server's log at trace level (checked to really be at trace level).
    let log = d.log();
    let trace_marker = if log_format == "json" {
        "\"level\":\"TRACE\""
    } else {
        "TRACE"
    };
    assert!(
        log.contains(trace_marker) && log.contains("secrets set"),
        "RUNSEAL_LOG=trace gives a trace log:\n{log}"
    );
    assert_no_value("the server's trace log", log.as_bytes(), &secrets);
    for (what, cred) in [("admin", &key), ("created", &reader)] {
        assert!(
            !log.contains(&secret_part(cred)),
            "the secret of the {what} key leaked into the trace log"
        );
    }

    // Every file of the data dir, while runseald runs (the WAL holds the recent commits).
    let names = assert_data_dir_clean(&data, "while runseald runs", &secrets);
    assert!(
        names.iter().any(|n| n == "runseal.db-wal"),
        "runseal.db-wal is scanned while runseald runs: {names:?}"
    );
    let (clean, log) = d.terminate();
    assert!(clean, "SIGTERM is a clean exit:\n{log}");
    assert_no_value("the server's trace log", log.as_bytes(), &secrets);
    assert_data_dir_clean(&data, "after SIGTERM", &secrets);
    let verify = runseald(&["verify"], &data);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains("5 sealed values checked, 0 failed"),
        "{}",
        stdout(&verify)
    );
    assert_no_value("`runseald verify`", &verify.stdout, &secrets);
    assert_no_value("`runseald verify`", &verify.stderr, &secrets);

    // Again, then SIGKILL: the files as a crash leaves them.
    let d = start();
    let after1 = "hyg-after-restart-set-52c8e1";
    let after2 = "hyg-after-restart-unset-b07d";
    let mut t2 = Transcript::default();
    ok(t2.record(
        "set after restart",
        runseal(
            &d.addr,
            &key,
            &[
                "secrets",
                "set",
                &format!("KEPT={after1}"),
                &format!("DROPPED={after2}"),
            ],
        ),
    ));
    ok(t2.record(
        "unset after restart",
        runseal(&d.addr, &key, &["secrets", "unset", "DROPPED"]),
    ));
    let mut secrets = secrets;
    secrets.push(Secret::new("set after a restart", after1));
    secrets.push(Secret::new("set and unset after a restart", after2));
    t2.assert_clean(&secrets);
    let log = d.log.clone();
    d.kill9();
    let names = assert_data_dir_clean(&data, "after SIGKILL", &secrets);
    assert!(
        names.iter().any(|n| n == "runseal.db-wal") && names.iter().any(|n| n == "runseal.db-shm"),
        "a killed runseald leaves its WAL behind to scan: {names:?}"
    );
    let log = log.lock().unwrap().clone();
    assert_no_value("the server's trace log", log.as_bytes(), &secrets);
    assert!(
        !log.contains(&secret_part(&key)),
        "the secret of the admin key leaked into the trace log"
    );
}

#[test]
fn values_never_shown_with_text_logs() {
    values_never_shown("text");
}

#[test]
fn values_never_shown_with_json_logs() {
    values_never_shown("json");
}

/// A clean stop checkpoints the WAL: `runseal.db` alone then holds every commit, so copying
/// it (with the master key) is a complete backup, and no sealed rows linger in a `-wal` file.
#[test]
fn sigterm_checkpoints_the_wal_into_runseal_db() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[], &[]);
    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "A=wal-one", "B=wal-two"],
    ));
    ok(runseal(&d.addr, &key, &["secrets", "unset", "B"]));
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");

    let wal = data.join("runseal.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        wal_len, 0,
        "after SIGTERM runseal.db-wal still holds {wal_len} bytes: the WAL was not checkpointed"
    );

    // The database file alone, with the master key, is the whole state.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    // A data dir is private: runseald refuses one that group or others may enter.
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::copy(data.join("runseal.db"), copy.join("runseal.db")).unwrap();
    std::fs::copy(data.join("master.key"), copy.join("master.key")).unwrap();
    let out = runseald(&["verify"], &copy);
    assert!(
        out.status.success() && stdout(&out).contains("1 sealed values checked, 0 failed"),
        "a copy of runseal.db taken after SIGTERM lacks the commits:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn first_serve_writes_private_key_files_and_logs_only_the_admin_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[], &[]);

    let master = std::fs::read(data.join("master.key")).expect("master.key is created");
    assert_eq!(master.len(), 32, "master.key holds 32 bytes");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master.key mode");
    assert_eq!(mode(&data.join("admin.key")), 0o600, "admin.key mode");
    assert_eq!(mode(&data), 0o700, "data dir mode");

    let admin = std::fs::read_to_string(data.join("admin.key")).unwrap();
    assert!(admin.ends_with('\n'), "admin.key is one line");
    assert_eq!(admin.lines().count(), 1, "admin.key is one line");
    let line = admin.trim_end();
    let (id, secret) = line.split_once(':').expect("KEY_ID:KEY_SECRET");
    assert!(
        id.starts_with("rk_") && !secret.is_empty() && !secret.contains(':'),
        "admin.key holds KEY_ID:KEY_SECRET"
    );
    // The key in the file is the admin key.
    ok(runseal(&d.addr, line, &["secrets", "set", "A=1"]));
    ok(runseal(&d.addr, line, &["keys", "list"]));

    // Other files holding data are private too (SQLite gives -wal and -shm the db's mode).
    for (path, _) in all_files(&data) {
        assert_eq!(
            mode(&path) & 0o077,
            0,
            "{} is readable by group or others",
            path.display()
        );
    }

    let log = d.log();
    let admin_path = data.join("admin.key");
    assert!(
        log.contains(&admin_path.display().to_string()),
        "the log names the admin key's path:\n{log}"
    );
    assert!(
        !log.contains(secret),
        "the admin key's secret is in the log"
    );
    assert!(
        !log.contains(&hex::encode(&master)),
        "the master key is in the log"
    );
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");
    assert!(
        !log.contains(secret),
        "the admin key's secret is in the log"
    );

    // A restart writes nothing new and logs no key either.
    let d = Daemon::start(&data, &[], &[]);
    assert_eq!(
        std::fs::read_to_string(data.join("admin.key")).unwrap(),
        admin
    );
    assert_eq!(std::fs::read(data.join("master.key")).unwrap(), master);
    assert!(
        !d.log().contains(secret),
        "the admin key's secret is in the log"
    );
}

/// Starts `runseald serve` expecting it to refuse: returns its exit code and stderr.
fn serve_refuses(data: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(RUNSEALD)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("RUNSEAL_LOG")
        .env_remove("RUNSEALD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runseald");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "runseald kept running instead of refusing:\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

fn list_json(d: &Daemon, env: &str) -> Vec<String> {
    let json = ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["secrets", "list", "--env", env, "--output", "json"],
    ));
    names_listed(&json, "secrets", "name")
}

#[test]
fn rotate_master_key_keeps_everything_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[], &[]);
    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "A=alpha", "B=bravo"],
    ));
    ok(runseal(&d.addr, &key, &["env", "create", "staging"]));
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "A=staging-alpha", "--env", "staging"],
    ));
    let old = std::fs::read(data.join("master.key")).unwrap();

    // Rotation while runseald runs.
    let out = runseald(&["rotate-master-key"], &data);
    assert!(
        out.status.success(),
        "rotate-master-key failed: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("master key rotated"),
        "{}",
        stdout(&out)
    );
    let new = std::fs::read(data.join("master.key")).unwrap();
    assert_eq!(new.len(), 32, "the new master.key holds 32 bytes");
    assert_ne!(new, old, "master.key is replaced");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master.key mode");
    assert!(
        !data.join("master.key.new").exists(),
        "no pending key is left behind"
    );

    // The running server keeps serving, reads and writes.
    ok(runseal(&d.addr, &key, &["secrets", "set", "C=charlie"]));
    assert_eq!(list_json(&d, "main"), ["A", "B", "C"]);
    let audit = ok(runseal(&d.addr, &key, &["audit", "--output", "json"]));
    assert!(
        names_listed(&audit, "entries", "action")
            .iter()
            .any(|a| a == "master-key.rotate"),
        "the rotation is audited: {audit}"
    );
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");

    // Every value opens under the new key.
    let out = runseald(&["verify"], &data);
    assert!(
        out.status.success(),
        "verify after rotation: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("4 sealed values checked, 0 failed"),
        "{}",
        stdout(&out)
    );

    // A restarted server serves the same.
    let d = Daemon::start(&data, &[], &[]);
    assert_eq!(list_json(&d, "main"), ["A", "B", "C"]);
    assert_eq!(list_json(&d, "staging"), ["A"]);
    ok(runseal(&d.addr, &key, &["secrets", "set", "D=delta"]));
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");

    // The old key no longer opens this database.
    std::fs::write(data.join("master.key"), &old).unwrap();
    let (code, log) = serve_refuses(&data);
    assert_ne!(code, Some(0), "runseald must not start with the old key");
    assert!(
        log.contains("master key"),
        "the refusal names the master key:\n{log}"
    );
    assert!(!log.contains("listening"), "it must not listen:\n{log}");
    let out = runseald(&["verify"], &data);
    assert!(!out.status.success(), "verify must refuse the old key");
    assert!(stderr(&out).contains("master key"), "{}", stderr(&out));

    // With the new key back, everything is there.
    std::fs::write(data.join("master.key"), &new).unwrap();
    let d = Daemon::start(&data, &[], &[]);
    assert_eq!(list_json(&d, "main"), ["A", "B", "C", "D"]);
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(out.status.success(), "sqlite3: {}", stderr(&out));
    stdout(&out)
}

fn sealed_hex(db: &Path, env: &str, name: &str) -> String {
    sqlite(
        db,
        &format!(
            "SELECT hex(nonce) || ':' || hex(ciphertext) FROM secrets \
             WHERE environment = '{env}' AND name = '{name}';"
        ),
    )
    .trim()
    .to_string()
}

/// Runs `runseald verify`; returns (success, stdout+stderr, the FAILED lines).
fn verify_report(data: &Path) -> (bool, String, Vec<String>) {
    let out = runseald(&["verify"], data);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let failed = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("FAILED "))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    (out.status.success(), text, failed)
}

#[test]
fn ciphertext_moved_between_rows_fails_to_open_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("runseal.db");
    let values = [
        ("main", "A", "swap-value-alpha-31c7"),
        ("main", "B", "swap-value-bravo-9e02"),
        ("main", "C", "swap-value-charlie-5b4d"),
        ("staging", "A", "swap-value-staging-a-77f1"),
    ];
    let d = Daemon::start(&data, &[], &[]);
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["env", "create", "staging"]));
    for (env, name, value) in values {
        ok(runseal(
            &d.addr,
            &key,
            &["secrets", "set", &format!("{name}={value}"), "--env", env],
        ));
    }
    let (clean, log) = d.terminate();
    assert!(clean, "{log}");
    let (ok_before, text, _) = verify_report(&data);
    assert!(
        ok_before && text.contains("4 sealed values checked, 0 failed"),
        "{text}"
    );
    let secrets: Vec<Secret> = values
        .iter()
        .map(|(_, _, v)| Secret::new("of a tampered row", *v))
        .collect();

    // main/A's sealed value copied into staging/A (same name, other environment).
    let main_a = sealed_hex(&db, "main", "A");
    let main_b = sealed_hex(&db, "main", "B");
    sqlite(
        &db,
        "UPDATE secrets SET \
           nonce = (SELECT nonce FROM secrets WHERE environment = 'main' AND name = 'A'), \
           ciphertext = (SELECT ciphertext FROM secrets WHERE environment = 'main' AND name = 'A') \
         WHERE environment = 'staging' AND name = 'A';",
    );
    assert_eq!(
        sealed_hex(&db, "staging", "A"),
        main_a,
        "the copy took place"
    );
    let (passed, text, failed) = verify_report(&data);
    assert!(!passed, "verify must fail on a moved ciphertext:\n{text}");
    assert_eq!(failed, ["FAILED staging/A"], "{text}");
    assert!(text.contains("4 sealed values checked, 1 failed"), "{text}");
    assert_no_value("the output of `runseald verify`", text.as_bytes(), &secrets);

    // main/A and main/B swap their sealed values (nonce and ciphertext).
    sqlite(
        &db,
        "CREATE TEMP TABLE orig AS SELECT name, nonce, ciphertext FROM secrets \
           WHERE environment = 'main' AND name IN ('A', 'B'); \
         UPDATE secrets SET \
           nonce = (SELECT o.nonce FROM orig o \
                    WHERE o.name = CASE secrets.name WHEN 'A' THEN 'B' ELSE 'A' END), \
           ciphertext = (SELECT o.ciphertext FROM orig o \
                    WHERE o.name = CASE secrets.name WHEN 'A' THEN 'B' ELSE 'A' END) \
         WHERE environment = 'main' AND name IN ('A', 'B');",
    );
    assert_eq!(sealed_hex(&db, "main", "A"), main_b, "the swap took place");
    assert_eq!(sealed_hex(&db, "main", "B"), main_a, "the swap took place");
    let (passed, text, failed) = verify_report(&data);
    assert!(!passed, "verify must fail on swapped ciphertexts:\n{text}");
    assert_eq!(
        failed,
        ["FAILED main/A", "FAILED main/B", "FAILED staging/A"],
        "{text}"
    );
    assert!(text.contains("4 sealed values checked, 3 failed"), "{text}");
    assert_no_value("the output of `runseald verify`", text.as_bytes(), &secrets);

    // Through the library (what serving a value would use): refused, not opened.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opened = runseal::datadir::DataDir::new(&data, None)
            .open()
            .await
            .unwrap();
        for env in ["main", "staging"] {
            // The environment's MAC refuses the rows before any is opened...
            match opened.store.sealed_secrets(env).await {
                Err(runseal::store::StoreError::Tampered { table, id }) => {
                    assert_eq!((table, id.as_str()), ("environments", env))
                }
                other => panic!("{env}: tampered rows were read: {other:?}"),
            }
            // ...and each moved ciphertext fails to open on its own.
            let rows = opened.store.all_sealed_secrets().await.unwrap();
            for row in rows.into_iter().filter(|(e, _)| e == env).map(|(_, r)| r) {
                let res = opened.sealer.open(env, &row.name, &row.sealed);
                if row.name == "C" {
                    assert!(res.is_ok(), "the untouched main/C still opens");
                    continue;
                }
                match res {
                    Ok(_) => panic!("{env}/{} opened a ciphertext of another row", row.name),
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&format!("{env}/{}", row.name)),
                            "the error names the row: {msg}"
                        );
                        assert_no_value("the open error", msg.as_bytes(), &secrets);
                    }
                }
            }
        }
    });
}

/// A master key runseald refuses leaves nothing behind: no new data dir, no database, for
/// `serve` and for `init` alike, and the error names the key file and what is wrong with it.
#[test]
fn a_refused_master_key_creates_no_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let readable = tmp.path().join("readable.key");
    std::fs::write(&readable, [7u8; 32]).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let short = tmp.path().join("short.key");
    std::fs::write(&short, [7u8; 10]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();

    for (key, wrong) in [
        (&readable, "accessible to group and others"),
        (&short, "short.key"),
    ] {
        for command in ["serve", "init"] {
            let data = tmp.path().join(format!("data-{command}"));
            let mut args = vec![command.to_string()];
            if command == "serve" {
                args.extend(["--listen", "127.0.0.1:0", "--web-listen", "off"].map(String::from));
            }
            args.extend(["--data-dir".into(), data.display().to_string()]);
            args.extend(["--master-key-file".into(), key.display().to_string()]);
            let out = common::runseald(&args);
            let err = stderr(&out);
            assert!(
                !out.status.success(),
                "{command} accepted {}: {err}",
                key.display()
            );
            assert!(
                err.contains(wrong),
                "{command}: the error does not say {wrong:?}: {err}"
            );
            assert!(
                !data.exists(),
                "{command} with a refused key left {} behind",
                data.display()
            );
        }
    }
}
