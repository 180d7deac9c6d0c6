//! Typed clients of the billing platforms. They know nothing of queues: each call either
//! returns the platform's answer or an error that says how it may be retried. Must not
//! import anything of billflow's but `money`, `secret`, `xml` and `redact`.

pub mod api;
pub mod costguard;
pub mod emersion;
pub mod http;

pub use api::Api;

/// What a failed call means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The call did not take effect and may be tried again later: the answer proves it
    /// was not processed (connection refused, 429, 503).
    Transient,
    /// The platform refused the call (validation, business rule); retrying cannot help.
    Permanent,
    /// The request may have reached the platform and taken effect, but no answer says
    /// whether it did (timeout, connection lost mid-call, 500/502/504, a server fault, an
    /// unreadable, too large or too slow answer). Never re-sent blindly.
    OutcomeUnknown,
}

/// What a SOAP fault answered with an HTTP `status` means: a 429 or 503 says the call was
/// not processed, whatever the body; a sender fault (either SOAP version's name, SOAP 1.1
/// dotted sub-codes included) refuses the call as sent; a receiver fault, or a code not
/// known, may come after the platform acted.
pub(crate) fn fault_failure(status: u16, code: &str) -> Failure {
    const SENDER: [&str; 5] = [
        "Sender",
        "Client",
        "VersionMismatch",
        "MustUnderstand",
        "DataEncodingUnknown",
    ];
    if http::status_failure(status) == Failure::Transient {
        return Failure::Transient;
    }
    let class = code.split('.').next().unwrap_or(code);
    if SENDER.iter().any(|c| c.eq_ignore_ascii_case(class)) {
        Failure::Permanent
    } else {
        Failure::OutcomeUnknown
    }
}

/// An error and its sources on one line, for error texts that cross process boundaries.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Records how long one API call took, as `billflow_api_call_duration_seconds`.
pub(crate) struct CallTimer {
    api: &'static str,
    operation: &'static str,
    started: std::time::Instant,
}

impl CallTimer {
    pub(crate) fn start(api: &'static str, operation: &'static str) -> Self {
        CallTimer {
            api,
            operation,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        metrics::histogram!(
            "billflow_api_call_duration_seconds",
            "api" => self.api,
            "operation" => self.operation
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}
