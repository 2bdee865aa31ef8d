//! The relay rows: a file relayed through a server on loopback, sender → server → receiver.
//!
//! tidings: `tidings recv` (connected first) and `tidings send`, both verifying the SHA-256
//! digest as part of the protocol. The row `relay` sets it against this machine's ceiling for
//! a verified relay (`relay-ceiling`: the per-byte costs of the two hashes and of the copies
//! no relay can avoid, measured here, spread over the two cores). socat, a one-shot relay
//! `socat -U TCP-LISTEN:B TCP-LISTEN:A` with a receiver `socat -u TCP:… CREATE:out`
//! (connected first) and a sender `socat -u FILE:in TCP:…`, is the peer of `relay-cpu`: the
//! relay process's own CPU per GiB, tidings' server against socat's. Each transfer is timed
//! from starting the sender until sender and receiver have both exited; the received bytes
//! are checked against the input afterwards (outside the timing). No process is pinned: the
//! relay, sender and receiver share the two cores as the scheduler sees fit (pinning the
//! sender and receiver to one core put both SHA-256s on it).
//!
//! Context rows: `relay-same-job`, socat plus the integrity check tidings gives (SHA-256 of
//! the source at the sender and of the received bytes at the receiver, concurrently with the
//! transfer); `relay-tls`, the same relay over TLS; `relay-sha256`, SHA-256 speed here (sha2
//! against ring); iperf3, raw loopback throughput.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::servers::{self, Ctx};
use crate::procs::{self, Guard, LOAD_CPU, SERVER_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row, Verdict};

/// socat's buffer: its default (8 KiB) makes it needlessly slow; the peer gets its best.
const SOCAT_BUFFER: &str = "262144";

