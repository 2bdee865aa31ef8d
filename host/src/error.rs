//! The one error type of the runtimes.

use std::io;
use std::path::PathBuf;

use tidings_core::hub::HubError;
use tidings_core::session::SendError;
use tidings_core::ErrorCode;

/// Why a runtime operation failed.
#[derive(Debug)]
pub enum Error {
    /// The socket failed (connection refused, address in use …).
    Io(io::Error),
    /// Binding the listening address failed.
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The requested name breaks the naming rules.
    Name(String),
    /// The server refused us (name taken, server full …).
    Refused {
        /// Why, as a code.
        code: ErrorCode,
        /// The server's words.
        reason: String,
    },
    /// The server did not complete the tidings handshake: the connection closed before
    /// welcome, nothing came within the handshake timeout, or what came was not tidings
    /// (an HTTP server, garbage). Unlike [`Error::Refused`], the server gave no reason.
    Handshake {
        /// Why, as a code (`peer-lost`, `heartbeat-timeout`, `bad-preamble` …).
        code: ErrorCode,
        /// Detail.
        reason: String,
    },
    /// The connection closed before or while the command ran.
    Closed {
        /// Why, as a code.
        code: ErrorCode,
        /// Detail.
        reason: String,
    },
    /// The session refused the command.
    Send(SendError),
    /// The hub refused a command of the server participant (an unknown peer …).
    Hub(HubError),
    /// TLS failed: the server's certificate did not check out, the handshake was refused
    /// or did not finish. The reason says which, in words a user can act on.
    Tls(String),
    /// A local file could not be opened.
    File {
        /// Which.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Name(e) => write!(f, "invalid name: {e}"),
            Error::Refused { code, reason } => {
                write!(f, "the server refused us ({}): {reason}", code.name())
            }
            Error::Closed { code, reason } => {
                write!(f, "the connection closed ({}): {reason}", code.name())
            }
            Error::Handshake { code, reason } => {
                write!(f, "not a tidings server ({}): {reason}", code.name())
            }
            Error::Send(e) => write!(f, "{e}"),
            Error::Hub(e) => write!(f, "{e}"),
            Error::Tls(reason) => f.write_str(reason),
            Error::File { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl Error {
    /// The TLS handshake did not finish within the client's handshake timeout.
    pub fn tls_timed_out(timeout: std::time::Duration) -> Error {
        Error::Tls(format!(
            "TLS: the handshake did not finish within {:.1} s",
            timeout.as_secs_f64()
        ))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Bind { source: e, .. } | Error::File { source: e, .. } => Some(e),
            Error::Send(e) => Some(e),
            Error::Hub(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Error::Send(e)
    }
}

impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        Error::Hub(e)
    }
}
