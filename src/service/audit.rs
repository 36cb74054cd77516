//! The audit log (admin only): the newest entries first, optionally of one environment.

use super::{list_limit, optional_environment, require, Result, Service};
use crate::auth::{Principal, Scope};
use crate::store::AuditRow;

const DEFAULT_LIMIT: u32 = 100;
/// The most entries one page holds: with at most 50 names of at most 256 bytes per entry, a
/// page stays far below the 4 MiB a gRPC client accepts. The client pages for more.
const MAX_LIMIT: u32 = 1_000;

impl Service {
    /// One page of the audit log: `limit` entries (0: the default) older than `before_id` (0:
    /// the newest).
    pub async fn list_audit(
        &self,
        principal: &Principal,
        environment: &str,
        before_id: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>> {
        require(principal, Scope::Admin)?;
        let env = optional_environment(environment)?;
        let limit = list_limit(
            limit,
            DEFAULT_LIMIT,
            MAX_LIMIT,
            "entries per page (page with before_id)",
        )?;
        let rows = self
            .store
            .list_audit_before(env.as_deref(), (before_id > 0).then_some(before_id), limit)
            .await?;
        // Nothing about an environment that does not exist: a typo, said as such. A deleted
        // environment keeps its history (its entries are listed).
        if rows.is_empty() && before_id == 0 {
            self.existing_environment(env.as_deref()).await?;
        }
        Ok(rows)
    }
}
