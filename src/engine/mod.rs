//! The stage runner: claim → call → record → publish (event, next stage or dead letter)
//! → ack. The store makes a completed call unrepeatable; the broker carries the rest.

pub mod envelope;
pub mod events;
mod intake;
pub mod message;
pub mod protect;
pub mod retry;
pub mod signing;
mod undelivered;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use tracing::{debug, error, info, warn, Instrument};

use crate::billing::Failure;
use crate::broker::{fnv1a, BrokerError, Outgoing, Publisher, Topology};
use crate::command::Command;
use crate::redact::{self, Redactor};
use crate::store::{StageRecord, StageState, Store, StoreError};
use crate::workflow::{Effect, Probe, StageDone, StageError, Workflows};
use envelope::{Envelope, Header};
use events::{CloudEvent, Conflict, EventData, Outcome};
use message::StageMessage;
use protect::{Admission, Guards};
use retry::{RetryConfig, RetryPolicy};
use signing::Signer;

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
    /// A command_id seen before with other data.
    ConflictingDuplicate,
    /// The worker panicked on the message.
    InternalError,
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
            DeadReason::ConflictingDuplicate => "conflicting_duplicate",
            DeadReason::InternalError => "internal_error",
            DeadReason::Expired => "expired",
            DeadReason::DeliveryLimit => "delivery_limit",
            DeadReason::Rejected => "rejected",
        }
    }

    pub const ALL: [DeadReason; 9] = [
        DeadReason::PermanentError,
        DeadReason::RetriesExhausted,
        DeadReason::InvalidMessage,
        DeadReason::OutcomeUnknown,
        DeadReason::ConflictingDuplicate,
        DeadReason::InternalError,
        DeadReason::Expired,
        DeadReason::DeliveryLimit,
        DeadReason::Rejected,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The outcome published for the stage and the workflow.
    fn outcome(self) -> Outcome {
        match self {
            DeadReason::PermanentError
            | DeadReason::InvalidMessage
            | DeadReason::ConflictingDuplicate
            | DeadReason::InternalError => Outcome::Failed,
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
    /// Signs the stage messages this worker writes and checks those it reads.
    pub signer: Signer,
    /// Fault injection for tests: a stage of this name panics when it runs. Not settable
    /// from the environment or flags.
    pub panic_in_stage: Option<String>,
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
        // A panic is a lost message: whatever caused it, the delivery still ends in the
        // dead queue with a reason and an event.
        let outcome = match AssertUnwindSafe(self.handle(&delivery))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic_text(panic.as_ref());
                error!(panic = %redact::global().redact(&what), "the worker panicked on a message; dead-lettering it");
                let error = format!("internal error: the worker panicked: {what}");
                self.reject(&delivery, DeadReason::InternalError, &error)
                    .await
            }
        };
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
            if !message::is_json(ct.as_str()) {
                let error = format!("content type {:?} is not application/json", ct.as_str());
                return self.reject_invalid(delivery, &error).await;
            }
        }
        let envelope = Envelope::of(headers);
        let stage_header = envelope.stage.as_deref();
        // Only a worker writes a stage: anything claiming to be one must carry its signature.
        if stage_header.is_some() || headers.is_some_and(|h| Header::STAGE.is_in(h)) {
            let signature = envelope.signature.as_deref();
            if let Err(e) = self.settings.signer.verify(&delivery.data, signature) {
                return self.reject_invalid(delivery, &e.to_string()).await;
            }
        }
        let fresh = stage_header.is_none();
        let mut message = match StageMessage::decode(&delivery.data, stage_header) {
            Ok(m) => m,
            Err(e) => return self.reject_invalid(delivery, &e.to_string()).await,
        };
        if let Err(e) = message.unseal(&self.settings.signer) {
            return self.reject_invalid(delivery, &e.to_string()).await;
        }
        // A CRM's trace continues through every stage and event of its command.
        if message.traceparent.is_none() {
            message.traceparent = envelope.traceparent;
        }
        let span = tracing::info_span!(
            "stage",
            command_id = %message.command.command_id,
            workflow = message.workflow(),
            stage = %message.stage,
            attempt = message.attempt,
            traceparent = message.traceparent.as_deref().unwrap_or(""),
        );
        self.run(message, delivery.redelivered, fresh)
            .instrument(span)
            .await
    }

    /// `fresh`: a command as a CRM sent it, not a stage message.
    async fn run(
        &self,
        msg: StageMessage,
        redelivered: bool,
        fresh: bool,
    ) -> Result<(), EngineError> {
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
        let record = self.store.get(&cid, &msg.stage)?;
        if fresh {
            let original = record.as_ref().and_then(|r| r.command_digest.as_deref());
            let received = msg.command.digest();
            if let Some(original) = original.filter(|o| *o != received) {
                return self
                    .conflicting_duplicate(&msg, original.to_string(), received)
                    .await;
            }
        }
        match record {
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
                // The cause recorded when the outcome became unknown (a timeout, an HTTP 502,
                // an unreadable answer) stays in every later text about the stage.
                let why = match &rec.error {
                    Some(cause) => cause.clone(),
                    None => "the call was started and its result never recorded".to_string(),
                };
                self.reconcile(&msg, rec, &why).await
            }
            // No record here, yet the call may have been made: by another worker before a
            // fail-over or a hand-back (a redelivery, or a retry it scheduled).
            None if (redelivered || msg.attempt > 1) && effect == Effect::NonIdempotent => {
                let why = if redelivered {
                    "redelivered with no local record of the stage; another worker may have made the call"
                } else {
                    "a retry with no local record of the earlier attempt; another worker may have made the call"
                };
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
            if msg.stage == Workflows::first_stage(&msg.command.body) {
                started_rec.command_digest = Some(msg.command.digest());
            }
            self.store.put(cid, &msg.stage, &started_rec)?;
            if effect == Effect::NonIdempotent {
                // The claim must be on disk before the platform can act on the call.
                self.store.flush().await?;
            }
            let started = std::time::Instant::now();
            if self.settings.panic_in_stage.as_deref() == Some(msg.stage.as_str()) {
                panic!("fault injected: panic in stage {}", msg.stage);
            }
            // Boxed: the call's future (HTTP client, XML) is large, and without the box
            // every task waiting for admission would carry room for it.
            let result = Box::pin(self.workflows.run(&msg.command, &msg.stage, &msg.outputs)).await;
            drop(permit);
            // A platform may echo a credential in an answer or an error: masked before the
            // text is logged, stored or published.
            let result = self.redacted(msg, result);
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
        done: StageDone,
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
        let probe = match probe {
            Ok(Probe::Applied(done)) => self.redacted(msg, Ok(done)).map(Probe::Applied),
            Ok(other) => Ok(other),
            Err(e) => self.redacted(msg, Err(e)).map(Probe::Applied),
        };
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
        self.publish_event(event, &self.redactor(msg)).await?;
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
                    sealed: None,
                };
                let queue = self.topology.work_queue_for(cid);
                let redactor = self.redactor(msg);
                let (event, stage) = tokio::join!(
                    self.publish_event(step, &redactor),
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
                let redactor = self.redactor(msg);
                let (event, workflow) = tokio::join!(
                    self.publish_event(step, &redactor),
                    self.publish_event(self.workflow_event(msg, data), &redactor)
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
        self.publish_event(self.step_event(msg, data), &self.redactor(msg))
            .await?;
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
        let error = self.redactor(msg).redact(error).into_owned();
        let error = error.as_str();
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
        let headers = Envelope {
            reason: Some(reason),
            error: Some(error.to_string()),
            first_failure: Some(msg.first_failure_at.unwrap_or(now)),
            last_failure: Some(now),
            attempts: Some(msg.attempt),
            ..msg.envelope()
        }
        .to_headers();
        let mut dead = Outgoing::json(
            "",
            &self.topology.dead_queue(),
            msg.encode_sealed(&self.settings.signer),
        );
        dead.headers = headers;
        dead.message_id = Some(format!("{cid}/{}/{}", msg.stage, msg.attempt));
        self.publisher.publish(dead).await?;

        let outcome = reason.outcome();
        let mut data = self.event_data(msg, outcome, None);
        data.error = Some(error.to_string());
        data.reason = Some(reason.as_str().to_string());
        let redactor = self.redactor(msg);
        self.publish_event(self.step_event(msg, data.clone()), &redactor)
            .await?;
        data.attempt = None;
        self.publish_event(self.workflow_event(msg, data), &redactor)
            .await?;
        metrics::counter!("billflow_dead_lettered_total", "reason" => reason.as_str()).increment(1);
        warn!(reason = reason.as_str(), error, "stage dead-lettered");

        rec.forwarded = true;
        self.store.put(cid, &msg.stage, &rec)?;
        self.store.flush().await?;
        Ok(())
    }

    /// A message that is not a valid command or stage message: dead queue, failed event.
    async fn reject_invalid(&self, delivery: &Delivery, error: &str) -> Result<(), EngineError> {
        self.reject(delivery, DeadReason::InvalidMessage, error)
            .await
    }

    /// Moves a delivery as it came (body and headers) to the dead queue with `reason`, and
    /// publishes the workflow's failed event. For messages billflow could not run at all.
    async fn reject(
        &self,
        delivery: &Delivery,
        reason: DeadReason,
        error: &str,
    ) -> Result<(), EngineError> {
        let body = body_json(delivery, self.settings.max_message_bytes);
        let redactor =
            redact::global().with(body.as_ref().map(redact::json_secrets).unwrap_or_default());
        let error = redactor.redact(error).into_owned();
        let error = error.as_str();
        let (command_id, workflow) = identify(delivery);
        warn!(%command_id, error, reason = reason.as_str(), "message rejected");
        metrics::counter!("billflow_dead_lettered_total", "reason" => reason.as_str()).increment(1);

        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let now = Utc::now();
        Envelope {
            reason: Some(reason),
            error: Some(error.to_string()),
            command_id: Some(command_id.clone()),
            // The intake recorded the key a command was published with; anything else was
            // delivered under its own.
            original_routing_key: (!Header::ORIGINAL_ROUTING_KEY.is_in(&headers))
                .then(|| delivery.routing_key.to_string()),
            first_failure: Some(now),
            last_failure: Some(now),
            ..Envelope::default()
        }
        .write_into(&mut headers);
        let mut dead = Outgoing::json("", &self.topology.dead_queue(), dead_body(delivery, body));
        dead.headers = headers;
        self.publisher.publish(dead).await?;

        let data = EventData {
            command_id,
            workflow: workflow.to_string(),
            stage: None,
            outcome: reason.outcome(),
            attempt: None,
            output: None,
            error: Some(error.to_string()),
            reason: Some(reason.as_str().to_string()),
            next_delay_ms: None,
            conflict: None,
        };
        let mut event = CloudEvent::workflow(&self.settings.source, data);
        event.traceparent = Envelope::of(delivery.properties.headers().as_ref()).traceparent;
        // Distinct invalid bodies under one id must not collapse into one event.
        event.id = format!(
            "{}/{}/{:016x}",
            event.id,
            reason.as_str(),
            fnv1a(&delivery.data)
        );
        self.publish_event(event, &redactor).await
    }

    /// A command whose command_id was seen with other data: the new one goes to the dead
    /// queue, the CRM is told with both digests (never the data), the original runs on.
    async fn conflicting_duplicate(
        &self,
        msg: &StageMessage,
        original: String,
        received: String,
    ) -> Result<(), EngineError> {
        let reason = DeadReason::ConflictingDuplicate;
        let error = format!(
            "command_id {} was already used with other data (digest {original}); this command (digest {received}) is not run",
            msg.command.command_id
        );
        warn!(%original, %received, "conflicting duplicate command");
        metrics::counter!("billflow_dead_lettered_total", "reason" => reason.as_str()).increment(1);
        let now = Utc::now();
        let headers = Envelope {
            reason: Some(reason),
            error: Some(error.clone()),
            command_id: Some(msg.command.command_id.clone()),
            workflow: Some(msg.workflow().to_string()),
            first_failure: Some(now),
            last_failure: Some(now),
            ..Envelope::default()
        }
        .to_headers();
        let mut command = serde_json::to_value(&msg.command).unwrap_or_default();
        redact::mask_secret_fields(&mut command);
        let body = serde_json::to_vec(&command).unwrap_or_default();
        let mut dead = Outgoing::json("", &self.topology.dead_queue(), body);
        dead.headers = headers;
        self.publisher.publish(dead).await?;

        let mut data = self.event_data(msg, reason.outcome(), None);
        data.stage = None;
        data.attempt = None;
        data.error = Some(error);
        data.reason = Some(reason.as_str().to_string());
        let mut event = self.workflow_event(msg, data);
        // Its own id: the original's terminal event must not be taken for a copy of it.
        event.id = format!("{}/{}/{received}", event.id, reason.as_str());
        event.data.conflict = Some(Conflict { original, received });
        self.publish_event(event, &self.redactor(msg)).await
    }

    /// The configured secrets and those of this message's command.
    fn redactor(&self, msg: &StageMessage) -> Redactor {
        redact::global().with(msg.command.secrets())
    }

    /// A stage's result with every secret masked in its output or error text.
    fn redacted(
        &self,
        msg: &StageMessage,
        result: Result<StageDone, StageError>,
    ) -> Result<StageDone, StageError> {
        let redactor = self.redactor(msg);
        if redactor.is_empty() {
            return result;
        }
        match result {
            Ok(mut done) => {
                redactor.redact_json(&mut done.output);
                Ok(done)
            }
            Err(mut e) => {
                redactor.redact_string(&mut e.message);
                Err(e)
            }
        }
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
            conflict: None,
        }
    }

    async fn publish_stage(&self, msg: &StageMessage, queue: &str) -> Result<(), EngineError> {
        self.publisher
            .publish(msg.outgoing(queue, &self.settings.signer))
            .await?;
        debug!(stage = %msg.stage, queue, "stage message published");
        Ok(())
    }

    /// Publishes an event, every secret `redactor` knows masked in its error and output.
    async fn publish_event(
        &self,
        mut event: CloudEvent,
        redactor: &Redactor,
    ) -> Result<(), EngineError> {
        if let Some(error) = event.data.error.as_mut() {
            redactor.redact_string(error);
        }
        if let Some(output) = event.data.output.as_mut() {
            redactor.redact_json(output);
        }
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
        Envelope {
            traceparent: event.traceparent.clone(),
            ..Envelope::default()
        }
        .write_into(&mut out.headers);
        out.headers
            .insert("ce-id".into(), AMQPValue::LongString(event.id.into()));
        self.publisher.publish(out).await?;
        Ok(())
    }
}

