//! The thread-per-connection server honours the connection limits of `ServerConfig`: a
//! connection beyond one is told `server-full` with the reason, the operator is told once,
//! and a freed slot is usable again.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tidings_core::wire::{FrameDecoder, Message, Preamble, DEFAULT_MAX_FRAME, PREAMBLE_LEN};
use tidings_std::{
    Client, ClientConfig, ClientEvent, ConnLimit, ErrorCode, ServerConfig, ServerEvent,
    ServerHandle,
};

mod common;

use common::start;

/// Opens a native connection, sends the preamble and `hello`, and returns every message the
/// server sends until it closes (within 10 s).
fn refused_messages(addr: SocketAddr, name: &str) -> Vec<Message> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = BytesMut::new();
    out.extend_from_slice(&Preamble::CURRENT.to_bytes());
    Message::Hello(tidings_core::wire::Hello {
        name: name.into(),
        capabilities: 0,
        max_frame: DEFAULT_MAX_FRAME,
    })
    .encode(&mut out);
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the server closes within 10 s");
    assert!(got.len() >= PREAMBLE_LEN, "no preamble: {got:?}");
    assert_eq!(&got[..PREAMBLE_LEN], &Preamble::CURRENT.to_bytes());
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
    dec.push(&got[PREAMBLE_LEN..]);
    let mut msgs = Vec::new();
    while let Some(frame) = dec.next_frame().unwrap() {
        msgs.push(Message::decode(frame).unwrap());
    }
    msgs
}

fn next_refusal(handle: &ServerHandle) -> ServerEvent {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(ev @ ServerEvent::ConnectionRefused { .. }) =
            handle.next_event_timeout(Duration::from_millis(200))
        {
            return ev;
        }
    }
    panic!("no ConnectionRefused event within 10 s");
}

#[test]
fn per_address_and_total_limits_refuse_with_server_full() {
    let server = start(ServerConfig {
        max_per_address: 2,
        ..ServerConfig::default()
    });
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let b = Client::connect(server.addr, "b", ClientConfig::default()).unwrap();
    let msgs = refused_messages(server.addr, "c");
    assert_eq!(
        msgs,
        vec![Message::Error {
            code: ErrorCode::ServerFull,
            text: ConnLimit::PerAddress.reason().into(),
        }]
    );
    let ServerEvent::ConnectionRefused { limit, addr, .. } = next_refusal(&server.handle) else {
        unreachable!()
    };
    assert_eq!(limit, ConnLimit::PerAddress);
    assert!(addr.ip().is_loopback());
    // The two admitted clients still talk.
    a.say_to("b", "still here").unwrap();
    loop {
        match b.next_event_timeout(Duration::from_secs(10)).unwrap() {
            ClientEvent::Text { text, .. } if text == "still here" => break,
            _ => {}
        }
    }
    // A freed slot can be taken again.
    a.close();
    let end = Instant::now() + Duration::from_secs(10);
    let c = loop {
        match Client::connect(server.addr, "c", ClientConfig::default()) {
            Ok(c) => break c,
            // The server may not have seen `a` leave yet.
            Err(_) if Instant::now() < end => {
                let _ = b.next_event_timeout(Duration::from_millis(100));
            }
            Err(e) => panic!("the freed slot was not usable: {e}"),
        }
    };
    drop(c);
    drop(b);

    let total = start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    });
    let _only = Client::connect(total.addr, "only", ClientConfig::default()).unwrap();
    let msgs = refused_messages(total.addr, "second");
    assert_eq!(
        msgs,
        vec![Message::Error {
            code: ErrorCode::ServerFull,
            text: ConnLimit::Total.reason().into(),
        }]
    );
}

#[test]
fn connections_in_their_handshake_are_capped() {
    let server = start(ServerConfig {
        max_handshaking: 1,
        ..ServerConfig::default()
    });
    // Registered peers do not count.
    let _a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let silent = TcpStream::connect(server.addr).unwrap();
    // The server counts `silent` when it accepts it, which may be after our next connect:
    // retry until the refusal names the handshake limit.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let msgs = refused_messages(server.addr, "b");
        let refused = msgs.iter().any(|m| {
            matches!(m, Message::Error { code: ErrorCode::ServerFull, text }
                if text.as_str() == ConnLimit::Handshaking.reason())
        });
        if refused {
            break;
        }
        assert!(Instant::now() < end, "never refused: {msgs:?}");
    }
    drop(silent);
}

/// A client sending faster than the message rate is slowed, not dropped: the server stops
/// reading it while it is over its rate, so every message still arrives, in order, no sooner
/// than the rate allows, and the flooder stays connected.
#[test]
fn a_flooding_client_is_slowed_and_loses_nothing() {
    let mut config = ServerConfig::default();
    config.hub.message_rate = 50;
    config.hub.message_burst = 10;
    let server = start(config);
    let flooder = Client::connect(server.addr, "flooder", ClientConfig::default()).unwrap();
    let reader = Client::connect(server.addr, "reader", ClientConfig::default()).unwrap();
    const N: usize = 60;
    // 32 KiB lines: far more than a read's worth (more than the hub lets a paused
    // connection deliver) reaches the server while the flooder is paused.
    let pad = "x".repeat(32 << 10);
    let started = Instant::now();
    for i in 0..N {
        flooder
            .say_to("reader", &format!("line {i} {pad}"))
            .unwrap();
    }
    let mut got = 0;
    while got < N {
        match reader.next_event_timeout(Duration::from_secs(20)) {
            Ok(ClientEvent::Text { text, .. }) => {
                assert_eq!(text, format!("line {got} {pad}"));
                got += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("only {got} of {N} lines arrived: {e:?}"),
        }
    }
    // 10 may pass at once; the other 50 at 50 per second take at least a second (a lower
    // bound the rate guarantees, not a performance figure).
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not slowed: {:?}",
        started.elapsed()
    );
    // Still connected: it can talk once more.
    flooder.say_to("reader", "after").unwrap();
    loop {
        match reader.next_event_timeout(Duration::from_secs(10)).unwrap() {
            ClientEvent::Text { text, .. } if text == "after" => break,
            ClientEvent::Text { text, .. } => panic!("unexpected {text}"),
            _ => {}
        }
    }
}
