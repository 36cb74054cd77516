//! Persistence of sealed secrets, environments, keys and the audit log.
//!
//! [`Store`] is the one interface the server uses. Its rules and statements are written once
//! ([`rules`], over the [`sql::Tx`] of each backend); each backend (`sqlite.rs`, `postgres.rs`)
//! only opens transactions, and the few real differences of their SQL sit in [`sql::Dialect`].
//! A store only ever sees sealed values: plaintext never reaches it, so it never reaches the
//! database file, its WAL or its logs. Every change and its audit entry commit in one
//! transaction.
//!
//! Rows that grant something (keys, runner tokens, runner starts, each environment's revision)
//! carry a MAC under the integrity key ([`crate::integrity`]), computed in the transaction that
//! writes them and checked when they are read to grant anything: a row that fails is
//! [`StoreError::Tampered`].

pub mod migrate;
pub mod postgres;
pub mod rules;
pub mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::integrity::{EnvSecret, IntegrityKey};
use crate::names::Limits;
use crate::seal::Sealed;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("environment {0:?} does not exist; create it with `runseal env create {0}`")]
    EnvironmentNotFound(String),
    #[error("environment {0:?} already exists")]
    EnvironmentExists(String),
    #[error("environment {name:?} still holds {count} secret(s); unset them first or delete with --force")]
    EnvironmentNotEmpty { name: String, count: u64 },
    #[error("environment \"main\" cannot be deleted")]
    MainEnvironment,
    #[error("secret {name:?} is not set in environment {environment:?}")]
    SecretNotFound { environment: String, name: String },
    #[error("key {0:?} does not exist")]
    KeyNotFound(String),
    #[error("runner token {0:?} does not exist")]
    RunnerTokenNotFound(String),
    #[error("key {0:?} is the last active admin key: create another one first (`runseal keys create --scope admin`)")]
    LastAdminKey(String),
    #[error("environment {environment:?} would hold {count} secrets: the limit is {max}")]
    TooManySecrets {
        environment: String,
        count: u64,
        max: usize,
    },
    #[error(
        "environment {environment:?} would hold {bytes} bytes of values: the limit is {max} bytes"
    )]
    EnvironmentTooLarge {
        environment: String,
        bytes: u64,
        max: usize,
    },
    #[error("the store is already initialised")]
    AlreadyInitialized,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A row's MAC did not match: it was written or changed outside runseald. Already logged
    /// and counted ([`crate::integrity::report_failure`]).
    #[error("{table} row {id:?} failed its integrity check (changed outside runseald); run `runseald verify`")]
    Tampered { table: &'static str, id: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The store is closed or a part of it stopped: retryable elsewhere or after a restart.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// True when the database could not be reached or is restarting: callers may retry, and
    /// the server answers UNAVAILABLE.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    // 08: connection exception; 57P01-03: shutdown / cannot connect now;
                    // 53: insufficient resources; 40001/40P01: retryable conflicts.
                    c.starts_with("08")
                        || c.starts_with("57P")
                        || c.starts_with("53")
                        || c == "40001"
                        || c == "40P01"
                }),
                _ => false,
            },
            StoreError::Unavailable(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
            ),
            _ => false,
        }
    }
}

/// The most names one audit row keeps: a larger batch (10,000 runner tokens minted at once) is
/// summarised as its first names and the total, so no row is too large to list.
pub const MAX_AUDIT_NAMES: usize = 50;

/// One audit entry to append with a change. Names only, never values.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: OffsetDateTime,
    pub key_id: String,
    pub action: &'static str,
    pub environment: Option<String>,
    pub names: Vec<String>,
    /// The environment revision the change produced (the store fills it in for changes of an
    /// environment's secrets), or the revision a snapshot or build fetch served.
    pub revision: Option<u64>,
    /// The runner a snapshot was served to.
    pub runner_id: Option<String>,
    /// How many values a snapshot or build fetch served (never the values).
    pub values: Option<u32>,
}

