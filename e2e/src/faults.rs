//! Servers that break one rule of the protocol each, to prove that a checker (the
//! conformance runner, `tidings conform`) catches what it claims to: a proxy in front of a
//! real, correct server that changes the native byte stream in one way ([`Fault`]).
//!
//! A proxy rather than a build of the server with a defect switched on: the real servers
//! carry no test-only code paths, and the same faults can sit in front of any server. Each
//! client connection gets its own connection to the upstream server; frames pass through
//! unchanged (read whole, or streamed when larger than the default frame limit, so a header
//! that declares too much reaches the server at once) except those the fault is about.
//!
//! ```no_run
//! use tidings_e2e::faults::{Fault, FaultyServer};
//! # let upstream: std::net::SocketAddr = "127.0.0.1:9988".parse().unwrap();
//! let broken = FaultyServer::start(upstream, Fault::LeaksPrivate);
//! // point the checker at broken.addr: it must report the private-routing case FAILED
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tidings_core::wire::{
    capability, Frame, Message, Utf8, DEFAULT_MAX_FRAME, HEADER_LEN, PREAMBLE_LEN,
};
use tidings_core::ErrorCode;

/// The one rule a [`FaultyServer`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Texts and blobs are delivered as if from `mallory`, not from their sender (§6.3: the
    /// server stamps the sender).
    StampsWrongSender,
    /// A client frame longer than the 1 MiB default limit is swallowed with everything after
    /// it, instead of being answered with `frame-too-large` (§4.3).
    NoFrameLimit,
    /// The receiver's `accept` and `credit` reach the server as all the credit there is, so
    /// the server sends chunks the receiver never granted (§7.4).
    IgnoresCredit,
    /// Every `error` and `refused` carries a different code than the server chose (§8).
    WrongErrorCode,
    /// Two texts in a row from one sender to one recipient arrive in the opposite order
    /// (§6.9: one sender's messages keep their order).
    ReordersTexts,
    /// A private text or blob also goes to everyone else online (§6.3).
    LeaksPrivate,
    /// Every `room-text` also goes to everyone else online, its sender included (§6.10.4:
    /// to the room's other members only).
    LeaksRooms,
    /// The capability `rooms` is taken out of every `hello` and `welcome`: a server that
    /// does not speak rooms (§6.10.1), which a checker must call UNIMPLEMENTED, not FAILED.
    NoRooms,
}

/// The name [`Fault::StampsWrongSender`] puts on every text.
pub const WRONG_SENDER: &str = "mallory";

/// A proxy on 127.0.0.1 that breaks one rule in front of a real server; stops when dropped
/// (connections already open end when either side closes).
pub struct FaultyServer {
    /// Where clients connect.
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
}

impl FaultyServer {
    /// Starts a proxy to `upstream` that breaks the rule of `fault`.
    pub fn start(upstream: SocketAddr, fault: Fault) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let clients = Arc::new(Clients::default());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let clients = clients.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, fault, &clients);
                });
            }
        });
        FaultyServer { addr, stopping }
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The clients online through one proxy, by connection, for the faults that write into
/// another client's stream. Writes to a client go through its lock, whole frames at a time.
#[derive(Default)]
struct Clients {
    next: AtomicU64,
    writers: Mutex<HashMap<u64, Arc<Mutex<TcpStream>>>>,
}

/// Relays one client connection until either side closes.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    clients: &Arc<Clients>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let id = clients.next.fetch_add(1, Ordering::SeqCst);
    let to_client = Arc::new(Mutex::new(client.try_clone()?));
    clients
        .writers
        .lock()
        .unwrap()
        .insert(id, to_client.clone());
    let up = {
        let (client, server) = (client.try_clone()?, server.try_clone()?);
        std::thread::spawn(move || {
            let _ = client_to_server(client, server.try_clone().expect("clone"), fault);
            let _ = server.shutdown(Shutdown::Write);
        })
    };
    let result = server_to_client(server, id, &to_client, fault, clients);
    clients.writers.lock().unwrap().remove(&id);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
    result
}

