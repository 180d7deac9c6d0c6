//! The AsyncAPI 3.0 document of the external contract, generated from the names, types
//! and stage lists the worker uses; `schemas/asyncapi.json` is the checked-in copy.
//! billflow is the application: it receives commands and sends events and dead letters.

use serde_json::{json, Map, Value};

use crate::broker::Topology;
use crate::contract::command::MAX_COMMAND_ID_LEN;
use crate::contract::envelope::{Header, Kind, OnDeadLetter};
use crate::contract::events::Outcome;
use crate::contract::schemas::{self, EVENT_SCHEMA};
use crate::contract::DeadReason;
use crate::workflow::registry;

/// How the payloads' `$ref`s are to be read: the generated schemas are JSON Schema 2020-12.
const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-2020-12";
const AMQP_BINDING_VERSION: &str = "0.3.0";

/// The workflow named in events about a message whose command type could not be read.
const UNKNOWN_WORKFLOW: &str = "unknown";

/// `schemas/examples/events/`, compiled in so the document shows the same examples the
/// tests validate (each workflow brings its command examples); each goes to the message
/// its `type` belongs to.
const EVENT_EXAMPLES: &[(&str, &str)] = &[
    (
        "step.completed",
        include_str!("../../schemas/examples/events/step.completed.json"),
    ),
    (
        "step.retrying",
        include_str!("../../schemas/examples/events/step.retrying.json"),
    ),
    (
        "workflow.completed",
        include_str!("../../schemas/examples/events/workflow.completed.json"),
    ),
    (
        "workflow.failed",
        include_str!("../../schemas/examples/events/workflow.failed.json"),
    ),
    (
        "workflow.parked",
        include_str!("../../schemas/examples/events/workflow.parked.json"),
    ),
];

const STEP_EVENT: &str = "stepEvent";
const WORKFLOW_EVENT: &str = "workflowEvent";
const DEAD_LETTER: &str = "deadLetter";

