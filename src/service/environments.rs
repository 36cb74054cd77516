//! Environments: list (what the key may see), create and delete (admin).

use super::{require, Result, Service};
use crate::auth::{Principal, Scope};
use crate::names::check_environment_name;
use crate::store::EnvironmentRow;

impl Service {
    /// The environments this key may see.
    pub async fn list_environments(&self, principal: &Principal) -> Result<Vec<EnvironmentRow>> {
        Ok(self
            .store
            .list_environments()
            .await?
            .into_iter()
            .filter(|e| principal.sees_environment(&e.name))
            .collect())
    }

    pub async fn create_environment(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<EnvironmentRow> {
        require(principal, Scope::Admin)?;
        check_environment_name(name)?;
        let audit = self.audit(principal, "environment.create", Some(name), vec![]);
        let row = self.store.create_environment(name, audit).await?;
        tracing::info!(key_id = %principal.key_id, environment = %name, "environment created");
        Ok(row)
    }

    /// Deletes an environment; with `force`, also the secrets it holds. Returns how many were
    /// deleted with it.
    pub async fn delete_environment(
        &self,
        principal: &Principal,
        name: &str,
        force: bool,
    ) -> Result<u64> {
        require(principal, Scope::Admin)?;
        check_environment_name(name)?;
        let audit = self.audit(principal, "environment.delete", Some(name), vec![]);
        let deleted = self.store.delete_environment(name, force, audit).await?;
        tracing::info!(key_id = %principal.key_id, environment = %name, deleted, "environment deleted");
        Ok(deleted)
    }
}
