//! The restore order of a Hotlined service, before the renewal: `restore_create_cart`,
//! `restore_add_item`, `restore_checkout`, `restore_submit`.

use serde_json::{json, Value};

use super::amounts::totals;
use super::lookup::ServiceFound;
use super::pay::submitted;
use super::renew::CartCreated;
use super::{Ctx, RenewalStage};
use crate::contract::command::RestoreData;
use crate::workflow::{encode, StageError};

fn restore<'a>(cx: &Ctx<'a>) -> Result<&'a RestoreData, StageError> {
    cx.data
        .restore
        .as_ref()
        .ok_or_else(|| StageError::permanent("restore stage without data.restore"))
}

/// CreateCart with the restore order type.
pub(super) async fn create_cart(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let restore = restore(cx)?;
    let cart = cx
        .client
        .create_cart(cx.env, found.customer_id, restore.order_type_id, None)
        .await?;
    encode(CartCreated { cart: cart.cart_id })
}

/// ModifyCart: ServiceInformationItemForRestore with the restore reason.
pub(super) async fn add_item(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let created: CartCreated = cx.output(RenewalStage::RestoreCreateCart)?;
    let restore = restore(cx)?;
    let cart = cx
        .client
        .add_restore_item(cx.env, &created.cart, found.service_id, restore.reason_id)
        .await?;
    Ok(json!({ "service_details": cart.service_details }))
}

/// Checkout of the restore order; its amounts, when it has any, are validated.
pub(super) async fn checkout(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let created: CartCreated = cx.output(RenewalStage::RestoreCreateCart)?;
    let summary = cx.client.checkout(cx.env, &created.cart).await?;
    if let Some(summary) = &summary {
        totals("Checkout", summary, cx.scale)?;
    }
    Ok(json!({ "summary": summary }))
}

/// SubmitCart of the restore order.
pub(super) async fn submit(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let created: CartCreated = cx.output(RenewalStage::RestoreCreateCart)?;
    let summary = cx.client.submit_cart(cx.env, &created.cart).await?;
    encode(submitted(&created.cart, summary, cx.scale)?)
}
