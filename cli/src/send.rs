//! `tidings send`: files and folders to one or more peers, one transfer per file and
//! recipient, with one progress bar for the whole and a countdown while offers wait.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_lite::future;
use tidings_disk::{walk, EntryKind, OpenSource, Source};
use tidings_smol::{Client, ClientConfig, ClientEvent, Direction, ErrorCode};

use crate::exit::{io_reason, CliError, Exit};
use crate::out::{Out, TOTAL_BAR, WAIT_LINE};
use crate::simple::{connect, not_to_self};
use crate::view::{show, waiting};
use crate::SendArgs;

/// Offers out at once: enough to keep the connection busy with small files, few enough
/// that a large tree stays far below the session's limit of concurrent transfers (32) and
/// that offers do not sit waiting for their accept timeout behind a long queue.
const IN_FLIGHT: usize = 8;

/// One thing to send: a file or an empty folder, with the name it is offered under.
pub(crate) struct Item {
    path: PathBuf,
    /// A relative path below the folder's parent (a folder's file), or `None` for a file
    /// named on the command line (offered under its base name).
    name: Option<String>,
    kind: EntryKind,
}

impl Item {
    fn size(&self) -> u64 {
        match self.kind {
            EntryKind::File(n) => n,
            EntryKind::EmptyFolder => 0,
        }
    }

    /// Whether it is an empty folder rather than a file.
    pub(crate) fn is_folder(&self) -> bool {
        self.kind == EntryKind::EmptyFolder
    }

    /// The name people read: the relative path, or the file's base name.
    pub(crate) fn shown(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.path.file_name().map_or_else(
                || self.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }

    /// Opens it for offering, under its relative path when it has one.
    pub(crate) fn open(&self) -> std::io::Result<Source> {
        match (&self.name, self.kind) {
            (None, _) => Source::open(&self.path),
            (Some(n), EntryKind::File(_)) => Source::open_as(&self.path, n),
            (Some(n), EntryKind::EmptyFolder) => Source::folder(&self.path, n),
        }
    }
}

/// A transfer under way: which item to whom, and how far.
struct Running {
    item: usize,
    to: String,
    /// The number people see: the receiver's id once the server said it (`relayed`).
    number: u64,
    /// Whether the server said it (a server without the extension never does).
    relayed: bool,
    offered: Instant,
    started: bool,
    /// Where it started: bytes below were kept by the receiver and do not move.
    offset: u64,
    /// Bytes moved since `offset`.
    done: u64,
}

/// Lists every file and empty folder named on the command line; a folder is walked, and
/// what is skipped in it is said.
fn list(paths: &[PathBuf], out: &mut Out) -> Result<Vec<Item>, CliError> {
    let (items, skipped) = gather(paths)?;
    report_skipped(&skipped, out);
    Ok(items)
}

/// Every file and empty folder below `paths` (a folder is walked; each item is opened once,
/// so that an unreadable one is found before anything is offered), and what was skipped:
/// links and special files inside a folder. Blocking: `chat` runs it on a thread of its own.
pub(crate) fn gather(paths: &[PathBuf]) -> Result<(Vec<Item>, Vec<PathBuf>), CliError> {
    let unreadable = |p: &PathBuf, e: &std::io::Error| {
        CliError::new(Exit::File, format!("{}: {}", p.display(), io_reason(e)))
    };
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| unreadable(path, &e))?;
        if !meta.is_dir() {
            // Every file must be readable before we bother the server.
            let source = Source::open(path).map_err(|e| unreadable(path, &e))?;
            items.push(Item {
                path: path.clone(),
                name: None,
                kind: EntryKind::File(source.size),
            });
            continue;
        }
        let found = walk(path).map_err(|e| unreadable(path, &e))?;
        skipped.extend(found.skipped);
        for (at, name, kind) in found.entries {
            let item = Item {
                path: at,
                name: Some(name),
                kind,
            };
            item.open().map_err(|e| unreadable(&item.path, &e))?;
            items.push(item);
        }
    }
    Ok((items, skipped))
}

