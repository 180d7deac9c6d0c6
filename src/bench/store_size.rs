//! The stage store's size after many completed workflows, and after a retention sweep.
//! The records are copies of a real workflow's, written straight into a store: the
//! engine would take minutes to complete 100,000 workflows on a small machine.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::store::Store;

pub struct StoreSize {
    pub workflows: u64,
    pub records_written: u64,
    pub size_before: u64,
    pub swept: usize,
    pub sweep_secs: f64,
    pub records_after: usize,
    pub size_after: u64,
}

/// Writes `workflows` copies of workflow `command_id` from `template` (a stopped
/// worker's store), their ages spread evenly over ten retention periods, then sweeps
/// what is older than `retention`.
pub async fn run(
    template: &Path,
    command_id: &str,
    dir: &Path,
    workflows: u64,
    retention: Duration,
) -> anyhow::Result<StoreSize> {
    let records = open_when_free(template).await?.stages_of(command_id)?;
    let complete = records
        .iter()
        .any(|(_, r)| r.forwarded && r.next_stage.is_none() && r.output.is_some());
    if !complete {
        anyhow::bail!("workflow {command_id} did not complete in the engine run: nothing to copy");
    }
    let store = Store::open(dir)?;
    let now = Utc::now();
    let span = chrono::Duration::from_std(retention * 10)?;
    let mut written = 0u64;
    for i in 0..workflows {
        let at = now - span * i32::try_from(i % 1000).unwrap_or(0) / 1000;
        let id = format!("store-bench-{i}");
        for (stage, record) in &records {
            let mut record = record.clone();
            record.started_at = at;
            record.updated_at = at;
            store.put(&id, stage, &record)?;
            written += 1;
        }
        if i % 1000 == 999 {
            store.flush().await?;
        }
    }
    store.flush().await?;
    let size_before = store.size_on_disk()?;
    let started = Instant::now();
    let swept = store.sweep(now - chrono::Duration::from_std(retention)?)?;
    store.flush().await?;
    let sweep_secs = started.elapsed().as_secs_f64();
    Ok(StoreSize {
        workflows,
        records_written: written,
        size_before,
        swept,
        sweep_secs,
        records_after: store.len(),
        size_after: store.size_on_disk()?,
    })
}

/// Opens a store a stopped worker just let go of: sled releases its lock a moment later.
async fn open_when_free(dir: &Path) -> anyhow::Result<Store> {
    let mut last = None;
    for _ in 0..100 {
        match Store::open(dir) {
            Ok(store) => return Ok(store),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("cannot open {}", dir.display())))
}
