//! The browser tests' harness: headless Chromium driven through chromedriver (WebDriver, with
//! fantoccini), a recording TCP relay to put between the browser and a server, a tiny HTTP server
//! for pages of the test's own (an attacker's site on another origin of 127.0.0.1) that records
//! the requests it gets, and small helpers for forms and text.
//!
//! [`browser`] needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them it prints `BROWSER TESTS SKIPPED: …` on the test binary's stderr (past the output capture)
//! and returns `None`, so a test starts with
//! `let Some(b) = browser(false).await else { return };` — except under `CI=true`, where a
//! missing browser fails the test instead of skipping it.
//!
//! Nothing here prints a page, a request or a recorded byte: in the dashboard's tests they hold
//! secret values. Failures name CSS selectors, paths and indexes only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as TokioStream};
use tokio::task::JoinSet;

use super::contains;

/// What [`browser`] says (and, under `CI=true`, panics with) when a program is missing.
pub const SKIPPED: &str = "BROWSER TESTS SKIPPED: chromium/chromedriver not installed \
     (apt-get install chromium chromium-driver fonts-dejavu-core)";

/// How long the helpers wait for an element, a page or a request.
pub const WAIT: Duration = Duration::from_secs(10);

/// Headless Chromium under a chromedriver of its own, with a fresh profile. Derefs to the
/// fantoccini [`Client`]. [`Browser::close`] ends the session (Chromium quits) and then
/// chromedriver; dropping it without `close` does the same synchronously (after a failed
/// assertion too). Either way no process of it is left running: chromedriver runs in a process
/// group of its own under a watchdog (see `Driver`), Chromium's processes inherit the group, and
/// the group is SIGKILLed at the end, or when the test process dies.
pub struct Browser {
    client: Client,
    session: Option<String>,
    closed: bool,
    // Dropped after the session has ended (fields drop after `Drop::drop`, in this order).
    driver: Driver,
    _profile: TempDir,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// The fantoccini client (also reachable through `Deref`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The process group of chromedriver and Chromium (its leader is chromedriver's watchdog).
    pub fn process_group(&self) -> i32 {
        self.driver.group()
    }

    /// Ends the WebDriver session (Chromium quits), then chromedriver; waits for both.
    pub async fn close(mut self) {
        self.closed = true;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.client.clone().close()).await;
        let deadline = Instant::now() + WAIT;
        while !self.driver.browser_gone() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // No runtime to await on here (or one that is unwinding): end the session with a plain
        // blocking request, so that Chromium quits before chromedriver is killed.
        if let Some(session) = &self.session {
            let _ = http_request(
                self.driver.addr,
                &format!("DELETE /session/{session} HTTP/1.1"),
                Duration::from_secs(20),
            );
        }
        let deadline = Instant::now() + WAIT;
        while !self.driver.browser_gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// chromedriver under a watchdog shell, in a process group of their own that Chromium's processes
/// inherit. The shell waits for EOF on its stdin, a pipe from this process, and then SIGKILLs the
/// group: so even a test process that is killed (a timeout, Ctrl-C) leaves no browser behind, as
/// Chromium outlives a chromedriver that dies. Dropping a `Driver` SIGKILLs the group itself
/// and reaps the shell.
struct Driver {
    watchdog: Child,
    /// chromedriver's pid.
    pid: i32,
    addr: SocketAddr,
}

/// `sh -c WATCHDOG sh CHROMEDRIVER PORT LOG`: starts chromedriver, prints its pid, and kills the
/// process group once its stdin closes.
const WATCHDOG: &str = r#""$1" --port="$2" >"$3" 2>&1 </dev/null &
echo "$!"
read -r _
kill -KILL 0"#;

impl Driver {
    fn group(&self) -> i32 {
        self.watchdog.id() as i32
    }

    /// Whether nothing but the watchdog and chromedriver runs in the group (Chromium's processes
    /// exit a moment after the end of the session is acknowledged).
    fn browser_gone(&self) -> bool {
        live_in_group(self.group())
            .iter()
            .all(|&p| p == self.group() || p == self.pid)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.group()), Signal::SIGKILL);
        let _ = self.watchdog.wait();
    }
}

/// The processes of process group `group` that are running (not zombies), from /proc.
pub fn live_in_group(group: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(group) {
            out.push(pid);
        }
    }
    out
}

/// What [`browser`] does without Chromium or chromedriver: under CI (`ci`), panics with
/// [`SKIPPED`]; else writes it to `out`.
pub fn not_installed(ci: bool, out: &mut dyn Write) {
    assert!(!ci, "{SKIPPED}");
    let _ = writeln!(out, "\n{SKIPPED}\n");
}

