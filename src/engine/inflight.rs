//! The (command_id, stage) pairs being worked on in this process, shared by the engines of
//! successive broker connections: a second copy arriving meanwhile (it may come from a
//! connection that is gone and can never ack) waits until the first one lets go, then
//! reads what it recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Inflight(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

/// Holds a claim; dropping it wakes whoever waits for the same stage.
pub struct InflightGuard {
    set: Inflight,
    key: String,
}

impl Inflight {
    /// Claims `(command_id, stage)`, waiting for an earlier claim on it to end.
    pub async fn claim(&self, command_id: &str, stage: &str) -> InflightGuard {
        let key = format!("{command_id}\0{stage}");
        loop {
            let notify;
            let released;
            {
                let mut claims = self.0.lock().unwrap_or_else(|p| p.into_inner());
                match claims.get(&key) {
                    None => {
                        claims.insert(key.clone(), Arc::new(Notify::new()));
                        return InflightGuard {
                            set: self.clone(),
                            key,
                        };
                    }
                    Some(n) => notify = n.clone(),
                }
                // Registered before the lock is let go: the release cannot slip between.
                released = notify.notified();
            }
            released.await;
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut claims = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = claims.remove(&self.key) {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the clock paused, a waiter that polled would need time to pass; one woken by
    /// the release needs none.
    #[tokio::test(start_paused = true)]
    async fn a_second_claim_waits_and_is_woken_by_the_release_not_a_timer() {
        let inflight = Inflight::default();
        let first = inflight.claim("c1", "renew").await;
        let other_stage = inflight.claim("c1", "submit").await;
        let waiter = {
            let inflight = inflight.clone();
            tokio::spawn(async move { inflight.claim("c1", "renew").await })
        };
        let started = tokio::time::Instant::now();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "the second claim must wait");
        drop(first);
        let second = waiter.await.unwrap();
        assert_eq!(tokio::time::Instant::now(), started, "no timer was needed");
        drop((second, other_stage));
        assert!(inflight.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn many_waiters_each_get_their_turn() {
        let inflight = Inflight::default();
        let turns = Arc::new(Mutex::new(0usize));
        let guard = inflight.claim("c1", "renew").await;
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (inflight, turns) = (inflight.clone(), turns.clone());
                tokio::spawn(async move {
                    let _claim = inflight.claim("c1", "renew").await;
                    let mut n = turns.lock().unwrap();
                    *n += 1;
                })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(guard);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*turns.lock().unwrap(), 8);
    }
}
