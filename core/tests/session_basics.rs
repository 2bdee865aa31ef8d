mod sim;

use std::time::Duration;

use sim::{Pair, Side};
use tidings_core::session::{Closed, Config, Event};
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
