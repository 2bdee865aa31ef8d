//! tidings-std: a blocking client and a thread-per-connection server on `std::net`, driving
//! the sans-IO core of `tidings-core`.
//!
//! Both are thin: every protocol decision lives in the core. What this crate adds is sockets,
//! threads, and the disk side of file transfers ([`files`]), which `tidings-smol` reuses
//! (its disk jobs are plain blocking calls that an async runtime moves off its executor).
#![warn(missing_docs)]

pub mod agent;
mod client;
mod error;
pub mod files;
pub mod host;
mod server;

pub use agent::{ClientConfig, ClientEvent};
pub use client::Client;
pub use error::Error;
pub use host::{ConnLimit, ServerConfig, ServerEvent};
pub use server::{Server, ServerHandle};
pub use tidings_core::hub::{FileHandle, HubConfig};
pub use tidings_core::transfer::{Direction, Progress, TransferId};
pub use tidings_core::ErrorCode;
