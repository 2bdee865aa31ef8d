//! `WsConnection` as a whole: two connections talking in memory, the close handshake from
//! either side, sending rules, zero-copy paths, end of stream and input bounds.

mod sim;

use std::time::Duration;

use bytes::Bytes;
use sim::ws::*;
use tidings_core::ws::{
    server_frame, CloseCode, OpCode, WsConfig, WsConnection, WsError, WsEvent, WsSendError, WsState,
};

fn pair() -> (WsConnection, WsConnection) {
    (
        connection(false, WsConfig::default()),
        connection(true, WsConfig::default()),
    )
}

/// Moves every queued byte from `from` to `to`, cut at random points.
fn pump(from: &mut WsConnection, to: &mut WsConnection, seed: u64) {
    let bytes = drain_transmit(from);
    for chunk in chunks(&bytes, Split::Random(seed)) {
        to.handle_input(now(), chunk);
    }
}

fn events(conn: &mut WsConnection) -> Vec<WsEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

#[test]
fn conversation_in_both_directions() {
    let (mut client, mut server) = pair();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    client.send_text("hello").unwrap();
    client.send_binary(&big).unwrap();
    client.send_ping(b"p").unwrap();
    pump(&mut client, &mut server, 1);
    assert_eq!(
        events(&mut server),
        vec![
            WsEvent::Text("hello".into()),
            WsEvent::Binary(Bytes::from(big.clone())),
            WsEvent::Ping(Bytes::from_static(b"p")),
        ]
    );
    server.send_text("hi").unwrap();
    server.send_binary_bytes(Bytes::from(big.clone())).unwrap();
    server.send_pong(b"heartbeat").unwrap();
    pump(&mut server, &mut client, 2);
    assert_eq!(
        events(&mut client),
        vec![
            WsEvent::Pong(Bytes::from_static(b"p")),
            WsEvent::Text("hi".into()),
            WsEvent::Binary(Bytes::from(big)),
            WsEvent::Pong(Bytes::from_static(b"heartbeat")),
        ]
    );
    assert_eq!(client.state(), WsState::Open);
    assert_eq!(server.state(), WsState::Open);
    assert_eq!(client.buffered_input() + server.buffered_input(), 0);
}

#[test]
fn every_client_frame_is_masked_with_the_next_key() {
    let mut keys = vec![[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]].into_iter();
    let mut client = WsConnection::client(WsConfig::default(), move || keys.next().unwrap());
    client.send_text("a").unwrap();
    client.send_binary(b"b").unwrap();
    client.close(now(), CloseCode::NORMAL, "").unwrap();
    let bytes = drain_transmit(&mut client);
    assert_eq!(&bytes[..8], &[0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1, 0x82]);
    let sent = decode_sent(&bytes);
    assert!(sent.iter().all(|s| s.masked));
    assert_eq!(sent[2].opcode, OpCode::Close);
}

#[test]
fn close_started_by_the_client() {
    let (mut client, mut server) = pair();
    client
        .close(now(), CloseCode::GOING_AWAY, "leaving")
        .unwrap();
    assert_eq!(client.state(), WsState::Closing);
    assert_eq!(client.send_text("late"), Err(WsSendError::Closed));
    assert_eq!(client.close(now(), CloseCode::NORMAL, ""), Ok(())); // already closing: no-op
    pump(&mut client, &mut server, 3);
    assert_eq!(
        events(&mut server),
        vec![WsEvent::Close {
            code: CloseCode::GOING_AWAY,
            reason: "leaving".into()
        }]
    );
    assert_eq!(server.state(), WsState::Closed);
    assert!(!server.should_close_socket()); // the echo is not written yet
    assert_eq!(server.send_binary(b"late"), Err(WsSendError::Closed));
    pump(&mut server, &mut client, 4);
    assert!(server.should_close_socket()); // the server closes TCP first
    assert_eq!(
        events(&mut client),
        vec![WsEvent::Close {
            code: CloseCode::GOING_AWAY,
            reason: "".into()
        }]
    );
    assert_eq!(client.state(), WsState::Closed);
    assert!(!client.should_close_socket()); // waits for the server's EOF
    client.handle_eof(now());
    assert_eq!(client.poll_event(), None);
    assert!(client.should_close_socket());
}

