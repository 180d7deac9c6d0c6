//! Simulated Emersion: accounts, order presales with their service qualifications (SQs),
//! package plans and service configuration, served over the SOAP 1.1 API of seeds 000 and
//! 004 with the shapes pinned in API-NOTES.md.

mod account;
mod catalog;
mod orders;
mod replies;
mod requests;
mod services;
mod soap;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::routing::post;
use axum::Router;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::Simulator;
use crate::billing::emersion::wire::Operation;
use catalog::Catalog;

/// WS-Security `UsernameToken` credentials the simulator accepts.
pub const SIM_USERNAME: &str = "billflow";
/// Only ever used to check a PasswordDigest: the simulator never logs it.
pub const SIM_PASSWORD: &str = "billflow-sim";

/// Namespace of the operation elements.
pub use crate::billing::emersion::wire::{API_NS, SOAP11_ENV_NS};

/// Active Retail account with Cumulus credentials: the account every happy path orders for.
pub const ACTIVE_ACCOUNT_ID: i64 = 100001;
pub const ACTIVE_ACCOUNT_USERNAME: &str = "jane.citizen";
pub const ACTIVE_ACCOUNT_PASSWORD: &str = "correct-horse";
pub const SUSPENDED_ACCOUNT_ID: i64 = 100002;
/// Active, but Wholesale: not eligible to order.
pub const WHOLESALE_ACCOUNT_ID: i64 = 100003;
/// Active Retail, with the "can not order" flag set.
pub const CAN_NOT_ORDER_ACCOUNT_ID: i64 = 100004;
pub const UNDEFINED_STATUS_ACCOUNT_ID: i64 = 100005;
pub const UNDEFINED_TYPE_ACCOUNT_ID: i64 = 100006;
pub const RESTRICTED_ACCOUNT_ID: i64 = 100007;
/// Active Retail, under an order restriction ([`ORDER_RESTRICTION_ID`]): StartOrder refuses.
pub const ORDER_RESTRICTED_ACCOUNT_ID: i64 = 100008;
pub const ORDER_RESTRICTION_ID: i64 = 4242;
/// Active Retail, another provider's customer: StartOrder calls it undefined, the Set
/// calls an invalid account, AddNote and CreatePayment not the caller's.
pub const FOREIGN_ACCOUNT_ID: i64 = 100009;
/// Active Retail, but its orders need a credit check, which no operation here performs:
/// CompleteOrder refuses them.
pub const CREDIT_CHECK_ACCOUNT_ID: i64 = 100010;
/// An account that no longer exists, still named by [`ORPHAN_PRESALE_ID`] and
/// [`ORPHAN_SERVICE_ID`].
pub const CLOSED_ACCOUNT_ID: i64 = 100011;

/// Completed presale of [`ACTIVE_ACCOUNT_ID`] (package 200100, service
/// [`COMPLETED_SERVICE_ID`]). It and the next three serve seed 004's end-user rules.
pub const COMPLETED_PRESALE_ID: i64 = 110001;
/// Open presale of [`ACTIVE_ACCOUNT_ID`] with package 200100 selected for its SQ
/// [`PACKAGED_PRESALE_SQ_ID`].
pub const PACKAGED_PRESALE_ID: i64 = 110002;
/// Holds the pending SQ [`PENDING_SQ_ID`] for [`BUSINESS_SUPPORT_TYPE_ID`].
pub const PENDING_SQ_PRESALE_ID: i64 = 110003;
/// Has no package plan itself, but its SQ [`PACKAGED_SQ_ID`] for
/// [`BUSINESS_SUPPORT_TYPE_ID`] has one: that SQ cannot be overridden.
pub const PACKAGED_SQ_PRESALE_ID: i64 = 110004;
/// Open presales of the accounts the SP account validation refuses.
pub const SUSPENDED_PRESALE_ID: i64 = 110005;
pub const WHOLESALE_PRESALE_ID: i64 = 110006;
pub const CAN_NOT_ORDER_PRESALE_ID: i64 = 110007;
pub const UNDEFINED_STATUS_PRESALE_ID: i64 = 110008;
pub const UNDEFINED_TYPE_PRESALE_ID: i64 = 110009;
pub const RESTRICTED_PRESALE_ID: i64 = 110010;
/// Open presales with package 200100 selected for their SQ: of [`FOREIGN_ACCOUNT_ID`],
/// and of [`CLOSED_ACCOUNT_ID`].
pub const FOREIGN_PRESALE_ID: i64 = 110011;
pub const ORPHAN_PRESALE_ID: i64 = 110012;

