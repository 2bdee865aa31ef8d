//! tidings-smol: an async server and client driving the sans-IO core of `tidings-core` on
//! smol.
//!
//! The client logic and the disk side of transfers come from `tidings-std` (plain,
//! runtime-free code); this crate adds non-blocking sockets, timers and tasks, and moves
//! every disk job to the `blocking` thread pool so the executor never waits for a disk.
//! The server's connection sockets have an event loop of their own on its one thread (mio,
//! edge-triggered `epoll`): async-io re-armed a socket at every wait, two extra system calls
//! per message relayed; see [`Server::run_blocking`].
//!
//! The server's one port takes native clients, WebSocket clients at `/ws` (bridged to the
//! hub by `tidings_core::gateway`: browsers in JSON, binary tidings, or plain legacy chat)
//! and plain HTTP `GET`s of a static web page: see [`WebConfig`].
#![warn(missing_docs)]

mod client;
mod door;
mod doorbell;
mod native;
mod reactor;
mod server;
mod websocket;

pub use client::Client;
pub use server::{Server, ServerHandle};
pub use tidings_core::hub::{FileHandle, HubConfig};
pub use tidings_core::transfer::{Direction, Progress, TransferId};
pub use tidings_core::ErrorCode;
pub use tidings_host::arrival::{WebAsset, WebConfig, WS_PATH};
pub use tidings_host::server::{ConnLimit, ServerConfig, ServerEvent};
pub use tidings_host::{ClientConfig, ClientEvent, Error};
