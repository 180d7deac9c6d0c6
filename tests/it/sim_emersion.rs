//! `billflow sim` Emersion part, driven over HTTP with hand-written SOAP 1.1 requests.

use std::time::{Duration, Instant};

use crate::common::sim_server;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use billflow::sim::emersion::*;
use billflow::xml::Element;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";

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

/// A WS-Security header whose PasswordDigest is made with `password`.
fn security(username: &str, password: &str) -> String {
    let nonce = *uuid::Uuid::new_v4().as_bytes();
    let created = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    security_with(
        username,
        &STANDARD.encode(nonce),
        &created,
        &digest(&nonce, &created, password),
    )
}

fn security_with(username: &str, nonce: &str, created: &str, digest: &str) -> String {
    format!(
        r#"<SOAP-ENV:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><wsse:UsernameToken><wsse:Username>{username}</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{nonce}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></SOAP-ENV:Header>"#
    )
}

/// base64(SHA-1(nonce ++ created ++ password)).
fn digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// The request element is the operation's documented one; an unknown operation's is
/// `{operation}Request`.
fn envelope(header: &str, operation: &str, fields: &str) -> String {
    let element = request_element(operation)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{operation}Request"));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" xmlns:api="urn:emersion:api">{header}<SOAP-ENV:Body><api:{element}>{fields}</api:{element}></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// `<api:Name>value</api:Name>` for each pair.
fn leaves(pairs: &[(&str, &dyn std::fmt::Display)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("<api:{name}>{value}</api:{name}>"))
        .collect()
}

fn action(operation: &str) -> String {
    format!("\"urn:emersion:api#{operation}\"")
}

struct Reply {
    status: u16,
    content_type: String,
    raw: String,
    doc: Element,
}

impl Reply {
    fn fault(&self) -> (String, String) {
        let fault = self
            .doc
            .path(&["Body", "Fault"])
            .unwrap_or_else(|| panic!("no fault in {}", self.raw));
        let text = fault.text_at(&["faultstring"]).unwrap().to_string();
        assert_eq!(
            fault.text_at(&["detail", "Error"]).unwrap(),
            text,
            "{}",
            self.raw
        );
        (fault.text_at(&["faultcode"]).unwrap().to_string(), text)
    }
}

impl Sim {
    async fn post(&self, service: &str, soap_action: Option<&str>, body: String) -> Reply {
        self.post_keyed(service, soap_action, None, body).await
    }

    /// Like [`Sim::post`], with an `Idempotency-Key` as billflow sends it.
    async fn post_keyed(
        &self,
        service: &str,
        soap_action: Option<&str>,
        key: Option<&str>,
        body: String,
    ) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/{service}", self.base))
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(body);
        if let Some(soap_action) = soap_action {
            request = request.header("SOAPAction", soap_action);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let raw = response.text().await.unwrap();
        let doc = Element::parse(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
        Reply {
            status,
            content_type,
            raw,
            doc,
        }
    }

    /// A correctly authenticated call with a matching SOAPAction.
    async fn call(&self, service: &str, operation: &str, fields: &str) -> Reply {
        let body = envelope(&security(SIM_USERNAME, SIM_PASSWORD), operation, fields);
        self.post(service, Some(&action(operation)), body).await
    }

    /// A correctly authenticated call with a matching SOAPAction and this key.
    async fn call_keyed(&self, service: &str, operation: &str, fields: &str, key: &str) -> Reply {
        let body = envelope(&security(SIM_USERNAME, SIM_PASSWORD), operation, fields);
        self.post_keyed(service, Some(&action(operation)), Some(key), body)
            .await
    }

    async fn last_call(&self) -> Value {
        let calls = self.get("/_sim/calls").await;
        calls["calls"].as_array().unwrap().last().cloned().unwrap()
    }

    /// The `{operation}Response` element of a successful call.
    async fn ok(&self, service: &str, operation: &str, fields: &str) -> Element {
        let reply = self.call(service, operation, fields).await;
        assert_eq!(reply.status, 200, "{operation}: {}", reply.raw);
        let name = response_element(operation).to_string();
        reply
            .doc
            .path(&["Body", &name])
            .unwrap_or_else(|| panic!("no {name} in {}", reply.raw))
            .clone()
    }

    /// The text of the Client fault a call is refused with.
    async fn refused(&self, service: &str, operation: &str, fields: &str) -> String {
        let reply = self.call(service, operation, fields).await;
        assert_eq!(reply.status, 500, "{operation}: {}", reply.raw);
        let (code, text) = reply.fault();
        assert_eq!(code, "SOAP-ENV:Client", "{operation}: {}", reply.raw);
        text
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

    async fn fault(&self, fault: Value) {
        let response = self
            .http
            .post(format!("{}/_sim/faults", self.base))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
    }

    async fn emersion(&self) -> Value {
        self.get("/_sim/state").await["emersion"].clone()
    }

    async fn presale_state(&self, presale_id: i64) -> Value {
        let state = self.emersion().await;
        state["presales"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["presale_id"] == presale_id)
            .cloned()
            .unwrap_or_else(|| panic!("presale {presale_id} not in {state}"))
    }

    async fn start_order(&self) -> i64 {
        let reply = self
            .ok(
                "Orders",
                "StartOrder",
                &leaves(&[("AccountID", &ACTIVE_ACCOUNT_ID)]),
            )
            .await;
        reply.parse_at(&["AccountPresaleID"]).unwrap()
    }

    async fn simple_sq(&self, presale_id: i64, service_type_id: i64) -> i64 {
        let reply = self
            .ok(
                "Orders",
                "PerformSimpleSQ",
                &sq_fields(presale_id, service_type_id),
            )
            .await;
        reply.parse_at(&["AccountPresaleSQID"]).unwrap()
    }

    async fn select(&self, presale_id: i64, package_plan_id: i64) {
        self.ok(
            "Orders",
            "SelectPackagePlan",
            &leaves(&[
                ("AccountPresaleID", &presale_id),
                ("PackagePlanID", &package_plan_id),
            ]),
        )
        .await;
    }

    /// A new presale of the active account with a simple SQ for `service_type_id` and
    /// `package_plan_id` selected: the SQ's id.
    async fn packaged_sq(&self, service_type_id: i64, package_plan_id: i64) -> (i64, i64) {
        let presale_id = self.start_order().await;
        let sq_id = self.simple_sq(presale_id, service_type_id).await;
        self.select(presale_id, package_plan_id).await;
        (presale_id, sq_id)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.0.server.await.unwrap().unwrap();
    }
}

fn sq_fields(presale_id: i64, service_type_id: i64) -> String {
    leaves(&[
        ("AccountPresaleID", &presale_id),
        ("ServiceTypeID", &service_type_id),
    ])
}

fn configuration(sq_id: i64, values: &[(i64, &str)]) -> String {
    let values: String = values
        .iter()
        .map(|(id, value)| {
            format!(
                "<api:PropertyValue>{}</api:PropertyValue>",
                leaves(&[("TypeID", id), ("Value", value)])
            )
        })
        .collect();
    format!(
        "{}<api:Properties>{values}</api:Properties>",
        leaves(&[("PresaleSQID", &sq_id)])
    )
}

/// `(Type ID, FeatureIdentifier)` per feature, an empty identifier left out; each at the
/// default OptionType.
fn features(sq_id: i64, values: &[(i64, &str)]) -> String {
    let values: String = values
        .iter()
        .map(|(id, identifier)| {
            let identifier = if identifier.is_empty() {
                String::new()
            } else {
                leaves(&[("FeatureIdentifier", identifier)])
            };
            format!(
                r#"<api:ServiceFeature><api:Type ID="{id}">{id}</api:Type>{identifier}</api:ServiceFeature>"#
            )
        })
        .collect();
    format!(
        "{}<api:ServiceFeatures>{values}</api:ServiceFeatures>",
        leaves(&[("AccountPresaleSQID", &sq_id)])
    )
}

/// `(type, first name, last name, date of birth)` per contact.
fn contacts(sq_id: i64, contacts: &[(i64, &str, &str, &str)]) -> String {
    let contacts: String = contacts
        .iter()
        .map(|(type_id, first, last, born)| {
            format!(
                "<api:Contact>{}<api:Details>{}</api:Details></api:Contact>",
                leaves(&[
                    ("Type", type_id),
                    ("Title", &"Ms"),
                    ("FirstName", first),
                    ("LastName", last),
                    ("DateOfBirth", born),
                ]),
                leaves(&[("Email", &"jane@example.com"), ("Phone", &"0298765432")]),
            )
        })
        .collect();
    format!(
        "{}<api:ContactCollections>{contacts}</api:ContactCollections>",
        leaves(&[("AccountPresaleSQID", &sq_id)])
    )
}

fn identifier(sq_id: i64, username: &str, realm: &str, password: &str) -> String {
    leaves(&[
        ("AccountPresaleSQID", &sq_id),
        ("Username", &username),
        ("Realm", &realm),
        ("Password", &password),
    ])
}

fn plan_fields(service_plan_id: i64) -> String {
    leaves(&[("ServicePlanID", &service_plan_id)])
}

/// The `field` of each `item` in the list at `path` below `el` (`el` itself when empty).
fn texts(el: &Element, path: &[&str], item: &str, field: &str) -> Vec<String> {
    el.path(path)
        .unwrap_or_else(|| panic!("no {path:?} in {el:?}"))
        .children_named(item)
        .map(|i| i.text_at(&[field]).unwrap().to_string())
        .collect()
}

fn terms_fields(package_plan_id: i64) -> String {
    format!(
        "<api:ObjectMapping>{}</api:ObjectMapping>",
        leaves(&[("PackagePlanID", &package_plan_id)])
    )
}

fn address_fields(service_type_id: i64, address: &[(&str, &str)]) -> String {
    let details: String = address
        .iter()
        .map(|(name, value)| format!("<api:{name}>{value}</api:{name}>"))
        .collect();
    format!(
        "{}<api:AddressDetails>{details}</api:AddressDetails>",
        leaves(&[("ServiceTypeID", &service_type_id)])
    )
}

fn nwb_fields(presale_id: i64, service_type_id: i64, location_id: &str) -> String {
    let details = leaves(&[("ServiceProvider", &"AAPT"), ("LocationID", &location_id)]);
    format!(
        "{}<api:ServiceIdentifierDetails>{details}</api:ServiceIdentifierDetails>",
        leaves(&[
            ("AccountPresaleID", &presale_id),
            ("ServiceTypeID", &service_type_id),
            ("TransferType", &"New"),
        ])
    )
}

#[tokio::test]
async fn simple_sq_order_end_to_end() {
    let sim = start().await;

    let reply = sim
        .call(
            "Orders",
            "StartOrder",
            &leaves(&[
                ("AccountID", &ACTIVE_ACCOUNT_ID),
                ("PurchaseOrder", &"PO-1"),
                ("PromoCode", &"WELCOME"),
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.content_type, "text/xml; charset=utf-8");
    // The pinned shape: SOAP-ENV envelope, response and children in the ns1 prefix.
    assert!(reply.raw.contains("<SOAP-ENV:Envelope"), "{}", reply.raw);
    assert!(
        reply.raw.contains(&format!(
            "<ns1:StartOrderResponse><ns1:AccountPresaleID>{FIRST_PRESALE_ID}</ns1:AccountPresaleID></ns1:StartOrderResponse>"
        )),
        "{}",
        reply.raw
    );
    let presale_id = FIRST_PRESALE_ID;

    let sq = sim
        .ok(
            "Orders",
            "PerformSimpleSQ",
            &sq_fields(presale_id, BUSINESS_SUPPORT_TYPE_ID),
        )
        .await;
    let sq_id: i64 = sq.parse_at(&["AccountPresaleSQID"]).unwrap();
    assert_eq!(sq_id, FIRST_SQ_ID);
    assert!(sq.child("ServiceQualificationResult").is_none());

    let packages = sim
        .ok(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    let plans: Vec<&Element> = packages.children_named("PackagePlan").collect();
    let ids: Vec<&str> = plans.iter().map(|p| p.text_at(&["ID"]).unwrap()).collect();
    assert_eq!(
        ids,
        [
            BUSINESS_SUPPORT_BASIC_PLAN_ID.to_string(),
            BUSINESS_SUPPORT_PLUS_PLAN_ID.to_string()
        ]
    );
    assert_eq!(plans[0].text_at(&["InternalName"]).unwrap(), "BIZ-SUP-1");
    assert_eq!(
        plans[0].text_at(&["ExternalName"]).unwrap(),
        "Business Support Basic"
    );
    let allowance = plans[0]
        .path(&["ServiceAllowances", "ServiceAllowance"])
        .unwrap();
    assert_eq!(
        allowance.text_at(&["ServicePlanID"]).unwrap(),
        BUSINESS_SUPPORT_SERVICE_PLAN_ID.to_string()
    );
    assert_eq!(
        allowance.text_at(&["ServiceTypeID"]).unwrap(),
        BUSINESS_SUPPORT_TYPE_ID.to_string()
    );
    assert_eq!(allowance.text_at(&["Quantity"]).unwrap(), "1");
    assert_eq!(allowance.text_at(&["Mandatory"]).unwrap(), "true");

    let selected = sim
        .ok(
            "Orders",
            "SelectPackagePlan",
            &leaves(&[
                ("AccountPresaleID", &presale_id),
                ("PackagePlanID", &BUSINESS_SUPPORT_BASIC_PLAN_ID),
                ("ResetAnyExistingServiceConfiguration", &true),
            ]),
        )
        .await;
    let plan = selected.child("PackagePlan").unwrap();
    assert_eq!(
        plan.text_at(&["ID"]).unwrap(),
        BUSINESS_SUPPORT_BASIC_PLAN_ID.to_string()
    );
    assert_eq!(plan.text_at(&["InternalName"]).unwrap(), "BIZ-SUP-1");
    assert_eq!(
        plan.text_at(&["ExternalName"]).unwrap(),
        "Business Support Basic"
    );

    let fields = format!(
        "{}{}",
        plan_fields(BUSINESS_SUPPORT_SERVICE_PLAN_ID),
        leaves(&[("TransferType", &"New")])
    );
    let requirements = sim
        .ok("Services", "GetServiceConfigurationRequirements", &fields)
        .await;
    let properties: Vec<&Element> = requirements
        .child("Properties")
        .unwrap()
        .children_named("Property")
        .collect();
    assert_eq!(properties.len(), 2);
    assert_eq!(
        properties[0].text_at(&["TypeID"]).unwrap(),
        SITE_NAME_PROPERTY_ID.to_string()
    );
    assert_eq!(properties[0].text_at(&["Name"]).unwrap(), "Site Name");
    assert_eq!(properties[0].text_at(&["ValueType"]).unwrap(), "String");
    assert_eq!(properties[0].text_at(&["IsMandatory"]).unwrap(), "true");
    assert!(properties[0].child("ValueList").is_none());
    assert_eq!(properties[1].text_at(&["ValueType"]).unwrap(), "List");
    assert_eq!(properties[1].text_at(&["IsMandatory"]).unwrap(), "false");
    let values: Vec<&str> = properties[1]
        .child("ValueList")
        .unwrap()
        .children_named("Value")
        .map(|v| v.text.as_str())
        .collect();
    assert_eq!(values, SUPPORT_TIERS);

    let set = sim
        .ok(
            "Services",
            "SetServiceConfiguration",
            &configuration(
                sq_id,
                &[
                    (SITE_NAME_PROPERTY_ID, "Head Office"),
                    (SUPPORT_TIER_PROPERTY_ID, "Gold"),
                ],
            ),
        )
        .await;
    assert_eq!(set.text_at(&["Status"]).unwrap(), "true");

    let feature_requirements = sim
        .ok(
            "Services",
            "GetServiceFeatureConfigurationRequirements",
            &plan_fields(BUSINESS_SUPPORT_SERVICE_PLAN_ID),
        )
        .await;
    let feature = feature_requirements.child("ServiceFeature").unwrap();
    let kind = feature.child("Type").unwrap();
    assert_eq!(
        kind.attr("ID"),
        Some(AFTER_HOURS_FEATURE_ID.to_string().as_str())
    );
    assert_eq!(kind.text, "After Hours");
    assert_eq!(
        feature.text_at(&["FeatureIdentifierType"]).unwrap(),
        "CANNOT_HAVE_IDENT"
    );
    let set = sim
        .ok(
            "Services",
            "SetServiceFeatureSetup",
            &features(sq_id, &[(AFTER_HOURS_FEATURE_ID, "")]),
        )
        .await;
    assert_eq!(set.text_at(&["Status"]).unwrap(), "true");

    let contact_requirements = sim
        .ok(
            "Services",
            "GetServiceContactRequirements",
            &plan_fields(BUSINESS_SUPPORT_SERVICE_PLAN_ID),
        )
        .await;
    let contact_type = contact_requirements
        .path(&["ContactTypes", "ContactType"])
        .unwrap();
    assert_eq!(
        contact_type.text_at(&["TypeID"]).unwrap(),
        TECHNICAL_CONTACT_TYPE_ID.to_string()
    );
    assert_eq!(contact_type.text_at(&["Name"]).unwrap(), "Technical");
    assert_eq!(contact_type.text_at(&["MinimumRequired"]).unwrap(), "1");
    assert_eq!(contact_type.text_at(&["MaximumRequired"]).unwrap(), "2");
    let set = sim
        .ok(
            "Services",
            "SetServiceContacts",
            &contacts(
                sq_id,
                &[(TECHNICAL_CONTACT_TYPE_ID, "Jane", "Citizen", "1980-02-29")],
            ),
        )
        .await;
    assert_eq!(set.text_at(&["Status"]).unwrap(), "true");

    let identifiers = sim
        .ok(
            "Services",
            "GetServiceIdentifierRequirements",
            &plan_fields(BUSINESS_SUPPORT_SERVICE_PLAN_ID),
        )
        .await;
    assert_eq!(identifiers.children_named("ServiceIdentifier").count(), 0);
    let realms = sim
        .ok(
            "Services",
            "GetServiceIdentifierRealm",
            &plan_fields(BUSINESS_SUPPORT_SERVICE_PLAN_ID),
        )
        .await;
    assert_eq!(realms.children_named("Realm").count(), 0);

    let terms = sim
        .ok(
            "Plans",
            "GetTermsAndConditions",
            &terms_fields(BUSINESS_SUPPORT_BASIC_PLAN_ID),
        )
        .await;
    let term = terms.child("TermsandConditions").unwrap();
    assert_eq!(
        term.text_at(&["TermsandConditionsID"]).unwrap(),
        BUSINESS_SUPPORT_BASIC_TERMS_ID.to_string()
    );
    assert!(!term
        .text_at(&["TermsandConditionsText"])
        .unwrap()
        .is_empty());

    let completed = sim
        .ok(
            "Orders",
            "CompleteOrder",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    // CompleteOrder answers only its Status; the created services show in serviceList.
    assert_eq!(completed.text_at(&["Status"]).unwrap(), "true");
    assert_eq!(completed.children.len(), 1, "{completed:?}");
    let listed = sim
        .ok(
            "Services",
            "serviceList",
            &leaves(&[("account_id", &ACTIVE_ACCOUNT_ID)]),
        )
        .await;
    let created: Vec<&Element> = listed
        .children_named("serviceListItem")
        .filter(|s| s.text_at(&["service_id"]).ok() == Some(FIRST_SERVICE_ID.to_string().as_str()))
        .collect();
    assert_eq!(created.len(), 1, "{listed:?}");
    assert_eq!(
        created[0].text_at(&["service_status"]).unwrap(),
        "Preactive"
    );

    let presale = sim.presale_state(presale_id).await;
    assert_eq!(presale["completed"], true);
    assert_eq!(presale["account_id"], ACTIVE_ACCOUNT_ID);
    assert_eq!(presale["purchase_order"], "PO-1");
    assert_eq!(presale["promo_code"], "WELCOME");
    assert_eq!(presale["package_plan_id"], BUSINESS_SUPPORT_BASIC_PLAN_ID);
    let sq = &presale["sqs"][0];
    assert_eq!(sq["sq_id"], sq_id);
    assert_eq!(sq["method"], "simple");
    assert_eq!(sq["result"], "Qualified");
    assert_eq!(sq["package_plan_id"], BUSINESS_SUPPORT_BASIC_PLAN_ID);
    assert_eq!(
        sq["configuration"],
        json!({ SITE_NAME_PROPERTY_ID.to_string(): "Head Office", SUPPORT_TIER_PROPERTY_ID.to_string(): "Gold" })
    );
    assert_eq!(
        sq["features"][AFTER_HOURS_FEATURE_ID.to_string()]["option_type_id"],
        1
    );
    assert_eq!(sq["contacts"][0]["first_name"], "Jane");
    assert_eq!(sq["contacts"][0]["date_of_birth"], "1980-02-29");
    assert_eq!(sq["contacts"][0]["email"], "jane@example.com");
    let state = sim.emersion().await;
    let service = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_id"] == FIRST_SERVICE_ID)
        .unwrap();
    assert_eq!(service["status"], "Preactive");
    assert_eq!(service["presale_id"], presale_id);
    assert_eq!(service["sq_id"], sq_id);

    let counts = sim.get("/_sim/calls").await["counts"].clone();
    for op in [
        "StartOrder",
        "PerformSimpleSQ",
        "GetAvailablePackages",
        "SelectPackagePlan",
        "GetServiceConfigurationRequirements",
        "SetServiceConfiguration",
        "SetServiceFeatureSetup",
        "SetServiceContacts",
        "GetTermsAndConditions",
        "CompleteOrder",
    ] {
        assert_eq!(counts[op], 1, "{op}: {counts}");
    }
    sim.stop().await;
}

#[tokio::test]
async fn general_phone_sq_order() {
    let sim = start().await;
    let presale_id = sim.start_order().await;
    let phone = |service_type_id: i64, number: &str| {
        leaves(&[
            ("AccountPresaleID", &presale_id),
            ("ServiceTypeID", &service_type_id),
            ("TransferType", &"New"),
            ("Identifier", &number.to_string()),
        ])
    };

    assert_eq!(
        sim.refused(
            "Orders",
            "PerformGeneralPhoneSQ",
            &phone(BUSINESS_SUPPORT_TYPE_ID, "0298765432")
        )
        .await,
        format!(
            "Service type id #{BUSINESS_SUPPORT_TYPE_ID} is not qualified for General Phone SQ"
        )
    );
    for bad in ["12345", "02 9876 5432", "02987654321"] {
        assert_eq!(
            sim.refused(
                "Orders",
                "PerformGeneralPhoneSQ",
                &phone(PHONE_LINE_TYPE_ID, bad)
            )
            .await,
            "Invalid phone number",
            "{bad:?}"
        );
    }
    let sq = sim
        .ok(
            "Orders",
            "PerformGeneralPhoneSQ",
            &phone(PHONE_LINE_TYPE_ID, "0298765432"),
        )
        .await;
    let sq_id: i64 = sq.parse_at(&["AccountPresaleSQID"]).unwrap();

    let packages = sim
        .ok(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    let ids: Vec<&str> = packages
        .children_named("PackagePlan")
        .map(|p| p.text_at(&["ID"]).unwrap())
        .collect();
    // The bundle holds a phone line too: offered on either of its services' SQs.
    assert_eq!(
        ids,
        [
            PHONE_BASIC_PLAN_ID.to_string(),
            NBN_PHONE_BUNDLE_PLAN_ID.to_string()
        ]
    );
    sim.select(presale_id, PHONE_BASIC_PLAN_ID).await;

    let terms = sim
        .ok(
            "Plans",
            "GetTermsAndConditions",
            &terms_fields(PHONE_BASIC_PLAN_ID),
        )
        .await;
    assert!(terms.children.is_empty(), "{terms:?}");

    sim.ok(
        "Services",
        "SetServiceConfiguration",
        &configuration(sq_id, &[(DIRECTORY_LISTING_PROPERTY_ID, "Unlisted")]),
    )
    .await;
    // Technical contacts are optional on this plan (0 to 1).
    let completed = sim
        .ok(
            "Orders",
            "CompleteOrder",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    assert_eq!(completed.text_at(&["Status"]).unwrap(), "true");
    let looked_up = sim
        .ok(
            "Services",
            "serviceLookup",
            &leaves(&[("service_identifier", &"0298765432")]),
        )
        .await;
    let item = looked_up.child("serviceLookupItem").unwrap();
    assert_eq!(
        item.text_at(&["account_id"]).unwrap(),
        ACTIVE_ACCOUNT_ID.to_string()
    );
    assert_eq!(
        item.text_at(&["subscription_status_name"]).unwrap(),
        "Preactive"
    );
    let presale = sim.presale_state(presale_id).await;
    assert_eq!(presale["sqs"][0]["method"], "general_phone");
    assert_eq!(presale["sqs"][0]["transfer_type"], "New");
    assert_eq!(presale["sqs"][0]["identifier"]["username"], json!(null));
    sim.stop().await;
}

#[tokio::test]
async fn nwb_sq_order() {
    let sim = start().await;
    let sydney = [
        ("StreetNumber", "1"),
        ("StreetName", "George"),
        ("StreetType", "St"),
        ("Suburb", "Sydney"),
        ("State", "NSW"),
        ("Postcode", "2000"),
    ];
    let found = sim
        .ok(
            "Orders",
            "FindNWBSQAddress",
            &address_fields(NBN_TYPE_ID, &sydney),
        )
        .await;
    let addresses: Vec<&Element> = found.children_named("Address").collect();
    assert_eq!(addresses.len(), 1, "{found:?}");
    for (name, value) in sydney {
        assert_eq!(addresses[0].text_at(&[name]).unwrap(), value);
    }
    assert_eq!(
        addresses[0].text_at(&["LocationID"]).unwrap(),
        SYDNEY_LOCATION_ID
    );
    // Case-insensitive, and the street may be left out.
    let loose = [
        ("Suburb", "melbourne"),
        ("State", "vic"),
        ("Postcode", "3000"),
    ];
    let found = sim
        .ok(
            "Orders",
            "FindNWBSQAddress",
            &address_fields(NBN_TYPE_ID, &loose),
        )
        .await;
    assert_eq!(
        texts(&found, &[], "Address", "LocationID"),
        [MELBOURNE_LOCATION_ID]
    );
    let elsewhere = [("Suburb", "Sydney"), ("State", "NSW"), ("Postcode", "2001")];
    let found = sim
        .ok(
            "Orders",
            "FindNWBSQAddress",
            &address_fields(NBN_TYPE_ID, &elsewhere),
        )
        .await;
    assert!(found.children.is_empty(), "{found:?}");
    let wrong_street = [
        ("StreetNumber", "2"),
        ("StreetName", "George"),
        ("Suburb", "Sydney"),
        ("State", "NSW"),
        ("Postcode", "2000"),
    ];
    let found = sim
        .ok(
            "Orders",
            "FindNWBSQAddress",
            &address_fields(NBN_TYPE_ID, &wrong_street),
        )
        .await;
    assert!(found.children.is_empty(), "{found:?}");

    for (address, error) in [
        (
            &[("Suburb", "Sydney"), ("State", "NSW")][..],
            "Missing postcode",
        ),
        (
            &[
                ("Suburb", "Sydney"),
                ("State", "NSW"),
                ("Postcode", "20000"),
            ],
            "Invalid postcode",
        ),
        (
            &[("Suburb", "Sydney"), ("State", "NSW"), ("Postcode", "20a0")],
            "Invalid postcode",
        ),
        (&[("State", "NSW"), ("Postcode", "2000")], "Missing suburb"),
        (
            &[("Suburb", "Sydney"), ("Postcode", "2000")],
            "Missing state",
        ),
    ] {
        assert_eq!(
            sim.refused(
                "Orders",
                "FindNWBSQAddress",
                &address_fields(NBN_TYPE_ID, address)
            )
            .await,
            error
        );
    }
    assert_eq!(
        sim.refused(
            "Orders",
            "FindNWBSQAddress",
            &address_fields(BUSINESS_SUPPORT_TYPE_ID, &sydney)
        )
        .await,
        format!("Service type id #{BUSINESS_SUPPORT_TYPE_ID} is not qualified for NWB SQ")
    );

    let presale_id = sim.start_order().await;
    assert_eq!(
        sim.refused(
            "Orders",
            "PerformNWBSQ",
            &nwb_fields(presale_id, NBN_TYPE_ID, "LOC999999999999")
        )
        .await,
        "Invalid location id"
    );
    assert_eq!(
        sim.refused(
            "Orders",
            "PerformNWBSQ",
            &nwb_fields(presale_id, PHONE_LINE_TYPE_ID, SYDNEY_LOCATION_ID)
        )
        .await,
        format!("Service type id #{PHONE_LINE_TYPE_ID} is not qualified for NWB SQ")
    );
    // An address that cannot be served still makes an SQ, which qualifies for nothing.
    let not_qualified = sim
        .ok(
            "Orders",
            "PerformNWBSQ",
            &nwb_fields(presale_id, NBN_TYPE_ID, MELBOURNE_LOCATION_ID),
        )
        .await;
    assert!(not_qualified.child("ServiceQualificationResult").is_none());
    assert_eq!(
        sim.refused(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &presale_id)])
        )
        .await,
        "Missing service qualification"
    );
    // A new SQ for the same service type replaces the old one.
    let qualified = sim
        .ok(
            "Orders",
            "PerformNWBSQ",
            &nwb_fields(presale_id, NBN_TYPE_ID, SYDNEY_LOCATION_ID),
        )
        .await;
    let sq_id: i64 = qualified.parse_at(&["AccountPresaleSQID"]).unwrap();
    let presale = sim.presale_state(presale_id).await;
    assert_eq!(presale["sqs"].as_array().unwrap().len(), 1, "{presale}");
    assert_eq!(presale["sqs"][0]["sq_id"], sq_id);
    assert_eq!(presale["sqs"][0]["method"], "nwb");
    assert_eq!(presale["sqs"][0]["location_id"], SYDNEY_LOCATION_ID);

    let packages = sim
        .ok(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    let ids: Vec<&str> = packages
        .children_named("PackagePlan")
        .map(|p| p.text_at(&["ID"]).unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            NBN_50_PLAN_ID.to_string(),
            NBN_PHONE_BUNDLE_PLAN_ID.to_string()
        ]
    );
    sim.select(presale_id, NBN_50_PLAN_ID).await;

    let identifiers = sim
        .ok(
            "Services",
            "GetServiceIdentifierRequirements",
            &plan_fields(NBN_SERVICE_PLAN_ID),
        )
        .await;
    let required = identifiers.child("ServiceIdentifier").unwrap();
    assert_eq!(required.text_at(&["Type"]).unwrap(), PPPOE_IDENTIFIER);
    assert_eq!(
        required.text_at(&["IsAuthenticationBased"]).unwrap(),
        "true"
    );
    let realms = sim
        .ok(
            "Services",
            "GetServiceIdentifierRealm",
            &plan_fields(NBN_SERVICE_PLAN_ID),
        )
        .await;
    assert_eq!(texts(&realms, &[], "Realm", "RealmName"), NBN_REALMS);
    let features_required = sim
        .ok(
            "Services",
            "GetServiceFeatureConfigurationRequirements",
            &plan_fields(NBN_SERVICE_PLAN_ID),
        )
        .await;
    assert_eq!(
        texts(
            &features_required,
            &[],
            "ServiceFeature",
            "FeatureIdentifierType"
        ),
        ["MUST_HAVE_IDENT"]
    );

    sim.ok(
        "Services",
        "SetServiceConfiguration",
        &configuration(
            sq_id,
            &[
                (MODEM_SERIAL_PROPERTY_ID, "SN-1234"),
                (PORT_PROPERTY_ID, "2"),
            ],
        ),
    )
    .await;
    sim.ok(
        "Services",
        "SetServiceFeatureSetup",
        &features(sq_id, &[(STATIC_IP_FEATURE_ID, "true")]),
    )
    .await;
    sim.ok(
        "Services",
        "SetServiceContacts",
        &contacts(sq_id, &[(TECHNICAL_CONTACT_TYPE_ID, "Jane", "Citizen", "")]),
    )
    .await;
    // Without the mandatory PPPoE identifier the order cannot complete.
    assert_eq!(
        sim.refused(
            "Orders",
            "CompleteOrder",
            &leaves(&[("AccountPresaleID", &presale_id)])
        )
        .await,
        format!("Account Presale SQ #{sq_id} missing mandatory service configuration")
    );
    let set = sim
        .ok(
            "Services",
            "SetServiceIdentifier",
            &identifier(sq_id, "jane", NBN_REALMS[1], "long-enough"),
        )
        .await;
    assert_eq!(set.text_at(&["Status"]).unwrap(), "true");
    let terms = sim
        .ok(
            "Plans",
            "GetTermsAndConditions",
            &terms_fields(NBN_50_PLAN_ID),
        )
        .await;
    assert_eq!(
        texts(&terms, &[], "TermsandConditions", "TermsandConditionsID"),
        [NBN_50_TERMS_ID.to_string()]
    );
    let completed = sim
        .ok(
            "Orders",
            "CompleteOrder",
            &leaves(&[("AccountPresaleID", &presale_id)]),
        )
        .await;
    assert_eq!(completed.text_at(&["Status"]).unwrap(), "true");
    let presale = sim.presale_state(presale_id).await;
    assert_eq!(
        presale["sqs"][0]["identifier"],
        json!({ "username": "jane", "realm": NBN_REALMS[1] })
    );
    sim.stop().await;
}

#[tokio::test]
async fn perform_simple_sq_refuses_with_every_error_of_seed_004() {
    let sim = start().await;
    let refused = |presale_id: i64, service_type_id: i64| {
        let sim = &sim;
        async move {
            sim.refused(
                "Orders",
                "PerformSimpleSQ",
                &sq_fields(presale_id, service_type_id),
            )
            .await
        }
    };
    let support = BUSINESS_SUPPORT_TYPE_ID;
    let before = sim.emersion().await["presales"].clone();

    // SP account validation, on the account that owns the presale.
    assert_eq!(
        refused(UNDEFINED_STATUS_PRESALE_ID, support).await,
        "Undefined account status"
    );
    assert_eq!(
        refused(UNDEFINED_TYPE_PRESALE_ID, support).await,
        "Undefined account type"
    );
    assert_eq!(
        refused(WHOLESALE_PRESALE_ID, support).await,
        "Account Type is not eligible to create order"
    );
    assert_eq!(
        refused(CAN_NOT_ORDER_PRESALE_ID, support).await,
        "Order creation is restricted for this account"
    );
    assert_eq!(
        refused(SUSPENDED_PRESALE_ID, support).await,
        "This account is 'Suspended' - please contact your upstream provider"
    );
    assert_eq!(
        refused(RESTRICTED_PRESALE_ID, support).await,
        "This account is 'Restricted' - please contact your upstream provider"
    );

    // End user account validation.
    assert_eq!(refused(0, support).await, "Missing account presale id");
    assert_eq!(refused(-7, support).await, "Missing account presale id");
    assert_eq!(
        sim.refused(
            "Orders",
            "PerformSimpleSQ",
            &leaves(&[("ServiceTypeID", &support)])
        )
        .await,
        "Missing account presale id"
    );
    assert_eq!(refused(12345, support).await, "Invalid account presale id");
    assert_eq!(refused(199999, support).await, "Undefined account presale");
    assert_eq!(
        refused(COMPLETED_PRESALE_ID, support).await,
        "Account presale is not valid for order"
    );
    assert_eq!(
        refused(PACKAGED_PRESALE_ID, support).await,
        "Account presale already contain package plan"
    );
    let presale_id = sim.start_order().await;
    assert_eq!(refused(presale_id, 0).await, "Missing service type id");
    assert_eq!(
        sim.refused(
            "Orders",
            "PerformSimpleSQ",
            &leaves(&[("AccountPresaleID", &presale_id)])
        )
        .await,
        "Missing service type id"
    );
    assert_eq!(refused(presale_id, 4362).await, "Invalid service type id");
    assert_eq!(
        refused(presale_id, RETIRED_DIALUP_TYPE_ID).await,
        "Service type is not available for ordering"
    );
    assert_eq!(
        refused(presale_id, 999999).await,
        "Service type is not available for ordering"
    );
    assert_eq!(
        refused(presale_id, LEGACY_FAX_TYPE_ID).await,
        format!("Missing service check type on service type id #{LEGACY_FAX_TYPE_ID}")
    );
    assert_eq!(
        refused(presale_id, PHONE_LINE_TYPE_ID).await,
        format!("Service type id #{PHONE_LINE_TYPE_ID} is not qualified for Simple SQ")
    );
    assert_eq!(
        refused(presale_id, NBN_TYPE_ID).await,
        format!("Service type id #{NBN_TYPE_ID} is not qualified for Simple SQ")
    );

    // Overriding an SQ of the presale.
    assert_eq!(
        refused(PENDING_SQ_PRESALE_ID, support).await,
        format!(
            "Service Qualification for service type id #{support} is currently in pending status"
        )
    );
    assert_eq!(
        refused(PACKAGED_SQ_PRESALE_ID, support).await,
        format!("Service Qualification id #{PACKAGED_SQ_ID} is not valid for deletion")
    );

    // Refusals leave no trace.
    let after = sim.emersion().await["presales"].clone();
    let seeded: Vec<&Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["presale_id"] != presale_id)
        .collect();
    assert_eq!(
        seeded,
        before.as_array().unwrap().iter().collect::<Vec<_>>()
    );
    assert_eq!(
        sim.presale_state(presale_id).await["sqs"],
        json!([]),
        "refused SQs were recorded"
    );

    // NoSQ and AutoIdentifier service types qualify; an SQ that is neither pending nor
    // packaged is replaced; another service type on a packaged-SQ presale is fine.
    let first = sim.simple_sq(presale_id, support).await;
    let second = sim.simple_sq(presale_id, support).await;
    assert_ne!(first, second);
    let hosting = sim.simple_sq(presale_id, WEB_HOSTING_TYPE_ID).await;
    let sqs: Vec<i64> = sim.presale_state(presale_id).await["sqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sq| sq["sq_id"].as_i64().unwrap())
        .collect();
    assert_eq!(sqs, [second, hosting]);
    sim.simple_sq(PACKAGED_SQ_PRESALE_ID, WEB_HOSTING_TYPE_ID)
        .await;
    sim.stop().await;
}

#[tokio::test]
async fn start_order_refusals() {
    let sim = start().await;
    let start_order = |fields: String| {
        let sim = &sim;
        async move { sim.refused("Orders", "StartOrder", &fields).await }
    };
    let account = |id: i64| leaves(&[("AccountID", &id)]);
    assert_eq!(start_order(String::new()).await, "Missing account id");
    assert_eq!(start_order(account(0)).await, "Missing account id");
    assert_eq!(start_order(account(-1)).await, "Missing account id");
    assert_eq!(start_order(account(12345)).await, "Invalid account id");
    assert_eq!(start_order(account(199999)).await, "Undefined account");
    assert_eq!(
        start_order(account(SUSPENDED_ACCOUNT_ID)).await,
        "Account is currently not active"
    );
    assert_eq!(
        start_order(account(RESTRICTED_ACCOUNT_ID)).await,
        "Account is currently not active"
    );
    assert_eq!(
        start_order(account(UNDEFINED_STATUS_ACCOUNT_ID)).await,
        "Account is currently not active"
    );
    let too_long = "P".repeat(51);
    assert_eq!(
        start_order(leaves(&[
            ("AccountID", &ACTIVE_ACCOUNT_ID),
            ("PurchaseOrder", &too_long)
        ]))
        .await,
        "Purchase order length exceed limit"
    );
    let text = start_order(leaves(&[("AccountID", &"ten")])).await;
    assert!(text.contains("AccountID"), "{text}");
    let presales_before = sim.emersion().await["presales"].as_array().unwrap().len();
    assert_eq!(presales_before, 12, "refused orders made presales");

    let longest = "P".repeat(50);
    let reply = sim
        .ok(
            "Orders",
            "StartOrder",
            &leaves(&[
                ("AccountID", &ACTIVE_ACCOUNT_ID),
                ("PurchaseOrder", &longest),
            ]),
        )
        .await;
    assert_eq!(
        reply.text_at(&["AccountPresaleID"]).unwrap(),
        FIRST_PRESALE_ID.to_string()
    );
    // Only the status is checked when an order starts: a Wholesale account may start one.
    let reply = sim
        .ok(
            "Orders",
            "StartOrder",
            &leaves(&[("AccountID", &WHOLESALE_ACCOUNT_ID)]),
        )
        .await;
    assert_eq!(
        reply.text_at(&["AccountPresaleID"]).unwrap(),
        (FIRST_PRESALE_ID + 1).to_string()
    );
    sim.stop().await;
}

#[tokio::test]
async fn package_selection_refusals() {
    let sim = start().await;
    let select = |presale_id: i64, plan_id: i64| {
        let sim = &sim;
        async move {
            sim.refused(
                "Orders",
                "SelectPackagePlan",
                &leaves(&[
                    ("AccountPresaleID", &presale_id),
                    ("PackagePlanID", &plan_id),
                ]),
            )
            .await
        }
    };
    let presale_id = sim.start_order().await;
    assert_eq!(
        sim.refused(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &presale_id)])
        )
        .await,
        "Missing service qualification"
    );
    assert_eq!(
        sim.refused(
            "Orders",
            "GetAvailablePackages",
            &leaves(&[("AccountPresaleID", &199999)])
        )
        .await,
        "Undefined account presale"
    );
    assert_eq!(
        select(presale_id, BUSINESS_SUPPORT_BASIC_PLAN_ID).await,
        "Package plan is not available for this order"
    );
    sim.simple_sq(presale_id, BUSINESS_SUPPORT_TYPE_ID).await;
    assert_eq!(
        select(199999, BUSINESS_SUPPORT_BASIC_PLAN_ID).await,
        "Undefined account presale"
    );
    assert_eq!(select(presale_id, 299999).await, "Undefined package plan");
    assert_eq!(
        select(presale_id, HOSTING_STARTER_PLAN_ID).await,
        "Package plan is not available for this order"
    );

    sim.select(presale_id, BUSINESS_SUPPORT_PLUS_PLAN_ID).await;
    for plan_id in [
        BUSINESS_SUPPORT_PLUS_PLAN_ID,
        BUSINESS_SUPPORT_BASIC_PLAN_ID,
        299999,
    ] {
        assert_eq!(
            select(presale_id, plan_id).await,
            "Account presale already contain package plan"
        );
    }
    let presale = sim.presale_state(presale_id).await;
    assert_eq!(presale["package_plan_id"], BUSINESS_SUPPORT_PLUS_PLAN_ID);
    assert_eq!(
        presale["sqs"][0]["package_plan_id"],
        BUSINESS_SUPPORT_PLUS_PLAN_ID
    );
    // With a package the presale takes no further SQ.
    assert_eq!(
        sim.refused(
            "Orders",
            "PerformSimpleSQ",
            &sq_fields(presale_id, WEB_HOSTING_TYPE_ID)
        )
        .await,
        "Account presale already contain package plan"
    );
    assert_eq!(
        sim.refused("Plans", "GetTermsAndConditions", &terms_fields(299999))
            .await,
        "Undefined package plan"
    );
    sim.stop().await;
}

#[tokio::test]
async fn complete_order_refusals() {
    let sim = start().await;
    let complete = |presale_id: i64| {
        let sim = &sim;
        async move {
            sim.refused(
                "Orders",
                "CompleteOrder",
                &leaves(&[("AccountPresaleID", &presale_id)]),
            )
            .await
        }
    };
    assert_eq!(complete(199999).await, "Undefined account presale");
    assert_eq!(complete(0).await, "Missing account presale id");
    assert_eq!(
        complete(COMPLETED_PRESALE_ID).await,
        "Account presale is not valid for order"
    );
    let presale_id = sim.start_order().await;
    assert_eq!(complete(presale_id).await, "Missing service qualification");
    let sq_id = sim.simple_sq(presale_id, BUSINESS_SUPPORT_TYPE_ID).await;
    assert_eq!(complete(presale_id).await, "Missing package plan");
    sim.select(presale_id, BUSINESS_SUPPORT_BASIC_PLAN_ID).await;
    let missing = format!("Account Presale SQ #{sq_id} missing mandatory service configuration");
    // Nothing configured at all, then configured but without its contact.
    assert_eq!(complete(presale_id).await, "Missing service config");
    sim.ok(
        "Services",
        "SetServiceConfiguration",
        &configuration(sq_id, &[(SITE_NAME_PROPERTY_ID, "Head Office")]),
    )
    .await;
    // The Technical contact (minimum 1) is still missing.
    assert_eq!(complete(presale_id).await, missing);
    sim.ok(
        "Services",
        "SetServiceContacts",
        &contacts(sq_id, &[(TECHNICAL_CONTACT_TYPE_ID, "Jane", "Citizen", "")]),
    )
    .await;
    let state = sim.emersion().await;
    assert_eq!(state["services"].as_array().unwrap().len(), 3, "{state}");
    assert!(!sim.presale_state(presale_id).await["completed"]
        .as_bool()
        .unwrap());

    sim.ok(
        "Orders",
        "CompleteOrder",
        &leaves(&[("AccountPresaleID", &presale_id)]),
    )
    .await;
    assert_eq!(
        complete(presale_id).await,
        "Account presale is not valid for order"
    );
    assert_eq!(
        sim.emersion().await["services"].as_array().unwrap().len(),
        4
    );

    // Web hosting needs its mandatory identifier.
    let (hosting_presale, hosting_sq) = sim
        .packaged_sq(WEB_HOSTING_TYPE_ID, HOSTING_STARTER_PLAN_ID)
        .await;
    sim.ok(
        "Services",
        "SetServiceConfiguration",
        &configuration(hosting_sq, &[(DOMAIN_PROPERTY_ID, "example.com")]),
    )
    .await;
    assert_eq!(
        complete(hosting_presale).await,
        format!("Account Presale SQ #{hosting_sq} missing mandatory service configuration")
    );
    sim.ok(
        "Services",
        "SetServiceIdentifier",
        &identifier(hosting_sq, "jane", HOSTING_REALM, "s3cret-passw0rd"),
    )
    .await;
    sim.ok(
        "Orders",
        "CompleteOrder",
        &leaves(&[("AccountPresaleID", &hosting_presale)]),
    )
    .await;
    sim.stop().await;
}

#[tokio::test]
async fn set_calls_validate_against_the_service_plan() {
    let sim = start().await;
    let refused = |operation: &'static str, fields: String| {
        let sim = &sim;
        async move { sim.refused("Services", operation, &fields).await }
    };
    let config = "SetServiceConfiguration";

    // Which SQ, and whether its package is chosen.
    assert_eq!(
        refused(config, configuration(999999, &[])).await,
        "Account Presale SQ does not exist"
    );
    let open_presale = sim.start_order().await;
    let open_sq = sim.simple_sq(open_presale, BUSINESS_SUPPORT_TYPE_ID).await;
    for (operation, fields) in [
        (
            config,
            configuration(open_sq, &[(SITE_NAME_PROPERTY_ID, "x")]),
        ),
        ("SetServiceFeatureSetup", features(open_sq, &[])),
        ("SetServiceContacts", contacts(open_sq, &[])),
        (
            "SetServiceIdentifier",
            identifier(open_sq, "jane", HOSTING_REALM, "long-enough"),
        ),
        // The SQ carries a package plan, its presale does not.
        (
            config,
            configuration(PACKAGED_SQ_ID, &[(SITE_NAME_PROPERTY_ID, "x")]),
        ),
    ] {
        assert_eq!(
            refused(operation, fields).await,
            "Missing Package Plan",
            "{operation}"
        );
    }
    for (operation, fields) in [
        ("SetServiceFeatureSetup", features(999999, &[])),
        ("SetServiceContacts", contacts(999999, &[])),
        (
            "SetServiceIdentifier",
            identifier(999999, "jane", HOSTING_REALM, "long-enough"),
        ),
    ] {
        assert_eq!(
            refused(operation, fields).await,
            "Account Presale SQ does not exist",
            "{operation}"
        );
    }

    // Configuration.
    let (presale_id, sq_id) = sim
        .packaged_sq(BUSINESS_SUPPORT_TYPE_ID, BUSINESS_SUPPORT_BASIC_PLAN_ID)
        .await;
    assert_eq!(
        refused(
            config,
            configuration(sq_id, &[(SUPPORT_TIER_PROPERTY_ID, "Gold")])
        )
        .await,
        "Missing required properties"
    );
    assert_eq!(
        refused(config, configuration(sq_id, &[(SITE_NAME_PROPERTY_ID, "")])).await,
        "Missing required properties"
    );
    assert_eq!(
        refused(
            config,
            configuration(sq_id, &[(SITE_NAME_PROPERTY_ID, "HQ"), (599999, "x")])
        )
        .await,
        "Unknown properties received"
    );
    assert_eq!(
        refused(
            config,
            configuration(
                sq_id,
                &[
                    (SITE_NAME_PROPERTY_ID, "HQ"),
                    (SUPPORT_TIER_PROPERTY_ID, "Bronze")
                ]
            )
        )
        .await,
        format!("Invalid value for property #{SUPPORT_TIER_PROPERTY_ID}")
    );
    sim.ok(
        "Services",
        config,
        &configuration(
            sq_id,
            &[
                (SITE_NAME_PROPERTY_ID, "HQ"),
                (SUPPORT_TIER_PROPERTY_ID, "Silver"),
            ],
        ),
    )
    .await;
    // A second call replaces the first.
    sim.ok(
        "Services",
        config,
        &configuration(sq_id, &[(SITE_NAME_PROPERTY_ID, "Branch")]),
    )
    .await;
    assert_eq!(
        sim.presale_state(presale_id).await["sqs"][0]["configuration"],
        json!({ SITE_NAME_PROPERTY_ID.to_string(): "Branch" })
    );

    // Features.
    assert_eq!(
        refused("SetServiceFeatureSetup", features(sq_id, &[(699999, "x")])).await,
        "UnknownFeatureTypeID"
    );
    let (nbn_presale, nbn_sq) = {
        let presale_id = sim.start_order().await;
        let sq = sim
            .ok(
                "Orders",
                "PerformNWBSQ",
                &nwb_fields(presale_id, NBN_TYPE_ID, BRISBANE_LOCATION_ID),
            )
            .await;
        sim.select(presale_id, NBN_50_PLAN_ID).await;
        (
            presale_id,
            sq.parse_at::<i64>(&["AccountPresaleSQID"]).unwrap(),
        )
    };
    assert_eq!(
        refused(
            "SetServiceFeatureSetup",
            features(nbn_sq, &[(STATIC_IP_FEATURE_ID, "")])
        )
        .await,
        format!("Service Feature Type ({STATIC_IP_FEATURE_ID}) must have identifier")
    );
    assert_eq!(
        refused(
            config,
            configuration(
                nbn_sq,
                &[
                    (MODEM_SERIAL_PROPERTY_ID, "SN-1"),
                    (PORT_PROPERTY_ID, "eighty")
                ]
            )
        )
        .await,
        format!("Invalid value for property #{PORT_PROPERTY_ID}")
    );
    sim.ok(
        "Services",
        "SetServiceFeatureSetup",
        &features(nbn_sq, &[(STATIC_IP_FEATURE_ID, "yes")]),
    )
    .await;
    sim.ok(
        "Services",
        "SetServiceFeatureSetup",
        &features(nbn_sq, &[(STATIC_IP_FEATURE_ID, "no")]),
    )
    .await;
    assert_eq!(
        sim.presale_state(nbn_presale).await["sqs"][0]["features"],
        json!({ STATIC_IP_FEATURE_ID.to_string(): {"option_type_id": 1, "identifier": "no"} })
    );

    // Contacts.
    let technical = TECHNICAL_CONTACT_TYPE_ID;
    let jane = (technical, "Jane", "Citizen", "1980-01-31");
    assert_eq!(
        refused(
            "SetServiceContacts",
            contacts(sq_id, &[(799999, "Jane", "Citizen", "")])
        )
        .await,
        "Unknown contact type #799999"
    );
    let between = format!("Contact type #{technical} requires between 1 and 2 contacts");
    assert_eq!(
        refused("SetServiceContacts", contacts(sq_id, &[])).await,
        between
    );
    assert_eq!(
        refused("SetServiceContacts", contacts(sq_id, &[jane, jane, jane])).await,
        between
    );
    assert_eq!(
        refused(
            "SetServiceContacts",
            contacts(sq_id, &[(technical, "", "Citizen", "")])
        )
        .await,
        "Missing contact first name"
    );
    assert_eq!(
        refused(
            "SetServiceContacts",
            contacts(sq_id, &[(technical, "Jane", " ", "")])
        )
        .await,
        "Missing contact last name"
    );
    for born in ["1980-13-01", "31/01/1980", "2999-01-01"] {
        assert_eq!(
            refused(
                "SetServiceContacts",
                contacts(sq_id, &[(technical, "Jane", "Citizen", born)])
            )
            .await,
            "Invalid date of birth",
            "{born}"
        );
    }
    sim.ok(
        "Services",
        "SetServiceContacts",
        &contacts(sq_id, &[jane, jane]),
    )
    .await;
    sim.ok("Services", "SetServiceContacts", &contacts(sq_id, &[jane]))
        .await;
    assert_eq!(
        sim.presale_state(presale_id).await["sqs"][0]["contacts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Identifier.
    let realm = NBN_REALMS[0];
    assert_eq!(
        refused(
            "SetServiceIdentifier",
            identifier(nbn_sq, " ", realm, "long-enough")
        )
        .await,
        "Missing Username"
    );
    assert_eq!(
        refused(
            "SetServiceIdentifier",
            identifier(nbn_sq, "jane", HOSTING_REALM, "long-enough")
        )
        .await,
        "Invalid realm"
    );
    assert_eq!(
        refused(
            "SetServiceIdentifier",
            identifier(nbn_sq, "jane", realm, "1234567")
        )
        .await,
        "Invalid Password"
    );
    sim.ok(
        "Services",
        "SetServiceIdentifier",
        &identifier(nbn_sq, "jane", realm, "12345678"),
    )
    .await;
    sim.ok(
        "Services",
        "SetServiceIdentifier",
        &identifier(nbn_sq, "jane2", realm, "12345678"),
    )
    .await;
    assert_eq!(
        sim.presale_state(nbn_presale).await["sqs"][0]["identifier"],
        json!({ "username": "jane2", "realm": realm })
    );

    // Requirements of a plan that does not exist.
    for operation in [
        "GetServiceConfigurationRequirements",
        "GetServiceFeatureConfigurationRequirements",
        "GetServiceContactRequirements",
        "GetServiceIdentifierRequirements",
    ] {
        assert_eq!(
            refused(operation, plan_fields(399999)).await,
            "Undefined service plan",
            "{operation}"
        );
    }
    sim.stop().await;
}

#[tokio::test]
async fn account_check_notes_and_payments() {
    let sim = start().await;
    let credentials = |username: &str, password: &str| {
        leaves(&[("Username", &username), ("Password", &password)])
    };
    let account = sim
        .ok(
            "Accounts",
            "MyGetAccountFromUsernameAndPassword",
            &credentials(ACTIVE_ACCOUNT_USERNAME, ACTIVE_ACCOUNT_PASSWORD),
        )
        .await;
    assert_eq!(
        account.text_at(&["AccountID"]).unwrap(),
        ACTIVE_ACCOUNT_ID.to_string()
    );
    for (username, password, error) in [
        ("", ACTIVE_ACCOUNT_PASSWORD, "Invalid Username"),
        ("jane citizen", ACTIVE_ACCOUNT_PASSWORD, "Invalid Username"),
        (
            "john.citizen",
            ACTIVE_ACCOUNT_PASSWORD,
            "Username does not exist",
        ),
        (ACTIVE_ACCOUNT_USERNAME, "wrong-horse", "Incorrect Password"),
    ] {
        assert_eq!(
            sim.refused(
                "Accounts",
                "MyGetAccountFromUsernameAndPassword",
                &credentials(username, password)
            )
            .await,
            error
        );
    }

    let note = |type_id: i64, value: i64, subject: &str| {
        leaves(&[
            ("ObjectTypeID", &type_id),
            ("ObjectTypeValue", &value),
            ("NoteSubject", &subject),
            ("NoteDetail", &"Signed up via billflow"),
        ])
    };
    let added = sim
        .ok(
            "Accounts",
            "AddNote",
            &note(1, ACTIVE_ACCOUNT_ID, "Welcome"),
        )
        .await;
    assert_eq!(
        added.text_at(&["NoteID"]).unwrap(),
        FIRST_NOTE_ID.to_string()
    );
    let added = sim
        .ok(
            "Accounts",
            "AddNote",
            &note(5, COMPLETED_SERVICE_ID, "Install"),
        )
        .await;
    assert_eq!(
        added.text_at(&["NoteID"]).unwrap(),
        (FIRST_NOTE_ID + 1).to_string()
    );
    for (fields, error) in [
        (
            note(3, ACTIVE_ACCOUNT_ID, "x"),
            "Object Type ID must be 1 or 5",
        ),
        (note(1, 199999, "x"), "Invalid Account ID"),
        (note(5, 1, "x"), "Invalid Service ID"),
        (note(1, ACTIVE_ACCOUNT_ID, ""), "Missing note subject"),
    ] {
        assert_eq!(sim.refused("Accounts", "AddNote", &fields).await, error);
    }

    let payment = |account_id: i64, amount: &str, date: &str| {
        leaves(&[
            ("AccountID", &account_id),
            ("TransactionCategory", &"Credit Card"),
            ("Reference", &"crm-42"),
            ("Amount", &amount),
            ("TransactionDate", &date),
        ])
    };
    let paid = sim
        .call(
            "RetailServices",
            "CreatePayment",
            &payment(ACTIVE_ACCOUNT_ID, "49.95", "22 Nov 2026"),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.raw);
    assert!(
        paid.raw.contains(&format!(
            "<ns1:paymentID>{FIRST_PAYMENT_ID}</ns1:paymentID>"
        )),
        "{}",
        paid.raw
    );
    for (fields, error) in [
        (
            payment(199999, "49.95", "22 Nov 2026"),
            "The customer account ID is invalid.",
        ),
        (
            payment(ACTIVE_ACCOUNT_ID, "0", "22 Nov 2026"),
            "Invalid amount",
        ),
        (
            payment(ACTIVE_ACCOUNT_ID, "-5.00", "22 Nov 2026"),
            "Invalid amount",
        ),
        (
            payment(ACTIVE_ACCOUNT_ID, "lots", "22 Nov 2026"),
            "Invalid amount",
        ),
        (
            payment(ACTIVE_ACCOUNT_ID, "49.95", "2026-11-22"),
            "Invalid transaction date",
        ),
        (
            payment(ACTIVE_ACCOUNT_ID, "49.95", "31 Feb 2026"),
            "Invalid transaction date",
        ),
    ] {
        assert_eq!(
            sim.refused("RetailServices", "CreatePayment", &fields)
                .await,
            error
        );
    }

    let state = sim.emersion().await;
    assert_eq!(
        state["payments"],
        json!([{
            "payment_id": FIRST_PAYMENT_ID,
            "account_id": ACTIVE_ACCOUNT_ID,
            "transaction_category": "Credit Card",
            "reference": "crm-42",
            "amount": "49.95",
            "transaction_date": "2026-11-22",
        }])
    );
    assert_eq!(state["notes"].as_array().unwrap().len(), 2);
    assert_eq!(state["notes"][1]["object_id"], COMPLETED_SERVICE_ID);
    sim.stop().await;
}

#[tokio::test]
async fn ws_security_is_required() {
    let sim = start().await;
    let fields = leaves(&[("AccountID", &ACTIVE_ACCOUNT_ID)]);
    let nonce = [7u8; 16];
    let created = "2026-11-22T10:00:00Z";
    let good = digest(&nonce, created, SIM_PASSWORD);
    let nonce64 = STANDARD.encode(nonce);
    let headers = [
        String::new(),
        "<SOAP-ENV:Header/>".to_string(),
        security("someone-else", SIM_PASSWORD),
        security(SIM_USERNAME, "not-the-password"),
        security_with(SIM_USERNAME, "not base64!", created, &good),
        security_with(SIM_USERNAME, &nonce64, "2026-11-22T10:00:01Z", &good),
        security_with(SIM_USERNAME, &nonce64, created, SIM_PASSWORD),
        security_with(SIM_USERNAME, &nonce64, created, &good)
            .replace(&format!("<wsu:Created>{created}</wsu:Created>"), ""),
    ];
    for header in headers {
        let reply = sim
            .post(
                "Orders",
                Some(&action("StartOrder")),
                envelope(&header, "StartOrder", &fields),
            )
            .await;
        assert_eq!(reply.status, 500, "{header}: {}", reply.raw);
        assert_eq!(
            reply.fault(),
            (
                "SOAP-ENV:Client".to_string(),
                "Authentication failed".to_string()
            ),
            "{header}"
        );
    }
    assert_eq!(
        sim.emersion().await["presales"].as_array().unwrap().len(),
        12
    );
    // The same fixed token is accepted: it is valid, and freshness is not checked.
    let reply = sim
        .post(
            "Orders",
            Some(&action("StartOrder")),
            envelope(
                &security_with(SIM_USERNAME, &nonce64, created, &good),
                "StartOrder",
                &fields,
            ),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);

    // Neither the digest nor a body password reaches the call log or the state.
    sim.ok(
        "Accounts",
        "MyGetAccountFromUsernameAndPassword",
        &leaves(&[
            ("Username", &ACTIVE_ACCOUNT_USERNAME),
            ("Password", &ACTIVE_ACCOUNT_PASSWORD),
        ]),
    )
    .await;
    let calls = sim.get("/_sim/calls").await.to_string();
    assert!(!calls.contains(&good), "{calls}");
    assert!(!calls.contains(ACTIVE_ACCOUNT_PASSWORD), "{calls}");
    assert!(calls.contains("[redacted]"), "{calls}");
    let state = sim.get("/_sim/state").await.to_string();
    assert!(!state.contains(ACTIVE_ACCOUNT_PASSWORD), "{state}");
    sim.stop().await;
}

#[tokio::test]
async fn transport_errors_are_client_faults() {
    let sim = start().await;
    let fields = leaves(&[("AccountID", &ACTIVE_ACCOUNT_ID)]);
    let auth = security(SIM_USERNAME, SIM_PASSWORD);
    let client_fault = |reply: &Reply| {
        assert_eq!(reply.status, 500, "{}", reply.raw);
        assert!(
            reply.raw.contains("<faultcode>SOAP-ENV:Client</faultcode>"),
            "{}",
            reply.raw
        );
        assert!(reply.raw.contains("<detail><ns1:Error>"), "{}", reply.raw);
        reply.fault().1
    };

    let reply = sim
        .post(
            "Services",
            Some(&action("StartOrder")),
            envelope(&auth, "StartOrder", &fields),
        )
        .await;
    assert_eq!(
        client_fault(&reply),
        "Operation StartOrder is not available on service Services"
    );
    let reply = sim
        .post(
            "Orders",
            Some(&action("CompleteOrder")),
            envelope(&auth, "StartOrder", &fields),
        )
        .await;
    let text = client_fault(&reply);
    assert!(text.contains("SOAPAction"), "{text}");
    let reply = sim
        .post(
            "Orders",
            Some("\"urn:other#StartOrder\""),
            envelope(&auth, "StartOrder", &fields),
        )
        .await;
    assert!(client_fault(&reply).contains("SOAPAction"));
    let reply = sim
        .post(
            "Orders",
            Some(&action("StartOrder")),
            "<SOAP-ENV:Envelope><unclosed>".into(),
        )
        .await;
    assert!(client_fault(&reply).contains("XML"));
    let reply = sim
        .post(
            "Orders",
            Some(&action("FlyToTheMoon")),
            envelope(&auth, "FlyToTheMoon", ""),
        )
        .await;
    assert!(client_fault(&reply).contains("Unknown operation"));
    let reply = sim
        .post(
            "Orders",
            Some(&action("SelectPackagePlan")),
            envelope(
                &auth,
                "SelectPackagePlan",
                &leaves(&[("AccountPresaleID", &PACKAGED_SQ_PRESALE_ID)]),
            ),
        )
        .await;
    assert!(client_fault(&reply).contains("PackagePlanID"));

    // Without a SOAPAction, or with the same operation under a default namespace.
    let reply = sim
        .post("Orders", None, envelope(&auth, "StartOrder", &fields))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let default_ns = format!(
        r#"<s:Envelope xmlns:s="{SOAP_ENV}">{}<s:Body><StartOrderRequest xmlns="urn:emersion:api"><AccountID>{ACTIVE_ACCOUNT_ID}</AccountID></StartOrderRequest></s:Body></s:Envelope>"#,
        auth.replace("SOAP-ENV:", "s:")
    );
    let reply = sim
        .post("Orders", Some("urn:emersion:api#StartOrder"), default_ns)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);

    let response = sim
        .http
        .post(format!("{}/Billing", sim.base))
        .body(envelope(&auth, "StartOrder", &fields))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let counts = sim.get("/_sim/calls").await["counts"].clone();
    assert_eq!(counts["StartOrder"], 6, "{counts}");
    assert_eq!(counts["FlyToTheMoon"], 1, "{counts}");
    sim.stop().await;
}

#[tokio::test]
async fn injected_faults_on_an_emersion_operation() {
    let sim = start().await;
    let fields = leaves(&[("AccountID", &ACTIVE_ACCOUNT_ID)]);
    let presales = || async { sim.emersion().await["presales"].as_array().unwrap().len() };

    sim.fault(json!({"operation": "StartOrder", "kind": "http_status", "status": 503}))
        .await;
    let reply = sim.call("Orders", "StartOrder", &fields).await;
    assert_eq!(reply.status, 503, "{}", reply.raw);
    assert_eq!(reply.fault().0, "SOAP-ENV:Server");

    for (code, expected) in [
        ("Server", "SOAP-ENV:Server"),
        ("Receiver", "SOAP-ENV:Server"),
        ("Client", "SOAP-ENV:Client"),
        ("Sender", "SOAP-ENV:Client"),
    ] {
        sim.fault(json!({"operation": "StartOrder", "kind": "soap_fault", "code": code, "reason": "try later"}))
            .await;
        let reply = sim.call("Orders", "StartOrder", &fields).await;
        assert_eq!(reply.status, 500, "{}", reply.raw);
        assert_eq!(
            reply.fault(),
            (expected.to_string(), "try later".to_string()),
            "{code}"
        );
    }

    sim.fault(json!({"operation": "StartOrder", "kind": "business_error", "message": "Account is currently not active"}))
        .await;
    let reply = sim.call("Orders", "StartOrder", &fields).await;
    assert_eq!(reply.status, 500, "{}", reply.raw);
    assert_eq!(
        reply.fault(),
        (
            "SOAP-ENV:Client".to_string(),
            "Account is currently not active".to_string()
        )
    );
    assert_eq!(presales().await, 12, "failed calls were applied");

    sim.fault(json!({"operation": "StartOrder", "kind": "latency", "ms": 300}))
        .await;
    let started = Instant::now();
    let reply = sim.call("Orders", "StartOrder", &fields).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.fault(json!({"operation": "StartOrder", "kind": "timeout", "ms": 50}))
        .await;
    let response = sim
        .http
        .post(format!("{}/Orders", sim.base))
        .header("SOAPAction", action("StartOrder"))
        .body(envelope(
            &security(SIM_USERNAME, SIM_PASSWORD),
            "StartOrder",
            &fields,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(presales().await, 13);

    // The call is applied, but its answer never comes.
    sim.fault(json!({"operation": "StartOrder", "kind": "drop_response"}))
        .await;
    let dropped = sim
        .http
        .post(format!("{}/Orders", sim.base))
        .header("SOAPAction", action("StartOrder"))
        .body(envelope(
            &security(SIM_USERNAME, SIM_PASSWORD),
            "StartOrder",
            &fields,
        ))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(presales().await, 14);

    let counts = sim.get("/_sim/calls").await["counts"].clone();
    assert_eq!(counts["StartOrder"], 9, "{counts}");
    let response = sim
        .http
        .post(format!("{}/_sim/faults", sim.base))
        .json(&json!({"operation": "StartOrderRequest", "kind": "drop_response"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    sim.stop().await;
}

#[tokio::test]
async fn state_joins_costguard_and_emersion() {
    let sim = start().await;
    let state = sim.get("/_sim/state").await;
    assert!(state["services"].is_array(), "{state}");
    assert!(state["carts"].is_array(), "{state}");
    let emersion = &state["emersion"];
    let accounts = emersion["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 10);
    assert_eq!(
        accounts[0],
        json!({
            "account_id": ACTIVE_ACCOUNT_ID,
            "username": ACTIVE_ACCOUNT_USERNAME,
            "status": "Active",
            "account_type": "Retail",
            "can_not_order": false,
        })
    );
    assert_eq!(accounts[4]["status"], Value::Null);
    assert_eq!(accounts[5]["account_type"], Value::Null);
    let pending = sim.presale_state(PENDING_SQ_PRESALE_ID).await;
    assert_eq!(pending["sqs"][0]["sq_id"], PENDING_SQ_ID);
    assert_eq!(pending["sqs"][0]["result"], "Pending");
    let packaged = sim.presale_state(PACKAGED_SQ_PRESALE_ID).await;
    assert_eq!(packaged["package_plan_id"], Value::Null);
    assert_eq!(
        packaged["sqs"][0]["package_plan_id"],
        BUSINESS_SUPPORT_BASIC_PLAN_ID
    );
    let completed = sim.presale_state(COMPLETED_PRESALE_ID).await;
    assert_eq!(completed["completed"], true);
    assert_eq!(emersion["services"][0]["service_id"], COMPLETED_SERVICE_ID);
    let types = emersion["service_types"].as_array().unwrap();
    assert_eq!(types.len(), 6);
    assert_eq!(types[0]["check_type"], "NoSQ");
    assert_eq!(types[3]["check_type"], "NWB");
    sim.stop().await;
}

#[tokio::test]
async fn call_log_shows_idempotency_key_and_whether_each_call_applied() {
    let sim = start().await;
    let logged = |call: &Value, operation: &str, key: Value, applied: bool| {
        assert_eq!(call["operation"], operation, "{call}");
        assert_eq!(call["idempotency_key"], key, "{call}");
        assert_eq!(call["applied"], applied, "{call}");
    };
    let account = leaves(&[("AccountID", &ACTIVE_ACCOUNT_ID)]);

    // Applied, refused, read.
    let started = sim
        .call_keyed("Orders", "StartOrder", &account, "cmd-1/start_order")
        .await;
    assert_eq!(started.status, 200, "{}", started.raw);
    logged(
        &sim.last_call().await,
        "StartOrder",
        json!("cmd-1/start_order"),
        true,
    );
    let presale_id = FIRST_PRESALE_ID;
    let refused = sim
        .call_keyed(
            "Orders",
            "StartOrder",
            &leaves(&[("AccountID", &12345)]),
            "cmd-2/start_order",
        )
        .await;
    assert_eq!(refused.fault().1, "Invalid account id");
    logged(
        &sim.last_call().await,
        "StartOrder",
        json!("cmd-2/start_order"),
        false,
    );
    let read = sim
        .call_keyed(
            "Services",
            "serviceList",
            &leaves(&[("account_id", &ACTIVE_ACCOUNT_ID)]),
            "cmd-1/probe",
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.raw);
    logged(
        &sim.last_call().await,
        "serviceList",
        json!("cmd-1/probe"),
        false,
    );
    sim.ok(
        "Plans",
        "GetTermsAndConditions",
        &terms_fields(BUSINESS_SUPPORT_BASIC_PLAN_ID),
    )
    .await;
    logged(
        &sim.last_call().await,
        "GetTermsAndConditions",
        Value::Null,
        false,
    );

    // Refused before the rules: authentication.
    let unauthenticated = sim
        .post_keyed(
            "Orders",
            Some(&action("StartOrder")),
            Some("cmd-3/start_order"),
            envelope("", "StartOrder", &account),
        )
        .await;
    assert_eq!(unauthenticated.fault().1, "Authentication failed");
    logged(
        &sim.last_call().await,
        "StartOrder",
        json!("cmd-3/start_order"),
        false,
    );

    // http_status does not apply; drop_response does, though no answer comes.
    let sq = sq_fields(presale_id, BUSINESS_SUPPORT_TYPE_ID);
    sim.fault(json!({"operation": "PerformSimpleSQ", "kind": "http_status", "status": 503}))
        .await;
    let failed = sim
        .call_keyed("Orders", "PerformSimpleSQ", &sq, "cmd-1/sq")
        .await;
    assert_eq!(failed.status, 503, "{}", failed.raw);
    logged(
        &sim.last_call().await,
        "PerformSimpleSQ",
        json!("cmd-1/sq"),
        false,
    );
    assert_eq!(sim.presale_state(presale_id).await["sqs"], json!([]));
    sim.fault(json!({"operation": "PerformSimpleSQ", "kind": "drop_response"}))
        .await;
    let dropped = sim
        .http
        .post(format!("{}/Orders", sim.base))
        .header("SOAPAction", action("PerformSimpleSQ"))
        .header("Idempotency-Key", "cmd-1/sq")
        .body(envelope(
            &security(SIM_USERNAME, SIM_PASSWORD),
            "PerformSimpleSQ",
            &sq,
        ))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(
        sim.presale_state(presale_id).await["sqs"][0]["sq_id"],
        FIRST_SQ_ID
    );
    logged(
        &sim.last_call().await,
        "PerformSimpleSQ",
        json!("cmd-1/sq"),
        true,
    );

    // Every kind of change is applied, each only when accepted.
    sim.select(presale_id, BUSINESS_SUPPORT_BASIC_PLAN_ID).await;
    logged(
        &sim.last_call().await,
        "SelectPackagePlan",
        Value::Null,
        true,
    );
    sim.refused(
        "Services",
        "SetServiceConfiguration",
        &configuration(FIRST_SQ_ID, &[]),
    )
    .await;
    logged(
        &sim.last_call().await,
        "SetServiceConfiguration",
        Value::Null,
        false,
    );
    sim.ok(
        "Services",
        "SetServiceConfiguration",
        &configuration(FIRST_SQ_ID, &[(SITE_NAME_PROPERTY_ID, "Head Office")]),
    )
    .await;
    logged(
        &sim.last_call().await,
        "SetServiceConfiguration",
        Value::Null,
        true,
    );

    let calls = sim.get("/_sim/calls").await;
    let calls = calls["calls"].as_array().unwrap();
    let seqs: Vec<i64> = calls.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let applied: Vec<&str> = calls
        .iter()
        .filter(|c| c["applied"] == true)
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        applied,
        [
            "StartOrder",
            "PerformSimpleSQ",
            "SelectPackagePlan",
            "SetServiceConfiguration"
        ]
    );
    sim.stop().await;
}
