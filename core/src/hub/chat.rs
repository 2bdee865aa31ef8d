//! Names, presence and chat routing, and the server participant's chat commands.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::rooms::News;
use super::{ConnId, Hub, HubError, HubEvent};
use crate::cluster::Said;
use crate::name::{name_key, validate_name};
use crate::session::{Closed, SendError, Session};
use crate::wire::{Hello, Message, Utf8, MIN_MAX_FRAME};
use crate::ErrorCode;

/// Broadcast frames up to this size (header included) are encoded once and copied to each
/// recipient; larger ones go through [`Session::send`] per recipient, which queues their
/// payload by reference instead of copying it (its lanes copy frames only up to this size).
const ENCODE_ONCE: usize = crate::session::COPY_LIMIT;

impl Said {
    /// The frame a recipient gets, stamped with the true sender.
    pub(super) fn message(&self, from: &Utf8, private: bool) -> Message {
        match self {
            Said::Text(text) => Message::Text {
                peer: from.clone(),
                private,
                text: text.clone(),
            },
            Said::Blob { media_type, data } => Message::Blob {
                peer: from.clone(),
                private,
                media_type: media_type.clone(),
                data: data.clone(),
            },
        }
    }

    /// The same as a room's news, from `from`.
    pub(super) fn news<'a>(&'a self, from: &'a Utf8) -> News<'a> {
        match self {
            Said::Text(text) => News::Text { from, text },
            Said::Blob { media_type, data } => News::Blob {
                from,
                media_type,
                data,
            },
        }
    }

    /// What the server's participant sees.
    pub(super) fn event(self, from: Utf8, private: bool) -> HubEvent {
        match self {
            Said::Text(text) => HubEvent::Text {
                from,
                private,
                text,
            },
            Said::Blob { media_type, data } => HubEvent::Blob {
                from,
                private,
                media_type,
                data,
            },
        }
    }
}

impl Hub {
    /// The server participant's name ([`super::HubConfig::server_name`]).
    pub fn name(&self) -> &str {
        self.server_name.as_str()
    }

    /// The registered peers online, sorted case-insensitively (the server's own participant
    /// is not listed; clients learn its name from `welcome`).
    pub fn who(&self) -> Vec<Utf8> {
        // Sized once (and one more, for a joining client's own name): grown by doubling,
        // the list of thousands would be a chain of large short-lived blocks.
        let mut online = Vec::with_capacity(self.names.len() + 1);
        online.extend(
            self.names
                .values()
                .filter_map(|&c| self.peer_name(c).cloned()),
        );
        self.add_remote_names(&mut online);
        online
    }

    /// Text from the server's participant, stamped with the server's name: to everyone in
    /// the default room (`to` is `None` or empty; [`Hub::say_in`] speaks in another room) or
    /// privately to one peer.
    ///
    /// A recipient whose output queue is full is disconnected as a slow consumer (for a
    /// private message the error is also returned).
    pub fn say(&mut self, to: Option<&str>, text: &str) -> Result<(), HubError> {
        // Every client accepts frames of at least the minimum limit; the text frame adds the
        // peer field (length byte and name) and the flags byte.
        if text.len() + self.server_name.len() + 2 > MIN_MAX_FRAME as usize {
            return Err(HubError::Send(SendError::TooLarge));
        }
        let result = match to.filter(|t| !t.is_empty()) {
            None => {
                self.say_to_default(&Utf8::from(text));
                Ok(())
            }
            Some(name) => {
                let conn = self.lookup(name)?;
                let msg = Message::Text {
                    peer: self.server_name.clone(),
                    private: true,
                    text: Utf8::from(text),
                };
                self.deliver(conn, &msg).map_err(HubError::Send)
            }
        };
        self.run();
        result
    }

