//! A resumed order (issue 13, part 5): with `account_presale_id` and
//! `account_presale_sq_id` of an order already started on the platform, the worker skips
//! StartOrder and the SQ, takes SelectPackagePlan's refusal of a repeat as done when the
//! presale holds the requested package, and completes the order; a presale without a
//! package gets it selected; a presale holding another package fails the order.

use std::time::Duration;

use crate::common::Harness;
use billflow::billing::emersion::{wire, EmersionAuth, EmersionClient, EmersionConfig};
use billflow::config::DEFAULT_MAX_RESPONSE_BYTES;
use billflow::contract::events::{CloudEvent, Outcome};
use billflow::secret::Secret;
use billflow::sim::emersion as em;
use serde_json::{json, Value};

/// A business-support order continuing `presale` at `sq`, for package `plan`, meeting
/// every requirement of service plan 300100.
fn resumed(id: &str, presale: i64, sq: i64, plan: i64) -> Value {
    json!({"command_id": id, "type": "service_order.submit", "data": {
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "account_presale_id": presale,
        "account_presale_sq_id": sq,
        "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": plan},
        "configuration": [{"type_id": em::SITE_NAME_PROPERTY_ID, "value": "Head Office"}],
        "contacts": [{"type_id": em::TECHNICAL_CONTACT_TYPE_ID, "first_name": "Jane",
                      "last_name": "Citizen", "email": "jane@example.com"}],
        "accept_terms": true
    }})
}

fn terminal(h: &Harness, id: &str) -> CloudEvent {
    let terminals: Vec<CloudEvent> = h
        .events_of(id)
        .into_iter()
        .filter(|e| e.is_terminal())
        .cloned()
        .collect();
    assert_eq!(terminals.len(), 1, "exactly one terminal event for {id}");
    terminals.into_iter().next().unwrap()
}

