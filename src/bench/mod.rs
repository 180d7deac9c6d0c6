//! `billflow bench`: measures, in one run against the real broker and the simulator, the
//! broker's ceiling, the engine's stage throughput and where its time goes, throughput
//! and latency at a realistic API latency with thousands of workflows in flight, the
//! worker's memory, the store's size with and without retention, and how long taking a
//! shard over takes as its ledger's retention window grows.

mod ceiling;
mod cpu;
mod load;
mod store_size;
mod takeover;
mod worker_process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lapin::Connection;

use crate::broker::{self, Topology};
use crate::config::DEFAULT_AMQP_URL;
use crate::secret::Secret;
use crate::sim::Simulator;
use load::{quantile, Load, LoadResult, STAGES_PER_RENEWAL};
use worker_process::{WorkerProcess, WorkerSetup};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchSettings {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    pub amqp_url: Secret,
    /// Prefix of the benchmark's queues; each run adds its own suffix and deletes them.
    #[arg(long, default_value = "billflow-bench")]
    pub prefix: String,
    /// Seconds each throughput measurement counts, after a warm-up of a quarter of that.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Deliveries in flight in the ceiling loop and the zero-latency engine run (the
    /// worker's prefetch).
    #[arg(long, default_value_t = 64)]
    pub prefetch: u16,
    /// API latency of the concurrency runs, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Workflows in flight in the concurrency runs, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000,20000")]
    pub in_flight: Vec<u32>,
    /// Cap on simultaneous calls to the simulator (the worker's BILLFLOW_API_LIMITS
    /// max_concurrency): each call holds a connection in the worker and one in the
    /// simulator. Stages beyond it wait in the worker for a slot.
    #[arg(long, default_value_t = 1024)]
    pub max_api_concurrency: u32,
    /// Completed workflows written to a store for the size measurement.
    #[arg(long, default_value_t = 100_000)]
    pub store_workflows: u64,
    /// Workflows the retention keeps in the store measurement (the retention, in
    /// units of the time between two completed workflows).
    #[arg(long, default_value_t = 10_000)]
    pub retention_workflows: u64,
    /// Retention windows (workflows in a shard's ledger) whose takeover read is measured.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub takeover_workflows: Vec<u64>,
    /// Where the workers' data dirs go (a fresh temporary directory if unset).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// A tiny run that only proves every part works (CI): 2 s windows, 20 and 50 in
    /// flight at 20 ms, 2,000 workflows in the store with 500 kept.
    #[arg(long)]
    pub smoke: bool,
}

impl BenchSettings {
    fn sized(mut self) -> Self {
        if self.smoke {
            self.seconds = 2;
            self.prefetch = self.prefetch.min(16);
            self.latency_ms = 20;
            self.in_flight = vec![20, 50];
            self.store_workflows = 2_000;
            self.retention_workflows = 500;
            self.takeover_workflows = vec![200];
        }
        self
    }
}

