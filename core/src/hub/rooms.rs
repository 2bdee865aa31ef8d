//! Rooms (spec §6.10): who is in which room, joining and leaving, room chat and how it is
//! rendered for each member, and the operator's commands on rooms.
//!
//! Every welcomed client is a member of the default room. A client that announced the
//! `ROOMS` capability (protocol 1.1) may join and leave rooms and hears each room's chat and
//! members as `room-text` and `member`; a 1.0 client stays in the default room and hears it
//! as the `text` broadcasts and `presence` it always knew. So one room's fan-out renders at
//! most two frames, each encoded once for all the members that speak it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::roster::Roster;
use super::{ConnId, Hub, HubError};
use crate::name::{name_key, validate_name};
use crate::session::{RoomRequest, SendError};
use crate::wire::{MemberKind, Message, PresenceKind, RoomInfo, Utf8, MIN_MAX_FRAME};
use crate::ErrorCode;

/// Who may open a room (spec §6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreation {
    /// Any client opens a room by joining it (the default, as IRC and Matrix do).
    Anyone,
    /// Only the operator opens rooms ([`Hub::open_room`]); a `join` of a room that does not
    /// exist is refused with `room-refused`.
    Operator,
}

/// The room settings of a [`super::HubConfig`] (spec §6.10, §9).
///
/// ```
/// use tidings_core::hub::{HubConfig, RoomConfig, RoomCreation};
/// let cfg = HubConfig {
///     rooms: RoomConfig { creation: RoomCreation::Operator, ..RoomConfig::default() },
///     ..HubConfig::default()
/// };
/// assert_eq!(cfg.rooms.default_room, "lobby");
/// ```
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// The room every client is in when welcomed, the only room of a 1.0 client; it always
    /// exists. Its name follows the rules of names. Default `lobby`.
    pub default_room: String,
    /// Rooms opened when the hub starts, kept while empty (as by [`Hub::open_room`]).
    /// Default none.
    pub open: Vec<String>,
    /// Who may open rooms. Default [`RoomCreation::Anyone`].
    pub creation: RoomCreation,
    /// Most rooms at once, the default room included; a `join` that would open one more is
    /// refused with `limit-exceeded`. Default 10 000.
    pub max_rooms: usize,
    /// Most rooms one client is in at once, the default room included. Default 100.
    pub max_rooms_per_peer: usize,
    /// Most members of one room; the default room is bounded by the peer limit instead.
    /// Default 10 000.
    pub max_members: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            default_room: "lobby".to_owned(),
            open: Vec::new(),
            creation: RoomCreation::Anyone,
            max_rooms: 10_000,
            max_rooms_per_peer: 100,
            max_members: 10_000,
        }
    }
}

/// One room.
#[derive(Debug)]
pub(super) struct Room {
    /// As it was first spelled.
    pub(super) name: Utf8,
    /// A member's name key → its connection and whether it speaks rooms; ordered, so that
    /// member lists come sorted.
    members: BTreeMap<String, Member>,
    /// Kept while empty: the default room and the rooms the operator opened.
    permanent: bool,
    /// Name keys the operator removed: their `join` is refused while the room lives.
    removed: BTreeSet<String>,
}

