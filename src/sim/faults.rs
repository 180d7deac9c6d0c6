//! Fault injection: a queue of failures for the next calls of an operation, so tests can
//! drive every retry and outcome-unknown path of the workers, and play a hostile platform
//! (echoed credentials, redirects, huge or dripping bodies, errors after a commit). Each
//! platform renders the failures in its own wire format through [`Wire`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ops_error, ops_json};

/// How long a `drop_response` call is held, and a `drip` answer drips: longer than any
/// client waits.
const HOLD: Duration = Duration::from_secs(3600);

/// Padding of streamed bodies, sent from static memory: a `huge_body` of any size costs
/// the simulator no allocation.
static PADDING: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// What a `drip` answer sends every `chunk_ms`.
const DRIP: &[u8] = b" ";

/// The two classes of SOAP fault, by their SOAP 1.2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Receiver,
    Sender,
}

/// A fault class as `POST /_sim/faults` names it: by its SOAP 1.2 name on any operation, or
/// by its SOAP 1.1 name on an operation of a SOAP 1.1 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum CodeName {
    Receiver,
    Sender,
    Server,
    Client,
}

impl CodeName {
    fn code(self) -> FaultCode {
        match self {
            CodeName::Receiver | CodeName::Server => FaultCode::Receiver,
            CodeName::Sender | CodeName::Client => FaultCode::Sender,
        }
    }