/// `program` with no core pinning and no output, like [`procs::pinned`] otherwise.
fn unpinned(program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new(program.as_ref());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The relay rows: the verified relay against this machine's ceiling for it, the server's CPU
/// against socat's, and the context rows.
pub fn rows(ctx: &Ctx) -> Vec<Row> {
    let size: u64 = if ctx.quick { 256 << 20 } else { 1 << 30 };
    let reps = if ctx.quick { 3 } else { 5 };
    let what = format!(
        "verified file relay, {} sender → server → receiver, against this machine's ceiling \
         for a verified relay (GB/s = 10⁹ B/s)",
        if ctx.quick { "256 MiB" } else { "1 GiB" }
    );
    let target = "≥ 0.7×";
    let mut rows = Vec::new();
    let sha = sha256_rates(ctx);
    let input = ctx.tmp.join("relay-input.bin");
    let measured = make_file(&input, size)
        .and_then(|()| servers::sha256_file(&input))
        .and_then(|digest| {
            let (mut server_cpu, mut socat_cpu) = (Vec::new(), Vec::new());
            let (t, s) = alternate(
                reps,
                |rep| {
                    let (secs, cpu) = tidings_once(ctx, &input, &digest, rep, false)?;
                    server_cpu.push(cpu);
                    Ok(secs)
                },
                |rep| {
                    let (secs, cpu) = socat_once(ctx, &input, &digest, rep)?;
                    socat_cpu.push(cpu);
                    Ok(secs)
                },
            )?;
            Ok((digest, t, s, server_cpu, socat_cpu))
        });
    // The ceiling is measured on its own: a failure there leaves the relay's figures standing.
    let ceiling = if input.exists() {
        Ceiling::measure(ctx, &input, sha.fastest())
    } else {
        Err("no input file".into())
    };
    match measured {
        Ok((digest, t, s, server_cpu, socat_cpu)) => {
            let (tg, sg) = (gbs(size, &t), gbs(size, &s));
            let tm = median(&tg);
            rows.push(match &ceiling {
                Ok(ceiling) => {
                    let ratio = tm / ceiling.gbs;
                    Row {
                        id: "relay",
                        what: what.clone(),
                        tidings: format!("{tm:.2} GB/s"),
                        peer: format!("ceiling {:.2} GB/s", ceiling.gbs),
                        ratio: Some(ratio),
                        target: target.into(),
                        verdict: at_least(ratio, 0.7),
                        notes: format!(
                            "{reps} repetitions, alternated with socat's (relay-cpu); no process \
                             pinned (server, sender and receiver share the cores). `tidings send` \
                             → `tidings serve` → `tidings recv`, SHA-256 at both ends (the \
                             protocol verifies every file), the receiver syncs the file before it \
                             confirms it; timed from starting the sender until both clients \
                             exited (process start and handshakes included); received bytes \
                             checked (SHA-256) after every repetition. The ceiling is row \
                             relay-ceiling's. tidings GB/s {}.",
                            list(&tg, 2)
                        ),
                    }
                }
                Err(e) => Row::not_measured("relay", &what, target, format!("the ceiling: {e}")),
            });
            rows.push(cpu_row(size, &server_cpu, &socat_cpu, &sg));
            rows.push(
                same_job(ctx, &input, &digest, reps, &tg)
                    .unwrap_or_else(|e| Row::not_measured("relay-same-job", SAME_JOB, "—", e)),
            );
            rows.push(
                over_tls(ctx, &input, &digest, reps, size)
                    .unwrap_or_else(|e| Row::not_measured("relay-tls", RELAY_TLS, "≥ 0.8×", e)),
            );
        }
        Err(e) => rows.push(Row::not_measured("relay", &what, target, e)),
    }
    rows.push(match ceiling {
        Ok(ceiling) => ceiling.row(size),
        Err(e) => Row::not_measured("relay-ceiling", CEILING, "—", e),
    });
    let _ = std::fs::remove_file(&input);
    rows.push(sha.row());
    rows.push(iperf(ctx).unwrap_or_else(|e| {
        Row::not_measured(
            "relay-iperf3",
            "raw loopback TCP (iperf3), for context",
            "—",
            e,
        )
    }));
    rows
}

/// What row `relay-cpu` compares.
const RELAY_CPU: &str = "relay server's CPU per GiB relayed: `tidings serve` against socat's \
                         relay process (ratio = socat's CPU ÷ ours: ≥ 1.0× is ours ≤ socat's)";

/// Row `relay-cpu`: what relaying costs the server itself, against socat's relay process, from
/// the same repetitions as the relay row.
fn cpu_row(size: u64, tidings: &[f64], socat: &[f64], socat_gbs: &[f64]) -> Row {
    let gib = size as f64 / (1u64 << 30) as f64;
    let per_gib = |cpu: &[f64]| -> Vec<f64> { cpu.iter().map(|c| c / gib).collect() };
    let (t, s) = (per_gib(tidings), per_gib(socat));
    let (tm, sm) = (median(&t), median(&s));
    let ratio = sm / tm;
    Row {
        id: "relay-cpu",
        what: RELAY_CPU.into(),
        tidings: format!("{tm:.3} s/GiB"),
        peer: format!("socat {sm:.3} s/GiB"),
        ratio: Some(ratio),
        target: "≥ 1.0×".into(),
        verdict: at_least(ratio, 1.0),
        notes: format!(
            "User + system CPU of the relay process over its whole life (`/proc/PID/stat`, \
             in 10 ms ticks: use the full run's 1 GiB, not --quick, for a verdict; \
             tidings: `tidings serve` read once the receiver exited, socat: the one-shot `socat \
             -U -b {SOCAT_BUFFER} TCP-LISTEN TCP-LISTEN` read as it exits), in the relay row's \
             repetitions. tidings frames, routes and credits every chunk of the file; socat \
             moves bytes only. tidings s/GiB {}, socat s/GiB {}; socat's relay alone (no \
             hashing anywhere) moved GB/s {}.",
            list(&t, 3),
            list(&s, 3),
            list(socat_gbs, 2)
        ),
    }
}

const CEILING: &str = "the ceiling of a verified relay on this machine: two SHA-256 passes and \
                       the kernel's copies per byte over the cores, or the disk if slower";

/// The machine's ceiling for a verified relay built on reads and writes, from measured
/// per-byte costs: every byte is read from the file, hashed at the sender, carried by two
/// loopback TCP hops (the kernel copies it into and out of a socket on each), hashed at the
/// receiver and written to the file, which is synced before the receiver confirms it. The CPU
/// work is spread over the cores the three processes can use (at most three); the disk writes
/// back while the file arrives (a receiver can start the writeback as it goes, as tidings
/// does), so the bound is the slower of the two, not their sum.
struct Ceiling {
    /// SHA-256 on one core (the faster of sha2 and ring here), ns per byte.
    sha_ns: f64,
    /// One loopback TCP hop, the writer's and the reader's CPU together, ns per byte.
    hop_ns: f64,
    /// Reading the file from the page cache, ns per byte.
    read_ns: f64,
    /// Writing the file into the page cache, ns per byte.
    write_ns: f64,
    /// All of the above for one byte: two hashes, two hops, a read and a write, ns.
    cpu_ns: f64,
    /// Cores the CPU work is spread over.
    cores: usize,
    /// Syncing the written file to the disk, wall nanoseconds per byte.
    sync_ns: f64,
    /// The ceiling, GB/s.
    gbs: f64,
    /// Every measurement, for the notes.
    notes: String,
}

/// The size of one read or write in the ceiling's measurements (what tidings uses too).
const IO_BUFFER: usize = 256 << 10;

impl Ceiling {
    /// Measures the per-byte costs over `input` (in the page cache), with SHA-256 at
    /// `sha_gbs` per core.
    fn measure(ctx: &Ctx, input: &Path, sha_gbs: f64) -> Result<Ceiling, String> {
        let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
        let passes = if ctx.quick { 3 } else { 5 };
        let ns = |cpu: f64| cpu / size as f64 * 1e9;
        let (mut hop, mut read, mut write, mut sync) = (vec![], vec![], vec![], vec![]);
        for pass in 0..passes {
            hop.push(ns(tcp_hop_cpu(size)?));
            read.push(ns(file_read_cpu(input)?));
            let (w, s) = file_write_cpu(&ctx.tmp.join(format!("ceiling-{pass}.bin")), size)?;
            write.push(ns(w));
            sync.push(ns(s));
        }
        let sha_ns = 1.0 / sha_gbs;
        let (hop_ns, read_ns, write_ns, sync_ns) =
            (median(&hop), median(&read), median(&write), median(&sync));
        let cpu_ns = 2.0 * sha_ns + 2.0 * hop_ns + read_ns + write_ns;
        // Sender, server and receiver: more than three cores cannot help them.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(3));
        let gbs = 1.0 / (cpu_ns / cores as f64).max(sync_ns);
        Ok(Ceiling {
            sha_ns,
            hop_ns,
            read_ns,
            write_ns,
            cpu_ns,
            cores,
            sync_ns,
            gbs,
            notes: format!(
                "median of {passes} passes over {} MiB each: TCP hop ns/B {}, file read ns/B {}, \
                 file write ns/B {}, sync ns/B {}",
                size >> 20,
                list(&hop, 3),
                list(&read, 3),
                list(&write, 3),
                list(&sync, 3)
            ),
        })
    }

    /// Row `relay-ceiling`.
    fn row(&self, size: u64) -> Row {
        Row {
            id: "relay-ceiling",
            what: CEILING.into(),
            tidings: format!("{:.2} GB/s", self.gbs),
            peer: "—".into(),
            ratio: None,
            target: "—".into(),
            verdict: Verdict::Context,
            notes: format!(
                "Per byte: SHA-256 {:.3} ns (relay-sha256, the faster library) twice, a loopback \
                 TCP hop {:.3} ns (writer and reader threads' CPU, {IO_BUFFER} B writes and \
                 reads) twice, reading the file from the page cache {:.3} ns, writing it {:.3} \
                 ns: {:.3} ns of CPU, spread over {} cores {:.3} ns; the disk's writeback (a sync \
                 after the writes, wall) {:.3} ns, overlapping the transfer → {:.2} GB/s for {} \
                 MiB. Measured in process, threads unpinned, CPU from CLOCK_THREAD_CPUTIME_ID \
                 (softirq work the kernel runs in its own threads is not counted, so the hop is \
                 if anything cheaper than it is, the ceiling higher); the sync is timed after \
                 the whole file was written, which holds while the dirty limit exceeds the file \
                 (24 GiB of memory here); {}. No framing, no copies in user space, no \
                 scheduling: a bound, not a target, for a relay built on reads and writes (mmap, \
                 sendfile or splice could avoid some of the kernel's copies).",
                self.sha_ns,
                self.hop_ns,
                self.read_ns,
                self.write_ns,
                self.cpu_ns,
                self.cores,
                self.cpu_ns / self.cores as f64,
                self.sync_ns,
                self.gbs,
                size >> 20,
                self.notes
            ),
        }
    }
}

/// CPU seconds (writer + reader) to carry `size` bytes over one loopback TCP connection.
fn tcp_hop_cpu(size: u64) -> Result<f64, String> {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || -> Result<f64, String> {
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let start = procs::thread_cpu_secs();
        write_size(&mut s, size)?;
        Ok(procs::thread_cpu_secs() - start)
    });
    let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; IO_BUFFER];
    let start = procs::thread_cpu_secs();
    let mut got = 0u64;
    loop {
        match s.read(&mut buf).map_err(|e| e.to_string())? {
            0 => break,
            n => got += n as u64,
        }
    }
    let reader = procs::thread_cpu_secs() - start;
    let writer = writer.join().map_err(|_| "the writer thread panicked")??;
    if got != size {
        return Err(format!("the TCP hop carried {got} of {size} bytes"));
    }
    Ok(writer + reader)
}

