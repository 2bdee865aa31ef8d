//! §6.10 rooms (protocol 1.1, the capability `rooms`): joining, room chat, refusals, room
//! names compared by key, how a 1.0 client hears the default room, and room messages without
//! the capability. A server that does not announce `rooms` leaves these UNIMPLEMENTED: rooms
//! are optional, a 1.0 server is still a conforming server.

use super::{case, closes_with, non_fatal_error, welcomed, Case, Ctx, Needs, Outcome, Pass};
use crate::client::{Check, Client};
use crate::fail;
use crate::wire::{capability, code, MemberKind, Message, MIN_MAX_FRAME};

pub(super) static CASES: &[Case] = &[
    case(
        "6.10-join-members",
        "join answers room-members (the joiner last), the others hear member joined; leave answers member left to all",
        None,
        Needs::Stream,
        join_members,
    ),
    case(
        "6.10-room-text-routing",
        "room-text reaches the room's other members stamped, not the sender, not another room",
        None,
        Needs::Stream,
        room_text_routing,
    ),
    case(
        "6.10-not-member",
        "room-text or leave outside the room: error not-member, the connection stays open",
        None,
        Needs::Stream,
        not_member,
    ),
    case(
        "6.10-room-name-invalid",
        "a join of a name that breaks §6.1: error room-refused, the connection stays open",
        None,
        Needs::Stream,
        room_name_invalid,
    ),
    case(
        "6.10-look-alike-room",
        "room names compare by the key of names, and keep their first spelling",
        None,
        Needs::Stream,
        look_alike_room,
    ),
    case(
        "6.10-legacy-default-room",
        "a client without rooms hears a 1.1 member's room-text in the default room as text, and the other way round",
        None,
        Needs::Stream,
        legacy_default_room,
    ),
    case(
        "6.10-unnegotiated",
        "a room message from a client that did not announce rooms: unexpected-message",
        None,
        Needs::Stream,
        unnegotiated,
    ),
];

/// A client that announced `rooms` and was welcomed by a server that did too; it has taken
/// the default room's `room-members` (its first room message) and knows that room's name.
struct Member {
    c: Client,
    lobby: String,
}

/// The verdict when the server does not speak rooms.
fn no_rooms() -> Pass {
    Pass::Unimplemented("the server does not announce the capability rooms (§6.10.1)".into())
}

/// Registers a 1.1 client (capabilities files, blobs, rooms) under a name made from `base`;
/// `None` when the server does not announce `rooms`.
fn member(ctx: &mut Ctx, base: &str) -> Check<Option<Member>> {
    let name = ctx.name(base);
    let mut c = ctx.connect(&name)?;
    c.preamble()?;
    c.send(&Message::Hello {
        name: name.clone(),
        capabilities: capability::FILES | capability::BLOBS | capability::ROOMS,
        max_frame: MIN_MAX_FRAME,
    })?;
    let (mut c, w) = welcomed(c)?;
    if w.capabilities & capability::ROOMS == 0 {
        return Ok(None);
    }
    let first = c.next("the default room's room-members, right after welcome (§6.10.2)")?;
    let Message::RoomMembers { room, names } = first else {
        fail!(
            "{name}: the first message after welcome is {}, not the default room's room-members (§6.10.2)",
            first.name()
        );
    };
    if names.last() != Some(&name) || names != w.online {
        fail!("{name}: room-members of the default room {room:?} is {names:?}, welcome.online {:?}: the same list, the client last (§6.2, §6.10.2)", w.online);
    }
    Ok(Some(Member { c, lobby: room }))
}

/// [`member`], or return the UNIMPLEMENTED verdict from the case.
macro_rules! member {
    ($ctx:expr, $base:expr) => {
        match member($ctx, $base)? {
            Some(m) => m,
            None => return Ok(no_rooms()),
        }
    };
}

fn join(room: &str) -> Message {
    Message::Join { room: room.into() }
}

fn room_text(room: &str, text: &str) -> Message {
    Message::RoomText {
        room: room.into(),
        peer: String::new(),
        text: text.into(),
    }
}

