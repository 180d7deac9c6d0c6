use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::BrokerError;

/// Delay tiers of the durable retry queues, in milliseconds. Each tier is its own queue
/// with a queue-level TTL, so messages expire in arrival order (a per-message TTL would
/// let a long delay at the head hold back shorter ones behind it).
pub const DELAY_TIERS: [u64; 6] = [1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000];

/// How often a work-queue message may be handed out before RabbitMQ dead-letters it:
/// the guard against a message that crashes the worker every time.
const DELIVERY_LIMIT: i64 = 20;

/// The names of every exchange and queue, all under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
        }
    }

    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.prefix)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn work_queue(&self) -> String {
        format!("{}.work", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    pub fn delay_queue(&self, tier_ms: u64) -> String {
        format!("{}.delay.{}ms", self.prefix, tier_ms)
    }

    /// The smallest tier that waits at least `delay_ms` (or the longest tier).
    pub fn delay_tier(delay_ms: u64) -> u64 {
        DELAY_TIERS
            .iter()
            .copied()
            .find(|t| *t >= delay_ms)
            .unwrap_or(DELAY_TIERS[DELAY_TIERS.len() - 1])
    }

    /// Every queue this topology declares, for tooling and test clean-up.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.work_queue(), self.dead_queue()];
        queues.extend(DELAY_TIERS.iter().map(|t| self.delay_queue(*t)));
        queues
    }

    /// Declares everything; safe to run on every start and from every process.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for exchange in [self.commands_exchange(), self.events_exchange()] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }

        let queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(self.dead_queue().as_str().into(), queue, quorum(&[]))
            .await?;

        let work = self.work_queue();
        let dead = self.dead_queue();
        channel
            .queue_declare(
                work.as_str().into(),
                queue,
                quorum(&[
                    ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
                    ("x-dead-letter-exchange", text("")),
                    ("x-dead-letter-routing-key", text(&dead)),
                    ("x-dead-letter-strategy", text("at-least-once")),
                    ("x-overflow", text("reject-publish")),
                ]),
            )
            .await?;
        // Every command type reaches the worker, which rejects unknown ones with a reason
        // instead of the broker dropping them silently.
        channel
            .queue_bind(
                work.as_str().into(),
                self.commands_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for tier in DELAY_TIERS {
            channel
                .queue_declare(
                    self.delay_queue(tier).as_str().into(),
                    queue,
                    quorum(&[
                        ("x-message-ttl", AMQPValue::LongLongInt(tier as i64)),
                        ("x-dead-letter-exchange", text("")),
                        ("x-dead-letter-routing-key", text(&work)),
                        ("x-dead-letter-strategy", text("at-least-once")),
                        ("x-overflow", text("reject-publish")),
                    ]),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this prefix (tests, demo clean-up).
    pub async fn delete(&self, channel: &Channel) -> Result<(), BrokerError> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await?;
        }
        for exchange in [self.commands_exchange(), self.events_exchange()] {
            channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await?;
        }
        Ok(())
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_string()))
}

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), text("quorum"));
    for (key, value) in extra {
        args.insert(ShortString::from(key.to_string()), value.clone());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_tiers_round_up() {
        assert_eq!(Topology::delay_tier(0), 1_000);
        assert_eq!(Topology::delay_tier(1_001), 5_000);
        assert_eq!(Topology::delay_tier(10_000_000), 3_600_000);
    }
}
