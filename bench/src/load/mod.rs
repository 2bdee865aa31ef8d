//! The load generator: the bench binary started again as `tidings-bench load KIND key=value…`
//! in its own process, pinned to its own core, so that it never shares a process (or a core)
//! with the server it measures. Both sides of a row run this same code; only the protocol
//! differs. It prints one `result …` line (or `ready`/`done` lines for idle connections).

mod fanout;
mod idle;
mod latency;
pub mod proto;
mod ws_fanout;

use std::collections::HashMap;
use std::time::Duration;

use proto::Proto;

/// Key/value arguments of a load run.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {a:?}"))?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Args(map))
    }

    fn str(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("missing {key}="))
    }

    fn num(&self, key: &str) -> Result<u64, String> {
        self.str(key)?.parse().map_err(|e| format!("{key}: {e}"))
    }

    fn ms(&self, key: &str) -> Result<Duration, String> {
        Ok(Duration::from_millis(self.num(key)?))
    }
}

/// Runs `load KIND key=value…`; `args` starts at KIND.
pub fn main(args: &[String]) -> Result<(), String> {
    let kind = args.first().ok_or("load: which kind?")?;
    let a = Args::parse(&args[1..])?;
    let addr = a.str("addr")?.to_string();
    let limit = a.ms("limit_ms")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The shape of a fan-out: how many clients, broadcasts each, rounds ahead at most.
    let fanout_shape = || -> Result<(usize, usize, usize), String> {
        let n = |key| a.num(key).map(|v| v as usize);
        Ok((n("clients")?, n("messages")?, n("window")?))
    };
    if kind == "ws-fanout" {
        let (clients, messages, window) = fanout_shape()?;
        // `tls_ca=FILE`: every client over TLS (wss://), trusting that CA.
        let tls = match a.0.get("tls_ca") {
            Some(ca) => Some(proto::tls_connector(ca, b"http/1.1")?),
            None => None,
        };
        rt.block_on(ws_fanout::run(
            &addr,
            (clients, messages, window),
            tls,
            limit,
        ))?
        .print();
        return Ok(());
    }
    let proto = Proto::parse(a.str("proto")?)?;
    match kind.as_str() {
        "fanout" => {
            // `room=NAME`: the clients talk in that room (topic, subject); `busy=R,N`: R other
            // rooms of N clients each chat at full speed meanwhile.
            let busy = match a.0.get("busy") {
                Some(spec) => {
                    let (r, n) = spec.split_once(',').ok_or("busy=ROOMS,CLIENTS")?;
                    let num = |s: &str| s.parse::<usize>().map_err(|e| format!("busy: {e}"));
                    (num(r)?, num(n)?)
                }
                None => (0, 0),
            };
            let rooms = fanout::Rooms {
                room: a.0.get("room").cloned(),
                busy,
            };
            rt.block_on(fanout::run(proto, &addr, fanout_shape()?, rooms, limit))?
                .print();
        }
        "latency" => {
            let o = rt.block_on(latency::run(
                proto,
                &addr,
                a.num("clients")? as usize,
                a.num("rate")?,
                a.ms("duration_ms")?,
                a.ms("warmup_ms")?,
                limit,
            ))?;
            println!(
                "result p50_us={:.1} p99_us={:.1} max_us={:.1} measured={} scheduled={}",
                o.p50_us, o.p99_us, o.max_us, o.measured, o.scheduled
            );
        }
        "idle" => {
            // `tls_ca=FILE`: every client over TLS, trusting that CA.
            let tls = match a.0.get("tls_ca") {
                Some(ca) => Some(proto::tls_connector(ca, b"tidings/1")?),
                None => None,
            };
            rt.block_on(idle::run(
                proto,
                &addr,
                a.num("clients")? as usize,
                (a.ms("heartbeat_ms")?, a.ms("hold_ms")?),
                tls,
                limit,
            ))?
        }
        other => return Err(format!("unknown load kind {other:?}")),
    }
    Ok(())
}

/// The `key=value` fields of a `result …` line.
pub fn fields(line: &str) -> HashMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}
