//! Tamper evidence for the rows that grant something: HMAC-SHA256 under the *integrity key*.
//!
//! The integrity key is 32 random bytes stored like a data key: wrapped by the master key in the
//! `data_keys` table under the id [`INTEGRITY_KEY_ID`], so `rotate-master-key` re-wraps it with
//! the data keys and no MAC ever has to be recomputed. Someone who can write the database but
//! does not hold the master key cannot compute a MAC, so a row they insert or rewrite grants
//! nothing.
//!
//! Each MAC covers a versioned, length-prefixed encoding of the table name, the row's id and
//! every field that grants something (one function per row type below, which every backend and
//! anyone changing those rows calls). Comparisons are constant-time (`verify_slice`).
//!
//! What a MAC cannot tell: a row put back to an earlier state of itself (its MAC was valid then
//! and still is), and a consistent restore of the whole database. See README, "Tamper evidence".

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::seal::KEY_LEN;
use std::sync::{Arc, RwLock};

use crate::records::{
    EnvironmentVersion, IntegrityRows, KeyRow, RunnerRecord, RunnerTokenRow, SealedSecret,
    SecretVersion, SessionRow,
};
use crate::store::{Result, StoreError};

/// The `data_keys` id of the wrapped integrity key (data keys are `dk_…`).
pub const INTEGRITY_KEY_ID: &str = "ik_integrity_v1";

/// Version label at the start of every encoding: a new encoding gets a new label.
const VERSION: &[u8] = b"runseal/row-mac/v1";

pub const TABLE_API_KEYS: &str = "api_keys";
pub const TABLE_RUNNER_TOKENS: &str = "runner_tokens";
pub const TABLE_RUNNERS: &str = "runners";
pub const TABLE_ENVIRONMENTS: &str = "environments";
pub const TABLE_WEB_SESSIONS: &str = "web_sessions";
pub const TABLE_SECRET_VERSIONS: &str = "secret_versions";

type HmacSha256 = Hmac<Sha256>;

/// The key of the row MACs. Lives unwrapped only in runseald's memory; never printed.
pub struct IntegrityKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntegrityKey([redacted])")
    }
}

/// One secret as the environment MAC sees it.
pub struct EnvSecret<'a> {
    pub name: &'a str,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
    pub exposed: Option<bool>,
}

/// The length-prefixed fields of one row.
struct Encoder(HmacSha256);

impl Encoder {
    fn new(key: &IntegrityKey, table: &str, id: &str) -> Self {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        #[allow(clippy::expect_used)]
        let mut e = Self(
            <HmacSha256 as Mac>::new_from_slice(key.0.as_ref())
                .expect("HMAC accepts any key length"),
        );
        e.bytes(VERSION);
        e.bytes(table.as_bytes());
        e.bytes(id.as_bytes());
        e
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    fn i64(&mut self, n: i64) -> &mut Self {
        self.bytes(&n.to_be_bytes())
    }

    /// `None` and `Some` never encode alike (a tag, then the value).
    fn opt_i64(&mut self, n: Option<i64>) -> &mut Self {
        match n {
            None => self.bytes(&[0]),
            Some(n) => self.bytes(&[1]).i64(n),
        }
    }

    fn finish(self) -> Vec<u8> {
        self.0.finalize().into_bytes().to_vec()
    }

    fn verify(self, mac: &[u8]) -> bool {
        self.0.verify_slice(mac).is_ok()
    }
}

impl IntegrityKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(bytes);
        Self(k)
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn key_encoder(&self, k: &KeyRow) -> Encoder {
        let mut e = Encoder::new(self, TABLE_API_KEYS, &k.id);
        e.bytes(&k.secret_hash)
            .str(&k.scopes)
            .opt_i64(k.revoked_at.map(crate::records::to_millis));
        e
    }

    /// MAC of an API key row: id, secret hash, scopes, revocation.
    pub fn key_mac(&self, k: &KeyRow) -> Vec<u8> {
        self.key_encoder(k).finish()
    }

    pub fn verify_key(&self, k: &KeyRow, mac: &[u8]) -> bool {
        self.key_encoder(k).verify(mac)
    }

    fn token_encoder(&self, t: &RunnerTokenRow) -> Encoder {
        let mut e = Encoder::new(self, TABLE_RUNNER_TOKENS, &t.id);
        e.bytes(&t.secret_hash).str(&t.environment);
        match &t.only {
            None => {
                e.bytes(&[0]);
            }
            Some(names) => {
                e.bytes(&[1]).i64(names.len() as i64);
                for n in names {
                    e.str(n);
                }
            }
        }
        e.str(&t.purpose)
            .i64(t.uses_left as i64)
            .i64(crate::records::to_millis(t.expires_at))
            .opt_i64(t.revoked_at.map(crate::records::to_millis))
            .str(&t.created_by);
        e
    }

