//! Every frame rule of RFC 6455 §5 with the close code it calls for. Each input is fed whole,
//! one byte at a time and at random split points, and must give the same outcome every way.

mod sim;

use bytes::Bytes;
use sim::ws::*;
use tidings_core::ws::{CloseCode, OpCode, WsConfig, WsError, WsEvent, WsState};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn server_gets(input: &[u8]) -> Outcome {
    feed_all_ways(true, WsConfig::default(), input)
}

fn client_gets(input: &[u8]) -> Outcome {
    feed_all_ways(false, WsConfig::default(), input)
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn binary(data: &[u8]) -> WsEvent {
    WsEvent::Binary(Bytes::copy_from_slice(data))
}

fn text(s: &'static str) -> WsEvent {
    WsEvent::Text(s.into())
}

/// Asserts the connection failed with `err`, sent exactly one close frame with the error's
/// code, and stopped: the error is the last event.
fn assert_failed(outcome: &Outcome, err: WsError, code: u16) {
    assert_eq!(err.close_code(), CloseCode(code));
    assert_eq!(
        outcome.events.last(),
        Some(&WsEvent::Error(err)),
        "{outcome:#?}"
    );
    let close = outcome.sent.last().expect("a close frame was sent");
    assert_eq!(close.opcode, OpCode::Close);
    assert_eq!(close.payload[..2], code.to_be_bytes());
    assert!(std::str::from_utf8(&close.payload[2..]).is_ok());
    assert_eq!(
        outcome
            .sent
            .iter()
            .filter(|s| s.opcode == OpCode::Close)
            .count(),
        1
    );
    assert_eq!(outcome.state, WsState::Closed);
}

// ---- valid traffic -------------------------------------------------------------------------

#[test]
fn text_and_binary_messages() {
    let input = concat(&[
        client_frame(true, TEXT, b"Hello"),
        client_frame(true, BINARY, &[0, 1, 2, 255]),
        client_frame(true, BINARY, b""),
        client_frame(true, TEXT, b""),
        client_frame(true, TEXT, "grüße, 世界 🎉".as_bytes()),
    ]);
    let out = server_gets(&input);
    assert_eq!(
        out.events,
        vec![
            text("Hello"),
            binary(&[0, 1, 2, 255]),
            binary(b""),
            text(""),
            text("grüße, 世界 🎉"),
        ]
    );
    assert!(out.sent.is_empty());
    assert_eq!(out.state, WsState::Open);
}

#[test]
fn every_length_encoding() {
    // 7-bit, the 7/16 boundary, 16-bit, the 16/64 boundary and 64-bit lengths.
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let frame = client_frame(true, BINARY, &payload);
        let out = feed(true, WsConfig::default(), &frame, Split::Random(len as u64));
        assert_eq!(out.events, vec![binary(&payload)], "len {len}");
        let out = feed(
            false,
            WsConfig::default(),
            &server_frame(true, BINARY, &payload),
            Split::Whole,
        );
        assert_eq!(out.events, vec![binary(&payload)], "len {len}");
    }
}

#[test]
fn client_accepts_unmasked_frames() {
    let out = client_gets(&server_frame(true, TEXT, b"hi"));
    assert_eq!(out.events, vec![text("hi")]);
}

#[test]
fn ping_is_answered_with_pong_and_pong_is_reported() {
    let out = server_gets(&concat(&[
        client_frame(true, PING, b"ping payload"),
        client_frame(true, PONG, b"unsolicited"),
        client_frame(true, PING, b""),
    ]));
    assert_eq!(
        out.events,
        vec![
            WsEvent::Ping(Bytes::from_static(b"ping payload")),
            WsEvent::Pong(Bytes::from_static(b"unsolicited")),
            WsEvent::Ping(Bytes::new()),
        ]
    );
    let pongs: Vec<_> = out
        .sent
        .iter()
        .map(|s| (s.opcode, s.payload.clone(), s.masked))
        .collect();
    assert_eq!(
        pongs,
        vec![
            (OpCode::Pong, b"ping payload".to_vec(), false),
            (OpCode::Pong, vec![], false)
        ]
    );
    // A client masks its pongs.
    let out = client_gets(&server_frame(true, PING, &[9; 125]));
    assert_eq!(out.sent.len(), 1);
    assert!(out.sent[0].masked);
    assert_eq!(out.sent[0].payload, vec![9; 125]);
}

