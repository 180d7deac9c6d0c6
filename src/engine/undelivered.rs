//! RabbitMQ's own dead letters: a command or stage message the broker dead-lettered from
//! the intake or a shard (per-message TTL expired, over the delivery limit, rejected, over
//! a length limit) arrives on `<prefix>.undelivered`. It is moved, unchanged, to the dead
//! queue with a reason read from its `x-death` header, and its terminal events are
//! published, so the CRM is told as for billflow's own dead letters.

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};
use tracing::warn;

use super::{Engine, EngineError};
use crate::broker::Outgoing;
use crate::contract::envelope::Envelope;
use crate::contract::events::{CloudEvent, EventData};
use crate::contract::message::StageMessage;
use crate::contract::signing::Signer;
use crate::contract::DeadReason;
use crate::redact;

/// Queue names and reasons from `x-death` are copied into errors: at most this many
/// characters of each.
const MAX_NAME_CHARS: usize = 255;

/// Why RabbitMQ dead-lettered a message, as far as its `x-death` header tells.
#[derive(Debug, PartialEq)]
struct Death {
    reason: DeadReason,
    error: String,
    /// When RabbitMQ dead-lettered it (`x-death` `time`).
    at: Option<DateTime<Utc>>,
}

/// The newest entry of `x-death` (RabbitMQ puts it first): reason, queue, time.
struct Entry {
    reason: String,
    queue: String,
    at: Option<DateTime<Utc>>,
}

/// Reads `x-death`, which anyone able to publish may have forged: every field is checked,
/// and a header that says nothing usable is `rejected` with an error saying so.
fn explain(headers: Option<&FieldTable>) -> Death {
    let entry = match newest_death(headers) {
        Ok(entry) => entry,
        Err(why) => {
            return Death {
                reason: DeadReason::Rejected,
                error: format!("dead-lettered by RabbitMQ for an unknown cause: {why}"),
                at: None,
            }
        }
    };
    let Entry { reason, queue, at } = entry;
    let (reason, error) = match reason.as_str() {
        "expired" => (
            DeadReason::Expired,
            format!("expired in {queue} before a worker took it (per-message TTL)"),
        ),
        "delivery_limit" => (
            DeadReason::DeliveryLimit,
            format!(
                "delivered in {queue} over its delivery limit (each time given back \
                 unacknowledged: a worker crashed or lost its connection on it, or a consumer \
                 requeued it)"
            ),
        ),
        "rejected" => (
            DeadReason::Rejected,
            format!("rejected without requeue by a consumer of {queue}"),
        ),
        "maxlen" => (
            DeadReason::Rejected,
            format!("dropped from {queue}, over its length limit"),
        ),
        other => (
            DeadReason::Rejected,
            format!("dead-lettered from {queue} for a reason RabbitMQ calls {other:?}"),
        ),
    };
    Death { reason, error, at }
}

fn newest_death(headers: Option<&FieldTable>) -> Result<Entry, &'static str> {
    let value = headers
        .and_then(|h| h.inner().get("x-death"))
        .ok_or("the message has no x-death header")?;
    let AMQPValue::FieldArray(entries) = value else {
        return Err("its x-death header is not an array");
    };
    let Some(AMQPValue::FieldTable(entry)) = entries.as_slice().first() else {
        return Err("its x-death header holds no table");
    };
    let field = |name: &str| entry.inner().get(name);
    let reason = field("reason")
        .and_then(string)
        .ok_or("its x-death entry has no reason")?;
    let queue = field("queue")
        .and_then(string)
        .unwrap_or_else(|| "an unnamed queue".to_string());
    let at = match field("time") {
        Some(AMQPValue::Timestamp(secs)) => i64::try_from(*secs)
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        _ => None,
    };
    Ok(Entry { reason, queue, at })
}

/// A string field, printable and of bounded length.
fn string(value: &AMQPValue) -> Option<String> {
    let raw = match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        _ => return None,
    };
    let clean: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Who the message was about: from the stage message or command when it still decodes,
