//! Session settings: every limit and timer has a default here and a knob for the caller.

use core::time::Duration;
use std::sync::Arc;

use crate::wire::{capability, DEFAULT_MAX_FRAME, MAX_FRAME_CEILING, MIN_MAX_FRAME};

/// Settings of one session. `Config::default()` gives the values of spec §9.
///
/// ```
/// use std::time::Duration;
/// use tidings_core::session::Config;
/// let cfg = Config { heartbeat_interval: Duration::from_secs(5), ..Config::default() };
/// assert_eq!(cfg.heartbeat_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest frame body this side accepts (announced to the peer). Default 1 MiB.
    pub max_frame: u32,
    /// Send `ping` after this long without sending anything. Default 10 s. On a client, the
    /// server's value from `welcome` replaces this one.
    pub heartbeat_interval: Duration,
    /// Declare the peer dead after this long without receiving anything. Default 30 s. On a
    /// client, the server's value from `welcome` replaces this one.
    pub heartbeat_timeout: Duration,
    /// Preamble and hello/welcome must complete within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// Capabilities announced to the peer. Default [`capability::DEFAULT`]: everything but
    /// rooms, which a client turns on ([`capability::ROOMS`]) once its loop handles
    /// [`crate::session::Event::Room`]; a hub always speaks rooms.
    pub capabilities: u32,
    /// Most application events queued and not yet polled before the session stops reading
    /// (the runtime sees [`crate::session::Session::wants_input`] turn false). Default 1024.
    pub max_queued_events: usize,
    /// Most bytes of encoded control and chat frames queued and not yet transmitted before a
    /// send fails with `LimitExceeded`. Default 4 MiB.
    pub max_queued_output: usize,
    /// File transfer settings.
    pub transfer: crate::transfer::TransferConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: DEFAULT_MAX_FRAME,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            capabilities: capability::DEFAULT,
            max_queued_events: 1024,
            max_queued_output: 4 << 20,
            transfer: Default::default(),
        }
    }
}

impl Config {
    /// Brings the limits into range (the frame limit between the protocol's minimum and
    /// ceiling, transfer sizes at least 1), copying the settings only when one is out of
    /// range: sessions share one `Config`, so a hub of ten thousand sessions holds it once.
    pub(crate) fn normalize(config: &mut Arc<Config>) {
        let max_frame = config.max_frame.clamp(MIN_MAX_FRAME, MAX_FRAME_CEILING);
        let transfer = config.transfer.clone().normalized();
        if max_frame != config.max_frame || transfer != config.transfer {
            let config = Arc::make_mut(config);
            config.max_frame = max_frame;
            config.transfer = transfer;
        }
    }
}
