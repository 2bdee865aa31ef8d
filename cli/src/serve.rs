//! `tidings serve`: the server, with an operator console when standard input is a terminal.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use serde_json::json;
use tidings_smol::{
    Error, FileHandle, HubConfig, HubConfigError, RoomConfig, RoomCreation, Server, ServerConfig,
    ServerEvent, ServerHandle, WebAsset, WebConfig, WS_PATH,
};

use crate::exit::{io_reason, CliError};
use crate::out::Out;
use crate::safe::{inline, text as message, List};
use crate::send::{gather, report_dropped, report_skipped, Item, Outbox};
use crate::ServeArgs;

/// The browser client, built into the binary and served at `/` (see `cli/web/`).
const WEB_PAGE: &[WebAsset] = &[
    WebAsset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../web/index.html"),
    },
    WebAsset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/app.js"),
    },
    WebAsset {
        path: "/sha256.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/sha256.js"),
    },
    // The service worker that streams received files to disk (scope `/`, its own path's
    // directory, so no Service-Worker-Allowed header is needed).
    WebAsset {
        path: "/sw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/sw.js"),
    },
    WebAsset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/style.css"),
    },
];

/// Descriptors kept free for the listener, the inbox's files, logs and the like when the
/// connection limit follows the descriptor limit.
const DESCRIPTOR_RESERVE: usize = 64;

/// The soft limit on open file descriptors (Linux: `/proc/self/limits`), if known.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files            1024                 1048576              files"
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// " (N more[ what] since the last report)" for a report that stands for `unreported`
/// others; nothing when there are none.
fn more_since(unreported: u64, what: &str) -> String {
    if unreported > 0 {
        format!(" ({unreported} more{what} since the last report)")
    } else {
        String::new()
    }
}

