//! Hostile clients against the real runseald binary: streams that announce large messages
//! without a key, connections that never send anything, and a descriptor limit reached by
//! connections that do nothing. Each must cost runseald little, and service must go on.
//! The raw HTTP/2 client is the `h2` crate, so the test controls every frame.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ok, runseal, Daemon};

/// The decode cap runseald derives from the default limits (what a stranger announces).
fn decode_cap() -> usize {
    runseal::grpc::max_request_bytes(&runseal::names::Limits::default())
}

fn write_config(dir: &Path, net: &str) -> String {
    common::write_config(dir, &format!("[net]\n{net}\n"))
}

fn socket_addr(d: &Daemon) -> SocketAddr {
    d.addr.trim_start_matches("http://").parse().unwrap()
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The value of one metric (a line `NAME VALUE`) from runseald's /metrics.
fn metric(addr: &str, name: &str) -> f64 {
    let text = common::http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// An authorised `secrets list` succeeds within `within` (retried while runseald recovers).
fn service_answers(d: &Daemon, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let out = runseal(&d.addr, key, &["secrets", "list"]);
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "runseald did not answer an authorised call within {within:?}: {}\n{}",
            common::stderr(&out),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (a) 8 connections, each with as many streams as the cap allows, each sending only a gRPC
/// prefix that announces just under the decode cap, and no key: runseald must not reserve
/// those buffers, and an authorised call on another connection answers meanwhile.
#[test]
fn announced_messages_without_a_key_cost_no_memory() {
    const CONNECTIONS: usize = 8;
    const STREAMS: u32 = 64;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("max_concurrent_streams = {STREAMS}"));
    let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["secrets", "set", "K=v"]));
    service_answers(&d, &key, Duration::from_secs(5));
    let pid = d.child.id();
    let before = status_kib(pid, "VmRSS");
    let announced = (decode_cap() - 1) as u32;
    let addr = socket_addr(&d);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answered = rt.block_on(async move {
        let mut responses = Vec::new();
        let mut keep = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, conn) = h2::client::handshake(tcp).await.unwrap();
            tokio::spawn(async move {
                let _ = conn.await;
            });
            for _ in 0..STREAMS {
                let mut client = client.clone().ready().await.unwrap();
                let req = http::Request::builder()
                    .method("POST")
                    .uri(format!("http://{addr}/runseal.v1.Secrets/SetSecrets"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap();
                let (resp, mut send) = client.send_request(req, false).unwrap();
                let mut prefix = vec![0u8];
                prefix.extend_from_slice(&announced.to_be_bytes());
                // The server may answer (UNAUTHENTICATED, from the headers) and end the stream
                // before the prefix is sent: then h2 refuses the send as an inactive stream.
                // Anything else is a failure; the answers are checked below.
                if let Err(e) = send.send_data(Bytes::from(prefix), false) {
                    assert!(
                        format!("{e:?}").contains("InactiveStreamId"),
                        "sending the prefix failed: {e}"
                    );
                }
                responses.push(resp);
                keep.push(send);
            }
            clients.push(client);
        }
        // Every stream is answered (UNAUTHENTICATED) without its body; a server that waits
        // for the announced bytes answers none of them.
        let mut codes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        for resp in responses {
            match tokio::time::timeout_at(deadline, resp).await {
                Ok(Ok(r)) => codes.push(
                    r.headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string(),
                ),
                Ok(Err(e)) => codes.push(format!("error: {e}")),
                Err(_) => codes.push("no answer".to_string()),
            }
        }
        (codes, (keep, clients))
    });
    let (codes, keep) = answered;
    // Another connection, with a key, while the strangers' streams are open.
    service_answers(&d, &key, Duration::from_secs(5));
    let after = status_kib(pid, "VmRSS");
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("runseald RSS: {before} KiB before, {after} KiB with the streams open");
    assert!(
        grown_mib < 64,
        "runseald grew by {grown_mib} MiB (from {before} KiB to {after} KiB) for streams without a key"
    );
    let unauthenticated = codes.iter().filter(|c| c.as_str() == "16").count();
    assert_eq!(
        unauthenticated,
        CONNECTIONS * STREAMS as usize,
        "every stream without a key is refused as UNAUTHENTICATED from its headers: {:?}",
        codes.iter().find(|c| c.as_str() != "16")
    );
    drop(keep);
    drop(rt);
}

