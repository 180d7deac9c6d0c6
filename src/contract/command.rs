//! Commands as CRM systems publish them: `{"command_id", "type", "data"}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::new_account::{NewAccount, PortalLogin};
use super::package_services;
pub use super::package_services::{ServiceKey, ServiceValues};
use crate::workflow::registry;
pub use crate::workflow::registry::CommandBody;

/// Longest accepted `command_id`; it becomes part of store keys, event ids and headers.
pub const MAX_COMMAND_ID_LEN: usize = 200;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("unknown command type {0:?} (known: {known})", known = registry::command_types().join(", "))]
    UnknownType(String),
}

/// A validated command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Command {
    /// Idempotency key chosen by the publisher: the same id is never processed twice.
    pub command_id: String,
    #[serde(flatten)]
    pub body: CommandBody,
}

/// What every command's `data` has: its own validation beyond serde, and the secrets
/// it carries.
pub trait CommandData: Sync {
    /// Checks what serde cannot, with an error that says what to fix.
    fn validate(&self) -> Result<(), CommandError>;

    /// The secrets (passwords) the data carries: masked in every text about the command
    /// that leaves the worker.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The same secrets, to seal them out of a message and put them back.
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        Vec::new()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewData {
    /// The service number (phone number) of the service to renew.
    pub service_number: String,
    /// CostGuard order type of the renewal order.
    pub order_type_id: i64,
    /// Register the renewal order is taxed and tendered on.
    pub register_id: i64,
    /// Tender type of the cash tender.
    pub tender_type_id: i64,
    /// CostGuard environment; defaults to the worker's `COSTGUARD_ENVIRONMENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Present: restore the service first when it is Hotlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreData {
    /// Order type of the restore order.
    pub order_type_id: i64,
    /// Restore reason.
    pub reason_id: i64,
}

/// `service_order.submit`: the Emersion onboarding of seed 000. Ids are passed to
/// Emersion as given, so its own validation errors reach the events verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceOrderData {
    /// The customer's account: by id, by portal username and password, or `new` to create it.
    pub account: AccountRef,
    /// Continue an order already started (skips StartOrder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_presale_id: Option<i64>,
    /// The SQ the started order already holds (skips the SQ); needs `account_presale_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_presale_sq_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo_code: Option<String>,
    /// Service type to qualify and order.
    pub service_type_id: i64,
    /// Which service qualification to run.
    pub sq: SqRequest,
    /// The package: by plan id, or by its external name among the available packages.
    pub package: PackageChoice,
    /// Service configuration values (checked against GetServiceConfigurationRequirements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configuration: Vec<PropertyValue>,
    /// Service features (checked against GetServiceFeatureConfigurationRequirements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureValue>,
    /// Service contacts (counted against GetServiceContactRequirements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactData>,
    /// Service identifier (checked against the identifier requirements and realms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<IdentifierData>,
    /// Values for the package's other services (by service type, or by service plan when
    /// a type repeats), each with the SQ it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceValues>,
    /// The customer accepted the package's terms and conditions. Without it an order
    /// whose package has terms never reaches CompleteOrder.
    #[serde(default)]
    pub accept_terms: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<NoteData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A customer without an account: the workflow creates it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<NewAccount>,
}

