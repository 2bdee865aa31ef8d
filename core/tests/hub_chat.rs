//! The hub's chat side, simulated: names, presence, routing, heartbeats, slow consumers,
//! kick and shutdown.

mod sim;

use std::time::Duration;

use sim::{u, HubNet};
use tidings_core::hub::{HubConfig, HubEvent};
use tidings_core::session::{Closed, Config, Event};
use tidings_core::wire::{Message, Welcome, DEFAULT_MAX_FRAME};
use tidings_core::ErrorCode;

fn ten_clients(seed: u64) -> HubNet {
    let mut net = HubNet::with_defaults(seed);
    for i in 0..10 {
        net.join(&format!("user{i}"));
    }
    net
}

#[test]
fn ten_clients_each_broadcast_arrives_once_everywhere_else_with_the_true_sender() {
    let mut net = ten_clients(1);
    for i in 0..10 {
        for round in 0..3 {
            let text = format!("hello {round} from {i}");
            net.clients[i].session.send_text("", &text).unwrap();
        }
    }
    net.settle();
    for (i, c) in net.clients.iter().enumerate() {
        let texts = c.texts();
        assert_eq!(texts.len(), 27, "{} got {texts:?}", c.name);
        for j in (0..10).filter(|&j| j != i) {
            for round in 0..3 {
                let want = (format!("user{j}"), false, format!("hello {round} from {j}"));
                let n = texts.iter().filter(|t| **t == want).count();
                assert_eq!(n, 1, "{} saw {want:?} {n} times", c.name);
            }
        }
        assert!(
            texts.iter().all(|(from, _, _)| *from != c.name),
            "no echo to the sender"
        );
    }
    // The server's participant sees every broadcast once.
    let seen = net
        .op
        .events
        .iter()
        .filter(|e| matches!(e, HubEvent::Text { private: false, .. }))
        .count();
    assert_eq!(seen, 30);
}

#[test]
fn private_text_reaches_only_its_target_marked_private() {
    let mut net = ten_clients(2);
    net.clients[3].session.send_text("user7", "psst").unwrap();
    net.clients[3]
        .session
        .send_text("USER8", "case does not matter")
        .unwrap();
    net.settle();
    for (i, c) in net.clients.iter().enumerate() {
        let texts = c.texts();
        match i {
            7 => assert_eq!(texts, vec![("user3".into(), true, "psst".into())]),
            8 => assert_eq!(
                texts,
                vec![("user3".into(), true, "case does not matter".into())]
            ),
            _ => assert!(texts.is_empty(), "{} got {texts:?}", c.name),
        }
    }
    assert!(!net.op.saw(|e| matches!(e, HubEvent::Text { .. })));
}

#[test]
fn a_client_cannot_speak_for_someone_else() {
    let mut net = HubNet::with_defaults(3);
    let mallory = net.join("mallory");
    let bob = net.join("bob");
    // Mallory sets the flags a server would set, and addresses bob: the hub stamps her name.
    let forged = Message::Text {
        peer: u("bob"),
        private: false,
        text: u("this is alice speaking"),
    };
    net.clients[mallory].session.send(&forged).unwrap();
    let forged_blob = Message::Blob {
        peer: u(""),
        private: true,
        media_type: u("text/plain"),
        data: bytes::Bytes::from_static(b"from alice"),
    };
    net.clients[mallory].session.send(&forged_blob).unwrap();
    net.settle();
    assert_eq!(
        net.clients[bob].texts(),
        vec![("mallory".into(), true, "this is alice speaking".into())]
    );
    let blob = net.clients[bob].events.iter().find_map(|e| match e {
        Event::Blob { peer, private, .. } => Some((peer.to_string(), *private)),
        _ => None,
    });
    assert_eq!(blob, Some(("mallory".into(), false)));
}

