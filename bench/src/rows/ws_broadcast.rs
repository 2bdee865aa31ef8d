//! Row 7: WebSocket chat broadcast. 100 plain WebSocket chat clients (tidings' legacy
//! mode: no subprotocol, text lines in, `{"src","dst","msg"}` JSON lines out) each
//! broadcast 64-byte lines to all others, through `tidings serve` (its WebSocket door at
//! `/ws`) and through a tokio-tungstenite broadcast server doing the same job
//! ([`super::ws_server`]). Same load-generator clients for both: the lean WebSocket client in
//! `load/ws_fanout.rs`, cheap enough that the servers are what is measured.

use super::servers::{self, Ctx, Running};
use crate::procs::{self, Guard, SERVER_CPU};
use crate::stats::{alternate, list, median};
use crate::table::{at_least, Row};

/// Row `ws-broadcast`.
pub fn row(ctx: &Ctx) -> Row {
    broadcast(ctx, false)
}

/// Row `ws-broadcast-tls`: the same over TLS (`wss://`), both servers with rustls and ring.
pub fn row_tls(ctx: &Ctx) -> Row {
    broadcast(ctx, true)
}

fn broadcast(ctx: &Ctx, tls: bool) -> Row {
    let id = if tls {
        "ws-broadcast-tls"
    } else {
        "ws-broadcast"
    };
    let what = if tls {
        "WebSocket chat broadcast over TLS (wss://), 100 clients, 64 B lines to all (deliveries/s)"
    } else {
        "WebSocket chat broadcast, 100 clients, 64 B lines to all (deliveries/s)"
    };
    // Issue #5/#7: a fifth above the tokio-tungstenite server.
    let target = "≥ 1.2×";
    let clients = 100;
    let messages = if ctx.quick { 50 } else { 200 };
    // Nine, not five: one run takes under half a second, and on a shared machine five left
    // the median swinging by a tenth between full runs.
    let reps = if ctx.quick { 3 } else { 9 };
    let run = |ours: bool| -> Result<f64, String> {
        let (server, ca) = match (ours, tls) {
            (true, false) => (servers::tidings(ctx, None)?, None),
            (true, true) => {
                let (server, ca) = servers::tidings_tls(ctx)?;
                (server, Some(ca))
            }
            (false, _) => tungstenite_server(ctx, tls)?,
        };
        let name = if ours { "tidings" } else { "tungstenite" };
        let tls_ca = ca.map(|ca| format!("tls_ca={}", ca.display()));
        servers::fanout_rate(
            ctx,
            "ws-fanout",
            name,
            server.port,
            (clients, messages),
            tls_ca.as_slice(),
        )
    };
    match alternate(reps, |_| run(true), |_| run(false)) {
        Ok((t, p)) => {
            let (tm, pm) = (median(&t), median(&p));
            let ratio = tm / pm;
            Row {
                id,
                what: what.into(),
                tidings: format!("{:.2} M/s", tm / 1e6),
                peer: format!("tokio-tungstenite server {:.2} M/s", pm / 1e6),
                ratio: Some(ratio),
                target: target.into(),
                verdict: at_least(ratio, 1.2),
                notes: format!(
                    "{reps} repetitions each, alternated, fresh server each; {clients} clients × \
                     {messages} lines (every line distinct), each client at most 8 rounds ahead of what \
                     it received. tidings: `tidings serve`, WebSocket door, legacy mode: the \
                     hub encodes each line once as a native `text` and copies it to every \
                     recipient, the first recipient's gateway renders it as JSON and the others \
                     reuse that rendering (`RenderCache`). Peer: tokio-tungstenite 0.26 on a \
                     current-thread runtime (one core, like tidings), one unbounded channel and \
                     writer task per client, the JSON line built once per message and shared \
                     (`Utf8Bytes`, reference-counted) among recipients.{} tidings M/s {}, peer M/s {}.",
                    if tls {
                        " Over TLS 1.3 (ring) on both: tidings' own glue, the peer tokio-rustls."
                    } else {
                        ""
                    },
                    list(&t.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 3),
                    list(&p.iter().map(|v| v / 1e6).collect::<Vec<_>>(), 3)
                ),
            }
        }
        Err(e) => Row::not_measured(id, what, target, e),
    }
}

/// The tokio-tungstenite server, with TLS (tokio-rustls) if `tls`: and then the CA file.
fn tungstenite_server(
    ctx: &Ctx,
    tls: bool,
) -> Result<(Running, Option<std::path::PathBuf>), String> {
    let port = procs::free_port()?;
    let mut cmd = procs::pinned(SERVER_CPU, &ctx.me);
    cmd.args(["ws-server", &port.to_string()]);
    let ca = if tls {
        let dir = servers::certificate(ctx)?;
        cmd.arg(dir.join("cert.pem")).arg(dir.join("key.pem"));
        Some(dir.join("ca.pem"))
    } else {
        None
    };
    let guard = Guard::spawn(cmd, "the tokio-tungstenite server")?;
    servers::wait_listen(port)?;
    Ok((Running { guard, port }, ca))
}
