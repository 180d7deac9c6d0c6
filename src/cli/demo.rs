//! `billflow demo`: the simulator and a worker in one process, three sample renewals,
//! every event printed as it arrives, and a summary at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Subscription};
use crate::config::{
    BrokerSettings, CostGuardSettings, EmersionAuthKind, EmersionSettings, WorkerSettings,
    DEFAULT_AMQP_URL, DEFAULT_EVENTS_LOG_MAX_AGE, DEFAULT_EVENTS_LOG_MAX_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETENTION,
};
use crate::contract::command::Command;
use crate::contract::events::{CloudEvent, Outcome};
use crate::contract::signing::Signer;
use crate::engine::protect::LimitsConfig;
use crate::engine::retry::RetryConfig;
use crate::secret::Secret;
use crate::sim::{costguard as simdata, Simulator};
use crate::workflow::advancepay::Renewal;
use crate::workflow::service_order::ServiceOrder;
use crate::workflow::{registry, Workflow};

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
    kind: &'static str,
    data: serde_json::Value,
    expected: Outcome,
}

fn renewal(label: &'static str, service_number: &str, expected: Outcome) -> Sample {
    Sample {
        label,
        kind: Renewal::COMMAND_TYPE,
        data: serde_json::json!({
            "service_number": service_number,
            "order_type_id": 1, "register_id": 12, "tender_type_id": 2,
            "restore": {"order_type_id": 1013, "reason_id": 4}
        }),
        expected,
    }
}

fn sign_up(label: &'static str, data: serde_json::Value, expected: Outcome) -> Sample {
    Sample {
        label,
        kind: ServiceOrder::COMMAND_TYPE,
        data,
        expected,
    }
}

