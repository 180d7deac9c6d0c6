//! The Services service (Services.wsdl): per service plan, the configuration, feature,
//! contact and identifier requirements, and the Set calls on an SQ. Their pages name the
//! request element with the bare operation name (`urn:SetServiceConfiguration`), except
//! GetServiceIdentifierRealm's `GetServiceIdentifierRealmRequest`.

use serde::{Deserialize, Serialize};

use super::orders::TransferType;
use super::{bool_at, collect, text_of, Operation, Service};
use crate::secret::Secret;
use crate::xml::{Element, XmlError, XmlWriter};

fn status(r: &Element) -> Result<String, XmlError> {
    Ok(r.text_at(&["Status"])?.to_string())
}

/// The `ID` attribute of `<{name} ID="…">`, as the pages write typed references.
fn id_attr(el: &Element, name: &str) -> Result<Option<i64>, XmlError> {
    let Some(raw) = el.child(name).and_then(|c| c.attr("ID")) else {
        return Ok(None);
    };
    raw.parse()
        .map(Some)
        .map_err(|e: std::num::ParseIntError| XmlError::Invalid {
            element: format!("{name}/@ID"),
            value: raw.to_string(),
            reason: e.to_string(),
        })
}

/// `<{name} ID="id">id</{name}>`, as W `API/Services/SetServiceFeatureSetup` writes them.
fn typed_ref(w: &mut XmlWriter, name: &str, id: i64) {
    let id = id.to_string();
    w.start_with(name, &[("ID", &id)]).text(&id).end(name);
}

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
    pub transfer_type: TransferType,
}

/// W `API/Services/GetServiceConfigurationRequirements`; pinned: the Property layout
/// (TypeID, Name, ValueType, IsMandatory, ValueList/Value) as API-NOTES.md has it.
impl Operation for GetServiceConfigurationRequirements {
    const NAME: &'static str = "GetServiceConfigurationRequirements";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "GetServiceConfigurationRequirements";
    const RESPONSE: &'static str = "GetServiceConfigurationRequirementsResponse";
    type Response = Vec<PropertyRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id)
            .leaf("TransferType", self.transfer_type.as_str());
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

/// Whether a feature takes a `FeatureIdentifier` (its `FeatureIdentifierType`).
pub const CANNOT_HAVE_IDENT: &str = "CANNOT_HAVE_IDENT";
/// pinned: the page shows only CANNOT_HAVE_IDENT; the other two follow its error texts
/// ("must have identifier") and its naming.
pub const MUST_HAVE_IDENT: &str = "MUST_HAVE_IDENT";
pub const CAN_HAVE_IDENT: &str = "CAN_HAVE_IDENT";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRequirement {
    /// The feature's `Type ID`: what SetServiceFeatureSetup names it by.
    pub type_id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    /// CANNOT_HAVE_IDENT, MUST_HAVE_IDENT or CAN_HAVE_IDENT.
    pub identifier_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_option_id: Option<i64>,
    /// E.g. "Forced, Removeable".
    #[serde(default)]
    pub behaviour: String,
}

#[derive(Debug, Clone)]
pub struct GetServiceFeatureConfigurationRequirements {
    pub service_plan_id: i64,
}

/// W `API/Services/GetServiceFeatureConfigurationRequirements`.
impl Operation for GetServiceFeatureConfigurationRequirements {
    const NAME: &'static str = "GetServiceFeatureConfigurationRequirements";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "GetServiceFeatureConfigurationRequirements";
    const RESPONSE: &'static str = "GetServiceFeatureConfigurationRequirementsResponse";
    type Response = Vec<FeatureRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<FeatureRequirement>, XmlError> {
        collect(r, "ServiceFeature", |f| {
            Ok(FeatureRequirement {
                type_id: id_attr(f, "Type")?.ok_or_else(|| XmlError::Missing("Type/@ID".into()))?,
                name: text_of(f, "Type"),
                product_id: id_attr(f, "Product")?,
                identifier_type: text_of(f, "FeatureIdentifierType"),
                default_option_id: id_attr(f, "DefaultOption")?,
                behaviour: text_of(f, "FeatureBehaviour"),
            })
        })
    }
}

/// One `ServiceFeature` of SetServiceFeatureSetup.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSetup {
    pub type_id: i64,
    pub identifier: Option<String>,
    pub option_type_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SetServiceFeatureSetup {
    pub account_presale_sq_id: i64,
    pub features: Vec<FeatureSetup>,
}

