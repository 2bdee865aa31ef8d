//! What every thread of a server shares: the host behind one mutex, held only while it
//! computes (never during socket or disk I/O), and the drain of its outputs.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tidings_core::gateway::RenderCache;
use tidings_core::hub::{ConnId, FileHandle};
use tidings_host::accounts::VerifyJob;
use tidings_host::files::DiskJob;
use tidings_host::files::Ticket;
use tidings_host::server::{Host, ServerEvent, ServerOutput};
use tidings_host::tls::TlsServerConfig;

use crate::tls::Stream;

/// Most bytes a writer takes from the hub before writing them (one vectored write's worth).
pub(crate) const WRITE_BATCH: usize = 256 << 10;

pub(crate) struct Inner {
    pub(crate) host: Host,
    /// The deadline the timer thread sleeps until.
    pub(crate) armed: Option<Instant>,
    pub(crate) writers: HashMap<ConnId, SyncSender<()>>,
    /// The source address each connection was admitted under, released when it ends.
    pub(crate) addrs: HashMap<ConnId, IpAddr>,
    /// The broadcast renderings shared by every WebSocket connection: a chat line sent to a
    /// hundred browsers is rendered as JSON once.
    pub(crate) renders: RenderCache,
}

pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    /// Wakes the timer thread (paired with `inner`).
    pub(crate) timer: Condvar,
    /// Signalled when a connection is removed (paired with `inner`).
    pub(crate) gone: Condvar,
    /// Signalled when the hub reports connections ready again (paired with `inner`): a
    /// reader that the hub paused (full event queue, or a client over its message rate)
    /// waits on it before reading more.
    pub(crate) readable: Condvar,
    /// Jobs for the disk thread, one after another.
    pub(crate) disk: mpsc::Sender<(Ticket<FileHandle>, DiskJob)>,
    /// Password checks (accounts) for the verify thread, one after another.
    pub(crate) verify: mpsc::Sender<VerifyJob>,
    pub(crate) events: SyncSender<ServerEvent>,
    pub(crate) event_rx: Mutex<Receiver<ServerEvent>>,
    pub(crate) stopping: AtomicBool,
    pub(crate) addr: SocketAddr,
    /// How long a write to a connection may make no progress before the connection counts
    /// as lost: the sessions' heartbeat timeout, the same patience the hub has with a silent
    /// peer. Without it a client that stops reading would hold its writer thread, and its
    /// place under the connection limits, for as long as it likes.
    pub(crate) write_timeout: Option<Duration>,
    /// TLS on the port ([`ServerConfig::tls`](tidings_host::ServerConfig::tls)), for
    /// [`tidings_host::arrival::entrance`].
    pub(crate) tls: Option<TlsServerConfig>,
    /// [`ServerConfig::allow_plaintext`](tidings_host::ServerConfig::allow_plaintext).
    pub(crate) allow_plaintext: bool,
}

impl Shared {
    /// The host's outputs after any input ([`Host::poll_output`]): wake writers, hand disk
    /// jobs to the disk thread, pass on events, re-arm the timer.
    pub(crate) fn after(&self, inner: &mut MutexGuard<'_, Inner>) {
        let inner = &mut **inner;
        let mut ready = false;
        loop {
            match inner.host.poll_output() {
                ServerOutput::Ready(conn) => {
                    ready = true;
                    if let Some(w) = inner.writers.get(&conn) {
                        let _ = w.try_send(());
                    }
                }
                ServerOutput::Disk(ticket, job) => {
                    let _ = self.disk.send((ticket, job));
                }
                ServerOutput::Verify(job) => {
                    let _ = self.verify.send(job);
                }
                // `Server::bind` refuses a cluster configuration: there are none.
                ServerOutput::Cluster(_) => {}
                // When nobody reads the operator events, new ones are dropped.
                ServerOutput::Event(ev) => {
                    let _ = self.events.try_send(ev);
                }
                ServerOutput::Wait(next) => {
                    if next.is_some() && (inner.armed.is_none() || next < inner.armed) {
                        self.timer.notify_one();
                    }
                    break;
                }
            }
        }
        if ready {
            // Few readers are ever paused; waking all to re-check is simpler than a
            // condition variable per connection.
            self.readable.notify_all();
        }
    }

    /// Ends connection `id`: closes its stream (a TLS one says goodbye first, if it can at
    /// once) and forgets it.
    pub(crate) fn finish_conn(&self, id: ConnId, stream: &Stream) {
        stream.shutdown(Shutdown::Both);
        let mut inner = self.inner.lock().unwrap();
        inner.writers.remove(&id);
        if let Some(ip) = inner.addrs.remove(&id) {
            inner.host.release(ip);
        }
        inner.host.remove(id);
        self.after(&mut inner);
        self.gone.notify_all();
        self.readable.notify_all();
    }
}

/// One admitted connection's place under the connection limits ([`Host::admit`]): freed when
/// dropped, or handed to its hub connection by [`Admitted::connect`] (and then freed by
/// [`Shared::finish_conn`]), however the connection ends.
pub(crate) struct Admitted {
    shared: Arc<Shared>,
    /// `None` once handed to a hub connection.
    ip: Option<IpAddr>,
}

impl Admitted {
    /// The place of a connection from `ip` that [`Host::admit`] accepted.
    pub(crate) fn new(shared: Arc<Shared>, ip: IpAddr) -> Admitted {
        Admitted {
            shared,
            ip: Some(ip),
        }
    }

    /// Registers the connection (over TLS or not) with the hub; its writer thread waits on
    /// the returned receiver.
    pub(crate) fn connect(mut self, inner: &mut Inner, tls: bool) -> (ConnId, Receiver<()>) {
        let ip = self.ip.take().expect("connected once");
        let (wake, wake_rx) = mpsc::sync_channel(1);
        let id = inner.host.connect_from(Instant::now(), ip, tls);
        inner.writers.insert(id, wake);
        inner.addrs.insert(id, ip);
        (id, wake_rx)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.shared.inner.lock().unwrap().host.release(ip);
        }
    }
}