    /// MAC of a runner token row: id, secret hash, environment, allow-list, purpose, uses left,
    /// expiry, revocation, minting key.
    pub fn token_mac(&self, t: &RunnerTokenRow) -> Vec<u8> {
        self.token_encoder(t).finish()
    }

    pub fn verify_token(&self, t: &RunnerTokenRow, mac: &[u8]) -> bool {
        self.token_encoder(t).verify(mac)
    }

    fn runner_encoder(&self, r: &RunnerRecord) -> Encoder {
        // A start has no id before it is inserted (the backends number them): the row is named
        // by what identifies the start, its credential, runner id and start time.
        let mut e = Encoder::new(self, TABLE_RUNNERS, &r.credential_id);
        e.str(&r.runner_id)
            .str(&r.environment)
            .i64(r.revision as i64)
            .i64(crate::records::to_millis(r.started_at));
        match &r.retry_hash {
            None => e.bytes(&[0]),
            Some(h) => e.bytes(&[1]).bytes(h),
        };
        e
    }

    /// MAC of a runner start (its retry hash grants a re-serve of a used token).
    pub fn runner_mac(&self, r: &RunnerRecord) -> Vec<u8> {
        self.runner_encoder(r).finish()
    }

    pub fn verify_runner(&self, r: &RunnerRecord, mac: &[u8]) -> bool {
        self.runner_encoder(r).verify(mac)
    }

    fn session_encoder(&self, s: &SessionRow) -> Encoder {
        let mut e = Encoder::new(self, TABLE_WEB_SESSIONS, &s.id);
        e.str(&s.key_id)
            .i64(crate::records::to_millis(s.created_at))
            .i64(crate::records::to_millis(s.expires_at));
        e
    }

    /// MAC of a dashboard session: its id (the hash of its secret), its key, when it began and
    /// when it ends at the latest. `last_seen_at` is not covered (it changes on every use): a
    /// changed one can keep a session from idling out, never past its `expires_at`.
    pub fn session_mac(&self, s: &SessionRow) -> Vec<u8> {
        self.session_encoder(s).finish()
    }

    pub fn verify_session(&self, s: &SessionRow, mac: &[u8]) -> bool {
        self.session_encoder(s).verify(mac)
    }

    fn version_encoder(&self, v: &SecretVersion) -> Encoder {
        let mut e = Encoder::new(self, TABLE_SECRET_VERSIONS, &v.environment);
        e.str(&v.name)
            .i64(v.version as i64)
            .str(&v.sealed.key_id)
            .bytes(&v.sealed.nonce)
            .bytes(&v.sealed.ciphertext)
            .i64(v.value_len as i64)
            .i64(crate::records::to_millis(v.created_at))
            .str(&v.created_by);
        e
    }

    /// MAC of a kept version of a secret: environment, name, version number, the sealed value
    /// (data key, nonce, ciphertext, length), when and by whom it was set. A version renumbered,
    /// moved to another name or given another version's bytes no longer matches.
    pub fn version_mac(&self, v: &SecretVersion) -> Vec<u8> {
        self.version_encoder(v).finish()
    }

    pub fn verify_version(&self, v: &SecretVersion, mac: &[u8]) -> bool {
        self.version_encoder(v).verify(mac)
    }

