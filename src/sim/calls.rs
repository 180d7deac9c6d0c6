//! The log of API calls the simulator received, keyed by operation name, so tests can
//! assert how often each billing call was made (retries included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{FromRef, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Default)]
pub struct CallLog {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    // Sequence numbers survive a clear so a number never names two calls.
    last_seq: u64,
    calls: Vec<Call>,
}

#[derive(Debug, Clone, Serialize)]
struct Call {
    seq: u64,
    operation: String,
    method: String,
    /// Path with query, as received.
    path: String,
    body: String,
    at: DateTime<Utc>,
}

#[derive(Serialize)]
struct CallsView {
    counts: BTreeMap<String, usize>,
    calls: Vec<Call>,
}

impl CallLog {
    /// Records a call as it arrives, before it is validated or a fault is applied.
    pub fn record(&self, operation: &str, method: &Method, uri: &Uri, body: &[u8]) {
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_else(|| uri.path());
        tracing::debug!(operation, %method, path, "simulator call");
        let mut log = self.lock();
        log.last_seq += 1;
        let call = Call {
            seq: log.last_seq,
            operation: operation.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
            at: Utc::now(),
        };
        log.calls.push(call);
    }

    fn view(&self) -> CallsView {
        let log = self.lock();
        let mut counts = BTreeMap::new();
        for call in &log.calls {
            *counts.entry(call.operation.clone()).or_insert(0) += 1;
        }
        CallsView {
            counts,
            calls: log.calls.clone(),
        }
    }

    fn clear(&self) {
        self.lock().calls.clear();
    }

    // A panic elsewhere cannot leave the log half-written, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `GET /_sim/calls` and `DELETE /_sim/calls`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<CallLog>: FromRef<S>,
{
    Router::new().route("/_sim/calls", get(list).delete(clear))
}

async fn list(State(log): State<Arc<CallLog>>) -> Json<CallsView> {
    Json(log.view())
}

async fn clear(State(log): State<Arc<CallLog>>) -> StatusCode {
    log.clear();
    StatusCode::NO_CONTENT
}
