//! Retry policy for transient failures: a few quick in-process retries, then durable
//! delayed retries through the delay queues, then the dead queue.

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
}
