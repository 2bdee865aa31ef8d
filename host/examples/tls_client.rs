//! Driving `tidings-core` over TLS from your own loop: a blocking `std::net::TcpStream`,
//! the TLS glue of `tidings_host::tls` in its step form (records in, plaintext out, and
//! back), and the calling contract of [`Session`]. No runtime, no async.
//!
//! ```text
//! tidings cert --name localhost --out tls
//! tidings serve --tls-cert tls/cert.pem --tls-key tls/key.pem &
//! cargo run -p tidings-host --example tls_client -- localhost:9988 tls/ca.pem tls-bot 60
//! ```
//!
//! It connects, says hello to everyone, prints what it receives for the seconds given
//! (default 60), then says goodbye.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Event, Session};
use tidings_host::tls::{Tls, TlsClientConfig};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "localhost:9988".into());
    let ca = args.next().unwrap_or_else(|| "tls/ca.pem".into());
    let name = args.next().unwrap_or_else(|| "tls-bot".into());
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);

    let trusted = TlsClientConfig::from_ca_pem(&std::fs::read(&ca)?).map_err(io::Error::other)?;
    let mut tls = Tls::connect(&trusted, host)?;
    let mut stream = TcpStream::connect(&addr)?;
    stream.set_nodelay(true)?;
    let mut session = Session::client(Config::default(), &name, Instant::now())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut records = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut plaintext = vec![0u8; 64 << 10];

    loop {
        // 1. The session's output becomes plaintext for TLS, and TLS's records go out.
        while let Some(bytes) = session.poll_transmit() {
            let mut left = &bytes[..];
            while !left.is_empty() {
                let taken = tls.queue_plaintext(&[IoSlice::new(left)]);
                left = &left[taken..];
                flush(&mut tls, &mut stream, &mut records)?;
            }
        }
        flush(&mut tls, &mut stream, &mut records)?;
        // 2. Act on the session's events.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connected(welcome) => {
                    println!(
                        "connected over TLS to {} as {}",
                        welcome.server, welcome.name
                    );
                    let _ = session.send_text("", "hello over TLS");
                }
                Event::Text { peer, text, .. } => println!("{peer}: {text}"),
                Event::Closed(how) => {
                    println!("disconnected: {how:?}");
                    flush(&mut tls, &mut stream, &mut records)?;
                    return Ok(());
                }
                _ => {}
            }
        }
        if Instant::now() >= until && session.is_open() {
            session.goodbye(tidings_core::ErrorCode::Normal, "bye");
            continue;
        }
        // 3. Wait for records (at most until the session's deadline), decrypt, hand over.
        let now = Instant::now();
        let deadline = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1));
        if deadline <= now {
            session.handle_timeout(now);
            continue;
        }
        stream.set_read_timeout(Some(deadline - now))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                tls.received_eof()?;
                session.handle_eof(Instant::now());
            }
            Ok(n) => {
                let mut fed = &buf[..n];
                while !fed.is_empty() {
                    let taken = tls.received(fed)?;
                    fed = &fed[taken..];
                    // What the records decrypted to is the session's input.
                    loop {
                        match tls.plaintext(&mut plaintext) {
                            Ok(0) => break session.handle_eof(Instant::now()),
                            Ok(got) => session.handle_input(Instant::now(), &plaintext[..got]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                // The handshake's own records (and any alert) go out at once.
                flush(&mut tls, &mut stream, &mut records)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now());
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes every record TLS has waiting.
fn flush(tls: &mut Tls, stream: &mut TcpStream, records: &mut Vec<u8>) -> io::Result<()> {
    records.clear();
    while tls.records(records)? > 0 {}
    stream.write_all(records)
}
