//! The worker's admin HTTP API on `BILLFLOW_HTTP_ADDR`: liveness, readiness, Prometheus
//! metrics, and the stage timeline of a command from this worker's store.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::{StageRecord, Store};

#[derive(Clone)]
struct Admin {
    ready: Arc<AtomicBool>,
    store: Store,
    metrics: PrometheusHandle,
}

/// The process-wide Prometheus recorder; installed once, on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Buckets make the call latencies real Prometheus histograms (quantiles
            // can then be aggregated across workers), from 5 ms to 60 s.
            let buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ];
            // Disk flushes, broker confirms and billflow's own time per stage are
            // sub-millisecond to tens of milliseconds.
            let fine = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .and_then(|b| {
                    [
                        "billflow_store_flush_seconds",
                        "billflow_publish_confirm_seconds",
                    ]
                    .into_iter()
                    .try_fold(b, |b, name| {
                        b.set_buckets_for_metric(Matcher::Full(name.into()), &fine)
                    })
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test's) may already be installed; keep ours for rendering.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A command's stages as this worker recorded them: `GET /workflows/{command_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub command_id: String,
    pub stages: Vec<StageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    pub stage: String,
    #[serde(flatten)]
    pub record: StageRecord,
}

fn router(admin: Admin) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/workflows/{command_id}", get(workflow))
        .with_state(admin)
}

async fn readyz(State(admin): State<Admin>) -> Response {
    if admin.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready: broker connected, store open\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not connected to the broker\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(admin): State<Admin>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        admin.metrics.render(),
    )
        .into_response()
}

async fn workflow(State(admin): State<Admin>, Path(command_id): Path<String>) -> Response {
    match admin.store.stages_of(&command_id) {
        Ok(stages) if stages.is_empty() => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("this worker has no record of command {command_id:?}")})),
        )
            .into_response(),
        Ok(stages) => {
            let mut stages: Vec<StageView> = stages
                .into_iter()
                .map(|(stage, record)| StageView { stage, record })
                .collect();
            stages.sort_by_key(|s| s.record.started_at);
            Json(Timeline { command_id, stages }).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Serves the admin API until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    store: Store,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "admin API listening");
    let admin = Admin {
        ready,
        store,
        metrics: metrics_handle(),
    };
    axum::serve(listener, router(admin))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
