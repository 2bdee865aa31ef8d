//! The native byte stream, read strictly from spec/PROTOCOL.md: the preamble (§3), frames
//! (§4), the type registry (§5) and each message's fields (§6, §7, §10), and the error codes
//! (§8). Written from the spec alone, so that a codec bug the server shares with
//! `tidings-core` cannot pass unseen.

/// The preamble of version 1 (§3.1): magic, then the version byte.
pub const PREAMBLE: [u8; 8] = [0x89, b'T', b'D', b'G', 0x0D, 0x0A, 0x1A, 1];
/// The frame header: a `u32` body length and the type byte (§4.1).
pub const HEADER_LEN: usize = 5;
/// The default and minimum frame limit (§4.2).
pub const MIN_MAX_FRAME: u32 = 1 << 20;
/// The longest `login` secret or `token` (§6.2); longer is `malformed`.
pub const MAX_SECRET: usize = 1024;
/// The ceiling of any announced frame limit (§4.2).
pub const MAX_MAX_FRAME: u32 = 16 << 20;

/// The error codes of §8: value, name, and whether an `error` with it is fatal.
const CODES: &[(u16, &str, bool)] = &[
    (0, "normal", true),
    (1, "malformed", true),
    (2, "bad-preamble", true),
    (3, "unsupported-version", true),
    (4, "frame-too-large", true),
    (5, "unknown-type", true),
    (6, "invalid-utf8", true),
    (7, "unexpected-message", true),
    (8, "heartbeat-timeout", true),
    (9, "truncated", true),
    (10, "name-taken", true),
    (11, "name-invalid", true),
    (12, "server-full", true),
    (13, "unknown-peer", false),
    (14, "rate-limited", true),
    (15, "slow-consumer", true),
    (16, "shutdown", true),
    (17, "limit-exceeded", false),
    (18, "kicked", true),
    (19, "tls-required", true),
    (20, "auth-required", true),
    (21, "auth-failed", true),
    (22, "auth-insecure", true),
    (23, "not-member", false),
    (24, "room-refused", false),
    (32, "unknown-transfer", false),
    (33, "chunk-out-of-range", true),
    (34, "credit-exceeded", true),
    (35, "digest-mismatch", false),
    (36, "bad-file-name", false),
    (37, "cancelled", false),
    (38, "rejected", false),
    (39, "transfer-timeout", false),
    (40, "peer-lost", false),
    (41, "storage-failed", false),
    (42, "source-failed", false),
];

/// The error codes the cases name (§8).
pub mod code {
    #![allow(missing_docs)]
    pub const NORMAL: u16 = 0;
    pub const MALFORMED: u16 = 1;
    pub const BAD_PREAMBLE: u16 = 2;
    pub const UNSUPPORTED_VERSION: u16 = 3;
    pub const FRAME_TOO_LARGE: u16 = 4;
    pub const UNKNOWN_TYPE: u16 = 5;
    pub const INVALID_UTF8: u16 = 6;
    pub const UNEXPECTED_MESSAGE: u16 = 7;
    pub const HEARTBEAT_TIMEOUT: u16 = 8;
    pub const TRUNCATED: u16 = 9;
    pub const NAME_TAKEN: u16 = 10;
    pub const NAME_INVALID: u16 = 11;
    pub const UNKNOWN_PEER: u16 = 13;
    pub const LIMIT_EXCEEDED: u16 = 17;
    pub const TLS_REQUIRED: u16 = 19;
    pub const AUTH_REQUIRED: u16 = 20;
    pub const AUTH_FAILED: u16 = 21;
    pub const AUTH_INSECURE: u16 = 22;
    pub const NOT_MEMBER: u16 = 23;
    pub const ROOM_REFUSED: u16 = 24;
    pub const UNKNOWN_TRANSFER: u16 = 32;
    pub const CHUNK_OUT_OF_RANGE: u16 = 33;
    pub const CREDIT_EXCEEDED: u16 = 34;
    pub const DIGEST_MISMATCH: u16 = 35;
    pub const BAD_FILE_NAME: u16 = 36;
    pub const CANCELLED: u16 = 37;
    pub const REJECTED: u16 = 38;
    pub const PEER_LOST: u16 = 40;
    pub const STORAGE_FAILED: u16 = 41;
}

/// The name of error code `code` (§8), `other` for an unassigned number.
pub fn code_name(code: u16) -> &'static str {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("other", |(_, name, _)| name)
}

/// The code named `name`, if §8 assigns one (`other` names none).
pub fn code_by_name(name: &str) -> Option<u16> {
    CODES
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(c, _, _)| *c)
}

