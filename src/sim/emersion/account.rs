//! Account-level rules: the account check by Cumulus credentials, portal usernames and
//! new accounts, notes on accounts and services, and payments. A refused call changes
//! nothing.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;

/// ObjectTypeID of AddNote: what ObjectTypeValue names.
const NOTE_ON_ACCOUNT: i64 = 1;
const NOTE_ON_SERVICE: i64 = 5;

pub(super) struct NewNote {
    pub(super) object_type_id: i64,
    pub(super) object_id: i64,
    pub(super) subject: String,
    pub(super) detail: String,
}

/// The caller's Cumulus realm, appended to every portal username (KB "Check Cumulus
/// Username Availability": at most 80 characters with it).
const PORTAL_REALM: &str = "@portal.sim.example";
const MAX_USERNAME_WITH_REALM: usize = 80;

/// CreateComplexAccount's fields the simulator keeps or judges.
pub(super) struct NewCustomer {
    pub(super) account_type: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) email: String,
    pub(super) username: String,
    pub(super) password: String,
    pub(super) reference: String,
}

/// CreatePayment's fields as received: the rules judge the amount and the date.
pub(super) struct NewPayment {
    pub(super) account_id: i64,
    pub(super) transaction_category: String,
    pub(super) reference: String,
    pub(super) amount: String,
    pub(super) transaction_date: String,
}

impl Emersion {
    pub(super) fn account_by_credentials(
        &self,
        username: &str,
        password: &str,
    ) -> Result<i64, Rejection> {
        if username.is_empty() || username.chars().any(char::is_whitespace) {
            return Err("Invalid Username".into());
        }
        let account = self
            .accounts
            .values()
            .find(|a| a.username.as_deref() == Some(username))
            .ok_or("Username does not exist")?;
        if account.password.as_deref() != Some(password) {
            return Err("Incorrect Password".into());
        }
        Ok(account.account_id)
    }

    /// CheckUsernameAvailability, with the KB's error strings.
    pub(super) fn username_available(&self, username: &str) -> Result<bool, Rejection> {
        let username = username.trim();
        if username.is_empty() {
            return Err("Username must be provided".into());
        }
        if username.chars().count() + PORTAL_REALM.len() > MAX_USERNAME_WITH_REALM {
            return Err("Username too long.".into());
        }
        Ok(!self
            .accounts
            .values()
            .any(|a| a.username.as_deref() == Some(username)))
    }

    /// CreateComplexAccount: an active End User account under the caller's. The page
    /// shows no error strings; these are pinned.
    pub(super) fn create_account(&mut self, customer: NewCustomer) -> Result<i64, Rejection> {
        if customer.account_type != "End User" {
            return Err(format!("Invalid Account Type '{}'", customer.account_type).into());
        }
        for (field, value) in [
            ("FirstName", &customer.first_name),
            ("LastName", &customer.last_name),
            ("EmailAddress", &customer.email),
        ] {
            if value.trim().is_empty() {
                return Err(format!("Missing PrimaryContact {field}").into());
            }
        }
        let login = if customer.username.trim().is_empty() {
            None
        } else {
            if !self.username_available(&customer.username)? {
                return Err("Username already exists".into());
            }
            if customer.password.is_empty() {
                return Err("Missing CumulusUser Password".into());
            }
            Some((customer.username.trim().to_string(), customer.password))
        };
        let account_id = next(&mut self.ids.account);
        let (username, password) = login.unzip();
        self.accounts.insert(
            account_id,
            Account {
                account_id,
                username,
                password,
                status: Some(AccountStatus::Active),
                account_type: Some(AccountType::Retail),
                can_not_order: false,
                reference: Some(customer.reference).filter(|r| !r.is_empty()),
                restriction_id: None,
            },
        );
        Ok(account_id)
    }

    pub(super) fn add_note(&mut self, note: NewNote) -> Result<i64, Rejection> {
        let exists = match note.object_type_id {
            NOTE_ON_ACCOUNT => self.accounts.contains_key(&note.object_id),
            NOTE_ON_SERVICE => self.services.contains_key(&note.object_id),
            _ => return Err("Invalid object type id".into()),
        };
        if !exists {
            let undefined = if note.object_type_id == NOTE_ON_ACCOUNT {
                "Undefined account"
            } else {
                "Undefined service"
            };
            return Err(undefined.into());
        }
        if note.subject.trim().is_empty() {
            return Err("Missing note subject".into());
        }
        let note_id = next(&mut self.ids.note);
        self.notes.push(Note {
            note_id,
            object_type_id: note.object_type_id,
            object_id: note.object_id,
            subject: note.subject,
            detail: note.detail,
        });
        Ok(note_id)
    }

    pub(super) fn create_payment(&mut self, payment: NewPayment) -> Result<i64, Rejection> {
        if !self.accounts.contains_key(&payment.account_id) {
            return Err("Undefined account".into());
        }
        let amount = Decimal::from_str(payment.amount.trim())
            .ok()
            .filter(|amount| *amount > Decimal::ZERO)
            .ok_or("Invalid amount")?;
        // "DD MMM YYYY", e.g. "22 Nov 2026".
        let transaction_date =
            NaiveDate::parse_from_str(payment.transaction_date.trim(), "%d %b %Y")
                .map_err(|_| "Invalid transaction date")?;
        let payment_id = next(&mut self.ids.payment);
        self.payments.push(Payment {
            payment_id,
            account_id: payment.account_id,
            transaction_category: payment.transaction_category,
            reference: payment.reference,
            amount,
            transaction_date,
        });
        Ok(payment_id)
    }
}
