use crate::billing::Failure;
use crate::xml::XmlError;

/// Errors of a CostGuard call, each naming the operation it came from.
#[derive(Debug, thiserror::Error)]
pub enum CostGuardError {
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
    #[error("{operation}: SOAP fault {code}: {reason}")]
    Fault {
        operation: &'static str,
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
    #[error("service number {0:?} not found")]
    ServiceNotFound(String),
    #[error("service {service_id} is not eligible for renewal: no active favorite AdvancePay price point")]
    NotEligible { service_id: i64 },
    #[error("renewAdvancePay renewed no AdvancePay product on service {service_id}")]
    NothingRenewed { service_id: i64 },
}

impl CostGuardError {
    pub fn failure(&self) -> Failure {
        match self {
            CostGuardError::Connect { .. } => Failure::Transient,
            CostGuardError::Timeout { .. }
            | CostGuardError::Interrupted { .. }
            | CostGuardError::Malformed { .. } => Failure::OutcomeUnknown,
            CostGuardError::Http { status, .. } if *status == 429 || *status >= 500 => {
                Failure::Transient
            }
            CostGuardError::Fault { code, .. } if code == "Receiver" => Failure::Transient,
            CostGuardError::Http { .. }
            | CostGuardError::Fault { .. }
            | CostGuardError::Rejected { .. }
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

    pub(super) fn transport(operation: &'static str, err: reqwest::Error) -> Self {
        // Connection set-up failures never reached the platform; anything later might have.
        if err.is_connect() {
            CostGuardError::Connect {
                operation,
                detail: crate::billing::error_chain(&err),
            }
        } else if err.is_timeout() {
            CostGuardError::Timeout { operation }
        } else {
            CostGuardError::Interrupted {
                operation,
                detail: crate::billing::error_chain(&err),
            }
        }
    }
}

impl From<(&'static str, XmlError)> for CostGuardError {
    fn from((operation, err): (&'static str, XmlError)) -> Self {
        CostGuardError::malformed(operation, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let http = |status| CostGuardError::Http {
            operation: "x",
            status,
            message: String::new(),
        };
        assert_eq!(http(503).failure(), Failure::Transient);
        assert_eq!(http(429).failure(), Failure::Transient);
        assert_eq!(http(400).failure(), Failure::Permanent);
        let fault = |code: &str| CostGuardError::Fault {
            operation: "x",
            code: code.into(),
            reason: String::new(),
        };
        assert_eq!(fault("Receiver").failure(), Failure::Transient);
        assert_eq!(fault("Sender").failure(), Failure::Permanent);
        assert_eq!(
            CostGuardError::Timeout { operation: "x" }.failure(),
            Failure::OutcomeUnknown
        );
        assert_eq!(
            CostGuardError::NotEligible { service_id: 1 }.failure(),
            Failure::Permanent
        );
    }
}
