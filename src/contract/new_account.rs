//! `data.account.new`: a customer who has no Emersion account yet (seed 000: account
//! creation is the first step of end-to-end onboarding). Field names are part of the
//! contract: other systems build them exactly as written here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::AddressData;

/// Longest portal username: Emersion appends the caller's realm and refuses more than 80
/// characters in all (KB "Check Cumulus Username Availability"), so 80 is the upper bound.
pub const MAX_PORTAL_USERNAME_LEN: usize = 80;
/// Longest free-text field accepted (names, email, reference).
const MAX_FIELD_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Emersion account type; an SP or Agent parent creates "End User" accounts.
    #[serde(default = "end_user")]
    pub account_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Validated and kept with the command; CreateComplexAccount has no field for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<chrono::NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressData>,
    /// The CRM's own reference for the account (AccountReference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The customer's end-user portal (Cumulus) login. With it, the workflow checks the
    /// username is free before creating the account, and an account creation whose outcome
    /// is unknown is settled by logging in; without it, such a creation is parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_login: Option<PortalLogin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalLogin {
    /// Without the realm: Emersion appends the caller's.
    pub username: String,
    /// A secret: redacted in every log, event, header and dead letter.
    pub password: String,
}

fn end_user() -> String {
    "End User".to_string()
}

impl NewAccount {
    /// What is wrong with the data, each problem naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut text = |field: &str, value: &str, required: bool| {
            if required && value.trim().is_empty() {
                problems.push(format!("data.account.new.{field} is required"));
            } else if value.chars().count() > MAX_FIELD_LEN {
                problems.push(format!(
                    "data.account.new.{field} is longer than {MAX_FIELD_LEN} characters"
                ));
            }
        };
        text("account_type", &self.account_type, true);
        text("first_name", &self.first_name, true);
        text("last_name", &self.last_name, true);
        text("email", &self.email, true);
        for (field, value) in [
            ("title", &self.title),
            ("mobile", &self.mobile),
            ("phone", &self.phone),
            ("reference", &self.reference),
        ] {
            text(field, value.as_deref().unwrap_or(""), false);
        }
        if !self.email.trim().is_empty() && !plausible_email(&self.email) {
            problems.push("data.account.new.email is not an email address".to_string());
        }
        if let Some(login) = &self.portal_login {
            let username = login.username.trim();
            if username.is_empty() || login.password.is_empty() {
                problems
                    .push("data.account.new.portal_login needs username and password".to_string());
            } else if username.chars().count() > MAX_PORTAL_USERNAME_LEN {
                problems.push(format!(
                    "data.account.new.portal_login.username is longer than {MAX_PORTAL_USERNAME_LEN} characters"
                ));
            }
        }
        problems
    }
}

/// One `@` with text on both sides and no whitespace: the platform judges the rest.
fn plausible_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> NewAccount {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_names_and_email_are_required() {
        let account =
            parse(json!({"first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}));
        assert_eq!(account.account_type, "End User");
        assert!(account.problems().is_empty());
    }

    #[test]
    fn problems_name_their_field() {
        let long = "x".repeat(81);
        for (data, expected) in [
            (
                json!({"first_name": " ", "last_name": "C", "email": "a@b"}),
                "first_name is required",
            ),
            (
                json!({"first_name": "J", "last_name": "C", "email": "ab"}),
                "email is not an email",
            ),
            (
                json!({"first_name": "J", "last_name": "C", "email": "a@b",
                    "portal_login": {"username": "", "password": "p"}}),
                "needs username and password",
            ),
            (
                json!({"first_name": "J", "last_name": "C", "email": "a@b",
                    "portal_login": {"username": long, "password": "p"}}),
                "longer than 80",
            ),
        ] {
            let problems = parse(data.clone()).problems().join("; ");
            assert!(problems.contains(expected), "{data}: {problems}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<NewAccount>(
            json!({"first_name": "J", "last_name": "C", "email": "a@b", "firstname": "x"}),
        );
        assert!(err.is_err());
    }
}
