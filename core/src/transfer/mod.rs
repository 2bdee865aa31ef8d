//! File transfers (spec §7): offers, credit-based flow control, resume, SHA-256 integrity and
//! progress — without touching a file.
//!
//! The core never opens a file. It tells the driver what to read and hands it what to write:
//!
//! * [`TransferEvent::Read`] `{ id, offset, len }`: read `len` bytes at `offset` and answer with
//!   [`Session::provide_data`] (or [`Session::read_failed`]). A sender reads its source file; a
//!   receiver that resumes reads its kept partial file once, so the digest covers every byte.
//! * [`TransferEvent::Data`] `{ id, offset, data }`: write `data` at `offset`, then call
//!   [`Session::data_written`] (or [`Session::write_failed`]). Credit goes back to the sender
//!   only for written bytes, so a slow disk slows the sender and nobody buffers a whole file.
//!
//! # How a transfer runs
//!
//! * **Offer**: [`Session::offer_file`] sends `offer` (id, base name, size, media type) on the
//!   control lane. The receiver reduces the name with [`safe_file_name`] (or rejects it with
//!   `bad-file-name`), rejects offers beyond [`TransferConfig::max_active`] with
//!   `limit-exceeded`, and reports [`TransferEvent::Offered`]. Unanswered offers end with
//!   `transfer-timeout` on both sides after [`TransferConfig::offer_timeout`].
//! * **Accept** at an offset (0, or the length of a kept partial file) with an initial credit
//!   of `min(window, size - offset)`, or **reject** with a code and reason.
//! * **Chunks** of at most `min(chunk_size, peer's max_frame - 16)` bytes go out in order on
//!   the data lane, never beyond the credit: the sender asks the driver to read only bytes it
//!   may send. The receiver returns credit as the driver confirms writes, once half the window
//!   is free (or at once for the rest of the file). Control and chat frames always go before
//!   queued file data, and a chunk's frame is never split by another frame.
//! * **Done** carries the sender's SHA-256 of the whole file after the last chunk; the
//!   receiver compares it with its own once every byte is written and answers `complete` or
//!   `failed` (`digest-mismatch`). Both sides then report [`TransferEvent::Finished`].
//! * **Fairness**: read requests go round-robin over the transfers of a session, limited by
//!   [`TransferConfig::read_ahead`] bytes queued or requested, so several transfers in both
//!   directions share the connection.
//! * **Resume**: accepting at a non-zero offset sends `accept` with **zero credit**; both
//!   sides then read and hash the bytes before the offset (in parallel), the receiver from its
//!   kept file. The receiver grants its window only when its prefix is hashed, so no chunk can
//!   arrive before the prefix is in the digest. When the offset equals the size, no chunk moves
//!   at all and `done` may arrive while the receiver still hashes: the verdict waits for it.
//! * **Keepalives**: a side reading a long prefix tells the peer it lives, at most every
//!   second (a quarter of the stall timeout if that is shorter): the sender with an empty
//!   `chunk` at the resume offset, the receiver with a zero `credit`. A receiver whose disk is
//!   too slow to free half the window within that interval sends what is free (possibly zero)
//!   anyway. Empty chunks produce no [`TransferEvent::Data`].
//! * **Relays** ([`Mode::Relay`], the hub) wait on the other connection at two points and
//!   then send keepalives on a timer instead of timing out: the end towards the receiver,
//!   while it has credit but the hub has not brought the bytes yet, sends an empty `chunk` at
//!   its current offset; the end towards the sender, holding every byte and waiting for the
//!   far verdict, sends a zero `credit`. A stall is then the other connection's transfer to
//!   detect, and the hub ends both.
//! * **Stall**: a transfer with no sign of life (chunk, credit, keepalive, local read or
//!   write) for [`TransferConfig::stall_timeout`] ends with `transfer-timeout`.
//! * **Cancel** by either side at any time (`cancel`; `reject` while an offer is unanswered).
//!   Frames that were in flight for a transfer that ended recently are ignored; frames for an
//!   id never seen are answered with the non-fatal `unknown-transfer` error.
//! * **Protocol violations** close the session: a chunk at the wrong offset, past the size or
//!   before `accept` (`chunk-out-of-range`), past the credit (`credit-exceeded`), `done` before
//!   the last byte (`chunk-out-of-range`), an offer id of the wrong parity or in use
//!   (`malformed`).
//! * **Connection lost**: every running transfer ends with the close's code (`peer-lost` when
//!   the stream just ended). The receiver keeps what it wrote and resumes on a new connection.
//! * **Progress** ([`TransferEvent::Progress`]): bytes done (sender: read and queued; receiver:
//!   received), total and a smoothed rate from the driver's clock, at most once per
//!   [`TransferConfig::progress_interval`] per transfer, plus one at the end.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use tidings_core::session::{Config, Event, Session};
//! use tidings_core::transfer::TransferEvent;
//! use tidings_core::wire::Utf8;
//!
//! # let now = Instant::now();
//! # let mut a = Session::client(Config::default(), "alice", now).unwrap();
//! # let mut s = Session::server(Config::default(), now);
//! # fn pump(a: &mut Session, b: &mut Session, now: Instant) {
//! #     loop { let mut m = false;
//! #       while let Some(x) = a.poll_transmit() { b.handle_input(now, &x); m = true; }
//! #       while let Some(x) = b.poll_transmit() { a.handle_input(now, &x); m = true; }
//! #       if !m { break } } }
//! # pump(&mut a, &mut s, now);
//! # let Some(Event::Hello(h)) = s.poll_event() else { panic!() };
//! # s.accept_hello(h.name, Utf8::from("srv"), vec![]).unwrap();
//! # pump(&mut a, &mut s, now);
//! # a.poll_event();
//! let file = Bytes::from(vec![7u8; 200_000]); // stands in for a file on disk
//! let id = a.offer_file("", "photo.jpg", file.len() as u64, "image/jpeg").unwrap();
//! pump(&mut a, &mut s, now);
//! let Some(Event::Transfer(TransferEvent::Offered(offer))) = s.poll_event() else { panic!() };
//! s.accept_offer(offer.id, 0).unwrap();
//! let mut received = Vec::new();
//! let mut finished = false;
//! while !finished {
//!     pump(&mut a, &mut s, now);
//!     while let Some(ev) = a.poll_event() {
//!         if let Event::Transfer(TransferEvent::Read { id, offset, len }) = ev {
//!             let at = offset as usize;
//!             a.provide_data(id, offset, file.slice(at..at + len)).unwrap();
//!         }
//!     }
//!     pump(&mut a, &mut s, now);
//!     while let Some(ev) = s.poll_event() {
//!         match ev {
//!             Event::Transfer(TransferEvent::Data { id, data, .. }) => {
//!                 received.extend_from_slice(&data); // a real driver writes at `offset`
//!                 s.data_written(id, data.len() as u64).unwrap();
//!             }
//!             Event::Transfer(TransferEvent::Finished { result, .. }) => {
//!                 assert!(result.is_ok());
//!                 finished = true;
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(received, file);
//! ```
//!
//! [`Session::data_written`]: crate::session::Session::data_written
//! [`Session::offer_file`]: crate::session::Session::offer_file
//! [`Session::provide_data`]: crate::session::Session::provide_data
//! [`Session::read_failed`]: crate::session::Session::read_failed
//! [`Session::write_failed`]: crate::session::Session::write_failed

