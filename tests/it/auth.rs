//! Authentication as the platforms document it: Emersion's client certificate (the
//! simulator's TLS listener refuses a connection without one; a worker whose certificate
//! is missing, expired or without its key does not start), and CostGuard's token login
//! (shared, renewed before expiry, retried once on 401; a static token still works).

use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use crate::common::{self, certs, Harness};
use billflow::contract::events::Outcome;
use billflow::secret::Secret;
use billflow::sim::costguard::{ACTIVE_SERVICE, SIM_LOGIN_PASSWORD, SIM_LOGIN_USERNAME};
use billflow::sim::emersion as em;
use serde_json::{json, Value};

/// A StartOrder envelope without any WS-Security header.
fn start_order_without_token() -> String {
    format!(
        r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:api="urn:emersion:api"><SOAP-ENV:Body><api:StartOrderRequest><AccountID>{}</AccountID></api:StartOrderRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        em::ACTIVE_ACCOUNT_ID
    )
}

fn tls_client(identity: Option<&certs::Pem>) -> reqwest::Client {
    let pems = certs::pems();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pems.ca.as_bytes()).unwrap());
    if let Some(pem) = identity {
        let both = format!("{}\n{}", pem.cert, pem.key);
        builder = builder.identity(reqwest::Identity::from_pem(both.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn start_order(client: &reqwest::Client, base: &str) -> Result<String, reqwest::Error> {
    client
        .post(format!("{base}/Orders"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"urn:emersion:api#StartOrder\"")
        .body(start_order_without_token())
        .send()
        .await?
        .text()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_admits_only_client_certificates_of_its_ca() {
    let h = Harness::start("auth-tls").await;
    let pems = certs::pems();

    for (who, identity) in [
        ("no certificate", None),
        ("a certificate of another CA", Some(&pems.stranger_client)),
        ("an expired certificate", Some(&pems.expired_client)),
    ] {
        let refused = start_order(&tls_client(identity), &h.sim_tls_url).await;
        assert!(refused.is_err(), "{who}: {refused:?}");
    }

    // A verified certificate is the credential: no UsernameToken needed.
    let answer = start_order(&tls_client(Some(&pems.client)), &h.sim_tls_url)
        .await
        .unwrap();
    assert!(answer.contains("AccountPresaleID"), "{answer}");
    // On the plain listener the same envelope has no credential at all.
    let plain = start_order(&reqwest::Client::new(), &h.sim_url)
        .await
        .unwrap();
    assert!(plain.contains("Authentication failed"), "{plain}");
    // Failed handshakes did not stop the listener.
    let again = start_order(&tls_client(Some(&pems.client)), &h.sim_tls_url)
        .await
        .unwrap();
    assert!(again.contains("AccountPresaleID"), "{again}");
}

/// `billflow worker` with Emersion only, its variables as given; returns its exit status
/// and standard error. It must stop on its own: it fails before connecting anywhere.
fn worker_start(dir: &Path, vars: &[(&str, &Path)], extra: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_billflow"));
    cmd.arg("worker")
        .env("BILLFLOW_DATA_DIR", dir.join("store"))
        .env("BILLFLOW_LOG_FORMAT", "text")
        .env(
            "BILLFLOW_SIGNING_KEY",
            billflow::contract::signing::Signer::generate_key(),
        )
        .env("EMERSION_URL", "https://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in [
        "COSTGUARD_TOKEN",
        "COSTGUARD_USERNAME",
        "COSTGUARD_PASSWORD",
        "COSTGUARD_AUTHENTICATED_KEY",
        "EMERSION_CLIENT_CERT",
        "EMERSION_CLIENT_KEY",
        "EMERSION_CA_CERT",
        "EMERSION_AUTH",
        "EMERSION_USERNAME",
        "EMERSION_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    for (name, path) in vars {
        cmd.env(name, path);
    }
    for (name, value) in extra {
        cmd.env(name, value);
    }
    let mut child = common::ChildGuard::spawn(&mut cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not stop at start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    (status.success(), stderr)
}

/// Variables naming files.
type Vars<'a> = Vec<(&'a str, &'a Path)>;

#[test]
fn a_worker_with_a_bad_certificate_stops_at_start_naming_variable_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = certs::pems().write(&dir.path().join("certs"));
    let missing = dir.path().join("certs/missing.pem");
    let key_text = &certs::pems().client.key;
    let key_body = key_text.lines().nth(1).unwrap();

    let cases: Vec<(&str, Vars, Vec<&str>)> = vec![
        (
            "missing certificate file",
            vec![
                ("EMERSION_CLIENT_CERT", &missing),
                ("EMERSION_CLIENT_KEY", &files.client_key),
            ],
            vec![
                "EMERSION_CLIENT_CERT",
                "missing.pem",
                "cannot read the file",
            ],
        ),
        (
            "expired certificate",
            vec![
                ("EMERSION_CLIENT_CERT", &files.expired_cert),
                ("EMERSION_CLIENT_KEY", &files.expired_key),
            ],
            vec![
                "EMERSION_CLIENT_CERT",
                "expired.pem",
                "expired on 2021-01-01",
            ],
        ),
        (
            "certificate without a key",
            vec![("EMERSION_CLIENT_CERT", &files.client_cert)],
            vec!["EMERSION_CLIENT_KEY"],
        ),
        (
            "missing key file",
            vec![
                ("EMERSION_CLIENT_CERT", &files.client_cert),
                ("EMERSION_CLIENT_KEY", &missing),
            ],
            vec!["EMERSION_CLIENT_KEY", "missing.pem", "cannot read the file"],
        ),
        (
            "the key of another certificate",
            vec![
                ("EMERSION_CLIENT_CERT", &files.client_cert),
                ("EMERSION_CLIENT_KEY", &files.expired_key),
            ],
            vec!["EMERSION_CLIENT_KEY", "does not belong to the certificate"],
        ),
        (
            "no certificate at all",
            vec![],
            vec!["no billing platform configured", "EMERSION_CLIENT_CERT"],
        ),
        (
            "a key file that holds a certificate",
            vec![
                ("EMERSION_CLIENT_CERT", &files.client_cert),
                ("EMERSION_CLIENT_KEY", &files.client_cert),
            ],
            vec!["EMERSION_CLIENT_KEY", "client.pem", "no PEM private key"],
        ),
    ];
    for (case, vars, expected) in cases {
        let (ok, stderr) = worker_start(dir.path(), &vars, &[]);
        assert!(!ok, "{case}: the worker started");
        for text in expected {
            assert!(stderr.contains(text), "{case}: {text:?} not in {stderr}");
        }
        assert!(
            !stderr.contains(key_body),
            "{case}: the key leaked: {stderr}"
        );
    }

    // A certificate is only ever presented over TLS.
    let (ok, stderr) = worker_start(
        dir.path(),
        &[
            ("EMERSION_CLIENT_CERT", &files.client_cert),
            ("EMERSION_CLIENT_KEY", &files.client_key),
            ("EMERSION_CA_CERT", &files.ca),
        ],
        &[("EMERSION_URL", "http://127.0.0.1:9")],
    );
    assert!(!ok);
    assert!(stderr.contains("is not https://"), "{stderr}");
}

#[test]
fn a_worker_with_only_ws_security_credentials_points_to_the_migration_note() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = worker_start(
        dir.path(),
        &[],
        &[
            ("EMERSION_USERNAME", em::SIM_USERNAME),
            ("EMERSION_PASSWORD", em::SIM_PASSWORD),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("EMERSION_AUTH=ws-security")
            && stderr.contains("Migrating from WS-Security to client certificates"),
        "{stderr}"
    );
    assert!(!stderr.contains(em::SIM_PASSWORD), "{stderr}");
}

fn simple_sign_up(id: &str) -> Value {
    json!({"command_id": id, "type": "service_order.submit", "data": {
        "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
        "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
        "sq": {"kind": "simple"},
        "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
        "configuration": [{"type_id": 500001, "value": "Head Office"}],
        "contacts": [{"type_id": 700001, "title": "Ms", "first_name": "Jane",
                      "last_name": "Citizen", "date_of_birth": "1980-01-31",
                      "email": "jane@example.com", "phone": "0299998888"}],
        "accept_terms": true}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_over_tls_carries_no_username_token() {
    let mut h = Harness::start("auth-signup").await;
    let worker = h.spawn_worker();
    h.publish(&simple_sign_up("auth-signup")).await;
    h.wait_terminal(&["auth-signup"]).await;
    let done = h.events_of("auth-signup").last().cloned().unwrap();
    assert_eq!(
        done.data.outcome,
        Outcome::Completed,
        "{:?}",
        done.data.error
    );
    let calls = h.calls().await;
    assert!(calls.len() > 5);
    for call in calls {
        let body = call["body"].as_str().unwrap_or_default();
        assert!(!body.contains("UsernameToken"), "{body}");
    }
    worker.stop().await;
}

fn login_settings(h: &Harness) -> billflow::config::WorkerSettings {
    let mut settings = h.worker_settings();
    settings.costguard.costguard_token = Secret::default();
    settings.costguard.costguard_username = SIM_LOGIN_USERNAME.into();
    settings.costguard.costguard_password = Secret::new(SIM_LOGIN_PASSWORD);
    settings
}

async fn tokens(h: &Harness) -> (u64, u64) {
    let tokens = h.sim_get("/_sim/tokens").await;
    (
        tokens["logins"].as_u64().unwrap(),
        tokens["refused"].as_u64().unwrap(),
    )
}

fn completed(h: &Harness, id: &str) {
    let last = h.events_of(id).last().cloned().unwrap();
    assert_eq!(
        last.data.outcome,
        Outcome::Completed,
        "{id}: {:?}",
        last.data.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let mut h = Harness::start("auth-renew").await;
    h.sim_post("/_sim/tokens", json!({"lifetime_ms": 2000}))
        .await;
    let mut cmd = h.worker_process();
    cmd.env_remove("COSTGUARD_TOKEN")
        .env("COSTGUARD_USERNAME", SIM_LOGIN_USERNAME)
        .env("COSTGUARD_PASSWORD", SIM_LOGIN_PASSWORD)
        .env("BILLFLOW_LOG", "debug");
    let worker = common::ChildGuard::spawn(&mut cmd);
    let mut ids = Vec::new();
    // Renewals spread over three token lifetimes.
    for n in 0..8 {
        let id = format!("auth-renew-{n}");
        h.publish(&common::renewal(&id, ACTIVE_SERVICE)).await;
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(750)).await;
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.wait_terminal(&ids).await;
    for id in &ids {
        completed(&h, id);
    }
    let (logins, refused) = tokens(&h).await;
    assert!(logins >= 3, "logins: {logins}");
    assert_eq!(refused, 0, "no call was refused for an expired token");
    worker.stop();

    // Neither the login password nor any token reached a log or an event.
    let log = h.worker_log();
    assert!(log.contains("logged in to the CostGuard Security Token Service"));
    let events = serde_json::to_string(&h.seen).unwrap();
    for (place, text) in [("log", &log), ("events", &events)] {
        for secret in [SIM_LOGIN_PASSWORD, "ExpiresOn=", "HMACSHA256"] {
            assert!(!text.contains(secret), "{secret} in the {place}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_once_and_the_renewal_completes() {
    let mut h = Harness::start("auth-revoke").await;
    let worker = h.spawn_worker_with(login_settings(&h));
    h.publish(&common::renewal("auth-before", ACTIVE_SERVICE))
        .await;
    h.wait_terminal(&["auth-before"]).await;
    completed(&h, "auth-before");
    assert_eq!(tokens(&h).await, (1, 0), "one login shared by every stage");

    h.sim_post("/_sim/tokens", json!({"revoke": true})).await;
    h.publish(&common::renewal("auth-after", ACTIVE_SERVICE))
        .await;
    h.wait_terminal(&["auth-after"]).await;
    completed(&h, "auth-after");
    assert_eq!(
        tokens(&h).await,
        (2, 1),
        "one call refused, one fresh login, then the token is shared again"
    );
    let retried = h
        .events_of("auth-after")
        .iter()
        .filter(|e| e.data.outcome == Outcome::Retrying)
        .count();
    assert_eq!(
        retried, 0,
        "the 401 was answered inside the call, no stage retry"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_needs_no_login() {
    let mut h = Harness::start("auth-static").await;
    let worker = h.spawn_worker();
    h.publish(&common::renewal("auth-static", ACTIVE_SERVICE))
        .await;
    h.wait_terminal(&["auth-static"]).await;
    completed(&h, "auth-static");
    assert_eq!(tokens(&h).await, (0, 0));
    worker.stop().await;
}

#[test]
fn billflow_config_shows_the_new_settings_with_secrets_masked() {
    let out = Process::new(env!("CARGO_BIN_EXE_billflow"))
        .arg("config")
        .env("EMERSION_CLIENT_CERT", "/etc/billflow/emersion.pem")
        .env("EMERSION_CLIENT_KEY", "/etc/billflow/emersion-key.pem")
        .env("COSTGUARD_USERNAME", "api-user")
        .env("COSTGUARD_PASSWORD", "login-pw-5e1f0a")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "emersion_auth = \"certificate\"",
        "emersion_client_cert = \"/etc/billflow/emersion.pem\"",
        "emersion_client_key = \"/etc/billflow/emersion-key.pem\"",
        "costguard_username = \"api-user\"",
        "costguard_password = \"***\"",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(!text.contains("login-pw-5e1f0a"), "{text}");
}
