//! `runseald migrate --from sqlite:PATH --to postgres://…`, end to end with the real binaries:
//! everything copied, sealed values opened by the same master key on the other side, the same
//! snapshot for a runner, a non-empty target refused, progress shown on a terminal.
#![cfg(runseal_pg_tests)]

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{ok, runseal, stderr, stdout, Daemon, PgDb, RUNSEALD};

fn migrate(db: &Path, url: &str) -> Output {
    Command::new(RUNSEALD)
        .arg("migrate")
        .arg("--from")
        .arg(format!("sqlite:{}", db.display()))
        .args(["--to", url])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What a runner started with `token` sees: its secrets and snapshot revision, sorted.
fn runner_view(addr: &str, token: &str) -> Vec<String> {
    let out = common::agent(addr, token, &["--", "env"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut view: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| {
            !l.starts_with("PATH=")
                && !l.starts_with("RUNSEAL_RUNNER_ID=")
                && !l.starts_with("PWD=")
                && !l.starts_with("SHLVL=")
        })
        .map(str::to_string)
        .collect();
    view.sort();
    view
}

#[test]
fn migrate_copies_everything_and_runners_get_the_same_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("sqlite");
    let d = Daemon::start(&src_dir, &[], &[]);
    let admin = d.admin_key();
    let cli = |args: &[&str]| ok(runseal(&d.addr, &admin, args));
    cli(&[
        "secrets",
        "set",
        "HF_TOKEN=hf-main",
        "DATABASE_URL=postgres://u:p@db/x",
    ]);
    cli(&["env", "create", "staging"]);
    cli(&["secrets", "set", "HF_TOKEN=hf-staging", "--env", "staging"]);
    cli(&["secrets", "set", "ONE_MORE=1", "--env", "staging"]);
    cli(&["secrets", "unset", "ONE_MORE", "--env", "staging"]);
    let writer = cli(&[
        "keys",
        "create",
        "--scope",
        "write:staging",
        "--label",
        "ci",
    ]);
    let before_main = runner_view(&d.addr, cli(&["runner-token", "issue"]).trim());
    let before_staging = runner_view(
        &d.addr,
        cli(&["runner-token", "issue", "--env", "staging"]).trim(),
    );
    let keys_before = cli(&["keys", "list"]);
    let audit_before = cli(&["audit"]);
    let (stopped, _) = d.terminate();
    assert!(stopped);

    let pg = PgDb::create();
    let out = migrate(&src_dir.join("runseal.db"), &pg.url);
    assert!(out.status.success(), "migrate failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains("migrated"),
        "no summary: {}",
        stdout(&out)
    );
    // Not a terminal: one line per table, no carriage returns.
    assert!(stderr(&out).contains("secrets: 3 rows"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\r'));

    // A second run refuses the now non-empty target and changes nothing.
    let again = migrate(&src_dir.join("runseal.db"), &pg.url);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("not empty"),
        "unclear refusal: {}",
        stderr(&again)
    );

    // A PostgreSQL replica with the same master key serves the same data.
    let pg_dir = tmp.path().join("pg-replica");
    std::fs::create_dir(&pg_dir).unwrap();
    // runseald refuses a data dir that group or others may enter.
    std::fs::set_permissions(&pg_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::copy(src_dir.join("master.key"), pg_dir.join("master.key")).unwrap();
    let r = Daemon::start(&pg_dir, &["--database-url", &pg.url], &[]);
    assert!(
        !pg_dir.join("admin.key").exists(),
        "the migrated database was initialised again"
    );
    let cli = |args: &[&str]| ok(runseal(&r.addr, &admin, args));
    assert_eq!(
        runner_view(&r.addr, cli(&["runner-token", "issue"]).trim()),
        before_main
    );
    assert_eq!(
        runner_view(
            &r.addr,
            cli(&["runner-token", "issue", "--env", "staging"]).trim()
        ),
        before_staging
    );
    // The same keys (their last-used times move on as they are used).
    let ids = |list: &str| -> Vec<String> {
        list.lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    assert_eq!(ids(&cli(&["keys", "list"])), ids(&keys_before));
    // The audit trail came along; the runner starts above come after it.
    let audit_after = cli(&["audit"]);
    for line in audit_before.lines().skip(1) {
        assert!(audit_after.contains(line), "audit entry lost: {line}");
    }
    // A key made before the migration still works, with its scope.
    let w = ok(runseal(
        &r.addr,
        writer.trim(),
        &["secrets", "set", "NEW=1", "--env", "staging"],
    ));
    assert!(w.contains("revision"), "{w}");
    let denied = runseal(&r.addr, writer.trim(), &["secrets", "set", "NEW=1"]);
    assert!(!denied.status.success());
}

#[test]
fn migrate_shows_progress_on_a_terminal_and_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("sqlite");
    let d = Daemon::start(&src_dir, &[], &[]);
    ok(runseal(
        &d.addr,
        &d.admin_key(),
        &["secrets", "set", "A=1", "B=2"],
    ));
    assert!(d.terminate().0);
    let pg = PgDb::create();

    // Under a pseudo-terminal (util-linux `script`), progress is redrawn in place.
    let cmd = format!(
        "{RUNSEALD} migrate --from sqlite:{} --to {}",
        src_dir.join("runseal.db").display(),
        pg.url
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let shown = stdout(&out);
    assert!(shown.contains("\rsecrets: 2/2"), "no progress: {shown:?}");

    for (from, to, expect) in [
        (
            "sqlite:/nonexistent/runseal.db",
            pg.url.as_str(),
            "does not exist",
        ),
        ("/tmp/x.db", pg.url.as_str(), "expected sqlite:PATH"),
        (
            "sqlite:/tmp/x.db",
            "mysql://h/db",
            "expected a postgres:// URL",
        ),
    ] {
        let out = Command::new(RUNSEALD)
            .args(["migrate", "--from", from, "--to", to])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(expect),
            "{from} -> {to}: {}",
            stderr(&out)
        );
    }
}
