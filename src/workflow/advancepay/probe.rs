//! Reconciles a non-idempotent stage from the order it worked on. The documented read is
//! Order Management's serviceItemSummary (the service items on an order): it settles
//! `renew` and `restore_add_item`, which each add the command's service to their order.
//! Tenders and submission show in no documented read: those stages use the pinned order
//! read only when COSTGUARD_PINNED_ORDER_PROBES is on ([`super::pinned_probe`]), else they
//! park. A cart that may or may not have been created has no id to look up.

use serde_json::{json, Value};

use super::lookup::{Eligible, ServiceFound};
use super::renew::{CartCreated, Renewed};
use super::{pinned_probe, Ctx, RenewalStage};
use crate::billing::costguard::rest::ServiceItemSummary;
use crate::billing::costguard::soap::ServiceDetail;
use crate::workflow::{encode, Probe, StageError};

pub(super) async fn probe(cx: &Ctx<'_>, stage: RenewalStage) -> Result<Probe<Value>, StageError> {
    use RenewalStage::*;
    match stage {
        RestoreAddItem => {
            let Some(item) = service_item(cx, RestoreCreateCart).await? else {
                return Ok(Probe::NotApplied);
            };
            Ok(Probe::Applied(restored(item)))
        }
        Renew => {
            let Some(item) = service_item(cx, CreateCart).await? else {
                return Ok(Probe::NotApplied);
            };
            renewed(cx, item).map(Probe::Applied)
        }
        RestoreSubmit | Tender | Submit if cx.pinned_order_probes => {
            pinned_probe::probe(cx, stage).await
        }
        _ => Ok(Probe::Unavailable),
    }
}

/// The command's service on the order `cart_stage` created, if it is there. Its absence
/// counts only when the answer is the whole list: a later page could hold it.
async fn service_item(
    cx: &Ctx<'_>,
    cart_stage: RenewalStage,
) -> Result<Option<ServiceItemSummary>, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let created: CartCreated = cx.output(cart_stage)?;
    let order_id = created.cart.id;
    let page = cx.client.service_item_summary(cx.env, order_id).await?;
    let complete = page.is_complete();
    match page
        .value
        .into_iter()
        .find(|i| i.service_id == found.service_id)
    {
        Some(item) => Ok(Some(item)),
        None if complete => Ok(None),
        None => Err(StageError::permanent(format!(
            "serviceItemSummary of order {order_id} lists only part of its items and not \
             service {}: a person must look",
            found.service_id
        ))),
    }
}

/// What `restore_add_item` returns, from the restore order's item for the service.
fn restored(item: ServiceItemSummary) -> Value {
    let detail = ServiceDetail {
        action_type: None,
        service_id: Some(item.service_id),
        service_number: item.service_number,
        service_information_item_id: Some(item.service_information_item_id),
    };
    json!({ "service_details": [detail] })
}

/// What `renew` returns. renewAdvancePay renews every active favorite price point under
/// the service's one item; the summary lists the item, so the count is those favorites.
fn renewed(cx: &Ctx<'_>, item: ServiceItemSummary) -> Result<Value, StageError> {
    let eligible: Eligible = cx.output(RenewalStage::CheckFavorites)?;
    encode(Renewed {
        renewed_product_count: i64::try_from(eligible.price_points.len()).unwrap_or(i64::MAX),
        service_information_item_id: Some(item.service_information_item_id),
    })
}
