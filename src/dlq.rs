//! `billflow dlq`: inspect, fix, replay and purge the dead queue.
//!
//! Messages are read with basic.get and held unacked on one channel: whatever is not
//! replayed or purged returns to the queue when the channel closes, in its order. Moving
//! a message is publish-with-confirm first, ack second: a crash in between may leave a
//! copy behind, never lose one, and the replay id makes a second replay of the same dead
//! letter a duplicate the engine drops.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde_json::Value;

use crate::broker::{Outgoing, Publisher, Topology};
use crate::command::Command;
use crate::engine::message::{StageMessage, STAGE_HEADER};

/// One dead letter, as read from the queue.
pub struct DeadLetter {
    /// Stable id: the message id, or a fingerprint of the body when it has none.
    pub id: String,
    pub headers: BTreeMap<String, Value>,
    pub body: Vec<u8>,
    pub routing_key: String,
    message: BasicGetMessage,
}

impl DeadLetter {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    pub fn reason(&self) -> &str {
        self.header("x-billflow-reason").unwrap_or("(none)")
    }

    pub fn workflow(&self) -> &str {
        self.header("x-billflow-workflow").unwrap_or("unknown")
    }

    pub fn command_id(&self) -> &str {
        self.header("x-billflow-command-id").unwrap_or("(unknown)")
    }

    pub fn stage(&self) -> Option<&str> {
        self.header(STAGE_HEADER)
    }

    pub fn last_failure(&self) -> Option<DateTime<Utc>> {
        self.header("x-billflow-last-failure")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn attempts(&self) -> i64 {
        self.headers
            .get("x-billflow-attempts")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// The id a replay of this dead letter carries: the same dead letter always gives the
    /// same id, so replaying it twice runs its stage once.
    fn replay_id(&self) -> String {
        format!(
            "{}@{}",
            self.id,
            self.header("x-billflow-last-failure").unwrap_or("")
        )
    }

    async fn ack(&self) -> anyhow::Result<()> {
        self.message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .context("ack on the dead queue")?;
        Ok(())
    }
}

/// The dead queue, browsed: every message held unacked until [`DeadQueue::close`].
pub struct DeadQueue {
    channel: Channel,
    pub letters: Vec<DeadLetter>,
}

fn header_value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::Boolean(b) => Value::from(*b),
        other => Value::String(format!("{other:?}")),
    }
}