#[test]
fn fragmented_messages_with_interleaved_control_frames() {
    let input = concat(&[
        client_frame(false, TEXT, b"Hel"),
        client_frame(true, PING, b"p1"),
        client_frame(false, CONT, b""),
        client_frame(false, CONT, b"lo"),
        client_frame(true, PONG, b"p2"),
        client_frame(true, CONT, b"!"),
        client_frame(false, BINARY, &[1]),
        client_frame(true, CONT, &[2, 3]),
        // A code point split across fragments.
        client_frame(false, TEXT, &[b'a', 0xE2]),
        client_frame(false, CONT, &[0x82]),
        client_frame(true, CONT, &[0xAC, b'b']),
    ]);
    let out = server_gets(&input);
    assert_eq!(
        out.events,
        vec![
            WsEvent::Ping(Bytes::from_static(b"p1")),
            WsEvent::Pong(Bytes::from_static(b"p2")),
            text("Hello!"),
            binary(&[1, 2, 3]),
            text("a€b"),
        ]
    );
    assert_eq!(out.sent.len(), 1); // the pong
}

#[test]
fn close_is_echoed_and_ends_reading() {
    let input = concat(&[
        client_frame(true, TEXT, b"before"),
        client_frame(true, CLOSE, &close_payload(1000, b"bye")),
        client_frame(true, TEXT, b"after: ignored"),
        b"garbage after close is never parsed".to_vec(),
    ]);
    let out = server_gets(&input);
    assert_eq!(
        out.events,
        vec![
            text("before"),
            WsEvent::Close {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            },
        ]
    );
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].opcode, OpCode::Close);
    assert_eq!(out.sent[0].payload, 1000u16.to_be_bytes());
    assert_eq!(out.state, WsState::Closed);
}

#[test]
fn empty_close_is_reported_as_no_status_and_echoed_empty() {
    let out = server_gets(&client_frame(true, CLOSE, b""));
    assert_eq!(
        out.events,
        vec![WsEvent::Close {
            code: CloseCode::NO_STATUS,
            reason: "".into()
        }]
    );
    assert_eq!(out.sent[0].opcode, OpCode::Close);
    assert!(out.sent[0].payload.is_empty());
}

#[test]
fn valid_close_codes_are_accepted() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let out = server_gets(&client_frame(true, CLOSE, &close_payload(code, b"")));
        assert_eq!(
            out.events,
            vec![WsEvent::Close {
                code: CloseCode(code),
                reason: "".into()
            }],
            "code {code}"
        );
        assert_eq!(out.sent[0].payload, code.to_be_bytes());
    }
}

// ---- protocol errors: 1002 -----------------------------------------------------------------

#[test]
fn reserved_bits_fail_with_1002() {
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        let out = server_gets(&raw_frame(0x80 | rsv | TEXT, b"x", Some(MASK)));
        assert_failed(&out, WsError::ReservedBits, 1002);
        let out = server_gets(&raw_frame(0x80 | rsv | PING, b"", Some(MASK)));
        assert_failed(&out, WsError::ReservedBits, 1002);
    }
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let out = server_gets(&client_frame(true, op, b"x"));
        assert_failed(&out, WsError::ReservedOpcode(op), 1002);
    }
}

#[test]
fn masking_rules_by_role() {
    let out = server_gets(&server_frame(true, TEXT, b"unmasked"));
    assert_failed(&out, WsError::UnmaskedFrame, 1002);
    let out = client_gets(&client_frame(true, TEXT, b"masked"));
    assert_failed(&out, WsError::MaskedFrame, 1002);
    // The server's close frame after failing is unmasked, the client's masked.
    assert!(out.sent[0].masked);
}

