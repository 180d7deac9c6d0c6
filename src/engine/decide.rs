//! The engine's decisions, as pure functions of what it knows: what to do with a delivery
//! given the stage's record, what to do after a failed call, whether and how to reconcile.
//! No I/O here: the engine carries the answers out, and the tables below test every row.

use std::time::Duration;

use super::retry::RetryPolicy;
use super::DeadReason;
use crate::billing::Failure;
use crate::store::{StageRecord, StageState};
use crate::workflow::{Effect, Probe, StageDone, StageError};

/// What a delivery says about itself, beyond the stage's record.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// A command as a CRM sent it (not a stage message between workers): the digest of
    /// its data, to tell a re-send from a conflicting command.
    pub fresh: Option<&'a str>,
    /// Durable attempt of the stage, from 1.
    pub attempt: u32,
    /// The dead letter this run replays (`billflow dlq replay`), if any.
    pub replay: Option<&'a str>,
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum OnDelivery {
    /// The command_id was used before with other data: not run. The digests of both.
    Conflict { original: String, received: String },
    /// Run the call (first time, after a known non-effect, or a replay of a dead letter).
    Execute,
    /// A duplicate of a stage whose outcome was already published: nothing to do.
    Drop,
    /// The call took effect but its outcome was never published: publish it (the
    /// record's output and next stage, which it keeps).
    Forward {
        record: StageRecord,
        output: serde_json::Value,
        next: Option<String>,
    },
    /// The stage was dead-lettered but that was never published: publish it again.
    DeadLetterAgain {
        record: StageRecord,
        reason: DeadReason,
        error: String,
    },
    /// The call may have taken effect: ask the platform, never re-send blindly. `record`
    /// is the stage's, or a new "started" one where this worker has none.
    Reconcile { record: StageRecord, why: String },
}

pub fn on_delivery(record: Option<&StageRecord>, msg: Delivered, effect: Effect) -> OnDelivery {
    if let Some(received) = msg.fresh {
        if let Some(original) = record.and_then(|r| r.command_digest.as_deref()) {
            if original != received {
                return OnDelivery::Conflict {
                    original: original.to_string(),
                    received: received.to_string(),
                };
            }
        }
    }
    let Some(rec) = record else {
        // The record is the fleet's: every call is in the shard's ledger as "started"
        // before it is made, and the ledger was read before this delivery. So a stage
        // redelivered with no record never reached the platform (a killed worker had
        // only prefetched it) and simply runs. A retry is different: its earlier attempt
        // was recorded before the retry was sent, so its record is gone (expired, or a
        // store and ledger lost): the call may have been made.
        if effect == Effect::NonIdempotent && msg.attempt > 1 {
            return OnDelivery::Reconcile {
                record: StageRecord::started(msg.attempt),
                why: "a retry with no record of its earlier attempt anywhere in the fleet; the call may have been made".into(),
            };
        }
        return OnDelivery::Execute;
    };
    match &rec.state {
        // A person replayed a dead-lettered stage: run it again, once per replay.
        StageState::Failed { .. }
            if msg.replay.is_some() && rec.replay.as_deref() != msg.replay =>
        {
            OnDelivery::Execute
        }
        _ if rec.forwarded => OnDelivery::Drop,
        StageState::Completed { output, next } => OnDelivery::Forward {
            record: rec.clone(),
            output: output.clone(),
            next: next.clone(),
        },
        StageState::Failed { reason, error } => OnDelivery::DeadLetterAgain {
            record: rec.clone(),
            reason: *reason,
            error: error.clone(),
        },
        // The cause recorded when the outcome became unknown (a timeout, an HTTP 502, an
        // unreadable answer) stays in every later text about the stage.
        StageState::Started { cause } if effect == Effect::NonIdempotent => OnDelivery::Reconcile {
            record: rec.clone(),
            why: cause
                .clone()
                .unwrap_or_else(|| "the call was started and its result never recorded".into()),
        },
        StageState::Started { .. } | StageState::Retrying { .. } => OnDelivery::Execute,
    }
}

