//! Transfer settings, each with its default from spec §9.

use core::time::Duration;

/// Settings of the transfers of one session. Zero sizes (chunk, window, read-ahead) are
/// taken as 1.
///
/// ```
/// use tidings_core::transfer::TransferConfig;
/// let tiny = TransferConfig { window: 4096, chunk_size: 1024, ..TransferConfig::default() };
/// assert!(tiny.window >= tiny.chunk_size);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TransferConfig {
    /// Largest `chunk` payload this side sends. Default 256 KiB: fewer frames, events and
    /// syscalls per byte.
    pub chunk_size: u32,
    /// Receive window: the most bytes a sender may have sent that this side has not yet
    /// written (credit). Default 8 MiB: with three processes sharing two cores on loopback,
    /// 1 MiB left the pipe idle between credit round trips (1 GiB relayed took 3.7–4.8 s;
    /// with 8 MiB 2.3–3.0 s). A relaying hub holds at most this much per transfer.
    pub window: u32,
    /// File bytes read ahead of the socket: read requests stop while the queued and
    /// requested-but-unprovided data exceed this. Default 1 MiB.
    pub read_ahead: u32,
    /// Most transfers at once per session, both directions; further offers are rejected with
    /// `limit-exceeded`. Default 32.
    pub max_active: usize,
    /// An offer not answered within this fails with `transfer-timeout`. Default 120 s.
    pub offer_timeout: Duration,
    /// A transfer with no byte moving for this long fails with `transfer-timeout`. Default 60 s.
    pub stall_timeout: Duration,
    /// Progress events are at least this far apart (plus one at the end). Default 50 ms, so
    /// at most 20 per second per transfer.
    pub progress_interval: Duration,
    /// Offered names keep at most this many folder levels (components of a relative path,
    /// spec §7.8 "Folders"); a deeper name is rejected with `bad-file-name`. 0 keeps no
    /// folders: only the last component, as version 1 receivers do. Default 32.
    pub max_path_depth: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            chunk_size: 256 << 10,
            window: 8 << 20,
            read_ahead: 1 << 20,
            max_active: 32,
            offer_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(50),
            max_path_depth: 32,
        }
    }
}

impl TransferConfig {
    /// The settings with zero sizes raised to 1, so that a transfer can always move: a zero
    /// chunk size, window or read-ahead would leave every transfer stalled until its timer.
    pub(crate) fn normalized(self) -> Self {
        TransferConfig {
            chunk_size: self.chunk_size.max(1),
            window: self.window.max(1),
            read_ahead: self.read_ahead.max(1),
            ..self
        }
    }
}
