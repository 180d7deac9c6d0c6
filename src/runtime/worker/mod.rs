//! `billflow worker`: wires store, broker, clients and engine, and runs the consume loop
//! until shut down, reconnecting to the broker whenever the connection is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use chrono::{TimeDelta, Utc};
use lapin::Connection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::billing::costguard::CostGuardClient;
use crate::billing::emersion::EmersionClient;
use crate::broker::{self, BrokerError, Publisher};
use crate::config::{ConfigError, WorkerSettings};
use crate::contract::signing::{Signer, SigningError};
use crate::engine::protect::Guards;
use crate::engine::{Engine, EngineCore, EngineSettings, Inflight};
use crate::ledger::{Ledger, LedgerSettings, Presence};
use crate::store::{Store, StoreError};
use crate::workflow::Workflows;
use consumers::{Consumers, ConsumersError, Event, Source};

mod consumers;

/// How long a worker waits before standing by for other workers' shards, so that workers
/// starting together each get to the front of their own shards' lines first.
const STANDBY_DELAY: Duration = Duration::from_secs(3);

/// How often a worker looks for other workers that came back.
const PRESENCE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a ledger reader waits for its next entry, or an append for its confirm,
/// before it gives up (and the delivery waiting on it goes back to its queue).
const LEDGER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest wait between two sweeps of expired stage records.
const MAX_SWEEP_INTERVAL_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the stage store in {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The TLS library refused what EMERSION_CLIENT_CERT, EMERSION_CLIENT_KEY or
    /// EMERSION_CA_CERT hold beyond the start-up checks: its reason is in the source.
    #[error("Emersion HTTP client (EMERSION_CLIENT_CERT, EMERSION_CLIENT_KEY, EMERSION_CA_CERT)")]
    EmersionClient(#[source] reqwest::Error),
    #[error(transparent)]
    Consumers(#[from] ConsumersError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<lapin::Error> for WorkerError {
    fn from(e: lapin::Error) -> Self {
        WorkerError::Broker(BrokerError::Amqp(e))
    }
}

/// What the worker shares across broker connections.
struct Shared {
    settings: WorkerSettings,
    /// What each connection's engine is built from.
    engine: EngineCore,
    /// Connected and consuming: what `/readyz` reports.
    ready: Arc<AtomicBool>,
}

/// Why one connection's consume loop ended.
enum Ended {
    Shutdown,
    Lost(WorkerError),
}

/// Runs a worker until `shutdown` fires; then stops consuming, lets in-flight stages
/// finish within the grace period, flushes and closes. A lost broker connection is
/// re-established with backoff; the topology is declared again each time.
pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    run_with(settings, shutdown, Arc::new(AtomicBool::new(false))).await
}

/// [`run`], reporting readiness through `ready`.
pub async fn run_with(
    settings: WorkerSettings,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
) -> Result<(), WorkerError> {
    // Before anything starts: an admin API nobody may reach unauthenticated, or none.
    let access = crate::runtime::admin::Access::from_settings(&settings)?;
    crate::redact::register(settings.secrets());
    let keys = (
        settings.signing_key.as_ref().map(|k| k.expose()),
        settings.signing_key_previous.as_ref().map(|k| k.expose()),
    );
    let signer = Signer::from_keys(keys.0, keys.1)?;
    let costguard = settings
        .costguard
        .client_config()?
        .map(CostGuardClient::new)
        .transpose()?;
    let emersion = settings
        .emersion
        .client_config(Utc::now().timestamp())?
        .map(EmersionClient::new)
        .transpose()
        .map_err(WorkerError::EmersionClient)?;
    if costguard.is_none() && emersion.is_none() {
        return Err(ConfigError::NoPlatform.into());
    }
    if settings.worker_id >= settings.workers {
        return Err(ConfigError::WorkerId {
            id: settings.worker_id,
            workers: settings.workers,
        }
        .into());
    }
    if settings.broker.shards < settings.workers {
        warn!(
            shards = settings.broker.shards,
            workers = settings.workers,
            "fewer shards than workers: some workers will only stand by"
        );
    }
    let store =
        Store::open_with_cache(&settings.data_dir, settings.store_cache_mb).map_err(|source| {
            WorkerError::Store {
                dir: settings.data_dir.display().to_string(),
                source,
            }
        })?;
    crate::runtime::admin::metrics_handle();
    // Dropping the guard stops the sweeper on every way out of this function.
    let sweeper = (!settings.retention.is_zero()).then(|| {
        let stop = shutdown.child_token();
        let task = tokio::spawn(sweep_expired(
            store.clone(),
            // In whole seconds, at least one: zero would expire every record at once.
            settings.retention.as_secs().max(1),
            stop.clone(),
        ));
        (task, stop.drop_guard())
    });
    let topology = settings.broker.topology();
    let ledger = Ledger::new(
        store.clone(),
        topology.clone(),
        Signer::from_keys(keys.0, keys.1)?,
        settings.worker_id,
        Presence::new(settings.workers),
        LedgerSettings {
            max_entry_bytes: settings.max_message_bytes,
            handback_timeout: settings.handback_timeout,
            read_timeout: LEDGER_READ_TIMEOUT,
            reader_url: Some(settings.broker.amqp_url.clone()),
        },
    );
    let admin_stop = shutdown.child_token();
    let admin = settings.http_addr.map(|addr| {
        let (ready, store, stop) = (ready.clone(), store.clone(), admin_stop.clone());
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let served = crate::runtime::admin::serve(addr, access, ready, store, ledger, stop);
            if let Err(e) = served.await {
                tracing::error!(error = %e, %addr, "admin API failed");
            }
        })
    });
    let engine = EngineCore {
        store: store.clone(),
        topology,
        workflows: Workflows {
            costguard,
            costguard_environment: settings.costguard.costguard_environment.clone(),
            costguard_pinned_order_probes: settings.costguard.costguard_pinned_order_probes,
            emersion,
            currency_scale: settings.currency_scale,
        },
        settings: EngineSettings {
            max_message_bytes: settings.max_message_bytes,
            retry: settings.retry_policy.clone(),
            reconcile_delay: settings.reconcile_delay,
            source: format!("billflow/{}", settings.broker.prefix),
            signer,
            panic_in_stage: settings.panic_in_stage.clone(),
        },
        guards: Arc::new(Guards::new(settings.api_limits.clone())),
        inflight: Inflight::default(),
        ledger,
    };
    let shared = Shared {
        engine,
        ready,
        settings,
    };

    let mut tasks = JoinSet::new();
    let mut reconnect = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(500),
        max_interval: Duration::from_secs(30),
        max_elapsed_time: None,
        ..Default::default()
    };
    let mut connected_once = false;
    loop {
        let served = serve_connection(&shared, &mut tasks, &shutdown, &mut connected_once);
        match served.await {
            Ended::Shutdown => break,
            // Unreachable at start: say so instead of waiting silently.
            Ended::Lost(e) if !connected_once => return Err(e),
            Ended::Lost(e) => {
                if shared.ready.swap(false, Ordering::SeqCst) {
                    // It was connected: this loss starts a new series of waits.
                    reconnect.reset();
                }
                shared.engine.ledger.disconnected();
                let delay = reconnect.next_backoff().unwrap_or(Duration::from_secs(30));
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    shared.ready.store(false, Ordering::SeqCst);
    shared.engine.ledger.stop().await;
    if let Some((task, stop)) = sweeper {
        drop(stop);
        let _ = task.await;
    }
    if let Err(e) = store.flush().await {
        warn!(error = %e, "final store flush failed");
    }
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    info!("worker stopped");
    Ok(())
}

/// Removes the records of stages finished more than `retention_secs` ago, every tenth of
/// that (at least every second, at most every minute), until `stop`.
async fn sweep_expired(store: Store, retention_secs: u64, stop: CancellationToken) {
    let retention = i64::try_from(retention_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX);
    let mut every = tokio::time::interval(Duration::from_secs(
        (retention_secs / 10).clamp(1, MAX_SWEEP_INTERVAL_SECS),
    ));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        // None: a retention reaching back before the earliest time has nothing to expire.
        let Some(cutoff) = Utc::now().checked_sub_signed(retention) else {
            continue;
        };
        // A sweep after a long stop may have many records to remove: off the runtime.
        let sweeping = store.clone();
        match tokio::task::spawn_blocking(move || sweeping.sweep(cutoff)).await {
            Ok(Ok(removed)) => {
                let records = store.len();
                metrics::counter!("billflow_store_swept_total").increment(removed as u64);
                metrics::gauge!("billflow_store_records").set(records as f64);
                if removed > 0 {
                    info!(removed, records, "expired stage records removed");
                }
            }
            Ok(Err(e)) => warn!(error = %e, "sweeping expired stage records failed"),
            Err(e) => warn!(error = %e, "the sweep of expired stage records did not finish"),
        }
    }
}

/// One connection: declare, consume until shutdown or loss. On shutdown it stops
/// consuming and drains the in-flight stages while the connection can still ack them.
async fn serve_connection(
    shared: &Shared,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
    connected_once: &mut bool,
) -> Ended {
    let Session {
        connection,
        engine,
        mut consumers,
    } = match Session::open(shared).await {
        Ok(session) => session,
        Err(e) => return Ended::Lost(e),
    };
    let settings = &shared.settings;
    shared.ready.store(true, Ordering::SeqCst);
    info!(
        shards = shared.engine.topology.shards,
        prefetch = settings.prefetch,
        data_dir = %settings.data_dir.display(),
        reconnected = *connected_once,
        "worker consuming"
    );
    *connected_once = true;
    match consume(
        shared,
        &engine,
        &mut consumers,
        &connection,
        tasks,
        shutdown,
    )
    .await
    {
        Ended::Shutdown => {
            drain(settings, &mut consumers, tasks).await;
            shared.ready.store(false, Ordering::SeqCst);
            close(connection).await;
            Ended::Shutdown
        }
        // Deliveries of this connection can no longer be acked; the broker hands them out
        // again, and a copy waits for its stale twin to finish before it runs.
        lost => lost,
    }
}

/// A broker connection with the topology declared, an engine publishing on it and the
/// worker's consumers.
struct Session {
    connection: Arc<Connection>,
    engine: Arc<Engine>,
    consumers: Consumers,
}

impl Session {
    async fn open(shared: &Shared) -> Result<Session, WorkerError> {
        let settings = &shared.settings;
        // Named after the prefix and id, so an operator can tell the workers apart.
        let name = format!(
            "billflow-worker {} #{}",
            settings.broker.prefix, settings.worker_id
        );
        let connection = Arc::new(broker::connect(settings.broker.amqp_url.expose(), &name).await?);
        let channel = connection.create_channel().await?;
        let topology = &shared.engine.topology;
        topology.declare(&channel).await?;
        // Kept as long as a stage record is: the ledger is what deduplicates across workers.
        let max_age = (!settings.retention.is_zero()).then(|| settings.retention.as_secs().max(1));
        topology.declare_ledgers(&connection, max_age).await?;
        let limit = |n: u64| (n > 0).then_some(n);
        topology
            .declare_events_log(
                &connection,
                limit(settings.events_log_max_age.as_secs()),
                limit(settings.events_log_max_bytes),
            )
            .await?;
        let publisher = Publisher::open(&connection).await?;
        // Events go out on a channel of their own, every one of them to the events log:
        // see `Engine::events`.
        let events = Publisher::open(&connection).await?;
        shared.engine.ledger.connected(connection.clone());
        let engine = Arc::new(Engine::new(shared.engine.clone(), publisher, events));
        let consumers = Consumers::open(
            &connection,
            &shared.engine.topology,
            settings.worker_id,
            settings.workers,
            settings.prefetch,
            shared.engine.ledger.presence().clone(),
        )
        .await?;
        Ok(Session {
            connection,
            engine,
            consumers,
        })
    }
}

/// Hands each delivery to the engine as its own task until shutdown or the connection's
/// loss; stands by for other workers' shards and watches their presence.
async fn consume(
    shared: &Shared,
    engine: &Arc<Engine>,
    consumers: &mut Consumers,
    connection: &Connection,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Ended {
    let workers = shared.settings.workers;
    let standby_at = tokio::time::Instant::now() + STANDBY_DELAY;
    let mut standing_by = workers == 1;
    let mut presence = tokio::time::interval(PRESENCE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            next = consumers.next() => match next {
                Some(Event::Delivery(Source::Intake, _, delivery)) => {
                    let engine = engine.clone();
                    tasks.spawn(async move { engine.forward_intake(*delivery).await });
                }
                Some(Event::Delivery(Source::Shard(shard), generation, delivery)) => {
                    let engine = engine.clone();
                    tasks.spawn(async move { engine.process_shard(shard, generation, *delivery).await });
                }
                Some(Event::Delivery(Source::Undelivered, _, delivery)) => {
                    let engine = engine.clone();
                    tasks.spawn(async move { engine.explain_undelivered(*delivery).await });
                }
                Some(Event::Ended(_, Some(e))) => return Ended::Lost(e.into()),
                Some(Event::Ended(source, None)) => match consumers.ended(source).await {
                    Ok(true) => {}
                    Ok(false) => return Ended::Lost(BrokerError::ConsumerEnded.into()),
                    Err(e) => return Ended::Lost(e.into()),
                },
                None => return Ended::Lost(BrokerError::ConsumerEnded.into()),
            },
            _ = tokio::time::sleep_until(standby_at), if !standing_by => {
                standing_by = true;
                if let Err(e) = consumers.stand_by().await {
                    return Ended::Lost(e.into());
                }
            }
            _ = presence.tick(), if workers > 1 => {
                match consumers.check_presence(connection).await {
                    Ok(stepped_back) => {
                        for shard in stepped_back {
                            let engine = engine.clone();
                            tasks.spawn(async move { engine.release_shard(shard).await });
                        }
                    }
                    Err(e) => return Ended::Lost(e.into()),
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Stops taking deliveries and lets the stages in flight finish within the grace period;
/// those still running after it are abandoned to be redelivered.
async fn drain(settings: &WorkerSettings, consumers: &mut Consumers, tasks: &mut JoinSet<()>) {
    info!(in_flight = tasks.len(), "stopping: no new deliveries");
    consumers.cancel_all().await;
    let grace = settings.shutdown_grace;
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            abandoned = tasks.len(),
            "grace period over; unfinished stages will be redelivered"
        );
        tasks.abort_all();
    }
}

async fn close(connection: Arc<Connection>) {
    if let Err(e) = connection.close(200, "worker shutting down".into()).await {
        warn!(error = %e, "closing the broker connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StageRecord, StageState};

    #[tokio::test]
    async fn the_sweeper_removes_expired_records_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = Utc::now() - TimeDelta::hours(1);
        let expired = StageRecord {
            updated_at: old,
            forwarded: true,
            ..StageRecord::started(1).with_state(StageState::Completed {
                output: serde_json::Value::Null,
                next: None,
            })
        };
        store.put("c-1", "renew", &expired).unwrap();
        let young = StageRecord {
            forwarded: true,
            ..StageRecord::started(1).with_state(StageState::Completed {
                output: serde_json::Value::Null,
                next: None,
            })
        };
        store.put("c-2", "renew", &young).unwrap();

        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(sweep_expired(store.clone(), 60, stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), async {
            while store.get("c-1", "renew").unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the expired record is removed");
        assert!(store.get("c-2", "renew").unwrap().is_some());
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), sweeper)
            .await
            .expect("the sweeper stops")
            .unwrap();
    }
}
