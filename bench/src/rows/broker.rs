//! Rows 4–6: tidings serve against the brokers (nats-server, the strongest peer for small
//! messages, and mosquitto for context) with the same load-generator clients.
//!
//! Row 4, fan-out: 100 clients each broadcast 64-byte messages to everyone; delivered
//! messages per second. Row 5, latency: 1000 clients send private 64-byte messages to
//! random others at 10,000 messages/s in total; p50/p99 from each message's write to its
//! delivery. Both run once against each broker (`fanout-nats`, `fanout`, and so on).
//! Row 6, idle connections: 10,000 clients that only send heartbeats; server RSS per
//! connection. Row `joins`: the time 10,000 clients take to be welcomed. Servers run on
//! CPU 0, the load generator (one thread) on CPU 1.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::servers::{self, Ctx};
use crate::load::fields;
use crate::load::proto::Proto;
use crate::procs::{self, Guard, LOAD_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row, Verdict};

/// The broker a row compares with: its name, and how it delivers a broadcast (said in the
/// row's notes).
fn broker(peer: Proto) -> (&'static str, &'static str) {
    match peer {
        Proto::Nats => (
            "nats-server",
            "NATS core (at most once), clients connect with echo off, so NATS too delivers to \
             the 99 others",
        ),
        _ => (
            "mosquitto",
            "an MQTT 3.1.1 subscriber also gets its own message (100): both counted as \
             delivered. mosquitto QoS 0, TCP_NODELAY",
        ),
    }
}

/// Where a fan-out row's clients talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// Broadcasts to everyone (the default room for tidings, topic `all` for the brokers).
    Everyone,
    /// In a room of their own (a topic, a subject) while four other rooms of 25 clients
    /// chat at full speed: rooms must not cost the fan-out its ratio (issue: rooms).
    BusyRooms,
}

/// Row `fanout` (against mosquitto, target ≥ 1.2×) or `fanout-nats` (≥ 1.0×); in a room
/// beside busy rooms, `fanout-room` and `fanout-room-nats` with the same targets.
pub fn fanout(ctx: &Ctx, peer: Proto, place: Where) -> Row {
    let (peer_name, delivery) = broker(peer);
    let id: &'static str = match (place, peer) {
        (Where::Everyone, Proto::Nats) => "fanout-nats",
        (Where::Everyone, _) => "fanout",
        (Where::BusyRooms, Proto::Nats) => "fanout-room-nats",
        (Where::BusyRooms, _) => "fanout-room",
    };
    let what = match place {
        Where::Everyone => "chat fan-out, 100 clients, each 64 B message to all (deliveries/s)",
        Where::BusyRooms => {
            "chat fan-out in a room of 100 while 4 rooms of 25 chat flat out (deliveries/s in \
             the room of 100)"
        }
    };
    let extra: Vec<String> = match place {
        Where::Everyone => Vec::new(),
        Where::BusyRooms => vec!["room=team".into(), "busy=4,25".into()],
    };
    let (target, bar) = if peer == Proto::Nats {
        ("≥ 1.0×", 1.0)
    } else {
        ("≥ 1.2×", 1.2)
    };
    let clients = 100;
    // Quick: mosquitto delivers some 0.1 M/s, so 100 rounds took it half a minute a row.
    let messages = if ctx.quick { 40 } else { 500 };
    let reps = if ctx.quick { 3 } else { 5 };
    let run = |proto: Proto| -> Result<f64, String> {
        let server = servers::start(ctx, proto, None)?;
        servers::fanout_rate(
            ctx,
            "fanout",
            proto.name(),
            server.port,
            (clients, messages),
            &extra,
        )
    };
    let result = alternate(reps, |_| run(Proto::Tidings), |_| run(peer)).map(|(t, m)| {
        let (tm, mm) = (median(&t), median(&m));
        let ratio = tm / mm;
        Row {
            id,
            what: what.into(),
            tidings: format!("{:.2} M/s", tm / 1e6),
            peer: format!("{peer_name} {:.2} M/s", mm / 1e6),
            ratio: Some(ratio),
            target: target.into(),
            verdict: at_least(ratio, bar),
            notes: format!(
                "{reps} repetitions each, alternated, fresh server each; {clients} clients × \
                 {messages} broadcasts, each client at most 8 rounds ahead of what it received \
                 (bounded in-flight, so neither server drops or disconnects anyone). tidings \
                 delivers to the 99 others; {delivery}.{} tidings M/s {}, {peer_name} M/s {}.",
                match place {
                    Where::Everyone => "",
                    Where::BusyRooms => {
                        " The 100 speak rooms (room-text in room `team`; the brokers: topic or \
                         subject `team`); rooms busy-0…busy-3 of 25 clients each broadcast \
                         flat out during the whole run, the same for both servers."
                    }
                },
                list(&t.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2),
                list(&m.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2)
            ),
        }
    });
    result.unwrap_or_else(|e| Row::not_measured(id, what, target, e))
}

