//! Retry policy for transient failures: a few quick in-process retries, then durable
//! delayed retries through the delay queues, then the dead queue.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration;
use crate::workflow::registry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PolicyFields")]
pub struct RetryPolicy {
    /// Durable attempts of a stage (each a delivery of its message) before it is dead-lettered.
    pub max_attempts: u32,
    /// In-process retries inside one attempt, for blips that clear within a second.
    pub quick_retries: u32,
    #[serde(serialize_with = "duration::serialize")]
    pub quick_delay: Duration,
    /// Delay before the second durable attempt; later ones grow by `multiplier`.
    #[serde(serialize_with = "duration::serialize")]
    pub initial_delay: Duration,
    #[serde(serialize_with = "duration::serialize")]
    pub max_delay: Duration,
    pub multiplier: f64,
    /// Fraction of each delay randomized (0.2 = ±20 %), so retries of many commands spread out.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            quick_retries: 2,
            quick_delay: Duration::from_millis(200),
            initial_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(600),
            multiplier: 4.0,
            jitter: 0.2,
        }
    }
}

/// The fields a configuration sets; the others come from a base policy. Each delay may
/// also be given under its old name in milliseconds (`quick_delay_ms: 200`); the new name
/// (`quick_delay: "200ms"`) wins when both are there.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyFields {
    max_attempts: Option<u32>,
    quick_retries: Option<u32>,
    #[serde(deserialize_with = "duration::deserialize_option")]
    quick_delay: Option<Duration>,
    quick_delay_ms: Option<u64>,
    #[serde(deserialize_with = "duration::deserialize_option")]
    initial_delay: Option<Duration>,
    initial_delay_ms: Option<u64>,
    #[serde(deserialize_with = "duration::deserialize_option")]
    max_delay: Option<Duration>,
    max_delay_ms: Option<u64>,
    multiplier: Option<f64>,
    jitter: Option<f64>,
}

impl PolicyFields {
    fn over(self, base: &RetryPolicy) -> RetryPolicy {
        let delay = |new: Option<Duration>, old: Option<u64>, base: Duration| {
            new.or(old.map(Duration::from_millis)).unwrap_or(base)
        };
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            quick_retries: self.quick_retries.unwrap_or(base.quick_retries),
            quick_delay: delay(self.quick_delay, self.quick_delay_ms, base.quick_delay),
            initial_delay: delay(
                self.initial_delay,
                self.initial_delay_ms,
                base.initial_delay,
            ),
            max_delay: delay(self.max_delay, self.max_delay_ms, base.max_delay),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            jitter: self.jitter.unwrap_or(base.jitter),
        }
    }
}

impl From<PolicyFields> for RetryPolicy {
    fn from(fields: PolicyFields) -> Self {
        fields.over(&RetryPolicy::default())
    }
}

impl RetryPolicy {
    /// Delay before durable attempt `attempt + 1`, jittered.
    pub fn durable_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30) as i32;
        let base = (self.initial_delay.as_millis() as f64
            * self.multiplier.max(1.0).powi(exponent))
        .min(self.max_delay.as_millis() as f64);
        Duration::from_millis(jittered(base, self.jitter) as u64)
    }

    /// In-process backoff between quick retries.
    pub fn quick_backoff(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoff {
            initial_interval: self.quick_delay,
            randomization_factor: self.jitter.clamp(0.0, 1.0),
            multiplier: 2.0,
            max_interval: self.quick_delay.saturating_mul(8),
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
        let default = PolicyFields::deserialize(value)
            .map_err(|e| format!("invalid retry policy: {e}"))?
            .over(&RetryPolicy::default());
        let stages = match stages {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(map) => map,
            _ => return Err("retry policy `stages` must be an object".into()),
        };
        let mut config = RetryConfig {
            default,
            stages: BTreeMap::new(),
        };
        for (stage, overrides) in stages {
            check_stage_key(&stage)?;
            if !overrides.is_object() {
                return Err(format!("retry policy for {stage:?} must be an object"));
            }
            let policy = PolicyFields::deserialize(overrides)
                .map_err(|e| format!("invalid retry policy for {stage:?}: {e}"))?
                .over(&config.default);
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

/// Written as it is configured: the default's fields, then `stages`.
impl Serialize for RetryConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            #[serde(flatten)]
            default: &'a RetryPolicy,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            stages: &'a BTreeMap<String, RetryPolicy>,
        }
        Written {
            default: &self.default,
            stages: &self.stages,
        }
        .serialize(serializer)
    }
}