/// SQs of the seeded presales, all for [`BUSINESS_SUPPORT_TYPE_ID`].
pub const COMPLETED_SQ_ID: i64 = 361001;
pub const PACKAGED_PRESALE_SQ_ID: i64 = 361002;
pub const PENDING_SQ_ID: i64 = 361003;
pub const PACKAGED_SQ_ID: i64 = 361004;
pub const FOREIGN_SQ_ID: i64 = 361011;
pub const ORPHAN_SQ_ID: i64 = 361012;
/// The service [`COMPLETED_PRESALE_ID`] created.
pub const COMPLETED_SERVICE_ID: i64 = 799001;
/// Services of [`FOREIGN_ACCOUNT_ID`] and of [`CLOSED_ACCOUNT_ID`].
pub const FOREIGN_SERVICE_ID: i64 = 799002;
pub const ORPHAN_SERVICE_ID: i64 = 799003;

/// First ids handed out to new objects.
pub const FIRST_ACCOUNT_ID: i64 = 250000;
pub const FIRST_PRESALE_ID: i64 = 120000;
pub const FIRST_SQ_ID: i64 = 362000;
pub const FIRST_SERVICE_ID: i64 = 800000;
pub const FIRST_NOTE_ID: i64 = 450000;
pub const FIRST_PAYMENT_ID: i64 = 470000;

/// Service types: check type NoSQ, AutoIdentifier, GeneralPhone, NWB; sellable without a
/// check type; not sellable.
pub const BUSINESS_SUPPORT_TYPE_ID: i64 = 100100;
pub const WEB_HOSTING_TYPE_ID: i64 = 100200;
pub const PHONE_LINE_TYPE_ID: i64 = 100300;
pub const NBN_TYPE_ID: i64 = 100400;
pub const LEGACY_FAX_TYPE_ID: i64 = 100500;
pub const RETIRED_DIALUP_TYPE_ID: i64 = 100600;

/// Package plans: each with one mandatory allowance of quantity 1, but the bundle, which
/// holds an NBN service and a phone line.
pub const BUSINESS_SUPPORT_BASIC_PLAN_ID: i64 = 200100;
pub const BUSINESS_SUPPORT_PLUS_PLAN_ID: i64 = 200101;
pub const HOSTING_STARTER_PLAN_ID: i64 = 200200;
pub const PHONE_BASIC_PLAN_ID: i64 = 200300;
pub const NBN_50_PLAN_ID: i64 = 200400;
pub const NBN_PHONE_BUNDLE_PLAN_ID: i64 = 200500;

/// Service plans of the allowances.
pub const BUSINESS_SUPPORT_SERVICE_PLAN_ID: i64 = 300100;
pub const HOSTING_SERVICE_PLAN_ID: i64 = 300200;
pub const PHONE_SERVICE_PLAN_ID: i64 = 300300;
pub const NBN_SERVICE_PLAN_ID: i64 = 300400;
/// A service plan no package provides, so it has no service type.
pub const UNTYPED_SERVICE_PLAN_ID: i64 = 300900;

/// Configuration properties: Site Name (String, mandatory), Support Tier (List, optional),
/// Domain (String, mandatory), Modem Serial (String, mandatory), Port (Integer, optional),
/// Directory Listing (List, mandatory).
pub const SITE_NAME_PROPERTY_ID: i64 = 500001;
pub const SUPPORT_TIER_PROPERTY_ID: i64 = 500002;
pub const DOMAIN_PROPERTY_ID: i64 = 500005;
pub const MODEM_SERIAL_PROPERTY_ID: i64 = 500010;
pub const PORT_PROPERTY_ID: i64 = 500011;
pub const DIRECTORY_LISTING_PROPERTY_ID: i64 = 500020;
pub const SUPPORT_TIERS: [&str; 2] = ["Gold", "Silver"];
pub const DIRECTORY_LISTINGS: [&str; 2] = ["Listed", "Unlisted"];

