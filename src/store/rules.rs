//! The store's rules, written once for both backends: every statement, the limits, the last
//! admin key, `main` being permanent, what goes with a deleted environment or a revoked key,
//! and the MAC of every row that grants something, rewritten in the transaction that changes it.
//! A backend ([`Backend`]) only opens transactions; the differences of its SQL are the
//! [`super::sql::Dialect`] table. This file must never name a backend.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::sql::{Arg, Dialect, Lock, Mode, Row, Tx};
use super::*;
use crate::integrity::{IntegrityKey, INTEGRITY_KEY_ID, TABLE_RUNNERS};
use crate::names::Limits;
use crate::seal::Sealed;
use crate::MAIN_ENV;

/// What a backend provides: transactions, and the durable write of a runner start.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Tx>>;
    /// Records `start` and returns once durable; `false`: no use of its token was left,
    /// nothing was written.
    async fn start(&self, start: Start) -> Result<bool> {
        let mut tx = self.begin(Mode::Write).await?;
        if !start_tx(&mut *tx, &start).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
    async fn close(&self);
}

/// One runner start to record: with a token, only if a use of it can be taken.
pub struct Start {
    pub key: Arc<IntegrityKey>,
    pub token_id: Option<String>,
    pub record: RunnerRecord,
    pub audit: AuditRecord,
}

/// A store over one backend: [`super::SqliteStore`] or [`super::PostgresStore`].
pub struct Db<B> {
    pub(super) backend: B,
    /// Validated against the database's revision on every read: another replica's change is
    /// seen at once.
    pub(super) snapshots: SnapshotCache,
    pub(super) integrity: Arc<IntegrityCell>,
}

pub(super) const TOKEN_COLS: &str =
    "id, secret_hash, environment, only_names, purpose, uses_left, \
     expires_at, created_at, created_by, revoked_at, mac";
const KEY_COLS: &str = "id, secret_hash, label, scopes, created_at, last_used_at, revoked_at, mac";
const RUNNER_COLS: &str =
    "id, runner_id, environment, revision, started_at, credential_id, retry_hash, mac";
const SEALED_COLS: &str = "name, key_id, nonce, ciphertext, value_len, exposed";
const AUDIT_COLS: &str = "id, at, key_id, action, environment, names, revision, runner_id, \
     value_count, names_total, via";
const SESSION_COLS: &str = "id, key_id, created_at, last_seen_at, expires_at, mac";
const ENV_SELECT: &str = "SELECT e.name, e.revision, e.created_at, \
     (SELECT COUNT(*) FROM secrets s WHERE s.environment = e.name) AS secret_count \
     FROM environments e";

