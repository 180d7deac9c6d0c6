//! CloudEvents 1.0 published on `<prefix>.events`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Retrying,
    Failed,
    DeadLettered,
    Parked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Parked => "parked",
        }
    }
}

/// A billflow event. `id` is stable: the same outcome of the same stage always carries
/// the same id, so consumers can drop the duplicates a crash-and-redeliver may publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The command_id.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// CloudEvents distributed-tracing extension: the command's W3C trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventData {
    pub command_id: String,
    /// `advancepay_renewal`, or `unknown` for a message whose type could not be read.
    pub workflow: String,
    /// The stage, for step events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Step: the stage's output. Completed workflow: every stage's output by stage name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Dead-letter reason: `permanent_error`, `retries_exhausted`, `invalid_message`,
    /// `outcome_unknown`, `conflicting_duplicate`, `internal_error`; `expired`,
    /// `delivery_limit`, `rejected` when RabbitMQ dead-lettered the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Retrying: how long until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_delay_ms: Option<u64>,
    /// `conflicting_duplicate`: the digests of the two commands' data (never the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
}

/// SHA-256 digests (hex) of the canonical data of a command_id's first command and of the
/// conflicting one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Conflict {
    pub original: String,
    pub received: String,
}

impl CloudEvent {
    fn new(source: &str, scope: &str, id: String, data: EventData) -> Self {
        CloudEvent {
            specversion: "1.0".into(),
            id,
            source: source.to_string(),
            kind: format!("billflow.{scope}.{}", data.outcome.as_str()),
            subject: data.command_id.clone(),
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            traceparent: None,
            data,
        }
    }

    /// The outcome of one stage: routing key `step.<workflow>.<stage>.<outcome>`.
    pub fn step(source: &str, data: EventData) -> Self {
        let stage = data.stage.clone().unwrap_or_default();
        let mut id = format!("{}/{}/{}", data.command_id, stage, data.outcome.as_str());
        if data.outcome == Outcome::Retrying {
            id.push_str(&format!("/{}", data.attempt.unwrap_or_default()));
        }
        Self::new(source, "step", id, data)
    }

    /// The end of a workflow: routing key `workflow.<workflow>.<outcome>`.
    pub fn workflow(source: &str, data: EventData) -> Self {
        let id = format!(
            "{}/{}/{}",
            data.command_id,
            data.workflow,
            data.outcome.as_str()
        );
        Self::new(source, "workflow", id, data)
    }

    pub fn routing_key(&self) -> String {
        match &self.data.stage {
            Some(stage) if self.kind.starts_with("billflow.step.") => format!(
                "step.{}.{}.{}",
                self.data.workflow,
                stage,
                self.data.outcome.as_str()
            ),
            _ => format!(
                "workflow.{}.{}",
                self.data.workflow,
                self.data.outcome.as_str()
            ),
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.kind.starts_with("billflow.workflow.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(outcome: Outcome, stage: Option<&str>) -> EventData {
        EventData {
            command_id: "crm-42".into(),
            workflow: "advancepay_renewal".into(),
            stage: stage.map(str::to_string),
            outcome,
            attempt: Some(2),
            output: None,
            error: None,
            reason: None,
            next_delay_ms: None,
            conflict: None,
        }
    }

    #[test]
    fn routing_keys_and_stable_ids() {
        let step = CloudEvent::step("billflow", data(Outcome::Completed, Some("create_cart")));
        assert_eq!(
            step.routing_key(),
            "step.advancepay_renewal.create_cart.completed"
        );
        assert_eq!(step.id, "crm-42/create_cart/completed");
        assert_eq!(step.subject, "crm-42");
        let retry = CloudEvent::step("billflow", data(Outcome::Retrying, Some("submit")));
        assert_eq!(retry.id, "crm-42/submit/retrying/2");
        let done = CloudEvent::workflow("billflow", data(Outcome::DeadLettered, None));
        assert_eq!(
            done.routing_key(),
            "workflow.advancepay_renewal.dead_lettered"
        );
        assert!(done.is_terminal() && !step.is_terminal());
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "billflow.workflow.dead_lettered");
    }
}
