//! A full disk, for real: `tidings serve --inbox` and `tidings recv --out` run on a 1 MiB
//! tmpfs mounted in a private mount namespace (`unshare -rm`, no root needed where user
//! namespaces are enabled). A file larger than the disk fails with `storage-failed` and the
//! system's reason, the partial file is kept for a resume, and the process keeps serving.
//!
//! Where user namespaces (or `unshare`) are unavailable the tests print why and pass
//! without running.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{expect_line, make_file, spawn_with_lines, BIN};
use serde_json::Value;
use tidings_std::{Client, ClientConfig, ClientEvent, ErrorCode};

const PATIENCE: Duration = Duration::from_secs(30);

/// Whether this machine lets us mount a tmpfs in a private namespace; prints why not.
fn namespaces_work() -> bool {
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k probe /mnt"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs in a user namespace ({}); the disk-full tests need \
                 `unshare -rm`",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: `unshare` cannot run ({e}); the disk-full tests need it");
            false
        }
    }
}

/// `tidings ARGS` with a `size` tmpfs mounted on `dir` in its own mount namespace.
/// `unshare` and `sh` exec, so the child's pid is the `tidings` process.
struct Proc {
    child: Child,
    lines: Receiver<Value>,
}

impl Proc {
    fn spawn_on_tmpfs(dir: &Path, size: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("unshare");
        cmd.args(["-rm", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size} tidings-test \"$0\" && exec \"$@\""
            ))
            .arg(dir)
            .arg(BIN)
            .args(args);
        Proc::spawn(cmd)
    }

    /// Runs `cmd`, collecting the JSON lines of its standard output.
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
        let (child, lines) = spawn_with_lines(&mut cmd, |line| serde_json::from_str(&line).ok());
        Proc { child, lines }
    }

    fn expect(&self, pred: impl FnMut(&Value) -> bool) -> Value {
        expect_line(&self.lines, PATIENCE, pred)
    }

    /// `path` as the process sees it (inside its mount namespace).
    fn inside(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.child.id())).join(path.strip_prefix("/").unwrap())
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the process ended"
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn big_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    make_file(&path, len, 1);
    path
}

fn wait_event(client: &Client, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    let end = Instant::now() + PATIENCE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ev = client.next_event_timeout(left).expect("an event in time");
        if pred(&ev) {
            return ev;
        }
    }
}

/// Waits for `client`'s next failed transfer: its error code and reason.
fn transfer_failure(client: &Client) -> (ErrorCode, String) {
    match wait_event(client, |e| matches!(e, ClientEvent::TransferFailed { .. })) {
        ClientEvent::TransferFailed { code, reason, .. } => (code, reason),
        _ => unreachable!(),
    }
}

/// `tidings --json recv --name bob --out OUT` with a `size` tmpfs mounted on `mount`,
/// once connected to `addr`.
fn bob_receives_on_tmpfs(mount: &Path, size: &str, addr: std::net::SocketAddr, out: &Path) -> Proc {
    let addr = addr.to_string();
    let out = out.to_str().unwrap();
    let args = [
        "--json", "recv", "--name", "bob", "--server", &addr, "--out", out,
    ];
    let recv = Proc::spawn_on_tmpfs(mount, size, &args);
    recv.expect(|v| v["event"] == "connected");
    recv
}

/// alice says `text` to `to` and `to`'s client gets it.
fn chat_flows(alice: &Client, bob: &Client, text: &str) {
    alice.say_to(bob.name(), text).unwrap();
    wait_event(
        bob,
        |e| matches!(e, ClientEvent::Text { text: t, .. } if t == text),
    );
}

/// `tidings --json serve` on a free port (on the real disk), and its address.
fn plain_server() -> (Proc, std::net::SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "serve", "--listen", "127.0.0.1:0"]);
    let server = Proc::spawn(cmd);
    let addr = server.expect(|v| v["event"] == "listening")["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (server, addr)
}

