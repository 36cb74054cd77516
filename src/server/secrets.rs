//! `runseal.v1.Secrets`: set (atomic batches), unset and list names. Values enter here, are
//! checked and sealed at once, and never leave through this service.

use std::collections::HashSet;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    audit_record, environment_of, invalid, require, seal_status, store_status, timestamp, State,
};
use crate::auth::Scope;
use crate::names::{check_value, InvalidInput};
use crate::proto::v1::{self, secrets_server::Secrets};
use crate::secret::SecretBytes;
use crate::store::SealedSecret;

pub struct SecretsService {
    state: Arc<State>,
}

impl SecretsService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn set_secrets(
        &self,
        request: Request<v1::SetSecretsRequest>,
    ) -> Result<Response<v1::SetSecretsResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = environment_of(&req.environment)?;
        require(&principal, Scope::Write(env.clone()))?;
        if req.secrets.is_empty() {
            return Err(invalid(&InvalidInput::EmptyBatch));
        }
        // Every rule is checked for the whole batch before anything is sealed or stored.
        let mut seen = HashSet::new();
        let mut values = Vec::with_capacity(req.secrets.len());
        for s in req.secrets {
            let value = SecretBytes::new(s.value);
            self.state
                .policy
                .check_secret_name(&s.name)
                .map_err(|e| invalid(&e))?;
            if !seen.insert(s.name.clone()) {
                return Err(invalid(&InvalidInput::DuplicateName(s.name)));
            }
            check_value(&s.name, value.expose(), &self.state.limits).map_err(|e| invalid(&e))?;
            values.push((s.name, value));
        }
        let mut sealed = Vec::with_capacity(values.len());
        for (name, value) in &values {
            sealed.push(SealedSecret {
                name: name.clone(),
                sealed: self
                    .state
                    .sealer
                    .seal(&env, name, value)
                    .map_err(|e| seal_status(&e))?,
                value_len: value.len() as u64,
                exposed: req.exposed_by_default,
            });
        }
        drop(values);
        let names = sealed.iter().map(|s| s.name.clone()).collect();
        let audit = audit_record(&principal, "secrets.set", Some(&env), names);
        let revision = self
            .state
            .store
            .set_secrets(&env, sealed, &self.state.limits, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %env, revision, "secrets set");
        Ok(Response::new(v1::SetSecretsResponse { revision }))
    }

    async fn unset_secret(
        &self,
        request: Request<v1::UnsetSecretRequest>,
    ) -> Result<Response<v1::UnsetSecretResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = environment_of(&req.environment)?;
        require(&principal, Scope::Write(env.clone()))?;
        crate::names::check_secret_name_syntax(&req.name).map_err(|e| invalid(&e))?;
        let audit = audit_record(
            &principal,
            "secrets.unset",
            Some(&env),
            vec![req.name.clone()],
        );
        let revision = self
            .state
            .store
            .unset_secret(&env, &req.name, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %env, name = %req.name, revision, "secret unset");
        Ok(Response::new(v1::UnsetSecretResponse { revision }))
    }

    async fn list_secrets(
        &self,
        request: Request<v1::ListSecretsRequest>,
    ) -> Result<Response<v1::ListSecretsResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let env = environment_of(&request.get_ref().environment)?;
        require(&principal, Scope::Read(env.clone()))?;
        let (revision, rows) = self
            .state
            .store
            .list_secrets(&env)
            .await
            .map_err(|e| store_status(&e))?;
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