impl AuditRecord {
    /// A record with no revision, runner or value count.
    pub fn new(
        at: OffsetDateTime,
        key_id: impl Into<String>,
        action: &'static str,
        environment: Option<String>,
        names: Vec<String>,
    ) -> Self {
        Self {
            at,
            key_id: key_id.into(),
            action,
            environment,
            names,
            revision: None,
            runner_id: None,
            values: None,
        }
    }

    /// The same record, stamped with the revision it produced or served.
    pub fn at_revision(mut self, revision: u64) -> Self {
        self.revision = Some(revision);
        self
    }

    /// The names as stored (comma-separated, at most [`MAX_AUDIT_NAMES`]) and how many the
    /// record named in all.
    pub fn stored_names(&self) -> (String, i64) {
        let kept = &self.names[..self.names.len().min(MAX_AUDIT_NAMES)];
        (kept.join(","), self.names.len() as i64)
    }
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: u64,
    pub at: OffsetDateTime,
    pub key_id: String,
    pub action: String,
    pub environment: Option<String>,
    /// At most [`MAX_AUDIT_NAMES`]; `names_total` says how many the change named.
    pub names: Vec<String>,
    pub names_total: u64,
    pub revision: Option<u64>,
    pub runner_id: Option<String>,
    pub values: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct DataKeyRow {
    pub id: String,
    pub master_key_id: String,
    pub wrapped: Vec<u8>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    pub name: String,
    pub revision: u64,
    pub secret_count: u64,
    pub created_at: OffsetDateTime,
}

/// A secret's metadata: what listings show.
#[derive(Debug, Clone)]
pub struct SecretMeta {
    pub environment: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// `None`: the server default applies.
    pub exposed: Option<bool>,
}

/// A secret as stored: its sealed value, the plaintext length (for limits) and its exposure.
/// On a write, `exposed: None` keeps an existing secret's setting.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: Sealed,
    pub value_len: u64,
    pub exposed: Option<bool>,
}

/// A runner token as stored: only the hash of its secret.
#[derive(Debug, Clone)]
pub struct RunnerTokenRow {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub environment: String,
    /// The allow-list the token imposes (`None`: none).
    pub only: Option<Vec<String>>,
    pub purpose: String,
    pub uses_left: u32,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub revoked_at: Option<OffsetDateTime>,
}

/// One runner start: which snapshot revision it got.
#[derive(Debug, Clone)]
pub struct RunnerRecord {
    pub runner_id: String,
    pub environment: String,
    pub revision: u64,
    pub started_at: OffsetDateTime,
    pub credential_id: String,
    /// SHA-256 of the agent's retry key for this start (runner tokens only).
    pub retry_hash: Option<Vec<u8>>,
}

/// A runner start with its environment's current revision.
#[derive(Debug, Clone)]
pub struct RunnerRow {
    pub record: RunnerRecord,
    pub current_revision: u64,
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub label: String,
    /// Comma-separated scopes (see [`crate::auth::parse_scopes`]).
    pub scopes: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Everything written on first start, in one transaction.
#[derive(Debug)]
pub struct InitialState {
    pub master_key_check: Vec<u8>,
    pub data_key: DataKeyRow,
    /// The integrity key, wrapped like a data key (id [`crate::integrity::INTEGRITY_KEY_ID`]).
    pub integrity_key: DataKeyRow,
    /// The same key unwrapped: the MACs of `main` and the admin key are computed with it.
    pub integrity: Arc<IntegrityKey>,
    pub admin_key: KeyRow,
    pub at: OffsetDateTime,
}

/// Meta key under which the master key check value is stored.
pub const META_MASTER_KEY_CHECK: &str = "master_key_check";
/// Meta key naming the data key that seals new values.
pub const META_ACTIVE_DATA_KEY: &str = "active_data_key";

/// Every row that carries a MAC, with its MAC, as read in one transaction (for `verify` and the
/// upgrade that computes the first MACs).
#[derive(Debug, Default)]
pub struct IntegrityRows {
    pub keys: Vec<(KeyRow, Vec<u8>)>,
    pub tokens: Vec<(RunnerTokenRow, Vec<u8>)>,
    /// With the backend's row number.
    pub runners: Vec<(i64, RunnerRecord, Vec<u8>)>,
    /// Name, revision, creation time (unix ms), MAC.
    pub environments: Vec<(String, u64, i64, Vec<u8>)>,
    /// Every secret with its environment.
    pub secrets: Vec<(String, SealedSecret)>,
}

impl IntegrityRows {
    /// True when any row carries a MAC (an upgraded database).
    pub fn any_mac(&self) -> bool {
        self.keys.iter().any(|(_, m)| !m.is_empty())
            || self.tokens.iter().any(|(_, m)| !m.is_empty())
            || self.runners.iter().any(|(_, _, m)| !m.is_empty())
            || self.environments.iter().any(|(_, _, _, m)| !m.is_empty())
    }

