//! Messages from someone with broker access: forged, unsigned, altered or re-signed stage
//! messages, conflicting duplicates, odd AMQP properties, and a stage that panics. Real
//! RabbitMQ, the simulator, an in-process worker.

use crate::common;

use std::time::Duration;

use crate::common::{renewal, Harness};
use billflow::broker::Outgoing;
use billflow::contract::envelope::Header;
use billflow::contract::events::Outcome;
use billflow::contract::message::StageMessage;
use billflow::contract::signing::Signer;
use billflow::contract::DeadReason;
use lapin::types::AMQPValue;
use serde_json::json;

const ACTIVE: &str = billflow::sim::costguard::ACTIVE_SERVICE;

/// A `tender` stage of `id` with made-up earlier outputs: what a forger would send to get
/// ModifyCart for 0.01 and SubmitCart without lookup, eligibility or checkout.
fn forged_tender(id: &str) -> StageMessage {
    let mut msg =
        StageMessage::decode(&serde_json::to_vec(&renewal(id, ACTIVE)).unwrap(), None).unwrap();
    msg.stage = "tender".into();
    msg.outputs.insert(
        "create_cart".into(),
        json!({"cart": {"authenticated_key": "AuthKey", "id": 7001}}),
    );
    msg.outputs.insert(
        "checkout".into(),
        json!({"subtotal": "0.01", "tax_subtotal": "0", "amount_due": "0.01"}),
    );
    msg
}

fn other_key_signer() -> Signer {
    Signer::from_keys(Some(&Signer::generate_key()), None).unwrap()
}

