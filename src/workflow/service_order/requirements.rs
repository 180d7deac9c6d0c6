//! `get_requirements`: per service of the package for the ordered type, its
//! configuration, feature, contact and identifier requirements (and realms), with the
//! command's values checked against them before any Set call.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::package::PackageChosen;
use super::sq::transfer;
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{
    self, ContactRequirement, FeatureRequirement, IdentifierRequirement, PropertyRequirement,
    Realm, CANNOT_HAVE_IDENT, MUST_HAVE_IDENT,
};
use crate::contract::command::ServiceOrderData;
use crate::workflow::{encode, StageError};

/// The requirements of one service of the package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRequirements {
    pub service_plan_id: i64,
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

pub(super) async fn get_requirements(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let mut services = Vec::new();
    for allowance in chosen
        .package
        .service_allowances
        .iter()
        .filter(|a| a.service_type_id == cx.data.service_type_id)
    {
        services.push(service_requirements(cx, allowance.service_plan_id).await?);
    }
    let reqs = Requirements { services };
    let problems = check(cx.data, &reqs);
    if !problems.is_empty() {
        return Err(StageError::permanent(format!(
            "the order does not meet the service requirements: {}",
            problems.join("; ")
        )));
    }
    encode(reqs)
}

async fn service_requirements(cx: &Ctx<'_>, plan: i64) -> Result<ServiceRequirements, StageError> {
    let client = &cx.client;
    Ok(ServiceRequirements {
        service_plan_id: plan,
        properties: client
            .call(&wire::GetServiceConfigurationRequirements {
                service_plan_id: plan,
                transfer_type: transfer(cx.data.sq.transfer_type()),
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
pub fn check(data: &ServiceOrderData, reqs: &Requirements) -> Vec<String> {
    let mut problems = Vec::new();
    if reqs.services.is_empty() {
        problems.push(format!(
            "the package has no service of service type {}",
            data.service_type_id
        ));
    }
    for service in &reqs.services {
        check_configuration(data, service, &mut problems);
        check_features(data, service, &mut problems);
        check_contacts(data, service, &mut problems);
        check_identifier(data, service, &mut problems);
    }
    problems
}

fn check_configuration(
    data: &ServiceOrderData,
    service: &ServiceRequirements,
    problems: &mut Vec<String>,
) {
    let plan = service.service_plan_id;
    for req in &service.properties {
        let given = data.configuration.iter().find(|p| p.type_id == req.type_id);
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
    for p in &data.configuration {
        if !service.properties.iter().any(|r| r.type_id == p.type_id) {
            problems.push(format!(
                "service plan {plan}: unknown configuration property {}",
                p.type_id
            ));
        }
    }
}

/// Every feature the command sets must be one of the plan's, with a FeatureIdentifier
/// exactly where its FeatureIdentifierType wants one.
fn check_features(
    data: &ServiceOrderData,
    service: &ServiceRequirements,
    problems: &mut Vec<String>,
) {
    let plan = service.service_plan_id;
    for f in data.features.iter().filter_map(|f| f.setting()) {
        let Some(req) = service.features.iter().find(|r| r.type_id == f.type_id) else {
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

fn check_contacts(
    data: &ServiceOrderData,
    service: &ServiceRequirements,
    problems: &mut Vec<String>,
) {
    let plan = service.service_plan_id;
    for req in &service.contacts {
        let count = data
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
    for c in &data.contacts {
        if !service.contacts.iter().any(|r| r.type_id == c.type_id) {
            problems.push(format!(
                "service plan {plan}: unknown contact type {}",
                c.type_id
            ));
        }
    }
}

/// SetServiceIdentifier sets the authentication-based identifier: needed when the plan
/// has one, in one of the plan's realms when a realm is required.
fn check_identifier(
    data: &ServiceOrderData,
    service: &ServiceRequirements,
    problems: &mut Vec<String>,
) {
    let plan = service.service_plan_id;
    let auth: Vec<&IdentifierRequirement> = service
        .identifiers
        .iter()
        .filter(|i| i.authentication_based)
        .collect();
    let realm_required = auth.iter().any(|i| i.realm_required);
    let realms: Vec<&str> = service.realms.iter().map(|r| r.name.as_str()).collect();
    match &data.identifier {
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
    use crate::workflow::service_order::tests::order;
    use crate::workflow::service_order::{next_set_stage, ServiceOrderStage::*};

    fn reqs() -> Requirements {
        Requirements {
            services: vec![ServiceRequirements {
                service_plan_id: 300100,
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
        let problems = check(&data, &reqs());
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
        assert!(check(&data, &reqs).is_empty());
        assert_eq!(
            next_set_stage(GetRequirements, &data, &reqs),
            SetConfiguration
        );
        assert_eq!(next_set_stage(SetContacts, &data, &reqs), GetTerms);
    }
}
