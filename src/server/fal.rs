//! `controller.IsolateController`: the subset of fal's API that the `fal` CLI and Python SDK use
//! to manage secrets and environments, served beside `runseal.v1` so they work unchanged against
//! runseald.
//!
//! Every operation goes through the same shared functions as `runseal.v1` (`secrets`,
//! `environments`): same scopes, validation, audit and storage. Keys are accepted as the fal
//! client sends them (`auth-key-id` / `auth-key`, see [`super::credential_of`]). What this module
//! adds is the translation of fields and the wording of errors for a fal user; it must never
//! echo a value or a key, and answers every RPC outside secrets and environments with
//! `UNIMPLEMENTED`.
//!
//! `CreateUserKey`, `ListUserKeys` and `RevokeUserKey` are not served: fal keys carry presets
//! and permission names (`FULL`, `API`, `serverless:apps:run`, …) and a two-valued scope enum,
//! none of which maps onto runseal's per-environment scopes without inventing or losing rights.
//! Keys are managed with `runseal keys`.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::{
    credential_of, environment_of, environments, secrets, store_status, timestamp, Failure, State,
};
use crate::auth::{Credential, Principal};
use crate::proto::controller::{self, isolate_controller_server::IsolateController};
use crate::secret::SecretBytes;
use crate::store::{EnvironmentRow, StoreError};

pub struct FalService {
    state: Arc<State>,
}

impl FalService {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }

    /// Authenticates like every runseal service; a refused key gets a hint in fal's terms.
    async fn authenticate<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        self.state.authenticate(req).await.map_err(with_fal_hint)
    }

    /// Like `authenticate`, for a credential taken from the request before its message.
    async fn authenticate_credential(
        &self,
        cred: Result<Credential, Status>,
        verified: Option<super::Verified>,
    ) -> Result<Principal, Status> {
        let checked = match cred {
            Ok(cred) => self.state.authenticate_verified(verified, &cred).await,
            Err(e) => Err(e),
        };
        checked.map_err(with_fal_hint)
    }
}

/// An UNAUTHENTICATED status with a hint in fal's terms (others unchanged).
pub(super) fn with_fal_hint(s: Status) -> Status {
    if s.code() == tonic::Code::Unauthenticated {
        Status::unauthenticated(format!(
            "{}; FAL_KEY must hold a runseal key KEY_ID:KEY_SECRET (`runseal keys create`)",
            s.message()
        ))
    } else {
        s
    }
}

/// The request carries a plaintext value: its `Debug` (skipped in `build.rs`) never shows it.
impl fmt::Debug for controller::SetSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSecretRequest")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("environment_name", &self.environment_name)
            .field("default_exposed", &self.default_exposed)
            .finish()
    }
}

/// A failure as a fal user should read it: store errors whose runseal wording names a runseal
/// command get the fal command instead.
fn fal_status(f: Failure) -> Status {
    match f {
        Failure::Store(StoreError::EnvironmentNotFound(env)) => Status::not_found(format!(
            "environment {env:?} does not exist; create it with `fal environments create {env}`"
        )),
        Failure::Store(e) => store_status(&e),
        Failure::Status(s) => s,
    }
}

fn environment_info(e: EnvironmentRow) -> controller::EnvironmentInfo {
    controller::EnvironmentInfo {
        is_default: e.name == crate::MAIN_ENV,
        name: e.name,
        description: None,
        created_at: Some(timestamp(e.created_at)),
    }
}

/// `UNIMPLEMENTED` for an RPC of fal's API that runseal does not serve.
fn unsupported(method: &str) -> Status {
    Status::unimplemented(format!(
        "runseal serves only secrets and environments of the fal API \
         (`fal secrets`, `fal environments`); {method} is not available"
    ))
}

fn unsupported_keys(method: &str) -> Status {
    Status::unimplemented(format!(
        "runseal serves only secrets and environments of the fal API; {method} is not available: \
         manage keys with `runseal keys create|list|revoke`"
    ))
}

type Nothing = tokio_stream::Empty<Result<controller::Unsupported, Status>>;

/// The fal client sends `main` as an absent field or an empty string; both mean `main`.
fn environment_of_fal(raw: Option<&str>) -> Result<String, Status> {
    environment_of(raw.unwrap_or_default())
}

#[tonic::async_trait]
impl IsolateController for FalService {
    async fn set_secret(
        &self,
        request: Request<controller::SetSecretRequest>,
    ) -> Result<Response<controller::SetSecretResponse>, Status> {
        let mut request = request;
        let cred = credential_of(&request);
        let verified = super::verified(&mut request);
        let req = request.into_inner();
        // Into a zeroizing buffer first (no copy), so no early return, not even a refused key,
        // leaves plaintext behind.
        let value = req.value.map(|v| SecretBytes::new(v.into_bytes()));
        let principal = self.authenticate_credential(cred, verified).await?;
        let env = environment_of_fal(req.environment_name.as_deref())?;
        match value {
            Some(value) => {
                let batch = vec![(req.name, value)];
                secrets::set(&self.state, &principal, &env, batch, req.default_exposed)
                    .await
                    .map_err(fal_status)?;
            }
            None => {
                secrets::unset(&self.state, &principal, &env, &req.name)
                    .await
                    .map_err(fal_status)?;
            }
        }
        Ok(Response::new(controller::SetSecretResponse {}))
    }

