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

/// Most outputs of the hub waiting for this driver; beyond that the server drops them (see
/// [`ClusterLink`]).
const OUTPUT_BACKLOG: usize = 1 << 16;

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
    let (inputs_tx, inputs) = async_channel::unbounded();
    let (outputs, outputs_rx) = async_channel::bounded(OUTPUT_BACKLOG);
    let (client, store) = runtime.block_on(open(config, node, inputs_tx.clone()))?;
    let driver = Driver {
        client,
        store,
        node: Bytes::from(node.to_owned()),
        inputs: inputs_tx,
        subscriptions: HashMap::new(),
        claims: Claims::default(),
        claiming: Arc::new(tokio::sync::Semaphore::new(CLAIMS_AT_ONCE)),
        timeout: config.timeout,
    };
    let renew = config.claim_ttl / 3;
    std::thread::Builder::new()
        .name("tidings-nats".into())
        .spawn(move || runtime.block_on(driver.run(outputs_rx, renew)))
        .map_err(|e| Error(format!("cannot start the NATS driver: {e}")))?;
    Ok(ClusterLink { outputs, inputs })
}

/// The connection and the bucket of claims.
async fn open(
    config: &NatsConfig,
    node: &str,
    inputs: Sender<ClusterInput>,
) -> Result<(async_nats::Client, kv::Store), Error> {
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
    Ok((client, store))
}

struct Driver {
    client: async_nats::Client,
    store: kv::Store,
    /// The node's name: every claim's value.
    node: Bytes,
    inputs: Sender<ClusterInput>,
    /// Each subject heard → the task forwarding its messages (dropping the subscriber
    /// unsubscribes).
    subscriptions: HashMap<String, JoinHandle<()>>,
    claims: Claims,
    /// Bounds the claims in flight.
    claiming: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

/// Each claim held → the revision this node last wrote; shared with the tasks that claim.
type Claims = Arc<Mutex<HashMap<String, u64>>>;

fn held(claims: &Claims) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
    // A task that panicked holding it left a map that is still right.
    claims.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    async fn run(mut self, outputs: Receiver<ClusterOutput>, renew: Duration) {
        let mut renewal = tokio::time::interval(renew);
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
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
                _ = renewal.tick() => self.renew().await,
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
                let Ok(permit) = self.claiming.clone().acquire_owned().await else {
                    return;
                };
                let (store, node, claims) =
                    (self.store.clone(), self.node.clone(), self.claims.clone());
                let (inputs, timeout) = (self.inputs.clone(), self.timeout);
                tokio::spawn(async move {
                    let outcome = claim(&store, &key, node, &claims, timeout).await;
                    drop(permit);
                    let _ = inputs.send(ClusterInput::Claimed { conn, outcome }).await;
                });
            }
            ClusterOutput::Release { key } => {
                let revision = held(&self.claims).remove(&key);
                if let Some(revision) = revision {
                    let delete = self.store.delete_expect_revision(&key, Some(revision));
                    if let Ok(Err(e)) = tokio::time::timeout(self.timeout, delete).await {
                        tracing::debug!(error = %e, "releasing a name claim failed");
                    }
                }
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

    /// Rewrites every claim held, so that none reaches the bucket's `max_age`. A claim that
    /// another node took meanwhile (this one was cut off for longer than the TTL) is left
    /// to it.
    async fn renew(&mut self) {
        let keys: Vec<(String, u64)> = held(&self.claims)
            .iter()
            .map(|(k, &r)| (k.clone(), r))
            .collect();
        let (store, node, timeout) = (&self.store, &self.node, self.timeout);
        let inputs = &self.inputs;
        let renewals = futures_util::stream::iter(keys)
            .map(|(key, revision)| async move {
                let update = store.update(&key, node.clone(), revision);
                let renewed = match tokio::time::timeout(timeout, update).await {
                    Ok(Ok(revision)) => Some(revision),
                    // Expired (or the store restarted empty): claim it again.
                    Ok(Err(_)) => match store.create(&key, node.clone()).await {
                        Ok(revision) => Some(revision),
                        Err(e) => {
                            tracing::warn!(error = %e, key, "a name claim was lost to another node");
                            let _ = inputs.send(ClusterInput::Lost(key.clone())).await;
                            None
                        }
                    },
                    // The broker is away: try again at the next renewal.
                    Err(_) => Some(revision),
                };
                (key, renewed)
            })
            .buffer_unordered(CLAIMS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut claims = held(&self.claims);
        for (key, renewed) in renewals {
            // Released meanwhile: stays released.
            if let (Some(revision), Some(slot)) = (renewed, claims.get_mut(&key)) {
                *slot = revision;
            } else if renewed.is_none() {
                claims.remove(&key);
            }
        }
    }
}

/// Claims `key` for `node` in `store`.
async fn claim(
    store: &kv::Store,
    key: &str,
    node: Bytes,
    claims: &Claims,
    timeout: Duration,
) -> ClaimOutcome {
    match tokio::time::timeout(timeout, store.create(key, node)).await {
        Ok(Ok(revision)) => {
            held(claims).insert(key.to_owned(), revision);
            ClaimOutcome::Held
        }
        Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => ClaimOutcome::Taken,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a name claim failed");
            ClaimOutcome::Unavailable
        }
        Err(_) => ClaimOutcome::Unavailable,
    }
}
