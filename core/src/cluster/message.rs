//! The messages the nodes of a cluster publish to each other through the broker (spec §14),
//! and their binary encoding.
//!
//! Every message starts with a version byte ([`VERSION`]), a kind byte and the sending
//! node's name (a `str8`). Integers are big-endian; strings carry their length before them
//! (`str8`: one byte, `str32`: four). What follows depends on the kind:
//!
//! | kind | message | body after the node |
//! |---|---|---|
//! | 1 | [`NodeMessage::Alive`] | `u64` seq, `u32` members |
//! | 2 | [`NodeMessage::Hello`] | — |
//! | 3 | [`NodeMessage::Roster`] | `u64` seq, `u8` first, `u32` count, count × `str8` name |
//! | 4 | [`NodeMessage::Presence`] | `u64` seq, `u32` count, count × (`u8` 1 joined / 2 left, `str8` name) |
//! | 5 | [`NodeMessage::Gone`] | — |
//! | 6 | [`NodeMessage::Say`] | `str8` room, `str8` from, said |
//! | 7 | [`NodeMessage::Private`] | `str8` to, `str8` from, said |
//!
//! `said` is `u8` 1 and a `str32` text, or `u8` 2, a `str8` media type and a `u32` length
//! followed by the blob's bytes.
//!
//! Nodes trust the broker, never a client: the `from` of a message is the name the sending
//! node registered for its client. Yet a decoder still meets whatever is on the broker, so
//! [`NodeMessage::decode`] checks every length and string, and a hub drops a message that does
//! not decode (it is fuzzed: `fuzz/fuzz_targets/node_message.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::reader::Reader;
use crate::wire::Utf8;
use crate::{ErrorCode, ProtocolError};

/// The version byte every node message starts with.
pub const VERSION: u8 = 1;

const KIND_ALIVE: u8 = 1;
const KIND_HELLO: u8 = 2;
const KIND_ROSTER: u8 = 3;
const KIND_PRESENCE: u8 = 4;
const KIND_GONE: u8 = 5;
const KIND_SAY: u8 = 6;
const KIND_PRIVATE: u8 = 7;

const SAID_TEXT: u8 = 1;
const SAID_BLOB: u8 = 2;

const JOINED: u8 = 1;
const LEFT: u8 = 2;

/// What a client said: text or a blob. The same for a line that stays on one node and one
/// that crosses to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Chat text.
    Text(Utf8),
    /// Bytes with a media type (such as `image/png`).
    Blob {
        /// Its media type.
        media_type: Utf8,
        /// The bytes, zero-copy.
        data: Bytes,
    },
}

/// One change of a node's users: joined (`true`) or left, and the name.
pub type Change = (bool, Utf8);

/// A message from one node of a cluster to the others.
///
/// ```
/// use tidings_core::cluster::{NodeMessage, Said};
/// let msg = NodeMessage::Say {
///     node: "east".into(),
///     room: "lobby".into(),
///     from: "alice".into(),
///     said: Said::Text("hello from the east".into()),
/// };
/// let bytes = msg.encode();
/// assert_eq!(NodeMessage::decode(bytes).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeMessage {
    /// Sent every [`super::ClusterConfig::alive_interval`]: the node lives, has published
    /// `seq` presence messages in this incarnation and has `members` users.
    Alive {
        /// The node.
        node: Utf8,
        /// Its presence counter: a node that heard fewer missed some and asks again.
        seq: u64,
        /// Its users online.
        members: u32,
    },
    /// A node started or came back: every other node answers with its [`NodeMessage::Roster`].
    Hello {
        /// The node.
        node: Utf8,
    },
    /// Every user of a node, at presence counter `seq`, in parts: the `first` part replaces
    /// what was known of the node, the others add to it.
    Roster {
        /// The node.
        node: Utf8,
        /// The presence counter the list is true at.
        seq: u64,
        /// Whether this part starts the list.
        first: bool,
        /// Names of this part.
        names: Vec<Utf8>,
    },
    /// Users of a node joined or left, in order. `seq` counts this message.
    Presence {
        /// The node.
        node: Utf8,
        /// The node's presence counter after this message.
        seq: u64,
        /// What changed, in order.
        changes: Vec<Change>,
    },
    /// A node stops: its users are gone.
    Gone {
        /// The node.
        node: Utf8,
    },
    /// A line in a room, from a user of `node`.
    Say {
        /// The node of the sender.
        node: Utf8,
        /// The room, as spelled where it was said.
        room: Utf8,
        /// The sender, as its node registered it.
        from: Utf8,
        /// What was said.
        said: Said,
    },
    /// A private message to `to`, from a user of `node`.
    Private {
        /// The node of the sender.
        node: Utf8,
        /// The addressee.
        to: Utf8,
        /// The sender, as its node registered it.
        from: Utf8,
        /// What was said.
        said: Said,
    },
}

