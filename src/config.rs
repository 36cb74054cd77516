//! runseald's configuration in two stages: [`RawConfig`], the TOML file as written (unknown
//! fields are an error, not a silent default), merged with command-line flags into the
//! validated, typed [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::grpc::NetLimits;
use crate::names::{Limits, NamePolicy};
use crate::telemetry::LogFormat;
use crate::tls::TlsFiles;

pub const DEFAULT_DATA_DIR: &str = "./runseal-data";
pub use crate::defaults::DEFAULT_LISTEN;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    /// PostgreSQL URL; unset means the embedded SQLite file in the data dir.
    pub database_url: Option<crate::store::DatabaseUrl>,
    pub listen: Option<String>,
    pub unix: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub insecure_plaintext: Option<bool>,
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics on this address.
    pub metrics_listen: Option<String>,
    /// Replaces the default denied set of secret names (`LD_*` and `RUNSEAL_*` always apply).
    /// Deprecated: it drops the defaults; use `extra_denied_names` and `allowed_names`.
    pub denied_names: Option<Vec<String>>,
    /// Names refused in addition to the default denied set.
    pub extra_denied_names: Option<Vec<String>>,
    /// Names of the default denied set allowed on purpose (e.g. a proxy URL with credentials).
    pub allowed_names: Option<Vec<String>>,
    pub limits: Option<RawLimits>,
    /// Whether a secret without its own setting goes to runners that have no allow-list.
    pub expose_by_default: Option<bool>,
    /// How long runner starts are kept for `runners list`, e.g. "7d".
    pub runner_retention: Option<String>,
    /// How long audit rows are kept, e.g. "90d" (one row per runner start adds up).
    pub audit_retention: Option<String>,
    /// Bounds on what `runner-token issue` may ask for.
    pub runner_tokens: Option<RawTokenLimits>,
    /// Connection limits (`[net]`).
    pub net: Option<RawNet>,
    /// The dashboard's address, or `off` (default: 127.0.0.1:7444 when free).
    pub web_listen: Option<String>,
    /// Allow the dashboard without TLS on a non-loopback address (behind a TLS proxy).
    pub web_insecure_plaintext: Option<bool>,
    /// The dashboard (`[web]`).
    pub web: Option<RawWeb>,
}

/// `[web]`: the dashboard's sessions and the host names it answers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// A session ends after this long without a request, e.g. "30m".
    pub session_idle: Option<String>,
    /// A session ends this long after its sign-in at the latest, e.g. "12h".
    pub session_lifetime: Option<String>,
    /// Host names (`name[:port]`) the dashboard answers besides its listen address, e.g. the
    /// name a proxy forwards: any other `Host` is refused (DNS rebinding).
    pub hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenLimits {
    /// The longest lifetime a runner token may have, e.g. "24h".
    pub max_ttl: Option<String>,
    /// The most uses a runner token may have.
    pub max_uses: Option<u32>,
}

