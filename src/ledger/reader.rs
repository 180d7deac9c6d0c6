//! Reads one shard's stream from an offset: a consumer on a channel of its own, closed
//! when the read is over. Streams hand out whole chunks, so entries before the asked-for
//! offset can arrive first: the caller, which knows what it is looking for, sorts them.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use super::LedgerError;

/// Entries in flight to a reader at once; acked in batches of a tenth of that.
const READ_PREFETCH: u16 = 1_000;

pub struct StreamReader {
    channel: Channel,
    consumer: lapin::Consumer,
    unacked: u16,
}

impl StreamReader {
    /// From `from` (`None`: the stream's first entry still kept).
    pub async fn open(
        connection: &Connection,
        stream: &str,
        from: Option<u64>,
    ) -> Result<StreamReader, LedgerError> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(READ_PREFETCH, BasicQosOptions::default())
            .await?;
        let mut args = FieldTable::default();
        let offset = match from {
            Some(offset) => AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX)),
            None => AMQPValue::LongString("first".into()),
        };
        args.insert("x-stream-offset".into(), offset);
        let consumer = channel
            .basic_consume(
                stream.into(),
                format!("ledger-reader-{}", uuid::Uuid::new_v4())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await?;
        Ok(StreamReader {
            channel,
            consumer,
            unacked: 0,
        })
    }

    /// The next entry with its offset, or `None` when none came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<(u64, Delivery)>, LedgerError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let delivery = match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(LedgerError::ReaderEnded),
                Ok(Some(delivery)) => delivery?,
            };
            self.unacked += 1;
            if self.unacked >= READ_PREFETCH / 10 {
                self.unacked = 0;
                delivery
                    .acker
                    .ack(BasicAckOptions { multiple: true })
                    .await?;
            }
            let Some(offset) = offset_of(&delivery) else {
                // A stream always sets it; without it the entry cannot be placed.
                metrics::counter!("billflow_ledger_entries_skipped_total", "why" => "no_offset")
                    .increment(1);
                continue;
            };
            return Ok(Some((offset, delivery)));
        }
    }

    pub async fn close(self) {
        // Closing the channel ends the consumer; nothing of it is kept by the broker.
        let _ = self.channel.close(200, "ledger read done".into()).await;
    }
}

fn offset_of(delivery: &Delivery) -> Option<u64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}
