//! File transfers through the hub: relays between two clients, and the transfers of the
//! server's own participant.

use bytes::Bytes;

use super::relay::{End, Relay};
use super::{ConnId, FileHandle, Hub, HubError, HubEvent};
use crate::session::SendError;
use crate::transfer::{IncomingOffer, Mode, TransferEvent};
use crate::ErrorCode;

impl Hub {
    // ----- the server participant's transfers ---------------------------------------------

    /// Offers a file of `size` bytes to the peer called `to`. The transfer then reports
    /// through [`HubEvent::Transfer`] with the returned handle (`Accepted`, `Read` →
    /// [`Hub::provide_data`], `Progress`, `Finished`).
    pub fn offer_file(
        &mut self,
        to: &str,
        name: &str,
        size: u64,
        media_type: &str,
    ) -> Result<FileHandle, HubError> {
        let conn = self.lookup(to)?;
        let peer = self
            .peer_name(conn)
            .cloned()
            .ok_or_else(|| HubError::UnknownPeer(to.to_owned()))?;
        let c = self.conns.get_mut(&conn).ok_or(HubError::NoSuchTransfer)?;
        // The offer's peer field is empty: it comes from the server itself (spec §7.1).
        let id = c.session.offer_numbered(
            Some(self.next_offer_id),
            "",
            name,
            size,
            media_type,
            Mode::Local,
        )?;
        self.next_offer_id = id.saturating_add(2);
        let handle = FileHandle { conn, id };
        self.own.insert(handle, peer);
        self.touch(conn);
        self.run();
        Ok(handle)
    }

    /// Accepts a file offered to the server ([`HubConfig::inbox`](super::HubConfig::inbox))
    /// from `offset` (non-zero to resume a kept partial file).
    pub fn accept_offer(&mut self, h: FileHandle, offset: u64) -> Result<(), HubError> {
        self.own_command(h, |s| s.accept_offer(h.id, offset))
    }

    /// Declines a file offered to the server (`rejected`).
    pub fn reject_offer(&mut self, h: FileHandle, reason: &str) -> Result<(), HubError> {
        self.own_command(h, |s| s.reject_offer(h.id, ErrorCode::Rejected, reason))
    }

    /// Abandons one of the server's transfers (`cancelled`).
    pub fn cancel_transfer(&mut self, h: FileHandle, reason: &str) -> Result<(), HubError> {
        self.own_command(h, |s| s.cancel_transfer(h.id, ErrorCode::Cancelled, reason))
    }

    /// Answers a `Read` of one of the server's transfers with exactly the bytes asked for.
    pub fn provide_data(
        &mut self,
        h: FileHandle,
        offset: u64,
        data: Bytes,
    ) -> Result<(), HubError> {
        self.own_command(h, |s| s.provide_data(h.id, offset, data))
    }

    /// The server could not read the file it sends (or its kept partial file).
    pub fn read_failed(&mut self, h: FileHandle, reason: &str) -> Result<(), HubError> {
        self.own_command(h, |s| s.read_failed(h.id, reason))
    }

    /// `len` more received bytes of a file sent to the server are written.
    pub fn data_written(&mut self, h: FileHandle, len: u64) -> Result<(), HubError> {
        self.own_command(h, |s| s.data_written(h.id, len))
    }

    /// The server could not write a received file (`storage-failed`).
    pub fn write_failed(&mut self, h: FileHandle, reason: &str) -> Result<(), HubError> {
        self.own_command(h, |s| s.write_failed(h.id, reason))
    }

    fn own_command(
        &mut self,
        h: FileHandle,
        f: impl FnOnce(&mut crate::session::Session) -> Result<(), SendError>,
    ) -> Result<(), HubError> {
        if !self.own.contains_key(&h) {
            return Err(HubError::NoSuchTransfer);
        }
        let c = self
            .conns
            .get_mut(&h.conn)
            .ok_or(HubError::NoSuchTransfer)?;
        let result = f(&mut c.session);
        self.touch(h.conn);
        self.run();
        result.map_err(HubError::Send)
    }

    // ----- events -------------------------------------------------------------------------

