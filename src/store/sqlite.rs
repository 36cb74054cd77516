//! The embedded default backend: one SQLite file in WAL mode, on rusqlite.
//!
//! One writer connection behind an async mutex, a few read-only connections that WAL lets run
//! beside it. Statements run inline on the calling task: a cached point read takes
//! microseconds, less than a hand-off to another thread would cost (`docs/bench/NOTES.md`).
//! What may wait long runs on the blocking pool, so a runtime worker never waits on it:
//! `BEGIN IMMEDIATE` (the write lock, which another process may hold) and `COMMIT` (the fsync
//! of `synchronous=FULL`, which makes a committed transaction survive a crash).
//! `secure_delete` overwrites the sealed bytes of deleted rows.
//!
//! Runner starts are group-committed: starts that arrive while a commit is in flight are
//! written together in the next transaction, so a storm pays one fsync per batch, and each
//! caller is answered only once its start is durable. Their statements are the ones
//! PostgreSQL runs ([`rules::start_tx`]).
//!
//! Migrations are the files of `migrations/sqlite`, recorded in sqlx's `_sqlx_migrations`
//! table exactly as sqlx did (data dirs made before this backend keep opening).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha384};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};

use super::rules::{start_tx, Backend, Db, Start};
use super::sql::{Arg, Dialect, Mode, Row, Tx, Value};
use super::{IntegrityCell, Result, SnapshotCache, StoreError};

/// The embedded store (see the module documentation).
pub type SqliteStore = Db<Sqlite>;

/// Most runner starts written in one transaction.
const MAX_GROUP: usize = 256;
/// Read-only connections (a caller takes a free one, else waits on one).
const READERS: usize = 4;
/// How long a write waits for the write lock (another process, e.g. `runseald migrate`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits on a busy database (WAL readers are rarely kept waiting, e.g. while a
/// crashed writer's log is recovered): a read runs on a runtime worker, so it gives up soon and
/// the caller gets UNAVAILABLE, which agents retry.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);
/// Distinct statements the store runs, with room to spare.
const STATEMENT_CACHE: usize = 64;

/// The migrations, as sqlx named and checksummed them: version, description, SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "runners",
        include_str!("../../migrations/sqlite/0002_runners.sql"),
    ),
    (
        3,
        "runner retry key",
        include_str!("../../migrations/sqlite/0003_runner_retry_key.sql"),
    ),
    (
        4,
        "integrity macs",
        include_str!("../../migrations/sqlite/0004_integrity_macs.sql"),
    ),
    (
        5,
        "audit detail",
        include_str!("../../migrations/sqlite/0005_audit_detail.sql"),
    ),
    (
        6,
        "web sessions",
        include_str!("../../migrations/sqlite/0006_web_sessions.sql"),
    ),
    (
        7,
        "history and changes",
        include_str!("../../migrations/sqlite/0007_history_and_changes.sql"),
    ),
    (
        8,
        "staged rotation",
        include_str!("../../migrations/sqlite/0008_staged_rotation.sql"),
    ),
    (
        9,
        "runner received",
        include_str!("../../migrations/sqlite/0009_runner_received.sql"),
    ),
];

type Conn = Arc<Mutex<Option<Connection>>>;

pub struct Sqlite {
    writer: Conn,
    /// `None` once closed.
    readers: Vec<Conn>,
    next: AtomicUsize,
    starts: mpsc::Sender<Message>,
}

/// One runner start to commit, and its caller.
struct StartJob {
    start: Start,
    done: oneshot::Sender<Result<bool>>,
}

enum Message {
    Start(Box<StartJob>),
    /// Commit what is queued, then answer (nothing is committed after).
    Close(oneshot::Sender<()>),
}

impl Db<Sqlite> {
    /// Opens (creating if missing) the database file and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let (writer, readers) = blocking(move || open_files(&path)).await?;
        let writer = Arc::new(Mutex::new(Some(writer)));
        let (starts, queue) = mpsc::channel(4 * MAX_GROUP);
        // The committer runs on a thread of its own, as the old runner-start path did: a batch's
        // statements (a few per start, up to MAX_GROUP starts) then never hold a runtime
        // worker that requests need. It drives its future with the runtime's handle, so the
        // BEGIN and COMMIT still go to the blocking pool as every write's do.
        let runtime = tokio::runtime::Handle::current();
        let committer = writer.clone();
        std::thread::Builder::new()
            .name("runseal-starts".into())
            .spawn(move || runtime.block_on(commit_starts(committer, queue)))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the commit thread: {e}")))?;
        let readers = readers
            .into_iter()
            .map(|c| Arc::new(Mutex::new(Some(c))))
            .collect();
        let backend = Sqlite {
            writer,
            readers,
            next: AtomicUsize::new(0),
            starts,
        };
        Ok(Db {
            backend,
            snapshots: SnapshotCache::default(),
            integrity: Arc::new(IntegrityCell::default()),
        })
    }
}

