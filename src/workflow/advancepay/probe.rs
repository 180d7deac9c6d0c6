//! Reconciles a non-idempotent stage from the order it worked on: CostGuard's order
//! lookup shows items, tenders and whether the order was submitted. A cart that may or
//! may not have been created has no id to look up.

use serde_json::{json, Value};

use super::amounts::{amount, tendered};
use super::lookup::ServiceFound;
use super::pay::{CheckedOut, Submitted, Tendered};
use super::renew::{CartCreated, Renewed};
use super::{Ctx, RenewalStage};
use crate::billing::costguard::rest::{OrderDetail, OrderItem};
use crate::billing::costguard::soap::ServiceDetail;
use crate::money::RawAmount;
use crate::workflow::{encode, Probe, StageError};

pub(super) async fn probe(cx: &Ctx<'_>, stage: RenewalStage) -> Result<Probe<Value>, StageError> {
    use RenewalStage::*;
    let cart_stage = match stage {
        RestoreAddItem | RestoreSubmit => RestoreCreateCart,
        Renew | Tender | Submit => CreateCart,
        _ => return Ok(Probe::Unavailable),
    };
    let created: CartCreated = cx.output(cart_stage)?;
    let order = cx.client.get_order(cx.env, created.cart.id).await?;
    match stage {
        RestoreAddItem => restore_item(cx, &order),
        Renew => renewal(cx, &order),
        Tender => tender(cx, created.cart.id, &order),
        _ => submitted(cx, created.cart.id, &order),
    }
}

/// The items of `action_type` for the command's service.
fn items_for<'o>(
    cx: &Ctx<'_>,
    order: &'o OrderDetail,
    action_type: &'static str,
) -> Result<Vec<&'o OrderItem>, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    Ok(order
        .items
        .iter()
        .filter(|i| i.action_type == action_type && i.service_id == found.service_id)
        .collect())
}

fn restore_item(cx: &Ctx<'_>, order: &OrderDetail) -> Result<Probe<Value>, StageError> {
    let items: Vec<ServiceDetail> = items_for(cx, order, "Restore")?
        .into_iter()
        .map(|i| ServiceDetail {
            action_type: Some(i.action_type.clone()),
            service_id: Some(i.service_id),
            service_number: None,
            service_information_item_id: Some(i.service_information_item_id),
        })
        .collect();
    if items.is_empty() {
        return Ok(Probe::NotApplied);
    }
    Ok(Probe::Applied(json!({ "service_details": items })))
}

fn renewal(cx: &Ctx<'_>, order: &OrderDetail) -> Result<Probe<Value>, StageError> {
    let renewed = items_for(cx, order, "AdvancePayRenewal")?;
    let Some(first) = renewed.first() else {
        return Ok(Probe::NotApplied);
    };
    encode(Renewed {
        renewed_product_count: i64::try_from(renewed.len()).unwrap_or(i64::MAX),
        service_information_item_id: Some(first.service_information_item_id),
    })
    .map(Probe::Applied)
}

/// Applied when the order holds tenders; they must add up to the amount due.
fn tender(cx: &Ctx<'_>, cart_id: i64, order: &OrderDetail) -> Result<Probe<Value>, StageError> {
    let checked: CheckedOut = cx.output(RenewalStage::Checkout)?;
    if order.tenders.is_empty() {
        return Ok(Probe::NotApplied);
    }
    let tendered = tendered(&order.tenders, cx.scale)?;
    if tendered != checked.amount_due {
        return Err(StageError::permanent(format!(
            "order {} holds tenders of {tendered}, not the {} due: a person must look",
            cart_id, checked.amount_due
        )));
    }
    encode(Tendered {
        amount: tendered,
        receipt_number: order.receipt_number.clone(),
    })
    .map(Probe::Applied)
}

/// `restore_submit` and `submit`: applied when the order is Submitted.
fn submitted(cx: &Ctx<'_>, cart_id: i64, order: &OrderDetail) -> Result<Probe<Value>, StageError> {
    if order.status != "Submitted" {
        return Ok(Probe::NotApplied);
    }
    let total = |what: &str, raw: &Option<RawAmount>| {
        raw.as_ref()
            .map(|raw| amount(&format!("order lookup {what}"), raw, cx.scale))
            .transpose()
    };
    encode(Submitted {
        cart_id,
        cart_item_count: Some(i64::try_from(order.items.len()).unwrap_or(i64::MAX)),
        subtotal: total("subtotal", &order.subtotal)?,
        tax_subtotal: total("taxSubtotal", &order.tax_subtotal)?,
    })
    .map(Probe::Applied)
}
