//! tidings-std: a blocking client and a thread-per-connection server on `std::net`, driving
//! the sans-IO core of `tidings-core` through `tidings-host`.
//!
//! Both are thin: every protocol decision lives in the core, and the application logic both
//! runtimes share (the server host, the client agent, the disk jobs, what to do with a new
//! connection) in `tidings-host`. What this crate adds is blocking sockets and threads.
//!
//! The server's one port serves native clients, WebSocket clients on [`WS_PATH`] and the
//! web page given with [`Server::with_web`], as the `tidings-smol` server does, and each of
//! them inside TLS too when [`ServerConfig::tls`] is set; the client connects with TLS when
//! [`ClientConfig::tls`] is.
#![warn(missing_docs)]

mod client;
mod flush;
mod native;
mod server;
mod shared;
mod tls;
mod web;
mod websocket;

pub use client::Client;
pub use server::{Server, ServerHandle};
pub use tidings_host::arrival::{WebAsset, WebConfig, WS_PATH};
pub use tidings_host::files;
pub use tidings_host::{
    ClientConfig, ClientEvent, ConnLimit, Direction, Error, ErrorCode, FileHandle, HubConfig,
    Progress, ServerConfig, ServerEvent, TransferId,
};
