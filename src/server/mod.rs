//! The gRPC server: one file per service, the shared [`State`], authentication and the one
//! place where internal errors become `tonic::Status`.
//!
//! [`serve`] takes its listener(s) and a shutdown future, so tests run the real server
//! in-process on port 0. Statuses never carry a value, a credential or a `{:?}` of an internal
//! error; internal details go to the log (which never holds values either).

mod audit;
mod environments;
mod fal;
mod keys;
mod runners;
mod secrets;

pub use runners::generate_runner_id;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Status};

use crate::auth::{parse_scopes, Credential, Principal, Scope};
use crate::names::{InvalidInput, Limits, NamePolicy};
use crate::proto::{controller, v1};
use crate::seal::{SealError, Sealer};
use crate::store::{AuditRecord, Store, StoreError};
use crate::tls::TlsAcceptor;

/// `last_used_at` is written at most this often per key, so reads do not become writes.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What every service shares.
pub struct State {
    pub store: Arc<dyn Store>,
    pub sealer: Sealer,
    pub policy: NamePolicy,
    pub limits: Limits,
    /// Whether a secret with no exposure setting goes to runners without an allow-list.
    pub expose_by_default: bool,
    /// What a runner token may be minted with.
    pub token_limits: crate::config::TokenLimits,
    touched: Mutex<HashMap<String, Instant>>,
}

impl State {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, policy: NamePolicy, limits: Limits) -> Self {
        Self {
            store,
            sealer,
            policy,
            limits,
            expose_by_default: true,
            token_limits: crate::config::TokenLimits::default(),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the key of a request (see [`credential_of`]).
    pub async fn authenticate<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let cred = credential_of(req)?;
        self.authenticate_credential(&cred).await
    }
}

/// The credential of a request (a key or a runner token): `authorization: Bearer ID:SECRET`,
/// or the metadata pair `auth-key-id: ID` / `auth-key: SECRET` that the fal CLI and SDK send
/// for `FAL_KEY=ID:SECRET`. When both are present, `authorization` wins. Errors never echo
/// what was sent.
pub fn credential_of<T>(req: &Request<T>) -> Result<Credential, Status> {
    let meta = req.metadata();
    if let Some(header) = meta.get("authorization") {
        let malformed = || {
            Status::unauthenticated("malformed authorization: expected `Bearer KEY_ID:KEY_SECRET`")
        };
        let value = header.to_str().map_err(|_| malformed())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(malformed)?;
        return Credential::parse(token).map_err(|_| malformed());
    }
    match (meta.get("auth-key-id"), meta.get("auth-key")) {
        (Some(id), Some(secret)) => {
            let malformed = || {
                Status::unauthenticated(
                    "malformed auth-key-id/auth-key: expected the two halves of KEY_ID:KEY_SECRET",
                )
            };
            let (id, secret) = (
                id.to_str().map_err(|_| malformed())?,
                secret.to_str().map_err(|_| malformed())?,
            );
            // Neither half may hold ':' (Credential::parse refuses it), so the pair cannot be
            // reassembled into a different split.
            let line = zeroize::Zeroizing::new(format!("{id}:{secret}"));
            Credential::parse(&line).map_err(|_| malformed())
        }
        (None, None) => Err(Status::unauthenticated(
            "missing key: send the metadata `authorization: Bearer KEY_ID:KEY_SECRET` \
             (or the pair `auth-key-id` / `auth-key`, as the fal client does for FAL_KEY)",
        )),
        _ => Err(Status::unauthenticated(
            "incomplete key: send both `auth-key-id` and `auth-key`",
        )),
    }
}

impl State {
    pub async fn authenticate_credential(&self, cred: &Credential) -> Result<Principal, Status> {
        if cred.is_runner_token() {
            return Err(Status::unauthenticated(format!(
                "{} is a runner token: it only fetches a snapshot (runseal-agent); this call needs a key (rk_…, `runseal keys create`)",
                cred.key_id()
            )));
        }
        let invalid = || Status::unauthenticated("invalid key: unknown key id or wrong secret");
        let row = self
            .store
            .key(cred.key_id())
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(invalid)?;
        if !cred.matches_hash(&row.secret_hash) {
            return Err(invalid());
        }
        if row.revoked_at.is_some() {
            return Err(Status::unauthenticated(format!(
                "key {} has been revoked",
                row.id
            )));
        }
        let scopes = parse_scopes(&row.scopes).map_err(|e| {
            tracing::error!(key_id = %row.id, error = %e, "stored key has unreadable scopes");
            Status::internal("stored key is unreadable; see the server log")
        })?;
        self.touch(&row.id).await;
        Ok(Principal {
            key_id: row.id,
            scopes,
        })
    }