/// `[net]`: what one client may hold (README, "Connection limits").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNet {
    pub max_connections: Option<usize>,
    pub max_concurrent_streams: Option<u32>,
    pub handshake_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub unauthenticated_idle_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_value_bytes: Option<usize>,
    pub max_environment_bytes: Option<usize>,
    pub max_secrets_per_environment: Option<usize>,
    pub versions_kept: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid listen address {0:?}: expected IP:PORT, e.g. 127.0.0.1:7443")]
    Listen(String),
    #[error("refusing plaintext gRPC on the non-loopback address {0}: give --tls-cert and --tls-key, or --insecure-plaintext if a trusted proxy terminates TLS")]
    PlaintextOnNetwork(SocketAddr),
    #[error("--tls-cert and --tls-key go together: give both")]
    TlsPair,
    #[error("--tls-client-ca needs --tls-cert and --tls-key")]
    ClientCaWithoutTls,
    #[error("limit {0} must be greater than zero")]
    ZeroLimit(&'static str),
    #[error("{0}: {1:?} is not a valid variable name")]
    DeniedName(&'static str, String),
    #[error("allowed_names: {0:?} cannot be allowed: LD_* and RUNSEAL_* are always refused")]
    AlwaysDenied(String),
    #[error("runner_retention: {0}")]
    Retention(crate::duration::InvalidDuration),
    #[error("audit_retention: {0}")]
    AuditRetention(crate::duration::InvalidDuration),
    #[error("runner_tokens.max_ttl: {0}")]
    TokenTtl(crate::duration::InvalidDuration),
    #[error("[net] {0} must be greater than zero")]
    ZeroNet(&'static str),
    #[error("[net] {0}: {1}")]
    NetDuration(&'static str, crate::duration::InvalidDuration),
    #[error("invalid web_listen {0:?}: expected IP:PORT (e.g. 127.0.0.1:7444) or off")]
    WebListen(String),
    #[error("refusing the dashboard in plaintext on the non-loopback address {0}: give --tls-cert and --tls-key, or --web-insecure-plaintext if a trusted proxy terminates TLS")]
    WebPlaintextOnNetwork(SocketAddr),
    #[error("[web] {0}: {1}")]
    WebDuration(&'static str, crate::duration::InvalidDuration),
    #[error("[web] {0} must be greater than zero")]
    ZeroWeb(&'static str),
    #[error("[web] hosts: {0:?} is not a host name or host:port")]
    WebHost(String),
}

/// Where the dashboard listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebListen {
    Off,
    /// The default address: a warning, not an error, when it is taken.
    Default(SocketAddr),
    /// Given by the operator: failing to bind it is fatal.
    Explicit(SocketAddr),
}

impl RawConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// The validated configuration of `runseald serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub master_key_file: Option<PathBuf>,
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// `None` when runseald serves only on a Unix socket.
    pub listen: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub insecure_plaintext: bool,
    pub log_format: LogFormat,
    pub metrics_listen: Option<SocketAddr>,
    pub policy: NamePolicy,
    pub limits: Limits,
    pub expose_by_default: bool,
    pub runner_retention: std::time::Duration,
    pub audit_retention: std::time::Duration,
    pub token_limits: TokenLimits,
    pub net: NetLimits,
    pub web_listen: WebListen,
    pub web_hosts: Vec<String>,
    pub session_limits: crate::service::SessionLimits,
}

pub const DEFAULT_RUNNER_RETENTION: &str = "7d";
pub const DEFAULT_AUDIT_RETENTION: &str = "90d";

/// What one runner token may be minted with. A token is meant for one runner start, so the
/// defaults fit a deploy: a day to live and a thousand uses at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    pub max_ttl: std::time::Duration,
    pub max_uses: u32,
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            max_ttl: std::time::Duration::from_secs(24 * 3600),
            max_uses: 1000,
        }
    }
}

impl Config {
    /// Validates a merged raw configuration (flags already folded in).
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = match (&raw.listen, &raw.unix) {
            (Some(l), _) => Some(parse_addr(l)?),
            (None, Some(_)) => None,
            (None, None) => Some(parse_addr(DEFAULT_LISTEN)?),
        };
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: raw.tls_client_ca,
            }),
            (None, None) if raw.tls_client_ca.is_some() => {
                return Err(ConfigError::ClientCaWithoutTls)
            }
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        let insecure_plaintext = raw.insecure_plaintext.unwrap_or(false);
        if let Some(addr) = listen {
            if tls.is_none() && !addr.ip().is_loopback() && !insecure_plaintext {
                return Err(ConfigError::PlaintextOnNetwork(addr));
            }
        }
        let policy = name_policy(raw.denied_names, raw.extra_denied_names, raw.allowed_names)?;
        let limits = limits(raw.limits)?;
        let token_limits = token_limits(raw.runner_tokens)?;
        let net = net_limits(raw.net.unwrap_or_default())?;
        let web_listen = match raw.web_listen.as_deref() {
            Some("off") => WebListen::Off,
            Some(a) => WebListen::Explicit(
                a.parse()
                    .map_err(|_| ConfigError::WebListen(a.to_string()))?,
            ),
            None => WebListen::Default(parse_addr(crate::defaults::DEFAULT_WEB_LISTEN)?),
        };
        if let WebListen::Explicit(addr) = web_listen {
            if tls.is_none() && !addr.ip().is_loopback() && raw.web_insecure_plaintext != Some(true)
            {
                return Err(ConfigError::WebPlaintextOnNetwork(addr));
            }
        }
        let (web_hosts, session_limits) = web_settings(raw.web.unwrap_or_default())?;
        Ok(Self {
            web_listen,
            web_hosts,
            session_limits,
            net,
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            master_key_file: raw.master_key_file,
            database_url: raw.database_url,
            listen,
            unix: raw.unix,
            tls,
            insecure_plaintext,
            log_format: raw.log_format.unwrap_or_default(),
            metrics_listen: raw.metrics_listen.as_deref().map(parse_addr).transpose()?,
            policy,
            limits,
            expose_by_default: raw.expose_by_default.unwrap_or(true),
            runner_retention: crate::duration::parse(
                raw.runner_retention
                    .as_deref()
                    .unwrap_or(DEFAULT_RUNNER_RETENTION),
            )
            .map_err(ConfigError::Retention)?,
            audit_retention: crate::duration::parse(
                raw.audit_retention
                    .as_deref()
                    .unwrap_or(DEFAULT_AUDIT_RETENTION),
            )
            .map_err(ConfigError::AuditRetention)?,
            token_limits,
        })
    }
}

