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
//! let link = connect(&NatsConfig::new("nats://127.0.0.1:4222"), "east").unwrap();
//! // tidings_smol::Server::bind(…).await?.with_cluster(link)
//! # drop(link);
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

/// Connects to NATS as node `node`, opens (or creates) the bucket of claims, and starts the
/// driver's thread. Returns the link to give the server ([`tidings_smol::Server::with_cluster`]).
/// The thread ends when the server drops its end.
///
/// # Errors
///
/// NATS cannot be reached within [`NatsConfig::timeout`], or it has no JetStream (start
/// `nats-server -js`), or the bucket cannot be opened.
pub fn connect(config: &NatsConfig, node: &str) -> Result<ClusterLink, Error> {
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
            slots: tokio::sync::Semaphore::new(CLAIMS_AT_ONCE),
            timeout: config.timeout,
            inputs: inputs_tx.clone(),
        }),
        inputs: inputs_tx,
        subscriptions: HashMap::new(),
        timeout: config.timeout,
    };
    std::thread::Builder::new()
        .name("tidings-nats".into())
        .spawn(move || runtime.block_on(driver.run(outputs_rx, control_rx, ttl / 3)))
        .map_err(|e| Error(format!("cannot start the NATS driver: {e}")))?;
    Ok(ClusterLink {
        outputs,
        control,
        inputs,
    })
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
/// release them.
struct ClaimStore {
    store: kv::Store,
    /// The node's name: every claim's value.
    node: Bytes,
    /// Each claim held → the revision this node last wrote.
    held: Mutex<HashMap<String, u64>>,
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

impl ClaimStore {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A task that panicked holding it left a map that is still right.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Makes `key` this node's if nobody (else) holds it: created if absent; taken over if
    /// the store already says this node (a claim of an earlier run under the same node name,
    /// or one whose answer came too late).
    async fn claim(&self, key: &str) -> ClaimOutcome {
        let Ok(_slot) = self.slots.acquire().await else {
            return ClaimOutcome::Unavailable;
        };
        let create = self.store.create(key, self.node.clone());
        let revision = match tokio::time::timeout(self.timeout, create).await {
            Ok(Ok(revision)) => revision,
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.holder(key).await {
                    // Rewritten, so that a release of the old claim still under way (it
                    // deletes only the revision it knew) leaves this one alone.
                    Some(Holder::Us(revision)) => match self.take_over(key, revision).await {
                        Some(revision) => revision,
                        None => return ClaimOutcome::Unavailable,
                    },
                    Some(Holder::Other) => return ClaimOutcome::Taken,
                    _ => return ClaimOutcome::Unavailable,
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a name claim failed");
                return ClaimOutcome::Unavailable;
            }
            Err(_) => {
                // The create may still land after the refusal: remove it then.
                self.abandon(key).await;
                return ClaimOutcome::Unavailable;
            }
        };
        self.held().insert(key.to_owned(), revision);
        ClaimOutcome::Held
    }

    /// Rewrites this node's `key` found at `revision` (or creates it, if it went meanwhile):
    /// the new revision.
    async fn take_over(&self, key: &str, revision: u64) -> Option<u64> {
        let update = self.store.update(key, self.node.clone(), revision);
        if let Ok(Ok(revision)) = tokio::time::timeout(self.timeout, update).await {
            return Some(revision);
        }
        let create = self.store.create(key, self.node.clone());
        match tokio::time::timeout(self.timeout, create).await {
            Ok(Ok(revision)) => Some(revision),
            _ => None,
        }
    }

    /// A claim this node refused to hold (its answer came too late): deleted if it is there.
    async fn abandon(&self, key: &str) {
        tokio::time::sleep(self.timeout).await;
        if self.held().contains_key(key) {
            return; // claimed again meanwhile
        }
        if let Some(Holder::Us(revision)) = self.holder(key).await {
            let _ = self.store.delete_expect_revision(key, Some(revision)).await;
        }
    }

    /// Lets `key` go, if the store still has this node's revision of it.
    async fn release(&self, key: &str) {
        let Some(revision) = self.held().remove(key) else {
            return;
        };
        let delete = self.store.delete_expect_revision(key, Some(revision));
        if let Ok(Err(e)) = tokio::time::timeout(self.timeout, delete).await {
            tracing::debug!(error = %e, "releasing a name claim failed");
        }
    }

