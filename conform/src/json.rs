//! The JSON mode of the WebSocket carriage (§12.3): one message per text, read strictly.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::wire::{
    code, code_by_name, code_name, type_by_name, MemberKind, Message, Offer, Welcome, MAX_SECRET,
};

/// Who wrote the JSON being read: the gateway's output carries `code_name` beside every
/// `code`, a client's input may leave it out (§12.3, the mapping's `code` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// What a server sends: every member present.
    Server,
    /// What a client may send: `code_name` and `private` optional.
    Client,
}

/// The `login` methods that have a name in the JSON mode (§6.2, §12.3).
const LOGIN_METHODS: &[(u8, &str)] = &[(1, "password"), (2, "token")];

/// `message` as the JSON object of §12.3.
pub fn to_json(message: &Message) -> String {
    let mut o = Map::new();
    o.insert("type".into(), json!(message.name()));
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    let coded = |put: &mut dyn FnMut(&str, Value), c: u16| {
        put("code", json!(c));
        put("code_name", json!(code_name(c)));
    };
    match message {
        Message::Hello {
            name,
            capabilities,
            max_frame,
        } => {
            put("name", json!(name));
            put("capabilities", json!(capabilities));
            put("max_frame", json!(max_frame));
        }
        Message::Welcome(w) => {
            put("name", json!(w.name));
            put("server", json!(w.server));
            put("heartbeat_ms", json!(w.heartbeat_ms));
            put("timeout_ms", json!(w.timeout_ms));
            put("max_frame", json!(w.max_frame));
            put("capabilities", json!(w.capabilities));
            put("online", json!(w.online));
        }
        Message::Refused { code, reason } | Message::Goodbye { code, reason } => {
            coded(&mut put, *code);
            put("reason", json!(reason));
        }
        Message::Error { code, text } => {
            coded(&mut put, *code);
            put("text", json!(text));
        }
        Message::Login { method, secret } => {
            put(
                "method",
                match LOGIN_METHODS.iter().find(|(m, _)| m == method) {
                    Some((_, name)) => json!(name),
                    None => json!(method),
                },
            );
            put("secret", json!(secret));
        }
        Message::Token { token } => put("token", json!(token)),
        Message::Text {
            peer,
            private,
            text,
        } => {
            put("peer", json!(peer));
            put("private", json!(private));
            put("text", json!(text));
        }
        Message::Blob {
            peer,
            private,
            media_type,
            data,
        } => {
            put("peer", json!(peer));
            put("private", json!(private));
            put("media_type", json!(media_type));
            put("data", json!(BASE64.encode(data)));
        }
        Message::Presence { joined, name } => {
            put("kind", json!(if *joined { "joined" } else { "left" }));
            put("name", json!(name));
        }
        Message::ListRequest | Message::RoomListRequest => {}
        Message::PeerList { names } => put("names", json!(names)),
        Message::RoomText { room, peer, text } => {
            put("room", json!(room));
            put("peer", json!(peer));
            put("text", json!(text));
        }
        Message::Join { room } | Message::Leave { room } => put("room", json!(room)),
        Message::Member { kind, room, name } => {
            put("kind", json!(kind.name()));
            put("room", json!(room));
            put("name", json!(name));
        }
        Message::RoomMembers { room, names } => {
            put("room", json!(room));
            put("names", json!(names));
        }
        Message::RoomList { rooms } => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|(name, members)| json!({"name": name, "members": members}))
                .collect();
            put("rooms", Value::Array(rooms));
        }
        Message::Ping { nonce } | Message::Pong { nonce } => put("nonce", json!(nonce)),
        Message::Offer(o) => {
            put("id", json!(o.id));
            put("peer", json!(o.peer));
            put("size", json!(o.size));
            put("name", json!(o.name));
            put("media_type", json!(o.media_type));
        }
        Message::Accept { id, offset, credit } => {
            put("id", json!(id));
            put("offset", json!(offset));
            put("credit", json!(credit));
        }
        Message::Reject { id, code, reason }
        | Message::Cancel { id, code, reason }
        | Message::Failed { id, code, reason } => {
            put("id", json!(id));
            coded(&mut put, *code);
            put("reason", json!(reason));
        }
        Message::Chunk { id, offset, data } => {
            put("id", json!(id));
            put("offset", json!(offset));
            put("data", json!(BASE64.encode(data)));
        }
        Message::Credit { id, bytes } => {
            put("id", json!(id));
            put("bytes", json!(bytes));
        }
        Message::Done { id, sha256 } => {
            put("id", json!(id));
            put("sha256", json!(BASE64.encode(sha256)));
        }
        Message::Complete { id } => put("id", json!(id)),
        Message::Extension { kind, body } => {
            put("kind", json!(kind));
            put("body", json!(BASE64.encode(body)));
        }
    }
    Value::Object(o).to_string()
}

