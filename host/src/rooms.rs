//! The rooms a client is in and their members (spec §6.10), kept from the room events of
//! [`ClientEvent`](crate::client::ClientEvent): [`Rooms::apply`] each event in the order it
//! arrives (`apply` is written beside the events, in `client.rs`).
//!
//! The [`Agent`](crate::client::Agent) keeps one for itself ([`Agent::rooms`]); an
//! application behind a runtime's client handle, which sees only the events, keeps its own
//! the same way, so both agree by construction.
//!
//! [`Agent::rooms`]: crate::client::Agent::rooms

use std::collections::BTreeMap;

use tidings_core::name::name_key;

/// Most members kept for one room (a server's own limit is 10 000 by default): joins a
/// server announces beyond it are not kept, so a hostile server cannot grow a client's
/// memory without end.
const MAX_MEMBERS: usize = 200_000;

/// One room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The room's name as the server spells it.
    pub name: String,
    /// Its members, ourselves included, by name key: a join or leave in a room of
    /// thousands costs a lookup, not a scan (every client of a busy default room applies
    /// each of them).
    members: BTreeMap<String, String>,
}

impl Room {
    /// Its members, ourselves included, in the server's order (by name key).
    pub fn members(&self) -> Vec<String> {
        self.members.values().cloned().collect()
    }

    /// How many members it has, ourselves included.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether nobody is in it (never while we are).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `name` (any spelling that compares equal) is a member.
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(&name_key(name))
    }
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

    /// Forgets every room (a new connection, or its end).
    pub(crate) fn clear(&mut self) {
        self.rooms.clear();
        self.default = None;
    }

    /// We are in `room` with `members` (the server's list); `default`: it is the default room.
    pub(crate) fn entered(&mut self, room: &str, members: &[String], default: bool) {
        if default {
            self.default = Some(room.to_string());
        }
        let room = Room {
            name: room.to_string(),
            members: members
                .iter()
                .take(MAX_MEMBERS)
                .map(|m| (name_key(m), m.clone()))
                .collect(),
        };
        self.rooms.insert(name_key(&room.name), room);
    }

    /// We are no longer in `room`.
    pub(crate) fn exited(&mut self, room: &str) {
        self.rooms.remove(&name_key(room));
    }

    /// `name` came into `room`.
    pub(crate) fn joined(&mut self, room: &str, name: &str) {
        if let Some(r) = self.rooms.get_mut(&name_key(room)) {
            if r.members.len() >= MAX_MEMBERS {
                // A server that says more is not believed: the list stops growing.
                return;
            }
            // Shown as first spelled.
            r.members
                .entry(name_key(name))
                .or_insert_with(|| name.to_string());
        }
    }

    /// `name` is no longer in `room`.
    pub(crate) fn left(&mut self, room: &str, name: &str) {
        if let Some(r) = self.rooms.get_mut(&name_key(room)) {
            r.members.remove(&name_key(name));
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
        self.default.as_deref().is_some_and(|d| same_name(d, name))
    }
}

/// Whether `a` and `b` name one room (or one person). The server spells a room and a name the
/// same way each time, so the bytes usually match and no key is computed (the default
/// room's news reach every client with each line of chat).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a == b || name_key(a) == name_key(b)
}
