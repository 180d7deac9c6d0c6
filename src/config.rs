//! Configuration: one struct per subsystem, read from flags, the environment (which
//! `--help` lists with their variables and defaults) and an optional TOML file, in that
//! order of precedence ([`layers`]). Secrets are wrapped in `Secret`, durations are written
//! as people write them ([`duration`]).

pub mod certificate;
pub mod duration;
pub mod layers;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::{Serialize, Serializer};

use crate::billing::costguard::{CostGuardAuth, CostGuardConfig};
use crate::billing::emersion::{EmersionAuth, EmersionConfig};
use crate::billing::http::ClientTls;
use crate::broker::{Topology, DEFAULT_SHARDS};
use crate::engine::protect::LimitsConfig;
use crate::engine::retry::RetryConfig;
use crate::secret::Secret;
use certificate::CertificateError;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Seven days (the `7d` default of `--retention`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How much the events log keeps by default: as long as a stage record, and 10 GiB.
pub const DEFAULT_EVENTS_LOG_MAX_AGE: Duration = DEFAULT_RETENTION;
pub const DEFAULT_EVENTS_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// 4 MiB: far above any documented answer, far below what hurts a worker.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Settings renamed when durations became human-readable. The old variable (and flag)
/// still works, in its old unit, where the new one is not set.
pub const RENAMED: [Renamed; 5] = [
    Renamed::millis("shutdown_grace", "BILLFLOW_SHUTDOWN_GRACE_MS"),
    Renamed::millis("reconcile_delay", "BILLFLOW_RECONCILE_DELAY_MS"),
    Renamed::millis("costguard_timeout", "COSTGUARD_TIMEOUT_MS"),
    Renamed::millis("emersion_timeout", "EMERSION_TIMEOUT_MS"),
    Renamed {
        setting: "retention",
        old_variable: "BILLFLOW_RETENTION_SECS",
        old_unit: Duration::from_secs(1),
    },
];

/// A duration setting's name before it took durations such as `30s`.
#[derive(Debug, Clone, Copy)]
pub struct Renamed {
    /// The setting (its file key, the snake_case of its flag).
    pub setting: &'static str,
    /// Its old variable; the old flag is the same name as a flag (`--reconcile-delay-ms`).
    pub old_variable: &'static str,
    /// What the old variable's number counts.
    pub old_unit: Duration,
}

impl Renamed {
    const fn millis(setting: &'static str, old_variable: &'static str) -> Self {
        Renamed {
            setting,
            old_variable,
            old_unit: Duration::from_millis(1),
        }
    }

    /// `--reconcile-delay-ms` for `BILLFLOW_RECONCILE_DELAY_MS`.
    pub fn old_flag(&self) -> String {
        let name = self
            .old_variable
            .strip_prefix("BILLFLOW_")
            .unwrap_or(self.old_variable);
        format!("--{}", name.to_ascii_lowercase().replace('_', "-"))
    }
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct BrokerSettings {
    /// RabbitMQ URL (its password is never logged).
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    #[serde(serialize_with = "url_password_masked")]
    pub amqp_url: Secret,
    /// Prefix of every exchange and queue name.
    #[arg(long, env = "BILLFLOW_PREFIX", default_value = "billflow")]
    pub prefix: String,
    /// Number of shard work queues a command's stages are spread over by command id.
    /// The same on every process of a prefix; more shards than workers lets work spread
    /// again when workers come and go.
    #[arg(long, env = "BILLFLOW_SHARDS", default_value_t = DEFAULT_SHARDS, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: u16,
    /// Declare delivery limit, dead-lettering and delay TTLs as queue arguments (true),
    /// or leave them to broker policies from `billflow definitions` (false).
    #[arg(long, env = "BILLFLOW_QUEUE_ARGUMENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub queue_arguments: bool,
}

impl BrokerSettings {
    /// The settings for a local broker under `prefix`, everything else default.
    pub fn local(amqp_url: &str, prefix: &str) -> Self {
        BrokerSettings {
            amqp_url: Secret::new(amqp_url),
            prefix: prefix.to_string(),
            shards: DEFAULT_SHARDS,
            queue_arguments: true,
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
            .with_shards(self.shards)
            .with_queue_arguments(self.queue_arguments)
    }
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct CostGuardSettings {
    /// CostGuard base URL (point it at `billflow sim` for local runs).
    #[arg(long, env = "COSTGUARD_URL", default_value = "http://127.0.0.1:8080")]
    pub costguard_url: String,
    /// A static CostGuard API token (REST WRAP header, SOAP Requestor); instead of
    /// COSTGUARD_USERNAME and COSTGUARD_PASSWORD, which log in for a token.
    #[arg(
        long,
        env = "COSTGUARD_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub costguard_token: Secret,
    /// User that logs in to IDI's Security Token Service for the CostGuard token (renewed
    /// at 75 % of its lifetime).
    #[arg(long, env = "COSTGUARD_USERNAME", default_value = "")]
    pub costguard_username: String,
    /// Password of COSTGUARD_USERNAME.
    #[arg(
        long,
        env = "COSTGUARD_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub costguard_password: Secret,
    /// The customer AuthenticatedKey sent with CustomerID.
    #[arg(
        long,
        env = "COSTGUARD_AUTHENTICATED_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub costguard_authenticated_key: Secret,
    /// CostGuard environment used when a command names none.
    #[arg(long, env = "COSTGUARD_ENVIRONMENT", default_value = "")]
    pub costguard_environment: String,
    /// Also reconcile tender, submit and restore_submit with the pinned, undocumented order
    /// read (GET .../order/{id}); off, those stages park when their outcome is unknown.
    #[arg(long, env = "COSTGUARD_PINNED_ORDER_PROBES", default_value_t = false, action = clap::ArgAction::Set)]
    pub costguard_pinned_order_probes: bool,
    /// Timeout of one CostGuard call, the whole answer included (was COSTGUARD_TIMEOUT_MS, in
    /// milliseconds).
    #[arg(long, env = "COSTGUARD_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub costguard_timeout: Duration,
    /// Largest CostGuard response body read, in bytes; a larger one fails the call.
    #[arg(long, env = "COSTGUARD_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    pub costguard_max_response_bytes: usize,
}

impl CostGuardSettings {
    /// `None` when CostGuard is not configured at all (no credentials, no key); an error
    /// when it is half-configured, or given both a static token and a login.
    pub fn client_config(&self) -> Result<Option<CostGuardConfig>, ConfigError> {
        let token = !self.costguard_token.expose().is_empty();
        let username = !self.costguard_username.trim().is_empty();
        let password = !self.costguard_password.expose().is_empty();
        let key = !self.costguard_authenticated_key.expose().is_empty();
        if !token && !username && !password && !key {
            return Ok(None);
        }
        if token && (username || password) {
            return Err(ConfigError::TwoCostGuardCredentials);
        }
        let mut missing = Vec::new();
        if !token && !username && !password {
            missing.push("COSTGUARD_TOKEN (or COSTGUARD_USERNAME and COSTGUARD_PASSWORD)");
        }
        if password && !username {
            missing.push("COSTGUARD_USERNAME");
        }
        if username && !password {
            missing.push("COSTGUARD_PASSWORD");
        }
        if !key {
            missing.push("COSTGUARD_AUTHENTICATED_KEY");
        }
        if self.costguard_environment.trim().is_empty() {
            missing.push("COSTGUARD_ENVIRONMENT");
        }
        if !missing.is_empty() {
            return Err(ConfigError::Missing(missing.join(", ")));
        }
        let auth = if token {
            CostGuardAuth::Static(self.costguard_token.clone())
        } else {
            CostGuardAuth::Login {
                username: self.costguard_username.trim().to_string(),
                password: self.costguard_password.clone(),
            }
        };
        Ok(Some(CostGuardConfig {
            base_url: self.costguard_url.clone(),
            auth,
            authenticated_key: self.costguard_authenticated_key.expose().to_string(),
            timeout: self.costguard_timeout,
            max_response_bytes: self.costguard_max_response_bytes,
        }))
    }
}

/// How a worker authenticates to Emersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmersionAuthKind {
    // Plain comments: documented variants would switch `--help` to its long layout.
    // A TLS client certificate (EMERSION_CLIENT_CERT, EMERSION_CLIENT_KEY): Emersion's
    // documented, certificate-based provider API.
    Certificate,
    // A WS-Security UsernameToken (EMERSION_USERNAME, EMERSION_PASSWORD).
    WsSecurity,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct EmersionSettings {
    /// Emersion base URL (https:// with certificate authentication); operations are
    /// posted to <url>/Orders, /Services, /Plans, /Account.
    #[arg(long, env = "EMERSION_URL", default_value = "http://127.0.0.1:8080")]
    pub emersion_url: String,
    /// How the worker authenticates to Emersion: `certificate` (the documented provider
    /// API) or `ws-security` (the UsernameToken of earlier versions).
    #[arg(long, env = "EMERSION_AUTH", value_enum, default_value_t = EmersionAuthKind::Certificate)]
    pub emersion_auth: EmersionAuthKind,
    /// PEM file of the client certificate (chain, leaf first) every Emersion call presents;
    /// setting it enables Emersion.
    #[arg(long, env = "EMERSION_CLIENT_CERT", value_name = "PATH")]
    pub emersion_client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, env = "EMERSION_CLIENT_KEY", value_name = "PATH")]
    pub emersion_client_key: Option<PathBuf>,
    /// PEM file of an extra root certificate to trust for Emersion's server, beside the
    /// built-in ones.
    #[arg(long, env = "EMERSION_CA_CERT", value_name = "PATH")]
    pub emersion_ca_cert: Option<PathBuf>,
    /// Emersion API user, with EMERSION_AUTH=ws-security only.
    #[arg(long, env = "EMERSION_USERNAME", default_value = "")]
    pub emersion_username: String,
    /// Emersion API password, with EMERSION_AUTH=ws-security only (sent only as a digest).
    #[arg(
        long,
        env = "EMERSION_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub emersion_password: Secret,
    /// Timeout of one Emersion call, the whole answer included (was EMERSION_TIMEOUT_MS, in
    /// milliseconds).
    #[arg(long, env = "EMERSION_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub emersion_timeout: Duration,
    /// Largest Emersion response body read, in bytes; a larger one fails the call.
    #[arg(long, env = "EMERSION_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    pub emersion_max_response_bytes: usize,
}

impl EmersionSettings {
    /// `None` when Emersion is not configured; an error when it is half-configured, or
    /// when a certificate file fails its checks (read at `now`, Unix seconds).
    pub fn client_config(&self, now: i64) -> Result<Option<EmersionConfig>, ConfigError> {
        let auth = match self.emersion_auth {
            EmersionAuthKind::Certificate => match self.certificate(now)? {
                Some(certificate) => EmersionAuth::Certificate(certificate),
                None => return Ok(None),
            },
            EmersionAuthKind::WsSecurity => EmersionAuth::WsSecurity {
                username: self.emersion_username.trim().to_string(),
                password: self.emersion_password.clone(),
            },
        };
        if let EmersionAuth::WsSecurity { username, password } = &auth {
            let mut missing = Vec::new();
            if username.is_empty() {
                missing.push("EMERSION_USERNAME");
            }
            if password.expose().is_empty() {
                missing.push("EMERSION_PASSWORD");
            }
            if !missing.is_empty() {
                return Err(ConfigError::Missing(format!(
                    "{} (EMERSION_AUTH=ws-security)",
                    missing.join(", ")
                )));
            }
        }
        Ok(Some(EmersionConfig {
            base_url: self.emersion_url.clone(),
            auth,
            timeout: self.emersion_timeout,
            max_response_bytes: self.emersion_max_response_bytes,
        }))
    }

    /// The client certificate, checked; `None` when none is configured.
    fn certificate(&self, now: i64) -> Result<Option<ClientTls>, ConfigError> {
        let (cert, key) = match (&self.emersion_client_cert, &self.emersion_client_key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(ConfigError::Missing(
                    "EMERSION_CLIENT_KEY (EMERSION_CLIENT_CERT is set)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing(
                    "EMERSION_CLIENT_CERT (EMERSION_CLIENT_KEY is set)".into(),
                ))
            }
            (None, None) => {
                let ws_security = !self.emersion_username.trim().is_empty()
                    || !self.emersion_password.expose().is_empty();
                return match (ws_security, &self.emersion_ca_cert) {
                    (true, _) => Err(ConfigError::WsSecurityNotChosen),
                    (false, Some(_)) => Err(ConfigError::Missing(
                        "EMERSION_CLIENT_CERT, EMERSION_CLIENT_KEY (EMERSION_CA_CERT is set)"
                            .into(),
                    )),
                    (false, None) => Ok(None),
                };
            }
        };
        if !self
            .emersion_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        {
            return Err(ConfigError::CertificateWithoutTls(
                self.emersion_url.clone(),
            ));
        }
        let certificate = certificate::load(cert, key, self.emersion_ca_cert.as_deref(), now)?;
        Ok(Some(certificate))
    }
}

/// The worker's configuration; `billflow config` prints it (as the TOML a `--config` file
/// takes, secrets masked).
#[derive(Debug, Clone, Args, Serialize)]
pub struct WorkerSettings {
    #[command(flatten)]
    #[serde(flatten)]
    pub broker: BrokerSettings,
    /// Directory of the stage store (sled). One worker per directory.
    #[arg(long, env = "BILLFLOW_DATA_DIR", default_value = "./billflow-data")]
    pub data_dir: PathBuf,
    /// Address of the admin HTTP API (/healthz, /readyz, /metrics, /workflows/{id}); unset: none.
    #[arg(long, env = "BILLFLOW_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,
    /// How many workers share the shards of this prefix (with BILLFLOW_WORKER_ID).
    #[arg(long, env = "BILLFLOW_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// This worker's number, 0 to BILLFLOW_WORKERS - 1, unique among running workers: it
    /// owns shards s with s mod BILLFLOW_WORKERS = id, and stands by for the others.
    #[arg(long, env = "BILLFLOW_WORKER_ID", default_value_t = 0)]
    pub worker_id: u16,
    /// Page cache of the stage store, in MiB: bounds the worker's memory as its store
    /// grows.
    #[arg(long, env = "BILLFLOW_STORE_CACHE_MB", default_value_t = crate::store::DEFAULT_CACHE_MB)]
    pub store_cache_mb: u64,
    /// Deliveries in flight at once per shard queue this worker is active on (AMQP
    /// prefetch; the intake takes at most 64); each runs concurrently.
    #[arg(long, env = "BILLFLOW_PREFETCH", default_value_t = 64)]
    pub prefetch: u16,
    /// Largest accepted message body, in bytes; larger ones are dead-lettered.
    #[arg(long, env = "BILLFLOW_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_message_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight stages may take to finish (was
    /// BILLFLOW_SHUTDOWN_GRACE_MS, in milliseconds).
    #[arg(long, env = "BILLFLOW_SHUTDOWN_GRACE", default_value = "30s", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub shutdown_grace: Duration,
    /// When a worker takes its home shards back from a standby, how long it waits for the
    /// standby's stages on them to end (the standby says so in the shard's ledger) before
    /// it runs anything there.
    #[arg(long, env = "BILLFLOW_HANDBACK_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub handback_timeout: Duration,
    /// Retry policy as JSON: default fields at the top, per-stage overrides under "stages",
    /// e.g. '{"max_attempts":5,"initial_delay":"10s","stages":{"advancepay_renewal.submit":{"max_attempts":10}}}'.
    #[arg(long, env = "BILLFLOW_RETRY_POLICY", value_parser = RetryConfig::parse, default_value = "{}", value_name = "JSON")]
    pub retry_policy: RetryConfig,
    /// How long after a call whose outcome is unknown (timeout, crash mid-call) the
    /// platform is asked whether it took effect: long enough for a slow call still in
    /// flight to have landed (was BILLFLOW_RECONCILE_DELAY_MS, in milliseconds).
    #[arg(long, env = "BILLFLOW_RECONCILE_DELAY", default_value = "1m", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub reconcile_delay: Duration,
    /// Protection of each billing API as JSON by API name (costguard, emersion): concurrency,
    /// token-bucket rate and circuit breaker, e.g. '{"costguard":{"max_concurrency":8,"rate_per_sec":20,"burst":20,"breaker_failures":5,"breaker_cooldown":"30s"}}'.
    #[arg(long, env = "BILLFLOW_API_LIMITS", value_parser = LimitsConfig::parse, default_value = "{}", value_name = "JSON")]
    pub api_limits: LimitsConfig,
    /// How long the record of a finished stage is kept; 0 keeps it forever (was
    /// BILLFLOW_RETENTION_SECS, in seconds). A duplicate of a command that arrives after its
    /// records were removed is run again, so this must exceed how long a CRM may re-send a
    /// command and how long dead letters may wait for a person.
    #[arg(long, env = "BILLFLOW_RETENTION", default_value = "7d", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub retention: Duration,
    /// How long the events log (`<prefix>.events.log`, a stream of every event that
    /// dashboards and pipelines read from an offset or a time) keeps events; 0: until the
    /// size limit. Set when a worker first declares the stream; later, change it with a
    /// policy on `^<prefix>\.events\.log$`.
    #[arg(long, env = "BILLFLOW_EVENTS_LOG_MAX_AGE", default_value = "7d", value_name = "DURATION", value_parser = duration::parse)]
    #[serde(serialize_with = "duration::serialize")]
    pub events_log_max_age: Duration,
    /// The most bytes the events log keeps (its oldest segments go first); 0: no size
    /// limit. Set when a worker first declares the stream, like its age.
    #[arg(long, env = "BILLFLOW_EVENTS_LOG_MAX_BYTES", default_value_t = DEFAULT_EVENTS_LOG_MAX_BYTES, value_name = "BYTES")]
    pub events_log_max_bytes: u64,
    /// Key of the HMAC that signs stage messages between workers; the same on every
    /// worker of a prefix. Required: a worker without it refuses to start.
    #[arg(long, env = "BILLFLOW_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<Secret>,
    /// The key before the last rotation, still accepted on incoming stage messages, so keys
    /// change without a stop.
    #[arg(long, env = "BILLFLOW_SIGNING_KEY_PREVIOUS", hide_env_values = true)]
    pub signing_key_previous: Option<Secret>,
    /// Bearer token the admin API requires on everything but /healthz and /readyz. Unset:
    /// the admin API may only listen on a loopback address.
    #[arg(long, env = "BILLFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Serve /metrics without the admin token (for a Prometheus that cannot send one).
    #[arg(long, env = "BILLFLOW_METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_public: bool,
    /// Decimal places of the currency: an amount from a platform with more fails its stage.
    #[arg(long, env = "BILLFLOW_CURRENCY_SCALE", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=6))]
    pub currency_scale: u32,
    /// Fault injection for tests: a stage of this name panics when it runs.
    #[arg(skip)]
    #[serde(skip)]
    pub panic_in_stage: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub costguard: CostGuardSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub emersion: EmersionSettings,
}

impl WorkerSettings {
    /// Every configured secret: masked wherever it would appear in a log, an event, a
    /// header or an answer.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = crate::redact::url_password(self.broker.amqp_url.expose());
        let configured = [
            Some(&self.costguard.costguard_token),
            Some(&self.costguard.costguard_authenticated_key),
            Some(&self.costguard.costguard_password),
            Some(&self.emersion.emersion_password),
            self.signing_key.as_ref(),
            self.signing_key_previous.as_ref(),
            self.admin_token.as_ref(),
        ];
        secrets.extend(
            configured
                .into_iter()
                .flatten()
                .map(|s| s.expose().to_string()),
        );
        secrets
    }

    /// The settings as the TOML a `--config` file takes, every secret masked.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let text = toml::to_string(self)?;
        Ok(crate::redact::Redactor::new(self.secrets())
            .redact(&text)
            .into_owned())
    }
}

