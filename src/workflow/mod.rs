//! Workflows as plain data (their stages and each stage's effect) plus one async function
//! per stage over a billing client. Nothing here knows about queues or the store.

pub mod advancepay;
pub mod service_order;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::billing::costguard::CostGuardClient;
use crate::billing::emersion::EmersionClient;
use crate::billing::Failure;
use crate::command::{Command, CommandBody};

/// Whether a stage's call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads, or recomputes without changing anything of lasting effect (lookups, Checkout).
    Repeatable,
    /// Creates or changes something: sent at most once per (command, stage).
    NonIdempotent,
}

/// Outputs of the stages run so far, by stage name: the routing slip.
pub type Outputs = BTreeMap<String, Value>;

/// A stage finished: its output and the stage to run next (`None`: workflow complete).
#[derive(Debug, Clone, PartialEq)]
pub struct StageDone {
    pub output: Value,
    pub next: Option<&'static str>,
}

/// What a read-only probe says about a non-idempotent call whose outcome is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// It took effect; this is what the stage would have returned.
    Applied(StageDone),
    /// It did not: sending it now is safe.
    NotApplied,
    /// The platform has no lookup that tells: a person must decide.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub failure: Failure,
    pub message: String,
}

impl StageError {
    pub fn permanent(message: impl Into<String>) -> Self {
        StageError {
            failure: Failure::Permanent,
            message: message.into(),
        }
    }
}

impl From<crate::billing::emersion::EmersionError> for StageError {
    fn from(err: crate::billing::emersion::EmersionError) -> Self {
        StageError {
            failure: err.failure(),
            message: err.to_string(),
        }
    }
}

impl From<crate::billing::costguard::CostGuardError> for StageError {
    fn from(err: crate::billing::costguard::CostGuardError) -> Self {
        StageError {
            failure: err.failure(),
            message: err.to_string(),
        }
    }
}

/// A stage's earlier output, typed. Missing or unreadable means the stage message was
/// tampered with or built by an incompatible version: permanent.
pub fn output_of<T: DeserializeOwned>(outputs: &Outputs, stage: &str) -> Result<T, StageError> {
    let value = outputs.get(stage).ok_or_else(|| {
        StageError::permanent(format!("stage message lacks the output of {stage}"))
    })?;
    serde_json::from_value(value.clone())
        .map_err(|e| StageError::permanent(format!("output of {stage} is unreadable: {e}")))
}

/// Everything the stages call, and the defaults commands may leave out. A platform
/// without configuration is `None`: its commands fail with a clear reason.
#[derive(Clone)]
pub struct Workflows {
    pub costguard: Option<CostGuardClient>,
    pub costguard_environment: String,
    pub emersion: Option<EmersionClient>,
    /// Decimal places of the currency (`BILLFLOW_CURRENCY_SCALE`): no amount may have more.
    pub currency_scale: u32,
}

