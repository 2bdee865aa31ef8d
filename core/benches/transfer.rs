//! Throughput of one large file transfer through a pair of in-memory sessions (no disk, no
//! sockets), beside plain SHA-256 of the same bytes measured in the same run.
//!
//! ```text
//! cargo bench -p tidings-core --bench transfer            # 1 GiB, best of 3
//! TIDINGS_BENCH_MIB=256 TIDINGS_BENCH_RUNS=5 cargo bench -p tidings-core --bench transfer
//! ```
//!
//! Both ends hash every byte once (the sender for `done`, the receiver to verify), so one
//! thread running both sessions does twice the SHA-256 work of the plain hash and can reach
//! at best half its speed. A real deployment has sender and receiver in different processes,
//! so the figure that matters is the **two-thread** one: the sender session on one thread,
//! the receiver session on another, joined by bounded channels that carry the transmitted
//! `Bytes` (as a socket would carry the bytes). The single-thread figure is printed too.
//!
//! The "file" is a 4 MiB buffer repeated, handed to the sender zero-copy; the receiver's
//! "disk" drops the bytes and acknowledges them at once.
//!
//! Two figures per line: **wall** (bytes / elapsed time) and **CPU** (bytes / CPU time of the
//! busiest thread, from `/proc/thread-self/schedstat` on Linux). On a machine shared with
//! other work the two threads may not get two cores; the CPU figure is then the throughput
//! the pipeline reaches with a core per side, and is the one to compare with plain SHA-256.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::TransferEvent;
use tidings_core::wire::Utf8;

/// The period of the synthetic file.
const PERIOD: usize = 4 << 20;

/// The file: byte `i` is `buf[i % PERIOD]`; the buffer carries one chunk more than the period,
/// so any read of up to 1 MiB starting inside the period is one zero-copy slice.
struct File {
    buf: Bytes,
    size: u64,
}

impl File {
    fn new(size: u64) -> File {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut v: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        v.extend_from_within(..1 << 20);
        File {
            buf: Bytes::from(v),
            size,
        }
    }

    fn read(&self, offset: u64, len: usize) -> Bytes {
        let at = (offset % PERIOD as u64) as usize;
        self.buf.slice(at..at + len)
    }
}

fn connected(now: Instant) -> (Session, Session) {
    let mut client = Session::client(Config::default(), "sender", now).unwrap();
    let mut server = Session::server(Config::default(), now);
    pump(&mut client, &mut server, now);
    let Some(Event::Hello(h)) = server.poll_event() else {
        panic!("no hello")
    };
    server
        .accept_hello(h.name, Utf8::from("receiver"), vec![])
        .unwrap();
    pump(&mut client, &mut server, now);
    assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
    (client, server)
}

fn pump(a: &mut Session, b: &mut Session, now: Instant) -> bool {
    let mut any = false;
    loop {
        let mut moved = false;
        while let Some(x) = a.poll_transmit() {
            b.handle_input(now, &x);
            moved = true;
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_input(now, &x);
            moved = true;
        }
        if !moved {
            return any;
        }
        any = true;
    }
}

/// The sender's application: answers reads from the file. Returns whether the transfer
/// ended, with its outcome checked.
fn sender_events(s: &mut Session, file: &File) -> bool {
    let mut ended = false;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Transfer(TransferEvent::Read { id, offset, len }) => {
                s.provide_data(id, offset, file.read(offset, len)).unwrap();
            }
            Event::Transfer(TransferEvent::Finished { result, .. }) => {
                result.expect("the transfer failed");
                ended = true;
            }
            _ => {}
        }
    }
    ended
}

/// The receiver's application: accepts the offer, "writes" by acknowledging.
fn receiver_events(s: &mut Session) -> bool {
    let mut ended = false;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Transfer(TransferEvent::Offered(o)) => s.accept_offer(o.id, 0).unwrap(),
            Event::Transfer(TransferEvent::Data { id, data, .. }) => {
                s.data_written(id, data.len() as u64).unwrap();
            }
            Event::Transfer(TransferEvent::Finished { result, .. }) => {
                result.expect("the transfer failed");
                ended = true;
            }
            _ => {}
        }
    }
    ended
}

/// A measurement: elapsed time and the CPU time of the busiest thread involved.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

/// CPU time this thread has used so far (Linux only).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` on this thread and measures it.
fn measure(f: impl FnOnce()) -> Took {
    let (start, cpu0) = (Instant::now(), thread_cpu());
    f();
    Took {
        wall: start.elapsed(),
        cpu: cpu0.and_then(|c0| Some(thread_cpu()? - c0)),
    }
}

fn single_thread(file: &File) -> Took {
    measure(|| single_thread_run(file))
}

fn single_thread_run(file: &File) {
    let start = Instant::now();
    let (mut tx, mut rx) = connected(start);
    tx.offer_file("", "bench.bin", file.size, "").unwrap();
    let (mut sent, mut received) = (false, false);
    while !(sent && received) {
        let now = Instant::now();
        pump(&mut tx, &mut rx, now);
        received |= receiver_events(&mut rx);
        pump(&mut tx, &mut rx, now);
        sent |= sender_events(&mut tx, file);
    }
}