/// Whether an `error` with `code` ends the connection; unknown codes are not fatal (§8).
pub fn is_fatal(code: u16) -> bool {
    CODES.iter().any(|(c, _, fatal)| *c == code && *fatal)
}

/// The fields of `welcome` (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The client's name as registered.
    pub name: String,
    /// The server participant's name.
    pub server: String,
    /// The heartbeat interval the client must adopt, in milliseconds.
    pub heartbeat_ms: u32,
    /// The heartbeat timeout the client must adopt, in milliseconds.
    pub timeout_ms: u32,
    /// The server's frame limit.
    pub max_frame: u32,
    /// The server's capability bits.
    pub capabilities: u32,
    /// Every registered client online, the new one last.
    pub online: Vec<String>,
}

/// The capability bits of `hello` and `welcome` (§5).
pub mod capability {
    /// The side takes part in file transfers.
    pub const FILES: u32 = 1 << 0;
    /// The side accepts `blob`.
    pub const BLOBS: u32 = 1 << 1;
    /// The side speaks rooms, protocol 1.1 (§6.10): negotiated when both announce it.
    pub const ROOMS: u32 = 1 << 2;
}

/// What a `member` frame reports (§6.10.3): its `kind` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// 1: the name joined the room.
    Joined,
    /// 2: the name left the room or went offline.
    Left,
    /// 3: the operator removed the name from the room.
    Removed,
}

impl MemberKind {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            MemberKind::Joined => 1,
            MemberKind::Left => 2,
            MemberKind::Removed => 3,
        }
    }

    /// The kind of a wire byte; other values are `malformed`.
    pub fn from_byte(b: u8) -> Option<MemberKind> {
        match b {
            1 => Some(MemberKind::Joined),
            2 => Some(MemberKind::Left),
            3 => Some(MemberKind::Removed),
            _ => None,
        }
    }

    /// The name the JSON mode uses (§12.3).
    pub fn name(self) -> &'static str {
        match self {
            MemberKind::Joined => "joined",
            MemberKind::Left => "left",
            MemberKind::Removed => "removed",
        }
    }
}

/// The fields of `offer` (§7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The transfer id, of the offering side's parity.
    pub id: u64,
    /// From a client, the addressee; from the server, the sender.
    pub peer: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's name as the sender calls it.
    pub name: String,
    /// Such as `image/jpeg`; may be empty.
    pub media_type: String,
}

