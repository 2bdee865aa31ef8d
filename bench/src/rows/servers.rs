//! Starting the servers under test and the load generator, the same way for every row.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::load::proto::Proto;
use crate::procs::{self, Guard, LOAD_CPU, SERVER_CPU};

/// What every row needs: the programs and a scratch folder.
pub struct Ctx {
    /// The release `tidings` binary.
    pub tidings: PathBuf,
    /// This benchmark's executable (the load generator).
    pub me: PathBuf,
    /// Scratch space, removed at the end.
    pub tmp: PathBuf,
    /// Smaller sizes and fewer repetitions, for development.
    pub quick: bool,
}

/// A running server on 127.0.0.1:`port`.
pub struct Running {
    /// The process (dropped: killed).
    pub guard: Guard,
    /// Its port.
    pub port: u16,
}

/// `tidings serve` pinned to the server core, with heartbeats every `heartbeat_ms`.
pub fn tidings(ctx: &Ctx, heartbeat_ms: Option<u64>) -> Result<Running, String> {
    let port = procs::free_port()?;
    let mut cmd = procs::pinned(SERVER_CPU, &ctx.tidings);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    // Every load client comes from 127.0.0.1: lift the per-address cap (default 256).
    cmd.args(["--max-per-address", "0"]);
    if let Some(ms) = heartbeat_ms {
        cmd.args(["--heartbeat-ms", &ms.to_string()]);
        cmd.args(["--timeout-ms", &(3 * ms).to_string()]);
    }
    let guard = Guard::spawn(cmd, "tidings serve")?;
    wait_listen(port)?;
    Ok(Running { guard, port })
}

/// `tidings serve` with TLS, pinned to the server core, and the CA file that trusts it (a
/// certificate for `localhost` from `tidings cert`, made once per run in the scratch folder).
pub fn tidings_tls(ctx: &Ctx) -> Result<(Running, PathBuf), String> {
    let dir = certificate(ctx)?;
    let port = procs::free_port()?;
    let mut cmd = procs::pinned(SERVER_CPU, &ctx.tidings);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    cmd.args(["--max-per-address", "0"]);
    cmd.arg("--tls-cert").arg(dir.join("cert.pem"));
    cmd.arg("--tls-key").arg(dir.join("key.pem"));
    let guard = Guard::spawn(cmd, "tidings serve with TLS")?;
    wait_listen(port)?;
    Ok((Running { guard, port }, dir.join("ca.pem")))
}

/// The folder with `ca.pem`, `cert.pem` and `key.pem` for `localhost` (from `tidings cert`,
/// made once per run in the scratch folder).
pub fn certificate(ctx: &Ctx) -> Result<PathBuf, String> {
    let dir = ctx.tmp.join("tls");
    if !dir.join("ca.pem").exists() {
        let status = std::process::Command::new(&ctx.tidings)
            .args(["cert", "--name", "localhost", "--out"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run tidings cert: {e}"))?;
        if !status.success() {
            return Err("tidings cert failed".into());
        }
    }
    Ok(dir)
}

/// mosquitto pinned to the server core, on its own configuration: loopback only, no
/// persistence, no logging, no connection limit, TCP_NODELAY like tidings, and no cap on a
/// client's outgoing queue (by default mosquitto silently drops QoS 0 messages beyond 1000
/// queued for one client, which would count as fewer deliveries rather than less speed).
pub fn mosquitto(ctx: &Ctx) -> Result<Running, String> {
    let port = procs::free_port()?;
    let conf = ctx.tmp.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n\
             persistence false\nlog_dest none\nset_tcp_nodelay true\nuser root\n\
             max_queued_messages 0\n"
        ),
    )
    .map_err(|e| format!("cannot write the mosquitto configuration: {e}"))?;
    let mut cmd = procs::pinned(SERVER_CPU, "mosquitto");
    cmd.arg("-c").arg(&conf);
    let guard = Guard::spawn(cmd, "mosquitto")?;
    wait_listen(port)?;
    Ok(Running { guard, port })
}

/// nats-server pinned to the server core (Go sizes GOMAXPROCS by the affinity mask, so it
/// runs one worker, as the others), loopback only, no log. Its defaults otherwise: TCP_NODELAY
/// (Go's), a slow consumer is cut at 64 MiB pending (the fan-out window keeps every client
/// far below).
pub fn nats(ctx: &Ctx) -> Result<Running, String> {
    let port = procs::free_port()?;
    let conf = ctx.tmp.join(format!("nats-{port}.conf"));
    std::fs::write(
        &conf,
        format!("listen: \"127.0.0.1:{port}\"\nmax_connections: 100000\nlogtime: false\n"),
    )
    .map_err(|e| format!("cannot write the nats-server configuration: {e}"))?;
    let mut cmd = procs::pinned(SERVER_CPU, "nats-server");
    cmd.arg("-c").arg(&conf).stderr(Stdio::null());
    let guard = Guard::spawn(cmd, "nats-server")?;
    wait_listen(port)?;
    Ok(Running { guard, port })
}

