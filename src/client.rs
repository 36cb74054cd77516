//! `runseal::client`: the Rust SDK the CLI is built on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runseal::client::ClientError> {
//! use runseal::auth::Credential;
//! use runseal::client::Client;
//! let key = Credential::parse("rk_…:…").expect("a key");
//! let client = Client::connect("http://127.0.0.1:7443", key).await?;
//! client.secrets().set("HF_TOKEN", b"hf_xxx".to_vec(), "staging").await?;
//! for s in client.secrets().list("staging").await? {
//!     println!("{} {}", s.name, s.environment);
//! }
//! # Ok(()) }
//! ```
//!
//! Addresses: `http://HOST:PORT`, `https://HOST:PORT` (TLS, with `ca_cert` or the system
//! roots), `unix:/path/to/socket`. The key travels as `authorization: Bearer KEY_ID:KEY_SECRET`,
//! marked sensitive so HTTP/2 never indexes it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::auth::Credential;
use crate::proto::v1;
use crate::secret::SecretBytes;

pub use crate::proto::v1::{
    AuditEntry, DiffEnvironmentsResponse as Diff, Environment, EnvironmentChange, KeyInfo, Runner,
    RunnerTokenInfo, SecretInfo, SecretVersionInfo,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "invalid address {0:?}: use http://HOST:PORT, https://HOST:PORT or unix:/path/to/socket"
    )]
    InvalidAddress(String),
    #[error("cannot reach runseald at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    #[error("{}", describe(.0))]
    Status(#[from] Status),
    #[error("the server sent a malformed answer: {0}")]
    Protocol(&'static str),
}

impl ClientError {
    /// The gRPC code, when the server answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// A status as a user reads it: what kind of failure, then the server's message.
fn describe(s: &Status) -> String {
    use tonic::Code::*;
    let kind = match s.code() {
        Unauthenticated => "key refused",
        PermissionDenied => "permission denied",
        InvalidArgument => "invalid request",
        NotFound => "not found",
        AlreadyExists => "already exists",
        FailedPrecondition => "refused",
        ResourceExhausted => "limit exceeded",
        Unavailable => "server unavailable",
        DataLoss => "stored data failed its integrity check",
        DeadlineExceeded => "timed out",
        _ => "server error",
    };
    if s.message().is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", s.message())
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    pub addr: String,
    pub key: Credential,
    /// PEM CA bundle to verify the server with (else the system roots).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for servers that require client certificates.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("addr", &self.addr)
            .field("key", &self.key)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

impl ConnectOptions {
    pub fn new(addr: impl Into<String>, key: Credential) -> Self {
        Self {
            addr: addr.into(),
            key,
            ca_cert: None,
            client_identity: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
struct Auth(MetadataValue<Ascii>);

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Auth>;

/// A connection to runseald, authenticated with one key. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    auth: Auth,
    addr: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

/// Opens a channel to `addr` (no authentication involved).
pub async fn connect_channel(
    addr: &str,
    ca_cert: Option<&PathBuf>,
    client_identity: Option<&(PathBuf, PathBuf)>,
    timeout: Duration,
) -> Result<Channel, ClientError> {
    let connect_err = |e: tonic::transport::Error| {
        let reason = error_chain(&e);
        ClientError::Connect {
            addr: addr.to_string(),
            reason: match connect_hint(&reason) {
                Some(hint) => format!("{reason} ({hint})"),
                None => reason,
            },
        }
    };
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path.trim_start_matches("//"));
        if path.as_os_str().is_empty() {
            return Err(ClientError::InvalidAddress(addr.to_string()));
        }
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(timeout);
        return endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(connect_err);
    }
    let (tls, url) = if addr.starts_with("https://") {
        (true, addr.to_string())
    } else if addr.starts_with("http://") {
        (false, addr.to_string())
    } else if !addr.contains("://") && !addr.is_empty() {
        (false, format!("http://{addr}"))
    } else {
        return Err(ClientError::InvalidAddress(addr.to_string()));
    };
    let mut endpoint = Endpoint::from_shared(url)
        .map_err(|_| ClientError::InvalidAddress(addr.to_string()))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    if tls {
        let mut config = ClientTlsConfig::new();
        config = match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ClientError::Tls(format!(
                        "cannot read CA certificate {}: {e}",
                        path.display()
                    ))
                })?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = client_identity {
            let read = |p: &PathBuf| {
                std::fs::read(p)
                    .map_err(|e| ClientError::Tls(format!("cannot read {}: {e}", p.display())))
            };
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| ClientError::Tls(error_chain(&e)))?;
    }
    endpoint.connect().await.map_err(connect_err)
}

/// The likely cause of a failed connection, from the TLS or transport error.
pub fn connect_hint(reason: &str) -> Option<&'static str> {
    if reason.contains("CaUsedAsEndEntity") {
        Some("the server presents a CA certificate as its own: runseald's --tls-cert must be a server certificate signed by that CA, not the CA certificate itself")
    } else if reason.contains("InvalidContentType") || reason.contains("corrupt message") {
        Some("the server does not speak TLS on this port: use http:// if runseald serves plaintext there, else this port is not runseald")
    } else if reason.contains("UnknownIssuer") {
        Some("the server's certificate is not signed by the CA given: pass the CA that signed it with --ca-cert / RUNSEAL_CA_CERT")
    } else if reason.contains("Connection refused") {
        Some("nothing listens there: is runseald running, and on this address?")
    } else {
        None
    }
}

/// Whether a call failed because the other side does not speak gRPC over HTTP/2 as expected.
pub fn is_protocol_mismatch(message: &str) -> bool {
    message.contains("h2 protocol error")
        || message.contains("transport error")
        || message.contains("connection closed before message completed")
        || message.contains("frame with invalid size")
        || message.contains("invalid HTTP version")
}

/// What answers at a plaintext `http://` address that did not speak HTTP/2: sends the HTTP/2
/// preface and looks at the first bytes back (a TLS record, an HTTP/1 status line, or nothing).
pub async fn diagnose_plaintext(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = addr.trim_start_matches("http://").trim_end_matches('/');
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await.ok()?;
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].to_vec())
    };
    let got = tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    match got.first() {
        Some(0x15) | Some(0x16) => {
            "it speaks TLS: use https:// (and --ca-cert if its CA is private)".into()
        }
        _ if got.starts_with(b"HTTP/") => {
            "an HTTP/1 server answers there, not runseald: check the port".into()
        }
        _ => "the server there does not speak gRPC: check that the port is runseald's".into(),
    }
}

