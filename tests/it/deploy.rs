//! The deploy files agree with the binary and with each other: `Dockerfile`,
//! `deploy/docker-compose.yml`, `deploy/kustomization.yaml` and the manifests it lists.
//! Nothing is built or started (there may be no Docker engine or cluster): the files are
//! parsed and compared with `billflow worker --help`, the admin API's routes and the
//! RabbitMQ access definitions the brokers import.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::Value;

const COMPOSE: &str = "deploy/docker-compose.yml";
const KUSTOMIZATION: &str = "deploy/kustomization.yaml";
const DOCKERFILE: &str = "Dockerfile";
/// Where the StatefulSet's pod ordinal comes from (Kubernetes >= 1.28).
const POD_INDEX: &str = "metadata.labels['apps.kubernetes.io/pod-index']";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, `<<` merge keys resolved as Compose resolves them.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            value.apply_merge().unwrap();
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{} should hold one document", path.display());
    docs.remove(0)
}

/// A YAML scalar as the string a container sees.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(value: &Value) -> String {
    scalar(value).unwrap_or_else(|| panic!("expected a scalar, found {value:?}"))
}

fn list(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// `billflow worker --help`: every variable the worker reads, with its default if any.
fn worker_settings() -> &'static BTreeMap<String, Option<String>> {
    static SETTINGS: OnceLock<BTreeMap<String, Option<String>>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_billflow"))
            .args(["worker", "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        // clap prints "[env: NAME=...]" or "[env: NAME]" and "[default: VALUE]" per flag.
        let settings: BTreeMap<_, _> = help
            .lines()
            .filter_map(|line| {
                let env = line.split("[env: ").nth(1)?;
                let name: String = env
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let default = line
                    .split("[default: ")
                    .nth(1)
                    .and_then(|d| d.split(']').next())
                    .map(str::to_string);
                Some((name, default))
            })
            .collect();
        assert!(settings.len() >= 15, "parsed {settings:?} from\n{help}");
        settings
    })
}

/// "<place> sets [...]" for the names `billflow worker --help` does not list, if any.
fn unknown_settings<'a>(
    place: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> Option<String> {
    let unknown: Vec<_> = names
        .into_iter()
        .filter(|name| !worker_settings().contains_key(*name))
        .collect();
    (!unknown.is_empty()).then(|| format!("{place} sets {unknown:?}"))
}

/// The value a worker runs with: the one set, else the `--help` default.
fn setting(env: &BTreeMap<String, String>, name: &str) -> String {
    env.get(name)
        .cloned()
        .or_else(|| worker_settings().get(name).cloned().flatten())
        .unwrap_or_else(|| panic!("{name} is neither set nor has a default"))
}

fn admin_port(env: &BTreeMap<String, String>) -> u16 {
    let addr = setting(env, "BILLFLOW_HTTP_ADDR");
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("BILLFLOW_HTTP_ADDR {addr:?}: {e}"))
        .port()
}

fn shutdown_grace(env: &BTreeMap<String, String>) -> Duration {
    billflow::config::duration::parse(&setting(env, "BILLFLOW_SHUTDOWN_GRACE")).unwrap()
}

/// The paths `src/runtime/admin.rs` routes.
fn admin_routes() -> BTreeSet<String> {
    read(&root().join("src/runtime/admin.rs"))
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_string))
        .collect()
}

/// The parts of an `amqp://user:password@host:port/vhost` URL the broker must agree with.
#[derive(Debug)]
struct AmqpUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    vhost: String,
}

fn parse_amqp_url(url: &str) -> AmqpUrl {
    let rest = url
        .strip_prefix("amqp://")
        .unwrap_or_else(|| panic!("{url}: not amqp://"));
    let (userinfo, rest) = rest.rsplit_once('@').expect("credentials in AMQP_URL");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    let (authority, vhost) = rest.split_once('/').expect("a vhost in AMQP_URL");
    let (host, port) = authority.split_once(':').unwrap_or((authority, "5672"));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    AmqpUrl {
        user: decode(user),
        password: decode(password),
        host: host.to_string(),
        port: port.parse().unwrap(),
        vhost: decode(vhost),
    }
}

