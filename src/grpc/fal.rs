//! `controller.IsolateController`: the subset of fal's API that the `fal` CLI and Python SDK use
//! to manage secrets and environments, served beside `runseal.v1` so they work unchanged against
//! runseald.
//!
//! Every operation is the same operation of the service layer as in `runseal.v1`: same scopes,
//! validation, audit and storage. Keys are accepted as the fal
//! client sends them (`auth-key-id` / `auth-key`, see [`super::credential_from_headers`]). What this module
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

use super::{keyed, keyed_rpcs, timestamp};
use crate::auth::Principal;
use crate::proto::controller::{self, isolate_controller_server::IsolateController};
use crate::secret::SecretBytes;
use crate::service::{Service, ServiceError};
use crate::store::{EnvironmentRow, SecretMeta};

pub struct FalApi {
    service: Arc<Service>,
}

impl FalApi {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }

    /// The caller's key, checked like every runseal service; a refused key gets a hint in
    /// fal's terms.
    async fn keyed<T>(&self, request: Request<T>) -> std::result::Result<(Principal, T), Status> {
        keyed(&self.service, request, |m| m)
            .await
            .map_err(with_fal_hint)
    }

    /// A failure as a fal user should read it: an environment that does not exist is created
    /// with the fal command.
    fn status(&self, e: ServiceError) -> Status {
        match e {
            ServiceError::EnvironmentNotFound(env) => ServiceError::NotFound(format!(
                "environment {env:?} does not exist; create it with `fal environments create {env}`"
            )),
            e => e,
        }
        .into()
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

fn environment_list(rows: Vec<EnvironmentRow>) -> controller::ListEnvironmentsResponse {
    controller::ListEnvironmentsResponse {
        environments: rows.into_iter().map(environment_info).collect(),
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

/// `UNIMPLEMENTED` for an RPC of fal's API that runseal does not serve (`method` as the
/// proto names it: `UpdateApplication`).
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

type Nothing = tokio_stream::Empty<std::result::Result<controller::Unsupported, Status>>;
type Unsupported = controller::Unsupported;

// The fal client sends `main` as an absent field or an empty string; both mean `main` (as an
// empty environment does for the service). fal deletes an environment with its secrets (its
// CLI warns and asks for the name first), so `DeleteEnvironment` is runseal's `env delete
// --force`.
keyed_rpcs! {
    FalApi: IsolateController {
        list_secrets(controller::ListSecretsRequest) -> controller::ListSecretsResponse =
            |s, p, req| {
                let env = req.environment_name.unwrap_or_default();
                let (_, rows) = s.list_secrets(&p, &env).await?;
                Ok(controller::ListSecretsResponse { secrets: rows.into_iter().map(secret).collect() })
            };
        list_environments(controller::ListEnvironmentsRequest) -> controller::ListEnvironmentsResponse =
            |s, p, _| {
                let rows = s.list_environments(&p).await?;
                Ok(environment_list(rows))
            };
        create_environment(controller::CreateEnvironmentRequest) -> controller::CreateEnvironmentResponse =
            |s, p, req| {
                // Refused rather than dropped: a description the user gave would silently vanish.
                if req.description.as_deref().is_some_and(|d| !d.is_empty()) {
                    return Err(ServiceError::InvalidArgument(
                        "description: runseal environments have no description; \
                         create the environment without --description"
                            .into(),
                    ));
                }
                let row = s.create_environment(&p, &req.name).await?;
                Ok(controller::CreateEnvironmentResponse { environment: Some(environment_info(row)) })
            };
        delete_environment(controller::DeleteEnvironmentRequest) -> controller::DeleteEnvironmentResponse =
            |s, p, req| {
                match s.delete_environment(&p, &req.name, true).await {
                    Err(ServiceError::EnvironmentNotFound(env)) => Err(ServiceError::NotFound(format!(
                        "environment {env:?} does not exist; `fal environments list` shows the environments"
                    ))),
                    done => done.map(|_| controller::DeleteEnvironmentResponse {}),
                }
            };
    }
    refuse {
        (Unsupported) -> Unsupported = unsupported_keys: [
            create_user_key, list_user_keys, revoke_user_key,
        ];
        (Unsupported) -> Nothing = unsupported: [run, map, register_application, build_environment];
        (Streaming<Unsupported>) -> Nothing = unsupported: [interactive_run, shell_runner];
        (Unsupported) -> Unsupported = unsupported: [
            update_application, list_applications, delete_application, rollout_application,
            set_alias, delete_alias, list_aliases, list_alias_runners, stop_runner, kill_runner,
            list_runners,
        ];
    }
    also {
    type RunStream = Nothing;
    type InteractiveRunStream = Nothing;
    type MapStream = Nothing;
    type RegisterApplicationStream = Nothing;
    type ShellRunnerStream = Nothing;
    type BuildEnvironmentStream = Nothing;

    async fn set_secret(
        &self,
        request: Request<controller::SetSecretRequest>,
    ) -> std::result::Result<Response<controller::SetSecretResponse>, Status> {
        // Into a zeroizing buffer first (no copy), so no early return, not even a refused key,
        // leaves plaintext behind.
        let decode = |mut req: controller::SetSecretRequest| {
            let value = req.value.take().map(|v| SecretBytes::new(v.into_bytes()));
            (
                std::mem::take(&mut req.name),
                value,
                req.environment_name.take(),
                req.default_exposed,
            )
        };
        let (p, (name, value, env, exposed)) = keyed(&self.service, request, decode)
            .await
            .map_err(with_fal_hint)?;
        let env = env.unwrap_or_default();
        let done = match value {
            Some(value) => self.service.set_secrets(&p, &env, vec![(name, value)], exposed).await,
            None => self.service.unset_secret(&p, &env, &name).await,
        };
        done.map_err(|e| self.status(e))?;
        Ok(Response::new(controller::SetSecretResponse {}))
    }
    }
}

fn secret(m: SecretMeta) -> controller::Secret {
    controller::Secret {
        name: m.name,
        created_time: Some(timestamp(m.created_at)),
        environment_name: Some(m.environment),
        default_exposed: m.exposed,
    }
}