fn bad(detail: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::Malformed, detail)
}

fn put_str8(out: &mut BytesMut, s: &str) {
    // Names are at most 32 characters (128 bytes) and node names are checked the same way,
    // so a longer string is a caller's bug, not input.
    debug_assert!(s.len() <= 255, "str8 field longer than 255 bytes");
    let s = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(s.len() as u8);
    out.put_slice(s);
}

fn put_said(out: &mut BytesMut, said: &Said) {
    match said {
        Said::Text(text) => {
            out.put_u8(SAID_TEXT);
            out.put_u32(text.len() as u32);
            out.put_slice(text.as_bytes());
        }
        Said::Blob { media_type, data } => {
            out.put_u8(SAID_BLOB);
            put_str8(out, media_type);
            out.put_u32(data.len() as u32);
            out.put_slice(data);
        }
    }
}

fn said(r: &mut Reader) -> Result<Said, ProtocolError> {
    match r.u8()? {
        SAID_TEXT => {
            let n = r.u32()? as usize;
            Ok(Said::Text(r.str_n(n)?))
        }
        SAID_BLOB => {
            let media_type = r.str8()?;
            let n = r.u32()? as usize;
            Ok(Said::Blob {
                media_type,
                data: r.bytes(n)?,
            })
        }
        _ => Err(bad("unknown kind of chat in a node message")),
    }
}

/// Bounds a count read from the input by what the rest could hold (`each` bytes at least per
/// item), so a forged count cannot make the decoder reserve memory.
fn count(r: &mut Reader, each: usize) -> Result<usize, ProtocolError> {
    let n = r.u32()? as usize;
    if n > r.remaining() / each {
        return Err(bad("count larger than the node message"));
    }
    Ok(n)
}

impl NodeMessage {
    /// The node that sent it.
    pub fn node(&self) -> &Utf8 {
        match self {
            NodeMessage::Alive { node, .. }
            | NodeMessage::Hello { node }
            | NodeMessage::Roster { node, .. }
            | NodeMessage::Presence { node, .. }
            | NodeMessage::Gone { node }
            | NodeMessage::Say { node, .. }
            | NodeMessage::Private { node, .. } => node,
        }
    }

