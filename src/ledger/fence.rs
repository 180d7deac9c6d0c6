//! Fencing a stale owner, as Raft fences a deposed leader. A worker holds a shard from its
//! `Took` entry until another worker's `Took`: what a worker writes to a shard after
//! another took it counts for nothing (readers skip it), and before a non-idempotent
//! call the worker waits until it has read its own "started" back from the stream: when
//! another worker's `Took` came first, it has lost the shard and does not call.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::Entry;
use crate::store::{StageRecord, StageState};

/// One "started" entry: its command, stage, attempt and start time (nanoseconds).
pub type StartKey = (String, String, u32, i64);

pub fn start_key(command_id: &str, stage: &str, record: &StageRecord) -> StartKey {
    (
        command_id.to_string(),
        stage.to_string(),
        record.attempt,
        record
            .started_at
            .timestamp_nanos_opt()
            .unwrap_or_else(|| record.started_at.timestamp_micros()),
    )
}

/// Who may write to a shard, as a reader follows its stream: after a `Took`, only the
/// worker that took it; before any `Took` is known, anyone.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tenure {
    pub owner: Option<u16>,
}

impl Tenure {
    pub fn observe(&mut self, entry: &Entry) {
        if let Entry::Took { worker, .. } = entry {
            self.owner = Some(*worker);
        }
    }

    /// Whether a stage entry by `writer` counts.
    pub fn admits(&self, writer: u16) -> bool {
        self.owner.is_none_or(|owner| owner == writer)
    }
}

/// Calls waiting to learn whether their "started" came before another worker's `Took`.
#[derive(Default)]
pub struct Waiters(Mutex<HashMap<StartKey, oneshot::Sender<bool>>>);

impl Waiters {
    pub fn register(&self, key: StartKey) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.0.lock() {
            waiting.insert(key, tx);
        }
        rx
    }

    /// The follower read `key`'s entry: `held` says no other worker took the shard first.
    pub fn resolve(&self, key: &StartKey, held: bool) {
        let waiter = self.0.lock().ok().and_then(|mut w| w.remove(key));
        if let Some(waiter) = waiter {
            let _ = waiter.send(held);
        }
    }

    pub fn forget(&self, key: &StartKey) {
        if let Ok(mut waiting) = self.0.lock() {
            waiting.remove(key);
        }
    }

    /// The follower stopped: nobody can tell the waiters any more.
    pub fn clear(&self) {
        if let Ok(mut waiting) = self.0.lock() {
            waiting.clear();
        }
    }
}

/// What a follower that took the shard at its own `Took` makes of an entry read after it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Follower {
    /// Another worker took the shard: every later "started" of this worker is fenced.
    pub deposed: bool,
}

impl Follower {
    /// `Some((key, held))` when the entry is one of `me`'s "started" entries.
    pub fn read(&mut self, me: u16, entry: &Entry) -> Option<(StartKey, bool)> {
        match entry {
            Entry::Took { worker, .. } if *worker != me => {
                self.deposed = true;
                None
            }
            Entry::Stage {
                worker,
                command_id,
                stage,
                record,
            } if *worker == me && matches!(record.state, StageState::Started { .. }) => {
                Some((start_key(command_id, stage, record), !self.deposed))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn took(worker: u16) -> Entry {
        Entry::Took {
            worker,
            nonce: "n".into(),
        }
    }

    fn started(worker: u16, id: &str) -> Entry {
        Entry::Stage {
            worker,
            command_id: id.into(),
            stage: "renew".into(),
            record: StageRecord::started(1),
        }
    }

    #[test]
    fn tenure_admits_anyone_until_a_took_then_only_its_worker() {
        let mut tenure = Tenure::default();
        assert!(tenure.admits(0) && tenure.admits(1));
        tenure.observe(&started(1, "a"));
        assert!(tenure.admits(0), "a stage entry changes nobody's tenure");
        tenure.observe(&took(1));
        assert!(!tenure.admits(0) && tenure.admits(1));
        tenure.observe(&Entry::Release {
            worker: 1,
            nonce: "r".into(),
        });
        assert!(!tenure.admits(0), "a release is not a took");
        tenure.observe(&took(0));
        assert!(tenure.admits(0) && !tenure.admits(1));
    }

    #[test]
    fn a_follower_holds_its_starts_until_another_worker_takes_the_shard() {
        let mut follower = Follower::default();
        let rows: [(Entry, Option<bool>); 6] = [
            (started(0, "a"), Some(true)),
            (started(1, "b"), None),
            (took(0), None),
            (started(0, "c"), Some(true)),
            (took(1), None),
            (started(0, "d"), Some(false)),
        ];
        for (entry, expected) in rows {
            assert_eq!(
                follower.read(0, &entry).map(|(_, held)| held),
                expected,
                "{entry:?}"
            );
        }
        assert!(follower.deposed);
    }

    #[test]
    fn waiters_hear_once_and_are_forgotten() {
        let waiters = Waiters::default();
        let record = StageRecord::started(2);
        let key = start_key("a", "renew", &record);
        let mut rx = waiters.register(key.clone());
        waiters.resolve(&key, false);
        assert_eq!(rx.try_recv(), Ok(false));
        let mut rx = waiters.register(key.clone());
        waiters.forget(&key);
        assert!(rx.try_recv().is_err());
    }
}
