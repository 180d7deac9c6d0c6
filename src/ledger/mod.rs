//! The replicated stage ledger: one RabbitMQ stream per shard (`<prefix>.ledger.<n>`),
//! replicated by the cluster like the quorum queues, holding every durable stage record
//! any worker wrote for that shard's commands, in the order they were written. sled stays
//! each worker's index and fast path. A worker that keeps its shard only appends; one that
//! takes a shard over appends a barrier and reads the stream from its checkpoint (kept in
//! sled) up to that barrier before it runs any of the shard's messages, so it knows every
//! stage any worker started or finished there. Uses the store, the broker's publisher and
//! topology, and the signer; must not import the engine, workflows, billing or runtime.

mod entry;
mod fence;
mod merge;
mod reader;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;
use tokio::sync::{Notify, OnceCell};
use tracing::{info, warn};

use crate::broker::{BrokerError, Outgoing, Publisher, Topology};
use crate::contract::signing::Signer;
use crate::store::{StageRecord, Store, StoreError};
pub use entry::{Entry, Unreadable};
use fence::{start_key, Follower, StartKey, Tenure, Waiters};
use reader::StreamReader;

/// A follower with nothing to read waits this long before it waits again.
const FOLLOW_IDLE: Duration = Duration::from_secs(60);

/// How often a worker waiting for a shard's release looks again whether its holder lives.
const PRESENCE_RECHECK: Duration = Duration::from_millis(250);

/// A message read may be this many times `max_entry_bytes`: a writer fills messages up
/// to that size, but a single larger entry (a stage output near the message limit, plus
/// its record) goes alone and must still be read.
const READ_LIMIT_FACTOR: usize = 4;

/// At most this many entries in one stream message.
const BATCH_ENTRIES: usize = 256;

/// Distinct stages whose newest entry is held before it is written to the store: a
/// stage's entries are close together in the stream, so a batch this large almost never
/// splits them.
const APPLY_BATCH: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("stage ledger: not connected to the broker")]
    NotConnected,
    #[error("stage ledger: {0}")]
    Broker(#[from] BrokerError),
    #[error("stage ledger: RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("stage ledger: {0}")]
    Store(#[from] StoreError),
    #[error("stage ledger {stream}: this worker's barrier did not come back within {secs} s")]
    Timeout { stream: String, secs: u64 },
    #[error("stage ledger: the broker ended the reader")]
    ReaderEnded,
    #[error("stage ledger: appending failed: {0}")]
    Append(String),
    #[error("stage ledger: another worker took the shard before this call's start")]
    Fenced,
    #[error("stage ledger: this call's start was not read back: {0}")]
    Unconfirmed(String),
}

#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// A stream message is filled up to this size; one read is refused above four times
    /// that.
    pub max_entry_bytes: usize,
    /// How long a worker taking a shard back waits for the standby that held it to say
    /// its stages there have ended.
    pub handback_timeout: Duration,
    /// How long a reader waits for the next entry before it gives up on its barrier, and
    /// an append for the broker's confirm.
    pub read_timeout: Duration,
    /// Read over a connection of their own to this broker (made when first needed, made
    /// again when lost): on a cluster, a node without a running replica of a stream
    /// refuses to serve it with a connection-level error, which must not take the
    /// worker's own connection down. `None`: read over the worker's connection.
    pub reader_url: Option<crate::secret::Secret>,
}

/// Which workers are running, as the worker's presence checks last saw them.
#[derive(Clone, Default)]
pub struct Presence(Arc<Vec<AtomicBool>>);

impl Presence {
    pub fn new(workers: u16) -> Self {
        Presence(Arc::new(
            (0..workers).map(|_| AtomicBool::new(false)).collect(),
        ))
    }

    pub fn set(&self, worker: u16, present: bool) {
        if let Some(flag) = self.0.get(usize::from(worker)) {
            flag.store(present, Ordering::SeqCst);
        }
    }

