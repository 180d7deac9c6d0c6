//! `start_order`: StartOrder, the presale the rest of the order builds on.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Ctx;
use crate::billing::emersion::wire;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderStarted {
    pub account_presale_id: i64,
}

pub(super) async fn start_order(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account_presale_id = cx
        .client
        .call(&wire::StartOrder {
            account_id: cx.account_id()?,
            purchase_order: cx.data.purchase_order.clone(),
            promo_code: cx.data.promo_code.clone(),
        })
        .await?;
    encode(OrderStarted { account_presale_id })
}
