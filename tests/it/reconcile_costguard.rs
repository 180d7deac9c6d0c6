//! CostGuard stages whose outcome is unknown, reconciled with IDI's documented
//! serviceItemSummary (renew, restore_add_item), or with the pinned order read only when
//! COSTGUARD_PINNED_ORDER_PROBES is on (tender, submit); else they park.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{renewal, Harness};
use billflow::billing::costguard::rest::{paths, ServiceItemSummaries, ServiceItemSummary};
use billflow::config::WorkerSettings;
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use billflow::sim::costguard::{
    ACTIVE_SERVICE, ACTIVE_SERVICE_ID, HOTLINED_SERVICE, HOTLINED_SERVICE_ID,
};
use serde_json::{json, Value};

/// A worker that gives up on a call after a second, the pinned read on or off.
fn settings(h: &Harness, pinned_order_probes: bool) -> WorkerSettings {
    let mut settings = h.worker_settings();
    settings.costguard.costguard_timeout = Duration::from_secs(1);
    settings.costguard.costguard_pinned_order_probes = pinned_order_probes;
    settings
}

async fn fault(h: &Harness, fault: Value) {
    h.sim_post("/_sim/faults", fault).await;
}

fn terminal(h: &Harness, id: &str) -> Outcome {
    let terminals: Vec<Outcome> = h
        .events_of(id)
        .iter()
        .filter(|e| e.is_terminal())
        .map(|e| e.data.outcome)
        .collect();
    assert_eq!(terminals.len(), 1, "{id}: {terminals:?}");
    terminals[0]
}

fn outputs(h: &Harness, id: &str) -> Value {
    let last = h.events_of(id).last().copied().cloned().unwrap();
    last.data.output.unwrap()
}

/// (sent, applied by idempotency key) of `operation` in the simulator's call log.
async fn sent_and_applied(h: &Harness, operation: &str) -> (usize, BTreeMap<String, u64>) {
    let mut sent = 0;
    let mut applied = BTreeMap::new();
    for call in h.calls().await {
        if call["operation"] != operation {
            continue;
        }
        sent += 1;
        if call["applied"] == true {
            let key = call["idempotency_key"].as_str().unwrap_or("(none)");
            *applied.entry(key.to_string()).or_insert(0) += 1;
        }
    }
    (sent, applied)
}

fn count(counts: &BTreeMap<String, u64>, operation: &str) -> u64 {
    counts.get(operation).copied().unwrap_or(0)
}

