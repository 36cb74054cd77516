//! runseal-agent, through the real binaries: runseald, the runseal CLI to set secrets and mint
//! runner tokens, and runseal-agent exec'ing real programs.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ok, runseal, stderr, stdout, Daemon, AGENT};

struct Fleet {
    _dir: tempfile::TempDir,
    d: Daemon,
    key: String,
}

impl Fleet {
    fn start() -> Self {
        Self::start_with(&[], &[])
    }

    fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), args, envs);
        let key = d.admin_key();
        Self { _dir: dir, d, key }
    }

    fn cli(&self, args: &[&str]) -> String {
        ok(runseal(&self.d.addr, &self.key, args))
    }

    fn token(&self, args: &[&str]) -> String {
        let mut a = vec!["runner-token", "issue"];
        a.extend_from_slice(args);
        self.cli(&a).trim().to_string()
    }

    /// An agent command with the server address and a token, nothing else of the test's env.
    fn agent(&self, token: &str, args: &[&str]) -> Command {
        common::agent(&self.d.addr, token, args)
    }
}

/// `env -0` output of an app as a map.
fn env_of(out: &Output) -> BTreeMap<String, String> {
    out.stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let s = String::from_utf8_lossy(e);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The environment of a running runner, read from /proc.
///
/// The app under test prints "ready" and then `exec`s `sleep`; while that exec is in flight the
/// kernel briefly reports an empty environ, so read until the platform variables are there.
fn environ_of(pid: u32) -> BTreeMap<String, String> {
    for _ in 0..200 {
        let env = read_environ(pid);
        if env.contains_key("RUNSEAL_ENVIRONMENT") {
            return env;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    read_environ(pid)
}

fn read_environ(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let s = String::from_utf8_lossy(e);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Starts a long-running app under the agent and waits until it printed "ready" (exec done).
fn start_runner(mut cmd: Command) -> Child {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the runner did not start");
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_app_gets_its_environment_and_platform_variables_and_no_token() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "HF_TOKEN=main-hf", "ONLY_MAIN=main-only"]);
    f.cli(&["env", "create", "staging"]);
    f.cli(&["secrets", "set", "HF_TOKEN=staging-hf", "--env", "staging"]);
    let token = f.token(&["--env", "staging"]);

    let out = f
        .agent(&token, &["--", "env", "-0"])
        .env("INHERITED", "kept")
        .env("HF_TOKEN", "overridden-by-the-secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&out);
    assert_eq!(env.get("HF_TOKEN").map(String::as_str), Some("staging-hf"));
    assert!(!env.contains_key("ONLY_MAIN"), "no fallback to main");
    assert_eq!(env.get("INHERITED").map(String::as_str), Some("kept"));
    assert_eq!(
        env.get("RUNSEAL_ENVIRONMENT").map(String::as_str),
        Some("staging")
    );
    assert_eq!(
        env.get("RUNSEAL_SNAPSHOT_REVISION").map(String::as_str),
        Some("1")
    );
    assert!(env
        .get("RUNSEAL_RUNNER_ID")
        .is_some_and(|id| !id.is_empty()));
    assert!(!env.contains_key("RUNSEAL_TOKEN"));
    assert!(
        !env.contains_key("RUNSEAL_ADDR"),
        "consumed settings are not passed on"
    );

    // The running app: same PID as the agent, and its /proc environ holds no token.
    let token = f.token(&["--env", "staging"]);
    let mut cmd = f.agent(&token, &["--", "sh", "-c", "echo ready; exec sleep 30"]);
    cmd.env("RUNSEAL_RUNNER_ID", "runner-proc-check");
    let child = start_runner(cmd);
    let environ = environ_of(child.id());
    assert!(!environ.contains_key("RUNSEAL_TOKEN"));
    assert!(!environ
        .values()
        .any(|v| v.contains(token.split(':').nth(1).unwrap())));
    assert_eq!(
        environ.get("HF_TOKEN").map(String::as_str),
        Some("staging-hf")
    );
    assert_eq!(
        environ.get("RUNSEAL_RUNNER_ID").map(String::as_str),
        Some("runner-proc-check")
    );
    stop(child);
}

#[test]
fn snapshot_semantics_running_runners_keep_their_values() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "API_KEY=v1", "GOES_AWAY=here"]);
    let app = ["--", "sh", "-c", "echo ready; exec sleep 30"];

    let before = start_runner(f.agent(&f.token(&[]), &app));
    f.cli(&["secrets", "set", "API_KEY=v2"]);
    let after = start_runner(f.agent(&f.token(&[]), &app));
    f.cli(&["secrets", "unset", "GOES_AWAY"]);
    let last = start_runner(f.agent(&f.token(&[]), &app));

    let e1 = environ_of(before.id());
    let e2 = environ_of(after.id());
    let e3 = environ_of(last.id());
    assert_eq!(
        e1["API_KEY"], "v1",
        "an update never reaches a running runner"
    );
    assert_eq!(e1["GOES_AWAY"], "here");
    assert_eq!(e1["RUNSEAL_SNAPSHOT_REVISION"], "1");
    assert_eq!(
        e2["API_KEY"], "v2",
        "a runner started after the update sees it"
    );
    assert_eq!(
        e2["GOES_AWAY"], "here",
        "an unset does not reach a running runner"
    );
    assert_eq!(e2["RUNSEAL_SNAPSHOT_REVISION"], "2");
    assert!(
        !e3.contains_key("GOES_AWAY"),
        "new runners no longer get it"
    );
    assert_eq!(e3["RUNSEAL_SNAPSHOT_REVISION"], "3");
    for c in [before, after, last] {
        stop(c);
    }
}

