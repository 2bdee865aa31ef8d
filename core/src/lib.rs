//! tidings-core
pub mod error;
pub mod name;
pub mod session;
pub mod transfer;
pub mod wire;
pub mod ws;

pub use error::{ErrorCode, ProtocolError};
