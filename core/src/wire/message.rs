//! Messages (spec §5–§6): the body layout of every frame type, decoding and encoding.
//!
//! Field notation used in the comments: `u8/u16/u32/u64` big-endian integers, `str8`/`str16`
//! a UTF-8 string after a 1-/2-byte length, `rest` all remaining body bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{encode_header, Frame, HEADER_LEN};
use super::reader::Reader;
use super::Utf8;
use crate::{ErrorCode, ProtocolError};

/// Bytes in a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// Frame type bytes (spec §5, the type registry).
pub mod frame_type {
    /// `hello`: client → server, first frame.
    pub const HELLO: u8 = 0x01;
    /// `welcome`: server → client, the name was accepted.
    pub const WELCOME: u8 = 0x02;
    /// `refused`: server → client, the name was not accepted; the server then closes.
    pub const REFUSED: u8 = 0x03;
    /// `login`: client → server, after the preamble and before `hello`: proves the right
    /// to the account name `hello` then asks for (spec §6.2).
    pub const LOGIN: u8 = 0x04;
    /// `token`: server → client, right after `welcome` to a client that logged in: a
    /// session token to log in with next time (`login` method 2, spec §6.2).
    pub const TOKEN: u8 = 0x05;
    /// `text`: chat text, to everyone or to one peer.
    pub const TEXT: u8 = 0x10;
    /// `blob`: binary data with a media type (an image, a video frame).
    pub const BLOB: u8 = 0x11;
    /// `room-text`: chat text in a room (spec §6.10; only with the `ROOMS` capability).
    pub const ROOM_TEXT: u8 = 0x12;
    /// `presence`: a peer joined or left.
    pub const PRESENCE: u8 = 0x20;
    /// `list-request`: client asks who is online.
    pub const LIST_REQUEST: u8 = 0x21;
    /// `peer-list`: the names online.
    pub const PEER_LIST: u8 = 0x22;
    /// `join`: client → server, enter a room (creating it if allowed).
    pub const JOIN: u8 = 0x23;
    /// `leave`: client → server, leave a room.
    pub const LEAVE: u8 = 0x24;
    /// `member`: server → client, someone joined, left or was removed from a room.
    pub const MEMBER: u8 = 0x25;
    /// `room-members`: server → client, a room's members (the answer to `join`).
    pub const ROOM_MEMBERS: u8 = 0x26;
    /// `room-list-request`: client → server, which rooms exist.
    pub const ROOM_LIST_REQUEST: u8 = 0x27;
    /// `room-list`: server → client, the rooms and how many members each has.
    pub const ROOM_LIST: u8 = 0x28;
    /// `ping`: heartbeat probe.
    pub const PING: u8 = 0x30;
    /// `pong`: heartbeat answer.
    pub const PONG: u8 = 0x31;
    /// `error`: something went wrong; fatal codes close the connection.
    pub const ERROR: u8 = 0x3E;
    /// `goodbye`: orderly close.
    pub const GOODBYE: u8 = 0x3F;
    /// `offer`: a file is offered.
    pub const OFFER: u8 = 0x40;
    /// `accept`: the receiver takes the file from an offset, granting initial credit.
    pub const ACCEPT: u8 = 0x41;
    /// `reject`: the receiver declines.
    pub const REJECT: u8 = 0x42;
    /// `chunk`: file data at an offset.
    pub const CHUNK: u8 = 0x43;
    /// `credit`: the receiver allows more bytes.
    pub const CREDIT: u8 = 0x44;
    /// `done`: the sender has sent every byte; carries the SHA-256 of the whole file.
    pub const DONE: u8 = 0x45;
    /// `cancel`: either side abandons the transfer.
    pub const CANCEL: u8 = 0x46;
    /// `complete`: the receiver verified the digest.
    pub const COMPLETE: u8 = 0x47;
    /// `failed`: the receiver could not finish (digest mismatch, storage failure).
    pub const FAILED: u8 = 0x48;
    /// `relayed` (extension): server → client, "your offer `id` reaches `peer` as transfer
    /// `relay_id`" (spec §10 rule 8). See [`Relayed`](super::Relayed).
    pub const RELAYED: u8 = 0x80;
    /// Types at or above this value are extensions: a receiver that does not know one ignores
    /// it instead of failing.
    pub const FIRST_EXTENSION: u8 = 0x80;
}