fn terminal(h: &Harness, id: &str) -> Vec<billflow::contract::events::CloudEvent> {
    h.events_of(id)
        .into_iter()
        .filter(|e| e.is_terminal())
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unsigned_altered_and_foreign_stages_are_refused_with_a_reason_and_an_event() {
    let mut h = Harness::start("forged").await;
    let worker = h.spawn_worker();
    let intake = h.topology.intake_queue();

    // 1. On the commands exchange, as a CRM would publish it, with a stage header.
    let forged = forged_tender("crm-forged-header");
    let mut out = Outgoing::json(
        &h.topology.commands_exchange(),
        "advancepay.renew",
        forged.encode(),
    );
    out.headers = forged.headers();
    h.publisher.publish(out).await.unwrap();
    // 1b. Even correctly signed: what comes from the commands exchange is a command.
    let replayed = forged_tender("crm-forged-signed-command");
    let mut out = replayed.outgoing("", &h.signer());
    out.exchange = h.topology.commands_exchange();
    out.routing_key = "advancepay.renew".into();
    h.publisher.publish(out).await.unwrap();
    // 2. A routing-slip body without the header, as a command.
    let slip = forged_tender("crm-forged-slip");
    h.publish_raw("advancepay.renew", slip.encode(), None).await;
    // 3. Straight into the intake, unsigned.
    let unsigned = forged_tender("crm-forged-unsigned");
    let mut out = unsigned.outgoing(&intake, &h.signer());
    out.headers = unsigned.headers();
    h.publisher.publish(out).await.unwrap();
    // 4. Signed with another key.
    let foreign = forged_tender("crm-forged-foreign");
    h.publisher
        .publish(foreign.outgoing(&intake, &other_key_signer()))
        .await
        .unwrap();
    // 5. Signed with the right key, then the amount altered.
    let mut altered = forged_tender("crm-forged-altered");
    let signed = altered.outgoing(&intake, &h.signer());
    altered.outputs.insert(
        "checkout".into(),
        json!({"subtotal": "0.02", "tax_subtotal": "0", "amount_due": "0.02"}),
    );
    let mut out = altered.outgoing(&intake, &h.signer());
    out.headers = signed.headers;
    h.publisher.publish(out).await.unwrap();
    // 6. A garbage signature.
    let garbage = forged_tender("crm-forged-garbage");
    let mut out = garbage.outgoing(&intake, &h.signer());
    out.headers.insert(
        Header::SIGNATURE.name.into(),
        AMQPValue::LongString("v1=nothex".into()),
    );
    h.publisher.publish(out).await.unwrap();

    let ids = [
        ("crm-forged-header", "x-billflow-stage"),
        ("crm-forged-signed-command", "x-billflow-stage"),
        ("crm-forged-slip", "unknown field"),
        ("crm-forged-unsigned", "not signed"),
        ("crm-forged-foreign", "does not match"),
        ("crm-forged-altered", "does not match"),
        ("crm-forged-garbage", "malformed"),
    ];
    let names: Vec<&str> = ids.iter().map(|(id, _)| *id).collect();
    h.wait_terminal(&names).await;
    h.settle(Duration::from_millis(500)).await;
    for (id, why) in ids {
        let events = terminal(&h, id);
        assert_eq!(events.len(), 1, "{id}: {events:?}");
        assert_eq!(events[0].data.outcome, Outcome::Failed, "{id}");
        assert_eq!(
            events[0].data.reason.as_deref(),
            Some("invalid_message"),
            "{id}"
        );
        let error = events[0].data.error.clone().unwrap_or_default();
        assert!(error.contains(why), "{id}: {error}");
    }
    let counts = h.call_counts().await;
    assert_eq!(counts.get("ModifyCart"), None, "no tender sent: {counts:?}");
    assert_eq!(counts.get("SubmitCart"), None, "no submit sent: {counts:?}");
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), ids.len());
    assert!(dead
        .iter()
        .all(|d| d.envelope.reason == Some(DeadReason::InvalidMessage)));

    // The same worker still runs a genuine stage message it signed itself.
    h.publish(&renewal("crm-genuine", ACTIVE)).await;
    h.wait_terminal(&["crm-genuine"]).await;
    assert_eq!(
        terminal(&h, "crm-genuine")[0].data.outcome,
        Outcome::Completed
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_a_stop_and_a_worker_without_a_key_does_not_start() {
    let mut h = Harness::start("rotation").await;
    let old_key = h.signing_key.clone();
    let new_key = Signer::generate_key();

    // A stage written under the old key is still in a queue when the workers rotate.
    let msg = StageMessage::decode(
        &serde_json::to_vec(&renewal("crm-rotated", ACTIVE)).unwrap(),
        None,
    )
    .unwrap();
    h.publisher
        .publish(msg.outgoing(&h.topology.intake_queue(), &h.signer()))
        .await
        .unwrap();
    let mut settings = h.worker_settings();
    settings.signing_key = Some(billflow::secret::Secret::new(&new_key));
    settings.signing_key_previous = Some(billflow::secret::Secret::new(&old_key));
    let worker = h.spawn_worker_with(settings.clone());
    h.wait_terminal(&["crm-rotated"]).await;
    assert_eq!(
        terminal(&h, "crm-rotated")[0].data.outcome,
        Outcome::Completed
    );
    worker.stop().await;

    // Once the previous key is dropped, a stage signed with it is refused.
    let stale = StageMessage::decode(
        &serde_json::to_vec(&renewal("crm-stale", ACTIVE)).unwrap(),
        None,
    )
    .unwrap();
    h.publisher
        .publish(stale.outgoing(&h.topology.intake_queue(), &h.signer()))
        .await
        .unwrap();
    settings.signing_key_previous = None;
    let worker = h.spawn_worker_with(settings.clone());
    h.wait_terminal(&["crm-stale"]).await;
    let stale = terminal(&h, "crm-stale");
    assert_eq!(stale[0].data.reason.as_deref(), Some("invalid_message"));
    worker.stop().await;

    settings.signing_key = None;
    let error =
        billflow::runtime::worker::run(settings, tokio_util::sync::CancellationToken::new())
            .await
            .expect_err("no key, no worker");
    assert!(
        error.to_string().contains("BILLFLOW_SIGNING_KEY"),
        "{error}"
    );
    h.drain_dead().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_duplicate_is_reported_and_an_identical_one_stays_quiet() {
    let mut h = Harness::start("conflict").await;
    let worker = h.spawn_worker();
    let original = renewal("crm-conflict", ACTIVE);
    h.publish(&original).await;
    h.wait_terminal(&["crm-conflict"]).await;

    // The same data with the keys in another order: a quiet duplicate.
    let reordered =
        json!({"data": original["data"], "type": "advancepay.renew", "command_id": "crm-conflict"});
    h.publish_raw(
        "advancepay.renew",
        serde_json::to_vec(&reordered).unwrap(),
        None,
    )
    .await;
    // Another service number under the same id: a conflict.
    let conflicting = renewal("crm-conflict", billflow::sim::costguard::HOTLINED_SERVICE);
    h.publish(&conflicting).await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while terminal(&h, "crm-conflict").len() < 2 && tokio::time::Instant::now() < deadline {
        h.poll_event(Duration::from_millis(200)).await;
    }
    h.settle(Duration::from_millis(800)).await;

    let terminals = terminal(&h, "crm-conflict");
    assert_eq!(terminals.len(), 2, "{terminals:#?}");
    assert_eq!(terminals[0].data.outcome, Outcome::Completed);
    let conflict = &terminals[1];
    assert_eq!(conflict.data.outcome, Outcome::Failed);
    assert_eq!(
        conflict.data.reason.as_deref(),
        Some("conflicting_duplicate")
    );
    assert_ne!(conflict.id, terminals[0].id);
    let digests = conflict.data.conflict.clone().expect("digests");
    assert_eq!(digests.original.len(), 64);
    assert_ne!(digests.original, digests.received);
    let body = serde_json::to_string(conflict).unwrap();
    assert!(
        !body.contains(billflow::sim::costguard::HOTLINED_SERVICE),
        "the event carries digests, not data: {body}"
    );
    // Only the original's calls were made.
    assert_eq!(h.call_counts().await.get("ServiceNumberDetail"), Some(&1));
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].envelope.reason,
        Some(DeadReason::ConflictingDuplicate)
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_duplicate_while_the_original_runs_leaves_the_original_alone() {
    let mut h = Harness::start("conflict-live").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "Checkout", "kind": "latency", "ms": 1500}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal("crm-live", ACTIVE)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.publish(&renewal(
        "crm-live",
        billflow::sim::costguard::HOTLINED_SERVICE,
    ))
    .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while terminal(&h, "crm-live").len() < 2 && tokio::time::Instant::now() < deadline {
        h.poll_event(Duration::from_millis(200)).await;
    }
    let outcomes: Vec<(Outcome, Option<String>)> = terminal(&h, "crm-live")
        .iter()
        .map(|e| (e.data.outcome, e.data.reason.clone()))
        .collect();
    assert!(
        outcomes.contains(&(Outcome::Completed, None)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&(Outcome::Failed, Some("conflicting_duplicate".into()))),
        "{outcomes:?}"
    );
    assert_eq!(h.call_counts().await.get("SubmitCart"), Some(&1));
    h.drain_dead().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_panics_ends_as_a_dead_letter_with_an_event() {
    let mut h = Harness::start("panic").await;
    let mut settings = h.worker_settings();
    settings.panic_in_stage = Some("checkout".into());
    let worker = h.spawn_worker_with(settings);
    h.publish(&renewal("crm-panic", ACTIVE)).await;
    h.wait_terminal(&["crm-panic"]).await;
    let events = terminal(&h, "crm-panic");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.outcome, Outcome::Failed);
    assert_eq!(events[0].data.reason.as_deref(), Some("internal_error"));
    assert!(events[0]
        .data
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("panic"));
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.reason, Some(DeadReason::InternalError));
    assert_eq!(dead[0].envelope.stage.as_deref(), Some("checkout"));
    assert_eq!(h.call_counts().await.get("ModifyCart"), None);

    // The worker goes on serving.
    h.publish(&renewal(
        "crm-after-panic",
        billflow::sim::costguard::INELIGIBLE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-after-panic"]).await;
    assert_eq!(
        terminal(&h, "crm-after-panic")[0].data.reason.as_deref(),
        Some("permanent_error")
    );
    h.drain_dead().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_long_message_id_on_an_invalid_body_does_not_lose_the_message() {
    let mut h = Harness::start("long-id").await;
    let worker = h.spawn_worker();
    let long_id = "m".repeat(250);
    let mut out = Outgoing::json(
        &h.topology.commands_exchange(),
        "advancepay.renew",
        b"{not json".to_vec(),
    );
    out.message_id = Some(long_id);
    h.publisher.publish(out).await.unwrap();
    // Too long to stand in for a command id: the message is named by its fingerprint.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h.seen.iter().any(|e| e.is_terminal()) && tokio::time::Instant::now() < deadline {
        h.poll_event(Duration::from_millis(200)).await;
    }
    let events: Vec<_> = h.seen.iter().filter(|e| e.is_terminal()).cloned().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].subject.starts_with("unidentified-"), "{events:?}");
    assert_eq!(events[0].data.reason.as_deref(), Some("invalid_message"));
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"{not json");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_the_routing_key_its_command_was_published_with() {
    let mut h = Harness::start("routing-key").await;
    let worker = h.spawn_worker();
    // Invalid (no service number), under another type's routing key.
    h.publish_raw(
        "service_order.submit",
        serde_json::to_vec(&json!({"command_id": "crm-key", "type": "advancepay.renew",
            "data": {"order_type_id": 1, "register_id": 12, "tender_type_id": 2}}))
        .unwrap(),
        None,
    )
    .await;
    h.wait_terminal(&["crm-key"]).await;
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].envelope.original_routing_key.as_deref(),
        Some("service_order.submit"),
        "the key the CRM used, not the shard's queue"
    );
    worker.stop().await;
}
