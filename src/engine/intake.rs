//! The intake: commands (and stages back from a delay queue) arrive on one queue any
//! worker consumes, and are moved unchanged to the shard of their command id.

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tracing::{debug, warn};

use super::Engine;
use crate::broker::Outgoing;
use crate::contract::command::Command;
use crate::contract::envelope::{Envelope, Header};

impl Engine {
    /// Copies the delivery to its shard (confirmed), then acks it. A crash between the
    /// two leaves a second copy on the same shard, which the store turns into a duplicate.
    pub async fn forward_intake(&self, delivery: Delivery) {
        // What a CRM publishes is a command and starts at the first stage: a stage's
        // header or signature on it is a forgery (or a captured stage message replayed).
        if delivery.exchange.as_str() == self.topology.commands_exchange() {
            let headers = delivery.properties.headers().as_ref();
            let claims_stage = [Header::STAGE, Header::SIGNATURE]
                .iter()
                .any(|h| headers.is_some_and(|t| h.is_in(t)));
            if claims_stage {
                let error = format!(
                    "a message on {} is a command: the {} and {} headers are only for stage messages between workers",
                    self.topology.commands_exchange(),
                    Header::STAGE.name,
                    Header::SIGNATURE.name,
                );
                match self.reject_invalid(&delivery, &error).await {
                    Ok(()) => {
                        if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                            warn!(error = %e, "intake ack failed");
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "could not dead-letter a forged stage; it will be redelivered");
                        super::requeue_later(delivery).await;
                    }
                }
                return;
            }
        }
        let command_id = if delivery.data.len() > self.settings.max_message_bytes {
            None
        } else {
            Command::sniff_id(&delivery.data)
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
        // Forwarding goes through the default exchange: keep the key the CRM published
        // with, so a dead letter can be checked against its type before a replay.
        if delivery.exchange.as_str() == self.topology.commands_exchange() {
            Envelope {
                original_routing_key: Some(delivery.routing_key.to_string()),
                ..Envelope::default()
            }
            .write_into(&mut out.headers);
        }
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
