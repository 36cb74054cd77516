//! Sealing of secret values: envelope encryption with XChaCha20-Poly1305.
//!
//! Each value is encrypted under a *data key* with a fresh random 192-bit nonce; the associated
//! data binds the environment, the secret name and the data key id, so a ciphertext copied into
//! another row fails to open. Data keys are stored wrapped (AEAD-encrypted) by the *master key*,
//! which lives only in the master key file. A key check value (an HMAC of a fixed label under the
//! master key) lets runseald refuse a wrong master key before serving anything.
//!
//! This module never logs, and its errors never carry key material or plaintext.

use std::collections::HashMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;

const CHECK_LABEL: &[u8] = b"runseal/master-key-check/v1";
const WRAP_AAD: &[u8] = b"runseal/data-key/v1";
const SEAL_AAD: &[u8] = b"runseal/secret/v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be exactly {KEY_LEN} bytes, found {0}")]
    MasterKeyLength(usize),
    #[error("data key {0} does not open with this master key")]
    DataKeyUnwrap(String),
    #[error("data key {0} is unknown")]
    UnknownDataKey(String),
    #[error("sealed value of {environment}/{name} failed its integrity check (tampered, moved or corrupt)")]
    Tampered { environment: String, name: String },
    #[error("encryption failed")]
    Encrypt,
}

/// The key that wraps the data keys. 32 random bytes, zeroized on drop, never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::MasterKeyLength(bytes.len()));
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(bytes);
        Ok(Self(k))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// HMAC-SHA256 of a fixed label under this key: stored in the database so that a wrong key
    /// is detected at start. It reveals nothing about the key.
    pub fn check_value(&self) -> [u8; 32] {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(CHECK_LABEL);
        mac.finalize().into_bytes().into()
    }

    /// A short public identifier of this key (the first 8 bytes of its check value).
    pub fn id(&self) -> String {
        hex::encode(&self.check_value()[..8])
    }

    /// True when `stored` is this key's check value (constant-time).
    pub fn matches_check_value(&self, stored: &[u8]) -> bool {
        bool::from(self.check_value().as_slice().ct_eq(stored))
    }

    /// Wraps a data key: `nonce || ciphertext`, bound to the data key id.
    pub fn wrap(&self, data_key_id: &str, key: &DataKey) -> Result<Vec<u8>, SealError> {
        let aad = framed(&[WRAP_AAD, data_key_id.as_bytes()]);
        let (nonce, ct) = encrypt(&self.0, key.0.as_ref(), &aad)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Wraps the integrity key exactly as a data key, under its own id
    /// ([`crate::integrity::INTEGRITY_KEY_ID`]), so a rotation re-wraps it with the others.
    pub fn wrap_integrity_key(
        &self,
        key: &crate::integrity::IntegrityKey,
    ) -> Result<Vec<u8>, SealError> {
        self.wrap(
            crate::integrity::INTEGRITY_KEY_ID,
            &DataKey(Zeroizing::new(*key.expose())),
        )
    }

    pub fn unwrap_integrity_key(
        &self,
        wrapped: &[u8],
    ) -> Result<crate::integrity::IntegrityKey, SealError> {
        let k = self.unwrap_key(crate::integrity::INTEGRITY_KEY_ID, wrapped)?;
        Ok(crate::integrity::IntegrityKey::from_bytes(&k.0))
    }

    pub fn unwrap_key(&self, data_key_id: &str, wrapped: &[u8]) -> Result<DataKey, SealError> {
        let fail = || SealError::DataKeyUnwrap(data_key_id.to_string());
        if wrapped.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ct) = wrapped.split_at(NONCE_LEN);
        let aad = framed(&[WRAP_AAD, data_key_id.as_bytes()]);
        let plain = Zeroizing::new(decrypt(&self.0, nonce, ct, &aad).ok_or_else(fail)?);
        if plain.len() != KEY_LEN {
            return Err(fail());
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(&plain);
        Ok(DataKey(k))
    }
}

/// A key that encrypts values. Lives unwrapped only in runseald's memory.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(k.as_mut());
        Self(k)
    }
}

