//! Issue 14 part 6, first piece: billflow on a three-node RabbitMQ cluster that
//! `deploy/cluster/rabbitmq-cluster.sh` starts beside the default broker. Two worker
//! processes connect to different nodes; the node leading a shard queue is SIGKILLed while
//! renewals are in flight and started again. Then, from the simulator's call log and the
//! events: no non-idempotent call took effect twice, every command has exactly one
//! terminal event, nothing is left in the work or delay queues.
//!
//! `#[ignore]`d: it starts three broker nodes (~15 s) and needs root or the rabbitmq user.
//! `cargo test --test cluster -- --ignored --nocapture`

#[path = "it/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use billflow::broker;
use billflow::contract::events::CloudEvent;
use billflow::sim::costguard as cg;
use common::workload::{duplicate_effects, queue_depth};
use common::{renewal, ChildGuard, Harness};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::Connection;
use serde_json::{json, Value};

const NODES: [&str; 3] = [
    "billflow-a@localhost",
    "billflow-b@localhost",
    "billflow-c@localhost",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster/rabbitmq-cluster.sh")
}

fn rabbitmq_installed() -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .any(|dir| dir.join("rabbitmq-server").is_file())
}

/// The cluster of one test: stopped, and its files removed, when it drops (also on panic).
struct Cluster {
    dir: tempfile::TempDir,
    urls: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            dir,
            urls: Vec::new(),
        };
        let out = cluster.run(&["start"]);
        cluster.urls = out
            .lines()
            .filter(|l| l.starts_with("amqp://"))
            .map(str::to_string)
            .collect();
        assert_eq!(cluster.urls.len(), 3, "three AMQP URLs: {out}");
        cluster
    }

    /// `rabbitmq-cluster.sh VERB [NODE] DIR`; panics with its output when it fails.
    fn run(&self, verb: &[&str]) -> String {
        let out = Process::new(script())
            .args(verb)
            .arg(self.dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "rabbitmq-cluster.sh {verb:?}: {text}");
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Process::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// `rabbitmqctl -n billflow-a@localhost list_queues name COLUMNS`, as JSON rows of `prefix`.
fn list_queues(prefix: &str, columns: &[&str]) -> Vec<Value> {
    for node in NODES {
        let out = Process::new("rabbitmqctl")
            .args(["-q", "-n", node, "list_queues", "name"])
            .args(columns)
            .args(["--formatter", "json"])
            .output()
            .unwrap();
        if !out.status.success() {
            continue;
        }
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        return rows
            .into_iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .collect();
    }
    panic!("no node answered list_queues");
}

/// Node name to the script's node letter: billflow-b@localhost -> b.
fn letter(node: &str) -> &str {
    node.trim_start_matches("billflow-")
        .trim_end_matches("@localhost")
}

async fn connect_any(urls: &[String]) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for url in urls {
            if let Ok(c) = broker::connect(url, "billflow-cluster-test").await {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "no cluster node answers");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Moves what the replicated capture queue holds into `events`, from any live node.
async fn drain(urls: &[String], conn: &mut Connection, queue: &str, events: &mut Vec<CloudEvent>) {
    loop {
        let Ok(channel) = conn.create_channel().await else {
            *conn = connect_any(urls).await;
            continue;
        };
        loop {
            match channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
            {
                Ok(Some(message)) => {
                    if let Ok(event) = serde_json::from_slice(&message.delivery.data) {
                        events.push(event);
                    }
                    let _ = message.delivery.ack(BasicAckOptions::default()).await;
                }
                Ok(None) => {
                    let _ = channel.close(200, "drained".into()).await;
                    return;
                }
                Err(_) => break,
            }
        }
        *conn = connect_any(urls).await;
    }
}

/// Worker `id` of two, connected to `url`.
fn spawn(h: &Harness, id: u16, url: &str) -> ChildGuard {
    let mut cmd = h.worker_process();
    cmd.env("AMQP_URL", url)
        .env("BILLFLOW_WORKERS", "2")
        .env("BILLFLOW_WORKER_ID", id.to_string())
        .env("COSTGUARD_TIMEOUT_MS", "3000")
        .env("BILLFLOW_SHUTDOWN_GRACE_MS", "3000")
        .env(
            "BILLFLOW_DATA_DIR",
            h.data_dir.path().join(format!("worker-{id}")),
        );
    ChildGuard::spawn(&mut cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node RabbitMQ cluster (~15 s); run on its own"]
async fn shard_leader_killed_and_restarted() {
    if !rabbitmq_installed() {
        println!(
            "cluster: SKIPPED, rabbitmq-server is not installed (Debian package rabbitmq-server)"
        );
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start();
    println!(
        "cluster: three nodes up in {:.1}s: {:?}",
        started.elapsed().as_secs_f64(),
        cluster.urls
    );
    // The harness (topology, simulator, events) talks to node a; only this test runs in
    // this binary, so the variable it reads once is node a's URL.
    std::env::set_var("AMQP_URL", &cluster.urls[0]);
    let mut h = Harness::start_with("cluster", 4, true).await;
    assert_eq!(h.amqp_url, cluster.urls[0], "the harness is on node a");

    // A durable capture of every event, a quorum queue: it outlives the killed node.
    let capture = h.capture_events("cluster-events").await;

    // A stream, as the stage ledger of issue 14 will use: replicated on all three nodes too.
    h.declare_queue("cluster-stream", "stream").await;

    let members = list_queues(&h.prefix, &["type", "members"]);
    let replicated: Vec<&Value> = members
        .iter()
        .filter(|r| r["type"] == "quorum" || r["type"] == "stream")
        .collect();
    assert!(
        replicated.iter().any(|r| r["type"] == "stream"),
        "the stream is listed: {members:?}"
    );
    for row in &replicated {
        let n = row["members"].as_array().map_or(0, Vec::len);
        assert_eq!(n, 3, "{} has 3 members: {row}", row["name"]);
    }
    println!(
        "cluster: {} quorum queues and 1 stream, 3 members each",
        replicated.len() - 1
    );

    // Slow renewals, so the kill lands while calls are in flight.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "renewAdvancePay", "kind": "latency", "ms": 2500, "count": 8}),
    )
    .await;

    let mut workers = [
        Some(spawn(&h, 0, &cluster.urls[0])),
        Some(spawn(&h, 1, &cluster.urls[1])),
    ];
    let worker_urls = [cluster.urls[0].clone(), cluster.urls[1].clone()];
    let services = [cg::ACTIVE_SERVICE, cg::HOTLINED_SERVICE];
    let ids: Vec<String> = (0..8).map(|i| format!("cluster-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        h.publish(&renewal(id, services[i % services.len()])).await;
    }

    let leaders = list_queues(&h.prefix, &["leader"]);
    let shard0 = h.topology.shard_queue(0);
    let victim = leaders
        .iter()
        .find(|r| r["name"] == shard0.as_str())
        .and_then(|r| r["leader"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("leader of {shard0}: {leaders:?}"));
    let mut conn = connect_any(&cluster.urls).await;
    let mut events: Vec<CloudEvent> = Vec::new();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    drain(&cluster.urls, &mut conn, &capture, &mut events).await;
    let _ = conn.close(200, "before the kill".into()).await;
    let ended = events.iter().filter(|e| e.is_terminal()).count();
    println!(
        "cluster: +{:.1}s kill -9 {victim}, leader of {shard0}; {ended} of {} commands ended before",
        started.elapsed().as_secs_f64(),
        ids.len()
    );
    cluster.run(&["kill", letter(&victim)]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.run(&["restart", letter(&victim)]);
    println!(
        "cluster: +{:.1}s {victim} back",
        started.elapsed().as_secs_f64()
    );
    let new_leader = list_queues(&h.prefix, &["leader"])
        .into_iter()
        .find(|r| r["name"] == shard0.as_str())
        .and_then(|r| r["leader"].as_str().map(str::to_string));
    println!("cluster: {shard0} now led by {new_leader:?}");

    let mut conn = connect_any(&cluster.urls).await;
    let mut worker_restarts = 0;
    let mut quiet_checks = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        // Workers reconnect on their own; one that exits anyway is started again.
        for (id, slot) in workers.iter_mut().enumerate() {
            if !matches!(slot.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
                *slot = Some(spawn(&h, id as u16, &worker_urls[id]));
                worker_restarts += 1;
            }
        }
        drain(&cluster.urls, &mut conn, &capture, &mut events).await;
        let done: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.is_terminal())
            .map(|e| e.subject.as_str())
            .collect();
        if ids.iter().all(|id| done.contains(id.as_str())) {
            let mut queued = 0;
            for queue in h.topology.stage_queues() {
                queued += queue_depth(&conn, &queue).await;
            }
            quiet_checks = if queued == 0 { quiet_checks + 1 } else { 0 };
            if quiet_checks >= 20 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for child in workers.iter_mut().filter_map(Option::take) {
        child.stop();
    }
    drain(&cluster.urls, &mut conn, &capture, &mut events).await;

    let mut by_id: BTreeMap<String, CloudEvent> = BTreeMap::new();
    for event in events {
        by_id.entry(event.id.clone()).or_insert(event);
    }
    let mut terminals: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in by_id.values().filter(|e| e.is_terminal()) {
        terminals
            .entry(event.subject.clone())
            .or_default()
            .push(event.data.outcome.as_str().to_string());
    }
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| !terminals.contains_key(*id))
        .collect();
    let multiple: Vec<(&String, &Vec<String>)> =
        terminals.iter().filter(|(_, t)| t.len() > 1).collect();
    let duplicates = duplicate_effects(&h.calls().await);
    let mut left = 0;
    for queue in h.topology.stage_queues() {
        left += queue_depth(&conn, &queue).await;
    }
    let _ = conn.close(200, "done".into()).await;

    println!();
    println!("| commands | workers | node killed | worker process restarts | duplicate effects | lost commands | multiple terminals | left in queues | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | 2 (nodes a, b) | {victim} | {worker_restarts} | {} | {} | {} | {left} | {:.1} |",
        ids.len(),
        duplicates.len(),
        lost.len(),
        multiple.len(),
        started.elapsed().as_secs_f64()
    );
    println!("outcomes: {terminals:?}");
    if !(duplicates.is_empty() && lost.is_empty() && multiple.is_empty() && left == 0) {
        let log = h.worker_log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        println!("--- last lines of the worker log ---");
        for line in tail.into_iter().rev() {
            println!("{line}");
        }
    }
    assert!(
        duplicates.is_empty(),
        "non-idempotent calls applied twice: {duplicates:?}"
    );
    assert!(
        lost.is_empty(),
        "commands without a terminal event: {lost:?}"
    );
    assert!(
        multiple.is_empty(),
        "commands with several terminal events: {multiple:?}"
    );
    assert_eq!(left, 0, "messages left in the work or delay queues");
}
