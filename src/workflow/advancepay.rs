//! `advancepay.renew`: the AdvancePay renewal of seed 003, one stage per CostGuard call.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{output_of, Effect, Outputs, Probe, StageDone, StageError};
use crate::billing::costguard::soap::{KeyedId, ServiceDetail};
use crate::billing::costguard::{rest::FavoritePricePoint, CostGuardClient, CostGuardError};
use crate::command::RenewData;

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

pub async fn run(
    client: &CostGuardClient,
    env: &str,
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
            done(
                serde_json::json!({ "summary": summary }),
                Some("restore_submit"),
            )
        }
        "restore_submit" => {
            let created: CartCreated = output_of(outputs, "restore_create_cart")?;
            let summary = client.submit_cart(env, &created.cart).await?;
            done(submitted(&created.cart, summary), Some("create_cart"))
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
            let amount_due = summary.amount_due();
            // Nothing to tender on a zero-priced order: go straight to submit.
            let next = if amount_due > Decimal::ZERO {
                "tender"
            } else {
                "submit"
            };
            done(
                CheckedOut {
                    subtotal: summary.subtotal,
                    tax_subtotal: summary.tax_subtotal,
                    amount_due,
                },
                Some(next),
            )
        }
        "tender" => {
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let checked: CheckedOut = output_of(outputs, "checkout")?;
            let cart = client
                .add_cash_tender(env, &created.cart, checked.amount_due, data.tender_type_id)
                .await?;
            done(
                Tendered {
                    amount: checked.amount_due,
                    receipt_number: cart.receipt_number,
                },
                Some("submit"),
            )
        }
        "submit" => {
            let created: CartCreated = output_of(outputs, "create_cart")?;
            let summary = client.submit_cart(env, &created.cart).await?;
            done(submitted(&created.cart, summary), None)
        }
        other => Err(StageError::permanent(format!(
            "{WORKFLOW} has no stage {other:?}"
        ))),
    }
}

fn submitted(
    cart: &KeyedId,
    summary: Option<crate::billing::costguard::soap::CartSummary>,
) -> Submitted {
    Submitted {
        cart_id: cart.id,
        cart_item_count: summary.as_ref().map(|s| s.cart_item_count),
        subtotal: summary.as_ref().map(|s| s.subtotal),
        tax_subtotal: summary.as_ref().map(|s| s.tax_subtotal),
    }
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
                        renewed_product_count: renewed.len() as i64,
                        service_information_item_id: Some(first.service_information_item_id),
                    },
                    Some("checkout"),
                )),
            }
        }
        "tender" => {
            let checked: CheckedOut = output_of(outputs, "checkout")?;
            let tendered: Decimal = order.tenders.iter().map(|t| t.amount).sum();
            if order.tenders.is_empty() {
                return Ok(Probe::NotApplied);
            }
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
            applied(done(
                Submitted {
                    cart_id: created.cart.id,
                    cart_item_count: Some(order.items.len() as i64),
                    subtotal: order.subtotal,
                    tax_subtotal: order.tax_subtotal,
                },
                next,
            ))
        }
    }
}
