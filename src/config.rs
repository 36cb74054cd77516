//! runseald's configuration in two stages: [`RawConfig`], the TOML file as written (unknown
//! fields are an error, not a silent default), merged with command-line flags into the
//! validated, typed [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names::{Limits, NamePolicy};
use crate::telemetry::LogFormat;
use crate::tls::TlsFiles;

pub const DEFAULT_DATA_DIR: &str = "./runseal-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    /// PostgreSQL URL; unset means the embedded SQLite file in the data dir.
    pub database_url: Option<String>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_value_bytes: Option<usize>,
    pub max_environment_bytes: Option<usize>,
    pub max_secrets_per_environment: Option<usize>,
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
    pub database_url: Option<String>,
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
}

pub const DEFAULT_RUNNER_RETENTION: &str = "7d";

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
        let names = |key: &'static str, v: Option<Vec<String>>| {
            let v = v.unwrap_or_default();
            match v.iter().find(|n| !crate::names::is_valid_secret_name(n)) {
                Some(bad) => Err(ConfigError::DeniedName(key, bad.clone())),
                None => Ok(v),
            }
        };
        let mut policy = match raw.denied_names {
            Some(list) => NamePolicy::new(names("denied_names", Some(list))?),
            None => NamePolicy::default(),
        };
        let allowed = names("allowed_names", raw.allowed_names)?;
        if let Some(bad) = allowed.iter().find(|n| {
            n.starts_with(crate::names::LOADER_PREFIX)
                || n.starts_with(crate::names::RESERVED_PREFIX)
        }) {
            return Err(ConfigError::AlwaysDenied(bad.clone()));
        }
        policy = policy
            .with_extra_denied(names("extra_denied_names", raw.extra_denied_names)?)
            .with_allowed(allowed);
        let mut limits = Limits::default();
        if let Some(l) = raw.limits {
            let nz = |v: Option<usize>, name, default| match v {
                Some(0) => Err(ConfigError::ZeroLimit(name)),
                Some(v) => Ok(v),
                None => Ok(default),
            };
            limits.max_value_bytes =
                nz(l.max_value_bytes, "max_value_bytes", limits.max_value_bytes)?;
            limits.max_environment_bytes = nz(
                l.max_environment_bytes,
                "max_environment_bytes",
                limits.max_environment_bytes,
            )?;
            limits.max_secrets_per_environment = nz(
                l.max_secrets_per_environment,
                "max_secrets_per_environment",
                limits.max_secrets_per_environment,
            )?;
        }
        Ok(Self {
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
        })
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::Listen(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!c.policy.replaces_defaults());
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
