//! The intake: commands (and stages back from a delay queue) arrive on one queue any
//! worker consumes, and are moved unchanged to the shard of their command id.

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use serde::Deserialize;
use tracing::{debug, warn};

use super::Engine;
use crate::broker::Outgoing;

/// Just enough of a command or a stage message to find its command id.
#[derive(Deserialize)]
struct Envelope {
    command_id: Option<String>,
    command: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    command_id: Option<String>,
}

/// The command id of a command or a stage message; `None` when the body has none, in
/// which case the shard's worker rejects the message with a reason.
pub fn command_id_of(body: &[u8]) -> Option<String> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    envelope
        .command_id
        .or_else(|| envelope.command.and_then(|c| c.command_id))
}

impl Engine {
    /// Copies the delivery to its shard (confirmed), then acks it. A crash between the
    /// two leaves a second copy on the same shard, which the store turns into a duplicate.
    pub async fn forward_intake(&self, delivery: Delivery) {
        let command_id = if delivery.data.len() > self.settings.max_message_bytes {
            None
        } else {
            command_id_of(&delivery.data)
        };
        let queue = self
            .topology
            .work_queue_for(command_id.as_deref().unwrap_or_default());
        let props = &delivery.properties;
        let mut out = Outgoing::json("", &queue, delivery.data.clone());
        if let Some(ct) = props.content_type() {
            out.content_type = ct.to_string();
        }
        out.headers = props.headers().clone().unwrap_or_default();
        out.message_id = props.message_id().as_ref().map(|m| m.to_string());
        out.message_type = props.kind().as_ref().map(|k| k.to_string());
        match self.publisher.publish(out).await {
            Ok(()) => {
                metrics::counter!("billflow_intake_forwarded_total").increment(1);
                debug!(command_id = ?command_id, queue, "forwarded to shard");
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    warn!(error = %e, "intake ack failed; the copy on the shard is deduplicated");
                }
            }
            Err(e) => {
                warn!(error = %e, "could not forward to the shard; the message will be redelivered");
                super::requeue_later(delivery).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_command_id_of_commands_and_stages() {
        assert_eq!(
            command_id_of(br#"{"command_id":"crm-1","type":"x"}"#).as_deref(),
            Some("crm-1")
        );
        assert_eq!(
            command_id_of(br#"{"command":{"command_id":"crm-2"},"stage":"renew"}"#).as_deref(),
            Some("crm-2")
        );
        assert_eq!(command_id_of(b"not json"), None);
        assert_eq!(command_id_of(br#"{"type":"x"}"#), None);
    }
}
