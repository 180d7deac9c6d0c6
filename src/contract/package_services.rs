//! `data.services`: values for the other services of the selected package (seed 000:
//! "for each service contained in a package"). The ordered service keeps its values at the
//! top of `data`, so commands of the earlier shape are unchanged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::{ContactData, FeatureValue, IdentifierData, PropertyValue, SqRequest};

/// The values of one service of the package, named by its service type, or by its
/// service plan when the package holds that type more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_plan_id: Option<i64>,
    /// The SQ this service needs, when its type differs from the ordered one (default:
    /// a simple SQ). A service of the ordered type shares the ordered service's SQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sq: Option<SqRequest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configuration: Vec<PropertyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<IdentifierData>,
}

/// Which service an entry of `data.services` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKey {
    Type(i64),
    Plan(i64),
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Type(id) => write!(f, "service type {id}"),
            ServiceKey::Plan(id) => write!(f, "service plan {id}"),
        }
    }
}

impl ServiceValues {
    pub fn key(&self) -> Option<ServiceKey> {
        match (self.service_type_id, self.service_plan_id) {
            (Some(id), None) => Some(ServiceKey::Type(id)),
            (None, Some(id)) => Some(ServiceKey::Plan(id)),
            _ => None,
        }
    }
}

/// What is wrong with `data.services`, each problem naming its entry.
pub fn problems(services: &[ServiceValues], ordered_type: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let at = format!("data.services[{i}]");
        let Some(key) = service.key() else {
            problems.push(format!(
                "{at} needs exactly one of service_type_id and service_plan_id"
            ));
            continue;
        };
        if seen.contains(&key) {
            problems.push(format!("{at}: {key} is named twice"));
        }
        seen.push(key);
        if key == ServiceKey::Type(ordered_type) {
            problems.push(format!(
                "{at}: the ordered service type {ordered_type} takes its values at the top of data"
            ));
        }
        if let Some(sq) = &service.sq {
            let mut sq_problems = Vec::new();
            sq.problems(&mut sq_problems);
            problems.extend(sq_problems.into_iter().map(|p| format!("{at}: {p}")));
        }
        if service
            .contacts
            .iter()
            .any(|c| c.first_name.trim().is_empty() || c.last_name.trim().is_empty())
        {
            problems.push(format!(
                "{at}.contacts: every contact needs first_name and last_name"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Vec<ServiceValues> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_entry_names_one_service_once() {
        let services = parse(json!([
            {"service_type_id": 100300, "configuration": [{"type_id": 500020, "value": "Unlisted"}]},
            {"service_plan_id": 300300},
            {"service_type_id": 100300},
            {"service_type_id": 100400},
            {},
            {"service_type_id": 1, "service_plan_id": 2},
            {"service_plan_id": 9, "contacts": [{"type_id": 7, "first_name": " ", "last_name": "C"}]}
        ]));
        let problems = problems(&services, 100400).join("\n");
        for expected in [
            "data.services[2]: service type 100300 is named twice",
            "data.services[3]: the ordered service type 100400 takes its values at the top of data",
            "data.services[4] needs exactly one of service_type_id and service_plan_id",
            "data.services[5] needs exactly one of service_type_id and service_plan_id",
            "data.services[6].contacts: every contact needs first_name and last_name",
        ] {
            assert!(problems.contains(expected), "{expected} in:\n{problems}");
        }
        assert!(!problems.contains("data.services[0]"), "{problems}");
        assert!(!problems.contains("data.services[1]"), "{problems}");
    }
}
