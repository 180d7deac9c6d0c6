//! The contract files under `schemas/`: the checked-in schemas and AsyncAPI document match
//! the code, the examples pass a JSON Schema validator and billflow's own parsers (and
//! broken ones fail both), and the AsyncAPI document is valid AsyncAPI 3.0.0.
//! Regenerate with `BILLFLOW_WRITE_SCHEMAS=1 cargo test --test it schemas::`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use billflow::contract::command::{Command, CommandError};
use billflow::contract::events::CloudEvent;
use billflow::contract::schemas::{
    command_schema_path, command_types, COMMAND_SCHEMA, EVENT_SCHEMA,
};
use serde_json::{json, Value};

const ASYNCAPI: &str = "asyncapi.json";
const ASYNCAPI_SCHEMA: &str = "tests/fixtures/asyncapi-3.0.0.schema.json";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Every generated file: the schemas and the AsyncAPI document for the default prefix.
fn generated() -> Vec<(String, Value)> {
    let mut files = billflow::contract::schemas::all();
    files.push((
        ASYNCAPI.to_string(),
        billflow::contract::asyncapi::document("billflow"),
    ));
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (file stem, content) of every `*.json` in `schemas/examples/<kind>/`, sorted.
fn examples(kind: &str) -> Vec<(String, Value)> {
    let dir = schemas_dir().join("examples").join(kind);
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            (stem, read_json(&path))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// A JSON Schema file compiled by boon, which loads only local files: no network.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
    name: String,
}

impl Validator {
    fn new(path: &Path) -> Self {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        // Format is only an annotation in 2020-12; the examples should honour it anyway.
        compiler.enable_format_assertions();
        let index = compiler
            .compile(path.to_str().unwrap(), &mut schemas)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        Validator {
            schemas,
            index,
            name: path.display().to_string(),
        }
    }

    fn schema(name: &str) -> Self {
        Self::new(&schemas_dir().join(name))
    }

    fn check(&self, instance: &Value) -> Result<(), String> {
        self.schemas
            .validate(instance, self.index)
            .map_err(|e| format!("{e}"))
    }

    fn assert_valid(&self, what: &str, instance: &Value) {
        if let Err(e) = self.check(instance) {
            panic!("{what} is not valid against {}: {e}", self.name);
        }
    }

    fn assert_invalid(&self, what: &str, instance: &Value) {
        assert!(
            self.check(instance).is_err(),
            "{what} should be rejected by {}",
            self.name
        );
    }
}

#[test]
fn checked_in_schemas_match_the_code() {
    let dir = schemas_dir();
    let write = std::env::var_os("BILLFLOW_WRITE_SCHEMAS").is_some();
    let files = generated();
    for (name, schema) in &files {
        let generated = serde_json::to_string_pretty(schema).unwrap() + "\n";
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run with BILLFLOW_WRITE_SCHEMAS=1", path.display())
        });
        assert_eq!(
            on_disk, generated,
            "{name} drifted from the code: run BILLFLOW_WRITE_SCHEMAS=1 cargo test --test it schemas::"
        );
        if name == ASYNCAPI {
            assert_eq!(schema["asyncapi"], "3.0.0");
        } else {
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
        }
    }
    // A file the code no longer generates (a removed command type) must not linger.
    let expected: BTreeSet<PathBuf> = files.iter().map(|(name, _)| dir.join(name)).collect();
    let mut pending = vec![dir.clone()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path == dir.join("examples") {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                assert!(
                    expected.contains(&path),
                    "{} is not generated by the code: remove it",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn command_examples_are_valid_commands() {
    let union = Validator::schema(COMMAND_SCHEMA);
    let per_type: Vec<(String, Validator)> = command_types()
        .into_iter()
        .map(|kind| {
            let validator = Validator::schema(&command_schema_path(&kind));
            (kind, validator)
        })
        .collect();
    let mut kinds_seen = BTreeSet::new();
    let mut sq_kinds_seen = BTreeSet::new();
    for (name, example) in examples("commands") {
        union.assert_valid(&name, &example);
        let kind = example["type"].as_str().unwrap().to_string();
        for (other, validator) in &per_type {
            if *other == kind {
                validator.assert_valid(&name, &example);
            } else {
                validator.assert_invalid(&format!("{name} (a {kind})"), &example);
            }
        }
        let parsed = Command::parse(example.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.body.type_name(), kind);
        if let Some(sq) = example["data"]["sq"]["kind"].as_str() {
            sq_kinds_seen.insert(sq.to_string());
        }
        kinds_seen.insert(kind);
    }
    let all_kinds: BTreeSet<String> = command_types().into_iter().collect();
    assert_eq!(kinds_seen, all_kinds, "an example for every command type");

    // One sign-up example per service qualification the command supports.
    let schema = read_json(&schemas_dir().join(COMMAND_SCHEMA));
    let sq_kinds: BTreeSet<String> = schema["$defs"]["SqRequest"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["properties"]["kind"]["const"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(sq_kinds.len() >= 3, "{sq_kinds:?}");
    assert_eq!(sq_kinds_seen, sq_kinds);
}

/// A valid example with one thing broken: the schemas and `Command::parse` reject it.
#[test]
fn broken_commands_are_rejected_by_the_schemas_and_the_parser() {
    let union = Validator::schema(COMMAND_SCHEMA);
    let examples = examples("commands");
    let example = |stem: &str| {
        examples
            .iter()
            .find(|(name, _)| name == stem)
            .unwrap()
            .1
            .clone()
    };
    let renewal = example("advancepay.renew");
    let sign_up = example("service_order.submit.nwb");
    let mut broken: Vec<(&str, Value)> = Vec::new();

    let mut cmd = renewal.clone();
    cmd.as_object_mut().unwrap().remove("command_id");
    broken.push(("renewal without command_id", cmd));
    let mut cmd = renewal.clone();
    cmd["data"]["colour"] = json!("blue");
    broken.push(("renewal with an unknown field", cmd));
    let mut cmd = renewal.clone();
    cmd["type"] = json!("advancepay.cancel");
    broken.push(("unknown command type", cmd));
    let mut cmd = renewal.clone();
    cmd["data"]["register_id"] = json!("12");
    broken.push(("register_id as a string", cmd));
    let mut cmd = renewal.clone();
    cmd["data"] = sign_up["data"].clone();
    broken.push(("renewal type with sign-up data", cmd));
    let mut cmd = sign_up.clone();
    cmd.as_object_mut().unwrap().remove("command_id");
    broken.push(("sign-up without command_id", cmd));
    let mut cmd = sign_up.clone();
    cmd["data"]["sq"] = json!({"kind": "carrier_pigeon"});
    broken.push(("unknown SQ kind", cmd));
    let mut cmd = sign_up.clone();
    cmd["data"]["sq"].as_object_mut().unwrap().remove("address");
    broken.push(("NWB SQ without an address", cmd));
    let mut cmd = sign_up.clone();
    cmd["data"]["payment"] = json!({"transaction_category": "Credit Card", "reference": "r",
                                    "amount": "forty", "transaction_date": "2026-11-22"});
    broken.push(("payment amount that is not a decimal", cmd));
    let mut cmd = sign_up.clone();
    cmd["data"]["payment"] = json!({"transaction_category": "Credit Card", "reference": "r",
                                    "amount": "1e5", "transaction_date": "2026-11-22"});
    broken.push(("payment amount with an exponent", cmd));

    for (what, cmd) in &broken {
        union.assert_invalid(what, cmd);
        if let Some(kind) = cmd["type"]
            .as_str()
            .filter(|k| command_types().contains(&k.to_string()))
        {
            Validator::schema(&command_schema_path(kind)).assert_invalid(what, cmd);
        }
        assert!(
            Command::parse(cmd.to_string().as_bytes()).is_err(),
            "Command::parse accepted {what}"
        );
    }
}

#[test]
fn event_examples_are_valid_events() {
    let validator = Validator::schema(EVENT_SCHEMA);
    let mut seen = BTreeSet::new();
    for (name, example) in examples("events") {
        validator.assert_valid(&name, &example);
        let event: CloudEvent =
            serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            example,
            "{name} round-trips"
        );
        assert_eq!(event.subject, event.data.command_id, "{name}");
        let scope = if event.is_terminal() {
            "workflow"
        } else {
            "step"
        };
        assert_eq!(
            event.kind,
            format!("billflow.{scope}.{}", event.data.outcome.as_str()),
            "{name}"
        );
        seen.insert(format!("{scope}.{}", event.data.outcome.as_str()));
    }
    for wanted in [
        "step.completed",
        "step.retrying",
        "workflow.completed",
        "workflow.failed",
        "workflow.parked",
    ] {
        assert!(seen.contains(wanted), "no {wanted} event example");
    }
}

#[test]
fn broken_events_are_rejected_by_the_schema_and_serde() {
    let validator = Validator::schema(EVENT_SCHEMA);
    let (_, example) = examples("events")
        .into_iter()
        .find(|(name, _)| name == "step.retrying")
        .unwrap();
    let mut broken: Vec<(&str, Value)> = Vec::new();
    let mut event = example.clone();
    event.as_object_mut().unwrap().remove("id");
    broken.push(("event without id", event));
    let mut event = example.clone();
    event["data"]["outcome"] = json!("exploded");
    broken.push(("unknown outcome", event));
    let mut event = example.clone();
    event["data"]["attempt"] = json!("1");
    broken.push(("attempt as a string", event));
    let mut event = example.clone();
    event["time"] = json!("yesterday");
    broken.push(("time that is not RFC 3339", event));
    let mut event = example.clone();
    event["data"].as_object_mut().unwrap().remove("command_id");
    broken.push(("data without command_id", event));
    for (what, event) in &broken {
        validator.assert_invalid(what, event);
        assert!(
            serde_json::from_value::<CloudEvent>(event.clone()).is_err(),
            "CloudEvent accepted {what}"
        );
    }
}

fn asyncapi_validator() -> Validator {
    Validator::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join(ASYNCAPI_SCHEMA))
}

fn asyncapi() -> Value {
    read_json(&schemas_dir().join(ASYNCAPI))
}

#[test]
fn asyncapi_document_is_valid_asyncapi_3() {
    let validator = asyncapi_validator();
    let doc = asyncapi();
    validator.assert_valid(ASYNCAPI, &doc);

    // The official schema does reject documents that break it.
    let mut wrong = doc.clone();
    wrong["asyncapi"] = json!("2.6.0");
    validator.assert_invalid("asyncapi 2.6.0", &wrong);
    let mut wrong = doc.clone();
    wrong["info"].as_object_mut().unwrap().remove("title");
    validator.assert_invalid("info without title", &wrong);
    let mut wrong = doc.clone();
    wrong["operations"]["receiveCommands"]["action"] = json!("subscribe");
    validator.assert_invalid("action subscribe", &wrong);
    let mut wrong = doc.clone();
    wrong["servers"]["rabbitmq"]
        .as_object_mut()
        .unwrap()
        .remove("protocol");
    validator.assert_invalid("server without protocol", &wrong);
    let mut wrong = doc;
    wrong["channels"]["deadLetters"]["bindings"]["amqp"]["exchange"] = json!({"name": "x"});
    validator.assert_invalid("queue channel with an exchange", &wrong);
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                refs.push(r.to_string());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[test]
fn asyncapi_refs_resolve() {
    let doc = asyncapi();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    let mut files = 0;
    for r in refs {
        if let Some(pointer) = r.strip_prefix('#') {
            assert!(doc.pointer(pointer).is_some(), "{r} points at nothing");
        } else {
            let path = schemas_dir().join(&r);
            assert!(path.is_file(), "{r}: no file {}", path.display());
            assert!(
                path.canonicalize()
                    .unwrap()
                    .starts_with(schemas_dir().canonicalize().unwrap()),
                "{r} is outside schemas/"
            );
            Validator::new(&path);
            files += 1;
        }
    }
    assert!(
        files > command_types().len(),
        "payloads refer to the schema files"
    );
}

#[test]
fn asyncapi_documents_every_command_type_and_the_stable_names() {
    let doc = asyncapi();
    let kinds = command_types();
    assert!(kinds.len() >= 2, "{kinds:?}");
    // Command::parse names the types it knows: the same list, from another place in the code.
    let unknown = Command::parse(br#"{"command_id":"x","type":"no.such","data":{}}"#).unwrap_err();
    assert!(matches!(unknown, CommandError::UnknownType(_)));
    assert!(
        unknown
            .to_string()
            .contains(&format!("(known: {})", kinds.join(", "))),
        "{unknown}"
    );
    let channel = &doc["channels"]["commands"];
    let operation_refs: Vec<&str> = doc["operations"]["receiveCommands"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["$ref"].as_str().unwrap())
        .collect();
    for kind in &kinds {
        let message = &doc["components"]["messages"][kind];
        assert_eq!(message["name"], json!(kind));
        assert_eq!(
            message["payload"]["schema"]["$ref"],
            json!(format!("./{}", command_schema_path(kind)))
        );
        assert!(
            !message["examples"].as_array().unwrap().is_empty(),
            "{kind}"
        );
        assert!(channel["messages"].get(kind).is_some(), "{kind}");
        assert!(
            channel["parameters"]["commandType"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!(kind)),
            "{kind}"
        );
        assert!(operation_refs.contains(&format!("#/channels/commands/messages/{kind}").as_str()));
    }

    let topology = billflow::broker::Topology::new("billflow");
    let amqp = |channel: &str| doc["channels"][channel]["bindings"]["amqp"].clone();
    assert_eq!(
        amqp("commands")["exchange"]["name"],
        json!(topology.commands_exchange())
    );
    assert_eq!(amqp("commands")["exchange"]["type"], "topic");
    for channel in ["stepEvents", "workflowEvents"] {
        assert_eq!(
            amqp(channel)["exchange"]["name"],
            json!(topology.events_exchange())
        );
    }
    assert_eq!(
        doc["channels"]["deadLetters"]["address"],
        json!(topology.dead_queue())
    );
    assert_eq!(
        amqp("deadLetters")["queue"]["name"],
        json!(topology.dead_queue())
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// Whether `routing_key` fits a channel address like `step.{workflow}.{stage}.{outcome}`
/// with every `{parameter}` one of its listed values.
fn fits(channel: &Value, routing_key: &str) -> bool {
    let template: Vec<&str> = channel["address"].as_str().unwrap().split('.').collect();
    let parts: Vec<&str> = routing_key.split('.').collect();
    template.len() == parts.len()
        && template.iter().zip(&parts).all(|(t, part)| {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) => channel["parameters"][name]["enum"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(part)),
                None => t == part,
            }
        })
}

#[test]
fn asyncapi_examples_are_the_example_files_and_fit_their_channels() {
    let doc = asyncapi();
    let mut documented = BTreeSet::new();
    for message in doc["components"]["messages"].as_object().unwrap().values() {
        for example in message["examples"].as_array().into_iter().flatten() {
            if example.get("payload").is_some() {
                documented.insert((
                    example["name"].as_str().unwrap().to_string(),
                    example["payload"].to_string(),
                ));
            }
        }
    }
    let files: BTreeSet<(String, String)> = examples("commands")
        .into_iter()
        .chain(examples("events"))
        .map(|(name, value)| (name, value.to_string()))
        .collect();
    assert_eq!(
        documented, files,
        "the document shows exactly the example files"
    );

    for (name, example) in examples("events") {
        let event: CloudEvent = serde_json::from_value(example).unwrap();
        let channel = if event.is_terminal() {
            "workflowEvents"
        } else {
            "stepEvents"
        };
        assert!(
            fits(&doc["channels"][channel], &event.routing_key()),
            "{name}: {} does not fit {channel}",
            event.routing_key()
        );
    }
    let command_types = &doc["channels"]["commands"]["parameters"]["commandType"]["enum"];
    for (name, example) in examples("commands") {
        assert!(
            command_types.as_array().unwrap().contains(&example["type"]),
            "{name}"
        );
    }
    // Routing keys the worker really builds fit too, with every outcome of the contract;
    // a workflow never ends in `retrying`.
    let steps = &doc["channels"]["stepEvents"];
    let ends = &doc["channels"]["workflowEvents"];
    for outcome in ["completed", "retrying", "failed", "dead_lettered", "parked"] {
        assert!(fits(steps, &format!("step.service_order.nwb_sq.{outcome}")));
        let end = format!("workflow.unknown.{outcome}");
        assert_eq!(fits(ends, &end), outcome != "retrying", "{end}");
    }
    assert!(!fits(
        steps,
        "step.advancepay_renewal.no_such_stage.completed"
    ));
}
