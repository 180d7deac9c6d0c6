use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use super::BrokerError;

/// A server-named, exclusive queue bound to an exchange: it lives as long as the
/// connection and sees every message published after it was bound.
pub struct Subscription {
    channel: Channel,
    consumer: Consumer,
}

impl Subscription {
    pub async fn open(
        connection: &Connection,
        exchange: &str,
        pattern: &str,
    ) -> Result<Self, BrokerError> {
        let channel = connection.create_channel().await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Subscription { channel, consumer })
    }

    /// Closes the subscription's channel; its queue goes with it.
    pub async fn close(self) {
        if let Err(e) = self.channel.close(200, "subscription closed".into()).await {
            tracing::debug!(error = %e, "closing a subscription channel failed");
        }
    }

    /// The next message body (acked); `None` when the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, BrokerError>> {
        match self.consumer.next().await? {
            Ok(delivery) => {
                let ack = delivery.ack(BasicAckOptions::default()).await;
                Some(ack.map(|_| delivery.data).map_err(BrokerError::from))
            }
            Err(e) => Some(Err(e.into())),
        }
    }
}
