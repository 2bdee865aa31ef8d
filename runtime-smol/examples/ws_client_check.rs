//! Checks the core's WebSocket client against any echo server (interop/run uses Python's
//! `websockets`):
//!
//! ```text
//! cargo run --release -p tidings-smol --example ws_client_check -- 127.0.0.1:PORT
//! ```
//!
//! Connects to `/`, sends text and binary messages of several sizes (empty, the 7-bit,
//! 16-bit and 64-bit length forms, up to 4 MiB), checks that each comes back unchanged,
//! then closes with 1000 and expects the server's close and the end of the stream. Exits
//! with status 1 and the reason on the first failure.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::ws::{
    ClientHandshake, ClientRequest, CloseCode, WsConfig, WsConnection, WsEvent,
    DEFAULT_MAX_HEADER_BYTES,
};

/// Message sizes: around each length-encoding boundary, and a large one.
const SIZES: [usize; 8] = [0, 1, 125, 126, 65_535, 65_536, 1 << 20, 4 << 20];

/// Longest wait for any one answer.
const TIMEOUT: Duration = Duration::from_secs(20);

fn main() {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: ws_client_check HOST:PORT");
        std::process::exit(2);
    };
    match smol::block_on(check(&addr)) {
        Ok(()) => println!(
            "ws_client_check: {} echoes and a clean close",
            SIZES.len() * 2
        ),
        Err(err) => {
            eprintln!("ws_client_check: {err}");
            std::process::exit(1);
        }
    }
}

/// Masks and handshake keys from the standard library's randomly seeded hasher: good
/// enough for a check (the core takes them from the caller).
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x7469_6469_6e67_7321);
    h.finish()
}

struct Peer {
    stream: TcpStream,
    ws: WsConnection,
    buf: Vec<u8>,
}

impl Peer {
    async fn flush(&mut self) -> io::Result<()> {
        while let Some(bytes) = self.ws.poll_transmit() {
            self.stream.write_all(&bytes).await?;
        }
        Ok(())
    }

    /// The next event that is not a ping or pong (pings are answered by the connection).
    async fn next(&mut self) -> io::Result<WsEvent> {
        loop {
            while let Some(ev) = self.ws.poll_event() {
                self.flush().await?;
                if !matches!(ev, WsEvent::Ping(_) | WsEvent::Pong(_)) {
                    return Ok(ev);
                }
            }
            let n = future::or(self.stream.read(&mut self.buf), async {
                async_io::Timer::after(TIMEOUT).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))
            })
            .await?;
            if n == 0 {
                self.ws.handle_eof(Instant::now());
            } else {
                self.ws.handle_input(Instant::now(), &self.buf[..n]);
            }
        }
    }
}

/// A payload whose every byte depends on its position and size, so a shifted or truncated
/// echo cannot match.
fn payload(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'a' + ((i * 7 + size) % 26) as u8)
        .collect()
}

async fn check(addr: &str) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&random_u64().to_le_bytes());
    key[8..].copy_from_slice(&random_u64().to_le_bytes());
    let request = ClientRequest {
        host: addr,
        path: "/",
        key,
        protocols: &[],
        origin: None,
    };
    let (mut handshake, bytes) =
        ClientHandshake::new(&request, DEFAULT_MAX_HEADER_BYTES).map_err(io::Error::other)?;
    stream.write_all(&bytes).await?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::other("closed during the handshake"));
        }
        if handshake
            .feed(&buf[..n])
            .map_err(io::Error::other)?
            .is_some()
        {
            break;
        }
    }
    let mut seed = random_u64();
    let ws = WsConnection::client(WsConfig::default(), move || {
        // xorshift: a fresh, unpredictable-enough key per frame.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed as u32).to_le_bytes()
    });
    let mut peer = Peer { stream, ws, buf };
    peer.ws
        .handle_input(Instant::now(), &handshake.take_remaining());

    for size in SIZES {
        let data = payload(size);
        let text = String::from_utf8(data.clone()).expect("ASCII");
        peer.ws.send_text(&text).map_err(io::Error::other)?;
        peer.flush().await?;
        match peer.next().await? {
            WsEvent::Text(got) if got.as_str() == text => {}
            other => {
                return Err(io::Error::other(format!(
                    "text of {size}: got {other:.60?}"
                )))
            }
        }
        peer.ws.send_binary(&data).map_err(io::Error::other)?;
        peer.flush().await?;
        match peer.next().await? {
            WsEvent::Binary(got) if got[..] == data[..] => {}
            other => {
                return Err(io::Error::other(format!(
                    "binary of {size}: got {other:.60?}"
                )))
            }
        }
    }

    peer.ws
        .close(Instant::now(), CloseCode::NORMAL, "done")
        .map_err(io::Error::other)?;
    peer.flush().await?;
    match peer.next().await? {
        WsEvent::Close { code, .. } if code == CloseCode::NORMAL => {}
        other => {
            return Err(io::Error::other(format!(
                "expected close 1000, got {other:?}"
            )))
        }
    }
    // The server closes the TCP connection after the close handshake.
    let n = future::or(peer.stream.read(&mut peer.buf), async {
        async_io::Timer::after(TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server did not close",
        ))
    })
    .await?;
    if n != 0 {
        return Err(io::Error::other("bytes after the close handshake"));
    }
    Ok(())
}
