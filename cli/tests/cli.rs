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
fn a_folder_and_a_file_to_two_recipients_are_rebuilt_byte_identical() {
    let (_server, addr) = serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let top = src.join("Fotos été");
    std::fs::create_dir_all(top.join("a/b/leer")).unwrap();
    std::fs::create_dir_all(top.join("empty")).unwrap();
    std::fs::create_dir_all(top.join("日本")).unwrap();
    make_file(&top.join("a/b/big.bin"), 5 << 20);
    make_file(&top.join("a/small.txt"), 1000);
    make_file(&top.join("日本/語.txt"), 70_000);
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
    run(&[
        "send", "--name", "alice", "--to", to, "--server", addr, path,
    ])
}

/// `tidings --json COMMAND --name NAME --server ADDR REST…`.
fn as_json(command: &str, name: &str, addr: &str, rest: &[&str]) -> Proc {
    let mut args = vec!["--json", command, "--name", name, "--server", addr];
    args.extend_from_slice(rest);
    Proc::spawn(&args)
}

fn recv_name(out: &Path) -> String {
    out.file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("to-")
        .to_string()
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
        err.contains("bob did not accept later.txt within 2 s"),
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
    let top = dir.path().join("notes");
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
    assert_eq!(
        tree(&out),
        tree(dir.path())
            .into_iter()
            .filter(|(p, _)| p.starts_with("notes"))
            .collect::<Vec<_>>()
    );
}
