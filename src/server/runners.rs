//! `runseal.v1.Runners`: minting runner tokens, the snapshot a starting runner fetches, and the
//! record of runner starts (which revision each runner got, so stale runners can be found).
//!
//! GetSnapshot is the only RPC that returns values. It checks everything it can before taking a
//! use of a token (credential, environment, allow-list, integrity of every value), so a refused
//! or failed start does not burn a single-use token; the use is then taken atomically with the
//! record of the start, so two runners racing with one token cannot both start.
//!
//! GetBuildSecrets is the build-time counterpart: only the named values, for a token minted
//! with purpose `build` or a key with scope `build:ENV`, checked the same way before the use is
//! taken, and audited (names only) in the same transaction as the use.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{
    audit_record, credential_of, environment_of, require, seal_status, store_status, timestamp,
    State,
};
use crate::auth::{generate_runner_token, Credential, Scope};
use crate::names::is_valid_secret_name;
use crate::proto::v1::{self, runners_server::Runners};
use crate::store::{AuditRecord, RunnerRecord, RunnerTokenRow};

/// The most names one build may fetch in one call, and the most an allow-list may name.
const MAX_BUILD_NAMES: usize = 1000;

const MAX_COUNT: u32 = 10_000;
const DEFAULT_TTL: Duration = Duration::from_secs(600);
const DEFAULT_LIST_LIMIT: u32 = 1000;
/// How long the runner that used a token may fetch its snapshot again, when its answer was lost
/// (a replica died mid-call): same token, same runner id, no new use taken.
const RETRY_GRACE: Duration = Duration::from_secs(60);
const MAX_LIST_LIMIT: u32 = 10_000;

pub const PURPOSE_RUN: &str = "run";
pub const PURPOSE_BUILD: &str = "build";

pub struct RunnersService {
    state: Arc<State>,
}

impl RunnersService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

/// Checks and de-duplicates an allow-list (order kept).
fn allow_list(names: Vec<String>) -> Result<Vec<String>, Status> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if !is_valid_secret_name(&n) {
            return Err(Status::invalid_argument(format!(
                "allow-list: {n:?} is not a valid secret name (A-Z, a-z, 0-9, '_', not starting with a digit)"
            )));
        }
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

fn valid_runner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Who is asking for a snapshot, once the credential checked out.
enum Fetcher {
    Token(String),
    /// The runner that already used this token asks again within the grace period.
    TokenRetry(String),
    Key(String),
}

impl RunnersService {
    /// Checks a runner token minted for `purpose` without taking a use. Returns its row and
    /// whether this is the retry of the runner that used it.
    async fn check_token(
        &self,
        cred: &Credential,
        verified: Option<super::Verified>,
        retry_of: Option<(&str, &[u8])>,
        now: OffsetDateTime,
        purpose: &str,
    ) -> Result<(RunnerTokenRow, bool), Status> {
        let invalid =
            || Status::unauthenticated("invalid runner token: unknown id or wrong secret");
        // The row the auth layer read for this request's headers, else read now.
        let row = match verified.and_then(|v| v.into_token_for(cred)) {
            Some(row) => row,
            None => self
                .state
                .store
                .runner_token(cred.key_id())
                .await
                .map_err(|e| store_status(&e))?
                .ok_or_else(invalid)?,
        };
        if !cred.matches_hash(&row.secret_hash) {
            return Err(invalid());
        }
        if row.revoked_at.is_some() {
            return Err(Status::unauthenticated(format!(
                "runner token {} has been revoked",
                row.id
            )));
        }
        if row.expires_at <= now {
            return Err(Status::unauthenticated(format!(
                "runner token {} has expired",
                row.id
            )));
        }
        let mut retry = false;
        if row.uses_left == 0 {
            // Only the runner that took the use, proven by its retry key, may ask again.
            retry = match retry_of {
                Some((runner, retry_hash)) => self
                    .state
                    .store
                    .runner_started_with(&row.id, runner, retry_hash, now - RETRY_GRACE)
                    .await
                    .map_err(|e| store_status(&e))?,
                None => false,
            };
            if !retry {
                return Err(Status::unauthenticated(format!(
                    "runner token {} has already been used",
                    row.id
                )));
            }
        }
        if row.purpose != purpose {
            let wanted = if purpose == PURPOSE_BUILD {
                "a build (mint one with `runseal runner-token issue --purpose build`)"
            } else {
                "starting a runner"
            };
            return Err(Status::permission_denied(format!(
                "runner token {} was minted for {}, not for {wanted}",
                row.id, row.purpose
            )));
        }
        Ok((row, retry))
    }
}

