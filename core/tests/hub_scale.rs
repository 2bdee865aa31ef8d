//! The hub with many connections, simulated. The `#[ignore]`d tests measure and print
//! figures; run them in release mode:
//!
//! ```text
//! cargo test --release -p tidings-core --test hub_scale -- --ignored --nocapture
//! ```

mod sim;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use sim::{sha256, HubNet};
use tidings_core::hub::{ConnId, Hub, HubConfig, HubEvent};
use tidings_core::wire::{Message, Preamble, Utf8, DEFAULT_MAX_FRAME};

fn room(n: usize, seed: u64) -> HubNet {
    let mut net = HubNet::new(
        HubConfig {
            max_peers: n,
            ..HubConfig::default()
        },
        seed,
    );
    for i in 0..n {
        net.join(&format!("p{i}"));
    }
    net
}

#[test]
fn a_few_hundred_clients_agree_on_who_is_online() {
    let mut net = room(300, 1);
    assert_eq!(net.hub.peer_count(), 300);
    let extra = net.join("extra");
    assert!(matches!(
        net.clients[extra].closed(),
        Some(tidings_core::session::Closed::Peer {
            code: tidings_core::ErrorCode::ServerFull,
            ..
        })
    ));
    for i in (0..300).step_by(10) {
        net.clients[i]
            .session
            .goodbye(tidings_core::ErrorCode::Normal, "");
    }
    net.settle();
    let who: std::collections::BTreeSet<String> =
        net.hub.who().iter().map(|n| n.to_string()).collect();
    assert_eq!(who.len(), 270);
    for i in (1..300).step_by(37).filter(|i| i % 10 != 0) {
        assert_eq!(net.online_seen_by(i), who, "client {i}");
    }
    // The room was full; with 30 gone a newcomer gets in and everyone hears of it.
    let late = net.join("late");
    assert!(net.clients[late].session.is_open());
    assert_eq!(
        net.clients[1].presence().last(),
        Some(&(true, "late".into()))
    );
}

#[test]
fn timers_of_many_quiet_connections_stay_in_step() {
    let mut net = room(200, 2);
    // Ten minutes of silence: every heartbeat on time, nobody declared dead.
    net.advance(Duration::from_secs(600));
    assert_eq!(net.hub.peer_count(), 200);
    assert!(!net.op.saw(|e| matches!(e, HubEvent::Left { .. })));
    // The hub's next deadline is never in the past once everything is processed.
    assert!(net.hub.poll_timeout().unwrap() > net.now);
}

/// A hub with `n` peers joined by hand-written hellos (output drained and dropped), so only
/// the hub's own work is timed. Returns the hub, the connections and the time the joins took.
fn hub_only_room(n: usize) -> (Hub, Vec<ConnId>, Duration) {
    let now = Instant::now();
    let mut hub = Hub::new(
        HubConfig {
            max_peers: n,
            ..HubConfig::default()
        },
        now,
    );
    let t = Instant::now();
    let mut bytes = 0usize;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let conn = hub.connect(now);
        let mut hello = BytesMut::from(&Preamble::CURRENT.to_bytes()[..]);
        sim::hello(&format!("p{i}"), 0, DEFAULT_MAX_FRAME).encode(&mut hello);
        hub.handle_input(now, conn, &hello);
        bytes += drain(&mut hub);
        conns.push(conn);
    }
    assert_eq!(hub.peer_count(), n);
    assert!(bytes > n * n / 2 * 8, "presence went out to everyone");
    (hub, conns, t.elapsed())
}

/// Takes every byte the hub has for any connection, as writers with fast sockets would.
fn drain(hub: &mut Hub) -> usize {
    let mut bytes = 0;
    while let Some(c) = hub.poll_ready() {
        while let Some(b) = hub.poll_transmit(c) {
            bytes += b.len();
        }
    }
    bytes
}

fn text_frame(to: &str, text: &str) -> BytesMut {
    let mut out = BytesMut::new();
    Message::Text {
        peer: Utf8::from(to),
        private: false,
        text: Utf8::from(text),
    }
    .encode(&mut out);
    out
}

#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn measure_hub_only_joins_fan_out_and_routing() {
    for n in [1_000, 10_000] {
        let (mut hub, conns, took) = hub_only_room(n);
        let now = Instant::now();
        let presence = n * (n - 1) / 2;
        println!(
            "n={n}: {n} joins in {took:.2?} ({presence} presence frames and {n} welcome lists: {:.0} ns per presence frame)",
            took.as_nanos() as f64 / presence as f64
        );

        // Broadcasts: from input until every recipient's bytes are taken.
        let rounds = 20;
        let t = Instant::now();
        for r in 0..rounds {
            let frame = text_frame("", "hello, room");
            hub.handle_input(now, conns[r % n], &frame);
            drain(&mut hub);
        }
        let took = t.elapsed();
        let deliveries = rounds * (n - 1);
        println!(
            "n={n}: {rounds} broadcasts to {} peers each in {took:.2?}: {:.2} M deliveries/s (queued and taken)",
            n - 1,
            deliveries as f64 / took.as_secs_f64() / 1e6
        );

        // Private messages between pseudo-random pairs.
        let count = 200_000;
        let mut x = 12345u64;
        let frames: Vec<(ConnId, BytesMut)> = (0..count)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = conns[(x >> 33) as usize % n];
                let to = (x >> 13) as usize % n;
                (from, text_frame(&format!("p{to}"), "psst"))
            })
            .collect();
        let t = Instant::now();
        for (from, frame) in &frames {
            hub.handle_input(now, *from, frame);
            drain(&mut hub);
        }
        let took = t.elapsed();
        println!(
            "n={n}: {count} private messages routed in {took:.2?}: {:.2} M msgs/s",
            count as f64 / took.as_secs_f64() / 1e6
        );

        // The timer query a runtime makes after every input.
        let t = Instant::now();
        let mut sink = 0u64;
        for _ in 0..1_000_000 {
            sink += hub.poll_timeout().is_some() as u64;
        }
        assert_eq!(sink, 1_000_000);
        println!(
            "n={n}: poll_timeout {:.1} ns/call",
            t.elapsed().as_nanos() as f64 / 1e6
        );
        assert_eq!(hub.peer_count(), n, "nobody was dropped");
    }
}

#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn measure_relay_throughput() {
    let mut net = HubNet::with_defaults(4);
    net.join("alice");
    net.join("bob");
    let size = 256 << 20;
    let file = net.rng.bytes(size);
    let t = Instant::now();
    net.offer("alice", "bob", "big", file.clone());
    let got = net.accept("bob", Vec::new());
    net.settle();
    let took = t.elapsed();
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    println!(
        "relay of {} MiB through the hub (both clients' SHA-256 included, one thread): {:.2?}, {:.0} MiB/s; hub peak per relay {} KiB",
        size >> 20,
        took,
        size as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        net.hub.relay_buffered_peak() >> 10
    );
}