/// Capability bits announced in `hello` and `welcome`.
pub mod capability {
    /// The side takes part in file transfers.
    pub const FILES: u32 = 1 << 0;
    /// The side accepts `blob` messages.
    pub const BLOBS: u32 = 1 << 1;
    /// The side speaks rooms (protocol 1.1, spec §6.10): `join`, `leave`, `room-text`,
    /// `member`, `room-members`, `room-list-request`, `room-list`. Both sides must announce
    /// it before either sends one of them.
    pub const ROOMS: u32 = 1 << 2;
    /// Everything this implementation supports. A client that announces it speaks rooms:
    /// its loop must handle their events (see [`DEFAULT`]).
    pub const ALL: u32 = FILES | BLOBS | ROOMS;
    /// What a session announces unless told otherwise: everything but [`ROOMS`]. Rooms change
    /// what a client hears (the default room's chat and members arrive as `room-text` and
    /// `member` instead of `text` and `presence`), so a client written for 1.0 keeps working
    /// until it opts in.
    pub const DEFAULT: u32 = FILES | BLOBS;
}

/// The `method` values of `login` (spec §6.2).
pub mod login_method {
    /// The secret is the account's password.
    pub const PASSWORD: u8 = 1;
    /// Reserved for a session token (a later version); a server that does not take it
    /// answers `auth-failed`, as for any method it does not know.
    pub const TOKEN: u8 = 2;
}

/// The most bytes a `login`'s secret may have; a longer one is `malformed`.
pub const MAX_SECRET: usize = 1024;

/// The secret of a `login` (a password): its `Debug` output never shows it, so that it
/// cannot reach a log by way of a message or an event printed whole. Whoever judges the
/// login takes it with [`Secret::expose`] and drops it once judged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Utf8);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: &str) -> Secret {
        Secret(Utf8::from(secret))
    }

    /// The secret itself, for whoever verifies it (never for a log).
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `flags` bit of `text` and `blob`: the message was addressed to one peer only.
const FLAG_PRIVATE: u8 = 1;

/// `hello` (0x01): `name: str8, capabilities: u32, max_frame: u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The name the client asks for.
    pub name: Utf8,
    /// [`capability`] bits.
    pub capabilities: u32,
    /// The largest frame body the client accepts.
    pub max_frame: u32,
}

/// `welcome` (0x02): `name: str8, server: str8, heartbeat_ms: u32, timeout_ms: u32,
/// max_frame: u32, capabilities: u32, count: u32, count × name: str8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The client's name as registered.
    pub name: Utf8,
    /// The name of the server's own participant.
    pub server: Utf8,
    /// How long a side may stay silent before it sends `ping`, in milliseconds.
    pub heartbeat_ms: u32,
    /// How long without receiving anything before the peer is declared dead, in milliseconds.
    pub timeout_ms: u32,
    /// The largest frame body the server accepts.
    pub max_frame: u32,
    /// [`capability`] bits of the server.
    pub capabilities: u32,
    /// Who is online, the client itself included.
    pub online: Vec<Utf8>,
}

/// `offer` (0x40): `id: u64, peer: str8, size: u64, name: str16, media_type: str8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Transfer id, chosen by the offering side (spec §7.1: its low bit says which side).
    pub id: u64,
    /// Client → server: the addressee (empty for the server itself); server → client: the
    /// sender, stamped by the server.
    pub peer: Utf8,
    /// File size in bytes.
    pub size: u64,
    /// Base name of the file.
    pub name: Utf8,
    /// Media type, such as `image/png` (may be empty).
    pub media_type: Utf8,
}

/// `relayed` (0x80, an extension): `id: u64, peer: str8, relay_id: u64`. The server tells
/// the sender of an offer it relays which id the offer has on the receiver's connection, so
/// that both people can speak of "transfer `relay_id`" (spec §10 rule 8). On the wire it is
/// a [`Message::Extension`] of type [`frame_type::RELAYED`]: version 1 receivers that do not
/// know it ignore it.
///
/// ```
/// use tidings_core::wire::{Message, Relayed, Utf8};
/// let r = Relayed { id: 4, peer: Utf8::from("bob"), relay_id: 7 };
/// let msg = r.to_message();
/// assert_eq!(msg.kind(), 0x80);
/// let Message::Extension { kind, body } = msg else { unreachable!() };
/// assert_eq!(Relayed::from_extension(kind, body), Some(Ok(r)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The sender's id of its offer.
    pub id: u64,
    /// The receiver (its registered name).
    pub peer: Utf8,
    /// The id of the relayed offer on the receiver's connection.
    pub relay_id: u64,
}

impl Relayed {
    /// The message that carries it.
    pub fn to_message(&self) -> Message {
        let mut body = BytesMut::with_capacity(17 + str8_len(&self.peer));
        body.put_u64(self.id);
        put_str8(&mut body, &self.peer);
        body.put_u64(self.relay_id);
        Message::Extension {
            kind: frame_type::RELAYED,
            body: body.freeze(),
        }
    }

