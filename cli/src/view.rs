//! How client events look, shared by `chat`, `send`, `recv` and `say`.
//!
//! Every string in a client event came from the network: each is shown through
//! [`crate::safe`] (messages with [`text`], everything else with [`inline`]).

use serde_json::json;
use tidings_smol::{ClientEvent, Direction};

use crate::out::{hex, size, Out};
use crate::safe::{inline, text as message, List};

/// Prints `ev` (progress moves the transfer's bar).
pub fn show(out: &mut Out, ev: &ClientEvent) {
    if let ClientEvent::Connected { server, .. } = ev {
        // Lines from the server's own participant stand out.
        out.style_mut().set_operator(server);
    }
    match ev {
        // A secret, and nothing a person needs to see: the chat keeps it for reconnecting.
        ClientEvent::Token(_) => {}
        ClientEvent::Connected {
            name,
            server,
            online,
        } => out.event(
            "connected",
            format_args!(
                "connected to {} as {}; online: {}",
                inline(server),
                inline(name),
                List(online)
            ),
            || json!({"name": name, "server": server, "online": online}),
        ),
        ClientEvent::Text {
            from,
            private,
            text,
        } => out.event(
            "text",
            format_args!(
                "{}{}: {}",
                out.style().name(from, inline(from)),
                if *private {
                    out.style().private(" (private)").to_string()
                } else {
                    String::new()
                },
                message(text)
            ),
            || json!({"from": from, "private": private, "text": text}),
        ),
        ClientEvent::Blob {
            from,
            private,
            media_type,
            data,
        } => out.event(
            "blob",
            format_args!(
                "{} sent {} of {}",
                inline(from),
                size(data.len() as u64),
                inline(media_type)
            ),
            || json!({"from": from, "private": private, "media_type": media_type, "len": data.len()}),
        ),
        ClientEvent::Joined(name) => out.event(
            "joined",
            format_args!("{} joined", out.style().name(name, inline(name))),
            || json!({"name": name}),
        ),
        ClientEvent::Left(name) => {
            out.event(
                "left",
                format_args!("{} left", out.style().name(name, inline(name))),
                || json!({"name": name}),
            )
        }
        ClientEvent::RoomText { room, from, text } => room_line(out, room, from, text),
        ClientEvent::RoomEntered {
            room,
            members,
            default,
        } => out.event(
            "entered",
            format_args!(
                "in {} ({}): {}",
                Room(room),
                count(members.len(), "member"),
                List(members)
            ),
            || json!({"room": room, "members": members, "default": default}),
        ),
        ClientEvent::RoomJoined { room, name } => member(out, room, name, "joined", false),
        ClientEvent::RoomLeft {
            room,
            name,
            removed,
        } => member(out, room, name, "left", *removed),
        ClientEvent::RoomExited { room, removed } => out.event(
            "exited",
            format_args!(
                "{} {}",
                if *removed {
                    "the operator removed you from"
                } else {
                    "you left"
                },
                Room(room)
            ),
            || json!({"room": room, "removed": removed}),
        ),
        ClientEvent::RoomList(rooms) => out.event(
            "rooms",
            format_args!("rooms ({}): {}", rooms.len(), RoomCounts(rooms)),
            || {
                let rooms: Vec<_> = rooms
                    .iter()
                    .map(|r| json!({"name": r.name, "members": r.members}))
                    .collect();
                json!({ "rooms": rooms })
            },
        ),
        ClientEvent::PeerList(names) => out.event(
            "peers",
            format_args!("online ({}): {}", names.len(), List(names)),
            || json!({"online": names}),
        ),
        ClientEvent::Notice { code, text } => out.event(
            "notice",
            format_args!("server: {} ({})", message(text), code.name()),
            || json!({"code": code.name(), "text": text}),
        ),
        ClientEvent::Offered {
            id,
            from,
            name,
            size: len,
        } => out.event(
            "offer",
            format_args!(
                "{} offers {} ({}) as transfer {id}",
                inline(from),
                inline(name),
                size(*len)
            ),
            || json!({"id": id, "from": from, "name": name, "size": len}),
        ),
        ClientEvent::Started {
            id,
            direction,
            peer,
            name,
            size: len,
            offset,
        } => {
            let shown_peer = if peer.is_empty() { "the server" } else { peer };
            out.event(
                "started",
                StartedLine {
                    direction: *direction,
                    name,
                    size: *len,
                    offset: *offset,
                    peer: shown_peer,
                },
                || json!({"id": id, "direction": dir(*direction), "peer": peer, "name": name,
                       "size": len, "offset": offset}),
            );
            out.bar_start(*id, name, *len, *offset);
        }
        ClientEvent::Progress(p) => out.bar_progress(p.id, p.done, p.total, p.bytes_per_sec),
        ClientEvent::Relayed { id, peer, relay_id } => out.event(
            "relayed",
            format_args!("{} sees it as transfer {relay_id}", inline(peer)),
            || json!({"id": id, "peer": peer, "relay_id": relay_id}),
        ),
        ClientEvent::Checking {
            id,
            direction,
            done,
            total,
        } => {
            // Its own bar, beside the transfer's: no byte moves while the kept part is hashed.
            let key = checking_key(*id);
            if out.is_json() {
                out.event("checking", "", || {
                    json!({"id": id, "direction": dir(*direction), "done": done, "total": total})
                });
            } else if done < total {
                out.bar_start_once(key, "checking the kept part", *total);
                out.bar_progress(key, *done, *total, 0);
            } else {
                out.bar_end(key);
                // The transfer's rate counts from here: no byte moved while checking.
                out.bar_restart_rate(*id);
                out.event(
                    "checked",
                    format_args!("checked the kept {} of transfer {id}", size(*total)),
                    || json!({"id": id}),
                );
            }
        }
        ClientEvent::Sent {
            id,
            peer,
            name,
            digest,
        } => {
            out.bar_end(*id);
            let shown_peer = if peer.is_empty() { "the server" } else { peer };
            out.event(
                "sent",
                format_args!(
                    "sent {} to {}; the receiver confirmed sha256 {}",
                    inline(name),
                    inline(shown_peer),
                    hex(digest)
                ),
                || json!({"id": id, "peer": peer, "name": name, "sha256": hex(digest)}),
            )
        }
        ClientEvent::Received { id, path, digest } => {
            out.bar_end(*id);
            out.event(
                "received",
                format_args!(
                    "received {} (sha256 {})",
                    inline(&path.to_string_lossy()),
                    hex(digest)
                ),
                || json!({"id": id, "path": path, "sha256": hex(digest)}),
            )
        }
        ClientEvent::TransferFailed {
            id,
            direction,
            code,
            reason,
            by_peer,
            kept,
        } => {
            out.bar_end(*id);
            // A failure while the kept part was being checked leaves no bar behind.
            out.bar_end(checking_key(*id));
            let keep = kept
                .as_ref()
                .map(|p| format!("; kept {} for resuming", inline(&p.to_string_lossy())))
                .unwrap_or_default();
            out.event(
                "failed",
                format_args!(
                    "transfer {id} failed ({}{}): {}{keep}",
                    code.name(),
                    if *by_peer { ", by the other side" } else { "" },
                    message(reason)
                ),
                || json!({"id": id, "direction": dir(*direction), "code": code.name(),
                       "reason": reason, "by_peer": by_peer, "kept": kept}),
            )
        }
        ClientEvent::Closed {
            code,
            reason,
            by_peer,
        } => out.event(
            "closed",
            format_args!("disconnected ({}): {}", code.name(), message(reason)),
            || json!({"code": code.name(), "reason": reason, "by_peer": by_peer}),
        ),
    }
}