#[test]
fn presence_and_peer_list_follow_joins_and_leaves() {
    let mut net = HubNet::with_defaults(4);
    let alice = net.join("alice");
    let Some(Event::Connected(w)) = net.clients[alice].events.first().cloned() else {
        panic!("alice not connected")
    };
    assert_eq!(w.online, vec![u("alice")]);
    assert_eq!(w.server, "server");
    net.join("bob");
    let carol = net.join("Carol");
    let Some(Event::Connected(w)) = net.clients[carol].events.first().cloned() else {
        panic!()
    };
    assert_eq!(w.online, vec![u("alice"), u("bob"), u("Carol")]);
    assert_eq!(
        net.clients[alice].presence(),
        vec![(true, "bob".into()), (true, "Carol".into())]
    );

    net.client("bob").session.goodbye(ErrorCode::Normal, "bye");
    net.settle();
    assert_eq!(
        net.clients[alice].presence().last(),
        Some(&(false, "bob".into()))
    );
    assert!(!net.clients[carol]
        .presence()
        .iter()
        .any(|p| p == &(true, "bob".to_owned())));
    assert_eq!(net.clients[carol].presence(), vec![(false, "bob".into())]);

    net.clients[alice].session.request_peer_list().unwrap();
    net.settle();
    assert_eq!(
        net.clients[alice].last_peer_list(),
        Some(vec!["alice".into(), "Carol".into()])
    );
    assert_eq!(net.hub.who(), vec![u("alice"), u("Carol")]);
    assert_eq!(net.hub.peer_count(), 2);
    assert_eq!(net.online_seen_by(alice), net.online_seen_by(carol));
    // bob's connection finished and was removed.
    assert_eq!(net.hub.connection_count(), 2);
    let left = net.op.events.iter().find_map(|e| match e {
        HubEvent::Left {
            name,
            reason,
            online,
            ..
        } => Some((name.to_string(), reason.clone(), *online)),
        _ => None,
    });
    let (name, reason, online) = left.expect("the operator saw bob leave");
    assert_eq!((name.as_str(), online), ("bob", 2));
    assert!(reason.contains("bye"), "{reason}");
}

#[test]
fn unknown_addressee_gets_an_error_and_the_connection_stays() {
    let mut net = HubNet::with_defaults(5);
    let alice = net.join("alice");
    net.clients[alice]
        .session
        .send_text("nobody", "hello?")
        .unwrap();
    net.settle();
    let err = net.clients[alice].events.iter().find_map(|e| match e {
        Event::PeerError { code, .. } => Some(*code),
        _ => None,
    });
    assert_eq!(err, Some(ErrorCode::UnknownPeer));
    assert!(net.clients[alice].session.is_open());
    let bob = net.join("bob");
    net.clients[alice]
        .session
        .send_text("bob", "there you are")
        .unwrap();
    net.settle();
    assert_eq!(net.clients[bob].texts().len(), 1);
}

