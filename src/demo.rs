//! `billflow demo`: the simulator and a worker in one process, three sample renewals,
//! every event printed as it arrives, and a summary at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Subscription, Topology};
use crate::command::Command;
use crate::config::{BrokerSettings, CostGuardSettings, WorkerSettings, DEFAULT_AMQP_URL};
use crate::engine::events::{CloudEvent, Outcome};
use crate::engine::retry::RetryPolicy;
use crate::secret::Secret;
use crate::sim::{costguard as simdata, Simulator};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoSettings {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    pub amqp_url: Secret,
    /// Prefix of the demo's exchanges and queues (deleted at the end unless --keep).
    #[arg(long, env = "BILLFLOW_DEMO_PREFIX", default_value = "billflow-demo")]
    pub prefix: String,
    /// Address of the in-process simulator.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_addr: SocketAddr,
    /// Give up waiting for the workflows after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Keep the demo's queues and exchanges afterwards.
    #[arg(long)]
    pub keep: bool,
}

struct Sample {
    label: &'static str,
    service_number: &'static str,
    expected: Outcome,
}

const SAMPLES: [Sample; 3] = [
    Sample {
        label: "active",
        service_number: simdata::ACTIVE_SERVICE,
        expected: Outcome::Completed,
    },
    Sample {
        label: "hotlined",
        service_number: simdata::HOTLINED_SERVICE,
        expected: Outcome::Completed,
    },
    Sample {
        label: "ineligible",
        service_number: simdata::INELIGIBLE_SERVICE,
        expected: Outcome::Failed,
    },
];

#[derive(Default)]
struct Progress {
    stages: Vec<String>,
    outcome: Option<Outcome>,
    detail: String,
}

pub async fn run(settings: DemoSettings) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown = CancellationToken::new();

    let listener = tokio::net::TcpListener::bind(settings.sim_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.sim_addr))?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let sim = tokio::spawn(Simulator::new().serve(listener, shutdown.clone()));
    println!("simulator: {sim_url}");

    let topology = Topology::new(&settings.prefix);
    let connection = broker::connect(settings.amqp_url.expose(), "billflow-demo")
        .await
        .context("billflow demo needs RabbitMQ: run ./deploy/quickstart.sh, or set AMQP_URL")?;
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    let mut events = Subscription::open(&connection, &topology.events_exchange(), "#").await?;

    let data_dir = std::env::temp_dir().join(format!(
        "billflow-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    let worker_settings = WorkerSettings {
        broker: BrokerSettings {
            amqp_url: settings.amqp_url.clone(),
            prefix: settings.prefix.clone(),
        },
        data_dir: data_dir.clone(),
        prefetch: 16,
        max_message_bytes: 256 * 1024,
        shutdown_grace_ms: 5_000,
        retry_policy: RetryPolicy::default(),
        costguard: CostGuardSettings {
            costguard_url: sim_url.clone(),
            costguard_token: Secret::new("demo-token"),
            costguard_authenticated_key: Secret::new("AuthKey"),
            costguard_environment: "demo".into(),
            costguard_timeout_ms: 10_000,
        },
    };
    let worker = tokio::spawn(crate::worker::run(worker_settings, shutdown.clone()));
    println!(
        "worker: prefix {}, data {}",
        settings.prefix,
        data_dir.display()
    );

    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
    let mut expected: BTreeMap<String, (&Sample, Outcome)> = BTreeMap::new();
    for sample in &SAMPLES {
        let command = Command::from_value(serde_json::json!({
            "command_id": format!("demo-{run_id}-{}", sample.label),
            "type": "advancepay.renew",
            "data": {
                "service_number": sample.service_number,
                "order_type_id": 1, "register_id": 12, "tender_type_id": 2,
                "restore": {"order_type_id": 1013, "reason_id": 4}
            }
        }))?;
        crate::publish::publish(&connection, &topology, &command).await?;
        println!(
            "published {} ({} service {})",
            command.command_id, sample.label, sample.service_number
        );
        progress.insert(command.command_id.clone(), Progress::default());
        expected.insert(command.command_id, (sample, sample.expected));
    }
    println!();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.timeout_secs);
    while progress.values().any(|p| p.outcome.is_none()) {
        let body = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => break,
            Ok(None) => bail!("lost the broker connection while waiting for events"),
            Ok(Some(body)) => body?,
        };
        let Ok(event) = serde_json::from_slice::<CloudEvent>(&body) else {
            continue;
        };
        print_event(started, &event);
        let Some(p) = progress.get_mut(&event.subject) else {
            continue;
        };
        if event.is_terminal() {
            p.outcome = Some(event.data.outcome);
            p.detail = match (&event.data.error, &event.data.output) {
                (Some(error), _) => error.clone(),
                (None, Some(outputs)) => match &outputs["tender"]["amount"] {
                    serde_json::Value::String(amount) => format!("tendered {amount}"),
                    _ => String::new(),
                },
                _ => String::new(),
            };
        } else if event.data.outcome == Outcome::Completed {
            p.stages.extend(event.data.stage.clone());
        }
    }

    println!("\nsummary ({:.1}s)", started.elapsed().as_secs_f64());
    println!(
        "{:<32} {:<11} {:<14} {:>6}  detail",
        "command", "service", "outcome", "stages"
    );
    let mut unexpected = 0;
    for (id, p) in &progress {
        let (sample, want) = &expected[id];
        let outcome = p.outcome.map(Outcome::as_str).unwrap_or("(no result)");
        if p.outcome != Some(*want) {
            unexpected += 1;
        }
        println!(
            "{id:<32} {:<11} {outcome:<14} {:>6}  {}",
            sample.label,
            p.stages.len(),
            p.detail
        );
    }
    if let Ok(calls) = reqwest::get(format!("{sim_url}/_sim/calls")).await {
        if let Ok(calls) = calls.json::<serde_json::Value>().await {
            println!("\nsimulator calls: {}", calls["counts"]);
        }
    }

    shutdown.cancel();
    match worker.await {
        Ok(Err(e)) => eprintln!("worker stopped with an error: {e}"),
        Err(e) => eprintln!("worker task failed: {e}"),
        Ok(Ok(())) => {}
    }
    let _ = sim.await;
    if !settings.keep {
        topology.delete(&connection.create_channel().await?).await?;
    }
    let _ = connection.close(200, "demo done".into()).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    if unexpected > 0 {
        bail!("{unexpected} workflow(s) did not end as expected");
    }
    Ok(())
}

fn print_event(started: Instant, event: &CloudEvent) {
    let detail = match (&event.data.error, event.data.outcome) {
        (Some(error), _) => error.clone(),
        (None, Outcome::Retrying) => {
            format!("next try in {} ms", event.data.next_delay_ms.unwrap_or(0))
        }
        _ => String::new(),
    };
    println!(
        "+{:>5.2}s  {:<58} {}  {}",
        started.elapsed().as_secs_f64(),
        event.routing_key(),
        event.subject,
        detail
    );
}