impl Room {
    fn new(name: &str, permanent: bool) -> Room {
        Room {
            name: Utf8::from(name),
            members: BTreeMap::new(),
            permanent,
            removed: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Member {
    conn: ConnId,
    /// It announced `ROOMS` (else it is a 1.0 client, in the default room only).
    rooms: bool,
}

/// A room's key ([`name_key`] of its name), shared by the room table and its members' lists
/// so that a room line costs no allocation.
type Key = Arc<str>;

/// Every room and every connection's rooms.
///
/// The default room's members are not in its table entry: each connection says whether it
/// is in it (`Conn::in_default_room`), and `default_members` keeps their names as every
/// welcome lists them.
#[derive(Debug)]
pub(super) struct Rooms {
    /// A room's key ([`name_key`] of its name) → the room. The default room's entry has no
    /// members; `default_members` has them.
    pub(super) map: BTreeMap<Key, Room>,
    pub(super) default_key: Key,
    pub(super) default_members: Roster,
    /// A connection → the keys of its rooms but the default one, in the order joined.
    joined: HashMap<ConnId, Vec<Key>>,
    /// The `room-list` frame as last encoded, until a room or a member count changes: a
    /// five-byte request must not cost a sort of every room each time.
    list: Option<Bytes>,
}

impl Rooms {
    pub(super) fn new(config: &RoomConfig) -> Rooms {
        let default_key: Key = name_key(&config.default_room).into();
        let mut map = BTreeMap::new();
        map.insert(default_key.clone(), Room::new(&config.default_room, true));
        for name in &config.open {
            map.entry(name_key(name).into())
                .or_insert_with(|| Room::new(name, true));
        }
        Rooms {
            map,
            default_key,
            default_members: Roster::default(),
            joined: HashMap::new(),
            list: None,
        }
    }

    pub(super) fn is_default(&self, key: &str) -> bool {
        *self.default_key == *key
    }

    /// Members of the room `key`.
    fn size(&self, key: &str) -> usize {
        if self.is_default(key) {
            return self.default_members.len();
        }
        self.map.get(key).map_or(0, |r| r.members.len())
    }
}

/// Something said or done in a room, rendered for each member by the protocol it speaks.
pub(super) enum News<'a> {
    Text {
        from: &'a Utf8,
        text: &'a Utf8,
    },
    Blob {
        from: &'a Utf8,
        media_type: &'a Utf8,
        data: &'a Bytes,
    },
    Member {
        kind: MemberKind,
        name: &'a Utf8,
    },
}

impl News<'_> {
    /// The frame for a member of `room`: 1.1 (`rooms`) or 1.0 (the default room only).
    pub(super) fn render(&self, room: &Utf8, rooms: bool) -> Message {
        match *self {
            News::Text { from, text } if rooms => Message::RoomText {
                room: room.clone(),
                peer: from.clone(),
                text: text.clone(),
            },
            News::Text { from, text } => Message::Text {
                peer: from.clone(),
                private: false,
                text: text.clone(),
            },
            // No room carries blobs but the default one, where both speak `blob`.
            News::Blob {
                from,
                media_type,
                data,
            } => Message::Blob {
                peer: from.clone(),
                private: false,
                media_type: media_type.clone(),
                data: data.clone(),
            },
            News::Member { kind, name } if rooms => Message::Member {
                kind,
                room: room.clone(),
                name: name.clone(),
            },
            News::Member { kind, name } => Message::Presence {
                kind: match kind {
                    MemberKind::Joined => PresenceKind::Joined,
                    MemberKind::Left | MemberKind::Removed => PresenceKind::Left,
                },
                name: name.clone(),
            },
        }
    }
}

impl Hub {
    // ----- the operator's commands ----------------------------------------------------------

    /// Opens `name` as a permanent room (kept while empty), or makes an existing room
    /// permanent. With [`RoomCreation::Operator`] these are the only rooms clients may join.
    ///
    /// # Errors
    ///
    /// [`HubError::RoomName`] when `name` breaks the rules of names (spec §6.1).
    pub fn open_room(&mut self, name: &str) -> Result<(), HubError> {
        validate_name(name).map_err(HubError::RoomName)?;
        let room = self
            .rooms
            .map
            .entry(name_key(name).into())
            .or_insert_with(|| Room::new(name, true));
        room.permanent = true;
        self.rooms.list = None;
        Ok(())
    }

    /// Closes the room `name`: every member gets `member` removed about itself (a 1.0 client
    /// cannot be in any room but the default one, which cannot be closed), and the room is
    /// gone; it may be opened again like any new room.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchRoom`], [`HubError::DefaultRoom`].
    pub fn close_room(&mut self, name: &str) -> Result<(), HubError> {
        let key = self.changeable_room(name)?;
        let room = self.rooms.map.remove(key.as_str()).expect("checked above");
        self.rooms.list = None;
        for (_, m) in room.members {
            if let Some(keys) = self.rooms.joined.get_mut(&m.conn) {
                keys.retain(|k| **k != *key);
                if keys.is_empty() {
                    self.rooms.joined.remove(&m.conn);
                }
            }
            if let Some(who) = self.peer_name(m.conn).cloned() {
                let news = News::Member {
                    kind: MemberKind::Removed,
                    name: &who,
                };
                let _ = self.deliver(m.conn, &news.render(&room.name, true));
            }
        }
        self.run();
        Ok(())
    }