/// The AsyncAPI 3.0.0 document for the exchanges and queue under `prefix`.
pub fn document(prefix: &str) -> Value {
    let topology = Topology::new(prefix);
    let commands = topology.commands_exchange();
    let events = topology.events_exchange();
    let dead = topology.dead_queue();
    let events_log = topology.events_log();
    let undelivered = topology.undelivered_queue();
    let command_schemas = schemas::command_schemas();
    let command_types: Vec<&str> = command_schemas.iter().map(|(k, _)| k.as_str()).collect();

    let mut messages = Map::new();
    for (kind, schema) in &command_schemas {
        messages.insert(kind.clone(), command_message(kind, schema));
    }
    messages.insert(
        STEP_EVENT.into(),
        event_message(
            "step",
            "Stage event",
            "The outcome of one stage: `data.output` when completed, `data.error` with \
             `data.next_delay_ms` when retrying, `data.error` and `data.reason` when it stopped.",
        ),
    );
    messages.insert(
        WORKFLOW_EVENT.into(),
        event_message(
            "workflow",
            "Workflow event",
            "The end of a workflow: `data.output` holds every stage's output by stage name \
             when completed; `data.error`, `data.reason` and the `data.stage` that stopped it \
             otherwise.",
        ),
    );
    messages.insert(DEAD_LETTER.into(), dead_letter_message());
    add_examples(&mut messages);

    let message_refs = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    json!({"$ref": format!("#/components/messages/{name}")}),
                )
            })
            .collect::<Map<_, _>>()
            .into()
    };
    let operation_refs = |channel: &str, names: &[&str]| -> Value {
        names
            .iter()
            .map(|name| json!({"$ref": format!("#/channels/{channel}/messages/{name}")}))
            .collect()
    };

    let workflows = workflows(&command_types);
    let stages = stages(&workflows);
    let mut event_workflows = workflows.clone();
    event_workflows.push(UNKNOWN_WORKFLOW);
    let outcomes = outcomes();
    // A workflow ends; only its stages retry.
    let retrying = json!(Outcome::Retrying.as_str());
    let end_outcomes: Vec<Value> = outcomes
        .iter()
        .filter(|o| **o != retrying)
        .cloned()
        .collect();
    let stage_lists: Vec<String> = registry::ALL
        .iter()
        .filter(|w| workflows.contains(&w.name()))
        .map(|w| {
            let names: Vec<String> = w.stages().iter().map(|(s, _)| format!("`{s}`")).collect();
            format!("`{}`: {}", w.name(), names.join(", "))
        })
        .collect();
    let exchange = |name: &str| {
        json!({"amqp": {
            "is": "routingKey",
            "exchange": {"name": name, "type": "topic", "durable": true, "autoDelete": false},
            "bindingVersion": AMQP_BINDING_VERSION,
        }})
    };

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "billflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "billflow drives telecom billing workflows (CostGuard AdvancePay renewals, \
                 Emersion sign-ups) from RabbitMQ.\n\n\
                 1. A CRM publishes a command to the topic exchange `{commands}`, routing key = \
                 the command type. `command_id` is the idempotency key: a command id is never \
                 processed twice.\n\
                 2. billflow runs the command's workflow one durable stage per billing call, \
                 retrying transient failures with backoff.\n\
                 3. After every stage it publishes a CloudEvents 1.0 event to the topic \
                 exchange `{events}` (`step.<workflow>.<stage>.<outcome>`), and once at the end \
                 of the workflow (`workflow.<workflow>.<outcome>`). Event `id`s are stable: \
                 dedup on them. Every event is also kept in the stream `{events_log}`, to \
                 read from an offset or a time.\n\
                 4. A stage that fails permanently, runs out of retries or whose outcome \
                 cannot be known is moved to the queue `{dead}` with `x-billflow-*` headers, \
                 for ops tooling (`billflow dlq`). So is a command or stage message that \
                 RabbitMQ itself dead-letters (its per-message TTL expired, it went over the \
                 delivery limit, it was rejected or dropped over a length limit): it passes \
                 through the internal queue `{undelivered}`, where a worker gives it its \
                 reason and publishes its `dead_lettered` events.\n\n\
                 Exchange and queue names start with the prefix `{prefix}` (`BILLFLOW_PREFIX`). \
                 Payload schemas are JSON Schema 2020-12 files next to this document."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ broker (`AMQP_URL`, default \
                    `amqp://guest:guest@127.0.0.1:5672/%2f`). billflow declares its \
                    exchanges and queues on start; declaring them again is harmless.",
            }
        },
        "channels": {
            "commands": {
                "address": "{commandType}",
                "title": format!("Commands ({commands})"),
                "description": format!(
                    "Commands to billflow, published to the topic exchange `{commands}` with \
                     the command type as routing key. Publish them persistent (delivery mode \
                     2), `mandatory`, with publisher confirms, and content type \
                     `application/json` (or none). A command that is not valid goes to \
                     `{dead}` with reason `invalid_message`, and a `workflow.<workflow>.failed` \
                     event reports why. A command published with an `expiration` that runs \
                     out before a worker takes it goes to `{dead}` with reason `expired`, \
                     and a `workflow.<workflow>.dead_lettered` event reports it."
                ),
                "parameters": {
                    "commandType": {
                        "description": "The command type: the body's `type`.",
                        "enum": command_types,
                    }
                },
                "messages": message_refs(&command_types),
                "bindings": exchange(&commands),
            },
            "stepEvents": {
                "address": "step.{workflow}.{stage}.{outcome}",
                "title": format!("Stage events ({events})"),
                "description": format!(
                    "The outcome of one stage of a command's workflow, on the topic exchange \
                     `{events}`. Bind a queue with e.g. `step.#` or \
                     `step.advancepay_renewal.*.failed`. Events are published persistent but \
                     not mandatory: bind your queue before you need its events."
                ),
                "parameters": {
                    "workflow": {
                        "description": "The command's workflow.",
                        "enum": workflows,
                    },
                    "stage": {
                        "description": format!(
                            "The stage. By workflow, in the order they can run: {}.",
                            stage_lists.join("; ")
                        ),
                        "enum": stages,
                    },
                    "outcome": {
                        "description": "`completed`; `retrying` (another attempt follows, or \
                            the API's circuit breaker is open); `failed` (permanent error); \
                            `dead_lettered` (retries exhausted, or RabbitMQ dead-lettered the \
                            stage message: expired, over the delivery limit, rejected); \
                            `parked` (the outcome of a non-idempotent call is unknown: a \
                            person must check).",
                        "enum": outcomes,
                    },
                },
                "messages": message_refs(&[STEP_EVENT]),
                "bindings": exchange(&events),
            },
            "workflowEvents": {
                "address": "workflow.{workflow}.{outcome}",
                "title": format!("Workflow events ({events})"),
                "description": format!(
                    "The end of a command's workflow, once per command (a crash may repeat \
                     it under the same `id`: dedup on it), on the topic exchange `{events}`. Bind a queue with e.g. \
                     `workflow.#` or `workflow.*.completed`."
                ),
                "parameters": {
                    "workflow": {
                        "description": format!(
                            "The command's workflow; `{UNKNOWN_WORKFLOW}` for a message whose \
                             command type could not be read."
                        ),
                        "enum": event_workflows,
                    },
                    "outcome": {
                        "description": "`completed`; `failed` (permanent error or invalid \
                            message); `dead_lettered` (retries exhausted, or RabbitMQ \
                            dead-lettered the message: expired, over the delivery limit, \
                            rejected); `parked` (the outcome of a non-idempotent call is \
                            unknown: a person must check).",
                        "enum": end_outcomes,
                    },
                },
                "messages": message_refs(&[WORKFLOW_EVENT]),
                "bindings": exchange(&events),
            },
            "eventsLog": {
                "address": events_log,
                "title": format!("Events log ({events_log})"),
                "description": format!(
                    "Every event published to `{events}`, kept in a RabbitMQ stream bound                      to it with `#`, in the order published, for as long and as much as                      `BILLFLOW_EVENTS_LOG_MAX_AGE` (default 7 days) and                      `BILLFLOW_EVENTS_LOG_MAX_BYTES` (default 10 GiB) allow. Unlike a queue                      bound to `{events}`, it has events from before its reader came: consume                      it with a prefetch (`basic.qos`), manual acks and the consumer argument                      `x-stream-offset` = `first`, `last`, `next`, an offset (a number: the                      `x-stream-offset` header of the last event handled, plus one) or a time                      (an AMQP timestamp). Reading does not remove events; several readers                      each keep their own offset. Events may repeat (a crash may publish one                      again under the same `id`): dedup on `id`."
                ),
                "messages": message_refs(&[STEP_EVENT, WORKFLOW_EVENT]),
                "bindings": {"amqp": {
                    "is": "queue",
                    "queue": {"name": events_log, "durable": true, "exclusive": false, "autoDelete": false},
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
            "deadLetters": {
                "address": dead,
                "title": format!("Dead letters ({dead})"),
                "description": format!(
                    "A durable quorum queue of the stages billflow gave up on, for ops \
                     tooling: inspect, edit, replay or purge them with `billflow dlq`. Each \
                     message carries its reason and error in `x-billflow-*` headers; the \
                     matching `failed`, `dead_lettered` or `parked` events were published \
                     when it arrived here. Messages RabbitMQ dead-letters from the intake or \
                     a shard reach it through the internal quorum queue `{undelivered}` \
                     (reasons `expired`, `delivery_limit`, `rejected`); one that fails to be \
                     explained more often than the delivery limit arrives with RabbitMQ's \
                     `x-death` header only."
                ),
                "messages": message_refs(&[DEAD_LETTER]),
                "bindings": {"amqp": {
                    "is": "queue",
                    "queue": {"name": dead, "durable": true, "exclusive": false, "autoDelete": false},
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
        },
        "operations": {
            "sendToEventsLog": {
                "action": "send",
                "title": "Keep every event in the events log",
                "summary": "Every stage and workflow event, also kept in a stream to read from an offset or a time.",
                "channel": {"$ref": "#/channels/eventsLog"},
                "messages": operation_refs("eventsLog", &[STEP_EVENT, WORKFLOW_EVENT]),
            },
            "receiveCommands": {
                "action": "receive",
                "title": "Receive commands",
                "summary": "billflow consumes every command published to the commands exchange.",
                "channel": {"$ref": "#/channels/commands"},
                "messages": operation_refs("commands", &command_types),
                "bindings": {"amqp": {"ack": true, "deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}},
            },
            "sendStepEvents": {
                "action": "send",
                "title": "Send stage events",
                "summary": "After every stage: its output, its retry, or why it stopped.",
                "channel": {"$ref": "#/channels/stepEvents"},
                "messages": operation_refs("stepEvents", &[STEP_EVENT]),
                "bindings": {"amqp": {
                    "deliveryMode": 2, "mandatory": false, "timestamp": true,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
            "sendWorkflowEvents": {
                "action": "send",
                "title": "Send workflow events",
                "summary": "Once per command, when its workflow ends.",
                "channel": {"$ref": "#/channels/workflowEvents"},
                "messages": operation_refs("workflowEvents", &[WORKFLOW_EVENT]),
                "bindings": {"amqp": {
                    "deliveryMode": 2, "mandatory": false, "timestamp": true,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
            "sendDeadLetters": {
                "action": "send",
                "title": "Send dead letters",
                "summary": "A stage billflow gave up on, with the reason, for a person to decide.",
                "channel": {"$ref": "#/channels/deadLetters"},
                "messages": operation_refs("deadLetters", &[DEAD_LETTER]),
                "bindings": {"amqp": {
                    "deliveryMode": 2, "mandatory": true, "timestamp": true,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
        },
        "components": {"messages": messages},
    })
}

/// The workflows of the command types, in command order.
fn workflows(command_types: &[&str]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for name in command_types
        .iter()
        .filter_map(|t| registry::of_type(t).map(|w| w.name()))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Every stage of `workflows`, each once, in workflow order.
fn stages(workflows: &[&str]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for w in registry::ALL
        .iter()
        .filter(|w| workflows.contains(&w.name()))
    {
        for (stage, _) in w.stages() {
            if !names.contains(&stage) {
                names.push(stage);
            }
        }
    }
    names
}

/// The outcomes as serde writes them, read from the enum's schema.
fn outcomes() -> Vec<Value> {
    schemars::schema_for!(Outcome).to_value()["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn traceparent_header(description: &str) -> Value {
    json!({
        "type": "string",
        "description": description,
        "pattern": "^[0-9a-fA-F]{2}-[0-9a-fA-F]{32}-[0-9a-fA-F]{16}-[0-9a-fA-F]{2}$",
    })
}

fn payload(path: &str) -> Value {
    json!({"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": format!("./{path}")}})
}

fn command_message(kind: &str, schema: &Value) -> Value {
    let path = schemas::command_schema_path(kind);
    json!({
        "name": kind,
        "title": kind,
        "summary": schema["description"],
        "description": format!(
            "Routing key `{kind}`. The body's `type` must be `{kind}`; `command_id` is the \
             idempotency key (at most {MAX_COMMAND_ID_LEN} bytes, no control characters). \
             Must not carry the internal header `{}`. billflow's own `publish` \
             sets the AMQP `message_id` to the command_id and `type` to the command type.",
            Header::STAGE.name
        ),
        "contentType": "application/json",
        "correlationId": {
            "description": "The command_id; every event about this command carries it as \
                `subject` and `data.command_id`.",
            "location": "$message.payload#/command_id",
        },
        "headers": {
            "type": "object",
            "properties": {
                (Header::TRACEPARENT.name): traceparent_header(
                    "Optional W3C Trace Context of the caller: billflow continues the trace \
                     on every stage and event of the command. An invalid value is ignored."
                ),
            },
        },
        "payload": payload(&path),
        "bindings": {"amqp": {"messageType": kind, "bindingVersion": AMQP_BINDING_VERSION}},
    })
}

fn event_message(scope: &str, title: &str, summary: &str) -> Value {
    json!({
        "name": format!("billflow.{scope}"),
        "title": title,
        "summary": summary,
        "description": format!(
            "A CloudEvents 1.0 event (structured JSON): `type` is \
             `billflow.{scope}.<outcome>`, `subject` the command_id, `id` stable (the same \
             outcome of the same stage always has the same id, so consumers can drop \
             duplicates). The AMQP `message_id` is the event's `id`, `type` its `type`."
        ),
        "contentType": "application/json",
        "correlationId": {
            "description": "The command_id of the command the event is about.",
            "location": "$message.payload#/subject",
        },
        "headers": {
            "type": "object",
            "properties": {
                "ce-id": {"type": "string", "description": "The event's `id`."},
                (Header::TRACEPARENT.name): traceparent_header(
                    "The W3C Trace Context of the command, when it had one."
                ),
            },
            "required": ["ce-id"],
        },
        "payload": payload(EVENT_SCHEMA),
    })
}

/// A header's schema, from its type in the envelope.
fn header_schema(header: &Header) -> Value {
    let description = header.description;
    match header.kind {
        Kind::Text => json!({"type": "string", "description": description}),
        Kind::Count => json!({"type": "integer", "minimum": 1, "description": description}),
        Kind::Reason => json!({
            "type": "string",
            "description": description,
            "enum": DeadReason::ALL.map(DeadReason::as_str),
        }),
        Kind::TraceContext => traceparent_header(description),
    }
}

fn dead_letter_message() -> Value {
    let documented = Header::ALL
        .iter()
        .filter(|h| h.on_dead_letter != OnDeadLetter::Never);
    let mut headers: Map<String, Value> = documented
        .clone()
        .map(|h| (h.name.to_string(), header_schema(h)))
        .collect();
    headers.insert(
        "x-death".into(),
        json!({
            "type": "array",
            "description": "`expired`, `delivery_limit`, `rejected`: RabbitMQ's \
                record of the dead-lettering (newest first: `reason`, `queue`, \
                `count`, `time`), kept as it came.",
        }),
    );
    let required: Vec<&str> = documented
        .filter(|h| h.on_dead_letter == OnDeadLetter::Always)
        .map(|h| h.name)
        .collect();
    json!({
        "name": "billflow.dead",
        "title": "Dead letter",
        "summary": "A stage message billflow gave up on, or a message it could not read.",
        "description": "The body is billflow's stage message (JSON: the command, the stage, \
            its attempt and the outputs of the earlier stages) — for reason `invalid_message` \
            it is the body exactly as received, and for `expired`, `delivery_limit` and \
            `rejected` the command or stage message as RabbitMQ dead-lettered it. Replaying \
            it (`billflow dlq replay`) runs the stage (or the command) once more.",
        "headers": {"type": "object", "properties": headers, "required": required},
        "payload": {"description": "See the message description: a stage message, or the \
            body of an invalid message as received."},
        "examples": [{
            "name": "not_eligible",
            "summary": "A renewal of a service without an active favorite price point.",
            "headers": {
                (Header::REASON.name): "permanent_error",
                (Header::ERROR.name): "service 169055 is not eligible for renewal: no active \
                    favorite AdvancePay price point",
                (Header::COMMAND_ID.name): "crm-44",
                (Header::STAGE.name): "check_favorites",
                (Header::WORKFLOW.name): "advancepay_renewal",
                (Header::ATTEMPT.name): 1,
                (Header::ATTEMPTS.name): 1,
                (Header::FIRST_FAILURE.name): "2026-11-22T14:12:30.118+00:00",
                (Header::LAST_FAILURE.name): "2026-11-22T14:12:30.118+00:00",
            },
        }],
    })
}

/// Puts each example on its message: commands by `type`, events by their scope.
fn add_examples(messages: &mut Map<String, Value>) {
    let commands = registry::ALL.iter().flat_map(|w| w.examples());
    for (name, text) in commands.chain(EVENT_EXAMPLES) {
        let Ok(payload) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let Some(kind) = payload["type"].as_str() else {
            continue;
        };
        let (message, headers) = if kind.starts_with("billflow.step.") {
            (STEP_EVENT, event_headers(&payload))
        } else if kind.starts_with("billflow.workflow.") {
            (WORKFLOW_EVENT, event_headers(&payload))
        } else {
            (kind, None)
        };
        let Some(Value::Object(message)) = messages.get_mut(message) else {
            continue;
        };
        let mut example = Map::new();
        example.insert("name".into(), (*name).into());
        if let Some(headers) = headers {
            example.insert("headers".into(), headers);
        }
        example.insert("payload".into(), payload);
        if let Value::Array(examples) = message
            .entry("examples")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            examples.push(Value::Object(example));
        }
    }
}

/// The AMQP headers billflow puts on an event.
fn event_headers(event: &Value) -> Option<Value> {
    let mut headers = Map::new();
    headers.insert("ce-id".into(), event.get("id")?.clone());
    // The CloudEvents attribute travels as the header of the same name.
    if let Some(traceparent) = event.get("traceparent") {
        headers.insert(Header::TRACEPARENT.name.into(), traceparent.clone());
    }
    Some(Value::Object(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_type_has_a_documented_workflow_with_stages() {
        for kind in schemas::command_types() {
            let workflow =
                registry::of_type(&kind).unwrap_or_else(|| panic!("{kind} has no workflow"));
            assert!(
                !workflow.stages().is_empty(),
                "{} has no stages",
                workflow.name()
            );
        }
    }
}
