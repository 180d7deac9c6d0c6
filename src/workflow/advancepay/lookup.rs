//! `lookup_service` and `check_favorites`: which service it is, and whether it may renew.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, RenewalStage};
use crate::billing::costguard::rest::FavoritePricePoint;
use crate::billing::costguard::CostGuardError;
use crate::contract::command::RenewData;
use crate::workflow::{encode, StageError};

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

/// OData ServiceNumberDetail by service number.
pub(super) async fn lookup_service(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let detail = cx
        .client
        .service_number_detail(cx.env, &cx.data.service_number)
        .await?;
    encode(ServiceFound {
        customer_id: detail.customer_id,
        service_id: detail.service_id,
        service_status: detail.service_status,
    })
}

/// The service's active favorite AdvancePay price points; none is a permanent "not
/// eligible".
pub(super) async fn check_favorites(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let found: ServiceFound = cx.output(RenewalStage::LookupService)?;
    let active: Vec<FavoritePricePoint> = cx
        .client
        .favorite_price_points(cx.env, found.service_id)
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
    encode(Eligible {
        price_points: active,
    })
}

/// Whether the restore order runs before the renewal: the command asks for it and the
/// service is Hotlined.
pub(super) fn wants_restore(data: &RenewData, found: &ServiceFound) -> bool {
    data.restore.is_some() && found.service_status.eq_ignore_ascii_case("Hotlined")
}
