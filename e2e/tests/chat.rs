//! Chat end to end over real sockets, against both servers: broadcast, private, presence,
//! the peer list, refused names, dead peers, bans, shutdown.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tidings_e2e::smol_client::*;
use tidings_e2e::{
    assert_refused, for_both_servers, silent_peer, std_client, temp_dir, ClientConfig, ClientEvent,
    Error, ErrorCode, ServerConfig, ServerEvent, ServerKind, TestServer, WebConfig,
};
use tidings_smol::Client;

for_both_servers! {
    native: [
        two_clients_chat,
        ten_clients_each_hear_everyone_else,
        private_messages_reach_only_their_target,
        presence_and_the_peer_list_follow_joins_and_leaves,
        a_taken_name_is_refused_clearly,
        an_unknown_peer_gets_a_clear_error_and_the_connection_stays,
        a_client_that_stops_answering_is_declared_dead_and_its_name_freed,
        shutdown_says_goodbye_to_everyone,
        many_clients_join_and_hear_a_broadcast,
        #[ignore]
        fan_out_throughput,
        chat_private_and_presence_with_the_blocking_client,
        name_taken_dead_clients_and_port_in_use,
        a_banned_name_is_kicked_and_refused_until_the_ban_ends,
    ],
}

fn two_clients_chat(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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

fn ten_clients_each_hear_everyone_else(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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

fn private_messages_reach_only_their_target(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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

fn presence_and_the_peer_list_follow_joins_and_leaves(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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
        assert_eq!(server.who(), ["a", "b", "c"]);
        b.close().await;
        wait_for(&a, |e| *e == ClientEvent::Left("b".into())).await;
        wait_for(&c, |e| *e == ClientEvent::Left("b".into())).await;
        a.request_list().await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::PeerList(_))).await;
        assert_eq!(ev, ClientEvent::PeerList(vec!["a".into(), "c".into()]));
        assert_eq!(server.peer_count(), 2);
    });
}

fn a_taken_name_is_refused_clearly(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    smol::block_on(async {
        let _a = connect(server.addr, "alice").await;
        let err = Client::connect(server.addr, "ALICE", ClientConfig::default())
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::NameTaken);
        let err = Client::connect(server.addr, "server", ClientConfig::default())
            .await
            .unwrap_err();
        assert_refused(&err, ErrorCode::NameTaken);
        let err = Client::connect(server.addr, "bad name\n", ClientConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Name(_)), "{err}");
    });
}

fn an_unknown_peer_gets_a_clear_error_and_the_connection_stays(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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
        let src = temp_dir();
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

fn a_client_that_stops_answering_is_declared_dead_and_its_name_freed(kind: ServerKind) {
    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(50);
    config.hub.session.heartbeat_timeout = Duration::from_millis(300);
    let server = TestServer::start(kind, config);
    // A client that says hello and then never reads or writes again.
    let raw = silent_peer(server.addr, "ghost");
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

fn shutdown_says_goodbye_to_everyone(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect(server.addr, "b").await;
        server.shutdown("maintenance");
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

/// Many clients on one server: 500 by default, `TIDINGS_CLIENTS=N` for more. Joins are told
/// in batches (as `tidings serve` does), so each client must have heard of every later
/// arrival by the time the server's broadcast reaches it: its welcome list and the joins it
/// heard add up to everyone, once each.
fn many_clients_join_and_hear_a_broadcast(kind: ServerKind) {
    // Every client comes from 127.0.0.1: lift the per-address cap (default 256).
    let mut config = ServerConfig {
        max_per_address: 0,
        ..ServerConfig::default()
    };
    config.hub.presence_interval = Duration::from_millis(100);
    let server = TestServer::start(kind, config);
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
        assert_eq!(server.peer_count(), n);
        server.say(None, "to all of you").unwrap();
        for c in &clients {
            let mut known: BTreeSet<String> = c.online_at_join().iter().cloned().collect();
            let ev = wait_for(c, |e| {
                if let ClientEvent::Joined(name) = e {
                    assert!(known.insert(name.clone()), "{name} announced twice");
                }
                matches!(e, ClientEvent::Text { .. })
            })
            .await;
            assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "server"));
            assert_eq!(
                known.len(),
                n,
                "{}: who is online before the broadcast",
                c.name()
            );
        }
        eprintln!(
            "{n} clients joined in {:.2} s; broadcast delivered to all after {:.2} s",
            joined.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    });
}

