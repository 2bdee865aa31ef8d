//! A blocking client: one driver thread owns the session, one thread reads the socket.
//! With TLS ([`ClientConfig::tls`]) the handshake is done in [`Client::connect`], before
//! either starts, and both then read and write plaintext through [`Stream`].
//!
//! ```no_run
//! use tidings_std::{Client, ClientConfig, ClientEvent};
//! let client = Client::connect("127.0.0.1:9988", "alice", ClientConfig::default())?;
//! client.say("hello, everyone")?;
//! while let Some(event) = client.next_event() {
//!     if let ClientEvent::Text { from, text, .. } = event {
//!         println!("{from}: {text}");
//!     }
//! }
//! # Ok::<(), tidings_std::Error>(())
//! ```

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings_core::transfer::TransferId;

use tidings_host::client::{Agent, ClientConfig, ClientEvent, ClientOutput, Command};
use tidings_host::files::Source;
use tidings_host::outgoing::Outgoing;

use crate::flush::flush;
use crate::tls::{client_handshake, Stream};
use tidings_host::Error;

/// What reaches the driver thread: socket bytes from the reader thread, or a command with
/// where to send its answer.
enum Input {
    Bytes(Vec<u8>),
    Eof,
    Command(Command, Sender<Result<Option<TransferId>, Error>>),
}

/// Connects to the first of `addr`'s addresses that answers within `timeout` of `started`:
/// an address that drops our SYNs (a firewall, a full backlog) would otherwise take the OS's
/// minutes, so the handshake timeout counts from the call, connecting included (as in the
/// smol client, with the same words).
fn connect_within(
    addr: impl ToSocketAddrs,
    started: Instant,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:.1} s", timeout.as_secs_f64()),
        )
    };
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let left = (started + timeout).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = Some(timed_out()),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
}

/// A connected client. Commands return once the session has queued them; what happens next
/// arrives as [`ClientEvent`]s from [`Client::next_event`].
pub struct Client {
    name: String,
    server: String,
    online: Vec<String>,
    input: SyncSender<Input>,
    events: Receiver<ClientEvent>,
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

impl Client {
    /// Connects to `addr`, asks for `name`, and returns once the server accepted it.
    /// A refusal (name taken …) is [`Error::Refused`]. With [`ClientConfig::tls`] the TLS
    /// handshake comes first, within the handshake timeout
    /// (`config.session.handshake_timeout`, counted from the call): a certificate that does
    /// not check out, a server that refuses TLS or does not finish the handshake in time is
    /// [`Error::Tls`], saying which.
    pub fn connect(
        addr: impl ToSocketAddrs,
        name: &str,
        config: ClientConfig,
    ) -> Result<Client, Error> {
        let close_timeout = config.close_timeout;
        let handshake_timeout = config.session.handshake_timeout;
        let started = Instant::now();
        let tls = config.tls.clone();
        Agent::check_name(name)?;
        let socket = connect_within(addr, started, handshake_timeout)?;
        socket.set_nodelay(true)?;
        let agent = Agent::new(name, config.for_peer(socket.peer_addr()?.ip()), started)?;
        let stream = match tls {
            None => Stream::Plain(socket),
            Some(tls) => client_handshake(socket, tls.start()?, started + handshake_timeout)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                        Error::tls_timed_out(handshake_timeout)
                    }
                    _ => Error::Tls(e.to_string()),
                })?,
        };
        let (input, inputs) = mpsc::sync_channel(64);
        let (event_tx, events) = mpsc::channel();
        // The reader keeps the handle the handshake read through (see `Stream::try_clone`).
        let writer = stream.try_clone()?;
        let reader_input = input.clone();
        std::thread::Builder::new()
            .name("tidings-read".into())
            .spawn(move || read_loop(stream, reader_input))?;
        let driver = std::thread::Builder::new()
            .name("tidings-client".into())
            .spawn(move || drive(agent, writer, inputs, event_tx, close_timeout))?;
        let mut client = Client {
            name: String::new(),
            server: String::new(),
            online: Vec::new(),
            input,
            events,
            driver: Some(driver),
        };
        let (name, server, online) = tidings_host::client::joined(client.events.recv().ok())?;
        client.name = name;
        client.server = server;
        client.online = online;
        Ok(client)
    }

    /// Our registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server participant's name.
    pub fn server_name(&self) -> &str {
        &self.server
    }

    /// Who was in the default room when we joined (on a server without rooms: online),
    /// ourselves included.
    pub fn online_at_join(&self) -> &[String] {
        &self.online
    }

    fn call(&self, command: Command) -> Result<Option<TransferId>, Error> {
        let (tx, rx) = mpsc::channel();
        let closed = || Error::Closed {
            code: tidings_core::ErrorCode::PeerLost,
            reason: "the connection is closed".into(),
        };
        self.input
            .send(Input::Command(command, tx))
            .map_err(|_| closed())?;
        rx.recv().map_err(|_| closed())?
    }

    /// Chat text to everyone.
    pub fn say(&self, text: &str) -> Result<(), Error> {
        self.say_to("", text)
    }

    /// Private text to `peer` (empty: everyone).
    pub fn say_to(&self, peer: &str, text: &str) -> Result<(), Error> {
        let (to, text) = (peer.to_string(), text.to_string());
        self.call(Command::Say { to, text }).map(drop)
    }

    /// Asks who is online; [`ClientEvent::PeerList`] answers.
    pub fn request_list(&self) -> Result<(), Error> {
        self.call(Command::RequestList).map(drop)
    }

    /// Enters `room` (creating it, if the server lets us): [`ClientEvent::RoomEntered`]
    /// answers with its members, or a [`ClientEvent::Notice`] with the refusal. A server
    /// that does not speak rooms: [`Error::Send`] at once.
    pub fn join(&self, room: &str) -> Result<(), Error> {
        self.call(Command::Join(room.to_string())).map(drop)
    }

    /// Leaves `room`: [`ClientEvent::RoomExited`] answers, or a `not-member`
    /// [`ClientEvent::Notice`].
    pub fn leave(&self, room: &str) -> Result<(), Error> {
        self.call(Command::Leave(room.to_string())).map(drop)
    }

    /// Says `text` to the other members of `room` (a `not-member` [`ClientEvent::Notice`]
    /// when we are not one).
    pub fn say_in(&self, room: &str, text: &str) -> Result<(), Error> {
        let (room, text) = (room.to_string(), text.to_string());
        self.call(Command::SayIn { room, text }).map(drop)
    }

    /// Asks which rooms exist; [`ClientEvent::RoomList`] answers.
    pub fn request_rooms(&self) -> Result<(), Error> {
        self.call(Command::RequestRooms).map(drop)
    }

    /// Offers the file at `path` to `peer` (empty: the server). Fails before anything is
    /// sent when the file cannot be opened.
    pub fn send_file(&self, peer: &str, path: impl AsRef<Path>) -> Result<TransferId, Error> {
        let source = tidings_disk::open_to_send(path.as_ref())?;
        self.send_source(peer, source)
    }

    /// Offers an already opened [`Source`] to `peer`: a file under a relative path
    /// ([`OpenSource::open_as`](tidings_disk::OpenSource::open_as)) or an empty folder
    /// ([`OpenSource::folder`](tidings_disk::OpenSource::folder)), as listed by
    /// [`walk`](tidings_disk::walk) when sending a folder.
    pub fn send_source(&self, peer: &str, source: Source) -> Result<TransferId, Error> {
        let to = peer.to_string();
        let started = self.call(Command::Send { to, source })?;
        Ok(started.expect("a send starts a transfer"))
    }

    /// Accepts a waiting offer (resuming a kept partial file).
    pub fn accept(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Accept(id)).map(drop)
    }

    /// Declines a waiting offer.
    pub fn reject(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Reject(id)).map(drop)
    }

    /// Abandons a transfer.
    pub fn cancel(&self, id: TransferId) -> Result<(), Error> {
        self.call(Command::Cancel(id)).map(drop)
    }

    /// The next event, waiting for it; `None` after [`ClientEvent::Closed`] was delivered.
    pub fn next_event(&self) -> Option<ClientEvent> {
        self.events.recv().ok()
    }

    /// The next event within `timeout`.
    pub fn next_event_timeout(&self, timeout: Duration) -> Result<ClientEvent, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    /// Says goodbye, transmits what is queued and waits for the connection to close.
    ///
    /// Returns at once when the connection is already gone. A write that makes no progress
    /// for [`ClientConfig::close_timeout`] (default 5 s; a server that stopped reading) ends
    /// the connection.
    pub fn close(mut self) {
        let _ = self.call(Command::Quit);
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.driver.is_some() {
            let (tx, _rx) = mpsc::channel();
            let _ = self.input.try_send(Input::Command(Command::Quit, tx));
        }
    }
}

