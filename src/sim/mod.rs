//! `billflow sim`: stateful billing-platform simulator for local runs and tests.
//!
//! One HTTP server holds every simulated platform. The call log and the fault queue are
//! shared and keyed by operation name, so each platform only adds its own routes and state;
//! `/_sim/*` endpoints let tests inspect and steer the simulator.

mod calls;
pub mod costguard;
pub mod emersion;
mod faults;
pub mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use calls::CallLog;
use faults::Faults;

/// Why a request is not a valid call of its API; answered with a Sender/Client fault.
#[derive(Debug, Clone)]
pub(crate) struct Invalid(pub(crate) String);

impl From<crate::xml::XmlError> for Invalid {
    fn from(e: crate::xml::XmlError) -> Self {
        Invalid(e.to_string())
    }
}

impl From<String> for Invalid {
    fn from(s: String) -> Self {
        Invalid(s)
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Self {
        Invalid(s.to_string())
    }
}

/// The simulator; clones share one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Added to every platform call (not the `/_sim` endpoints): a realistic API latency
    /// for benchmarks.
    latency_ms: AtomicU64,
    calls: Arc<CallLog>,
    faults: Arc<Faults>,
    costguard: costguard::Store,
    tokens: costguard::login::Tokens,
    emersion: emersion::Store,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator {
    /// A simulator seeded with the sample data of [`costguard`] and [`emersion`].
    pub fn new() -> Self {
        let faults =
            Faults::new(costguard::OPERATIONS.iter().copied()).with_soap11(emersion::operations());
        Simulator {
            inner: Arc::new(Inner {
                latency_ms: AtomicU64::new(0),
                calls: Arc::new(CallLog::default()),
                faults: Arc::new(faults),
                costguard: costguard::Store::seeded(),
                tokens: costguard::login::Tokens::new(costguard::DEFAULT_TOKEN_LIFETIME),
                emersion: emersion::Store::seeded(),
            }),
        }
    }

    /// Every platform call takes at least `ms` milliseconds from now on.
    pub fn set_latency_ms(&self, ms: u64) {
        self.inner.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Tokens the CostGuard login issues live this long, from now on.
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        self.inner.tokens.set_lifetime(lifetime);
    }

    pub fn router(&self) -> Router {
        let costguard = costguard::routes().route_layer(middleware::from_fn_with_state(
            self.clone(),
            costguard::login::authenticate,
        ));
        let platforms = Router::new()
            .merge(costguard)
            .merge(costguard::login::routes())
            .merge(emersion::routes())
            .route_layer(middleware::from_fn_with_state(self.clone(), with_latency));
        Router::new()
            .merge(calls::routes())
            .merge(faults::routes())
            .route("/_sim/state", get(state))
            .route("/_sim/latency", post(set_latency))
            .merge(emersion::control_routes())
            .merge(platforms)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` is cancelled, then finishes the calls in flight. Calls held
    /// by a `drop_response` fault are released at shutdown so it cannot hang.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let faults = self.inner.faults.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                faults.release_held();
            })
            .await
    }

    /// Serves TLS on `listener` beside [`Simulator::serve`], requiring a client certificate
    /// signed by the configured client CA: one that presents it is an authenticated
    /// Emersion caller. A failed handshake ends only its own connection.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: std::sync::Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let faults = self.inner.faults.clone();
        let router = self.router().layer(axum::Extension(tls::ClientCertificate));
        let listener = tls::TlsListener::new(listener, tls, shutdown.clone());
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                faults.release_held();
            })
            .await
    }

    fn tokens(&self) -> &costguard::login::Tokens {
        &self.inner.tokens
    }

    fn calls(&self) -> &CallLog {
        &self.inner.calls
    }

    fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    fn costguard(&self) -> &costguard::Store {
        &self.inner.costguard
    }

    fn emersion(&self) -> &emersion::Store {
        &self.inner.emersion
    }
}

/// `GET /_sim/state`: CostGuard's state, with Emersion's under `emersion`.
async fn state(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    let mut state = sim.costguard().snapshot();
    if let Some(object) = state.as_object_mut() {
        object.insert("emersion".into(), sim.emersion().snapshot());
    }
    Json(state)
}

impl FromRef<Simulator> for Arc<CallLog> {
    fn from_ref(sim: &Simulator) -> Self {
        sim.inner.calls.clone()
    }
}

impl FromRef<Simulator> for Arc<Faults> {
    fn from_ref(sim: &Simulator) -> Self {
        sim.inner.faults.clone()
    }
}

/// Error body of the `/_sim/*` endpoints: `{"error": "..."}`.
fn ops_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Reads a `/_sim/*` JSON body; the error names the problem for a 400 (axum's `Json`
/// extractor would answer 422 in plain text).
fn ops_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn with_latency(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let ms = sim.inner.latency_ms.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    next.run(request).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Latency {
    ms: u64,
}

/// `POST /_sim/latency {"ms": 200}`: the latency of every platform call from now on.
async fn set_latency(
    State(sim): State<Simulator>,
    Json(latency): Json<Latency>,
) -> Json<serde_json::Value> {
    sim.set_latency_ms(latency.ms);
    Json(serde_json::json!({"latency_ms": latency.ms}))
}
