//! Retry policy for transient failures: a few quick in-process retries, then durable
//! delayed retries through the delay queues, then the dead queue.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Durable attempts of a stage (each a delivery of its message) before it is dead-lettered.
    pub max_attempts: u32,
    /// In-process retries inside one attempt, for blips that clear within a second.
    pub quick_retries: u32,
    pub quick_delay_ms: u64,
    /// Delay before the second durable attempt; later ones grow by `multiplier`.
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub multiplier: f64,
    /// Fraction of each delay randomized (0.2 = ±20 %), so retries of many commands spread out.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            quick_retries: 2,
            quick_delay_ms: 200,
            initial_delay_ms: 5_000,
            max_delay_ms: 600_000,
            multiplier: 4.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Delay before durable attempt `attempt + 1`, jittered.
    pub fn durable_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30) as i32;
        let base = (self.initial_delay_ms as f64 * self.multiplier.max(1.0).powi(exponent))
            .min(self.max_delay_ms as f64);
        Duration::from_millis(jittered(base, self.jitter) as u64)
    }

    /// In-process backoff between quick retries.
    pub fn quick_backoff(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoff {
            initial_interval: Duration::from_millis(self.quick_delay_ms),
            randomization_factor: self.jitter.clamp(0.0, 1.0),
            multiplier: 2.0,
            max_interval: Duration::from_millis(self.quick_delay_ms.saturating_mul(8)),
            max_elapsed_time: None,
            ..Default::default()
        }
    }
}

/// The retry policy of every stage: a default, and overrides by `<workflow>.<stage>`.
/// Configured as one JSON object: the default's fields at the top, overrides under
/// `stages`, each inheriting what it leaves out from the default:
/// `{"max_attempts": 5, "stages": {"advancepay_renewal.submit": {"max_attempts": 10}}}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryConfig {
    pub default: RetryPolicy,
    pub stages: BTreeMap<String, RetryPolicy>,
}

impl RetryConfig {
    pub fn parse(json: &str) -> Result<Self, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("invalid retry policy JSON: {e}"))?;
        let object = value
            .as_object_mut()
            .ok_or("the retry policy must be a JSON object")?;
        let stages = object.remove("stages").unwrap_or_default();
        let default: RetryPolicy =
            serde_json::from_value(value).map_err(|e| format!("invalid retry policy: {e}"))?;
        let mut config = RetryConfig {
            default: default.clone(),
            stages: BTreeMap::new(),
        };
        let stages = match stages {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(map) => map,
            _ => return Err("retry policy `stages` must be an object".into()),
        };
        for (stage, overrides) in stages {
            if !stage.contains('.') {
                return Err(format!(
                    "retry policy stage {stage:?} must be <workflow>.<stage>, e.g. advancepay_renewal.submit"
                ));
            }
            let mut merged =
                serde_json::to_value(&default).map_err(|e| format!("retry policy: {e}"))?;
            match (merged.as_object_mut(), overrides) {
                (Some(base), serde_json::Value::Object(fields)) => base.extend(fields),
                _ => return Err(format!("retry policy for {stage:?} must be an object")),
            }
            let policy: RetryPolicy = serde_json::from_value(merged)
                .map_err(|e| format!("invalid retry policy for {stage:?}: {e}"))?;
            config.stages.insert(stage, policy);
        }
        Ok(config)
    }

    pub fn policy(&self, workflow: &str, stage: &str) -> &RetryPolicy {
        self.stages
            .get(&format!("{workflow}.{stage}"))
            .unwrap_or(&self.default)
    }
}

fn jittered(base: f64, jitter: f64) -> f64 {
    let jitter = jitter.clamp(0.0, 1.0);
    // uuid's v4 randomness is already a dependency; two bytes are plenty for spreading retries.
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let r = f64::from(u16::from_le_bytes([bytes[0], bytes[1]])) / f64::from(u16::MAX);
    (base * (1.0 - jitter + 2.0 * jitter * r)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap_within_jitter() {
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let first = p.durable_delay(1).as_millis() as f64;
            assert!((4_000.0..=6_000.0).contains(&first), "{first}");
            let capped = p.durable_delay(20).as_millis() as f64;
            assert!((480_000.0..=720_000.0).contains(&capped), "{capped}");
        }
        let none = RetryPolicy { jitter: 0.0, ..p };
        assert_eq!(none.durable_delay(2), Duration::from_millis(20_000));
    }

    #[test]
    fn deserializes_from_configuration() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 3, "multiplier": 2.0}"#).unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.quick_retries, RetryPolicy::default().quick_retries);
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"max_atempts": 3}"#).is_err());
    }

    #[test]
    fn stage_overrides_inherit_from_the_configured_default() {
        let config = RetryConfig::parse(
            r#"{"max_attempts": 3, "jitter": 0.0,
                "stages": {"advancepay_renewal.submit": {"max_attempts": 10}}}"#,
        )
        .unwrap();
        assert_eq!(config.policy("advancepay_renewal", "renew").max_attempts, 3);
        let submit = config.policy("advancepay_renewal", "submit");
        assert_eq!(submit.max_attempts, 10);
        assert_eq!(
            submit.jitter, 0.0,
            "inherited from the default, not the built-in"
        );
        assert!(RetryConfig::parse(r#"{"stages": {"submit": {}}}"#).is_err());
        assert!(RetryConfig::parse(r#"{"stages": {"a.b": {"max_atempts": 1}}}"#).is_err());
        assert_eq!(RetryConfig::parse("{}").unwrap(), RetryConfig::default());
    }
}
