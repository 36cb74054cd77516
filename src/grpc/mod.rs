//! The gRPC front-end: the runseal API (`runseal.v1`, [`runseal`]) and the fal API
//! ([`fal`]), each a thin layer over [`crate::service`]: decode a request, call the service,
//! encode the answer. The one mapping of [`ServiceError`] to `tonic::Status` is here.
//!
//! [`serve`] takes its listener(s) and a shutdown future, so tests run the real server
//! in-process on port 0; `conn` holds the connections (caps, deadlines, the accept loop) and
//! [`AuthService`] checks every credential from the request headers (through the service)
//! before tonic reads a byte of the body. Statuses never carry a value, a credential or a
//! `{:?}` of an internal error; internal details go to the log (which never holds values
//! either).

mod conn;
mod fal;
mod runseal;

pub use crate::service::MAX_NAME_LIST;
pub use conn::{NetLimits, ACCEPT_BACKOFF};

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::net::{TcpListener, UnixListener};
use tonic::service::Routes;
use tonic::{Request, Status};

use crate::auth::{Credential, Principal};
use crate::names::Limits;
use crate::proto::{controller, v1};
use crate::service::{Service, ServiceError};
use crate::store::RunnerTokenRow;
use crate::tls::TlsAcceptor;

/// The one mapping of domain errors to statuses (the fal front-end rewords some first).
impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        use tonic::Code;
        let code = match &e {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::EnvironmentNotFound(_) | ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::AlreadyExists(_) => Code::AlreadyExists,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
            ServiceError::DataLoss(_) => Code::DataLoss,
            ServiceError::Unavailable => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

/// What the auth layer established from a request's headers before its body was read, handed
/// to the handler in the request's extensions so that nothing is looked up twice.
#[derive(Debug, Clone)]
pub enum Verified {
    /// A key that exists, is not revoked and whose secret matches: scopes still to be checked.
    Key(Principal),
    /// A runner token whose id exists and whose secret matches (not redeemed: revocation,
    /// expiry, uses and purpose are the handler's to check).
    RunnerToken(Box<RunnerTokenRow>),
}

impl Verified {
    /// The runner token row verified for `cred`, if that is what this is.
    pub fn into_token_for(self, cred: &Credential) -> Option<RunnerTokenRow> {
        match self {
            Verified::RunnerToken(row) if row.id == cred.key_id() => Some(*row),
            _ => None,
        }
    }
}

/// Takes what the auth layer verified out of a request (see [`Verified`]).
pub fn verified<T>(req: &mut Request<T>) -> Option<Verified> {
    req.extensions_mut().remove::<Verified>()
}

/// The credential of a request (a key or a runner token), see [`credential_from_headers`].
pub fn credential_of<T>(req: &Request<T>) -> Result<Credential, Status> {
    credential_from_headers(req.metadata().as_ref())
}

/// The credential in request headers: `authorization: Bearer ID:SECRET`, or the metadata pair
/// `auth-key-id: ID` / `auth-key: SECRET` that the fal CLI and SDK send for
/// `FAL_KEY=ID:SECRET`. Two `authorization` headers, two halves of the same name, or an
/// `authorization` and a pair that name different credentials are refused as ambiguous (a pair
/// that repeats the `authorization` credential exactly is accepted). Errors never echo what was
/// sent.
pub fn credential_from_headers(headers: &http::HeaderMap) -> Result<Credential, Status> {
    let ambiguous = |what: &str| {
        Status::unauthenticated(format!(
            "ambiguous credentials: {what}; send one key, as `authorization: Bearer KEY_ID:KEY_SECRET` \
             or as the pair `auth-key-id` / `auth-key`"
        ))
    };
    let one = |name: &'static str| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (_, Some(_)) => Err(ambiguous(&format!("more than one `{name}` header"))),
            (v, None) => Ok(v),
        }
    };
    let bearer = match one("authorization")? {
        Some(header) => {
            let malformed = || {
                Status::unauthenticated(
                    "malformed authorization: expected `Bearer KEY_ID:KEY_SECRET`",
                )
            };
            let value = header.to_str().map_err(|_| malformed())?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(malformed)?;
            Some(Credential::parse(token).map_err(|_| malformed())?)
        }
        None => None,
    };
    let pair = match (one("auth-key-id")?, one("auth-key")?) {
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
            Some(Credential::parse(&line).map_err(|_| malformed())?)
        }
        (None, None) => None,
        _ => {
            return Err(Status::unauthenticated(
                "incomplete key: send both `auth-key-id` and `auth-key`",
            ))
        }
    };
    match (bearer, pair) {
        (Some(b), Some(p)) => {
            let same = b.key_id() == p.key_id()
                && bool::from(
                    b.expose_secret()
                        .as_bytes()
                        .ct_eq(p.expose_secret().as_bytes()),
                );
            if same {
                Ok(b)
            } else {
                Err(ambiguous(
                    "`authorization` and `auth-key-id`/`auth-key` hold different credentials",
                ))
            }
        }
        (Some(c), None) | (None, Some(c)) => Ok(c),
        (None, None) => Err(Status::unauthenticated(
            "missing key: send the metadata `authorization: Bearer KEY_ID:KEY_SECRET` \
             (or the pair `auth-key-id` / `auth-key`, as the fal client does for FAL_KEY)",
        )),
    }
}