#[test]
fn close_started_by_the_server_with_messages_in_flight() {
    let (mut client, mut server) = pair();
    server.close(now(), CloseCode::NORMAL, "done").unwrap();
    client.send_text("crossing").unwrap();
    client.send_ping(b"x").unwrap();
    pump(&mut client, &mut server, 5);
    // Messages sent before the peer saw our close still arrive; pings are not answered
    // after our close frame.
    assert_eq!(
        events(&mut server),
        vec![
            WsEvent::Text("crossing".into()),
            WsEvent::Ping(Bytes::from_static(b"x"))
        ]
    );
    pump(&mut server, &mut client, 6);
    assert_eq!(
        events(&mut client),
        vec![WsEvent::Close {
            code: CloseCode::NORMAL,
            reason: "done".into()
        }]
    );
    let reply = drain_transmit(&mut client);
    assert_eq!(decode_sent(&reply).len(), 1);
    server.handle_input(now(), &reply);
    assert!(matches!(
        events(&mut server)[..],
        [WsEvent::Close {
            code: CloseCode::NORMAL,
            ..
        }]
    ));
    assert_eq!(server.state(), WsState::Closed);
    assert!(server.should_close_socket());
    assert_eq!(server.pending_transmit(), 0);
}

#[test]
fn send_rules() {
    let (mut client, mut server) = pair();
    assert_eq!(
        client.send_ping(&[0; 126]),
        Err(WsSendError::ControlTooLong(126))
    );
    assert_eq!(
        client.send_pong(&[0; 126]),
        Err(WsSendError::ControlTooLong(126))
    );
    assert!(client.send_ping(&[0; 125]).is_ok());
    for code in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        assert_eq!(
            client.close(now(), CloseCode(code), ""),
            Err(WsSendError::InvalidCloseCode(code))
        );
    }
    assert_eq!(
        client.close(now(), CloseCode::NORMAL, &"x".repeat(124)),
        Err(WsSendError::CloseReasonTooLong(124))
    );
    assert_eq!(client.state(), WsState::Open);
    assert_eq!(
        client.send_encoded(server_frame(OpCode::Text, b"x")),
        Err(WsSendError::NotServer)
    );
    assert!(server
        .close(now(), CloseCode(4000), &"y".repeat(123))
        .is_ok());
    assert_eq!(
        server.send_encoded(server_frame(OpCode::Text, b"x")),
        Err(WsSendError::Closed)
    );
}

#[test]
fn broadcast_shares_one_encoded_frame() {
    let frame = server_frame(OpCode::Binary, &[7; 10_000]);
    let mut servers: Vec<WsConnection> = (0..3)
        .map(|_| connection(true, WsConfig::default()))
        .collect();
    for server in &mut servers {
        server.send_text("before").unwrap();
        server.send_encoded(frame.clone()).unwrap();
        server.send_text("after").unwrap();
    }
    for server in &mut servers {
        assert_eq!(
            server.poll_transmit().unwrap(),
            server_frame(OpCode::Text, b"before")
        );
        let shared = server.poll_transmit().unwrap();
        assert_eq!(shared.as_ptr(), frame.as_ptr(), "queued by reference");
        let mut client = connection(false, WsConfig::default());
        client.handle_input(now(), &shared);
        client.handle_input(now(), &server.poll_transmit().unwrap());
        assert_eq!(
            events(&mut client),
            vec![
                WsEvent::Binary(Bytes::from(vec![7; 10_000])),
                WsEvent::Text("after".into())
            ]
        );
        assert_eq!(server.poll_transmit(), None);
    }
}

#[test]
fn large_server_payloads_are_sent_without_copying() {
    let mut server = connection(true, WsConfig::default());
    let payload = Bytes::from(vec![1u8; 100_000]);
    server.send_binary_bytes(payload.clone()).unwrap();
    let header = server.poll_transmit().unwrap();
    assert_eq!(&header[..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x86, 0xA0]);
    assert_eq!(server.poll_transmit().unwrap().as_ptr(), payload.as_ptr());
}

#[test]
fn received_payloads_are_slices_of_one_buffer() {
    let mut server = connection(true, WsConfig::default());
    let input = [
        client_frame(true, 2, &[1; 50]),
        client_frame(true, 2, &[2; 50]),
    ]
    .concat();
    server.handle_input(now(), &input);
    let (Some(WsEvent::Binary(a)), Some(WsEvent::Binary(b))) =
        (server.poll_event(), server.poll_event())
    else {
        panic!("two messages");
    };
    // Header of the second frame: 2 bytes + 4 mask bytes between the payloads.
    assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 50 + 6);
}

