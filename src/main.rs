use std::io::IsTerminal;
use std::path::PathBuf;

/// glibc's malloc was a fifth of the worker's CPU time per stage under load (perf); mimalloc
/// takes much less of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use billflow::config::layers::{self, LoadError};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use billflow::config::{BrokerSettings, WorkerSettings};

/// billflow drives telecom billing platforms (CostGuard, Emersion) from RabbitMQ:
/// CRM systems publish commands, workers run every billing call as its own durable,
/// retryable stage and publish an event after each stage and at the end.
///
/// Settings come from flags, then variables, then the TOML file of --config /
/// BILLFLOW_CONFIG, then built-in defaults.
#[derive(Parser)]
#[command(name = "billflow", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Consume commands and run their workflows until SIGTERM/SIGINT.
    Worker(Box<WorkerSettings>),
    /// Print the configuration a worker would run with (flags, variables and the --config
    /// file applied, defaults filled in) as the TOML --config takes, secrets masked.
    Config(Box<WorkerSettings>),
    /// Serve the stateful billing-platform simulator (CostGuard and Emersion) for local runs and tests.
    Sim(billflow::cli::sim::SimSettings),
    /// Publish a command (JSON file, or - for stdin) with a broker confirm; prints its command_id.
    ///
    /// The document is `{"command_id": "...", "type": "advancepay.renew", "data": {...}}`;
    /// a missing command_id is generated. It is validated before it is sent.
    Publish {
        /// Path of the command document, or - to read standard input.
        file: PathBuf,
        #[command(flatten)]
        broker: BrokerSettings,
    },
    /// Print a RabbitMQ definitions file for this prefix and shard count: exchanges,
    /// queues, bindings, and the delivery limit, dead-lettering and delay TTLs as
    /// policies.
    ///
    /// Load it at broker boot (`load_definitions`) or with `rabbitmqctl
    /// import_definitions FILE`, and run the workers with BILLFLOW_QUEUE_ARGUMENTS=false so
    /// the policies govern. `deploy/rabbitmq/definitions.json` is its output for the
    /// defaults.
    Definitions {
        /// Virtual host; default: the one in AMQP_URL.
        #[arg(long)]
        vhost: Option<String>,
        #[command(flatten)]
        broker: BrokerSettings,
    },
    /// Inspect, fix, replay and purge dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: billflow::cli::dlq::DlqCommand,
        #[command(flatten)]
        broker: BrokerSettings,
        /// The workers' BILLFLOW_SIGNING_KEY: a replayed or edited stage is signed with it
        /// (replaying a command needs no key).
        #[arg(
            long,
            env = "BILLFLOW_SIGNING_KEY",
            hide_env_values = true,
            global = true
        )]
        signing_key: Option<billflow::secret::Secret>,
    },
    /// Print a command's stages as this worker recorded them: a timeline with times,
    /// attempts, outputs and errors (from the worker's admin API).
    Status {
        /// The command_id.
        command_id: String,
        /// The worker's admin API address.
        #[arg(long, env = "BILLFLOW_HTTP_ADDR", default_value = "127.0.0.1:9090")]
        http_addr: String,
        /// The admin API's bearer token (the worker's BILLFLOW_ADMIN_TOKEN); sent as
        /// `Authorization: Bearer`.
        #[arg(long, env = "BILLFLOW_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<billflow::secret::Secret>,
    },
    /// Run the simulator and a worker in this process, publish sample renewals (Active,
    /// Hotlined, ineligible) and sign-ups (each SQ kind, and one that breaks an SQ rule),
    /// print every event as it arrives and a summary.
    Demo(billflow::cli::demo::DemoSettings),
    /// Measure billflow against the broker at AMQP_URL and an in-process simulator, and
    /// print the results as Markdown tables.
    ///
    /// In one run: the broker's ceiling (a bare consume → confirmed publish → ack loop on a
    /// quorum queue); renewals through a `billflow worker` process at zero API latency
    /// (stage hops/s, workflows/s, the ratio to the ceiling, where a stage's time goes);
    /// renewals at --latency-ms per call with each --in-flight count (throughput against
    /// in flight ÷ latency, p50/p99 workflow latency, billflow's time per stage above the
    /// API's, the worker's peak RSS); and the stage store's size for --store-workflows
    /// completed workflows before and after a retention sweep. Takes about
    /// (2 + number of --in-flight values) × 1.25 × --seconds, plus the store part.
    /// Queues it declares are deleted at the end.
    Bench(billflow::bench::BenchSettings),
}

fn init_tracing(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BILLFLOW_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| billflow::redact::RedactingWriter(std::io::stderr()));
    // Readable text for people at a terminal, JSON lines for log collectors.
    let json = match std::env::var("BILLFLOW_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

/// Cancels the token on SIGINT or SIGTERM.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(start());
    // Dropping a runtime waits for its blocking tasks without limit. Once a `dlq edit` was
    // seen done, its broker connection closed, yet its process never exited: whatever is
    // left running when the command is done gets a few seconds, not forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

async fn start() -> std::process::ExitCode {
    let cli = match layers::parse::<Cli>(std::env::args_os()) {
        Ok(parsed) => {
            // Whatever this process prints, the secrets it was given are masked in it.
            billflow::redact::register(parsed.secrets);
            parsed.value
        }
        Err(LoadError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    billflow::redact::register_from_env();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "Error: {}",
                billflow::redact::global().redact(&format!("{e:?}"))
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Worker(settings) => {
            init_tracing("info");
            billflow::runtime::worker::run(*settings, shutdown_on_signals()).await?;
        }
        Commands::Config(settings) => print!("{}", settings.to_toml()?),
        Commands::Sim(settings) => {
            init_tracing("info");
            billflow::cli::sim::run(settings, shutdown_on_signals()).await?;
        }
        Commands::Publish {
            file,
            broker: settings,
        } => billflow::cli::publish::run(&file, &settings).await?,
        Commands::Definitions {
            vhost,
            broker: settings,
        } => billflow::cli::definitions::run(vhost, &settings)?,
        Commands::Dlq {
            command,
            broker: settings,
            signing_key,
        } => billflow::cli::dlq::run(command, &settings, signing_key.as_ref()).await?,
        Commands::Status {
            command_id,
            http_addr,
            admin_token,
        } => billflow::cli::status::run(&http_addr, &command_id, admin_token.as_ref()).await?,
        Commands::Bench(settings) => {
            init_tracing("warn");
            billflow::bench::run(settings).await?;
        }
        Commands::Demo(settings) => {
            // The demo prints events on stdout; only problems are logged.
            init_tracing("error");
            billflow::cli::demo::run(settings).await?;
        }
    }
    Ok(())
}