mod config;
mod file_name;
mod incoming;
mod outgoing;
mod progress;
mod reads;
mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

pub use config::TransferConfig;
pub use file_name::{
    is_invisible, reduce_name, safe_file_name, safe_path, MAX_BASE_NAME, MAX_WIRE_NAME,
};
pub use progress::Progress;

use crate::error::SendError;
use crate::wire::{Message, Offer, Utf8, DIGEST_LEN};
use crate::{ErrorCode, ProtocolError};
use incoming::Incoming;
use outgoing::Outgoing;

/// A transfer's id on one connection. The offering side picks it: even ids are offered by
/// the client, odd ids by the server (spec §7.1), so both sides can offer at once.
pub type TransferId = u64;

/// A SHA-256 digest.
pub type Digest = [u8; DIGEST_LEN];

/// Which way the bytes go, seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This side sends the file.
    Send,
    /// This side receives the file.
    Receive,
}

/// Whether this side reads/writes the file itself or relays it between two connections.
///
/// A relay (the hub) neither hashes nor verifies: the digest travels end to end, from the
/// sender's `done` to the receiver, and the receiver's verdict travels back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The file is here: hash and verify.
    Local,
    /// The file passes through: forward digest and verdict (see
    /// [`Session::relay_done`](crate::session::Session::relay_done) and
    /// [`Session::relay_outcome`](crate::session::Session::relay_outcome)).
    Relay,
}

