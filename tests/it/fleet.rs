//! Invariants 1 and 2 across workers, on one broker (issue 14, part 7): two `billflow
//! worker` processes share the shards of one prefix; the one that ran a command is killed,
//! or comes back, or is not the one asked. Each test fails where the fleet-wide stage
//! ledger is missing: a worker that did not run a command then knows nothing of it.
//!
//! Shard n is home to worker n mod 2; command ids are chosen by hash so each lands in
//! worker 0's shard 0, and worker 1 is its standby.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::fleet::{
    all_ready, calls_with, id_on_shard, reached, sent_twice, terminal_ids, wait_for_call,
    wait_queues_empty, FleetWorker,
};
use crate::common::{renewal, Harness};
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use billflow::runtime::admin::Timeline;
use billflow::sim::costguard as cg;
use serde_json::json;

const WORKERS: u16 = 2;

/// The stages of an active service's renewal, in order.
const RENEWAL_STAGES: [&str; 7] = [
    "lookup_service",
    "check_favorites",
    "create_cart",
    "renew",
    "checkout",
    "tender",
    "submit",
];

/// Two workers on `h`'s prefix, both ready.
async fn two_workers(h: &Harness, env: &[(&str, &str)]) -> [FleetWorker; 2] {
    let workers = [
        FleetWorker::start(h, 0, WORKERS, env),
        FleetWorker::start(h, 1, WORKERS, env),
    ];
    all_ready(&[&workers[0], &workers[1]]).await;
    workers
}

/// Sends a renewal on shard 0 behind whatever was published before it and waits for its
/// end: by then the shard's worker has taken everything queued ahead of it.
async fn sentinel(h: &mut Harness, stem: &str) -> String {
    let id = id_on_shard(&h.topology, stem, 0);
    h.publish(&renewal(&id, cg::ACTIVE_SERVICE)).await;
    h.wait_terminal(&[&id]).await;
    id
}

/// Non-idempotent calls of `command_id` sent more than once.
async fn sent_twice_by(h: &Harness, command_id: &str) -> Vec<((String, String), usize)> {
    let key = format!("{command_id}/");
    sent_twice(&h.calls().await)
        .into_iter()
        .filter(|((k, _), _)| k.starts_with(&key))
        .collect()
}