    fn env_secrets<'a>(&'a self, env: &str) -> Vec<EnvSecret<'a>> {
        self.secrets
            .iter()
            .filter(|(e, _)| e == env)
            .map(|(_, s)| env_secret(s))
            .collect()
    }

    /// The rows whose MAC does not match, named `TABLE ID` (never a value or a secret).
    pub fn failures(&self, key: &IntegrityKey) -> Vec<String> {
        let mut bad = Vec::new();
        for (k, mac) in &self.keys {
            if !key.verify_key(k, mac) {
                bad.push(format!("{} {}", crate::integrity::TABLE_API_KEYS, k.id));
            }
        }
        for (t, mac) in &self.tokens {
            if !key.verify_token(t, mac) {
                bad.push(format!(
                    "{} {}",
                    crate::integrity::TABLE_RUNNER_TOKENS,
                    t.id
                ));
            }
        }
        for (n, r, mac) in &self.runners {
            if !key.verify_runner(r, mac) {
                bad.push(format!(
                    "{} {n} (runner {}, credential {})",
                    crate::integrity::TABLE_RUNNERS,
                    r.runner_id,
                    r.credential_id
                ));
            }
        }
        for (name, revision, created_at, mac) in &self.environments {
            if !key.verify_environment(name, *revision, *created_at, &self.env_secrets(name), mac) {
                bad.push(format!(
                    "{} {name} (its secrets, exposure or revision)",
                    crate::integrity::TABLE_ENVIRONMENTS
                ));
            }
        }
        // A secret of an environment that does not exist.
        for (env, s) in &self.secrets {
            if !self.environments.iter().any(|(n, ..)| n == env) {
                bad.push(format!("secrets {env}/{} (no such environment)", s.name));
            }
        }
        bad
    }

    /// The MAC every environment should carry.
    pub fn environment_macs(&self, key: &IntegrityKey) -> Vec<(String, Vec<u8>)> {
        self.environments
            .iter()
            .map(|(name, revision, created_at, _)| {
                (
                    name.clone(),
                    key.environment_mac(name, *revision, *created_at, &self.env_secrets(name)),
                )
            })
            .collect()
    }
}

/// A sealed secret as the environment MAC sees it.
pub fn env_secret(s: &SealedSecret) -> EnvSecret<'_> {
    EnvSecret {
        name: &s.name,
        nonce: &s.sealed.nonce,
        ciphertext: &s.sealed.ciphertext,
        exposed: s.exposed,
    }
}

/// Checks rows read for a snapshot against their environment's MAC: DATA_LOSS naming the
/// environment when they do not match (logged and counted).
pub fn check_environment(
    key: &IntegrityKey,
    environment: &str,
    version: EnvironmentVersion,
    secrets: &[SealedSecret],
    mac: &[u8],
) -> Result<()> {
    let rows: Vec<EnvSecret<'_>> = secrets.iter().map(env_secret).collect();
    if key.verify_environment(
        environment,
        version.revision,
        version.created_at,
        &rows,
        mac,
    ) {
        Ok(())
    } else {
        Err(tampered(crate::integrity::TABLE_ENVIRONMENTS, environment))
    }
}

/// Logs and counts a row that failed its check; the error the caller returns.
pub fn tampered(table: &'static str, id: &str) -> StoreError {
    crate::integrity::report_failure(table, id);
    StoreError::Tampered {
        table,
        id: id.to_string(),
    }
}

