use crate::billing::http::{status_failure, HttpError};
use crate::billing::{fault_failure, Failure};

/// Errors of an Emersion call, each naming the operation it came from.
#[derive(Debug, thiserror::Error)]
pub enum EmersionError {
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
    /// A SOAP Fault. A `Client` fault reads as the platform's own text, which reaches the
    /// events verbatim; any other names the operation, code and status too.
    #[error("{}", fault_text(operation, *status, code, message))]
    Fault {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{operation}: unreadable response: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}

fn fault_text(operation: &str, status: u16, code: &str, message: &str) -> String {
    let class = code.split('.').next().unwrap_or(code);
    if class.eq_ignore_ascii_case("Client") {
        message.to_string()
    } else {
        format!("{operation}: SOAP fault {code} (HTTP {status}): {message}")
    }
}

impl EmersionError {
    /// `Client` faults are validation or business rules (permanent); only 429 and 503 prove
    /// a call was not processed (transient); `Server` faults, other 5xx and anything that
    /// leaves no complete answer may come after the platform acted (outcome unknown).
    pub fn failure(&self) -> Failure {
        match self {
            EmersionError::Transport { error, .. } => error.failure(),
            EmersionError::Http { status, .. } => status_failure(*status),
            EmersionError::Fault { status, code, .. } => fault_failure(*status, code),
            EmersionError::Malformed { .. } => Failure::OutcomeUnknown,
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            EmersionError::Transport { operation, .. }
            | EmersionError::Http { operation, .. }
            | EmersionError::Fault { operation, .. }
            | EmersionError::Malformed { operation, .. } => operation,
        }
    }

    pub(super) fn transport(operation: &'static str) -> impl FnOnce(HttpError) -> Self {
        move |error| EmersionError::Transport { operation, error }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::billing::http::Phase;

    fn fault(status: u16, code: &str) -> EmersionError {
        EmersionError::Fault {
            operation: "CompleteOrder",
            status,
            code: code.into(),
            message: "Invalid service type id".into(),
        }
    }

    fn http(status: u16) -> EmersionError {
        EmersionError::Http {
            operation: "CompleteOrder",
            status,
            message: "bad gateway".into(),
        }
    }

    fn transport(error: HttpError) -> EmersionError {
        EmersionError::Transport {
            operation: "CompleteOrder",
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
            (fault(503, "Server"), Transient),
            (
                transport(HttpError::Deadline {
                    deadline: Duration::from_secs(1),
                    phase: Phase::Body { read: 3 },
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
                    declared: Some(5),
                }),
                OutcomeUnknown,
            ),
            (http(500), OutcomeUnknown),
            (http(502), OutcomeUnknown),
            (http(504), OutcomeUnknown),
            (fault(500, "Server"), OutcomeUnknown),
            (fault(500, "Receiver"), OutcomeUnknown),
            (fault(500, "Server.Database"), OutcomeUnknown),
            (
                EmersionError::Malformed {
                    operation: "CompleteOrder",
                    detail: "no <CompleteOrderResponse>".into(),
                },
                OutcomeUnknown,
            ),
            (fault(500, "Client"), Permanent),
            (fault(500, "client.Authentication"), Permanent),
            (fault(500, "Sender"), Permanent),
            (http(400), Permanent),
            (http(401), Permanent),
            (
                transport(HttpError::Redirect {
                    status: 302,
                    host: "elsewhere".into(),
                }),
                Permanent,
            ),
        ];
        for (error, failure) in table {
            assert_eq!(error.failure(), failure, "{error}");
        }
    }

    #[test]
    fn client_faults_read_as_the_platform_text_others_keep_the_cause() {
        assert_eq!(fault(500, "Client").to_string(), "Invalid service type id");
        assert_eq!(
            fault(500, "Server").to_string(),
            "CompleteOrder: SOAP fault Server (HTTP 500): Invalid service type id"
        );
        assert_eq!(
            http(502).to_string(),
            "CompleteOrder: HTTP 502: bad gateway"
        );
    }
}
