//! The HTTP exchange every billing client makes, and what its failures mean. Redirects are
//! never followed (a billing call carries credentials), one deadline covers the whole call
//! (connect, headers, body), and the body is read chunk by chunk up to the API's cap, so a
//! huge or dripping answer costs neither memory nor a stuck task. Knows nothing of the
//! platforms' formats: their clients read the body and classify the status with
//! [`status_failure`].

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::{timeout_at, Instant};

use super::Failure;
use crate::secret::Secret;

/// The longest a connection set-up may take, whatever the call's deadline.
const MAX_CONNECT: Duration = Duration::from_secs(5);

/// What one call of an API may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of the whole call, the body's last byte included.
    pub timeout: Duration,
    /// Largest body read; a larger one fails the call.
    pub max_response_bytes: usize,
}

/// A client that follows no redirect. The connection set-up gets at most half the
/// deadline, so a connect that fails is told apart from a call that ran out of time.
pub(crate) fn client(limits: Limits) -> Result<reqwest::Client, reqwest::Error> {
    builder(limits).build()
}

/// A TLS client certificate and an extra root to trust, as PEM.
#[derive(Clone)]
pub struct ClientTls {
    /// The certificate chain (leaf first) and its private key.
    pub identity_pem: Secret,
    pub extra_root_pem: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("extra_root", &self.extra_root_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// [`client`] presenting `tls`'s certificate in every TLS handshake, and trusting its extra
/// root besides the built-in ones.
pub(crate) fn client_with_certificate(
    limits: Limits,
    tls: &ClientTls,
) -> Result<reqwest::Client, reqwest::Error> {
    let identity = reqwest::Identity::from_pem(tls.identity_pem.expose().as_bytes())?;
    let mut builder = builder(limits).use_rustls_tls().identity(identity);
    if let Some(ca) = &tls.extra_root_pem {
        for root in reqwest::Certificate::from_pem_bundle(ca.as_bytes())? {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build()
}

fn builder(limits: Limits) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout((limits.timeout / 2).min(MAX_CONNECT))
}

/// A complete answer that is not a redirect; the status is the caller's to judge.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text; invalid UTF-8 is replaced, as a platform's error text is still
    /// worth reading.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Where in the call the deadline struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the status line and headers arrived.
    Headers,
    /// While reading the body, after this many bytes.
    Body { read: usize },
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Headers => write!(f, "waiting for the response headers"),
            Phase::Body { read } => write!(f, "reading the body, {read} bytes in"),
        }
    }
}

/// A call that produced no complete answer to judge.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection could not be set up: the request was never sent.
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no complete answer within the {} ms deadline ({phase})", .deadline.as_millis())]
    Deadline { deadline: Duration, phase: Phase },
    #[error("connection failed mid-call: {0}")]
    Interrupted(String),
    #[error("answer larger than the {cap}-byte cap{}", declared_length(*.declared))]
    TooLarge { cap: usize, declared: Option<u64> },
    /// Only the Location's host is kept: the full URL may carry a token.
    #[error("HTTP {status} redirect to host {host}, not followed")]
    Redirect { status: u16, host: String },
}

fn declared_length(declared: Option<u64>) -> String {
    declared
        .map(|n| format!(" (Content-Length {n})"))
        .unwrap_or_default()
}

impl HttpError {
    /// Only a connection never set up proves the platform did not act on the call; a
    /// redirect is a misconfigured or hostile endpoint, not something a retry fixes.
    pub fn failure(&self) -> Failure {
        match self {
            HttpError::Connect(_) => Failure::Transient,
            HttpError::Deadline { .. } | HttpError::Interrupted(_) | HttpError::TooLarge { .. } => {
                Failure::OutcomeUnknown
            }
            HttpError::Redirect { .. } => Failure::Permanent,
        }
    }

