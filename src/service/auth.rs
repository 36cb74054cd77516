//! Verification of credentials: a key (`rk_…`) becomes a [`Principal`] with its scopes, a
//! runner token (`rt_…`) its stored row. Every front-end checks a credential here and nowhere
//! else; parsing it out of a request (headers, a form) is the front-end's part.

use time::Duration;

use super::{Result, Service, ServiceError};
use crate::auth::{parse_scopes, Credential, Principal, Scope};
use crate::store::RunnerTokenRow;

/// `last_used_at` is written at most this often per key, so reads do not become writes.
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

/// `PERMISSION_DENIED` naming the missing scope.
pub fn require(p: &Principal, needed: Scope) -> Result<()> {
    if p.allows(&needed) {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied(format!(
            "key {} lacks the scope {needed}",
            p.key_id
        )))
    }
}

/// The principal of a stored key that is not revoked.
pub(super) fn principal_of(row: crate::store::KeyRow) -> Result<Principal> {
    if row.revoked_at.is_some() {
        return Err(ServiceError::Unauthenticated(format!(
            "key {} has been revoked",
            row.id
        )));
    }
    let scopes = parse_scopes(&row.scopes).map_err(|e| {
        tracing::error!(key_id = %row.id, error = %e, "stored key has unreadable scopes");
        ServiceError::Internal("stored key is unreadable; see the server log")
    })?;
    Ok(Principal {
        key_id: row.id,
        scopes,
        via: None,
    })
}

fn invalid_token() -> ServiceError {
    ServiceError::Unauthenticated("invalid runner token: unknown id or wrong secret".into())
}

impl Service {
    /// The principal of a key: it exists, its secret matches and it is not revoked (scopes are
    /// the operation's to check). A runner token is refused: it only fetches.
    pub async fn authenticate(&self, cred: &Credential) -> Result<Principal> {
        if cred.is_runner_token() {
            return Err(ServiceError::Unauthenticated(format!(
                "{} is a runner token: it only fetches a snapshot (runseal-agent); this call needs a key (rk_…, `runseal keys create`)",
                cred.key_id()
            )));
        }
        let invalid =
            || ServiceError::Unauthenticated("invalid key: unknown key id or wrong secret".into());
        let row = self.store.key(cred.key_id()).await?.ok_or_else(invalid)?;
        if !cred.matches_hash(&row.secret_hash) {
            return Err(invalid());
        }
        let principal = principal_of(row)?;
        self.touch(&principal.key_id).await;
        Ok(principal)
    }

    /// The row of a runner token whose id exists and whose secret matches. Revocation,
    /// expiry, uses and purpose are checked when it is redeemed ([`Service::fetch`]).
    pub async fn verify_runner_token(&self, cred: &Credential) -> Result<RunnerTokenRow> {
        let row = self
            .store
            .runner_token(cred.key_id())
            .await?
            .filter(|row| cred.matches_hash(&row.secret_hash));
        row.ok_or_else(|| {
            crate::metrics::METRICS.tokens_refused.inc();
            invalid_token()
        })
    }

    /// A runner token's row: `verified` when the caller already read it for `cred`, else read
    /// now; the secret is checked either way.
    pub(super) async fn token_row(
        &self,
        cred: &Credential,
        verified: Option<RunnerTokenRow>,
    ) -> Result<RunnerTokenRow> {
        let row = match verified.filter(|row| row.id == cred.key_id()) {
            Some(row) => row,
            None => self
                .store
                .runner_token(cred.key_id())
                .await?
                .ok_or_else(invalid_token)?,
        };
        if !cred.matches_hash(&row.secret_hash) {
            return Err(invalid_token());
        }
        Ok(row)
    }

    /// Records that a key was used, at most once per [`TOUCH_INTERVAL`]; a failure is logged
    /// and does not refuse the call.
    async fn touch(&self, key_id: &str) {
        let now = self.now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            match touched.get(key_id) {
                Some(t) if now - *t < TOUCH_INTERVAL => return,
                _ => {
                    touched.insert(key_id.to_string(), now);
                }
            }
        }
        if let Err(e) = self.store.touch_key(key_id, now).await {
            tracing::warn!(key_id, error = %e, "could not record key use");
        }
    }
}