    pub(super) fn on_transfer(&mut self, conn: ConnId, ev: TransferEvent) {
        if let TransferEvent::Offered(offer) = ev {
            return self.on_offer(conn, offer);
        }
        let h = FileHandle { conn, id: ev.id() };
        if let Some(peer) = self.own.get(&h).cloned() {
            if matches!(ev, TransferEvent::Finished { .. }) {
                self.own.remove(&h);
            }
            self.emit(HubEvent::Transfer {
                handle: h,
                peer,
                event: ev,
            });
            return;
        }
        // Anything else belongs to a relay, or to one that already ended (ignored).
        if let Some((source, end)) = self.relays.find(h) {
            match end {
                End::Source => self.on_source_event(source, ev),
                End::Sink => self.on_sink_event(source, ev),
            }
        }
    }

    /// A client offers a file: to the server's participant, or on to another client.
    fn on_offer(&mut self, conn: ConnId, offer: IncomingOffer) {
        let h = FileHandle { conn, id: offer.id };
        let Some(from) = self.peer_name(conn).cloned() else {
            return;
        };
        if self.is_server_name(&offer.peer) {
            if !self.config.inbox {
                return self.cancel_end(h, ErrorCode::StorageFailed, "the server has no inbox");
            }
            self.own.insert(h, from.clone());
            self.emit(HubEvent::Transfer {
                handle: h,
                peer: from,
                event: TransferEvent::Offered(offer),
            });
            return;
        }
        let Ok(target) = self.lookup(&offer.peer) else {
            let reason = if self.is_remote(&offer.peer) {
                format!(
                    "{} is on another server of this cluster, and files do not cross servers",
                    offer.peer
                )
            } else {
                format!("no peer named {} is online", offer.peer)
            };
            return self.cancel_end(h, ErrorCode::UnknownPeer, &reason);
        };
        // An offer, like any line, comes after the news of its sender's arrival (and the
        // sender hears of the receiver before the answer that names it).
        self.tell_pending(target);
        self.tell_pending(conn);
        let Some(t) = self.conns.get_mut(&target) else {
            return;
        };
        let to = t
            .session
            .name()
            .cloned()
            .unwrap_or_else(|| offer.peer.clone());
        let sent = t.session.offer_numbered(
            Some(self.next_offer_id),
            &from,
            &offer.name,
            offer.size,
            &offer.media_type,
            Mode::Relay,
        );
        match sent {
            Ok(id) => {
                self.next_offer_id = id.saturating_add(2);
                let sink = FileHandle { conn: target, id };
                // The sender learns the number the receiver sees (an extension: a version 1
                // client ignores it). Failing to queue it changes nothing for the transfer.
                if let Some(c) = self.conns.get_mut(&conn) {
                    let _ = c.session.send_relayed(offer.id, &to, id);
                }
                self.touch(conn);
                self.relays
                    .insert(Relay::new(h, sink, from, to, offer.size));
                self.touch(target);
            }
            Err(e) => {
                let reason = format!("{to} cannot take the file now: {e}");
                self.cancel_end(h, ErrorCode::LimitExceeded, &reason);
            }
        }
    }

    /// An event of the transfer on the sender's connection.
    fn on_source_event(&mut self, source: FileHandle, ev: TransferEvent) {
        match ev {
            TransferEvent::Data { offset, data, .. } => {
                let Some(relay) = self.relays.get_mut(source) else {
                    return;
                };
                if relay.push(offset, data) {
                    self.relay_peak = self.relay_peak.max(relay.buffered());
                    self.pump(source);
                } else {
                    self.fail_relay(source, ErrorCode::ChunkOutOfRange, "relay out of step");
                }
            }
            TransferEvent::SenderDone { digest, .. } => {
                let Some(sink) = self.relays.get_mut(source).map(|r| r.sink) else {
                    return;
                };
                if !self.session_step(sink, |s| s.relay_done(sink.id, digest)) {
                    self.fail_relay(source, ErrorCode::PeerLost, "the receiver went away");
                }
            }
            TransferEvent::Finished { result, .. } => {
                let Some(relay) = self.relays.remove(source) else {
                    return;
                };
                self.rebalance_relays();
                let Err(failure) = result else {
                    // The verdict went back to the sender: the relay is complete.
                    return;
                };
                let (code, reason) = if self.is_closed(source.conn) {
                    (ErrorCode::PeerLost, format!("{} went away", relay.from))
                } else {
                    (failure.code, failure.reason.to_string())
                };
                self.cancel_end(relay.sink, code, &reason);
            }
            TransferEvent::Accepted { .. }
            | TransferEvent::Read { .. }
            | TransferEvent::Progress(_)
            | TransferEvent::Relayed { .. }
            | TransferEvent::Offered(_) => {}
        }
    }