#[test]
fn eof_before_close_is_abnormal() {
    let mut server = connection(true, WsConfig::default());
    server.handle_input(now(), &client_frame(true, 1, b"complete"));
    server.handle_input(now(), &client_frame(true, 1, b"partial")[..5]);
    server.handle_eof(now());
    assert_eq!(
        events(&mut server),
        vec![
            WsEvent::Text("complete".into()),
            WsEvent::Error(WsError::UnexpectedEof)
        ]
    );
    assert_eq!(WsError::UnexpectedEof.close_code(), CloseCode::ABNORMAL);
    assert_eq!(server.state(), WsState::Closed);
    assert_eq!(server.pending_transmit(), 0); // nothing to send on a dead transport
    assert!(server.should_close_socket());
    assert_eq!(server.send_text("x"), Err(WsSendError::Closed));
}

#[test]
fn failure_closes_after_the_close_frame_is_written() {
    let mut client = connection(false, WsConfig::default());
    client.handle_input(now(), &[0x82, 0x80]); // masked frame from a server
    assert_eq!(
        client.poll_event(),
        Some(WsEvent::Error(WsError::MaskedFrame))
    );
    assert!(!client.should_close_socket());
    let sent = decode_sent(&drain_transmit(&mut client));
    assert_eq!(sent[0].payload[..2], 1002u16.to_be_bytes());
    assert!(client.should_close_socket());
    client.handle_input(now(), b"more input is ignored");
    assert_eq!(client.poll_event(), None);
    assert_eq!(client.buffered_input(), 0);
}

#[test]
fn undecoded_input_waits_for_poll_event() {
    let mut server = connection(true, WsConfig::default());
    let input = [client_frame(true, 2, b"one"), client_frame(true, 2, b"two")].concat();
    server.handle_input(now(), &input);
    assert_eq!(server.buffered_input(), input.len());
    assert!(server.poll_event().is_some());
    assert_eq!(server.buffered_input(), input.len() / 2);
    assert!(server.poll_event().is_some());
    assert_eq!(server.buffered_input(), 0);
}

#[test]
fn partial_input_is_bounded_by_the_limits() {
    let config = limits(1000, 100);
    let mut server = connection(true, config);
    // Nine full 100-byte fragments and most of a tenth, fed one byte at a time.
    let mut input = Vec::new();
    input.extend(client_frame(false, 2, &[0; 100]));
    for _ in 0..8 {
        input.extend(client_frame(false, 0, &[0; 100]));
    }
    input.extend(&client_frame(true, 0, &[0; 100])[..50]);
    for byte in &input {
        server.handle_input(now(), std::slice::from_ref(byte));
        assert_eq!(server.poll_event(), None);
        assert!(server.buffered_input() <= 1000 + 100 + 14);
    }
    assert_eq!(server.buffered_input(), 900 + 44);
}

#[test]
fn connections_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<WsConnection>();
}

#[test]
fn pending_transmit_counts_every_queued_byte() {
    let mut server = connection(true, WsConfig::default());
    server.send_text("abc").unwrap(); // 2 + 3
    server
        .send_encoded(Bytes::from_static(&[0x82, 0x01, 9]))
        .unwrap();
    server
        .send_binary_bytes(Bytes::from(vec![0u8; 5000]))
        .unwrap(); // 4 + 5000
    server.send_ping(b"").unwrap(); // 2
    assert_eq!(server.pending_transmit(), 5 + 3 + 5004 + 2);
    let mut total = 0;
    while let Some(chunk) = server.poll_transmit() {
        total += chunk.len();
        assert_eq!(server.pending_transmit(), 5 + 3 + 5004 + 2 - total);
    }
    assert_eq!(total, 5014);
}

// ---- the close timer: virtual time, driven by the test ---------------------------------------

const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn timed(server: bool) -> WsConnection {
    connection(
        server,
        WsConfig {
            close_timeout: CLOSE_TIMEOUT,
            ..WsConfig::default()
        },
    )
}

#[test]
fn an_open_connection_has_no_timer() {
    let (mut client, mut server) = (timed(false), timed(true));
    let t0 = now();
    client.send_text("hi").unwrap();
    let bytes = drain_transmit(&mut client);
    server.handle_input(t0, &bytes);
    assert_eq!(events(&mut server), vec![WsEvent::Text("hi".into())]);
    for conn in [&mut client, &mut server] {
        assert_eq!(conn.poll_timeout(), None);
        conn.handle_timeout(t0 + 100 * CLOSE_TIMEOUT);
        assert_eq!(conn.state(), WsState::Open);
        assert!(!conn.should_close_socket());
    }
}