#[test]
fn control_frames_must_be_short_and_whole() {
    for op in [CLOSE, PING, PONG] {
        let out = server_gets(&client_frame(true, op, &[b'a'; 126]));
        assert_failed(&out, WsError::ControlTooLong(126), 1002);
        let out = server_gets(&client_frame(false, op, b""));
        assert_failed(&out, WsError::FragmentedControl, 1002);
    }
    // 125 is fine.
    let out = server_gets(&client_frame(true, PING, &[b'a'; 125]));
    assert_eq!(out.events.len(), 1);
}

#[test]
fn continuation_rules() {
    let out = server_gets(&client_frame(true, CONT, b"orphan"));
    assert_failed(&out, WsError::UnexpectedContinuation, 1002);
    let out = server_gets(&client_frame(false, CONT, b"orphan"));
    assert_failed(&out, WsError::UnexpectedContinuation, 1002);
    let out = server_gets(&concat(&[
        client_frame(false, TEXT, b"a"),
        client_frame(true, TEXT, b"b"),
    ]));
    assert_failed(&out, WsError::ExpectedContinuation, 1002);
    let out = server_gets(&concat(&[
        client_frame(false, BINARY, b"a"),
        client_frame(false, TEXT, b"b"),
    ]));
    assert_failed(&out, WsError::ExpectedContinuation, 1002);
}

#[test]
fn lengths_must_be_minimal_and_63_bit() {
    // 5 bytes announced with the 16-bit form.
    let mut frame = vec![0x82, 0x80 | 126, 0, 5];
    frame.extend_from_slice(&MASK);
    frame.extend_from_slice(&[0; 5]);
    assert_failed(&server_gets(&frame), WsError::NonMinimalLength, 1002);
    // 200 bytes announced with the 64-bit form.
    let mut frame = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200];
    frame.extend_from_slice(&MASK);
    assert_failed(&server_gets(&frame), WsError::NonMinimalLength, 1002);
    // Most significant bit set.
    let frame = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
    assert_failed(&server_gets(&frame), WsError::LengthOverflow, 1002);
}

#[test]
fn bad_close_payloads() {
    let out = server_gets(&client_frame(true, CLOSE, &[0x03]));
    assert_failed(&out, WsError::ClosePayloadTooShort, 1002);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let out = server_gets(&client_frame(true, CLOSE, &close_payload(code, b"")));
        assert_failed(&out, WsError::InvalidCloseCode(code), 1002);
    }
    let out = server_gets(&client_frame(
        true,
        CLOSE,
        &close_payload(
            1000,
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
                0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
            ],
        ),
    ));
    assert_failed(&out, WsError::InvalidCloseReason, 1007);
}

// ---- invalid UTF-8: 1007, failing fast ------------------------------------------------------

#[test]
fn invalid_utf8_fails_with_1007() {
    let cases: [&[u8]; 7] = [
        &[0xFF],
        &[b'a', 0xC0, 0x80],       // overlong
        &[0xED, 0xA0, 0x80],       // surrogate
        &[0xF4, 0x90, 0x80, 0x80], // above U+10FFFF
        &[0xE2, 0x82],             // truncated at the end of the message
        &[
            0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
        ],
        &[0x80],
    ];
    for bytes in cases {
        let out = server_gets(&client_frame(true, TEXT, bytes));
        assert_failed(&out, WsError::InvalidUtf8, 1007);
        // Fragmented: the bad bytes in the middle fragment.
        let out = server_gets(&concat(&[
            client_frame(false, TEXT, b"ok so far "),
            client_frame(false, CONT, bytes),
            client_frame(true, CONT, b""),
        ]));
        assert_failed(&out, WsError::InvalidUtf8, 1007);
    }
    // Binary messages are not checked.
    assert_eq!(
        server_gets(&client_frame(true, BINARY, &[0xFF])).events,
        vec![binary(&[0xFF])]
    );
}

