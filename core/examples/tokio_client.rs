//! Driving `tidings-core` from tokio with no adapter crate: a `TcpStream`, `tokio::time`
//! for the session's deadline, and the calling contract of [`Session`].
//!
//! ```text
//! tidings serve &                                  # a server on 127.0.0.1:9988
//! cargo run -p tidings-core --example tokio_client -- 127.0.0.1:9988 tokio-bot
//! ```
//!
//! It connects, says hello to everyone, and prints what it receives until the connection
//! ends (Ctrl-C to stop).

use std::time::Instant;

use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::TransferEvent;
use tidings_core::wire::PresenceKind;
use tidings_core::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9988".into());
    let name = args.next().unwrap_or_else(|| "tokio".into());

    let mut stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    // The core never reads a clock: every input carries the driver's `now`.
    let mut session = Session::client(Config::default(), &name, Instant::now())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut buf = vec![0u8; 64 << 10];
    let mut closed = false;

    loop {
        // 1. Transmit everything queued, in order.
        while let Some(bytes) = session.poll_transmit() {
            stream.write_all(&bytes).await?;
        }
        if closed {
            return Ok(());
        }
        // 2. Act on every event; acting may queue output, so go back to 1 afterwards.
        let mut acted = false;
        while let Some(event) = session.poll_event() {
            acted = true;
            match event {
                Event::Connected(welcome) => {
                    let online: Vec<&str> = welcome.online.iter().map(|n| n.as_str()).collect();
                    println!(
                        "connected to {} as {}; online: {}",
                        welcome.server,
                        welcome.name,
                        online.join(", ")
                    );
                    if let Err(e) = session.send_text("", "hello, everyone") {
                        eprintln!("cannot say hello: {e}");
                    }
                }
                Event::Text {
                    peer,
                    private,
                    text,
                } => {
                    let how = if private { " (private)" } else { "" };
                    println!("{peer}{how}: {text}");
                }
                Event::Presence { kind, name } => match kind {
                    PresenceKind::Joined => println!("{name} joined"),
                    PresenceKind::Left => println!("{name} left"),
                },
                Event::PeerError { code, text } => println!("server: {text} ({})", code.name()),
                Event::Transfer(TransferEvent::Offered(offer)) => {
                    println!(
                        "{} offers {} ({} bytes); this example declines files",
                        offer.peer, offer.name, offer.size
                    );
                    let _ = session.reject_offer(
                        offer.id,
                        ErrorCode::Rejected,
                        "this client takes no files",
                    );
                }
                Event::Closed(how) => {
                    println!("disconnected: {:?}", how);
                    closed = true;
                }
                _ => {}
            }
        }
        if acted {
            continue;
        }
        // 3. Sleep until the socket has bytes or the session's deadline comes.
        let now = Instant::now();
        let Some(deadline) = session.poll_timeout() else {
            return Ok(());
        };
        if deadline <= now {
            session.handle_timeout(now);
            continue;
        }
        let reading = session.wants_input();
        tokio::select! {
            read = stream.read(&mut buf), if reading => match read {
                Ok(0) | Err(_) => session.handle_eof(Instant::now()),
                Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                session.handle_timeout(Instant::now());
            }
        }
    }
}
