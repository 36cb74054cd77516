//! Who is asking, checked once per request: the session cookie (→ [`Signed`]), and for a
//! state-changing request also its CSRF token (→ [`Posted`]). The `Origin` and `Host` checks sit
//! in the router's guard (`super::guard`), before any handler; handlers never repeat either.
//!
//! CSRF tokens are derived, not stored: `HMAC-SHA256(key = the session's secret, "csrf")`, so
//! they are as unguessable as the cookie, and a page from another origin, which cannot read
//! the cookie, cannot compute one. The sign-in form has one too, derived from a pre-session
//! cookie (login CSRF would sign a victim into an attacker's session).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{views, Web};
use crate::auth::Principal;
use crate::service::ServiceError;

/// The most failed sign-ins one client address may make per [`THROTTLE_WINDOW`].
pub const MAX_FAILED_SIGN_INS: u32 = 10;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(300);
/// Client addresses whose failures are remembered at most (a fixed cap, whoever asks).
const MAX_TRACKED: usize = 4096;

/// The client's address, set by the accept loop on every request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The cookie names: with TLS, `__Host-` names, which a browser only accepts when `Secure`,
/// for `Path=/` and without `Domain` (no sibling host can plant one).
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-runseal_session"
    } else {
        "runseal_session"
    }
}

pub fn login_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-runseal_login"
    } else {
        "runseal_login"
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over TLS; `max_age` 0
/// clears it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// The value of cookie `name` in the request, if present once.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<SecretString> {
    let mut found = None;
    for h in headers.get_all(header::COOKIE) {
        let Ok(h) = h.to_str() else { continue };
        for pair in h.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name && !v.is_empty() {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(SecretString::from(v.to_string()));
                }
            }
        }
    }
    found
}

/// The CSRF token of a session (or pre-session) secret, for `purpose`.
pub fn csrf_token(secret: &SecretString, purpose: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(b"runseal/web/");
    mac.update(purpose.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the token of `secret` for `purpose` (constant time).
pub fn csrf_matches(secret: &SecretString, purpose: &str, given: &str) -> bool {
    let want = csrf_token(secret, purpose);
    want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

/// A signed-in request: the session's principal and the CSRF token its forms carry.
pub struct Signed {
    pub principal: Principal,
    pub csrf: String,
    secret: SecretString,
}

impl Signed {
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }
}

impl FromRequestParts<Arc<Web>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(secret) = cookie(&parts.headers, session_cookie(web.config.secure)) else {
            return Err(to_login());
        };
        match web.service.session(secret.expose_secret()).await {
            Ok(principal) => Ok(Signed {
                principal,
                csrf: csrf_token(&secret, "csrf"),
                secret,
            }),
            // The ended session's cookie goes; a new sign-in sets a fresh one.
            Err(ServiceError::Unauthenticated(reason)) => Err(login_page(
                web,
                Some(&reason),
                StatusCode::UNAUTHORIZED,
                true,
            )),
            Err(e) => Err(super::error_page(None, &e)),
        }
    }
}

