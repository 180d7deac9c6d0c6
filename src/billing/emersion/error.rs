use crate::billing::Failure;

/// Errors of an Emersion call, each naming the operation it came from.
#[derive(Debug, thiserror::Error)]
pub enum EmersionError {
    #[error("{operation}: could not connect: {detail}")]
    Connect {
        operation: &'static str,
        detail: String,
    },
    #[error("{operation}: no response within the timeout")]
    Timeout { operation: &'static str },
    #[error("{operation}: connection failed mid-call: {detail}")]
    Interrupted {
        operation: &'static str,
        detail: String,
    },
    #[error("{operation}: HTTP {status}: {message}")]
    Http {
        operation: &'static str,
        status: u16,
        message: String,
    },
    /// A SOAP Fault; the message is the platform's own text.
    #[error("{message}")]
    Fault {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("{operation}: unreadable response: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}

impl EmersionError {
    /// `Client` faults are validation or business rules (permanent); `Server` faults,
    /// 5xx and 429 are transient; a call that may have been applied is outcome-unknown.
    pub fn failure(&self) -> Failure {
        match self {
            EmersionError::Connect { .. } => Failure::Transient,
            EmersionError::Timeout { .. }
            | EmersionError::Interrupted { .. }
            | EmersionError::Malformed { .. } => Failure::OutcomeUnknown,
            EmersionError::Http { status, .. } if *status == 429 || *status >= 500 => {
                Failure::Transient
            }
            EmersionError::Http { .. } => Failure::Permanent,
            EmersionError::Fault { code, .. }
                if code.eq_ignore_ascii_case("Server") || code.eq_ignore_ascii_case("Receiver") =>
            {
                Failure::Transient
            }
            EmersionError::Fault { .. } => Failure::Permanent,
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            EmersionError::Connect { operation, .. }
            | EmersionError::Timeout { operation }
            | EmersionError::Interrupted { operation, .. }
            | EmersionError::Http { operation, .. }
            | EmersionError::Fault { operation, .. }
            | EmersionError::Malformed { operation, .. } => operation,
        }
    }

    pub(super) fn transport(operation: &'static str, err: reqwest::Error) -> Self {
        let detail = crate::billing::error_chain(&err);
        if err.is_connect() {
            EmersionError::Connect { operation, detail }
        } else if err.is_timeout() {
            EmersionError::Timeout { operation }
        } else {
            EmersionError::Interrupted { operation, detail }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_faults_are_permanent_server_faults_transient() {
        let fault = |code: &str| EmersionError::Fault {
            operation: "PerformSimpleSQ",
            code: code.into(),
            message: "Invalid service type id".into(),
        };
        assert_eq!(fault("Client").failure(), Failure::Permanent);
        assert_eq!(fault("Server").failure(), Failure::Transient);
        assert_eq!(fault("Client").to_string(), "Invalid service type id");
        assert_eq!(
            EmersionError::Timeout { operation: "x" }.failure(),
            Failure::OutcomeUnknown
        );
    }
}
