//! [`WsConnection`]: the WebSocket state machine after the opening handshake.

use super::close::{encode_close_payload, CloseCode, MAX_CLOSE_REASON};
use super::error::{WsError, WsSendError};
use super::frame::{
    encode_frame, encode_frame_header, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use super::recv::{Incoming, Receiver};
use super::utf8::Utf8Bytes;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Payloads at least this long are queued by reference by [`WsConnection::send_binary_bytes`]
/// and [`WsConnection::send_text_bytes`] instead of being copied next to their header: below it,
/// one contiguous write beats saving a copy.
const SHARE_THRESHOLD: usize = 4096;

/// Which end of the connection this is. It decides masking: clients mask, servers do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsRole {
    /// Opened the connection; masks every frame it sends and expects unmasked frames.
    Client,
    /// Accepted the connection; expects masked frames and sends unmasked ones.
    Server,
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsState {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's; messages the peer sends meanwhile are
    /// still delivered.
    Closing,
    /// Nothing more is sent or received: close frames went both ways, the connection failed,
    /// the transport ended, or the close handshake ran out of time
    /// ([`WsConfig::close_timeout`]). See [`WsConnection::should_close_socket`].
    Closed,
}

/// Limits for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest message (all fragments together) accepted; more fails with 1009. Default 16 MiB.
    pub max_message_size: usize,
    /// Largest single frame payload accepted; more fails with 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// How long the close handshake may take, counted from the moment it starts (a close
    /// frame sent or received, or a protocol failure): how long we wait for the peer's close
    /// frame, a client for the server to end the transport, and anyone for a peer that stopped
    /// reading to take our close frame. When it has passed,
    /// [`should_close_socket`](WsConnection::should_close_socket) is true whatever is left.
    /// Default 5 s.
    pub close_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Supplies masking keys to a client connection.
///
/// RFC 6455 wants each key unpredictable to the application sending the payload (it protects
/// intermediaries from cache poisoning), so the runtime should draw them from a good random
/// source. The core has no randomness of its own; closures `FnMut() -> [u8; 4]` implement this.
pub trait MaskSource: Send {
    /// The key for the next frame.
    fn next_mask(&mut self) -> [u8; 4];
}

impl<F: FnMut() -> [u8; 4] + Send> MaskSource for F {
    fn next_mask(&mut self) -> [u8; 4] {
        self()
    }
}

/// What the peer sent, as returned by [`WsConnection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete text message, validated as UTF-8.
    Text(Utf8Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping; the pong answering it has already been queued for transmission.
    Ping(Bytes),
    /// A pong (an answer to our ping, or an unsolicited heartbeat).
    Pong(Bytes),
    /// The peer's close frame. If we had not sent one, our reply echoing `code` is queued.
    /// An empty close frame is reported as [`CloseCode::NO_STATUS`]. The state is now
    /// [`WsState::Closed`].
    Close {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason, possibly empty.
        reason: Utf8Bytes,
    },
    /// The peer broke the protocol (or the transport ended early). A close frame with
    /// [`WsError::close_code`] is queued unless one was already sent; the state is now
    /// [`WsState::Closed`]. No further events follow.
    Error(WsError),
}

/// Encoded frames waiting to be written, in order.
///
/// Small frames are encoded back to back into `buf` so one write carries many of them; shared
/// buffers (pre-encoded broadcast frames, large payloads) are queued as they are.
#[derive(Debug, Default)]
struct TxQueue {
    queue: VecDeque<Bytes>,
    /// Total length of the chunks in `queue`.
    queued: usize,
    buf: BytesMut,
}

/// Size of a fresh [`TxQueue::buf`]: many small frames are appended to one allocation.
const TX_CHUNK: usize = 16 << 10;

impl TxQueue {
    /// Makes room for `n` more bytes in `buf`. A full `buf` is queued as it is and a fresh
    /// one started: growing it would copy everything encoded so far (under a broadcast load
    /// that copy was 3 % of a server's CPU); the driver writes the pieces with one vectored
    /// write anyway.
    fn room(&mut self, n: usize) {
        if self.buf.capacity() - self.buf.len() >= n {
            return;
        }
        if !self.buf.is_empty() {
            let full = self.take_buf();
            self.queued += full.len();
            self.queue.push_back(full);
        }
        self.buf.reserve(n.max(TX_CHUNK));
    }

    /// `buf`, handed out whole: an emptied queue keeps no allocation (an idle connection
    /// holds no buffer), where a split would keep the rest of it.
    fn take_buf(&mut self) -> Bytes {
        std::mem::take(&mut self.buf).freeze()
    }

    fn push_shared(&mut self, bytes: Bytes) {
        if !self.buf.is_empty() {
            let small = self.take_buf();
            self.queued += small.len();
            self.queue.push_back(small);
        }
        self.queued += bytes.len();
        self.queue.push_back(bytes);
    }

    fn pop(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.queue.pop_front() {
            self.queued -= bytes.len();
            return Some(bytes);
        }
        if self.buf.is_empty() {
            None
        } else {
            Some(self.take_buf())
        }
    }

    fn len(&self) -> usize {
        self.queued + self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.buf.is_empty()
    }
}

/// A WebSocket connection after the opening handshake, in either role. Sans-IO: it never
/// touches a socket, a clock or a random source.
///
/// # Calling contract
///
/// The driver (a runtime, or a test) owns the socket and the clock, and loops:
///
/// 1. **Input.** Pass every chunk read from the socket to [`handle_input`](Self::handle_input),
///    in order (start with the bytes that followed the handshake response, if any). At end of
///    stream call [`handle_eof`](Self::handle_eof). Every input takes `now`, the driver's
///    monotonic clock, as [`Session`](crate::session::Session) and the hub do.
/// 2. **Events.** Then call [`poll_event`](Self::poll_event) until it returns `None`. Decoding
///    happens here, one message per call, so the caller can stop to apply backpressure: undecoded
///    bytes simply stay buffered. Between two `handle_input` calls, drain events, or the buffer
///    holds everything fed so far; when drained it holds at most one partial frame (bounded by
///    [`WsConfig::max_frame_size`] plus a header) plus one partial fragmented message (bounded
///    by [`WsConfig::max_message_size`]). A close the peer's bytes cause (an echo, or a failure)
///    counts as started at the `now` of the latest input.
/// 3. **Commands** — [`send_text`](Self::send_text), [`send_binary`](Self::send_binary),
///    [`send_ping`](Self::send_ping), [`close`](Self::close) … — may be issued at any time; they
///    encode into the transmit queue and never block. `close` takes `now`: it starts the
///    close timer.
/// 4. **Output.** After handling events or issuing commands, call
///    [`poll_transmit`](Self::poll_transmit) until `None` and write each chunk to the socket in
///    order. Handling input can queue output (pongs, close replies), so drain after step 2 too.
/// 5. **Timer.** Arm one timer for [`poll_timeout`](Self::poll_timeout) (`None`: no timer);
///    when it fires call [`handle_timeout`](Self::handle_timeout) with the time. The only timer
///    is the bound on the close handshake, [`WsConfig::close_timeout`]; the driver keeps none of
///    its own.
/// 6. **Closing the socket.** When [`should_close_socket`](Self::should_close_socket) returns
///    true, close the transport. A server closes as soon as both close frames are exchanged (RFC
///    6455 §7.1.1: the server closes TCP first); a client waits for the server to close and then
///    calls [`handle_eof`](Self::handle_eof). After a protocol failure either side closes once
///    the close frame is written, and anyone closes when the close timer has run out. To make
///    sure the peer reads the close frame, prefer shutting down the write half and reading
///    until EOF (briefly) over closing a socket with unread input, which resets the connection.
///
/// Received payloads are slices of the receive buffer: cheap to pass on, but holding one keeps
/// its part of the buffer alive. Copy payloads you intend to keep for long.
///
/// # Example
///
/// A client and a server talking in memory:
///
/// ```
/// use std::time::{Duration, Instant};
/// use tidings_core::ws::{CloseCode, WsConfig, WsConnection, WsEvent, WsState};
///
/// // Masking keys come from the caller; a real client uses a random source.
/// let mut seed = 0x9E37_79B9u32;
/// let masks = move || {
///     seed ^= seed << 13;
///     seed ^= seed >> 17;
///     seed ^= seed << 5;
///     seed.to_le_bytes()
/// };
/// let mut client = WsConnection::client(WsConfig::default(), masks);
/// let mut server = WsConnection::server(WsConfig::default());
/// let now = Instant::now(); // the driver's clock; the connection never reads one itself
///
/// // Moves every queued byte from one side to the other, as a socket would.
/// fn pump(from: &mut WsConnection, to: &mut WsConnection, now: Instant) {
///     while let Some(bytes) = from.poll_transmit() {
///         to.handle_input(now, &bytes);
///     }
/// }
///
/// client.send_text("hello").unwrap();
/// client.send_ping(b"are you there").unwrap();
/// pump(&mut client, &mut server, now);
/// assert_eq!(server.poll_event(), Some(WsEvent::Text("hello".into())));
/// assert!(matches!(server.poll_event(), Some(WsEvent::Ping(p)) if &p[..] == b"are you there"));
/// assert_eq!(server.poll_event(), None);
/// assert_eq!(server.poll_timeout(), None); // open: no timer
///
/// // The server answered the ping by itself; echo the text as binary.
/// server.send_binary(b"hello").unwrap();
/// pump(&mut server, &mut client, now);
/// assert!(matches!(client.poll_event(), Some(WsEvent::Pong(p)) if &p[..] == b"are you there"));
/// assert!(matches!(client.poll_event(), Some(WsEvent::Binary(b)) if &b[..] == b"hello"));
///
/// // Close handshake: the client starts, the server echoes and then closes the socket.
/// client.close(now, CloseCode::NORMAL, "bye").unwrap();
/// assert_eq!(client.state(), WsState::Closing);
/// let deadline = now + WsConfig::default().close_timeout;
/// assert_eq!(client.poll_timeout(), Some(deadline));
/// pump(&mut client, &mut server, now);
/// assert!(matches!(server.poll_event(),
///     Some(WsEvent::Close { code: CloseCode::NORMAL, reason }) if reason == "bye"));
/// pump(&mut server, &mut client, now);
/// assert!(server.should_close_socket());
/// assert!(matches!(client.poll_event(), Some(WsEvent::Close { code: CloseCode::NORMAL, .. })));
/// assert_eq!(client.state(), WsState::Closed);
/// assert!(!client.should_close_socket()); // the client waits for the server's EOF…
///
/// // …but not for ever: the driver's timer fires at the deadline.
/// let later = client.poll_timeout().unwrap();
/// client.handle_timeout(later - Duration::from_millis(1)); // early: nothing happens
/// assert!(!client.should_close_socket());
/// client.handle_timeout(later);
/// assert!(client.should_close_socket());
/// assert_eq!(client.poll_timeout(), None);
/// ```
pub struct WsConnection {
    role: WsRole,
    rx: Receiver,
    tx: TxQueue,
    masks: Option<Box<dyn MaskSource>>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    eof: bool,
    /// The close handshake ran out of [`WsConfig::close_timeout`].
    timed_out: bool,
    close_timeout: Duration,
    /// When the close handshake started; the close timer runs from here.
    closing_since: Option<Instant>,
    /// The `now` of the latest input: a close caused by decoded bytes starts then.
    now: Option<Instant>,
}

impl core::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WsConnection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("buffered_input", &self.rx.buffered())
            .field("pending_transmit", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl WsConnection {
    /// The server end of a connection whose handshake has completed.
    pub fn server(config: WsConfig) -> Self {
        Self::new(WsRole::Server, config, None)
    }

    /// The client end of a connection whose handshake has completed; `masks` supplies one
    /// masking key per frame sent (including automatic pongs and close replies).
    pub fn client(config: WsConfig, masks: impl MaskSource + 'static) -> Self {
        Self::new(WsRole::Client, config, Some(Box::new(masks)))
    }

    fn new(role: WsRole, config: WsConfig, masks: Option<Box<dyn MaskSource>>) -> Self {
        WsConnection {
            role,
            rx: Receiver::new(
                role == WsRole::Server,
                config.max_frame_size,
                config.max_message_size,
            ),
            tx: TxQueue::default(),
            masks,
            close_sent: false,
            close_received: false,
            failed: false,
            eof: false,
            timed_out: false,
            close_timeout: config.close_timeout,
            closing_since: None,
            now: None,
        }
    }

    /// This end's role.
    pub fn role(&self) -> WsRole {
        self.role
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> WsState {
        if self.close_received || self.failed || self.eof || self.timed_out {
            WsState::Closed
        } else if self.close_sent {
            WsState::Closing
        } else {
            WsState::Open
        }
    }

    /// Feeds bytes read from the transport at `now`. Decoding happens in
    /// [`poll_event`](Self::poll_event). Input after the peer's close frame, after a failure,
    /// after EOF or after the close timer ran out is discarded.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.now = Some(now);
        if self.reading() {
            self.rx.push(data);
        }
    }

    /// Reports that the transport's read side ended. Events for complete frames already fed
    /// are still delivered; if the close handshake had not finished, [`WsError::UnexpectedEof`]
    /// follows them.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = Some(now);
        self.eof = true;
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the end of the close
    /// handshake's [`WsConfig::close_timeout`] while the handshake is under way, `None` while
    /// the connection is open or once nothing is left to wait for.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out || self.should_close_socket() {
            return None;
        }
        self.closing_since.map(|since| since + self.close_timeout)
    }

    /// Reports that the instant from [`poll_timeout`](Self::poll_timeout) may have passed. If
    /// it has, the connection is over: nothing more is read or sent, and
    /// [`should_close_socket`](Self::should_close_socket) is true even if queued bytes were not
    /// taken (a peer that stopped reading never takes them). Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        if self.poll_timeout().is_some_and(|deadline| deadline <= now) {
            self.timed_out = true;
            self.rx.discard();
        }
    }

    /// The next event, or `None` when all buffered input is decoded. See the calling contract.
    pub fn poll_event(&mut self) -> Option<WsEvent> {
        if self.close_received || self.failed {
            return None;
        }
        match self.rx.next() {
            Ok(Some(incoming)) => Some(self.on_incoming(incoming)),
            // The transport ended without the peer's close frame.
            Ok(None) if self.eof => Some(self.fail(WsError::UnexpectedEof)),
            Ok(None) => None,
            Err(err) => Some(self.fail(err)),
        }
    }

    /// The next chunk of bytes to write to the transport, in order, or `None` when nothing is
    /// queued.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.tx.pop()
    }

    /// Bytes queued for transmission.
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Bytes of received input held: undecoded input plus the fragments of an unfinished
    /// message.
    pub fn buffered_input(&self) -> usize {
        self.rx.buffered()
    }

    /// Whether the driver should now close the transport: everything queued has been taken by
    /// [`poll_transmit`](Self::poll_transmit) and the connection is finished for this role, or
    /// the close timer ran out (see step 6 of the calling contract).
    pub fn should_close_socket(&self) -> bool {
        if self.timed_out {
            return true;
        }
        if !self.tx.is_empty() {
            return false;
        }
        self.failed || self.eof || (self.close_received && self.role == WsRole::Server)
    }

    /// Whether the close handshake ran out of [`WsConfig::close_timeout`]. A driver that
    /// holds bytes taken from [`poll_transmit`](Self::poll_transmit) but not yet written drops
    /// them and the socket: the peer stopped reading or answering.
    pub fn close_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), WsSendError> {
        self.send_frame(OpCode::Text, text.as_bytes())
    }

    /// Queues the text message `text` whose unmasked frame the caller encoded already
    /// (`frame` is [`server_frame`](super::server_frame)`(OpCode::Text, text)`, e.g. kept
    /// with a rendering shared by many recipients): a server queues `frame` as it is, with no
    /// header to encode (copied when small, by reference when large, as in
    /// [`send_text_bytes`](Self::send_text_bytes)); a client, which must mask, encodes `text`
    /// afresh.
    pub(crate) fn send_text_framed(
        &mut self,
        text: &str,
        frame: &Bytes,
    ) -> Result<(), WsSendError> {
        if self.masks.is_some() {
            return self.send_text(text);
        }
        self.check_can_send()?;
        if frame.len() >= SHARE_THRESHOLD {
            self.tx.push_shared(frame.clone());
        } else {
            self.tx.room(frame.len());
            self.tx.buf.extend_from_slice(frame);
        }
        Ok(())
    }

    /// Queues a binary message, copying `data` next to its header.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), WsSendError> {
        self.send_frame(OpCode::Binary, data)
    }

    /// Queues a binary message held in `Bytes`. On a server, large payloads are queued by
    /// reference, without copying; a client must mask, which copies.
    pub fn send_binary_bytes(&mut self, data: Bytes) -> Result<(), WsSendError> {
        self.send_shared(OpCode::Binary, data)
    }

    /// Queues a text message held in [`Utf8Bytes`] (e.g. one just received, to echo or relay
    /// it). On a server, large payloads are queued by reference, without copying.
    pub fn send_text_bytes(&mut self, text: Utf8Bytes) -> Result<(), WsSendError> {
        self.send_shared(OpCode::Text, text.into_bytes())
    }

    /// Queues a ping (payload at most 125 bytes). The peer's pong arrives as
    /// [`WsEvent::Pong`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), WsSendError> {
        check_control_len(payload)?;
        self.send_frame(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (payload at most 125 bytes), a one-way heartbeat. Pings are
    /// answered automatically; there is no need to call this for them.
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), WsSendError> {
        check_control_len(payload)?;
        self.send_frame(OpCode::Pong, payload)
    }

    /// Queues a frame already encoded with [`server_frame`](super::server_frame) or
    /// [`encode_frame`](super::encode_frame), without copying: the way to broadcast one
    /// message to many connections. Server role only (client frames need per-frame masks).
    ///
    /// `frame` must be one or more complete, unmasked data frames; the connection does not
    /// re-check what the caller encoded.
    pub fn send_encoded(&mut self, frame: Bytes) -> Result<(), WsSendError> {
        if self.role != WsRole::Server {
            return Err(WsSendError::NotServer);
        }
        self.check_can_send()?;
        self.tx.push_shared(frame);
        Ok(())
    }

    /// Starts the close handshake at `now`: queues a close frame with `code` and `reason`,
    /// moves to [`WsState::Closing`] and starts the close timer ([`WsConfig::close_timeout`]).
    /// Messages still arrive until the peer's close frame does.
    ///
    /// Calling it again, or after the peer's close frame, does nothing: the connection is
    /// already closing. `code` must satisfy [`CloseCode::is_sendable`] and `reason` fit in
    /// 123 bytes.
    pub fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), WsSendError> {
        if !code.is_sendable() {
            return Err(WsSendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(WsSendError::CloseReasonTooLong(reason.len()));
        }
        if self.close_sent || self.failed || self.eof || self.timed_out {
            return Ok(());
        }
        self.now = Some(now);
        self.queue_close(Some((code, reason)));
        Ok(())
    }

    fn reading(&self) -> bool {
        !(self.close_received || self.failed || self.eof || self.timed_out)
    }

    fn check_can_send(&self) -> Result<(), WsSendError> {
        if self.close_sent || self.failed || self.eof || self.timed_out {
            Err(WsSendError::Closed)
        } else {
            Ok(())
        }
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), WsSendError> {
        self.check_can_send()?;
        self.encode(opcode, payload);
        Ok(())
    }

    fn send_shared(&mut self, opcode: OpCode, data: Bytes) -> Result<(), WsSendError> {
        if self.role == WsRole::Server && data.len() >= SHARE_THRESHOLD {
            self.check_can_send()?;
            self.tx.room(MAX_HEADER_LEN);
            encode_frame_header(&mut self.tx.buf, true, opcode, data.len(), None);
            self.tx.push_shared(data);
            return Ok(());
        }
        self.send_frame(opcode, &data)
    }

    fn encode(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.masks.as_mut().map(|source| source.next_mask());
        self.tx.room(MAX_HEADER_LEN + payload.len());
        encode_frame(&mut self.tx.buf, opcode, payload, mask);
    }

    fn queue_close(&mut self, close: Option<(CloseCode, &str)>) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = encode_close_payload(close, &mut payload);
        self.encode(OpCode::Close, &payload[..len]);
        self.close_sent = true;
        self.start_closing();
    }

    /// Starts the close timer, once: at the first close frame sent or received, or failure.
    fn start_closing(&mut self) {
        if self.closing_since.is_none() {
            self.closing_since = self.now;
        }
    }

    fn on_incoming(&mut self, incoming: Incoming) -> WsEvent {
        match incoming {
            Incoming::Text(text) => WsEvent::Text(text),
            Incoming::Binary(data) => WsEvent::Binary(data),
            Incoming::Ping(payload) => {
                // No frame may follow our close frame, pongs included.
                if !self.close_sent {
                    self.encode(OpCode::Pong, &payload);
                }
                WsEvent::Ping(payload)
            }
            Incoming::Pong(payload) => WsEvent::Pong(payload),
            Incoming::Close(code, reason) => {
                self.close_received = true;
                self.start_closing();
                if !self.close_sent {
                    // Echo the code (RFC 6455 §5.5.1); an empty close is answered in kind.
                    let echo = (code != CloseCode::NO_STATUS).then_some((code, ""));
                    self.queue_close(echo);
                }
                self.rx.discard();
                WsEvent::Close { code, reason }
            }
        }
    }

    fn fail(&mut self, err: WsError) -> WsEvent {
        if !self.close_sent && err != WsError::UnexpectedEof {
            self.queue_close(Some((err.close_code(), err.reason())));
        }
        self.failed = true;
        self.start_closing();
        self.rx.discard();
        WsEvent::Error(err)
    }
}

fn check_control_len(payload: &[u8]) -> Result<(), WsSendError> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        Err(WsSendError::ControlTooLong(payload.len()))
    } else {
        Ok(())
    }
}
