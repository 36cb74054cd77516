//! The dashboard over HTTP, against the in-process server: signing in, sessions, the CSRF,
//! Origin and Host checks, the security headers, scopes, bad input, and that no response ever
//! carries a value. (The browser tests drive the same pages in Chromium: `dashboard_browser`.)

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::web::{form, WebClient, WebResponse};
use common::TestServer;
use runseal::client::Client;
use runseal::service::ManualClock;

/// The values one environment serves now, through a `snapshot:ENV` key.
async fn values(s: &TestServer, env: &str) -> Vec<(String, String)> {
    let key = s.key_with(&[&format!("snapshot:{env}")]).await;
    let c = Client::connect(&s.addr, key).await.unwrap();
    let snap = c.runners().snapshot(env, "", &[]).await.unwrap();
    snap.secrets
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
        .collect()
}

async fn signed_in(s: &TestServer) -> WebClient {
    let mut web = WebClient::new(&s.web_addr);
    let res = web.sign_in(&s.admin.to_line()).await;
    assert_eq!(res.status, 303, "{}", res.body);
    web
}

async fn audit_len(s: &TestServer) -> usize {
    s.store.list_audit(None, 1000).await.unwrap().len()
}

fn assert_no_values(web: &WebClient, values: &[&str]) {
    for (i, raw) in web.seen.iter().enumerate() {
        for (j, v) in values.iter().enumerate() {
            assert!(
                !raw.contains(v),
                "response {i} carried value number {j} (not printed)"
            );
        }
    }
}

#[tokio::test]
async fn without_a_session_every_page_leads_to_the_sign_in_form() {
    let s = TestServer::start().await;
    let mut web = WebClient::new(&s.web_addr);
    for path in [
        "/",
        "/environments",
        "/environments/main",
        "/keys",
        "/audit",
    ] {
        let res = web.get(path).await;
        assert_eq!(res.status, 303, "{path}");
        assert_eq!(res.header("location"), Some("/login"), "{path}");
    }
    let login = web.get("/login").await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains(r#"name="key""#));
    assert!(login.body.contains(r#"type="password""#));
    // The form carries a pre-session CSRF token bound to a pre-session cookie.
    assert_eq!(login.csrf().len(), 64);
    let pre = login.set_cookies();
    assert!(
        pre.iter().any(|c| c.starts_with("runseal_login=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Strict")),
        "{pre:?}"
    );
}

#[tokio::test]
async fn signing_in_sets_a_strict_session_cookie_and_lands_on_main() {
    let s = TestServer::start().await;
    let mut web = WebClient::new(&s.web_addr);
    let res = web.sign_in(&s.admin.to_line()).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.header("location"), Some("/environments/main"));
    let cookie = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("runseal_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing");
    }
    assert!(!cookie.contains("Secure"), "plaintext loopback: not Secure");
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    // 256 random bits, base64url.
    assert_eq!(value.len(), 43);
    // The session is stored only as a hash.
    let db = std::fs::read(s.dir.path().join("data/runseal.db")).unwrap();
    assert!(!common::contains(&db, value.as_bytes()));
    let page = web.get("/environments/main").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(s.admin.key_id()));
    // Sign-ins are audited, marked as the dashboard's.
    let audit = s.store.list_audit(None, 10).await.unwrap();
    let sign_in = audit.iter().find(|a| a.action == "web.sign_in").unwrap();
    assert_eq!(sign_in.key_id, s.admin.key_id());
    assert_eq!(sign_in.via.as_deref(), Some("dashboard"));
}

