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
            && text.contains(&billflow::cli::dlq::EXIT_NOT_ALL_REPLAYED.to_string()),
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

/// `billflow config` prints what a worker would run with, as the TOML `--config` takes:
/// the file under the variables (the old ones under the new ones) under the flags, every
/// secret masked, whichever layer it came from.
#[test]
fn config_prints_the_effective_settings_in_order_of_precedence_with_secrets_masked() {
    const SECRETS: [&str; 6] = [
        "file-token-5f1e2d",
        "file-password-9a8b7c",
        "amqp-pw-7e6f5d",
        "flag-key-3c4d5e6f",
        "admin-token-1a2b3c4d5e6f",
        "auth-key-0f9e8d",
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("billflow.toml");
    std::fs::write(
        &file,
        r#"
            prefix = "from-file"
            shards = 3
            reconcile_delay = "10s"
            shutdown_grace = "11s"
            retention = "2d"
            costguard_token = "file-token-5f1e2d"
            [emersion]
            password = "file-password-9a8b7c"
            timeout = "12s"
            [api_limits.costguard]
            breaker_cooldown = "1m"
        "#,
    )
    .unwrap();
    let config = |args: &[&str], env: &[(&str, &str)]| {
        let out = billflow()
            .arg("config")
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        for secret in SECRETS {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{secret}: {stdout}"
            );
        }
        stdout
    };
    let printed = config(
        &[
            "--config",
            file.to_str().unwrap(),
            "--reconcile-delay",
            "30s",
            "--signing-key",
            "flag-key-3c4d5e6f",
        ],
        &[
            ("AMQP_URL", "amqp://billflow:amqp-pw-7e6f5d@broker:5672/%2f"),
            ("BILLFLOW_SHUTDOWN_GRACE", "21s"),
            ("BILLFLOW_RECONCILE_DELAY", "20s"),
            ("BILLFLOW_RETENTION_SECS", "3600"),
            ("COSTGUARD_TIMEOUT_MS", "4000"),
            ("COSTGUARD_TIMEOUT", "5s"),
            ("BILLFLOW_ADMIN_TOKEN", "admin-token-1a2b3c4d5e6f"),
            ("COSTGUARD_AUTHENTICATED_KEY", "auth-key-0f9e8d"),
        ],
    );
    let settings: toml::Table = printed.parse().unwrap();
    let text = |key: &str| settings[key].as_str().unwrap_or_default().to_string();
    assert_eq!(text("prefix"), "from-file", "file over default");
    assert_eq!(settings["shards"].as_integer(), Some(3));
    assert_eq!(text("shutdown_grace"), "21s", "variable over file");
    assert_eq!(text("reconcile_delay"), "30s", "flag over variable");
    assert_eq!(text("retention"), "1h", "old variable over file");
    assert_eq!(text("costguard_timeout"), "5s", "new variable over old");
    assert_eq!(text("emersion_timeout"), "12s");
    assert_eq!(text("data_dir"), "./billflow-data", "default");
    assert_eq!(text("amqp_url"), "amqp://billflow:***@broker:5672/%2f");
    for secret in [
        "costguard_token",
        "costguard_authenticated_key",
        "emersion_password",
        "signing_key",
        "admin_token",
    ] {
        assert_eq!(text(secret), "***", "{secret}");
    }
    assert_eq!(
        settings["api_limits"]["costguard"]["breaker_cooldown"].as_str(),
        Some("1m")
    );
    assert_eq!(
        settings["api_limits"]["emersion"]["breaker_cooldown"].as_str(),
        Some("30s")
    );

    // What it prints is a configuration file that says the same (BILLFLOW_CONFIG names it).
    let printed_file = dir.path().join("printed.toml");
    std::fs::write(&printed_file, &printed).unwrap();
    let again = config(&[], &[("BILLFLOW_CONFIG", printed_file.to_str().unwrap())]);
    assert_eq!(again, printed);

    // A key that names no setting is refused, by name.
    std::fs::write(&file, "reconcile_dealy = \"1s\"\n").unwrap();
    let out = billflow()
        .args(["config", "--config", file.to_str().unwrap()])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"reconcile_dealy\""), "{err}");
}
