//! Both clients' `close` is bounded: it returns at once when the connection is gone, and
//! within `ClientConfig::close_timeout` when the server stopped reading; so is `connect`, by
//! the handshake timeout, when nothing answers. The server here is a stand-in that stops
//! answering on purpose, so these tests do not run per server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Event, Session};
use tidings_core::wire::Utf8;
use tidings_e2e::within;
use tidings_smol::{Client, ClientConfig, ClientEvent};

/// A server on 127.0.0.1:0 that completes the tidings handshake of each connection with the
/// core session, announcing a heartbeat `timeout` (the interval is a tenth of it; it sends
/// no heartbeats itself), then hands the socket to `then` on a thread of its own.
fn fake_server(timeout: Duration, then: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                if let Some(stream) = handshake(stream, timeout) {
                    then(stream);
                }
            });
        }
    });
    addr
}

fn handshake(mut stream: TcpStream, timeout: Duration) -> Option<TcpStream> {
    let config = Config {
        heartbeat_interval: timeout / 10,
        heartbeat_timeout: timeout,
        ..Config::default()
    };
    let mut session = Session::server(config, Instant::now());
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
        session.handle_input(Instant::now(), &buf[..n]);
        let mut welcomed = false;
        while let Some(ev) = session.poll_event() {
            if let Event::Hello(hello) = ev {
                session
                    .accept_hello(hello.name.clone(), Utf8::from("server"), vec![hello.name])
                    .ok()?;
                welcomed = true;
            }
        }
        while let Some(bytes) = session.poll_transmit() {
            stream.write_all(&bytes).ok()?;
        }
        if welcomed {
            return Some(stream);
        }
    }
}

/// A heartbeat timeout long enough never to matter.
const LONG: Duration = Duration::from_secs(600);

#[test]
fn close_returns_at_once_when_the_server_closed_the_connection() {
    // The server leaves right after welcome. The client closes, half of the runs once it saw
    // Closed, half at once: its goodbye races the driver's end, which once left the
    // goodbye's reply pending forever.
    let addr = fake_server(LONG, drop);
    smol::block_on(async {
        for i in 0..400 {
            let client = Client::connect(addr, "alice", ClientConfig::default())
                .await
                .unwrap();
            if i % 2 == 0 {
                loop {
                    let ev = within(Duration::from_secs(5), "Closed", client.next_event()).await;
                    if matches!(ev, Some(ClientEvent::Closed { .. }) | None) {
                        break;
                    }
                }
                assert!(!client.is_open());
            }
            let start = Instant::now();
            within(Duration::from_secs(2), "close", client.close()).await;
            assert!(start.elapsed() < Duration::from_secs(1), "run {i}");
        }
    });
}

#[test]
fn close_is_bounded_by_close_timeout_when_the_server_stops_reading() {
    // The server keeps the connection open and reads nothing more.
    let addr = fake_server(LONG, |stream| {
        std::thread::sleep(Duration::from_secs(60));
        drop(stream);
    });
    smol::block_on(async {
        let config = ClientConfig {
            close_timeout: Duration::from_millis(300),
            ..ClientConfig::default()
        };
        let client = Client::connect(addr, "alice", config).await.unwrap();
        // Far more than the socket buffers hold: the goodbye stays queued behind it.
        let text = "x".repeat(16 << 10);
        for _ in 0..2048 {
            client.say(&text).await.unwrap();
        }
        let start = Instant::now();
        within(Duration::from_secs(5), "close", client.close()).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    });
}

#[test]
fn the_blocking_client_close_is_bounded_when_the_server_stops_reading() {
    // The blocking client's writes block its driver, timers included: a write that makes
    // no progress for the heartbeat timeout (1 s here) ends the connection.
    let addr = fake_server(Duration::from_secs(1), |stream| {
        std::thread::sleep(Duration::from_secs(60));
        drop(stream);
    });
    let config = tidings_std::ClientConfig {
        close_timeout: Duration::from_millis(300),
        ..tidings_std::ClientConfig::default()
    };
    let client = tidings_std::Client::connect(addr, "alice", config).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        // More than the socket buffers hold: the writes block, then the goodbye's.
        let text = "x".repeat(16 << 10);
        for _ in 0..2048 {
            if client.say(&text).is_err() {
                break;
            }
        }
        client.close();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("close returns once a write made no progress for the heartbeat timeout");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A listener whose backlog is full: the kernel drops further SYNs, so a connect hangs (as
/// behind a firewall that drops packets) instead of being refused. Keep the returned
/// connections and listener alive for as long as the test needs the hang.
fn full_backlog() -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        held.push(s);
        assert!(held.len() < 5000, "the backlog never filled");
    }
    (listener, held)
}

#[test]
fn both_clients_give_up_connecting_within_the_handshake_timeout() {
    let (listener, _held) = full_backlog();
    let addr = listener.local_addr().unwrap();
    let mut config = ClientConfig::default();
    config.session.handshake_timeout = Duration::from_millis(300);
    let gives_up = |which: &str, connect: &dyn Fn() -> Option<String>| {
        let start = Instant::now();
        let err = connect().unwrap_or_else(|| panic!("{which}: nothing accepts"));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{which}: {:?}",
            start.elapsed()
        );
        assert!(err.contains("no answer within 0.3 s"), "{which}: {err}");
    };
    gives_up("std", &|| {
        tidings_std::Client::connect(addr, "n", config.clone())
            .err()
            .map(|e| e.to_string())
    });
    gives_up("smol", &|| {
        smol::block_on(Client::connect(addr, "n", config.clone()))
            .err()
            .map(|e| e.to_string())
    });
}
