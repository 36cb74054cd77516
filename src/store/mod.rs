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

mod history;
pub mod migrate;
pub mod postgres;
pub mod rules;
pub mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::integrity::IntegrityKey;
use crate::names::Limits;

pub use crate::integrity::{
    check_environment, checked_key, checked_token, env_secret, tampered, IntegrityCell,
};
pub use crate::records::*;
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
    #[error("version {version} of secret {name:?} in environment {environment:?} is not kept (never set, purged, or older than the retention of `versions_kept`); see `runseal secrets history {name}`")]
    VersionNotFound {
        environment: String,
        name: String,
        version: u64,
    },
    #[error("version {version} is the current value of secret {name:?} in environment {environment:?}: set a new value (or unset it) before purging it, or purge every version")]
    CurrentVersion {
        environment: String,
        name: String,
        version: u64,
    },
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
    /// `rotate-master-key --stage`: stores a second wrapping of every key (under the new master
    /// key) and that key's check value beside the current ones, atomically. Refuses (Corrupt)
    /// wrappings that do not cover every stored key.
    async fn stage_wrappings(
        &self,
        new_check: Vec<u8>,
        wrapped: Vec<DataKeyRow>,
        audit: AuditRecord,
    ) -> Result<()>;
    /// The wrappings of a staged rotation (empty when none is staged).
    async fn staged_wrappings(&self) -> Result<Vec<DataKeyRow>>;
    /// `rotate-master-key --finish`: the staged wrappings and check value replace the current
    /// ones, and the staging is dropped, atomically.
    async fn finish_staged(&self, audit: AuditRecord) -> Result<()>;

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
    async fn unset_secret(&self, environment: &str, name: &str, audit: AuditRecord) -> Result<u64> {
        self.unset_secrets(environment, &[name.to_string()], audit)
            .await
    }
    /// Removes every named secret in one transaction with one revision; a name that is not
    /// set is [`StoreError::SecretNotFound`] and nothing is removed. Returns the new revision.
    async fn unset_secrets(
        &self,
        environment: &str,
        names: &[String],
        audit: AuditRecord,
    ) -> Result<u64>;
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

    /// Every kept version of one secret, newest first, MACs checked (`SecretNotFound` when it
    /// has neither a value nor a kept version).
    async fn secret_history(&self, environment: &str, name: &str) -> Result<Vec<SecretVersion>>;
    /// One kept version, its MAC checked.
    async fn secret_version(
        &self,
        environment: &str,
        name: &str,
        version: u64,
    ) -> Result<SecretVersion>;
    /// Destroys one kept version (never the current one), or with `None` every version and the
    /// current value; the new revision when the current value went.
    async fn purge_secret(
        &self,
        environment: &str,
        name: &str,
        version: Option<u64>,
        audit: AuditRecord,
    ) -> Result<Option<u64>>;
    /// Keeps each current value set before history existed as its version 1; how many.
    async fn backfill_versions(&self) -> Result<u64>;
    /// The current version of `environment` and its changes after revision `after`, in
    /// revision order, at most `limit`.
    async fn changes_since(
        &self,
        environment: &str,
        after: u64,
        limit: u32,
    ) -> Result<(EnvironmentVersion, Vec<Change>)>;

    /// Stores a new key; [`StoreError::EnvironmentNotFound`] when one of its scopes names an
    /// environment that does not exist (checked in the transaction, against a deletion).
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
    /// Sets (or with `None`, clears) one secret's exposure without touching its value; returns
    /// the new revision.
    async fn set_exposure(
        &self,
        environment: &str,
        name: &str,
        exposed: Option<bool>,
        audit: AuditRecord,
    ) -> Result<u64>;

    /// Stores a new dashboard session (with its audit entry: a sign-in).
    async fn insert_session(&self, session: SessionRow, audit: AuditRecord) -> Result<()>;
    /// A session by id (the hash of its secret), if its MAC passes.
    async fn session(&self, id: &str) -> Result<Option<SessionRow>>;
    async fn touch_session(&self, id: &str, at: OffsetDateTime) -> Result<()>;
    /// Ends a session (with `audit`: a sign-out; without: an expired or orphaned session).
    async fn delete_session(&self, id: &str, audit: Option<AuditRecord>) -> Result<()>;

    /// Runner starts, newest first, with each environment's current revision and whether the
    /// start is stale (with `stale_only`, only those). A start is stale when its environment's
    /// revision moved past it and a change since touched a name it got, or that it would get
    /// now: for an allow-list, its names; without one, the names it got and every secret
    /// exposed now (`expose_by_default` stands for a secret without an exposure of its own).
    /// So a change of a name outside an allow-list, or of a secret no snapshot gives, leaves a
    /// runner current. A start recorded before names were kept is stale once the revision moved.
    async fn list_runners(
        &self,
        environment: Option<&str>,
        stale_only: bool,
        expose_by_default: bool,
        limit: u32,
    ) -> Result<Vec<RunnerRow>>;
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
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
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
            .unwrap_or_else(|p| p.into_inner())
            .insert(environment.to_string(), (version, rows));
    }

    pub fn forget(&self, environment: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(environment);
    }
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
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/runseal",
                "postgres://app:***@db:5432/runseal",
            ),
            ("postgres://127.0.0.1/test", "postgres://127.0.0.1/test"),
            (
                "postgres://app@db/runseal?password=s3cret&sslmode=require",
                "postgres://app@db/runseal?password=***&sslmode=require",
            ),
            (
                "postgresql://app:p%40ss@db/x?sslpassword=k3y",
                "postgresql://app:***@db/x?sslpassword=***",
            ),
        ] {
            assert_eq!(super::redact_url(url), shown);
        }
        assert!(!super::redact_url("not a url s3cret").contains("s3cret"));
    }
}
