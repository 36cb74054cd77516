//! API keys and scopes.
//!
//! A key is `KEY_ID:KEY_SECRET`: the id is public (it appears in listings and the audit log),
//! the secret is 32 random bytes shown once at creation and stored only as its SHA-256 hash
//! (the secret is random, so a plain hash is enough; no password hashing is needed). Hashes are
//! compared in constant time. Nothing here ever prints a secret.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::names;

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everything: environments, keys, audit, and every environment's secrets.
    Admin,
    /// Set and unset secrets of one environment (and list their names).
    Write(String),
    /// List the names of one environment's secrets.
    Read(String),
    /// Mint runner tokens for one environment.
    Issue(String),
    /// Fetch snapshots (values) of one environment, like a runner token that never runs out.
    /// Never implied by `admin`: reading values must be granted explicitly.
    Snapshot(String),
    /// Fetch named values of one environment for a build (`runseal-agent build`). Never implied
    /// by `admin`, like `snapshot`.
    Build(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: use admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV or build:ENV with a valid environment name")]
pub struct InvalidScope(pub String);

impl FromStr for Scope {
    type Err = InvalidScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidScope(s.chars().take(80).collect());
        if s == "admin" {
            return Ok(Scope::Admin);
        }
        let (kind, env) = s.split_once(':').ok_or_else(bad)?;
        if !names::is_valid_environment_name(env) {
            return Err(bad());
        }
        let env = env.to_string();
        match kind {
            "write" => Ok(Scope::Write(env)),
            "read" => Ok(Scope::Read(env)),
            "issue" => Ok(Scope::Issue(env)),
            "snapshot" => Ok(Scope::Snapshot(env)),
            "build" => Ok(Scope::Build(env)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Write(e) => write!(f, "write:{e}"),
            Scope::Read(e) => write!(f, "read:{e}"),
            Scope::Issue(e) => write!(f, "issue:{e}"),
            Scope::Snapshot(e) => write!(f, "snapshot:{e}"),
            Scope::Build(e) => write!(f, "build:{e}"),
        }
    }
}

impl Scope {
    /// The environment a scope is of (`None`: admin).
    pub fn environment(&self) -> Option<&str> {
        match self {
            Scope::Admin => None,
            Scope::Write(e)
            | Scope::Read(e)
            | Scope::Issue(e)
            | Scope::Snapshot(e)
            | Scope::Build(e) => Some(e),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub scopes: Vec<Scope>,
    /// The front-end the key acts through, when it is not the gRPC API (`dashboard`): its
    /// changes are audited with it.
    pub via: Option<&'static str>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// True when the key holds `needed` (admin holds everything but `snapshot` and `build`,
    /// the scopes that read values; write implies read).
    pub fn allows(&self, needed: &Scope) -> bool {
        (self.is_admin() && !matches!(needed, Scope::Snapshot(_) | Scope::Build(_)))
            || self.scopes.contains(needed)
            || matches!(needed, Scope::Read(env) if self.scopes.contains(&Scope::Write(env.clone())))
    }

    /// Environments this key can see at all (for filtering listings of non-admin keys).
    pub fn sees_environment(&self, env: &str) -> bool {
        self.is_admin()
            || self.scopes.iter().any(|s| match s {
                Scope::Write(e)
                | Scope::Read(e)
                | Scope::Issue(e)
                | Scope::Snapshot(e)
                | Scope::Build(e) => e == env,
                Scope::Admin => true,
            })
    }
}

/// `KEY_ID:KEY_SECRET` as presented by a client. The secret never prints.
#[derive(Clone)]
pub struct Credential {
    key_id: String,
    secret: Zeroizing<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}:[redacted])", self.key_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredential {
    #[error(
        "a key has the form KEY_ID:KEY_SECRET (the line runseald printed or wrote to admin.key)"
    )]
    Malformed,
}

