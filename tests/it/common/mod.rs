//! Test harness: the real server in-process on port 0, and the real binaries as a user runs
//! them. Shared by every module of the suite (`tests/it/`).
#![allow(dead_code)]

pub mod browser;
pub mod private_pg;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runseal::auth::Credential;
use runseal::client::{Client, ClientError};
use runseal::datadir::DataDir;
use runseal::grpc::{self, Listener};
use runseal::names::{Limits, NamePolicy};
use runseal::secret::SecretBytes;
use runseal::service::{Clock, Service, SystemClock};
use runseal::store::Store;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::{Code, Status};

pub const RUNSEALD: &str = env!("CARGO_BIN_EXE_runseald");
pub const RUNSEAL: &str = env!("CARGO_BIN_EXE_runseal");
pub const AGENT: &str = env!("CARGO_BIN_EXE_runseal-agent");

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL database of its own for one test, created from `RUNSEAL_TEST_DATABASE_URL`
/// and dropped afterwards.
pub struct PgDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDb {
    pub fn create() -> Self {
        let base = std::env::var("RUNSEAL_TEST_DATABASE_URL").expect(
            "RUNSEAL_TEST_DATABASE_URL must be set when the PostgreSQL tests are compiled in",
        );
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "runseal_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let (prefix, _) = base.rsplit_once('/').expect("a URL ending in /DATABASE");
        let url = format!("{prefix}/{name}");
        let db = Self {
            url,
            admin_url: base,
            name,
        };
        db.exec(&format!("CREATE DATABASE {}", db.name));
        db
    }

    /// Runs a script of plain SQL (e.g. a `pg_dump` without psql meta-commands) on this
    /// database.
    pub fn load_sql(&self, sql: &str) {
        run_sql(&self.url, sql);
    }

    /// Runs one statement on the base database (usable from Drop).
    fn exec(&self, sql: &str) {
        run_sql(&self.admin_url, sql);
    }
}

/// Runs SQL on the database at `url`, on a runtime of its own.
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("PostgreSQL at RUNSEAL_TEST_DATABASE_URL is unreachable");
            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        })
    })
    .join()
    .unwrap();
}

impl Drop for PgDb {
    fn drop(&mut self) {
        self.exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// runseald in this process, on 127.0.0.1:0, on a fresh data dir.
pub struct TestServer {
    pub pg: Option<PgDb>,
    pub dir: TempDir,
    pub addr: String,
    pub admin: Credential,
    pub store: Arc<dyn Store>,
    /// The dashboard of this server (`host:port`).
    pub web_addr: String,
    pub service: Arc<Service>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default(), NamePolicy::default()).await
    }

    pub async fn start_with(limits: Limits, policy: NamePolicy) -> Self {
        Self::start_on(Backend::Sqlite, limits, policy).await
    }

    pub async fn start_on(backend: Backend, limits: Limits, policy: NamePolicy) -> Self {
        Self::start_full(backend, limits, policy, Arc::new(SystemClock)).await
    }