/// `[web]` over the defaults.
fn web_settings(raw: RawWeb) -> Result<(Vec<String>, crate::service::SessionLimits), ConfigError> {
    let mut limits = crate::service::SessionLimits::default();
    for (name, value, slot) in [
        ("session_idle", raw.session_idle, &mut limits.idle),
        (
            "session_lifetime",
            raw.session_lifetime,
            &mut limits.absolute,
        ),
    ] {
        if let Some(v) = value {
            *slot = crate::duration::parse(&v).map_err(|e| ConfigError::WebDuration(name, e))?;
            if slot.is_zero() {
                return Err(ConfigError::ZeroWeb(name));
            }
        }
    }
    let hosts = raw.hosts.unwrap_or_default();
    if let Some(bad) = hosts.iter().find(|h| {
        h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    }) {
        return Err(ConfigError::WebHost(bad.clone()));
    }
    Ok((hosts, limits))
}

/// The secret-name policy: the default denied set (or `denied_names` instead of it), plus
/// `extra_denied_names`, minus `allowed_names` (which may not allow loader or reserved names).
fn name_policy(
    denied: Option<Vec<String>>,
    extra: Option<Vec<String>>,
    allowed: Option<Vec<String>>,
) -> Result<NamePolicy, ConfigError> {
    let names = |key: &'static str, v: Option<Vec<String>>| {
        let v = v.unwrap_or_default();
        match v.iter().find(|n| !crate::names::is_valid_secret_name(n)) {
            Some(bad) => Err(ConfigError::DeniedName(key, bad.clone())),
            None => Ok(v),
        }
    };
    let policy = match denied {
        Some(list) => NamePolicy::new(names("denied_names", Some(list))?),
        None => NamePolicy::default(),
    };
    let allowed = names("allowed_names", allowed)?;
    if let Some(bad) = allowed.iter().find(|n| {
        n.starts_with(crate::names::LOADER_PREFIX) || n.starts_with(crate::names::RESERVED_PREFIX)
    }) {
        return Err(ConfigError::AlwaysDenied(bad.clone()));
    }
    Ok(policy
        .with_extra_denied(names("extra_denied_names", extra)?)
        .with_allowed(allowed))
}

