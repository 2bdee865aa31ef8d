//! A simulated server for hub tests: one [`Hub`] and any number of client [`Session`]s joined
//! by byte pipes, with virtual time. No sockets, no threads, no sleeping.
//!
//! The driver plays the runtime's part by the hub's calling contract (writers woken only by
//! `poll_ready`, drained to `None`, finished connections removed) and each client's
//! application: it serves file reads from in-memory files, writes received data into
//! in-memory sinks (optionally slowly), and records everything else for the test to check.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::hub::{ConnId, FileHandle, Hub, HubConfig, HubEvent};
use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::{Digest, IncomingOffer, TransferEvent, TransferFailure, TransferId};
use tidings_core::wire::{Message, Preamble, Utf8};

use super::Rng;
use tidings_core::ErrorCode;

/// Most bytes one simulated read hands the hub (a runtime's read buffer).
const READ_SIZE: usize = 64 << 10;

/// A finished transfer as one side saw it.
pub type Outcome = Result<Digest, TransferFailure>;

/// One simulated client: its session and its application's state.
pub struct Client {
    pub name: String,
    pub conn: ConnId,
    pub session: Session,
    /// Events other than file reads/writes, in order.
    pub events: Vec<Event>,
    /// Files this client sends, by transfer id.
    pub sending: HashMap<TransferId, Bytes>,
    /// Files this client receives (or kept from an earlier attempt), by transfer id.
    pub receiving: HashMap<TransferId, Vec<u8>>,
    /// Offers received, not yet answered by the test.
    pub offers: Vec<IncomingOffer>,
    pub finished: HashMap<TransferId, Outcome>,
    /// Received bytes not yet reported written (slow disk).
    pub unwritten: VecDeque<(TransferId, u64)>,
    /// With `Some(n)`, at most `n` received bytes are reported written per [`HubNet::tick`].
    pub write_rate: Option<u64>,
    /// Stopped: it neither reads, writes nor runs timers (a hung or vanished machine).
    pub frozen: bool,
    /// The hub's side no longer exists (removed after finishing).
    pub removed: bool,
    /// End of stream already reported to the hub.
    pub eof_sent: bool,
}

impl Client {
    /// Text events as `(peer, private, text)`.
    pub fn texts(&self) -> Vec<(String, bool, String)> {
        super::texts(&self.events)
    }

    /// The last peer list received.
    pub fn last_peer_list(&self) -> Option<Vec<String>> {
        self.events.iter().rev().find_map(|e| match e {
            Event::PeerList(names) => Some(names.iter().map(|n| n.to_string()).collect()),
            _ => None,
        })
    }

    /// How the session closed, if it did.
    pub fn closed(&self) -> Option<&tidings_core::session::Closed> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(c) => Some(c),
            _ => None,
        })
    }

    /// Presence events as `(joined?, name)`.
    pub fn presence(&self) -> Vec<(bool, String)> {
        use tidings_core::wire::PresenceKind;
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Presence { kind, name } => {
                    Some((*kind == PresenceKind::Joined, name.to_string()))
                }
                _ => None,
            })
            .collect()
    }
}

/// The server side's own application: files it sends, its inbox, and what it saw.
#[derive(Default)]
pub struct Operator {
    /// Every hub event except file reads/writes of the server's transfers.
    pub events: Vec<HubEvent>,
    /// Accept files offered to the server at once.
    pub accept_offers: bool,
    pub sending: HashMap<FileHandle, Bytes>,
    pub inbox: HashMap<FileHandle, Vec<u8>>,
    pub finished: HashMap<FileHandle, Outcome>,
}

