//! How a worker shares the shards with the others: it consumes its home shards (shard
//! s is home to worker s mod W) at once and, a little later, every other shard as a
//! standby. Shard queues have a single active consumer, so a standby only receives work
//! when the shard's home worker is gone; when that worker is back (its presence queue
//! has a consumer again), the standbys step back behind it. Every worker also consumes
//! the intake and the undelivered queue (RabbitMQ's own dead letters).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tracing::{debug, info, warn};

use crate::broker::Topology;
use crate::ledger::Presence;

/// Numbers every shard consumer this process makes: a shard's ledger is read again
/// before the first delivery of each new consumer.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Intake (and undelivered) deliveries in flight at once, at most.
const INTAKE_PREFETCH: u16 = 64;

/// The queue a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Intake,
    Shard(u16),
    /// Messages RabbitMQ dead-lettered from the intake or a shard.
    Undelivered,
}

pub enum Event {
    /// A delivery, and the generation of the consumer it came to.
    Delivery(Source, u64, Box<Delivery>),
    /// The consumer ended: cancelled (by us or the broker), or with the connection's error.
    Ended(Source, Option<lapin::Error>),
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumersError {
    #[error("another running worker already has BILLFLOW_WORKER_ID {id} on this prefix (it holds {queue}); give every worker its own id: {source}")]
    IdInUse {
        id: u16,
        queue: String,
        source: lapin::Error,
    },
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
}

pub struct Consumers {
    connection_name: String,
    channel: Channel,
    /// The presence consumer, on a channel of its own so a refusal does not close
    /// `channel`; dropping it would cancel it.
    presence: Option<lapin::Consumer>,
    probe: Option<Channel>,
    topology: Topology,
    me: u16,
    workers: u16,
    streams: SelectAll<BoxStream<'static, Event>>,
    tags: BTreeMap<Source, String>,
    stepping_back: BTreeSet<u16>,
    present: Vec<bool>,
    /// Shared with the ledger, which waits for a live worker to release a shard.
    seen: Presence,
}

impl Consumers {
    /// Consumes the home shards, then announces this worker, then takes commands: in
    /// that order, so a worker seen as present is already in line for its shards.
    pub async fn open(
        connection: &Connection,
        topology: &Topology,
        me: u16,
        workers: u16,
        prefetch: u16,
        seen: Presence,
    ) -> Result<Self, ConsumersError> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let presence = connection.create_channel().await?;
        let mut consumers = Consumers {
            connection_name: format!("billflow-worker-{me}-{}", std::process::id()),
            channel,
            presence: None,
            probe: None,
            topology: topology.clone(),
            me,
            workers,
            streams: SelectAll::new(),
            tags: BTreeMap::new(),
            stepping_back: BTreeSet::new(),
            present: vec![false; usize::from(workers)],
            seen,
        };
        for shard in 0..topology.shards {
            if consumers.is_home(shard) {
                consumers.subscribe(Source::Shard(shard)).await?;
            }
        }
        let queue = topology.presence_queue(me);
        let transient = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        presence
            .queue_declare(queue.as_str().into(), transient, FieldTable::default())
            .await?;
        let exclusive = BasicConsumeOptions {
            exclusive: true,
            no_ack: true,
            ..Default::default()
        };
        let holder = presence
            .basic_consume(
                queue.as_str().into(),
                consumers.connection_name.as_str().into(),
                exclusive,
                FieldTable::default(),
            )
            .await
            .map_err(|source| ConsumersError::IdInUse {
                id: me,
                queue: queue.clone(),
                source,
            })?;
        consumers.presence = Some(holder);
        // Forwarding takes a moment: a small prefetch keeps commands in the broker, where
        // other workers can take them, instead of in this worker's memory.
        consumers
            .channel
            .basic_qos(prefetch.min(INTAKE_PREFETCH), BasicQosOptions::default())
            .await?;
        consumers.subscribe(Source::Intake).await?;
        consumers.subscribe(Source::Undelivered).await?;
        consumers
            .channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        info!(
            worker_id = me,
            workers,
            home_shards = ?consumers.shards(),
            "consuming the intake and home shards"
        );
        Ok(consumers)
    }

    fn is_home(&self, shard: u16) -> bool {
        shard % self.workers == self.me
    }

