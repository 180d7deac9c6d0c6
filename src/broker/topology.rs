use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use sha1::{Digest, Sha1};

use super::BrokerError;

/// Delay tiers of the durable retry queues, in milliseconds. Each tier is its own queue
/// with a queue-level TTL, so messages expire in arrival order (a per-message TTL would
/// let a long delay at the head hold back shorter ones behind it).
pub const DELAY_TIERS: [u64; 6] = [1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000];

/// How often a message may be handed out before RabbitMQ dead-letters it (into the
/// undelivered queue): the guard against a message that crashes the worker every time.
pub const DELIVERY_LIMIT: i64 = 20;

pub const DEFAULT_SHARDS: u16 = 8;

/// The names of every exchange and queue, all under one prefix, and how work is split.
///
/// Commands arrive on the intake queue (any worker takes them) and are forwarded to one
/// of `shards` work queues chosen by a hash of the command id; every later stage of that
/// command goes to the same shard. Each shard queue has a single active consumer, so one
/// worker, and its local store, sees all of a command's stages while it lives.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub shards: u16,
    /// Declare delivery limit, dead-lettering and TTLs as queue arguments; when false
    /// they come from broker policies (see `definitions`), which can change without
    /// re-creating queues.
    pub queue_arguments: bool,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
            shards: DEFAULT_SHARDS,
            queue_arguments: true,
        }
    }

    pub fn with_shards(mut self, shards: u16) -> Self {
        self.shards = shards.max(1);
        self
    }

    pub fn with_queue_arguments(mut self, queue_arguments: bool) -> Self {
        self.queue_arguments = queue_arguments;
        self
    }

    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.prefix)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Where commands (and stages back from a delay queue) land before their shard.
    pub fn intake_queue(&self) -> String {
        format!("{}.intake", self.prefix)
    }

    pub fn shard_queue(&self, shard: u16) -> String {
        format!("{}.work.{}", self.prefix, shard)
    }

    /// The shard of a command: stable for a given number of shards, and a jump hash, so
    /// going from N to N+1 shards moves only 1/(N+1) of the commands.
    pub fn shard_of(&self, command_id: &str) -> u16 {
        let digest = Sha1::digest(command_id.as_bytes());
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        jump_hash(u64::from_be_bytes(key), self.shards)
    }

    /// The work queue every stage of `command_id` goes to.
    pub fn work_queue_for(&self, command_id: &str) -> String {
        self.shard_queue(self.shard_of(command_id))
    }

    /// A worker holds an exclusive consumer here while it runs: others see it is alive,
    /// and a second worker with the same id is refused.
    pub fn presence_queue(&self, worker_id: u16) -> String {
        format!("{}.worker.{}", self.prefix, worker_id)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Where RabbitMQ itself dead-letters intake and shard messages (expired, over the
    /// delivery limit, rejected, over a length limit); workers move them on to the dead
    /// queue with a reason and publish their terminal events.
    pub fn undelivered_queue(&self) -> String {
        format!("{}.undelivered", self.prefix)
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

    /// The replicated stage ledger of a shard: a stream holding every durable stage
    /// record any worker wrote for the shard's commands (see `crate::ledger`).
    pub fn ledger_stream(&self, shard: u16) -> String {
        format!("{}.ledger.{}", self.prefix, shard)
    }

    pub fn ledger_streams(&self) -> Vec<String> {
        (0..self.shards).map(|s| self.ledger_stream(s)).collect()
    }

    /// Every event, kept by age and size: a stream bound to the events exchange with `#`,
    /// which a dashboard or pipeline reads from an offset or a time, and catches up from
    /// after downtime.
    pub fn events_log(&self) -> String {
        format!("{}.events.log", self.prefix)
    }

    pub fn shard_queues(&self) -> Vec<String> {
        (0..self.shards).map(|s| self.shard_queue(s)).collect()
    }

    /// The queues stage messages wait in: intake, shards, delay tiers, and the undelivered
    /// queue (until a worker explains them).
    pub fn stage_queues(&self) -> Vec<String> {
        let mut queues = vec![self.intake_queue()];
        queues.extend(self.shard_queues());
        queues.extend(DELAY_TIERS.iter().map(|t| self.delay_queue(*t)));
        queues.push(self.undelivered_queue());
        queues
    }

    /// Every durable queue and stream this topology declares, for tooling and test
    /// clean-up.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = self.stage_queues();
        queues.push(self.dead_queue());
        queues.extend(self.ledger_streams());
        queues.push(self.events_log());
        queues
    }

    /// Arguments of a queue that policies may carry instead (`queue_arguments = false`).
    pub(super) fn policy_arguments(&self, queue: QueueRole) -> Vec<(&'static str, AMQPValue)> {
        let dead_letter = |to: String| {
            vec![
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&to)),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ]
        };
        match queue {
            QueueRole::Work => {
                let mut args = vec![("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT))];
                args.extend(dead_letter(self.undelivered_queue()));
                args
            }
            // A message that fails its explanation every time still reaches the dead
            // queue, with RabbitMQ's x-death only, instead of circling (or, where quorum
            // queues have a default delivery limit, being dropped).
            QueueRole::Undelivered => {
                let mut args = vec![("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT))];
                args.extend(dead_letter(self.dead_queue()));
                args
            }
            QueueRole::Delay(tier) => {
                let mut args = vec![("x-message-ttl", AMQPValue::LongLongInt(tier as i64))];
                args.extend(dead_letter(self.intake_queue()));
                args
            }
            QueueRole::Dead => Vec::new(),
            QueueRole::Ledger { max_age_secs } => max_age_secs
                .map(|secs| ("x-max-age", text(&format!("{secs}s"))))
                .into_iter()
                .collect(),
            QueueRole::EventsLog {
                max_age_secs,
                max_bytes,
            } => {
                let mut args: Vec<(&'static str, AMQPValue)> = max_age_secs
                    .map(|secs| ("x-max-age", text(&format!("{secs}s"))))
                    .into_iter()
                    .collect();
                if let Some(bytes) = max_bytes {
                    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                    args.push(("x-max-length-bytes", AMQPValue::LongLongInt(bytes)));
                }
                args
            }
        }
    }

    /// Arguments that only a queue declaration can set.
    pub(super) fn fixed_arguments(
        &self,
        queue: QueueRole,
        shard: bool,
    ) -> Vec<(&'static str, AMQPValue)> {
        if matches!(
            queue,
            QueueRole::Ledger { .. } | QueueRole::EventsLog { .. }
        ) {
            return vec![("x-queue-type", text("stream"))];
        }
        let mut args = vec![("x-queue-type", text("quorum"))];
        if matches!(queue, QueueRole::Work) && shard {
            args.push(("x-single-active-consumer", AMQPValue::Boolean(true)));
        }
        args
    }

    fn arguments(&self, queue: QueueRole, shard: bool) -> FieldTable {
        let mut args = FieldTable::default();
        let mut all = self.fixed_arguments(queue, shard);
        if self.queue_arguments {
            all.extend(self.policy_arguments(queue));
        }
        for (key, value) in all {
            args.insert(ShortString::from(key), value);
        }
        args
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
        let mut queues = vec![
            (self.dead_queue(), self.arguments(QueueRole::Dead, false)),
            (
                self.undelivered_queue(),
                self.arguments(QueueRole::Undelivered, false),
            ),
            (self.intake_queue(), self.arguments(QueueRole::Work, false)),
        ];
        for shard in self.shard_queues() {
            queues.push((shard, self.arguments(QueueRole::Work, true)));
        }
        for tier in DELAY_TIERS {
            queues.push((
                self.delay_queue(tier),
                self.arguments(QueueRole::Delay(tier), false),
            ));
        }
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (queue, args) in queues {
            channel
                .queue_declare(queue.as_str().into(), options, args)
                .await
                .map_err(|source| BrokerError::Declare {
                    queue: queue.clone(),
                    source,
                })?;
        }
        // Every command type reaches a worker, which rejects unknown ones with a reason
        // instead of the broker dropping them silently.
        channel
            .queue_bind(
                self.intake_queue().as_str().into(),
                self.commands_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Declares the ledger streams, keeping records `max_age_secs` (as a queue argument,
    /// or from the `<prefix>.ledger` policy; `None`: for ever). Only workers declare them.
    pub async fn declare_ledgers(
        &self,
        connection: &lapin::Connection,
        max_age_secs: Option<u64>,
    ) -> Result<(), BrokerError> {
        let mut channel = connection.create_channel().await?;
        for stream in self.ledger_streams() {
            let role = QueueRole::Ledger { max_age_secs };
            channel = self
                .declare_stream(connection, channel, &stream, role)
                .await?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// Declares the events log (kept `max_age_secs` and at most `max_bytes`; `None`: no
    /// limit) and binds it to the events exchange, so it holds every event.
    pub async fn declare_events_log(
        &self,
        connection: &lapin::Connection,
        max_age_secs: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<(), BrokerError> {
        let log = self.events_log();
        let role = QueueRole::EventsLog {
            max_age_secs,
            max_bytes,
        };
        let channel = connection.create_channel().await?;
        let channel = self.declare_stream(connection, channel, &log, role).await?;
        channel
            .queue_bind(
                log.as_str().into(),
                self.events_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// A stream's limits are fixed when it is first declared: one that exists with other
    /// arguments is used as it is, with a warning (a policy changes it in place). Returns
    /// the channel to go on with (a failed declaration closes its channel).
    async fn declare_stream(
        &self,
        connection: &lapin::Connection,
        channel: Channel,
        stream: &str,
        role: QueueRole,
    ) -> Result<Channel, BrokerError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let declared = channel
            .queue_declare(stream.into(), durable, self.arguments(role, false))
            .await;
        let Err(first) = declared else {
            return Ok(channel);
        };
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..durable
        };
        channel
            .queue_declare(stream.into(), passive, FieldTable::default())
            .await
            .map_err(|_| BrokerError::Declare {
                queue: stream.to_string(),
                source: first.clone(),
            })?;
        tracing::warn!(%stream, error = %first, "the stream exists with other arguments; using it as it is");
        Ok(channel)
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

/// What a queue is for, which decides its arguments (or policy).
#[derive(Debug, Clone, Copy)]
pub(super) enum QueueRole {
    /// Intake and shard queues.
    Work,
    Delay(u64),
    /// RabbitMQ's own dead letters, waiting for a worker to explain them.
    Undelivered,
    Dead,
    /// A shard's stage ledger (a stream), keeping records this long (`None`: for ever).
    Ledger {
        max_age_secs: Option<u64>,
    },
    /// The events log (a stream), by age and size (`None`: no limit).
    EventsLog {
        max_age_secs: Option<u64>,
        max_bytes: Option<u64>,
    },
}

/// Lamping and Veach's jump consistent hash.
fn jump_hash(mut key: u64, buckets: u16) -> u16 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u16
}

pub(super) fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_string()))
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

    #[test]
    fn shards_spread_evenly_and_move_little_when_added() {
        let eight = Topology::new("t").with_shards(8);
        let nine = Topology::new("t").with_shards(9);
        let mut counts = [0u32; 8];
        let mut moved = 0;
        for i in 0..8_000 {
            let id = format!("crm-{i}");
            let s = eight.shard_of(&id);
            counts[s as usize] += 1;
            let t = nine.shard_of(&id);
            if s != t {
                moved += 1;
                assert_eq!(t, 8, "a command only ever moves to the new shard");
            }
        }
        assert!(
            counts.iter().all(|c| (800..1_200).contains(c)),
            "{counts:?}"
        );
        // 1/9 of 8,000 is about 889.
        assert!((700..1_100).contains(&moved), "{moved} moved");
        assert_eq!(Topology::new("t").with_shards(1).shard_of("x"), 0);
    }

    #[test]
    fn arguments_or_policies() {
        let t = Topology::new("p");
        let shard = t.arguments(QueueRole::Work, true);
        assert!(shard.inner().contains_key("x-single-active-consumer"));
        assert!(shard.inner().contains_key("x-delivery-limit"));
        assert_eq!(
            shard.inner().get("x-dead-letter-routing-key"),
            Some(&text("p.undelivered"))
        );
        let undelivered = t.arguments(QueueRole::Undelivered, false);
        assert_eq!(
            undelivered.inner().get("x-dead-letter-routing-key"),
            Some(&text("p.dead"))
        );
        assert!(!undelivered.inner().contains_key("x-single-active-consumer"));
        let bare = t
            .with_queue_arguments(false)
            .arguments(QueueRole::Delay(1_000), false);
        assert_eq!(bare.inner().len(), 1, "only the queue type: {bare:?}");
    }
}