/// `[limits]` over the defaults; a zero limit is refused.
fn limits(raw: Option<RawLimits>) -> Result<Limits, ConfigError> {
    let default = Limits::default();
    let Some(l) = raw else {
        return Ok(default);
    };
    let nz = |v: Option<usize>, name, default| match v {
        Some(0) => Err(ConfigError::ZeroLimit(name)),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(Limits {
        max_value_bytes: nz(
            l.max_value_bytes,
            "max_value_bytes",
            default.max_value_bytes,
        )?,
        max_environment_bytes: nz(
            l.max_environment_bytes,
            "max_environment_bytes",
            default.max_environment_bytes,
        )?,
        max_secrets_per_environment: nz(
            l.max_secrets_per_environment,
            "max_secrets_per_environment",
            default.max_secrets_per_environment,
        )?,
        versions_kept: nz(l.versions_kept, "versions_kept", default.versions_kept)?,
    })
}

/// `[runner_tokens]` over the defaults; a zero TTL or use count is refused.
fn token_limits(raw: Option<RawTokenLimits>) -> Result<TokenLimits, ConfigError> {
    let mut token_limits = TokenLimits::default();
    if let Some(t) = raw {
        if let Some(ttl) = t.max_ttl {
            token_limits.max_ttl = crate::duration::parse(&ttl).map_err(ConfigError::TokenTtl)?;
            if token_limits.max_ttl.is_zero() {
                return Err(ConfigError::ZeroLimit("runner_tokens.max_ttl"));
            }
        }
        match t.max_uses {
            Some(0) => return Err(ConfigError::ZeroLimit("runner_tokens.max_uses")),
            Some(n) => token_limits.max_uses = n,
            None => {}
        }
    }
    Ok(token_limits)
}

/// `[net]` over the defaults; zero caps and zero deadlines are refused (they would refuse
/// every client).
fn net_limits(raw: RawNet) -> Result<NetLimits, ConfigError> {
    let mut net = NetLimits::default();
    match raw.max_connections {
        Some(0) => return Err(ConfigError::ZeroNet("max_connections")),
        Some(n) => {
            net.max_connections = n
                .min(tokio::sync::Semaphore::MAX_PERMITS)
                .min(u32::MAX as usize)
        }
        None => {}
    }
    match raw.max_concurrent_streams {
        Some(0) => return Err(ConfigError::ZeroNet("max_concurrent_streams")),
        Some(n) => net.max_concurrent_streams = n,
        None => {}
    }
    let duration = |v: Option<String>, name: &'static str, default| match v {
        None => Ok(default),
        Some(v) => match crate::duration::parse(&v) {
            Ok(d) if d.is_zero() => Err(ConfigError::ZeroNet(name)),
            Ok(d) => Ok(d),
            Err(e) => Err(ConfigError::NetDuration(name, e)),
        },
    };
    net.handshake_timeout = duration(
        raw.handshake_timeout,
        "handshake_timeout",
        net.handshake_timeout,
    )?;
    net.idle_timeout = duration(raw.idle_timeout, "idle_timeout", net.idle_timeout)?;
    net.unauthenticated_idle_timeout = duration(
        raw.unauthenticated_idle_timeout,
        "unauthenticated_idle_timeout",
        net.unauthenticated_idle_timeout,
    )?;
    Ok(net)
}

