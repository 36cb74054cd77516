//! The records the store keeps and the server works with: keys, runner tokens, runner starts,
//! environments, sealed secrets, audit rows. Plain data in domain terms (times as
//! `OffsetDateTime`, names, sealed bytes); no SQL and no plaintext. [`crate::store`] persists
//! them and re-exports them.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::integrity::IntegrityKey;
use crate::seal::Sealed;

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
    /// The front-end the change came through when it is not the gRPC API (`dashboard`).
    pub via: Option<&'static str>,
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
            via: None,
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
    /// `dashboard` for a change made through the dashboard; `None` for the gRPC APIs.
    pub via: Option<String>,
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

/// One kept version of a secret: its sealed value as it was stored, who wrote it and when.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    pub environment: String,
    pub name: String,
    pub version: u64,
    pub sealed: Sealed,
    pub value_len: u64,
    pub created_at: OffsetDateTime,
    /// The key id that set it (empty for a value set before history was kept).
    pub created_by: String,
    /// Whether it is the secret's current value.
    pub current: bool,
}

/// One change of an environment, as the change feed reports it (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub environment: String,
    pub revision: u64,
    pub action: String,
    pub names: Vec<String>,
    pub at: OffsetDateTime,
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
    /// The names it got, to tell when it is stale (written with the start; reads leave it
    /// `None`: the store decides staleness itself). Not covered by the row's MAC: it decides
    /// staleness only, which grants nothing.
    pub received: Option<Received>,
}

/// The names one runner start got, kept in the form the `runners.received` column stores
/// (`=,A,B,` for an allow-list, `*,A,B,` for every exposed secret), built once per start so the
/// hot path only binds it. Names only, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received(String);

impl Received {
    /// What a start got: exactly the names of its allow-list (`allow_list`), or every secret
    /// exposed at its revision.
    pub fn new<'a>(allow_list: bool, names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = String::from(if allow_list { "=," } else { "*," });
        for n in names {
            s.push_str(n);
            s.push(',');
        }
        Received(s)
    }

    pub fn as_column(&self) -> &str {
        &self.0
    }
}

/// A runner start with its environment's current revision and whether it is stale (see
/// `Store::list_runners` for the rule).
#[derive(Debug, Clone)]
pub struct RunnerRow {
    pub record: RunnerRecord,
    pub current_revision: u64,
    pub stale: bool,
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

/// A dashboard session. `id` is the SHA-256 (hex) of the cookie's secret: the secret itself is
/// never stored. It ends at `expires_at` (absolute) or when idle too long after `last_seen_at`.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub key_id: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
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
/// Meta key of the new master key's check value while a rotation is staged
/// (`rotate-master-key --stage`; gone after `--finish`).
pub const META_STAGED_MASTER_KEY_CHECK: &str = "staged_master_key_check";
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
    /// Every kept version of a secret, with its MAC.
    pub versions: Vec<(SecretVersion, Vec<u8>)>,
}

/// Which state of an environment a set of rows belongs to: every change bumps the revision, and
/// the creation time tells a re-created environment (whose revision starts again) from the old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvironmentVersion {
    pub revision: u64,
    pub created_at: i64,
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

/// A stored scope list without the scopes of environment `env` (`write:ENV`, `read:ENV`…), or
/// `None` when it names no scope of `env`.
pub(crate) fn scopes_without_environment(stored: &str, env: &str) -> Option<String> {
    let all: Vec<&str> = stored.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    let kept: Vec<&str> = all
        .iter()
        .copied()
        .filter(|s| s.split_once(':').is_none_or(|(_, e)| e != env))
        .collect();
    (kept.len() != all.len()).then(|| kept.join(","))
}

/// The environments a stored scope list names (`write:ENV`, `read:ENV`…).
pub(crate) fn scope_environments(stored: &str) -> Vec<&str> {
    stored
        .split([',', ' '])
        .filter_map(|s| s.split_once(':').map(|(_, e)| e))
        .collect()
}
