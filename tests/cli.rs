//! The `billflow` binary: help, and `publish` against a real broker.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use lapin::options::BasicGetOptions;

fn billflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_billflow"))
}

#[test]
fn help_lists_the_subcommands_and_their_environment() {
    let out = billflow().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["worker", "sim", "publish", "demo"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = billflow().args(["worker", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for var in [
        "AMQP_URL",
        "BILLFLOW_PREFIX",
        "BILLFLOW_DATA_DIR",
        "COSTGUARD_URL",
        "COSTGUARD_TOKEN",
    ] {
        assert!(text.contains(var), "{var} missing from worker --help");
    }
}

#[tokio::test]
async fn publish_confirms_and_prints_the_command_id() {
    let h = common::Harness::start("cli").await;
    let mut child = billflow()
        .args(["publish", "-"])
        .env("AMQP_URL", &h.amqp_url)
        .env("BILLFLOW_PREFIX", &h.prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"type":"advancepay.renew","data":{"service_number":"5555555555","order_type_id":1,"register_id":12,"tender_type_id":2}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 36, "generated uuid: {id}");

    let channel = h.connection.create_channel().await.unwrap();
    let message = channel
        .basic_get(
            h.topology.work_queue().as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the command is in the work queue");
    let body: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body["command_id"], id.as_str());
    assert_eq!(message.delivery.routing_key.as_str(), "advancepay.renew");

    // An invalid document is refused before anything is sent, with the reason.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"command_id":"x","type":"advancepay.renew","data":{}}"#,
    )
    .unwrap();
    let out = billflow()
        .args(["publish", bad.to_str().unwrap()])
        .env("AMQP_URL", &h.amqp_url)
        .env("BILLFLOW_PREFIX", &h.prefix)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing field `service_number`"), "{err}");
    h.cleanup().await;
}
