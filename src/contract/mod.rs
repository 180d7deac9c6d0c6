//! What billflow exchanges with the world, as types: the commands CRMs send, the stage
//! messages workers pass each other (their signatures and `x-billflow-*` headers), the
//! events dashboards read, the dead-letter reasons, and the JSON Schemas and AsyncAPI
//! document generated from them. Pure data and codecs: nothing here connects, stores or
//! runs anything, so it must not import `engine`, `runtime`, `cli`, `store` or `billing`.
//! The one dependency inward is the workflow registry, which defines the command types.

pub mod asyncapi;
pub mod command;
pub mod envelope;
pub mod events;
pub mod message;
mod new_account;
mod package_services;
mod reason;
pub mod schemas;
pub mod signing;

pub use command::{Command, CommandBody, CommandError};
pub use events::{CloudEvent, Outcome};
pub use message::StageMessage;
pub use reason::DeadReason;