fn names(s: Option<String>) -> Option<Vec<String>> {
    s.map(|o| {
        o.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// A row and the MAC stored with it.
type WithMac<T> = (T, Vec<u8>);

/// A [`TOKEN_COLS`] row and its MAC.
fn token_row(r: &Row) -> Result<WithMac<RunnerTokenRow>> {
    let t = RunnerTokenRow {
        id: r.text(0)?,
        secret_hash: r.blob(1)?,
        environment: r.text(2)?,
        only: names(r.opt_text(3)?),
        purpose: r.text(4)?,
        uses_left: r.uint(5)?.min(u32::MAX as u64) as u32,
        expires_at: r.time(6)?,
        created_at: r.time(7)?,
        created_by: r.text(8)?,
        revoked_at: r.opt_time(9)?,
    };
    Ok((t, r.blob(10)?))
}

/// A [`KEY_COLS`] row and its MAC.
fn key_row(r: &Row) -> Result<(KeyRow, Vec<u8>)> {
    let k = KeyRow {
        id: r.text(0)?,
        secret_hash: r.blob(1)?,
        label: r.text(2)?,
        scopes: r.text(3)?,
        created_at: r.time(4)?,
        last_used_at: r.opt_time(5)?,
        revoked_at: r.opt_time(6)?,
    };
    Ok((k, r.blob(7)?))
}

/// A [`RUNNER_COLS`] row: its number, the record and its MAC.
fn runner_row(r: &Row) -> Result<(i64, RunnerRecord, Vec<u8>)> {
    let record = RunnerRecord {
        runner_id: r.text(1)?,
        environment: r.text(2)?,
        revision: r.uint(3)?,
        started_at: r.time(4)?,
        credential_id: r.text(5)?,
        retry_hash: r.opt_blob(6)?,
        received: None,
    };
    Ok((r.int(0)?, record, r.blob(7)?))
}

/// A [`SEALED_COLS`] row, starting at column `at`.
fn sealed_row(r: &Row, at: usize) -> Result<SealedSecret> {
    Ok(SealedSecret {
        name: r.text(at)?,
        sealed: Sealed {
            key_id: r.text(at + 1)?,
            nonce: r.blob(at + 2)?,
            ciphertext: r.blob(at + 3)?,
        },
        value_len: r.uint(at + 4)?,
        exposed: r.opt_bool(at + 5)?,
    })
}

fn audit_row(r: &Row) -> Result<AuditRow> {
    let names = names(Some(r.text(5)?)).unwrap_or_default();
    Ok(AuditRow {
        id: r.uint(0)?,
        at: r.time(1)?,
        key_id: r.text(2)?,
        action: r.text(3)?,
        environment: r.opt_text(4)?,
        names_total: r
            .opt_int(9)?
            .map_or(names.len() as u64, |n| n.max(0) as u64),
        names,
        revision: r.opt_int(6)?.map(|n| n.max(0) as u64),
        runner_id: r.opt_text(7)?,
        values: r.opt_int(8)?.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        via: r.opt_text(10)?,
    })
}

/// A [`SESSION_COLS`] row and its MAC.
fn session_row(r: &Row) -> Result<WithMac<SessionRow>> {
    let s = SessionRow {
        id: r.text(0)?,
        key_id: r.text(1)?,
        created_at: r.time(2)?,
        last_seen_at: r.time(3)?,
        expires_at: r.time(4)?,
    };
    Ok((s, r.blob(5)?))
}

fn checked_session(key: &IntegrityKey, row: SessionRow, mac: &[u8]) -> Result<SessionRow> {
    if key.verify_session(&row, mac) {
        Ok(row)
    } else {
        Err(tampered(crate::integrity::TABLE_WEB_SESSIONS, &row.id))
    }
}

fn data_key_row(r: &Row) -> Result<DataKeyRow> {
    Ok(DataKeyRow {
        id: r.text(0)?,
        master_key_id: r.text(1)?,
        wrapped: r.blob(2)?,
        created_at: r.time(3)?,
    })
}

fn environment_row(r: &Row) -> Result<EnvironmentRow> {
    Ok(EnvironmentRow {
        name: r.text(0)?,
        revision: r.uint(1)?,
        created_at: r.time(2)?,
        secret_count: r.uint(3)?,
    })
}

async fn lock(tx: &mut dyn Tx, what: Lock) -> Result<()> {
    if let Some(sql) = tx.dialect().lock(what) {
        tx.exec(sql, &[]).await?;
    }
    Ok(())
}

pub(super) async fn append_audit(tx: &mut dyn Tx, a: &AuditRecord) -> Result<()> {
    let (names, names_total) = a.stored_names();
    let sql = "INSERT INTO audit (at, key_id, action, environment, names, revision, runner_id, \
               value_count, names_total, via) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let revision = a.revision.map(|r| r as i64);
    let args = [
        to_millis(a.at).into(),
        (&a.key_id).into(),
        a.action.into(),
        a.environment.as_deref().into(),
        names.as_str().into(),
        revision.into(),
        a.runner_id.as_deref().into(),
        a.values.map(i64::from).into(),
        names_total.into(),
        a.via.into(),
    ];
    tx.exec(sql, &args).await.map(drop)
}

/// The sealed rows of `env` and its version with its MAC, in `tx`.
async fn sealed_tx(
    tx: &mut dyn Tx,
    env: &str,
) -> Result<(EnvironmentVersion, Vec<u8>, Vec<SealedSecret>)> {
    let sql = "SELECT revision, created_at, mac FROM environments WHERE name = $1";
    let v = tx
        .row(sql, &[env.into()])
        .await?
        .ok_or_else(|| StoreError::EnvironmentNotFound(env.to_string()))?;
    let version = EnvironmentVersion {
        revision: v.uint(0)?,
        created_at: v.int(1)?,
    };
    let sql = format!("SELECT {SEALED_COLS} FROM secrets WHERE environment = $1 ORDER BY name");
    let rows = tx.rows(&sql, &[env.into()]).await?;
    let secrets = rows
        .iter()
        .map(|r| sealed_row(r, 0))
        .collect::<Result<_>>()?;
    Ok((version, v.blob(2)?, secrets))
}

/// Writes the MAC of `env`'s current revision and rows (after every change of either, in the
/// same transaction).
async fn seal_environment(tx: &mut dyn Tx, key: &IntegrityKey, env: &str) -> Result<()> {
    let (v, _, secrets) = sealed_tx(tx, env).await?;
    let rows: Vec<_> = secrets.iter().map(env_secret).collect();
    let mac = key.environment_mac(env, v.revision, v.created_at, &rows);
    let sql = "UPDATE environments SET mac = $1 WHERE name = $2";
    tx.exec(sql, &[(&mac).into(), env.into()]).await.map(drop)
}

/// Writes a runner token's state (uses, revocation) with its new MAC. Every change of a token
/// row goes through here.
async fn write_token(tx: &mut dyn Tx, key: &IntegrityKey, t: &RunnerTokenRow) -> Result<()> {
    let sql = "UPDATE runner_tokens SET uses_left = $1, revoked_at = $2, mac = $3 WHERE id = $4";
    let mac = key.token_mac(t);
    let args = [
        i64::from(t.uses_left).into(),
        t.revoked_at.map(to_millis).into(),
        (&mac).into(),
        (&t.id).into(),
    ];
    tx.exec(sql, &args).await.map(drop)
}

/// A runner token row with its MAC, locked for the rest of the transaction.
async fn token_for_update(tx: &mut dyn Tx, id: &str) -> Result<Option<(RunnerTokenRow, Vec<u8>)>> {
    let sql = format!(
        "SELECT {TOKEN_COLS} FROM runner_tokens WHERE id = $1{}",
        tx.dialect().for_update()
    );
    tx.row(&sql, &[id.into()])
        .await?
        .as_ref()
        .map(token_row)
        .transpose()
}

/// Revokes every unrevoked token whose `column` (`created_by` or `environment`) is `value`,
/// each written with its new MAC. Returns how many.
async fn revoke_tokens(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    column: &'static str,
    value: &str,
    at: OffsetDateTime,
) -> Result<u64> {
    let sql = format!(
        "SELECT {TOKEN_COLS} FROM runner_tokens WHERE {column} = $1 AND revoked_at IS NULL"
    );
    let rows = tx.rows(&sql, &[value.into()]).await?;
    let at = from_millis(to_millis(at));
    for r in &rows {
        let (mut t, _) = token_row(r)?;
        t.revoked_at = Some(at);
        write_token(tx, key, &t).await?;
    }
    Ok(rows.len() as u64)
}

/// Takes one use of a valid token (re-read and locked here, MAC checked, unrevoked, unexpired
/// at `at`, uses left), rewriting its MAC. `false`: nothing taken.
async fn take_use(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    id: &str,
    at: OffsetDateTime,
) -> Result<bool> {
    let Some((row, mac)) = token_for_update(tx, id).await? else {
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
    write_token(tx, key, &t).await?;
    Ok(true)
}

/// One runner start, the same statements on both backends (SQLite runs many in one group
/// commit): with a token, takes one use of it first; records the start with its MAC and
/// appends its audit row. `false`: no use was left, nothing written.
pub(super) async fn start_tx(tx: &mut dyn Tx, start: &Start) -> Result<bool> {
    let Start {
        key,
        token_id,
        record: r,
        audit,
    } = start;
    if let Some(id) = token_id {
        if !take_use(tx, key, id, r.started_at).await? {
            return Ok(false);
        }
    }
    // `received` rides in the same statement: the one addition to the hot path.
    let sql = "INSERT INTO runners (runner_id, environment, revision, started_at, credential_id, \
               retry_hash, mac, received) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let mac = key.runner_mac(r);
    let args = [
        (&r.runner_id).into(),
        (&r.environment).into(),
        (r.revision as i64).into(),
        to_millis(r.started_at).into(),
        (&r.credential_id).into(),
        r.retry_hash.as_deref().into(),
        (&mac).into(),
        r.received.as_ref().map(Received::as_column).into(),
    ];
    tx.exec(sql, &args).await?;
    append_audit(tx, audit).await?;
    Ok(true)
}

async fn insert_key(tx: &mut dyn Tx, ik: &IntegrityKey, k: &KeyRow) -> Result<()> {
    let sql = "INSERT INTO api_keys (id, secret_hash, label, scopes, created_at, revoked_at, mac) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let mac = ik.key_mac(k);
    let args = [
        (&k.id).into(),
        (&k.secret_hash).into(),
        (&k.label).into(),
        (&k.scopes).into(),
        to_millis(k.created_at).into(),
        k.revoked_at.map(to_millis).into(),
        (&mac).into(),
    ];
    tx.exec(sql, &args).await.map(drop)
}

async fn insert_data_key(tx: &mut dyn Tx, k: &DataKeyRow) -> Result<()> {
    let sql =
        "INSERT INTO data_keys (id, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)";
    let args = [
        (&k.id).into(),
        (&k.master_key_id).into(),
        (&k.wrapped).into(),
        to_millis(k.created_at).into(),
    ];
    tx.exec(sql, &args).await.map(drop)
}

/// A new, empty environment (with its MAC). `false`: the name is taken.
async fn insert_environment(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    name: &str,
    at: i64,
) -> Result<bool> {
    let sql = "INSERT INTO environments (name, revision, created_at, mac) VALUES ($1, 0, $2, $3) \
               ON CONFLICT (name) DO NOTHING";
    if tx
        .exec(sql, &[name.into(), at.into(), Arg::Blob(Some(&[]))])
        .await?
        == 0
    {
        return Ok(false);
    }
    seal_environment(tx, key, name).await?;
    Ok(true)
}

/// Every row with a MAC, and every secret (see [`IntegrityRows`]).
async fn integrity_rows_tx(tx: &mut dyn Tx) -> Result<IntegrityRows> {
    let mut out = IntegrityRows::default();
    for r in tx
        .rows(&format!("SELECT {KEY_COLS} FROM api_keys"), &[])
        .await?
    {
        out.keys.push(key_row(&r)?);
    }
    for r in tx
        .rows(&format!("SELECT {TOKEN_COLS} FROM runner_tokens"), &[])
        .await?
    {
        out.tokens.push(token_row(&r)?);
    }
    for r in tx
        .rows(&format!("SELECT {RUNNER_COLS} FROM runners"), &[])
        .await?
    {
        out.runners.push(runner_row(&r)?);
    }
    for r in tx
        .rows(
            "SELECT name, revision, created_at, mac FROM environments",
            &[],
        )
        .await?
    {
        out.environments
            .push((r.text(0)?, r.uint(1)?, r.int(2)?, r.blob(3)?));
    }
    let sql = format!("SELECT environment, {SEALED_COLS} FROM secrets ORDER BY environment, name");
    for r in tx.rows(&sql, &[]).await? {
        out.secrets.push((r.text(0)?, sealed_row(&r, 1)?));
    }
    let sql = format!("SELECT {} FROM secret_versions", history::VERSION_COLS);
    for r in tx.rows(&sql, &[]).await? {
        out.versions.push(history::version_row(&r)?);
    }
    Ok(out)
}

/// The MACs of every row of a database made before them; how many rows.
async fn write_first_macs(
    tx: &mut dyn Tx,
    key: &IntegrityKey,
    rows: &IntegrityRows,
) -> Result<u64> {
    let mut n = 0u64;
    for (k, _) in &rows.keys {
        let mac = key.key_mac(k);
        n += tx
            .exec(
                "UPDATE api_keys SET mac = $1 WHERE id = $2",
                &[(&mac).into(), (&k.id).into()],
            )
            .await?;
    }
    for (t, _) in &rows.tokens {
        write_token(tx, key, t).await?;
        n += 1;
    }
    for (id, r, _) in &rows.runners {
        let mac = key.runner_mac(r);
        n += tx
            .exec(
                "UPDATE runners SET mac = $1 WHERE id = $2",
                &[(&mac).into(), (*id).into()],
            )
            .await?;
    }
    for (name, mac) in rows.environment_macs(key) {
        let sql = "UPDATE environments SET mac = $1 WHERE name = $2";
        n += tx.exec(sql, &[(&mac).into(), (&name).into()]).await?;
    }
    Ok(n)
}

/// Counts and sizes after a change, against the limits.
async fn check_limits(tx: &mut dyn Tx, environment: &str, limits: &Limits) -> Result<()> {
    let sql = "SELECT COUNT(*), CAST(COALESCE(SUM(value_len), 0) AS BIGINT) FROM secrets \
               WHERE environment = $1";
    let r = tx.row(sql, &[environment.into()]).await?;
    let r = r.ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    let (count, bytes) = (r.uint(0)?, r.uint(1)?);
    if count as usize > limits.max_secrets_per_environment {
        return Err(StoreError::TooManySecrets {
            environment: environment.to_string(),
            count,
            max: limits.max_secrets_per_environment,
        });
    }
    if bytes as usize > limits.max_environment_bytes {
        return Err(StoreError::EnvironmentTooLarge {
            environment: environment.to_string(),
            bytes,
            max: limits.max_environment_bytes,
        });
    }
    Ok(())
}

/// The next revision of `env`, recorded in the change feed as `audit`'s change.
async fn bump_revision(tx: &mut dyn Tx, env: &str, audit: &AuditRecord) -> Result<u64> {
    let sql = "UPDATE environments SET revision = revision + 1 WHERE name = $1 RETURNING revision";
    let revision = match tx.row(sql, &[env.into()]).await? {
        Some(r) => r.uint(0)?,
        None => return Err(StoreError::EnvironmentNotFound(env.to_string())),
    };
    history::record_change(tx, env, revision, audit).await?;
    Ok(revision)
}

/// Refuses to revoke the last active admin key: nobody could make keys or environments again.
async fn keep_an_admin(tx: &mut dyn Tx, id: &str) -> Result<()> {
    let active = tx
        .rows(
            "SELECT id, scopes FROM api_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await?;
    let mut this_admin = false;
    let mut other_admin = false;
    for r in &active {
        if scopes_include_admin(&r.text(1)?) {
            if r.text(0)? == id {
                this_admin = true;
            } else {
                other_admin = true;
            }
        }
    }
    if this_admin && !other_admin {
        return Err(StoreError::LastAdminKey(id.to_string()));
    }
    Ok(())
}

/// Whether the runner start `r` (joined with its environment `e`) is stale, `$2` standing for
/// `expose_by_default` (the rule: [`Store::list_runners`]). Both lists it compares are in the
/// rows: the names a start got (`r.received`, `,`-delimited) and the revision that last touched
/// each name (`name_revisions`), so this reads, through an index, only the names changed since
/// the start. A start without names (recorded before they were kept) keeps the revision rule.
fn stale_expression(d: Dialect) -> String {
    let got = d.contains("r.received", "',' || n.name || ','");
    format!(
        "(r.revision < e.revision AND (r.received IS NULL OR EXISTS (SELECT 1 FROM \
         name_revisions n WHERE n.environment = r.environment AND n.revision > r.revision \
         AND ({got} OR (r.received LIKE '*%' AND EXISTS (SELECT 1 FROM secrets s \
         WHERE s.environment = n.environment AND s.name = n.name \
         AND COALESCE(s.exposed, $2)))))))"
    )
}

/// ` AND column = $n` when listing one environment (its index serves the listing).
fn env_filter(environment: Option<&str>, column: &str, n: usize) -> String {
    environment.map_or(String::new(), |_| format!(" AND {column} = ${n}"))
}

/// Commits `tx` and passes `value` on.
async fn done<T>(tx: Box<dyn Tx>, value: T) -> Result<T> {
    tx.commit().await?;
    Ok(value)
}

impl<B: Backend> Db<B> {
    fn start(
        &self,
        token_id: Option<&str>,
        record: &RunnerRecord,
        audit: &AuditRecord,
    ) -> Result<Start> {
        Ok(Start {
            key: self.integrity.get()?,
            token_id: token_id.map(str::to_string),
            record: record.clone(),
            audit: audit.clone(),
        })
    }

    async fn write(&self) -> Result<Box<dyn Tx>> {
        self.backend.begin(Mode::Write).await
    }

    /// Runs one read statement outside any transaction.
    async fn read_rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let mut tx = self.backend.begin(Mode::Once).await?;
        let rows = tx.rows(sql, args).await?;
        done(tx, rows).await
    }

    /// One row read by id, granted only if its MAC passes `check`.
    async fn checked_by_id<T>(
        &self,
        sql: &str,
        id: &str,
        decode: fn(&Row) -> Result<WithMac<T>>,
        check: fn(&IntegrityKey, T, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.read_rows(sql, &[id.into()]).await?.first() {
            Some(r) => {
                let (row, mac) = decode(r)?;
                check(&*self.integrity.get()?, row, &mac).map(Some)
            }
            None => Ok(None),
        }
    }

    /// One snapshot: the environment's version and its sealed rows, checked against its MAC.
    async fn read_sealed(
        &self,
        environment: &str,
    ) -> Result<(EnvironmentVersion, Vec<SealedSecret>)> {
        let key = self.integrity.get()?;
        let mut tx = self.backend.begin(Mode::Snapshot).await?;
        let (version, mac, secrets) = sealed_tx(&mut *tx, environment).await?;
        tx.commit().await?;
        check_environment(&key, environment, version, &secrets, &mac)?;
        Ok((version, secrets))
    }
}

#[async_trait]
impl<B: Backend> Store for Db<B> {
    async fn close(&self) {
        self.backend.close().await;
    }

    async fn is_initialized(&self) -> Result<bool> {
        Ok(self.meta(META_MASTER_KEY_CHECK).await?.is_some())
    }

    async fn initialize(&self, init: InitialState) -> Result<()> {
        let mut tx = self.write().await?;
        lock(&mut *tx, Lock::Meta).await?;
        let sql = "SELECT 1 FROM meta WHERE key = $1";
        if tx
            .row(sql, &[META_MASTER_KEY_CHECK.into()])
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyInitialized);
        }
        let sql = "INSERT INTO meta (key, value) VALUES ($1, $2), ($3, $4)";
        let args = [
            META_MASTER_KEY_CHECK.into(),
            (&init.master_key_check).into(),
            META_ACTIVE_DATA_KEY.into(),
            init.data_key.id.as_bytes().into(),
        ];
        tx.exec(sql, &args).await?;
        insert_data_key(&mut *tx, &init.data_key).await?;
        insert_data_key(&mut *tx, &init.integrity_key).await?;
        insert_environment(&mut *tx, &init.integrity, MAIN_ENV, to_millis(init.at)).await?;
        insert_key(&mut *tx, &init.integrity, &init.admin_key).await?;
        let names = vec![init.admin_key.id.clone()];
        append_audit(
            &mut *tx,
            &AuditRecord::new(init.at, "runseald", "init", None, names),
        )
        .await?;
        done(tx, ()).await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self
            .read_rows("SELECT value FROM meta WHERE key = $1", &[key.into()])
            .await?;
        rows.first().map(|r| r.blob(0)).transpose()
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRow>> {
        let sql = "SELECT id, master_key_id, wrapped, created_at FROM data_keys";
        let rows = self.read_rows(sql, &[]).await?;
        rows.iter().map(data_key_row).collect()
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
        // Replicas starting together: one upgrades, the others wait on this lock and then find
        // the integrity key (SQLite: BEGIN IMMEDIATE already admits one writer at a time).
        let mut tx = self.write().await?;
        lock(&mut *tx, Lock::Upgrade).await?;
        let sql = "SELECT 1 FROM data_keys WHERE id = $1";
        if tx.row(sql, &[INTEGRITY_KEY_ID.into()]).await?.is_some() {
            return Ok(None);
        }
        lock(&mut *tx, Lock::UpgradeTables).await?;
        let rows = integrity_rows_tx(&mut *tx).await?;
        if rows.any_mac() {
            return Err(StoreError::Corrupt(format!(
                "the integrity key ({INTEGRITY_KEY_ID}) is missing from data_keys but rows carry MACs: \
                 the database was changed outside runseald or partly restored; refusing to \
                 authenticate its rows again (restore the whole database from a backup)"
            )));
        }
        insert_data_key(&mut *tx, &wrapped).await?;
        let n = write_first_macs(&mut *tx, key, &rows).await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, Some(n)).await
    }

    async fn integrity_rows(&self) -> Result<IntegrityRows> {
        let mut tx = self.backend.begin(Mode::Snapshot).await?;
        let rows = integrity_rows_tx(&mut *tx).await?;
        done(tx, rows).await
    }

    async fn rewrap_data_keys(
        &self,
        new_check: Vec<u8>,
        rewrapped: Vec<DataKeyRow>,
        audit: AuditRecord,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let existing = tx.row("SELECT COUNT(*) FROM data_keys", &[]).await?;
        let existing = existing.map(|r| r.uint(0)).transpose()?.unwrap_or(0);
        if existing as usize != rewrapped.len() {
            return Err(StoreError::Corrupt(format!(
                "{existing} data keys stored, {} rewrapped",
                rewrapped.len()
            )));
        }
        for k in &rewrapped {
            let sql = "UPDATE data_keys SET master_key_id = $1, wrapped = $2 WHERE id = $3";
            let args = [
                (&k.master_key_id).into(),
                (&k.wrapped).into(),
                (&k.id).into(),
            ];
            if tx.exec(sql, &args).await? != 1 {
                return Err(StoreError::Corrupt(format!("data key {} vanished", k.id)));
            }
        }
        let sql = "UPDATE meta SET value = $1 WHERE key = $2";
        tx.exec(sql, &[(&new_check).into(), META_MASTER_KEY_CHECK.into()])
            .await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn stage_wrappings(
        &self,
        new_check: Vec<u8>,
        wrapped: Vec<DataKeyRow>,
        audit: AuditRecord,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        lock(&mut *tx, Lock::Meta).await?;
        let ids: std::collections::BTreeSet<String> = tx
            .rows("SELECT id FROM data_keys", &[])
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_>>()?;
        let staged: std::collections::BTreeSet<String> =
            wrapped.iter().map(|k| k.id.clone()).collect();
        if ids != staged || wrapped.len() != ids.len() {
            return Err(StoreError::Corrupt(format!(
                "{} keys stored, {} wrapped under the new master key",
                ids.len(),
                wrapped.len()
            )));
        }
        tx.exec("DELETE FROM staged_wrappings", &[]).await?;
        for k in &wrapped {
            let sql = "INSERT INTO staged_wrappings (id, master_key_id, wrapped, created_at) \
                       VALUES ($1, $2, $3, $4)";
            let args = [
                (&k.id).into(),
                (&k.master_key_id).into(),
                (&k.wrapped).into(),
                to_millis(k.created_at).into(),
            ];
            tx.exec(sql, &args).await?;
        }
        let sql = "DELETE FROM meta WHERE key = $1";
        tx.exec(sql, &[META_STAGED_MASTER_KEY_CHECK.into()]).await?;
        let sql = "INSERT INTO meta (key, value) VALUES ($1, $2)";
        tx.exec(
            sql,
            &[META_STAGED_MASTER_KEY_CHECK.into(), (&new_check).into()],
        )
        .await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn staged_wrappings(&self) -> Result<Vec<DataKeyRow>> {
        let sql = "SELECT id, master_key_id, wrapped, created_at FROM staged_wrappings";
        let rows = self.read_rows(sql, &[]).await?;
        rows.iter().map(data_key_row).collect()
    }

    async fn finish_staged(&self, audit: AuditRecord) -> Result<()> {
        let mut tx = self.write().await?;
        lock(&mut *tx, Lock::Meta).await?;
        let sql = "SELECT value FROM meta WHERE key = $1";
        let check = tx
            .row(sql, &[META_STAGED_MASTER_KEY_CHECK.into()])
            .await?
            .ok_or_else(|| StoreError::Corrupt("no master key rotation is staged".into()))?
            .blob(0)?;
        let sql = "SELECT id, master_key_id, wrapped FROM staged_wrappings";
        let staged = tx.rows(sql, &[]).await?;
        let existing = tx.row("SELECT COUNT(*) FROM data_keys", &[]).await?;
        let existing = existing.map(|r| r.uint(0)).transpose()?.unwrap_or(0);
        if existing as usize != staged.len() {
            return Err(StoreError::Corrupt(format!(
                "{existing} keys stored, {} staged",
                staged.len()
            )));
        }
        for r in &staged {
            let (id, master_key_id, wrapped) = (r.text(0)?, r.text(1)?, r.blob(2)?);
            let sql = "UPDATE data_keys SET master_key_id = $1, wrapped = $2 WHERE id = $3";
            let args = [(&master_key_id).into(), (&wrapped).into(), (&id).into()];
            if tx.exec(sql, &args).await? != 1 {
                return Err(StoreError::Corrupt(format!("data key {id} vanished")));
            }
        }
        let sql = "UPDATE meta SET value = $1 WHERE key = $2";
        tx.exec(sql, &[(&check).into(), META_MASTER_KEY_CHECK.into()])
            .await?;
        tx.exec("DELETE FROM staged_wrappings", &[]).await?;
        let sql = "DELETE FROM meta WHERE key = $1";
        tx.exec(sql, &[META_STAGED_MASTER_KEY_CHECK.into()]).await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn list_environments(&self) -> Result<Vec<EnvironmentRow>> {
        let rows = self
            .read_rows(&format!("{ENV_SELECT} ORDER BY e.name"), &[])
            .await?;
        rows.iter().map(environment_row).collect()
    }

    async fn environment(&self, name: &str) -> Result<Option<EnvironmentRow>> {
        let sql = format!("{ENV_SELECT} WHERE e.name = $1");
        let rows = self.read_rows(&sql, &[name.into()]).await?;
        rows.first().map(environment_row).transpose()
    }

    async fn create_environment(&self, name: &str, audit: AuditRecord) -> Result<EnvironmentRow> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        if !insert_environment(&mut *tx, &key, name, to_millis(audit.at)).await? {
            return Err(StoreError::EnvironmentExists(name.to_string()));
        }
        append_audit(&mut *tx, &audit.clone().at_revision(0)).await?;
        let row = EnvironmentRow {
            name: name.to_string(),
            revision: 0,
            secret_count: 0,
            created_at: audit.at,
        };
        done(tx, row).await
    }

    async fn delete_environment(&self, name: &str, force: bool, audit: AuditRecord) -> Result<u64> {
        if name == MAIN_ENV {
            return Err(StoreError::MainEnvironment);
        }
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT 1 FROM environments WHERE name = $1{}",
            tx.dialect().for_update()
        );
        if tx.row(&sql, &[name.into()]).await?.is_none() {
            return Err(StoreError::EnvironmentNotFound(name.to_string()));
        }
        let sql = "SELECT COUNT(*) FROM secrets WHERE environment = $1";
        let count = tx
            .row(sql, &[name.into()])
            .await?
            .map(|r| r.uint(0))
            .transpose()?
            .unwrap_or(0);
        if count > 0 && !force {
            return Err(StoreError::EnvironmentNotEmpty {
                name: name.to_string(),
                count,
            });
        }
        // Tokens and runner records go with it: an environment created later under the same
        // name is a new one, which no earlier token may read.
        // Its history and change feed too: a later environment of the name starts afresh.
        for table in [
            "secrets",
            "runner_tokens",
            "runners",
            "secret_versions",
            "secret_counters",
            "changes",
            "name_revisions",
        ] {
            let sql = format!("DELETE FROM {table} WHERE environment = $1");
            tx.exec(&sql, &[name.into()]).await?;
        }
        // So do the scopes that name it, for the same reason; each rewritten key row gets its
        // MAC again. A row whose MAC already fails is left as it is: it grants nothing, and a
        // new MAC would launder it.
        let ik = self.integrity.get()?;
        lock(&mut *tx, Lock::ApiKeys).await?;
        let sql = format!("SELECT {KEY_COLS} FROM api_keys");
        for r in tx.rows(&sql, &[]).await? {
            let (mut row, mac) = key_row(&r)?;
            let Some(scopes) = scopes_without_environment(&row.scopes, name) else {
                continue;
            };
            if !ik.verify_key(&row, &mac) {
                continue;
            }
            row.scopes = scopes;
            let mac = ik.key_mac(&row);
            let sql = "UPDATE api_keys SET scopes = $1, mac = $2 WHERE id = $3";
            tx.exec(
                sql,
                &[(&row.scopes).into(), (&mac).into(), (&row.id).into()],
            )
            .await?;
        }
        tx.exec("DELETE FROM environments WHERE name = $1", &[name.into()])
            .await?;
        append_audit(&mut *tx, &audit).await?;
        tx.commit().await?;
        self.snapshots.forget(name);
        Ok(count)
    }

    async fn set_secrets(
        &self,
        environment: &str,
        secrets: Vec<SealedSecret>,
        limits: &Limits,
        audit: AuditRecord,
    ) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        // Bumping first also proves the environment exists before anything is written, and
        // (PostgreSQL) holds its row lock: writers of one environment serialise.
        let revision = bump_revision(&mut *tx, environment, &audit).await?;
        let at = to_millis(audit.at);
        let sql = "INSERT INTO secrets (environment, name, key_id, nonce, ciphertext, value_len, \
                   created_at, updated_at, exposed) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
                   ON CONFLICT (environment, name) DO UPDATE SET key_id = excluded.key_id, \
                   nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                   value_len = excluded.value_len, updated_at = excluded.updated_at, \
                   exposed = COALESCE(excluded.exposed, secrets.exposed)";
        for s in &secrets {
            let args = [
                environment.into(),
                (&s.name).into(),
                (&s.sealed.key_id).into(),
                (&s.sealed.nonce).into(),
                (&s.sealed.ciphertext).into(),
                (s.value_len as i64).into(),
                at.into(),
                s.exposed.into(),
            ];
            tx.exec(sql, &args).await?;
            history::keep_version(&mut *tx, &key, environment, s, &audit, limits.versions_kept)
                .await?;
        }
        check_limits(&mut *tx, environment, limits).await?;
        seal_environment(&mut *tx, &key, environment).await?;
        append_audit(&mut *tx, &audit.at_revision(revision)).await?;
        done(tx, revision).await
    }

    async fn unset_secrets(
        &self,
        environment: &str,
        names: &[String],
        audit: AuditRecord,
    ) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let revision = bump_revision(&mut *tx, environment, &audit).await?;
        let sql = "DELETE FROM secrets WHERE environment = $1 AND name = $2";
        for name in names {
            // An error drops the transaction: nothing of the batch is removed.
            if tx.exec(sql, &[environment.into(), name.into()]).await? == 0 {
                return Err(StoreError::SecretNotFound {
                    environment: environment.to_string(),
                    name: name.to_string(),
                });
            }
        }
        seal_environment(&mut *tx, &key, environment).await?;
        append_audit(&mut *tx, &audit.at_revision(revision)).await?;
        done(tx, revision).await
    }

    async fn list_secrets(&self, environment: &str) -> Result<(u64, Vec<SecretMeta>)> {
        // One snapshot, so the revision matches the rows.
        let mut tx = self.backend.begin(Mode::Snapshot).await?;
        let sql = "SELECT revision FROM environments WHERE name = $1";
        let revision = tx.row(sql, &[environment.into()]).await?;
        let revision =
            revision.ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        let sql =
            "SELECT name, created_at, updated_at, exposed FROM secrets WHERE environment = $1 \
                   ORDER BY name";
        let rows = tx.rows(sql, &[environment.into()]).await?;
        tx.commit().await?;
        let secrets = rows
            .iter()
            .map(|r| {
                Ok(SecretMeta {
                    environment: environment.to_string(),
                    name: r.text(0)?,
                    created_at: r.time(1)?,
                    updated_at: r.time(2)?,
                    exposed: r.opt_bool(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((revision.uint(0)?, secrets))
    }

    async fn sealed_secrets(&self, environment: &str) -> Result<(u64, Vec<SealedSecret>)> {
        let (version, secrets) = self.read_sealed(environment).await?;
        Ok((version.revision, secrets))
    }

    async fn sealed_snapshot(&self, environment: &str) -> Result<(u64, Arc<Vec<SealedSecret>>)> {
        let sql = "SELECT revision, created_at FROM environments WHERE name = $1";
        let rows = self.read_rows(sql, &[environment.into()]).await?;
        let v = rows
            .first()
            .ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        let current = EnvironmentVersion {
            revision: v.uint(0)?,
            created_at: v.int(1)?,
        };
        if let Some(rows) = self.snapshots.get(environment, current) {
            return Ok((current.revision, rows));
        }
        let (version, rows) = self.read_sealed(environment).await?;
        let rows = Arc::new(rows);
        self.snapshots.put(environment, version, rows.clone());
        Ok((version.revision, rows))
    }

    async fn all_sealed_secrets(&self) -> Result<Vec<(String, SealedSecret)>> {
        let sql =
            format!("SELECT environment, {SEALED_COLS} FROM secrets ORDER BY environment, name");
        let rows = self.read_rows(&sql, &[]).await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, sealed_row(r, 1)?)))
            .collect()
    }

    async fn secret_history(&self, environment: &str, name: &str) -> Result<Vec<SecretVersion>> {
        let key = self.integrity.get()?;
        let mut tx = self.backend.begin(Mode::Snapshot).await?;
        let sql = "SELECT 1 FROM environments WHERE name = $1";
        if tx.row(sql, &[environment.into()]).await?.is_none() {
            return Err(StoreError::EnvironmentNotFound(environment.to_string()));
        }
        let current = history::current_nonce(&mut *tx, environment, name).await?;
        let versions =
            history::versions_tx(&mut *tx, &key, environment, name, current.as_deref()).await?;
        tx.commit().await?;
        if versions.is_empty() {
            return Err(StoreError::SecretNotFound {
                environment: environment.to_string(),
                name: name.to_string(),
            });
        }
        Ok(versions)
    }

    async fn secret_version(
        &self,
        environment: &str,
        name: &str,
        version: u64,
    ) -> Result<SecretVersion> {
        self.secret_history(environment, name)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| StoreError::VersionNotFound {
                environment: environment.to_string(),
                name: name.to_string(),
                version,
            })
    }

    async fn purge_secret(
        &self,
        environment: &str,
        name: &str,
        version: Option<u64>,
        audit: AuditRecord,
    ) -> Result<Option<u64>> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT 1 FROM environments WHERE name = $1{}",
            tx.dialect().for_update()
        );
        if tx.row(&sql, &[environment.into()]).await?.is_none() {
            return Err(StoreError::EnvironmentNotFound(environment.to_string()));
        }
        let current = history::current_nonce(&mut *tx, environment, name).await?;
        let versions =
            history::versions_tx(&mut *tx, &key, environment, name, current.as_deref()).await?;
        let not_found = || StoreError::SecretNotFound {
            environment: environment.to_string(),
            name: name.to_string(),
        };
        let args = [environment.into(), name.into()];
        let revision = match version {
            Some(n) => {
                let v = versions.iter().find(|v| v.version == n).ok_or_else(|| {
                    StoreError::VersionNotFound {
                        environment: environment.to_string(),
                        name: name.to_string(),
                        version: n,
                    }
                })?;
                if v.current {
                    return Err(StoreError::CurrentVersion {
                        environment: environment.to_string(),
                        name: name.to_string(),
                        version: n,
                    });
                }
                let sql = "DELETE FROM secret_versions WHERE environment = $1 AND name = $2                            AND version = $3";
                let args = [environment.into(), name.into(), (n as i64).into()];
                tx.exec(sql, &args).await?;
                None
            }
            None => {
                if versions.is_empty() && current.is_none() {
                    return Err(not_found());
                }
                let sql = "DELETE FROM secret_versions WHERE environment = $1 AND name = $2";
                tx.exec(sql, &args).await?;
                if current.is_some() {
                    let revision = bump_revision(&mut *tx, environment, &audit).await?;
                    let sql = "DELETE FROM secrets WHERE environment = $1 AND name = $2";
                    tx.exec(sql, &args).await?;
                    seal_environment(&mut *tx, &key, environment).await?;
                    Some(revision)
                } else {
                    None
                }
            }
        };
        let audit = match revision {
            Some(r) => audit.at_revision(r),
            None => audit,
        };
        append_audit(&mut *tx, &audit).await?;
        tx.commit().await?;
        self.snapshots.forget(environment);
        Ok(revision)
    }

    async fn backfill_versions(&self) -> Result<u64> {
        let sql = "SELECT 1 FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM secret_counters c \
                   WHERE c.environment = s.environment AND c.name = s.name) LIMIT 1";
        if self.read_rows(sql, &[]).await?.is_empty() {
            return Ok(0);
        }
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let n = history::backfill_tx(&mut *tx, &key).await?;
        done(tx, n).await
    }

    async fn changes_since(
        &self,
        environment: &str,
        after: u64,
        limit: u32,
    ) -> Result<(EnvironmentVersion, Vec<Change>)> {
        let mut tx = self.backend.begin(Mode::Snapshot).await?;
        let sql = "SELECT revision, created_at FROM environments WHERE name = $1";
        let row = tx
            .row(sql, &[environment.into()])
            .await?
            .ok_or_else(|| StoreError::EnvironmentNotFound(environment.to_string()))?;
        let version = EnvironmentVersion {
            revision: row.uint(0)?,
            created_at: row.int(1)?,
        };
        let sql = "SELECT environment, revision, action, names, at FROM changes \
                   WHERE environment = $1 AND revision > $2 ORDER BY revision LIMIT $3";
        let args = [
            environment.into(),
            (after.min(i64::MAX as u64) as i64).into(),
            i64::from(limit).into(),
        ];
        let rows = tx.rows(sql, &args).await?;
        tx.commit().await?;
        let changes = rows
            .iter()
            .map(history::change_row)
            .collect::<Result<_>>()?;
        Ok((version, changes))
    }

    async fn insert_key(&self, key: KeyRow, audit: AuditRecord) -> Result<()> {
        let ik = self.integrity.get()?;
        let mut tx = self.write().await?;
        // Every environment its scopes name exists, and (PostgreSQL: its row locked) is not
        // being deleted: a deletion's rewrite of the scopes that name it cannot miss this key.
        for env in scope_environments(&key.scopes) {
            let sql = format!(
                "SELECT 1 FROM environments WHERE name = $1{}",
                tx.dialect().for_update()
            );
            if tx.row(&sql, &[env.into()]).await?.is_none() {
                return Err(StoreError::EnvironmentNotFound(env.to_string()));
            }
        }
        insert_key(&mut *tx, &ik, &key).await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRow>> {
        let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1");
        self.checked_by_id(&sql, id, key_row, checked_key).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRow>> {
        let sql = format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_at, id");
        let rows = self.read_rows(&sql, &[]).await?;
        rows.iter().map(|r| Ok(key_row(r)?.0)).collect()
    }

    async fn revoke_key(&self, id: &str, audit: AuditRecord) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        lock(&mut *tx, Lock::ApiKeys).await?;
        keep_an_admin(&mut *tx, id).await?;
        let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1");
        let row = tx.row(&sql, &[id.into()]).await?;
        let (mut row, _) = row
            .as_ref()
            .map(key_row)
            .transpose()?
            .ok_or_else(|| StoreError::KeyNotFound(id.to_string()))?;
        if row.revoked_at.is_none() {
            row.revoked_at = Some(from_millis(to_millis(audit.at)));
            let mac = key.key_mac(&row);
            let sql = "UPDATE api_keys SET revoked_at = $1, mac = $2 WHERE id = $3";
            tx.exec(sql, &[to_millis(audit.at).into(), (&mac).into(), id.into()])
                .await?;
        }
        // The runner tokens it minted go with it: they were its authority, delegated. So do its
        // dashboard sessions.
        let tokens = revoke_tokens(&mut *tx, &key, "created_by", id, audit.at).await?;
        tx.exec("DELETE FROM web_sessions WHERE key_id = $1", &[id.into()])
            .await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, tokens).await
    }

    async fn touch_key(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        let mut tx = self.write().await?;
        let sql = "UPDATE api_keys SET last_used_at = $1 WHERE id = $2";
        tx.exec(sql, &[to_millis(at).into(), id.into()]).await?;
        done(tx, ()).await
    }

    async fn list_audit_before(
        &self,
        environment: Option<&str>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>> {
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit WHERE id < $1{} ORDER BY id DESC LIMIT $2",
            env_filter(environment, "environment", 3)
        );
        let mut args = vec![before.into(), i64::from(limit).into()];
        args.extend(environment.map(Arg::from));
        let rows = self.read_rows(&sql, &args).await?;
        rows.iter().map(audit_row).collect()
    }

    async fn append_audit(&self, audit: AuditRecord) -> Result<()> {
        let mut tx = self.write().await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write().await?;
        let n = tx
            .exec(
                "DELETE FROM audit WHERE at < $1",
                &[to_millis(before).into()],
            )
            .await?;
        history::prune_changes(&mut *tx, before).await?;
        done(tx, n).await
    }

    async fn insert_runner_tokens(
        &self,
        tokens: Vec<RunnerTokenRow>,
        audit: AuditRecord,
    ) -> Result<()> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let sql = "INSERT INTO runner_tokens (id, secret_hash, environment, only_names, purpose, \
                   uses_left, expires_at, created_at, created_by, mac) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        for t in &tokens {
            let only = t.only.as_ref().map(|o| o.join(","));
            let mac = key.token_mac(t);
            let args = [
                (&t.id).into(),
                (&t.secret_hash).into(),
                (&t.environment).into(),
                only.as_deref().into(),
                (&t.purpose).into(),
                i64::from(t.uses_left).into(),
                to_millis(t.expires_at).into(),
                to_millis(t.created_at).into(),
                (&t.created_by).into(),
                (&mac).into(),
            ];
            tx.exec(sql, &args).await?;
        }
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn runner_token(&self, id: &str) -> Result<Option<RunnerTokenRow>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM runner_tokens WHERE id = $1");
        self.checked_by_id(&sql, id, token_row, checked_token).await
    }

    async fn revoke_runner_token(&self, id: &str, audit: AuditRecord) -> Result<()> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let (mut t, _) = token_for_update(&mut *tx, id)
            .await?
            .ok_or_else(|| StoreError::RunnerTokenNotFound(id.to_string()))?;
        if t.revoked_at.is_none() {
            t.revoked_at = Some(from_millis(to_millis(audit.at)));
            write_token(&mut *tx, &key, &t).await?;
        }
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn revoke_runner_tokens(&self, environment: &str, audit: AuditRecord) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let n = revoke_tokens(&mut *tx, &key, "environment", environment, audit.at).await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, n).await
    }

    async fn list_runner_tokens(
        &self,
        environment: Option<&str>,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RunnerTokenRow>> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM runner_tokens WHERE revoked_at IS NULL AND uses_left > 0 \
             AND expires_at > $1{} ORDER BY created_at DESC, id LIMIT $2",
            env_filter(environment, "environment", 3)
        );
        let mut args = vec![to_millis(now).into(), i64::from(limit).into()];
        args.extend(environment.map(Arg::from));
        let rows = self.read_rows(&sql, &args).await?;
        rows.iter().map(|r| Ok(token_row(r)?.0)).collect()
    }

    async fn redeem_runner_token(
        &self,
        id: &str,
        record: &RunnerRecord,
        audit: &AuditRecord,
    ) -> Result<bool> {
        self.backend
            .start(self.start(Some(id), record, audit)?)
            .await
    }

    async fn runner_started_with(
        &self,
        token_id: &str,
        runner_id: &str,
        retry_hash: &[u8],
        since: OffsetDateTime,
    ) -> Result<bool> {
        let key = self.integrity.get()?;
        let sql = format!(
            "SELECT {RUNNER_COLS} FROM runners WHERE credential_id = $1 AND runner_id = $2 \
             AND retry_hash = $3 AND started_at >= $4"
        );
        let args = [
            token_id.into(),
            runner_id.into(),
            retry_hash.into(),
            to_millis(since).into(),
        ];
        let mut any = false;
        for r in &self.read_rows(&sql, &args).await? {
            let (n, record, mac) = runner_row(r)?;
            if key.verify_runner(&record, &mac) {
                any = true;
            } else {
                crate::integrity::report_failure(TABLE_RUNNERS, &n.to_string());
            }
        }
        Ok(any)
    }

    async fn record_runner(&self, record: &RunnerRecord, audit: &AuditRecord) -> Result<()> {
        self.backend
            .start(self.start(None, record, audit)?)
            .await
            .map(drop)
    }

    async fn record_build_fetch(&self, token_id: Option<&str>, audit: AuditRecord) -> Result<bool> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        if let Some(id) = token_id {
            if !take_use(&mut *tx, &key, id, audit.at).await? {
                return Ok(false);
            }
        }
        append_audit(&mut *tx, &audit).await?;
        done(tx, true).await
    }

    async fn prune_runners(&self, before: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write().await?;
        let before = to_millis(before);
        let n = tx
            .exec(
                "DELETE FROM runners WHERE started_at < $1",
                &[before.into()],
            )
            .await?;
        for table in ["runner_tokens", "web_sessions"] {
            let sql = format!("DELETE FROM {table} WHERE expires_at < $1");
            tx.exec(&sql, &[before.into()]).await?;
        }
        done(tx, n).await
    }

    async fn list_runners(
        &self,
        environment: Option<&str>,
        stale_only: bool,
        expose_by_default: bool,
        limit: u32,
    ) -> Result<Vec<RunnerRow>> {
        let mut tx = self.backend.begin(Mode::Once).await?;
        let stale = stale_expression(tx.dialect());
        // Listing only stale starts, the column is known: the expression runs once per row.
        let (column, only) = if stale_only {
            ("1".to_string(), format!(" AND {stale}"))
        } else {
            (
                format!("CASE WHEN {stale} THEN 1 ELSE 0 END"),
                String::new(),
            )
        };
        let sql = format!(
            "SELECT r.id, r.runner_id, r.environment, r.revision, r.started_at, r.credential_id, \
             e.revision, {column} \
             FROM runners r JOIN environments e ON e.name = r.environment \
             WHERE 1 = 1{}{only} ORDER BY r.started_at DESC, r.id DESC LIMIT $1",
            env_filter(environment, "r.environment", 3)
        );
        let mut args = vec![i64::from(limit).into(), Some(expose_by_default).into()];
        args.extend(environment.map(Arg::from));
        let rows = tx.rows(&sql, &args).await?;
        let rows = done(tx, rows).await?;
        rows.iter()
            .map(|r| {
                let record = RunnerRecord {
                    runner_id: r.text(1)?,
                    environment: r.text(2)?,
                    revision: r.uint(3)?,
                    started_at: r.time(4)?,
                    credential_id: r.text(5)?,
                    retry_hash: None,
                    received: None,
                };
                Ok(RunnerRow {
                    record,
                    current_revision: r.uint(6)?,
                    stale: r.int(7)? != 0,
                })
            })
            .collect()
    }

    async fn set_exposure(
        &self,
        environment: &str,
        name: &str,
        exposed: Option<bool>,
        audit: AuditRecord,
    ) -> Result<u64> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let revision = bump_revision(&mut *tx, environment, &audit).await?;
        let sql = "UPDATE secrets SET exposed = $1 WHERE environment = $2 AND name = $3";
        if tx
            .exec(sql, &[exposed.into(), environment.into(), name.into()])
            .await?
            == 0
        {
            return Err(StoreError::SecretNotFound {
                environment: environment.to_string(),
                name: name.to_string(),
            });
        }
        seal_environment(&mut *tx, &key, environment).await?;
        append_audit(&mut *tx, &audit.at_revision(revision)).await?;
        done(tx, revision).await
    }

    async fn insert_session(&self, session: SessionRow, audit: AuditRecord) -> Result<()> {
        let key = self.integrity.get()?;
        let mut tx = self.write().await?;
        let sql =
            format!("INSERT INTO web_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        let s = &session;
        let mac = key.session_mac(s);
        let args = [
            (&s.id).into(),
            (&s.key_id).into(),
            to_millis(s.created_at).into(),
            to_millis(s.last_seen_at).into(),
            to_millis(s.expires_at).into(),
            (&mac).into(),
        ];
        tx.exec(&sql, &args).await?;
        append_audit(&mut *tx, &audit).await?;
        done(tx, ()).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLS} FROM web_sessions WHERE id = $1");
        self.checked_by_id(&sql, id, session_row, checked_session)
            .await
    }

    async fn touch_session(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        let mut tx = self.write().await?;
        let sql = "UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2";
        tx.exec(sql, &[to_millis(at).into(), id.into()]).await?;
        done(tx, ()).await
    }

    async fn delete_session(&self, id: &str, audit: Option<AuditRecord>) -> Result<()> {
        let mut tx = self.write().await?;
        tx.exec("DELETE FROM web_sessions WHERE id = $1", &[id.into()])
            .await?;
        if let Some(audit) = audit {
            append_audit(&mut *tx, &audit).await?;
        }
        done(tx, ()).await
    }
}
