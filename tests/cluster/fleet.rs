//! The run's `billflow worker` processes: worker i on node i, each with its own data dir
//! and log. `AMQP_URL` takes one URL, so a worker whose node goes away reconnects to that
//! node when it is back; meanwhile the others take its shards as standbys.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{ChildGuard, Harness};

/// A worker that exits (it does when its node is away as it starts) is started again,
/// at most this often.
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// Server heartbeat the workers ask for: a connection to a paused (SIGSTOPped) node is
/// seen dead within about two of these, not the broker's default 60 s. The TCP connect
/// timeout bounds a connect to a node whose listener is gone.
const URL_OPTIONS: &str = "heartbeat=5&connection_timeout=5000";

/// What the log says when the worker lost its broker connection and tries again.
const RECONNECT_LINE: &str = "broker connection lost; reconnecting";

struct Worker {
    id: u16,
    url: String,
    dir: PathBuf,
    child: Option<ChildGuard>,
    started: Instant,
    /// Killed by the chaos, not to be started before it says so.
    held: bool,
}

pub struct Fleet {
    workers: Vec<Worker>,
    /// Workers started again after they exited by themselves (not killed by the chaos).
    pub restarts: usize,
}

impl Fleet {
    /// One worker per URL, worker i on `urls[i]`.
    pub fn start(h: &Harness, urls: &[String]) -> Fleet {
        let total = urls.len() as u16;
        let workers = urls
            .iter()
            .enumerate()
            .map(|(id, url)| {
                let mut worker = Worker {
                    id: id as u16,
                    url: format!("{url}?{URL_OPTIONS}"),
                    dir: h.data_dir.path().join(format!("worker-{id}")),
                    child: None,
                    started: Instant::now(),
                    held: false,
                };
                worker.spawn(h, total);
                worker
            })
            .collect();
        Fleet {
            workers,
            restarts: 0,
        }
    }

    fn total(&self) -> u16 {
        self.workers.len() as u16
    }

    /// Starts again each worker that exited.
    pub fn keep_alive(&mut self, h: &Harness) {
        let total = self.total();
        for worker in &mut self.workers {
            let running = matches!(worker.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)));
            if !running && !worker.held && worker.started.elapsed() >= RESTART_EVERY {
                worker.spawn(h, total);
                self.restarts += 1;
            }
        }
    }

    /// SIGKILL of worker `id`; `keep_alive` leaves it down until `restart`.
    pub fn kill(&mut self, id: u16) {
        let worker = &mut self.workers[usize::from(id)];
        if let Some(mut child) = worker.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        worker.held = true;
    }

    /// Starts worker `id` again, on its data dir.
    pub fn restart(&mut self, h: &Harness, id: u16) {
        let total = self.total();
        let worker = &mut self.workers[usize::from(id)];
        worker.held = false;
        worker.spawn(h, total);
    }

    /// SIGTERM to every worker: a graceful stop, so nothing stays unacked.
    pub fn stop(&mut self) {
        for child in self.workers.iter_mut().filter_map(|w| w.child.take()) {
            child.stop();
        }
    }

    /// How often the workers lost their broker connection and reconnected, by their logs.
    pub fn reconnects(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.log().matches(RECONNECT_LINE).count())
            .sum()
    }

    /// The longest wait before a reconnect attempt that a worker logged, in ms.
    pub fn longest_reconnect_wait(&self) -> u64 {
        self.workers
            .iter()
            .flat_map(|w| {
                w.log()
                    .lines()
                    .filter(|l| l.contains(RECONNECT_LINE))
                    .filter_map(|l| {
                        let (_, rest) = l.split_once("retry_in_ms=")?;
                        rest.split(|c: char| !c.is_ascii_digit())
                            .next()?
                            .parse()
                            .ok()
                    })
                    .collect::<Vec<u64>>()
            })
            .max()
            .unwrap_or(0)
    }

    /// What the workers logged about command `id`, by worker.
    pub fn log_of(&self, id: &str) -> String {
        let needle = format!("command_id={id} ");
        let mut out = String::new();
        for worker in &self.workers {
            for line in worker.log().lines().filter(|l| l.contains(&needle)) {
                out.push_str(&format!("  w{} {line}\n", worker.id));
            }
        }
        out
    }

    /// Copies every worker's log into `dir` (the data dir goes with the test).
    pub fn keep_logs(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for worker in &self.workers {
            std::fs::write(dir.join(format!("worker-{}.log", worker.id)), worker.log())?;
        }
        Ok(())
    }

    /// The last `lines` of every worker's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for worker in &self.workers {
            let log = worker.log();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            out.push_str(&format!("--- worker {} ---\n", worker.id));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Worker {
    fn spawn(&mut self, h: &Harness, total: u16) {
        std::fs::create_dir_all(&self.dir).expect("worker dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("worker.log"))
            .expect("worker log");
        let mut cmd = h.worker_process();
        cmd.env("AMQP_URL", &self.url)
            .env("BILLFLOW_DATA_DIR", self.dir.join("store"))
            .env("BILLFLOW_WORKERS", total.to_string())
            .env("BILLFLOW_WORKER_ID", self.id.to_string())
            // Plain text: the checks read the logs.
            // `CLUSTER_WORKER_LOG=info,billflow::ledger=debug` logs every ledger entry read.
            .env(
                "BILLFLOW_LOG",
                std::env::var("CLUSTER_WORKER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .env("COSTGUARD_TIMEOUT_MS", "5000")
            .env("EMERSION_TIMEOUT_MS", "5000")
            .env("BILLFLOW_SHUTDOWN_GRACE_MS", "3000")
            // Retries within the 1 s and 5 s delay tiers, as in the chaos suite.
            .env(
                "BILLFLOW_RETRY_POLICY",
                r#"{"quick_delay_ms": 20, "initial_delay_ms": 500, "multiplier": 2.0, "max_delay_ms": 4000}"#,
            )
            .stderr(log);
        self.child = Some(ChildGuard::spawn(&mut cmd));
        self.started = Instant::now();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
    }
}
