//! Simulated CostGuard (IDI Billing): services with favorite AdvancePay price points, and
//! Order Placement carts with the rules of the renewal and restore orders (seed 003), which
//! the order lookup shows as orders.
//!
//! Odd amounts: `POST /_sim/services` takes `"checkout": {"subtotal": "<text>",
//! "tax_subtotal": "<text>"}` (each optional), any text at all (`-11.99`, `1e5`, `NaN`,
//! ``). A cart renewing that service then prints these texts verbatim as the `Subtotal`
//! and `TaxSubtotal` of its Checkout and SubmitCart answers and of the order lookup;
//! the price points still decide what the cart costs (the amount due a tender must match).
//! Prices, taxes and tenders must be plain decimals below `money::LIMIT`, so the
//! simulator's own sums cannot overflow.

pub(crate) mod login;
mod orders;
mod rest;
mod soap;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{ops_error, ops_json, Simulator};
use crate::money;

pub use login::{DEFAULT_TOKEN_LIFETIME, SIM_LOGIN_PASSWORD, SIM_LOGIN_USERNAME};

/// Seeded service number of an `Active` service with one active favorite (the seed's numbers).
pub const ACTIVE_SERVICE: &str = "5555555555";
pub const ACTIVE_CUSTOMER_ID: i64 = 10;
pub const ACTIVE_SERVICE_ID: i64 = 169053;
/// Seeded `Hotlined` service with an active favorite: needs the restore order.
pub const HOTLINED_SERVICE: &str = "5555550002";
pub const HOTLINED_CUSTOMER_ID: i64 = 11;
pub const HOTLINED_SERVICE_ID: i64 = 169054;
/// Seeded `Active` service whose only favorite is inactive: not eligible for renewal.
pub const INELIGIBLE_SERVICE: &str = "5555550003";
pub const INELIGIBLE_CUSTOMER_ID: i64 = 12;
pub const INELIGIBLE_SERVICE_ID: i64 = 169055;
/// Price and tax of every seeded favorite price point; their sum is the tender (14.34).
pub const RENEWAL_PRICE: Decimal = Decimal::from_parts(1199, 0, 0, false, 2);
pub const RENEWAL_TAX: Decimal = Decimal::from_parts(235, 0, 0, false, 2);
pub const RENEWAL_DESCRIPTION: &str = "30 Day Unlimited";
const CATALOG_ID: i64 = 18;
const PRICE_POINT_ID: i64 = 77;

/// Operation names in the call log and the fault queue.
pub const OPERATIONS: [&str; 9] = [
    "ServiceNumberDetail",
    "favoriteAdvancePayPricePoint",
    "renewAdvancePay",
    "serviceItemSummary",
    "getOrder",
    "CreateCart",
    "ModifyCart",
    "Checkout",
    "SubmitCart",
];

/// The CostGuard state behind one lock: every call reads and changes it atomically.
pub(super) struct Store(Mutex<CostGuard>);

impl Store {
    pub(super) fn seeded() -> Self {
        Store(Mutex::new(CostGuard::seeded()))
    }

    // Every change validates before it mutates, so a poisoned lock still holds whole data.
    fn lock(&self) -> MutexGuard<'_, CostGuard> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state as JSON, for `GET /_sim/state`.
    pub(super) fn snapshot(&self) -> serde_json::Value {
        self.lock().snapshot()
    }
}

struct CostGuard {
    services: BTreeMap<i64, Service>,
    carts: BTreeMap<i64, Cart>,
    ids: Ids,
}

#[derive(Debug, Clone, Serialize)]
struct Service {
    service_number: String,
    customer_id: i64,
    service_id: i64,
    status: String,
    renewal_count: u32,
    favorites: Vec<Favorite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout: Option<PrintedTotals>,
}

/// Texts a cart prints instead of its computed totals (see the module comment).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PrintedTotals {
    subtotal: Option<String>,
    tax_subtotal: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Favorite {
    service_advance_pay_id: i64,
    catalog_id: i64,
    price_point_id: i64,
    description: String,
    active: bool,
    price: Decimal,
    tax: Decimal,
}

