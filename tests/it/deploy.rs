//! Deployment: socket activation with sd_notify, systemd credentials, Prometheus metrics, TLS
//! reload on SIGHUP, and the orchestrator example. Real processes and real sockets throughout.

use crate::common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, pki, runseal, stderr, Daemon, AGENT, RUNSEALD};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `runseald init`: the admin key, printed once.
fn init(data: &Path, extra_env: &[(&str, &str)]) -> String {
    let out = Command::new(RUNSEALD)
        .args(["init", "--data-dir", s(data)])
        .envs(extra_env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Reads notify datagrams until one contains `what` (or the timeout passes).
fn wait_for_notify(sock: &UnixDatagram, what: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = msg.lines().any(|l| l == what);
            seen.push(msg);
            if done {
                break;
            }
        }
    }
    seen
}

#[test]
fn socket_activation_with_notify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = init(&data, &[]);
    let sock = dir.path().join("runseald.sock");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let mut activator = Command::new("systemd-socket-activate")
        .args([
            "-l",
            s(&sock),
            "-E",
            &format!("NOTIFY_SOCKET={}", notify_path.display()),
        ])
        .args([RUNSEALD, "serve", "--data-dir", s(&data)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) is needed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts runseald on the inherited socket; the call then goes through.
    let addr = format!("unix:{}", sock.display());
    ok(runseal(&addr, &key, &["secrets", "set", "K=activated"]));
    let seen = wait_for_notify(&notify, "READY=1", Duration::from_secs(10));
    assert!(
        seen.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {seen:?}"
    );
    assert!(ok(runseal(&addr, &key, &["secrets", "list"])).contains('K'));

    common::signal(&activator, "TERM");
    let seen = wait_for_notify(&notify, "STOPPING=1", Duration::from_secs(10));
    assert!(
        seen.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1: {seen:?}"
    );
    let status = activator.wait().unwrap();
    let mut log = String::new();
    activator
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}: {log}");
    assert!(log.contains("activated unix socket"), "{log}");
}

#[test]
fn master_key_and_agent_token_from_a_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let master: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    std::fs::write(creds.join("master.key"), &master).unwrap();
    // As systemd writes a credential: read-only for its owner.
    std::fs::set_permissions(
        creds.join("master.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    let data = dir.path().join("data");
    let cred_env = [("CREDENTIALS_DIRECTORY", s(&creds))];

    let d = Daemon::start(&data, &[], &cred_env);
    assert!(
        !data.join("master.key").exists(),
        "the credential is used, no key file is made"
    );
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["secrets", "set", "FROM_CRED=yes"]));
    let token = ok(runseal(&d.addr, &key, &["runner-token", "issue"]));

    // The agent reads its token from $CREDENTIALS_DIRECTORY/runseal-token.
    let agent_creds = dir.path().join("agent-credentials");
    std::fs::create_dir(&agent_creds).unwrap();
    std::fs::write(agent_creds.join("runseal-token"), token.trim()).unwrap();
    let out = Command::new(AGENT)
        .args(["--", "sh", "-c", "printf %s \"$FROM_CRED\""])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("RUNSEAL_ADDR", &d.addr)
        .env("CREDENTIALS_DIRECTORY", &agent_creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "yes");
    let (clean, _) = d.terminate();
    assert!(clean);

    // Another credential is a wrong master key: runseald refuses to start.
    std::fs::write(creds.join("master.key"), [9u8; 32]).unwrap();
    let log = Daemon::try_start(&data, &[], &cred_env)
        .err()
        .expect("must refuse");
    assert!(log.contains("does not match"), "{log}");
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_calls_snapshots_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let metrics_addr = d.metrics_addr();
    let before = common::http_get(&metrics_addr, "/metrics");
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(before.contains("runseal_build_info{version="));

    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "M=metric-value-5521"],
    ));
    let token = ok(runseal(&d.addr, &key, &["runner-token", "issue"]));
    let run = || {
        common::agent(&d.addr, token.trim(), &["--", "true"])
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    assert_eq!(run().status.code(), Some(77));
    let _ = runseal(&d.addr, "rk_0000000000000000:wrong", &["secrets", "list"]);

    let after = common::http_get(&metrics_addr, "/metrics");
    let set_ok = "runseal_grpc_calls_total{method=\"runseal.v1.Secrets/SetSecrets\",code=\"Ok\"}";
    assert_eq!(metric(&after, set_ok), 1.0, "{after}");
    let denied =
        "runseal_grpc_calls_total{method=\"runseal.v1.Secrets/ListSecrets\",code=\"Unauthenticated\"}";
    assert_eq!(metric(&after, denied), 1.0, "{after}");
    assert_eq!(metric(&after, "runseal_snapshots_served_total"), 1.0);
    assert_eq!(metric(&after, "runseal_runner_tokens_redeemed_total"), 1.0);
    assert_eq!(metric(&after, "runseal_runner_tokens_refused_total"), 1.0);
    assert!(after.contains("runseal_grpc_call_duration_seconds_bucket{"));
    assert!(
        !after.contains("metric-value-5521"),
        "a value reached the metrics"
    );
    assert!(
        !after.contains(token.trim().split(':').nth(1).unwrap()),
        "a token reached the metrics"
    );
}

