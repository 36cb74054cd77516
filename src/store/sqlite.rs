//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Admin writes go through one sqlx connection, reads through a small read-only pool that WAL
//! lets run beside it. `synchronous=FULL` makes a committed transaction survive a crash, and
//! `secure_delete` overwrites the sealed bytes of deleted rows.
//!
//! Runner starts (the token and version reads, a use of a token taken and the start recorded)
//! take the faster path of [`super::sqlite_hot`]: direct connections and a group-committing
//! thread, so a storm of starts pays one `fsync` per batch instead of one each. Each caller
//! still gets its answer only once its start is durable. That thread is a second writer, so
//! every admin write begins with `BEGIN IMMEDIATE` ([`SqliteStore::write_tx`]) and the two wait
//! for each other through the busy timeout.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;

use super::sqlite_hot::HotPath;
use super::*;
use crate::integrity::{IntegrityKey, INTEGRITY_KEY_ID, TABLE_RUNNERS};
use crate::names::Limits;
use crate::seal::Sealed;
use crate::MAIN_ENV;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The runner-start path on direct connections (token and version reads, group commit).
    hot: HotPath,
    snapshots: SnapshotCache,
    /// Shared with the runner-start thread, which rewrites a token's MAC with each use.
    integrity: Arc<IntegrityCell>,
}

impl SqliteStore {
    /// The connection pool (used by `migrate`, which copies tables as they are).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Opens (creating if missing) the database file and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let base = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("secure_delete", "ON")
            .pragma("temp_store", "MEMORY");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await?;
        let integrity = Arc::new(IntegrityCell::default());
        let hot = HotPath::open(path, integrity.clone())?;
        Ok(Self {
            writer,
            reader,
            hot,
            snapshots: SnapshotCache::default(),
            integrity,
        })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock at once, waiting out the
    /// busy timeout: the runner-start thread ([`super::sqlite_hot`]) is a second writer, and a
    /// deferred transaction that reads before it writes would fail at once with
    /// `SQLITE_BUSY_SNAPSHOT` if that thread committed in between.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// One read transaction: the environment's version and its sealed rows.
    async fn read_sealed(
        &self,
        environment: &str,
    ) -> Result<(EnvironmentVersion, Vec<SealedSecret>)> {
        let key = self.integrity.get()?;
        let mut tx = self.reader.begin().await?;
        let version: Option<(i64, i64, Vec<u8>)> =
            sqlx::query_as("SELECT revision, created_at, mac FROM environments WHERE name = ?")
                .bind(environment)
                .fetch_optional(&mut *tx)
                .await?;
        let (revision, created_at, mac) =
            version.ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        let rows = sqlx::query(
            "SELECT name, key_id, nonce, ciphertext, value_len, exposed FROM secrets \
             WHERE environment = ? ORDER BY name",
        )
        .bind(environment)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let secrets = rows.iter().map(sealed_row).collect::<Result<Vec<_>>>()?;
        let version = EnvironmentVersion {
            revision: revision as u64,
            created_at,
        };
        check_environment(&key, environment, version, &secrets, &mac)?;
        Ok((version, secrets))
    }
}

/// Writes the MAC of `env`'s current revision and rows (call after every change of either, in
/// the same transaction).
pub(crate) async fn seal_environment_tx(
    conn: &mut SqliteConnection,
    key: &IntegrityKey,
    env: &str,
) -> Result<()> {
    let (revision, created_at): (i64, i64) =
        sqlx::query_as("SELECT revision, created_at FROM environments WHERE name = ?")
            .bind(env)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::EnvironmentNotFound(env.to_string()))?;
    let rows = sqlx::query(
        "SELECT name, key_id, nonce, ciphertext, value_len, exposed FROM secrets WHERE environment = ?",
    )
    .bind(env)
    .fetch_all(&mut *conn)
    .await?;
    let secrets = rows.iter().map(sealed_row).collect::<Result<Vec<_>>>()?;
    let envs: Vec<_> = secrets.iter().map(env_secret).collect();
    let mac = key.environment_mac(env, revision as u64, created_at, &envs);
    sqlx::query("UPDATE environments SET mac = ? WHERE name = ?")
        .bind(mac)
        .bind(env)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes a runner token's state (uses, revocation) with its new MAC. Every change of a token
