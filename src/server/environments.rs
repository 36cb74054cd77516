//! `runseal.v1.Environments`: list (what the key may see), create and delete (admin).
//!
//! The operations ([`list`], [`create`], [`delete`]) are shared with the fal compatibility
//! service (`server::fal`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{audit_record, invalid, require, timestamp, Failure, State};
use crate::auth::{Principal, Scope};
use crate::names::check_environment_name;
use crate::proto::v1::{self, environments_server::Environments};
use crate::store::EnvironmentRow;

pub struct EnvironmentsService {
    state: Arc<State>,
}

impl EnvironmentsService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

fn to_proto(e: EnvironmentRow) -> v1::Environment {
    v1::Environment {
        name: e.name,
        revision: e.revision,
        secret_count: e.secret_count as u32,
        created_at: Some(timestamp(e.created_at)),
    }
}

/// The environments this key may see.
pub(super) async fn list(
    state: &State,
    principal: &Principal,
) -> Result<Vec<EnvironmentRow>, Failure> {
    Ok(state
        .store
        .list_environments()
        .await?
        .into_iter()
        .filter(|e| principal.sees_environment(&e.name))
        .collect())
}

pub(super) async fn create(
    state: &State,
    principal: &Principal,
    name: &str,
) -> Result<EnvironmentRow, Failure> {
    require(principal, Scope::Admin)?;
    check_environment_name(name).map_err(|e| invalid(&e))?;
    let audit = audit_record(principal, "environment.create", Some(name), vec![]);
    let row = state.store.create_environment(name, audit).await?;
    tracing::info!(key_id = %principal.key_id, environment = %name, "environment created");
    Ok(row)
}

/// Deletes an environment; with `force`, also the secrets it holds. Returns how many were
/// deleted with it.
pub(super) async fn delete(
    state: &State,
    principal: &Principal,
    name: &str,
    force: bool,
) -> Result<u64, Failure> {
    require(principal, Scope::Admin)?;
    check_environment_name(name).map_err(|e| invalid(&e))?;
    let audit = audit_record(principal, "environment.delete", Some(name), vec![]);
    let deleted = state.store.delete_environment(name, force, audit).await?;
    tracing::info!(key_id = %principal.key_id, environment = %name, deleted, "environment deleted");
    Ok(deleted)
}

#[tonic::async_trait]
impl Environments for EnvironmentsService {
    async fn list_environments(
        &self,
        request: Request<v1::ListEnvironmentsRequest>,
    ) -> Result<Response<v1::ListEnvironmentsResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let environments = list(&self.state, &principal)
            .await?
            .into_iter()
            .map(to_proto)
            .collect();
        Ok(Response::new(v1::ListEnvironmentsResponse { environments }))
    }

    async fn create_environment(
        &self,
        request: Request<v1::CreateEnvironmentRequest>,
    ) -> Result<Response<v1::CreateEnvironmentResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let row = create(&self.state, &principal, &request.into_inner().name).await?;
        Ok(Response::new(v1::CreateEnvironmentResponse {
            environment: Some(to_proto(row)),
        }))
    }

    async fn delete_environment(
        &self,
        request: Request<v1::DeleteEnvironmentRequest>,
    ) -> Result<Response<v1::DeleteEnvironmentResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let deleted = delete(&self.state, &principal, &req.name, req.force).await?;
        Ok(Response::new(v1::DeleteEnvironmentResponse {
            deleted_secrets: deleted as u32,
        }))
    }
}