/// A node name for a server started without `--node`: the host's name and the port, made
/// to follow the rules of names (letters, digits, `-`; at most 32 characters).
fn default_node_name(listen: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let port = listen.rsplit(':').next().unwrap_or("");
    let raw = format!("{}-{port}", host.trim());
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    let name = if name.is_empty() { "node" } else { name };
    name.chars()
        .rev()
        .take(32)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// How long the event printer lets a burst of events gather before it wakes again.
const PRINT_GATHER: Duration = Duration::from_millis(20);

pub async fn run(args: ServeArgs, out: &mut Out) -> Result<(), CliError> {
    let mut hub = HubConfig {
        server_name: args.name.clone(),
        message_rate: args.message_rate,
        message_burst: args.message_burst.max(1),
        rate_limit_grace: Duration::from_millis(args.rate_limit_grace_ms),
        relay_budget: args.relay_budget_mib.saturating_mul(1 << 20),
        chat_budget: args.chat_budget_mib.saturating_mul(1 << 20),
        presence_interval: Duration::from_millis(args.presence_ms),
        rooms: RoomConfig {
            default_room: args.default_room.clone(),
            open: args.rooms.clone(),
            creation: if args.only_listed_rooms {
                RoomCreation::Operator
            } else {
                RoomCreation::Anyone
            },
            max_rooms: args.max_rooms.max(1),
            max_rooms_per_peer: args.max_rooms_per_user.max(1),
            max_members: args.max_room_members.max(1),
        },
        ..HubConfig::default()
    };
    if args.cluster.is_some() {
        let node = match &args.node {
            Some(node) => node.clone(),
            None => default_node_name(&args.listen),
        };
        hub.cluster = Some(tidings_core::cluster::ClusterConfig {
            node,
            node_timeout: Duration::from_secs(args.node_timeout_secs.max(2)),
            ..Default::default()
        });
    }
    hub.session.heartbeat_interval = Duration::from_millis(args.heartbeat_ms);
    hub.session.heartbeat_timeout = Duration::from_millis(args.timeout_ms);
    // The hub would refuse to start with a server or room name that breaks the naming rules.
    hub.validate().map_err(|e| {
        let message = match e {
            HubConfigError::ServerName(e) => {
                format!("the server name {:?} cannot be used: {e}", args.name)
            }
            HubConfigError::NodeName(e) => {
                format!(
                    "the node name {:?} cannot be used: {e}",
                    args.node.clone().unwrap_or_default()
                )
            }
            other => other.to_string(),
        };
        CliError::new(crate::exit::Exit::NameRefused, message)
    })?;
    let handshake_timeout = Duration::from_millis(args.handshake_timeout_ms);
    hub.session.handshake_timeout = handshake_timeout;
    hub.session.transfer.stall_timeout = Duration::from_millis(args.stall_timeout_ms);
    if let Some(dir) = &args.inbox {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::new(
                crate::exit::Exit::File,
                format!(
                    "cannot create the inbox {}: {}",
                    dir.display(),
                    crate::exit::io_reason(&e)
                ),
            )
        })?;
    }
    let max_connections = args.max_connections.unwrap_or_else(|| {
        let default = ServerConfig::default().max_connections;
        // Past the descriptor limit new connections would wait unanswered in the kernel's
        // backlog; below it they are refused with a reason. 64 are left for everything else.
        match descriptor_limit() {
            Some(fds) if fds.saturating_sub(DESCRIPTOR_RESERVE) < default => {
                let max = fds.saturating_sub(DESCRIPTOR_RESERVE).max(1);
                tracing::info!(fds, max, "connection limit lowered to the descriptor limit");
                max
            }
            _ => default,
        }
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::server_config(cert, key)?;
            crate::tls::watch(tls.clone(), cert.clone(), key.clone());
            Some(tls)
        }
        // (clap requires both or neither on the command line; a config file may give one.)
        (None, None) => None,
        _ => {
            return Err(CliError::new(
                crate::exit::Exit::Usage,
                "TLS needs both tls_cert and tls_key",
            ))
        }
    };
    let scheme = if tls.is_some() { "s" } else { "" };
    let accounts = match &args.accounts {
        Some(path) => {
            let accounts = crate::user::load(path, false)?;
            tracing::info!(users = accounts.len(), guests = args.guests, "accounts");
            Some(tidings_host::accounts::Policy {
                accounts: std::sync::Arc::new(accounts),
                guests: args.guests,
                token_lifetime: Duration::from_secs(args.token_lifetime_secs.max(1)),
                backoff: tidings_host::accounts::BackoffLimits {
                    free: args.login_free_failures,
                    max: Duration::from_secs(args.login_backoff_max_secs.max(1)),
                    ..Default::default()
                },
            })
        }
        None => None,
    };
    let config = ServerConfig {
        accounts,
        hub,
        inbox: args.inbox.clone(),
        max_connections,
        max_per_address: args.max_per_address,
        max_handshaking: args.max_handshaking,
        allow_plaintext: args.allow_plaintext,
        tls,
    };
    let doors = WebConfig {
        page: if args.no_web {
            Vec::new()
        } else {
            WEB_PAGE.to_vec()
        },
        head_timeout: handshake_timeout,
        ..WebConfig::default()
    };
    let node = config.hub.cluster.as_ref().map(|c| c.node.clone());
    let mut cluster_driver = None;
    let mut server = Server::bind(args.listen.as_str(), config)
        .await
        .map_err(|e| CliError::from_runtime(e, &args.listen))?
        .with_web(doors);
    if let (Some(url), Some(node)) = (&args.cluster, &node) {
        let nats = tidings_nats::NatsConfig {
            claim_ttl: Duration::from_secs(args.claim_ttl_secs.max(3)),
            ca: args.cluster_ca.clone(),
            credentials: args.cluster_creds.clone(),
            ..tidings_nats::NatsConfig::new(url)
        };
        let (link, driving) = tidings_nats::connect(&nats, node)
            .map_err(|e| CliError::new(crate::exit::Exit::Unreachable, e.to_string()))?;
        cluster_driver = Some(driving);
        tracing::info!(%url, node, "cluster");
        out.event(
            "cluster",
            format_args!("node {node} of the cluster at {url}"),
            || json!({"url": url, "node": node}),
        );
        server = server.with_cluster(link);
    }
    let addr = server.local_addr();
    tracing::info!(%addr, inbox = ?args.inbox, "listening");
    let ws_url = format!("ws{scheme}://{addr}{WS_PATH}");
    let page_url = (!args.no_web).then(|| format!("http{scheme}://{addr}/"));
    let page_note = match &page_url {
        Some(url) => format!(", web page at {url}"),
        None => String::new(),
    };
    out.event(
        "listening",
        format_args!(
            "listening on {addr} ({native}, WebSocket at {ws_url}{page_note})",
            native = if scheme.is_empty() {
                "native".to_string()
            } else {
                format!("TLS: native at tls://{addr}")
            }
        ),
        || json!({"addr": addr.to_string(), "name": args.name, "ws": ws_url, "web": page_url, "tls": !scheme.is_empty()}),
    );
    let handle = server.handle();
    if let Some(path) = &args.accounts {
        crate::user::watch(handle.clone(), path.clone());
    }
    // The console's answers go through the printer, so --json covers them too.
    let (reply_tx, replies) = async_channel::unbounded();
    // The ends of the server's own transfers, for the console's `/send` to offer more.
    let (ended_tx, ended) = async_channel::unbounded();
    if args.console || std::io::stdin().is_terminal() {
        let console = handle.clone();
        let me = args.name.clone();
        let (jobs_tx, jobs) = async_channel::unbounded();
        smol::spawn(console_sender(
            handle.clone(),
            jobs,
            ended,
            reply_tx.clone(),
        ))
        .detach();
        std::thread::spawn(move || operator_console(console, me, reply_tx, jobs_tx));
    }
    let show = |out: &mut Out, ev: ServerEvent| {
        if let ServerEvent::Sent { handle, .. } | ServerEvent::TransferFailed { handle, .. } = &ev {
            // Nobody listens without a console.
            let _ = ended_tx.try_send(*handle);
        }
        show(out, ev);
    };
    let signals = handle.clone();
    smol::spawn(async move {
        use async_signal::{Signal, Signals};
        use futures_lite::StreamExt;
        if let Ok(mut s) = Signals::new([Signal::Int, Signal::Term]) {
            if s.next().await.is_some() {
                signals.shutdown("the server is shutting down").await;
            }
        }
    })
    .detach();
    let events = handle.events();
    // Under load the server reports an event per chat line: when the output is a pipe or a
    // file, lines are written in bursts, each once no further event is waiting.
    out.buffer_when_piped();
    let printer = async {
        loop {
            // The console's answers first: one is sent before the events it leads to (what
            // `/send` offers before its transfers), and under load events are always ready.
            let next = futures_lite::future::or(
                async {
                    match replies.recv().await {
                        Ok(reply) => Some(Err(reply)),
                        // No console (or it ended): only server events remain.
                        Err(_) => futures_lite::future::pending().await,
                    }
                },
                async { events.recv().await.ok().map(Ok) },
            )
            .await;
            match next {
                Some(Ok(ev)) => show(out, ev),
                Some(Err(reply)) => show_reply(out, reply),
                None => break,
            }
            while let Ok(reply) = replies.try_recv() {
                show_reply(out, reply);
            }
            // The server runs on a thread of its own, so each wake-up of this printer costs
            // the server a system call and its core a switch of threads. Under load (an event
            // per chat line) what came meanwhile is shown at once, and the next wake-up waits
            // for a burst to gather.
            let mut burst = false;
            while let Ok(ev) = events.try_recv() {
                show(out, ev);
                burst = true;
            }
            if replies.is_empty() {
                out.flush();
            }
            if burst {
                async_io::Timer::after(PRINT_GATHER).await;
            }
        }
    };
    // Both to the end: the printer ends when the server's events end, which can be just
    // before the server's result arrives (it runs on a thread of its own).
    let ((), result) = futures_lite::future::zip(printer, server.run()).await;
    // What happened during the shutdown (everyone leaving) is still shown.
    while let Ok(ev) = events.try_recv() {
        show(out, ev);
    }
    // The cluster's driver sends the node's goodbye and releases its names before we exit.
    if let Some(driving) = cluster_driver {
        driving.finish();
    }
    out.event("stopped", "stopped", || json!({}));
    out.unbuffer();
    result.map_err(|e| CliError::from_runtime(e, &args.listen))
}

