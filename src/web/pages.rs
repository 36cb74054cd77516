//! The dashboard's handlers: decode the form or the path, call the service, render. Every rule
//! (scopes, validation, limits, audit) is the service's; a refusal re-renders the page with the
//! service's message and stores nothing. After a change the browser is redirected (303) to a
//! page that says what happened; a created key or token is shown only in the POST's response.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::session::{self, LoginPosted, Posted, Signed};
use super::views::{self, Chrome, Flash, SecretsView};
use super::{error_page, Web};
use crate::auth::{Credential, Principal, Scope};
use crate::dotenv;
use crate::records::EnvironmentRow;
use crate::secret::SecretBytes;
use crate::service::{IssueRequest, ServiceError};

type Web_ = State<Arc<Web>>;

fn chrome<'a>(s: &'a Signed, active: &'static str) -> Chrome<'a> {
    Chrome {
        key_id: &s.principal.key_id,
        csrf: &s.csrf,
        admin: s.principal.is_admin(),
        active,
    }
}

fn see_other(to: String) -> Response {
    Redirect::to(&to).into_response()
}

/// The one 403 for an environment this key may not see and one that does not exist.
fn no_environment(env: &str) -> Response {
    views::forbidden(&format!(
        "Environment {env:?} does not exist, or this key may not see it."
    ))
}

/// `?done=` messages after a redirect: fixed texts with a name, never a value.
#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
    name: Option<String>,
}

impl Done {
    fn flash(&self) -> Option<Flash> {
        let name = self.name.as_deref().unwrap_or_default();
        let text = match self.done.as_deref()? {
            "saved" => format!("Saved {name}."),
            "deleted" => format!("Deleted {name}."),
            "exposure" => format!("Changed the exposure of {name}."),
            "rolled-back" => {
                format!("Rolled {name} back: the old value is current again, as a new version.")
            }
            "created" => format!("Created environment {name}."),
            "env-deleted" => format!("Deleted environment {name}."),
            "revoked" => format!("Revoked key {name} and the runner tokens it minted."),
            _ => return None,
        };
        Some(Flash::Done(text))
    }
}

fn done(path: &str, what: &str, name: &str) -> Response {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    see_other(format!("{path}?done={what}&name={name}"))
}

pub async fn root(signed: Result<Signed, Response>, State(web): Web_) -> Response {
    match signed {
        Ok(s) => see_other(landing(&web, &s.principal).await),
        Err(_) => see_other("/login".into()),
    }
}

/// Where a signed-in key lands: `main`, else the first environment it may see.
async fn landing(web: &Web, p: &Principal) -> String {
    let envs = web.service.list_environments(p).await.unwrap_or_default();
    match envs
        .iter()
        .find(|e| e.name == crate::MAIN_ENV)
        .or(envs.first())
    {
        Some(e) => format!("/environments/{}", e.name),
        None => "/environments".into(),
    }
}

pub async fn login_form(State(web): Web_) -> Response {
    session::login_page(&web, None, StatusCode::OK, false)
}

const SIGN_IN_FAILED: &str =
    "Sign-in failed: the key is unknown, its secret is wrong, or it has been revoked.";

