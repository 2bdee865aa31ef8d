//! JSON text → Message, strictly: every field present with its JSON type and within its
//! native range, no field the type does not have.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::wire::{
    frame_type, login_method, Hello, MemberKind, Message, Offer, PresenceKind, RoomInfo, Secret,
    Utf8, Welcome, DIGEST_LEN, MAX_SECRET,
};
use crate::{ErrorCode, ProtocolError};

fn malformed(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::Malformed, detail)
}

/// The fields of one object, checked off as they are read so that leftovers can be refused.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Result<Value, ProtocolError> {
        self.map
            .remove(key)
            .ok_or_else(|| malformed("a field of this message type is missing"))
    }

    fn string(&mut self, key: &str) -> Result<String, ProtocolError> {
        match self.take(key)? {
            Value::String(s) => Ok(s),
            _ => Err(malformed("a text field is not a JSON string")),
        }
    }

    fn text(&mut self, key: &str) -> Result<Utf8, ProtocolError> {
        Ok(Utf8::from(self.string(key)?))
    }

    /// A string whose native field has a one-byte length prefix: longer would be cut by the
    /// encoder and change meaning, so it is refused here.
    fn str8(&mut self, key: &str) -> Result<Utf8, ProtocolError> {
        let s = self.string(key)?;
        if s.len() > u8::MAX as usize {
            return Err(malformed("a short text field is longer than 255 bytes"));
        }
        Ok(Utf8::from(s))
    }

    fn str16(&mut self, key: &str) -> Result<Utf8, ProtocolError> {
        let s = self.string(key)?;
        if s.len() > u16::MAX as usize {
            return Err(malformed("a file name is longer than 65 535 bytes"));
        }
        Ok(Utf8::from(s))
    }

    fn u64(&mut self, key: &str) -> Result<u64, ProtocolError> {
        // `as_u64` is `None` for negatives, fractions and exponents beyond u64: all refused.
        self.take(key)?
            .as_u64()
            .ok_or_else(|| malformed("a number field is not an unsigned integer in range"))
    }

    fn u32(&mut self, key: &str) -> Result<u32, ProtocolError> {
        u32::try_from(self.u64(key)?).map_err(|_| malformed("a u32 field is out of range"))
    }

    fn bool_or_false(&mut self, key: &str) -> Result<bool, ProtocolError> {
        match self.map.remove(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(malformed("a flag field is not a JSON boolean")),
        }
    }

    fn base64(&mut self, key: &str) -> Result<Vec<u8>, ProtocolError> {
        STANDARD
            .decode(self.string(key)?)
            .map_err(|_| malformed("a binary field is not standard base64"))
    }

    fn names(&mut self, key: &str) -> Result<Vec<Utf8>, ProtocolError> {
        let Value::Array(items) = self.take(key)? else {
            return Err(malformed("a list of names is not a JSON array"));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) if s.len() <= u8::MAX as usize => Ok(Utf8::from(s)),
                Value::String(_) => Err(malformed("a name in a list is longer than 255 bytes")),
                _ => Err(malformed("a name in a list is not a JSON string")),
            })
            .collect()
    }

    /// `[{"name":…,"members":…},…]`, each object strict like a message.
    fn rooms(&mut self, key: &str) -> Result<Vec<RoomInfo>, ProtocolError> {
        let Value::Array(items) = self.take(key)? else {
            return Err(malformed("a list of rooms is not a JSON array"));
        };
        items
            .into_iter()
            .map(|item| {
                let Value::Object(map) = item else {
                    return Err(malformed("a room in a list is not a JSON object"));
                };
                let mut f = Fields { map };
                let room = RoomInfo {
                    name: f.str8("name")?,
                    members: f.u32("members")?,
                };
                if !f.map.is_empty() {
                    return Err(malformed("a room in a list has a field it does not have"));
                }
                Ok(room)
            })
            .collect()
    }

    /// `code` as a number; an optional `code_name` must name the same code.
    fn code(&mut self) -> Result<ErrorCode, ProtocolError> {
        let value = self.u64("code")?;
        let code = u16::try_from(value)
            .map(ErrorCode::from_u16)
            .map_err(|_| malformed("an error code is out of range"))?;
        match self.map.remove("code_name") {
            None => Ok(code),
            Some(Value::String(name)) if name == code.name() => Ok(code),
            Some(_) => Err(malformed("code_name does not name the code")),
        }
    }

    fn finish(self) -> Result<(), ProtocolError> {
        if self.map.is_empty() {
            Ok(())
        } else {
            Err(malformed("a field this message type does not have"))
        }
    }
}

