#![no_main]
//! Our glue around rustls (`tidings_host::tls::Tls`), as the runtimes drive it.
//!
//! First byte even: a server connection is fed the rest as records from a hostile client, in
//! pieces the input chooses, reading plaintext and writing records between; it must never
//! panic, and what it owes the peer stays bounded. First byte odd: a real client and server
//! talk over an in-memory pipe whose reads and writes the input cuts short or refuses
//! (`WouldBlock`) at will, through `Tls::read` and `Tls::write_vectored`; every plaintext
//! byte the client's writes acknowledged must arrive at the server, in order.

use std::io::{self, IoSlice, Read, Write};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tidings_host::tls::{SelfSigned, Tls, TlsClientConfig, TlsServerConfig, SEND_BUFFER};

fn configs() -> &'static (TlsServerConfig, TlsClientConfig) {
    static CONFIGS: OnceLock<(TlsServerConfig, TlsClientConfig)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let made = SelfSigned::generate(&["localhost".into()]).unwrap();
        (
            TlsServerConfig::from_pem(made.cert_pem.as_bytes(), made.key_pem.as_bytes()).unwrap(),
            TlsClientConfig::from_ca_pem(made.ca_pem.as_bytes()).unwrap(),
        )
    })
}

/// A byte source of decisions; zeros once the input is used up.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn next(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
}

fn hostile_records(data: &[u8]) {
    let mut tls = Tls::accept(&configs().0);
    let mut rest = data;
    let mut out = Vec::new();
    let mut plain = [0u8; 512];
    while let Some((&cut, tail)) = rest.split_first() {
        let n = (cut as usize % 64 + 1).min(tail.len());
        let (piece, tail) = tail.split_at(n);
        rest = tail;
        let mut piece = piece;
        while !piece.is_empty() {
            match tls.received(piece) {
                Ok(0) => break,
                Ok(taken) => piece = &piece[taken..],
                Err(_) => {
                    while tls.records(&mut out).unwrap_or(0) > 0 {}
                    return;
                }
            }
            while let Ok(n) = tls.plaintext(&mut plain) {
                if n == 0 {
                    break;
                }
            }
        }
        while tls.records(&mut out).unwrap_or(0) > 0 {}
        assert!(out.len() < 1 << 20, "a server owes a hostile peer {} bytes", out.len());
        out.clear();
    }
    let _ = tls.received_eof();
}

/// One direction of the in-memory pipe, which the input cuts short or blocks.
#[derive(Default)]
struct Pipe(Vec<u8>);

/// A side's view: it writes to `tx`, reads from `rx`, as the choices allow.
struct End<'a, 'b> {
    tx: &'a mut Pipe,
    rx: &'a mut Pipe,
    choices: &'a mut Choices<'b>,
}

impl Read for End<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let c = self.choices.next();
        if c % 5 == 0 || self.rx.0.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = (c as usize * 37 % 4096 + 1).min(buf.len()).min(self.rx.0.len());
        buf[..n].copy_from_slice(&self.rx.0[..n]);
        self.rx.0.drain(..n);
        Ok(n)
    }
}

impl Write for End<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let c = self.choices.next();
        if c % 7 == 0 || self.tx.0.len() > 256 << 10 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = (c as usize * 53 % 8192 + 1).min(buf.len());
        self.tx.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn conversation(data: &[u8]) {
    let (server_config, client_config) = configs();
    let mut client = Tls::connect(client_config, "localhost").unwrap();
    let mut server = Tls::accept(server_config);
    let (mut to_server, mut to_client) = (Pipe::default(), Pipe::default());
    let mut choices = Choices(data);
    // What the client sends: lengths from the input, bytes numbered so order shows.
    let total: usize = data.iter().take(8).map(|&b| b as usize * 97).sum::<usize>() + 1;
    let message: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let (mut acked, mut received) = (0usize, Vec::new());
    let mut buf = vec![0u8; 3000];
    // Until the input's choices run out (then every read would block).
    while !choices.0.is_empty() {
        if acked < message.len() {
            let len = (choices.next() as usize * 131 + 1).min(message.len() - acked);
            let mut end = End { tx: &mut to_server, rx: &mut to_client, choices: &mut choices };
            match client.write_vectored(&mut end, &[IoSlice::new(&message[acked..acked + len])]) {
                Ok(n) => {
                    assert!(n <= len.max(SEND_BUFFER));
                    acked += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client write: {e}"),
            }
            let mut end = End { tx: &mut to_server, rx: &mut to_client, choices: &mut choices };
            match client.read(&mut end, &mut buf) {
                Ok(n) => assert_eq!(n, 0, "the server sent no plaintext"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
        let mut end = End { tx: &mut to_client, rx: &mut to_server, choices: &mut choices };
        match server.read(&mut end, &mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("server read: {e}"),
        }
        if received.len() == message.len() {
            break;
        }
    }
    assert!(received.len() <= acked.max(received.len()));
    assert_eq!(received[..], message[..received.len()], "plaintext arrived out of order");
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode % 2 == 0 => hostile_records(rest),
        Some((_, rest)) => conversation(rest),
        None => {}
    }
});