/// An offer received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingOffer {
    /// Transfer id.
    pub id: TransferId,
    /// Who offers it (the server's stamp; empty when the server itself offers).
    pub peer: Utf8,
    /// The name reduced by [`reduce_name`]: a safe base name, or, when the session keeps
    /// folders ([`TransferConfig::max_path_depth`]), a safe relative path with `/`
    /// separators (ending in `/` for a folder).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type (may be empty).
    pub media_type: Utf8,
}

/// Why a transfer did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferFailure {
    /// The code (`cancelled`, `digest-mismatch`, `peer-lost` …).
    pub code: ErrorCode,
    /// Human-readable reason.
    pub reason: Utf8,
    /// Whether the peer (rather than this side) ended it.
    pub by_peer: bool,
}

impl TransferFailure {
    /// The peer ended the transfer with `code` and `reason`.
    pub(crate) fn by_peer(code: ErrorCode, reason: Utf8) -> Self {
        TransferFailure {
            code,
            reason,
            by_peer: true,
        }
    }

    /// This side ended the transfer with `code` and `reason`.
    pub(crate) fn local(code: ErrorCode, reason: Utf8) -> Self {
        TransferFailure {
            code,
            reason,
            by_peer: false,
        }
    }
}

/// Something that happened to a transfer; delivered as
/// [`Event::Transfer`](crate::session::Event::Transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// The peer offers a file: answer with
    /// [`Session::accept_offer`](crate::session::Session::accept_offer) or
    /// [`Session::reject_offer`](crate::session::Session::reject_offer).
    Offered(IncomingOffer),
    /// Our offer was accepted from `offset` (non-zero: the receiver resumes).
    Accepted {
        /// Transfer id.
        id: TransferId,
        /// First byte the receiver wants.
        offset: u64,
    },
    /// Read `len` bytes at `offset` of the transfer's file and answer with
    /// [`Session::provide_data`](crate::session::Session::provide_data).
    Read {
        /// Transfer id.
        id: TransferId,
        /// Where.
        offset: u64,
        /// How many bytes (never more than the chunk size).
        len: usize,
    },
    /// Received file bytes: write them at `offset`, then call
    /// [`Session::data_written`](crate::session::Session::data_written).
    Data {
        /// Transfer id.
        id: TransferId,
        /// Where.
        offset: u64,
        /// The bytes, zero-copy from the receive buffer.
        data: Bytes,
    },
    /// How far it has come.
    Progress(Progress),
    /// Our offer is relayed by the server, which calls it `relay_id` on the receiver's
    /// connection (the `relayed` extension, spec §10 rule 8): the number both people see.
    /// Arrives at most once per offer, before it is answered.
    Relayed {
        /// Our transfer id.
        id: TransferId,
        /// The receiver.
        peer: Utf8,
        /// The id the receiver sees.
        relay_id: TransferId,
    },
    /// Relay receivers only: the sender finished; pass the digest on with
    /// [`Session::relay_done`](crate::session::Session::relay_done) on the other connection.
    SenderDone {
        /// Transfer id.
        id: TransferId,
        /// The sender's SHA-256.
        digest: Digest,
    },
    /// The transfer ended: `Ok` with the verified digest, or why not. A receiver keeps its
    /// partial file on failure so that a later offer can resume it.
    Finished {
        /// Transfer id.
        id: TransferId,
        /// Sending or receiving.
        direction: Direction,
        /// The outcome.
        result: Result<Digest, TransferFailure>,
    },
}