    /// Removes the peer `name` from the room `room`: it gets `member` removed about itself,
    /// the others see it removed, and its `join` of that room is refused (`room-refused`)
    /// for as long as the room exists. Not for the default room (use [`Hub::kick`]).
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchRoom`], [`HubError::DefaultRoom`], [`HubError::UnknownPeer`],
    /// [`HubError::NotMember`].
    pub fn remove_member(&mut self, room: &str, name: &str) -> Result<(), HubError> {
        let key = self.changeable_room(room)?;
        let conn = self.lookup(name)?;
        let member_key = name_key(name);
        let Some(r) = self.rooms.map.get_mut(key.as_str()) else {
            return Err(HubError::NoSuchRoom(room.to_owned()));
        };
        if !r.members.contains_key(&member_key) {
            return Err(HubError::NotMember {
                room: room.to_owned(),
                name: name.to_owned(),
            });
        }
        r.removed.insert(member_key.clone());
        let room_name = r.name.clone();
        let who = self.peer_name(conn).cloned().unwrap_or_default();
        let news = News::Member {
            kind: MemberKind::Removed,
            name: &who,
        };
        let _ = self.deliver(conn, &news.render(&room_name, true));
        self.tell_room(&key, &news, Some(conn));
        self.leave_room(conn, &key, &who);
        self.run();
        Ok(())
    }

    /// Text from the server's participant to everyone in `room`, stamped with the server's
    /// name.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchRoom`]; [`HubError::Send`] for a text too large for any client.
    pub fn say_in(&mut self, room: &str, text: &str) -> Result<(), HubError> {
        let key = name_key(room);
        let Some(stored) = self.rooms.map.get(key.as_str()) else {
            return Err(HubError::NoSuchRoom(room.to_owned()));
        };
        // The frame carries the room as first spelled, and every client takes frames of
        // the minimum limit: room and sender (each after a length byte) and the text.
        if text.len() + stored.name.len() + self.server_name.len() + 2 > MIN_MAX_FRAME as usize {
            return Err(HubError::Send(SendError::TooLarge));
        }
        let from = self.server_name.clone();
        let text = Utf8::from(text);
        self.tell_room(
            &key,
            &News::Text {
                from: &from,
                text: &text,
            },
            None,
        );
        self.run();
        Ok(())
    }

