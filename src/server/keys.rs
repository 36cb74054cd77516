//! `runseal.v1.Keys` (admin only): create (the secret is returned once), list, revoke.

use std::sync::Arc;

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{audit_record, require, store_status, timestamp, State};
use crate::auth::{format_scopes, generate_key, parse_scopes, Scope};
use crate::proto::v1::{self, keys_server::Keys};
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

pub struct KeysService {
    state: Arc<State>,
}

impl KeysService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

fn to_proto(k: &KeyRow) -> v1::KeyInfo {
    v1::KeyInfo {
        key_id: k.id.clone(),
        label: k.label.clone(),
        scopes: parse_scopes(&k.scopes)
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        created_at: Some(timestamp(k.created_at)),
        last_used_at: k.last_used_at.map(timestamp),
        revoked_at: k.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn create_key(
        &self,
        request: Request<v1::CreateKeyRequest>,
    ) -> Result<Response<v1::CreateKeyResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let req = request.into_inner();
        if req.scopes.is_empty() {
            return Err(Status::invalid_argument(
                "scopes: give at least one of admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV",
            ));
        }
        let mut scopes = req
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        scopes.sort();
        scopes.dedup();
        if req.label.chars().count() > MAX_LABEL || !req.label.chars().all(label_char) {
            return Err(Status::invalid_argument(format!(
                "label: at most {MAX_LABEL} characters, without control characters, bidirectional overrides or invisible formatting characters"
            )));
        }
        let cred = generate_key();
        let row = KeyRow {
            id: cred.key_id().to_string(),
            secret_hash: cred.secret_hash().to_vec(),
            label: req.label,
            scopes: format_scopes(&scopes),
            created_at: OffsetDateTime::now_utc(),
            last_used_at: None,
            revoked_at: None,
        };
        let audit = audit_record(&principal, "key.create", None, vec![row.id.clone()]);
        self.state
            .store
            .insert_key(row.clone(), audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, new_key_id = %row.id, scopes = %row.scopes, "key created");
        Ok(Response::new(v1::CreateKeyResponse {
            key: Some(to_proto(&row)),
            credential: cred.to_line().to_string(),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let keys = self
            .state
            .store
            .list_keys()
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(v1::ListKeysResponse {
            keys: keys.iter().map(to_proto).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<v1::RevokeKeyRequest>,
    ) -> Result<Response<v1::RevokeKeyResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let id = request.into_inner().key_id;
        if id.is_empty() || id.len() > 128 {
            return Err(Status::invalid_argument(
                "key_id: give the id of a key (rk_…)",
            ));
        }
        let audit = audit_record(&principal, "key.revoke", None, vec![id.clone()]);
        let runner_tokens_revoked = self
            .state
            .store
            .revoke_key(&id, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, revoked = %id, runner_tokens_revoked, "key revoked with the runner tokens it minted");
        Ok(Response::new(v1::RevokeKeyResponse {
            runner_tokens_revoked,
        }))
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
