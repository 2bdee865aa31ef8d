//! The session's file-transfer commands (spec §7) and what its transfers may touch of it.
//! The transfers themselves live in [`crate::transfer`], which knows nothing of the session.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{Event, Lane, Session};
use crate::error::SendError;
use crate::transfer::{
    Digest, Mode, TransferConfig, TransferEvent, TransferId, TransferIo, Transfers,
};
use crate::wire::Message;
use crate::ErrorCode;

/// What the transfers of one session may touch: the output lanes and the event queue.
pub(crate) struct SessionIo<'a> {
    control: &'a mut Lane,
    data: &'a mut Option<Box<Lane>>,
    events: &'a mut VecDeque<Event>,
    last_tx: &'a mut Instant,
    now: Instant,
    peer_max_frame: u32,
}

impl TransferIo for SessionIo<'_> {
    fn now(&self) -> Instant {
        self.now
    }

    fn peer_max_frame(&self) -> u32 {
        self.peer_max_frame
    }

    fn control(&mut self, msg: &Message) {
        self.control.push(msg);
        *self.last_tx = self.now;
    }

    fn control_len(&self) -> usize {
        self.control.len()
    }

    fn data(&mut self, msg: &Message) {
        self.data.get_or_insert_with(Box::default).push(msg);
        *self.last_tx = self.now;
    }

    fn data_len(&self) -> usize {
        Lane::len_of(self.data)
    }

    fn event(&mut self, ev: TransferEvent) {
        self.events.push_back(Event::Transfer(ev));
    }
}

/// The transfers of a session together with their settings and the session's output,
/// borrowed at once.
pub(crate) struct Outbox<'a> {
    pub(crate) transfers: &'a mut Transfers,
    pub(crate) cfg: &'a TransferConfig,
    pub(crate) io: SessionIo<'a>,
}

impl Session {
    pub(crate) fn outbox(&mut self) -> Outbox<'_> {
        Outbox {
            transfers: &mut self.transfers,
            cfg: &self.config.transfer,
            io: SessionIo {
                control: &mut self.control,
                data: &mut self.data,
                events: &mut self.events,
                last_tx: &mut self.last_tx,
                now: self.now,
                peer_max_frame: self.peer_max_frame,
            },
        }
    }

    /// The outbox of an open session, for a command.
    fn open_outbox(&mut self) -> Result<Outbox<'_>, SendError> {
        if !self.is_open() {
            return Err(SendError::NotOpen);
        }
        Ok(self.outbox())
    }
}

/// File transfer commands (spec §7). All of them return [`SendError::NotOpen`] on a session
/// that is not open, and [`SendError::Invalid`] for an id in the wrong state.
impl Session {
    /// Offers a file of `size` bytes to `to` (a peer's name; empty for the server itself).
    /// `name` is reduced to a safe base name first. Returns the transfer id.
    pub fn offer_file(
        &mut self,
        to: &str,
        name: &str,
        size: u64,
        media_type: &str,
    ) -> Result<TransferId, SendError> {
        self.offer(to, name, size, media_type, Mode::Local)
    }

    /// Like [`Session::offer_file`] with a [`Mode`]: the hub offers with [`Mode::Relay`] on
    /// the receiver's connection.
    pub fn offer(
        &mut self,
        to: &str,
        name: &str,
        size: u64,
        media_type: &str,
        mode: Mode,
    ) -> Result<TransferId, SendError> {
        self.offer_numbered(None, to, name, size, media_type, mode)
    }

    /// Like [`Session::offer`] with the id chosen by the caller: `Some(id)` must have this
    /// side's parity (spec §7.1) and be at least the next id the session would pick, so ids
    /// stay unique and increasing on the connection; later offers continue above it. The hub
    /// numbers every offer it makes from one server-wide counter this way, so that a relayed
    /// transfer has one number for everyone (spec §10 rule 8). `None` picks the next id.
    pub fn offer_numbered(
        &mut self,
        id: Option<TransferId>,
        to: &str,
        name: &str,
        size: u64,
        media_type: &str,
        mode: Mode,
    ) -> Result<TransferId, SendError> {
        let out = self.open_outbox()?;
        if !to.is_empty() {
            crate::name::validate_name(to).map_err(SendError::BadName)?;
        }
        let Outbox {
            transfers,
            cfg,
            mut io,
        } = out;
        transfers.offer(id, to, name, size, media_type, mode, cfg, &mut io)
    }

