use crate::billing::http::{status_failure, HttpError};
use crate::billing::{fault_failure, Failure};
use crate::xml::XmlError;

/// Errors of a CostGuard call, each naming the operation it came from.
#[derive(Debug, thiserror::Error)]
pub enum CostGuardError {
    /// No complete answer: never connected, cut off, too slow, too large, or redirected.
    #[error("{operation}: {error}")]
    Transport {
        operation: &'static str,
        error: HttpError,
    },
    #[error("{operation}: HTTP {status}: {message}")]
    Http {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("{operation}: SOAP fault {code} (HTTP {status}): {reason}")]
    Fault {
        operation: &'static str,
        status: u16,
        code: String,
        reason: String,
    },
    #[error("{operation}: {messages}")]
    Rejected {
        operation: &'static str,
        messages: String,
    },
    #[error("{operation}: unreadable response: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
    /// The Security Token Service refused the login or gave no usable token.
    #[error("CostGuard login{}: {message}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Login {
        status: Option<u16>,
        message: String,
        transient: bool,
    },
    #[error("{operation}: HTTP 401 again with a freshly obtained token: CostGuard does not accept billflow's credentials (COSTGUARD_USERNAME)")]
    Unauthorized { operation: &'static str },
    #[error("service number {0:?} not found")]
    ServiceNotFound(String),
    #[error("service {service_id} is not eligible for renewal: no active favorite AdvancePay price point")]
    NotEligible { service_id: i64 },
    #[error("renewAdvancePay renewed no AdvancePay product on service {service_id}")]
    NothingRenewed { service_id: i64 },
}

impl CostGuardError {
    /// Transient only when the answer proves the call was not processed; whatever may
    /// have come after the platform acted is outcome-unknown (DESIGN invariant 5).
    pub fn failure(&self) -> Failure {
        match self {
            CostGuardError::Transport { error, .. } => error.failure(),
            CostGuardError::Http { status, .. } => status_failure(*status),
            CostGuardError::Fault { status, code, .. } => fault_failure(*status, code),
            CostGuardError::Malformed { .. } => Failure::OutcomeUnknown,
            CostGuardError::Login {
                transient: true, ..
            } => Failure::Transient,
            CostGuardError::Login { .. } | CostGuardError::Unauthorized { .. } => {
                Failure::Permanent
            }
            CostGuardError::Rejected { .. }
            | CostGuardError::ServiceNotFound(_)
            | CostGuardError::NotEligible { .. }
            | CostGuardError::NothingRenewed { .. } => Failure::Permanent,
        }
    }

    pub(super) fn malformed(operation: &'static str, err: impl std::fmt::Display) -> Self {
        CostGuardError::Malformed {
            operation,
            detail: err.to_string(),
        }
    }

    pub(super) fn transport(operation: &'static str) -> impl FnOnce(HttpError) -> Self {
        move |error| CostGuardError::Transport { operation, error }
    }
}

impl From<(&'static str, XmlError)> for CostGuardError {
    fn from((operation, err): (&'static str, XmlError)) -> Self {
        CostGuardError::malformed(operation, err)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::billing::http::Phase;

    fn http(status: u16) -> CostGuardError {
        CostGuardError::Http {
            operation: "SubmitCart",
            status,
            message: "upstream said no".into(),
        }
    }

    fn fault(status: u16, code: &str) -> CostGuardError {
        CostGuardError::Fault {
            operation: "SubmitCart",
            status,
            code: code.into(),
            reason: "busy".into(),
        }
    }

    fn transport(error: HttpError) -> CostGuardError {
        CostGuardError::Transport {
            operation: "SubmitCart",
            error,
        }
    }

    #[test]
    fn classification_table() {
        use Failure::*;
        let table = [
            (transport(HttpError::Connect("refused".into())), Transient),
            (http(429), Transient),
            (http(503), Transient),
            (fault(503, "Receiver"), Transient),
            (fault(429, "Receiver"), Transient),
            (
                transport(HttpError::Deadline {
                    deadline: Duration::from_secs(1),
                    phase: Phase::Headers,
                }),
                OutcomeUnknown,
            ),
            (
                transport(HttpError::Interrupted("reset".into())),
                OutcomeUnknown,
            ),
            (
                transport(HttpError::TooLarge {
                    cap: 4,
                    declared: None,
                }),
                OutcomeUnknown,
            ),
            (http(500), OutcomeUnknown),
            (http(502), OutcomeUnknown),
            (http(504), OutcomeUnknown),
            (http(507), OutcomeUnknown),
            (fault(500, "Receiver"), OutcomeUnknown),
            (fault(500, "Server"), OutcomeUnknown),
            (
                CostGuardError::malformed("Checkout", "no Result"),
                OutcomeUnknown,
            ),
            (http(400), Permanent),
            (http(401), Permanent),
            (http(404), Permanent),
            (
                transport(HttpError::Redirect {
                    status: 307,
                    host: "elsewhere:8443".into(),
                }),
                Permanent,
            ),
            (fault(400, "Sender"), Permanent),
            (fault(400, "MustUnderstand"), Permanent),
            (fault(500, "Unheard-of"), OutcomeUnknown),
            (
                CostGuardError::Rejected {
                    operation: "Checkout",
                    messages: "[E1] Register closed".into(),
                },
                Permanent,
            ),
            (CostGuardError::ServiceNotFound("1".into()), Permanent),
            (CostGuardError::NotEligible { service_id: 1 }, Permanent),
            (CostGuardError::NothingRenewed { service_id: 1 }, Permanent),
        ];
        for (error, failure) in table {
            assert_eq!(error.failure(), failure, "{error}");
        }
    }

    #[test]
    fn texts_keep_the_cause() {
        assert_eq!(
            fault(500, "Receiver").to_string(),
            "SubmitCart: SOAP fault Receiver (HTTP 500): busy"
        );
        assert_eq!(
            http(502).to_string(),
            "SubmitCart: HTTP 502: upstream said no"
        );
        let redirect = transport(HttpError::Redirect {
            status: 307,
            host: "elsewhere:8443".into(),
        });
        assert_eq!(
            redirect.to_string(),
            "SubmitCart: HTTP 307 redirect to host elsewhere:8443, not followed"
        );
    }
}