fn open_files(path: &Path) -> Result<(Connection, Vec<Connection>)> {
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut writer = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    writer.busy_timeout(BUSY_TIMEOUT)?;
    writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let _: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    writer.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
         PRAGMA temp_store = MEMORY;",
    )?;
    migrate(&mut writer)?;
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(READ_BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
        readers.push(conn);
    }
    Ok((writer, readers))
}

/// Applies the migrations not yet applied, as sqlx's migrator does: refuses a database with a
/// half-applied migration, one applied here that is unknown, or one whose SQL changed since.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);",
    )?;
    let refuse = |m: String| Err(StoreError::Migrate(m));
    let mut stmt =
        conn.prepare("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")?;
    let applied = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    if let Some((v, ..)) = applied.iter().find(|(.., ok)| !ok) {
        return refuse(format!(
            "migration {v} is partially applied; fix and remove row from `_sqlx_migrations` table"
        ));
    }
    if let Some((v, ..)) = applied
        .iter()
        .find(|(v, ..)| !MIGRATIONS.iter().any(|m| m.0 == *v))
    {
        return refuse(format!(
            "migration {v} was previously applied but is missing in the resolved migrations"
        ));
    }
    for (version, description, sql) in MIGRATIONS {
        let checksum = Sha384::digest(sql.as_bytes()).to_vec();
        match applied.iter().find(|(v, ..)| v == version) {
            Some((_, c, _)) if *c != checksum => {
                return refuse(format!(
                    "migration {version} was previously applied but has been modified"
                ));
            }
            Some(_) => {}
            None => {
                let start = Instant::now();
                let tx = conn.transaction()?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                     execution_time) VALUES (?1, ?2, TRUE, ?3, -1)",
                    rusqlite::params![version, description, checksum],
                )?;
                tx.commit()?;
                let nanos = start.elapsed().as_nanos() as i64;
                conn.execute(
                    "UPDATE _sqlx_migrations SET execution_time = ?1 WHERE version = ?2",
                    rusqlite::params![nanos, version],
                )?;
            }
        }
    }
    Ok(())
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("a database task failed: {e}")))?
}

fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

/// A transaction (or in [`Mode::Once`], a connection) holding its connection's lock.
struct SqliteTx {
    conn: Option<OwnedMutexGuard<Option<Connection>>>,
    write: bool,
    begun: bool,
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_deref()
            .and_then(Option::as_ref)
            .ok_or_else(closed)
    }

    /// Runs `BEGIN`/`COMMIT`; rolls back what is left open if it fails.
    fn finish(&self, sql: &str) -> Result<()> {
        self.conn()?.execute_batch(sql).map_err(StoreError::from)
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Not committed (an error, or the caller went away): roll back, so the connection is
        // clean for the next one.
        if let Some(conn) = self.conn.as_deref().and_then(Option::as_ref) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Int(Some(i)) => ValueRef::Integer(i),
            Arg::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Arg::Blob(Some(b)) => ValueRef::Blob(b),
            Arg::Bool(Some(b)) => ValueRef::Integer(i64::from(b)),
            _ => ValueRef::Null,
        }))
    }
}

/// `$1..$n` (the statements' placeholders) as SQLite's numbered `?1..?n`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn value(v: ValueRef<'_>, i: usize) -> Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| StoreError::Corrupt(format!("result column {i} is not UTF-8 text")))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(StoreError::Corrupt(format!(
                "result column {i} is a real number"
            )))
        }
    })
}