fn terminals_of(h: &Harness, command_id: &str) -> BTreeSet<String> {
    terminal_ids(&h.seen).remove(command_id).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_after_fail_over_is_not_run_again() {
    let mut h = Harness::start("fleet-failover").await;
    let mut workers = two_workers(&h, &[]).await;
    let c = id_on_shard(&h.topology, "fleet-failover", 0);
    let command = renewal(&c, cg::ACTIVE_SERVICE);
    h.publish(&command).await;
    h.wait_terminal(&[&c]).await;
    assert_eq!(
        workers[0].workflow(&c).await.0,
        200,
        "worker 0 ran {c} (its home shard)"
    );

    workers[1].standing_by().await;
    workers[0].kill();
    // The same command again, while the worker that ran it is down.
    h.publish(&command).await;
    let after = sentinel(&mut h, "fleet-failover-sentinel").await;
    h.settle(Duration::from_secs(1)).await;
    let left = wait_queues_empty(&mut h).await;

    let twice = sent_twice_by(&h, &c).await;
    let terminals = terminals_of(&h, &c);
    println!(
        "duplicate after fail-over: sent twice {twice:?}, terminal ids {terminals:?}, left {left}"
    );
    workers[1].stop();
    assert!(
        twice.is_empty(),
        "the standby ran the duplicate's non-idempotent calls again: {twice:?}"
    );
    assert_eq!(
        terminals.len(),
        1,
        "one terminal outcome for {c}: {terminals:?}"
    );
    assert_eq!(h.terminal(&after).data.outcome, Outcome::Completed);
    assert_eq!(left, 0, "messages left in the stage queues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_during_hand_back_is_not_run_again() {
    let mut h = Harness::start("fleet-handback").await;
    // The standby's `renew` call is still on its way when worker 0 comes back.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "renewAdvancePay", "kind": "latency", "ms": 3000, "count": 1}),
    )
    .await;
    let mut workers = two_workers(&h, &[]).await;
    workers[1].standing_by().await;
    let gone = ["another worker came or went", "false"];
    let seen_gone = workers[1].log_lines(&h, &gone);
    workers[0].kill();
    // Worker 1 checks every 2 s who is present: it steps back only for a worker it saw go.
    workers[1].logged(&h, &gone, seen_gone).await;

    let c = id_on_shard(&h.topology, "fleet-handback", 0);
    let command = renewal(&c, cg::ACTIVE_SERVICE);
    h.publish(&command).await;
    wait_for_call(&h, &c, "renewAdvancePay").await;
    let in_flight = Instant::now();
    workers[0].spawn(&h);
    all_ready(&[&workers[0]]).await;
    workers[1].logged(&h, &["stepping back"], 0).await;
    let stepped_back = in_flight.elapsed();
    // The same command again, while the shard goes back to worker 0.
    h.publish(&command).await;
    h.wait_terminal(&[&c]).await;
    let after = sentinel(&mut h, "fleet-handback-sentinel").await;
    h.settle(Duration::from_secs(1)).await;
    let left = wait_queues_empty(&mut h).await;

    let twice = sent_twice_by(&h, &c).await;
    let terminals = terminals_of(&h, &c);
    println!(
        "duplicate during hand-back: worker 1 stepped back {} ms into the 3 s renew call; \
         sent twice {twice:?}, terminal ids {terminals:?}, left {left}",
        stepped_back.as_millis()
    );
    for w in &mut workers {
        w.stop();
    }
    assert!(
        twice.is_empty(),
        "a non-idempotent call of {c} was sent twice across the hand-back: {twice:?}"
    );
    assert_eq!(
        terminals.len(),
        1,
        "one terminal outcome for {c}: {terminals:?}"
    );
    assert_eq!(h.terminal(&after).data.outcome, Outcome::Completed);
    assert_eq!(left, 0, "messages left in the stage queues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_a_killed_worker_never_started_are_run_not_parked() {
    const COMMANDS: usize = 16;
    const KILL_AT_CHECKOUT: usize = 12;
    let mut h = Harness::start("fleet-prefetch").await;
    // One CostGuard call at a time, and a slow, repeatable Checkout: the stages behind it
    // (tender and submit above all) wait in worker 0's prefetch, delivered, never started.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "Checkout", "kind": "latency", "ms": 400, "count": 1000}),
    )
    .await;
    let env = [
        ("BILLFLOW_PREFETCH", "64"),
        (
            "BILLFLOW_API_LIMITS",
            r#"{"costguard": {"max_concurrency": 1}}"#,
        ),
    ];
    let mut workers = two_workers(&h, &env).await;
    workers[1].standing_by().await;

    let ids: Vec<String> = (0..COMMANDS)
        .map(|i| id_on_shard(&h.topology, &format!("fleet-prefetch-{i}"), 0))
        .collect();
    for id in &ids {
        h.publish(&renewal(id, cg::ACTIVE_SERVICE)).await;
    }
    // Kill while a Checkout holds the only slot: no non-idempotent call is in flight, so
    // every non-idempotent stage either ended or never reached the platform.
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.call_counts().await.get("Checkout").copied().unwrap_or(0) < KILL_AT_CHECKOUT as u64 {
        assert!(Instant::now() < deadline, "the run made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before_kill = reached(&h.calls().await);
    workers[0].kill();

    let never_started: Vec<String> = ids
        .iter()
        .flat_map(|id| ["create_cart", "renew", "tender", "submit"].map(|s| format!("{id}/{s}")))
        .filter(|key| !before_kill.contains(key))
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&id_refs).await;
    h.settle(Duration::from_secs(1)).await;
    let left = wait_queues_empty(&mut h).await;

    let parked: BTreeSet<String> = h
        .seen
        .iter()
        .filter(|e| e.data.outcome == Outcome::Parked)
        .filter_map(|e| e.data.stage.as_ref().map(|s| format!("{}/{s}", e.subject)))
        .collect();
    let parked_unstarted: Vec<&String> = parked
        .iter()
        .filter(|key| !before_kill.contains(*key))
        .collect();
    let not_completed: Vec<(&str, Vec<Outcome>)> = ids
        .iter()
        .map(|id| {
            let outcomes = h
                .events_of(id)
                .iter()
                .filter(|e| e.is_terminal())
                .map(|e| e.data.outcome)
                .collect();
            (id.as_str(), outcomes)
        })
        .filter(|(_, outcomes)| *outcomes != [Outcome::Completed])
        .collect();
    let twice = sent_twice(&h.calls().await);
    println!(
        "prefetched, never started: {} non-idempotent stages had not reached the platform at \
         the kill; parked {parked:?} ({} of them never started); not completed \
         {not_completed:?}; sent twice {twice:?}; left {left}",
        never_started.len(),
        parked_unstarted.len()
    );
    workers[1].stop();
    assert!(
        !never_started.is_empty(),
        "the kill left stages that never reached the platform"
    );
    assert!(
        parked_unstarted.is_empty(),
        "parked as outcome unknown although they never reached the platform: {parked_unstarted:?}"
    );
    assert!(
        not_completed.is_empty(),
        "every command completes, once: {not_completed:?}"
    );
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(left, 0, "messages left in the stage queues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_duplicate_is_caught_by_a_worker_that_never_saw_the_original() {
    let mut h = Harness::start("fleet-conflict").await;
    let mut workers = two_workers(&h, &[]).await;
    let c = id_on_shard(&h.topology, "fleet-conflict", 0);
    h.publish(&renewal(&c, cg::ACTIVE_SERVICE)).await;
    h.wait_terminal(&[&c]).await;

    workers[1].standing_by().await;
    let before_kill = h.calls().await.len();
    workers[0].kill();
    // Same command id, another service: the standby never saw the original.
    h.publish(&renewal(&c, cg::HOTLINED_SERVICE)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.events_of(&c).iter().filter(|e| e.is_terminal()).count() < 2
        && Instant::now() < deadline
    {
        h.poll_event(Duration::from_millis(200)).await;
    }
    h.settle(Duration::from_secs(1)).await;
    let left = wait_queues_empty(&mut h).await;

    let calls = h.calls().await;
    let with_data = calls_with(&calls, cg::HOTLINED_SERVICE);
    // The original had ended before the kill: any call of its id since is the conflict's.
    let key = format!("{c}/");
    let since: Vec<String> = calls[before_kill..]
        .iter()
        .filter_map(|call| call["idempotency_key"].as_str())
        .filter(|k| k.starts_with(&key))
        .map(str::to_string)
        .collect();
    let conflict = h
        .events_of(&c)
        .into_iter()
        .find(|e| e.is_terminal() && e.data.reason.as_deref() == Some("conflicting_duplicate"))
        .cloned();
    let dead = h.drain_dead().await;
    let reasons: Vec<Option<DeadReason>> = dead.iter().map(|d| d.envelope.reason).collect();
    println!(
        "conflict across workers: event {:?}, dead letters {reasons:?}, {} calls with the \
         conflicting data, {} calls of {c} after the kill, left {left}",
        conflict.as_ref().map(|e| e.routing_key()),
        with_data.len(),
        since.len()
    );
    workers[1].stop();
    assert!(
        with_data.is_empty(),
        "the conflicting command was run: {} calls carry its data, the first {}",
        with_data.len(),
        with_data
            .first()
            .map(|c| c["operation"].to_string())
            .unwrap_or_default()
    );
    assert!(
        since.is_empty(),
        "calls of {c} after the original ended: {since:?}"
    );
    let conflict = conflict.expect("a conflicting_duplicate workflow event");
    assert_eq!(conflict.data.outcome, Outcome::Failed);
    let digests = conflict.data.conflict.clone().expect("the digests");
    assert_eq!(digests.original.len(), 64, "{digests:?}");
    assert_eq!(digests.received.len(), 64, "{digests:?}");
    assert_ne!(digests.original, digests.received);
    assert_eq!(
        reasons,
        [Some(DeadReason::ConflictingDuplicate)],
        "one dead letter, the conflict"
    );
    let completed = h
        .events_of(&c)
        .iter()
        .filter(|e| e.is_terminal() && e.data.outcome == Outcome::Completed)
        .count();
    assert_eq!(completed, 1, "the original ended once");
    assert!(sent_twice(&calls).is_empty());
    assert_eq!(left, 0, "messages left in the stage queues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_worker_shows_every_stage_of_a_command_it_did_not_run() {
    let mut h = Harness::start("fleet-status").await;
    let mut workers = two_workers(&h, &[]).await;
    let c = id_on_shard(&h.topology, "fleet-status", 0);
    h.publish(&renewal(&c, cg::ACTIVE_SERVICE)).await;
    h.wait_terminal(&[&c]).await;

    let stages = |body: &str| -> Vec<(String, String)> {
        serde_json::from_str::<Timeline>(body)
            .map(|t| t.stages.into_iter().map(|s| (s.stage, s.state)).collect())
            .unwrap_or_default()
    };
    let (status, body) = workers[0].workflow(&c).await;
    assert_eq!(status, 200, "worker 0 ran {c}: {body}");
    let ran = stages(&body);
    let expected: Vec<(String, String)> = RENEWAL_STAGES
        .iter()
        .map(|s| (s.to_string(), "completed".to_string()))
        .collect();
    assert_eq!(ran, expected, "the runner's timeline");

    // The other worker may need a moment to read what the fleet recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut status, mut body) = workers[1].workflow(&c).await;
    while stages(&body) != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        (status, body) = workers[1].workflow(&c).await;
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"))
        .args(["status", &c, "--http-addr", &workers[1].admin])
        .output()
        .expect("billflow status");
    let text = String::from_utf8_lossy(&cli.stdout).into_owned();
    let err = String::from_utf8_lossy(&cli.stderr).into_owned();
    println!("worker 1 about {c}: HTTP {status} {body}\nbillflow status: {text}{err}");
    for w in &mut workers {
        w.stop();
    }
    assert_eq!(
        status, 200,
        "worker 1 knows {c}, which worker 0 ran: {body}"
    );
    assert_eq!(stages(&body), expected, "every stage, with its state");
    assert!(
        cli.status.success(),
        "billflow status against worker 1: {err}"
    );
    for stage in RENEWAL_STAGES {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!(" {stage} ")) && l.contains("completed")),
            "{stage} completed in:\n{text}"
        );
    }
}
