//! `data.account.new`: a customer without an account is created, then signed up, against
//! the real broker and the simulator. Account creation is non-idempotent: never twice.

use std::time::Duration;

use crate::common::Harness;
use billflow::contract::events::Outcome;
use billflow::sim::emersion as em;
use serde_json::{json, Value};

const PORTAL_PASSWORD: &str = "portal-Secret-8841";

fn new_customer(id: &str, username: Option<&str>) -> Value {
    let mut new = json!({
        "account_type": "End User", "title": "Ms", "first_name": "Jo", "last_name": "Citizen",
        "email": "jo@example.com", "mobile": "0412345678", "date_of_birth": "1990-02-03",
        "address": {"street_number": "1", "street_name": "George", "street_type": "St",
                    "suburb": "Sydney", "state": "NSW", "postcode": "2000"},
        "reference": id
    });
    if let Some(username) = username {
        new["portal_login"] = json!({"username": username, "password": PORTAL_PASSWORD});
    }
    json!({"command_id": id, "type": "service_order.submit", "data": {
        "account": {"new": new},
        "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
        "configuration": [{"type_id": 500001, "value": "Head Office"}],
        "contacts": [{"type_id": 700001, "title": "Ms", "first_name": "Jo", "last_name": "Citizen",
                      "date_of_birth": "1990-02-03", "email": "jo@example.com", "phone": "0299998888"}],
        "accept_terms": true
    }})
}

/// The simulator's accounts whose portal username is `username`.
async fn accounts_named(h: &Harness, username: &str) -> Vec<Value> {
    let state = h.sim_get("/_sim/state").await;
    state["emersion"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["username"] == username)
        .cloned()
        .collect()
}