/// `program` on PATH, else in /usr/bin.
fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A headless Chromium, JavaScript on or off (off: the content setting that blocks every page's
/// scripts, as a user who turned JavaScript off has it). `None` when Chromium or chromedriver is
/// not installed (after printing [`SKIPPED`]); under `CI=true` that panics instead.
pub async fn browser(javascript: bool) -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) =
        (find_program("chromium"), find_program("chromedriver"))
    else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        // Straight to the process's stderr: eprintln! would be captured with the passing test's
        // output and never shown.
        not_installed(ci, &mut std::io::stderr());
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    // From here on a panic drops `driver`, which kills chromedriver and any Chromium it started.
    let driver = start_chromedriver(&chromedriver, profile.path());
    let mut prefs = serde_json::Map::new();
    if !javascript {
        prefs.insert(
            "profile.managed_default_content_settings.javascript".into(),
            2.into(),
        );
    }
    let options = serde_json::json!({
        "binary": chromium,
        "args": [
            "--headless=new",
            // Chromium refuses to start as root (CI and the sessions run as root) with its
            // sandbox on.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--disable-breakpad",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--user-data-dir={}", profile.path().join("chromium").display()),
        ],
        "prefs": prefs,
    });
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let client = connect(driver.addr, caps).await;
    let session = client.session_id().await.ok().flatten();
    Some(Browser {
        client,
        session,
        closed: false,
        driver,
        _profile: profile,
    })
}

async fn connect(addr: SocketAddr, caps: serde_json::Map<String, serde_json::Value>) -> Client {
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    match tokio::time::timeout(
        Duration::from_secs(60),
        builder.connect(&format!("http://{addr}")),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("chromedriver did not start a Chromium session: {e}"),
        Err(_) => panic!("chromedriver did not start a Chromium session within 60 s"),
    }
}

