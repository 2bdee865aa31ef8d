//! Property test: no message leaves its room. Random clients (some speaking rooms, some
//! 1.0 clients that only know the default room) join, leave, talk in rooms, broadcast and
//! hang up in any order; a reference model of who is in which room predicts exactly who
//! hears each line, each member list and each refusal, and the hub must match it.
//!
//! Checked after every step:
//! * a line reaches exactly the other members of its room at the moment it was said, once,
//!   with the true sender and the room's name (1.0 clients: as a `text` broadcast, and only
//!   for the default room);
//! * a `join` is answered with the room's members as the model has them, the joiner last;
//!   a `leave` with `member left` about oneself; talking or leaving outside a room with
//!   `not-member`;
//! * `member` news reach the other members of that room only; `presence` only 1.0 clients,
//!   and only about the default room;
//! * the operator closing a room removes every member (each told about itself) and the
//!   room; removing a member tells it and the others, and refuses its next `join`
//!   (`room-refused`) while the room lives, which it does while anyone was removed from it;
//! * the hub's own view (`Hub::room_members`, `Hub::rooms`) equals the model's.
//!
//! Run twice: with the default room's joins and departures told at once, and told in
//! batches (`HubConfig::presence_interval`), where after every step each client must have
//! heard a beginning of what the model predicts (news may wait, nothing may come out of
//! order), and all of it once the interval has passed.

mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use sim::HubNet;
use tidings_core::hub::HubConfig;
use tidings_core::name::name_key;
use tidings_core::session::{Config, Event, RoomEvent};
use tidings_core::wire::{capability, MemberKind, PresenceKind};
use tidings_core::ErrorCode;

/// Room names, two of them spellings of one room.
const ROOMS: [&str; 5] = ["lobby", "red", "blue", "RED", "green"];
const CLIENTS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Join(usize, usize),
    Leave(usize, usize),
    Say(usize, usize),
    Broadcast(usize),
    HangUp(usize),
    /// The operator closes a room.
    Close(usize),
    /// The operator removes a client from a room.
    Remove(usize, usize),
    /// Time passes: batched news are due.
    Wait,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    let r = 0..ROOMS.len();
    prop_oneof![
        3 => (c.clone(), r.clone()).prop_map(|(c, r)| Op::Join(c, r)),
        2 => (c.clone(), r.clone()).prop_map(|(c, r)| Op::Leave(c, r)),
        4 => (c.clone(), r.clone()).prop_map(|(c, r)| Op::Say(c, r)),
        2 => c.clone().prop_map(Op::Broadcast),
        1 => c.clone().prop_map(Op::HangUp),
        1 => r.clone().prop_map(Op::Close),
        1 => (r, c).prop_map(|(r, c)| Op::Remove(r, c)),
        2 => Just(Op::Wait),
    ]
}

/// What each client should have heard, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    /// (room key, sender, text): a room line, or for a 1.0 client a broadcast (room lobby).
    Line(String, String, String),
    /// (kind, room key, name).
    Member(MemberKind, String, String),
    /// (room key, names in order).
    Members(String, Vec<String>),
    Error(ErrorCode),
}

struct Model {
    rooms_capable: Vec<bool>,
    online: Vec<bool>,
    /// Room key → members (client indices), in name order (names are `c0` … `c5`).
    rooms: BTreeMap<String, BTreeSet<usize>>,
    /// Room key → the clients the operator removed from it.
    removed: BTreeMap<String, BTreeSet<usize>>,
    /// Each client's rooms in the order joined (the order its departure is told in, after
    /// the default room's).
    joined: Vec<Vec<String>>,
    expected: Vec<Vec<Heard>>,
}

impl Model {
    fn name(i: usize) -> String {
        format!("c{i}")
    }

    fn tell_room(&mut self, key: &str, heard: Heard, skip: Option<usize>) {
        // A room left empty is gone: nobody to tell.
        let members: Vec<usize> = self.rooms.get(key).into_iter().flatten().copied().collect();
        for m in members.into_iter().filter(|&m| Some(m) != skip) {
            if !self.rooms_capable[m] {
                // A 1.0 client: only the default room, as text / presence.
                assert_eq!(key, "lobby");
            }
            self.expected[m].push(heard.clone());
        }
    }

    fn members_of(&self, key: &str, last: usize) -> Vec<String> {
        let mut names: Vec<String> = self.rooms[key]
            .iter()
            .filter(|&&m| m != last)
            .map(|&m| Model::name(m))
            .collect();
        names.push(Model::name(last));
        names
    }

