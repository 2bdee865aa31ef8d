//! The comparisons, in priority order.

pub mod broker;
pub mod decode;
pub mod relay;
pub mod servers;

use crate::table::Row;
use servers::Ctx;

/// Runs one group of rows.
pub type Group = fn(&Ctx) -> Vec<Row>;

/// The row groups: `--only` name, and what runs it.
pub const GROUPS: &[(&str, Group)] = &[
    ("relay", relay::rows),
    ("decode", decode::native_rows),
    ("ws-decode", decode::ws_rows),
    ("fanout", |c| vec![broker::fanout(c)]),
    ("latency", |c| vec![broker::latency(c)]),
    ("idle", |c| vec![broker::idle(c)]),
    ("ws-broadcast", |_| vec![ws_broadcast()]),
];

/// Row 7. The tidings server has no WebSocket door on its port yet, so there is nothing
/// of ours to put against a tokio-tungstenite broadcast server.
fn ws_broadcast() -> Row {
    Row::not_measured(
        "ws-broadcast",
        "WebSocket broadcast vs a tokio-tungstenite broadcast server",
        "≥ 1.0×",
        "the tidings server's WebSocket door is not in yet".into(),
    )
}
