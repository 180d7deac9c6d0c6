//! Protecting a billing platform from billflow: per-API concurrency limit, token-bucket
//! rate limit, and a circuit breaker that stops calling an API that keeps failing and
//! lets a single probe through after a cool-down.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::billing::Api;
use crate::config::duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "LimitsFields")]
pub struct ApiLimits {
    /// Calls in flight at once to this API.
    pub max_concurrency: usize,
    /// Sustained calls per second (token bucket refill rate).
    pub rate_per_sec: f64,
    /// Calls that may go at once after a quiet spell (bucket size).
    pub burst: u32,
    /// Consecutive transient failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe call is let through.
    #[serde(serialize_with = "duration::serialize")]
    pub breaker_cooldown: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_concurrency: 32,
            rate_per_sec: 100.0,
            burst: 100,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// The fields a configuration sets, the others default. The cool-down may also be given
/// under its old name in milliseconds (`breaker_cooldown_ms`); `breaker_cooldown` wins.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LimitsFields {
    max_concurrency: Option<usize>,
    rate_per_sec: Option<f64>,
    burst: Option<u32>,
    breaker_failures: Option<u32>,
    #[serde(deserialize_with = "duration::deserialize_option")]
    breaker_cooldown: Option<Duration>,
    breaker_cooldown_ms: Option<u64>,
}

impl From<LimitsFields> for ApiLimits {
    fn from(fields: LimitsFields) -> Self {
        let default = ApiLimits::default();
        ApiLimits {
            max_concurrency: fields.max_concurrency.unwrap_or(default.max_concurrency),
            rate_per_sec: fields.rate_per_sec.unwrap_or(default.rate_per_sec),
            burst: fields.burst.unwrap_or(default.burst),
            breaker_failures: fields.breaker_failures.unwrap_or(default.breaker_failures),
            breaker_cooldown: fields
                .breaker_cooldown
                .or(fields.breaker_cooldown_ms.map(Duration::from_millis))
                .unwrap_or(default.breaker_cooldown),
        }
    }
}

/// Limits by API, from JSON such as `{"costguard": {"rate_per_sec": 20}}`; an API left
/// out gets the defaults, an API billflow does not know is an error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitsConfig(pub BTreeMap<Api, ApiLimits>);

impl LimitsConfig {
    pub fn parse(json: &str) -> Result<Self, String> {
        let limits: BTreeMap<Api, ApiLimits> =
            serde_json::from_str(json).map_err(|e| format!("invalid API limits JSON: {e}"))?;
        for (api, l) in &limits {
            if l.max_concurrency == 0
                || l.burst == 0
                || l.rate_per_sec.is_nan()
                || l.rate_per_sec <= 0.0
            {
                return Err(format!(
                    "API limits for {api}: max_concurrency, burst and rate_per_sec must be positive"
                ));
            }
        }
        Ok(LimitsConfig(limits))
    }

    pub fn for_api(&self, api: Api) -> ApiLimits {
        self.0.get(&api).cloned().unwrap_or_default()
    }
}

/// Written with the limits every API runs with, defaults included.
impl Serialize for LimitsConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(Api::ALL.map(|api| (api, self.for_api(api))))
    }
}

/// What the breaker says about a call.
pub enum Admission {
    /// Go ahead; keep the permit for the duration of the call.
    Go(OwnedSemaphorePermit),
    /// The API is failing: wait this long (durably) and try again, without spending an attempt.
    Open { retry_in: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe call is out since then; everyone else waits for its result (or, should
    /// it never report, for another cool-down).
    HalfOpen {
        since: Instant,
    },
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Guards one API.
pub struct ApiGuard {
    api: Api,
    limits: ApiLimits,
    permits: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    breaker: Mutex<Breaker>,
}

impl ApiGuard {
    pub fn new(api: Api, limits: ApiLimits) -> Self {
        ApiGuard {
            api,
            permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limits.burst.max(1)),
                refilled: Instant::now(),
            }),
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            limits,
        }
    }

