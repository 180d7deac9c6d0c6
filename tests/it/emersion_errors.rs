//! Every error string Emersion documents for the operations billflow calls (StartOrder,
//! CompleteOrder, the Set calls, GetServiceIdentifierRealm, CheckUsernameAvailability,
//! CreatePayment, AddNote: API-FINDINGS.md and the W pages it names) reaches the terminal
//! `failed` event verbatim: one command per string, all at once, one worker. Where no
//! command can make the worker send the call that is refused, the simulator itself is
//! asked (the second test, which says why for each string).

use std::time::Duration;

use crate::common::{sim_server, Harness};
use billflow::billing::emersion::wire::{self, NwbIdentifier, TransferType};
use billflow::billing::emersion::wsse;
use billflow::billing::emersion::{EmersionAuth, EmersionClient, EmersionConfig};
use billflow::config::DEFAULT_MAX_RESPONSE_BYTES;
use billflow::contract::events::Outcome;
use billflow::secret::Secret;
use billflow::sim::emersion as em;
use billflow::xml::{Element, XmlWriter};
use serde_json::{json, Value};

/// CreatePayment's third string; the page cuts it after "category ty" (pinned in the
/// simulator).
const INVALID_CATEGORY: &str =
    "You must provide a valid transaction category, please check documentation for the category types.";

