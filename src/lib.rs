//! billflow: telecom billing workflows driven from RabbitMQ, one durable stage per call.

pub mod admin;
pub mod asyncapi;
pub mod bench;
pub mod billing;
pub mod broker;
pub mod command;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod engine;
pub mod money;
pub mod publish;
pub mod redact;
pub mod schemas;
pub mod secret;
pub mod sim;
pub mod status;
pub mod store;
pub mod timing;
pub mod worker;
pub mod workflow;
pub mod xml;
