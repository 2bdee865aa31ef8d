//! Properties of the wire codec and of a session facing arbitrary bytes.
//!
//! * every message type survives encode → decode unchanged;
//! * any cutting of a valid multi-frame stream yields the same frames;
//! * arbitrary bytes never panic the decoder, and a drained decoder holds less than one frame;
//! * a session fed arbitrary bytes (raw or frame-shaped, before and after the handshake)
//!   never panics and keeps its output bounded.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::TransferEvent;
use tidings_core::wire::{
    FrameDecoder, Hello, Message, Offer, Preamble, Utf8, Welcome, DEFAULT_MAX_FRAME, HEADER_LEN,
};
mod sim;
use sim::messages::{code, message, text};

fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Cuts `bytes` at the given fractions of its length.
fn cut<'a>(bytes: &'a [u8], points: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = points
        .iter()
        .map(|&p| bytes.len() * p as usize / u16::MAX as usize)
        .collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Something frame-shaped: a plausible length and a type from the registry, with a body that
/// may be too short or too long for its type.
fn frame_like() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop_oneof![
        proptest::sample::select(vec![
            0x01u8, 0x02, 0x03, 0x10, 0x11, 0x20, 0x21, 0x22, 0x30, 0x31, 0x3E, 0x3F, 0x40, 0x41,
            0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48
        ]),
        any::<u8>(),
    ];
    (kinds, vec(any::<u8>(), 0..64), 0u8..8).prop_map(|(kind, body, skew)| {
        // Usually the true length; sometimes off by a little, to cut or join frames.
        let len = match skew {
            0 => body.len() as u32 + 1,
            1 => (body.len() as u32).saturating_sub(1),
            _ => body.len() as u32,
        };
        let mut f = len.to_be_bytes().to_vec();
        f.push(kind);
        f.extend(body);
        f
    })
}

/// Input for a session: valid messages, frame-shaped garbage and raw garbage, mixed.
fn session_input() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => message().prop_map(|m| encode_all(&[m])),
            3 => frame_like(),
            1 => vec(any::<u8>(), 0..32),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Well-formed transfer traffic over a handful of ids, sizes and offsets, so that random
/// sequences hit real transfer states (offered, hashing, receiving, verifying, ended,
/// tombstoned) instead of dying on the first malformed byte.
fn transfer_message() -> impl Strategy<Value = Message> {
    // Few ids and offsets, so chunks often land exactly where a transfer expects them.
    let id = 0u64..3;
    let small = 0u64..6;
    prop_oneof![
        3 => (id.clone(), small.clone()).prop_map(|(id, size)| Message::Offer(Offer {
            id,
            peer: Utf8::EMPTY,
            size,
            name: Utf8::from("f.bin"),
            media_type: Utf8::EMPTY,
        })),
        1 => (id.clone(), small.clone(), 0u32..24).prop_map(|(id, offset, credit)| Message::Accept {
            id,
            offset,
            credit
        }),
        6 => (id.clone(), 0u64..3, vec(any::<u8>(), 1..4)).prop_map(|(id, offset, data)| {
            Message::Chunk {
                id,
                offset,
                data: Bytes::from(data),
            }
        }),
        2 => (id.clone(), 0u32..24).prop_map(|(id, bytes)| Message::Credit { id, bytes }),
        1 => (id.clone(), any::<bool>()).prop_map(|(id, zeros)| Message::Done {
            id,
            // A fixed digest: a receiver reaches its verdict (mostly digest-mismatch).
            digest: if zeros { [0x66; 32] } else { [0; 32] },
        }),
        1 => (id.clone(), code()).prop_map(|(id, code)| Message::Cancel {
            id,
            code,
            reason: Utf8::EMPTY
        }),
        1 => (id.clone(), code()).prop_map(|(id, code)| Message::Reject {
            id,
            code,
            reason: Utf8::EMPTY
        }),
        1 => id.clone().prop_map(|id| Message::Complete { id }),
        1 => (id, code()).prop_map(|(id, code)| Message::Failed {
            id,
            code,
            reason: Utf8::EMPTY
        }),
        2 => any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
    ]
}

/// Feeds pieces to a session and answers like a cooperative application, so the session is
/// pushed through as many states as the input allows. Panics are the failures looked for.
fn drive(session: &mut Session, pieces: &[&[u8]], eof: bool) {
    let start = Instant::now();
    let mut now = start;
    for (i, piece) in pieces.iter().enumerate() {
        session.handle_input(now, piece);
        pump(session);
        if i % 3 == 2 {
            now += Duration::from_secs(7);
            session.handle_timeout(now);
            pump(session);
        }
        assert!(session.queued_output() <= session.config().max_queued_output + (1 << 21));
    }
    if eof {
        session.handle_eof(now);
        pump(session);
        assert!(session.is_closed());
    }
    session.handle_timeout(now + Duration::from_secs(3600));
    pump(session);
}