async fn service_items(h: &Harness, order_id: i64, token: Option<&str>) -> reqwest::Response {
    let url = format!(
        "{}{}",
        h.sim_url,
        paths::service_item_summary("test", order_id)
    );
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("WRAP access_token=\"{token}\""));
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_applied_but_unanswered_is_settled_by_the_service_item_summary() {
    let mut h = Harness::start("cg-renew-lost").await;
    // Both take effect; one answer never comes, the other is a proxy's 504.
    fault(
        &h,
        json!({"operation": "renewAdvancePay", "kind": "drop_response", "count": 1}),
    )
    .await;
    fault(
        &h,
        json!({"operation": "renewAdvancePay", "kind": "error_after_commit", "status": 504, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker_with(settings(&h, false));
    h.publish(&renewal("crm-lost-1", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-lost-1"]).await;
    h.publish(&renewal("crm-lost-2", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-lost-2"]).await;
    h.settle(Duration::from_millis(300)).await;

    for id in ["crm-lost-1", "crm-lost-2"] {
        assert_eq!(terminal(&h, id), Outcome::Completed, "{id}");
        let unknown: Vec<String> = h
            .events_of(id)
            .iter()
            .filter(|e| e.data.outcome == Outcome::Retrying)
            .map(|e| e.data.error.clone().unwrap_or_default())
            .collect();
        assert!(
            unknown.len() == 1 && unknown[0].contains("renewAdvancePay"),
            "{id}: {unknown:?}"
        );
        let outputs = outputs(&h, id);
        assert_eq!(outputs["renew"]["renewed_product_count"], 1, "{outputs}");
        assert_eq!(outputs["tender"]["amount"], "14.34");
    }
    let (sent, applied) = sent_and_applied(&h, "renewAdvancePay").await;
    assert_eq!(sent, 2, "never re-sent");
    assert_eq!(
        applied,
        BTreeMap::from([
            ("crm-lost-1/renew".to_string(), 1),
            ("crm-lost-2/renew".to_string(), 1)
        ])
    );
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "serviceItemSummary"), 2, "{counts:?}");
    assert_eq!(count(&counts, "getOrder"), 0, "no pinned read: {counts:?}");
    assert_eq!(count(&counts, "SubmitCart"), 2, "{counts:?}");

    // The probe's output names the item the order holds, as renewAdvancePay's answer does.
    let order_id = outputs(&h, "crm-lost-1")["create_cart"]["cart"]["id"]
        .as_i64()
        .unwrap();
    let page: ServiceItemSummaries = service_items(&h, order_id, Some("t"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.count, Some(1));
    assert_eq!(
        page.value,
        [ServiceItemSummary {
            service_information_item_id: outputs(&h, "crm-lost-1")["renew"]
                ["service_information_item_id"]
                .as_i64()
                .unwrap(),
            service_id: ACTIVE_SERVICE_ID,
            service_number: Some(ACTIVE_SERVICE.into()),
        }]
    );
    assert!(h.drain_dead().await.is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_did_not_apply_is_sent_once_more() {
    let mut h = Harness::start("cg-renew-notlanded").await;
    // Held past the client's deadline, then a gateway 504, never applied.
    fault(
        &h,
        json!({"operation": "renewAdvancePay", "kind": "timeout", "ms": 1500, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker_with(settings(&h, false));
    h.publish(&renewal("crm-notlanded", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-notlanded"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(terminal(&h, "crm-notlanded"), Outcome::Completed);
    let (sent, applied) = sent_and_applied(&h, "renewAdvancePay").await;
    assert_eq!(sent, 2, "sent again once after the probe");
    assert_eq!(
        applied,
        BTreeMap::from([("crm-notlanded/renew".to_string(), 1)])
    );
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "serviceItemSummary"), 1, "{counts:?}");
    let order_id = outputs(&h, "crm-notlanded")["create_cart"]["cart"]["id"]
        .as_i64()
        .unwrap();
    let page: ServiceItemSummaries = service_items(&h, order_id, Some("t"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.value.len(), 1, "one item however it was reached");

    // An unknown order is a 404 in IDI's error shape; no token is a 401.
    let missing = service_items(&h, 999_999, Some("t")).await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "Order");
    assert_eq!(service_items(&h, order_id, None).await.status(), 401);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_item_applied_but_unanswered_is_settled_by_the_service_item_summary() {
    let mut h = Harness::start("cg-restore-lost").await;
    // The first ModifyCart is the restore item.
    fault(
        &h,
        json!({"operation": "ModifyCart", "kind": "drop_response", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker_with(settings(&h, false));
    h.publish(&renewal("crm-restore-lost", HOTLINED_SERVICE))
        .await;
    h.wait_terminal(&["crm-restore-lost"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(terminal(&h, "crm-restore-lost"), Outcome::Completed);
    let (sent, applied) = sent_and_applied(&h, "ModifyCart").await;
    assert_eq!(sent, 2, "the restore item once, the tender once");
    assert_eq!(
        applied,
        BTreeMap::from([
            ("crm-restore-lost/restore_add_item".to_string(), 1),
            ("crm-restore-lost/tender".to_string(), 1)
        ])
    );
    let restored = &outputs(&h, "crm-restore-lost")["restore_add_item"]["service_details"][0];
    assert_eq!(restored["service_id"], HOTLINED_SERVICE_ID);
    assert_eq!(restored["service_number"], HOTLINED_SERVICE);
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "serviceItemSummary"), 1, "{counts:?}");
    assert_eq!(count(&counts, "getOrder"), 0, "{counts:?}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tender_with_an_unknown_outcome_parks_without_the_pinned_read() {
    let mut h = Harness::start("cg-tender-park").await;
    fault(
        &h,
        json!({"operation": "ModifyCart", "kind": "drop_response", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker_with(settings(&h, false));
    h.publish(&renewal("crm-tender-park", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-tender-park"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(terminal(&h, "crm-tender-park"), Outcome::Parked);
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.reason, Some(DeadReason::OutcomeUnknown));
    assert_eq!(dead[0].envelope.stage.as_deref(), Some("tender"));
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "ModifyCart"), 1, "never re-sent: {counts:?}");
    assert_eq!(count(&counts, "getOrder"), 0, "the pin is off: {counts:?}");
    assert_eq!(count(&counts, "SubmitCart"), 0, "{counts:?}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tender_with_an_unknown_outcome_is_reconciled_with_the_pinned_read_when_set() {
    let mut h = Harness::start("cg-tender-pinned").await;
    fault(
        &h,
        json!({"operation": "ModifyCart", "kind": "drop_response", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker_with(settings(&h, true));
    h.publish(&renewal("crm-tender-pinned", ACTIVE_SERVICE))
        .await;
    h.wait_terminal(&["crm-tender-pinned"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(terminal(&h, "crm-tender-pinned"), Outcome::Completed);
    assert_eq!(
        outputs(&h, "crm-tender-pinned")["tender"]["amount"],
        "14.34"
    );
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "ModifyCart"), 1, "never re-sent: {counts:?}");
    assert_eq!(count(&counts, "getOrder"), 1, "one pinned read: {counts:?}");
    assert_eq!(count(&counts, "SubmitCart"), 1, "{counts:?}");
    assert!(h.drain_dead().await.is_empty());
    worker.stop().await;
}
