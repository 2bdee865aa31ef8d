//! The NATS driver of a tidings cluster node (`tidings serve --cluster nats://…`).
//!
//! A node's hub says what it needs from the broker ([`ClusterOutput`]) and takes what the
//! broker says ([`ClusterInput`]); this crate carries both between the server's thread and
//! a NATS connection, on a thread of its own running the official client (`async-nats`, on
//! a one-thread tokio runtime):
//!
//! * **Publish** and **interest**: each subject the hub hears is one NATS subscription; the
//!   broker then sends a room's lines only to nodes with someone in the room, and a private
//!   message only to its addressee's node.
//! * **Names**: a claim is a JetStream KV `create` in the bucket [`NatsConfig::bucket`] (the
//!   store refuses a key that exists), its value the node's name. The bucket's `max_age` is
//!   [`NatsConfig::claim_ttl`]: this driver rewrites every claim it holds three times per
//!   TTL, so a claim outlives its node by at most the TTL. A release deletes the key if this
//!   node still holds it (the revision it last wrote).
//! * **Link**: the client's connection events become [`ClusterInput::Link`]; it reconnects by
//!   itself, and subscriptions are renewed by the client.
//!
//! Nothing here blocks the server: outputs go through a bounded channel the server never
//! waits on, and inputs through a channel the server's loop reads.
//!
//! ```no_run
//! use tidings_nats::{connect, NatsConfig};
//! let (link, driving) = connect(&NatsConfig::new("nats://127.0.0.1:4222"), "east").unwrap();
//! // tidings_smol::Server::bind(…).await?.with_cluster(link).run().await?;
//! # drop(link);
//! driving.finish();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;
use tidings_core::cluster::{ClaimOutcome, ClusterInput, ClusterOutput};
use tidings_smol::ClusterLink;
use tokio::task::JoinHandle;

/// Most messages of the hub waiting to be published, and most messages from NATS waiting
/// for the server: beyond the first the server drops lines (see [`ClusterLink`]); beyond the
/// second this driver stops reading NATS, which then drops what a slow subscriber cannot
/// take. Either way memory stays bounded and chat stays at most once.
const BACKLOG: usize = 1 << 16;

/// Claims asked of the store at once (a join storm makes thousands).
const CLAIMS_AT_ONCE: usize = 64;

/// How to reach NATS.
///
/// ```
/// let cfg = tidings_nats::NatsConfig::new("nats://127.0.0.1:4222");
/// assert_eq!(cfg.bucket, "tidings-names");
/// ```
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The server(s), comma-separated: `nats://host:port`, `tls://host:port` for TLS, with
    /// `user:password@` or a token before the host if the server asks for them.
    pub url: String,
    /// The JetStream KV bucket of name claims (created if absent). Default `tidings-names`.
    pub bucket: String,
    /// How long a claim outlives the last renewal by its node: how soon the names of a node
    /// that died are free again. Default 15 s.
    pub claim_ttl: Duration,
    /// How long to wait for the first connection (and for each answer of the store). Default
    /// 5 s.
    pub timeout: Duration,
    /// A PEM file of certificate authorities to trust for `tls://` (default: the system's).
    pub ca: Option<PathBuf>,
    /// A NATS credentials file (`.creds`: a user JWT and its nkey seed), for servers that
    /// ask for them.
    pub credentials: Option<PathBuf>,
}

impl NatsConfig {
    /// The defaults, for the server(s) at `url`.
    pub fn new(url: &str) -> NatsConfig {
        NatsConfig {
            url: url.to_owned(),
            bucket: "tidings-names".to_owned(),
            claim_ttl: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            ca: None,
            credentials: None,
        }
    }
}

/// Why the driver could not start.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The driver's thread: it ends once the server dropped its ends of the link, after sending
/// what the server said last (its goodbye) and releasing its claims.
#[derive(Debug)]
pub struct Driving(std::thread::JoinHandle<()>);

impl Driving {
    /// Waits for the driver to finish (at most about [`NatsConfig::timeout`] after the
    /// server stopped), so that a stopping node's names are free when it exits.
    pub fn finish(self) {
        let _ = self.0.join();
    }
}

