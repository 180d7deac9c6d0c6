//! `billflow worker` as its own process, so its memory is its own and can be read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::contract::signing::Signer;

pub struct WorkerProcess {
    child: Child,
    admin: SocketAddr,
    data_dir: PathBuf,
    http: reqwest::Client,
}

/// What a benchmark worker is configured with.
pub struct WorkerSetup<'a> {
    pub amqp_url: &'a str,
    pub prefix: &'a str,
    pub sim_url: &'a str,
    pub prefetch: u32,
    pub data_dir: &'a Path,
    /// Calls in flight at once to the simulator: each is a socket on both sides.
    pub max_concurrency: u32,
}

impl WorkerProcess {
    pub async fn start(setup: WorkerSetup<'_>) -> anyhow::Result<Self> {
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("no free port for the worker's admin API")?;
        std::fs::create_dir_all(setup.data_dir)?;
        let log = std::fs::File::create(setup.data_dir.join("worker.log"))?;
        let limits = format!(
            r#"{{"costguard":{{"max_concurrency":{0},"rate_per_sec":1000000,"burst":1000000}}}}"#,
            setup.max_concurrency
        );
        let exe = std::env::current_exe().context("cannot find the billflow executable")?;
        let child = Command::new(exe)
            .arg("worker")
            .env("AMQP_URL", setup.amqp_url)
            .env("BILLFLOW_PREFIX", setup.prefix)
            .env("BILLFLOW_SHARDS", "1")
            .env("BILLFLOW_QUEUE_ARGUMENTS", "true")
            .env("BILLFLOW_WORKERS", "1")
            .env("BILLFLOW_WORKER_ID", "0")
            .env("BILLFLOW_DATA_DIR", setup.data_dir.join("store"))
            .env("BILLFLOW_HTTP_ADDR", admin.to_string())
            .env("BILLFLOW_PREFETCH", setup.prefetch.to_string())
            .env("BILLFLOW_API_LIMITS", limits)
            .env("BILLFLOW_SHUTDOWN_GRACE_MS", "10000")
            .env("BILLFLOW_LOG", "warn")
            .env("BILLFLOW_LOG_FORMAT", "text")
            .env("COSTGUARD_URL", setup.sim_url)
            .env("BILLFLOW_SIGNING_KEY", Signer::generate_key())
            .env("COSTGUARD_TOKEN", "bench-token")
            .env("COSTGUARD_AUTHENTICATED_KEY", "AuthKey")
            .env("COSTGUARD_ENVIRONMENT", "test")
            .env("COSTGUARD_TIMEOUT_MS", "60000")
            .env_remove("EMERSION_USERNAME")
            .env_remove("EMERSION_PASSWORD")
            .env_remove("EMERSION_CLIENT_CERT")
            .env_remove("EMERSION_CLIENT_KEY")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start billflow worker")?;
        let mut worker = WorkerProcess {
            child,
            admin,
            data_dir: setup.data_dir.to_path_buf(),
            http: reqwest::Client::new(),
        };
        worker.wait_ready().await?;
        Ok(worker)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!(
                    "the benchmark worker exited ({status}); its log:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the benchmark worker did not get ready; its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("worker.log")).unwrap_or_default()
    }

    /// Its Prometheus metrics.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await?
            .text()
            .await?;
        Ok(Metrics(text))
    }

    /// Peak resident memory since start (VmHWM), in bytes; Linux only.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus text exposition.
pub struct Metrics(String);

impl Metrics {
    /// The sum of every series of `name` (all label sets).
    pub fn total(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let metric = series.split('{').next()?;
                (metric == name).then(|| value.parse::<f64>().ok())?
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_every_label_set() {
        let m = Metrics(
            "# TYPE x histogram\nx_sum{api=\"a\"} 1.5\nx_sum{api=\"b\"} 2\nx_count 3\nxy_sum 9\n"
                .into(),
        );
        assert_eq!(m.total("x_sum"), 3.5);
        assert_eq!(m.total("x_count"), 3.0);
        assert_eq!(m.total("missing"), 0.0);
    }
}