/// A new random data key id (public; recorded in every row sealed under the key).
pub fn new_data_key_id() -> String {
    let mut b = [0u8; 8];
    OsRng.fill_bytes(&mut b);
    format!("dk_{}", hex::encode(b))
}

/// A sealed value as stored: which data key, the nonce and the ciphertext (with its tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Seals and opens values with the unwrapped data keys; new values use the active one.
pub struct Sealer {
    active: String,
    keys: HashMap<String, DataKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("active", &self.active)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Sealer {
    pub fn new(active: String, keys: HashMap<String, DataKey>) -> Result<Self, SealError> {
        if !keys.contains_key(&active) {
            return Err(SealError::UnknownDataKey(active));
        }
        Ok(Self { active, keys })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    pub fn seal(
        &self,
        environment: &str,
        name: &str,
        value: &SecretBytes,
    ) -> Result<Sealed, SealError> {
        let key = &self.keys[&self.active];
        let aad = secret_aad(environment, name, &self.active);
        let (nonce, ciphertext) = encrypt(&key.0, value.expose(), &aad)?;
        Ok(Sealed {
            key_id: self.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(
        &self,
        environment: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<SecretBytes, SealError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownDataKey(sealed.key_id.clone()))?;
        let aad = secret_aad(environment, name, &sealed.key_id);
        decrypt(&key.0, &sealed.nonce, &sealed.ciphertext, &aad)
            .map(SecretBytes::new)
            .ok_or_else(|| SealError::Tampered {
                environment: environment.to_string(),
                name: name.to_string(),
            })
    }
}

fn secret_aad(environment: &str, name: &str, key_id: &str) -> Vec<u8> {
    framed(&[
        SEAL_AAD,
        environment.as_bytes(),
        name.as_bytes(),
        key_id.as_bytes(),
    ])
}

/// Length-prefixed concatenation, so ("ab","c") and ("a","bc") never give the same bytes.
fn framed(parts: &[&[u8]]) -> Vec<u8> {
    // Sized once: runseald frames the associated data of every secret of every snapshot.
    let mut out = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn encrypt(
    key: &[u8; KEY_LEN],
    msg: &[u8],
    aad: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, Payload { msg, aad })
        .map_err(|_| SealError::Encrypt)?;
    Ok((nonce.into(), ct))
}

/// The plaintext goes straight into a zeroizing buffer.
fn decrypt(key: &[u8; KEY_LEN], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        let id = new_data_key_id();
        Sealer::new(id.clone(), HashMap::from([(id, DataKey::generate())])).unwrap()
    }

    #[test]
    fn seal_open_roundtrip_with_fresh_nonces() {
        let s = sealer();
        let v = SecretBytes::new(b"tok".to_vec());
        let a = s.seal("main", "HF_TOKEN", &v).unwrap();
        let b = s.seal("main", "HF_TOKEN", &v).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(s.open("main", "HF_TOKEN", &a).unwrap().expose(), b"tok");
    }

    #[test]
    fn ciphertext_is_bound_to_environment_and_name() {
        let s = sealer();
        let a = s
            .seal("main", "A", &SecretBytes::new(b"x".to_vec()))
            .unwrap();
        assert!(matches!(
            s.open("main", "B", &a),
            Err(SealError::Tampered { .. })
        ));
        assert!(matches!(
            s.open("staging", "A", &a),
            Err(SealError::Tampered { .. })
        ));
    }

    #[test]
    fn wrong_master_key_is_detected() {
        let m = MasterKey::generate();
        let other = MasterKey::generate();
        assert!(m.matches_check_value(&m.check_value()));
        assert!(!other.matches_check_value(&m.check_value()));
        let dk = DataKey::generate();
        let wrapped = m.wrap("dk_1", &dk).unwrap();
        assert!(m.unwrap_key("dk_1", &wrapped).is_ok());
        assert!(other.unwrap_key("dk_1", &wrapped).is_err());
        assert!(m.unwrap_key("dk_2", &wrapped).is_err());
    }
}