/// Connects to NATS as node `node`, opens (or creates) the bucket of claims, and starts the
/// driver's thread. Returns the link to give the server ([`tidings_smol::Server::with_cluster`])
/// and the thread, to [`Driving::finish`] once the server has stopped.
///
/// # Errors
///
/// NATS cannot be reached within [`NatsConfig::timeout`], or it has no JetStream (start
/// `nats-server -js`), or the bucket cannot be opened.
pub fn connect(config: &NatsConfig, node: &str) -> Result<(ClusterLink, Driving), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error(format!("cannot start the NATS driver: {e}")))?;
    let (inputs_tx, inputs) = async_channel::bounded(BACKLOG);
    let (outputs, outputs_rx) = async_channel::bounded(BACKLOG);
    let (control, control_rx) = async_channel::unbounded();
    let (client, store, ttl) = runtime.block_on(open(config, node, inputs_tx.clone()))?;
    let driver = Driver {
        client,
        claims: Arc::new(ClaimStore {
            store,
            node: Bytes::from(node.to_owned()),
            held: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            slots: tokio::sync::Semaphore::new(CLAIMS_AT_ONCE),
            timeout: config.timeout,
            inputs: inputs_tx.clone(),
        }),
        inputs: inputs_tx,
        subscriptions: HashMap::new(),
        releases: tokio::task::JoinSet::new(),
        timeout: config.timeout,
    };
    let thread = std::thread::Builder::new()
        .name("tidings-nats".into())
        .spawn(move || runtime.block_on(driver.run(outputs_rx, control_rx, ttl / 3)))
        .map_err(|e| Error(format!("cannot start the NATS driver: {e}")))?;
    let link = ClusterLink {
        outputs,
        control,
        inputs,
    };
    Ok((link, Driving(thread)))
}

/// The connection, the bucket of claims and the lifetime of a claim in it.
async fn open(
    config: &NatsConfig,
    node: &str,
    inputs: Sender<ClusterInput>,
) -> Result<(async_nats::Client, kv::Store, Duration), Error> {
    let url = &config.url;
    let mut options = async_nats::ConnectOptions::new();
    if let Some(ca) = &config.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some(creds) = &config.credentials {
        options = options.credentials_file(creds).await.map_err(|e| {
            Error(format!(
                "cannot read the NATS credentials {}: {e}",
                creds.display()
            ))
        })?;
    }
    let options = options
        .name(format!("tidings node {node}"))
        .connection_timeout(config.timeout)
        // A node does not need its own messages back (its hub would drop them anyway).
        .no_echo()
        // Forever: a node outlives any outage of the broker.
        .max_reconnects(None)
        .event_callback(move |event| {
            let inputs = inputs.clone();
            async move {
                let link = match event {
                    async_nats::Event::Connected => Some(true),
                    async_nats::Event::Disconnected => Some(false),
                    _ => None,
                };
                tracing::info!(%event, "NATS");
                if let Some(up) = link {
                    let _ = inputs.send(ClusterInput::Link(up)).await;
                }
            }
        });
    let client = tokio::time::timeout(config.timeout, options.connect(url.as_str()))
        .await
        .map_err(|_| {
            Error(format!(
                "NATS at {url} did not answer within {:?}",
                config.timeout
            ))
        })?
        .map_err(|e| Error(format!("cannot connect to NATS at {url}: {e}")))?;
    let js = async_nats::jetstream::new(client.clone());
    let bucket = kv::Config {
        bucket: config.bucket.clone(),
        description: "tidings: which node holds each name".to_owned(),
        history: 1,
        max_age: config.claim_ttl,
        ..kv::Config::default()
    };
    let store = match js.create_key_value(bucket).await {
        Ok(store) => store,
        // Made by another node with other settings: use it as it is.
        Err(create) => js.get_key_value(&config.bucket).await.map_err(|e| {
            Error(format!(
                "cannot open the bucket {} of name claims (is JetStream on? nats-server -js): \
                 {create}; {e}",
                config.bucket
            ))
        })?,
    };
    // Renewed by the bucket's lifetime, whoever made it (the flag only sets a new bucket's).
    let ttl = match store.status().await {
        Ok(status) if !status.max_age().is_zero() => status.max_age(),
        _ => config.claim_ttl,
    };
    if ttl != config.claim_ttl {
        tracing::warn!(
            bucket = config.bucket,
            ?ttl,
            "the bucket of claims keeps another lifetime than --claim-ttl-secs: it wins"
        );
    }
    Ok((client, store, ttl))
}

