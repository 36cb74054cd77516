//! The runner-start path of the SQLite backend, on direct SQLite connections.
//!
//! sqlx runs every SQLite statement on a worker thread of its connection and hands each
//! statement and each row across threads; a runner start is four statements (the token, the
//! environment's version, a use of the token taken, the start recorded with its audit row), and under load those
//! hand-offs cost more CPU than the statements themselves (`docs/bench/NOTES.md`). So the reads
//! of a start run here on the calling thread, on a small set of read-only connections (a
//! point read of a cached page takes microseconds, well inside what a runtime worker may
//! block), and its writes go to one thread of their own that group-commits them: starts that
//! arrive while a commit is in flight are written together in the next transaction, so a storm
//! pays one `fsync` per batch, and each caller gets its answer only once its start is durable.
//!
//! These connections open the same file as the sqlx pools, through the same linked SQLite
//! library, so WAL locking between them is SQLite's own; the sqlx writer and the committer
//! here wait for each other through the busy timeout.
//!
//! Token rows carry a MAC over their use count (`crate::integrity`): the committer reads each
//! token row again inside its transaction, checks its MAC, and writes the new count with its new
//! MAC in the same transaction, so a start costs a few HMACs of the token row and start record,
//! and nothing per secret.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{
    checked_token, from_millis, to_millis, AuditRecord, EnvironmentVersion, IntegrityCell, KeyRow,
    Result, RunnerRecord, RunnerTokenRow, StoreError,
};
use crate::integrity::IntegrityKey;

/// Most runner starts written in one transaction.
const MAX_GROUP: usize = 256;
/// Read-only connections (a caller takes a free one, else waits on one).
const READERS: usize = 4;
/// How long the committer waits for the write lock (the sqlx writer may hold it).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits on a busy database (WAL readers are rarely kept waiting, e.g. while a
/// crashed writer's log is recovered): a read runs on a runtime worker, so it gives up soon and
/// the caller gets UNAVAILABLE, which agents retry.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// One runner start to commit: with a token, only if a use of it can be taken.
struct StartJob {
    token_id: Option<String>,
    record: RunnerRecord,
    audit: AuditRecord,
    done: oneshot::Sender<Result<bool>>,
}

pub struct HotPath {
    /// `None` once closed.
    readers: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
    starts: mpsc::Sender<Message>,
}

enum Message {
    Start(Box<StartJob>),
    /// Commit what is queued, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

impl HotPath {
    /// Opens the read-only connections and starts the committer thread. The file must exist
    /// and be migrated (the sqlx writer opens it first).
    pub fn open(path: &Path, integrity: Arc<IntegrityCell>) -> Result<Self> {
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(READ_BUSY_TIMEOUT)?;
            readers.push(Mutex::new(Some(conn)));
        }
        let writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        // The same settings as the sqlx connections (journal_mode is the file's own).
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.pragma_update(None, "secure_delete", "ON")?;
        let (starts, queue) = mpsc::channel(4 * MAX_GROUP);
        std::thread::Builder::new()
            .name("runseal-starts".into())
            .spawn(move || commit_starts(writer, queue, integrity))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the commit thread: {e}")))?;
        Ok(Self {
            readers,
            next: AtomicUsize::new(0),
            starts,
        })
    }

