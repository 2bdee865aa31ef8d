//! The hub's vocabulary: settings, connection ids, transfer handles, events and errors.

use bytes::Bytes;

use crate::session::{self, SendError};
use crate::transfer::{TransferEvent, TransferId};
use crate::wire::Utf8;
use crate::ErrorCode;

/// One accepted connection, numbered by the hub in order of [`super::Hub::connect`] calls.
/// Ids are never reused while the hub lives.
pub type ConnId = u64;

/// Settings of a [`super::Hub`]. `HubConfig::default()` gives a server called `server`
/// with the session defaults of spec §9, room for 10 000 peers and no inbox.
///
/// ```
/// use tidings_core::hub::HubConfig;
/// let cfg = HubConfig { server_name: "lobby".into(), inbox: true, ..HubConfig::default() };
/// assert_eq!(cfg.max_peers, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The name of the server's own participant: sent in `welcome`, stamped on what the
    /// server says, and reserved (no client may take it). Default `server`.
    pub server_name: String,
    /// Settings of every connection's session (heartbeats, limits, transfer window …).
    pub session: session::Config,
    /// Most registered peers at once; further hellos are refused with `server-full`.
    /// Default 10 000.
    pub max_peers: usize,
    /// Whether the server's participant takes files offered to it (an offer with an empty
    /// peer or the server's name). Without an inbox such offers are rejected at once with
    /// `storage-failed`. Default false.
    pub inbox: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            server_name: "server".to_owned(),
            session: session::Config::default(),
            max_peers: 10_000,
            inbox: false,
        }
    }
}

/// One file transfer of the server's own participant: the connection it runs on and its id
/// there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHandle {
    /// The client's connection.
    pub conn: ConnId,
    /// The transfer id on that connection.
    pub id: TransferId,
}

/// What the hub reports to the server operator and the server's own participant, pulled
/// with [`super::Hub::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A client was accepted under `name`.
    Joined {
        /// Its connection.
        conn: ConnId,
        /// Its registered name.
        name: Utf8,
        /// Registered peers now online, this one included.
        online: usize,
    },
    /// A registered client went away (goodbye, kicked, dead, slow, vanished).
    Left {
        /// Its connection.
        conn: ConnId,
        /// The name it had.
        name: Utf8,
        /// Why, for people: the close code and its detail.
        reason: String,
        /// Registered peers still online.
        online: usize,
    },
    /// Chat text the server's participant sees: every broadcast, and private text addressed
    /// to the server.
    Text {
        /// The sender's registered name.
        from: Utf8,
        /// Addressed to the server alone.
        private: bool,
        /// The message.
        text: Utf8,
    },
    /// Binary data the server's participant sees (as for [`HubEvent::Text`]).
    Blob {
        /// The sender's registered name.
        from: Utf8,
        /// Addressed to the server alone.
        private: bool,
        /// Such as `image/png`.
        media_type: Utf8,
        /// The bytes, zero-copy.
        data: Bytes,
    },
    /// A file transfer of the server's own participant moved. The events and the commands
    /// that answer them are those of [`crate::transfer`], through the hub's methods taking a
    /// [`FileHandle`]: `Offered` (only with [`HubConfig::inbox`]) → [`super::Hub::accept_offer`]
    /// or [`super::Hub::reject_offer`]; `Read` → [`super::Hub::provide_data`]; `Data` → write,
    /// then [`super::Hub::data_written`]; `Progress`; `Finished` (the last event of a handle).
    Transfer {
        /// Which transfer.
        handle: FileHandle,
        /// The client at the other end.
        peer: Utf8,
        /// What happened.
        event: TransferEvent,
    },
    /// A client was refused at hello (its connection closes after the `refused` frame).
    Refused {
        /// Its connection.
        conn: ConnId,
        /// The name it asked for.
        name: Utf8,
        /// `name-invalid`, `name-taken`, `server-full` or `shutdown`.
        code: ErrorCode,
    },
}

/// Why a command of the server's participant could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// No registered peer has this name.
    UnknownPeer(String),
    /// The handle is not a live transfer of the server's own participant.
    NoSuchTransfer,
    /// The peer's session refused the command.
    Send(SendError),
}

impl core::fmt::Display for HubError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HubError::UnknownPeer(name) => write!(f, "no peer named {name:?} is online"),
            HubError::NoSuchTransfer => write!(f, "no such transfer of the server"),
            HubError::Send(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HubError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SendError> for HubError {
    fn from(e: SendError) -> Self {
        HubError::Send(e)
    }
}
