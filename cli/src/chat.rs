//! `tidings chat`: interactive chat with transfers, reconnecting with backoff.
//!
//! On a terminal (standard input and output both) the lines are typed in a line editor
//! ([`crate::line`]): what arrives is printed above the prompt and never breaks the line
//! being typed. Otherwise standard input is read line by line, as scripts expect.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures_lite::future;
use serde_json::json;
use tidings_core::name::name_key;
use tidings_core::wire::Secret;
use tidings_host::rooms::Rooms;
use tidings_smol::{Client, ClientConfig, ClientEvent, Direction, ErrorCode};

use crate::exit::{io_reason, CliError, Exit};
use crate::line::{Input, Typed, QUIT};
use crate::out::Out;
use crate::send::{gather, renumber, report_dropped, report_skipped, Outbox};
use crate::simple::connect;
use crate::view::{show, Room};
use crate::ChatArgs;

const HELP: &str = "commands: TEXT (to the current room) | /join ROOM (and talk there) | \
                    /leave [ROOM] | /rooms | /who (the current room) | /online (the whole server) | \
                    /msg NAME TEXT | /send NAME PATH (a file or folder) | /accept ID|all | \
                    /reject ID | /cancel ID | /quit";

/// How a connected stretch ended.
enum Outcome {
    Quit,
    Lost(String),
    Final(CliError),
}

pub async fn run(args: ChatArgs, out: &mut Out) -> Result<(), CliError> {
    let mut input = None;
    let result = chat(&args, out, &mut input).await;
    // Whichever way it ended, the terminal is left as it was found.
    if let Some(input) = input {
        input.finish(out);
    }
    result
}

async fn chat(args: &ChatArgs, out: &mut Out, input: &mut Option<Input>) -> Result<(), CliError> {
    // A missing folder is created; one that cannot be written fails each accepted offer
    // with the reason.
    let _ = std::fs::create_dir_all(&args.download_dir);
    let mut config = ClientConfig {
        download_dir: Some(args.download_dir.clone()),
        accept_files: args.accept_files,
        ..ClientConfig::default()
    };
    let mut first = true;
    let mut backoff = Duration::from_millis(500);
    // Which `--server` to try first: after a lost connection, the one after it.
    let mut server = 0;
    // Where we talk: `--room`'s room at first, kept across reconnections (rejoined).
    let mut place = Place {
        current: args.room.clone(),
        left: None,
        joined: args.room.iter().cloned().collect(),
        joining: VecDeque::new(),
    };
    loop {
        let connected = match input {
            // Until the first connection nothing is typed (and the terminal is untouched).
            None => Some(connect(&args.conn, &mut config, true, out, &mut server).await),
            Some(input) => {
                // No prompt while the line editor owns the terminal.
                let attempt = connect(&args.conn, &mut config, false, out, &mut server);
                let attempt = or_quit(attempt, input).await;
                unsent(attempt, out)
            }
        };
        let client = match connected {
            None => return Ok(()),
            Some(Ok(c)) => c,
            Some(Err(e)) if first => return Err(e),
            Some(Err(e)) => {
                out.event(
                    "reconnecting",
                    format_args!(
                        "{}; retrying in {:.1} s",
                        crate::safe::inline(&e.message),
                        backoff.as_secs_f64()
                    ),
                    || json!({"error": e.message, "retry_in_ms": backoff.as_millis() as u64}),
                );
                if pause(backoff, input.as_ref(), out).await.is_none() {
                    return Ok(());
                }
                // Our name is most often still held by our own lost connection, or by a
                // cluster server that died, until its claim expires: asked for again soon.
                let most = if matches!(e.code, crate::exit::Exit::NameRefused) {
                    NAME_RETRY
                } else {
                    Duration::from_secs(30)
                };
                backoff = (backoff * 2).min(most);
                continue;
            }
        };
        first = false;
        backoff = Duration::from_millis(500);
        let lines =
            input.get_or_insert_with(|| Input::start(&args.conn.name, args.no_history, out));
        match session(
            &client,
            lines,
            out,
            args.accept_files,
            &mut config.token,
            &mut place,
        )
        .await
        {
            Outcome::Quit => {
                client.close().await;
                return Ok(());
            }
            Outcome::Final(e) => return Err(e),
            Outcome::Lost(why) => {
                tracing::info!(why = %crate::safe::inline(&why), "connection lost");
                server += 1;
                out.event(
                    "reconnecting",
                    format_args!(
                        "connection lost ({}); reconnecting in {:.1} s",
                        crate::safe::inline(&why),
                        backoff.as_secs_f64()
                    ),
                    || json!({"error": why, "retry_in_ms": backoff.as_millis() as u64}),
                );
                if pause(backoff, input.as_ref(), out).await.is_none() {
                    return Ok(());
                }
            }
        }
    }
}

