//! Runners: the record of runner starts (which revision and names each runner got, so stale
//! runners can be found), and the pruning of old records and audit rows.

use std::time::Duration;

use super::{list_limit, listed_environment, require, Result, Service};
use crate::auth::{Principal, Scope};
use crate::store::RunnerRow;

const DEFAULT_LIST_LIMIT: u32 = 1000;
const MAX_LIST_LIMIT: u32 = 10_000;

impl Service {
    /// Runner starts, newest first, of one environment (`read:ENV`) or of all (admin, with an
    /// empty `environment`); with `stale_only`, those a change since their start concerns (the
    /// rule: [`crate::store::Store::list_runners`]).
    pub async fn list_runners(
        &self,
        principal: &Principal,
        environment: &str,
        stale_only: bool,
        limit: u32,
    ) -> Result<Vec<RunnerRow>> {
        let env = listed_environment(principal, environment)?;
        if let Some(env) = &env {
            require(principal, Scope::Read(env.clone()))?;
        }
        self.existing_environment(env.as_deref()).await?;
        let limit = list_limit(
            limit,
            DEFAULT_LIST_LIMIT,
            MAX_LIST_LIMIT,
            "runners per call",
        )?;
        Ok(self
            .store
            .list_runners(env.as_deref(), stale_only, self.expose_by_default, limit)
            .await?)
    }

    /// Drops runner records (and expired tokens) and audit rows older than their retention;
    /// failures are logged, and the next round tries again.
    pub async fn prune(&self, runner_retention: Duration, audit_retention: Duration) {
        let now = self.now();
        match self.store.prune_runners(now - runner_retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned old runner records"),
            Err(e) => tracing::warn!(error = %e, "could not prune runner records"),
        }
        match self.store.prune_audit(now - audit_retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned audit rows older than audit_retention"),
            Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
        }
    }
}
