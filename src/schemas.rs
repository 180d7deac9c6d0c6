//! JSON Schemas (2020-12) of the external contract, generated from the Rust types; the
//! checked-in copies under `schemas/` are tested against these.

use schemars::schema_for;

use crate::command::Command;
use crate::engine::events::CloudEvent;

/// (file name under `schemas/`, schema) for every message billflow accepts or emits.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("command.schema.json", schema_for!(Command).to_value()),
        ("event.schema.json", schema_for!(CloudEvent).to_value()),
    ]
}
