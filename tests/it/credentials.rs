//! The agent's credential and runseald's memory: non-dumpable from the first instruction of
//! `main`, token and key files checked (type, size, who may read them, the systemd credential's
//! ACL judged as such), runseald refusing an exposed master key or data dir, hardening itself
//! outside systemd, and never creating the parents of a mistyped data dir.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ok, runseal, stderr, Daemon, AGENT, RUNSEAL, RUNSEALD};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A pipe whose buffer is full: a process writing to it blocks until the read end is drained.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let chunk = [b'x'; 4096];
    while nix::unistd::write(&w, &chunk).is_ok() {}
    // Blocking again, for the writer that inherits it.
    fcntl(&w, FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    (r, w)
}

/// Whether `pid` is blocked in write(2) on fd 2 (read as root from /proc/PID/syscall).
fn blocked_writing_stderr(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .map(|s| s.starts_with("1 0x2 "))
        .unwrap_or(false)
}

fn read_as_nobody(path: &str) -> Output {
    Command::new("cat")
        .arg(path)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Held inside its start before anything else runs (its first log line blocks on a full stderr
/// pipe, before argument handling is over), the agent's environ, which holds RUNSEAL_TOKEN, is
/// already unreadable to another process of the same non-root user.
#[test]
fn the_agent_is_non_dumpable_before_its_first_line_of_setup() {
    if !is_root() {
        eprintln!("needs root to run the agent and the reader as another user: skipped");
        return;
    }
    let (read_end, write_end) = full_pipe();
    let mut agent = Command::new(AGENT)
        // A long deadline: the only write it reaches soon is the log warning below.
        .args(["--deadline", "30s", "--", "true"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // An unreadable filter: the agent's logging setup writes a warning, which blocks.
        .env("RUNSEAL_LOG", "runseal=loudly")
        .env("RUNSEAL_ADDR", "unix:/nonexistent/runseald.sock")
        .env("RUNSEAL_TOKEN", "rt_0123456789abcdef:credential-in-environ")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write_end))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !blocked_writing_stderr(agent.id()) {
        assert!(
            Instant::now() < deadline,
            "the agent never blocked on its log line"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut control = Command::new("sleep")
        .arg("30")
        .env("RUNSEAL_TOKEN", "x")
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    // The same user reads an ordinary process's environ…
    let control_read = read_as_nobody(&format!("/proc/{}/environ", control.id()));
    assert!(
        control_read.status.success(),
        "control: {}",
        stderr(&control_read)
    );
    // …but not the agent's, even this early.
    let agent_read = read_as_nobody(&format!("/proc/{}/environ", agent.id()));
    assert!(
        !agent_read.status.success(),
        "the agent's environ (with its token) was readable during its setup"
    );
    assert!(
        stderr(&agent_read).contains("Permission denied"),
        "{}",
        stderr(&agent_read)
    );
    // The line it was blocked on is the logging warning, and the token is in no output.
    let _ = control.kill();
    let _ = control.wait();
    let mut drain = std::fs::File::from(read_end);
    let mut sink = vec![0u8; 70_000];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("RUNSEAL_LOG") {
        let n = drain.read(&mut sink).unwrap();
        assert!(n > 0, "the agent closed its stderr");
        got.extend_from_slice(&sink[..n]);
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = drain.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("credential-in-environ"),
        "the token was printed"
    );
}

fn agent_with_token_file(path: &Path) -> Output {
    Command::new(AGENT)
        .arg("--token-file")
        .arg(path)
        .args(["--deadline", "200ms", "--", "true"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RUNSEAL_ADDR", "unix:/nonexistent/runseald.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn token_files_must_be_small_regular_files_and_loose_ones_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let token = "rt_0123456789abcdef:token-file-secret";

    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = agent_with_token_file(&fifo);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    let out = agent_with_token_file(dir.path());
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    let big = dir.path().join("big");
    std::fs::write(&big, "a".repeat(5000)).unwrap();
    chmod(&big, 0o600);
    let out = agent_with_token_file(&big);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("4096"), "{}", stderr(&out));

    // A private file: no warning; the agent goes on to the (absent) server.
    let private = dir.path().join("private");
    std::fs::write(&private, token).unwrap();
    chmod(&private, 0o600);
    let out = agent_with_token_file(&private);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // Readable by group or others: one warning line naming the fix, then it goes on.
    chmod(&private, 0o644);
    let out = agent_with_token_file(&private);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let warnings: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(
        warnings[0].contains("chmod 600") && warnings[0].contains("group and others"),
        "{}",
        warnings[0]
    );

    // The token itself passed where its file belongs is not echoed.
    let out = Command::new(AGENT)
        .args(["--token-file", token, "--", "true"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        !stderr(&out).contains("token-file-secret"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--token-file"), "{}", stderr(&out));
}

/// The POSIX ACL systemd writes on a credential: owner r, `user:UID:r`, group none, mask r,
/// other none (`stat` then shows 0440).
fn set_systemd_acl(path: &Path, uid: u32) {
    let undefined = u32::MAX;
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 4u16, undefined),
        (0x02, 4, uid),
        (0x04, 0, undefined),
        (0x10, 4, undefined),
        (0x20, 0, undefined),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    rustix::fs::setxattr(
        path,
        "system.posix_acl_access",
        &acl,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn a_systemd_credential_with_its_acl_is_accepted_and_plain_group_read_is_not() {
    if !is_root() {
        eprintln!("needs root to run the agent as the ACL's user: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    chmod(&creds, 0o755);
    let file = creds.join("runseal-token");
    std::fs::write(&file, "rt_0123456789abcdef:acl-secret").unwrap();
    chmod(&file, 0o400);
    set_systemd_acl(&file, NOBODY);
    assert_eq!(
        std::fs::metadata(&file).unwrap().mode() & 0o777,
        0o440,
        "stat shows the ACL's mask as the group bits"
    );
    let run = || {
        Command::new(AGENT)
            .args(["--deadline", "200ms", "--", "true"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env("RUNSEAL_ADDR", "unix:/nonexistent/runseald.sock")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // The same bits without the ACL mean the file's group may read it.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "rt_0123456789abcdef:acl-secret").unwrap();
    chmod(&file, 0o444);
    let out = run();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("chmod 600"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_cli_never_echoes_a_key_given_as_key_file_and_warns_on_a_loose_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let key = d.admin_key();
    let out = Command::new(RUNSEAL)
        .args(["--addr", &d.addr, "--key-file", &key, "secrets", "list"])
        .env_remove("RUNSEAL_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let secret = key.split_once(':').unwrap().1;
    assert!(!stderr(&out).contains(secret), "the key was printed");
    assert!(stderr(&out).contains("--key-file"), "{}", stderr(&out));

    let file = dir.path().join("admin.key");
    std::fs::write(&file, &key).unwrap();
    chmod(&file, 0o644);
    let out = Command::new(RUNSEAL)
        .args(["--addr", &d.addr, "--key-file"])
        .arg(&file)
        .args(["secrets", "list"])
        .env_remove("RUNSEAL_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one warning line: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    chmod(&file, 0o600);
    let out = Command::new(RUNSEAL)
        .args(["--addr", &d.addr, "--key-file"])
        .arg(&file)
        .args(["secrets", "list"])
        .env_remove("RUNSEAL_KEY")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}

#[test]
fn runseald_refuses_an_exposed_master_key_or_data_dir_naming_the_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data, &[], &[]);
    assert!(
        d.log().contains("created a new, empty data dir"),
        "{}",
        d.log()
    );
    let _ = d.terminate();

    chmod(&data.join("master.key"), 0o644);
    let log = Daemon::try_start(&data, &[], &[])
        .err()
        .expect("must refuse");
    assert!(
        log.contains("master key")
            && log.contains(&format!("chmod 600 {}", data.join("master.key").display())),
        "{log}"
    );
    chmod(&data.join("master.key"), 0o600);

    chmod(&data, 0o755);
    let log = Daemon::try_start(&data, &[], &[])
        .err()
        .expect("must refuse");
    assert!(
        log.contains("data dir") && log.contains(&format!("chmod 700 {}", data.display())),
        "{log}"
    );
    chmod(&data, 0o700);
    let d = Daemon::start(&data, &[], &[]);
    assert!(!d.log().contains("created a new"), "{}", d.log());
}

#[test]
fn a_master_key_credential_with_the_systemd_acl_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let master = creds.join("master.key");
    std::fs::write(&master, [5u8; 32]).unwrap();
    chmod(&master, 0o400);
    set_systemd_acl(&master, nix::unistd::geteuid().as_raw());
    assert_eq!(std::fs::metadata(&master).unwrap().mode() & 0o777, 0o440);
    let creds_env = creds.to_str().unwrap().to_string();
    let d = Daemon::start(
        &dir.path().join("data"),
        &[],
        &[("CREDENTIALS_DIRECTORY", &creds_env)],
    );
    ok(runseal(&d.addr, &d.admin_key(), &["secrets", "list"]));
}

#[test]
fn a_mistyped_data_dir_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo").join("path");
    let log = Daemon::try_start(&typo, &[], &[])
        .err()
        .expect("must refuse");
    assert!(!dir.path().join("typo").exists(), "a parent was created");
    assert!(
        log.contains("parent directory") && log.contains("does not exist"),
        "{log}"
    );
}

/// Outside systemd runseald still makes itself non-dumpable and sets RLIMIT_CORE to 0.
#[test]
fn runseald_is_non_dumpable_with_no_core_limit() {
    if !is_root() {
        eprintln!("needs root to run runseald as another user: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    nix::unistd::chown(
        &data,
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    let mut child = Command::new(RUNSEALD)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("RUNSEAL_LOG")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    loop {
        let line = lines.next().expect("runseald exited").unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            break;
        }
    }
    let pid = child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    // A non-dumpable process's /proc files belong to root, not to its user.
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    assert_eq!(owner, 0, "runseald (uid {NOBODY}) is dumpable\n{log}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn agent_usage_errors_never_echo_a_token() {
    let out = Command::new(AGENT)
        .args(["rt_0123456789abcdef:usage-secret-in-argv", "--", "true"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("usage-secret-in-argv"),
        "{}",
        stderr(&out)
    );
}
