//! The operator's HTTP listener: `/livez`, `/readyz`, `/metrics`.

use crate::clock::HostClock;
use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `/readyz` checks: the database's schema and clock against this host's.
#[derive(Clone)]
pub struct Readiness {
    pub store: Store,
    pub clock: HostClock,
    /// Not ready while this host's clock is off by more than this: passes
    /// refuse to work then (see [`crate::clock`]).
    pub max_clock_skew: Duration,
}

#[derive(Clone)]
struct AppState {
    readiness: Readiness,
    metrics: PrometheusHandle,
    /// Reads this process's CPU, memory and file descriptors at each scrape.
    process: metrics_process::Collector,
}

/// Binds `listen` and serves until `shutdown` fires. Returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    readiness: Readiness,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let state = AppState {
        readiness,
        metrics,
        process: metrics_process::Collector::default(),
    };
    let app = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("server.listen {listen}")))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP listener stopped");
        }
    });
    tracing::info!(%addr, "serving /livez /readyz /metrics");
    Ok(addr)
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match ready(&state).await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn ready(state: &AppState) -> Result<(), String> {
    let r = &state.readiness;
    r.store.ready().await?;
    let database = r
        .store
        .db_now()
        .await
        .map_err(|e| format!("database unreachable: {e}"))?;
    let host = r.clock.now();
    crate::clock::check(host, database, host, r.max_clock_skew).map_err(|e| e.to_string())
}

/// The registry's series, then the per-app ones written chunk by chunk as
/// the body is sent (see [`crate::metrics::per_app`]).
async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.process.collect();
    let chunks = std::iter::once(state.metrics.render())
        .chain(crate::metrics::per_app::render())
        .map(Ok::<_, std::convert::Infallible>);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
}
