//! Whole packages (seed 000: "for each service contained in a package"): every service of
//! the selected package gets its SQ, its requirements and its values, against the real
//! broker and the simulator's two-service bundle (an NBN service and a phone line).

use std::time::Duration;

use crate::common::{self, Harness};
use billflow::contract::events::Outcome;
use billflow::sim::emersion as em;
use serde_json::{json, Value};

fn bundle_order(id: &str, services: Value) -> Value {
    json!({"command_id": id, "type": "service_order.submit", "data": {
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "service_type_id": em::NBN_TYPE_ID,
        "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
               "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
        "package": {"plan_id": em::NBN_PHONE_BUNDLE_PLAN_ID},
        "configuration": [{"type_id": em::MODEM_SERIAL_PROPERTY_ID, "value": "MDM-7"}],
        "contacts": [{"type_id": em::TECHNICAL_CONTACT_TYPE_ID, "first_name": "Jane",
                      "last_name": "Citizen"}],
        "identifier": {"username": "jane", "realm": em::NBN_REALMS[0], "password": "long-enough-1"},
        "services": services,
        "accept_terms": true
    }})
}

fn phone_values() -> Value {
    json!([{"service_type_id": em::PHONE_LINE_TYPE_ID,
            "sq": {"kind": "general_phone", "transfer_type": "new"},
            "configuration": [{"type_id": em::DIRECTORY_LISTING_PROPERTY_ID, "value": "Unlisted"}]}])
}

fn position(sequence: &[String], op: &str) -> usize {
    sequence
        .iter()
        .position(|s| s == op)
        .unwrap_or_else(|| panic!("{op} never called: {sequence:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_of_the_package_is_qualified_and_configured() {
    let mut h = Harness::start("pkg-whole").await;
    let worker = h.spawn_worker();
    h.publish(&bundle_order("pkg-whole", phone_values())).await;
    h.wait_terminal(&["pkg-whole"]).await;
    h.settle(Duration::from_millis(300)).await;

    let done = h.terminal("pkg-whole");
    assert_eq!(
        done.data.outcome,
        Outcome::Completed,
        "{:?}",
        done.data.error
    );
    let sequence = h.call_sequence().await;
    // The phone line's SQ comes after the packages are known and before the selection.
    assert!(
        position(&sequence, "GetAvailablePackages") < position(&sequence, "PerformGeneralPhoneSQ")
            && position(&sequence, "PerformGeneralPhoneSQ")
                < position(&sequence, "SelectPackagePlan"),
        "{sequence:?}"
    );
    // Each service's configuration went to its own SQ.
    let sets = h.call_bodies("SetServiceConfiguration").await;
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert!(sets
        .iter()
        .any(|b| b.contains("MDM-7") && !b.contains("Unlisted")));
    assert!(sets
        .iter()
        .any(|b| b.contains("Unlisted") && !b.contains("MDM-7")));
    // get_requirements read both plans; each Set stage read its requirement again.
    let reads = h.call_bodies("GetServiceConfigurationRequirements").await;
    for plan in [em::NBN_SERVICE_PLAN_ID, em::PHONE_SERVICE_PLAN_ID] {
        let of_plan = reads
            .iter()
            .filter(|b| b.contains(&format!(">{plan}<")))
            .count();
        assert_eq!(of_plan, 2, "plan {plan}: {reads:?}");
    }
    let output = done.data.output.unwrap();
    let services = output["complete_order"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{output}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_service_without_its_values_fails_before_any_set_call() {
    let mut h = Harness::start("pkg-missing").await;
    let worker = h.spawn_worker();
    let sq_only = json!([{"service_type_id": em::PHONE_LINE_TYPE_ID,
                          "sq": {"kind": "general_phone", "transfer_type": "new"}}]);
    h.publish(&bundle_order("pkg-missing", sq_only)).await;
    h.publish(&bundle_order(
        "pkg-unknown",
        json!([{"service_type_id": em::WEB_HOSTING_TYPE_ID}]),
    ))
    .await;
    // Without an SQ of its own the phone line gets a simple SQ, which the platform refuses.
    h.publish(&bundle_order("pkg-no-sq", json!([]))).await;
    h.wait_terminal(&["pkg-missing", "pkg-unknown", "pkg-no-sq"])
        .await;
    h.settle(Duration::from_millis(300)).await;

    let missing = h.terminal("pkg-missing");
    assert_eq!(missing.data.outcome, Outcome::Failed);
    let error = missing.data.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "service plan {}: missing mandatory configuration {}",
            em::PHONE_SERVICE_PLAN_ID,
            em::DIRECTORY_LISTING_PROPERTY_ID
        )),
        "{error}"
    );
    let unknown = h.terminal("pkg-unknown").data.error.unwrap_or_default();
    assert!(
        unknown.contains(&format!(
            "names service type {}, which package {} does not hold",
            em::WEB_HOSTING_TYPE_ID,
            em::NBN_PHONE_BUNDLE_PLAN_ID
        )),
        "{unknown}"
    );
    assert_eq!(
        h.terminal("pkg-no-sq").data.error.as_deref(),
        Some("Service type id #100300 is not qualified for Simple SQ")
    );
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SetServiceConfiguration"), None, "{counts:?}");
    assert_eq!(counts.get("CompleteOrder"), None, "{counts:?}");
    worker.stop().await;
}

/// Seed 000: Emersion changes requirements without notice. A Set stage that failed is
/// replayed after the requirements changed: it judges the command by today's requirements
/// (a clear error naming the new mandatory value), and once the command carries that
/// value, the replay completes the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_set_stage_reads_the_requirements_again() {
    let mut h = Harness::start("pkg-replay").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "SetServiceConfiguration", "kind": "business_error",
               "message": "Missing required properties", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&bundle_order("pkg-replay", phone_values())).await;
    h.wait_terminal(&["pkg-replay"]).await;
    assert_eq!(
        h.terminal("pkg-replay").data.error.as_deref(),
        Some("Missing required properties")
    );
    // The platform now wants the NBN service's port too.
    let changed = h
        .sim_post(
            "/_sim/emersion/requirements",
            json!({"service_plan_id": em::NBN_SERVICE_PLAN_ID,
                   "property_type_id": em::PORT_PROPERTY_ID, "mandatory": true}),
        )
        .await;
    assert_eq!(changed, json!({"changed": true}));

    let letter = dead_letter_id(&h, "pkg-replay");
    let (ok, _, err) = common::dlq_cli(&h, &["replay", &letter]);
    assert!(ok, "{err}");
    let error = wait_error(&mut h, "pkg-replay", 2).await;
    assert!(
        error.contains(&format!(
            "service plan {}: missing mandatory configuration {} (Port)",
            em::NBN_SERVICE_PLAN_ID,
            em::PORT_PROPERTY_ID
        )),
        "{error}"
    );
    assert_eq!(
        h.call_bodies("SetServiceConfiguration").await.len(),
        1,
        "nothing was set against stale requirements"
    );

    let letter = dead_letter_id(&h, "pkg-replay");
    let configuration = json!([
        {"type_id": em::MODEM_SERIAL_PROPERTY_ID, "value": "MDM-7"},
        {"type_id": em::PORT_PROPERTY_ID, "value": "2"}
    ]);
    let set = format!("data.configuration={configuration}");
    let (ok, _, err) = common::dlq_cli(&h, &["edit", &letter, "--set", &set]);
    assert!(ok, "{err}");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h
        .events_of("pkg-replay")
        .iter()
        .any(|e| e.is_terminal() && e.data.outcome == Outcome::Completed)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fixed replay never completed"
        );
        h.settle(Duration::from_millis(200)).await;
    }
    let counts = h.call_counts().await;
    assert_eq!(counts.get("SelectPackagePlan"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("CompleteOrder"), Some(&1), "{counts:?}");
    worker.stop().await;
}

