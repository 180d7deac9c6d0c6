//! How a record read from the ledger meets the one this worker's store holds. The stream
//! is the fleet's order of writes, and a writer appends to it before its own store, so the
//! ledger's latest entry for a stage is never behind what any store durably holds, but for
//! what only a store keeps: whether this worker already published the outcome.

use crate::store::StageRecord;

/// What the store should hold after `incoming` (the newest ledger entry of the stage),
/// or `None` to leave `local` as it is.
pub fn merge(local: Option<&StageRecord>, incoming: &StageRecord) -> Option<StageRecord> {
    if local.is_some_and(|local| same_write(local, incoming)) {
        return None;
    }
    Some(StageRecord {
        // Publishing the outcome was its writer's job; if that never happened, the
        // redelivered message publishes it again from here.
        forwarded: false,
        replicated: true,
        ..incoming.clone()
    })
}

/// The same write, whichever store or stream it was read from.
fn same_write(a: &StageRecord, b: &StageRecord) -> bool {
    let bare = |r: &StageRecord| StageRecord {
        forwarded: false,
        replicated: false,
        ..r.clone()
    };
    bare(a) == bare(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::DeadReason;
    use crate::store::StageState;

    fn completed() -> StageRecord {
        StageRecord::started(1).with_state(StageState::Completed {
            output: serde_json::json!({"id": 1}),
            next: Some("b".into()),
        })
    }

    #[test]
    fn table() {
        let started = StageRecord::started(1);
        let done = completed();
        let done_forwarded = StageRecord {
            forwarded: true,
            ..done.clone()
        };
        let retrying = started
            .clone()
            .with_state(StageState::Retrying { error: None });
        let parked = started.clone().with_state(StageState::Failed {
            reason: DeadReason::OutcomeUnknown,
            error: "e".into(),
        });
        let learned = |r: &StageRecord| StageRecord {
            forwarded: false,
            replicated: true,
            ..r.clone()
        };
        // (what the store holds, the ledger's newest entry, what the store holds after)
        let rows: Vec<(Option<&StageRecord>, &StageRecord, Option<StageRecord>)> = vec![
            // Nothing here: the fleet's record, to be forwarded if its message comes back.
            (None, &started, Some(learned(&started))),
            (None, &done, Some(learned(&done))),
            // This worker's own write read back: keep whether it was published.
            (Some(&done_forwarded), &done, None),
            (Some(&started), &started, None),
            // Another worker moved the stage on: theirs.
            (Some(&started), &done, Some(learned(&done))),
            (Some(&retrying), &started, Some(learned(&started))),
            (Some(&parked), &done, Some(learned(&done))),
            // A store ahead of the ledger only after an append failed, before any call:
            // the ledger's (earlier) word holds, which is never less careful.
            (Some(&done_forwarded), &started, Some(learned(&started))),
        ];
        for (i, (local, incoming, after)) in rows.into_iter().enumerate() {
            assert_eq!(merge(local, incoming), after, "row {i}");
        }
    }
}
