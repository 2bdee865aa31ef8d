//! The receiving end of one transfer (spec §7.4).

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::progress::Meter;
use super::{Digest, Direction, Io, Mode, TransferConfig, TransferEvent, TransferFailure, TransferId};
use crate::session::SendError;
use crate::wire::{Message, Offer, Utf8};
use crate::{ErrorCode, ProtocolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offer received; the application has not answered.
    Offered,
    /// Resuming: hashing the kept partial file before sending `accept`.
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
    /// Prefix hashing: next byte to ask for / to be provided.
    requested: u64,
    provided: u64,
    /// Next byte expected on the wire.
    received: u64,
    /// Bytes the driver confirmed written (or, relaying, passed on).
    written: u64,
    /// The sender may send up to here.
    credit_end: u64,
    hasher: Sha256,
    peer_digest: Option<Digest>,
    meter: Meter,
    since: Instant,
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
            requested: 0,
            provided: 0,
            received: 0,
            written: 0,
            credit_end: 0,
            hasher: Sha256::new(),
            peer_digest: None,
            meter: Meter::new(),
            since: now,
        }
    }

    pub(crate) fn is_offered(&self) -> bool {
        self.phase == Phase::Offered
    }

    pub(crate) fn can_read(&self) -> bool {
        self.phase == Phase::Hashing && self.requested < self.offset
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.requested - self.provided
    }

    pub(crate) fn next_read(&mut self, max_len: usize) -> Option<(u64, usize)> {
        if !self.can_read() || max_len == 0 {
            return None;
        }
        let len = (self.offset - self.requested).min(max_len as u64) as usize;
        let at = self.requested;
        self.requested += len as u64;
        Some((at, len))
    }

    pub(crate) fn deadline(&self, cfg: &TransferConfig) -> Option<Instant> {
        Some(match self.phase {
            Phase::Offered => self.since + cfg.offer_timeout,
            _ => self.since + cfg.stall_timeout,
        })
    }

    fn finished(&self, io: &mut Io, result: Result<Digest, TransferFailure>) {
        io.event(TransferEvent::Finished {
            id: self.id,
            direction: Direction::Receive,
            result,
        });
    }

    pub(crate) fn accept(
        &mut self,
        offset: u64,
        mode: Mode,
        cfg: &TransferConfig,
        io: &mut Io,
    ) -> Result<(), SendError> {
        if self.phase != Phase::Offered {
            return Err(SendError::Invalid("the offer was already answered"));
        }
        if offset > self.size {
            return Err(SendError::Invalid("offset beyond the file size"));
        }
        self.mode = mode;
        self.offset = offset;
        self.received = offset;
        self.written = offset;
        self.since = io.now;
        if mode == Mode::Local && offset > 0 {
            self.phase = Phase::Hashing;
        } else {
            self.send_accept(cfg, io);
        }
        Ok(())
    }

    fn send_accept(&mut self, cfg: &TransferConfig, io: &mut Io) {
        let credit = (cfg.window as u64).min(self.size - self.offset) as u32;
        self.credit_end = self.offset + credit as u64;
        self.phase = Phase::Receiving;
        io.control(&Message::Accept {
            id: self.id,
            offset: self.offset,
            credit,
        });
    }

    /// Bytes of the kept partial file, for the digest.
    pub(crate) fn provide(
        &mut self,
        offset: u64,
        data: Bytes,
        cfg: &TransferConfig,
        io: &mut Io,
    ) -> Result<bool, SendError> {
        let end = offset + data.len() as u64;
        if self.phase != Phase::Hashing
            || offset != self.provided
            || end > self.requested
            || data.is_empty()
        {
            return Err(SendError::Invalid("data does not answer the pending read"));
        }
        self.hasher.update(&data);
        self.provided = end;
        if self.provided == self.offset {
            self.send_accept(cfg, io);
        }
        Ok(false)
    }

    /// A frame from the sender; `Ok(true)` when the transfer ended.
    pub(crate) fn handle(
        &mut self,
        msg: Message,
        cfg: &TransferConfig,
        io: &mut Io,
    ) -> Result<bool, ProtocolError> {
        match msg {
            Message::Chunk { offset, data, .. } => {
                let end = offset + data.len() as u64;
                if self.phase != Phase::Receiving || offset != self.received || end > self.size {
                    return Err(out_of_range("chunk outside the expected range"));
                }
                if end > self.credit_end {
                    return Err(ProtocolError::new(
                        ErrorCode::CreditExceeded,
                        "chunk beyond the granted credit",
                    ));
                }
                if self.mode == Mode::Local {
                    self.hasher.update(&data);
                }
                self.received = end;
                self.since = io.now;
                io.event(TransferEvent::Data {
                    id: self.id,
                    offset,
                    data,
                });
                if let Some(p) = self.meter.update(
                    io.now,
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
                if self.phase != Phase::Receiving || self.received != self.size {
                    return Err(out_of_range("done before every byte arrived"));
                }
                self.peer_digest = Some(digest);
                self.phase = Phase::Verifying;
                self.since = io.now;
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
                self.finished(
                    io,
                    Err(TransferFailure {
                        code,
                        reason,
                        by_peer: true,
                    }),
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
        io: &mut Io,
    ) -> Result<bool, SendError> {
        if self.written + len > self.received {
            return Err(SendError::Invalid("more bytes written than received"));
        }
        self.written += len;
        self.grant_credit(cfg, io);
        if self.phase == Phase::Verifying && self.mode == Mode::Local {
            return Ok(self.try_verify(io));
        }
        Ok(false)
    }

    /// Returns credit once half the window is free again, so credit frames stay few.
    fn grant_credit(&mut self, cfg: &TransferConfig, io: &mut Io) {
        let window = cfg.window.max(1) as u64;
        let in_flight = self.credit_end - self.written;
        let grant = (window.saturating_sub(in_flight)).min(self.size - self.credit_end);
        let last = self.credit_end + grant == self.size;
        if grant == 0 || (grant < (window / 2).max(1) && !last) {
            return;
        }
        self.credit_end += grant;
        io.control(&Message::Credit {
            id: self.id,
            bytes: grant as u32,
        });
    }

    /// Sends the verdict once `done` arrived and every byte is written.
    fn try_verify(&mut self, io: &mut Io) -> bool {
        let Some(expected) = self.peer_digest else {
            return false;
        };
        if self.written < self.size {
            return false;
        }
        let digest: Digest = self.hasher.finalize_reset().into();
        if digest == expected {
            io.control(&Message::Complete { id: self.id });
            self.finished(io, Ok(digest));
        } else {
            let reason = Utf8::from_static("the SHA-256 of the received file does not match");
            io.control(&Message::Failed {
                id: self.id,
                code: ErrorCode::DigestMismatch,
                reason: reason.clone(),
            });
            self.finished(
                io,
                Err(TransferFailure {
                    code: ErrorCode::DigestMismatch,
                    reason,
                    by_peer: false,
                }),
            );
        }
        true
    }

    pub(crate) fn relay_outcome(
        &mut self,
        result: Result<Digest, (ErrorCode, &str)>,
        io: &mut Io,
    ) -> Result<bool, SendError> {
        if self.mode != Mode::Relay || self.phase != Phase::Verifying {
            return Err(SendError::Invalid("not a relay transfer waiting for a verdict"));
        }
        match result {
            Ok(digest) => {
                io.control(&Message::Complete { id: self.id });
                self.finished(io, Ok(digest));
            }
            Err((code, reason)) => {
                let reason = Utf8::from(reason);
                io.control(&Message::Failed {
                    id: self.id,
                    code,
                    reason: reason.clone(),
                });
                self.finished(
                    io,
                    Err(TransferFailure {
                        code,
                        reason,
                        by_peer: true,
                    }),
                );
            }
        }
        Ok(true)
    }
}
