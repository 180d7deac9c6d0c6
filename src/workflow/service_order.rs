//! `service_order.submit`: Emersion onboarding in seed 000's order, one stage per call
//! (the Set calls of a stage loop over the package's services for the ordered type).

use serde::{Deserialize, Serialize};

use super::{output_of, Effect, Outputs, Probe, StageDone, StageError};
use crate::billing::emersion::wire::{
    self, Address, ContactRequirement, CreatedService, FeatureRequirement, IdentifierRequirement,
    PackagePlan, PropertyRequirement, Terms,
};
use crate::billing::emersion::EmersionClient;
use crate::command::{ServiceOrderData, SqRequest};
use crate::secret::Secret;

pub const WORKFLOW: &str = "service_order";

pub const STAGES: &[(&str, Effect)] = &[
    ("resolve_account", Effect::Repeatable),
    ("start_order", Effect::NonIdempotent),
    // A repeated SQ replaces the earlier one under a new id, while the next stages may
    // already carry the old id: the SQ calls are made once, and reconciled from the presale.
    ("simple_sq", Effect::NonIdempotent),
    ("phone_sq", Effect::NonIdempotent),
    ("find_address", Effect::Repeatable),
    ("nwb_sq", Effect::NonIdempotent),
    ("get_packages", Effect::Repeatable),
    ("select_package", Effect::NonIdempotent),
    ("get_requirements", Effect::Repeatable),
    // Set calls replace what was set before: repeatable.
    ("set_configuration", Effect::Repeatable),
    ("set_features", Effect::Repeatable),
    ("set_contacts", Effect::Repeatable),
    ("set_identifier", Effect::Repeatable),
    ("get_terms", Effect::Repeatable),
    ("complete_order", Effect::NonIdempotent),
    ("add_note", Effect::NonIdempotent),
    ("create_payment", Effect::NonIdempotent),
];

pub fn first_stage(data: &ServiceOrderData) -> &'static str {
    if data.account.account_id.is_none() {
        "resolve_account"
    } else {
        after_account(data)
    }
}

fn after_account(data: &ServiceOrderData) -> &'static str {
    if data.account_presale_id.is_some() {
        sq_stage(data)
    } else {
        "start_order"
    }
}