/// The access definitions a broker imports (vhost, users, permissions) let `url` in.
fn assert_access_admits(access_json: &str, url: &AmqpUrl, place: &str) {
    let defs: serde_json::Value =
        serde_json::from_str(access_json).unwrap_or_else(|e| panic!("{place}: not JSON: {e}"));
    let items = |key: &str| defs[key].as_array().cloned().unwrap_or_default();
    assert!(
        items("vhosts")
            .iter()
            .any(|v| v["name"] == url.vhost.as_str()),
        "{place} does not create vhost {:?}",
        url.vhost
    );
    assert!(
        items("users")
            .iter()
            .any(|u| u["name"] == url.user.as_str() && u["password"] == url.password.as_str()),
        "{place} has no user {:?} with the password AMQP_URL uses",
        url.user
    );
    assert!(
        items("permissions")
            .iter()
            .any(|p| p["user"] == url.user.as_str()
                && p["vhost"] == url.vhost.as_str()
                && ["configure", "write", "read"].iter().all(|k| p[*k] == ".*")),
        "{place} does not give {:?} full permissions on {:?}",
        url.user,
        url.vhost
    );
}

/// The directory `load_definitions` names in a rabbitmq.conf text.
fn load_definitions_dir(conf: &str) -> String {
    conf.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "load_definitions")
        .map(|(_, value)| value.trim().trim_end_matches('/').to_string())
        .expect("load_definitions in the RabbitMQ configuration")
}

/// Of `mounts` as (target, source), the sources of the files in `dir`, in the order
/// RabbitMQ imports them: by file name.
fn imported<T: Clone>(dir: &str, mounts: &[(String, T)]) -> Vec<T> {
    let mut inside: Vec<_> = mounts
        .iter()
        .filter(|(target, _)| Path::new(target).parent() == Some(Path::new(dir)))
        .cloned()
        .collect();
    inside.sort_by(|a, b| a.0.cmp(&b.0));
    inside.into_iter().map(|(_, source)| source).collect()
}

// ---------------------------------------------------------------- Compose

fn compose() -> Value {
    yaml(&root().join(COMPOSE))
}

fn compose_dir() -> PathBuf {
    root().join(COMPOSE).parent().unwrap().to_path_buf()
}

fn command(service: &Value) -> Vec<String> {
    list(&service["command"]).iter().map(text).collect()
}

/// `environment:` as a map or as a list of `NAME=value`.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = text(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Short-syntax volumes as (source, target).
fn compose_volumes(service: &Value) -> Vec<(String, String)> {
    list(&service["volumes"])
        .iter()
        .map(|v| {
            let v = text(v);
            let mut parts = v.split(':');
            let source = parts.next().unwrap().to_string();
            let target = parts
                .next()
                .unwrap_or_else(|| panic!("volume {v}"))
                .to_string();
            (source, target)
        })
        .collect()
}

fn is_bind_mount(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/')
}

/// The worker services, by name, with their environment.
fn compose_workers(compose: &Value) -> Vec<(String, &Value, BTreeMap<String, String>)> {
    let workers: Vec<_> = compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, service)| command(service).first().map(String::as_str) == Some("worker"))
        .map(|(name, service)| (text(name), service, compose_env(service)))
        .collect();
    assert!(!workers.is_empty(), "no service runs `billflow worker`");
    workers
}

/// "45s", "1m30s", "500ms": Compose's duration syntax.
fn compose_duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {s}"));
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            other => panic!("unit {other:?} in duration {s}"),
        };
        rest = &rest[unit..];
    }
    total
}

// ---------------------------------------------------------------- Kubernetes

struct Kube {
    kustomization: Value,
    objects: Vec<Value>,
}

impl Kube {
    fn load() -> Kube {
        let kustomization = yaml(&root().join(KUSTOMIZATION));
        let dir = root().join(KUSTOMIZATION).parent().unwrap().to_path_buf();
        let objects = list(&kustomization["resources"])
            .iter()
            .flat_map(|resource| yaml_documents(&dir.join(text(resource))))
            .collect();
        Kube {
            kustomization,
            objects,
        }
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the kustomization's resources"))
    }

