//! The stage message: one workflow stage to run, carrying the command and the outputs of
//! every earlier stage (a routing slip), so any worker can run it.

use chrono::{DateTime, Utc};
use lapin::types::FieldTable;
use serde::{Deserialize, Serialize};

use super::envelope::{valid_traceparent, Envelope};
use super::signing::{SignatureError, Signer};
use crate::broker::Outgoing;
use crate::contract::command::{Command, CommandError};
use crate::workflow::{registry, Outputs};

/// Whether a content type is JSON (`application/json`, any case, with parameters).
pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMessage {
    pub command: Command,
    pub stage: String,
    /// Durable attempt number of this stage, from 1.
    pub attempt: u32,
    #[serde(default)]
    pub outputs: Outputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<DateTime<Utc>>,
    /// The trace this command belongs to (W3C `traceparent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Set by `billflow dlq replay`: the id of the dead letter this run replays, so the
    /// same dead letter replayed twice runs its stage once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// On the wire: the command's secrets, sealed (they read `***` in the command). In
    /// memory after [`StageMessage::unseal`]: `None`, the secrets back in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    command: serde_json::Value,
    stage: String,
    attempt: u32,
    #[serde(default)]
    outputs: Outputs,
    #[serde(default)]
    first_failure_at: Option<DateTime<Utc>>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    replay: Option<String>,
    #[serde(default)]
    sealed: Option<String>,
}

impl StageMessage {
    pub fn first(command: Command) -> Self {
        StageMessage {
            stage: registry::first_stage(&command.body).to_string(),
            command,
            attempt: 1,
            outputs: Outputs::new(),
            first_failure_at: None,
            traceparent: None,
            replay: None,
            sealed: None,
        }
    }

