//! The hub's vocabulary: settings, connection ids, transfer handles, events and errors.

use std::time::Duration;

use bytes::Bytes;

use crate::name::{validate_name, NameError};
use crate::session::{self, SendError};
use crate::transfer::{TransferEvent, TransferId};
use crate::wire::Utf8;
use crate::ErrorCode;

/// One accepted connection, numbered by the hub in increasing order of
/// [`super::Hub::connect`] calls. Ids are not reused while the hub lives (to be exact: the
/// order starts again after 2³² connections, and an id can repeat only from then on); their
/// low 32 bits are the connection's place in the hub's table, so they are neither small nor
/// consecutive.
pub type ConnId = u64;

/// Settings of a [`super::Hub`]. `HubConfig::default()` gives a server called `server`
/// with the session defaults of spec §9, room for 10 000 peers, no inbox, 500 messages a
/// second per client (bursts of 1000) and 256 MiB of relayed file data in the hub at most.
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
    /// Whether names are judged before they are admitted (accounts, spec §6.2). When true, a
    /// valid `hello` does not get its `welcome` at once: the connection is held (nothing more
    /// is read from it; the handshake timeout still runs), [`HubEvent::Verify`] asks the
    /// driver to judge the name and the `login` that came before it, and the driver answers
    /// with [`super::Hub::allow`] or [`super::Hub::deny`]. Name conflicts (`name-taken`),
    /// bans and the peer limit are checked when the verdict arrives. Default false: every
    /// valid name is admitted at once, and a `login` is read and ignored.
    pub accounts: bool,
    /// Messages per second a client may send on average: chat (`text`, `blob`),
    /// `list-request` and `offer` count; file data and heartbeats do not (credit and the
    /// heartbeat rules pace them). A client over the rate is slowed (the hub stops reading
    /// it); see [`HubConfig::rate_limit_grace`]. 0 turns the limit off. Default 500: far
    /// above anything typed, and above the chat benchmarks' senders.
    pub message_rate: u32,
    /// Messages a client may send at once above the rate (the bucket size); at least 1.
    /// Default 1000, so a pasted log or a burst of file offers goes through unslowed.
    pub message_burst: u32,
    /// A client still over its message rate after being slowed for this long (its backlog
    /// never drained) is disconnected with `rate-limited` (14). Default 10 s.
    pub rate_limit_grace: Duration,
    /// Most bytes of relayed file data the hub may hold across all relays, counting what
    /// senders may still send on credit already granted. When it is used up, senders get no
    /// new credit (they wait) and relays accepted by their receivers wait to start, rather
    /// than anything failing; a relay kept waiting for longer than the transfer timeouts
    /// fails with `transfer-timeout`. Default 256 MiB (32 relays at the full 8 MiB window;
    /// more relays share it). At least one window's worth is always allowed.
    pub relay_budget: usize,
    /// Most bytes of chat output (everything but file data: texts, blobs, presence, lists,
    /// errors) the hub may hold queued across all connections, not yet taken by their
    /// writers; a frame several connections share without a copy (a broadcast line, a
    /// batch of presence news, at most one per connection) is held once and not counted.
    /// Each connection is held to `session.max_queued_output` on its own (4 MiB by
    /// default); this bounds the sum, which 10 000 clients that stop reading could otherwise
    /// take to 40 GiB. When queuing takes the sum past it, the connections holding the most
    /// are disconnected with `slow-consumer` (15), largest first, until it fits again: the
    /// readers furthest behind go, and nobody else notices. Default 256 MiB; at least one
    /// connection's `session.max_queued_output` is always allowed.
    pub chat_budget: usize,
    /// How long news of joins and departures in the default room may wait to be told, so
    /// that a burst of arrivals costs each member one write per interval rather than one
    /// per arrival (10 000 joins would otherwise be 50 million presence frames, each its
    /// own write). A member that is sent any chat, list, room or transfer message meanwhile
    /// hears the news first, so no line ever arrives before the news of its sender; a new
    /// member's `welcome` lists everyone present. Zero tells each join and departure at
    /// once.
    ///
    /// Default zero, so that without a clock the hub's output follows from its input alone
    /// (what the spec's vectors and most embeddings expect); `tidings serve` sets 100 ms
    /// (`--presence-ms`), which took 10 000 joins on one core from 13 s to about 4.
    pub presence_interval: Duration,
    /// Rooms: the default room, who may open rooms, and the limits on rooms (spec §6.10).
    pub rooms: super::RoomConfig,
    /// This hub is one node of a cluster (see [`crate::cluster`]): names are claimed in the
    /// broker before `welcome`, and the default room and private messages span every node.
    /// Default `None`: one server on its own.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            server_name: "server".to_owned(),
            session: session::Config::default(),
            max_peers: 10_000,
            inbox: false,
            accounts: false,
            message_rate: 500,
            message_burst: 1000,
            rate_limit_grace: Duration::from_secs(10),
            relay_budget: 256 << 20,
            chat_budget: 256 << 20,
            presence_interval: Duration::ZERO,
            rooms: super::RoomConfig::default(),
            cluster: None,
        }
    }
}

