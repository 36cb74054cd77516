//! The one way values leave runseald: a runner's snapshot ([`Purpose::Run`]) and a build's
//! named values ([`Purpose::Build`]) share this path and differ only where the purpose says.
//!
//! Everything that can be checked is checked before a use of a token is taken (credential,
//! environment, allow-list, integrity of every value), so a refused or failed fetch does not
//! burn a single-use token; the use is then taken atomically with the record of the fetch (a
//! runner start, or the build's audit row), so two callers racing with one token cannot both
//! get values. A runner whose answer was lost may fetch again with the same token, runner id and
//! retry key within [`RETRY_GRACE`], without taking a new use.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::tokens::{allow_list, only_list};
use super::{
    generate_runner_id, optional_environment, require, Result, Service, ServiceError, MAX_NAME_LIST,
};
use crate::auth::{Credential, Principal, Scope};
use crate::secret::SecretBytes;
use crate::store::{AuditRecord, Received, RunnerRecord, RunnerTokenRow, SealedSecret};

/// How long the runner that used a token may fetch its snapshot again, when its answer was lost
/// (a replica died mid-call): same token, same runner id, no new use taken.
const RETRY_GRACE: Duration = Duration::from_secs(60);

/// What values are fetched for; a runner token is minted for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A runner's start: every exposed secret, or those of an allow-list.
    Run,
    /// A build: the values its templates name.
    Build,
}

impl Purpose {
    /// The purpose a token is minted with: empty means `run`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "run" => Ok(Purpose::Run),
            "build" => Ok(Purpose::Build),
            other => Err(ServiceError::InvalidArgument(format!(
                "purpose: {other:?} is not one of run, build"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Run => "run",
            Purpose::Build => "build",
        }
    }

    /// The scope a key needs to fetch for this purpose, or `None` when `s` is not of its kind.
    fn environment_of_scope(self, s: &Scope) -> Option<&str> {
        match (self, s) {
            (Purpose::Run, Scope::Snapshot(e)) | (Purpose::Build, Scope::Build(e)) => Some(e),
            _ => None,
        }
    }

    fn scope(self, env: String) -> Scope {
        match self {
            Purpose::Run => Scope::Snapshot(env),
            Purpose::Build => Scope::Build(env),
        }
    }

    /// How refusals name what the caller is doing.
    fn words(self) -> Words {
        match self {
            Purpose::Run => Words {
                scope: "snapshot:ENV",
                fetch: "fetch values",
                several: "fetch several environments",
                wanted: "starting a runner",
                names: "named in the allow-list",
                action: "snapshot",
            },
            Purpose::Build => Words {
                scope: "build:ENV",
                fetch: "fetch values for a build",
                several: "build with several environments",
                wanted: "a build (mint one with `runseal runner-token issue --purpose build`)",
                names: "referenced by the build",
                action: "build.secrets",
            },
        }
    }
}

struct Words {
    scope: &'static str,
    fetch: &'static str,
    several: &'static str,
    wanted: &'static str,
    names: &'static str,
    action: &'static str,
}

/// A fetch as a front-end decoded it (fields not yet checked). No `Debug`: the retry key
/// proves which runner a retry comes from.
pub struct FetchRequest {
    pub purpose: Purpose,
    /// Empty: the one environment the credential may fetch.
    pub environment: String,
    /// Run: an allow-list (empty: every exposed secret). Build: the names it references.
    pub names: Vec<String>,
    /// Run: the id the agent chose (empty: runseald picks one). Ignored for a build.
    pub runner_id: String,
    /// Run: the agent's retry key (16 to 64 bytes, or empty). Ignored for a build.
    pub retry_key: Vec<u8>,
}

/// Who fetches: a verified key, or a runner token (verified by the front-end's auth layer
/// when `verified` holds its row, else here).
pub enum Fetcher {
    Key(Principal),
    Token {
        credential: Credential,
        verified: Option<RunnerTokenRow>,
    },
}

/// The values served, opened. `runner_id` is empty for a build.
pub struct Fetched {
    pub environment: String,
    pub revision: u64,
    pub secrets: Vec<(String, SecretBytes)>,
    pub runner_id: String,
}

/// The runner a snapshot is for.
struct Runner {
    id: String,
    /// The agent chose the id (only such a runner may retry).
    chosen_by_agent: bool,
    retry_hash: Option<Vec<u8>>,
}

/// How the fetch is granted, once the credential checked out.
enum Grant {
    Token(String),
    /// The runner that already used this token asks again within the grace period.
    TokenRetry(String),
    Key(String),
}

impl Grant {
    fn credential_id(&self) -> &str {
        match self {
            Grant::Token(id) | Grant::TokenRetry(id) | Grant::Key(id) => id,
        }
    }
}

fn valid_runner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn runner(id: String, retry_key: &[u8]) -> Result<Runner> {
    let chosen_by_agent = !id.is_empty();
    let id = if id.is_empty() {
        generate_runner_id()
    } else if valid_runner_id(&id) {
        id
    } else {
        return Err(ServiceError::InvalidArgument(
            "runner_id: 1 to 128 characters A-Z, a-z, 0-9, '.', '_', ':', '-'".into(),
        ));
    };
    let retry_hash = match retry_key.len() {
        0 => None,
        16..=64 => Some(Sha256::digest(retry_key).to_vec()),
        _ => {
            return Err(ServiceError::InvalidArgument(
                "retry_key: 16 to 64 random bytes, or empty".into(),
            ))
        }
    };
    Ok(Runner {
        id,
        chosen_by_agent,
        retry_hash,
    })
}

/// The names a build references: valid, de-duplicated, 1 to [`MAX_NAME_LIST`].
fn build_names(names: Vec<String>) -> Result<Vec<String>> {
    let names = allow_list("names", names)?;
    if names.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "names: name at least one secret the build references".into(),
        ));
    }
    if names.len() > MAX_NAME_LIST {
        return Err(ServiceError::InvalidArgument(format!(
            "names: at most {MAX_NAME_LIST} per build"
        )));
    }
    Ok(names)
}

