//! Emersion (SOAP 1.1): service-order onboarding operations.

pub mod accounts;
mod client;
mod error;
pub mod wire;
pub mod wsse;

pub use client::{EmersionAuth, EmersionClient, EmersionConfig};
pub use error::EmersionError;
