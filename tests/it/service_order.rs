//! `service_order.submit` end to end: real RabbitMQ, the Emersion simulator, the worker.

use crate::common;

use std::time::Duration;

use crate::common::Harness;
use billflow::contract::events::Outcome;
use billflow::sim::emersion as em;
use serde_json::{json, Value};

fn technical_contact() -> Value {
    json!({"type_id": 700001, "title": "Ms", "first_name": "Jane", "last_name": "Citizen",
           "date_of_birth": "1980-01-31", "email": "jane@example.com", "phone": "0299998888"})
}

fn command(id: &str, data: Value) -> Value {
    json!({"command_id": id, "type": "service_order.submit", "data": data})
}

/// A business-support sign-up (simple SQ) that meets every requirement of plan 300100.
fn simple_order(id: &str) -> Value {
    command(
        id,
        json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
            "sq": {"kind": "simple"},
            "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
            "configuration": [{"type_id": 500001, "value": "Head Office"}],
            "contacts": [technical_contact()],
            "accept_terms": true
        }),
    )
}

fn count(counts: &std::collections::BTreeMap<String, u64>, op: &str) -> u64 {
    counts.get(op).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_sq_sign_up_follows_the_seed_order() {
    let mut h = Harness::start("so-simple").await;
    let worker = h.spawn_worker();
    let mut cmd = simple_order("so-simple");
    cmd["data"]["account"] =
        json!({"username": em::ACTIVE_ACCOUNT_USERNAME, "password": em::ACTIVE_ACCOUNT_PASSWORD});
    cmd["data"]["package"] = json!({"external_name": "Business Support Basic"});
    cmd["data"]["note"] = json!({"subject": "CRM sign-up", "detail": "order so-simple"});
    cmd["data"]["payment"] = json!({"transaction_category": "Credit Card", "reference": "so-simple",
                                    "amount": "49.95", "transaction_date": "2026-11-22"});
    h.publish(&cmd).await;
    h.wait_terminal(&["so-simple"]).await;
    h.settle(Duration::from_millis(300)).await;

    assert_eq!(
        h.call_sequence().await,
        [
            "MyGetAccountFromUsernameAndPassword",
            "StartOrder",
            "PerformSimpleSQ",
            "GetAvailablePackages",
            "SelectPackagePlan",
            "GetServiceConfigurationRequirements",
            "GetServiceFeatureConfigurationRequirements",
            "GetServiceContactRequirements",
            "GetServiceIdentifierRequirements",
            "GetServiceIdentifierRealm",
            // Each Set stage reads the requirement it sets again (seed 000: they change).
            "GetServiceConfigurationRequirements",
            "SetServiceConfiguration",
            "GetServiceContactRequirements",
            "SetServiceContacts",
            "GetTermsAndConditions",
            "serviceList",
            "CompleteOrder",
            "serviceList",
            "serviceLookup",
            "AddNote",
            "CreatePayment"
        ]
    );
    let done = h.terminal("so-simple");
    assert_eq!(done.routing_key(), "workflow.service_order.completed");
    let outputs = done.data.output.unwrap();
    let completed = &outputs["complete_order"];
    assert!(completed["account_presale_id"].as_i64().unwrap() >= em::FIRST_PRESALE_ID);
    assert_eq!(completed["services"][0]["status"], "Preactive");
    assert!(outputs["create_payment"]["payment_id"].as_i64().is_some());
    let payment = h.call_bodies("CreatePayment").await;
    assert!(payment[0].contains("22 Nov 2026") && payment[0].contains("49.95"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_and_nwb_sign_ups_complete() {
    let mut h = Harness::start("so-kinds").await;
    let worker = h.spawn_worker();
    h.publish(&command(
        "so-phone",
        json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::PHONE_LINE_TYPE_ID,
            "sq": {"kind": "general_phone", "phone_number": "0299998888"},
            "package": {"plan_id": em::PHONE_BASIC_PLAN_ID},
            "configuration": [{"type_id": 500020, "value": "Unlisted"}]
        }),
    ))
    .await;
    h.publish(&command(
        "so-nwb",
        json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::NBN_TYPE_ID,
            "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
                   "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
            "package": {"external_name": "NBN 50"},
            "configuration": [{"type_id": 500010, "value": "MDM-1"}, {"type_id": 500011, "value": "2"}],
            // Today's feature shape: a value that is not a yes/no is the FeatureIdentifier.
            "features": [{"feature_id": 600010, "value": "203.0.113.7"}],
            "contacts": [technical_contact()],
            "identifier": {"username": "jane", "realm": "nbn.example.net", "password": "long-enough-1"},
            "accept_terms": true
        }),
    ))
    .await;
    h.wait_terminal(&["so-phone", "so-nwb"]).await;
    for id in ["so-phone", "so-nwb"] {
        let done = h.terminal(id);
        assert_eq!(
            done.data.outcome,
            Outcome::Completed,
            "{id}: {:?}",
            done.data.error
        );
    }
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "PerformGeneralPhoneSQ"), 1);
    assert_eq!(count(&counts, "FindNWBSQAddress"), 1);
    assert_eq!(count(&counts, "PerformNWBSQ"), 1);
    assert_eq!(count(&counts, "SetServiceIdentifier"), 1);
    assert_eq!(count(&counts, "CompleteOrder"), 2);
    let nwb = h.terminal("so-nwb").data.output.unwrap();
    assert_eq!(
        nwb["find_address"]["address"]["location_id"],
        "LOC000000000001"
    );
    // Both orders are the same account's and may complete together: each lists only the
    // service of its own package.
    for (id, service_type) in [
        ("so-phone", em::PHONE_LINE_TYPE_ID),
        ("so-nwb", em::NBN_TYPE_ID),
    ] {
        let output = h.terminal(id).data.output.unwrap();
        let services = output["complete_order"]["services"].as_array().unwrap();
        assert_eq!(services.len(), 1, "{id}: {output}");
        assert_eq!(services[0]["service_type_id"], service_type, "{id}");
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_perform_simple_sq_error_reaches_the_failed_event_verbatim() {
    let mut h = Harness::start("so-sqerr").await;
    let worker = h.spawn_worker();
    // (presale to continue, or None for a fresh StartOrder; service type; expected text)
    let cases: Vec<(Option<i64>, i64, String)> = vec![
        (
            Some(em::UNDEFINED_STATUS_PRESALE_ID),
            100100,
            "Undefined account status".into(),
        ),
        (
            Some(em::UNDEFINED_TYPE_PRESALE_ID),
            100100,
            "Undefined account type".into(),
        ),
        (
            Some(em::WHOLESALE_PRESALE_ID),
            100100,
            "Account Type is not eligible to create order".into(),
        ),
        (
            Some(em::CAN_NOT_ORDER_PRESALE_ID),
            100100,
            "Order creation is restricted for this account".into(),
        ),
        (
            Some(em::SUSPENDED_PRESALE_ID),
            100100,
            "This account is 'Suspended' - please contact your upstream provider".into(),
        ),
        (
            Some(em::RESTRICTED_PRESALE_ID),
            100100,
            "This account is 'Restricted' - please contact your upstream provider".into(),
        ),
        (Some(0), 100100, "Missing account presale id".into()),
        (Some(12345), 100100, "Invalid account presale id".into()),
        (Some(999999), 100100, "Undefined account presale".into()),
        (
            Some(em::COMPLETED_PRESALE_ID),
            100100,
            "Account presale is not valid for order".into(),
        ),
        (
            Some(em::PACKAGED_PRESALE_ID),
            100100,
            "Account presale already contain package plan".into(),
        ),
        (None, 0, "Missing service type id".into()),
        (None, 12345, "Invalid service type id".into()),
        (
            None,
            em::RETIRED_DIALUP_TYPE_ID,
            "Service type is not available for ordering".into(),
        ),
        (
            None,
            em::LEGACY_FAX_TYPE_ID,
            format!(
                "Missing service check type on service type id #{}",
                em::LEGACY_FAX_TYPE_ID
            ),
        ),
        (
            None,
            em::PHONE_LINE_TYPE_ID,
            format!(
                "Service type id #{} is not qualified for Simple SQ",
                em::PHONE_LINE_TYPE_ID
            ),
        ),
        (
            Some(em::PENDING_SQ_PRESALE_ID),
            100100,
            "Service Qualification for service type id #100100 is currently in pending status"
                .into(),
        ),
        (
            Some(em::PACKAGED_SQ_PRESALE_ID),
            100100,
            format!(
                "Service Qualification id #{} is not valid for deletion",
                em::PACKAGED_SQ_ID
            ),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (presale, service_type, _)) in cases.iter().enumerate() {
        let id = format!("so-sqerr-{i}");
        let mut cmd = simple_order(&id);
        cmd["data"]["service_type_id"] = json!(service_type);
        if let Some(presale) = presale {
            cmd["data"]["account_presale_id"] = json!(presale);
        }
        h.publish(&cmd).await;
        ids.push(id);
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&id_refs).await;
    for (id, (_, _, expected)) in ids.iter().zip(&cases) {
        let failed = h.terminal(id);
        assert_eq!(failed.data.outcome, Outcome::Failed, "{id}");
        assert_eq!(
            failed.data.reason.as_deref(),
            Some("permanent_error"),
            "{id}"
        );
        assert_eq!(
            failed.data.error.as_deref(),
            Some(expected.as_str()),
            "{id}"
        );
        let step = h
            .events_of(id)
            .into_iter()
            .find(|e| e.routing_key() == "step.service_order.simple_sq.failed")
            .cloned();
        assert!(step.is_some(), "{id} failed at PerformSimpleSQ");
    }
    let counts = h.call_counts().await;
    assert_eq!(
        count(&counts, "PerformSimpleSQ"),
        cases.len() as u64,
        "no retries of permanent errors"
    );
    assert_eq!(count(&counts, "SelectPackagePlan"), 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mandatory_configuration_is_rejected_before_any_set_call() {
    let mut h = Harness::start("so-reqs").await;
    let worker = h.spawn_worker();
    let mut cmd = simple_order("so-reqs");
    cmd["data"]["configuration"] = json!([{"type_id": 500002, "value": "Platinum"}]);
    cmd["data"]["contacts"] = json!([]);
    h.publish(&cmd).await;
    h.wait_terminal(&["so-reqs"]).await;

    let failed = h.terminal("so-reqs");
    assert_eq!(failed.data.outcome, Outcome::Failed);
    let error = failed.data.error.unwrap();
    for part in [
        "missing mandatory configuration 500001",
        "500002 (Support Tier) must be one of Gold/Silver",
        "0 contact(s) of type 700001",
    ] {
        assert!(error.contains(part), "{part} not in {error}");
    }
    let counts = h.call_counts().await;
    for op in [
        "SetServiceConfiguration",
        "SetServiceFeatures",
        "SetServiceContacts",
        "SetServiceIdentifier",
        "CompleteOrder",
    ] {
        assert_eq!(count(&counts, op), 0, "{op} must not be called: {counts:?}");
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_not_accepted_never_reach_complete_order() {
    let mut h = Harness::start("so-terms").await;
    let worker = h.spawn_worker();
    let mut cmd = simple_order("so-terms");
    cmd["data"]["accept_terms"] = json!(false);
    h.publish(&cmd).await;
    h.wait_terminal(&["so-terms"]).await;
    let failed = h.terminal("so-terms");
    assert_eq!(failed.data.outcome, Outcome::Failed);
    assert!(failed
        .data
        .error
        .unwrap()
        .contains("has not accepted the terms and conditions"));
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "GetTermsAndConditions"), 1);
    assert_eq!(count(&counts, "CompleteOrder"), 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_faults_are_retried_and_duplicates_select_once() {
    let mut h = Harness::start("so-retry").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "GetAvailablePackages", "kind": "soap_fault", "code": "Server", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    let cmd = simple_order("so-retry");
    h.publish(&cmd).await;
    h.publish(&cmd).await;
    h.wait_terminal(&["so-retry"]).await;
    h.settle(Duration::from_millis(500)).await;
    assert_eq!(h.terminal("so-retry").data.outcome, Outcome::Completed);
    let counts = h.call_counts().await;
    assert_eq!(
        count(&counts, "GetAvailablePackages"),
        2,
        "one fault, one retry"
    );
    assert_eq!(count(&counts, "StartOrder"), 1);
    assert_eq!(count(&counts, "SelectPackagePlan"), 1);
    assert_eq!(count(&counts, "CompleteOrder"), 1);
    worker.stop().await;
}

/// Kills the worker process while `operation` is held by the simulator, restarts it on
/// the same data dir, and waits for the command's terminal event.
async fn kill_during(h: &mut Harness, id: &str, operation: &str) {
    h.sim_post(
        "/_sim/faults",
        json!({"operation": operation, "kind": "latency", "ms": 3000, "count": 1}),
    )
    .await;
    let mut first = h.spawn_worker_process();
    h.publish(&simple_order(id)).await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h.call_counts().await.contains_key(operation) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{operation} never called: {}",
            h.worker_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let mut second = h.spawn_worker_process();
    h.wait_terminal(&[id]).await;
    h.settle(Duration::from_millis(300)).await;
    second.kill().expect("stop");
    second.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_select_completes_the_order_without_resending() {
    let mut h = Harness::start("so-kill").await;
    kill_during(&mut h, "so-kill", "GetTermsAndConditions").await;
    assert_eq!(h.terminal("so-kill").data.outcome, Outcome::Completed);
    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "StartOrder"), 1);
    assert_eq!(count(&counts, "SelectPackagePlan"), 1);
    assert_eq!(count(&counts, "CompleteOrder"), 1);
    assert_eq!(
        count(&counts, "GetTermsAndConditions"),
        2,
        "the interrupted read is repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_inside_complete_order_reconciles_from_the_account_services() {
    let mut h = Harness::start("so-killc").await;
    kill_during(&mut h, "so-killc", "CompleteOrder").await;
    // The restarted worker finds CompleteOrder started without a result: it waits for a
    // call in flight to land, compares the account's services (serviceList) with those
    // list_services saw before, and goes on from what that says.
    assert_eq!(h.terminal("so-killc").data.outcome, Outcome::Completed);
    let counts = h.call_counts().await;
    assert!(count(&counts, "serviceList") >= 2, "{counts:?}");
    assert_eq!(count(&counts, "SelectPackagePlan"), 1);
    let applied = h
        .calls()
        .await
        .into_iter()
        .filter(|c| c["operation"] == "CompleteOrder" && c["applied"] == true)
        .count();
    assert_eq!(applied, 1, "the order was completed exactly once");
    let completed = h.terminal("so-killc").data.output.unwrap();
    assert_eq!(
        completed["complete_order"]["services"][0]["status"],
        "Preactive"
    );
}
