//! Issue 14 part 6: billflow on a three-node RabbitMQ cluster that
//! `deploy/cluster/rabbitmq-cluster.sh` starts beside the default broker, under chaos.
//! Three `billflow worker` processes (6 shards), each on its own node and data dir, run
//! renewals and sign-ups published in waves, with latency on the slow calls so that every
//! fault lands while stages are in flight. One fault per wave (half the wave published
//! before it, half while it lasts), in an order drawn from a printed seed: SIGKILL of a
//! worker (started again on its data dir), SIGKILL and restart of the node leading a shard
//! queue, a node paused with SIGSTOP past the cluster's tick time then resumed, one node
//! cut off from the other two by a partition then healed.
//! Then, from the simulator's call log and the events: no non-idempotent call took effect
//! twice, no command lost, exactly one terminal event each, no stage parked as
//! `outcome_unknown` that never reached the platform, nothing left in the intake, shard,
//! delay and undelivered queues.
//!
//! `#[ignore]`d: it starts three broker nodes and needs root (or the rabbitmq user; the
//! partition needs root). `cargo test --test cluster -- --ignored --nocapture`. Sizes:
//! CLUSTER_BIG=1 for a big run, or CLUSTER_COMMANDS, CLUSTER_WORKER_KILLS,
//! CLUSTER_NODE_KILLS, CLUSTER_PAUSES, CLUSTER_PARTITIONS; CLUSTER_SEED replays a run's
//! plan (the order, the victims and the delays; not the timing of the processes).

#[path = "it/common/mod.rs"]
mod common;

#[path = "cluster/client.rs"]
mod client;
#[path = "cluster/fleet.rs"]
mod fleet;
#[path = "cluster/nodes.rs"]
mod nodes;
#[path = "cluster/report.rs"]
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use billflow::contract::events::CloudEvent;
use billflow::sim::costguard as cg;
use client::Client;
use common::workload::{env_usize, sign_up, Rng};
use common::{renewal, Harness};
use fleet::Fleet;
use nodes::{letter, list_queues, Cluster, NODES};
use report::{ChaosDone, Verdict};
use serde_json::{json, Value};

const WORKERS: u16 = 3;
const SHARDS: u16 = 6;

#[derive(Debug, Clone, Copy)]
pub enum Chaos {
    WorkerKill,
    NodeKill,
    Pause,
    Partition,
}

impl Chaos {
    /// How long the fault lasts before it is undone.
    fn lasts(self, rng: &mut Rng) -> Duration {
        match self {
            Chaos::WorkerKill => rng.millis(500, 2500),
            Chaos::NodeKill => rng.millis(2000, 2000),
            // Past net_ticktime (10 s): the other two declare the node down meanwhile.
            Chaos::Pause => rng.millis(15_000, 5000),
            Chaos::Partition => rng.millis(12_000, 5000),
        }
    }
}