    /// Exports the breaker state: 0 closed, 1 half-open, 2 open.
    fn report(&self, state: BreakerState) {
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("billflow_circuit_breaker_state", "api" => self.api.as_str()).set(value);
    }

    pub fn state(&self) -> BreakerState {
        match *lock(&self.breaker) {
            Breaker::Closed { .. } => BreakerState::Closed,
            Breaker::Open { .. } => BreakerState::Open,
            Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn cooldown(&self) -> Duration {
        self.limits.breaker_cooldown
    }

    /// Asks the breaker, then waits for a concurrency slot and a rate token.
    pub async fn admit(&self) -> Admission {
        {
            let mut breaker = lock(&self.breaker);
            match *breaker {
                Breaker::Closed { .. } => {}
                Breaker::Open { until } => {
                    let now = Instant::now();
                    if now < until {
                        return Admission::Open {
                            retry_in: until - now,
                        };
                    }
                    // Cool-down over: this call is the probe.
                    *breaker = Breaker::HalfOpen { since: now };
                    self.report(BreakerState::HalfOpen);
                }
                Breaker::HalfOpen { since } if since.elapsed() >= self.cooldown() => {
                    *breaker = Breaker::HalfOpen {
                        since: Instant::now(),
                    };
                }
                Breaker::HalfOpen { .. } => {
                    return Admission::Open {
                        retry_in: self.cooldown(),
                    }
                }
            }
        }
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed; if it were, waiting is the safe answer.
            Err(_) => {
                return Admission::Open {
                    retry_in: self.cooldown(),
                }
            }
        };
        while let Some(wait) = self.take_token() {
            tokio::time::sleep(wait).await;
        }
        Admission::Go(permit)
    }

    /// Takes a token, or says how long until one is there.
    fn take_token(&self) -> Option<Duration> {
        let mut bucket = lock(&self.bucket);
        let now = Instant::now();
        let rate = self.limits.rate_per_sec.max(f64::MIN_POSITIVE);
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.limits.burst.max(1)));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Records how a call (or a probe) of the API ended: `None` for success. The one
    /// place the engine reports to the breaker.
    pub fn record(&self, failure: Option<crate::billing::Failure>) {
        if super::decide::api_failed(failure) {
            self.record_failure();
        } else {
            self.record_success();
        }
    }

    /// The API answered (success or a business refusal): it is healthy.
    fn record_success(&self) {
        *lock(&self.breaker) = Breaker::Closed { failures: 0 };
        self.report(BreakerState::Closed);
    }

