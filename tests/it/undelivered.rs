//! Messages RabbitMQ itself dead-letters from the intake or a shard (per-message TTL
//! expired, over the delivery limit, rejected) go through `<prefix>.undelivered`, where a
//! worker moves them to `<prefix>.dead` with `x-billflow-reason` and publishes their
//! terminal events; an odd `x-death` header is reported, not a panic.

use std::time::Duration;

use crate::common::workload::queue_depth;
use crate::common::{renewal, Harness, WAIT};
use billflow::broker::{Outgoing, DELIVERY_LIMIT};
use billflow::cli::dlq::{self, DeadQueue};
use billflow::contract::command::Command;
use billflow::contract::events::{CloudEvent, Outcome};
use billflow::contract::message::StageMessage;
use billflow::contract::DeadReason;
use billflow::sim::costguard::ACTIVE_SERVICE;
use lapin::options::{BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::BasicProperties;

/// Waits until `queue` holds `count` messages.
async fn wait_depth(h: &Harness, queue: &str, count: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let depth = queue_depth(&h.connection, queue).await;
        if depth == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} holds {depth} messages, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one terminal event of `id`.
fn terminal<'a>(h: &'a Harness, id: &str) -> &'a CloudEvent {
    let ends: Vec<&CloudEvent> = h
        .events_of(id)
        .into_iter()
        .filter(|e| e.is_terminal())
        .collect();
    assert_eq!(ends.len(), 1, "{id}: {ends:#?}");
    ends[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_command_is_dead_lettered_with_a_reason_and_an_event() {
    let mut h = Harness::start("undelivered-expired").await;
    let body = serde_json::to_vec(&renewal("crm-expired", ACTIVE_SERVICE)).unwrap();
    // A CRM's per-message TTL of 1 ms, while no worker consumes.
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_expiration("1".into());
    h.publisher
        .channel()
        .basic_publish(
            h.topology.commands_exchange().as_str().into(),
            "advancepay.renew".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    wait_depth(&h, &h.topology.undelivered_queue(), 1).await;
    assert_eq!(
        queue_depth(&h.connection, &h.topology.dead_queue()).await,
        0
    );

    let worker = h.spawn_worker();
    h.wait_terminal(&["crm-expired"]).await;
    let end = terminal(&h, "crm-expired").clone();
    assert_eq!(
        end.routing_key(),
        "workflow.advancepay_renewal.dead_lettered"
    );
    assert_eq!(end.id, "crm-expired/advancepay_renewal/dead_lettered");
    assert_eq!(end.data.reason.as_deref(), Some("expired"));
    let error = end.data.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("expired in {}", h.topology.intake_queue())),
        "{error}"
    );
    assert_eq!(h.events_of("crm-expired").len(), 1, "no stage ran");
    assert!(h.call_counts().await.is_empty(), "nothing was called");

    // `billflow dlq` reads it like any other dead letter, and replays it as a command.
    let queue = DeadQueue::open(&h.connection, &h.topology).await.unwrap();
    assert_eq!(queue.letters.len(), 1);
    let letter = &queue.letters[0];
    assert_eq!(letter.reason(), "expired");
    assert_eq!(letter.command_id(), "crm-expired");
    assert_eq!(letter.workflow(), "advancepay_renewal");
    assert_eq!(letter.body, body, "the message is kept unchanged");
    assert!(letter.headers.contains_key("x-billflow-first-failure"));
    assert!(letter.headers.contains_key("x-billflow-last-failure"));
    dlq::replay(letter, &h.publisher, &h.topology, Some(&h.signer()), None)
        .await
        .unwrap();
    queue.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h
        .events_of("crm-expired")
        .iter()
        .any(|e| e.is_terminal() && e.data.outcome == Outcome::Completed)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replay completes"
        );
        h.poll_event(Duration::from_secs(1)).await;
    }
    assert!(h.drain_dead().await.is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_over_the_delivery_limit_is_dead_lettered_with_its_stage_event() {
    let mut h = Harness::start("undelivered-limit").await;
    let command = serde_json::to_vec(&renewal("crm-limit", ACTIVE_SERVICE)).unwrap();
    let mut stage = StageMessage::first(Command::parse(&command).unwrap());
    stage.stage = "check_favorites".into();
    let shard = h.topology.work_queue_for("crm-limit");
    h.publisher
        .publish(stage.outgoing(&shard, &h.signer()))
        .await
        .unwrap();

    // A consumer that gives it back every time, as a worker crashing on it would.
    let mut taker = h.consume(&shard).await;
    let mut deliveries = 0;
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(1), taker.next()).await
    {
        deliveries += 1;
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        delivery.unwrap().nack(requeue).await.unwrap();
        assert!(deliveries <= DELIVERY_LIMIT + 1, "no delivery limit");
    }
    taker.close().await;
    assert_eq!(deliveries, DELIVERY_LIMIT + 1);
    wait_depth(&h, &h.topology.undelivered_queue(), 1).await;

    let worker = h.spawn_worker();
    h.wait_terminal(&["crm-limit"]).await;
    let step = h
        .events_of("crm-limit")
        .into_iter()
        .find(|e| !e.is_terminal())
        .cloned()
        .expect("a stage event");
    assert_eq!(
        step.routing_key(),
        "step.advancepay_renewal.check_favorites.dead_lettered"
    );
    assert_eq!(step.id, "crm-limit/check_favorites/dead_lettered");
    assert_eq!(step.data.reason.as_deref(), Some("delivery_limit"));
    assert_eq!(step.data.attempt, Some(1));
    let end = terminal(&h, "crm-limit").clone();
    assert_eq!(
        end.routing_key(),
        "workflow.advancepay_renewal.dead_lettered"
    );
    assert_eq!(end.data.reason.as_deref(), Some("delivery_limit"));
    assert_eq!(end.data.stage.as_deref(), Some("check_favorites"));
    assert!(h.call_counts().await.is_empty(), "the stage never ran");

    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    let letter = &dead[0].envelope;
    assert_eq!(dead[0].body, stage.encode());
    assert_eq!(letter.reason, Some(DeadReason::DeliveryLimit));
    assert_eq!(letter.stage.as_deref(), Some("check_favorites"));
    assert_eq!(letter.command_id.as_deref(), Some("crm-limit"));
    let error = letter.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!("delivered in {shard} over its delivery limit")),
        "{error}"
    );
    worker.stop().await;
}