fn show(out: &mut Out, ev: ServerEvent) {
    match ev {
        ServerEvent::Joined { name, online } => {
            tracing::info!(name = %inline(&name), online, "joined");
            out.event(
                "joined",
                format_args!("{} joined ({online} online)", inline(&name)),
                || json!({"name": name, "online": online}),
            )
        }
        ServerEvent::Left {
            name,
            reason,
            online,
        } => {
            tracing::info!(name = %inline(&name), reason = %inline(&reason), online, "left");
            out.event(
                "left",
                format_args!(
                    "{} left: {} ({online} online)",
                    inline(&name),
                    message(&reason)
                ),
                || json!({"name": name, "reason": reason, "online": online}),
            )
        }
        ServerEvent::ConnectionRefused {
            addr,
            limit,
            unreported,
        } => {
            // At most one a second (the host counts the rest), so a flood cannot flood this.
            tracing::warn!(%addr, %limit, unreported, "connection refused");
            let more = more_since(unreported, " refused");
            out.event(
                "connection-refused",
                format_args!("refused a connection from {addr}: {limit}{more}"),
                || {
                    json!({"addr": addr.to_string(), "reason": limit.reason(),
                       "limit": format!("{limit:?}").to_lowercase(), "unreported": unreported})
                },
            )
        }
        ServerEvent::TlsFailed {
            addr,
            reason,
            unreported,
        } => {
            // At most one a second, like refusals; the reason comes from our TLS glue or a
            // peer's alert, but is shown safe all the same.
            tracing::info!(%addr, reason = %inline(&reason), unreported, "TLS failed");
            let more = more_since(unreported, "");
            out.event(
                "tls-failed",
                format_args!("TLS failed with {addr}: {}{more}", inline(&reason)),
                || json!({"addr": addr.to_string(), "reason": reason, "unreported": unreported}),
            )
        }
        ServerEvent::LoginRefused {
            name,
            addr,
            code,
            unreported,
        } => {
            // At most one a second, like refusals: password guessing cannot flood the log.
            let from = addr.map_or_else(|| "?".to_owned(), |a| a.to_string());
            tracing::info!(name = %inline(&name), addr = %from, code = code.name(), unreported, "login refused");
            let more = more_since(unreported, "");
            out.event(
                "login-refused",
                format_args!(
                    "refused the login of \"{}\" from {from}: {}{more}",
                    inline(&name),
                    code.name()
                ),
                || json!({"name": name, "addr": addr.map(|a| a.to_string()), "code": code.name(), "unreported": unreported}),
            )
        }
        ServerEvent::Node { node, up } => {
            let node = inline(&node);
            if up {
                tracing::info!(node = %node, "cluster node heard");
            } else {
                tracing::warn!(node = %node, "cluster node gone");
            }
            let what = if up {
                "is up"
            } else {
                "is gone (its users left)"
            };
            out.event(
                if up { "node-up" } else { "node-gone" },
                format_args!("cluster node {node} {what}"),
                || json!({"node": node.to_string(), "up": up}),
            )
        }
        ServerEvent::ClusterLink { up } => {
            if up {
                tracing::info!("cluster link back");
            } else {
                tracing::warn!("cluster link lost");
            }
            let text = if up {
                "linked to the cluster again"
            } else {
                "lost the link to the cluster: users on other servers are out of reach"
            };
            out.event("cluster-link", text, || json!({"up": up}))
        }
        ServerEvent::Refused { name, code } => {
            tracing::info!(name = %inline(&name), code = code.name(), "name refused");
            out.event(
                "refused",
                format_args!("refused \"{}\": {}", inline(&name), code.name()),
                || json!({"name": name, "code": code.name()}),
            )
        }
        ServerEvent::Text {
            from,
            private,
            text,
        } => out.event(
            "text",
            format_args!(
                "{}{}: {}",
                inline(&from),
                if private { " (private)" } else { "" },
                message(&text)
            ),
            || json!({"from": from, "private": private, "text": text}),
        ),
        ServerEvent::Started {
            handle,
            direction,
            peer,
            name,
            size: len,
            offset,
        } => {
            out.bar_start(bar_key(handle), &name, len, offset);
            out.event(
                "started",
                crate::view::StartedLine {
                    direction,
                    name: &name,
                    size: len,
                    offset,
                    peer: &peer,
                },
                || {
                    json!({"conn": handle.conn, "id": handle.id, "peer": peer, "name": name,
                       "size": len, "offset": offset,
                       "direction": crate::view::dir(direction)})
                },
            )
        }
        ServerEvent::Progress {
            handle, progress, ..
        } => {
            if out.is_json() {
                out.event("progress", "", || {
                    json!({"conn": handle.conn, "id": handle.id, "done": progress.done,
                           "total": progress.total, "bytes_per_sec": progress.bytes_per_sec})
                });
            } else {
                out.bar_progress(bar_key(handle), progress.done, progress.total, 0);
            }
        }
        ServerEvent::Received { handle, peer, path } => {
            out.bar_end(bar_key(handle));
            out.event(
                "received",
                format_args!(
                    "received {} from {}",
                    inline(&path.to_string_lossy()),
                    inline(&peer)
                ),
                || json!({"conn": handle.conn, "id": handle.id, "peer": peer, "path": path}),
            )
        }
        ServerEvent::Sent { handle, peer } => {
            out.bar_end(bar_key(handle));
            out.event(
                "sent",
                format_args!("transfer {} to {} arrived", handle.id, inline(&peer)),
                || json!({"conn": handle.conn, "id": handle.id, "peer": peer}),
            )
        }
        ServerEvent::TransferFailed {
            handle,
            peer,
            code,
            reason,
        } => {
            out.bar_end(bar_key(handle));
            out.event(
            "failed",
            format_args!(
                "transfer {} with {} failed ({}): {}",
                handle.id,
                inline(&peer),
                code.name(),
                message(&reason)
            ),
            || json!({"conn": handle.conn, "id": handle.id, "peer": peer, "code": code.name(), "reason": reason}),
            )
        }
    }
}

