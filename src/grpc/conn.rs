//! How runseald holds connections, so that a hostile client costs little: its own accept loop
//! with a total connection cap (TLS handshakes in progress count), a deadline for the TLS
//! handshake and the HTTP/2 preface, a cap on concurrent streams per connection, and an idle
//! deadline (no stream in flight for that long; shorter until a call on the connection has
//! authenticated). A stream is in flight from its headers until its response body ends, so a
//! long-lived server stream keeps its connection open; health and reflection, which answer
//! without a key, do not count.
//!
//! At the connection cap or when `accept` fails (EMFILE, ENFILE, ENOBUFS…), the loop stops
//! accepting, logs once per [`LOG_INTERVAL`], and tries again after [`ACCEPT_BACKOFF`] or as
//! soon as a connection closes: it never spins, and pending clients wait in the kernel's
//! backlog meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::{App, AuthService, Listener};
use crate::tls::TlsAcceptor;

/// How long `accept` rests after a failure such as EMFILE before it tries again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A condition that repeats (cap reached, accept failing) is logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// After runseald decided to close a connection (idle, or shutting down) and nothing is in
/// flight on it, it waits this long for the client to finish the HTTP/2 goodbye, then drops it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// HTTP/2 keepalive: a ping this often, and a connection whose peer does not answer within
/// [`KEEPALIVE_TIMEOUT`] is closed (tonic's defaults as runseald used them).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The `[net]` settings of the config file (README, "Connection limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLimits {
    /// Connections open at once, all listeners together, TLS handshakes in progress included.
    pub max_connections: usize,
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// From accept to the end of the TLS handshake and the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// No stream in flight for this long closes a connection that has authenticated a call.
    pub idle_timeout: Duration,
    /// The same before the first call on the connection authenticated.
    pub unauthenticated_idle_timeout: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_connections: 2048,
            max_concurrent_streams: 100,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            unauthenticated_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What one connection's calls tell its keeper: how many are in flight, and whether one has
/// authenticated.
pub(crate) struct ConnState {
    /// (streams in flight, streams begun so far). The count of begun streams lets the keeper
    /// see a call that began and ended between two of its polls: a watch shows only the latest
    /// value, and the in-flight count alone would be back at 0.
    in_flight: watch::Sender<(usize, u64)>,
    authenticated: AtomicBool,
}

impl ConnState {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: watch::Sender::new((0, 0)),
            authenticated: AtomicBool::new(false),
        })
    }

    pub(crate) fn mark_authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.in_flight.send_modify(|(n, begun)| {
            *n += 1;
            *begun += 1;
        });
        StreamGuard(self.clone())
    }

    /// Completes once no stream has been in flight for the applicable deadline.
    async fn quiet(&self, limits: &NetLimits, closing: bool) {
        let mut rx = self.in_flight.subscribe();
        loop {
            // The sender lives in `self`, so these never fail.
            let begun = rx
                .wait_for(|(n, _)| *n == 0)
                .await
                .map(|state| state.1)
                .unwrap_or_default();
            let wait = if closing {
                CLOSE_GRACE
            } else if self.authenticated.load(Ordering::Relaxed) {
                limits.idle_timeout
            } else {
                limits.unauthenticated_idle_timeout
            };
            if tokio::time::timeout(wait, rx.wait_for(|(n, b)| *n > 0 || *b != begun))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One stream in flight; dropped when its response body ends (or the call is abandoned).
struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|(n, _)| *n -= 1);
    }
}

