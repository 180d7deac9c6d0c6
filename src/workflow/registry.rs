//! Every workflow billflow runs, one line each. The line makes its command a variant of
//! [`CommandBody`] (serde tag `type`, data under `data`: the shape of the JSON Schemas)
//! and puts it in [`ALL`], which the CLI, the AsyncAPI document and the demo read. The
//! engine asks here by command or by name, with stage names as strings (they travel as
//! strings in stage messages and the store).
//!
//! To add a workflow: a module implementing [`Workflow`] (its stages declared with
//! [`stages!`](super::stage::stages)), its command's data type implementing
//! [`CommandData`], an example under `schemas/examples/commands/`, and one line below;
//! then regenerate the contract files (`BILLFLOW_WRITE_SCHEMAS=1 cargo test --test it schemas::`).

use std::borrow::{Borrow, BorrowMut};
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{advancepay, service_order};
use super::{Effect, Outputs, Probe, Stage, StageDone, StageError, Workflow, Workflows};
use crate::billing::Api;
use crate::contract::command::{Command, CommandData, CommandError, RenewData, ServiceOrderData};

workflows! {
    /// Renew a prepaid (AdvancePay) service on CostGuard, restoring it first if asked.
    AdvancePayRenew(RenewData) = "advancepay.renew" => advancepay::Renewal;
    /// Sign a customer up on Emersion: order, service qualification, package,
    /// service configuration, terms, completion.
    ServiceOrderSubmit(Box<ServiceOrderData>) = "service_order.submit" => service_order::ServiceOrder;
}

/// A workflow, seen from outside: what the engine, the CLI and the contract documents
/// ask about it, with stages by name.
pub trait AnyWorkflow: Sync {
    /// Its name in events and metrics.
    fn name(&self) -> &'static str;
    /// The command type that starts it.
    fn command_type(&self) -> &'static str;
    /// The API its stages call.
    fn api(&self) -> Api;
    /// Every stage and its effect, in the order they can run.
    fn stages(&self) -> Vec<(&'static str, Effect)>;
    /// The effect of a stage, or `None` for a stage the workflow does not have.
    fn effect(&self, stage: &str) -> Option<Effect>;
    /// Whether the platform has a read-only lookup that tells if the stage's call took effect.
    fn has_probe(&self, stage: &str) -> bool;
    /// Example commands, `(name, JSON)`.
    fn examples(&self) -> &'static [(&'static str, &'static str)];
    /// One line about a completed workflow's outputs, for a person.
    fn summary(&self, outputs: &Value) -> Option<String>;
}

struct Registered<W>(PhantomData<fn() -> W>);

impl<W: Workflow> AnyWorkflow for Registered<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn command_type(&self) -> &'static str {
        W::COMMAND_TYPE
    }

    fn api(&self) -> Api {
        W::API
    }

    fn stages(&self) -> Vec<(&'static str, Effect)> {
        W::Stage::ALL
            .iter()
            .map(|s| (s.as_str(), s.effect()))
            .collect()
    }

    fn effect(&self, stage: &str) -> Option<Effect> {
        W::Stage::parse(stage).map(Stage::effect)
    }

    fn has_probe(&self, stage: &str) -> bool {
        W::Stage::parse(stage).is_some_and(Stage::has_probe)
    }

    fn examples(&self) -> &'static [(&'static str, &'static str)] {
        W::EXAMPLES
    }

    fn summary(&self, outputs: &Value) -> Option<String> {
        W::summary(outputs)
    }
}

/// The workflow of a command.
pub fn of(body: &CommandBody) -> &'static dyn AnyWorkflow {
    body.workflow()
}

/// The workflow a command type starts, e.g. for events about a command that failed to parse.
pub fn of_type(command_type: &str) -> Option<&'static dyn AnyWorkflow> {
    ALL.iter()
        .copied()
        .find(|w| w.command_type() == command_type)
}

/// The workflow of an event name.
pub fn named(name: &str) -> Option<&'static dyn AnyWorkflow> {
    ALL.iter().copied().find(|w| w.name() == name)
}

/// Every command type, in registry order.
pub fn command_types() -> Vec<&'static str> {
    ALL.iter().map(|w| w.command_type()).collect()
}

impl CommandBody {
    pub fn type_name(&self) -> &'static str {
        self.workflow().command_type()
    }
}

fn first_stage_of<W: Workflow>(data: &W::Data) -> &'static str {
    W::first_stage(data).as_str()
}

/// Runs `stage` of `W` and works out the next.
async fn run_stage<W: Workflow>(
    ctx: &Workflows,
    command: &Command,
    data: &W::Data,
    stage: &str,
    outputs: &Outputs,
) -> Result<StageDone, StageError> {
    let stage = W::Stage::parse(stage)
        .ok_or_else(|| StageError::permanent(format!("{} has no stage {stage:?}", W::NAME)))?;
    let output = W::run(ctx, command, data, stage, outputs).await?;
    let next = W::next(data, stage, outputs, &output)?;
    Ok(StageDone {
        output,
        next: next.map(Stage::as_str),
    })
}