fn refused_code(net: &HubNet, i: usize) -> Option<ErrorCode> {
    match net.clients[i].closed() {
        Some(Closed::Peer { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn taken_names_are_refused_case_insensitively_and_the_server_name_is_taken() {
    let mut net = HubNet::with_defaults(6);
    net.join("alice");
    let dup = net.join("ALICE");
    let srv = net.join("Server");
    assert_eq!(refused_code(&net, dup), Some(ErrorCode::NameTaken));
    assert_eq!(refused_code(&net, srv), Some(ErrorCode::NameTaken));
    assert_eq!(net.hub.peer_count(), 1);
    // Refused connections are finished and removed.
    assert_eq!(net.hub.connection_count(), 1);
    let refused: Vec<_> = net
        .op
        .events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Refused { name, code, .. } => Some((name.to_string(), *code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("ALICE".into(), ErrorCode::NameTaken),
            ("Server".into(), ErrorCode::NameTaken)
        ]
    );
    // The name is free again once its owner left.
    net.client("alice").session.goodbye(ErrorCode::Normal, "");
    net.settle();
    let again = net.join("Alice");
    assert!(net.clients[again].session.is_open());
}

#[test]
fn invalid_names_are_refused() {
    let mut net = HubNet::with_defaults(7);
    for bad in ["", "a b", ".hidden", "waytoolong_waytoolong_waytoolong_x"] {
        let conn = net.raw_hello(bad, 0, DEFAULT_MAX_FRAME);
        let out = net.raw_out[&conn].clone();
        // Preamble, then a `refused` frame carrying name-invalid.
        let frame = &out[8..];
        assert_eq!(frame[4], 0x03, "refused frame for {bad:?}");
        let code = u16::from_be_bytes([frame[5], frame[6]]);
        assert_eq!(ErrorCode::from_u16(code), ErrorCode::NameInvalid, "{bad:?}");
        assert!(net.hub.is_finished(conn));
    }
    assert_eq!(net.hub.connection_count(), 0);
    assert_eq!(net.hub.peer_count(), 0);
}

#[test]
fn a_full_server_refuses_with_server_full() {
    let mut net = HubNet::new(
        HubConfig {
            max_peers: 2,
            ..HubConfig::default()
        },
        8,
    );
    net.join("a");
    net.join("b");
    let c = net.join("c");
    assert_eq!(refused_code(&net, c), Some(ErrorCode::ServerFull));
    net.client("a").session.goodbye(ErrorCode::Normal, "");
    net.settle();
    let d = net.join("d");
    assert!(net.clients[d].session.is_open());
}

#[test]
fn a_silent_peer_is_declared_dead_after_the_heartbeat_timeout() {
    let mut net = HubNet::with_defaults(9);
    let alice = net.join("alice");
    let bob = net.join("bob");
    let carol = net.join("carol");
    // A quiet but alive room: a minute of heartbeats keeps everyone.
    net.advance(Duration::from_secs(60));
    assert_eq!(net.hub.peer_count(), 3);
    net.clients[bob].frozen = true;
    net.advance(Duration::from_secs(29));
    assert_eq!(net.hub.peer_count(), 3, "not dead before the timeout");
    net.advance(Duration::from_secs(2));
    assert_eq!(net.hub.peer_count(), 2, "dead after 30 s of silence");
    for i in [alice, carol] {
        assert_eq!(
            net.clients[i].presence().last(),
            Some(&(false, "bob".into()))
        );
        assert_eq!(
            net.online_seen_by(i),
            ["alice", "carol"].map(String::from).into()
        );
    }
    let reason = net.op.events.iter().find_map(|e| match e {
        HubEvent::Left { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.unwrap().contains("heartbeat-timeout"));
    // The others stay connected through more quiet time.
    net.advance(Duration::from_secs(120));
    assert_eq!(net.hub.peer_count(), 2);
    assert_eq!(net.hub.connection_count(), 2);
}

#[test]
fn a_client_that_never_completes_the_handshake_is_dropped() {
    let mut net = HubNet::with_defaults(10);
    let conn = net.raw_connect();
    net.raw_send(conn, true, &[]);
    net.advance(Duration::from_secs(11));
    assert!(net.hub.is_finished(conn));
    assert_eq!(net.hub.connection_count(), 0);
}

#[test]
fn a_slow_consumer_is_disconnected_and_the_rest_keep_chatting() {
    let mut net = HubNet::with_defaults(11);
    let talker = net.join("talker");
    let slow = net.join("slow");
    let fast = net.join("fast");
    let slow_conn = net.clients[slow].conn;
    net.blocked.insert(slow_conn);
    let line = "x".repeat(16 << 10);
    let mut sent = 0;
    for _ in 0..400 {
        net.clients[talker].session.send_text("", &line).unwrap();
        sent += 1;
        net.settle();
        // Never more than the session's output bound (plus one frame) for the stuck client.
        assert!(net.hub.queued_output(slow_conn) <= (4 << 20) + (17 << 10));
    }
    assert!(
        net.hub.is_finished(slow_conn),
        "the stuck client was cut off"
    );
    assert_eq!(net.hub.peer_count(), 2);
    assert_eq!(net.clients[fast].texts().len(), sent);
    assert_eq!(
        net.clients[fast].presence().last(),
        Some(&(false, "slow".into()))
    );
    let reason = net.op.events.iter().find_map(|e| match e {
        HubEvent::Left { name, reason, .. } if name == "slow" => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.unwrap().contains("slow-consumer"));
}

#[test]
fn the_chat_budget_cuts_off_the_readers_furthest_behind_and_no_one_else() {
    // Each stuck reader may hold 512 KiB, all together 1 MiB.
    let mut config = HubConfig {
        chat_budget: 1 << 20,
        ..HubConfig::default()
    };
    config.session.max_queued_output = 512 << 10;
    let mut net = HubNet::new(config, 13);
    let talker = net.join("talker");
    let fast = net.join("fast");
    let stuck: Vec<usize> = (0..5).map(|i| net.join(&format!("stuck{i}"))).collect();
    let line = "x".repeat(8 << 10);
    let mut sent = 0;
    for round in 0..40 {
        // The readers stop one after another, so the first stopped is the furthest behind.
        if let Some(&s) = stuck.get(round / 2) {
            let conn = net.clients[s].conn;
            net.blocked.insert(conn);
        }
        net.clients[talker].session.send_text("", &line).unwrap();
        sent += 1;
        net.settle();
        assert!(
            net.hub.chat_queued() <= 1 << 20,
            "{} queued",
            net.hub.chat_queued()
        );
    }
    let gone: Vec<bool> = stuck
        .iter()
        .map(|&s| net.hub.is_finished(net.clients[s].conn))
        .collect();
    // 40 lines of 8 KiB: the stuck readers would hold 32–40 lines each, all within their
    // own bound, but 1.4 MiB together; the budget cut off the earliest stopped first, as
    // often as needed to fit (twice), and no more.
    assert_eq!(gone, [true, true, false, false, false]);
    assert_eq!(
        net.clients[fast].texts().len(),
        sent,
        "the fast reader lost nothing"
    );
    assert!(!net.hub.is_finished(net.clients[talker].conn));
    let reasons: Vec<String> = net
        .op
        .events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Left { name, reason, .. } if name.starts_with("stuck") => {
                Some(reason.clone())
            }
            _ => None,
        })
        .collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons.iter().all(|r| r.contains("slow-consumer")),
        "{reasons:?}"
    );
}

#[test]
fn the_server_says_to_everyone_and_to_one() {
    let mut net = ten_clients(12);
    net.hub.say(None, "welcome all").unwrap();
    net.hub.say(Some("User4"), "just you").unwrap();
    assert!(net.hub.say(Some("ghost"), "hm").is_err());
    net.settle();
    for (i, c) in net.clients.iter().enumerate() {
        let mut want = vec![("server".to_owned(), false, "welcome all".to_owned())];
        if i == 4 {
            want.push(("server".into(), true, "just you".into()));
        }
        assert_eq!(c.texts(), want);
    }
    assert_eq!(net.hub.name(), "server");
}

#[test]
fn the_server_sees_text_addressed_to_it() {
    let mut net = HubNet::with_defaults(13);
    let a = net.join("alice");
    net.clients[a]
        .session
        .send_text("server", "hi server")
        .unwrap();
    net.settle();
    assert!(net.op.events.contains(&HubEvent::Text {
        from: u("alice"),
        private: true,
        text: u("hi server"),
    }));
}

#[test]
fn kick_removes_the_peer_and_tells_it_why() {
    let mut net = HubNet::with_defaults(14);
    let a = net.join("alice");
    let b = net.join("bob");
    net.hub.kick("BOB", "behave").unwrap();
    assert!(net.hub.kick("nobody", "x").is_err());
    net.settle();
    match net.clients[b].closed() {
        Some(Closed::Peer { code, reason }) => {
            assert_eq!((*code, reason.as_str()), (ErrorCode::Kicked, "behave"))
        }
        other => panic!("bob was not kicked: {other:?}"),
    }
    assert_eq!(
        net.clients[a].presence().last(),
        Some(&(false, "bob".into()))
    );
    assert_eq!(net.hub.who(), vec![u("alice")]);
}

#[test]
fn a_ban_kicks_and_refuses_the_name_and_its_look_alikes_until_it_ends() {
    let mut net = HubNet::with_defaults(18);
    let a = net.join("alice");
    let b = net.join("bob");
    let t0 = net.now;
    net.hub.ban(t0, "BOB", Duration::from_secs(60), "flooding");
    net.settle();
    match net.clients[b].closed() {
        Some(Closed::Peer { code, reason }) => {
            assert_eq!((*code, reason.as_str()), (ErrorCode::Kicked, "flooding"))
        }
        other => panic!("bob was not kicked: {other:?}"),
    }
    // The name, in another case, full-width or with a Cyrillic look-alike: refused.
    for name in ["bob", "BOB", "\u{ff42}ob", "b\u{043e}b"] {
        let i = net.join(name);
        match net.clients[i].closed() {
            Some(Closed::Peer { code, reason }) => {
                assert_eq!(*code, ErrorCode::Kicked, "{name}");
                assert!(reason.contains("banned for another 60 s"), "{reason}");
            }
            other => panic!("{name} was not refused: {other:?}"),
        }
    }
    // A name not online can be banned ahead; others are not concerned.
    net.hub.ban(net.now, "carol", Duration::from_secs(1), "");
    assert!(net.hub.banned_until(net.now, "CAROL").is_some());
    assert_eq!(net.clients[a].closed(), None);
    net.advance(Duration::from_secs(59));
    let still = net.join("bob");
    assert_eq!(refused_code(&net, still), Some(ErrorCode::Kicked));
    // Once the ban ends the name is free again.
    net.advance(Duration::from_secs(1));
    assert_eq!(net.hub.banned_until(net.now, "bob"), None);
    let back = net.join("bob");
    assert_eq!(net.clients[back].closed(), None);
    assert_eq!(net.hub.who(), vec![u("alice"), u("bob")]);
    // An operator can lift a ban early.
    net.hub.ban(net.now, "dave", Duration::from_secs(600), "");
    assert!(net.hub.unban(net.now, "Dave"));
    assert!(!net.hub.unban(net.now, "dave"));
    let dave = net.join("dave");
    assert_eq!(net.clients[dave].closed(), None);
}

#[test]
fn shutdown_says_goodbye_to_everyone_and_refuses_newcomers() {
    let mut net = ten_clients(15);
    net.hub.shutdown("maintenance");
    net.settle();
    for c in &net.clients {
        match c.closed() {
            Some(Closed::Peer { code, reason }) => {
                assert_eq!(
                    (*code, reason.as_str()),
                    (ErrorCode::Shutdown, "maintenance")
                )
            }
            other => panic!("{} got {other:?}", c.name),
        }
    }
    assert_eq!(net.hub.peer_count(), 0);
    assert_eq!(net.hub.connection_count(), 0);
    let late = net.join("late");
    assert_eq!(refused_code(&net, late), Some(ErrorCode::Shutdown));
}

#[test]
fn the_hub_timer_is_the_earliest_session_deadline() {
    let mut net = HubNet::with_defaults(16);
    net.join("a");
    let t0 = net.now;
    // Nothing to do until the first heartbeat (10 s of silence by default).
    assert_eq!(net.hub.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    net.advance(Duration::from_secs(3));
    net.join_with("b", Config::default());
    assert_eq!(net.hub.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // A welcome tells the client the server's heartbeat values.
    let Some(Event::Connected(Welcome {
        heartbeat_ms,
        timeout_ms,
        ..
    })) = net.client("b").events.first().cloned()
    else {
        panic!()
    };
    assert_eq!((heartbeat_ms, timeout_ms), (10_000, 30_000));
}

#[test]
fn a_closed_connection_whose_output_never_drains_is_finished_after_the_timeout() {
    let mut net = HubNet::with_defaults(17);
    net.join("alice");
    let b = net.join("bob");
    let conn = net.clients[b].conn;
    net.blocked.insert(conn);
    net.hub.kick("bob", "bye").unwrap();
    net.settle();
    assert!(
        !net.hub.is_finished(conn),
        "the goodbye waits for the writer"
    );
    assert_eq!(net.hub.peer_count(), 1, "but the name is free at once");
    net.advance(Duration::from_secs(29));
    assert!(!net.hub.is_finished(conn));
    net.advance(Duration::from_secs(2));
    assert!(
        net.hub.is_finished(conn),
        "given up after the heartbeat timeout"
    );
    assert_eq!(net.hub.poll_transmit(conn), None);
}

#[test]
fn an_oversized_say_is_refused_before_anything_is_sent() {
    let mut net = HubNet::with_defaults(18);
    net.join("alice");
    let huge = "y".repeat(DEFAULT_MAX_FRAME as usize);
    assert!(net.hub.say(None, &huge).is_err());
    net.settle();
    assert!(net.client("alice").texts().is_empty());
    assert!(net.client("alice").session.is_open());
}

/// Random joins, leaves, vanishings, broadcasts, private messages and list requests, checked
/// against a small reference model of who is online and who must have received what.
#[test]
fn random_rooms_match_a_reference_model() {
    use std::collections::BTreeMap;
    use tidings_core::name::name_key;
    const POOL: [&str; 8] = [
        "ann", "Ann", "bob", "carol", "dave", "erin", "Frank", "server",
    ];
    let mut checked = 0;
    for seed in 1..=25u64 {
        let mut net = HubNet::with_defaults(seed * 7919);
        // key → client index of the live holder of that name.
        let mut online: BTreeMap<String, usize> = BTreeMap::new();
        // client index → texts it must have received, in order.
        let mut expected: Vec<Vec<(String, bool, String)>> = Vec::new();
        for step in 0..150 {
            match net.rng.below(10) {
                0..=2 => {
                    let name = POOL[net.rng.below(POOL.len() as u64) as usize];
                    let i = net.join(name);
                    expected.push(Vec::new());
                    let key = name_key(name);
                    if key == "server" || online.contains_key(&key) {
                        let code = match net.clients[i].closed() {
                            Some(Closed::Peer { code, .. }) => Some(*code),
                            _ => None,
                        };
                        assert_eq!(code, Some(ErrorCode::NameTaken), "seed {seed} step {step}");
                    } else {
                        assert!(net.clients[i].session.is_open(), "seed {seed} step {step}");
                        online.insert(key, i);
                    }
                }
                3 if !online.is_empty() => {
                    let k = net.rng.below(online.len() as u64) as usize;
                    let key = online.keys().nth(k).unwrap().clone();
                    let i = online.remove(&key).unwrap();
                    if net.rng.below(2) == 0 {
                        net.clients[i].session.goodbye(ErrorCode::Normal, "bye");
                    } else {
                        // The machine vanishes: the hub only sees the stream end.
                        net.clients[i].frozen = true;
                        let conn = net.clients[i].conn;
                        net.hub.handle_eof(net.now, conn);
                    }
                    net.settle();
                }
                4..=6 if !online.is_empty() => {
                    let k = net.rng.below(online.len() as u64) as usize;
                    let (_, &from) = online.iter().nth(k).unwrap();
                    let text = format!("s{seed} t{step}");
                    net.clients[from].session.send_text("", &text).unwrap();
                    net.settle();
                    let sender = net.clients[from].name.clone();
                    for (_, &i) in online.iter().filter(|(_, &i)| i != from) {
                        expected[i].push((sender.clone(), false, text.clone()));
                    }
                }
                7 | 8 if !online.is_empty() => {
                    let k = net.rng.below(online.len() as u64) as usize;
                    let (_, &from) = online.iter().nth(k).unwrap();
                    let to = POOL[net.rng.below(POOL.len() as u64) as usize];
                    let text = format!("p{seed} t{step}");
                    net.clients[from].session.send_text(to, &text).unwrap();
                    net.settle();
                    let sender = net.clients[from].name.clone();
                    if let Some(&i) = online.get(&name_key(to)) {
                        expected[i].push((sender, true, text));
                    }
                }
                _ => {
                    let secs = net.rng.below(20);
                    net.advance(Duration::from_secs(secs));
                }
            }
        }
        let want: Vec<_> = online
            .values()
            .map(|&i| net.clients[i].name.clone())
            .collect();
        let who: Vec<_> = net.hub.who().iter().map(|n| n.to_string()).collect();
        assert_eq!(who, want, "seed {seed}");
        for &i in online.values() {
            assert_eq!(
                net.clients[i].texts(),
                expected[i],
                "seed {seed} client {i}"
            );
            checked += expected[i].len();
            let seen: Vec<_> = net.online_seen_by(i).into_iter().collect();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(seen, want_sorted, "seed {seed} client {i}");
        }
    }
    assert!(checked > 500, "the model checked only {checked} deliveries");
}

#[test]
fn blobs_are_routed_like_text() {
    let mut net = HubNet::with_defaults(19);
    let a = net.join("alice");
    let b = net.join("bob");
    let c = net.join("carol");
    let png = bytes::Bytes::from(vec![0x89u8; 5000]);
    net.clients[a]
        .session
        .send_blob("bob", "image/png", png.clone())
        .unwrap();
    net.clients[a]
        .session
        .send_blob("", "text/plain", bytes::Bytes::from_static(b"all"))
        .unwrap();
    net.settle();
    let blobs = |i: usize, net: &HubNet| -> Vec<(String, bool, String, usize)> {
        net.clients[i]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Blob {
                    peer,
                    private,
                    media_type,
                    data,
                } => Some((
                    peer.to_string(),
                    *private,
                    media_type.to_string(),
                    data.len(),
                )),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        blobs(b, &net),
        vec![
            ("alice".into(), true, "image/png".into(), 5000),
            ("alice".into(), false, "text/plain".into(), 3)
        ]
    );
    assert_eq!(
        blobs(c, &net),
        vec![("alice".into(), false, "text/plain".into(), 3)]
    );
    assert!(blobs(a, &net).is_empty());
    assert!(net.op.saw(|e| matches!(e,
        HubEvent::Blob { from, private: false, data, .. } if from == "alice" && &data[..] == b"all")));
}

#[test]
fn a_timer_that_came_due_during_input_is_reported_due_not_postponed() {
    let mut net = HubNet::with_defaults(20);
    let a = net.join("alice");
    let due = net.hub.poll_timeout().unwrap();
    // The runtime handles a read that arrives after the deadline before its timer fires.
    net.now = due + Duration::from_millis(500);
    net.clients[a].session.send_text("", "late").unwrap();
    net.settle();
    assert!(
        net.hub.poll_timeout().unwrap() <= net.now,
        "the ping is due now"
    );
    let conn = net.clients[a].conn;
    net.hub.handle_timeout(net.now);
    assert!(net.hub.queued_output(conn) > 0, "the ping went out");
    net.settle();
    assert!(net.hub.poll_timeout().unwrap() > net.now);
}

#[test]
fn short_heartbeats_find_a_dead_peer_on_time_even_with_output_queued() {
    let session = Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(600),
        ..Config::default()
    };
    let mut net = HubNet::new(
        HubConfig {
            session,
            ..HubConfig::default()
        },
        21,
    );
    let a = net.join("alice");
    let b = net.join("bob");
    let c = net.join("carol");
    net.advance(Duration::from_secs(5));
    assert_eq!(net.hub.peer_count(), 3, "short heartbeats keep everyone");
    // Bob hangs with output waiting for him; carol hangs with nothing queued.
    let bob_conn = net.clients[b].conn;
    net.blocked.insert(bob_conn);
    net.clients[b].frozen = true;
    net.clients[c].frozen = true;
    net.clients[a].session.send_text("", "anyone?").unwrap();
    net.settle();
    assert!(net.hub.queued_output(bob_conn) > 0);
    net.advance(Duration::from_millis(500));
    assert_eq!(net.hub.peer_count(), 3, "not yet");
    net.advance(Duration::from_millis(400));
    assert_eq!(
        net.hub.who(),
        vec![u("alice")],
        "both found within the timeout + one beat"
    );
}
