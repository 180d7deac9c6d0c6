//! The log of API calls the simulator received, keyed by operation name, so tests can
//! assert how often each billing call was made (retries included), under which idempotency
//! key, and whether each one changed the simulator's state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The header billflow sends `<command_id>/<stage>` in, so a test can tell which stage of
/// which command made a call, and spot a stage that called twice.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

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
    /// The `Idempotency-Key` header, `None` when absent.
    idempotency_key: Option<String>,
    body: String,
    at: DateTime<Utc>,
    /// Whether the call changed the state: `false` until the handling that changes it
    /// succeeds, so reads, refusals and faults that skip the handling stay `false`.
    applied: bool,
}

/// A call's place in the log, to record its outcome once known.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    seq: u64,
}

#[derive(Serialize)]
struct CallsView {
    counts: BTreeMap<String, usize>,
    calls: Vec<Call>,
}

impl CallLog {
    /// Records a call as it arrives, before it is validated or a fault is applied; it is
    /// not applied until [`CallLog::mark_applied`] says so.
    pub fn record(
        &self,
        operation: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Entry {
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_else(|| uri.path());
        // Lossy rather than dropped: a key that is not UTF-8 is still worth seeing.
        let idempotency_key = headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        tracing::debug!(operation, %method, path, ?idempotency_key, "simulator call");
        let mut log = self.lock();
        log.last_seq += 1;
        let seq = log.last_seq;
        let call = Call {
            seq,
            operation: operation.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            idempotency_key,
            body: String::from_utf8_lossy(body).into_owned(),
            at: Utc::now(),
            applied: false,
        };
        log.calls.push(call);
        Entry { seq }
    }

    /// Notes that a recorded call changed the state. The entry keeps its place; if the log
    /// was cleared since the call arrived, there is nothing to update.
    pub fn mark_applied(&self, entry: Entry) {
        let mut log = self.lock();
        // Calls are pushed in `seq` order, so the log is sorted by it.
        if let Ok(index) = log.calls.binary_search_by_key(&entry.seq, |c| c.seq) {
            log.calls[index].applied = true;
        }
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
