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
        return Err(StageError::permanent(format!(
            "the requested package is not available for this order; available: {}",
            listed(&packages)
        )));
    };
    encode(PackageChosen {
        package: package.clone(),
    })
}

/// A resumed order (the command names its presale) may hold the package already: the
/// platform's refusal of a repeat then means the stage is done, once the presale is shown
/// to hold the requested package.
pub(super) async fn select_package(cx: &Ctx<'_>) -> Result<Value, StageError> {
    select(cx, cx.data.account_presale_id.is_some()).await
}

/// SelectPackagePlan; with `repeat_done`, the refusal of a repeat counts as selected. On
/// a presale this order did not start, only when the presale is shown to hold the
/// requested package: someone else may have selected another one.
pub(super) async fn select(cx: &Ctx<'_>, repeat_done: bool) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let account_presale_id = cx.presale_id()?;
    let reply = cx
        .client
        .call(&wire::SelectPackagePlan {
            account_presale_id,
            package_plan_id: chosen.package.id,
        })
        .await;
    match reply {
        Ok(_) => encode(chosen),
        Err(EmersionError::Fault { message, .. })
            if repeat_done && message.trim() == PACKAGE_ALREADY_SELECTED =>
        {
            if cx.data.account_presale_id.is_some() {
                let offered = cx
                    .client
                    .call(&wire::GetAvailablePackages { account_presale_id })
                    .await?;
                confirm_held(account_presale_id, &chosen.package, &offered)?;
            }
            encode(chosen)
        }
        Err(e) => Err(e.into()),
    }
}

/// The refusal does not name the plan the presale holds, and no documented call reads
/// it. A presale with its plan selected offers only that plan (pinned in the simulator,
/// src/sim/emersion/orders.rs): the refusal stands for the requested selection only when
/// the requested plan is the one offered; anything else may be another plan.
fn confirm_held(
    presale_id: i64,
    wanted: &PackagePlan,
    offered: &[PackagePlan],
) -> Result<(), StageError> {
    match offered {
        [held] if held.id == wanted.id => Ok(()),
        [held] => Err(StageError::permanent(format!(
            "presale {presale_id} already holds package {} ({}), not the requested {} ({}): \
             the order does not go on with a package it did not ask for",
            held.external_name, held.id, wanted.external_name, wanted.id
        ))),
        _ => Err(StageError::permanent(format!(
            "presale {presale_id} already holds a package plan and Emersion does not say \
             which (it offers {}): the requested {} ({}) cannot be confirmed, so the order \
             does not go on",
            listed(offered),
            wanted.external_name,
            wanted.id
        ))),
    }
}

/// "Business Support Basic (200100), …", or "none".
fn listed(packages: &[PackagePlan]) -> String {
    if packages.is_empty() {
        return "none".to_string();
    }
    packages
        .iter()
        .map(|p| format!("{} ({})", p.external_name, p.id))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: i64, name: &str) -> PackagePlan {
        PackagePlan {
            id,
            internal_name: name.to_uppercase(),
            external_name: name.to_string(),
            service_allowances: Vec::new(),
        }
    }

    #[test]
    fn a_held_package_counts_only_when_it_is_the_requested_one() {
        let basic = plan(200100, "Basic");
        let plus = plan(200101, "Plus");
        assert!(confirm_held(7, &basic, std::slice::from_ref(&basic)).is_ok());

        let other = confirm_held(7, &plus, std::slice::from_ref(&basic)).unwrap_err();
        assert!(
            other.message.contains(
                "presale 7 already holds package Basic (200100), not the requested Plus (200101)"
            ),
            "{}",
            other.message
        );
        for offered in [vec![basic.clone(), plus.clone()], vec![]] {
            let unknown = confirm_held(7, &basic, &offered).unwrap_err();
            assert!(
                unknown.message.contains("does not say which"),
                "{}",
                unknown.message
            );
        }
    }
}
