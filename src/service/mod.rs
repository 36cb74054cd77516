//! The service layer: every domain operation of runseald (secrets, environments, keys, runner
//! tokens, the snapshot and build fetch, runners, audit, and the verification of credentials)
//! with its rules: scopes, validation, limits, audit, metrics.
//!
//! Front-ends (the runseal gRPC API and the fal API in [`crate::grpc`], the dashboard next)
//! decode a request, call a method of [`Service`] and encode the answer; they hold no rule, so
//! the rules cannot diverge between them. This layer speaks in domain types and
//! [`ServiceError`]: no `tonic`, HTTP or SQL type appears in it, and its messages are safe to
//! show a caller (never a value, a credential or a `{:?}` of an internal error). Time comes from
//! the [`Clock`] it was built with, so tests can move it instead of sleeping.

mod audit;
mod auth;
mod changes;
mod clock;
mod compare;
mod environments;
mod fetch;
mod history;
mod keys;
pub use keys::check_label;
mod runners;
mod secrets;
mod sessions;
mod tokens;

pub use crate::defaults::generate_runner_id;
pub use auth::require;
pub use changes::{Watch, MAX_WATCHES_PER_KEY};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compare::{Diff, InBoth};
pub use fetch::{FetchRequest, Fetched, Fetcher, Purpose};
pub use keys::label_char;
pub use sessions::{NewSession, SessionLimits};
pub use tokens::{IssueRequest, IssuedToken};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::auth::Principal;
use crate::config::TokenLimits;
use crate::names::{InvalidInput, Limits, NamePolicy};
use crate::seal::{SealError, Sealer};
use crate::store::{AuditRecord, Store, StoreError};

/// The most names a request lists (`GetBuildSecrets.names`, allow-lists).
pub const MAX_NAME_LIST: usize = 1000;

/// What every operation shares: the store, the sealer and the configured rules.
pub struct Service {
    pub store: Arc<dyn Store>,
    pub sealer: Sealer,
    pub policy: NamePolicy,
    pub limits: Limits,
    /// Whether a secret with no exposure setting goes to runners without an allow-list.
    pub expose_by_default: bool,
    /// What a runner token may be minted with.
    pub token_limits: TokenLimits,
    /// How long a dashboard session lasts.
    pub session_limits: SessionLimits,
    /// The open change-feed watches.
    watches: changes::Watches,
    clock: Arc<dyn Clock>,
    /// When each key's `last_used_at` was last written (see `auth::TOUCH_INTERVAL`).
    touched: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Service {
    /// A service on the system clock, exposing secrets by default, with the default token
    /// limits.
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, policy: NamePolicy, limits: Limits) -> Self {
        Self {
            store,
            sealer,
            policy,
            limits,
            expose_by_default: true,
            token_limits: TokenLimits::default(),
            session_limits: SessionLimits::default(),
            watches: changes::Watches::default(),
            clock: Arc::new(SystemClock),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// The same service on another clock (tests pass a [`ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time of the operation in progress.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// An audit entry of `principal`'s operation, stamped now.
    fn audit(
        &self,
        p: &Principal,
        action: &'static str,
        environment: Option<&str>,
        names: Vec<String>,
    ) -> AuditRecord {
        AuditRecord {
            via: p.via,
            ..AuditRecord::new(
                self.now(),
                p.key_id.clone(),
                action,
                environment.map(str::to_string),
                names,
            )
        }
    }
}

/// What an operation fails with, in the terms a caller can act on. Each front-end maps it to
/// its protocol in one place (`impl From<ServiceError> for tonic::Status` in `grpc`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// An environment that does not exist, kept apart so that each front-end can name its own
    /// client's command to create it.
    #[error("{}", StoreError::EnvironmentNotFound(.0.clone()))]
    EnvironmentNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// Stored data failed its integrity check, or a sealed value does not open.
    #[error("{0}")]
    DataLoss(String),
    /// The store cannot be reached now; the caller may retry.
    #[error("the secret store is unavailable; retry shortly")]
    Unavailable,
    /// Something runseald cannot explain to the caller; the details are in the log.
    #[error("{0}")]
    Internal(&'static str),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl From<&InvalidInput> for ServiceError {
    fn from(e: &InvalidInput) -> Self {
        ServiceError::InvalidArgument(e.to_string())
    }
}

impl From<InvalidInput> for ServiceError {
    fn from(e: InvalidInput) -> Self {
        (&e).into()
    }
}

/// The one mapping of store errors to domain errors: backend failures are counted and logged
/// here, and never shown.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        use ServiceError as S;
        let message = e.to_string();
        match e {
            StoreError::EnvironmentNotFound(env) => S::EnvironmentNotFound(env),
            StoreError::SecretNotFound { .. }
            | StoreError::VersionNotFound { .. }
            | StoreError::KeyNotFound(_)
            | StoreError::RunnerTokenNotFound(_) => S::NotFound(message),
            StoreError::EnvironmentExists(_) => S::AlreadyExists(message),
            StoreError::EnvironmentNotEmpty { .. }
            | StoreError::MainEnvironment
            | StoreError::CurrentVersion { .. }
            | StoreError::LastAdminKey(_) => S::FailedPrecondition(message),
            StoreError::TooManySecrets { .. } | StoreError::EnvironmentTooLarge { .. } => {
                S::ResourceExhausted(message)
            }
            // Already logged and counted where the row was read. A credential row grants
            // nothing; an environment's rows are not served.
            StoreError::Tampered { table, id } if table == crate::integrity::TABLE_ENVIRONMENTS => {
                S::DataLoss(format!(
                    "environment {id:?} failed its integrity check: its secrets were changed outside runseald (deleted, flipped or put back); nothing is served from it (run `runseald verify`)"
                ))
            }
            StoreError::Tampered { table, id } if table == crate::integrity::TABLE_SECRET_VERSIONS => {
                S::DataLoss(format!(
                    "a kept version of {id} failed its integrity check (changed outside runseald); its history is not served (run `runseald verify`)"
                ))
            }
            StoreError::Tampered { .. } => S::Unauthenticated(
                "credential refused: its stored record failed the integrity check (changed outside runseald); see the server log".into(),
            ),
            e => {
                if !matches!(e, StoreError::AlreadyInitialized) {
                    crate::metrics::METRICS.store_errors.inc();
                }
                if e.is_unavailable() {
                    tracing::error!(error = %e, "store unavailable");
                    S::Unavailable
                } else {
                    tracing::error!(error = %e, "store error");
                    S::Internal("internal store error; see the server log")
                }
            }
        }
    }
}

