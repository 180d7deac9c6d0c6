//! Applies a [`Call`] to the state and writes its response element in the shape of the
//! operation's page (or the pinned one where the page shows none).

use super::catalog::ValueType;
use super::requests::Call;
use super::soap::{response, Ns1};
use super::{response_element, Emersion, Rejection, FEATURE_ON_OPTION_ID};

/// The response envelope of an accepted call, or why Emersion refuses it.
pub(super) fn answer(em: &mut Emersion, operation: &str, call: Call) -> Result<String, Rejection> {
    let element = response_element(operation);
    let reply = |body: &dyn Fn(&mut Ns1<'_>)| response(element, body);
    // The Set pages answer `<Status>true</Status>`.
    let success = || {
        reply(&|b| {
            b.leaf("Status", "true");
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
            let (sq_id, _) = em.perform_sq(presale_id, service_type_id, method)?;
            reply(&|b| {
                b.leaf("AccountPresaleSQID", sq_id);
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
            em.complete_order(presale_id)?;
            success()
        }
        Call::ServiceList { account_id } => {
            let services = em.service_list(account_id)?;
            reply(&|b| {
                for s in &services {
                    b.start("serviceListItem")
                        .leaf("service_id", s.service_id)
                        .leaf("service_identifier", &s.service_identifier)
                        .leaf("service_type_id", s.service_type_id)
                        .leaf("service_status", s.status)
                        .end("serviceListItem");
                }
            })
        }
        Call::ServiceLookup {
            service_identifier,
            service_type_id,
        } => {
            let services = em.service_lookup(&service_identifier, service_type_id)?;
            reply(&|b| {
                for s in &services {
                    b.start("serviceLookupItem")
                        .leaf("account_id", s.account_id)
                        .leaf("service_identifier", &s.service_identifier)
                        .leaf("subscription_status_name", s.status)
                        .leaf("service_id", s.service_id)
                        .end("serviceLookupItem");
                }
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
        Call::GetServiceFeatureConfigurationRequirements { service_plan_id } => {
            let plan = em.catalog.service_plan(service_plan_id)?;
            reply(&|b| {
                for f in &plan.features {
                    b.start("ServiceFeature");
                    b.typed("Type", f.id, f.name)
                        .typed("Product", f.product_id, f.name)
                        .typed("FeatureIdentifierType", 0, f.identifier_type)
                        .typed("DefaultOption", FEATURE_ON_OPTION_ID, "On")
                        .leaf("FeatureBehaviour", f.behaviour)
                        .end("ServiceFeature");
                }
            })
        }
        Call::SetServiceFeatureSetup { sq_id, features } => {
            em.set_features(sq_id, features)?;
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
                for i in &plan.identifiers {
                    b.start("ServiceIdentifier");
                    b.typed("Type", i.type_id, i.name)
                        .leaf("RealmIsRequired", i.realm_required)
                        .leaf("IsAuthenticationBased", true)
                        .end("ServiceIdentifier");
                }
            })
        }
        Call::GetServiceIdentifierRealm { service_plan_id } => {
            let realms = em.identifier_realms(service_plan_id)?;
            reply(&|b| {
                for (id, name) in realms {
                    b.start("Realm")
                        .leaf("RealmID", id)
                        .leaf("RealmName", name)
                        .end("Realm");
                }
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
