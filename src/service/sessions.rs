//! Dashboard sessions: a sign-in with a key starts one, each request through the dashboard
//! names one by its secret (the cookie), and it ends on sign-out, when idle too long, at its
//! absolute expiry, or when its key is revoked. Only the SHA-256 of a session's secret is
//! stored, with a MAC (a row written outside runseald grants nothing); a session acts with its
//! key's scopes as they are at each request.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::auth::principal_of;
use super::{Result, Service, ServiceError};
use crate::auth::{Credential, Principal};
use crate::store::SessionRow;

/// The front-end name a session's changes are audited with.
pub const DASHBOARD: &str = "dashboard";
/// `last_seen_at` is written at most this often per session, so page views do not all write.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(30);

/// How long a session lasts: `idle` after its last request, `absolute` after its sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// A session just started: its secret (for the cookie, shown to nobody else) and its key.
pub struct NewSession {
    pub secret: SecretString,
    pub principal: Principal,
    pub expires_at: OffsetDateTime,
}

/// The stored id of a session secret.
fn session_id(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn signed_out() -> ServiceError {
    ServiceError::Unauthenticated("your session has ended; sign in again".into())
}

fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl Service {
    /// Checks `cred` exactly as the gRPC API does, then starts a session for its key.
    pub async fn sign_in(&self, cred: &Credential) -> Result<NewSession> {
        let mut principal = self.authenticate(cred).await?;
        principal.via = Some(DASHBOARD);
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let secret = SecretString::from(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        );
        let now = self.now();
        let row = SessionRow {
            id: session_id(secret.expose_secret()),
            key_id: principal.key_id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + span(self.session_limits.absolute),
        };
        let expires_at = row.expires_at;
        let audit = self.audit(&principal, "web.sign_in", None, vec![]);
        self.store.insert_session(row, audit).await?;
        tracing::info!(key_id = %principal.key_id, "dashboard sign-in");
        Ok(NewSession {
            secret,
            principal,
            expires_at,
        })
    }

    /// The principal a session acts as now: UNAUTHENTICATED when it is unknown, expired
    /// (idle or absolute) or its key is revoked; an ended session is deleted.
    pub async fn session(&self, secret: &str) -> Result<Principal> {
        let id = session_id(secret);
        let row = self.store.session(&id).await?.ok_or_else(signed_out)?;
        let now = self.now();
        let idle = now - row.last_seen_at >= span(self.session_limits.idle);
        if idle || now >= row.expires_at {
            self.store.delete_session(&id, None).await?;
            return Err(ServiceError::Unauthenticated(
                "your session has expired; sign in again".into(),
            ));
        }
        let key = self.store.key(&row.key_id).await?;
        let principal = match key.map(principal_of) {
            Some(Ok(p)) => p,
            Some(Err(ServiceError::Unauthenticated(_))) | None => {
                self.store.delete_session(&id, None).await?;
                return Err(ServiceError::Unauthenticated(format!(
                    "key {} has been revoked; sign in with another key",
                    row.key_id
                )));
            }
            Some(Err(e)) => return Err(e),
        };
        if now - row.last_seen_at >= TOUCH_INTERVAL {
            self.store.touch_session(&id, now).await?;
        }
        Ok(Principal {
            via: Some(DASHBOARD),
            ..principal
        })
    }

    /// Ends the session (sign-out), audited; an unknown session is already ended.
    pub async fn sign_out(&self, secret: &str) -> Result<()> {
        let id = session_id(secret);
        if let Some(row) = self.store.session(&id).await.ok().flatten() {
            let p = Principal {
                key_id: row.key_id,
                scopes: vec![],
                via: Some(DASHBOARD),
            };
            let audit = self.audit(&p, "web.sign_out", None, vec![]);
            self.store.delete_session(&id, Some(audit)).await?;
        }
        Ok(())
    }
}