    fn environment_encoder(
        &self,
        environment: &str,
        revision: u64,
        created_at: i64,
        secrets: &[EnvSecret<'_>],
    ) -> Encoder {
        let mut e = Encoder::new(self, TABLE_ENVIRONMENTS, environment);
        e.i64(revision as i64)
            .i64(created_at)
            .i64(secrets.len() as i64);
        // In byte order of the names, whatever order (collation) the database returned.
        let mut order: Vec<&EnvSecret<'_>> = secrets.iter().collect();
        order.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for s in order {
            let digest = Sha256::new()
                .chain_update(s.nonce)
                .chain_update(s.ciphertext)
                .finalize();
            let exposed: u8 = match s.exposed {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            };
            e.str(s.name).bytes(&digest).bytes(&[exposed]);
        }
        e
    }

    /// MAC of one revision of an environment: its name, revision and creation time, and for
    /// each secret its name, SHA-256(nonce ‖ ciphertext) and exposure. A deleted or added row, a
    /// flipped flag or an older ciphertext put back no longer matches.
    pub fn environment_mac(
        &self,
        environment: &str,
        revision: u64,
        created_at: i64,
        secrets: &[EnvSecret<'_>],
    ) -> Vec<u8> {
        self.environment_encoder(environment, revision, created_at, secrets)
            .finish()
    }

    pub fn verify_environment(
        &self,
        environment: &str,
        revision: u64,
        created_at: i64,
        secrets: &[EnvSecret<'_>],
        mac: &[u8],
    ) -> bool {
        self.environment_encoder(environment, revision, created_at, secrets)
            .verify(mac)
    }
}

/// A row that failed its check: logged (table and id, never a value or secret) and counted.
pub fn report_failure(table: &'static str, id: &str) {
    crate::metrics::METRICS.integrity_failures.inc();
    tracing::error!(
        table,
        id,
        "row failed its integrity check: it was changed outside runseald; it grants nothing (run `runseald verify`)"
    );
}

// Checking rows as the store reads them.

impl IntegrityRows {
    /// True when any row carries a MAC (an upgraded database).
    pub fn any_mac(&self) -> bool {
        self.keys.iter().any(|(_, m)| !m.is_empty())
            || self.tokens.iter().any(|(_, m)| !m.is_empty())
            || self.runners.iter().any(|(_, _, m)| !m.is_empty())
            || self.environments.iter().any(|(_, _, _, m)| !m.is_empty())
    }

    fn env_secrets<'a>(&'a self, env: &str) -> Vec<EnvSecret<'a>> {
        self.secrets
            .iter()
            .filter(|(e, _)| e == env)
            .map(|(_, s)| env_secret(s))
            .collect()
    }

    /// The rows whose MAC does not match, named `TABLE ID` (never a value or a secret).
    pub fn failures(&self, key: &IntegrityKey) -> Vec<String> {
        let mut bad = Vec::new();
        for (k, mac) in &self.keys {
            if !key.verify_key(k, mac) {
                bad.push(format!("{} {}", crate::integrity::TABLE_API_KEYS, k.id));
            }
        }
        for (t, mac) in &self.tokens {
            if !key.verify_token(t, mac) {
                bad.push(format!(
                    "{} {}",
                    crate::integrity::TABLE_RUNNER_TOKENS,
                    t.id
                ));
            }
        }
        for (n, r, mac) in &self.runners {
            if !key.verify_runner(r, mac) {
                bad.push(format!(
                    "{} {n} (runner {}, credential {})",
                    crate::integrity::TABLE_RUNNERS,
                    r.runner_id,
                    r.credential_id
                ));
            }
        }
        for (v, mac) in &self.versions {
            if !key.verify_version(v, mac) {
                bad.push(format!(
                    "{TABLE_SECRET_VERSIONS} {}/{} version {}",
                    v.environment, v.name, v.version
                ));
            }
        }
        for (name, revision, created_at, mac) in &self.environments {
            if !key.verify_environment(name, *revision, *created_at, &self.env_secrets(name), mac) {
                bad.push(format!(
                    "{} {name} (its secrets, exposure or revision)",
                    crate::integrity::TABLE_ENVIRONMENTS
                ));
            }
        }
        // A secret of an environment that does not exist.
        for (env, s) in &self.secrets {
            if !self.environments.iter().any(|(n, ..)| n == env) {
                bad.push(format!("secrets {env}/{} (no such environment)", s.name));
            }
        }
        bad
    }

    /// The MAC every environment should carry.
    pub fn environment_macs(&self, key: &IntegrityKey) -> Vec<(String, Vec<u8>)> {
        self.environments
            .iter()
            .map(|(name, revision, created_at, _)| {
                (
                    name.clone(),
                    key.environment_mac(name, *revision, *created_at, &self.env_secrets(name)),
                )
            })
            .collect()
    }
}

/// A sealed secret as the environment MAC sees it.
pub fn env_secret(s: &SealedSecret) -> EnvSecret<'_> {
    EnvSecret {
        name: &s.name,
        nonce: &s.sealed.nonce,
        ciphertext: &s.sealed.ciphertext,
        exposed: s.exposed,
    }
}

/// Checks rows read for a snapshot against their environment's MAC: DATA_LOSS naming the
/// environment when they do not match (logged and counted).
pub fn check_environment(
    key: &IntegrityKey,
    environment: &str,
    version: EnvironmentVersion,
    secrets: &[SealedSecret],
    mac: &[u8],
) -> Result<()> {
    let rows: Vec<EnvSecret<'_>> = secrets.iter().map(env_secret).collect();
    if key.verify_environment(
        environment,
        version.revision,
        version.created_at,
        &rows,
        mac,
    ) {
        Ok(())
    } else {
        Err(tampered(crate::integrity::TABLE_ENVIRONMENTS, environment))
    }
}

