//! Reads the `{Operation}Request` element of each operation into a [`Call`]. Elements are
//! found by local name; what a request lacks is judged here only where Emersion's rules
//! have no word for it (a required id that is absent or not a number).

use super::account::{NewCustomer, NewNote, NewPayment};
use super::orders::{AddressQuery, NewOrder};
use super::services::{NewContact, NewIdentifier};
use super::SqMethod;
use crate::xml::Element;

pub(super) use crate::sim::Invalid;

pub(super) enum Call {
    MyGetAccountFromUsernameAndPassword {
        username: String,
        password: String,
    },
    CheckUsernameAvailability {
        username: String,
    },
    CreateComplexAccount(NewCustomer),
    AddNote(NewNote),
    StartOrder(NewOrder),
    /// PerformSimpleSQ, PerformGeneralPhoneSQ and PerformNWBSQ.
    PerformSq {
        presale_id: i64,
        service_type_id: i64,
        method: SqMethod,
    },
    FindNwbSqAddress {
        service_type_id: i64,
        address: AddressQuery,
    },
    GetAvailablePackages {
        presale_id: i64,
    },
    SelectPackagePlan {
        presale_id: i64,
        package_plan_id: i64,
    },
    CompleteOrder {
        presale_id: i64,
    },
    GetAccountPresale {
        presale_id: i64,
    },
    GetServiceConfigurationRequirements {
        service_plan_id: i64,
    },
    SetServiceConfiguration {
        sq_id: i64,
        values: Vec<(i64, String)>,
    },
    GetServiceFeatureRequirements {
        service_plan_id: i64,
    },
    SetServiceFeatures {
        sq_id: i64,
        values: Vec<(i64, String)>,
    },
    GetServiceContactRequirements {
        service_plan_id: i64,
    },
    SetServiceContacts {
        sq_id: i64,
        contacts: Vec<NewContact>,
    },
    GetServiceIdentifierRequirements {
        service_plan_id: i64,
    },
    GetServiceIdentifierRealms {
        service_plan_id: i64,
    },
    SetServiceIdentifier(NewIdentifier),
    CreatePayment(NewPayment),
    GetTermsAndConditions {
        package_plan_id: i64,
    },
}

impl Call {
    /// Whether the call, once accepted, changes the state: the call log's `applied`.
    /// Every accepted change stores something, even when it repeats an earlier call.
    pub(super) fn changes_state(&self) -> bool {
        match self {
            Call::AddNote(_)
            | Call::CreateComplexAccount(_)
            | Call::StartOrder(_)
            | Call::PerformSq { .. }
            | Call::SelectPackagePlan { .. }
            | Call::CompleteOrder { .. }
            | Call::SetServiceConfiguration { .. }
            | Call::SetServiceFeatures { .. }
            | Call::SetServiceContacts { .. }
            | Call::SetServiceIdentifier(_)
            | Call::CreatePayment(_) => true,
            Call::MyGetAccountFromUsernameAndPassword { .. }
            | Call::CheckUsernameAvailability { .. }
            | Call::FindNwbSqAddress { .. }
            | Call::GetAvailablePackages { .. }
            | Call::GetAccountPresale { .. }
            | Call::GetServiceConfigurationRequirements { .. }
            | Call::GetServiceFeatureRequirements { .. }
            | Call::GetServiceContactRequirements { .. }
            | Call::GetServiceIdentifierRequirements { .. }
            | Call::GetServiceIdentifierRealms { .. }
            | Call::GetTermsAndConditions { .. } => false,
        }
    }
}

/// A required int element; absent or not a number is a malformed request.
fn id(el: &Element, name: &str) -> Result<i64, Invalid> {
    Ok(el.parse_at(&[name])?)
}

/// An id whose absence Emersion reports as "Missing …": absent or empty reads as 0, which
/// the rules refuse with that message, as they do a zero or negative id.
fn id_or_zero(el: &Element, name: &str) -> Result<i64, Invalid> {
    Ok(el.parse_opt(&[name])?.unwrap_or(0))
}

/// Text of a child, empty when absent.
fn text(el: &Element, path: &[&str]) -> String {
    el.path(path).map(|e| e.text.clone()).unwrap_or_default()
}

/// Text of a child, `None` when absent or empty.
fn optional(el: &Element, name: &str) -> Option<String> {
    Some(text(el, &[name])).filter(|t| !t.is_empty())
}

/// The `{item}` children of `list` (a missing list is empty), each with its int `key`
/// element and its `Value`.
fn pairs(el: &Element, list: &str, item: &str, key: &str) -> Result<Vec<(i64, String)>, Invalid> {
    el.child(list)
        .into_iter()
        .flat_map(|l| l.children_named(item))
        .map(|i| Ok((id(i, key)?, text(i, &["Value"]))))
        .collect()
}

fn contact(el: &Element) -> Result<NewContact, Invalid> {
    Ok(NewContact {
        type_id: id(el, "Type")?,
        title: text(el, &["Title"]),
        first_name: text(el, &["FirstName"]),
        last_name: text(el, &["LastName"]),
        date_of_birth: text(el, &["DateOfBirth"]),
        email: text(el, &["Details", "Email"]),
        phone: text(el, &["Details", "Phone"]),
    })
}