/// An error and its sources on one line (tonic's transport errors hide the cause otherwise).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_str = s.to_string();
        if !parts.iter().any(|p| p.contains(&s_str)) {
            parts.push(s_str);
        }
        cur = s.source();
    }
    parts.retain(|p| p != "transport error");
    if parts.is_empty() {
        "transport error".into()
    } else {
        parts.join(": ")
    }
}

impl Client {
    pub async fn connect(addr: &str, key: Credential) -> Result<Self, ClientError> {
        Self::connect_with(ConnectOptions::new(addr, key)).await
    }

    pub async fn connect_with(opts: ConnectOptions) -> Result<Self, ClientError> {
        let channel = connect_channel(
            &opts.addr,
            opts.ca_cert.as_ref(),
            opts.client_identity.as_ref(),
            opts.connect_timeout,
        )
        .await?;
        Ok(Self::from_channel(channel, &opts.key, &opts.addr))
    }

    /// Wraps an existing channel (e.g. one shared by several keys).
    pub fn from_channel(channel: Channel, key: &Credential, addr: &str) -> Self {
        // A parsed credential is `Bearer ID:SECRET` in printable ASCII (crate::auth checks it).
        #[allow(clippy::expect_used)]
        let mut value: MetadataValue<Ascii> = key
            .bearer()
            .parse()
            .expect("a parsed credential is printable ASCII");
        value.set_sensitive(true);
        Self {
            channel,
            auth: Auth(value),
            addr: addr.to_string(),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    pub fn secrets(&self) -> SecretsApi {
        SecretsApi(v1::secrets_client::SecretsClient::new(self.svc()))
    }

    pub fn environments(&self) -> EnvironmentsApi {
        EnvironmentsApi(v1::environments_client::EnvironmentsClient::new(self.svc()))
    }

    pub fn keys(&self) -> KeysApi {
        KeysApi(v1::keys_client::KeysClient::new(self.svc()))
    }

    pub fn runners(&self) -> RunnersApi {
        RunnersApi(v1::runners_client::RunnersClient::new(self.svc()))
    }

    pub fn audit(&self) -> AuditApi {
        AuditApi(v1::audit_client::AuditClient::new(self.svc()))
    }

    pub fn lifecycle(&self) -> LifecycleApi {
        LifecycleApi(v1::lifecycle_client::LifecycleClient::new(self.svc()))
    }
}

pub struct SecretsApi(v1::secrets_client::SecretsClient<Svc>);

impl SecretsApi {
    /// Sets one secret; returns the environment's new revision.
    pub async fn set(
        &mut self,
        name: &str,
        value: impl Into<SecretBytes>,
        environment: &str,
    ) -> Result<u64, ClientError> {
        self.set_many(environment, vec![(name.to_string(), value.into())])
            .await
    }

    /// Sets several secrets atomically: all or none.
    pub async fn set_many(
        &mut self,
        environment: &str,
        secrets: Vec<(String, SecretBytes)>,
    ) -> Result<u64, ClientError> {
        self.set_many_with(environment, secrets, None).await
    }

    /// Like [`SecretsApi::set_many`], also setting whether these secrets go to runners without
    /// an allow-list (`None`: new secrets follow the server default, existing ones keep theirs).
    pub async fn set_many_with(
        &mut self,
        environment: &str,
        secrets: Vec<(String, SecretBytes)>,
        exposed_by_default: Option<bool>,
    ) -> Result<u64, ClientError> {
        let secrets = secrets
            .into_iter()
            .map(|(name, value)| v1::SecretValue {
                name,
                value: value.expose().to_vec(),
            })
            .collect();
        let res = self
            .0
            .set_secrets(v1::SetSecretsRequest {
                environment: environment.to_string(),
                secrets,
                exposed_by_default,
            })
            .await?;
        Ok(res.into_inner().revision)
    }

    pub async fn unset(&mut self, name: &str, environment: &str) -> Result<u64, ClientError> {
        let res = self
            .0
            .unset_secret(v1::UnsetSecretRequest {
                environment: environment.to_string(),
                name: name.to_string(),
                names: Vec::new(),
            })
            .await?;
        Ok(res.into_inner().revision)
    }

    /// Unsets several secrets in one change (one revision): a name that is not set fails the
    /// whole call with NOT_FOUND naming it, and nothing is unset.
    pub async fn unset_many(
        &mut self,
        environment: &str,
        names: &[String],
    ) -> Result<u64, ClientError> {
        let res = self
            .0
            .unset_secret(v1::UnsetSecretRequest {
                environment: environment.to_string(),
                name: String::new(),
                names: names.to_vec(),
            })
            .await?;
        Ok(res.into_inner().revision)
    }

    /// Sets whether one secret goes to runners without an allow-list, without its value
    /// (`None`: back to the server's default); returns the new revision.
    pub async fn set_exposure(
        &mut self,
        environment: &str,
        name: &str,
        exposed_by_default: Option<bool>,
    ) -> Result<u64, ClientError> {
        let res = self
            .0
            .set_exposure(v1::SetExposureRequest {
                environment: environment.to_string(),
                name: name.to_string(),
                exposed_by_default,
            })
            .await?;
        Ok(res.into_inner().revision)
    }

    /// Names and times of the environment's secrets (never values).
    pub async fn list(&mut self, environment: &str) -> Result<Vec<SecretInfo>, ClientError> {
        let res = self
            .0
            .list_secrets(v1::ListSecretsRequest {
                environment: environment.to_string(),
            })
            .await?;
        Ok(res.into_inner().secrets)
    }
}

pub struct EnvironmentsApi(v1::environments_client::EnvironmentsClient<Svc>);

impl EnvironmentsApi {
    pub async fn list(&mut self) -> Result<Vec<Environment>, ClientError> {
        let res = self
            .0
            .list_environments(v1::ListEnvironmentsRequest {})
            .await?;
        Ok(res.into_inner().environments)
    }

    pub async fn create(&mut self, name: &str) -> Result<Environment, ClientError> {
        let res = self
            .0
            .create_environment(v1::CreateEnvironmentRequest {
                name: name.to_string(),
            })
            .await?;
        res.into_inner().environment.ok_or(ClientError::Protocol(
            "CreateEnvironment returned no environment",
        ))
    }

    /// Returns how many secrets were deleted with the environment.
    pub async fn delete(&mut self, name: &str, force: bool) -> Result<u32, ClientError> {
        let res = self
            .0
            .delete_environment(v1::DeleteEnvironmentRequest {
                name: name.to_string(),
                force,
            })
            .await?;
        Ok(res.into_inner().deleted_secrets)
    }
}

pub struct KeysApi(v1::keys_client::KeysClient<Svc>);

impl KeysApi {
    /// Creates a key; the returned credential is the only time its secret is visible.
    pub async fn create(
        &mut self,
        scopes: &[String],
        label: &str,
    ) -> Result<(KeyInfo, Credential), ClientError> {
        let res = self
            .0
            .create_key(v1::CreateKeyRequest {
                scopes: scopes.to_vec(),
                label: label.to_string(),
            })
            .await?
            .into_inner();
        // The message zeroizes on drop: take its fields (no copy) rather than move them out.
        let mut res = res;
        let credential = zeroize::Zeroizing::new(std::mem::take(&mut res.credential));
        let cred = Credential::parse(&credential)
            .map_err(|_| ClientError::Protocol("CreateKey returned a malformed key"))?;
        let info = res
            .key
            .take()
            .ok_or(ClientError::Protocol("CreateKey returned no key"))?;
        Ok((info, cred))
    }

    pub async fn list(&mut self) -> Result<Vec<KeyInfo>, ClientError> {
        Ok(self
            .0
            .list_keys(v1::ListKeysRequest {})
            .await?
            .into_inner()
            .keys)
    }

    /// The id, label and scopes of the key this client calls with (never its secret).
    pub async fn who_am_i(&mut self) -> Result<KeyInfo, ClientError> {
        self.0
            .who_am_i(v1::WhoAmIRequest {})
            .await?
            .into_inner()
            .key
            .take()
            .ok_or(ClientError::Protocol("WhoAmI returned no key"))
    }

    /// Revokes a key and the runner tokens it minted; returns how many tokens went with it.
    pub async fn revoke(&mut self, key_id: &str) -> Result<u64, ClientError> {
        Ok(self
            .0
            .revoke_key(v1::RevokeKeyRequest {
                key_id: key_id.to_string(),
            })
            .await?
            .into_inner()
            .runner_tokens_revoked)
    }
}

/// The most audit entries the server sends in one page.
pub const AUDIT_PAGE: u32 = 1000;

pub struct AuditApi(v1::audit_client::AuditClient<Svc>);

impl AuditApi {
    /// Newest first; `environment` empty means all; `limit` 0 means the server default (100).
    /// Asks page by page (the server sends at most [`AUDIT_PAGE`] entries per call), so any
    /// `limit` works.
    pub async fn list(
        &mut self,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ClientError> {
        let wanted = if limit == 0 { 100 } else { limit } as usize;
        let mut entries: Vec<AuditEntry> = Vec::new();
        while entries.len() < wanted {
            let page = (wanted - entries.len()).min(AUDIT_PAGE as usize) as u32;
            let before_id = entries.last().map_or(0, |e| e.id);
            let got = self
                .0
                .list_audit(v1::ListAuditRequest {
                    environment: environment.to_string(),
                    limit: page,
                    before_id,
                })
                .await?
                .into_inner()
                .entries;
            let done = got.len() < page as usize || got.is_empty();
            entries.extend(got);
            if done {
                break;
            }
        }
        Ok(entries)
    }
}

/// History, rollback and purge of a secret; diff and copy between environments; the change
/// feed. Nothing here returns a value.
pub struct LifecycleApi(v1::lifecycle_client::LifecycleClient<Svc>);

impl LifecycleApi {
    /// The kept versions of `name`, newest first.
    pub async fn history(
        &mut self,
        name: &str,
        environment: &str,
    ) -> Result<Vec<SecretVersionInfo>, ClientError> {
        let req = v1::SecretHistoryRequest {
            environment: environment.to_string(),
            name: name.to_string(),
        };
        Ok(self.0.secret_history(req).await?.into_inner().versions)
    }

    /// Makes `version` of `name` current again; the new revision.
    pub async fn rollback(
        &mut self,
        name: &str,
        version: u64,
        environment: &str,
    ) -> Result<u64, ClientError> {
        let req = v1::RollbackSecretRequest {
            environment: environment.to_string(),
            name: name.to_string(),
            version,
        };
        Ok(self.0.rollback_secret(req).await?.into_inner().revision)
    }

    /// Destroys one kept version, or (`None`) every version and the current value; the new
    /// revision when the current value went.
    pub async fn purge(
        &mut self,
        name: &str,
        version: Option<u64>,
        environment: &str,
    ) -> Result<Option<u64>, ClientError> {
        let req = v1::PurgeSecretRequest {
            environment: environment.to_string(),
            name: name.to_string(),
            version,
        };
        Ok(self.0.purge_secret(req).await?.into_inner().revision)
    }

    /// The names of `a` and `b` compared.
    pub async fn diff(&mut self, a: &str, b: &str) -> Result<Diff, ClientError> {
        let req = v1::DiffEnvironmentsRequest {
            a: a.to_string(),
            b: b.to_string(),
        };
        Ok(self.0.diff_environments(req).await?.into_inner())
    }

    /// Copies `names` from `from` to `to` on the server; `to`'s new revision.
    pub async fn copy(
        &mut self,
        names: &[String],
        from: &str,
        to: &str,
    ) -> Result<u64, ClientError> {
        let req = v1::CopySecretsRequest {
            from: from.to_string(),
            to: to.to_string(),
            names: names.to_vec(),
        };
        Ok(self.0.copy_secrets(req).await?.into_inner().revision)
    }

    /// The change feed of `environments` (name, resume revision; `None`: from now); empty:
    /// every environment the key may read, from now.
    pub async fn watch(
        &mut self,
        environments: Vec<(String, Option<u64>)>,
    ) -> Result<tonic::Streaming<EnvironmentChange>, ClientError> {
        let req = v1::WatchEnvironmentsRequest {
            environments: environments
                .into_iter()
                .map(|(environment, after_revision)| v1::WatchFrom {
                    environment,
                    after_revision,
                })
                .collect(),
        };
        Ok(self.0.watch_environments(req).await?.into_inner())
    }
}

/// Options of [`RunnersApi::issue`].
#[derive(Debug, Clone, Default)]
pub struct IssueOptions {
    /// Tokens to mint (one per runner); 0 means 1.
    pub count: u32,
    /// Lifetime; `None` means the server default (10 minutes).
    pub ttl: Option<Duration>,
    /// Snapshots per token; 0 means 1 (single-use).
    pub uses: u32,
    /// The allow-list the runners get (empty: none).
    pub only: Vec<String>,
    /// `run` (default) or `build`.
    pub purpose: String,
}

/// A minted runner token. `token` is `TOKEN_ID:TOKEN_SECRET`.
pub struct IssuedToken {
    pub token_id: String,
    pub token: Credential,
    pub expires_at: Option<prost_types::Timestamp>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .finish()
    }
}

/// The values a runner starts with. Every value is in a zeroizing buffer.
pub struct Snapshot {
    pub environment: String,
    pub revision: u64,
    pub runner_id: String,
    pub secrets: Vec<(String, SecretBytes)>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("environment", &self.environment)
            .field("revision", &self.revision)
            .field("runner_id", &self.runner_id)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl From<v1::GetSnapshotResponse> for Snapshot {
    /// Moves each value into a zeroizing buffer without copying it.
    fn from(mut res: v1::GetSnapshotResponse) -> Self {
        let secrets = res.secrets.drain(..).map(|mut s| s.take()).collect();
        Snapshot {
            environment: std::mem::take(&mut res.environment),
            revision: res.revision,
            runner_id: std::mem::take(&mut res.runner_id),
            secrets,
        }
    }
}

/// The values a build step fetched: exactly the names it asked for, each in a zeroizing buffer.
pub struct BuildSecrets {
    pub environment: String,
    pub revision: u64,
    pub secrets: Vec<(String, SecretBytes)>,
}

impl fmt::Debug for BuildSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSecrets")
            .field("environment", &self.environment)
            .field("revision", &self.revision)
            .field(
                "names",
                &self.secrets.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BuildSecrets {
    /// The value of `name`, if it was fetched.
    pub fn get(&self, name: &str) -> Option<&SecretBytes> {
        self.secrets.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl From<v1::GetBuildSecretsResponse> for BuildSecrets {
    /// Moves each value into a zeroizing buffer without copying it.
    fn from(mut res: v1::GetBuildSecretsResponse) -> Self {
        let secrets = res.secrets.drain(..).map(|mut s| s.take()).collect();
        BuildSecrets {
            environment: std::mem::take(&mut res.environment),
            revision: res.revision,
            secrets,
        }
    }
}

pub struct RunnersApi(v1::runners_client::RunnersClient<Svc>);

impl RunnersApi {
    /// Mints runner tokens for `environment` in one call.
    pub async fn issue(
        &mut self,
        environment: &str,
        opts: IssueOptions,
    ) -> Result<Vec<IssuedToken>, ClientError> {
        let res = self
            .0
            .issue_runner_tokens(v1::IssueRunnerTokensRequest {
                environment: environment.to_string(),
                count: opts.count,
                ttl_seconds: opts
                    .ttl
                    .map(|t| t.as_secs().clamp(1, u32::MAX as u64) as u32)
                    .unwrap_or(0),
                uses: opts.uses,
                only: opts.only,
                purpose: opts.purpose,
            })
            .await?
            .into_inner();
        res.tokens
            .into_iter()
            .map(|mut t| {
                let line = zeroize::Zeroizing::new(std::mem::take(&mut t.token));
                Ok(IssuedToken {
                    token: Credential::parse(&line).map_err(|_| {
                        ClientError::Protocol("IssueRunnerTokens returned a malformed token")
                    })?,
                    token_id: std::mem::take(&mut t.token_id),
                    expires_at: t.expires_at.take(),
                })
            })
            .collect()
    }

    pub async fn revoke(&mut self, token_id: &str) -> Result<(), ClientError> {
        self.0
            .revoke_runner_token(v1::RevokeRunnerTokenRequest {
                token_id: token_id.to_string(),
            })
            .await?;
        Ok(())
    }

    /// Revokes every active runner token of `environment`; returns how many.
    pub async fn revoke_all(&mut self, environment: &str) -> Result<u64, ClientError> {
        Ok(self
            .0
            .revoke_runner_tokens(v1::RevokeRunnerTokensRequest {
                environment: environment.to_string(),
                all: true,
            })
            .await?
            .into_inner()
            .revoked)
    }

    /// Active runner tokens (ids and metadata, never secrets), newest first; `environment`
    /// empty means every environment (admin).
    pub async fn list_tokens(
        &mut self,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<v1::RunnerTokenInfo>, ClientError> {
        Ok(self
            .0
            .list_runner_tokens(v1::ListRunnerTokensRequest {
                environment: environment.to_string(),
                limit,
            })
            .await?
            .into_inner()
            .tokens)
    }

    /// Fetches a snapshot with this client's credential (a runner token or a snapshot:ENV key).
    pub async fn snapshot(
        &mut self,
        environment: &str,
        runner_id: &str,
        only: &[String],
    ) -> Result<Snapshot, ClientError> {
        self.snapshot_with_retry_key(environment, runner_id, only, &[])
            .await
    }

    /// Like [`RunnersApi::snapshot`], with the retry key of this start: 16 to 64 random bytes,
    /// the same on every try. If a try's answer is lost after the single-use token was taken,
    /// the next try (same runner id, same key) is served again within 60 seconds.
    pub async fn snapshot_with_retry_key(
        &mut self,
        environment: &str,
        runner_id: &str,
        only: &[String],
        retry_key: &[u8],
    ) -> Result<Snapshot, ClientError> {
        let res = self
            .0
            .get_snapshot(v1::GetSnapshotRequest {
                environment: environment.to_string(),
                runner_id: runner_id.to_string(),
                only: only.to_vec(),
                retry_key: retry_key.to_vec(),
            })
            .await?;
        Ok(res.into_inner().into())
    }

    /// Fetches the named values for a build step with this client's credential (a runner token
    /// minted with purpose `build`, or a key with scope build:ENV). A single-use token is used
    /// up by the first successful call.
    pub async fn build_secrets(
        &mut self,
        environment: &str,
        names: &[String],
    ) -> Result<BuildSecrets, ClientError> {
        let res = self
            .0
            .get_build_secrets(v1::GetBuildSecretsRequest {
                environment: environment.to_string(),
                names: names.to_vec(),
            })
            .await?;
        Ok(res.into_inner().into())
    }

    /// Runner starts, newest first (`environment` empty: all, admin only).
    pub async fn list(
        &mut self,
        environment: &str,
        stale_only: bool,
        limit: u32,
    ) -> Result<Vec<Runner>, ClientError> {
        Ok(self
            .0
            .list_runners(v1::ListRunnersRequest {
                environment: environment.to_string(),
                stale_only,
                limit,
            })
            .await?
            .into_inner()
            .runners)
    }
}
