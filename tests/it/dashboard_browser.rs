//! The dashboard in a real browser: headless Chromium (WebDriver) against a real runseald
//! process, through a recording proxy, so every byte a response carried can be checked for
//! values. Without chromium these tests say so loudly and skip; under `CI=true` they fail.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};

use common::browser::{
    browser, click, fill, screenshot, text_of, wait_for, Browser, RecordingProxy, StaticSite,
};
use common::{agent, ok, runseal, Daemon};
use fantoccini::Locator;

/// runseald with its dashboard on a free port, reached through a recording proxy (whose
/// address the dashboard is told to answer).
struct Setup {
    daemon: Daemon,
    proxy: RecordingProxy,
    admin: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Setup {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let web: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let proxy = RecordingProxy::start(web);
        let config = common::write_config(
            dir.path(),
            &format!("[web]\nhosts = [\"{}\"]\n", proxy.addr()),
        );
        let daemon = Daemon::start(
            &dir.path().join("data"),
            &["--config", &config, "--web-listen", &web.to_string()],
            &[],
        );
        let admin = daemon.admin_key();
        Self {
            daemon,
            proxy,
            admin,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.proxy.origin())
    }

    fn cli(&self, args: &[&str]) -> String {
        ok(runseal(&self.daemon.addr, &self.admin, args))
    }

    /// A runner of `env` that starts now and prints its environment once `go` exists.
    fn runner(&self, env: &str, go: &Path) -> Child {
        let token = self.cli(&["runner-token", "issue", "--env", env]);
        let script = format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; env",
            go.display()
        );
        agent(
            &self.daemon.addr,
            token.trim(),
            &["--", "sh", "-c", &script],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
    }
}

/// The `NAME=value` lines a runner printed, for these names (never printed on failure).
fn runner_values(child: Child, names: &[&str]) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the runner failed (exit {:?})",
        out.status.code()
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| names.iter().any(|n| l.starts_with(&format!("{n}="))))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

async fn sign_in(b: &Browser, s: &Setup, key: &str) {
    b.goto(&s.url("/login")).await.unwrap();
    fill(b, "#key", key).await;
    navigate(b, "button.primary").await;
    wait_for(b, "header.top").await;
}