/// (b) More idle connections than the connection cap: runseald closes them within the idle
/// deadline (some completed the HTTP/2 handshake, some hold a health watch open, some never
/// sent a byte), and an authorised call is served afterwards.
#[test]
fn idle_connections_beyond_the_cap_are_closed_and_service_resumes() {
    const CAP: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "max_connections = {CAP}\nhandshake_timeout = \"1s\"\nidle_timeout = \"30s\"\nunauthenticated_idle_timeout = \"1s\""
        ),
    );
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--config", &config, "--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let key = d.admin_key();
    service_answers(&d, &key, Duration::from_secs(5));
    let metrics = d.metrics_addr();
    let idle_closed_before = metric(&metrics, "runseal_connections_idle_closed_total");
    let addr = socket_addr(&d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let closed_after = rt.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..CAP * 2 {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            if i % 3 == 0 {
                // HTTP/2 handshake done, then silence.
                let (client, conn) = h2::client::handshake(tcp).await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let _ = conn.await;
                    drop(client);
                    started.elapsed()
                }));
            } else if i % 3 == 1 {
                // A health watch, which answers without a key and never ends: it must not
                // keep the connection.
                let (client, conn) = h2::client::handshake(tcp).await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let driver = tokio::spawn(conn);
                    let mut client = client.ready().await.unwrap();
                    let req = http::Request::builder()
                        .method("POST")
                        .uri(format!("http://{addr}/grpc.health.v1.Health/Watch"))
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .body(())
                        .unwrap();
                    let (resp, mut send) = client.send_request(req, false).unwrap();
                    send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                        .unwrap();
                    let _resp = resp.await;
                    let _ = driver.await;
                    started.elapsed()
                }));
            } else {
                // Not a byte: runseald sees EOF from us never, so it must close the socket.
                tasks.push(tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut tcp = tcp;
                    let mut buf = [0u8; 256];
                    while let Ok(n) = tcp.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    started.elapsed()
                }));
            }
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .map(|r| r.unwrap()),
            );
        }
        out
    });
    // The first CAP are closed after about a second (two with the goodbye of a watch); the
    // rest wait in the backlog for a slot and are closed as long after that.
    for (i, c) in closed_after.iter().enumerate() {
        let elapsed = c
            .as_ref()
            .unwrap_or_else(|_| panic!("idle connection {i} was still open after 10 s"));
        assert!(
            *elapsed < Duration::from_secs(6),
            "idle connection {i} closed only after {elapsed:?}"
        );
    }
    service_answers(&d, &key, Duration::from_secs(5));
    let idle_closed =
        metric(&metrics, "runseal_connections_idle_closed_total") - idle_closed_before;
    assert_eq!(idle_closed, (CAP * 2) as f64, "closes counted in metrics");
    // The CLI's connection too ends once it exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&metrics, "runseal_connections_open") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "connections still counted as open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(rt);
}

/// (c) At a low descriptor limit, connections that do nothing exhaust runseald's descriptors:
/// it must back off instead of retrying `accept` at once, and serve again when they go away.
#[test]
fn at_the_descriptor_limit_runseald_backs_off_and_recovers() {
    const NOFILE: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    // Deadlines long enough that runseald closes nothing on its own during the measurement.
    let config = write_config(
        dir.path(),
        "handshake_timeout = \"60s\"\nunauthenticated_idle_timeout = \"60s\"",
    );
    let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
    let key = d.admin_key();
    service_answers(&d, &key, Duration::from_secs(5));
    let pid = d.child.id();
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
    let addr = socket_addr(&d);
    // More connections than runseald has descriptors: the kernel queues them in the backlog.
    let mut conns = Vec::new();
    for _ in 0..NOFILE + 16 {
        conns.push(std::net::TcpStream::connect(addr).unwrap());
    }
    // Wait until runseald has taken every descriptor it can.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds(pid) < NOFILE - 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        open_fds(pid) >= NOFILE - 1,
        "runseald holds only {} descriptors",
        open_fds(pid)
    );
    let hz = ticks_per_second();
    let t0 = cpu_ticks(pid);
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(2)); // the measurement window itself
    let used = (cpu_ticks(pid) - t0) as f64 / hz as f64;
    let share = used / wall.elapsed().as_secs_f64();
    assert!(
        share < 0.10,
        "runseald used {:.0}% of a core while out of descriptors\n{}",
        share * 100.0,
        d.log()
    );
    let warnings = d.log().matches("cannot accept").count();
    assert!(
        warnings <= 3,
        "the accept failure is logged once per interval, not {warnings} times"
    );
    drop(conns);
    service_answers(&d, &key, Duration::from_secs(10));
}