/// row goes through here.
pub(crate) async fn write_token_tx(
    conn: &mut SqliteConnection,
    key: &IntegrityKey,
    t: &RunnerTokenRow,
) -> Result<()> {
    sqlx::query("UPDATE runner_tokens SET uses_left = ?, revoked_at = ?, mac = ? WHERE id = ?")
        .bind(t.uses_left as i64)
        .bind(t.revoked_at.map(to_millis))
        .bind(key.token_mac(t))
        .bind(&t.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Revokes every unrevoked token whose `column` (`created_by` or `environment`) is `value`,
/// each written with its new MAC. Returns how many.
async fn revoke_tokens_tx(
    conn: &mut SqliteConnection,
    key: &IntegrityKey,
    column: &'static str,
    value: &str,
    at: OffsetDateTime,
) -> Result<u64> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM runner_tokens WHERE {column} = ? AND revoked_at IS NULL"
    ))
    .bind(value)
    .fetch_all(&mut *conn)
    .await?;
    let at = from_millis(to_millis(at));
    for r in &rows {
        let mut t = token_row(r)?;
        t.revoked_at = Some(at);
        write_token_tx(&mut *conn, key, &t).await?;
    }
    Ok(rows.len() as u64)
}

/// A runner token row with its MAC, inside a transaction.
async fn token_tx(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<(RunnerTokenRow, Vec<u8>)>> {
    let row = sqlx::query("SELECT * FROM runner_tokens WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref()
        .map(|r| Ok((token_row(r)?, r.try_get("mac")?)))
        .transpose()
}

/// Takes one use of a valid token (checked MAC, unrevoked, unexpired at `at`, uses left),
/// rewriting its MAC. `false`: nothing taken.
async fn take_use_tx(
    conn: &mut SqliteConnection,
    key: &IntegrityKey,
    id: &str,
    at: OffsetDateTime,
) -> Result<bool> {
    let Some((row, mac)) = token_tx(&mut *conn, id).await? else {
        return Ok(false);
    };
    let mut t = match checked_token(key, row, &mac) {
        Ok(t) => t,
        Err(StoreError::Tampered { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    if t.uses_left == 0 || t.revoked_at.is_some() || to_millis(t.expires_at) <= to_millis(at) {
        return Ok(false);
    }
    t.uses_left -= 1;
    write_token_tx(&mut *conn, key, &t).await?;
    Ok(true)
}

fn token_row(r: &SqliteRow) -> Result<RunnerTokenRow> {
    let only: Option<String> = r.try_get("only_names")?;
    Ok(RunnerTokenRow {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        environment: r.try_get("environment")?,
        only: only.map(|o| {
            o.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
        purpose: r.try_get("purpose")?,
        uses_left: r.try_get::<i64, _>("uses_left")?.max(0) as u32,
        expires_at: from_millis(r.try_get("expires_at")?),
        created_at: from_millis(r.try_get("created_at")?),
        created_by: r.try_get("created_by")?,
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_millis),
    })
}

fn runner_record(r: &SqliteRow) -> Result<RunnerRecord> {
    Ok(RunnerRecord {
        runner_id: r.try_get("runner_id")?,
        environment: r.try_get("environment")?,
        revision: r.try_get::<i64, _>("revision")? as u64,
        started_at: from_millis(r.try_get("started_at")?),
        credential_id: r.try_get("credential_id")?,
        retry_hash: r.try_get("retry_hash")?,
    })
}

/// Every row with a MAC, and every secret (see [`IntegrityRows`]).
async fn integrity_rows_on(conn: &mut SqliteConnection) -> Result<IntegrityRows> {
    let mut out = IntegrityRows::default();
    for r in sqlx::query("SELECT * FROM api_keys")
        .fetch_all(&mut *conn)
        .await?
    {
        out.keys.push((key_row(&r)?, r.try_get("mac")?));
    }
    for r in sqlx::query("SELECT * FROM runner_tokens")
        .fetch_all(&mut *conn)
        .await?
    {
        out.tokens.push((token_row(&r)?, r.try_get("mac")?));
    }
    for r in sqlx::query("SELECT * FROM runners")
        .fetch_all(&mut *conn)
        .await?
    {
        out.runners
            .push((r.try_get("id")?, runner_record(&r)?, r.try_get("mac")?));
    }
    for r in sqlx::query("SELECT name, revision, created_at, mac FROM environments")
        .fetch_all(&mut *conn)
        .await?
    {
        out.environments.push((
            r.try_get("name")?,
            r.try_get::<i64, _>("revision")? as u64,
            r.try_get("created_at")?,
            r.try_get("mac")?,
        ));
    }
    for r in sqlx::query(
        "SELECT environment, name, key_id, nonce, ciphertext, value_len, exposed FROM secrets",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        out.secrets
            .push((r.try_get("environment")?, sealed_row(&r)?));
    }
    Ok(out)
}

async fn append_audit(tx: &mut Transaction<'_, Sqlite>, a: &AuditRecord) -> Result<()> {
    let (names, names_total) = a.stored_names();
    sqlx::query(
        "INSERT INTO audit (at, key_id, action, environment, names, revision, runner_id, \
         value_count, names_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(to_millis(a.at))
    .bind(&a.key_id)
    .bind(a.action)
    .bind(&a.environment)
    .bind(names)
    .bind(a.revision.map(|r| r as i64))
    .bind(&a.runner_id)
    .bind(a.values.map(i64::from))
    .bind(names_total)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn bump_revision(tx: &mut Transaction<'_, Sqlite>, env: &str) -> Result<u64> {
    let rev: Option<i64> = sqlx::query_scalar(
        "UPDATE environments SET revision = revision + 1 WHERE name = ? RETURNING revision",
    )
    .bind(env)
    .fetch_optional(&mut **tx)
    .await?;
    rev.map(|r| r as u64)
        .ok_or_else(|| StoreError::EnvironmentNotFound(env.to_string()))
}

fn environment_row(r: &SqliteRow) -> Result<EnvironmentRow> {
    Ok(EnvironmentRow {
        name: r.try_get("name")?,
        revision: r.try_get::<i64, _>("revision")? as u64,
        secret_count: r.try_get::<i64, _>("secret_count")? as u64,
        created_at: from_millis(r.try_get("created_at")?),
    })
}

fn key_row(r: &SqliteRow) -> Result<KeyRow> {
    Ok(KeyRow {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        label: r.try_get("label")?,
        scopes: r.try_get("scopes")?,
        created_at: from_millis(r.try_get("created_at")?),
        last_used_at: r
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_millis),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_millis),
    })
}

fn sealed_row(r: &SqliteRow) -> Result<SealedSecret> {
    Ok(SealedSecret {
        name: r.try_get("name")?,
        sealed: Sealed {
            key_id: r.try_get("key_id")?,
            nonce: r.try_get("nonce")?,
            ciphertext: r.try_get("ciphertext")?,
        },
        value_len: r.try_get::<i64, _>("value_len")? as u64,
        exposed: r.try_get::<Option<bool>, _>("exposed")?,
    })
}

const ENV_SELECT: &str = "SELECT e.name, e.revision, e.created_at, \
     (SELECT COUNT(*) FROM secrets s WHERE s.environment = e.name) AS secret_count \
     FROM environments e";

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        // The direct connections first: SQLite checkpoints the WAL into the database file when
        // the last connection closes, which must be the sqlx writer's.
        self.hot.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn is_initialized(&self) -> Result<bool> {
        Ok(self.meta(META_MASTER_KEY_CHECK).await?.is_some())
    }

    async fn initialize(&self, init: InitialState) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done: Option<i64> = sqlx::query_scalar("SELECT 1 FROM meta WHERE key = ?")
            .bind(META_MASTER_KEY_CHECK)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        let at = to_millis(init.at);
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)")
            .bind(META_MASTER_KEY_CHECK)
            .bind(&init.master_key_check)
            .bind(META_ACTIVE_DATA_KEY)
            .bind(init.data_key.id.as_bytes())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO data_keys (id, master_key_id, wrapped, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&init.data_key.id)
        .bind(&init.data_key.master_key_id)
        .bind(&init.data_key.wrapped)
        .bind(to_millis(init.data_key.created_at))
        .execute(&mut *tx)
        .await?;
        insert_data_key_tx(&mut tx, &init.integrity_key).await?;
        sqlx::query(
            "INSERT INTO environments (name, revision, created_at, mac) VALUES (?, 0, ?, x'')",
        )
        .bind(MAIN_ENV)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        seal_environment_tx(&mut tx, &init.integrity, MAIN_ENV).await?;
        insert_key_tx(&mut tx, &init.integrity, &init.admin_key).await?;
        append_audit(
            &mut tx,
            &AuditRecord::new(
                init.at,
                "runseald",
                "init",
                None,
                vec![init.admin_key.id.clone()],
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRow>> {
        let rows = sqlx::query("SELECT id, master_key_id, wrapped, created_at FROM data_keys")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DataKeyRow {
                    id: r.try_get("id")?,
                    master_key_id: r.try_get("master_key_id")?,
                    wrapped: r.try_get("wrapped")?,
                    created_at: from_millis(r.try_get("created_at")?),
                })
            })
            .collect()
    }

    fn set_integrity_key(&self, key: Arc<IntegrityKey>) {
        self.integrity.set(key);
    }

    async fn upgrade_integrity(
        &self,
        wrapped: DataKeyRow,
        key: &IntegrityKey,
        audit: AuditRecord,
    ) -> Result<Option<u64>> {
        // BEGIN IMMEDIATE: one writer at a time, so two processes cannot both upgrade.
        let mut tx = self.write_tx().await?;
        let done: Option<i64> = sqlx::query_scalar("SELECT 1 FROM data_keys WHERE id = ?")
            .bind(INTEGRITY_KEY_ID)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            return Ok(None);
        }
        let rows = integrity_rows_on(&mut tx).await?;
        if rows.any_mac() {
            return Err(StoreError::Corrupt(format!(
                "the integrity key ({INTEGRITY_KEY_ID}) is missing from data_keys but rows carry MACs: \
                 the database was changed outside runseald or partly restored; refusing to \
                 authenticate its rows again (restore the whole database from a backup)"
            )));
        }
        insert_data_key_tx(&mut tx, &wrapped).await?;
        let mut n = 0u64;
        for (k, _) in &rows.keys {
            sqlx::query("UPDATE api_keys SET mac = ? WHERE id = ?")
                .bind(key.key_mac(k))
                .bind(&k.id)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        for (t, _) in &rows.tokens {
            write_token_tx(&mut tx, key, t).await?;
            n += 1;
        }
        for (id, r, _) in &rows.runners {
            sqlx::query("UPDATE runners SET mac = ? WHERE id = ?")
                .bind(key.runner_mac(r))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        for (name, mac) in rows.environment_macs(key) {
            sqlx::query("UPDATE environments SET mac = ? WHERE name = ?")
                .bind(mac)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(n))
    }

    async fn integrity_rows(&self) -> Result<IntegrityRows> {
        let mut tx = self.reader.begin().await?;
        let rows = integrity_rows_on(&mut tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn rewrap_data_keys(
        &self,
        new_check: Vec<u8>,
        rewrapped: Vec<DataKeyRow>,
        audit: AuditRecord,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys")
            .fetch_one(&mut *tx)
            .await?;
        if existing as usize != rewrapped.len() {
            return Err(StoreError::Corrupt(format!(
                "{existing} data keys stored, {} rewrapped",
                rewrapped.len()
            )));
        }
        for k in &rewrapped {
            let n = sqlx::query("UPDATE data_keys SET master_key_id = ?, wrapped = ? WHERE id = ?")
                .bind(&k.master_key_id)
                .bind(&k.wrapped)
                .bind(&k.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(StoreError::Corrupt(format!("data key {} vanished", k.id)));
            }
        }
        sqlx::query("UPDATE meta SET value = ? WHERE key = ?")
            .bind(&new_check)
            .bind(META_MASTER_KEY_CHECK)
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_environments(&self) -> Result<Vec<EnvironmentRow>> {
        let rows = sqlx::query(&format!("{ENV_SELECT} ORDER BY e.name"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(environment_row).collect()
    }

    async fn environment(&self, name: &str) -> Result<Option<EnvironmentRow>> {
        let row = sqlx::query(&format!("{ENV_SELECT} WHERE e.name = ?"))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(environment_row).transpose()
    }

    async fn create_environment(&self, name: &str, audit: AuditRecord) -> Result<EnvironmentRow> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "INSERT INTO environments (name, revision, created_at, mac) VALUES (?, 0, ?, x'') \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(to_millis(audit.at))
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::EnvironmentExists(name.to_string()));
        }
        seal_environment_tx(&mut tx, &*self.integrity.get()?, name).await?;
        append_audit(&mut tx, &audit.clone().at_revision(0)).await?;
        tx.commit().await?;
        Ok(EnvironmentRow {
            name: name.to_string(),
            revision: 0,
            secret_count: 0,
            created_at: audit.at,
        })
    }

    async fn delete_environment(&self, name: &str, force: bool, audit: AuditRecord) -> Result<u64> {
        if name == MAIN_ENV {
            return Err(StoreError::MainEnvironment);
        }
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM environments WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::EnvironmentNotFound(name.to_string()));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secrets WHERE environment = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if count > 0 && !force {
            return Err(StoreError::EnvironmentNotEmpty {
                name: name.to_string(),
                count: count as u64,
            });
        }
        sqlx::query("DELETE FROM secrets WHERE environment = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // Tokens and runner records go with it: an environment created later under the same
        // name is a new one, which no earlier token may read.
        for table in ["runner_tokens", "runners"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE environment = ?"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM environments WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        self.snapshots.forget(name);
        Ok(count as u64)
    }

    async fn set_secrets(
        &self,
        environment: &str,
        secrets: Vec<SealedSecret>,
        limits: &Limits,
        audit: AuditRecord,
    ) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write_tx().await?;
        // Bumping first also proves the environment exists before anything is written.
        let revision = bump_revision(&mut tx, environment).await?;
        let at = to_millis(audit.at);
        for s in &secrets {
            sqlx::query(
                "INSERT INTO secrets (environment, name, key_id, nonce, ciphertext, value_len, created_at, updated_at, exposed) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (environment, name) DO UPDATE SET key_id = excluded.key_id, \
                 nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                 value_len = excluded.value_len, updated_at = excluded.updated_at, \
                 exposed = COALESCE(excluded.exposed, secrets.exposed)",
            )
            .bind(environment)
            .bind(&s.name)
            .bind(&s.sealed.key_id)
            .bind(&s.sealed.nonce)
            .bind(&s.sealed.ciphertext)
            .bind(s.value_len as i64)
            .bind(at)
            .bind(at)
            .bind(s.exposed)
            .execute(&mut *tx)
            .await?;
        }
        let (count, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(value_len), 0) FROM secrets WHERE environment = ?",
        )
        .bind(environment)
        .fetch_one(&mut *tx)
        .await?;
        if count as usize > limits.max_secrets_per_environment {
            return Err(StoreError::TooManySecrets {
                environment: environment.to_string(),
                count: count as u64,
                max: limits.max_secrets_per_environment,
            });
        }
        if bytes as usize > limits.max_environment_bytes {
            return Err(StoreError::EnvironmentTooLarge {
                environment: environment.to_string(),
                bytes: bytes as u64,
                max: limits.max_environment_bytes,
            });
        }
        seal_environment_tx(&mut tx, &key, environment).await?;
        append_audit(&mut tx, &audit.at_revision(revision)).await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn unset_secret(&self, environment: &str, name: &str, audit: AuditRecord) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let revision = bump_revision(&mut tx, environment).await?;
        let n = sqlx::query("DELETE FROM secrets WHERE environment = ? AND name = ?")
            .bind(environment)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::SecretNotFound {
                environment: environment.to_string(),
                name: name.to_string(),
            });
        }
        seal_environment_tx(&mut tx, &*self.integrity.get()?, environment).await?;
        append_audit(&mut tx, &audit.at_revision(revision)).await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn list_secrets(&self, environment: &str) -> Result<(u64, Vec<SecretMeta>)> {
        // One read transaction, so the revision matches the rows.
        let mut tx = self.reader.begin().await?;
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM environments WHERE name = ?")
                .bind(environment)
                .fetch_optional(&mut *tx)
                .await?;
        let revision =
            revision.ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        let rows = sqlx::query(
            "SELECT name, created_at, updated_at, exposed FROM secrets WHERE environment = ? ORDER BY name",
        )
        .bind(environment)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let secrets = rows
            .iter()
            .map(|r| {
                Ok(SecretMeta {
                    environment: environment.to_string(),
                    name: r.try_get("name")?,
                    created_at: from_millis(r.try_get("created_at")?),
                    updated_at: from_millis(r.try_get("updated_at")?),
                    exposed: r.try_get::<Option<bool>, _>("exposed")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((revision as u64, secrets))
    }

    async fn sealed_secrets(&self, environment: &str) -> Result<(u64, Vec<SealedSecret>)> {
        let (version, secrets) = self.read_sealed(environment).await?;
        Ok((version.revision, secrets))
    }

    async fn sealed_snapshot(&self, environment: &str) -> Result<(u64, Arc<Vec<SealedSecret>>)> {
        let current = self
            .hot
            .environment_version(environment)?
            .ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        if let Some(rows) = self.snapshots.get(environment, current) {
            return Ok((current.revision, rows));
        }
        let (version, rows) = self.read_sealed(environment).await?;
        let rows = Arc::new(rows);
        self.snapshots.put(environment, version, rows.clone());
        Ok((version.revision, rows))
    }

    async fn all_sealed_secrets(&self) -> Result<Vec<(String, SealedSecret)>> {
        let rows = sqlx::query(
            "SELECT environment, name, key_id, nonce, ciphertext, value_len, exposed FROM secrets \
             ORDER BY environment, name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("environment")?, sealed_row(r)?)))
            .collect()
    }

    async fn insert_key(&self, key: KeyRow, audit: AuditRecord) -> Result<()> {
        let ik = self.integrity.get()?;
        let mut tx = self.write_tx().await?;
        insert_key_tx(&mut tx, &ik, &key).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRow>> {
        match self.hot.key(id)? {
            Some((row, mac)) => checked_key(&*self.integrity.get()?, row, &mac).map(Some),
            None => Ok(None),
        }
    }

    async fn list_keys(&self) -> Result<Vec<KeyRow>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_key(&self, id: &str, audit: AuditRecord) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        // Never the last active admin key: nobody could make keys or environments again.
        let active: Vec<(String, String)> =
            sqlx::query_as("SELECT id, scopes FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(&mut *tx)
                .await?;
        let is_active_admin = active
            .iter()
            .any(|(k, scopes)| k == id && super::scopes_include_admin(scopes));
        if is_active_admin
            && !active
                .iter()
                .any(|(k, scopes)| k != id && super::scopes_include_admin(scopes))
        {
            return Err(StoreError::LastAdminKey(id.to_string()));
        }
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let mut row = row
            .as_ref()
            .map(key_row)
            .transpose()?
            .ok_or_else(|| StoreError::KeyNotFound(id.to_string()))?;
        if row.revoked_at.is_none() {
            row.revoked_at = Some(from_millis(to_millis(audit.at)));
            sqlx::query("UPDATE api_keys SET revoked_at = ?, mac = ? WHERE id = ?")
                .bind(to_millis(audit.at))
                .bind(self.integrity.get()?.key_mac(&row))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // The runner tokens it minted go with it: they were its authority, delegated.
        let key = self.integrity.get()?;
        let tokens = revoke_tokens_tx(&mut tx, &key, "created_by", id, audit.at).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    async fn touch_key(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(to_millis(at))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_audit_before(
        &self,
        environment: Option<&str>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>> {
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let rows =
            match environment {
                Some(env) => sqlx::query(
                    "SELECT * FROM audit WHERE environment = ? AND id < ? ORDER BY id DESC LIMIT ?",
                )
                .bind(env)
                .bind(before)
                .bind(limit as i64)
                .fetch_all(&self.reader)
                .await?,
                None => {
                    sqlx::query("SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?")
                        .bind(before)
                        .bind(limit as i64)
                        .fetch_all(&self.reader)
                        .await?
                }
            };
        rows.iter()
            .map(|r| {
                let names: String = r.try_get("names")?;
                let names: Vec<String> = names
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                Ok(AuditRow {
                    id: r.try_get::<i64, _>("id")? as u64,
                    at: from_millis(r.try_get("at")?),
                    key_id: r.try_get("key_id")?,
                    action: r.try_get("action")?,
                    environment: r.try_get("environment")?,
                    names_total: r
                        .try_get::<Option<i64>, _>("names_total")?
                        .map_or(names.len() as u64, |n| n as u64),
                    names,
                    revision: r.try_get::<Option<i64>, _>("revision")?.map(|r| r as u64),
                    runner_id: r.try_get("runner_id")?,
                    values: r
                        .try_get::<Option<i64>, _>("value_count")?
                        .map(|n| n as u32),
                })
            })
            .collect()
    }

    async fn append_audit(&self, audit: AuditRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit WHERE at < ?")
            .bind(to_millis(before))
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn insert_runner_tokens(
        &self,
        tokens: Vec<RunnerTokenRow>,
        audit: AuditRecord,
    ) -> Result<()> {
        let key = self.integrity.get()?;
        let mut tx = self.write_tx().await?;
        for t in &tokens {
            sqlx::query(
                "INSERT INTO runner_tokens (id, secret_hash, environment, only_names, purpose, \
                 uses_left, expires_at, created_at, created_by, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.id)
            .bind(&t.secret_hash)
            .bind(&t.environment)
            .bind(t.only.as_ref().map(|o| o.join(",")))
            .bind(&t.purpose)
            .bind(t.uses_left as i64)
            .bind(to_millis(t.expires_at))
            .bind(to_millis(t.created_at))
            .bind(&t.created_by)
            .bind(key.token_mac(t))
            .execute(&mut *tx)
            .await?;
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn runner_token(&self, id: &str) -> Result<Option<RunnerTokenRow>> {
        match self.hot.runner_token(id)? {
            Some((row, mac)) => checked_token(&*self.integrity.get()?, row, &mac).map(Some),
            None => Ok(None),
        }
    }

    async fn revoke_runner_token(&self, id: &str, audit: AuditRecord) -> Result<()> {
        let key = self.integrity.get()?;
        let mut tx = self.write_tx().await?;
        let (mut t, _) = token_tx(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::RunnerTokenNotFound(id.to_string()))?;
        if t.revoked_at.is_none() {
            t.revoked_at = Some(from_millis(to_millis(audit.at)));
            write_token_tx(&mut tx, &key, &t).await?;
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_runner_tokens(&self, environment: &str, audit: AuditRecord) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let key = self.integrity.get()?;
        let n = revoke_tokens_tx(&mut tx, &key, "environment", environment, audit.at).await?;
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_runner_tokens(
        &self,
        environment: Option<&str>,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RunnerTokenRow>> {
        let mut sql = String::from(
            "SELECT * FROM runner_tokens WHERE revoked_at IS NULL AND uses_left > 0 \
             AND expires_at > ?",
        );
        if environment.is_some() {
            sql.push_str(" AND environment = ?");
        }
        sql.push_str(" ORDER BY created_at DESC, id LIMIT ?");
        let mut q = sqlx::query(&sql).bind(to_millis(now));
        if let Some(env) = environment {
            q = q.bind(env);
        }
        let rows = q.bind(limit as i64).fetch_all(&self.reader).await?;
        rows.iter().map(token_row).collect()
    }

    async fn redeem_runner_token(
        &self,
        id: &str,
        record: &RunnerRecord,
        audit: &AuditRecord,
    ) -> Result<bool> {
        self.hot.start(Some(id), record, audit).await
    }

    async fn runner_started_with(
        &self,
        token_id: &str,
        runner_id: &str,
        retry_hash: &[u8],
        since: OffsetDateTime,
    ) -> Result<bool> {
        let key = self.integrity.get()?;
        let rows = sqlx::query(
            "SELECT * FROM runners WHERE credential_id = ? AND runner_id = ? \
             AND retry_hash = ? AND started_at >= ?",
        )
        .bind(token_id)
        .bind(runner_id)
        .bind(retry_hash)
        .bind(to_millis(since))
        .fetch_all(&self.reader)
        .await?;
        let mut any = false;
        for r in &rows {
            let mac: Vec<u8> = r.try_get("mac")?;
            if key.verify_runner(&runner_record(r)?, &mac) {
                any = true;
            } else {
                let n: i64 = r.try_get("id")?;
                crate::integrity::report_failure(TABLE_RUNNERS, &n.to_string());
            }
        }
        Ok(any)
    }

    async fn record_build_fetch(&self, token_id: Option<&str>, audit: AuditRecord) -> Result<bool> {
        let key = self.integrity.get()?;
        let mut tx = self.write_tx().await?;
        if let Some(id) = token_id {
            if !take_use_tx(&mut tx, &key, id, audit.at).await? {
                return Ok(false);
            }
        }
        append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_runner(&self, record: &RunnerRecord, audit: &AuditRecord) -> Result<()> {
        self.hot.start(None, record, audit).await.map(|_| ())
    }

    async fn prune_runners(&self, before: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let before = to_millis(before);
        let runners = sqlx::query("DELETE FROM runners WHERE started_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM runner_tokens WHERE expires_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(runners)
    }

    async fn list_runners(
        &self,
        environment: Option<&str>,
        stale_only: bool,
        limit: u32,
    ) -> Result<Vec<RunnerRow>> {
        let mut sql = String::from(
            "SELECT r.runner_id, r.environment, r.revision, r.started_at, r.credential_id, \
             e.revision AS current_revision FROM runners r \
             JOIN environments e ON e.name = r.environment WHERE 1 = 1",
        );
        if environment.is_some() {
            sql.push_str(" AND r.environment = ?");
        }
        if stale_only {
            sql.push_str(" AND r.revision < e.revision");
        }
        sql.push_str(" ORDER BY r.started_at DESC, r.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(env) = environment {
            q = q.bind(env);
        }
        let rows = q.bind(limit as i64).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok(RunnerRow {
                    record: RunnerRecord {
                        runner_id: r.try_get("runner_id")?,
                        environment: r.try_get("environment")?,
                        revision: r.try_get::<i64, _>("revision")? as u64,
                        started_at: from_millis(r.try_get("started_at")?),
                        credential_id: r.try_get("credential_id")?,
                        retry_hash: None,
                    },
                    current_revision: r.try_get::<i64, _>("current_revision")? as u64,
                })
            })
            .collect()
    }
}

async fn insert_key_tx(
    tx: &mut Transaction<'_, Sqlite>,
    ik: &IntegrityKey,
    key: &KeyRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, secret_hash, label, scopes, created_at, revoked_at, mac) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.id)
    .bind(&key.secret_hash)
    .bind(&key.label)
    .bind(&key.scopes)
    .bind(to_millis(key.created_at))
    .bind(key.revoked_at.map(to_millis))
    .bind(ik.key_mac(key))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_data_key_tx(tx: &mut Transaction<'_, Sqlite>, k: &DataKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO data_keys (id, master_key_id, wrapped, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&k.id)
    .bind(&k.master_key_id)
    .bind(&k.wrapped)
    .bind(to_millis(k.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