/// The longest wait between reconnections refused for the name (see `chat`).
const NAME_RETRY: Duration = Duration::from_secs(2);

/// Waits `backoff` before connecting again; `None` when the person quit meanwhile.
async fn pause(backoff: Duration, input: Option<&Input>, out: &Out) -> Option<()> {
    let timer = async {
        async_io::Timer::after(backoff).await;
    };
    match input {
        Some(input) => unsent(or_quit(timer, input).await, out),
        None => {
            timer.await;
            Some(())
        }
    }
}

/// Waits for `work` while not connected, unless the person quits (`None`). Lines typed
/// meanwhile cannot be sent: they are counted, and the person told (by [`unsent`]) rather
/// than have them sent later, when they may no longer make sense.
async fn or_quit<T>(work: impl Future<Output = T>, input: &Input) -> Option<(T, usize)> {
    futures_lite::pin!(work);
    let mut dropped = 0;
    loop {
        let next = future::or(async { Ok((&mut work).await) }, async {
            Err(input.recv().await)
        })
        .await;
        match next {
            Ok(done) => return Some((done, dropped)),
            Err(Typed::Quit) => return None,
            Err(Typed::Line(line)) if line.trim() == QUIT => return None,
            Err(Typed::Line(line)) if line.trim().is_empty() => {}
            Err(Typed::Line(_)) => dropped += 1,
        }
    }
}

/// Says how many typed lines were not sent while not connected.
fn unsent<T>(waited: Option<(T, usize)>, out: &Out) -> Option<T> {
    let (done, dropped) = waited?;
    if dropped > 0 {
        out.event(
            "error",
            format_args!("not connected: {dropped} typed line(s) not sent"),
            || json!({"message": "not connected: typed lines not sent", "lines": dropped}),
        );
    }
    Some(done)
}

enum Next {
    Typed(Typed),
    Event(Option<ClientEvent>),
}

/// The rooms of the chat: which one a plain line goes to, and which ones to enter again
/// after a reconnection.
struct Place {
    /// The current room; `None` on a server without rooms (lines go to everyone), or after
    /// leaving the current room.
    current: Option<String>,
    /// The current room we left (for the refusal of a line typed after it).
    left: Option<String>,
    /// The rooms other than the default room we are (or were asked to be) in.
    joined: Vec<String>,
    /// The joins not answered yet, in the order sent (the server answers each, in order,
    /// with the room's members or a refusal), each with the current room before it: lines
    /// go to a `/join`'s room at once (never to the old one by mistake), and a refusal goes
    /// back. A rejoin after a reconnection has no room before it: refused, lines go to the
    /// default room.
    joining: VecDeque<(String, Option<String>)>,
}

impl Place {
    fn is_current(&self, room: &str) -> bool {
        self.current
            .as_deref()
            .is_some_and(|c| name_key(c) == name_key(room))
    }

    fn forget(&mut self, room: &str) {
        let key = name_key(room);
        self.joined.retain(|r| name_key(r) != key);
        if self.is_current(room) {
            self.left = self.current.take();
        }
    }
}

/// What the chat keeps while connected: the rooms we are in, and where lines go.
struct Talk<'a> {
    rooms: Rooms,
    place: &'a mut Place,
}

/// The chat's transfers, while connected: `/send`'s files waiting their turn, the number the
/// receiver knows each running one by (the `relayed` extension), which the chat shows
/// instead of its own id, as `tidings send` does (both people then speak of "transfer 7"),
/// and the offers to us that wait for `/accept` or `/reject`.
struct Transfers {
    outbox: Outbox<u64>,
    /// Our id of a running offer → the receiver's.
    numbers: HashMap<u64, u64>,
    /// Offers to us not answered yet (`/accept all` answers them all: a folder is many).
    offers: BTreeSet<u64>,
}