/// Writes `size` bytes to `w` in writes of [`IO_BUFFER`] (the contents do not matter).
fn write_size(w: &mut impl std::io::Write, size: u64) -> Result<(), String> {
    let buf = vec![0x5au8; IO_BUFFER];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    Ok(())
}

/// `size` bytes moved in each of `secs`, as GB/s (10⁹ B/s).
fn gbs(size: u64, secs: &[f64]) -> Vec<f64> {
    secs.iter().map(|s| size as f64 / s / 1e9).collect()
}

/// CPU seconds to read `path` (in the page cache: it was just written and hashed).
fn file_read_cpu(path: &Path) -> Result<f64, String> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; IO_BUFFER];
    let start = procs::thread_cpu_secs();
    while f.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    Ok(procs::thread_cpu_secs() - start)
}

/// CPU seconds to write `size` bytes into a new file at `path`, and wall seconds to sync it
/// after; the file is removed.
fn file_write_cpu(path: &Path, size: u64) -> Result<(f64, f64), String> {
    let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let start = procs::thread_cpu_secs();
    write_size(&mut f, size)?;
    let cpu = procs::thread_cpu_secs() - start;
    let synced = Instant::now();
    f.sync_all().map_err(|e| e.to_string())?;
    let sync = synced.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok((cpu, sync))
}

