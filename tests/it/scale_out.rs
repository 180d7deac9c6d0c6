//! Scale-out: three `billflow worker` processes with their own data dirs share one
//! prefix on one broker. One is killed with SIGKILL mid-run: its shards move to the
//! others, no non-idempotent call takes effect twice, and every command ends once. When
//! it comes back, the others step back and it takes its own shards again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::workload::{duplicate_effects, queue_depth, sign_up};
use crate::common::{renewal, ChildGuard, Harness};
use billflow::sim::costguard as cg;
use serde_json::json;

const WORKERS: u16 = 3;
const SHARDS: u16 = 6;

struct Worker {
    id: u16,
    admin: String,
    child: Option<ChildGuard>,
}

impl Worker {
    fn start(h: &Harness, id: u16) -> Worker {
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .to_string();
        let mut worker = Worker {
            id,
            admin,
            child: None,
        };
        worker.spawn(h);
        worker
    }

    fn spawn(&mut self, h: &Harness) {
        let dir = h.data_dir.path().join(format!("worker-{}", self.id));
        std::fs::create_dir_all(&dir).expect("worker dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("worker.log"))
            .expect("worker log");
        let mut cmd = h.worker_process();
        cmd.env("BILLFLOW_DATA_DIR", dir.join("store"))
            .env("BILLFLOW_WORKERS", WORKERS.to_string())
            .env("BILLFLOW_WORKER_ID", self.id.to_string())
            .env("BILLFLOW_HTTP_ADDR", &self.admin)
            .env("BILLFLOW_PREFETCH", "8")
            .env("BILLFLOW_SHUTDOWN_GRACE_MS", "5000")
            .stderr(log);
        self.child = Some(ChildGuard::spawn(&mut cmd));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            child.stop();
        }
    }