/// Row `latency` (against mosquitto) or `latency-nats`.
pub fn latency(ctx: &Ctx, peer: Proto) -> Row {
    let (peer_name, _) = broker(peer);
    let id: &'static str = if peer == Proto::Nats {
        "latency-nats"
    } else {
        "latency"
    };
    let what = "latency p50 / p99, 1000 clients, 10k msg/s total, private 64 B messages";
    let target = "p99 ≤ peer's";
    // Nine a side: a p99 of 6 s of sends is a few hundred samples, and with five the
    // median moved by a tenth between full runs on this shared machine.
    let reps = if ctx.quick { 2 } else { 9 };
    // Quick: a smoke run (the p99 of 1.5 s of sends is a few dozen samples, not a verdict).
    let duration_ms = if ctx.quick { 1500 } else { 6000 };
    let run = |proto: Proto, p99s: &mut Vec<f64>, p50s: &mut Vec<f64>, maxes: &mut Vec<f64>| {
        let server = servers::start(ctx, proto, None)?;
        let line = servers::load(
            ctx,
            "latency",
            proto,
            server.port,
            &[
                "clients=1000".into(),
                "rate=10000".into(),
                format!("duration_ms={duration_ms}"),
                "warmup_ms=1000".into(),
            ],
            Duration::from_secs(120),
        )?;
        drop(server);
        let f = fields(&line);
        if f["measured"] < 0.99 * f["scheduled"] {
            return Err(format!(
                "{} delivered only {} of {} messages",
                proto.name(),
                f["measured"],
                f["scheduled"]
            ));
        }
        p50s.push(f["p50_us"]);
        maxes.push(f["max_us"]);
        p99s.push(f["p99_us"]);
        Ok(f["p99_us"])
    };
    let (mut t50, mut m50, mut tmax, mut mmax) = (vec![], vec![], vec![], vec![]);
    let (mut t99, mut m99) = (vec![], vec![]);
    let result = alternate(
        reps,
        |_| run(Proto::Tidings, &mut t99, &mut t50, &mut tmax),
        |_| run(peer, &mut m99, &mut m50, &mut mmax),
    );
    match result {
        Ok(_) => {
            let (tp99, mp99) = (median(&t99), median(&m99));
            let ratio = mp99 / tp99;
            Row {
                id,
                what: what.into(),
                tidings: format!("{:.0} / {:.0} µs", median(&t50), tp99),
                peer: format!("{peer_name} {:.0} / {:.0} µs", median(&m50), mp99),
                ratio: Some(ratio),
                target: target.into(),
                verdict: if tp99 <= mp99 {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
                notes: format!(
                    "ratio = peer p99 ÷ tidings p99 (more is better). {reps} repetitions each, \
                     alternated, {duration_ms} ms each after a 1 s warm-up, open loop: one \
                     message every 100 µs, the 1000 clients taking turns, written by one pacing \
                     thread (since session 5; tokio's 1 ms timers had sent them in bursts of \
                     ten), each stamped when written. The load (that thread and one reading \
                     all 1000 clients) runs on CPU 1, its own scheduling in both figures. p50 µs \
                     tidings {} {peer_name} {}; p99 µs tidings {} {peer_name} {}; max µs \
                     tidings {} {peer_name} {}.",
                    list(&t50, 0),
                    list(&m50, 0),
                    list(&t99, 0),
                    list(&m99, 0),
                    list(&tmax, 0),
                    list(&mmax, 0)
                ),
            }
        }
        Err(e) => Row::not_measured(id, what, target, e),
    }
}

