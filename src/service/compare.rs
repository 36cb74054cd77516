//! Two environments side by side: a diff of their names (and, for a caller who may read both
//! environments' values, whether each common value is equal), and a server-side copy of values
//! from one to the other. Values are opened here only to compare or reseal them; none leaves.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{environment_of, require, Result, Service, ServiceError};
use crate::auth::{Principal, Scope};
use crate::names::check_value;
use crate::store::SealedSecret;

/// The names of two environments compared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub in_both: Vec<InBoth>,
    /// Whether `equal` was computed: the caller holds `snapshot:` on both.
    pub values_compared: bool,
}

/// A name set in both environments.
#[derive(Debug, PartialEq, Eq)]
pub struct InBoth {
    pub name: String,
    pub a_updated_at: OffsetDateTime,
    pub b_updated_at: OffsetDateTime,
    /// `None` unless values were compared.
    pub equal: Option<bool>,
}

impl Service {
    /// The names only in `a`, only in `b`, and in both (`read:` on both). With `snapshot:` on
    /// both, also whether each common value is equal, compared here in constant time.
    pub async fn diff_environments(&self, principal: &Principal, a: &str, b: &str) -> Result<Diff> {
        let (a, b) = (environment_of(a)?, environment_of(b)?);
        require(principal, Scope::Read(a.clone()))?;
        require(principal, Scope::Read(b.clone()))?;
        let (_, a_meta) = self.store.list_secrets(&a).await?;
        let (_, b_meta) = self.store.list_secrets(&b).await?;
        let compare = principal.allows(&Scope::Snapshot(a.clone()))
            && principal.allows(&Scope::Snapshot(b.clone()));
        let mut b_by_name: BTreeMap<_, _> =
            b_meta.into_iter().map(|m| (m.name.clone(), m)).collect();
        let mut diff = Diff {
            values_compared: compare,
            ..Diff::default()
        };
        for m in a_meta {
            match b_by_name.remove(&m.name) {
                None => diff.only_in_a.push(m.name),
                Some(other) => diff.in_both.push(InBoth {
                    name: m.name,
                    a_updated_at: m.updated_at,
                    b_updated_at: other.updated_at,
                    equal: None,
                }),
            }
        }
        diff.only_in_b = b_by_name.into_keys().collect();
        if compare && !diff.in_both.is_empty() {
            let (_, a_sealed) = self.store.sealed_secrets(&a).await?;
            let (_, b_sealed) = self.store.sealed_secrets(&b).await?;
            let a_sealed: BTreeMap<_, _> = a_sealed.iter().map(|s| (s.name.as_str(), s)).collect();
            let b_sealed: BTreeMap<_, _> = b_sealed.iter().map(|s| (s.name.as_str(), s)).collect();
            for entry in &mut diff.in_both {
                let (Some(x), Some(y)) = (
                    a_sealed.get(entry.name.as_str()),
                    b_sealed.get(entry.name.as_str()),
                ) else {
                    continue; // changed between the two reads: left uncompared
                };
                let x = self.sealer.open(&a, &x.name, &x.sealed)?;
                let y = self.sealer.open(&b, &y.name, &y.sealed)?;
                entry.equal = Some(bool::from(x.expose().ct_eq(y.expose())));
            }
            let audit = self.audit(principal, "environments.diff", Some(&a), vec![b.clone()]);
            self.store.append_audit(audit).await?;
        }
        Ok(diff)
    }

    /// Copies the named secrets of `from` into `to` in one atomic change, resealed for `to`
    /// (`snapshot:FROM`, since a copy followed by a read of `to` would read `from`'s values,
    /// and `write:TO`). Each keeps its exposure setting. Returns `to`'s new revision.
    pub async fn copy_secrets(
        &self,
        principal: &Principal,
        from: &str,
        to: &str,
        names: &[String],
    ) -> Result<u64> {
        let (from, to) = (environment_of(from)?, environment_of(to)?);
        if from == to {
            return Err(ServiceError::InvalidArgument(format!(
                "--from and --to both name environment {from:?}: copy between two environments"
            )));
        }
        require(principal, Scope::Snapshot(from.clone()))?;
        require(principal, Scope::Write(to.clone()))?;
        super::name_list(names, "copy")?;
        for name in names {
            self.policy.check_secret_name(name)?;
        }
        // The target must exist before any value is opened.
        if self.store.environment(&to).await?.is_none() {
            return Err(ServiceError::EnvironmentNotFound(to));
        }
        let (_, source) = self.store.sealed_secrets(&from).await?;
        let by_name: BTreeMap<_, _> = source.iter().map(|s| (s.name.as_str(), s)).collect();
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !by_name.contains_key(n))
            .collect();
        if !missing.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "not set in environment {from:?}: {}; nothing was copied",
                missing.join(", ")
            )));
        }
        let mut batch = Vec::with_capacity(names.len());
        for name in names {
            let s = by_name[name.as_str()];
            let value = self.sealer.open(&from, name, &s.sealed)?;
            check_value(name, value.expose(), &self.limits)?;
            batch.push(SealedSecret {
                name: name.clone(),
                sealed: self.sealer.seal(&to, name, &value)?,
                value_len: s.value_len,
                exposed: s.exposed,
            });
        }
        let audit = self.audit(principal, "secrets.copy", Some(&to), names.to_vec());
        let revision = self
            .store
            .set_secrets(&to, batch, &self.limits, audit)
            .await?;
        self.changed();
        let audit = self.audit(principal, "secrets.copy_out", Some(&from), names.to_vec());
        self.store.append_audit(audit).await?;
        tracing::info!(key_id = %principal.key_id, from = %from, to = %to, count = names.len(), revision, "secrets copied");
        Ok(revision)
    }
}
