//! Chat end to end over real sockets: broadcast, private, presence, the peer list.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use tidings_core::session::{Config, Session};
use tidings_smol::{Client, ClientConfig, ClientEvent, Error, ErrorCode, ServerConfig};

#[test]
fn two_clients_chat() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        assert_eq!(bob.online_at_join(), ["alice", "bob"]);
        wait_for(&alice, |e| *e == ClientEvent::Joined("bob".into())).await;
        alice.say("hello bob").await.unwrap();
        let ev = wait_for(&bob, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            ev,
            ClientEvent::Text {
                from: "alice".into(),
                private: false,
                text: "hello bob".into()
            }
        );
        bob.close().await;
        wait_for(&alice, |e| *e == ClientEvent::Left("bob".into())).await;
    });
    server.stop();
}

#[test]
fn ten_clients_each_hear_everyone_else() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let mut clients = Vec::new();
        for i in 0..10 {
            clients.push(connect(server.addr, &format!("user{i}")).await);
        }
        for (i, c) in clients.iter().enumerate() {
            c.say(&format!("hi from {i}")).await.unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            let mut heard = Vec::new();
            while heard.len() < 9 {
                if let ClientEvent::Text {
                    from,
                    text,
                    private,
                } = wait_for(c, |e| matches!(e, ClientEvent::Text { .. })).await
                {
                    assert!(!private);
                    assert_eq!(text, format!("hi from {}", &from[4..]));
                    heard.push(from);
                }
            }
            heard.sort();
            let mut expected: Vec<String> = (0..10)
                .filter(|&j| j != i)
                .map(|j| format!("user{j}"))
                .collect();
            expected.sort();
            assert_eq!(heard, expected, "client {i}");
        }
    });
}

#[test]
fn private_messages_reach_only_their_target() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect(server.addr, "b").await;
        let c = connect(server.addr, "c").await;
        a.say_to("b", "for b only").await.unwrap();
        a.say("marker").await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            ev,
            ClientEvent::Text {
                from: "a".into(),
                private: true,
                text: "for b only".into()
            }
        );
        // c's first text is the broadcast sent after the private one: it never saw it.
        let ev = wait_for(&c, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(ev, ClientEvent::Text { text, .. } if text == "marker"));
    });
}

#[test]
fn presence_and_the_peer_list_follow_joins_and_leaves() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect(server.addr, "b").await;
        let c = connect(server.addr, "c").await;
        assert_eq!(c.online_at_join(), ["a", "b", "c"]);
        a.request_list().await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::PeerList(_))).await;
        assert_eq!(
            ev,
            ClientEvent::PeerList(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(server.handle.who().await.unwrap(), ["a", "b", "c"]);
        b.close().await;
        wait_for(&a, |e| *e == ClientEvent::Left("b".into())).await;
        wait_for(&c, |e| *e == ClientEvent::Left("b".into())).await;
        a.request_list().await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::PeerList(_))).await;
        assert_eq!(ev, ClientEvent::PeerList(vec!["a".into(), "c".into()]));
        assert_eq!(server.handle.peer_count().await.unwrap(), 2);
    });
}

#[test]
fn a_taken_name_is_refused_clearly() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let _a = connect(server.addr, "alice").await;
        let err = Client::connect(server.addr, "ALICE", ClientConfig::default())
            .await
            .unwrap_err();
        match err {
            Error::Refused { code, .. } => assert_eq!(code, ErrorCode::NameTaken),
            other => panic!("unexpected {other}"),
        }
        let err = Client::connect(server.addr, "server", ClientConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Refused {
                    code: ErrorCode::NameTaken,
                    ..
                }
            ),
            "{err}"
        );
        let err = Client::connect(server.addr, "bad name\n", ClientConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Name(_)), "{err}");
    });
}

#[test]
fn an_unknown_peer_gets_a_clear_error_and_the_connection_stays() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        a.say_to("ghost", "anyone?").await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::Notice { .. })).await;
        assert!(
            matches!(
                ev,
                ClientEvent::Notice {
                    code: ErrorCode::UnknownPeer,
                    ..
                }
            ),
            "{ev:?}"
        );
        let src = TempDir::new();
        let path = src.path().join("f.txt");
        std::fs::write(&path, b"x").unwrap();
        a.send_file("ghost", &path).await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::TransferFailed { .. })).await;
        assert!(
            matches!(
                ev,
                ClientEvent::TransferFailed {
                    code: ErrorCode::UnknownPeer,
                    ..
                }
            ),
            "{ev:?}"
        );
        a.request_list().await.unwrap();
        wait_for(&a, |e| matches!(e, ClientEvent::PeerList(_))).await;
    });
}

