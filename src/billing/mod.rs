//! Typed clients of the billing platforms. They know nothing of queues: each call either
//! returns the platform's answer or an error that says how it may be retried.

pub mod costguard;
pub mod emersion;

/// What a failed call means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The call did not take effect and may be tried again later (5xx, 429, connection
    /// refused, a platform "try again" fault).
    Transient,
    /// The platform refused the call (validation, business rule); retrying cannot help.
    Permanent,
    /// The request may have reached the platform and taken effect, but no answer was read
    /// (timeout, connection lost mid-call, unreadable success). Never retried blindly.
    OutcomeUnknown,
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
