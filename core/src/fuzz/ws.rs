//! Fuzz bodies for the WebSocket codec and the HTTP handshake parser.

use std::time::{Duration, Instant};

use crate::ws::{ClientHandshake, ClientRequest, RequestReader, WsConfig, WsConnection};

/// Arbitrary bytes into a WebSocket connection of either role, in arbitrary pieces, one
/// virtual second apart from `now` on. Never panics; never buffers more than the configured
/// frame limit plus what one read delivered; once the close timer has run out, the socket
/// is to be closed.
pub fn ws_frames(data: &[u8], now: Instant) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let cfg = WsConfig {
        max_message_size: 64 << 10,
        max_frame_size: 16 << 10,
        close_timeout: Duration::from_secs(3),
    };
    let mut conn = if flags & 1 == 0 {
        WsConnection::server(cfg)
    } else {
        let mut n = 0u8;
        let masks = move || {
            n = n.wrapping_add(1);
            [n, 1, 2, 3]
        };
        WsConnection::client(cfg, masks)
    };
    let sizes = [flags >> 1, 3, 1, 200];
    let mut now = now;
    for piece in super::pieces(rest, &sizes) {
        now += Duration::from_secs(1);
        conn.handle_timeout(now);
        conn.handle_input(now, piece);
        while conn.poll_event().is_some() {}
        while conn.poll_transmit().is_some() {}
        assert!(
            conn.buffered_input() <= cfg.max_message_size + cfg.max_frame_size + 14 + piece.len()
        );
        if let Some(deadline) = conn.poll_timeout() {
            assert!(deadline <= now + cfg.close_timeout);
        }
    }
    if let Some(deadline) = conn.poll_timeout() {
        conn.handle_timeout(deadline);
        assert!(conn.should_close_socket());
        assert_eq!(conn.poll_timeout(), None);
    }
    conn.handle_eof(now);
    while conn.poll_event().is_some() {}
}

/// Arbitrary bytes as an HTTP request head (server side) and as a handshake response
/// (client side), in arbitrary pieces.
pub fn http_handshake(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let sizes = [split.max(1), 1, 17];
    let mut reader = RequestReader::new(2048);
    for piece in super::pieces(rest, &sizes) {
        match reader.feed(piece) {
            Ok(Some(head)) => {
                let _ = head.is_websocket_upgrade();
                let _ = head.accept_websocket(&["tidings.v1"]);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = e.response();
                break;
            }
        }
    }
    let req = ClientRequest {
        host: "127.0.0.1",
        path: "/ws",
        key: [7; 16],
        protocols: &["tidings.v1"],
        origin: None,
    };
    let (mut client, _) = ClientHandshake::new(&req, 2048).expect("valid request");
    for piece in super::pieces(rest, &sizes) {
        match client.feed(piece) {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => {}
        }
    }
}