const RELAY_TLS: &str = "file relay over TLS (tls://, both hops) against the same in plaintext";

/// Row `relay-tls`: the relay with TLS on both hops against the same in plaintext, in one
/// run: what TLS costs a verified transfer.
fn over_tls(ctx: &Ctx, input: &Path, digest: &str, reps: usize, size: u64) -> Result<Row, String> {
    let (tls, plain) = alternate(
        reps,
        |rep| tidings_once(ctx, input, digest, rep, true).map(|(secs, _)| secs),
        |rep| tidings_once(ctx, input, digest, rep, false).map(|(secs, _)| secs),
    )?;
    let (tg, pg) = (gbs(size, &tls), gbs(size, &plain));
    let (tm, pm) = (median(&tg), median(&pg));
    let ratio = tm / pm;
    Ok(Row {
        id: "relay-tls",
        what: RELAY_TLS.into(),
        tidings: format!("{tm:.2} GB/s"),
        peer: format!("tidings in plaintext {pm:.2} GB/s"),
        ratio: Some(ratio),
        target: "≥ 0.8×".into(),
        verdict: at_least(ratio, 0.8),
        notes: format!(
            "{reps} repetitions each, alternated, as the relay row (SHA-256 on both ends, no \
             pinning); TLS 1.3 with ring (AES-256-GCM) between sender and server and between \
             server and receiver, a certificate from `tidings cert`. GB/s TLS {}, plaintext {}.",
            list(&tg, 2),
            list(&pg, 2)
        ),
    })
}

/// Writes `size` pseudo-random bytes (nothing on the path compresses or dedups them).
fn make_file(path: &Path, size: u64) -> Result<(), String> {
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    f.flush().map_err(|e| e.to_string())
}

