//! WebSocket echo server on the sans-IO core, for Autobahn's `fuzzingclient`.
//!
//! ```text
//! cargo run --release -p tidings-smol --example ws_echo_server -- 9001
//! ```
//!
//! Listens on 127.0.0.1:PORT, completes the opening handshake (offering `tidings.v1`), then
//! sends every text and binary message back. All protocol work happens in
//! `tidings_core::ws`; this file only moves bytes between the socket and the connection.

use async_net::{Shutdown, TcpListener, TcpStream};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use std::io;
use std::time::{Duration, Instant};
use tidings_core::ws::{
    RequestReader, WsConfig, WsConnection, WsEvent, DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};

/// How long to wait for the client to close after our last frame, before dropping the socket.
const LINGER: Duration = Duration::from_secs(2);

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: ws_echo_server PORT");
            std::process::exit(2);
        }
    };
    smol::block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("ws_echo_server: listening on 127.0.0.1:{port}");
        loop {
            let (stream, _) = listener.accept().await?;
            smol::spawn(async move {
                if let Err(err) = serve(stream).await {
                    eprintln!("ws_echo_server: connection error: {err}");
                }
            })
            .detach();
        }
    })
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];

    // Opening handshake.
    let mut reader = RequestReader::new(DEFAULT_MAX_HEADER_BYTES);
    let head = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match reader.feed(&buf[..n]) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(err) => return refuse(stream, &err.response()).await,
        }
    };
    let accepted = match head.accept_websocket(&[TIDINGS_SUBPROTOCOL]) {
        Ok(accepted) => accepted,
        Err(err) => return refuse(stream, &err.response()).await,
    };
    stream.write_all(&accepted.response).await?;

    // Messages.
    let mut ws = WsConnection::server(WsConfig::default());
    ws.handle_input(Instant::now(), &reader.take_remaining());
    loop {
        while let Some(event) = ws.poll_event() {
            // Sends fail only once we are closing, when there is nothing left to echo.
            let _ = match event {
                WsEvent::Text(text) => ws.send_text_bytes(text),
                WsEvent::Binary(data) => ws.send_binary_bytes(data),
                _ => Ok(()),
            };
        }
        while let Some(bytes) = ws.poll_transmit() {
            stream.write_all(&bytes).await?;
        }
        if ws.should_close_socket() {
            return linger_close(stream, &mut buf).await;
        }
        let read = async { Some(stream.read(&mut buf).await) };
        // While closing, the connection's close timer bounds the wait for the client's reply.
        let deadline = ws.poll_timeout();
        let timer = async {
            match deadline {
                Some(deadline) => async_io::Timer::at(deadline).await,
                None => future::pending().await,
            };
            None
        };
        let Some(n) = future::or(read, timer).await else {
            ws.handle_timeout(Instant::now());
            continue;
        };
        let n = n?;
        if n == 0 {
            ws.handle_eof(Instant::now());
        } else {
            ws.handle_input(Instant::now(), &buf[..n]);
        }
    }
}

/// Sends an HTTP error response and closes.
async fn refuse(mut stream: TcpStream, response: &[u8]) -> io::Result<()> {
    stream.write_all(response).await?;
    let mut buf = [0u8; 1024];
    linger_close(stream, &mut buf).await
}

/// Closes our side and waits briefly for the peer's EOF, discarding input, so that unread
/// bytes do not turn the close into a reset that could destroy our last frame in flight.
async fn linger_close(mut stream: TcpStream, buf: &mut [u8]) -> io::Result<()> {
    stream.flush().await?;
    let _ = stream.shutdown(Shutdown::Write);
    let drain = async { while stream.read(buf).await.unwrap_or(0) > 0 {} };
    future::or(drain, async {
        async_io::Timer::after(LINGER).await;
    })
    .await;
    Ok(())
}