/// Says which paths inside a folder were not sent.
pub(crate) fn report_skipped(skipped: &[PathBuf], out: &Out) {
    for skipped in skipped {
        out.event(
            "skipped",
            format_args!(
                "skipped {} (not a regular file or folder)",
                crate::safe::inline(&skipped.to_string_lossy())
            ),
            || serde_json::json!({"path": skipped}),
        );
    }
}

/// Shows the sender's events under the number both sides know (see [`Running::number`]):
/// `number` gives it for a local id of ours, `None` when there is none (yet).
pub(crate) fn renumber(ev: &mut ClientEvent, number: impl Fn(u64) -> Option<u64>) {
    let id = match ev {
        ClientEvent::Started { id, .. }
        | ClientEvent::Sent { id, .. }
        | ClientEvent::TransferFailed { id, .. }
        | ClientEvent::Checking { id, .. } => id,
        ClientEvent::Progress(p) => &mut p.id,
        _ => return,
    };
    if let Some(n) = number(*id) {
        *id = n;
    }
}

/// What `/send` in `chat` and the server's console have yet to offer: a folder's files wait
/// here and go out [`IN_FLIGHT`] at a time (a session refuses more than 32 transfers at
/// once), each when one of the earlier ones ended. `K` names a running transfer.
pub(crate) struct Outbox<K> {
    queue: VecDeque<(String, Item)>,
    /// The offers out, and to whom.
    running: HashMap<K, String>,
}

impl<K: Hash + Eq> Outbox<K> {
    pub(crate) fn new() -> Self {
        Outbox {
            queue: VecDeque::new(),
            running: HashMap::new(),
        }
    }

    /// Queues `items` for `to`.
    pub(crate) fn add(&mut self, to: &str, items: Vec<Item>) {
        self.queue
            .extend(items.into_iter().map(|item| (to.to_string(), item)));
    }

    /// The next item to offer now, if any waits and there is room.
    pub(crate) fn due(&mut self) -> Option<(String, Item)> {
        if self.running.len() >= IN_FLIGHT {
            return None;
        }
        self.queue.pop_front()
    }

    /// An offer to `to` went out under `key`.
    pub(crate) fn started(&mut self, key: K, to: String) {
        self.running.insert(key, to);
    }

    /// Whether `key` is one of ours and running.
    pub(crate) fn is_running(&self, key: &K) -> bool {
        self.running.contains_key(key)
    }

    /// The transfer `key` ended: to whom it went, if it was one of ours.
    pub(crate) fn ended(&mut self, key: &K) -> Option<String> {
        self.running.remove(key)
    }

    /// Forgets what still waits for `to` (who is not online, say); how many items that was.
    pub(crate) fn drop_for(&mut self, to: &str) -> usize {
        let before = self.queue.len();
        self.queue.retain(|(t, _)| t != to);
        before - self.queue.len()
    }

    /// Items not yet offered (dropped when the connection is lost).
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }
}

/// Says that `dropped` queued items for `to` will not be offered, and why.
pub(crate) fn report_dropped(out: &Out, to: &str, dropped: usize, why: &str) {
    if dropped == 0 {
        return;
    }
    out.event(
        "error",
        format_args!(
            "{dropped} more file(s) for {} not offered: {}",
            crate::safe::inline(to),
            crate::safe::inline(why)
        ),
        || serde_json::json!({"message": format!("files not offered: {why}"), "peer": to, "files": dropped}),
    );
}