fn limit_for(size: u64) -> Duration {
    Duration::from_secs(30 + size / (20 << 20))
}

fn check(out: &Path, digest: &str) -> Result<(), String> {
    let got = servers::sha256_file(out)?;
    let _ = std::fs::remove_file(out);
    if got == digest {
        Ok(())
    } else {
        Err(format!("{} arrived with different bytes", out.display()))
    }
}

/// One tidings relay: its seconds and the CPU seconds of `tidings serve`.
fn tidings_once(
    ctx: &Ctx,
    input: &Path,
    digest: &str,
    rep: usize,
    tls: bool,
) -> Result<(f64, f64), String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let port = procs::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut server = unpinned(&ctx.tidings);
    server.args(["serve", "--listen", &listen]);
    // Over TLS the clients name the server as its certificate does, and trust its CA.
    let (addr, ca) = if tls {
        let dir = servers::certificate(ctx)?;
        server.arg("--tls-cert").arg(dir.join("cert.pem"));
        server.arg("--tls-key").arg(dir.join("key.pem"));
        let ca = dir.join("ca.pem").display().to_string();
        (
            format!("tls://localhost:{port}"),
            vec!["--ca".to_string(), ca],
        )
    } else {
        (listen.clone(), Vec::new())
    };
    let server = Guard::spawn(server, "tidings serve")?;
    servers::wait_listen(port)?;
    let dir = ctx.tmp.join(format!("relay-tidings-{rep}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut recv = unpinned(&ctx.tidings);
    recv.args([
        "--json", "recv", "--name", "bob", "--count", "1", "--server", &addr, "--out",
    ])
    .arg(&dir)
    .args(&ca)
    .stdout(Stdio::piped());
    let mut recv = Guard::spawn(recv, "tidings recv")?;
    let out = recv.stdout().ok_or("no stdout")?;
    // Timing starts once the receiver is registered, as for socat.
    procs::wait_line(out, "\"connected\"", Duration::from_secs(10))?;
    let mut send = unpinned(&ctx.tidings);
    send.args(["send", "--name", "alice", "--to", "bob", "--server", &addr])
        .args(&ca)
        .arg(input);
    let start = Instant::now();
    let mut send = Guard::spawn(send, "tidings send")?;
    send.expect_success(limit_for(size))?;
    recv.expect_success(Duration::from_secs(10))?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = procs::stat(server.pid())?.cpu_secs;
    drop(server);
    let name = input.file_name().ok_or("input has no name")?;
    check(&dir.join(name), digest)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((secs, cpu))
}

/// socat relaying from `from_port` (the sender connects) to `to_port` (the receiver
/// connects), listening on both; returns once the receiver's side listens.
fn socat_relay(from_port: u16, to_port: u16) -> Result<Guard, String> {
    // -U: data flows from the second address (the sender's side) to the first (the
    // receiver's), and the first is opened first, so the receiver connects before the sender.
    let mut relay = unpinned("socat");
    relay.args([
        "-U",
        "-b",
        SOCAT_BUFFER,
        &format!("TCP-LISTEN:{to_port},bind=127.0.0.1,reuseaddr"),
        &format!("TCP-LISTEN:{from_port},bind=127.0.0.1,reuseaddr"),
    ]);
    let relay = Guard::spawn(relay, "socat relay")?;
    servers::wait_listen(to_port)?;
    Ok(relay)
}

/// One socat relay: its seconds and the CPU seconds of socat's relay process.
fn socat_once(ctx: &Ctx, input: &Path, digest: &str, rep: usize) -> Result<(f64, f64), String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let (from_port, to_port) = (procs::free_port()?, procs::free_port()?);
    let out = ctx.tmp.join(format!("relay-socat-{rep}.bin"));
    let _ = std::fs::remove_file(&out);
    let mut relay = socat_relay(from_port, to_port)?;
    let mut recv = unpinned("socat");
    recv.args([
        "-u",
        "-b",
        SOCAT_BUFFER,
        &format!("TCP:127.0.0.1:{to_port}"),
    ])
    .arg(format!("CREATE:{}", out.display()));
    let mut recv = Guard::spawn(recv, "socat receiver")?;
    servers::wait_established(to_port)?;
    servers::wait_listen(from_port)?;
    let mut send = unpinned("socat");
    send.args(["-u", "-b", SOCAT_BUFFER])
        .arg(format!("FILE:{}", input.display()))
        .arg(format!("TCP:127.0.0.1:{from_port}"));
    let start = Instant::now();
    let mut send = Guard::spawn(send, "socat sender")?;
    send.expect_success(limit_for(size))?;
    recv.expect_success(Duration::from_secs(10))?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = relay.cpu_at_exit(Duration::from_secs(5))?;
    check(&out, digest)?;
    Ok((secs, cpu))
}