/// The claims this node holds in the bucket, shared by the tasks that make, renew and
/// release them. Every operation on one key holds that key's lock for its whole length, so
/// a release never crosses a renewal or a new claim of the same name; different keys go
/// side by side (up to [`CLAIMS_AT_ONCE`]).
struct ClaimStore {
    store: kv::Store,
    /// The node's name: every claim's value.
    node: Bytes,
    /// Each claim held → the revision this node last wrote.
    held: Mutex<HashMap<String, u64>>,
    /// Each key with an operation under way → its lock.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the store operations in flight (a join storm makes thousands).
    slots: tokio::sync::Semaphore,
    timeout: Duration,
    inputs: Sender<ClusterInput>,
}

/// What the store says of a key.
enum Holder {
    /// Nobody (absent, deleted or expired).
    Nobody,
    /// This node, at this revision.
    Us(u64),
    /// Another node.
    Other,
}

/// A key's lock, held: dropping it forgets the lock when nobody else waits for it.
struct KeyLock<'a> {
    claims: &'a ClaimStore,
    key: &'a str,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = lock(&self.claims.locks);
        if locks
            .get(self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(self.key);
        }
    }
}

/// A std mutex's guard: a task that panicked holding it left a map that is still right.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClaimStore {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        lock(&self.held)
    }

    /// Waits for `key`'s lock (and a slot among the operations in flight).
    async fn lock<'a>(&'a self, key: &'a str) -> (KeyLock<'a>, tokio::sync::SemaphorePermit<'a>) {
        let mutex = lock(&self.locks).entry(key.to_owned()).or_default().clone();
        let guard = mutex.lock_owned().await;
        let key_lock = KeyLock {
            claims: self,
            key,
            guard: Some(guard),
        };
        // Never closed: the store lives as long as the driver.
        let slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        (key_lock, slot)
    }

    /// Who holds `key` now; `None` if the store did not answer.
    async fn holder(&self, key: &str) -> Option<Holder> {
        match tokio::time::timeout(self.timeout, self.store.entry(key)).await {
            Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => Some(if e.value == self.node {
                Holder::Us(e.revision)
            } else {
                Holder::Other
            }),
            Ok(Ok(_)) => Some(Holder::Nobody),
            _ => None,
        }
    }

    /// Makes `key` this node's if no other node holds it: created if absent; taken over if
    /// the store already says this node (a claim of an earlier run under the same node name,
    /// or one whose answer came too late). Answers within the timeout; a claim that may have
    /// landed after it is removed later ([`ClaimStore::abandon`]).
    async fn claim(self: &Arc<Self>, key: &str) -> ClaimOutcome {
        let outcome = {
            let _lock = self.lock(key).await;
            let attempt = tokio::time::timeout(self.timeout, self.try_claim(key)).await;
            match attempt {
                Ok(Some(revision)) => {
                    self.held().insert(key.to_owned(), revision);
                    return ClaimOutcome::Held;
                }
                Ok(None) => return ClaimOutcome::Taken,
                Err(_) => ClaimOutcome::Unavailable,
            }
        };
        let (claims, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move { claims.abandon(&key).await });
        outcome
    }

    /// One claim: `Some(revision)` held, `None` another node holds it. Never returns when
    /// the store does not answer (the caller times it out).
    async fn try_claim(&self, key: &str) -> Option<u64> {
        loop {
            match self.store.create(key, self.node.clone()).await {
                Ok(revision) => return Some(revision),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    match self.holder(key).await {
                        // Rewritten, so that an old release deletes nothing of this claim.
                        Some(Holder::Us(revision)) => {
                            let update = self.store.update(key, self.node.clone(), revision);
                            if let Ok(revision) = update.await {
                                return Some(revision);
                            }
                        }
                        Some(Holder::Other) => return None,
                        // Gone meanwhile (or no answer): create again.
                        _ => {}
                    }
                }
                Err(e) => tracing::debug!(error = %e, "a name claim failed; trying again"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// After a claim answered `Unavailable`: once its writes can no longer land, a claim of
    /// `key` under this node's name that no connection holds is deleted.
    async fn abandon(&self, key: &str) {
        tokio::time::sleep(self.timeout).await;
        let _lock = self.lock(key).await;
        if self.held().contains_key(key) {
            return; // claimed again meanwhile
        }
        if let Some(Holder::Us(revision)) = self.holder(key).await {
            let delete = self.store.delete_expect_revision(key, Some(revision));
            let _ = tokio::time::timeout(self.timeout, delete).await;
        }
    }

    /// Lets `key` go, if the store still has this node's revision of it.
    async fn release(&self, key: &str) {
        let _lock = self.lock(key).await;
        let Some(revision) = self.held().remove(key) else {
            return;
        };
        let delete = self.store.delete_expect_revision(key, Some(revision));
        match tokio::time::timeout(self.timeout, delete).await {
            Ok(Ok(())) => {}
            // Rewritten by an update that landed late: whatever is there is ours to delete.
            _ => {
                if let Some(Holder::Us(revision)) = self.holder(key).await {
                    let delete = self.store.delete_expect_revision(key, Some(revision));
                    let _ = tokio::time::timeout(self.timeout, delete).await;
                }
            }
        }
    }

    /// Rewrites every claim held, so that none reaches the bucket's lifetime. A claim found
    /// another node's (this one was cut off for longer than the lifetime) is reported lost;
    /// any other failure is taken for a passing one, and tried again next time.
    async fn renew(&self) {
        let keys: Vec<String> = self.held().keys().cloned().collect();
        let lost: Vec<String> = futures_util::stream::iter(keys)
            .map(|key| async move {
                let _lock = self.lock(&key).await;
                // Released meanwhile: not this renewal's.
                let revision = *self.held().get(&key)?;
                match self.renew_one(&key, revision).await {
                    Some(Some(revision)) => {
                        self.held().insert(key.clone(), revision);
                        None
                    }
                    Some(None) => {
                        self.held().remove(&key);
                        Some(key.clone())
                    }
                    None => None,
                }
            })
            .buffer_unordered(CLAIMS_AT_ONCE)
            .filter_map(|lost| async move { lost })
            .collect()
            .await;
        for key in lost {
            tracing::warn!(key, "a name claim was lost to another node");
            let _ = self.inputs.send(ClusterInput::Lost(key)).await;
        }
    }

    /// One renewal (under the key's lock): `Some(Some(revision))` renewed, `Some(None)`
    /// another node holds it, `None` the store did not answer as it should (try again
    /// later).
    async fn renew_one(&self, key: &str, revision: u64) -> Option<Option<u64>> {
        let update = self.store.update(key, self.node.clone(), revision);
        if let Ok(Ok(revision)) = tokio::time::timeout(self.timeout, update).await {
            return Some(Some(revision));
        }
        // The revision moved (an update that timed out landed later), the claim expired, or
        // the store did not answer: see what it holds.
        match self.holder(key).await? {
            Holder::Us(revision) => {
                let update = self.store.update(key, self.node.clone(), revision);
                match tokio::time::timeout(self.timeout, update).await {
                    Ok(Ok(revision)) => Some(Some(revision)),
                    _ => None,
                }
            }
            Holder::Nobody => {
                let create = self.store.create(key, self.node.clone());
                match tokio::time::timeout(self.timeout, create).await {
                    Ok(Ok(revision)) => Some(Some(revision)),
                    Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        match self.holder(key).await? {
                            Holder::Other => Some(None),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            Holder::Other => Some(None),
        }
    }
}

/// Most publishes waiting for the NATS client (which stops taking them while it
/// reconnects): beyond it lines are dropped, so the driver never waits on publishing.
const PUBLISH_QUEUE: usize = 4096;

/// Most outputs of one kind carried in a row before the driver looks at the others.
const DRAIN: usize = 256;

struct Driver {
    client: async_nats::Client,
    claims: Arc<ClaimStore>,
    inputs: Sender<ClusterInput>,
    /// Each subject heard → the task subscribing and forwarding its messages (aborting it
    /// unsubscribes).
    subscriptions: HashMap<String, JoinHandle<()>>,
    /// Releases under way: awaited before the thread ends, so that a stopping node's names
    /// are free at once.
    releases: tokio::task::JoinSet<()>,
    timeout: Duration,
}

impl Driver {
    async fn run(
        mut self,
        outputs: Receiver<ClusterOutput>,
        control: Receiver<ClusterOutput>,
        renew: Duration,
    ) {
        // One task publishes, in order, so that a client busy reconnecting holds up nothing
        // else here.
        let (publish, mut to_publish) =
            tokio::sync::mpsc::channel::<(String, Bytes)>(PUBLISH_QUEUE);
        let client = self.client.clone();
        let publisher = tokio::spawn(async move {
            while let Some((subject, payload)) = to_publish.recv().await {
                if let Err(e) = client.publish(subject, payload).await {
                    tracing::debug!(error = %e, "NATS publish failed");
                }
            }
        });
        let mut renewal = tokio::time::interval(renew);
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing: Option<JoinHandle<()>> = None;
        let mut control_open = true;
        loop {
            tokio::select! {
                biased;
                _ = renewal.tick() => {
                    // One renewal at a time, beside the loop.
                    if renewing.as_ref().map_or(true, JoinHandle::is_finished) {
                        let claims = self.claims.clone();
                        renewing = Some(tokio::spawn(async move { claims.renew().await }));
                    }
                }
                out = control.recv(), if control_open => match out {
                    Ok(out) => {
                        self.carry(out, &publish);
                        for _ in 1..DRAIN {
                            let Ok(out) = control.try_recv() else { break };
                            self.carry(out, &publish);
                        }
                    }
                    Err(_) => control_open = false,
                },
                out = outputs.recv() => match out {
                    Ok(out) => {
                        self.carry(out, &publish);
                        for _ in 1..DRAIN {
                            let Ok(out) = outputs.try_recv() else { break };
                            self.carry(out, &publish);
                        }
                    }
                    // The server is gone (both its ends closed once it dropped them).
                    Err(_) => break,
                },
            }
        }
        // Its last words (presence, goodbye) and its releases go out before the thread ends.
        drop(publish);
        let finish = async {
            let _ = publisher.await;
            while self.releases.join_next().await.is_some() {}
            let _ = self.client.flush().await;
        };
        let _ = tokio::time::timeout(self.timeout, finish).await;
    }

    fn carry(&mut self, out: ClusterOutput, publish: &tokio::sync::mpsc::Sender<(String, Bytes)>) {
        match out {
            ClusterOutput::Publish { subject, payload } => {
                // Full while NATS is away: the line is dropped (chat across is at most once).
                let _ = publish.try_send((subject, payload));
            }
            ClusterOutput::Subscribe(subject) => self.subscribe(subject),
            ClusterOutput::Unsubscribe(subject) => {
                if let Some(task) = self.subscriptions.remove(&subject) {
                    task.abort();
                }
            }
            ClusterOutput::Claim { conn, key, .. } => {
                // Each in a task of its own, so that a join storm waits for round trips side
                // by side, not one after another.
                let (claims, inputs) = (self.claims.clone(), self.inputs.clone());
                tokio::spawn(async move {
                    let outcome = claims.claim(&key).await;
                    let _ = inputs.send(ClusterInput::Claimed { conn, outcome }).await;
                });
            }
            ClusterOutput::Release { key } => {
                let claims = self.claims.clone();
                self.releases
                    .spawn(async move { claims.release(&key).await });
                // Finished releases are not kept.
                while self.releases.try_join_next().is_some() {}
            }
        }
    }

    fn subscribe(&mut self, subject: String) {
        if self.subscriptions.contains_key(&subject) {
            return;
        }
        let (client, inputs) = (self.client.clone(), self.inputs.clone());
        let topic = subject.clone();
        let task = tokio::spawn(async move {
            let mut subscriber = match client.subscribe(topic.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, subject = topic, "NATS subscribe failed");
                    return;
                }
            };
            while let Some(msg) = subscriber.next().await {
                if inputs
                    .send(ClusterInput::Message(msg.payload))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        self.subscriptions.insert(subject, task);
    }
}
