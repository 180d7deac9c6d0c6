//! Finishing the order: `complete_order` (CompleteOrder), then the optional `add_note`
//! and `create_payment`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Ctx;
use crate::billing::emersion::wire::{self, CreatedService};
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub account_presale_id: i64,
    pub status: String,
    pub services: Vec<CreatedService>,
}

pub(super) async fn complete_order(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account_presale_id = cx.presale_id()?;
    let completed = cx
        .client
        .call(&wire::CompleteOrder { account_presale_id })
        .await?;
    encode(OrderCompleted {
        account_presale_id,
        status: completed.status,
        services: completed.services,
    })
}

/// AddNote on the account.
pub(super) async fn add_note(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let Some(note) = &cx.data.note else {
        return Err(StageError::permanent("add_note without data.note"));
    };
    let note_id = cx
        .client
        .call(&wire::AddNote {
            object_type_id: 1,
            object_type_value: cx.account_id()?,
            subject: note.subject.clone(),
            detail: note.detail.clone(),
        })
        .await?;
    Ok(json!({ "note_id": note_id }))
}

pub(super) async fn create_payment(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let Some(payment) = &cx.data.payment else {
        return Err(StageError::permanent("create_payment without data.payment"));
    };
    let payment_id = cx
        .client
        .call(&wire::CreatePayment {
            account_id: cx.account_id()?,
            transaction_category: payment.transaction_category.clone(),
            reference: payment.reference.clone(),
            amount: payment.amount,
            transaction_date: payment.transaction_date,
        })
        .await?;
    Ok(json!({ "payment_id": payment_id }))
}

/// "presale 9, services 3 Active" from the output of `complete_order`.
pub(super) fn summary(completed: &Value) -> Option<String> {
    let presale = completed["account_presale_id"].as_i64()?;
    let services: Vec<String> = completed["services"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| format!("{} {}", s["service_id"], s["status"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    Some(format!(
        "presale {presale}, services {}",
        services.join(", ")
    ))
}