    async fn touch(&self, key_id: &str) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().expect("touch map poisoned");
            match touched.get(key_id) {
                Some(t) if now.duration_since(*t) < TOUCH_INTERVAL => return,
                _ => {
                    touched.insert(key_id.to_string(), now);
                }
            }
        }
        if let Err(e) = self
            .store
            .touch_key(key_id, OffsetDateTime::now_utc())
            .await
        {
            tracing::warn!(key_id, error = %e, "could not record key use");
        }
    }
}

/// What a shared operation (used by runseal.v1 and the fal service alike) fails with: a status
/// meant for the caller as it is, or a store error, which each API turns into a status whose
/// hints name its own client's commands.
#[derive(Debug)]
pub enum Failure {
    Status(Status),
    Store(StoreError),
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        Failure::Status(s)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Status(s) => s,
            Failure::Store(e) => store_status(&e),
        }
    }
}

/// `PERMISSION_DENIED` naming the missing scope.
pub fn require(p: &Principal, needed: Scope) -> Result<(), Status> {
    if p.allows(&needed) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "key {} lacks the scope {needed}",
            p.key_id
        )))
    }
}

pub fn audit_record(
    p: &Principal,
    action: &'static str,
    environment: Option<&str>,
    names: Vec<String>,
) -> AuditRecord {
    AuditRecord::new(
        OffsetDateTime::now_utc(),
        p.key_id.clone(),
        action,
        environment.map(str::to_string),
        names,
    )
}

/// The environment of a request: empty means `main`; anything else must be a valid name.
pub fn environment_of(raw: &str) -> Result<String, Status> {
    if raw.is_empty() {
        return Ok(crate::MAIN_ENV.to_string());
    }
    crate::names::check_environment_name(raw).map_err(|e| invalid(&e))?;
    Ok(raw.to_string())
}

pub fn invalid(e: &InvalidInput) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The one mapping of store errors to statuses.
pub fn store_status(e: &StoreError) -> Status {
    if matches!(
        e,
        StoreError::Database(_)
            | StoreError::Sqlite(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
    ) {
        crate::metrics::METRICS.store_errors.inc();
    }
    match e {
        StoreError::EnvironmentNotFound(_)
        | StoreError::SecretNotFound { .. }
        | StoreError::KeyNotFound(_)
        | StoreError::RunnerTokenNotFound(_) => Status::not_found(e.to_string()),
        StoreError::EnvironmentExists(_) => Status::already_exists(e.to_string()),
        StoreError::EnvironmentNotEmpty { .. }
        | StoreError::MainEnvironment
        | StoreError::LastAdminKey(_) => Status::failed_precondition(e.to_string()),
        StoreError::TooManySecrets { .. } | StoreError::EnvironmentTooLarge { .. } => {
            Status::resource_exhausted(e.to_string())
        }
        // Already logged and counted where the row was read. A credential row grants nothing;
        // an environment's rows are not served.
        StoreError::Tampered { table, id } if *table == crate::integrity::TABLE_ENVIRONMENTS => {
            Status::data_loss(format!(
                "environment {id:?} failed its integrity check: its secrets were changed outside runseald (deleted, flipped or put back); nothing is served from it (run `runseald verify`)"
            ))
        }
        StoreError::Tampered { .. } => Status::unauthenticated(
            "credential refused: its stored record failed the integrity check (changed outside runseald); see the server log",
        ),
        e if e.is_unavailable() => {
            tracing::error!(error = %e, "store unavailable");
            Status::unavailable("the secret store is unavailable; retry shortly")
        }
        StoreError::AlreadyInitialized
        | StoreError::Corrupt(_)
        | StoreError::Database(_)
        | StoreError::Sqlite(_)
        | StoreError::Migrate(_) => {
            tracing::error!(error = %e, "store error");
            Status::internal("internal store error; see the server log")
        }
    }
}

pub fn seal_status(e: &SealError) -> Status {
    match e {
        SealError::Tampered { .. } | SealError::UnknownDataKey(_) => {
            tracing::error!(error = %e, "sealed value refused");
            Status::data_loss(e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "sealing failed");
            Status::internal("sealing failed; see the server log")
        }
    }
}

pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// Every service of runseald (runseal.v1 and the fal `controller` subset), plus health and
/// reflection.
pub async fn routes(state: Arc<State>) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::secrets_server::SecretsServer<secrets::SecretsService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let mut builder = Routes::builder();
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(v1::secrets_server::SecretsServer::new(
            secrets::SecretsService::new(state.clone()),
        ))
        .add_service(v1::environments_server::EnvironmentsServer::new(
            environments::EnvironmentsService::new(state.clone()),
        ))
        .add_service(v1::keys_server::KeysServer::new(keys::KeysService::new(
            state.clone(),
        )))
        .add_service(v1::runners_server::RunnersServer::new(
            runners::RunnersService::new(state.clone()),
        ))
        .add_service(v1::audit_server::AuditServer::new(
            audit::AuditService::new(state.clone()),
        ))
        .add_service(
            controller::isolate_controller_server::IsolateControllerServer::new(
                fal::FalService::new(state),
            ),
        );
    builder.routes()
}

