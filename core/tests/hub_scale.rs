//! The hub with many connections, simulated. The `#[ignore]`d tests measure and print
//! figures; run them in release mode:
//!
//! ```text
//! cargo test --release -p tidings-core --test hub_scale -- --ignored --nocapture
//! ```

mod hub_sim;

use std::time::{Duration, Instant};

use hub_sim::{sha256, Net};
use tidings_core::hub::{HubConfig, HubEvent};

fn room(n: usize, seed: u64) -> Net {
    let mut net = Net::new(
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
    assert!(!net
        .op
        .events
        .iter()
        .any(|e| matches!(e, HubEvent::Left { .. })));
    // The hub's next deadline is never in the past once everything is processed.
    assert!(net.hub.poll_timeout().unwrap() > net.now);
}

#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn measure_fan_out_and_joins() {
    for n in [1_000, 10_000] {
        let t = Instant::now();
        let mut net = room(n, 3);
        let join = t.elapsed();

        // One broadcast to everyone, hub side only: time from input to all output queued.
        net.clients[0].session.send_text("", "hello, room").unwrap();
        let bytes = net.clients[0].session.poll_transmit().unwrap();
        let conn = net.clients[0].conn;
        let t = Instant::now();
        net.hub.handle_input(net.now, conn, &bytes);
        let fan_out = t.elapsed();
        net.settle();
        assert!(net.clients[n - 1].texts().len() == 1);

        // poll_timeout with n connections.
        let t = Instant::now();
        let mut sink = 0u64;
        for _ in 0..1_000_000 {
            sink += net.hub.poll_timeout().is_some() as u64;
        }
        let poll = t.elapsed();
        assert_eq!(sink, 1_000_000);
        println!(
            "n={n}: {n} joins (simulated clients included) {:.2?}; one broadcast fanned out to {} in {:.2?} ({:.0} deliveries/s); poll_timeout {:.1} ns/call",
            join,
            n - 1,
            fan_out,
            (n - 1) as f64 / fan_out.as_secs_f64(),
            poll.as_nanos() as f64 / 1e6,
        );
    }
}

/// Joins `n` clients straight into a hub (hand-written hellos, output drained and dropped),
/// so only the hub's own work is timed.
fn hub_only_joins(n: usize) -> Duration {
    use tidings_core::hub::Hub;
    use tidings_core::wire::{Hello, Message, Preamble, Utf8, DEFAULT_MAX_FRAME};
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
    for i in 0..n {
        let conn = hub.connect(now);
        let mut hello = bytes::BytesMut::from(&Preamble::CURRENT.to_bytes()[..]);
        Message::Hello(Hello {
            name: Utf8::from(format!("p{i}")),
            capabilities: 0,
            max_frame: DEFAULT_MAX_FRAME,
        })
        .encode(&mut hello);
        hub.handle_input(now, conn, &hello);
        while let Some(c) = hub.poll_ready() {
            while let Some(b) = hub.poll_transmit(c) {
                bytes += b.len();
            }
        }
    }
    assert_eq!(hub.peer_count(), n);
    assert!(bytes > n * n / 2 * 8, "presence went out to everyone");
    t.elapsed()
}

#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn measure_hub_only_joins() {
    for n in [1_000, 10_000] {
        let took = hub_only_joins(n);
        let deliveries = n * (n - 1) / 2;
        println!(
            "hub alone: {n} joins in {took:.2?} ({deliveries} presence frames, {:.0} ns each incl. welcome lists)",
            took.as_nanos() as f64 / deliveries as f64
        );
    }
}

#[test]
#[ignore = "measurement; run in release with --nocapture"]
fn measure_relay_throughput() {
    let mut net = Net::with_defaults(4);
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
