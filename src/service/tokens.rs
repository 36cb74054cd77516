//! Runner tokens: minting (bounded by `runner_tokens.*` of the server config), revoking and
//! listing the active ones. Redeeming one is [`Service::fetch`]'s.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use super::fetch::Purpose;
use super::{
    environment_of, list_limit, listed_environment, require, Result, Service, ServiceError,
    MAX_NAME_LIST,
};
use crate::auth::{generate_runner_token, Credential, Principal, Scope};
use crate::names::is_valid_secret_name;
use crate::store::RunnerTokenRow;

const MAX_COUNT: u32 = 10_000;
const DEFAULT_TTL: Duration = Duration::from_secs(600);
const DEFAULT_LIST_LIMIT: u32 = 1000;
const MAX_LIST_LIMIT: u32 = 10_000;

/// What to mint: 0 (or empty) means the default of each field.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    pub environment: String,
    pub count: u32,
    pub ttl_seconds: u32,
    pub uses: u32,
    pub purpose: String,
    pub only: Vec<String>,
}

/// A minted token: the credential (shown once) and when it expires.
pub struct IssuedToken {
    pub credential: Credential,
    pub expires_at: OffsetDateTime,
}

/// Checks and de-duplicates an allow-list (order kept); errors name it `field`.
pub(super) fn allow_list(field: &str, names: Vec<String>) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if !is_valid_secret_name(&n) {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: {n:?} is not a valid secret name (A-Z, a-z, 0-9, '_', not starting with a digit)"
            )));
        }
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// An allow-list given with a token or a fetch (`only`): at most [`MAX_NAME_LIST`] names.
pub(super) fn only_list(names: Vec<String>) -> Result<Vec<String>> {
    if names.len() > MAX_NAME_LIST {
        return Err(ServiceError::InvalidArgument(format!(
            "only: at most {MAX_NAME_LIST} names in an allow-list"
        )));
    }
    allow_list("allow-list", names)
}

/// 0 means `default`; more than `max` is refused with `refusal`.
fn at_most<T: PartialOrd + Copy>(n: T, zero: T, default: T, max: T, refusal: String) -> Result<T> {
    if n == zero {
        Ok(default)
    } else if n > max {
        Err(ServiceError::InvalidArgument(refusal))
    } else {
        Ok(n)
    }
}

impl Service {
    pub async fn issue_runner_tokens(
        &self,
        principal: &Principal,
        req: IssueRequest,
    ) -> Result<Vec<IssuedToken>> {
        let env = environment_of(&req.environment)?;
        require(principal, Scope::Issue(env.clone()))?;
        let count = at_most(
            req.count,
            0,
            1,
            MAX_COUNT,
            format!("count: at most {MAX_COUNT} tokens per call"),
        )?;
        let limits = self.token_limits;
        let ttl = at_most(
            Duration::from_secs(req.ttl_seconds.into()),
            Duration::ZERO,
            DEFAULT_TTL.min(limits.max_ttl),
            limits.max_ttl,
            format!(
                "ttl: at most {} seconds (runner_tokens.max_ttl in the server config)",
                limits.max_ttl.as_secs()
            ),
        )?;
        let uses = at_most(
            req.uses,
            0,
            1,
            limits.max_uses,
            format!(
                "uses: at most {} per token (runner_tokens.max_uses in the server config)",
                limits.max_uses
            ),
        )?;
        let purpose = Purpose::parse(&req.purpose)?;
        let only = only_list(req.only)?;
        if self.store.environment(&env).await?.is_none() {
            return Err(ServiceError::EnvironmentNotFound(env));
        }
        let now = self.now();
        let expires_at = now + ttl;
        let mut rows = Vec::with_capacity(count as usize);
        let mut tokens = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let credential = generate_runner_token();
            rows.push(RunnerTokenRow {
                id: credential.key_id().to_string(),
                secret_hash: credential.secret_hash().to_vec(),
                environment: env.clone(),
                only: (!only.is_empty()).then(|| only.clone()),
                purpose: purpose.as_str().to_string(),
                uses_left: uses,
                expires_at,
                created_at: now,
                created_by: principal.key_id.clone(),
                revoked_at: None,
            });
            tokens.push(IssuedToken {
                credential,
                expires_at,
            });
        }
        let ids = rows.iter().map(|r| r.id.clone()).collect();
        let audit = self.audit(principal, "runner-token.issue", Some(&env), ids);
        self.store.insert_runner_tokens(rows, audit).await?;
        tracing::info!(key_id = %principal.key_id, environment = %env, count, ttl_s = ttl.as_secs(), uses, purpose = purpose.as_str(), "runner tokens issued");
        Ok(tokens)
    }

    pub async fn revoke_runner_token(&self, principal: &Principal, id: &str) -> Result<()> {
        // Scope first, so a key cannot learn which ids exist in environments it cannot touch:
        // without any issue:ENV scope it is refused before the lookup, and a token of an
        // environment it may not issue for is answered exactly like a missing one.
        let may_issue_somewhere = principal.is_admin()
            || principal
                .scopes
                .iter()
                .any(|s| matches!(s, Scope::Issue(_)));
        if !may_issue_somewhere {
            return Err(ServiceError::PermissionDenied(format!(
                "key {} lacks the scope issue:ENV of the token's environment",
                principal.key_id
            )));
        }
        let not_found = || {
            ServiceError::NotFound(format!(
                "runner token {:?} does not exist in an environment this key may issue for",
                id.chars().take(80).collect::<String>()
            ))
        };
        let row = self.store.runner_token(id).await?.ok_or_else(not_found)?;
        if !principal.allows(&Scope::Issue(row.environment.clone())) {
            return Err(not_found());
        }
        let audit = self.audit(
            principal,
            "runner-token.revoke",
            Some(&row.environment),
            vec![id.to_string()],
        );
        self.store.revoke_runner_token(id, audit).await?;
        tracing::info!(key_id = %principal.key_id, token_id = %id, "runner token revoked");
        Ok(())
    }

    /// Revokes every active runner token of an environment (`all` must be true); returns how
    /// many.
    pub async fn revoke_runner_tokens(
        &self,
        principal: &Principal,
        environment: &str,
        all: bool,
    ) -> Result<u64> {
        let env = environment_of(environment)?;
        require(principal, Scope::Issue(env.clone()))?;
        if !all {
            return Err(ServiceError::InvalidArgument(
                "all: must be true to revoke every active runner token of the environment \
                 (revoke one with its id)"
                    .into(),
            ));
        }
        let audit = self.audit(principal, "runner-token.revoke-all", Some(&env), vec![]);
        let revoked = self.store.revoke_runner_tokens(&env, audit).await?;
        tracing::info!(key_id = %principal.key_id, environment = %env, revoked, "every runner token of the environment revoked");
        Ok(revoked)
    }

    /// The active runner tokens of one environment (`issue:ENV` or `read:ENV`), or of all
    /// (admin, with an empty `environment`).
    pub async fn list_runner_tokens(
        &self,
        principal: &Principal,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<RunnerTokenRow>> {
        let env = listed_environment(principal, environment)?;
        if let Some(env) = &env {
            if !principal.allows(&Scope::Issue(env.clone())) {
                require(principal, Scope::Read(env.clone()))?;
            }
        }
        let limit = list_limit(limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, "tokens per call")?;
        Ok(self
            .store
            .list_runner_tokens(env.as_deref(), self.now(), limit)
            .await?)
    }
}
