//! `tidings chat` on a real pseudo-terminal against a real `tidings serve`: the line editor,
//! lines arriving while one is typed, history, Ctrl-C/Ctrl-D and colours.
//!
//! Every wait is for output (or an exit) with a deadline, never a sleep.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{spawn_with_lines, BIN};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// A `tidings` process with JSON lines on a pipe (the server, a peer); killed on drop.
struct Piped {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
}

impl Piped {
    fn spawn(args: &[&str]) -> Piped {
        let mut cmd = Command::new(BIN);
        cmd.arg("--json")
            .args(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::null());
        let (mut child, lines) = spawn_with_lines(&mut cmd, |line| {
            Some(serde_json::from_str(&line).expect("a JSON line"))
        });
        let stdin = child.stdin.take().unwrap();
        Piped {
            child,
            stdin,
            lines,
        }
    }

    /// The next event for which `pred` holds; every event seen before it, too.
    fn expect(&self, mut pred: impl FnMut(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let v = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("the awaited event in time");
            if pred(&v) {
                return (v, before);
            }
            before.push(v);
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tidings serve` on a free port (operator commands on its standard input), and its address.
fn serve() -> (Piped, String) {
    let server = Piped::spawn(&["serve", "--listen", "127.0.0.1:0", "--console"]);
    let (v, _) = server.expect(|v| v["event"] == "listening");
    let addr = v["addr"].as_str().unwrap().to_string();
    (server, addr)
}

/// carol, a peer in a piped `tidings chat`, connected.
fn carol(addr: &str) -> Piped {
    let carol = Piped::spawn(&["chat", "--name", "carol", "--server", addr]);
    carol.expect(|v| v["event"] == "connected");
    carol
}

/// `tidings say`, which must succeed.
fn say(addr: &str, name: &str, text: &str) {
    let status = Command::new(BIN)
        .args(["say", "--name", name, "--server", addr, text])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "say exited {status}");
}

/// `tidings chat` on a pseudo-terminal: what it wrote so far, keys to type, its exit.
struct Term {
    /// The terminal's own end, to read its settings.
    master: Box<dyn portable_pty::MasterPty + Send>,
    output: Arc<(Mutex<Vec<u8>>, Condvar)>,
    keys: Box<dyn Write + Send>,
    exit: Receiver<portable_pty::ExitStatus>,
    /// Where the next [`Term::wait_for`] starts looking.
    seen: usize,
}

impl Term {
    /// `tidings chat --name NAME --server ADDR EXTRA…` in `state`, whose state folder it is
    /// too (the history file goes there).
    fn chat(addr: &str, name: &str, state: &Path, no_color: bool, extra: &[&str]) -> Term {
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(["chat", "--name", name, "--server", addr]);
        cmd.args(extra);
        Term::spawn(cmd, state, no_color)
    }

    fn spawn(mut cmd: CommandBuilder, state: &Path, no_color: bool) -> Term {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 200,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        cmd.cwd(state);
        cmd.env("TERM", "xterm-256color");
        cmd.env("XDG_STATE_HOME", state);
        cmd.env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let mut child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        let output = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut reader = pty.master.try_clone_reader().unwrap();
        let keys = pty.master.take_writer().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            // Ends with an error (EIO) once the chat exited and the terminal closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                // (Poisoned only when the test already failed.)
                let Ok(mut output) = sink.0.lock() else { break };
                output.extend_from_slice(&buf[..n]);
                drop(output);
                sink.1.notify_all();
            }
        });
        Term {
            master: pty.master,
            output,
            keys,
            exit,
            seen: 0,
        }
    }

    /// Waits until `needle` appears after what was already seen; returns everything written
    /// from there to its end, and moves past it.
    fn wait_for(&mut self, needle: &str) -> String {
        let start = Instant::now();
        let (lock, wake) = &*self.output;
        let mut out = lock.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&out[self.seen..]).into_owned();
            if let Some(at) = text.find(needle) {
                let upto = at + needle.len();
                self.seen += text[..upto].len();
                return text[..upto].to_string();
            }
            let left = DEADLINE
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("no {needle:?} in time; the terminal shows:\n{text:?}"));
            out = wake.wait_timeout(out, left).unwrap().0;
        }
    }

    /// Everything written so far.
    fn all(&self) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap()).into_owned()
    }

    /// Whether the terminal is back in line mode with echo (as the editor found it).
    fn cooked(&self) -> bool {
        use rustix::termios::LocalModes;
        let fd = self.master.as_raw_fd().expect("a unix terminal");
        // SAFETY: the master stays open while `self` lives.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let modes = rustix::termios::tcgetattr(fd).unwrap().local_modes;
        modes.contains(LocalModes::ICANON | LocalModes::ECHO)
    }

    fn keys(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    /// The exit code, which must come within the deadline.
    fn exit_code(&self) -> u32 {
        self.exit
            .recv_timeout(Duration::from_secs(10))
            .expect("the chat exits within 10 s")
            .exit_code()
    }
}

/// SGR sequences (`ESC [ params m`): colours and bold. Cursor movement is not one.
fn sgr_count(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (i, _) in text.match_indices("\x1b[") {
        let params = bytes[i + 2..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b';')
            .count();
        if bytes.get(i + 2 + params) == Some(&b'm') {
            count += 1;
        }
    }
    count
}

#[test]
fn lines_arrive_above_the_line_being_typed() {
    let state = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve();
    let carol = carol(&addr);
    let mut alice = Term::chat(&addr, "alice", state.path(), false, &[]);
    alice.wait_for("connected to");
    alice.wait_for("alice> ");

    // Half a line typed (and echoed), then bob speaks.
    alice.keys("hello wor");
    alice.wait_for("hello wor");
    say(&addr, "bob", "ping from bob");
    let shown = alice.wait_for("ping from bob");
    // bob's name in its colour (an SGR sequence just before it, the reset just after)...
    assert!(shown.contains("bob\x1b[0m: ping from bob"), "{shown:?}");
    let name_at = shown.rfind("bob\x1b[0m").unwrap();
    assert!(shown[..name_at].ends_with('m'), "coloured: {shown:?}");
    // ...printed above the prompt, which is drawn again with the half line intact.
    alice.wait_for("alice> hello wor");

    // The server's participant (the operator) stands out in bold; a private message is marked
    // in a colour of its own.
    writeln!(server.stdin, "/msg alice psst").unwrap();
    server.stdin.flush().unwrap();
    let shown = alice.wait_for("psst");
    let line = &shown[shown.rfind("[90m[").unwrap()..];
    assert!(line.contains("\x1b[1m"), "the operator in bold: {line:?}");
    assert!(line.contains("server\x1b[0m"), "{line:?}");
    assert!(line.contains(" (private)\x1b[0m: psst"), "{line:?}");
    alice.wait_for("alice> hello wor");

    // Finishing the line sends all of it.
    alice.keys("ld\r");
    let (v, _) = carol.expect(|v| v["event"] == "text" && v["from"] == "alice");
    assert_eq!(
        (&v["from"], &v["text"]),
        (&"alice".into(), &"hello world".into())
    );

    // Up recalls it; Enter sends it again.
    alice.wait_for("alice> ");
    alice.keys("\x1b[A");
    alice.wait_for("hello world");
    alice.keys("\r");
    let (v, _) = carol.expect(|v| v["event"] == "text" && v["from"] == "alice");
    assert_eq!(v["text"], "hello world");

    // Ctrl-C clears a typed line (it is not sent) and the chat goes on; Ctrl-D on the empty
    // line quits.
    alice.wait_for("alice> ");
    alice.keys("never sent");
    alice.wait_for("never sent");
    alice.keys("\x03");
    alice.keys("/online\r");
    alice.wait_for("online (2): alice, carol");
    alice.keys("\x04");
    assert_eq!(alice.exit_code(), 0, "{:?}", alice.all());
    let (_, before) = carol.expect(|v| v["event"] == "left" && v["name"] == "alice");
    assert!(
        before.iter().all(|v| v["event"] != "text"),
        "the cleared line was not sent: {before:?}"
    );

    // The history file (under XDG_STATE_HOME, for its owner only) kept the line, once.
    let path = state.path().join("tidings/chat-history");
    let history = std::fs::read_to_string(&path).unwrap();
    assert_eq!(history.matches("hello world").count(), 1, "{history:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    drop(carol);
}

#[test]
fn no_color_means_no_colour_and_two_ctrl_c_quit() {
    let state = tempfile::tempdir().unwrap();
    let (_server, addr) = serve();
    let in_dir = state.path().join("in");
    let in_dir = in_dir.to_str().unwrap();
    let extra = ["--accept-files", "--download-dir", in_dir, "--no-history"];
    let mut alice = Term::chat(&addr, "alice", state.path(), true, &extra);
    alice.wait_for("alice> ");
    alice.keys("typing");
    alice.wait_for("typing");
    // A peer's own colour codes are shown, not obeyed.
    say(&addr, "bob", "plain \x1b[31mplease");
    alice.wait_for("bob: plain \\u{1b}[31mplease");
    alice.wait_for("alice> typing");

    // A file arrives meanwhile: no progress bar is drawn over the prompt (progress would be
    // a line above it), and the line being typed is still there after.
    let file = state.path().join("notes.txt");
    std::fs::write(&file, vec![7u8; 100 << 20]).unwrap();
    let sent = Command::new(BIN)
        .args(["send", "--name", "bob", "--to", "alice", "--server", &addr])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(sent.success());
    let shown = alice.wait_for("received ");
    alice.wait_for("alice> typing");
    assert!(!shown.contains("ETA"), "no bar: {shown:?}");
    assert_eq!(
        std::fs::read(state.path().join("in/notes.txt")).unwrap(),
        vec![7u8; 100 << 20]
    );
    alice.keys("\r");
    alice.wait_for("alice: typing");
    // The first Ctrl-C clears the line, the second (on the empty line) quits.
    alice.keys("more");
    alice.wait_for("more");
    alice.keys("\x03");
    alice.keys("\x03");
    assert_eq!(alice.exit_code(), 0);
    assert!(
        !state.path().join("tidings").exists(),
        "--no-history: no file"
    );
    let all = alice.all();
    assert_eq!(sgr_count(&all), 0, "no colour with NO_COLOR: {all:?}");
}

#[test]
fn a_terminal_without_a_terminal_for_output_gets_no_editor() {
    // Typed on a terminal, printed into a file: plain lines, no prompt, no escape sequence.
    let state = tempfile::tempdir().unwrap();
    let (_server, addr) = serve();
    let carol = carol(&addr);
    let log = state.path().join("chat.log");
    let mut cmd = CommandBuilder::new("sh");
    cmd.args([
        "-c",
        &format!("exec \"$0\" chat --name alice --server {addr} > chat.log"),
    ]);
    cmd.arg(BIN);
    let mut alice = Term::spawn(cmd, state.path(), false);
    carol.expect(|v| v["event"] == "joined" && v["name"] == "alice");
    alice.keys("hi from a file\r");
    let (v, _) = carol.expect(|v| v["event"] == "text" && v["from"] == "alice");
    assert_eq!(v["text"], "hi from a file");
    // The terminal's own end of input (Ctrl-D at the start of a line) ends the chat.
    alice.keys("\x04");
    assert_eq!(alice.exit_code(), 0);
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("alice: hi from a file"), "{written:?}");
    assert!(!written.contains('\x1b'), "no escape sequence: {written:?}");
    assert!(
        !alice.all().contains("alice> "),
        "no prompt: {:?}",
        alice.all()
    );
}

#[test]
fn colour_follows_the_flag_into_a_pipe() {
    let (_server, addr) = serve();
    let chat = |flags: &[&str]| {
        let mut child = Command::new(BIN)
            .args(flags)
            .args(["chat", "--name", "dan", "--server", &addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("NO_COLOR")
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"/quit\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let piped = chat(&[]);
    assert!(piped.contains("connected to server as dan"), "{piped:?}");
    assert_eq!(sgr_count(&piped), 0, "auto: not a terminal: {piped:?}");
    let forced = chat(&["--color", "always"]);
    assert!(forced.contains("connected to server as dan"), "{forced:?}");
    assert!(sgr_count(&forced) > 0, "always: {forced:?}");
    let json = chat(&["--color", "always", "--json"]);
    assert!(!json.contains('\x1b'), "never in JSON: {json:?}");
}

#[test]
fn removed_while_typing_leaves_the_terminal_as_it_was() {
    let state = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve();
    let mut alice = Term::chat(&addr, "alice", state.path(), false, &[]);
    alice.wait_for("alice> ");
    assert!(!alice.cooked(), "the editor reads keys one by one");
    alice.keys("half a thou");
    alice.wait_for("half a thou");
    writeln!(server.stdin, "/kick alice enough").unwrap();
    server.stdin.flush().unwrap();
    assert_eq!(alice.exit_code(), 9);
    alice.wait_for("kicked");
    // Bracketed paste off again, after the last line the editor printed.
    alice.wait_for("\x1b[?2004l");
    assert!(alice.cooked(), "line mode and echo restored");
}

#[test]
fn while_reconnecting_lines_are_not_kept_and_ctrl_d_quits() {
    let state = tempfile::tempdir().unwrap();
    let (server, addr) = serve();
    let mut alice = Term::chat(&addr, "alice", state.path(), true, &[]);
    alice.wait_for("alice> ");
    drop(server); // killed: no goodbye
    alice.wait_for("reconnecting in");
    alice.keys("too late\r");
    alice.wait_for("not connected: 1 typed line(s) not sent");
    // Ctrl-D ends the chat at once, though no server is back.
    alice.keys("\x04");
    assert_eq!(alice.exit_code(), 0);
}
