//! pinned: reconciles `tender`, `submit` and `restore_submit` from the order read that no
//! IDI page documents (see `rest::OrderDetail`). Runs only with
//! COSTGUARD_PINNED_ORDER_PROBES on; against a platform without that read the probe
//! fails and the stage parks.

use serde_json::Value;

use super::amounts::{amount, tendered};
use super::pay::{CheckedOut, Submitted, Tendered};
use super::renew::CartCreated;
use super::{Ctx, RenewalStage};
use crate::billing::costguard::rest::OrderDetail;
use crate::money::RawAmount;
use crate::workflow::{encode, Probe, StageError};

pub(super) async fn probe(cx: &Ctx<'_>, stage: RenewalStage) -> Result<Probe<Value>, StageError> {
    use RenewalStage::*;
    let cart_stage = match stage {
        RestoreSubmit => RestoreCreateCart,
        Tender | Submit => CreateCart,
        _ => return Ok(Probe::Unavailable),
    };
    let created: CartCreated = cx.output(cart_stage)?;
    let order = cx.client.get_order(cx.env, created.cart.id).await?;
    match stage {
        Tender => tender(cx, created.cart.id, &order),
        _ => submitted(cx, created.cart.id, &order),
    }
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
