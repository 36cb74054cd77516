//! The runseal API (`runseal.v1`: Secrets, Environments, Keys, Runners, Audit) over the service
//! layer: each RPC decodes its message, calls one operation of [`Service`] and encodes the
//! answer. No rule lives here.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{credential_of, keyed, keyed_rpcs, principal, timestamp, verified};
use crate::auth::{parse_scopes, Principal};
use crate::proto::v1;
use crate::secret::SecretBytes;
use crate::service::{self, FetchRequest, Fetcher, IssueRequest, IssuedToken, Purpose, Service};
use crate::store::{
    AuditRow, Change, EnvironmentRow, KeyRow, RunnerRow, RunnerTokenRow, SecretMeta, SecretVersion,
};

/// Every `runseal.v1` service, on one service layer.
#[derive(Clone)]
pub struct RunsealApi {
    service: Arc<Service>,
}

impl RunsealApi {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }

    async fn keyed<T>(&self, request: Request<T>) -> std::result::Result<(Principal, T), Status> {
        keyed(&self.service, request, |m| m).await
    }

    fn status(&self, e: service::ServiceError) -> Status {
        e.into()
    }

    /// A fetch of values: the credential is a runner token or a key, as the auth layer
    /// verified it.
    async fn fetch<T>(
        &self,
        mut request: Request<T>,
        decode: impl FnOnce(T) -> FetchRequest,
    ) -> std::result::Result<service::Fetched, Status> {
        let credential = credential_of(&request)?;
        let verified = verified(&mut request);
        let req = decode(request.into_inner());
        let fetcher = if credential.is_runner_token() {
            Fetcher::Token {
                verified: verified.and_then(|v| v.into_token_for(&credential)),
                credential,
            }
        } else {
            Fetcher::Key(principal(&self.service, &credential, verified).await?)
        };
        Ok(self.service.fetch(fetcher, req).await?)
    }
}

fn secret_values(secrets: Vec<(String, SecretBytes)>) -> Vec<v1::SecretValue> {
    secrets
        .into_iter()
        .map(|(name, value)| v1::SecretValue {
            name,
            value: value.expose().to_vec(),
        })
        .collect()
}

fn environment(e: EnvironmentRow) -> v1::Environment {
    v1::Environment {
        name: e.name,
        revision: e.revision,
        secret_count: e.secret_count as u32,
        created_at: Some(timestamp(e.created_at)),
    }
}

fn key_info(k: &KeyRow) -> v1::KeyInfo {
    v1::KeyInfo {
        key_id: k.id.clone(),
        label: k.label.clone(),
        scopes: parse_scopes(&k.scopes)
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        created_at: Some(timestamp(k.created_at)),
        last_used_at: k.last_used_at.map(timestamp),
        revoked_at: k.revoked_at.map(timestamp),
    }
}

// Secrets: values enter with `SetSecrets` and never leave through this service.
keyed_rpcs! {
    RunsealApi: v1::secrets_server::Secrets {
        unset_secret(v1::UnsetSecretRequest) -> v1::UnsetSecretResponse = |s, p, req| {
            // `name` (older clients, checked as given even when empty) and `names` together
            // are one change.
            let names: Vec<String> = if req.names.is_empty() {
                vec![req.name]
            } else {
                (!req.name.is_empty())
                    .then_some(req.name)
                    .into_iter()
                    .chain(req.names)
                    .collect()
            };
            let revision = s.unset_secrets(&p, &req.environment, names).await?;
            Ok(v1::UnsetSecretResponse { revision })
        };
        list_secrets(v1::ListSecretsRequest) -> v1::ListSecretsResponse = |s, p, req| {
            let (revision, rows) = s.list_secrets(&p, &req.environment).await?;
            let default = s.expose_by_default;
            let secrets = rows.into_iter().map(|m| secret_info(m, default)).collect();
            Ok(v1::ListSecretsResponse { secrets, revision })
        };
        set_exposure(v1::SetExposureRequest) -> v1::SetExposureResponse = |s, p, req| {
            let revision = s
                .set_exposure(&p, &req.environment, &req.name, req.exposed_by_default)
                .await?;
            Ok(v1::SetExposureResponse { revision })
        };
    }
    also {
        async fn set_secrets(
            &self,
            request: Request<v1::SetSecretsRequest>,
        ) -> std::result::Result<Response<v1::SetSecretsResponse>, Status> {
            // Into zeroizing buffers first, so no early return, not even a refused key, leaves
            // plaintext behind.
            let decode = |mut req: v1::SetSecretsRequest| {
                let batch: Vec<_> = req.secrets.drain(..).map(|mut s| s.take()).collect();
                (std::mem::take(&mut req.environment), batch, req.exposed_by_default)
            };
            let (p, (env, batch, exposed)) = keyed(&self.service, request, decode).await?;
            let revision = self.service.set_secrets(&p, &env, batch, exposed).await?;
            Ok(Response::new(v1::SetSecretsResponse { revision }))
        }
    }
}