/// The server of `proto`.
pub fn start(ctx: &Ctx, proto: Proto, heartbeat_ms: Option<u64>) -> Result<Running, String> {
    match proto {
        Proto::Tidings => tidings(ctx, heartbeat_ms),
        Proto::Mqtt => mosquitto(ctx),
        Proto::Nats => nats(ctx),
    }
}

/// Waits until `port` is in LISTEN state, without connecting to it (a probe connection
/// would be taken by one-shot servers such as a socat relay).
pub fn wait_listen(port: u16) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if tcp_state(port, "0A") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("nothing listens on port {port} after 10 s"))
}

/// Waits until a connection to `port` is established.
pub fn wait_established(port: u16) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if tcp_state(port, "01") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("no connection to port {port} after 10 s"))
}

/// Whether /proc/net/tcp has a socket with local port `port` in `state` (hex, as there).
fn tcp_state(port: u16, state: &str) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && f[3] == state
    })
}

/// Runs the load generator `load KIND proto=… addr=… args…` pinned to the load core and
/// returns its `result` line.
pub fn load(
    ctx: &Ctx,
    kind: &str,
    proto: Proto,
    port: u16,
    args: &[String],
    limit: Duration,
) -> Result<String, String> {
    load_named(ctx, kind, proto.name(), port, args, limit)
}

/// Runs the fan-out load `kind` (`fanout`, `ws-fanout`) against `server` on `port`:
/// `clients` clients each broadcast `messages` messages, each at most 8 rounds ahead of what
/// it received. Returns deliveries per second.
pub fn fanout_rate(
    ctx: &Ctx,
    kind: &str,
    server: &str,
    port: u16,
    (clients, messages): (usize, usize),
    extra: &[String],
) -> Result<f64, String> {
    let mut args = vec![
        format!("clients={clients}"),
        format!("messages={messages}"),
        "window=8".into(),
    ];
    args.extend_from_slice(extra);
    let addr = format!("127.0.0.1:{port}");
    let line = load_at(ctx, kind, server, &addr, &args, Duration::from_secs(120))?;
    let f = crate::load::fields(&line);
    Ok(f["delivered"] / (f["elapsed_ns"] / 1e9))
}

/// The fan-out load against several servers at once (`addrs`, comma-separated; clients take
/// them in turn): deliveries and seconds.
pub fn fanout_across(
    ctx: &Ctx,
    addrs: &str,
    (clients, messages): (usize, usize),
) -> Result<(f64, f64), String> {
    let args = [
        format!("clients={clients}"),
        format!("messages={messages}"),
        "window=8".into(),
    ];
    let line = load_at(
        ctx,
        "fanout",
        "tidings",
        addrs,
        &args,
        Duration::from_secs(120),
    )?;
    let f = crate::load::fields(&line);
    Ok((f["delivered"], f["elapsed_ns"] / 1e9))
}

/// [`load`] with the server named by `server` (passed as `proto=`).
pub fn load_named(
    ctx: &Ctx,
    kind: &str,
    server: &str,
    port: u16,
    args: &[String],
    limit: Duration,
) -> Result<String, String> {
    load_at(ctx, kind, server, &format!("127.0.0.1:{port}"), args, limit)
}

/// [`load_named`] against `addr` (several, comma-separated, for the fan-out load).
pub fn load_at(
    ctx: &Ctx,
    kind: &str,
    server: &str,
    addr: &str,
    args: &[String],
    limit: Duration,
) -> Result<String, String> {
    let mut cmd = procs::pinned(LOAD_CPU, &ctx.me);
    cmd.args(["load", kind])
        .arg(format!("proto={server}"))
        .arg(format!("addr={addr}"))
        .arg(format!("limit_ms={}", limit.as_millis()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard::spawn(cmd, &format!("the {kind} load against {server}"))?;
    let mut out = guard.stdout().ok_or("no stdout")?;
    let mut err = guard.stderr().ok_or("no stderr")?;
    let code = guard.wait_for(limit + Duration::from_secs(30))?;
    let mut text = String::new();
    let _ = out.read_to_string(&mut text);
    let mut etext = String::new();
    let _ = err.read_to_string(&mut etext);
    if code != 0 {
        return Err(format!(
            "load {kind} against {server} failed: {}",
            etext.trim()
        ));
    }
    text.lines()
        .find(|l| l.starts_with("result "))
        .map(str::to_string)
        .ok_or_else(|| format!("load {kind} printed no result: {text}"))
}

/// `path`'s SHA-256 as hex.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