/// A key row, if its MAC matches (else logged, counted, [`StoreError::Tampered`]).
pub fn checked_key(key: &IntegrityKey, row: KeyRow, mac: &[u8]) -> Result<KeyRow> {
    if key.verify_key(&row, mac) {
        Ok(row)
    } else {
        Err(tampered(crate::integrity::TABLE_API_KEYS, &row.id))
    }
}

/// A runner token row, if its MAC matches (else logged, counted, [`StoreError::Tampered`]).
pub fn checked_token(
    key: &IntegrityKey,
    row: RunnerTokenRow,
    mac: &[u8],
) -> Result<RunnerTokenRow> {
    if key.verify_token(&row, mac) {
        Ok(row)
    } else {
        Err(tampered(crate::integrity::TABLE_RUNNER_TOKENS, &row.id))
    }
}

/// The unwrapped integrity key a store computes and checks MACs with, set once the master key
/// has opened it ([`Store::set_integrity_key`]).
#[derive(Default)]
pub struct IntegrityCell(RwLock<Option<Arc<IntegrityKey>>>);

impl IntegrityCell {
    pub fn set(&self, key: Arc<IntegrityKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    /// The key; an error before it is set (nothing is granted without it).
    pub fn get(&self) -> Result<Arc<IntegrityKey>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Corrupt("the integrity key is not loaded yet".into()))
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Closes connections; SQLite checkpoints its WAL into the database file.
    async fn close(&self) {}
    /// True once [`Store::initialize`] has committed.
    async fn is_initialized(&self) -> Result<bool>;
    /// Writes the first master key check value, data key, `main` and the admin key.
    async fn initialize(&self, init: InitialState) -> Result<()>;
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every wrapped key, the integrity key (id [`crate::integrity::INTEGRITY_KEY_ID`]) included.
    async fn data_keys(&self) -> Result<Vec<DataKeyRow>>;
    /// The integrity key every MAC is computed and checked with from now on.
    fn set_integrity_key(&self, key: Arc<IntegrityKey>);
    /// The upgrade of a database made before the MACs: in one transaction, locked against
    /// replicas doing the same, stores the wrapped integrity key and computes the MAC of every
    /// row with `key`. `Ok(None)`: the database already has an integrity key (another replica
    /// did it, or it was never needed); nothing was written. `Ok(Some(n))`: `n` rows got MACs.
    /// Refuses (Corrupt) a database without an integrity key whose rows carry MACs.
    async fn upgrade_integrity(
        &self,
        wrapped: DataKeyRow,
        key: &IntegrityKey,
        audit: AuditRecord,
    ) -> Result<Option<u64>>;
    /// Every row that carries a MAC and every secret, in one read transaction (`verify`).
    async fn integrity_rows(&self) -> Result<IntegrityRows>;
    /// Replaces every data key's wrapping and the check value, atomically.
    async fn rewrap_data_keys(
        &self,
        new_check: Vec<u8>,
        rewrapped: Vec<DataKeyRow>,
        audit: AuditRecord,
    ) -> Result<()>;

    async fn list_environments(&self) -> Result<Vec<EnvironmentRow>>;
    async fn environment(&self, name: &str) -> Result<Option<EnvironmentRow>>;
    async fn create_environment(&self, name: &str, audit: AuditRecord) -> Result<EnvironmentRow>;
    /// Deletes an environment; with `force`, together with its secrets. Returns how many
    /// secrets were deleted.
    async fn delete_environment(&self, name: &str, force: bool, audit: AuditRecord) -> Result<u64>;

