//! Emersion SOAP 1.1 operations, one module per WSDL service: each request as a struct
//! that writes its request element, each response read by local element name. Element
//! names are per-operation constants: the vendor's pages name most Services calls bare
//! (`SetServiceConfiguration`) and others `{Operation}Request`, so no rule derives them.
//! The shapes the pages leave open are pinned, each in one place with a `pinned:` comment.

mod lookups;
mod orders;
mod plans;
mod retail;
mod services;

pub use lookups::*;
pub use orders::*;
pub use plans::*;
pub use retail::*;
pub use services::*;

use crate::xml::{Element, XmlError, XmlWriter};

pub const SOAP11_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const API_NS: &str = "urn:emersion:api";

/// The endpoint an operation is posted to: `POST /{Service}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Accounts.wsdl (plural: Emersion's KB).
    Accounts,
    Orders,
    Services,
    Plans,
    /// Payments (W `API/RetailServices/CreatePayment`: `API/RetailServices`, `ret:`).
    RetailServices,
}

impl Service {
    pub fn path(self) -> &'static str {
        match self {
            Service::Accounts => "Accounts",
            Service::Orders => "Orders",
            Service::Services => "Services",
            Service::Plans => "Plans",
            // pinned: the page names the service, not its URL; posted like the others.
            Service::RetailServices => "RetailServices",
        }
    }
}

/// One Emersion operation: its name, its service, its request and response element
/// names, how to write its request and read its response.
pub trait Operation {
    const NAME: &'static str;
    const SERVICE: Service;
    /// The request element, as the operation's page shows it.
    const REQUEST: &'static str;
    /// The response element, as the operation's page shows it.
    const RESPONSE: &'static str;
    type Response;
    /// Writes the children of the request element.
    fn write(&self, w: &mut XmlWriter);
    /// Reads the response element.
    fn read(response: &Element) -> Result<Self::Response, XmlError>;

    /// The request element alone, in the API namespace.
    fn request_xml(&self) -> String {
        let mut w = XmlWriter::new();
        self.write_request(&mut w);
        w.finish()
    }

    fn write_request(&self, w: &mut XmlWriter) {
        w.start_with(Self::REQUEST, &[("xmlns", API_NS)]);
        self.write(w);
        w.end(Self::REQUEST);
    }
}

pub(super) fn opt_leaf(w: &mut XmlWriter, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        w.leaf(name, v);
    }
}

pub(super) fn bool_at(el: &Element, name: &str) -> bool {
    el.child(name)
        .map(|e| e.text.eq_ignore_ascii_case("true") || e.text == "1")
        .unwrap_or(false)
}

pub(super) fn text_of(el: &Element, name: &str) -> String {
    el.child(name).map(|e| e.text.clone()).unwrap_or_default()
}

/// Every element named `name` below `el`, wherever a vendor nests its collection.
fn all_named<'a>(el: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
    for child in &el.children {
        if child.name == name {
            out.push(child);
        } else {
            all_named(child, name, out);
        }
    }
}

pub(super) fn collect<'a, T>(
    el: &'a Element,
    name: &str,
    read: impl Fn(&'a Element) -> Result<T, XmlError>,
) -> Result<Vec<T>, XmlError> {
    let mut found = Vec::new();
    all_named(el, name, &mut found);
    found.into_iter().map(read).collect()
}

// ---- Accounts service (account lookups and creation: accounts.rs) ----

#[derive(Debug, Clone)]
pub struct AddNote {
    /// 1 = account, 5 = service.
    pub object_type_id: i64,
    pub object_type_value: i64,
    pub subject: String,
    pub detail: String,
}

/// The AddNote page's sample is `acc:AddNote` (API-FINDINGS.md): an Accounts operation, so
/// it follows that service's path; the bare operation name is the request element.
impl Operation for AddNote {
    const NAME: &'static str = "AddNote";
    const SERVICE: Service = Service::Accounts;
    const REQUEST: &'static str = "AddNote";
    const RESPONSE: &'static str = "AddNoteResponse";
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ObjectTypeID", self.object_type_id)
            .leaf("ObjectTypeValue", self.object_type_value)
            .leaf("NoteSubject", &self.subject)
            .leaf("NoteDetail", &self.detail);
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["NoteID"])
    }
}