    /// Reads a message: a stage message if `stage_header` is set, else a command.
    pub fn decode(body: &[u8], stage_header: Option<&str>) -> Result<Self, CommandError> {
        let Some(header) = stage_header else {
            return Command::parse(body).map(StageMessage::first);
        };
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| CommandError::Invalid(format!("stage message: {e}")))?;
        let command = Command::from_value(raw.command)?;
        if raw.stage != header {
            return Err(CommandError::Invalid(format!(
                "stage header {header:?} does not match body stage {:?}",
                raw.stage
            )));
        }
        if registry::of(&command.body).effect(&raw.stage).is_none() {
            return Err(CommandError::Invalid(format!(
                "{} has no stage {:?}",
                command.body.type_name(),
                raw.stage
            )));
        }
        if raw.attempt == 0 {
            return Err(CommandError::Invalid("attempt must be at least 1".into()));
        }
        Ok(StageMessage {
            command,
            stage: raw.stage,
            attempt: raw.attempt,
            outputs: raw.outputs,
            first_failure_at: raw.first_failure_at,
            traceparent: raw.traceparent.filter(|t| valid_traceparent(t)),
            replay: raw.replay,
            sealed: raw.sealed,
        })
    }

    /// Puts the sealed secrets back into the command.
    pub fn unseal(&mut self, signer: &Signer) -> Result<(), SignatureError> {
        let Some(sealed) = self.sealed.take() else {
            return Ok(());
        };
        let plain = signer.unseal(&sealed)?;
        let values: Vec<String> =
            serde_json::from_slice(&plain).map_err(|_| SignatureError::Sealed)?;
        let mut slots = self.command.secrets_mut();
        if slots.len() != values.len() {
            return Err(SignatureError::Sealed);
        }
        for (slot, value) in slots.iter_mut().zip(values) {
            **slot = value;
        }
        Ok(())
    }

    /// The body as it travels: the command's secrets sealed, `***` in their place.
    pub fn encode_sealed(&self, signer: &Signer) -> Vec<u8> {
        // Still sealed (a dead letter being replayed), or nothing to seal.
        if self.sealed.is_some() || self.command.secrets().is_empty() {
            return self.encode();
        }
        let mut wire = self.clone();
        let mut slots = wire.command.secrets_mut();
        let values: Vec<String> = slots
            .iter_mut()
            .map(|slot| std::mem::replace(&mut **slot, crate::redact::MASK.to_string()))
            .collect();
        wire.sealed = Some(signer.seal(&serde_json::to_vec(&values).unwrap_or_default()));
        wire.encode()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("a stage message (strings, numbers, JSON maps) always serializes")
    }

    /// This stage as a signed message to `queue` (through the default exchange).
    pub fn outgoing(&self, queue: &str, signer: &Signer) -> Outgoing {
        let mut out = Outgoing::json("", queue, self.encode_sealed(signer));
        out.headers = Envelope {
            signature: Some(signer.sign(&out.body)),
            ..self.envelope()
        }
        .to_headers();
        out.message_id = Some(format!(
            "{}/{}/{}",
            self.command.command_id, self.stage, self.attempt
        ));
        out.message_type = Some("billflow.stage".into());
        out
    }

    pub fn workflow(&self) -> &'static str {
        registry::of(&self.command.body).name()
    }

    /// What this stage's headers say: stage, workflow, command, attempt, trace.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            stage: Some(self.stage.clone()),
            workflow: Some(self.workflow().to_string()),
            command_id: Some(self.command.command_id.clone()),
            attempt: Some(self.attempt),
            traceparent: self.traceparent.clone(),
            ..Envelope::default()
        }
    }

    pub fn headers(&self) -> FieldTable {
        self.envelope().to_headers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = r#"{"command_id":"c1","type":"advancepay.renew","data":{"service_number":"1","order_type_id":1,"register_id":1,"tender_type_id":1}}"#;

    #[test]
    fn secrets_travel_sealed_and_come_back() {
        let signer = Signer::from_keys(Some(&Signer::generate_key()), None).unwrap();
        let sign_up = br#"{"command_id":"c2","type":"service_order.submit","data":{
            "account":{"username":"jane","password":"acct-pw-1"},"service_type_id":1,
            "sq":{"kind":"simple"},"package":{"plan_id":1},
            "identifier":{"username":"j","realm":"r","password":"id-pw-2"}}}"#;
        let msg = StageMessage::decode(sign_up, None).unwrap();
        let wire = msg.encode_sealed(&signer);
        let text = String::from_utf8_lossy(&wire);
        assert!(
            !text.contains("acct-pw-1") && !text.contains("id-pw-2"),
            "{text}"
        );
        let mut back = StageMessage::decode(&wire, Some(&msg.stage)).unwrap();
        assert!(back.sealed.is_some());
        assert_eq!(
            back.encode_sealed(&signer),
            back.encode(),
            "a sealed copy is not sealed twice"
        );
        back.unseal(&signer).unwrap();
        assert_eq!(back, msg);
        let other = Signer::from_keys(Some(&Signer::generate_key()), None).unwrap();
        let mut foreign = StageMessage::decode(&wire, Some(&msg.stage)).unwrap();
        assert_eq!(foreign.unseal(&other), Err(SignatureError::Sealed));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/jsonp"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn round_trip_and_validation() {
        let first = StageMessage::decode(CMD.as_bytes(), None).unwrap();
        assert_eq!(first.stage, "lookup_service");
        let mut next = first.clone();
        next.stage = "renew".into();
        next.outputs.insert(
            "lookup_service".into(),
            serde_json::json!({"service_id": 1}),
        );
        let body = next.encode();
        assert_eq!(StageMessage::decode(&body, Some("renew")).unwrap(), next);
        assert!(StageMessage::decode(&body, Some("submit")).is_err());
        next.stage = "nope".into();
        assert!(StageMessage::decode(&next.encode(), Some("nope")).is_err());
        assert_eq!(
            Envelope::from_headers(&first.headers()).stage.as_deref(),
            Some("lookup_service")
        );
    }
}