    /// Creates or updates every secret in one transaction, enforcing the per-environment
    /// limits on the result. Returns the new revision.
    async fn set_secrets(
        &self,
        environment: &str,
        secrets: Vec<SealedSecret>,
        limits: &Limits,
        audit: AuditRecord,
    ) -> Result<u64>;
    async fn unset_secret(&self, environment: &str, name: &str, audit: AuditRecord) -> Result<u64>;
    /// Names and times of one environment's secrets, with its revision.
    async fn list_secrets(&self, environment: &str) -> Result<(u64, Vec<SecretMeta>)>;
    /// Sealed values of one environment at one revision (for snapshots).
    async fn sealed_secrets(&self, environment: &str) -> Result<(u64, Vec<SealedSecret>)>;
    /// [`Store::sealed_secrets`] for a runner start, shared. A backend may answer from its
    /// [`SnapshotCache`], but only after checking the environment's current revision in the
    /// database on every call, so a change made through another replica is seen at once.
    async fn sealed_snapshot(&self, environment: &str) -> Result<(u64, Arc<Vec<SealedSecret>>)> {
        let (revision, rows) = self.sealed_secrets(environment).await?;
        Ok((revision, Arc::new(rows)))
    }
    /// Every sealed value of every environment (for `runseald verify`).
    async fn all_sealed_secrets(&self) -> Result<Vec<(String, SealedSecret)>>;

    async fn insert_key(&self, key: KeyRow, audit: AuditRecord) -> Result<()>;
    async fn key(&self, id: &str) -> Result<Option<KeyRow>>;
    async fn list_keys(&self) -> Result<Vec<KeyRow>>;
    /// Revokes a key and every runner token it minted; returns how many tokens.
    async fn revoke_key(&self, id: &str, audit: AuditRecord) -> Result<u64>;
    async fn touch_key(&self, id: &str, at: OffsetDateTime) -> Result<()>;

    /// The newest `limit` audit rows (of one environment), newest first.
    async fn list_audit(&self, environment: Option<&str>, limit: u32) -> Result<Vec<AuditRow>> {
        self.list_audit_before(environment, None, limit).await
    }
    /// One page of the audit log, newest first: rows with an id below `before` (all rows when
    /// `None`).
    async fn list_audit_before(
        &self,
        environment: Option<&str>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>>;
    /// Appends one audit row on its own (a snapshot served again to the runner that used its
    /// token).
    async fn append_audit(&self, audit: AuditRecord) -> Result<()>;
    /// Deletes audit rows older than `before` (the retention); returns how many.
    async fn prune_audit(&self, before: OffsetDateTime) -> Result<u64>;

    async fn insert_runner_tokens(
        &self,
        tokens: Vec<RunnerTokenRow>,
        audit: AuditRecord,
    ) -> Result<()>;
    async fn runner_token(&self, id: &str) -> Result<Option<RunnerTokenRow>>;
    async fn revoke_runner_token(&self, id: &str, audit: AuditRecord) -> Result<()>;
    /// Revokes every active token of an environment; returns how many.
    async fn revoke_runner_tokens(&self, environment: &str, audit: AuditRecord) -> Result<u64>;
    /// Active tokens (unrevoked, unexpired at `now`, uses left), newest first, of one
    /// environment or of all.
    async fn list_runner_tokens(
        &self,
        environment: Option<&str>,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RunnerTokenRow>>;
    /// Atomically takes one use of a valid token (unrevoked, unexpired at `record.started_at`,
    /// uses left), records the runner start and appends `audit`. `false`: nothing was taken or
    /// recorded.
    async fn redeem_runner_token(
        &self,
        id: &str,
        record: &RunnerRecord,
        audit: &AuditRecord,
    ) -> Result<bool>;
    /// True when `runner_id` started with token `token_id` at or after `since`, presenting the
    /// retry key whose SHA-256 is `retry_hash` (an agent retrying after its answer was lost, e.g.
    /// to a replica that died mid-call).
    async fn runner_started_with(
        &self,
        token_id: &str,
        runner_id: &str,
        retry_hash: &[u8],
        since: OffsetDateTime,
    ) -> Result<bool>;
    /// Records a runner start made with a key, with its audit row.
    async fn record_runner(&self, record: &RunnerRecord, audit: &AuditRecord) -> Result<()>;
    /// Records a build's fetch of named values with its audit entry, in one transaction. With
    /// `token_id`, first takes one use of that token (valid at `audit.at`, as in
    /// [`Store::redeem_runner_token`]); `false`: no use was left, nothing was recorded.
    async fn record_build_fetch(&self, token_id: Option<&str>, audit: AuditRecord) -> Result<bool>;
    /// Deletes runner records started before `before` and tokens expired before it.
    async fn prune_runners(&self, before: OffsetDateTime) -> Result<u64>;
    /// Runner starts, newest first, with each environment's current revision.
    async fn list_runners(
        &self,
        environment: Option<&str>,
        stale_only: bool,
        limit: u32,
    ) -> Result<Vec<RunnerRow>>;
}

/// Which state of an environment a set of rows belongs to: every change bumps the revision, and
/// the creation time tells a re-created environment (whose revision starts again) from the old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvironmentVersion {
    pub revision: u64,
    pub created_at: i64,
}

/// The sealed rows of each environment as last read, keyed by [`EnvironmentVersion`]. It holds
/// sealed values only (never plaintext), so it is no more sensitive than the database; it saves
/// reading and decoding every row on each runner start when nothing changed.
#[derive(Default)]
pub struct SnapshotCache {
    entries: Mutex<HashMap<String, CachedRows>>,
}

type CachedRows = (EnvironmentVersion, Arc<Vec<SealedSecret>>);

impl SnapshotCache {
    /// The rows cached for `environment`, if they were read at `version`.
    pub fn get(
        &self,
        environment: &str,
        version: EnvironmentVersion,
    ) -> Option<Arc<Vec<SealedSecret>>> {
        let entries = self.entries.lock().expect("snapshot cache poisoned");
        match entries.get(environment) {
            Some((v, rows)) if *v == version => Some(rows.clone()),
            _ => None,
        }
    }