impl TransferEvent {
    /// The transfer this event is about.
    pub fn id(&self) -> TransferId {
        match self {
            TransferEvent::Offered(o) => o.id,
            TransferEvent::Accepted { id, .. }
            | TransferEvent::Read { id, .. }
            | TransferEvent::Data { id, .. }
            | TransferEvent::SenderDone { id, .. }
            | TransferEvent::Finished { id, .. }
            | TransferEvent::Relayed { id, .. } => *id,
            TransferEvent::Progress(p) => p.id,
        }
    }
}

/// What the transfers of one connection may touch of it: the clock reading, the peer's frame
/// limit, the two output lanes and the event queue. The session implements it; the transfers
/// never see the session itself.
pub(crate) trait TransferIo {
    /// The driver's clock reading for the input being handled.
    fn now(&self) -> Instant;
    /// The peer's frame limit (a chunk and its fields must fit in one frame).
    fn peer_max_frame(&self) -> u32;
    /// Queues a control frame (ahead of all file data).
    fn control(&mut self, msg: &Message);
    /// Bytes of control frames queued.
    fn control_len(&self) -> usize;
    /// Queues a frame behind the file data already queued (chunks and `done`, whose order
    /// matters).
    fn data(&mut self, msg: &Message);
    /// Bytes of file data queued.
    fn data_len(&self) -> usize;
    /// Reports `ev` to the application, in order with the connection's other events.
    fn event(&mut self, ev: TransferEvent);

    /// Reports that transfer `id` ended.
    fn finished(
        &mut self,
        id: TransferId,
        direction: Direction,
        result: Result<Digest, TransferFailure>,
    ) {
        self.event(TransferEvent::Finished {
            id,
            direction,
            result,
        });
    }
}

/// `unknown-transfer` answers are skipped while this many bytes of control output wait.
const UNKNOWN_ANSWER_LIMIT: usize = 64 << 10;

/// Ids of ended transfers remembered, so that frames already in flight for them are ignored.
const TOMBSTONES: usize = 256;

enum Transfer {
    Out(Outgoing),
    In(Incoming),
}

/// All transfers of one session. Its settings ([`TransferConfig`]) come with every call that
/// needs them, from the session's (shared) configuration: a hub holds thousands of sessions.
pub(crate) struct Transfers {
    /// Made with the first transfer and kept after it (its tombstones outlive it): most
    /// connections never send a file, and these lists took 112 bytes of every one of the
    /// thousands of sessions a hub holds.
    lists: Option<Box<Lists>>,
    /// The id of our next offer: ours are even on the client, odd on the server, and the
    /// peer's have the other parity.
    next_id: TransferId,
}

/// The transfers of a session that has had any.
#[derive(Default)]
struct Lists {
    map: BTreeMap<TransferId, Transfer>,
    /// Round-robin order for read requests: the fair share of the connection.
    turn: VecDeque<TransferId>,
    ended: VecDeque<TransferId>,
}

impl Lists {
    /// Transfer `id` of a session's lists, if it has any (a free function of the field, so
    /// that callers can hold the settings beside it).
    fn get_mut(lists: &mut Option<Box<Lists>>, id: TransferId) -> Option<&mut Transfer> {
        lists.as_deref_mut()?.map.get_mut(&id)
    }
}

/// The lists of a session that has had no transfer.
static NO_LISTS: Lists = Lists {
    map: BTreeMap::new(),
    turn: VecDeque::new(),
    ended: VecDeque::new(),
};

impl core::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transfers")
            .field("active", &self.lists().map.len())
            .finish()
    }
}

