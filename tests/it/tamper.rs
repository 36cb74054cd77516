//! Write access to the database is not read access to the secrets (hardening issue 12, item 2).
//!
//! Each test tampers with the database through the backend's own SQL client (rusqlite on the SQLite
//! file, or on the PostgreSQL database) while runseald runs, as an attacker holding only the
//! database login would, and checks that the attack gains nothing (UNAUTHENTICATED for
//! credentials, DATA_LOSS naming the environment for secrets) and that `runseald verify` exits
//! non-zero naming the row. Also: a data dir and a database made by the code before the MACs
//! (tests/fixtures/v0_1) upgrade in place and keep serving, PostgreSQL replicas upgrading together
//! do not race, and `rotate-master-key` keeps every MAC valid.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{v, Backend, TestServer, RUNSEALD};
use runseal::auth::generate_key;
use runseal::client::{Client, ClientError, IssueOptions};
use runseal::service::ManualClock;
use sqlx::Connection;
use tonic::Code;

fn err<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (Code, String) {
    let e = r.expect_err("the attack must fail");
    (e.code().expect("a gRPC status"), e.to_string())
}

/// The database of a test server, reached with the backend's own client.
struct Db<'a>(&'a TestServer);

impl Db<'_> {
    fn sqlite_path(&self) -> std::path::PathBuf {
        self.0.dir.path().join("data").join("runseal.db")
    }

    /// Runs SQL (several statements allowed): `sqlite` on SQLite, `pg` on PostgreSQL.
    async fn exec(&self, sqlite: &str, pg: &str) {
        match &self.0.pg {
            None => {
                let c = rusqlite::Connection::open(self.sqlite_path()).unwrap();
                c.execute_batch(sqlite).unwrap();
                c.close().unwrap();
            }
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql(pg).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// One text value.
    async fn text(&self, sqlite: &str, pg: &str) -> String {
        match &self.0.pg {
            None => {
                let c = rusqlite::Connection::open(self.sqlite_path()).unwrap();
                let s: String = c.query_row(sqlite, [], |r| r.get(0)).unwrap();
                c.close().unwrap();
                s
            }
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let s: String = sqlx::query_scalar(pg).fetch_one(&mut c).await.unwrap();
                c.close().await.unwrap();
                s
            }
        }
    }

    /// Whether `table` has a `mac` column (the attacker then fills it, here with a copy of a
    /// valid MAC of another row, the best an attacker without the key can do).
    async fn has_mac(&self, table: &str) -> bool {
        let n = self
            .text(
                &format!("SELECT CAST(COUNT(*) AS TEXT) FROM pragma_table_info('{table}') WHERE name = 'mac'"),
                &format!("SELECT COUNT(*)::TEXT FROM information_schema.columns WHERE table_name = '{table}' AND column_name = 'mac'"),
            )
            .await;
        n == "1"
    }

    /// A blob literal in this backend's SQL.
    fn blob(&self, hex: &str) -> String {
        match &self.0.pg {
            None => format!("X'{hex}'"),
            Some(_) => format!("decode('{hex}', 'hex')"),
        }
    }

    /// A blob column as hex, in this backend's SQL.
    fn hex_of(&self, column: &str) -> String {
        match &self.0.pg {
            None => format!("lower(hex({column}))"),
            Some(_) => format!("encode({column}, 'hex')"),
        }
    }
}