/// Clicks what submits a form or follows a link, and waits until the next page has replaced
/// this one (so nothing is read from the page being left).
async fn navigate(b: &Browser, css: &str) {
    let old = b.find(Locator::Css("html")).await.unwrap();
    click(b, css).await;
    let deadline = std::time::Instant::now() + common::browser::WAIT;
    while old.tag_name().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new page after clicking {css:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    wait_for(b, "body").await;
}

async fn h1(b: &Browser) -> String {
    text_of(b, "main h1").await
}

/// Saves one secret through the single-value form of the page shown.
async fn save(b: &Browser, name: &str, value: &str, multiline: bool) {
    fill(b, "#name", name).await;
    fill(b, if multiline { "#value-multi" } else { "#value" }, value).await;
    navigate(b, "form.stack button.primary").await;
    let flash = text_of(b, "p.flash").await;
    assert!(
        flash.starts_with("Saved"),
        "no confirmation after saving {name}"
    );
}

async fn switch_to(b: &Browser, env: &str) {
    let select = wait_for(b, "#env").await;
    select.select_by_value(env).await.unwrap();
    navigate(b, "form.switch button").await;
    assert_eq!(h1(b).await, env);
}

const VALUES: &[&str] = &[
    "first-value-4f1c",
    "second-value-line1-77aa",
    "second-value-line2-77aa",
    "bulk-one-9e01",
    "bulk-two-9e02",
    "bulk three 9e03",
    "overwritten-value-5d3b",
];

#[tokio::test]
async fn an_admin_manages_staging_in_the_browser_and_runners_see_exactly_that() {
    let Some(b) = browser(true).await else { return };
    let s = Setup::start();
    sign_in(&b, &s, &s.admin).await;
    assert_eq!(h1(&b).await, "main");
    screenshot(&b, "secrets-empty").await;

    // Create staging.
    b.goto(&s.url("/environments")).await.unwrap();
    fill(&b, "#name", "staging").await;
    navigate(&b, "form.inline button.primary").await;
    assert_eq!(h1(&b).await, "staging");

    // Two secrets through the form, one of them multi-line.
    save(&b, "FIRST", VALUES[0], false).await;
    save(&b, "SECOND", &format!("{}\n{}", VALUES[1], VALUES[2]), true).await;

    // A runner started now keeps these values, whatever happens next.
    let work = tempfile::tempdir().unwrap();
    let go = work.path().join("go");
    let early = s.runner("staging", &go);

    // Three by pasting a block.
    click(&b, "details summary").await;
    fill(
        &b,
        "#bulk",
        &format!(
            "# from the .env\nBULK_ONE={}\nexport BULK_TWO='{}'\nBULK_THREE=\"{}\"\n",
            VALUES[3], VALUES[4], VALUES[5]
        ),
    )
    .await;
    navigate(&b, "details button.primary").await;
    assert!(text_of(&b, "p.flash")
        .await
        .starts_with("Saved BULK_ONE, BULK_TWO, BULK_THREE"));

    // Overwrite one, delete one (with its confirmation).
    save(&b, "FIRST", VALUES[6], false).await;
    navigate(&b, r#"a[aria-label="Delete SECOND"]"#).await;
    assert!(text_of(&b, "section.confirm").await.contains("SECOND"));
    navigate(&b, "button.danger").await;
    assert_eq!(text_of(&b, "p.flash").await, "Deleted SECOND.");
    let names = text_of(&b, "table tbody").await;
    assert!(names.contains("FIRST") && names.contains("BULK_TWO") && !names.contains("SECOND"));
    screenshot(&b, "secrets").await;

    // The dropdown switches environments (and back).
    switch_to(&b, "main").await;
    switch_to(&b, "staging").await;
    b.goto(&s.url("/environments")).await.unwrap();
    wait_for(&b, "table").await;
    screenshot(&b, "environments").await;
    b.goto(&s.url("/audit")).await.unwrap();
    wait_for(&b, "table").await;
    screenshot(&b, "audit").await;

    // A runner started now sees exactly the result; the early one still has what it started with.
    let names = ["FIRST", "SECOND", "BULK_ONE", "BULK_TWO", "BULK_THREE"];
    let late = s.runner("staging", &go);
    std::fs::write(&go, "").unwrap();
    let want_late = vec![
        format!("BULK_ONE={}", VALUES[3]),
        format!("BULK_THREE={}", VALUES[5]),
        format!("BULK_TWO={}", VALUES[4]),
        format!("FIRST={}", VALUES[6]),
    ];
    assert!(
        runner_values(late, &names) == want_late,
        "the late runner's values differ"
    );
    let early_values = runner_values(early, &names);
    assert!(
        early_values.contains(&format!("FIRST={}", VALUES[0]))
            && early_values.contains(&format!("SECOND={}", VALUES[1]))
            && !early_values.iter().any(|l| l.starts_with("BULK_")),
        "the early runner's snapshot changed"
    );

    // Not one response (pages, redirects, assets) carried a value.
    s.proxy.assert_never_contains(VALUES);
    b.close().await;
}

#[tokio::test]
async fn the_dashboard_works_with_javascript_off() {
    let Some(b) = browser(false).await else {
        return;
    };
    let s = Setup::start();
    s.cli(&["env", "create", "staging"]);
    sign_in(&b, &s, &s.admin).await;
    assert_eq!(h1(&b).await, "main");
    save(&b, "NO_JS", "no-js-value-31c4", false).await;
    switch_to(&b, "staging").await;
    switch_to(&b, "main").await;
    assert!(text_of(&b, "table tbody").await.contains("NO_JS"));
    assert!(s.cli(&["secrets", "list"]).contains("NO_JS"));
    s.proxy.assert_never_contains(&["no-js-value-31c4"]);
    b.close().await;
}

#[tokio::test]
async fn a_write_staging_key_sees_only_staging() {
    let Some(b) = browser(true).await else { return };
    let s = Setup::start();
    s.cli(&["env", "create", "staging"]);
    let key = s.cli(&[
        "keys",
        "create",
        "--scope",
        "write:staging",
        "--label",
        "staging",
    ]);
    let key = key
        .lines()
        .find(|l| l.starts_with("rk_"))
        .unwrap()
        .trim()
        .to_string();
    sign_in(&b, &s, &key).await;
    assert_eq!(h1(&b).await, "staging");
    let options = b.find_all(Locator::Css("#env option")).await.unwrap();
    let mut shown = Vec::new();
    for o in options {
        shown.push(o.text().await.unwrap());
    }
    assert_eq!(shown, vec!["staging".to_string()]);
    let nav = text_of(&b, "header.top nav").await;
    assert!(!nav.contains("Keys") && !nav.contains("Audit"), "{nav}");
    for path in ["/environments/main", "/environments/nosuch", "/keys"] {
        b.goto(&s.url(path)).await.unwrap();
        assert_eq!(h1(&b).await, "Not allowed", "{path}");
    }
    b.close().await;
}

#[tokio::test]
async fn a_page_on_another_port_cannot_post_with_the_victims_session() {
    let Some(b) = browser(true).await else { return };
    let s = Setup::start();
    sign_in(&b, &s, &s.admin).await;
    let audit_before = s.cli(&["audit", "--output", "json"]);
    // Same site (127.0.0.1), so the SameSite=Strict cookie goes along: only the Origin check
    // and the CSRF token stand in the way.
    let target = s.url("/environments/main/secrets");
    let attacker = StaticSite::start_with(
        format!(
            "<!doctype html><form id=f method=post action=\"{target}\">\
             <input name=name value=EVIL><input name=value value=evil-value-0bad>\
             </form><script src=/go.js></script>"
        ),
        &[(
            "/go.js",
            "text/javascript",
            "document.getElementById('f').submit()",
        )],
    );
    b.goto(&attacker.origin()).await.unwrap();
    wait_for(&b, "main h1").await;
    assert_eq!(h1(&b).await, "Not allowed");
    assert!(!s.cli(&["secrets", "list"]).contains("EVIL"));
    assert_eq!(s.cli(&["audit", "--output", "json"]), audit_before);
    b.close().await;
    drop(attacker);
}

#[tokio::test]
async fn the_sign_in_page_is_screenshot_for_the_readme() {
    let Some(b) = browser(true).await else { return };
    let s = Setup::start();
    b.goto(&s.url("/login")).await.unwrap();
    wait_for(&b, "#key").await;
    screenshot(&b, "sign-in").await;
    b.close().await;
}

#[tokio::test]
async fn labels_are_text_and_form_errors_are_shown_and_store_nothing() {
    let Some(b) = browser(true).await else { return };
    let s = Setup::start();
    s.cli(&[
        "keys",
        "create",
        "--scope",
        "read:main",
        "--label",
        "<img src=x onerror=alert(1)>",
    ]);
    sign_in(&b, &s, &s.admin).await;
    b.goto(&s.url("/keys")).await.unwrap();
    let table = text_of(&b, "table tbody").await;
    assert!(
        table.contains("<img src=x onerror=alert(1)>"),
        "the label is shown as text"
    );
    assert!(
        b.find(Locator::Css("table img")).await.is_err(),
        "no element was made of it"
    );
    // A denied name and a broken pasted line: the page says what is wrong, nothing is stored.
    b.goto(&s.url("/environments/main")).await.unwrap();
    save_refused(&b, "LD_PRELOAD", "refused-value-71aa").await;
    assert!(text_of(&b, "p.flash.error").await.contains("LD_PRELOAD"));
    click(&b, "details summary").await;
    fill(
        &b,
        "#bulk",
        "OK_NAME=refused-value-71ab\nno equals sign here\n",
    )
    .await;
    navigate(&b, "details button.primary").await;
    let error = text_of(&b, "p.flash.error").await;
    assert!(
        error.contains("line 2") && !error.contains("no equals"),
        "the error names the line only"
    );
    assert!(!s.cli(&["secrets", "list"]).contains("OK_NAME"));
    // On a phone-sized screen the page still fits.
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&s.url("/environments/main")).await.unwrap();
    wait_for(&b, "form.stack").await;
    screenshot(&b, "secrets-phone").await;
    s.proxy
        .assert_never_contains(&["refused-value-71aa", "refused-value-71ab"]);
    b.close().await;
}

/// Submits the single-value form expecting a refusal (no "Saved" message).
async fn save_refused(b: &Browser, name: &str, value: &str) {
    fill(b, "#name", name).await;
    fill(b, "#value", value).await;
    navigate(b, "form.stack button.primary").await;
    wait_for(b, "p.flash.error").await;
}

/// Two replicas on one PostgreSQL database: signed in on one, the browser keeps working on the
/// other (cookies are per host, not per port, so it carries the session there).
#[cfg(runseal_pg_tests)]
#[tokio::test]
async fn a_browser_session_from_one_replica_keeps_working_on_the_other() {
    let Some(b) = browser(true).await else { return };
    let pg = common::PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let a = Daemon::start(
        &da,
        &["--database-url", &pg.url, "--web-listen", "127.0.0.1:0"],
        &[],
    );
    let admin = a.admin_key();
    common::private_pg::join_dir(&da, &db);
    let bd = Daemon::start(
        &db,
        &["--database-url", &pg.url, "--web-listen", "127.0.0.1:0"],
        &[],
    );
    let (wa, wb) = (a.web_addr(), bd.web_addr());
    b.goto(&format!("http://{wa}/login")).await.unwrap();
    fill(&b, "#key", &admin).await;
    navigate(&b, "button.primary").await;
    assert_eq!(h1(&b).await, "main");
    b.goto(&format!("http://{wb}/environments/main"))
        .await
        .unwrap();
    assert_eq!(h1(&b).await, "main");
    save(&b, "FROM_B", "replica-browser-0001", false).await;
    b.goto(&format!("http://{wa}/environments/main"))
        .await
        .unwrap();
    assert!(text_of(&b, "table tbody").await.contains("FROM_B"));
    b.close().await;
}