    /// The message in its binary form.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_u8(VERSION);
        let kind = match self {
            NodeMessage::Alive { .. } => KIND_ALIVE,
            NodeMessage::Hello { .. } => KIND_HELLO,
            NodeMessage::Roster { .. } => KIND_ROSTER,
            NodeMessage::Presence { .. } => KIND_PRESENCE,
            NodeMessage::Gone { .. } => KIND_GONE,
            NodeMessage::Say { .. } => KIND_SAY,
            NodeMessage::Private { .. } => KIND_PRIVATE,
        };
        out.put_u8(kind);
        put_str8(&mut out, self.node());
        match self {
            NodeMessage::Alive { seq, members, .. } => {
                out.put_u64(*seq);
                out.put_u32(*members);
            }
            NodeMessage::Hello { .. } | NodeMessage::Gone { .. } => {}
            NodeMessage::Roster {
                seq, first, names, ..
            } => {
                out.put_u64(*seq);
                out.put_u8(u8::from(*first));
                out.put_u32(names.len() as u32);
                for name in names {
                    put_str8(&mut out, name);
                }
            }
            NodeMessage::Presence { seq, changes, .. } => {
                out.put_u64(*seq);
                out.put_u32(changes.len() as u32);
                for (joined, name) in changes {
                    out.put_u8(if *joined { JOINED } else { LEFT });
                    put_str8(&mut out, name);
                }
            }
            NodeMessage::Say {
                room, from, said, ..
            } => {
                put_str8(&mut out, room);
                put_str8(&mut out, from);
                put_said(&mut out, said);
            }
            NodeMessage::Private { to, from, said, .. } => {
                put_str8(&mut out, to);
                put_str8(&mut out, from);
                put_said(&mut out, said);
            }
        }
        out.freeze()
    }

    /// Decodes one message; text and blobs stay slices of `bytes`.
    ///
    /// # Errors
    ///
    /// `malformed` for another version, an unknown kind, a short or long body or a count
    /// the body cannot hold; `invalid-utf8` for a string that is not UTF-8.
    pub fn decode(bytes: Bytes) -> Result<NodeMessage, ProtocolError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != VERSION {
            return Err(bad("node message of another version"));
        }
        let kind = r.u8()?;
        let node = r.str8()?;
        let msg = match kind {
            KIND_ALIVE => NodeMessage::Alive {
                node,
                seq: r.u64()?,
                members: r.u32()?,
            },
            KIND_HELLO => NodeMessage::Hello { node },
            KIND_ROSTER => {
                let seq = r.u64()?;
                let first = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(bad("roster part flag neither 0 nor 1")),
                };
                let n = count(&mut r, 1)?;
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(r.str8()?);
                }
                NodeMessage::Roster {
                    node,
                    seq,
                    first,
                    names,
                }
            }
            KIND_PRESENCE => {
                let seq = r.u64()?;
                let n = count(&mut r, 2)?;
                let mut changes = Vec::with_capacity(n);
                for _ in 0..n {
                    let joined = match r.u8()? {
                        JOINED => true,
                        LEFT => false,
                        _ => return Err(bad("presence change neither joined nor left")),
                    };
                    changes.push((joined, r.str8()?));
                }
                NodeMessage::Presence { node, seq, changes }
            }
            KIND_GONE => NodeMessage::Gone { node },
            KIND_SAY => NodeMessage::Say {
                node,
                room: r.str8()?,
                from: r.str8()?,
                said: said(&mut r)?,
            },
            KIND_PRIVATE => NodeMessage::Private {
                node,
                to: r.str8()?,
                from: r.str8()?,
                said: said(&mut r)?,
            },
            _ => return Err(bad("unknown kind of node message")),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<NodeMessage> {
        let node = Utf8::from("node-1");
        vec![
            NodeMessage::Alive {
                node: node.clone(),
                seq: u64::MAX,
                members: 7,
            },
            NodeMessage::Hello { node: node.clone() },
            NodeMessage::Roster {
                node: node.clone(),
                seq: 3,
                first: true,
                names: vec!["alice".into(), "bøb".into()],
            },
            NodeMessage::Presence {
                node: node.clone(),
                seq: 4,
                changes: vec![(true, "carol".into()), (false, "alice".into())],
            },
            NodeMessage::Gone { node: node.clone() },
            NodeMessage::Say {
                node: node.clone(),
                room: "lobby".into(),
                from: "carol".into(),
                said: Said::Text("x".repeat(300).into()),
            },
            NodeMessage::Private {
                node,
                to: "bøb".into(),
                from: "carol".into(),
                said: Said::Blob {
                    media_type: "image/png".into(),
                    data: Bytes::from_static(&[0, 1, 2, 255]),
                },
            },
        ]
    }

    #[test]
    fn every_kind_comes_back_as_it_went() {
        for msg in all() {
            assert_eq!(NodeMessage::decode(msg.encode()).as_ref(), Ok(&msg));
        }
    }

    #[test]
    fn every_shortened_or_lengthened_message_is_refused() {
        for msg in all() {
            let bytes = msg.encode();
            for cut in 0..bytes.len() {
                assert!(
                    NodeMessage::decode(bytes.slice(..cut)).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
            let mut long = BytesMut::from(&bytes[..]);
            long.put_u8(0);
            assert!(NodeMessage::decode(long.freeze()).is_err());
        }
    }

    #[test]
    fn a_forged_count_reserves_nothing() {
        let mut out = BytesMut::new();
        out.put_u8(VERSION);
        out.put_u8(KIND_ROSTER);
        put_str8(&mut out, "n");
        out.put_u64(1);
        out.put_u8(1);
        out.put_u32(u32::MAX);
        let err = NodeMessage::decode(out.freeze()).unwrap_err();
        assert_eq!(err.detail, "count larger than the node message");
    }

    #[test]
    fn another_version_is_refused() {
        let mut bytes = BytesMut::from(&all()[0].encode()[..]);
        bytes[0] = VERSION + 1;
        assert!(NodeMessage::decode(bytes.freeze()).is_err());
    }
}