impl Transfers {
    /// `first_id` is this side's first offer id: 0 on the client, 1 on the server (spec §7.1).
    pub(crate) fn new(first_id: TransferId) -> Self {
        Transfers {
            lists: None,
            next_id: first_id,
        }
    }

    fn lists(&self) -> &Lists {
        self.lists.as_deref().unwrap_or(&NO_LISTS)
    }

    fn lists_mut(&mut self) -> &mut Lists {
        self.lists.get_or_insert_with(Box::default)
    }

    /// Whether `id` is not a transfer now but ended recently (it is among the tombstones):
    /// frames and answers for it were under way when it ended, and are ignored.
    fn ended_recently(&self, id: TransferId) -> bool {
        let lists = self.lists();
        !lists.map.contains_key(&id) && lists.ended.contains(&id)
    }

    fn end(&mut self, id: TransferId) {
        let lists = self.lists_mut();
        lists.map.remove(&id);
        lists.turn.retain(|&t| t != id);
        if lists.ended.len() == TOMBSTONES {
            lists.ended.pop_front();
        }
        lists.ended.push_back(id);
    }

    /// A frame for a transfer id we do not have: ignored if it ended recently (the frame
    /// crossed a cancel), otherwise answered with `unknown-transfer` — unless the control
    /// lane is already backed up, so that a peer flooding us with such frames while not
    /// reading cannot make the queue grow without bound.
    fn unknown(&self, id: TransferId, io: &mut impl TransferIo) {
        if !self.ended_recently(id) && io.control_len() < UNKNOWN_ANSWER_LIMIT {
            io.control(&Message::Error {
                code: ErrorCode::UnknownTransfer,
                text: Utf8::from(format!("no transfer {id}")),
            });
        }
    }

    /// The server's `relayed` note about one of our offers: passed on as an event when the id
    /// is an offer of ours, otherwise ignored (an extension never fails a session).
    pub(crate) fn relayed(&mut self, r: crate::wire::Relayed, io: &mut impl TransferIo) {
        if let Some(Transfer::Out(_)) = self.lists().map.get(&r.id) {
            io.event(TransferEvent::Relayed {
                id: r.id,
                peer: r.peer,
                relay_id: r.relay_id,
            });
        }
    }

    pub(crate) fn handle_message(
        &mut self,
        msg: Message,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), ProtocolError> {
        let id = match &msg {
            Message::Offer(o) => o.id,
            Message::Accept { id, .. }
            | Message::Reject { id, .. }
            | Message::Chunk { id, .. }
            | Message::Credit { id, .. }
            | Message::Done { id, .. }
            | Message::Cancel { id, .. }
            | Message::Complete { id }
            | Message::Failed { id, .. } => *id,
            _ => unreachable!("session dispatches only transfer messages here"),
        };
        if let Message::Offer(offer) = msg {
            return self.offered(offer, cfg, io);
        }
        let ended = match Lists::get_mut(&mut self.lists, id) {
            None => {
                self.unknown(id, io);
                return Ok(());
            }
            Some(Transfer::Out(t)) => t.handle(msg, cfg, io)?,
            Some(Transfer::In(t)) => t.handle(msg, cfg, io)?,
        };
        if ended {
            self.end(id);
        }
        Ok(())
    }

    fn offered(
        &mut self,
        offer: Offer,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), ProtocolError> {
        if offer.id & 1 == self.next_id & 1 || self.lists().map.contains_key(&offer.id) {
            return Err(ProtocolError::new(
                ErrorCode::Malformed,
                "offer id has the wrong parity or is in use",
            ));
        }
        let refusal = if self.lists().map.len() >= cfg.max_active {
            Err((ErrorCode::LimitExceeded, "too many transfers at once"))
        } else {
            reduce_name(&offer.name, cfg.max_path_depth)
                .ok_or((ErrorCode::BadFileName, "the file name is not usable"))
        };
        let name = match refusal {
            Ok(name) => name,
            Err((code, reason)) => {
                io.control(&Message::Reject {
                    id: offer.id,
                    code,
                    reason: Utf8::from(reason),
                });
                return Ok(());
            }
        };
        let incoming = Incoming::new(&offer, io.now());
        io.event(TransferEvent::Offered(IncomingOffer {
            id: offer.id,
            peer: offer.peer,
            name,
            size: offer.size,
            media_type: offer.media_type,
        }));
        self.lists_mut()
            .map
            .insert(offer.id, Transfer::In(incoming));
        Ok(())
    }

