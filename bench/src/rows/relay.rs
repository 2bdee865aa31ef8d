//! Row 1: a file relayed through a server on loopback, A → server → B.
//!
//! tidings: `tidings recv` (connected first) and `tidings send`, both verifying the SHA-256
//! digest as part of the protocol. socat: a one-shot relay `socat -U TCP-LISTEN:B
//! TCP-LISTEN:A`, a receiver `socat -u TCP:… CREATE:out` (connected first) and a sender
//! `socat -u FILE:in TCP:…`. Each side is timed from starting the sender until sender and
//! receiver have both exited; the received bytes are checked against the input afterwards
//! (outside the timing). iperf3 gives raw loopback throughput for context.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::servers::{self, Ctx};
use crate::procs::{self, Guard, LOAD_CPU, SERVER_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row, Verdict};

/// socat's buffer: its default (8 KiB) makes it needlessly slow; the peer gets its best.
const SOCAT_BUFFER: &str = "262144";

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
    let result = (|| -> Result<Row, String> {
        let input = ctx.tmp.join("relay-input.bin");
        make_file(&input, size)?;
        let digest = servers::sha256_file(&input)?;
        let (t, s) = alternate(
            reps,
            |rep| tidings_once(ctx, &input, &digest, rep),
            |rep| socat_once(ctx, &input, &digest, rep),
        )?;
        let gbs =
            |secs: &[f64]| -> Vec<f64> { secs.iter().map(|s| size as f64 / s / 1e9).collect() };
        let (tg, sg) = (gbs(&t), gbs(&s));
        let (tm, sm) = (median(&tg), median(&sg));
        let ratio = tm / sm;
        let _ = std::fs::remove_file(&input);
        Ok(Row {
            id: "relay",
            what: what.clone(),
            tidings: format!("{tm:.2} GB/s"),
            peer: format!("socat {sm:.2} GB/s"),
            ratio: Some(ratio),
            target: target.into(),
            verdict: at_least(ratio, 1.0),
            notes: format!(
                "{reps} repetitions each, alternated; server/relay pinned to CPU 0, sender and \
                 receiver on CPU 1. tidings includes its SHA-256 on both ends (its protocol \
                 verifies every file); socat moves bytes only (-b {SOCAT_BUFFER}). Received \
                 bytes checked identical (SHA-256) after every repetition. tidings GB/s {}, \
                 socat GB/s {}.",
                list(&tg, 2),
                list(&sg, 2)
            ),
        })
    })();
    rows.push(result.unwrap_or_else(|e| Row::not_measured("relay", &what, target, e)));
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

fn tidings_once(ctx: &Ctx, input: &Path, digest: &str, rep: usize) -> Result<f64, String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let server = servers::tidings(ctx, None)?;
    let addr = format!("127.0.0.1:{}", server.port);
    let dir = ctx.tmp.join(format!("relay-tidings-{rep}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut recv = procs::pinned(LOAD_CPU, &ctx.tidings);
    recv.args([
        "--json", "recv", "--name", "bob", "--count", "1", "--server", &addr, "--out",
    ])
    .arg(&dir)
    .stdout(Stdio::piped());
    let mut recv = Guard::spawn(recv, "tidings recv")?;
    let out = recv.stdout().ok_or("no stdout")?;
    // Timing starts once the receiver is registered, as for socat.
    procs::wait_line(out, "\"connected\"", Duration::from_secs(10))?;
    let mut send = procs::pinned(LOAD_CPU, &ctx.tidings);
    send.args(["send", "--name", "alice", "--to", "bob", "--server", &addr])
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

fn socat_once(ctx: &Ctx, input: &Path, digest: &str, rep: usize) -> Result<f64, String> {
    let size = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    let (from_port, to_port) = (procs::free_port()?, procs::free_port()?);
    let out = ctx.tmp.join(format!("relay-socat-{rep}.bin"));
    let _ = std::fs::remove_file(&out);
    // -U: data flows from the second address (the sender's side) to the first (the
    // receiver's), and the first is opened first, so the receiver connects before the sender.
    let mut relay = procs::pinned(SERVER_CPU, "socat");
    relay.args([
        "-U",
        "-b",
        SOCAT_BUFFER,
        &format!("TCP-LISTEN:{to_port},bind=127.0.0.1,reuseaddr"),
        &format!("TCP-LISTEN:{from_port},bind=127.0.0.1,reuseaddr"),
    ]);
    let mut relay = Guard::spawn(relay, "socat relay")?;
    servers::wait_listen(to_port)?;
    let mut recv = procs::pinned(LOAD_CPU, "socat");
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
    let mut send = procs::pinned(LOAD_CPU, "socat");
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
