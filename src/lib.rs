//! billflow: telecom billing workflows driven from RabbitMQ, one durable stage per call.

pub mod billing;
pub mod secret;
pub mod xml;