    /// Asks the driver for file bytes, round-robin across transfers, while the read-ahead
    /// budget allows.
    pub(crate) fn request_reads(&mut self, cfg: &TransferConfig, io: &mut impl TransferIo) {
        if self.lists().turn.is_empty() {
            // No transfer (the usual case; asked after every event of a session).
            return;
        }
        let mut budget = self.read_budget(cfg, io.data_len());
        let max_len = chunk_limit(cfg, io.peer_max_frame());
        let mut idle_in_a_row = 0;
        let lists = self.lists_mut();
        while budget > 0 && idle_in_a_row < lists.turn.len() {
            let id = lists.turn[0];
            lists.turn.rotate_left(1);
            let req = match lists.map.get_mut(&id) {
                Some(Transfer::Out(t)) => t.next_read(max_len.min(budget)),
                Some(Transfer::In(t)) => t.next_read(max_len.min(budget)),
                None => None,
            };
            match req {
                Some((offset, len)) => {
                    budget -= len;
                    idle_in_a_row = 0;
                    io.event(TransferEvent::Read { id, offset, len });
                }
                None => idle_in_a_row += 1,
            }
        }
    }

    /// Bytes a receiving transfer still lets its sender send (credit granted and not yet
    /// used); `None` for an unknown id or a sending transfer. A relaying hub counts the
    /// memory its relays may come to hold with this.
    pub(crate) fn credit_left(&self, id: TransferId) -> Option<u64> {
        match self.lists().map.get(&id)? {
            Transfer::In(t) => Some(t.credit_left()),
            Transfer::Out(_) => None,
        }
    }

    /// Whether [`Transfers::request_reads`] would ask for something now.
    pub(crate) fn wants_reads(&self, cfg: &TransferConfig, data_queued: usize) -> bool {
        self.read_budget(cfg, data_queued) > 0
            && self.lists().map.values().any(|t| match t {
                Transfer::Out(t) => t.can_read(),
                Transfer::In(t) => t.can_read(),
            })
    }

    fn read_budget(&self, cfg: &TransferConfig, data_queued: usize) -> usize {
        let outstanding: u64 = self
            .lists()
            .map
            .values()
            .map(|t| match t {
                Transfer::Out(t) => t.outstanding(),
                Transfer::In(t) => t.outstanding(),
            })
            .sum();
        (cfg.read_ahead as usize).saturating_sub(data_queued + outstanding as usize)
    }