/// Runs the agent with an app that would leave a marker file; returns (status, stderr, started).
fn try_start(f: &Fleet, token: &str, extra: &[&str], dir: &Path) -> (Option<i32>, String, bool) {
    let marker = dir.join(format!("started-{}", rand_suffix()));
    let script = format!("touch {}", marker.display());
    let mut args: Vec<&str> = extra.to_vec();
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let out = f.agent(token, &args).output().unwrap();
    (out.status.code(), stderr(&out), marker.exists())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[test]
fn refused_tokens_exit_77_and_the_app_never_starts() {
    let f = Fleet::start();
    let tmp = tempfile::tempdir().unwrap();
    f.cli(&["env", "create", "staging"]);
    f.cli(&["secrets", "set", "K=v"]);

    // Replayed.
    let token = f.token(&[]);
    let (code, _, started) = try_start(&f, &token, &[], tmp.path());
    assert_eq!((code, started), (Some(0), true));
    let (code, err, started) = try_start(&f, &token, &[], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(err.contains("already been used"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("runseal-agent: "), "{err}");

    // Expired.
    let token = f.token(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let (code, err, started) = try_start(&f, &token, &[], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(err.contains("expired"), "{err}");

    // Revoked.
    let token = f.token(&[]);
    let id = token.split(':').next().unwrap();
    f.cli(&["runner-token", "revoke", id]);
    let (code, err, started) = try_start(&f, &token, &[], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(err.contains("revoked"), "{err}");

    // Wrong environment.
    let token = f.token(&["--env", "staging"]);
    let (code, err, started) = try_start(&f, &token, &["--env", "main"], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(err.contains("staging"), "{err}");

    // Unknown token and wrong secret.
    let (code, err, started) = try_start(&f, "rt_0000000000000000:nope", &[], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(err.contains("invalid runner token"), "{err}");
    let forged = format!("{}:{}", token.split(':').next().unwrap(), "0".repeat(64));
    let (code, err, started) = try_start(&f, &forged, &[], tmp.path());
    assert_eq!((code, started), (Some(77), false), "{err}");
    assert!(
        err.contains("invalid runner token: unknown id or wrong secret"),
        "{err}"
    );

    // None of the refusals used up the staging token.
    let (code, err, started) = try_start(&f, &token, &[], tmp.path());
    assert_eq!((code, started), (Some(0), true), "{err}");
}

#[test]
fn two_agents_racing_on_one_token_exactly_one_starts() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=v"]);
    for _ in 0..5 {
        let token = f.token(&[]);
        let children: Vec<Child> = (0..4)
            .map(|_| f.agent(&token, &["--", "true"]).spawn().unwrap())
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        for o in outs.iter().filter(|o| o.status.code() == Some(77)) {
            assert!(stderr(o).contains("already been used"), "{}", stderr(o));
        }
        assert_eq!(
            codes.iter().filter(|c| **c == Some(0)).count(),
            1,
            "{codes:?}"
        );
        assert_eq!(
            codes.iter().filter(|c| **c == Some(77)).count(),
            3,
            "{codes:?}"
        );
    }
}

#[test]
fn server_down_exits_69_and_a_server_coming_up_in_time_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sock = dir.path().join("runseald.sock");
    let sock_arg = sock.to_str().unwrap();
    let d = Daemon::start(&data, &["--unix", sock_arg], &[]);
    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "K=from-the-server"],
    ));
    let token = ok(runseal(
        &d.addr,
        &key,
        &["runner-token", "issue", "--count", "2"],
    ));
    let tokens: Vec<&str> = token.lines().collect();
    let addr = d.addr.clone();
    let (clean, _) = d.terminate();
    assert!(clean);

    let agent = |token: &str, deadline: &str| {
        let mut c = Command::new(AGENT);
        c.args(["--deadline", deadline, "--", "sh", "-c", "printf %s \"$K\""])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("RUNSEAL_ADDR", &addr)
            .env("RUNSEAL_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };

    // Nobody listens: exit 69 after the deadline, one line naming the problem.
    let out = agent(tokens[0], "1s").output().unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no server answered"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "the app must not start");

    // The server comes up while the agent retries: the app starts with its snapshot.
    let child = agent(tokens[0], "30s").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let d = Daemon::start(&data, &["--unix", sock_arg], &[]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-server");
    drop(d);
}

#[test]
fn the_app_starts_with_default_signal_dispositions_and_an_empty_mask() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=v"]);
    // The parent blocks SIGUSR2 and ignores SIGINT and SIGPIPE (as a supervisor or a Rust
    // program might); none of that reaches the app.
    let parent = "import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
signal.signal(signal.SIGRTMIN + 1, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])";
    let cmd = f.agent(&f.token(&[]), &["--", "cat", "/proc/self/status"]);
    let agent = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let out = Command::new("python3")
        .args(["-c", parent])
        .arg(agent)
        .args(args)
        .env_clear()
        .envs(envs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
            .to_string()
    };
    let mask = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
    assert_eq!(mask("SigBlk:"), 0, "signals blocked in the app");
    // Signals 32 and 33 belong to glibc, which lets no program change them: whatever the
    // environment above the test set for them passes through.
    let glibc_reserved = 0b11 << 31;
    assert_eq!(
        mask("SigIgn:") & !glibc_reserved,
        0,
        "signals ignored in the app"
    );
}

/// A replica that accepts connections and never answers (a hung or partitioned one).
struct HungReplica {
    addr: String,
    _listener: std::net::TcpListener,
    held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl HungReplica {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (l, h) = (listener.try_clone().unwrap(), held.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().map_while(Result::ok) {
                h.lock().unwrap().push(conn);
            }
        });
        Self {
            addr,
            _listener: listener,
            held,
        }
    }

    /// How many connections it has accepted (and holds, unanswered).
    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

#[test]
fn a_hung_replica_does_not_keep_runners_from_a_healthy_one() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=from-the-healthy-one"]);
    let hung = HungReplica::start();
    // The agent tries the addresses in random order: rounds of several runners, until one of
    // them has tried the hung replica (each runner does so first with odds of one half, so a
    // round of 6 misses it 1 time in 64; five rounds, 1 in 2^30).
    for _round in 0..5 {
        let runners: Vec<_> = (0..6)
            .map(|_| {
                let mut c = f.agent(
                    &f.token(&[]),
                    &["--deadline", "30s", "--", "sh", "-c", "printf %s \"$K\""],
                );
                c.env("RUNSEAL_ADDR", format!("{},{}", hung.addr, f.d.addr));
                c.spawn().unwrap()
            })
            .collect();
        for r in runners {
            let out = r.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(stdout(&out), "from-the-healthy-one");
        }
        if hung.connections() > 0 {
            break;
        }
    }
    // Every runner started; a runner that connects to the hung replica waits out its try
    // there before the healthy one serves it, so its connection has been accepted by now.
    assert!(
        hung.connections() > 0,
        "no runner tried the hung replica: the test proved nothing"
    );
}

#[test]
fn exit_status_and_signals_belong_to_the_app() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=v"]);
    let out = f
        .agent(&f.token(&[]), &["--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let app = r#"trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"#;
    let child = start_runner(f.agent(&f.token(&[]), &["--", "sh", "-c", app]));
    common::signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42));
    assert!(stdout(&out).contains("got-term"));

    // A command that cannot run is reported without spending the token.
    let token = f.token(&[]);
    let out = f
        .agent(&token, &["--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let tmp = tempfile::tempdir().unwrap();
    let not_executable = tmp.path().join("data.txt");
    std::fs::write(&not_executable, "just data").unwrap();
    let out = f
        .agent(&token, &["--", not_executable.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    let out = f.agent(&token, &["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Usage and configuration errors.
    let out = f.agent(&token, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = f
        .agent(
            &token,
            &["--token-file", "/nonexistent/token", "--", "true"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let out = f
        .agent(&token, &["--addr", "ftp://x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
}

#[test]
fn allow_lists_and_exposure() {
    let f = Fleet::start();
    f.cli(&[
        "secrets",
        "set",
        "PLAIN=p",
        "SHOWN=s",
        "--exposed-by-default",
    ]);
    f.cli(&["secrets", "set", "HIDDEN=h", "--not-exposed-by-default"]);
    // Updating without a flag keeps the secret's setting.
    f.cli(&["secrets", "set", "HIDDEN=h2"]);
    let names = |out: &Output| -> Vec<String> {
        env_of(out)
            .into_keys()
            .filter(|k| ["PLAIN", "SHOWN", "HIDDEN"].contains(&k.as_str()))
            .collect()
    };
    let run = |token: &str, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["--", "env", "-0"]);
        f.agent(token, &args).output().unwrap()
    };

    let out = run(&f.token(&[]), &[]);
    assert_eq!(
        names(&out),
        ["PLAIN", "SHOWN"],
        "without an allow-list: exposed ones"
    );

    let out = run(&f.token(&[]), &["--only", "HIDDEN"]);
    assert_eq!(names(&out), ["HIDDEN"]);
    assert_eq!(env_of(&out)["HIDDEN"], "h2");

    let mut cmd = f.agent(&f.token(&[]), &["--", "env", "-0"]);
    let out = cmd.env("RUNSEAL_SECRETS", "PLAIN,HIDDEN").output().unwrap();
    assert_eq!(names(&out), ["HIDDEN", "PLAIN"]);

    let out = run(&f.token(&[]), &["--only", "PLAIN,MISSING"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(stderr(&out).contains("MISSING"), "{}", stderr(&out));

    // A token's allow-list binds the runner.
    let out = run(&f.token(&["--only", "SHOWN"]), &[]);
    assert_eq!(names(&out), ["SHOWN"]);
    let out = run(&f.token(&["--only", "SHOWN"]), &["--only", "PLAIN"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));

    // A long-lived key with snapshot:main works like a token; admin alone cannot read values.
    let key = f.cli(&["keys", "create", "--scope", "snapshot:main"]);
    let out = f.agent(key.trim(), &["--", "env", "-0"]).output().unwrap();
    assert_eq!(names(&out), ["PLAIN", "SHOWN"], "{}", stderr(&out));
    let out = f.agent(&f.key, &["--", "true"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "an admin key does not read values"
    );
}

#[test]
fn values_appear_in_no_log_line_at_trace_level() {
    let f = Fleet::start_with(&[], &[("RUNSEAL_LOG", "trace")]);
    f.cli(&[
        "secrets",
        "set",
        "TRACE_A=value-alpha-7731",
        "TRACE_B=value-beta-9917",
    ]);
    let token = f.token(&[]);
    let secret_part = token.split(':').nth(1).unwrap().to_string();
    let out = f
        .agent(&token, &["--", "true"])
        .env("RUNSEAL_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let agent_log = stderr(&out);
    assert!(!agent_log.is_empty(), "trace logging produced nothing");
    let server_log = f.d.wait_for_log("snapshot served", Duration::from_secs(10));
    for (what, log) in [("agent", &agent_log), ("server", &server_log)] {
        assert!(
            !log.contains("value-alpha-7731"),
            "a value leaked into the {what} log"
        );
        assert!(
            !log.contains("value-beta-9917"),
            "a value leaked into the {what} log"
        );
        assert!(
            !log.contains(&secret_part),
            "the token leaked into the {what} log"
        );
    }
}

/// The agent reads `RUNSEAL_LOG` as `TARGET=LEVEL` directives; one it cannot read is named in a
/// warning and the runner still starts.
#[test]
fn an_unreadable_log_filter_is_reported_and_the_runner_starts() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=1"]);
    let token = f.token(&[]);
    let out = f
        .agent(&token, &["--", "sh", "-c", "echo \"K=$K\""])
        .env("RUNSEAL_LOG", "runseal=loudly")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "K=1\n");
    assert!(
        stderr(&out).contains("RUNSEAL_LOG is not a list of TARGET=LEVEL directives"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runners_list_stale_names_exactly_the_runners_started_before_the_last_change() {
    let f = Fleet::start();
    f.cli(&["secrets", "set", "K=1"]);
    let start = |id: &str| {
        let out = f
            .agent(&f.token(&[]), &["--", "true"])
            .env("RUNSEAL_RUNNER_ID", id)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    start("old-1");
    start("old-2");
    f.cli(&["secrets", "set", "K=2"]);
    start("new-1");

    let json = f.cli(&[
        "runners", "list", "--stale", "--env", "main", "--output", "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut stale: Vec<&str> = v["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap())
        .collect();
    stale.sort();
    assert_eq!(stale, ["old-1", "old-2"]);
    for r in v["runners"].as_array().unwrap() {
        assert_eq!(r["revision"], 1);
        assert_eq!(r["current_revision"], 2);
    }
    let all = f.cli(&["runners", "list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(v["runners"].as_array().unwrap().len(), 3);
}

/// A command run as an unprivileged user: `nobody` when the tests run as root (root may read
/// any process's memory), else the current user.
fn unprivileged(program: &str) -> Command {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            program,
        ]);
        c
    } else {
        Command::new(program)
    }
}

#[test]
fn the_agent_is_non_dumpable_while_it_holds_its_credential() {
    // An agent retrying against a socket nobody listens on holds its token in memory.
    let mut agent = unprivileged(AGENT)
        .args(["--deadline", "20s", "--", "true"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RUNSEAL_ADDR", "unix:/nonexistent/runseald.sock")
        .env("RUNSEAL_TOKEN", "rt_0123456789abcdef:00")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut control = unprivileged("sleep").arg("20").spawn().unwrap();
    // Wait until the agent is retrying (sleeping between attempts).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut retrying = false;
    while Instant::now() < deadline && !retrying {
        std::thread::sleep(Duration::from_millis(50));
        let status = std::fs::read_to_string(format!("/proc/{}/status", agent.id())).unwrap();
        retrying = status.contains("runseal-agent") && status.contains("State:\tS");
    }
    assert!(retrying, "the agent did not start retrying");

    // The same user may read an ordinary process's environ, not the agent's.
    let read = |pid: u32| {
        unprivileged("cat")
            .arg(format!("/proc/{pid}/environ"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let control_read = read(control.id());
    assert!(
        control_read.status.success(),
        "control: {}",
        stderr(&control_read)
    );
    let agent_read = read(agent.id());
    assert!(
        !agent_read.status.success(),
        "the agent's environ was readable"
    );
    assert!(
        stderr(&agent_read).contains("Permission denied"),
        "{}",
        stderr(&agent_read)
    );
    let _ = agent.kill();
    let _ = control.kill();
    let _ = agent.wait();
    let _ = control.wait();
}
