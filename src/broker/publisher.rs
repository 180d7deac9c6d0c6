use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::BrokerError;

/// A message ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub headers: FieldTable,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub content_type: String,
    /// Unroutable is an error (stage messages, dead letters); events may have no subscriber.
    pub mandatory: bool,
}

impl Outgoing {
    pub fn json(exchange: &str, routing_key: &str, body: Vec<u8>) -> Self {
        Outgoing {
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            body,
            headers: FieldTable::default(),
            message_id: None,
            message_type: None,
            content_type: "application/json".to_string(),
            mandatory: true,
        }
    }
}

/// Publishes on a channel in confirm mode: `publish` returns only once the broker has
/// taken responsibility for the message. Cheap to clone; safe to share between tasks.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> Result<Self, BrokerError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    pub async fn publish(&self, message: Outgoing) -> Result<(), BrokerError> {
        let _timer = crate::timing::Timer::start("billflow_publish_confirm_seconds");
        let mut props = BasicProperties::default()
            .with_content_type(message.content_type.as_str().into())
            .with_delivery_mode(2)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(message.headers);
        if let Some(id) = message.message_id {
            props = props.with_message_id(id.into());
        }
        if let Some(kind) = message.message_type {
            props = props.with_type(kind.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                message.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: message.mandatory,
                    ..Default::default()
                },
                &message.body,
                props,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable {
                exchange: message.exchange,
                routing_key: message.routing_key,
            }),
            Confirmation::Nack(_) => Err(BrokerError::Nacked {
                exchange: message.exchange,
                routing_key: message.routing_key,
            }),
        }
    }
}
