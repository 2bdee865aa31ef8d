//! A client that stops reading must not keep the std server's resources: its writer thread
//! blocks in `write` only for the heartbeat timeout, then the connection is closed and its
//! place under the connection limits is free again.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Session};
use tidings_std::{Client, ClientConfig, Error, ServerConfig};

mod common;

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_client_that_stops_reading_frees_its_place_after_the_heartbeat_timeout() {
    // One place only: the stalled client holds it until the server lets it go.
    let mut config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    config.hub.session.heartbeat_interval = Duration::from_millis(500);
    config.hub.session.heartbeat_timeout = Duration::from_secs(2);
    // Room in the hub for everything said below: the session is not dropped as a slow
    // consumer at once, so the writer really blocks with the socket full.
    config.hub.session.max_queued_output = 64 << 20;
    let server = common::start(config);

    // A native client that says hello and never reads a byte.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    let mut session = Session::client(Config::default(), "stalled", Instant::now()).unwrap();
    while let Some(bytes) = session.poll_transmit() {
        stalled.write_all(&bytes).unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    while !server.handle.who().iter().any(|n| n == "stalled") {
        assert!(Instant::now() < deadline, "the stalled client never joined");
        std::thread::yield_now();
    }
    // More than any socket buffers hold: the server's writer ends up blocked in `write`.
    // Then the stalled client's silence ends its session (the heartbeat timeout).
    let big = "x".repeat(60_000);
    for _ in 0..500 {
        if server.handle.say(Some("stalled"), &big).is_err() {
            break; // the session already ended
        }
    }

    // Until the stalled connection is closed, every newcomer is refused with server-full.
    let joined = loop {
        match Client::connect(server.addr, "late", ClientConfig::default()) {
            Ok(client) => break client,
            Err(Error::Refused { .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "the stalled connection still holds the only place after {PATIENCE:?}"
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    };
    assert_eq!(joined.name(), "late");
    drop(stalled);
}
