//! runseald as deployed: TLS and client certificates (real rustls, certificates made by the
//! test), the loopback-only plaintext rule, Unix sockets, the config file, health, reflection.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{ok, pki, runseal, stderr, Daemon, AGENT};

fn https(addr: &str) -> String {
    addr.replace("http://127.0.0.1", "https://localhost")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn tls_serves_the_cli_and_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ],
        &[],
    );
    let key = d.admin_key();
    let addr = https(&d.addr);
    ok(runseal(
        &addr,
        &key,
        &["--ca-cert", s(&pki.ca), "secrets", "set", "K=over-tls"],
    ));
    let list = ok(runseal(
        &addr,
        &key,
        &["--ca-cert", s(&pki.ca), "secrets", "list"],
    ));
    assert!(list.contains("K"));

    // Without the CA the server's certificate is not trusted.
    let out = runseal(&addr, &key, &["secrets", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach runseald"),
        "{}",
        stderr(&out)
    );
    // Plaintext against the TLS port fails too.
    let out = runseal(&d.addr, &key, &["secrets", "list"]);
    assert_eq!(out.status.code(), Some(1));

    // The agent over TLS.
    let token = ok(runseal(
        &addr,
        &key,
        &["--ca-cert", s(&pki.ca), "runner-token", "issue"],
    ));
    let out = Command::new(AGENT)
        .args([
            "--addr",
            &addr,
            "--ca-cert",
            s(&pki.ca),
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ])
        .env("RUNSEAL_TOKEN", token.trim())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-tls");
}

#[test]
fn client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
            "--tls-client-ca",
            s(&pki.ca),
        ],
        &[],
    );
    let key = d.admin_key();
    let addr = https(&d.addr);
    let without = runseal(&addr, &key, &["--ca-cert", s(&pki.ca), "secrets", "list"]);
    assert_eq!(
        without.status.code(),
        Some(1),
        "no client certificate must be refused"
    );
    let with = runseal(
        &addr,
        &key,
        &[
            "--ca-cert",
            s(&pki.ca),
            "--client-cert",
            s(&pki.client_cert),
            "--client-key",
            s(&pki.client_key),
            "secrets",
            "list",
        ],
    );
    ok(with);
}

#[test]
fn plaintext_is_refused_off_loopback_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = Daemon::try_start(&data, &["--listen", "0.0.0.0:0"], &[])
        .err()
        .expect("plaintext on 0.0.0.0 must be refused");
    assert!(log.contains("refusing plaintext gRPC"), "{log}");
    assert!(
        log.contains("--tls-cert"),
        "the message says what to do: {log}"
    );

    let d = Daemon::start(
        &data,
        &["--listen", "0.0.0.0:0", "--insecure-plaintext"],
        &[],
    );
    assert!(
        d.log().contains("PLAINTEXT"),
        "a warning is logged: {}",
        d.log()
    );
}

/// A scale-up connects hundreds of runners at once. While runseald is too busy to accept (here:
/// stopped with SIGSTOP), the kernel must queue their connections rather than drop their SYNs,
/// which would make each dropped runner wait a second for the retransmit.
#[test]
fn a_burst_of_connections_is_queued_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let addr: std::net::SocketAddr = d.addr.strip_prefix("http://").unwrap().parse().unwrap();
    common::signal(&d.child, "STOP");
    // The kernel caps every backlog at net.core.somaxconn (4096 on kernels since 5.4); 300
    // connections are well past tokio's default of 128.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map(|s| s.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    let burst = 300.min(somaxconn);
    assert!(
        burst > 128,
        "net.core.somaxconn is {somaxconn}: raise it to test the backlog"
    );
    let mut queued = Vec::new();
    let mut refused = None;
    for i in 0..burst {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)) {
            Ok(c) => queued.push(c),
            Err(e) => {
                refused = Some(format!("connection {i} of {burst}: {e}"));
                break;
            }
        }
    }
    common::signal(&d.child, "CONT");
    assert_eq!(
        refused, None,
        "runseald's accept queue dropped a connection"
    );
    drop(queued);
    // It still serves once it runs again.
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["secrets", "set", "K=v"]));
}

#[test]
fn unix_socket_serves_with_mode_0660() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("runseald.sock");
    let d = Daemon::start(&dir.path().join("data"), &["--unix", s(&sock)], &[]);
    assert_eq!(d.addr, format!("unix:{}", sock.display()));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let key = d.admin_key();
    ok(runseal(&d.addr, &key, &["secrets", "set", "K=v"]));
    assert!(ok(runseal(&d.addr, &key, &["secrets", "list"])).contains("K"));
}

#[test]
fn config_file_is_strict_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "listen = \"127.0.0.1:0\"\nmax_value_byte = 5\n").unwrap();
    let log = Daemon::try_start(&data, &["--config", s(&typo)], &[])
        .err()
        .expect("an unknown field must be refused");
    assert!(
        log.contains("max_value_byte"),
        "the message names the field: {log}"
    );

    let good = dir.path().join("runseald.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:1\"\ndenied_names = [\"NODE_OPTIONS\"]\n[limits]\nmax_value_bytes = 8\n",
    )
    .unwrap();
    // --listen overrides the file's port 1.
    let d = Daemon::start(
        &data,
        &["--config", s(&good), "--listen", "127.0.0.1:0"],
        &[],
    );
    let key = d.admin_key();
    ok(runseal(
        &d.addr,
        &key,
        &["secrets", "set", "SHORT=12345678"],
    ));
    let long = runseal(&d.addr, &key, &["secrets", "set", "LONG=123456789"]);
    assert_eq!(long.status.code(), Some(1));
    assert!(
        stderr(&long).contains("limit is 8 bytes"),
        "{}",
        stderr(&long)
    );
    let denied = runseal(&d.addr, &key, &["secrets", "set", "NODE_OPTIONS=x"]);
    assert_eq!(denied.status.code(), Some(1));
    // The configured list replaced the default one.
    ok(runseal(&d.addr, &key, &["secrets", "set", "BASH_ENV=x"]));
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for sig in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), &[], &[]);
        ok(runseal(&d.addr, &d.admin_key(), &["secrets", "set", "K=v"]));
        common::signal(&d.child, sig);
        let mut d = d;
        let status = d.child.wait().unwrap();
        assert!(status.success(), "SIG{sig}: {status:?}");
        d.wait_for_log("shut down", std::time::Duration::from_secs(10));
    }
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_key() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = common::TestServer::start().await;
    let channel = tonic::transport::Endpoint::from_shared(server.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "runseal.v1.Secrets"] {
        let res = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(res.status(), ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let res = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = res.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "runseal.v1.Secrets",
        "runseal.v1.Runners",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
