//! proptest strategies for messages of every type, fields over their whole range (shared by
//! the wire, JSON and gateway property tests).

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use tidings_core::wire::{Hello, Message, Offer, PresenceKind, Utf8, Welcome};
use tidings_core::ErrorCode;

/// A UTF-8 string that fits a one-byte length prefix (at most 60 characters of 4 bytes).
pub fn str8() -> impl Strategy<Value = Utf8> {
    "\\PC{0,60}".prop_map(Utf8::from)
}

/// Longer text for fields that take the rest of the body.
pub fn text() -> impl Strategy<Value = Utf8> {
    "\\PC{0,300}".prop_map(Utf8::from)
}

pub fn data() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..600).prop_map(Bytes::from)
}

pub fn code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        proptest::sample::select(ErrorCode::ALL.to_vec()),
        any::<u16>().prop_map(ErrorCode::from_u16),
    ]
}

pub fn names() -> impl Strategy<Value = Vec<Utf8>> {
    vec(str8(), 0..12)
}

/// Any message of any type, fields drawn over their whole range.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (str8(), any::<u32>(), any::<u32>()).prop_map(|(name, capabilities, max_frame)| {
            Message::Hello(Hello {
                name,
                capabilities,
                max_frame,
            })
        }),
        (str8(), str8(), any::<[u32; 4]>(), names()).prop_map(|(name, server, n, online)| {
            Message::Welcome(Welcome {
                name,
                server,
                heartbeat_ms: n[0],
                timeout_ms: n[1],
                max_frame: n[2],
                capabilities: n[3],
                online,
            })
        }),
        (code(), text()).prop_map(|(code, reason)| Message::Refused { code, reason }),
        (str8(), any::<bool>(), text()).prop_map(|(peer, private, text)| Message::Text {
            peer,
            private,
            text
        }),
        (str8(), any::<bool>(), str8(), data()).prop_map(|(peer, private, media_type, data)| {
            Message::Blob {
                peer,
                private,
                media_type,
                data,
            }
        }),
        (any::<bool>(), str8()).prop_map(|(joined, name)| Message::Presence {
            kind: if joined {
                PresenceKind::Joined
            } else {
                PresenceKind::Left
            },
            name,
        }),
        Just(Message::ListRequest),
        names().prop_map(|names| Message::PeerList { names }),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        (code(), text()).prop_map(|(code, text)| Message::Error { code, text }),
        (code(), text()).prop_map(|(code, reason)| Message::Goodbye { code, reason }),
        (any::<u64>(), str8(), any::<u64>(), text(), str8()).prop_map(
            |(id, peer, size, name, media_type)| {
                Message::Offer(Offer {
                    id,
                    peer,
                    size,
                    name,
                    media_type,
                })
            }
        ),
        (any::<u64>(), any::<u64>(), any::<u32>())
            .prop_map(|(id, offset, credit)| Message::Accept { id, offset, credit }),
        (any::<u64>(), code(), text()).prop_map(|(id, code, reason)| Message::Reject {
            id,
            code,
            reason
        }),
        (any::<u64>(), any::<u64>(), data()).prop_map(|(id, offset, data)| Message::Chunk {
            id,
            offset,
            data
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(id, bytes)| Message::Credit { id, bytes }),
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(id, digest)| Message::Done { id, digest }),
        (any::<u64>(), code(), text()).prop_map(|(id, code, reason)| Message::Cancel {
            id,
            code,
            reason
        }),
        any::<u64>().prop_map(|id| Message::Complete { id }),
        (any::<u64>(), code(), text()).prop_map(|(id, code, reason)| Message::Failed {
            id,
            code,
            reason
        }),
        (0x80u8..=0xFF, data()).prop_map(|(kind, body)| Message::Extension { kind, body }),
    ]
}
