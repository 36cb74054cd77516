//! `runseal.v1.Audit` (admin only): the newest entries first, optionally of one environment.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{environment_of, require, store_status, timestamp, State};
use crate::auth::Scope;
use crate::proto::v1::{self, audit_server::Audit};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

pub struct AuditService {
    state: Arc<State>,
}

impl AuditService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_audit(
        &self,
        request: Request<v1::ListAuditRequest>,
    ) -> Result<Response<v1::ListAuditResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        require(&principal, Scope::Admin)?;
        let req = request.into_inner();
        let env = if req.environment.is_empty() {
            None
        } else {
            Some(environment_of(&req.environment)?)
        };
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "limit: at most {MAX_LIMIT} entries per call"
                )))
            }
            n => n,
        };
        let rows = self
            .state
            .store
            .list_audit(env.as_deref(), limit)
            .await
            .map_err(|e| store_status(&e))?;
        let entries = rows
            .into_iter()
            .map(|r| v1::AuditEntry {
                id: r.id,
                at: Some(timestamp(r.at)),
                key_id: r.key_id,
                action: r.action,
                environment: r.environment.unwrap_or_default(),
                names: r.names,
            })
            .collect();
        Ok(Response::new(v1::ListAuditResponse { entries }))
    }
}
