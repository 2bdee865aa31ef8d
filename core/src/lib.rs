//! # tidings-core
//!
//! The sans-IO heart of tidings, a chat and file-transfer protocol: pure state machines that
//! never touch a socket, a file, a thread or a clock. Drive them from any event loop — the
//! `tidings-smol` and `tidings-std` runtimes do, and so can yours.
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | the native byte format: preamble, frames, messages (spec/PROTOCOL.md) |
//! | [`session`] | one end of one connection: handshake, dispatch, heartbeats, close |
//! | [`transfer`] | file transfers inside a session: credit, resume, SHA-256, progress |
//! | [`name`] | what a peer may call itself |
//! | [`hub`] | the server side: names, routing, presence, relayed transfers, the server's own participant |
//! | [`ws`] | RFC 6455 WebSocket, both roles, for browsers and plain WebSocket clients |
//! | [`gateway`] | a hub connection carried over WebSocket: native binary, JSON, or the seeds' legacy dialect |
//! | [`json`] | the JSON form of every message (spec §12.3) |
//! | [`error`] | the error codes every rejection carries on the wire |
//! | `fuzz` | fuzz bodies for cargo-fuzz and the regression suite (feature `fuzz`) |
//!
//! ## The calling contract, in short
//!
//! Feed inputs (`handle_input(now, bytes)`, `handle_eof(now)`, `handle_timeout(now)`,
//! commands), then drain outputs in order: `poll_transmit` until `None`, `poll_event` until
//! `None`, and arm a timer at `poll_timeout`. Time enters only as the `now` argument;
//! randomness (WebSocket masks) only from the caller. The [`session`] docs spell it out.
//!
//! ## Example: two sessions in memory
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tidings_core::session::{Config, Event, Session};
//! use tidings_core::wire::Utf8;
//!
//! let mut now = Instant::now();
//! let mut bob = Session::client(Config::default(), "bob", now).unwrap();
//! let mut server = Session::server(Config::default(), now);
//!
//! let pump = |a: &mut Session, b: &mut Session, now: Instant| loop {
//!     let mut moved = false;
//!     while let Some(x) = a.poll_transmit() { b.handle_input(now, &x); moved = true; }
//!     while let Some(x) = b.poll_transmit() { a.handle_input(now, &x); moved = true; }
//!     if !moved { break; }
//! };
//!
//! pump(&mut bob, &mut server, now);
//! let Some(Event::Hello(hello)) = server.poll_event() else { unreachable!() };
//! server.accept_hello(hello.name, Utf8::from("server"), vec![]).unwrap();
//! pump(&mut bob, &mut server, now);
//! assert!(matches!(bob.poll_event(), Some(Event::Connected(_))));
//!
//! // Nothing to say for a while: the heartbeat keeps the connection alive, in virtual time.
//! for _ in 0..12 {
//!     now += Duration::from_secs(10);
//!     bob.handle_timeout(now);
//!     server.handle_timeout(now);
//!     pump(&mut bob, &mut server, now);
//! }
//! assert!(bob.is_open() && server.is_open());
//! ```
#![warn(missing_docs)]

/// Comparison with `str` and formatting as the text, for a type with `as_str` (the wire's
/// [`wire::Utf8`] and the WebSocket's [`ws::Utf8Bytes`]).
macro_rules! text_traits {
    ($t:ty) => {
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_traits;
pub mod cluster;
pub mod error;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod gateway;
pub mod hub;
pub mod json;
pub mod name;
pub mod session;
pub mod transfer;
pub mod wire;
pub mod ws;

pub use error::{ErrorCode, ProtocolError};