    pub fn put(
        &self,
        environment: &str,
        version: EnvironmentVersion,
        rows: Arc<Vec<SealedSecret>>,
    ) {
        self.entries
            .lock()
            .expect("snapshot cache poisoned")
            .insert(environment.to_string(), (version, rows));
    }

    pub fn forget(&self, environment: &str) {
        self.entries
            .lock()
            .expect("snapshot cache poisoned")
            .remove(environment);
    }
}

/// Unix milliseconds, the time representation of every backend.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether stored scopes (`admin,write:ENV,…`) include `admin`.
pub(crate) fn scopes_include_admin(stored: &str) -> bool {
    stored.split(',').any(|s| s.trim() == "admin")
}

/// A database URL with its password replaced, for logs and messages: the `user:password@` part
/// and the query parameters PostgreSQL reads secrets from (`password`, `sslpassword`, `passfile`
/// names a file, kept). A URL that does not parse is not shown at all.
pub fn redact_url(url: &str) -> String {
    const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable database URL>".to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| SECRET_PARAMS.contains(&k.as_ref()))
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if SECRET_PARAMS.contains(&k.as_ref()) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// A database URL. The password inside never prints: `Debug` and `Display` show the
/// [`redact_url`] form. Config and arguments hold it from the moment they are read.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The URL with its password, for the connection only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The connect options of a PostgreSQL URL (kept inside the pool, never printed).
    pub(crate) fn pg_options(&self) -> Result<sqlx::postgres::PgConnectOptions> {
        Ok(self.expose().parse()?)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls_never_print_their_password() {
        for url in [
            "postgres://app:s3cret@db:5432/runseal",
            "postgres://app@db/runseal?password=s3cret&sslmode=require",
            "not a url s3cret",
        ] {
            let u = super::DatabaseUrl::new(url);
            let (debug, display) = (format!("{u:?}"), format!("{u}"));
            assert!(
                !debug.contains("s3cret") && !display.contains("s3cret"),
                "{debug} {display}"
            );
            assert_eq!(display, super::redact_url(url));
            assert_eq!(u.expose(), url);
        }
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            super::redact_url("postgres://app:s3cret@db:5432/runseal"),
            "postgres://app:***@db:5432/runseal"
        );
        assert_eq!(
            super::redact_url("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
        assert_eq!(
            super::redact_url("postgres://app@db/runseal?password=s3cret&sslmode=require"),
            "postgres://app@db/runseal?password=***&sslmode=require"
        );
        assert_eq!(
            super::redact_url("postgresql://app:p%40ss@db/x?sslpassword=k3y"),
            "postgresql://app:***@db/x?sslpassword=***"
        );
        assert!(!super::redact_url("not a url s3cret").contains("s3cret"));
    }
}