/// A measurement, not a check: one client broadcasts to many, how many deliveries per
/// second. `cargo test --release -p tidings-e2e --test chat fan_out -- --ignored --nocapture`
fn fan_out_throughput(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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

fn chat_private_and_presence_with_the_blocking_client(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let a = std_client::connect(server.addr, "a");
    let b = std_client::connect(server.addr, "b");
    let c = std_client::connect(server.addr, "c");
    assert_eq!(c.online_at_join(), ["a", "b", "c"]);
    std_client::wait(&a, |e| *e == ClientEvent::Joined("c".into()));
    a.say_to("b", "secret").unwrap();
    a.say("public").unwrap();
    let ev = std_client::wait(&b, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(matches!(ev, ClientEvent::Text { private: true, ref text, .. } if text == "secret"));
    let ev = std_client::wait(&c, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(matches!(ev, ClientEvent::Text { private: false, ref text, .. } if text == "public"));
    b.close();
    std_client::wait(&a, |e| *e == ClientEvent::Left("b".into()));
    a.request_list().unwrap();
    let ev = std_client::wait(&a, |e| matches!(e, ClientEvent::PeerList(_)));
    assert_eq!(ev, ClientEvent::PeerList(vec!["a".into(), "c".into()]));
    let joined = std::iter::from_fn(|| server.next_event(Duration::from_millis(200)))
        .filter(|e| matches!(e, ServerEvent::Joined { .. }))
        .count();
    assert_eq!(joined, 3);
}

fn name_taken_dead_clients_and_port_in_use(kind: ServerKind) {
    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(50);
    config.hub.session.heartbeat_timeout = Duration::from_millis(300);
    let server = TestServer::start(kind, config);
    let taken = server.addr.to_string();
    let err = TestServer::try_start(kind, &taken, ServerConfig::default(), WebConfig::default())
        .err()
        .expect("a second server on a port in use");
    assert!(matches!(err, Error::Bind { .. }));
    assert!(err.to_string().contains(&taken), "{err}");

    // Registered before `a` joins; from then on it never answers, so the server must
    // declare it dead.
    let raw = silent_peer(server.addr, "ghost");
    let a = std_client::connect(server.addr, "a");
    assert!(a.online_at_join().contains(&"ghost".to_string()));
    let err =
        tidings_std::Client::connect(server.addr, "ghost", ClientConfig::default()).unwrap_err();
    assert_refused(&err, ErrorCode::NameTaken);
    std_client::wait(&a, |e| *e == ClientEvent::Left("ghost".into()));
    let again = std_client::connect(server.addr, "ghost");
    assert_eq!(again.name(), "ghost");
    drop(raw);
}

fn a_banned_name_is_kicked_and_refused_until_the_ban_ends(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let a = std_client::connect(server.addr, "a");
    let b = std_client::connect(server.addr, "b");
    let banned_at = Instant::now();
    server.ban("B", Duration::from_millis(600), "cool off");
    match std_client::wait(&b, |e| matches!(e, ClientEvent::Closed { .. })) {
        ClientEvent::Closed { code, reason, .. } => {
            assert_eq!((code, reason.as_str()), (ErrorCode::Kicked, "cool off"))
        }
        _ => unreachable!(),
    }
    std_client::wait(&a, |e| *e == ClientEvent::Left("b".into()));
    // The ban ends after 600 ms: until then every attempt is refused (a look-alike too),
    // after it the name is free.
    let mut refusals = 0;
    let back = loop {
        let name = if refusals % 2 == 0 { "b" } else { "\u{ff42}" };
        match tidings_std::Client::connect(server.addr, name, ClientConfig::default()) {
            Ok(c) => break c,
            Err(Error::Refused { code, reason }) => {
                assert_eq!(code, ErrorCode::Kicked, "{reason}");
                assert!(reason.contains("banned"), "{reason}");
                assert!(
                    banned_at.elapsed() < Duration::from_secs(30),
                    "never lifted"
                );
                refusals += 1;
                // Pacing only: the end of a ban has no event to wait for.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(banned_at.elapsed() >= Duration::from_millis(600));
    assert!(refusals >= 2, "{refusals}");
    assert!(server.who().len() == 2, "{:?}", back.online_at_join());
    server.ban("c", Duration::from_secs(60), "");
    assert!(server.unban("C"));
}
