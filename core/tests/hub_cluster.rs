//! Hubs as nodes of one cluster, joined by an in-memory broker (`sim::cluster`): names unique
//! across nodes, the default room's members and chat on every node, private messages to the
//! right node only, nodes that stop, die or lose the broker, and forged node messages.

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use sim::cluster::{ClusterNet, CLAIM_TTL};
use tidings_core::cluster::{user_subject, NodeMessage, Said};
use tidings_core::hub::{HubConfig, HubEvent};
use tidings_core::name::name_key;
use tidings_core::session::Closed;
use tidings_core::ErrorCode;

const INTERVAL: Duration = Duration::from_millis(100);

fn config() -> HubConfig {
    let mut config = HubConfig {
        presence_interval: INTERVAL,
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    config
}

fn cluster(n: usize) -> ClusterNet {
    ClusterNet::new(n, &config(), 7)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn refusal(net: &ClusterNet, node: usize, i: usize) -> Option<(ErrorCode, String)> {
    match net.nodes[node].clients[i].closed()? {
        Closed::Peer { code, reason } => Some((*code, reason.to_string())),
        _ => None,
    }
}

#[test]
fn a_name_held_on_one_node_is_taken_on_every_other() {
    let mut net = cluster(3);
    net.join(0, "ann");
    let copy = net.join(1, "ANN");
    let (code, reason) = refusal(&net, 1, copy).expect("refused");
    assert_eq!(code, ErrorCode::NameTaken);
    // The node that refused had heard of ann already, or the store said so.
    assert!(reason.contains("taken"), "{reason}");
    // Two hellos for one name at once on two nodes: one store, one winner.
    let a = net.nodes[1].join("cy");
    let b = net.nodes[2].join("Cy");
    net.settle();
    let refused = [refusal(&net, 1, a), refusal(&net, 2, b)];
    assert_eq!(
        refused.iter().filter(|r| r.is_some()).count(),
        1,
        "{refused:?}"
    );
    // A node that cannot reach the store refuses with server-full (clients try the next).
    net.link(2, false);
    let cut = net.join(2, "dee");
    assert_eq!(
        refusal(&net, 2, cut).map(|r| r.0),
        Some(ErrorCode::ServerFull)
    );
    net.link(2, true);
    // Once ann leaves, the name is free anywhere.
    net.nodes[0].clients[0]
        .session
        .goodbye(ErrorCode::Normal, "bye");
    net.settle();
    net.advance(INTERVAL);
    let again = net.join(2, "ann");
    assert_eq!(refusal(&net, 2, again), None);
    assert!(net.nodes[2].hub.peer_count() >= 1);
}

#[test]
fn everyone_is_listed_and_told_on_every_node() {
    let mut net = cluster(2);
    net.join(0, "ann");
    net.join(0, "bob");
    net.advance(INTERVAL * 2);
    let cy = net.join(1, "cy");
    net.advance(INTERVAL * 2);
    // cy's welcome listed the users of the other node; they hear of cy.
    assert_eq!(net.nodes[1].online_seen_by(cy), set(&["ann", "bob", "cy"]));
    assert_eq!(net.nodes[0].online_seen_by(0), set(&["ann", "bob", "cy"]));
    // A list request sees every node too.
    net.nodes[1].clients[cy]
        .session
        .request_peer_list()
        .unwrap();
    net.settle();
    let list = net.nodes[1].clients[cy].last_peer_list().unwrap();
    assert_eq!(list, ["ann", "bob", "cy"]);
    // bob leaves: cy hears it.
    net.nodes[0].clients[1]
        .session
        .goodbye(ErrorCode::Normal, "bye");
    net.settle();
    net.advance(INTERVAL * 2);
    assert_eq!(net.nodes[1].online_seen_by(cy), set(&["ann", "cy"]));
}

#[test]
fn lines_reach_every_node_stamped_and_private_ones_only_their_addressee() {
    let mut net = cluster(3);
    net.join(0, "ann");
    net.join(1, "bob");
    net.join(2, "cy");
    net.advance(INTERVAL * 2);
    net.nodes[0].clients[0]
        .session
        .send_text("", "hello, all")
        .unwrap();
    net.settle();
    for (node, name) in [(1, "bob"), (2, "cy")] {
        let texts = net.nodes[node].client(name).texts();
        assert_eq!(
            texts,
            [("ann".into(), false, "hello, all".into())],
            "{name}"
        );
    }
    net.nodes[1].clients[0]
        .session
        .send_text("cy", "psst")
        .unwrap();
    net.settle();
    assert_eq!(
        net.nodes[2].client("cy").texts().last().unwrap(),
        &("bob".into(), true, "psst".into())
    );
    assert!(
        net.nodes[0].client("ann").texts().is_empty(),
        "not her own line, nor bob's psst"
    );
    // Nobody of that name anywhere: the usual error, from the sender's own node.
    net.nodes[1].clients[0]
        .session
        .send_text("nobody", "hi")
        .unwrap();
    net.settle();
    let errors = net.nodes[1].client("bob").events.iter().any(|e| {
        matches!(
            e,
            tidings_core::session::Event::PeerError {
                code: ErrorCode::UnknownPeer,
                ..
            }
        )
    });
    assert!(errors);
}

#[test]
fn a_private_message_is_heard_only_by_the_node_of_its_addressee() {
    let mut net = cluster(3);
    net.join(0, "ann");
    net.join(1, "bob");
    net.join(2, "cy");
    net.settle();
    let subject = user_subject(&name_key("cy"));
    let hearing: Vec<usize> = (0..3)
        .filter(|&i| net.heard[i].contains(&subject))
        .collect();
    assert_eq!(hearing, [2]);
}

#[test]
fn a_node_that_stops_takes_its_users_off_every_list_at_once() {
    let mut net = cluster(2);
    net.join(0, "ann");
    let bob = net.join(1, "bob");
    net.advance(INTERVAL * 2);
    net.nodes[0].hub.shutdown("maintenance");
    net.settle();
    net.advance(INTERVAL * 2);
    assert_eq!(net.nodes[1].online_seen_by(bob), set(&["bob"]));
}

#[test]
fn a_dead_node_s_users_leave_at_the_node_timeout_and_their_names_free_up_with_the_claims() {
    let mut net = cluster(2);
    net.join(0, "ann");
    let bob = net.join(1, "bob");
    net.advance(INTERVAL * 2);
    net.crash(0);
    net.advance(Duration::from_secs(5));
    assert_eq!(
        net.nodes[1].online_seen_by(bob),
        set(&["ann", "bob"]),
        "not yet"
    );
    net.advance(Duration::from_secs(6));
    assert_eq!(net.nodes[1].online_seen_by(bob), set(&["bob"]));
    assert!(net.nodes[1]
        .op
        .saw(|e| matches!(e, HubEvent::Node { up: false, .. })));
    // Her claim outlives the node for a while, then ann can come back on the other node.
    let early = net.join(1, "ann");
    assert_eq!(
        refusal(&net, 1, early).map(|r| r.0),
        Some(ErrorCode::NameTaken)
    );
    net.advance(CLAIM_TTL);
    let back = net.join(1, "ann");
    assert_eq!(refusal(&net, 1, back), None);
}

#[test]
fn a_node_that_starts_late_learns_everyone_and_one_that_loses_the_broker_tells_its_users() {
    let mut net = cluster(2);
    net.join(0, "ann");
    net.advance(INTERVAL * 2);
    let bob = net.join(1, "bob");
    net.advance(Duration::from_secs(2));
    assert_eq!(net.nodes[1].online_seen_by(bob), set(&["ann", "bob"]));
    net.link(1, false);
    let told = net.nodes[1].client("bob").texts();
    assert!(told.last().unwrap().2.contains("lost its link"), "{told:?}");
    // Cut off, bob's node lets ann go at the node timeout …
    net.advance(Duration::from_secs(11));
    assert_eq!(net.nodes[1].online_seen_by(bob), set(&["bob"]));
    // … and has her back once the broker is reachable again.
    net.link(1, true);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.nodes[1].online_seen_by(bob), set(&["ann", "bob"]));
    assert_eq!(net.nodes[0].online_seen_by(0), set(&["ann", "bob"]));
}

#[test]
fn a_node_message_that_speaks_for_a_user_of_this_node_or_its_server_is_dropped() {
    let mut net = cluster(2);
    net.join(0, "ann");
    net.join(0, "bob");
    net.join(1, "cy");
    net.advance(INTERVAL * 2);
    let now = net.now();
    let forged = [
        // cy's node speaking for bob, a user of node 0.
        NodeMessage::Private {
            node: "n1".into(),
            to: "ann".into(),
            from: "bob".into(),
            said: Said::Text("give me your password".into()),
        },
        // A line in the default room in the name of a user of node 0.
        NodeMessage::Say {
            node: "n1".into(),
            room: "lobby".into(),
            from: "bob".into(),
            said: Said::Text("hi".into()),
        },
        // In the name of the server's participant.
        NodeMessage::Say {
            node: "n1".into(),
            room: "lobby".into(),
            from: "server".into(),
            said: Said::Text("all passwords expire today".into()),
        },
        // A room that does not span the cluster.
        NodeMessage::Say {
            node: "n1".into(),
            room: "elsewhere".into(),
            from: "cy".into(),
            said: Said::Text("hi".into()),
        },
        // This node's own name: it never listens to itself.
        NodeMessage::Presence {
            node: "n0".into(),
            seq: 1,
            changes: vec![(true, "mallory".into())],
        },
        // Names no node would send (a space; longer than names may be): dropped whole.
        NodeMessage::Roster {
            node: "n1".into(),
            seq: 9,
            first: true,
            names: vec!["cy".into(), "mal lory".into()],
        },
        NodeMessage::Presence {
            node: "n1".into(),
            seq: 9,
            changes: vec![(true, "x".repeat(200).into())],
        },
    ];
    for msg in forged {
        net.nodes[0].hub.handle_cluster(now, msg.encode());
    }
    // Garbage.
    net.nodes[0]
        .hub
        .handle_cluster(now, bytes::Bytes::from_static(b"\x01\x06\xff"));
    net.settle();
    assert!(net.nodes[0].client("ann").texts().is_empty());
    assert_eq!(net.nodes[0].online_seen_by(0), set(&["ann", "bob", "cy"]));
}

#[test]
fn a_file_offered_to_a_user_of_another_node_is_refused_with_a_reason() {
    let mut net = cluster(2);
    net.join(0, "ann");
    net.join(1, "bob");
    net.advance(INTERVAL * 2);
    let id = net.nodes[0].offer("ann", "bob", "f.bin", bytes::Bytes::from_static(b"abc"));
    net.settle();
    let f = net.nodes[0].failure("ann", id);
    assert_eq!(f.code, ErrorCode::UnknownPeer);
    assert!(f.reason.contains("another server"), "{}", f.reason);
}

#[test]
fn presence_crosses_nodes_in_batches_not_one_message_per_join() {
    let mut net = cluster(2);
    net.join(1, "watcher");
    net.advance(INTERVAL * 2);
    let before = net.published[0];
    for i in 0..50 {
        net.nodes[0].join(&format!("u{i}"));
    }
    net.settle();
    // An interval on the node of the joins, one on the node told.
    net.advance(INTERVAL * 2);
    // Subscriptions and claims are not published; presence went in one or two messages.
    assert!(
        net.published[0] - before <= 3,
        "{}",
        net.published[0] - before
    );
    assert_eq!(net.nodes[1].online_seen_by(0).len(), 51);
}

#[test]
fn after_the_broker_restarts_lines_cross_again() {
    let mut net = cluster(2);
    net.join(0, "ann");
    // bob speaks rooms (as `tidings chat` does): his lines name the default room.
    let rooms = tidings_core::session::Config {
        capabilities: tidings_core::wire::capability::DEFAULT
            | tidings_core::wire::capability::ROOMS,
        transfer: sim::hub::test_transfers(),
        ..Default::default()
    };
    net.nodes[1].join_with("bob", rooms);
    net.settle();
    net.advance(INTERVAL * 2);
    net.link(0, false);
    net.link(1, false);
    net.advance(Duration::from_secs(2));
    net.link(0, true);
    net.link(1, true);
    net.advance(Duration::from_secs(2));
    net.nodes[1].clients[0]
        .session
        .send_text("", "are you there?")
        .unwrap();
    // A line to the default room by its name (how 1.1 clients speak) crosses the same way.
    net.nodes[1].clients[0]
        .session
        .send_room_text("lobby", "still there?")
        .unwrap();
    net.settle();
    let texts = net.nodes[0].client("ann").texts();
    let last: Vec<&str> = texts.iter().rev().take(2).map(|t| t.2.as_str()).collect();
    assert_eq!(last, ["still there?", "are you there?"], "{texts:?}");
}

#[test]
fn with_accounts_a_name_is_claimed_then_judged_and_a_refusal_releases_the_claim() {
    let config = HubConfig {
        accounts: true,
        ..config()
    };
    let mut net = ClusterNet::new(2, &config, 3);
    let key = tidings_core::cluster::claim_key("ann");
    let i = net.join(0, "ann");
    // The claim comes first; then the driver is asked for a verdict.
    assert!(net.claims.contains_key(&key));
    assert!(net.nodes[0]
        .op
        .saw(|e| matches!(e, HubEvent::Verify { .. })));
    let conn = net.nodes[0].clients[i].conn;
    assert!(net.nodes[0]
        .hub
        .deny(conn, ErrorCode::AuthFailed, "wrong password"));
    net.settle();
    assert!(
        !net.claims.contains_key(&key),
        "a refused login keeps no claim"
    );
    // Allowed on the other node: admitted, and the name is held there.
    let j = net.join(1, "ann");
    let conn = net.nodes[1].clients[j].conn;
    assert!(net.nodes[1].hub.allow(conn));
    net.settle();
    assert_eq!(refusal(&net, 1, j), None);
    assert_eq!(net.nodes[1].hub.peer_count(), 1);
    assert_eq!(net.claims.get(&key).map(|c| c.0), Some(1));
}

#[test]
fn a_second_hello_for_a_name_being_claimed_is_refused_not_let_through() {
    for accounts in [false, true] {
        let config = HubConfig {
            accounts,
            ..config()
        };
        let mut net = ClusterNet::new(2, &config, 5);
        // Both hellos reach node 0 before the store has answered the first claim.
        let first = net.nodes[0].join("alice");
        let second = net.nodes[0].join("ALICE");
        let (code, _) = refusal(&net, 0, second).expect("the second is refused at once");
        assert_eq!(code, ErrorCode::NameTaken);
        net.settle();
        if accounts {
            let conn = net.nodes[0].clients[first].conn;
            assert!(net.nodes[0].hub.allow(conn));
            net.settle();
        }
        assert_eq!(refusal(&net, 0, first), None);
        assert_eq!(net.nodes[0].hub.peer_count(), 1, "accounts: {accounts}");
    }
}

#[test]
fn a_claim_answered_after_its_connection_closed_is_released() {
    let mut net = cluster(2);
    let i = net.nodes[0].join("alice");
    // Gone before the store answers.
    net.nodes[0].clients[i]
        .session
        .goodbye(ErrorCode::Normal, "never mind");
    net.nodes[0].settle();
    net.settle();
    let key = tidings_core::cluster::claim_key("alice");
    assert!(
        !net.claims.contains_key(&key),
        "released once the answer came"
    );
    // And the name is free on any node.
    let j = net.join(1, "alice");
    assert_eq!(refusal(&net, 1, j), None);
}

#[test]
fn what_other_nodes_can_make_a_node_hold_is_bounded() {
    let mut config = config();
    config.max_peers = 3;
    config.cluster = Some(tidings_core::cluster::ClusterConfig {
        max_nodes: 1,
        ..Default::default()
    });
    let mut net = ClusterNet::new(1, &config, 9);
    let watcher = net.join(0, "watcher");
    let now = net.now();
    let roster = |node: &str, names: &[&str]| NodeMessage::Roster {
        node: node.into(),
        seq: 0,
        first: true,
        names: names.iter().map(|&n| n.into()).collect(),
    };
    // One node at most, and no more of its users than a node admits.
    net.nodes[0]
        .hub
        .handle_cluster(now, roster("x", &["a", "b", "c", "d", "e"]).encode());
    net.nodes[0]
        .hub
        .handle_cluster(now, roster("y", &["f"]).encode());
    net.advance(INTERVAL * 2);
    assert_eq!(net.nodes[0].hub.remote_peer_count(), 3);
    assert_eq!(net.nodes[0].hub.cluster_nodes().len(), 1);
    assert_eq!(net.nodes[0].online_seen_by(watcher).len(), 4);
}

#[test]
fn a_hello_whose_claim_is_in_flight_when_it_closes_leaves_the_name_to_the_next() {
    let mut net = cluster(1);
    let first = net.nodes[0].join("alice");
    net.nodes[0].clients[first]
        .session
        .goodbye(ErrorCode::Normal, "gone");
    net.nodes[0].settle();
    // Before the store answers the first claim, alice comes back.
    let second = net.nodes[0].join("alice");
    assert_eq!(
        refusal(&net, 0, second),
        None,
        "not refused for her own old claim"
    );
    net.settle();
    assert_eq!(refusal(&net, 0, second), None);
    assert_eq!(net.nodes[0].hub.peer_count(), 1);
    // The first answer did not release what the second holds.
    let key = tidings_core::cluster::claim_key("alice");
    assert_eq!(net.claims.get(&key).map(|c| c.0), Some(0));
    assert!(net.held[0].contains(&key));
}