#[derive(Debug, Clone)]
struct Cart {
    cart_id: i64,
    customer_id: i64,
    /// Echoed in `CartID`, as CostGuard does with the key CreateCart was given.
    authenticated_key: String,
    order_type_id: i64,
    register_id: Option<i64>,
    items: Vec<Item>,
    tenders: Vec<Tender>,
    /// Set by Checkout, cleared by any later change to the items.
    checked_out_at: Option<DateTime<Utc>>,
    receipt_number: Option<String>,
    submitted: bool,
    /// Copied from the renewed service by renewAdvancePay.
    printed: Option<PrintedTotals>,
    created_at: DateTime<Utc>,
    modified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Item {
    Restore {
        service_information_item_id: i64,
        service_id: i64,
        reason_id: i64,
    },
    /// One favorite price point sold by renewAdvancePay.
    Renewal {
        service_information_item_id: i64,
        service_id: i64,
        service_advance_pay_id: i64,
        price_point_id: i64,
        description: String,
        price: Decimal,
        tax: Decimal,
    },
}

#[derive(Debug, Clone, Serialize)]
struct Tender {
    tender_information_item_id: i64,
    amount: Decimal,
    tender_type_id: Option<i64>,
    tender_status: String,
}

/// Id counters; they start at the seed's example values.
struct Ids {
    cart: i64,
    item: i64,
    customer: i64,
    service: i64,
    advance_pay: i64,
    receipt: i64,
}

fn next(counter: &mut i64) -> i64 {
    let id = *counter;
    *counter += 1;
    id
}

impl Cart {
    fn renewals(&self) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        self.items.iter().filter_map(|item| match item {
            Item::Renewal { price, tax, .. } => Some((*price, *tax)),
            Item::Restore { .. } => None,
        })
    }

    /// Priced items: restore items cost nothing and are not counted.
    fn item_count(&self) -> usize {
        self.renewals().count()
    }

    // The sums below cannot overflow: every price, tax and tender is below money::LIMIT.
    fn subtotal(&self) -> Decimal {
        self.renewals().map(|(price, _)| price).sum()
    }

    fn tax_subtotal(&self) -> Decimal {
        self.renewals().map(|(_, tax)| tax).sum()
    }

    fn tendered(&self) -> Decimal {
        self.tenders.iter().map(|t| t.amount).sum()
    }

    fn amount_due(&self) -> Decimal {
        self.subtotal() + self.tax_subtotal() - self.tendered()
    }

    /// `Subtotal` and `TaxSubtotal` as the cart prints them.
    fn printed_totals(&self) -> (String, String) {
        let printed = self.printed.clone().unwrap_or_default();
        (
            printed
                .subtotal
                .unwrap_or_else(|| self.subtotal().to_string()),
            printed
                .tax_subtotal
                .unwrap_or_else(|| self.tax_subtotal().to_string()),
        )
    }

    fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "cart_id": self.cart_id,
            "customer_id": self.customer_id,
            "order_type_id": self.order_type_id,
            "register_id": self.register_id,
            "items": self.items,
            "checked_out": self.checked_out_at.is_some(),
            "subtotal": self.subtotal(),
            "tax_subtotal": self.tax_subtotal(),
            "amount_due": self.amount_due(),
            "tenders": self.tenders,
            "receipt_number": self.receipt_number,
            "submitted": self.submitted,
        })
    }
}

/// A favorite of `POST /_sim/services`; every field may be left out.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewFavorite {
    description: String,
    active: bool,
    price: Decimal,
    tax: Decimal,
}