/// Feature types: After Hours (plan 300100, cannot have an identifier), Static IP (plan
/// 300400, must have one: the address), Voice Mail (plan 300300, may have one).
pub const AFTER_HOURS_FEATURE_ID: i64 = 600001;
pub const STATIC_IP_FEATURE_ID: i64 = 600010;
pub const VOICE_MAIL_FEATURE_ID: i64 = 600020;
/// The OptionType IDs every feature accepts: On (the default) and Off.
pub const FEATURE_ON_OPTION_ID: i64 = 1;
pub const FEATURE_OFF_OPTION_ID: i64 = 2;

/// The one contact type ("Technical"); its bounds differ per service plan.
pub const TECHNICAL_CONTACT_TYPE_ID: i64 = 700001;

/// Identifier types and realms.
pub const HOSTING_IDENTIFIER_TYPE_ID: i64 = 100161;
pub const PPPOE_IDENTIFIER_TYPE_ID: i64 = 100162;
pub const HOSTING_IDENTIFIER: &str = "Hosting Login";
pub const PPPOE_IDENTIFIER: &str = "PPPoE Username";
pub const HOSTING_REALM: &str = "hosting.example.net";
pub const NBN_REALMS: [&str; 2] = ["nbn.example.net", "fibre.example.net"];

/// Terms and conditions of plans 200100, 200101 and 200400; 200200 and 200300 have none.
pub const BUSINESS_SUPPORT_BASIC_TERMS_ID: i64 = 900001;
pub const BUSINESS_SUPPORT_PLUS_TERMS_ID: i64 = 900002;
pub const NBN_50_TERMS_ID: i64 = 900004;

/// NWB locations: "1 George St, Sydney NSW 2000" and "10 Queen St, Brisbane QLD 4000" are
/// serviceable; "5 Collins St, Melbourne VIC 3000" is not (its SQ is `NotQualified`).
pub const SYDNEY_LOCATION_ID: &str = "LOC000000000001";
pub const BRISBANE_LOCATION_ID: &str = "LOC000000000002";
pub const MELBOURNE_LOCATION_ID: &str = "LOC000000000003";

/// The smallest id with six digits: Emersion calls shorter ids invalid.
const SIX_DIGITS: i64 = 100_000;

/// Status of every service CompleteOrder creates (serviceLookup's subscription status
/// name, W `API/Services/serviceLookup`: "Preactive").
const PRE_ACTIVE: &str = "Preactive";

/// The SOAP services, each at `POST /{Service}`, and the operations each one offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Accounts,
    Orders,
    Services,
    Plans,
    RetailServices,
}

/// An operation: its name, and its request and response elements as the client writes
/// and reads them (the wire types' constants, so both sides follow the same page).
struct Op {
    name: &'static str,
    request: &'static str,
    response: &'static str,
}

const fn op<O: Operation>() -> Op {
    Op {
        name: O::NAME,
        request: O::REQUEST,
        response: O::RESPONSE,
    }
}

impl Service {
    const ALL: [Service; 5] = [
        Service::Accounts,
        Service::Orders,
        Service::Services,
        Service::Plans,
        Service::RetailServices,
    ];

