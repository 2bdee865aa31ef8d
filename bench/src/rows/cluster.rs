//! Row `cluster-fanout` (issue: clustering): the chat fan-out of row `fanout` through two
//! `tidings serve --cluster` nodes joined by nats-server, against one node alone, per CPU
//! second of the tidings servers; and what the broker costs per line it carries.
//!
//! One node: `tidings serve` on CPU 0, 100 clients. Two nodes: both nodes and nats-server
//! (JetStream on, for the name claims) on CPU 0, 50 clients on each node. The load generator
//! (the same for both) on CPU 1. Each client broadcasts to everyone; across the cluster a
//! line is delivered to the sender's node's 49 others directly and crosses NATS once to the
//! other node's 50. The figure is deliveries per second of tidings CPU (both nodes' CPU
//! added): a cluster that cost nothing would match one node.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::servers::{self, wait_listen, Ctx, Running};
use crate::procs::{self, Guard, SERVER_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row};

const ID: &str = "cluster-fanout";
const WHAT: &str = "chat fan-out, 100 clients, through 2 cluster nodes and NATS vs 1 node \
                    (deliveries per tidings CPU second)";
const TARGET: &str = "≥ 0.7×";

/// The nats-server that `nats/install-server` installs (JetStream KV as the cluster's
/// client expects; Debian's 2.9 answers it in an older form).
fn nats_js_binary() -> Result<PathBuf, String> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nats/.venv/bin/nats-server");
    if bin.exists() {
        Ok(bin)
    } else {
        Err("nats/.venv/bin/nats-server is missing: run bench/install-peers".into())
    }
}

/// nats-server with JetStream, pinned to the server core, its store in the scratch folder.
fn nats_js(ctx: &Ctx) -> Result<Running, String> {
    let port = procs::free_port()?;
    let store = ctx.tmp.join(format!("jetstream-{port}"));
    let mut cmd = procs::pinned(SERVER_CPU, nats_js_binary()?);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stderr(Stdio::null())
        .stdout(Stdio::null());
    let guard = Guard::spawn(cmd, "nats-server -js")?;
    wait_listen(port)?;
    Ok(Running { guard, port })
}

/// `tidings serve --cluster` pinned to the server core.
fn node(ctx: &Ctx, nats_port: u16, name: &str) -> Result<Running, String> {
    let port = procs::free_port()?;
    let mut cmd = procs::pinned(SERVER_CPU, &ctx.tidings);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    cmd.args(["--max-per-address", "0"]);
    cmd.args(["--cluster", &format!("nats://127.0.0.1:{nats_port}")]);
    cmd.args(["--node", name]);
    cmd.stdout(Stdio::null());
    let guard = Guard::spawn(cmd, "tidings serve --cluster")?;
    wait_listen(port)?;
    Ok(Running { guard, port })
}

fn cpu(r: &Running) -> Result<f64, String> {
    Ok(procs::stat(r.guard.pid())?.cpu_secs)
}

/// One node alone: (deliveries per tidings CPU second, deliveries per wall second).
fn one(ctx: &Ctx, shape: (usize, usize)) -> Result<(f64, f64), String> {
    let server = servers::tidings(ctx, None)?;
    let before = cpu(&server)?;
    let addr = format!("127.0.0.1:{}", server.port);
    let (delivered, secs) = servers::fanout_across(ctx, &addr, shape)?;
    let used = cpu(&server)? - before;
    Ok((delivered / used, delivered / secs))
}

/// Two nodes and NATS: (deliveries per tidings CPU second, deliveries per wall second, NATS
/// CPU microseconds per line it carried).
fn two(ctx: &Ctx, shape: (usize, usize)) -> Result<(f64, f64, f64), String> {
    let nats = nats_js(ctx)?;
    let a = node(ctx, nats.port, "a")?;
    let b = node(ctx, nats.port, "b")?;
    // The nodes hear each other (hello, rosters) before the clients come.
    std::thread::sleep(Duration::from_millis(500));
    let before = [cpu(&a)?, cpu(&b)?, cpu(&nats)?];
    let addrs = format!("127.0.0.1:{},127.0.0.1:{}", a.port, b.port);
    let (delivered, secs) = servers::fanout_across(ctx, &addrs, shape)?;
    let used = cpu(&a)? - before[0] + cpu(&b)? - before[1];
    let broker = cpu(&nats)? - before[2];
    // Every broadcast crosses NATS once (to the other node).
    let lines = (shape.0 * shape.1) as f64;
    Ok((delivered / used, delivered / secs, broker / lines * 1e6))
}

pub fn row(ctx: &Ctx) -> Row {
    let clients = 100;
    let messages = if ctx.quick { 40 } else { 500 };
    let reps = if ctx.quick { 3 } else { 5 };
    let shape = (clients, messages);
    let broker = std::cell::RefCell::new(Vec::new());
    let walls = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let result = alternate(
        reps,
        |_| {
            let (per_cpu, wall, nats_us) = two(ctx, shape)?;
            broker.borrow_mut().push(nats_us);
            walls.borrow_mut().0.push(wall);
            Ok(per_cpu)
        },
        |_| {
            let (per_cpu, wall) = one(ctx, shape)?;
            walls.borrow_mut().1.push(wall);
            Ok(per_cpu)
        },
    );
    let broker = broker.into_inner();
    let (wall_two, wall_one) = walls.into_inner();
    result
        .map(|(t, o)| {
            let (tm, om) = (median(&t), median(&o));
            let ratio = tm / om;
            Row {
                id: ID,
                what: WHAT.into(),
                tidings: format!("{:.2} M/CPU-s", tm / 1e6),
                peer: format!("1 node {:.2} M/CPU-s", om / 1e6),
                ratio: Some(ratio),
                target: TARGET.into(),
                verdict: at_least(ratio, 0.7),
                notes: format!(
                    "{reps} repetitions each, alternated, fresh servers each; {clients} clients \
                     × {messages} broadcasts, each client at most 8 rounds ahead of what it \
                     received. Two nodes: 50 clients on each, both nodes and nats-server -js \
                     on CPU 0 (the load generator on CPU 1); one node: tidings serve on CPU 0. \
                     Deliveries per second of tidings CPU (utime + stime of the server \
                     processes over the run, both nodes added), two nodes {} M, one node {} M. \
                     Wall-clock deliveries per second (all three servers share one core, so \
                     this is not the cluster's capacity) two nodes {} M, one node {} M. \
                     nats-server CPU per line it carried (µs): {}.",
                    list(&t.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2),
                    list(&o.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2),
                    list(&wall_two.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2),
                    list(&wall_one.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 2),
                    list(&broker, 2),
                ),
            }
        })
        .unwrap_or_else(|e| Row::not_measured(ID, WHAT, TARGET, e))
}
