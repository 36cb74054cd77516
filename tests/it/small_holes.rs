//! Smaller holes from the review: bounded allow-lists, key labels, RevokeRunnerToken's scope
//! check, CLI usage errors and closed pipes, and connection errors that name the address and the
//! likely cause.

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{pki, runseal, stderr, Daemon, TestServer, RUNSEAL};
use runseal::client::{Client, IssueOptions};
use runseal::secret::SecretBytes;
use tonic::Code;

#[tokio::test]
async fn snapshot_allow_lists_are_bounded_like_build_names() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    admin
        .secrets()
        .set("A_NAME", SecretBytes::from(b"v".to_vec()), "main")
        .await
        .unwrap();
    let key = server.key_with(&["snapshot:main"]).await;
    let c = server.client(&key).await;
    let many: Vec<String> = (0..1001).map(|i| format!("N{i}")).collect();
    let err = c
        .runners()
        .snapshot("main", "", &many)
        .await
        .expect_err("1,001 names");
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("1000"), "{err}");
    // At the bound, the names are checked as usual (here: not set).
    let err = c
        .runners()
        .snapshot("main", "", &many[..1000])
        .await
        .expect_err("names not set");
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let err = admin
        .runners()
        .issue(
            "main",
            IssueOptions {
                only: many.clone(),
                ..IssueOptions::default()
            },
        )
        .await
        .expect_err("1,001 names in a token's allow-list");
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn key_labels_refuse_control_and_bidi_characters() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    let scopes = vec!["read:main".to_string()];
    for bad in [
        "ci\u{202E}yek",
        "a\u{2066}b",
        "a\u{2069}",
        "a\u{200F}b",
        "a\u{200E}",
        "a\u{061C}",
        "line\nbreak",
        "esc\u{1b}[31m",
        "zero\u{200B}width",
    ] {
        let err = admin
            .keys()
            .create(&scopes, bad)
            .await
            .expect_err("refused label");
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
        assert!(err.to_string().contains("label"), "{err}");
    }
    admin
        .keys()
        .create(&scopes, "CI deploy — Zürich (東京)")
        .await
        .expect("an ordinary label");
    server.stop().await;
}

#[tokio::test]
async fn revoking_a_token_checks_scope_before_telling_whether_it_exists() {
    let server = TestServer::start().await;
    let admin = server.admin_client().await;
    admin.environments().create("production").await.unwrap();
    let prod_token = admin
        .runners()
        .issue("production", IssueOptions::default())
        .await
        .unwrap()
        .remove(0);

    // A key that may issue for main only: a production token and a made-up id look the same.
    let staging = server.key_with(&["issue:main"]).await;
    let c = server.client(&staging).await;
    let existing = c
        .runners()
        .revoke(&prod_token.token_id)
        .await
        .expect_err("out of scope");
    let missing = c
        .runners()
        .revoke("rt_00000000deadbeef")
        .await
        .expect_err("no such token");
    assert_eq!(existing.code(), missing.code(), "{existing} / {missing}");
    let scrub = |e: &runseal::client::ClientError, id: &str| e.to_string().replace(id, "ID");
    assert_eq!(
        scrub(&existing, &prod_token.token_id),
        scrub(&missing, "rt_00000000deadbeef")
    );

    // A key with no issue scope at all is refused before any lookup.
    let reader = server.key_with(&["read:main"]).await;
    let c = server.client(&reader).await;
    for id in [prod_token.token_id.as_str(), "rt_00000000deadbeef"] {
        let err = c.runners().revoke(id).await.expect_err("no scope");
        assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    }

    // The token is still good, and an admin can revoke it.
    admin.runners().revoke(&prod_token.token_id).await.unwrap();
    server.stop().await;
}

#[test]
fn runner_token_issue_count_zero_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[], &[]);
    let out = runseal(
        &d.addr,
        &d.admin_key(),
        &["runner-token", "issue", "--count", "0"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "a token was printed");
    assert!(stderr(&out).contains("--count"), "{}", stderr(&out));
    let audit = runseal(&d.addr, &d.admin_key(), &["audit", "--output", "json"]);
    assert!(
        !String::from_utf8_lossy(&audit.stdout).contains("runner-token.issue"),
        "a token was minted"
    );
}

#[test]
fn completions_into_a_closed_pipe_do_not_panic() {
    let mut child = Command::new(RUNSEAL)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success(), "{status:?}: {err}");
}

fn cli_error(addr: &str, key: &str, extra: &[&str]) -> String {
    let mut args = extra.to_vec();
    args.extend(["secrets", "list"]);
    let out = runseal(addr, key, &args);
    assert!(!out.status.success());
    stderr(&out)
}

#[test]
fn connection_errors_name_the_address_and_the_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let cert = p.server_cert.to_str().unwrap();
    let key = p.server_key.to_str().unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--tls-cert", cert, "--tls-key", key],
        &[],
    );
    let admin = d.admin_key();
    let port = d.addr.rsplit(':').next().unwrap().to_string();

    // Plaintext to the TLS port.
    let plain = format!("http://127.0.0.1:{port}");
    let err = cli_error(&plain, &admin, &[]);
    assert!(err.contains(&plain) && err.contains("https://"), "{err}");

    // A port that is not runseald: an HTTP/1 server, and TLS to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let http1 = format!("http://{other}");
    let err = cli_error(&http1, &admin, &[]);
    assert!(
        err.contains(&http1) && err.contains("not runseald"),
        "{err}"
    );
    let https = format!("https://{other}");
    let err = cli_error(&https, &admin, &[]);
    assert!(
        err.contains(&https) && err.contains("does not speak TLS"),
        "{err}"
    );
    // Nothing listening.
    drop(d);
    let err = cli_error(&plain, &admin, &[]);
    assert!(
        err.contains(&plain) && err.contains("nothing listens"),
        "{err}"
    );
}

#[test]
fn a_ca_certificate_used_as_the_server_certificate_is_named() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "runseal test CA");
    let ca = params.self_signed(&key).unwrap();
    let ca_path = dir.path().join("ca.pem");
    let key_path = dir.path().join("ca.key");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            ca_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &[],
    );
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    let addr = format!("https://localhost:{port}");
    let err = cli_error(
        &addr,
        &d.admin_key(),
        &["--ca-cert", ca_path.to_str().unwrap()],
    );
    assert!(
        err.contains(&addr) && err.contains("CA certificate as its own"),
        "{err}"
    );
    // The library's error says the same.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut opts = runseal::client::ConnectOptions::new(
        addr.clone(),
        runseal::auth::Credential::parse(&d.admin_key()).unwrap(),
    );
    opts.ca_cert = Some(ca_path.clone());
    let err = rt
        .block_on(Client::connect_with(opts))
        .expect_err("a CA as the server certificate");
    assert!(err.to_string().contains("CA certificate"), "{err}");
}

#[test]
fn usage_errors_never_echo_a_credential() {
    let secret = "rk_0123456789abcdef:usage-error-secret-value";
    for args in [
        vec!["secrets", "list", secret],
        vec![secret],
        vec!["secrets", "list", "--env", "main", "--bogus", secret],
    ] {
        let out = Command::new(RUNSEAL)
            .args(&args)
            .env_remove("RUNSEAL_KEY")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("usage-error-secret-value"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