    /// Decodes the body of an extension frame: `None` when `kind` is not
    /// [`frame_type::RELAYED`], an error for a short, long or non-UTF-8 body.
    pub fn from_extension(kind: u8, body: Bytes) -> Option<Result<Relayed, ProtocolError>> {
        if kind != frame_type::RELAYED {
            return None;
        }
        let mut r = Reader::new(body);
        let decode = |r: &mut Reader| -> Result<Relayed, ProtocolError> {
            let relayed = Relayed {
                id: r.u64()?,
                peer: r.str8()?,
                relay_id: r.u64()?,
            };
            r.finish()?;
            Ok(relayed)
        };
        Some(decode(&mut r))
    }
}

/// Whether a `presence` frame announces a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// 1: the peer is now online.
    Joined,
    /// 2: the peer went away.
    Left,
}

/// What a `member` frame reports (spec §6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// 1: the name joined the room.
    Joined,
    /// 2: the name left the room (or went offline); about oneself, the answer to `leave`.
    Left,
    /// 3: the operator removed the name from the room, or closed the room; about oneself,
    /// one is no longer in it.
    Removed,
}

impl MemberKind {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            MemberKind::Joined => 1,
            MemberKind::Left => 2,
            MemberKind::Removed => 3,
        }
    }

    /// The kind of a wire value, if it is one.
    pub fn from_u8(v: u8) -> Option<MemberKind> {
        match v {
            1 => Some(MemberKind::Joined),
            2 => Some(MemberKind::Left),
            3 => Some(MemberKind::Removed),
            _ => None,
        }
    }

    /// The spec's word for it (`joined`, `left`, `removed`), also the JSON mode's.
    pub fn name(self) -> &'static str {
        match self {
            MemberKind::Joined => "joined",
            MemberKind::Left => "left",
            MemberKind::Removed => "removed",
        }
    }
}

/// One entry of a `room-list`: a room's name and how many members it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name as created.
    pub name: Utf8,
    /// Members at the time of the list.
    pub members: u32,
}