// Environments: list what the key may see; create and delete (admin).
keyed_rpcs! {
    RunsealApi: v1::environments_server::Environments {
        list_environments(v1::ListEnvironmentsRequest) -> v1::ListEnvironmentsResponse =
            |s, p, _| {
                let environments = s.list_environments(&p).await?;
                let environments = environments.into_iter().map(environment).collect();
                Ok(v1::ListEnvironmentsResponse { environments })
            };
        create_environment(v1::CreateEnvironmentRequest) -> v1::CreateEnvironmentResponse =
            |s, p, req| {
                let row = s.create_environment(&p, &req.name).await?;
                Ok(v1::CreateEnvironmentResponse { environment: Some(environment(row)) })
            };
        delete_environment(v1::DeleteEnvironmentRequest) -> v1::DeleteEnvironmentResponse =
            |s, p, req| {
                let deleted = s.delete_environment(&p, &req.name, req.force).await?;
                Ok(v1::DeleteEnvironmentResponse { deleted_secrets: deleted as u32 })
            };
    }
}

// Keys (admin only): the secret of a new key is returned once.
keyed_rpcs! {
    RunsealApi: v1::keys_server::Keys {
        create_key(v1::CreateKeyRequest) -> v1::CreateKeyResponse = |s, p, req| {
            let (row, cred) = s.create_key(&p, &req.scopes, req.label).await?;
            let credential = cred.to_line().to_string();
            Ok(v1::CreateKeyResponse { key: Some(key_info(&row)), credential })
        };
        list_keys(v1::ListKeysRequest) -> v1::ListKeysResponse = |s, p, _| {
            let keys = s.list_keys(&p).await?.iter().map(key_info).collect();
            Ok(v1::ListKeysResponse { keys })
        };
        revoke_key(v1::RevokeKeyRequest) -> v1::RevokeKeyResponse = |s, p, req| {
            let runner_tokens_revoked = s.revoke_key(&p, req.key_id).await?;
            Ok(v1::RevokeKeyResponse { runner_tokens_revoked })
        };
        who_am_i(v1::WhoAmIRequest) -> v1::WhoAmIResponse = |s, p, _| {
            let row = s.who_am_i(&p).await?;
            Ok(v1::WhoAmIResponse { key: Some(key_info(&row)) })
        };
    }
}

