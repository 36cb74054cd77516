//! The gRPC server: one file per service, the shared [`State`], authentication and the one
//! place where internal errors become `tonic::Status`.
//!
//! [`serve`] takes its listener(s) and a shutdown future, so tests run the real server
//! in-process on port 0. Statuses never carry a value, a credential or a `{:?}` of an internal
//! error; internal details go to the log (which never holds values either).

mod audit;
mod environments;
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
use crate::proto::v1;
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
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the `authorization: Bearer KEY_ID:KEY_SECRET` of a request as a key.
    pub async fn authenticate<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let cred = credential_of(req)?;
        self.authenticate_credential(&cred).await
    }
}

/// The credential of `authorization: Bearer ID:SECRET` (a key or a runner token).
pub fn credential_of<T>(req: &Request<T>) -> Result<Credential, Status> {
    {
        let header = req.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated(
                "missing key: send the metadata `authorization: Bearer KEY_ID:KEY_SECRET`",
            )
        })?;
        let malformed = || {
            Status::unauthenticated("malformed authorization: expected `Bearer KEY_ID:KEY_SECRET`")
        };
        let value = header.to_str().map_err(|_| malformed())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(malformed)?;
        Credential::parse(token).map_err(|_| malformed())
    }
}

impl State {
    pub async fn authenticate_credential(&self, cred: &Credential) -> Result<Principal, Status> {
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
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        key_id: p.key_id.clone(),
        action,
        environment: environment.map(str::to_string),
        names,
    }
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
        StoreError::Database(_) | StoreError::Migrate(_) | StoreError::Corrupt(_)
    ) {
        crate::metrics::METRICS.store_errors.inc();
    }
    match e {
        StoreError::EnvironmentNotFound(_)
        | StoreError::SecretNotFound { .. }
        | StoreError::KeyNotFound(_)
        | StoreError::RunnerTokenNotFound(_) => Status::not_found(e.to_string()),
        StoreError::EnvironmentExists(_) => Status::already_exists(e.to_string()),
        StoreError::EnvironmentNotEmpty { .. } | StoreError::MainEnvironment => {
            Status::failed_precondition(e.to_string())
        }
        StoreError::TooManySecrets { .. } | StoreError::EnvironmentTooLarge { .. } => {
            Status::resource_exhausted(e.to_string())
        }
        e if e.is_unavailable() => {
            tracing::error!(error = %e, "store unavailable");
            Status::unavailable("the secret store is unavailable; retry shortly")
        }
        StoreError::AlreadyInitialized
        | StoreError::Corrupt(_)
        | StoreError::Database(_)
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

/// Every service of runseald, plus health and reflection.
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
            audit::AuditService::new(state),
        ));
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
