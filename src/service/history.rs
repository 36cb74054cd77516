//! The history of a secret: its kept versions (never their values), a rollback to one of them,
//! and the purge of versions for good.

use super::{environment_of, require, Result, Service, ServiceError};
use crate::auth::{Principal, Scope};
use crate::store::{SealedSecret, SecretVersion};

impl Service {
    /// The kept versions of one secret, newest first (`read:ENV`).
    pub async fn secret_history(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
    ) -> Result<Vec<SecretVersion>> {
        let env = environment_of(environment)?;
        require(principal, Scope::Read(env.clone()))?;
        crate::names::check_secret_name_syntax(name)?;
        Ok(self.store.secret_history(&env, name).await?)
    }

    /// Makes kept version `version` of `name` current again, as a new version and a new
    /// revision (`write:ENV`); also sets an unset name again. The sealed bytes are reused as
    /// stored (they are bound to this environment and name), so no value is opened here.
    pub async fn rollback_secret(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
        version: u64,
    ) -> Result<u64> {
        let (env, audit) = self.one_secret(principal, environment, name, "secrets.rollback")?;
        // The rules of a set still hold: a name denied since, or a value over today's limit,
        // does not come back.
        self.policy.check_secret_name(name)?;
        let old = self.store.secret_version(&env, name, version).await?;
        if old.current {
            return Err(ServiceError::FailedPrecondition(format!(
                "version {version} is already the current value of {name:?} in environment {env:?}"
            )));
        }
        if old.value_len > self.limits.max_value_bytes as u64 {
            return Err(ServiceError::InvalidArgument(format!(
                "version {version} of {name:?} holds {} bytes: the limit of a value is now {} bytes",
                old.value_len, self.limits.max_value_bytes
            )));
        }
        let secret = SealedSecret {
            name: name.to_string(),
            sealed: old.sealed,
            value_len: old.value_len,
            exposed: None,
        };
        let revision = self
            .store
            .set_secrets(&env, vec![secret], &self.limits, audit)
            .await?;
        self.changed();
        tracing::info!(key_id = %principal.key_id, environment = %env, name = %name, version, revision, "secret rolled back");
        Ok(revision)
    }

    /// Destroys kept version `version` of `name` for good, or with `None` every version and
    /// the current value (`write:ENV`). A current version is refused: set a new value first.
    /// Returns the new revision when the current value went.
    pub async fn purge_secret(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<u64>> {
        let (env, audit) = self.one_secret(principal, environment, name, "secrets.purge")?;
        let revision = self.store.purge_secret(&env, name, version, audit).await?;
        self.changed();
        tracing::info!(key_id = %principal.key_id, environment = %env, name = %name, ?version, ?revision, "secret purged");
        Ok(revision)
    }
}
