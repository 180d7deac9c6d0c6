//! The customer's account: found by portal login (`resolve_account`), or created for a new
//! customer (`check_username`, then `create_account`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Ctx;
use crate::billing::emersion::accounts::{
    CheckUsernameAvailability, CreateComplexAccount, MyGetAccountFromUsernameAndPassword,
};
use crate::billing::emersion::EmersionError;
use crate::contract::command::{NewAccount, PortalLogin};
use crate::secret::Secret;
use crate::workflow::{encode, Probe, StageError};

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountResolved {
    pub account_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UsernameChecked {
    pub username: String,
    pub available: bool,
}

/// GetAccountFromUsernameAndPassword's answer when no account has the login.
const NO_SUCH_USERNAME: &str = "Username does not exist";

pub(super) async fn resolve_account(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account = &cx.data.account;
    let (Some(username), Some(password)) = (&account.username, &account.password) else {
        return Err(StageError::permanent(
            "resolve_account needs username and password",
        ));
    };
    let account_id = login(cx, username, password).await?;
    encode(AccountResolved { account_id })
}

async fn login(cx: &Ctx<'_>, username: &str, password: &str) -> Result<i64, EmersionError> {
    cx.client
        .call(&MyGetAccountFromUsernameAndPassword {
            username: username.to_string(),
            password: Secret::new(password.to_string()),
        })
        .await
}

fn new_account<'a>(cx: &Ctx<'a>) -> Result<&'a NewAccount, StageError> {
    cx.data
        .account
        .new
        .as_ref()
        .ok_or_else(|| StageError::permanent("the command creates no account"))
}

fn portal_login<'a>(cx: &Ctx<'a>) -> Result<Option<&'a PortalLogin>, StageError> {
    Ok(new_account(cx)?.portal_login.as_ref())
}

/// A taken username fails the order before anything is created: the account it belongs to
/// is not this customer's to use, and a second account would be a duplicate.
pub(super) async fn check_username(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let Some(login) = portal_login(cx)? else {
        return Err(StageError::permanent(
            "check_username needs data.account.new.portal_login",
        ));
    };
    let username = login.username.trim().to_string();
    let available = cx
        .client
        .call(&CheckUsernameAvailability {
            username: username.clone(),
        })
        .await?;
    if !available {
        return Err(StageError::permanent(format!(
            "portal username {username:?} is already taken: no account was created"
        )));
    }
    encode(UsernameChecked {
        username,
        available,
    })
}

pub(super) async fn create_account(cx: &Ctx<'_>) -> Result<Value, StageError> {
    let account = new_account(cx)?.clone();
    let account_id = cx.client.call(&CreateComplexAccount { account }).await?;
    encode(AccountResolved { account_id })
}

/// Settles a creation whose answer was lost by logging in with the new portal login: an
/// account answering to it was created (the username was free before); "Username does not
/// exist" proves nothing was. Without a portal login there is nothing to look up by.
pub(super) async fn probe_create_account(cx: &Ctx<'_>) -> Result<Probe<Value>, StageError> {
    let Some(portal) = portal_login(cx)? else {
        return Ok(Probe::Unavailable);
    };
    match login(cx, portal.username.trim(), &portal.password).await {
        Ok(account_id) => encode(AccountResolved { account_id }).map(Probe::Applied),
        Err(EmersionError::Fault { message, .. }) if message.trim() == NO_SUCH_USERNAME => {
            Ok(Probe::NotApplied)
        }
        Err(e) => Err(e.into()),
    }
}
