//! The default denied set of secret names: a `write:ENV` key cannot set a variable that makes
//! the runners' interpreters, loader, shell or TLS stack load code or files, or send traffic
//! elsewhere; the config keys that change the set; stored names that become denied.

use crate::common;

use std::process::{Command, Stdio};

use common::{ok, runseal, stderr, stdout, write_config, Daemon, TestServer, RUNSEALD};
use runseal::secret::SecretBytes;
use tonic::Code;

/// The names the review saw accepted, and a few of every family.
const REFUSED: &[&str] = &[
    "PERL5OPT",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "GLIBC_TUNABLES",
    "JAVA_TOOL_OPTIONS",
    "RUBYOPT",
    "PATH",
    "SSL_CERT_FILE",
    "HTTPS_PROXY",
    "https_proxy",
    "SSLKEYLOGFILE",
    "SHELLOPTS",
    "PS4",
    "PYTHONSTARTUP",
    "NODE_EXTRA_CA_CERTS",
    "PERL5LIB",
    "RUBYLIB",
    "_JAVA_OPTIONS",
    "CLASSPATH",
    "GOFLAGS",
    "OPENSSL_CONF",
    "REQUESTS_CA_BUNDLE",
    "ALL_PROXY",
    "no_proxy",
    "BASH_FUNC_x",
    "MALLOC_TRACE",
    "GCONV_PATH",
    "GIT_SSH_COMMAND",
];

#[tokio::test]
async fn a_write_key_cannot_set_a_name_that_loads_code() {
    let server = TestServer::start().await;
    let writer = server.key_with(&["write:main"]).await;
    let c = server.client(&writer).await;
    for name in REFUSED {
        let err = c
            .secrets()
            .set(name, SecretBytes::from(b"x".to_vec()), "main")
            .await
            .expect_err(name);
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{name}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(name) && msg.contains("allowed_names"),
            "{name}: {msg}"
        );
    }
    for name in ["NODE_ENV", "PYTHONUNBUFFERED", "HF_TOKEN", "GIT_TOKEN"] {
        c.secrets()
            .set(name, SecretBytes::from(b"1".to_vec()), "main")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let names = common::secret_names(&c, "main").await;
    assert_eq!(
        names.len(),
        4,
        "only the allowed names were stored: {names:?}"
    );
    server.stop().await;
}

#[test]
fn config_keys_add_allow_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(
        dir.path(),
        "extra_denied_names = [\"MY_HOOK\"]\nallowed_names = [\"HTTPS_PROXY\"]\n",
    );
    let d = Daemon::start(&dir.path().join("data"), &["--config", &conf], &[]);
    let key = d.admin_key();
    let hook = runseal(&d.addr, &key, &["secrets", "set", "MY_HOOK=1"]);
    assert!(!hook.status.success());
    assert!(
        stderr(&hook).contains("MY_HOOK") && stderr(&hook).contains("extra_denied_names"),
        "{}",
        stderr(&hook)
    );
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "HTTPS_PROXY=http://u:p@proxy:3128"],
    ));
    // Only the name allowed, not its other spelling.
    assert!(
        !runseal(&d.addr, &key, &["secrets", "set", "https_proxy=x"])
            .status
            .success()
    );
    assert!(!d.log().contains("replaces the default denied set"));
    drop(d);

    // The old key keeps working, with a warning that it drops the defaults.
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), "denied_names = [\"MY_HOOK\"]\n");
    let d = Daemon::start(&dir.path().join("data"), &["--config", &conf], &[]);
    let key = d.admin_key();
    assert!(!runseal(&d.addr, &key, &["secrets", "set", "MY_HOOK=1"])
        .status
        .success());
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "NODE_OPTIONS=1"],
    ));
    assert!(
        !runseal(&d.addr, &key, &["secrets", "set", "LD_PRELOAD=1"])
            .status
            .success(),
        "LD_* always applies"
    );
    assert!(
        d.log()
            .contains("denied_names replaces the default denied set"),
        "{}",
        d.log()
    );
}

/// The app's environment as `env -0` printed it.
fn env_names(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter_map(|e| {
            let s = String::from_utf8_lossy(e);
            s.split_once('=').map(|(k, _)| k.to_string())
        })
        .collect()
}