    async fn ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.admin);
        matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
    }

    /// Stage messages this process has taken from its shards.
    async fn consumed(&self) -> u64 {
        let url = format!("http://{}/metrics", self.admin);
        let Ok(response) = reqwest::get(&url).await else {
            return 0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("billflow_messages_consumed_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    fn log(&self, h: &Harness) -> String {
        let path = h
            .data_dir
            .path()
            .join(format!("worker-{}/worker.log", self.id));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

async fn all_ready(workers: &[&Worker]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for w in workers {
            ready &= w.ready().await;
        }
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "workers did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn commands(from: usize, n: usize) -> Vec<serde_json::Value> {
    let services = [
        cg::ACTIVE_SERVICE,
        cg::HOTLINED_SERVICE,
        cg::INELIGIBLE_SERVICE,
    ];
    (from..from + n)
        .map(|i| {
            let id = format!("scale-{i}");
            if i % 2 == 0 {
                renewal(&id, services[(i / 2) % services.len()])
            } else {
                sign_up(&id, i / 2)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_nothing_twice_nothing_lost() {
    let mut h = Harness::start_with("scale", SHARDS, true).await;
    // Calls slow enough that the kill lands while stages are in flight on every worker.
    for op in ["ServiceNumberDetail", "CreateCart", "SubmitCart"] {
        h.sim_post(
            "/_sim/faults",
            json!({"operation": op, "kind": "latency", "ms": 150, "count": 1000}),
        )
        .await;
    }
    for op in ["StartOrder", "GetAvailablePackages", "CompleteOrder"] {
        h.sim_post(
            "/_sim/faults",
            json!({"operation": op, "kind": "latency", "ms": 150, "count": 1000}),
        )
        .await;
    }

    let mut workers: Vec<Worker> = (0..WORKERS).map(|id| Worker::start(&h, id)).collect();
    all_ready(&workers.iter().collect::<Vec<_>>()).await;
    // The standbys join their lines after a few seconds; the kill must find them there.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let first = commands(0, 48);
    let shards: BTreeSet<u16> = first
        .iter()
        .map(|c| h.topology.shard_of(c["command_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shards.len(),
        usize::from(SHARDS),
        "the workload covers every shard"
    );
    for command in &first {
        h.publish(command).await;
    }
    let ids: Vec<String> = first
        .iter()
        .map(|c| c["command_id"].as_str().unwrap().to_string())
        .collect();

    // Kill worker 1 once a few commands have finished: stages are mid-flight by then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.seen.iter().filter(|e| e.is_terminal()).count() < 6 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        h.poll_event(Duration::from_millis(50)).await;
    }
    let before_kill = [
        workers[0].consumed().await,
        workers[1].consumed().await,
        workers[2].consumed().await,
    ];
    workers[1].kill();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&id_refs).await;
    let survivors = [workers[0].consumed().await, workers[2].consumed().await];

    // Worker 1 comes back with its data dir; the others step back from its shards.
    workers[1].spawn(&h);
    all_ready(&[&workers[1]]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = commands(48, 24);
    for command in &second {
        h.publish(command).await;
    }
    let more: Vec<String> = second
        .iter()
        .map(|c| c["command_id"].as_str().unwrap().to_string())
        .collect();
    let more_refs: Vec<&str> = more.iter().map(String::as_str).collect();
    h.wait_terminal(&more_refs).await;
    let returned = workers[1].consumed().await;
    let expected_home: usize = more
        .iter()
        .filter(|id| h.topology.shard_of(id) % WORKERS == 1)
        .count();

    // Late duplicates may still wait in a delay queue: let the queues run empty.
    let mut quiet = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while quiet < 10 && Instant::now() < deadline {
        let mut queued = 0;
        for queue in h.topology.stage_queues() {
            queued += queue_depth(&h.connection, &queue).await;
        }
        quiet = if queued == 0 { quiet + 1 } else { 0 };
        h.settle(Duration::from_millis(200)).await;
    }
    let mut left = 0;
    for queue in h.topology.stage_queues() {
        left += queue_depth(&h.connection, &queue).await;
    }

    let mut terminals: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in h.seen.iter().filter(|e| e.is_terminal()) {
        terminals
            .entry(e.subject.clone())
            .or_default()
            .insert(e.id.clone());
    }
    let all: Vec<&String> = ids.iter().chain(more.iter()).collect();
    let lost: Vec<&&String> = all
        .iter()
        .filter(|id| !terminals.contains_key(**id))
        .collect();
    let multiple: Vec<_> = terminals.iter().filter(|(_, t)| t.len() > 1).collect();
    let duplicates = duplicate_effects(&h.calls().await);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for e in h.seen.iter().filter(|e| e.is_terminal()) {
        *outcomes.entry(e.data.outcome.as_str()).or_default() += 1;
    }
    println!(
        "scale-out: consumed before kill {before_kill:?}, survivors after {survivors:?}, \
         worker 1 after its return {returned} ({expected_home} commands on its shards); \
         outcomes {outcomes:?}; duplicates {}, lost {}, multiple {}, left {left}",
        duplicates.len(),
        lost.len(),
        multiple.len()
    );
    let logs: Vec<String> = workers.iter().map(|w| w.log(&h)).collect();
    for w in &mut workers {
        w.stop();
    }

    assert!(duplicates.is_empty(), "applied twice: {duplicates:?}");
    assert!(lost.is_empty(), "no terminal event: {lost:?}");
    assert!(multiple.is_empty(), "several terminal events: {multiple:?}");
    assert_eq!(left, 0, "messages left in the stage queues");
    assert!(
        before_kill.iter().all(|n| *n > 0),
        "every worker took work before the kill: {before_kill:?}"
    );
    assert!(
        survivors[0] > before_kill[0] && survivors[1] > before_kill[2],
        "the survivors took over: {before_kill:?} → {survivors:?}"
    );
    assert!(
        expected_home > 0,
        "the second batch has commands on worker 1's shards"
    );
    assert!(
        returned > 0,
        "worker 1 took its shards back after its return; what the workers said about shards:\n{}",
        logs.iter()
            .flat_map(|l| l.lines())
            .filter(|l| l.contains("consumers"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        logs[0].contains("stepping back") || logs[2].contains("stepping back"),
        "a standby stepped back for worker 1"
    );
}
