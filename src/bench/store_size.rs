//! The stage store's size as completed workflows accumulate, with and without a
//! retention sweep. The records are copies of a real workflow's, written straight into a
//! store with timestamps of a simulated clock: the engine would take many minutes to
//! complete 100,000 workflows on a small machine.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::store::{StageState, Store};

pub struct StoreSize {
    pub records_per_workflow: usize,
    /// Workflows the retention keeps (retention ÷ the simulated time between workflows).
    pub kept_workflows: u64,
    /// (workflows written so far, bytes without retention, bytes with, records with).
    pub checkpoints: Vec<(u64, u64, u64, usize)>,
}

/// Writes `workflows` copies of workflow `command_id` from `template` (a stopped
/// worker's store) into two stores, one workflow per simulated `retention ÷ kept`, and
/// sweeps the second one as a worker would, every thousand workflows.
pub async fn run(
    template: &Path,
    command_id: &str,
    dir: &Path,
    workflows: u64,
    kept_workflows: u64,
) -> anyhow::Result<StoreSize> {
    let records = open_when_free(template).await?.stages_of(command_id)?;
    let complete = records
        .iter()
        .any(|(_, r)| r.forwarded && matches!(r.state, StageState::Completed { next: None, .. }));
    if !complete {
        anyhow::bail!("workflow {command_id} did not complete in the engine run: nothing to copy");
    }
    let kept = Store::open(&dir.join("no-retention"))?;
    let swept = Store::open(&dir.join("retention"))?;
    // One simulated second per workflow; the retention keeps `kept_workflows` of them.
    let step = chrono::Duration::seconds(1);
    let retention = step * i32::try_from(kept_workflows.max(1)).unwrap_or(i32::MAX);
    let start = Utc::now() - step * i32::try_from(workflows).unwrap_or(i32::MAX);
    let every = (workflows / 4).max(1);
    let mut checkpoints = Vec::new();
    for i in 0..workflows {
        let at = start + step * i32::try_from(i).unwrap_or(i32::MAX);
        let id = format!("store-bench-{i}");
        for (stage, record) in &records {
            let mut record = record.clone();
            record.started_at = at;
            record.updated_at = at;
            kept.put(&id, stage, &record)?;
            swept.put(&id, stage, &record)?;
        }
        if i % 1000 == 999 {
            swept.sweep(at - retention)?;
            kept.flush().await?;
            swept.flush().await?;
        }
        if (i + 1) % every == 0 || i + 1 == workflows {
            kept.flush().await?;
            swept.flush().await?;
            checkpoints.push((
                i + 1,
                kept.size_on_disk()?,
                swept.size_on_disk()?,
                swept.len(),
            ));
        }
    }
    Ok(StoreSize {
        records_per_workflow: records.len(),
        kept_workflows,
        checkpoints,
    })
}

/// Opens a store a stopped worker just let go of: sled releases its lock a moment later.
pub(super) async fn open_when_free(dir: &Path) -> anyhow::Result<Store> {
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