/// One progress bar per transfer of the server: ids are per connection, so both go in.
fn bar_key(h: tidings_smol::FileHandle) -> u64 {
    (h.conn << 40) ^ h.id
}

/// The console's answer to an operator command.
enum Reply {
    Peers(Vec<String>),
    /// Every room and its member count.
    Rooms(Vec<(String, u32)>),
    /// The other servers of the cluster and their users' count (`None`: no cluster).
    Nodes(Option<Vec<(String, usize)>>),
    /// One room's members.
    Members {
        room: String,
        names: Vec<String>,
    },
    /// A room command was carried out (`opened`, `closed`, `removed NAME from`).
    RoomDone {
        what: String,
        room: String,
    },
    Error(String),
    Help,
    /// The operator's own line, as the others see it (`from` is the server's name).
    Said {
        from: String,
        to: String,
        text: String,
    },
    Banned {
        name: String,
        duration: Duration,
    },
    Unbanned(String),
    /// What `/send` had for `to` and will not offer: `why` the first was refused.
    Dropped {
        to: String,
        dropped: usize,
        why: String,
    },
    /// `/send` queued these for `to` (links and special files in a folder are skipped).
    Offering {
        to: String,
        path: String,
        files: usize,
        folders: usize,
        skipped: Vec<PathBuf>,
    },
}