/// Logs and counts a row that failed its check; the error the caller returns.
pub fn tampered(table: &'static str, id: &str) -> StoreError {
    crate::integrity::report_failure(table, id);
    StoreError::Tampered {
        table,
        id: id.to_string(),
    }
}

/// A key row, if its MAC matches (else logged, counted, [`StoreError::Tampered`]).
pub fn checked_key(key: &IntegrityKey, row: KeyRow, mac: &[u8]) -> Result<KeyRow> {
    if key.verify_key(&row, mac) {
        Ok(row)
    } else {
        Err(tampered(crate::integrity::TABLE_API_KEYS, &row.id))
    }
}

/// A runner token row, if its MAC matches (else logged, counted, [`StoreError::Tampered`]).
pub fn checked_token(
    key: &IntegrityKey,
    row: RunnerTokenRow,
    mac: &[u8],
) -> Result<RunnerTokenRow> {
    if key.verify_token(&row, mac) {
        Ok(row)
    } else {
        Err(tampered(crate::integrity::TABLE_RUNNER_TOKENS, &row.id))
    }
}

/// The unwrapped integrity key a store computes and checks MACs with, set once the master key
/// has opened it ([`Store::set_integrity_key`]).
#[derive(Default)]
pub struct IntegrityCell(RwLock<Option<Arc<IntegrityKey>>>);

impl IntegrityCell {
    pub fn set(&self, key: Arc<IntegrityKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    /// The key; an error before it is set (nothing is granted without it).
    pub fn get(&self) -> Result<Arc<IntegrityKey>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Corrupt("the integrity key is not loaded yet".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn key_row() -> KeyRow {
        KeyRow {
            id: "rk_1".into(),
            secret_hash: vec![1; 32],
            label: "l".into(),
            scopes: "read:staging".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn every_granting_field_is_covered_and_others_are_not() {
        let k = IntegrityKey::generate();
        let row = key_row();
        let mac = k.key_mac(&row);
        assert!(k.verify_key(&row, &mac));
        assert!(!IntegrityKey::generate().verify_key(&row, &mac));
        let mut r = row.clone();
        r.scopes = "snapshot:production".into();
        assert!(!k.verify_key(&r, &mac));
        let mut r = row.clone();
        r.id = "rk_2".into();
        assert!(!k.verify_key(&r, &mac));
        let mut r = row.clone();
        r.revoked_at = Some(OffsetDateTime::UNIX_EPOCH);
        assert!(!k.verify_key(&r, &mac));
        // Not granting: the label and the last use.
        let mut r = row.clone();
        r.label = "other".into();
        r.last_used_at = Some(OffsetDateTime::now_utc());
        assert!(k.verify_key(&r, &mac));
        assert!(!k.verify_key(&row, &mac[..31]));
    }

    #[test]
    fn environment_mac_sees_rows_flags_and_ciphertexts() {
        let k = IntegrityKey::generate();
        let a = EnvSecret {
            name: "A",
            nonce: b"n1",
            ciphertext: b"c1",
            exposed: None,
        };
        let b = EnvSecret {
            name: "B",
            nonce: b"n2",
            ciphertext: b"c2",
            exposed: Some(false),
        };
        let mac = k.environment_mac("prod", 3, 7, &[a, b]);
        let rows = |exposed, ct: &'static [u8]| {
            [
                EnvSecret {
                    name: "B",
                    nonce: b"n2",
                    ciphertext: ct,
                    exposed,
                },
                EnvSecret {
                    name: "A",
                    nonce: b"n1",
                    ciphertext: b"c1",
                    exposed: None,
                },
            ]
        };
        // Any order of rows.
        assert!(k.verify_environment("prod", 3, 7, &rows(Some(false), b"c2"), &mac));
        assert!(!k.verify_environment("prod", 3, 7, &rows(Some(true), b"c2"), &mac));
        assert!(!k.verify_environment("prod", 3, 7, &rows(Some(false), b"c0"), &mac));
        assert!(!k.verify_environment("prod", 4, 7, &rows(Some(false), b"c2"), &mac));
        assert!(!k.verify_environment("prod", 3, 7, &rows(Some(false), b"c2")[..1], &mac));
        assert!(!k.verify_environment("staging", 3, 7, &rows(Some(false), b"c2"), &mac));
    }
}