#[test]
fn a_peer_that_never_answers_our_close_is_cut_off_at_the_deadline() {
    let mut server = timed(true);
    let t0 = now() + Duration::from_secs(60);
    server.close(t0, CloseCode::NORMAL, "bye").unwrap();
    let sent = drain_transmit(&mut server);
    assert_eq!(decode_sent(&sent)[0].opcode, OpCode::Close);
    assert_eq!(server.poll_timeout(), Some(t0 + CLOSE_TIMEOUT));
    // Early firings (a timer shared with other deadlines) change nothing.
    server.handle_timeout(t0 + CLOSE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(server.state(), WsState::Closing);
    assert!(!server.should_close_socket());
    // The peer talks on but never closes: still Closing, the deadline does not move.
    server.handle_input(
        t0 + Duration::from_secs(4),
        &client_frame(true, 1, b"still here"),
    );
    assert_eq!(
        events(&mut server),
        vec![WsEvent::Text("still here".into())]
    );
    assert_eq!(server.poll_timeout(), Some(t0 + CLOSE_TIMEOUT));
    assert!(!server.close_timed_out());
    server.handle_timeout(t0 + CLOSE_TIMEOUT);
    assert!(server.close_timed_out());
    assert_eq!(server.state(), WsState::Closed);
    assert!(server.should_close_socket());
    assert_eq!(server.poll_timeout(), None);
    // Over: input is ignored, sends are refused.
    server.handle_input(t0 + CLOSE_TIMEOUT, &client_frame(true, 1, b"too late"));
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.send_text("x"), Err(WsSendError::Closed));
}

#[test]
fn a_client_waits_for_the_servers_eof_only_until_the_deadline() {
    let (mut client, mut server) = (timed(false), timed(true));
    let t0 = now();
    server.close(t0, CloseCode::GOING_AWAY, "").unwrap();
    // The close frame reaches the client 2 s later: its own timer starts then.
    let t1 = t0 + Duration::from_secs(2);
    client.handle_input(t1, &drain_transmit(&mut server));
    assert!(matches!(events(&mut client)[..], [WsEvent::Close { .. }]));
    assert_eq!(client.poll_timeout(), Some(t1 + CLOSE_TIMEOUT));
    let echo = drain_transmit(&mut client);
    server.handle_input(t1, &echo);
    assert!(matches!(events(&mut server)[..], [WsEvent::Close { .. }]));
    // The server is done and closes; its timer is gone.
    assert!(server.should_close_socket());
    assert_eq!(server.poll_timeout(), None);
    // The client does not see the EOF (a lost FIN): it gives up at its deadline.
    assert!(!client.should_close_socket());
    client.handle_timeout(t1 + CLOSE_TIMEOUT);
    assert!(client.should_close_socket());
}

#[test]
fn a_peer_that_stops_reading_cannot_hold_the_socket_open() {
    let mut server = timed(true);
    let t0 = now();
    server.handle_input(t0, &client_frame(true, 1, &[0xff]));
    assert!(matches!(
        events(&mut server)[..],
        [WsEvent::Error(WsError::InvalidUtf8)]
    ));
    // The failure's close frame is queued but never taken (the peer's window is shut).
    assert!(server.pending_transmit() > 0);
    assert!(!server.should_close_socket());
    assert_eq!(server.poll_timeout(), Some(t0 + CLOSE_TIMEOUT));
    server.handle_timeout(t0 + 2 * CLOSE_TIMEOUT);
    assert!(server.should_close_socket());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn a_finished_close_handshake_leaves_no_timer() {
    let (mut client, mut server) = (timed(false), timed(true));
    let t0 = now();
    client.close(t0, CloseCode::NORMAL, "").unwrap();
    assert_eq!(client.poll_timeout(), Some(t0 + CLOSE_TIMEOUT));
    server.handle_input(t0, &drain_transmit(&mut client));
    assert!(matches!(events(&mut server)[..], [WsEvent::Close { .. }]));
    assert_eq!(server.poll_timeout(), Some(t0 + CLOSE_TIMEOUT)); // until the echo is taken
    client.handle_input(t0, &drain_transmit(&mut server));
    assert_eq!(server.poll_timeout(), None);
    assert!(matches!(events(&mut client)[..], [WsEvent::Close { .. }]));
    client.handle_eof(t0 + Duration::from_millis(1));
    assert!(client.should_close_socket());
    assert_eq!(client.poll_timeout(), None);
    client.handle_timeout(t0 + CLOSE_TIMEOUT);
    assert!(!client.close_timed_out());
}