/// Sends `join room` and waits for the answer: the room's name as the server spells it and
/// its members.
fn joins(c: &mut Client, room: &str) -> Check<(String, Vec<String>)> {
    c.send(&join(room))?;
    c.expect(
        &format!("room-members answering join {room:?}"),
        |m| match m {
            Message::RoomMembers { room, names } => Some((room.clone(), names.clone())),
            _ => None,
        },
    )
}

/// Waits for `member` `kind` about `name` in `room` (compared by the exact spelling the
/// server sends: the room's own).
fn hears_member(c: &mut Client, kind: MemberKind, room: &str, name: &str) -> Check {
    c.expect(
        &format!("member {} {room:?} {name:?}", kind.name()),
        |m| match m {
            Message::Member {
                kind: k,
                room: r,
                name: n,
            } if *k == kind && r == room && n == name => Some(()),
            _ => None,
        },
    )
}

/// The sender of the `room-text` in `room` saying `want`.
fn room_text_from(c: &mut Client, room: &str, want: &str) -> Check<String> {
    c.expect(&format!("room-text {want:?} in {room:?}"), |m| match m {
        Message::RoomText {
            room: r,
            peer,
            text,
        } if r == room && text == want => Some(peer.clone()),
        _ => None,
    })
}

/// Whether `got` holds a text or room-text saying `said`.
fn heard(got: &[Message], said: &str) -> bool {
    got.iter().any(|m| match m {
        Message::Text { text, .. } | Message::RoomText { text, .. } => text == said,
        _ => false,
    })
}

fn join_members(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "opener");
    let mut b = member!(ctx, "follower");
    let room = ctx.name("room");
    let (spelled, names) = joins(&mut a.c, &room)?;
    if spelled != room || names != [a.c.label.clone()] {
        fail!("join of the new room {room:?} answered room-members {spelled:?} {names:?}: the room as spelled, its one member (§6.10.4)");
    }
    let (_, names) = joins(&mut b.c, &room)?;
    let want = [a.c.label.clone(), b.c.label.clone()];
    if names != want {
        fail!("the second member's room-members is {names:?}, expected {want:?}: sorted by key, the joiner last (§6.10.3)");
    }
    hears_member(&mut a.c, MemberKind::Joined, &room, &b.c.label.clone())?;
    // A second join of a room one is in is a refresh: the list again, no news to others.
    let (_, again) = joins(&mut b.c, &room)?;
    if again != want {
        fail!("a second join answered room-members {again:?}, expected {want:?} again (§6.10.4 step 2)");
    }
    let seen = a.c.sync()?;
    if seen
        .iter()
        .any(|m| matches!(m, Message::Member { room: r, .. } if *r == room))
    {
        fail!("a refreshing join told the other members {seen:?} (§6.10.4 step 2: nothing else happens)");
    }
    let leaver = b.c.label.clone();
    b.c.send(&Message::Leave { room: room.clone() })?;
    hears_member(&mut b.c, MemberKind::Left, &room, &leaver)?;
    hears_member(&mut a.c, MemberKind::Left, &room, &leaver)?;
    Ok(Pass::Ok)
}

fn room_text_routing(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "talker");
    let mut b = member!(ctx, "hearer");
    let mut c = member!(ctx, "elsewhere");
    let room = ctx.name("room");
    let other = ctx.name("room");
    joins(&mut a.c, &room)?;
    joins(&mut b.c, &room)?;
    joins(&mut c.c, &other)?;
    let said = format!("in {room} only");
    a.c.send(&room_text(&room, &said))?;
    let from = room_text_from(&mut b.c, &room, &said)?;
    if from != a.c.label {
        fail!(
            "room-text from {:?} reached {:?} as from {from:?} (§6.10.3: the server stamps the sender)",
            a.c.label,
            b.c.label
        );
    }
    if heard(&a.c.sync()?, &said) {
        fail!("the sender got its own room-text back (§6.10.4: to every OTHER member)");
    }
    // A marker in the default room follows the room's text on every connection it could
    // have taken: once c has the marker, it would have had the text.
    let marker = format!("everyone, after {room}");
    a.c.send(&room_text(&a.lobby, &marker))?;
    room_text_from(&mut c.c, &c.lobby.clone(), &marker)?;
    let overheard = c.c.sync()?;
    if heard(&overheard, &said) {
        fail!(
            "{:?}, in another room, heard {room:?}'s room-text (§6.10.4)",
            c.c.label
        );
    }
    Ok(Pass::Ok)
}

