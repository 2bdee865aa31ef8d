//! Latency load: many clients, each sending private messages to random others at a fixed
//! total rate, open loop; every delivery's latency goes into one histogram.
//!
//! A message carries the time it was written; sends follow a fixed schedule whatever the
//! server does (open loop), so a slow server meets the same offered load as a fast one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::proto::{self, Incoming, Parser, Proto};

/// Percentiles of one run, in microseconds.
pub struct Outcome {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Messages measured (sent after the warm-up and delivered).
    pub measured: u64,
    /// Messages scheduled after the warm-up.
    pub scheduled: u64,
}

/// Connects `clients` clients and has them send `rate` messages per second in total for
/// `duration`; the first `warmup` is not measured.
pub async fn run(
    proto: Proto,
    addr: &str,
    clients: usize,
    rate: u64,
    duration: Duration,
    warmup: Duration,
    limit: Duration,
) -> Result<Outcome, String> {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        conns.push(proto::connect(proto, addr, i, Duration::from_secs(60), limit).await?);
    }
    let conns = settle(conns, limit).await?;
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let base = Instant::now() + Duration::from_millis(500);
    let measure_from = base + warmup;
    let end = base + duration;
    let period = Duration::from_secs_f64(clients as f64 / rate as f64);
    let scheduled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, (stream, parser)) in conns.into_iter().enumerate() {
        let (rd, wr) = stream.into_split();
        let (pong_tx, pong_rx) = mpsc::unbounded_channel();
        readers.push(tokio::spawn(reader(
            rd,
            parser,
            pong_tx,
            hist.clone(),
            base,
            measure_from,
        )));
        let offset = period.mul_f64(i as f64 / clients as f64);
        writers.push(tokio::spawn(writer(
            wr,
            proto,
            i,
            clients,
            base + offset,
            period,
            end,
            (base, measure_from),
            pong_rx,
            scheduled.clone(),
        )));
    }
    // The write halves are kept until the readers are done: dropping one would close the
    // connection while deliveries to it are still in flight.
    let mut open = Vec::with_capacity(clients);
    for w in writers {
        open.push(w.await.map_err(|e| e.to_string())??);
    }
    // Deliveries still in flight get a moment to arrive, then the readers stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in &readers {
        r.abort();
    }
    for r in readers {
        if let Ok(Err(e)) = r.await {
            return Err(e);
        }
    }
    drop(open);
    let h = hist.lock().map_err(|_| "poisoned")?;
    Ok(Outcome {
        p50_us: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: h.value_at_quantile(0.99) as f64 / 1000.0,
        max_us: h.max() as f64 / 1000.0,
        measured: h.len(),
        scheduled: scheduled.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// How long the server must have sent a client nothing before the join storm counts as over.
const QUIET: Duration = Duration::from_millis(300);

/// Lets the joins' aftermath end before the clock starts: every client reads (and drops)
/// what the server sends it, answering pings, until the server has sent it nothing for
/// [`QUIET`]. tidings tells everyone online of every join, so 1000 joins are some 500 000
/// presence lines, seconds of server work that would otherwise fall into the measurement;
/// mosquitto sends nothing and settles at once.
async fn settle(
    conns: Vec<(TcpStream, Parser)>,
    limit: Duration,
) -> Result<Vec<(TcpStream, Parser)>, String> {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(mut stream, mut parser)| {
            tokio::spawn(async move {
                let end = Instant::now() + limit;
                let mut out = Vec::new();
                loop {
                    let read = tokio::time::timeout(QUIET, stream.read_buf(parser.buffer()));
                    match read.await {
                        Err(_) => return Ok((stream, parser)),
                        Ok(Ok(0)) => return Err("the server closed a connection".to_string()),
                        Ok(Err(e)) => return Err(e.to_string()),
                        Ok(Ok(_)) => {}
                    }
                    while let Some(unit) = parser.next()? {
                        if let Incoming::Ping(n) = unit {
                            proto::pong(n, &mut out);
                        }
                    }
                    if !out.is_empty() {
                        stream.write_all(&out).await.map_err(|e| e.to_string())?;
                        out.clear();
                    }
                    if Instant::now() > end {
                        return Err(format!(
                            "the server kept sending for {limit:?} after the joins"
                        ));
                    }
                }
            })
        })
        .collect();
    let mut settled = Vec::with_capacity(tasks.len());
    for t in tasks {
        settled.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(settled)
}

async fn reader(
    mut rd: OwnedReadHalf,
    mut parser: Parser,
    pongs: mpsc::UnboundedSender<u64>,
    hist: Arc<Mutex<Histogram<u64>>>,
    base: Instant,
    measure_from: Instant,
) -> Result<(), String> {
    let from = (measure_from - base).as_nanos() as u64;
    loop {
        let n = rd
            .read_buf(parser.buffer())
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed a connection".into());
        }
        let now = (Instant::now() - base).as_nanos() as u64;
        while let Some(unit) = parser.next()? {
            match unit {
                Incoming::Delivery(p) => {
                    let Some(stamp) = proto::stamp_of(&p) else {
                        continue;
                    };
                    if stamp >= from {
                        let mut h = hist.lock().map_err(|_| "poisoned")?;
                        h.saturating_record(now.saturating_sub(stamp).max(1));
                    }
                }
                Incoming::Ping(n) => {
                    let _ = pongs.send(n);
                }
                Incoming::Closing(k, code) => {
                    return Err(format!("the server closed with frame {k:#x}, code {code}"))
                }
                Incoming::Other => {}
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    mut wr: OwnedWriteHalf,
    proto: Proto,
    me: usize,
    clients: usize,
    first: Instant,
    period: Duration,
    end: Instant,
    (base, measure_from): (Instant, Instant),
    mut pongs: mpsc::UnboundedReceiver<u64>,
    scheduled: Arc<std::sync::atomic::AtomicU64>,
) -> Result<OwnedWriteHalf, String> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (me as u64).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut next = first;
    let mut out = Vec::with_capacity(256);
    while next < end {
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let mut to = (rng % (clients as u64 - 1)) as usize;
                if to >= me {
                    to += 1;
                }
                // Stamped when written, not when scheduled: the timer wheel wakes a task
                // up to 1 ms late, which would otherwise show as server latency.
                let stamp = (Instant::now() - base).as_nanos() as u64;
                if next >= measure_from {
                    scheduled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                proto::private(proto, to, &proto::payload(stamp), &mut out);
                next += period;
            }
            Some(n) = pongs.recv() => proto::pong(n, &mut out),
        }
        wr.write_all(&out).await.map_err(|e| e.to_string())?;
        out.clear();
    }
    Ok(wr)
}