    /// An event of the transfer on the receiver's connection.
    fn on_sink_event(&mut self, source: FileHandle, ev: TransferEvent) {
        match ev {
            TransferEvent::Accepted { offset, .. } => {
                let Some(relay) = self.relays.get_mut(source) else {
                    return;
                };
                relay.start_at(offset);
                // The sender's side starts (granting its first window) once that fits the
                // relay budget; relays accepted earlier go first.
                self.relays.pending.push_back(source);
                self.rebalance_relays();
            }
            TransferEvent::Read { offset, len, .. } => {
                let Some(relay) = self.relays.get_mut(source) else {
                    return;
                };
                if relay.want(offset, len) {
                    self.pump(source);
                } else {
                    self.fail_relay(source, ErrorCode::ChunkOutOfRange, "relay out of step");
                }
            }
            TransferEvent::Finished { result, .. } => {
                let Some(relay) = self.relays.remove(source) else {
                    return;
                };
                self.rebalance_relays();
                let gone = format!("{} went away", relay.to);
                let sink_closed = self.is_closed(relay.sink.conn);
                let Some(c) = self.conns.get_mut(&source.conn) else {
                    return;
                };
                let outcome = match &result {
                    Ok(digest) => Ok(*digest),
                    Err(_) if sink_closed => Err((ErrorCode::PeerLost, gone.as_str())),
                    Err(f) => Err((f.code, f.reason.as_str())),
                };
                // After `done` the sender waits for a verdict; before it, the transfer is
                // simply cancelled (or its offer rejected).
                if c.session.relay_outcome(source.id, outcome).is_err() {
                    let (code, reason) = match outcome {
                        Ok(_) => (ErrorCode::PeerLost, "the relay lost its state"),
                        Err(e) => e,
                    };
                    let _ = c.session.cancel_transfer(source.id, code, reason);
                }
                self.touch(source.conn);
            }
            TransferEvent::Data { .. }
            | TransferEvent::SenderDone { .. }
            | TransferEvent::Progress(_)
            | TransferEvent::Relayed { .. }
            | TransferEvent::Offered(_) => {}
        }
    }

    /// Hands every piece that is both received and asked for to the receiver's session,
    /// returning credit to the sender for each.
    fn pump(&mut self, source: FileHandle) {
        loop {
            let Some(relay) = self.relays.get_mut(source) else {
                return;
            };
            let sink = relay.sink;
            let Some(piece) = relay.take() else {
                return;
            };
            relay.unreported += piece.data.len() as u64;
            if !relay.withheld {
                relay.withheld = true;
                self.relays.withheld.push_back(source);
            }
            if !self.session_step(sink, |s| s.provide_data(sink.id, piece.offset, piece.data)) {
                return self.fail_relay(source, ErrorCode::PeerLost, "the relay lost a side");
            }
            // Handing on shrank what this relay may hold; the bytes are reported written to
            // the sender's side (which returns credit) as the budget allows.
            self.recount_relay(source);
            self.rebalance_relays();
        }
    }

    /// Bytes of relayed file data the hub may come to hold across all relays: what is
    /// queued plus the credit their senders still have. It stays within
    /// [`HubConfig::relay_budget`](super::HubConfig::relay_budget) (or one transfer window,
    /// if that is larger); [`Hub::relay_buffered`] is at most this.
    pub fn relay_committed(&self) -> usize {
        self.relays.committed() as usize
    }

    /// Relays whose receiver accepted and which wait for room in the relay budget to start.
    pub fn relay_waiting(&self) -> usize {
        self.relays
            .pending
            .iter()
            .filter(|&&s| self.relays.find(s).is_some())
            .count()
    }

    fn relay_window(&self) -> u64 {
        u64::from(self.config.session.transfer.window.max(1))
    }

    fn relay_budget(&self) -> u64 {
        (self.config.relay_budget as u64).max(self.relay_window())
    }