/// Runs one connection; a session token the server sends is kept in `token` for the next
/// connection.
async fn session(
    client: &Client,
    input: &Input,
    out: &mut Out,
    accept_files: bool,
    token: &mut Option<Secret>,
    place: &mut Place,
) -> Outcome {
    let mut transfers = Transfers {
        outbox: Outbox::new(),
        numbers: HashMap::new(),
        offers: BTreeSet::new(),
    };
    // The rooms we were in (or `--room`'s), entered again; the default room is ours anyway
    // (a new connection is in it, even if we had left it). A server without rooms refuses:
    // said once.
    place.left = None;
    place.joining.clear();
    for room in place.joined.clone() {
        match client.join(&room).await {
            Ok(()) => place.joining.push_back((room, None)),
            Err(e) => {
                error(out, &format!("cannot join {}: {e}", Room(&room)));
                place.forget(&room);
                place.left = None;
            }
        }
    }
    let mut talk = Talk {
        rooms: Rooms::new(),
        place,
    };
    let outcome = session_with(
        client,
        input,
        out,
        accept_files,
        &mut transfers,
        token,
        &mut talk,
    )
    .await;
    let dropped = transfers.outbox.waiting();
    if dropped > 0 {
        out.event(
            "error",
            format_args!("{dropped} file(s) of /send not offered: the connection ended"),
            || json!({"message": "files of /send not offered: the connection ended", "files": dropped}),
        );
    }
    outcome
}

async fn session_with(
    client: &Client,
    input: &Input,
    out: &mut Out,
    accept_files: bool,
    transfers: &mut Transfers,
    token: &mut Option<Secret>,
    talk: &mut Talk<'_>,
) -> Outcome {
    loop {
        let next = future::or(async { Next::Typed(input.recv().await) }, async {
            Next::Event(client.next_event().await)
        })
        .await;
        match next {
            Next::Typed(Typed::Quit) => return Outcome::Quit,
            Next::Typed(Typed::Line(line)) => {
                if let Some(outcome) = command(client, line.trim(), out, transfers, talk).await {
                    return outcome;
                }
                offer_due(client, transfers, out).await;
            }
            Next::Event(None) => return Outcome::Lost("the connection ended".into()),
            Next::Event(Some(ClientEvent::Token(t))) => *token = Some(t),
            Next::Event(Some(mut ev)) => {
                // Our offer's end, by our own id (before it is renumbered); whether the
                // addressee was not online.
                let ended = match &ev {
                    ClientEvent::Relayed { id, relay_id, .. } => {
                        if transfers.outbox.is_running(id) {
                            transfers.numbers.insert(*id, *relay_id);
                        }
                        None
                    }
                    ClientEvent::Sent { id, .. } => Some((*id, false)),
                    ClientEvent::TransferFailed {
                        id,
                        direction: Direction::Send,
                        code,
                        ..
                    } => Some((*id, *code == ErrorCode::UnknownPeer)),
                    _ => None,
                };
                renumber(&mut ev, |id| transfers.numbers.get(&id).copied());
                talk.rooms.apply(&ev);
                show_in_rooms(out, &ev, talk);
                if let Some((id, offline)) = ended {
                    transfers.numbers.remove(&id);
                    if let Some(to) = transfers.outbox.ended(&id) {
                        if offline {
                            // Not one failure per file of a folder.
                            let dropped = transfers.outbox.drop_for(&to);
                            report_dropped(out, &to, dropped, &format!("{to} is not online"));
                        }
                        offer_due(client, transfers, out).await;
                    }
                }
                match &ev {
                    ClientEvent::Offered { id, .. } if !accept_files => {
                        transfers.offers.insert(*id);
                        out.event(
                            "hint",
                            format_args!("type /accept {id} (or /accept all) or /reject {id}"),
                            || json!({"id": id}),
                        );
                    }
                    ClientEvent::Started {
                        id,
                        direction: Direction::Receive,
                        ..
                    }
                    | ClientEvent::TransferFailed {
                        id,
                        direction: Direction::Receive,
                        ..
                    } => {
                        transfers.offers.remove(id);
                    }
                    _ => {}
                }
                if let ClientEvent::Closed { code, reason, .. } = ev {
                    return match code {
                        ErrorCode::Kicked => Outcome::Final(CliError::new(
                            Exit::ConnectionLost,
                            format!("removed by the server: {reason}"),
                        )),
                        _ => Outcome::Lost(format!("{}: {reason}", code.name())),
                    };
                }
            }
        }
    }
}