/// else sniffed from the body (as for an invalid message).
struct Subject {
    command_id: String,
    workflow: &'static str,
    /// Only for a stage message that decodes: its stage gets a step event.
    stage: Option<String>,
    attempt: Option<u32>,
    first_failure_at: Option<DateTime<Utc>>,
    traceparent: Option<String>,
}

fn subject(delivery: &Delivery, max_message_bytes: usize, signer: &Signer) -> Subject {
    let envelope = Envelope::of(delivery.properties.headers().as_ref());
    // Only a stage a worker signed is reported as that stage.
    let stage_header = envelope.stage.as_deref().filter(|_| {
        signer
            .verify(&delivery.data, envelope.signature.as_deref())
            .is_ok()
    });
    let traceparent = envelope.traceparent.clone();
    let body: &[u8] = if delivery.data.len() > max_message_bytes {
        &[]
    } else {
        &delivery.data
    };
    if let Ok(msg) = StageMessage::decode(body, stage_header) {
        return Subject {
            workflow: msg.workflow(),
            stage: stage_header.map(|_| msg.stage.clone()),
            attempt: stage_header.map(|_| msg.attempt),
            first_failure_at: msg.first_failure_at,
            traceparent: msg.traceparent.or(traceparent),
            command_id: msg.command.command_id,
        };
    }
    let (command_id, workflow) = super::identify(delivery);
    Subject {
        command_id,
        workflow,
        stage: None,
        attempt: None,
        first_failure_at: None,
        traceparent,
    }
}

