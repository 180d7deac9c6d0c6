//! Emersion SOAP 1.1 operations: each request as a struct that writes its
//! `{Operation}Request` element, each response read by local element name from
//! `{Operation}Response`. The shapes the seeds leave open are pinned in API-NOTES.md.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
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
}

impl Service {
    pub fn path(self) -> &'static str {
        match self {
            Service::Accounts => "Accounts",
            Service::Orders => "Orders",
            Service::Services => "Services",
            Service::Plans => "Plans",
        }
    }
}

/// One Emersion operation: its name, its service, how to write its request and read
/// its response.
pub trait Operation {
    const NAME: &'static str;
    const SERVICE: Service;
    type Response;
    /// Writes the children of `{NAME}Request`.
    fn write(&self, w: &mut XmlWriter);
    /// Reads the `{NAME}Response` element.
    fn read(response: &Element) -> Result<Self::Response, XmlError>;

    /// The `{NAME}Request` element alone, in the API namespace.
    fn request_xml(&self) -> String {
        let mut w = XmlWriter::new();
        self.write_request(&mut w);
        w.finish()
    }

    fn write_request(&self, w: &mut XmlWriter) {
        let name = format!("{}Request", Self::NAME);
        w.start_with(&name, &[("xmlns", API_NS)]);
        self.write(w);
        w.end(&name);
    }
}

fn opt_leaf(w: &mut XmlWriter, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        w.leaf(name, v);
    }
}

fn bool_at(el: &Element, name: &str) -> bool {
    el.child(name)
        .map(|e| e.text.eq_ignore_ascii_case("true") || e.text == "1")
        .unwrap_or(false)
}

fn text_of(el: &Element, name: &str) -> String {
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

fn collect<'a, T>(
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

impl Operation for AddNote {
    const NAME: &'static str = "AddNote";
    const SERVICE: Service = Service::Accounts;
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

// ---- Orders service ----

#[derive(Debug, Clone)]
pub struct StartOrder {
    pub account_id: i64,
    pub purchase_order: Option<String>,
    pub promo_code: Option<String>,
}

impl Operation for StartOrder {
    const NAME: &'static str = "StartOrder";
    const SERVICE: Service = Service::Orders;
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountID", self.account_id);
        opt_leaf(w, "PurchaseOrder", &self.purchase_order);
        opt_leaf(w, "PromoCode", &self.promo_code);
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["AccountPresaleID"])
    }
}

#[derive(Debug, Clone)]
pub struct PerformSimpleSQ {
    pub account_presale_id: i64,
    pub service_type_id: i64,
}

impl Operation for PerformSimpleSQ {
    const NAME: &'static str = "PerformSimpleSQ";
    const SERVICE: Service = Service::Orders;
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id);
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["AccountPresaleSQID"])
    }
}

#[derive(Debug, Clone)]
pub struct PerformGeneralPhoneSQ {
    pub account_presale_id: i64,
    pub service_type_id: i64,
    pub phone_number: String,
}

impl Operation for PerformGeneralPhoneSQ {
    const NAME: &'static str = "PerformGeneralPhoneSQ";
    const SERVICE: Service = Service::Orders;
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id)
            .leaf("PhoneNumber", &self.phone_number);
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["AccountPresaleSQID"])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub street_number: String,
    pub street_name: String,
    pub street_type: String,
    pub suburb: String,
    pub state: String,
    pub postcode: String,
    /// Set in FindNWBSQAddress answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

impl Address {
    fn write_fields(&self, w: &mut XmlWriter) {
        w.leaf("StreetNumber", &self.street_number)
            .leaf("StreetName", &self.street_name)
            .leaf("StreetType", &self.street_type)
            .leaf("Suburb", &self.suburb)
            .leaf("State", &self.state)
            .leaf("Postcode", &self.postcode);
    }

