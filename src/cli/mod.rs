//! The command line's jobs besides running a worker, one file per subcommand: `demo`,
//! `dlq`, `publish`, `status`, `definitions`, `sim`. They use the library like any client
//! would (the contract, the broker, the admin API); nothing below `cli` imports it.

pub mod definitions;
pub mod demo;
pub mod dlq;
pub mod publish;
pub mod sim;
pub mod status;
