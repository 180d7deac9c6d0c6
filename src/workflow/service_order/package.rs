//! `get_packages` (the requested package among the available ones) and `select_package`
//! (SelectPackagePlan, once per order: the platform errors on a second call).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, PackagePlan};
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

pub(super) async fn select_package(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    cx.client
        .call(&wire::SelectPackagePlan {
            account_presale_id: cx.presale_id()?,
            package_plan_id: chosen.package.id,
        })
        .await?;
    encode(chosen)
}