#[async_trait]
impl Tx for SqliteTx {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut stmt = self.conn()?.prepare_cached(&sqlite_sql(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let mut stmt = self.conn()?.prepare_cached(&sqlite_sql(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let vals = (0..n)
                .map(|i| value(r.get_ref(i)?, i))
                .collect::<Result<_>>()?;
            out.push(Row(vals));
        }
        Ok(out)
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if !self.begun {
            return Ok(());
        }
        self.begun = false;
        if !self.write {
            return self.finish("COMMIT");
        }
        // The fsync, off the runtime; a failed COMMIT rolls back when the transaction drops.
        blocking(move || self.finish("COMMIT")).await
    }
}

/// A write transaction: `BEGIN IMMEDIATE` takes SQLite's write lock at once (waiting out the
/// busy timeout if another process holds it), so a transaction that reads before it writes
/// never fails for a commit made in between.
async fn begin_write(writer: &Conn) -> Result<Box<dyn Tx>> {
    let tx = SqliteTx {
        conn: Some(writer.clone().lock_owned().await),
        write: true,
        begun: false,
    };
    let tx = blocking(move || {
        let mut tx = tx;
        tx.finish("BEGIN IMMEDIATE")?;
        tx.begun = true;
        Ok(tx)
    });
    Ok(Box::new(tx.await?))
}

impl Sqlite {
    /// A free read-only connection, else the next one in turn once it is free.
    async fn reader(&self) -> OwnedMutexGuard<Option<Connection>> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(conn) = self.readers[(first + i) % n].clone().try_lock_owned() {
                return conn;
            }
        }
        self.readers[first % n].clone().lock_owned().await
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Tx>> {
        if mode == Mode::Write {
            return begin_write(&self.writer).await;
        }
        let mut tx = SqliteTx {
            conn: Some(self.reader().await),
            write: false,
            begun: false,
        };
        if mode == Mode::Snapshot {
            tx.finish("BEGIN")?;
            tx.begun = true;
        }
        Ok(Box::new(tx))
    }

    async fn start(&self, start: Start) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        let job = StartJob { start, done };
        // The committer is gone only once closed, or if it panicked: answer UNAVAILABLE so
        // agents try another replica (a restart brings it back).
        let gone = || {
            tracing::error!("the runner-start committer has stopped; restart runseald");
            StoreError::Unavailable("the runner-start committer has stopped".into())
        };
        self.starts
            .send(Message::Start(Box::new(job)))
            .await
            .map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Commits the starts already queued, then closes the readers and last the writer, whose
    /// close checkpoints the WAL into the database file. Everything after this fails.
    async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.starts.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        for reader in &self.readers {
            drop(reader.lock().await.take());
        }
        if let Some(conn) = self.writer.lock().await.take() {
            let closing = blocking(move || conn.close().map_err(|(_, e)| StoreError::from(e)));
            if let Err(e) = closing.await {
                tracing::warn!(error = %e, "closing the SQLite database");
            }
        }
    }
}

/// The committer: takes every start queued since the last commit and writes them in one
/// transaction. Ends when the store closes or is dropped.
async fn commit_starts(writer: Conn, mut queue: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = queue.recv().await {
        let mut close = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Start(job) => batch.push(*job),
                Message::Close(ack) => {
                    close = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        commit_batch(&writer, &mut batch).await;
        if let Some(ack) = close {
            let _ = ack.send(());
            return;
        }
    }
}

/// Writes one batch and answers each of its callers. Starts whose caller has gone (its request
/// was cancelled) are dropped unwritten, so they take no use of a token. If a batch breaks a
/// constraint, each start is retried alone, so one bad start cannot fail the others; any other
/// failure (busy, I/O, a full disk) concerns them all and is every caller's answer.
async fn commit_batch(writer: &Conn, batch: &mut Vec<StartJob>) {
    batch.retain(|job| !job.done.is_closed());
    if batch.is_empty() {
        return;
    }
    match write_starts(writer, batch).await {
        Ok(taken) => {
            for (job, taken) in batch.drain(..).zip(taken) {
                let _ = job.done.send(Ok(taken));
            }
        }
        Err(e) if batch.len() > 1 && is_constraint(&e) => {
            tracing::warn!(error = %e, starts = batch.len(), "a batch of runner starts broke a constraint; writing them one by one");
            for job in batch.drain(..) {
                let alone = write_starts(writer, std::slice::from_ref(&job)).await;
                let _ = job.done.send(alone.map(|t| t[0]));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, starts = batch.len(), "runner starts could not be committed");
            for job in batch.drain(..) {
                let _ = job.done.send(Err(copy_error(&e)));
            }
        }
    }
}

/// One batch in one transaction. This runs on the committer's own thread, so its BEGIN and
/// COMMIT (the fsync) run right here rather than on the blocking pool: two thread hand-offs
/// per batch saved, and the I/O stays on one thread.
async fn write_starts(writer: &Conn, jobs: &[StartJob]) -> Result<Vec<bool>> {
    let mut tx = SqliteTx {
        conn: Some(writer.clone().lock_owned().await),
        write: true,
        begun: false,
    };
    tx.finish("BEGIN IMMEDIATE")?;
    tx.begun = true;
    let mut taken = Vec::with_capacity(jobs.len());
    for j in jobs {
        taken.push(start_tx(&mut tx, &j.start).await?);
    }
    // A failed COMMIT rolls back when `tx` drops.
    tx.finish("COMMIT")?;
    tx.begun = false;
    Ok(taken)
}

/// The same failure for every caller of a failed batch (SQLite's codes are kept, so a busy
/// database still answers UNAVAILABLE).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*f, msg.clone()))
        }
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Corrupt(format!("runner starts could not be committed: {other}")),
    }
}