/// A per-stage key must name a stage of a workflow in the registry: a typo would
/// otherwise leave the stage on the default policy without a word.
fn check_stage_key(key: &str) -> Result<(), String> {
    let Some((workflow, stage)) = key.split_once('.') else {
        return Err(format!(
            "retry policy stage {key:?} must be <workflow>.<stage>, e.g. advancepay_renewal.submit"
        ));
    };
    let Some(found) = registry::named(workflow) else {
        let known: Vec<&str> = registry::ALL.iter().map(|w| w.name()).collect();
        return Err(format!(
            "retry policy stage {key:?}: no workflow {workflow:?}; known: {}",
            known.join(", ")
        ));
    };
    if found.effect(stage).is_none() {
        let known: Vec<&str> = found.stages().into_iter().map(|(s, _)| s).collect();
        return Err(format!(
            "retry policy stage {key:?}: {workflow} has no stage {stage:?}; its stages: {}",
            known.join(", ")
        ));
    }
    Ok(())
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
        let p: RetryPolicy = serde_json::from_str(
            r#"{"max_attempts": 3, "multiplier": 2.0, "quick_delay": "50ms", "max_delay": "1h"}"#,
        )
        .unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.quick_retries, RetryPolicy::default().quick_retries);
        assert_eq!(p.quick_delay, Duration::from_millis(50));
        assert_eq!(p.max_delay, Duration::from_secs(3600));
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"max_atempts": 3}"#).is_err());
        let err = serde_json::from_str::<RetryPolicy>(r#"{"quick_delay": "5x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#""5x" is not a duration"#), "{err}");
    }

    #[test]
    fn old_millisecond_fields_still_work_and_the_new_names_win() {
        let config = RetryConfig::parse(
            r#"{"quick_delay_ms": 20, "initial_delay_ms": 500, "initial_delay": "2s",
                "stages": {"advancepay_renewal.renew": {"max_delay_ms": 4000}}}"#,
        )
        .unwrap();
        assert_eq!(config.default.quick_delay, Duration::from_millis(20));
        assert_eq!(config.default.initial_delay, Duration::from_secs(2));
        let stage = config.policy("advancepay_renewal", "renew");
        assert_eq!(stage.max_delay, Duration::from_secs(4));
        assert_eq!(stage.quick_delay, Duration::from_millis(20));
    }

    #[test]
    fn writes_what_it_reads() {
        let config = RetryConfig::parse(
            r#"{"quick_delay": "20ms", "stages": {"service_order.complete_order": {"max_attempts": 9}}}"#,
        )
        .unwrap();
        let written = serde_json::to_string(&config).unwrap();
        assert!(written.contains(r#""quick_delay":"20ms""#), "{written}");
        assert_eq!(RetryConfig::parse(&written).unwrap(), config);
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
        assert!(RetryConfig::parse(
            r#"{"stages": {"advancepay_renewal.submit": {"max_atempts": 1}}}"#
        )
        .is_err());
        for (key, needle) in [
            (
                "advancepay_renwal.submit",
                "known: advancepay_renewal, service_order",
            ),
            (
                "advancepay_renewal.submt",
                "its stages: lookup_service, check_favorites",
            ),
        ] {
            let json = format!(r#"{{"stages": {{"{key}": {{"max_attempts": 9}}}}}}"#);
            let err = RetryConfig::parse(&json).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert_eq!(RetryConfig::parse("{}").unwrap(), RetryConfig::default());
    }
}