/// The platform as another system reaches it: the simulator's plain listener with its
/// UsernameToken. It starts the orders some commands resume.
fn platform(base_url: &str) -> EmersionClient {
    EmersionClient::new(EmersionConfig {
        base_url: base_url.to_string(),
        auth: EmersionAuth::WsSecurity {
            username: em::SIM_USERNAME.to_string(),
            password: Secret::new(em::SIM_PASSWORD),
        },
        timeout: Duration::from_secs(10),
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap()
}

/// A presale of the active account with a simple SQ for business support and package
/// 200100 selected, its Site Name set when `configured`: (presale, SQ).
async fn packaged(platform: &EmersionClient, configured: bool) -> (i64, i64) {
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
    platform
        .call(&wire::SelectPackagePlan {
            account_presale_id: presale,
            package_plan_id: em::BUSINESS_SUPPORT_BASIC_PLAN_ID,
        })
        .await
        .unwrap();
    if configured {
        platform
            .call(&wire::SetServiceConfiguration {
                presale_sq_id: sq,
                values: vec![(em::SITE_NAME_PROPERTY_ID, "Branch".into())],
            })
            .await
            .unwrap();
    }
    (presale, sq)
}

/// An NBN presale of the active account (SQ on an FNN) with NBN 50 selected: its SQ.
async fn packaged_nbn(platform: &EmersionClient) -> i64 {
    let presale = platform
        .call(&wire::StartOrder {
            account_id: em::ACTIVE_ACCOUNT_ID,
            purchase_order: None,
            promo_code: None,
        })
        .await
        .unwrap();
    let sq = platform
        .call(&wire::PerformNWBSQ {
            account_presale_id: presale,
            service_type_id: em::NBN_TYPE_ID,
            transfer_type: TransferType::New,
            details: NwbIdentifier::Fnn("0299998888".into()),
        })
        .await
        .unwrap();
    platform
        .call(&wire::SelectPackagePlan {
            account_presale_id: presale,
            package_plan_id: em::NBN_50_PLAN_ID,
        })
        .await
        .unwrap();
    sq
}

/// A business-support order of the active account meeting every requirement of plan
/// 300100, with `extra` merged into its data.
fn order(extra: Value) -> Value {
    let mut data = json!({
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
        "configuration": [{"type_id": em::SITE_NAME_PROPERTY_ID, "value": "Head Office"}],
        "contacts": [{"type_id": em::TECHNICAL_CONTACT_TYPE_ID, "first_name": "Jane",
                      "last_name": "Citizen"}],
        "accept_terms": true
    });
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    data
}

/// The order, resumed at `presale` and `sq` (which may belong to other orders).
fn resumed(presale: i64, sq: i64, extra: Value) -> Value {
    let mut data = order(extra);
    data["account_presale_id"] = json!(presale);
    data["account_presale_sq_id"] = json!(sq);
    data
}

/// A web-hosting order (plan 300200: a Domain and an identifier in its realm).
fn hosting(username: &str, password: &str) -> Value {
    order(json!({
        "service_type_id": em::WEB_HOSTING_TYPE_ID,
        "package": {"plan_id": em::HOSTING_STARTER_PLAN_ID},
        "configuration": [{"type_id": em::DOMAIN_PROPERTY_ID, "value": "example.com"}],
        "contacts": [],
        "identifier": {"username": username, "realm": em::HOSTING_REALM, "password": password}
    }))
}

fn payment(category: &str) -> Value {
    json!({"transaction_category": category, "reference": "err", "amount": "10.00",
           "transaction_date": "2026-11-22"})
}

/// One documented string: the data of a command that makes the worker send `operation`
/// (in `stage`) under the condition the page gives for `expected`.
struct Case {
    operation: &'static str,
    stage: &'static str,
    expected: String,
    data: Value,
}

fn case(operation: &'static str, stage: &'static str, expected: &str, data: Value) -> Case {
    Case {
        operation,
        stage,
        expected: expected.to_string(),
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_error_the_worker_can_meet_reaches_the_failed_event_verbatim() {
    let mut h = Harness::start("em-errors").await;
    let platform = platform(&h.sim_url);
    // Orders other systems started: the commands resume them with an account that is not
    // theirs, so CompleteOrder succeeds and AddNote or CreatePayment meets that account.
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(packaged(&platform, false).await);
    }
    let (unconfigured, _) = packaged(&platform, false).await;
    let (configured, configured_sq) = packaged(&platform, true).await;
    let nbn_sq = packaged_nbn(&platform).await;
    let packaged_presale = em::PACKAGED_PRESALE_ID;
    let any_account = |account: i64| json!({"account": {"account_id": account}});
    let with = |mut data: Value, extra: Value| {
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        data
    };

    let cases = vec![
        // StartOrder (W API/Orders/StartOrder, End User Account Validation).
        case(
            "StartOrder",
            "start_order",
            "Missing account id",
            order(any_account(0)),
        ),
        case(
            "StartOrder",
            "start_order",
            "Invalid account id",
            order(any_account(12345)),
        ),
        case(
            "StartOrder",
            "start_order",
            "Undefined account",
            order(any_account(199999)),
        ),
        // "… or account belong to other provider".
        case(
            "StartOrder",
            "start_order",
            "Undefined account",
            order(any_account(em::FOREIGN_ACCOUNT_ID)),
        ),
        case(
            "StartOrder",
            "start_order",
            "Account is currently not active",
            order(any_account(em::SUSPENDED_ACCOUNT_ID)),
        ),
        case(
            "StartOrder",
            "start_order",
            &format!(
                "You will not able to create new order until the restriction in place gets \
                 lifted. Restriction Id #'{}'",
                em::ORDER_RESTRICTION_ID
            ),
            order(any_account(em::ORDER_RESTRICTED_ACCOUNT_ID)),
        ),
        case(
            "StartOrder",
            "start_order",
            "Purchase order length exceed limit",
            order(json!({"purchase_order": "P".repeat(51)})),
        ),
        // CheckUsernameAvailability (K): with the realm appended, over 80 characters.
        case(
            "CheckUsernameAvailability",
            "check_username",
            "Username too long.",
            order(json!({"account": {"new": {
                "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com",
                "portal_login": {"username": "u".repeat(70), "password": "portal-pass-1"}}}})),
        ),
        // The SQ5 strings of the Set calls, met by SetServiceConfiguration, the first Set
        // call, on the SQ a resumed order names.
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Missing Account Presale SQ ID",
            resumed(packaged_presale, 0, json!({})),
        ),
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Account Presale SQ does not exist",
            resumed(packaged_presale, 369999, json!({})),
        ),
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Account does not exist",
            resumed(packaged_presale, em::ORPHAN_SQ_ID, json!({})),
        ),
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Invalid Account ID",
            resumed(packaged_presale, em::FOREIGN_SQ_ID, json!({})),
        ),
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Missing Package Plan",
            resumed(packaged_presale, em::PACKAGED_SQ_ID, json!({})),
        ),
        // The SQ holds NBN 50: its Modem Serial is missing from plan 300100's values.
        case(
            "SetServiceConfiguration",
            "set_configuration",
            "Missing required properties",
            resumed(packaged_presale, nbn_sq, json!({})),
        ),
        // SetServiceFeatureSetup: an OptionType the feature does not have.
        case(
            "SetServiceFeatureSetup",
            "set_features",
            &format!(
                "Option Type ID (9) supplied for Service Feature Type ({}) is not valid",
                em::AFTER_HOURS_FEATURE_ID
            ),
            order(
                json!({"features": [{"type_id": em::AFTER_HOURS_FEATURE_ID, "option_type_id": 9}]}),
            ),
        ),
        // SetServiceIdentifier.
        case(
            "SetServiceIdentifier",
            "set_identifier",
            "Missing Username",
            hosting(" ", "long-enough-1"),
        ),
        case(
            "SetServiceIdentifier",
            "set_identifier",
            "Invalid Username",
            hosting("jane doe", "long-enough-1"),
        ),
        case(
            "SetServiceIdentifier",
            "set_identifier",
            "Missing Password",
            hosting("jane", ""),
        ),
        case(
            "SetServiceIdentifier",
            "set_identifier",
            "Invalid Password",
            hosting("jane", "7Qz!x"),
        ),
        // CompleteOrder (W API/Orders/CompleteOrder): the resumed presales hold what the
        // string names; the Set calls go to the completed order's SQ, which takes them.
        case(
            "CompleteOrder",
            "complete_order",
            "Account presale is not valid for order",
            resumed(em::COMPLETED_PRESALE_ID, em::COMPLETED_SQ_ID, json!({})),
        ),
        case(
            "CompleteOrder",
            "complete_order",
            "Missing customer account",
            resumed(em::ORPHAN_PRESALE_ID, em::COMPLETED_SQ_ID, json!({})),
        ),
        case(
            "CompleteOrder",
            "complete_order",
            "Missing service config",
            resumed(unconfigured, em::COMPLETED_SQ_ID, json!({})),
        ),
        case(
            "CompleteOrder",
            "complete_order",
            &format!("Account Presale SQ #{configured_sq} missing mandatory service configuration"),
            resumed(configured, em::COMPLETED_SQ_ID, json!({})),
        ),
        case(
            "CompleteOrder",
            "complete_order",
            "Missing credit check",
            order(any_account(em::CREDIT_CHECK_ACCOUNT_ID)),
        ),
        // AddNote (W API/Account/AddNote) on the command's account.
        case(
            "AddNote",
            "add_note",
            "Invalid Account ID",
            resumed(
                open[0].0,
                open[0].1,
                with(
                    any_account(199999),
                    json!({"note": {"subject": "s", "detail": "d"}}),
                ),
            ),
        ),
        case(
            "AddNote",
            "add_note",
            "Provided Account ID does not belong to caller Account",
            resumed(
                open[1].0,
                open[1].1,
                with(
                    any_account(em::FOREIGN_ACCOUNT_ID),
                    json!({"note": {"subject": "s", "detail": "d"}}),
                ),
            ),
        ),
        // CreatePayment (W API/RetailServices/CreatePayment).
        case(
            "CreatePayment",
            "create_payment",
            "The customer account ID is invalid.",
            resumed(
                open[2].0,
                open[2].1,
                with(
                    any_account(199999),
                    json!({"payment": payment("CREDITCARD")}),
                ),
            ),
        ),
        case(
            "CreatePayment",
            "create_payment",
            "You can only operate on accounts that are your direct children.",
            resumed(
                open[3].0,
                open[3].1,
                with(
                    any_account(em::FOREIGN_ACCOUNT_ID),
                    json!({"payment": payment("CREDITCARD")}),
                ),
            ),
        ),
        case(
            "CreatePayment",
            "create_payment",
            INVALID_CATEGORY,
            order(json!({"payment": payment("BITCOIN")})),
        ),
    ];

    let worker = h.spawn_worker();
    let ids: Vec<String> = (0..cases.len()).map(|i| format!("em-err-{i}")).collect();
    for (id, case) in ids.iter().zip(&cases) {
        h.publish(&json!({"command_id": id, "type": "service_order.submit", "data": case.data}))
            .await;
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&id_refs).await;
    h.settle(Duration::from_millis(200)).await;

    let calls = h.calls().await;
    for (id, case) in ids.iter().zip(&cases) {
        let terminal: Vec<_> = h
            .events_of(id)
            .into_iter()
            .filter(|e| e.is_terminal())
            .collect();
        assert_eq!(terminal.len(), 1, "{id}: one terminal event");
        let failed = terminal[0];
        assert_eq!(
            failed.data.outcome,
            Outcome::Failed,
            "{id}: {:?}",
            failed.data
        );
        assert_eq!(
            failed.data.reason.as_deref(),
            Some("permanent_error"),
            "{id}"
        );
        assert_eq!(
            failed.data.error.as_deref(),
            Some(case.expected.as_str()),
            "{id}"
        );
        let step = format!("step.service_order.{}.failed", case.stage);
        assert!(
            h.events_of(id).iter().any(|e| e.routing_key() == step),
            "{id}: {step}"
        );
        // The refused call was sent once: a permanent error is not retried.
        let key = format!("{id}/{}", case.stage);
        let sent = calls
            .iter()
            .filter(|c| c["idempotency_key"] == key.as_str() && c["operation"] == case.operation)
            .count();
        assert_eq!(sent, 1, "{id}: {} under {key}", case.operation);
    }
    worker.stop().await;
}

