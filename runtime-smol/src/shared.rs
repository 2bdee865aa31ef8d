//! What every connection of one server uses, on the server's one thread: the [`Host`], each
//! connection's [`ConnOutput`], scratch buffers, and where the host's other outputs go.
//!
//! Connections ([`crate::native`], [`crate::websocket`]) feed their input to the host and
//! then call [`Shared::after`], which drains the host ([`Host::poll_output`]): connections
//! given output are written to or notified, disk jobs queued for the server's disk task,
//! operator events passed on, and the hub's timer re-armed.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use async_channel::Sender;
use tidings_core::cluster::ClusterOutput;
use tidings_core::hub::{ConnId, FileHandle};
use tidings_host::accounts::VerifyJob;
use tidings_host::files::{DiskJob, Ticket};
use tidings_host::server::{Host, ServerEvent, ServerOutput};

use crate::epoll::{EventLoop, Socket};
use crate::output::{ConnOutput, WriteScratch, WRITE_PIECES};

/// Most connections written to directly by the connection whose input gave them output (see
/// [`ConnOutput::write_now`]); beyond this they are notified to write.
const DIRECT_WRITES: usize = 2;

/// See the [module docs](self).
pub(crate) struct Shared {
    pub(crate) host: RefCell<Host>,
    /// Each open connection's output, by its id in the hub.
    pub(crate) outputs: RefCell<HashMap<ConnId, Rc<ConnOutput>>>,
    /// Buffers borrowed by one connection at a time.
    pub(crate) scratch: Scratch,
    /// Where the host's outputs other than a connection's go.
    pub(crate) outlets: Outlets,
    /// The server thread's event loop, where connection sockets are registered.
    pub(crate) event_loop: Rc<EventLoop>,
    /// How long a connection whose session is over may take to have its last output read
    /// (the sessions' heartbeat timeout): see [`Shared::linger`].
    pub(crate) linger_timeout: Duration,
}

/// Buffers a connection borrows while it handles one wake-up and gives back before it
/// yields: with one thread nobody else can touch them in between, so one of each serves every
/// connection (and ten thousand idle connections do not each hold 64 KiB).
pub(crate) struct Scratch {
    /// Where reads go. Only a busy native connection (its last read was large) reads
    /// straight into its own receive buffer in the hub instead, saving the copy out of this.
    pub(crate) read: RefCell<Vec<u8>>,
    /// Where a native connection gathers its output for one vectored write.
    pub(crate) write: WriteScratch,
    /// The connections the host reported ready, in [`Shared::after`].
    ready: RefCell<Vec<ConnId>>,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch {
            read: RefCell::new(vec![0u8; 64 << 10]),
            write: RefCell::new(Vec::with_capacity(WRITE_PIECES)),
            ready: RefCell::new(Vec::new()),
        }
    }
}

/// Where [`Shared::after`] sends the host's outputs that are not a connection's, and the
/// wake-ups of the server's own tasks (timer, disk, shutdown).
pub(crate) struct Outlets {
    /// Disk jobs of the server's own transfers, run in order by the disk task.
    pub(crate) disk_jobs: RefCell<VecDeque<(Ticket<FileHandle>, DiskJob)>>,
    /// Wakes the disk task.
    pub(crate) disk_wake: Sender<()>,
    /// Password checks (accounts), run in order by the verify task.
    pub(crate) verify_jobs: RefCell<VecDeque<VerifyJob>>,
    /// Wakes the verify task.
    pub(crate) verify_wake: Sender<()>,
    /// Operator events.
    pub(crate) events: Sender<ServerEvent>,
    /// When the host wants [`Host::handle_timeout`] next (its last [`ServerOutput::Wait`]).
    pub(crate) deadline: Cell<Option<Instant>>,
    /// The deadline the timer task sleeps until.
    pub(crate) timer_armed: Cell<Option<Instant>>,
    /// Wakes the timer task when the hub's deadline came earlier.
    pub(crate) timer_wake: Sender<()>,
    /// Tells a shutdown waiting for the last connection that one closed.
    pub(crate) conn_gone: Sender<()>,
    /// Sockets of finished sessions with output their peers have not taken, oldest first,
    /// each with the moment it is cut off ([`Shared::linger`]).
    pub(crate) lingering: RefCell<VecDeque<(Instant, Weak<Socket>)>>,
    /// To the cluster's driver ([`crate::server::ClusterLink`]), when the server is a node:
    /// its publishing and control channels.
    pub(crate) cluster: Option<(Sender<ClusterOutput>, Sender<ClusterOutput>)>,
}

impl Shared {
    /// A new connection of the hub from `peer` (over TLS or not): its id and its output
    /// record.
    pub(crate) fn connect(
        &self,
        now: Instant,
        peer: IpAddr,
        tls: bool,
    ) -> (ConnId, Rc<ConnOutput>) {
        let id = self.host.borrow_mut().connect_from(now, peer, tls);
        let output = ConnOutput::new();
        self.outputs.borrow_mut().insert(id, output.clone());
        (id, output)
    }