/// The id `billflow dlq list` gives the command's dead letter.
fn dead_letter_id(h: &Harness, command_id: &str) -> String {
    let (ok, list, err) = common::dlq_cli(h, &["list"]);
    assert!(ok, "{err}");
    list.lines()
        .find(|l| l.contains(command_id))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dead letter of {command_id}: {list}"))
        .to_string()
}

/// The error of the `nth` failed terminal event of the command, once it arrives.
async fn wait_error(h: &mut Harness, command_id: &str, nth: usize) -> String {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let failed: Vec<String> = h
            .events_of(command_id)
            .into_iter()
            .filter(|e| e.is_terminal() && e.data.outcome == Outcome::Failed)
            .filter_map(|e| e.data.error.clone())
            .collect();
        if failed.len() >= nth {
            return failed[nth - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure #{nth} of {command_id}"
        );
        h.settle(Duration::from_millis(200)).await;
    }
}

/// CompleteOrder answers only a Status, so the services it created are the account's new
/// ones. Another order of the same account completing while this one is in CompleteOrder
/// adds services too: only those of this order's package are this order's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_created_services_are_those_of_the_order_s_own_package() {
    let mut h = Harness::start("pkg-mine").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CompleteOrder", "kind": "latency", "ms": 2500, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    let phone = json!({"command_id": "pkg-mine-phone", "type": "service_order.submit", "data": {
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "service_type_id": em::PHONE_LINE_TYPE_ID,
        "sq": {"kind": "general_phone", "phone_number": "0299998888"},
        "package": {"plan_id": em::PHONE_BASIC_PLAN_ID},
        "configuration": [{"type_id": em::DIRECTORY_LISTING_PROPERTY_ID, "value": "Unlisted"}]}});
    h.publish(&phone).await;
    // The phone order is held inside CompleteOrder, after list_services saw the account.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h.call_counts().await.contains_key("CompleteOrder") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "CompleteOrder never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let support = json!({"command_id": "pkg-mine-support", "type": "service_order.submit", "data": {
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
        "configuration": [{"type_id": em::SITE_NAME_PROPERTY_ID, "value": "HQ"}],
        "contacts": [{"type_id": em::TECHNICAL_CONTACT_TYPE_ID, "first_name": "Jane",
                      "last_name": "Citizen"}],
        "accept_terms": true}});
    h.publish(&support).await;
    let seen = h
        .wait_terminal(&["pkg-mine-support", "pkg-mine-phone"])
        .await;
    let order: Vec<&str> = seen
        .iter()
        .filter(|e| e.is_terminal())
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(
        order,
        ["pkg-mine-support", "pkg-mine-phone"],
        "the support order completed while the phone order was in CompleteOrder"
    );
    for (id, service_type) in [
        ("pkg-mine-phone", em::PHONE_LINE_TYPE_ID),
        ("pkg-mine-support", em::BUSINESS_SUPPORT_TYPE_ID),
    ] {
        let output = h.terminal(id).data.output.unwrap();
        let services = output["complete_order"]["services"].as_array().unwrap();
        assert_eq!(services.len(), 1, "{id}: {output}");
        assert_eq!(services[0]["service_type_id"], service_type, "{id}");
    }
    worker.stop().await;
}