/// A failure as it counts for this stage: not knowing whether a repeatable call took
/// effect does not matter, it is simply made again.
pub fn effective(failure: Failure, effect: Effect) -> Failure {
    match (failure, effect) {
        (Failure::OutcomeUnknown, Effect::Repeatable) => Failure::Transient,
        (failure, _) => failure,
    }
}

/// What a failure means for the API's circuit breaker: a refusal is an answer, so the
/// API is up.
pub fn api_failed(failure: Option<Failure>) -> bool {
    matches!(failure, Some(Failure::Transient | Failure::OutcomeUnknown))
}

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again in this process after a short pause (the call did not take effect).
    QuickRetry,
    /// Send the stage through a delay queue as its next durable attempt.
    RetryLater,
    /// It may have taken effect: keep it "started" and reconcile once a slow call would
    /// have landed.
    CheckLater,
    DeadLetter(DeadReason),
}

/// `quick_left`: in-process retries still allowed in this attempt.
pub fn after_failure(
    failure: Failure,
    effect: Effect,
    attempt: u32,
    quick_left: u32,
    policy: &RetryPolicy,
) -> AfterFailure {
    match effective(failure, effect) {
        Failure::Transient if quick_left > 0 => AfterFailure::QuickRetry,
        Failure::Transient if attempt < policy.max_attempts => AfterFailure::RetryLater,
        Failure::Transient => AfterFailure::DeadLetter(DeadReason::RetriesExhausted),
        Failure::Permanent => AfterFailure::DeadLetter(DeadReason::PermanentError),
        Failure::OutcomeUnknown => AfterFailure::CheckLater,
    }
}

/// Whether a maybe-sent stage can be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeProbe {
    /// A call sent moments ago may still be on its way through the platform; a probe now
    /// could miss it and lead to a second call. Look after this long.
    WaitToLand(Duration),
    /// The platform has no lookup that tells: a person must decide.
    Park,
    Probe,
}

/// `age`: since the stage was started; `settle`: how long a slow call may take to land.
pub fn before_probe(age: Duration, settle: Duration, has_probe: bool) -> BeforeProbe {
    if age < settle {
        BeforeProbe::WaitToLand(settle - age)
    } else if !has_probe {
        BeforeProbe::Park
    } else {
        BeforeProbe::Probe
    }
}

/// What the platform's answer to a probe means.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterProbe {
    /// It took effect: record this as the stage's outcome.
    Complete(StageDone),
    /// It did not: sending it now is safe.
    Send,
    /// Nobody can tell: park it as outcome unknown, with this detail.
    Park(String),
    /// The check itself failed in a way that may pass: check again later.
    CheckLater(String),
}

