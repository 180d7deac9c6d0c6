//! `resolve_account`: the account of a username and password, when the command gives no id.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Ctx;
use crate::billing::emersion::wire;
use crate::secret::Secret;
use crate::workflow::{encode, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountResolved {
    pub account_id: i64,
}

pub(super) async fn resolve_account(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account = &cx.data.account;
    let (Some(username), Some(password)) = (&account.username, &account.password) else {
        return Err(StageError::permanent(
            "resolve_account needs username and password",
        ));
    };
    let account_id = cx
        .client
        .call(&wire::GetAccountFromUsernameAndPassword {
            username: username.clone(),
            password: Secret::new(password.clone()),
        })
        .await?;
    encode(AccountResolved { account_id })
}
