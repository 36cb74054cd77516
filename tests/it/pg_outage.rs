//! PostgreSQL restarted under a running replica: calls fail with UNAVAILABLE while it is down,
//! an agent started during the outage gets its snapshot once it is back, and runseald serves
//! again without being restarted.
//!
//! The test runs a PostgreSQL server of its own (initdb in a temp dir, on a Unix socket there),
//! so stopping it disturbs nothing else. Compiled when `RUNSEAL_TEST_DATABASE_URL` is set, like
//! every PostgreSQL test: that is the switch saying PostgreSQL is installed on this machine.
#![cfg(runseal_pg_tests)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::private_pg::PrivatePg;
use common::{ok, runseal, stderr, stdout, Daemon};

fn agent(addr: &str, token: &str) -> Command {
    let args = ["--deadline", "60s", "--", "sh", "-c", "printf %s \"$K\""];
    common::agent(addr, token, &args)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn data_dir(tmp: &Path) -> PathBuf {
    tmp.join("replica")
}

#[test]
fn postgres_restart_under_a_running_replica() {
    let pg = PrivatePg::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&data_dir(tmp.path()), &["--database-url", &pg.url()], &[]);
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["secrets", "set", "K=before"]));
    let token = ok(runseal(&d.addr, &key, &["runner-token", "issue"]));

    pg.ctl("stop");

    // While the database is down: UNAVAILABLE, with a message that says so.
    let out = runseal(&d.addr, &key, &["secrets", "list"]);
    assert!(!out.status.success(), "a call succeeded without a database");
    let err = stderr(&out);
    assert!(
        err.contains("unavailable"),
        "the CLI does not say the server is unavailable: {err}"
    );

    // A runner started now waits within its deadline instead of failing.
    let runner = agent(&d.addr, token.trim()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));

    pg.ctl("start");

    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the runner started during the outage failed: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "before");

    // runseald serves again, the same process, without a restart.
    let mut child = d;
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "runseald exited during the outage"
    );
    wait_until("runseald serves again", || {
        runseal(&child.addr, &key, &["secrets", "list"])
            .status
            .success()
    });
    ok(runseal(&child.addr, &key, &["secrets", "set", "K=after"]));
    let token = ok(runseal(&child.addr, &key, &["runner-token", "issue"]));
    let out = agent(&child.addr, token.trim()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "after");
    let log = child.log();
    assert!(
        log.contains("store unavailable"),
        "the outage is not in the server log"
    );
    let _ = child.child.kill();
    let _ = child.child.wait();
}