/// A response body that keeps its stream counted as in flight until it is done.
pub struct TrackedBody<B> {
    inner: B,
    _guard: Option<StreamGuard>,
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts every call of one connection as in flight until its response body ends.
#[derive(Clone)]
struct InFlight<S> {
    inner: S,
    conn: Arc<ConnState>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for InFlight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<RB>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Health and reflection answer strangers: a `Health/Watch` left open must not keep a
        // connection (or a shutdown) waiting, so only calls that need a key count.
        let path = req.uri().path();
        let guard = (!super::is_open_path(path)).then(|| self.conn.begin());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|inner| TrackedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// Logs a repeating condition at most once per [`LOG_INTERVAL`].
struct Throttle(Option<Instant>);

impl Throttle {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        match self.0 {
            Some(t) if now.duration_since(t) < LOG_INTERVAL => false,
            _ => {
                self.0 = Some(now);
                true
            }
        }
    }
}

enum Accepted {
    Tcp(TcpStream),
    Tls(TcpStream, TlsAcceptor),
    Unix(UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        Listener::Tls(l, acceptor) => l
            .accept()
            .await
            .map(|(s, _)| Accepted::Tls(s, acceptor.clone())),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

/// Failures of one connection that came and went before `accept` returned it: no reason to
/// wait before the next.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Serves `app` on every listener until `stop` turns true, then lets in-flight calls finish and
/// returns when every connection is closed.
pub(crate) async fn serve(
    app: App,
    listeners: Vec<Listener>,
    limits: NetLimits,
    stop: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(
            listener,
            app.clone(),
            limits.clone(),
            permits.clone(),
            stop.clone(),
        ));
    }
    while let Some(res) = loops.join_next().await {
        if let Err(e) = res {
            tracing::error!(error = %e, "accept loop failed");
        }
    }
    // Every connection holds a permit until it is closed.
    // (The semaphore is never closed, so this only returns once they all are.)
    let _all = permits.acquire_many(limits.max_connections as u32).await;
}

async fn accept_loop(
    listener: Listener,
    app: App,
    limits: Arc<NetLimits>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut full = Throttle(None);
    let mut failing = Throttle(None);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if full.due() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: not accepting until a connection closes"
                    );
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        // Closed: nothing will be accepted again.
                        Err(_) => return,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        let accepted = tokio::select! {
            r = accept(&listener) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok(conn) => {
                tokio::spawn(connection(
                    conn,
                    app.clone(),
                    limits.clone(),
                    permit,
                    stop.clone(),
                ));
            }
            Err(e) if is_per_connection(&e) => {
                tracing::debug!(error = %e, "a connection failed before it was accepted");
            }
            Err(e) => {
                drop(permit);
                crate::metrics::METRICS.accept_failures.inc();
                if failing.due() {
                    tracing::warn!(
                        error = %e,
                        retry_ms = ACCEPT_BACKOFF.as_millis() as u64,
                        "cannot accept connections (at the descriptor limit? raise `ulimit -n` / LimitNOFILE or lower [net] max_connections); retrying"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        crate::metrics::METRICS.connections_open.inc();
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::METRICS.connections_open.dec();
    }
}

/// One connection, from accept to close; holds its permit throughout.
async fn connection(
    accepted: Accepted,
    app: App,
    limits: Arc<NetLimits>,
    _permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let _open = OpenConnection::new();
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    match accepted {
        Accepted::Tcp(s) => {
            // Without it, Nagle holds back small responses for up to 40 ms per call.
            let _ = s.set_nodelay(true);
            http2(s, deadline, app, &limits, stop).await
        }
        Accepted::Tls(s, acceptor) => {
            let _ = s.set_nodelay(true);
            let peer = s.peer_addr().ok();
            match tokio::time::timeout_at(deadline, acceptor.acceptor().accept(s)).await {
                Ok(Ok(tls)) => http2(tls, deadline, app, &limits, stop).await,
                Ok(Err(e)) => tracing::debug!(?peer, error = %e, "TLS handshake failed"),
                Err(_) => {
                    crate::metrics::METRICS.connections_idle_closed.inc();
                    tracing::debug!(?peer, "TLS handshake timed out");
                }
            }
        }
        Accepted::Unix(s) => http2(s, deadline, app, &limits, stop).await,
    }
}

/// Reads the HTTP/2 preface by `deadline`, then serves HTTP/2 until the connection closes,
/// goes idle, or runseald stops.
async fn http2<I>(
    mut io: I,
    deadline: tokio::time::Instant,
    app: App,
    limits: &NetLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut preface = [0u8; 24];
    tokio::select! {
        r = tokio::time::timeout_at(deadline, io.read_exact(&mut preface)) => match r {
            Ok(Ok(_)) if &preface == PREFACE => {}
            Ok(Ok(_)) => {
                tracing::debug!("not an HTTP/2 client (runseald speaks gRPC over HTTP/2 only)");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "connection closed before the HTTP/2 preface");
                return;
            }
            Err(_) => {
                crate::metrics::METRICS.connections_idle_closed.inc();
                tracing::debug!("no HTTP/2 preface within the handshake deadline");
                return;
            }
        },
        _ = stop.wait_for(|s| *s) => return,
    }
    let state = ConnState::new();
    let service = InFlight {
        inner: tower::Layer::layer(
            &crate::metrics::MetricsLayer,
            AuthService::new(app, Some(state.clone())),
        ),
        conn: state.clone(),
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let io = TokioIo::new(Rewind {
        prefix: preface,
        pos: 0,
        inner: io,
    });
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = state.quiet(limits, closing) => {
                if closing {
                    return;
                }
                crate::metrics::METRICS.connections_idle_closed.inc();
                tracing::debug!("closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Hands hyper the preface that was read to check it, then the rest of the stream.
struct Rewind<I> {
    prefix: [u8; 24],
    pos: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