    /// Applies `op` and returns whether the hub must be told (the client is online).
    fn apply(&mut self, op: &Op, step: usize) -> bool {
        let client = match *op {
            Op::Join(c, _) | Op::Leave(c, _) | Op::Say(c, _) | Op::Broadcast(c) | Op::HangUp(c) => {
                c
            }
            Op::Close(r) => return self.close(&name_key(ROOMS[r])),
            Op::Remove(r, c) => return self.remove(&name_key(ROOMS[r]), c),
            Op::Wait => return false,
        };
        if !self.online[client] {
            return false;
        }
        let speaks = self.rooms_capable[client];
        let me = Model::name(client);
        match *op {
            // A 1.0 client has no room commands.
            Op::Join(..) | Op::Leave(..) | Op::Say(..) if !speaks => return false,
            Op::Join(c, r) => {
                let key = name_key(ROOMS[r]);
                let inside = self.rooms.get(&key).is_some_and(|m| m.contains(&c));
                if !inside && self.removed.get(&key).is_some_and(|r| r.contains(&c)) {
                    self.expected[c].push(Heard::Error(ErrorCode::RoomRefused));
                    return true;
                }
                if !inside {
                    self.rooms.entry(key.clone()).or_default().insert(c);
                    self.joined[c].push(key.clone());
                    let news = Heard::Member(MemberKind::Joined, key.clone(), me);
                    self.tell_room(&key, news, Some(c));
                }
                let names = self.members_of(&key, c);
                self.expected[c].push(Heard::Members(key, names));
            }
            Op::Leave(c, r) => {
                let key = name_key(ROOMS[r]);
                if !self.rooms.get(&key).is_some_and(|m| m.contains(&c)) {
                    self.expected[c].push(Heard::Error(ErrorCode::NotMember));
                    return true;
                }
                let news = Heard::Member(MemberKind::Left, key.clone(), me);
                self.expected[c].push(news.clone());
                self.leave(&key, c);
                self.tell_room(&key, news, None);
            }
            Op::Say(c, r) => {
                let key = name_key(ROOMS[r]);
                if !self.rooms.get(&key).is_some_and(|m| m.contains(&c)) {
                    self.expected[c].push(Heard::Error(ErrorCode::NotMember));
                    return true;
                }
                let line = Heard::Line(key.clone(), me, format!("line {step}"));
                self.tell_room(&key, line, Some(c));
            }
            Op::Broadcast(c) => {
                if !self.rooms["lobby"].contains(&c) {
                    self.expected[c].push(Heard::Error(ErrorCode::NotMember));
                    return true;
                }
                let line = Heard::Line("lobby".into(), me, format!("line {step}"));
                self.tell_room("lobby", line, Some(c));
            }
            Op::HangUp(c) => {
                self.online[c] = false;
                // The default room is told first, then the others in the order joined.
                let mut order = self.joined[c].clone();
                order.sort_by_key(|k| k != "lobby");
                for key in order {
                    self.leave(&key, c);
                    let news = Heard::Member(MemberKind::Left, key.clone(), me.clone());
                    self.tell_room(&key, news, None);
                }
            }
            Op::Close(_) | Op::Remove(..) | Op::Wait => unreachable!("handled above"),
        }
        true
    }

    fn leave(&mut self, key: &str, c: usize) {
        self.joined[c].retain(|k| k != key);
        let members = self.rooms.get_mut(key).expect("a room");
        members.remove(&c);
        if members.is_empty() && key != "lobby" && !self.removed.contains_key(key) {
            self.rooms.remove(key);
        }
    }

    /// The operator closes `key`: whether the hub does anything (it refuses the default
    /// room and rooms that do not exist).
    fn close(&mut self, key: &str) -> bool {
        if key == "lobby" {
            return false;
        }
        let Some(members) = self.rooms.remove(key) else {
            return false;
        };
        self.removed.remove(key);
        for m in members {
            self.joined[m].retain(|k| k != key);
            let news = Heard::Member(MemberKind::Removed, key.to_owned(), Model::name(m));
            self.expected[m].push(news);
        }
        true
    }

    /// The operator removes `c` from `key`: whether the hub does anything.
    fn remove(&mut self, key: &str, c: usize) -> bool {
        let member = self.rooms.get(key).is_some_and(|m| m.contains(&c));
        if key == "lobby" || !self.online[c] || !member {
            return false;
        }
        self.removed.entry(key.to_owned()).or_default().insert(c);
        let news = Heard::Member(MemberKind::Removed, key.to_owned(), Model::name(c));
        self.expected[c].push(news.clone());
        self.tell_room(key, news, Some(c));
        self.leave(key, c);
        true
    }
}

/// What a client heard, in the model's terms (room keys, 1.0 forms mapped).
fn heard(events: &[Event]) -> Vec<Heard> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Room(RoomEvent::Text { room, peer, text }) => Some(Heard::Line(
                name_key(room),
                peer.to_string(),
                text.to_string(),
            )),
            Event::Text {
                peer,
                private: false,
                text,
            } => Some(Heard::Line(
                "lobby".into(),
                peer.to_string(),
                text.to_string(),
            )),
            Event::Room(RoomEvent::Member { kind, room, name }) => {
                Some(Heard::Member(*kind, name_key(room), name.to_string()))
            }
            Event::Presence { kind, name } => Some(Heard::Member(
                match kind {
                    PresenceKind::Joined => MemberKind::Joined,
                    PresenceKind::Left => MemberKind::Left,
                },
                "lobby".into(),
                name.to_string(),
            )),
            Event::Room(RoomEvent::Members { room, names }) => Some(Heard::Members(
                name_key(room),
                names.iter().map(|n| n.to_string()).collect(),
            )),
            Event::PeerError { code, .. } => Some(Heard::Error(*code)),
            _ => None,
        })
        .collect()
}

