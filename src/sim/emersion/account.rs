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
/// pinned: the object types that exist; W `API/Account/AddNote` names only 1 (Account)
/// and 5 (Service), the only two it takes.
const OBJECT_TYPES: std::ops::RangeInclusive<i64> = 1..=9;

/// AddNote's fields as received (`None` when absent): the rules judge the ids' text.
pub(super) struct NewNote {
    pub(super) object_type_id: Option<String>,
    pub(super) object_type_value: Option<String>,
    pub(super) subject: String,
    pub(super) detail: String,
    pub(super) category_id: Option<String>,
}

/// CreatePayment's TransactionCategory codes (W `API/RetailServices/CreatePayment`), each
/// with the meaning the page gives it.
const TRANSACTION_CATEGORIES: [(&str, &str); 16] = [
    ("VISA_MC", "Credit Card - VISA/MASTERCARD"),
    ("AMEX", "Credit Card - AMEX"),
    ("DINERS", "Credit Card - DINERS"),
    ("CONTRA", "Contra"),
    ("AGENT", "Agent Collected"),
    ("DIRECTDEBIT", "Direct Debit"),
    ("EFT", "EFT or Direct Deposit"),
    ("EFTPOS", "EFTPOS"),
    ("CASH", "Cash"),
    ("CHEQUE", "Cheque"),
    ("MORDER", "Money Order"),
    ("BPAY", "BPay"),
    ("PAYBYPHONE", "Pay By Phone"),
    ("POSTBILLPAY", "Australia Post Bill Pay"),
    ("CREDITCARD", "Credit Card"),
    ("INTERNAL", "Internal Charge"),
];

/// pinned: the page asks for the code; today's commands and examples send its meaning
/// ("Credit Card"), which the simulator takes as well.
fn is_transaction_category(category: &str) -> bool {
    let category = category.trim();
    TRANSACTION_CATEGORIES.iter().any(|(code, meaning)| {
        code.eq_ignore_ascii_case(category) || meaning.eq_ignore_ascii_case(category)
    })
}

/// pinned: the page's text is cut after "category ty"; the rest is a guess.
const INVALID_CATEGORY: &str =
    "You must provide a valid transaction category, please check documentation for the category types.";

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
    /// `None` when absent or not a number.
    pub(super) account_id: Option<i64>,
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
                foreign: false,
                needs_credit_check: false,
            },
        );
        Ok(account_id)
    }

    /// W `API/Account/AddNote`, its checks in the page's order.
    pub(super) fn add_note(&mut self, note: NewNote) -> Result<i64, Rejection> {
        let object_type_id: i64 = note
            .object_type_id
            .ok_or("Missing mandatory Object Type ID")?
            .trim()
            .parse()
            .map_err(|_| "Object Type ID must be Integer")?;
        if !OBJECT_TYPES.contains(&object_type_id) {
            return Err("Object Type ID does not exist in the system".into());
        }
        if ![NOTE_ON_ACCOUNT, NOTE_ON_SERVICE].contains(&object_type_id) {
            return Err("Object Type ID must be 1 or 5".into());
        }
        let object_id: i64 = note
            .object_type_value
            .ok_or("Missing mandatory Object Type Value")?
            .trim()
            .parse()
            .map_err(|_| "Object Type Value must be Integer")?;
        if object_type_id == NOTE_ON_ACCOUNT {
            let account = self.accounts.get(&object_id).ok_or("Invalid Account ID")?;
            if account.foreign {
                return Err("Provided Account ID does not belong to caller Account".into());
            }
        } else {
            let service = self.services.get(&object_id).ok_or("Invalid Service ID")?;
            let account = self
                .accounts
                .get(&service.account_id)
                .ok_or("Provided Service ID does not belong to a Valid Account")?;
            if account.foreign {
                return Err("Provided Service ID does not belong to caller Account".into());
            }
        }
        // pinned: the simulator has no note categories.
        if note.category_id.is_some() {
            return Err("Invalid Category ID".into());
        }
        if note.subject.trim().is_empty() {
            return Err("Missing note subject".into());
        }
        let note_id = next(&mut self.ids.note);
        self.notes.push(Note {
            note_id,
            object_type_id,
            object_id,
            subject: note.subject,
            detail: note.detail,
        });
        Ok(note_id)
    }

    /// W `API/RetailServices/CreatePayment`: an account that does not exist (or an id that
    /// is none) is invalid; one that is not the caller's own customer is refused.
    pub(super) fn create_payment(&mut self, payment: NewPayment) -> Result<i64, Rejection> {
        let account = payment
            .account_id
            .and_then(|id| self.accounts.get(&id))
            .ok_or("The customer account ID is invalid.")?;
        if account.foreign {
            return Err("You can only operate on accounts that are your direct children.".into());
        }
        let account_id = account.account_id;
        if !is_transaction_category(&payment.transaction_category) {
            return Err(INVALID_CATEGORY.into());
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
            account_id,
            transaction_category: payment.transaction_category,
            reference: payment.reference,
            amount,
            transaction_date,
        });
        Ok(payment_id)
    }
}