/// What a fault hit, to undo it.
enum Hit {
    Worker(u16),
    /// A node, and the script's verb that undoes what was done to it.
    Node(String, &'static str),
}

/// Does `step` to a victim drawn from `rng` (for a node kill: the leader of a shard
/// queue drawn from `rng`) and says so.
async fn strike(
    step: Chaos,
    rng: &mut Rng,
    h: &Harness,
    cluster: &Cluster,
    fleet: &mut Fleet,
    progress: &str,
) -> Hit {
    let (node, verb, undo) = match step {
        Chaos::WorkerKill => {
            let id = rng.below(u64::from(WORKERS)) as u16;
            println!("cluster: kill -9 worker {id} ({progress})");
            fleet.kill(id);
            return Hit::Worker(id);
        }
        Chaos::NodeKill => {
            let shard = h.topology.shard_queue(rng.below(u64::from(SHARDS)) as u16);
            let node = nodes::leader(&h.prefix, &shard).await;
            println!("cluster: kill -9 {node}, leader of {shard} ({progress})");
            (node, "kill", "restart")
        }
        Chaos::Pause => {
            let node = NODES[rng.below(3) as usize].to_string();
            println!("cluster: SIGSTOP {node} ({progress})");
            (node, "pause", "resume")
        }
        Chaos::Partition => {
            let node = NODES[rng.below(3) as usize].to_string();
            println!("cluster: partition {node} from the other two ({progress})");
            (node, "partition", "heal")
        }
    };
    cluster.run(&[verb, letter(&node)]).await;
    Hit::Node(node, undo)
}

/// Restarts the worker, or restarts, resumes or heals the node and waits until the three
/// nodes run together again; says what it did.
async fn undo(hit: Hit, h: &Harness, cluster: &Cluster, fleet: &mut Fleet) -> String {
    match hit {
        Hit::Worker(id) => {
            fleet.restart(h, id);
            format!("worker {id} started again on its data dir")
        }
        Hit::Node(node, verb) => {
            cluster.run(&[verb, letter(&node)]).await;
            let out = cluster.run(&["rejoin", letter(&node)]).await;
            format!("{verb} {node}: {}", out.trim().replace('\n', "; "))
        }
    }
}

struct Sizes {
    commands: usize,
    worker_kills: usize,
    node_kills: usize,
    pauses: usize,
    partitions: usize,
    /// How long the queues may take to run empty after the last fault.
    settle: Duration,
}

impl Sizes {
    /// The small run (what `.ci/run` runs: about 2-3 minutes with the cluster's start)
    /// does every kind; CLUSTER_BIG=1 more of each; each variable overrides.
    fn from_env() -> Sizes {
        let big = std::env::var("CLUSTER_BIG").is_ok_and(|v| v == "1");
        let (commands, worker_kills, node_kills, pauses, partitions, settle) = if big {
            (240, 6, 3, 2, 2, 600)
        } else {
            (36, 2, 1, 1, 1, 240)
        };
        Sizes {
            commands: env_usize("CLUSTER_COMMANDS", commands).max(1),
            worker_kills: env_usize("CLUSTER_WORKER_KILLS", worker_kills),
            node_kills: env_usize("CLUSTER_NODE_KILLS", node_kills),
            pauses: env_usize("CLUSTER_PAUSES", pauses),
            partitions: env_usize("CLUSTER_PARTITIONS", partitions),
            settle: Duration::from_secs(settle),
        }
    }

    /// Every fault, in a shuffled order.
    fn plan(&self, rng: &mut Rng) -> Vec<Chaos> {
        let mut plan: Vec<Chaos> = [
            (Chaos::WorkerKill, self.worker_kills),
            (Chaos::NodeKill, self.node_kills),
            (Chaos::Pause, self.pauses),
            (Chaos::Partition, self.partitions),
        ]
        .into_iter()
        .flat_map(|(kind, n)| std::iter::repeat_n(kind, n))
        .collect();
        for i in (1..plan.len()).rev() {
            plan.swap(i, rng.below(i as u64 + 1) as usize);
        }
        plan
    }
}

fn seed() -> u64 {
    std::env::var("CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9)
        })
        .max(1)
}

/// Renewals (every service kind) and sign-ups (every SQ kind), alternating.
fn workload(n: usize) -> Vec<Value> {
    let services = [
        cg::ACTIVE_SERVICE,
        cg::HOTLINED_SERVICE,
        cg::INELIGIBLE_SERVICE,
    ];
    (0..n)
        .map(|i| {
            let id = format!("cluster-{i}");
            if i % 2 == 0 {
                renewal(&id, services[(i / 2) % services.len()])
            } else {
                sign_up(&id, i / 2)
            }
        })
        .collect()
}

/// Latency on the slow calls of both workflows, non-idempotent ones included, well below
/// the workers' 5 s timeouts: a command takes 3-6 s, so a fault lands mid-flight.
fn latencies() -> Vec<Value> {
    [
        ("ServiceNumberDetail", 500),
        ("CreateCart", 600),
        ("renewAdvancePay", 1500),
        ("SubmitCart", 1200),
        ("StartOrder", 1200),
        ("SelectPackagePlan", 600),
        ("CompleteOrder", 1200),
    ]
    .into_iter()
    .map(|(op, ms)| json!({"operation": op, "kind": "latency", "ms": ms, "count": 1_000_000}))
    .collect()
}