const SAME_JOB: &str = "file relay with the integrity check tidings gives: socat + sha256sum at \
                        both ends, for context";

/// socat relaying while the sender hashes its file and the receiver hashes what arrives, as
/// a user checking integrity would, concurrently with the transfer: the sender runs
/// `sha256sum FILE` beside `socat FILE:… TCP:…`, the receiver `socat TCP:… - | tee OUT |
/// sha256sum`. Timed from starting the sender until both sides exited with their digests;
/// the two digests must match the input's. Compared with the tidings figures of the main row.
fn same_job(
    ctx: &Ctx,
    input: &Path,
    digest: &str,
    reps: usize,
    tidings_gbs: &[f64],
) -> Result<Row, String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let mut secs = Vec::with_capacity(reps);
    for rep in 0..reps {
        secs.push(socat_hashed_once(ctx, input, digest, rep)?);
    }
    let gbs = gbs(size, &secs);
    let (tm, sm) = (median(tidings_gbs), median(&gbs));
    Ok(Row {
        id: "relay-same-job",
        what: SAME_JOB.into(),
        tidings: format!("{tm:.2} GB/s"),
        peer: format!("socat+sha256sum {sm:.2} GB/s"),
        ratio: Some(tm / sm),
        target: "—".into(),
        verdict: Verdict::Context,
        notes: format!(
            "{reps} repetitions after the main row's (tidings figures from that row); no \
             process pinned. Sender: `sha256sum FILE` running beside the socat sender \
             (reading the file a second time from the page cache); receiver: `socat … - | tee \
             OUT | sha256sum` (hashing while receiving, not after). Both digests checked \
             against the input's after every repetition. socat+sha256sum GB/s {}.",
            list(&gbs, 2)
        ),
    })
}

fn socat_hashed_once(ctx: &Ctx, input: &Path, digest: &str, rep: usize) -> Result<f64, String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let (from_port, to_port) = (procs::free_port()?, procs::free_port()?);
    let out = ctx.tmp.join(format!("relay-hashed-{rep}.bin"));
    let (sent_sum, got_sum) = (
        ctx.tmp.join(format!("relay-hashed-{rep}.sent")),
        ctx.tmp.join(format!("relay-hashed-{rep}.got")),
    );
    for f in [&out, &sent_sum, &got_sum] {
        let _ = std::fs::remove_file(f);
    }
    let mut relay = socat_relay(from_port, to_port)?;
    let mut recv = unpinned("sh");
    recv.arg("-c")
        .arg(format!(
            "socat -u -b {SOCAT_BUFFER} TCP:127.0.0.1:{to_port} - | tee \"$1\" | sha256sum > \"$2\""
        ))
        .args(["sh"])
        .arg(&out)
        .arg(&got_sum);
    let mut recv = Guard::spawn(recv, "socat receiver with sha256sum")?;
    servers::wait_established(to_port)?;
    servers::wait_listen(from_port)?;
    let mut send = unpinned("sh");
    send.arg("-c")
        .arg(format!(
            "sha256sum < \"$1\" > \"$2\" & socat -u -b {SOCAT_BUFFER} FILE:\"$1\" \
             TCP:127.0.0.1:{from_port} && wait $!"
        ))
        .args(["sh"])
        .arg(input)
        .arg(&sent_sum);
    let start = Instant::now();
    let mut send = Guard::spawn(send, "socat sender with sha256sum")?;
    send.expect_success(limit_for(size))?;
    recv.expect_success(Duration::from_secs(10))?;
    let secs = start.elapsed().as_secs_f64();
    relay.expect_success(Duration::from_secs(5))?;
    for sum in [&sent_sum, &got_sum] {
        let text = std::fs::read_to_string(sum).map_err(|e| format!("{}: {e}", sum.display()))?;
        let _ = std::fs::remove_file(sum);
        if text.split_whitespace().next() != Some(digest) {
            return Err(format!("{} has the wrong digest", sum.display()));
        }
    }
    check(&out, digest)?;
    Ok(secs)
}