    /// Disconnects the peer called `name` with `kicked` and `reason`. The members of every
    /// room it was in see it leave.
    pub fn kick(&mut self, name: &str, reason: &str) -> Result<(), HubError> {
        let conn = self.lookup(name)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session.goodbye(ErrorCode::Kicked, reason);
        }
        self.touch(conn);
        self.run();
        Ok(())
    }

    /// Bans the name `name` until `now + duration`, and kicks its holder if one is online
    /// (with `kicked` and `reason`). Until then a `hello` with that name, or any name with the
    /// same key (case, full-width and look-alike letters folded, spec §6.1), is refused with
    /// `kicked` and a reason that says for how long. The name need not be online: a ban can
    /// come before the next attempt. A second ban of the same name replaces the first.
    pub fn ban(&mut self, now: Instant, name: &str, duration: Duration, reason: &str) {
        // A duration past the end of `Instant` lasts as long as the server.
        let until = now
            .checked_add(duration)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        self.bans.retain(|_, &mut end| end > now);
        self.bans.insert(name_key(name), until);
        if self.lookup(name).is_ok() {
            let _ = self.kick(name, reason);
        }
    }

    /// Lifts the ban of `name` (or of its key); whether there was one still running.
    pub fn unban(&mut self, now: Instant, name: &str) -> bool {
        self.bans
            .remove(&name_key(name))
            .is_some_and(|until| until > now)
    }

    /// When the ban of `name` (or of its key) ends, if it is banned at `now`.
    pub fn banned_until(&self, now: Instant, name: &str) -> Option<Instant> {
        self.bans
            .get(&name_key(name))
            .copied()
            .filter(|&until| until > now)
    }

    /// Says goodbye (`shutdown`, `reason`) to every client. Connections still in their
    /// handshake are refused with `shutdown` when their hello arrives (or end at the
    /// handshake timeout), and so is any connection accepted afterwards. A runtime that
    /// exits waits until every connection [`Hub::is_finished`], or gives up and drops them.
    pub fn shutdown(&mut self, reason: &str) {
        self.shutting_down = true;
        self.cluster_gone();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.session.is_open() {
                c.session.goodbye(ErrorCode::Shutdown, reason);
                self.touch(id);
            }
        }
        self.run();
    }

    // ----- internals ----------------------------------------------------------------------

    /// The connection of a registered peer.
    pub(super) fn lookup(&self, name: &str) -> Result<ConnId, HubError> {
        self.names
            .get(&name_key(name))
            .copied()
            .ok_or_else(|| HubError::UnknownPeer(name.to_owned()))
    }

    /// Whether `name` addresses the server's own participant.
    pub(super) fn is_server_name(&self, name: &str) -> bool {
        name.is_empty() || name_key(name) == name_key(&self.server_name)
    }

    /// Queues `msg` for every connection of `targets`. Failures only concern that one
    /// recipient (see [`Hub::deliver`]): one whose frame limit is too small misses this
    /// message, a full one is dropped.
    ///
    /// A small message is encoded once and shared by every recipient (its bytes are copied
    /// only into a recipient that has other output queued), rather than encoded for each
    /// (with a hundred recipients, encoding was most of the hub's work for a chat line).
    /// Every recipient thus gets the same bytes, which also lets WebSocket gateways render
    /// the line once ([`crate::gateway::RenderCache`]).
    pub(super) fn send_to_all(&mut self, targets: &[ConnId], msg: &Message) {
        let len = msg.encoded_len();
        if len > ENCODE_ONCE {
            for &conn in targets {
                let _ = self.deliver(conn, msg);
            }
        } else {
            let mut frame = BytesMut::with_capacity(len);
            msg.encode(&mut frame);
            let frame = frame.freeze();
            for &conn in targets {
                let _ = self.deliver_with(conn, |session| session.send_frame(&frame));
            }
        }
    }

    /// Queues `msg` for `conn`. A full queue means the client does not read: it is
    /// disconnected with `slow-consumer` and its queued output dropped, so it can never hold
    /// up the others.
    pub(super) fn deliver(&mut self, conn: ConnId, msg: &Message) -> Result<(), SendError> {
        self.deliver_with(conn, |session| session.send(msg))
    }

    /// [`Hub::deliver`] with `send` queuing the message on the session.
    pub(super) fn deliver_with(
        &mut self,
        conn: ConnId,
        send: impl FnOnce(&mut Session) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        // Whatever `conn` is sent comes after the membership news it has still to hear.
        self.tell_pending(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(SendError::NotOpen);
        };
        let result = send(&mut c.session);
        if result == Err(SendError::QueueFull) {
            self.drop_slow_consumer(conn);
        } else {
            self.account(conn);
        }
        self.touch(conn);
        result
    }

    /// A non-fatal `error` frame back to a client.
    pub(super) fn error_to(&mut self, conn: ConnId, code: ErrorCode, text: String) {
        let msg = Message::Error {
            code,
            text: Utf8::from(text),
        };
        // If even this does not fit, the client is dropped as a slow consumer.
        let _ = self.deliver(conn, &msg);
    }

    pub(super) fn on_hello(&mut self, id: ConnId, hello: Hello) {
        let name = hello.name;
        // Without accounts a login is read and ignored; with them it goes to the judge.
        let login = self.conns.get_mut(&id).and_then(|c| c.session.take_login());
        if self.cluster.is_some() && validate_name(&name).is_ok() {
            self.cluster_hello(id, name, login);
            return;
        }
        if self.config.accounts && !self.shutting_down && validate_name(&name).is_ok() {
            self.verifying.insert(id, name.clone());
            self.emit(HubEvent::Verify {
                conn: id,
                name,
                login,
            });
            return;
        }
        drop(login);
        self.admit(id, name);
    }

    /// Admits `id` under `name`, or refuses it (shutdown, invalid, banned, taken, full).
    pub(super) fn admit(&mut self, id: ConnId, name: Utf8) {
        let key = name_key(&name);
        let refusal = if self.shutting_down {
            Some((
                ErrorCode::Shutdown,
                "the server is shutting down".to_owned(),
            ))
        } else if let Err(e) = validate_name(&name) {
            Some((ErrorCode::NameInvalid, e.to_string()))
        } else if let Some(until) = self.banned_until(self.now, &name) {
            // Whole seconds, rounded up: "0 s" would read as no ban at all.
            let left = until.duration_since(self.now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            Some((
                ErrorCode::Kicked,
                format!("the name {name} is banned for another {secs} s"),
            ))
        } else if self.names.contains_key(&key)
            || self.is_server_name(&name)
            || self.is_remote(&name)
        {
            Some((ErrorCode::NameTaken, format!("the name {name} is taken")))
        } else if self.names.len() >= self.config.max_peers {
            Some((ErrorCode::ServerFull, "the server is full".to_owned()))
        } else {
            None
        };
        if refusal.is_none() {
            // `welcome` lists the default room, where the client enters.
            let (count, entries) = self.default_room_listing(&name, false);
            let server = self.server_name.clone();
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let listing = (count, &entries[..]);
            if c.session
                .accept_hello_listed(name.clone(), server, listing)
                .is_ok()
            {
                self.names.insert(key, id);
                self.entered(id, &name);
                let online = self.names.len();
                self.emit(HubEvent::Joined {
                    conn: id,
                    name,
                    online,
                });
                return;
            }
        }
        // Refused, or the welcome would not fit the client's frame limit.
        let (code, reason) = refusal.unwrap_or((
            ErrorCode::ServerFull,
            "too many peers online to list in welcome".to_owned(),
        ));
        if let Some(c) = self.conns.get_mut(&id) {
            c.session.refuse(code, &reason);
        }
        self.emit(HubEvent::Refused {
            conn: id,
            name,
            code,
        });
    }

    pub(super) fn on_text(&mut self, id: ConnId, peer: Utf8, text: Utf8) {
        self.route(id, peer, Said::Text(text));
    }

    pub(super) fn on_blob(&mut self, id: ConnId, peer: Utf8, media_type: Utf8, data: Bytes) {
        self.route(id, peer, Said::Blob { media_type, data });
    }

    /// Delivers chat from `id` addressed to `peer` (empty: everyone).
    fn route(&mut self, id: ConnId, peer: Utf8, said: Said) {
        let Some(from) = self.peer_name(id).cloned() else {
            return;
        };
        if peer.is_empty() {
            // Everyone: the default room. Recipients whose frame limit is too small, or whose
            // queue is full, are not the sender's concern.
            if self.say_in_default(id, &said.news(&from)) {
                self.cluster_say(id, &from, &said);
                self.emit(said.event(from, false));
            }
            return;
        }
        if self.is_server_name(&peer) {
            self.emit(said.event(from, true));
            return;
        }
        let Ok(target) = self.lookup(&peer) else {
            if self.is_remote(&peer) {
                self.cluster_private(id, &peer, &from, &said);
                return;
            }
            self.error_to(
                id,
                ErrorCode::UnknownPeer,
                format!("no peer named {peer} is online"),
            );
            return;
        };
        if self.deliver(target, &said.message(&from, true)) == Err(SendError::TooLarge) {
            let text = format!("the message is too large for {peer}");
            self.error_to(id, ErrorCode::LimitExceeded, text);
        }
    }

    pub(super) fn on_list_request(&mut self, id: ConnId) {
        let names = self.who();
        let _ = self.deliver(id, &Message::PeerList { names });
    }

    /// A session ended: release its name and tell everyone else.
    pub(super) fn on_closed(&mut self, id: ConnId, how: Closed) {
        self.verifying.remove(&id);
        self.cluster_closed(id);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.gone {
            return;
        }
        c.gone = true;
        let Some(name) = c.session.name().cloned() else {
            return;
        };
        let key = name_key(&name);
        if self.names.get(&key) == Some(&id) {
            self.names.remove(&key);
        }
        self.departed(id, &name);
        let reason = match how {
            Closed::Local { code, reason } | Closed::Peer { code, reason } if reason.is_empty() => {
                code.to_string()
            }
            Closed::Local { code, reason } | Closed::Peer { code, reason } => {
                format!("{code}: {reason}")
            }
            Closed::StreamEnded => "the connection was lost".to_owned(),
        };
        let online = self.names.len();
        self.emit(HubEvent::Left {
            conn: id,
            name,
            reason,
            online,
        });
    }
}