pub fn after_probe(
    probe: Result<Probe, StageError>,
    attempt: u32,
    policy: &RetryPolicy,
) -> AfterProbe {
    match probe {
        Ok(Probe::Applied(done)) => AfterProbe::Complete(done),
        Ok(Probe::NotApplied) => AfterProbe::Send,
        Ok(Probe::Unavailable) => AfterProbe::Park("the platform has no lookup to check it".into()),
        Err(e) if e.failure != Failure::Permanent && attempt < policy.max_attempts => {
            AfterProbe::CheckLater(format!("the check failed: {}", e.message))
        }
        Err(e) => AfterProbe::Park(format!("the check failed: {}", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Effect::{NonIdempotent as N, Repeatable as R};

    fn msg<'a>(fresh: bool, attempt: u32, replay: Option<&'a str>) -> Delivered<'a> {
        Delivered {
            fresh: fresh.then_some("d1"),
            attempt,
            replay,
        }
    }

    fn rec(
        state: StageState,
        forwarded: bool,
        replay: Option<&str>,
        digest: Option<&str>,
    ) -> StageRecord {
        StageRecord {
            forwarded,
            replay: replay.map(str::to_string),
            command_digest: digest.map(str::to_string),
            ..StageRecord::started(1).with_state(state)
        }
    }

    fn started(cause: Option<&str>) -> StageState {
        StageState::Started {
            cause: cause.map(str::to_string),
        }
    }

    fn retrying() -> StageState {
        StageState::Retrying {
            error: Some("503".into()),
        }
    }

    fn completed() -> StageState {
        StageState::Completed {
            output: serde_json::json!({"id": 1}),
            next: Some("next".into()),
        }
    }

    fn failed() -> StageState {
        StageState::Failed {
            reason: DeadReason::PermanentError,
            error: "refused".into(),
        }
    }

    /// A decision without the record it carries, which `every_delivery_row` checks apart.
    #[derive(Debug, PartialEq)]
    enum Want {
        Conflict(&'static str),
        Execute,
        Drop,
        Forward,
        Again(DeadReason, &'static str),
        Reconcile(&'static str),
    }

    const NEVER_RECORDED: &str = "the call was started and its result never recorded";
    const RETRIED: &str =
        "a retry with no record of its earlier attempt anywhere in the fleet; the call may have been made";

    #[test]
    fn every_delivery_row() {
        use Want::*;
        let again = Again(DeadReason::PermanentError, "refused");
        let rows: Vec<(&str, Option<StageRecord>, Delivered, Effect, Want)> = vec![
            (
                "new command, first stage",
                None,
                msg(true, 1, None),
                N,
                Execute,
            ),
            (
                "new repeatable stage",
                None,
                msg(false, 1, None),
                R,
                Execute,
            ),
            (
                "new non-idempotent stage",
                None,
                msg(false, 1, None),
                N,
                Execute,
            ),
            // Found by the chaos suite: a killed worker's prefetched messages come back
            // redelivered. The record is the fleet's (the ledger was read first): none
            // means no worker ever started the call, so it runs instead of being parked.
            (
                "redelivered, no record anywhere, non-idempotent",
                None,
                msg(false, 1, None),
                N,
                Execute,
            ),
            (
                "redelivered, another worker's started record, non-idempotent",
                Some(StageRecord {
                    replicated: true,
                    ..rec(started(None), false, None, None)
                }),
                msg(false, 1, None),
                N,
                Reconcile(NEVER_RECORDED),
            ),
            (
                "duplicate command after fail-over, another worker completed it",
                Some(StageRecord {
                    replicated: true,
                    ..rec(completed(), false, None, Some("d1"))
                }),
                msg(true, 1, None),
                N,
                Forward,
            ),
            (
                "conflicting command after fail-over",
                Some(StageRecord {
                    replicated: true,
                    ..rec(completed(), false, None, Some("d0"))
                }),
                msg(true, 1, None),
                N,
                Conflict("d0"),
            ),
            (
                "retry, no record, non-idempotent",
                None,
                msg(false, 3, None),
                N,
                Reconcile(RETRIED),
            ),
            (
                "redelivered, no record, repeatable",
                None,
                msg(false, 1, None),
                R,
                Execute,
            ),
            (
                "retry, no record, repeatable",
                None,
                msg(false, 3, None),
                R,
                Execute,
            ),
            (
                "same command re-sent",
                Some(rec(completed(), true, None, Some("d1"))),
                msg(true, 1, None),
                N,
                Drop,
            ),
            (
                "same id, other data, finished",
                Some(rec(completed(), true, None, Some("d0"))),
                msg(true, 1, None),
                N,
                Conflict("d0"),
            ),
            (
                "same id, other data, in flight",
                Some(rec(started(None), false, None, Some("d0"))),
                msg(true, 1, None),
                N,
                Conflict("d0"),
            ),
            (
                "stage message is never a conflict",
                Some(rec(completed(), true, None, Some("d0"))),
                msg(false, 1, None),
                N,
                Drop,
            ),
            (
                "duplicate of a forwarded completion",
                Some(rec(completed(), true, None, None)),
                msg(false, 1, None),
                N,
                Drop,
            ),
            (
                "duplicate of a forwarded failure",
                Some(rec(failed(), true, None, None)),
                msg(false, 1, None),
                N,
                Drop,
            ),
            (
                "completed, crash before publishing",
                Some(rec(completed(), false, None, None)),
                msg(false, 1, None),
                N,
                Forward,
            ),
            (
                "failed, crash before publishing",
                Some(rec(failed(), false, None, None)),
                msg(false, 1, None),
                N,
                again,
            ),
            (
                "replay of a dead letter",
                Some(rec(failed(), true, None, None)),
                msg(false, 1, Some("r1")),
                N,
                Execute,
            ),
            (
                "second replay of another letter",
                Some(rec(failed(), true, Some("r1"), None)),
                msg(false, 1, Some("r2")),
                N,
                Execute,
            ),
            (
                "same replay twice",
                Some(rec(failed(), true, Some("r1"), None)),
                msg(false, 1, Some("r1")),
                N,
                Drop,
            ),
            (
                "same replay, crash before publishing",
                Some(rec(failed(), false, Some("r1"), None)),
                msg(false, 1, Some("r1")),
                N,
                Again(DeadReason::PermanentError, "refused"),
            ),
            (
                "replay of a completed stage",
                Some(rec(completed(), true, None, None)),
                msg(false, 1, Some("r1")),
                N,
                Drop,
            ),
            (
                "started, non-idempotent, crash mid-call",
                Some(rec(started(None), false, None, None)),
                msg(false, 1, None),
                N,
                Reconcile(NEVER_RECORDED),
            ),
            (
                "started, cause kept",
                Some(rec(started(Some("timeout")), false, None, None)),
                msg(false, 2, None),
                N,
                Reconcile("timeout"),
            ),
            (
                "started, repeatable",
                Some(rec(started(None), false, None, None)),
                msg(false, 1, None),
                R,
                Execute,
            ),
            (
                "retrying, non-idempotent",
                Some(rec(retrying(), false, None, None)),
                msg(false, 2, None),
                N,
                Execute,
            ),
            (
                "retrying, repeatable",
                Some(rec(retrying(), false, None, None)),
                msg(false, 2, None),
                R,
                Execute,
            ),
        ];
        for (name, record, delivered, effect, expected) in rows {
            let decision = on_delivery(record.as_ref(), delivered, effect);
            let carried = match &decision {
                OnDelivery::Forward { record: r, .. }
                | OnDelivery::DeadLetterAgain { record: r, .. }
                | OnDelivery::Reconcile { record: r, .. } => Some(r.clone()),
                _ => None,
            };
            let got = match decision {
                OnDelivery::Conflict { original, received } => {
                    assert_eq!(received, "d1", "{name}");
                    Conflict(if original == "d0" { "d0" } else { "?" })
                }
                OnDelivery::Execute => Execute,
                OnDelivery::Drop => Drop,
                OnDelivery::Forward { output, next, .. } => {
                    assert_eq!(output, serde_json::json!({"id": 1}), "{name}");
                    assert_eq!(next.as_deref(), Some("next"), "{name}");
                    Forward
                }
                OnDelivery::DeadLetterAgain { reason, error, .. } => {
                    Again(reason, if error == "refused" { "refused" } else { "?" })
                }
                OnDelivery::Reconcile { why, .. } => Reconcile(
                    [NEVER_RECORDED, RETRIED, "timeout"]
                        .into_iter()
                        .find(|w| *w == why)
                        .unwrap_or("?"),
                ),
            };
            assert_eq!(got, expected, "{name}");
            match (&record, carried) {
                (Some(record), Some(carried)) => {
                    assert_eq!(&carried, record, "{name}: the stage's own record")
                }
                (None, Some(carried)) => {
                    assert_eq!(carried.state, StageState::Started { cause: None }, "{name}");
                    assert_eq!(carried.attempt, delivered.attempt, "{name}");
                }
                (_, None) => {}
            }
        }
    }

    #[test]
    fn every_failure_row() {
        use AfterFailure::*;
        use Failure::{OutcomeUnknown as U, Permanent as P, Transient as T};
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        // (failure, effect, attempt, quick retries left) → next
        let rows = [
            (T, N, 1, 2, QuickRetry),
            (T, R, 1, 1, QuickRetry),
            (T, N, 1, 0, RetryLater),
            (T, N, 2, 0, RetryLater),
            (T, N, 3, 0, DeadLetter(DeadReason::RetriesExhausted)),
            (T, N, 4, 0, DeadLetter(DeadReason::RetriesExhausted)),
            (T, N, 3, 1, QuickRetry),
            (P, N, 1, 2, DeadLetter(DeadReason::PermanentError)),
            (P, R, 1, 2, DeadLetter(DeadReason::PermanentError)),
            // Maybe sent: never retried in process, checked once it would have landed.
            (U, N, 1, 2, CheckLater),
            (U, N, 3, 0, CheckLater),
            // A repeatable call that may have been made is simply made again.
            (U, R, 1, 2, QuickRetry),
            (U, R, 1, 0, RetryLater),
            (U, R, 3, 0, DeadLetter(DeadReason::RetriesExhausted)),
        ];
        for (failure, effect, attempt, quick_left, expected) in rows {
            assert_eq!(
                after_failure(failure, effect, attempt, quick_left, &policy),
                expected,
                "{failure:?} {effect:?} attempt {attempt} quick {quick_left}"
            );
        }
    }

    #[test]
    fn the_breaker_counts_only_failures_of_the_api() {
        assert!(!api_failed(None));
        assert!(!api_failed(Some(Failure::Permanent)));
        assert!(api_failed(Some(Failure::Transient)));
        assert!(api_failed(Some(Failure::OutcomeUnknown)));
    }

    #[test]
    fn every_row_before_a_probe() {
        let s = Duration::from_secs;
        assert_eq!(
            before_probe(s(0), s(30), true),
            BeforeProbe::WaitToLand(s(30))
        );
        assert_eq!(
            before_probe(s(10), s(30), false),
            BeforeProbe::WaitToLand(s(20))
        );
        assert_eq!(before_probe(s(30), s(30), false), BeforeProbe::Park);
        assert_eq!(before_probe(s(31), s(30), true), BeforeProbe::Probe);
        assert_eq!(before_probe(s(0), s(0), true), BeforeProbe::Probe);
    }

    #[test]
    fn every_probe_answer_row() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let done = StageDone {
            output: serde_json::json!({"id": 1}),
            next: None,
        };
        let err = |failure| StageError {
            failure,
            message: "HTTP 503".into(),
        };
        let rows = [
            (
                Ok(Probe::Applied(done.clone())),
                1,
                AfterProbe::Complete(done),
            ),
            (Ok(Probe::NotApplied), 1, AfterProbe::Send),
            (
                Ok(Probe::Unavailable),
                1,
                AfterProbe::Park("the platform has no lookup to check it".into()),
            ),
            (
                Err(err(Failure::Transient)),
                1,
                AfterProbe::CheckLater("the check failed: HTTP 503".into()),
            ),
            (
                Err(err(Failure::OutcomeUnknown)),
                2,
                AfterProbe::CheckLater("the check failed: HTTP 503".into()),
            ),
            (
                Err(err(Failure::Transient)),
                3,
                AfterProbe::Park("the check failed: HTTP 503".into()),
            ),
            (
                Err(err(Failure::Permanent)),
                1,
                AfterProbe::Park("the check failed: HTTP 503".into()),
            ),
        ];
        for (probe, attempt, expected) in rows {
            let name = format!("{probe:?} attempt {attempt}");
            assert_eq!(after_probe(probe, attempt, &policy), expected, "{name}");
        }
    }
}