/// Reads one JSON text as a message (§12.3, "Strict parsing"): `Err` holds the code a
/// receiver must refuse it with and why.
pub fn from_json(text: &str, source: Source) -> Result<Message, (u16, String)> {
    let malformed = |why: String| (code::MALFORMED, why);
    let value: Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("not one JSON value: {e}")))?;
    let Value::Object(object) = value else {
        return Err(malformed("not a JSON object".into()));
    };
    let Some(Value::String(kind)) = object.get("type") else {
        return Err(malformed("no string `type`".into()));
    };
    if kind != "extension" && type_by_name(kind).is_none() {
        return Err((code::UNKNOWN_TYPE, format!("unknown type {kind:?}")));
    }
    let mut o = Members {
        object: &object,
        used: vec!["type"],
        source,
    };
    let m = match kind.as_str() {
        "hello" => Message::Hello {
            name: o.str8("name")?,
            capabilities: o.uint("capabilities", u32::MAX.into())? as u32,
            max_frame: o.uint("max_frame", u32::MAX.into())? as u32,
        },
        "welcome" => Message::Welcome(Welcome {
            name: o.str8("name")?,
            server: o.str8("server")?,
            heartbeat_ms: o.u32("heartbeat_ms")?,
            timeout_ms: o.u32("timeout_ms")?,
            max_frame: o.u32("max_frame")?,
            capabilities: o.u32("capabilities")?,
            online: o.names("online")?,
        }),
        "refused" => Message::Refused {
            code: o.code()?,
            reason: o.string("reason")?,
        },
        "login" => Message::Login {
            method: o.login_method()?,
            secret: o.limited("secret", MAX_SECRET)?,
        },
        "token" => Message::Token {
            token: o.limited("token", MAX_SECRET)?,
        },
        "error" => Message::Error {
            code: o.code()?,
            text: o.string("text")?,
        },
        "goodbye" => Message::Goodbye {
            code: o.code()?,
            reason: o.string("reason")?,
        },
        "text" => Message::Text {
            peer: o.str8("peer")?,
            private: o.private()?,
            text: o.string("text")?,
        },
        "blob" => Message::Blob {
            peer: o.str8("peer")?,
            private: o.private()?,
            media_type: o.str8("media_type")?,
            data: o.base64("data")?,
        },
        "presence" => Message::Presence {
            joined: match o.string("kind")?.as_str() {
                "joined" => true,
                "left" => false,
                other => return Err(malformed(format!("presence kind {other:?}"))),
            },
            name: o.str8("name")?,
        },
        "list-request" => Message::ListRequest,
        "peer-list" => Message::PeerList {
            names: o.names("names")?,
        },
        "room-text" => Message::RoomText {
            room: o.str8("room")?,
            peer: o.str8("peer")?,
            text: o.string("text")?,
        },
        "join" => Message::Join {
            room: o.str8("room")?,
        },
        "leave" => Message::Leave {
            room: o.str8("room")?,
        },
        "member" => {
            let kind = o.string("kind")?;
            Message::Member {
                kind: [MemberKind::Joined, MemberKind::Left, MemberKind::Removed]
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .ok_or_else(|| malformed(format!("member kind {kind:?}")))?,
                room: o.str8("room")?,
                name: o.str8("name")?,
            }
        }
        "room-members" => Message::RoomMembers {
            room: o.str8("room")?,
            names: o.names("names")?,
        },
        "room-list-request" => Message::RoomListRequest,
        "room-list" => Message::RoomList { rooms: o.rooms()? },
        "ping" => Message::Ping {
            nonce: o.u64("nonce")?,
        },
        "pong" => Message::Pong {
            nonce: o.u64("nonce")?,
        },
        "offer" => Message::Offer(Offer {
            id: o.u64("id")?,
            peer: o.str8("peer")?,
            size: o.u64("size")?,
            name: o.str16("name")?,
            media_type: o.str8("media_type")?,
        }),
        "accept" => Message::Accept {
            id: o.u64("id")?,
            offset: o.u64("offset")?,
            credit: o.u32("credit")?,
        },
        "reject" => Message::Reject {
            id: o.u64("id")?,
            code: o.code()?,
            reason: o.string("reason")?,
        },
        "cancel" => Message::Cancel {
            id: o.u64("id")?,
            code: o.code()?,
            reason: o.string("reason")?,
        },
        "failed" => Message::Failed {
            id: o.u64("id")?,
            code: o.code()?,
            reason: o.string("reason")?,
        },
        "chunk" => Message::Chunk {
            id: o.u64("id")?,
            offset: o.u64("offset")?,
            data: o.base64("data")?,
        },
        "credit" => Message::Credit {
            id: o.u64("id")?,
            bytes: o.u32("bytes")?,
        },
        "done" => {
            let id = o.u64("id")?;
            let digest = o.base64("sha256")?;
            let sha256 = digest
                .try_into()
                .map_err(|_| malformed("sha256 is not 32 bytes".into()))?;
            Message::Done { id, sha256 }
        }
        "complete" => Message::Complete { id: o.u64("id")? },
        _ => {
            let kind = o.uint("kind", 0xFF)?;
            if kind < 0x80 {
                return Err(malformed(format!("extension kind {kind} is below 128")));
            }
            Message::Extension {
                kind: kind as u8,
                body: o.base64("body")?,
            }
        }
    };
    if let Some(extra) = object.keys().find(|k| !o.used.contains(&k.as_str())) {
        return Err(malformed(format!(
            "member {extra:?} is not a field of {kind}"
        )));
    }
    Ok(m)
}