/// Names of `names` that `rows` lack.
fn missing<'a>(names: &'a [String], rows: &[SealedSecret]) -> Vec<&'a str> {
    names
        .iter()
        .filter(|n| !rows.iter().any(|r| &r.name == *n))
        .map(String::as_str)
        .collect()
}

impl Service {
    /// Serves the values `fetcher` may have for `req.purpose`, recorded and audited (names and
    /// counts, never values) in the same transaction that takes the token's use.
    pub async fn fetch(&self, fetcher: Fetcher, req: FetchRequest) -> Result<Fetched> {
        let now = self.now();
        let purpose = req.purpose;
        let runner = match purpose {
            Purpose::Run => Some(runner(req.runner_id, &req.retry_key)?),
            Purpose::Build => None,
        };
        let requested = optional_environment(&req.environment)?;
        let names = match purpose {
            Purpose::Run => only_list(req.names)?,
            Purpose::Build => build_names(req.names)?,
        };
        let (grant, env, names) = match fetcher {
            Fetcher::Token {
                credential,
                verified,
            } => {
                let retry_of = runner
                    .as_ref()
                    .filter(|r| r.chosen_by_agent)
                    .and_then(|r| Some((r.id.as_str(), r.retry_hash.as_deref()?)));
                self.grant_token(
                    &credential,
                    verified,
                    retry_of,
                    requested,
                    names,
                    purpose,
                    now,
                )
                .await
                .inspect_err(|_| {
                    crate::metrics::METRICS.tokens_refused.inc();
                })?
            }
            Fetcher::Key(principal) => self.grant_key(principal, requested, names, purpose)?,
        };
        let (revision, rows) = match purpose {
            Purpose::Run => self.store.sealed_snapshot(&env).await?,
            Purpose::Build => {
                let (revision, rows) = self.store.sealed_secrets(&env).await?;
                (revision, Arc::new(rows))
            }
        };
        let chosen = self.choose(purpose, &env, &names, &rows)?;
        // The names a runner got, kept with its start to tell when it is stale.
        let received = runner
            .as_ref()
            .map(|_| Received::new(!names.is_empty(), chosen.iter().map(|r| r.name.as_str())));
        let mut secrets = Vec::with_capacity(chosen.len());
        for r in chosen {
            let value = self.sealer.open(&env, &r.name, &r.sealed)?;
            secrets.push((r.name.clone(), value));
        }
        let audit = AuditRecord {
            revision: Some(revision),
            runner_id: runner.as_ref().map(|r| r.id.clone()),
            values: Some(secrets.len() as u32),
            ..AuditRecord::new(
                now,
                grant.credential_id(),
                purpose.words().action,
                Some(env.clone()),
                if runner.is_some() {
                    vec![]
                } else {
                    names.clone()
                },
            )
        };
        self.record(&grant, runner.as_ref(), received, audit)
            .await?;
        match &runner {
            Some(r) => {
                crate::metrics::METRICS.snapshots_served.inc();
                tracing::info!(runner_id = %r.id, environment = %env, revision, secrets = secrets.len(), credential = %grant.credential_id(), "snapshot served");
            }
            None => {
                tracing::info!(environment = %env, revision, names = %names.join(","), credential = %grant.credential_id(), "build secrets served")
            }
        }
        Ok(Fetched {
            environment: env,
            revision,
            secrets,
            runner_id: runner.map(|r| r.id).unwrap_or_default(),
        })
    }