const CONSOLE_HELP: &str = "commands: TEXT (to the default room) | /msg NAME TEXT | /who | \
     /kick NAME [REASON] | /ban NAME DURATION [REASON] (kick, and refuse the name and its \
     look-alikes for DURATION: 90s, 10m, 2h, 1d) | /unban NAME | /send NAME PATH (a file or \
     folder) | /rooms | /room ROOM (its members) | /in ROOM TEXT | /open ROOM (kept while \
     empty) | /close ROOM (everyone in it is removed) | /remove ROOM NAME (and kept out) | \
     /nodes (the other servers of the cluster) | /quit";

fn show_reply(out: &mut Out, reply: Reply) {
    match reply {
        Reply::Peers(names) => out.event(
            "peers",
            format_args!("online ({}): {}", names.len(), List(&names)),
            || json!({"online": names}),
        ),
        Reply::Nodes(None) => out.event(
            "nodes",
            "this server is not part of a cluster (serve --cluster)",
            || json!({"cluster": false, "nodes": []}),
        ),
        Reply::Nodes(Some(nodes)) => {
            let shown: Vec<String> = nodes
                .iter()
                .map(|(n, users)| format!("{} ({users})", inline(n)))
                .collect();
            let json: Vec<_> = nodes
                .iter()
                .map(|(n, users)| json!({"node": n, "users": users}))
                .collect();
            out.event(
                "nodes",
                format_args!(
                    "other servers of the cluster ({}): {}",
                    nodes.len(),
                    List(&shown)
                ),
                || json!({"cluster": true, "nodes": json}),
            )
        }
        Reply::Rooms(rooms) => {
            let shown: Vec<String> = rooms.iter().map(|(r, n)| format!("#{r} ({n})")).collect();
            let json: Vec<_> = rooms
                .iter()
                .map(|(r, n)| json!({"room": r, "members": n}))
                .collect();
            out.event(
                "rooms",
                format_args!("rooms ({}): {}", rooms.len(), List(&shown)),
                || json!({"rooms": json}),
            )
        }
        Reply::Members { room, names } if names.is_empty() => out.event(
            "members",
            format_args!("#{}: nobody is in it", inline(&room)),
            || json!({"room": room, "members": names}),
        ),
        Reply::Members { room, names } => out.event(
            "members",
            format_args!("#{} ({}): {}", inline(&room), names.len(), List(&names)),
            || json!({"room": room, "members": names}),
        ),
        Reply::RoomDone { what, room } => out.event(
            "room",
            format_args!("{} #{}", inline(&what), inline(&room)),
            || json!({"done": what, "room": room}),
        ),
        Reply::Error(message) => out.event(
            "error",
            format_args!("error: {}", inline(&message)),
            || json!({"message": message}),
        ),
        Reply::Help => out.event("help", CONSOLE_HELP, || json!({"help": CONSOLE_HELP})),
        Reply::Said { from, to, text } => crate::view::said(out, &from, &to, &text),
        Reply::Banned { name, duration } => out.event(
            "banned",
            format_args!(
                "banned {} for {}",
                inline(&name),
                crate::out::duration(duration)
            ),
            || json!({"name": name, "seconds": duration.as_secs_f64()}),
        ),
        Reply::Dropped { to, dropped, why } => report_dropped(out, &to, dropped, &why),
        Reply::Offering {
            to,
            path,
            files,
            folders,
            skipped,
        } => {
            report_skipped(&skipped, out);
            crate::view::offering(out, &to, &path, files, folders);
        }
        Reply::Unbanned(name) => out.event(
            "unbanned",
            format_args!("unbanned {}", inline(&name)),
            || json!({"name": name}),
        ),
    }
}