    fn name(self) -> &'static str {
        match self {
            Service::Accounts => "Accounts",
            Service::Orders => "Orders",
            Service::Services => "Services",
            Service::Plans => "Plans",
            Service::RetailServices => "RetailServices",
        }
    }

    fn operations(self) -> &'static [Op] {
        use crate::billing::emersion::accounts as a;
        use crate::billing::emersion::wire as w;
        match self {
            Service::Accounts => {
                const {
                    &[
                        op::<a::MyGetAccountFromUsernameAndPassword>(),
                        op::<a::CheckUsernameAvailability>(),
                        op::<w::AddNote>(),
                    ]
                }
            }
            Service::Orders => {
                const {
                    &[
                        op::<w::StartOrder>(),
                        op::<w::PerformSimpleSQ>(),
                        op::<w::PerformGeneralPhoneSQ>(),
                        op::<w::FindNWBSQAddress>(),
                        op::<w::PerformNWBSQ>(),
                        op::<w::GetAvailablePackages>(),
                        op::<w::SelectPackagePlan>(),
                        op::<w::CompleteOrder>(),
                    ]
                }
            }
            Service::Services => {
                const {
                    &[
                        op::<a::CreateComplexAccount>(),
                        op::<w::GetServiceConfigurationRequirements>(),
                        op::<w::SetServiceConfiguration>(),
                        op::<w::GetServiceFeatureConfigurationRequirements>(),
                        op::<w::SetServiceFeatureSetup>(),
                        op::<w::GetServiceContactRequirements>(),
                        op::<w::SetServiceContacts>(),
                        op::<w::GetServiceIdentifierRequirements>(),
                        op::<w::GetServiceIdentifierRealm>(),
                        op::<w::SetServiceIdentifier>(),
                        op::<w::ServiceList>(),
                        op::<w::ServiceLookup>(),
                    ]
                }
            }
            Service::Plans => const { &[op::<w::GetTermsAndConditions>()] },
            Service::RetailServices => const { &[op::<w::CreatePayment>()] },
        }
    }

    /// The service offering the operation whose request element is `element`, with it.
    fn by_request(element: &str) -> Option<(Service, &'static Op)> {
        Service::ALL.into_iter().find_map(|s| {
            s.operations()
                .iter()
                .find(|o| o.request == element)
                .map(|o| (s, o))
        })
    }
}

/// The request element of `operation`, as the clients write it: for tests that build
/// envelopes by hand.
pub fn request_element(operation: &str) -> Option<&'static str> {
    Service::ALL
        .into_iter()
        .flat_map(|s| s.operations().iter())
        .find(|o| o.name == operation)
        .map(|o| o.request)
}

/// The response element of a known operation, as the clients read it.
pub fn response_element(operation: &str) -> &'static str {
    Service::ALL
        .into_iter()
        .flat_map(|s| s.operations().iter())
        .find(|o| o.name == operation)
        .map_or("Response", |o| o.response)
}

/// Operation names in the call log and the fault queue.
pub fn operations() -> impl Iterator<Item = &'static str> {
    Service::ALL
        .into_iter()
        .flat_map(|s| s.operations().iter().map(|o| o.name))
}

/// A refused call: the text is the faultstring of a Client fault, in Emersion's words.
#[derive(Debug)]
struct Rejection(String);

impl From<&str> for Rejection {
    fn from(text: &str) -> Self {
        Rejection(text.to_string())
    }
}

impl From<String> for Rejection {
    fn from(text: String) -> Self {
        Rejection(text)
    }
}

/// The Emersion state behind one lock: every call reads and changes it atomically.
pub(super) struct Store(Mutex<Emersion>);

impl Store {
    pub(super) fn seeded() -> Self {
        Store(Mutex::new(Emersion::seeded()))
    }

    // Every change validates before it mutates, so a poisoned lock still holds whole data.
    fn lock(&self) -> MutexGuard<'_, Emersion> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state as JSON, for `GET /_sim/state`.
    pub(super) fn snapshot(&self) -> serde_json::Value {
        self.lock().snapshot()
    }
}

