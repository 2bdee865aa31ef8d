//! Exit codes (documented in `tidings --help`) and one-line errors.

use tidings_core::ErrorCode;
use tidings_smol::Error;

/// The process exit code of each kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not listed.
    Other = 1,
    /// 2: the command line asks for something that cannot be done (clap's own code for
    /// usage errors): an empty message, a message to oneself, a bad config file.
    Usage = 2,
    /// 3: the server cannot be reached, or what answers is not a tidings server (it closed
    /// the connection, said nothing within the handshake timeout, or spoke something else).
    Unreachable = 3,
    /// 4: the name was refused.
    NameRefused = 4,
    /// 5: a local file cannot be read.
    File = 5,
    /// 6: a transfer failed or was rejected while our connection stayed open (the receiver
    /// declined it or left, the digest did not match, a disk failed, it stalled).
    Transfer = 6,
    /// 7: the listening address is unavailable.
    AddressInUse = 7,
    /// 8: the named peer is not online.
    UnknownPeer = 8,
    /// 9: the connection was lost or closed by the server, whatever was under way: a transfer
    /// cut short by it (the server killed, stopped answering) is 9, not 6, since the remedy
    /// is the connection's (run it again once the server is back: the transfer resumes).
    ConnectionLost = 9,
}

/// A failure with its exit code and one line for people.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: Exit,
    /// One line.
    pub message: String,
}

impl CliError {
    /// A failure of kind `code`.
    pub fn new(code: Exit, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// Our connection to the server ended (exit 9), with the code and reason it ended with.
    pub fn lost(code: ErrorCode, reason: &str) -> CliError {
        CliError::new(
            Exit::ConnectionLost,
            format!("the connection closed ({}): {reason}", code.name()),
        )
    }

    /// Maps a runtime error met while talking to the server at `addr`.
    pub fn from_runtime(e: Error, addr: &str) -> CliError {
        match e {
            Error::Io(io) => CliError::new(
                Exit::Unreachable,
                format!("cannot connect to {addr}: {}", io_reason(&io)),
            ),
            Error::Bind { addr, source } => CliError::new(
                Exit::AddressInUse,
                format!("cannot listen on {addr}: {}", io_reason(&source)),
            ),
            Error::Name(e) => CliError::new(Exit::NameRefused, format!("invalid name: {e}")),
            Error::Handshake {
                code: ErrorCode::TlsRequired,
                ..
            }
            | Error::Refused {
                code: ErrorCode::TlsRequired,
                ..
            } => CliError::new(
                Exit::Unreachable,
                format!("cannot connect to {addr}: the server speaks TLS there: use --server tls://HOST:PORT"),
            ),
            Error::Tls(reason) => CliError::new(
                Exit::Unreachable,
                format!("cannot connect to {addr}: {reason}"),
            ),
            Error::Refused { code, reason } => {
                // What to do about a refused login.
                let hint = match code {
                    ErrorCode::AuthRequired => {
                        " (give the password with --password-file FILE or TIDINGS_PASSWORD; it \
                         is sent only over TLS, --server tls://HOST:PORT, or to this machine)"
                    }
                    ErrorCode::AuthInsecure => {
                        " (the password was not checked; connect with --server tls://HOST:PORT)"
                    }
                    _ => "",
                };
                CliError::new(
                    match code {
                        ErrorCode::UnknownPeer => Exit::UnknownPeer,
                        // Not about the name: the server is going away, so it cannot be
                        // reached.
                        ErrorCode::Shutdown => Exit::Unreachable,
                        _ => Exit::NameRefused,
                    },
                    format!("the server refused us ({}): {reason}{hint}", code.name()),
                )
            }
            Error::Handshake {
                code: ErrorCode::UnsupportedVersion,
                reason,
            } => CliError::new(
                Exit::Unreachable,
                format!("cannot connect to {addr}: {reason} (another tidings version)"),
            ),
            Error::Handshake { reason, .. } => CliError::new(
                Exit::Unreachable,
                format!("cannot connect to {addr}: not a tidings server ({reason})"),
            ),
            Error::Closed { code, reason } => CliError::lost(code, &reason),
            Error::File { path, source } => CliError::new(
                Exit::File,
                format!("{}: {}", path.display(), io_reason(&source)),
            ),
            Error::Hub(e) => CliError::new(Exit::UnknownPeer, e.to_string()),
            other => CliError::new(Exit::Other, other.to_string()),
        }
    }
}

/// The OS message without the "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