/// Sends `operation`'s request element with what `fields` writes (WS-Security on the plain
/// listener) and returns the faultstring of the Client fault it is refused with.
async fn refusal(
    sim: &sim_server::Sim,
    service: &str,
    operation: &str,
    fields: impl FnOnce(&mut XmlWriter),
) -> String {
    let element = format!("api:{}", em::request_element(operation).unwrap());
    let mut w = XmlWriter::new();
    w.start_with(
        "SOAP-ENV:Envelope",
        &[
            ("xmlns:SOAP-ENV", em::SOAP11_ENV_NS),
            ("xmlns:api", em::API_NS),
        ],
    )
    .start("SOAP-ENV:Header");
    wsse::write_security(&mut w, em::SIM_USERNAME, &Secret::new(em::SIM_PASSWORD));
    w.end("SOAP-ENV:Header")
        .start("SOAP-ENV:Body")
        .start(&element);
    fields(&mut w);
    w.end(&element)
        .end("SOAP-ENV:Body")
        .end("SOAP-ENV:Envelope");
    let response = sim
        .http
        .post(format!("{}/{service}", sim.base))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(w.finish())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500, "{operation}");
    let raw = response.text().await.unwrap();
    let doc = Element::parse(&raw).unwrap();
    let fault = doc
        .path(&["Body", "Fault"])
        .unwrap_or_else(|| panic!("{raw}"));
    assert_eq!(
        fault.text_at(&["faultcode"]).unwrap(),
        "SOAP-ENV:Client",
        "{raw}"
    );
    fault.text_at(&["faultstring"]).unwrap().to_string()
}