    /// The API failed in a way that says it is unwell (transport, 5xx, server fault).
    fn record_failure(&self) {
        let mut breaker = lock(&self.breaker);
        let open = Breaker::Open {
            until: Instant::now() + self.cooldown(),
        };
        *breaker = match *breaker {
            Breaker::Closed { failures } if failures + 1 < self.limits.breaker_failures => {
                Breaker::Closed {
                    failures: failures + 1,
                }
            }
            _ => open,
        };
        if let Breaker::Open { .. } = *breaker {
            self.report(BreakerState::Open);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One guard per API, created on first use.
#[derive(Default)]
pub struct Guards {
    config: LimitsConfig,
    guards: Mutex<BTreeMap<Api, Arc<ApiGuard>>>,
}

impl Guards {
    pub fn new(config: LimitsConfig) -> Self {
        Guards {
            config,
            guards: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn get(&self, api: Api) -> Arc<ApiGuard> {
        lock(&self.guards)
            .entry(api)
            .or_insert_with(|| Arc::new(ApiGuard::new(api, self.config.for_api(api))))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ApiLimits {
        ApiLimits {
            max_concurrency: 2,
            rate_per_sec: 1000.0,
            burst: 1000,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn breaker_opens_after_consecutive_failures_and_lets_one_probe_through() {
        let guard = ApiGuard::new(Api::CostGuard, limits());
        for _ in 0..2 {
            guard.record_failure();
        }
        assert_eq!(guard.state(), BreakerState::Closed);
        guard.record_failure();
        assert_eq!(guard.state(), BreakerState::Open);
        assert!(matches!(guard.admit().await, Admission::Open { .. }));

        tokio::time::sleep(Duration::from_millis(60)).await;
        let probe = guard.admit().await;
        assert!(matches!(probe, Admission::Go(_)), "the probe goes");
        assert_eq!(guard.state(), BreakerState::HalfOpen);
        assert!(
            matches!(guard.admit().await, Admission::Open { .. }),
            "only one probe at a time"
        );
        guard.record_failure();
        assert_eq!(guard.state(), BreakerState::Open, "a failed probe reopens");

        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(matches!(guard.admit().await, Admission::Go(_)));
        guard.record_success();
        assert_eq!(guard.state(), BreakerState::Closed);
        assert!(matches!(guard.admit().await, Admission::Go(_)));
    }

    #[tokio::test]
    async fn a_success_resets_the_failure_count() {
        let guard = ApiGuard::new(Api::CostGuard, limits());
        guard.record_failure();
        guard.record_failure();
        guard.record_success();
        guard.record_failure();
        guard.record_failure();
        assert_eq!(guard.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn concurrency_is_limited() {
        let guard = ApiGuard::new(Api::CostGuard, limits());
        let Admission::Go(a) = guard.admit().await else {
            panic!()
        };
        let Admission::Go(_b) = guard.admit().await else {
            panic!()
        };
        let third = tokio::time::timeout(Duration::from_millis(30), guard.admit()).await;
        assert!(third.is_err(), "a third call waits for a slot");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(30), guard.admit()).await;
        assert!(matches!(third, Ok(Admission::Go(_))));
    }

    #[tokio::test]
    async fn the_token_bucket_paces_calls() {
        let guard = ApiGuard::new(
            Api::CostGuard,
            ApiLimits {
                rate_per_sec: 100.0,
                burst: 2,
                max_concurrency: 100,
                ..limits()
            },
        );
        let started = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..6 {
            let Admission::Go(p) = guard.admit().await else {
                panic!()
            };
            permits.push(p);
        }
        // Two from the burst, four more at 100/s: at least ~40 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(35),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn limits_parse_with_defaults_and_reject_nonsense() {
        let config = LimitsConfig::parse(r#"{"costguard": {"rate_per_sec": 20}}"#).unwrap();
        assert_eq!(config.for_api(Api::CostGuard).rate_per_sec, 20.0);
        assert_eq!(
            config.for_api(Api::CostGuard).burst,
            ApiLimits::default().burst
        );
        assert_eq!(config.for_api(Api::Emersion), ApiLimits::default());
        assert!(LimitsConfig::parse(r#"{"costguard": {"max_concurrency": 0}}"#).is_err());
        assert!(LimitsConfig::parse(r#"{"costguard": {"rate": 1}}"#).is_err());
    }

    #[test]
    fn an_unknown_api_is_an_error_naming_the_known_ones() {
        let err = LimitsConfig::parse(r#"{"costgaurd": {"rate_per_sec": 20}}"#).unwrap_err();
        assert!(
            err.contains("\"costgaurd\"") && err.contains("known APIs: costguard, emersion"),
            "{err}"
        );
    }

    #[test]
    fn the_cooldown_reads_as_a_duration_or_in_old_milliseconds() {
        let config = LimitsConfig::parse(
            r#"{"costguard": {"breaker_cooldown": "1m"}, "emersion": {"breaker_cooldown_ms": 500}}"#,
        )
        .unwrap();
        assert_eq!(
            config.for_api(Api::CostGuard).breaker_cooldown,
            Duration::from_secs(60)
        );
        assert_eq!(
            config.for_api(Api::Emersion).breaker_cooldown,
            Duration::from_millis(500)
        );
        let both = r#"{"costguard": {"breaker_cooldown": "2s", "breaker_cooldown_ms": 500}}"#;
        assert_eq!(
            LimitsConfig::parse(both)
                .unwrap()
                .for_api(Api::CostGuard)
                .breaker_cooldown,
            Duration::from_secs(2)
        );
    }
}