    fn only(&self, kind: &str) -> &Value {
        let found: Vec<_> = self.objects.iter().filter(|o| o["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "expected one {kind}");
        found[0]
    }

    /// A Secret's value, from `stringData` or base64 `data`.
    fn secret_value(&self, name: &str, key: &str) -> String {
        let secret = self.find("Secret", name);
        if let Some(value) = scalar(&secret["stringData"][key]) {
            return value;
        }
        use base64::Engine as _;
        let encoded = scalar(&secret["data"][key])
            .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    }

    fn keys(&self, kind: &str, name: &str) -> Vec<String> {
        let object = self.find(kind, name);
        ["data", "stringData"]
            .iter()
            .filter_map(|field| object[*field].as_mapping())
            .flat_map(|map| map.keys().map(text))
            .collect()
    }

    /// The name and key of the ConfigMap generated from `deploy/rabbitmq/definitions.json`.
    fn definitions_config_map(&self) -> (String, String) {
        list(&self.kustomization["configMapGenerator"])
            .iter()
            .find_map(|generator| {
                list(&generator["files"]).iter().find_map(|file| {
                    let file = text(file);
                    let (key, path) = file.split_once('=').unwrap_or(("", &file));
                    (path == "rabbitmq/definitions.json").then(|| {
                        assert_eq!(
                            generator["options"]["disableNameSuffixHash"], true,
                            "the RabbitmqCluster names the ConfigMap, and kustomize does not \
                             rewrite names inside it"
                        );
                        let key = if key.is_empty() {
                            "definitions.json"
                        } else {
                            key
                        };
                        (text(&generator["name"]), key.to_string())
                    })
                })
            })
            .expect("a configMapGenerator for rabbitmq/definitions.json")
    }
}

/// A container's environment as the pod sees it, in order: `envFrom` first, then `env`
/// with `$(NAME)` expanded. Secret references are resolved to their values; a field
/// reference reads as `fieldRef:<path>`. Also returns the names set by `env` that are only
/// there to be expanded into others.
fn container_env(kube: &Kube, container: &Value) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut env = BTreeMap::new();
    for source in list(&container["envFrom"]) {
        let (kind, name) = if let Some(name) = scalar(&source["configMapRef"]["name"]) {
            ("ConfigMap", name)
        } else {
            ("Secret", text(&source["secretRef"]["name"]))
        };
        for key in kube.keys(kind, &name) {
            let value = match kind {
                "ConfigMap" => text(&kube.find(kind, &name)["data"][key.as_str()]),
                _ => kube.secret_value(&name, &key),
            };
            env.insert(key, value);
        }
    }
    let mut referenced = BTreeSet::new();
    for var in list(&container["env"]) {
        let name = text(&var["name"]);
        let value = if let Some(value) = scalar(&var["value"]) {
            let mut expanded = value.clone();
            for piece in value.split("$(").skip(1) {
                let inner = piece.split(')').next().unwrap();
                let known = env
                    .get(inner)
                    .unwrap_or_else(|| panic!("{name} uses $({inner}) before it is defined"));
                expanded = expanded.replace(&format!("$({inner})"), known);
                referenced.insert(inner.to_string());
            }
            expanded
        } else if let Some(path) = scalar(&var["valueFrom"]["fieldRef"]["fieldPath"]) {
            format!("fieldRef:{path}")
        } else {
            let secret = &var["valueFrom"]["secretKeyRef"];
            kube.secret_value(&text(&secret["name"]), &text(&secret["key"]))
        };
        env.insert(name, value);
    }
    (env, referenced)
}

fn worker_statefulset(kube: &Kube) -> (&Value, &Value) {
    let sts = kube.only("StatefulSet");
    let containers = list(&sts["spec"]["template"]["spec"]["containers"]);
    let worker = containers
        .iter()
        .find(|c| list(&c["args"]).first().map(text).as_deref() == Some("worker"))
        .expect("a container running `billflow worker`");
    (sts, worker)
}

/// A probe's or Service's port, resolved through the container's named ports.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let name = text(port);
    list(&container["ports"])
        .iter()
        .find(|p| p["name"] == name.as_str())
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

// ---------------------------------------------------------------- Dockerfile

/// Instructions as (keyword, arguments), continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = read(&root().join(DOCKERFILE));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

/// `ENV A=1 B=2` pairs of the final stage.
fn image_env(final_stage: &[(String, String)]) -> BTreeMap<String, String> {
    final_stage
        .iter()
        .filter(|(keyword, _)| keyword == "ENV")
        .flat_map(|(_, args)| args.split_whitespace())
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------- tests

/// Every variable set for a worker, in Compose, in the StatefulSet with its ConfigMap and
/// Secrets, and in the image, is one `billflow worker` reads: a misspelt name would be
/// silently ignored. Names set only to be expanded into another (`$(NAME)`) are exempt.
#[test]
fn worker_variables_in_the_deploy_files_are_ones_billflow_reads() {
    let mut problems: Vec<String> = compose_workers(&compose())
        .iter()
        .filter_map(|(name, _, env)| {
            unknown_settings(&format!("{COMPOSE} service {name}"), env.keys())
        })
        .collect();
    let kube = Kube::load();
    let (_, container) = worker_statefulset(&kube);
    let (env, referenced) = container_env(&kube, container);
    problems.extend(unknown_settings(
        "the worker StatefulSet (with its envFrom)",
        env.keys().filter(|name| !referenced.contains(*name)),
    ));
    let instructions = dockerfile();
    let last_from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    problems.extend(unknown_settings(
        DOCKERFILE,
        image_env(&instructions[last_from..]).keys(),
    ));
    assert!(
        problems.is_empty(),
        "not listed by `billflow worker --help`:\n{}",
        problems.join("\n")
    );
}

/// The Compose workers share the shards: ids 0..BILLFLOW_WORKERS-1, one each, the same
/// settings otherwise, each with its own store volume and admin port, stopped no sooner
/// than their shutdown grace, started once the broker is healthy.
#[test]
fn compose_runs_distinct_workers_each_with_its_own_store() {
    let compose = compose();
    let workers = compose_workers(&compose);
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(text).collect())
        .unwrap_or_default();
    let mut ids = BTreeSet::new();
    let mut stores = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    let (_, _, first) = &workers[0];
    let shared = |env: &BTreeMap<String, String>| {
        let mut env = env.clone();
        env.remove("BILLFLOW_WORKER_ID");
        env
    };
    for (name, service, env) in &workers {
        assert_eq!(
            shared(env),
            shared(first),
            "{name} differs from the other workers"
        );
        let count: usize = setting(env, "BILLFLOW_WORKERS").parse().unwrap();
        assert_eq!(count, workers.len(), "BILLFLOW_WORKERS of {name}");
        let id: usize = setting(env, "BILLFLOW_WORKER_ID").parse().unwrap();
        assert!(id < count, "{name}: BILLFLOW_WORKER_ID {id} >= {count}");
        assert!(ids.insert(id), "{name}: BILLFLOW_WORKER_ID {id} used twice");
        assert_eq!(setting(env, "BILLFLOW_QUEUE_ARGUMENTS"), "false", "{name}");

        let data_dir = setting(env, "BILLFLOW_DATA_DIR");
        let store = compose_volumes(service)
            .into_iter()
            .find(|(_, target)| *target == data_dir)
            .map(|(source, _)| source)
            .unwrap_or_else(|| panic!("{name}: no volume at BILLFLOW_DATA_DIR {data_dir}"));
        assert!(
            declared.contains(&store),
            "{name}: {store} is not a named volume"
        );
        assert!(stores.insert(store.clone()), "{name} shares volume {store}");

        let port = admin_port(env);
        let published: Vec<String> = list(&service["ports"]).iter().map(text).collect();
        let admin = published
            .iter()
            .find(|p| p.rsplit(':').next() == Some(port.to_string().as_str()))
            .unwrap_or_else(|| panic!("{name}: admin port {port} not published"));
        let host_port = admin
            .rsplit(':')
            .nth(1)
            .expect("host:container")
            .to_string();
        assert!(
            host_ports.insert(host_port),
            "{name}: host port {admin} taken"
        );

        let stop = compose_duration(&text(&service["stop_grace_period"]));
        assert!(
            stop > shutdown_grace(env),
            "{name}: stop_grace_period {stop:?} leaves no room for the shutdown grace"
        );
        let broker = &service["depends_on"]["rabbitmq"]["condition"];
        assert_eq!(broker, "service_healthy", "{name} must wait for the broker");
    }
    assert!(
        compose["services"]["rabbitmq"]["healthcheck"]["test"].is_sequence(),
        "rabbitmq needs a healthcheck for service_healthy"
    );
}

/// The Compose broker imports deploy/rabbitmq/definitions.json at boot, after the access
/// file that creates the vhost and user the workers log in with (a node importing
/// definitions at boot creates no default user), and the workers reach the simulator.
#[test]
fn compose_broker_imports_the_definitions_and_the_workers_user() {
    let compose = compose();
    let dir = compose_dir();
    let rabbitmq = &compose["services"]["rabbitmq"];
    let mounts: Vec<(String, String)> = compose_volumes(rabbitmq)
        .into_iter()
        .filter(|(source, _)| is_bind_mount(source))
        .map(|(source, target)| (target, source))
        .collect();
    let conf = mounts
        .iter()
        .find(|(target, _)| target.starts_with("/etc/rabbitmq/conf.d/"))
        .map(|(_, source)| read(&dir.join(source)))
        .expect("a configuration file in /etc/rabbitmq/conf.d/");
    let imports = imported(&load_definitions_dir(&conf), &mounts);
    assert_eq!(
        imports.last().map(String::as_str),
        Some("./rabbitmq/definitions.json"),
        "the definitions are imported last, after the access file: {imports:?}"
    );
    assert_eq!(imports.len(), 2, "{imports:?}");
    let access = read(&dir.join(&imports[0]));

    let sims: Vec<_> = compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, s)| command(s).first().map(String::as_str) == Some("sim"))
        .map(|(name, s)| {
            let cmd = command(s);
            let addr = cmd.iter().skip_while(|a| *a != "--addr").nth(1).unwrap();
            let port = addr.parse::<SocketAddr>().unwrap().port();
            format!("http://{}:{port}", text(name))
        })
        .collect();
    for (name, _, env) in compose_workers(&compose) {
        let url = parse_amqp_url(&setting(&env, "AMQP_URL"));
        assert_eq!(url.host, "rabbitmq", "{name}: AMQP_URL host");
        assert_eq!(url.port, 5672, "{name}: AMQP_URL port");
        assert_access_admits(&access, &url, &imports[0]);
        for var in ["COSTGUARD_URL", "EMERSION_URL"] {
            assert!(
                sims.contains(&env[var]),
                "{name}: {var} is not one of {sims:?}"
            );
        }
    }
}

