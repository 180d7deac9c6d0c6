//! The run judged from what it left: the event capture (deduplicated by event id, as
//! consumers do), the simulator's call log and the queues.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use billflow::contract::events::CloudEvent;
use serde_json::Value;

use crate::common::workload::{duplicate_effects, parked_never_sent};
use crate::Chaos;

/// Chaos done, by kind.
#[derive(Debug, Default)]
pub struct ChaosDone {
    pub worker_kills: usize,
    pub node_kills: usize,
    /// Node kills whose node led a shard queue when killed (all of them, by design).
    pub leader_kills: usize,
    pub pauses: usize,
    pub partitions: usize,
}

impl ChaosDone {
    pub fn add(&mut self, step: Chaos) {
        match step {
            Chaos::WorkerKill => self.worker_kills += 1,
            // Every node kill picks the leader of a shard queue.
            Chaos::NodeKill => {
                self.node_kills += 1;
                self.leader_kills += 1;
            }
            Chaos::Pause => self.pauses += 1,
            Chaos::Partition => self.partitions += 1,
        }
    }
}

pub struct Verdict {
    pub commands: usize,
    /// Every event, once, in the order the broker delivered them.
    events: Vec<CloudEvent>,
    /// Terminal outcomes, by name.
    pub outcomes: BTreeMap<String, usize>,
    pub parked_never_sent: Vec<(String, String)>,
    pub duplicates: Vec<((String, String), usize)>,
    pub lost: Vec<String>,
    pub multiple: Vec<(String, Vec<String>)>,
    pub left: BTreeMap<String, u32>,
}

impl Verdict {
    pub fn judge(
        ids: &[String],
        events: Vec<CloudEvent>,
        calls: &[Value],
        left: BTreeMap<String, u32>,
    ) -> Verdict {
        let mut seen = BTreeSet::new();
        let events: Vec<CloudEvent> = events
            .into_iter()
            .filter(|e| seen.insert(e.id.clone()))
            .collect();
        let mut terminals: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for event in events.iter().filter(|e| e.is_terminal()) {
            terminals
                .entry(event.subject.clone())
                .or_default()
                .push(event.data.outcome.as_str().to_string());
        }
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for outcome in terminals.values().flatten() {
            *outcomes.entry(outcome.clone()).or_default() += 1;
        }
        Verdict {
            commands: ids.len(),
            parked_never_sent: parked_never_sent(&events, calls),
            events,
            outcomes,
            duplicates: duplicate_effects(calls),
            lost: ids
                .iter()
                .filter(|id| !terminals.contains_key(*id))
                .cloned()
                .collect(),
            multiple: terminals.into_iter().filter(|(_, t)| t.len() > 1).collect(),
            left: left.into_iter().filter(|(_, n)| *n > 0).collect(),
        }
    }

    /// Commands a check failed for.
    pub fn suspects(&self) -> BTreeSet<String> {
        self.parked_never_sent
            .iter()
            .map(|(id, _)| id.clone())
            .chain(
                self.duplicates
                    .iter()
                    .filter_map(|((key, _), _)| key.split_once('/').map(|(id, _)| id.to_string())),
            )
            .chain(self.lost.iter().cloned())
            .chain(self.multiple.iter().map(|(id, _)| id.clone()))
            .collect()
    }

    /// The events of `id`, one line each.
    pub fn trail(&self, id: &str) -> String {
        self.events
            .iter()
            .filter(|e| e.subject == id)
            .map(|e| {
                let error = e.data.error.as_deref().unwrap_or_default();
                format!(
                    "  {} {} {error}\n",
                    e.time.format("%H:%M:%S%.3f"),
                    e.routing_key()
                )
            })
            .collect()
    }

    pub fn left_total(&self) -> u32 {
        self.left.values().sum()
    }

    fn outcome(&self, name: &str) -> usize {
        self.outcomes.get(name).copied().unwrap_or(0)
    }

    /// Everything the issue asks to be zero is zero.
    pub fn healthy(&self) -> bool {
        self.parked_never_sent.is_empty()
            && self.duplicates.is_empty()
            && self.lost.is_empty()
            && self.multiple.is_empty()
            && self.left.is_empty()
    }

    pub fn print(&self, chaos: &ChaosDone, restarts: usize, reconnects: usize, took: Duration) {
        println!();
        println!("| commands | completed | failed | parked | dead-lettered | parked, never sent | duplicate effects | lost | multiple terminals | left in queues | worker kills | node kills (shard leaders) | pauses | partitions | worker restarts | worker reconnects | seconds |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {:.1} |",
            self.commands,
            self.outcome("completed"),
            self.outcome("failed"),
            self.outcome("parked"),
            self.outcome("dead_lettered"),
            self.parked_never_sent.len(),
            self.duplicates.len(),
            self.lost.len(),
            self.multiple.len(),
            self.left_total(),
            chaos.worker_kills,
            chaos.node_kills,
            chaos.leader_kills,
            chaos.pauses,
            chaos.partitions,
            restarts,
            reconnects,
            took.as_secs_f64()
        );
        println!();
        for (command, stage) in &self.parked_never_sent {
            println!("parked, never sent: {command} at {stage}");
        }
        for ((key, op), n) in &self.duplicates {
            println!("applied {n} times: {op} of {key}");
        }
        for (id, outcomes) in &self.multiple {
            println!("several terminal events: {id} {outcomes:?}");
        }
        for (queue, n) in &self.left {
            println!("left in {queue}: {n}");
        }
        if !self.lost.is_empty() {
            println!("lost: {:?}", self.lost);
        }
    }
}