    fn is_soap11(self) -> bool {
        matches!(self, CodeName::Server | CodeName::Client)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum FaultKind {
    /// Delay, then serve normally.
    Latency { ms: u64 },
    /// Answer with this status and the platform's error body, without applying the call.
    HttpStatus { status: u16 },
    SoapFault {
        code: CodeName,
        #[serde(default = "default_reason")]
        reason: String,
    },
    /// The platform refuses the call on a business rule, without applying it.
    BusinessError {
        #[serde(default = "default_reason")]
        message: String,
    },
    /// Wait, then 504 without applying: a gateway that gave up on the platform.
    Timeout { ms: u64 },
    /// Apply the call, then never answer.
    DropResponse,
    /// Refuse the call, without applying it, with the platform's error whose text repeats
    /// the credential the request carried. Status 200 means the platform's business-error
    /// form where it has one (CostGuard Order Placement `Messages`).
    EchoCredential {
        #[serde(default = "unauthorized")]
        status: u16,
    },
    /// Answer this redirect to `location`, without applying the call.
    Redirect {
        #[serde(default = "temporary_redirect")]
        status: u16,
        location: String,
    },
    /// Answer 200 with a body of `bytes` bytes, streamed in chunks (never held whole),
    /// without applying the call.
    HugeBody { bytes: u64 },
    /// Answer 200 with the headers at once, then a byte every `chunk_ms` for longer than
    /// any client waits, without applying the call.
    Drip { chunk_ms: u64 },
    /// Apply the call, then answer `status` (500, 502 or 504) in no API's format: a proxy
    /// failing on the way back after the platform committed.
    ErrorAfterCommit { status: u16 },
}

fn unauthorized() -> u16 {
    StatusCode::UNAUTHORIZED.as_u16()
}

fn temporary_redirect() -> u16 {
    StatusCode::TEMPORARY_REDIRECT.as_u16()
}

impl FaultKind {
    /// Whether the fault can be served as asked.
    fn check(&self) -> Result<(), String> {
        match self {
            FaultKind::HttpStatus { status } if !(400..=599).contains(status) => Err(format!(
                "http_status needs a status from 400 to 599, not {status}"
            )),
            FaultKind::EchoCredential { status }
                if *status != 200 && !(400..=599).contains(status) =>
            {
                Err(format!(
                    "echo_credential needs status 200 or a status from 400 to 599, not {status}"
                ))
            }
            FaultKind::Redirect { status, .. } if !(300..=399).contains(status) => Err(format!(
                "redirect needs a status from 300 to 399, not {status}"
            )),
            FaultKind::Redirect { location, .. }
                if location.is_empty() || HeaderValue::from_str(location).is_err() =>
            {
                Err(format!(
                    "redirect needs a location usable as a header, not {location:?}"
                ))
            }
            FaultKind::Drip { chunk_ms: 0 } => Err("drip needs chunk_ms of at least 1".into()),
            FaultKind::ErrorAfterCommit { status } if ![500, 502, 504].contains(status) => Err(
                format!("error_after_commit needs status 500, 502 or 504, not {status}"),
            ),
            _ => Ok(()),
        }
    }
}

/// A 200 whose body is streamed as it is produced, with no Content-Length.
fn streamed<S>(content_type: &'static str, body: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    (
        StatusCode::OK,
        [(CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// `bytes` bytes in all: the opening, then padding in chunks of at most [`PADDING`].
fn huge(opening: String, bytes: u64) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut head = opening.into_bytes();
    head.truncate(usize::try_from(bytes).unwrap_or(usize::MAX));
    let rest = bytes.saturating_sub(head.len() as u64);
    let padding = stream::unfold(rest, |left| async move {
        let n = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(PADDING.len());
        (n > 0).then(|| (Ok(Bytes::from_static(&PADDING[..n])), left - n as u64))
    });
    stream::once(async move { Ok(Bytes::from(head)) }).chain(padding)
}

fn default_reason() -> String {
    "fault injected by the simulator".into()
}

/// A queued fault; also the JSON of `POST /_sim/faults` and `GET /_sim/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    operation: String,
    /// Calls still to be hit.
    #[serde(default = "one")]
    count: u32,
    #[serde(flatten)]
    fault: FaultKind,
}

fn one() -> u32 {
    1
}

/// How a platform's API writes injected failures.
pub trait Wire {
    /// An HTTP-level failure with the platform's error body.
    fn failure(&self, status: StatusCode, message: &str) -> Response;
    fn fault(&self, code: FaultCode, reason: &str) -> Response;
    fn rejection(&self, message: &str) -> Response;
    /// The platform's refusal of the request's credential, repeating it in the error text.
    fn echo_credential(&self, status: StatusCode) -> Response;
    /// The content type of the platform's answers and how a successful one opens: the head
    /// of a streamed `huge_body` or `drip` answer.
    fn opening(&self) -> (&'static str, String);
}

pub struct Faults {
    operations: Vec<&'static str>,
    /// Operations of a SOAP 1.1 API: their fault codes may have SOAP 1.1 names.
    soap11: Vec<&'static str>,
    pending: Mutex<Vec<Pending>>,
    release: CancellationToken,
}

impl Faults {
    /// A queue that accepts faults for these operation names.
    pub fn new(operations: impl IntoIterator<Item = &'static str>) -> Self {
        Faults {
            operations: operations.into_iter().collect(),
            soap11: Vec::new(),
            pending: Mutex::new(Vec::new()),
            release: CancellationToken::new(),
        }
    }

    /// Also accepts faults for these operations of a SOAP 1.1 API.
    pub fn with_soap11(mut self, operations: impl IntoIterator<Item = &'static str>) -> Self {
        self.soap11.extend(operations);
        self
    }

    /// Ends every wait, so held calls answer and a graceful shutdown can finish.
    pub fn release_held(&self) {
        self.release.cancel();
    }

    /// Runs `call` (the normal handling, which applies the call when awaited) under the
    /// next fault queued for `operation`, if any.
    pub async fn serve<W: Wire>(
        &self,
        operation: &str,
        wire: &W,
        call: impl Future<Output = Response>,
    ) -> Response {
        let Some(fault) = self.take(operation) else {
            return call.await;
        };
        tracing::info!(operation, ?fault, "injecting fault");
        match fault {
            FaultKind::Latency { ms } => {
                self.pause(Duration::from_millis(ms)).await;
                call.await
            }
            FaultKind::HttpStatus { status } => {
                // Validated when queued.
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                wire.failure(status, "injected HTTP failure")
            }
            FaultKind::SoapFault { code, reason } => wire.fault(code.code(), &reason),
            FaultKind::BusinessError { message } => wire.rejection(&message),
            FaultKind::Timeout { ms } => {
                self.pause(Duration::from_millis(ms)).await;
                // A gateway gives up on the platform: its answer is in no API's format.
                (StatusCode::GATEWAY_TIMEOUT, "gateway timeout").into_response()
            }
            FaultKind::DropResponse => {
                let response = call.await;
                self.pause(HOLD).await;
                response
            }
            FaultKind::EchoCredential { status } => wire
                .echo_credential(StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED)),
            FaultKind::Redirect { status, location } => {
                // Both validated when queued.
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
                match HeaderValue::from_str(&location) {
                    Ok(location) => (status, [(LOCATION, location)]).into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
            FaultKind::HugeBody { bytes } => {
                let (content_type, opening) = wire.opening();
                streamed(content_type, huge(opening, bytes))
            }
            FaultKind::Drip { chunk_ms } => {
                let (content_type, opening) = wire.opening();
                let drip = self.drip(Duration::from_millis(chunk_ms));
                let body = stream::once(async move { Ok(Bytes::from(opening)) }).chain(drip);
                streamed(content_type, body)
            }
            FaultKind::ErrorAfterCommit { status } => {
                drop(call.await);
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                (status, "upstream failed after the platform committed").into_response()
            }
        }
    }

    /// A byte every `every` until [`HOLD`] has passed or held calls are released.
    fn drip(
        &self,
        every: Duration,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let release = self.release.clone();
        let until = tokio::time::Instant::now() + HOLD;
        stream::unfold(release, move |release| async move {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = release.cancelled() => return None,
            }
            (tokio::time::Instant::now() < until).then(|| (Ok(Bytes::from_static(DRIP)), release))
        })
    }

    async fn pause(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.release.cancelled() => {}
        }
    }

    fn take(&self, operation: &str) -> Option<FaultKind> {
        let mut pending = self.lock();
        let index = pending.iter().position(|p| p.operation == operation)?;
        let entry = &mut pending[index];
        entry.count -= 1;
        let fault = entry.fault.clone();
        if entry.count == 0 {
            pending.remove(index);
        }
        Some(fault)
    }

    fn queue(&self, entry: Pending) -> Result<Pending, String> {
        let operation = entry.operation.as_str();
        let soap11 = self.soap11.contains(&operation);
        if !soap11 && !self.operations.contains(&operation) {
            let known: Vec<&str> = self
                .operations
                .iter()
                .chain(&self.soap11)
                .copied()
                .collect();
            return Err(format!(
                "unknown operation {:?}; known: {}",
                entry.operation,
                known.join(", ")
            ));
        }
        if let FaultKind::SoapFault { code, .. } = entry.fault {
            if code.is_soap11() && !soap11 {
                return Err(format!(
                    "{operation} is not a SOAP 1.1 operation: its fault code is Receiver or Sender, not {code:?}"
                ));
            }
        }
        if entry.count == 0 {
            return Err("count must be at least 1".into());
        }
        entry.fault.check()?;
        self.lock().push(entry.clone());
        Ok(entry)
    }

    // Queue updates are single pushes and pops, so a poisoned lock holds consistent data.
    fn lock(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `POST`, `GET` and `DELETE /_sim/faults`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Faults>: FromRef<S>,
{
    Router::new().route("/_sim/faults", get(list).post(add).delete(clear))
}

async fn add(State(faults): State<Arc<Faults>>, body: Bytes) -> Response {
    let entry: Pending = match ops_json(&body) {
        Ok(entry) => entry,
        Err(message) => return ops_error(StatusCode::BAD_REQUEST, message),
    };
    match faults.queue(entry) {
        Ok(entry) => (StatusCode::CREATED, Json(entry)).into_response(),
        Err(message) => ops_error(StatusCode::BAD_REQUEST, message),
    }
}

async fn list(State(faults): State<Arc<Faults>>) -> Response {
    let pending = faults.lock().clone();
    Json(serde_json::json!({ "faults": pending })).into_response()
}

async fn clear(State(faults): State<Arc<Faults>>) -> StatusCode {
    faults.lock().clear();
    StatusCode::NO_CONTENT
}
