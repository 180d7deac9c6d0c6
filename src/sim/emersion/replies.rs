//! Applies a [`Call`] to the state and writes its `{Operation}Response` in the pinned shape.

use super::catalog::ValueType;
use super::requests::Call;
use super::soap::{response, Ns1};
use super::{CreatedService, Emersion, Rejection, SqMethod, SqResult};

/// The response envelope of an accepted call, or why Emersion refuses it.
pub(super) fn answer(em: &mut Emersion, operation: &str, call: Call) -> Result<String, Rejection> {
    let reply = |body: &dyn Fn(&mut Ns1<'_>)| response(operation, body);
    let success = || {
        reply(&|b| {
            b.leaf("Status", "Success");
        })
    };
    Ok(match call {
        Call::MyGetAccountFromUsernameAndPassword { username, password } => {
            let account_id = em.account_by_credentials(&username, &password)?;
            reply(&|b| {
                b.leaf("AccountID", account_id);
            })
        }
        Call::CheckUsernameAvailability { username } => {
            let available = em.username_available(&username)?;
            reply(&|b| {
                b.leaf("Available", available);
            })
        }
        Call::CreateComplexAccount(customer) => {
            let account_id = em.create_account(customer)?;
            reply(&|b| {
                b.leaf("AccountID", account_id);
            })
        }
        Call::AddNote(note) => {
            let note_id = em.add_note(note)?;
            reply(&|b| {
                b.leaf("NoteID", note_id);
            })
        }
        Call::StartOrder(order) => {
            let presale_id = em.start_order(order)?;
            reply(&|b| {
                b.leaf("AccountPresaleID", presale_id);
            })
        }
        Call::PerformSq {
            presale_id,
            service_type_id,
            method,
        } => {
            // Only the NWB SQ can fail to qualify, so only it says how it went.
            let with_result = matches!(method, SqMethod::Nwb { .. });
            let (sq_id, result) = em.perform_sq(presale_id, service_type_id, method)?;
            reply(&|b| {
                b.leaf("AccountPresaleSQID", sq_id);
                if with_result {
                    b.leaf("ServiceQualificationResult", result.name());
                }
            })
        }
        Call::FindNwbSqAddress {
            service_type_id,
            address,
        } => {
            let found = em.find_nwb_addresses(service_type_id, &address)?;
            reply(&|b| {
                for a in &found {
                    b.start("Address")
                        .leaf("StreetNumber", a.street_number)
                        .leaf("StreetName", a.street_name)
                        .leaf("StreetType", a.street_type)
                        .leaf("Suburb", a.suburb)
                        .leaf("State", a.state)
                        .leaf("Postcode", a.postcode)
                        .leaf("LocationID", a.location_id)
                        .end("Address");
                }
            })
        }
        Call::GetAvailablePackages { presale_id } => {
            let plans = em.available_packages(presale_id)?;
            reply(&|b| {
                for plan in &plans {
                    b.start("PackagePlan")
                        .leaf("ID", plan.id)
                        .leaf("InternalName", plan.internal_name)
                        .leaf("ExternalName", plan.external_name)
                        .start("ServiceAllowances");
                    for a in &plan.allowances {
                        b.start("ServiceAllowance")
                            .leaf("ServicePlanID", a.service_plan_id)
                            .leaf("ServiceTypeID", a.service_type_id)
                            .leaf("Quantity", a.quantity)
                            .leaf("Mandatory", a.mandatory)
                            .end("ServiceAllowance");
                    }
                    b.end("ServiceAllowances").end("PackagePlan");
                }
            })
        }
        Call::SelectPackagePlan {
            presale_id,
            package_plan_id,
        } => {
            let plan = em.select_package_plan(presale_id, package_plan_id)?;
            reply(&|b| {
                b.start("PackagePlan")
                    .leaf("ID", plan.id)
                    .leaf("InternalName", plan.internal_name)
                    .leaf("ExternalName", plan.external_name)
                    .end("PackagePlan");
            })
        }
        Call::CompleteOrder { presale_id } => {
            let services = em.complete_order(presale_id)?;
            reply(&|b| {
                b.leaf("Status", "Complete")
                    .leaf("AccountPresaleID", presale_id);
                write_services(b, &services);
            })
        }
        Call::GetAccountPresale { presale_id } => {
            let presale = em.presale_by_id(presale_id)?;
            let services: Vec<CreatedService> = em
                .services
                .values()
                .filter(|s| s.presale_id == presale_id)
                .cloned()
                .collect();
            reply(&|b| {
                let status = if presale.completed {
                    "Complete"
                } else {
                    "Open"
                };
                b.start("AccountPresale")
                    .leaf("AccountPresaleID", presale.presale_id)
                    .leaf("AccountID", presale.account_id)
                    .leaf("Status", status);
                if let Some(plan) = presale.package_plan_id {
                    b.leaf("PackagePlanID", plan);
                }
                b.start("SQs");
                for sq in &presale.sqs {
                    b.start("SQ")
                        .leaf("AccountPresaleSQID", sq.sq_id)
                        .leaf("ServiceTypeID", sq.service_type_id);
                    // A pending SQ has no result yet; a finished one says how it went.
                    if sq.result == SqResult::Pending {
                        b.leaf("Status", "Pending");
                    } else {
                        b.leaf("Status", "Complete")
                            .leaf("Result", sq.result.name());
                    }
                    b.end("SQ");
                }
                b.end("SQs");
                write_services(b, &services);
                b.end("AccountPresale");
            })
        }
        Call::GetServiceConfigurationRequirements { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                b.start("Properties");
                for p in &plan.properties {
                    b.start("Property")
                        .leaf("TypeID", p.type_id)
                        .leaf("Name", p.name)
                        .leaf("ValueType", p.value_type.name())
                        .leaf("IsMandatory", p.mandatory);
                    if let ValueType::List(values) = p.value_type {
                        b.start("ValueList");
                        for value in values {
                            b.leaf("Value", value);
                        }
                        b.end("ValueList");
                    }
                    b.end("Property");
                }
                b.end("Properties");
            })
        }
        Call::SetServiceConfiguration { sq_id, values } => {
            em.set_configuration(sq_id, values)?;
            success()
        }
        Call::GetServiceFeatureRequirements { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                b.start("Features");
                for f in &plan.features {
                    b.start("Feature")
                        .leaf("FeatureID", f.id)
                        .leaf("Name", f.name)
                        .leaf("IsMandatory", f.mandatory)
                        .end("Feature");
                }
                b.end("Features");
            })
        }
        Call::SetServiceFeatures { sq_id, values } => {
            em.set_features(sq_id, values)?;
            success()
        }
        Call::GetServiceContactRequirements { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                b.start("ContactTypes");
                for t in &plan.contact_types {
                    b.start("ContactType")
                        .leaf("TypeID", t.type_id)
                        .leaf("Name", t.name)
                        .leaf("MinimumRequired", t.minimum)
                        .leaf("MaximumRequired", t.maximum)
                        .end("ContactType");
                }
                b.end("ContactTypes");
            })
        }
        Call::SetServiceContacts { sq_id, contacts } => {
            em.set_contacts(sq_id, contacts)?;
            success()
        }
        Call::GetServiceIdentifierRequirements { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                b.start("Identifiers");
                for i in &plan.identifiers {
                    b.start("Identifier")
                        .leaf("Type", i.name)
                        .leaf("IsMandatory", i.mandatory)
                        .end("Identifier");
                }
                b.end("Identifiers");
            })
        }
        Call::GetServiceIdentifierRealms { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                b.start("Realms");
                for realm in &plan.realms {
                    b.start("Realm").leaf("Name", realm).end("Realm");
                }
                b.end("Realms");
            })
        }
        Call::SetServiceIdentifier(identifier) => {
            em.set_identifier(identifier)?;
            success()
        }
        Call::CreatePayment(payment) => {
            let payment_id = em.create_payment(payment)?;
            reply(&|b| {
                b.leaf("paymentID", payment_id);
            })
        }
        Call::GetTermsAndConditions { package_plan_id } => {
            let plan = em.catalog.package_plan(package_plan_id)?;
            reply(&|b| {
                for terms in &plan.terms {
                    b.start("TermsandConditions")
                        .leaf("TermsandConditionsID", terms.id)
                        .leaf("TermsandConditionsText", terms.text)
                        .end("TermsandConditions");
                }
            })
        }
    })
}

/// `Services` with one `Service` each, as CompleteOrder and GetAccountPresale list them.
fn write_services(b: &mut Ns1<'_>, services: &[CreatedService]) {
    b.start("Services");
    for s in services {
        b.start("Service")
            .leaf("ServiceID", s.service_id)
            .leaf("ServiceTypeID", s.service_type_id)
            .leaf("ServicePlanID", s.service_plan_id)
            .leaf("Status", s.status)
            .end("Service");
    }
    b.end("Services");
}
