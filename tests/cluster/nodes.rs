//! The three-node cluster of `deploy/cluster/rabbitmq-cluster.sh`, driven from the test.
//! Its verbs block for seconds (a node restart takes ~10 s), and the simulator shares the
//! test's runtime: they run on the blocking pool, never on a runtime thread.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use serde_json::Value;

pub const NODES: [&str; 3] = [
    "billflow-a@localhost",
    "billflow-b@localhost",
    "billflow-c@localhost",
];

/// rabbitmqctl waits this long (seconds) for a node before giving up on it.
const CTL_TIMEOUT: &str = "20";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster/rabbitmq-cluster.sh")
}

pub fn rabbitmq_installed() -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .any(|dir| dir.join("rabbitmq-server").is_file())
}

/// Node name to the script's node letter: billflow-b@localhost -> b.
pub fn letter(node: &str) -> &str {
    node.trim_start_matches("billflow-")
        .trim_end_matches("@localhost")
}

/// The cluster of one test: stopped, its `ip rule` partitions healed and its files
/// removed when it drops, also on panic (the script's `stop` does all three).
pub struct Cluster {
    dir: tempfile::TempDir,
    pub urls: Vec<String>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("cluster dir");
        let mut cluster = Cluster {
            dir,
            urls: Vec::new(),
        };
        let out = cluster.run(&["start"]).await;
        cluster.urls = out
            .lines()
            .filter(|l| l.starts_with("amqp://"))
            .map(str::to_string)
            .collect();
        assert_eq!(cluster.urls.len(), 3, "three AMQP URLs: {out}");
        cluster
    }

    /// `rabbitmq-cluster.sh VERB [NODE] DIR`; panics with its output when it fails.
    pub async fn run(&self, verb: &[&str]) -> String {
        let dir = self.dir.path().to_path_buf();
        let args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        let (ok, text) = tokio::task::spawn_blocking(move || {
            let out = Process::new(script())
                .args(&args)
                .arg(&dir)
                .output()
                .expect("run rabbitmq-cluster.sh");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .await
        .expect("rabbitmq-cluster.sh task");
        assert!(ok, "rabbitmq-cluster.sh {verb:?}: {text}");
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

/// `rabbitmqctl list_queues name COLUMNS` as JSON rows of the queues of `prefix`, from the
/// first node that answers.
pub async fn list_queues(prefix: &str, columns: &[&str]) -> Vec<Value> {
    let prefix = prefix.to_string();
    let columns: Vec<String> = columns.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        for node in NODES {
            let Ok(out) = Process::new("timeout")
                .args([
                    CTL_TIMEOUT,
                    "rabbitmqctl",
                    "-q",
                    "-n",
                    node,
                    "list_queues",
                    "name",
                ])
                .args(&columns)
                .args(["--formatter", "json"])
                .output()
            else {
                continue;
            };
            if !out.status.success() {
                continue;
            }
            let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
            return rows
                .into_iter()
                .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
                .collect();
        }
        panic!("no node answered list_queues");
    })
    .await
    .expect("list_queues task")
}

/// The node leading `queue` now.
pub async fn leader(prefix: &str, queue: &str) -> String {
    let rows = list_queues(prefix, &["leader"]).await;
    rows.iter()
        .find(|r| r["name"] == queue)
        .and_then(|r| r["leader"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("leader of {queue}: {rows:?}"))
}
