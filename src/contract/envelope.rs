//! The message envelope: every `x-billflow-*` AMQP header (and W3C `traceparent`) that
//! billflow writes on stage messages, dead letters and events, the one place that reads
//! them back, and the list the AsyncAPI document renders. Names and value types are
//! contract: text travels as a long string, counts as a long-long integer.
//!
//! Contract, not engine: it knows lapin's types, chrono, redaction and [`DeadReason`],
//! nothing of how stages run.

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable};

use super::DeadReason;
use crate::redact;

/// Longest error text a header carries: header values stay readable in management tools.
pub const MAX_ERROR_CHARS: usize = 1_000;

/// How a header's value travels, and is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A long string.
    Text,
    /// A long-long integer, from 1.
    Count,
    /// A long string, one of [`DeadReason::ALL`].
    Reason,
    /// A long string: a W3C Trace Context `traceparent`.
    TraceContext,
}

/// Whether a dead letter carries a header (as its AsyncAPI document says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeadLetter {
    Always,
    Sometimes,
    /// Between workers only: not part of the dead letter's documented headers.
    Never,
}

/// One header: its name on the wire, its value type, and what it says on a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: &'static str,
    pub kind: Kind,
    pub on_dead_letter: OnDeadLetter,
    pub description: &'static str,
}

impl Header {
    pub const REASON: Header = Header {
        name: "x-billflow-reason",
        kind: Kind::Reason,
        on_dead_letter: OnDeadLetter::Always,
        description: "Why: `permanent_error`, `invalid_message` (also an \
            unsigned or altered stage message), `conflicting_duplicate` (a \
            command_id already used with other data) and `internal_error` (the \
            worker panicked) were published as `failed`, `retries_exhausted` as \
            `dead_lettered`, `outcome_unknown` as `parked`. RabbitMQ \
            dead-lettered the message, published as `dead_lettered`: `expired` \
            (its per-message TTL ran out), `delivery_limit` (delivered more often \
            than the quorum queue allows), `rejected` (rejected without requeue, \
            dropped over a length limit, or an `x-death` header that does not say).",
    };
    pub const ERROR: Header = Header {
        name: "x-billflow-error",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Always,
        description: "The last error, at most 1000 characters.",
    };
    pub const COMMAND_ID: Header = Header {
        name: "x-billflow-command-id",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Always,
        description: "The command_id (for an unreadable message: its \
            AMQP message_id, or `unidentified-<hash of the body>`).",
    };
    /// Names the stage; its absence marks a command fresh from a CRM.
    pub const STAGE: Header = Header {
        name: "x-billflow-stage",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "The stage (`invalid_message`, `expired`, \
            `delivery_limit`, `rejected`: only if the message had it).",
    };
    pub const WORKFLOW: Header = Header {
        name: "x-billflow-workflow",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "The workflow (`invalid_message`: only if the \
            message had it; `expired`, `delivery_limit`, `rejected`: when the body's \
            command type names one).",
    };
    pub const ATTEMPT: Header = Header {
        name: "x-billflow-attempt",
        kind: Kind::Count,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "The stage's attempt number (`invalid_message`, \
            `expired`, `delivery_limit`, `rejected`: only if the message had it).",
    };
    pub const ATTEMPTS: Header = Header {
        name: "x-billflow-attempts",
        kind: Kind::Count,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "Attempts made before giving up (not for \
            `invalid_message`, `expired`, `delivery_limit`, `rejected`).",
    };
    pub const FIRST_FAILURE: Header = Header {
        name: "x-billflow-first-failure",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Always,
        description: "RFC 3339 time of the first failure.",
    };
    pub const LAST_FAILURE: Header = Header {
        name: "x-billflow-last-failure",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Always,
        description: "RFC 3339 time of the last failure (for \
            `expired`, `delivery_limit`, `rejected`: when RabbitMQ dead-lettered it).",
    };
    /// The routing key a command was published with to the commands exchange.
    pub const ORIGINAL_ROUTING_KEY: Header = Header {
        name: "x-billflow-original-routing-key",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "`invalid_message`: the routing key \
            the message arrived with.",
    };
    /// Taken from commands and put on every stage and event.
    pub const TRACEPARENT: Header = Header {
        name: "traceparent",
        kind: Kind::TraceContext,
        on_dead_letter: OnDeadLetter::Sometimes,
        description: "The W3C Trace Context of the command, when it had one.",
    };
    pub const SIGNATURE: Header = Header {
        name: "x-billflow-signature",
        kind: Kind::Text,
        on_dead_letter: OnDeadLetter::Never,
        description: "`v1=<hex HMAC-SHA256 of the body>`, written by the worker that \
            wrote the stage message: only a signed stage is run.",
    };