/// One protocol message: a decoded frame.
///
/// Routed messages (`text`, `blob`, `offer`) carry one `peer` field whose meaning depends on
/// the direction: from a client it names the addressee (empty: everyone); from the server it
/// names the sender and is always set by the server, so a client can never claim to be
/// someone else.
///
/// ```
/// use bytes::BytesMut;
/// use tidings_core::wire::{FrameDecoder, Message, Utf8, DEFAULT_MAX_FRAME};
///
/// let msg = Message::Text { peer: Utf8::from("bob"), private: true, text: Utf8::from("hi") };
/// let mut wire = BytesMut::new();
/// msg.encode(&mut wire);
/// assert_eq!(&wire[..], b"\x00\x00\x00\x07\x10\x03bob\x01hi");
///
/// let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
/// dec.push(&wire);
/// assert_eq!(Message::decode(dec.next_frame().unwrap().unwrap()).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// `refused` (0x03): `code: u16, reason: rest`.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: Utf8,
    },
    /// `login` (0x04): `method: u8, secret: rest` (at most [`MAX_SECRET`] bytes). See
    /// [`login_method`].
    Login {
        /// How `secret` is to be checked ([`login_method`]).
        method: u8,
        /// The password (or, later, the token).
        secret: Secret,
    },
    /// `token` (0x05): `token: rest` (at most [`MAX_SECRET`] bytes): a session token for
    /// `login` method 2.
    Token {
        /// The token, opaque to the client.
        token: Secret,
    },
    /// `text` (0x10): `peer: str8, flags: u8, text: rest`.
    Text {
        /// Addressee (from a client) or sender (from the server).
        peer: Utf8,
        /// Set by the server on delivery when the text was addressed to one peer only.
        private: bool,
        /// The message.
        text: Utf8,
    },
    /// `blob` (0x11): `peer: str8, flags: u8, media_type: str8, data: rest`.
    Blob {
        /// Addressee (from a client) or sender (from the server).
        peer: Utf8,
        /// As for `text`.
        private: bool,
        /// Media type such as `image/jpeg`.
        media_type: Utf8,
        /// The bytes.
        data: Bytes,
    },
    /// `room-text` (0x12): `room: str8, peer: str8, text: rest`. From a client `peer` is
    /// empty (the room is the addressee); from the server it is the sender.
    RoomText {
        /// The room.
        room: Utf8,
        /// Empty (from a client) or the sender (from the server).
        peer: Utf8,
        /// The message.
        text: Utf8,
    },
    /// `join` (0x23): `room: str8`.
    Join {
        /// The room to enter.
        room: Utf8,
    },
    /// `leave` (0x24): `room: str8`.
    Leave {
        /// The room to leave.
        room: Utf8,
    },
    /// `member` (0x25): `kind: u8 (1 joined, 2 left, 3 removed), room: str8, name: str8`.
    Member {
        /// What happened.
        kind: MemberKind,
        /// In which room.
        room: Utf8,
        /// To whom.
        name: Utf8,
    },
    /// `room-members` (0x26): `room: str8, count: u32, count × name: str8`.
    RoomMembers {
        /// The room.
        room: Utf8,
        /// Its members, sorted by key, the joining client last.
        names: Vec<Utf8>,
    },
    /// `room-list-request` (0x27): empty body.
    RoomListRequest,
    /// `room-list` (0x28): `count: u32, count × (room: str8, members: u32)`.
    RoomList {
        /// The rooms, largest first.
        rooms: Vec<RoomInfo>,
    },
    /// `presence` (0x20): `kind: u8 (1 joined, 2 left), name: str8`.
    Presence {
        /// Joined or left.
        kind: PresenceKind,
        /// Who.
        name: Utf8,
    },
    /// `list-request` (0x21): empty body.
    ListRequest,
    /// `peer-list` (0x22): `count: u32, count × name: str8`.
    PeerList {
        /// Who is online.
        names: Vec<Utf8>,
    },
    /// `ping` (0x30): `nonce: u64`.
    Ping {
        /// Echoed by the pong.
        nonce: u64,
    },
    /// `pong` (0x31): `nonce: u64`.
    Pong {
        /// The nonce of the ping being answered.
        nonce: u64,
    },
    /// `error` (0x3E): `code: u16, text: rest`.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        text: Utf8,
    },
    /// `goodbye` (0x3F): `code: u16, reason: rest`.
    Goodbye {
        /// Why the sender closes ([`ErrorCode::Normal`] for a plain quit).
        code: ErrorCode,
        /// Human-readable reason.
        reason: Utf8,
    },
    /// See [`Offer`].
    Offer(Offer),
    /// `accept` (0x41): `id: u64, offset: u64, credit: u32`.
    Accept {
        /// Transfer id.
        id: u64,
        /// The first byte wanted (the size of a kept partial file, to resume).
        offset: u64,
        /// Initial credit in bytes.
        credit: u32,
    },
    /// `reject` (0x42): `id: u64, code: u16, reason: rest`.
    Reject {
        /// Transfer id.
        id: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: Utf8,
    },
    /// `chunk` (0x43): `id: u64, offset: u64, data: rest`.
    Chunk {
        /// Transfer id.
        id: u64,
        /// File offset of the first byte of `data`.
        offset: u64,
        /// File bytes.
        data: Bytes,
    },
    /// `credit` (0x44): `id: u64, bytes: u32`.
    Credit {
        /// Transfer id.
        id: u64,
        /// Additional bytes the sender may send.
        bytes: u32,
    },
    /// `done` (0x45): `id: u64, sha256: 32 bytes`.
    Done {
        /// Transfer id.
        id: u64,
        /// SHA-256 of the whole file.
        digest: [u8; DIGEST_LEN],
    },
    /// `cancel` (0x46): `id: u64, code: u16, reason: rest`.
    Cancel {
        /// Transfer id.
        id: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: Utf8,
    },
    /// `complete` (0x47): `id: u64`.
    Complete {
        /// Transfer id.
        id: u64,
    },
    /// `failed` (0x48): `id: u64, code: u16, reason: rest`.
    Failed {
        /// Transfer id.
        id: u64,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: Utf8,
    },
    /// A frame of the extension range (0x80–0xFF) that this implementation does not know;
    /// receivers ignore it.
    Extension {
        /// Its type byte.
        kind: u8,
        /// Its body.
        body: Bytes,
    },
}

impl Message {
    /// The frame type byte.
    pub fn kind(&self) -> u8 {
        use frame_type::*;
        match self {
            Message::Hello(_) => HELLO,
            Message::Welcome(_) => WELCOME,
            Message::Refused { .. } => REFUSED,
            Message::Login { .. } => LOGIN,
            Message::Token { .. } => TOKEN,
            Message::Text { .. } => TEXT,
            Message::Blob { .. } => BLOB,
            Message::RoomText { .. } => ROOM_TEXT,
            Message::Join { .. } => JOIN,
            Message::Leave { .. } => LEAVE,
            Message::Member { .. } => MEMBER,
            Message::RoomMembers { .. } => ROOM_MEMBERS,
            Message::RoomListRequest => ROOM_LIST_REQUEST,
            Message::RoomList { .. } => ROOM_LIST,
            Message::Presence { .. } => PRESENCE,
            Message::ListRequest => LIST_REQUEST,
            Message::PeerList { .. } => PEER_LIST,
            Message::Ping { .. } => PING,
            Message::Pong { .. } => PONG,
            Message::Error { .. } => ERROR,
            Message::Goodbye { .. } => GOODBYE,
            Message::Offer(_) => OFFER,
            Message::Accept { .. } => ACCEPT,
            Message::Reject { .. } => REJECT,
            Message::Chunk { .. } => CHUNK,
            Message::Credit { .. } => CREDIT,
            Message::Done { .. } => DONE,
            Message::Cancel { .. } => CANCEL,
            Message::Complete { .. } => COMPLETE,
            Message::Failed { .. } => FAILED,
            Message::Extension { kind, .. } => *kind,
        }
    }