fn count(counts: &std::collections::BTreeMap<String, u64>, op: &str) -> u64 {
    counts.get(op).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_customer_is_created_then_signed_up_with_the_new_account() {
    let mut h = Harness::start("nc-signup").await;
    let worker = h.spawn_worker();
    h.publish(&new_customer("nc-signup", Some("jo.citizen")))
        .await;
    h.wait_terminal(&["nc-signup"]).await;
    h.settle(Duration::from_millis(300)).await;

    let sequence = h.call_sequence().await;
    assert_eq!(
        sequence[..3],
        [
            "CheckUsernameAvailability",
            "CreateComplexAccount",
            "StartOrder"
        ],
        "{sequence:?}"
    );
    let created = accounts_named(&h, "jo.citizen").await;
    assert_eq!(created.len(), 1, "{created:?}");
    let account_id = created[0]["account_id"].as_i64().unwrap();
    assert!(account_id >= em::FIRST_ACCOUNT_ID);

    let done = h.terminal("nc-signup");
    assert_eq!(done.data.outcome, Outcome::Completed);
    let output = done.data.output.clone().unwrap();
    assert_eq!(output["create_account"]["account_id"], account_id);
    let start = h.call_bodies("StartOrder").await;
    assert!(
        start[0].contains(&format!(">{account_id}<")),
        "StartOrder orders for the new account: {}",
        start[0]
    );
    // The portal password went to CreateComplexAccount only, and is nowhere else.
    let events = serde_json::to_string(&h.events_of("nc-signup")).unwrap();
    assert!(
        !events.contains(PORTAL_PASSWORD),
        "an event holds the password"
    );
    let calls = serde_json::to_string(&h.calls().await).unwrap();
    assert!(!calls.contains(PORTAL_PASSWORD), "the call log holds it");
    worker.stop().await;
    assert!(!h.worker_log().contains(PORTAL_PASSWORD), "a log holds it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_never_creates_a_second_account() {
    let mut h = Harness::start("nc-dup").await;
    let worker = h.spawn_worker();
    let command = new_customer("nc-dup", Some("dup.citizen"));
    h.publish(&command).await;
    h.wait_terminal(&["nc-dup"]).await;
    // The same command again, and the same customer under another command id.
    h.publish(&command).await;
    h.publish(&new_customer("nc-dup-2", Some("dup.citizen")))
        .await;
    h.wait_terminal(&["nc-dup-2"]).await;
    h.settle(Duration::from_millis(500)).await;

    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "CreateComplexAccount"), 1, "{counts:?}");
    assert_eq!(count(&counts, "StartOrder"), 1, "{counts:?}");
    assert_eq!(accounts_named(&h, "dup.citizen").await.len(), 1);
    let second = h.terminal("nc-dup-2");
    assert_eq!(second.data.outcome, Outcome::Failed);
    let error = second.data.error.clone().unwrap_or_default();
    assert!(error.contains("already taken"), "{error}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_creation_answer_is_settled_by_the_portal_login() {
    let mut h = Harness::start("nc-lost").await;
    // The platform creates the account, then a proxy fails on the way back.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CreateComplexAccount", "kind": "error_after_commit", "status": 502, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&new_customer("nc-lost", Some("lost.citizen")))
        .await;
    h.wait_terminal(&["nc-lost"]).await;
    h.settle(Duration::from_millis(300)).await;

    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "CreateComplexAccount"), 1, "{counts:?}");
    assert_eq!(
        count(&counts, "MyGetAccountFromUsernameAndPassword"),
        1,
        "{counts:?}"
    );
    let created = accounts_named(&h, "lost.citizen").await;
    assert_eq!(created.len(), 1);
    let done = h.terminal("nc-lost");
    assert_eq!(done.data.outcome, Outcome::Completed);
    assert_eq!(
        done.data.output.unwrap()["create_account"]["account_id"],
        created[0]["account_id"]
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_that_never_took_effect_is_sent_once_more() {
    let mut h = Harness::start("nc-none").await;
    // A gateway gives up before the platform saw the call: 504, nothing applied.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CreateComplexAccount", "kind": "timeout", "ms": 10, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&new_customer("nc-none", Some("none.citizen")))
        .await;
    h.wait_terminal(&["nc-none"]).await;
    h.settle(Duration::from_millis(300)).await;

    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "CreateComplexAccount"), 2, "{counts:?}");
    assert_eq!(
        count(&counts, "MyGetAccountFromUsernameAndPassword"),
        1,
        "the login proved no account had been made: {counts:?}"
    );
    assert_eq!(accounts_named(&h, "none.citizen").await.len(), 1);
    assert_eq!(h.terminal("nc-none").data.outcome, Outcome::Completed);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_portal_login_an_unknown_creation_is_parked() {
    let mut h = Harness::start("nc-park").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CreateComplexAccount", "kind": "error_after_commit", "status": 502, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&new_customer("nc-park", None)).await;
    h.wait_terminal(&["nc-park"]).await;
    h.settle(Duration::from_millis(300)).await;

    let counts = h.call_counts().await;
    assert_eq!(count(&counts, "CheckUsernameAvailability"), 0);
    assert_eq!(count(&counts, "CreateComplexAccount"), 1, "{counts:?}");
    assert_eq!(count(&counts, "StartOrder"), 0);
    assert_eq!(h.terminal("nc-park").data.outcome, Outcome::Parked);
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].headers.get("x-billflow-stage").map(String::as_str),
        Some("create_account")
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_echoing_the_portal_password_never_leaks_it() {
    let mut h = Harness::start("nc-echo").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CreateComplexAccount", "kind": "business_error",
               "message": format!("Password '{PORTAL_PASSWORD}' is too weak")}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&new_customer("nc-echo", Some("echo.citizen")))
        .await;
    h.wait_terminal(&["nc-echo"]).await;
    h.settle(Duration::from_millis(300)).await;

    let failed = h.terminal("nc-echo");
    assert_eq!(failed.data.outcome, Outcome::Failed);
    let error = failed.data.error.clone().unwrap_or_default();
    assert!(
        error.contains("is too weak") && error.contains("***"),
        "{error}"
    );
    let mut places = vec![serde_json::to_string(&h.events_of("nc-echo")).unwrap()];
    for dead in h.drain_dead().await {
        places.push(format!("{:?}", dead.headers));
        places.push(String::from_utf8_lossy(&dead.body).into_owned());
    }
    worker.stop().await;
    places.push(h.worker_log());
    for place in places {
        assert!(!place.contains(PORTAL_PASSWORD), "leaked: {place}");
    }
}