impl Engine {
    /// Moves a message RabbitMQ dead-lettered to the dead queue with its reason, publishes
    /// its terminal events, then acks it; on broker trouble it is returned after a pause.
    pub async fn explain_undelivered(&self, delivery: Delivery) {
        match self.undelivered(&delivery).await {
            Ok(()) => {
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    // Redelivered: the same dead letter again, the same event ids.
                    warn!(error = %e, "ack on the undelivered queue failed");
                }
            }
            Err(e) => {
                warn!(error = %e, "could not move an undelivered message to the dead queue; it will be redelivered");
                super::requeue_later(delivery).await;
            }
        }
    }

    async fn undelivered(&self, delivery: &Delivery) -> Result<(), EngineError> {
        let props = &delivery.properties;
        let death = explain(props.headers().as_ref());
        let who = subject(
            delivery,
            self.settings.max_message_bytes,
            &self.settings.signer,
        );
        let json = super::body_json(delivery, self.settings.max_message_bytes);
        let redactor =
            redact::global().with(json.as_ref().map(redact::json_secrets).unwrap_or_default());
        let reason = death.reason;
        warn!(
            command_id = %who.command_id,
            workflow = who.workflow,
            stage = who.stage.as_deref().unwrap_or(""),
            reason = reason.as_str(),
            error = %death.error,
            "RabbitMQ dead-lettered a message; moving it to the dead queue"
        );

        let mut headers = props.headers().clone().unwrap_or_default();
        // RabbitMQ's time, not ours: a redelivery moves the same dead letter again.
        let at = death.at.unwrap_or_else(Utc::now);
        Envelope {
            reason: Some(reason),
            error: Some(death.error.clone()),
            command_id: Some(who.command_id.clone()),
            workflow: (who.workflow != "unknown").then(|| who.workflow.to_string()),
            first_failure: Some(who.first_failure_at.unwrap_or(at)),
            last_failure: Some(at),
            ..Envelope::default()
        }
        .write_into(&mut headers);
        let mut dead = Outgoing::json(
            "",
            &self.topology.dead_queue(),
            super::dead_body(delivery, json),
        );
        if let Some(ct) = props.content_type() {
            dead.content_type = ct.to_string();
        }
        dead.headers = headers;
        dead.message_id = props.message_id().as_ref().map(|m| m.to_string());
        dead.message_type = props.kind().as_ref().map(|k| k.to_string());
        self.publisher.publish(dead).await?;

        let data = EventData {
            command_id: who.command_id,
            workflow: who.workflow.to_string(),
            stage: who.stage,
            outcome: reason.outcome(),
            attempt: who.attempt,
            output: None,
            error: Some(death.error),
            reason: Some(reason.as_str().to_string()),
            next_delay_ms: None,
            conflict: None,
        };
        if data.stage.is_some() {
            let mut step = CloudEvent::step(&self.settings.source, data.clone());
            step.traceparent = who.traceparent.clone();
            self.publish_event(step, &redactor).await?;
        }
        let mut end = CloudEvent::workflow(
            &self.settings.source,
            EventData {
                attempt: None,
                ..data
            },
        );
        end.traceparent = who.traceparent;
        self.publish_event(end, &redactor).await?;
        metrics::counter!("billflow_dead_lettered_total", "reason" => reason.as_str()).increment(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};

    fn text(s: &str) -> AMQPValue {
        AMQPValue::LongString(s.into())
    }

    fn death(entries: Vec<AMQPValue>) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(entries)),
        );
        headers
    }

    fn entry(reason: &str, queue: &str) -> AMQPValue {
        let mut e = FieldTable::default();
        e.insert("reason".into(), text(reason));
        e.insert("queue".into(), text(queue));
        e.insert("count".into(), AMQPValue::LongLongInt(1));
        e.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        AMQPValue::FieldTable(e)
    }

    #[test]
    fn the_newest_entry_decides() {
        let headers = death(vec![
            entry("delivery_limit", "p.work.1"),
            entry("expired", "p.delay.1000ms"),
        ]);
        let d = explain(Some(&headers));
        assert_eq!(d.reason, DeadReason::DeliveryLimit);
        assert!(
            d.error
                .starts_with("delivered in p.work.1 over its delivery limit"),
            "{}",
            d.error
        );
        assert_eq!(d.at, DateTime::from_timestamp(1_700_000_000, 0));

        let d = explain(Some(&death(vec![entry("expired", "p.intake")])));
        assert_eq!(d.reason, DeadReason::Expired);
        assert!(d.error.starts_with("expired in p.intake"), "{}", d.error);
        for (reason, says) in [
            ("rejected", "rejected without requeue"),
            ("maxlen", "length limit"),
        ] {
            let d = explain(Some(&death(vec![entry(reason, "p.intake")])));
            assert_eq!(d.reason, DeadReason::Rejected);
            assert!(d.error.contains(says), "{}", d.error);
        }
    }

    #[test]
    fn odd_headers_are_rejected_with_an_error_saying_so() {
        let garbage = [
            None,
            Some(FieldTable::default()),
            Some({
                let mut h = FieldTable::default();
                h.insert("x-death".into(), text("expired"));
                h
            }),
            Some(death(vec![])),
            Some(death(vec![AMQPValue::LongLongInt(7)])),
            Some(death(vec![AMQPValue::FieldTable(FieldTable::default())])),
        ];
        for headers in garbage {
            let d = explain(headers.as_ref());
            assert_eq!(d.reason, DeadReason::Rejected);
            assert!(d.error.contains("unknown cause"), "{}", d.error);
            assert_eq!(d.at, None);
        }

        // Odd but readable: an unknown reason, a huge queue name with control characters,
        // a time before the epoch's range, a count of the wrong type.
        let mut e = FieldTable::default();
        e.insert("reason".into(), text("vanished"));
        let long = format!("q\n{}", "x".repeat(10_000));
        e.insert(
            "queue".into(),
            AMQPValue::LongString(LongString::from(long)),
        );
        e.insert("time".into(), AMQPValue::Timestamp(u64::MAX));
        e.insert("count".into(), text("many"));
        let d = explain(Some(&death(vec![AMQPValue::FieldTable(e)])));
        assert_eq!(d.reason, DeadReason::Rejected);
        assert!(d.error.contains("\"vanished\""), "{}", d.error);
        assert!(!d.error.contains('\n'));
        assert!(d.error.len() < 400, "{}", d.error.len());
        assert_eq!(d.at, None);
    }
}