    /// A server on `clock` (a `runseal::service::ManualClock` the test advances).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::start_on_clock(Backend::Sqlite, clock).await
    }

    /// [`TestServer::start_with_clock`] on either backend.
    pub async fn start_on_clock(backend: Backend, clock: Arc<dyn Clock>) -> Self {
        Self::start_full(backend, Limits::default(), NamePolicy::default(), clock).await
    }

    async fn start_full(
        backend: Backend,
        limits: Limits,
        policy: NamePolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = (backend == Backend::Postgres).then(PgDb::create);
        let data = DataDir::new(dir.path().join("data"), None)
            .with_database_url(pg.as_ref().map(|p| p.url.clone()));
        let opened = data.open_or_init().await.unwrap();
        let admin_line = std::fs::read_to_string(data.admin_key_path()).unwrap();
        let admin = Credential::parse(&admin_line).unwrap();
        let store = opened.store.clone();
        let service =
            Arc::new(Service::new(opened.store, opened.sealer, policy, limits).with_clock(clock));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let web_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web_local = web_listener.local_addr().unwrap();
        let web_addr = web_local.to_string();
        let web_config = runseal::web::WebConfig::for_addr(
            web_local,
            false,
            &[],
            runseal::web::body_limit(&limits),
        );
        let web = runseal::web::Web::new(service.clone(), web_config);
        let service_handle = service.clone();
        let (web_stop, web_stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(runseal::web::serve(web_listener, None, web, web_stopped));
        let routes = grpc::routes(service).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            grpc::serve(routes, vec![Listener::Tcp(listener)], async {
                let _ = rx.await;
            })
            .await
            .unwrap();
            let _ = web_stop.send(true);
        });
        Self {
            pg,
            dir,
            addr,
            admin,
            store,
            web_addr,
            service: service_handle,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn client(&self, key: &Credential) -> Client {
        Client::connect(&self.addr, key.clone()).await.unwrap()
    }

    pub async fn admin_client(&self) -> Client {
        self.client(&self.admin).await
    }

    /// A new key with these scopes, made through the API.
    pub async fn key_with(&self, scopes: &[&str]) -> Credential {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let (_, cred) = self
            .admin_client()
            .await
            .keys()
            .create(&scopes, "test")
            .await
            .unwrap();
        cred
    }

    pub async fn stop(mut self) {
        // As runseald does when it stops: open watches end, so in-flight calls can finish.
        self.service.stop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A `runseald serve` process on a data dir, with its stderr collected.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
    /// The thread that copies runseald's stderr into `log`; it ends when that stderr closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `runseald serve --data-dir DIR --listen 127.0.0.1:0 ARGS…` (with
    /// `--web-listen off` unless ARGS name the dashboard's address or a config file) and waits
    /// until it listens.
    pub fn start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::try_start(data_dir, args, envs)
            .unwrap_or_else(|log| panic!("runseald did not start:\n{log}"))
    }

    /// Like [`Daemon::start`], but returns the log when runseald exits instead of listening.
    pub fn try_start(
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(RUNSEALD);
        cmd.arg("serve").arg("--data-dir").arg(data_dir);
        if !args.contains(&"--listen") && !args.contains(&"--unix") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        // Tests never take the dashboard's default port unless they mean to (they say so with
        // a config file of their own).
        if !args.contains(&"--web-listen") && !args.contains(&"--config") {
            cmd.args(["--web-listen", "off"]);
        }
        cmd.args(args)
            .env_remove("RUNSEAL_LOG")
            .env_remove("RUNSEALD_DATA_DIR")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn runseald");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening") {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            })
        };
        let mut d = Self {
            child,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                if let Some(addr) = listening_addr(&line) {
                    d.addr = addr;
                    return Ok(d);
                }
                continue;
            }
            if let Ok(Some(_)) = d.child.try_wait() {
                d.drain_log();
                return Err(d.log());
            }
            if Instant::now() > deadline {
                let _ = d.child.kill();
                return Err(format!("timeout\n{}", d.log()));
            }
        }
    }

    /// Waits (up to 10 s) until runseald's stderr is closed and all of it is in `log`: after
    /// runseald exited, the log is then complete.
    fn drain_log(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() {
            assert!(
                Instant::now() < deadline,
                "runseald's stderr stayed open 10 s after it exited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        reader.join().unwrap();
    }

    /// Waits until the log holds `needle`, up to `within`; returns the log. Panics with the log
    /// when the line does not come.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "runseald did not log {needle:?} within {within:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of the metrics listener, from runseald's log (it was started with
    /// `--metrics-listen 127.0.0.1:0`).
    pub fn metrics_addr(&self) -> String {
        let log = self.wait_for_log("metrics listening", Duration::from_secs(10));
        let line = log
            .lines()
            .find(|l| l.contains("metrics listening"))
            .unwrap();
        let rest = &line[line.find("addr=").expect("addr= in the metrics line") + 5..];
        rest.split_whitespace().next().unwrap().to_string()
    }

    /// The dashboard's `host:port`, from its start-up line (`url=http://HOST:PORT/`).
    pub fn web_addr(&self) -> String {
        let log = self.wait_for_log("dashboard listening", Duration::from_secs(10));
        let line = log
            .lines()
            .find(|l| l.contains("dashboard listening"))
            .unwrap();
        let rest = &line[line.find("://").expect("a URL in the dashboard line") + 3..];
        rest.split(['/', ' ']).next().unwrap().to_string()
    }

    pub fn admin_key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.key"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> (bool, String) {
        signal(&self.child, "TERM");
        let status = wait_timeout(&mut self.child, Duration::from_secs(20));
        self.drain_log();
        (status, self.log())
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in runseald's "listening" line, text (`addr=…` or `path=…` for a Unix socket)
/// or JSON (`--log-format json`: the `addr` or `path` field), as a client URL.
fn listening_addr(line: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = &v["fields"];
        if fields["message"] != "listening" {
            return None;
        }
        if let Some(addr) = fields["addr"].as_str() {
            return Some(format!("http://{addr}"));
        }
        return fields["path"].as_str().map(|p| format!("unix:{p}"));
    }
    let field = |name: &str| {
        let i = line.find(name)?;
        let rest = &line[i + name.len()..];
        let end = rest.find([' ', '"']).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    if let Some(addr) = field("addr=") {
        Some(format!("http://{addr}"))
    } else {
        field("path=").map(|p| format!("unix:{p}"))
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

fn wait_timeout(child: &mut Child, t: Duration) -> bool {
    let deadline = Instant::now() + t;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {t:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `runseal-agent ARGS` against `addr` with `RUNSEAL_TOKEN=token`, and nothing else of the
/// test's environment but PATH; stdin empty, stdout and stderr captured.
pub fn agent(addr: &str, token: &str, args: &[&str]) -> Command {
    let mut c = Command::new(AGENT);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("RUNSEAL_ADDR", addr)
        .env("RUNSEAL_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A secret value from text.
pub fn v(s: &str) -> SecretBytes {
    SecretBytes::new(s.as_bytes().to_vec())
}

/// Writes `text` as `runseald.toml` in `dir`; returns its path, for `--config`.
pub fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("runseald.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `GET path` over HTTP/1.1 from `addr`: the whole response, headers included.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// `runseald verify` on a data dir (and its PostgreSQL database).
pub fn runseald_verify(dir: &Path, db_url: Option<&str>) -> Output {
    let mut cmd = Command::new(RUNSEALD);
    cmd.arg("verify").arg("--data-dir").arg(dir);
    if let Some(url) = db_url {
        cmd.args(["--database-url", url]);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// Copies a fixture file with mode 0600 (git keeps no modes; runseald refuses a master key or
/// database that others can read).
pub fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs the `runseal` CLI against `addr` with `RUNSEAL_KEY=key`.
pub fn runseal(addr: &str, key: &str, args: &[&str]) -> Output {
    runseal_stdin(addr, key, args, None)
}

pub fn runseal_stdin(addr: &str, key: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(RUNSEAL)
        .args(args)
        .env("RUNSEAL_ADDR", addr)
        .env("RUNSEAL_KEY", key)
        .env_remove("RUNSEAL_CA_CERT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runseal");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// What a refused call returns: a gRPC status, or the SDK's error (whose text is what the CLI
/// prints) around one.
pub trait Refusal: std::fmt::Display {
    /// The status the server answered with; `None` when it did not answer.
    fn status(&self) -> Option<&Status>;
}

impl Refusal for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

impl Refusal for ClientError {
    fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Status(s) => Some(s),
            _ => None,
        }
    }
}

/// Asserts that `res` was refused by the server with `code` and a message holding every needle,
/// and that neither the message nor the error's text holds any of `secrets` (the request's values
/// or key secrets; one shorter than 3 bytes is too common to look for). `what` names the call in
/// the failure. Returns the message.
#[track_caller]
pub fn refused<T, E: Refusal>(
    res: Result<T, E>,
    code: Code,
    needles: &[&str],
    secrets: &[&[u8]],
    what: &str,
) -> String {
    let err = match res {
        Ok(_) => panic!("{what}: was accepted, expected {code:?}"),
        Err(e) => e,
    };
    let text = err.to_string();
    let Some(status) = err.status() else {
        panic!("{what}: expected a {code:?} status, got: {text}")
    };
    let msg = status.message();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        assert!(
            !contains(text.as_bytes(), s) && !contains(msg.as_bytes(), s),
            "{what}: a secret leaked into the error message"
        );
    }
    assert_eq!(status.code(), code, "{what}: wrong code; message: {msg}");
    for n in needles {
        assert!(
            msg.contains(n),
            "{what}: message lacks {n:?}; message: {msg}"
        );
    }
    msg.to_string()
}

/// Asserts a refused CLI call: exit 1 and a reason on stderr.
#[track_caller]
pub fn cli_refused(out: &Output, reason: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal: {}",
        stderr(out)
    );
    assert!(
        stderr(out).contains(reason),
        "the error should say {reason:?}: {}",
        stderr(out)
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "runseal failed ({:?}): {}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts that `what` succeeded and returns its stdout.
#[track_caller]
pub fn succeeded(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts that `o` exited 1, a refusal, and that its stderr says each of `needles`; returns
/// the stderr.
#[track_caller]
pub fn refusal(o: &Output, needles: &[&str]) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected a refusal: {}",
        stderr(o)
    );
    let err = stderr(o);
    for n in needles {
        assert!(err.contains(n), "the error should say {n:?}: {err}");
    }
    err
}

/// `out` (what a `--output json` printed) as JSON.
#[track_caller]
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `runseald ARGS…` with none of the test's runseald settings from the environment.
pub fn runseald<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(RUNSEALD)
        .args(args)
        .env_remove("RUNSEALD_DATA_DIR")
        .env_remove("RUNSEALD_DATABASE_URL")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .expect("spawn runseald")
}

/// The permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The names `secrets list` shows in `env`.
pub async fn secret_names(c: &Client, env: &str) -> Vec<String> {
    c.secrets()
        .list(env)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// Every value of `main`, as a runner `runner_id` started on `addr` with a runner token the
/// `admin` key issues gets them.
pub async fn runner_values(
    addr: &str,
    admin: &Credential,
    runner_id: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let client = Client::connect(addr, admin.clone()).await.unwrap();
    let token = client
        .runners()
        .issue("main", runseal::client::IssueOptions::default())
        .await
        .unwrap()
        .remove(0)
        .token;
    let snapshot = Client::connect(addr, token)
        .await
        .unwrap()
        .runners()
        .snapshot("main", runner_id, &[])
        .await
        .unwrap();
    snapshot
        .secrets
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_vec()))
        .collect()
}

/// Runs each `async fn NAME(b: Backend)` named as a test on SQLite (`sqlite::NAME`) and, when
/// the PostgreSQL tests are compiled in, on PostgreSQL (`postgres::NAME`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )*
        }
        #[cfg(runseal_pg_tests)]
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Postgres).await } )*
        }
    };
}
pub(crate) use on_both_backends;

/// Every file under `dir`, recursively, with its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// PEM files of a test PKI.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
pub fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    // Every certificate gets a subject of its own: with rcgen's one default name for all, a
    // leaf's issuer equals its subject and OpenSSL/BoringSSL clients (grpcio) take it for
    // self-signed and refuse it.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "runseal test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
    let (client_cert, client_key) = leaf(vec!["runner.example".into()]);
    let write = |name: &str, pem: &str| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}
