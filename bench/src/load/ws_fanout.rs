//! WebSocket fan-out load: plain chat clients (no subprotocol: tidings' legacy carriage)
//! that each broadcast text messages and count what the others broadcast, with the same
//! window rule as the native fan-out. The client is tokio-tungstenite for both servers.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use super::fanout::{start_and_collect, Outcome};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Runs `clients` WebSocket clients that each broadcast `messages` 64-byte lines.
pub async fn run(
    addr: &str,
    clients: usize,
    messages: usize,
    window: usize,
    limit: Duration,
) -> Result<Outcome, String> {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("client {i}: connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let url = format!("ws://{addr}/ws?name=c{i}");
        let (ws, _) = tokio::time::timeout(limit, tokio_tungstenite::client_async(url, stream))
            .await
            .map_err(|_| format!("client {i}: handshake timed out"))?
            .map_err(|e| format!("client {i}: handshake: {e}"))?;
        conns.push(ws);
    }
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let per_round = (clients - 1) as u64;
    let mut tasks = Vec::with_capacity(clients);
    for (i, ws) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(
            ws,
            i,
            go_rx.clone(),
            per_round,
            messages,
            window,
            limit,
        )));
    }
    start_and_collect(go_tx, tasks).await
}

/// Whether a received text is a chat line from another client (not a server notice such
/// as tidings' "cN joined" lines from the server participant).
fn is_chat(text: &str) -> bool {
    !text.starts_with("{\"src\":\"server\"")
}

async fn client(
    mut ws: Ws,
    me: usize,
    mut go: watch::Receiver<Option<Instant>>,
    per_round: u64,
    messages: usize,
    window: usize,
    limit: Duration,
) -> Result<(u64, Instant), String> {
    // Every line differs (client and sequence number in its first 16 bytes), so a server
    // cannot reuse one rendering for different messages.
    let line = |seq: usize| {
        let stamp = (me as u64) << 32 | seq as u64;
        String::from_utf8(crate::load::proto::payload(stamp).to_vec()).expect("ASCII")
    };
    let expected = per_round * messages as u64;
    let mut received = 0u64;
    let mut sent = 0usize;
    let start = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        tokio::select! {
            r = go.changed() => r.map_err(|_| "the start signal vanished")?,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if is_chat(&t) => received += 1,
                Some(Ok(_)) => {}
                _ => return Err("the server closed before the start".into()),
            },
        }
    };
    let deadline = tokio::time::Instant::from_std(start + limit);
    loop {
        let allowed = messages.min(window + (received / per_round) as usize);
        if sent < allowed {
            while sent < allowed {
                ws.feed(Message::Text(line(sent).into()))
                    .await
                    .map_err(|e| e.to_string())?;
                sent += 1;
            }
            ws.flush().await.map_err(|e| e.to_string())?;
        }
        if sent == messages && received >= expected {
            return Ok((received, Instant::now()));
        }
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("fan-out did not finish ({received} of {expected} received)"))?;
        match m {
            Some(Ok(Message::Text(t))) => {
                if is_chat(&t) {
                    received += 1;
                }
            }
            Some(Ok(Message::Close(f))) => return Err(format!("the server closed: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("the server closed ({received} of {expected})")),
        }
    }
}