/// The sign-in page with `error`, and a fresh pre-session cookie for its form; with
/// `clear_session`, the (ended) session cookie is cleared too.
pub fn login_page(
    web: &Web,
    error: Option<&str>,
    status: StatusCode,
    clear_session: bool,
) -> Response {
    let secure = web.config.secure;
    let (pre, cookie) = new_login_secret(secure);
    let mut res = views::login(&csrf_token(&pre, "login"), error).into_response();
    *res.status_mut() = status;
    let mut cookies = vec![cookie];
    if clear_session {
        cookies.push(set_cookie(session_cookie(secure), "", secure, Some(0)));
    }
    for c in cookies {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// A new pre-session secret and its `Set-Cookie` (an hour to sign in).
pub fn new_login_secret(secure: bool) -> (SecretString, String) {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref());
    let cookie = set_cookie(login_cookie(secure), &value, secure, Some(3600));
    (SecretString::from(value), cookie)
}

/// The fields of a posted form (`application/x-www-form-urlencoded`), values kept in zeroizing
/// strings: a form may carry a secret value or a key.
#[derive(Default)]
pub struct Fields(Vec<(String, Zeroizing<String>)>);

impl Fields {
    /// Parses a form body; `+` and `%XX` are decoded (a raw `%00` becomes a NUL, which the
    /// service's rules refuse).
    pub fn parse(body: &[u8]) -> Self {
        let fields = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
            .collect();
        Self(fields)
    }

    /// The first non-empty value of `name`, else the first value, else `None`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut all = self.0.iter().filter(|(k, _)| k == name);
        let first = all.next()?;
        if !first.1.is_empty() {
            return Some(first.1.as_str());
        }
        Some(
            all.find(|(_, v)| !v.is_empty())
                .map_or(first.1.as_str(), |(_, v)| v.as_str()),
        )
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Reads a form body of at most the dashboard's body limit (else the 413 page naming it).
async fn form_body(req: Request, web: &Web) -> Result<(Parts, Fields), Response> {
    let (parts, body) = req.into_parts();
    let limit = web.config.body_limit;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| views::too_large(limit))?;
    let bytes = Zeroizing::new(bytes.to_vec());
    Ok((parts, Fields::parse(&bytes)))
}

/// A state-changing request of a signed-in user whose form carried the session's CSRF token.
/// (The guard already checked its `Origin`.) A refused request reaches no handler.
pub struct Posted {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<Arc<Web>> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Arc<Web>) -> Result<Self, Response> {
        let (mut parts, fields) = form_body(req, web).await?;
        let signed = Signed::from_request_parts(&mut parts, web).await?;
        let given = fields.get("csrf").unwrap_or_default();
        if !csrf_matches(&signed.secret, "csrf", given) {
            return Err(views::forbidden(
                "This form's security token is missing or does not match your session (the page may be stale, or the request came from another site). Nothing was changed: reload the page and try again.",
            ));
        }
        Ok(Posted { signed, fields })
    }
}

/// The sign-in form, checked against its pre-session cookie.
pub struct LoginPosted {
    pub fields: Fields,
    pub client: Option<IpAddr>,
}

impl FromRequest<Arc<Web>> for LoginPosted {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Arc<Web>) -> Result<Self, Response> {
        let (parts, fields) = form_body(req, web).await?;
        let client = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        let pre = cookie(&parts.headers, login_cookie(web.config.secure));
        let given = fields.get("csrf").unwrap_or_default();
        if !pre.is_some_and(|pre| csrf_matches(&pre, "login", given)) {
            return Err(login_page(
                web,
                Some("The sign-in form expired or came from another site. Nothing was done: sign in again below."),
                StatusCode::FORBIDDEN,
                false,
            ));
        }
        Ok(LoginPosted { fields, client })
    }
}

/// Failed sign-ins per client address: at most [`MAX_FAILED_SIGN_INS`] per
/// [`THROTTLE_WINDOW`]; a fixed number of addresses is remembered.
#[derive(Default)]
pub struct Throttle(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl Throttle {
    /// Whether `addr` may try to sign in now.
    pub fn allows(&self, addr: Option<IpAddr>) -> bool {
        let Some(addr) = addr else { return true };
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&addr) {
            Some((n, since)) => *n < MAX_FAILED_SIGN_INS || since.elapsed() >= THROTTLE_WINDOW,
            None => true,
        }
    }

    pub fn failed(&self, addr: Option<IpAddr>) {
        let Some(addr) = addr else { return };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&addr) {
            map.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
            if map.len() >= MAX_TRACKED {
                // Still full of recent failures: forget the oldest.
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, t))| *t).map(|(a, _)| *a) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(addr).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= THROTTLE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, addr: Option<IpAddr>) {
        if let Some(addr) = addr {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&addr);
        }
    }
}