// Runners: runner tokens, the snapshot and build fetch, and the record of runner starts.
keyed_rpcs! {
    RunsealApi: v1::runners_server::Runners {
        issue_runner_tokens(v1::IssueRunnerTokensRequest) -> v1::IssueRunnerTokensResponse =
            |s, p, req| {
                let req = IssueRequest {
                    environment: req.environment,
                    count: req.count,
                    ttl_seconds: req.ttl_seconds,
                    uses: req.uses,
                    purpose: req.purpose,
                    only: req.only,
                };
                let issued = s.issue_runner_tokens(&p, req).await?;
                let tokens = issued.into_iter().map(runner_token).collect();
                Ok(v1::IssueRunnerTokensResponse { tokens })
            };
        revoke_runner_token(v1::RevokeRunnerTokenRequest) -> v1::RevokeRunnerTokenResponse =
            |s, p, req| {
                s.revoke_runner_token(&p, &req.token_id).await?;
                Ok(v1::RevokeRunnerTokenResponse {})
            };
        revoke_runner_tokens(v1::RevokeRunnerTokensRequest) -> v1::RevokeRunnerTokensResponse =
            |s, p, req| {
                let revoked = s.revoke_runner_tokens(&p, &req.environment, req.all).await?;
                Ok(v1::RevokeRunnerTokensResponse { revoked })
            };
        list_runner_tokens(v1::ListRunnerTokensRequest) -> v1::ListRunnerTokensResponse =
            |s, p, req| {
                let rows = s.list_runner_tokens(&p, &req.environment, req.limit).await?;
                let tokens = rows.into_iter().map(runner_token_info).collect();
                Ok(v1::ListRunnerTokensResponse { tokens })
            };
        list_runners(v1::ListRunnersRequest) -> v1::ListRunnersResponse = |s, p, req| {
            let rows = s.list_runners(&p, &req.environment, req.stale_only, req.limit).await?;
            Ok(v1::ListRunnersResponse { runners: rows.into_iter().map(runner).collect() })
        };
    }
    also {
        async fn get_snapshot(
            &self,
            request: Request<v1::GetSnapshotRequest>,
        ) -> std::result::Result<Response<v1::GetSnapshotResponse>, Status> {
            let fetched = self
                .fetch(request, |req| FetchRequest {
                    purpose: Purpose::Run,
                    environment: req.environment,
                    names: req.only,
                    runner_id: req.runner_id,
                    retry_key: req.retry_key,
                })
                .await?;
            Ok(Response::new(v1::GetSnapshotResponse {
                environment: fetched.environment,
                revision: fetched.revision,
                secrets: secret_values(fetched.secrets),
                runner_id: fetched.runner_id,
            }))
        }

        async fn get_build_secrets(
            &self,
            request: Request<v1::GetBuildSecretsRequest>,
        ) -> std::result::Result<Response<v1::GetBuildSecretsResponse>, Status> {
            let decode = |req: v1::GetBuildSecretsRequest| FetchRequest {
                purpose: Purpose::Build,
                environment: req.environment,
                names: req.names,
                runner_id: String::new(),
                retry_key: Vec::new(),
            };
            let fetched = self.fetch(request, decode).await?;
            Ok(Response::new(v1::GetBuildSecretsResponse {
                environment: fetched.environment,
                revision: fetched.revision,
                secrets: secret_values(fetched.secrets),
            }))
        }
    }
}

// Audit (admin only): the newest entries first.
keyed_rpcs! {
    RunsealApi: v1::audit_server::Audit {
        list_audit(v1::ListAuditRequest) -> v1::ListAuditResponse = |s, p, req| {
            let rows = s.list_audit(&p, &req.environment, req.before_id, req.limit).await?;
            Ok(v1::ListAuditResponse { entries: rows.into_iter().map(audit_entry).collect() })
        };
    }
}

/// `default`: whether the server exposes a secret that has no setting of its own.
fn secret_info(m: SecretMeta, default: bool) -> v1::SecretInfo {
    v1::SecretInfo {
        exposed: Some(m.exposed.unwrap_or(default)),
        name: m.name,
        environment: m.environment,
        created_at: Some(timestamp(m.created_at)),
        updated_at: Some(timestamp(m.updated_at)),
        exposed_by_default: m.exposed,
    }
}

fn runner_token(t: IssuedToken) -> v1::RunnerToken {
    v1::RunnerToken {
        token_id: t.credential.key_id().to_string(),
        token: t.credential.to_line().to_string(),
        expires_at: Some(timestamp(t.expires_at)),
    }
}

fn runner_token_info(t: RunnerTokenRow) -> v1::RunnerTokenInfo {
    v1::RunnerTokenInfo {
        token_id: t.id,
        environment: t.environment,
        uses_left: t.uses_left,
        expires_at: Some(timestamp(t.expires_at)),
        created_at: Some(timestamp(t.created_at)),
        created_by: t.created_by,
        purpose: t.purpose,
        only: t.only.unwrap_or_default(),
    }
}

fn runner(r: RunnerRow) -> v1::Runner {
    v1::Runner {
        stale: r.stale,
        runner_id: r.record.runner_id,
        environment: r.record.environment,
        revision: r.record.revision,
        current_revision: r.current_revision,
        started_at: Some(timestamp(r.record.started_at)),
        credential_id: r.record.credential_id,
    }
}

fn audit_entry(r: AuditRow) -> v1::AuditEntry {
    v1::AuditEntry {
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
        via: r.via.unwrap_or_default(),
    }
}