/// A frame as read: its header, and its body when it was read whole.
struct RawFrame {
    header: [u8; HEADER_LEN],
    body: Option<Bytes>,
}

impl RawFrame {
    fn kind(&self) -> u8 {
        self.header[4]
    }

    fn declared(&self) -> usize {
        u32::from_be_bytes(self.header[..4].try_into().expect("4 bytes")) as usize
    }

    fn message(&self) -> Option<Message> {
        let body = self.body.clone()?;
        Message::decode(Frame {
            kind: self.kind(),
            body,
        })
        .ok()
    }
}

/// The next frame of `from`: whole when its body is within the default limit, else only the
/// header (the caller streams the body). `None` at the end of the stream; a stream that
/// ends inside a frame is passed on as far as it got, then ends.
fn read_frame(from: &mut TcpStream, to: &Mutex<TcpStream>) -> io::Result<Option<RawFrame>> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(from, &mut header)?;
    if got < HEADER_LEN {
        to.lock().unwrap().write_all(&header[..got])?;
        return Ok(None);
    }
    let frame = RawFrame { header, body: None };
    if frame.declared() > DEFAULT_MAX_FRAME as usize {
        return Ok(Some(frame));
    }
    let mut body = vec![0u8; frame.declared()];
    let got = read_full(from, &mut body)?;
    if got < body.len() {
        let mut to = to.lock().unwrap();
        to.write_all(&header)?;
        to.write_all(&body[..got])?;
        return Ok(None);
    }
    Ok(Some(RawFrame {
        header,
        body: Some(body.into()),
    }))
}