impl From<SealError> for ServiceError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Tampered { .. } | SealError::UnknownDataKey(_) => {
                tracing::error!(error = %e, "sealed value refused");
                ServiceError::DataLoss(e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "sealing failed");
                ServiceError::Internal("sealing failed; see the server log")
            }
        }
    }
}

/// The environment a request names: empty means `main`; anything else must be a valid name.
pub fn environment_of(raw: &str) -> Result<String> {
    if raw.is_empty() {
        return Ok(crate::MAIN_ENV.to_string());
    }
    crate::names::check_environment_name(raw)?;
    Ok(raw.to_string())
}

/// Like [`environment_of`], but empty means "the one the credential allows" (`None`).
fn optional_environment(raw: &str) -> Result<Option<String>> {
    if raw.is_empty() {
        Ok(None)
    } else {
        environment_of(raw).map(Some)
    }
}

/// The environment a listing is of: one (valid) environment, whose scope the caller checks,
/// or with an empty `raw`, every environment, which takes admin.
fn listed_environment(p: &Principal, raw: &str) -> Result<Option<String>> {
    let env = optional_environment(raw)?;
    if env.is_none() {
        require(p, crate::auth::Scope::Admin)?;
    }
    Ok(env)
}

impl Service {
    /// Refuses a listing of an environment that does not exist (instead of an empty list).
    async fn existing_environment(&self, env: Option<&str>) -> Result<()> {
        if let Some(env) = env {
            if self.store.environment(env).await?.is_none() {
                return Err(ServiceError::EnvironmentNotFound(env.to_string()));
            }
        }
        Ok(())
    }
}

/// The secret names one change lists (`what`: "unset", "copy"): 1 to [`MAX_NAME_LIST`], each of
/// valid syntax, none twice.
fn name_list(names: &[String], what: &str) -> Result<()> {
    if names.is_empty() {
        return Err(ServiceError::InvalidArgument(format!(
            "names: name at least one secret to {what}"
        )));
    }
    if names.len() > MAX_NAME_LIST {
        return Err(ServiceError::InvalidArgument(format!(
            "names: at most {MAX_NAME_LIST} secrets per {what}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names {
        crate::names::check_secret_name_syntax(name)?;
        if !seen.insert(name.as_str()) {
            return Err(InvalidInput::DuplicateName(name.clone()).into());
        }
    }
    Ok(())
}

/// A list limit: 0 means `default`; more than `max` is refused, naming what is listed.
fn list_limit(limit: u32, default: u32, max: u32, what: &str) -> Result<u32> {
    match limit {
        0 => Ok(default),
        n if n > max => Err(ServiceError::InvalidArgument(format!(
            "limit: at most {max} {what}"
        ))),
        n => Ok(n),
    }
}
