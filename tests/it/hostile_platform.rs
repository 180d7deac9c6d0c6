//! A hostile billing platform: redirects, huge and dripping answers, errors after the
//! platform committed, credentials echoed back. Real broker, the in-process simulator and
//! the real clients: no redirect is followed, no answer is read past its cap or deadline,
//! and a call that may have taken effect is reconciled or parked, never re-sent.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::workload::{duplicate_effects, sign_up};
use crate::common::{renewal, Harness};
use billflow::billing::costguard::{
    CostGuardAuth, CostGuardClient, CostGuardConfig, CostGuardError,
};
use billflow::billing::emersion::wire::StartOrder;
use billflow::billing::emersion::{EmersionAuth, EmersionClient, EmersionConfig, EmersionError};
use billflow::billing::http::HttpError;
use billflow::billing::Failure;
use billflow::config::DEFAULT_MAX_RESPONSE_BYTES;
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use billflow::secret::Secret;
use billflow::sim::costguard::{ACTIVE_CUSTOMER_ID, ACTIVE_SERVICE};
use billflow::sim::emersion::{ACTIVE_ACCOUNT_ID, SIM_PASSWORD, SIM_USERNAME};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Errors of the step events of `id` with this outcome.
fn step_errors(h: &Harness, id: &str, outcome: Outcome) -> Vec<String> {
    h.events_of(id)
        .into_iter()
        .filter(|e| !e.is_terminal() && e.data.outcome == outcome)
        .filter_map(|e| e.data.error.clone())
        .collect()
}

/// Calls of `operation` in the simulator's log: (all, applied).
async fn sent_and_applied(h: &Harness, operation: &str) -> (usize, usize) {
    let calls: Vec<Value> = h
        .calls()
        .await
        .into_iter()
        .filter(|c| c["operation"] == operation)
        .collect();
    let applied = calls.iter().filter(|c| c["applied"] == true).count();
    (calls.len(), applied)
}

/// A listener on another port that counts every connection made to it.
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (host, hits)
}

/// A server that answers every connection with `reply` once it has read the request head,
/// then holds the connection open.
async fn raw_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    base
}

fn costguard_client(base: &str, timeout: Duration) -> CostGuardClient {
    CostGuardClient::new(CostGuardConfig {
        base_url: base.into(),
        auth: CostGuardAuth::Static(Secret::new("sim-token")),
        authenticated_key: "AuthKey".into(),
        timeout,
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap()
}

fn emersion_client(base: &str) -> EmersionClient {
    EmersionClient::new(EmersionConfig {
        base_url: base.into(),
        auth: EmersionAuth::WsSecurity {
            username: SIM_USERNAME.into(),
            password: Secret::new(SIM_PASSWORD),
        },
        timeout: Duration::from_secs(10),
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed() {
    let mut h = Harness::start("redirect").await;
    let (costguard_host, costguard_hits) = trap().await;
    let (emersion_host, emersion_hits) = trap().await;
    // The Location carries a token: the error may name the host, never the URL.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CreateCart", "kind": "redirect",
               "location": format!("http://{costguard_host}/orderplacement?steal=tok-123")}),
    )
    .await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "StartOrder", "kind": "redirect", "status": 308,
               "location": format!("http://{emersion_host}/Orders?steal=tok-456")}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal("crm-redirect", ACTIVE_SERVICE)).await;
    h.publish(&sign_up("crm-redirect-so", 1)).await;
    h.wait_terminal(&["crm-redirect", "crm-redirect-so"]).await;

    for (id, status, host, hits, operation) in [
        (
            "crm-redirect",
            "307",
            &costguard_host,
            &costguard_hits,
            "CreateCart",
        ),
        (
            "crm-redirect-so",
            "308",
            &emersion_host,
            &emersion_hits,
            "StartOrder",
        ),
    ] {
        let end = h.terminal(id);
        assert_eq!(end.data.outcome, Outcome::Failed, "{end:?}");
        let error = end.data.error.clone().unwrap_or_default();
        assert!(
            error.contains(operation) && error.contains(status) && error.contains(host.as_str()),
            "{error}"
        );
        assert!(
            !error.contains("steal") && !error.contains("tok-"),
            "{error}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{id}: the redirect target was contacted"
        );
        assert_eq!(
            sent_and_applied(&h, operation).await,
            (1, 0),
            "{id}: sent once, not applied"
        );
    }
    worker.stop().await;
}