/// How long batched news wait in the batched run.
const INTERVAL: Duration = Duration::from_millis(100);

fn run(capable: &[bool], ops: &[Op], presence_interval: Duration) {
    let mut config = HubConfig {
        presence_interval,
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    let mut net = HubNet::new(config, 7);
    let mut model = Model {
        rooms_capable: capable.to_vec(),
        online: vec![true; CLIENTS],
        rooms: BTreeMap::from([("lobby".to_owned(), BTreeSet::new())]),
        removed: BTreeMap::new(),
        joined: vec![vec!["lobby".to_owned()]; CLIENTS],
        expected: vec![Vec::new(); CLIENTS],
    };
    for (i, &speaks) in capable.iter().enumerate() {
        let capabilities = if speaks {
            capability::ALL
        } else {
            capability::DEFAULT
        };
        let config = Config {
            capabilities,
            transfer: sim::hub::test_transfers(),
            ..Config::default()
        };
        net.join_with(&Model::name(i), config);
        model.rooms.get_mut("lobby").unwrap().insert(i);
        let news = Heard::Member(MemberKind::Joined, "lobby".into(), Model::name(i));
        model.tell_room("lobby", news, Some(i));
        if speaks {
            let names = model.members_of("lobby", i);
            model.expected[i].push(Heard::Members("lobby".into(), names));
        }
    }
    for (step, op) in ops.iter().enumerate() {
        if matches!(op, Op::Wait) {
            net.advance(INTERVAL);
            check(&net, &model, true, &format!("after step {step} {op:?}"));
            continue;
        }
        if !model.apply(op, step) {
            continue;
        }
        let text = format!("line {step}");
        let client = match *op {
            Op::Join(c, _) | Op::Leave(c, _) | Op::Say(c, _) | Op::Broadcast(c) | Op::HangUp(c) => {
                Some(c)
            }
            Op::Close(r) => {
                net.hub
                    .close_room(ROOMS[r])
                    .expect("the model saw the room");
                None
            }
            Op::Remove(r, c) => {
                let name = Model::name(c);
                net.hub.remove_member(ROOMS[r], &name).expect("a member");
                None
            }
            Op::Wait => unreachable!("handled above"),
        };
        if let Some(c) = client {
            let session = &mut net.clients[c].session;
            match *op {
                Op::Join(_, r) => session.join(ROOMS[r]).unwrap(),
                Op::Leave(_, r) => session.leave(ROOMS[r]).unwrap(),
                Op::Say(_, r) => session.send_room_text(ROOMS[r], &text).unwrap(),
                Op::Broadcast(_) => session.send_text("", &text).unwrap(),
                _ => session.goodbye(ErrorCode::Normal, "bye"),
            }
        }
        net.settle();
        let all_told = presence_interval.is_zero();
        check(&net, &model, all_told, &format!("after step {step} {op:?}"));
        for (key, members) in &model.rooms {
            let names: BTreeSet<String> = members.iter().map(|&m| Model::name(m)).collect();
            let hub: BTreeSet<String> = net
                .hub
                .room_members(key)
                .expect("the room exists")
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(hub, names, "members of {key} after step {step}");
        }
        assert_eq!(
            net.hub.rooms().len(),
            model.rooms.len(),
            "after step {step}"
        );
    }
    net.advance(INTERVAL);
    check(&net, &model, true, "at the end");
}

/// Each client heard what the model predicts (`all_told`: every news has been told), or a
/// beginning of it. A client that hung up with news still waiting never hears it, so of
/// the clients gone only a beginning is checked.
fn check(net: &HubNet, model: &Model, all_told: bool, when: &str) {
    for c in 0..CLIENTS {
        let heard = heard(&net.clients[c].events);
        let expected = &model.expected[c];
        if all_told && (model.online[c] || net.hub.config().presence_interval.is_zero()) {
            assert_eq!(&heard, expected, "client c{c} {when}");
        } else {
            assert!(
                expected.starts_with(&heard),
                "client c{c} {when}: heard {heard:?}, expected a beginning of {expected:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_message_leaves_its_room(
        capable in prop::collection::vec(any::<bool>(), CLIENTS),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(&capable, &ops, Duration::ZERO);
    }

    #[test]
    fn batched_news_come_in_order_and_in_full(
        capable in prop::collection::vec(any::<bool>(), CLIENTS),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(&capable, &ops, INTERVAL);
    }
}