fn pump(session: &mut Session) {
    for _ in 0..64 {
        let mut moved = false;
        while session.poll_transmit().is_some() {
            moved = true;
        }
        while let Some(ev) = session.poll_event() {
            moved = true;
            match ev {
                Event::Hello(h) => {
                    let _ = session.accept_hello(h.name.clone(), Utf8::from("srv"), vec![h.name]);
                    // The server offers too, so accepts and credits from the client have a
                    // transfer to land on.
                    let _ = session.offer_file("", "b.bin", 4, "");
                }
                Event::Connected(_) => {
                    // An open client also sends, so its own transfer interleaves with input.
                    let _ = session.offer_file("bob", "a.bin", 10, "");
                }
                Event::Transfer(TransferEvent::Offered(o)) => {
                    // Resume from byte 2 on some offers, start at 0 on others.
                    let _ = session.accept_offer(o.id, o.size.min(2 * ((o.id >> 1) & 1)));
                }
                Event::Transfer(TransferEvent::Read { id, offset, len }) => {
                    let _ = session.provide_data(id, offset, Bytes::from(vec![0u8; len]));
                }
                Event::Transfer(TransferEvent::Data { id, data, .. }) => {
                    let _ = session.data_written(id, data.len() as u64);
                }
                _ => {}
            }
        }
        if !moved {
            return;
        }
    }
}

fn preamble_and_hello() -> Vec<u8> {
    let mut v = Preamble::CURRENT.to_bytes().to_vec();
    v.extend(encode_all(&[Message::Hello(Hello {
        name: Utf8::from("alice"),
        capabilities: 3,
        max_frame: DEFAULT_MAX_FRAME,
    })]));
    v
}

fn preamble_and_welcome() -> Vec<u8> {
    let mut v = Preamble::CURRENT.to_bytes().to_vec();
    v.extend(encode_all(&[Message::Welcome(Welcome {
        name: Utf8::from("alice"),
        server: Utf8::from("srv"),
        heartbeat_ms: 10_000,
        timeout_ms: 30_000,
        max_frame: DEFAULT_MAX_FRAME,
        capabilities: 3,
        online: vec![Utf8::from("alice")],
    })]));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let wire = encode_all(std::slice::from_ref(&msg));
        prop_assert_eq!(wire.len(), msg.encoded_len());
        prop_assert_eq!(wire[4], msg.kind());
        let mut dec = FrameDecoder::new(u32::MAX);
        dec.push(&wire);
        let frame = dec.next_frame().unwrap().unwrap();
        prop_assert_eq!(frame.body.len() + HEADER_LEN, wire.len());
        prop_assert_eq!(Message::decode(frame).unwrap(), msg);
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn split_encoding_gives_the_same_bytes(msg in message(), min_split in 0usize..700) {
        let whole = encode_all(std::slice::from_ref(&msg));
        let mut head = BytesMut::new();
        let tail = msg.encode_split(&mut head, min_split);
        head.extend_from_slice(tail.as_deref().unwrap_or_default());
        prop_assert_eq!(head.to_vec(), whole);
    }

    #[test]
    fn any_cutting_of_a_stream_yields_the_same_frames(
        msgs in vec(message(), 1..16),
        points in vec(any::<u16>(), 0..40),
    ) {
        let wire = encode_all(&msgs);
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for piece in cut(&wire, &points) {
            dec.push(piece);
            while let Some(frame) = dec.next_frame().unwrap() {
                got.push(Message::decode(frame).unwrap());
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        raw in vec(any::<u8>(), 0..4096),
        framed in vec(frame_like(), 0..32),
        max_frame in prop_oneof![0u32..128, Just(DEFAULT_MAX_FRAME)],
        points in vec(any::<u16>(), 0..32),
        framed_first in any::<bool>(),
    ) {
        let mut input = framed.concat();
        if framed_first {
            input.extend(raw);
        } else {
            input.splice(0..0, raw);
        }
        let mut dec = FrameDecoder::new(max_frame);
        'feed: for piece in cut(&input, &points) {
            dec.push(piece);
            loop {
                match dec.next_frame() {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.body.len() <= max_frame as usize);
                        // Decoding may fail, but must not panic.
                        let _ = Message::decode(frame);
                    }
                    Ok(None) => break,
                    // The stream is unusable after an error; a connection would close.
                    Err(_) => break 'feed,
                }
            }
            prop_assert!(dec.buffered() <= max_frame as usize + HEADER_LEN);
        }
    }
}