/// One protocol message (§5), its fields as the spec names them.
#[allow(missing_docs)] // the fields are the spec's, documented there
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello {
        name: String,
        capabilities: u32,
        max_frame: u32,
    },
    Welcome(Welcome),
    Refused {
        code: u16,
        reason: String,
    },
    Login {
        method: u8,
        secret: String,
    },
    Token {
        token: String,
    },
    Text {
        peer: String,
        private: bool,
        text: String,
    },
    Blob {
        peer: String,
        private: bool,
        media_type: String,
        data: Vec<u8>,
    },
    RoomText {
        room: String,
        peer: String,
        text: String,
    },
    Presence {
        joined: bool,
        name: String,
    },
    ListRequest,
    PeerList {
        names: Vec<String>,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Member {
        kind: MemberKind,
        room: String,
        name: String,
    },
    RoomMembers {
        room: String,
        names: Vec<String>,
    },
    RoomListRequest,
    /// Each room's name and member count.
    RoomList {
        rooms: Vec<(String, u32)>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Error {
        code: u16,
        text: String,
    },
    Goodbye {
        code: u16,
        reason: String,
    },
    Offer(Offer),
    Accept {
        id: u64,
        offset: u64,
        credit: u32,
    },
    Reject {
        id: u64,
        code: u16,
        reason: String,
    },
    Chunk {
        id: u64,
        offset: u64,
        data: Vec<u8>,
    },
    Credit {
        id: u64,
        bytes: u32,
    },
    Done {
        id: u64,
        sha256: [u8; 32],
    },
    Cancel {
        id: u64,
        code: u16,
        reason: String,
    },
    Complete {
        id: u64,
    },
    Failed {
        id: u64,
        code: u16,
        reason: String,
    },
    /// A type in 0x80–0xFF: `relayed` (0x80, §10 rule 8) or any other extension.
    Extension {
        kind: u8,
        body: Vec<u8>,
    },
}

/// The registry of §5: type byte and name.
const TYPES: &[(u8, &str)] = &[
    (0x01, "hello"),
    (0x02, "welcome"),
    (0x03, "refused"),
    (0x04, "login"),
    (0x05, "token"),
    (0x10, "text"),
    (0x11, "blob"),
    (0x12, "room-text"),
    (0x20, "presence"),
    (0x21, "list-request"),
    (0x22, "peer-list"),
    (0x23, "join"),
    (0x24, "leave"),
    (0x25, "member"),
    (0x26, "room-members"),
    (0x27, "room-list-request"),
    (0x28, "room-list"),
    (0x30, "ping"),
    (0x31, "pong"),
    (0x3E, "error"),
    (0x3F, "goodbye"),
    (0x40, "offer"),
    (0x41, "accept"),
    (0x42, "reject"),
    (0x43, "chunk"),
    (0x44, "credit"),
    (0x45, "done"),
    (0x46, "cancel"),
    (0x47, "complete"),
    (0x48, "failed"),
];

/// The type byte of the registry entry named `name` (§5).
pub fn type_by_name(name: &str) -> Option<u8> {
    TYPES.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
}

impl Message {
    /// The type byte (§5).
    pub fn kind(&self) -> u8 {
        match self {
            Message::Extension { kind, .. } => *kind,
            other => type_by_name(other.name()).unwrap_or(0),
        }
    }

    /// The registry's name of the message (`extension` for 0x80–0xFF).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Welcome(_) => "welcome",
            Message::Refused { .. } => "refused",
            Message::Login { .. } => "login",
            Message::Token { .. } => "token",
            Message::Text { .. } => "text",
            Message::Blob { .. } => "blob",
            Message::RoomText { .. } => "room-text",
            Message::Presence { .. } => "presence",
            Message::ListRequest => "list-request",
            Message::PeerList { .. } => "peer-list",
            Message::Join { .. } => "join",
            Message::Leave { .. } => "leave",
            Message::Member { .. } => "member",
            Message::RoomMembers { .. } => "room-members",
            Message::RoomListRequest => "room-list-request",
            Message::RoomList { .. } => "room-list",
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

    /// The code of an `error`, `refused`, `goodbye`, `reject`, `cancel` or `failed`.
    pub fn code(&self) -> Option<u16> {
        match self {
            Message::Refused { code, .. }
            | Message::Error { code, .. }
            | Message::Goodbye { code, .. }
            | Message::Reject { code, .. }
            | Message::Cancel { code, .. }
            | Message::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The whole frame: header and body (§4.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Body::default();
        match self {
            Message::Hello {
                name,
                capabilities,
                max_frame,
            } => {
                b.str8(name).u32(*capabilities).u32(*max_frame);
            }
            Message::Welcome(w) => {
                b.str8(&w.name)
                    .str8(&w.server)
                    .u32(w.heartbeat_ms)
                    .u32(w.timeout_ms);
                b.u32(w.max_frame).u32(w.capabilities).names(&w.online);
            }
            Message::Refused { code, reason: text }
            | Message::Error { code, text }
            | Message::Goodbye { code, reason: text } => {
                b.u16(*code).raw(text.as_bytes());
            }
            Message::Login { method, secret } => {
                b.u8(*method).raw(secret.as_bytes());
            }
            Message::Token { token } => {
                b.raw(token.as_bytes());
            }
            Message::Text {
                peer,
                private,
                text,
            } => {
                b.str8(peer).u8(u8::from(*private)).raw(text.as_bytes());
            }
            Message::Blob {
                peer,
                private,
                media_type,
                data,
            } => {
                b.str8(peer)
                    .u8(u8::from(*private))
                    .str8(media_type)
                    .raw(data);
            }
            Message::Presence { joined, name } => {
                b.u8(if *joined { 1 } else { 2 }).str8(name);
            }
            Message::RoomText { room, peer, text } => {
                b.str8(room).str8(peer).raw(text.as_bytes());
            }
            Message::ListRequest | Message::RoomListRequest => {}
            Message::PeerList { names } => {
                b.names(names);
            }
            Message::Join { room } | Message::Leave { room } => {
                b.str8(room);
            }
            Message::Member { kind, room, name } => {
                b.u8(kind.byte()).str8(room).str8(name);
            }
            Message::RoomMembers { room, names } => {
                b.str8(room).names(names);
            }
            Message::RoomList { rooms } => {
                b.u32(rooms.len() as u32);
                for (name, members) in rooms {
                    b.str8(name).u32(*members);
                }
            }
            Message::Ping { nonce } | Message::Pong { nonce } => {
                b.u64(*nonce);
            }
            Message::Offer(o) => {
                b.u64(o.id).str8(&o.peer).u64(o.size).str16(&o.name);
                b.str8(&o.media_type);
            }
            Message::Accept { id, offset, credit } => {
                b.u64(*id).u64(*offset).u32(*credit);
            }
            Message::Reject { id, code, reason }
            | Message::Cancel { id, code, reason }
            | Message::Failed { id, code, reason } => {
                b.u64(*id).u16(*code).raw(reason.as_bytes());
            }
            Message::Chunk { id, offset, data } => {
                b.u64(*id).u64(*offset).raw(data);
            }
            Message::Credit { id, bytes } => {
                b.u64(*id).u32(*bytes);
            }
            Message::Done { id, sha256 } => {
                b.u64(*id).raw(sha256);
            }
            Message::Complete { id } => {
                b.u64(*id);
            }
            Message::Extension { body, .. } => {
                b.raw(body);
            }
        }
        frame(self.kind(), &b.0)
    }

    /// Decodes the body of a frame of type `kind` (§4.3, §6): the first field that fails
    /// decides the code.
    pub fn decode(kind: u8, body: &[u8]) -> Result<Message, u16> {
        let mut r = Fields { rest: body };
        let m = match kind {
            0x01 => Message::Hello {
                name: r.str8()?,
                capabilities: r.u32()?,
                max_frame: r.u32()?,
            },
            0x02 => Message::Welcome(Welcome {
                name: r.str8()?,
                server: r.str8()?,
                heartbeat_ms: r.u32()?,
                timeout_ms: r.u32()?,
                max_frame: r.u32()?,
                capabilities: r.u32()?,
                online: r.names()?,
            }),
            0x03 => Message::Refused {
                code: r.u16()?,
                reason: r.text()?,
            },
            0x04 => Message::Login {
                method: r.u8()?,
                secret: r.secret()?,
            },
            0x05 => Message::Token { token: r.secret()? },
            0x10 => Message::Text {
                peer: r.str8()?,
                private: r.flags()?,
                text: r.text()?,
            },
            0x11 => Message::Blob {
                peer: r.str8()?,
                private: r.flags()?,
                media_type: r.str8()?,
                data: r.bytes(),
            },
            0x20 => Message::Presence {
                joined: match r.u8()? {
                    1 => true,
                    2 => false,
                    _ => return Err(code::MALFORMED),
                },
                name: r.str8()?,
            },
            0x12 => Message::RoomText {
                room: r.str8()?,
                peer: r.str8()?,
                text: r.text()?,
            },
            0x21 => Message::ListRequest,
            0x22 => Message::PeerList { names: r.names()? },
            0x23 => Message::Join { room: r.str8()? },
            0x24 => Message::Leave { room: r.str8()? },
            0x25 => Message::Member {
                kind: MemberKind::from_byte(r.u8()?).ok_or(code::MALFORMED)?,
                room: r.str8()?,
                name: r.str8()?,
            },
            0x26 => Message::RoomMembers {
                room: r.str8()?,
                names: r.names()?,
            },
            0x27 => Message::RoomListRequest,
            0x28 => Message::RoomList { rooms: r.rooms()? },
            0x30 => Message::Ping { nonce: r.u64()? },
            0x31 => Message::Pong { nonce: r.u64()? },
            0x3E => Message::Error {
                code: r.u16()?,
                text: r.text()?,
            },
            0x3F => Message::Goodbye {
                code: r.u16()?,
                reason: r.text()?,
            },
            0x40 => Message::Offer(Offer {
                id: r.u64()?,
                peer: r.str8()?,
                size: r.u64()?,
                name: r.str16()?,
                media_type: r.str8()?,
            }),
            0x41 => Message::Accept {
                id: r.u64()?,
                offset: r.u64()?,
                credit: r.u32()?,
            },
            0x42 => Message::Reject {
                id: r.u64()?,
                code: r.u16()?,
                reason: r.text()?,
            },
            0x43 => Message::Chunk {
                id: r.u64()?,
                offset: r.u64()?,
                data: r.bytes(),
            },
            0x44 => Message::Credit {
                id: r.u64()?,
                bytes: r.u32()?,
            },
            0x45 => Message::Done {
                id: r.u64()?,
                sha256: r.digest()?,
            },
            0x46 => Message::Cancel {
                id: r.u64()?,
                code: r.u16()?,
                reason: r.text()?,
            },
            0x47 => Message::Complete { id: r.u64()? },
            0x48 => Message::Failed {
                id: r.u64()?,
                code: r.u16()?,
                reason: r.text()?,
            },
            0x80..=0xFF => Message::Extension {
                kind,
                body: r.bytes(),
            },
            _ => return Err(code::UNKNOWN_TYPE),
        };
        if !r.rest.is_empty() {
            return Err(code::MALFORMED);
        }
        Ok(m)
    }
}

/// A frame of type `kind` around `body`, whatever they hold: for the cases that send what no
/// encoder would.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// A frame body being written, field by field (§2.2).
#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.raw(&[v])
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    // Lengths are cut to the field's width: the cases never send longer strings, and a
    // wrong length is what a case that wants one writes by hand with `frame`.
    fn str8(&mut self, s: &str) -> &mut Self {
        self.u8(s.len() as u8).raw(s.as_bytes())
    }
    fn str16(&mut self, s: &str) -> &mut Self {
        self.u16(s.len() as u16).raw(s.as_bytes())
    }
    fn names(&mut self, names: &[String]) -> &mut Self {
        self.u32(names.len() as u32);
        for n in names {
            self.str8(n);
        }
        self
    }
}

/// A frame body being read, field by field; each error is the code §4.3 gives it.
struct Fields<'a> {
    rest: &'a [u8],
}

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], u16> {
        if self.rest.len() < n {
            return Err(code::MALFORMED);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], u16> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, u16> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, u16> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, u16> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn digest(&mut self) -> Result<[u8; 32], u16> {
        self.array()
    }
    fn flags(&mut self) -> Result<bool, u16> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(code::MALFORMED),
        }
    }
    fn utf8(bytes: &[u8]) -> Result<String, u16> {
        String::from_utf8(bytes.to_vec()).map_err(|_| code::INVALID_UTF8)
    }
    fn str8(&mut self) -> Result<String, u16> {
        let n = self.u8()? as usize;
        Self::utf8(self.take(n)?)
    }
    fn str16(&mut self) -> Result<String, u16> {
        let n = self.u16()? as usize;
        Self::utf8(self.take(n)?)
    }
    fn text(&mut self) -> Result<String, u16> {
        let all = self.rest.len();
        Self::utf8(self.take(all)?)
    }
    fn bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rest).to_vec()
    }
    /// A `login` secret or a `token`: text of at most [`MAX_SECRET`] bytes (§6.2).
    fn secret(&mut self) -> Result<String, u16> {
        if self.rest.len() > MAX_SECRET {
            return Err(code::MALFORMED);
        }
        self.text()
    }
    fn names(&mut self) -> Result<Vec<String>, u16> {
        let count = self.u32()? as usize;
        // Each name takes at least its length byte: a larger count is a lie (§4.3).
        if count > self.rest.len() {
            return Err(code::MALFORMED);
        }
        (0..count).map(|_| self.str8()).collect()
    }
    fn rooms(&mut self) -> Result<Vec<(String, u32)>, u16> {
        let count = self.u32()? as usize;
        // Each entry takes at least five bytes (§6.10.3): a larger count is refused before
        // anything is reserved for it.
        if count > self.rest.len() / 5 {
            return Err(code::MALFORMED);
        }
        (0..count)
            .map(|_| Ok((self.str8()?, self.u32()?)))
            .collect()
    }
}

