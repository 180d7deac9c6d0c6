//! The Set stages: `set_configuration`, `set_features`, `set_contacts`, `set_identifier`,
//! each over every service of the package that has something to set, on that service's
//! SQ. Each first reads again the requirement it sets and checks the values against it:
//! Emersion changes requirements without notice (seed 000), and a failed Set stage that
//! is replayed after the command was fixed must be judged by today's requirements, not
//! by those get_requirements saw. A Set call replaces what was set before: repeatable.

use serde::Serialize;
use serde_json::Value;

use super::package::PackageChosen;
use super::requirements::{
    check_configuration, check_contacts, check_features, check_identifier, transfer_of,
};
use super::services::{services_of, PackageService};
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire;
use crate::secret::Secret;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize)]
struct ServiceSet {
    service_plan_id: i64,
    account_presale_sq_id: i64,
    status: String,
}

#[derive(Debug, Serialize)]
struct SetDone {
    services: Vec<ServiceSet>,
}

/// Which Set call a stage makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Configuration,
    Features,
    Contacts,
    Identifier,
}

impl Kind {
    fn has_values(self, service: &PackageService<'_>) -> bool {
        let v = &service.values;
        match self {
            Kind::Configuration => !v.configuration.is_empty(),
            Kind::Features => v.features.iter().any(|f| f.setting().is_some()),
            Kind::Contacts => !v.contacts.is_empty(),
            Kind::Identifier => v.identifier.is_some(),
        }
    }
}

pub(super) async fn set_configuration(cx: &Ctx<'_>) -> Result<Value, StageError> {
    set(cx, Kind::Configuration).await
}

pub(super) async fn set_features(cx: &Ctx<'_>) -> Result<Value, StageError> {
    set(cx, Kind::Features).await
}

pub(super) async fn set_contacts(cx: &Ctx<'_>) -> Result<Value, StageError> {
    set(cx, Kind::Contacts).await
}

pub(super) async fn set_identifier(cx: &Ctx<'_>) -> Result<Value, StageError> {
    set(cx, Kind::Identifier).await
}

async fn set(cx: &Ctx<'_>, kind: Kind) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let services = services_of(cx.data, &chosen.package)?;
    let mut problems = Vec::new();
    for service in &services {
        recheck(cx, &chosen, service, kind, &mut problems).await?;
    }
    if !problems.is_empty() {
        return Err(StageError::permanent(format!(
            "the order does not meet today's service requirements: {}",
            problems.join("; ")
        )));
    }
    let mut done = Vec::new();
    for service in services.iter().filter(|s| kind.has_values(s)) {
        let sq = cx.sq_for(service.service_type_id)?;
        done.push(ServiceSet {
            service_plan_id: service.service_plan_id,
            account_presale_sq_id: sq,
            status: call(cx, service, sq, kind).await?,
        });
    }
    encode(SetDone { services: done })
}

/// Reads the requirement `kind` sets for `service` again and adds what its values miss.
async fn recheck(
    cx: &Ctx<'_>,
    chosen: &PackageChosen,
    service: &PackageService<'_>,
    kind: Kind,
    problems: &mut Vec<String>,
) -> Result<(), StageError> {
    let (plan, values, client) = (service.service_plan_id, &service.values, &cx.client);
    match kind {
        Kind::Configuration => {
            let reqs = client
                .call(&wire::GetServiceConfigurationRequirements {
                    service_plan_id: plan,
                    transfer_type: transfer_of(cx, service, chosen),
                })
                .await?;
            check_configuration(plan, values, &reqs, problems);
        }
        Kind::Features => {
            let reqs = client
                .call(&wire::GetServiceFeatureConfigurationRequirements {
                    service_plan_id: plan,
                })
                .await?;
            check_features(plan, values, &reqs, problems);
        }
        Kind::Contacts => {
            let reqs = client
                .call(&wire::GetServiceContactRequirements {
                    service_plan_id: plan,
                })
                .await?;
            check_contacts(plan, values, &reqs, problems);
        }
        Kind::Identifier => {
            let identifiers = client
                .call(&wire::GetServiceIdentifierRequirements {
                    service_plan_id: plan,
                })
                .await?;
            let realms = client
                .call(&wire::GetServiceIdentifierRealm {
                    service_plan_id: plan,
                })
                .await?;
            check_identifier(plan, values, &identifiers, &realms, problems);
        }
    }
    Ok(())
}

async fn call(
    cx: &Ctx<'_>,
    service: &PackageService<'_>,
    sq: i64,
    kind: Kind,
) -> Result<String, StageError> {
    let v = &service.values;
    let status = match kind {
        Kind::Configuration => {
            cx.client
                .call(&wire::SetServiceConfiguration {
                    presale_sq_id: sq,
                    values: v
                        .configuration
                        .iter()
                        .map(|p| (p.type_id, p.value.clone()))
                        .collect(),
                })
                .await?
        }
        Kind::Features => {
            cx.client
                .call(&wire::SetServiceFeatureSetup {
                    account_presale_sq_id: sq,
                    features: v
                        .features
                        .iter()
                        .filter_map(|f| f.setting())
                        .map(|f| wire::FeatureSetup {
                            type_id: f.type_id,
                            identifier: f.identifier,
                            option_type_id: f.option_type_id,
                        })
                        .collect(),
                })
                .await?
        }
        Kind::Contacts => {
            cx.client
                .call(&wire::SetServiceContacts {
                    account_presale_sq_id: sq,
                    contacts: v
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
        Kind::Identifier => {
            let Some(id) = v.identifier else {
                return Err(StageError::permanent(
                    "set_identifier without an identifier",
                ));
            };
            cx.client
                .call(&wire::SetServiceIdentifier {
                    account_presale_sq_id: sq,
                    username: id.username.clone(),
                    realm: id.realm.clone(),
                    password: Secret::new(id.password.clone()),
                })
                .await?
        }
    };
    Ok(status)
}
