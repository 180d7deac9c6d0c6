//! `advancepay.renew` end to end: real RabbitMQ, the simulator, the worker.

use crate::common;

use std::time::Duration;

use crate::common::{renewal, Harness};
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use serde_json::json;

fn terminal_count(h: &Harness, id: &str, outcome: Outcome) -> usize {
    h.events_of(id)
        .iter()
        .filter(|e| e.is_terminal() && e.data.outcome == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_service_renews_with_the_seed_calls_in_order() {
    let mut h = Harness::start("active").await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-active",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-active"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(
        h.call_sequence().await,
        [
            "ServiceNumberDetail",
            "favoriteAdvancePayPricePoint",
            "CreateCart",
            "renewAdvancePay",
            "Checkout",
            "ModifyCart",
            "SubmitCart"
        ]
    );
    let tender = h.call_bodies("ModifyCart").await;
    assert!(
        tender[0].contains("<Amount>14.34</Amount>"),
        "{}",
        tender[0]
    );
    assert!(tender[0].contains("TenderInformationItemCash"));
    let create = h.call_bodies("CreateCart").await;
    assert!(
        create[0].contains("<RegisterID>12</RegisterID>"),
        "{}",
        create[0]
    );

    assert_eq!(terminal_count(&h, "crm-active", Outcome::Completed), 1);
    let steps: Vec<String> = h
        .events_of("crm-active")
        .iter()
        .map(|e| e.routing_key())
        .collect();
    assert_eq!(
        steps,
        [
            "step.advancepay_renewal.lookup_service.completed",
            "step.advancepay_renewal.check_favorites.completed",
            "step.advancepay_renewal.create_cart.completed",
            "step.advancepay_renewal.renew.completed",
            "step.advancepay_renewal.checkout.completed",
            "step.advancepay_renewal.tender.completed",
            "step.advancepay_renewal.submit.completed",
            "workflow.advancepay_renewal.completed",
        ]
    );
    let done = h.events_of("crm-active").last().copied().cloned().unwrap();
    let outputs = done.data.output.unwrap();
    assert_eq!(outputs["checkout"]["subtotal"], "11.99");
    assert_eq!(outputs["checkout"]["tax_subtotal"], "2.35");
    assert_eq!(outputs["tender"]["amount"], "14.34");

    worker.stop().await;
    assert!(h.drain_dead().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotlined_service_is_restored_then_renewed() {
    let mut h = Harness::start("hotlined").await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-hot",
        billflow::sim::costguard::HOTLINED_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-hot"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(
        h.call_sequence().await,
        [
            "ServiceNumberDetail",
            "favoriteAdvancePayPricePoint",
            "CreateCart",
            "ModifyCart",
            "Checkout",
            "SubmitCart",
            "CreateCart",
            "renewAdvancePay",
            "Checkout",
            "ModifyCart",
            "SubmitCart"
        ]
    );
    let create = h.call_bodies("CreateCart").await;
    assert!(create[0].contains("<OrderTypeID>1013</OrderTypeID>"));
    assert!(
        !create[0].contains("RegisterID"),
        "restore order has no register"
    );
    let modify = h.call_bodies("ModifyCart").await;
    assert!(modify[0].contains("ServiceInformationItemForRestore"));
    assert!(modify[0].contains("<ReasonID>4</ReasonID>"));
    assert!(modify[1].contains("<Amount>14.34</Amount>"));
    assert_eq!(terminal_count(&h, "crm-hot", Outcome::Completed), 1);

    let state = h.sim_get("/_sim/state").await;
    let service = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s.to_string()
                .contains(billflow::sim::costguard::HOTLINED_SERVICE)
        })
        .cloned()
        .unwrap();
    assert!(service.to_string().contains("\"Active\""), "{service}");

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotlined_service_without_restore_request_is_only_renewed() {
    let mut h = Harness::start("norestore").await;
    let worker = h.spawn_worker();
    let mut cmd = renewal("crm-norestore", billflow::sim::costguard::HOTLINED_SERVICE);
    cmd["data"].as_object_mut().unwrap().remove("restore");
    h.publish(&cmd).await;
    h.wait_terminal(&["crm-norestore"]).await;
    let counts = h.call_counts().await;
    assert_eq!(counts.get("CreateCart"), Some(&1));
    assert_eq!(terminal_count(&h, "crm-norestore", Outcome::Completed), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ineligible_service_fails_before_any_cart() {
    let mut h = Harness::start("inelig").await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-inelig",
        billflow::sim::costguard::INELIGIBLE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-inelig"]).await;
    h.settle(Duration::from_millis(300)).await;

    let failed: Vec<_> = h
        .events_of("crm-inelig")
        .into_iter()
        .filter(|e| e.is_terminal())
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data.outcome, Outcome::Failed);
    assert_eq!(
        failed[0].routing_key(),
        "workflow.advancepay_renewal.failed"
    );
    let error = failed[0].data.error.clone().unwrap();
    assert!(error.contains("not eligible for renewal"), "{error}");
    let counts = h.call_counts().await;
    assert_eq!(counts.get("CreateCart"), None, "{counts:?}");

    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.reason, Some(DeadReason::PermanentError));
    assert_eq!(dead[0].envelope.stage.as_deref(), Some("check_favorites"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_twice_makes_one_set_of_calls() {
    let mut h = Harness::start("dup").await;
    let cmd = renewal("crm-dup", billflow::sim::costguard::ACTIVE_SERVICE);
    // Two copies queued before the worker starts arrive together (prefetch > 1).
    h.publish(&cmd).await;
    h.publish(&cmd).await;
    let worker = h.spawn_worker();
    h.wait_terminal(&["crm-dup"]).await;
    // A third copy after completion, then a sentinel published behind it.
    h.publish(&cmd).await;
    h.publish(&renewal(
        "crm-sentinel",
        billflow::sim::costguard::INELIGIBLE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-sentinel"]).await;
    h.settle(Duration::from_millis(500)).await;

    let counts = h.call_counts().await;
    for (op, n) in [
        ("ServiceNumberDetail", 2), // crm-dup once, the sentinel once
        ("CreateCart", 1),
        ("renewAdvancePay", 1),
        ("Checkout", 1),
        ("ModifyCart", 1),
        ("SubmitCart", 1),
    ] {
        assert_eq!(counts.get(op), Some(&n), "{op}: {counts:?}");
    }
    assert_eq!(terminal_count(&h, "crm-dup", Outcome::Completed), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_resumes_on_restart_without_repeating_calls() {
    let mut h = Harness::start("kill").await;
    // Hold the Checkout call long enough to kill the worker while it waits on it.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "Checkout", "kind": "latency", "ms": 4000, "count": 1}),
    )
    .await;
    let mut first = h.spawn_worker_process();
    h.publish(&renewal(
        "crm-kill",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h.call_counts().await.contains_key("Checkout") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Checkout never called: {}",
            h.worker_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("kill -9 the worker");
    first.wait().expect("reap the worker");

    let mut second = h.spawn_worker_process();
    h.wait_terminal(&["crm-kill"]).await;
    h.settle(Duration::from_millis(300)).await;
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SubmitCart"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("CreateCart"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("renewAdvancePay"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("ModifyCart"), Some(&1), "{counts:?}");
    // Checkout is repeatable: the interrupted call is made again.
    assert_eq!(counts.get("Checkout"), Some(&2), "{counts:?}");
    assert_eq!(terminal_count(&h, "crm-kill", Outcome::Completed), 1);

    second.kill().expect("stop the second worker");
    second.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_and_the_worker_keeps_serving() {
    let mut h = Harness::start("bad").await;
    let worker = h.spawn_worker();
    h.publish_raw("advancepay.renew", b"{not json".to_vec(), None)
        .await;
    h.publish(
        &json!({"command_id": "crm-missing", "type": "advancepay.renew",
                      "data": {"order_type_id": 1, "register_id": 12, "tender_type_id": 2}}),
    )
    .await;
    h.publish(&json!({"command_id": "crm-unknown", "type": "porting.start", "data": {}}))
        .await;
    h.publish_raw(
        "advancepay.renew",
        br#"{"command_id":"crm-xml"}"#.to_vec(),
        Some("application/xml"),
    )
    .await;
    // Larger than the harness's 64 KiB limit.
    let mut huge = renewal("crm-huge", billflow::sim::costguard::ACTIVE_SERVICE);
    huge["padding"] = json!("x".repeat(70 * 1024));
    h.publish(&huge).await;
    h.publish(&renewal(
        "crm-after",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&[
        "crm-missing",
        "crm-unknown",
        "crm-xml",
        "crm-huge",
        "crm-after",
    ])
    .await;
    let huge = h.events_of("crm-huge");
    assert!(huge[0]
        .data
        .error
        .as_deref()
        .unwrap()
        .contains("exceeds the limit"));

    assert_eq!(terminal_count(&h, "crm-after", Outcome::Completed), 1);
    let missing = h.events_of("crm-missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].data.reason.as_deref(), Some("invalid_message"));
    assert!(missing[0]
        .data
        .error
        .as_deref()
        .unwrap()
        .contains("service_number"));
    assert!(h.events_of("crm-unknown")[0]
        .data
        .error
        .as_deref()
        .unwrap()
        .contains("unknown command type"));

    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 5, "{dead:?}");
    let error = |d: &common::Dead| d.envelope.error.clone().unwrap_or_default();
    for d in &dead {
        assert_eq!(d.envelope.reason, Some(DeadReason::InvalidMessage));
        assert!(!error(d).is_empty());
    }
    assert!(
        dead.iter().any(|d| d.body == b"{not json"),
        "body kept intact"
    );
    assert!(dead.iter().any(|d| error(d).contains("not JSON")));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_characters_reach_the_simulator_intact() {
    let mut h = Harness::start("escape").await;
    let number = "55<5&5'5";
    h.sim_post(
        "/_sim/services",
        json!({"service_number": number, "status": "Hotlined"}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal("crm-escape", number)).await;
    h.wait_terminal(&["crm-escape"]).await;

    assert_eq!(terminal_count(&h, "crm-escape", Outcome::Completed), 1);
    let restored = h
        .events_of("crm-escape")
        .into_iter()
        .find(|e| e.data.stage.as_deref() == Some("restore_add_item"))
        .cloned()
        .unwrap();
    let detail = &restored.data.output.unwrap()["service_details"][0];
    assert_eq!(detail["service_number"], number, "{detail}");
    let calls = h.sim_get("/_sim/calls").await;
    let lookup = calls["calls"][0]["path"].as_str().unwrap().to_string();
    assert!(
        lookup.contains("%27%27"),
        "OData quote doubled and encoded: {lookup}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_durably() {
    let mut h = Harness::start("retry").await;
    // Three 503s exhaust the quick retries (2) of attempt 1; attempt 2 comes back
    // through the delay queue and succeeds.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "renewAdvancePay", "kind": "http_status", "status": 503, "count": 3}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-retry",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-retry"]).await;

    let retrying: Vec<_> = h
        .events_of("crm-retry")
        .into_iter()
        .filter(|e| e.data.outcome == Outcome::Retrying)
        .cloned()
        .collect();
    assert_eq!(retrying.len(), 1);
    assert_eq!(retrying[0].data.stage.as_deref(), Some("renew"));
    assert_eq!(retrying[0].data.next_delay_ms, Some(1_000));
    assert_eq!(terminal_count(&h, "crm-retry", Outcome::Completed), 1);
    let state = h.sim_get("/_sim/state").await;
    let carts = state["carts"].as_array().unwrap();
    assert_eq!(carts.len(), 1);
    worker.stop().await;
}

/// Applied calls of `operation` in the simulator's log, by idempotency key.
async fn applied_by_key(h: &Harness, operation: &str) -> std::collections::BTreeMap<String, u64> {
    let mut by_key = std::collections::BTreeMap::new();
    for call in h.calls().await {
        if call["operation"] == operation && call["applied"] == true {
            let key = call["idempotency_key"]
                .as_str()
                .unwrap_or("(none)")
                .to_string();
            *by_key.entry(key).or_insert(0) += 1;
        }
    }
    by_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_is_reconciled_from_the_order_not_resent() {
    let mut h = Harness::start("unknown").await;
    // SubmitCart takes effect, but its response never arrives: the client times out.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "SubmitCart", "kind": "drop_response", "count": 1}),
    )
    .await;
    let mut settings = h.worker_settings();
    settings.costguard.costguard_timeout = Duration::from_secs(1);
    // SubmitCart shows in no documented read: its probe is the pinned order read.
    settings.costguard.costguard_pinned_order_probes = true;
    let worker = h.spawn_worker_with(settings);
    h.publish(&renewal(
        "crm-unknown",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-unknown"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(terminal_count(&h, "crm-unknown", Outcome::Completed), 1);
    let retrying = h
        .events_of("crm-unknown")
        .into_iter()
        .find(|e| e.data.outcome == Outcome::Retrying)
        .cloned()
        .unwrap();
    assert_eq!(retrying.data.stage.as_deref(), Some("submit"));
    assert!(retrying.data.error.unwrap().contains("outcome unknown"));
    let counts = h.call_counts().await;
    assert_eq!(
        counts.get("SubmitCart"),
        Some(&1),
        "never re-sent: {counts:?}"
    );
    assert_eq!(counts.get("getOrder"), Some(&1), "one probe: {counts:?}");
    assert!(h.drain_dead().await.is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_that_did_not_land_is_sent_again_after_the_probe() {
    let mut h = Harness::start("notlanded").await;
    // The first SubmitCart hangs past the client's timeout and is never applied.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "SubmitCart", "kind": "timeout", "ms": 1500, "count": 1}),
    )
    .await;
    let mut settings = h.worker_settings();
    settings.costguard.costguard_timeout = Duration::from_secs(1);
    // SubmitCart shows in no documented read: its probe is the pinned order read.
    settings.costguard.costguard_pinned_order_probes = true;
    let worker = h.spawn_worker_with(settings);
    h.publish(&renewal(
        "crm-notlanded",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-notlanded"]).await;

    assert_eq!(terminal_count(&h, "crm-notlanded", Outcome::Completed), 1);
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SubmitCart"), Some(&2), "{counts:?}");
    assert_eq!(
        applied_by_key(&h, "SubmitCart")
            .await
            .get("crm-notlanded/submit"),
        Some(&1),
        "exactly one took effect"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_waits_durably_without_spending_attempts() {
    let mut h = Harness::start("breaker").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "ServiceNumberDetail", "kind": "http_status", "status": 503, "count": 6}),
    )
    .await;
    let mut settings = h.worker_settings();
    // Two attempts of three calls each could not outlast six failures on their own.
    settings.retry_policy.default.max_attempts = 2;
    settings.api_limits = billflow::engine::protect::LimitsConfig::parse(
        r#"{"costguard": {"breaker_failures": 2, "breaker_cooldown_ms": 500}}"#,
    )
    .unwrap();
    let worker = h.spawn_worker_with(settings);
    h.publish(&renewal(
        "crm-breaker",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-breaker"]).await;

    assert_eq!(terminal_count(&h, "crm-breaker", Outcome::Completed), 1);
    let waits = h
        .events_of("crm-breaker")
        .into_iter()
        .filter(|e| {
            e.data
                .error
                .as_deref()
                .is_some_and(|m| m.contains("circuit breaker open for costguard"))
        })
        .count();
    assert!(
        waits >= 2,
        "the stage waited on the open breaker {waits} times"
    );
    assert_eq!(h.call_counts().await.get("ServiceNumberDetail"), Some(&7));
    worker.stop().await;
}

/// A `submit` stage message that another worker took and then lost, unacked: it comes
/// back redelivered to a worker whose store has never heard of it.
async fn orphaned_submit(h: &mut Harness, command_id: &str) {
    use billflow::contract::message::StageMessage;

    let mut msg = StageMessage::decode(
        &serde_json::to_vec(&renewal(
            command_id,
            billflow::sim::costguard::ACTIVE_SERVICE,
        ))
        .unwrap(),
        None,
    )
    .unwrap();
    msg.stage = "submit".into();
    msg.outputs.insert(
        "create_cart".into(),
        json!({"cart": {"authenticated_key": "AuthKey", "id": 7001}}),
    );
    h.publisher
        .publish(msg.outgoing(&h.topology.work_queue_for(command_id), &h.signer()))
        .await
        .unwrap();
    let mut taker = h.consume(&h.topology.work_queue_for(command_id)).await;
    let delivery = taker.next().await.expect("stage message").unwrap();
    assert!(!delivery.redelivered);
    taker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_stage_no_worker_ever_started_simply_runs() {
    let mut h = Harness::start("orphan").await;
    orphaned_submit(&mut h, "crm-orphan").await;

    let worker = h.spawn_worker();
    h.wait_terminal(&["crm-orphan"]).await;
    // The fleet's ledger has no "started" for it: it never reached the platform, and
    // parking it would only be toil. It is sent (once), and the platform's answer (the
    // made-up cart does not exist) decides.
    assert_eq!(terminal_count(&h, "crm-orphan", Outcome::Parked), 0);
    assert_eq!(terminal_count(&h, "crm-orphan", Outcome::Failed), 1);
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SubmitCart"), Some(&1), "{counts:?}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_stage_another_worker_started_is_reconciled_not_sent() {
    use billflow::ledger::Entry;
    use billflow::store::StageRecord;
    use lapin::types::{AMQPValue, FieldTable};

    let mut h = Harness::start("orphan-started").await;
    orphaned_submit(&mut h, "crm-orphan-s").await;
    // The worker that lost it had written "started" to the shard's ledger, as every
    // worker does before a call it cannot repeat.
    h.topology
        .declare_ledgers(&h.connection, None)
        .await
        .unwrap();
    let started = Entry::Stage {
        worker: 1,
        command_id: "crm-orphan-s".into(),
        stage: "submit".into(),
        record: StageRecord::started(1),
    };
    let (body, signature) = Entry::encode(&[started], &h.signer());
    let shard = h.topology.shard_of("crm-orphan-s");
    let mut entry = billflow::broker::Outgoing::json("", &h.topology.ledger_stream(shard), body);
    let mut headers = FieldTable::default();
    headers.insert(
        Entry::signature_header().into(),
        AMQPValue::LongString(signature.into()),
    );
    entry.headers = headers;
    h.publisher.publish(entry).await.unwrap();

    let mut settings = h.worker_settings();
    settings.costguard.costguard_pinned_order_probes = true;
    let worker = h.spawn_worker_with(settings);
    h.wait_terminal(&["crm-orphan-s"]).await;
    assert_eq!(terminal_count(&h, "crm-orphan-s", Outcome::Parked), 1);
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SubmitCart"), None);
    assert_eq!(
        counts.get("getOrder"),
        Some(&1),
        "probed before parking: {counts:?}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_another_worker_scheduled_is_reconciled_not_sent() {
    use billflow::contract::message::StageMessage;

    let mut h = Harness::start("foreign-retry").await;
    // Attempt 2 of `submit`, scheduled by a worker whose attempt 1 ended with its outcome
    // unknown; this worker (after a hand-back) has never heard of it.
    let mut msg = StageMessage::decode(
        &serde_json::to_vec(&renewal(
            "crm-foreign",
            billflow::sim::costguard::ACTIVE_SERVICE,
        ))
        .unwrap(),
        None,
    )
    .unwrap();
    msg.stage = "submit".into();
    msg.attempt = 2;
    msg.outputs.insert(
        "create_cart".into(),
        json!({"cart": {"authenticated_key": "AuthKey", "id": 7002}}),
    );
    h.publisher
        .publish(msg.outgoing(&h.topology.work_queue_for("crm-foreign"), &h.signer()))
        .await
        .unwrap();

    let mut settings = h.worker_settings();
    settings.costguard.costguard_pinned_order_probes = true;
    let worker = h.spawn_worker_with(settings);
    h.wait_terminal(&["crm-foreign"]).await;
    assert_eq!(terminal_count(&h, "crm-foreign", Outcome::Parked), 1);
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SubmitCart"), None, "never re-sent blindly");
    assert_eq!(counts.get("getOrder"), Some(&1), "probed: {counts:?}");
    worker.stop().await;
}
