//! Secrets: set (atomic batches), unset and list names. Values enter here, are checked and
//! sealed at once, and never leave through these operations.

use std::collections::HashSet;

use super::{environment_of, require, Result, Service};
use crate::auth::{Principal, Scope};
use crate::names::{check_value, InvalidInput};
use crate::secret::SecretBytes;
use crate::store::{SealedSecret, SecretMeta};

impl Service {
    /// Checks every rule for the whole batch, then seals and stores it in one transaction;
    /// returns the environment's new revision. `exposed` is the tri-state exposure (`None`:
    /// server default for new secrets, unchanged for existing ones).
    pub async fn set_secrets(
        &self,
        principal: &Principal,
        environment: &str,
        batch: Vec<(String, SecretBytes)>,
        exposed: Option<bool>,
    ) -> Result<u64> {
        let env = environment_of(environment)?;
        require(principal, Scope::Write(env.clone()))?;
        if batch.is_empty() {
            return Err(InvalidInput::EmptyBatch.into());
        }
        // Every rule is checked for the whole batch before anything is sealed or stored.
        let mut seen = HashSet::new();
        for (name, value) in &batch {
            self.policy.check_secret_name(name)?;
            if !seen.insert(name.as_str()) {
                return Err(InvalidInput::DuplicateName(name.clone()).into());
            }
            check_value(name, value.expose(), &self.limits)?;
        }
        let mut sealed = Vec::with_capacity(batch.len());
        for (name, value) in &batch {
            sealed.push(SealedSecret {
                name: name.clone(),
                sealed: self.sealer.seal(&env, name, value)?,
                value_len: value.len() as u64,
                exposed,
            });
        }
        drop(batch);
        let names = sealed.iter().map(|s| s.name.clone()).collect();
        let audit = self.audit(principal, "secrets.set", Some(&env), names);
        let revision = self
            .store
            .set_secrets(&env, sealed, &self.limits, audit)
            .await?;
        self.changed();
        tracing::info!(key_id = %principal.key_id, environment = %env, revision, "secrets set");
        Ok(revision)
    }

    /// Removes one secret (NOT_FOUND when it is not set); returns the new revision.
    pub async fn unset_secret(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
    ) -> Result<u64> {
        self.unset_secrets(principal, environment, vec![name.to_string()])
            .await
    }

    /// Removes every named secret in one change (one revision, one audit entry); a name that
    /// is not set fails the whole change with NOT_FOUND naming it, and nothing is removed.
    pub async fn unset_secrets(
        &self,
        principal: &Principal,
        environment: &str,
        names: Vec<String>,
    ) -> Result<u64> {
        let env = environment_of(environment)?;
        require(principal, Scope::Write(env.clone()))?;
        super::name_list(&names, "unset")?;
        let audit = self.audit(principal, "secrets.unset", Some(&env), names.clone());
        let revision = self.store.unset_secrets(&env, &names, audit).await?;
        self.changed();
        tracing::info!(key_id = %principal.key_id, environment = %env, names = %names.join(","), revision, "secrets unset");
        Ok(revision)
    }

    /// Sets one secret's exposure (`None`: back to the server's default) without its value;
    /// returns the new revision.
    pub async fn set_exposure(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
        exposed: Option<bool>,
    ) -> Result<u64> {
        let (env, audit) = self.one_secret(principal, environment, name, "secrets.expose")?;
        let revision = self.store.set_exposure(&env, name, exposed, audit).await?;
        self.changed();
        tracing::info!(key_id = %principal.key_id, environment = %env, name = %name, ?exposed, revision, "secret exposure set");
        Ok(revision)
    }

    /// The checks of a change to one named secret (`write:ENV`, the name's syntax) and its
    /// audit entry.
    pub(super) fn one_secret(
        &self,
        principal: &Principal,
        environment: &str,
        name: &str,
        action: &'static str,
    ) -> Result<(String, crate::store::AuditRecord)> {
        let env = environment_of(environment)?;
        require(principal, Scope::Write(env.clone()))?;
        crate::names::check_secret_name_syntax(name)?;
        let audit = self.audit(principal, action, Some(&env), vec![name.to_string()]);
        Ok((env, audit))
    }

    /// The revision and the metadata (never values) of one environment's secrets.
    pub async fn list_secrets(
        &self,
        principal: &Principal,
        environment: &str,
    ) -> Result<(u64, Vec<SecretMeta>)> {
        let env = environment_of(environment)?;
        require(principal, Scope::Read(env.clone()))?;
        Ok(self.store.list_secrets(&env).await?)
    }
}
