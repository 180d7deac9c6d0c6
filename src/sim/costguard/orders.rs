//! The order rules. Every operation validates first and changes the state only when the
//! whole call is accepted, so a refused call leaves no trace.

use axum::http::StatusCode;
use chrono::Utc;
use rust_decimal::Decimal;

use super::{next, Cart, CostGuard, Item, Tender};
use crate::billing::costguard::rest::{
    RenewAdvancePayResult, ServiceItemSummaries, ServiceItemSummary,
};

/// A business-rule refusal, sent as an `Error` message.
#[derive(Debug)]
pub(super) struct Rejection {
    pub code: &'static str,
    pub text: String,
}

fn reject(code: &'static str, text: String) -> Rejection {
    Rejection { code, text }
}

/// A refused renewAdvancePay, sent as a 4xx `RestErrors`.
#[derive(Debug)]
pub(super) struct RestRejection {
    pub status: StatusCode,
    pub field: &'static str,
    pub message: String,
}

pub(super) struct Restore {
    pub service_id: i64,
    pub reason_id: i64,
}

pub(super) struct CashTender {
    pub amount: Decimal,
    pub tender_type_id: Option<i64>,
    pub tender_status: String,
}

pub(super) struct NewCart {
    pub customer_id: i64,
    pub authenticated_key: String,
    pub order_type_id: i64,
    pub register_id: Option<i64>,
}

impl CostGuard {
    pub(super) fn cart(&self, cart_id: i64) -> Result<&Cart, Rejection> {
        self.carts
            .get(&cart_id)
            .ok_or_else(|| reject("CartNotFound", format!("Cart {cart_id} does not exist")))
    }

    /// A cart that may still change.
    fn open_cart(&self, cart_id: i64) -> Result<&Cart, Rejection> {
        let cart = self.cart(cart_id)?;
        if cart.submitted {
            return Err(reject(
                "CartSubmitted",
                format!("Cart {cart_id} has already been submitted and cannot be changed"),
            ));
        }
        Ok(cart)
    }

    fn open_cart_mut(&mut self, cart_id: i64) -> Result<&mut Cart, Rejection> {
        self.open_cart(cart_id)?;
        self.carts
            .get_mut(&cart_id)
            .ok_or_else(|| reject("CartNotFound", format!("Cart {cart_id} does not exist")))
    }

    pub(super) fn create_cart(&mut self, new: NewCart) -> Result<i64, Rejection> {
        if !self.is_customer(new.customer_id) {
            return Err(reject(
                "CustomerNotFound",
                format!("Customer {} does not exist", new.customer_id),
            ));
        }
        let cart_id = next(&mut self.ids.cart);
        let now = Utc::now();
        let cart = Cart {
            cart_id,
            customer_id: new.customer_id,
            authenticated_key: new.authenticated_key,
            order_type_id: new.order_type_id,
            register_id: new.register_id,
            items: Vec::new(),
            tenders: Vec::new(),
            checked_out_at: None,
            receipt_number: None,
            submitted: false,
            printed: None,
            created_at: now,
            modified_at: now,
        };
        self.carts.insert(cart_id, cart);
        Ok(cart_id)
    }

    pub(super) fn modify_cart(
        &mut self,
        cart_id: i64,
        restores: Vec<Restore>,
        tenders: Vec<CashTender>,
    ) -> Result<(), Rejection> {
        let cart = self.open_cart(cart_id)?;
        for restore in &restores {
            let service = self.services.get(&restore.service_id).ok_or_else(|| {
                reject(
                    "ServiceNotFound",
                    format!("Service {} does not exist", restore.service_id),
                )
            })?;
            if service.customer_id != cart.customer_id {
                return Err(reject(
                    "ServiceNotOnCustomer",
                    format!(
                        "Service {} does not belong to customer {}",
                        service.service_id, cart.customer_id
                    ),
                ));
            }
        }
        if !tenders.is_empty() {
            // Items added in the same call undo the checkout the tender relies on.
            if cart.checked_out_at.is_none() || !restores.is_empty() {
                return Err(reject(
                    "CartNotCheckedOut",
                    format!("Cart {cart_id} must be checked out before a tender is added"),
                ));
            }
            let offered: Decimal = tenders.iter().map(|t| t.amount).sum();
            let due = cart.amount_due();
            if offered != due {
                return Err(reject(
                    "TenderAmountMismatch",
                    format!("Tender amount {offered} does not equal the amount due {due}"),
                ));
            }
        }

        let ids = &mut self.ids;
        let now = Utc::now();
        let Some(cart) = self.carts.get_mut(&cart_id) else {
            return Err(reject(
                "CartNotFound",
                format!("Cart {cart_id} does not exist"),
            ));
        };
        if !restores.is_empty() {
            cart.checked_out_at = None;
        }
        for restore in restores {
            cart.items.push(Item::Restore {
                service_information_item_id: next(&mut ids.item),
                service_id: restore.service_id,
                reason_id: restore.reason_id,
            });
        }
        if !tenders.is_empty() && cart.receipt_number.is_none() {
            let register = cart.register_id.unwrap_or(1);
            let receipt = next(&mut ids.receipt);
            cart.receipt_number = Some(format!("STORE-{register:02}-{receipt:04}"));
        }
        for tender in tenders {
            cart.tenders.push(Tender {
                tender_information_item_id: next(&mut ids.item),
                amount: tender.amount,
                tender_type_id: tender.tender_type_id,
                tender_status: tender.tender_status,
            });
        }
        cart.modified_at = now;
        Ok(())
    }