    /// The spec's name of the message (`peer-list`), for logs and vectors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome(_) => "welcome",
            Message::Refused { .. } => "refused",
            Message::Login { .. } => "login",
            Message::Token { .. } => "token",
            Message::Text { .. } => "text",
            Message::Blob { .. } => "blob",
            Message::RoomText { .. } => "room-text",
            Message::Join { .. } => "join",
            Message::Leave { .. } => "leave",
            Message::Member { .. } => "member",
            Message::RoomMembers { .. } => "room-members",
            Message::RoomListRequest => "room-list-request",
            Message::RoomList { .. } => "room-list",
            Message::Presence { .. } => "presence",
            Message::ListRequest => "list-request",
            Message::PeerList { .. } => "peer-list",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Error { .. } => "error",
            Message::Goodbye { .. } => "goodbye",
            Message::Offer(_) => "offer",
            Message::Accept { .. } => "accept",
            Message::Reject { .. } => "reject",
            Message::Chunk { .. } => "chunk",
            Message::Credit { .. } => "credit",
            Message::Done { .. } => "done",
            Message::Cancel { .. } => "cancel",
            Message::Complete { .. } => "complete",
            Message::Failed { .. } => "failed",
            Message::Extension { .. } => "extension",
        }
    }

    /// Parses one frame. Unknown types below 0x80 are [`ErrorCode::UnknownType`]; unknown
    /// types from 0x80 up decode as [`Message::Extension`].
    pub fn decode(frame: Frame) -> Result<Message, ProtocolError> {
        use frame_type::*;
        let kind = frame.kind;
        let mut r = Reader::new(frame.body);
        // The hot path: most frames of a chat are `text`. Its last field takes the rest of
        // the body, so no trailing-bytes check is due and the message is built straight into
        // the return value, without the general path's temporary (a few per cent of a 64-byte
        // frame).
        if kind == TEXT {
            return text(&mut r);
        }
        let msg = match kind {
            HELLO => Message::Hello(Hello {
                name: r.str8()?,
                capabilities: r.u32()?,
                max_frame: r.u32()?,
            }),
            WELCOME => Message::Welcome(Welcome {
                name: r.str8()?,
                server: r.str8()?,
                heartbeat_ms: r.u32()?,
                timeout_ms: r.u32()?,
                max_frame: r.u32()?,
                capabilities: r.u32()?,
                online: names(&mut r)?,
            }),
            REFUSED => Message::Refused {
                code: code(&mut r)?,
                reason: r.rest_str()?,
            },
            LOGIN => {
                let method = r.u8()?;
                if r.remaining() > MAX_SECRET {
                    return Err(ProtocolError::new(
                        ErrorCode::Malformed,
                        "login secret longer than 1024 bytes",
                    ));
                }
                Message::Login {
                    method,
                    secret: Secret(r.rest_str()?),
                }
            }
            TOKEN => {
                if r.remaining() > MAX_SECRET {
                    return Err(ProtocolError::new(
                        ErrorCode::Malformed,
                        "session token longer than 1024 bytes",
                    ));
                }
                Message::Token {
                    token: Secret(r.rest_str()?),
                }
            }
            TEXT => return text(&mut r),
            BLOB => Message::Blob {
                peer: r.str8()?,
                private: flags(&mut r)?,
                media_type: r.str8()?,
                data: r.rest(),
            },
            ROOM_TEXT => Message::RoomText {
                room: r.str8()?,
                peer: r.str8()?,
                text: r.rest_str()?,
            },
            JOIN => Message::Join { room: r.str8()? },
            LEAVE => Message::Leave { room: r.str8()? },
            MEMBER => Message::Member {
                kind: MemberKind::from_u8(r.u8()?)
                    .ok_or_else(|| malformed("member kind is not 1, 2 or 3"))?,
                room: r.str8()?,
                name: r.str8()?,
            },
            ROOM_MEMBERS => Message::RoomMembers {
                room: r.str8()?,
                names: names(&mut r)?,
            },
            ROOM_LIST_REQUEST => Message::RoomListRequest,
            ROOM_LIST => Message::RoomList {
                rooms: rooms(&mut r)?,
            },
            PRESENCE => Message::Presence {
                kind: match r.u8()? {
                    1 => PresenceKind::Joined,
                    2 => PresenceKind::Left,
                    _ => return Err(malformed("presence kind is neither 1 nor 2")),
                },
                name: r.str8()?,
            },
            LIST_REQUEST => Message::ListRequest,
            PEER_LIST => Message::PeerList {
                names: names(&mut r)?,
            },
            PING => Message::Ping { nonce: r.u64()? },
            PONG => Message::Pong { nonce: r.u64()? },
            ERROR => Message::Error {
                code: code(&mut r)?,
                text: r.rest_str()?,
            },
            GOODBYE => Message::Goodbye {
                code: code(&mut r)?,
                reason: r.rest_str()?,
            },
            OFFER => Message::Offer(Offer {
                id: r.u64()?,
                peer: r.str8()?,
                size: r.u64()?,
                name: r.str16()?,
                media_type: r.str8()?,
            }),
            ACCEPT => Message::Accept {
                id: r.u64()?,
                offset: r.u64()?,
                credit: r.u32()?,
            },
            REJECT => Message::Reject {
                id: r.u64()?,
                code: code(&mut r)?,
                reason: r.rest_str()?,
            },
            CHUNK => Message::Chunk {
                id: r.u64()?,
                offset: r.u64()?,
                data: r.rest(),
            },
            CREDIT => Message::Credit {
                id: r.u64()?,
                bytes: r.u32()?,
            },
            DONE => Message::Done {
                id: r.u64()?,
                digest: r.array()?,
            },
            CANCEL => Message::Cancel {
                id: r.u64()?,
                code: code(&mut r)?,
                reason: r.rest_str()?,
            },
            COMPLETE => Message::Complete { id: r.u64()? },
            FAILED => Message::Failed {
                id: r.u64()?,
                code: code(&mut r)?,
                reason: r.rest_str()?,
            },
            k if k >= FIRST_EXTENSION => Message::Extension {
                kind: k,
                body: r.rest(),
            },
            _ => {
                return Err(ProtocolError::new(
                    ErrorCode::UnknownType,
                    "unknown frame type in the mandatory range",
                ))
            }
        };
        r.finish()?;
        Ok(msg)
    }

    /// Appends the frame to `out` except for a large trailing payload (of `blob` or `chunk`,
    /// at least `min_split` bytes), which is returned by reference instead of copied: the
    /// frame on the wire is what was appended followed by the returned bytes.
    pub fn encode_split(&self, out: &mut BytesMut, min_split: usize) -> Option<Bytes> {
        let payload = match self {
            Message::Blob { data, .. } | Message::Chunk { data, .. } if data.len() >= min_split => {
                data
            }
            _ => {
                self.encode(out);
                return None;
            }
        };
        let body_len = self.body_len();
        out.reserve(HEADER_LEN + body_len - payload.len());
        encode_header(self.kind(), body_len, out);
        self.encode_body(out, false);
        Some(payload.clone())
    }

    /// Appends the whole frame (header and body) to `out`.
    ///
    /// The caller keeps the frame within the peer's limit. A string longer than its length
    /// prefix can express (255 bytes for `str8` fields, 65 535 for the offer's file name) is
    /// cut at the last character boundary that fits, so the frame stays well-formed; build
    /// messages from validated parts to avoid that.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        let start = out.len();
        out.put_bytes(0, HEADER_LEN);
        self.encode_body(out, true);
        let body_len = out.len() - start - HEADER_LEN;
        debug_assert_eq!(body_len, self.body_len());
        out[start..start + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
        out[start + 4] = self.kind();
    }

    /// [`Message::encode`] for a `welcome`, `room-members` or `peer-list` made with an empty
    /// list of names, whose list is instead `count` names already encoded in `entries` (each
    /// a `str8`, in order). The list is the last field of all three, so the frame is this
    /// message's with the count set and the entries after it.
    pub(crate) fn encode_listing(&self, count: u32, entries: &[u8], out: &mut BytesMut) {
        debug_assert!(matches!(
            self,
            Message::Welcome(Welcome { online: names, .. })
                | Message::RoomMembers { names, .. }
                | Message::PeerList { names }
                if names.is_empty()
        ));
        out.reserve(self.encoded_len() + entries.len());
        let start = out.len();
        self.encode(out);
        let end = out.len();
        out[end - 4..end].copy_from_slice(&count.to_be_bytes());
        out.put_slice(entries);
        let body_len = (out.len() - start - HEADER_LEN) as u32;
        out[start..start + 4].copy_from_slice(&body_len.to_be_bytes());
    }

    /// The encoded size of the whole frame, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    fn body_len(&self) -> usize {
        let names_len = |names: &[Utf8]| 4 + names.iter().map(str8_len).sum::<usize>();
        match self {
            Message::Hello(h) => str8_len(&h.name) + 8,
            Message::Welcome(w) => {
                str8_len(&w.name) + str8_len(&w.server) + 16 + names_len(&w.online)
            }
            Message::Refused { reason, .. } => 2 + reason.len(),
            Message::Login { secret, .. } => 1 + secret.len(),
            Message::Token { token } => token.len(),
            Message::Text { peer, text, .. } => str8_len(peer) + 1 + text.len(),
            Message::Blob {
                peer,
                media_type,
                data,
                ..
            } => str8_len(peer) + 1 + str8_len(media_type) + data.len(),
            Message::RoomText { room, peer, text } => str8_len(room) + str8_len(peer) + text.len(),
            Message::Join { room } | Message::Leave { room } => str8_len(room),
            Message::Member { room, name, .. } => 1 + str8_len(room) + str8_len(name),
            Message::RoomMembers { room, names } => str8_len(room) + names_len(names),
            Message::RoomListRequest => 0,
            Message::RoomList { rooms } => {
                4 + rooms.iter().map(|r| str8_len(&r.name) + 4).sum::<usize>()
            }
            Message::Presence { name, .. } => 1 + str8_len(name),
            Message::ListRequest => 0,
            Message::PeerList { names } => names_len(names),
            Message::Ping { .. } | Message::Pong { .. } => 8,
            Message::Error { text, .. } => 2 + text.len(),
            Message::Goodbye { reason, .. } => 2 + reason.len(),
            Message::Offer(o) => {
                8 + str8_len(&o.peer) + 8 + str16_len(&o.name) + str8_len(&o.media_type)
            }
            Message::Accept { .. } => 20,
            Message::Reject { reason, .. }
            | Message::Cancel { reason, .. }
            | Message::Failed { reason, .. } => 10 + reason.len(),
            Message::Chunk { data, .. } => 16 + data.len(),
            Message::Credit { .. } => 12,
            Message::Done { .. } => 8 + DIGEST_LEN,
            Message::Complete { .. } => 8,
            Message::Extension { body, .. } => body.len(),
        }
    }

    fn encode_body(&self, out: &mut BytesMut, with_payload: bool) {
        match self {
            Message::Hello(h) => {
                put_str8(out, &h.name);
                out.put_u32(h.capabilities);
                out.put_u32(h.max_frame);
            }
            Message::Welcome(w) => {
                put_str8(out, &w.name);
                put_str8(out, &w.server);
                out.put_u32(w.heartbeat_ms);
                out.put_u32(w.timeout_ms);
                out.put_u32(w.max_frame);
                out.put_u32(w.capabilities);
                put_names(out, &w.online);
            }
            Message::Login { method, secret } => {
                out.put_u8(*method);
                out.put_slice(secret.0.as_bytes());
            }
            Message::Token { token } => out.put_slice(token.0.as_bytes()),
            Message::Refused { code, reason }
            | Message::Error { code, text: reason }
            | Message::Goodbye { code, reason } => {
                out.put_u16(code.to_u16());
                out.put_slice(reason.as_bytes());
            }
            Message::Text {
                peer,
                private,
                text,
            } => {
                put_str8(out, peer);
                out.put_u8(if *private { FLAG_PRIVATE } else { 0 });
                out.put_slice(text.as_bytes());
            }
            Message::Blob {
                peer,
                private,
                media_type,
                data,
            } => {
                put_str8(out, peer);
                out.put_u8(if *private { FLAG_PRIVATE } else { 0 });
                put_str8(out, media_type);
                if with_payload {
                    out.put_slice(data);
                }
            }
            Message::RoomText { room, peer, text } => {
                put_str8(out, room);
                put_str8(out, peer);
                out.put_slice(text.as_bytes());
            }
            Message::Join { room } | Message::Leave { room } => put_str8(out, room),
            Message::Member { kind, room, name } => {
                out.put_u8(kind.to_u8());
                put_str8(out, room);
                put_str8(out, name);
            }
            Message::RoomMembers { room, names } => {
                put_str8(out, room);
                put_names(out, names);
            }
            Message::RoomListRequest => {}
            Message::RoomList { rooms } => {
                out.put_u32(rooms.len() as u32);
                for room in rooms {
                    put_str8(out, &room.name);
                    out.put_u32(room.members);
                }
            }
            Message::Presence { kind, name } => {
                out.put_u8(match kind {
                    PresenceKind::Joined => 1,
                    PresenceKind::Left => 2,
                });
                put_str8(out, name);
            }
            Message::ListRequest => {}
            Message::PeerList { names } => put_names(out, names),
            Message::Ping { nonce } | Message::Pong { nonce } => out.put_u64(*nonce),
            Message::Offer(o) => {
                out.put_u64(o.id);
                put_str8(out, &o.peer);
                out.put_u64(o.size);
                put_str16(out, &o.name);
                put_str8(out, &o.media_type);
            }
            Message::Accept { id, offset, credit } => {
                out.put_u64(*id);
                out.put_u64(*offset);
                out.put_u32(*credit);
            }
            Message::Reject { id, code, reason }
            | Message::Cancel { id, code, reason }
            | Message::Failed { id, code, reason } => {
                out.put_u64(*id);
                out.put_u16(code.to_u16());
                out.put_slice(reason.as_bytes());
            }
            Message::Chunk { id, offset, data } => {
                out.put_u64(*id);
                out.put_u64(*offset);
                if with_payload {
                    out.put_slice(data);
                }
            }
            Message::Credit { id, bytes } => {
                out.put_u64(*id);
                out.put_u32(*bytes);
            }
            Message::Done { id, digest } => {
                out.put_u64(*id);
                out.put_slice(digest);
            }
            Message::Complete { id } => out.put_u64(*id),
            Message::Extension { body, .. } => out.put_slice(body),
        }
    }
}

