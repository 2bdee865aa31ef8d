//! What a session reports to the application.

use bytes::Bytes;

use crate::transfer::TransferEvent;
use crate::wire::{Hello, MemberKind, PresenceKind, RoomInfo, Utf8, Welcome};
use crate::ErrorCode;

/// A client's `login` (spec §6.2), held by the server's session from its arrival until
/// `hello` and then taken whole by whoever judges it ([`crate::session::Session::take_login`]).
/// Its secret never shows in `Debug` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// How the secret is to be checked ([`crate::wire::login_method`]).
    pub method: u8,
    /// The password (or, later, a token).
    pub secret: crate::wire::Secret,
}

/// An event for the application, pulled with [`crate::session::Session::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Client: the server accepted our name.
    Connected(Welcome),
    /// Client: the server's session token (spec §6.2), right after `welcome` when we logged
    /// in: log in with it next time (`login` method 2) instead of the password.
    Token(crate::wire::Secret),
    /// Server: a client asked to join. Answer with
    /// [`crate::session::Session::accept_hello`] or [`crate::session::Session::refuse`].
    Hello(Hello),
    /// Chat text. From a client: `peer` is the addressee (empty: everyone). From the server:
    /// `peer` is the sender and `private` says whether it was addressed to us alone.
    Text {
        /// Addressee or sender (see above).
        peer: Utf8,
        /// Addressed to one peer.
        private: bool,
        /// The message.
        text: Utf8,
    },
    /// Binary data with a media type; `peer` as for [`Event::Text`].
    Blob {
        /// Addressee or sender.
        peer: Utf8,
        /// Addressed to one peer.
        private: bool,
        /// Such as `image/png`.
        media_type: Utf8,
        /// The bytes, zero-copy from the receive buffer.
        data: Bytes,
    },
    /// A peer joined or left.
    Presence {
        /// Joined or left.
        kind: PresenceKind,
        /// Who.
        name: Utf8,
    },
    /// Server: a client's request about rooms (spec §6.10).
    RoomRequest(RoomRequest),
    /// Client: news about rooms (spec §6.10).
    Room(RoomEvent),
    /// Client: the answer to [`crate::session::Session::request_peer_list`].
    PeerList(Vec<Utf8>),
    /// Server: the client asked who is online; answer with a `peer-list` message.
    PeerListRequested,
    /// The peer reported a problem that does not end the connection (an unknown addressee …).
    PeerError {
        /// What.
        code: ErrorCode,
        /// Detail.
        text: Utf8,
    },
    /// A file transfer moved (see [`crate::transfer`]).
    Transfer(TransferEvent),
    /// The session ended; it is always the last event. Transmit what is still queued, then
    /// close the connection.
    Closed(Closed),
}

/// What a client asks of the server about rooms (spec §6.10): the server side of
/// [`Event::RoomRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomRequest {
    /// `join`: enter the room, creating it if allowed.
    Join(Utf8),
    /// `leave`: leave the room.
    Leave(Utf8),
    /// `room-text`: say `text` to the room's other members.
    Text {
        /// The room.
        room: Utf8,
        /// The message.
        text: Utf8,
    },
    /// `room-list-request`: which rooms exist.
    List,
}

/// What the server tells a client about rooms (spec §6.10): the client side of
/// [`Event::Room`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// `room-text`: `peer` said `text` in `room`.
    Text {
        /// The room.
        room: Utf8,
        /// The sender, stamped by the server.
        peer: Utf8,
        /// The message.
        text: Utf8,
    },
    /// `member`: `name` joined, left or was removed from `room` (about ourselves: our
    /// `leave` was done, or the operator removed us).
    Member {
        /// What happened.
        kind: MemberKind,
        /// In which room.
        room: Utf8,
        /// To whom.
        name: Utf8,
    },
    /// `room-members`: we are in `room` now (after our `join`, or the default room after
    /// `welcome`); these are its members, ourselves last.
    Members {
        /// The room.
        room: Utf8,
        /// Its members.
        names: Vec<Utf8>,
    },
    /// `room-list`: the rooms on the server, largest first.
    List(Vec<RoomInfo>),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// This side closed: a goodbye by the application, a protocol error in the peer's bytes,
    /// or a timeout. The peer was told `code` (best effort).
    Local {
        /// Why.
        code: ErrorCode,
        /// Detail.
        reason: Utf8,
    },
    /// The peer closed with goodbye, refused, or a fatal error frame.
    Peer {
        /// Why.
        code: ErrorCode,
        /// The peer's words.
        reason: Utf8,
    },
    /// The byte stream ended without a goodbye (the peer vanished).
    StreamEnded,
}

impl Closed {
    /// The code of the close ([`ErrorCode::Truncated`] for a stream that just ended).
    pub fn code(&self) -> ErrorCode {
        match self {
            Closed::Local { code, .. } | Closed::Peer { code, .. } => *code,
            Closed::StreamEnded => ErrorCode::Truncated,
        }
    }
}