/// `runseald verify` on the test server's data (it may run beside the server).
fn verify(s: &TestServer) -> Output {
    let mut cmd = Command::new(RUNSEALD);
    cmd.arg("verify")
        .arg("--data-dir")
        .arg(s.dir.path().join("data"));
    if let Some(db) = &s.pg {
        cmd.args(["--database-url", &db.url]);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn assert_verify_names(s: &TestServer, what: &[&str]) {
    let out = verify(s);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "verify passed a tampered database:\n{text}"
    );
    for w in what {
        assert!(text.contains(w), "verify does not name {w}:\n{text}");
    }
}

/// A server with environments production (DB_URL, API_TOKEN exposed; SIGNING_KEY only for an
/// allow-list that names it) and staging.
async fn setup(b: Backend) -> (TestServer, Client) {
    let (s, c, _) = setup_clocked(b).await;
    (s, c)
}

/// [`setup`] on a manual clock the test moves.
async fn setup_clocked(b: Backend) -> (TestServer, Client, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let s = TestServer::start_on_clock(b, clock.clone()).await;
    let c = s.admin_client().await;
    c.environments().create("production").await.unwrap();
    c.environments().create("staging").await.unwrap();
    c.secrets()
        .set_many(
            "production",
            vec![
                ("DB_URL".into(), v("postgres://prod")),
                ("API_TOKEN".into(), v("prod-api")),
            ],
        )
        .await
        .unwrap();
    c.secrets()
        .set_many_with(
            "production",
            vec![("SIGNING_KEY".into(), v("prod-signing"))],
            Some(false),
        )
        .await
        .unwrap();
    c.secrets()
        .set("DB_URL", v("postgres://staging"), "staging")
        .await
        .unwrap();
    (s, c, clock)
}

fn runner(s: &TestServer, token: &runseal::auth::Credential) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(s.addr.clone())
        .unwrap()
        .connect_lazy();
    Client::from_channel(channel, token, &s.addr)
}

async fn token(c: &Client, env: &str, opts: IssueOptions) -> runseal::client::IssuedToken {
    c.runners().issue(env, opts).await.unwrap().remove(0)
}

/// The names a fresh runner of `env` gets, or the error.
async fn start(s: &TestServer, c: &Client, env: &str) -> Result<Vec<String>, (Code, String)> {
    let t = token(c, env, IssueOptions::default()).await;
    match runner(s, &t.token).runners().snapshot("", "", &[]).await {
        Ok(snap) => {
            let mut names: Vec<String> = snap.secrets.iter().map(|(n, _)| n.clone()).collect();
            names.sort();
            Ok(names)
        }
        Err(e) => Err((e.code().unwrap(), e.to_string())),
    }
}

/// UNAUTHENTICATED because the stored row failed its MAC (not for another reason).
fn assert_refused_by_mac(code: Code, msg: &str) {
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    assert!(msg.contains("integrity check"), "{msg}");
}

fn assert_data_loss(r: Result<Vec<String>, (Code, String)>, env: &str) {
    match r {
        Ok(names) => panic!("the tampered environment was served: {names:?}"),
        Err((code, msg)) => {
            assert_eq!(code, Code::DataLoss, "{msg}");
            assert!(msg.contains(env), "DATA_LOSS does not name {env}: {msg}");
        }
    }
}

async fn an_inserted_key_row_grants_nothing(b: Backend) {
    let (s, _c) = setup(b).await;
    let db = Db(&s);
    let forged = generate_key();
    let hash = hex::encode(forged.secret_hash());
    let (cols, vals) = if db.has_mac("api_keys").await {
        (", mac", ", (SELECT mac FROM api_keys LIMIT 1)".to_string())
    } else {
        ("", String::new())
    };
    let sql = |blob: String| {
        format!(
            "INSERT INTO api_keys (id, secret_hash, label, scopes, created_at{cols}) \
             VALUES ('{}', {blob}, 'forged', 'admin,snapshot:production', 0{vals})",
            forged.key_id()
        )
    };
    db.exec(
        &sql(format!("X'{hash}'")),
        &sql(format!("decode('{hash}', 'hex')")),
    )
    .await;
    let attacker = Client::connect(&s.addr, forged.clone()).await.unwrap();
    let (code, msg) = err(attacker.runners().snapshot("production", "", &[]).await);
    assert_refused_by_mac(code, &msg);
    let (code, _) = err(attacker.keys().list().await);
    assert_eq!(code, Code::Unauthenticated);
    assert_verify_names(&s, &["api_keys", forged.key_id()]);
}

