use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
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
            .with_content_type(short_string(&message.content_type))
            .with_delivery_mode(2)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(message.headers);
        if let Some(id) = message.message_id {
            props = props.with_message_id(short_string(&id));
        }
        if let Some(kind) = message.message_type {
            props = props.with_type(short_string(&kind));
        }
        let confirm = self
            .channel
            .basic_publish(
                short_string(&message.exchange),
                short_string(&message.routing_key),
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

/// Longest AMQP short string, in bytes.
const SHORT_STRING_MAX: usize = 255;

/// An AMQP short string of at most 255 bytes. Ids derived from a publisher's (a 250-byte
/// `message_id` plus a suffix) can be longer: they keep their start and get a fingerprint
/// of the whole, so distinct ids stay distinct.
pub fn short_string(value: &str) -> ShortString {
    if value.len() <= SHORT_STRING_MAX {
        return value.into();
    }
    let mut end = SHORT_STRING_MAX - 20;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{:016x}", &value[..end], fnv1a(value.as_bytes())).into()
}

/// FNV-1a: a stable fingerprint of a body or an id.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_fit_and_stay_distinct() {
        assert_eq!(short_string("abc").as_str(), "abc");
        let a = format!("{}/x/1", "é".repeat(200));
        let b = format!("{}/x/2", "é".repeat(200));
        let (sa, sb) = (short_string(&a), short_string(&b));
        assert!(sa.as_str().len() <= 255 && sb.as_str().len() <= 255);
        assert_ne!(sa, sb);
        assert_eq!(short_string(&"x".repeat(255)).as_str().len(), 255);
    }
}
