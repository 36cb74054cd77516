//! Server-side TLS (rustls): certificate and key from PEM files, optional client-certificate
//! authentication, and the acceptor `grpc::conn` runs each handshake with (under its deadline). The configuration
//! sits behind a lock so it can be swapped (reloaded) without touching open connections.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key found")]
    NoKey(PathBuf),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// Where the server's certificate, key and optional client CA live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = zeroize::Zeroizing::new(read(path)?);
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey(path.to_path_buf()))
}

/// ALPN of the gRPC listeners.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of the dashboard's listener.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Builds a rustls server configuration (offering the protocol `alpn`) from the files.
pub fn server_config(files: &TlsFiles, alpn: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| TlsError::ClientCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TLS connections with the current configuration; [`TlsAcceptor::reload`] swaps it
/// for new connections only.
#[derive(Clone)]
pub struct TlsAcceptor {
    files: TlsFiles,
    alpn: &'static [u8],
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsAcceptor {
    /// An acceptor for gRPC (ALPN `h2`).
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        Self::with_alpn(files, ALPN_H2)
    }

    /// An acceptor offering the protocol `alpn` (the dashboard: [`ALPN_HTTP1`]).
    pub fn with_alpn(files: TlsFiles, alpn: &'static [u8]) -> Result<Self, TlsError> {
        let config = server_config(&files, alpn)?;
        Ok(Self {
            files,
            alpn,
            config: Arc::new(RwLock::new(config)),
        })
    }

    /// Re-reads the certificate and key; on error the old configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files, self.alpn)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// The acceptor for a new connection, with the configuration current now (the caller
    /// bounds the handshake: see `grpc::conn`).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(
            self.config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
