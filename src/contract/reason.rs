//! Why a message ended in the dead queue: the `x-billflow-reason` header, the stage
//! record's failure and the outcome of the events that tell of it.

use super::events::Outcome;

/// Why a message went to the dead queue (header `x-billflow-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    PermanentError,
    RetriesExhausted,
    InvalidMessage,
    OutcomeUnknown,
    /// A command_id seen before with other data.
    ConflictingDuplicate,
    /// The worker panicked on the message.
    InternalError,
    /// RabbitMQ dead-lettered it: its per-message TTL ran out in a queue.
    Expired,
    /// RabbitMQ dead-lettered it: delivered more often than the quorum queue allows.
    DeliveryLimit,
    /// RabbitMQ dead-lettered it: rejected without requeue, over a length limit, or for
    /// a cause its `x-death` header does not say.
    Rejected,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::PermanentError => "permanent_error",
            DeadReason::RetriesExhausted => "retries_exhausted",
            DeadReason::InvalidMessage => "invalid_message",
            DeadReason::OutcomeUnknown => "outcome_unknown",
            DeadReason::ConflictingDuplicate => "conflicting_duplicate",
            DeadReason::InternalError => "internal_error",
            DeadReason::Expired => "expired",
            DeadReason::DeliveryLimit => "delivery_limit",
            DeadReason::Rejected => "rejected",
        }
    }

    pub const ALL: [DeadReason; 9] = [
        DeadReason::PermanentError,
        DeadReason::RetriesExhausted,
        DeadReason::InvalidMessage,
        DeadReason::OutcomeUnknown,
        DeadReason::ConflictingDuplicate,
        DeadReason::InternalError,
        DeadReason::Expired,
        DeadReason::DeliveryLimit,
        DeadReason::Rejected,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The outcome published for the stage and the workflow.
    pub fn outcome(self) -> Outcome {
        match self {
            DeadReason::PermanentError
            | DeadReason::InvalidMessage
            | DeadReason::ConflictingDuplicate
            | DeadReason::InternalError => Outcome::Failed,
            DeadReason::RetriesExhausted
            | DeadReason::Expired
            | DeadReason::DeliveryLimit
            | DeadReason::Rejected => Outcome::DeadLettered,
            DeadReason::OutcomeUnknown => Outcome::Parked,
        }
    }
}
