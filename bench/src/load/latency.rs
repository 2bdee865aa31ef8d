//! Latency load: many clients, each sending private messages to random others at a fixed
//! total rate, open loop; every delivery's latency goes into one histogram.
//!
//! A message carries the time it was written; sends follow a fixed schedule whatever the
//! server does (open loop), so a slow server meets the same offered load as a fast one.
//!
//! One thread of its own writes every client's messages, each at its time (timer slack set
//! to 1 ns): the schedule is one message every `1/rate`, the clients taking turns. With a
//! timer task per client on tokio's 1 ms timer wheel, the ten or so messages of each
//! millisecond left together, and a message's latency was mostly its wait behind the others
//! of its burst, in the load as much as in the server. The reading stays on tokio.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

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
    let conns = proto::connect_all(proto, addr, clients, limit).await?;
    let conns = settle(conns, limit).await?;
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let base = Instant::now() + Duration::from_millis(500);
    let measure_from = base + warmup;
    let end = base + duration;
    let scheduled = Arc::new(AtomicU64::new(0));
    let (pong_tx, pong_rx) = std_mpsc::channel();
    let mut readers = Vec::new();
    let mut writers = Vec::with_capacity(clients);
    for (i, (stream, parser)) in conns.into_iter().enumerate() {
        // The same socket twice: read by a tokio task, written by the pacing thread.
        let std = stream.into_std().map_err(|e| e.to_string())?;
        writers.push(std.try_clone().map_err(|e| e.to_string())?);
        let rd = TcpStream::from_std(std).map_err(|e| e.to_string())?;
        readers.push(tokio::spawn(reader(
            rd,
            parser,
            (i, pong_tx.clone()),
            hist.clone(),
            base,
            measure_from,
        )));
    }
    let (done_tx, done) = oneshot::channel();
    let pacing = Pacing {
        proto,
        first: base,
        period: Duration::from_secs_f64(1.0 / rate as f64),
        end,
        measure_from: (base, measure_from),
        scheduled: scheduled.clone(),
    };
    std::thread::spawn(move || {
        let _ = done_tx.send(pacing.run(writers, pong_rx));
    });
    // The pacing thread hands the sockets back; they are closed with the readers, once
    // the deliveries still in flight had their moment.
    let open = done.await.map_err(|_| "the pacing thread panicked")??;
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
        scheduled: scheduled.load(Ordering::Relaxed),
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
                            proto::pong(parser.proto(), n, &mut out);
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
    mut rd: TcpStream,
    mut parser: Parser,
    (me, pongs): (usize, std_mpsc::Sender<(usize, u64)>),
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
                    let _ = pongs.send((me, n));
                }
                Incoming::Closing(k, code) => {
                    return Err(format!("the server closed with frame {k:#x}, code {code}"))
                }
                Incoming::Other => {}
            }
        }
    }
}

/// The send schedule, kept by one thread for all clients.
struct Pacing {
    proto: Proto,
    first: Instant,
    /// Between two messages (of any clients).
    period: Duration,
    end: Instant,
    measure_from: (Instant, Instant),
    scheduled: Arc<AtomicU64>,
}

impl Pacing {
    /// Sends message `k` at `first + k × period` from client `k mod clients` to a random
    /// other, until `end`; answers the server's pings in between. Returns the sockets.
    fn run(
        self,
        mut writers: Vec<std::net::TcpStream>,
        pongs: std_mpsc::Receiver<(usize, u64)>,
    ) -> Result<Vec<std::net::TcpStream>, String> {
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches this thread only.
        unsafe {
            // Sleeps end within microseconds of their time rather than the default 50 µs.
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        let clients = writers.len();
        let (base, measure_from) = self.measure_from;
        let mut rngs: Vec<u64> = (0..clients)
            .map(|me| 0x9E37_79B9_7F4A_7C15u64 ^ (me as u64).wrapping_mul(0xA24B_AED4_963E_E407))
            .collect();
        let mut out = Vec::with_capacity(256);
        let mut k: u32 = 0;
        loop {
            let next = self.first + self.period * k;
            if next >= self.end {
                return Ok(writers);
            }
            while let Ok((to, nonce)) = pongs.try_recv() {
                proto::pong(self.proto, nonce, &mut out);
                write_all(&mut writers[to], &out)?;
                out.clear();
            }
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            let me = k as usize % clients;
            let rng = &mut rngs[me];
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let mut to = (*rng % (clients as u64 - 1)) as usize;
            if to >= me {
                to += 1;
            }
            // Stamped when written, not when scheduled: a sleep ends a little late, which
            // would otherwise show as server latency.
            let stamp = (Instant::now() - base).as_nanos() as u64;
            if next >= measure_from {
                self.scheduled.fetch_add(1, Ordering::Relaxed);
            }
            proto::private(self.proto, to, &proto::payload(stamp), &mut out);
            write_all(&mut writers[me], &out)?;
            out.clear();
            k += 1;
        }
    }
}

/// Writes all of `bytes` to a socket that tokio keeps non-blocking (the flag is shared with
/// the reading half), waiting for room when it is full.
fn write_all(socket: &mut std::net::TcpStream, mut bytes: &[u8]) -> Result<(), String> {
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(0) => return Err("the server closed a connection".into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
