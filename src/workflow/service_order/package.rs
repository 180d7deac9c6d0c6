//! `get_packages` (the requested package among the available ones) and `select_package`
//! (SelectPackagePlan, once per order: the platform refuses a second call with
//! "Account presale already contain package plan").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, PackagePlan, PACKAGE_ALREADY_SELECTED};
use crate::billing::emersion::EmersionError;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct PackageChosen {
    pub package: PackagePlan,
}

pub(super) async fn get_packages(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let packages = cx
        .client
        .call(&wire::GetAvailablePackages {
            account_presale_id: cx.presale_id()?,
        })
        .await?;
    let wanted = &cx.data.package;
    let chosen = packages.iter().find(|p| match &wanted.plan_id {
        Some(id) => p.id == *id,
        None => wanted
            .external_name
            .as_deref()
            .is_some_and(|name| p.external_name.eq_ignore_ascii_case(name.trim())),
    });
    let Some(package) = chosen else {
        let available: Vec<String> = packages
            .iter()
            .map(|p| format!("{} ({})", p.external_name, p.id))
            .collect();
        return Err(StageError::permanent(format!(
            "the requested package is not available for this order; available: {}",
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        )));
    };
    encode(PackageChosen {
        package: package.clone(),
    })
}

/// A resumed order (the command names its presale) may hold the package already: the
/// platform's refusal of a repeat then means the stage is done.
pub(super) async fn select_package(cx: &Ctx<'_>) -> Result<Value, StageError> {
    select(cx, cx.data.account_presale_id.is_some()).await
}

/// SelectPackagePlan; with `repeat_done`, the refusal of a repeat counts as selected.
pub(super) async fn select(cx: &Ctx<'_>, repeat_done: bool) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let reply = cx
        .client
        .call(&wire::SelectPackagePlan {
            account_presale_id: cx.presale_id()?,
            package_plan_id: chosen.package.id,
        })
        .await;
    match reply {
        Ok(_) => encode(chosen),
        Err(EmersionError::Fault { message, .. })
            if repeat_done && message.trim() == PACKAGE_ALREADY_SELECTED =>
        {
            encode(chosen)
        }
        Err(e) => Err(e.into()),
    }
}
