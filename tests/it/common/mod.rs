//! Test harness: a real RabbitMQ (AMQP_URL, or a testcontainers one where Docker runs),
//! the simulator in-process, a unique prefix and data dir per test, and clean-up when the
//! harness drops (also when the test panics).
#![allow(dead_code)] // the chaos suite includes this module too and uses a part of it

pub mod certs;
pub mod child;
pub mod fleet;
pub mod sim_server;
mod teardown;
pub mod workload;

use std::collections::BTreeMap;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use billflow::broker::{self, Outgoing, Publisher, Subscription, Topology};
use billflow::config::{
    BrokerSettings, CostGuardSettings, EmersionAuthKind, EmersionSettings, WorkerSettings,
    DEFAULT_AMQP_URL, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETENTION,
};
use billflow::contract::envelope::Envelope;
use billflow::contract::events::CloudEvent;
use billflow::engine::protect::LimitsConfig;
use billflow::engine::retry::{RetryConfig, RetryPolicy};
use billflow::secret::Secret;
use billflow::sim::Simulator;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use child::ChildGuard;

pub const WAIT: Duration = Duration::from_secs(60);

/// Reconcile delay of test workers: longer than any latency a test injects (3 s).
pub const RECONCILE_DELAY_MS: u64 = 3_500;

/// Shard queues of a test's prefix: more than one, so routing by command id is exercised,
/// few, so tests declare few queues.
pub const SHARDS: u16 = 2;

static BROKER_URL: OnceCell<String> = OnceCell::const_new();

/// The broker every test uses: `AMQP_URL` (default localhost) if it answers; else, where
/// a Docker engine runs, a RabbitMQ container; else the test fails saying how to get one.
pub async fn broker_url() -> String {
    BROKER_URL
        .get_or_init(|| async {
            let url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_string());
            if let Ok(conn) = broker::connect(&url, "billflow-test-probe").await {
                let _ = conn.close(200, "probe".into()).await;
                return url;
            }
            if docker_engine_available() {
                return start_container().await;
            }
            panic!(
                "no RabbitMQ answers at {} and no Docker engine is available. Start one with \
                 `rabbitmq-server -detached` (Debian package rabbitmq-server; `bash .ci/run` \
                 installs it), or `docker run -d -p 5672:5672 rabbitmq:3`, or point AMQP_URL \
                 at a broker.",
                billflow::secret::redact_url(&url)
            )
        })
        .await
        .clone()
}

fn docker_engine_available() -> bool {
    Process::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn start_container() -> String {
    use testcontainers_modules::rabbitmq::RabbitMq;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    let container = RabbitMq::default()
        .start()
        .await
        .expect("starting a RabbitMQ container");
    let port = container
        .get_host_port_ipv4(5672)
        .await
        .expect("RabbitMQ container port");
    // The container lives as long as this test process; testcontainers reaps it after.
    std::mem::forget(container);
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BILLFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// One test's world. Dropping it deletes its queues and exchanges and stops its
/// simulator; its data dir goes with it. A test binds its workers (in-process or processes)
/// after it, so they drop, and stop, first: a live worker would declare the queues again.
pub struct Harness {
    pub prefix: String,
    pub shards: u16,
    pub topology: Topology,
    pub amqp_url: String,
    pub connection: Connection,
    pub publisher: Publisher,
    /// The simulator's plain listener: CostGuard, `/_sim`, Emersion with a UsernameToken.
    pub sim_url: String,
    /// The simulator's TLS listener, which requires a client certificate: Emersion.
    pub sim_tls_url: String,
    /// This test's certificates (in its data dir).
    pub certs: certs::Files,
    pub data_dir: tempfile::TempDir,
    pub events: Subscription,
    pub seen: Vec<CloudEvent>,
    /// The stage-signing key of this test's workers.
    pub signing_key: String,
    sim_shutdown: CancellationToken,
    http: reqwest::Client,
    /// Queues a test declared beyond the topology, deleted with it.
    extra_queues: Vec<String>,
}

pub struct Taker {
    channel: lapin::Channel,
    consumer: lapin::Consumer,
}

impl Taker {
    pub async fn next(&mut self) -> Option<Result<lapin::message::Delivery, lapin::Error>> {
        futures_util::StreamExt::next(&mut self.consumer).await
    }

    /// Closes the channel: what it has not acked goes back to the queue, redelivered.
    pub async fn close(self) {
        let _ = self.channel.close(200, "taker done".into()).await;
    }
}

pub struct InProcessWorker {
    shutdown: CancellationToken,
    /// Taken by `stop`.
    task: Option<JoinHandle<Result<(), billflow::runtime::worker::WorkerError>>>,
}

impl InProcessWorker {
    /// A graceful stop: in-flight stages finish, and the worker must end without error.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("worker task")
                .expect("worker stopped cleanly");
        }
    }
}