/// The StatefulSet runs BILLFLOW_WORKERS pods with ids from the pod index, each with its
/// own volume at BILLFLOW_DATA_DIR, probes on the admin API's real routes and port, a
/// termination grace above the shutdown grace, non-root and a read-only root filesystem,
/// reaching the broker and the billing platforms through Services of these manifests.
#[test]
fn statefulset_workers_match_their_settings() {
    let kube = Kube::load();
    let (sts, container) = worker_statefulset(&kube);
    let (env, _) = container_env(&kube, container);
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];

    let replicas = spec["replicas"].as_u64().expect("replicas");
    assert_eq!(setting(&env, "BILLFLOW_WORKERS"), replicas.to_string());
    assert_eq!(env["BILLFLOW_WORKER_ID"], format!("fieldRef:{POD_INDEX}"));
    assert_eq!(setting(&env, "BILLFLOW_QUEUE_ARGUMENTS"), "false");

    let data_dir = setting(&env, "BILLFLOW_DATA_DIR");
    let claims: BTreeSet<String> = list(&spec["volumeClaimTemplates"])
        .iter()
        .map(|t| text(&t["metadata"]["name"]))
        .collect();
    let mount = list(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == data_dir.as_str())
        .unwrap_or_else(|| panic!("nothing mounted at BILLFLOW_DATA_DIR {data_dir}"));
    assert!(
        claims.contains(&text(&mount["name"])),
        "BILLFLOW_DATA_DIR must be a volumeClaimTemplate (one volume per worker)"
    );

    let port = admin_port(&env);
    let routes = admin_routes();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            routes.contains(path),
            "src/runtime/admin.rs does not route {path}"
        );
        assert_eq!(
            container_port(container, &get["port"]),
            port,
            "{probe} port"
        );
    }

    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(
        grace > shutdown_grace(&env),
        "terminationGracePeriodSeconds {grace:?}"
    );

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(container["resources"]["limits"]["memory"].is_string());

    // Services: the headless one the StatefulSet names, and one for metrics; both reach
    // the admin port of these pods.
    let pod_labels = spec["template"]["metadata"]["labels"].as_mapping().unwrap();
    let headless = kube.find("Service", &text(&spec["serviceName"]));
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let metrics: Vec<_> = kube
        .objects
        .iter()
        .filter(|o| {
            o["kind"] == "Service" && o["metadata"]["annotations"]["prometheus.io/path"].is_string()
        })
        .collect();
    assert_eq!(metrics.len(), 1, "one Service for metrics");
    assert!(routes.contains(&text(
        &metrics[0]["metadata"]["annotations"]["prometheus.io/path"]
    )));
    for service in [headless, metrics[0]] {
        let selector = service["spec"]["selector"].as_mapping().unwrap();
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "{:?} does not select the worker pods",
            service["metadata"]["name"]
        );
        let target = &list(&service["spec"]["ports"])[0]["targetPort"];
        assert_eq!(container_port(container, target), port);
    }

    let url = parse_amqp_url(&env["AMQP_URL"]);
    let cluster = kube.only("RabbitmqCluster");
    assert_eq!(
        url.host,
        text(&cluster["metadata"]["name"]),
        "AMQP_URL host"
    );
    assert_eq!(url.port, 5672);

    for var in ["COSTGUARD_URL", "EMERSION_URL"] {
        let target = env[var].strip_prefix("http://").unwrap().to_string();
        let (host, port) = target.split_once(':').unwrap();
        let service = kube.find("Service", host);
        assert!(
            list(&service["spec"]["ports"])
                .iter()
                .any(|p| p["port"] == port.parse::<u64>().unwrap()),
            "{var}: Service {host} has no port {port}"
        );
    }
}