/// Where runseald accepts connections.
pub enum Listener {
    Tcp(TcpListener),
    Tls(TcpListener, TlsAcceptor),
    Unix(UnixListener),
}

/// Serves `routes` on every listener until `shutdown` completes, then stops accepting and lets
/// in-flight calls finish.
pub async fn serve(
    routes: Routes,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let routes = routes.clone();
        let mut rx = rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(crate::metrics::MetricsLayer)
            .add_routes(routes);
        match listener {
            Listener::Tcp(l) => {
                // `Server::tcp_nodelay` only applies to listeners tonic binds itself; without
                // it here, Nagle holds back small responses for up to 40 ms per call.
                let incoming = TcpListenerStream::new(l).map(|conn| {
                    conn.inspect(|s| {
                        let _ = s.set_nodelay(true);
                    })
                });
                tasks.spawn(server.serve_with_incoming_shutdown(incoming, stop));
            }
            Listener::Tls(l, acceptor) => {
                tasks.spawn(server.serve_with_incoming_shutdown(acceptor.incoming(l), stop));
            }
            Listener::Unix(l) => {
                tasks.spawn(server.serve_with_incoming_shutdown(UnixListenerStream::new(l), stop));
            }
        }
    }
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    while let Some(res) = tasks.join_next().await {
        res.expect("server task panicked")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut r = Request::new(());
        for (k, v) in pairs {
            r.metadata_mut().insert(*k, v.parse().unwrap());
        }
        r
    }

    #[test]
    fn the_fal_pair_is_a_credential_and_authorization_wins() {
        let c = credential_of(&with(&[("auth-key-id", "rk_a"), ("auth-key", "s3cr3t")])).unwrap();
        assert_eq!((c.key_id(), c.expose_secret()), ("rk_a", "s3cr3t"));
        let c = credential_of(&with(&[
            ("authorization", "Bearer rk_b:other"),
            ("auth-key-id", "rk_a"),
            ("auth-key", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(c.key_id(), "rk_b");
    }

    #[test]
    fn incomplete_or_malformed_pairs_are_refused_without_echo() {
        for pairs in [
            &[("auth-key-id", "rk_a")][..],
            &[("auth-key", "s3cr3t")],
            &[("auth-key-id", "rk_a"), ("auth-key", "s3:cr3t")],
            &[("auth-key-id", "rk:a"), ("auth-key", "s3cr3t")],
            &[("auth-key-id", ""), ("auth-key", "s3cr3t")],
            &[("auth-key-id", "rk_a"), ("auth-key", "")],
        ] {
            let s = credential_of(&with(pairs)).unwrap_err();
            assert_eq!(s.code(), tonic::Code::Unauthenticated);
            assert!(!s.message().contains("s3"), "{}", s.message());
        }
        let s = credential_of(&with(&[])).unwrap_err();
        assert!(s.message().contains("auth-key-id"), "{}", s.message());
    }
}