/// The call `operation` (a known operation name) makes with the request element `el`.
pub(super) fn read_call(operation: &str, el: &Element) -> Result<Call, Invalid> {
    let presale = || id_or_zero(el, "AccountPresaleID");
    let service_type = || id_or_zero(el, "ServiceTypeID");
    let service_plan = || id(el, "ServicePlanID");
    Ok(match operation {
        "MyGetAccountFromUsernameAndPassword" => Call::MyGetAccountFromUsernameAndPassword {
            username: text(el, &["Username"]),
            password: text(el, &["Password"]),
        },
        "CheckUsernameAvailability" => Call::CheckUsernameAvailability {
            username: text(el, &["Username"]),
        },
        "CreateComplexAccount" => Call::CreateComplexAccount(NewCustomer {
            account_type: text(el, &["AccountType"]),
            first_name: text(el, &["PrimaryContact", "Detail", "FirstName"]),
            last_name: text(el, &["PrimaryContact", "Detail", "LastName"]),
            email: text(el, &["PrimaryContact", "Detail", "EmailAddress"]),
            username: text(el, &["PrimaryContact", "CumulusUser", "UserName"]),
            password: text(el, &["PrimaryContact", "CumulusUser", "Password"]),
            reference: text(el, &["AccountReference"]),
        }),
        "AddNote" => Call::AddNote(NewNote {
            object_type_id: id(el, "ObjectTypeID")?,
            object_id: id(el, "ObjectTypeValue")?,
            subject: text(el, &["NoteSubject"]),
            detail: text(el, &["NoteDetail"]),
        }),
        "StartOrder" => Call::StartOrder(NewOrder {
            account_id: id_or_zero(el, "AccountID")?,
            purchase_order: optional(el, "PurchaseOrder"),
            promo_code: optional(el, "PromoCode"),
        }),
        "PerformSimpleSQ" => Call::PerformSq {
            presale_id: presale()?,
            service_type_id: service_type()?,
            method: SqMethod::Simple,
        },
        "PerformGeneralPhoneSQ" => Call::PerformSq {
            presale_id: presale()?,
            service_type_id: service_type()?,
            method: SqMethod::GeneralPhone {
                phone_number: text(el, &["PhoneNumber"]),
            },
        },
        "PerformNWBSQ" => Call::PerformSq {
            presale_id: presale()?,
            service_type_id: service_type()?,
            method: SqMethod::Nwb {
                location_id: text(el, &["LocationID"]),
            },
        },
        "FindNWBSQAddress" => {
            let field = |name| text(el, &["AddressDetails", name]);
            Call::FindNwbSqAddress {
                service_type_id: service_type()?,
                address: AddressQuery {
                    street_number: field("StreetNumber"),
                    street_name: field("StreetName"),
                    suburb: field("Suburb"),
                    state: field("State"),
                    postcode: field("Postcode"),
                },
            }
        }
        "GetAvailablePackages" => Call::GetAvailablePackages {
            presale_id: id(el, "AccountPresaleID")?,
        },
        "SelectPackagePlan" => Call::SelectPackagePlan {
            presale_id: id(el, "AccountPresaleID")?,
            package_plan_id: id(el, "PackagePlanID")?,
        },
        "CompleteOrder" => Call::CompleteOrder {
            presale_id: id(el, "AccountPresaleID")?,
        },
        "GetAccountPresale" => Call::GetAccountPresale {
            presale_id: presale()?,
        },
        "GetServiceConfigurationRequirements" => Call::GetServiceConfigurationRequirements {
            service_plan_id: service_plan()?,
        },
        "SetServiceConfiguration" => Call::SetServiceConfiguration {
            sq_id: id(el, "PresaleSQID")?,
            values: pairs(el, "Properties", "PropertyValue", "TypeID")?,
        },
        "GetServiceFeatureRequirements" => Call::GetServiceFeatureRequirements {
            service_plan_id: service_plan()?,
        },
        "SetServiceFeatures" => Call::SetServiceFeatures {
            sq_id: id(el, "AccountPresaleSQID")?,
            values: pairs(el, "Features", "Feature", "FeatureID")?,
        },
        "GetServiceContactRequirements" => Call::GetServiceContactRequirements {
            service_plan_id: service_plan()?,
        },
        "SetServiceContacts" => Call::SetServiceContacts {
            sq_id: id(el, "AccountPresaleSQID")?,
            contacts: el
                .child("ContactCollections")
                .into_iter()
                .flat_map(|l| l.children_named("Contact"))
                .map(contact)
                .collect::<Result<_, _>>()?,
        },
        "GetServiceIdentifierRequirements" => Call::GetServiceIdentifierRequirements {
            service_plan_id: service_plan()?,
        },
        "GetServiceIdentifierRealms" => Call::GetServiceIdentifierRealms {
            service_plan_id: service_plan()?,
        },
        "SetServiceIdentifier" => Call::SetServiceIdentifier(NewIdentifier {
            sq_id: id(el, "AccountPresaleSQID")?,
            username: text(el, &["Username"]),
            realm: text(el, &["Realm"]),
            password: text(el, &["Password"]),
        }),
        "CreatePayment" => Call::CreatePayment(NewPayment {
            account_id: id(el, "AccountID")?,
            transaction_category: text(el, &["TransactionCategory"]),
            reference: text(el, &["Reference"]),
            amount: text(el, &["Amount"]),
            transaction_date: text(el, &["TransactionDate"]),
        }),
        "GetTermsAndConditions" => Call::GetTermsAndConditions {
            package_plan_id: el.parse_at(&["ObjectMapping", "PackagePlanID"])?,
        },
        other => return Err(format!("Unknown operation {other}").into()),
    })
}
