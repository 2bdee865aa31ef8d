//! Property tests: messages survive any cut of the byte stream in both directions, fragmented
//! messages reassemble, masking and UTF-8 validation agree with simple reference
//! implementations, and arbitrary bytes never panic or make a connection buffer more than its
//! limits allow.

mod sim;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sim::ws::{connection, drain_transmit, limits, now};
use tidings_core::ws::{
    apply_mask, encode_frame_header, FrameHeader, OpCode, Utf8Validator, WsConfig, WsConnection,
    WsEvent, MAX_HEADER_LEN,
};

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        ".{0,300}".prop_map(Msg::Text),
        prop::collection::vec(any::<u8>(), 0..70_000).prop_map(Msg::Binary),
        prop::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

fn send(conn: &mut WsConnection, m: &Msg) {
    match m {
        Msg::Text(t) => conn.send_text(t).unwrap(),
        Msg::Binary(b) => conn.send_binary(b).unwrap(),
        Msg::Ping(p) => conn.send_ping(p).unwrap(),
    }
}

fn expected(m: &Msg) -> WsEvent {
    match m {
        Msg::Text(t) => WsEvent::Text(t.clone().into()),
        Msg::Binary(b) => WsEvent::Binary(Bytes::from(b.clone())),
        Msg::Ping(p) => WsEvent::Ping(Bytes::from(p.clone())),
    }
}

/// Feeds `bytes` cut at the given fractions, collecting events after each piece.
fn feed_cut(conn: &mut WsConnection, bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<WsEvent> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut events = Vec::new();
    for w in points.windows(2) {
        conn.handle_input(now(), &bytes[w[0]..w[1]]);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip_both_ways(
        msgs in prop::collection::vec(msg(), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        for client_sends in [true, false] {
            let mut client = connection(false, WsConfig::default());
            let mut server = connection(true, WsConfig::default());
            let (from, to) = if client_sends {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            for m in &msgs {
                send(from, m);
            }
            let bytes = drain_transmit(from);
            let events = feed_cut(to, &bytes, &cuts);
            let want: Vec<WsEvent> = msgs.iter().map(expected).collect();
            prop_assert_eq!(events, want);
            prop_assert_eq!(to.buffered_input(), 0);
        }
    }

    #[test]
    fn fragmented_messages_reassemble(
        text in ".{0,200}",
        data in prop::collection::vec(any::<u8>(), 0..2000),
        pieces in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        key in any::<[u8; 4]>(),
    ) {
        // Fragment each payload at arbitrary byte positions (mid code point included) and
        // interleave a ping after each fragment, as a client would send it.
        let mut wire = BytesMut::new();
        for (opcode, payload) in [(OpCode::Text, text.as_bytes()), (OpCode::Binary, &data[..])] {
            let mut points: Vec<usize> = pieces.iter().map(|p| p.index(payload.len() + 1)).collect();
            points.push(0);
            points.push(payload.len());
            points.sort_unstable();
            let n = points.len() - 1;
            for (i, w) in points.windows(2).enumerate() {
                let op = if i == 0 { opcode } else { OpCode::Continuation };
                encode_frame_header(&mut wire, i + 1 == n, op, w[1] - w[0], Some(key));
                let start = wire.len();
                wire.extend_from_slice(&payload[w[0]..w[1]]);
                apply_mask(&mut wire[start..], key, 0);
                if i + 1 < n {
                    encode_frame_header(&mut wire, true, OpCode::Ping, 1, Some(key));
                    wire.extend_from_slice(&[b'!' ^ key[0]]);
                }
            }
        }
        let mut server = connection(true, WsConfig::default());
        let events = feed_cut(&mut server, &wire, &cuts);
        let messages: Vec<WsEvent> =
            events.into_iter().filter(|e| !matches!(e, WsEvent::Ping(_))).collect();
        prop_assert_eq!(messages, vec![
            WsEvent::Text(text.clone().into()),
            WsEvent::Binary(Bytes::from(data.clone())),
        ]);
    }

    #[test]
    fn header_encode_parse_round_trip(
        fin in any::<bool>(),
        op in prop::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary]),
        len in prop_oneof![0usize..200, 60_000usize..70_000, any::<u32>().prop_map(|n| n as usize)],
        mask in any::<Option<[u8; 4]>>(),
    ) {
        let mut out = BytesMut::new();
        encode_frame_header(&mut out, fin, op, len, mask);
        let header = FrameHeader { fin, opcode: op, mask, payload_len: len as u64 };
        prop_assert_eq!(out.len(), header.encoded_len());
        prop_assert_eq!(FrameHeader::parse(&out), Ok(Some((header, out.len()))));
        for cut in 0..out.len() {
            prop_assert_eq!(FrameHeader::parse(&out[..cut]), Ok(None));
        }
    }

    #[test]
    fn mask_matches_the_bytewise_definition(
        data in prop::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in 0usize..16,
    ) {
        let mut fast = data.clone();
        apply_mask(&mut fast, key, offset);
        let slow: Vec<u8> =
            data.iter().enumerate().map(|(i, b)| b ^ key[(i + offset) % 4]).collect();
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn utf8_validator_agrees_with_std_and_fails_at_the_first_bad_piece(
        // Mostly valid text with a few arbitrary bytes mixed in.
        parts in prop::collection::vec(
            prop_oneof![
                4 => ".{0,8}".prop_map(String::into_bytes),
                1 => prop::collection::vec(any::<u8>(), 0..3),
            ],
            0..12,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let bytes = parts.concat();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut v = Utf8Validator::new();
        let mut failed = false;
        for w in points.windows(2) {
            let prefix = &bytes[..w[1]];
            let prefix_bad = matches!(std::str::from_utf8(prefix), Err(e) if e.error_len().is_some());
            let result = v.feed(&bytes[w[0]..w[1]]);
            // Fails exactly when the bytes so far cannot start any valid text.
            prop_assert_eq!(result.is_err(), prefix_bad);
            if prefix_bad {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(v.finish().is_ok(), std::str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(
        input in prop::collection::vec(any::<u8>(), 0..4000),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        server in any::<bool>(),
    ) {
        let config = limits(512, 128);
        let mut conn = connection(server, config);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        for w in points.windows(2) {
            conn.handle_input(now(), &input[w[0]..w[1]]);
            while let Some(event) = conn.poll_event() {
                if let WsEvent::Error(err) = event {
                    prop_assert!(err.close_code().is_sendable());
                }
            }
            // Drained: at most one partial frame plus one partial message is held.
            prop_assert!(conn.buffered_input() < MAX_HEADER_LEN + 128 + 512);
            drain_transmit(&mut conn);
        }
    }

    #[test]
    fn mostly_valid_frames_with_corruption_never_panic(
        msgs in prop::collection::vec(msg(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        // Valid client traffic with a few corrupted bytes reaches deeper states than noise.
        let mut client = connection(false, WsConfig::default());
        for m in &msgs {
            send(&mut client, m);
        }
        let mut bytes = drain_transmit(&mut client);
        for (at, xor) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        let mut server = connection(true, limits(100_000, 80_000));
        let events = feed_cut(&mut server, &bytes, &cuts);
        prop_assert!(events.len() <= msgs.len() + 1);
        prop_assert!(server.buffered_input() < MAX_HEADER_LEN + 80_000 + 100_000);
    }
}