impl HubConfig {
    /// Checks the settings a hub cannot run with: the server's name must itself be a valid
    /// name (spec §6.1), since clients address it and it is sent in `welcome`.
    ///
    /// # Errors
    ///
    /// [`HubConfigError::ServerName`] with the rule the name breaks.
    ///
    /// ```
    /// use tidings_core::hub::{HubConfig, HubConfigError};
    /// assert!(HubConfig::default().validate().is_ok());
    /// let bad = HubConfig { server_name: "my server".into(), ..HubConfig::default() };
    /// assert!(matches!(bad.validate(), Err(HubConfigError::ServerName(_))));
    /// ```
    pub fn validate(&self) -> Result<(), HubConfigError> {
        validate_name(&self.server_name).map_err(HubConfigError::ServerName)?;
        let rooms = std::iter::once(&self.rooms.default_room).chain(&self.rooms.open);
        for room in rooms {
            validate_name(room).map_err(|error| HubConfigError::Room {
                name: room.clone(),
                error,
            })?;
        }
        if let Some(cluster) = &self.cluster {
            validate_name(&cluster.node).map_err(HubConfigError::NodeName)?;
        }
        Ok(())
    }
}

/// Why a [`HubConfig`] was refused by [`HubConfig::validate`] or [`super::Hub::try_new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubConfigError {
    /// The server's name breaks the naming rules of spec §6.1.
    ServerName(NameError),
    /// The cluster node's name ([`crate::cluster::ClusterConfig::node`]) breaks the naming
    /// rules of spec §6.1.
    NodeName(NameError),
    /// A room's name (the default room's, or one to open) breaks the naming rules of spec
    /// §6.1.
    Room {
        /// The name.
        name: String,
        /// The rule it breaks.
        error: NameError,
    },
}

impl core::fmt::Display for HubConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HubConfigError::ServerName(e) => write!(f, "invalid server name: {e}"),
            HubConfigError::NodeName(e) => write!(f, "invalid cluster node name: {e}"),
            HubConfigError::Room { name, error } => {
                write!(f, "invalid room name {name:?}: {error}")
            }
        }
    }
}

impl std::error::Error for HubConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HubConfigError::ServerName(e)
            | HubConfigError::NodeName(e)
            | HubConfigError::Room { error: e, .. } => Some(e),
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
        /// `name-invalid`, `name-taken`, `server-full` or `shutdown`; with accounts also
        /// the code the driver gave [`super::Hub::deny`].
        code: ErrorCode,
    },
    /// With [`HubConfig::accounts`]: a valid `hello` waits for a verdict. Judge `name` and
    /// `login` (off the thread that drives the hub if that is slow, as a password hash is),
    /// then call [`super::Hub::allow`] or [`super::Hub::deny`] for `conn`. Drop the login
    /// once judged. A connection that closes meanwhile (handshake timeout, end of stream)
    /// ignores its verdict.
    Verify {
        /// Its connection.
        conn: ConnId,
        /// The name it asked for (valid by the naming rules).
        name: Utf8,
        /// The `login` that came before the hello, if any.
        login: Option<session::Login>,
    },
    /// Another node of the cluster was heard for the first time (`up`), or stopped or went
    /// silent for [`crate::cluster::ClusterConfig::node_timeout`] (its users left).
    Node {
        /// The node's name.
        node: Utf8,
        /// Heard (`true`) or gone.
        up: bool,
    },
    /// The link to the cluster's broker was lost (`up` false) or is back
    /// ([`super::Hub::cluster_link`]).
    ClusterLink {
        /// Whether the broker can be reached now.
        up: bool,
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
    /// No room has this name.
    NoSuchRoom(String),
    /// The default room cannot be closed, and nobody is removed from it (kick instead).
    DefaultRoom(String),
    /// The peer is not a member of the room.
    NotMember {
        /// The room.
        room: String,
        /// The peer.
        name: String,
    },
    /// A room name that breaks the rules of names (spec §6.1).
    RoomName(NameError),
}

impl core::fmt::Display for HubError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HubError::UnknownPeer(name) => write!(f, "no peer named {name:?} is online"),
            HubError::NoSuchTransfer => write!(f, "no such transfer of the server"),
            HubError::Send(e) => write!(f, "{e}"),
            HubError::NoSuchRoom(room) => write!(f, "there is no room {room:?}"),
            HubError::DefaultRoom(room) => write!(
                f,
                "{room:?} is the default room: it cannot be closed, and nobody is removed from \
                 it (kick instead)"
            ),
            HubError::NotMember { room, name } => write!(f, "{name:?} is not in room {room:?}"),
            HubError::RoomName(e) => write!(f, "invalid room name: {e}"),
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
