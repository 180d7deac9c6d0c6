//! `billflow sim` CostGuard part, driven by the real CostGuard client over HTTP.

use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::sim_server;
use billflow::billing::costguard::rest::{paths, OrderDetail};
use billflow::billing::costguard::soap::{self, KeyedId, OrderResponse};
use billflow::billing::costguard::{
    CostGuardAuth, CostGuardClient, CostGuardConfig, CostGuardError,
};
use billflow::billing::http::HttpError;
use billflow::billing::Failure;
use billflow::config::DEFAULT_MAX_RESPONSE_BYTES;
use billflow::secret::Secret;
use billflow::sim::costguard::{
    ACTIVE_CUSTOMER_ID, ACTIVE_SERVICE, ACTIVE_SERVICE_ID, HOTLINED_CUSTOMER_ID, HOTLINED_SERVICE,
    HOTLINED_SERVICE_ID, INELIGIBLE_CUSTOMER_ID, INELIGIBLE_SERVICE, INELIGIBLE_SERVICE_ID,
    RENEWAL_PRICE, RENEWAL_TAX,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const ENV: &str = "test";
const RENEWAL_ORDER_TYPE: i64 = 1;
const RESTORE_ORDER_TYPE: i64 = 1013;
const REGISTER: i64 = 12;
const WRAP: &str = "WRAP access_token=\"sim-token\"";

/// The simulator, with this suite's helpers (the other sim suite has its own).
struct Sim(sim_server::Sim);

impl std::ops::Deref for Sim {
    type Target = sim_server::Sim;

    fn deref(&self) -> &sim_server::Sim {
        &self.0
    }
}

async fn start() -> Sim {
    Sim(sim_server::start().await)
}

impl Sim {
    fn client(&self) -> CostGuardClient {
        self.client_with_timeout(Duration::from_secs(2))
    }

    fn client_with_timeout(&self, timeout: Duration) -> CostGuardClient {
        CostGuardClient::new(CostGuardConfig {
            base_url: self.base.clone(),
            auth: CostGuardAuth::Static(Secret::new("sim-token")),
            authenticated_key: "AuthKey".into(),
            timeout,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
        .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn fault(&self, fault: Value) {
        let response = self.post("/_sim/faults", fault).await;
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
    }

    async fn counts(&self) -> Value {
        self.get("/_sim/calls").await["counts"].clone()
    }

    async fn cart_state(&self, cart_id: i64) -> Value {
        let state = self.get("/_sim/state").await;
        state["carts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cart_id"] == cart_id)
            .cloned()
            .unwrap_or_else(|| panic!("cart {cart_id} not in {state}"))
    }

    async fn service_state(&self, service_id: i64) -> Value {
        let state = self.get("/_sim/state").await;
        state["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service_id"] == service_id)
            .cloned()
            .unwrap_or_else(|| panic!("service {service_id} not in {state}"))
    }

    /// An Order Placement call sent by hand, with an `Idempotency-Key` as billflow sends it.
    async fn order_call(
        &self,
        request: &soap::OrderRequest,
        key: &str,
        timeout: Duration,
    ) -> reqwest::Result<reqwest::Response> {
        let requestor = soap::Requestor {
            authorization_token: "sim-token".into(),
            register_id: None,
        };
        self.http
            .post(format!("{}{}", self.base, paths::order_placement(ENV)))
            .header("Content-Type", soap::content_type(request.operation()))
            .header("Idempotency-Key", key)
            .body(request.envelope(&requestor))
            .timeout(timeout)
            .send()
            .await
    }

    /// A REST call sent by hand with the WRAP token, and a key when given.
    async fn rest_call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", WRAP)
            .timeout(Duration::from_secs(2));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await
    }

    /// The order lookup: its status and JSON body.
    async fn order(&self, order_id: i64) -> (u16, Value) {
        let response = self
            .rest_call(reqwest::Method::GET, &paths::order(ENV, order_id), None)
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The order lookup of an order that exists, read into the client's wire type too.
    async fn open_order(&self, order_id: i64) -> Value {
        let (status, body) = self.order(order_id).await;
        assert_eq!(status, 200, "{body}");
        let typed: OrderDetail = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(typed.order_id, order_id);
        body
    }

    async fn last_call(&self) -> Value {
        let calls = self.get("/_sim/calls").await;
        calls["calls"].as_array().unwrap().last().cloned().unwrap()
    }

    /// A renewal cart of the active service, renewed and checked out.
    async fn checked_out_renewal(&self, cg: &CostGuardClient) -> KeyedId {
        let cart = cg
            .create_cart(ENV, ACTIVE_CUSTOMER_ID, RENEWAL_ORDER_TYPE, Some(REGISTER))
            .await
            .unwrap()
            .cart_id;
        cg.renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
            .await
            .unwrap();
        cg.checkout(ENV, &cart).await.unwrap();
        cart
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn rejected_text(err: CostGuardError) -> String {
    match err {
        CostGuardError::Rejected { messages, .. } => messages,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn active_renewal_end_to_end_and_call_counts() {
    let sim = start().await;
    let cg = sim.client();

    let detail = cg.service_number_detail(ENV, ACTIVE_SERVICE).await.unwrap();
    assert_eq!(
        (
            detail.customer_id,
            detail.service_id,
            detail.service_status.as_str()
        ),
        (ACTIVE_CUSTOMER_ID, ACTIVE_SERVICE_ID, "Active")
    );
    let favorites = cg
        .favorite_price_points(ENV, detail.service_id)
        .await
        .unwrap();
    assert_eq!(favorites.len(), 1);
    assert!(favorites[0].active);
    assert_eq!(
        (
            favorites[0].service_advance_pay_id,
            favorites[0].catalog_id,
            favorites[0].price_point_id
        ),
        (9001, 18, 77)
    );
    assert_eq!(favorites[0].description, "30 Day Unlimited");

    let cart = cg
        .create_cart(ENV, detail.customer_id, RENEWAL_ORDER_TYPE, Some(REGISTER))
        .await
        .unwrap();
    assert_eq!(cart.cart_id.authenticated_key, "AuthKey");
    assert_eq!(cart.customer_id.as_ref().map(|c| c.id), Some(10));
    assert_eq!(cart.order_type_id, Some(RENEWAL_ORDER_TYPE));
    let cart_id = cart.cart_id;

    let renewed = cg
        .renew_advance_pay(ENV, cart_id.id, detail.service_id)
        .await
        .unwrap();
    assert_eq!(renewed.renewed_advance_pay_product_count, 1);
    assert!(renewed.service_information_item_id.is_some());

    let summary = cg.checkout(ENV, &cart_id).await.unwrap().unwrap();
    assert_eq!(summary.cart_id, cart_id);
    assert_eq!(summary.cart_item_count, 1);
    assert_eq!(summary.subtotal.as_str(), "11.99");
    assert_eq!(summary.tax_subtotal.as_str(), "2.35");
    let due = summary.amount_due(2).unwrap();
    assert_eq!(due.to_string(), "14.34");
    assert_eq!(due, RENEWAL_PRICE + RENEWAL_TAX);

    let tendered = cg.add_cash_tender(ENV, &cart_id, due, 2).await.unwrap();
    assert!(tendered.receipt_number.is_some());
    assert_eq!(tendered.tender_details.len(), 1);
    assert_eq!(tendered.tender_details[0].amount.as_str(), "14.34");
    assert_eq!(tendered.tender_details[0].tender_type_id, Some(2));
    assert_eq!(
        tendered.tender_details[0].tender_status.as_deref(),
        Some("Captured")
    );

    let submitted = cg.submit_cart(ENV, &cart_id).await.unwrap().unwrap();
    assert_eq!(submitted.cart_item_count, 1);
    assert_eq!(submitted.subtotal.as_str(), "11.99");

    let cart_state = sim.cart_state(cart_id.id).await;
    assert_eq!(cart_state["submitted"], true);
    assert_eq!(cart_state["register_id"], REGISTER);
    assert_eq!(cart_state["order_type_id"], RENEWAL_ORDER_TYPE);
    assert_eq!(cart_state["amount_due"], "0.00");
    assert_eq!(
        sim.service_state(ACTIVE_SERVICE_ID).await["renewal_count"],
        1
    );

    assert_eq!(
        sim.counts().await,
        json!({
            "ServiceNumberDetail": 1,
            "favoriteAdvancePayPricePoint": 1,
            "CreateCart": 1,
            "renewAdvancePay": 1,
            "Checkout": 1,
            "ModifyCart": 1,
            "SubmitCart": 1,
        })
    );
    let calls = sim.get("/_sim/calls").await;
    let first = &calls["calls"][0];
    assert_eq!(first["operation"], "ServiceNumberDetail");
    assert_eq!(first["method"], "GET");
    assert_eq!(
        first["path"],
        paths::service_number_detail(ENV, ACTIVE_SERVICE)
    );
    assert!(chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).is_ok());
    let create = &calls["calls"][2];
    assert_eq!(create["operation"], "CreateCart");
    assert!(create["body"]
        .as_str()
        .unwrap()
        .contains("<RegisterID>12</RegisterID>"));

    let cleared = sim
        .http
        .delete(format!("{}/_sim/calls", sim.base))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    assert_eq!(
        sim.get("/_sim/calls").await,
        json!({"counts": {}, "calls": []})
    );
}

#[tokio::test]
async fn restore_order_makes_a_hotlined_service_active() {
    let sim = start().await;
    let cg = sim.client();

    let detail = cg
        .service_number_detail(ENV, HOTLINED_SERVICE)
        .await
        .unwrap();
    assert_eq!(detail.service_status, "Hotlined");
    let cart = cg
        .create_cart(ENV, HOTLINED_CUSTOMER_ID, RESTORE_ORDER_TYPE, None)
        .await
        .unwrap();
    let modified = cg
        .add_restore_item(ENV, &cart.cart_id, HOTLINED_SERVICE_ID, 4)
        .await
        .unwrap();
    assert_eq!(modified.order_type_id, Some(RESTORE_ORDER_TYPE));
    let restore = &modified.service_details[0];
    assert_eq!(restore.action_type.as_deref(), Some("Restore"));
    assert_eq!(restore.service_id, Some(HOTLINED_SERVICE_ID));
    assert_eq!(restore.service_number.as_deref(), Some(HOTLINED_SERVICE));
    assert!(restore.service_information_item_id.is_some());

    // No priced items: the checkout result is empty and nothing is due.
    assert_eq!(cg.checkout(ENV, &cart.cart_id).await.unwrap(), None);
    let summary = cg.submit_cart(ENV, &cart.cart_id).await.unwrap().unwrap();
    assert_eq!(summary.cart_item_count, 0);
    assert_eq!(summary.amount_due(2), Ok(Decimal::ZERO));

    let service = sim.service_state(HOTLINED_SERVICE_ID).await;
    assert_eq!(service["status"], "Active");
    assert_eq!(service["renewal_count"], 0);
    let detail = cg
        .service_number_detail(ENV, HOTLINED_SERVICE)
        .await
        .unwrap();
    assert_eq!(detail.service_status, "Active");
}

#[tokio::test]
async fn order_rules_are_enforced_with_messages() {
    let sim = start().await;
    let cg = sim.client();

    // Unknown customer.
    let err = cg
        .create_cart(ENV, 999, RENEWAL_ORDER_TYPE, None)
        .await
        .unwrap_err();
    assert_eq!(err.failure(), Failure::Permanent);
    assert!(rejected_text(err).contains("Customer 999 does not exist"));

    let cart = cg
        .create_cart(ENV, ACTIVE_CUSTOMER_ID, RENEWAL_ORDER_TYPE, Some(REGISTER))
        .await
        .unwrap()
        .cart_id;

    // Another customer's service, in SOAP and in REST.
    let err = cg
        .add_restore_item(ENV, &cart, HOTLINED_SERVICE_ID, 4)
        .await
        .unwrap_err();
    assert!(rejected_text(err).contains("does not belong to customer 10"));
    match cg
        .renew_advance_pay(ENV, cart.id, HOTLINED_SERVICE_ID)
        .await
        .unwrap_err()
    {
        CostGuardError::Http {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert!(
                message.contains("does not belong to customer 10"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    for (order, service, status) in [(424242, ACTIVE_SERVICE_ID, 404), (cart.id, 1, 404)] {
        match cg.renew_advance_pay(ENV, order, service).await.unwrap_err() {
            CostGuardError::Http { status: got, .. } => assert_eq!(got, status),
            other => panic!("{other:?}"),
        }
    }

    cg.renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap();

    // Tender before checkout.
    let err = cg
        .add_cash_tender(ENV, &cart, dec("14.34"), 2)
        .await
        .unwrap_err();
    assert!(rejected_text(err).contains("must be checked out before a tender"));

    // Submit before checkout.
    let err = cg.submit_cart(ENV, &cart).await.unwrap_err();
    assert!(rejected_text(err).contains("must be checked out after its last change"));

    cg.checkout(ENV, &cart).await.unwrap();

    // Submit without tender.
    let err = cg.submit_cart(ENV, &cart).await.unwrap_err();
    assert!(rejected_text(err).contains("14.34 due"));

    // Wrong tender amount: compared as decimals.
    let err = cg
        .add_cash_tender(ENV, &cart, dec("14.33"), 2)
        .await
        .unwrap_err();
    assert!(rejected_text(err).contains("Tender amount 14.33 does not equal the amount due 14.34"));

    // A change after checkout clears it.
    cg.renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap();
    assert_eq!(sim.cart_state(cart.id).await["checked_out"], false);
    let err = cg
        .add_cash_tender(ENV, &cart, dec("28.68"), 2)
        .await
        .unwrap_err();
    assert!(rejected_text(err).contains("must be checked out"));
    let summary = cg.checkout(ENV, &cart).await.unwrap().unwrap();
    assert_eq!(summary.cart_item_count, 2);
    assert_eq!(summary.amount_due(2), Ok(dec("28.68")));

    // A trailing zero is the same amount.
    cg.add_cash_tender(ENV, &cart, dec("28.680"), 2)
        .await
        .unwrap();
    cg.submit_cart(ENV, &cart).await.unwrap();
    assert_eq!(
        sim.service_state(ACTIVE_SERVICE_ID).await["renewal_count"],
        2
    );

    // Nothing changes a submitted cart.
    let err = cg
        .add_restore_item(ENV, &cart, ACTIVE_SERVICE_ID, 4)
        .await
        .unwrap_err();
    assert!(rejected_text(err).contains("already been submitted"));
    let err = cg.checkout(ENV, &cart).await.unwrap_err();
    assert!(rejected_text(err).contains("already been submitted"));
    match cg
        .renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap_err()
    {
        CostGuardError::Http {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert!(message.contains("already been submitted"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = cg.submit_cart(ENV, &cart).await.unwrap_err();
    assert!(rejected_text(err).contains("already been submitted"));

    // Unknown cart.
    let unknown = KeyedId {
        authenticated_key: "AuthKey".into(),
        id: 1,
    };
    let err = cg.checkout(ENV, &unknown).await.unwrap_err();
    assert!(rejected_text(err).contains("Cart 1 does not exist"));

    let state = sim.cart_state(cart.id).await;
    assert_eq!(state["items"].as_array().unwrap().len(), 2);
    assert_eq!(state["tenders"].as_array().unwrap().len(), 1);
    assert_eq!(state["submitted"], true);
}

#[tokio::test]
async fn ineligible_service_has_no_active_favorite() {
    let sim = start().await;
    let cg = sim.client();
    let detail = cg
        .service_number_detail(ENV, INELIGIBLE_SERVICE)
        .await
        .unwrap();
    assert_eq!(detail.service_id, INELIGIBLE_SERVICE_ID);
    let favorites = cg
        .favorite_price_points(ENV, INELIGIBLE_SERVICE_ID)
        .await
        .unwrap();
    assert!(!favorites.is_empty());
    assert!(favorites.iter().all(|f| !f.active));

    let cart = cg
        .create_cart(ENV, detail.customer_id, RENEWAL_ORDER_TYPE, Some(REGISTER))
        .await
        .unwrap()
        .cart_id;
    let err = cg
        .renew_advance_pay(ENV, cart.id, INELIGIBLE_SERVICE_ID)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CostGuardError::NothingRenewed { .. }),
        "{err:?}"
    );
    assert!(sim.cart_state(cart.id).await["items"]
        .as_array()
        .unwrap()
        .is_empty());

    match cg.favorite_price_points(ENV, 1).await.unwrap_err() {
        CostGuardError::Http { status, .. } => assert_eq!(status, 404),
        other => panic!("{other:?}"),
    }
    // An unknown number is an empty collection, which the client reads as not found.
    assert!(matches!(
        cg.service_number_detail(ENV, "0000000000").await,
        Err(CostGuardError::ServiceNotFound(_))
    ));
}

#[tokio::test]
async fn special_characters_survive_lookup_and_restore() {
    let sim = start().await;
    let cg = sim.client();
    let number = "55<5&5'5\"";
    let response = sim
        .post(
            "/_sim/services",
            json!({"service_number": number, "status": "Hotlined"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let (customer_id, service_id) = (
        created["customer_id"].as_i64().unwrap(),
        created["service_id"].as_i64().unwrap(),
    );

    let detail = cg.service_number_detail(ENV, number).await.unwrap();
    assert_eq!(detail.service_number, number);
    assert_eq!(
        (detail.customer_id, detail.service_id),
        (customer_id, service_id)
    );
    assert_eq!(detail.service_status, "Hotlined");
    let favorites = cg.favorite_price_points(ENV, service_id).await.unwrap();
    assert!(favorites[0].active);

    let cart = cg
        .create_cart(ENV, customer_id, RESTORE_ORDER_TYPE, None)
        .await
        .unwrap();
    let modified = cg
        .add_restore_item(ENV, &cart.cart_id, service_id, 4)
        .await
        .unwrap();
    assert_eq!(
        modified.service_details[0].service_number.as_deref(),
        Some(number)
    );
    let calls = sim.get("/_sim/calls").await;
    assert_eq!(
        calls["calls"][0]["path"],
        paths::service_number_detail(ENV, number)
    );

    // Duplicates conflict; a service with custom favorites gets them.
    let duplicate = sim
        .post("/_sim/services", json!({"service_number": number}))
        .await;
    assert_eq!(duplicate.status(), 409);
    let custom = sim
        .post(
            "/_sim/services",
            json!({"service_number": "5551230000", "favorites": [
                {"description": "7 Day", "active": true, "price": "5.00", "tax": "0.50"},
                {"active": false}
            ]}),
        )
        .await;
    assert_eq!(custom.status(), 201);
    let custom: Value = custom.json().await.unwrap();
    let service = sim
        .service_state(custom["service_id"].as_i64().unwrap())
        .await;
    assert_eq!(service["status"], "Active");
    assert_eq!(service["favorites"][0]["price"], "5.00");
    assert_eq!(service["favorites"][1]["active"], false);
    let bad = sim.post("/_sim/services", json!({"number": "1"})).await;
    assert_eq!(bad.status(), 400);
    // A price the simulator's sums could overflow on is refused.
    let huge = sim
        .post(
            "/_sim/services",
            json!({"service_number": "5551230001", "favorites": [{"price": "1e12"}]}),
        )
        .await;
    assert_eq!(huge.status(), 400);
}

#[tokio::test]
async fn latency_fault_delays_then_serves() {
    let sim = start().await;
    let cg = sim.client();
    sim.fault(json!({"operation": "ServiceNumberDetail", "kind": "latency", "ms": 400}))
        .await;
    let started = Instant::now();
    cg.service_number_detail(ENV, ACTIVE_SERVICE).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Used up: the next call is fast and the queue is empty.
    assert_eq!(sim.get("/_sim/faults").await, json!({"faults": []}));
}

#[tokio::test]
async fn http_status_fault_is_transient_and_not_applied() {
    let sim = start().await;
    let cg = sim.client();
    sim.fault(json!({"operation": "favoriteAdvancePayPricePoint", "kind": "http_status", "status": 503, "count": 2}))
        .await;
    for _ in 0..2 {
        let err = cg
            .favorite_price_points(ENV, ACTIVE_SERVICE_ID)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CostGuardError::Http { status: 503, .. }),
            "{err:?}"
        );
        assert_eq!(err.failure(), Failure::Transient);
    }
    cg.favorite_price_points(ENV, ACTIVE_SERVICE_ID)
        .await
        .unwrap();

    // On SOAP the status carries a Receiver fault; the cart is not created.
    sim.fault(json!({"operation": "CreateCart", "kind": "http_status", "status": 503}))
        .await;
    let err = cg
        .create_cart(ENV, ACTIVE_CUSTOMER_ID, RENEWAL_ORDER_TYPE, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Fault { code, .. } if code == "Receiver"),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::Transient);
    assert!(sim.get("/_sim/state").await["carts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(sim.counts().await["CreateCart"], 1);
}

#[tokio::test]
async fn soap_fault_codes_classify() {
    let sim = start().await;
    let cg = sim.client();
    let cart = sim.checked_out_renewal(&cg).await;
    // A Receiver fault may come after the platform acted: never proof it did not.
    for (code, failure) in [
        ("Receiver", Failure::OutcomeUnknown),
        ("Sender", Failure::Permanent),
    ] {
        sim.fault(json!({"operation": "SubmitCart", "kind": "soap_fault", "code": code, "reason": "busy <now>"}))
            .await;
        let err = cg.submit_cart(ENV, &cart).await.unwrap_err();
        match &err {
            CostGuardError::Fault {
                code: got, reason, ..
            } => {
                assert_eq!(got, code);
                assert_eq!(reason, "busy <now>");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.failure(), failure);
    }
    assert_eq!(sim.cart_state(cart.id).await["submitted"], false);
}

#[tokio::test]
async fn business_error_fault_is_a_rejection() {
    let sim = start().await;
    let cg = sim.client();
    let cart = sim.checked_out_renewal(&cg).await;
    sim.fault(
        json!({"operation": "Checkout", "kind": "business_error", "message": "Register closed"}),
    )
    .await;
    let err = cg.checkout(ENV, &cart).await.unwrap_err();
    assert_eq!(err.failure(), Failure::Permanent);
    assert!(rejected_text(err).contains("Register closed"));

    sim.fault(json!({"operation": "renewAdvancePay", "kind": "business_error", "message": "Product retired"}))
        .await;
    match cg
        .renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap_err()
    {
        CostGuardError::Http {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert!(message.contains("Product retired"));
        }
        other => panic!("{other:?}"),
    }
    // Not applied: still one renewal item, still checked out.
    let state = sim.cart_state(cart.id).await;
    assert_eq!(state["items"].as_array().unwrap().len(), 1);
    assert_eq!(state["checked_out"], true);
}

#[tokio::test]
async fn timeout_fault_answers_504_late_without_applying() {
    let sim = start().await;
    let cg = sim.client();
    let cart = sim.checked_out_renewal(&cg).await;
    cg.add_cash_tender(ENV, &cart, dec("14.34"), 2)
        .await
        .unwrap();

    // Shorter than the client's patience: a gateway 504.
    sim.fault(json!({"operation": "SubmitCart", "kind": "timeout", "ms": 200}))
        .await;
    let err = cg.submit_cart(ENV, &cart).await.unwrap_err();
    assert!(
        matches!(err, CostGuardError::Http { status: 504, .. }),
        "{err:?}"
    );
    // The gateway cannot say whether the platform acted.
    assert_eq!(err.failure(), Failure::OutcomeUnknown);

    // Longer: the client gives up and cannot know the outcome.
    sim.fault(json!({"operation": "SubmitCart", "kind": "timeout", "ms": 1500}))
        .await;
    let impatient = sim.client_with_timeout(Duration::from_millis(300));
    let err = impatient.submit_cart(ENV, &cart).await.unwrap_err();
    assert!(
        matches!(
            err,
            CostGuardError::Transport {
                error: HttpError::Deadline { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::OutcomeUnknown);

    assert_eq!(sim.cart_state(cart.id).await["submitted"], false);
    cg.submit_cart(ENV, &cart).await.unwrap();
}

#[tokio::test]
async fn drop_response_applies_and_never_answers() {
    let sim = start().await;
    let cg = sim.client();
    let cart = cg
        .create_cart(ENV, ACTIVE_CUSTOMER_ID, RENEWAL_ORDER_TYPE, Some(REGISTER))
        .await
        .unwrap()
        .cart_id;
    sim.fault(json!({"operation": "renewAdvancePay", "kind": "drop_response"}))
        .await;
    let impatient = sim.client_with_timeout(Duration::from_millis(300));
    let err = impatient
        .renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CostGuardError::Transport {
                error: HttpError::Deadline { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::OutcomeUnknown);
    let state = sim.cart_state(cart.id).await;
    assert_eq!(state["items"].as_array().unwrap().len(), 1);
    assert_eq!(state["items"][0]["kind"], "renewal");

    // A SOAP call too: the submit took effect although no answer came.
    sim.fault(json!({"operation": "SubmitCart", "kind": "drop_response"}))
        .await;
    let restore = cg
        .create_cart(ENV, HOTLINED_CUSTOMER_ID, RESTORE_ORDER_TYPE, None)
        .await
        .unwrap()
        .cart_id;
    cg.add_restore_item(ENV, &restore, HOTLINED_SERVICE_ID, 4)
        .await
        .unwrap();
    cg.checkout(ENV, &restore).await.unwrap();
    // A call held open while the server shuts down is released, not waited on forever.
    let held = tokio::spawn({
        let client = sim.client_with_timeout(Duration::from_secs(30));
        let restore = restore.clone();
        async move { client.submit_cart(ENV, &restore).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.cart_state(restore.id).await["submitted"], true);
    assert_eq!(
        sim.service_state(HOTLINED_SERVICE_ID).await["status"],
        "Active"
    );

    sim.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), sim.0.server)
        .await
        .expect("graceful shutdown finished")
        .unwrap()
        .unwrap();
    assert!(held.await.unwrap().is_ok());
}

#[tokio::test]
async fn faults_are_validated_listed_and_cleared() {
    let sim = start().await;
    for bad in [
        json!({"operation": "Checkout", "kind": "explode"}),
        json!({"operation": "Nope", "kind": "drop_response"}),
        json!({"operation": "Checkout", "kind": "http_status", "status": 200}),
        json!({"operation": "Checkout", "kind": "latency"}),
        json!({"operation": "Checkout", "kind": "drop_response", "count": 0}),
        json!({"operation": "Checkout", "kind": "soap_fault", "code": "Server"}),
    ] {
        let response = sim.post("/_sim/faults", bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    sim.fault(json!({"operation": "Checkout", "kind": "latency", "ms": 5, "count": 3}))
        .await;
    sim.fault(json!({"operation": "SubmitCart", "kind": "soap_fault", "code": "Receiver"}))
        .await;
    let listed = sim.get("/_sim/faults").await;
    assert_eq!(
        listed["faults"][0],
        json!({"operation": "Checkout", "kind": "latency", "ms": 5, "count": 3})
    );
    assert_eq!(listed["faults"][1]["code"], "Receiver");
    let cleared = sim
        .http
        .delete(format!("{}/_sim/faults", sim.base))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    assert_eq!(sim.get("/_sim/faults").await, json!({"faults": []}));
}

#[tokio::test]
async fn rest_calls_need_a_wrap_token() {
    let sim = start().await;
    let url = format!(
        "{}{}",
        sim.base,
        paths::favorite_price_points(ENV, ACTIVE_SERVICE_ID)
    );
    for header in [None, Some("Bearer abc"), Some("WRAP access_token=\"\"")] {
        let mut request = sim.http.get(&url);
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "Authorization");
    }
    let response = sim
        .http
        .get(&url)
        .header("Authorization", "WRAP access_token=\"anything\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Rejected calls are logged too.
    assert_eq!(sim.counts().await["favoriteAdvancePayPricePoint"], 4);

    // A malformed filter is a 400 with IDI's error body.
    let response = sim
        .http
        .get(format!(
            "{}/customer/1xa/{ENV}/CoreDataService/ServiceNumberDetail()?$filter=ServiceNumber%20eq%20%275",
            sim.base
        ))
        .header("Authorization", "WRAP access_token=\"t\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unterminated"));
}

#[tokio::test]
async fn malformed_soap_requests_are_sender_faults() {
    let sim = start().await;
    let url = format!("{}{}", sim.base, paths::order_placement(ENV));
    let checkout = soap::OrderRequest::Checkout {
        cart: KeyedId {
            authenticated_key: "AuthKey".into(),
            id: 7010,
        },
    };
    let requestor = |token: &str| soap::Requestor {
        authorization_token: token.into(),
        register_id: None,
    };
    let cases = [
        (
            soap::content_type("Checkout"),
            "<Envelope><Body>".to_string(),
            "malformed",
        ),
        (
            soap::content_type("Checkout"),
            checkout.envelope(&requestor("")),
            "AuthorizationToken",
        ),
        (
            soap::content_type("SubmitCart"),
            checkout.envelope(&requestor("t")),
            "does not match",
        ),
        (
            soap::content_type("VoidCart"),
            checkout
                .envelope(&requestor("t"))
                .replace("Checkout", "VoidCart"),
            "unknown operation",
        ),
    ];
    for (content_type, body, reason) in cases {
        let response = sim
            .http
            .post(&url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{reason}");
        let text = response.text().await.unwrap();
        match OrderResponse::parse("Checkout", &text).unwrap() {
            OrderResponse::Fault(fault) => {
                assert_eq!(fault.code, "Sender");
                assert!(fault.reason.contains(reason), "{}", fault.reason);
            }
            other => panic!("{other:?}"),
        }
    }
    // Logged under the operation they named.
    let counts = sim.counts().await;
    assert_eq!(counts["Checkout"], 3);
    assert_eq!(counts["VoidCart"], 1);

    // Without an action parameter the element decides.
    let response = sim
        .http
        .post(&url)
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .body(checkout.envelope(&requestor("t")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    match OrderResponse::parse("Checkout", &text).unwrap() {
        OrderResponse::Reply { result, messages } => {
            assert!(result.unwrap().children.is_empty());
            assert_eq!(messages[0].severity, "Error");
            assert!(messages[0].text.contains("Cart 7010 does not exist"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn call_log_shows_idempotency_key_and_whether_each_call_applied() {
    // Every call is made by hand, so the keys are the test's own.
    let sim = start().await;
    let patience = Duration::from_secs(2);
    let customer = |id: i64| KeyedId {
        authenticated_key: "AuthKey".into(),
        id,
    };
    let create = |customer_id| soap::OrderRequest::CreateCart {
        order_type_id: RENEWAL_ORDER_TYPE,
        customer: customer(customer_id),
    };
    let logged = |call: &Value, operation: &str, key: Value, applied: bool| {
        assert_eq!(call["operation"], operation, "{call}");
        assert_eq!(call["idempotency_key"], key, "{call}");
        assert_eq!(call["applied"], applied, "{call}");
    };

    // A read, with and without a key.
    let detail = sim
        .rest_call(
            reqwest::Method::GET,
            &paths::service_number_detail(ENV, ACTIVE_SERVICE),
            Some("cmd-1/lookup"),
        )
        .await
        .unwrap();
    assert_eq!(detail.status(), 200);
    logged(
        &sim.last_call().await,
        "ServiceNumberDetail",
        json!("cmd-1/lookup"),
        false,
    );
    let favorites = sim
        .rest_call(
            reqwest::Method::GET,
            &paths::favorite_price_points(ENV, ACTIVE_SERVICE_ID),
            None,
        )
        .await
        .unwrap();
    assert_eq!(favorites.status(), 200);
    logged(
        &sim.last_call().await,
        "favoriteAdvancePayPricePoint",
        Value::Null,
        false,
    );

    // An applied SOAP call, then one refused on a business rule.
    let created = sim
        .order_call(&create(ACTIVE_CUSTOMER_ID), "cmd-1/create_cart", patience)
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    logged(
        &sim.last_call().await,
        "CreateCart",
        json!("cmd-1/create_cart"),
        true,
    );
    // The first cart takes the seed's first id.
    let cart_id = 7010;
    assert_eq!(
        sim.cart_state(cart_id).await["customer_id"],
        ACTIVE_CUSTOMER_ID
    );
    let refused = sim
        .order_call(&create(999), "cmd-2/create_cart", patience)
        .await
        .unwrap();
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Customer 999 does not exist"));
    logged(
        &sim.last_call().await,
        "CreateCart",
        json!("cmd-2/create_cart"),
        false,
    );

    // REST: applied, refused, unauthenticated, and accepted without adding anything.
    let renew = paths::renew_advance_pay(ENV, cart_id, ACTIVE_SERVICE_ID);
    let renewed = sim
        .rest_call(reqwest::Method::POST, &renew, Some("cmd-1/renew"))
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-1/renew"),
        true,
    );
    let unknown = paths::renew_advance_pay(ENV, 424242, ACTIVE_SERVICE_ID);
    let missing = sim
        .rest_call(reqwest::Method::POST, &unknown, Some("cmd-3/renew"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-3/renew"),
        false,
    );
    let unauthenticated = sim
        .http
        .post(format!("{}{renew}", sim.base))
        .header("Idempotency-Key", "cmd-4/renew")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-4/renew"),
        false,
    );
    sim.order_call(
        &create(INELIGIBLE_CUSTOMER_ID),
        "cmd-10/create_cart",
        patience,
    )
    .await
    .unwrap();
    let nothing_to_renew = sim
        .rest_call(
            reqwest::Method::POST,
            &paths::renew_advance_pay(ENV, cart_id + 1, INELIGIBLE_SERVICE_ID),
            Some("cmd-10/renew"),
        )
        .await
        .unwrap();
    assert_eq!(nothing_to_renew.status(), 200);
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-10/renew"),
        false,
    );

    // Injected faults: http_status, business_error and timeout do not apply.
    for (mut fault, key, status) in [
        (
            json!({"kind": "http_status", "status": 503}),
            "cmd-5/checkout",
            503,
        ),
        (
            json!({"kind": "business_error", "message": "Register closed"}),
            "cmd-6/checkout",
            200,
        ),
        (json!({"kind": "timeout", "ms": 10}), "cmd-7/checkout", 504),
    ] {
        fault["operation"] = json!("Checkout");
        sim.fault(fault.clone()).await;
        let checkout = soap::OrderRequest::Checkout {
            cart: customer(cart_id),
        };
        let response = sim.order_call(&checkout, key, patience).await.unwrap();
        assert_eq!(response.status(), status, "{fault}");
        logged(&sim.last_call().await, "Checkout", json!(key), false);
    }
    assert_eq!(sim.cart_state(cart_id).await["checked_out"], false);

    // drop_response applies: the entry says so while the answer is still held.
    sim.fault(json!({"operation": "Checkout", "kind": "drop_response"}))
        .await;
    let checkout = soap::OrderRequest::Checkout {
        cart: customer(cart_id),
    };
    let dropped = sim
        .order_call(&checkout, "cmd-8/checkout", Duration::from_millis(300))
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(sim.cart_state(cart_id).await["checked_out"], true);
    let held = sim.last_call().await;
    logged(&held, "Checkout", json!("cmd-8/checkout"), true);

    // REST too, and a later call keeps its place after the held one.
    sim.fault(json!({"operation": "renewAdvancePay", "kind": "drop_response"}))
        .await;
    let dropped = sim
        .rest_call(reqwest::Method::POST, &renew, Some("cmd-9/renew"))
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(
        sim.cart_state(cart_id).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-9/renew"),
        true,
    );
    sim.fault(json!({"operation": "renewAdvancePay", "kind": "http_status", "status": 502}))
        .await;
    let failed = sim
        .rest_call(reqwest::Method::POST, &renew, Some("cmd-9/renew"))
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    logged(
        &sim.last_call().await,
        "renewAdvancePay",
        json!("cmd-9/renew"),
        false,
    );

    let calls = sim.get("/_sim/calls").await;
    let seqs: Vec<i64> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let applied: Vec<(&str, &Value)> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["applied"] == true)
        .map(|c| (c["operation"].as_str().unwrap(), &c["idempotency_key"]))
        .collect();
    assert_eq!(
        applied,
        [
            ("CreateCart", &json!("cmd-1/create_cart")),
            ("renewAdvancePay", &json!("cmd-1/renew")),
            ("CreateCart", &json!("cmd-10/create_cart")),
            ("Checkout", &json!("cmd-8/checkout")),
            ("renewAdvancePay", &json!("cmd-9/renew")),
        ]
    );
    // The counts stay as they were: every call, applied or not.
    assert_eq!(
        calls["counts"],
        json!({
            "ServiceNumberDetail": 1,
            "favoriteAdvancePayPricePoint": 1,
            "CreateCart": 3,
            "renewAdvancePay": 6,
            "Checkout": 4,
        })
    );
}

#[tokio::test]
async fn order_lookup_follows_a_restore_cart_in_the_pinned_shape() {
    let sim = start().await;
    let cg = sim.client();
    // A restore order of the active service, as in the pinned example.
    let cart = cg
        .create_cart(ENV, ACTIVE_CUSTOMER_ID, RESTORE_ORDER_TYPE, None)
        .await
        .unwrap()
        .cart_id;
    let mut expected = json!({
        "orderID": 7010, "customerID": 10, "orderTypeID": 1013, "registerID": null,
        "status": "Open", "items": [], "tenders": [],
        "subtotal": null, "taxSubtotal": null, "receiptNumber": null
    });
    assert_eq!(cart.id, 7010);
    assert_eq!(sim.open_order(cart.id).await, expected);

    cg.add_restore_item(ENV, &cart, ACTIVE_SERVICE_ID, 4)
        .await
        .unwrap();
    expected["items"] = json!([
        {"serviceInformationItemID": 88443, "serviceID": 169053, "actionType": "Restore"}
    ]);
    assert_eq!(sim.open_order(cart.id).await, expected);

    cg.checkout(ENV, &cart).await.unwrap();
    expected["status"] = json!("CheckedOut");
    expected["subtotal"] = json!("0");
    expected["taxSubtotal"] = json!("0");
    assert_eq!(sim.open_order(cart.id).await, expected);

    cg.submit_cart(ENV, &cart).await.unwrap();
    expected["status"] = json!("Submitted");
    assert_eq!(sim.open_order(cart.id).await, expected);

    // Reads: logged under getOrder, never applied.
    let calls = sim.get("/_sim/calls").await;
    assert_eq!(calls["counts"]["getOrder"], 4);
    let lookup = sim.last_call().await;
    assert_eq!(lookup["operation"], "getOrder");
    assert_eq!(lookup["method"], "GET");
    assert_eq!(lookup["path"], paths::order(ENV, cart.id));
    assert_eq!(lookup["applied"], false);
}

#[tokio::test]
async fn order_lookup_follows_a_renewal_cart_through_every_state() {
    let sim = start().await;
    let cg = sim.client();
    let cart = cg
        .create_cart(ENV, ACTIVE_CUSTOMER_ID, RENEWAL_ORDER_TYPE, Some(REGISTER))
        .await
        .unwrap()
        .cart_id;
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "Open");
    assert_eq!(order["registerID"], REGISTER);
    assert_eq!(order["orderTypeID"], RENEWAL_ORDER_TYPE);
    assert_eq!(order["items"], json!([]));

    let first = cg
        .renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap()
        .service_information_item_id
        .unwrap();
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "Open");
    assert_eq!(
        order["items"],
        json!([{"serviceInformationItemID": first, "serviceID": ACTIVE_SERVICE_ID, "actionType": "AdvancePayRenewal"}])
    );
    assert_eq!(order["subtotal"], Value::Null);

    cg.checkout(ENV, &cart).await.unwrap();
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "CheckedOut");
    assert_eq!(
        (&order["subtotal"], &order["taxSubtotal"]),
        (&json!("11.99"), &json!("2.35"))
    );

    // A change after checkout reopens the order and unsettles its totals.
    let second = cg
        .renew_advance_pay(ENV, cart.id, ACTIVE_SERVICE_ID)
        .await
        .unwrap()
        .service_information_item_id
        .unwrap();
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "Open");
    assert_eq!(order["subtotal"], Value::Null);
    assert_eq!(order["taxSubtotal"], Value::Null);
    assert_eq!(order["items"][1]["serviceInformationItemID"], second);

    cg.checkout(ENV, &cart).await.unwrap();
    cg.add_cash_tender(ENV, &cart, dec("28.68"), 2)
        .await
        .unwrap();
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "CheckedOut");
    assert_eq!(
        (&order["subtotal"], &order["taxSubtotal"]),
        (&json!("23.98"), &json!("4.70"))
    );
    let tender_id =
        sim.cart_state(cart.id).await["tenders"][0]["tender_information_item_id"].clone();
    assert_eq!(
        order["tenders"],
        json!([{"tenderInformationItemID": tender_id, "amount": "28.68", "tenderTypeID": 2, "tenderStatus": "Captured"}])
    );
    assert_eq!(order["receiptNumber"], "STORE-12-0076");

    cg.submit_cart(ENV, &cart).await.unwrap();
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["status"], "Submitted");
    let typed: OrderDetail = serde_json::from_value(order).unwrap();
    assert_eq!(
        typed.subtotal.map(|s| s.validate(2)),
        Some(Ok(dec("23.98")))
    );
    assert_eq!(typed.tenders[0].amount.validate(2), Ok(dec("28.68")));
    assert_eq!(typed.items.len(), 2);

    // Two active favorites renew under one service information item: listed once.
    let created: Value = sim
        .post(
            "/_sim/services",
            json!({"service_number": "5551239999", "favorites": [{}, {"description": "Data pack"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let (customer_id, service_id) = (
        created["customer_id"].as_i64().unwrap(),
        created["service_id"].as_i64().unwrap(),
    );
    let cart = cg
        .create_cart(ENV, customer_id, RENEWAL_ORDER_TYPE, None)
        .await
        .unwrap()
        .cart_id;
    let renewed = cg
        .renew_advance_pay(ENV, cart.id, service_id)
        .await
        .unwrap();
    assert_eq!(renewed.renewed_advance_pay_product_count, 2);
    let order = sim.open_order(cart.id).await;
    assert_eq!(order["items"].as_array().unwrap().len(), 1, "{order}");
    cg.checkout(ENV, &cart).await.unwrap();
    assert_eq!(sim.open_order(cart.id).await["subtotal"], "23.98");
}

#[tokio::test]
async fn order_lookup_errors_auth_and_faults() {
    let sim = start().await;
    let (status, body) = sim.order(424242).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"errors": [{"field": "Order", "loggingNumber": null, "message": "Order 424242 was not found"}]})
    );
    let response = sim
        .rest_call(
            reqwest::Method::GET,
            &format!("/OrderManagement/2x/{ENV}/api/order/seven"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "orderId");

    let unauthenticated = sim
        .http
        .get(format!("{}{}", sim.base, paths::order(ENV, 7010)))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    sim.fault(json!({"operation": "getOrder", "kind": "http_status", "status": 503}))
        .await;
    let (status, body) = sim.order(424242).await;
    assert_eq!(status, 503);
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(sim.order(424242).await.0, 404);

    let calls = sim.get("/_sim/calls").await;
    assert_eq!(calls["counts"], json!({"getOrder": 5}));
    assert!(calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["applied"] == false));
}
