//! Running workers: the admin API, `billflow status`, and reconnecting after the broker
//! drops the connection.

use crate::common;

use std::time::Duration;

use crate::common::{renewal, ChildGuard, Harness};
use billflow::contract::events::Outcome;

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn wait_for(url: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while get(url).await.0 != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_and_status_show_health_metrics_and_the_timeline() {
    let mut h = Harness::start("admin").await;
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut settings = h.worker_settings();
    settings.http_addr = Some(addr);
    let worker = h.spawn_worker_with(settings);
    wait_for(&format!("{base}/readyz"), 200).await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);

    h.publish(&renewal(
        "crm-admin",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-admin"]).await;

    let (status, body) = get(&format!("{base}/workflows/crm-admin")).await;
    assert_eq!(status, 200, "{body}");
    let timeline: billflow::runtime::admin::Timeline = serde_json::from_str(&body).unwrap();
    let stages: Vec<&str> = timeline.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "lookup_service",
            "check_favorites",
            "create_cart",
            "renew",
            "checkout",
            "tender",
            "submit"
        ]
    );
    assert!(timeline.stages.iter().all(|s| s.forwarded));
    assert_eq!(get(&format!("{base}/workflows/nope")).await.0, 404);

    let (_, metrics) = get(&format!("{base}/metrics")).await;
    for series in [
        "billflow_messages_consumed_total",
        "billflow_stage_outcomes_total{workflow=\"advancepay_renewal\",stage=\"submit\",outcome=\"completed\"}",
        "billflow_workflow_outcomes_total{workflow=\"advancepay_renewal\",outcome=\"completed\"}",
        "billflow_api_call_duration_seconds_bucket{api=\"costguard\",operation=\"SubmitCart\"",
        "billflow_in_flight",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics:\n{metrics}");
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"))
        .args(["status", "crm-admin", "--http-addr", &addr.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("command crm-admin"), "{text}");
    assert!(
        text.contains("submit") && text.contains("completed"),
        "{text}"
    );

    worker.stop().await;
}

/// A TCP proxy in front of the broker whose connections the test can cut, so one worker
/// loses its broker connection without disturbing anything else on the broker.
struct Proxy {
    addr: std::net::SocketAddr,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = links.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().unwrap().push(link);
            }
        });
        Proxy { addr, links }
    }

    fn cut(&self) -> usize {
        let links: Vec<_> = self.links.lock().unwrap().drain(..).collect();
        let n = links.len();
        for link in links {
            link.abort();
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_broker_connection_is_reestablished_and_nothing_is_lost() {
    let mut h = Harness::start("reconnect").await;
    // host:port of the broker, from amqp://user:pass@host:port/vhost
    let upstream = h
        .amqp_url
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5672")
        .to_string();
    let proxy = Proxy::start(upstream).await;
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut settings = h.worker_settings();
    settings.http_addr = Some(addr);
    settings.broker.amqp_url =
        billflow::secret::Secret::new(format!("amqp://guest:guest@{}/%2f", proxy.addr));
    let worker = h.spawn_worker_with(settings);
    wait_for(&format!("{base}/readyz"), 200).await;

    assert_eq!(proxy.cut(), 1, "the worker's one connection is cut");
    wait_for(&format!("{base}/readyz"), 503).await;
    h.publish(&renewal(
        "crm-reconnect",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    wait_for(&format!("{base}/readyz"), 200).await;
    h.wait_terminal(&["crm-reconnect"]).await;
    h.settle(Duration::from_millis(300)).await;
    let done = h
        .events_of("crm-reconnect")
        .into_iter()
        .filter(|e| e.is_terminal() && e.data.outcome == Outcome::Completed)
        .count();
    assert_eq!(done, 1);

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_stage_in_flight_before_closing() {
    let mut h = Harness::start("shutdown").await;
    h.sim_post(
        "/_sim/faults",
        serde_json::json!({"operation": "Checkout", "kind": "latency", "ms": 1500, "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-shutdown",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !h.call_counts().await.contains_key("Checkout") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGTERM while Checkout is in flight: the stage finishes and is acked; the rest of
    // the workflow waits in the queue for the next worker.
    worker.stop().await;
    assert_eq!(
        h.call_counts().await.get("ModifyCart"),
        None,
        "no new stage after the stop"
    );
    let next = h.spawn_worker();
    h.wait_terminal(&["crm-shutdown"]).await;
    assert_eq!(
        h.call_counts().await.get("Checkout"),
        Some(&1),
        "finished, not redone"
    );
    next.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_trace_continues_through_every_stage_and_event() {
    let mut h = Harness::start("trace").await;
    let worker = h.spawn_worker();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let command = renewal("crm-trace", billflow::sim::costguard::HOTLINED_SERVICE);
    let mut out = billflow::broker::Outgoing::json(
        &h.topology.commands_exchange(),
        "advancepay.renew",
        serde_json::to_vec(&command).unwrap(),
    );
    out.headers.insert(
        "traceparent".into(),
        lapin::types::AMQPValue::LongString(traceparent.to_string().into()),
    );
    h.publisher.publish(out).await.unwrap();
    h.wait_terminal(&["crm-trace"]).await;
    let events = h.events_of("crm-trace");
    assert_eq!(events.len(), 12, "11 stages and the end");
    for event in events {
        assert_eq!(
            event.traceparent.as_deref(),
            Some(traceparent),
            "{}",
            event.routing_key()
        );
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_events_dead_letter_headers_or_the_admin_api() {
    let mut h = Harness::start("secrets").await;
    let addr = free_addr();
    let identifier_password = "id-pass-9f2c41";
    let mut worker_cmd = h.worker_process();
    worker_cmd
        .env("BILLFLOW_LOG", "debug")
        .env("BILLFLOW_LOG_FORMAT", "json")
        .env("BILLFLOW_HTTP_ADDR", addr.to_string())
        .env("COSTGUARD_TOKEN", "cg-token-7d1e55");
    let mut worker = ChildGuard::spawn(&mut worker_cmd);
    wait_for(&format!("http://{addr}/readyz"), 200).await;

    let sign_up = |id: &str, accept_terms: bool| {
        serde_json::json!({"command_id": id, "type": "service_order.submit", "data": {
            "account": {"username": billflow::sim::emersion::ACTIVE_ACCOUNT_USERNAME,
                        "password": billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD},
            "service_type_id": billflow::sim::emersion::NBN_TYPE_ID,
            "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
                   "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
            "package": {"plan_id": billflow::sim::emersion::NBN_50_PLAN_ID},
            "configuration": [{"type_id": 500010, "value": "MDM"}],
            "features": [{"feature_id": 600010, "value": "203.0.113.7"}],
            "contacts": [{"type_id": 700001, "first_name": "Jane", "last_name": "Citizen"}],
            "identifier": {"username": "jane", "realm": "nbn.example.net", "password": identifier_password},
            "accept_terms": accept_terms
        }})
    };
    h.publish(&sign_up("crm-secret-ok", true)).await;
    // Fails at the terms: its dead letter carries the command (for replay) in the body.
    h.publish(&sign_up("crm-secret-dead", false)).await;
    h.publish(&renewal(
        "crm-secret-renew",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-secret-ok", "crm-secret-dead", "crm-secret-renew"])
        .await;
    assert_eq!(
        h.events_of("crm-secret-ok").last().unwrap().data.outcome,
        Outcome::Completed
    );

    let secrets = [
        "cg-token-7d1e55",
        billflow::sim::emersion::SIM_PASSWORD,
        billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD,
        identifier_password,
    ];
    let mut places: Vec<(String, String)> = Vec::new();
    for event in &h.seen {
        places.push((
            format!("event {}", event.id),
            serde_json::to_string(event).unwrap(),
        ));
    }
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    // The body keeps the command for replay, its passwords sealed.
    assert!(String::from_utf8_lossy(&dead[0].body).contains("\"sealed\""));
    for d in dead {
        places.push(("dead-letter headers".into(), format!("{:?}", d.headers)));
        places.push((
            "dead-letter body".into(),
            String::from_utf8_lossy(&d.body).into_owned(),
        ));
    }
    for id in ["crm-secret-ok", "crm-secret-dead", "crm-secret-renew"] {
        let (_, body) = get(&format!("http://{addr}/workflows/{id}")).await;
        places.push((format!("admin /workflows/{id}"), body));
    }
    let _ = std::process::Command::new("kill")
        .arg(worker.id().to_string())
        .status();
    let _ = worker.wait();
    let log = h.worker_log();
    assert!(log.lines().count() > 20, "debug logs were written");
    places.push(("worker log".into(), log));
    for (place, text) in &places {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} found in {place}");
        }
    }
}

const ADMIN_TOKEN: &str = "admin-token-5b0c8e1d47a2f9e3";

/// Status, `WWW-Authenticate` and body of a GET with an optional `Authorization` value.
async fn get_with(url: &str, authorization: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.text().await.unwrap())
}

/// `billflow status` with the given environment: (success, stdout, stderr).
fn status_cli(
    addr: std::net::SocketAddr,
    id: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"));
    cmd.args(["status", id, "--http-addr", &addr.to_string()])
        .env_remove("BILLFLOW_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_only_the_probes_answer_without_it() {
    let mut h = Harness::start("admin-auth").await;
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut settings = h.worker_settings();
    settings.http_addr = Some(addr);
    settings.admin_token = Some(billflow::secret::Secret::new(ADMIN_TOKEN));
    let worker = h.spawn_worker_with(settings.clone());
    wait_for(&format!("{base}/readyz"), 200).await;
    h.publish(&renewal(
        "crm-auth",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-auth"]).await;

    let right = format!("Bearer {ADMIN_TOKEN}");
    let wrong = "Bearer not-the-token-3f9a1c77e2";
    let refused = [
        None,
        Some(wrong),
        Some("Basic YWRtaW46YWRtaW4="),
        Some("Bearer"),
        Some(ADMIN_TOKEN),
    ];
    for path in ["/healthz", "/readyz"] {
        for authorization in refused.iter().chain([&Some(right.as_str())]) {
            let (status, _, _) = get_with(&format!("{base}{path}"), *authorization).await;
            assert_eq!(status, 200, "{path} with {authorization:?} is open");
        }
    }
    for path in [
        "/metrics",
        "/workflows/crm-auth",
        "/workflows/nope",
        "/nope",
    ] {
        for authorization in refused {
            let (status, challenge, body) = get_with(&format!("{base}{path}"), authorization).await;
            assert_eq!(status, 401, "{path} with {authorization:?}");
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{path}: WWW-Authenticate {challenge:?}"
            );
            assert!(
                !body.contains("not-the-token")
                    && !body.contains("YWRtaW46")
                    && !body.contains("crm-auth"),
                "{path}: the 401 repeats what was sent: {body}"
            );
        }
    }
    let (status, _, metrics) = get_with(&format!("{base}/metrics"), Some(&right)).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("billflow_messages_consumed_total"),
        "{metrics}"
    );
    let (status, _, body) = get_with(&format!("{base}/workflows/crm-auth"), Some(&right)).await;
    assert_eq!(status, 200, "{body}");
    let timeline: billflow::runtime::admin::Timeline = serde_json::from_str(&body).unwrap();
    assert_eq!(timeline.stages.len(), 7);
    // The scheme is case-insensitive; an unknown route is 404 only once the token is right.
    let lower = format!("bearer {ADMIN_TOKEN}");
    assert_eq!(
        get_with(&format!("{base}/workflows/crm-auth"), Some(&lower))
            .await
            .0,
        200
    );
    assert_eq!(
        get_with(&format!("{base}/workflows/nope"), Some(&right))
            .await
            .0,
        404
    );
    assert_eq!(get_with(&format!("{base}/nope"), Some(&right)).await.0, 404);

    // `billflow status` sends the token from BILLFLOW_ADMIN_TOKEN or --admin-token, and
    // says which of missing or wrong it is.
    let (ok, text, err) = status_cli(addr, "crm-auth", &[("BILLFLOW_ADMIN_TOKEN", ADMIN_TOKEN)]);
    assert!(ok, "{err}");
    assert!(
        text.contains("command crm-auth") && text.contains("submit"),
        "{text}"
    );
    let (ok, _, err) = status_cli(addr, "crm-auth", &[]);
    assert!(
        !ok && err.contains("requires the admin token") && err.contains("BILLFLOW_ADMIN_TOKEN"),
        "{err}"
    );
    let (ok, _, err) = status_cli(
        addr,
        "crm-auth",
        &[("BILLFLOW_ADMIN_TOKEN", "not-the-token-3f9a1c77e2")],
    );
    assert!(!ok && err.contains("refused the admin token"), "{err}");
    assert!(!err.contains("not-the-token"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"))
        .args([
            "status",
            "crm-auth",
            "--http-addr",
            &addr.to_string(),
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .env_remove("BILLFLOW_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    worker.stop().await;

    // BILLFLOW_METRICS_PUBLIC opens /metrics, and nothing else.
    let addr = free_addr();
    let base = format!("http://{addr}");
    settings.http_addr = Some(addr);
    settings.metrics_public = true;
    let worker = h.spawn_worker_with(settings);
    wait_for(&format!("{base}/readyz"), 200).await;
    assert_eq!(get_with(&format!("{base}/metrics"), None).await.0, 200);
    assert_eq!(
        get_with(&format!("{base}/workflows/crm-auth"), None)
            .await
            .0,
        401
    );
    assert_eq!(get_with(&format!("{base}/nope"), None).await.0, 401);
    worker.stop().await;
}

/// `billflow worker` with these admin settings, stopped at the first configuration check
/// it fails: (exit status success, stderr, whether it created its data directory).
fn worker_start(http_addr: &str, token: Option<&str>) -> (bool, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("store");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"));
    cmd.arg("worker")
        .env("BILLFLOW_HTTP_ADDR", http_addr)
        .env("BILLFLOW_DATA_DIR", &data_dir)
        .env("BILLFLOW_LOG_FORMAT", "text")
        .env(
            "BILLFLOW_SIGNING_KEY",
            billflow::contract::signing::Signer::generate_key(),
        )
        // No platform configured: a worker that passes the admin checks stops here.
        .env_remove("COSTGUARD_TOKEN")
        .env_remove("COSTGUARD_AUTHENTICATED_KEY")
        .env_remove("EMERSION_USERNAME")
        .env_remove("EMERSION_PASSWORD")
        .env_remove("BILLFLOW_ADMIN_TOKEN");
    if let Some(token) = token {
        cmd.env("BILLFLOW_ADMIN_TOKEN", token);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data_dir.exists(),
    )
}

#[test]
fn without_a_token_a_worker_refuses_a_non_loopback_admin_address() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let (ok, err, created) = worker_start(addr, None);
        assert!(!ok, "{addr}: started");
        assert!(
            err.contains("BILLFLOW_HTTP_ADDR")
                && err.contains("BILLFLOW_ADMIN_TOKEN")
                && err.contains("loopback"),
            "{addr}: {err}"
        );
        assert!(!created, "{addr}: refused before anything else started");
        // An empty or blank token is no token.
        let (ok, err, _) = worker_start(addr, Some("  "));
        assert!(
            !ok && err.contains("not a loopback address"),
            "{addr}: {err}"
        );
    }
    let (ok, err, _) = worker_start("0.0.0.0:0", Some("x9-tok"));
    assert!(!ok && err.contains("shorter than 16"), "{err}");
    assert!(!err.contains("x9-tok"), "the token is not repeated: {err}");
    // Passing the admin checks, these stop at the next one: no billing platform.
    for (addr, token) in [
        ("127.0.0.1:0", None),
        ("[::1]:0", None),
        ("0.0.0.0:0", Some(ADMIN_TOKEN)),
    ] {
        let (ok, err, _) = worker_start(addr, token);
        assert!(
            !ok && err.contains("no billing platform configured"),
            "{addr}: {err}"
        );
    }
}
