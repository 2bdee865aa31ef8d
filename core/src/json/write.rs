//! Message → JSON text. Written by hand (not through a serializer) so that keys come out in
//! the spec's order, `type` first, which keeps logs and vectors readable.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::wire::{login_method, Message, PresenceKind, RoomInfo, Utf8};
use crate::ErrorCode;

/// Builds one JSON object, key by key.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_str(self.out, key);
        self.out.push(':');
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_json_str(self.out, value);
        self
    }

    pub(crate) fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.out.push_str(&value.to_string());
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    fn base64(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.key(key);
        self.out.push('"');
        STANDARD.encode_string(value, self.out);
        self.out.push('"');
        self
    }

    fn names(&mut self, key: &str, names: &[Utf8]) -> &mut Self {
        self.key(key);
        self.out.push('[');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_json_str(self.out, name);
        }
        self.out.push(']');
        self
    }

    /// `[{"name":…,"members":…},…]`.
    fn rooms(&mut self, key: &str, rooms: &[RoomInfo]) -> &mut Self {
        self.key(key);
        self.out.push('[');
        for (i, room) in rooms.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            ObjectWriter::new(self.out)
                .str("name", &room.name)
                .num("members", room.members.into())
                .finish();
        }
        self.out.push(']');
        self
    }

    /// `code` as a number and `code_name` as its spec name, so a reader needs no table.
    fn code(&mut self, code: ErrorCode) -> &mut Self {
        self.num("code", code.to_u16().into());
        self.str("code_name", code.name())
    }

    pub(crate) fn finish(&mut self) {
        self.out.push('}');
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping: quote, backslash and the C0
/// controls; everything else, non-ASCII included, is written as is).
pub(super) fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1F => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{b:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `msg` as one JSON object to `out`.
pub(super) fn write_message(msg: &Message, out: &mut String) {
    let mut w = ObjectWriter::new(out);
    w.str("type", msg.name());
    match msg {
        Message::Hello(h) => {
            w.str("name", &h.name)
                .num("capabilities", h.capabilities.into())
                .num("max_frame", h.max_frame.into());
        }
        Message::Welcome(x) => {
            w.str("name", &x.name)
                .str("server", &x.server)
                .num("heartbeat_ms", x.heartbeat_ms.into())
                .num("timeout_ms", x.timeout_ms.into())
                .num("max_frame", x.max_frame.into())
                .num("capabilities", x.capabilities.into())
                .names("online", &x.online);
        }
        Message::Login { method, secret } => {
            match *method {
                login_method::PASSWORD => w.str("method", "password"),
                login_method::TOKEN => w.str("method", "token"),
                other => w.num("method", other.into()),
            };
            w.str("secret", secret.expose());
        }
        Message::Token { token } => {
            w.str("token", token.expose());
        }
        Message::Refused { code, reason } | Message::Goodbye { code, reason } => {
            w.code(*code).str("reason", reason);
        }
        Message::Error { code, text } => {
            w.code(*code).str("text", text);
        }
        Message::Text {
            peer,
            private,
            text,
        } => {
            w.str("peer", peer)
                .bool("private", *private)
                .str("text", text);
        }
        Message::Blob {
            peer,
            private,
            media_type,
            data,
        } => {
            w.str("peer", peer)
                .bool("private", *private)
                .str("media_type", media_type)
                .base64("data", data);
        }
        Message::Presence { kind, name } => {
            let kind = match kind {
                PresenceKind::Joined => "joined",
                PresenceKind::Left => "left",
            };
            w.str("kind", kind).str("name", name);
        }
        Message::RoomText { room, peer, text } => {
            w.str("room", room).str("peer", peer).str("text", text);
        }
        Message::Join { room } | Message::Leave { room } => {
            w.str("room", room);
        }
        Message::Member { kind, room, name } => {
            w.str("kind", kind.name())
                .str("room", room)
                .str("name", name);
        }
        Message::RoomMembers { room, names } => {
            w.str("room", room).names("names", names);
        }
        Message::RoomListRequest => {}
        Message::RoomList { rooms } => {
            w.rooms("rooms", rooms);
        }
        Message::ListRequest => {}
        Message::PeerList { names } => {
            w.names("names", names);
        }
        Message::Ping { nonce } | Message::Pong { nonce } => {
            w.num("nonce", *nonce);
        }
        Message::Offer(o) => {
            w.num("id", o.id)
                .str("peer", &o.peer)
                .num("size", o.size)
                .str("name", &o.name)
                .str("media_type", &o.media_type);
        }
        Message::Accept { id, offset, credit } => {
            w.num("id", *id)
                .num("offset", *offset)
                .num("credit", (*credit).into());
        }
        Message::Reject { id, code, reason }
        | Message::Cancel { id, code, reason }
        | Message::Failed { id, code, reason } => {
            w.num("id", *id).code(*code).str("reason", reason);
        }
        Message::Chunk { id, offset, data } => {
            w.num("id", *id).num("offset", *offset).base64("data", data);
        }
        Message::Credit { id, bytes } => {
            w.num("id", *id).num("bytes", (*bytes).into());
        }
        Message::Done { id, digest } => {
            w.num("id", *id).base64("sha256", digest);
        }
        Message::Complete { id } => {
            w.num("id", *id);
        }
        Message::Extension { kind, body } => {
            w.num("kind", (*kind).into()).base64("body", body);
        }
    }
    w.finish();
}
