//! Reconciles the stages marked `+ probe` with documented calls only (there is no order
//! or presale read): CreateAccount by the portal login (account.rs); SelectPackagePlan is sent again, as the platform refuses a repeat
//! ("only once per order"), so either answer proves the selection; CompleteOrder by the
//! account's services (serviceList) against the snapshot `list_services` took.

use serde_json::Value;

use super::{complete, package, Ctx, ServiceOrderStage};
use crate::workflow::{Probe, StageError};

pub(super) async fn probe(
    cx: &Ctx<'_>,
    stage: ServiceOrderStage,
) -> Result<Probe<Value>, StageError> {
    match stage {
        ServiceOrderStage::CreateAccount => super::account::probe_create_account(cx).await,
        ServiceOrderStage::SelectPackage => package::select(cx, true).await.map(Probe::Applied),
        ServiceOrderStage::CompleteOrder => complete::reconcile(cx).await,
        _ => Ok(Probe::Unavailable),
    }
}