/// The calls of command `id` (its stages send `Idempotency-Key: id/stage`).
async fn calls_of(h: &Harness, id: &str) -> Vec<Value> {
    let prefix = format!("{id}/");
    h.calls()
        .await
        .into_iter()
        .filter(|c| {
            c["idempotency_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&prefix))
        })
        .collect()
}

/// (calls, of which applied) of `operation` among `calls`.
fn sent(calls: &[Value], operation: &str) -> (usize, usize) {
    let of_op: Vec<&Value> = calls
        .iter()
        .filter(|c| c["operation"] == operation)
        .collect();
    let applied = of_op.iter().filter(|c| c["applied"] == true).count();
    (of_op.len(), applied)
}

async fn presale_state(h: &Harness, presale_id: i64) -> Value {
    let state = h.sim_get("/_sim/state").await;
    state["emersion"]["presales"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["presale_id"] == presale_id)
        .cloned()
        .unwrap_or_else(|| panic!("presale {presale_id} not in the simulator"))
}

/// The platform as another system reaches it (the simulator's plain listener with its
/// UsernameToken), to start an order the worker then resumes.
fn platform(h: &Harness) -> EmersionClient {
    EmersionClient::new(EmersionConfig {
        base_url: h.sim_url.clone(),
        auth: EmersionAuth::WsSecurity {
            username: em::SIM_USERNAME.to_string(),
            password: Secret::new(em::SIM_PASSWORD),
        },
        timeout: Duration::from_secs(10),
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_order_with_its_package_selected_skips_what_is_done_and_completes() {
    let mut h = Harness::start("rs-held").await;
    let worker = h.spawn_worker();
    let id = "rs-held";
    h.publish(&resumed(
        id,
        em::PACKAGED_PRESALE_ID,
        em::PACKAGED_PRESALE_SQ_ID,
        em::BUSINESS_SUPPORT_BASIC_PLAN_ID,
    ))
    .await;
    h.wait_terminal(&[id]).await;
    h.settle(Duration::from_millis(300)).await;

    let done = terminal(&h, id);
    assert_eq!(
        done.data.outcome,
        Outcome::Completed,
        "{:?}",
        done.data.error
    );
    let calls = calls_of(&h, id).await;
    for op in [
        "StartOrder",
        "PerformSimpleSQ",
        "PerformGeneralPhoneSQ",
        "PerformNWBSQ",
    ] {
        assert_eq!(sent(&calls, op), (0, 0), "{op} must be skipped");
    }
    assert_eq!(
        sent(&calls, "SelectPackagePlan"),
        (1, 0),
        "SelectPackagePlan is sent and refused as a repeat"
    );
    assert_eq!(sent(&calls, "CompleteOrder"), (1, 1));
    // The Set calls configured the SQ the command named.
    let config = calls
        .iter()
        .find(|c| c["operation"] == "SetServiceConfiguration")
        .expect("SetServiceConfiguration sent");
    assert!(config["body"]
        .as_str()
        .unwrap()
        .contains(&format!(">{}<", em::PACKAGED_PRESALE_SQ_ID)));

    let output = done.data.output.clone().unwrap();
    assert_eq!(
        output["select_package"]["package"]["id"],
        em::BUSINESS_SUPPORT_BASIC_PLAN_ID
    );
    let completed = &output["complete_order"];
    assert_eq!(completed["account_presale_id"], em::PACKAGED_PRESALE_ID);
    assert_eq!(completed["services"][0]["status"], "Preactive");
    let stages: Vec<String> = h.events_of(id).iter().map(|e| e.routing_key()).collect();
    assert!(
        !stages
            .iter()
            .any(|k| k.contains(".start_order.") || k.contains("_sq.")),
        "{stages:?}"
    );

    let presale = presale_state(&h, em::PACKAGED_PRESALE_ID).await;
    assert_eq!(presale["completed"], true);
    assert_eq!(
        presale["package_plan_id"],
        em::BUSINESS_SUPPORT_BASIC_PLAN_ID
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_order_without_a_package_selects_the_requested_one() {
    let mut h = Harness::start("rs-open").await;
    let platform = platform(&h);
    let presale = platform
        .call(&wire::StartOrder {
            account_id: em::ACTIVE_ACCOUNT_ID,
            purchase_order: None,
            promo_code: None,
        })
        .await
        .unwrap();
    let sq = platform
        .call(&wire::PerformSimpleSQ {
            account_presale_id: presale,
            service_type_id: em::BUSINESS_SUPPORT_TYPE_ID,
        })
        .await
        .unwrap();
    let worker = h.spawn_worker();
    let id = "rs-open";
    h.publish(&resumed(id, presale, sq, em::BUSINESS_SUPPORT_PLUS_PLAN_ID))
        .await;
    h.wait_terminal(&[id]).await;
    h.settle(Duration::from_millis(300)).await;

    let done = terminal(&h, id);
    assert_eq!(
        done.data.outcome,
        Outcome::Completed,
        "{:?}",
        done.data.error
    );
    let calls = calls_of(&h, id).await;
    assert_eq!(sent(&calls, "StartOrder"), (0, 0));
    assert_eq!(sent(&calls, "PerformSimpleSQ"), (0, 0));
    assert_eq!(sent(&calls, "SelectPackagePlan"), (1, 1));
    assert_eq!(sent(&calls, "CompleteOrder"), (1, 1));
    let state = presale_state(&h, presale).await;
    assert_eq!(state["package_plan_id"], em::BUSINESS_SUPPORT_PLUS_PLAN_ID);
    assert_eq!(state["completed"], true);
    assert_eq!(state["sqs"][0]["sq_id"], sq);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_order_naming_another_package_fails_and_changes_nothing() {
    let mut h = Harness::start("rs-other").await;
    let worker = h.spawn_worker();
    let id = "rs-other";
    h.publish(&resumed(
        id,
        em::PACKAGED_PRESALE_ID,
        em::PACKAGED_PRESALE_SQ_ID,
        em::BUSINESS_SUPPORT_PLUS_PLAN_ID,
    ))
    .await;
    h.wait_terminal(&[id]).await;
    h.settle(Duration::from_millis(300)).await;

    let failed = terminal(&h, id);
    assert_eq!(failed.data.outcome, Outcome::Failed);
    assert_eq!(failed.data.reason.as_deref(), Some("permanent_error"));
    let error = failed.data.error.unwrap();
    assert!(
        error.contains(&format!(
            "Business Support Basic ({})",
            em::BUSINESS_SUPPORT_BASIC_PLAN_ID
        )),
        "the error names the package the presale holds: {error}"
    );
    let calls = calls_of(&h, id).await;
    assert!(
        calls.iter().all(|c| c["applied"] == false),
        "nothing changed on the platform: {calls:?}"
    );
    for op in [
        "SetServiceConfiguration",
        "SetServiceContacts",
        "CompleteOrder",
    ] {
        assert_eq!(sent(&calls, op), (0, 0), "{op}");
    }
    let presale = presale_state(&h, em::PACKAGED_PRESALE_ID).await;
    assert_eq!(
        presale["package_plan_id"],
        em::BUSINESS_SUPPORT_BASIC_PLAN_ID
    );
    assert_eq!(presale["completed"], false);
    assert_eq!(presale["sqs"][0]["configuration"], json!({}));
    worker.stop().await;
}