/// The members of one JSON object being read; remembers which were used, so that a member
/// the type does not have can be refused.
struct Members<'a> {
    object: &'a Map<String, Value>,
    used: Vec<&'static str>,
    source: Source,
}

type Field<T> = Result<T, (u16, String)>;

impl Members<'_> {
    fn get(&mut self, key: &'static str) -> Field<&Value> {
        self.used.push(key);
        self.object
            .get(key)
            .ok_or_else(|| (code::MALFORMED, format!("member {key:?} is missing")))
    }
    fn wrong(key: &str, what: &str) -> (u16, String) {
        (code::MALFORMED, format!("member {key:?} is not {what}"))
    }
    fn string(&mut self, key: &'static str) -> Field<String> {
        match self.get(key)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(Self::wrong(key, "a string")),
        }
    }
    fn limited(&mut self, key: &'static str, max: usize) -> Field<String> {
        let s = self.string(key)?;
        if s.len() > max {
            return Err(Self::wrong(key, &format!("at most {max} bytes")));
        }
        Ok(s)
    }
    fn str8(&mut self, key: &'static str) -> Field<String> {
        self.limited(key, 255)
    }
    fn str16(&mut self, key: &'static str) -> Field<String> {
        self.limited(key, 65_535)
    }
    fn uint(&mut self, key: &'static str, max: u64) -> Field<u64> {
        match self.get(key)?.as_u64() {
            Some(v) if v <= max => Ok(v),
            _ => Err(Self::wrong(key, &format!("an integer from 0 to {max}"))),
        }
    }
    fn u32(&mut self, key: &'static str) -> Field<u32> {
        Ok(self.uint(key, u32::MAX.into())? as u32)
    }
    fn u64(&mut self, key: &'static str) -> Field<u64> {
        self.uint(key, u64::MAX)
    }
    /// `login`'s method: its name, or the number of a method without one (§12.3).
    fn login_method(&mut self) -> Field<u8> {
        match self.get("method")? {
            Value::String(name) => LOGIN_METHODS
                .iter()
                .find(|(_, n)| n == name)
                .map(|(m, _)| *m)
                .ok_or_else(|| Self::wrong("method", "password, token or a number")),
            _ => Ok(self.uint("method", u8::MAX.into())? as u8),
        }
    }
    fn code(&mut self) -> Field<u16> {
        let code = self.uint("code", u16::MAX.into())? as u16;
        let named = match (self.object.contains_key("code_name"), self.source) {
            (true, _) => Some(self.string("code_name")?),
            (false, Source::Client) => None,
            (false, Source::Server) => Some(self.string("code_name")?),
        };
        if let Some(name) = named {
            // `other` names every unassigned number (§12.3).
            let expected = code_by_name(&name)
                .map_or(name == "other" && code_name(code) == "other", |c| c == code);
            if !expected {
                return Err(Self::wrong(
                    "code_name",
                    &format!("the name of code {code}"),
                ));
            }
        }
        Ok(code)
    }
    fn private(&mut self) -> Field<bool> {
        if self.source == Source::Client && !self.object.contains_key("private") {
            return Ok(false);
        }
        match self.get("private")? {
            Value::Bool(b) => Ok(*b),
            _ => Err(Self::wrong("private", "a boolean")),
        }
    }
    fn base64(&mut self, key: &'static str) -> Field<Vec<u8>> {
        let s = self.string(key)?;
        BASE64
            .decode(s.as_bytes())
            .map_err(|_| Self::wrong(key, "standard base64 with padding"))
    }
    /// `room-list`'s rooms: an array of objects with exactly `name` and `members` (§12.3).
    fn rooms(&mut self) -> Field<Vec<(String, u32)>> {
        let Value::Array(items) = self.get("rooms")? else {
            return Err(Self::wrong("rooms", "an array"));
        };
        let entry = |v: &Value| -> Option<(String, u32)> {
            let o = v.as_object().filter(|o| o.len() == 2)?;
            let name = o.get("name")?.as_str().filter(|s| s.len() <= 255)?;
            let members = u32::try_from(o.get("members")?.as_u64()?).ok()?;
            Some((name.to_owned(), members))
        };
        items
            .iter()
            .map(|v| entry(v).ok_or_else(|| Self::wrong("rooms", "[{name, members}, …]")))
            .collect()
    }
    fn names(&mut self, key: &'static str) -> Field<Vec<String>> {
        let Value::Array(items) = self.get(key)? else {
            return Err(Self::wrong(key, "an array"));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) if s.len() <= 255 => Ok(s.clone()),
                _ => Err(Self::wrong(key, "an array of names")),
            })
            .collect()
    }
}