    pub fn is_present(&self, worker: u16) -> bool {
        self.0
            .get(usize::from(worker))
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// The ledger of every shard, as one worker sees it. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    topology: Topology,
    signer: Signer,
    me: u16,
    settings: LedgerSettings,
    presence: Presence,
    /// The broker connection readers and appenders open their channels on; replaced on
    /// every reconnect.
    link: RwLock<Option<Link>>,
    /// The readers' own connection, when `reader_url` is set.
    reader: tokio::sync::Mutex<Option<Arc<Connection>>>,
    shards: Vec<ShardState>,
}

#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    /// One confirm channel per shard's stream, opened when first needed and publishing to
    /// that stream alone. RabbitMQ before 4.0 resends a stream's unconfirmed messages
    /// after a leader change under the channel's publish sequence numbers instead of the
    /// stream writer's (fixed upstream in rabbitmq-server c68c9a48c3). The two agree only
    /// on a channel that publishes to nothing else; on a shared channel the stream takes
    /// later appends for duplicates of the resent ones and confirms them without writing
    /// them, and a takeover misses a "started" its writer was told is safe.
    appenders: Arc<Vec<tokio::sync::Mutex<Option<Publisher>>>>,
}

/// An entry waiting for its batch, and who waits for the broker's confirm.
type Pending = (Entry, tokio::sync::oneshot::Sender<Result<(), String>>);

#[derive(Default)]
struct ShardState {
    /// Entries appended while a batch is being confirmed: they go out as the next one.
    pending: Mutex<Vec<Pending>>,
    /// Held by the task publishing a batch.
    appending: tokio::sync::Mutex<()>,
    /// One read of the shard's stream at a time: each moves its checkpoint.
    reading: tokio::sync::Mutex<()>,
    /// While this worker holds the shard: the consumer's generation, and whether it has
    /// caught up.
    active: Mutex<Option<(u64, Arc<OnceCell<()>>)>>,
    inflight: AtomicUsize,
    ended: Notify,
    /// Calls waiting to read their "started" back (the fence).
    waiters: Waiters,
    /// The task following the stream while this worker holds the shard, and what stops
    /// it.
    follower: Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

/// A stage of a shard in flight in this worker; counted until dropped.
pub struct InFlight {
    ledger: Ledger,
    shard: u16,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(state) = self.ledger.inner.shards.get(usize::from(self.shard)) {
            if state.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
                state.ended.notify_waiters();
            }
        }
    }
}

/// A non-idempotent call's start, waiting to be read back from the shard's stream.
pub struct Held {
    ledger: Ledger,
    shard: u16,
    key: StartKey,
    waiting: Option<tokio::sync::oneshot::Receiver<bool>>,
}

impl Held {
    /// `Ok` when no other worker took the shard before this start: the call may go.
    /// [`LedgerError::Fenced`] when one did; [`LedgerError::Unconfirmed`] when it could
    /// not be told (no follower, or none within the read timeout). Either way the call
    /// was not made, and an entry saying so cannot mislead: if this worker was fenced,
    /// readers skip it.
    pub async fn confirmed(mut self) -> Result<(), LedgerError> {
        let Some(waiting) = self.waiting.take() else {
            return Err(LedgerError::Unconfirmed(format!("no shard {}", self.shard)));
        };
        let wait = self.ledger.inner.settings.read_timeout;
        match tokio::time::timeout(wait, waiting).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(LedgerError::Fenced),
            Ok(Err(_)) => Err(LedgerError::Unconfirmed(
                "this worker stopped following the shard".into(),
            )),
            Err(_) => Err(LedgerError::Unconfirmed(format!(
                "not read back within {} s",
                wait.as_secs()
            ))),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(state) = self.ledger.state(self.shard) {
            state.waiters.forget(&self.key);
        }
    }
}

/// How far a read of a shard's stream is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ReadState {
    /// Before this reader's barrier; the last worker that took the shard and has not
    /// released it.
    Before {
        holder: Option<u16>,
    },
    /// After it, waiting for `holder` to release the shard.
    Waiting {
        holder: u16,
        until: tokio::time::Instant,
    },
    /// After its barrier (and any wait), up to the `Took` this reader appended then.
    Closing,
    Done,
}

