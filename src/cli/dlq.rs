//! `billflow dlq`: inspect, fix, replay and purge the dead queue.
//!
//! Messages are read with basic.get and held unacked on one channel: whatever is not
//! replayed or purged returns to the queue when the channel closes, in its order. Moving
//! a message is publish-with-confirm first, ack second: a crash in between may leave a
//! copy behind, never lose one, and the replay id makes a second replay of the same dead
//! letter a duplicate the engine drops.
//!
//! A bulk replay goes past a letter it cannot replay, reports every letter, and ends with
//! the counts and an exit status saying whether every chosen letter was replayed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde_json::Value;

use crate::broker::fnv1a;
use crate::broker::{BrokerError, Outgoing, Publisher, Topology};
use crate::contract::command::{Command, CommandError};
use crate::contract::envelope::Envelope;
use crate::contract::message::{is_json, StageMessage};
use crate::contract::signing::Signer;
use crate::contract::DeadReason;
use crate::redact;
use crate::workflow::registry;

/// Exit status of `dlq replay` when a chosen letter was skipped or failed (the others were
/// replayed).
pub const EXIT_NOT_ALL_REPLAYED: i32 = 3;

/// Headers nested deeper than this (`x-death` is two levels) are shown as a placeholder.
const MAX_HEADER_DEPTH: usize = 8;

/// Why a dead letter cannot be replayed as it is.
#[derive(Debug, thiserror::Error)]
pub enum Unreplayable {
    #[error("content type {0:?} is not JSON")]
    NotJson(String),
    #[error("not a valid stage message: {0}")]
    Stage(CommandError),
    #[error("not a valid command: {0}; fix it with `dlq edit`")]
    Command(CommandError),
    #[error("routing key {routing_key:?} does not match its type {kind:?}")]
    RoutingKey { routing_key: String, kind: String },
    #[error("a stage is replayed signed: set BILLFLOW_SIGNING_KEY to the workers' key")]
    NoSigningKey,
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Unreplayable(#[from] Unreplayable),
    #[error("publishing the replay failed: {0}")]
    Publish(#[from] BrokerError),
    #[error("the replay was published but the dead letter could not be removed (replaying the copy left behind runs nothing twice): {0}")]
    Ack(#[from] lapin::Error),
}

impl ReplayError {
    /// Skipped (the letter itself is the problem) rather than failed (the broker was).
    pub fn is_skip(&self) -> bool {
        matches!(self, ReplayError::Unreplayable(_))
    }
}

/// Some chosen dead letters were not replayed: `dlq replay` exits with
/// [`EXIT_NOT_ALL_REPLAYED`].
#[derive(Debug, thiserror::Error)]
#[error("{} of {chosen} dead letters not replayed ({skipped} skipped, {failed} failed)", .skipped + .failed)]
pub struct NotAllReplayed {
    pub chosen: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// One dead letter, as read from the queue.
pub struct DeadLetter {
    /// Stable id: the message id, or a fingerprint of the body when it has none.
    pub id: String,
    /// Its `x-billflow-*` headers.
    pub envelope: Envelope,
    /// Every header, as JSON, for `dlq show`.
    pub headers: BTreeMap<String, Value>,
    pub body: Vec<u8>,
    pub routing_key: String,
    pub content_type: Option<String>,
    message: BasicGetMessage,
}

impl DeadLetter {
    /// The configured secrets and those the letter's body carries: masked in whatever is
    /// printed about it.
    fn redactor(&self) -> redact::Redactor {
        let body = serde_json::from_slice::<Value>(&self.body).ok();
        redact::global().with(body.as_ref().map(redact::json_secrets).unwrap_or_default())
    }

    pub fn reason(&self) -> &str {
        self.envelope.reason.map_or("(none)", DeadReason::as_str)
    }

    pub fn workflow(&self) -> &str {
        self.envelope.workflow.as_deref().unwrap_or("unknown")
    }

    pub fn command_id(&self) -> &str {
        self.envelope.command_id.as_deref().unwrap_or("(unknown)")
    }

    pub fn stage(&self) -> Option<&str> {
        self.envelope.stage.as_deref()
    }

    pub fn last_failure(&self) -> Option<DateTime<Utc>> {
        self.envelope.last_failure
    }

    pub fn attempts(&self) -> u32 {
        self.envelope.attempts.unwrap_or(0)
    }

    /// The routing key the command was published with, when the dead letter records it:
    /// billflow's header on an invalid message, else the oldest RabbitMQ `x-death` entry.
    /// `None` when it is one of this prefix's own queues: the message was moved inside
    /// billflow, and the key it was published with is not known.
    pub fn published_routing_key(&self, topology: &Topology) -> Option<&str> {
        let key = self.envelope.original_routing_key.as_deref().or_else(|| {
            self.headers
                .get("x-death")
                .and_then(Value::as_array)
                .and_then(|deaths| deaths.last())
                .and_then(|death| death.get("routing-keys"))
                .and_then(Value::as_array)
                .and_then(|keys| keys.first())
                .and_then(Value::as_str)
        })?;
        (!topology.queues().iter().any(|q| q == key)).then_some(key)
    }

    /// The id a replay of this dead letter carries: the same dead letter always gives the
    /// same id, so replaying it twice runs its stage once.
    fn replay_id(&self) -> String {
        let last_failure = self.last_failure().map(|t| t.to_rfc3339());
        format!("{}@{}", self.id, last_failure.unwrap_or_default())
    }

    async fn ack(&self) -> Result<(), lapin::Error> {
        // `false`: acked already, so the letter is gone either way.
        self.message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
    }
}

/// The dead queue, browsed: every message held unacked until [`DeadQueue::close`].
pub struct DeadQueue {
    channel: Channel,
    pub letters: Vec<DeadLetter>,
}

fn header_table(table: &FieldTable, depth: usize) -> BTreeMap<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), header_value(v, depth)))
        .collect()
}