fn read_loop(mut stream: Stream, input: SyncSender<Input>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = input.send(Input::Eof);
                return;
            }
            Ok(n) => {
                if input.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

fn drive(
    mut agent: Agent,
    mut stream: Stream,
    inputs: Receiver<Input>,
    events: Sender<ClientEvent>,
    close_timeout: Duration,
) {
    let mut out = Outgoing::default();
    // Writes block this thread, timers included: a server that stops reading would hold it
    // (and `close`) forever. A write that makes no progress for the heartbeat timeout (once
    // the session ended: the close timeout) fails, and the connection ends as lost.
    let mut write_timeout = None;
    loop {
        // Disk jobs run here, in order, as they come: this thread may block.
        let wait = loop {
            match agent.poll_output() {
                ClientOutput::Disk(ticket, job) => agent.job_done(ticket, tidings_disk::run(job)),
                ClientOutput::Transmit(b) => out.push(b),
                ClientOutput::Event(ev) => {
                    let _ = events.send(ev);
                }
                ClientOutput::Wait(deadline) => break deadline,
            }
        };
        if !out.is_empty() {
            let limit = if agent.is_closed() {
                close_timeout
            } else {
                agent.session().config().heartbeat_timeout
            };
            if write_timeout != Some(limit) {
                let _ = stream.set_write_timeout(Some(limit).filter(|d| !d.is_zero()));
                write_timeout = Some(limit);
            }
        }
        if !out.is_empty() && flush(&mut stream, &mut out, |b| agent.recycle(b)).is_err() {
            out.clear();
            agent.handle_eof(Instant::now());
            continue;
        }
        if agent.is_finished() {
            stream.shutdown(Shutdown::Both);
            return;
        }
        let now = Instant::now();
        let input = match wait {
            Some(d) if d <= now => {
                agent.handle_timeout(now);
                continue;
            }
            Some(d) => match inputs.recv_timeout(d - now) {
                Ok(i) => i,
                Err(RecvTimeoutError::Timeout) => {
                    agent.handle_timeout(Instant::now());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => Input::Eof,
            },
            None => inputs.recv().unwrap_or(Input::Eof),
        };
        match input {
            Input::Bytes(b) => agent.handle_input(Instant::now(), &b),
            Input::Eof => agent.handle_eof(Instant::now()),
            Input::Command(command, reply) => {
                let _ = reply.send(agent.command(command).map_err(Error::from));
            }
        }
    }
}