    pub(crate) fn next_deadline(&self, cfg: &TransferConfig) -> Option<Instant> {
        self.lists()
            .map
            .values()
            .filter_map(|t| match t {
                Transfer::Out(t) => t.deadline(cfg),
                Transfer::In(t) => t.deadline(cfg),
            })
            .min()
    }

    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) {
        let Some(lists) = self.lists.as_deref_mut() else {
            return;
        };
        // In id order (the map's), so that what the peer and the application see is the
        // same from run to run.
        let mut expired = Vec::new();
        for (&id, t) in lists.map.iter_mut() {
            let (timed_out, offered) = match t {
                Transfer::Out(t) => (
                    t.deadline(cfg).is_some_and(|d| now >= d && t.on_timer(io)),
                    t.is_offered(),
                ),
                Transfer::In(t) => (
                    t.deadline(cfg).is_some_and(|d| now >= d && t.on_timer(io)),
                    t.is_offered(),
                ),
            };
            if timed_out {
                expired.push((id, offered));
            }
        }
        for (id, offered) in expired {
            // One code for both (spec §7.7); the reason tells people which wait ran out.
            let reason = if offered {
                "the offer was not answered in time"
            } else {
                "the transfer stopped moving"
            };
            self.cancel(id, ErrorCode::TransferTimeout, reason, io);
        }
    }

    /// Ends a transfer from this side: tells the peer and the application.
    pub(crate) fn cancel(
        &mut self,
        id: TransferId,
        code: ErrorCode,
        reason: &str,
        io: &mut impl TransferIo,
    ) {
        let Some(t) = self.lists().map.get(&id) else {
            return;
        };
        let direction = match t {
            Transfer::Out(_) => Direction::Send,
            Transfer::In(_) => Direction::Receive,
        };
        let offered_to_us = matches!(t, Transfer::In(i) if i.is_offered());
        let reason = Utf8::from(reason);
        io.control(&if offered_to_us {
            Message::Reject {
                id,
                code,
                reason: reason.clone(),
            }
        } else {
            Message::Cancel {
                id,
                code,
                reason: reason.clone(),
            }
        });
        io.finished(id, direction, Err(TransferFailure::local(code, reason)));
        self.end(id);
    }

    /// The session is closing: every transfer fails with `code`, nothing more is sent.
    pub(crate) fn abort_all(&mut self, code: ErrorCode, io: &mut impl TransferIo) {
        let ids: Vec<_> = self.lists().map.keys().copied().collect();
        for id in ids {
            let direction = match self.lists().map[&id] {
                Transfer::Out(_) => Direction::Send,
                Transfer::In(_) => Direction::Receive,
            };
            io.finished(
                id,
                direction,
                Err(TransferFailure::local(
                    code,
                    Utf8::from_static("the connection closed"),
                )),
            );
            self.end(id);
        }
    }
}

