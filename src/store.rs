//! The per-worker stage ledger (sled): one record per (command_id, stage), so a call that
//! took effect is never made again, whatever the broker redelivers.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Claimed; the call may be under way or may have been sent by a process that died.
    Started,
    /// The last attempt failed in a way known not to have taken effect; a retry is queued.
    Retrying,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub state: StageState,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Completed: the stage to run next (`None`: the workflow is complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage: Option<String>,
    /// Failed: the dead-letter reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The outcome's messages (next stage or dead letter, events) were confirmed by the
    /// broker; a later copy of this stage's message is a duplicate.
    #[serde(default)]
    pub forwarded: bool,
    /// The replay (from the dead queue) this record belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

impl StageRecord {
    pub fn started(attempt: u32) -> Self {
        let now = Utc::now();
        StageRecord {
            state: StageState::Started,
            attempt,
            started_at: now,
            updated_at: now,
            output: None,
            error: None,
            next_stage: None,
            reason: None,
            forwarded: false,
            replay: None,
        }
    }

    pub fn with_state(mut self, state: StageState) -> Self {
        self.state = state;
        self.updated_at = Utc::now();
        self
    }
}

type FlushRequest = (sled::Db, tokio::sync::oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    stages: sled::Tree,
    flusher: std::sync::mpsc::Sender<FlushRequest>,
}

impl Store {
    /// Opens (or creates) the store. sled locks the directory: one worker per data dir.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let stages = db.open_tree("stages")?;
        Ok(Store {
            db,
            stages,
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
        self.stages.insert(Self::key(command_id, stage), raw)?;
        Ok(())
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

fn decode(raw: &[u8], command_id: &str, stage: &str) -> Result<StageRecord, StoreError> {
    serde_json::from_slice(raw).map_err(|source| StoreError::Corrupt {
        key: format!("{command_id}/{stage}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut rec = StageRecord::started(1).with_state(StageState::Completed);
            rec.output = Some(serde_json::json!({"cart_id": 11}));
            store.put("c-1", "create_cart", &rec).unwrap();
            store.put("c-1", "renew", &StageRecord::started(2)).unwrap();
            store
                .put("c-10", "renew", &StageRecord::started(1))
                .unwrap();
            store.flush().await.unwrap();
        }
        // sled's own background thread lets go of the directory lock a moment after the
        // last handle is dropped.
        let mut reopened = Store::open(dir.path());
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            reopened = Store::open(dir.path());
        }
        let store = reopened.unwrap();
        let rec = store.get("c-1", "create_cart").unwrap().unwrap();
        assert_eq!(rec.state, StageState::Completed);
        assert_eq!(rec.output, Some(serde_json::json!({"cart_id": 11})));
        assert_eq!(store.get("c-1", "submit").unwrap(), None);
        let stages: Vec<String> = store
            .stages_of("c-1")
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(stages, ["create_cart", "renew"]);
    }
}