impl Default for NewFavorite {
    fn default() -> Self {
        NewFavorite {
            description: RENEWAL_DESCRIPTION.into(),
            active: true,
            price: RENEWAL_PRICE,
            tax: RENEWAL_TAX,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewService {
    service_number: String,
    #[serde(default = "active_status")]
    status: String,
    #[serde(default = "default_favorites")]
    favorites: Vec<NewFavorite>,
    #[serde(default)]
    checkout: Option<PrintedTotals>,
}

fn active_status() -> String {
    "Active".into()
}

fn default_favorites() -> Vec<NewFavorite> {
    vec![NewFavorite::default()]
}

impl CostGuard {
    fn seeded() -> Self {
        let mut cg = CostGuard {
            services: BTreeMap::new(),
            carts: BTreeMap::new(),
            ids: Ids {
                cart: 7010,
                item: 88443,
                customer: 13,
                service: 169056,
                advance_pay: 9001,
                receipt: 76,
            },
        };
        let seeds = [
            (
                ACTIVE_SERVICE,
                ACTIVE_CUSTOMER_ID,
                ACTIVE_SERVICE_ID,
                "Active",
                true,
            ),
            (
                HOTLINED_SERVICE,
                HOTLINED_CUSTOMER_ID,
                HOTLINED_SERVICE_ID,
                "Hotlined",
                true,
            ),
            (
                INELIGIBLE_SERVICE,
                INELIGIBLE_CUSTOMER_ID,
                INELIGIBLE_SERVICE_ID,
                "Active",
                false,
            ),
        ];
        for (number, customer_id, service_id, status, active) in seeds {
            let favorite = NewFavorite {
                active,
                ..NewFavorite::default()
            };
            cg.insert_service(
                number.into(),
                customer_id,
                service_id,
                status.into(),
                vec![favorite],
                None,
            );
        }
        cg
    }

    fn insert_service(
        &mut self,
        service_number: String,
        customer_id: i64,
        service_id: i64,
        status: String,
        favorites: Vec<NewFavorite>,
        checkout: Option<PrintedTotals>,
    ) {
        let favorites = favorites
            .into_iter()
            .map(|f| Favorite {
                service_advance_pay_id: next(&mut self.ids.advance_pay),
                catalog_id: CATALOG_ID,
                price_point_id: PRICE_POINT_ID,
                description: f.description,
                active: f.active,
                price: f.price,
                tax: f.tax,
            })
            .collect();
        let service = Service {
            service_number,
            customer_id,
            service_id,
            status,
            renewal_count: 0,
            favorites,
            checkout,
        };
        self.services.insert(service_id, service);
    }

    fn by_number(&self, service_number: &str) -> Option<&Service> {
        self.services
            .values()
            .find(|s| s.service_number == service_number)
    }

    fn is_customer(&self, customer_id: i64) -> bool {
        self.services.values().any(|s| s.customer_id == customer_id)
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "services": self.services.values().collect::<Vec<_>>(),
            "carts": self.carts.values().map(Cart::view).collect::<Vec<_>>(),
        })
    }
}

pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route(
            "/customer/1xa/{env}/CoreDataService/ServiceNumberDetail()",
            get(rest::service_number_detail),
        )
        .route(
            "/ServiceAndFeatureManagement/2x/{env}/api/service/{service_id}/favoriteAdvancePayPricePoint",
            get(rest::favorite_price_points),
        )
        .route(
            "/OrderManagement/2x/{env}/api/order/{order_id}",
            get(rest::order),
        )
        .route(
            "/OrderManagement/2x/{env}/api/order/{order_id}/serviceItemSummary",
            get(rest::service_item_summary),
        )
        .route(
            "/OrderManagement/2x/{env}/api/order/{order_id}/renewAdvancePay/{service_id}",
            post(rest::renew_advance_pay),
        )
        .route("/orderplacement/1xa/{env}/", post(soap::order_placement))
        .route("/_sim/services", post(add_service))
}

/// `POST /_sim/services`: a new customer with one service, for cases the seed lacks;
/// `checkout` sets the texts its carts print as totals (see the module comment).
async fn add_service(State(sim): State<Simulator>, body: Bytes) -> Response {
    let new: NewService = match ops_json(&body) {
        Ok(new) => new,
        Err(message) => return ops_error(StatusCode::BAD_REQUEST, message),
    };
    if new.service_number.is_empty() || new.status.is_empty() {
        return ops_error(
            StatusCode::BAD_REQUEST,
            "service_number and status must not be empty",
        );
    }
    for favorite in &new.favorites {
        for amount in [favorite.price, favorite.tax] {
            if let Err(e) = money::check(amount, money::MAX_SCALE) {
                return ops_error(StatusCode::BAD_REQUEST, format!("favorites: {e}"));
            }
        }
    }
    let mut cg = sim.costguard().lock();
    if cg.by_number(&new.service_number).is_some() {
        return ops_error(
            StatusCode::CONFLICT,
            format!("service number {:?} already exists", new.service_number),
        );
    }
    let customer_id = next(&mut cg.ids.customer);
    let service_id = next(&mut cg.ids.service);
    cg.insert_service(
        new.service_number,
        customer_id,
        service_id,
        new.status,
        new.favorites,
        new.checkout,
    );
    let created = serde_json::json!({ "customer_id": customer_id, "service_id": service_id });
    (StatusCode::CREATED, Json(created)).into_response()
}