#[test]
fn a_stored_name_that_becomes_denied_is_withheld_refused_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = write_config(
        dir.path(),
        "allowed_names = [\"NODE_OPTIONS\", \"PERL5OPT\"]\n",
    );
    // Stored while an operator allowed them (as an older runseald stored them too).
    let d = Daemon::start(&data, &["--config", &conf], &[]);
    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &[
            "secrets",
            "set",
            "NODE_OPTIONS=--require=/tmp/evil.js",
            "PERL5OPT=-Mstrict",
            "APP_KEY=kept",
        ],
    ));
    assert!(d.terminate().0);

    // Restarted with the defaults: the names are denied now.
    let d = Daemon::start(&data, &[], &[]);
    let token = ok(runseal(&d.addr, &key, &["runner-token", "issue"]));
    let out = common::agent(&d.addr, token.trim(), &["--", "env", "-0"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let names = env_names(&out.stdout);
    assert!(names.contains(&"APP_KEY".to_string()), "{names:?}");
    assert!(!names.contains(&"NODE_OPTIONS".to_string()), "{names:?}");
    assert!(!names.contains(&"PERL5OPT".to_string()), "{names:?}");
    let log = d.log();
    for name in ["NODE_OPTIONS", "PERL5OPT"] {
        assert!(
            log.lines()
                .any(|l| l.contains("left out of the snapshot") && l.contains(name)),
            "{log}"
        );
    }

    // An allow-list naming one is refused, naming it.
    let token = ok(runseal(&d.addr, &key, &["runner-token", "issue"]));
    let args = ["--only", "APP_KEY,NODE_OPTIONS", "--", "true"];
    let out = common::agent(&d.addr, token.trim(), &args)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("NODE_OPTIONS") && stderr(&out).contains("denied"),
        "{}",
        stderr(&out)
    );
    assert!(d.terminate().0);

    let verify = Command::new(RUNSEALD)
        .args(["verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
    let text = stdout(&verify);
    for name in ["NODE_OPTIONS", "PERL5OPT"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("DENIED main/") && l.contains(name)),
            "{text}"
        );
    }
    assert!(!text.contains("APP_KEY"), "{text}");
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the review did: a write key sets PERL5OPT and NODE_OPTIONS, and the next runner's perl
/// and node run its code. Now the set is refused and the runner's interpreters run clean.
#[test]
fn perl_and_node_under_the_agent_run_no_injected_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let admin = d.admin_key();
    let writer = ok(runseal(
        &d.addr,
        &admin,
        &["keys", "create", "--scope", "write:main"],
    ));
    let writer = writer.trim();
    let js = dir.path().join("inject.js");
    std::fs::write(&js, "console.log('INJECTED-BY-NODE-OPTIONS');\n").unwrap();
    let pm = dir.path().join("Inject.pm");
    std::fs::write(
        &pm,
        "package Inject; print \"INJECTED-BY-PERL5OPT\\n\"; 1;\n",
    )
    .unwrap();
    let attempts = [
        ("PERL5OPT", format!("-I{} -MInject", dir.path().display())),
        ("NODE_OPTIONS", format!("--require={}", js.display())),
    ];
    for (name, value) in &attempts {
        let set = runseal(
            &d.addr,
            writer,
            &["secrets", "set", &format!("{name}={value}")],
        );
        assert!(!set.status.success(), "{name} was accepted");
    }
    let mut ran = 0;
    for (program, script) in [
        ("perl", "print \"app ran\\n\""),
        ("node", "console.log('app ran')"),
    ] {
        if !has(program) {
            eprintln!("{program} not installed: skipped");
            continue;
        }
        let token = ok(runseal(&d.addr, &admin, &["runner-token", "issue"]));
        let out = common::agent(&d.addr, token.trim(), &["--", program, "-e", script])
            .env("PATH", "/usr/bin:/bin:/usr/local/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("app ran"), "{program}: {text}");
        assert!(
            !text.contains("INJECTED"),
            "{program} ran injected code: {text}"
        );
        ran += 1;
    }
    assert!(ran > 0 || !has("perl"), "perl is installed but did not run");
}
