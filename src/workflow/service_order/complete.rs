//! Finishing the order: `list_services` (the account's services before), `complete_order`
//! (CompleteOrder, which answers only a Status; the services it created are the account's
//! new ones, read with serviceList and serviceLookup), then the optional `add_note` and
//! `create_payment`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::package::PackageChosen;
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire;
use crate::workflow::{encode, Probe, StageError};

/// CompleteOrder's Status on success (W `API/Orders/CompleteOrder`).
const COMPLETED: &str = "true";

/// The account's services before CompleteOrder.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServicesBefore {
    pub service_ids: Vec<i64>,
}

/// A service CompleteOrder created, as serviceList and serviceLookup show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedService {
    pub service_id: i64,
    pub service_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type_id: Option<i64>,
    /// The subscription status serviceLookup names (e.g. "Preactive"), else serviceList's
    /// service status.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub account_presale_id: i64,
    pub status: String,
    pub services: Vec<CreatedService>,
}

pub(super) async fn list_services(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let services = cx
        .client
        .call(&wire::ServiceList {
            account_id: cx.account_id()?,
        })
        .await?;
    encode(ServicesBefore {
        service_ids: services.into_iter().map(|s| s.service_id).collect(),
    })
}

pub(super) async fn complete_order(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account_presale_id = cx.presale_id()?;
    let status = cx
        .client
        .call(&wire::CompleteOrder { account_presale_id })
        .await?;
    encode(OrderCompleted {
        account_presale_id,
        status,
        services: created_services(cx).await?,
    })
}

/// Applied when the account has services of the package's types the snapshot had not:
/// CompleteOrder is what creates them. More of them than the package holds means another
/// order of the account completed meanwhile, and nothing tells the two apart: a person
/// must look.
pub(super) async fn reconcile(cx: &Ctx<'_>) -> Result<Probe<Value>, StageError> {
    let services = created_services(cx).await?;
    if services.is_empty() {
        return Ok(Probe::NotApplied);
    }
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let expected: i64 = chosen
        .package
        .service_allowances
        .iter()
        .map(|a| a.quantity.max(1))
        .sum();
    if i64::try_from(services.len()).unwrap_or(i64::MAX) > expected {
        return Err(StageError::permanent(format!(
            "the account has {} new services of the package's types where the package holds {expected}: another order completed meanwhile",
            services.len()
        )));
    }
    encode(OrderCompleted {
        account_presale_id: cx.presale_id()?,
        status: COMPLETED.to_string(),
        services,
    })
    .map(Probe::Applied)
}

/// The account's services of the package's service types missing from the snapshot
/// (another order of the same account, for other services, may complete meanwhile), each
/// with its subscription status. A service serviceList gives no type for is counted in.
async fn created_services(cx: &Ctx<'_>) -> Result<Vec<CreatedService>, StageError> {
    let before: ServicesBefore = cx.output(ServiceOrderStage::ListServices)?;
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let of_package = |service_type: Option<i64>| {
        service_type.is_none_or(|t| {
            chosen
                .package
                .service_allowances
                .iter()
                .any(|a| a.service_type_id == t)
        })
    };
    let account_id = cx.account_id()?;
    let now = cx.client.call(&wire::ServiceList { account_id }).await?;
    let mut created = Vec::new();
    for item in now
        .into_iter()
        .filter(|s| !before.service_ids.contains(&s.service_id) && of_package(s.service_type_id))
    {
        let lookup = cx
            .client
            .call(&wire::ServiceLookup {
                service_identifier: item.service_identifier.clone(),
                service_type_id: item.service_type_id,
            })
            .await?;
        let status = lookup
            .into_iter()
            .find(|l| {
                l.account_id == account_id && l.service_id.is_none_or(|id| id == item.service_id)
            })
            .map(|l| l.subscription_status_name)
            .unwrap_or(item.service_status);
        created.push(CreatedService {
            service_id: item.service_id,
            service_identifier: item.service_identifier,
            service_type_id: item.service_type_id,
            status,
        });
    }
    Ok(created)
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

/// "presale 9, services 3 (0299998888) Preactive" from the output of `complete_order`.
pub(super) fn summary(completed: &Value) -> Option<String> {
    let presale = completed["account_presale_id"].as_i64()?;
    let services: Vec<String> = completed["services"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!(
                        "{} ({}) {}",
                        s["service_id"],
                        s["service_identifier"].as_str().unwrap_or(""),
                        s["status"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Some(format!(
        "presale {presale}, services {}",
        services.join(", ")
    ))
}