    /// Every header; the AsyncAPI document lists the required ones in this order.
    pub const ALL: [Header; 12] = [
        Header::REASON,
        Header::ERROR,
        Header::COMMAND_ID,
        Header::STAGE,
        Header::WORKFLOW,
        Header::ATTEMPT,
        Header::ATTEMPTS,
        Header::FIRST_FAILURE,
        Header::LAST_FAILURE,
        Header::ORIGINAL_ROUTING_KEY,
        Header::TRACEPARENT,
        Header::SIGNATURE,
    ];

    /// Whether `headers` has this header, whatever its value's type.
    pub fn is_in(&self, headers: &FieldTable) -> bool {
        headers.contains_key(self.name)
    }
}

/// What the headers of one message say; `None` is a header not there (or not readable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub stage: Option<String>,
    pub workflow: Option<String>,
    pub command_id: Option<String>,
    /// The stage's durable attempt number.
    pub attempt: Option<u32>,
    /// Attempts made before the stage was given up.
    pub attempts: Option<u32>,
    pub reason: Option<DeadReason>,
    /// Written redacted and cut to [`MAX_ERROR_CHARS`].
    pub error: Option<String>,
    pub first_failure: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub original_routing_key: Option<String>,
    pub signature: Option<String>,
    /// Only a valid one is read.
    pub traceparent: Option<String>,
}

impl Envelope {
    pub fn to_headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        self.write_into(&mut headers);
        headers
    }

    /// Sets every header this envelope has; the others in `headers` stay as they are.
    pub fn write_into(&self, headers: &mut FieldTable) {
        for (header, value) in self.values() {
            if let Some(value) = value {
                headers.insert(header.name.into(), value);
            }
        }
    }

    /// Reads leniently: a header that is absent, of another type or unreadable is `None`.
    /// Text may be a long or a short string, a count any integer type.
    pub fn from_headers(headers: &FieldTable) -> Envelope {
        let get = |header: Header| headers.inner().get(header.name);
        let text = |header: Header| get(header).and_then(as_text);
        let count = |header: Header| get(header).and_then(as_count);
        let time = |header: Header| {
            text(header)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Envelope {
            stage: text(Header::STAGE),
            workflow: text(Header::WORKFLOW),
            command_id: text(Header::COMMAND_ID),
            attempt: count(Header::ATTEMPT),
            attempts: count(Header::ATTEMPTS),
            reason: text(Header::REASON).and_then(|r| DeadReason::parse(&r)),
            error: text(Header::ERROR),
            first_failure: time(Header::FIRST_FAILURE),
            last_failure: time(Header::LAST_FAILURE),
            original_routing_key: text(Header::ORIGINAL_ROUTING_KEY),
            signature: text(Header::SIGNATURE),
            traceparent: text(Header::TRACEPARENT).filter(|t| valid_traceparent(t)),
        }
    }

    /// The headers of a delivery, which may have none.
    pub fn of(headers: Option<&FieldTable>) -> Envelope {
        headers.map(Envelope::from_headers).unwrap_or_default()
    }

    /// Each header with its value as it travels.
    fn values(&self) -> [(Header, Option<AMQPValue>); 12] {
        let text = |value: &Option<String>| value.as_deref().map(long_string);
        let count = |value: Option<u32>| value.map(|n| AMQPValue::LongLongInt(i64::from(n)));
        let time = |value: Option<DateTime<Utc>>| value.map(|t| long_string(&t.to_rfc3339()));
        [
            (Header::REASON, self.reason.map(|r| long_string(r.as_str()))),
            (
                Header::ERROR,
                self.error.as_deref().map(|e| long_string(&capped(e))),
            ),
            (Header::COMMAND_ID, text(&self.command_id)),
            (Header::STAGE, text(&self.stage)),
            (Header::WORKFLOW, text(&self.workflow)),
            (Header::ATTEMPT, count(self.attempt)),
            (Header::ATTEMPTS, count(self.attempts)),
            (Header::FIRST_FAILURE, time(self.first_failure)),
            (Header::LAST_FAILURE, time(self.last_failure)),
            (
                Header::ORIGINAL_ROUTING_KEY,
                text(&self.original_routing_key),
            ),
            (Header::TRACEPARENT, text(&self.traceparent)),
            (Header::SIGNATURE, text(&self.signature)),
        ]
    }
}

