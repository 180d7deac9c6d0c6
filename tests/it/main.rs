//! The integration tests, one crate with a module per suite: the library and the harness
//! are compiled and linked once, not once per suite.
//!
//! The chaos suite (`tests/chaos.rs`, it restarts the broker) and the fuzzer
//! (`tests/fuzz.rs`) are crates of their own, run on their own by `.ci/run`.

mod common;

mod auth;
mod broker;
mod cleanup;
mod cli;
mod deploy;
mod dlq;
mod emersion_errors;
mod events_log;
mod fleet;
mod hostile_messages;
mod hostile_platform;
mod ledger;
mod money;
mod new_customer;
mod operations;
mod policies;
mod reconcile_costguard;
mod redaction;
mod renewal;
mod resume;
mod scale_out;
mod schemas;
mod service_order;
mod sim_costguard;
mod sim_emersion;
mod undelivered;
mod whole_package;
