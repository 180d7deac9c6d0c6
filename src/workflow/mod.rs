//! Workflows: each one a module behind the [`Workflow`] trait (its command, API, stages,
//! what each stage calls, and which stage comes next), listed once in [`registry`].
//! It calls the billing clients and must not import the engine, the store, the broker,
//! `runtime` or `cli`: nothing here knows about queues or the store.

pub mod advancepay;
pub mod registry;
pub mod service_order;
pub mod stage;

use std::collections::BTreeMap;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::billing::costguard::CostGuardClient;
use crate::billing::emersion::EmersionClient;
use crate::billing::{Api, Failure};
use crate::contract::command::{Command, CommandData};
pub use stage::Stage;

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
/// A workflow answers with the stage's output; the registry adds the next stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe<T = StageDone> {
    /// It took effect; this is what the stage would have returned.
    Applied(T),
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

/// One workflow: the command that starts it, the API its stages call, its stages, what
/// each runs and which comes next. A new workflow is a module implementing this plus one
/// line in [`registry`].
pub trait Workflow: Send + Sync + 'static {
    /// Its name in events and metrics (`workflow.<NAME>.<outcome>`).
    const NAME: &'static str;
    /// The command type that starts it: the command's `type` and routing key.
    const COMMAND_TYPE: &'static str;
    /// The API its stages call: the key of its concurrency, rate and breaker guard.
    const API: Api;
    /// Example commands, `(name, JSON)` from `schemas/examples/commands/`, shown in the
    /// AsyncAPI document (the schema tests require one per command type).
    const EXAMPLES: &'static [(&'static str, &'static str)];

    /// The command's `data`.
    type Data: CommandData + DeserializeOwned + Send + Sync;
    type Stage: Stage;

    fn first_stage(data: &Self::Data) -> Self::Stage;

    /// The stage after `stage`, which just returned `output` (`outputs` holds the earlier
    /// stages'); `None` when the workflow is complete. The only place a transition is
    /// written: a run and a probe that finds the call applied both go on from here.
    fn next(
        data: &Self::Data,
        stage: Self::Stage,
        outputs: &Outputs,
        output: &Value,
    ) -> Result<Option<Self::Stage>, StageError>;

    /// Runs one stage: its output.
    fn run(
        ctx: &Workflows,
        command: &Command,
        data: &Self::Data,
        stage: Self::Stage,
        outputs: &Outputs,
    ) -> impl Future<Output = Result<Value, StageError>> + Send;

    /// Asks the platform whether a stage's call took effect; called only for stages that
    /// [`Stage::has_probe`].
    fn probe(
        ctx: &Workflows,
        command: &Command,
        data: &Self::Data,
        stage: Self::Stage,
        outputs: &Outputs,
    ) -> impl Future<Output = Result<Probe<Value>, StageError>> + Send {
        let _ = (ctx, command, data, stage, outputs);
        async { Ok(Probe::Unavailable) }
    }

    /// One line about a completed workflow (every stage's output by stage name) for a
    /// person, e.g. the demo's summary.
    fn summary(outputs: &Value) -> Option<String> {
        let _ = outputs;
        None
    }
}

/// A stage's earlier output, typed. Missing or unreadable means the stage message was
/// tampered with or built by an incompatible version: permanent.
pub fn output_of<T: DeserializeOwned>(
    outputs: &Outputs,
    stage: impl Stage,
) -> Result<T, StageError> {
    let stage = stage.as_str();
    let value = outputs.get(stage).ok_or_else(|| {
        StageError::permanent(format!("stage message lacks the output of {stage}"))
    })?;
    decode(stage, value)
}

/// A stage's output as JSON, for the routing slip and the events.
pub fn encode<T: Serialize>(output: T) -> Result<Value, StageError> {
    serde_json::to_value(output)
        .map_err(|e| StageError::permanent(format!("cannot encode stage output: {e}")))
}

/// A stage's output read back as its type; `stage` names it in the error.
pub fn decode<T: DeserializeOwned>(stage: &str, value: &Value) -> Result<T, StageError> {
    T::deserialize(value)
        .map_err(|e| StageError::permanent(format!("output of {stage} is unreadable: {e}")))
}

/// Everything the stages call, and the defaults commands may leave out. A platform
/// without configuration is `None`: its commands fail with a clear reason.
#[derive(Clone)]
pub struct Workflows {
    pub costguard: Option<CostGuardClient>,
    pub costguard_environment: String,
    /// `COSTGUARD_PINNED_ORDER_PROBES`: reconcile with the pinned, undocumented order read too.
    pub costguard_pinned_order_probes: bool,
    pub emersion: Option<EmersionClient>,
    /// Decimal places of the currency (`BILLFLOW_CURRENCY_SCALE`): no amount may have more.
    pub currency_scale: u32,
}

impl Workflows {
    /// Runs a stage of the command's workflow: its output and the next stage.
    pub async fn run(
        &self,
        command: &Command,
        stage: &str,
        outputs: &Outputs,
    ) -> Result<StageDone, StageError> {
        registry::run(self, command, stage, outputs).await
    }

    /// Asks the platform whether the stage's call took effect (see [`Probe`]).
    pub async fn probe(
        &self,
        command: &Command,
        stage: &str,
        outputs: &Outputs,
    ) -> Result<Probe, StageError> {
        registry::probe(self, command, stage, outputs).await
    }

    /// The CostGuard client, its calls tagged with the command and stage.
    pub fn costguard(&self, command: &Command, stage: &str) -> Result<CostGuardClient, StageError> {
        self.costguard
            .as_ref()
            .map(|c| c.with_idempotency_key(idempotency_key(command, stage)))
            .ok_or_else(|| {
                StageError::permanent(
                    "CostGuard is not configured on this worker (COSTGUARD_TOKEN, or COSTGUARD_USERNAME and COSTGUARD_PASSWORD)",
                )
            })
    }

    /// The Emersion client, its calls tagged with the command and stage.
    pub fn emersion(&self, command: &Command, stage: &str) -> Result<EmersionClient, StageError> {
        self.emersion
            .as_ref()
            .map(|c| c.with_idempotency_key(idempotency_key(command, stage)))
            .ok_or_else(|| {
                StageError::permanent(
                    "Emersion is not configured on this worker (EMERSION_CLIENT_CERT and EMERSION_CLIENT_KEY)",
                )
            })
    }
}

/// Sent as `Idempotency-Key` on every call of a stage, so the platform's logs (and
/// platforms that honour the header) can tie a call to its command and stage.
fn idempotency_key(command: &Command, stage: &str) -> String {
    format!("{}/{stage}", command.command_id)
}
