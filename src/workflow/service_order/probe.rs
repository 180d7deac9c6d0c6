//! Reconciles a non-idempotent stage from the presale: GetAccountPresale shows the SQs,
//! the selected package and whether the order was completed. A presale that may or may
//! not have been started, and notes and payments, have nothing to look up by. Called
//! only for the stages marked `+ probe`.

use serde_json::Value;

use super::complete::OrderCompleted;
use super::package::PackageChosen;
use super::sq::Qualified;
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, AccountPresale};
use crate::workflow::{encode, Probe, StageError};

pub(super) async fn probe(
    cx: &Ctx<'_>,
    stage: ServiceOrderStage,
) -> Result<Probe<Value>, StageError> {
    use ServiceOrderStage::*;
    if stage == CreateAccount {
        return super::account::probe_create_account(cx).await;
    }
    let account_presale_id = cx.presale_id()?;
    let presale = cx
        .client
        .call(&wire::GetAccountPresale { account_presale_id })
        .await?;
    match stage {
        SimpleSq | PhoneSq | NwbSq => qualified(cx, stage, account_presale_id, &presale),
        SelectPackage => selected_package(cx, account_presale_id, &presale),
        CompleteOrder => completed(account_presale_id, presale),
        _ => Ok(Probe::Unavailable),
    }
}

/// An SQ stage: applied when the presale holds an SQ of the ordered service type.
fn qualified(
    cx: &Ctx<'_>,
    stage: ServiceOrderStage,
    account_presale_id: i64,
    presale: &AccountPresale,
) -> Result<Probe<Value>, StageError> {
    let nwb = stage == ServiceOrderStage::NwbSq;
    let Some(sq) = presale
        .sqs
        .iter()
        .find(|sq| sq.service_type_id == cx.data.service_type_id)
    else {
        return Ok(Probe::NotApplied);
    };
    if nwb && sq.result.as_deref() != Some("Qualified") {
        return Err(StageError::permanent(format!(
            "SQ {} of presale {account_presale_id} did not qualify: {}",
            sq.account_presale_sq_id,
            sq.result.as_deref().unwrap_or(&sq.status)
        )));
    }
    encode(Qualified {
        account_presale_sq_id: sq.account_presale_sq_id,
        result: sq.result.clone().filter(|_| nwb),
    })
    .map(Probe::Applied)
}

fn selected_package(
    cx: &Ctx<'_>,
    account_presale_id: i64,
    presale: &AccountPresale,
) -> Result<Probe<Value>, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    match presale.package_plan_id {
        None => Ok(Probe::NotApplied),
        Some(id) if id == chosen.package.id => encode(chosen).map(Probe::Applied),
        Some(other) => Err(StageError::permanent(format!(
            "presale {account_presale_id} holds package plan {other}, not the chosen {}: a person must look",
            chosen.package.id
        ))),
    }
}

fn completed(account_presale_id: i64, presale: AccountPresale) -> Result<Probe<Value>, StageError> {
    if !presale.status.eq_ignore_ascii_case("Complete") {
        return Ok(Probe::NotApplied);
    }
    encode(OrderCompleted {
        account_presale_id,
        status: presale.status,
        services: presale.services,
    })
    .map(Probe::Applied)
}