pub async fn run(settings: BenchSettings) -> anyhow::Result<()> {
    let s = settings.sized();
    if s.in_flight
        .iter()
        .any(|c| *c == 0 || *c > u32::from(u16::MAX))
    {
        anyhow::bail!("--in-flight values must be between 1 and 65535 (the AMQP prefetch limit)");
    }
    let measure = Duration::from_secs(s.seconds.max(1));
    let warmup = measure / 4;
    let work = match &s.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let connection = broker::connect(s.amqp_url.expose(), "billflow-bench")
        .await
        .context("billflow bench needs RabbitMQ: set AMQP_URL")?;
    let sim = Simulator::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let sim_stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(sim.clone().serve(listener, sim_stop.clone()));
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let mut report = Report::new(&s);
    let result = async {
        progress(format_args!(
            "ceiling: consume → confirmed publish → ack, {} in flight",
            s.prefetch
        ));
        let ceiling = ceiling::run(
            &connection,
            &format!("{}-{suffix}.ceiling", s.prefix),
            s.prefetch,
            1024,
            warmup,
            measure,
        )
        .await?;
        report.ceiling = Some(ceiling);

        progress(format_args!(
            "engine: renewals at zero API latency, {} in flight",
            s.prefetch
        ));
        let run = Run {
            connection: &connection,
            amqp_url: s.amqp_url.expose(),
            sim_url: &sim_url,
            work: work.path(),
            measure,
        };
        let prefix = format!("{}-{suffix}-zero", s.prefix);
        let zero = run
            .engine(
                &prefix,
                u32::from(s.prefetch),
                s.max_api_concurrency,
                Duration::ZERO,
                warmup,
                true,
            )
            .await?;
        // A run reaches its steady state once its first workflows have finished: with many
        // in flight that takes their number × stages ÷ throughput.
        let capacity = zero.load.hops_per_sec.max(1.0);
        report.zero = Some(zero);

        sim.set_latency_ms(s.latency_ms);
        for in_flight in &s.in_flight {
            progress(format_args!(
                "concurrency: {in_flight} renewals in flight at {} ms per call",
                s.latency_ms
            ));
            let prefix = format!("{}-{suffix}-c{in_flight}", s.prefix);
            let settle = Duration::from_secs_f64(
                1.5 * f64::from(*in_flight) * STAGES_PER_RENEWAL as f64 / capacity,
            );
            let outcome = run
                .engine(
                    &prefix,
                    *in_flight,
                    s.max_api_concurrency.min(*in_flight),
                    Duration::from_millis(s.latency_ms),
                    warmup.max(settle),
                    false,
                )
                .await?;
            report.concurrency.push((*in_flight, outcome));
        }

        progress(format_args!(
            "store: {} completed workflows",
            s.store_workflows
        ));
        let template = report
            .zero
            .as_ref()
            .map(|z| z.data_dir.join("store"))
            .context("no engine run to take stage records from")?;
        report.store = Some(
            store_size::run(
                &template,
                &load::first_command_id(&prefix),
                &work.path().join("store-size"),
                s.store_workflows,
                s.retention_workflows,
            )
            .await?,
        );

        progress(format_args!(
            "ledger takeover: windows of {:?} workflows",
            s.takeover_workflows
        ));
        let records = store_size::open_when_free(&template)
            .await?
            .stages_of(&load::first_command_id(&prefix))?;
        let ledger_connection = std::sync::Arc::new(
            broker::connect(s.amqp_url.expose(), "billflow-bench-ledger").await?,
        );
        let takeover = takeover::run(
            ledger_connection.clone(),
            &format!("{}-{suffix}-takeover", s.prefix),
            &records,
            &work.path().join("takeover"),
            &s.takeover_workflows,
        )
        .await;
        let _ = ledger_connection.close(200, "bench done".into()).await;
        report.takeover = takeover?;
        anyhow::Ok(())
    }
    .await;
    sim_stop.cancel();
    let _ = connection.close(200, "bench done".into()).await;
    result?;
    print!("{}", report.render());
    Ok(())
}

fn progress(what: std::fmt::Arguments<'_>) {
    eprintln!("bench: {what}");
}

/// What one engine run measured.
struct EngineRun {
    load: LoadResult,
    peak_rss: Option<u64>,
    /// Average seconds per stage: whole stage, API call, store flush waits, publish
    /// confirm waits.
    breakdown: Option<[f64; 4]>,
    data_dir: PathBuf,
}

struct Run<'a> {
    connection: &'a Connection,
    amqp_url: &'a str,
    sim_url: &'a str,
    work: &'a Path,
    measure: Duration,
}