pub async fn send(mut args: SendArgs, out: &mut Out) -> Result<(), CliError> {
    for to in &args.to {
        not_to_self(&args.conn.name, to, "send files to")?;
    }
    // `--to bob --to BOB` names one person (the server's name key): each file goes once.
    let mut seen = std::collections::HashSet::new();
    args.to
        .retain(|to| seen.insert(tidings_core::name::name_key(to)));
    let items = list(&args.files, out)?;
    let mut config = ClientConfig::default();
    config.session.transfer.offer_timeout = Duration::from_secs(args.accept_timeout);
    // Which `--server` answered: errors name it.
    let mut at = 0;
    let client = connect(&args.conn, &mut config, true, out, &mut at).await?;
    if let Some(room) = args.room.clone() {
        // The room's other members as the server listed them when we came in (spec: no room
        // offer on the wire; one ordinary transfer to each member).
        let members = match crate::simple::enter_room(&client, &room, out).await {
            Ok(members) => members,
            Err(e) => {
                client.close().await;
                return Err(e);
            }
        };
        let me = tidings_core::name::name_key(client.name());
        args.to = members
            .into_iter()
            .filter(|m| tidings_core::name::name_key(m) != me)
            .collect();
        if args.to.is_empty() {
            client.close().await;
            return Err(CliError::new(
                Exit::Transfer,
                format!("nobody else is in #{}", crate::safe::inline(&room)),
            ));
        }
    }
    let result = run(
        &client,
        &args.conn.server.0[at].to_string(),
        &args,
        &items,
        out,
    )
    .await;
    out.status(WAIT_LINE, None);
    out.bar_end(TOTAL_BAR);
    client.close().await;
    let tally = result?;
    match &args.room {
        Some(room) => tally.room_summary(room, &args.to, out),
        None => tally.verdict(),
    }
}

/// A failed transfer: its code, to whom, and what to say.
struct Failure {
    code: ErrorCode,
    to: String,
    what: String,
}

/// How the transfers of a `send` ended (the connection stayed open).
struct Tally {
    /// Transfers, one per file and receiver.
    jobs: usize,
    failures: Vec<Failure>,
}

impl Tally {
    /// Every transfer must have succeeded: the first failure is the exit.
    fn verdict(self) -> Result<(), CliError> {
        let jobs = self.jobs;
        match self.failures.first() {
            None => Ok(()),
            Some(Failure {
                code: ErrorCode::UnknownPeer,
                what,
                ..
            }) => Err(CliError::new(Exit::UnknownPeer, what.clone())),
            Some(Failure { code, what, .. }) if jobs == 1 => Err(CliError::new(
                Exit::Transfer,
                format!("the transfer failed ({}): {what}", code.name()),
            )),
            Some(Failure { code, what, .. }) => Err(CliError::new(
                Exit::Transfer,
                format!(
                    "{} of {jobs} transfers failed; first ({}): {what}",
                    self.failures.len(),
                    code.name()
                ),
            )),
        }
    }

    /// To a room: says who took every file and who did not (and why); a failure only when
    /// nobody did.
    fn room_summary(self, room: &str, members: &[String], out: &Out) -> Result<(), CliError> {
        let failed = |m: &String| self.failures.iter().find(|f| &f.to == m);
        let took: Vec<String> = members
            .iter()
            .filter(|m| failed(m).is_none())
            .cloned()
            .collect();
        let missed: Vec<&Failure> = members.iter().filter_map(failed).collect();
        let room_shown = crate::view::Room(room);
        let mut line = format!(
            "{} of {} of {room_shown} took it",
            took.len(),
            crate::view::count(members.len(), "member")
        );
        if !took.is_empty() {
            line += &format!(": {}", crate::safe::List(&took));
        }
        // Each failure names its member.
        for f in &missed {
            line += &format!("; {} ({})", crate::safe::inline(&f.what), f.code.name());
        }
        out.event("summary", line, || {
            let missed: Vec<_> = missed
                .iter()
                .map(|f| serde_json::json!({"name": f.to, "code": f.code.name(), "reason": f.what}))
                .collect();
            serde_json::json!({"room": room, "took": took, "missed": missed})
        });
        if took.is_empty() {
            return Err(CliError::new(
                Exit::Transfer,
                format!("nobody in {room_shown} took it"),
            ));
        }
        Ok(())
    }
}