fn is_constraint(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

/// `runseald backup`: copies the database at `source` (live or not) into the empty file `dest`
/// with SQLite's online backup API, in one step, so the copy is one consistent read
/// transaction of the source (runseald keeps writing meanwhile: WAL readers do not block it).
/// The copy is turned into a self-contained rollback-journal file. Returns the master key
/// check values it holds (`None` for a database that is not initialised). Never creates
/// `source`.
pub fn backup_file(source: &Path, dest: &Path) -> Result<Option<StoredChecks>> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_READ_WRITE,
    )?;
    src.busy_timeout(BUSY_TIMEOUT)?;
    let mut dst = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_READ_WRITE,
    )?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(&src, &mut dst)?;
        // -1: every page in one step, in one read transaction of the source (a WAL reader, so
        // runseald's writes go on); smaller steps would restart whenever runseald commits.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                // Busy, Locked (and any later variant): wait and try again.
                _ => {
                    if Instant::now() > deadline {
                        return Err(StoreError::Unavailable(format!(
                            "the database stayed locked for {BUSY_TIMEOUT:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    drop(src);
    let _: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    let checks = match meta_value(&dst, super::META_MASTER_KEY_CHECK)? {
        Some(current) => Some(StoredChecks {
            current,
            staged: meta_value(&dst, super::META_STAGED_MASTER_KEY_CHECK)?,
        }),
        None => None,
    };
    dst.close().map_err(|(_, e)| StoreError::from(e))?;
    Ok(checks)
}

/// The master key check values a database stores.
pub struct StoredChecks {
    pub current: Vec<u8>,
    /// The new key's, while a rotation is staged.
    pub staged: Option<Vec<u8>>,
}

/// What `runseald restore` checks in a restored file before it becomes a data dir's database.
pub struct RestoredFile {
    /// The master key check value stored in it.
    pub check: Option<Vec<u8>>,
    /// Every wrapped key (data keys and the integrity key).
    pub data_keys: Vec<super::DataKeyRow>,
    /// The new key's check value and wrappings, while a rotation is staged.
    pub staged_check: Option<Vec<u8>>,
    pub staged_keys: Vec<super::DataKeyRow>,
}

/// Opens a restored database file read-only and checks it: SQLite's `integrity_check`, then
/// reads its check value and wrapped keys. Writes nothing.
pub fn inspect_file(path: &Path) -> Result<RestoredFile> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::Corrupt(format!(
            "SQLite's integrity check failed: {verdict}"
        )));
    }
    let check = meta_value(&conn, super::META_MASTER_KEY_CHECK)?;
    let staged_check = meta_value(&conn, super::META_STAGED_MASTER_KEY_CHECK)?;
    let data_keys = wrapped_keys(&conn, "data_keys")?;
    let staged_keys = wrapped_keys(&conn, "staged_wrappings")?;
    Ok(RestoredFile {
        check,
        data_keys,
        staged_check,
        staged_keys,
    })
}

fn has_table(conn: &Connection, table: &str) -> Result<bool> {
    let sql = "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)";
    Ok(conn.query_row(sql, [table], |r| r.get(0))?)
}

/// The rows of `data_keys` or `staged_wrappings` (none when the table does not exist: a
/// database from before it).
fn wrapped_keys(conn: &Connection, table: &str) -> Result<Vec<super::DataKeyRow>> {
    if !has_table(conn, table)? {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT id, master_key_id, wrapped, created_at FROM {table}");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(super::DataKeyRow {
                id: r.get(0)?,
                master_key_id: r.get(1)?,
                wrapped: r.get(2)?,
                created_at: super::from_millis(r.get(3)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One `meta` value; `None` when the database holds no `meta` table or no such row (not a
/// runseal database, or never initialised).
fn meta_value(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    if !has_table(conn, "meta")? {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT value FROM meta WHERE key = ?1")?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        Some(r) => Ok(Some(r.get(0)?)),
        None => Ok(None),
    }
}
