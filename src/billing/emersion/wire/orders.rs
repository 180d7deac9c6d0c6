//! The Orders service (Orders.wsdl): StartOrder, the service qualifications, packages and
//! CompleteOrder. Every Orders page shows `{Operation}Request` / `{Operation}Response`.

use serde::{Deserialize, Serialize};

use super::{bool_at, collect, opt_leaf, text_of, Operation, Service};
use crate::xml::{Element, XmlError, XmlWriter};

#[derive(Debug, Clone)]
pub struct StartOrder {
    pub account_id: i64,
    pub purchase_order: Option<String>,
    pub promo_code: Option<String>,
}

/// W `API/Orders/StartOrder`.
impl Operation for StartOrder {
    const NAME: &'static str = "StartOrder";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "StartOrderRequest";
    const RESPONSE: &'static str = "StartOrderResponse";
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

/// Seed 004.
impl Operation for PerformSimpleSQ {
    const NAME: &'static str = "PerformSimpleSQ";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "PerformSimpleSQRequest";
    const RESPONSE: &'static str = "PerformSimpleSQResponse";
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id);
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["AccountPresaleSQID"])
    }
}

/// `TransferType` of the SQ calls: a new service, or one taken over from another provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferType {
    New,
    Churn,
}

impl TransferType {
    /// As the SQ pages write it (W `API/Orders/PerformGeneralRangedSQ`: "New|Churn").
    pub fn as_str(self) -> &'static str {
        match self {
            TransferType::New => "New",
            TransferType::Churn => "Churn",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PerformGeneralPhoneSQ {
    pub account_presale_id: i64,
    pub service_type_id: i64,
    pub transfer_type: TransferType,
    /// The number; required for Churn.
    pub identifier: Option<String>,
    pub range_size: Option<u32>,
}

/// Its own page is not readable; the sibling W `API/Orders/PerformGeneralRangedSQ` shows
/// `PerformGeneralPhoneSQRequest{AccountPresaleID, ServiceTypeID, TransferType,
/// Identifier, RangeSize?}` → AccountPresaleSQID.
impl Operation for PerformGeneralPhoneSQ {
    const NAME: &'static str = "PerformGeneralPhoneSQ";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "PerformGeneralPhoneSQRequest";
    const RESPONSE: &'static str = "PerformGeneralPhoneSQResponse";
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id)
            .leaf("TransferType", self.transfer_type.as_str());
        opt_leaf(w, "Identifier", &self.identifier);
        if let Some(size) = self.range_size {
            w.leaf("RangeSize", size);
        }
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

/// W `API/Orders/FindNWBSQAddress` shows the input; pinned: the answer's layout (Address*
/// with the fields above and LocationID), which the page does not show.
impl Operation for FindNWBSQAddress {
    const NAME: &'static str = "FindNWBSQAddress";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "FindNWBSQAddressRequest";
    const RESPONSE: &'static str = "FindNWBSQAddressResponse";
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

/// PerformNWBSQ's `ServiceIdentifierDetails`: the service's FNN, or a provider and the
/// location FindNWBSQAddress found.
#[derive(Debug, Clone, PartialEq)]
pub enum NwbIdentifier {
    Fnn(String),
    Location {
        service_provider: String,
        location_id: String,
        mark_as_available: Option<bool>,
    },
}

#[derive(Debug, Clone)]
pub struct PerformNWBSQ {
    pub account_presale_id: i64,
    pub service_type_id: i64,
    pub transfer_type: TransferType,
    pub details: NwbIdentifier,
}

/// W `API/Orders/PerformNWBSQ`: the answer is the AccountPresaleSQID alone.
impl Operation for PerformNWBSQ {
    const NAME: &'static str = "PerformNWBSQ";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "PerformNWBSQRequest";
    const RESPONSE: &'static str = "PerformNWBSQResponse";
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id)
            .leaf("ServiceTypeID", self.service_type_id)
            .leaf("TransferType", self.transfer_type.as_str())
            .start("ServiceIdentifierDetails");
        match &self.details {
            NwbIdentifier::Fnn(fnn) => {
                w.leaf("FNN", fnn);
            }
            NwbIdentifier::Location {
                service_provider,
                location_id,
                mark_as_available,
            } => {
                w.leaf("ServiceProvider", service_provider)
                    .leaf("LocationID", location_id);
                if let Some(mark) = mark_as_available {
                    w.leaf("MarkAsAvailable", mark);
                }
            }
        }
        w.end("ServiceIdentifierDetails");
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["AccountPresaleSQID"])
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
    const REQUEST: &'static str = "GetAvailablePackagesRequest";
    const RESPONSE: &'static str = "GetAvailablePackagesResponse";
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

/// The text with which SelectPackagePlan refuses a second selection ("only once per
/// order"): seed 004 and W `API/Orders/PerformNWBSQ` list it for an SQ on such a presale.
pub const PACKAGE_ALREADY_SELECTED: &str = "Account presale already contain package plan";

impl Operation for SelectPackagePlan {
    const NAME: &'static str = "SelectPackagePlan";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "SelectPackagePlanRequest";
    const RESPONSE: &'static str = "SelectPackagePlanResponse";
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

/// W `API/Orders/CompleteOrder`: the answer is a Status alone; the services it creates
/// (PreActive) are found with `serviceList`.
impl Operation for CompleteOrder {
    const NAME: &'static str = "CompleteOrder";
    const SERVICE: Service = Service::Orders;
    const REQUEST: &'static str = "CompleteOrderRequest";
    const RESPONSE: &'static str = "CompleteOrderResponse";
    type Response = String;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountPresaleID", self.account_presale_id);
    }
    fn read(r: &Element) -> Result<String, XmlError> {
        Ok(r.text_at(&["Status"])?.to_string())
    }
}