/// The principal of a request's key: the one the auth layer verified from its headers, or
/// (for a request that did not pass the layer) checked now.
async fn principal(
    service: &Service,
    cred: &Credential,
    verified: Option<Verified>,
) -> Result<Principal, Status> {
    match verified {
        Some(Verified::Key(p)) if p.key_id == cred.key_id() => Ok(p),
        _ => Ok(service.authenticate(cred).await?),
    }
}

/// The caller's key and the message of a request, `decode`d before the key is checked so
/// that no early return leaves plaintext of the message behind (see `SetSecrets`).
async fn keyed<T, U>(
    service: &Service,
    mut request: Request<T>,
    decode: impl FnOnce(T) -> U,
) -> Result<(Principal, U), Status> {
    let cred = credential_of(&request);
    let verified = verified(&mut request);
    let message = decode(request.into_inner());
    Ok((principal(service, &cred?, verified).await?, message))
}

/// Writes the impl of a tonic service trait for a front-end whose RPCs take the caller's key.
/// Each `rpc(Request) -> Response = |service, principal, message| { … };` checks the key
/// (`self.keyed`), runs the block (decode, call the service, encode; its `?` takes a
/// `ServiceError`) and maps the error with `self.status`. In a `refuse` block, each line
/// `(Request) -> Response = why: [rpc, …];` answers each listed RPC with
/// `Err(why("RpcName"))`. RPCs that need more of the request are written out in an `also`
/// block.
macro_rules! keyed_rpcs {
    (
        $api:ty: $trait:path {
            $( $rpc:ident($req:ty) -> $resp:ty = |$s:ident, $p:ident, $m:pat_param| $body:block; )*
        }
        $( refuse { $( ($nreq:ty) -> $nresp:ty = $why:ident: [$($no:ident),* $(,)?]; )* } )?
        $( also { $($raw:tt)* } )?
    ) => {
        #[tonic::async_trait]
        impl $trait for $api {
            $(
                async fn $rpc(
                    &self,
                    request: tonic::Request<$req>,
                ) -> ::std::result::Result<tonic::Response<$resp>, tonic::Status> {
                    let ($p, $m) = self.keyed(request).await?;
                    let $s: &$crate::service::Service = &self.service;
                    let answer: ::std::result::Result<$resp, $crate::service::ServiceError> =
                        async { $body }.await;
                    answer.map(tonic::Response::new).map_err(|e| self.status(e))
                }
            )*
            $($($(
                async fn $no(
                    &self,
                    _: tonic::Request<$nreq>,
                ) -> ::std::result::Result<tonic::Response<$nresp>, tonic::Status> {
                    Err($why(&$crate::grpc::rpc_name(stringify!($no))))
                }
            )*)*)?
            $($($raw)*)?
        }
    };
}
pub(crate) use keyed_rpcs;

/// The proto name of an RPC from its method's name: `list_alias_runners` → `ListAliasRunners`.
pub(crate) fn rpc_name(method: &str) -> String {
    method
        .split('_')
        .flat_map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase())
                .into_iter()
                .chain(c)
        })
        .collect()
}

pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// The largest request body runseald decodes from an authenticated caller, derived from the
/// configured limits: the largest legitimate request is a `SetSecrets` that fills an
/// environment (every secret with a name of the longest length, values up to the
/// environment's size), or a list of names (`GetBuildSecrets.names`, an allow-list) of
/// [`MAX_NAME_LIST`] longest names, whichever is larger. Protobuf framing is counted at its
/// largest: a field tag is 1 byte here, a length up to 5 bytes (a 32-bit varint).
pub fn max_request_bytes(limits: &Limits) -> usize {
    const TAG_AND_LEN: usize = 1 + 5;
    /// `environment`: tag, a 1-byte length and a 63-byte name.
    const ENVIRONMENT: usize = 1 + 1 + 63;
    /// `optional bool exposed_by_default`.
    const FLAG: usize = 2;
    let name = MAX_SECRET_NAME_LEN;
    // One `SecretValue` inside `secrets`: its own tag and length, the name's and the value's.
    let entry = TAG_AND_LEN + (1 + 2 + name) + TAG_AND_LEN;
    let values = limits.max_environment_bytes.min(
        limits
            .max_secrets_per_environment
            .saturating_mul(limits.max_value_bytes),
    );
    let set_secrets =
        ENVIRONMENT + FLAG + limits.max_secrets_per_environment.saturating_mul(entry) + values;
    // Plus a runner id, a retry key and the other small fields of `GetSnapshot`.
    let name_list = ENVIRONMENT + FLAG + MAX_NAME_LIST * (1 + 2 + name) + 256;
    set_secrets.max(name_list)
}

/// The longest secret name `names::is_valid_secret_name` accepts (a unit test holds them equal).
const MAX_SECRET_NAME_LEN: usize = 256;

/// Health and reflection answer without a key; their requests are a service or symbol name.
const OPEN_SERVICE_MAX_REQUEST_BYTES: usize = 16 * 1024;

/// RPC paths served without a key: health and reflection.
const OPEN_PATHS: [&str; 2] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
];

fn is_open_path(path: &str) -> bool {
    OPEN_PATHS.iter().any(|p| path.starts_with(p))
}

/// The RPCs a runner token authenticates (verified by the auth layer, redeemed by the handler).
const RUNNER_TOKEN_PATHS: [&str; 2] = [
    "/runseal.v1.Runners/GetSnapshot",
    "/runseal.v1.Runners/GetBuildSecrets",
];

const FAL_PREFIX: &str = "/controller.IsolateController/";

/// Every service of runseald (runseal.v1 and the fal `controller` subset, each bounded by
/// [`max_request_bytes`]), plus health and reflection (bounded to small requests), and the
/// service the auth layer checks credentials with.
#[derive(Clone)]
pub struct App {
    routes: Routes,
    service: Arc<Service>,
}

pub async fn routes(service: Arc<Service>) -> App {
    let cap = max_request_bytes(&service.limits);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::secrets_server::SecretsServer<runseal::RunsealApi>>()
        .await;
    // The descriptor sets are compiled into the binary (proto/compile.rs, tonic-health): they
    // cannot be malformed at run time, and every start builds this.
    #[allow(clippy::expect_used)]
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let api = runseal::RunsealApi::new(service.clone());
    let mut builder = Routes::builder();
    builder
        .add_service(health_service.max_decoding_message_size(OPEN_SERVICE_MAX_REQUEST_BYTES))
        .add_service(reflection.max_decoding_message_size(OPEN_SERVICE_MAX_REQUEST_BYTES))
        .add_service(
            v1::secrets_server::SecretsServer::new(api.clone()).max_decoding_message_size(cap),
        )
        .add_service(
            v1::environments_server::EnvironmentsServer::new(api.clone())
                .max_decoding_message_size(cap),
        )
        .add_service(v1::keys_server::KeysServer::new(api.clone()).max_decoding_message_size(cap))
        .add_service(
            v1::runners_server::RunnersServer::new(api.clone()).max_decoding_message_size(cap),
        )
        .add_service(v1::audit_server::AuditServer::new(api.clone()).max_decoding_message_size(cap))
        .add_service(v1::lifecycle_server::LifecycleServer::new(api).max_decoding_message_size(cap))
        .add_service(
            controller::isolate_controller_server::IsolateControllerServer::new(fal::FalApi::new(
                service.clone(),
            ))
            .max_decoding_message_size(cap),
        );
    App {
        routes: builder.routes(),
        service,
    }
}

/// Checks the credential in a request's headers before any of its body is read: a request
/// without a valid one is answered from its headers, so it costs no body buffer. What was
/// verified goes to the handler in the request's extensions ([`Verified`]); scopes stay the
/// handler's to check.
#[derive(Clone)]
pub struct AuthService {
    app: App,
    conn: Option<Arc<conn::ConnState>>,
}

impl AuthService {
    pub(crate) fn new(app: App, conn: Option<Arc<conn::ConnState>>) -> Self {
        Self { app, conn }
    }
}

