//! CostGuard (IDI Billing): REST lookups and AdvancePay renewal, SOAP 1.2 Order Placement.

mod client;
mod error;
pub mod rest;
pub mod soap;
pub mod token;

pub use client::{CostGuardClient, CostGuardConfig};
pub use error::CostGuardError;
pub use token::CostGuardAuth;