fn parse_addr(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::Listen(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(text: &str) -> Result<Config, ConfigError> {
        Config::from_raw(toml::from_str::<RawConfig>(text).unwrap())
    }

    #[test]
    fn the_dashboard_listens_on_its_default_unless_told_otherwise() {
        let c = web("").unwrap();
        assert_eq!(
            c.web_listen,
            WebListen::Default("127.0.0.1:7444".parse().unwrap())
        );
        assert_eq!(
            web("web_listen = \"off\"").unwrap().web_listen,
            WebListen::Off
        );
        let c = web("web_listen = \"127.0.0.1:9000\"").unwrap();
        assert_eq!(
            c.web_listen,
            WebListen::Explicit("127.0.0.1:9000".parse().unwrap())
        );
        let err = web("web_listen = \"everywhere\"").unwrap_err().to_string();
        assert!(
            err.contains("expected IP:PORT") && err.contains("off"),
            "{err}"
        );
    }

    #[test]
    fn a_non_loopback_dashboard_needs_tls_or_the_insecure_flag() {
        let err = web("web_listen = \"0.0.0.0:7444\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--web-insecure-plaintext"), "{err}");
        assert!(web("web_listen = \"0.0.0.0:7444\"\nweb_insecure_plaintext = true").is_ok());
        let tls = "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nlisten = \"127.0.0.1:7443\"\n";
        assert!(web(&format!("{tls}web_listen = \"0.0.0.0:7444\"")).is_ok());
    }

    #[test]
    fn web_session_settings_and_hosts_are_checked() {
        let c = web("[web]\nsession_idle = \"5m\"\nsession_lifetime = \"1h\"\nhosts = [\"secrets.internal:7444\"]").unwrap();
        assert_eq!(c.session_limits.idle, std::time::Duration::from_secs(300));
        assert_eq!(
            c.session_limits.absolute,
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(c.web_hosts, vec!["secrets.internal:7444".to_string()]);
        let err = web("[web]\nsession_idle = \"0s\"").unwrap_err().to_string();
        assert!(err.contains("session_idle"), "{err}");
        let err = web("[web]\nhosts = [\"evil host/\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts"), "{err}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err =
            toml::from_str::<RawConfig>("listen = \"127.0.0.1:1\"\nlisten_addr = 1\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn plaintext_only_on_loopback() {
        let raw = |listen: &str, insecure| RawConfig {
            listen: Some(listen.into()),
            insecure_plaintext: Some(insecure),
            ..RawConfig::default()
        };
        assert!(Config::from_raw(raw("127.0.0.1:7443", false)).is_ok());
        assert!(Config::from_raw(raw("[::1]:7443", false)).is_ok());
        assert!(matches!(
            Config::from_raw(raw("0.0.0.0:7443", false)),
            Err(ConfigError::PlaintextOnNetwork(_))
        ));
        assert!(Config::from_raw(raw("0.0.0.0:7443", true)).is_ok());
    }

    #[test]
    fn defaults() {
        let c = Config::from_raw(RawConfig::default()).unwrap();
        assert_eq!(c.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.token_limits.max_ttl.as_secs(), 24 * 3600);
        assert_eq!(c.token_limits.max_uses, 1000);
        assert_eq!(c.audit_retention.as_secs(), 90 * 24 * 3600);
        assert_eq!(c.net, NetLimits::default());
        assert!(!c.policy.replaces_defaults());
    }

    #[test]
    fn token_limits_are_configurable_and_never_zero() {
        let raw: RawConfig =
            toml::from_str("[runner_tokens]\nmax_ttl = \"1h\"\nmax_uses = 5\n").unwrap();
        let c = Config::from_raw(raw).unwrap();
        assert_eq!(c.token_limits.max_ttl.as_secs(), 3600);
        assert_eq!(c.token_limits.max_uses, 5);
        let raw: RawConfig = toml::from_str("[runner_tokens]\nmax_uses = 0\n").unwrap();
        assert!(matches!(
            Config::from_raw(raw),
            Err(ConfigError::ZeroLimit("runner_tokens.max_uses"))
        ));
    }

    #[test]
    fn net_settings_are_read_and_checked() {
        let c = Config::from_raw(
            toml::from_str(
                "[net]\nmax_connections = 7\nmax_concurrent_streams = 3\nhandshake_timeout = \"2s\"\nidle_timeout = \"1m\"\nunauthenticated_idle_timeout = \"500ms\"\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            c.net,
            NetLimits {
                max_connections: 7,
                max_concurrent_streams: 3,
                handshake_timeout: std::time::Duration::from_secs(2),
                idle_timeout: std::time::Duration::from_secs(60),
                unauthenticated_idle_timeout: std::time::Duration::from_millis(500),
            }
        );
        for (text, needle) in [
            ("[net]\nmax_connections = 0\n", "max_connections"),
            (
                "[net]\nmax_concurrent_streams = 0\n",
                "max_concurrent_streams",
            ),
            ("[net]\nidle_timeout = \"0s\"\n", "idle_timeout"),
            ("[net]\nhandshake_timeout = \"soon\"\n", "handshake_timeout"),
        ] {
            let err = Config::from_raw(toml::from_str(text).unwrap()).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = toml::from_str::<RawConfig>("[net]\nmax_streams = 1\n").unwrap_err();
        assert!(err.to_string().contains("max_streams"), "{err}");
    }

    #[test]
    fn name_settings() {
        let c: RawConfig = toml::from_str(
            "extra_denied_names = [\"MY_HOOK\"]\nallowed_names = [\"HTTPS_PROXY\"]\n",
        )
        .unwrap();
        let c = Config::from_raw(c).unwrap();
        assert!(c.policy.check_secret_name("MY_HOOK").is_err());
        assert!(c.policy.check_secret_name("HTTPS_PROXY").is_ok());
        assert!(c.policy.check_secret_name("NODE_OPTIONS").is_err());
        let c: RawConfig = toml::from_str("allowed_names = [\"LD_PRELOAD\"]\n").unwrap();
        let err = Config::from_raw(c).unwrap_err().to_string();
        assert!(err.contains("LD_PRELOAD"), "{err}");
        let c: RawConfig = toml::from_str("extra_denied_names = [\"A-B\"]\n").unwrap();
        let err = Config::from_raw(c).unwrap_err().to_string();
        assert!(
            err.contains("extra_denied_names") && err.contains("A-B"),
            "{err}"
        );
        let c: RawConfig = toml::from_str("denied_names = [\"X\"]\n").unwrap();
        assert!(Config::from_raw(c).unwrap().policy.replaces_defaults());
    }
}
