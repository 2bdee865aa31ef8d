//! The rooms a client is in and their members (spec §6.10), kept from the room events of
//! [`ClientEvent`]: [`Rooms::apply`] each event in the order it arrives.
//!
//! The [`Agent`](crate::client::Agent) keeps one for itself ([`Agent::rooms`]); an
//! application behind a runtime's client handle, which sees only the events, keeps its own
//! the same way, so both agree by construction.
//!
//! [`Agent::rooms`]: crate::client::Agent::rooms

use std::collections::BTreeMap;

use tidings_core::name::name_key;

use crate::client::ClientEvent;

/// One room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The room's name as the server spells it.
    pub name: String,
    /// Its members, ourselves included: the server's list when we entered (ourselves
    /// last), then whoever joined since, in the order they came.
    pub members: Vec<String>,
}

/// The rooms we are in, by the server's name key (`Team` and `TEAM` are one room).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rooms {
    rooms: BTreeMap<String, Room>,
    /// The default room's name, once the server said it (right after `welcome`); it stays
    /// known after we leave it.
    default: Option<String>,
}

impl Rooms {
    /// No rooms (a new connection, or a server that does not speak rooms).
    pub fn new() -> Rooms {
        Rooms::default()
    }

    /// Takes in one event; events that are not about rooms change nothing. The default
    /// room's chat and presence arrive as [`ClientEvent::Joined`] and [`ClientEvent::Left`]
    /// and count for it.
    pub fn apply(&mut self, ev: &ClientEvent) {
        match ev {
            ClientEvent::Connected { .. } | ClientEvent::Closed { .. } => {
                self.rooms.clear();
                self.default = None;
            }
            ClientEvent::RoomEntered {
                room,
                members,
                default,
            } => {
                if *default {
                    self.default = Some(room.clone());
                }
                let room = Room {
                    name: room.clone(),
                    members: members.clone(),
                };
                self.rooms.insert(name_key(&room.name), room);
            }
            ClientEvent::RoomExited { room, .. } => {
                self.rooms.remove(&name_key(room));
            }
            ClientEvent::RoomJoined { room, name } => self.joined(room, name),
            ClientEvent::RoomLeft { room, name, .. } => self.left(room, name),
            ClientEvent::Joined(name) => {
                if let Some(default) = self.default.clone() {
                    self.joined(&default, name);
                }
            }
            ClientEvent::Left(name) => {
                if let Some(default) = self.default.clone() {
                    self.left(&default, name);
                }
            }
            _ => {}
        }
    }

    fn joined(&mut self, room: &str, name: &str) {
        if let Some(r) = self.rooms.get_mut(&name_key(room)) {
            let key = name_key(name);
            if !r.members.iter().any(|m| name_key(m) == key) {
                r.members.push(name.to_string());
            }
        }
    }

    fn left(&mut self, room: &str, name: &str) {
        if let Some(r) = self.rooms.get_mut(&name_key(room)) {
            let key = name_key(name);
            r.members.retain(|m| name_key(m) != key);
        }
    }

    /// The room `name` (any spelling that compares equal), if we are in it.
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.rooms.get(&name_key(name))
    }

    /// Whether we are in the room `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The rooms we are in, by name key.
    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    /// The default room's name, once known (never on a server without rooms).
    pub fn default_room(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Whether `name` is the default room.
    pub fn is_default(&self, name: &str) -> bool {
        self.default
            .as_deref()
            .is_some_and(|d| name_key(d) == name_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered(room: &str, members: &[&str], default: bool) -> ClientEvent {
        ClientEvent::RoomEntered {
            room: room.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            default,
        }
    }

    #[test]
    fn members_follow_the_news_and_a_room_goes_when_we_leave_it() {
        let mut rooms = Rooms::new();
        rooms.apply(&entered("lobby", &["bob", "me"], true));
        rooms.apply(&entered("Team", &["me"], false));
        rooms.apply(&ClientEvent::Joined("carol".into()));
        rooms.apply(&ClientEvent::Left("bob".into()));
        rooms.apply(&ClientEvent::RoomJoined {
            room: "TEAM".into(),
            name: "dave".into(),
        });
        // A second join news of one name (any spelling) lists it once.
        rooms.apply(&ClientEvent::RoomJoined {
            room: "team".into(),
            name: "DAVE".into(),
        });
        assert_eq!(rooms.get("lobby").unwrap().members, ["me", "carol"]);
        assert_eq!(rooms.get("team").unwrap().members, ["me", "dave"]);
        assert_eq!(rooms.get("team").unwrap().name, "Team");
        assert!(rooms.is_default("LOBBY") && !rooms.is_default("team"));

        rooms.apply(&ClientEvent::RoomLeft {
            room: "team".into(),
            name: "dave".into(),
            removed: true,
        });
        assert_eq!(rooms.get("team").unwrap().members, ["me"]);
        rooms.apply(&ClientEvent::RoomExited {
            room: "team".into(),
            removed: false,
        });
        assert!(!rooms.contains("team") && rooms.contains("lobby"));
        // Our leaving the default room: it is gone, and still known as the default.
        rooms.apply(&ClientEvent::RoomExited {
            room: "lobby".into(),
            removed: false,
        });
        rooms.apply(&ClientEvent::Joined("erin".into()));
        assert_eq!(rooms.iter().count(), 0);
        assert_eq!(rooms.default_room(), Some("lobby"));
    }
}
