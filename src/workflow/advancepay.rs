//! `advancepay.renew`: the AdvancePay renewal of seed 003, one stage per CostGuard call.
//! Every amount CostGuard answers is validated (`crate::money`) for the currency's scale
//! before it is used or passed on; a bad one fails its stage permanently.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{output_of, Effect, Outputs, Probe, StageDone, StageError};
use crate::billing::costguard::rest::{FavoritePricePoint, OrderTender};
use crate::billing::costguard::soap::{CartSummary, KeyedId, ServiceDetail};
use crate::billing::costguard::{CostGuardClient, CostGuardError};
use crate::command::RenewData;
use crate::money::{self, MoneyError, RawAmount};

pub const WORKFLOW: &str = "advancepay_renewal";

/// Every stage in the order it can run; the restore stages run only for a Hotlined
/// service when the command asks for a restore.
pub const STAGES: &[(&str, Effect)] = &[
    ("lookup_service", Effect::Repeatable),
    ("check_favorites", Effect::Repeatable),
    ("restore_create_cart", Effect::NonIdempotent),
    ("restore_add_item", Effect::NonIdempotent),
    ("restore_checkout", Effect::Repeatable),
    ("restore_submit", Effect::NonIdempotent),
    ("create_cart", Effect::NonIdempotent),
    ("renew", Effect::NonIdempotent),
    ("checkout", Effect::Repeatable),
    ("tender", Effect::NonIdempotent),
    ("submit", Effect::NonIdempotent),
];

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceFound {
    pub customer_id: i64,
    pub service_id: i64,
    pub service_status: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Eligible {
    pub price_points: Vec<FavoritePricePoint>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CartCreated {
    pub cart: KeyedId,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Renewed {
    pub renewed_product_count: i64,
    pub service_information_item_id: Option<i64>,
}

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

fn done<T: Serialize>(output: T, next: Option<&'static str>) -> Result<StageDone, StageError> {
    let output = serde_json::to_value(output)
        .map_err(|e| StageError::permanent(format!("cannot encode stage output: {e}")))?;
    Ok(StageDone { output, next })
}

fn wants_restore(data: &RenewData, found: &ServiceFound) -> bool {
    data.restore.is_some() && found.service_status.eq_ignore_ascii_case("Hotlined")
}

/// A stage fails permanently on a bad amount: the platform's answer will not improve.
fn bad_amount(what: &str, err: MoneyError) -> StageError {
    StageError::permanent(format!("{what}: {err}"))
}

/// One amount of a platform answer, validated; `what` names it in the error.
fn amount(what: &str, raw: &RawAmount, scale: u32) -> Result<Decimal, StageError> {
    raw.validate(scale)
        .and_then(money::not_negative)
        .map_err(|e| bad_amount(what, e))
}

/// Subtotal and TaxSubtotal of a cart summary, validated, and their checked sum.
fn totals(
    operation: &str,
    summary: &CartSummary,
    scale: u32,
) -> Result<(Decimal, Decimal, Decimal), StageError> {
    let subtotal = amount(&format!("{operation} Subtotal"), &summary.subtotal, scale)?;
    let tax = amount(
        &format!("{operation} TaxSubtotal"),
        &summary.tax_subtotal,
        scale,
    )?;
    let due = money::add(subtotal, tax).map_err(|e| {
        bad_amount(
            &format!(
                "{operation} Subtotal {:?} + TaxSubtotal {:?}",
                summary.subtotal.as_str(),
                summary.tax_subtotal.as_str()
            ),
            e,
        )
    })?;
    Ok((subtotal, tax, due))
}

/// The amount due of a renewal checkout: it must be positive, as the tender pays it.
fn amount_due(summary: &CartSummary, scale: u32) -> Result<CheckedOut, StageError> {
    let (subtotal, tax_subtotal, due) = totals("Checkout", summary, scale)?;
    let amount_due = money::positive(due).map_err(|e| {
        bad_amount(
            &format!(
                "Checkout amount due (Subtotal {:?} + TaxSubtotal {:?})",
                summary.subtotal.as_str(),
                summary.tax_subtotal.as_str()
            ),
            e,
        )
    })?;
    Ok(CheckedOut {
        subtotal,
        tax_subtotal,
        amount_due,
    })
}

/// What the tenders on an order add up to, each amount validated.
fn tendered(tenders: &[OrderTender], scale: u32) -> Result<Decimal, StageError> {
    let amounts = tenders
        .iter()
        .map(|t| amount("order lookup tender amount", &t.amount, scale))
        .collect::<Result<Vec<_>, _>>()?;
    money::sum(amounts).map_err(|e| bad_amount("order lookup tenders", e))
}

pub async fn run(
    client: &CostGuardClient,
    env: &str,
    scale: u32,
    data: &RenewData,
    stage: &str,
    outputs: &Outputs,
) -> Result<StageDone, StageError> {
    match stage {
        "lookup_service" => {
            let detail = client
                .service_number_detail(env, &data.service_number)
                .await?;
            done(
                ServiceFound {
                    customer_id: detail.customer_id,
                    service_id: detail.service_id,
                    service_status: detail.service_status,
                },
                Some("check_favorites"),
            )
        }
        "check_favorites" => {
            let found: ServiceFound = output_of(outputs, "lookup_service")?;
            let active: Vec<FavoritePricePoint> = client
                .favorite_price_points(env, found.service_id)
                .await?
                .into_iter()
                .filter(|p| p.active)
                .collect();
            if active.is_empty() {
                return Err(CostGuardError::NotEligible {
                    service_id: found.service_id,
                }
                .into());
            }
            let next = if wants_restore(data, &found) {
                "restore_create_cart"
            } else {
                "create_cart"
            };
            done(
                Eligible {
                    price_points: active,
                },
                Some(next),
            )
        }
        "restore_create_cart" => {
            let found: ServiceFound = output_of(outputs, "lookup_service")?;
            let restore = data
                .restore
                .as_ref()
                .ok_or_else(|| StageError::permanent("restore stage without data.restore"))?;
            let cart = client
                .create_cart(env, found.customer_id, restore.order_type_id, None)
                .await?;
            done(CartCreated { cart: cart.cart_id }, Some("restore_add_item"))
        }
        "restore_add_item" => {
            let found: ServiceFound = output_of(outputs, "lookup_service")?;
            let created: CartCreated = output_of(outputs, "restore_create_cart")?;
            let restore = data
                .restore
                .as_ref()
                .ok_or_else(|| StageError::permanent("restore stage without data.restore"))?;
            let cart = client
                .add_restore_item(env, &created.cart, found.service_id, restore.reason_id)
                .await?;
            done(
                serde_json::json!({ "service_details": cart.service_details }),
                Some("restore_checkout"),
            )
        }
        "restore_checkout" => {
            let created: CartCreated = output_of(outputs, "restore_create_cart")?;
            let summary = client.checkout(env, &created.cart).await?;
            if let Some(summary) = &summary {
                totals("Checkout", summary, scale)?;
            }
            done(
                serde_json::json!({ "summary": summary }),
                Some("restore_submit"),
            )
        }
        "restore_submit" => {
            let created: CartCreated = output_of(outputs, "restore_create_cart")?;
            let summary = client.submit_cart(env, &created.cart).await?;
            done(
                submitted(&created.cart, summary, scale)?,
                Some("create_cart"),
            )
        }
        "create_cart" => {
            let found: ServiceFound = output_of(outputs, "lookup_service")?;
            let cart = client
                .create_cart(
                    env,
                    found.customer_id,
                    data.order_type_id,
                    Some(data.register_id),
                )
                .await?;
            done(CartCreated { cart: cart.cart_id }, Some("renew"))
        }
        "renew" => {
            let found: ServiceFound = output_of(outputs, "lookup_service")?;
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let renewed = client
                .renew_advance_pay(env, created.cart.id, found.service_id)
                .await?;
            done(
                Renewed {
                    renewed_product_count: renewed.renewed_advance_pay_product_count,
                    service_information_item_id: renewed.service_information_item_id,
                },
                Some("checkout"),
            )
        }
        "checkout" => {
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let summary = client.checkout(env, &created.cart).await?.ok_or_else(|| {
                StageError::permanent("Checkout of the renewal order returned no CartSummary")
            })?;
            // A renewal is always paid: a zero or negative amount due fails here rather
            // than skipping the tender.
            done(amount_due(&summary, scale)?, Some("tender"))
        }
        "tender" => {
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let checked: CheckedOut = output_of(outputs, "checkout")?;
            let due = money::check(checked.amount_due, scale)
                .and_then(money::positive)
                .map_err(|e| bad_amount("amount due of the checkout output", e))?;
            let cart = client
                .add_cash_tender(env, &created.cart, due, data.tender_type_id)
                .await?;
            done(
                Tendered {
                    amount: due,
                    receipt_number: cart.receipt_number,
                },
                Some("submit"),
            )
        }
        "submit" => {
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let summary = client.submit_cart(env, &created.cart).await?;
            done(submitted(&created.cart, summary, scale)?, None)
        }
        other => Err(StageError::permanent(format!(
            "{WORKFLOW} has no stage {other:?}"
        ))),
    }
}

fn submitted(
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

/// The non-idempotent stages [`probe`] can settle.
pub const PROBED: &[&str] = &[
    "restore_add_item",
    "restore_submit",
    "renew",
    "tender",
    "submit",
];

/// Reconciles a non-idempotent stage from the order it worked on: CostGuard's order
/// lookup shows items, tenders and whether the order was submitted. A cart that may or
/// may not have been created has no id to look up.
pub async fn probe(
    client: &CostGuardClient,
    env: &str,
    scale: u32,
    stage: &str,
    outputs: &Outputs,
) -> Result<Probe, StageError> {
    let cart_stage = match stage {
        "restore_add_item" | "restore_submit" => "restore_create_cart",
        "renew" | "tender" | "submit" => "create_cart",
        _ => return Ok(Probe::Unavailable),
    };
    let created: CartCreated = output_of(outputs, cart_stage)?;
    let order = client.get_order(env, created.cart.id).await?;
    let service_id = || output_of::<ServiceFound>(outputs, "lookup_service").map(|f| f.service_id);
    let applied = |output: Result<StageDone, StageError>| output.map(Probe::Applied);
    match stage {
        "restore_add_item" => {
            let service_id = service_id()?;
            let items: Vec<ServiceDetail> = order
                .items
                .iter()
                .filter(|i| i.action_type == "Restore" && i.service_id == service_id)
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
            applied(done(
                serde_json::json!({ "service_details": items }),
                Some("restore_checkout"),
            ))
        }
        "renew" => {
            let service_id = service_id()?;
            let renewed: Vec<_> = order
                .items
                .iter()
                .filter(|i| i.action_type == "AdvancePayRenewal" && i.service_id == service_id)
                .collect();
            match renewed.first() {
                None => Ok(Probe::NotApplied),
                Some(first) => applied(done(
                    Renewed {
                        renewed_product_count: i64::try_from(renewed.len()).unwrap_or(i64::MAX),
                        service_information_item_id: Some(first.service_information_item_id),
                    },
                    Some("checkout"),
                )),
            }
        }
        "tender" => {
            let checked: CheckedOut = output_of(outputs, "checkout")?;
            if order.tenders.is_empty() {
                return Ok(Probe::NotApplied);
            }
            let tendered = tendered(&order.tenders, scale)?;
            if tendered != checked.amount_due {
                return Err(StageError::permanent(format!(
                    "order {} holds tenders of {tendered}, not the {} due: a person must look",
                    created.cart.id, checked.amount_due
                )));
            }
            applied(done(
                Tendered {
                    amount: tendered,
                    receipt_number: order.receipt_number.clone(),
                },
                Some("submit"),
            ))
        }
        _ => {
            // restore_submit, submit
            if order.status != "Submitted" {
                return Ok(Probe::NotApplied);
            }
            let next = if stage == "submit" {
                None
            } else {
                Some("create_cart")
            };
            let total = |what: &str, raw: &Option<RawAmount>| {
                raw.as_ref()
                    .map(|raw| amount(&format!("order lookup {what}"), raw, scale))
                    .transpose()
            };
            applied(done(
                Submitted {
                    cart_id: created.cart.id,
                    cart_item_count: Some(i64::try_from(order.items.len()).unwrap_or(i64::MAX)),
                    subtotal: total("subtotal", &order.subtotal)?,
                    tax_subtotal: total("taxSubtotal", &order.tax_subtotal)?,
                },
                next,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(subtotal: &str, tax: &str) -> CartSummary {
        CartSummary {
            cart_id: KeyedId {
                authenticated_key: "k".into(),
                id: 11,
            },
            cart_item_count: 1,
            estimated_mrc: RawAmount::new("0"),
            subtotal: RawAmount::new(subtotal),
            tax_subtotal: RawAmount::new(tax),
        }
    }

    #[test]
    fn the_amount_due_is_validated_and_positive() {
        let ok = amount_due(&summary("11.99", "2.35"), 2).unwrap();
        assert_eq!(ok.amount_due.to_string(), "14.34");
        let ok = amount_due(&summary("11.990", "2.350"), 2).unwrap();
        assert_eq!(ok.amount_due.to_string(), "14.34");
        assert_eq!(
            amount_due(&summary("11.995", "2.35"), 3)
                .unwrap()
                .amount_due
                .to_string(),
            "14.345"
        );
        for (subtotal, tax, needle) in [
            (
                "-11.99",
                "2.35",
                "Checkout Subtotal: amount \"-11.99\" is negative",
            ),
            (
                "11.99",
                "-2.35",
                "Checkout TaxSubtotal: amount \"-2.35\" is negative",
            ),
            ("0", "0", "amount 0 is not positive"),
            ("14.349999999999", "0", "more than 2 decimal places"),
            ("79228162514264337593543950335", "2.35", "out of range"),
            ("999999999.99", "0.01", "out of range"),
            ("1e5", "0", "not a plain decimal"),
            ("NaN", "0", "not a plain decimal"),
            ("", "0", "amount \"\" is not a plain decimal"),
        ] {
            let err = amount_due(&summary(subtotal, tax), 2).unwrap_err();
            assert_eq!(err.failure, crate::billing::Failure::Permanent);
            assert!(err.message.contains(needle), "{}", err.message);
        }
    }

    #[test]
    fn tenders_on_an_order_are_validated_and_summed() {
        let tender = |amount: &str| OrderTender {
            tender_information_item_id: 1,
            amount: RawAmount::new(amount),
            tender_type_id: Some(2),
            tender_status: "Captured".into(),
        };
        assert_eq!(
            tendered(&[tender("10.00"), tender("4.34")], 2)
                .unwrap()
                .to_string(),
            "14.34"
        );
        for bad in ["1e5", "14.349", "-1", "NaN", "1000000000"] {
            let err = tendered(&[tender(bad)], 2).unwrap_err();
            assert!(err.message.contains(&format!("{bad:?}")), "{}", err.message);
        }
        let err = tendered(&[tender("999999999"), tender("1")], 2).unwrap_err();
        assert!(err.message.contains("out of range"), "{}", err.message);
    }

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