    fn transport(err: reqwest::Error) -> Self {
        let detail = super::error_chain(&err);
        if err.is_connect() {
            HttpError::Connect(detail)
        } else {
            HttpError::Interrupted(detail)
        }
    }
}

/// What an answered HTTP status that is not a success means. Only 429 and 503 say the
/// request was not processed; any other 5xx may come after the platform acted (a proxy
/// failing on the way back); the rest is the platform refusing the call.
pub fn status_failure(status: u16) -> Failure {
    match status {
        429 | 503 => Failure::Transient,
        500..=599 => Failure::OutcomeUnknown,
        _ => Failure::Permanent,
    }
}

/// Sends the request and reads its whole answer within `limits`.
pub(crate) async fn exchange(request: RequestBuilder, limits: Limits) -> Result<Answer, HttpError> {
    let deadline = Instant::now() + limits.timeout;
    let late = |phase| HttpError::Deadline {
        deadline: limits.timeout,
        phase,
    };
    let mut response = timeout_at(deadline, request.send())
        .await
        .map_err(|_| late(Phase::Headers))?
        .map_err(HttpError::transport)?;
    let status = response.status();
    if status.is_redirection() {
        return Err(HttpError::Redirect {
            status: status.as_u16(),
            host: location_host(&response),
        });
    }
    let cap = limits.max_response_bytes;
    let declared = response.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(HttpError::TooLarge { cap, declared });
    }
    let mut body = Vec::new();
    loop {
        let chunk = timeout_at(deadline, response.chunk())
            .await
            .map_err(|_| late(Phase::Body { read: body.len() }))?
            .map_err(HttpError::transport)?;
        let Some(chunk) = chunk else {
            return Ok(Answer { status, body });
        };
        if chunk.len() > cap.saturating_sub(body.len()) {
            return Err(HttpError::TooLarge { cap, declared });
        }
        body.extend_from_slice(&chunk);
    }
}

/// The host (and port) a redirect points to, resolved against the request's URL.
fn location_host(response: &Response) -> String {
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| response.url().join(l).ok());
    let Some(host) = target.as_ref().and_then(|url| url.host_str()) else {
        return "(no readable Location)".into();
    };
    match target.as_ref().and_then(|url| url.port()) {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        for (status, failure) in [
            (429, Failure::Transient),
            (503, Failure::Transient),
            (500, Failure::OutcomeUnknown),
            (502, Failure::OutcomeUnknown),
            (504, Failure::OutcomeUnknown),
            (599, Failure::OutcomeUnknown),
            (400, Failure::Permanent),
            (401, Failure::Permanent),
            (404, Failure::Permanent),
            (409, Failure::Permanent),
        ] {
            assert_eq!(status_failure(status), failure, "{status}");
        }
    }

    #[test]
    fn transport_failures_classify() {
        let deadline = HttpError::Deadline {
            deadline: Duration::from_millis(1500),
            phase: Phase::Body { read: 12 },
        };
        assert_eq!(deadline.failure(), Failure::OutcomeUnknown);
        assert_eq!(
            deadline.to_string(),
            "no complete answer within the 1500 ms deadline (reading the body, 12 bytes in)"
        );
        let large = HttpError::TooLarge {
            cap: 10,
            declared: Some(11),
        };
        assert_eq!(large.failure(), Failure::OutcomeUnknown);
        assert_eq!(
            large.to_string(),
            "answer larger than the 10-byte cap (Content-Length 11)"
        );
        assert_eq!(
            HttpError::Connect("refused".into()).failure(),
            Failure::Transient
        );
        assert_eq!(
            HttpError::Interrupted("reset".into()).failure(),
            Failure::OutcomeUnknown
        );
        let redirect = HttpError::Redirect {
            status: 307,
            host: "evil.example:8443".into(),
        };
        assert_eq!(redirect.failure(), Failure::Permanent);
        assert_eq!(
            redirect.to_string(),
            "HTTP 307 redirect to host evil.example:8443, not followed"
        );
    }
}