fn contact(w: &mut XmlWriter, addresses: usize, phones: usize, emails: usize) {
    w.start("ContactCollections").start("Contact");
    w.leaf("Type", em::TECHNICAL_CONTACT_TYPE_ID)
        .leaf("FirstName", "Jane")
        .leaf("LastName", "Citizen");
    for _ in 0..addresses {
        w.start("Details");
        for _ in 0..phones {
            w.leaf("Phone", "0299998888");
        }
        for _ in 0..emails {
            w.leaf("Email", "jane@example.com");
        }
        w.end("Details");
    }
    w.end("Contact").end("ContactCollections");
}

fn feature(w: &mut XmlWriter, type_id: i64, identifier: Option<&str>) {
    w.start("ServiceFeatures").start("ServiceFeature");
    w.start_with("Type", &[("ID", &type_id.to_string())])
        .end("Type");
    if let Some(identifier) = identifier {
        w.leaf("FeatureIdentifier", identifier);
    }
    w.end("ServiceFeature").end("ServiceFeatures");
}

/// The documented strings no command can make the worker meet, each refused by the
/// simulator under its documented condition. Why the worker cannot meet them:
/// - StartOrder "External contract identifier length exceed limit", "Invalid cumulus user
///   id", "Undefined cumulus user": billflow's StartOrder sends neither
///   ExternalContractIdentifier nor CumulusUserID (the command has no such fields).
/// - CompleteOrder "Missing account presale id", "Invalid account presale id", "Undefined
///   account presale": every path reaches CompleteOrder only after GetAvailablePackages
///   and SelectPackagePlan took the same presale id. "Missing service qualification":
///   GetAvailablePackages refuses such a presale first, with the same words. "Missing
///   package plan": SelectPackagePlan always runs before. Its SP account validation: a
///   presale of such an account never holds an SQ (the SQ calls refuse it with the same
///   strings, which service_order.rs asserts), so GetAvailablePackages stops the order.
/// - The SQ5 strings of SetServiceFeatureSetup, SetServiceContacts, SetServiceIdentifier:
///   SetServiceConfiguration runs first on the same SQ (every plan has properties) and is
///   refused with the same string (asserted above).
/// - SetServiceConfiguration "Unknown properties received", SetServiceFeatureSetup "No
///   Service Features to set for Account Presale SQ:", "… cannot have identifier", "… must
///   have identifier", "UnknownFeatureTypeID": the worker checks the command's values
///   against the requirements of the same plan and sends only what they list; a resumed
///   SQ of another plan is refused earlier by SetServiceConfiguration.
/// - SetServiceContacts "Only 1 Primary Address/Phone Number/Email Address required.":
///   billflow's contact has one address (Details) with one Phone and one Email.
/// - GetServiceIdentifierRealm's four: the worker asks only for service plans
///   GetAvailablePackages named, after GetServiceConfigurationRequirements took the same id.
/// - CheckUsernameAvailability "Username must be provided": the command parser refuses a
///   portal login without a username.
/// - AddNote's Object Type, Service and Category strings: add_note always sends
///   ObjectTypeID 1, the account's integer id, and no CategoryID.
#[tokio::test]
async fn the_strings_no_command_can_reach_are_refused_by_the_simulator() {
    let sim = sim_server::start().await;
    let platform = platform(&sim.base);
    let check = |expected: &str, got: String| assert_eq!(got, expected);

    // StartOrder.
    let start = |extra: (&'static str, String)| {
        move |w: &mut XmlWriter| {
            w.leaf("AccountID", em::ACTIVE_ACCOUNT_ID)
                .leaf(extra.0, extra.1);
        }
    };
    check(
        "External contract identifier length exceed limit",
        refusal(
            &sim,
            "Orders",
            "StartOrder",
            start(("ExternalContractIdentifier", "E".repeat(51))),
        )
        .await,
    );
    check(
        "Invalid cumulus user id",
        refusal(
            &sim,
            "Orders",
            "StartOrder",
            start(("CumulusUserID", "12345".into())),
        )
        .await,
    );
    check(
        "Undefined cumulus user",
        refusal(
            &sim,
            "Orders",
            "StartOrder",
            start(("CumulusUserID", "123456".into())),
        )
        .await,
    );

    // CompleteOrder.
    let complete = |presale: Option<i64>| {
        move |w: &mut XmlWriter| {
            if let Some(presale) = presale {
                w.leaf("AccountPresaleID", presale);
            }
        }
    };
    for (presale, expected) in [
        (None, "Missing account presale id"),
        (Some(0), "Missing account presale id"),
        (Some(12345), "Invalid account presale id"),
        (Some(199999), "Undefined account presale"),
        (
            Some(em::UNDEFINED_STATUS_PRESALE_ID),
            "Undefined account status",
        ),
        (
            Some(em::UNDEFINED_TYPE_PRESALE_ID),
            "Undefined account type",
        ),
        (
            Some(em::WHOLESALE_PRESALE_ID),
            "Account Type is not eligible to create order",
        ),
        (
            Some(em::CAN_NOT_ORDER_PRESALE_ID),
            "Order creation is restricted for this account",
        ),
        (
            Some(em::SUSPENDED_PRESALE_ID),
            "This account is 'Suspended' - please contact your upstream provider",
        ),
        (
            Some(em::RESTRICTED_PRESALE_ID),
            "This account is 'Restricted' - please contact your upstream provider",
        ),
    ] {
        check(
            expected,
            refusal(&sim, "Orders", "CompleteOrder", complete(presale)).await,
        );
    }
    let presale = platform
        .call(&wire::StartOrder {
            account_id: em::ACTIVE_ACCOUNT_ID,
            purchase_order: None,
            promo_code: None,
        })
        .await
        .unwrap();
    check(
        "Missing service qualification",
        refusal(&sim, "Orders", "CompleteOrder", complete(Some(presale))).await,
    );
    let sq = platform
        .call(&wire::PerformSimpleSQ {
            account_presale_id: presale,
            service_type_id: em::BUSINESS_SUPPORT_TYPE_ID,
        })
        .await
        .unwrap();
    check(
        "Missing package plan",
        refusal(&sim, "Orders", "CompleteOrder", complete(Some(presale))).await,
    );
    platform
        .call(&wire::SelectPackagePlan {
            account_presale_id: presale,
            package_plan_id: em::BUSINESS_SUPPORT_BASIC_PLAN_ID,
        })
        .await
        .unwrap();

    // The SQ5 strings of the Set calls after SetServiceConfiguration.
    for (sq_id, expected) in [
        (0, "Missing Account Presale SQ ID"),
        (369999, "Account Presale SQ does not exist"),
        (em::ORPHAN_SQ_ID, "Account does not exist"),
        (em::FOREIGN_SQ_ID, "Invalid Account ID"),
        (em::PACKAGED_SQ_ID, "Missing Package Plan"),
    ] {
        check(
            expected,
            refusal(&sim, "Services", "SetServiceFeatureSetup", |w| {
                w.leaf("AccountPresaleSQID", sq_id);
                feature(w, em::AFTER_HOURS_FEATURE_ID, None);
            })
            .await,
        );
        check(
            expected,
            refusal(&sim, "Services", "SetServiceContacts", |w| {
                w.leaf("AccountPresaleSQID", sq_id);
                contact(w, 1, 1, 1);
            })
            .await,
        );
        check(
            expected,
            refusal(&sim, "Services", "SetServiceIdentifier", |w| {
                w.leaf("AccountPresaleSQID", sq_id)
                    .leaf("Username", "jane")
                    .leaf("Realm", em::HOSTING_REALM)
                    .leaf("Password", "long-enough-1");
            })
            .await,
        );
    }

    // SetServiceConfiguration and SetServiceFeatureSetup on the plan's own SQ.
    check(
        "Unknown properties received",
        refusal(&sim, "Services", "SetServiceConfiguration", |w| {
            w.leaf("PresaleSQID", sq).start("Properties");
            for (type_id, value) in [(em::SITE_NAME_PROPERTY_ID, "HQ"), (599999, "x")] {
                w.start("PropertyValue")
                    .leaf("TypeID", type_id)
                    .leaf("Value", value)
                    .end("PropertyValue");
            }
            w.end("Properties");
        })
        .await,
    );
    check(
        &format!("No Service Features to set for Account Presale SQ: {sq}"),
        refusal(&sim, "Services", "SetServiceFeatureSetup", |w| {
            w.leaf("AccountPresaleSQID", sq);
        })
        .await,
    );
    check(
        &format!(
            "Service Feature Type ({}) cannot have identifier",
            em::AFTER_HOURS_FEATURE_ID
        ),
        refusal(&sim, "Services", "SetServiceFeatureSetup", |w| {
            w.leaf("AccountPresaleSQID", sq);
            feature(w, em::AFTER_HOURS_FEATURE_ID, Some("x"));
        })
        .await,
    );
    check(
        "UnknownFeatureTypeID",
        refusal(&sim, "Services", "SetServiceFeatureSetup", |w| {
            w.leaf("AccountPresaleSQID", sq);
            feature(w, 699999, None);
        })
        .await,
    );
    let nbn_sq = packaged_nbn(&platform).await;
    check(
        &format!(
            "Service Feature Type ({}) must have identifier",
            em::STATIC_IP_FEATURE_ID
        ),
        refusal(&sim, "Services", "SetServiceFeatureSetup", |w| {
            w.leaf("AccountPresaleSQID", nbn_sq);
            feature(w, em::STATIC_IP_FEATURE_ID, None);
        })
        .await,
    );

    // SetServiceContacts: a second primary address, phone or email.
    for ((addresses, phones, emails), expected) in [
        ((2, 1, 1), "Only 1 Primary Address required."),
        ((1, 2, 1), "Only 1 Primary Phone Number required."),
        ((1, 1, 2), "Only 1 Primary Email Address required."),
    ] {
        check(
            expected,
            refusal(&sim, "Services", "SetServiceContacts", |w| {
                w.leaf("AccountPresaleSQID", sq);
                contact(w, addresses, phones, emails);
            })
            .await,
        );
    }

    // GetServiceIdentifierRealm.
    for (plan, expected) in [
        (None, "Missing Service Plan ID"),
        (Some(12345), "Invalid Service Plan ID"),
        (Some(399999), "Undefined Service Plan"),
        (Some(em::UNTYPED_SERVICE_PLAN_ID), "Undefined Service Type"),
    ] {
        check(
            expected,
            refusal(&sim, "Services", "GetServiceIdentifierRealm", |w| {
                if let Some(plan) = plan {
                    w.leaf("ServicePlanID", plan);
                }
            })
            .await,
        );
    }

    // CheckUsernameAvailability.
    for username in [None, Some(" ")] {
        check(
            "Username must be provided",
            refusal(&sim, "Accounts", "CheckUsernameAvailability", |w| {
                if let Some(username) = username {
                    w.leaf("Username", username);
                }
            })
            .await,
        );
    }

    // AddNote.
    let account = em::ACTIVE_ACCOUNT_ID.to_string();
    let foreign_service = em::FOREIGN_SERVICE_ID.to_string();
    let orphan_service = em::ORPHAN_SERVICE_ID.to_string();
    for ((type_id, value, category), expected) in [
        (
            (None, Some(&*account), None),
            "Missing mandatory Object Type ID",
        ),
        (
            (Some("one"), Some(&*account), None),
            "Object Type ID must be Integer",
        ),
        (
            (Some("99"), Some(&*account), None),
            "Object Type ID does not exist in the system",
        ),
        (
            (Some("2"), Some(&*account), None),
            "Object Type ID must be 1 or 5",
        ),
        (
            (Some("1"), None, None),
            "Missing mandatory Object Type Value",
        ),
        (
            (Some("1"), Some("x"), None),
            "Object Type Value must be Integer",
        ),
        ((Some("5"), Some("1"), None), "Invalid Service ID"),
        (
            (Some("5"), Some(&*foreign_service), None),
            "Provided Service ID does not belong to caller Account",
        ),
        (
            (Some("5"), Some(&*orphan_service), None),
            "Provided Service ID does not belong to a Valid Account",
        ),
        (
            (Some("1"), Some(&*account), Some("7")),
            "Invalid Category ID",
        ),
    ] {
        check(
            expected,
            refusal(&sim, "Accounts", "AddNote", |w| {
                if let Some(type_id) = type_id {
                    w.leaf("ObjectTypeID", type_id);
                }
                if let Some(value) = value {
                    w.leaf("ObjectTypeValue", value);
                }
                w.leaf("NoteSubject", "s").leaf("NoteDetail", "d");
                if let Some(category) = category {
                    w.leaf("CategoryID", category);
                }
            })
            .await,
        );
    }

    sim.shutdown.cancel();
    sim.server.await.unwrap().unwrap();
}
