//! `billflow worker`: wires store, broker, clients and engine, and runs the consume loop
//! until shut down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::billing::costguard::CostGuardClient;
use crate::billing::emersion::EmersionClient;
use crate::broker::{self, BrokerError, Publisher, Topology};
use crate::config::{ConfigError, WorkerSettings};
use crate::engine::protect::Guards;
use crate::engine::{Engine, EngineSettings};
use crate::store::{Store, StoreError};
use crate::workflow::Workflows;

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
    #[error("the broker ended the consumer (queue deleted or connection lost)")]
    ConsumerEnded,
}

impl From<lapin::Error> for WorkerError {
    fn from(e: lapin::Error) -> Self {
        WorkerError::Broker(BrokerError::Amqp(e))
    }
}

/// Runs a worker until `shutdown` fires; then stops consuming, lets in-flight stages
/// finish within the grace period, flushes and closes.
pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let costguard = settings
        .costguard
        .client_config()?
        .map(CostGuardClient::new)
        .transpose()?;
    let emersion = settings
        .emersion
        .client_config()?
        .map(EmersionClient::new)
        .transpose()?;
    if costguard.is_none() && emersion.is_none() {
        return Err(ConfigError::NoPlatform.into());
    }
    let store = Store::open(&settings.data_dir).map_err(|source| WorkerError::Store {
        dir: settings.data_dir.display().to_string(),
        source,
    })?;
    let topology = Topology::new(&settings.broker.prefix);
    let connection = broker::connect(settings.broker.amqp_url.expose(), "billflow-worker").await?;
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    let publisher = Publisher::open(&connection).await?;

    let consume = connection.create_channel().await?;
    consume
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("billflow-worker-{}", std::process::id());
    let mut consumer = consume
        .basic_consume(
            topology.work_queue().as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let engine = Arc::new(Engine::new(
        store.clone(),
        publisher,
        topology.clone(),
        Workflows {
            costguard,
            costguard_environment: settings.costguard.costguard_environment.clone(),
            emersion,
        },
        EngineSettings {
            max_message_bytes: settings.max_message_bytes,
            retry: settings.retry_policy.clone(),
            reconcile_delay: Duration::from_millis(settings.reconcile_delay_ms),
            source: format!("billflow/{}", settings.broker.prefix),
        },
        Guards::new(settings.api_limits.clone()),
    ));
    info!(
        queue = %topology.work_queue(),
        prefetch = settings.prefetch,
        data_dir = %settings.data_dir.display(),
        "worker consuming"
    );

    let mut tasks = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let engine = engine.clone();
                    tasks.spawn(async move { engine.process(delivery).await });
                }
                Some(Err(e)) => break Err(WorkerError::from(e)),
                None => break Err(WorkerError::ConsumerEnded),
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };

    info!(in_flight = tasks.len(), "stopping: no new deliveries");
    if let Err(e) = consume
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await
    {
        warn!(error = %e, "consumer cancel failed");
    }
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            abandoned = tasks.len(),
            "grace period over; unfinished stages will be redelivered"
        );
        tasks.abort_all();
    }
    if let Err(e) = store.flush().await {
        warn!(error = %e, "final store flush failed");
    }
    if let Err(e) = connection.close(200, "worker shutting down".into()).await {
        warn!(error = %e, "closing the broker connection failed");
    }
    info!("worker stopped");
    outcome
}
