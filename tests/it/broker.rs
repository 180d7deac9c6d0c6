//! The broker layer against a real RabbitMQ: idempotent topology, confirmed and
//! mandatory publishing.

use crate::common;

use billflow::broker::{self, BrokerError, Outgoing, Publisher, Topology};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

#[tokio::test]
async fn topology_is_idempotent_and_unroutable_publishes_fail() {
    let h = common::Harness::start("broker").await;
    // Declaring again, from another connection, changes nothing and does not fail.
    let other = broker::connect(&h.amqp_url, "billflow-test-2")
        .await
        .unwrap();
    h.topology
        .declare(&other.create_channel().await.unwrap())
        .await
        .expect("second declare");

    let channel = other.create_channel().await.unwrap();
    // A worker declares the ledger streams and the events log, with their limits.
    h.topology
        .declare_ledgers(&other, Some(3600))
        .await
        .expect("ledgers");
    h.topology
        .declare_events_log(&other, Some(3600), Some(1 << 30))
        .await
        .expect("events log");
    for queue in h.topology.queues() {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("{queue} missing: {e}"));
    }

    let publisher = Publisher::open(&other).await.unwrap();
    let nowhere = Outgoing::json("", &format!("{}.no-such-queue", h.prefix), b"{}".to_vec());
    match publisher.publish(nowhere).await {
        Err(BrokerError::Unroutable { routing_key, .. }) => {
            assert!(routing_key.ends_with("no-such-queue"))
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // A routable publish is confirmed; the message is in the queue.
    publisher
        .publish(Outgoing::json("", &h.topology.dead_queue(), b"{}".to_vec()))
        .await
        .expect("confirmed");
    assert_eq!(h.drain_dead().await.len(), 1);

    // An unrouted event (no subscriber) is not an error.
    let mut event = Outgoing::json(
        &Topology::new(&h.prefix).events_exchange(),
        "x.y",
        b"{}".to_vec(),
    );
    event.mandatory = false;
    publisher
        .publish(event)
        .await
        .expect("event without subscriber");

    let _ = other.close(200, "done".into()).await;
}
