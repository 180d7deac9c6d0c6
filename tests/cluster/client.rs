//! The test's own connection to the cluster, for publishing commands, reading the event
//! capture and counting what is left in the queues. The harness's connection is on node
//! a, which the chaos may take away: this one goes to whichever node answers and is opened
//! again, on another node if need be, whenever an operation fails or hangs.

use std::time::{Duration, Instant};

use billflow::broker::{self, Outgoing, Publisher};
use billflow::contract::events::CloudEvent;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use serde_json::Value;

/// An operation that has not answered by then is on a node that went away.
const OPERATION: Duration = Duration::from_secs(10);
/// Giving up on the whole cluster.
const CONNECT: Duration = Duration::from_secs(120);
const URL_OPTIONS: &str = "heartbeat=5&connection_timeout=5000";

pub struct Client {
    urls: Vec<String>,
    /// Where the next connection attempt starts, so a dead node is not always tried first.
    next: usize,
    connection: Connection,
    publisher: Publisher,
}

impl Client {
    pub async fn connect(urls: &[String]) -> Client {
        let urls: Vec<String> = urls.iter().map(|u| format!("{u}?{URL_OPTIONS}")).collect();
        let (connection, publisher, next) = open(&urls, 0).await;
        Client {
            urls,
            next,
            connection,
            publisher,
        }
    }

    async fn reopen(&mut self) {
        let (connection, publisher, next) = open(&self.urls, self.next).await;
        let old = std::mem::replace(&mut self.connection, connection);
        self.publisher = publisher;
        self.next = next;
        let _ = tokio::time::timeout(OPERATION, old.close(200, "reopening".into())).await;
    }

    /// Publishes `command` to `exchange` with a confirm, on another node if need be.
    pub async fn publish(&mut self, exchange: &str, command: &Value) {
        let kind = command["type"].as_str().unwrap_or("unknown");
        let body = serde_json::to_vec(command).expect("command JSON");
        loop {
            let out = Outgoing::json(exchange, kind, body.clone());
            match tokio::time::timeout(OPERATION, self.publisher.publish(out)).await {
                Ok(Ok(())) => return,
                _ => self.reopen().await,
            }
        }
    }

    /// Moves what the capture queue holds into `events`.
    pub async fn drain(&mut self, queue: &str, events: &mut Vec<CloudEvent>) {
        while tokio::time::timeout(OPERATION, drain_once(&self.connection, queue, events))
            .await
            .ok()
            .and_then(Result::ok)
            .is_none()
        {
            self.reopen().await;
        }
    }

    /// Messages ready in `queue`.
    pub async fn depth(&mut self, queue: &str) -> u32 {
        loop {
            match tokio::time::timeout(OPERATION, depth(&self.connection, queue)).await {
                Ok(Ok(n)) => return n,
                _ => self.reopen().await,
            }
        }
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(OPERATION, self.connection.close(200, "done".into())).await;
    }
}

/// A connection and a publisher on the first node that answers, trying from `start`;
/// returns the index of the next node to try.
async fn open(urls: &[String], start: usize) -> (Connection, Publisher, usize) {
    let deadline = Instant::now() + CONNECT;
    let mut i = start;
    loop {
        let url = &urls[i % urls.len()];
        i += 1;
        let attempt = async {
            let connection = broker::connect(url, "billflow-cluster-test").await.ok()?;
            let publisher = Publisher::open(&connection).await.ok()?;
            Some((connection, publisher))
        };
        if let Ok(Some((connection, publisher))) = tokio::time::timeout(OPERATION, attempt).await {
            return (connection, publisher, i % urls.len());
        }
        assert!(Instant::now() < deadline, "no cluster node answers");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn drain_once(
    connection: &Connection,
    queue: &str,
    events: &mut Vec<CloudEvent>,
) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?
    {
        if let Ok(event) = serde_json::from_slice(&message.delivery.data) {
            events.push(event);
        }
        message.delivery.ack(BasicAckOptions::default()).await?;
    }
    let _ = channel.close(200, "drained".into()).await;
    Ok(())
}

async fn depth(connection: &Connection, queue: &str) -> Result<u32, lapin::Error> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let count = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count();
    let _ = channel.close(200, "counted".into()).await;
    Ok(count)
}