async fn a_rewritten_scope_grants_nothing(b: Backend) {
    let (s, _c) = setup(b).await;
    let reader = s.key_with(&["read:staging"]).await;
    let attacker = Client::connect(&s.addr, reader.clone()).await.unwrap();
    // Before: the key reads staging's names and fetches no values.
    attacker.secrets().list("staging").await.unwrap();
    Db(&s)
        .exec(
            &format!(
                "UPDATE api_keys SET scopes = 'snapshot:production' WHERE id = '{}'",
                reader.key_id()
            ),
            &format!(
                "UPDATE api_keys SET scopes = 'snapshot:production' WHERE id = '{}'",
                reader.key_id()
            ),
        )
        .await;
    let (code, msg) = err(attacker.runners().snapshot("production", "", &[]).await);
    assert_refused_by_mac(code, &msg);
    assert_verify_names(&s, &["api_keys", reader.key_id()]);
}

async fn a_rewritten_runner_token_grants_nothing(b: Backend) {
    let (s, c, clock) = setup_clocked(b).await;
    let db = Db(&s);
    // Uses given back: a single-use token, used, rewritten to one more use.
    let used = token(&c, "production", IssueOptions::default()).await;
    runner(&s, &used.token)
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    let sql = format!(
        "UPDATE runner_tokens SET uses_left = 5 WHERE id = '{}'",
        used.token_id
    );
    db.exec(&sql, &sql).await;
    let (code, msg) = err(runner(&s, &used.token)
        .runners()
        .snapshot("", "", &[])
        .await);
    assert_refused_by_mac(code, &msg);

    // Moved to another environment: a staging token rewritten to production.
    let moved = token(&c, "staging", IssueOptions::default()).await;
    let sql = format!(
        "UPDATE runner_tokens SET environment = 'production' WHERE id = '{}'",
        moved.token_id
    );
    db.exec(&sql, &sql).await;
    let (code, msg) = err(runner(&s, &moved.token)
        .runners()
        .snapshot("", "", &[])
        .await);
    assert_refused_by_mac(code, &msg);

    // Expiry pushed back: a token that has expired, given another day.
    let expired = token(
        &c,
        "production",
        IssueOptions {
            ttl: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    clock.advance(Duration::from_millis(1100));
    let sql = format!(
        "UPDATE runner_tokens SET expires_at = expires_at + 86400000 WHERE id = '{}'",
        expired.token_id
    );
    db.exec(&sql, &sql).await;
    let (code, msg) = err(runner(&s, &expired.token)
        .runners()
        .snapshot("", "", &[])
        .await);
    assert_refused_by_mac(code, &msg);

    assert_verify_names(
        &s,
        &[
            "runner_tokens",
            &used.token_id,
            &moved.token_id,
            &expired.token_id,
        ],
    );
    // The untampered rest still works.
    assert_eq!(
        start(&s, &c, "production").await.unwrap(),
        vec!["API_TOKEN", "DB_URL"]
    );
}

async fn a_forged_retry_row_grants_nothing(b: Backend) {
    let (s, c) = setup(b).await;
    let db = Db(&s);
    // The attacker knows a used token's id and adds a start with a retry key of their own.
    let t = token(&c, "production", IssueOptions::default()).await;
    runner(&s, &t.token)
        .runners()
        .snapshot_with_retry_key("", "r-legit", &[], &[7u8; 32])
        .await
        .unwrap();
    let mine = [9u8; 32];
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(mine));
    let (cols, vals) = if db.has_mac("runners").await {
        (", mac", ", (SELECT mac FROM runners LIMIT 1)".to_string())
    } else {
        ("", String::new())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let sql = |blob: String| {
        format!(
            "INSERT INTO runners (runner_id, environment, revision, started_at, credential_id, retry_hash{cols}) \
             VALUES ('r-attacker', 'production', 2, {now}, '{}', {blob}{vals})",
            t.token_id
        )
    };
    db.exec(&sql(db.blob(&hash)), &sql(db.blob(&hash))).await;
    let (code, msg) = err(runner(&s, &t.token)
        .runners()
        .snapshot_with_retry_key("", "r-attacker", &[], &mine)
        .await);
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    assert_verify_names(&s, &["runners", "r-attacker"]);
}

async fn a_flipped_exposure_is_data_loss(b: Backend) {
    let (s, c) = setup(b).await;
    Db(&s)
        .exec(
            "UPDATE secrets SET exposed = 1 WHERE environment = 'production' AND name = 'SIGNING_KEY'",
            "UPDATE secrets SET exposed = true WHERE environment = 'production' AND name = 'SIGNING_KEY'",
        )
        .await;
    assert_data_loss(start(&s, &c, "production").await, "production");
    // Other environments keep serving.
    assert_eq!(start(&s, &c, "staging").await.unwrap(), vec!["DB_URL"]);
    assert_verify_names(&s, &["production"]);
}

async fn a_deleted_secret_is_data_loss(b: Backend) {
    let (s, c) = setup(b).await;
    let sql = "DELETE FROM secrets WHERE environment = 'production' AND name = 'API_TOKEN'";
    Db(&s).exec(sql, sql).await;
    assert_data_loss(start(&s, &c, "production").await, "production");
    assert_verify_names(&s, &["production"]);
}

async fn an_older_ciphertext_put_back_is_data_loss(b: Backend) {
    let (s, c) = setup(b).await;
    let db = Db(&s);
    let old = db
        .text(
            &format!(
                "SELECT {} || ':' || {} FROM secrets WHERE environment = 'production' AND name = 'DB_URL'",
                db.hex_of("nonce"),
                db.hex_of("ciphertext")
            ),
            &format!(
                "SELECT {} || ':' || {} FROM secrets WHERE environment = 'production' AND name = 'DB_URL'",
                db.hex_of("nonce"),
                db.hex_of("ciphertext")
            ),
        )
        .await;
    let (nonce, ct) = old.split_once(':').unwrap();
    c.secrets()
        .set("DB_URL", v("postgres://prod-rotated"), "production")
        .await
        .unwrap();
    let sql = format!(
        "UPDATE secrets SET nonce = {}, ciphertext = {} WHERE environment = 'production' AND name = 'DB_URL'",
        db.blob(nonce),
        db.blob(ct)
    );
    db.exec(&sql, &sql).await;
    assert_data_loss(start(&s, &c, "production").await, "production");
    assert_verify_names(&s, &["production"]);
}

/// Rotating the master key re-wraps the integrity key: every MAC stays valid, and keys,
/// tokens and snapshots keep working, on this server and after a restart.
async fn rotating_the_master_key_keeps_every_mac_valid(b: Backend) {
    let (s, c) = setup(b).await;
    let reader = s.key_with(&["read:staging"]).await;
    let t = token(
        &c,
        "production",
        IssueOptions {
            uses: 2,
            ..Default::default()
        },
    )
    .await;
    runner(&s, &t.token)
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    let mut cmd = Command::new(RUNSEALD);
    cmd.arg("rotate-master-key")
        .arg("--data-dir")
        .arg(s.dir.path().join("data"));
    if let Some(db) = &s.pg {
        cmd.args(["--database-url", &db.url]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify(&s);
    assert!(
        out.status.success(),
        "verify after rotation: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Client::connect(&s.addr, reader)
        .await
        .unwrap()
        .secrets()
        .list("staging")
        .await
        .unwrap();
    runner(&s, &t.token)
        .runners()
        .snapshot("", "", &[])
        .await
        .unwrap();
    c.secrets()
        .set("NEW", v("after"), "production")
        .await
        .unwrap();
    c.secrets().unset("API_TOKEN", "production").await.unwrap();
    // Revocations rewrite the MACs too (verify below checks them).
    let gone = s.key_with(&["read:staging"]).await;
    c.keys().revoke(gone.key_id()).await.unwrap();
    let revoked = token(&c, "production", IssueOptions::default()).await;
    c.runners().revoke(&revoked.token_id).await.unwrap();
    let (code, msg) = err(runner(&s, &revoked.token)
        .runners()
        .snapshot("", "", &[])
        .await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(msg.contains("has been revoked"), "{msg}");
    c.environments().create("tmp").await.unwrap();
    c.secrets().set("T", v("t"), "tmp").await.unwrap();
    c.environments().delete("tmp", true).await.unwrap();
    assert_eq!(
        start(&s, &c, "production").await.unwrap(),
        vec!["DB_URL", "NEW"]
    );
    let out = verify(&s);
    assert!(
        out.status.success(),
        "verify after more changes: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

common::on_both_backends!(
    an_inserted_key_row_grants_nothing,
    a_rewritten_scope_grants_nothing,
    a_rewritten_runner_token_grants_nothing,
    a_forged_retry_row_grants_nothing,
    a_flipped_exposure_is_data_loss,
    a_deleted_secret_is_data_loss,
    an_older_ciphertext_put_back_is_data_loss,
    rotating_the_master_key_keeps_every_mac_valid,
);

// ---- Upgrade in place of data made by the code before the MACs ----

fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0_1")
        .join(path)
}

fn new_data_dir(root: &Path, name: &str, admin_key: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    common::copy_private(&fixture("master.key"), &dir.join("master.key"));
    common::copy_private(&fixture(admin_key), &dir.join("admin.key"));
    dir
}

/// What an upgraded server must still do: the old admin key works, a new runner gets the old
/// values, `verify` passes.
fn assert_serves(d: &common::Daemon, dir: &Path, db_url: Option<&str>) {
    let admin = d.admin_key();
    let names = common::ok(common::runseal(
        &d.addr,
        &admin,
        &["secrets", "list", "--env", "production"],
    ));
    assert!(names.contains("SIGNING_KEY"), "{names}");
    let t = common::ok(common::runseal(
        &d.addr,
        &admin,
        &["runner-token", "issue", "--env", "production"],
    ));
    let out = common::agent(&d.addr, t.trim(), &[])
        .args(["--", "env"])
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("DB_URL=postgres://prod\n"), "{env}");
    assert!(env.contains("API_TOKEN=prod-api\n"), "{env}");
    assert!(!env.contains("SIGNING_KEY"), "{env}");
    let out = common::runseald_verify(dir, db_url);
    assert!(
        out.status.success(),
        "verify after the upgrade: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const UPGRADE_LOG: &str = "computed integrity MACs";

#[test]
fn an_old_sqlite_data_dir_upgrades_in_place_and_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_data_dir(tmp.path(), "data", "sqlite/admin.key");
    common::copy_private(&fixture("sqlite/runseal.db"), &dir.join("runseal.db"));
    let d = common::Daemon::start(&dir, &[], &[]);
    assert_serves(&d, &dir, None);
    let (ok, log) = d.terminate();
    assert!(ok, "{log}");
    assert_eq!(log.matches(UPGRADE_LOG).count(), 1, "{log}");
    // Idempotent: the second start computes nothing and serves the same.
    let d = common::Daemon::start(&dir, &[], &[]);
    assert_serves(&d, &dir, None);
    let (_, log) = d.terminate();
    assert!(!log.contains(UPGRADE_LOG), "{log}");
}

#[cfg(runseal_pg_tests)]
#[test]
fn an_old_postgres_database_upgrades_once_with_replicas_starting_together() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = common::PgDb::create();
    pg.load_sql(&std::fs::read_to_string(fixture("pg/dump.sql")).unwrap());
    let dirs: Vec<_> = (0..3)
        .map(|i| new_data_dir(tmp.path(), &format!("replica{i}"), "pg/admin.key"))
        .collect();
    let args = ["--database-url", pg.url.as_str()];
    // Three replicas of the new binary start at once on the old database.
    let starting: Vec<_> = dirs
        .iter()
        .map(|d| {
            let d = d.clone();
            let args = args.map(str::to_string);
            std::thread::spawn(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                common::Daemon::start(&d, &a, &[])
            })
        })
        .collect();
    let daemons: Vec<_> = starting.into_iter().map(|h| h.join().unwrap()).collect();
    for (d, dir) in daemons.iter().zip(&dirs) {
        assert_serves(d, dir, Some(&pg.url));
    }
    let logs: Vec<String> = daemons.into_iter().map(|d| d.terminate().1).collect();
    let upgrades: usize = logs.iter().map(|l| l.matches(UPGRADE_LOG).count()).sum();
    assert_eq!(
        upgrades, 1,
        "exactly one replica computes the MACs:\n{logs:#?}"
    );
}

// ---- What an operator sees ----

/// A tampered row is logged by its id (never a secret) and counted in the metrics.
#[test]
fn a_tampered_row_is_logged_by_id_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = common::Daemon::start(&data, &["--metrics-listen", "127.0.0.1:0"], &[]);
    let metrics_addr = d.metrics_addr();
    let admin = d.admin_key();
    common::ok(common::runseal(
        &d.addr,
        &admin,
        &["env", "create", "staging"],
    ));
    let out = common::ok(common::runseal(
        &d.addr,
        &admin,
        &[
            "keys",
            "create",
            "--scope",
            "read:staging",
            "--label",
            "reader",
        ],
    ));
    let reader = out
        .split_whitespace()
        .find(|w| w.starts_with("rk_") && w.contains(':'))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_string();
    let (id, secret) = reader.split_once(':').unwrap();
    assert!(
        common::runseal(&d.addr, &reader, &["secrets", "list", "--env", "staging"])
            .status
            .success()
    );
    let counted = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("runseal_integrity_failures_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no integrity counter in {text}"))
    };
    assert_eq!(counted(&common::http_get(&metrics_addr, "/metrics")), 0.0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = rusqlite::Connection::open(data.join("runseal.db")).unwrap();
        c.execute("UPDATE api_keys SET scopes = 'admin' WHERE id = ?1", [id])
            .unwrap();
        c.close().unwrap();
    });
    let out = common::runseal(&d.addr, &reader, &["keys", "list"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("integrity check"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(counted(&common::http_get(&metrics_addr, "/metrics")), 1.0);
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("failed its integrity check"))
        .unwrap_or_else(|| panic!("not logged:\n{log}"));
    assert!(line.contains(id) && line.contains("api_keys"), "{line}");
    assert!(!log.contains(secret), "a key secret reached the log");
}

/// Deleting the integrity key does not make runseald authenticate the rows again (which would
/// bless whatever the attacker wrote): it refuses to start, and says why.
fn a_deleted_integrity_key_is_refused_not_recreated(pg: Option<&common::PgDb>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args: Vec<&str> = match pg {
        Some(db) => vec!["--database-url", db.url.as_str()],
        None => vec![],
    };
    let d = common::Daemon::start(&data, &args, &[]);
    let admin = d.admin_key();
    common::ok(common::runseal(&d.addr, &admin, &["secrets", "set", "K=v"]));
    let (ok, log) = d.terminate();
    assert!(ok, "{log}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        match pg {
            None => {
                let c = rusqlite::Connection::open(data.join("runseal.db")).unwrap();
                c.execute_batch("DELETE FROM data_keys WHERE id LIKE 'ik_%'")
                    .unwrap();
                c.close().unwrap();
            }
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("DELETE FROM data_keys WHERE id LIKE 'ik_%'")
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    });
    let log = match common::Daemon::try_start(&data, &args, &[]) {
        Ok(_) => panic!("runseald started without its integrity key"),
        Err(log) => log,
    };
    assert!(
        log.contains("integrity key") && log.contains("rows carry MACs"),
        "{log}"
    );
    assert!(!log.contains(UPGRADE_LOG), "{log}");
}

#[test]
fn sqlite_refuses_a_deleted_integrity_key() {
    a_deleted_integrity_key_is_refused_not_recreated(None);
}

#[cfg(runseal_pg_tests)]
#[test]
fn postgres_refuses_a_deleted_integrity_key() {
    let pg = common::PgDb::create();
    a_deleted_integrity_key_is_refused_not_recreated(Some(&pg));
}
