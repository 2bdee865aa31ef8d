//! Several servers, one chat: what a node's hub and the other nodes of a cluster exchange
//! through a broker (spec §14), with no I/O of its own.
//!
//! A hub with [`crate::hub::HubConfig::cluster`] set is one node. Besides its connections it
//! has one more input and one more output, which a driver connects to a broker (NATS:
//! `tidings serve --cluster`):
//!
//! * [`crate::hub::Hub::poll_cluster`] gives [`ClusterOutput`]s: messages to publish on a
//!   subject, subjects to start or stop hearing, names to claim or release.
//! * [`crate::hub::Hub::handle_cluster`] takes what the broker delivered on the subjects the
//!   node hears; [`crate::hub::Hub::claimed`] the outcome of a claim;
//!   [`crate::hub::Hub::cluster_link`] whether the broker can be reached.
//!
//! The subjects (`tidings.` followed by):
//!
//! * `nodes`: every node hears it; presence ([`NodeMessage::Presence`], rosters) and liveness.
//! * `room.<hex of the room's key>`: a room's lines; a node hears it while one of its users is
//!   in the room, so the broker sends a line only to nodes with someone to tell.
//! * `user.<hex of the name's key>`: private messages to one user; heard by the node the user
//!   is on.
//!
//! Names are unique across the cluster by a claim in the broker's key-value store (the key is
//! [`claim_key`]; created only if absent, renewed while the user is online, expiring when
//! its node dies).

mod message;

use std::time::Duration;

use bytes::Bytes;

pub use message::{Change, NodeMessage, Said, VERSION};

use crate::name::name_key;

/// A connection of the node's hub (the same number as the hub's `ConnId`, named here so that
/// this module, below the hub, does not import it).
pub type ConnId = u64;
use crate::wire::Utf8;

/// The subject every node hears: presence and liveness.
pub const NODES_SUBJECT: &str = "tidings.nodes";

/// The settings of a hub that is one node of a cluster.
///
/// ```
/// use tidings_core::cluster::ClusterConfig;
/// let cfg = ClusterConfig { node: "east".into(), ..ClusterConfig::default() };
/// assert!(cfg.node_timeout > cfg.alive_interval);
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster; it follows the rules of names (spec §6.1).
    /// Default `node`.
    pub node: String,
    /// How often the node says it lives ([`NodeMessage::Alive`]). Default 1 s.
    pub alive_interval: Duration,
    /// A node not heard from for this long is taken for dead: its users leave. Default 10 s.
    pub node_timeout: Duration,
    /// Most bytes of one message to another node; a line too large for it reaches only this
    /// node's users and its sender is told. Default 1 000 000, under NATS's default payload
    /// limit of 1 MiB.
    pub max_message: usize,
    /// Most other nodes heard at once; messages of further nodes are dropped. Each node's
    /// users count up to [`crate::hub::HubConfig::max_peers`], so what a broker can make a
    /// node hold stays bounded. Default 64.
    pub max_nodes: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node: "node".to_owned(),
            alive_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(10),
            max_message: 1_000_000,
            max_nodes: 64,
        }
    }
}

/// What a node's hub asks of its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterOutput {
    /// Publish `payload` (an encoded [`NodeMessage`]) on `subject`.
    Publish {
        /// Where.
        subject: String,
        /// What.
        payload: Bytes,
    },
    /// Start hearing `subject` (deliver what arrives to [`crate::hub::Hub::handle_cluster`]).
    Subscribe(String),
    /// Stop hearing `subject`.
    Unsubscribe(String),
    /// Claim `key` ([`claim_key`] of `name`) for this node, only if nobody holds it, then
    /// answer with [`crate::hub::Hub::claimed`]. Renew it while it is held; if it expired
    /// meanwhile (the broker was out of reach for longer than its lifetime), claim it again,
    /// and if another node holds it by then, say so with [`crate::hub::Hub::claim_lost`].
    Claim {
        /// The connection that asked for the name.
        conn: ConnId,
        /// The name.
        name: Utf8,
        /// Its key in the store.
        key: String,
    },
    /// Release `key`: its holder left (or was never admitted).
    Release {
        /// The key in the store.
        key: String,
    },
}

/// What a driver hands a node's hub from the broker, when it carries them over a channel
/// (the hub's methods take each directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterInput {
    /// A message on a subject the node hears ([`crate::hub::Hub::handle_cluster`]).
    Message(Bytes),
    /// The outcome of a claim ([`crate::hub::Hub::claimed`]).
    Claimed {
        /// The connection that asked.
        conn: ConnId,
        /// What became of it.
        outcome: ClaimOutcome,
    },
    /// The broker was lost or reached again ([`crate::hub::Hub::cluster_link`]).
    Link(bool),
    /// A claim this node held expired while it could not renew it, and another node holds
    /// the name now ([`crate::hub::Hub::claim_lost`]).
    Lost(String),
}

/// What became of a [`ClusterOutput::Claim`] ([`crate::hub::Hub::claimed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This node holds the name now.
    Held,
    /// Another node holds it: the hello is refused with `name-taken`.
    Taken,
    /// The store could not be asked (the broker is unreachable, or did not answer in time):
    /// the hello is refused with `server-full`, so a client that knows other servers tries
    /// the next.
    Unavailable,
}

/// Lower-case hex of `bytes`: subjects and store keys take only a few ASCII characters, and
/// names may hold any letter.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The key of `name`'s claim in the store: names equal by [`name_key`] have the same key.
///
/// ```
/// assert_eq!(tidings_core::cluster::claim_key("Bob"), tidings_core::cluster::claim_key("bob"));
/// ```
pub fn claim_key(name: &str) -> String {
    hex(name_key(name).as_bytes())
}

/// The subject of the room whose key ([`name_key`] of its name) is `room_key`.
pub fn room_subject(room_key: &str) -> String {
    format!("tidings.room.{}", hex(room_key.as_bytes()))
}

/// The subject of private messages to the user whose name's key is `key`.
pub fn user_subject(key: &str) -> String {
    format!("tidings.user.{}", hex(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hold_only_safe_characters_whatever_the_name() {
        for name in ["bob", "a.b", "*", ">", "ｂｏｂ", "名前", "a b"] {
            for s in [room_subject(&name_key(name)), user_subject(&name_key(name))] {
                let tail = s.rsplit('.').next().unwrap();
                assert!(tail.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
                assert_eq!(s.matches('.').count(), 2, "{s}");
            }
        }
        assert_eq!(claim_key("ＢＯＢ"), claim_key("bob"));
    }
}
