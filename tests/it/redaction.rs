//! Platforms that echo the credential they were sent: the token and passwords reach no
//! log line, event, dead letter (headers or body), admin API answer, `dlq show`/`list`
//! output or `billflow status` output. A `billflow worker` process, real RabbitMQ, the
//! simulator.

use std::process::Command as Process;
use std::time::Duration;

use crate::common::{renewal, ChildGuard, Harness};
use serde_json::json;

const TOKEN: &str = "cg-echo-token-7f3a91c2";
const ADMIN_TOKEN: &str = "admin-echo-token-5d27e0aa";
const IDENTIFIER_PASSWORD: &str = "id-pass-echo-b81f";

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn admin_get(url: &str) -> (u16, String) {
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    match answer {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

fn cli(h: &Harness, args: &[&str]) -> String {
    let out = Process::new(env!("CARGO_BIN_EXE_billflow"))
        .args(args)
        .env("AMQP_URL", &h.amqp_url)
        .env("BILLFLOW_PREFIX", &h.prefix)
        .env("BILLFLOW_SHARDS", h.shards.to_string())
        .env("BILLFLOW_SIGNING_KEY", &h.signing_key)
        .env("BILLFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("COSTGUARD_TOKEN", TOKEN)
        .env("EMERSION_PASSWORD", billflow::sim::emersion::SIM_PASSWORD)
        .output()
        .expect("billflow runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sign_up(id: &str) -> serde_json::Value {
    json!({"command_id": id, "type": "service_order.submit", "data": {
        "account": {"username": billflow::sim::emersion::ACTIVE_ACCOUNT_USERNAME,
                    "password": billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD},
        "service_type_id": billflow::sim::emersion::NBN_TYPE_ID,
        "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
               "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
        "package": {"plan_id": billflow::sim::emersion::NBN_50_PLAN_ID},
        "identifier": {"username": "jane", "realm": "nbn.example.net", "password": IDENTIFIER_PASSWORD},
        "accept_terms": true}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_are_masked_everywhere_they_could_leave() {
    let mut h = Harness::start("echo").await;
    let addr = free_addr();
    let mut worker_cmd = h.worker_process();
    worker_cmd
        .env("BILLFLOW_LOG", "debug")
        .env("BILLFLOW_LOG_FORMAT", "json")
        .env("BILLFLOW_HTTP_ADDR", addr.to_string())
        .env("BILLFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("COSTGUARD_TOKEN", TOKEN);
    // The Emersion password is what the simulator echoes: the worker must know it.
    h.use_ws_security(&mut worker_cmd);
    let worker = ChildGuard::spawn(&mut worker_cmd);

    // Each platform format that can carry the echo, one command each.
    let cases = [
        (
            "crm-echo-rest",
            "ServiceNumberDetail",
            json!({"status": 401}),
        ),
        ("crm-echo-fault", "CreateCart", json!({"status": 500})),
        ("crm-echo-message", "CreateCart", json!({"status": 200})),
    ];
    for (id, operation, extra) in &cases {
        let mut fault = json!({"operation": operation, "kind": "echo_credential"});
        if let (Some(f), Some(e)) = (fault.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        h.sim_post("/_sim/faults", fault).await;
        h.publish(&renewal(id, billflow::sim::costguard::ACTIVE_SERVICE))
            .await;
        h.wait_terminal(&[id]).await;
    }
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "StartOrder", "kind": "echo_credential"}),
    )
    .await;
    h.publish(&sign_up("crm-echo-emersion")).await;
    h.wait_terminal(&["crm-echo-emersion"]).await;
    h.settle(Duration::from_millis(500)).await;

    // The platform did echo them: the simulator's call log proves the test can fail.
    let calls = serde_json::to_string(&h.calls().await).unwrap();
    assert!(calls.contains(TOKEN), "the token was sent");

    let secrets = [
        TOKEN,
        ADMIN_TOKEN,
        billflow::sim::emersion::SIM_PASSWORD,
        billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD,
        IDENTIFIER_PASSWORD,
        h.signing_key.as_str(),
    ];
    let mut places: Vec<(String, String)> = Vec::new();
    for event in &h.seen {
        places.push((
            format!("event {}", event.id),
            serde_json::to_string(event).unwrap(),
        ));
    }
    let failed: Vec<String> = h
        .seen
        .iter()
        .filter(|e| e.is_terminal())
        .filter_map(|e| e.data.error.clone())
        .collect();
    assert!(
        failed.iter().any(|e| e.contains("***")),
        "the echo reached the error texts, masked: {failed:?}"
    );
    for id in [
        "crm-echo-rest",
        "crm-echo-fault",
        "crm-echo-message",
        "crm-echo-emersion",
    ] {
        let (status, body) = admin_get(&format!("http://{addr}/workflows/{id}")).await;
        assert_eq!(status, 200, "{id}: {body}");
        places.push((format!("admin API {id}"), body));
        places.push((
            format!("billflow status {id}"),
            cli(&h, &["status", id, "--http-addr", &addr.to_string()]),
        ));
    }
    let list = cli(&h, &["dlq", "list"]);
    places.push(("dlq list".into(), list.clone()));
    for line in list.lines().skip(1) {
        if let Some(id) = line.split_whitespace().next() {
            places.push((format!("dlq show {id}"), cli(&h, &["dlq", "show", id])));
        }
    }
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 4, "one dead letter per command");
    for d in dead {
        places.push(("dead-letter headers".into(), format!("{:?}", d.headers)));
        places.push((
            "dead-letter body".into(),
            String::from_utf8_lossy(&d.body).into_owned(),
        ));
    }
    worker.stop();
    places.push(("worker log".into(), h.worker_log()));
    assert!(h.worker_log().contains("crm-echo-rest"), "the log was read");

    for (place, text) in &places {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{secret:?} leaked into {place}: {text}"
            );
        }
    }
}
