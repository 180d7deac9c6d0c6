//! `get_requirements`: for every service of the selected package, its configuration,
//! feature, contact and identifier requirements (and realms), with the command's values
//! for that service checked against them before any Set call. The Set stages read the
//! requirement they set again (seed 000: Emersion changes them without notice) and check
//! with the same functions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::package::PackageChosen;
use super::services::{other_types, services_of, PackageService, Values};
use super::sq::transfer;
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{
    self, ContactRequirement, FeatureRequirement, IdentifierRequirement, PropertyRequirement,
    Realm, TransferType, CANNOT_HAVE_IDENT, MUST_HAVE_IDENT,
};
use crate::workflow::{encode, StageError};

/// The requirements of one service of the package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRequirements {
    pub service_plan_id: i64,
    /// Absent in stage messages written before whole packages were configured.
    #[serde(default)]
    pub service_type_id: i64,
    pub properties: Vec<PropertyRequirement>,
    pub features: Vec<FeatureRequirement>,
    pub contacts: Vec<ContactRequirement>,
    pub identifiers: Vec<IdentifierRequirement>,
    pub realms: Vec<Realm>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Requirements {
    pub services: Vec<ServiceRequirements>,
}

impl Requirements {
    pub fn of_plan(&self, service_plan_id: i64) -> Option<&ServiceRequirements> {
        self.services
            .iter()
            .find(|s| s.service_plan_id == service_plan_id)
    }
}

pub(super) async fn get_requirements(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let services = services_of(cx.data, &chosen.package)?;
    let mut reqs = Requirements {
        services: Vec::new(),
    };
    for service in &services {
        if reqs.of_plan(service.service_plan_id).is_none() {
            let fetched = service_requirements(cx, service, &chosen).await?;
            reqs.services.push(fetched);
        }
    }
    let problems = check(&services, &reqs);
    if !problems.is_empty() {
        return Err(StageError::permanent(format!(
            "the order does not meet the service requirements: {}",
            problems.join("; ")
        )));
    }
    encode(reqs)
}

/// The TransferType of the SQ that qualifies `service`.
pub(super) fn transfer_of(
    cx: &Ctx<'_>,
    service: &PackageService<'_>,
    chosen: &PackageChosen,
) -> TransferType {
    let sq = if service.service_type_id == cx.data.service_type_id {
        &cx.data.sq
    } else {
        other_types(cx.data, &chosen.package)
            .into_iter()
            .find(|(t, _)| *t == service.service_type_id)
            .map(|(_, sq)| sq)
            .unwrap_or(&cx.data.sq)
    };
    transfer(sq.transfer_type())
}

async fn service_requirements(
    cx: &Ctx<'_>,
    service: &PackageService<'_>,
    chosen: &PackageChosen,
) -> Result<ServiceRequirements, StageError> {
    let client = &cx.client;
    let plan = service.service_plan_id;
    Ok(ServiceRequirements {
        service_plan_id: plan,
        service_type_id: service.service_type_id,
        properties: client
            .call(&wire::GetServiceConfigurationRequirements {
                service_plan_id: plan,
                transfer_type: transfer_of(cx, service, chosen),
            })
            .await?,
        features: client
            .call(&wire::GetServiceFeatureConfigurationRequirements {
                service_plan_id: plan,
            })
            .await?,
        contacts: client
            .call(&wire::GetServiceContactRequirements {
                service_plan_id: plan,
            })
            .await?,
        identifiers: client
            .call(&wire::GetServiceIdentifierRequirements {
                service_plan_id: plan,
            })
            .await?,
        realms: client
            .call(&wire::GetServiceIdentifierRealm {
                service_plan_id: plan,
            })
            .await?,
    })
}

