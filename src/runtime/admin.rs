//! The worker's admin HTTP API on `BILLFLOW_HTTP_ADDR`: liveness, readiness, Prometheus
//! metrics, and the stage timeline of a command from this worker's store; and who may
//! read it (the bearer token `BILLFLOW_ADMIN_TOKEN`, or loopback only without one).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, WorkerSettings};
use crate::ledger::Ledger;
use crate::secret::Secret;
use crate::store::{StageRecord, StageState, Store};

/// Routes answered without the token: the liveness and readiness probes.
pub const OPEN_ROUTES: [&str; 2] = ["/healthz", "/readyz"];

/// Shortest admin token accepted: the API allows unlimited guesses, so the token must be
/// too long to guess.
pub const MIN_TOKEN_LEN: usize = 16;

/// Who may read the admin API.
#[derive(Clone)]
pub struct Access {
    /// `None`: no token configured, so the API listens on loopback only and is open.
    token: Option<Secret>,
    metrics_public: bool,
}

impl Access {
    /// The access rules of a worker's settings. Refuses a token that is too short or
    /// that no HTTP header can carry, and a non-loopback `BILLFLOW_HTTP_ADDR` without a
    /// token.
    pub fn from_settings(settings: &WorkerSettings) -> Result<Access, ConfigError> {
        // A token read from a file or Secret may end in a newline no header carries.
        let token = settings
            .admin_token
            .as_ref()
            .map(|t| t.expose().trim())
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::AdminToken(format!(
                    "is shorter than {MIN_TOKEN_LEN} characters; use a long random value (openssl rand -hex 32)"
                )));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::AdminToken(
                    "may only hold visible ASCII characters (an HTTP header carries no others)"
                        .into(),
                ));
            }
        }
        if let Some(addr) = settings.http_addr {
            if token.is_none() && !addr.ip().to_canonical().is_loopback() {
                return Err(ConfigError::AdminWithoutToken { addr });
            }
        }
        Ok(Access {
            token: token.map(Secret::new),
            metrics_public: settings.metrics_public,
        })
    }

    fn allows(&self, path: &str, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if OPEN_ROUTES.contains(&path) || (self.metrics_public && path == "/metrics") {
            return true;
        }
        bearer(headers).is_some_and(|given| given.ct_eq(token.expose().as_bytes()).into())
    }
}

/// The credentials of the one `Authorization: Bearer <token>` header; `None` when there is
/// none, more than one, or another scheme.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let mut parts = value.as_bytes().splitn(2, |b| *b == b' ');
    let scheme = parts.next()?;
    let credentials = parts.next()?.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Runs before routing, so an unknown route without the token is 401, not 404: nothing is
/// learnt without it. The answer never repeats what was sent.
async fn authorize(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    if access.allows(request.uri().path(), request.headers()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (WWW_AUTHENTICATE, "Bearer realm=\"billflow\""),
            (CACHE_CONTROL, "no-store"),
        ],
        "unauthorized: send Authorization: Bearer <BILLFLOW_ADMIN_TOKEN>\n",
    )
        .into_response()
}

#[derive(Clone)]
struct Admin {
    ready: Arc<AtomicBool>,
    store: Store,
    ledger: Ledger,
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

/// A command's stages, whichever worker ran them: `GET /workflows/{command_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub command_id: String,
    pub stages: Vec<StageView>,
    /// Set when the fleet's ledger could not be read: the stages are what this worker
    /// knew, and others' may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// One stage as the admin API shows it: a shape of its own, whatever the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    pub stage: String,
    /// `started`, `retrying`, `completed` or `failed`.
    pub state: String,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage: Option<String>,
    /// Why it was dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its outcome was published.
    pub forwarded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_digest: Option<String>,
}

impl StageView {
    pub fn new(stage: String, record: StageRecord) -> Self {
        let error = record.state.error().map(str::to_string);
        let state = record.state.name().to_string();
        let (output, next_stage, reason) = match record.state {
            StageState::Completed { output, next } => (Some(output), next, None),
            StageState::Failed { reason, .. } => (None, None, Some(reason.as_str().to_string())),
            StageState::Started { .. } | StageState::Retrying { .. } => (None, None, None),
        };
        StageView {
            stage,
            state,
            attempt: record.attempt,
            started_at: record.started_at,
            updated_at: record.updated_at,
            output,
            error,
            next_stage,
            reason,
            forwarded: record.forwarded,
            replay: record.replay,
            command_digest: record.command_digest,
        }
    }
}

fn router(admin: Admin, access: Access) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/workflows/{command_id}", get(workflow))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(admin)
        .layer(middleware::from_fn_with_state(Arc::new(access), authorize))
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
    // The command's shard may be another worker's: its ledger is read up to now first.
    let incomplete = match admin.ledger.refresh_for(&command_id).await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(error = %e, "status from this worker's store only");
            Some(format!(
                "the fleet's ledger could not be read ({e}); stages run by other workers may be missing"
            ))
        }
    };
    match admin.store.stages_of(&command_id) {
        Ok(stages) if stages.is_empty() => {
            let error = match &incomplete {
                None => format!("no worker has a record of command {command_id:?}"),
                Some(why) => format!("this worker has no record of command {command_id:?}; {why}"),
            };
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": error })),
            )
                .into_response()
        }
        Ok(stages) => {
            let mut stages: Vec<StageView> = stages
                .into_iter()
                .map(|(stage, record)| StageView::new(stage, record))
                .collect();
            stages.sort_by_key(|s| s.started_at);
            let timeline = Timeline {
                command_id,
                stages,
                incomplete,
            };
            let mut answer = serde_json::to_value(timeline).unwrap_or_default();
            crate::redact::global().redact_json(&mut answer);
            Json(answer).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Serves the admin API until `shutdown`, to whom `access` allows.
pub async fn serve(
    addr: SocketAddr,
    access: Access,
    ready: Arc<AtomicBool>,
    store: Store,
    ledger: Ledger,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "admin API listening");
    let admin = Admin {
        ready,
        store,
        ledger,
        metrics: metrics_handle(),
    };
    axum::serve(listener, router(admin, access))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn only_one_bearer_header_counts() {
        assert_eq!(bearer(&headers(&["Bearer abc"])), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers(&["bEaReR  abc "])), Some(&b"abc"[..]));
        for refused in [
            &["Basic abc"][..],
            &["Bearer"],
            &["Bearer   "],
            &["abc"],
            &["Bearer abc", "Bearer abc"],
        ] {
            assert_eq!(bearer(&headers(refused)), None, "{refused:?}");
        }
    }
}