/// What the RabbitmqCluster's nodes import at boot, in order, as (kind, name, key).
fn cluster_imports(kube: &Kube) -> Vec<(String, String, String)> {
    let cluster = kube.only("RabbitmqCluster");
    let dir = load_definitions_dir(&text(&cluster["spec"]["rabbitmq"]["additionalConfig"]));
    let pod = &cluster["spec"]["override"]["statefulSet"]["spec"]["template"]["spec"];
    let rabbitmq = list(&pod["containers"])
        .iter()
        .find(|c| c["name"] == "rabbitmq")
        .expect("an override of the rabbitmq container");
    let mounts: Vec<(String, (String, String, String))> = list(&rabbitmq["volumeMounts"])
        .iter()
        .map(|mount| {
            let volume = list(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap_or_else(|| panic!("no volume {:?}", mount["name"]));
            let sub_path = text(&mount["subPath"]);
            let (kind, source) = if volume["secret"].is_mapping() {
                ("Secret", &volume["secret"])
            } else {
                ("ConfigMap", &volume["configMap"])
            };
            let name = text(if kind == "Secret" {
                &source["secretName"]
            } else {
                &source["name"]
            });
            // With `items`, the file name maps back to a key; without, they are the same.
            let key = list(&source["items"])
                .iter()
                .find(|i| i["path"] == sub_path.as_str())
                .map(|i| text(&i["key"]))
                .unwrap_or(sub_path);
            (text(&mount["mountPath"]), (kind.to_string(), name, key))
        })
        .collect();
    imported(&dir, &mounts)
}

/// Three RabbitMQ nodes importing, at boot, the access Secret (which must admit the
/// workers' AMQP_URL: no default user is created) and then the ConfigMap the
/// kustomization generates from deploy/rabbitmq/definitions.json.
#[test]
fn rabbitmq_cluster_has_three_nodes_and_imports_the_definitions() {
    let kube = Kube::load();
    let cluster = kube.only("RabbitmqCluster");
    assert_eq!(cluster["apiVersion"], "rabbitmq.com/v1beta1");
    assert_eq!(cluster["spec"]["replicas"], 3);
    let imports = cluster_imports(&kube);
    assert_eq!(
        imports.len(),
        2,
        "the access file, then the definitions: {imports:?}"
    );
    let (name, key) = kube.definitions_config_map();
    assert_eq!(
        imports[1],
        ("ConfigMap".to_string(), name, key),
        "the generated definitions are imported last: {imports:?}"
    );
    let (kind, secret, key) = &imports[0];
    assert_eq!(kind, "Secret", "the access definitions hold a password");
    let (_, container) = worker_statefulset(&kube);
    let (env, _) = container_env(&kube, container);
    assert_access_admits(
        &kube.secret_value(secret, key),
        &parse_amqp_url(&env["AMQP_URL"]),
        &format!("Secret {secret} key {key}"),
    );
}

/// A multi-stage build whose final stage runs billflow as a non-root user (the uid the
/// pods run as), exposing the admin port of BILLFLOW_HTTP_ADDR.
#[test]
fn image_is_multi_stage_and_runs_as_a_non_root_user() {
    let instructions = dockerfile();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "build and runtime stages: {stages:?}");
    let last = &instructions[*stages.last().unwrap()..];
    let of = |keyword: &str| -> Vec<&String> {
        last.iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a)
            .collect()
    };
    let user = of("USER")
        .last()
        .map(|u| u.to_string())
        .expect("USER in the final stage");
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    assert!(uid != "root" && uid != "0", "USER {user}");
    assert!(
        uid.parse::<u32>().is_ok(),
        "USER {user}: numeric, so Kubernetes can check runAsNonRoot"
    );
    assert_eq!(of("ENTRYPOINT"), [r#"["billflow"]"#]);
    assert_eq!(of("CMD"), [r#"["worker"]"#]);
    let env = image_env(last);
    assert_eq!(of("EXPOSE"), [&admin_port(&env).to_string()]);
    assert!(of("VOLUME")
        .iter()
        .any(|v| v.contains(&env["BILLFLOW_DATA_DIR"])));

    let kube = Kube::load();
    let (sts, _) = worker_statefulset(&kube);
    let pod_security = &sts["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(text(&pod_security["runAsUser"]), uid);
    if !gid.is_empty() {
        assert_eq!(
            text(&pod_security["fsGroup"]),
            gid,
            "fsGroup makes the volume writable"
        );
    }
}

/// Every file Compose and the kustomization name exists, and every manifest under
/// deploy/k8s/ is in the kustomization.
#[test]
fn every_file_the_deploy_files_name_exists() {
    let compose = compose();
    let dir = compose_dir();
    let mut missing = Vec::new();
    let mut check = |path: PathBuf| {
        if !path.exists() {
            missing.push(path);
        }
    };
    for (_, service) in compose["services"].as_mapping().unwrap() {
        if let Some(context) = scalar(&service["build"]["context"]) {
            let context = dir.join(context);
            let dockerfile = scalar(&service["build"]["dockerfile"]).unwrap_or("Dockerfile".into());
            check(context.join(dockerfile));
        }
        for (source, _) in compose_volumes(service) {
            if is_bind_mount(&source) {
                check(dir.join(source));
            }
        }
    }
    let kube = Kube::load();
    let kdir = root().join(KUSTOMIZATION).parent().unwrap().to_path_buf();
    let listed: BTreeSet<PathBuf> = list(&kube.kustomization["resources"])
        .iter()
        .map(|r| kdir.join(text(r)))
        .collect();
    listed.iter().cloned().for_each(&mut check);
    for generator in list(&kube.kustomization["configMapGenerator"])
        .iter()
        .chain(list(&kube.kustomization["secretGenerator"]))
    {
        for file in list(&generator["files"]) {
            let file = text(file);
            check(kdir.join(file.split_once('=').map_or(file.as_str(), |(_, p)| p)));
        }
    }
    assert!(missing.is_empty(), "missing: {missing:?}");

    for entry in std::fs::read_dir(kdir.join("k8s")).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            listed.contains(&path),
            "{} is not in {KUSTOMIZATION}",
            path.display()
        );
    }
}

/// Files the crate embeds at compile time (`include_str!` with a plain path) are in the
/// image's build context and copied before the build.
#[test]
fn image_build_gets_every_file_the_code_embeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let copies: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(k, _)| k == "COPY")
        .map(|(_, a)| a)
        .collect();
    let mut sources = vec![root.join("src")];
    let mut embedded = std::collections::BTreeSet::new();
    while let Some(dir) = sources.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources.push(path);
                continue;
            }
            let code = std::fs::read_to_string(&path).unwrap_or_default();
            for part in code.split("include_str!(\"").skip(1) {
                let literal = part.split('"').next().unwrap_or_default();
                let file = dir.join(literal);
                let file = file.canonicalize().unwrap_or(file);
                let top = file
                    .strip_prefix(root.canonicalize().unwrap())
                    .unwrap_or_else(|_| {
                        panic!(
                            "{} embeds {literal} from outside the repository",
                            path.display()
                        )
                    })
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .unwrap();
                embedded.insert(top);
            }
        }
    }
    assert!(
        embedded.contains("schemas"),
        "the scan finds the AsyncAPI examples: {embedded:?}"
    );
    for top in embedded {
        assert!(
            ignore
                .lines()
                .any(|l| l.trim() == format!("!{top}/") || l.trim() == format!("!{top}")),
            ".dockerignore keeps {top}/ out of the build context"
        );
        assert!(
            copies
                .iter()
                .any(|c| c.starts_with(&format!("{top} ")) || c.starts_with(&format!("{top}/ "))),
            "the Dockerfile does not COPY {top}/ before building: {copies:?}"
        );
    }
}

