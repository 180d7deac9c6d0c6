//! `billflow worker` processes sharing one prefix (`BILLFLOW_WORKERS` > 1), each with its
//! own data dir and admin address, for the suites that kill and restart them; and the
//! fleet-wide checks read from the simulator's call log, the events and the queues.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use billflow::broker::Topology;
use billflow::contract::events::CloudEvent;
use serde_json::Value;

use super::workload::{queue_depth, NON_IDEMPOTENT};
use super::{ChildGuard, Harness};

/// How long a worker waits before it stands by for the other workers' shards (3 s in the
/// worker), with a margin: a kill before that leaves a shard with no consumer.
pub const STANDBY: Duration = Duration::from_secs(4);

pub struct FleetWorker {
    pub id: u16,
    workers: u16,
    /// The admin API's `host:port`.
    pub admin: String,
    /// Settings beyond the harness's, as environment variables.
    env: Vec<(String, String)>,
    child: Option<ChildGuard>,
    /// When the process was last started.
    pub started: Instant,
}

impl FleetWorker {
    /// Worker `id` of `workers`, with `env` added to the harness's settings.
    pub fn start(h: &Harness, id: u16, workers: u16, env: &[(&str, &str)]) -> FleetWorker {
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .to_string();
        let mut worker = FleetWorker {
            id,
            workers,
            admin,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            started: Instant::now(),
        };
        worker.spawn(h);
        worker
    }

    fn dir(&self, h: &Harness) -> std::path::PathBuf {
        h.data_dir.path().join(format!("worker-{}", self.id))
    }

    /// Starts the process, again after a kill: same id, data dir and admin address.
    pub fn spawn(&mut self, h: &Harness) {
        let dir = self.dir(h);
        std::fs::create_dir_all(&dir).expect("worker dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("worker.log"))
            .expect("worker log");
        let mut cmd = h.worker_process();
        cmd.env("BILLFLOW_DATA_DIR", dir.join("store"))
            .env("BILLFLOW_WORKERS", self.workers.to_string())
            .env("BILLFLOW_WORKER_ID", self.id.to_string())
            .env("BILLFLOW_HTTP_ADDR", &self.admin)
            .env("BILLFLOW_SHUTDOWN_GRACE_MS", "5000")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(log);
        self.child = Some(ChildGuard::spawn(&mut cmd));
        self.started = Instant::now();
    }

    /// SIGKILL, then reaped: the broker sees its connection close at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, the graceful stop.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            child.stop();
        }
    }

    pub async fn ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.admin);
        matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
    }

    /// Waits until it is old enough to stand by for the other workers' shards.
    pub async fn standing_by(&self) {
        let at = tokio::time::Instant::from_std(self.started + STANDBY);
        tokio::time::sleep_until(at).await;
    }

    /// `GET /workflows/{id}` on its admin API: status and body (status 0: no answer).
    pub async fn workflow(&self, command_id: &str) -> (u16, String) {
        let url = format!("http://{}/workflows/{command_id}", self.admin);
        match reqwest::get(&url).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    pub fn log(&self, h: &Harness) -> String {
        std::fs::read_to_string(self.dir(h).join("worker.log")).unwrap_or_default()
    }

    /// Lines of its log holding every one of `words` (its text log colours field names,
    /// so a `key=value` is two words).
    pub fn log_lines(&self, h: &Harness, words: &[&str]) -> usize {
        self.log(h)
            .lines()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .count()
    }

    /// Waits up to 15 s until its log has more than `before` lines holding `words`.
    pub async fn logged(&self, h: &Harness, words: &[&str], before: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.log_lines(h, words) <= before {
            assert!(
                Instant::now() < deadline,
                "worker {} never logged {words:?}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn all_ready(workers: &[&FleetWorker]) {
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

/// A command id starting with `stem` that lands in `shard`.
pub fn id_on_shard(topology: &Topology, stem: &str, shard: u16) -> String {
    (0..)
        .map(|i| format!("{stem}-{i}"))
        .find(|id| topology.shard_of(id) == shard)
        .expect("some id lands in every shard")
}

/// (idempotency key, operation) of every non-idempotent call *sent* more than once, applied
/// or not: with no fault that refuses a call, a second send is a second effect waiting to
/// happen.
pub fn sent_twice(calls: &[Value]) -> Vec<((String, String), usize)> {
    let mut sent: BTreeMap<(String, String), usize> = BTreeMap::new();
    for call in calls {
        let op = call["operation"].as_str().unwrap_or_default();
        if NON_IDEMPOTENT.contains(&op) {
            let key = call["idempotency_key"].as_str().unwrap_or("(none)");
            *sent.entry((key.to_string(), op.to_string())).or_default() += 1;
        }
    }
    sent.into_iter().filter(|(_, n)| *n > 1).collect()
}

/// The `<command_id>/<stage>` idempotency keys of every call the platform received.
pub fn reached(calls: &[Value]) -> BTreeSet<String> {
    calls
        .iter()
        .filter_map(|c| c["idempotency_key"].as_str().map(str::to_string))
        .collect()
}

/// Calls whose path or body holds `text`.
pub fn calls_with(calls: &[Value], text: &str) -> Vec<Value> {
    calls
        .iter()
        .filter(|c| {
            c["path"].as_str().unwrap_or_default().contains(text)
                || c["body"].as_str().unwrap_or_default().contains(text)
        })
        .cloned()
        .collect()
}

/// The distinct ids of each command's terminal events: a re-published outcome keeps its id.
pub fn terminal_ids(seen: &[CloudEvent]) -> BTreeMap<String, BTreeSet<String>> {
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in seen.iter().filter(|e| e.is_terminal()) {
        ids.entry(e.subject.clone())
            .or_default()
            .insert(e.id.clone());
    }
    ids
}

/// Waits until the stage queues (intake, shards, delays, undelivered) have stayed empty
/// for two seconds, collecting events meanwhile; returns what is left in them.
pub async fn wait_queues_empty(h: &mut Harness) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    loop {
        let mut queued = 0;
        for queue in h.topology.stage_queues() {
            queued += queue_depth(&h.connection, &queue).await;
        }
        quiet = if queued == 0 { quiet + 1 } else { 0 };
        if quiet >= 10 || Instant::now() >= deadline {
            return queued;
        }
        h.settle(Duration::from_millis(200)).await;
    }
}

/// Waits until the platform has received `operation` from `command_id`.
pub async fn wait_for_call(h: &Harness, command_id: &str, operation: &str) {
    let key = format!("{command_id}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let calls = h.calls().await;
        let arrived = calls.iter().any(|c| {
            c["operation"] == operation
                && c["idempotency_key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&key))
        });
        if arrived {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{operation} of {command_id} never reached the platform"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