    /// A free read-only connection, else the next one in turn once it is free.
    fn reader(&self) -> MutexGuard<'_, Option<Connection>> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(first + i) % self.readers.len()].try_lock() {
                return conn;
            }
        }
        self.readers[first % self.readers.len()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A runner token row and its MAC (unchecked: the caller checks it).
    pub fn runner_token(&self, id: &str) -> Result<Option<(RunnerTokenRow, Vec<u8>)>> {
        let guard = self.reader();
        let conn = guard.as_ref().ok_or_else(closed)?;
        token_on(conn, id)
    }

    /// A key row and its MAC (unchecked: the caller checks it).
    pub fn key(&self, id: &str) -> Result<Option<(KeyRow, Vec<u8>)>> {
        let guard = self.reader();
        let conn = guard.as_ref().ok_or_else(closed)?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, secret_hash, label, scopes, created_at, last_used_at, revoked_at, mac \
             FROM api_keys WHERE id = ?1",
        )?;
        Ok(stmt
            .query_row([id], |r| {
                Ok((
                    KeyRow {
                        id: r.get(0)?,
                        secret_hash: r.get(1)?,
                        label: r.get(2)?,
                        scopes: r.get(3)?,
                        created_at: from_millis(r.get(4)?),
                        last_used_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
                        revoked_at: r.get::<_, Option<i64>>(6)?.map(from_millis),
                    },
                    r.get(7)?,
                ))
            })
            .optional()?)
    }

    /// The environment's current version, or `None` if it does not exist.
    pub fn environment_version(&self, environment: &str) -> Result<Option<EnvironmentVersion>> {
        let guard = self.reader();
        let conn = guard.as_ref().ok_or_else(closed)?;
        let mut stmt =
            conn.prepare_cached("SELECT revision, created_at FROM environments WHERE name = ?1")?;
        Ok(stmt
            .query_row([environment], |r| {
                Ok(EnvironmentVersion {
                    revision: r.get::<_, i64>(0)? as u64,
                    created_at: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Commits the starts already queued and closes every connection, so the sqlx pools are
    /// the last ones open and SQLite checkpoints the WAL when they close. Starts after this
    /// fail.
    pub async fn close(&self) {
        for reader in &self.readers {
            drop(reader.lock().unwrap_or_else(|p| p.into_inner()).take());
        }
        let (done, closed) = oneshot::channel();
        if self.starts.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Queues a runner start for the next group commit and waits until it is durable. With a
    /// token, the start is recorded only if a use of it was taken (the answer says which).
    pub async fn start(
        &self,
        token_id: Option<&str>,
        record: &RunnerRecord,
        audit: &AuditRecord,
    ) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        let job = StartJob {
            token_id: token_id.map(str::to_string),
            record: record.clone(),
            audit: audit.clone(),
            done,
        };
        // The committer is gone only if it panicked: say so once per call, and answer
        // UNAVAILABLE so agents try another replica (a restart brings it back).
        let gone = || {
            tracing::error!("the runner-start commit thread has stopped; restart runseald");
            StoreError::Database(sqlx::Error::WorkerCrashed)
        };
        self.starts
            .send(Message::Start(Box::new(job)))
            .await
            .map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// The committer thread: takes every start queued since the last commit and writes them in
/// one transaction. Starts whose caller has gone (its request was cancelled) are dropped
/// unwritten, so they take no use of a token. If a batch breaks a constraint, each start is
/// retried alone, so one bad start cannot fail the others; any other failure (busy, I/O, a full
/// disk) concerns them all and is every caller's answer at once. Ends when the store is dropped.
fn commit_starts(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Message>,
    integrity: Arc<IntegrityCell>,
) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    let mut close = None;
    while let Some(first) = queue.blocking_recv() {
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
        match integrity.get() {
            Ok(key) => commit_batch(&mut conn, &key, &mut batch),
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(copy_error(&e)));
                }
            }
        }
        if let Some(ack) = close {
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the runner-start connection");
            }
            let _ = ack.send(());
            return;
        }
    }
}

/// Writes one batch and answers each of its callers.
fn commit_batch(conn: &mut Connection, key: &IntegrityKey, batch: &mut Vec<StartJob>) {
    batch.retain(|job| !job.done.is_closed());
    if batch.is_empty() {
        return;
    }
    match write_starts(conn, key, batch) {
        Ok(taken) => {
            for (job, taken) in batch.drain(..).zip(taken) {
                let _ = job.done.send(Ok(taken));
            }
        }
        Err(e) if batch.len() > 1 && is_constraint(&e) => {
            tracing::warn!(error = %e, starts = batch.len(), "a batch of runner starts broke a constraint; writing them one by one");
            for job in batch.drain(..) {
                let alone = write_starts(conn, key, std::slice::from_ref(&job)).map(|t| t[0]);
                let _ = job.done.send(alone);
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

/// A runner token row and its MAC, on any connection (a reader, or the committer inside its
/// transaction).
fn token_on(conn: &Connection, id: &str) -> Result<Option<(RunnerTokenRow, Vec<u8>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, secret_hash, environment, only_names, purpose, uses_left, expires_at, \
         created_at, created_by, revoked_at, mac FROM runner_tokens WHERE id = ?1",
    )?;
    Ok(stmt
        .query_row([id], |r| {
            let only: Option<String> = r.get(3)?;
            Ok((
                RunnerTokenRow {
                    id: r.get(0)?,
                    secret_hash: r.get(1)?,
                    environment: r.get(2)?,
                    only: only.map(|o| {
                        o.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    }),
                    purpose: r.get(4)?,
                    uses_left: r.get::<_, i64>(5)?.max(0) as u32,
                    expires_at: from_millis(r.get(6)?),
                    created_at: from_millis(r.get(7)?),
                    created_by: r.get(8)?,
                    revoked_at: r.get::<_, Option<i64>>(9)?.map(from_millis),
                },
                r.get(10)?,
            ))
        })
        .optional()?)
}

/// A read after [`HotPath::close`].
fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The same failure for every caller of a failed batch (SQLite's codes are kept, so a busy
/// database still answers UNAVAILABLE).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*f, msg.clone()))
        }
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

/// Takes one use of a token inside the committer's transaction: the row is read again there
/// (another start of the batch may have used it), its MAC checked, and the new use count
/// written with its new MAC in the same transaction.
fn take_use(tx: &rusqlite::Transaction<'_>, key: &IntegrityKey, id: &str, at: i64) -> Result<bool> {
    let Some((row, mac)) = token_on(tx, id)? else {
        return Ok(false);
    };
    let mut t = match checked_token(key, row, &mac) {
        Ok(t) => t,
        Err(StoreError::Tampered { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    if t.uses_left == 0 || t.revoked_at.is_some() || to_millis(t.expires_at) <= at {
        return Ok(false);
    }
    t.uses_left -= 1;
    let mut update =
        tx.prepare_cached("UPDATE runner_tokens SET uses_left = ?1, mac = ?2 WHERE id = ?3")?;
    update.execute(rusqlite::params![t.uses_left as i64, key.token_mac(&t), id])?;
    Ok(true)
}

fn write_starts(conn: &mut Connection, key: &IntegrityKey, jobs: &[StartJob]) -> Result<Vec<bool>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut taken = Vec::with_capacity(jobs.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO runners (runner_id, environment, revision, started_at, credential_id, \
             retry_hash, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut audit = tx.prepare_cached(
            "INSERT INTO audit (at, key_id, action, environment, names, revision, runner_id, \
             value_count, names_total) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for job in jobs {
            let r = &job.record;
            let ok = match &job.token_id {
                Some(id) => take_use(&tx, key, id, to_millis(r.started_at))?,
                None => true,
            };
            if ok {
                insert.execute(rusqlite::params![
                    r.runner_id,
                    r.environment,
                    r.revision as i64,
                    to_millis(r.started_at),
                    r.credential_id,
                    r.retry_hash,
                    key.runner_mac(r),
                ])?;
                let a = &job.audit;
                let (names, names_total) = a.stored_names();
                audit.execute(rusqlite::params![
                    to_millis(a.at),
                    a.key_id,
                    a.action,
                    a.environment,
                    names,
                    a.revision.map(|r| r as i64),
                    a.runner_id,
                    a.values.map(i64::from),
                    names_total,
                ])?;
            }
            taken.push(ok);
        }
    }
    tx.commit()?;
    Ok(taken)
}
