//! Every client command ends, with its documented exit code, whatever the server does: the
//! real `tidings` binary against a real server that is killed (SIGKILL) at random points of
//! a transfer, stopped (SIGSTOP), or that is no tidings server at all.
//!
//! Exit codes under test (`tidings --help`): 0 success, 3 cannot connect (refused, or not a
//! tidings server: it closed, stayed silent past the handshake timeout, or spoke something
//! else), 9 the connection was lost, even mid-transfer.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{make_file, spawn_with_lines, BIN};
use serde_json::Value;

/// How long a client may take to exit once the server is gone or stopped.
const BOUND: Duration = Duration::from_secs(10);

/// A `tidings` process: its JSON event lines and its exit are delivered by threads, so the
/// test waits for either with a deadline.
struct Proc {
    pid: u32,
    what: String,
    lines: Receiver<String>,
    seen: Vec<Value>,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    stderr: Arc<Mutex<String>>,
    /// Signalled once standard error is read to its end.
    stderr_done: Receiver<()>,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(args: &[&str], stdin: Stdio) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdin(stdin).stderr(Stdio::piped());
        let (mut child, lines) = spawn_with_lines(&mut cmd, Some);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let (done, stderr_done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
            let _ = done.send(());
        });
        let stdin = child.stdin.take();
        let pid = child.id();
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(s) = child.wait() {
                let _ = tx.send(s);
            }
        });
        Proc {
            pid,
            what: args.join(" "),
            lines,
            seen: Vec::new(),
            exit,
            status: None,
            stderr,
            stderr_done,
            stdin,
        }
    }

    /// The next event line within `within`; `None` once the process closed its output or
    /// the time is up.
    fn next_event(&mut self, within: Duration) -> Option<&Value> {
        let line = self.lines.recv_timeout(within).ok()?;
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        self.seen.push(v);
        self.seen.last()
    }

    /// Waits (at most `within`) for an event `kind`; false if the output ended first.
    fn wait_event(&mut self, kind: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(v) if v["event"] == kind => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    fn saw(&self, kind: &str) -> bool {
        self.seen.iter().any(|v| v["event"] == kind)
    }

    /// Sends a signal (`-KILL`, `-STOP`); false if the process is gone already.
    fn signal(&self, sig: &str) -> bool {
        self.status.is_none()
            && Command::new("kill")
                .args([sig, &self.pid.to_string()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// The exit status, which must come within `within` of now; otherwise the process is
    /// killed and the test fails with what it printed.
    fn exit_within(&mut self, within: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let start = Instant::now();
        match self.exit.recv_timeout(within) {
            Ok(s) => {
                self.status = Some(s);
                // Everything it printed, now that its output is closed.
                while self.next_event(Duration::from_secs(5)).is_some() {}
                let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
                s
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.signal("-KILL");
                panic!(
                    "`tidings {}` did not exit within {:?}; its events: {:?}; stderr: {}",
                    self.what,
                    start.elapsed(),
                    self.events(),
                    self.stderr()
                );
            }
            Err(e) => panic!("waiting for `tidings {}`: {e}", self.what),
        }
    }

    fn code_within(&mut self, within: Duration) -> i32 {
        self.exit_within(within).code().expect("exited, not killed")
    }

    fn events(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|v| v["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL as well.
        if self.status.is_none() && self.exit.try_recv().is_err() {
            let _ = self.signal("-KILL");
        }
    }
}

/// `tidings --json serve` on a free port of 127.0.0.1, and its address.
fn serve(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--json", "serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(&args, Stdio::null());
    assert!(p.wait_event("listening", BOUND), "the server did not start");
    let addr = p.seen.last().unwrap()["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (p, addr)
}

/// `tidings --json recv --name bob` into `out`, leaving after one file.
fn recv_one(server: &str, out: &Path) -> Proc {
    recv_as("bob", server, out, &["--count", "1"])
}

/// `tidings --json recv --name NAME` into `out`, with `extra` flags.
fn recv_as(name: &str, server: &str, out: &Path, extra: &[&str]) -> Proc {
    let out = out.to_str().unwrap();
    let args = [
        "--json", "recv", "--name", name, "--server", server, "--out", out,
    ];
    Proc::spawn(&[&args[..], extra].concat(), Stdio::null())
}

/// `tidings --json send --name al --to bob FILE`.
fn send_to_bob(server: &str, file: &Path) -> Proc {
    let file = file.to_str().unwrap();
    let args = [
        "--json", "send", "--name", "al", "--to", "bob", "--server", server, file,
    ];
    Proc::spawn(&args, Stdio::null())
}

/// A small seeded generator (xorshift64*): the kill points are reproducible from the seed
/// printed by the test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Which bytes of a proxied connection to count.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    /// From the client to the server.
    Up,
    /// From the server to the client.
    Down,
}

/// What fires once the counted bytes reach the limit: kills the server.
type Trigger = Arc<dyn Fn() + Send + Sync>;

/// A TCP proxy for one connection to `server`. With `kill`, once `limit` bytes went in
/// direction `dir`, it forwards no more of them, runs the trigger (SIGKILL to the server),
/// and from then on passes on what the dead server's sockets do (end of stream, reset).
fn proxy(server: SocketAddr, kill: Option<(Dir, u64, Trigger)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(server) else {
            // The server is gone already: the client sees its connection close.
            return;
        };
        let fired = Arc::new(AtomicBool::new(false));
        for dir in [Dir::Up, Dir::Down] {
            let (from, to) = match dir {
                Dir::Up => (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                Dir::Down => (upstream.try_clone().unwrap(), client.try_clone().unwrap()),
            };
            let watch = kill
                .as_ref()
                .filter(|(d, _, _)| *d == dir)
                .map(|(_, limit, trigger)| (*limit, trigger.clone(), fired.clone()));
            std::thread::spawn(move || pump(from, to, watch));
        }
    });
    addr
}

fn pump(mut from: TcpStream, mut to: TcpStream, watch: Option<(u64, Trigger, Arc<AtomicBool>)>) {
    let mut buf = vec![0u8; 64 << 10];
    // Bytes still to pass before the trigger fires.
    let mut left = watch.as_ref().map(|(limit, _, _)| *limit);
    loop {
        if left == Some(0) {
            left = None;
            if let Some((_, trigger, fired)) = &watch {
                if !fired.swap(true, Ordering::SeqCst) {
                    trigger();
                }
            }
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        // Up to the limit exactly; the rest of this read is lost with the server.
        let take = left.map_or(n, |l| n.min(l as usize));
        if to.write_all(&buf[..take]).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        if let Some(l) = &mut left {
            *l -= take as u64;
        }
    }
}

/// Where a run kills the server.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After this many bytes of the sender's connection went this way.
    SenderBytes(Dir, u64),
    /// After this many bytes of the receiver's connection went this way.
    ReceiverBytes(Dir, u64),
    /// When the sender printed this many event lines.
    SenderLine(usize),
    /// When the receiver printed this many event lines.
    ReceiverLine(usize),
}

impl KillAt {
    fn pick(rng: &mut Rng, size: u64) -> KillAt {
        // The data direction of each side carries the file; the other carries little more
        // than the handshake, credit and the digest. A seventh of the points fall in the
        // first 64 bytes: the handshake.
        let bytes = |rng: &mut Rng, data: bool| match rng.below(7) {
            0 => rng.below(64),
            _ if data => rng.below(size + 2048),
            _ => rng.below(150),
        };
        match rng.below(6) {
            0 => KillAt::SenderBytes(Dir::Up, bytes(rng, true)),
            1 => KillAt::SenderBytes(Dir::Down, bytes(rng, false)),
            2 => KillAt::ReceiverBytes(Dir::Down, bytes(rng, true)),
            3 => KillAt::ReceiverBytes(Dir::Up, bytes(rng, false)),
            4 => KillAt::SenderLine(1 + rng.below(5) as usize),
            _ => KillAt::ReceiverLine(1 + rng.below(6) as usize),
        }
    }
}

/// The exit code must match what the process printed: 0 only with its success event, 3
/// only without `connected`, 9 only with it.
fn check_code(p: &Proc, code: i32, success: &str, context: &str) {
    let connected = p.saw("connected");
    let ok = match code {
        0 => p.saw(success),
        3 => !connected,
        9 => connected,
        _ => false,
    };
    assert!(
        ok,
        "{context}: `tidings {}` exited {code}; events {:?}; stderr: {}",
        p.what,
        p.events(),
        p.stderr()
    );
}

/// A server, and what kills it (SIGKILL; nothing once it is gone). The server lives as long
/// as the trigger.
fn killable_server() -> (SocketAddr, Trigger) {
    let (server, addr) = serve(&[]);
    let server = Mutex::new(server);
    (
        addr,
        Arc::new(move || {
            let _ = server.lock().unwrap().signal("-KILL");
        }),
    )
}

/// Runs one transfer through proxies and kills the server at `at`; both clients must exit
/// within the bound with a code that matches what they printed.
fn transfer_killed_at(at: KillAt, src: &Path, out: &Path, context: &str) -> (i32, i32) {
    let (addr, trigger) = killable_server();
    let (send_kill, recv_kill) = match at {
        KillAt::SenderBytes(d, n) => (Some((d, n, trigger.clone())), None),
        KillAt::ReceiverBytes(d, n) => (None, Some((d, n, trigger.clone()))),
        _ => (None, None),
    };
    let recv_addr = proxy(addr, recv_kill).to_string();
    let send_addr = proxy(addr, send_kill).to_string();
    let mut recv = recv_one(&recv_addr, out);
    // The receiver must be online before the sender offers (or its handshake was cut).
    recv.wait_event("connected", BOUND);
    let mut send = send_to_bob(&send_addr, src);
    let by_line = match at {
        KillAt::SenderLine(n) => Some((&mut send, n)),
        KillAt::ReceiverLine(n) => Some((&mut recv, n)),
        _ => None,
    };
    if let Some((p, n)) = by_line {
        // Lines already seen (the receiver's `connected`) count too.
        while p.seen.len() < n && p.next_event(BOUND).is_some() {}
        trigger();
    }
    let send_code = send.code_within(BOUND);
    let recv_code = recv.code_within(BOUND);
    // A point past the end of the traffic was never reached: the server goes now.
    trigger();
    check_code(&send, send_code, "sent", context);
    check_code(&recv, recv_code, "received", context);
    if send_code == 0 {
        // The receiver confirmed the digest: it has the file and says so.
        assert_eq!(
            recv_code, 0,
            "{context}: sent, but the receiver exited {recv_code}"
        );
    }
    if recv_code == 0 {
        let got = std::fs::read(out.join(src.file_name().unwrap())).unwrap();
        assert!(
            got == std::fs::read(src).unwrap(),
            "{context}: the file differs"
        );
    }
    (send_code, recv_code)
}

#[test]
fn clients_end_with_their_exit_code_when_the_server_is_killed_mid_transfer() {
    let seed: u64 = std::env::var("TIDINGS_EXITS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005E_ED17);
    let iterations: u64 = std::env::var("TIDINGS_EXITS_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("seed {seed} (TIDINGS_EXITS_SEED), {iterations} iterations");
    let mut rng = Rng(seed.wrapping_mul(2) | 1);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 4 << 20;
    make_file(&src, size, seed | 1);
    let mut codes = Vec::new();
    let start = Instant::now();
    for i in 0..iterations {
        let at = KillAt::pick(&mut rng, size as u64);
        let out: PathBuf = dir.path().join(format!("out{i}"));
        let context = format!("iteration {i}, killed at {at:?}");
        eprintln!("{context}");
        codes.push(transfer_killed_at(at, &src, &out, &context));
    }
    eprintln!(
        "exit codes (send, recv): {codes:?} in {:?}",
        start.elapsed()
    );
    // The points are spread enough to see the connection lost on both sides.
    assert!(codes.iter().any(|c| c.0 == 9), "{codes:?}");
    assert!(codes.iter().any(|c| c.1 == 9), "{codes:?}");
}

#[test]
fn clients_end_when_the_server_stops_answering() {
    // Short heartbeats: a client gives a silent server up after 600 ms.
    let (server, addr) = serve(&["--heartbeat-ms", "100", "--timeout-ms", "600"]);
    let addr = addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    make_file(&src, 8 << 20, 7);
    let out = dir.path().join("out");
    let mut recv = recv_one(&addr, &out);
    assert!(recv.wait_event("connected", BOUND));
    // A chat whose standard input stays open, and one whose input is closed when the server
    // is stopped: it says goodbye to a server that does not read, and leaves.
    let mut chat_open = Proc::spawn(
        &["--json", "chat", "--name", "carol", "--server", &addr],
        Stdio::piped(),
    );
    assert!(chat_open.wait_event("connected", BOUND));
    let mut chat_quits = Proc::spawn(
        &["--json", "chat", "--name", "dave", "--server", &addr],
        Stdio::piped(),
    );
    assert!(chat_quits.wait_event("connected", BOUND));
    let mut send = send_to_bob(&addr, &src);
    assert!(send.wait_event("started", BOUND), "{:?}", send.events());
    assert!(server.signal("-STOP"));
    let stopped = Instant::now();
    drop(chat_quits.stdin.take());
    assert_eq!(chat_quits.code_within(BOUND), 0, "{}", chat_quits.stderr());
    let send_code = send.code_within(BOUND);
    let recv_code = recv.code_within(BOUND);
    check_code(&send, send_code, "sent", "server stopped");
    check_code(&recv, recv_code, "received", "server stopped");
    // The heartbeat timeout (600 ms) bounds it, not the default 30 s.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    // The chat with its input open reconnects (as documented) rather than exiting.
    assert!(
        chat_open.wait_event("reconnecting", BOUND),
        "{:?}",
        chat_open.events()
    );
    assert!(chat_open.exit.try_recv().is_err(), "the chat exited");
    assert!(server.signal("-KILL"));
}

#[test]
fn say_and_chat_end_when_the_server_is_killed_at_any_point() {
    let mut rng = Rng(0xC0FFEE);
    for i in 0..8 {
        let (addr, trigger) = killable_server();
        let dir = if i % 2 == 0 { Dir::Up } else { Dir::Down };
        let limit = rng.below(160);
        let context = format!("iteration {i}: killed after {limit} bytes {dir:?}");
        let say_addr = proxy(addr, Some((dir, limit, trigger.clone()))).to_string();
        let mut say = Proc::spawn(
            &[
                "--json", "say", "--name", "ci", "--server", &say_addr, "build", "is", "green",
            ],
            Stdio::null(),
        );
        let code = say.code_within(BOUND);
        check_code(&say, code, "said", &context);
        trigger();
        // The chat's input is closed: it leaves as soon as it joined, whether or not the
        // server is still there.
        let (addr, trigger) = killable_server();
        let chat_addr = proxy(addr, Some((dir, limit, trigger.clone()))).to_string();
        let mut chat = Proc::spawn(
            &["--json", "chat", "--name", "eve", "--server", &chat_addr],
            Stdio::null(),
        );
        let code = chat.code_within(BOUND);
        trigger();
        let ok = if chat.saw("connected") {
            code == 0
        } else {
            code == 3
        };
        assert!(
            ok,
            "{context}: chat exited {code}; {:?} {}",
            chat.events(),
            chat.stderr()
        );
    }
}

/// Runs `tidings --json ARGS` to its end (at most the bound) and returns the exit code with
/// standard error.
fn run(args: &[&str]) -> (i32, String) {
    let args: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
    let mut p = Proc::spawn(&args, Stdio::null());
    let code = p.code_within(BOUND);
    (code, p.stderr())
}

#[test]
fn server_addresses_take_port_9988_by_default_and_bad_ones_are_usage_errors() {
    let (_server, addr) = serve(&[]);
    // A host name with a port.
    let with_name = format!("localhost:{}", addr.port());
    let (code, err) = run(&["say", "--name", "n", "--server", &with_name, "hi"]);
    assert_eq!(code, 0, "{err}");
    // Without a port, 9988 is tried (nothing listens on this loopback address).
    let (code, err) = run(&["say", "--name", "n", "--server", "127.0.0.3", "hi"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot connect to 127.0.0.3:9988"), "{err}");
    // A bad value: exit 2 before anything is tried, saying what is wrong and what is
    // expected.
    for (bad, says) in [
        ("localhost:http", "\"http\" is not a port"),
        ("[::1", "not closed"),
        ("http://localhost:9988", "not a tidings address"),
    ] {
        let (code, err) = run(&["say", "--name", "n", "--server", bad, "hi"]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains(says) && err.contains("HOST:PORT"),
            "{bad}: {err}"
        );
    }
}

/// A listener on 127.0.0.1:0 that treats each connection with `act` on a thread of its own.
fn fake_server(act: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || act(conn));
        }
    });
    addr
}

/// `say` against `addr` must exit 3 within `within`, with one line saying it is not a
/// tidings server.
fn not_tidings(addr: &str, extra: &[&str], within: Duration) -> String {
    let mut args = vec!["--json", "say", "--name", "n", "--server", addr];
    args.extend_from_slice(extra);
    args.push("hi");
    let start = Instant::now();
    let mut p = Proc::spawn(&args, Stdio::null());
    let code = p.code_within(within);
    let err = p.stderr();
    assert_eq!(code, 3, "{err}");
    assert!(start.elapsed() < within, "{:?}", start.elapsed());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to {addr}: not a tidings server")),
        "{err}"
    );
    err
}

#[test]
fn something_that_is_not_a_tidings_server_is_exit_3() {
    // An HTTP server answers our preamble as a bad request and closes.
    let http = fake_server(|mut s| {
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    not_tidings(&http, &[], BOUND);
    // A server that talks something else at once and keeps the connection.
    let ssh = fake_server(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n");
        let mut buf = [0u8; 512];
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    not_tidings(&ssh, &[], BOUND);
    // Binary garbage.
    let garbage = fake_server(|mut s| {
        let _ = s.write_all(&[0xff; 64]);
        let mut buf = [0u8; 512];
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    not_tidings(&garbage, &[], BOUND);
    // One that closes at once.
    let closes = fake_server(drop);
    let err = not_tidings(&closes, &[], BOUND);
    assert!(err.contains("closed during the handshake"), "{err}");
    // A listener that never answers: the handshake timeout bounds it.
    let silent = fake_server(|mut s| {
        let mut buf = [0u8; 512];
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let err = not_tidings(
        &silent,
        &["--handshake-timeout-ms", "300"],
        Duration::from_secs(5),
    );
    assert!(err.contains("handshake not completed in time"), "{err}");
}

#[test]
fn an_address_that_never_accepts_is_exit_3_within_the_handshake_timeout() {
    // A listener whose backlog is full: the kernel drops further SYNs, so connecting hangs
    // (as behind a firewall that drops packets) instead of being refused.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
        assert!(held.len() < 5000, "the backlog never filled");
    }
    eprintln!("the backlog is full after {} connections", held.len());
    let addr = addr.to_string();
    let start = Instant::now();
    let mut p = Proc::spawn(
        &[
            "--json",
            "say",
            "--name",
            "n",
            "--server",
            &addr,
            "--handshake-timeout-ms",
            "300",
            "hi",
        ],
        Stdio::null(),
    );
    let code = p.code_within(Duration::from_secs(5));
    let err = p.stderr();
    assert_eq!(code, 3, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.contains(&format!("cannot connect to {addr}: no answer within 0.3 s")),
        "{err}"
    );
    drop(listener);
}

/// `tidings cert` into a new folder: (the folder, ca.pem, cert.pem, key.pem).
fn certificates(names: &[&str]) -> (tempfile::TempDir, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["cert", "--out", dir.path().to_str().unwrap()];
    for name in names {
        args.extend_from_slice(&["--name", name]);
    }
    let (code, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let file = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let files = [file("ca.pem"), file("cert.pem"), file("key.pem")];
    (dir, files)
}

#[test]
fn tls_mistakes_end_with_exit_3_and_say_what_to_do() {
    let (_dir, [ca, cert, key]) = certificates(&["localhost"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by others");
    }
    // `cert` never overwrites.
    let (code, err) = run(&[
        "cert",
        "--name",
        "localhost",
        "--out",
        _dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("exists"), "{err}");
    let (_tls, tls_addr) = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    let (_plain, plain_addr) = serve(&[]);
    let tls_url = format!("tls://localhost:{}", tls_addr.port());
    // Over TLS, trusting the CA: said.
    let (code, err) = run(&[
        "say", "--name", "a", "--server", &tls_url, "--ca", &ca, "hi",
    ]);
    assert_eq!(code, 0, "{err}");
    // Plaintext to the TLS port: told to use tls://.
    let (code, err) = run(&[
        "say",
        "--name",
        "b",
        "--server",
        &tls_addr.to_string(),
        "hi",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("speaks TLS") && err.contains("tls://"),
        "{err}"
    );
    // TLS to the plaintext port.
    let plain_tls = format!("tls://localhost:{}", plain_addr.port());
    let (code, err) = run(&[
        "say", "--name", "c", "--server", &plain_tls, "--ca", &ca, "hi",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS"), "{err}");
    // Without --ca the system's authorities are trusted, and none of them signed it.
    let (code, err) = run(&["say", "--name", "s", "--server", &tls_url, "hi"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--ca"), "{err}");
    // A CA that did not sign the certificate.
    let (_other, [other_ca, _, _]) = certificates(&["localhost"]);
    let (code, err) = run(&[
        "say", "--name", "d", "--server", &tls_url, "--ca", &other_ca, "hi",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("do not trust") && err.contains("--ca"),
        "{err}"
    );
    // A name the certificate does not carry (127.0.0.1 is not in it).
    let by_ip = format!("tls://127.0.0.1:{}", tls_addr.port());
    let (code, err) = run(&["say", "--name", "e", "--server", &by_ip, "--ca", &ca, "hi"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("another name"), "{err}");
    // A CA file that is missing, or not PEM.
    let (code, err) = run(&[
        "say",
        "--name",
        "f",
        "--server",
        &tls_url,
        "--ca",
        "/nonexistent/ca.pem",
        "hi",
    ]);
    assert_eq!(code, 5, "{err}");
    let (code, err) = run(&[
        "say", "--name", "g", "--server", &tls_url, "--ca", &key, "hi",
    ]);
    assert_eq!(code, 2, "{err}");
    // A server whose key does not match its certificate does not start.
    let (_x, [_, other_cert, _]) = certificates(&["localhost"]);
    let (code, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &other_cert,
        "--tls-key",
        &key,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("certificate and key"), "{err}");
}

/// Waits until the log file at `path` has `count` lines containing `needle` (the server
/// writes its log there as it goes), within [`BOUND`].
fn wait_log(path: &Path, needle: &str, count: usize) {
    let end = std::time::Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "no {needle:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_certificate_is_reloaded_when_its_files_change_and_on_sighup() {
    let (_a, [ca_a, cert_a, key_a]) = certificates(&["localhost"]);
    let (_b, [ca_b, cert_b, key_b]) = certificates(&["localhost"]);
    let live = tempfile::tempdir().unwrap();
    let (cert, key, log) = (
        live.path().join("cert.pem"),
        live.path().join("key.pem"),
        live.path().join("serve.log"),
    );
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (server, addr) = serve(&[
        "--tls-cert",
        &s(&cert),
        "--tls-key",
        &s(&key),
        "--log-file",
        &s(&log),
    ]);
    let url = format!("tls://localhost:{}", addr.port());
    let say = |ca: &str| run(&["say", "--name", "r", "--server", &url, "--ca", ca, "hi"]).0;
    assert_eq!(say(&ca_a), 0);
    // A renewal: new files in place, taken by the server by itself (the key may land before
    // its certificate: that moment is refused and logged, the old certificate stays).
    std::fs::copy(&key_b, &key).unwrap();
    std::fs::copy(&cert_b, &cert).unwrap();
    wait_log(&log, "TLS certificate reloaded", 1);
    assert_eq!(say(&ca_b), 0);
    assert_eq!(
        say(&ca_a),
        3,
        "new connections still got the old certificate"
    );
    // A broken file and SIGHUP: the reason is logged and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(server.signal("-HUP"));
    wait_log(&log, "old one stays in use", 1);
    assert_eq!(say(&ca_b), 0);
}

/// `tidings user ACTION…` with `stdin` written to its standard input: (exit code, stdout
/// events, stderr).
fn user(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let args: Vec<&str> = ["--json", "user"].iter().chain(args).copied().collect();
    let mut p = Proc::spawn(&args, Stdio::piped());
    let mut input = p.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let code = p.code_within(BOUND);
    (code, p.seen.clone(), p.stderr())
}

/// A new folder with an accounts file of `users` (name, password): (the folder, the file).
fn accounts_file(users: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts").to_str().unwrap().to_owned();
    for (name, pw) in users {
        let (code, _, err) = user(&["add", name, "--accounts", &file], &format!("{pw}\n"));
        assert_eq!(code, 0, "{err}");
    }
    (dir, file)
}

#[test]
fn user_add_del_list_round_trip_in_a_private_file_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts");
    let f = file.to_str().unwrap();
    let names = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|v| v["event"] == "user")
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (code, ev, err) = user(&["add", "alice", "--accounts", f], "alice-pw\n");
    assert_eq!(
        (code, ev[0]["action"].as_str()),
        (0, Some("added")),
        "{err}"
    );
    let (code, _, err) = user(&["add", "bob", "--accounts", f], "bob-pw\n");
    assert_eq!(code, 0, "{err}");
    // The same user by its key: a new password, not a second line.
    let (code, ev, err) = user(&["add", "ALICE", "--accounts", f], "new-pw\r\n");
    assert_eq!(
        (code, ev[0]["action"].as_str()),
        (0, Some("changed")),
        "{err}"
    );
    let (code, ev, _) = user(&["list", "--accounts", f], "");
    assert_eq!((code, names(&ev)), (0, vec!["ALICE".into(), "bob".into()]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("$argon2id$").count(), 2, "{text}");
    assert!(!text.contains("-pw"), "no password in the file: {text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the accounts file is readable by others"
        );
    }
    // Written through a temporary file renamed into place: nothing else is left beside it.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (code, ev, err) = user(&["del", "alice", "--accounts", f], "");
    assert_eq!((code, ev[0]["name"].as_str()), (0, Some("ALICE")), "{err}");
    let (_, ev, _) = user(&["list", "--accounts", f], "");
    assert_eq!(names(&ev), vec!["bob".to_owned()]);
    // An operator made the file readable to the server's group: a rewrite keeps that (and
    // no more: never readable by others).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, _, err) = user(&["add", "carol", "--accounts", f], "carol-pw\n");
        assert_eq!(code, 0, "{err}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{mode:o}");
        let (code, _, err) = user(&["del", "carol", "--accounts", f], "");
        assert_eq!(code, 0, "{err}");
    }
    // Mistakes: exit 2 with one line saying what is wrong; the file is unchanged.
    for (args, stdin, says) in [
        (&["del", "carol"][..], "", "no user named carol"),
        (&["add", "two words"][..], "pw\n", "two words"),
        (&["add", "dave"][..], "\n", "empty"),
    ] {
        let all = [args, &["--accounts", f][..]].concat();
        let (code, _, err) = user(&all, stdin);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{err}"
        );
    }
    let (code, _, err) = user(&["list", "--accounts", "/nonexistent/accounts"], "");
    assert_eq!(code, 5, "{err}");
    assert_eq!(
        names(&user(&["list", "--accounts", f], "").1),
        vec!["bob".to_owned()]
    );
}

#[test]
fn serve_with_accounts_admits_owners_over_tls_and_refuses_the_rest_clearly() {
    let (dir, [ca, cert, key]) = certificates(&["localhost"]);
    let (_users, accounts) = accounts_file(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let accounts = accounts.as_str();
    let pw_file = |name: &str, pw: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{pw}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let alice_pw = pw_file("alice.pw", "alice-pw");
    let wrong_pw = pw_file("wrong.pw", "bob-pw");
    let (mut server, addr) = serve(&[
        "--accounts",
        accounts,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let url = format!("tls://localhost:{}", addr.port());
    let say = |name: &str, extra: &[&str]| {
        let args = [
            &["say", "--name", name, "--server", &url, "--ca", &ca][..],
            extra,
            &["hello from the owner"][..],
        ]
        .concat();
        run(&args)
    };
    // The owner, over TLS, with --password-file: said, and the server saw it.
    let (code, err) = say("alice", &["--password-file", &alice_pw]);
    assert_eq!(code, 0, "{err}");
    assert!(server.wait_event("text", BOUND));
    assert_eq!(server.seen.last().unwrap()["from"], "alice");
    // A wrong password and an unknown user: exit 4 and the same words.
    let (code, wrong) = say("alice", &["--password-file", &wrong_pw]);
    assert_eq!(code, 4, "{wrong}");
    assert!(
        wrong.contains("auth-failed") && wrong.contains("wrong name or password"),
        "{wrong}"
    );
    let (code, unknown) = say("mallory", &["--password-file", &alice_pw]);
    assert_eq!((code, &unknown), (4, &wrong), "one answer for both");
    // The owner's name without a password: told it is registered and how to log in.
    let (code, err) = say("alice", &[]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("auth-required")
            && err.contains("alice is a registered name")
            && err.contains("--password-file"),
        "{err}"
    );
    // A guest: refused by default.
    let (code, err) = say("guest", &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("registered users only"), "{err}");
    // TIDINGS_PASSWORD works as well as a file.
    let o = Command::new(BIN)
        .args(["say", "--name", "bob", "--server", &url, "--ca", &ca, "hi"])
        .env("TIDINGS_PASSWORD", "bob-pw")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn serve_with_guests_lets_unregistered_names_in_over_loopback_plaintext() {
    let (dir, accounts) = accounts_file(&[("alice", "alice-pw")]);
    let accounts = accounts.as_str();
    let (_server, addr) = serve(&["--accounts", accounts, "--guests"]);
    let server = addr.to_string();
    let (code, err) = run(&["say", "--name", "guest", "--server", &server, "hi"]);
    assert_eq!(code, 0, "{err}");
    // A password over plaintext from loopback is taken.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "alice-pw").unwrap();
    let pw = pw.to_str().unwrap();
    let args = [
        "say",
        "--name",
        "alice",
        "--server",
        &server,
        "--password-file",
        pw,
        "hi",
    ];
    let (code, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    // Guests never take a registered name.
    let (code, err) = run(&["say", "--name", "ALICE", "--server", &server, "hi"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("auth-required"), "{err}");
}

#[test]
fn a_user_deleted_while_online_is_closed_when_the_server_sees_the_file_change() {
    let (dir, accounts) = accounts_file(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let accounts = accounts.as_str();
    let (mut server, addr) = serve(&["--accounts", accounts]);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "alice-pw\n").unwrap();
    let out = dir.path().join("in");
    let mut alice = recv_as(
        "alice",
        &addr.to_string(),
        &out,
        &["--password-file", pw.to_str().unwrap()],
    );
    assert!(alice.wait_event("connected", BOUND), "{}", alice.stderr());
    assert!(server.wait_event("joined", BOUND));
    // The file changes (no signal): the server notices within its watch period.
    let (code, _, err) = user(&["del", "alice", "--accounts", accounts], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(alice.code_within(BOUND), 9, "{}", alice.stderr());
    assert!(
        alice.stderr().contains("the account alice was removed"),
        "{}",
        alice.stderr()
    );
}