/// What the console's `/send` found: who gets it, and every file and empty folder.
struct Job {
    to: String,
    path: String,
    items: Vec<Item>,
    skipped: Vec<PathBuf>,
}

/// Offers what the console's `/send` queued, [`Outbox`]'s number at a time, each when one of
/// the server's earlier transfers ended (`ended`, from the event printer). The server drops
/// operator events only when thousands wait unprinted, that is when standard output is stuck;
/// the console, which answers on the same output, is of no use then either.
async fn console_sender(
    handle: ServerHandle,
    jobs: Receiver<Job>,
    ended: Receiver<FileHandle>,
    replies: Sender<Reply>,
) {
    let mut outbox = Outbox::new();
    loop {
        while let Some((to, item)) = outbox.due() {
            let offered = match item.open() {
                Ok(source) => handle.send_source(&to, source).await,
                Err(e) => {
                    let message = format!("{}: {}", item.shown(), io_reason(&e));
                    let _ = replies.send(Reply::Error(message)).await;
                    continue;
                }
            };
            match offered {
                Ok(h) => outbox.started(h, to),
                // The server is stopping: nothing more goes out.
                Err(Error::Closed { .. }) => return,
                Err(e) => {
                    // Refused for `to` (not online, say): the rest of the folder would be too.
                    let message = format!("{}: {e}", item.shown());
                    let dropped = outbox.drop_for(&to);
                    let _ = replies.send(Reply::Error(message)).await;
                    if dropped > 0 {
                        let _ = replies
                            .send(Reply::Dropped {
                                to,
                                dropped,
                                why: e.to_string(),
                            })
                            .await;
                    }
                }
            }
        }
        let next = futures_lite::future::or(async { jobs.recv().await.map(Ok) }, async {
            ended.recv().await.map(Err)
        })
        .await;
        match next {
            Ok(Ok(job)) => {
                let folders = job.items.iter().filter(|i| i.is_folder()).count();
                // Said before any error an offer of it may meet.
                let offering = Reply::Offering {
                    files: job.items.len() - folders,
                    folders,
                    to: job.to.clone(),
                    path: job.path,
                    skipped: job.skipped,
                };
                let _ = replies.send(offering).await;
                outbox.add(&job.to, job.items);
            }
            Ok(Err(h)) => {
                outbox.ended(&h);
            }
            Err(_) => return,
        }
    }
}

