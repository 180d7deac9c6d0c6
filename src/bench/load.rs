//! A closed loop of renewals: `in_flight` workflows at all times, each replaced by a new
//! one as soon as its terminal event arrives. Throughput, end-to-end latency and
//! billflow's time per stage above the API's own latency come from the events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use lapin::Connection;

use super::cpu::{self, Watched};
use crate::broker::{BrokerError, Outgoing, Publisher, Subscription, Topology};
use crate::contract::events::{CloudEvent, Outcome};
use crate::sim::costguard::ACTIVE_SERVICE;

/// Stage calls of a renewal of an active (not Hotlined) service: one API call each.
pub const STAGES_PER_RENEWAL: usize = 7;

pub struct LoadResult {
    pub hops_per_sec: f64,
    pub workflows_per_sec: f64,
    /// End-to-end workflow latencies in the window, in milliseconds.
    pub workflow_ms: Vec<f64>,
    /// Each stage's time minus the API latency, in milliseconds.
    pub overhead_ms: Vec<f64>,
    pub failed: u64,
    /// CPU each watched process used in the window.
    pub cpu: Vec<(&'static str, Duration)>,
}

struct Tracked {
    published: Instant,
    /// When its last step (or its command) was published.
    last_mark: DateTime<Utc>,
}

pub struct Load<'a> {
    pub connection: &'a Connection,
    pub topology: &'a Topology,
    pub in_flight: u32,
    pub api_latency: Duration,
    pub warmup: Duration,
    pub measure: Duration,
    /// Distinguishes this run's command ids.
    pub run: &'a str,
    pub watched: Watched,
}

impl Load<'_> {
    pub async fn run(&self) -> Result<LoadResult, BrokerError> {
        let mut events =
            Subscription::open(self.connection, &self.topology.events_exchange(), "#").await?;
        let publisher = Publisher::open(self.connection).await?;
        let mut tracked: HashMap<String, Tracked> = HashMap::new();
        let mut next_id = 0u64;
        let mut fresh = |tracked: &mut HashMap<String, Tracked>| {
            next_id += 1;
            let id = command_id(self.run, next_id);
            tracked.insert(
                id.clone(),
                Tracked {
                    published: Instant::now(),
                    last_mark: Utc::now(),
                },
            );
            id
        };
        let first: Vec<String> = (0..self.in_flight).map(|_| fresh(&mut tracked)).collect();
        // Published a few hundred at a time: their confirms overlap.
        let results: Vec<Result<(), BrokerError>> = stream::iter(first)
            .map(|id| publish_renewal(&publisher, self.topology, id))
            .buffer_unordered(256)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;

        let api_ms = self.api_latency.as_secs_f64() * 1000.0;
        let started = Instant::now();
        let mut window: Option<(Instant, u64, u64)> = None;
        let mut cpu_from = Vec::new();
        let (mut hops, mut workflows, mut failed) = (0u64, 0u64, 0u64);
        let mut workflow_ms = Vec::new();
        let mut overhead_ms = Vec::new();
        let mut publishing = tokio::task::JoinSet::new();
        loop {
            if window.is_none() && started.elapsed() >= self.warmup {
                window = Some((Instant::now(), hops, workflows));
                cpu_from = self.watched.sample();
            }
            if let Some((at, _, _)) = window {
                if at.elapsed() >= self.measure {
                    break;
                }
            }
            let body = match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
                Err(_) => continue,
                Ok(Some(body)) => body?,
                Ok(None) => return Err(BrokerError::ConsumerEnded),
            };
            let Ok(event) = serde_json::from_slice::<CloudEvent>(&body) else {
                continue;
            };
            let measuring = window.is_some();
            if event.is_terminal() {
                let Some(t) = tracked.remove(&event.subject) else {
                    continue;
                };
                workflows += 1;
                if event.data.outcome != Outcome::Completed {
                    failed += 1;
                } else if measuring {
                    workflow_ms.push(t.published.elapsed().as_secs_f64() * 1000.0);
                }
                let id = fresh(&mut tracked);
                let (publisher, topology) = (publisher.clone(), self.topology.clone());
                publishing.spawn(async move { publish_renewal(&publisher, &topology, id).await });
                while let Some(done) = publishing.try_join_next() {
                    if let Ok(Err(e)) = done {
                        return Err(e);
                    }
                }
            } else if event.data.outcome == Outcome::Completed && event.data.stage.is_some() {
                hops += 1;
                if let Some(t) = tracked.get_mut(&event.subject) {
                    let stage_ms =
                        (event.time - t.last_mark).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                    t.last_mark = event.time;
                    if measuring {
                        overhead_ms.push(stage_ms - api_ms);
                    }
                }
            }
        }
        let (at, hops_from, workflows_from) = window.unwrap_or((started, 0, 0));
        let secs = at.elapsed().as_secs_f64();
        let cpu = cpu::used(&cpu_from, &self.watched.sample());
        publishing.abort_all();
        events.close().await;
        Ok(LoadResult {
            hops_per_sec: (hops - hops_from) as f64 / secs,
            workflows_per_sec: (workflows - workflows_from) as f64 / secs,
            workflow_ms,
            overhead_ms,
            failed,
            cpu,
        })
    }
}

fn command_id(run: &str, n: u64) -> String {
    format!("bench-{run}-{n}")
}

/// The id of a run's first command: the oldest, so the likeliest to have completed.
pub fn first_command_id(run: &str) -> String {
    command_id(run, 1)
}

async fn publish_renewal(
    publisher: &Publisher,
    topology: &Topology,
    command_id: String,
) -> Result<(), BrokerError> {
    let body = serde_json::json!({
        "command_id": command_id,
        "type": "advancepay.renew",
        "data": {"service_number": ACTIVE_SERVICE, "order_type_id": 1, "register_id": 12,
                 "tender_type_id": 2, "environment": "test"}
    });
    let mut out = Outgoing::json(
        &topology.commands_exchange(),
        "advancepay.renew",
        body.to_string().into_bytes(),
    );
    out.message_id = Some(command_id);
    publisher.publish(out).await
}

/// The `q` quantile (0..=1) of `samples`, by nearest rank; `NaN` when there are none.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut s, 0.5), 50.0);
        assert_eq!(quantile(&mut s, 0.99), 99.0);
        assert_eq!(quantile(&mut s, 1.0), 100.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }
}