/// Probes `stage` of `W`; when the call took effect, the workflow goes on as after a run.
async fn probe_stage<W: Workflow>(
    ctx: &Workflows,
    command: &Command,
    data: &W::Data,
    stage: &str,
    outputs: &Outputs,
) -> Result<Probe, StageError> {
    let Some(stage) = W::Stage::parse(stage).filter(|s| s.has_probe()) else {
        return Ok(Probe::Unavailable);
    };
    Ok(match W::probe(ctx, command, data, stage, outputs).await? {
        Probe::Applied(output) => {
            let next = W::next(data, stage, outputs, &output)?;
            Probe::Applied(StageDone {
                output,
                next: next.map(Stage::as_str),
            })
        }
        Probe::NotApplied => Probe::NotApplied,
        Probe::Unavailable => Probe::Unavailable,
    })
}

/// Reads and validates the `data` of a command.
fn parse_data<W: Workflow>(data: Value) -> Result<W::Data, CommandError> {
    let data: W::Data =
        serde_json::from_value(data).map_err(|e| CommandError::Invalid(format!("data: {e}")))?;
    data.validate()?;
    Ok(data)
}

/// Whether two strings are equal, at compile time.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Generates, from one line per workflow, the command enum and every `match` over it.
/// `$command_type` must be a literal for serde; it is checked against the workflow's own.
macro_rules! workflows {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($data:ty) = $command_type:literal => $workflow:ty;
    )+) => {
        // A command's type and data, one variant per workflow. (No doc comment: it would
        // change the JSON Schemas.)
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum CommandBody {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $command_type)]
                $variant($data),
            )+
        }

        $(
            const _: () = assert!(
                same(<$workflow as Workflow>::COMMAND_TYPE, $command_type),
                "the registry's command type differs from the workflow's"
            );
        )+

        /// Every workflow, in command order.
        pub static ALL: &[&dyn AnyWorkflow] = &[$(&Registered::<$workflow>(PhantomData)),+];

        impl CommandBody {
            /// Reads and validates the `data` of a command of type `kind`.
            pub(crate) fn parse(kind: &str, data: Value) -> Result<Self, CommandError> {
                match kind {
                    $( $command_type => Ok(CommandBody::$variant(parse_data::<$workflow>(data)?.into())), )+
                    other => Err(CommandError::UnknownType(other.to_string())),
                }
            }

            fn workflow(&self) -> &'static dyn AnyWorkflow {
                match self {
                    $( CommandBody::$variant(_) => &Registered::<$workflow>(PhantomData), )+
                }
            }

            /// The command's data, for what every command type has (validation, secrets).
            pub(crate) fn data(&self) -> &dyn CommandData {
                match self {
                    $( CommandBody::$variant(data) => Borrow::<<$workflow as Workflow>::Data>::borrow(data), )+
                }
            }

            pub(crate) fn data_mut(&mut self) -> &mut dyn CommandData {
                match self {
                    $( CommandBody::$variant(data) => BorrowMut::<<$workflow as Workflow>::Data>::borrow_mut(data), )+
                }
            }
        }

        /// The stage a command starts at.
        pub fn first_stage(body: &CommandBody) -> &'static str {
            match body {
                $( CommandBody::$variant(data) => first_stage_of::<$workflow>(data.borrow()), )+
            }
        }

        /// Runs a stage of the command's workflow: its output and the next stage.
        pub(super) async fn run(
            ctx: &Workflows,
            command: &Command,
            stage: &str,
            outputs: &Outputs,
        ) -> Result<StageDone, StageError> {
            match &command.body {
                $( CommandBody::$variant(data) => run_stage::<$workflow>(ctx, command, data.borrow(), stage, outputs).await, )+
            }
        }

        /// Asks the platform whether a stage's call took effect.
        pub(super) async fn probe(
            ctx: &Workflows,
            command: &Command,
            stage: &str,
            outputs: &Outputs,
        ) -> Result<Probe, StageError> {
            match &command.body {
                $( CommandBody::$variant(data) => probe_stage::<$workflow>(ctx, command, data.borrow(), stage, outputs).await, )+
            }
        }
    };
}
use workflows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_type_the_schemas_know_is_registered_once() {
        let types: Vec<String> = command_types().into_iter().map(String::from).collect();
        assert_eq!(types, crate::contract::schemas::command_types());
        for w in ALL {
            assert_eq!(of_type(w.command_type()).map(|o| o.name()), Some(w.name()));
            assert_eq!(
                named(w.name()).map(|o| o.command_type()),
                Some(w.command_type())
            );
            assert!(
                !w.stages().is_empty() && !w.examples().is_empty(),
                "{}",
                w.name()
            );
        }
        assert!(of_type("no.such").is_none() && named("no_such").is_none());
    }
}