impl Credential {
    /// Parses `KEY_ID:KEY_SECRET`, ignoring surrounding whitespace (a trailing newline from a
    /// key file). The error never contains the input.
    pub fn parse(s: &str) -> Result<Self, InvalidCredential> {
        let (id, secret) = s
            .trim()
            .split_once(':')
            .ok_or(InvalidCredential::Malformed)?;
        let printable = |x: &str| {
            !x.is_empty() && x.len() <= 512 && x.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        };
        if !printable(id) || !printable(secret) {
            return Err(InvalidCredential::Malformed);
        }
        Ok(Self {
            key_id: id.to_string(),
            secret: Zeroizing::new(secret.to_string()),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// The full `KEY_ID:KEY_SECRET` line, in a zeroizing buffer.
    pub fn to_line(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}:{}", self.key_id, self.secret.as_str()))
    }

    /// The `authorization` metadata value, in a zeroizing buffer.
    pub fn bearer(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}:{}", self.key_id, self.secret.as_str()))
    }

    /// SHA-256 of the secret: what the store keeps.
    pub fn secret_hash(&self) -> [u8; 32] {
        hash_secret(&self.secret)
    }

    /// Constant-time comparison of this credential's secret with a stored hash.
    pub fn matches_hash(&self, stored: &[u8]) -> bool {
        bool::from(self.secret_hash().as_slice().ct_eq(stored))
    }
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new random key: id `rk_` + 16 hex digits, secret 32 random bytes as 64 hex digits.
pub fn generate_key() -> Credential {
    generate_credential(KEY_PREFIX)
}

/// A new random runner token: id `rt_` + 16 hex digits, secret as for keys.
pub fn generate_runner_token() -> Credential {
    generate_credential(RUNNER_TOKEN_PREFIX)
}

pub const KEY_PREFIX: &str = "rk_";
pub const RUNNER_TOKEN_PREFIX: &str = "rt_";

impl Credential {
    /// Runner tokens and keys share the format; the id prefix tells them apart.
    pub fn is_runner_token(&self) -> bool {
        self.key_id.starts_with(RUNNER_TOKEN_PREFIX)
    }
}

fn generate_credential(prefix: &str) -> Credential {
    let mut id = [0u8; 8];
    OsRng.fill_bytes(&mut id);
    let mut secret = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    Credential {
        key_id: format!("{prefix}{}", hex::encode(id)),
        secret: Zeroizing::new(hex::encode(secret.as_ref())),
    }
}

/// Parses the comma/space separated scope list stored with a key.
pub fn parse_scopes(stored: &str) -> Result<Vec<Scope>, InvalidScope> {
    stored
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(Scope::from_str)
        .collect()
}

pub fn format_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A principal holding `scopes` only.
    fn holding(scopes: Vec<Scope>) -> Principal {
        Principal {
            key_id: "k".into(),
            scopes,
            via: None,
        }
    }

    #[test]
    fn scopes_roundtrip() {
        for s in [
            "admin",
            "write:main",
            "read:staging",
            "issue:prod-1",
            "snapshot:main",
            "build:production",
        ] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        for bad in ["", "root", "write:", "write:Main", "delete:main", "write"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn write_implies_read_of_the_same_environment_only() {
        let p = holding(vec![Scope::Write("staging".into())]);
        assert!(p.allows(&Scope::Read("staging".into())));
        assert!(!p.allows(&Scope::Read("main".into())));
        assert!(!p.allows(&Scope::Admin));
    }

    #[test]
    fn admin_does_not_imply_reading_values() {
        let admin = holding(vec![Scope::Admin]);
        assert!(admin.allows(&Scope::Write("main".into())));
        assert!(!admin.allows(&Scope::Snapshot("main".into())));
        assert!(!admin.allows(&Scope::Build("main".into())));
        let build = holding(vec![Scope::Build("staging".into())]);
        assert!(build.allows(&Scope::Build("staging".into())));
        assert!(!build.allows(&Scope::Build("main".into())));
        assert!(!build.allows(&Scope::Snapshot("staging".into())));
    }

    #[test]
    fn credential_parsing_and_redaction() {
        let k = generate_key();
        let line = k.to_line();
        let parsed = Credential::parse(&format!("{}\n", line.as_str())).unwrap();
        assert_eq!(parsed.key_id(), k.key_id());
        assert!(parsed.matches_hash(&k.secret_hash()));
        assert!(!format!("{parsed:?}").contains(k.expose_secret()));
        assert!(Credential::parse("nocolon").is_err());
        assert!(Credential::parse("a:").is_err());
        let other = generate_key();
        assert!(!other.matches_hash(&k.secret_hash()));
    }
}
