//! The per-worker stage ledger (sled): one record per (command_id, stage), so a call that
//! took effect is never made again, whatever the broker redelivers. Knows nothing of
//! queues or platforms: it stores [`StageRecord`]s, and imports only the contract's
//! dead-letter reasons.

mod record;

pub use record::{StageRecord, StageState};

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// MiB of sled's page cache unless configured (`BILLFLOW_STORE_CACHE_MB`).
pub const DEFAULT_CACHE_MB: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stage store: {0}")]
    Sled(#[from] sled::Error),
    #[error("stage store flush failed: {0}")]
    Flush(String),
    #[error("stage store record {key:?} is unreadable: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

type FlushRequest = (sled::Db, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Set in the default tree once every final record written before the expiry index
/// existed has been indexed.
const EXPIRY_INDEXED: &[u8] = b"expiry_indexed";

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    stages: sled::Tree,
    /// Final records by when they were last written: the last-written time in
    /// milliseconds (8 bytes big-endian), then the record's key; empty values.
    expiry: sled::Tree,
    /// Records in `stages`, kept here because sled counts a tree by scanning it.
    records: Arc<AtomicUsize>,
    flusher: std::sync::mpsc::Sender<FlushRequest>,
}

impl Store {
    /// Opens (or creates) the store. sled locks the directory: one worker per data dir.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_CACHE_MB)
    }

    /// Opens the store with a page cache of at most `cache_mb` MiB: sled's default of
    /// 1 GiB lets a busy worker's memory grow with its store.
    pub fn open_with_cache(dir: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .open()?;
        let stages = db.open_tree("stages")?;
        let expiry = db.open_tree("expiry")?;
        if !db.contains_key(EXPIRY_INDEXED)? {
            // A store from before the index: its final records would otherwise never expire.
            for item in stages.iter() {
                let (key, raw) = item?;
                // An unreadable record is not known to be final, so it is kept.
                if let Ok(record) = serde_json::from_slice::<StageRecord>(&raw) {
                    if record.is_final() {
                        expiry.insert(expiry_key(record.updated_at, &key), &[])?;
                    }
                }
            }
            db.insert(EXPIRY_INDEXED, &[])?;
        }
        let records = Arc::new(AtomicUsize::new(stages.len()));
        Ok(Store {
            db,
            stages,
            expiry,
            records,
            flusher: spawn_flusher(),
        })
    }

    fn key(command_id: &str, stage: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(command_id.len() + stage.len() + 1);
        key.extend_from_slice(command_id.as_bytes());
        key.push(0);
        key.extend_from_slice(stage.as_bytes());
        key
    }

    pub fn get(&self, command_id: &str, stage: &str) -> Result<Option<StageRecord>, StoreError> {
        self.stages
            .get(Self::key(command_id, stage))?
            .map(|raw| decode(&raw, command_id, stage))
            .transpose()
    }

    pub fn put(
        &self,
        command_id: &str,
        stage: &str,
        record: &StageRecord,
    ) -> Result<(), StoreError> {
        // Serializing a struct of plain fields into JSON cannot fail.
        let raw = serde_json::to_vec(record).map_err(|source| StoreError::Corrupt {
            key: format!("{command_id}/{stage}"),
            source,
        })?;
        let key = Self::key(command_id, stage);
        if record.is_final() {
            // Indexed first: a crash in between leaves an entry the sweep drops, never a
            // final record that cannot expire.
            self.expiry
                .insert(expiry_key(record.updated_at, &key), &[])?;
        }
        if self.stages.insert(key, raw)?.is_none() {
            self.records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the final records last written at or before `older_than` (to the
    /// millisecond) and returns how many. Reads only the index entries up to the cutoff.
    pub fn sweep(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = older_than.timestamp_millis();
        let end = expiry_millis(older_than).saturating_add(1).to_be_bytes();
        let mut removed = 0;
        for entry in self.expiry.range(..end) {
            let (entry_key, _) = entry?;
            if let Some((at, key)) = entry_key.split_first_chunk::<8>() {
                if self.expire(key, u64::from_be_bytes(*at), cutoff)? {
                    removed += 1;
                }
            }
            self.expiry.remove(&entry_key)?;
        }
        Ok(removed)
    }

    /// Removes the record under `key` if it is the final record the index entry written
    /// at `indexed_at` (ms) stands for. Any other entry is stale: the record was removed
    /// or rewritten since, and a rewrite that is final has an entry of its own.
    fn expire(&self, key: &[u8], indexed_at: u64, cutoff: i64) -> Result<bool, StoreError> {
        let Some(raw) = self.stages.get(key)? else {
            return Ok(false);
        };
        let record = match serde_json::from_slice::<StageRecord>(&raw) {
            Ok(record) => record,
            Err(e) => {
                let key = String::from_utf8_lossy(key).replace('\0', "/");
                tracing::warn!(%key, error = %e, "unreadable stage record kept past its retention");
                return Ok(false);
            }
        };
        let current = record.is_final()
            && expiry_millis(record.updated_at) == indexed_at
            && record.updated_at.timestamp_millis() <= cutoff;
        // Unless it changed meanwhile: a replay may be rewriting it right now.
        if current
            && self
                .stages
                .compare_and_swap(key, Some(&raw), None::<&[u8]>)?
                .is_ok()
        {
            self.records.fetch_sub(1, Ordering::Relaxed);
            return Ok(true);
        }
        Ok(false)
    }

    /// A named position kept beside the records (a ledger checkpoint), if set.
    pub fn marker(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let key = marker_key(name);
        Ok(self
            .db
            .get(key)?
            .and_then(|raw| raw.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Sets a named position; durable with the next flush.
    pub fn set_marker(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.db.insert(marker_key(name), &value.to_be_bytes())?;
        Ok(())
    }

    /// Stage records held.
    pub fn len(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the store's files take on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Every stage record of one command, in key order.
    pub fn stages_of(&self, command_id: &str) -> Result<Vec<(String, StageRecord)>, StoreError> {
        let mut prefix = command_id.as_bytes().to_vec();
        prefix.push(0);
        self.stages
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, raw) = item?;
                let stage = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let record = decode(&raw, command_id, &stage)?;
                Ok((stage, record))
            })
            .collect()
    }

    /// Makes every earlier write durable. Concurrent callers share one flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _timer = crate::timing::Timer::start("billflow_store_flush_seconds");
        let (done, wait) = tokio::sync::oneshot::channel();
        self.flusher
            .send((self.db.clone(), done))
            .map_err(|_| StoreError::Flush("the flusher has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Flush("the flusher has stopped".into()))?
            .map_err(StoreError::Flush)
    }
}

/// One thread makes every flush, and a flush serves every request queued when it starts
/// (group commit). sled 0.34's `flush_async` can deadlock when called concurrently
/// (spacejam/sled#1308), so its blocking `flush` is used, off the async runtime. The
/// thread holds the database only while flushing, so closing the store frees its lock.
fn spawn_flusher() -> std::sync::mpsc::Sender<FlushRequest> {
    let (tx, rx) = std::sync::mpsc::channel::<FlushRequest>();
    std::thread::Builder::new()
        .name("billflow-store-flush".into())
        .spawn(move || {
            while let Ok((db, first)) = rx.recv() {
                let mut waiting = vec![first];
                waiting.extend(rx.try_iter().map(|(_, waiter)| waiter));
                let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                drop(db);
                for waiter in waiting {
                    let _ = waiter.send(result.clone());
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the store flusher"));
    tx
}

/// Markers live in the default tree beside `expiry_indexed`, under a prefix of their own.
fn marker_key(name: &str) -> Vec<u8> {
    let mut key = b"marker/".to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// Before 1970 counts as 1970.
fn expiry_millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

fn expiry_key(updated_at: DateTime<Utc>, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(8 + key.len());
    entry.extend_from_slice(&expiry_millis(updated_at).to_be_bytes());
    entry.extend_from_slice(key);
    entry
}

fn decode(raw: &[u8], command_id: &str, stage: &str) -> Result<StageRecord, StoreError> {
    serde_json::from_slice(raw).map_err(|source| StoreError::Corrupt {
        key: format!("{command_id}/{stage}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// sled's own background thread lets go of the directory lock a moment after the last
    /// handle is dropped.
    fn reopen(dir: &Path) -> Store {
        for _ in 0..100 {
            if let Ok(store) = Store::open(dir) {
                return store;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Store::open(dir).unwrap()
    }

    fn started() -> StageState {
        StageState::Started { cause: None }
    }

    fn retrying() -> StageState {
        StageState::Retrying { error: None }
    }

    fn completed() -> StageState {
        StageState::Completed {
            output: serde_json::Value::Null,
            next: None,
        }
    }

    fn failed() -> StageState {
        StageState::Failed {
            reason: crate::contract::DeadReason::PermanentError,
            error: "e".into(),
        }
    }

    fn days_ago(days: i64) -> DateTime<Utc> {
        Utc::now() - TimeDelta::days(days)
    }

    /// A record last written at `at`, in `state`, forwarded or not.
    fn record(state: StageState, forwarded: bool, at: DateTime<Utc>) -> StageRecord {
        StageRecord {
            started_at: at,
            updated_at: at,
            forwarded,
            ..StageRecord::started(1).with_state(state)
        }
    }

    #[tokio::test]
    async fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let rec = StageRecord::started(1).with_state(StageState::Completed {
                output: serde_json::json!({"cart_id": 11}),
                next: Some("renew".into()),
            });
            store.put("c-1", "create_cart", &rec).unwrap();
            store.put("c-1", "renew", &StageRecord::started(2)).unwrap();
            store
                .put("c-10", "renew", &StageRecord::started(1))
                .unwrap();
            store.flush().await.unwrap();
        }
        let store = reopen(dir.path());
        let rec = store.get("c-1", "create_cart").unwrap().unwrap();
        assert_eq!(
            rec.state,
            StageState::Completed {
                output: serde_json::json!({"cart_id": 11}),
                next: Some("renew".into()),
            }
        );
        assert_eq!(store.get("c-1", "submit").unwrap(), None);
        let stages: Vec<String> = store
            .stages_of("c-1")
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(stages, ["create_cart", "renew"]);
    }

    #[test]
    fn final_records_past_the_retention_are_removed_and_younger_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = days_ago(8);
        store
            .put("c-1", "renew", &record(completed(), true, old))
            .unwrap();
        store
            .put("c-1", "submit", &record(failed(), true, old))
            .unwrap();
        store
            .put("c-2", "renew", &record(completed(), true, days_ago(6)))
            .unwrap();
        store
            .put("c-3", "renew", &record(failed(), true, Utc::now()))
            .unwrap();
        assert_eq!(store.len(), 4);

        assert_eq!(store.sweep(days_ago(7)).unwrap(), 2);
        assert_eq!(store.get("c-1", "renew").unwrap(), None);
        assert_eq!(store.get("c-1", "submit").unwrap(), None);
        assert!(store.get("c-2", "renew").unwrap().is_some());
        assert!(store.get("c-3", "renew").unwrap().is_some());
        assert_eq!(store.len(), 2);
        assert_eq!(store.sweep(days_ago(7)).unwrap(), 0);

        // The cutoff itself counts as expired.
        let at = days_ago(7);
        store
            .put("c-4", "renew", &record(completed(), true, at))
            .unwrap();
        assert_eq!(store.sweep(at).unwrap(), 1);
        assert_eq!(store.sweep(Utc::now()).unwrap(), 2);
        assert!(store.is_empty());
    }

    #[test]
    fn unfinished_records_are_kept_however_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = days_ago(365);
        let kept = [
            ("started", record(started(), false, old)),
            ("retrying", record(retrying(), false, old)),
            // Recorded, but its outcome not yet confirmed by the broker.
            ("completed", record(completed(), false, old)),
            ("failed", record(failed(), false, old)),
            ("started_forwarded", record(started(), true, old)),
            ("retrying_forwarded", record(retrying(), true, old)),
        ];
        for (stage, rec) in &kept {
            store.put("c-1", stage, rec).unwrap();
        }
        assert_eq!(store.sweep(Utc::now()).unwrap(), 0);
        for (stage, rec) in &kept {
            assert_eq!(
                store.get("c-1", stage).unwrap().as_ref(),
                Some(rec),
                "{stage}"
            );
        }
        assert_eq!(store.len(), kept.len());
    }

    #[test]
    fn a_rewritten_record_outlives_its_stale_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Dead-lettered long ago, now being replayed.
        store
            .put("c-1", "renew", &record(failed(), true, days_ago(30)))
            .unwrap();
        let replay = record(started(), false, Utc::now());
        store.put("c-1", "renew", &replay).unwrap();
        // Finished long ago, and re-recorded as final recently.
        store
            .put("c-2", "renew", &record(completed(), true, days_ago(30)))
            .unwrap();
        let recent = record(completed(), true, days_ago(1));
        store.put("c-2", "renew", &recent).unwrap();

        assert_eq!(store.sweep(days_ago(7)).unwrap(), 0);
        assert_eq!(store.get("c-1", "renew").unwrap(), Some(replay));
        assert_eq!(store.get("c-2", "renew").unwrap(), Some(recent));
        // The rewritten final record still expires, by its own entry.
        assert_eq!(store.sweep(Utc::now()).unwrap(), 1);
        assert_eq!(store.get("c-2", "renew").unwrap(), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_sweep_reads_only_the_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let young = record(completed(), true, days_ago(1));
        for i in 0..10_000 {
            store.put(&format!("young-{i}"), "renew", &young).unwrap();
        }
        let old = record(completed(), true, days_ago(8));
        for i in 0..10 {
            store.put(&format!("old-{i}"), "renew", &old).unwrap();
        }

        assert_eq!(store.sweep(days_ago(7)).unwrap(), 10);
        assert_eq!(store.len(), 10_000);
        assert_eq!(store.stages.len(), 10_000);
        for i in 0..10 {
            assert_eq!(store.get(&format!("old-{i}"), "renew").unwrap(), None);
        }
        // The young entries were not visited: all still there.
        assert_eq!(store.expiry.len(), 10_000);
        assert!(store.size_on_disk().unwrap() > 0);
    }

    #[test]
    fn final_records_of_a_store_from_before_the_index_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let stages = db.open_tree("stages").unwrap();
            let old = record(completed(), true, days_ago(8));
            let started = record(started(), false, days_ago(8));
            stages
                .insert(
                    Store::key("c-1", "renew"),
                    serde_json::to_vec(&old).unwrap(),
                )
                .unwrap();
            stages
                .insert(
                    Store::key("c-1", "submit"),
                    serde_json::to_vec(&started).unwrap(),
                )
                .unwrap();
            stages
                .insert(Store::key("c-2", "renew"), b"not json".to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert_eq!(store.len(), 3);
        assert_eq!(store.sweep(days_ago(7)).unwrap(), 1);
        assert_eq!(store.get("c-1", "renew").unwrap(), None);
        assert!(store.get("c-1", "submit").unwrap().is_some());
        assert_eq!(store.len(), 2);
    }
}
