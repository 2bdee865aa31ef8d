//! The `tidings` binary end to end: real processes, real sockets on 127.0.0.1:0.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// A child process whose stdout lines are collected on a thread; killed on drop.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            lines,
            stdin,
        }
    }

    /// The next JSON event for which `pred` holds (others are skipped), within 60 s.
    fn expect(&self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("an output line within 60 s");
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["time"].is_string(), "every event has a time: {line}");
            if pred(&v) {
                return v;
            }
        }
    }

    fn expect_event(&self, kind: &str) -> Value {
        self.expect(|v| v["event"] == kind)
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the exit and returns the status with standard error.
    fn child_output(mut self) -> Output {
        self.stdin.take();
        let status = self.child.wait().unwrap();
        let mut err = Vec::new();
        std::io::Read::read_to_end(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: err,
        }
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

/// `tidings --json serve` on a free port; returns it with its address.
fn serve(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--json", "serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let p = Proc::spawn(&args);
    let v = p.expect_event("listening");
    let addr = v["addr"].as_str().unwrap().to_string();
    (p, addr)
}

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

fn make_file(path: &Path, len: usize) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
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
    make_file(&src, 3 << 20);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"two files at once").unwrap();
    let out = dir.path().join("downloads");
    let recv = Proc::spawn(&[
        "--json",
        "recv",
        "--name",
        "bob",
        "--server",
        &addr,
        "--out",
        out.to_str().unwrap(),
        "--count",
        "2",
    ]);
    recv.expect_event("connected");
    let o = run(&[
        "send",
        "--name",
        "alice",
        "--to",
        "bob",
        "--server",
        &addr,
        src.to_str().unwrap(),
        notes.to_str().unwrap(),
    ]);
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
    chat.type_line("/who");
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
    let o = run(&[
        "send",
        "--name",
        "a",
        "--to",
        "b",
        "--server",
        "127.0.0.1:1",
        "/no/such/file",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/file"));
    // Connection refused.
    let o = run(&["say", "--name", "a", "--server", "127.0.0.1:1", "hi"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1:1"));
}

#[test]
fn an_unwritable_download_folder_fails_the_send_with_the_reason() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.txt");
    std::fs::write(&src, b"hello").unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let recv = Proc::spawn(&[
        "--json",
        "recv",
        "--name",
        "bob",
        "--server",
        &addr,
        "--out",
        blocker.join("sub").to_str().unwrap(),
    ]);
    recv.expect_event("connected");
    let o = run(&[
        "send",
        "--name",
        "alice",
        "--to",
        "bob",
        "--server",
        &addr,
        src.to_str().unwrap(),
    ]);
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
    make_file(&src, 96 << 20);
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
    let send = Proc::spawn(&[
        "--json",
        "send",
        "--name",
        "alice",
        "--to",
        "bob",
        "--server",
        &addr,
        src.to_str().unwrap(),
    ]);
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
    let o = run(&[
        "send",
        "--name",
        "alice",
        "--to",
        "bob",
        "--server",
        &addr,
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let started = recv.expect_event("started");
    assert_eq!(started["offset"].as_u64(), Some(kept));
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
    let recv = Proc::spawn(&[
        "--json",
        "recv",
        "--name",
        "ann",
        "--server",
        &addr,
        "--out",
        out.to_str().unwrap(),
    ]);
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
    let send = Proc::spawn(&[
        "send",
        "--name",
        "alice",
        "--to",
        "bob",
        "--server",
        &addr,
        src.to_str().unwrap(),
    ]);
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