/// Three renewals and one sign-up per SQ kind, plus one that breaks a PerformSimpleSQ rule.
fn samples() -> Vec<Sample> {
    use crate::sim::emersion as em;
    let contact = serde_json::json!({"type_id": 700001, "title": "Ms", "first_name": "Jane",
        "last_name": "Citizen", "date_of_birth": "1980-01-31", "email": "jane@example.com",
        "phone": "0299998888"});
    vec![
        renewal("renew-active", simdata::ACTIVE_SERVICE, Outcome::Completed),
        renewal(
            "renew-hotlined",
            simdata::HOTLINED_SERVICE,
            Outcome::Completed,
        ),
        renewal(
            "renew-ineligible",
            simdata::INELIGIBLE_SERVICE,
            Outcome::Failed,
        ),
        sign_up(
            "signup-simple",
            serde_json::json!({
                "account": {"username": em::ACTIVE_ACCOUNT_USERNAME, "password": em::ACTIVE_ACCOUNT_PASSWORD},
                "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
                "sq": {"kind": "simple"},
                "package": {"external_name": "Business Support Basic"},
                "configuration": [{"type_id": 500001, "value": "Head Office"}, {"type_id": 500002, "value": "Gold"}],
                "contacts": [contact],
                "accept_terms": true,
                "note": {"subject": "Signed up by billflow demo", "detail": "simple SQ"},
                "payment": {"transaction_category": "CREDITCARD", "reference": "demo", "amount": "49.95", "transaction_date": "2026-11-22"}
            }),
            Outcome::Completed,
        ),
        sign_up(
            "signup-phone",
            serde_json::json!({
                "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
                "service_type_id": em::PHONE_LINE_TYPE_ID,
                "sq": {"kind": "general_phone", "phone_number": "0299998888"},
                "package": {"plan_id": em::PHONE_BASIC_PLAN_ID},
                "configuration": [{"type_id": 500020, "value": "Unlisted"}]
            }),
            Outcome::Completed,
        ),
        sign_up(
            "signup-nwb",
            serde_json::json!({
                "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
                "service_type_id": em::NBN_TYPE_ID,
                "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
                    "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
                "package": {"external_name": "NBN 50"},
                "configuration": [{"type_id": 500010, "value": "MDM-0042"}],
                "features": [{"type_id": 600010, "identifier": "203.0.113.10"}],
                "contacts": [contact],
                "identifier": {"username": "jane", "realm": "nbn.example.net", "password": "demo-pass-123"},
                "accept_terms": true
            }),
            Outcome::Completed,
        ),
        sign_up(
            "signup-bad-sq",
            serde_json::json!({
                "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
                "service_type_id": em::PHONE_LINE_TYPE_ID,
                "sq": {"kind": "simple"},
                "package": {"plan_id": em::PHONE_BASIC_PLAN_ID}
            }),
            Outcome::Failed,
        ),
    ]
}

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

    let broker_settings = BrokerSettings::local(settings.amqp_url.expose(), &settings.prefix);
    let topology = broker_settings.topology();
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
        broker: broker_settings,
        workers: 1,
        worker_id: 0,
        store_cache_mb: crate::store::DEFAULT_CACHE_MB,
        data_dir: data_dir.clone(),
        http_addr: None,
        prefetch: 16,
        max_message_bytes: 256 * 1024,
        shutdown_grace: Duration::from_secs(5),
        handback_timeout: Duration::from_secs(30),
        retry_policy: RetryConfig::default(),
        api_limits: LimitsConfig::default(),
        reconcile_delay: Duration::from_secs(5),
        retention: DEFAULT_RETENTION,
        events_log_max_age: DEFAULT_EVENTS_LOG_MAX_AGE,
        events_log_max_bytes: DEFAULT_EVENTS_LOG_MAX_BYTES,
        // The demo's worker is alone on its prefix: a key of its own.
        signing_key: Some(Secret::new(Signer::generate_key())),
        signing_key_previous: None,
        admin_token: None,
        metrics_public: false,
        currency_scale: 2,
        panic_in_stage: None,
        costguard: CostGuardSettings {
            costguard_url: sim_url.clone(),
            // Logs in to the simulator's Security Token Service, as a worker would to IDI's.
            costguard_token: Secret::default(),
            costguard_username: crate::sim::costguard::SIM_LOGIN_USERNAME.into(),
            costguard_password: Secret::new(crate::sim::costguard::SIM_LOGIN_PASSWORD),
            costguard_authenticated_key: Secret::new("AuthKey"),
            costguard_environment: "demo".into(),
            costguard_pinned_order_probes: false,
            costguard_timeout: Duration::from_secs(10),
            costguard_max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        },
        emersion: EmersionSettings {
            emersion_url: sim_url.clone(),
            // The demo's simulator serves plain HTTP only: the UsernameToken option.
            emersion_auth: EmersionAuthKind::WsSecurity,
            emersion_client_cert: None,
            emersion_client_key: None,
            emersion_ca_cert: None,
            emersion_username: crate::sim::emersion::SIM_USERNAME.into(),
            emersion_password: Secret::new(crate::sim::emersion::SIM_PASSWORD),
            emersion_timeout: Duration::from_secs(10),
            emersion_max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        },
    };
    let worker = tokio::spawn(crate::runtime::worker::run(
        worker_settings,
        shutdown.clone(),
    ));
    println!(
        "worker: prefix {}, data {}",
        settings.prefix,
        data_dir.display()
    );

    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
    let publisher = broker::Publisher::open(&connection).await?;
    let samples = samples();
    let mut expected: BTreeMap<String, &Sample> = BTreeMap::new();
    for sample in &samples {
        let command = Command::from_value(serde_json::json!({
            "command_id": format!("demo-{run_id}-{}", sample.label),
            "type": sample.kind,
            "data": sample.data,
        }))?;
        crate::cli::publish::publish(&publisher, &topology, &command).await?;
        println!("published {} ({})", command.command_id, sample.kind);
        progress.insert(command.command_id.clone(), Progress::default());
        expected.insert(command.command_id, sample);
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
                (None, Some(outputs)) => registry::named(&event.data.workflow)
                    .and_then(|w| w.summary(outputs))
                    .unwrap_or_default(),
                _ => String::new(),
            };
        } else if event.data.outcome == Outcome::Completed {
            p.stages.extend(event.data.stage.clone());
        }
    }

    println!("\nsummary ({:.1}s)", started.elapsed().as_secs_f64());
    println!(
        "{:<36} {:<14} {:>6}  detail",
        "command", "outcome", "stages"
    );
    let mut unexpected = 0;
    for (id, p) in &progress {
        let outcome = p.outcome.map(Outcome::as_str).unwrap_or("(no result)");
        if p.outcome != Some(expected[id].expected) {
            unexpected += 1;
        }
        println!("{id:<36} {outcome:<14} {:>6}  {}", p.stages.len(), p.detail);
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
    events.close().await;
    if !settings.keep {
        let channel = connection.create_channel().await?;
        topology.delete(&channel).await?;
        let _ = channel.close(200, "clean-up done".into()).await;
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
        "+{:>5.2}s  {:<60} {}  {}",
        started.elapsed().as_secs_f64(),
        event.routing_key(),
        event.subject,
        detail
    );
}
