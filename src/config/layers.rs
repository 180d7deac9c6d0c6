//! Where settings come from. Clap reads flags and variables; below them this module adds
//! the optional TOML file (`--config` / `BILLFLOW_CONFIG`) and the variables renamed when
//! durations became human-readable ([`RENAMED`]), both as clap default values set before
//! the real parse. So a setting is, from strongest to weakest: its flag, its variable, its
//! old variable, the file, the built-in default.
//!
//! A file key is a setting's long flag in snake_case, which is also its variable in lower
//! case without `BILLFLOW_` (`reconcile_delay = "30s"`, `costguard_url = "..."`). Keys may
//! be grouped in a table named by their first word(s) (`[costguard]` `url = "..."`), and a
//! JSON setting (`retry_policy`, `api_limits`) may be written as a table. A key that names
//! no setting is an error.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, ArgMatches, Command};

use super::{duration, Renamed, RENAMED};

/// The variable naming the configuration file, when `--config` does not.
pub const CONFIG_VARIABLE: &str = "BILLFLOW_CONFIG";

/// Settings whose value is JSON (`value_name = "JSON"`) may be a table in the file.
const JSON: &str = "JSON";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: unknown key {key:?}; keys are the long flag names in snake_case, see `billflow worker --help`")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: {key:?} is now {setting:?}, a duration such as \"30s\"")]
    RenamedKey {
        path: PathBuf,
        key: String,
        setting: &'static str,
    },
    #[error("{path}: {key:?} must be a string, a number or a boolean")]
    NotAValue { path: PathBuf, key: String },
    #[error("{path}: {key:?} is set twice")]
    Twice { path: PathBuf, key: String },
    #[error("{name} {value:?} is not a whole number of {unit}")]
    OldValue {
        name: String,
        value: String,
        unit: &'static str,
    },
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// What [`parse`] read.
pub struct Parsed<T> {
    pub value: T,
    /// The secrets among the values, whichever layer they came from: for the redactor.
    pub secrets: Vec<String>,
}

/// `T` from the command line, the environment and the configuration file.
pub fn parse<T: clap::Parser>(
    args: impl IntoIterator<Item = OsString>,
) -> Result<Parsed<T>, LoadError> {
    let (mut command, args) = prepare(T::command(), args.into_iter().collect(), &|name| {
        std::env::var(name).ok()
    })?;
    let matches = command.try_get_matches_from_mut(args)?;
    let value = T::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    let mut secrets = Vec::new();
    collect_secrets(&command, &matches, &mut secrets);
    Ok(Parsed { value, secrets })
}

/// `command` with `--config`, and the file's and the old variables' values as defaults;
/// `args` with old flags in the new form. `env` reads a variable.
pub fn prepare(
    command: Command,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Command, Vec<OsString>), LoadError> {
    let command = command.arg(
        Arg::new("config")
            .long("config")
            .env(CONFIG_VARIABLE)
            .value_name("PATH")
            .value_parser(clap::value_parser!(PathBuf))
            .global(true)
            .display_order(1_000)
            .help("TOML file of settings (keys: the long flag names in snake_case); flags and variables override it"),
    );
    let mut settings = BTreeMap::new();
    collect_settings(&command, &mut settings);
    let mut values = match config_path(&args, env) {
        Some(path) => read_file(&path, &settings)?,
        None => BTreeMap::new(),
    };
    for renamed in RENAMED {
        if let Some(value) = env(renamed.old_variable) {
            let value = old_value(&renamed, renamed.old_variable, &value)?;
            values.insert(renamed.setting.to_string(), value);
        }
    }
    let args = rewrite_old_flags(args)?;
    Ok((with_defaults(command, &values), args))
}

/// The file key of an argument: its long flag in snake_case, if its variable has the same
/// name (`BILLFLOW_DEMO_PREFIX` behind `demo --prefix` is not `prefix`).
fn file_key(arg: &Arg) -> Option<String> {
    let variable = arg.get_env()?.to_str()?;
    let key = arg.get_long()?.replace('-', "_");
    let natural = variable
        .strip_prefix("BILLFLOW_")
        .unwrap_or(variable)
        .to_ascii_lowercase();
    (natural == key && variable != CONFIG_VARIABLE).then_some(key)
}