/// W `API/Services/SetServiceFeatureSetup`.
impl Operation for SetServiceFeatureSetup {
    const NAME: &'static str = "SetServiceFeatureSetup";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "SetServiceFeatureSetup";
    const RESPONSE: &'static str = "SetServiceFeatureSetupResponse";
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleSQID", self.account_presale_sq_id)
            .start("ServiceFeatures");
        for f in &self.features {
            w.start("ServiceFeature");
            typed_ref(w, "Type", f.type_id);
            if let Some(identifier) = &f.identifier {
                w.leaf("FeatureIdentifier", identifier);
            }
            if let Some(option) = f.option_type_id {
                typed_ref(w, "OptionType", option);
            }
            w.end("ServiceFeature");
        }
        w.end("ServiceFeatures");
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        status(r)
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

/// W `API/Services/GetServiceContactRequirements`; pinned: TypeID and Name as children.
impl Operation for GetServiceContactRequirements {
    const NAME: &'static str = "GetServiceContactRequirements";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "GetServiceContactRequirements";
    const RESPONSE: &'static str = "GetServiceContactRequirementsResponse";
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
    pub type_id: i64,
    pub name: String,
    pub realm_required: bool,
    /// An identifier used to authenticate (a login): SetServiceIdentifier sets it.
    pub authentication_based: bool,
}

#[derive(Debug, Clone)]
pub struct GetServiceIdentifierRequirements {
    pub service_plan_id: i64,
}

/// W `API/Services/GetServiceIdentifierRequirements`.
impl Operation for GetServiceIdentifierRequirements {
    const NAME: &'static str = "GetServiceIdentifierRequirements";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "GetServiceIdentifierRequirements";
    const RESPONSE: &'static str = "GetServiceIdentifierRequirementsResponse";
    type Response = Vec<IdentifierRequirement>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<IdentifierRequirement>, XmlError> {
        collect(r, "ServiceIdentifier", |i| {
            Ok(IdentifierRequirement {
                type_id: id_attr(i, "Type")?.ok_or_else(|| XmlError::Missing("Type/@ID".into()))?,
                name: text_of(i, "Type"),
                realm_required: bool_at(i, "RealmIsRequired"),
                authentication_based: bool_at(i, "IsAuthenticationBased"),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Realm {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct GetServiceIdentifierRealm {
    pub service_plan_id: i64,
}

/// W `API/Services/GetServiceIdentifierRealm`.
impl Operation for GetServiceIdentifierRealm {
    const NAME: &'static str = "GetServiceIdentifierRealm";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "GetServiceIdentifierRealmRequest";
    const RESPONSE: &'static str = "GetServiceIdentifierRealmResponse";
    type Response = Vec<Realm>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("ServicePlanID", self.service_plan_id);
    }
    fn read(r: &Element) -> Result<Vec<Realm>, XmlError> {
        collect(r, "Realm", |realm| {
            Ok(Realm {
                id: realm.parse_at(&["RealmID"])?,
                name: text_of(realm, "RealmName"),
            })
        })
    }
}

#[derive(Debug, Clone)]
pub struct SetServiceConfiguration {
    pub presale_sq_id: i64,
    /// (TypeID, Value)
    pub values: Vec<(i64, String)>,
}

/// W `API/Services/SetServiceConfiguration`.
impl Operation for SetServiceConfiguration {
    const NAME: &'static str = "SetServiceConfiguration";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "SetServiceConfiguration";
    const RESPONSE: &'static str = "SetServiceConfigurationResponse";
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
        status(r)
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

/// W `API/Services/SetServiceContacts`; pinned: Details as Email and Phone leaves.
impl Operation for SetServiceContacts {
    const NAME: &'static str = "SetServiceContacts";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "SetServiceContacts";
    const RESPONSE: &'static str = "SetServiceContactsResponse";
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
        status(r)
    }
}

#[derive(Debug, Clone)]
pub struct SetServiceIdentifier {
    pub account_presale_sq_id: i64,
    pub username: String,
    pub realm: String,
    pub password: Secret,
}

/// W `API/Services/SetServiceIdentifier`.
impl Operation for SetServiceIdentifier {
    const NAME: &'static str = "SetServiceIdentifier";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "SetServiceIdentifier";
    const RESPONSE: &'static str = "SetServiceIdentifierResponse";
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleSQID", self.account_presale_sq_id)
            .leaf("Username", &self.username)
            .leaf("Realm", &self.realm)
            .leaf("Password", self.password.expose());
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        status(r)
    }
}