/// The bytes of `s` that a length prefix of at most `max` can describe: all of them, or the
/// longest prefix that ends on a character boundary.
///
/// Writing a wrapped-around length (`300 as u8` is 44) would make the receiver read the rest
/// of the string as the following fields — a field injection. Cutting keeps every frame
/// well-formed and its text valid UTF-8, whatever the caller passes.
fn fitting(s: &Utf8, max: usize) -> &[u8] {
    let text = s.as_str();
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text.as_bytes()[..cut]
}

/// Encoded size of a `str8` field.
fn str8_len(s: &Utf8) -> usize {
    1 + fitting(s, u8::MAX as usize).len()
}

/// Encoded size of a `str16` field.
fn str16_len(s: &Utf8) -> usize {
    2 + fitting(s, u16::MAX as usize).len()
}

fn put_str8(out: &mut BytesMut, s: &Utf8) {
    let bytes = fitting(s, u8::MAX as usize);
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

fn put_str16(out: &mut BytesMut, s: &Utf8) {
    let bytes = fitting(s, u16::MAX as usize);
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn put_names(out: &mut BytesMut, names: &[Utf8]) {
    out.put_u32(names.len() as u32);
    for n in names {
        put_str8(out, n);
    }
}

fn names(r: &mut Reader) -> Result<Vec<Utf8>, ProtocolError> {
    let count = r.u32()? as usize;
    // Each name takes at least its length byte: a count larger than the bytes left is a lie,
    // caught before allocating for it.
    if count > r.remaining() {
        return Err(malformed("name count exceeds the frame body"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(r.str8()?);
    }
    Ok(out)
}

fn rooms(r: &mut Reader) -> Result<Vec<RoomInfo>, ProtocolError> {
    let count = r.u32()? as usize;
    // Each entry takes at least five bytes: a larger count is a lie, caught before allocating.
    if count > r.remaining() / 5 {
        return Err(malformed("room count exceeds the frame body"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(RoomInfo {
            name: r.str8()?,
            members: r.u32()?,
        });
    }
    Ok(out)
}

/// The body of a `text` frame: `peer: str8, flags: u8, text: rest`.
#[inline(always)]
fn text(r: &mut Reader) -> Result<Message, ProtocolError> {
    let peer = r.str8()?;
    let private = flags(r)?;
    let text = r.rest_str()?;
    Ok(Message::Text {
        peer,
        private,
        text,
    })
}

fn code(r: &mut Reader) -> Result<ErrorCode, ProtocolError> {
    Ok(ErrorCode::from_u16(r.u16()?))
}

fn flags(r: &mut Reader) -> Result<bool, ProtocolError> {
    match r.u8()? {
        0 => Ok(false),
        FLAG_PRIVATE => Ok(true),
        _ => Err(malformed("unknown flag bits")),
    }
}

fn malformed(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::Malformed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(msg: &Message) -> Frame {
        let mut wire = BytesMut::new();
        msg.encode(&mut wire);
        let wire = wire.freeze();
        Frame {
            kind: wire[4],
            body: wire.slice(HEADER_LEN..),
        }
    }

    #[test]
    fn short_names_do_not_hold_the_receive_buffer_and_long_ones_share_it() {
        for (name, shares) in [("bob", false), (&*"n".repeat(40), true)] {
            let msg = Message::Presence {
                kind: PresenceKind::Joined,
                name: Utf8::from(name),
            };
            let frame = frame_of(&msg);
            let body = frame.body.clone();
            let decoded = Message::decode(frame).unwrap();
            assert_eq!(decoded, msg);
            // Only `body` is left holding the buffer unless the decoded name points into it.
            assert_eq!(!body.is_unique(), shares, "{name}");
            drop(decoded);
            assert!(body.is_unique());
        }
    }

    #[test]
    fn strings_at_every_length_around_the_inline_limit_round_trip() {
        for len in 0..=40 {
            for last in [false, true] {
                let peer = Utf8::from("é".repeat(len / 2) + &"p".repeat(len % 2));
                // `text` ends the body; `presence` ends with its name (a short source).
                let msg = if last {
                    Message::Presence {
                        kind: PresenceKind::Left,
                        name: peer,
                    }
                } else {
                    Message::Text {
                        peer,
                        private: true,
                        text: Utf8::from("x".repeat(len)),
                    }
                };
                assert_eq!(Message::decode(frame_of(&msg)).unwrap(), msg);
            }
        }
    }
}