fn version_info(v: SecretVersion) -> v1::SecretVersionInfo {
    v1::SecretVersionInfo {
        version: v.version,
        created_at: Some(timestamp(v.created_at)),
        created_by: v.created_by,
        current: v.current,
    }
}

fn change(c: Change) -> v1::EnvironmentChange {
    v1::EnvironmentChange {
        environment: c.environment,
        revision: c.revision,
        action: c.action,
        names: c.names,
        at: Some(timestamp(c.at)),
    }
}

fn diff(d: service::Diff) -> v1::DiffEnvironmentsResponse {
    v1::DiffEnvironmentsResponse {
        only_in_a: d.only_in_a,
        only_in_b: d.only_in_b,
        in_both: d
            .in_both
            .into_iter()
            .map(|e| v1::DiffEntry {
                name: e.name,
                a_updated_at: Some(timestamp(e.a_updated_at)),
                b_updated_at: Some(timestamp(e.b_updated_at)),
                equal: e.equal,
            })
            .collect(),
        values_compared: d.values_compared,
    }
}

/// How often a watch looks for changes made through other replicas (changes made through this
/// one wake it at once).
const WATCH_POLL: std::time::Duration = std::time::Duration::from_secs(1);

type ChangeStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<v1::EnvironmentChange, Status>> + Send>,
>;

// The life of a secret: history, rollback, purge, diff, copy, and the change feed.
keyed_rpcs! {
    RunsealApi: v1::lifecycle_server::Lifecycle {
        secret_history(v1::SecretHistoryRequest) -> v1::SecretHistoryResponse = |s, p, req| {
            let versions = s.secret_history(&p, &req.environment, &req.name).await?;
            Ok(v1::SecretHistoryResponse { versions: versions.into_iter().map(version_info).collect() })
        };
        rollback_secret(v1::RollbackSecretRequest) -> v1::RollbackSecretResponse = |s, p, req| {
            let revision = s.rollback_secret(&p, &req.environment, &req.name, req.version).await?;
            Ok(v1::RollbackSecretResponse { revision })
        };
        purge_secret(v1::PurgeSecretRequest) -> v1::PurgeSecretResponse = |s, p, req| {
            let revision = s.purge_secret(&p, &req.environment, &req.name, req.version).await?;
            Ok(v1::PurgeSecretResponse { revision })
        };
        diff_environments(v1::DiffEnvironmentsRequest) -> v1::DiffEnvironmentsResponse =
            |s, p, req| {
                let d = s.diff_environments(&p, &req.a, &req.b).await?;
                Ok(diff(d))
            };
        copy_secrets(v1::CopySecretsRequest) -> v1::CopySecretsResponse = |s, p, req| {
            let revision = s.copy_secrets(&p, &req.from, &req.to, &req.names).await?;
            Ok(v1::CopySecretsResponse { revision })
        };
    }
    also {
        type WatchEnvironmentsStream = ChangeStream;

        async fn watch_environments(
            &self,
            request: Request<v1::WatchEnvironmentsRequest>,
        ) -> std::result::Result<Response<ChangeStream>, Status> {
            let (p, req) = self.keyed(request).await?;
            let points = req
                .environments
                .into_iter()
                .map(|w| (w.environment, w.after_revision))
                .collect();
            let watch = self.service.watch(&p, points).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(feed(self.service.clone(), watch, tx));
            Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
        }
    }
}

/// Sends the changes of `watch` to `tx` as they are committed, until the watcher goes away, an
/// error ends the watch, or runseald stops.
async fn feed(
    service: Arc<Service>,
    mut watch: service::Watch,
    tx: tokio::sync::mpsc::Sender<Result<v1::EnvironmentChange, Status>>,
) {
    let mut stopping = service.stopping();
    loop {
        // Registered before the poll, so a change committed during it still wakes us.
        let woken = service.changes_notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match service.poll_watch(&mut watch).await {
            Ok(changes) => {
                for c in changes {
                    if tx.send(Ok(change(c))).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(WATCH_POLL) => {}
            _ = tx.closed() => return,
            _ = async { drop(stopping.wait_for(|s| *s).await) } => {
                let _ = tx
                    .send(Err(Status::unavailable(
                        "runseald is shutting down; watch again from the last revision you received",
                    )))
                    .await;
                return;
            }
        }
    }
}