/// Every quorum queue of the prefix, and a stream, has a member on each node.
async fn assert_replicated(prefix: &str) {
    let rows = list_queues(prefix, &["type", "members"]).await;
    let replicated: Vec<&Value> = rows
        .iter()
        .filter(|r| r["type"] == "quorum" || r["type"] == "stream")
        .collect();
    assert!(
        replicated.iter().any(|r| r["type"] == "stream"),
        "the stream is listed: {rows:?}"
    );
    for row in &replicated {
        let n = row["members"].as_array().map_or(0, Vec::len);
        assert_eq!(n, 3, "{} has 3 members: {row}", row["name"]);
    }
    println!(
        "cluster: {} quorum queues and 1 stream, 3 members each",
        replicated.len() - 1
    );
}

fn ended(events: &[CloudEvent]) -> BTreeSet<&str> {
    events
        .iter()
        .filter(|e| e.is_terminal())
        .map(|e| e.subject.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node RabbitMQ cluster and kills, pauses and cuts off its nodes; run on its own"]
async fn cluster_chaos() {
    if !nodes::rabbitmq_installed() {
        println!(
            "cluster: SKIPPED, rabbitmq-server is not installed (Debian package rabbitmq-server)"
        );
        return;
    }
    let sizes = Sizes::from_env();
    let seed = seed();
    let mut rng = Rng(seed);
    let plan = sizes.plan(&mut rng);
    println!(
        "cluster: seed {seed} (CLUSTER_SEED={seed} replays the plan), {} commands, {WORKERS} workers, {SHARDS} shards, plan {plan:?}",
        sizes.commands
    );

    let started = Instant::now();
    let cluster = Cluster::start().await;
    println!(
        "cluster: three nodes up in {:.1}s: {:?}",
        started.elapsed().as_secs_f64(),
        cluster.urls
    );
    // The harness (topology, simulator) talks to node a; only this test runs in this
    // binary, so the variable it reads once is node a's URL. The simulator's log of every
    // injected latency would bury the run's own lines: warnings only, unless asked.
    std::env::set_var("AMQP_URL", &cluster.urls[0]);
    if std::env::var_os("BILLFLOW_LOG").is_none() {
        std::env::set_var("BILLFLOW_LOG", "warn");
    }
    let mut h = Harness::start_with("cluster", SHARDS, true).await;
    assert_eq!(h.amqp_url, cluster.urls[0], "the harness is on node a");
    // A durable capture of every event, a quorum queue: it outlives any one node.
    let capture = h.capture_events("cluster-events").await;
    // A stream, as the stage ledger of issue 14 uses: replicated on all three nodes too.
    h.declare_queue("cluster-stream", "stream").await;
    assert_replicated(&h.prefix).await;
    for fault in latencies() {
        h.sim_post("/_sim/faults", fault).await;
    }

    let mut fleet = Fleet::start(&h, &cluster.urls);
    let mut client = Client::connect(&cluster.urls).await;
    let exchange = h.topology.commands_exchange();
    let commands = workload(sizes.commands);
    let ids: Vec<String> = commands
        .iter()
        .map(|c| c["command_id"].as_str().unwrap_or_default().to_string())
        .collect();
    // One wave per fault (a wave may be empty when there are more faults than commands).
    let n = plan.len().max(1);
    let waves: Vec<&[Value]> = (0..n)
        .map(|k| &commands[k * commands.len() / n..(k + 1) * commands.len() / n])
        .collect();
    let mut events: Vec<CloudEvent> = Vec::new();
    let mut done = ChaosDone::default();
    let mut published = 0;

    for (i, wave) in waves.iter().enumerate() {
        fleet.keep_alive(&h);
        // Half of the wave before the fault, to be in flight when it lands; the other half
        // while it lasts, to run on a cluster missing a node (or a fleet missing a worker).
        let (before, during) = wave.split_at(wave.len().div_ceil(2));
        for command in before {
            client.publish(&exchange, command).await;
        }
        published += before.len();
        let Some(step) = plan.get(i) else {
            for command in during {
                client.publish(&exchange, command).await;
            }
            published += during.len();
            continue;
        };
        tokio::time::sleep(rng.millis(300, 1200)).await;
        client.drain(&capture, &mut events).await;
        let progress = format!(
            "+{:.1}s; {} of {published} commands had ended",
            started.elapsed().as_secs_f64(),
            ended(&events).len()
        );
        let hit = strike(*step, &mut rng, &h, &cluster, &mut fleet, &progress).await;
        let lasts = step.lasts(&mut rng);
        let until = tokio::time::Instant::now() + lasts;
        for command in during {
            client.publish(&exchange, command).await;
        }
        published += during.len();
        tokio::time::sleep_until(until).await;
        let undone = undo(hit, &h, &cluster, &mut fleet).await;
        println!(
            "cluster: +{:.1}s after {lasts:?}: {undone}",
            started.elapsed().as_secs_f64()
        );
        done.add(*step);
    }

    // Until every command has ended and the queues have stayed empty a while: late
    // duplicates may still wait in a delay queue, and are dropped when they come back.
    // Every 10 s it says what it waits for.
    let deadline = Instant::now() + sizes.settle;
    let mut quiet = 0;
    let mut report_at = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && quiet < 20 {
        fleet.keep_alive(&h);
        client.drain(&capture, &mut events).await;
        let done = ended(&events);
        let mut queued = BTreeMap::new();
        for queue in h.topology.stage_queues() {
            let depth = client.depth(&queue).await;
            if depth > 0 {
                queued.insert(queue, depth);
            }
        }
        quiet = if done.len() >= ids.len() && queued.is_empty() {
            quiet + 1
        } else {
            0
        };
        if Instant::now() >= report_at {
            let open: Vec<&String> = ids
                .iter()
                .filter(|id| !done.contains(id.as_str()))
                .collect();
            println!(
                "cluster: +{:.1}s waiting: not ended {open:?}, ready in queues {queued:?}",
                started.elapsed().as_secs_f64()
            );
            report_at = Instant::now() + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "cluster: +{:.1}s {}; stopping the workers",
        started.elapsed().as_secs_f64(),
        if quiet >= 20 {
            "settled"
        } else {
            "NOT settled before the deadline"
        }
    );
    fleet.stop();
    client.drain(&capture, &mut events).await;
    let mut left = BTreeMap::new();
    for queue in h.topology.stage_queues() {
        left.insert(queue.clone(), client.depth(&queue).await);
    }
    client.close().await;

    let verdict = Verdict::judge(&ids, events, &h.calls().await, left);
    verdict.print(&done, fleet.restarts, fleet.reconnects(), started.elapsed());
    println!(
        "outcomes: {:?}; longest reconnect wait a worker logged: {} ms",
        verdict.outcomes,
        fleet.longest_reconnect_wait()
    );
    if !verdict.healthy() {
        let calls = h.calls().await;
        for id in verdict.suspects() {
            println!("--- {id}: events ---\n{}", verdict.trail(&id));
            println!("--- {id}: platform calls ---");
            let prefix = format!("{id}/");
            for call in calls.iter().filter(|c| {
                c["idempotency_key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&prefix))
            }) {
                println!(
                    "  {} {} {} applied={}",
                    call["at"].as_str().unwrap_or_default(),
                    call["idempotency_key"].as_str().unwrap_or_default(),
                    call["operation"].as_str().unwrap_or_default(),
                    call["applied"]
                );
            }
            println!("--- {id}: worker logs ---\n{}", fleet.log_of(&id));
        }
        println!("{}", fleet.log_tails(40));
        let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(&h.prefix);
        match fleet.keep_logs(&kept) {
            Ok(()) => println!("cluster: the workers' logs are kept in {}", kept.display()),
            Err(e) => println!("cluster: could not keep the workers' logs: {e}"),
        }
    }

    assert!(
        verdict.duplicates.is_empty(),
        "non-idempotent calls applied twice: {:?}",
        verdict.duplicates
    );
    assert!(
        verdict.lost.is_empty(),
        "commands without a terminal event: {:?}",
        verdict.lost
    );
    assert!(
        verdict.multiple.is_empty(),
        "commands with several terminal events: {:?}",
        verdict.multiple
    );
    assert!(
        verdict.left.is_empty(),
        "messages left in the stage queues: {:?}",
        verdict.left
    );
    assert!(
        verdict.parked_never_sent.is_empty(),
        "stages parked as outcome_unknown that never reached the platform: {:?}",
        verdict.parked_never_sent
    );
}
