//! WebSocket echo client on the sans-IO core, for Autobahn's `fuzzingserver`.
//!
//! ```text
//! cargo run --release -p tidings-smol --example ws_echo_client -- 9002
//! ```
//!
//! Connects to the fuzzing server on 127.0.0.1:PORT, asks for the number of cases
//! (`/getCaseCount`), runs each one (`/runCase?case=N&agent=tidings`) by echoing every message,
//! then asks the server to write its reports (`/updateReports?agent=tidings`).

use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::time::Instant;
use tidings_core::ws::{
    ClientHandshake, ClientRequest, WsConfig, WsConnection, WsEvent, DEFAULT_MAX_HEADER_BYTES,
};

const AGENT: &str = "tidings";

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: ws_echo_client PORT");
            std::process::exit(2);
        }
    };
    smol::block_on(async {
        let mut random = Random::new();
        let mut count = None;
        session(port, "/getCaseCount", &mut random, |text| {
            count = text.trim().parse::<u32>().ok();
        })
        .await?;
        let count = count.ok_or_else(|| io::Error::other("no case count received"))?;
        eprintln!("ws_echo_client: {count} cases");
        for case in 1..=count {
            let path = format!("/runCase?case={case}&agent={AGENT}");
            if let Err(err) = session(port, &path, &mut random, |_| {}).await {
                eprintln!("ws_echo_client: case {case}: {err}");
            }
        }
        session(
            port,
            &format!("/updateReports?agent={AGENT}"),
            &mut random,
            |_| {},
        )
        .await?;
        eprintln!("ws_echo_client: reports updated");
        Ok(())
    })
}

/// Opens a connection to `path` and echoes every message until the connection ends. `on_text`
/// sees each text message first.
async fn session(
    port: u16,
    path: &str,
    random: &mut Random,
    mut on_text: impl FnMut(&str),
) -> io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let host = format!("127.0.0.1:{port}");
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&random.next_u64().to_le_bytes());
    key[8..].copy_from_slice(&random.next_u64().to_le_bytes());
    let request = ClientRequest {
        host: &host,
        path,
        key,
        protocols: &[],
        origin: None,
    };
    let (mut handshake, bytes) =
        ClientHandshake::new(&request, DEFAULT_MAX_HEADER_BYTES).map_err(io::Error::other)?;
    stream.write_all(&bytes).await?;

    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if handshake
            .feed(&buf[..n])
            .map_err(io::Error::other)?
            .is_some()
        {
            break;
        }
    }

    let mut masks = random.fork();
    let mut ws = WsConnection::client(WsConfig::default(), move || {
        (masks.next_u64() as u32).to_le_bytes()
    });
    ws.handle_input(Instant::now(), &handshake.take_remaining());
    loop {
        while let Some(event) = ws.poll_event() {
            // Sends fail only once we are closing, when there is nothing left to echo.
            let _ = match event {
                WsEvent::Text(text) => {
                    on_text(&text);
                    ws.send_text(&text)
                }
                WsEvent::Binary(data) => ws.send_binary(&data),
                _ => Ok(()),
            };
        }
        while let Some(bytes) = ws.poll_transmit() {
            stream.write_all(&bytes).await?;
        }
        if ws.should_close_socket() {
            return Ok(());
        }
        let read = stream.read(&mut buf);
        let n = match ws.poll_timeout() {
            None => read.await?,
            Some(deadline) => {
                // Closing: the connection bounds how long the server may take to finish. A
                // server may also reset rather than close once it has our close frame
                // (Autobahn's does): after the close handshake that is as good as an orderly end.
                let read = async { Some(read.await.unwrap_or(0)) };
                let timer = async {
                    async_io::Timer::at(deadline).await;
                    None
                };
                match future::or(read, timer).await {
                    Some(n) => n,
                    None => {
                        ws.handle_timeout(Instant::now());
                        continue;
                    }
                }
            }
        };
        if n == 0 {
            ws.handle_eof(Instant::now());
        } else {
            ws.handle_input(Instant::now(), &buf[..n]);
        }
    }
}

/// Masking keys and handshake nonces from the standard library's randomly keyed SipHash: no
/// extra dependency, unpredictable to the peer, good enough for a test client.
struct Random {
    state: RandomState,
    counter: u64,
}

impl Random {
    fn new() -> Self {
        Random {
            state: RandomState::new(),
            counter: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        let mut hasher = self.state.build_hasher();
        hasher.write_u64(self.counter);
        hasher.finish()
    }

    /// An independent generator (the connection needs one it can own).
    fn fork(&mut self) -> Random {
        let mut fork = Random::new();
        fork.counter = self.next_u64();
        fork
    }
}
