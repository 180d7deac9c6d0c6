//! The stage runner: claim → call → record → publish (event, next stage or dead letter)
//! → ack. The store makes a completed call unrepeatable; the broker carries the rest.
//! Its choices are pure functions in [`decide`]; this module carries them out. It uses
//! the contract, the store, the broker's publisher and the workflows, and must not import
//! `runtime` or `cli` (which drive it).

mod decide;
mod inflight;
mod intake;
pub mod protect;
pub mod retry;
mod undelivered;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use tracing::{debug, error, info, warn, Instrument};

use crate::broker::{fnv1a, BrokerError, Outgoing, Publisher, Topology};
use crate::contract::command::Command;
use crate::contract::envelope::{Envelope, Header};
use crate::contract::events::{CloudEvent, Conflict, EventData, Outcome};
use crate::contract::message::{self, StageMessage};
use crate::contract::signing::Signer;
use crate::contract::DeadReason;
use crate::ledger::{Ledger, LedgerError};
use crate::redact::{self, Redactor};
use crate::store::{StageRecord, StageState, Store, StoreError};
use crate::workflow::{registry, Effect, Probe, StageDone, StageError, Workflows};
use decide::{AfterFailure, AfterProbe, BeforeProbe, Delivered, OnDelivery};
pub use inflight::Inflight;
use protect::{Admission, Guards};
use retry::{RetryConfig, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
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

pub struct Engine {
    store: Store,
    publisher: Publisher,
    /// Events only. Every event also lands in the events log (a stream), and RabbitMQ
    /// before 4.0 numbers a stream's resends after a leader change by the channel's
    /// publishes: on a channel whose every publish reaches the stream the two agree, on
    /// a shared one confirmed events could be missing from the log.
    events: Publisher,
    topology: Topology,
    workflows: Workflows,
    settings: EngineSettings,
    inflight: Inflight,
    guards: Arc<Guards>,
    ledger: Ledger,
}

/// What every engine of a worker shares, whichever broker connection it serves.
#[derive(Clone)]
pub struct EngineCore {
    pub store: Store,
    pub topology: Topology,
    pub workflows: Workflows,
    pub settings: EngineSettings,
    /// Concurrency, rate and circuit breaker per API.
    pub guards: Arc<Guards>,
    pub inflight: Inflight,
    /// The fleet's record of every shard's stages.
    pub ledger: Ledger,
}

impl Engine {
    /// An engine publishing on `publisher`, and its events on `events` (channels of one
    /// broker connection).
    pub fn new(core: EngineCore, publisher: Publisher, events: Publisher) -> Self {
        let EngineCore {
            store,
            topology,
            workflows,
            settings,
            guards,
            inflight,
            ledger,
        } = core;
        Engine {
            store,
            publisher,
            events,
            topology,
            workflows,
            settings,
            inflight,
            guards,
            ledger,
        }
    }

    /// A delivery from shard queue `shard`, to the consumer of `generation`: the shard's
    /// ledger is read first when that consumer has not run anything yet (it has just
    /// taken the shard over).
    pub async fn process_shard(&self, shard: u16, generation: u64, delivery: Delivery) {
        let _counted = self.ledger.enter(shard);
        if let Err(e) = self.ledger.take_over(shard, generation).await {
            error!(shard, error = %e, "cannot read the shard's ledger; the message will be redelivered");
            requeue_later(delivery).await;
            return;
        }
        self.process(delivery).await
    }

    /// After this worker stepped back from `shard`: tells the shard's home worker once
    /// the stages it still runs there have ended.
    pub async fn release_shard(&self, shard: u16) {
        if let Err(e) = self.ledger.release(shard).await {
            warn!(shard, error = %e, "could not release the shard in its ledger; its home worker takes it after its wait");
        }
    }

    /// The start of a call could not be made durable (or read back before another
    /// worker's `Took`), so the call was not sent: say so in the store, and in the ledger
    /// if the broker takes it, since the "started" entry may have landed anyway. Without
    /// this, whoever runs the stage next would park it as maybe sent. Returns the error
    /// to hand the delivery back with.
    async fn not_started(
        &self,
        msg: &StageMessage,
        started: &StageRecord,
        error: EngineError,
    ) -> EngineError {
        let state = StageState::Retrying {
            error: Some(format!("not sent: {error}")),
        };
        let rec = started.clone().with_state(state);
        if let Err(e) = self.persist(msg, &rec, false).await {
            warn!(error = %e, "could not record that the call was not sent; whoever runs it next will reconcile it");
        }
        error
    }

    /// Makes a stage record durable: in the shard's ledger (confirmed by the broker) and
    /// in the store, flushed when `flush`. Both before anything depends on it.
    async fn persist(
        &self,
        msg: &StageMessage,
        rec: &StageRecord,
        flush: bool,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        self.store.put(cid, &msg.stage, rec)?;
        let flushed = async {
            if flush {
                self.store.flush().await
            } else {
                Ok(())
            }
        };
        let (ledger, store) = tokio::join!(self.ledger.record(cid, &msg.stage, rec), flushed);
        ledger?;
        store?;
        Ok(())
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
            redelivered = delivery.redelivered,
            traceparent = message.traceparent.as_deref().unwrap_or(""),
        );
        self.run(message, fresh).instrument(span).await
    }

    /// `fresh`: a command as a CRM sent it, not a stage message.
    async fn run(&self, msg: StageMessage, fresh: bool) -> Result<(), EngineError> {
        let _claim = self
            .inflight
            .claim(&msg.command.command_id, &msg.stage)
            .await;
        let effect = registry::of(&msg.command.body)
            .effect(&msg.stage)
            .unwrap_or(Effect::NonIdempotent);
        let record = self.store.get(&msg.command.command_id, &msg.stage)?;
        // Only a command as a CRM sent it can conflict with an earlier one.
        let digest = fresh.then(|| msg.command.digest());
        let delivered = Delivered {
            fresh: digest.as_deref(),
            attempt: msg.attempt,
            replay: msg.replay.as_deref(),
        };
        match decide::on_delivery(record.as_ref(), delivered, effect) {
            OnDelivery::Conflict { original, received } => {
                self.conflicting_duplicate(&msg, original, received).await
            }
            OnDelivery::Execute => {
                if msg.replay.is_some() && record.is_some() {
                    info!(replay = ?msg.replay, "replaying a dead-lettered stage");
                }
                self.execute(&msg, effect).await
            }
            OnDelivery::Drop => {
                info!("duplicate of a finished stage; dropped");
                Ok(())
            }
            OnDelivery::Forward {
                record,
                output,
                next,
            } => {
                info!("stage completed before a crash; publishing its outcome");
                if !record.replicated {
                    // Its ledger entry may be what failed the first time.
                    self.ledger
                        .record(&msg.command.command_id, &msg.stage, &record)
                        .await?;
                }
                self.forward_success(&msg, record, output, next).await
            }
            OnDelivery::DeadLetterAgain {
                record,
                reason,
                error,
            } => self.dead_letter(&msg, record, reason, &error).await,
            OnDelivery::Reconcile { record, why } => self.reconcile(&msg, record, &why).await,
        }
    }

    fn policy(&self, msg: &StageMessage) -> &RetryPolicy {
        self.settings.retry.policy(msg.workflow(), &msg.stage)
    }

    /// Runs the stage's call: admission by the API's guard, the call, quick retries of
    /// transient failures, then the outcome.
    async fn execute(&self, msg: &StageMessage, effect: Effect) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let guard = self.guards.get(registry::of(&msg.command.body).api());
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
            if msg.stage == registry::first_stage(&msg.command.body) {
                started_rec.command_digest = Some(msg.command.digest());
            }
            let first = msg.stage == registry::first_stage(&msg.command.body);
            if effect == Effect::NonIdempotent || first {
                let held = (effect == Effect::NonIdempotent)
                    .then(|| self.ledger.expect_start(cid, &msg.stage, &started_rec));
                // The claim must be in the fleet's ledger and on disk before the platform
                // can act on the call; the first stage's carries the command's digest.
                if let Err(e) = self
                    .persist(msg, &started_rec, effect == Effect::NonIdempotent)
                    .await
                {
                    return Err(self.not_started(msg, &started_rec, e).await);
                }
                // And read back before any other worker's `Took` (the fence): else this
                // worker lost the shard, and the one that took it runs the stage.
                if let Some(held) = held {
                    if let Err(e) = held.confirmed().await {
                        return Err(self.not_started(msg, &started_rec, e.into()).await);
                    }
                }
            } else {
                self.store.put(cid, &msg.stage, &started_rec)?;
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
            guard.record(
                result
                    .as_ref()
                    .err()
                    .map(|e| decide::effective(e.failure, effect)),
            );
            let StageError { failure, message } = match result {
                Ok(done) => {
                    info!(elapsed_ms, next = ?done.next, "stage completed");
                    return self.complete(msg, started_rec, done).await;
                }
                Err(e) => e,
            };
            warn!(elapsed_ms, failure = ?decide::effective(failure, effect), error = %message, "stage failed");
            let next = decide::after_failure(failure, effect, msg.attempt, quick_left, &policy);
            match next {
                AfterFailure::QuickRetry => {
                    quick_left -= 1;
                    let pause = backoff::backoff::Backoff::next_backoff(&mut quick)
                        .unwrap_or(policy.quick_delay);
                    // The call did not take effect: a crash during the pause may re-run it.
                    let retrying = started_rec.with_state(StageState::Retrying { error: None });
                    if effect == Effect::NonIdempotent {
                        // Else the ledger's "started" would have the next owner reconcile.
                        self.persist(msg, &retrying, false).await?;
                    } else {
                        self.store.put(cid, &msg.stage, &retrying)?;
                    }
                    rec = Some(retrying);
                    tokio::time::sleep(pause).await;
                }
                AfterFailure::RetryLater => {
                    let delay = policy.durable_delay(msg.attempt);
                    let state = StageState::Retrying {
                        error: Some(message),
                    };
                    return self.schedule_retry(msg, started_rec, state, delay).await;
                }
                AfterFailure::CheckLater => {
                    // Ask the platform later, once a slow call would have landed; the record
                    // stays "started" so the returning message reconciles.
                    let delay = policy
                        .durable_delay(msg.attempt)
                        .max(self.settings.reconcile_delay);
                    let state = StageState::Started {
                        cause: Some(format!("outcome unknown, will check: {message}")),
                    };
                    return self.schedule_retry(msg, started_rec, state, delay).await;
                }
                AfterFailure::DeadLetter(reason) => {
                    return self.dead_letter(msg, started_rec, reason, &message).await;
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
        let next = done.next.map(str::to_string);
        let rec = rec.with_state(StageState::Completed {
            output: done.output.clone(),
            next: next.clone(),
        });
        // Durable before the next stage carries this output: after a crash the stage is
        // re-forwarded with the same output, never re-run into a different one.
        self.persist(msg, &rec, true).await?;
        self.forward_success(msg, rec, done.output, next).await
    }

    /// A non-idempotent call may have taken effect without its result being recorded.
    /// Ask the platform with a read-only probe where it has one; never re-send blindly.
    async fn reconcile(
        &self,
        msg: &StageMessage,
        rec: StageRecord,
        why: &str,
    ) -> Result<(), EngineError> {
        // Until the probe has answered, the stage counts as maybe-sent.
        let rec = rec.with_state(StageState::Started {
            cause: Some(why.to_string()),
        });
        self.persist(msg, &rec, true).await?;
        let age = (Utc::now() - rec.started_at).to_std().unwrap_or_default();
        let has_probe = registry::of(&msg.command.body).has_probe(&msg.stage);
        match decide::before_probe(age, self.settings.reconcile_delay, has_probe) {
            BeforeProbe::WaitToLand(wait) => {
                let cause = format!("{why}; checking once a call in flight would have landed");
                let state = StageState::Started { cause: Some(cause) };
                return self.schedule_retry(msg, rec, state, wait).await;
            }
            BeforeProbe::Park => {
                let error = format!("{why}; the platform has no lookup to check it");
                return self
                    .dead_letter(msg, rec, DeadReason::OutcomeUnknown, &error)
                    .await;
            }
            BeforeProbe::Probe => {}
        }
        let guard = self.guards.get(registry::of(&msg.command.body).api());
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
        if !matches!(probe, Ok(Probe::Unavailable)) {
            guard.record(probe.as_ref().err().map(|e| e.failure));
        }
        let probe = match probe {
            Ok(Probe::Applied(done)) => self.redacted(msg, Ok(done)).map(Probe::Applied),
            Ok(other) => Ok(other),
            Err(e) => self.redacted(msg, Err(e)).map(Probe::Applied),
        };
        match decide::after_probe(probe, msg.attempt, self.policy(msg)) {
            AfterProbe::Complete(done) => {
                info!(why, "reconciled: the call had taken effect");
                self.complete(msg, rec, done).await
            }
            AfterProbe::Send => {
                info!(why, "reconciled: the call had not taken effect; sending it");
                self.execute(msg, Effect::NonIdempotent).await
            }
            AfterProbe::Park(detail) => {
                let error = format!("{why}; {detail}");
                self.dead_letter(msg, rec, DeadReason::OutcomeUnknown, &error)
                    .await
            }
            AfterProbe::CheckLater(detail) => {
                let cause = format!("{why}; {detail}");
                let delay = self.policy(msg).durable_delay(msg.attempt);
                let state = StageState::Started { cause: Some(cause) };
                self.schedule_retry(msg, rec, state, delay).await
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
        let api = registry::of(&msg.command.body).api().as_str();
        if let Some(rec) = &rec {
            self.persist(msg, rec, true).await?;
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
            %api,
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
        output: serde_json::Value,
        next: Option<String>,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let step = self.step_event(
            msg,
            self.event_data(msg, Outcome::Completed, Some(output.clone())),
        );
        let mut outputs = msg.outputs.clone();
        outputs.insert(msg.stage.clone(), output);
        // Both go out on the one confirm channel, in this order; their confirms are
        // awaited together instead of one after the other.
        match next {
            Some(next) => {
                let next_msg = StageMessage {
                    command: msg.command.clone(),
                    stage: next,
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
    /// (it may have: the returning message reconciles instead of calling), with the error.
    async fn schedule_retry(
        &self,
        msg: &StageMessage,
        rec: StageRecord,
        state: StageState,
        delay: Duration,
    ) -> Result<(), EngineError> {
        let rec = rec.with_state(state);
        let error = rec.state.error().unwrap_or_default().to_string();
        // Durable before the retry can come back.
        self.persist(msg, &rec, true).await?;
        let tier = Topology::delay_tier(delay.as_millis() as u64);
        let retry = StageMessage {
            attempt: msg.attempt + 1,
            first_failure_at: msg.first_failure_at.or_else(|| Some(Utc::now())),
            ..msg.clone()
        };
        self.publish_stage(&retry, &self.topology.delay_queue(tier))
            .await?;
        let mut data = self.event_data(msg, Outcome::Retrying, None);
        data.error = Some(error);
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
        rec: StageRecord,
        reason: DeadReason,
        error: &str,
    ) -> Result<(), EngineError> {
        let cid = &msg.command.command_id;
        let error = self.redactor(msg).redact(error).into_owned();
        let error = error.as_str();
        let mut rec = rec.with_state(StageState::Failed {
            reason,
            error: error.to_string(),
        });
        // Durable before anything is published: after a crash the same failure is
        // re-published, and the stage is never run again into another outcome.
        self.persist(msg, &rec, true).await?;

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
        self.events.publish(out).await?;
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
                        && m.len() <= crate::contract::command::MAX_COMMAND_ID_LEN
                        && !m.chars().any(char::is_control)
                })
        })
        .unwrap_or_else(|| format!("unidentified-{:016x}", fnv1a(&delivery.data)));
    let workflow = Command::sniff_type(&delivery.data)
        .and_then(|t| registry::of_type(&t).map(|w| w.name()))
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
