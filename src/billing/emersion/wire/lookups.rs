//! The Services lookups of an account's services, read-only: what settles whether
//! CompleteOrder took effect (it answers only a Status) and which services it created.

use serde::{Deserialize, Serialize};

use super::{collect, text_of, Operation, Service};
use crate::xml::{Element, XmlError, XmlWriter};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceListItem {
    pub service_id: i64,
    pub service_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type_id: Option<i64>,
    pub service_status: String,
}

#[derive(Debug, Clone)]
pub struct ServiceList {
    pub account_id: i64,
}

/// W `API/Services/serviceList`.
impl Operation for ServiceList {
    const NAME: &'static str = "serviceList";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "serviceList";
    const RESPONSE: &'static str = "serviceListResponse";
    type Response = Vec<ServiceListItem>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("account_id", self.account_id);
    }
    fn read(r: &Element) -> Result<Vec<ServiceListItem>, XmlError> {
        collect(r, "serviceListItem", |s| {
            Ok(ServiceListItem {
                service_id: s.parse_at(&["service_id"])?,
                service_identifier: text_of(s, "service_identifier"),
                service_type_id: s.parse_opt(&["service_type_id"])?,
                service_status: text_of(s, "service_status"),
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceLookupItem {
    pub account_id: i64,
    pub service_identifier: String,
    /// E.g. "Preactive".
    pub subscription_status_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ServiceLookup {
    pub service_identifier: String,
    pub service_type_id: Option<i64>,
}

/// W `API/Services/serviceLookup`.
impl Operation for ServiceLookup {
    const NAME: &'static str = "serviceLookup";
    const SERVICE: Service = Service::Services;
    const REQUEST: &'static str = "serviceLookup";
    const RESPONSE: &'static str = "serviceLookupResponse";
    type Response = Vec<ServiceLookupItem>;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("service_identifier", &self.service_identifier);
        if let Some(id) = self.service_type_id {
            w.leaf("service_type_id", id);
        }
    }
    fn read(r: &Element) -> Result<Vec<ServiceLookupItem>, XmlError> {
        collect(r, "serviceLookupItem", |s| {
            Ok(ServiceLookupItem {
                account_id: s.parse_at(&["account_id"])?,
                service_identifier: text_of(s, "service_identifier"),
                subscription_status_name: text_of(s, "subscription_status_name"),
                service_id: s.parse_opt(&["service_id"])?,
            })
        })
    }
}
