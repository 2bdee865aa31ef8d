//! One scripted client of a case: it sends what the case says, byte for byte if need be,
//! and reads the server strictly: every byte is checked by the runner's own codec, every
//! read is bounded in time and size, and nothing the server sends can make it panic.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::json::{self, Source};
use crate::link::Stream;
use crate::wire::{self, Decoded, FrameReader, Message, PREAMBLE};
use crate::ws::{self, Incoming, Opcode, Step};

/// Why a case failed: what the server did that breaks the spec, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail(pub String);

/// What a step of a case gives, or why the case failed.
pub type Check<T = ()> = Result<T, Fail>;

/// Fails the case with a formatted reason.
#[macro_export]
#[doc(hidden)]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::client::Fail(format!($($arg)*))) };
}

/// Every byte the clients of one case sent and received, in hex, in the order it happened;
/// shown for a failing case. Bounded: a long case keeps its first lines.
#[derive(Clone)]
pub struct Transcript(Rc<RefCell<Lines>>);

struct Lines {
    start: Instant,
    lines: Vec<String>,
    dropped: usize,
}

/// The most lines one case's transcript keeps.
const TRANSCRIPT_LINES: usize = 400;
/// The largest binary WebSocket message the client sends: longer native bytes are split.
const WS_PIECE: usize = 64 << 10;
/// How long [`Client::during_all`] reads one client before the next.
const TURN: Duration = Duration::from_millis(20);
/// The most bytes of one send or read shown in full.
const SHOWN_BYTES: usize = 96;

impl Transcript {
    /// An empty transcript, its clock starting now.
    pub fn new() -> Transcript {
        Transcript(Rc::new(RefCell::new(Lines {
            start: Instant::now(),
            lines: Vec::new(),
            dropped: 0,
        })))
    }

    /// Notes one line: `who` `arrow` `what`.
    pub fn note(&self, who: &str, arrow: &str, what: &str) {
        let mut l = self.0.borrow_mut();
        if l.lines.len() >= TRANSCRIPT_LINES {
            l.dropped += 1;
            return;
        }
        let ms = l.start.elapsed().as_millis();
        l.lines.push(format!("{ms:>6} ms  {who} {arrow} {what}"));
    }

    /// Notes bytes in hex (long ones cut).
    pub fn bytes(&self, who: &str, arrow: &str, bytes: &[u8]) {
        self.note(who, arrow, &hex(bytes));
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        let l = self.0.borrow();
        let mut out = l.lines.clone();
        if l.dropped > 0 {
            out.push(format!("… {} more lines not kept", l.dropped));
        }
        out
    }
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::new()
    }
}

/// `bytes` as hex, the first [`SHOWN_BYTES`] of them.
fn hex(bytes: &[u8]) -> String {
    let mut s: String = bytes
        .iter()
        .take(SHOWN_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect();
    if bytes.len() > SHOWN_BYTES {
        s.push_str(&format!(" … ({} bytes)", bytes.len()));
    }
    s
}

/// How the client's messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriage {
    /// The native byte stream on TCP or TLS (§3, §4).
    Native,
    /// The native byte stream in binary WebSocket messages (§12.2).
    WsBinary,
    /// One JSON text per message (§12.3).
    WsJson,
}

/// What the server did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A message (pings too, answered already unless the client is silent).
    Message(Message),
    /// The server closed the stream.
    Closed,
    /// Nothing within the time given.
    Nothing,
}

/// One scripted client.
pub struct Client {
    /// What the transcript calls it: its name, or what it is for.
    pub label: String,
    stream: Stream,
    carriage: Carriage,
    ws: ws::FrameReader,
    frames: FrameReader,
    /// Bytes of the server's preamble still to check (native stream only).
    preamble_left: usize,
    queue: VecDeque<Message>,
    closed: bool,
    /// Native bytes received from the server, preamble included.
    pub received: usize,
    /// The WebSocket close frame the server sent: code and reason.
    pub ws_close: Option<(u16, String)>,
    /// Whether pings are answered (a silent client lets the server's heartbeat expire).
    pub answer_pings: bool,
    timeout: Duration,
    nonce: u64,
    mask: u32,
    log: Transcript,
}

