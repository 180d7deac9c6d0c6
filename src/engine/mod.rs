//! The stage runner: claim → call → record → publish (event, next stage or dead letter)
//! → ack. The store makes a completed call unrepeatable; the broker carries the rest.

pub mod events;
mod intake;
pub mod message;
pub mod protect;
pub mod retry;
mod undelivered;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use tracing::{debug, error, info, warn, Instrument};

use crate::billing::Failure;
use crate::broker::{BrokerError, Outgoing, Publisher, Topology};
use crate::command::Command;
use crate::store::{StageRecord, StageState, Store, StoreError};
use crate::workflow::{Effect, Probe, StageError, Workflows};
use events::{CloudEvent, EventData, Outcome};
use message::{header_str, text, valid_traceparent, StageMessage, STAGE_HEADER, TRACEPARENT};
use protect::{Admission, Guards};
use retry::{RetryConfig, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a message went to the dead queue (header `x-billflow-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    PermanentError,
    RetriesExhausted,
    InvalidMessage,
    OutcomeUnknown,
    /// RabbitMQ dead-lettered it: its per-message TTL ran out in a queue.
    Expired,
    /// RabbitMQ dead-lettered it: delivered more often than the quorum queue allows.
    DeliveryLimit,
    /// RabbitMQ dead-lettered it: rejected without requeue, over a length limit, or for
    /// a cause its `x-death` header does not say.
    Rejected,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::PermanentError => "permanent_error",
            DeadReason::RetriesExhausted => "retries_exhausted",
            DeadReason::InvalidMessage => "invalid_message",
            DeadReason::OutcomeUnknown => "outcome_unknown",
            DeadReason::Expired => "expired",
            DeadReason::DeliveryLimit => "delivery_limit",
            DeadReason::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            DeadReason::PermanentError,
            DeadReason::RetriesExhausted,
            DeadReason::InvalidMessage,
            DeadReason::OutcomeUnknown,
            DeadReason::Expired,
            DeadReason::DeliveryLimit,
            DeadReason::Rejected,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The outcome published for the stage and the workflow.
    fn outcome(self) -> Outcome {
        match self {
            DeadReason::PermanentError | DeadReason::InvalidMessage => Outcome::Failed,
            DeadReason::RetriesExhausted
            | DeadReason::Expired
            | DeadReason::DeliveryLimit
            | DeadReason::Rejected => Outcome::DeadLettered,
            DeadReason::OutcomeUnknown => Outcome::Parked,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub max_message_bytes: usize,
    pub retry: RetryConfig,
    /// How long after a call whose outcome is unknown the platform is asked about it.
    pub reconcile_delay: Duration,
    /// CloudEvents `source`.
    pub source: String,
}

/// (command_id, stage) pairs being worked on in this process, shared by the engines of
/// successive broker connections: a second copy arriving meanwhile waits its turn.
#[derive(Clone, Default)]
pub struct Inflight(Arc<Mutex<HashSet<String>>>);

struct InflightGuard {
    set: Inflight,
    key: String,
}

impl Inflight {
    fn claim(&self, key: String) -> Option<InflightGuard> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(key.clone()).then(|| InflightGuard {
            set: self.clone(),
            key,
        })
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

pub struct Engine {
    store: Store,
    publisher: Publisher,
    topology: Topology,
    workflows: Workflows,
    settings: EngineSettings,
    inflight: Inflight,
    guards: Arc<Guards>,
}

impl Engine {
    pub fn new(
        store: Store,
        publisher: Publisher,
        topology: Topology,
        workflows: Workflows,
        settings: EngineSettings,
        guards: Arc<Guards>,
        inflight: Inflight,
    ) -> Self {
        Engine {
            store,
            publisher,
            topology,
            workflows,
            settings,
            inflight,
            guards,
        }
    }

    /// Handles one delivery and acks it once its outcome is durable. When the outcome
    /// could not be made durable (broker or disk trouble) the delivery is returned to the
    /// queue after a pause, to be tried again.
    pub async fn process(&self, delivery: Delivery) {
        metrics::counter!("billflow_messages_consumed_total").increment(1);
        let in_flight = metrics::gauge!("billflow_in_flight");
        in_flight.increment(1.0);
        let timer = crate::timing::Timer::start("billflow_stage_seconds");
        let outcome = self.handle(&delivery).await;
        drop(timer);
        in_flight.decrement(1.0);
        match outcome {
            Ok(()) => {
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    // The broker will redeliver; the store turns that into a duplicate.
                    warn!(error = %e, "ack failed");
                }
            }
            Err(e) => {
                error!(error = %e, "could not record the outcome; the message will be redelivered");
                requeue_later(delivery).await;
            }
        }
    }

    async fn handle(&self, delivery: &Delivery) -> Result<(), EngineError> {
        let headers = delivery.properties.headers().as_ref();
        if delivery.data.len() > self.settings.max_message_bytes {
            let error = format!(
                "message of {} bytes exceeds the limit of {} bytes",
                delivery.data.len(),
                self.settings.max_message_bytes
            );
            return self.reject_invalid(delivery, &error).await;
        }
        if let Some(ct) = delivery.properties.content_type() {
            if !ct.as_str().starts_with("application/json") {
                let error = format!("content type {:?} is not application/json", ct.as_str());
                return self.reject_invalid(delivery, &error).await;
            }
        }
        let mut message =
            match StageMessage::decode(&delivery.data, header_str(headers, STAGE_HEADER)) {
                Ok(m) => m,
                Err(e) => return self.reject_invalid(delivery, &e.to_string()).await,
            };
        // A CRM's trace continues through every stage and event of its command.
        if message.traceparent.is_none() {
            message.traceparent = header_str(headers, TRACEPARENT)
                .filter(|t| valid_traceparent(t))
                .map(str::to_string);
        }
        let span = tracing::info_span!(
            "stage",
            command_id = %message.command.command_id,
            workflow = message.workflow(),
            stage = %message.stage,
            attempt = message.attempt,
            traceparent = message.traceparent.as_deref().unwrap_or(""),
        );
        self.run(message, delivery.redelivered)
            .instrument(span)
            .await
    }

    async fn run(&self, msg: StageMessage, redelivered: bool) -> Result<(), EngineError> {
        let cid = msg.command.command_id.clone();
        // A second copy waits for the one in progress (it may belong to a connection
        // that is gone and can never ack), then reads what that one recorded.
        let key = format!("{cid}\0{}", msg.stage);
        let _guard = loop {
            match self.inflight.claim(key.clone()) {
                Some(guard) => break guard,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let effect =
            Workflows::effect(&msg.command.body, &msg.stage).unwrap_or(Effect::NonIdempotent);
        match self.store.get(&cid, &msg.stage)? {
            // A person replayed a dead-lettered stage: run it again, once per replay.
            Some(rec)
                if rec.state == StageState::Failed
                    && msg.replay.is_some()
                    && rec.replay != msg.replay =>
            {
                info!(replay = ?msg.replay, "replaying a dead-lettered stage");
                self.execute(&msg, effect).await
            }
            Some(rec) if rec.forwarded => {
                info!(state = ?rec.state, "duplicate of a finished stage; dropped");
                Ok(())
            }
            Some(rec) if rec.state == StageState::Completed => {
                info!("stage completed before a crash; publishing its outcome");
                self.forward_success(&msg, rec).await
            }
            Some(rec) if rec.state == StageState::Failed => {
                let reason = rec
                    .reason
                    .as_deref()
                    .and_then(DeadReason::parse)
                    .unwrap_or(DeadReason::PermanentError);
                let error = rec.error.clone().unwrap_or_default();
                self.dead_letter(&msg, Some(rec), reason, &error).await
            }
            Some(rec) if rec.state == StageState::Started && effect == Effect::NonIdempotent => {
                self.reconcile(
                    &msg,
                    rec,
                    "the call was started and its result never recorded",
                )
                .await
            }
            None if redelivered && effect == Effect::NonIdempotent => {
                let why = "redelivered with no local record of the stage; another worker may have made the call";
                self.reconcile(&msg, StageRecord::started(msg.attempt), why)
                    .await
            }
            _ => self.execute(&msg, effect).await,
        }
    }

    fn policy(&self, msg: &StageMessage) -> &RetryPolicy {
        self.settings.retry.policy(msg.workflow(), &msg.stage)
    }

    /// Runs the stage's call: admission by the API's guard, the call, quick retries of
    /// transient failures, then the outcome.
    async fn execute(&self, msg: &StageMessage, effect: Effect) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let guard = self.guards.get(Workflows::api(&msg.command.body));
        let policy = self.policy(msg).clone();
        let mut quick = policy.quick_backoff();
        let mut quick_left = policy.quick_retries;
        let mut rec: Option<StageRecord> = None;
        loop {
            let permit = match guard.admit().await {
                Admission::Go(permit) => permit,
                Admission::Open { retry_in } => {
                    return self.wait_for_api(msg, rec, retry_in).await;
                }
            };
            let mut started_rec = StageRecord::started(msg.attempt);
            started_rec.replay = msg.replay.clone();
            self.store.put(cid, &msg.stage, &started_rec)?;
            if effect == Effect::NonIdempotent {
                // The claim must be on disk before the platform can act on the call.
                self.store.flush().await?;
            }
            let started = std::time::Instant::now();
            // Boxed: the call's future (HTTP client, XML) is large, and without the box
            // every task waiting for admission would carry room for it.
            let result = Box::pin(self.workflows.run(&msg.command, &msg.stage, &msg.outputs)).await;
            drop(permit);
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let failure = match result {
                Ok(done) => {
                    guard.record_success();
                    info!(elapsed_ms, next = ?done.next, "stage completed");
                    return self.complete(msg, started_rec, done).await;
                }
                Err(StageError { failure, message }) => {
                    // Not knowing whether a repeatable call took effect does not matter.
                    let failure = match (failure, effect) {
                        (Failure::OutcomeUnknown, Effect::Repeatable) => Failure::Transient,
                        (failure, _) => failure,
                    };
                    match failure {
                        Failure::Permanent => guard.record_success(),
                        Failure::Transient | Failure::OutcomeUnknown => guard.record_failure(),
                    }
                    warn!(elapsed_ms, ?failure, error = %message, "stage failed");
                    (failure, message)
                }
            };
            rec = Some(started_rec);
            match failure {
                (Failure::Transient, _) if quick_left > 0 => {
                    quick_left -= 1;
                    let pause = backoff::backoff::Backoff::next_backoff(&mut quick)
                        .unwrap_or(Duration::from_millis(policy.quick_delay_ms));
                    // The call did not take effect: a crash during the pause may re-run it.
                    if let Some(r) = rec.take() {
                        let r = r.with_state(StageState::Retrying);
                        self.store.put(cid, &msg.stage, &r)?;
                        rec = Some(r);
                    }
                    tokio::time::sleep(pause).await;
                }
                (Failure::Transient, message) if msg.attempt < policy.max_attempts => {
                    let delay = policy.durable_delay(msg.attempt);
                    return self
                        .schedule_retry(msg, rec, StageState::Retrying, &message, delay)
                        .await;
                }
                (Failure::Transient, message) => {
                    return self
                        .dead_letter(msg, rec, DeadReason::RetriesExhausted, &message)
                        .await;
                }
                (Failure::Permanent, message) => {
                    return self
                        .dead_letter(msg, rec, DeadReason::PermanentError, &message)
                        .await;
                }
                (Failure::OutcomeUnknown, message) => {
                    // Ask the platform later, once a slow call would have landed; the record
                    // stays "started" so the returning message reconciles.
                    let error = format!("outcome unknown, will check: {message}");
                    let delay = policy
                        .durable_delay(msg.attempt)
                        .max(self.settings.reconcile_delay);
                    return self
                        .schedule_retry(msg, rec, StageState::Started, &error, delay)
                        .await;
                }
            }
        }
    }

    async fn complete(
        &self,
        msg: &StageMessage,
        rec: StageRecord,
        done: crate::workflow::StageDone,
    ) -> Result<(), EngineError> {
        let mut rec = rec.with_state(StageState::Completed);
        rec.output = Some(done.output);
        rec.next_stage = done.next.map(str::to_string);
        self.store.put(&msg.command.command_id, &msg.stage, &rec)?;
        // On disk before the next stage carries this output: after a crash the stage is
        // re-forwarded with the same output, never re-run into a different one.
        self.store.flush().await?;
        self.forward_success(msg, rec).await
    }

    /// A non-idempotent call may have taken effect without its result being recorded.
    /// Ask the platform with a read-only probe where it has one; never re-send blindly.
    async fn reconcile(
        &self,
        msg: &StageMessage,
        rec: StageRecord,
        why: &str,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        // Until the probe has answered, the stage counts as maybe-sent.
        let rec = rec.with_state(StageState::Started);
        self.store.put(cid, &msg.stage, &rec)?;
        self.store.flush().await?;
        // A call sent moments ago may still be on its way through the platform; a probe
        // now could miss it and lead to a second call. Look only once it has had time to land.
        let age = (Utc::now() - rec.started_at).to_std().unwrap_or_default();
        if age < self.settings.reconcile_delay {
            let error = format!("{why}; checking once a call in flight would have landed");
            let wait = self.settings.reconcile_delay - age;
            return self
                .schedule_retry(msg, Some(rec), StageState::Started, &error, wait)
                .await;
        }
        if !Workflows::has_probe(&msg.command.body, &msg.stage) {
            let error = format!("{why}; the platform has no lookup to check it");
            return self
                .dead_letter(msg, Some(rec), DeadReason::OutcomeUnknown, &error)
                .await;
        }
        let guard = self.guards.get(Workflows::api(&msg.command.body));
        let permit = match guard.admit().await {
            Admission::Go(permit) => permit,
            Admission::Open { retry_in } => {
                return self.wait_for_api(msg, Some(rec), retry_in).await
            }
        };
        let probe = self
            .workflows
            .probe(&msg.command, &msg.stage, &msg.outputs)
            .await;
        drop(permit);
        match probe {
            Ok(Probe::Applied(done)) => {
                guard.record_success();
                info!(why, "reconciled: the call had taken effect");
                self.complete(msg, rec, done).await
            }
            Ok(Probe::NotApplied) => {
                guard.record_success();
                info!(why, "reconciled: the call had not taken effect; sending it");
                self.execute(msg, Effect::NonIdempotent).await
            }
            Ok(Probe::Unavailable) => {
                let error = format!("{why}; the platform has no lookup to check it");
                self.dead_letter(msg, Some(rec), DeadReason::OutcomeUnknown, &error)
                    .await
            }
            Err(e)
                if e.failure != Failure::Permanent
                    && msg.attempt < self.policy(msg).max_attempts =>
            {
                guard.record_failure();
                let error = format!("{why}; the check failed: {}", e.message);
                let delay = self.policy(msg).durable_delay(msg.attempt);
                self.schedule_retry(msg, Some(rec), StageState::Started, &error, delay)
                    .await
            }
            Err(e) => {
                match e.failure {
                    Failure::Permanent => guard.record_success(),
                    Failure::Transient | Failure::OutcomeUnknown => guard.record_failure(),
                }
                let error = format!("{why}; the check failed: {}", e.message);
                self.dead_letter(msg, Some(rec), DeadReason::OutcomeUnknown, &error)
                    .await
            }
        }
    }

    /// The API's breaker is open: come back later, durably, without spending an attempt.
    async fn wait_for_api(
        &self,
        msg: &StageMessage,
        rec: Option<StageRecord>,
        retry_in: Duration,
    ) -> Result<(), EngineError> {
        let api = Workflows::api(&msg.command.body);
        if let Some(rec) = &rec {
            self.store.put(&msg.command.command_id, &msg.stage, rec)?;
            self.store.flush().await?;
        }
        let tier = Topology::delay_tier(retry_in.as_millis() as u64);
        self.publish_stage(msg, &self.topology.delay_queue(tier))
            .await?;
        let mut data = self.event_data(msg, Outcome::Retrying, None);
        data.error = Some(format!("circuit breaker open for {api}; waiting"));
        data.next_delay_ms = Some(tier);
        let mut event = self.step_event(msg, data);
        // Waits do not spend an attempt, so they need ids of their own.
        event.id = format!("{}/circuit/{}", event.id, Utc::now().timestamp_millis());
        self.publish_event(event).await?;
        info!(
            api,
            delay_ms = tier,
            "circuit open; stage parked in a delay queue"
        );
        Ok(())
    }

    /// Publishes a completed stage's event and the next stage (or the terminal event),
    /// then marks the stage forwarded.
    async fn forward_success(
        &self,
        msg: &StageMessage,
        mut rec: StageRecord,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let output = rec.output.clone().unwrap_or(serde_json::Value::Null);
        let step = self.step_event(
            msg,
            self.event_data(msg, Outcome::Completed, Some(output.clone())),
        );
        let mut outputs = msg.outputs.clone();
        outputs.insert(msg.stage.clone(), output);
        // Both go out on the one confirm channel, in this order; their confirms are
        // awaited together instead of one after the other.
        match rec.next_stage.as_deref() {
            Some(next) => {
                let next_msg = StageMessage {
                    command: msg.command.clone(),
                    stage: next.to_string(),
                    attempt: 1,
                    outputs,
                    first_failure_at: None,
                    traceparent: msg.traceparent.clone(),
                    replay: None,
                };
                let queue = self.topology.work_queue_for(cid);
                let (event, stage) = tokio::join!(
                    self.publish_event(step),
                    self.publish_stage(&next_msg, &queue)
                );
                event?;
                stage?;
            }
            None => {
                let mut data = self.event_data(msg, Outcome::Completed, None);
                data.stage = None;
                data.attempt = None;
                data.output = serde_json::to_value(&outputs).ok();
                let (event, workflow) = tokio::join!(
                    self.publish_event(step),
                    self.publish_event(self.workflow_event(msg, data))
                );
                event?;
                workflow?;
                info!("workflow completed");
            }
        }
        // Not flushed: if this mark is lost in a crash, a later copy of the stage only
        // re-publishes the same outcome (same event ids, a next stage that is a duplicate).
        rec.forwarded = true;
        self.store.put(cid, &msg.stage, &rec)?;
        Ok(())
    }

    /// Sends the stage back through a delay queue as its next attempt. `state` is what
    /// the record says meanwhile: `Retrying` (the call did not take effect) or `Started`
    /// (it may have: the returning message reconciles instead of calling).
    async fn schedule_retry(
        &self,
        msg: &StageMessage,
        rec: Option<StageRecord>,
        state: StageState,
        error: &str,
        delay: Duration,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let mut rec = rec
            .unwrap_or_else(|| StageRecord::started(msg.attempt))
            .with_state(state);
        rec.error = Some(error.to_string());
        self.store.put(cid, &msg.stage, &rec)?;
        // Durable before the retry can come back.
        self.store.flush().await?;
        let tier = Topology::delay_tier(delay.as_millis() as u64);
        let retry = StageMessage {
            attempt: msg.attempt + 1,
            first_failure_at: msg.first_failure_at.or_else(|| Some(Utc::now())),
            ..msg.clone()
        };
        self.publish_stage(&retry, &self.topology.delay_queue(tier))
            .await?;
        let mut data = self.event_data(msg, Outcome::Retrying, None);
        data.error = Some(error.to_string());
        data.next_delay_ms = Some(tier);
        self.publish_event(self.step_event(msg, data)).await?;
        metrics::counter!("billflow_retries_total", "workflow" => msg.workflow(), "stage" => msg.stage.clone())
            .increment(1);
        info!(
            next_attempt = retry.attempt,
            delay_ms = tier,
            "retry scheduled"
        );
        Ok(())
    }

    /// Moves a stage message to the dead queue with its reason, and publishes the stage's
    /// and the workflow's terminal events.
    async fn dead_letter(
        &self,
        msg: &StageMessage,
        rec: Option<StageRecord>,
        reason: DeadReason,
        error: &str,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let mut rec = rec
            .unwrap_or_else(|| StageRecord::started(msg.attempt))
            .with_state(StageState::Failed);
        rec.error = Some(error.to_string());
        rec.reason = Some(reason.as_str().to_string());
        self.store.put(cid, &msg.stage, &rec)?;
        // On disk before anything is published: after a crash the same failure is
        // re-published, and the stage is never run again into another outcome.
        self.store.flush().await?;

        let now = Utc::now();
        let mut headers = msg.headers();
        dead_headers(&mut headers, reason, error);
        headers.insert(
            "x-billflow-first-failure".into(),
            text(&msg.first_failure_at.unwrap_or(now).to_rfc3339()),
        );
        headers.insert("x-billflow-last-failure".into(), text(&now.to_rfc3339()));
        headers.insert(
            "x-billflow-attempts".into(),
            AMQPValue::LongLongInt(i64::from(msg.attempt)),
        );
        let mut dead = Outgoing::json("", &self.topology.dead_queue(), msg.encode());
        dead.headers = headers;
        dead.message_id = Some(format!("{cid}/{}/{}", msg.stage, msg.attempt));
        self.publisher.publish(dead).await?;

        let outcome = reason.outcome();
        let mut data = self.event_data(msg, outcome, None);
        data.error = Some(error.to_string());
        data.reason = Some(reason.as_str().to_string());
        self.publish_event(self.step_event(msg, data.clone()))
            .await?;
        data.attempt = None;
        self.publish_event(self.workflow_event(msg, data)).await?;
        metrics::counter!("billflow_dead_lettered_total", "reason" => reason.as_str()).increment(1);
        warn!(reason = reason.as_str(), error, "stage dead-lettered");

        rec.forwarded = true;
        self.store.put(cid, &msg.stage, &rec)?;
        self.store.flush().await?;
        Ok(())
    }

    /// A message that is not a valid command or stage message: dead queue, failed event.
    async fn reject_invalid(&self, delivery: &Delivery, error: &str) -> Result<(), EngineError> {
        let command_id = Command::sniff_id(&delivery.data)
            .or_else(|| {
                delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string())
            })
            .unwrap_or_else(|| format!("unidentified-{:016x}", fnv1a(&delivery.data)));
        let workflow = Command::sniff_type(&delivery.data)
            .and_then(|t| Workflows::name_of_type(&t))
            .unwrap_or("unknown");
        warn!(%command_id, error, "invalid message");
        metrics::counter!("billflow_dead_lettered_total", "reason" => DeadReason::InvalidMessage.as_str())
            .increment(1);

        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        dead_headers(&mut headers, DeadReason::InvalidMessage, error);
        headers.insert("x-billflow-command-id".into(), text(&command_id));
        headers.insert(
            "x-billflow-original-routing-key".into(),
            text(delivery.routing_key.as_str()),
        );
        let now = Utc::now().to_rfc3339();
        headers.insert("x-billflow-first-failure".into(), text(&now));
        headers.insert("x-billflow-last-failure".into(), text(&now));
        let mut dead = Outgoing::json("", &self.topology.dead_queue(), delivery.data.clone());
        dead.headers = headers;
        self.publisher.publish(dead).await?;

        let data = EventData {
            command_id,
            workflow: workflow.to_string(),
            stage: None,
            outcome: Outcome::Failed,
            attempt: None,
            output: None,
            error: Some(error.to_string()),
            reason: Some(DeadReason::InvalidMessage.as_str().to_string()),
            next_delay_ms: None,
        };
        let mut event = CloudEvent::workflow(&self.settings.source, data);
        event.traceparent = header_str(delivery.properties.headers().as_ref(), TRACEPARENT)
            .filter(|t| valid_traceparent(t))
            .map(str::to_string);
        // Distinct invalid bodies under one id must not collapse into one event.
        event.id = format!("{}/invalid/{:016x}", event.id, fnv1a(&delivery.data));
        self.publish_event(event).await
    }

    fn step_event(&self, msg: &StageMessage, data: EventData) -> CloudEvent {
        let mut event = CloudEvent::step(&self.settings.source, data);
        event.traceparent = msg.traceparent.clone();
        event
    }

    fn workflow_event(&self, msg: &StageMessage, data: EventData) -> CloudEvent {
        let mut event = CloudEvent::workflow(&self.settings.source, data);
        event.traceparent = msg.traceparent.clone();
        event
    }

    fn event_data(
        &self,
        msg: &StageMessage,
        outcome: Outcome,
        output: Option<serde_json::Value>,
    ) -> EventData {
        EventData {
            command_id: msg.command.command_id.clone(),
            workflow: msg.workflow().to_string(),
            stage: Some(msg.stage.clone()),
            outcome,
            attempt: Some(msg.attempt),
            output,
            error: None,
            reason: None,
            next_delay_ms: None,
        }
    }

    async fn publish_stage(&self, msg: &StageMessage, queue: &str) -> Result<(), EngineError> {
        let mut out = Outgoing::json("", queue, msg.encode());
        out.headers = msg.headers();
        out.message_id = Some(format!(
            "{}/{}/{}",
            msg.command.command_id, msg.stage, msg.attempt
        ));
        out.message_type = Some("billflow.stage".into());
        self.publisher.publish(out).await?;
        debug!(stage = %msg.stage, queue, "stage message published");
        Ok(())
    }

    async fn publish_event(&self, event: CloudEvent) -> Result<(), EngineError> {
        let outcome = event.data.outcome.as_str();
        match (&event.data.stage, event.is_terminal()) {
            (_, true) => metrics::counter!(
                "billflow_workflow_outcomes_total",
                "workflow" => event.data.workflow.clone(),
                "outcome" => outcome
            )
            .increment(1),
            (Some(stage), false) => metrics::counter!(
                "billflow_stage_outcomes_total",
                "workflow" => event.data.workflow.clone(),
                "stage" => stage.clone(),
                "outcome" => outcome
            )
            .increment(1),
            (None, false) => {}
        }
        let body = serde_json::to_vec(&event)
            .expect("an event (strings, numbers, JSON values) always serializes");
        let mut out = Outgoing::json(&self.topology.events_exchange(), &event.routing_key(), body);
        out.message_id = Some(event.id.clone());
        out.message_type = Some(event.kind.clone());
        // Events fan out to whoever subscribed; having no subscriber yet is not an error.
        out.mandatory = false;
        if let Some(traceparent) = &event.traceparent {
            out.headers.insert(TRACEPARENT.into(), text(traceparent));
        }
        out.headers
            .insert("ce-id".into(), AMQPValue::LongString(event.id.into()));
        self.publisher.publish(out).await?;
        Ok(())
    }
}

fn dead_headers(headers: &mut FieldTable, reason: DeadReason, error: &str) {
    headers.insert("x-billflow-reason".into(), text(reason.as_str()));
    // Header values stay readable in management tools: cap the error text.
    let error: String = error.chars().take(1_000).collect();
    headers.insert("x-billflow-error".into(), text(&error));
}

/// FNV-1a: a stable fingerprint of a body for ids of messages that carry none.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Returns a delivery to its queue after a pause, so broker or disk trouble is not met
/// again at once.
async fn requeue_later(delivery: Delivery) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requeue = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    if let Err(e) = delivery.nack(requeue).await {
        warn!(error = %e, "nack failed");
    }
}