#[test]
fn a_client_that_stops_answering_is_declared_dead_and_its_name_freed() {
    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(50);
    config.hub.session.heartbeat_timeout = Duration::from_millis(300);
    let server = TestServer::start(config);
    // A client that says hello and then never reads or writes again.
    let mut ghost = Session::client(Config::default(), "ghost", Instant::now()).unwrap();
    let mut raw = std::net::TcpStream::connect(server.addr).unwrap();
    while let Some(b) = ghost.poll_transmit() {
        raw.write_all(&b).unwrap();
    }
    // Registered before `a` joins: read until its welcome, then never again.
    let mut buf = [0u8; 4096];
    while !ghost.is_open() {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the ghost before welcoming it");
        ghost.handle_input(Instant::now(), &buf[..n]);
    }
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        assert!(a.online_at_join().contains(&"ghost".to_string()));
        let started = Instant::now();
        wait_for(&a, |e| *e == ClientEvent::Left("ghost".into())).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        // The live client, answering heartbeats, is still there; the name is free again.
        let again = connect(server.addr, "ghost").await;
        assert_eq!(again.name(), "ghost");
        a.say("still here").await.unwrap();
        wait_for(&again, |e| matches!(e, ClientEvent::Text { .. })).await;
    });
    drop(raw);
}

#[test]
fn shutdown_says_goodbye_to_everyone() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect(server.addr, "b").await;
        let handle = server.handle.clone();
        handle.shutdown("maintenance").await;
        for c in [&a, &b] {
            let ev = wait_for(c, |e| matches!(e, ClientEvent::Closed { .. })).await;
            assert!(
                matches!(ev, ClientEvent::Closed { code: ErrorCode::Shutdown, ref reason, by_peer: true } if reason == "maintenance"),
                "{ev:?}"
            );
        }
    });
    server.stop();
}

/// Many clients on one server: 500 by default (presence makes joining quadratic: every join
/// is announced to everyone), `TIDINGS_CLIENTS=N` for more.
#[test]
fn many_clients_join_and_hear_a_broadcast() {
    // Every client comes from 127.0.0.1: lift the per-address cap (default 256).
    let server = TestServer::start(ServerConfig {
        max_per_address: 0,
        ..ServerConfig::default()
    });
    let n: usize = std::env::var("TIDINGS_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    smol::block_on(async {
        let started = Instant::now();
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            clients.push(connect(server.addr, &format!("c{i}")).await);
        }
        let joined = started.elapsed();
        assert_eq!(clients[n - 1].online_at_join().len(), n);
        assert_eq!(server.handle.peer_count().await.unwrap(), n);
        server.handle.say(None, "to all of you").await.unwrap();
        for c in &clients {
            let ev = wait_for(c, |e| matches!(e, ClientEvent::Text { .. })).await;
            assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "server"));
        }
        eprintln!(
            "{n} clients joined in {:.2} s; broadcast delivered to all after {:.2} s",
            joined.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    });
}

/// A measurement, not a check: one client broadcasts to many, how many deliveries per
/// second. `cargo test --release -p tidings-smol --test chat fan_out -- --ignored --nocapture`
#[test]
#[ignore]
fn fan_out_throughput() {
    let server = TestServer::start(ServerConfig::default());
    let (listeners, messages) = (100, 2_000);
    smol::block_on(async {
        let mut clients = Vec::new();
        for i in 0..listeners {
            clients.push(connect(server.addr, &format!("l{i}")).await);
        }
        let sender = connect(server.addr, "sender").await;
        let started = Instant::now();
        let receivers: Vec<_> = clients
            .iter()
            .map(|c| {
                let events = c.events();
                smol::spawn(async move {
                    let mut got = 0;
                    while got < messages {
                        if let Ok(ClientEvent::Text { .. }) = events.recv().await {
                            got += 1;
                        }
                    }
                })
            })
            .collect();
        for i in 0..messages {
            sender.say(&format!("message {i}")).await.unwrap();
        }
        for r in receivers {
            r.await;
        }
        let secs = started.elapsed().as_secs_f64();
        let deliveries = (listeners * messages) as f64;
        eprintln!(
            "{messages} messages to {listeners} listeners: {deliveries} deliveries in {secs:.2} s \
             ({:.0} deliveries/s)",
            deliveries / secs
        );
    });
}
