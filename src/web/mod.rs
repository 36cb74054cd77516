//! The web dashboard: the third front-end on the service layer, beside the runseal gRPC API and
//! the fal API. Server-rendered HTML ([`views`], maud) with forms that work without JavaScript;
//! everything it serves is compiled into the binary.
//!
//! One guard ([`guard`]) runs before every handler: it refuses a `Host` the dashboard is not
//! configured for (DNS rebinding) and a state-changing request whose `Origin` is not the
//! dashboard's own, and it sets the security headers on every response. One pair of extractors
//! ([`session::Signed`], [`session::Posted`]) checks the session and the CSRF token. The
//! listener has its own caps: connections at once, a deadline for the TLS handshake and for
//! each request's headers, and a body limit.

mod pages;
pub mod session;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::service::{Service, ServiceError};
use crate::tls::TlsAcceptor;
use session::{ClientAddr, Signed, Throttle};

pub use crate::defaults::DEFAULT_WEB_LISTEN;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// A connection lives at most this long (a keep-alive client reconnects).
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `Host` header values it answers (lower-case `host[:port]`).
    pub hosts: Vec<String>,
    /// Served over TLS: `Secure` cookies, `https` origin.
    pub secure: bool,
    pub max_connections: usize,
    /// From accept to the end of the TLS handshake, and for each request's headers.
    pub header_timeout: Duration,
    /// The largest request body (the largest legitimate batch, form-encoded).
    pub body_limit: usize,
}

impl WebConfig {
    /// The configuration for a listener on `addr`: the hosts it answers are `addr` itself (and
    /// `localhost:PORT` on loopback) and `extra_hosts`.
    pub fn for_addr(
        addr: SocketAddr,
        secure: bool,
        extra_hosts: &[String],
        body_limit: usize,
    ) -> Self {
        let port = addr.port();
        let mut hosts: Vec<String> = extra_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        if !addr.ip().is_unspecified() {
            hosts.push(addr.to_string());
        }
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{port}"));
        }
        Self {
            hosts,
            secure,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_limit,
        }
    }

    fn origin_of(&self, host: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}

/// What every handler shares.
pub struct Web {
    pub service: Arc<Service>,
    pub config: WebConfig,
    throttle: Throttle,
}

impl Web {
    pub fn new(service: Arc<Service>, config: WebConfig) -> Arc<Self> {
        Arc::new(Self {
            service,
            config,
            throttle: Throttle::default(),
        })
    }
}

/// The body limit that fits the largest batch the service accepts: every value of a full
/// environment, percent-encoded (at most three bytes per byte), with its names and fields.
pub fn body_limit(limits: &crate::names::Limits) -> usize {
    limits
        .max_environment_bytes
        .saturating_mul(3)
        .saturating_add(limits.max_secrets_per_environment.saturating_mul(1024))
        .saturating_add(64 * 1024)
}

/// The dashboard's routes (part of its contract: README, "Dashboard").
pub fn router(web: Arc<Web>) -> Router {
    use pages::*;
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/switch", get(switch))
        .route("/environments", get(environments).post(create_environment))
        .route("/environments/{env}", get(secrets))
        .route(
            "/environments/{env}/delete",
            get(delete_environment_form).post(delete_environment),
        )
        .route("/environments/{env}/secrets", post(set_secrets))
        .route(
            "/environments/{env}/secrets/{name}/delete",
            get(delete_secret_form).post(delete_secret),
        )
        .route(
            "/environments/{env}/secrets/{name}/exposure",
            post(set_exposure),
        )
        .route(
            "/environments/{env}/secrets/{name}/history",
            get(secret_history),
        )
        .route(
            "/environments/{env}/secrets/{name}/rollback",
            post(rollback_secret),
        )
        .route("/environments/{env}/tokens", post(mint_token))
        .route("/runners", get(runners))
        .route("/audit", get(audit))
        .route("/keys", get(keys).post(create_key))
        .route("/keys/{id}/revoke", get(revoke_key_form).post(revoke_key))
        .route("/assets/style.css", get(style))
        .route("/assets/icon.svg", get(icon))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web)
}

/// Before every handler: the `Host` must be one this dashboard serves, and a request that
/// changes state must come from the dashboard's own origin. After: the security headers.
async fn guard(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    let mut res = match host {
        Some(host) if web.config.hosts.contains(&host) => {
            let safe = matches!(*req.method(), Method::GET | Method::HEAD);
            let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
            if safe || origin == Some(web.config.origin_of(&host).as_str()) {
                next.run(req).await
            } else {
                views::forbidden(
                    "This request did not come from the dashboard's own pages (its Origin header is missing or names another site). Nothing was changed.",
                )
            }
        }
        _ => views::bare(
            StatusCode::MISDIRECTED_REQUEST,
            "Unknown host",
            "This dashboard does not serve the host name in the request. Open it at the address runseald logs at start, or add the name to web_hosts in the server config.",
        ),
    };
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if web.config.secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// A service error as a page (with the header when signed in).
pub(crate) fn error_page(signed: Option<&Signed>, e: &ServiceError) -> Response {
    let (status, title) = match e {
        ServiceError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        ServiceError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        ServiceError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "Bad request"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    let _ = signed;
    views::bare(status, title, &e.to_string())
}

/// Serves the dashboard on `listener` (TLS with `tls`) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    web: Arc<Web>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(web.clone());
    let slots = Arc::new(Semaphore::new(web.config.max_connections));
    let header_timeout = web.config.header_timeout;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard accept failed; backing off");
                    tokio::time::sleep(crate::grpc::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req.map(axum::body::Body::new)
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024);
            let run = async {
                match tls {
                    Some(tls) => {
                        let accepted =
                            tokio::time::timeout(header_timeout, tls.acceptor().accept(stream))
                                .await;
                        let Ok(Ok(stream)) = accepted else { return };
                        let conn = http.serve_connection(TokioIo::new(stream), svc);
                        drive(conn, &mut stop).await;
                    }
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), svc);
                        drive(conn, &mut stop).await;
                    }
                }
            };
            let _ = tokio::time::timeout(MAX_CONNECTION_AGE, run).await;
        });
    }
}

/// Runs one connection; on shutdown, lets the request in flight finish, then closes.
async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    stop: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