impl Workflows {
    /// Event name of a command's workflow (`workflow.<name>.<outcome>`).
    pub fn name(body: &CommandBody) -> &'static str {
        match body {
            CommandBody::AdvancePayRenew(_) => advancepay::WORKFLOW,
            CommandBody::ServiceOrderSubmit(_) => service_order::WORKFLOW,
        }
    }

    /// The API a command's stages call: the key of its concurrency, rate and breaker guard.
    pub fn api(body: &CommandBody) -> crate::billing::Api {
        match body {
            CommandBody::AdvancePayRenew(_) => crate::billing::Api::CostGuard,
            CommandBody::ServiceOrderSubmit(_) => crate::billing::Api::Emersion,
        }
    }

    /// Workflow name of a command type, for events about commands that failed to parse.
    pub fn name_of_type(command_type: &str) -> Option<&'static str> {
        match command_type {
            "advancepay.renew" => Some(advancepay::WORKFLOW),
            "service_order.submit" => Some(service_order::WORKFLOW),
            _ => None,
        }
    }

    pub fn first_stage(body: &CommandBody) -> &'static str {
        match body {
            CommandBody::AdvancePayRenew(_) => advancepay::STAGES[0].0,
            CommandBody::ServiceOrderSubmit(data) => service_order::first_stage(data),
        }
    }

    /// Whether the platform has a read-only lookup that tells if the stage's call took effect.
    pub fn has_probe(body: &CommandBody, stage: &str) -> bool {
        match body {
            CommandBody::AdvancePayRenew(_) => advancepay::PROBED.contains(&stage),
            CommandBody::ServiceOrderSubmit(_) => service_order::PROBED.contains(&stage),
        }
    }

    /// The effect of a stage, or `None` for a stage the workflow does not have.
    pub fn effect(body: &CommandBody, stage: &str) -> Option<Effect> {
        let stages = match body {
            CommandBody::AdvancePayRenew(_) => advancepay::STAGES,
            CommandBody::ServiceOrderSubmit(_) => service_order::STAGES,
        };
        stages.iter().find(|(s, _)| *s == stage).map(|(_, e)| *e)
    }

    fn costguard(&self, command: &Command, stage: &str) -> Result<CostGuardClient, StageError> {
        self.costguard
            .as_ref()
            .map(|c| c.with_idempotency_key(idempotency_key(command, stage)))
            .ok_or_else(|| {
                StageError::permanent(
                    "CostGuard is not configured on this worker (COSTGUARD_TOKEN)",
                )
            })
    }

    fn emersion(&self, command: &Command, stage: &str) -> Result<EmersionClient, StageError> {
        self.emersion
            .as_ref()
            .map(|c| c.with_idempotency_key(idempotency_key(command, stage)))
            .ok_or_else(|| {
                StageError::permanent(
                    "Emersion is not configured on this worker (EMERSION_USERNAME)",
                )
            })
    }

    fn environment<'a>(&'a self, data: &'a crate::command::RenewData) -> &'a str {
        data.environment
            .as_deref()
            .unwrap_or(&self.costguard_environment)
    }

    /// The command parser checked the payment amount for everything but the currency,
    /// which only the worker knows: an amount with more places fails before any call.
    fn check_payment(&self, data: &crate::command::ServiceOrderData) -> Result<(), StageError> {
        match &data.payment {
            Some(payment) => crate::money::check(payment.amount, self.currency_scale)
                .map(drop)
                .map_err(|e| StageError::permanent(format!("data.payment.amount: {e}"))),
            None => Ok(()),
        }
    }

    pub async fn run(
        &self,
        command: &Command,
        stage: &str,
        outputs: &Outputs,
    ) -> Result<StageDone, StageError> {
        match &command.body {
            CommandBody::AdvancePayRenew(data) => {
                let client = self.costguard(command, stage)?;
                let env = self.environment(data);
                advancepay::run(&client, env, self.currency_scale, data, stage, outputs).await
            }
            CommandBody::ServiceOrderSubmit(data) => {
                self.check_payment(data)?;
                service_order::run(&self.emersion(command, stage)?, data, stage, outputs).await
            }
        }
    }

    /// Asks the platform whether the stage's call took effect (see [`Probe`]).
    pub async fn probe(
        &self,
        command: &Command,
        stage: &str,
        outputs: &Outputs,
    ) -> Result<Probe, StageError> {
        match &command.body {
            CommandBody::AdvancePayRenew(data) => {
                let client = self.costguard(command, stage)?;
                let env = self.environment(data);
                advancepay::probe(&client, env, self.currency_scale, stage, outputs).await
            }
            CommandBody::ServiceOrderSubmit(data) => {
                service_order::probe(&self.emersion(command, stage)?, data, stage, outputs).await
            }
        }
    }
}

/// Sent as `Idempotency-Key` on every call of a stage, so the platform's logs (and
/// platforms that honour the header) can tie a call to its command and stage.
fn idempotency_key(command: &Command, stage: &str) -> String {
    format!("{}/{stage}", command.command_id)
}