/// What one read of a shard's stream found.
#[derive(Debug, Default)]
struct Read {
    entries: usize,
    applied: usize,
    /// Offset to start the next read at.
    next: Option<u64>,
    /// Who held the shard where the read ended.
    tenure: Tenure,
}

impl Ledger {
    pub fn new(
        store: Store,
        topology: Topology,
        signer: Signer,
        me: u16,
        presence: Presence,
        settings: LedgerSettings,
    ) -> Ledger {
        let shards = (0..topology.shards)
            .map(|_| ShardState::default())
            .collect();
        Ledger {
            inner: Arc::new(Inner {
                store,
                topology,
                signer,
                me,
                settings,
                presence,
                link: RwLock::new(None),
                reader: tokio::sync::Mutex::new(None),
                shards,
            }),
        }
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// A new broker connection: readers use it from now on. Every shard must be caught up
    /// again before it runs anything, as consumers of the old connection are gone.
    pub fn connected(&self, connection: Arc<Connection>) {
        self.forget_all();
        let appenders = (0..self.inner.topology.shards)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        if let Ok(mut link) = self.inner.link.write() {
            *link = Some(Link {
                connection,
                appenders: Arc::new(appenders),
            });
        }
    }

    /// The connection is gone: no shard is held.
    pub fn disconnected(&self) {
        self.forget_all();
        if let Ok(mut link) = self.inner.link.write() {
            *link = None;
        }
    }

    fn forget_all(&self) {
        for shard in 0..self.inner.topology.shards {
            self.forget(shard);
            self.stop_following(shard);
        }
    }

    /// This worker no longer holds `shard` (it stepped back).
    pub fn forget(&self, shard: u16) {
        if let Some(state) = self.state(shard) {
            if let Ok(mut active) = state.active.lock() {
                *active = None;
            }
        }
    }

    fn state(&self, shard: u16) -> Option<&ShardState> {
        self.inner.shards.get(usize::from(shard))
    }

    fn link(&self) -> Result<Link, LedgerError> {
        self.inner
            .link
            .read()
            .ok()
            .and_then(|link| link.clone())
            .ok_or(LedgerError::NotConnected)
    }

    /// Appends a stage record to its command's shard, confirmed by the broker (on every
    /// node of a cluster the stream is replicated to) before this returns.
    pub async fn record(
        &self,
        command_id: &str,
        stage: &str,
        record: &StageRecord,
    ) -> Result<(), LedgerError> {
        let shard = self.inner.topology.shard_of(command_id);
        let entry = Entry::Stage {
            worker: self.inner.me,
            command_id: command_id.to_string(),
            stage: stage.to_string(),
            record: StageRecord {
                forwarded: false,
                replicated: false,
                ..record.clone()
            },
        };
        self.append(shard, entry).await
    }

    /// Appends `entry` to `shard`'s stream and waits for the broker's confirm. Entries
    /// appended while a batch is out go together in the next one (group commit): a busy
    /// shard costs the broker one message per round trip, not one per entry.
    async fn append(&self, shard: u16, entry: Entry) -> Result<(), LedgerError> {
        let Some(state) = self.state(shard) else {
            return Err(LedgerError::Append(format!("no shard {shard}")));
        };
        let (done, mut confirmed) = tokio::sync::oneshot::channel();
        state
            .pending
            .lock()
            .map_err(|_| LedgerError::Append("the batch is poisoned".into()))?
            .push((entry, done));
        let _turn = state.appending.lock().await;
        // The task before may have taken this entry into its batch.
        if let Ok(result) = confirmed.try_recv() {
            return result.map_err(LedgerError::Append);
        }
        let batch: Vec<Pending> = state
            .pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default();
        let (entries, waiting): (Vec<Entry>, Vec<_>) = batch.into_iter().unzip();
        // A confirm can be lost (a stream without a leader while its node is cut off):
        // the waiters get an error and their deliveries go back to the queue, instead of
        // every later append to the shard waiting behind this one.
        let wait = self.inner.settings.read_timeout;
        let result = match tokio::time::timeout(wait, self.publish_batch(shard, &entries)).await {
            Ok(published) => published.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no confirm from the broker within {} s",
                wait.as_secs()
            )),
        };
        for waiter in waiting {
            let _ = waiter.send(result.clone());
        }
        confirmed
            .try_recv()
            .unwrap_or_else(|_| Err("the entry was not in its batch".into()))
            .map_err(LedgerError::Append)
    }

    /// Publishes `entries` in as few messages as fit `max_entry_bytes` (and
    /// `BATCH_ENTRIES`) each; an entry larger than that goes alone.
    async fn publish_batch(&self, shard: u16, entries: &[Entry]) -> Result<(), LedgerError> {
        let publisher = self.appender(shard).await?;
        let stream = self.inner.topology.ledger_stream(shard);
        let limit = self.inner.settings.max_entry_bytes;
        let mut messages: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut size = 0;
        for entry in entries {
            let json = entry.to_json();
            match messages.last_mut() {
                Some(last) if last.len() < BATCH_ENTRIES && size + json.len() < limit => {
                    size += json.len() + 1;
                    last.push(json);
                }
                _ => {
                    size = json.len() + 1;
                    messages.push(vec![json]);
                }
            }
        }
        let publishes = messages.iter().map(|chunk| {
            let (body, signature) = Entry::encode_json(chunk, &self.inner.signer);
            let mut out = Outgoing::json("", &stream, body);
            let mut headers = FieldTable::default();
            headers.insert(
                Entry::signature_header().into(),
                AMQPValue::LongString(signature.into()),
            );
            out.headers = headers;
            publisher.publish(out)
        });
        futures_util::future::try_join_all(publishes).await?;
        metrics::counter!("billflow_ledger_appends_total").increment(entries.len() as u64);
        metrics::counter!("billflow_ledger_batches_total").increment(messages.len() as u64);
        Ok(())
    }

    /// The channel that publishes to `shard`'s stream alone; opened again once closed
    /// (a channel error, or a new connection).
    async fn appender(&self, shard: u16) -> Result<Publisher, LedgerError> {
        let link = self.link()?;
        let mut slot = link
            .appenders
            .get(usize::from(shard))
            .ok_or_else(|| LedgerError::Append(format!("no shard {shard}")))?
            .lock()
            .await;
        if let Some(publisher) = slot.as_ref().filter(|p| p.channel().status().connected()) {
            return Ok(publisher.clone());
        }
        let publisher = Publisher::open(&link.connection).await?;
        *slot = Some(publisher.clone());
        Ok(publisher)
    }

    /// Before a non-idempotent call: registers its "started" record, to be read back
    /// once appended. Await [`Held::confirmed`] after the append, before the call.
    pub fn expect_start(&self, command_id: &str, stage: &str, record: &StageRecord) -> Held {
        let shard = self.inner.topology.shard_of(command_id);
        let key = start_key(command_id, stage, record);
        let waiting = self
            .state(shard)
            .map(|state| state.waiters.register(key.clone()));
        Held {
            ledger: self.clone(),
            shard,
            key,
            waiting,
        }
    }

    /// While this worker holds `shard`: reads every entry appended to it from `from` on,
    /// telling each call waiting for its "started" whether another worker took the shard
    /// first. Replaces the follower of an earlier tenure.
    fn follow(&self, shard: u16, from: Option<u64>) {
        let Some(state) = self.state(shard) else {
            return;
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let ledger = self.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = stopped => {}
                _ = ledger.following(shard, from) => {}
            }
        });
        if let Ok(mut follower) = state.follower.lock() {
            *follower = Some((stop, task));
        }
    }

    /// Stops following `shard`; the task ends at its next step.
    fn stop_following(&self, shard: u16) -> Option<tokio::task::JoinHandle<()>> {
        let state = self.state(shard)?;
        let stopped = state
            .follower
            .lock()
            .ok()
            .and_then(|mut follower| follower.take())
            .map(|(_stop, task)| task);
        state.waiters.clear();
        stopped
    }

    /// The worker is shutting down: stops following every shard, and returns once the
    /// followers have ended (they hold the store).
    pub async fn stop(&self) {
        for shard in 0..self.inner.topology.shards {
            if let Some(task) = self.stop_following(shard) {
                let _ = task.await;
            }
        }
        self.disconnected();
    }

    async fn following(&self, shard: u16, mut from: Option<u64>) {
        let mut follower = Follower::default();
        loop {
            if let Err(e) = self.follow_once(shard, &mut from, &mut follower).await {
                warn!(shard, error = %e, "following the shard's ledger failed; again in 1 s (calls on it wait)");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn follow_once(
        &self,
        shard: u16,
        from: &mut Option<u64>,
        follower: &mut Follower,
    ) -> Result<(), LedgerError> {
        let Some(state) = self.state(shard) else {
            return Ok(());
        };
        let link = self.link()?;
        let connection = self.reader_connection(&link).await?;
        let stream = self.inner.topology.ledger_stream(shard);
        let mut reader = StreamReader::open(&connection, &stream, *from).await?;
        let result = loop {
            let (offset, delivery) = match reader.next(FOLLOW_IDLE).await {
                Ok(Some(next)) => next,
                Ok(None) => continue,
                Err(e) => break Err(e),
            };
            if from.is_some_and(|from| offset < from) {
                continue;
            }
            *from = Some(offset + 1);
            let Ok(entries) = self.decode(&delivery) else {
                continue;
            };
            for entry in entries.into_iter().flatten() {
                let deposed = follower.deposed;
                let start = follower.read(self.inner.me, &entry);
                if follower.deposed && !deposed {
                    // The shard's next message makes this worker take it again (a new
                    // barrier and took) instead of refusing every call on it for good.
                    warn!(%stream, "another worker took the shard; taking it again before its next message");
                    self.forget(shard);
                }
                if let Some((key, held)) = start {
                    if !held {
                        warn!(%stream, command_id = %key.0, stage = %key.1, "another worker took the shard: this call is fenced and not made");
                    }
                    state.waiters.resolve(&key, held);
                }
            }
        };
        reader.close().await;
        result
    }

    /// Counts a stage of `shard` in flight until the guard drops.
    pub fn enter(&self, shard: u16) -> InFlight {
        if let Some(state) = self.state(shard) {
            state.inflight.fetch_add(1, Ordering::SeqCst);
        }
        InFlight {
            ledger: self.clone(),
            shard,
        }
    }

    /// Before the first message of a consumer (`generation`) on `shard` runs: reads what
    /// the fleet wrote there since this worker's checkpoint. Runs once per consumer;
    /// concurrent callers wait for the one read.
    pub async fn take_over(&self, shard: u16, generation: u64) -> Result<(), LedgerError> {
        let Some(state) = self.state(shard) else {
            return Ok(());
        };
        let cell = {
            let mut active = state.active.lock().map_err(|_| LedgerError::NotConnected)?;
            match active.as_ref() {
                Some((held, cell)) if *held == generation => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    *active = Some((generation, cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| self.catch_up(shard, true))
            .await
            .map(|_| ())
    }

    /// Makes the store current for `command_id` before it is shown: a shard this worker
    /// holds already is; any other is read up to now.
    pub async fn refresh_for(&self, command_id: &str) -> Result<(), LedgerError> {
        let shard = self.inner.topology.shard_of(command_id);
        let held = self.state(shard).is_some_and(|state| {
            state
                .active
                .lock()
                .ok()
                .and_then(|active| active.as_ref().map(|(_, cell)| cell.initialized()))
                .unwrap_or(false)
        });
        if held {
            return Ok(());
        }
        self.catch_up(shard, false).await
    }

    /// After stepping back from `shard`: once this worker's stages there have ended (or
    /// `handback_timeout` passed), tells the returning worker so.
    pub async fn release(&self, shard: u16) -> Result<(), LedgerError> {
        self.forget(shard);
        if let Some(state) = self.state(shard) {
            let ended = async {
                loop {
                    let notified = state.ended.notified();
                    if state.inflight.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    notified.await;
                }
            };
            if tokio::time::timeout(self.inner.settings.handback_timeout, ended)
                .await
                .is_err()
            {
                warn!(
                    shard,
                    in_flight = state.inflight.load(Ordering::SeqCst),
                    "stages still running on a shard handed back; releasing it anyway"
                );
            }
        }
        self.stop_following(shard);
        let entry = Entry::Release {
            worker: self.inner.me,
            nonce: uuid::Uuid::new_v4().to_string(),
        };
        self.append(shard, entry).await?;
        info!(shard, "shard released to its home worker");
        Ok(())
    }

    async fn reader_connection(&self, link: &Link) -> Result<Arc<Connection>, LedgerError> {
        let Some(url) = &self.inner.settings.reader_url else {
            return Ok(link.connection.clone());
        };
        let mut reader = self.inner.reader.lock().await;
        if let Some(connection) = reader.as_ref().filter(|c| c.status().connected()) {
            return Ok(connection.clone());
        }
        let name = format!(
            "billflow-worker {} #{} ledger reader",
            self.inner.topology.prefix, self.inner.me
        );
        let connection = Arc::new(crate::broker::connect(url.expose(), &name).await?);
        *reader = Some(connection.clone());
        Ok(connection)
    }

    fn checkpoint_name(&self, shard: u16) -> String {
        format!("ledger/{}", self.inner.topology.ledger_stream(shard))
    }

    /// Beside the checkpoint: who held the shard there (worker id + 1; 0: unknown).
    fn owner_name(&self, shard: u16) -> String {
        format!("{}/owner", self.checkpoint_name(shard))
    }

    /// Reads `shard`'s stream from the checkpoint up to a barrier appended now, into the
    /// store. `acquire`: this worker takes the shard over, and first waits for the
    /// worker that held it, if it is still running, to release it.
    async fn catch_up(&self, shard: u16, acquire: bool) -> Result<(), LedgerError> {
        let Some(state) = self.state(shard) else {
            return Ok(());
        };
        let _reading = state.reading.lock().await;
        let started = Instant::now();
        let link = self.link()?;
        let stream = self.inner.topology.ledger_stream(shard);
        let checkpoint = self.checkpoint_name(shard);
        let from = self.inner.store.marker(&checkpoint)?;
        let owner = self.inner.store.marker(&self.owner_name(shard))?;
        let tenure = Tenure {
            owner: owner
                .filter(|o| *o > 0)
                .and_then(|o| u16::try_from(o - 1).ok()),
        };
        let read = match self.read(&link, shard, from, tenure, acquire).await? {
            Some(read) => read,
            // The stream was made anew (deleted and declared again): its offsets start
            // over, so the checkpoint means nothing there.
            None => {
                warn!(%stream, ?from, "the ledger stream starts before this worker's checkpoint; reading it whole");
                self.read(&link, shard, None, Tenure::default(), acquire)
                    .await?
                    .ok_or(LedgerError::ReaderEnded)?
            }
        };
        if let Some(next) = read.next {
            self.inner.store.set_marker(&checkpoint, next)?;
            let owner = read.tenure.owner.map_or(0, |o| u64::from(o) + 1);
            self.inner
                .store
                .set_marker(&self.owner_name(shard), owner)?;
        }
        self.inner.store.flush().await?;
        if acquire {
            self.follow(shard, read.next);
        }
        let elapsed = started.elapsed();
        metrics::histogram!("billflow_ledger_catch_up_seconds").record(elapsed.as_secs_f64());
        metrics::counter!("billflow_ledger_entries_read_total").increment(read.entries as u64);
        info!(
            shard,
            acquire,
            from = ?from,
            next = ?read.next,
            entries = read.entries,
            applied = read.applied,
            ms = elapsed.as_millis() as u64,
            "caught up on the shard's ledger"
        );
        Ok(())
    }

    /// One read from `from`; `None` when this worker's barrier came back before `from`.
    async fn read(
        &self,
        link: &Link,
        shard: u16,
        from: Option<u64>,
        tenure: Tenure,
        acquire: bool,
    ) -> Result<Option<Read>, LedgerError> {
        let me = self.inner.me;
        let stream = self.inner.topology.ledger_stream(shard);
        let connection = self.reader_connection(link).await?;
        let mut reader = StreamReader::open(&connection, &stream, from).await?;
        let nonce = uuid::Uuid::new_v4().to_string();
        let barrier = Entry::Barrier {
            worker: me,
            nonce: nonce.clone(),
            acquire,
        };
        // Attached first, so the barrier is read back even on a stream that is shorter
        // than the checkpoint says.
        if let Err(e) = self.append(shard, barrier).await {
            reader.close().await;
            return Err(e);
        }
        let result = self
            .read_entries(
                &mut reader,
                shard,
                from.unwrap_or(0),
                tenure,
                &nonce,
                acquire,
            )
            .await;
        reader.close().await;
        result
    }

    async fn read_entries(
        &self,
        reader: &mut StreamReader,
        shard: u16,
        from: u64,
        tenure: Tenure,
        nonce: &str,
        acquire: bool,
    ) -> Result<Option<Read>, LedgerError> {
        let stream = self.inner.topology.ledger_stream(shard);
        let stream = stream.as_str();
        let wait = self.inner.settings.read_timeout;
        let mut read = Read {
            tenure,
            ..Read::default()
        };
        let mut pending: HashMap<(String, String), StageRecord> = HashMap::new();
        let mut state = ReadState::Before { holder: None };
        let mut took: Option<String> = None;
        loop {
            if state == ReadState::Done {
                match self.close_read(shard, acquire, &mut took).await? {
                    Some(closing) => state = closing,
                    None => break,
                }
            }
            let (offset, delivery) = match state {
                ReadState::Before { .. } | ReadState::Closing => reader
                    .next(wait)
                    .await?
                    .ok_or_else(|| LedgerError::Timeout {
                        stream: stream.to_string(),
                        secs: wait.as_secs(),
                    })?,
                ReadState::Waiting { holder, until } => {
                    let now = tokio::time::Instant::now();
                    if now >= until {
                        warn!(%stream, holder, "the worker that held the shard did not release it in time; taking it over");
                        state = ReadState::Done;
                        continue;
                    }
                    if !self.inner.presence.is_present(holder) {
                        info!(%stream, holder, "the worker that held the shard is gone; taking it over");
                        state = ReadState::Done;
                        continue;
                    }
                    // Short waits: the holder may die meanwhile, which only presence says.
                    match reader.next((until - now).min(PRESENCE_RECHECK)).await? {
                        Some(next) => next,
                        None => continue,
                    }
                }
                ReadState::Done => break,
            };
            let entries = match self.decode(&delivery) {
                Ok(entries) => entries,
                Err(e) => {
                    metrics::counter!("billflow_ledger_entries_skipped_total", "why" => "unreadable")
                        .increment(1);
                    warn!(%stream, offset, error = %e, "unreadable ledger message skipped");
                    continue;
                }
            };
            if offset < from {
                let mine = entries
                    .iter()
                    .any(|e| matches!(e, Ok(Entry::Barrier { nonce: n, .. }) if n == nonce));
                if mine {
                    return Ok(None);
                }
                continue;
            }
            read.next = Some(offset + 1);
            let count = entries.len();
            for (i, entry) in entries.into_iter().enumerate() {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        metrics::counter!("billflow_ledger_entries_skipped_total", "why" => "unreadable")
                            .increment(1);
                        warn!(%stream, offset, error = %e, "unreadable ledger entry skipped");
                        continue;
                    }
                };
                read.entries += 1;
                read.tenure.observe(&entry);
                state = self.next_state(state, &entry, nonce, took.as_deref(), acquire, stream);
                if let Entry::Stage {
                    worker,
                    command_id,
                    stage,
                    record,
                } = entry
                {
                    if !read.tenure.admits(worker) {
                        // Written after another worker took the shard: its writer was
                        // fenced and made no call on it.
                        metrics::counter!("billflow_ledger_entries_skipped_total", "why" => "fenced")
                            .increment(1);
                        tracing::debug!(offset, worker, %command_id, %stage, "fenced ledger entry skipped");
                        continue;
                    }
                    tracing::debug!(offset, %command_id, %stage, state = record.state.name(), "ledger entry");
                    pending.insert((command_id, stage), record);
                    if pending.len() >= APPLY_BATCH {
                        read.applied += self.apply(&mut pending)?;
                    }
                }
                if state == ReadState::Done {
                    if let Some(closing) = self.close_read(shard, acquire, &mut took).await? {
                        // The rest of this message is before the `Took`: read on.
                        state = closing;
                        continue;
                    }
                    if i + 1 < count {
                        // The rest of this message is after the end of the read: the next
                        // read starts at this message again.
                        read.next = Some(offset);
                    }
                    break;
                }
            }
        }
        read.applied += self.apply(&mut pending)?;
        Ok(Some(read))
    }

    /// A takeover's read that reached its barrier (and any release) appends its `Took`
    /// and reads on up to it: what others wrote before the `Took` is known, and what
    /// they write after it is fenced. `None`: the read is over.
    async fn close_read(
        &self,
        shard: u16,
        acquire: bool,
        took: &mut Option<String>,
    ) -> Result<Option<ReadState>, LedgerError> {
        if !acquire || took.is_some() {
            return Ok(None);
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        self.append(
            shard,
            Entry::Took {
                worker: self.inner.me,
                nonce: nonce.clone(),
            },
        )
        .await?;
        *took = Some(nonce);
        Ok(Some(ReadState::Closing))
    }

    /// Where a read stands after `entry`: looking for this reader's barrier (and noting
    /// who holds the shard), waiting for the holder's release, or done.
    fn next_state(
        &self,
        state: ReadState,
        entry: &Entry,
        nonce: &str,
        took: Option<&str>,
        acquire: bool,
        stream: &str,
    ) -> ReadState {
        let me = self.inner.me;
        match (state, entry) {
            (ReadState::Closing, Entry::Took { worker, nonce: n })
                if *worker == me && Some(n.as_str()) == took =>
            {
                ReadState::Done
            }
            (
                ReadState::Before { holder },
                Entry::Barrier {
                    worker, nonce: n, ..
                },
            ) if *worker == me && n == nonce => match holder {
                Some(other) if acquire && other != me && self.inner.presence.is_present(other) => {
                    info!(%stream, holder = other, "waiting for the worker that held the shard to release it");
                    ReadState::Waiting {
                        holder: other,
                        until: tokio::time::Instant::now() + self.inner.settings.handback_timeout,
                    }
                }
                _ => ReadState::Done,
            },
            (
                ReadState::Before { .. },
                Entry::Barrier {
                    worker,
                    acquire: true,
                    ..
                },
            ) => ReadState::Before {
                holder: Some(*worker),
            },
            (ReadState::Before { holder }, Entry::Release { worker, .. })
                if holder == Some(*worker) =>
            {
                ReadState::Before { holder: None }
            }
            (ReadState::Waiting { holder, .. }, Entry::Release { worker, .. })
                if holder == *worker =>
            {
                ReadState::Done
            }
            (state, _) => state,
        }
    }

    fn decode(
        &self,
        delivery: &lapin::message::Delivery,
    ) -> Result<Vec<Result<Entry, Unreadable>>, Unreadable> {
        let signature = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(Entry::signature_header()))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            });
        Entry::decode(
            &delivery.data,
            signature.as_deref(),
            &self.inner.signer,
            self.inner
                .settings
                .max_entry_bytes
                .saturating_mul(READ_LIMIT_FACTOR),
        )
    }

    /// Writes each stage's newest entry into the store where it says more than the store.
    fn apply(
        &self,
        pending: &mut HashMap<(String, String), StageRecord>,
    ) -> Result<usize, LedgerError> {
        let mut applied = 0;
        for ((command_id, stage), incoming) in pending.drain() {
            let local = self.inner.store.get(&command_id, &stage).unwrap_or(None);
            if let Some(record) = merge::merge(local.as_ref(), &incoming) {
                self.inner.store.put(&command_id, &stage, &record)?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}