    fn read(el: &Element) -> Result<Self, XmlError> {
        Ok(Address {
            street_number: text_of(el, "StreetNumber"),
            street_name: text_of(el, "StreetName"),
            street_type: text_of(el, "StreetType"),
            suburb: text_of(el, "Suburb"),
            state: text_of(el, "State"),
            postcode: text_of(el, "Postcode"),
            location_id: Some(el.text_at(&["LocationID"])?.to_string()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct FindNWBSQAddress {
    pub service_type_id: i64,
    pub address: Address,
}

impl Operation for FindNWBSQAddress {
    const NAME: &'static str = "FindNWBSQAddress";
    const SERVICE: Service = Service::Orders;
    type Response = Vec<Address>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServiceTypeID", self.service_type_id)
            .start("AddressDetails");
        self.address.write_fields(w);
        w.end("AddressDetails");
    }
    fn read(r: &Element) -> Result<Vec<Address>, XmlError> {
        collect(r, "Address", Address::read)
    }
}

#[derive(Debug, Clone)]
pub struct PerformNWBSQ {
    pub account_presale_id: i64,
    pub service_type_id: i64,
    pub location_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NwbQualification {
    pub account_presale_sq_id: i64,
    pub result: String,
}

impl Operation for PerformNWBSQ {
    const NAME: &'static str = "PerformNWBSQ";
    const SERVICE: Service = Service::Orders;
    type Response = NwbQualification;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id)
            .leaf("LocationID", &self.location_id);
    }
    fn read(r: &Element) -> Result<NwbQualification, XmlError> {
        Ok(NwbQualification {
            account_presale_sq_id: r.parse_at(&["AccountPresaleSQID"])?,
            result: r.text_at(&["ServiceQualificationResult"])?.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAllowance {
    pub service_plan_id: i64,
    pub service_type_id: i64,
    pub quantity: i64,
    pub mandatory: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackagePlan {
    pub id: i64,
    pub internal_name: String,
    pub external_name: String,
    #[serde(default)]
    pub service_allowances: Vec<ServiceAllowance>,
}

impl PackagePlan {
    fn read(el: &Element) -> Result<Self, XmlError> {
        Ok(PackagePlan {
            id: el.parse_at(&["ID"])?,
            internal_name: text_of(el, "InternalName"),
            external_name: text_of(el, "ExternalName"),
            service_allowances: collect(el, "ServiceAllowance", |a| {
                Ok(ServiceAllowance {
                    service_plan_id: a.parse_at(&["ServicePlanID"])?,
                    service_type_id: a.parse_at(&["ServiceTypeID"])?,
                    quantity: a.parse_opt(&["Quantity"])?.unwrap_or(1),
                    mandatory: bool_at(a, "Mandatory"),
                })
            })?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct GetAvailablePackages {
    pub account_presale_id: i64,
}

impl Operation for GetAvailablePackages {
    const NAME: &'static str = "GetAvailablePackages";
    const SERVICE: Service = Service::Orders;
    type Response = Vec<PackagePlan>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id);
    }
    fn read(r: &Element) -> Result<Vec<PackagePlan>, XmlError> {
        collect(r, "PackagePlan", PackagePlan::read)
    }
}

#[derive(Debug, Clone)]
pub struct SelectPackagePlan {
    pub account_presale_id: i64,
    pub package_plan_id: i64,
}

impl Operation for SelectPackagePlan {
    const NAME: &'static str = "SelectPackagePlan";
    const SERVICE: Service = Service::Orders;
    type Response = PackagePlan;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("PackagePlanID", self.package_plan_id);
    }
    fn read(r: &Element) -> Result<PackagePlan, XmlError> {
        let plan = r
            .descendant("PackagePlan")
            .ok_or_else(|| XmlError::Missing("PackagePlan".into()))?;
        PackagePlan::read(plan)
    }
}

#[derive(Debug, Clone)]
pub struct CompleteOrder {
    pub account_presale_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedService {
    pub service_id: i64,
    pub service_type_id: Option<i64>,
    pub service_plan_id: Option<i64>,
    pub status: String,
}

impl CreatedService {
    fn read(s: &Element) -> Result<Self, XmlError> {
        Ok(CreatedService {
            service_id: s.parse_at(&["ServiceID"])?,
            service_type_id: s.parse_opt(&["ServiceTypeID"])?,
            service_plan_id: s.parse_opt(&["ServicePlanID"])?,
            status: text_of(s, "Status"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedOrder {
    pub status: String,
    pub services: Vec<CreatedService>,
}

impl Operation for CompleteOrder {
    const NAME: &'static str = "CompleteOrder";
    const SERVICE: Service = Service::Orders;
    type Response = CompletedOrder;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id);
    }
    fn read(r: &Element) -> Result<CompletedOrder, XmlError> {
        Ok(CompletedOrder {
            status: r.text_at(&["Status"])?.to_string(),
            services: collect(r, "Service", CreatedService::read)?,
        })
    }
}

// ---- Services service: requirements ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyRequirement {
    pub type_id: i64,
    pub name: String,
    /// `String`, `Integer` or `List`.
    pub value_type: String,
    pub mandatory: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_list: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GetServiceConfigurationRequirements {
    pub service_plan_id: i64,
}

impl Operation for GetServiceConfigurationRequirements {
    const NAME: &'static str = "GetServiceConfigurationRequirements";
    const SERVICE: Service = Service::Services;
    type Response = Vec<PropertyRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id)
            .leaf("TransferType", "New");
    }
    fn read(r: &Element) -> Result<Vec<PropertyRequirement>, XmlError> {
        collect(r, "Property", |p| {
            Ok(PropertyRequirement {
                type_id: p.parse_at(&["TypeID"])?,
                name: text_of(p, "Name"),
                value_type: text_of(p, "ValueType"),
                mandatory: bool_at(p, "IsMandatory"),
                value_list: p
                    .child("ValueList")
                    .map(|l| l.children_named("Value").map(|v| v.text.clone()).collect())
                    .unwrap_or_default(),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRequirement {
    pub feature_id: i64,
    pub name: String,
    pub mandatory: bool,
}

#[derive(Debug, Clone)]
pub struct GetServiceFeatureRequirements {
    pub service_plan_id: i64,
}

impl Operation for GetServiceFeatureRequirements {
    const NAME: &'static str = "GetServiceFeatureRequirements";
    const SERVICE: Service = Service::Services;
    type Response = Vec<FeatureRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<FeatureRequirement>, XmlError> {
        collect(r, "Feature", |f| {
            Ok(FeatureRequirement {
                feature_id: f.parse_at(&["FeatureID"])?,
                name: text_of(f, "Name"),
                mandatory: bool_at(f, "IsMandatory"),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRequirement {
    pub type_id: i64,
    pub name: String,
    pub minimum: i64,
    pub maximum: i64,
}

#[derive(Debug, Clone)]
pub struct GetServiceContactRequirements {
    pub service_plan_id: i64,
}

impl Operation for GetServiceContactRequirements {
    const NAME: &'static str = "GetServiceContactRequirements";
    const SERVICE: Service = Service::Services;
    type Response = Vec<ContactRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<ContactRequirement>, XmlError> {
        collect(r, "ContactType", |c| {
            Ok(ContactRequirement {
                type_id: c.parse_at(&["TypeID"])?,
                name: text_of(c, "Name"),
                minimum: c.parse_opt(&["MinimumRequired"])?.unwrap_or(0),
                maximum: c.parse_opt(&["MaximumRequired"])?.unwrap_or(i64::MAX),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifierRequirement {
    pub kind: String,
    pub mandatory: bool,
}

#[derive(Debug, Clone)]
pub struct GetServiceIdentifierRequirements {
    pub service_plan_id: i64,
}

impl Operation for GetServiceIdentifierRequirements {
    const NAME: &'static str = "GetServiceIdentifierRequirements";
    const SERVICE: Service = Service::Services;
    type Response = Vec<IdentifierRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<IdentifierRequirement>, XmlError> {
        collect(r, "Identifier", |i| {
            Ok(IdentifierRequirement {
                kind: text_of(i, "Type"),
                mandatory: bool_at(i, "IsMandatory"),
            })
        })
    }
}

#[derive(Debug, Clone)]
pub struct GetServiceIdentifierRealms {
    pub service_plan_id: i64,
}

impl Operation for GetServiceIdentifierRealms {
    const NAME: &'static str = "GetServiceIdentifierRealms";
    const SERVICE: Service = Service::Services;
    type Response = Vec<String>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<String>, XmlError> {
        collect(r, "Realm", |realm| Ok(text_of(realm, "Name")))
    }
}

// ---- Services service: set calls ----

#[derive(Debug, Clone)]
pub struct SetServiceConfiguration {
    pub presale_sq_id: i64,
    /// (TypeID, Value)
    pub values: Vec<(i64, String)>,
}

impl Operation for SetServiceConfiguration {
    const NAME: &'static str = "SetServiceConfiguration";
    const SERVICE: Service = Service::Services;
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("PresaleSQID", self.presale_sq_id)
            .start("Properties");
        for (type_id, value) in &self.values {
            w.start("PropertyValue")
                .leaf("TypeID", type_id)
                .leaf("Value", value)
                .end("PropertyValue");
        }
        w.end("Properties");
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        Ok(r.text_at(&["Status"])?.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct SetServiceFeatures {
    pub account_presale_sq_id: i64,
    /// (FeatureID, Value)
    pub features: Vec<(i64, String)>,
}

impl Operation for SetServiceFeatures {
    const NAME: &'static str = "SetServiceFeatures";
    const SERVICE: Service = Service::Services;
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleSQID", self.account_presale_sq_id)
            .start("Features");
        for (id, value) in &self.features {
            w.start("Feature")
                .leaf("FeatureID", id)
                .leaf("Value", value)
                .end("Feature");
        }
        w.end("Features");
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        Ok(r.text_at(&["Status"])?.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub type_id: i64,
    #[serde(default)]
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    /// YYYY-MM-DD
    #[serde(default)]
    pub date_of_birth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct SetServiceContacts {
    pub account_presale_sq_id: i64,
    pub contacts: Vec<Contact>,
}

impl Operation for SetServiceContacts {
    const NAME: &'static str = "SetServiceContacts";
    const SERVICE: Service = Service::Services;
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleSQID", self.account_presale_sq_id)
            .start("ContactCollections");
        for c in &self.contacts {
            w.start("Contact")
                .leaf("Type", c.type_id)
                .leaf("Title", &c.title)
                .leaf("FirstName", &c.first_name)
                .leaf("LastName", &c.last_name)
                .leaf("DateOfBirth", &c.date_of_birth)
                .group("Details", &[("Email", &c.email), ("Phone", &c.phone)])
                .end("Contact");
        }
        w.end("ContactCollections");
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        Ok(r.text_at(&["Status"])?.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct SetServiceIdentifier {
    pub account_presale_sq_id: i64,
    pub username: String,
    pub realm: String,
    pub password: Secret,
}

impl Operation for SetServiceIdentifier {
    const NAME: &'static str = "SetServiceIdentifier";
    const SERVICE: Service = Service::Services;
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleSQID", self.account_presale_sq_id)
            .leaf("Username", &self.username)
            .leaf("Realm", &self.realm)
            .leaf("Password", self.password.expose());
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        Ok(r.text_at(&["Status"])?.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct CreatePayment {
    pub account_id: i64,
    pub transaction_category: String,
    pub reference: String,
    pub amount: Decimal,
    pub transaction_date: NaiveDate,
}

impl Operation for CreatePayment {
    const NAME: &'static str = "CreatePayment";
    const SERVICE: Service = Service::Services;
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountID", self.account_id)
            .leaf("TransactionCategory", &self.transaction_category)
            .leaf("Reference", &self.reference)
            .leaf("Amount", self.amount)
            // Emersion's documented date format: "DD MMM YYYY".
            .leaf("TransactionDate", self.transaction_date.format("%d %b %Y"));
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["paymentID"])
    }
}

// ---- Plans service ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub id: i64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct GetTermsAndConditions {
    pub package_plan_id: i64,
}

impl Operation for GetTermsAndConditions {
    const NAME: &'static str = "GetTermsAndConditions";
    const SERVICE: Service = Service::Plans;
    type Response = Vec<Terms>;
    fn write(&self, w: &mut XmlWriter) {
        w.group("ObjectMapping", &[("PackagePlanID", &self.package_plan_id)]);
    }
    fn read(r: &Element) -> Result<Vec<Terms>, XmlError> {
        collect(r, "TermsandConditions", |t| {
            Ok(Terms {
                id: t.parse_at(&["TermsandConditionsID"])?,
                text: text_of(t, "TermsandConditionsText"),
            })
        })
    }
}

// ---- Orders service: the presale lookup ----

/// The read-only presale lookup: what a worker asks when it cannot tell whether its last
/// Orders call took effect.
#[derive(Debug, Clone)]
pub struct GetAccountPresale {
    pub account_presale_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresaleSq {
    pub account_presale_sq_id: i64,
    pub service_type_id: i64,
    /// `Pending` or `Complete`.
    pub status: String,
    /// `Qualified` or `NotQualified`; absent while the SQ is pending.
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountPresale {
    pub account_presale_id: i64,
    pub account_id: i64,
    /// `Open` or `Complete`.
    pub status: String,
    pub package_plan_id: Option<i64>,
    pub sqs: Vec<PresaleSq>,
    /// The services CompleteOrder created; empty before.
    pub services: Vec<CreatedService>,
}

impl Operation for GetAccountPresale {
    const NAME: &'static str = "GetAccountPresale";
    const SERVICE: Service = Service::Orders;
    type Response = AccountPresale;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id);
    }
    fn read(r: &Element) -> Result<AccountPresale, XmlError> {
        let presale = r
            .descendant("AccountPresale")
            .ok_or_else(|| XmlError::Missing("AccountPresale".into()))?;
        Ok(AccountPresale {
            account_presale_id: presale.parse_at(&["AccountPresaleID"])?,
            account_id: presale.parse_at(&["AccountID"])?,
            status: presale.text_at(&["Status"])?.to_string(),
            package_plan_id: presale.parse_opt(&["PackagePlanID"])?,
            sqs: collect(presale, "SQ", |sq| {
                Ok(PresaleSq {
                    account_presale_sq_id: sq.parse_at(&["AccountPresaleSQID"])?,
                    service_type_id: sq.parse_at(&["ServiceTypeID"])?,
                    status: text_of(sq, "Status"),
                    result: Some(text_of(sq, "Result")).filter(|r| !r.is_empty()),
                })
            })?,
            services: collect(presale, "Service", CreatedService::read)?,
        })
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
                phone_number: "0299998888".into(),
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
                location_id: "LOC000000000001".into(),
            },
            fixture!("PerformNWBSQ.request.xml"),
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
            },
            fixture!("GetServiceConfigurationRequirements.request.xml"),
        );
        same(
            &GetServiceFeatureRequirements {
                service_plan_id: plan,
            },
            fixture!("GetServiceFeatureRequirements.request.xml"),
        );
        same(
            &GetServiceContactRequirements {
                service_plan_id: plan,
            },
            fixture!("GetServiceContactRequirements.request.xml"),
        );
        same(
            &GetServiceIdentifierRequirements {
                service_plan_id: plan,
            },
            fixture!("GetServiceIdentifierRequirements.request.xml"),
        );
        same(
            &GetServiceIdentifierRealms {
                service_plan_id: plan,
            },
            fixture!("GetServiceIdentifierRealms.request.xml"),
        );
        same(
            &SetServiceConfiguration {
                presale_sq_id: 362000,
                values: vec![(500001, "Head office & co".into()), (500002, "Gold".into())],
            },
            fixture!("SetServiceConfiguration.request.xml"),
        );
        same(
            &SetServiceFeatures {
                account_presale_sq_id: 362000,
                features: vec![(600001, "true".into())],
            },
            fixture!("SetServiceFeatures.request.xml"),
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
                account_presale_id: 120000,
            },
            fixture!("CompleteOrder.request.xml"),
        );
        same(
            &GetAccountPresale {
                account_presale_id: 120000,
            },
            fixture!("GetAccountPresale.request.xml"),
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
            "PerformSimpleSQResponse",
        );
        assert_eq!(PerformSimpleSQ::read(&sq).unwrap(), 362164);

        let packages = response(
            fixture!("GetAvailablePackages.response.xml"),
            "GetAvailablePackagesResponse",
        );
        let packages = GetAvailablePackages::read(&packages).unwrap();
        assert_eq!(packages[0].external_name, "Business Support Basic");
        assert_eq!(packages[0].service_allowances[0].service_plan_id, 300100);
        assert!(packages[0].service_allowances[0].mandatory);

        let props = response(
            fixture!("GetServiceConfigurationRequirements.response.xml"),
            "GetServiceConfigurationRequirementsResponse",
        );
        let props = GetServiceConfigurationRequirements::read(&props).unwrap();
        assert_eq!(props.len(), 2);
        assert!(props[0].mandatory && !props[1].mandatory);
        assert_eq!(props[1].value_list, ["Gold", "Silver"]);

        let terms = response(
            fixture!("GetTermsAndConditions.response.xml"),
            "GetTermsAndConditionsResponse",
        );
        assert_eq!(GetTermsAndConditions::read(&terms).unwrap()[0].id, 900001);

        let done = response(
            fixture!("CompleteOrder.response.xml"),
            "CompleteOrderResponse",
        );
        let done = CompleteOrder::read(&done).unwrap();
        assert_eq!(done.services[0].status, "PreActive");
        assert_eq!(done.services[0].service_id, 800000);
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
