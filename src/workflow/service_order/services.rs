//! The services of the selected package and the command's values for each (seed 000: every
//! service in a package is qualified and configured). The ordered service type takes the
//! values at the top of `data`; `data.services` names the others by service type, or by
//! service plan when the package holds a type more than once.

use crate::billing::emersion::wire::PackagePlan;
use crate::contract::command::{
    ContactData, FeatureValue, IdentifierData, PropertyValue, ServiceKey, ServiceOrderData,
    ServiceValues, SqRequest,
};
use crate::workflow::StageError;

/// What the command sets on one service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    pub configuration: &'a [PropertyValue],
    pub features: &'a [FeatureValue],
    pub contacts: &'a [ContactData],
    pub identifier: Option<&'a IdentifierData>,
}

impl<'a> Values<'a> {
    fn top_level(data: &'a ServiceOrderData) -> Self {
        Values {
            configuration: &data.configuration,
            features: &data.features,
            contacts: &data.contacts,
            identifier: data.identifier.as_ref(),
        }
    }

    fn of(entry: &'a ServiceValues) -> Self {
        Values {
            configuration: &entry.configuration,
            features: &entry.features,
            contacts: &entry.contacts,
            identifier: entry.identifier.as_ref(),
        }
    }
}

/// One service of the package with the command's values for it.
#[derive(Debug, Clone, Copy)]
pub struct PackageService<'a> {
    pub service_plan_id: i64,
    pub service_type_id: i64,
    pub values: Values<'a>,
}

/// Every service of `package`, each with its values; an entry of `data.services` that
/// names no service of the package, or names a repeated type by type, is an error.
pub fn services_of<'a>(
    data: &'a ServiceOrderData,
    package: &PackagePlan,
) -> Result<Vec<PackageService<'a>>, StageError> {
    let allowances = &package.service_allowances;
    let mut problems = Vec::new();
    for entry in &data.services {
        let Some(key) = entry.key() else { continue };
        let holds = allowances
            .iter()
            .filter(|a| match key {
                ServiceKey::Type(id) => a.service_type_id == id,
                ServiceKey::Plan(id) => a.service_plan_id == id,
            })
            .count();
        match (key, holds) {
            (_, 0) => problems.push(format!(
                "data.services names {key}, which package {} does not hold",
                package.id
            )),
            (ServiceKey::Type(id), n) if n > 1 => problems.push(format!(
                "service type {id} is {n} services of package {}: name each by service_plan_id",
                package.id
            )),
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(StageError::permanent(problems.join("; ")));
    }
    Ok(allowances
        .iter()
        .map(|a| {
            let by_plan = find(data, ServiceKey::Plan(a.service_plan_id));
            let by_type = find(data, ServiceKey::Type(a.service_type_id));
            let values = match by_plan.or(by_type) {
                Some(entry) => Values::of(entry),
                None if a.service_type_id == data.service_type_id => Values::top_level(data),
                None => Values::default(),
            };
            PackageService {
                service_plan_id: a.service_plan_id,
                service_type_id: a.service_type_id,
                values,
            }
        })
        .collect())
}

fn find(data: &ServiceOrderData, key: ServiceKey) -> Option<&ServiceValues> {
    data.services.iter().find(|s| s.key() == Some(key))
}

/// The service types of `package` other than the ordered one, each with the SQ the
/// command asks for it (a simple SQ when it names none), in the package's order.
pub fn other_types<'a>(
    data: &'a ServiceOrderData,
    package: &PackagePlan,
) -> Vec<(i64, &'a SqRequest)> {
    const SIMPLE: &SqRequest = &SqRequest::Simple;
    let mut types: Vec<(i64, &SqRequest)> = Vec::new();
    for a in &package.service_allowances {
        let service_type = a.service_type_id;
        if service_type == data.service_type_id || types.iter().any(|(t, _)| *t == service_type) {
            continue;
        }
        let sq = [
            ServiceKey::Type(service_type),
            ServiceKey::Plan(a.service_plan_id),
        ]
        .into_iter()
        .filter_map(|key| find(data, key)?.sq.as_ref())
        .next()
        .unwrap_or(SIMPLE);
        types.push((service_type, sq));
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::emersion::wire::ServiceAllowance;
    use serde_json::json;

    fn package(allowances: &[(i64, i64)]) -> PackagePlan {
        PackagePlan {
            id: 200500,
            internal_name: "bundle".into(),
            external_name: "Bundle".into(),
            service_allowances: allowances
                .iter()
                .map(|&(plan, service_type)| ServiceAllowance {
                    service_plan_id: plan,
                    service_type_id: service_type,
                    quantity: 1,
                    mandatory: true,
                })
                .collect(),
        }
    }

    fn data(services: serde_json::Value) -> ServiceOrderData {
        serde_json::from_value(json!({
            "account": {"account_id": 100001},
            "service_type_id": 100400,
            "sq": {"kind": "nwb", "fnn": "0299998888"},
            "package": {"plan_id": 200500},
            "configuration": [{"type_id": 500010, "value": "MDM"}],
            "services": services
        }))
        .unwrap()
    }

    #[test]
    fn the_ordered_type_takes_the_top_values_and_the_others_their_entry() {
        let data = data(json!([{"service_type_id": 100300,
            "sq": {"kind": "general_phone", "phone_number": "0299998888"},
            "configuration": [{"type_id": 500020, "value": "Unlisted"}]}]));
        let bundle = package(&[(300400, 100400), (300300, 100300), (300200, 100200)]);
        let services = services_of(&data, &bundle).unwrap();
        let config: Vec<(i64, Vec<i64>)> = services
            .iter()
            .map(|s| {
                let ids = s.values.configuration.iter().map(|p| p.type_id).collect();
                (s.service_plan_id, ids)
            })
            .collect();
        assert_eq!(
            config,
            [
                (300400, vec![500010]),
                (300300, vec![500020]),
                (300200, vec![])
            ]
        );
        let others: Vec<(i64, bool)> = other_types(&data, &bundle)
            .into_iter()
            .map(|(t, sq)| (t, matches!(sq, SqRequest::GeneralPhone { .. })))
            .collect();
        assert_eq!(others, [(100300, true), (100200, false)]);
    }

    #[test]
    fn a_repeated_type_is_named_by_plan_and_unknown_names_are_refused() {
        let twice = package(&[(300400, 100400), (300300, 100300), (300301, 100300)]);
        let err = services_of(&data(json!([{"service_type_id": 100300}])), &twice).unwrap_err();
        assert!(
            err.message.contains("name each by service_plan_id"),
            "{}",
            err.message
        );
        let by_plan = data(json!([{"service_plan_id": 300301,
            "configuration": [{"type_id": 1, "value": "x"}]}]));
        let services = services_of(&by_plan, &twice).unwrap();
        assert_eq!(services[1].values.configuration.len(), 0);
        assert_eq!(services[2].values.configuration.len(), 1);
        let err = services_of(&data(json!([{"service_plan_id": 1}])), &twice).unwrap_err();
        assert!(err
            .message
            .contains("service plan 1, which package 200500 does not hold"));
    }
}