pub async fn login(State(web): Web_, form: LoginPosted) -> Response {
    let refuse = |msg: &str, status| session::login_page(&web, Some(msg), status, false);
    if !web.throttle.allows(form.client) {
        crate::metrics::METRICS.web_sign_in_throttled.inc();
        return refuse(
            "Too many failed sign-ins from this address: wait a few minutes and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let key = form.fields.text("key");
    let cred = match Credential::parse(&key) {
        Ok(c) => c,
        Err(_) => {
            web.throttle.failed(form.client);
            crate::metrics::METRICS.web_sign_in_failures.inc();
            return refuse(SIGN_IN_FAILED, StatusCode::UNAUTHORIZED);
        }
    };
    drop(key);
    if cred.is_runner_token() {
        web.throttle.failed(form.client);
        crate::metrics::METRICS.web_sign_in_failures.inc();
        return refuse(
            "That is a runner token: it only starts runners (runseal-agent). Sign in with a key (rk_…) instead.",
            StatusCode::UNAUTHORIZED,
        );
    }
    match web.service.sign_in(&cred).await {
        Ok(new) => {
            web.throttle.succeeded(form.client);
            let secure = web.config.secure;
            let mut res = see_other(landing(&web, &new.principal).await);
            let max_age = web.service.session_limits.absolute.as_secs();
            let cookies = [
                session::set_cookie(
                    session::session_cookie(secure),
                    new.secret.expose_secret(),
                    secure,
                    Some(max_age),
                ),
                session::set_cookie(session::login_cookie(secure), "", secure, Some(0)),
            ];
            for c in cookies {
                if let Ok(v) = c.parse() {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Err(ServiceError::Unauthenticated(_)) => {
            web.throttle.failed(form.client);
            crate::metrics::METRICS.web_sign_in_failures.inc();
            tracing::info!(key_id = %cred.key_id(), "dashboard sign-in refused");
            refuse(SIGN_IN_FAILED, StatusCode::UNAUTHORIZED)
        }
        Err(e) => error_page(None, &e),
    }
}

pub async fn logout(State(web): Web_, posted: Posted) -> Response {
    if let Err(e) = web
        .service
        .sign_out(posted.signed.secret().expose_secret())
        .await
    {
        return error_page(Some(&posted.signed), &e);
    }
    let secure = web.config.secure;
    let mut res = see_other("/login".into());
    let clear = session::set_cookie(session::session_cookie(secure), "", secure, Some(0));
    if let Ok(v) = clear.parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct Switch {
    env: String,
}

/// The environment dropdown's GET form (works without JavaScript).
pub async fn switch(_s: Signed, Query(q): Query<Switch>) -> Response {
    match crate::names::check_environment_name(&q.env) {
        Ok(()) => see_other(format!("/environments/{}", q.env)),
        Err(e) => views::bare(StatusCode::BAD_REQUEST, "Bad request", &e.to_string()),
    }
}

pub async fn environments(s: Signed, State(web): Web_, Query(d): Query<Done>) -> Response {
    environments_page(&web, &s, d.flash(), StatusCode::OK).await
}

async fn environments_page(
    web: &Web,
    s: &Signed,
    f: Option<Flash>,
    status: StatusCode,
) -> Response {
    let p = &s.principal;
    let envs = match web.service.list_environments(p).await {
        Ok(e) => e,
        Err(e) => return error_page(Some(s), &e),
    };
    let mut rows = Vec::with_capacity(envs.len());
    for e in envs {
        // What this key may not read shows as "—".
        let changed = match web.service.list_secrets(p, &e.name).await {
            Ok((_, list)) => list.iter().map(|m| m.updated_at).max(),
            Err(_) => None,
        };
        let stale = web
            .service
            .list_runners(p, &e.name, true, 10_000)
            .await
            .ok()
            .map(|r| r.len());
        rows.push((e, changed, stale));
    }
    let mut res =
        views::environments(&chrome(s, "environments"), f.as_ref(), &rows).into_response();
    *res.status_mut() = status;
    res
}

pub async fn create_environment(State(web): Web_, posted: Posted) -> Response {
    let s = &posted.signed;
    let name = posted.fields.text("name");
    match web.service.create_environment(&s.principal, &name).await {
        Ok(_) => done(&format!("/environments/{name}"), "created", &name),
        Err(e) => {
            environments_page(&web, s, Some(Flash::Error(e.to_string())), status_of(&e)).await
        }
    }
}

pub async fn delete_environment_form(
    s: Signed,
    State(web): Web_,
    Path(env): Path<String>,
) -> Response {
    let Some(e) = visible(&web, &s.principal, &env).await else {
        return no_environment(&env);
    };
    if let Err(e) = crate::service::require(&s.principal, Scope::Admin) {
        return error_page(Some(&s), &e);
    }
    let what = html! {
        p { "Delete environment " strong { (e.name) } "? This cannot be undone." }
        ul {
            li { (e.secret_count) " secret(s) and their values are deleted." }
            li { "Its runner tokens stop working and its runner records are deleted." }
            li { "Runners already running keep the values they started with." }
        }
    };
    views::confirm(
        &chrome(&s, "environments"),
        &format!("Delete {}", e.name),
        what,
        &format!("/environments/{}/delete", e.name),
        "Delete environment",
        &format!("/environments/{}", e.name),
    )
    .into_response()
}

pub async fn delete_environment(
    State(web): Web_,
    Path(env): Path<String>,
    posted: Posted,
) -> Response {
    let s = &posted.signed;
    if posted.fields.text("confirm") != "yes" {
        return see_other(format!("/environments/{env}/delete"));
    }
    match web
        .service
        .delete_environment(&s.principal, &env, true)
        .await
    {
        Ok(_) => done("/environments", "env-deleted", &env),
        Err(e) => {
            environments_page(&web, s, Some(Flash::Error(e.to_string())), status_of(&e)).await
        }
    }
}

/// The environment if this key may see it and it exists.
async fn visible(web: &Web, p: &Principal, env: &str) -> Option<EnvironmentRow> {
    if crate::names::check_environment_name(env).is_err() || !p.sees_environment(env) {
        return None;
    }
    let envs = web.service.list_environments(p).await.ok()?;
    envs.into_iter().find(|e| e.name == env)
}

pub async fn secrets(
    s: Signed,
    State(web): Web_,
    Path(env): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    secrets_page(&web, &s, &env, d.flash(), StatusCode::OK).await
}

async fn secrets_page(
    web: &Web,
    s: &Signed,
    env: &str,
    f: Option<Flash>,
    status: StatusCode,
) -> Response {
    let p = &s.principal;
    if visible(web, p, env).await.is_none() {
        return no_environment(env);
    }
    let envs = web.service.list_environments(p).await.unwrap_or_default();
    let (revision, list) = match web.service.list_secrets(p, env).await {
        Ok(x) => x,
        // It may see the environment (issue:ENV) but not read its names.
        Err(ServiceError::PermissionDenied(_)) => (0, vec![]),
        Err(e) => return error_page(Some(s), &e),
    };
    let view = SecretsView {
        env,
        envs: &envs,
        revision,
        secrets: &list,
        can_write: p.allows(&Scope::Write(env.to_string())),
        can_issue: p.allows(&Scope::Issue(env.to_string())),
        expose_by_default: web.service.expose_by_default,
    };
    let mut res = views::secrets(&chrome(s, "environments"), f.as_ref(), &view).into_response();
    *res.status_mut() = status;
    res
}

/// The secrets page again, with the service's refusal.
async fn secrets_refused(web: &Web, s: &Signed, env: &str, e: &ServiceError) -> Response {
    secrets_page(web, s, env, Some(Flash::Error(e.to_string())), status_of(e)).await
}

/// The secrets page again, with a refusal of the form itself (400).
async fn secrets_refused_with(web: &Web, s: &Signed, env: &str, msg: String) -> Response {
    secrets_page(
        web,
        s,
        env,
        Some(Flash::Error(msg)),
        StatusCode::BAD_REQUEST,
    )
    .await
}

fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ServiceError::NotFound(_) | ServiceError::EnvironmentNotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::AlreadyExists(_) | ServiceError::FailedPrecondition(_) => {
            StatusCode::CONFLICT
        }
        ServiceError::ResourceExhausted(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Internal(_) | ServiceError::DataLoss(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ServiceError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
    }
}

/// A value from a browser: its CRLF line ends become LF (textareas send CRLF).
fn browser_value(v: &str) -> SecretBytes {
    let mut bytes = Vec::with_capacity(v.len());
    let mut it = v.bytes().peekable();
    while let Some(b) = it.next() {
        if b == b'\r' && it.peek() == Some(&b'\n') {
            continue;
        }
        bytes.push(b);
    }
    SecretBytes::new(bytes)
}

pub async fn set_secrets(State(web): Web_, Path(env): Path<String>, posted: Posted) -> Response {
    let s = &posted.signed;
    let f = &posted.fields;
    let batch = match (
        f.get("bulk").filter(|b| !b.trim().is_empty()),
        f.all("value"),
    ) {
        (Some(bulk), _) => match dotenv::parse(bulk) {
            Ok(batch) if batch.is_empty() => {
                Err("the pasted block holds no NAME=VALUE line".to_string())
            }
            Ok(batch) => Ok(batch),
            Err(e) => Err(format!("pasted block, {e}; nothing was saved")),
        },
        (None, values) if values.len() > 1 => Err(
            "give the value in one field: the one-line field or the multi-line one, not both"
                .into(),
        ),
        (None, values) => {
            let name = f.text("name");
            if name.is_empty() {
                Err("name: give the secret's name".into())
            } else {
                Ok(vec![(
                    name,
                    browser_value(values.first().copied().unwrap_or_default()),
                )])
            }
        }
    };
    let batch = match batch {
        Ok(b) => b,
        Err(msg) => return secrets_refused_with(&web, s, &env, msg).await,
    };
    let names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
    match web
        .service
        .set_secrets(&s.principal, &env, batch, None)
        .await
    {
        Ok(_) => done(&format!("/environments/{env}"), "saved", &names.join(", ")),
        Err(ServiceError::PermissionDenied(_))
            if visible(&web, &s.principal, &env).await.is_none() =>
        {
            no_environment(&env)
        }
        Err(e) => {
            let msg = format!("{e}. Nothing was saved.");
            secrets_page(&web, s, &env, Some(Flash::Error(msg)), status_of(&e)).await
        }
    }
}

pub async fn delete_secret_form(
    s: Signed,
    State(web): Web_,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    if visible(&web, &s.principal, &env).await.is_none() {
        return no_environment(&env);
    }
    let what = html! {
        p { "Delete " code { (name) } " from " strong { (env) } "? Runners started from now on will not get it; runners already running keep it." }
    };
    views::confirm(
        &chrome(&s, "environments"),
        &format!("Delete {name}"),
        what,
        &format!("/environments/{env}/secrets/{name}/delete"),
        "Delete secret",
        &format!("/environments/{env}"),
    )
    .into_response()
}

pub async fn delete_secret(
    State(web): Web_,
    Path((env, name)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let s = &posted.signed;
    if posted.fields.text("confirm") != "yes" {
        return see_other(format!("/environments/{env}/secrets/{name}/delete"));
    }
    match web.service.unset_secret(&s.principal, &env, &name).await {
        Ok(_) => done(&format!("/environments/{env}"), "deleted", &name),
        Err(e) => secrets_refused(&web, s, &env, &e).await,
    }
}

pub async fn set_exposure(
    State(web): Web_,
    Path((env, name)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let s = &posted.signed;
    let exposed = match posted.fields.text("exposed").as_str() {
        "on" => Some(true),
        "off" => Some(false),
        "default" => None,
        _ => {
            let msg = "exposed: give on, off or default".to_string();
            return secrets_refused_with(&web, s, &env, msg).await;
        }
    };
    match web
        .service
        .set_exposure(&s.principal, &env, &name, exposed)
        .await
    {
        Ok(_) => done(&format!("/environments/{env}"), "exposure", &name),
        Err(e) => secrets_refused(&web, s, &env, &e).await,
    }
}

pub async fn secret_history(
    s: Signed,
    State(web): Web_,
    Path((env, name)): Path<(String, String)>,
    Query(d): Query<Done>,
) -> Response {
    history_page(&web, &s, &env, &name, d.flash(), StatusCode::OK).await
}

async fn history_page(
    web: &Web,
    s: &Signed,
    env: &str,
    name: &str,
    f: Option<Flash>,
    status: StatusCode,
) -> Response {
    let p = &s.principal;
    if visible(web, p, env).await.is_none() {
        return no_environment(env);
    }
    let versions = match web.service.secret_history(p, env, name).await {
        Ok(v) => v,
        Err(e) => return error_page(Some(s), &e),
    };
    let can_write = p.allows(&Scope::Write(env.to_string()));
    let mut res = views::history(
        &chrome(s, "environments"),
        f.as_ref(),
        env,
        name,
        &versions,
        can_write,
    )
    .into_response();
    *res.status_mut() = status;
    res
}

pub async fn rollback_secret(
    State(web): Web_,
    Path((env, name)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let s = &posted.signed;
    let Ok(version) = posted.fields.text("version").parse::<u64>() else {
        let f = Flash::Error("version: give the number of a kept version".into());
        return history_page(&web, s, &env, &name, Some(f), StatusCode::BAD_REQUEST).await;
    };
    match web
        .service
        .rollback_secret(&s.principal, &env, &name, version)
        .await
    {
        Ok(_) => done(
            &format!("/environments/{env}/secrets/{name}/history"),
            "rolled-back",
            &name,
        ),
        Err(e) => {
            let f = Flash::Error(e.to_string());
            history_page(&web, s, &env, &name, Some(f), status_of(&e)).await
        }
    }
}

pub async fn mint_token(State(web): Web_, Path(env): Path<String>, posted: Posted) -> Response {
    let s = &posted.signed;
    let number = |field: &str| -> Result<u32, String> {
        let t = posted.fields.text(field);
        if t.is_empty() {
            return Ok(0);
        }
        t.parse()
            .map_err(|_| format!("{field}: give a whole number of at least 1"))
    };
    let (ttl, uses) = match (number("ttl"), number("uses")) {
        (Ok(t), Ok(u)) => (t, u),
        (Err(m), _) | (_, Err(m)) => return secrets_refused_with(&web, s, &env, m).await,
    };
    let req = IssueRequest {
        environment: env.clone(),
        count: 1,
        ttl_seconds: ttl,
        uses,
        ..IssueRequest::default()
    };
    match web.service.issue_runner_tokens(&s.principal, req).await {
        Ok(tokens) => match tokens.first() {
            Some(t) => views::shown_once(
                &chrome(s, "environments"),
                &format!("Runner token for {env}"),
                &format!("This runner token (expires {})", views::time(t.expires_at)),
                &t.credential.to_line(),
                &format!("/environments/{env}"),
            )
            .into_response(),
            None => error_page(Some(s), &ServiceError::Internal("no token was minted")),
        },
        Err(e) => secrets_refused(&web, s, &env, &e).await,
    }
}

#[derive(Deserialize)]
pub struct RunnersQuery {
    env: Option<String>,
    stale: Option<String>,
}

pub async fn runners(s: Signed, State(web): Web_, Query(q): Query<RunnersQuery>) -> Response {
    let p = &s.principal;
    let envs = web.service.list_environments(p).await.unwrap_or_default();
    let env = q.env.filter(|e| !e.is_empty()).or_else(|| {
        // A key that may not list every environment sees its first one.
        (!p.is_admin())
            .then(|| envs.first().map(|e| e.name.clone()))
            .flatten()
    });
    let stale = q.stale.is_some_and(|v| !v.is_empty());
    let rows = match &env {
        Some(e) if visible(&web, p, e).await.is_none() => return no_environment(e),
        Some(e) => web.service.list_runners(p, e, stale, 500).await,
        None => web.service.list_runners(p, "", stale, 500).await,
    };
    match rows {
        Ok(rows) => views::runners(&chrome(&s, "runners"), &envs, env.as_deref(), stale, &rows)
            .into_response(),
        Err(e) => error_page(Some(&s), &e),
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    env: Option<String>,
    action: Option<String>,
    before: Option<u64>,
}

const AUDIT_PAGE: u32 = 100;

pub async fn audit(s: Signed, State(web): Web_, Query(q): Query<AuditQuery>) -> Response {
    let p = &s.principal;
    if let Err(e) = crate::service::require(p, Scope::Admin) {
        return error_page(Some(&s), &e);
    }
    let env = q.env.filter(|e| !e.is_empty());
    let action = q
        .action
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    // Filtering by action reads pages until one is full (the store filters by environment).
    let mut rows = Vec::new();
    let mut before = q.before.unwrap_or(0);
    let mut more = false;
    for _ in 0..20 {
        let page = match web
            .service
            .list_audit(p, env.as_deref().unwrap_or_default(), before, AUDIT_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => return error_page(Some(&s), &e),
        };
        let full = page.len() == AUDIT_PAGE as usize;
        if let Some(last) = page.last() {
            before = last.id;
        }
        rows.extend(
            page.into_iter()
                .filter(|r| action.as_deref().is_none_or(|a| r.action == a)),
        );
        more = full;
        if !full || rows.len() >= AUDIT_PAGE as usize {
            break;
        }
    }
    let next = more.then(|| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("before", &before.to_string());
        if let Some(e) = &env {
            q.append_pair("env", e);
        }
        if let Some(a) = &action {
            q.append_pair("action", a);
        }
        format!("/audit?{}", q.finish())
    });
    let envs = web.service.list_environments(p).await.unwrap_or_default();
    views::audit(
        &chrome(&s, "audit"),
        &envs,
        env.as_deref(),
        action.as_deref(),
        &rows,
        next,
    )
    .into_response()
}

pub async fn keys(s: Signed, State(web): Web_, Query(d): Query<Done>) -> Response {
    keys_page(&web, &s, d.flash(), StatusCode::OK).await
}

async fn keys_page(web: &Web, s: &Signed, f: Option<Flash>, status: StatusCode) -> Response {
    match web.service.list_keys(&s.principal).await {
        Ok(keys) => {
            let mut res = views::keys(&chrome(s, "keys"), f.as_ref(), &keys).into_response();
            *res.status_mut() = status;
            res
        }
        Err(e) => error_page(Some(s), &e),
    }
}

pub async fn create_key(State(web): Web_, posted: Posted) -> Response {
    let s = &posted.signed;
    let scopes: Vec<String> = posted
        .fields
        .text("scopes")
        .split([',', ' '])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let label = posted.fields.text("label");
    match web.service.create_key(&s.principal, &scopes, label).await {
        Ok((row, cred)) => views::shown_once(
            &chrome(s, "keys"),
            &format!("Key {}", row.id),
            &format!("This key ({})", row.scopes),
            &cred.to_line(),
            "/keys",
        )
        .into_response(),
        Err(ServiceError::PermissionDenied(m)) => views::forbidden(&m),
        Err(e) => keys_page(&web, s, Some(Flash::Error(e.to_string())), status_of(&e)).await,
    }
}

pub async fn revoke_key_form(s: Signed, State(web): Web_, Path(id): Path<String>) -> Response {
    if let Err(e) = crate::service::require(&s.principal, Scope::Admin) {
        return error_page(Some(&s), &e);
    }
    let _ = &web;
    let what = html! {
        p { "Revoke key " code { (id) } "? Its calls and dashboard sessions stop at once, and the runner tokens it minted stop working. This cannot be undone." }
    };
    views::confirm(
        &chrome(&s, "keys"),
        &format!("Revoke {id}"),
        what,
        &format!("/keys/{id}/revoke"),
        "Revoke key",
        "/keys",
    )
    .into_response()
}

pub async fn revoke_key(State(web): Web_, Path(id): Path<String>, posted: Posted) -> Response {
    let s = &posted.signed;
    if posted.fields.text("confirm") != "yes" {
        return see_other(format!("/keys/{id}/revoke"));
    }
    match web.service.revoke_key(&s.principal, id.clone()).await {
        Ok(_) if id == s.principal.key_id => see_other("/login".into()),
        Ok(_) => done("/keys", "revoked", &id),
        Err(ServiceError::PermissionDenied(m)) => views::forbidden(&m),
        Err(e) => keys_page(&web, s, Some(Flash::Error(e.to_string())), status_of(&e)).await,
    }
}

pub async fn not_found(s: Result<Signed, Response>) -> Response {
    let _ = s;
    views::bare(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the dashboard.",
    )
}

/// The stylesheet and the icon, compiled into the binary.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

pub async fn icon() -> Response {
    asset("image/svg+xml", include_str!("assets/icon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