    /// Every room, largest first (ties by key, the name with case and look-alikes folded):
    /// its name and member count.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut list: Vec<(&Key, RoomInfo)> = self
            .rooms
            .map
            .iter()
            .map(|(key, r)| {
                let info = RoomInfo {
                    name: r.name.clone(),
                    members: self.rooms.size(key) as u32,
                };
                (key, info)
            })
            .collect();
        list.sort_by(|a, b| b.1.members.cmp(&a.1.members).then_with(|| a.0.cmp(b.0)));
        list.into_iter().map(|(_, info)| info).collect()
    }

    /// The members of `room` (by any spelling of its name), sorted by key; `None` for no
    /// such room.
    pub fn room_members(&self, room: &str) -> Option<Vec<Utf8>> {
        let key = name_key(room);
        self.rooms
            .map
            .contains_key(key.as_str())
            .then(|| self.member_names(&key, None))
    }

    /// The default room's name ([`RoomConfig::default_room`]).
    pub fn default_room(&self) -> &str {
        self.rooms.map[&self.rooms.default_key].name.as_str()
    }

    // ----- internals ------------------------------------------------------------------------

    /// The key of `room`, if it exists and is not the default room (which the operator
    /// neither closes nor removes anyone from).
    fn changeable_room(&self, room: &str) -> Result<String, HubError> {
        let key = name_key(room);
        if self.rooms.is_default(&key) {
            Err(HubError::DefaultRoom(self.default_room().to_owned()))
        } else if self.rooms.map.contains_key(key.as_str()) {
            Ok(key)
        } else {
            Err(HubError::NoSuchRoom(room.to_owned()))
        }
    }

    /// The default room's members as the `names` list of a `welcome` or `room-members`
    /// for `me`: the count, and the names encoded, sorted, `me` last (a newcomer, not yet a
    /// member, or a `member` already listed, then moved to the end).
    pub(super) fn default_room_listing(&self, me: &Utf8, member: bool) -> (u32, BytesMut) {
        let mut entries = BytesMut::new();
        let skip = member.then_some(&**me);
        let count = self.rooms.default_members.write(skip, me, &mut entries);
        (count, entries)
    }

    /// `id`, just welcomed as `name`, is now in the default room.
    pub(super) fn entered(&mut self, id: ConnId, name: &Utf8) {
        let key = self.rooms.default_key.clone();
        self.enter_room(id, &key, name);
        let news = News::Member {
            kind: MemberKind::Joined,
            name,
        };
        // Before the news is told: with no interval, telling it publishes the batch too.
        self.cluster_presence(name, true);
        self.tell_room(&key, &news, Some(id));
        if self.conn_speaks_rooms(id) {
            self.send_members(id, &key);
        }
    }

    /// `id` (called `name`) went away: every room it was in is told, the default room first,
    /// then the others in the order joined.
    pub(super) fn departed(&mut self, id: ConnId, name: &Utf8) {
        self.cluster_presence(name, false);
        let mut keys = self.rooms.joined.remove(&id).unwrap_or_default();
        if self.in_room(id, &self.rooms.default_key) {
            keys.insert(0, self.rooms.default_key.clone());
        }
        for key in keys {
            self.leave_room(id, &key, name);
            let news = News::Member {
                kind: MemberKind::Left,
                name,
            };
            self.tell_room(&key, &news, None);
        }
        // In a cluster, a user of that name on another node may have waited for this one.
        self.unshadow(&name_key(name));
    }

    /// Whether `id` is in the room `key`.
    fn in_room(&self, id: ConnId, key: &str) -> bool {
        if self.rooms.is_default(key) {
            return self.conns.get(&id).is_some_and(|c| c.in_default_room);
        }
        self.rooms
            .joined
            .get(&id)
            .is_some_and(|keys| keys.iter().any(|k| **k == *key))
    }

    /// Puts `id` (called `name`) into the existing room `key`.
    fn enter_room(&mut self, id: ConnId, key: &Key, name: &Utf8) {
        self.rooms.list = None;
        if self.rooms.is_default(key) {
            let next = self.announcements.next();
            if let Some(c) = self.conns.get_mut(&id) {
                if !c.in_default_room {
                    c.in_default_room = true;
                    // Its list comes from the live state, which holds all news pending.
                    c.heard = next;
                    self.rooms.default_members.insert(name);
                }
            }
            return;
        }
        let rooms = self.conn_speaks_rooms(id);
        if let Some(room) = self.rooms.map.get_mut(key) {
            room.members
                .insert(name_key(name), Member { conn: id, rooms });
            self.rooms.joined.entry(id).or_default().push(key.clone());
        }
    }

    /// Takes `id` (called `name`) out of the room `key`; a room left empty goes unless it is
    /// permanent.
    fn leave_room(&mut self, id: ConnId, key: &str, name: &Utf8) {
        self.rooms.list = None;
        if self.rooms.is_default(key) {
            // What it has still to hear of the room comes before its leaving.
            self.tell_pending(id);
            if let Some(c) = self.conns.get_mut(&id) {
                if c.in_default_room {
                    c.in_default_room = false;
                    self.rooms.default_members.remove(name);
                }
            }
            return;
        }
        if let Some(keys) = self.rooms.joined.get_mut(&id) {
            keys.retain(|k| **k != *key);
            if keys.is_empty() {
                self.rooms.joined.remove(&id);
            }
        }
        if let Some(room) = self.rooms.map.get_mut(key) {
            room.members.remove(&name_key(name));
            // A room someone was removed from stays (until the operator closes it), or the
            // removed could open it again as its only member.
            if room.members.is_empty() && !room.permanent && room.removed.is_empty() {
                self.rooms.map.remove(key);
            }
        }
    }

    /// The key of the room called `room` if `id` is in it. The exact spelling is found
    /// without computing a key (a room's chat is the hot path); another spelling of the same
    /// name (case, look-alikes) by its key.
    fn find(&self, id: ConnId, room: &str) -> Option<Key> {
        let default = &self.rooms.default_key;
        let joined = self.rooms.joined.get(&id).map_or(&[][..], Vec::as_slice);
        let exact = std::iter::once(default)
            .chain(joined)
            .find(|&k| self.rooms.map[k].name.as_str() == room);
        let key = match exact {
            Some(key) => key.clone(),
            None => name_key(room).into(),
        };
        self.in_room(id, &key).then_some(key)
    }

    /// The members' names of the room `key`, sorted by key; with `last` moved to the end.
    fn member_names(&self, key: &str, last: Option<ConnId>) -> Vec<Utf8> {
        let mut names = Vec::with_capacity(self.rooms.size(key) + 1);
        let mut tail = None;
        let mut add = |conn: ConnId, name: &Utf8| {
            if Some(conn) == last {
                tail = Some(name.clone());
            } else {
                names.push(name.clone());
            }
        };
        if self.rooms.is_default(key) {
            // Every welcome lists the default room: one look-up per member, not three.
            for &conn in self.names.values() {
                let member = self.conns.get(&conn).filter(|c| c.in_default_room);
                if let Some(name) = member.and_then(|c| c.session.name()) {
                    add(conn, name);
                }
            }
            self.add_remote_names(&mut names);
        } else if let Some(room) = self.rooms.map.get(key) {
            for m in room.members.values() {
                if let Some(name) = self.peer_name(m.conn) {
                    add(m.conn, name);
                }
            }
        }
        names.extend(tail);
        names
    }

    /// A broadcast (`text` or `blob` addressed to nobody): the default room's chat. Whether
    /// the sender is in the default room (a 1.1 client may have left it).
    pub(super) fn say_in_default(&mut self, id: ConnId, news: &News) -> bool {
        if !self.in_room(id, &self.rooms.default_key) {
            let room = self.rooms.map[&self.rooms.default_key].name.clone();
            self.not_member(id, &room);
            return false;
        }
        let key = self.rooms.default_key.clone();
        self.tell_room(&key, news, Some(id));
        true
    }

    /// What the server's participant says to everyone: the default room.
    pub(super) fn say_to_default(&mut self, text: &Utf8) {
        let key = self.rooms.default_key.clone();
        let from = self.server_name.clone();
        self.tell_room(&key, &News::Text { from: &from, text }, None);
    }

    pub(super) fn on_room_request(&mut self, id: ConnId, request: RoomRequest) {
        let Some(from) = self.peer_name(id).cloned() else {
            return;
        };
        match request {
            RoomRequest::Join(room) => self.on_join(id, &from, room),
            RoomRequest::Leave(room) => {
                let Some(key) = self.find(id, &room) else {
                    self.not_member(id, &room);
                    return;
                };
                let room_name = self.rooms.map[&key].name.clone();
                let news = News::Member {
                    kind: MemberKind::Left,
                    name: &from,
                };
                self.leave_room(id, &key, &from);
                let _ = self.deliver(id, &news.render(&room_name, true));
                self.tell_room(&key, &news, None);
            }
            RoomRequest::Text { room, text } => {
                let Some(key) = self.find(id, &room) else {
                    self.not_member(id, &room);
                    return;
                };
                self.tell_room(
                    &key,
                    &News::Text {
                        from: &from,
                        text: &text,
                    },
                    Some(id),
                );
                if key == self.rooms.default_key {
                    let said = crate::cluster::Said::Text(text);
                    self.cluster_say(id, &from, &said);
                    self.emit(said.event(from, false));
                }
            }
            RoomRequest::List => {
                let frame = match &self.rooms.list {
                    Some(frame) => frame.clone(),
                    None => {
                        // Every client takes frames of the minimum limit: the largest rooms
                        // that fit.
                        let mut rooms = self.rooms();
                        let mut len = 4;
                        let fit = rooms
                            .iter()
                            .take_while(|r| {
                                len += 1 + r.name.len() + 4;
                                len <= MIN_MAX_FRAME as usize
                            })
                            .count();
                        rooms.truncate(fit);
                        let msg = Message::RoomList { rooms };
                        let mut frame = BytesMut::with_capacity(msg.encoded_len());
                        msg.encode(&mut frame);
                        let frame = frame.freeze();
                        self.rooms.list = Some(frame.clone());
                        frame
                    }
                };
                let _ = self.deliver_with(id, |session| session.send_frame(&frame));
            }
        }
    }

    fn on_join(&mut self, id: ConnId, from: &Utf8, room: Utf8) {
        if let Err(e) = validate_name(&room) {
            let text = format!("{room:?} is not a room name: {e}");
            self.error_to(id, ErrorCode::RoomRefused, text);
            return;
        }
        let key: Key = name_key(&room).into();
        if self.in_room(id, &key) {
            // Joined already: the answer is the same, the list again.
            self.send_members(id, &key);
            return;
        }
        let member_key = name_key(from);
        let limits = &self.config.rooms;
        let size = self.rooms.size(&key);
        let refusal = match self.rooms.map.get(&key) {
            Some(r) if r.removed.contains(&member_key) => Some((
                ErrorCode::RoomRefused,
                format!("the operator removed you from #{}", r.name),
            )),
            Some(r) if !self.rooms.is_default(&key) && size >= limits.max_members => Some((
                ErrorCode::LimitExceeded,
                format!("#{} is full ({size} members)", r.name),
            )),
            Some(_) => None,
            None if limits.creation == RoomCreation::Operator => Some((
                ErrorCode::RoomRefused,
                format!("there is no room #{room}, and only the operator opens rooms here"),
            )),
            None if self.rooms.map.len() >= limits.max_rooms => Some((
                ErrorCode::LimitExceeded,
                format!("the server has {} rooms, its limit", self.rooms.map.len()),
            )),
            None => None,
        };
        let in_default = self.in_room(id, &self.rooms.default_key);
        let count = self.rooms.joined.get(&id).map_or(0, Vec::len) + usize::from(in_default);
        let refusal = refusal.or_else(|| {
            (count >= limits.max_rooms_per_peer).then(|| {
                let text = format!("you are in {count} rooms, the most this server allows");
                (ErrorCode::LimitExceeded, text)
            })
        });
        // The answer must fit every client's frame limit; past that the room is full.
        let mut names = self.member_names(&key, None);
        names.push(from.clone());
        let shown = self.rooms.map.get(&key).map_or(&room, |r| &r.name).clone();
        let answer = Message::RoomMembers { room: shown, names };
        let refusal = refusal.or_else(|| {
            (answer.encoded_len() > MIN_MAX_FRAME as usize).then(|| {
                let text = format!("#{room} is full: its member list fills a frame");
                (ErrorCode::LimitExceeded, text)
            })
        });
        if let Some((code, text)) = refusal {
            self.error_to(id, code, text);
            return;
        }
        self.rooms
            .map
            .entry(key.clone())
            .or_insert_with(|| Room::new(&room, false));
        self.enter_room(id, &key, from);
        let news = News::Member {
            kind: MemberKind::Joined,
            name: from,
        };
        self.tell_room(&key, &news, Some(id));
        let _ = self.deliver(id, &answer);
    }

    fn send_members(&mut self, id: ConnId, key: &str) {
        let room = self.rooms.map[key].name.clone();
        let result = if self.rooms.is_default(key) {
            let Some(me) = self.peer_name(id).cloned() else {
                return;
            };
            let (count, entries) = self.default_room_listing(&me, true);
            let names = Vec::new();
            let msg = Message::RoomMembers { room, names };
            self.deliver_with(id, |s| s.send_listing(&msg, (count, &entries)))
        } else {
            let names = self.member_names(key, Some(id));
            self.deliver(id, &Message::RoomMembers { room, names })
        };
        if result == Err(SendError::TooLarge) {
            // Only for the default room after `welcome` (a join checks first): thousands of
            // long names, more than the client's frame limit (at the 1 MiB minimum, about
            // 8000 names of 32 four-byte characters; `welcome` itself would not fit).
            let text = "the member list is too large for your frame limit".to_owned();
            self.error_to(id, ErrorCode::LimitExceeded, text);
        }
    }

    fn not_member(&mut self, id: ConnId, room: &Utf8) {
        let text = format!("you are not in #{room}");
        self.error_to(id, ErrorCode::NotMember, text);
    }

    fn conn_speaks_rooms(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.session.rooms())
    }

    /// Tells every member of the room `key` (but `skip`) the news, in the form each speaks:
    /// at most two frames, each encoded once.
    pub(super) fn tell_room(&mut self, key: &str, news: &News, skip: Option<ConnId>) {
        let Some(room) = self.rooms.map.get(key) else {
            return;
        };
        if self.rooms.is_default(key) && matches!(news, News::Member { .. }) {
            // Joins and departures of the default room are told in batches (`announce`).
            let name = room.name.clone();
            self.announce_later(&name, news, skip);
            return;
        }
        let (mut speakers, mut plain) = std::mem::take(&mut self.targets);
        speakers.clear();
        plain.clear();
        let mut sort = |conn: ConnId, speaks_rooms: bool| {
            if Some(conn) != skip {
                if speaks_rooms {
                    speakers.push(conn);
                } else {
                    plain.push(conn);
                }
            }
        };
        if self.rooms.is_default(key) {
            for &conn in self.names.values() {
                match self.conns.get(&conn) {
                    Some(c) if c.in_default_room => sort(conn, c.session.rooms()),
                    _ => {}
                }
            }
        } else {
            room.members.values().for_each(|m| sort(m.conn, m.rooms));
        }
        let name = room.name.clone();
        for (targets, speaks_rooms) in [(&speakers, true), (&plain, false)] {
            if !targets.is_empty() {
                self.send_to_all(targets, &news.render(&name, speaks_rooms));
            }
        }
        self.targets = (speakers, plain);
    }
}