/// A test that did not `stop` its worker (it failed): the worker cannot be awaited here,
/// so it is cancelled and aborted before the harness deletes its queues.
impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Harness {
    pub async fn start(name: &str) -> Harness {
        Harness::start_with(name, SHARDS, true).await
    }

    /// A harness whose topology has `shards` shard queues, declared with or without the
    /// arguments that policies may carry instead.
    pub async fn start_with(name: &str, shards: u16, queue_arguments: bool) -> Harness {
        init_logs();
        let amqp_url = broker_url().await;
        let prefix = format!(
            "bftest-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let topology = Topology::new(&prefix)
            .with_shards(shards)
            .with_queue_arguments(queue_arguments);
        let connection = broker::connect(&amqp_url, "billflow-test")
            .await
            .expect("connect");
        topology
            .declare(&connection.create_channel().await.expect("channel"))
            .await
            .expect("declare topology");
        let events = Subscription::open(&connection, &topology.events_exchange(), "#")
            .await
            .expect("subscribe to events");
        let publisher = Publisher::open(&connection).await.expect("publisher");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sim");
        let sim_url = format!("http://{}", listener.local_addr().expect("sim addr"));
        let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sim TLS");
        let sim_tls_url = format!("https://{}", tls_listener.local_addr().expect("sim addr"));
        let sim_shutdown = CancellationToken::new();
        let sim = Simulator::new();
        tokio::spawn(sim.clone().serve(listener, sim_shutdown.clone()));
        tokio::spawn(sim.serve_tls(
            tls_listener,
            certs::pems().server_config(),
            sim_shutdown.clone(),
        ));
        let data_dir = tempfile::tempdir().expect("data dir");
        let certs = certs::pems().write(&data_dir.path().join("certs"));

        Harness {
            prefix,
            shards,
            topology,
            amqp_url,
            connection,
            publisher,
            sim_url,
            sim_tls_url,
            certs,
            data_dir,
            events,
            seen: Vec::new(),
            signing_key: billflow::contract::signing::Signer::generate_key(),
            sim_shutdown,
            http: reqwest::Client::new(),
            extra_queues: Vec::new(),
        }
    }

    /// Deletes `queue`, which the test declared, with the harness.
    pub fn delete_on_drop(&mut self, queue: &str) {
        self.extra_queues.push(queue.to_string());
    }

    /// A durable queue `<prefix>.<suffix>` of `queue_type` (`quorum`, `stream`), deleted
    /// with the harness.
    pub async fn declare_queue(&mut self, suffix: &str, queue_type: &str) -> String {
        let name = format!("{}.{suffix}", self.prefix);
        self.delete_on_drop(&name);
        let channel = self.connection.create_channel().await.expect("channel");
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.into()),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(name.as_str().into(), durable, args)
            .await
            .expect("queue.declare");
        name
    }

    /// A durable, replicated capture of every event (a quorum queue bound to the events
    /// exchange): it outlives broker restarts and the loss of a node.
    pub async fn capture_events(&mut self, suffix: &str) -> String {
        let name = self.declare_queue(suffix, "quorum").await;
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_bind(
                name.as_str().into(),
                self.topology.events_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.bind");
        name
    }

    /// Signs stage messages as this test's workers do.
    pub fn signer(&self) -> billflow::contract::signing::Signer {
        billflow::contract::signing::Signer::from_keys(Some(&self.signing_key), None)
            .expect("a generated key is long enough")
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            broker: BrokerSettings {
                amqp_url: Secret::new(&self.amqp_url),
                prefix: self.prefix.clone(),
                shards: self.shards,
                queue_arguments: self.topology.queue_arguments,
            },
            workers: 1,
            worker_id: 0,
            store_cache_mb: billflow::store::DEFAULT_CACHE_MB,
            data_dir: self.data_dir.path().join("store"),
            http_addr: None,
            prefetch: 16,
            max_message_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
            handback_timeout: Duration::from_secs(30),
            retry_policy: RetryConfig {
                default: RetryPolicy {
                    quick_delay: Duration::from_millis(20),
                    initial_delay: Duration::from_millis(500),
                    ..RetryPolicy::default()
                },
                stages: Default::default(),
            },
            api_limits: LimitsConfig::default(),
            reconcile_delay: Duration::from_millis(RECONCILE_DELAY_MS),
            retention: DEFAULT_RETENTION,
            events_log_max_age: billflow::config::DEFAULT_EVENTS_LOG_MAX_AGE,
            events_log_max_bytes: billflow::config::DEFAULT_EVENTS_LOG_MAX_BYTES,
            signing_key: Some(Secret::new(&self.signing_key)),
            signing_key_previous: None,
            admin_token: None,
            metrics_public: false,
            currency_scale: 2,
            panic_in_stage: None,
            costguard: CostGuardSettings {
                costguard_url: self.sim_url.clone(),
                costguard_token: Secret::new("test-token"),
                costguard_username: String::new(),
                costguard_password: Secret::default(),
                costguard_authenticated_key: Secret::new("AuthKey"),
                costguard_environment: "test".into(),
                costguard_pinned_order_probes: false,
                costguard_timeout: Duration::from_secs(10),
                costguard_max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            },
            emersion: EmersionSettings {
                emersion_url: self.sim_tls_url.clone(),
                emersion_auth: EmersionAuthKind::Certificate,
                emersion_client_cert: Some(self.certs.client_cert.clone()),
                emersion_client_key: Some(self.certs.client_key.clone()),
                emersion_ca_cert: Some(self.certs.ca.clone()),
                emersion_username: String::new(),
                emersion_password: Secret::default(),
                emersion_timeout: Duration::from_secs(10),
                emersion_max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            },
        }
    }

    pub fn spawn_worker(&self) -> InProcessWorker {
        self.spawn_worker_with(self.worker_settings())
    }

    pub fn spawn_worker_with(&self, settings: WorkerSettings) -> InProcessWorker {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(billflow::runtime::worker::run(settings, shutdown.clone()));
        InProcessWorker {
            shutdown,
            task: Some(task),
        }
    }

    /// `billflow worker` as its own process on this test's prefix and data dir.
    pub fn spawn_worker_process(&self) -> ChildGuard {
        ChildGuard::spawn(&mut self.worker_process())
    }

    /// The `billflow worker` command of this test, ready to spawn.
    pub fn worker_process(&self) -> Process {
        let settings = self.worker_settings();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("worker.log"))
            .expect("worker log");
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_billflow"));
        cmd.arg("worker")
            .env("AMQP_URL", &self.amqp_url)
            .env("BILLFLOW_PREFIX", &self.prefix)
            .env("BILLFLOW_SHARDS", self.shards.to_string())
            .env(
                "BILLFLOW_QUEUE_ARGUMENTS",
                self.topology.queue_arguments.to_string(),
            )
            .env("BILLFLOW_DATA_DIR", &settings.data_dir)
            .env("BILLFLOW_LOG_FORMAT", "text")
            .env(
                "BILLFLOW_RECONCILE_DELAY_MS",
                RECONCILE_DELAY_MS.to_string(),
            )
            .env(
                "BILLFLOW_RETRY_POLICY",
                r#"{"quick_delay_ms": 20, "initial_delay_ms": 500}"#,
            )
            .env("COSTGUARD_URL", &self.sim_url)
            .env("BILLFLOW_SIGNING_KEY", &self.signing_key)
            .env("COSTGUARD_TOKEN", "test-token")
            .env("COSTGUARD_AUTHENTICATED_KEY", "AuthKey")
            .env("COSTGUARD_ENVIRONMENT", "test")
            .env("EMERSION_URL", &self.sim_tls_url)
            .env("EMERSION_CLIENT_CERT", &self.certs.client_cert)
            .env("EMERSION_CLIENT_KEY", &self.certs.client_key)
            .env("EMERSION_CA_CERT", &self.certs.ca)
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// Switches a worker command to Emersion's UsernameToken option, on the plain listener.
    pub fn use_ws_security(&self, cmd: &mut Process) {
        cmd.env("EMERSION_AUTH", "ws-security")
            .env("EMERSION_URL", &self.sim_url)
            .env("EMERSION_USERNAME", billflow::sim::emersion::SIM_USERNAME)
            .env("EMERSION_PASSWORD", billflow::sim::emersion::SIM_PASSWORD);
    }

    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("worker.log")).unwrap_or_default()
    }

    /// Publishes a command to the commands exchange, as a CRM does.
    pub async fn publish(&self, command: &Value) {
        let kind = command["type"].as_str().unwrap_or("unknown").to_string();
        self.publish_raw(&kind, serde_json::to_vec(command).unwrap(), None)
            .await;
    }

    pub async fn publish_raw(&self, routing_key: &str, body: Vec<u8>, content_type: Option<&str>) {
        let mut out = Outgoing::json(&self.topology.commands_exchange(), routing_key, body);
        if let Some(ct) = content_type {
            out.content_type = ct.to_string();
        }
        self.publisher.publish(out).await.expect("publish command");
    }

    /// Collects events until every command in `ids` has a terminal event; returns them all.
    pub async fn wait_terminal(&mut self, ids: &[&str]) -> Vec<CloudEvent> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let done = ids.iter().all(|id| {
                self.seen
                    .iter()
                    .any(|e| e.subject == *id && e.is_terminal())
            });
            if done {
                return self.seen.clone();
            }
            let body = tokio::time::timeout_at(deadline, self.events.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for terminal events of {ids:?}; seen: {:#?}",
                        self.seen
                            .iter()
                            .map(|e| e.routing_key())
                            .collect::<Vec<_>>()
                    )
                })
                .expect("events subscription ended")
                .expect("event delivery");
            let event: CloudEvent = serde_json::from_slice(&body).expect("event is a CloudEvent");
            self.seen.push(event);
        }
    }

    /// A consumer of `queue` (one unacked delivery at a time); basic.get cannot read the
    /// shard queues, which have a single active consumer.
    pub async fn consume(&self, queue: &str) -> Taker {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .basic_qos(1, BasicQosOptions::default())
            .await
            .expect("qos");
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Taker { channel, consumer }
    }

    /// Reads at most one event, waiting up to `wait` for it.
    pub async fn poll_event(&mut self, wait: Duration) {
        if let Ok(Some(body)) = tokio::time::timeout(wait, self.events.next()).await {
            let body = body.expect("event delivery");
            let event: CloudEvent = serde_json::from_slice(&body).expect("event is a CloudEvent");
            self.seen.push(event);
        }
    }

    /// Reads events until none has arrived for `quiet`: what a late duplicate would publish.
    pub async fn settle(&mut self, quiet: Duration) {
        while let Ok(Some(body)) = tokio::time::timeout(quiet, self.events.next()).await {
            let body = body.expect("event delivery");
            let event: CloudEvent = serde_json::from_slice(&body).expect("event is a CloudEvent");
            self.seen.push(event);
        }
    }

    /// Events for one command, in arrival order.
    /// The command's one terminal event; fails the test unless there is exactly one.
    pub fn terminal(&self, id: &str) -> CloudEvent {
        let terminals: Vec<&CloudEvent> = self
            .events_of(id)
            .into_iter()
            .filter(|e| e.is_terminal())
            .collect();
        assert_eq!(
            terminals.len(),
            1,
            "exactly one terminal event for {id}: {terminals:?}"
        );
        terminals[0].clone()
    }

    pub fn events_of(&self, id: &str) -> Vec<&CloudEvent> {
        self.seen.iter().filter(|e| e.subject == id).collect()
    }

    pub async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim_url))
            .send()
            .await
            .expect("sim request")
            .json()
            .await
            .expect("sim JSON")
    }

    pub async fn sim_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.sim_url))
            .json(&body)
            .send()
            .await
            .expect("sim request");
        assert!(
            response.status().is_success(),
            "sim {path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Calls the simulator saw, by operation.
    pub async fn call_counts(&self) -> BTreeMap<String, u64> {
        let calls = self.sim_get("/_sim/calls").await;
        serde_json::from_value(calls["counts"].clone()).unwrap_or_default()
    }

    /// Every call the simulator saw, in order.
    pub async fn calls(&self) -> Vec<Value> {
        let calls = self.sim_get("/_sim/calls").await;
        calls["calls"].as_array().cloned().unwrap_or_default()
    }

    /// The operations the simulator saw, in order.
    pub async fn call_sequence(&self) -> Vec<String> {
        self.calls()
            .await
            .iter()
            .map(|c| c["operation"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn call_bodies(&self, operation: &str) -> Vec<String> {
        self.calls()
            .await
            .iter()
            .filter(|c| c["operation"] == operation)
            .map(|c| c["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Takes every message from the dead queue.
    pub async fn drain_dead(&self) -> Vec<Dead> {
        let channel = self.connection.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Some(message) = channel
            .basic_get(
                self.topology.dead_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .expect("basic.get")
        {
            let headers = message.delivery.properties.headers().as_ref();
            let dead = Dead {
                envelope: Envelope::of(headers),
                headers: header_strings(headers),
                body: message.delivery.data.clone(),
            };
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            out.push(dead);
        }
        out
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.sim_shutdown.cancel();
        teardown::delete(&self.amqp_url, &self.topology, &self.extra_queues);
    }
}

/// A message taken from the dead queue.
#[derive(Debug)]
pub struct Dead {
    /// Its `x-billflow-*` headers, read as the worker and `billflow dlq` read them.
    pub envelope: Envelope,
    /// Every header as text, for the checks that none holds a secret.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

fn header_strings(headers: Option<&FieldTable>) -> BTreeMap<String, String> {
    headers
        .map(|h| {
            h.inner()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        AMQPValue::LongString(s) => {
                            String::from_utf8_lossy(s.as_bytes()).into_owned()
                        }
                        AMQPValue::ShortString(s) => s.to_string(),
                        AMQPValue::LongLongInt(n) => n.to_string(),
                        other => format!("{other:?}"),
                    };
                    (k.to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A renewal command for `service_number`, restore requested.
/// Runs `rabbitmqctl` against the broker under test and returns its output; tests that
/// need it are skipped with BILLFLOW_TEST_NO_RABBITMQCTL=1 where it cannot reach that
/// broker.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (or set BILLFLOW_TEST_NO_RABBITMQCTL=1 to skip this test)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the writer (leader) process of `stream`; the stream coordinator starts a new one,
/// so every publisher to the stream sees a leader change.
pub fn kill_stream_leader(stream: &str) {
    let expr = format!(
        "{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"{stream}\">>)), \
         exit(amqqueue:get_pid(Q), kill)."
    );
    rabbitmqctl(&["eval", &expr]);
}

pub fn renewal(command_id: &str, service_number: &str) -> Value {
    serde_json::json!({
        "command_id": command_id,
        "type": "advancepay.renew",
        "data": {
            "service_number": service_number,
            "order_type_id": 1, "register_id": 12, "tender_type_id": 2,
            "environment": "test",
            "restore": {"order_type_id": 1013, "reason_id": 4}
        }
    })
}

/// `billflow dlq ARGS` against the harness's broker and prefix: exit code, stdout, stderr.
pub fn dlq_code(h: &Harness, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_billflow"))
        .arg("dlq")
        .args(args)
        .env("AMQP_URL", &h.amqp_url)
        .env("BILLFLOW_PREFIX", &h.prefix)
        .env("BILLFLOW_SHARDS", h.shards.to_string())
        .env("BILLFLOW_SIGNING_KEY", &h.signing_key)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same, with success in place of the exit code.
pub fn dlq_cli(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let (code, stdout, stderr) = dlq_code(h, args);
    (code == Some(0), stdout, stderr)
}
