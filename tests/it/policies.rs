//! `billflow definitions` loaded into the broker: with BILLFLOW_QUEUE_ARGUMENTS=false the
//! queues carry no delivery limit, dead-lettering or TTL of their own, and the
//! definitions' policies supply them (a shard's delivery limit ends in the undelivered
//! queue, and from there in the dead queue with a reason). Needs `rabbitmqctl` for the broker under test (CI
//! runs it locally); BILLFLOW_TEST_NO_RABBITMQCTL=1 skips this file elsewhere.

use crate::common;

use std::process::Command as Process;
use std::time::Duration;

use crate::common::workload::queue_depth;
use crate::common::{rabbitmqctl, renewal, Harness};
use billflow::broker::{Outgoing, DELIVERY_LIMIT};
use billflow::contract::events::Outcome;
use billflow::contract::DeadReason;
use lapin::options::BasicNackOptions;
use serde_json::{json, Value};

/// Policies a test imported, cleared when it ends, also when it fails.
struct Imported(Vec<String>);

impl Drop for Imported {
    fn drop(&mut self) {
        for policy in &self.0 {
            let _ = Process::new("rabbitmqctl")
                .args(["clear_policy", policy])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_policies_govern_queues_declared_without_arguments() {
    if std::env::var_os("BILLFLOW_TEST_NO_RABBITMQCTL").is_some() {
        eprintln!("skipped: BILLFLOW_TEST_NO_RABBITMQCTL is set");
        return;
    }
    let mut h = Harness::start_with("policies", 2, false).await;
    let file = h.data_dir.path().join("definitions.json");
    let doc = h.topology.definitions("/");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let _policies = Imported(h.topology.policies().into_iter().map(|p| p.0).collect());
    rabbitmqctl(&["import_definitions", file.to_str().unwrap()]);

    // Every stage queue is governed by the policy named after it.
    let listed: Vec<Value> = serde_json::from_str(&rabbitmqctl(&[
        "list_queues",
        "--formatter",
        "json",
        "name",
        "policy",
    ]))
    .unwrap();
    for queue in h.topology.stage_queues() {
        let policy = listed
            .iter()
            .find(|q| q["name"] == queue.as_str())
            .map(|q| q["policy"].as_str().unwrap_or_default().to_string());
        let expected = if queue.contains(".delay.") || queue == h.topology.undelivered_queue() {
            queue.clone()
        } else {
            format!("{}.work", h.prefix)
        };
        assert_eq!(policy.as_deref(), Some(expected.as_str()), "{queue}");
    }

    // The delivery limit and the dead-lettering of a shard queue come from its policy:
    // into the undelivered queue, which a worker empties into the dead queue.
    let shard = h.topology.shard_queue(0);
    let mut poison = Outgoing::json("", &shard, b"{\"poison\":true}".to_vec());
    poison.message_id = Some("poison-1".into());
    h.publisher.publish(poison).await.unwrap();
    let mut taker = h.consume(&shard).await;
    let mut deliveries = 0;
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(1), taker.next()).await
    {
        deliveries += 1;
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        delivery.unwrap().nack(requeue).await.unwrap();
        assert!(deliveries <= DELIVERY_LIMIT + 1, "no delivery limit");
    }
    taker.close().await;
    assert_eq!(deliveries, DELIVERY_LIMIT + 1);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while queue_depth(&h.connection, &h.topology.undelivered_queue()).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poison message was dead-lettered into the undelivered queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h.drain_dead().await.is_empty());

    // The delay tiers' TTL and their way back through the intake come from policies: a
    // renewal whose call fails past its quick retries waits 1 s in a tier and completes.
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "renewAdvancePay", "kind": "http_status", "status": 503, "count": 3}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-policy",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    let events = h.wait_terminal(&["crm-policy", "poison-1"]).await;
    let retrying = events
        .iter()
        .find(|e| e.data.outcome == Outcome::Retrying)
        .expect("a durable retry");
    assert_eq!(retrying.data.next_delay_ms, Some(1_000));
    assert!(events
        .iter()
        .any(|e| e.is_terminal() && e.data.outcome == Outcome::Completed));
    let dead = h.drain_dead().await;
    assert_eq!(dead.len(), 1, "the poison message was dead-lettered");
    assert_eq!(dead[0].envelope.reason, Some(DeadReason::DeliveryLimit));
    assert_eq!(dead[0].body, b"{\"poison\":true}");
    worker.stop().await;
}

/// `deploy/rabbitmq/definitions.json` is `billflow definitions` for the defaults.
/// Regenerate with `BILLFLOW_WRITE_SCHEMAS=1 cargo test --test it policies::`.
#[test]
fn checked_in_definitions_match_billflow_definitions() {
    let out = Process::new(env!("CARGO_BIN_EXE_billflow"))
        .arg("definitions")
        .env_remove("BILLFLOW_PREFIX")
        .env_remove("BILLFLOW_SHARDS")
        .env_remove("BILLFLOW_QUEUE_ARGUMENTS")
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rabbitmq/definitions.json");
    if std::env::var_os("BILLFLOW_WRITE_SCHEMAS").is_some() {
        std::fs::write(&path, &out.stdout).unwrap();
    }
    let on_disk = std::fs::read(&path).unwrap_or_default();
    assert!(
        on_disk == out.stdout,
        "{} drifted from `billflow definitions`: run BILLFLOW_WRITE_SCHEMAS=1 cargo test --test it policies::",
        path.display()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["vhosts"][0]["name"], "/");
    // Work, ledger, events log, undelivered; the delay tiers.
    assert_eq!(
        doc["policies"].as_array().unwrap().len(),
        4 + billflow::broker::DELAY_TIERS.len()
    );
    // Dead, undelivered, intake, the events log; 8 shards and their 8 ledger streams; the
    // delay tiers.
    assert_eq!(
        doc["queues"].as_array().unwrap().len(),
        4 + 8 + 8 + billflow::broker::DELAY_TIERS.len()
    );
    // The events log holds every event.
    let log = doc["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["destination"] == "billflow.events.log")
        .expect("the events log is bound");
    assert_eq!(log["source"], "billflow.events");
    assert_eq!(log["routing_key"], "#");
}