#[tokio::test]
async fn a_failed_sign_in_looks_the_same_whatever_was_wrong() {
    let s = TestServer::start().await;
    let other = s.key_with(&["read:main"]).await;
    let revoked = s.key_with(&["read:main"]).await;
    s.admin_client()
        .await
        .keys()
        .revoke(revoked.key_id())
        .await
        .unwrap();
    let wrong_secret = format!("{}:{}", other.key_id(), "x".repeat(43));
    let mut bodies = Vec::new();
    for key in [
        "rk_nosuchkey:abcdef".to_string(),
        wrong_secret,
        revoked.to_line().to_string(),
        "not a key".to_string(),
    ] {
        let mut web = WebClient::new(&s.web_addr);
        let res = web.sign_in(&key).await;
        assert_eq!(res.status, 401);
        assert!(res.body.contains("Sign-in failed"), "{}", res.body);
        assert!(!web.cookies.iter().any(|(k, _)| k == "runseal_session"));
        // The same page but for its fresh CSRF token.
        bodies.push(res.body.replace(&res.csrf(), ""));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn a_runner_token_cannot_sign_in_and_is_told_so() {
    let s = TestServer::start().await;
    let token = s
        .admin_client()
        .await
        .runners()
        .issue("main", Default::default())
        .await
        .unwrap()
        .remove(0);
    let mut web = WebClient::new(&s.web_addr);
    let res = web.sign_in(&token.token.to_line()).await;
    assert_eq!(res.status, 401);
    assert!(res.body.contains("runner token"), "{}", res.body);
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_address() {
    let s = TestServer::start().await;
    let mut web = WebClient::new(&s.web_addr);
    for _ in 0..10 {
        assert_eq!(web.sign_in("rk_nosuch:secret").await.status, 401);
    }
    // Even the right key is refused now, with a page that says why.
    let res = web.sign_in(&s.admin.to_line()).await;
    assert_eq!(res.status, 429);
    assert!(res.body.contains("Too many failed sign-ins"));
}

#[tokio::test]
async fn the_sign_in_form_needs_its_csrf_token_and_the_dashboards_origin() {
    let s = TestServer::start().await;
    let key = s.admin.to_line();
    // No pre-session token.
    let mut web = WebClient::new(&s.web_addr);
    let res = web.post("/login", &[("key", &key)]).await;
    assert_eq!(res.status, 403);
    assert!(!web.cookies.iter().any(|(k, _)| k == "runseal_session"));
    // A token, but posted from another origin (login CSRF).
    let mut web = WebClient::new(&s.web_addr);
    let csrf = web.get("/login").await.csrf();
    let body = form(&[("csrf", &csrf), ("key", &key)]);
    let res = web
        .post_with(
            "/login",
            &[("Origin", "http://127.0.0.1:1")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(res.status, 403);
    assert!(!web.cookies.iter().any(|(k, _)| k == "runseal_session"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let s = TestServer::start().await;
    let mut web = WebClient::new(&s.web_addr);
    let mut responses = vec![
        web.get("/").await,
        web.get("/login").await,
        web.get("/assets/style.css").await,
        web.get("/no/such/page").await,
        web.post("/login", &[("key", "x")]).await,
    ];
    let mut signed = signed_in(&s).await;
    responses.push(signed.get("/environments").await);
    responses.push(signed.get("/environments/main").await);
    responses.push(signed.get("/environments/nope").await);
    responses.push(signed.post("/environments", &[("name", "x")]).await);
    for (i, r) in responses.iter().enumerate() {
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{i}: no CSP"));
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{i}: {part} missing from {csp}");
        }
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{i}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{i}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{i}");
        // No inline script or style anywhere.
        assert!(
            !r.body.contains("<script>") && !r.body.contains("style="),
            "{i}"
        );
    }
}

#[tokio::test]
async fn a_host_the_dashboard_does_not_serve_is_refused() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let port = s.web_addr.rsplit(':').next().unwrap().to_string();
    // DNS rebinding: the attacker's name resolving to 127.0.0.1.
    let res = web
        .request(
            "GET",
            "/environments/main",
            &[("Host", &format!("attacker.example:{port}"))],
            b"",
        )
        .await;
    assert_eq!(res.status, 421);
    assert!(!res.body.contains("<table"));
    let res = web
        .request(
            "GET",
            "/login",
            &[("Host", &format!("localhost:{port}"))],
            b"",
        )
        .await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn secrets_are_added_overwritten_and_deleted_through_forms() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let res = web
        .post("/environments", &[("csrf", &csrf), ("name", "staging")])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let set = |name: &'static str, value: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.into()),
            ("value", value.into()),
        ]
    };
    for (n, v) in [("API_KEY", "value-one-0001"), ("DB_URL", "value-two-0002")] {
        let f = set(n, v);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = web.post("/environments/staging/secrets", &f).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let page = web.get(res.header("location").unwrap()).await;
        assert!(page.body.contains(&format!("Saved {n}.")));
    }
    // Overwrite; a multi-line value from a textarea (CRLF) is stored with LF.
    let res = web
        .post(
            "/environments/staging/secrets",
            &[
                ("csrf", &csrf),
                ("name", "API_KEY"),
                ("value", ""),
                ("value", "line-a-0003\r\nline-b-0004"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let res = web
        .post(
            "/environments/staging/secrets/DB_URL/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(
        values(&s, "staging").await,
        vec![(
            "API_KEY".to_string(),
            "line-a-0003\nline-b-0004".to_string()
        )]
    );
    let page = web.get("/environments/staging").await;
    assert!(page.body.contains("API_KEY") && !page.body.contains("DB_URL"));
    assert_no_values(
        &web,
        &[
            "value-one-0001",
            "value-two-0002",
            "line-a-0003",
            "line-b-0004",
        ],
    );
    // Every change is audited as the dashboard's.
    let audit = s.store.list_audit(Some("staging"), 100).await.unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.via.as_deref()))
        .collect();
    for want in ["secrets.set", "secrets.unset", "environment.create"] {
        assert!(
            actions.contains(&(want, Some("dashboard"))),
            "{want}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_pasted_block_is_stored_as_one_batch_or_not_at_all() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let block = "# pasted\r\nONE=bulk-value-0001\r\nexport TWO='bulk-value-0002'\r\nTHREE=\"bulk $HOME 0003\"\r\n";
    let res = web
        .post(
            "/environments/main/secrets",
            &[("csrf", &csrf), ("bulk", block)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let mut got = values(&s, "main").await;
    got.sort();
    assert_eq!(
        got,
        vec![
            ("ONE".to_string(), "bulk-value-0001".to_string()),
            ("THREE".to_string(), "bulk $HOME 0003".to_string()),
            ("TWO".to_string(), "bulk-value-0002".to_string()),
        ]
    );
    // A broken line refuses the whole block; the error names the line, never its text.
    let before = audit_len(&s).await;
    let broken = "FOUR=bulk-value-0004\nthis line is broken-0005\n";
    let res = web
        .post(
            "/environments/main/secrets",
            &[("csrf", &csrf), ("bulk", broken)],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("line 2"), "{}", res.body);
    assert!(!res.body.contains("broken-0005") && !res.body.contains("bulk-value-0004"));
    assert_eq!(audit_len(&s).await, before);
    assert_eq!(values(&s, "main").await.len(), 3);
    assert_no_values(
        &web,
        &[
            "bulk-value-0001",
            "bulk-value-0002",
            "bulk $HOME 0003",
            "bulk-value-0004",
        ],
    );
}

#[tokio::test]
async fn bad_input_in_a_form_names_the_problem_and_stores_nothing() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let before = audit_len(&s).await;
    let big = "x".repeat(64 * 1024 + 1);
    for (fields, says) in [
        (vec![("name", "1BAD"), ("value", "v-0001")], "1BAD"),
        (
            vec![("name", "LD_PRELOAD"), ("value", "v-0002")],
            "LD_PRELOAD",
        ),
        (vec![("name", "BIG"), ("value", big.as_str())], "65536"),
        (vec![("name", ""), ("value", "v-0003")], "name"),
    ] {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend(fields);
        let res = web.post("/environments/main/secrets", &f).await;
        assert!(res.status >= 400, "{}", res.status);
        assert!(res.body.contains(says), "{says}: {}", res.body);
        assert!(res.body.contains("flash error"));
    }
    // A NUL sent raw as %00.
    let body = format!("csrf={csrf}&name=NUL_VALUE&value=a%00b");
    let origin = web.origin();
    let res = web
        .post_with(
            "/environments/main/secrets",
            &[("Origin", &origin)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.body.contains("NUL"), "{}", res.body);
    // An invalid environment name.
    let res = web
        .post("/environments", &[("csrf", &csrf), ("name", "Bad Name")])
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("Bad Name"), "{}", res.body);
    assert_eq!(audit_len(&s).await, before);
    assert!(values(&s, "main").await.is_empty());
    assert_no_values(&web, &["v-0001", "v-0002", "v-0003"]);
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_stores_nothing() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let before = audit_len(&s).await;
    let fields = form(&[("csrf", &csrf), ("name", "EVIL"), ("value", "evil-0001")]);
    let no_token = form(&[("name", "EVIL"), ("value", "evil-0001")]);
    let wrong_token = form(&[("csrf", &"0".repeat(64)), ("name", "EVIL"), ("value", "v")]);
    let own = web.origin();
    for (origin, body) in [
        // Another port of the same host: same site, so the Strict cookie is sent.
        (Some("http://127.0.0.1:9"), &fields),
        (Some("null"), &fields),
        (None, &fields),
        (Some(own.as_str()), &no_token),
        (Some(own.as_str()), &wrong_token),
    ] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let res = web
            .post_with("/environments/main/secrets", &headers, body.as_bytes())
            .await;
        assert_eq!(res.status, 403, "{origin:?}");
        assert!(res.body.contains("Nothing was changed"));
    }
    assert_eq!(audit_len(&s).await, before);
    assert!(values(&s, "main").await.is_empty());
}

#[tokio::test]
async fn a_scoped_key_sees_and_does_only_what_its_scopes_allow() {
    let s = TestServer::start().await;
    s.admin_client()
        .await
        .environments()
        .create("staging")
        .await
        .unwrap();
    let key = s.key_with(&["write:staging"]).await;
    let mut web = WebClient::new(&s.web_addr);
    let res = web.sign_in(&key.to_line()).await;
    assert_eq!(res.header("location"), Some("/environments/staging"));
    let page = web.get("/environments/staging").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"<option value="staging" selected>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"value="main""#));
    let main = web.get("/environments/main").await;
    let missing = web.get("/environments/nosuch").await;
    assert_eq!((main.status, missing.status), (403, 403));
    let strip = |r: &WebResponse| r.body.replace("main", "X").replace("nosuch", "X");
    assert_eq!(strip(&main), strip(&missing));
    for path in ["/keys", "/audit"] {
        assert_eq!(web.get(path).await.status, 403, "{path}");
    }
    let csrf = page.csrf();
    let res = web
        .post(
            "/environments/main/secrets",
            &[("csrf", &csrf), ("name", "X"), ("value", "scoped-0001")],
        )
        .await;
    assert_eq!(res.status, 403);
    let res = web
        .post("/keys", &[("csrf", &csrf), ("scopes", "admin")])
        .await;
    assert_eq!(res.status, 403);
    assert!(values(&s, "main").await.is_empty());
}

#[tokio::test]
async fn a_session_ends_when_idle_and_at_its_absolute_expiry() {
    let clock = Arc::new(ManualClock::new());
    let s = TestServer::start_with_clock(clock.clone()).await;
    let mut web = signed_in(&s).await;
    clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(web.get("/environments").await.status, 200);
    clock.advance(Duration::from_secs(31 * 60));
    let res = web.get("/environments").await;
    assert_eq!(res.status, 401);
    assert!(res.body.contains("expired"), "{}", res.body);
    assert_eq!(web.get("/environments").await.status, 303);

    // Kept busy, a session still ends 12 hours after its sign-in.
    let mut web = signed_in(&s).await;
    for _ in 0..24 {
        clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(web.get("/environments").await.status, 200);
    }
    clock.advance(Duration::from_secs(25 * 60));
    assert_eq!(web.get("/environments").await.status, 401);
}

#[tokio::test]
async fn signing_out_and_revoking_the_key_end_the_session() {
    let s = TestServer::start().await;
    let key = s.key_with(&["admin"]).await;
    let mut web = WebClient::new(&s.web_addr);
    web.sign_in(&key.to_line()).await;
    let stolen = web.cookies.clone();
    let csrf = web.csrf().await;
    assert_eq!(web.post("/logout", &[("csrf", &csrf)]).await.status, 303);
    // The old cookie is worthless after sign-out.
    let mut replay = WebClient::new(&s.web_addr);
    replay.cookies = stolen;
    assert_ne!(replay.get("/environments").await.status, 200);

    let mut web = WebClient::new(&s.web_addr);
    web.sign_in(&key.to_line()).await;
    assert_eq!(web.get("/environments").await.status, 200);
    s.admin_client()
        .await
        .keys()
        .revoke(key.key_id())
        .await
        .unwrap();
    // Revoking deletes its sessions: the next request finds none.
    let res = web.get("/environments").await;
    assert_eq!(res.status, 401);
    assert!(res.body.contains("session has ended"), "{}", res.body);
    assert!(res.body.contains(r#"action="/login""#));
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_labels_are_text() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let res = web
        .post(
            "/keys",
            &[
                ("csrf", &csrf),
                ("label", "<script>alert(1)</script>"),
                ("scopes", "write:main"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.contains("will not be shown again"));
    let at = res
        .body
        .find(r#"value="rk_"#)
        .expect("the new key in the page");
    let line = &res.body[at + 7..];
    let line = &line[..line.find('"').unwrap()];
    let secret = line.split_once(':').unwrap().1.to_string();
    // It works, and no later page shows it.
    let mut other = WebClient::new(&s.web_addr);
    assert_eq!(other.sign_in(line).await.status, 303);
    let keys = web.get("/keys").await;
    assert!(!keys.body.contains(&secret));
    assert!(keys.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!keys.body.contains("<script>alert"));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_a_413_that_names_it() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    let limit = runseal::web::body_limit(&runseal::names::Limits::default());
    let big = "v".repeat(limit + 1);
    let body = format!("csrf={csrf}&name=HUGE&value={big}");
    let origin = web.origin();
    let res = web
        .post_with(
            "/environments/main/secrets",
            &[("Origin", &origin)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(res.status, 413);
    assert!(res.body.contains(&limit.to_string()), "{}", res.body);
    assert!(values(&s, "main").await.is_empty());
}

#[tokio::test]
async fn exposure_is_toggled_without_the_value() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    web.post(
        "/environments/main/secrets",
        &[
            ("csrf", &csrf),
            ("name", "HIDDEN"),
            ("value", "exposure-value-0001"),
        ],
    )
    .await;
    let page = web.get("/environments/main").await;
    assert!(page.body.contains("Yes (server default)"));
    let res = web
        .post(
            "/environments/main/secrets/HIDDEN/exposure",
            &[("csrf", &csrf), ("exposed", "off")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let list = s.store.list_secrets("main").await.unwrap().1;
    assert_eq!(list[0].exposed, Some(false));
    // The value is the same; a runner without an allow-list no longer gets it.
    assert!(values(&s, "main").await.is_empty());
    let page = web.get("/environments/main").await;
    assert!(
        page.body.contains(">No<") || page.body.contains("<span>No</span>"),
        "{}",
        page.body
    );
    let res = web
        .post(
            "/environments/main/secrets/HIDDEN/exposure",
            &[("csrf", &csrf), ("exposed", "maybe")],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("on, off or default"));
    let audit = s.store.list_audit(Some("main"), 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "secrets.expose" && a.via.as_deref() == Some("dashboard")));
    assert_no_values(&web, &["exposure-value-0001"]);
}

#[tokio::test]
async fn a_runner_token_minted_on_the_page_is_shown_once_and_starts_a_runner() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    web.post(
        "/environments/main/secrets",
        &[
            ("csrf", &csrf),
            ("name", "K"),
            ("value", "minted-value-0001"),
        ],
    )
    .await;
    let res = web
        .post(
            "/environments/main/tokens",
            &[("csrf", &csrf), ("ttl", "60"), ("uses", "1")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.contains("will not be shown again"));
    let at = res
        .body
        .find(r#"value="rt_"#)
        .expect("the token in the page");
    let token = &res.body[at + 7..];
    let token = runseal::auth::Credential::parse(&token[..token.find('"').unwrap()]).unwrap();
    let runner = Client::connect(&s.addr, token.clone()).await.unwrap();
    let snap = runner.runners().snapshot("", "r-dash", &[]).await.unwrap();
    assert_eq!(snap.secrets.len(), 1);
    // The runners page shows the start.
    let page = web.get("/runners").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("r-dash") && page.body.contains("current"));
    let res = web
        .post(
            "/environments/main/tokens",
            &[("csrf", &csrf), ("ttl", "soon")],
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("ttl: give a whole number"));
    assert!(!web
        .get("/runners")
        .await
        .body
        .contains(token.expose_secret()));
    assert_no_values(&web, &["minted-value-0001"]);
}

#[tokio::test]
async fn stale_runners_are_marked_and_filtered() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    admin
        .secrets()
        .set("K", common::v("v1"), "main")
        .await
        .unwrap();
    let token = admin
        .runners()
        .issue("main", Default::default())
        .await
        .unwrap()
        .remove(0);
    let runner = Client::connect(&s.addr, token.token.clone()).await.unwrap();
    runner.runners().snapshot("", "r-old", &[]).await.unwrap();
    admin
        .secrets()
        .set("K", common::v("v2"), "main")
        .await
        .unwrap();
    let mut web = signed_in(&s).await;
    let page = web.get("/runners?env=main&stale=1").await;
    assert!(
        page.body.contains("r-old") && page.body.contains("stale (now 2)"),
        "{}",
        page.body
    );
    let envs = web.get("/environments").await;
    // main: 1 secret, revision 2, 1 stale runner.
    assert!(
        envs.body
            .contains(r#"<td class="num">1</td><td class="num">2</td>"#),
        "{}",
        envs.body
    );
}

#[tokio::test]
async fn the_audit_page_filters_by_environment_and_action_and_pages() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    admin.environments().create("staging").await.unwrap();
    for i in 0..120 {
        admin
            .secrets()
            .set(&format!("K{i}"), common::v("x"), "staging")
            .await
            .unwrap();
    }
    admin
        .secrets()
        .set("ONLY_MAIN", common::v("x"), "main")
        .await
        .unwrap();
    let mut web = signed_in(&s).await;
    let page = web.get("/audit?env=staging&action=secrets.set").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("<td>secrets.set</td>").count(), 100);
    assert!(!page.body.contains("ONLY_MAIN"));
    let next = page
        .body
        .find("/audit?before=")
        .expect("a link to older entries");
    let href = &page.body[next..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    let older = web.get(&href).await;
    assert_eq!(older.body.matches("<td>secrets.set</td>").count(), 20);
    assert!(older.body.contains("K0<") || older.body.contains(">K0"));
    let main = web.get("/audit?env=main").await;
    assert!(main.body.contains("ONLY_MAIN") && !main.body.contains(">K1<"));
}

#[tokio::test]
async fn a_key_is_revoked_from_the_keys_page_after_a_confirmation() {
    let s = TestServer::start().await;
    let other = s.key_with(&["read:main"]).await;
    let mut web = signed_in(&s).await;
    let confirm = web.get(&format!("/keys/{}/revoke", other.key_id())).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("cannot be undone"));
    let csrf = confirm.csrf();
    // Without the confirmation field nothing happens.
    let res = web
        .post(
            &format!("/keys/{}/revoke", other.key_id()),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(s
        .store
        .key(other.key_id())
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
    let res = web
        .post(
            &format!("/keys/{}/revoke", other.key_id()),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 303);
    let page = web.get(res.header("location").unwrap()).await;
    assert!(page
        .body
        .contains(&format!("Revoked key {}", other.key_id())));
    assert!(s
        .store
        .key(other.key_id())
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    // The last admin key cannot go: the page says so.
    let res = web
        .post(
            &format!("/keys/{}/revoke", s.admin.key_id()),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(res.body.contains("last active admin key"));
}

#[tokio::test]
async fn an_environment_is_deleted_after_a_confirmation_that_names_what_goes() {
    let s = TestServer::start().await;
    let admin = s.admin_client().await;
    admin.environments().create("scratch").await.unwrap();
    admin
        .secrets()
        .set("A", common::v("x"), "scratch")
        .await
        .unwrap();
    let mut web = signed_in(&s).await;
    let confirm = web.get("/environments/scratch/delete").await;
    assert!(confirm.body.contains("1 secret(s)"), "{}", confirm.body);
    let csrf = confirm.csrf();
    let res = web
        .post(
            "/environments/scratch/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(s.store.environment("scratch").await.unwrap().is_none());
    let res = web
        .post(
            "/environments/main/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 409);
    assert!(res.body.contains("cannot be deleted"));
}

/// runseald's own listeners, as a process: where the dashboard is served and when it is not.
mod listener {
    use super::*;
    use common::{pki, Daemon};

    #[test]
    fn an_explicit_dashboard_address_that_is_taken_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let log = Daemon::try_start(&dir.path().join("data"), &["--web-listen", &addr], &[])
            .err()
            .expect("runseald must not start without its explicit dashboard address");
        assert!(
            log.contains(&format!("cannot listen for the dashboard on {addr}")),
            "{log}"
        );
    }

    #[test]
    fn a_taken_default_dashboard_port_is_a_warning_and_off_serves_none() {
        // Hold the default port (unless another test's runseald already holds it: taken either way).
        let _held = std::net::TcpListener::bind(runseal::defaults::DEFAULT_WEB_LISTEN);
        let dir = tempfile::tempdir().unwrap();
        // No --web-listen: the default (a config file keeps the helper from turning it off).
        let config = common::write_config(dir.path(), "");
        let d = Daemon::start(&dir.path().join("data"), &["--config", &config], &[]);
        let log = d.wait_for_log("its default address is taken", Duration::from_secs(10));
        assert!(log.contains("serving without the dashboard"), "{log}");
        assert!(!log.contains("dashboard listening"), "{log}");
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(&dir.path().join("data"), &["--web-listen", "off"], &[]);
        d.wait_for_log("listening", Duration::from_secs(10));
        assert!(!d.log().contains("dashboard"), "{}", d.log());
    }

    #[tokio::test]
    async fn failed_sign_ins_are_counted_in_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(
            &dir.path().join("data"),
            &[
                "--web-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
            &[],
        );
        let mut web = WebClient::new(&d.web_addr());
        for _ in 0..3 {
            assert_eq!(web.sign_in("rk_nosuch:wrong").await.status, 401);
        }
        let metrics = common::http_get(&d.metrics_addr(), "/metrics");
        assert!(
            metrics.contains("runseal_web_sign_in_failures_total 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("runseal_web_sign_in_throttled_total 0"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn over_tls_the_dashboard_speaks_https_with_secure_host_only_cookies() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki(dir.path());
        let d = Daemon::start(
            &dir.path().join("data"),
            &[
                "--tls-cert",
                p.server_cert.to_str().unwrap(),
                "--tls-key",
                p.server_key.to_str().unwrap(),
                "--web-listen",
                "127.0.0.1:0",
            ],
            &[],
        );
        let mut web = WebClient::with_tls(&d.web_addr(), &p.ca);
        assert!(
            d.log().contains("dashboard listening url=https://"),
            "{}",
            d.log()
        );
        let login = web.get("/login").await;
        assert_eq!(login.status, 200);
        assert_eq!(web.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(login.header("strict-transport-security").is_some());
        let pre = login.set_cookies().join("\n");
        assert!(
            pre.contains("__Host-runseal_login=") && pre.contains("; Secure"),
            "{pre}"
        );
        let res = web.sign_in(&d.admin_key()).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let cookie = res
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("__Host-runseal_session="))
            .expect("a __Host- session cookie")
            .to_string();
        for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(flag), "{flag}");
        }
        assert_eq!(web.get("/environments/main").await.status, 200);
        // An http:// origin is not this dashboard's.
        let csrf = web.csrf().await;
        let body = form(&[("csrf", &csrf), ("name", "staging")]);
        let plain_origin = format!("http://{}", web.addr);
        let res = web
            .post_with(
                "/environments",
                &[("Origin", &plain_origin)],
                body.as_bytes(),
            )
            .await;
        assert_eq!(res.status, 403);
    }
}

/// The dashboard listener's caps, on an in-process server with small ones: a client that opens
/// connections and sends nothing holds no more than the cap, and loses them at the header
/// deadline.
#[tokio::test]
async fn idle_connections_are_capped_and_dropped_at_the_header_deadline() {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = runseal::web::WebConfig::for_addr(addr, false, &[], 64 * 1024);
    config.max_connections = 2;
    config.header_timeout = Duration::from_millis(300);
    let web = runseal::web::Web::new(s.service.clone(), config);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(runseal::web::serve(listener, None, web, stopped));
    // Two silent connections take both slots.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A third client waits (in the kernel's backlog) while they hold them...
    let mut third = WebClient::new(&addr.to_string());
    let started = std::time::Instant::now();
    let res = third.get("/login").await;
    assert_eq!(res.status, 200);
    // ...until the header deadline closes the silent ones.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    for mut c in silent {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed by the server")
            .unwrap_or(0);
        assert_eq!(n, 0, "a silent connection got an answer");
    }
}

/// Someone who can write the database cannot make a session: a row written outside runseald
/// has no valid MAC, and one copied onto another key no longer matches its own.
#[tokio::test]
async fn a_session_row_written_into_the_database_grants_nothing() {
    use sha2::Digest;
    let s = TestServer::start().await;
    let db = s.dir.path().join("data/runseal.db");
    let secret = "A".repeat(43);
    let id = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "INSERT INTO web_sessions (id, key_id, created_at, last_seen_at, expires_at, mac) \
             VALUES (?1, ?2, ?3, ?3, ?4, x'00')",
            rusqlite::params![id, s.admin.key_id(), now, now + 3_600_000],
        )
        .unwrap();
    }
    let mut forged = WebClient::new(&s.web_addr);
    forged.cookies.push(("runseal_session".into(), secret));
    let res = forged.get("/environments").await;
    assert_eq!(res.status, 401, "{}", res.body);
    // A real session moved onto another key (the admin's) by rewriting its key_id.
    let reader = s.key_with(&["read:main"]).await;
    let mut web = WebClient::new(&s.web_addr);
    web.sign_in(&reader.to_line()).await;
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "UPDATE web_sessions SET key_id = ?1 WHERE key_id = ?2",
            rusqlite::params![s.admin.key_id(), reader.key_id()],
        )
        .unwrap();
    }
    assert_eq!(web.get("/keys").await.status, 401);
}

#[tokio::test]
async fn a_secrets_history_is_shown_without_values_and_a_version_rolled_back_to() {
    let s = TestServer::start().await;
    let mut web = signed_in(&s).await;
    let csrf = web.csrf().await;
    for v in ["history-value-0001", "history-value-0002"] {
        let res = web
            .post(
                "/environments/main/secrets",
                &[("csrf", &csrf), ("name", "TOKEN"), ("value", v)],
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.body);
    }
    let page = web.get("/environments/main").await;
    assert!(
        page.body
            .contains(r#"href="/environments/main/secrets/TOKEN/history""#),
        "{}",
        page.body
    );
    let page = web.get("/environments/main/secrets/TOKEN/history").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Current"), "{}", page.body);
    assert!(
        page.body.contains(r#"name="version" value="1""#),
        "a rollback button for the older version: {}",
        page.body
    );
    assert!(
        !page.body.contains(r#"name="version" value="2""#),
        "no rollback button for the current version: {}",
        page.body
    );
    // A cross-site rollback is refused and changes nothing.
    let res = web
        .post_with(
            "/environments/main/secrets/TOKEN/rollback",
            &[("Origin", "http://evil.example")],
            form(&[("csrf", &csrf), ("version", "1")]).as_bytes(),
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(values(&s, "main").await[0].1, "history-value-0002");
    // Without the CSRF token too.
    let res = web
        .post(
            "/environments/main/secrets/TOKEN/rollback",
            &[("version", "1")],
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(values(&s, "main").await[0].1, "history-value-0002");

    let res = web
        .post(
            "/environments/main/secrets/TOKEN/rollback",
            &[("csrf", &csrf), ("version", "1")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(values(&s, "main").await[0].1, "history-value-0001");
    let page = web.get(res.header("location").unwrap()).await;
    assert!(page.body.contains("Rolled TOKEN back"), "{}", page.body);
    let versions = s.store.secret_history("main", "TOKEN").await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.current))
            .collect::<Vec<_>>(),
        [(3, true), (2, false), (1, false)]
    );
    // A version that is not kept is refused on the page, naming it.
    let res = web
        .post(
            "/environments/main/secrets/TOKEN/rollback",
            &[("csrf", &csrf), ("version", "7")],
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert!(res.body.contains("version 7"), "{}", res.body);
    let audit = s.store.list_audit(Some("main"), 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "secrets.rollback" && a.via.as_deref() == Some("dashboard")));
    // The API's audit listing says so too (and `runseal audit` prints it).
    let entries = s
        .admin_client()
        .await
        .audit()
        .list("main", 20)
        .await
        .unwrap();
    assert!(entries
        .iter()
        .any(|e| e.action == "secrets.rollback" && e.via == "dashboard"));
    assert!(entries
        .iter()
        .any(|e| e.action == "secrets.set" && e.via == "dashboard"));
    assert_no_values(&web, &["history-value-0001", "history-value-0002"]);

    // A read-only key sees the history but no rollback button.
    let reader = s.key_with(&["read:main"]).await;
    let mut web = WebClient::new(&s.web_addr);
    web.sign_in(&reader.to_line()).await;
    let page = web.get("/environments/main/secrets/TOKEN/history").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Roll back"), "{}", page.body);
}
