//! Fuzz body for the JSON mapping and the WebSocket gateway.

use std::time::Instant;

use bytes::BytesMut;

use crate::gateway::{Gateway, GatewayMode, WsMessage};
use crate::hub::{Hub, HubConfig};
use crate::json::{from_json, from_json_limited, to_json};
use crate::wire::{FrameDecoder, Message, DEFAULT_MAX_FRAME, PREAMBLE_LEN};
use crate::ws::{Utf8Bytes, WsEvent};

/// Arbitrary text as JSON messages: whatever parses must survive `to_json` → `from_json`
/// and the native encoding unchanged. Then the same text, line by line, as the messages of a
/// JSON or legacy WebSocket client through a [`Gateway`] into a real hub: nothing panics,
/// and every byte the gateway sends the hub is a preamble followed by whole, decodable
/// frames within the frame limit.
/// `now` is the driver's clock reading: time, as everywhere in core, comes from the caller.
pub fn json(data: &[u8], now: Instant) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    roundtrip(&text);
    for line in text.lines() {
        roundtrip(line);
    }
    through_gateway(flags, &text, now);
}

fn roundtrip(text: &str) {
    let Ok(msg) = from_json_limited(text, 64 << 10) else {
        return;
    };
    assert_eq!(
        from_json(&to_json(&msg)),
        Ok(msg.clone()),
        "JSON round trip"
    );
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    let mut dec = FrameDecoder::new(crate::wire::MAX_FRAME_CEILING);
    dec.push(&out);
    let frame = dec.next_frame().expect("own frame").expect("whole frame");
    assert_eq!(Message::decode(frame), Ok(msg), "native round trip");
}

fn through_gateway(flags: u8, text: &str, now: Instant) {
    let mode = match flags % 4 {
        0 => GatewayMode::Tidings,
        1 => GatewayMode::Json,
        2 => GatewayMode::Legacy {
            name: "fuzz".into(),
            room: None,
        },
        _ => GatewayMode::Legacy {
            name: "fuzz".into(),
            room: Some("fuzzroom".into()),
        },
    };
    let mut hub = Hub::new(HubConfig::default(), now);
    let conn = hub.connect(now);
    let mut gw = Gateway::new(mode, now);
    let mut sent = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let mut preamble_seen = false;
    let mut lines = text.lines();
    loop {
        while let Some(bytes) = gw.poll_native() {
            sent.push(&bytes);
            hub.handle_input(now, conn, &bytes);
        }
        if !preamble_seen && sent.take_prefix(PREAMBLE_LEN).is_some() {
            preamble_seen = true;
        }
        if preamble_seen {
            while let Some(frame) = sent.next_frame().expect("gateway frames fit the limit") {
                Message::decode(frame).expect("gateway frames decode");
            }
        }
        if gw.native_finished() {
            hub.handle_eof(now, conn);
        }
        while hub.poll_ready().is_some() {}
        while let Some(bytes) = hub.poll_transmit(conn) {
            gw.handle_native(now, bytes);
        }
        if hub.is_finished(conn) {
            gw.handle_native_eof();
        }
        let mut closed = false;
        while let Some(msg) = gw.poll_ws() {
            closed |= matches!(msg, WsMessage::Close { .. });
        }
        let Some(line) = lines.next() else { break };
        if closed {
            break;
        }
        gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(line.to_string())));
    }
}
