//! tidings-host: everything the two runtimes share between the sans-IO core and their
//! sockets, itself without I/O: no sockets, no file system.
//!
//! - [`server::Host`]: the server's hub with the server participant's own chat and files,
//!   the connection limits, and operator events;
//! - [`client::Agent`]: a client's session with its files and events;
//! - [`rooms`]: the rooms a client is in and their members, kept from its events;
//! - [`files`]: the disk side of transfers as a protocol: [`files::DiskJob`]s a driver has
//!   `tidings-disk` run where blocking is allowed, and their results;
//! - [`outgoing`]: the bytes waiting for one socket, gathered into vectored writes;
//! - [`arrival`]: what a server does with a new connection on its one port (native,
//!   WebSocket, the web page, refusals), and the one HTTP answer builder it uses;
//! - [`tls`]: TLS for every door and both sides, over rustls;
//! - [`accounts`]: the accounts file, argon2id password hashes, and the policy that judges
//!   a hello (registered names for their owners, guests, passwords only over TLS or loopback);
//! - [`Error`]: the one error type of both runtimes.
//!
//! `tidings-std` (threads, blocking sockets) and `tidings-smol` (async) drive these; neither
//! depends on the other. See ARCHITECTURE.md for the whole map.
#![warn(missing_docs)]

pub mod accounts;
pub mod arrival;
pub mod client;
mod error;
pub mod files;
pub mod outgoing;
pub mod rooms;
pub mod server;
pub mod tls;

pub use arrival::{WebAsset, WebConfig, WS_PATH};
pub use client::{Agent, ClientConfig, ClientEvent};
pub use error::Error;
pub use server::{ConnLimit, Host, ServerConfig, ServerEvent};
pub use tidings_core::hub::{FileHandle, HubConfig};
pub use tidings_core::transfer::{Direction, Progress, TransferId};
pub use tidings_core::ErrorCode;