/// chromedriver on a free loopback port, under its watchdog, answering `/status`.
fn start_chromedriver(chromedriver: &Path, dir: &Path) -> Driver {
    use std::os::unix::process::CommandExt;
    let log_path = dir.join("chromedriver.log");
    let mut last = String::new();
    // A free port can be taken between its probe and chromedriver's bind: a few tries.
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(chromedriver)
            .arg(port.to_string())
            .arg(&log_path)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh (chromedriver's watchdog)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(watchdog.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        // The pipe stays open in `watchdog` (its stdin) for as long as the Driver lives.
        let driver = Driver {
            pid: line
                .trim()
                .parse()
                .expect("chromedriver's pid from its watchdog"),
            watchdog,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = http_request(addr, "GET /status HTTP/1.1", Duration::from_secs(2)) {
                if status.starts_with("HTTP/1.1 200") {
                    return driver;
                }
            }
            if !live_in_group(driver.group()).contains(&driver.pid) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(driver);
        last = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    panic!("chromedriver did not answer on 127.0.0.1; its log:\n{last}");
}

/// One request line to `addr` (no body); the response's head, once it has come (chromedriver
/// answers a session's DELETE after Chromium has quit).
fn http_request(
    addr: SocketAddr,
    request_line: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{request_line}\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while !contains(&out, b"\r\n\r\n") {
        match s.read(&mut chunk)? {
            0 => break,
            n => out.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A byte-level TCP relay on 127.0.0.1 to `upstream` that keeps every byte upstream sent back
/// through it, for asserting what reached a browser (the dashboard speaks plain HTTP/1.1 without
/// compression in the tests, so the recording is the responses as sent).
pub struct RecordingProxy {
    addr: SocketAddr,
    recorded: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts the relay (on the current tokio runtime).
    pub fn start(upstream: SocketAddr) -> RecordingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let rec = recorded.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept loop when the proxy is: every connection ends with it.
            let mut conns = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors, say: not a busy loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let rec = rec.clone();
                conns.spawn(relay(client, upstream, rec));
                while conns.try_join_next().is_some() {}
            }
        });
        RecordingProxy {
            addr,
            recorded,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the proxy as a browser's origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every byte upstream has sent to any client so far, connections one after another.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }

    /// Forgets what was recorded so far (to check one step of a test on its own).
    pub fn clear(&self) {
        self.recorded.lock().unwrap().clear();
    }

    /// Panics when the recording holds any of `needles`, naming only the needle's index (the
    /// needles are secret values; neither they nor the recording are printed). Also panics when
    /// nothing was recorded, which would make the check vacuous, and on an empty needle.
    #[track_caller]
    pub fn assert_never_contains(&self, needles: &[&str]) {
        let rec = self.recorded.lock().unwrap();
        assert!(
            !rec.is_empty(),
            "the proxy recorded nothing: no response went through it"
        );
        for (i, n) in needles.iter().enumerate() {
            assert!(!n.is_empty(), "needle #{i} is empty");
            assert!(
                !contains(&rec, n.as_bytes()),
                "needle #{i} reached a client through the proxy ({} bytes recorded)",
                rec.len()
            );
        }
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: client → upstream as is, upstream → client recorded. Each direction's
/// end (EOF) is passed on as a half-close.
async fn relay(client: TokioStream, upstream: SocketAddr, rec: Arc<Mutex<Vec<u8>>>) {
    let Ok(up) = TokioStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let to_upstream = async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
        let _ = uw.shutdown().await;
    };
    let to_client = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Recorded before it is passed on: once the browser shows it, it is here.
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(to_upstream, to_client);
}

/// A request [`StaticSite`] received. Its `Debug` shows the method, the path, the header names
/// and the body's length only (header values and bodies may hold secrets).
#[derive(Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0: the attacker's page on another origin, or any page a
/// test needs. It answers every request, whatever the method, with its HTML (`text/html;
/// charset=utf-8`), or with a route's content when the path (without the query) is one of its
/// routes; `/favicon.ico` is a 404 unless routed. It keeps every request it received.
pub struct StaticSite {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

type Routes = HashMap<String, (String, Vec<u8>)>;

impl StaticSite {
    /// A site that answers everything with `html`.
    pub fn start(html: String) -> StaticSite {
        Self::start_with(html, &[])
    }

    /// A site with `routes` (path, content type, body) and `html` for every other path.
    pub fn start_with(html: String, routes: &[(&str, &str, &str)]) -> StaticSite {
        let mut map: Routes = routes
            .iter()
            .map(|(p, t, b)| (p.to_string(), (t.to_string(), b.as_bytes().to_vec())))
            .collect();
        map.entry(String::new())
            .or_insert(("text/html; charset=utf-8".into(), html.into_bytes()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (reqs, routes) = (requests.clone(), Arc::new(map));
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                conns.spawn(serve_one(stream, routes.clone(), reqs.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        StaticSite {
            addr,
            requests,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (up to [`WAIT`]) for a request with this method and path (without the query).
    pub async fn wait_for_request(&self, method: &str, path: &str) -> Request {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .requests()
                .into_iter()
                .find(|r| r.method == method && r.path.split('?').next() == Some(path));
            if let Some(r) = found {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {method} {path} reached the site within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head, then a `Content-Length` body), records it, answers, closes.
async fn serve_one(mut stream: TokioStream, routes: Arc<Routes>, reqs: Arc<Mutex<Vec<Request>>>) {
    const MAX: usize = 1 << 20;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if buf.len() + n <= MAX => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    let route = path.split('?').next().unwrap_or_default();
    let answer = match routes.get(route) {
        Some(r) => Some(r),
        None if route == "/favicon.ico" => None,
        None => routes.get(""),
    };
    reqs.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    let response = match answer {
        Some((content_type, body)) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// Saves a PNG of the page into `docs/screenshots/{name}.png` of the repository, for the docs.
pub async fn screenshot(client: &Client, name: &str) {
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
        "a screenshot name is letters, digits, - and _: {name:?}"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    screenshot_to(client, &dir.join(format!("{name}.png"))).await;
}

/// Saves a PNG of the page at `path`, creating its directory.
pub async fn screenshot_to(client: &Client, path: &Path) {
    let png = client.screenshot().await.expect("take a screenshot");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, png).unwrap();
}

/// Waits (up to [`WAIT`]) until an element matches `css`; returns it.
pub async fn wait_for(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element matches {css:?} within {WAIT:?}: {e}"))
}

/// Types `text` into the field at `css` (waited for), after clearing it. The text is never
/// printed (a secret value, often).
pub async fn fill(client: &Client, css: &str, text: &str) {
    let e = wait_for(client, css).await;
    e.clear()
        .await
        .unwrap_or_else(|err| panic!("clear {css:?}: {err}"));
    e.send_keys(text)
        .await
        .unwrap_or_else(|err| panic!("type into {css:?}: {err}"));
}

/// Clicks the element at `css` (waited for).
pub async fn click(client: &Client, css: &str) {
    wait_for(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|err| panic!("click {css:?}: {err}"));
}

/// The rendered text of the element at `css` (waited for).
pub async fn text_of(client: &Client, css: &str) -> String {
    wait_for(client, css)
        .await
        .text()
        .await
        .unwrap_or_else(|err| panic!("text of {css:?}: {err}"))
}

/// Waits (up to [`WAIT`]) until the element at `css` shows exactly `want`; panics naming the
/// selector only (neither text is printed).
pub async fn wait_for_text(client: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(e) = client.find(Locator::Css(css)).await {
            if e.text().await.is_ok_and(|t| t == want) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css:?} did not show the expected text within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