struct Emersion {
    catalog: Catalog,
    accounts: BTreeMap<i64, Account>,
    presales: BTreeMap<i64, Presale>,
    services: BTreeMap<i64, CreatedService>,
    notes: Vec<Note>,
    payments: Vec<Payment>,
    ids: Ids,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum AccountStatus {
    Active,
    Suspended,
    Restricted,
}

impl AccountStatus {
    /// The status name Emersion prints in messages.
    fn name(self) -> &'static str {
        match self {
            AccountStatus::Active => "Active",
            AccountStatus::Suspended => "Suspended",
            AccountStatus::Restricted => "Restricted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum AccountType {
    Retail,
    Wholesale,
}

#[derive(Debug, Clone, Serialize)]
struct Account {
    account_id: i64,
    username: Option<String>,
    /// Compared by GetAccountFromUsernameAndPassword, never shown.
    #[serde(skip)]
    password: Option<String>,
    /// `None` is an account whose status is not defined.
    status: Option<AccountStatus>,
    /// `None` is an account whose type is not defined.
    account_type: Option<AccountType>,
    /// Emersion's "can not order" flag, set on the account's status or its type.
    can_not_order: bool,
    /// AccountReference of an account created through the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    /// An order restriction in place: StartOrder refuses naming it.
    #[serde(skip_serializing_if = "Option::is_none")]
    restriction_id: Option<i64>,
    /// Another provider's customer rather than one of the caller's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    foreign: bool,
    /// Its orders need a credit check before CompleteOrder.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    needs_credit_check: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Presale {
    presale_id: i64,
    account_id: i64,
    purchase_order: Option<String>,
    promo_code: Option<String>,
    completed: bool,
    package_plan_id: Option<i64>,
    sqs: Vec<Sq>,
}

impl Presale {
    fn open(presale_id: i64, account_id: i64) -> Self {
        Presale {
            presale_id,
            account_id,
            purchase_order: None,
            promo_code: None,
            completed: false,
            package_plan_id: None,
            sqs: Vec::new(),
        }
    }