/// One session on this thread, its peer on the other end of the channels. `app` handles the
/// events and says when the transfer ended.
fn run_side(
    s: Session,
    out: SyncSender<Bytes>,
    input: Receiver<Bytes>,
    app: impl FnMut(&mut Session) -> bool,
) -> Option<Duration> {
    measure(|| run_side_loop(s, out, input, app)).cpu
}

fn run_side_loop(
    mut s: Session,
    out: SyncSender<Bytes>,
    input: Receiver<Bytes>,
    mut app: impl FnMut(&mut Session) -> bool,
) {
    let mut ended = false;
    let mut peer_gone = false;
    loop {
        let now = Instant::now();
        // Take what arrived, without waiting.
        loop {
            match input.try_recv() {
                Ok(b) => s.handle_input(now, &b),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    peer_gone = true;
                    break;
                }
            }
        }
        ended |= app(&mut s);
        let mut sent = false;
        while let Some(b) = s.poll_transmit() {
            sent = true;
            if out.send(b).is_err() {
                break;
            }
        }
        if ended && s.queued_output() == 0 || peer_gone {
            return;
        }
        if !sent && s.poll_timeout().map_or(true, |t| t > now) {
            // Nothing to do until the peer says something.
            match input.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => s.handle_input(Instant::now(), &b),
                Err(RecvTimeoutError::Timeout) => s.handle_timeout(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

fn two_threads(file: &File) -> Took {
    let start = Instant::now();
    let (mut tx, rx) = connected(start);
    let (to_rx, from_tx) = mpsc::sync_channel::<Bytes>(256);
    let (to_tx, from_rx) = mpsc::sync_channel::<Bytes>(256);
    tx.offer_file("", "bench.bin", file.size, "").unwrap();
    let (cpu_tx, cpu_rx) = thread::scope(|scope| {
        let receiver = scope.spawn(|| run_side(rx, to_tx, from_tx, receiver_events));
        let cpu_tx = run_side(tx, to_rx, from_rx, |s| sender_events(s, file));
        (cpu_tx, receiver.join().unwrap())
    });
    Took {
        wall: start.elapsed(),
        cpu: cpu_tx.zip(cpu_rx).map(|(a, b)| a.max(b)),
    }
}

fn plain_sha256(file: &File) -> Took {
    measure(|| plain_sha256_run(file))
}

fn plain_sha256_run(file: &File) {
    let mut h = Sha256::new();
    let mut off = 0;
    while off < file.size {
        let n = (file.size - off).min(64 << 10) as usize;
        h.update(file.read(off, n));
        off += n as u64;
    }
    std::hint::black_box(h.finalize());
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run a tiny size
    // once, as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib = if benching {
        env("TIDINGS_BENCH_MIB", 1024)
    } else {
        8
    };
    let runs = if benching {
        env("TIDINGS_BENCH_RUNS", 3)
    } else {
        1
    };
    let file = File::new(mib << 20);
    let gbps = |d: Duration| file.size as f64 / d.as_secs_f64() / 1e9;
    // Best of `runs`, by wall time and by CPU time separately.
    let best = |f: &dyn Fn() -> Took| {
        let all: Vec<Took> = (0..runs).map(|_| f()).collect();
        Took {
            wall: all.iter().map(|t| t.wall).min().unwrap(),
            cpu: all.iter().map(|t| t.cpu).min().unwrap(),
        }
    };
    let sha = best(&|| plain_sha256(&file));
    let two = best(&|| two_threads(&file));
    let one = best(&|| single_thread(&file));
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" sha_ni"));
    println!("transfer of {mib} MiB, best of {runs} (SHA-NI on this CPU: {sha_ni})");
    println!("                          wall GB/s        CPU GB/s (busiest thread)");
    let line = |what: &str, t: Took, note: &str| {
        let pct = |a: Duration, b: Duration| 100.0 * a.as_secs_f64() / b.as_secs_f64();
        let cpu = match (t.cpu, sha.cpu) {
            (Some(c), Some(s)) => format!("{:6.3} ({:3.0}%)", gbps(c), pct(s, c)),
            _ => "   n/a".to_string(),
        };
        println!(
            "  {what:<22} {:6.3} ({:3.0}%)   {cpu}  {note}",
            gbps(t.wall),
            pct(sha.wall, t.wall)
        );
    };
    line("plain SHA-256", sha, "");
    line(
        "pair, two threads",
        two,
        "sender and receiver on their own threads",
    );
    line(
        "pair, one thread",
        one,
        "both ends on one thread: hashes twice",
    );
    println!("  (percentages: of plain SHA-256 in the same run)");
    if let (Some(one), Some(sha)) = (one.cpu, sha.cpu) {
        // One thread does all the work of both ends: what it spends beyond hashing every byte
        // twice is the cost of the sessions themselves (framing, copies, events, credit).
        let extra = one.as_secs_f64() / (2.0 * sha.as_secs_f64()) - 1.0;
        println!(
            "  core overhead beyond the two hashes (one thread, CPU): {:.1}%",
            100.0 * extra
        );
    }
}
