//! Prometheus metrics (`--metrics-listen ADDR`, text format at `/metrics`): calls and latency per
//! RPC and status code, snapshots served, runner tokens redeemed and refused, store errors, build
//! info, open connections, accept back-offs and idle closes. Labels are RPC names from the compiled protos and gRPC codes: never a value, a token,
//! or anything a caller chooses (an unknown path is counted as `unknown`).

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

pub struct Metrics {
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<CallLabels, Histogram>,
    pub snapshots_served: Counter,
    pub tokens_redeemed: Counter,
    pub tokens_refused: Counter,
    pub store_errors: Counter,
    /// Rows refused because their integrity MAC did not match (changed outside runseald).
    pub integrity_failures: Counter,
    /// Connections open now (handshakes included).
    pub connections_open: Gauge,
    /// `accept` failures that made runseald back off (EMFILE and the like).
    pub accept_failures: Counter,
    /// Connections closed for having no call in flight too long.
    pub connections_idle_closed: Counter,
    /// Stored secrets left out of a snapshot because their name is denied now.
    pub denied_names_withheld: Counter,
    /// Dashboard sign-ins refused (any reason), and those refused by the rate limit.
    pub web_sign_in_failures: Counter,
    pub web_sign_in_throttled: Counter,
    registry: Registry,
    methods: HashSet<String>,
}

/// `metric`, registered in `registry` under a name and help text (the registry keeps a handle
/// to the same metric).
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    (name, help): (&str, &str),
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The calls of every RPC by status code, and their latency.
fn call_metrics(
    registry: &mut Registry,
) -> (Family<CallLabels, Counter>, Family<CallLabels, Histogram>) {
    let calls = registered(
        registry,
        ("grpc_calls", "gRPC calls by method and status code"),
        Family::default(),
    );
    let latency = registered(
        registry,
        (
            "grpc_call_duration_seconds",
            "gRPC call latency by method and status code",
        ),
        Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        }),
    );
    (calls, latency)
}

/// The process's metrics (one server per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        // Registered in this order, the order of the text exposition.
        let mut r = Registry::with_prefix("runseal");
        let counter = |r: &mut Registry, about| registered(r, about, Counter::default());
        let [web_sign_in_failures, web_sign_in_throttled] = [
            (
                "web_sign_in_failures",
                "Dashboard sign-ins refused (unknown, wrong or revoked key, runner token)",
            ),
            (
                "web_sign_in_throttled",
                "Dashboard sign-in attempts refused by the per-address rate limit",
            ),
        ]
        .map(|c| counter(&mut r, c));
        let (calls, latency) = call_metrics(&mut r);
        let [snapshots_served, tokens_redeemed, tokens_refused, store_errors, integrity_failures] = [
            ("snapshots_served", "Snapshots served to runners"),
            (
                "runner_tokens_redeemed",
                "Runner token uses taken by starting runners",
            ),
            (
                "runner_tokens_refused",
                "Runner tokens refused (unknown, expired, used, revoked, wrong environment)",
            ),
            ("store_errors", "Store operations that failed"),
            (
                "integrity_failures",
                "Rows refused because their integrity MAC did not match (changed outside runseald)",
            ),
        ]
        .map(|c| counter(&mut r, c));
        let connections_open = registered(
            &mut r,
            (
                "connections_open",
                "gRPC connections open (TLS handshakes in progress included)",
            ),
            Gauge::default(),
        );
        let [accept_failures, connections_idle_closed, denied_names_withheld] = [
            (
                "accept_failures",
                "Failed accepts after which runseald backed off (e.g. out of descriptors)",
            ),
            (
                "connections_idle_closed",
                "Connections closed after the idle or handshake deadline",
            ),
            (
                "denied_names_withheld",
                "Stored secrets left out of snapshots because their name is denied now",
            ),
        ]
        .map(|c| counter(&mut r, c));
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        r.register("build_info", "runseald version", build);
        Self {
            calls,
            latency,
            snapshots_served,
            tokens_redeemed,
            tokens_refused,
            store_errors,
            integrity_failures,
            connections_open,
            accept_failures,
            connections_idle_closed,
            denied_names_withheld,
            web_sign_in_failures,
            web_sign_in_throttled,
            registry: r,
            methods: known_methods(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String does not fail; say so if it ever does rather than panic.
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }

    fn record(&self, path: &str, code: &str, started: Instant) {
        let method = if self.methods.contains(path) {
            path.trim_start_matches('/').to_string()
        } else {
            "unknown".to_string()
        };
        let labels = CallLabels {
            method,
            code: code.to_string(),
        };
        self.calls.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// `/package.Service/Method` of every RPC runseald serves.
fn known_methods() -> HashSet<String> {
    let mut out: HashSet<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // The descriptor set is compiled into the binary by proto/compile.rs (and decoded by the
    // reflection service at every start): it cannot be malformed at run time.
    #[allow(clippy::expect_used)]
    let fds: prost_types::FileDescriptorSet =
        prost::Message::decode(crate::proto::FILE_DESCRIPTOR_SET).expect("embedded descriptors");
    for file in fds.file {
        let package = file.package().to_string();
        for service in &file.service {
            for method in &service.method {
                out.insert(format!("/{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    out
}

/// gRPC status name of a numeric code, as tonic reports it.
fn code_name(code: &str) -> String {
    code.parse::<i32>()
        .map(|c| format!("{:?}", tonic::Code::from_i32(c)))
        .unwrap_or_else(|_| "Unknown".into())
}

/// A tower layer that counts every call and its latency. A failed unary call carries its
/// `grpc-status` in the response headers ("trailers-only"); a response without one is a success
/// whose status follows in the trailers, as every unary RPC of runseald does.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(code_name)
                    .unwrap_or_else(|| "Ok".into()),
                Err(_) => "Unknown".into(),
            };
            METRICS.record(&path, &code, started);
            res
        })
    }
}

/// Serves `/metrics` on `addr` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                METRICS.encode(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener (so errors surface at start, not later).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
