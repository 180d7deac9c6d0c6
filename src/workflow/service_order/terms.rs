//! `get_terms`: the package's terms and conditions, which the customer must have accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::package::PackageChosen;
use super::{Ctx, ServiceOrderStage};
use crate::billing::emersion::wire::{self, Terms};
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct TermsFound {
    pub terms: Vec<Terms>,
    pub accepted: bool,
}

pub(super) async fn get_terms(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let chosen: PackageChosen = cx.output(ServiceOrderStage::GetPackages)?;
    let terms = cx
        .client
        .call(&wire::GetTermsAndConditions {
            package_plan_id: chosen.package.id,
        })
        .await?;
    if !terms.is_empty() && !cx.data.accept_terms {
        let ids: Vec<String> = terms.iter().map(|t| t.id.to_string()).collect();
        return Err(StageError::permanent(format!(
            "the customer has not accepted the terms and conditions ({}) of package {}",
            ids.join(", "),
            chosen.package.id
        )));
    }
    encode(TermsFound {
        accepted: cx.data.accept_terms,
        terms,
    })
}
