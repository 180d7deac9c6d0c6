//! The replicated ledger's takeover cost: a shard's stream holding a retention window of
//! workflows' stage records (copies of a real workflow's), appended as workers append
//! them, then read by a worker taking the shard over with no checkpoint (it never held
//! the shard), and again from its checkpoint after a few more workflows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use lapin::Connection;

use crate::broker::Topology;
use crate::contract::signing::Signer;
use crate::ledger::{Ledger, LedgerSettings, Presence};
use crate::store::{StageRecord, Store};

/// Appends in flight at once while the stream is filled.
const APPEND_BATCH: usize = 500;

/// Workflows written after the first takeover, read by the second.
const AFTER_CHECKPOINT: u64 = 100;

pub struct Takeover {
    pub workflows: u64,
    pub entries: u64,
    /// Entries appended per second, confirmed, `APPEND_BATCH` in flight.
    pub appends_per_sec: f64,
    /// Reading the whole window, without a checkpoint.
    pub full: Duration,
    /// Reading the `AFTER_CHECKPOINT` workflows written since the first takeover.
    pub from_checkpoint: Duration,
    pub checkpoint_entries: u64,
}

/// One measurement per window size in `windows` (workflows), on streams of `prefix`.
pub async fn run(
    connection: Arc<Connection>,
    prefix: &str,
    records: &[(String, StageRecord)],
    dir: &Path,
    windows: &[u64],
) -> anyhow::Result<Vec<Takeover>> {
    let key = Signer::generate_key();
    let mut results = Vec::new();
    for (i, workflows) in windows.iter().enumerate() {
        let topology = Topology::new(format!("{prefix}-{i}")).with_shards(1);
        topology.declare_ledgers(&connection, None).await?;
        let measured = measure(
            &connection,
            &topology,
            &key,
            records,
            &dir.join(i.to_string()),
            *workflows,
        )
        .await;
        let channel = connection.create_channel().await?;
        for stream in topology.ledger_streams() {
            channel
                .queue_delete(stream.as_str().into(), Default::default())
                .await?;
        }
        let _ = channel.close(200, "takeover bench done".into()).await;
        results.push(measured?);
    }
    Ok(results)
}

fn ledger(topology: &Topology, key: &str, me: u16, store: Store) -> anyhow::Result<Ledger> {
    Ok(Ledger::new(
        store,
        topology.clone(),
        Signer::from_keys(Some(key), None)?,
        me,
        Presence::new(2),
        LedgerSettings {
            max_entry_bytes: 256 * 1024,
            handback_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            reader_url: None,
        },
    ))
}

async fn measure(
    connection: &Arc<Connection>,
    topology: &Topology,
    key: &str,
    records: &[(String, StageRecord)],
    dir: &Path,
    workflows: u64,
) -> anyhow::Result<Takeover> {
    let writer = ledger(topology, key, 0, Store::open(&dir.join("writer"))?)?;
    writer.connected(connection.clone());
    let started = Instant::now();
    append(&writer, records, 0..workflows).await?;
    let entries = workflows * records.len() as u64;
    let appends_per_sec = entries as f64 / started.elapsed().as_secs_f64().max(1e-9);

    let reader = ledger(topology, key, 1, Store::open(&dir.join("reader"))?)?;
    reader.connected(connection.clone());
    let started = Instant::now();
    reader.take_over(0, 1).await?;
    let full = started.elapsed();

    append(&writer, records, workflows..workflows + AFTER_CHECKPOINT).await?;
    reader.forget(0);
    let started = Instant::now();
    reader.take_over(0, 2).await?;
    let from_checkpoint = started.elapsed();
    writer.stop().await;
    reader.stop().await;
    Ok(Takeover {
        workflows,
        entries,
        appends_per_sec,
        full,
        from_checkpoint,
        checkpoint_entries: AFTER_CHECKPOINT * records.len() as u64,
    })
}

async fn append(
    ledger: &Ledger,
    records: &[(String, StageRecord)],
    workflows: std::ops::Range<u64>,
) -> anyhow::Result<()> {
    let all: Vec<(String, &String, &StageRecord)> = workflows
        .flat_map(|i| {
            records
                .iter()
                .map(move |(stage, record)| (format!("takeover-bench-{i}"), stage, record))
        })
        .collect();
    for chunk in all.chunks(APPEND_BATCH) {
        try_join_all(
            chunk
                .iter()
                .map(|(id, stage, record)| ledger.record(id, stage, record)),
        )
        .await?;
    }
    Ok(())
}