    pub(super) fn checkout(&mut self, cart_id: i64) -> Result<(), Rejection> {
        let cart = self.open_cart_mut(cart_id)?;
        let now = Utc::now();
        cart.checked_out_at = Some(now);
        cart.modified_at = now;
        Ok(())
    }

    pub(super) fn submit_cart(&mut self, cart_id: i64) -> Result<(), Rejection> {
        let cart = self.cart(cart_id)?;
        if cart.submitted {
            return Err(reject(
                "CartSubmitted",
                format!("Cart {cart_id} has already been submitted"),
            ));
        }
        if cart.checked_out_at.is_none() {
            return Err(reject(
                "CartNotCheckedOut",
                format!("Cart {cart_id} must be checked out after its last change before it is submitted"),
            ));
        }
        let due = cart.amount_due();
        if !due.is_zero() {
            return Err(reject(
                "AmountDue",
                format!(
                    "Cart {cart_id} has {due} due: tenders must cover the amount due before submitting"
                ),
            ));
        }
        let cart = self.open_cart_mut(cart_id)?;
        cart.submitted = true;
        cart.modified_at = Utc::now();
        let items = cart.items.clone();
        for item in items {
            match item {
                Item::Restore { service_id, .. } => {
                    if let Some(service) = self.services.get_mut(&service_id) {
                        service.status = "Active".into();
                    }
                }
                Item::Renewal { service_id, .. } => {
                    if let Some(service) = self.services.get_mut(&service_id) {
                        service.renewal_count += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The service items on a cart as serviceItemSummary lists them: a restore item, and
    /// one item per renewAdvancePay however many price points it renewed.
    pub(super) fn service_items(&self, cart: &Cart) -> ServiceItemSummaries {
        let mut value: Vec<ServiceItemSummary> = Vec::new();
        for item in &cart.items {
            let (Item::Restore {
                service_information_item_id,
                service_id,
                ..
            }
            | Item::Renewal {
                service_information_item_id,
                service_id,
                ..
            }) = item;
            if value
                .iter()
                .any(|v| v.service_information_item_id == *service_information_item_id)
            {
                continue;
            }
            value.push(ServiceItemSummary {
                service_information_item_id: *service_information_item_id,
                service_id: *service_id,
                service_number: self
                    .services
                    .get(service_id)
                    .map(|s| s.service_number.clone()),
            });
        }
        ServiceItemSummaries {
            count: Some(i64::try_from(value.len()).unwrap_or(i64::MAX)),
            next_link: None,
            value,
        }
    }

    /// Adds one renewal item per active favorite price point of the service.
    pub(super) fn renew_advance_pay(
        &mut self,
        cart_id: i64,
        service_id: i64,
    ) -> Result<RenewAdvancePayResult, RestRejection> {
        let refuse = |status, field, message| RestRejection {
            status,
            field,
            message,
        };
        let cart = self.carts.get(&cart_id).ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                "Order",
                format!("Order {cart_id} was not found"),
            )
        })?;
        let service = self.services.get(&service_id).ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                "Service",
                format!("Service {service_id} was not found"),
            )
        })?;
        if service.customer_id != cart.customer_id {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Service",
                format!(
                    "Service {service_id} does not belong to customer {} of order {cart_id}",
                    cart.customer_id
                ),
            ));
        }
        if cart.submitted {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Order",
                format!("Order {cart_id} has already been submitted and cannot be changed"),
            ));
        }
        let active: Vec<_> = service
            .favorites
            .iter()
            .filter(|f| f.active)
            .cloned()
            .collect();
        if active.is_empty() {
            return Ok(RenewAdvancePayResult {
                renewed_advance_pay_product_count: 0,
                service_information_item_id: None,
            });
        }
        let printed = service.checkout.clone();
        let item_id = next(&mut self.ids.item);
        let Some(cart) = self.carts.get_mut(&cart_id) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "Order",
                format!("Order {cart_id} was not found"),
            ));
        };
        let count = active.len();
        cart.items.extend(active.into_iter().map(|f| Item::Renewal {
            service_information_item_id: item_id,
            service_id,
            service_advance_pay_id: f.service_advance_pay_id,
            price_point_id: f.price_point_id,
            description: f.description,
            price: f.price,
            tax: f.tax,
        }));
        if printed.is_some() {
            cart.printed = printed;
        }
        cart.checked_out_at = None;
        cart.modified_at = Utc::now();
        Ok(RenewAdvancePayResult {
            renewed_advance_pay_product_count: i64::try_from(count).unwrap_or(i64::MAX),
            service_information_item_id: Some(item_id),
        })
    }
}