fn death(entries: Vec<AMQPValue>) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(entries)),
    );
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_oddly_dead_lettered_messages_are_reported_without_a_panic() {
    let mut h = Harness::start("undelivered-rejected").await;
    h.publish(&renewal("crm-rejected", ACTIVE_SERVICE)).await;
    let mut taker = h.consume(&h.topology.intake_queue()).await;
    let delivery = tokio::time::timeout(WAIT, taker.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    delivery.nack(BasicNackOptions::default()).await.unwrap();
    taker.close().await;

    // Straight into the undelivered queue, as anyone able to publish could: an x-death
    // that is not an array, one holding no table, and an unreadable body.
    let undelivered = h.topology.undelivered_queue();
    let mut not_an_array = FieldTable::default();
    not_an_array.insert("x-death".into(), AMQPValue::LongString("expired".into()));
    let mut unknown = FieldTable::default();
    unknown.insert("reason".into(), AMQPValue::LongLongInt(7));
    let odd = [
        (
            "crm-odd-1",
            serde_json::to_vec(&renewal("crm-odd-1", ACTIVE_SERVICE)).unwrap(),
            not_an_array,
        ),
        (
            "crm-odd-2",
            serde_json::to_vec(&renewal("crm-odd-2", ACTIVE_SERVICE)).unwrap(),
            death(vec![
                AMQPValue::LongLongInt(3),
                AMQPValue::FieldTable(unknown),
            ]),
        ),
        (
            "garbage-1",
            b"\xff not json".to_vec(),
            death(vec![AMQPValue::FieldTable({
                let mut e = FieldTable::default();
                e.insert(
                    "reason".into(),
                    AMQPValue::LongString(LongString::from("x".repeat(100_000))),
                );
                e.insert("time".into(), AMQPValue::Timestamp(u64::MAX));
                e
            })]),
        ),
    ];
    for (id, body, headers) in odd {
        let mut out = Outgoing::json("", &undelivered, body);
        out.headers = headers;
        out.message_id = Some(id.into());
        h.publisher.publish(out).await.unwrap();
    }
    // A legal 250-byte message id on an unreadable body: too long to stand in for a
    // command id (the event ids derived from it would not fit an AMQP message id).
    let mut long_id = Outgoing::json("", &undelivered, b"[]".to_vec());
    long_id.message_id = Some("m".repeat(250));
    h.publisher.publish(long_id).await.unwrap();
    wait_depth(&h, &undelivered, 5).await;

    let worker = h.spawn_worker();
    let ids = ["crm-rejected", "crm-odd-1", "crm-odd-2", "garbage-1"];
    h.wait_terminal(&ids).await;
    for id in ids {
        let end = terminal(&h, id);
        assert_eq!(end.data.outcome, Outcome::DeadLettered, "{id}");
        assert_eq!(end.data.reason.as_deref(), Some("rejected"), "{id}");
    }
    let error = |id: &str| terminal(&h, id).data.error.clone().unwrap_or_default();
    assert!(
        error("crm-rejected").contains(&format!(
            "rejected without requeue by a consumer of {}",
            h.topology.intake_queue()
        )),
        "{}",
        error("crm-rejected")
    );
    for id in ["crm-odd-1", "crm-odd-2"] {
        assert!(error(id).contains("unknown cause"), "{}", error(id));
        assert_eq!(
            terminal(&h, id).routing_key(),
            "workflow.advancepay_renewal.dead_lettered"
        );
    }
    assert_eq!(
        terminal(&h, "garbage-1").routing_key(),
        "workflow.unknown.dead_lettered"
    );
    assert!(error("garbage-1").len() < 1_000);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h
        .seen
        .iter()
        .any(|e| e.is_terminal() && e.subject.starts_with("unidentified-"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message with a long id is reported"
        );
        h.poll_event(Duration::from_secs(1)).await;
    }

    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 5);
    for d in &dead {
        assert_eq!(d.envelope.reason, Some(DeadReason::Rejected));
    }

    // The worker is still well: a renewal completes.
    h.publish(&renewal("crm-after", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-after"]).await;
    assert_eq!(terminal(&h, "crm-after").data.outcome, Outcome::Completed);
    worker.stop().await;
}