    /// Accepts an offer from `offset` (0, or the length of a partial file kept from an
    /// earlier attempt). With a non-zero offset, `accept` goes out at once with no credit and
    /// the driver is asked (by [`TransferEvent::Read`]) to read the kept bytes once, so the
    /// digest covers the whole file; credit follows when the last kept byte is read. The
    /// sender hashes its own prefix in the meantime.
    pub fn accept_offer(&mut self, id: TransferId, offset: u64) -> Result<(), SendError> {
        self.accept_with(id, offset, Mode::Local)
    }

    /// Like [`Session::accept_offer`] with a [`Mode`] (the hub accepts with
    /// [`Mode::Relay`]).
    pub fn accept_with(
        &mut self,
        id: TransferId,
        offset: u64,
        mode: Mode,
    ) -> Result<(), SendError> {
        let Outbox {
            transfers,
            cfg,
            mut io,
        } = self.open_outbox()?;
        transfers.accept(id, offset, mode, cfg, &mut io)
    }

    /// Declines an offer.
    pub fn reject_offer(
        &mut self,
        id: TransferId,
        code: ErrorCode,
        reason: &str,
    ) -> Result<(), SendError> {
        let mut out = self.open_outbox()?;
        out.transfers.reject(id, code, reason, &mut out.io)
    }

    /// Abandons a transfer in either direction at any time.
    pub fn cancel_transfer(
        &mut self,
        id: TransferId,
        code: ErrorCode,
        reason: &str,
    ) -> Result<(), SendError> {
        let mut out = self.open_outbox()?;
        out.transfers.cancel_known(id, code, reason, &mut out.io)
    }

    /// Answers a [`TransferEvent::Read`] with exactly the bytes asked for. An answer for a
    /// transfer that ended meanwhile (its `Finished` event may still be queued behind the
    /// `Read`) is ignored.
    pub fn provide_data(
        &mut self,
        id: TransferId,
        offset: u64,
        data: Bytes,
    ) -> Result<(), SendError> {
        let Outbox {
            transfers,
            cfg,
            mut io,
        } = self.open_outbox()?;
        transfers.provide(id, offset, data, cfg, &mut io)
    }

    /// The driver could not read the file: the transfer fails with `source-failed` (sending)
    /// or `storage-failed` (a receiver's kept partial file).
    pub fn read_failed(&mut self, id: TransferId, reason: &str) -> Result<(), SendError> {
        let code = self.transfers.read_failure_code(id);
        self.cancel_transfer(id, code, reason)
    }

    /// Reports that `len` more received bytes are written, which returns credit to the
    /// sender and, after the last byte, lets the digest verdict go out. Data events can
    /// still be queued when a transfer ends (cancelled, peer lost): write them (a resume needs
    /// them); their reports, for a transfer that ended recently, are ignored (`Ok`).
    pub fn data_written(&mut self, id: TransferId, len: u64) -> Result<(), SendError> {
        let Outbox {
            transfers,
            cfg,
            mut io,
        } = self.open_outbox()?;
        transfers.written(id, len, cfg, &mut io)
    }

    /// The driver could not write: the transfer fails with `storage-failed`; keep what was
    /// written for a later resume.
    pub fn write_failed(&mut self, id: TransferId, reason: &str) -> Result<(), SendError> {
        self.cancel_transfer(id, ErrorCode::StorageFailed, reason)
    }

    /// Relay senders: the original sender's digest, from [`TransferEvent::SenderDone`] on the
    /// other connection. `done` goes out once every byte has been provided.
    pub fn relay_done(&mut self, id: TransferId, digest: Digest) -> Result<(), SendError> {
        let mut out = self.open_outbox()?;
        out.transfers.relay_done(id, digest, &mut out.io)
    }

    /// Relay receivers: the final receiver's verdict, from [`TransferEvent::Finished`] on the
    /// other connection, sent back to the original sender as `complete` or `failed`.
    pub fn relay_outcome(
        &mut self,
        id: TransferId,
        result: Result<Digest, (ErrorCode, &str)>,
    ) -> Result<(), SendError> {
        let mut out = self.open_outbox()?;
        out.transfers.relay_outcome(id, result, &mut out.io)
    }
}