/// What a [`FrameReader`] made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole message.
    Message(Message),
    /// More bytes are needed.
    Incomplete,
    /// The stream breaks a rule of §4.3; the code a receiver reports.
    Violation(u16),
}

/// Cuts a byte stream into frames and messages, checking each length against `limit` on its
/// four bytes alone (§4.3) and growing its buffer only as bytes arrive.
#[derive(Debug)]
pub struct FrameReader {
    limit: u32,
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader that accepts bodies of at most `limit` bytes.
    pub fn new(limit: u32) -> FrameReader {
        FrameReader {
            limit,
            buf: Vec::new(),
        }
    }

    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of a frame is held (at the end of the stream: `truncated`).
    pub fn holds_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next message, if the bytes so far hold one.
    pub fn next_message(&mut self) -> Decoded {
        if self.buf.len() < 4 {
            return Decoded::Incomplete;
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len > self.limit {
            return Decoded::Violation(code::FRAME_TOO_LARGE);
        }
        let end = HEADER_LEN + len as usize;
        if self.buf.len() < end {
            return Decoded::Incomplete;
        }
        let kind = self.buf[4];
        let result = Message::decode(kind, &self.buf[HEADER_LEN..end]);
        self.buf.drain(..end);
        match result {
            Ok(m) => Decoded::Message(m),
            Err(code) => Decoded::Violation(code),
        }
    }
}