/// SHA-256 on one core over an in-memory buffer, GB/s per pass: the `sha2` crate tidings uses
/// and ring's (which the TLS layer brings), each with the CPU's SHA extensions where it has them.
struct ShaRates {
    sha2: Vec<f64>,
    ring: Vec<f64>,
    mib: usize,
}

/// Measures both libraries, alternated.
fn sha256_rates(ctx: &Ctx) -> ShaRates {
    use sha2::{Digest, Sha256};
    let buf: Vec<u8> = (0..(64u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let rounds = if ctx.quick { 2 } else { 8 };
    let rate = |start: Instant| (rounds * buf.len()) as f64 / start.elapsed().as_secs_f64() / 1e9;
    let (mut sha2, mut ring) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let start = Instant::now();
        let mut h = Sha256::new();
        for _ in 0..rounds {
            h.update(&buf);
        }
        std::hint::black_box(h.finalize());
        sha2.push(rate(start));
        let start = Instant::now();
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for _ in 0..rounds {
            h.update(&buf);
        }
        std::hint::black_box(h.finish());
        ring.push(rate(start));
    }
    ShaRates {
        sha2,
        ring,
        mib: rounds * 64,
    }
}

impl ShaRates {
    /// The faster library's median, GB/s: what this machine's CPU allows.
    fn fastest(&self) -> f64 {
        median(&self.sha2).max(median(&self.ring))
    }

    /// Row `relay-sha256`.
    fn row(&self) -> Row {
        let (s, r) = (median(&self.sha2), median(&self.ring));
        Row {
            id: "relay-sha256",
            what: "SHA-256 on one core: the sha2 crate tidings uses, against ring's, for context"
                .into(),
            tidings: format!("{s:.2} GB/s"),
            peer: format!("ring {r:.2} GB/s"),
            ratio: Some(s / r),
            target: "—".into(),
            verdict: Verdict::Context,
            notes: format!(
                "Median of 5 passes each over {} MiB in memory, alternated. A relay hashes \
                 every byte twice: with both hashes on one core the file moves at most {:.2} \
                 GB/s, with a core each at most {s:.2} GB/s, before any copying. sha2 GB/s {}, \
                 ring GB/s {}.",
                self.mib,
                s / 2.0,
                list(&self.sha2, 2),
                list(&self.ring, 2)
            ),
        }
    }
}

/// iperf3 client → server on loopback, one stream.
fn iperf(ctx: &Ctx) -> Result<Row, String> {
    let secs = if ctx.quick { 1 } else { 3 };
    let port = procs::free_port()?;
    let mut server = procs::pinned(SERVER_CPU, "iperf3");
    server.args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()]);
    let _server = Guard::spawn(server, "iperf3 server")?;
    servers::wait_listen(port)?;
    let out = std::process::Command::new("taskset")
        .args([
            "-c",
            &LOAD_CPU.to_string(),
            "iperf3",
            "-J",
            "-c",
            "127.0.0.1",
        ])
        .args(["-p", &port.to_string(), "-t", &secs.to_string()])
        .output()
        .map_err(|e| format!("iperf3: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("iperf3 output: {e}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or("iperf3 reported no throughput")?;
    Ok(Row {
        id: "relay-iperf3",
        what: "raw loopback TCP, one stream (iperf3), for context".into(),
        tidings: "—".into(),
        peer: format!("iperf3 {:.2} GB/s", bps / 8e9),
        ratio: None,
        target: "—".into(),
        verdict: Verdict::Context,
        notes: format!(
            "iperf3 -c for {secs} s, server on CPU 0, client on CPU 1: the ceiling of one TCP \
             hop; a relay crosses two hops and copies every byte through a process."
        ),
    })
}