impl Run<'_> {
    async fn engine(
        &self,
        prefix: &str,
        in_flight: u32,
        max_api_concurrency: u32,
        api_latency: Duration,
        warmup: Duration,
        breakdown: bool,
    ) -> anyhow::Result<EngineRun> {
        let data_dir = self.work.join(prefix);
        let worker = WorkerProcess::start(WorkerSetup {
            amqp_url: self.amqp_url,
            prefix,
            sim_url: self.sim_url,
            prefetch: in_flight,
            data_dir: &data_dir,
            max_concurrency: max_api_concurrency,
        })
        .await?;
        let topology = Topology::new(prefix).with_shards(1);
        let load = Load {
            connection: self.connection,
            topology: &topology,
            in_flight,
            api_latency,
            warmup,
            measure: self.measure,
            run: prefix,
            watched: cpu::Watched::with(&[("worker", worker.pid())]),
        }
        .run()
        .await;
        let breakdown = match (&load, breakdown) {
            (Ok(_), true) => {
                let m = worker.metrics().await?;
                let stages = m.total("billflow_stage_seconds_count").max(1.0);
                Some([
                    m.total("billflow_stage_seconds_sum") / stages,
                    m.total("billflow_api_call_duration_seconds_sum") / stages,
                    m.total("billflow_store_flush_seconds_sum") / stages,
                    m.total("billflow_publish_confirm_seconds_sum") / stages,
                ])
            }
            _ => None,
        };
        let peak_rss = worker.peak_rss();
        let log = worker.log();
        worker.stop(Duration::from_secs(15));
        let channel = self.connection.create_channel().await?;
        topology.delete(&channel).await?;
        let _ = channel.close(200, "bench run done".into()).await;
        let load = load.with_context(|| format!("the load failed; the worker's log:\n{log}"))?;
        if load.workflow_ms.is_empty() {
            anyhow::bail!(
                "no workflow of {prefix} completed within the measuring window: lengthen --seconds"
            );
        }
        if load.failed > 0 {
            anyhow::bail!(
                "{} workflows failed during the benchmark; the worker's log:\n{log}",
                load.failed
            );
        }
        Ok(EngineRun {
            load,
            peak_rss,
            breakdown,
            data_dir,
        })
    }
}

struct Report {
    machine: String,
    latency_ms: u64,
    prefetch: u16,
    seconds: u64,
    ceiling: Option<ceiling::Ceiling>,
    zero: Option<EngineRun>,
    concurrency: Vec<(u32, EngineRun)>,
    store: Option<store_size::StoreSize>,
    takeover: Vec<takeover::Takeover>,
}

impl Report {
    fn new(s: &BenchSettings) -> Self {
        Report {
            machine: machine(),
            latency_ms: s.latency_ms,
            prefetch: s.prefetch,
            seconds: s.seconds,
            ceiling: None,
            zero: None,
            concurrency: Vec::new(),
            store: None,
            takeover: Vec::new(),
        }
    }

