//! The product catalog: service types with their SQ check types, package plans with their
//! allowances and terms, service plans with their configuration requirements, and the
//! addresses the NWB SQ knows. Seeded once; no operation changes it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;
use crate::billing::emersion::wire::{CANNOT_HAVE_IDENT, CAN_HAVE_IDENT, MUST_HAVE_IDENT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) enum CheckType {
    #[serde(rename = "NoSQ")]
    NoSq,
    AutoIdentifier,
    GeneralPhone,
    #[serde(rename = "NWB")]
    Nwb,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ServiceType {
    service_type_id: i64,
    name: &'static str,
    sellable: bool,
    check_type: Option<CheckType>,
}

pub(super) struct PackagePlan {
    pub(super) id: i64,
    pub(super) internal_name: &'static str,
    pub(super) external_name: &'static str,
    pub(super) allowances: Vec<Allowance>,
    pub(super) terms: Vec<Terms>,
}

impl PackagePlan {
    /// Whether the plan can be ordered with SQs for these service types.
    pub(super) fn offered_for(&self, service_type_ids: &[i64]) -> bool {
        self.allowances
            .iter()
            .any(|a| service_type_ids.contains(&a.service_type_id))
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Allowance {
    pub(super) service_plan_id: i64,
    pub(super) service_type_id: i64,
    pub(super) quantity: u32,
    pub(super) mandatory: bool,
}

pub(super) struct Terms {
    pub(super) id: i64,
    pub(super) text: &'static str,
}

#[derive(Default)]
pub(super) struct ServicePlan {
    pub(super) properties: Vec<Property>,
    pub(super) features: Vec<Feature>,
    pub(super) contact_types: Vec<ContactType>,
    pub(super) identifiers: Vec<IdentifierType>,
    /// (RealmID, RealmName)
    pub(super) realms: Vec<(i64, &'static str)>,
}

pub(super) struct Property {
    pub(super) type_id: i64,
    pub(super) name: &'static str,
    pub(super) value_type: ValueType,
    pub(super) mandatory: bool,
}

pub(super) enum ValueType {
    String,
    Integer,
    /// One of these values.
    List(&'static [&'static str]),
}

impl ValueType {
    pub(super) fn name(&self) -> &'static str {
        match self {
            ValueType::String => "String",
            ValueType::Integer => "Integer",
            ValueType::List(_) => "List",
        }
    }

    pub(super) fn accepts(&self, value: &str) -> bool {
        match self {
            ValueType::String => true,
            ValueType::Integer => value.parse::<i64>().is_ok(),
            ValueType::List(values) => values.contains(&value),
        }
    }
}

/// A service feature; it accepts the OptionTypes On and Off, On by default.
pub(super) struct Feature {
    pub(super) id: i64,
    pub(super) name: &'static str,
    pub(super) product_id: i64,
    /// CANNOT_HAVE_IDENT, MUST_HAVE_IDENT or CAN_HAVE_IDENT.
    pub(super) identifier_type: &'static str,
    pub(super) behaviour: &'static str,
}

pub(super) struct ContactType {
    pub(super) type_id: i64,
    pub(super) name: &'static str,
    pub(super) minimum: usize,
    pub(super) maximum: usize,
}

/// An authentication-based identifier, set with SetServiceIdentifier.
pub(super) struct IdentifierType {
    pub(super) type_id: i64,
    pub(super) name: &'static str,
    pub(super) realm_required: bool,
}

pub(super) struct Address {
    pub(super) street_number: &'static str,
    pub(super) street_name: &'static str,
    pub(super) street_type: &'static str,
    pub(super) suburb: &'static str,
    pub(super) state: &'static str,
    pub(super) postcode: &'static str,
    pub(super) location_id: &'static str,
    /// An SQ at an address that is not serviceable is `NotQualified`.
    pub(super) serviceable: bool,
}

pub(super) struct Catalog {
    service_types: BTreeMap<i64, ServiceType>,
    package_plans: BTreeMap<i64, PackagePlan>,
    service_plans: BTreeMap<i64, ServicePlan>,
    addresses: Vec<Address>,
}

impl Catalog {
    pub(super) fn seeded() -> Self {
        use CheckType::{AutoIdentifier, GeneralPhone, NoSq, Nwb};
        let service_types = [
            (
                BUSINESS_SUPPORT_TYPE_ID,
                "Business Support",
                true,
                Some(NoSq),
            ),
            (
                WEB_HOSTING_TYPE_ID,
                "Web Hosting",
                true,
                Some(AutoIdentifier),
            ),
            (PHONE_LINE_TYPE_ID, "Phone Line", true, Some(GeneralPhone)),
            (NBN_TYPE_ID, "NBN", true, Some(Nwb)),
            (LEGACY_FAX_TYPE_ID, "Legacy Fax", true, None),
            (RETIRED_DIALUP_TYPE_ID, "Retired Dial-up", false, None),
        ]
        .into_iter()
        .map(|(id, name, sellable, check_type)| {
            let service_type = ServiceType {
                service_type_id: id,
                name,
                sellable,
                check_type,
            };
            (id, service_type)
        })
        .collect();

        let plan = |id, internal_name, external_name, (service_plan_id, service_type_id), terms| {
            let allowance = Allowance {
                service_plan_id,
                service_type_id,
                quantity: 1,
                mandatory: true,
            };
            let plan = PackagePlan {
                id,
                internal_name,
                external_name,
                allowances: vec![allowance],
                terms,
            };
            (id, plan)
        };
        let terms = |id, text| vec![Terms { id, text }];
        let support = (BUSINESS_SUPPORT_SERVICE_PLAN_ID, BUSINESS_SUPPORT_TYPE_ID);
        let package_plans = [
            plan(
                BUSINESS_SUPPORT_BASIC_PLAN_ID,
                "BIZ-SUP-1",
                "Business Support Basic",
                support,
                terms(
                    BUSINESS_SUPPORT_BASIC_TERMS_ID,
                    "Business Support Basic: 12 month minimum term; support in business hours.",
                ),
            ),
            plan(
                BUSINESS_SUPPORT_PLUS_PLAN_ID,
                "BIZ-SUP-2",
                "Business Support Plus",
                support,
                terms(
                    BUSINESS_SUPPORT_PLUS_TERMS_ID,
                    "Business Support Plus: 12 month minimum term; after-hours support extra.",
                ),
            ),
            plan(
                HOSTING_STARTER_PLAN_ID,
                "HOST-START-1",
                "Hosting Starter",
                (HOSTING_SERVICE_PLAN_ID, WEB_HOSTING_TYPE_ID),
                Vec::new(),
            ),
            plan(
                PHONE_BASIC_PLAN_ID,
                "PHONE-BASIC-1",
                "Phone Basic",
                (PHONE_SERVICE_PLAN_ID, PHONE_LINE_TYPE_ID),
                Vec::new(),
            ),
            plan(
                NBN_50_PLAN_ID,
                "NBN-50",
                "NBN 50",
                (NBN_SERVICE_PLAN_ID, NBN_TYPE_ID),
                terms(
                    NBN_50_TERMS_ID,
                    "NBN 50: month to month; typical evening speed 45 Mbps.",
                ),
            ),
            (
                NBN_PHONE_BUNDLE_PLAN_ID,
                PackagePlan {
                    id: NBN_PHONE_BUNDLE_PLAN_ID,
                    internal_name: "NBN-PHONE-1",
                    external_name: "NBN 50 + Phone",
                    allowances: [
                        (NBN_SERVICE_PLAN_ID, NBN_TYPE_ID),
                        (PHONE_SERVICE_PLAN_ID, PHONE_LINE_TYPE_ID),
                    ]
                    .into_iter()
                    .map(|(service_plan_id, service_type_id)| Allowance {
                        service_plan_id,
                        service_type_id,
                        quantity: 1,
                        mandatory: true,
                    })
                    .collect(),
                    terms: Vec::new(),
                },
            ),
        ]
        .into_iter()
        .collect();

        let property = |type_id, name, value_type, mandatory| Property {
            type_id,
            name,
            value_type,
            mandatory,
        };
        let technical = |minimum, maximum| ContactType {
            type_id: TECHNICAL_CONTACT_TYPE_ID,
            name: "Technical",
            minimum,
            maximum,
        };
        let service_plans = [
            (
                BUSINESS_SUPPORT_SERVICE_PLAN_ID,
                ServicePlan {
                    properties: vec![
                        property(SITE_NAME_PROPERTY_ID, "Site Name", ValueType::String, true),
                        property(
                            SUPPORT_TIER_PROPERTY_ID,
                            "Support Tier",
                            ValueType::List(&SUPPORT_TIERS),
                            false,
                        ),
                    ],
                    features: vec![Feature {
                        id: AFTER_HOURS_FEATURE_ID,
                        name: "After Hours",
                        product_id: 610001,
                        identifier_type: CANNOT_HAVE_IDENT,
                        behaviour: "Optional",
                    }],
                    contact_types: vec![technical(1, 2)],
                    ..ServicePlan::default()
                },
            ),
            (
                HOSTING_SERVICE_PLAN_ID,
                ServicePlan {
                    properties: vec![property(
                        DOMAIN_PROPERTY_ID,
                        "Domain",
                        ValueType::String,
                        true,
                    )],
                    identifiers: vec![IdentifierType {
                        type_id: HOSTING_IDENTIFIER_TYPE_ID,
                        name: HOSTING_IDENTIFIER,
                        realm_required: true,
                    }],
                    realms: vec![(30100, HOSTING_REALM)],
                    ..ServicePlan::default()
                },
            ),
            (
                PHONE_SERVICE_PLAN_ID,
                ServicePlan {
                    properties: vec![property(
                        DIRECTORY_LISTING_PROPERTY_ID,
                        "Directory Listing",
                        ValueType::List(&DIRECTORY_LISTINGS),
                        true,
                    )],
                    features: vec![Feature {
                        id: VOICE_MAIL_FEATURE_ID,
                        name: "Voice Mail",
                        product_id: 610020,
                        identifier_type: CAN_HAVE_IDENT,
                        behaviour: "Forced, Removeable",
                    }],
                    contact_types: vec![technical(0, 1)],
                    ..ServicePlan::default()
                },
            ),
            (
                NBN_SERVICE_PLAN_ID,
                ServicePlan {
                    properties: vec![
                        property(
                            MODEM_SERIAL_PROPERTY_ID,
                            "Modem Serial",
                            ValueType::String,
                            true,
                        ),
                        property(PORT_PROPERTY_ID, "Port", ValueType::Integer, false),
                    ],
                    features: vec![Feature {
                        id: STATIC_IP_FEATURE_ID,
                        name: "Static IP",
                        product_id: 610010,
                        identifier_type: MUST_HAVE_IDENT,
                        behaviour: "Optional",
                    }],
                    contact_types: vec![technical(1, 1)],
                    identifiers: vec![IdentifierType {
                        type_id: PPPOE_IDENTIFIER_TYPE_ID,
                        name: PPPOE_IDENTIFIER,
                        realm_required: true,
                    }],
                    realms: vec![(30400, NBN_REALMS[0]), (30401, NBN_REALMS[1])],
                },
            ),
            (UNTYPED_SERVICE_PLAN_ID, ServicePlan::default()),
        ]
        .into_iter()
        .collect();

        let address = |street_number, street_name, suburb, state, postcode, location_id| Address {
            street_number,
            street_name,
            street_type: "St",
            suburb,
            state,
            postcode,
            location_id,
            serviceable: location_id != MELBOURNE_LOCATION_ID,
        };
        let addresses = vec![
            address("1", "George", "Sydney", "NSW", "2000", SYDNEY_LOCATION_ID),
            address(
                "10",
                "Queen",
                "Brisbane",
                "QLD",
                "4000",
                BRISBANE_LOCATION_ID,
            ),
            address(
                "5",
                "Collins",
                "Melbourne",
                "VIC",
                "3000",
                MELBOURNE_LOCATION_ID,
            ),
        ];

        Catalog {
            service_types,
            package_plans,
            service_plans,
            addresses,
        }
    }

    pub(super) fn service_types(&self) -> Vec<&ServiceType> {
        self.service_types.values().collect()
    }

    /// Seed 004's checks of the service type an SQ is for, in its order; the check type is
    /// returned for the SQ method to judge.
    pub(super) fn orderable(&self, service_type_id: i64) -> Result<CheckType, Rejection> {
        if service_type_id < 1 {
            return Err("Missing service type id".into());
        }
        if service_type_id < SIX_DIGITS {
            return Err("Invalid service type id".into());
        }
        let service_type = self
            .service_types
            .get(&service_type_id)
            .filter(|t| t.sellable)
            .ok_or("Service type is not available for ordering")?;
        service_type.check_type.ok_or_else(|| {
            format!("Missing service check type on service type id #{service_type_id}").into()
        })
    }

    pub(super) fn package_plans(&self) -> impl Iterator<Item = &PackagePlan> {
        self.package_plans.values()
    }

    pub(super) fn package_plan(&self, id: i64) -> Result<&PackagePlan, Rejection> {
        self.package_plans
            .get(&id)
            .ok_or_else(|| "Undefined package plan".into())
    }

    /// Emersion changes requirements without notice (seed 000): tests make a property of
    /// a service plan mandatory, or optional, while an order runs.
    pub(super) fn set_mandatory(
        &mut self,
        service_plan_id: i64,
        type_id: i64,
        mandatory: bool,
    ) -> Result<(), Rejection> {
        let property = self
            .service_plans
            .get_mut(&service_plan_id)
            .ok_or("Undefined service plan")?
            .properties
            .iter_mut()
            .find(|p| p.type_id == type_id)
            .ok_or("Unknown property")?;
        property.mandatory = mandatory;
        Ok(())
    }

    pub(super) fn service_plan(&self, id: i64) -> Result<&ServicePlan, Rejection> {
        self.service_plans
            .get(&id)
            .ok_or_else(|| "Undefined service plan".into())
    }

    /// The service plan a package plan provides for a service type.
    pub(super) fn service_plan_for(
        &self,
        package_plan_id: i64,
        service_type_id: i64,
    ) -> Result<&ServicePlan, Rejection> {
        let allowance = self
            .package_plan(package_plan_id)?
            .allowances
            .iter()
            .find(|a| a.service_type_id == service_type_id)
            .ok_or("Undefined service plan")?;
        self.service_plan(allowance.service_plan_id)
    }

    /// Whether a package provides the service plan for a service type that exists.
    pub(super) fn has_service_type(&self, service_plan_id: i64) -> bool {
        self.package_plans
            .values()
            .flat_map(|p| &p.allowances)
            .any(|a| {
                a.service_plan_id == service_plan_id
                    && self.service_types.contains_key(&a.service_type_id)
            })
    }

    pub(super) fn address(&self, location_id: &str) -> Option<&Address> {
        self.addresses.iter().find(|a| a.location_id == location_id)
    }

    pub(super) fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.addresses.iter()
    }
}
