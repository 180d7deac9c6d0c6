//! The renewal order's cart: `create_cart` (Requestor/RegisterID) and `renew` (REST
//! renewAdvancePay).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lookup::ServiceFound;
use super::{Ctx, RenewalStage};
use crate::billing::costguard::soap::KeyedId;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct CartCreated {
    pub cart: KeyedId,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Renewed {
    pub renewed_product_count: i64,
    pub service_information_item_id: Option<i64>,
}

/// CreateCart with the renewal's order type and register.
pub(super) async fn create_cart(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let cart = cx
        .client
        .create_cart(
            cx.env,
            found.customer_id,
            cx.data.order_type_id,
            Some(cx.data.register_id),
        )
        .await?;
    encode(CartCreated { cart: cart.cart_id })
}

/// renewAdvancePay of the service into the cart.
pub(super) async fn renew(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let created: CartCreated = cx.output(RenewalStage::CreateCart)?;
    let renewed = cx
        .client
        .renew_advance_pay(cx.env, created.cart.id, found.service_id)
        .await?;
    encode(Renewed {
        renewed_product_count: renewed.renewed_advance_pay_product_count,
        service_information_item_id: renewed.service_information_item_id,
    })
}
