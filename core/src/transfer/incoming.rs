//! The receiving end of one transfer (spec §7.4).

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
use crate::wire::{Message, Offer, Utf8};
use crate::{ErrorCode, ProtocolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offer received; the application has not answered.
    Offered,
    /// Resuming: `accept` went out with no credit; hashing the kept partial file before
    /// granting any, so that chunks can only arrive once the prefix is in the digest. The
    /// sender hashes its own prefix meanwhile, in parallel.
    Hashing,
    /// Accepted; chunks arrive.
    Receiving,
    /// `done` arrived; waiting for the last writes (or, relaying, for the far verdict).
    Verifying,
}

pub(crate) struct Incoming {
    id: TransferId,
    size: u64,
    mode: Mode,
    phase: Phase,
    offset: u64,
    /// Prefix hashing: the kept partial file's bytes asked for and answered.
    reads: Reads,
    /// Next byte expected on the wire.
    received: u64,
    /// Bytes the driver confirmed written (or, relaying, passed on).
    written: u64,
    /// The sender may send up to here.
    credit_end: u64,
    hasher: Sha256,
    peer_digest: Option<Digest>,
    meter: Meter,
    /// The offer, stall and keepalive clocks.
    timers: Timers,
}

fn out_of_range(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::ChunkOutOfRange, detail)
}

impl Incoming {
    pub(crate) fn new(offer: &Offer, now: Instant) -> Self {
        Incoming {
            id: offer.id,
            size: offer.size,
            mode: Mode::Local,
            phase: Phase::Offered,
            offset: 0,
            reads: Reads::default(),
            received: 0,
            written: 0,
            credit_end: 0,
            hasher: Sha256::new(),
            peer_digest: None,
            meter: Meter::new(),
            timers: Timers::new(now),
        }
    }

    /// Credit granted to the sender and not yet used by its chunks.
    pub(crate) fn credit_left(&self) -> u64 {
        self.credit_end.saturating_sub(self.received)
    }

    pub(crate) fn is_offered(&self) -> bool {
        self.phase == Phase::Offered
    }

    pub(crate) fn can_read(&self) -> bool {
        self.phase == Phase::Hashing && self.reads.can_read(self.offset)
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.reads.outstanding()
    }

    pub(crate) fn next_read(&mut self, max_len: usize) -> Option<(u64, usize)> {
        if self.phase != Phase::Hashing {
            return None;
        }
        self.reads.next(self.offset, max_len)
    }

    /// The offer or stall timeout; for a relay that has every byte and waits for the far
    /// receiver's verdict, the next keepalive instead (see [`Incoming::on_timer`]).
    pub(crate) fn deadline(&self, cfg: &TransferConfig) -> Option<Instant> {
        Some(
            self.timers
                .deadline(self.phase == Phase::Offered, self.awaits_far_verdict(), cfg),
        )
    }

    /// Relaying, with every byte passed on, waiting for the verdict from the far receiver,
    /// which may still be writing its last window to a slow disk. The hub's transfer towards
    /// it watches for a stall (the hub then ends both); this end only keeps the sender, which
    /// hears nothing meanwhile, from timing out.
    fn awaits_far_verdict(&self) -> bool {
        self.mode == Mode::Relay && self.phase == Phase::Verifying
    }

    /// The deadline from [`Incoming::deadline`] passed. Returns `true` if the transfer timed
    /// out; a relay waiting for the far verdict sends a zero `credit` instead.
    pub(crate) fn on_timer(&mut self, io: &mut impl TransferIo) -> bool {
        if !self.awaits_far_verdict() {
            return true;
        }
        self.timers.keepalive = io.now();
        io.control(&Message::Credit {
            id: self.id,
            bytes: 0,
        });
        false
    }