/// Every way the command's values miss the services' requirements, before any Set call.
pub fn check(services: &[PackageService<'_>], reqs: &Requirements) -> Vec<String> {
    let mut problems = Vec::new();
    if services.is_empty() {
        problems.push("the package has no service".to_string());
    }
    for service in services {
        let Some(req) = reqs.of_plan(service.service_plan_id) else {
            problems.push(format!(
                "service plan {}: no requirements were read",
                service.service_plan_id
            ));
            continue;
        };
        let (plan, values) = (service.service_plan_id, &service.values);
        check_configuration(plan, values, &req.properties, &mut problems);
        check_features(plan, values, &req.features, &mut problems);
        check_contacts(plan, values, &req.contacts, &mut problems);
        check_identifier(plan, values, &req.identifiers, &req.realms, &mut problems);
    }
    problems
}

pub(super) fn check_configuration(
    plan: i64,
    values: &Values<'_>,
    properties: &[PropertyRequirement],
    problems: &mut Vec<String>,
) {
    for req in properties {
        let given = values
            .configuration
            .iter()
            .find(|p| p.type_id == req.type_id);
        match given {
            None if req.mandatory => problems.push(format!(
                "service plan {plan}: missing mandatory configuration {} ({})",
                req.type_id, req.name
            )),
            Some(p)
                if req.value_type.eq_ignore_ascii_case("Integer")
                    && p.value.trim().parse::<i64>().is_err() =>
            {
                problems.push(format!(
                    "service plan {plan}: configuration {} ({}) must be an integer, got {:?}",
                    req.type_id, req.name, p.value
                ))
            }
            Some(p) if !req.value_list.is_empty() && !req.value_list.contains(&p.value) => problems
                .push(format!(
                    "service plan {plan}: configuration {} ({}) must be one of {}, got {:?}",
                    req.type_id,
                    req.name,
                    req.value_list.join("/"),
                    p.value
                )),
            _ => {}
        }
    }
    for p in values.configuration {
        if !properties.iter().any(|r| r.type_id == p.type_id) {
            problems.push(format!(
                "service plan {plan}: unknown configuration property {}",
                p.type_id
            ));
        }
    }
}

/// Every feature the command sets must be one of the plan's, with a FeatureIdentifier
/// exactly where its FeatureIdentifierType wants one.
pub(super) fn check_features(
    plan: i64,
    values: &Values<'_>,
    features: &[FeatureRequirement],
    problems: &mut Vec<String>,
) {
    for f in values.features.iter().filter_map(|f| f.setting()) {
        let Some(req) = features.iter().find(|r| r.type_id == f.type_id) else {
            problems.push(format!(
                "service plan {plan}: unknown feature type {}",
                f.type_id
            ));
            continue;
        };
        match (req.identifier_type.as_str(), &f.identifier) {
            (MUST_HAVE_IDENT, None) => problems.push(format!(
                "service plan {plan}: feature {} ({}) needs an identifier",
                req.type_id, req.name
            )),
            (CANNOT_HAVE_IDENT, Some(_)) => problems.push(format!(
                "service plan {plan}: feature {} ({}) takes no identifier",
                req.type_id, req.name
            )),
            _ => {}
        }
    }
}

pub(super) fn check_contacts(
    plan: i64,
    values: &Values<'_>,
    contacts: &[ContactRequirement],
    problems: &mut Vec<String>,
) {
    for req in contacts {
        let count = values
            .contacts
            .iter()
            .filter(|c| c.type_id == req.type_id)
            .count() as i64;
        if count < req.minimum || count > req.maximum {
            problems.push(format!(
                "service plan {plan}: {count} contact(s) of type {} ({}), needs between {} and {}",
                req.type_id, req.name, req.minimum, req.maximum
            ));
        }
    }
    for c in values.contacts {
        if !contacts.iter().any(|r| r.type_id == c.type_id) {
            problems.push(format!(
                "service plan {plan}: unknown contact type {}",
                c.type_id
            ));
        }
    }
}

/// SetServiceIdentifier sets the authentication-based identifier: needed when the plan
/// has one, in one of the plan's realms when a realm is required.
pub(super) fn check_identifier(
    plan: i64,
    values: &Values<'_>,
    identifiers: &[IdentifierRequirement],
    realms: &[Realm],
    problems: &mut Vec<String>,
) {
    let auth: Vec<&IdentifierRequirement> = identifiers
        .iter()
        .filter(|i| i.authentication_based)
        .collect();
    let realm_required = auth.iter().any(|i| i.realm_required);
    let realms: Vec<&str> = realms.iter().map(|r| r.name.as_str()).collect();
    match values.identifier {
        None if !auth.is_empty() => problems.push(format!(
            "service plan {plan}: missing mandatory identifier ({})",
            auth.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) if auth.is_empty() => {
            problems.push(format!("service plan {plan}: takes no service identifier"))
        }
        Some(id) if realm_required && !realms.contains(&id.realm.as_str()) => {
            problems.push(format!(
                "service plan {plan}: realm {:?} is not one of {}",
                id.realm,
                realms.join(", ")
            ))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::emersion::wire::{PackagePlan, ServiceAllowance};
    use crate::contract::command::ServiceOrderData;
    use crate::workflow::service_order::tests::order;
    use crate::workflow::service_order::{next_set_stage, ServiceOrderStage::*};

    fn basic() -> PackagePlan {
        PackagePlan {
            id: 200100,
            internal_name: "basic".into(),
            external_name: "Basic".into(),
            service_allowances: vec![ServiceAllowance {
                service_plan_id: 300100,
                service_type_id: 100100,
                quantity: 1,
                mandatory: true,
            }],
        }
    }

    fn services(data: &ServiceOrderData) -> Vec<PackageService<'_>> {
        services_of(data, &basic()).unwrap()
    }

    fn reqs() -> Requirements {
        Requirements {
            services: vec![ServiceRequirements {
                service_plan_id: 300100,
                service_type_id: 100100,
                properties: vec![
                    PropertyRequirement {
                        type_id: 500001,
                        name: "Site Name".into(),
                        value_type: "String".into(),
                        mandatory: true,
                        value_list: vec![],
                    },
                    PropertyRequirement {
                        type_id: 500002,
                        name: "Support Tier".into(),
                        value_type: "List".into(),
                        mandatory: false,
                        value_list: vec!["Gold".into(), "Silver".into()],
                    },
                ],
                features: vec![FeatureRequirement {
                    type_id: 600001,
                    name: "After Hours".into(),
                    product_id: None,
                    identifier_type: MUST_HAVE_IDENT.into(),
                    default_option_id: Some(1),
                    behaviour: "Optional".into(),
                }],
                contacts: vec![ContactRequirement {
                    type_id: 700001,
                    name: "Technical".into(),
                    minimum: 1,
                    maximum: 2,
                }],
                identifiers: vec![],
                realms: vec![],
            }],
        }
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let data = order(serde_json::json!({
            "configuration": [{"type_id": 500002, "value": "Bronze"}, {"type_id": 599999, "value": "x"}],
            "features": [{"type_id": 600001}, {"type_id": 600099}],
            "identifier": {"username": "u", "realm": "r", "password": "p"}
        }));
        let problems = check(&services(&data), &reqs());
        let all = problems.join("\n");
        for expected in [
            "missing mandatory configuration 500001",
            "must be one of Gold/Silver",
            "unknown configuration property 599999",
            "feature 600001 (After Hours) needs an identifier",
            "unknown feature type 600099",
            "0 contact(s) of type 700001",
            "takes no service identifier",
        ] {
            assert!(all.contains(expected), "{expected} not in\n{all}");
        }
        assert_eq!(problems.len(), 7);
    }

    #[test]
    fn a_complete_order_has_no_problems_and_skips_nothing_it_needs() {
        let data = order(serde_json::json!({
            "configuration": [{"type_id": 500001, "value": "HQ"}],
            "features": [{"feature_id": 600001, "value": "ABC-1"}],
            "contacts": [{"type_id": 700001, "first_name": "Jane", "last_name": "Citizen"}]
        }));
        let reqs = reqs();
        let services = services(&data);
        assert!(check(&services, &reqs).is_empty());
        assert_eq!(
            next_set_stage(GetRequirements, &services, &reqs),
            SetConfiguration
        );
        assert_eq!(next_set_stage(SetContacts, &services, &reqs), GetTerms);
    }
}