/// A header as JSON; tables and arrays (RabbitMQ's `x-death`) become objects and arrays.
fn header_value(v: &AMQPValue, depth: usize) -> Value {
    let Some(deeper) = depth.checked_sub(1) else {
        return Value::String("(nested too deep)".into());
    };
    match v {
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::Boolean(b) => Value::from(*b),
        AMQPValue::Void => Value::Null,
        AMQPValue::FieldArray(items) => Value::Array(
            items
                .as_slice()
                .iter()
                .map(|item| header_value(item, deeper))
                .collect(),
        ),
        AMQPValue::FieldTable(table) => {
            Value::Object(header_table(table, deeper).into_iter().collect())
        }
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
            let headers = props
                .headers()
                .as_ref()
                .map(|h| header_table(h, MAX_HEADER_DEPTH))
                .unwrap_or_default();
            let id = props
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("body-{:016x}", fnv1a(&message.delivery.data)));
            letters.push(DeadLetter {
                id,
                envelope: Envelope::of(props.headers().as_ref()),
                headers,
                body: message.delivery.data.clone(),
                routing_key: message.delivery.routing_key.to_string(),
                content_type: props.content_type().as_ref().map(|c| c.to_string()),
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
        self.get(id)
            .with_context(|| format!("no dead letter with id {id:?} (see `billflow dlq list`)"))
    }

    pub fn get(&self, id: &str) -> Option<&DeadLetter> {
        self.letters.iter().find(|l| l.id == id)
    }
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

/// `dlq show`: headers, and the message (command and stage context) as JSON, secrets masked.
pub fn show(letter: &DeadLetter) -> Value {
    let mut message = serde_json::from_slice::<Value>(&letter.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&letter.body).into_owned()));
    let redactor = letter.redactor();
    redact::mask_secret_fields(&mut message);
    let mut shown = serde_json::json!({
        "id": letter.id,
        "routing_key": letter.routing_key,
        "content_type": letter.content_type,
        "headers": letter.headers,
        "message": message,
    });
    redactor.redact_json(&mut shown);
    shown
}