/// Row `idle`.
pub fn idle(ctx: &Ctx) -> Row {
    let clients: usize = if ctx.quick { 2000 } else { 10_000 };
    let what = format!(
        "idle connections: {clients} clients with 10 s heartbeats, server RSS per connection"
    );
    let target = "≤ peer's";
    // Each run holds its clients through a round of 10 s heartbeats: one a side when quick.
    let reps = if ctx.quick { 1 } else { 3 };
    let seconds = std::cell::RefCell::new(Vec::new());
    let result = alternate(
        reps,
        |_| idle_once(ctx, Proto::Tidings, clients, &mut seconds.borrow_mut()),
        |_| idle_once(ctx, Proto::Mqtt, clients, &mut seconds.borrow_mut()),
    );
    let seconds = seconds.into_inner();
    match result {
        Ok((t, m)) => {
            let (tm, mm) = (median(&t), median(&m));
            let ratio = mm / tm;
            Row {
                id: "idle",
                what,
                tidings: format!("{tm:.1} KiB/conn"),
                peer: format!("mosquitto {mm:.1} KiB/conn"),
                ratio: Some(ratio),
                target: target.into(),
                verdict: if tm <= mm {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
                notes: format!(
                    "ratio = peer ÷ tidings (more is better). Repetitions each, alternated: \
                     {reps} (one takes {:.0}–{:.0} s with connecting, so fewer than 5); RSS (VmRSS) of \
                     the server after all {clients} completed the handshake and 11 s of \
                     heartbeats, minus its RSS before the first connection. tidings heartbeat 10 s \
                     (timeout 30 s, its defaults) with the clients answering the server's pings \
                     and pinging too; MQTT keepalive 10 s with PINGREQ every 10 s; every \
                     connection was still open at the end. KiB/conn tidings {}, mosquitto {}.",
                    seconds.iter().cloned().fold(f64::INFINITY, f64::min),
                    seconds.iter().cloned().fold(0.0, f64::max),
                    list(&t, 2),
                    list(&m, 2)
                ),
            }
        }
        Err(e) => Row::not_measured("idle", &what, target, e),
    }
}

/// Row `idle-tls`: what TLS costs an idle connection, tidings over TLS against tidings in
/// plaintext in the same run.
pub fn idle_tls(ctx: &Ctx) -> Row {
    let clients: usize = if ctx.quick { 2000 } else { 10_000 };
    let what = format!(
        "idle TLS connections: {clients} clients with 10 s heartbeats, server RSS per connection"
    );
    let target = "≤ 8 KiB/conn";
    // Each run holds its clients through a round of 10 s heartbeats: one a side when quick.
    let reps = if ctx.quick { 1 } else { 3 };
    let seconds = std::cell::RefCell::new(Vec::new());
    let once = |tls| idle_once_on(ctx, Proto::Tidings, clients, &mut seconds.borrow_mut(), tls);
    match alternate(reps, |_| once(true), |_| once(false)) {
        Ok((tls, plain)) => {
            let (t, p) = (median(&tls), median(&plain));
            Row {
                id: "idle-tls",
                what,
                tidings: format!("{t:.1} KiB/conn"),
                peer: format!("tidings in plaintext {p:.1} KiB/conn"),
                ratio: Some(p / t),
                target: target.into(),
                verdict: if t <= 8.0 {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
                notes: format!(
                    "ratio = plaintext ÷ TLS (what TLS costs; the target is the absolute 8 KiB). \
                     {reps} repetitions each, alternated, measured as the idle row (RSS after all \
                     {clients} completed the TLS and tidings handshakes and 11 s of heartbeats, \
                     minus before); TLS 1.3 with ring, a certificate from `tidings cert`. KiB/conn \
                     TLS {}, plaintext {}.",
                    list(&tls, 2),
                    list(&plain, 2)
                ),
            }
        }
        Err(e) => Row::not_measured("idle-tls", &what, target, e),
    }
}

/// Row `joins`: 10,000 clients connecting at once (64 handshakes in flight), until the last
/// is welcomed, against mosquitto's CONNACKs for the same connections.
pub fn joins(ctx: &Ctx) -> Row {
    let clients: usize = if ctx.quick { 2000 } else { 10_000 };
    let what = format!("{clients} joins until every client is welcomed (seconds)");
    let target = "≤ 1.0× peer's time";
    let reps = if ctx.quick { 1 } else { 3 };
    let cpu = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let result = alternate(
        reps,
        |_| {
            let (secs, cpu_secs) = joins_once(ctx, Proto::Tidings, clients)?;
            cpu.borrow_mut().0.push(cpu_secs);
            Ok(secs)
        },
        |_| {
            let (secs, cpu_secs) = joins_once(ctx, Proto::Mqtt, clients)?;
            cpu.borrow_mut().1.push(cpu_secs);
            Ok(secs)
        },
    );
    let (tidings_cpu, peer_cpu) = cpu.into_inner();
    match result {
        Ok((t, m)) => {
            let (tm, mm) = (median(&t), median(&m));
            let ratio = mm / tm;
            Row {
                id: "joins",
                what,
                tidings: format!("{tm:.2} s"),
                peer: format!("mosquitto {mm:.2} s"),
                ratio: Some(ratio),
                target: target.into(),
                verdict: at_least(ratio, 1.0),
                notes: format!(
                    "ratio = peer's time ÷ tidings' (more is better). {reps} repetitions each, \
                     alternated, fresh server each; the load generator's idle clients (one \
                     thread, 64 handshakes in flight) from the first connect until the last \
                     `welcome` (MQTT: CONNACK). Every tidings client is in the default room, so \
                     each welcome lists everyone present and everyone hears of each join: \
                     `tidings serve` tells joins in batches, at most one write per client per \
                     100 ms (`--presence-ms`); the time stops at the last welcome, so the last \
                     batch of news (at most one interval's joins, told after it) is not in it. \
                     Seconds tidings {}, mosquitto {}; server CPU seconds tidings {}, mosquitto \
                     {}.",
                    list(&t, 2),
                    list(&m, 2),
                    list(&tidings_cpu, 2),
                    list(&peer_cpu, 2)
                ),
            }
        }
        Err(e) => Row::not_measured("joins", &what, target, e),
    }
}

/// The idle load on the load core: `clients` clients of `proto` on `port` with 10 s
/// heartbeats, all in within `limit`, held `hold_ms` once they are; its output piped.
fn idle_load(
    ctx: &Ctx,
    proto: Proto,
    port: u16,
    (clients, limit): (usize, Duration),
    hold_ms: u64,
) -> std::process::Command {
    let mut cmd = procs::pinned(LOAD_CPU, &ctx.me);
    cmd.args(["load", "idle"])
        .arg(format!("proto={}", proto.name()))
        .arg(format!("addr=127.0.0.1:{port}"))
        .arg(format!("limit_ms={}", limit.as_millis()))
        .arg(format!("clients={clients}"))
        .arg("heartbeat_ms=10000")
        .arg(format!("hold_ms={hold_ms}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// One run of the `joins` row: seconds until every client was welcomed, and the server's
/// CPU seconds meanwhile.
fn joins_once(ctx: &Ctx, proto: Proto, clients: usize) -> Result<(f64, f64), String> {
    let server = servers::start(ctx, proto, None)?;
    let limit = Duration::from_secs(180);
    let cmd = idle_load(ctx, proto, server.port, (clients, limit), 0);
    let cpu_before = procs::stat(server.guard.pid())?.cpu_secs;
    let began = Instant::now();
    let mut load = Guard::spawn(cmd, "the joins load")?;
    let out = load.stdout().ok_or("no stdout")?;
    procs::wait_line(out, "ready", limit)
        .map_err(|e| format!("{}: the clients did not all join: {e}", proto.name()))?;
    let secs = began.elapsed().as_secs_f64();
    let cpu = procs::stat(server.guard.pid())?.cpu_secs - cpu_before;
    load.expect_success(Duration::from_secs(30))?;
    Ok((secs, cpu))
}

fn idle_once(
    ctx: &Ctx,
    proto: Proto,
    clients: usize,
    seconds: &mut Vec<f64>,
) -> Result<f64, String> {
    idle_once_on(ctx, proto, clients, seconds, false)
}

fn idle_once_on(
    ctx: &Ctx,
    proto: Proto,
    clients: usize,
    seconds: &mut Vec<f64>,
    tls: bool,
) -> Result<f64, String> {
    let began = Instant::now();
    let (server, ca) = if tls {
        let (server, ca) = servers::tidings_tls(ctx)?;
        (server, Some(ca))
    } else {
        (servers::start(ctx, proto, None)?, None)
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = procs::rss_kib(server.guard.pid())?;
    let limit = Duration::from_secs(180);
    let mut cmd = idle_load(ctx, proto, server.port, (clients, limit), 12_000);
    cmd.args(ca.map(|ca| format!("tls_ca={}", ca.display())));
    let mut load = Guard::spawn(cmd, "the idle load")?;
    let out = load.stdout().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(limit)
        .map_err(|_| format!("{}: the idle clients did not all connect", proto.name()))?;
    if !ready.starts_with("ready") {
        return Err(format!(
            "{}: unexpected load output {ready:?}",
            proto.name()
        ));
    }
    // Long enough for every connection to exchange heartbeats once.
    std::thread::sleep(Duration::from_millis(11_000));
    let after = procs::rss_kib(server.guard.pid())?;
    let done = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("{}: the idle load did not finish", proto.name()))?;
    let alive = fields(&done).get("alive").copied().unwrap_or(0.0) as usize;
    load.expect_success(Duration::from_secs(10))?;
    drop(server);
    if alive != clients {
        return Err(format!(
            "{}: only {alive} of {clients} connections survived",
            proto.name()
        ));
    }
    seconds.push(began.elapsed().as_secs_f64());
    Ok(after.saturating_sub(before) as f64 / clients as f64)
}