/// File transfer commands (spec §7), behind the session's commands of the same names (see
/// [`Session::offer_numbered`](crate::session::Session::offer_numbered) and the ones after
/// it): the session checks that it is open, the transfers check the rest and return
/// [`SendError::Invalid`] for an id in the wrong state.
impl Transfers {
    /// Offers a file (the session checked `to`): see
    /// [`Session::offer_numbered`](crate::session::Session::offer_numbered).
    #[allow(clippy::too_many_arguments)] // the offer's fields, as on the wire
    pub(crate) fn offer(
        &mut self,
        id: Option<TransferId>,
        to: &str,
        name: &str,
        size: u64,
        media_type: &str,
        mode: Mode,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<TransferId, SendError> {
        if media_type.len() > u8::MAX as usize {
            return Err(SendError::Invalid("media type longer than 255 bytes"));
        }
        let name = reduce_name(name, cfg.max_path_depth)
            .ok_or(SendError::Invalid("the file name is not usable"))?;
        if self.lists().map.len() >= cfg.max_active {
            return Err(SendError::Invalid("too many transfers at once"));
        }
        let id = match id {
            None => self.next_id,
            Some(id) if id & 1 == self.next_id & 1 && id >= self.next_id => id,
            Some(_) => {
                return Err(SendError::Invalid(
                    "a transfer id of the other side's parity or below the next id",
                ))
            }
        };
        // The last id of the space is not reused: the session refuses further offers instead.
        self.next_id = id
            .checked_add(2)
            .ok_or(SendError::Invalid("no transfer ids left"))?;
        let offer = Offer {
            id,
            peer: Utf8::from(to),
            size,
            name: Utf8::from(name),
            media_type: Utf8::from(media_type),
        };
        io.control(&Message::Offer(offer));
        let lists = self.lists_mut();
        lists
            .map
            .insert(id, Transfer::Out(Outgoing::new(id, size, mode, io.now())));
        lists.turn.push_back(id);
        Ok(id)
    }

    /// Accepts offer `id` from `offset`.
    pub(crate) fn accept(
        &mut self,
        id: TransferId,
        offset: u64,
        mode: Mode,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        self.with_incoming(id, |t| t.accept(offset, mode, cfg, io))?;
        let lists = self.lists_mut();
        if !lists.turn.contains(&id) {
            lists.turn.push_back(id);
        }
        Ok(())
    }

    /// Declines offer `id`.
    pub(crate) fn reject(
        &mut self,
        id: TransferId,
        code: ErrorCode,
        reason: &str,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        self.with_incoming(id, |t| {
            if t.is_offered() {
                Ok(())
            } else {
                Err(SendError::Invalid("the offer was already answered"))
            }
        })?;
        self.cancel_known(id, code, reason, io)
    }

    /// Cancels transfer `id`, which must exist.
    pub(crate) fn cancel_known(
        &mut self,
        id: TransferId,
        code: ErrorCode,
        reason: &str,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        if !self.lists().map.contains_key(&id) {
            return Err(SendError::Invalid("no such transfer"));
        }
        self.cancel(id, code, reason, io);
        Ok(())
    }

    /// The code a failed read of transfer `id` ends it with: `storage-failed` for a receiver's
    /// kept partial file, `source-failed` for a sender's file.
    pub(crate) fn read_failure_code(&self, id: TransferId) -> ErrorCode {
        match self.lists().map.get(&id) {
            Some(Transfer::In(_)) => ErrorCode::StorageFailed,
            _ => ErrorCode::SourceFailed,
        }
    }

    /// The driver's answer to a [`TransferEvent::Read`].
    pub(crate) fn provide(
        &mut self,
        id: TransferId,
        offset: u64,
        data: Bytes,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        if self.ended_recently(id) {
            return Ok(());
        }
        let ended = match Lists::get_mut(&mut self.lists, id) {
            Some(Transfer::Out(t)) => t.provide(offset, data, cfg, io)?,
            Some(Transfer::In(t)) => t.provide(offset, data, cfg, io)?,
            None => return Err(SendError::Invalid("no such transfer")),
        };
        if ended {
            self.end(id);
        }
        Ok(())
    }

    /// `len` more received bytes of transfer `id` are written.
    pub(crate) fn written(
        &mut self,
        id: TransferId,
        len: u64,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        if self.ended_recently(id) {
            return Ok(());
        }
        self.step_incoming(id, |t| t.written(len, cfg, io))
    }

    /// A relay sender's digest, from the other connection.
    pub(crate) fn relay_done(
        &mut self,
        id: TransferId,
        digest: Digest,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        match Lists::get_mut(&mut self.lists, id) {
            Some(Transfer::Out(t)) => t.relay_digest(digest, io),
            _ => Err(SendError::Invalid("no such relayed sending transfer")),
        }
    }

    /// A relay receiver's verdict, from the other connection.
    pub(crate) fn relay_outcome(
        &mut self,
        id: TransferId,
        result: Result<Digest, (ErrorCode, &str)>,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        self.step_incoming(id, |t| t.relay_outcome(result, io))
    }

    /// Runs `step` on incoming transfer `id`, and ends the transfer if `step` says it ended.
    fn step_incoming(
        &mut self,
        id: TransferId,
        step: impl FnOnce(&mut Incoming) -> Result<bool, SendError>,
    ) -> Result<(), SendError> {
        if self.with_incoming(id, step)? {
            self.end(id);
        }
        Ok(())
    }

    fn with_incoming<R>(
        &mut self,
        id: TransferId,
        f: impl FnOnce(&mut Incoming) -> Result<R, SendError>,
    ) -> Result<R, SendError> {
        match Lists::get_mut(&mut self.lists, id) {
            Some(Transfer::In(t)) => f(t),
            _ => Err(SendError::Invalid("no such incoming transfer")),
        }
    }
}

/// The largest chunk payload: the configured size, within the peer's frame limit (a chunk's
/// fixed fields take 16 bytes of the frame body).
fn chunk_limit(cfg: &TransferConfig, peer_max_frame: u32) -> usize {
    cfg.chunk_size.min(peer_max_frame.saturating_sub(16)).max(1) as usize
}