/// The message that resumes a dead letter: its stage, attempts reset, marked as a replay;
/// or, for a command that never became a stage message, the command again, only if the
/// routing key it was published with (when known) matches its type. `body` replaces the
/// letter's own (an edit); the letter's content type must say JSON otherwise.
pub fn replay_message(
    letter: &DeadLetter,
    topology: &Topology,
    signer: Option<&Signer>,
    body: Option<Vec<u8>>,
) -> Result<Outgoing, Unreplayable> {
    let body = match body {
        Some(edited) => edited,
        None => {
            if let Some(ct) = letter.content_type.as_deref() {
                if !is_json(ct) {
                    return Err(Unreplayable::NotJson(ct.to_string()));
                }
            }
            letter.body.clone()
        }
    };
    match letter.stage() {
        Some(stage) => {
            let mut msg = StageMessage::decode(&body, Some(stage)).map_err(Unreplayable::Stage)?;
            msg.attempt = 1;
            msg.first_failure_at = None;
            msg.replay = Some(letter.replay_id());
            let signer = signer.ok_or(Unreplayable::NoSigningKey)?;
            let mut out = msg.outgoing(&topology.intake_queue(), signer);
            out.message_id = Some(format!("{}/replay", letter.id));
            Ok(out)
        }
        None => {
            let command = Command::parse(&body).map_err(Unreplayable::Command)?;
            let routing_key = command.body.type_name();
            if let Some(published) = letter.published_routing_key(topology) {
                if published != routing_key {
                    return Err(Unreplayable::RoutingKey {
                        routing_key: published.to_string(),
                        kind: routing_key.to_string(),
                    });
                }
            }
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
    signer: Option<&Signer>,
    body: Option<Vec<u8>>,
) -> Result<(), ReplayError> {
    let out = replay_message(letter, topology, signer, body)?;
    publisher.publish(out).await?;
    letter.ack().await?;
    Ok(())
}

pub async fn purge(letter: &DeadLetter) -> anyhow::Result<()> {
    letter.ack().await.context("ack on the dead queue")
}

/// How one letter of a replay run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Replayed,
    /// The letter cannot be replayed as it is; it stays in the dead queue.
    Skipped,
    /// The broker did not take the replay, or did not let the letter go.
    Failed,
}

/// Replays one chosen letter (or, on a dry run, only checks it) and says how it went;
/// `letter` is `None` for an id the dead queue does not hold.
async fn replay_one(
    id: &str,
    letter: Option<&DeadLetter>,
    publisher: &Publisher,
    topology: &Topology,
    signer: Option<&Signer>,
    dry_run: bool,
) -> (Verdict, String) {
    let Some(letter) = letter else {
        return (Verdict::Skipped, format!("{id}  no such dead letter"));
    };
    let what = format!(
        "{}  {} at {}",
        letter.id,
        letter.command_id(),
        letter.stage().unwrap_or("the start")
    );
    let done = if dry_run {
        replay_message(letter, topology, signer, None)
            .map(|_| ())
            .map_err(ReplayError::from)
    } else {
        replay(letter, publisher, topology, signer, None).await
    };
    let redactor = letter.redactor();
    match done {
        Ok(()) => (Verdict::Replayed, what),
        Err(e) if e.is_skip() => (
            Verdict::Skipped,
            redactor.redact(&format!("{what}: {e}")).into_owned(),
        ),
        Err(e) => (
            Verdict::Failed,
            redactor.redact(&format!("{what}: {e}")).into_owned(),
        ),
    }
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
        /// Only this reason (permanent_error, retries_exhausted, invalid_message,
        /// outcome_unknown, conflicting_duplicate, internal_error, expired, delivery_limit,
        /// rejected).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, help = workflow_help())]
        workflow: Option<String>,
        /// Only those dead-lettered within this long (30m, 2h, 7d).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
    },
    /// One dead letter in full: headers, command and context, as JSON (secrets masked).
    Show { id: String },
    /// Resume dead letters at their failed stage, attempts reset (publish, then ack).
    ///
    /// Goes past a letter it cannot replay (not a valid command or stage message, a
    /// command whose recorded routing key is not its type, a content type other than
    /// JSON) and leaves it in the dead queue: prints one line per letter (replayed,
    /// skipped or failed, with the reason), then the counts.
    ///
    /// Exit status: 0 when every chosen letter was replayed (or, with --dry-run, would
    /// be); 3 when any was skipped or failed, or a named id is not in the dead queue; 1
    /// when the run could not start (broker unreachable, nothing named).
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

/// `dlq list --workflow`'s help, naming the registered workflows.
fn workflow_help() -> String {
    let names: Vec<&str> = registry::ALL.iter().map(|w| w.name()).collect();
    format!("Only this workflow ({})", names.join(", "))
}

/// Runs a `billflow dlq` subcommand; `signer` (the workers' key) signs replayed stages.
/// `billflow dlq`: connects, runs the subcommand and closes. A replay that did not replay
/// everything it was asked to ends the process with [`EXIT_NOT_ALL_REPLAYED`].
pub async fn run(
    command: DlqCommand,
    settings: &crate::config::BrokerSettings,
    signing_key: Option<&crate::secret::Secret>,
) -> anyhow::Result<()> {
    let signer = signing_key
        .map(|k| Signer::from_keys(Some(k.expose()), None))
        .transpose()?;
    let connection = crate::broker::connect(settings.amqp_url.expose(), "billflow-dlq").await?;
    let result = run_cli(command, &connection, &settings.topology(), signer.as_ref()).await;
    let _ = connection.close(200, "done".into()).await;
    if let Err(e) = &result {
        if let Some(partial) = e.downcast_ref::<NotAllReplayed>() {
            eprintln!("{partial}");
            std::process::exit(EXIT_NOT_ALL_REPLAYED);
        }
    }
    result
}

pub async fn run_cli(
    command: DlqCommand,
    connection: &Connection,
    topology: &Topology,
    signer: Option<&Signer>,
) -> anyhow::Result<()> {
    topology
        .declare(&connection.create_channel().await?)
        .await?;
    let queue = DeadQueue::open(connection, topology).await?;
    let result = dispatch(command, connection, topology, signer, &queue).await;
    queue.close().await;
    result
}

async fn dispatch(
    command: DlqCommand,
    connection: &Connection,
    topology: &Topology,
    signer: Option<&Signer>,
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
                    .redactor()
                    .redact(l.envelope.error.as_deref().unwrap_or(""))
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
            let chosen: Vec<(&str, Option<&DeadLetter>)> = if all {
                queue
                    .letters
                    .iter()
                    .map(|l| (l.id.as_str(), Some(l)))
                    .collect()
            } else if let Some(reason) = &reason {
                queue
                    .letters
                    .iter()
                    .filter(|l| l.reason() == reason)
                    .map(|l| (l.id.as_str(), Some(l)))
                    .collect()
            } else if ids.is_empty() {
                bail!("name the dead letters to replay, or use --all or --reason");
            } else {
                ids.iter().map(|id| (id.as_str(), queue.get(id))).collect()
            };
            let publisher = Publisher::open(connection).await?;
            let (done, skip) = if dry_run {
                ("would replay", "would skip")
            } else {
                ("replayed", "skipped")
            };
            let (mut replayed, mut skipped, mut failed) = (0, 0, 0);
            for (id, letter) in &chosen {
                let (verdict, line) =
                    replay_one(id, *letter, &publisher, topology, signer, dry_run).await;
                let label = match verdict {
                    Verdict::Replayed => {
                        replayed += 1;
                        done
                    }
                    Verdict::Skipped => {
                        skipped += 1;
                        skip
                    }
                    Verdict::Failed => {
                        failed += 1;
                        "failed"
                    }
                };
                println!("{label:<12} {line}");
            }
            println!(
                "{done} {replayed}, {skip} {skipped}, failed {failed}, of {} dead letters",
                chosen.len()
            );
            if skipped + failed > 0 {
                return Err(NotAllReplayed {
                    chosen: chosen.len(),
                    skipped,
                    failed,
                }
                .into());
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
            replay(letter, &publisher, topology, signer, Some(body))
                .await
                .with_context(|| format!("replaying the edited {id}"))?;
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
    fn json_content_types_in_any_case_and_with_parameters() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " APPLICATION/json ;charset=UTF-8",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/jsonx",
            "application/xml; x=application/json",
            "",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }

    #[test]
    fn nested_headers_become_json_up_to_a_depth() {
        let mut death = FieldTable::default();
        death.insert("queue".into(), AMQPValue::LongString("q".into()));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongString("advancepay.renew".into())].into()),
        );
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        let deaths = AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into());
        assert_eq!(
            header_value(&deaths, MAX_HEADER_DEPTH),
            serde_json::json!([{"queue": "q", "routing-keys": ["advancepay.renew"], "count": 1}])
        );
        let mut deep = AMQPValue::LongString("bottom".into());
        for _ in 0..1000 {
            deep = AMQPValue::FieldArray(vec![deep].into());
        }
        let mut shown = &header_value(&deep, MAX_HEADER_DEPTH);
        for _ in 0..MAX_HEADER_DEPTH {
            shown = &shown[0];
        }
        assert_eq!(shown, &Value::String("(nested too deep)".into()));
    }

    #[test]
    fn secrets_are_masked_everywhere() {
        let mut v = serde_json::json!({"data": {"account": {"username": "u", "password": "p"},
            "identifier": {"password": "q"}, "list": [{"api_token": "t"}]}});
        redact::mask_secret_fields(&mut v);
        let text = v.to_string();
        assert!(!text.contains("\"p\"") && !text.contains("\"q\"") && !text.contains("\"t\""));
        assert!(text.contains("\"u\""));
    }
}
