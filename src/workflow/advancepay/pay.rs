//! Paying the renewal order: `checkout` (Subtotal, TaxSubtotal), `tender` (a cash tender
//! of exactly the amount due) and `submit` (SubmitCart).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::amounts::{amount_due, bad_amount, totals};
use super::renew::CartCreated;
use super::{Ctx, RenewalStage};
use crate::billing::costguard::soap::{CartSummary, KeyedId};
use crate::money;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct CheckedOut {
    pub subtotal: Decimal,
    pub tax_subtotal: Decimal,
    /// Subtotal + TaxSubtotal: what the tender must cover.
    pub amount_due: Decimal,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Tendered {
    pub amount: Decimal,
    pub receipt_number: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Submitted {
    pub cart_id: i64,
    pub cart_item_count: Option<i64>,
    pub subtotal: Option<Decimal>,
    pub tax_subtotal: Option<Decimal>,
}

pub(super) async fn checkout(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let created: CartCreated = cx.output(RenewalStage::CreateCart)?;
    let summary = cx
        .client
        .checkout(cx.env, &created.cart)
        .await?
        .ok_or_else(|| {
            StageError::permanent("Checkout of the renewal order returned no CartSummary")
        })?;
    // A renewal is always paid: a zero or negative amount due fails here rather than
    // skipping the tender.
    encode(amount_due(&summary, cx.scale)?)
}

/// ModifyCart with a cash tender of the checkout's amount due.
pub(super) async fn tender(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let created: CartCreated = cx.output(RenewalStage::CreateCart)?;
    let checked: CheckedOut = cx.output(RenewalStage::Checkout)?;
    let due = money::check(checked.amount_due, cx.scale)
        .and_then(money::positive)
        .map_err(|e| bad_amount("amount due of the checkout output", e))?;
    let cart = cx
        .client
        .add_cash_tender(cx.env, &created.cart, due, cx.data.tender_type_id)
        .await?;
    encode(Tendered {
        amount: due,
        receipt_number: cart.receipt_number,
    })
}

pub(super) async fn submit(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let created: CartCreated = cx.output(RenewalStage::CreateCart)?;
    let summary = cx.client.submit_cart(cx.env, &created.cart).await?;
    encode(submitted(&created.cart, summary, cx.scale)?)
}

/// The output of a SubmitCart, its totals validated.
pub(super) fn submitted(
    cart: &KeyedId,
    summary: Option<CartSummary>,
    scale: u32,
) -> Result<Submitted, StageError> {
    let totals = summary
        .as_ref()
        .map(|s| totals("SubmitCart", s, scale))
        .transpose()?;
    Ok(Submitted {
        cart_id: cart.id,
        cart_item_count: summary.as_ref().map(|s| s.cart_item_count),
        subtotal: totals.map(|(subtotal, _, _)| subtotal),
        tax_subtotal: totals.map(|(_, tax, _)| tax),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::advancepay::amounts::tests::summary;

    #[test]
    fn submitted_totals_are_validated() {
        let cart = KeyedId {
            authenticated_key: "k".into(),
            id: 11,
        };
        let done = submitted(&cart, Some(summary("11.99", "2.35")), 2).unwrap();
        assert_eq!(done.subtotal, Some(Decimal::new(1199, 2)));
        assert!(submitted(&cart, Some(summary("NaN", "2.35")), 2).is_err());
        assert_eq!(submitted(&cart, None, 2).unwrap().subtotal, None);
    }
}