/// A room's name as people read it: `#name`, shown safely.
pub struct Room<'a>(pub &'a str);

impl std::fmt::Display for Room<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", inline(self.0))
    }
}

/// `#lobby (3), #team (2)`.
struct RoomCounts<'a>(&'a [tidings_host::client::RoomCount]);

impl std::fmt::Display for RoomCounts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} ({})", Room(&r.name), r.members)?;
        }
        Ok(())
    }
}

/// `3 members`, `1 member`.
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// A line said in `room`: `#team alice: hi` (JSON: a `text` event with its room).
pub fn room_line(out: &mut Out, room: &str, from: &str, text: &str) {
    out.event(
        "text",
        format_args!(
            "{} {}: {}",
            Room(room),
            out.style().name(from, inline(from)),
            message(text)
        ),
        || json!({"from": from, "private": false, "room": room, "text": text}),
    );
}

/// `bob joined #team`, `bob left #team`, `bob was removed from #team` (`kind`: the JSON
/// event, `joined` or `left`).
pub fn member(out: &mut Out, room: &str, name: &str, kind: &str, removed: bool) {
    let verb = if removed { "was removed from" } else { kind };
    out.event(
        kind,
        format_args!(
            "{} {verb} {}",
            out.style().name(name, inline(name)),
            Room(room)
        ),
        || json!({"name": name, "room": room, "removed": removed}),
    );
}

