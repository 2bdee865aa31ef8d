//! The comparisons, in priority order.

pub mod broker;
mod cluster;
pub mod decode;
mod logins;
pub mod relay;
pub mod servers;
mod ws_broadcast;
pub mod ws_server;

use crate::load::proto::Proto;
use crate::table::Row;
use broker::Where;
use servers::Ctx;

/// Runs one group of rows.
pub type Group = fn(&Ctx) -> Vec<Row>;

/// The row groups: `--only` name, and what runs it.
pub const GROUPS: &[(&str, Group)] = &[
    ("relay", relay::rows),
    ("decode", decode::native_rows),
    ("ws-decode", decode::ws_rows),
    ("fanout-nats", |c| {
        vec![broker::fanout(c, Proto::Nats, Where::Everyone)]
    }),
    ("fanout", |c| {
        vec![broker::fanout(c, Proto::Mqtt, Where::Everyone)]
    }),
    ("fanout-room-nats", |c| {
        vec![broker::fanout(c, Proto::Nats, Where::BusyRooms)]
    }),
    ("fanout-room", |c| {
        vec![broker::fanout(c, Proto::Mqtt, Where::BusyRooms)]
    }),
    ("latency-nats", |c| vec![broker::latency(c, Proto::Nats)]),
    ("latency", |c| vec![broker::latency(c, Proto::Mqtt)]),
    ("idle", |c| vec![broker::idle(c)]),
    ("joins", |c| vec![broker::joins(c)]),
    ("idle-tls", |c| vec![broker::idle_tls(c)]),
    ("ws-broadcast", |c| vec![ws_broadcast::row(c)]),
    ("ws-broadcast-tls", |c| vec![ws_broadcast::row_tls(c)]),
    ("logins", |c| vec![logins::row(c)]),
    ("cluster-fanout", |c| vec![cluster::row(c)]),
];
