//! The harness of the end-to-end suite: either tidings server on 127.0.0.1:0, behind one
//! blocking handle, and the clients and files the tests use.
//!
//! Every test in `tests/` is a function taking a [`ServerKind`]; [`for_both_servers!`]
//! makes a `#[test]` of it for each server (`std_server::NAME`, `smol_server::NAME`), so
//! the suite is written once and both servers must pass all of it:
//!
//! ```ignore
//! fn two_clients_chat(kind: ServerKind) {
//!     let server = TestServer::start(kind, ServerConfig::default());
//!     // … real clients on server.addr …
//! }
//! for_both_servers! { native: [two_clients_chat] }
//! ```
//!
//! The two servers' handles differ (the std one blocks, the smol one is async); the
//! [`TestServer`] methods block for both, so a test reads the same against either.

pub mod faults;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use tidings_core::transfer::Direction;
pub use tidings_core::ErrorCode;
pub use tidings_host::server::{ConnLimit, ServerConfig, ServerEvent};
pub use tidings_host::{ClientConfig, ClientEvent, Error, FileHandle};
pub use tidings_host::{WebAsset, WebConfig};

/// How long any wait of the suite may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `tidings_std::Server`: a thread per connection.
    Std,
    /// `tidings_smol::Server`: one event loop thread.
    Smol,
}

