mod sim;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sim::{Pair, Side};
use tidings_core::session::{Closed, Config, Event, Session};
use tidings_core::transfer::TransferEvent;
use tidings_core::ErrorCode;

#[test]
fn silent_peer_is_declared_dead_at_the_timeout() {
    let mut net = Pair::connected(Config::default(), Config::default(), 1);
    // The server stops hearing the client: cut client -> server only by a huge delay.
    net.to_server.delay = Duration::from_secs(3600);
    let start = net.now;
    net.advance(Duration::from_secs(29));
    assert!(net.server.is_open(), "declared dead too early");
    net.advance(Duration::from_secs(2));
    let closed = net.events(Side::Server).into_iter().find_map(|e| match e {
        Event::Closed(c) => Some(c),
        _ => None,
    });
    assert_eq!(closed.map(|c| c.code()), Some(ErrorCode::HeartbeatTimeout));
    assert!(net.now - start < Duration::from_secs(32));
}

#[test]
fn idle_pair_stays_up_with_heartbeats() {
    let mut net = Pair::connected(Config::default(), Config::default(), 2);
    net.advance(Duration::from_secs(300));
    assert!(net.client.is_open() && net.server.is_open());
    assert!(net
        .events(Side::Client)
        .iter()
        .all(|e| !matches!(e, Event::Closed(_))));
}

#[test]
fn goodbye_closes_both_sides() {
    let mut net = Pair::connected(Config::default(), Config::default(), 3);
    net.client.goodbye(ErrorCode::Normal, "bye");
    net.settle();
    let ev = net.events(Side::Server);
    assert!(matches!(
        ev.last(),
        Some(Event::Closed(Closed::Peer {
            code: ErrorCode::Normal,
            ..
        }))
    ));
}

/// A connected pair in which the client offered `size` bytes, the server accepted and the
/// client was asked to read; the client's transfer id.
fn accepted_offer(size: u64) -> (Pair, u64) {
    let mut net = Pair::connected(Config::default(), Config::default(), 4);
    let id = net.client.offer_file("", "a.bin", size, "").unwrap();
    net.settle();
    let offered = net.events(Side::Server).into_iter().find_map(|e| match e {
        Event::Transfer(TransferEvent::Offered(o)) => Some(o.id),
        _ => None,
    });
    net.server.accept_offer(offered.unwrap(), 0).unwrap();
    net.settle();
    assert!(net
        .events(Side::Client)
        .iter()
        .any(|e| matches!(e, Event::Transfer(TransferEvent::Read { .. }))));
    (net, id)
}

/// The types of the whole frames in `bytes`.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        types.push(bytes[4]);
        bytes = &bytes[5 + len..];
    }
    types
}

fn transmitted(s: &mut Session) -> Vec<u8> {
    std::iter::from_fn(|| s.poll_transmit()).flatten().collect()
}

#[test]
fn goodbye_is_the_last_frame_even_with_file_data_queued() {
    let (mut net, id) = accepted_offer(5);
    let client = &mut net.client;
    client
        .provide_data(id, 0, Bytes::from_static(b"hello"))
        .unwrap();
    client.goodbye(ErrorCode::Normal, "bye");
    // The chunk and done queued before the goodbye are not sent after it.
    assert_eq!(frame_types(&transmitted(client)), [0x3F]);
}

#[test]
fn a_chunk_begun_before_goodbye_is_finished_then_nothing_after_goodbye() {
    let (mut net, id) = accepted_offer(4096);
    let client = &mut net.client;
    client
        .provide_data(id, 0, Bytes::from(vec![7u8; 4096]))
        .unwrap();
    // The chunk's head goes out; its payload must follow before any other frame.
    let mut out = client.poll_transmit().unwrap().to_vec();
    assert!(out.len() < 4096, "the head alone");
    client.goodbye(ErrorCode::Normal, "bye");
    out.extend(transmitted(client));
    assert_eq!(frame_types(&out), [0x43, 0x3F], "chunk, goodbye; no done");
}

#[test]
fn a_server_that_received_nothing_closes_silently_at_the_handshake_timeout() {
    let now = Instant::now();
    let mut silent = Session::server(Config::default(), now);
    silent.handle_timeout(now + Duration::from_secs(10));
    assert!(silent.is_closed());
    assert!(
        silent.poll_transmit().is_none(),
        "nothing for a silent peer"
    );

    // One byte of preamble is a tidings client: it is told why.
    let mut slow = Session::server(Config::default(), now);
    slow.handle_input(now, &[0x89]);
    slow.handle_timeout(now + Duration::from_secs(10));
    let out = transmitted(&mut slow);
    assert_eq!(out[0], 0x89, "the preamble first");
    assert_eq!(frame_types(&out[8..]), [0x3E]);
    assert_eq!(&out[13..15], &[0, 8], "heartbeat-timeout");
}