    fn queue(&self, source: Source) -> String {
        match source {
            Source::Intake => self.topology.intake_queue(),
            Source::Shard(s) => self.topology.shard_queue(s),
            Source::Undelivered => self.topology.undelivered_queue(),
        }
    }

    /// Shards this worker has a consumer on (active or waiting in line).
    pub fn shards(&self) -> Vec<u16> {
        self.tags
            .keys()
            .filter_map(|s| match s {
                Source::Shard(s) => Some(*s),
                Source::Intake | Source::Undelivered => None,
            })
            .collect()
    }

    async fn subscribe(&mut self, source: Source) -> Result<(), lapin::Error> {
        let queue = self.queue(source);
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{queue}-{generation}", self.connection_name);
        let consumer = self
            .channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let deliveries = consumer.map(move |d| match d {
            Ok(d) => Event::Delivery(source, generation, Box::new(d)),
            Err(e) => Event::Ended(source, Some(e)),
        });
        let end = stream::once(async move { Event::Ended(source, None) });
        self.streams.push(deliveries.chain(end).boxed());
        self.tags.insert(source, tag);
        metrics::gauge!("billflow_shard_consumers").set(self.shards().len() as f64);
        Ok(())
    }

    /// Joins the line of every shard that is not home, behind its home worker.
    pub async fn stand_by(&mut self) -> Result<(), lapin::Error> {
        for shard in 0..self.topology.shards {
            if !self.tags.contains_key(&Source::Shard(shard)) {
                self.subscribe(Source::Shard(shard)).await?;
            }
        }
        debug!(shards = ?self.shards(), "standing by for the other workers' shards");
        Ok(())
    }

    pub async fn next(&mut self) -> Option<Event> {
        self.streams.next().await
    }

    /// A consumer ended without an error. `true` when that was expected (a step back,
    /// now re-joined at the end of the line); `false` when the broker cancelled it.
    pub async fn ended(&mut self, source: Source) -> Result<bool, lapin::Error> {
        self.tags.remove(&source);
        match source {
            Source::Shard(shard) if self.stepping_back.remove(&shard) => {
                self.subscribe(source).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Looks for workers that came back and steps back from their home shards; returns
    /// the shards stepped back from.
    pub async fn check_presence(
        &mut self,
        connection: &Connection,
    ) -> Result<Vec<u16>, lapin::Error> {
        let mut stepped_back = Vec::new();
        for other in 0..self.workers {
            if other == self.me {
                continue;
            }
            let now = self.is_present(connection, other).await?;
            self.seen.set(other, now);
            let was = std::mem::replace(&mut self.present[usize::from(other)], now);
            if now != was {
                info!(worker = other, present = now, "another worker came or went");
            }
            if now && !was {
                stepped_back.extend(self.step_back_for(other).await?);
            }
        }
        Ok(stepped_back)
    }

    async fn is_present(
        &mut self,
        connection: &Connection,
        worker: u16,
    ) -> Result<bool, lapin::Error> {
        let probe = match self.probe.take() {
            Some(channel) if channel.status().connected() => channel,
            _ => connection.create_channel().await?,
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = self.topology.presence_queue(worker);
        match probe
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
            Ok(q) => {
                self.probe = Some(probe);
                Ok(q.consumer_count() > 0)
            }
            // The queue goes with its worker's connection; the failed declare closed the
            // probe channel.
            Err(_) => Ok(false),
        }
    }

    async fn step_back_for(&mut self, worker: u16) -> Result<Vec<u16>, lapin::Error> {
        let shards: Vec<u16> = self
            .shards()
            .into_iter()
            .filter(|s| s % self.workers == worker && !self.is_home(*s))
            .collect();
        if shards.is_empty() {
            return Ok(shards);
        }
        info!(
            worker,
            ?shards,
            "worker is back; stepping back from its shards"
        );
        for shard in &shards {
            if let Some(tag) = self.tags.get(&Source::Shard(*shard)) {
                self.channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await?;
                self.stepping_back.insert(*shard);
            }
        }
        Ok(shards)
    }

    /// Stops every delivery to this worker (shutdown).
    pub async fn cancel_all(&mut self) {
        for tag in std::mem::take(&mut self.tags).into_values() {
            if let Err(e) = self
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                warn!(error = %e, tag, "consumer cancel failed");
            }
        }
    }
}