#[tonic::async_trait]
impl Runners for RunnersService {
    async fn issue_runner_tokens(
        &self,
        request: Request<v1::IssueRunnerTokensRequest>,
    ) -> Result<Response<v1::IssueRunnerTokensResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = environment_of(&req.environment)?;
        require(&principal, Scope::Issue(env.clone()))?;
        let count = match req.count {
            0 => 1,
            n if n > MAX_COUNT => {
                return Err(Status::invalid_argument(format!(
                    "count: at most {MAX_COUNT} tokens per call"
                )))
            }
            n => n,
        };
        let limits = self.state.token_limits;
        let ttl = match req.ttl_seconds {
            0 => DEFAULT_TTL.min(limits.max_ttl),
            s if Duration::from_secs(s.into()) > limits.max_ttl => {
                return Err(Status::invalid_argument(format!(
                    "ttl: at most {} seconds (runner_tokens.max_ttl in the server config)",
                    limits.max_ttl.as_secs()
                )))
            }
            s => Duration::from_secs(s.into()),
        };
        let uses = match req.uses {
            0 => 1,
            n if n > limits.max_uses => {
                return Err(Status::invalid_argument(format!(
                    "uses: at most {} per token (runner_tokens.max_uses in the server config)",
                    limits.max_uses
                )))
            }
            n => n,
        };
        let purpose = match req.purpose.as_str() {
            "" | PURPOSE_RUN => PURPOSE_RUN,
            PURPOSE_BUILD => PURPOSE_BUILD,
            other => {
                return Err(Status::invalid_argument(format!(
                    "purpose: {other:?} is not one of run, build"
                )))
            }
        };
        if req.only.len() > MAX_BUILD_NAMES {
            return Err(Status::invalid_argument(format!(
                "only: at most {MAX_BUILD_NAMES} names in an allow-list"
            )));
        }
        let only = allow_list(req.only)?;
        if self
            .state
            .store
            .environment(&env)
            .await
            .map_err(|e| store_status(&e))?
            .is_none()
        {
            return Err(store_status(
                &crate::store::StoreError::EnvironmentNotFound(env),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let expires_at = now + ttl;
        let mut rows = Vec::with_capacity(count as usize);
        let mut tokens = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let cred = generate_runner_token();
            rows.push(RunnerTokenRow {
                id: cred.key_id().to_string(),
                secret_hash: cred.secret_hash().to_vec(),
                environment: env.clone(),
                only: (!only.is_empty()).then(|| only.clone()),
                purpose: purpose.to_string(),
                uses_left: uses,
                expires_at,
                created_at: now,
                created_by: principal.key_id.clone(),
                revoked_at: None,
            });
            tokens.push(v1::RunnerToken {
                token_id: cred.key_id().to_string(),
                token: cred.to_line().to_string(),
                expires_at: Some(timestamp(expires_at)),
            });
        }
        let ids = rows.iter().map(|r| r.id.clone()).collect();
        let audit = audit_record(&principal, "runner-token.issue", Some(&env), ids);
        self.state
            .store
            .insert_runner_tokens(rows, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %env, count, ttl_s = ttl.as_secs(), uses, purpose, "runner tokens issued");
        Ok(Response::new(v1::IssueRunnerTokensResponse { tokens }))
    }

    async fn revoke_runner_token(
        &self,
        request: Request<v1::RevokeRunnerTokenRequest>,
    ) -> Result<Response<v1::RevokeRunnerTokenResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let id = request.into_inner().token_id;
        // Scope first, so a key cannot learn which ids exist in environments it cannot touch:
        // without any issue:ENV scope it is refused before the lookup, and a token of an
        // environment it may not issue for is answered exactly like a missing one.
        let may_issue_somewhere = principal.is_admin()
            || principal
                .scopes
                .iter()
                .any(|s| matches!(s, Scope::Issue(_)));
        if !may_issue_somewhere {
            return Err(Status::permission_denied(format!(
                "key {} lacks the scope issue:ENV of the token's environment",
                principal.key_id
            )));
        }
        let not_found = || {
            Status::not_found(format!(
                "runner token {:?} does not exist in an environment this key may issue for",
                id.chars().take(80).collect::<String>()
            ))
        };
        let row = self
            .state
            .store
            .runner_token(&id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(not_found)?;
        if !principal.allows(&Scope::Issue(row.environment.clone())) {
            return Err(not_found());
        }
        let audit = audit_record(
            &principal,
            "runner-token.revoke",
            Some(&row.environment),
            vec![id.clone()],
        );
        self.state
            .store
            .revoke_runner_token(&id, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, token_id = %id, "runner token revoked");
        Ok(Response::new(v1::RevokeRunnerTokenResponse {}))
    }

    async fn revoke_runner_tokens(
        &self,
        request: Request<v1::RevokeRunnerTokensRequest>,
    ) -> Result<Response<v1::RevokeRunnerTokensResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = environment_of(&req.environment)?;
        require(&principal, Scope::Issue(env.clone()))?;
        if !req.all {
            return Err(Status::invalid_argument(
                "all: must be true to revoke every active runner token of the environment \
                 (revoke one with its id)",
            ));
        }
        let audit = audit_record(&principal, "runner-token.revoke-all", Some(&env), vec![]);
        let revoked = self
            .state
            .store
            .revoke_runner_tokens(&env, audit)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(key_id = %principal.key_id, environment = %env, revoked, "every runner token of the environment revoked");
        Ok(Response::new(v1::RevokeRunnerTokensResponse { revoked }))
    }