/// File keys of every subcommand, each with whether its value is JSON.
fn collect_settings(command: &Command, settings: &mut BTreeMap<String, bool>) {
    for arg in command.get_arguments() {
        if let Some(key) = file_key(arg) {
            let json = arg.get_value_names().is_some_and(|names| names == [JSON]);
            settings.insert(key, json);
        }
    }
    for sub in command.get_subcommands() {
        collect_settings(sub, settings);
    }
}

fn with_defaults(command: Command, values: &BTreeMap<String, String>) -> Command {
    command
        .mut_args(
            |arg| match file_key(&arg).and_then(|key| values.get(&key)) {
                Some(value) => {
                    let secret = arg.is_hide_env_values_set();
                    arg.default_value(value.clone()).hide_default_value(secret)
                }
                None => arg,
            },
        )
        .mut_subcommands(|sub| with_defaults(sub, values))
}

/// `--config PATH` or `--config=PATH` before a `--`, else the variable.
fn config_path(args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let mut args = args.iter().skip(1).take_while(|a| *a != "--");
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    env(CONFIG_VARIABLE)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The file's settings by key, each as the text a flag would take.
fn read_file(
    path: &Path,
    settings: &BTreeMap<String, bool>,
) -> Result<BTreeMap<String, String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| LoadError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    let mut values = BTreeMap::new();
    read_table(path, table, None, settings, &mut values)?;
    Ok(values)
}

/// Reads `table`, whose keys follow `group` (the key so far, and the dotted path for
/// messages) if it is a group.
fn read_table(
    path: &Path,
    table: toml::Table,
    group: Option<(&str, &str)>,
    settings: &BTreeMap<String, bool>,
    values: &mut BTreeMap<String, String>,
) -> Result<(), LoadError> {
    for (name, value) in table {
        let (key, dotted) = match group {
            Some((key, dotted)) => (format!("{key}_{name}"), format!("{dotted}.{name}")),
            None => (name.clone(), name),
        };
        match (settings.get(&key), value) {
            (Some(&json), value) => {
                let text = setting_text(value, json).ok_or_else(|| LoadError::NotAValue {
                    path: path.to_path_buf(),
                    key: dotted.clone(),
                })?;
                if values.insert(key, text).is_some() {
                    return Err(LoadError::Twice {
                        path: path.to_path_buf(),
                        key: dotted,
                    });
                }
            }
            (None, toml::Value::Table(inner)) => {
                read_table(path, inner, Some((&key, &dotted)), settings, values)?
            }
            (None, _) => {
                let path = path.to_path_buf();
                return Err(match RENAMED.iter().find(|r| old_key(r) == key) {
                    Some(renamed) => LoadError::RenamedKey {
                        path,
                        key: dotted,
                        setting: renamed.setting,
                    },
                    None => LoadError::UnknownKey { path, key: dotted },
                });
            }
        }
    }
    Ok(())
}

fn setting_text(value: toml::Value, json: bool) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        value @ (toml::Value::Table(_) | toml::Value::Array(_)) if json => {
            serde_json::to_string(&value).ok()
        }
        toml::Value::Table(_) | toml::Value::Array(_) => None,
    }
}

/// `reconcile_delay_ms`: the old name as a file key, refused with a pointer to the new one.
fn old_key(renamed: &Renamed) -> String {
    renamed.old_flag().trim_start_matches('-').replace('-', "_")
}

/// An old variable's or flag's number as the duration text the new setting takes.
fn old_value(renamed: &Renamed, name: &str, value: &str) -> Result<String, LoadError> {
    let unit_ms = u64::try_from(renamed.old_unit.as_millis()).unwrap_or(u64::MAX);
    value
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(|ms| duration::format(Duration::from_millis(ms)))
        .ok_or_else(|| LoadError::OldValue {
            name: name.to_string(),
            value: value.to_string(),
            unit: if unit_ms == 1 {
                "milliseconds"
            } else {
                "seconds"
            },
        })
}