/// Whom a message that could not be run was about, for its dead letter and event: the
/// command id and workflow its body names (a command, or the command in a stage message),
/// else its message id when that could be a command id (ids derived from a longer one would
/// not fit an AMQP message id), else a fingerprint of the body.
fn identify(delivery: &Delivery) -> (String, &'static str) {
    let command_id = Command::sniff_id(&delivery.data)
        .or_else(|| {
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .filter(|m| {
                    !m.trim().is_empty()
                        && m.len() <= crate::command::MAX_COMMAND_ID_LEN
                        && !m.chars().any(char::is_control)
                })
        })
        .unwrap_or_else(|| format!("unidentified-{:016x}", fnv1a(&delivery.data)));
    let workflow = Command::sniff_type(&delivery.data)
        .and_then(|t| Workflows::name_of_type(&t))
        .unwrap_or("unknown");
    (command_id, workflow)
}

/// A delivery's body as JSON, unless it is oversized or not JSON.
fn body_json(delivery: &Delivery, max_message_bytes: usize) -> Option<serde_json::Value> {
    (delivery.data.len() <= max_message_bytes)
        .then(|| serde_json::from_slice(&delivery.data).ok())
        .flatten()
}

/// The body a rejected delivery is dead-lettered with: as it came, but for the secrets it
/// carries (a JSON body's secret fields masked; in any other text, the configured secrets).
fn dead_body(delivery: &Delivery, json: Option<serde_json::Value>) -> Vec<u8> {
    match json {
        Some(mut value)
            if redact::json_secrets(&value)
                .iter()
                .any(|s| s != redact::MASK) =>
        {
            redact::mask_secret_fields(&mut value);
            serde_json::to_vec(&value).unwrap_or_else(|_| delivery.data.clone())
        }
        Some(_) => delivery.data.clone(),
        None => match std::str::from_utf8(&delivery.data) {
            Ok(text) => redact::global().redact(text).into_owned().into_bytes(),
            Err(_) => delivery.data.clone(),
        },
    }
}

/// The text a panic was raised with.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
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