fn url_password_masked<S: Serializer>(url: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::secret::redact_url(url.expose()))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration: {0}")]
    Missing(String),
    #[error("BILLFLOW_WORKER_ID {id} is not below BILLFLOW_WORKERS {workers}")]
    WorkerId { id: u16, workers: u16 },
    #[error("no billing platform configured: set COSTGUARD_TOKEN (or COSTGUARD_USERNAME and COSTGUARD_PASSWORD), COSTGUARD_AUTHENTICATED_KEY and COSTGUARD_ENVIRONMENT, or EMERSION_CLIENT_CERT and EMERSION_CLIENT_KEY")]
    NoPlatform,
    #[error("both COSTGUARD_TOKEN and COSTGUARD_USERNAME/COSTGUARD_PASSWORD are set: set the static token or the login, not both")]
    TwoCostGuardCredentials,
    #[error("Emersion client certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("EMERSION_CLIENT_CERT is set but EMERSION_URL {0} is not https://: the certificate is only presented over TLS")]
    CertificateWithoutTls(String),
    #[error("EMERSION_USERNAME/EMERSION_PASSWORD are set but Emersion now authenticates with a client certificate: set EMERSION_CLIENT_CERT and EMERSION_CLIENT_KEY, or keep the UsernameToken with EMERSION_AUTH=ws-security (README: \"Migrating from WS-Security to client certificates\")")]
    WsSecurityNotChosen,
    #[error("BILLFLOW_HTTP_ADDR {addr} is not a loopback address and BILLFLOW_ADMIN_TOKEN is not set: set BILLFLOW_ADMIN_TOKEN, or serve the admin API on 127.0.0.1 or [::1]")]
    AdminWithoutToken { addr: std::net::SocketAddr },
    #[error("BILLFLOW_ADMIN_TOKEN {0}")]
    AdminToken(String),
}
