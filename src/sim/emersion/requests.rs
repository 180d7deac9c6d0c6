//! Reads the request element of each operation into a [`Call`]. Elements are
//! found by local name; what a request lacks is judged here only where Emersion's rules
//! have no word for it (a required id that is absent or not a number).

use super::account::{NewCustomer, NewNote, NewPayment};
use super::orders::{AddressQuery, NewOrder};
use super::services::{NewContact, NewFeature, NewIdentifier};
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
    GetServiceConfigurationRequirements {
        service_plan_id: i64,
    },
    SetServiceConfiguration {
        sq_id: i64,
        values: Vec<(i64, String)>,
    },
    GetServiceFeatureConfigurationRequirements {
        service_plan_id: i64,
    },
    SetServiceFeatureSetup {
        sq_id: i64,
        features: Vec<NewFeature>,
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
    GetServiceIdentifierRealm {
        service_plan_id: i64,
    },
    ServiceList {
        account_id: i64,
    },
    ServiceLookup {
        service_identifier: String,
        service_type_id: Option<i64>,
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
            | Call::SetServiceFeatureSetup { .. }
            | Call::SetServiceContacts { .. }
            | Call::SetServiceIdentifier(_)
            | Call::CreatePayment(_) => true,
            Call::MyGetAccountFromUsernameAndPassword { .. }
            | Call::CheckUsernameAvailability { .. }
            | Call::FindNwbSqAddress { .. }
            | Call::GetAvailablePackages { .. }
            | Call::GetServiceConfigurationRequirements { .. }
            | Call::GetServiceFeatureConfigurationRequirements { .. }
            | Call::GetServiceContactRequirements { .. }
            | Call::GetServiceIdentifierRequirements { .. }
            | Call::GetServiceIdentifierRealm { .. }
            | Call::ServiceList { .. }
            | Call::ServiceLookup { .. }
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

/// The `ID` attribute of the child `name`, if it has a numeric one.
fn id_attr(el: &Element, name: &str) -> Result<Option<i64>, Invalid> {
    match el.child(name).and_then(|c| c.attr("ID")) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} ID {raw:?} is not a number").into()),
    }
}

fn feature(el: &Element) -> Result<NewFeature, Invalid> {
    Ok(NewFeature {
        type_id: id_attr(el, "Type")?.unwrap_or(0),
        identifier: optional(el, "FeatureIdentifier"),
        option_type_id: id_attr(el, "OptionType")?,
    })
}

fn contact(el: &Element) -> Result<NewContact, Invalid> {
    let in_details = |name| {
        el.children_named("Details")
            .map(|d| d.children_named(name).count())
            .sum()
    };
    Ok(NewContact {
        type_id: id(el, "Type")?,
        title: text(el, &["Title"]),
        first_name: text(el, &["FirstName"]),
        last_name: text(el, &["LastName"]),
        date_of_birth: text(el, &["DateOfBirth"]),
        email: text(el, &["Details", "Email"]),
        phone: text(el, &["Details", "Phone"]),
        addresses: el.children_named("Details").count(),
        phones: in_details("Phone"),
        emails: in_details("Email"),
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
            object_type_id: optional(el, "ObjectTypeID"),
            object_type_value: optional(el, "ObjectTypeValue"),
            subject: text(el, &["NoteSubject"]),
            detail: text(el, &["NoteDetail"]),
            category_id: optional(el, "CategoryID"),
        }),
        "StartOrder" => Call::StartOrder(NewOrder {
            account_id: id_or_zero(el, "AccountID")?,
            purchase_order: optional(el, "PurchaseOrder"),
            promo_code: optional(el, "PromoCode"),
            external_contract_identifier: optional(el, "ExternalContractIdentifier"),
            cumulus_user_id: el.parse_opt(&["CumulusUserID"])?,
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
                transfer_type: text(el, &["TransferType"]),
                identifier: optional(el, "Identifier"),
            },
        },
        "PerformNWBSQ" => Call::PerformSq {
            presale_id: presale()?,
            service_type_id: service_type()?,
            method: SqMethod::Nwb {
                transfer_type: text(el, &["TransferType"]),
                fnn: Some(text(el, &["ServiceIdentifierDetails", "FNN"])).filter(|t| !t.is_empty()),
                location_id: Some(text(el, &["ServiceIdentifierDetails", "LocationID"]))
                    .filter(|t| !t.is_empty()),
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
            presale_id: presale()?,
        },
        "GetServiceConfigurationRequirements" => Call::GetServiceConfigurationRequirements {
            service_plan_id: service_plan()?,
        },
        "SetServiceConfiguration" => Call::SetServiceConfiguration {
            sq_id: id_or_zero(el, "PresaleSQID")?,
            values: pairs(el, "Properties", "PropertyValue", "TypeID")?,
        },
        "GetServiceFeatureConfigurationRequirements" => {
            Call::GetServiceFeatureConfigurationRequirements {
                service_plan_id: service_plan()?,
            }
        }
        "SetServiceFeatureSetup" => Call::SetServiceFeatureSetup {
            sq_id: id_or_zero(el, "AccountPresaleSQID")?,
            features: el
                .child("ServiceFeatures")
                .into_iter()
                .flat_map(|l| l.children_named("ServiceFeature"))
                .map(feature)
                .collect::<Result<_, _>>()?,
        },
        "GetServiceContactRequirements" => Call::GetServiceContactRequirements {
            service_plan_id: service_plan()?,
        },
        "SetServiceContacts" => Call::SetServiceContacts {
            sq_id: id_or_zero(el, "AccountPresaleSQID")?,
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
        "GetServiceIdentifierRealm" => Call::GetServiceIdentifierRealm {
            service_plan_id: id_or_zero(el, "ServicePlanID")?,
        },
        "serviceList" => Call::ServiceList {
            account_id: id(el, "account_id")?,
        },
        "serviceLookup" => Call::ServiceLookup {
            service_identifier: text(el, &["service_identifier"]),
            service_type_id: el.parse_opt(&["service_type_id"])?,
        },
        "SetServiceIdentifier" => Call::SetServiceIdentifier(NewIdentifier {
            sq_id: id_or_zero(el, "AccountPresaleSQID")?,
            username: text(el, &["Username"]),
            realm: text(el, &["Realm"]),
            password: text(el, &["Password"]),
        }),
        "CreatePayment" => Call::CreatePayment(NewPayment {
            account_id: optional(el, "AccountID").and_then(|id| id.trim().parse().ok()),
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