/// The members of `room` as we know them (`/who`).
pub fn members(out: &mut Out, room: &str, members: &[String]) {
    out.event(
        "members",
        format_args!(
            "{} ({}): {}",
            Room(room),
            count(members.len(), "member"),
            List(members)
        ),
        || json!({"room": room, "members": members}),
    );
}

/// Our own line in `room`, shown as the others see it: `#team alice: hi`.
pub fn said_in(out: &mut Out, from: &str, room: &str, text: &str) {
    out.event(
        "said",
        format_args!(
            "{} {}: {}",
            Room(room),
            out.style().name(from, inline(from)),
            message(text)
        ),
        || json!({"from": from, "to": "", "room": room, "text": text}),
    );
}

/// The bar of a kept part being checked, apart from the transfer's own bar.
fn checking_key(id: u64) -> u64 {
    id | 1 << 63
}

/// After offering: who must accept, and how long we wait (text mode counts it down on a bar).
pub fn waiting(out: &mut Out, number: u64, peer: &str, name: &str, timeout_secs: u64) {
    out.event(
        "waiting",
        format_args!(
            "waiting for {} to accept {} (transfer {number}, {timeout_secs} s)",
            inline(peer),
            inline(name)
        ),
        || json!({"id": number, "peer": peer, "name": name, "timeout_secs": timeout_secs}),
    );
}

/// `sending a.txt (3 B) to bob, resuming at 1 KiB`: a transfer began (`peer` as shown).
pub struct StartedLine<'a> {
    /// Sending or receiving.
    pub direction: Direction,
    /// The file's name (from the network: shown escaped).
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Where it resumes (0: from the start).
    pub offset: u64,
    /// The other side, as shown.
    pub peer: &'a str,
}

impl std::fmt::Display for StartedLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, prep) = match self.direction {
            Direction::Send => ("sending", "to"),
            Direction::Receive => ("receiving", "from"),
        };
        let (name, peer) = (inline(self.name), inline(self.peer));
        write!(f, "{verb} {name} ({}) {prep} {peer}", size(self.size))?;
        if self.offset > 0 {
            write!(f, ", resuming at {}", size(self.offset))?;
        }
        Ok(())
    }
}

/// How a transfer's direction is named in JSON events.
pub fn dir(d: Direction) -> &'static str {
    match d {
        Direction::Send => "send",
        Direction::Receive => "receive",
    }
}

/// Our own message, shown as the others see it: `alice: hi`, or `alice → bob: hi` when private.
pub fn said(out: &mut Out, from: &str, to: &str, text: &str) {
    let arrow = if to.is_empty() {
        String::new()
    } else {
        out.style()
            .private(format_args!(" → {}", inline(to)))
            .to_string()
    };
    out.event(
        "said",
        format_args!(
            "{}{arrow}: {}",
            out.style().name(from, inline(from)),
            message(text)
        ),
        || json!({"from": from, "to": to, "text": text}),
    );
}

/// `/send` (in `chat` or the server's console) queued `files` and empty `folders` of `path`
/// for `peer`.
pub fn offering(out: &Out, peer: &str, path: &str, files: usize, folders: usize) {
    let what = match (files, folders) {
        (1, 0) => inline(path).to_string(),
        (_, 0) => format!("{} of {}", count(files, "file"), inline(path)),
        _ => format!(
            "{} and {} of {}",
            count(files, "file"),
            count(folders, "empty folder"),
            inline(path)
        ),
    };
    out.event(
        "offering",
        format_args!("offering {what} to {}", inline(peer)),
        || json!({"peer": peer, "path": path, "files": files, "folders": folders}),
    );
}
