//! JSON Schemas (2020-12) of the external contract, generated from the Rust types; the
//! checked-in copies under `schemas/` are tested against these.

use schemars::schema_for;
use serde_json::{Map, Value};

use crate::contract::command::Command;
use crate::contract::events::CloudEvent;

/// Path under `schemas/` of the union of every command.
pub const COMMAND_SCHEMA: &str = "command.schema.json";
/// Path under `schemas/` of every event.
pub const EVENT_SCHEMA: &str = "event.schema.json";

/// (path under `schemas/`, schema) for every message billflow accepts or emits.
pub fn all() -> Vec<(String, Value)> {
    let mut all = vec![
        (COMMAND_SCHEMA.to_string(), command_union()),
        (EVENT_SCHEMA.to_string(), schema_for!(CloudEvent).to_value()),
    ];
    all.extend(
        command_schemas()
            .into_iter()
            .map(|(kind, schema)| (command_schema_path(&kind), schema)),
    );
    all
}

/// Path under `schemas/` of one command type's schema.
pub fn command_schema_path(command_type: &str) -> String {
    format!("commands/{command_type}.schema.json")
}

/// Every command type, read from the `type` tags of [`Command`]'s schema so that it is
/// the list serde accepts.
pub fn command_types() -> Vec<String> {
    command_schemas()
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}

fn command_union() -> Value {
    schema_for!(Command).to_value()
}

/// (command type, schema) per variant of the command union: the envelope's own fields
/// merged with the variant's, and only the definitions the variant uses. Derived from
/// the union rather than written by hand, so the two cannot disagree.
pub fn command_schemas() -> Vec<(String, Value)> {
    let union = command_union();
    let empty = Map::new();
    let defs = union["$defs"].as_object().unwrap_or(&empty);
    let envelope_properties = union["properties"].as_object().unwrap_or(&empty);
    let envelope_required = union["required"].as_array().cloned().unwrap_or_default();
    let variants = union["oneOf"].as_array().cloned().unwrap_or_default();
    variants
        .into_iter()
        .filter_map(|variant| {
            let kind = variant["properties"]["type"]["const"].as_str()?.to_string();
            let mut properties = envelope_properties.clone();
            properties.extend(variant["properties"].as_object()?.clone());
            let mut required = envelope_required.clone();
            required.extend(variant["required"].as_array().cloned().unwrap_or_default());
            let mut schema = Map::new();
            schema.insert("$schema".into(), union["$schema"].clone());
            schema.insert("title".into(), kind.clone().into());
            if let Some(description) = variant.get("description") {
                schema.insert("description".into(), description.clone());
            }
            schema.insert("type".into(), "object".into());
            schema.insert("properties".into(), Value::Object(properties));
            schema.insert("required".into(), Value::Array(required));
            let used = used_defs(&Value::Object(schema.clone()), defs);
            if !used.is_empty() {
                schema.insert("$defs".into(), Value::Object(used));
            }
            Some((kind, Value::Object(schema)))
        })
        .collect()
}

/// The definitions `schema` refers to (`#/$defs/<name>`), directly or through others.
fn used_defs(schema: &Value, defs: &Map<String, Value>) -> Map<String, Value> {
    let mut used = Map::new();
    let mut pending = vec![schema.clone()];
    while let Some(value) = pending.pop() {
        let mut refs = Vec::new();
        collect_refs(&value, &mut refs);
        for name in refs {
            if used.contains_key(&name) {
                continue;
            }
            if let Some(def) = defs.get(&name) {
                used.insert(name, def.clone());
                pending.push(def.clone());
            }
        }
    }
    used
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                refs.push(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}