fn not_member(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "outsider");
    let mut b = member!(ctx, "insider");
    let room = ctx.name("room");
    joins(&mut b.c, &room)?;
    a.c.send(&room_text(&room, "let me in"))?;
    non_fatal_error(
        &mut a.c,
        code::NOT_MEMBER,
        "§6.10.4: room-text outside the room",
    )?;
    a.c.send(&Message::Leave { room: room.clone() })?;
    non_fatal_error(
        &mut a.c,
        code::NOT_MEMBER,
        "§6.10.4: leave outside the room",
    )?;
    if heard(&b.c.sync()?, "let me in") {
        fail!("a non-member's room-text reached the room (§6.10.4)");
    }
    Ok(Pass::Ok)
}

fn room_name_invalid(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "namer");
    let long = "r".repeat(33);
    for bad in [
        "-room",
        ".room",
        "two words",
        "",
        long.as_str(),
        "room\u{200b}",
    ] {
        a.c.send(&join(bad))?;
        non_fatal_error(
            &mut a.c,
            code::ROOM_REFUSED,
            &format!("§6.10.4 step 1: join {bad:?} breaks §6.1"),
        )?;
    }
    Ok(Pass::Ok)
}

fn look_alike_room(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "first");
    let mut b = member!(ctx, "second");
    // `team…` spelled `Team…` by a, and with a full-width `Ｔ` and a Cyrillic `Е` by b.
    let base = ctx.name("team");
    let first = format!("T{}", &base[1..]);
    let look_alike = format!("\u{ff34}\u{0415}{}", &base[2..]);
    joins(&mut a.c, &first)?;
    let (spelled, names) = joins(&mut b.c, &look_alike)?;
    if names.len() != 2 || names.last() != Some(&b.c.label) {
        fail!("join {look_alike:?} after {first:?} answered room-members {names:?}: another room (§6.10.2: rooms compare by the key of §6.1)");
    }
    if spelled != first {
        fail!("the room is shown as {spelled:?}, first spelled {first:?} (§6.10.2)");
    }
    hears_member(&mut a.c, MemberKind::Joined, &first, &b.c.label.clone())?;
    Ok(Pass::Ok)
}

fn legacy_default_room(ctx: &mut Ctx) -> Outcome {
    let mut a = member!(ctx, "modern");
    let (mut old, _) = ctx.join("classic")?;
    let said = format!("hello from {}", a.c.label);
    a.c.send(&room_text(&a.lobby, &said))?;
    let (from, private) = old.expect("the 1.1 member's room-text, as text", |m| match m {
        Message::Text {
            peer,
            private,
            text,
        } if *text == said => Some((peer.clone(), *private)),
        _ => None,
    })?;
    if from != a.c.label || private {
        fail!("a 1.0 client heard the default room's room-text from {:?} as from {from:?}, private {private} (§6.10.2: as text, private = 0)", a.c.label);
    }
    let answer = format!("hello from {}", old.label);
    old.send(&Message::Text {
        peer: String::new(),
        private: false,
        text: answer.clone(),
    })?;
    let from = room_text_from(&mut a.c, &a.lobby.clone(), &answer)?;
    if from != old.label {
        fail!("a 1.0 client's broadcast reached a 1.1 member as from {from:?} (§6.10.2)");
    }
    Ok(Pass::Ok)
}

fn unnegotiated(ctx: &mut Ctx) -> Outcome {
    let (mut c, w) = ctx.join("plain")?;
    if w.capabilities & capability::ROOMS == 0 {
        return Ok(no_rooms());
    }
    c.send(&join("anywhere"))?;
    closes_with(
        &mut c,
        "error",
        code::UNEXPECTED_MESSAGE,
        "§6.10.1: rooms were not negotiated",
    )?;
    Ok(Pass::Ok)
}
