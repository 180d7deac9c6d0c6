//! The broker's ceiling: consume → confirmed publish → ack, the least a stage hop does,
//! on a quorum queue with persistent messages and the same prefetch as the worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Connection;
use tokio::task::JoinSet;

use super::cpu::{self, Watched};
use crate::broker::{BrokerError, Outgoing, Publisher};

pub struct Ceiling {
    pub hops_per_sec: f64,
    /// CPU each watched process used in the window.
    pub cpu: Vec<(&'static str, Duration)>,
}

/// Hops per second over `measure`, after `warmup`, with `in_flight` messages circulating
/// through `queue` (declared and deleted here) and `body_bytes` per message.
pub async fn run(
    connection: &Connection,
    queue: &str,
    in_flight: u16,
    body_bytes: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Ceiling, BrokerError> {
    let watched = Watched::with(&[]);
    let channel = connection.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel.queue_declare(queue.into(), durable, args).await?;
    let publisher = Publisher::open(connection).await?;
    let body = vec![b'x'; body_bytes];
    for _ in 0..in_flight {
        publisher
            .publish(Outgoing::json("", queue, body.clone()))
            .await?;
    }
    channel
        .basic_qos(in_flight, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "billflow-bench-ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let hops = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut counted_from = None;
    let mut cpu_from = Vec::new();
    let result = loop {
        if counted_from.is_none() && started.elapsed() >= warmup {
            counted_from = Some((Instant::now(), hops.load(Ordering::Relaxed)));
            cpu_from = watched.sample();
        }
        if let Some((at, from)) = counted_from {
            let elapsed = at.elapsed();
            if elapsed >= measure {
                break Ok(Ceiling {
                    hops_per_sec: (hops.load(Ordering::Relaxed) - from) as f64
                        / elapsed.as_secs_f64(),
                    cpu: cpu::used(&cpu_from, &watched.sample()),
                });
            }
        }
        let next = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await;
        let delivery = match next {
            Err(_) => continue,
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(e))) => break Err(e.into()),
            Ok(None) => break Err(BrokerError::ConsumerEnded),
        };
        let (publisher, hops, queue) = (publisher.clone(), hops.clone(), queue.to_string());
        tasks.spawn(async move {
            let out = Outgoing::json("", &queue, delivery.data.clone());
            if publisher.publish(out).await.is_ok()
                && delivery.ack(BasicAckOptions::default()).await.is_ok()
            {
                hops.fetch_add(1, Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    };
    tasks.abort_all();
    let _ = channel.queue_delete(queue.into(), Default::default()).await;
    let _ = channel.close(200, "ceiling measured".into()).await;
    result
}