impl DeadQueue {
    pub async fn open(connection: &Connection, topology: &Topology) -> anyhow::Result<Self> {
        let channel = connection.create_channel().await?;
        let mut letters = Vec::new();
        while let Some(message) = channel
            .basic_get(
                topology.dead_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .context("reading the dead queue")?
        {
            let props = &message.delivery.properties;
            let headers: BTreeMap<String, Value> = props
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| (k.to_string(), header_value(v)))
                        .collect()
                })
                .unwrap_or_default();
            let id = props
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("body-{:016x}", fnv1a(&message.delivery.data)));
            letters.push(DeadLetter {
                id,
                headers,
                body: message.delivery.data.clone(),
                routing_key: message.delivery.routing_key.to_string(),
                message,
            });
        }
        Ok(DeadQueue { channel, letters })
    }

    /// Returns every message not acked to the queue.
    pub async fn close(self) {
        let _ = self.channel.close(200, "dlq done".into()).await;
    }

    pub fn find(&self, id: &str) -> anyhow::Result<&DeadLetter> {
        self.letters
            .iter()
            .find(|l| l.id == id)
            .with_context(|| format!("no dead letter with id {id:?} (see `billflow dlq list`)"))
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Parses `30m`, `2h`, `7d`, `45s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 2h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Replaces every `password`, `token` or `secret` value in a JSON document by `***`.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let k = key.to_ascii_lowercase();
                if k.contains("password") || k.contains("token") || k.contains("secret") {
                    *v = Value::String("***".into());
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// `dlq show`: headers, and the message (command and stage context) as JSON, secrets masked.
pub fn show(letter: &DeadLetter) -> Value {
    let mut message = serde_json::from_slice::<Value>(&letter.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&letter.body).into_owned()));
    mask_secrets(&mut message);
    serde_json::json!({
        "id": letter.id,
        "routing_key": letter.routing_key,
        "headers": letter.headers,
        "message": message,
    })
}

/// The message that resumes a dead letter: its stage, attempts reset, marked as a replay;
/// or, for a command that never became a stage message, the command again.
pub fn replay_message(
    letter: &DeadLetter,
    topology: &Topology,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Outgoing> {
    let body = body.unwrap_or_else(|| letter.body.clone());
    match letter.stage() {
        Some(stage) => {
            let mut msg = StageMessage::decode(&body, Some(stage)).with_context(|| {
                format!("dead letter {} is not a valid stage message", letter.id)
            })?;
            msg.attempt = 1;
            msg.first_failure_at = None;
            msg.replay = Some(letter.replay_id());
            let mut out = Outgoing::json("", &topology.intake_queue(), msg.encode());
            out.headers = msg.headers();
            out.message_id = Some(format!("{}/replay", letter.id));
            out.message_type = Some("billflow.stage".into());
            Ok(out)
        }
        None => {
            let command = Command::parse(&body).with_context(|| {
                format!(
                    "dead letter {} is not a valid command; fix it with `dlq edit`",
                    letter.id
                )
            })?;
            let routing_key = command.body.type_name();
            let mut out = Outgoing::json(&topology.commands_exchange(), routing_key, body);
            out.message_id = Some(command.command_id.clone());
            out.headers = FieldTable::default();
            Ok(out)
        }
    }
}

/// Publishes the replay (confirmed), then acks the dead letter.
pub async fn replay(
    letter: &DeadLetter,
    publisher: &Publisher,
    topology: &Topology,
    body: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let out = replay_message(letter, topology, body)?;
    publisher
        .publish(out)
        .await
        .with_context(|| format!("publishing the replay of {}", letter.id))?;
    letter.ack().await
}

pub async fn purge(letter: &DeadLetter) -> anyhow::Result<()> {
    letter.ack().await
}

/// Applies `PATH=VALUE` edits to the command inside a dead letter and validates it.
/// PATH is dotted from the command (`data.accept_terms`); VALUE is JSON, or a string.
pub fn edit(letter: &DeadLetter, sets: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut doc: Value =
        serde_json::from_slice(&letter.body).context("the dead letter is not JSON")?;
    let is_stage = letter.stage().is_some();
    for set in sets {
        let (path, raw) = set
            .split_once('=')
            .with_context(|| format!("{set:?}: use PATH=VALUE"))?;
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let root = if is_stage {
            &mut doc["command"]
        } else {
            &mut doc
        };
        let mut target = root;
        for key in path.split('.') {
            if !target.is_object() {
                bail!("{path}: {key:?} is not inside an object");
            }
            target = &mut target[key];
        }
        *target = value;
    }
    let command = if is_stage {
        doc["command"].clone()
    } else {
        doc.clone()
    };
    Command::from_value(command).context("the edited command is not valid")?;
    Ok(serde_json::to_vec(&doc)?)
}

/// The `billflow dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// A table of the dead letters: command_id, workflow, stage, reason, error, attempts, age.
    List {
        /// Only this reason (permanent_error, retries_exhausted, invalid_message, outcome_unknown).
        #[arg(long)]
        reason: Option<String>,
        /// Only this workflow (advancepay_renewal, service_order).
        #[arg(long)]
        workflow: Option<String>,
        /// Only those dead-lettered within this long (30m, 2h, 7d).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
    },
    /// One dead letter in full: headers, command and context, as JSON (secrets masked).
    Show { id: String },
    /// Resume dead letters at their failed stage, attempts reset (publish, then ack).
    Replay {
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Every dead letter with this reason.
        #[arg(long, conflicts_with_all = ["ids", "all"])]
        reason: Option<String>,
        /// Say what would be replayed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Patch the command of a dead letter (`--set data.accept_terms=true`, VALUE is JSON or a
    /// string; without --set, $EDITOR opens it), validate it, and replay it in place of the original.
    Edit {
        id: String,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        sets: Vec<String>,
    },
    /// Delete dead letters (asks first unless --yes).
    Purge {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run_cli(
    command: DlqCommand,
    connection: &Connection,
    topology: &Topology,
) -> anyhow::Result<()> {
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    let queue = DeadQueue::open(connection, topology).await?;
    let result = dispatch(command, connection, topology, &queue).await;
    queue.close().await;
    result
}

async fn dispatch(
    command: DlqCommand,
    connection: &Connection,
    topology: &Topology,
    queue: &DeadQueue,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            reason,
            workflow,
            since,
        } => {
            let now = Utc::now();
            println!(
                "{:<34} {:<28} {:<19} {:<18} {:<19} {:>3} {:>8}  error",
                "id", "command_id", "workflow", "stage", "reason", "att", "age"
            );
            let mut shown = 0;
            for l in &queue.letters {
                let age = l
                    .last_failure()
                    .map(|t| (now - t).to_std().unwrap_or_default());
                if reason.as_deref().is_some_and(|r| r != l.reason())
                    || workflow.as_deref().is_some_and(|w| w != l.workflow())
                    || since.is_some_and(|s| age.is_none_or(|a| a > s))
                {
                    continue;
                }
                shown += 1;
                let error: String = l
                    .headers
                    .get("x-billflow-error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect();
                println!(
                    "{:<34} {:<28} {:<19} {:<18} {:<19} {:>3} {:>8}  {error}",
                    l.id,
                    l.command_id(),
                    l.workflow(),
                    l.stage().unwrap_or("-"),
                    l.reason(),
                    l.attempts(),
                    age.map(|a| format!("{}s", a.as_secs()))
                        .unwrap_or_else(|| "?".into()),
                );
            }
            eprintln!("{shown} of {} dead letters", queue.letters.len());
            Ok(())
        }
        DlqCommand::Show { id } => {
            println!("{}", serde_json::to_string_pretty(&show(queue.find(&id)?))?);
            Ok(())
        }
        DlqCommand::Replay {
            ids,
            all,
            reason,
            dry_run,
        } => {
            let chosen: Vec<&DeadLetter> = if all {
                queue.letters.iter().collect()
            } else if let Some(reason) = &reason {
                queue
                    .letters
                    .iter()
                    .filter(|l| l.reason() == reason)
                    .collect()
            } else if ids.is_empty() {
                bail!("name the dead letters to replay, or use --all or --reason");
            } else {
                ids.iter()
                    .map(|id| queue.find(id))
                    .collect::<anyhow::Result<_>>()?
            };
            let publisher = Publisher::open(connection).await?;
            let total = chosen.len();
            for (n, letter) in chosen.into_iter().enumerate() {
                if dry_run {
                    println!(
                        "would replay {} ({} at {})",
                        letter.id,
                        letter.command_id(),
                        letter.stage().unwrap_or("the start")
                    );
                    continue;
                }
                replay(letter, &publisher, topology, None).await?;
                eprintln!("replayed {}/{total}: {}", n + 1, letter.id);
            }
            Ok(())
        }
        DlqCommand::Edit { id, sets } => {
            let letter = queue.find(&id)?;
            let body = if sets.is_empty() {
                edit_in_editor(letter)?
            } else {
                edit(letter, &sets)?
            };
            let publisher = Publisher::open(connection).await?;
            replay(letter, &publisher, topology, Some(body)).await?;
            eprintln!("replayed the edited {id}; the original is gone from the dead queue");
            Ok(())
        }
        DlqCommand::Purge { ids, yes } => {
            let chosen: Vec<&DeadLetter> = ids
                .iter()
                .map(|id| queue.find(id))
                .collect::<anyhow::Result<_>>()?;
            if !yes {
                eprint!("delete {} dead letter(s) for good? [y/N] ", chosen.len());
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !answer.trim().eq_ignore_ascii_case("y") {
                    bail!("nothing deleted");
                }
            }
            let total = chosen.len();
            for (n, letter) in chosen.into_iter().enumerate() {
                purge(letter).await?;
                eprintln!("purged {}/{total}: {}", n + 1, letter.id);
            }
            Ok(())
        }
    }
}

/// Opens the dead letter's JSON in $EDITOR and validates what comes back.
fn edit_in_editor(letter: &DeadLetter) -> anyhow::Result<Vec<u8>> {
    let editor = std::env::var("EDITOR").context("no --set given and $EDITOR is not set")?;
    let path = std::env::temp_dir().join(format!("billflow-dlq-{}.json", std::process::id()));
    let doc: Value = serde_json::from_slice(&letter.body).context("the dead letter is not JSON")?;
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    let status = std::process::Command::new(&editor).arg(&path).status()?;
    let edited = std::fs::read(&path)?;
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        bail!("{editor} exited with {status}; nothing replayed");
    }
    let doc: Value = serde_json::from_slice(&edited).context("the edited file is not JSON")?;
    let command = if letter.stage().is_some() {
        doc["command"].clone()
    } else {
        doc.clone()
    };
    Command::from_value(command).context("the edited command is not valid")?;
    Ok(serde_json::to_vec(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn secrets_are_masked_everywhere() {
        let mut v = serde_json::json!({"data": {"account": {"username": "u", "password": "p"},
            "identifier": {"password": "q"}, "list": [{"api_token": "t"}]}});
        mask_secrets(&mut v);
        let text = v.to_string();
        assert!(!text.contains("\"p\"") && !text.contains("\"q\"") && !text.contains("\"t\""));
        assert!(text.contains("\"u\""));
    }
}
