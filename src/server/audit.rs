//! `runseal.v1.Audit` (admin only): the newest entries first, optionally of one environment.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{environment_of, require, store_status, timestamp, State};
use crate::auth::Scope;
use crate::proto::v1::{self, audit_server::Audit};

const DEFAULT_LIMIT: u32 = 100;
/// The most entries one page holds: with at most 50 names of at most 256 bytes per entry, a
/// page stays far below the 4 MiB a gRPC client accepts. The client pages for more.
const MAX_LIMIT: u32 = 1_000;

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
                    "limit: at most {MAX_LIMIT} entries per page (page with before_id)"
                )))
            }
            n => n,
        };
        let rows = self
            .state
            .store
            .list_audit_before(
                env.as_deref(),
                (req.before_id > 0).then_some(req.before_id),
                limit,
            )
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
                revision: r.revision,
                runner_id: r.runner_id.unwrap_or_default(),
                value_count: r.values,
                names_total: r.names_total,
            })
            .collect();
        Ok(Response::new(v1::ListAuditResponse { entries }))
    }
}