#[test]
fn a_full_inbox_fails_the_transfer_keeps_the_part_and_the_server_serves_on() {
    if !namespaces_work() {
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let inbox = mount.path().join("inbox");
    let mut server = Proc::spawn_on_tmpfs(
        mount.path(),
        "1m",
        &[
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--inbox",
            inbox.to_str().unwrap(),
        ],
    );
    let addr: std::net::SocketAddr = server.expect(|v| v["event"] == "listening")["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let src = tempfile::tempdir().unwrap();
    let file = big_file(src.path(), "too-big.bin", 3 << 20);
    let alice = Client::connect(addr, "alice", ClientConfig::default()).unwrap();
    let bob = Client::connect(addr, "bob", ClientConfig::default()).unwrap();
    alice.send_file("server", &file).unwrap();
    let (code, reason) = transfer_failure(&alice);
    assert_eq!(code, ErrorCode::StorageFailed, "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    let v = server.expect(|v| v["event"] == "failed");
    assert_eq!(v["code"], "storage-failed");
    // The partial file is kept, holding what fit.
    let part = server.inside(&inbox.join("too-big.bin.part"));
    let kept = std::fs::metadata(&part)
        .expect("the partial file is kept")
        .len();
    eprintln!("kept {kept} bytes of the partial file; reason: {reason}");
    assert!(kept > 0 && kept <= 1 << 20, "{kept}");
    // The server serves on: chat flows, and a new client joins.
    chat_flows(&alice, &bob, "the disk is full but we talk");
    let carol = Client::connect(addr, "carol", ClientConfig::default()).unwrap();
    chat_flows(&carol, &bob, "me too");
    server.assert_running();
    drop(carol);
}

#[test]
fn a_full_download_dir_fails_the_transfer_keeps_the_part_and_recv_stays_connected() {
    if !namespaces_work() {
        return;
    }
    let (server, addr) = plain_server();
    let mount = tempfile::tempdir().unwrap();
    let out = mount.path().join("downloads");
    let mut recv = bob_receives_on_tmpfs(mount.path(), "1m", addr, &out);
    let src = tempfile::tempdir().unwrap();
    let file = big_file(src.path(), "movie.bin", 3 << 20);
    let alice = Client::connect(addr, "alice", ClientConfig::default()).unwrap();
    alice.send_file("bob", &file).unwrap();
    let (code, reason) = transfer_failure(&alice);
    assert_eq!(code, ErrorCode::StorageFailed, "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    recv.expect(|v| v["event"] == "failed");
    let part = recv.inside(&out.join("movie.bin.part"));
    let kept = std::fs::metadata(&part)
        .expect("the partial file is kept")
        .len();
    eprintln!("kept {kept} bytes; reason: {reason}");
    assert!(kept > 0 && kept <= 1 << 20, "{kept}");
    // recv is still connected: bob is online and a small file still gets its answer.
    alice.request_list().unwrap();
    let ClientEvent::PeerList(names) =
        wait_event(&alice, |e| matches!(e, ClientEvent::PeerList(_)))
    else {
        unreachable!()
    };
    assert!(names.iter().any(|n| n == "bob"), "{names:?}");
    recv.assert_running();
    drop(recv);
    drop(server);
}

#[test]
fn an_unwritable_download_dir_rejects_the_offer_with_the_reason() {
    if !namespaces_work() {
        return;
    }
    let (server, addr) = plain_server();
    let mount = tempfile::tempdir().unwrap();
    // A read-only file system refuses even root.
    let mut recv = bob_receives_on_tmpfs(mount.path(), "1m,ro", addr, mount.path());
    let src = tempfile::tempdir().unwrap();
    let alice = Client::connect(addr, "alice", ClientConfig::default()).unwrap();
    for round in 0..2 {
        let file = big_file(src.path(), &format!("doc-{round}.txt"), 1000);
        alice.send_file("bob", &file).unwrap();
        let (code, reason) = transfer_failure(&alice);
        eprintln!("offer {round}: {code:?}: {reason}");
        assert_eq!(code, ErrorCode::StorageFailed, "{reason}");
        assert!(reason.contains("Read-only file system"), "{reason}");
    }
    recv.assert_running();
    drop(recv);
    drop(server);
}