    async fn list_secrets(
        &self,
        request: Request<controller::ListSecretsRequest>,
    ) -> Result<Response<controller::ListSecretsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let env = environment_of_fal(request.get_ref().environment_name.as_deref())?;
        let (_, rows) = secrets::list(&self.state, &principal, &env)
            .await
            .map_err(fal_status)?;
        let secrets = rows
            .into_iter()
            .map(|m| controller::Secret {
                name: m.name,
                created_time: Some(timestamp(m.created_at)),
                environment_name: Some(m.environment),
                default_exposed: m.exposed,
            })
            .collect();
        Ok(Response::new(controller::ListSecretsResponse { secrets }))
    }

    async fn list_environments(
        &self,
        request: Request<controller::ListEnvironmentsRequest>,
    ) -> Result<Response<controller::ListEnvironmentsResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let environments = environments::list(&self.state, &principal)
            .await
            .map_err(fal_status)?
            .into_iter()
            .map(environment_info)
            .collect();
        Ok(Response::new(controller::ListEnvironmentsResponse {
            environments,
        }))
    }

    async fn create_environment(
        &self,
        request: Request<controller::CreateEnvironmentRequest>,
    ) -> Result<Response<controller::CreateEnvironmentResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let req = request.into_inner();
        // Refused rather than dropped: a description the user gave would silently vanish.
        if req.description.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(Status::invalid_argument(
                "description: runseal environments have no description; \
                 create the environment without --description",
            ));
        }
        let row = environments::create(&self.state, &principal, &req.name)
            .await
            .map_err(fal_status)?;
        Ok(Response::new(controller::CreateEnvironmentResponse {
            environment: Some(environment_info(row)),
        }))
    }

    async fn delete_environment(
        &self,
        request: Request<controller::DeleteEnvironmentRequest>,
    ) -> Result<Response<controller::DeleteEnvironmentResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let name = request.into_inner().name;
        // fal deletes an environment with its secrets (its CLI warns and asks for the name
        // first), so this is runseal's `env delete --force`.
        environments::delete(&self.state, &principal, &name, true)
            .await
            .map_err(|f| match f {
                Failure::Store(StoreError::EnvironmentNotFound(env)) => Status::not_found(format!(
                    "environment {env:?} does not exist; `fal environments list` shows the \
                     environments"
                )),
                f => fal_status(f),
            })?;
        Ok(Response::new(controller::DeleteEnvironmentResponse {}))
    }

    async fn create_user_key(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported_keys("CreateUserKey"))
    }

    async fn list_user_keys(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported_keys("ListUserKeys"))
    }

    async fn revoke_user_key(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported_keys("RevokeUserKey"))
    }

    type RunStream = Nothing;
    async fn run(&self, _: Request<controller::Unsupported>) -> Result<Response<Nothing>, Status> {
        Err(unsupported("Run"))
    }

    type InteractiveRunStream = Nothing;
    async fn interactive_run(
        &self,
        _: Request<Streaming<controller::Unsupported>>,
    ) -> Result<Response<Nothing>, Status> {
        Err(unsupported("InteractiveRun"))
    }

    type MapStream = Nothing;
    async fn map(&self, _: Request<controller::Unsupported>) -> Result<Response<Nothing>, Status> {
        Err(unsupported("Map"))
    }

    type RegisterApplicationStream = Nothing;
    async fn register_application(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<Nothing>, Status> {
        Err(unsupported("RegisterApplication"))
    }

    type ShellRunnerStream = Nothing;
    async fn shell_runner(
        &self,
        _: Request<Streaming<controller::Unsupported>>,
    ) -> Result<Response<Nothing>, Status> {
        Err(unsupported("ShellRunner"))
    }

    type BuildEnvironmentStream = Nothing;
    async fn build_environment(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<Nothing>, Status> {
        Err(unsupported("BuildEnvironment"))
    }

    async fn update_application(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("UpdateApplication"))
    }

    async fn list_applications(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("ListApplications"))
    }

    async fn delete_application(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("DeleteApplication"))
    }

    async fn rollout_application(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("RolloutApplication"))
    }

    async fn set_alias(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("SetAlias"))
    }

    async fn delete_alias(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("DeleteAlias"))
    }

    async fn list_aliases(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("ListAliases"))
    }

    async fn list_alias_runners(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("ListAliasRunners"))
    }

    async fn stop_runner(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("StopRunner"))
    }

    async fn kill_runner(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("KillRunner"))
    }

    async fn list_runners(
        &self,
        _: Request<controller::Unsupported>,
    ) -> Result<Response<controller::Unsupported>, Status> {
        Err(unsupported("ListRunners"))
    }
}
