//! Property tests of the gateway's conversions: any sequence of messages crosses the JSON
//! mode as exactly the native frames it stands for (both ways, whatever the hub's read
//! boundaries), and the binary mode passes any bytes unchanged.

mod sim;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use sim::messages::message;
use tidings_core::gateway::{Gateway, GatewayMode, WsMessage};
use tidings_core::json::to_json;
use tidings_core::wire::{Message, Preamble, Utf8, PREAMBLE_LEN};
use tidings_core::ws::{Utf8Bytes, WsEvent};

fn native(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::from(&Preamble::CURRENT.to_bytes()[..]);
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Cuts `bytes` at the given fractions of its length.
fn cut(bytes: &[u8], points: &[u16]) -> Vec<Bytes> {
    let mut at: Vec<usize> = points
        .iter()
        .map(|&p| bytes.len() * p as usize / u16::MAX as usize)
        .chain([0, bytes.len()])
        .collect();
    at.sort_unstable();
    at.dedup();
    at.windows(2)
        .map(|w| Bytes::copy_from_slice(&bytes[w[0]..w[1]]))
        .collect()
}

fn drain_native(gw: &mut Gateway) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = gw.poll_native() {
        out.extend_from_slice(&b);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn json_from_the_client_becomes_exactly_the_native_frames(msgs in vec(message(), 1..20)) {
        let now = Instant::now();
        let mut gw = Gateway::new(GatewayMode::Tidings, now);
        for m in &msgs {
            gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(to_json(m))));
        }
        prop_assert_eq!(drain_native(&mut gw), native(&msgs));
        prop_assert_eq!(gw.poll_ws(), None);
        prop_assert!(!gw.native_finished());
    }

    #[test]
    fn native_frames_from_the_hub_become_one_json_text_each(
        msgs in vec(message(), 1..20),
        points in vec(any::<u16>(), 0..30),
    ) {
        let now = Instant::now();
        let mut gw = Gateway::new(GatewayMode::Json, now);
        for piece in cut(&native(&msgs), &points) {
            gw.handle_native(now, piece);
        }
        let mut got = Vec::new();
        while let Some(m) = gw.poll_ws() {
            got.push(m);
        }
        let want: Vec<WsMessage> = msgs.iter().map(|m| WsMessage::Text(to_json(m).into())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn binary_mode_passes_any_bytes_both_ways(
        up in vec(vec(any::<u8>(), 1..300), 1..10),
        down in vec(vec(any::<u8>(), 1..300), 1..10),
    ) {
        let now = Instant::now();
        let mut gw = Gateway::new(GatewayMode::Tidings, now);
        for chunk in &up {
            gw.handle_ws_event(now, WsEvent::Binary(Bytes::from(chunk.clone())));
        }
        for chunk in &down {
            gw.handle_native(now, Bytes::from(chunk.clone()));
        }
        prop_assert_eq!(drain_native(&mut gw), up.concat());
        let mut got = Vec::new();
        while let Some(m) = gw.poll_ws() {
            let WsMessage::Binary(b) = m else { panic!("{m:?}") };
            got.extend_from_slice(&b);
        }
        prop_assert_eq!(got, down.concat());
    }

    #[test]
    fn legacy_lines_become_texts_to_everyone(lines in vec("[^{]\\PC{0,80}", 1..10)) {
        let now = Instant::now();
        let mut gw = Gateway::new(GatewayMode::Legacy { name: "dave".into(), room: None }, now);
        drain_native(&mut gw); // preamble and hello
        for line in &lines {
            gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(line.clone())));
        }
        let texts: Vec<Message> = lines
            .iter()
            .map(|l| Message::Text { peer: Utf8::EMPTY, private: false, text: Utf8::from(l.as_str()) })
            .collect();
        let want = &native(&texts)[PREAMBLE_LEN..];
        prop_assert_eq!(drain_native(&mut gw), want.to_vec());
    }
}

#[test]
fn large_json_payloads_cross_whole() {
    let now = Instant::now();
    let mut gw = Gateway::new(GatewayMode::Json, now);
    let msgs = [
        Message::Chunk {
            id: 2,
            offset: 0,
            data: Bytes::from((0..64 << 10).map(|i| i as u8).collect::<Vec<u8>>()),
        },
        Message::Blob {
            peer: Utf8::from("bob"),
            private: false,
            media_type: Utf8::from("image/png"),
            data: Bytes::from(vec![9u8; 5000]),
        },
    ];
    for m in &msgs {
        gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(to_json(m))));
    }
    assert_eq!(drain_native(&mut gw), native(&msgs));
}