    /// Rewrites every claim held, so that none reaches the bucket's lifetime. A claim found
    /// another node's (this one was cut off for longer than the lifetime) is reported lost;
    /// any other failure is taken for a passing one, and tried again next time.
    async fn renew(&self) {
        let keys: Vec<(String, u64)> = self.held().iter().map(|(k, &r)| (k.clone(), r)).collect();
        let renewals = futures_util::stream::iter(keys)
            .map(|(key, revision)| async move {
                let renewed = self.renew_one(&key, revision).await;
                (key, revision, renewed)
            })
            .buffer_unordered(CLAIMS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut lost = Vec::new();
        {
            let mut held = self.held();
            for (key, old, renewed) in renewals {
                // Released (or claimed anew) meanwhile: not this renewal's to change.
                if held.get(&key) != Some(&old) {
                    continue;
                }
                match renewed {
                    Some(Some(revision)) => {
                        held.insert(key, revision);
                    }
                    Some(None) => {
                        held.remove(&key);
                        lost.push(key);
                    }
                    None => {}
                }
            }
        }
        for key in lost {
            tracing::warn!(key, "a name claim was lost to another node");
            let _ = self.inputs.send(ClusterInput::Lost(key)).await;
        }
    }

    /// One renewal: `Some(Some(revision))` renewed, `Some(None)` another node holds it,
    /// `None` the store did not answer as it should (try again later).
    async fn renew_one(&self, key: &str, revision: u64) -> Option<Option<u64>> {
        let update = self.store.update(key, self.node.clone(), revision);
        if let Ok(Ok(revision)) = tokio::time::timeout(self.timeout, update).await {
            return Some(Some(revision));
        }
        // The revision moved (an update that timed out landed later), the claim expired, or
        // the store did not answer: see what it holds.
        match self.holder(key).await? {
            Holder::Us(revision) => self.take_over(key, revision).await.map(Some),
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

struct Driver {
    client: async_nats::Client,
    claims: Arc<ClaimStore>,
    inputs: Sender<ClusterInput>,
    /// Each subject heard → the task forwarding its messages (dropping the subscriber
    /// unsubscribes).
    subscriptions: HashMap<String, JoinHandle<()>>,
    timeout: Duration,
}

impl Driver {
    async fn run(
        mut self,
        outputs: Receiver<ClusterOutput>,
        control: Receiver<ClusterOutput>,
        renew: Duration,
    ) {
        let mut renewal = tokio::time::interval(renew);
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing: Option<JoinHandle<()>> = None;
        loop {
            tokio::select! {
                // Subscriptions and claims first: they are never dropped, and a user's
                // subscription should be there before lines for them arrive.
                biased;
                out = control.recv() => match out {
                    Ok(out) => self.carry(out).await,
                    Err(_) => break,
                },
                out = outputs.recv() => match out {
                    Ok(out) => {
                        self.carry(out).await;
                        // What came meanwhile, before going back to sleep.
                        while let Ok(out) = outputs.try_recv() {
                            self.carry(out).await;
                        }
                    }
                    Err(_) => break,
                },
                _ = renewal.tick() => {
                    // One renewal at a time, beside the loop: a slow store holds up neither
                    // publishing nor the next claims.
                    if renewing.as_ref().map_or(true, JoinHandle::is_finished) {
                        let claims = self.claims.clone();
                        renewing = Some(tokio::spawn(async move { claims.renew().await }));
                    }
                }
            }
        }
        // The server is gone: its last words (a node's goodbye) go out before the thread ends.
        let _ = tokio::time::timeout(self.timeout, self.client.flush()).await;
    }

    async fn carry(&mut self, out: ClusterOutput) {
        match out {
            ClusterOutput::Publish { subject, payload } => {
                if let Err(e) = self.client.publish(subject, payload).await {
                    tracing::debug!(error = %e, "NATS publish failed");
                }
            }
            ClusterOutput::Subscribe(subject) => self.subscribe(subject).await,
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
                tokio::spawn(async move { claims.release(&key).await });
            }
        }
    }

    async fn subscribe(&mut self, subject: String) {
        if self.subscriptions.contains_key(&subject) {
            return;
        }
        let mut subscriber = match self.client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, subject, "NATS subscribe failed");
                return;
            }
        };
        let inputs = self.inputs.clone();
        let task = tokio::spawn(async move {
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