/// One raw gRPC call on a connection of its own: `body` is sent as it is (prefix included),
/// ending the stream when `end`. Returns grpc-status and grpc-message (from the headers or the
/// trailers), or "no answer" after 10 s.
fn raw_call(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
    end: bool,
) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = path.to_string();
    let authorization = authorization.map(str::to_string);
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(a) = &authorization {
            req = req.header("authorization", a.as_str());
        }
        let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
        // A refusal from the headers may end the stream before the body is sent (h2 then
        // refuses the send as an inactive stream); the answer is checked below either way.
        if let Err(e) = send.send_data(Bytes::from(body), end) {
            assert!(
                format!("{e:?}").contains("InactiveStreamId"),
                "sending the body failed: {e}"
            );
        }
        let header =
            |r: &http::HeaderMap, k: &str| r.get(k).map(|v| v.to_str().unwrap().to_string());
        let answer = async {
            let resp = resp.await.unwrap();
            if let Some(code) = header(resp.headers(), "grpc-status") {
                return (
                    code,
                    header(resp.headers(), "grpc-message").unwrap_or_default(),
                );
            }
            let mut body = resp.into_body();
            while body.data().await.is_some() {}
            let trailers = body.trailers().await.unwrap().unwrap_or_default();
            (
                header(&trailers, "grpc-status").unwrap_or_default(),
                header(&trailers, "grpc-message").unwrap_or_default(),
            )
        };
        let out = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .unwrap_or_else(|_| ("no answer".to_string(), String::new()));
        drop(send);
        out
    })
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// Bytes that are not a protobuf message, from an authorised caller: INVALID_ARGUMENT (the
/// caller's mistake), not INTERNAL.
#[test]
fn an_undecodable_request_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let bearer = format!("Bearer {}", d.admin_key());
    // A 7-byte message: field 2 (`secrets`) announcing 100 bytes it does not have.
    let garbage: &[u8] = &[0x12, 100, 0xff, 0xff, 0xff, 0xff, 0xff];
    let (code, message) = raw_call(
        socket_addr(&d),
        "/runseal.v1.Secrets/SetSecrets",
        Some(&bearer),
        framed(garbage),
        true,
    );
    assert_eq!(
        code, "3",
        "INVALID_ARGUMENT expected, got {code}: {message}"
    );
    assert!(message.contains("not%20a%20valid"), "{message}");
}

/// An authorised caller is bounded too: a prefix announcing one byte more than the decode cap
/// is refused from the prefix alone (RESOURCE_EXHAUSTED), and a made-up runner token gets no
/// body buffer either.
#[test]
fn the_decode_cap_bounds_authorised_callers_and_made_up_tokens_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let bearer = format!("Bearer {}", d.admin_key());
    let addr = socket_addr(&d);
    let over = ((decode_cap() + 1) as u32).to_be_bytes();
    let (code, message) = raw_call(
        addr,
        "/runseal.v1.Secrets/SetSecrets",
        Some(&bearer),
        [&[0u8][..], &over].concat(),
        false,
    );
    assert_eq!(
        code, "8",
        "RESOURCE_EXHAUSTED expected, got {code}: {message}"
    );
    let under = ((decode_cap() - 1) as u32).to_be_bytes();
    let made_up = format!("Bearer rt_0123456789abcdef:{}", "a".repeat(64));
    let (code, message) = raw_call(
        addr,
        "/runseal.v1.Runners/GetSnapshot",
        Some(&made_up),
        [&[0u8][..], &under].concat(),
        false,
    );
    assert_eq!(
        code, "16",
        "UNAUTHENTICATED expected, got {code}: {message}"
    );
    assert!(message.contains("invalid%20runner%20token"), "{message}");
}

