//! Keys (admin only): create (the secret is returned once), list, revoke.

use super::{require, Result, Service, ServiceError};
use crate::auth::{format_scopes, generate_key, Credential, Principal, Scope};
use crate::store::KeyRow;

const MAX_LABEL: usize = 200;

/// Whether a character may appear in a key label. Labels are shown in `keys list` and the audit
/// log, so nothing that can move the cursor or reorder what a terminal shows: no control
/// characters, no bidirectional marks, embeddings, overrides or isolates (U+061C, U+200E/F,
/// U+202A–202E, U+2066–2069), no zero-width or invisible formatting characters (U+200B–200D,
/// U+2060–2064, U+FEFF), no line or paragraph separators (U+2028/2029).
pub fn label_char(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// The rule of key labels (also `runseald recover-admin --label`); the refusal says what is
/// allowed.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.chars().count() > MAX_LABEL || !label.chars().all(label_char) {
        return Err(format!(
            "label: at most {MAX_LABEL} characters, without control characters, bidirectional overrides or invisible formatting characters"
        ));
    }
    Ok(())
}

impl Service {
    /// A new key with these scopes: its stored row and the credential, shown once.
    pub async fn create_key(
        &self,
        principal: &Principal,
        scopes: &[String],
        label: String,
    ) -> Result<(KeyRow, Credential)> {
        require(principal, Scope::Admin)?;
        if scopes.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "scopes: give at least one of admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV"
                    .into(),
            ));
        }
        let mut scopes = scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        scopes.sort();
        scopes.dedup();
        // A scope of an environment that does not exist is a typo, or one that a later
        // environment of that name would inherit: refused.
        for scope in &scopes {
            if let Some(env) = scope.environment() {
                if self.store.environment(env).await?.is_none() {
                    return Err(ServiceError::InvalidArgument(format!(
                        "scope {scope}: environment {env:?} does not exist; create it first with `runseal env create {env}`"
                    )));
                }
            }
        }
        check_label(&label).map_err(ServiceError::InvalidArgument)?;
        let cred = generate_key();
        let row = KeyRow {
            id: cred.key_id().to_string(),
            secret_hash: cred.secret_hash().to_vec(),
            label,
            scopes: format_scopes(&scopes),
            created_at: self.now(),
            last_used_at: None,
            revoked_at: None,
        };
        let audit = self.audit(principal, "key.create", None, vec![row.id.clone()]);
        self.store.insert_key(row.clone(), audit).await?;
        tracing::info!(key_id = %principal.key_id, new_key_id = %row.id, scopes = %row.scopes, "key created");
        Ok((row, cred))
    }

    /// The calling key's own row (any valid key): its id, label and scopes.
    pub async fn who_am_i(&self, principal: &Principal) -> Result<KeyRow> {
        let row = self.store.key(&principal.key_id).await?;
        row.ok_or_else(|| ServiceError::Unauthenticated("invalid key: unknown key id".into()))
    }

    pub async fn list_keys(&self, principal: &Principal) -> Result<Vec<KeyRow>> {
        require(principal, Scope::Admin)?;
        Ok(self.store.list_keys().await?)
    }

    /// Revokes a key with the runner tokens it minted; returns how many tokens that revoked.
    pub async fn revoke_key(&self, principal: &Principal, id: String) -> Result<u64> {
        require(principal, Scope::Admin)?;
        if id.is_empty() || id.len() > 128 {
            return Err(ServiceError::InvalidArgument(
                "key_id: give the id of a key (rk_…)".into(),
            ));
        }
        let audit = self.audit(principal, "key.revoke", None, vec![id.clone()]);
        let revoked = self.store.revoke_key(&id, audit).await?;
        tracing::info!(key_id = %principal.key_id, revoked = %id, runner_tokens_revoked = revoked, "key revoked with the runner tokens it minted");
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::label_char;

    #[test]
    fn labels_refuse_control_bidi_and_invisible_characters() {
        for bad in [
            '\n', '\u{1b}', '\u{7f}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
            '\u{200B}', '\u{FEFF}', '\u{2028}',
        ] {
            assert!(!label_char(bad), "{:04X}", bad as u32);
        }
        for good in "CI deploy key — Zürich, 東京 (prod) #2".chars() {
            assert!(label_char(good), "{good}");
        }
    }
}