/// Shows `ev`, the default room's lines and members under its name once the server said
/// it (a server that speaks rooms), and follows the current room.
fn show_in_rooms(out: &mut Out, ev: &ClientEvent, talk: &mut Talk<'_>) {
    let default = talk.rooms.default_room().map(str::to_string);
    match (ev, default) {
        (
            ClientEvent::Text {
                from,
                private: false,
                text,
            },
            Some(room),
        ) => crate::view::room_line(out, &room, from, text),
        (ClientEvent::Joined(name), Some(room)) => {
            crate::view::member(out, &room, name, "joined", false)
        }
        (ClientEvent::Left(name), Some(room)) => {
            crate::view::member(out, &room, name, "left", false)
        }
        _ => show(out, ev),
    }
    match ev {
        ClientEvent::RoomEntered { room, default, .. } => {
            let place = &mut *talk.place;
            if place
                .joining
                .front()
                .is_some_and(|(r, _)| name_key(r) == name_key(room))
            {
                place.joining.pop_front();
            }
            // The default room is where lines go unless `--room` or `/join` chose another.
            if *default && place.current.is_none() && place.left.is_none() {
                place.current = Some(room.clone());
            }
            if place.is_current(room) {
                // The server's spelling from now on.
                place.current = Some(room.clone());
                out.event(
                    "room",
                    format_args!("talking in {}", Room(room)),
                    || json!({"room": room}),
                );
            }
        }
        ClientEvent::Notice {
            code: ErrorCode::RoomRefused | ErrorCode::LimitExceeded,
            ..
        } => {
            // The refusal of the oldest join waiting for its answer: back where we were (a
            // rejoin: to the default room).
            let default = talk.rooms.default_room().map(str::to_string);
            let place = &mut *talk.place;
            if let Some((room, before)) = place.joining.pop_front() {
                let was_current = place.is_current(&room);
                place.forget(&room);
                place.left = None;
                if was_current {
                    place.current = before.or(default);
                }
                if let Some(before) = place.current.as_ref().filter(|_| was_current) {
                    out.event(
                        "room",
                        format_args!("still talking in {}", Room(before)),
                        || json!({"room": before}),
                    );
                }
            }
        }
        ClientEvent::RoomExited { room, .. } => {
            let was_current = talk.place.is_current(room);
            talk.place.forget(room);
            // Out of the room we talked in: to the default room, if we are still in it.
            let default = talk.rooms.default_room().map(str::to_string);
            let fallback =
                default.filter(|d| name_key(d) != name_key(room) && talk.rooms.contains(d));
            match fallback {
                Some(default) if was_current => {
                    talk.place.current = Some(default.clone());
                    talk.place.left = None;
                    out.event(
                        "room",
                        format_args!("talking in {}", Room(&default)),
                        || json!({"room": default}),
                    );
                }
                None if was_current => out.event(
                    "room",
                    format_args!("in no room now: /join ROOM to talk in one"),
                    || json!({"room": null}),
                ),
                _ => {}
            }
        }
        _ => {}
    }
}

/// Says `message` (from the network, maybe) as an error line.
fn error(out: &Out, message: &str) {
    out.event(
        "error",
        format_args!("error: {}", crate::safe::inline(message)),
        || json!({"message": message}),
    );
}

/// A plain line: to the current room, or to everyone on a server without rooms.
async fn say_here(client: &Client, line: &str, out: &mut Out, talk: &Talk<'_>) {
    let place = &talk.place;
    let sent = match (&place.current, &place.left) {
        (Some(room), _) => client
            .say_in(room, line)
            .await
            .map(|()| crate::view::said_in(out, client.name(), room, line)),
        (None, Some(left)) => {
            let message = format!(
                "not sent: you left {}; /join ROOM to talk in a room",
                Room(left)
            );
            return error(out, &message);
        }
        (None, None) => client
            .say(line)
            .await
            .map(|()| crate::view::said(out, client.name(), "", line)),
    };
    if let Err(e) = sent {
        error(out, &e.to_string());
    }
}

/// Offers what `/send` queued, as far as there is room (see [`Outbox`]).
async fn offer_due(client: &Client, transfers: &mut Transfers, out: &mut Out) {
    while let Some((to, item)) = transfers.outbox.due() {
        let offered = match item.open() {
            Ok(source) => client
                .send_source(&to, source)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("{}: {}", item.shown(), io_reason(&e))),
        };
        match offered {
            Ok(id) => transfers.outbox.started(id, to),
            Err(message) => {
                error(out, &message);
                if !client.is_open() {
                    return;
                }
            }
        }
    }
}