/// What the auth layer decides from a request's path and headers.
async fn authorize(
    service: &Service,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Verified>, Status> {
    if is_open_path(path) {
        return Ok(None);
    }
    let cred = credential_from_headers(headers)?;
    if cred.is_runner_token() && RUNNER_TOKEN_PATHS.contains(&path) {
        let row = service.verify_runner_token(&cred).await?;
        return Ok(Some(Verified::RunnerToken(Box::new(row))));
    }
    let principal = service.authenticate(&cred).await?;
    Ok(Some(Verified::Key(principal)))
}

impl<B> tower::Service<http::Request<B>> for AuthService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<B>>::poll_ready(&mut self.app.routes, cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is not ready; the one polled ready serves this call (tower's rule).
        let clone = self.app.routes.clone();
        let mut routes = std::mem::replace(&mut self.app.routes, clone);
        let service = self.app.service.clone();
        let conn = self.conn.clone();
        Box::pin(async move {
            let path = req.uri().path();
            match authorize(&service, path, req.headers()).await {
                Ok(Some(verified)) => {
                    if let Some(conn) = &conn {
                        conn.mark_authenticated();
                    }
                    req.extensions_mut().insert(verified);
                }
                Ok(None) => {}
                Err(status) => {
                    let status = if path.starts_with(FAL_PREFIX)
                        && status.code() == tonic::Code::Unauthenticated
                    {
                        fal::with_fal_hint(status)
                    } else {
                        status
                    };
                    // `req` (and with it the body, unread) is dropped here.
                    return Ok(status.into_http());
                }
            }
            let res = tower::Service::call(&mut routes, req).await?;
            Ok(decode_errors_in_callers_terms(res))
        })
    }
}

/// tonic answers a request body that is not a valid protobuf message with INTERNAL, and one
/// over the decode cap with OUT_OF_RANGE; both are the caller's doing, so runseald says
/// INVALID_ARGUMENT and RESOURCE_EXHAUSTED (messages name the field or the sizes, never data).
fn decode_errors_in_callers_terms(
    res: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    const PROST: &str = "failed to decode Protobuf message";
    const TOO_LARGE: &str = "Error, decoded message length too large:";
    match res.headers().get("grpc-status").map(|v| v.as_bytes()) {
        Some(b"13") | Some(b"11") => {}
        _ => return res,
    }
    match Status::from_header_map(res.headers()) {
        Some(s) if s.code() == tonic::Code::Internal && s.message().starts_with(PROST) => {
            let detail = s.message()[PROST.len()..].trim_start_matches(':').trim();
            Status::invalid_argument(format!(
                "the request is not a valid message of this RPC ({detail})"
            ))
            .into_http()
        }
        Some(s) if s.code() == tonic::Code::OutOfRange && s.message().starts_with(TOO_LARGE) => {
            let detail = s.message()[TOO_LARGE.len()..].trim();
            Status::resource_exhausted(format!(
                "request too large ({detail}): the limit is the largest SetSecrets the \
                 configured [limits] allow"
            ))
            .into_http()
        }
        _ => res,
    }
}

/// Where runseald accepts connections.
pub enum Listener {
    Tcp(TcpListener),
    Tls(TcpListener, TlsAcceptor),
    Unix(UnixListener),
}

/// Serves `app` on every listener with the default [`NetLimits`] until `shutdown` completes,
/// then stops accepting and lets in-flight calls finish.
pub async fn serve(
    app: App,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(app, listeners, NetLimits::default(), shutdown).await
}

/// [`serve`] with these connection limits.
pub async fn serve_with(
    app: App,
    listeners: Vec<Listener>,
    limits: NetLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    conn::serve(app, listeners, limits, rx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request with these metadata entries, in order (a name may repeat).
    fn appended(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut r = Request::new(());
        for (k, v) in pairs {
            r.metadata_mut().append(*k, v.parse().unwrap());
        }
        r
    }

    #[test]
    fn rpc_names_are_the_proto_names() {
        assert_eq!(rpc_name("list_alias_runners"), "ListAliasRunners");
        assert_eq!(rpc_name("run"), "Run");
    }

    #[test]
    fn the_fal_pair_is_a_credential_and_may_repeat_authorization() {
        let c = credential_of(&appended(&[
            ("auth-key-id", "rk_a"),
            ("auth-key", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!((c.key_id(), c.expose_secret()), ("rk_a", "s3cr3t"));
        let c = credential_of(&appended(&[
            ("authorization", "Bearer rk_a:s3cr3t"),
            ("auth-key-id", "rk_a"),
            ("auth-key", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!((c.key_id(), c.expose_secret()), ("rk_a", "s3cr3t"));
    }

    #[test]
    fn disagreeing_or_repeated_credentials_are_ambiguous() {
        for pairs in [
            // authorization and a pair naming another key: no "first one wins".
            &[
                ("authorization", "Bearer rk_b:other"),
                ("auth-key-id", "rk_a"),
                ("auth-key", "s3cr3t"),
            ][..],
            // Same id, different secret.
            &[
                ("authorization", "Bearer rk_a:other"),
                ("auth-key-id", "rk_a"),
                ("auth-key", "s3cr3t"),
            ],
            // Two authorization headers, even equal ones.
            &[
                ("authorization", "Bearer rk_a:s3cr3t"),
                ("authorization", "Bearer rk_b:other"),
            ],
            &[
                ("authorization", "Bearer rk_a:s3cr3t"),
                ("authorization", "Bearer rk_a:s3cr3t"),
            ],
            // Two halves of the same name.
            &[
                ("auth-key-id", "rk_a"),
                ("auth-key-id", "rk_b"),
                ("auth-key", "s3cr3t"),
            ],
            &[
                ("auth-key-id", "rk_a"),
                ("auth-key", "s3cr3t"),
                ("auth-key", "other"),
            ],
        ] {
            let s = credential_of(&appended(pairs)).unwrap_err();
            assert_eq!(s.code(), tonic::Code::Unauthenticated, "{pairs:?}");
            assert!(s.message().contains("ambiguous"), "{}", s.message());
            assert!(
                !s.message().contains("s3cr3t") && !s.message().contains("other"),
                "{}",
                s.message()
            );
        }
    }

    #[test]
    fn the_decode_cap_fits_the_largest_set_secrets_and_little_more() {
        use prost::Message;
        assert!(crate::names::is_valid_secret_name(
            &"N".repeat(MAX_SECRET_NAME_LEN)
        ));
        assert!(!crate::names::is_valid_secret_name(
            &"N".repeat(MAX_SECRET_NAME_LEN + 1)
        ));
        let largest = |limits: &Limits| {
            let count = limits.max_secrets_per_environment;
            // The values fill the environment, spread evenly (each within max_value_bytes).
            let len = limits
                .max_value_bytes
                .min(limits.max_environment_bytes / count);
            let secrets = (0..count)
                .map(|i| {
                    let mut name = format!("S{i}");
                    name.extend(std::iter::repeat_n('X', MAX_SECRET_NAME_LEN - name.len()));
                    v1::SecretValue {
                        name,
                        value: vec![b'v'; len],
                    }
                })
                .collect();
            v1::SetSecretsRequest {
                environment: "e".repeat(63),
                secrets,
                exposed_by_default: Some(false),
            }
            .encoded_len()
        };
        for limits in [
            Limits::default(),
            Limits {
                max_value_bytes: 64 * 1024,
                max_environment_bytes: 10 * 1024 * 1024,
                max_secrets_per_environment: 100,
                ..Limits::default()
            },
            Limits {
                max_value_bytes: 300 * 1024,
                max_environment_bytes: 1024 * 1024,
                max_secrets_per_environment: 2,
                ..Limits::default()
            },
        ] {
            let cap = max_request_bytes(&limits);
            let biggest = largest(&limits);
            assert!(biggest <= cap, "{limits:?}: {biggest} > {cap}");
            // Only framing slack (at most 8 bytes an entry) and the rounding of the spread,
            // or the name-list bound.
            let slack = 8 * limits.max_secrets_per_environment + 1024;
            let names = MAX_NAME_LIST * (MAX_SECRET_NAME_LEN + 3);
            assert!(
                cap <= (biggest + slack).max(names + 512),
                "{limits:?}: {cap} for {biggest}"
            );
        }
        // A list of MAX_NAME_LIST longest names always fits.
        let tiny = Limits {
            max_value_bytes: 1,
            max_environment_bytes: 1,
            max_secrets_per_environment: 1,
            ..Limits::default()
        };
        let names = v1::GetBuildSecretsRequest {
            environment: "e".repeat(63),
            names: (0..MAX_NAME_LIST)
                .map(|i| format!("{i:0>width$}", width = MAX_SECRET_NAME_LEN).replace('0', "N"))
                .collect(),
        }
        .encoded_len();
        assert!(names <= max_request_bytes(&tiny), "{names}");
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
            let s = credential_of(&appended(pairs)).unwrap_err();
            assert_eq!(s.code(), tonic::Code::Unauthenticated);
            assert!(!s.message().contains("s3"), "{}", s.message());
        }
        let s = credential_of(&appended(&[])).unwrap_err();
        assert!(s.message().contains("auth-key-id"), "{}", s.message());
    }
}
