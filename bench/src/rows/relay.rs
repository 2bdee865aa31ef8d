//! Row 1: a file relayed through a server on loopback, A → server → B.
//!
//! tidings: `tidings recv` (connected first) and `tidings send`, both verifying the SHA-256
//! digest as part of the protocol. socat: a one-shot relay `socat -U TCP-LISTEN:B
//! TCP-LISTEN:A`, a receiver `socat -u TCP:… CREATE:out` (connected first) and a sender
//! `socat -u FILE:in TCP:…`. Each side is timed from starting the sender until sender and
//! receiver have both exited; the received bytes are checked against the input afterwards
//! (outside the timing). No process is pinned: the relay, sender and receiver of both sides
//! share the two cores as the scheduler sees fit (pinning the sender and receiver to one
//! core put both of tidings' SHA-256s on it, which alone capped tidings near 0.75 GB/s,
//! while socat's do no work there).
//!
//! Context rows: `relay-same-job`, socat plus the integrity check tidings gives (SHA-256 of
//! the source at the sender and of the received bytes at the receiver, concurrently with the
//! transfer); `relay-sha256`, plain SHA-256 speed here, the CPU-bound ceiling of hashing
//! every byte twice; iperf3, raw loopback throughput.

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

/// Both rows: the relay comparison and the iperf3 context line.
pub fn rows(ctx: &Ctx) -> Vec<Row> {
    let size: u64 = if ctx.quick { 256 << 20 } else { 1 << 30 };
    let reps = if ctx.quick { 3 } else { 5 };
    let what = format!(
        "file relay, {} through the server (GB/s = 10⁹ B/s)",
        if ctx.quick { "256 MiB" } else { "1 GiB" }
    );
    let target = "≥ 1.0×";
    let mut rows = Vec::new();
    #[allow(clippy::type_complexity)]
    let result = (|| -> Result<(Row, Result<Row, String>, Result<Row, String>), String> {
        let input = ctx.tmp.join("relay-input.bin");
        make_file(&input, size)?;
        let digest = servers::sha256_file(&input)?;
        let (t, s) = alternate(
            reps,
            |rep| tidings_once(ctx, &input, &digest, rep, false),
            |rep| socat_once(ctx, &input, &digest, rep),
        )?;
        let gbs =
            |secs: &[f64]| -> Vec<f64> { secs.iter().map(|s| size as f64 / s / 1e9).collect() };
        let (tg, sg) = (gbs(&t), gbs(&s));
        let (tm, sm) = (median(&tg), median(&sg));
        let ratio = tm / sm;
        let row = Row {
            id: "relay",
            what: what.clone(),
            tidings: format!("{tm:.2} GB/s"),
            peer: format!("socat {sm:.2} GB/s"),
            ratio: Some(ratio),
            target: target.into(),
            verdict: at_least(ratio, 1.0),
            notes: format!(
                "{reps} repetitions each, alternated; no process pinned (relay, sender and \
                 receiver of both sides share both cores). tidings includes its SHA-256 on \
                 both ends (its protocol verifies every file); socat moves bytes only (-b \
                 {SOCAT_BUFFER}; see relay-same-job for socat with the same check). Received \
                 bytes checked identical (SHA-256) after every repetition. tidings GB/s {}, \
                 socat GB/s {}.",
                list(&tg, 2),
                list(&sg, 2)
            ),
        };
        let same = same_job(ctx, &input, &digest, reps, &tg);
        let tls = over_tls(ctx, &input, &digest, reps, size);
        Ok((row, same, tls))
    })();
    match result {
        Ok((row, same, tls)) => {
            rows.push(row);
            rows.push(
                same.unwrap_or_else(|e| Row::not_measured("relay-same-job", SAME_JOB, "—", e)),
            );
            rows.push(
                tls.unwrap_or_else(|e| Row::not_measured("relay-tls", RELAY_TLS, "≥ 0.8×", e)),
            );
        }
        Err(e) => rows.push(Row::not_measured("relay", &what, target, e)),
    }
    let _ = std::fs::remove_file(ctx.tmp.join("relay-input.bin"));
    rows.push(sha256_ceiling(ctx));
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

const RELAY_TLS: &str = "file relay over TLS (tls://, both hops) against the same in plaintext";

/// Row `relay-tls`: the relay with TLS on both hops against the same in plaintext, in one
/// run: what TLS costs a verified transfer.
fn over_tls(ctx: &Ctx, input: &Path, digest: &str, reps: usize, size: u64) -> Result<Row, String> {
    let (tls, plain) = alternate(
        reps,
        |rep| tidings_once(ctx, input, digest, rep, true),
        |rep| tidings_once(ctx, input, digest, rep, false),
    )?;
    let gbs = |secs: &[f64]| -> Vec<f64> { secs.iter().map(|s| size as f64 / s / 1e9).collect() };
    let (tg, pg) = (gbs(&tls), gbs(&plain));
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

fn tidings_once(
    ctx: &Ctx,
    input: &Path,
    digest: &str,
    rep: usize,
    tls: bool,
) -> Result<f64, String> {
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
    drop(server);
    let name = input.file_name().ok_or("input has no name")?;
    check(&dir.join(name), digest)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(secs)
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

fn socat_once(ctx: &Ctx, input: &Path, digest: &str, rep: usize) -> Result<f64, String> {
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
    relay.expect_success(Duration::from_secs(5))?;
    check(&out, digest)?;
    Ok(secs)
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
    let gbs: Vec<f64> = secs.iter().map(|s| size as f64 / s / 1e9).collect();
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

/// SHA-256 over an in-memory buffer with the `sha2` crate tidings uses, on this machine: the
/// rate at which one core hashes. A relay hashes every byte twice (sender and receiver).
fn sha256_ceiling(ctx: &Ctx) -> Row {
    use sha2::{Digest, Sha256};
    let buf: Vec<u8> = (0..(64u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let rounds = if ctx.quick { 2 } else { 8 };
    let mut rates = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        let mut h = Sha256::new();
        for _ in 0..rounds {
            h.update(&buf);
        }
        std::hint::black_box(h.finalize());
        rates.push((rounds * buf.len()) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    let r = median(&rates);
    Row {
        id: "relay-sha256",
        what: "SHA-256 on one core (sha2 crate), for context: the CPU bound of hashing".into(),
        tidings: format!("{r:.2} GB/s"),
        peer: "—".into(),
        ratio: None,
        target: "—".into(),
        verdict: Verdict::Context,
        notes: format!(
            "Median of 5 passes over {} MiB in memory. A relay hashes every byte twice: with \
             both hashes on one core the file moves at most {:.2} GB/s, with a core each at \
             most {r:.2} GB/s, before any copying. GB/s {}.",
            rounds * 64,
            r / 2.0,
            list(&rates, 2)
        ),
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