impl Operator {
    /// Whether the operator saw an event for which `f` holds.
    pub fn saw(&self, f: impl Fn(&HubEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

/// A hub, its clients and virtual time.
pub struct HubNet {
    pub now: Instant,
    pub hub: Hub,
    pub clients: Vec<Client>,
    pub op: Operator,
    /// Connections whose writer was woken and has not drained yet.
    pending: BTreeSet<ConnId>,
    /// Connections whose socket does not take bytes (the client does not read).
    pub blocked: BTreeSet<ConnId>,
    pub rng: Rng,
    /// The most relayed bytes the hub held for one transfer, seen after any step.
    pub max_relay_seen: usize,
    /// The most relayed bytes the hub held across all relays, and the most it had committed
    /// to (queued plus senders' credit), seen after any step.
    pub max_relay_total_seen: usize,
    pub max_relay_committed_seen: usize,
    /// Connections the driver saw as raw (test-written) sockets: bytes from the hub.
    pub raw_out: HashMap<ConnId, Vec<u8>>,
}

/// The transfer settings the relay tests are sized for: 64 KiB chunks, a 1 MiB window and
/// 256 KiB of read-ahead, so that a few MiB cross many windows and the bounds stay readable
/// whatever the defaults are tuned to.
pub fn test_transfers() -> tidings_core::transfer::TransferConfig {
    tidings_core::transfer::TransferConfig {
        chunk_size: 64 << 10,
        window: 1 << 20,
        read_ahead: 256 << 10,
        ..Default::default()
    }
}

impl HubNet {
    pub fn new(config: HubConfig, seed: u64) -> HubNet {
        HubNet::new_at(config, seed, Instant::now())
    }

    /// A hub whose clock starts at `now` (hubs of one cluster share a clock).
    pub fn new_at(config: HubConfig, seed: u64, now: Instant) -> HubNet {
        HubNet {
            now,
            hub: Hub::new(config, now),
            clients: Vec::new(),
            op: Operator::default(),
            pending: BTreeSet::new(),
            blocked: BTreeSet::new(),
            rng: Rng::new(seed),
            max_relay_seen: 0,
            max_relay_total_seen: 0,
            max_relay_committed_seen: 0,
            raw_out: HashMap::new(),
        }
    }

    /// Default settings except for transfers, which use [`test_transfers`] on both ends.
    pub fn with_defaults(seed: u64) -> HubNet {
        let mut config = HubConfig::default();
        config.session.transfer = test_transfers();
        HubNet::new(config, seed)
    }

    /// Connects a client asking for `name` and lets the handshake finish. Returns its index.
    pub fn join(&mut self, name: &str) -> usize {
        let config = Config {
            transfer: test_transfers(),
            ..Config::default()
        };
        self.join_with(name, config)
    }

    pub fn join_with(&mut self, name: &str, config: Config) -> usize {
        let conn = self.hub.connect(self.now);
        let session = Session::client(config, name, self.now).expect("valid client name");
        self.clients.push(Client {
            name: name.to_owned(),
            conn,
            session,
            events: Vec::new(),
            sending: HashMap::new(),
            receiving: HashMap::new(),
            offers: Vec::new(),
            finished: HashMap::new(),
            unwritten: VecDeque::new(),
            write_rate: None,
            frozen: false,
            removed: false,
            eof_sent: false,
        });
        self.settle();
        self.clients.len() - 1
    }

    /// A raw connection: the test writes the bytes itself (to break the rules).
    pub fn raw_connect(&mut self) -> ConnId {
        let conn = self.hub.connect(self.now);
        self.raw_out.insert(conn, Vec::new());
        conn
    }

    /// A raw connection that sent the preamble and a `hello` asking for `name`.
    pub fn raw_hello(&mut self, name: &str, capabilities: u32, max_frame: u32) -> ConnId {
        let conn = self.raw_connect();
        self.raw_send(conn, true, &[super::hello(name, capabilities, max_frame)]);
        conn
    }

    /// Writes `msgs` on a raw connection, after the preamble if `preamble`.
    pub fn raw_send(&mut self, conn: ConnId, preamble: bool, msgs: &[Message]) {
        let mut out = bytes::BytesMut::new();
        if preamble {
            out.extend_from_slice(&Preamble::CURRENT.to_bytes());
        }
        for m in msgs {
            m.encode(&mut out);
        }
        self.hub.handle_input(self.now, conn, &out);
        self.settle();
    }

    pub fn client(&mut self, name: &str) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.name == name)
            .expect("no such client")
    }

    /// Why `name`'s transfer `id` failed; panics if it did not end, or ended well.
    pub fn failure(&mut self, name: &str, id: TransferId) -> TransferFailure {
        match self.client(name).finished.get(&id) {
            Some(Err(f)) => f.clone(),
            other => panic!("{name}: transfer {id} did not fail: {other:?}"),
        }
    }

    /// Asserts that `name`'s transfer `id` failed with `code` and `reason`.
    pub fn assert_failed(&mut self, name: &str, id: TransferId, code: ErrorCode, reason: &str) {
        let f = self.failure(name, id);
        assert_eq!((f.code, f.reason.as_str()), (code, reason), "{name}: {id}");
    }

    pub fn idx(&self, name: &str) -> usize {
        self.clients.iter().position(|c| c.name == name).unwrap()
    }

    /// Moves bytes and runs every application until nothing moves.
    pub fn settle(&mut self) {
        for _round in 0..1_000_000 {
            let mut moved = false;
            moved |= self.clients_to_hub();
            moved |= self.hub_to_clients();
            for i in 0..self.clients.len() {
                moved |= self.client_app(i);
            }
            moved |= self.operator_app();
            self.max_relay_seen = self.max_relay_seen.max(self.hub.relay_buffered_max());
            self.max_relay_total_seen = self.max_relay_total_seen.max(self.hub.relay_buffered());
            self.max_relay_committed_seen = self
                .max_relay_committed_seen
                .max(self.hub.relay_committed());
            assert!(self.hub.relay_buffered() <= self.hub.relay_committed());
            assert!(self.hub.relay_buffered_peak() >= self.max_relay_seen);
            if !moved {
                self.check_no_lost_wakeups();
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    /// Writers are woken only through `poll_ready`: if output is left in the hub for a
    /// connection whose socket takes bytes, a wake-up was lost.
    fn check_no_lost_wakeups(&self) {
        for c in &self.clients {
            if !c.removed && !self.blocked.contains(&c.conn) {
                assert_eq!(
                    self.hub.queued_output(c.conn),
                    0,
                    "{}: output never announced",
                    c.name
                );
            }
        }
        for &conn in self.raw_out.keys() {
            if !self.blocked.contains(&conn) {
                assert_eq!(
                    self.hub.queued_output(conn),
                    0,
                    "raw {conn}: output never announced"
                );
            }
        }
    }

    fn clients_to_hub(&mut self) -> bool {
        let mut moved = false;
        for c in &mut self.clients {
            if c.frozen || c.removed {
                continue;
            }
            // Like a runtime, read only while the hub wants input (TCP holds the rest), and
            // up to a read buffer at a time whatever pieces the client wrote.
            while self.hub.wants_input(c.conn) {
                let mut bytes = Vec::new();
                while bytes.len() < READ_SIZE {
                    let Some(piece) = c.session.poll_transmit() else {
                        break;
                    };
                    bytes.extend_from_slice(&piece);
                }
                if bytes.is_empty() {
                    break;
                }
                moved = true;
                // Random split points exercise partial frames.
                let cut = if bytes.len() > 1 {
                    self.rng.below(bytes.len() as u64) as usize
                } else {
                    0
                };
                self.hub.handle_input(self.now, c.conn, &bytes[..cut]);
                self.hub.handle_input(self.now, c.conn, &bytes[cut..]);
            }
            if c.session.is_closed() && !c.eof_sent {
                c.eof_sent = true;
                self.hub.handle_eof(self.now, c.conn);
                moved = true;
            }
        }
        moved
    }

    fn hub_to_clients(&mut self) -> bool {
        let mut moved = false;
        loop {
            while let Some(conn) = self.hub.poll_ready() {
                self.pending.insert(conn);
            }
            let Some(&conn) = self.pending.iter().find(|c| !self.blocked.contains(c)) else {
                return moved;
            };
            self.pending.remove(&conn);
            let client = self.clients.iter_mut().position(|c| c.conn == conn);
            while let Some(bytes) = self.hub.poll_transmit(conn) {
                moved = true;
                match client {
                    Some(i) if !self.clients[i].frozen => {
                        self.clients[i].session.handle_input(self.now, &bytes)
                    }
                    Some(_) => {} // a frozen machine's bytes vanish
                    None => self
                        .raw_out
                        .entry(conn)
                        .or_default()
                        .extend_from_slice(&bytes),
                }
            }
            if self.hub.is_finished(conn) {
                self.hub.remove(conn);
                moved = true;
                if let Some(i) = client {
                    let c = &mut self.clients[i];
                    c.removed = true;
                    if !c.frozen {
                        c.session.handle_eof(self.now);
                    }
                }
            }
        }
    }

    fn client_app(&mut self, i: usize) -> bool {
        let c = &mut self.clients[i];
        if c.frozen {
            return false;
        }
        let mut moved = false;
        while let Some(ev) = c.session.poll_event() {
            moved = true;
            match ev {
                Event::Transfer(TransferEvent::Read { id, offset, len }) => {
                    let at = offset as usize;
                    let data = match c.sending.get(&id) {
                        Some(file) => file.slice(at..at + len),
                        None => Bytes::copy_from_slice(&c.receiving[&id][at..at + len]),
                    };
                    c.session.provide_data(id, offset, data).unwrap();
                }
                Event::Transfer(TransferEvent::Data { id, offset, data }) => {
                    let sink = c.receiving.get_mut(&id).expect("data for an accepted file");
                    assert_eq!(offset as usize, sink.len(), "data arrives in order");
                    sink.extend_from_slice(&data);
                    c.unwritten.push_back((id, data.len() as u64));
                }
                Event::Transfer(TransferEvent::Offered(offer)) => c.offers.push(offer),
                Event::Transfer(TransferEvent::Finished { id, result, .. }) => {
                    c.finished.insert(id, result);
                }
                Event::Transfer(TransferEvent::Progress(_)) => {}
                other => c.events.push(other),
            }
        }
        // A fast disk writes at once; a slow one waits for `tick`.
        if c.write_rate.is_none() {
            while let Some((id, len)) = c.unwritten.pop_front() {
                moved = true;
                // The transfer may have ended meanwhile (cancelled).
                let _ = c.session.data_written(id, len);
            }
        }
        moved
    }

    fn operator_app(&mut self) -> bool {
        let mut moved = false;
        while let Some(ev) = self.hub.poll_event() {
            moved = true;
            let HubEvent::Transfer { handle, event, .. } = &ev else {
                self.op.events.push(ev);
                continue;
            };
            let h = *handle;
            match event.clone() {
                TransferEvent::Read { offset, len, .. } => {
                    let at = offset as usize;
                    let data = match self.op.sending.get(&h) {
                        Some(file) => file.slice(at..at + len),
                        // Resuming into the inbox: the kept bytes are read once for the digest.
                        None => Bytes::copy_from_slice(&self.op.inbox[&h][at..at + len]),
                    };
                    self.hub.provide_data(h, offset, data).unwrap();
                }
                TransferEvent::Data { offset, data, .. } => {
                    let sink = self.op.inbox.get_mut(&h).unwrap();
                    assert_eq!(offset as usize, sink.len());
                    sink.extend_from_slice(&data);
                    self.hub.data_written(h, data.len() as u64).unwrap();
                }
                TransferEvent::Offered(_) if self.op.accept_offers => {
                    self.op.inbox.insert(h, Vec::new());
                    self.hub.accept_offer(h, 0).unwrap();
                    self.op.events.push(ev);
                }
                TransferEvent::Finished { result, .. } => {
                    self.op.finished.insert(h, result);
                    self.op.events.push(ev);
                }
                TransferEvent::Progress(_) => {}
                _ => self.op.events.push(ev),
            }
        }
        moved
    }

    /// One step of a slow disk: each slow client reports up to its rate of bytes written.
    pub fn tick(&mut self) {
        for c in &mut self.clients {
            let Some(mut budget) = c.write_rate else {
                continue;
            };
            while budget > 0 {
                let Some((id, len)) = c.unwritten.pop_front() else {
                    break;
                };
                let n = len.min(budget);
                if n < len {
                    c.unwritten.push_front((id, len - n));
                }
                budget -= n;
                let _ = c.session.data_written(id, n);
            }
        }
        self.settle();
    }

    /// The earliest deadline of the hub and every running client.
    fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter(|c| !c.frozen && !c.removed)
            .filter_map(|c| c.session.poll_timeout())
            .chain(self.hub.poll_timeout())
            // "Now" after settling means output held back (a paused connection): not a timer.
            .filter(|&t| t > self.now)
            .min()
    }

    /// Advances virtual time by `d`, firing every timer on the way in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        while let Some(t) = self.next_deadline().filter(|&t| t <= end && t > self.now) {
            self.fire(t);
        }
        self.fire(end);
    }

    fn fire(&mut self, t: Instant) {
        self.now = t;
        self.hub.handle_timeout(t);
        for c in &mut self.clients {
            if !c.frozen && !c.removed {
                c.session.handle_timeout(t);
            }
        }
        self.settle();
    }

    /// Offers `file` from client `from` to `to`; returns the transfer id on `from`'s side.
    pub fn offer(&mut self, from: &str, to: &str, file_name: &str, file: Bytes) -> TransferId {
        let c = self.client(from);
        let id = c
            .session
            .offer_file(to, file_name, file.len() as u64, "application/octet-stream")
            .unwrap();
        c.sending.insert(id, file);
        self.settle();
        id
    }

    /// Client `who` accepts its pending offer (the only one, or the last) from `kept`: the
    /// bytes of an earlier partial download. Returns the transfer id on its side.
    pub fn accept(&mut self, who: &str, kept: Vec<u8>) -> TransferId {
        let c = self.client(who);
        let offer = c.offers.pop().expect("an offer is waiting");
        let offset = kept.len() as u64;
        c.receiving.insert(offer.id, kept);
        c.session.accept_offer(offer.id, offset).unwrap();
        self.settle();
        offer.id
    }

    /// Names a client knows to be online, from welcome plus presence.
    pub fn online_seen_by(&self, i: usize) -> BTreeSet<String> {
        let c = &self.clients[i];
        let mut set = BTreeSet::new();
        for e in &c.events {
            match e {
                Event::Connected(w) => set.extend(w.online.iter().map(|n| n.to_string())),
                Event::Presence { kind, name } => {
                    if *kind == tidings_core::wire::PresenceKind::Joined {
                        set.insert(name.to_string());
                    } else {
                        set.remove(name.as_str());
                    }
                }
                _ => {}
            }
        }
        set
    }
}