/// Parses an already size-checked JSON text.
pub(super) fn read_message(text: &str) -> Result<Message, ProtocolError> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| malformed("the text is not valid JSON"))?;
    let Value::Object(map) = value else {
        return Err(malformed("the JSON text is not an object"));
    };
    let mut f = Fields { map };
    let kind = f.string("type")?;
    let msg = match kind.as_str() {
        "hello" => Message::Hello(Hello {
            name: f.str8("name")?,
            capabilities: f.u32("capabilities")?,
            max_frame: f.u32("max_frame")?,
        }),
        "welcome" => Message::Welcome(Welcome {
            name: f.str8("name")?,
            server: f.str8("server")?,
            heartbeat_ms: f.u32("heartbeat_ms")?,
            timeout_ms: f.u32("timeout_ms")?,
            max_frame: f.u32("max_frame")?,
            capabilities: f.u32("capabilities")?,
            online: f.names("online")?,
        }),
        "refused" => Message::Refused {
            code: f.code()?,
            reason: f.text("reason")?,
        },
        "login" => {
            let method = match f.take("method")? {
                Value::String(m) if m == "password" => login_method::PASSWORD,
                Value::String(m) if m == "token" => login_method::TOKEN,
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| malformed("a login method number is out of range"))?,
                _ => {
                    return Err(malformed(
                        "a login method is neither a known name nor a number",
                    ))
                }
            };
            let secret = f.text("secret")?;
            if secret.len() > MAX_SECRET {
                return Err(malformed("login secret longer than 1024 bytes"));
            }
            Message::Login {
                method,
                secret: Secret::new(&secret),
            }
        }
        "token" => {
            let token = f.text("token")?;
            if token.len() > MAX_SECRET {
                return Err(malformed("session token longer than 1024 bytes"));
            }
            Message::Token {
                token: Secret::new(&token),
            }
        }
        "text" => Message::Text {
            peer: f.str8("peer")?,
            private: f.bool_or_false("private")?,
            text: f.text("text")?,
        },
        "blob" => Message::Blob {
            peer: f.str8("peer")?,
            private: f.bool_or_false("private")?,
            media_type: f.str8("media_type")?,
            data: Bytes::from(f.base64("data")?),
        },
        "presence" => Message::Presence {
            kind: match f.string("kind")?.as_str() {
                "joined" => PresenceKind::Joined,
                "left" => PresenceKind::Left,
                _ => return Err(malformed("presence kind is neither joined nor left")),
            },
            name: f.str8("name")?,
        },
        "room-text" => Message::RoomText {
            room: f.str8("room")?,
            peer: f.str8("peer")?,
            text: f.text("text")?,
        },
        "join" => Message::Join {
            room: f.str8("room")?,
        },
        "leave" => Message::Leave {
            room: f.str8("room")?,
        },
        "member" => Message::Member {
            kind: match f.string("kind")?.as_str() {
                "joined" => MemberKind::Joined,
                "left" => MemberKind::Left,
                "removed" => MemberKind::Removed,
                _ => return Err(malformed("member kind is not joined, left or removed")),
            },
            room: f.str8("room")?,
            name: f.str8("name")?,
        },
        "room-members" => Message::RoomMembers {
            room: f.str8("room")?,
            names: f.names("names")?,
        },
        "room-list-request" => Message::RoomListRequest,
        "room-list" => Message::RoomList {
            rooms: f.rooms("rooms")?,
        },
        "list-request" => Message::ListRequest,
        "peer-list" => Message::PeerList {
            names: f.names("names")?,
        },
        "ping" => Message::Ping {
            nonce: f.u64("nonce")?,
        },
        "pong" => Message::Pong {
            nonce: f.u64("nonce")?,
        },
        "error" => Message::Error {
            code: f.code()?,
            text: f.text("text")?,
        },
        "goodbye" => Message::Goodbye {
            code: f.code()?,
            reason: f.text("reason")?,
        },
        "offer" => Message::Offer(Offer {
            id: f.u64("id")?,
            peer: f.str8("peer")?,
            size: f.u64("size")?,
            name: f.str16("name")?,
            media_type: f.str8("media_type")?,
        }),
        "accept" => Message::Accept {
            id: f.u64("id")?,
            offset: f.u64("offset")?,
            credit: f.u32("credit")?,
        },
        "reject" => Message::Reject {
            id: f.u64("id")?,
            code: f.code()?,
            reason: f.text("reason")?,
        },
        "chunk" => Message::Chunk {
            id: f.u64("id")?,
            offset: f.u64("offset")?,
            data: Bytes::from(f.base64("data")?),
        },
        "credit" => Message::Credit {
            id: f.u64("id")?,
            bytes: f.u32("bytes")?,
        },
        "done" => Message::Done {
            id: f.u64("id")?,
            digest: <[u8; DIGEST_LEN]>::try_from(f.base64("sha256")?)
                .map_err(|_| malformed("sha256 is not 32 bytes"))?,
        },
        "cancel" => Message::Cancel {
            id: f.u64("id")?,
            code: f.code()?,
            reason: f.text("reason")?,
        },
        "complete" => Message::Complete { id: f.u64("id")? },
        "failed" => Message::Failed {
            id: f.u64("id")?,
            code: f.code()?,
            reason: f.text("reason")?,
        },
        "extension" => Message::Extension {
            kind: match u8::try_from(f.u64("kind")?) {
                Ok(k) if k >= frame_type::FIRST_EXTENSION => k,
                _ => return Err(malformed("an extension kind is not in 128..=255")),
            },
            body: Bytes::from(f.base64("body")?),
        },
        _ => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "unknown message type",
            ))
        }
    };
    f.finish()?;
    Ok(msg)
}