/// `/send NAME PATH`: a file, or a folder's every file and empty folder, queued for `name`.
async fn queue_send(name: &str, path: &str, out: &mut Out, transfers: &mut Transfers) {
    let paths = [PathBuf::from(path)];
    // Walking a large folder takes a while: not on the thread that keeps the connection.
    let found = smol::unblock(move || gather(&paths)).await;
    let items = match found {
        Ok((items, skipped)) => {
            report_skipped(&skipped, out);
            items
        }
        Err(e) => {
            error(out, &e.message);
            return;
        }
    };
    let folders = items.iter().filter(|i| i.is_folder()).count();
    crate::view::offering(out, name, path, items.len() - folders, folders);
    transfers.outbox.add(name, items);
}

async fn command(
    client: &Client,
    line: &str,
    out: &mut Out,
    transfers: &mut Transfers,
    talk: &mut Talk<'_>,
) -> Option<Outcome> {
    if line.is_empty() {
        return None;
    }
    let mut words = line.splitn(3, ' ');
    let result = match (words.next()?, words.next(), words.next()) {
        (QUIT, None, None) => return Some(Outcome::Quit),
        ("/online", None, None) => client.request_list().await,
        // A server without rooms: everyone online is who is here.
        ("/who", None, None) if talk.rooms.default_room().is_none() => client.request_list().await,
        ("/who", None, None) => {
            match talk
                .place
                .current
                .as_deref()
                .and_then(|c| talk.rooms.get(c))
            {
                Some(room) => crate::view::members(out, &room.name, &room.members()),
                None => error(out, "in no room: /join ROOM first, or /online"),
            }
            return None;
        }
        ("/join", Some(room), None) => {
            let room = room.trim_start_matches('#');
            let joined = client.join(room).await;
            if joined.is_ok() {
                // Lines typed from now on go there (the server's answer names it).
                let place = &mut *talk.place;
                let before = place.current.replace(room.to_string());
                place.joining.push_back((room.to_string(), before));
                place.left = None;
                if !talk.rooms.is_default(room)
                    && !place.joined.iter().any(|r| name_key(r) == name_key(room))
                {
                    place.joined.push(room.to_string());
                }
            }
            joined
        }
        ("/leave", room, None) => {
            let Some(room) = room
                .map(|r| r.trim_start_matches('#').to_string())
                .or_else(|| talk.place.current.clone())
            else {
                error(out, "in no room: /leave ROOM");
                return None;
            };
            let left = client.leave(&room).await;
            if left.is_ok() {
                // Not a line more to it, even before the server confirms.
                talk.place.forget(&room);
            }
            left
        }
        ("/rooms", None, None) => client.request_rooms().await,
        ("/msg" | "/send", Some(name), Some(_)) if crate::simple::is_self(client.name(), name) => {
            let message = format!("{name} is you: /msg and /send need someone else");
            error(out, &message);
            return None;
        }
        ("/msg", Some(name), Some(text)) => {
            let sent = client.say_to(name, text).await;
            if sent.is_ok() {
                crate::view::said(out, client.name(), name, text);
            }
            sent
        }
        ("/send", Some(name), Some(path)) => {
            queue_send(name, path, out, transfers).await;
            return None;
        }
        ("/accept", Some("all"), None) => {
            let mut result = Ok(());
            for id in std::mem::take(&mut transfers.offers) {
                result = result.and(client.accept(id).await);
            }
            result
        }
        ("/accept", Some(id), None) => match id.parse() {
            Ok(id) => client.accept(id).await,
            Err(_) => return usage(out),
        },
        ("/reject", Some(id), None) => match id.parse() {
            Ok(id) => client.reject(id).await,
            Err(_) => return usage(out),
        },
        // Either way, by the number shown: ours by the receiver's, if the server said it.
        ("/cancel", Some(number), None) => match number.parse() {
            Ok(number) => {
                let ours = transfers.numbers.iter().find(|(_, n)| **n == number);
                client.cancel(ours.map_or(number, |(id, _)| *id)).await
            }
            Err(_) => return usage(out),
        },
        (cmd, ..) if cmd.starts_with('/') => return usage(out),
        _ => {
            say_here(client, line, out, talk).await;
            return None;
        }
    };
    if let Err(e) = result {
        error(out, &e.to_string());
    }
    None
}

fn usage(out: &mut Out) -> Option<Outcome> {
    out.event("help", HELP, || json!({"help": HELP}));
    None
}