    /// The successful SQs: packages are offered for their service types.
    fn qualified(&self) -> impl Iterator<Item = &Sq> {
        self.sqs
            .iter()
            .filter(|sq| sq.result == SqResult::Qualified)
    }
}

/// Which SQ method qualified a service, with what only that method takes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
enum SqMethod {
    Simple,
    GeneralPhone {
        transfer_type: String,
        identifier: Option<String>,
    },
    Nwb {
        transfer_type: String,
        fnn: Option<String>,
        location_id: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum SqResult {
    Pending,
    Qualified,
    NotQualified,
}

#[derive(Debug, Clone, Serialize)]
struct Sq {
    sq_id: i64,
    service_type_id: i64,
    #[serde(flatten)]
    method: SqMethod,
    result: SqResult,
    package_plan_id: Option<i64>,
    /// Property TypeID → value.
    configuration: BTreeMap<i64, String>,
    /// Feature Type ID → what was set.
    features: BTreeMap<i64, FeatureChoice>,
    contacts: Vec<Contact>,
    identifier: Option<ServiceIdentifier>,
}

impl Sq {
    fn new(sq_id: i64, service_type_id: i64, method: SqMethod, result: SqResult) -> Self {
        Sq {
            sq_id,
            service_type_id,
            method,
            result,
            package_plan_id: None,
            configuration: BTreeMap::new(),
            features: BTreeMap::new(),
            contacts: Vec::new(),
            identifier: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct FeatureChoice {
    option_type_id: i64,
    identifier: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Contact {
    type_id: i64,
    title: String,
    first_name: String,
    last_name: String,
    date_of_birth: Option<NaiveDate>,
    email: String,
    phone: String,
}

/// The identifier set on an SQ; its password is checked, never kept.
#[derive(Debug, Clone, Serialize)]
struct ServiceIdentifier {
    username: String,
    realm: String,
}

#[derive(Debug, Clone, Serialize)]
struct CreatedService {
    service_id: i64,
    /// The phone SQ's number or the NWB SQ's FNN, else one the platform makes up.
    service_identifier: String,
    account_id: i64,
    presale_id: i64,
    sq_id: i64,
    package_plan_id: i64,
    service_plan_id: i64,
    service_type_id: i64,
    status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Note {
    note_id: i64,
    object_type_id: i64,
    object_id: i64,
    subject: String,
    detail: String,
}

#[derive(Debug, Clone, Serialize)]
struct Payment {
    payment_id: i64,
    account_id: i64,
    transaction_category: String,
    reference: String,
    amount: Decimal,
    transaction_date: NaiveDate,
}

/// Id counters.
struct Ids {
    account: i64,
    presale: i64,
    sq: i64,
    service: i64,
    note: i64,
    payment: i64,
}

/// pinned: the identifier of a service whose SQ named none ("SVC" and its id).
fn made_up_identifier(service_id: i64) -> String {
    format!("SVC{service_id}")
}

fn next(counter: &mut i64) -> i64 {
    let id = *counter;
    *counter += 1;
    id
}

impl Emersion {
    fn seeded() -> Self {
        let mut em = Emersion {
            catalog: Catalog::seeded(),
            accounts: BTreeMap::new(),
            presales: BTreeMap::new(),
            services: BTreeMap::new(),
            notes: Vec::new(),
            payments: Vec::new(),
            ids: Ids {
                account: FIRST_ACCOUNT_ID,
                presale: FIRST_PRESALE_ID,
                sq: FIRST_SQ_ID,
                service: FIRST_SERVICE_ID,
                note: FIRST_NOTE_ID,
                payment: FIRST_PAYMENT_ID,
            },
        };
        use AccountStatus::{Active, Restricted, Suspended};
        use AccountType::{Retail, Wholesale};
        let accounts = [
            (ACTIVE_ACCOUNT_ID, Some(Active), Some(Retail), false),
            (SUSPENDED_ACCOUNT_ID, Some(Suspended), Some(Retail), false),
            (WHOLESALE_ACCOUNT_ID, Some(Active), Some(Wholesale), false),
            (CAN_NOT_ORDER_ACCOUNT_ID, Some(Active), Some(Retail), true),
            (UNDEFINED_STATUS_ACCOUNT_ID, None, Some(Retail), false),
            (UNDEFINED_TYPE_ACCOUNT_ID, Some(Active), None, false),
            (RESTRICTED_ACCOUNT_ID, Some(Restricted), Some(Retail), false),
            (
                ORDER_RESTRICTED_ACCOUNT_ID,
                Some(Active),
                Some(Retail),
                false,
            ),
            (FOREIGN_ACCOUNT_ID, Some(Active), Some(Retail), false),
            (CREDIT_CHECK_ACCOUNT_ID, Some(Active), Some(Retail), false),
        ];
        for (account_id, status, account_type, can_not_order) in accounts {
            let (username, password) = if account_id == ACTIVE_ACCOUNT_ID {
                (
                    Some(ACTIVE_ACCOUNT_USERNAME.to_string()),
                    Some(ACTIVE_ACCOUNT_PASSWORD.to_string()),
                )
            } else {
                (None, None)
            };
            let account = Account {
                account_id,
                username,
                password,
                status,
                account_type,
                can_not_order,
                reference: None,
                restriction_id: (account_id == ORDER_RESTRICTED_ACCOUNT_ID)
                    .then_some(ORDER_RESTRICTION_ID),
                foreign: account_id == FOREIGN_ACCOUNT_ID,
                needs_credit_check: account_id == CREDIT_CHECK_ACCOUNT_ID,
            };
            em.accounts.insert(account_id, account);
        }

        let support_sq = |sq_id, result, package_plan_id| Sq {
            package_plan_id,
            ..Sq::new(sq_id, BUSINESS_SUPPORT_TYPE_ID, SqMethod::Simple, result)
        };
        let basic = Some(BUSINESS_SUPPORT_BASIC_PLAN_ID);
        let mut completed = Presale::open(COMPLETED_PRESALE_ID, ACTIVE_ACCOUNT_ID);
        completed.completed = true;
        completed.package_plan_id = basic;
        completed
            .sqs
            .push(support_sq(COMPLETED_SQ_ID, SqResult::Qualified, basic));
        let mut packaged = Presale::open(PACKAGED_PRESALE_ID, ACTIVE_ACCOUNT_ID);
        packaged.package_plan_id = basic;
        packaged.sqs.push(support_sq(
            PACKAGED_PRESALE_SQ_ID,
            SqResult::Qualified,
            basic,
        ));
        let mut pending = Presale::open(PENDING_SQ_PRESALE_ID, ACTIVE_ACCOUNT_ID);
        pending
            .sqs
            .push(support_sq(PENDING_SQ_ID, SqResult::Pending, None));
        let mut packaged_sq = Presale::open(PACKAGED_SQ_PRESALE_ID, ACTIVE_ACCOUNT_ID);
        packaged_sq
            .sqs
            .push(support_sq(PACKAGED_SQ_ID, SqResult::Qualified, basic));
        let packaged_of = |presale_id, account_id, sq_id| {
            let mut presale = Presale::open(presale_id, account_id);
            presale.package_plan_id = basic;
            presale
                .sqs
                .push(support_sq(sq_id, SqResult::Qualified, basic));
            presale
        };
        let foreign = packaged_of(FOREIGN_PRESALE_ID, FOREIGN_ACCOUNT_ID, FOREIGN_SQ_ID);
        let orphan = packaged_of(ORPHAN_PRESALE_ID, CLOSED_ACCOUNT_ID, ORPHAN_SQ_ID);
        for presale in [completed, packaged, pending, packaged_sq, foreign, orphan] {
            em.presales.insert(presale.presale_id, presale);
        }
        let refused = [
            (SUSPENDED_PRESALE_ID, SUSPENDED_ACCOUNT_ID),
            (WHOLESALE_PRESALE_ID, WHOLESALE_ACCOUNT_ID),
            (CAN_NOT_ORDER_PRESALE_ID, CAN_NOT_ORDER_ACCOUNT_ID),
            (UNDEFINED_STATUS_PRESALE_ID, UNDEFINED_STATUS_ACCOUNT_ID),
            (UNDEFINED_TYPE_PRESALE_ID, UNDEFINED_TYPE_ACCOUNT_ID),
            (RESTRICTED_PRESALE_ID, RESTRICTED_ACCOUNT_ID),
        ];
        for (presale_id, account_id) in refused {
            em.presales
                .insert(presale_id, Presale::open(presale_id, account_id));
        }

        let services = [
            (
                COMPLETED_SERVICE_ID,
                ACTIVE_ACCOUNT_ID,
                COMPLETED_PRESALE_ID,
                COMPLETED_SQ_ID,
            ),
            (
                FOREIGN_SERVICE_ID,
                FOREIGN_ACCOUNT_ID,
                FOREIGN_PRESALE_ID,
                FOREIGN_SQ_ID,
            ),
            (
                ORPHAN_SERVICE_ID,
                CLOSED_ACCOUNT_ID,
                ORPHAN_PRESALE_ID,
                ORPHAN_SQ_ID,
            ),
        ];
        for (service_id, account_id, presale_id, sq_id) in services {
            let service = CreatedService {
                service_id,
                service_identifier: made_up_identifier(service_id),
                account_id,
                presale_id,
                sq_id,
                package_plan_id: BUSINESS_SUPPORT_BASIC_PLAN_ID,
                service_plan_id: BUSINESS_SUPPORT_SERVICE_PLAN_ID,
                service_type_id: BUSINESS_SUPPORT_TYPE_ID,
                status: PRE_ACTIVE,
            };
            em.services.insert(service_id, service);
        }
        em
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "service_types": self.catalog.service_types(),
            "accounts": self.accounts.values().collect::<Vec<_>>(),
            "presales": self.presales.values().collect::<Vec<_>>(),
            "services": self.services.values().collect::<Vec<_>>(),
            "notes": self.notes,
            "payments": self.payments,
        })
    }
}

/// `POST /{Service}` for the four SOAP services.
pub(super) fn routes() -> Router<Simulator> {
    Router::new().route("/{service}", post(soap::endpoint))
}

#[derive(serde::Deserialize)]
struct RequirementChange {
    service_plan_id: i64,
    property_type_id: i64,
    mandatory: bool,
}

/// `POST /_sim/emersion/requirements`: a requirement changes without notice.
pub(super) fn control_routes() -> Router<Simulator> {
    Router::new().route(
        "/_sim/emersion/requirements",
        post(
            |axum::extract::State(sim): axum::extract::State<Simulator>,
             axum::Json(change): axum::Json<RequirementChange>| async move {
                let changed = sim.emersion().lock().catalog.set_mandatory(
                    change.service_plan_id,
                    change.property_type_id,
                    change.mandatory,
                );
                match changed {
                    Ok(()) => (
                        axum::http::StatusCode::OK,
                        axum::Json(serde_json::json!({"changed": true})),
                    ),
                    Err(Rejection(text)) => (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({"error": text})),
                    ),
                }
            },
        ),
    )
}
