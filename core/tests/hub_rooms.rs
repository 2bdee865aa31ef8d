//! Rooms in the hub (spec §6.10): joining, leaving, room chat and members, 1.0 clients in
//! the default room beside 1.1 clients, the limits, and the operator's commands.

mod sim;

use sim::HubNet;
use tidings_core::hub::{HubConfig, HubError, RoomConfig, RoomCreation};
use tidings_core::session::{Config, Event, RoomEvent};
use tidings_core::wire::{capability, MemberKind};
use tidings_core::ErrorCode;

fn rooms_config() -> Config {
    Config {
        capabilities: capability::ALL,
        ..Config::default()
    }
}

/// Joins a client that speaks rooms.
fn join_rooms(net: &mut HubNet, name: &str) -> usize {
    net.join_with(name, rooms_config())
}

fn room_texts(net: &HubNet, i: usize) -> Vec<(String, String, String)> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Room(RoomEvent::Text { room, peer, text }) => {
                Some((room.to_string(), peer.to_string(), text.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn members_answers(net: &HubNet, i: usize) -> Vec<(String, Vec<String>)> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Room(RoomEvent::Members { room, names }) => Some((
                room.to_string(),
                names.iter().map(|n| n.to_string()).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn member_news(net: &HubNet, i: usize) -> Vec<(MemberKind, String, String)> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Room(RoomEvent::Member { kind, room, name }) => {
                Some((*kind, room.to_string(), name.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn errors(net: &HubNet, i: usize) -> Vec<ErrorCode> {
    net.clients[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PeerError { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn two_teams_in_two_rooms_never_hear_each_other() {
    let mut net = HubNet::with_defaults(1);
    let names = ["ann", "abe", "bea", "bob"];
    for name in names {
        join_rooms(&mut net, name);
    }
    // Everyone starts in the default room, told so after `welcome`.
    for i in 0..4 {
        assert_eq!(members_answers(&net, i)[0].0, "lobby");
    }
    for (i, room) in [(0, "red"), (1, "red"), (2, "blue"), (3, "blue")] {
        net.clients[i].session.join(room).unwrap();
        net.settle();
    }
    assert_eq!(
        members_answers(&net, 1).last().unwrap(),
        &("red".to_owned(), vec!["ann".to_owned(), "abe".to_owned()])
    );
    net.clients[0]
        .session
        .send_room_text("red", "red plan")
        .unwrap();
    net.clients[3]
        .session
        .send_room_text("BLUE", "blue plan")
        .unwrap();
    net.settle();
    assert_eq!(
        room_texts(&net, 1),
        vec![("red".into(), "ann".into(), "red plan".into())]
    );
    assert_eq!(
        room_texts(&net, 2),
        vec![("blue".into(), "bob".into(), "blue plan".into())]
    );
    assert!(room_texts(&net, 0).is_empty(), "no echo");
    assert!(room_texts(&net, 3).is_empty(), "no echo");
    // The operator does not hear rooms other than the default one.
    assert!(!net
        .op
        .saw(|e| matches!(e, tidings_core::hub::HubEvent::Text { .. })));
}

#[test]
fn a_10_client_stays_in_the_default_room_and_hears_it_as_text_and_presence() {
    let mut net = HubNet::with_defaults(2);
    let old = net.join("old");
    let new = join_rooms(&mut net, "new");
    // The 1.0 client saw the 1.1 client arrive as presence.
    assert_eq!(net.clients[old].presence(), vec![(true, "new".to_owned())]);
    net.clients[new]
        .session
        .send_room_text("lobby", "hi old")
        .unwrap();
    net.clients[old].session.send_text("", "hi new").unwrap();
    net.settle();
    assert_eq!(
        net.clients[old].texts(),
        vec![("new".into(), false, "hi old".into())]
    );
    assert_eq!(
        room_texts(&net, new),
        vec![("lobby".into(), "old".into(), "hi new".into())]
    );
    // The 1.1 client leaves the default room: the 1.0 client sees it go.
    net.clients[new].session.leave("lobby").unwrap();
    net.settle();
    assert_eq!(
        net.clients[old].presence(),
        vec![(true, "new".to_owned()), (false, "new".to_owned())]
    );
    assert_eq!(
        member_news(&net, new),
        vec![(MemberKind::Left, "lobby".into(), "new".into())]
    );
    net.clients[old].session.send_text("", "anyone?").unwrap();
    net.settle();
    assert_eq!(room_texts(&net, new).len(), 1, "out of the default room");
    // Out of the default room, a broadcast is refused.
    net.clients[new].session.send_text("", "hello?").unwrap();
    net.settle();
    assert_eq!(errors(&net, new), vec![ErrorCode::NotMember]);
    assert_eq!(net.clients[old].texts().len(), 1);
}

#[test]
fn room_text_outside_ones_rooms_is_refused_and_nobody_hears_it() {
    let mut net = HubNet::with_defaults(3);
    let a = join_rooms(&mut net, "a");
    let b = join_rooms(&mut net, "b");
    net.clients[b].session.join("secret").unwrap();
    net.settle();
    net.clients[a]
        .session
        .send_room_text("secret", "eavesdrop")
        .unwrap();
    net.clients[a].session.leave("secret").unwrap();
    net.settle();
    assert_eq!(errors(&net, a), vec![ErrorCode::NotMember; 2]);
    assert!(room_texts(&net, b).is_empty());
}

#[test]
fn look_alike_room_names_are_one_room() {
    let mut net = HubNet::with_defaults(4);
    let a = join_rooms(&mut net, "a");
    let b = join_rooms(&mut net, "b");
    net.clients[a].session.join("Team").unwrap();
    net.settle();
    // Full-width T and a Cyrillic е: the same key.
    net.clients[b].session.join("Ｔ\u{435}am").unwrap();
    net.settle();
    assert_eq!(
        members_answers(&net, b).last().unwrap(),
        &("Team".to_owned(), vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(net.hub.rooms().len(), 2);
}

#[test]
fn empty_rooms_go_and_limits_refuse_clearly() {
    let config = HubConfig {
        rooms: RoomConfig {
            max_rooms: 3,
            max_rooms_per_peer: 3,
            max_members: 2,
            ..RoomConfig::default()
        },
        ..HubConfig::default()
    };
    let mut net = HubNet::new(config, 5);
    let a = join_rooms(&mut net, "a");
    let b = join_rooms(&mut net, "b");
    let c = join_rooms(&mut net, "c");
    net.clients[a].session.join("one").unwrap();
    net.clients[a].session.join("two").unwrap();
    net.settle();
    // lobby, one, two: the server is at its room limit.
    net.clients[b].session.join("three").unwrap();
    net.settle();
    assert_eq!(errors(&net, b), vec![ErrorCode::LimitExceeded]);
    // a is in three rooms: its limit.
    net.clients[b].session.join("one").unwrap();
    net.clients[c].session.join("one").unwrap();
    net.settle();
    assert_eq!(errors(&net, c), vec![ErrorCode::LimitExceeded], "room full");
    net.clients[a].session.leave("two").unwrap();
    net.settle();
    assert_eq!(net.hub.rooms().len(), 2, "an empty room goes");
    net.clients[a].session.join("x").unwrap();
    net.clients[a].session.join("y").unwrap();
    net.settle();
    assert_eq!(
        errors(&net, a),
        vec![ErrorCode::LimitExceeded],
        "rooms per peer"
    );
    // Invalid names are refused, not created.
    net.clients[c].session.join(".hidden").unwrap();
    net.settle();
    assert_eq!(errors(&net, c).last(), Some(&ErrorCode::RoomRefused));
}

#[test]
fn the_operator_opens_closes_and_removes() {
    let config = HubConfig {
        rooms: RoomConfig {
            creation: RoomCreation::Operator,
            ..RoomConfig::default()
        },
        ..HubConfig::default()
    };
    let mut net = HubNet::new(config, 6);
    let a = join_rooms(&mut net, "a");
    let b = join_rooms(&mut net, "b");
    net.clients[a].session.join("mine").unwrap();
    net.settle();
    assert_eq!(errors(&net, a), vec![ErrorCode::RoomRefused]);
    net.hub.open_room("staff").unwrap();
    net.clients[a].session.join("staff").unwrap();
    net.clients[b].session.join("staff").unwrap();
    net.settle();
    net.hub.remove_member("staff", "b").unwrap();
    net.settle();
    assert_eq!(
        member_news(&net, b).last(),
        Some(&(MemberKind::Removed, "staff".into(), "b".into()))
    );
    assert_eq!(
        member_news(&net, a).last(),
        Some(&(MemberKind::Removed, "staff".into(), "b".into()))
    );
    net.clients[b].session.join("staff").unwrap();
    net.settle();
    assert_eq!(
        errors(&net, b),
        vec![ErrorCode::RoomRefused],
        "stays removed"
    );
    net.hub.close_room("staff").unwrap();
    net.settle();
    assert_eq!(
        member_news(&net, a).last(),
        Some(&(MemberKind::Removed, "staff".into(), "a".into()))
    );
    assert!(matches!(
        net.hub.close_room("lobby"),
        Err(HubError::DefaultRoom(_))
    ));
    assert_eq!(net.hub.rooms().len(), 1);
}

#[test]
fn a_leaving_connection_is_gone_from_every_room() {
    let mut net = HubNet::with_defaults(7);
    let a = join_rooms(&mut net, "a");
    let b = join_rooms(&mut net, "b");
    net.clients[a].session.join("r").unwrap();
    net.clients[b].session.join("r").unwrap();
    net.settle();
    net.clients[a].session.goodbye(ErrorCode::Normal, "bye");
    net.settle();
    let news = member_news(&net, b);
    assert!(news.contains(&(MemberKind::Left, "r".into(), "a".into())));
    assert!(news.contains(&(MemberKind::Left, "lobby".into(), "a".into())));
    assert_eq!(net.hub.room_members("r").unwrap(), vec!["b"]);
}