#[tokio::test]
async fn sighup_reloads_tls_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let old = pki(&first);
    let new = pki(&second);
    let cert = dir.path().join("tls.crt");
    let key_file = dir.path().join("tls.key");
    std::fs::copy(&old.server_cert, &cert).unwrap();
    std::fs::copy(&old.server_key, &key_file).unwrap();
    let mut d = Daemon::start(
        &dir.path().join("data"),
        &["--tls-cert", s(&cert), "--tls-key", s(&key_file)],
        &[],
    );
    let pid = d.child.id();
    let addr = d.addr.replace("http://127.0.0.1", "https://localhost");
    let admin = runseal::auth::Credential::parse(&d.admin_key()).unwrap();

    // An open connection made with the old certificate.
    let mut opts = runseal::client::ConnectOptions::new(addr.clone(), admin.clone());
    opts.ca_cert = Some(old.ca.clone());
    let open = runseal::client::Client::connect_with(opts).await.unwrap();
    open.secrets()
        .set("BEFORE", b"1".to_vec(), "main")
        .await
        .unwrap();

    std::fs::copy(&new.server_cert, &cert).unwrap();
    std::fs::copy(&new.server_key, &key_file).unwrap();
    common::signal(&d.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("TLS certificate and key reloaded") {
        assert!(Instant::now() < deadline, "no reload logged: {}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let key = d.admin_key();
    let with_new = runseal(&addr, &key, &["--ca-cert", s(&new.ca), "secrets", "list"]);
    assert!(
        with_new.status.success(),
        "new connections see the new certificate: {}",
        stderr(&with_new)
    );
    let with_old = runseal(&addr, &key, &["--ca-cert", s(&old.ca), "secrets", "list"]);
    assert_eq!(
        with_old.status.code(),
        Some(1),
        "the old certificate is no longer served"
    );
    // The connection opened before the reload keeps working.
    open.secrets()
        .set("AFTER", b"2".to_vec(), "main")
        .await
        .unwrap();
    assert_eq!(open.secrets().list("main").await.unwrap().len(), 2);
    // The same process throughout: SIGHUP reloaded, it did not restart or exit.
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "runseald exited on SIGHUP"
    );
    assert_eq!(d.child.id(), pid);
    // Each listener (gRPC, and the dashboard when its default port was free) started once.
    for listener in ["listening (TLS)", "dashboard listening"] {
        assert!(
            d.log().matches(listener).count() <= 1,
            "runseald started {listener:?} again: {}",
            d.log()
        );
    }
    assert_eq!(d.log().matches("listening (TLS)").count(), 1);
}

#[test]
fn orchestrator_example_starts_twenty_runners() {
    // cargo test builds the examples next to the test binaries: target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("orchestrator"))
        .unwrap();
    assert!(example.exists(), "{} was not built", example.display());
    let out = Command::new(&example)
        .args(["--runners", "20", "--agent", AGENT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("minted 20 runner tokens in one call"),
        "{text}"
    );
    assert!(text.contains("20 runners started, 0 failed"), "{text}");
}

#[test]
fn socket_activation_serves_the_dashboard_on_the_socket_named_web() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = init(&data, &[]);
    let sock = dir.path().join("runseald.sock");
    // A free loopback port for the dashboard's socket (systemd would own it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = format!("127.0.0.1:{port}");
    let mut activator = Command::new("systemd-socket-activate")
        .args(["-l", s(&sock), "-l", &web, "--fdname=grpc:web"])
        .args([RUNSEALD, "serve", "--data-dir", s(&data)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) is needed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = format!("unix:{}", sock.display());
    ok(runseal(&addr, &key, &["secrets", "list"]));
    let page = common::http_get(&web, "/login");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Sign in to runseal"));
    common::signal(&activator, "TERM");
    let status = activator.wait().unwrap();
    let mut log = String::new();
    activator
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}: {log}");
    assert!(log.contains("dashboard listening"), "{log}");
}
