//! Idle connections: many clients that connect, complete the handshake and then only keep
//! the connection alive with heartbeats (tidings `ping`/`pong`, MQTT PINGREQ).

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::proto::{self, Incoming, Parser, Proto};

/// Connects `clients` clients (at most `parallel` handshakes at once), prints
/// `ready connected=N` once all are in, keeps them for `hold`, then prints `done alive=N`.
/// With `tls`, every client connects over TLS.
pub async fn run(
    proto: Proto,
    addr: &str,
    clients: usize,
    (heartbeat, hold): (Duration, Duration),
    tls: Option<tokio_rustls::TlsConnector>,
    limit: Duration,
) -> Result<(), String> {
    let alive = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let alive = alive.clone();
        let gate = gate.clone();
        let addr = addr.to_string();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let r = match tls {
                None => {
                    let (stream, parser) =
                        proto::connect(proto, &addr, i, heartbeat, limit).await?;
                    drop(permit);
                    alive.fetch_add(1, Ordering::Relaxed);
                    keep(stream, parser, heartbeat, i as u64).await
                }
                Some(tls) => {
                    let (stream, parser) =
                        proto::connect_tls(proto, &tls, &addr, i, heartbeat, limit).await?;
                    drop(permit);
                    alive.fetch_add(1, Ordering::Relaxed);
                    keep(stream, parser, heartbeat, i as u64).await
                }
            };
            alive.fetch_sub(1, Ordering::Relaxed);
            r
        }));
    }
    let end = tokio::time::Instant::now() + limit;
    while alive.load(Ordering::Relaxed) < clients {
        if tokio::time::Instant::now() > end {
            return Err(format!(
                "only {} of {clients} clients connected within {limit:?}",
                alive.load(Ordering::Relaxed)
            ));
        }
        if tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = alive.load(Ordering::Relaxed);
    if connected < clients {
        for t in tasks {
            if t.is_finished() {
                if let Ok(Err(e)) = t.await {
                    return Err(e);
                }
            }
        }
        return Err(format!(
            "a client ended early ({connected} of {clients} connected)"
        ));
    }
    println!("ready connected={connected}");
    let _ = std::io::stdout().flush();
    tokio::time::sleep(hold).await;
    println!("done alive={}", alive.load(Ordering::Relaxed));
    let _ = std::io::stdout().flush();
    for t in &tasks {
        t.abort();
    }
    Ok(())
}

/// Answers pings and sends a heartbeat every `heartbeat` until the connection ends.
async fn keep<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut parser: Parser,
    heartbeat: Duration,
    seed: u64,
) -> Result<(), String> {
    parser.drop_payloads();
    parser.release_if_empty();
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    let mut out = Vec::new();
    let mut nonce = seed << 32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                nonce += 1;
                proto::heartbeat(parser.proto(), nonce, &mut out);
            }
            r = stream.read_buf(parser.buffer()) => {
                if r.map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed an idle connection".into());
                }
                loop {
                    parser.skip_news();
                    match parser.next()? {
                        None => break,
                        Some(Incoming::Ping(n)) => proto::pong(parser.proto(), n, &mut out),
                        Some(Incoming::Closing(k, code)) => {
                            return Err(format!("the server closed with frame {k:#x}, code {code}"))
                        }
                        Some(_) => {}
                    }
                }
                parser.release_if_empty();
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
    }
}