/// Peak resident memory of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_cut_at_the_cap_without_buffering_it() {
    const HUGE: u64 = 100 * 1024 * 1024;
    // The client holds at most the 4 MiB cap (and, while its buffer grows, one copy of
    // it) plus the HTTP stack's read buffers; the simulator streams from static memory.
    // 32 MiB leaves room for the rest of this process, and reading one 100 MiB answer
    // whole would exceed it three times over.
    const BOUND_KIB: u64 = 32 * 1024;
    let mut h = Harness::start("huge").await;
    let mut settings = h.worker_settings();
    settings.retry_policy.default.max_attempts = 1;
    let worker = h.spawn_worker_with(settings);
    // A first renewal brings the worker, the broker connection and the store up to size.
    h.publish(&renewal("crm-warm", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-warm"]).await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "Checkout", "kind": "huge_body", "bytes": HUGE, "count": 3}),
    )
    .await;
    let before = vm_hwm_kib();
    h.publish(&renewal("crm-huge", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-huge"]).await;
    let grown = vm_hwm_kib().saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB");

    let end = h.terminal("crm-huge");
    assert_eq!(end.data.outcome, Outcome::DeadLettered, "{end:?}");
    let error = end.data.error.clone().unwrap_or_default();
    assert!(
        error.contains("Checkout")
            && error.contains(&format!("{DEFAULT_MAX_RESPONSE_BYTES}-byte cap")),
        "{error}"
    );
    assert_eq!(h.call_counts().await.get("Checkout"), Some(&4));
    assert!(
        grown < BOUND_KIB,
        "peak RSS grew by {grown} KiB reading three 100 MiB answers"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_answer_fails_at_the_deadline_and_a_repeatable_call_is_retried() {
    let mut h = Harness::start("drip").await;
    // Three drips use up attempt 1 (a call and two quick retries); attempt 2 is served.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "ServiceNumberDetail", "kind": "drip", "chunk_ms": 50, "count": 3}),
    )
    .await;
    let mut settings = h.worker_settings();
    settings.costguard.costguard_timeout = Duration::from_secs(1);
    let worker = h.spawn_worker_with(settings);
    h.publish(&renewal("crm-drip", ACTIVE_SERVICE)).await;
    h.wait_terminal(&["crm-drip"]).await;

    assert_eq!(h.terminal("crm-drip").data.outcome, Outcome::Completed);
    let retrying = step_errors(&h, "crm-drip", Outcome::Retrying);
    assert_eq!(retrying.len(), 1, "{retrying:?}");
    // The headers came at once: the deadline struck while the body dripped.
    assert!(
        retrying[0].contains("ServiceNumberDetail")
            && retrying[0].contains("1000 ms deadline")
            && retrying[0].contains("reading the body"),
        "{}",
        retrying[0]
    );
    assert_eq!(h.call_counts().await.get("ServiceNumberDetail"), Some(&4));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_the_commit_is_reconciled_never_resent() {
    let mut h = Harness::start("aftercommit").await;
    for status in [500, 502, 504] {
        h.sim_post(
            "/_sim/faults",
            json!({"operation": "SubmitCart", "kind": "error_after_commit", "status": status}),
        )
        .await;
    }
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "CompleteOrder", "kind": "error_after_commit", "status": 502}),
    )
    .await;
    // SubmitCart shows in no documented read: its probe is the pinned order read.
    let mut settings = h.worker_settings();
    settings.costguard.costguard_pinned_order_probes = true;
    let worker = h.spawn_worker_with(settings);
    let renewals = ["crm-commit-1", "crm-commit-2", "crm-commit-3"];
    for id in renewals {
        h.publish(&renewal(id, ACTIVE_SERVICE)).await;
    }
    h.publish(&sign_up("crm-commit-so", 1)).await;
    h.wait_terminal(&[
        "crm-commit-1",
        "crm-commit-2",
        "crm-commit-3",
        "crm-commit-so",
    ])
    .await;

    let mut statuses = Vec::new();
    for id in renewals {
        assert_eq!(h.terminal(id).data.outcome, Outcome::Completed, "{id}");
        let unknown = step_errors(&h, id, Outcome::Retrying);
        assert_eq!(unknown.len(), 1, "{id}: {unknown:?}");
        assert!(unknown[0].contains("outcome unknown"), "{}", unknown[0]);
        statuses.extend(
            ["500", "502", "504"]
                .into_iter()
                .filter(|s| unknown[0].contains(&format!("SubmitCart: HTTP {s}"))),
        );
    }
    statuses.sort();
    assert_eq!(statuses, ["500", "502", "504"], "each cause kept");
    assert_eq!(h.terminal("crm-commit-so").data.outcome, Outcome::Completed);
    let unknown = step_errors(&h, "crm-commit-so", Outcome::Retrying);
    assert!(
        unknown.len() == 1 && unknown[0].contains("CompleteOrder: HTTP 502"),
        "{unknown:?}"
    );

    let counts = h.call_counts().await;
    assert_eq!(
        sent_and_applied(&h, "SubmitCart").await,
        (3, 3),
        "{counts:?}"
    );
    assert_eq!(
        sent_and_applied(&h, "CompleteOrder").await,
        (1, 1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("getOrder"),
        Some(&3),
        "one probe each: {counts:?}"
    );
    // list_services' snapshot, and the probe's look after the 502.
    assert_eq!(counts.get("serviceList"), Some(&2), "{counts:?}");
    assert!(duplicate_effects(&h.calls().await).is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_commit_without_a_probe_is_parked() {
    let mut h = Harness::start("aftercommit-park").await;
    // StartOrder has nothing to look a presale up by: the stage is parked, not re-sent.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "StartOrder", "kind": "error_after_commit", "status": 500}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&sign_up("crm-park", 1)).await;
    h.wait_terminal(&["crm-park"]).await;

    let end = h.terminal("crm-park");
    assert_eq!(end.data.outcome, Outcome::Parked, "{end:?}");
    assert_eq!(end.data.reason.as_deref(), Some("outcome_unknown"));
    assert_eq!(sent_and_applied(&h, "StartOrder").await, (1, 1));
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.reason, Some(DeadReason::OutcomeUnknown));
    // The cause survives the wait for the reconcile: the parked letter and its event say
    // what made the outcome unknown.
    for text in [
        dead[0].envelope.error.as_deref().unwrap_or_default(),
        end.data.error.as_deref().unwrap_or_default(),
    ] {
        assert!(text.contains("500"), "{text}");
        assert!(text.contains("no lookup"), "{text}");
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_or_429_on_a_non_idempotent_call_is_retried() {
    let mut h = Harness::start("unavailable").await;
    for (operation, status) in [
        ("SubmitCart", 503),
        ("SubmitCart", 429),
        ("CompleteOrder", 429),
        ("CompleteOrder", 503),
    ] {
        h.sim_post(
            "/_sim/faults",
            json!({"operation": operation, "kind": "http_status", "status": status}),
        )
        .await;
    }
    let worker = h.spawn_worker();
    h.publish(&renewal("crm-busy", ACTIVE_SERVICE)).await;
    h.publish(&sign_up("crm-busy-so", 1)).await;
    h.wait_terminal(&["crm-busy", "crm-busy-so"]).await;

    assert_eq!(h.terminal("crm-busy").data.outcome, Outcome::Completed);
    assert_eq!(h.terminal("crm-busy-so").data.outcome, Outcome::Completed);
    // Sent again at once (quick retries), taking effect once, with no probe needed.
    assert_eq!(sent_and_applied(&h, "SubmitCart").await, (3, 1));
    assert_eq!(sent_and_applied(&h, "CompleteOrder").await, (3, 1));
    let counts = h.call_counts().await;
    assert_eq!(counts.get("getOrder"), None, "{counts:?}");
    assert_eq!(counts.get("GetAccountPresale"), None, "{counts:?}");
    worker.stop().await;
}

#[tokio::test]
async fn transport_failures_classify_at_the_client() {
    // Nothing listens: refused before anything was sent.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = costguard_client(&format!("http://{closed}"), Duration::from_secs(5))
        .create_cart("test", ACTIVE_CUSTOMER_ID, 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CostGuardError::Transport {
                error: HttpError::Connect(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::Transient);

    // A declared length over the cap is refused at once: the call would otherwise wait
    // out its 30 s deadline for a body that never comes.
    let base = raw_server(b"HTTP/1.1 200 OK\r\ncontent-type: application/soap+xml\r\ncontent-length: 999999999\r\n\r\n<env:").await;
    let err = costguard_client(&base, Duration::from_secs(30))
        .create_cart("test", ACTIVE_CUSTOMER_ID, 1, None)
        .await
        .unwrap_err();
    match &err {
        CostGuardError::Transport {
            error: HttpError::TooLarge { cap, declared },
            ..
        } => {
            assert_eq!(*cap, DEFAULT_MAX_RESPONSE_BYTES);
            assert_eq!(*declared, Some(999_999_999));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.failure(), Failure::OutcomeUnknown);
}

#[tokio::test]
async fn a_body_cut_short_is_outcome_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 8192];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n<SOAP-ENV:Envelope>")
                .await;
            // Dropped: the connection closes 980 bytes short.
        }
    });
    let err = emersion_client(&base)
        .call(&StartOrder {
            account_id: ACTIVE_ACCOUNT_ID,
            purchase_order: None,
            promo_code: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EmersionError::Transport {
                error: HttpError::Interrupted(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::OutcomeUnknown);
}

#[tokio::test]
async fn the_simulator_plays_a_hostile_platform() {
    let sim = common::sim_server::start().await;
    let fault = |body: Value| {
        let sim = &sim;
        async move {
            sim.http
                .post(format!("{}/_sim/faults", sim.base))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    for bad in [
        json!({"operation": "Checkout", "kind": "redirect", "status": 200, "location": "http://x/"}),
        json!({"operation": "Checkout", "kind": "redirect"}),
        json!({"operation": "Checkout", "kind": "redirect", "location": "http://x/\n"}),
        json!({"operation": "Checkout", "kind": "drip", "chunk_ms": 0}),
        json!({"operation": "Checkout", "kind": "error_after_commit", "status": 503}),
        json!({"operation": "Checkout", "kind": "echo_credential", "status": 302}),
        json!({"operation": "Checkout", "kind": "huge_body"}),
    ] {
        let response = fault(bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    for kind in [
        json!({"operation": "ServiceNumberDetail", "kind": "echo_credential"}),
        json!({"operation": "Checkout", "kind": "echo_credential"}),
        json!({"operation": "Checkout", "kind": "echo_credential", "status": 200}),
        json!({"operation": "StartOrder", "kind": "echo_credential", "status": 403}),
        json!({"operation": "getOrder", "kind": "huge_body", "bytes": 300000}),
        json!({"operation": "getOrder", "kind": "drip", "chunk_ms": 20}),
        json!({"operation": "Checkout", "kind": "redirect", "location": "https://elsewhere.example/x"}),
        json!({"operation": "renewAdvancePay", "kind": "error_after_commit", "status": 504}),
    ] {
        let response = fault(kind.clone()).await;
        assert_eq!(response.status(), 201, "{kind}");
    }
    let listed: Value = sim
        .http
        .get(format!("{}/_sim/faults", sim.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed["faults"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 8);
    assert_eq!(listed[0]["status"], 401, "default status: {listed:?}");
    assert_eq!(listed[6]["status"], 307, "default status: {listed:?}");

    // The credential comes back in each platform's own error format.
    let cg = costguard_client(&sim.base, Duration::from_secs(5));
    let err = cg
        .service_number_detail("test", ACTIVE_SERVICE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Http { status: 401, message, .. } if message.contains("sim-token")),
        "{err:?}"
    );
    let cart = cg
        .create_cart("test", ACTIVE_CUSTOMER_ID, 1, Some(12))
        .await
        .unwrap()
        .cart_id;
    let err = cg.checkout("test", &cart).await.unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Fault { status: 401, code, reason, .. }
            if code == "Sender" && reason.contains("sim-token")),
        "{err:?}"
    );
    let err = cg.checkout("test", &cart).await.unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Rejected { messages, .. } if messages.contains("sim-token")),
        "{err:?}"
    );
    let err = emersion_client(&sim.base)
        .call(&StartOrder {
            account_id: ACTIVE_ACCOUNT_ID,
            purchase_order: None,
            promo_code: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EmersionError::Fault { status: 403, code, message, .. }
            if code == "Client" && message.contains(SIM_USERNAME) && message.contains(SIM_PASSWORD)),
        "{err:?}"
    );

    // A huge body arrives streamed (no Content-Length), exactly as long as asked.
    let huge = sim
        .http
        .get(format!("{}/OrderManagement/2x/test/api/order/1", sim.base))
        .header("Authorization", "WRAP access_token=\"t\"")
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 200);
    assert_eq!(huge.content_length(), None);
    let body = huge.bytes().await.unwrap();
    assert_eq!(body.len(), 300_000);
    assert!(body.starts_with(b"{\"value\":["));

    // A drip sends its headers at once, then keeps the body coming.
    let mut drip = sim
        .http
        .get(format!("{}/OrderManagement/2x/test/api/order/1", sim.base))
        .header("Authorization", "WRAP access_token=\"t\"")
        .send()
        .await
        .unwrap();
    assert_eq!(drip.status(), 200);
    let mut dripped = 0;
    while dripped < 12 {
        dripped += drip.chunk().await.unwrap().expect("still dripping").len();
    }
    drop(drip);

    // Redirects carry the Location as given; nothing is applied.
    let err = cg.checkout("test", &cart).await.unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Transport { error: HttpError::Redirect { status: 307, host }, .. }
            if host == "elsewhere.example"),
        "{err:?}"
    );

    // After the commit: applied, then a 504 in no API's format.
    let err = cg
        .renew_advance_pay("test", cart.id, billflow::sim::costguard::ACTIVE_SERVICE_ID)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CostGuardError::Http { status: 504, .. }),
        "{err:?}"
    );
    assert_eq!(err.failure(), Failure::OutcomeUnknown);
    let calls: Value = sim
        .http
        .get(format!("{}/_sim/calls", sim.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let applied: Vec<(&str, bool)> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap(),
                c["applied"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        applied,
        [
            ("ServiceNumberDetail", false),
            ("CreateCart", true),
            ("Checkout", false),
            ("Checkout", false),
            ("StartOrder", false),
            ("getOrder", false),
            ("getOrder", false),
            ("Checkout", false),
            ("renewAdvancePay", true),
        ]
    );
    sim.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), sim.server)
        .await
        .expect("graceful shutdown with nothing left dripping")
        .unwrap()
        .unwrap();
}
