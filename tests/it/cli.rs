//! The `billflow` binary: help, and `publish` against a real broker.

use crate::common;

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
        .env("BILLFLOW_SHARDS", h.shards.to_string())
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
            h.topology.intake_queue().as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the command is in the intake queue");
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
        .env("BILLFLOW_SHARDS", h.shards.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing field `service_number`"), "{err}");
}

/// README's configuration table and `billflow worker --help` name the same variables,
/// with the same defaults.
#[test]
fn the_readme_configuration_reference_matches_help() {
    let help = billflow().args(["worker", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    // clap prints "[env: NAME=...]" or "[env: NAME]" and "[default: VALUE]" per flag.
    let mut from_help = std::collections::BTreeMap::new();
    for line in help.lines() {
        let Some(env) = line.split("[env: ").nth(1) else {
            continue;
        };
        let name: String = env
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        let default = line
            .split("[default: ")
            .nth(1)
            .and_then(|d| d.split(']').next())
            .map(str::to_string);
        from_help.insert(name, default);
    }
    assert!(from_help.len() >= 15, "parsed {from_help:?} from\n{help}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "### Configuration")
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect();
    let mut from_readme = std::collections::BTreeMap::new();
    for line in section.into_iter().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let default = cells[2].trim_matches('`').to_string();
        from_readme.insert(name, default);
    }
    for (name, default) in &from_help {
        let documented = from_readme
            .get(name)
            .unwrap_or_else(|| panic!("{name} is in --help but not in README's table"));
        match default.as_deref() {
            None | Some("\"\"") => assert_eq!(documented, "(none)", "default of {name}"),
            Some(default) => assert_eq!(documented, default, "default of {name}"),
        }
    }
    for name in from_readme.keys() {
        let log_setting = name == "BILLFLOW_LOG" || name == "BILLFLOW_LOG_FORMAT";
        assert!(
            from_help.contains_key(name) || log_setting,
            "{name} is in README's table but not in --help"
        );
    }
}

/// `dlq replay --help` documents the exit status of a replay that left letters behind;
/// `status --help` names the token's variable without showing its value.
#[test]
fn help_documents_replay_exit_status_and_the_status_token() {
    let out = billflow()
        .args(["dlq", "replay", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exit status")
            && text.contains(&billflow::dlq::EXIT_NOT_ALL_REPLAYED.to_string()),
        "{text}"
    );
    let out = billflow()
        .args(["status", "--help"])
        .env("BILLFLOW_ADMIN_TOKEN", "token-value-4c1d9e22aa7b")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BILLFLOW_ADMIN_TOKEN"), "{text}");
    assert!(!text.contains("token-value-4c1d9e22aa7b"), "{text}");
}