impl Client {
    /// A client over `stream` (a WebSocket already upgraded when `carriage` says so).
    pub fn new(
        label: &str,
        stream: Stream,
        carriage: Carriage,
        timeout: Duration,
        log: Transcript,
    ) -> Client {
        Client {
            label: label.to_string(),
            stream,
            carriage,
            ws: ws::FrameReader::new(wire::MAX_MAX_FRAME as usize * 2),
            frames: FrameReader::new(wire::MIN_MAX_FRAME),
            preamble_left: if carriage == Carriage::WsJson {
                0
            } else {
                PREAMBLE.len()
            },
            queue: VecDeque::new(),
            closed: false,
            received: 0,
            ws_close: None,
            answer_pings: true,
            timeout,
            nonce: 0x7D1D_0000,
            mask: 0x9E37_79B9 ^ label.len() as u32,
            log,
        }
    }

    /// How this client's messages travel.
    pub fn carriage(&self) -> Carriage {
        self.carriage
    }

    /// The frame limit this client announced: what it accepts from the server (§4.2).
    pub fn set_frame_limit(&mut self, limit: u32) {
        self.frames = FrameReader::new(limit.min(wire::MAX_MAX_FRAME));
    }

    /// Renames the client in the transcript.
    pub fn relabel(&mut self, label: &str) {
        self.label = label.to_string();
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift: masks need not be secret here, only differ.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        self.mask.to_be_bytes()
    }

    /// Sends one WebSocket frame as it is: what no mode allows, for the cases that need it.
    pub fn send_ws(&mut self, opcode: Opcode, payload: &[u8]) -> Check {
        self.log
            .bytes(&self.label, &format!("→ ws {opcode:?}"), payload);
        self.write_ws(opcode, payload)
    }

    fn write_ws(&mut self, opcode: Opcode, payload: &[u8]) -> Check {
        let mask = self.next_mask();
        ws::send(&mut self.stream, opcode, payload, mask).map_err(|e| self.lost(e))
    }

    fn lost(&self, e: io::Error) -> Fail {
        Fail(format!("{}: the connection failed: {e}", self.label))
    }