/// TLS handshakes in progress count against the connection cap: two connections that never
/// send a ClientHello fill a cap of two, an authorised call waits in the backlog meanwhile, and
/// it is answered once they go away.
#[test]
fn tls_handshakes_in_progress_count_against_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path());
    let config = write_config(
        dir.path(),
        "max_connections = 2\nhandshake_timeout = \"60s\"",
    );
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--config",
            &config,
            "--tls-cert",
            pki.server_cert.to_str().unwrap(),
            "--tls-key",
            pki.server_key.to_str().unwrap(),
        ],
        &[],
    );
    let key = d.admin_key();
    let addr = socket_addr(&d);
    let https = d.addr.replace("http://127.0.0.1", "https://localhost");
    let silent: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Two pending handshakes fill a cap of two.
    d.wait_for_log("connection cap reached", Duration::from_secs(5));
    let mut call = std::process::Command::new(common::RUNSEAL)
        .args(["--ca-cert", pki.ca.to_str().unwrap(), "secrets", "list"])
        .env("RUNSEAL_ADDR", &https)
        .env("RUNSEAL_KEY", &key)
        .env_remove("RUNSEAL_CA_CERT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1)); // the window in which it must still wait
    assert!(
        call.try_wait().unwrap().is_none(),
        "a call was served while the cap was full of pending handshakes"
    );
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = call.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the call was not served after the slots freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the waiting call failed");
}

/// After an authenticated call a connection gets the longer idle deadline, and a call in
/// flight keeps it open however long it lasts; once nothing is in flight for the idle deadline,
/// runseald closes it.
#[test]
fn authenticated_connections_get_the_longer_deadline_and_calls_in_flight_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "unauthenticated_idle_timeout = \"1s\"\nidle_timeout = \"3s\"",
    );
    let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
    let bearer = format!("Bearer {}", d.admin_key());
    let addr = socket_addr(&d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(conn);
        let request = |path: &str| {
            http::Request::builder()
                .method("POST")
                .uri(format!("http://{addr}{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("authorization", bearer.as_str())
                .body(())
                .unwrap()
        };
        // A whole call; returns its grpc-status.
        let call = |client: h2::client::SendRequest<Bytes>| {
            let req = request("/runseal.v1.Environments/ListEnvironments");
            async move {
                let mut client = client.ready().await.unwrap();
                let (resp, mut send) = client.send_request(req, false).unwrap();
                send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                    .unwrap();
                let mut body = resp.await.unwrap().into_body();
                while body.data().await.is_some() {}
                let trailers = body.trailers().await.unwrap().unwrap_or_default();
                trailers
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            }
        };
        assert_eq!(call(client.clone()).await, "0");
        // Past the unauthenticated deadline, within the authenticated one.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        assert!(
            !driver.is_finished(),
            "closed at the unauthenticated deadline"
        );
        // A call in flight (its message announced, not all sent) for longer than the idle
        // deadline: the connection stays, and takes new calls.
        let mut c = client.clone().ready().await.unwrap();
        let (resp, mut held) = c
            .send_request(request("/runseal.v1.Secrets/SetSecrets"), false)
            .unwrap();
        held.send_data(Bytes::from_static(&[0, 0, 0, 0, 10, 0x0a]), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!driver.is_finished(), "closed with a call in flight");
        assert_eq!(
            call(client.clone()).await,
            "0",
            "a new call on the same connection"
        );
        held.send_reset(h2::Reason::CANCEL);
        drop(resp);
        // Nothing in flight now: closed after the idle deadline (and the goodbye's grace).
        let quiet = Instant::now();
        tokio::time::timeout(Duration::from_secs(8), driver)
            .await
            .expect("an idle authenticated connection was not closed")
            .unwrap()
            .ok();
        assert!(
            quiet.elapsed() >= Duration::from_millis(2500),
            "closed {:?} after its last call, before the idle deadline",
            quiet.elapsed()
        );
        drop(client);
    });
}
