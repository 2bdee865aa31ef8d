//! The sending end of one transfer (spec §7.3).

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::progress::Meter;
use super::reads::Reads;
use super::timers::Timers;
use super::{
    Digest, Direction, Mode, TransferConfig, TransferEvent, TransferFailure, TransferId, TransferIo,
};
use crate::error::SendError;
use crate::wire::Message;
use crate::{ErrorCode, ProtocolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offer sent, no answer yet.
    Offered,
    /// Resuming: reading the bytes before the offset only to hash them (empty chunks tell
    /// the receiver we are alive meanwhile).
    Hashing,
    /// Sending chunks as credit allows.
    Sending,
    /// Every byte and `done` queued; waiting for `complete` or `failed`.
    AwaitingVerdict,
}

pub(crate) struct Outgoing {
    id: TransferId,
    size: u64,
    mode: Mode,
    phase: Phase,
    /// Where the receiver asked us to start.
    offset: u64,
    /// The source file's bytes asked for and answered.
    reads: Reads,
    /// The receiver allows bytes up to here.
    credit_end: u64,
    hasher: Sha256,
    relay_digest: Option<Digest>,
    sent_digest: Option<Digest>,
    meter: Meter,
    /// The offer, stall and keepalive clocks.
    timers: Timers,
}

fn unexpected(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::UnexpectedMessage, detail)
}

impl Outgoing {
    /// Still waiting for the receiver's answer to the offer.
    pub(crate) fn is_offered(&self) -> bool {
        self.phase == Phase::Offered
    }

    pub(crate) fn new(id: TransferId, size: u64, mode: Mode, now: Instant) -> Self {
        Outgoing {
            id,
            size,
            mode,
            phase: Phase::Offered,
            offset: 0,
            reads: Reads::default(),
            credit_end: 0,
            hasher: Sha256::new(),
            relay_digest: None,
            sent_digest: None,
            meter: Meter::new(),
            timers: Timers::new(now),
        }
    }

    fn read_limit(&self) -> u64 {
        match self.phase {
            Phase::Hashing => self.offset,
            Phase::Sending => self.credit_end.min(self.size),
            _ => 0,
        }
    }

    pub(crate) fn can_read(&self) -> bool {
        self.reads.can_read(self.read_limit())
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.reads.outstanding()
    }

    pub(crate) fn next_read(&mut self, max_len: usize) -> Option<(u64, usize)> {
        self.reads.next(self.read_limit(), max_len)
    }

    /// The next timer: the offer or stall timeout, or, for a relay waiting for bytes from
    /// the sender's connection, the next keepalive (see [`Outgoing::on_timer`]).
    pub(crate) fn deadline(&self, cfg: &TransferConfig) -> Option<Instant> {
        Some(self.timers.deadline(
            self.phase == Phase::Offered,
            self.awaits_relayed_bytes(),
            cfg,
        ))
    }

    /// Relaying, with credit to spend, and waiting for the hub to bring bytes from the
    /// sender's connection. A stall there is the other connection's transfer to detect (the
    /// hub then cancels both ends); this end only keeps the receiver from timing out, which
    /// it would while the original sender hashes a long prefix to resume.
    fn awaits_relayed_bytes(&self) -> bool {
        self.mode == Mode::Relay
            && self.phase == Phase::Sending
            && (self.outstanding() > 0 || self.can_read())
    }

    /// The deadline from [`Outgoing::deadline`] passed. Returns `true` if the transfer timed
    /// out; a relay waiting for bytes sends an empty `chunk` at its current offset instead.
    pub(crate) fn on_timer(&mut self, io: &mut impl TransferIo) -> bool {
        if !self.awaits_relayed_bytes() {
            return true;
        }
        self.timers.keepalive = io.now();
        // Behind the chunks already queued, so its offset is where the receiver stands then.
        io.data(&Message::Chunk {
            id: self.id,
            offset: self.reads.provided(),
            data: Bytes::new(),
        });
        false
    }

