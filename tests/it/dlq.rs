//! `billflow dlq` against the real broker: list, show (secrets masked), edit-and-replay,
//! replay twice without running the stage twice, purge.

use crate::common;

use std::process::Command as Process;
use std::time::Duration;

use crate::common::{dlq_cli, dlq_code, renewal, Harness};
use billflow::broker::Publisher;
use billflow::cli::dlq::{self, DeadQueue};
use billflow::contract::events::Outcome;
use serde_json::json;

fn completed(h: &Harness, id: &str) -> usize {
    h.events_of(id)
        .into_iter()
        .filter(|e| e.is_terminal() && e.data.outcome == Outcome::Completed)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_dead_letter_replays_in_place_of_the_original() {
    let mut h = Harness::start("dlq-edit").await;
    let worker = h.spawn_worker();
    let command = json!({"command_id": "crm-terms", "type": "service_order.submit", "data": {
        "account": {"username": billflow::sim::emersion::ACTIVE_ACCOUNT_USERNAME,
                    "password": billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD},
        "service_type_id": billflow::sim::emersion::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": billflow::sim::emersion::BUSINESS_SUPPORT_BASIC_PLAN_ID},
        "configuration": [{"type_id": 500001, "value": "HQ"}],
        "contacts": [{"type_id": 700001, "first_name": "Jane", "last_name": "Citizen"}],
        "accept_terms": false
    }});
    h.publish(&command).await;
    h.wait_terminal(&["crm-terms"]).await;

    let (ok, list, err) = dlq_cli(&h, &["list", "--reason", "permanent_error"]);
    assert!(ok, "{err}");
    assert!(
        list.contains("crm-terms") && list.contains("get_terms"),
        "{list}"
    );
    let id = list
        .lines()
        .find(|l| l.contains("crm-terms"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (_, none, _) = dlq_cli(&h, &["list", "--reason", "outcome_unknown"]);
    assert!(!none.contains("crm-terms"));
    let (_, by_workflow, _) = dlq_cli(
        &h,
        &["list", "--workflow", "service_order", "--since", "1h"],
    );
    assert!(by_workflow.contains("crm-terms"), "{by_workflow}");
    let (_, other_workflow, _) = dlq_cli(&h, &["list", "--workflow", "advancepay_renewal"]);
    assert!(!other_workflow.contains("crm-terms"));
    let (ok, dry, err) = dlq_cli(&h, &["replay", "--all", "--dry-run"]);
    assert!(
        ok && dry.contains("would replay") && dry.contains("crm-terms"),
        "{dry}{err}"
    );

    let (ok, shown, err) = dlq_cli(&h, &["show", &id]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["headers"]["x-billflow-reason"], "permanent_error");
    assert_eq!(
        shown["message"]["command"]["data"]["account"]["password"],
        "***"
    );
    assert!(!shown
        .to_string()
        .contains(billflow::sim::emersion::ACTIVE_ACCOUNT_PASSWORD));

    let (ok, _, err) = dlq_cli(&h, &["edit", &id, "--set", "data.accept_terms=true"]);
    assert!(ok, "{err}");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while completed(&h, "crm-terms") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edited replay never completed"
        );
        h.settle(Duration::from_millis(200)).await;
    }
    let counts = h.call_counts().await;
    assert_eq!(counts.get("CompleteOrder"), Some(&1));
    assert_eq!(
        counts.get("SelectPackagePlan"),
        Some(&1),
        "resumed at get_terms, not re-run"
    );
    assert!(h.drain_dead().await.is_empty(), "the original is gone");

    // An invalid command: an edit that leaves it invalid is refused and nothing moves;
    // fixed in $EDITOR it replays from the start.
    h.publish(&json!({"command_id": "crm-bad", "type": "advancepay.renew",
                      "data": {"service_number": "5555555555"}}))
        .await;
    h.wait_terminal(&["crm-bad"]).await;
    let (_, list, _) = dlq_cli(&h, &["list", "--reason", "invalid_message"]);
    let bad = list
        .lines()
        .find(|l| l.contains("crm-bad"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (ok, _, err) = dlq_cli(&h, &["edit", &bad, "--set", "data.order_type_id=1"]);
    assert!(!ok && err.contains("not valid"), "{err}");
    let editor = h.data_dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/\"service_number\": \"5555555555\"/\"service_number\": \"5555555555\", \"order_type_id\": 1, \"register_id\": 12, \"tender_type_id\": 2/' \"$1\"\n",
    )
    .unwrap();
    Process::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let out = Process::new(env!("CARGO_BIN_EXE_billflow"))
        .args(["dlq", "edit", &bad])
        .env("AMQP_URL", &h.amqp_url)
        .env("BILLFLOW_PREFIX", &h.prefix)
        .env("BILLFLOW_SHARDS", h.shards.to_string())
        .env("BILLFLOW_SIGNING_KEY", &h.signing_key)
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while completed(&h, "crm-bad") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fixed command never completed"
        );
        h.settle(Duration::from_millis(200)).await;
    }

    // Purge asks first; --yes deletes.
    h.publish(&json!({"command_id": "crm-junk", "type": "nope", "data": {}}))
        .await;
    h.wait_terminal(&["crm-junk"]).await;
    let (_, list, _) = dlq_cli(&h, &["list"]);
    let junk = list
        .lines()
        .find(|l| l.contains("crm-junk"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (ok, _, _) = dlq_cli(&h, &["purge", &junk]);
    assert!(!ok, "without --yes and no answer nothing is deleted");
    let (ok, _, err) = dlq_cli(&h, &["purge", &junk, "--yes"]);
    assert!(ok, "{err}");
    assert!(h.drain_dead().await.is_empty());

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_dead_letter_replayed_twice_runs_its_stage_once() {
    let mut h = Harness::start("dlq-twice").await;
    h.sim_post(
        "/_sim/faults",
        json!({"operation": "SubmitCart", "kind": "business_error", "message": "register closed", "count": 1}),
    )
    .await;
    let worker = h.spawn_worker();
    h.publish(&renewal(
        "crm-twice",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-twice"]).await;

    // A crash between publishing the replay and acking the dead letter leaves two copies.
    let queue = DeadQueue::open(&h.connection, &h.topology).await.unwrap();
    assert_eq!(queue.letters.len(), 1);
    let letter = &queue.letters[0];
    assert_eq!(letter.stage(), Some("submit"));
    let publisher = Publisher::open(&h.connection).await.unwrap();
    let copy = dlq::replay_message(letter, &h.topology, Some(&h.signer()), None).unwrap();
    publisher.publish(copy).await.unwrap();
    dlq::replay(letter, &publisher, &h.topology, Some(&h.signer()), None)
        .await
        .unwrap();
    queue.close().await;

    let deadline = tokio::time::Instant::now() + common::WAIT;
    while completed(&h, "crm-twice") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replay never completed"
        );
        h.settle(Duration::from_millis(200)).await;
    }
    h.settle(Duration::from_millis(500)).await;
    assert_eq!(completed(&h, "crm-twice"), 1);
    let applied = h
        .calls()
        .await
        .into_iter()
        .filter(|c| c["operation"] == "SubmitCart" && c["applied"] == true)
        .count();
    assert_eq!(applied, 1, "submitted once");
    assert_eq!(
        h.call_counts().await.get("SubmitCart"),
        Some(&2),
        "the refused call and one replay"
    );
    assert!(h.drain_dead().await.is_empty());
    worker.stop().await;
}

/// The report line about `command_id`.
fn line_of<'a>(report: &'a str, command_id: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(&format!(" {command_id} ")) || l.contains(&format!(" {command_id}:")))
        .unwrap_or_else(|| panic!("no line about {command_id} in\n{report}"))
}

/// Puts a letter straight into the dead queue, as a hand-made one or another tool's.
async fn dead_letter(
    h: &Harness,
    id: &str,
    body: serde_json::Value,
    content_type: &str,
    headers: &[(&str, &str)],
) {
    let mut out = billflow::broker::Outgoing::json(
        "",
        &h.topology.dead_queue(),
        serde_json::to_vec(&body).unwrap(),
    );
    out.message_id = Some(id.to_string());
    out.content_type = content_type.to_string();
    for (name, value) in headers {
        out.headers.insert(
            (*name).into(),
            lapin::types::AMQPValue::LongString(value.to_string().into()),
        );
    }
    h.publisher.publish(out).await.unwrap();
}

fn dead_command_ids(dead: &[common::Dead]) -> Vec<String> {
    let mut ids: Vec<String> = dead
        .iter()
        .map(|d| d.envelope.command_id.clone().unwrap_or_default())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_goes_past_a_letter_it_cannot_replay() {
    let mut h = Harness::start("dlq-bulk").await;
    let worker = h.spawn_worker();
    let register_closed = json!({"operation": "SubmitCart", "kind": "business_error",
                                 "message": "register closed", "count": 1});
    // In this order in the dead queue: a good letter, one that cannot be replayed, a good one.
    h.sim_post("/_sim/faults", register_closed.clone()).await;
    h.publish(&renewal(
        "crm-bulk-1",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-bulk-1"]).await;
    h.publish(
        &json!({"command_id": "crm-bulk-bad", "type": "advancepay.renew",
                      "data": {"service_number": "5555555555"}}),
    )
    .await;
    h.wait_terminal(&["crm-bulk-bad"]).await;
    h.sim_post("/_sim/faults", register_closed).await;
    h.publish(&renewal(
        "crm-bulk-2",
        billflow::sim::costguard::ACTIVE_SERVICE,
    ))
    .await;
    h.wait_terminal(&["crm-bulk-2"]).await;

    let (code, dry, err) = dlq_code(&h, &["replay", "--all", "--dry-run"]);
    assert_eq!(code, Some(3), "{dry}{err}");
    assert!(
        line_of(&dry, "crm-bulk-bad").starts_with("would skip"),
        "{dry}"
    );
    assert!(
        line_of(&dry, "crm-bulk-2").starts_with("would replay"),
        "{dry}"
    );
    let queue = DeadQueue::open(&h.connection, &h.topology).await.unwrap();
    assert_eq!(queue.letters.len(), 3, "a dry run moves nothing");
    queue.close().await;

    let (code, report, err) = dlq_code(&h, &["replay", "--all"]);
    assert_eq!(
        code,
        Some(billflow::cli::dlq::EXIT_NOT_ALL_REPLAYED),
        "{report}{err}"
    );
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "one line per letter and the counts:\n{report}"
    );
    assert!(
        lines[0].starts_with("replayed") && lines[0].contains("crm-bulk-1 at submit"),
        "{report}"
    );
    assert!(
        lines[1].starts_with("skipped")
            && lines[1].contains("crm-bulk-bad")
            && lines[1].contains("not a valid command"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("replayed") && lines[2].contains("crm-bulk-2 at submit"),
        "{report}"
    );
    assert_eq!(
        lines[3],
        "replayed 2, skipped 1, failed 0, of 3 dead letters"
    );
    assert!(err.contains("1 of 3 dead letters not replayed"), "{err}");

    let deadline = tokio::time::Instant::now() + common::WAIT;
    while completed(&h, "crm-bulk-1") == 0 || completed(&h, "crm-bulk-2") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replays never completed"
        );
        h.settle(Duration::from_millis(200)).await;
    }

    // The command a letter carries is replayed only under the routing key of its type;
    // a JSON content type is recognised in any case, another one is not replayed.
    let rk = "advancepay.renew";
    dead_letter(
        &h,
        "letter-rk",
        renewal("crm-rk", billflow::sim::costguard::ACTIVE_SERVICE),
        "application/json",
        &[
            ("x-billflow-reason", "invalid_message"),
            ("x-billflow-command-id", "crm-rk"),
            ("x-billflow-original-routing-key", "service_order.submit"),
        ],
    )
    .await;
    dead_letter(
        &h,
        "letter-ct",
        renewal("crm-ct", billflow::sim::costguard::ACTIVE_SERVICE),
        "Application/JSON; charset=utf-8",
        &[
            ("x-billflow-reason", "invalid_message"),
            ("x-billflow-command-id", "crm-ct"),
            ("x-billflow-original-routing-key", rk),
        ],
    )
    .await;
    dead_letter(
        &h,
        "letter-text",
        renewal("crm-text", billflow::sim::costguard::ACTIVE_SERVICE),
        "text/plain",
        &[
            ("x-billflow-reason", "invalid_message"),
            ("x-billflow-command-id", "crm-text"),
        ],
    )
    .await;
    let (code, report, err) = dlq_code(&h, &["replay", "--reason", "invalid_message"]);
    assert_eq!(code, Some(3), "{report}{err}");
    assert!(
        line_of(&report, "crm-bulk-bad").starts_with("skipped"),
        "{report}"
    );
    let line = line_of(&report, "crm-rk");
    assert!(
        line.starts_with("skipped")
            && line.contains(
                "routing key \"service_order.submit\" does not match its type \"advancepay.renew\""
            ),
        "{report}"
    );
    assert!(
        line_of(&report, "crm-ct").starts_with("replayed"),
        "{report}"
    );
    assert!(
        line_of(&report, "crm-text").starts_with("skipped")
            && report.contains("\"text/plain\" is not JSON"),
        "{report}"
    );
    assert!(
        report.ends_with("replayed 1, skipped 3, failed 0, of 4 dead letters\n"),
        "{report}"
    );
    h.wait_terminal(&["crm-ct"]).await;
    assert_eq!(completed(&h, "crm-ct"), 1);

    // Named ids behave the same way: an unknown one is reported, the others still replayed.
    let (code, report, err) = dlq_code(&h, &["replay", "nope", "letter-rk"]);
    assert_eq!(code, Some(3), "{report}{err}");
    assert!(report.contains("nope  no such dead letter"), "{report}");
    assert!(
        line_of(&report, "crm-rk").starts_with("skipped"),
        "{report}"
    );

    let dead = h.drain_dead().await;
    assert_eq!(
        dead_command_ids(&dead),
        ["crm-bulk-bad", "crm-rk", "crm-text"]
            .map(String::from)
            .to_vec(),
        "what could not be replayed stays, nothing else"
    );
    let counts = h.call_counts().await;
    assert_eq!(
        counts.get("SubmitCart"),
        Some(&5),
        "two refused, three replayed or run"
    );
    worker.stop().await;
}