/// `--reconcile-delay-ms 30000` (or `=30000`) as `--reconcile-delay 30s`, before a `--`.
fn rewrite_old_flags(args: Vec<OsString>) -> Result<Vec<OsString>, LoadError> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let text = arg.to_str().unwrap_or_default();
        let old = RENAMED.iter().find_map(|renamed| {
            let flag = renamed.old_flag();
            if text == flag {
                Some((renamed, flag, None))
            } else {
                let value = text.strip_prefix(&format!("{flag}="))?;
                Some((renamed, flag, Some(value.to_string())))
            }
        });
        match old {
            Some((renamed, flag, inline)) => {
                let value = match inline {
                    Some(value) => value,
                    None => match args.next() {
                        Some(next) => next.to_string_lossy().into_owned(),
                        // Left for clap to say that the flag needs a value.
                        None => {
                            out.push(format!("--{}", renamed.setting.replace('_', "-")).into());
                            break;
                        }
                    },
                };
                out.push(format!("--{}", renamed.setting.replace('_', "-")).into());
                out.push(old_value(renamed, &flag, &value)?.into());
            }
            None => out.push(arg),
        }
    }
    Ok(out)
}

/// The values of the arguments whose variables are secret (`hide_env_values`); of a URL,
/// its password.
fn collect_secrets(command: &Command, matches: &ArgMatches, secrets: &mut Vec<String>) {
    for arg in command.get_arguments() {
        if !arg.is_hide_env_values_set() {
            continue;
        }
        let Ok(Some(raw)) = matches.try_get_raw(arg.get_id().as_str()) else {
            continue;
        };
        for value in raw {
            let value = value.to_string_lossy();
            if value.contains("://") {
                secrets.extend(crate::redact::url_password(&value));
            } else {
                secrets.push(value.into_owned());
            }
        }
    }
    if let Some((name, sub_matches)) = matches.subcommand() {
        if let Some(sub) = command.find_subcommand(name) {
            collect_secrets(sub, sub_matches, secrets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::Api;
    use crate::config::WorkerSettings;
    use clap::{Args, FromArgMatches};

    fn worker_command() -> Command {
        Command::new("billflow").subcommand(WorkerSettings::augment_args(Command::new("worker")))
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    /// The worker's settings from `args` and a fake environment `env`.
    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<WorkerSettings, LoadError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = ["billflow", "worker"]
            .iter()
            .chain(args)
            .map(OsString::from);
        let (mut command, args) = prepare(worker_command(), args.collect(), &|name| {
            env.get(name).cloned()
        })?;
        let matches = command.try_get_matches_from_mut(args)?;
        let (_, worker) = matches.subcommand().unwrap();
        Ok(WorkerSettings::from_arg_matches(worker)?)
    }

    const FILE: &str = r#"
        reconcile_delay = "10s"
        shutdown_grace = "11s"
        signing_key = "file-signing-key"
        queue_arguments = false
        shards = 3

        [costguard]
        timeout = "12s"
        max_response_bytes = 1000

        [retry_policy]
        max_attempts = 9
        initial_delay = "2s"
        stages."advancepay_renewal.submit" = { max_attempts = 2 }

        [api_limits.emersion]
        breaker_cooldown = "1m"
    "#;

    #[test]
    fn the_file_sets_defaults_that_flags_override() {
        let file = file(FILE);
        let path = file.path().to_str().unwrap();
        let settings = load(&["--config", path, "--reconcile-delay", "30s"], &[]).unwrap();
        assert_eq!(settings.reconcile_delay, Duration::from_secs(30), "flag");
        assert_eq!(settings.shutdown_grace, Duration::from_secs(11), "file");
        assert_eq!(settings.emersion.emersion_timeout, Duration::from_secs(30));
        assert_eq!(
            settings.costguard.costguard_timeout,
            Duration::from_secs(12)
        );
        assert_eq!(settings.costguard.costguard_max_response_bytes, 1000);
        assert_eq!(settings.broker.shards, 3);
        assert!(!settings.broker.queue_arguments);
        assert_eq!(settings.retry_policy.default.max_attempts, 9);
        let submit = settings.retry_policy.policy("advancepay_renewal", "submit");
        assert_eq!(
            (submit.max_attempts, submit.initial_delay),
            (2, Duration::from_secs(2))
        );
        assert_eq!(
            settings.api_limits.for_api(Api::Emersion).breaker_cooldown,
            Duration::from_secs(60)
        );
        assert_eq!(
            settings.signing_key.map(|k| k.expose().to_string()),
            Some("file-signing-key".into())
        );
    }

    #[test]
    fn the_variable_names_the_file_and_old_variables_beat_it() {
        let file = file(FILE);
        let path = file.path().to_str().unwrap();
        let settings = load(
            &[],
            &[
                (CONFIG_VARIABLE, path),
                ("BILLFLOW_SHUTDOWN_GRACE_MS", "4500"),
                ("BILLFLOW_RETENTION_SECS", "120"),
            ],
        )
        .unwrap();
        assert_eq!(settings.reconcile_delay, Duration::from_secs(10), "file");
        assert_eq!(settings.shutdown_grace, Duration::from_millis(4500));
        assert_eq!(settings.retention, Duration::from_secs(120));
        let err = load(&[], &[("COSTGUARD_TIMEOUT_MS", "30s")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"COSTGUARD_TIMEOUT_MS "30s" is not a whole number of milliseconds"#
        );
    }

    #[test]
    fn old_flags_still_work_and_defaults_stay_without_a_file() {
        let settings = load(&["--reconcile-delay-ms", "2500", "--retention-secs=0"], &[]).unwrap();
        assert_eq!(settings.reconcile_delay, Duration::from_millis(2500));
        assert_eq!(settings.retention, Duration::ZERO);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
        assert_eq!(
            settings.costguard.costguard_timeout,
            Duration::from_secs(30)
        );
        let defaults = load(&[], &[]).unwrap();
        assert_eq!(defaults.retention, crate::config::DEFAULT_RETENTION);
        let err = load(&["--shutdown-grace-ms", "soon"], &[]).unwrap_err();
        assert!(err.to_string().contains("--shutdown-grace-ms"), "{err}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/billflow.example.toml");
        let settings = load(&["--config", path], &[]).unwrap();
        let submit = settings.retry_policy.policy("advancepay_renewal", "submit");
        assert_eq!(submit.max_attempts, 10);
        let costguard = settings.api_limits.for_api(Api::CostGuard);
        assert_eq!(costguard.max_concurrency, 8);
        assert_eq!(costguard.breaker_cooldown, Duration::from_secs(30));
    }

    #[test]
    fn file_mistakes_are_errors_that_name_the_key() {
        let cases = [
            (
                "reconcile_dealy = \"1s\"",
                "unknown key \"reconcile_dealy\"",
            ),
            (
                "[costguard]\ntimout = \"1s\"",
                "unknown key \"costguard.timout\"",
            ),
            (
                "reconcile_delay_ms = 1000",
                "\"reconcile_delay_ms\" is now \"reconcile_delay\"",
            ),
            ("prefix = [\"a\"]", "\"prefix\" must be a string"),
            (
                "costguard_url = \"a\"\n[costguard]\nurl = \"b\"",
                "\"costguard_url\" is set twice",
            ),
            ("shards = ", "not valid TOML"),
        ];
        for (text, expected) in cases {
            let file = file(text);
            let path = file.path().to_str().unwrap();
            let err = load(&["--config", path], &[]).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = load(&["--config=/nonexistent/billflow.toml"], &[]).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn every_worker_variable_is_a_file_key_and_every_renamed_setting_a_duration() {
        let command = WorkerSettings::augment_args(Command::new("worker"));
        for arg in command.get_arguments().filter(|a| a.get_env().is_some()) {
            assert!(file_key(arg).is_some(), "{:?}", arg.get_id());
        }
        for renamed in RENAMED {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == renamed.setting)
                .unwrap_or_else(|| panic!("{} is not a worker setting", renamed.setting));
            assert_eq!(arg.get_value_names(), Some(&["DURATION".into()][..]));
        }
    }

    #[test]
    fn secrets_are_found_in_every_layer() {
        let file = file("costguard_token = \"file-token\"");
        let path = file.path().to_str().unwrap();
        let args = [
            "billflow",
            "worker",
            "--config",
            path,
            "--admin-token",
            "flag-token",
            "--amqp-url",
            "amqp://u:url-pw@h/%2f",
        ];
        let (mut command, args) = prepare(
            worker_command(),
            args.iter().map(OsString::from).collect(),
            &|_| None,
        )
        .unwrap();
        let matches = command.try_get_matches_from_mut(args).unwrap();
        let mut secrets = Vec::new();
        collect_secrets(&command, &matches, &mut secrets);
        for secret in ["file-token", "flag-token", "url-pw"] {
            assert!(secrets.iter().any(|s| s == secret), "{secret}: {secrets:?}");
        }
    }
}
