//! tidings-core
pub mod ws;