impl AccountRef {
    fn portal_password(&self) -> Option<&str> {
        let login = self.new.as_ref()?.portal_login.as_ref()?;
        Some(login.password.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SqRequest {
    /// PerformSimpleSQ (check types NoSQ, Autoidentifier).
    Simple,
    /// PerformGeneralPhoneSQ.
    GeneralPhone {
        #[serde(default)]
        transfer_type: TransferKind,
        /// The number; required for `churn`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identifier: Option<String>,
        /// Earlier form of `identifier` with `transfer_type` `new`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_number: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range_size: Option<u32>,
    },
    /// PerformNWBSQ on the service's FNN, or on the location FindNWBSQAddress finds for
    /// the address.
    #[schemars(extend("anyOf" = [{"required": ["address"]}, {"required": ["fnn"]}]))]
    Nwb {
        #[serde(default)]
        transfer_type: TransferKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<AddressData>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fnn: Option<String>,
        /// With `address`; the platform's NWB provider when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_provider: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mark_as_available: Option<bool>,
    },
}

/// An SQ's TransferType: a new service, or one taken over from another provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    #[default]
    New,
    Churn,
}

impl SqRequest {
    /// The phone SQ's transfer type and number. pinned: the earlier `phone_number` alone
    /// is the number of a `new` service, as the phone SQ qualified it before TransferType.
    pub fn phone(&self) -> Option<(TransferKind, Option<&str>)> {
        match self {
            SqRequest::GeneralPhone {
                transfer_type,
                identifier,
                phone_number,
                ..
            } => Some((
                *transfer_type,
                identifier.as_deref().or(phone_number.as_deref()),
            )),
            _ => None,
        }
    }

    /// The TransferType the requirements are read for.
    pub fn transfer_type(&self) -> TransferKind {
        match self {
            SqRequest::Simple => TransferKind::New,
            SqRequest::GeneralPhone { transfer_type, .. }
            | SqRequest::Nwb { transfer_type, .. } => *transfer_type,
        }
    }

    pub(crate) fn problems(&self, problems: &mut Vec<String>) {
        match self {
            SqRequest::Simple => {}
            SqRequest::GeneralPhone {
                transfer_type,
                identifier,
                phone_number,
                ..
            } => {
                if identifier.is_some() && phone_number.is_some() {
                    problems.push("data.sq: give identifier or phone_number, not both".into());
                }
                let number = identifier.as_deref().or(phone_number.as_deref());
                if number.is_some_and(|n| n.trim().is_empty()) {
                    problems.push("data.sq.identifier is empty".into());
                }
                if *transfer_type == TransferKind::Churn && number.is_none() {
                    problems.push("data.sq: a churn needs the identifier".into());
                }
            }
            SqRequest::Nwb { address, fnn, .. } => match (address, fnn) {
                (Some(_), None) => {}
                (None, Some(fnn)) if !fnn.trim().is_empty() => {}
                _ => problems.push("data.sq needs exactly one of address and fnn".into()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressData {
    #[serde(default)]
    pub street_number: String,
    #[serde(default)]
    pub street_name: String,
    #[serde(default)]
    pub street_type: String,
    #[serde(default)]
    pub suburb: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub postcode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyValue {
    pub type_id: i64,
    pub value: String,
}

/// A service feature for SetServiceFeatureSetup: its Type ID, with an OptionType ID and a
/// FeatureIdentifier where the feature takes them; or the earlier `feature_id` + `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum FeatureValue {
    Setup {
        type_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option_type_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identifier: Option<String>,
    },
    Earlier {
        feature_id: i64,
        value: String,
    },
}

/// What a [`FeatureValue`] asks to set.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSetting {
    pub type_id: i64,
    pub option_type_id: Option<i64>,
    pub identifier: Option<String>,
}

impl FeatureValue {
    /// The feature to set, `None` for one the command turns off. pinned: an earlier
    /// `value` of true/on/1 is the feature at its default option, false/off/0 leaves it
    /// out, anything else is its FeatureIdentifier.
    pub fn setting(&self) -> Option<FeatureSetting> {
        match self {
            FeatureValue::Setup {
                type_id,
                option_type_id,
                identifier,
            } => Some(FeatureSetting {
                type_id: *type_id,
                option_type_id: *option_type_id,
                identifier: identifier.clone(),
            }),
            FeatureValue::Earlier { feature_id, value } => {
                let identifier = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "on" | "1" => None,
                    "false" | "off" | "0" => return None,
                    _ => Some(value.clone()),
                };
                Some(FeatureSetting {
                    type_id: *feature_id,
                    option_type_id: None,
                    identifier,
                })
            }
        }
    }

    pub fn type_id(&self) -> i64 {
        match self {
            FeatureValue::Setup { type_id, .. } => *type_id,
            FeatureValue::Earlier { feature_id, .. } => *feature_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactData {
    /// The contact type id of GetServiceContactRequirements.
    pub type_id: i64,
    #[serde(default)]
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    /// YYYY-MM-DD
    #[serde(default)]
    pub date_of_birth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierData {
    pub username: String,
    pub realm: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteData {
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentData {
    pub transaction_category: String,
    pub reference: String,
    /// Decimal amount as a string, e.g. "49.95": no exponent, below 1000000000.
    #[serde(deserialize_with = "crate::money::deserialize_amount")]
    #[schemars(schema_with = "crate::money::amount_schema")]
    pub amount: rust_decimal::Decimal,
    pub transaction_date: chrono::NaiveDate,
}

impl CommandData for ServiceOrderData {
    fn validate(&self) -> Result<(), CommandError> {
        let mut problems = Vec::new();
        let a = &self.account;
        match (a.account_id, &a.username, &a.password, &a.new) {
            (Some(_), None, None, None) => {}
            (None, Some(u), Some(_), None) if !u.trim().is_empty() => {}
            (None, None, None, Some(new)) => problems.extend(new.problems()),
            _ => problems.push(
                "data.account needs exactly one of: account_id; username and password; new"
                    .to_string(),
            ),
        }
        match (&self.package.plan_id, &self.package.external_name) {
            (Some(_), None) => {}
            (None, Some(name)) if !name.trim().is_empty() => {}
            _ => problems
                .push("data.package needs exactly one of plan_id and external_name".to_string()),
        }
        self.sq.problems(&mut problems);
        problems.extend(package_services::problems(
            &self.services,
            self.service_type_id,
        ));
        if self.account_presale_sq_id.is_some() && self.account_presale_id.is_none() {
            problems.push("data.account_presale_sq_id needs account_presale_id".to_string());
        }
        for contact in &self.contacts {
            if contact.first_name.trim().is_empty() || contact.last_name.trim().is_empty() {
                problems.push(
                    "data.contacts: every contact needs first_name and last_name".to_string(),
                );
                break;
            }
        }
        if let Some(payment) = &self.payment {
            if let Err(e) = crate::money::positive(payment.amount) {
                problems.push(format!("data.payment.amount: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Invalid(problems.join("; ")))
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.account
            .password
            .as_deref()
            .into_iter()
            .chain(self.account.portal_password())
            .chain(self.identifier.as_ref().map(|i| i.password.as_str()))
            .chain(
                self.services
                    .iter()
                    .filter_map(|s| s.identifier.as_ref().map(|i| i.password.as_str())),
            )
            .collect()
    }

    fn secrets_mut(&mut self) -> Vec<&mut String> {
        let portal = self
            .account
            .new
            .as_mut()
            .and_then(|n| n.portal_login.as_mut())
            .map(|l| &mut l.password);
        self.account
            .password
            .as_mut()
            .into_iter()
            .chain(portal)
            .chain(self.identifier.as_mut().map(|i| &mut i.password))
            .chain(
                self.services
                    .iter_mut()
                    .filter_map(|s| s.identifier.as_mut().map(|i| &mut i.password)),
            )
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    command_id: serde_json::Value,
    #[serde(rename = "type")]
    kind: String,
    data: serde_json::Value,
}

impl Command {
    /// Parses and validates a message body, with an error that says what to fix.
    pub fn parse(body: &[u8]) -> Result<Command, CommandError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| CommandError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    pub fn from_value(value: serde_json::Value) -> Result<Command, CommandError> {
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| CommandError::Invalid(e.to_string()))?;
        let command_id = match envelope.command_id {
            serde_json::Value::String(id) => id,
            _ => return Err(CommandError::Invalid("command_id must be a string".into())),
        };
        validate_command_id(&command_id)?;
        let body = CommandBody::parse(&envelope.kind, envelope.data)?;
        Ok(Command { command_id, body })
    }

    /// The secrets this command carries (account and identifier passwords): masked in every
    /// text about it that leaves the worker.
    pub fn secrets(&self) -> Vec<&str> {
        self.body.data().secrets()
    }

    /// The same secrets, to seal them out of a message and put them back.
    pub fn secrets_mut(&mut self) -> Vec<&mut String> {
        self.body.data_mut().secrets_mut()
    }

    /// SHA-256 of the command's type and data in canonical form (the typed command written
    /// back: fixed field order, defaults filled in), hex. Equal for an identical re-send
    /// whatever its key order; different when any value differs.
    pub fn digest(&self) -> String {
        // Serializing typed data (strings, numbers, decimals, dates) cannot fail.
        let canonical = serde_json::to_vec(&self.body).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Best-effort id of a command or stage message that failed to parse, for the failed
    /// event.
    pub fn sniff_id(body: &[u8]) -> Option<String> {
        let id = sniff(body, "command_id")?;
        validate_command_id(&id).ok()?;
        Some(id)
    }

    /// Best-effort type of a command or stage message that failed to parse.
    pub fn sniff_type(body: &[u8]) -> Option<String> {
        sniff(body, "type")
    }
}

/// The ids a body names, read without building the document: the rest is skipped, so
/// even an oversized body costs no memory to sniff.
#[derive(Deserialize)]
struct Sniffed {
    command_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// A stage message carries its command inside.
    command: Option<SniffedCommand>,
}

#[derive(Deserialize)]
struct SniffedCommand {
    command_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A string field of a command, or of the command inside a stage message.
fn sniff(body: &[u8], field: &str) -> Option<String> {
    let sniffed: Sniffed = serde_json::from_slice(body).ok()?;
    let (outer, inner) = match field {
        "command_id" => (
            sniffed.command_id,
            sniffed.command.and_then(|c| c.command_id),
        ),
        _ => (sniffed.kind, sniffed.command.and_then(|c| c.kind)),
    };
    outer.or(inner)
}

fn validate_command_id(id: &str) -> Result<(), CommandError> {
    if id.trim().is_empty() {
        return Err(CommandError::Invalid("command_id is empty".into()));
    }
    if id.len() > MAX_COMMAND_ID_LEN {
        return Err(CommandError::Invalid(format!(
            "command_id is longer than {MAX_COMMAND_ID_LEN} bytes"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(CommandError::Invalid(
            "command_id contains control characters".into(),
        ));
    }
    Ok(())
}

impl CommandData for RenewData {
    fn validate(&self) -> Result<(), CommandError> {
        let mut problems = Vec::new();
        if self.service_number.trim().is_empty() {
            problems.push("data.service_number is empty".to_string());
        }
        if self.service_number.len() > 64 {
            problems.push("data.service_number is longer than 64 bytes".to_string());
        }
        for (name, value) in [
            ("order_type_id", self.order_type_id),
            ("register_id", self.register_id),
            ("tender_type_id", self.tender_type_id),
        ] {
            if value <= 0 {
                problems.push(format!("data.{name} must be positive, got {value}"));
            }
        }
        if let Some(env) = &self.environment {
            if env.trim().is_empty() || env.contains('/') {
                problems.push(format!(
                    "data.environment {env:?} is not an environment name"
                ));
            }
        }
        if let Some(restore) = &self.restore {
            if restore.order_type_id <= 0 || restore.reason_id <= 0 {
                problems.push("data.restore ids must be positive".to_string());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Invalid(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = r#"{"command_id": "crm-42", "type": "advancepay.renew",
       "data": {"service_number": "5555555555", "order_type_id": 1, "register_id": 12,
                "tender_type_id": 2, "environment": "test",
                "restore": {"order_type_id": 1013, "reason_id": 4}}}"#;

    #[test]
    fn the_pinned_example_parses_and_round_trips() {
        let cmd = Command::parse(PINNED.as_bytes()).unwrap();
        assert_eq!(cmd.command_id, "crm-42");
        let CommandBody::AdvancePayRenew(data) = &cmd.body else {
            panic!("not a renewal");
        };
        assert_eq!(data.restore.as_ref().unwrap().reason_id, 4);
        let again: Command = serde_json::from_value(serde_json::to_value(&cmd).unwrap()).unwrap();
        assert_eq!(again, cmd);
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let err = |body: &str| Command::parse(body.as_bytes()).unwrap_err().to_string();
        assert!(err("not json").contains("not JSON"));
        assert!(err(r#"{"type":"advancepay.renew","data":{}}"#).contains("command_id"));
        assert!(
            err(r#"{"command_id":"a","type":"x.y","data":{}}"#).contains("unknown command type")
        );
        let missing =
            err(r#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":"1"}}"#);
        assert!(
            missing.contains("missing field `order_type_id`"),
            "{missing}"
        );
        let negative = err(
            r#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":" ","order_type_id":0,"register_id":1,"tender_type_id":1}}"#,
        );
        assert!(negative.contains("service_number is empty") && negative.contains("order_type_id"));
        assert!(err(r#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1,"extra":1}}"#).contains("unknown field"));
    }

    #[test]
    fn payment_amounts_are_plain_positive_decimals() {
        let sign_up = |amount: serde_json::Value| {
            serde_json::json!({"command_id": "a", "type": "service_order.submit", "data": {
                "account": {"account_id": 1}, "service_type_id": 1, "sq": {"kind": "simple"},
                "package": {"plan_id": 1},
                "payment": {"transaction_category": "Credit Card", "reference": "r",
                            "amount": amount, "transaction_date": "2026-11-22"}}})
            .to_string()
        };
        let amount = |json: serde_json::Value| match Command::parse(sign_up(json).as_bytes()) {
            Ok(Command {
                body: CommandBody::ServiceOrderSubmit(data),
                ..
            }) => Ok(data.payment.map(|p| p.amount.to_string())),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(amount(serde_json::json!("49.95")), Ok(Some("49.95".into())));
        assert_eq!(amount(serde_json::json!(49.95)), Ok(Some("49.95".into())));
        for (bad, why) in [
            (serde_json::json!("1e5"), "not a plain decimal"),
            (serde_json::json!("NaN"), "not a plain decimal"),
            (serde_json::json!(""), "not a plain decimal"),
            (serde_json::json!("0"), "not positive"),
            (serde_json::json!("-49.95"), "not positive"),
            (serde_json::json!("1000000000"), "out of range"),
            (
                serde_json::json!("79228162514264337593543950335"),
                "out of range",
            ),
            (serde_json::json!(1e300), "more than the 40"),
        ] {
            let err = amount(bad.clone()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn sniffing_finds_what_it_can() {
        assert_eq!(
            Command::sniff_id(br#"{"command_id":"x","type":"q"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(Command::sniff_id(b"garbage"), None);
        assert_eq!(
            Command::sniff_type(br#"{"type":"q"}"#).as_deref(),
            Some("q")
        );
        let stage =
            br#"{"command":{"command_id":"crm-2","type":"advancepay.renew"},"stage":"renew"}"#;
        assert_eq!(Command::sniff_id(stage).as_deref(), Some("crm-2"));
        assert_eq!(
            Command::sniff_type(stage).as_deref(),
            Some("advancepay.renew")
        );
        assert_eq!(Command::sniff_id(br#"{"type":"x"}"#), None);
    }

    #[test]
    fn digests_ignore_key_order_and_see_every_value() {
        let a = Command::parse(br#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1}}"#).unwrap();
        let b = Command::parse(br#"{"data":{"tender_type_id":1,"register_id":1,"order_type_id":1,"service_number":"1"},"type":"advancepay.renew","command_id":"a"}"#).unwrap();
        let c = Command::parse(br#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":"2","order_type_id":1,"register_id":1,"tender_type_id":1}}"#).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn routing_slips_and_stage_fields_are_not_commands() {
        let slip = br#"{"command_id":"a","type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1},"stage":"tender","outputs":{}}"#;
        let err = Command::parse(slip).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