/// Sends every item to every recipient through `client`, connected to `server` (named in
/// errors).
async fn run(
    client: &Client,
    server: &str,
    args: &SendArgs,
    items: &[Item],
    out: &mut Out,
) -> Result<Tally, CliError> {
    // File by file, each to every recipient, so that all recipients move together.
    let mut queue: VecDeque<(usize, String)> = (0..items.len())
        .flat_map(|i| args.to.iter().map(move |to| (i, to.clone())))
        .collect();
    let jobs = queue.len();
    // The bytes to move: a resumed transfer takes its kept part off when it starts, so that
    // the bar never counts bytes that did not move (its rate would jump to GiB/s).
    let mut total: u64 = items.iter().map(Item::size).sum::<u64>() * args.to.len() as u64;
    out.one_bar();
    out.bar_start(TOTAL_BAR, "", total, 0);
    let mut running: HashMap<u64, Running> = HashMap::new();
    let mut finished_bytes = 0u64;
    let mut failures: Vec<Failure> = Vec::new();
    // A transfer that failed because our connection ended (the server vanished or stopped
    // answering) makes the exit 9, like any lost connection, not 6.
    let mut lost_with = false;
    let wait = crate::out::duration(Duration::from_secs(args.accept_timeout));
    loop {
        while running.len() < IN_FLIGHT {
            let Some((item, to)) = queue.pop_front() else {
                break;
            };
            let it = &items[item];
            let source = match it.open() {
                Ok(s) => s,
                Err(e) => {
                    failures.push(Failure {
                        code: ErrorCode::SourceFailed,
                        what: format!("{}: {}", it.shown(), io_reason(&e)),
                        to,
                    });
                    continue;
                }
            };
            let id = client
                .send_source(&to, source)
                .await
                .map_err(|e| CliError::from_runtime(e, server))?;
            tracing::debug!(id, path = %it.path.display(), to = %to, "offered");
            running.insert(
                id,
                Running {
                    item,
                    to,
                    number: id,
                    relayed: false,
                    offered: Instant::now(),
                    started: false,
                    offset: 0,
                    done: 0,
                },
            );
        }
        if running.is_empty() {
            break;
        }
        countdown(out, &running, items, args.accept_timeout);
        let tick = async {
            async_io::Timer::after(Duration::from_secs(1)).await;
            None
        };
        let Some(next) = future::or(async { Some(client.next_event().await) }, tick).await else {
            continue;
        };
        let Some(mut ev) = next else {
            return Err(CliError::lost(ErrorCode::PeerLost, "the connection ended"));
        };
        match &ev {
            ClientEvent::Relayed { id, relay_id, .. } => {
                if let Some(r) = running.get_mut(id) {
                    r.number = *relay_id;
                    r.relayed = true;
                    // People read the number in the waiting line; scripts get both events.
                    if out.is_json() {
                        show(out, &ev);
                    }
                    let name = items[r.item].shown();
                    waiting(out, r.number, &r.to, &name, args.accept_timeout);
                }
                continue;
            }
            ClientEvent::Started {
                id,
                direction: Direction::Send,
                offset,
                ..
            } => {
                if let Some(r) = running.get_mut(id) {
                    r.started = true;
                    r.offset = *offset;
                    total = total.saturating_sub(*offset);
                    out.bar_length(TOTAL_BAR, total);
                    let name = items[r.item].shown();
                    // To a room the one bar is every member's copies together: it says so.
                    let label = match &args.room {
                        Some(room) => format!(
                            "{name} to #{room} ({})",
                            crate::view::count(args.to.len(), "member")
                        ),
                        None => name,
                    };
                    out.bar_label(TOTAL_BAR, &label);
                }
                // The rate counts from the first byte that moves: not the wait for an
                // accept (a bar at 0 B for 12 s showed 3 MiB/s for a 300 MiB/s transfer).
                if running.values().filter(|r| r.started).count() == 1 {
                    out.bar_restart_rate(TOTAL_BAR);
                }
            }
            ClientEvent::Checking { done, total, .. } if done >= total => {
                // Re-hashing the kept part moved no byte either.
                out.bar_restart_rate(TOTAL_BAR);
            }
            ClientEvent::Progress(p) => {
                if let Some(r) = running.get_mut(&p.id) {
                    r.done = p.done.saturating_sub(r.offset);
                }
                let moving: u64 = running.values().map(|r| r.done).sum();
                out.bar_progress(TOTAL_BAR, finished_bytes + moving, total, 0);
            }
            // To a room, a member gone meanwhile fails only its own transfer.
            ClientEvent::Notice {
                code: ErrorCode::UnknownPeer,
                text,
            } if args.room.is_none() => return Err(CliError::new(Exit::UnknownPeer, text.clone())),
            ClientEvent::Closed { code, reason, .. } => return Err(CliError::lost(*code, reason)),
            _ => {}
        }
        // The transfer an end belongs to, by our own id: the number shown is the server's
        // word (`relayed`) and must not choose which of our transfers ended.
        let ended = match &ev {
            ClientEvent::Sent { id, .. } | ClientEvent::TransferFailed { id, .. } => Some(*id),
            _ => None,
        };
        renumber(&mut ev, |id| running.get(&id).map(|r| r.number));
        let ended = ended.and_then(|id| running.remove(&id));
        show(out, &ev);
        match ev {
            ClientEvent::Sent { .. } => {
                if let Some(r) = ended {
                    finished_bytes += items[r.item].size().saturating_sub(r.offset);
                    out.bar_progress(TOTAL_BAR, finished_bytes, total, 0);
                }
            }
            ClientEvent::TransferFailed {
                code,
                reason,
                by_peer,
                ..
            } => {
                if let Some(r) = ended {
                    lost_with |= !client.is_open();
                    let name = items[r.item].shown();
                    let what = if !r.started && code == ErrorCode::TransferTimeout && by_peer {
                        // The server's own offer timeout ended the wait first.
                        format!("{} did not accept {name} before the server gave up", r.to)
                    } else if !r.started && code == ErrorCode::TransferTimeout {
                        format!("{} did not accept {name} within {wait}", r.to)
                    } else if code == ErrorCode::UnknownPeer {
                        format!("{} is not online", r.to)
                    } else {
                        format!("{name} to {}: {reason}", r.to)
                    };
                    failures.push(Failure {
                        code,
                        to: r.to,
                        what,
                    });
                }
            }
            _ => {}
        }
    }
    if lost_with {
        // The session ended before the failures were delivered: Closed follows them.
        while let Some(ev) = client.next_event().await {
            show(out, &ev);
            if let ClientEvent::Closed { code, reason, .. } = ev {
                return Err(CliError::lost(code, &reason));
            }
        }
        return Err(CliError::lost(ErrorCode::PeerLost, "the connection ended"));
    }
    Ok(Tally { jobs, failures })
}

/// The countdown line: the oldest offer still waiting for its recipient, and how many more.
fn countdown(out: &mut Out, running: &HashMap<u64, Running>, items: &[Item], timeout: u64) {
    let mut waiting: Vec<&Running> = running.values().filter(|r| !r.started).collect();
    waiting.sort_by_key(|r| r.offered);
    let Some(first) = waiting.first() else {
        out.status(WAIT_LINE, None);
        return;
    };
    let left = timeout.saturating_sub(first.offered.elapsed().as_secs());
    let number = if first.relayed {
        format!(" (transfer {})", first.number)
    } else {
        String::new()
    };
    let more = match waiting.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    out.status(
        WAIT_LINE,
        Some(format!(
            "waiting for {} to accept {}{number}: {}:{:02} left{more}",
            first.to,
            items[first.item].shown(),
            left / 60,
            left % 60
        )),
    );
}