/// Makes a `#[test]` of each listed function (`fn NAME(kind: ServerKind)`) for each server:
/// `std_server::NAME` and `smol_server::NAME`. The two lists only sort the suite: `native:`
/// for native clients, `web:` for WebSocket and the web page; both run against both
/// servers. Attributes before a name (`#[ignore]`) go to both tests; an attribute after
/// `@smol` only to the smol server's (`@smol #[ignore = "why it fails"] NAME`), for a known
/// failure of that server alone.
#[macro_export]
macro_rules! for_both_servers {
    (
        native: [$($(#[$na:meta])* $(@smol #[$ns:meta])* $native:ident),* $(,)?]
        $(, web: [$($(#[$wa:meta])* $(@smol #[$ws:meta])* $web:ident),* $(,)?])? $(,)?
    ) => {
        mod std_server {
            $crate::for_one_server! {
                Std,
                [$($(#[$na])* $native),*], [$($($(#[$wa])* $web),*)?]
            }
        }
        mod smol_server {
            $crate::for_one_server! {
                Smol,
                [$($(#[$na])* $(#[$ns])* $native),*],
                [$($($(#[$wa])* $(#[$ws])* $web),*)?]
            }
        }
    };
}

/// The tests [`for_both_servers!`] makes for one server: `kind` is a [`ServerKind`]
/// variant.
#[doc(hidden)]
#[macro_export]
macro_rules! for_one_server {
    (
        $kind:ident,
        [$($(#[$na:meta])* $native:ident),*], [$($(#[$wa:meta])* $web:ident),*]
    ) => {
        $(
            $(#[$na])*
            #[test]
            fn $native() {
                super::$native($crate::ServerKind::$kind)
            }
        )*
        $(
            $(#[$wa])*
            #[test]
            fn $web() {
                super::$web($crate::ServerKind::$kind)
            }
        )*
    };
}

/// The running server's control handle, one per kind.
enum Handle {
    Std(tidings_std::ServerHandle),
    Smol {
        handle: tidings_smol::ServerHandle,
        /// Taken at start: every clone of the smol handle's receiver shares one queue.
        events: smol::channel::Receiver<ServerEvent>,
    },
}

/// A server under test on its own thread, listening on 127.0.0.1; shut down when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Which server it is.
    pub kind: ServerKind,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A `kind` server on a free port with `config` and the default web (WebSocket
    /// without a page).
    pub fn start(kind: ServerKind, config: ServerConfig) -> TestServer {
        TestServer::start_with(kind, config, WebConfig::default())
    }

    /// [`TestServer::start`] with `web` for what is not a native connection: the web page,
    /// the head and closing timeouts.
    pub fn start_with(kind: ServerKind, config: ServerConfig, web: WebConfig) -> TestServer {
        TestServer::try_start(kind, "127.0.0.1:0", config, web).unwrap()
    }

    /// A `kind` server with the default config serving the test page ([`web_with_page`],
    /// 10 s to show what a visitor is).
    pub fn with_page(kind: ServerKind) -> TestServer {
        let web = web_with_page(Duration::from_secs(10));
        TestServer::start_with(kind, ServerConfig::default(), web)
    }

    /// Binds a `kind` server to `addr` and runs it on a thread of its own.
    pub fn try_start(
        kind: ServerKind,
        addr: &str,
        config: ServerConfig,
        web: WebConfig,
    ) -> Result<TestServer, Error> {
        let (handle, thread) = match kind {
            ServerKind::Std => {
                let server = tidings_std::Server::bind(addr, config)?.with_web(web);
                let handle = server.handle();
                let thread = std::thread::spawn(move || server.run().unwrap());
                (Handle::Std(handle), thread)
            }
            ServerKind::Smol => {
                let server =
                    smol::block_on(tidings_smol::Server::bind(addr, config))?.with_web(web);
                let handle = server.handle();
                let events = handle.events();
                let thread = std::thread::spawn(move || server.run_blocking().unwrap());
                (Handle::Smol { handle, events }, thread)
            }
        };
        let addr = match &handle {
            Handle::Std(h) => h.local_addr(),
            Handle::Smol { handle, .. } => handle.local_addr(),
        };
        Ok(TestServer {
            addr,
            kind,
            handle,
            thread: Some(thread),
        })
    }

    /// The server participant says `text` to `to` (`None`: everyone).
    pub fn say(&self, to: Option<&str>, text: &str) -> Result<(), Error> {
        match &self.handle {
            Handle::Std(h) => h.say(to, text),
            Handle::Smol { handle, .. } => smol::block_on(handle.say(to, text)),
        }
    }

    /// The names online, sorted.
    pub fn who(&self) -> Vec<String> {
        match &self.handle {
            Handle::Std(h) => h.who(),
            Handle::Smol { handle, .. } => smol::block_on(handle.who()).unwrap(),
        }
    }

    /// Replaces the server's accounts; the names it closed for it.
    pub fn set_accounts(&self, accounts: tidings_host::accounts::Accounts) -> Vec<String> {
        match &self.handle {
            Handle::Std(h) => h.set_accounts(accounts),
            Handle::Smol { handle, .. } => smol::block_on(handle.set_accounts(accounts)).unwrap(),
        }
    }

    /// How many peers are registered.
    pub fn peer_count(&self) -> usize {
        match &self.handle {
            Handle::Std(h) => h.peer_count(),
            Handle::Smol { handle, .. } => smol::block_on(handle.peer_count()).unwrap(),
        }
    }

    /// Disconnects `name` with `reason`.
    pub fn kick(&self, name: &str, reason: &str) -> Result<(), Error> {
        match &self.handle {
            Handle::Std(h) => h.kick(name, reason),
            Handle::Smol { handle, .. } => smol::block_on(handle.kick(name, reason)),
        }
    }

    /// Kicks `name` and refuses it for `duration`.
    pub fn ban(&self, name: &str, duration: Duration, reason: &str) {
        match &self.handle {
            Handle::Std(h) => h.ban(name, duration, reason),
            Handle::Smol { handle, .. } => {
                smol::block_on(handle.ban(name, duration, reason)).unwrap()
            }
        }
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&self, name: &str) -> bool {
        match &self.handle {
            Handle::Std(h) => h.unban(name),
            Handle::Smol { handle, .. } => smol::block_on(handle.unban(name)).unwrap(),
        }
    }

    /// The server sends the file at `path` to `to`.
    pub fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileHandle, Error> {
        match &self.handle {
            Handle::Std(h) => h.send_file(to, path),
            Handle::Smol { handle, .. } => smol::block_on(handle.send_file(to, path)),
        }
    }

    /// The next operator event within `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<ServerEvent> {
        match &self.handle {
            Handle::Std(h) => h.next_event_timeout(timeout),
            Handle::Smol { events, .. } => smol::block_on(futures_lite::future::or(
                async { events.recv().await.ok() },
                async {
                    async_io::Timer::after(timeout).await;
                    None
                },
            )),
        }
    }

    /// The first operator event for which `pred` holds (others are skipped), within
    /// [`PATIENCE`].
    #[track_caller]
    pub fn wait_event(&self, mut pred: impl FnMut(&ServerEvent) -> bool) -> ServerEvent {
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(ev) if pred(&ev) => return ev,
                Some(_) => {}
                None => panic!("no such server event within {PATIENCE:?}"),
            }
        }
    }

    /// Tells every client goodbye with `reason` and stops serving (the thread is joined
    /// when the server is dropped).
    pub fn shutdown(&self, reason: &str) {
        match &self.handle {
            Handle::Std(h) => h.shutdown(reason),
            Handle::Smol { handle, .. } => smol::block_on(handle.shutdown(reason)),
        }
    }

    /// Shuts down and waits for the server's thread, failing the test if it panicked.
    pub fn stop(mut self) {
        self.shutdown("test over");
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shutdown("test over");
            let _ = thread.join();
        }
    }
}

/// A temporary folder, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Writes a file of `len` pseudo-random bytes at `path`.
pub fn make_file(path: &Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// Fails unless the files at `got` and `sent` hold the same bytes.
#[track_caller]
pub fn assert_same_file(got: &Path, sent: &Path) {
    let same = std::fs::read(got).unwrap() == std::fs::read(sent).unwrap();
    assert!(same, "{} differs from {}", got.display(), sent.display());
}

/// Runs `f` to its end, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    futures_lite::future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
    .unwrap_or_else(|| panic!("{what} took longer than {limit:?}"))
}

/// Fails unless `err` is the server refusing the name with `code`.
#[track_caller]
pub fn assert_refused(err: &Error, code: tidings_core::ErrorCode) {
    assert!(
        matches!(err, Error::Refused { code: c, .. } if *c == code),
        "expected a refusal {code:?}, got {err}"
    );
}

/// A client config that saves offered files into `dir` without asking.
pub fn receiving_into(dir: &Path) -> ClientConfig {
    ClientConfig {
        download_dir: Some(dir.to_path_buf()),
        accept_files: true,
        ..ClientConfig::default()
    }
}

/// The async client (`tidings_smol::Client`), driven on smol's global executor.
pub mod smol_client {
    use super::*;
    use tidings_smol::Client;

    /// Connects as `name` with the default config.
    pub async fn connect(addr: SocketAddr, name: &str) -> Client {
        Client::connect(addr, name, ClientConfig::default())
            .await
            .unwrap()
    }

    /// Connects as `name`, accepting every offered file into `dir`.
    pub async fn connect_receiver(addr: SocketAddr, name: &str, dir: PathBuf) -> Client {
        Client::connect(addr, name, receiving_into(&dir))
            .await
            .unwrap()
    }

    /// The first event matching `pred` (others are skipped), within [`PATIENCE`].
    pub async fn wait_for(
        client: &Client,
        mut pred: impl FnMut(&ClientEvent) -> bool,
    ) -> ClientEvent {
        let next = async {
            loop {
                let ev = client.next_event().await.expect("connection ended");
                if pred(&ev) {
                    return ev;
                }
            }
        };
        within(PATIENCE, "waiting for an event", next).await
    }

    /// Waits for the next file received in full and returns where it was saved.
    pub async fn received(client: &Client) -> PathBuf {
        match wait_for(client, |e| matches!(e, ClientEvent::Received { .. })).await {
            ClientEvent::Received { path, .. } => path,
            _ => unreachable!(),
        }
    }

    /// Every event until one matches `pred`, that one included.
    pub async fn collect_until(
        client: &Client,
        mut pred: impl FnMut(&ClientEvent) -> bool,
    ) -> Vec<ClientEvent> {
        let mut seen = Vec::new();
        wait_for(client, |ev| {
            seen.push(ev.clone());
            pred(ev)
        })
        .await;
        seen
    }
}

/// The blocking client (`tidings_std::Client`), driven by threads of its own.
pub mod std_client {
    use super::*;
    use tidings_std::Client;

    /// Waits for the next file received in full and returns where it was saved.
    #[track_caller]
    pub fn received(client: &Client) -> PathBuf {
        match wait(client, |e| matches!(e, ClientEvent::Received { .. })) {
            ClientEvent::Received { path, .. } => path,
            _ => unreachable!(),
        }
    }

    /// Connects as `name` with the default config.
    pub fn connect(addr: SocketAddr, name: &str) -> Client {
        Client::connect(addr, name, ClientConfig::default()).unwrap()
    }

    /// Connects as `name`, accepting every offered file into `dir`.
    pub fn connect_receiver(addr: SocketAddr, name: &str, dir: &Path) -> Client {
        Client::connect(addr, name, receiving_into(dir)).unwrap()
    }

    /// The first event matching `pred` (others are skipped), within [`PATIENCE`].
    #[track_caller]
    pub fn wait(client: &Client, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ev = client
                .next_event_timeout(left)
                .unwrap_or_else(|e| panic!("no such event within {PATIENCE:?}: {e:?}"));
            if pred(&ev) {
                return ev;
            }
        }
    }
}

/// A peer registered as `name` that never reads or writes again after its welcome: driven by
/// hand with the core's session, so no client library answers heartbeats for it. The server
/// must declare it dead; dropping the stream closes it.
pub fn silent_peer(addr: SocketAddr, name: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    use tidings_core::session::{Config, Session};
    let mut session = Session::client(Config::default(), name, Instant::now()).unwrap();
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    while let Some(b) = session.poll_transmit() {
        raw.write_all(&b).unwrap();
    }
    // Read until the welcome, so that it is registered before whoever joins next.
    let mut buf = [0u8; 4096];
    while !session.is_open() {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed {name} before welcoming it");
        session.handle_input(Instant::now(), &buf[..n]);
    }
    raw
}

/// Fails the test instead of hanging when `f` takes longer than [`PATIENCE`].
pub async fn in_time<T>(f: impl Future<Output = T>) -> T {
    within(PATIENCE, "a wait", f).await
}

/// Whether the server closes `stream` without sending another byte, rather than answering
/// (a reset after our unread bytes counts as closed); fails the test if the server does
/// neither within [`PATIENCE`].
pub async fn closed_without_answer(stream: &mut (impl futures_lite::AsyncRead + Unpin)) -> bool {
    use futures_lite::AsyncReadExt;
    let mut got = Vec::new();
    match in_time(stream.read_to_end(&mut got)).await {
        Ok(_) => got.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset && got.is_empty(),
    }
}

/// The body of the test page at `/` and `/index.html`.
pub const PAGE: &[u8] = b"<!doctype html><title>tidings</title>";

/// A web serving a small web page ([`PAGE`] and `/app.js`), with `head_timeout` for a
/// visitor to show what it is.
pub fn web_with_page(head_timeout: Duration) -> WebConfig {
    WebConfig {
        head_timeout,
        page: vec![
            WebAsset {
                path: "/index.html",
                content_type: "text/html; charset=utf-8",
                body: PAGE,
            },
            WebAsset {
                path: "/app.js",
                content_type: "text/javascript; charset=utf-8",
                body: b"console.log(1)",
            },
        ],
        ..WebConfig::default()
    }
}

/// A native connection written by hand: any bytes out, and what the server answered read
/// once it closes. For what no well-behaved client sends.
pub struct RawNative {
    stream: std::net::TcpStream,
    /// Registered: the preamble and the welcome are read already.
    joined: bool,
}

impl RawNative {
    /// Connects, sending nothing yet.
    pub fn connect(addr: SocketAddr) -> RawNative {
        RawNative::over(std::net::TcpStream::connect(addr).unwrap(), false)
    }

    fn over(stream: std::net::TcpStream, joined: bool) -> RawNative {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawNative { stream, joined }
    }

    /// Connects and registers as `name`: returns once welcomed (see [`silent_peer`]).
    pub fn join(addr: SocketAddr, name: &str) -> RawNative {
        RawNative::over(silent_peer(addr, name), true)
    }

    /// Connects and sends the preamble and a `hello` for `name`, without waiting.
    pub fn hello(addr: SocketAddr, name: &str) -> RawNative {
        use tidings_core::wire::{Hello, Message, Preamble, DEFAULT_MAX_FRAME};
        let mut raw = RawNative::connect(addr);
        raw.send_bytes(&Preamble::CURRENT.to_bytes());
        raw.send(&Message::Hello(Hello {
            name: name.into(),
            capabilities: 0,
            max_frame: DEFAULT_MAX_FRAME,
        }));
        raw
    }

    /// Writes `bytes` as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// Writes one framed message.
    pub fn send(&mut self, msg: &tidings_core::wire::Message) {
        let mut out = bytes::BytesMut::new();
        msg.encode(&mut out);
        self.send_bytes(&out);
    }

    /// Every message the server sent (after the welcome, if [joined](RawNative::join)),
    /// read until it closed the connection (within [`PATIENCE`]); an answer to a connection
    /// not joined must begin with the native preamble.
    #[track_caller]
    pub fn until_closed(mut self) -> Vec<tidings_core::wire::Message> {
        use std::io::Read;
        use tidings_core::wire::{FrameDecoder, Message, Preamble, PREAMBLE_LEN};
        let mut got = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut got) {
            // A reset after the answer (the server closed with our bytes unread) ends it too.
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "not closed within {PATIENCE:?}"
            );
        }
        let frames = if self.joined {
            &got[..]
        } else {
            assert!(got.len() >= PREAMBLE_LEN, "no preamble: {got:?}");
            assert_eq!(&got[..PREAMBLE_LEN], &Preamble::CURRENT.to_bytes());
            &got[PREAMBLE_LEN..]
        };
        let mut dec = FrameDecoder::new(16 << 20);
        dec.push(frames);
        let mut msgs = Vec::new();
        while let Some(frame) = dec.next_frame().unwrap() {
            msgs.push(Message::decode(frame).unwrap());
        }
        msgs
    }
}

/// The code of the first `error` or `goodbye` among `msgs`: why the server closed.
pub fn close_code(msgs: &[tidings_core::wire::Message]) -> Option<tidings_core::ErrorCode> {
    use tidings_core::wire::Message;
    msgs.iter().find_map(|m| match m {
        Message::Error { code, .. } | Message::Goodbye { code, .. } => Some(*code),
        _ => None,
    })
}