fn sq_stage(data: &ServiceOrderData) -> &'static str {
    match data.sq {
        SqRequest::Simple => "simple_sq",
        SqRequest::GeneralPhone { .. } => "phone_sq",
        SqRequest::Nwb { .. } => "find_address",
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountResolved {
    pub account_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderStarted {
    pub account_presale_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Qualified {
    pub account_presale_sq_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AddressFound {
    pub address: Address,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PackageChosen {
    pub package: PackagePlan,
}

/// The requirements of one service of the package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRequirements {
    pub service_plan_id: i64,
    pub properties: Vec<PropertyRequirement>,
    pub features: Vec<FeatureRequirement>,
    pub contacts: Vec<ContactRequirement>,
    pub identifiers: Vec<IdentifierRequirement>,
    pub realms: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Requirements {
    pub services: Vec<ServiceRequirements>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TermsFound {
    pub terms: Vec<Terms>,
    pub accepted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub account_presale_id: i64,
    pub status: String,
    pub services: Vec<CreatedService>,
}

fn done<T: Serialize>(output: T, next: Option<&'static str>) -> Result<StageDone, StageError> {
    let output = serde_json::to_value(output)
        .map_err(|e| StageError::permanent(format!("cannot encode stage output: {e}")))?;
    Ok(StageDone { output, next })
}

fn account_id(data: &ServiceOrderData, outputs: &Outputs) -> Result<i64, StageError> {
    match data.account.account_id {
        Some(id) => Ok(id),
        None => output_of::<AccountResolved>(outputs, "resolve_account").map(|a| a.account_id),
    }
}

fn presale_id(data: &ServiceOrderData, outputs: &Outputs) -> Result<i64, StageError> {
    match data.account_presale_id {
        Some(id) => Ok(id),
        None => output_of::<OrderStarted>(outputs, "start_order").map(|o| o.account_presale_id),
    }
}

fn sq_id(outputs: &Outputs) -> Result<i64, StageError> {
    ["simple_sq", "phone_sq", "nwb_sq"]
        .iter()
        .find(|s| outputs.contains_key(**s))
        .map(|s| output_of::<Qualified>(outputs, s).map(|q| q.account_presale_sq_id))
        .unwrap_or_else(|| Err(StageError::permanent("stage message lacks the SQ output")))
}

/// The next Set stage after `stage` that has something to set, else `get_terms`.
fn next_set_stage(stage: &str, data: &ServiceOrderData, reqs: &Requirements) -> &'static str {
    let wanted = [
        (
            "set_configuration",
            !data.configuration.is_empty()
                || reqs.services.iter().any(|s| !s.properties.is_empty()),
        ),
        (
            "set_features",
            !data.features.is_empty() || reqs.services.iter().any(|s| !s.features.is_empty()),
        ),
        (
            "set_contacts",
            !data.contacts.is_empty() || reqs.services.iter().any(|s| !s.contacts.is_empty()),
        ),
        ("set_identifier", data.identifier.is_some()),
    ];
    let start = wanted
        .iter()
        .position(|(s, _)| *s == stage)
        .map(|i| i + 1)
        .unwrap_or(0);
    wanted[start..]
        .iter()
        .find(|(_, needed)| *needed)
        .map(|(s, _)| *s)
        .unwrap_or("get_terms")
}

fn after_complete(data: &ServiceOrderData) -> Option<&'static str> {
    if data.note.is_some() {
        Some("add_note")
    } else if data.payment.is_some() {
        Some("create_payment")
    } else {
        None
    }
}

pub async fn run(
    client: &EmersionClient,
    data: &ServiceOrderData,
    stage: &str,
    outputs: &Outputs,
) -> Result<StageDone, StageError> {
    match stage {
        "resolve_account" => {
            let (Some(username), Some(password)) = (&data.account.username, &data.account.password)
            else {
                return Err(StageError::permanent(
                    "resolve_account needs username and password",
                ));
            };
            let account_id = client
                .call(&wire::GetAccountFromUsernameAndPassword {
                    username: username.clone(),
                    password: Secret::new(password.clone()),
                })
                .await?;
            done(AccountResolved { account_id }, Some(after_account(data)))
        }
        "start_order" => {
            let account_presale_id = client
                .call(&wire::StartOrder {
                    account_id: account_id(data, outputs)?,
                    purchase_order: data.purchase_order.clone(),
                    promo_code: data.promo_code.clone(),
                })
                .await?;
            done(OrderStarted { account_presale_id }, Some(sq_stage(data)))
        }
        "simple_sq" => {
            let sq = client
                .call(&wire::PerformSimpleSQ {
                    account_presale_id: presale_id(data, outputs)?,
                    service_type_id: data.service_type_id,
                })
                .await?;
            done(
                Qualified {
                    account_presale_sq_id: sq,
                    result: None,
                },
                Some("get_packages"),
            )
        }
        "phone_sq" => {
            let SqRequest::GeneralPhone { phone_number } = &data.sq else {
                return Err(StageError::permanent(
                    "phone_sq without a general phone SQ request",
                ));
            };
            let sq = client
                .call(&wire::PerformGeneralPhoneSQ {
                    account_presale_id: presale_id(data, outputs)?,
                    service_type_id: data.service_type_id,
                    phone_number: phone_number.clone(),
                })
                .await?;
            done(
                Qualified {
                    account_presale_sq_id: sq,
                    result: None,
                },
                Some("get_packages"),
            )
        }
        "find_address" => {
            let SqRequest::Nwb { address } = &data.sq else {
                return Err(StageError::permanent(
                    "find_address without an NWB SQ request",
                ));
            };
            let mut found = client
                .call(&wire::FindNWBSQAddress {
                    service_type_id: data.service_type_id,
                    address: Address {
                        street_number: address.street_number.clone(),
                        street_name: address.street_name.clone(),
                        street_type: address.street_type.clone(),
                        suburb: address.suburb.clone(),
                        state: address.state.clone(),
                        postcode: address.postcode.clone(),
                        location_id: None,
                    },
                })
                .await?;
            match found.len() {
                1 => done(
                    AddressFound {
                        address: found.remove(0),
                    },
                    Some("nwb_sq"),
                ),
                0 => Err(StageError::permanent("FindNWBSQAddress found no such address")),
                n => Err(StageError::permanent(format!(
                    "FindNWBSQAddress found {n} addresses; give the street name and number to pick one"
                ))),
            }
        }
        "nwb_sq" => {
            let found: AddressFound = output_of(outputs, "find_address")?;
            let location_id = found
                .address
                .location_id
                .ok_or_else(|| StageError::permanent("the address found has no LocationID"))?;
            let sq = client
                .call(&wire::PerformNWBSQ {
                    account_presale_id: presale_id(data, outputs)?,
                    service_type_id: data.service_type_id,
                    location_id: location_id.clone(),
                })
                .await?;
            if !sq.result.eq_ignore_ascii_case("Qualified") {
                return Err(StageError::permanent(format!(
                    "location {location_id} did not qualify: ServiceQualificationResult {}",
                    sq.result
                )));
            }
            done(
                Qualified {
                    account_presale_sq_id: sq.account_presale_sq_id,
                    result: Some(sq.result),
                },
                Some("get_packages"),
            )
        }
        "get_packages" => {
            let packages = client
                .call(&wire::GetAvailablePackages {
                    account_presale_id: presale_id(data, outputs)?,
                })
                .await?;
            let chosen = packages.iter().find(|p| match &data.package.plan_id {
                Some(id) => p.id == *id,
                None => data
                    .package
                    .external_name
                    .as_deref()
                    .is_some_and(|name| p.external_name.eq_ignore_ascii_case(name.trim())),
            });
            let Some(package) = chosen else {
                let available: Vec<String> = packages
                    .iter()
                    .map(|p| format!("{} ({})", p.external_name, p.id))
                    .collect();
                return Err(StageError::permanent(format!(
                    "the requested package is not available for this order; available: {}",
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                )));
            };
            done(
                PackageChosen {
                    package: package.clone(),
                },
                Some("select_package"),
            )
        }
        "select_package" => {
            let chosen: PackageChosen = output_of(outputs, "get_packages")?;
            client
                .call(&wire::SelectPackagePlan {
                    account_presale_id: presale_id(data, outputs)?,
                    package_plan_id: chosen.package.id,
                })
                .await?;
            done(chosen, Some("get_requirements"))
        }
        "get_requirements" => {
            let chosen: PackageChosen = output_of(outputs, "get_packages")?;
            let mut services = Vec::new();
            for allowance in chosen
                .package
                .service_allowances
                .iter()
                .filter(|a| a.service_type_id == data.service_type_id)
            {
                let plan = allowance.service_plan_id;
                services.push(ServiceRequirements {
                    service_plan_id: plan,
                    properties: client
                        .call(&wire::GetServiceConfigurationRequirements {
                            service_plan_id: plan,
                        })
                        .await?,
                    features: client
                        .call(&wire::GetServiceFeatureRequirements {
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
                        .call(&wire::GetServiceIdentifierRealms {
                            service_plan_id: plan,
                        })
                        .await?,
                });
            }
            let reqs = Requirements { services };
            let problems = check(data, &reqs);
            if !problems.is_empty() {
                return Err(StageError::permanent(format!(
                    "the order does not meet the service requirements: {}",
                    problems.join("; ")
                )));
            }
            let next = next_set_stage("get_requirements", data, &reqs);
            done(reqs, Some(next))
        }
        "set_configuration" | "set_features" | "set_contacts" | "set_identifier" => {
            let reqs: Requirements = output_of(outputs, "get_requirements")?;
            let sq = sq_id(outputs)?;
            // One SQ, so one call: the Set calls configure the qualified service.
            let status = match stage {
                "set_configuration" => {
                    client
                        .call(&wire::SetServiceConfiguration {
                            presale_sq_id: sq,
                            values: data
                                .configuration
                                .iter()
                                .map(|p| (p.type_id, p.value.clone()))
                                .collect(),
                        })
                        .await?
                }
                "set_features" => {
                    client
                        .call(&wire::SetServiceFeatures {
                            account_presale_sq_id: sq,
                            features: data
                                .features
                                .iter()
                                .map(|f| (f.feature_id, f.value.clone()))
                                .collect(),
                        })
                        .await?
                }
                "set_contacts" => {
                    client
                        .call(&wire::SetServiceContacts {
                            account_presale_sq_id: sq,
                            contacts: data
                                .contacts
                                .iter()
                                .map(|c| wire::Contact {
                                    type_id: c.type_id,
                                    title: c.title.clone(),
                                    first_name: c.first_name.clone(),
                                    last_name: c.last_name.clone(),
                                    date_of_birth: c.date_of_birth.clone(),
                                    email: c.email.clone(),
                                    phone: c.phone.clone(),
                                })
                                .collect(),
                        })
                        .await?
                }
                _ => {
                    let Some(id) = &data.identifier else {
                        return Err(StageError::permanent(
                            "set_identifier without data.identifier",
                        ));
                    };
                    client
                        .call(&wire::SetServiceIdentifier {
                            account_presale_sq_id: sq,
                            username: id.username.clone(),
                            realm: id.realm.clone(),
                            password: Secret::new(id.password.clone()),
                        })
                        .await?
                }
            };
            done(
                serde_json::json!({ "status": status }),
                Some(next_set_stage(stage, data, &reqs)),
            )
        }
        "get_terms" => {
            let chosen: PackageChosen = output_of(outputs, "get_packages")?;
            let terms = client
                .call(&wire::GetTermsAndConditions {
                    package_plan_id: chosen.package.id,
                })
                .await?;
            if !terms.is_empty() && !data.accept_terms {
                let ids: Vec<String> = terms.iter().map(|t| t.id.to_string()).collect();
                return Err(StageError::permanent(format!(
                    "the customer has not accepted the terms and conditions ({}) of package {}",
                    ids.join(", "),
                    chosen.package.id
                )));
            }
            done(
                TermsFound {
                    accepted: data.accept_terms,
                    terms,
                },
                Some("complete_order"),
            )
        }
        "complete_order" => {
            let account_presale_id = presale_id(data, outputs)?;
            let completed = client
                .call(&wire::CompleteOrder { account_presale_id })
                .await?;
            done(
                OrderCompleted {
                    account_presale_id,
                    status: completed.status,
                    services: completed.services,
                },
                after_complete(data),
            )
        }
        "add_note" => {
            let Some(note) = &data.note else {
                return Err(StageError::permanent("add_note without data.note"));
            };
            let note_id = client
                .call(&wire::AddNote {
                    object_type_id: 1,
                    object_type_value: account_id(data, outputs)?,
                    subject: note.subject.clone(),
                    detail: note.detail.clone(),
                })
                .await?;
            let next = data.payment.as_ref().map(|_| "create_payment");
            done(serde_json::json!({ "note_id": note_id }), next)
        }
        "create_payment" => {
            let Some(payment) = &data.payment else {
                return Err(StageError::permanent("create_payment without data.payment"));
            };
            let payment_id = client
                .call(&wire::CreatePayment {
                    account_id: account_id(data, outputs)?,
                    transaction_category: payment.transaction_category.clone(),
                    reference: payment.reference.clone(),
                    amount: payment.amount,
                    transaction_date: payment.transaction_date,
                })
                .await?;
            done(serde_json::json!({ "payment_id": payment_id }), None)
        }
        other => Err(StageError::permanent(format!(
            "{WORKFLOW} has no stage {other:?}"
        ))),
    }
}

/// The non-idempotent stages [`probe`] can settle.
pub const PROBED: &[&str] = &[
    "simple_sq",
    "phone_sq",
    "nwb_sq",
    "select_package",
    "complete_order",
];

/// Reconciles a non-idempotent stage from the presale: GetAccountPresale shows the
/// selected package and whether the order was completed. A presale that may or may not
/// have been started, and notes and payments, have nothing to look up by.
pub async fn probe(
    client: &EmersionClient,
    data: &ServiceOrderData,
    stage: &str,
    outputs: &Outputs,
) -> Result<Probe, StageError> {
    if !PROBED.contains(&stage) {
        return Ok(Probe::Unavailable);
    }
    let account_presale_id = presale_id(data, outputs)?;
    let presale = client
        .call(&wire::GetAccountPresale { account_presale_id })
        .await?;
    match stage {
        "simple_sq" | "phone_sq" | "nwb_sq" => {
            let Some(sq) = presale
                .sqs
                .iter()
                .find(|sq| sq.service_type_id == data.service_type_id)
            else {
                return Ok(Probe::NotApplied);
            };
            if stage == "nwb_sq" && sq.result.as_deref() != Some("Qualified") {
                return Err(StageError::permanent(format!(
                    "SQ {} of presale {account_presale_id} did not qualify: {}",
                    sq.account_presale_sq_id,
                    sq.result.as_deref().unwrap_or(&sq.status)
                )));
            }
            done(
                Qualified {
                    account_presale_sq_id: sq.account_presale_sq_id,
                    result: sq.result.clone().filter(|_| stage == "nwb_sq"),
                },
                Some("get_packages"),
            )
            .map(Probe::Applied)
        }
        "select_package" => {
            let chosen: PackageChosen = output_of(outputs, "get_packages")?;
            match presale.package_plan_id {
                None => Ok(Probe::NotApplied),
                Some(id) if id == chosen.package.id => {
                    done(chosen, Some("get_requirements")).map(Probe::Applied)
                }
                Some(other) => Err(StageError::permanent(format!(
                    "presale {account_presale_id} holds package plan {other}, not the chosen {}: a person must look",
                    chosen.package.id
                ))),
            }
        }
        _ => {
            if !presale.status.eq_ignore_ascii_case("Complete") {
                return Ok(Probe::NotApplied);
            }
            done(
                OrderCompleted {
                    account_presale_id,
                    status: presale.status,
                    services: presale.services,
                },
                after_complete(data),
            )
            .map(Probe::Applied)
        }
    }
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
                Some(p) if !req.value_list.is_empty() && !req.value_list.contains(&p.value) => {
                    problems.push(format!(
                        "service plan {plan}: configuration {} ({}) must be one of {}, got {:?}",
                        req.type_id,
                        req.name,
                        req.value_list.join("/"),
                        p.value
                    ))
                }
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
        for req in &service.features {
            if req.mandatory && !data.features.iter().any(|f| f.feature_id == req.feature_id) {
                problems.push(format!(
                    "service plan {plan}: missing mandatory feature {} ({})",
                    req.feature_id, req.name
                ));
            }
        }
        for f in &data.features {
            if !service
                .features
                .iter()
                .any(|r| r.feature_id == f.feature_id)
            {
                problems.push(format!(
                    "service plan {plan}: unknown feature {}",
                    f.feature_id
                ));
            }
        }
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
        let identifier_needed = service.identifiers.iter().any(|i| i.mandatory);
        match &data.identifier {
            None if identifier_needed => problems.push(format!(
                "service plan {plan}: missing mandatory identifier ({})",
                service
                    .identifiers
                    .iter()
                    .map(|i| i.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(_) if service.identifiers.is_empty() => {
                problems.push(format!("service plan {plan}: takes no service identifier"))
            }
            Some(id) if !service.realms.is_empty() && !service.realms.contains(&id.realm) => {
                problems.push(format!(
                    "service plan {plan}: realm {:?} is not one of {}",
                    id.realm,
                    service.realms.join(", ")
                ))
            }
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, CommandBody};

    fn order(extra: serde_json::Value) -> ServiceOrderData {
        let mut data = serde_json::json!({
            "account": {"account_id": 100001},
            "service_type_id": 100100,
            "sq": {"kind": "simple"},
            "package": {"plan_id": 200100}
        });
        if let (Some(base), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        let cmd = Command::from_value(serde_json::json!({
            "command_id": "t", "type": "service_order.submit", "data": data
        }))
        .unwrap();
        match cmd.body {
            CommandBody::ServiceOrderSubmit(d) => *d,
            _ => unreachable!(),
        }
    }

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
                    feature_id: 600001,
                    name: "After Hours".into(),
                    mandatory: true,
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
            "identifier": {"username": "u", "realm": "r", "password": "p"}
        }));
        let problems = check(&data, &reqs());
        let all = problems.join("\n");
        for expected in [
            "missing mandatory configuration 500001",
            "must be one of Gold/Silver",
            "unknown configuration property 599999",
            "missing mandatory feature 600001",
            "0 contact(s) of type 700001",
            "takes no service identifier",
        ] {
            assert!(all.contains(expected), "{expected} not in\n{all}");
        }
        assert_eq!(problems.len(), 6);
    }

    #[test]
    fn a_complete_order_has_no_problems_and_skips_nothing_it_needs() {
        let data = order(serde_json::json!({
            "configuration": [{"type_id": 500001, "value": "HQ"}],
            "features": [{"feature_id": 600001, "value": "true"}],
            "contacts": [{"type_id": 700001, "first_name": "Jane", "last_name": "Citizen"}]
        }));
        let reqs = reqs();
        assert!(check(&data, &reqs).is_empty());
        assert_eq!(
            next_set_stage("get_requirements", &data, &reqs),
            "set_configuration"
        );
        assert_eq!(next_set_stage("set_contacts", &data, &reqs), "get_terms");
        assert_eq!(first_stage(&data), "start_order");
    }
}
