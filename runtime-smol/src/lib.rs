//! tidings-smol: an async server and client driving the sans-IO core of `tidings-core`
//! (through `tidings-host`) on smol.
//!
//! # Where to read how to drive the core from smol
//!
//! The [client](Client) is the plain async-io adapter: one task owns the
//! [`Agent`](tidings_host::client::Agent), feeds it the socket's bytes, commands, disk results
//! and timeouts, and drains it with `Agent::poll_output` (`client.rs`, one `drive` loop).
//!
//! The [server](Server) is written for speed instead. Its one thread runs its own event loop
//! (module `epoll`: mio, edge-triggered, with the executor and the native connections on
//! it), because async-io's reactor cost about two extra system calls per message relayed;
//! the module's docs give the measurements. Its connections feed the one
//! [`Host`](tidings_host::server::Host) and drain it with `Host::poll_output` (`shared.rs`,
//! `Shared::after`); every disk job runs on the `blocking` thread pool, so the server
//! thread never waits for a disk.
//!
//! The server's one port takes native clients, WebSocket clients at `/ws` (bridged to the
//! hub by `tidings_core::gateway`: browsers in JSON, binary tidings, or plain legacy chat)
//! and plain HTTP `GET`s of a static web page: see [`WebConfig`].
#![warn(missing_docs)]

mod arrival;
mod client;
mod epoll;
mod native;
mod output;
mod server;
mod shared;
mod tls;
mod websocket;

pub use client::Client;
pub use server::{ClusterLink, Server, ServerHandle};
pub use tidings_core::hub::{FileHandle, HubConfig, HubConfigError, RoomConfig, RoomCreation};
pub use tidings_core::transfer::{Direction, Progress, TransferId};
pub use tidings_core::ErrorCode;
pub use tidings_host::arrival::{WebAsset, WebConfig, WS_PATH};
pub use tidings_host::server::{ConnLimit, ServerConfig, ServerEvent};
pub use tidings_host::{ClientConfig, ClientEvent, Error};
