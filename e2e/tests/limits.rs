//! Both servers honour the connection limits of `ServerConfig`: a connection beyond one is
//! told `server-full` with the reason, the operator is told once, and a freed slot is usable
//! again (also the place of a client that stopped reading, once the heartbeat timeout ends
//! it); a client over the message rate is slowed, not dropped.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tidings_core::wire::Message;
use tidings_e2e::{
    assert_refused, for_both_servers, silent_peer, ClientConfig, ClientEvent, ConnLimit, Error,
    ErrorCode, RawNative, ServerConfig, ServerEvent, ServerKind, TestServer,
};
use tidings_std::Client;

for_both_servers! {
    native: [
        per_address_and_total_limits_refuse_with_server_full,
        connections_in_their_handshake_are_capped,
        a_flooding_client_is_slowed_and_loses_nothing,
        a_client_that_stops_reading_frees_its_place_after_the_heartbeat_timeout,
    ],
}

/// What the server sends a native client that says `hello` as `name`, until it closes.
fn refused_messages(addr: SocketAddr, name: &str) -> Vec<Message> {
    RawNative::hello(addr, name).until_closed()
}

/// What a native client turned away for `limit` is told.
fn server_full(limit: ConnLimit) -> Vec<Message> {
    vec![Message::Error {
        code: ErrorCode::ServerFull,
        text: limit.reason().into(),
    }]
}

fn per_address_and_total_limits_refuse_with_server_full(kind: ServerKind) {
    let server = TestServer::start(
        kind,
        ServerConfig {
            max_per_address: 2,
            ..ServerConfig::default()
        },
    );
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let b = Client::connect(server.addr, "b", ClientConfig::default()).unwrap();
    let msgs = refused_messages(server.addr, "c");
    assert_eq!(msgs, server_full(ConnLimit::PerAddress));
    let ServerEvent::ConnectionRefused { limit, addr, .. } =
        server.wait_event(|e| matches!(e, ServerEvent::ConnectionRefused { .. }))
    else {
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

    let total = TestServer::start(
        kind,
        ServerConfig {
            max_connections: 1,
            ..ServerConfig::default()
        },
    );
    let _only = Client::connect(total.addr, "only", ClientConfig::default()).unwrap();
    let msgs = refused_messages(total.addr, "second");
    assert_eq!(msgs, server_full(ConnLimit::Total));
}

fn connections_in_their_handshake_are_capped(kind: ServerKind) {
    let server = TestServer::start(
        kind,
        ServerConfig {
            max_handshaking: 1,
            ..ServerConfig::default()
        },
    );
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
fn a_flooding_client_is_slowed_and_loses_nothing(kind: ServerKind) {
    let mut config = ServerConfig::default();
    config.hub.message_rate = 50;
    config.hub.message_burst = 10;
    let server = TestServer::start(kind, config);
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

/// A client that stops reading must not keep the server's resources: whatever is blocked on
/// writing to it gives up once the heartbeat timeout ends its session, the connection is
/// closed and its place under the connection limits is free again.
fn a_client_that_stops_reading_frees_its_place_after_the_heartbeat_timeout(kind: ServerKind) {
    let mut config = ServerConfig {
        // One place only: the stalled client holds it until the server lets it go.
        max_connections: 1,
        ..ServerConfig::default()
    };
    config.hub.session.heartbeat_interval = Duration::from_millis(500);
    config.hub.session.heartbeat_timeout = Duration::from_secs(2);
    // Room in the hub for everything said below: the session is not dropped as a slow
    // consumer at once, so the writer really finds the socket full.
    config.hub.session.max_queued_output = 64 << 20;
    let server = TestServer::start(kind, config);

    // A native client that is welcomed and never reads a byte again.
    let stalled = silent_peer(server.addr, "stalled");
    // More than any socket buffers hold: the server's writing to it stalls. Then the
    // stalled client's silence ends its session (the heartbeat timeout).
    let big = "x".repeat(60_000);
    for _ in 0..500 {
        if server.say(Some("stalled"), &big).is_err() {
            break; // the session already ended
        }
    }

    // Until the stalled connection is closed, every newcomer is refused with server-full.
    let deadline = Instant::now() + Duration::from_secs(30);
    let joined = loop {
        match Client::connect(server.addr, "late", ClientConfig::default()) {
            Ok(client) => break client,
            Err(e @ Error::Refused { .. }) => {
                assert_refused(&e, ErrorCode::ServerFull);
                assert!(
                    Instant::now() < deadline,
                    "the stalled connection still holds the only place after 30 s"
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    };
    assert_eq!(joined.name(), "late");
    drop(stalled);
}