/// Reads until `buf` is full or the stream ends; returns how much it got.
fn read_full(from: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match from.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes `frame` on, streaming a body that was not read whole from `from`.
fn pass(frame: &RawFrame, from: &mut TcpStream, to: &Mutex<TcpStream>) -> io::Result<()> {
    let mut to = to.lock().unwrap();
    to.write_all(&frame.header)?;
    match &frame.body {
        Some(body) => to.write_all(body),
        None => {
            io::copy(&mut (&mut *from).take(frame.declared() as u64), &mut *to)?;
            Ok(())
        }
    }
}

/// `message` as a whole frame.
fn encode(message: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    message.encode(&mut out);
    out
}

/// Copies the preamble, then the frames, changing those the fault is about.
fn client_to_server(mut client: TcpStream, server: TcpStream, fault: Fault) -> io::Result<()> {
    let server = Mutex::new(server);
    let mut preamble = [0u8; PREAMBLE_LEN];
    let got = read_full(&mut client, &mut preamble)?;
    server.lock().unwrap().write_all(&preamble[..got])?;
    while let Some(frame) = read_frame(&mut client, &server)? {
        if fault == Fault::NoFrameLimit && frame.body.is_none() {
            // Swallowed, and with it the stream: the server never sees the oversize frame.
            io::copy(&mut client, &mut io::sink())?;
            return Ok(());
        }
        let credit = match (fault, frame.message()) {
            (Fault::NoRooms, Some(Message::Hello(mut hello))) => {
                hello.capabilities &= !capability::ROOMS;
                Some(Message::Hello(hello))
            }
            (Fault::IgnoresCredit, Some(Message::Accept { id, offset, .. })) => {
                Some(Message::Accept {
                    id,
                    offset,
                    credit: u32::MAX,
                })
            }
            (Fault::IgnoresCredit, Some(Message::Credit { id, .. })) => Some(Message::Credit {
                id,
                bytes: u32::MAX,
            }),
            _ => None,
        };
        match credit {
            Some(changed) => server.lock().unwrap().write_all(&encode(&changed))?,
            None => pass(&frame, &mut client, &server)?,
        }
    }
    Ok(())
}

/// Copies the preamble, then the frames, changing those the fault is about.
fn server_to_client(
    mut server: TcpStream,
    me: u64,
    client: &Mutex<TcpStream>,
    fault: Fault,
    clients: &Clients,
) -> io::Result<()> {
    let mut preamble = [0u8; PREAMBLE_LEN];
    let got = read_full(&mut server, &mut preamble)?;
    client.lock().unwrap().write_all(&preamble[..got])?;
    // ReordersTexts: a text held back until the next one from its sender overtakes it.
    let mut held: Option<(Utf8, BytesMut)> = None;
    loop {
        if fault == Fault::ReordersTexts {
            // A held text goes out on its own if nothing overtakes it soon.
            let wait = held.as_ref().map(|_| Duration::from_millis(200));
            server.set_read_timeout(wait)?;
        }
        let frame = match read_frame(&mut server, client) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some((_, text)) = held.take() {
                    client.lock().unwrap().write_all(&text)?;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let message = frame.message();
        match (fault, message) {
            (Fault::StampsWrongSender, Some(Message::Text { private, text, .. })) => {
                let peer = Utf8::from(WRONG_SENDER);
                let wrong = Message::Text {
                    peer,
                    private,
                    text,
                };
                client.lock().unwrap().write_all(&encode(&wrong))?;
            }
            (
                Fault::StampsWrongSender,
                Some(Message::Blob {
                    private,
                    media_type,
                    data,
                    ..
                }),
            ) => {
                let peer = Utf8::from(WRONG_SENDER);
                let wrong = Message::Blob {
                    peer,
                    private,
                    media_type,
                    data,
                };
                client.lock().unwrap().write_all(&encode(&wrong))?;
            }
            (Fault::NoRooms, Some(Message::Welcome(mut welcome))) => {
                welcome.capabilities &= !capability::ROOMS;
                let changed = encode(&Message::Welcome(welcome));
                client.lock().unwrap().write_all(&changed)?;
            }
            (Fault::WrongErrorCode, Some(Message::Error { code, text })) => {
                let code = other_code(code);
                client
                    .lock()
                    .unwrap()
                    .write_all(&encode(&Message::Error { code, text }))?;
            }
            (Fault::WrongErrorCode, Some(Message::Refused { code, reason })) => {
                let code = other_code(code);
                client
                    .lock()
                    .unwrap()
                    .write_all(&encode(&Message::Refused { code, reason }))?;
            }
            (Fault::ReordersTexts, Some(Message::Text { peer, .. })) => {
                let this = encode(&frame.message().expect("decoded above"));
                match held.take() {
                    Some((from, earlier)) if from == peer => {
                        let mut to = client.lock().unwrap();
                        to.write_all(&this)?;
                        to.write_all(&earlier)?;
                    }
                    Some((_, earlier)) => {
                        client.lock().unwrap().write_all(&earlier)?;
                        held = Some((peer, this));
                    }
                    None => held = Some((peer, this)),
                }
            }
            (
                Fault::LeaksPrivate,
                Some(
                    m @ (Message::Text { private: true, .. } | Message::Blob { private: true, .. }),
                ),
            )
            | (Fault::LeaksRooms, Some(m @ Message::RoomText { .. })) => {
                let bytes = encode(&m);
                client.lock().unwrap().write_all(&bytes)?;
                let others: Vec<_> = clients
                    .writers
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(id, _)| **id != me)
                    .map(|(_, w)| w.clone())
                    .collect();
                for other in others {
                    let _ = other.lock().unwrap().write_all(&bytes);
                }
            }
            _ => {
                if let Some((_, text)) = held.take() {
                    client.lock().unwrap().write_all(&text)?;
                }
                pass(&frame, &mut server, client)?;
            }
        }
    }
    if let Some((_, text)) = held.take() {
        client.lock().unwrap().write_all(&text)?;
    }
    Ok(())
}

/// A code other than `code`, of the same kind of mistake a server could make.
fn other_code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::Malformed => ErrorCode::UnknownType,
        _ => ErrorCode::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that speaks just enough of the protocol to send and receive frames.
    struct Raw {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    impl Raw {
        fn join(addr: SocketAddr, name: &str) -> Raw {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(crate::PATIENCE)).unwrap();
            let mut hello = BytesMut::new();
            hello.extend_from_slice(&tidings_core::wire::Preamble::CURRENT.to_bytes());
            Message::Hello(tidings_core::wire::Hello {
                name: Utf8::from(name),
                capabilities: 0,
                max_frame: DEFAULT_MAX_FRAME,
            })
            .encode(&mut hello);
            stream.write_all(&hello).unwrap();
            let mut raw = Raw {
                stream,
                buf: Vec::new(),
            };
            let mut preamble = [0u8; PREAMBLE_LEN];
            raw.stream.read_exact(&mut preamble).unwrap();
            assert!(matches!(raw.next(), Message::Welcome(_)));
            raw
        }

        fn send(&mut self, m: Message) {
            self.stream.write_all(&encode(&m)).unwrap();
        }

        fn next(&mut self) -> Message {
            let mut dec = tidings_core::wire::FrameDecoder::new(16 << 20);
            dec.push(&self.buf);
            loop {
                if let Some(frame) = dec.next_frame().unwrap() {
                    self.buf = dec.peek().to_vec();
                    return Message::decode(frame).unwrap();
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).unwrap();
                assert!(n > 0, "closed");
                dec.push(&chunk[..n]);
            }
        }

        /// The next text, skipping presence and pings.
        fn text(&mut self) -> (String, bool, String) {
            loop {
                match self.next() {
                    Message::Text {
                        peer,
                        private,
                        text,
                    } => return (peer.to_string(), private, text.to_string()),
                    Message::Presence { .. } | Message::Ping { .. } | Message::PeerList { .. } => {}
                    other => panic!("expected a text, got {other:?}"),
                }
            }
        }
    }

    fn text_to(peer: &str, text: &str) -> Message {
        Message::Text {
            peer: Utf8::from(peer),
            private: false,
            text: Utf8::from(text),
        }
    }

    /// The real server behind each proxy: the smol one, on a thread of its own.
    fn upstream() -> crate::TestServer {
        crate::TestServer::start(crate::ServerKind::Smol, crate::ServerConfig::default())
    }

    #[test]
    fn each_fault_changes_what_it_says_and_nothing_else() {
        let server = upstream();
        // Stamping: the sender's name is replaced.
        let proxy = FaultyServer::start(server.addr, Fault::StampsWrongSender);
        let mut a = Raw::join(proxy.addr, "alice");
        let mut b = Raw::join(proxy.addr, "bob");
        a.send(text_to("", "hi all"));
        assert_eq!(b.text(), (WRONG_SENDER.into(), false, "hi all".into()));
        drop((a, b, proxy));

        // Leaks: carol sees what alice said to bob alone; bob gets it as sent.
        let proxy = FaultyServer::start(server.addr, Fault::LeaksPrivate);
        let mut a = Raw::join(proxy.addr, "alice2");
        let mut b = Raw::join(proxy.addr, "bob2");
        let mut c = Raw::join(proxy.addr, "carol2");
        a.send(text_to("bob2", "secret"));
        assert_eq!(b.text(), ("alice2".into(), true, "secret".into()));
        assert_eq!(c.text(), ("alice2".into(), true, "secret".into()));
        drop((a, b, c, proxy));

        // Reorders: two texts in a row from one sender swap places; a third comes alone.
        let proxy = FaultyServer::start(server.addr, Fault::ReordersTexts);
        let mut a = Raw::join(proxy.addr, "alice3");
        let mut b = Raw::join(proxy.addr, "bob3");
        for text in ["one", "two", "three"] {
            a.send(text_to("bob3", text));
        }
        let got: Vec<String> = (0..3).map(|_| b.text().2).collect();
        assert_eq!(got, ["two", "one", "three"]);
        drop((a, b, proxy));

        // Wrong code: a text to nobody is `unknown-peer` from the server, something else here.
        let proxy = FaultyServer::start(server.addr, Fault::WrongErrorCode);
        let mut a = Raw::join(proxy.addr, "alice4");
        a.send(text_to("nobody", "hello?"));
        loop {
            match a.next() {
                Message::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::Malformed);
                    break;
                }
                Message::Presence { .. } | Message::Ping { .. } => {}
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    /// Bytes of file data `bob` receives of a 64 KiB file from `alice`, having granted 1 KiB,
    /// through `addr`.
    fn chunk_bytes_past_a_1_kib_grant(addr: SocketAddr, suffix: &str) -> usize {
        let (alice, bob) = (format!("alice{suffix}"), format!("bob{suffix}"));
        let mut a = Raw::join(addr, &alice);
        let mut b = Raw::join(addr, &bob);
        let offer = tidings_core::wire::Offer {
            id: 0,
            peer: Utf8::from(bob.as_str()),
            size: 64 << 10,
            name: Utf8::from("f.bin"),
            media_type: Utf8::from(""),
        };
        a.send(Message::Offer(offer));
        let id = loop {
            match b.next() {
                Message::Offer(o) => break o.id,
                Message::Presence { .. } | Message::Ping { .. } => {}
                other => panic!("expected the offer, got {other:?}"),
            }
        };
        b.send(Message::Accept {
            id,
            offset: 0,
            credit: 1024,
        });
        loop {
            match a.next() {
                Message::Accept { .. } => break,
                Message::Presence { .. } | Message::Ping { .. } | Message::Extension { .. } => {}
                other => panic!("expected the accept, got {other:?}"),
            }
        }
        for i in 0..4u64 {
            let data = Bytes::from(vec![7u8; 16 << 10]);
            a.send(Message::Chunk {
                id: 0,
                offset: i * (16 << 10),
                data,
            });
        }
        // Whatever the server sends comes within a moment; then silence.
        b.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut got = 0;
        let mut dec = tidings_core::wire::FrameDecoder::new(16 << 20);
        dec.push(&b.buf);
        let mut chunk = [0u8; 65536];
        loop {
            while let Some(frame) = dec.next_frame().unwrap() {
                if let Ok(Message::Chunk { data, .. }) = Message::decode(frame) {
                    got += data.len();
                }
            }
            match b.stream.read(&mut chunk) {
                Ok(n) if n > 0 => dec.push(&chunk[..n]),
                _ => return got,
            }
        }
    }

    #[test]
    fn ignores_credit_makes_the_server_send_past_the_grant() {
        let server = upstream();
        assert!(chunk_bytes_past_a_1_kib_grant(server.addr, "") <= 1024);
        let proxy = FaultyServer::start(server.addr, Fault::IgnoresCredit);
        assert_eq!(chunk_bytes_past_a_1_kib_grant(proxy.addr, "2"), 64 << 10);
    }

    #[test]
    fn no_frame_limit_swallows_the_oversize_frame_and_the_server_never_answers() {
        let server = upstream();
        let proxy = FaultyServer::start(server.addr, Fault::NoFrameLimit);
        let mut a = Raw::join(proxy.addr, "alice");
        a.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut header = BytesMut::new();
        tidings_core::wire::encode_header(0x10, DEFAULT_MAX_FRAME as usize + 1, &mut header);
        a.stream.write_all(&header).unwrap();
        // Straight to the server, the header alone is answered with `frame-too-large`; through
        // the proxy nothing comes (pings aside: the default interval is far longer).
        let mut byte = [0u8; 1];
        let err = a.stream.read(&mut byte).expect_err("silence");
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        // Without the fault the same header is answered at once.
        let honest = Raw::join(server.addr, "bob");
        let mut honest = honest;
        honest.stream.write_all(&header).unwrap();
        match honest.next() {
            Message::Error { code, .. } => assert_eq!(code, ErrorCode::FrameTooLarge),
            other => panic!("expected frame-too-large, got {other:?}"),
        }
    }
}
