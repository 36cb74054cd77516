//! The browser tests' harness itself (`common::browser`), against pages of its own: a page
//! through the recording proxy, JavaScript off and on, a cross-origin form post, screenshots, and
//! no process left behind. Each test skips (loudly) without Chromium and chromedriver, except
//! under `CI=true`.

use crate::common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::browser::{
    browser, click, fill, live_in_group, not_installed, screenshot_to, text_of, wait_for,
    wait_for_text, RecordingProxy, StaticSite, SKIPPED,
};

#[test]
fn without_chromium_the_tests_skip_loudly_and_fail_under_ci() {
    let mut out = Vec::new();
    not_installed(false, &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(SKIPPED), "{out}");
    assert!(out.starts_with("\nBROWSER TESTS SKIPPED: "), "{out}");

    let err = catch_unwind(AssertUnwindSafe(|| {
        not_installed(true, &mut Vec::new());
    }))
    .expect_err("under CI a missing browser fails");
    assert_eq!(
        err.downcast_ref::<String>().map(String::as_str),
        Some(SKIPPED)
    );
}

#[tokio::test]
async fn a_page_through_the_recording_proxy_is_shown_and_recorded() {
    let Some(b) = browser(false).await else {
        return;
    };
    let marker = "harness-marker-7f3a";
    let site = StaticSite::start(format!(
        "<!doctype html><title>t</title><h1 id=\"marker\">{marker}</h1>"
    ));
    let proxy = RecordingProxy::start(site.addr());
    b.goto(&format!("{}/page", proxy.origin())).await.unwrap();
    assert_eq!(text_of(&b, "#marker").await, marker);

    let recorded = proxy.recorded();
    assert!(common::contains(&recorded, marker.as_bytes()));
    assert!(recorded.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // The browser's request went through the proxy to the site, as sent.
    let req = site.wait_for_request("GET", "/page").await;
    assert_eq!(req.header("host"), Some(proxy.addr().to_string().as_str()));

    proxy.assert_never_contains(&["a value that was never sent"]);
    // A needle that is there fails the assertion, which names its index only.
    let err = catch_unwind(AssertUnwindSafe(|| {
        proxy.assert_never_contains(&["absent", marker]);
    }))
    .expect_err("the marker is in the recording");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(msg.contains("needle #1"), "{msg}");
    assert!(!msg.contains(marker), "the assertion printed the needle");
    b.close().await;
}

/// A page whose external script and inline script each change a text.
fn scripted_site() -> StaticSite {
    StaticSite::start_with(
        "<!doctype html><title>js</title>\
         <p id=\"ext\">untouched</p><p id=\"inline\">untouched</p>\
         <script src=\"/app.js\"></script>\
         <script>document.getElementById('inline').textContent = 'changed inline';</script>"
            .to_string(),
        &[(
            "/app.js",
            "text/javascript; charset=utf-8",
            "document.getElementById('ext').textContent = 'changed by app.js';",
        )],
    )
}

#[tokio::test]
async fn javascript_off_leaves_the_page_alone_and_on_runs_it() {
    let site = scripted_site();
    let Some(b) = browser(false).await else {
        return;
    };
    b.goto(&site.origin()).await.unwrap();
    wait_for(&b, "#ext").await;
    assert_eq!(text_of(&b, "#ext").await, "untouched");
    assert_eq!(text_of(&b, "#inline").await, "untouched");
    b.close().await;

    let Some(b) = browser(true).await else {
        return;
    };
    b.goto(&site.origin()).await.unwrap();
    wait_for_text(&b, "#ext", "changed by app.js").await;
    wait_for_text(&b, "#inline", "changed inline").await;
    site.wait_for_request("GET", "/app.js").await;
    b.close().await;
}

#[tokio::test]
async fn a_form_on_another_origin_posts_to_the_site() {
    let target = StaticSite::start(
        "<!doctype html><title>target</title><p id=\"done\">received</p>".to_string(),
    );
    let attacker = StaticSite::start(format!(
        "<!doctype html><title>attacker</title>\
         <form method=\"post\" action=\"{}/submit?from=attacker\">\
         <input type=\"hidden\" name=\"env\" value=\"main &amp; more\">\
         <input id=\"note\" name=\"note\">\
         <button id=\"go\" type=\"submit\">go</button></form>",
        target.origin()
    ));
    assert_ne!(attacker.origin(), target.origin());
    let Some(b) = browser(false).await else {
        return;
    };
    b.goto(&attacker.origin()).await.unwrap();
    fill(&b, "#note", "typed = text").await;
    click(&b, "#go").await;
    assert_eq!(text_of(&b, "#done").await, "received");

    let req = target.wait_for_request("POST", "/submit").await;
    assert_eq!(req.path, "/submit?from=attacker");
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("origin"), Some(attacker.origin().as_str()));
    // Another port of 127.0.0.1 is another origin but the same site: SameSite cookies do not
    // keep such a page out, and Sec-Fetch-Site says so.
    assert_eq!(req.header("sec-fetch-site"), Some("same-site"));
    assert_eq!(
        req.form(),
        [
            ("env".to_string(), "main & more".to_string()),
            ("note".to_string(), "typed = text".to_string()),
        ]
    );
    assert!(attacker.requests().iter().all(|r| r.method == "GET"));
    b.close().await;
}

#[tokio::test]
async fn a_screenshot_is_a_png() {
    let site = StaticSite::start("<!doctype html><h1>shot</h1>".to_string());
    let Some(b) = browser(false).await else {
        return;
    };
    b.goto(&site.origin()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shots/page.png");
    screenshot_to(&b, &path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    b.close().await;
}

#[tokio::test]
async fn closing_or_dropping_a_browser_leaves_no_process() {
    let site = StaticSite::start("<!doctype html><h1>bye</h1>".to_string());
    let Some(b) = browser(true).await else {
        return;
    };
    b.goto(&site.origin()).await.unwrap();
    let group = b.process_group();
    // chromedriver and Chromium's processes.
    assert!(live_in_group(group).len() > 1);
    b.close().await;
    assert_eq!(live_in_group(group), Vec::<i32>::new());

    // Dropped without close (as after a failed assertion): the same.
    let b = browser(true).await.unwrap();
    b.goto(&site.origin()).await.unwrap();
    let group = b.process_group();
    assert!(live_in_group(group).len() > 1);
    drop(b);
    assert_eq!(live_in_group(group), Vec::<i32>::new());
}
