//! One stage's record: its state, carrying what that state has, and how it is kept on
//! disk. The disk format is the flat JSON every earlier version wrote, so existing stores
//! open as they are; a record that does not fit the states (an unknown reason, a failure
//! without one) is unreadable, never silently read as something else.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::contract::DeadReason;

/// Where a stage stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    /// Claimed: the call may be under way, or may have been sent by a process that died.
    /// `cause` says why its outcome is unknown, once something has said (a timeout, an
    /// HTTP 502, an unreadable answer).
    Started { cause: Option<String> },
    /// The last attempt failed in a way known not to have taken effect; a retry is queued.
    Retrying { error: Option<String> },
    /// The call took effect: its output, and the stage to run next (`None`: the last).
    Completed { output: Value, next: Option<String> },
    /// Dead-lettered.
    Failed { reason: DeadReason, error: String },
}

impl StageState {
    /// The state's name, as stored and shown (`started`, `retrying`, `completed`, `failed`).
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    fn kind(&self) -> Kind {
        match self {
            StageState::Started { .. } => Kind::Started,
            StageState::Retrying { .. } => Kind::Retrying,
            StageState::Completed { .. } => Kind::Completed,
            StageState::Failed { .. } => Kind::Failed,
        }
    }

    /// The error text the state carries, if any.
    pub fn error(&self) -> Option<&str> {
        match self {
            StageState::Started { cause } => cause.as_deref(),
            StageState::Retrying { error } => error.as_deref(),
            StageState::Completed { .. } => None,
            StageState::Failed { error, .. } => Some(error),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Stored<'static>")]
pub struct StageRecord {
    pub state: StageState,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The outcome's messages (next stage or dead letter, events) were confirmed by the
    /// broker; a later copy of this stage's message is a duplicate.
    pub forwarded: bool,
    /// The replay (from the dead queue) this record belongs to, if any.
    pub replay: Option<String>,
    /// First stage only: the digest of the command's data, to tell an identical re-send
    /// from a conflicting one.
    pub command_digest: Option<String>,
    /// Learned from the replicated ledger: another worker (or this one, before its store
    /// was lost) wrote it, and forwarding its outcome was that writer's job.
    pub replicated: bool,
}

impl StageRecord {
    pub fn started(attempt: u32) -> Self {
        let now = Utc::now();
        StageRecord {
            state: StageState::Started { cause: None },
            attempt,
            started_at: now,
            updated_at: now,
            forwarded: false,
            replay: None,
            command_digest: None,
            replicated: false,
        }
    }

    pub fn with_state(mut self, state: StageState) -> Self {
        self.state = state;
        self.updated_at = Utc::now();
        self
    }

    /// The stage's outcome was confirmed by the broker (or, replicated, was its writer's
    /// to publish): only such a record may expire.
    pub(super) fn is_final(&self) -> bool {
        (self.forwarded || self.replicated)
            && matches!(
                self.state,
                StageState::Completed { .. } | StageState::Failed { .. }
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Started,
    Retrying,
    Completed,
    Failed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Started => "started",
            Kind::Retrying => "retrying",
            Kind::Completed => "completed",
            Kind::Failed => "failed",
        }
    }
}

/// A record as sled keeps it: flat, the fields a state does not have left out. Written
/// from borrowed fields (a record is written several times per stage: no copy of its
/// output each time), read into owned ones.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    state: Kind,
    attempt: u32,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Cow<'a, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_stage: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    forwarded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_digest: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    replicated: bool,
}

impl TryFrom<Stored<'static>> for StageRecord {
    type Error = String;

    fn try_from(s: Stored<'static>) -> Result<Self, String> {
        let owned = |c: Option<Cow<'static, str>>| c.map(Cow::into_owned);
        let state = match s.state {
            Kind::Started => StageState::Started {
                cause: owned(s.error),
            },
            Kind::Retrying => StageState::Retrying {
                error: owned(s.error),
            },
            Kind::Completed => StageState::Completed {
                output: s.output.map(Cow::into_owned).unwrap_or(Value::Null),
                next: owned(s.next_stage),
            },
            Kind::Failed => {
                let reason = s.reason.ok_or("a failed stage without a reason")?;
                StageState::Failed {
                    reason: DeadReason::parse(&reason)
                        .ok_or_else(|| format!("unknown dead-letter reason {reason:?}"))?,
                    error: owned(s.error).unwrap_or_default(),
                }
            }
        };
        Ok(StageRecord {
            state,
            attempt: s.attempt,
            started_at: s.started_at,
            updated_at: s.updated_at,
            forwarded: s.forwarded,
            replay: owned(s.replay),
            command_digest: owned(s.command_digest),
            replicated: s.replicated,
        })
    }
}

impl Serialize for StageRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn text(t: &Option<String>) -> Option<Cow<'_, str>> {
            t.as_deref().map(Cow::Borrowed)
        }
        let (output, error, next_stage, reason) = match &self.state {
            StageState::Started { cause } => (None, text(cause), None, None),
            StageState::Retrying { error } => (None, text(error), None, None),
            StageState::Completed { output, next } => {
                (Some(Cow::Borrowed(output)), None, text(next), None)
            }
            StageState::Failed { reason, error } => (
                None,
                Some(Cow::Borrowed(error.as_str())),
                None,
                Some(Cow::Borrowed(reason.as_str())),
            ),
        };
        Stored {
            state: self.state.kind(),
            attempt: self.attempt,
            started_at: self.started_at,
            updated_at: self.updated_at,
            output,
            error,
            next_stage,
            reason,
            forwarded: self.forwarded,
            replay: text(&self.replay),
            command_digest: text(&self.command_digest),
            replicated: self.replicated,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as versions before the typed states wrote them, byte for byte.
    const WRITTEN_BEFORE: &[&str] = &[
        r#"{"state":"started","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:00Z","forwarded":false,"command_digest":"ab12"}"#,
        r#"{"state":"started","attempt":2,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:01Z","error":"outcome unknown, will check: timeout","forwarded":false}"#,
        r#"{"state":"retrying","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:01Z","error":"HTTP 503","forwarded":false}"#,
        r#"{"state":"completed","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:01Z","output":{"cart":{"id":7}},"next_stage":"renew","forwarded":true}"#,
        r#"{"state":"completed","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:01Z","output":null,"forwarded":true}"#,
        r#"{"state":"failed","attempt":5,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:01Z","error":"HTTP 503","reason":"retries_exhausted","forwarded":true,"replay":"r-1"}"#,
    ];

    #[test]
    fn records_of_earlier_versions_read_as_typed_states_and_write_back_the_same() {
        let read: Vec<StageRecord> = WRITTEN_BEFORE
            .iter()
            .map(|raw| serde_json::from_str(raw).unwrap())
            .collect();
        assert_eq!(read[0].state, StageState::Started { cause: None });
        assert_eq!(read[0].command_digest.as_deref(), Some("ab12"));
        assert_eq!(
            read[1].state.error(),
            Some("outcome unknown, will check: timeout")
        );
        assert!(matches!(read[2].state, StageState::Retrying { .. }));
        assert_eq!(
            read[3].state,
            StageState::Completed {
                output: serde_json::json!({"cart": {"id": 7}}),
                next: Some("renew".into())
            }
        );
        assert_eq!(
            read[5].state,
            StageState::Failed {
                reason: DeadReason::RetriesExhausted,
                error: "HTTP 503".into()
            }
        );
        for (raw, record) in WRITTEN_BEFORE.iter().zip(&read) {
            let before: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(serde_json::to_value(record).unwrap(), before, "{raw}");
        }
    }

    #[test]
    fn a_record_that_fits_no_state_is_unreadable_not_guessed() {
        for raw in [
            r#"{"state":"failed","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:00Z","error":"x","reason":"gremlins"}"#,
            r#"{"state":"failed","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:00Z","error":"x"}"#,
            r#"{"state":"paused","attempt":1,"started_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:00Z"}"#,
        ] {
            assert!(serde_json::from_str::<StageRecord>(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn every_reason_survives_the_disk() {
        for reason in DeadReason::ALL {
            let record = StageRecord::started(1).with_state(StageState::Failed {
                reason,
                error: "e".into(),
            });
            let back: StageRecord =
                serde_json::from_slice(&serde_json::to_vec(&record).unwrap()).unwrap();
            assert_eq!(back, record);
        }
    }
}