    async fn list_runner_tokens(
        &self,
        request: Request<v1::ListRunnerTokensRequest>,
    ) -> Result<Response<v1::ListRunnerTokensResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = if req.environment.is_empty() {
            require(&principal, Scope::Admin)?;
            None
        } else {
            let env = environment_of(&req.environment)?;
            if !principal.allows(&Scope::Issue(env.clone())) {
                require(&principal, Scope::Read(env.clone()))?;
            }
            Some(env)
        };
        let limit = match req.limit {
            0 => DEFAULT_LIST_LIMIT,
            n if n > MAX_LIST_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "limit: at most {MAX_LIST_LIMIT} tokens per call"
                )))
            }
            n => n,
        };
        let rows = self
            .state
            .store
            .list_runner_tokens(env.as_deref(), OffsetDateTime::now_utc(), limit)
            .await
            .map_err(|e| store_status(&e))?;
        let tokens = rows
            .into_iter()
            .map(|t| v1::RunnerTokenInfo {
                token_id: t.id,
                environment: t.environment,
                uses_left: t.uses_left,
                expires_at: Some(timestamp(t.expires_at)),
                created_at: Some(timestamp(t.created_at)),
                created_by: t.created_by,
                purpose: t.purpose,
                only: t.only.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(v1::ListRunnerTokensResponse { tokens }))
    }

    async fn get_snapshot(
        &self,
        request: Request<v1::GetSnapshotRequest>,
    ) -> Result<Response<v1::GetSnapshotResponse>, Status> {
        let mut request = request;
        let cred = credential_of(&request)?;
        let verified = super::verified(&mut request);
        let req = request.into_inner();
        let now = OffsetDateTime::now_utc();
        let chosen_by_agent = !req.runner_id.is_empty();
        let runner_id = if req.runner_id.is_empty() {
            crate::defaults::generate_runner_id()
        } else if valid_runner_id(&req.runner_id) {
            req.runner_id
        } else {
            return Err(Status::invalid_argument(
                "runner_id: 1 to 128 characters A-Z, a-z, 0-9, '.', '_', ':', '-'",
            ));
        };
        let requested_env = if req.environment.is_empty() {
            None
        } else {
            Some(environment_of(&req.environment)?)
        };
        if req.only.len() > MAX_BUILD_NAMES {
            return Err(Status::invalid_argument(format!(
                "only: at most {MAX_BUILD_NAMES} names in an allow-list"
            )));
        }
        let app_only = allow_list(req.only)?;
        let retry_hash: Option<Vec<u8>> = match req.retry_key.len() {
            0 => None,
            16..=64 => Some(Sha256::digest(&req.retry_key).to_vec()),
            _ => {
                return Err(Status::invalid_argument(
                    "retry_key: 16 to 64 random bytes, or empty",
                ))
            }
        };

        // Who asks, for which environment, with which allow-list.
        let (fetcher, env, only) = if cred.is_runner_token() {
            let (token, retry) = self
                .check_token(
                    &cred,
                    verified,
                    retry_hash
                        .as_deref()
                        .filter(|_| chosen_by_agent)
                        .map(|h| (runner_id.as_str(), h)),
                    now,
                    PURPOSE_RUN,
                )
                .await
                .inspect_err(|_| {
                    crate::metrics::METRICS.tokens_refused.inc();
                })?;
            if let Some(env) = &requested_env {
                if *env != token.environment {
                    return Err(Status::permission_denied(format!(
                        "runner token {} is for environment {:?}, not {env:?}",
                        token.id, token.environment
                    )));
                }
            }
            let only = match token.only {
                Some(allowed) => {
                    if let Some(extra) = app_only.iter().find(|n| !allowed.contains(n)) {
                        return Err(Status::permission_denied(format!(
                            "runner token {} does not allow {extra:?}: its allow-list is {}",
                            token.id,
                            allowed.join(",")
                        )));
                    }
                    if app_only.is_empty() {
                        allowed
                    } else {
                        app_only
                    }
                }
                None => app_only,
            };
            let fetcher = if retry {
                Fetcher::TokenRetry(token.id)
            } else {
                Fetcher::Token(token.id)
            };
            (fetcher, token.environment, only)
        } else {
            let principal = self.state.authenticate_verified(verified, &cred).await?;
            let env = match requested_env {
                Some(env) => env,
                None => {
                    let mut envs = principal.scopes.iter().filter_map(|s| match s {
                        Scope::Snapshot(e) => Some(e.clone()),
                        _ => None,
                    });
                    match (envs.next(), envs.next()) {
                        (Some(e), None) => e,
                        (None, _) => {
                            return Err(Status::permission_denied(format!(
                                "key {} has no snapshot:ENV scope: it cannot fetch values",
                                principal.key_id
                            )))
                        }
                        _ => {
                            return Err(Status::invalid_argument(format!(
                                "environment: key {} may fetch several environments; name one (RUNSEAL_ENV)",
                                principal.key_id
                            )))
                        }
                    }
                }
            };
            require(&principal, Scope::Snapshot(env.clone()))?;
            (Fetcher::Key(principal.key_id), env, app_only)
        };

        let (revision, rows) = self
            .state
            .store
            .sealed_snapshot(&env)
            .await
            .map_err(|e| store_status(&e))?;
        // A stored name that the policy denies now (an upgrade or a config change) is never
        // served; an allow-list that names it is refused, naming it.
        if let Some(n) = only.iter().find(|n| self.state.policy.denied(n).is_some()) {
            return Err(Status::failed_precondition(format!(
                "secret {n:?} (named in the allow-list) is denied by runseald's name policy: {}",
                self.state.policy.denied(n).unwrap_or_default()
            )));
        }
        let chosen: Vec<_> = if only.is_empty() {
            rows.iter()
                .filter(|r| r.exposed.unwrap_or(self.state.expose_by_default))
                .filter(|r| match self.state.policy.denied(&r.name) {
                    Some(_) => {
                        crate::metrics::METRICS.denied_names_withheld.inc();
                        tracing::warn!(environment = %env, name = %r.name, "stored secret left out of the snapshot: its name is denied now (unset it, or allow it with allowed_names)");
                        false
                    }
                    None => true,
                })
                .collect()
        } else {
            let missing: Vec<&str> = only
                .iter()
                .filter(|n| !rows.iter().any(|r| &r.name == *n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "not set in environment {env:?}: {} (named in the allow-list)",
                    missing.join(", ")
                )));
            }
            rows.iter().filter(|r| only.contains(&r.name)).collect()
        };
        let mut secrets = Vec::with_capacity(chosen.len());
        for r in &chosen {
            let value = self
                .state
                .sealer
                .open(&env, &r.name, &r.sealed)
                .map_err(|e| seal_status(&e))?;
            secrets.push(v1::SecretValue {
                name: r.name.clone(),
                value: value.expose().to_vec(),
            });
        }
        let credential_id = match &fetcher {
            Fetcher::Token(id) | Fetcher::TokenRetry(id) | Fetcher::Key(id) => id.clone(),
        };
        let audit = AuditRecord {
            revision: Some(revision),
            runner_id: Some(runner_id.clone()),
            values: Some(secrets.len() as u32),
            ..AuditRecord::new(
                now,
                credential_id.clone(),
                "snapshot",
                Some(env.clone()),
                vec![],
            )
        };
        let record = RunnerRecord {
            runner_id: runner_id.clone(),
            environment: env.clone(),
            revision,
            started_at: now,
            credential_id,
            retry_hash: match &fetcher {
                Fetcher::Key(_) => None,
                _ => retry_hash,
            },
        };
        match &fetcher {
            Fetcher::Token(id) => {
                let redeemed = self
                    .state
                    .store
                    .redeem_runner_token(id, &record, &audit)
                    .await
                    .map_err(|e| store_status(&e))?;
                if !redeemed {
                    crate::metrics::METRICS.tokens_refused.inc();
                    return Err(Status::unauthenticated(format!(
                        "runner token {id} has already been used"
                    )));
                }
                crate::metrics::METRICS.tokens_redeemed.inc();
            }
            Fetcher::TokenRetry(id) => {
                // Served again, so audited again: the audit log holds every snapshot.
                self.state
                    .store
                    .append_audit(audit)
                    .await
                    .map_err(|e| store_status(&e))?;
                tracing::info!(token_id = %id, runner_id = %runner_id, "snapshot served again to the runner that used this token");
            }
            Fetcher::Key(_) => self
                .state
                .store
                .record_runner(&record, &audit)
                .await
                .map_err(|e| store_status(&e))?,
        }
        crate::metrics::METRICS.snapshots_served.inc();
        tracing::info!(
            runner_id = %runner_id,
            environment = %env,
            revision,
            secrets = secrets.len(),
            credential = %record.credential_id,
            "snapshot served"
        );
        Ok(Response::new(v1::GetSnapshotResponse {
            environment: env,
            revision,
            secrets,
            runner_id,
        }))
    }

    async fn get_build_secrets(
        &self,
        request: Request<v1::GetBuildSecretsRequest>,
    ) -> Result<Response<v1::GetBuildSecretsResponse>, Status> {
        let mut request = request;
        let cred = credential_of(&request)?;
        let verified = super::verified(&mut request);
        let req = request.into_inner();
        let now = OffsetDateTime::now_utc();
        let requested_env = if req.environment.is_empty() {
            None
        } else {
            Some(environment_of(&req.environment)?)
        };
        let names = allow_list(req.names).map_err(|s| {
            Status::invalid_argument(s.message().replacen("allow-list", "names", 1))
        })?;
        if names.is_empty() {
            return Err(Status::invalid_argument(
                "names: name at least one secret the build references",
            ));
        }
        if names.len() > MAX_BUILD_NAMES {
            return Err(Status::invalid_argument(format!(
                "names: at most {MAX_BUILD_NAMES} per build"
            )));
        }

        // Who asks, for which environment.
        let (token_id, credential_id, env) = if cred.is_runner_token() {
            let (token, _) = self
                .check_token(&cred, verified, None, now, PURPOSE_BUILD)
                .await
                .inspect_err(|_| {
                    crate::metrics::METRICS.tokens_refused.inc();
                })?;
            if let Some(env) = &requested_env {
                if *env != token.environment {
                    return Err(Status::permission_denied(format!(
                        "runner token {} is for environment {:?}, not {env:?}",
                        token.id, token.environment
                    )));
                }
            }
            if let Some(allowed) = &token.only {
                let extra: Vec<&str> = names
                    .iter()
                    .filter(|n| !allowed.contains(n))
                    .map(String::as_str)
                    .collect();
                if !extra.is_empty() {
                    return Err(Status::permission_denied(format!(
                        "runner token {} does not allow {}: its allow-list is {}",
                        token.id,
                        extra.join(", "),
                        allowed.join(",")
                    )));
                }
            }
            (Some(token.id.clone()), token.id, token.environment)
        } else {
            let principal = self.state.authenticate_verified(verified, &cred).await?;
            let env = match requested_env {
                Some(env) => env,
                None => {
                    let mut envs = principal.scopes.iter().filter_map(|s| match s {
                        Scope::Build(e) => Some(e.clone()),
                        _ => None,
                    });
                    match (envs.next(), envs.next()) {
                        (Some(e), None) => e,
                        (None, _) => {
                            return Err(Status::permission_denied(format!(
                                "key {} has no build:ENV scope: it cannot fetch values for a build",
                                principal.key_id
                            )))
                        }
                        _ => {
                            return Err(Status::invalid_argument(format!(
                                "environment: key {} may build with several environments; name one (RUNSEAL_ENV)",
                                principal.key_id
                            )))
                        }
                    }
                }
            };
            require(&principal, Scope::Build(env.clone()))?;
            (None, principal.key_id, env)
        };

        let (revision, rows) = self
            .state
            .store
            .sealed_secrets(&env)
            .await
            .map_err(|e| store_status(&e))?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !rows.iter().any(|r| &r.name == *n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Status::failed_precondition(format!(
                "not set in environment {env:?}: {} (referenced by the build)",
                missing.join(", ")
            )));
        }
        let mut secrets = Vec::with_capacity(names.len());
        for r in rows.iter().filter(|r| names.contains(&r.name)) {
            let value = self
                .state
                .sealer
                .open(&env, &r.name, &r.sealed)
                .map_err(|e| seal_status(&e))?;
            secrets.push(v1::SecretValue {
                name: r.name.clone(),
                value: value.expose().to_vec(),
            });
        }
        let audit = AuditRecord {
            revision: Some(revision),
            values: Some(secrets.len() as u32),
            ..AuditRecord::new(
                now,
                credential_id.clone(),
                "build.secrets",
                Some(env.clone()),
                names.clone(),
            )
        };
        let recorded = self
            .state
            .store
            .record_build_fetch(token_id.as_deref(), audit)
            .await
            .map_err(|e| store_status(&e))?;
        if !recorded {
            crate::metrics::METRICS.tokens_refused.inc();
            return Err(Status::unauthenticated(format!(
                "runner token {credential_id} has already been used"
            )));
        }
        if token_id.is_some() {
            crate::metrics::METRICS.tokens_redeemed.inc();
        }
        tracing::info!(
            environment = %env,
            revision,
            names = %names.join(","),
            credential = %credential_id,
            "build secrets served"
        );
        Ok(Response::new(v1::GetBuildSecretsResponse {
            environment: env,
            revision,
            secrets,
        }))
    }

    async fn list_runners(
        &self,
        request: Request<v1::ListRunnersRequest>,
    ) -> Result<Response<v1::ListRunnersResponse>, Status> {
        let principal = self.state.authenticate(&request).await?;
        let req = request.into_inner();
        let env = if req.environment.is_empty() {
            require(&principal, Scope::Admin)?;
            None
        } else {
            let env = environment_of(&req.environment)?;
            require(&principal, Scope::Read(env.clone()))?;
            Some(env)
        };
        let limit = match req.limit {
            0 => DEFAULT_LIST_LIMIT,
            n if n > MAX_LIST_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "limit: at most {MAX_LIST_LIMIT} runners per call"
                )))
            }
            n => n,
        };
        let rows = self
            .state
            .store
            .list_runners(env.as_deref(), req.stale_only, limit)
            .await
            .map_err(|e| store_status(&e))?;
        let runners = rows
            .into_iter()
            .map(|r| v1::Runner {
                stale: r.record.revision < r.current_revision,
                runner_id: r.record.runner_id,
                environment: r.record.environment,
                revision: r.record.revision,
                current_revision: r.current_revision,
                started_at: Some(timestamp(r.record.started_at)),
                credential_id: r.record.credential_id,
            })
            .collect();
        Ok(Response::new(v1::ListRunnersResponse { runners }))
    }
}