/// An error as a header carries it: no configured secret, at most [`MAX_ERROR_CHARS`].
fn capped(error: &str) -> String {
    redact::global()
        .redact(error)
        .chars()
        .take(MAX_ERROR_CHARS)
        .collect()
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.to_string().into())
}

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn as_count(value: &AMQPValue) -> Option<u32> {
    let n = match *value {
        AMQPValue::ShortShortInt(n) => i64::from(n),
        AMQPValue::ShortShortUInt(n) => i64::from(n),
        AMQPValue::ShortInt(n) => i64::from(n),
        AMQPValue::ShortUInt(n) => i64::from(n),
        AMQPValue::LongInt(n) => i64::from(n),
        AMQPValue::LongUInt(n) => i64::from(n),
        AMQPValue::LongLongInt(n) => n,
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
pub fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].chars().any(|c| c != '0')
        && hex(parts[2], 16)
        && parts[2].chars().any(|c| c != '0')
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{LongString, ShortString};

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn full() -> Envelope {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Envelope {
            stage: Some("check_favorites".into()),
            workflow: Some("advancepay_renewal".into()),
            command_id: Some("crm-44".into()),
            attempt: Some(2),
            attempts: Some(3),
            reason: Some(DeadReason::PermanentError),
            error: Some("not eligible".into()),
            first_failure: Some(at("2026-11-22T14:12:30.118+00:00")),
            last_failure: Some(at("2026-11-22T14:13:00+00:00")),
            original_routing_key: Some("advancepay.renew".into()),
            signature: Some("v1=00ff".into()),
            traceparent: Some(TRACE.into()),
        }
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut headers = FieldTable::default();
        for (name, value) in entries {
            headers.insert((*name).into(), value.clone());
        }
        headers
    }

    #[test]
    fn round_trip_with_the_wire_types_of_the_contract() {
        let envelope = full();
        let headers = envelope.to_headers();
        assert_eq!(Envelope::from_headers(&headers), envelope);

        let names: Vec<&str> = headers.inner().keys().map(|k| k.as_str()).collect();
        let mut all: Vec<&str> = Header::ALL.iter().map(|h| h.name).collect();
        all.sort_unstable();
        assert_eq!(names, all, "every header is written, under its name");
        for header in Header::ALL {
            let value = &headers.inner()[header.name];
            match header.kind {
                Kind::Count => assert!(matches!(value, AMQPValue::LongLongInt(_)), "{value:?}"),
                _ => assert!(matches!(value, AMQPValue::LongString(_)), "{value:?}"),
            }
        }
        assert_eq!(
            headers.inner()[Header::FIRST_FAILURE.name],
            long_string("2026-11-22T14:12:30.118+00:00")
        );
        assert_eq!(
            headers.inner()[Header::REASON.name],
            long_string("permanent_error")
        );
        assert_eq!(
            Envelope::default().to_headers(),
            FieldTable::default(),
            "nothing set, nothing written"
        );
    }

    #[test]
    fn writing_into_keeps_the_other_headers() {
        let mut headers = table(&[
            ("x-death", AMQPValue::LongLongInt(1)),
            (Header::STAGE.name, long_string("renew")),
            (Header::REASON.name, long_string("expired")),
        ]);
        Envelope {
            reason: Some(DeadReason::Rejected),
            ..Envelope::default()
        }
        .write_into(&mut headers);
        assert_eq!(headers.inner()["x-death"], AMQPValue::LongLongInt(1));
        let read = Envelope::from_headers(&headers);
        assert_eq!(read.stage.as_deref(), Some("renew"));
        assert_eq!(read.reason, Some(DeadReason::Rejected));
    }

    #[test]
    fn odd_types_read_leniently() {
        let headers = table(&[
            (
                Header::STAGE.name,
                AMQPValue::ShortString(ShortString::from("renew")),
            ),
            (Header::COMMAND_ID.name, AMQPValue::LongLongInt(42)),
            (
                Header::WORKFLOW.name,
                AMQPValue::LongString(LongString::from(vec![0xff, 0xfe])),
            ),
            (Header::ATTEMPT.name, AMQPValue::ShortShortUInt(3)),
            (Header::ATTEMPTS.name, AMQPValue::LongInt(-1)),
            (Header::REASON.name, long_string("vanished")),
            (Header::ERROR.name, AMQPValue::Boolean(true)),
            (Header::FIRST_FAILURE.name, long_string("yesterday")),
            (
                Header::LAST_FAILURE.name,
                long_string("2026-11-22T14:12:30Z"),
            ),
            (Header::TRACEPARENT.name, long_string("garbage")),
            (Header::SIGNATURE.name, AMQPValue::Void),
        ]);
        let read = Envelope::from_headers(&headers);
        assert_eq!(read.stage.as_deref(), Some("renew"));
        assert_eq!(read.attempt, Some(3));
        assert_eq!(
            read.last_failure.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-22T14:12:30+00:00")
        );
        assert_eq!(
            read,
            Envelope {
                stage: read.stage.clone(),
                attempt: read.attempt,
                last_failure: read.last_failure,
                ..Envelope::default()
            },
            "the rest is unreadable, so none"
        );
        assert!(Header::SIGNATURE.is_in(&headers), "though it is there");

        for value in [
            AMQPValue::ShortShortInt(7),
            AMQPValue::ShortInt(7),
            AMQPValue::ShortUInt(7),
            AMQPValue::LongUInt(7),
            AMQPValue::LongLongInt(7),
        ] {
            let read = Envelope::from_headers(&table(&[(Header::ATTEMPTS.name, value)]));
            assert_eq!(read.attempts, Some(7));
        }
        let huge = table(&[(Header::ATTEMPT.name, AMQPValue::LongLongInt(i64::MAX))]);
        assert_eq!(Envelope::from_headers(&huge).attempt, None);
        assert_eq!(Envelope::of(None), Envelope::default());
    }

    #[test]
    fn the_error_is_redacted_then_capped() {
        // Unique to this test: registering it masks nothing any other test writes.
        let secret = "envelope-test-secret-4d1c9a";
        redact::register([secret]);
        let envelope = Envelope {
            error: Some(format!(
                "token {secret} refused{}",
                "é".repeat(MAX_ERROR_CHARS)
            )),
            ..Envelope::default()
        };
        let error = Envelope::from_headers(&envelope.to_headers())
            .error
            .unwrap();
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS);
        assert!(
            error.starts_with(&format!("token {} refused", redact::MASK)),
            "{error}"
        );
    }

    #[test]
    fn traceparents_are_checked() {
        assert!(valid_traceparent(TRACE));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
        assert!(!valid_traceparent("garbage"));
    }
}