    /// A runner token's fetch: the token must allow it (see [`Service::check_token`]), be for
    /// the requested environment, and its allow-list hold every name asked for. Returns the
    /// grant, the environment and the names to serve.
    #[allow(clippy::too_many_arguments)]
    async fn grant_token(
        &self,
        cred: &Credential,
        verified: Option<RunnerTokenRow>,
        retry_of: Option<(&str, &[u8])>,
        requested: Option<String>,
        names: Vec<String>,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<(Grant, String, Vec<String>)> {
        let (token, retry) = self
            .check_token(cred, verified, retry_of, now, purpose)
            .await?;
        if let Some(env) = &requested {
            if *env != token.environment {
                return Err(ServiceError::PermissionDenied(format!(
                    "runner token {} is for environment {:?}, not {env:?}",
                    token.id, token.environment
                )));
            }
        }
        let names = match token.only {
            Some(allowed) => {
                let extra: Vec<&str> = names
                    .iter()
                    .filter(|n| !allowed.contains(n))
                    .map(String::as_str)
                    .collect();
                if !extra.is_empty() {
                    return Err(ServiceError::PermissionDenied(format!(
                        "runner token {} does not allow {}: its allow-list is {}",
                        token.id,
                        extra.join(", "),
                        allowed.join(",")
                    )));
                }
                // A snapshot without an allow-list of its own gets the token's.
                if names.is_empty() {
                    allowed
                } else {
                    names
                }
            }
            None => names,
        };
        let grant = if retry {
            Grant::TokenRetry(token.id)
        } else {
            Grant::Token(token.id)
        };
        Ok((grant, token.environment, names))
    }

    /// A key's fetch: it needs the purpose's scope for the environment, which may be left out
    /// when the key has that scope for exactly one.
    fn grant_key(
        &self,
        principal: Principal,
        requested: Option<String>,
        names: Vec<String>,
        purpose: Purpose,
    ) -> Result<(Grant, String, Vec<String>)> {
        let words = purpose.words();
        let env = match requested {
            Some(env) => env,
            None => {
                let mut envs = principal
                    .scopes
                    .iter()
                    .filter_map(|s| purpose.environment_of_scope(s));
                match (envs.next(), envs.next()) {
                    (Some(e), None) => e.to_string(),
                    (None, _) => {
                        return Err(ServiceError::PermissionDenied(format!(
                            "key {} has no {} scope: it cannot {}",
                            principal.key_id, words.scope, words.fetch
                        )))
                    }
                    _ => {
                        return Err(ServiceError::InvalidArgument(format!(
                            "environment: key {} may {}; name one (RUNSEAL_ENV)",
                            principal.key_id, words.several
                        )))
                    }
                }
            }
        };
        require(&principal, purpose.scope(env.clone()))?;
        Ok((Grant::Key(principal.key_id), env, names))
    }

    /// Checks a runner token minted for `purpose` without taking a use. Returns its row and
    /// whether this is the retry of the runner that used it.
    async fn check_token(
        &self,
        cred: &Credential,
        verified: Option<RunnerTokenRow>,
        retry_of: Option<(&str, &[u8])>,
        now: OffsetDateTime,
        purpose: Purpose,
    ) -> Result<(RunnerTokenRow, bool)> {
        let refused = |what: &str| ServiceError::Unauthenticated(format!("runner token {what}"));
        let row = self.token_row(cred, verified).await?;
        if row.revoked_at.is_some() {
            return Err(refused(&format!("{} has been revoked", row.id)));
        }
        if row.expires_at <= now {
            return Err(refused(&format!("{} has expired", row.id)));
        }
        let mut retry = false;
        if row.uses_left == 0 {
            // Only the runner that took the use, proven by its retry key, may ask again.
            retry = match retry_of {
                Some((runner, retry_hash)) => {
                    self.store
                        .runner_started_with(&row.id, runner, retry_hash, now - RETRY_GRACE)
                        .await?
                }
                None => false,
            };
            if !retry {
                return Err(refused(&format!("{} has already been used", row.id)));
            }
        }
        if row.purpose != purpose.as_str() {
            return Err(ServiceError::PermissionDenied(format!(
                "runner token {} was minted for {}, not for {}",
                row.id,
                row.purpose,
                purpose.words().wanted
            )));
        }
        Ok((row, retry))
    }

    /// The rows to serve: the names asked for (each must be set), or with none, every secret
    /// exposed by default. A stored name that the policy denies now (an upgrade or a config
    /// change) never goes to a runner; an allow-list that names it is refused, naming it.
    fn choose<'a>(
        &self,
        purpose: Purpose,
        env: &str,
        names: &[String],
        rows: &'a [SealedSecret],
    ) -> Result<Vec<&'a SealedSecret>> {
        if purpose == Purpose::Run {
            if let Some((n, why)) = names.iter().find_map(|n| Some((n, self.policy.denied(n)?))) {
                return Err(ServiceError::FailedPrecondition(format!(
                    "secret {n:?} (named in the allow-list) is denied by runseald's name policy: {why}"
                )));
            }
        }
        if names.is_empty() {
            return Ok(rows
                .iter()
                .filter(|r| r.exposed.unwrap_or(self.expose_by_default))
                .filter(|r| match self.policy.denied(&r.name) {
                    Some(_) => {
                        crate::metrics::METRICS.denied_names_withheld.inc();
                        tracing::warn!(environment = %env, name = %r.name, "stored secret left out of the snapshot: its name is denied now (unset it, or allow it with allowed_names)");
                        false
                    }
                    None => true,
                })
                .collect());
        }
        let missing = missing(names, rows);
        if !missing.is_empty() {
            return Err(ServiceError::FailedPrecondition(format!(
                "not set in environment {env:?}: {} ({})",
                missing.join(", "),
                purpose.words().names
            )));
        }
        Ok(rows.iter().filter(|r| names.contains(&r.name)).collect())
    }

    /// Records the fetch and takes the token's use (if any) in one transaction: a runner start
    /// for a snapshot, the audit row for a build. Refused when another caller took the last use
    /// first.
    async fn record(
        &self,
        grant: &Grant,
        runner: Option<&Runner>,
        received: Option<Received>,
        audit: AuditRecord,
    ) -> Result<()> {
        let taken = match runner {
            None => {
                let token = matches!(grant, Grant::Token(_)).then(|| grant.credential_id());
                self.store.record_build_fetch(token, audit).await?
            }
            Some(r) => {
                let record = RunnerRecord {
                    runner_id: r.id.clone(),
                    environment: audit.environment.clone().unwrap_or_default(),
                    revision: audit.revision.unwrap_or_default(),
                    started_at: audit.at,
                    credential_id: grant.credential_id().to_string(),
                    retry_hash: match grant {
                        Grant::Key(_) => None,
                        _ => r.retry_hash.clone(),
                    },
                    received,
                };
                match grant {
                    Grant::Token(id) => self.store.redeem_runner_token(id, &record, &audit).await?,
                    Grant::TokenRetry(id) => {
                        // Served again, so audited again: the audit log holds every snapshot.
                        self.store.append_audit(audit).await?;
                        tracing::info!(token_id = %id, runner_id = %r.id, "snapshot served again to the runner that used this token");
                        return Ok(());
                    }
                    Grant::Key(_) => {
                        self.store.record_runner(&record, &audit).await?;
                        return Ok(());
                    }
                }
            }
        };
        if !taken {
            crate::metrics::METRICS.tokens_refused.inc();
            return Err(ServiceError::Unauthenticated(format!(
                "runner token {} has already been used",
                grant.credential_id()
            )));
        }
        if matches!(grant, Grant::Token(_)) {
            crate::metrics::METRICS.tokens_redeemed.inc();
        }
        Ok(())
    }
}