/// A SOAP 1.1 Fault: `faultcode` local part (`Client` or `Server`) and the message,
/// from `faultstring` or, when that is empty or generic, from `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: String,
    pub message: String,
}

impl Fault {
    pub fn read(fault: &Element) -> Fault {
        let code = text_of(fault, "faultcode");
        let code = code.rsplit(':').next().unwrap_or(&code).to_string();
        let faultstring = text_of(fault, "faultstring");
        let detail = fault.child("detail").map(deep_text).unwrap_or_default();
        let message = match (faultstring.is_empty(), detail.is_empty()) {
            (false, true) => faultstring,
            (true, false) => detail,
            (false, false) if faultstring == detail => faultstring,
            (false, false) if detail.contains(&faultstring) => detail,
            (false, false) if faultstring.contains(&detail) => faultstring,
            (false, false) => format!("{faultstring}: {detail}"),
            (true, true) => "SOAP fault without a message".to_string(),
        };
        Fault { code, message }
    }

    pub fn is_server(&self) -> bool {
        self.code.eq_ignore_ascii_case("Server") || self.code.eq_ignore_ascii_case("Receiver")
    }
}

/// All text below an element, joined with spaces.
fn deep_text(el: &Element) -> String {
    let mut parts = Vec::new();
    if !el.text.is_empty() {
        parts.push(el.text.clone());
    }
    for child in &el.children {
        let t = deep_text(child);
        if !t.is_empty() {
            parts.push(t);
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use chrono::NaiveDate;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/emersion/",
                $name
            ))
        };
    }

    fn same<O: Operation>(op: &O, fixture: &str) {
        let ours = Element::parse(&op.request_xml()).unwrap().canonical();
        let pinned = Element::parse(fixture).unwrap().canonical();
        assert_eq!(ours, pinned, "{}", O::NAME);
    }

    #[test]
    fn every_request_body_equals_its_fixture() {
        use crate::billing::emersion::accounts::{self, tests::jo};
        same(
            &accounts::MyGetAccountFromUsernameAndPassword {
                username: "jane.citizen".into(),
                password: Secret::new("correct-horse"),
            },
            fixture!("MyGetAccountFromUsernameAndPassword.request.xml"),
        );
        same(
            &accounts::CheckUsernameAvailability {
                username: "user_name".into(),
            },
            fixture!("CheckUsernameAvailability.request.xml"),
        );
        same(
            &accounts::CreateComplexAccount { account: jo() },
            fixture!("CreateComplexAccount.request.xml"),
        );
        same(
            &PerformSimpleSQ {
                account_presale_id: 100363,
                service_type_id: 4362,
            },
            fixture!("PerformSimpleSQ.request.xml"),
        );
        same(
            &StartOrder {
                account_id: 100001,
                purchase_order: Some("PO-77".into()),
                promo_code: None,
            },
            fixture!("StartOrder.request.xml"),
        );
        same(
            &PerformGeneralPhoneSQ {
                account_presale_id: 120000,
                service_type_id: 100300,
                transfer_type: TransferType::Churn,
                identifier: Some("0299998888".into()),
                range_size: None,
            },
            fixture!("PerformGeneralPhoneSQ.request.xml"),
        );
        same(
            &FindNWBSQAddress {
                service_type_id: 100400,
                address: Address {
                    street_number: "1".into(),
                    street_name: "George".into(),
                    street_type: "St".into(),
                    suburb: "Sydney".into(),
                    state: "NSW".into(),
                    postcode: "2000".into(),
                    location_id: None,
                },
            },
            fixture!("FindNWBSQAddress.request.xml"),
        );
        same(
            &PerformNWBSQ {
                account_presale_id: 120000,
                service_type_id: 100400,
                transfer_type: TransferType::New,
                details: NwbIdentifier::Location {
                    service_provider: "AAPT".into(),
                    location_id: "LOC000000000001".into(),
                    mark_as_available: None,
                },
            },
            fixture!("PerformNWBSQ.request.xml"),
        );
        same(
            &PerformNWBSQ {
                account_presale_id: 120000,
                service_type_id: 100400,
                transfer_type: TransferType::Churn,
                details: NwbIdentifier::Fnn("0299998888".into()),
            },
            fixture!("PerformNWBSQ.fnn.request.xml"),
        );
        same(
            &GetAvailablePackages {
                account_presale_id: 120000,
            },
            fixture!("GetAvailablePackages.request.xml"),
        );
        same(
            &SelectPackagePlan {
                account_presale_id: 120000,
                package_plan_id: 200100,
            },
            fixture!("SelectPackagePlan.request.xml"),
        );
        let plan = 300100;
        same(
            &GetServiceConfigurationRequirements {
                service_plan_id: plan,
                transfer_type: TransferType::New,
            },
            fixture!("GetServiceConfigurationRequirements.request.xml"),
        );
        same(
            &GetServiceFeatureConfigurationRequirements {
                service_plan_id: 1234567,
            },
            fixture!("GetServiceFeatureConfigurationRequirements.request.xml"),
        );
        same(
            &GetServiceContactRequirements {
                service_plan_id: plan,
            },
            fixture!("GetServiceContactRequirements.request.xml"),
        );
        same(
            &GetServiceIdentifierRequirements {
                service_plan_id: 1234567,
            },
            fixture!("GetServiceIdentifierRequirements.request.xml"),
        );
        same(
            &GetServiceIdentifierRealm {
                service_plan_id: 1234567,
            },
            fixture!("GetServiceIdentifierRealm.request.xml"),
        );
        same(
            &SetServiceConfiguration {
                presale_sq_id: 362000,
                values: vec![(500001, "Head office & co".into()), (500002, "Gold".into())],
            },
            fixture!("SetServiceConfiguration.request.xml"),
        );
        same(
            &SetServiceFeatureSetup {
                account_presale_sq_id: 112233,
                features: vec![FeatureSetup {
                    type_id: 1,
                    identifier: Some("abc123".into()),
                    option_type_id: Some(1),
                }],
            },
            fixture!("SetServiceFeatureSetup.request.xml"),
        );
        same(
            &SetServiceContacts {
                account_presale_sq_id: 362000,
                contacts: vec![Contact {
                    type_id: 700001,
                    title: "Ms".into(),
                    first_name: "Jane".into(),
                    last_name: "O'Citizen".into(),
                    date_of_birth: "1980-01-31".into(),
                    email: "jane@example.com".into(),
                    phone: "0299998888".into(),
                }],
            },
            fixture!("SetServiceContacts.request.xml"),
        );
        same(
            &SetServiceIdentifier {
                account_presale_sq_id: 362000,
                username: "jane".into(),
                realm: "nbn.example.net".into(),
                password: Secret::new("s3cret-pass"),
            },
            fixture!("SetServiceIdentifier.request.xml"),
        );
        same(
            &GetTermsAndConditions {
                package_plan_id: 200100,
            },
            fixture!("GetTermsAndConditions.request.xml"),
        );
        same(
            &CompleteOrder {
                account_presale_id: 100363,
            },
            fixture!("CompleteOrder.request.xml"),
        );
        same(
            &ServiceList { account_id: 1 },
            fixture!("serviceList.request.xml"),
        );
        same(
            &ServiceLookup {
                service_identifier: "1300333333".into(),
                service_type_id: Some(133300),
            },
            fixture!("serviceLookup.request.xml"),
        );
        same(
            &AddNote {
                object_type_id: 1,
                object_type_value: 100001,
                subject: "Signed up via CRM".into(),
                detail: "Order crm-77 <web>".into(),
            },
            fixture!("AddNote.request.xml"),
        );
        same(
            &CreatePayment {
                account_id: 100001,
                transaction_category: "Credit Card".into(),
                reference: "crm-77".into(),
                amount: "49.95".parse().unwrap(),
                transaction_date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            },
            fixture!("CreatePayment.request.xml"),
        );
    }

    fn response(xml: &str, name: &str) -> Element {
        Element::parse(xml)
            .unwrap()
            .descendant(name)
            .unwrap()
            .clone()
    }

    #[test]
    fn responses_parse() {
        let sq = response(
            fixture!("PerformSimpleSQ.response.xml"),
            PerformSimpleSQ::RESPONSE,
        );
        assert_eq!(PerformSimpleSQ::read(&sq).unwrap(), 362164);

        let packages = response(
            fixture!("GetAvailablePackages.response.xml"),
            GetAvailablePackages::RESPONSE,
        );
        let packages = GetAvailablePackages::read(&packages).unwrap();
        assert_eq!(packages[0].external_name, "Business Support Basic");
        assert_eq!(packages[0].service_allowances[0].service_plan_id, 300100);
        assert!(packages[0].service_allowances[0].mandatory);

        let props = response(
            fixture!("GetServiceConfigurationRequirements.response.xml"),
            GetServiceConfigurationRequirements::RESPONSE,
        );
        let props = GetServiceConfigurationRequirements::read(&props).unwrap();
        assert_eq!(props.len(), 2);
        assert!(props[0].mandatory && !props[1].mandatory);
        assert_eq!(props[1].value_list, ["Gold", "Silver"]);

        let terms = response(
            fixture!("GetTermsAndConditions.response.xml"),
            GetTermsAndConditions::RESPONSE,
        );
        assert_eq!(GetTermsAndConditions::read(&terms).unwrap()[0].id, 900001);

        let done = response(
            fixture!("CompleteOrder.response.xml"),
            CompleteOrder::RESPONSE,
        );
        assert_eq!(CompleteOrder::read(&done).unwrap(), "true");

        let features = response(
            fixture!("GetServiceFeatureConfigurationRequirements.response.xml"),
            GetServiceFeatureConfigurationRequirements::RESPONSE,
        );
        let features = GetServiceFeatureConfigurationRequirements::read(&features).unwrap();
        assert_eq!(features[0].type_id, 2905);
        assert_eq!(features[0].name, "GSM Voice Mail");
        assert_eq!(features[0].product_id, Some(1932022));
        assert_eq!(features[0].identifier_type, CANNOT_HAVE_IDENT);
        assert_eq!(features[0].default_option_id, Some(1));
        assert_eq!(features[1].behaviour, "Forced, Irremovable");

        let ids = response(
            fixture!("GetServiceIdentifierRequirements.response.xml"),
            GetServiceIdentifierRequirements::RESPONSE,
        );
        let ids = GetServiceIdentifierRequirements::read(&ids).unwrap();
        assert_eq!(
            (ids[0].type_id, ids[0].name.as_str()),
            (100161, "Service Number")
        );
        assert!(ids[0].realm_required && ids[0].authentication_based);

        let realms = response(
            fixture!("GetServiceIdentifierRealm.response.xml"),
            GetServiceIdentifierRealm::RESPONSE,
        );
        let realms = GetServiceIdentifierRealm::read(&realms).unwrap();
        assert_eq!(realms[1].id, 30025);
        assert_eq!(realms[1].name, "au.communitytelco");

        let nwb = response(
            fixture!("PerformNWBSQ.response.xml"),
            PerformNWBSQ::RESPONSE,
        );
        assert_eq!(PerformNWBSQ::read(&nwb).unwrap(), 362001);
    }

    #[test]
    fn faults_take_their_message_from_faultstring_or_detail() {
        let fault = Fault::read(
            Element::parse(fixture!("Fault.client.xml"))
                .unwrap()
                .descendant("Fault")
                .unwrap(),
        );
        assert_eq!(fault.code, "Client");
        assert_eq!(
            fault.message,
            "Account presale already contain package plan"
        );
        assert!(!fault.is_server());
        let fault = Fault::read(
            Element::parse(fixture!("Fault.detail-only.xml"))
                .unwrap()
                .descendant("Fault")
                .unwrap(),
        );
        assert!(fault.is_server());
        assert_eq!(fault.message, "Database temporarily unavailable");
    }
}