    /// Sends `bytes` of the native stream as they are (in a binary message over WebSocket).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Check {
        self.log.bytes(&self.label, "→", bytes);
        match self.carriage {
            Carriage::Native => self
                .stream
                .write_all(bytes)
                .and_then(|()| self.stream.flush())
                .map_err(|e| self.lost(e)),
            // Message boundaries carry no meaning (§12.2); small messages stay within any
            // WebSocket message limit the server sets near its frame limit (§12.5).
            Carriage::WsBinary => bytes
                .chunks(WS_PIECE)
                .try_for_each(|piece| self.write_ws(Opcode::Binary, piece)),
            Carriage::WsJson => fail!("{}: raw bytes cannot go in the JSON mode", self.label),
        }
    }

    /// Sends one text message as it is (the JSON mode's input, or a violation of the mode).
    pub fn send_text(&mut self, text: &str) -> Check {
        self.log.note(&self.label, "→", &format!("text {text}"));
        self.write_ws(Opcode::Text, text.as_bytes())
    }

    /// Sends one message: framed, or as JSON in the JSON mode.
    pub fn send(&mut self, message: &Message) -> Check {
        match self.carriage {
            Carriage::WsJson => self.send_text(&json::to_json(message)),
            _ => self.send_raw(&message.encode()),
        }
    }

    /// Sends the preamble (nothing in the JSON mode, where the gateway sends it).
    pub fn preamble(&mut self) -> Check {
        match self.carriage {
            Carriage::WsJson => Ok(()),
            _ => self.send_raw(&PREAMBLE),
        }
    }

    /// Ends our direction of the stream: the end of stream of §6.7.3 (a WebSocket close).
    pub fn finish(&mut self) -> Check {
        self.log.note(&self.label, "→", "end of stream");
        match self.carriage {
            Carriage::Native => {
                self.stream.finish();
                Ok(())
            }
            _ => self.write_ws(Opcode::Close, &1000u16.to_be_bytes()),
        }
    }

    /// What the server does next within the client's timeout.
    pub fn poll(&mut self) -> Check<Got> {
        let deadline = Instant::now() + self.timeout;
        self.poll_until(deadline)
    }

    /// What the server does next before `deadline`.
    pub fn poll_until(&mut self, deadline: Instant) -> Check<Got> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(Got::Message(m));
            }
            if self.closed {
                return Ok(Got::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Got::Nothing);
            }
            let _ = self.stream.tcp().set_read_timeout(Some(left));
            let mut buf = [0u8; 64 << 10];
            match self.stream.read(&mut buf) {
                Ok(0) => self.ended()?,
                Ok(n) => self.arrived(&buf[..n])?,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset after the server's last bytes (it closed with ours unread) ends
                // the stream as well.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.ended()?,
                Err(e) => return Err(self.lost(e)),
            }
        }
    }

    /// The stream ended: a frame cut short is the server's fault (§6.9: frames are atomic).
    fn ended(&mut self) -> Check {
        self.log.note(&self.label, "←", "end of stream");
        self.closed = true;
        if self.preamble_left > 0 && self.received > 0 {
            fail!(
                "{}: the server's stream ended inside its preamble (§3.3)",
                self.label
            );
        }
        if self.frames.holds_partial() {
            fail!(
                "{}: the server's stream ended inside a frame (§6.9: frames are atomic)",
                self.label
            );
        }
        Ok(())
    }

    fn arrived(&mut self, bytes: &[u8]) -> Check {
        if self.carriage == Carriage::Native {
            return self.native(bytes);
        }
        self.ws.push(bytes);
        loop {
            let step = self.ws.next_step().map_err(|why| {
                Fail(format!(
                    "{}: the server's WebSocket frames: {why}",
                    self.label
                ))
            })?;
            match step {
                Step::Incomplete => return Ok(()),
                Step::Ping(payload) => self.write_ws(Opcode::Pong, &payload)?,
                Step::Incoming(Incoming::Binary(payload)) => {
                    if self.carriage == Carriage::WsJson {
                        self.log.bytes(&self.label, "←", &payload);
                        fail!("{}: a binary message in the JSON mode (§12.1)", self.label);
                    }
                    self.native(&payload)?;
                }
                Step::Incoming(Incoming::Text(text)) => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    self.log.note(&self.label, "←", &format!("text {text}"));
                    if self.carriage == Carriage::WsBinary {
                        fail!("{}: a text message in the binary mode (§12.1)", self.label);
                    }
                    match json::from_json(&text, Source::Server) {
                        Ok(m) => self.take(m)?,
                        Err((code, why)) => fail!(
                            "{}: the server's JSON breaks §12.3 ({}): {why}",
                            self.label,
                            wire::code_name(code)
                        ),
                    }
                }
                Step::Incoming(Incoming::Close(code, reason)) => {
                    self.log.note(
                        &self.label,
                        "←",
                        &format!("WebSocket close {code} {reason:?}"),
                    );
                    self.ws_close = Some((code, reason));
                    // The closing handshake: echo the code, then the stream is over.
                    let _ = self.write_ws(Opcode::Close, &code.to_be_bytes());
                    self.closed = true;
                    return self.ended();
                }
            }
        }
    }

    fn native(&mut self, bytes: &[u8]) -> Check {
        self.log.bytes(&self.label, "←", bytes);
        let mut bytes = bytes;
        while self.preamble_left > 0 && !bytes.is_empty() {
            let at = PREAMBLE.len() - self.preamble_left;
            if bytes[0] != PREAMBLE[at] {
                fail!(
                    "{}: byte {at} of the server's preamble is {:#04x}, not {:#04x} (§3.1, §3.3: a server always sends version 1)",
                    self.label,
                    bytes[0],
                    PREAMBLE[at]
                );
            }
            self.preamble_left -= 1;
            self.received += 1;
            bytes = &bytes[1..];
        }
        self.received += bytes.len();
        self.frames.push(bytes);
        loop {
            match self.frames.next_message() {
                Decoded::Incomplete => return Ok(()),
                Decoded::Message(m) => self.take(m)?,
                Decoded::Violation(code) => fail!(
                    "{}: the server sent a frame a receiver must refuse as {} (§4.3)",
                    self.label,
                    wire::code_name(code)
                ),
            }
        }
    }

    /// One decoded message from the server: pings are answered here (§6.6.1 rule 2), and
    /// passed on like any message.
    fn take(&mut self, m: Message) -> Check {
        if let Message::Ping { nonce } = m {
            if self.answer_pings {
                self.send(&Message::Pong { nonce })?;
            }
        }
        self.queue.push_back(m);
        Ok(())
    }

    /// The next message, whatever it is; fails on a close or silence.
    pub fn next(&mut self, what: &str) -> Check<Message> {
        match self.poll()? {
            Got::Message(m) => Ok(m),
            Got::Closed => fail!(
                "{}: the server closed the connection; expected {what}",
                self.label
            ),
            Got::Nothing => fail!(
                "{}: nothing within {:?}; expected {what}",
                self.label,
                self.timeout
            ),
        }
    }

    /// The first message `pick` takes, skipping others (what other clients of a shared server
    /// cause: presence, lists); fails when the server closes or nothing comes in time.
    pub fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Check<T> {
        let deadline = Instant::now() + self.timeout;
        let mut skipped = Vec::new();
        loop {
            match self.poll_until(deadline)? {
                Got::Message(m) => match pick(&m) {
                    Some(t) => return Ok(t),
                    None => skipped.push(m.name()),
                },
                Got::Closed => fail!(
                    "{}: the server closed the connection; expected {what} (got {skipped:?} first)",
                    self.label
                ),
                Got::Nothing => fail!(
                    "{}: no {what} within {:?} (got {skipped:?})",
                    self.label,
                    self.timeout
                ),
            }
        }
    }

    /// Everything until the server closes the stream; fails if it does not within the timeout.
    pub fn until_closed(&mut self) -> Check<Vec<Message>> {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.poll_until(deadline)? {
                Got::Message(m) => got.push(m),
                Got::Closed => return Ok(got),
                Got::Nothing => fail!(
                    "{}: the server did not close the connection within {:?} (got {:?})",
                    self.label,
                    self.timeout,
                    names(&got)
                ),
            }
        }
    }

    /// Everything that arrives within `window` (an observation: what must not come).
    pub fn during(&mut self, window: Duration) -> Check<Vec<Message>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Got::Message(m) = self.poll_until(deadline)? {
            got.push(m);
        }
        Ok(got)
    }

    /// Everything each of `clients` gets within `window`, read in turn, so that none of them
    /// falls silent (and out of the server's heartbeat timeout) while another is watched.
    pub fn during_all(clients: &mut [&mut Client], window: Duration) -> Check<Vec<Vec<Message>>> {
        let end = Instant::now() + window;
        let mut got = vec![Vec::new(); clients.len()];
        while Instant::now() < end {
            for (c, seen) in clients.iter_mut().zip(&mut got) {
                let slice = (Instant::now() + TURN).min(end);
                while let Got::Message(m) = c.poll_until(slice)? {
                    seen.push(m);
                }
            }
        }
        Ok(got)
    }

    /// A round trip through the server: a `ping`, and everything that came before its
    /// `pong`. The server queues its answer behind what it queued for us before (§6.9), so
    /// whatever was on its way has arrived.
    pub fn sync(&mut self) -> Check<Vec<Message>> {
        self.nonce += 1;
        let nonce = self.nonce;
        self.send(&Message::Ping { nonce })?;
        let mut before = Vec::new();
        self.expect("the pong to our ping (§6.6.1 rule 2)", |m| match m {
            Message::Pong { nonce: n } if *n == nonce => Some(()),
            other => {
                before.push(other.clone());
                None
            }
        })?;
        Ok(before)
    }
}

/// The names of `messages`, for reasons.
pub fn names(messages: &[Message]) -> Vec<&'static str> {
    messages.iter().map(Message::name).collect()
}