    /// A frame from the receiver; `Ok(true)` when the transfer ended.
    pub(crate) fn handle(
        &mut self,
        msg: Message,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<bool, ProtocolError> {
        match msg {
            Message::Accept { offset, credit, .. } => {
                if self.phase != Phase::Offered {
                    return Err(unexpected("accept for a transfer already answered"));
                }
                if offset > self.size {
                    return Err(ProtocolError::new(
                        ErrorCode::ChunkOutOfRange,
                        "accept offset beyond the file size",
                    ));
                }
                self.offset = offset;
                self.credit_end = offset.saturating_add(credit.into());
                self.timers.since = io.now();
                self.timers.keepalive = io.now();
                io.event(TransferEvent::Accepted {
                    id: self.id,
                    offset,
                });
                if self.mode == Mode::Local && offset > 0 {
                    self.phase = Phase::Hashing;
                } else {
                    self.start_sending(cfg, io);
                }
                Ok(false)
            }
            Message::Credit { bytes, .. } => {
                if self.phase == Phase::Offered {
                    return Err(unexpected("credit before accept"));
                }
                self.credit_end = self.credit_end.saturating_add(bytes.into());
                self.timers.since = io.now();
                Ok(false)
            }
            Message::Complete { .. } => {
                let Some(digest) = self
                    .sent_digest
                    .filter(|_| self.phase == Phase::AwaitingVerdict)
                else {
                    return Err(unexpected("complete before done"));
                };
                io.finished(self.id, Direction::Send, Ok(digest));
                Ok(true)
            }
            Message::Reject { code, reason, .. }
            | Message::Cancel { code, reason, .. }
            | Message::Failed { code, reason, .. } => {
                let failure = TransferFailure::by_peer(code, reason);
                io.finished(self.id, Direction::Send, Err(failure));
                Ok(true)
            }
            _ => Err(unexpected("sender-side frame sent by the receiver")),
        }
    }

    fn start_sending(&mut self, cfg: &TransferConfig, io: &mut impl TransferIo) {
        self.phase = Phase::Sending;
        self.reads = Reads::at(self.offset);
        self.report(cfg, io);
        self.maybe_done(io);
    }

    /// Bytes the driver read for us.
    pub(crate) fn provide(
        &mut self,
        offset: u64,
        data: Bytes,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<bool, SendError> {
        let reading = matches!(self.phase, Phase::Hashing | Phase::Sending);
        if !reading || !self.reads.answer(offset, data.len()) {
            return Err(SendError::Invalid("data does not answer the pending read"));
        }
        if self.mode == Mode::Local {
            self.hasher.update(&data);
        }
        self.timers.since = io.now();
        match self.phase {
            Phase::Hashing => {
                if self.reads.provided() == self.offset {
                    self.start_sending(cfg, io);
                } else if self.timers.keepalive_due(io.now(), cfg) {
                    // The receiver sees no chunk while we hash a long prefix: an empty chunk
                    // at the resume offset says we live, without moving any byte.
                    self.timers.keepalive = io.now();
                    io.data(&Message::Chunk {
                        id: self.id,
                        offset: self.offset,
                        data: Bytes::new(),
                    });
                }
            }
            Phase::Sending => {
                self.timers.keepalive = io.now();
                io.data(&Message::Chunk {
                    id: self.id,
                    offset,
                    data,
                });
                self.report(cfg, io);
                self.maybe_done(io);
            }
            _ => unreachable!("reads are only requested while hashing or sending"),
        }
        Ok(false)
    }

    fn report(&mut self, cfg: &TransferConfig, io: &mut impl TransferIo) {
        let p = self.meter.update(
            io.now(),
            cfg.progress_interval,
            self.id,
            Direction::Send,
            self.reads.provided(),
            self.size,
        );
        if let Some(p) = p {
            io.event(TransferEvent::Progress(p));
        }
    }

    /// Queues `done` once every byte went out (and, relaying, the digest is known).
    fn maybe_done(&mut self, io: &mut impl TransferIo) {
        if self.phase != Phase::Sending || self.reads.provided() < self.size {
            return;
        }
        let digest = match self.mode {
            Mode::Local => self.hasher.finalize_reset().into(),
            Mode::Relay => match self.relay_digest {
                Some(d) => d,
                None => return,
            },
        };
        self.sent_digest = Some(digest);
        self.phase = Phase::AwaitingVerdict;
        // Behind the chunks: `done` must not overtake file data.
        io.data(&Message::Done {
            id: self.id,
            digest,
        });
    }

    pub(crate) fn relay_digest(
        &mut self,
        digest: Digest,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        if self.mode != Mode::Relay || self.relay_digest.is_some() {
            return Err(SendError::Invalid(
                "not a relay transfer waiting for its digest",
            ));
        }
        self.relay_digest = Some(digest);
        self.maybe_done(io);
        Ok(())
    }
}