#[test]
fn invalid_utf8_fails_before_the_frame_ends() {
    // A 1000-byte text frame whose 11th byte is already impossible: the error must come
    // as soon as that byte is fed, not after the remaining 989.
    let mut payload = b"0123456789".to_vec();
    payload.push(0xF8);
    payload.resize(1000, b'x');
    let frame = client_frame(true, TEXT, &payload);
    let header = 2 + 2 + 4;
    for split in [Split::Bytewise, Split::Random(7)] {
        let mut conn = connection(true, WsConfig::default());
        let mut fed = 0;
        let mut failed_at = None;
        for chunk in chunks(&frame, split) {
            conn.handle_input(now(), chunk);
            fed += chunk.len();
            if let Some(WsEvent::Error(WsError::InvalidUtf8)) = conn.poll_event() {
                failed_at = Some(fed);
                break;
            }
        }
        let failed_at = failed_at.expect("failed");
        assert!(
            failed_at >= header + 11 && failed_at < header + 11 + 40,
            "{failed_at}"
        );
    }
    // Across fragments: the first fragment ends inside "€", the second continues it wrongly.
    let input = concat(&[
        client_frame(false, TEXT, &[b'a', 0xE2, 0x82]),
        client_frame(false, CONT, b"z"),
    ]);
    let out = server_gets(&input);
    assert_failed(&out, WsError::InvalidUtf8, 1007);
}

// ---- limits: 1009, checked before buffering -------------------------------------------------

#[test]
fn frame_and_message_limits_fail_with_1009() {
    let config = limits(100, 60);
    let out = feed_all_ways(true, config, &client_frame(true, BINARY, &[0; 61]));
    assert_failed(&out, WsError::FrameTooLarge { len: 61, limit: 60 }, 1009);
    let ok = feed_all_ways(true, config, &client_frame(true, BINARY, &[0; 60]));
    assert_eq!(ok.events.len(), 1);
    let out = feed_all_ways(
        true,
        config,
        &concat(&[
            client_frame(false, BINARY, &[0; 60]),
            client_frame(false, CONT, &[0; 40]),
            client_frame(true, CONT, &[0; 1]),
        ]),
    );
    assert_failed(
        &out,
        WsError::MessageTooLarge {
            len: 101,
            limit: 100,
        },
        1009,
    );
    let ok = feed_all_ways(
        true,
        config,
        &concat(&[
            client_frame(false, TEXT, &[b'a'; 60]),
            client_frame(true, CONT, &[b'b'; 40]),
        ]),
    );
    assert_eq!(ok.events.len(), 1);
}

#[test]
fn oversized_frame_fails_on_its_header_alone() {
    // A header announcing 2^40 bytes: refused from the 14 header bytes, nothing allocated.
    let mut conn = connection(true, WsConfig::default());
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&MASK);
    conn.handle_input(now(), &header);
    assert_eq!(
        conn.poll_event(),
        Some(WsEvent::Error(WsError::FrameTooLarge {
            len: 1 << 40,
            limit: 16 << 20
        }))
    );
    assert_eq!(conn.buffered_input(), 0);
}

#[test]
fn rules_fail_on_the_first_byte_that_breaks_them() {
    // Reserved opcode: one byte is enough.
    let mut conn = connection(true, WsConfig::default());
    conn.handle_input(now(), &[0x83]);
    assert_eq!(
        conn.poll_event(),
        Some(WsEvent::Error(WsError::ReservedOpcode(3)))
    );
    // Oversized ping: two bytes.
    let mut conn = connection(true, WsConfig::default());
    conn.handle_input(now(), &[0x89, 0xFE]);
    assert_eq!(
        conn.poll_event(),
        Some(WsEvent::Error(WsError::ControlTooLong(126)))
    );
}

#[test]
fn nothing_is_read_after_a_failure() {
    let out = server_gets(&concat(&[
        client_frame(true, 0x3, b""),
        client_frame(true, TEXT, b"never seen"),
        client_frame(true, PING, b"never answered"),
    ]));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.sent.len(), 1);
}
