//! Chat fan-out load: every client broadcasts, every client receives everything.
//!
//! Each client may run at most `window` rounds ahead of what it has received, so the number
//! of messages in flight is bounded the same way for both servers and neither is pushed into
//! dropping or disconnecting slow readers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::proto::{self, Incoming, Parser, Proto};

/// What one fan-out run measured.
pub struct Outcome {
    /// Messages received by all clients together.
    pub delivered: u64,
    /// From the start signal to the last client having everything.
    pub elapsed: Duration,
}

impl Outcome {
    /// The load generator's `result` line for it.
    pub fn print(&self) {
        println!(
            "result delivered={} elapsed_ns={}",
            self.delivered,
            self.elapsed.as_nanos()
        );
    }
}

/// Where the measured clients talk, and who else keeps the server busy meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Rooms {
    /// The measured clients' room (a topic or subject for the brokers); `None`: plain
    /// broadcasts to everyone.
    pub room: Option<String>,
    /// Other rooms, each with its own clients broadcasting in it at full speed (each at
    /// most `window` rounds ahead, like the measured ones) until the measured clients are
    /// done: (rooms, clients in each).
    pub busy: (usize, usize),
}

/// Runs `clients` clients that each broadcast `messages` messages (in `rooms.room`, while
/// the busy rooms chat).
pub async fn run(
    proto: Proto,
    addr: &str,
    (clients, messages, window): (usize, usize, usize),
    rooms: Rooms,
    limit: Duration,
) -> Result<Outcome, String> {
    let room = rooms.room.as_deref();
    let conns = proto::connect_range(proto, addr, 0..clients, room, limit).await?;
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let per_round = proto.receivers_of_broadcast(clients);
    let mut tasks = Vec::with_capacity(clients);
    for (stream, parser) in conns {
        let go = go_rx.clone();
        let room = rooms.room.clone();
        tasks.push(tokio::spawn(client(
            stream,
            parser,
            go,
            room,
            per_round,
            (messages, window),
            limit,
        )));
    }
    let (busy_rooms, busy_clients) = rooms.busy;
    let mut busy = Vec::new();
    for r in 0..busy_rooms {
        let room = format!("busy-{r}");
        let first = clients + r * busy_clients;
        let ids = first..first + busy_clients;
        let conns = proto::connect_range(proto, addr, ids, Some(&room), limit).await?;
        let per_round = proto.receivers_of_broadcast(busy_clients);
        for (stream, parser) in conns {
            let (go, room) = (go_rx.clone(), Some(room.clone()));
            // More than they can send before the measured clients are done: they are
            // stopped then.
            let shape = (usize::MAX / 2, window);
            busy.push(tokio::spawn(client(
                stream, parser, go, room, per_round, shape, limit,
            )));
        }
    }
    // Presence and acks from the joins are read (and ignored) by the tasks meanwhile.
    let outcome = start_and_collect(go_tx, tasks).await;
    for task in busy {
        task.abort();
    }
    outcome
}

/// Lets the joins settle, gives every client the start signal, and adds up what the client
/// tasks delivered and when the last one had everything (shared with the WebSocket load).
pub(super) async fn start_and_collect(
    go_tx: watch::Sender<Option<Instant>>,
    tasks: Vec<tokio::task::JoinHandle<Result<(u64, Instant), String>>>,
) -> Result<Outcome, String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    go_tx
        .send(Some(start))
        .map_err(|_| "no client is waiting")?;
    let mut delivered = 0u64;
    let mut last = start;
    for t in tasks {
        let (n, done) = t.await.map_err(|e| e.to_string())??;
        delivered += n;
        last = last.max(done);
    }
    Ok(Outcome {
        delivered,
        elapsed: last - start,
    })
}

async fn client(
    mut stream: TcpStream,
    mut parser: Parser,
    mut go: watch::Receiver<Option<Instant>>,
    room: Option<String>,
    per_round: usize,
    (messages, window): (usize, usize),
    limit: Duration,
) -> Result<(u64, Instant), String> {
    parser.drop_payloads();
    let mut one = Vec::new();
    proto::broadcast(
        parser.proto(),
        room.as_deref(),
        &proto::payload(0),
        &mut one,
    );
    let expected = (per_round * messages) as u64;
    let mut received = 0u64;
    let mut sent = 0usize;
    let mut out = Vec::with_capacity(one.len() * window);
    // Before the start: drain presence, answer pings.
    let start = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        tokio::select! {
            r = go.changed() => r.map_err(|_| "the start signal vanished")?,
            r = stream.read_buf(parser.buffer()) => {
                if r.map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed before the start".into());
                }
                // Clients that saw the start first may already be sending.
                while let Some(unit) = parser.next()? {
                    match unit {
                        Incoming::Delivery(_) => received += 1,
                        Incoming::Ping(n) => proto::pong(parser.proto(), n, &mut out),
                        _ => {}
                    }
                }
                if !out.is_empty() {
                    stream.write_all(&out).await.map_err(|e| e.to_string())?;
                    out.clear();
                }
            }
        }
    };
    let deadline = tokio::time::Instant::from_std(start + limit);
    loop {
        let allowed = messages.min(window + (received / per_round as u64) as usize);
        while sent < allowed {
            out.extend_from_slice(&one);
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        if sent == messages && received >= expected {
            return Ok((received, Instant::now()));
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(parser.buffer()))
            .await
            .map_err(|_| {
                format!(
                    "fan-out did not finish within {limit:?} ({received} of {expected} received)"
                )
            })?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "the server closed the connection ({received} of {expected} received)"
            ));
        }
        while let Some(unit) = parser.next()? {
            match unit {
                Incoming::Delivery(_) => received += 1,
                Incoming::Ping(n) => proto::pong(parser.proto(), n, &mut out),
                Incoming::Closing(k, code) => {
                    return Err(format!("the server closed with frame {k:#x}, code {code}"))
                }
                Incoming::Other => {}
            }
        }
    }
}