/// Checks that `cut` is what an over-long `whole` becomes in a field whose length prefix
/// allows `max` bytes: the longest prefix on a character boundary.
fn assert_cut(whole: &str, cut: &Utf8, max: usize) {
    assert!(cut.len() <= max);
    assert!(whole.starts_with(cut.as_str()));
    if whole.len() <= max {
        assert_eq!(cut.as_str(), whole);
    } else {
        // At most 3 bytes short: a character is at most 4 bytes long.
        assert!(cut.len() + 3 >= max, "cut too much: {} of {max}", cut.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn overlong_length_prefixed_fields_are_cut_not_wrapped(
        peer in "\\PC{50,120}",
        media in "[a-z/é]{200,300}",
        pad in 65_530usize..65_540,
        tail in "\\PC{1,3}",
        text in text(),
    ) {
        let name = format!("{}{}", "n".repeat(pad), tail);
        let msgs = vec![
            Message::Text { peer: Utf8::from(peer.as_str()), private: false, text: text.clone() },
            Message::Offer(Offer {
                id: 2,
                peer: Utf8::from(peer.as_str()),
                size: 9,
                name: Utf8::from(name.as_str()),
                media_type: Utf8::from(media.as_str()),
            }),
        ];
        let wire = encode_all(&msgs);
        prop_assert_eq!(wire.len(), msgs.iter().map(Message::encoded_len).sum::<usize>());
        let mut dec = FrameDecoder::new(u32::MAX);
        dec.push(&wire);
        let Message::Text { peer: p1, text: t1, .. } =
            Message::decode(dec.next_frame().unwrap().unwrap()).unwrap()
        else {
            panic!("not a text");
        };
        assert_cut(&peer, &p1, 255);
        // The rest of an over-long peer did not leak into the following fields.
        prop_assert_eq!(t1, text);
        let Message::Offer(o) = Message::decode(dec.next_frame().unwrap().unwrap()).unwrap() else {
            panic!("not an offer");
        };
        assert_cut(&peer, &o.peer, 255);
        assert_cut(&name, &o.name, 65_535);
        assert_cut(&media, &o.media_type, 255);
        prop_assert_eq!((o.id, o.size), (2, 9));
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_server_fed_arbitrary_bytes_never_panics(
        input in session_input(),
        points in vec(any::<u16>(), 0..24),
        with_handshake in any::<bool>(),
        eof in any::<bool>(),
    ) {
        let mut stream = if with_handshake { preamble_and_hello() } else { Vec::new() };
        stream.extend(input);
        let mut server = Session::server(Config::default(), Instant::now());
        drive(&mut server, &cut(&stream, &points), eof);
    }

    #[test]
    fn sessions_fed_random_transfer_traffic_never_panic(
        msgs in vec(transfer_message(), 0..40),
        server_side in any::<bool>(),
        eof in any::<bool>(),
    ) {
        let (mut session, handshake) = if server_side {
            (Session::server(Config::default(), Instant::now()), preamble_and_hello())
        } else {
            let client = Session::client(Config::default(), "alice", Instant::now()).unwrap();
            (client, preamble_and_welcome())
        };
        // One message per read, so the application answers (accepts, reads, writes) between
        // messages, as it would between the peer's round trips.
        // Offers carry the parity of the peer's side (client even, server odd), so that most
        // are taken instead of failing as malformed.
        let peer_parity = u64::from(!server_side);
        let frames: Vec<Vec<u8>> = msgs
            .into_iter()
            .map(|m| match m {
                Message::Offer(o) => Message::Offer(Offer { id: (o.id & !1) | peer_parity, ..o }),
                m => m,
            })
            .map(|m| encode_all(&[m]))
            .collect();
        let mut pieces: Vec<&[u8]> = vec![&handshake];
        pieces.extend(frames.iter().map(Vec::as_slice));
        drive(&mut session, &pieces, eof);
    }

    #[test]
    fn a_client_fed_arbitrary_bytes_never_panics(
        input in session_input(),
        points in vec(any::<u16>(), 0..24),
        with_handshake in any::<bool>(),
        eof in any::<bool>(),
    ) {
        let mut stream = if with_handshake { preamble_and_welcome() } else { Vec::new() };
        stream.extend(input);
        let mut client = Session::client(Config::default(), "alice", Instant::now()).unwrap();
        drive(&mut client, &cut(&stream, &points), eof);
    }
}
