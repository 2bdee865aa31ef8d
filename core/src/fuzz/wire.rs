//! Fuzz bodies for the native wire format.

use arbitrary::{Result, Unstructured};
use bytes::{Bytes, BytesMut};

use crate::wire::{
    FrameDecoder, Hello, MemberKind, Message, Offer, PresenceKind, RoomInfo, Utf8, Welcome,
    HEADER_LEN,
};
use crate::ErrorCode;

/// Feeds arbitrary bytes to [`FrameDecoder`] in arbitrary pieces; every frame that decodes
/// must re-encode to the same bytes, and the decoder never holds more than one frame.
pub fn native_frames(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let max_frame = 4096 + (split as u32) * 16;
    let mut dec = FrameDecoder::new(max_frame);
    let sizes = [split.max(1), 1, split.wrapping_mul(7).max(1)];
    for piece in super::pieces(rest, &sizes) {
        dec.push(piece);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    let raw_len = frame.body.len();
                    if let Ok(msg) = Message::decode(frame.clone()) {
                        let mut out = BytesMut::new();
                        msg.encode(&mut out);
                        assert_eq!(out.len(), HEADER_LEN + raw_len, "re-encoding changed size");
                        assert_eq!(&out[HEADER_LEN..], &frame.body[..]);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(dec.buffered() <= max_frame as usize + HEADER_LEN + piece.len());
    }
}

/// Builds an arbitrary message, encodes it, and asserts that decoding gives it back.
pub fn message_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(msg) = message(&mut u) else { return };
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    let mut dec = FrameDecoder::new(crate::wire::MAX_FRAME_CEILING);
    dec.push(&out);
    let frame = dec
        .next_frame()
        .expect("own frame within limits")
        .expect("whole frame");
    assert_eq!(Message::decode(frame).expect("own encoding decodes"), msg);
    assert_eq!(dec.buffered(), 0);
}

fn text(u: &mut Unstructured, max: usize) -> Result<Utf8> {
    let s: &str = u.arbitrary()?;
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Utf8::from(&s[..end]))
}

fn blob(u: &mut Unstructured) -> Result<Bytes> {
    Ok(Bytes::copy_from_slice(u.arbitrary::<&[u8]>()?))
}

fn code(u: &mut Unstructured) -> Result<ErrorCode> {
    Ok(ErrorCode::from_u16(u.arbitrary()?))
}

fn names(u: &mut Unstructured) -> Result<Vec<Utf8>> {
    let n = u.int_in_range(0..=20)?;
    (0..n).map(|_| text(u, 255)).collect()
}

fn message(u: &mut Unstructured) -> Result<Message> {
    Ok(match u.int_in_range(0..=28)? {
        0 => Message::Hello(Hello {
            name: text(u, 255)?,
            capabilities: u.arbitrary()?,
            max_frame: u.arbitrary()?,
        }),
        1 => Message::Welcome(Welcome {
            name: text(u, 255)?,
            server: text(u, 255)?,
            heartbeat_ms: u.arbitrary()?,
            timeout_ms: u.arbitrary()?,
            max_frame: u.arbitrary()?,
            capabilities: u.arbitrary()?,
            online: names(u)?,
        }),
        2 => Message::Refused {
            code: code(u)?,
            reason: text(u, 1000)?,
        },
        3 => Message::Text {
            peer: text(u, 255)?,
            private: u.arbitrary()?,
            text: text(u, 4000)?,
        },
        4 => Message::Blob {
            peer: text(u, 255)?,
            private: u.arbitrary()?,
            media_type: text(u, 255)?,
            data: blob(u)?,
        },
        5 => Message::Presence {
            kind: if u.arbitrary()? {
                PresenceKind::Joined
            } else {
                PresenceKind::Left
            },
            name: text(u, 255)?,
        },
        6 => Message::ListRequest,
        7 => Message::PeerList { names: names(u)? },
        8 => Message::Ping {
            nonce: u.arbitrary()?,
        },
        9 => Message::Pong {
            nonce: u.arbitrary()?,
        },
        10 => Message::Error {
            code: code(u)?,
            text: text(u, 1000)?,
        },
        11 => Message::Goodbye {
            code: code(u)?,
            reason: text(u, 1000)?,
        },
        12 => Message::Offer(Offer {
            id: u.arbitrary()?,
            peer: text(u, 255)?,
            size: u.arbitrary()?,
            name: text(u, 4000)?,
            media_type: text(u, 255)?,
        }),
        13 => Message::Accept {
            id: u.arbitrary()?,
            offset: u.arbitrary()?,
            credit: u.arbitrary()?,
        },
        14 => Message::Reject {
            id: u.arbitrary()?,
            code: code(u)?,
            reason: text(u, 1000)?,
        },
        15 => Message::Chunk {
            id: u.arbitrary()?,
            offset: u.arbitrary()?,
            data: blob(u)?,
        },
        16 => Message::Credit {
            id: u.arbitrary()?,
            bytes: u.arbitrary()?,
        },
        17 => Message::Done {
            id: u.arbitrary()?,
            digest: u.arbitrary()?,
        },
        18 => Message::Cancel {
            id: u.arbitrary()?,
            code: code(u)?,
            reason: text(u, 1000)?,
        },
        19 => Message::Complete { id: u.arbitrary()? },
        20 => Message::Failed {
            id: u.arbitrary()?,
            code: code(u)?,
            reason: text(u, 1000)?,
        },
        21 => Message::RoomText {
            room: text(u, 255)?,
            peer: text(u, 255)?,
            text: text(u, 4000)?,
        },
        22 => Message::Join {
            room: text(u, 255)?,
        },
        23 => Message::Leave {
            room: text(u, 255)?,
        },
        24 => Message::Member {
            kind: *u.choose(&[MemberKind::Joined, MemberKind::Left, MemberKind::Removed])?,
            room: text(u, 255)?,
            name: text(u, 255)?,
        },
        25 => Message::RoomMembers {
            room: text(u, 255)?,
            names: names(u)?,
        },
        26 => Message::RoomListRequest,
        27 => Message::RoomList {
            rooms: (0..u.int_in_range(0..=20)?)
                .map(|_| {
                    Ok(RoomInfo {
                        name: text(u, 255)?,
                        members: u.arbitrary()?,
                    })
                })
                .collect::<Result<_>>()?,
        },
        _ => Message::Extension {
            kind: u.int_in_range(0x80..=0xFF)?,
            body: blob(u)?,
        },
    })
}