    /// Counts the potential of relay `source` afresh: its queue plus its sender's unused
    /// credit (read from the sender's side of the transfer).
    fn recount_relay(&mut self, source: FileHandle) {
        let Some(relay) = self.relays.get_mut(source) else {
            return;
        };
        let queued = relay.buffered() as u64;
        let credit = self
            .conns
            .get_mut(&source.conn)
            .and_then(|c| c.session.outbox().transfers.credit_left(source.id))
            .unwrap_or(0);
        self.relays.set_potential(source, queued + credit);
    }

    /// Starts waiting relays and reports handed-on bytes, as far as the relay budget allows
    /// (see the `relay` module docs).
    fn rebalance_relays(&mut self) {
        let budget = self.relay_budget();
        let window = self.relay_window();
        // Relays waiting to start come first.
        let mut reserve = 0;
        while let Some(&source) = self.relays.pending.front() {
            let Some(relay) = self.relays.get_mut(source) else {
                self.relays.pending.pop_front();
                continue;
            };
            let need = relay.first_window(window);
            let offset = relay.handed();
            if self.relays.committed() + need > budget {
                // Room is kept for it: reports below may not use it.
                reserve = need;
                break;
            }
            self.relays.pending.pop_front();
            if let Some(relay) = self.relays.get_mut(source) {
                relay.admitted = true;
            }
            if !self.session_step(source, |s| s.accept_with(source.id, offset, Mode::Relay)) {
                self.fail_relay(source, ErrorCode::PeerLost, "the sender went away");
                continue;
            }
            self.recount_relay(source);
        }
        for _ in 0..self.relays.withheld.len() {
            let room = budget.saturating_sub(self.relays.committed() + reserve);
            if room == 0 {
                // Nothing can be reported until handing on frees some: the rest wait (and
                // a hub with many waiting relays does no work for them per piece).
                break;
            }
            let Some(source) = self.relays.withheld.pop_front() else {
                break;
            };
            let Some(relay) = self.relays.get_mut(source) else {
                continue;
            };
            relay.withheld = false;
            let u = relay.unreported;
            let p = relay.potential();
            // The most that may be reported: all of it if that fits, else as much as keeps
            // the relay's potential within the room.
            let k = if relay.potential_after_report(window, u) <= p + room {
                u
            } else {
                (room + p + u).saturating_sub(window).min(u)
            };
            if k > 0 {
                relay.unreported -= k;
                if !self.session_step(source, |s| s.data_written(source.id, k)) {
                    self.fail_relay(source, ErrorCode::PeerLost, "the relay lost a side");
                    continue;
                }
                self.recount_relay(source);
            }
            if let Some(relay) = self.relays.get_mut(source) {
                if relay.unreported > 0 && !relay.withheld {
                    relay.withheld = true;
                    self.relays.withheld.push_back(source);
                }
            }
        }
    }

    /// Ends a relay from the hub's side: both ends are cancelled with `code`.
    fn fail_relay(&mut self, source: FileHandle, code: ErrorCode, reason: &str) {
        let Some(relay) = self.relays.remove(source) else {
            return;
        };
        self.cancel_end(relay.source, code, reason);
        self.cancel_end(relay.sink, code, reason);
        // Its share of the relay budget is free for others.
        self.rebalance_relays();
    }

    /// Cancels (or, for an unanswered offer to us, rejects) one transfer end, if it still
    /// runs.
    fn cancel_end(&mut self, h: FileHandle, code: ErrorCode, reason: &str) {
        if let Some(c) = self.conns.get_mut(&h.conn) {
            // An error means it ended already (or its connection closed): nothing to tell.
            let _ = c.session.cancel_transfer(h.id, code, reason);
            self.touch(h.conn);
        }
    }

    /// Runs `step` on the session of `h`'s connection and wakes its writer. Whether the
    /// connection was there and the session took the step.
    fn session_step(
        &mut self,
        h: FileHandle,
        step: impl FnOnce(&mut crate::session::Session) -> Result<(), SendError>,
    ) -> bool {
        let took = self
            .conns
            .get_mut(&h.conn)
            .is_some_and(|c| step(&mut c.session).is_ok());
        self.touch(h.conn);
        took
    }

    fn is_closed(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .map_or(true, |c| c.session.is_closed())
    }
}