    fn render(&mut self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nbillflow bench — {}", self.machine);
        let _ = writeln!(
            out,
            "({} s windows after a {} s warm-up; renewals of an active service: {STAGES_PER_RENEWAL} stages, one API call each)\n",
            self.seconds,
            self.seconds as f64 / 4.0
        );
        let ceiling = self.ceiling.as_ref().map(|c| c.hops_per_sec).unwrap_or(0.0);
        let _ = writeln!(out, "| run | in flight | stage hops/s | workflows/s | vs ceiling | CPU per hop | worker peak RSS |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        if let Some(c) = &self.ceiling {
            let _ = writeln!(
                out,
                "| ceiling: consume → confirmed publish → ack (quorum, persistent) | {} | {:.0} | | 1.00 | {} | |",
                self.prefetch,
                c.hops_per_sec,
                per_hop(&c.cpu, c.hops_per_sec, self.seconds)
            );
        }
        if let Some(zero) = &self.zero {
            let _ = writeln!(
                out,
                "| engine, simulator at 0 ms | {} | {:.0} | {:.0} | {:.2} | {} | {} |",
                self.prefetch,
                zero.load.hops_per_sec,
                zero.load.workflows_per_sec,
                zero.load.hops_per_sec / ceiling.max(f64::MIN_POSITIVE),
                per_hop(&zero.load.cpu, zero.load.hops_per_sec, self.seconds),
                zero.peak_rss.map(mib).unwrap_or_else(|| "n/a".into())
            );
            if let Some([stage, api, flush, confirm]) = zero.breakdown {
                let ms = |s: f64| s * 1000.0;
                let _ = writeln!(
                    out,
                    "\nWhere a stage's time goes at 0 ms API latency (mean per stage; waits that overlap are each counted):\n"
                );
                let _ = writeln!(out, "| stage, delivery to ack | API call (HTTP + XML/JSON) | store flush waits | publish confirm waits | rest (decode, records, tasks) |");
                let _ = writeln!(out, "|---|---|---|---|---|");
                let _ = writeln!(
                    out,
                    "| {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                    ms(stage),
                    ms(api),
                    ms(flush),
                    ms(confirm),
                    ms(stage - api - flush - confirm)
                );
            }
        }
        let latency_s = self.latency_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "\nAt {} ms per API call (expected stage hops/s = in flight ÷ latency):\n",
            self.latency_ms
        );
        let _ = writeln!(out, "| in flight | stage hops/s | expected | ratio | workflows/s | workflow p50 | workflow p99 | overhead per stage p50 | p99 | CPU per hop | worker peak RSS |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for (in_flight, run) in &mut self.concurrency {
            let expected = f64::from(*in_flight) / latency_s;
            let l = &mut run.load;
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms | {} | {} |",
                in_flight,
                l.hops_per_sec,
                expected,
                l.hops_per_sec / expected,
                l.workflows_per_sec,
                quantile(&mut l.workflow_ms, 0.5),
                quantile(&mut l.workflow_ms, 0.99),
                quantile(&mut l.overhead_ms, 0.5),
                quantile(&mut l.overhead_ms, 0.99),
                per_hop(&l.cpu, l.hops_per_sec, self.seconds),
                run.peak_rss.map(mib).unwrap_or_else(|| "n/a".into())
            );
        }
        if let Some(store) = &self.store {
            let _ = writeln!(
                out,
                "\nStage store (sled): completed workflows of {} records each, without retention and with a retention that keeps {} workflows (swept every 1,000):\n",
                store.records_per_workflow, store.kept_workflows
            );
            let _ = writeln!(
                out,
                "| workflows written | size, no retention | size, retention | records kept |"
            );
            let _ = writeln!(out, "|---|---|---|---|");
            for (written, plain, retained, records) in &store.checkpoints {
                let _ = writeln!(
                    out,
                    "| {written} | {} | {} | {records} |",
                    mib(*plain),
                    mib(*retained)
                );
            }
        }
        if !self.takeover.is_empty() {
            let _ = writeln!(
                out,
                "\nLedger takeover: a shard's stream holding a retention window of workflows, read by a worker that never held the shard (no checkpoint), then from its checkpoint:\n"
            );
            let _ = writeln!(out, "| workflows in the window | entries | appends/s (confirmed, 500 in flight) | takeover, whole window | entries/s read | takeover from checkpoint |");
            let _ = writeln!(out, "|---|---|---|---|---|---|");
            for t in &self.takeover {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} ms | {:.0} | {:.0} ms ({} entries) |",
                    t.workflows,
                    t.entries,
                    t.appends_per_sec,
                    t.full.as_secs_f64() * 1000.0,
                    t.entries as f64 / t.full.as_secs_f64().max(1e-9),
                    t.from_checkpoint.as_secs_f64() * 1000.0,
                    t.checkpoint_entries
                );
            }
        }
        out
    }
}

/// CPU milliseconds per stage hop, by process: `worker 0.31 + RabbitMQ 0.22 + bench 0.10 ms`.
fn per_hop(cpu: &[(&'static str, Duration)], hops_per_sec: f64, seconds: u64) -> String {
    let hops = (hops_per_sec * seconds as f64).max(1.0);
    let parts: Vec<String> = cpu
        .iter()
        .map(|(label, used)| {
            let short = label.split(' ').next().unwrap_or(label);
            format!("{short} {:.2}", used.as_secs_f64() * 1000.0 / hops)
        })
        .collect();
    if parts.is_empty() {
        "n/a".into()
    } else {
        format!("{} ms", parts.join(" + "))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Cores, memory and CPU of this machine, and the broker's version.
fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown memory".into());
    let rabbit = std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "(version unknown)".into());
    format!("{cores} cores ({cpu}), {memory}, RabbitMQ {rabbit} on the same machine")
}
