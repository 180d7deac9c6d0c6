//! billflow: telecom billing workflows driven from RabbitMQ, one durable stage per call.
//!
//! Dependencies point one way, from the outside in:
//! `cli`, `bench` → `runtime` → `engine` → `workflow` → `billing`, with `contract` (the
//! wire formats), `store` (the stage ledger) and `broker` (RabbitMQ) used by the layers
//! above them and importing none of them. `sim` stands apart: it is the billing platforms.

pub mod bench;
pub mod billing;
pub mod broker;
pub mod cli;
pub mod config;
pub mod contract;
pub mod engine;
pub mod ledger;
pub mod money;
pub mod redact;
pub mod runtime;
pub mod secret;
pub mod sim;
pub mod store;
pub mod timing;
pub mod workflow;
pub mod xml;

pub use config::WorkerSettings;
pub use contract::{CloudEvent, Command, CommandBody, DeadReason, Outcome, StageMessage};
pub use engine::{Engine, EngineCore, EngineSettings};
pub use runtime::worker::run as run_worker;
pub use sim::Simulator;
pub use store::{StageRecord, StageState, Store};
pub use workflow::{registry, Workflow};