    pub(crate) fn accept(
        &mut self,
        offset: u64,
        mode: Mode,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<(), SendError> {
        if self.phase != Phase::Offered {
            return Err(SendError::Invalid("the offer was already answered"));
        }
        if offset > self.size {
            return Err(SendError::Invalid("offset beyond the file size"));
        }
        self.mode = mode;
        self.offset = offset;
        self.reads = Reads::at(0);
        self.received = offset;
        self.written = offset;
        self.credit_end = offset;
        self.timers.since = io.now();
        self.timers.keepalive = io.now();
        // Resuming locally: the prefix must be hashed before any chunk, so the first accept
        // grants nothing; credit follows once the kept bytes are read (see `provide`).
        let hashing = mode == Mode::Local && offset > 0;
        let credit = if hashing { 0 } else { self.initial_credit(cfg) };
        self.credit_end = offset + credit as u64;
        self.phase = if hashing {
            Phase::Hashing
        } else {
            Phase::Receiving
        };
        io.control(&Message::Accept {
            id: self.id,
            offset,
            credit,
        });
        Ok(())
    }

    fn initial_credit(&self, cfg: &TransferConfig) -> u32 {
        (cfg.window as u64).min(self.size - self.offset) as u32
    }

    /// Bytes of the kept partial file, for the digest.
    pub(crate) fn provide(
        &mut self,
        offset: u64,
        data: Bytes,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<bool, SendError> {
        if self.phase != Phase::Hashing || !self.reads.answer(offset, data.len()) {
            return Err(SendError::Invalid("data does not answer the pending read"));
        }
        self.hasher.update(&data);
        self.timers.since = io.now();
        if self.reads.provided() == self.offset {
            if self.peer_digest.is_some() {
                // `done` came while we hashed (nothing was missing): judge now.
                self.phase = Phase::Verifying;
                return Ok(self.try_verify(io));
            }
            let credit = self.initial_credit(cfg);
            self.phase = Phase::Receiving;
            if credit > 0 {
                self.credit_end += credit as u64;
                io.control(&Message::Credit {
                    id: self.id,
                    bytes: credit,
                });
            }
        } else if self.timers.keepalive_due(io.now(), cfg) {
            // The sender hears nothing while we read a long prefix: zero credit says we live.
            self.timers.keepalive = io.now();
            io.control(&Message::Credit {
                id: self.id,
                bytes: 0,
            });
        }
        Ok(false)
    }

    /// A frame from the sender; `Ok(true)` when the transfer ended.
    pub(crate) fn handle(
        &mut self,
        msg: Message,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<bool, ProtocolError> {
        match msg {
            Message::Chunk { offset, data, .. } => {
                let receiving = matches!(self.phase, Phase::Hashing | Phase::Receiving);
                let end = match offset.checked_add(data.len() as u64) {
                    Some(end) if receiving && offset == self.received && end <= self.size => end,
                    _ => return Err(out_of_range("chunk outside the expected range")),
                };
                if end > self.credit_end {
                    return Err(ProtocolError::new(
                        ErrorCode::CreditExceeded,
                        "chunk beyond the granted credit",
                    ));
                }
                self.timers.since = io.now();
                if data.is_empty() {
                    // A keepalive from a sender still hashing its prefix: nothing to write.
                    return Ok(false);
                }
                if self.mode == Mode::Local {
                    self.hasher.update(&data);
                }
                self.received = end;
                io.event(TransferEvent::Data {
                    id: self.id,
                    offset,
                    data,
                });
                if let Some(p) = self.meter.update(
                    io.now(),
                    cfg.progress_interval,
                    self.id,
                    Direction::Receive,
                    self.received,
                    self.size,
                ) {
                    io.event(TransferEvent::Progress(p));
                }
                Ok(false)
            }
            Message::Done { digest, .. } => {
                let receiving = matches!(self.phase, Phase::Hashing | Phase::Receiving);
                if !receiving || self.received != self.size {
                    return Err(out_of_range("done before every byte arrived"));
                }
                self.peer_digest = Some(digest);
                self.timers.since = io.now();
                if self.phase == Phase::Hashing {
                    // Resuming a complete file (offset = size): the sender needed no credit
                    // and finished hashing first. The verdict waits for our own prefix.
                    return Ok(false);
                }
                self.phase = Phase::Verifying;
                match self.mode {
                    Mode::Relay => {
                        io.event(TransferEvent::SenderDone {
                            id: self.id,
                            digest,
                        });
                        Ok(false)
                    }
                    Mode::Local => Ok(self.try_verify(io)),
                }
            }
            Message::Cancel { code, reason, .. } | Message::Reject { code, reason, .. } => {
                io.finished(
                    self.id,
                    Direction::Receive,
                    Err(TransferFailure::by_peer(code, reason)),
                );
                Ok(true)
            }
            _ => Err(ProtocolError::new(
                ErrorCode::UnexpectedMessage,
                "receiver-side frame sent by the sender",
            )),
        }
    }

    /// The driver wrote (or passed on) `len` more bytes.
    pub(crate) fn written(
        &mut self,
        len: u64,
        cfg: &TransferConfig,
        io: &mut impl TransferIo,
    ) -> Result<bool, SendError> {
        if !matches!(self.phase, Phase::Receiving | Phase::Verifying) {
            return Err(SendError::Invalid("no received bytes to write yet"));
        }
        if len > self.received - self.written {
            return Err(SendError::Invalid("more bytes written than received"));
        }
        if len == 0 {
            return Ok(false);
        }
        self.written += len;
        self.timers.since = io.now();
        self.grant_credit(cfg, io);
        if self.phase == Phase::Verifying && self.mode == Mode::Local {
            return Ok(self.try_verify(io));
        }
        Ok(false)
    }

    /// Returns credit once half the window is free again, so credit frames stay few. A slow
    /// disk may take longer than the sender's stall timer to free half the window, so once a
    /// keepalive interval has passed without a credit frame, whatever is free (possibly
    /// nothing) goes out anyway: the sender then knows we are alive and writing.
    fn grant_credit(&mut self, cfg: &TransferConfig, io: &mut impl TransferIo) {
        let window = cfg.window as u64;
        let in_flight = self.credit_end - self.written;
        let grant = window
            .saturating_sub(in_flight)
            .min(self.size - self.credit_end);
        let last = grant > 0 && self.credit_end + grant == self.size;
        let worth_it = grant >= (window / 2).max(1) || last;
        let due = self.timers.keepalive_due(io.now(), cfg);
        if !worth_it && !due {
            return;
        }
        self.credit_end += grant;
        self.timers.keepalive = io.now();
        io.control(&Message::Credit {
            id: self.id,
            bytes: grant as u32,
        });
    }

    /// Sends the verdict once `done` arrived and every byte is written.
    fn try_verify(&mut self, io: &mut impl TransferIo) -> bool {
        let Some(expected) = self.peer_digest else {
            return false;
        };
        if self.phase != Phase::Verifying || self.written < self.size {
            return false;
        }
        let digest: Digest = self.hasher.finalize_reset().into();
        if digest == expected {
            io.control(&Message::Complete { id: self.id });
            io.finished(self.id, Direction::Receive, Ok(digest));
        } else {
            let reason = Utf8::from_static("the SHA-256 of the received file does not match");
            io.control(&Message::Failed {
                id: self.id,
                code: ErrorCode::DigestMismatch,
                reason: reason.clone(),
            });
            io.finished(
                self.id,
                Direction::Receive,
                Err(TransferFailure::local(ErrorCode::DigestMismatch, reason)),
            );
        }
        true
    }

    pub(crate) fn relay_outcome(
        &mut self,
        result: Result<Digest, (ErrorCode, &str)>,
        io: &mut impl TransferIo,
    ) -> Result<bool, SendError> {
        if self.mode != Mode::Relay || self.phase != Phase::Verifying {
            return Err(SendError::Invalid(
                "not a relay transfer waiting for a verdict",
            ));
        }
        match result {
            Ok(digest) => {
                io.control(&Message::Complete { id: self.id });
                io.finished(self.id, Direction::Receive, Ok(digest));
            }
            Err((code, reason)) => {
                let reason = Utf8::from(reason);
                io.control(&Message::Failed {
                    id: self.id,
                    code,
                    reason: reason.clone(),
                });
                io.finished(
                    self.id,
                    Direction::Receive,
                    Err(TransferFailure::by_peer(code, reason)),
                );
            }
        }
        Ok(true)
    }
}