    /// A connection is over: its socket closes, its output record goes, the hub forgets it,
    /// and a shutdown waiting for the last connection hears of it.
    pub(crate) fn close(&self, id: ConnId, io: &Socket) {
        io.shutdown();
        self.outputs.borrow_mut().remove(&id);
        self.host.borrow_mut().remove(id);
        self.after();
        let _ = self.outlets.conn_gone.try_send(());
    }

    /// The session on `io` is over but its peer has not taken all its output (it may have
    /// stopped reading): unless the output is written within [`Shared::linger_timeout`], the
    /// timer task shuts the socket down, the pending write fails, and the connection ends
    /// with its place under the limits freed. Without it a client that stops reading would
    /// keep its connection for as long as it likes. Called once per connection.
    pub(crate) fn linger(&self, io: &Rc<Socket>) {
        let at = Instant::now() + self.linger_timeout;
        self.outlets
            .lingering
            .borrow_mut()
            .push_back((at, Rc::downgrade(io)));
        let armed = self.outlets.timer_armed.get();
        if armed.map_or(true, |a| at < a) {
            let _ = self.outlets.timer_wake.try_send(());
        }
    }

    /// Shuts down the sockets whose lingering ended by `now` ([`Shared::linger`]); those of
    /// connections that ended meanwhile are gone already.
    pub(crate) fn cut_lingering(&self, now: Instant) {
        let mut lingering = self.outlets.lingering.borrow_mut();
        while lingering.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, io)) = lingering.pop_front() {
                if let Some(io) = io.upgrade() {
                    io.shutdown();
                }
            }
        }
    }

    /// Frees `ip`'s place under the per-address limit.
    pub(crate) fn release(&self, ip: IpAddr) {
        // While the server is torn down another borrow cannot be live, but never panic here.
        if let Ok(mut host) = self.host.try_borrow_mut() {
            host.release(ip);
        }
    }

    /// The host's outputs after any input ([`Host::poll_output`]): write to or notify the
    /// connections given output, queue disk jobs, pass on events, re-arm the timer.
    pub(crate) fn after(&self) {
        let mut host = self.host.borrow_mut();
        let outputs = self.outputs.borrow();
        let mut ready = self.scratch.ready.borrow_mut();
        let out = &self.outlets;
        ready.clear();
        loop {
            let output = host.poll_output();
            if let ServerOutput::Ready(conn) = output {
                ready.push(conn);
                continue;
            }
            // A few connections given output (a private message, a reply) are written at
            // once; many (a broadcast) are notified, so each gathers what several inputs
            // queued for it into one write instead of one system call per message.
            let wrote = !ready.is_empty();
            let direct = ready.len() <= DIRECT_WRITES;
            for &conn in ready.iter() {
                if let Some(o) = outputs.get(&conn) {
                    if !(direct && o.write_now(&self.scratch.write, &mut host, conn)) {
                        o.notify(&self.event_loop);
                    }
                }
            }
            ready.clear();
            match output {
                ServerOutput::Ready(_) => unreachable!("collected above"),
                ServerOutput::Disk(ticket, job) => {
                    out.disk_jobs.borrow_mut().push_back((ticket, job));
                    let _ = out.disk_wake.try_send(());
                }
                ServerOutput::Verify(job) => {
                    out.verify_jobs.borrow_mut().push_back(job);
                    let _ = out.verify_wake.try_send(());
                }
                // Never waited for: a line a full link cannot take is dropped; the rest goes
                // on the unbounded control channel (see ClusterLink).
                ServerOutput::Cluster(op) => {
                    if let Some((publish, control)) = &out.cluster {
                        let _ = match op {
                            ClusterOutput::Publish { .. } => publish.try_send(op),
                            _ => control.try_send(op),
                        };
                    }
                }
                // When nobody reads the operator events, new ones are dropped rather than kept.
                ServerOutput::Event(ev) => {
                    let _ = out.events.try_send(ev);
                }
                // Taking output from the hub can make other connections ready (a relay's
                // sender given credit): look again until nothing is.
                ServerOutput::Wait(_) if wrote => {}
                ServerOutput::Wait(next) => {
                    out.deadline.set(next);
                    let armed = out.timer_armed.get();
                    if next.is_some() && (armed.is_none() || next < armed) {
                        let _ = out.timer_wake.try_send(());
                    }
                    return;
                }
            }
        }
    }
}

/// Counts one admitted connection until it is dropped, however its task ends (its arrival's,
/// or the WebSocket task it handed the socket to), or until [`Admitted::into_ip`].
pub(crate) struct Admitted {
    /// `None` once the address was handed on.
    shared: Option<Rc<Shared>>,
    ip: IpAddr,
}

impl Admitted {
    /// `ip`, just admitted by the host.
    pub(crate) fn new(shared: Rc<Shared>, ip: IpAddr) -> Admitted {
        Admitted {
            shared: Some(shared),
            ip,
        }
    }

    /// The admitted address.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The admitted address, for a holder that releases it itself with
    /// [`Shared::release`] (a native connection).
    pub(crate) fn into_ip(mut self) -> IpAddr {
        self.shared = None;
        self.ip
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.release(self.ip);
        }
    }
}
