//! `runseal.v1.Environments`: list (what the key may see), create and delete (admin).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{audit_record, invalid, require, store_status, timestamp, State};
use crate::auth::Scope;
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

#[tonic::async_trait]
impl Environments for EnvironmentsService {
    async fn list_environments(
        &self,
        request: Request<v1::ListEnvironmentsRequest>,
    ) -> Result<Response<v1::ListEnvironmentsResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let environments = self
            .state
            .store
            .list_environments()
            .await
            .map_err(|e| store_status(&e))?
            .into_iter()
            .filter(|e| principal.sees_environment(&e.name))
            .map(to_proto)
            .collect();
        Ok(Response::new(v1::ListEnvironmentsResponse { environments }))
    }

    async fn create_environment(
        &self,
        request: Request<v1::CreateEnvironmentRequest>,
    ) -> Result<Response<v1::CreateEnvironmentResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let name = request.into_inner().name;
        check_environment_name(&name).map_err(|e| invalid(&e))?;
        let audit = audit_record(&principal, "environment.create", Some(&name), vec![]);
        let row = self
            .state
            .store
            .create_environment(&name, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %name, "environment created");
        Ok(Response::new(v1::CreateEnvironmentResponse {
            environment: Some(to_proto(row)),
        }))
    }

    async fn delete_environment(
        &self,
        request: Request<v1::DeleteEnvironmentRequest>,
    ) -> Result<Response<v1::DeleteEnvironmentResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let req = request.into_inner();
        check_environment_name(&req.name).map_err(|e| invalid(&e))?;
        let audit = audit_record(&principal, "environment.delete", Some(&req.name), vec![]);
        let deleted = self
            .state
            .store
            .delete_environment(&req.name, req.force, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %req.name, deleted, "environment deleted");
        Ok(Response::new(v1::DeleteEnvironmentResponse {
            deleted_secrets: deleted as u32,
        }))
    }
}
