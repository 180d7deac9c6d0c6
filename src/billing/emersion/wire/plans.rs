//! The Plans service (Plans.wsdl): terms and conditions.

use serde::{Deserialize, Serialize};

use super::{collect, text_of, Operation, Service};
use crate::xml::{Element, XmlError, XmlWriter};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub id: i64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct GetTermsAndConditions {
    pub package_plan_id: i64,
}

/// W `API/Plans/GetTermsAndConditions`: a bare request element, and the answer spelled
/// `GetTermsandConditionsResponse` (lower-case "and").
impl Operation for GetTermsAndConditions {
    const NAME: &'static str = "GetTermsAndConditions";
    const SERVICE: Service = Service::Plans;
    const REQUEST: &'static str = "GetTermsAndConditions";
    const RESPONSE: &'static str = "GetTermsandConditionsResponse";
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
