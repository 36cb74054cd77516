//! `runseal.v1.Secrets`: set (atomic batches), unset and list names. Values enter here, are
//! checked and sealed at once, and never leave through this service.
//!
//! The operations themselves ([`set`], [`unset`], [`list`]) are shared with the fal
//! compatibility service (`server::fal`), so both APIs apply the same scopes, rules and audit.

use std::collections::HashSet;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    audit_record, environment_of, invalid, require, seal_status, timestamp, Failure, State,
};
use crate::auth::{Principal, Scope};
use crate::names::{check_value, InvalidInput};
use crate::proto::v1::{self, secrets_server::Secrets};
use crate::secret::SecretBytes;
use crate::store::{SealedSecret, SecretMeta};

pub struct SecretsService {
    state: Arc<State>,
}

impl SecretsService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

/// Checks every rule for the whole batch, then seals and stores it in one transaction; returns
/// the environment's new revision. `env` is an already validated environment name; `exposed`
/// is the tri-state exposure (`None`: server default for new secrets, unchanged for existing).
pub(super) async fn set(
    state: &State,
    principal: &Principal,
    env: &str,
    batch: Vec<(String, SecretBytes)>,
    exposed: Option<bool>,
) -> Result<u64, Failure> {
    require(principal, Scope::Write(env.to_string()))?;
    if batch.is_empty() {
        return Err(invalid(&InvalidInput::EmptyBatch).into());
    }
    // Every rule is checked for the whole batch before anything is sealed or stored.
    let mut seen = HashSet::new();
    for (name, value) in &batch {
        state
            .policy
            .check_secret_name(name)
            .map_err(|e| invalid(&e))?;
        if !seen.insert(name.as_str()) {
            return Err(invalid(&InvalidInput::DuplicateName(name.clone())).into());
        }
        check_value(name, value.expose(), &state.limits).map_err(|e| invalid(&e))?;
    }
    let mut sealed = Vec::with_capacity(batch.len());
    for (name, value) in &batch {
        sealed.push(SealedSecret {
            name: name.clone(),
            sealed: state
                .sealer
                .seal(env, name, value)
                .map_err(|e| seal_status(&e))?,
            value_len: value.len() as u64,
            exposed,
        });
    }
    drop(batch);
    let names = sealed.iter().map(|s| s.name.clone()).collect();
    let audit = audit_record(principal, "secrets.set", Some(env), names);
    let revision = state
        .store
        .set_secrets(env, sealed, &state.limits, audit)
        .await?;
    tracing::info!(key_id = %principal.key_id, environment = %env, revision, "secrets set");
    Ok(revision)
}

/// Removes one secret (NOT_FOUND when it is not set); returns the new revision.
pub(super) async fn unset(
    state: &State,
    principal: &Principal,
    env: &str,
    name: &str,
) -> Result<u64, Failure> {
    require(principal, Scope::Write(env.to_string()))?;
    crate::names::check_secret_name_syntax(name).map_err(|e| invalid(&e))?;
    let audit = audit_record(
        principal,
        "secrets.unset",
        Some(env),
        vec![name.to_string()],
    );
    let revision = state.store.unset_secret(env, name, audit).await?;
    tracing::info!(key_id = %principal.key_id, environment = %env, name = %name, revision, "secret unset");
    Ok(revision)
}

/// The revision and the metadata (never values) of one environment's secrets.
pub(super) async fn list(
    state: &State,
    principal: &Principal,
    env: &str,
) -> Result<(u64, Vec<SecretMeta>), Failure> {
    require(principal, Scope::Read(env.to_string()))?;
    Ok(state.store.list_secrets(env).await?)
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn set_secrets(
        &self,
        request: Request<v1::SetSecretsRequest>,
    ) -> Result<Response<v1::SetSecretsResponse>, Status> {
        let mut request = request;
        let cred = super::credential_of(&request);
        let verified = super::verified(&mut request);
        let req = request.into_inner();
        // Into zeroizing buffers first, so no early return, not even a refused key, leaves
        // plaintext behind.
        let batch = req
            .secrets
            .into_iter()
            .map(|s| (s.name, SecretBytes::new(s.value)))
            .collect();
        let principal = self.state.authenticate_verified(verified, &cred?).await?;
        let env = environment_of(&req.environment)?;
        let revision = set(&self.state, &principal, &env, batch, req.exposed_by_default).await?;
        Ok(Response::new(v1::SetSecretsResponse { revision }))
    }

    async fn unset_secret(
        &self,
        request: Request<v1::UnsetSecretRequest>,
    ) -> Result<Response<v1::UnsetSecretResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = environment_of(&req.environment)?;
        let revision = unset(&self.state, &principal, &env, &req.name).await?;
        Ok(Response::new(v1::UnsetSecretResponse { revision }))
    }

    async fn list_secrets(
        &self,
        request: Request<v1::ListSecretsRequest>,
    ) -> Result<Response<v1::ListSecretsResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let env = environment_of(&request.get_ref().environment)?;
        let (revision, rows) = list(&self.state, &principal, &env).await?;
        let secrets = rows
            .into_iter()
            .map(|m| v1::SecretInfo {
                name: m.name,
                environment: m.environment,
                created_at: Some(timestamp(m.created_at)),
                updated_at: Some(timestamp(m.updated_at)),
                exposed_by_default: m.exposed,
            })
            .collect();
        Ok(Response::new(v1::ListSecretsResponse { secrets, revision }))
    }
}