const ADMIN_TOKEN: &str = "BILLFLOW_ADMIN_TOKEN";
const SIGNING_KEY: &str = "BILLFLOW_SIGNING_KEY";

/// The final stage's `ENV`: what a container has unless its deployment sets otherwise.
fn final_image_env() -> BTreeMap<String, String> {
    let instructions = dockerfile();
    let last_from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    image_env(&instructions[last_from..])
}

/// A worker whose admin API listens beyond loopback (its own BILLFLOW_HTTP_ADDR, else the
/// image's) has a token the worker accepts; otherwise it would refuse to start.
fn assert_admin_needs_a_token(place: &str, env: &BTreeMap<String, String>) {
    let image = final_image_env();
    let Some(addr) = env
        .get("BILLFLOW_HTTP_ADDR")
        .or_else(|| image.get("BILLFLOW_HTTP_ADDR"))
    else {
        return;
    };
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("{place}: BILLFLOW_HTTP_ADDR {addr:?}: {e}"));
    if addr.ip().to_canonical().is_loopback() {
        return;
    }
    let token = env.get(ADMIN_TOKEN).map(|t| t.trim()).unwrap_or_default();
    assert!(
        token.len() >= billflow::runtime::admin::MIN_TOKEN_LEN,
        "{place}: the admin API on {addr} has no {ADMIN_TOKEN} of at least {} characters",
        billflow::runtime::admin::MIN_TOKEN_LEN
    );
}