/// Reads operator lines from the terminal (blocking, on its own thread); `me` is the
/// server participant's name, which its own lines are shown with.
fn operator_console(handle: ServerHandle, me: String, replies: Sender<Reply>, sends: Sender<Job>) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        tracing::debug!(%line, "operator command");
        if let Some(reply) = smol::block_on(operator_command(&handle, &me, line, &sends)) {
            let _ = replies.send_blocking(reply);
        }
        if line == "/quit" {
            return;
        }
    }
    // End of input (Ctrl-D): shut down cleanly.
    smol::block_on(handle.shutdown("the server is shutting down"));
}

async fn operator_command(
    handle: &ServerHandle,
    me: &str,
    line: &str,
    sends: &Sender<Job>,
) -> Option<Reply> {
    let said = |to: &str, text: &str| Reply::Said {
        from: me.to_string(),
        to: to.to_string(),
        text: text.to_string(),
    };
    let mut words = line.splitn(3, ' ');
    let result = match (words.next()?, words.next(), words.next()) {
        ("/who", None, None) => match handle.who().await {
            Ok(names) => return Some(Reply::Peers(names)),
            Err(e) => Err(e),
        },
        ("/msg", Some(name), Some(text)) => match handle.say(Some(name), text).await {
            Ok(()) => return Some(said(name, text)),
            Err(e) => Err(e),
        },
        ("/ban", Some(name), Some(rest)) => {
            let (duration, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let Some(duration) = parse_duration(duration) else {
                return Some(Reply::Error(format!(
                    "{duration:?} is not a duration (90s, 10m, 2h, 1d)"
                )));
            };
            let reason = if reason.is_empty() {
                "banned by the operator"
            } else {
                reason
            };
            match handle.ban(name, duration, reason).await {
                Ok(()) => {
                    return Some(Reply::Banned {
                        name: name.to_string(),
                        duration,
                    })
                }
                Err(e) => Err(e),
            }
        }
        ("/unban", Some(name), None) => match handle.unban(name).await {
            Ok(true) => return Some(Reply::Unbanned(name.to_string())),
            Ok(false) => return Some(Reply::Error(format!("{name} is not banned"))),
            Err(e) => Err(e),
        },
        ("/kick", Some(name), reason) => {
            handle
                .kick(name, reason.unwrap_or("removed by the operator"))
                .await
        }
        ("/send", Some(name), Some(path)) => {
            // On the console's own thread: walking a large folder blocks nobody else.
            return match gather(&[PathBuf::from(path)]) {
                Ok((items, skipped)) => {
                    let job = Job {
                        to: name.to_string(),
                        path: path.to_string(),
                        items,
                        skipped,
                    };
                    let _ = sends.send(job).await;
                    None
                }
                Err(e) => Some(Reply::Error(e.message)),
            };
        }
        ("/nodes", None, None) => match handle.cluster_nodes().await {
            Ok(nodes) => return Some(Reply::Nodes(nodes)),
            Err(e) => Err(e),
        },
        ("/rooms", None, None) => match handle.rooms().await {
            Ok(rooms) => return Some(Reply::Rooms(rooms)),
            Err(e) => Err(e),
        },
        ("/room", Some(room), None) => match handle.room_members(room).await {
            Ok(Some(names)) => {
                let room = room.to_string();
                return Some(Reply::Members { room, names });
            }
            Ok(None) => return Some(Reply::Error(format!("there is no room #{room}"))),
            Err(e) => Err(e),
        },
        ("/in", Some(room), Some(text)) => match handle.say_in(room, text).await {
            Ok(()) => return Some(said(&format!("#{room}"), text)),
            Err(e) => Err(e),
        },
        ("/open" | "/close", Some(room), None) => {
            let (done, what) = if line.starts_with("/open") {
                (handle.open_room(room).await, "opened")
            } else {
                (handle.close_room(room).await, "closed")
            };
            match done {
                Ok(()) => {
                    let (what, room) = (what.to_string(), room.to_string());
                    return Some(Reply::RoomDone { what, room });
                }
                Err(e) => Err(e),
            }
        }
        ("/remove", Some(room), Some(name)) => match handle.remove_member(room, name).await {
            Ok(()) => {
                let what = format!("removed {name} from");
                return Some(Reply::RoomDone {
                    what,
                    room: room.to_string(),
                });
            }
            Err(e) => Err(e),
        },
        ("/quit", None, None) => {
            handle.shutdown("the server is shutting down").await;
            Ok(())
        }
        (cmd, ..) if cmd.starts_with('/') => return Some(Reply::Help),
        _ => match handle.say(None, line).await {
            Ok(()) => return Some(said("", line)),
            Err(e) => Err(e),
        },
    };
    result.err().map(|e| Reply::Error(e.to_string()))
}

/// `90s`, `10m`, `2h`, `1d`, `500ms`, or a number of seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let unit = match &s[digits..] {
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "m", "10x", "-5m", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(crate::out::duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(
            crate::out::duration(Duration::from_secs(86_400 + 7200)),
            "1d 2h"
        );
        assert_eq!(crate::out::duration(Duration::from_secs(600)), "10m");
        assert_eq!(crate::out::duration(Duration::from_millis(500)), "500 ms");
    }
}
