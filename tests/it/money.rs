//! Odd amounts from CostGuard end to end: real RabbitMQ, the simulator printing whatever
//! Checkout text it is given, the worker. A renewal is tendered exactly its validated
//! amount due, or fails at `checkout` with the value in the error and no tender or submit.

use crate::common::{renewal, Harness};
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_checkout_amounts_fail_the_checkout_with_no_tender_or_submit() {
    let mut h = Harness::start("odd-amounts").await;
    // (Subtotal, TaxSubtotal, the value the error must quote); unset: the price points'.
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        (Some("-11.99"), None, "\"-11.99\""),
        (Some("14.349999999999"), None, "\"14.349999999999\""),
        (
            Some("79228162514264337593543950335"),
            None,
            "\"79228162514264337593543950335\"",
        ),
        (Some("1e5"), None, "\"1e5\""),
        (Some("NaN"), None, "\"NaN\""),
        (Some(""), None, "\"\""),
        (None, Some("1e5"), "\"1e5\""),
        (None, Some("-0.01"), "\"-0.01\""),
        // Each below the limit, their sum is not.
        (Some("999999999.99"), Some("0.01"), "\"999999999.99\""),
        // A zero-priced renewal is refused, not submitted untendered.
        (Some("0.00"), Some("0.00"), "\"0.00\""),
    ];
    let mut ids = Vec::new();
    for (i, (subtotal, tax, _)) in cases.iter().enumerate() {
        let number = format!("55500{i:05}");
        let mut checkout = json!({});
        if let Some(subtotal) = subtotal {
            checkout["subtotal"] = json!(subtotal);
        }
        if let Some(tax) = tax {
            checkout["tax_subtotal"] = json!(tax);
        }
        h.sim_post(
            "/_sim/services",
            json!({"service_number": number, "checkout": checkout}),
        )
        .await;
        let id = format!("crm-odd-{i}");
        h.publish(&renewal(&id, &number)).await;
        ids.push(id);
    }
    let worker = h.spawn_worker();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&id_refs).await;

    for (id, (subtotal, tax, quoted)) in ids.iter().zip(cases) {
        let events = h.events_of(id);
        let terminal = events
            .iter()
            .find(|e| e.is_terminal())
            .unwrap_or_else(|| panic!("{id}: no terminal event"));
        assert_eq!(
            terminal.data.outcome,
            Outcome::Failed,
            "{id} ({subtotal:?}, {tax:?}): {:?}",
            terminal.data.error
        );
        let failed_step = events
            .iter()
            .find(|e| e.routing_key() == "step.advancepay_renewal.checkout.failed")
            .unwrap_or_else(|| panic!("{id}: checkout did not fail"));
        let error = failed_step.data.error.clone().unwrap_or_default();
        assert!(
            error.contains(quoted),
            "{id}: the error names the value {quoted}: {error}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e.data.stage.as_deref(), Some("tender" | "submit"))),
            "{id}: no tender or submit stage ran"
        );
    }

    let counts = h.call_counts().await;
    assert_eq!(counts.get("Checkout").copied(), Some(cases.len() as u64));
    assert_eq!(counts.get("ModifyCart"), None, "no tender: {counts:?}");
    assert_eq!(counts.get("SubmitCart"), None, "no submit: {counts:?}");
    let state = h.sim_get("/_sim/state").await;
    let carts = state["carts"].as_array().unwrap();
    assert_eq!(carts.len(), cases.len());
    assert!(carts
        .iter()
        .all(|c| c["submitted"] == false && c["tenders"] == json!([])));

    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), cases.len());
    for d in &dead {
        assert_eq!(d.envelope.reason, Some(DeadReason::PermanentError));
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_renewal_tenders_exactly_the_validated_amount_due() {
    let mut h = Harness::start("money-normal").await;
    // Trailing zeros are the same amount: tendered as 14.34.
    h.sim_post(
        "/_sim/services",
        json!({"service_number": "5550100000",
               "checkout": {"subtotal": "11.990", "tax_subtotal": "2.35"}}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-money-seed",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.publish(&renewal("crm-money-zeros", "5550100000")).await;
    h.wait_terminal(&["crm-money-seed", "crm-money-zeros"])
        .await;

    for id in ["crm-money-seed", "crm-money-zeros"] {
        let done = h
            .events_of(id)
            .into_iter()
            .find(|e| e.is_terminal())
            .cloned()
            .unwrap();
        assert_eq!(done.data.outcome, Outcome::Completed, "{id}: {done:?}");
        let outputs = done.data.output.unwrap();
        assert_eq!(outputs["checkout"]["amount_due"], "14.34", "{id}");
        assert_eq!(outputs["tender"]["amount"], "14.34", "{id}");
    }
    let tenders = h.call_bodies("ModifyCart").await;
    assert_eq!(tenders.len(), 2);
    for body in &tenders {
        assert!(body.contains("<Amount>14.34</Amount>"), "{body}");
    }
    worker.stop().await;
}