/// Every worker has the admin token and the signing key: in Kubernetes from a Secret
/// (`secretKeyRef`, and not also in the ConfigMap), in Compose set in its environment. A
/// non-loopback admin address always comes with a token; the image carries neither.
#[test]
fn every_worker_has_the_admin_token_and_signing_key_from_a_secret() {
    let image = final_image_env();
    for var in [ADMIN_TOKEN, SIGNING_KEY] {
        assert!(
            !image.contains_key(var),
            "{DOCKERFILE} bakes {var} into the image"
        );
    }

    for (name, _, env) in compose_workers(&compose()) {
        let place = format!("{COMPOSE} service {name}");
        for var in [ADMIN_TOKEN, SIGNING_KEY] {
            let value = env.get(var).map(|v| v.trim()).unwrap_or_default();
            assert!(!value.is_empty(), "{place} does not set {var}");
        }
        assert_admin_needs_a_token(&place, &env);
    }

    let kube = Kube::load();
    let (_, container) = worker_statefulset(&kube);
    let config_maps: Vec<String> = list(&container["envFrom"])
        .iter()
        .filter_map(|source| scalar(&source["configMapRef"]["name"]))
        .collect();
    for var in [ADMIN_TOKEN, SIGNING_KEY] {
        let entry = list(&container["env"])
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("the worker StatefulSet does not set {var}"));
        let reference = &entry["valueFrom"]["secretKeyRef"];
        assert!(
            reference.is_mapping(),
            "{var} must come from a Secret (secretKeyRef), not {entry:?}"
        );
        let value = kube.secret_value(&text(&reference["name"]), &text(&reference["key"]));
        assert!(
            !value.trim().is_empty(),
            "{var}: the Secret's value is empty"
        );
        for map in &config_maps {
            assert!(
                !kube.keys("ConfigMap", map).contains(&var.to_string()),
                "ConfigMap {map} also sets {var}"
            );
        }
    }
    let (env, _) = container_env(&kube, container);
    assert_admin_needs_a_token("the worker StatefulSet", &env);
}

/// With the token set, the probes still work: they use the routes open without it. A
/// Service asking Prometheus to scrape by annotation (which sends no token) goes with
/// BILLFLOW_METRICS_PUBLIC=true.
#[test]
fn probes_and_scraping_need_no_token() {
    let kube = Kube::load();
    let (_, container) = worker_statefulset(&kube);
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = text(&container[probe]["httpGet"]["path"]);
        assert!(
            billflow::runtime::admin::OPEN_ROUTES.contains(&path.as_str()),
            "{probe} on {path}, which needs the admin token"
        );
    }
    let scraped = kube.objects.iter().any(|o| {
        o["kind"] == "Service" && o["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    });
    if scraped {
        let (env, _) = container_env(&kube, container);
        assert_eq!(
            setting(&env, "BILLFLOW_METRICS_PUBLIC"),
            "true",
            "Prometheus scrapes by annotation, without the admin token"
        );
    }
}
