//! The one-shot commands `recv` and `say` (`send` is in `send.rs`).

use std::io::{IsTerminal, Read};
use std::time::Duration;

use tidings_core::name::name_key;
use tidings_core::wire::MIN_MAX_FRAME;
use tidings_smol::{Client, ClientConfig, ClientEvent, ErrorCode};

use crate::addr::ServerAddr;
use crate::exit::{io_reason, CliError, Exit};
use crate::out::Out;
use crate::view::show;
use crate::{Conn, RecvArgs, SayArgs};

/// Connects and shows the welcome. A server that does not complete the handshake within
/// `--handshake-timeout-ms` (or closes, or is no tidings server) is exit 3.
///
/// With several `--server`s, they are tried in turn from the one at `first` (wrapping
/// around) while a server cannot be reached or is full; `first` is then the one that
/// answered (a chat that loses it starts from the next). A refusal of the name is the
/// answer for the name, not a failure of one server: it ends the attempt.
///
/// The password is `config`'s if it has one, else `--password-file`'s, else
/// `TIDINGS_PASSWORD`'s; with none, when the server answers `auth-required`, `prompt` is
/// true and standard input is a terminal, it is asked for and the connection tried once
/// more. The password used stays in `config` (a chat's reconnections use it again). A
/// session token in `config` (a chat reconnecting) is tried first; refused, it is dropped
/// and the password used.
pub async fn connect(
    conn: &Conn,
    config: &mut ClientConfig,
    prompt: bool,
    out: &mut Out,
    first: &mut usize,
) -> Result<Client, CliError> {
    config.session.handshake_timeout = Duration::from_millis(conn.handshake_timeout_ms);
    if config.password.is_none() {
        config.password = crate::user::given_password(conn.password_file.as_deref())?;
    }
    let servers = &conn.server.0;
    let mut failed: Vec<String> = Vec::new();
    for k in 0..servers.len() {
        let i = (*first + k) % servers.len();
        match connect_to(&servers[i], conn, config, prompt).await {
            Ok(client) => {
                *first = i;
                tracing::debug!(peer = %client.peer_addr(), "connected");
                show(
                    out,
                    &ClientEvent::Connected {
                        name: client.name().to_string(),
                        server: client.server_name().to_string(),
                        online: client.online_at_join().to_vec(),
                    },
                );
                return Ok(client);
            }
            Err((e, try_next)) if try_next && k + 1 < servers.len() => {
                tracing::info!(server = %servers[i], why = %e.message, "trying the next server");
                failed.push(e.message);
            }
            Err((mut e, _)) => {
                if !failed.is_empty() {
                    failed.push(e.message);
                    e.message = failed.join("; ");
                }
                return Err(e);
            }
        }
    }
    unreachable!("at least one server is given, and the last attempt returns")
}

/// One server of [`connect`]'s: the client, or the error and whether another server might
/// answer (this one cannot be reached, or is full).
async fn connect_to(
    server: &ServerAddr,
    conn: &Conn,
    config: &mut ClientConfig,
    prompt: bool,
) -> Result<Client, (CliError, bool)> {
    config.tls = crate::tls::client(server, conn.ca.as_deref()).map_err(|e| (e, false))?;
    let addr = crate::shown_addr(server);
    tracing::debug!(server = %addr, name = %conn.name, "connecting");
    let mut attempt = Client::connect(server.addr.as_str(), &conn.name, config.clone()).await;
    if config.token.is_some() {
        if let Err(tidings_smol::Error::Refused {
            code: ErrorCode::AuthFailed,
            ..
        }) = &attempt
        {
            // The session token is no longer good (expired, or the server restarted): the
            // password again.
            config.token = None;
            attempt = Client::connect(server.addr.as_str(), &conn.name, config.clone()).await;
        }
    }
    // A password or token goes only where it cannot be read on the way: over TLS, or to
    // this machine (the clients drop them otherwise, ClientConfig::for_peer). Nor does a
    // refusal on a plaintext connection, which anyone on the path could forge, get one
    // typed in.
    let secure = config.tls.is_some() || only_loopback(&server.addr);
    if let Err(tidings_smol::Error::Refused {
        code: ErrorCode::AuthRequired,
        ..
    }) = &attempt
    {
        if secure && config.password.is_none() && prompt && std::io::stdin().is_terminal() {
            config.password = Some(
                crate::user::prompt(&format!(
                    "{} is a registered name: its password: ",
                    conn.name
                ))
                .map_err(|e| (e, false))?,
            );
            attempt = Client::connect(server.addr.as_str(), &conn.name, config.clone()).await;
        }
    }
    attempt.map_err(|e| {
        let full = matches!(
            e,
            tidings_smol::Error::Refused {
                code: ErrorCode::ServerFull,
                ..
            }
        );
        let e = CliError::from_runtime(e, &addr);
        let try_next = full || e.code == Exit::Unreachable;
        (e, try_next)
    })
}

/// Whether `to` names `me`, by the server's name key (so `ALICE` or `ａlice` for alice too):
/// the server would route it back to us, which is never what was meant.
pub fn is_self(me: &str, to: &str) -> bool {
    !to.is_empty() && name_key(to) == name_key(me)
}

/// Refuses `--to` naming ourselves ([`is_self`]) before anything is sent.
pub fn not_to_self(me: &str, to: &str, what: &str) -> Result<(), CliError> {
    if is_self(me, to) {
        return Err(CliError::new(
            Exit::Usage,
            format!("{to} is your own name: you cannot {what} yourself"),
        ));
    }
    Ok(())
}

pub async fn recv(args: RecvArgs, out: &mut Out) -> Result<(), CliError> {
    // A missing folder is created; one that cannot be written fails each offer with the
    // reason, which the sender sees too.
    let _ = std::fs::create_dir_all(&args.out);
    let mut config = ClientConfig {
        download_dir: Some(args.out.clone()),
        accept_files: true,
        ..ClientConfig::default()
    };
    config.session.transfer.max_path_depth = args.max_depth;
    // Which `--server` answered: errors name it.
    let mut at = 0;
    let client = connect(&args.conn, &mut config, true, out, &mut at).await?;
    let mut received = 0;
    if args.count == Some(0) {
        client.close().await;
        return Ok(());
    }
    while let Some(ev) = client.next_event().await {
        show(out, &ev);
        match ev {
            ClientEvent::Received { .. } => {
                received += 1;
                if Some(received) == args.count {
                    client.close().await;
                    return Ok(());
                }
            }
            ClientEvent::Closed { code, reason, .. } => return Err(CliError::lost(code, &reason)),
            _ => {}
        }
    }
    Err(CliError::lost(ErrorCode::PeerLost, "the connection ended"))
}

/// Joins `room` on a fresh connection and waits for the answer: its members (ourselves
/// last), shown. A server without rooms, or one that refuses the join (an invalid name, a
/// full room, only the operator opens rooms), is exit 1 with its reason.
pub async fn enter_room(
    client: &Client,
    room: &str,
    out: &mut Out,
) -> Result<Vec<String>, CliError> {
    let refused = |why: &dyn std::fmt::Display| {
        CliError::new(
            Exit::Other,
            format!("cannot join #{}: {why}", crate::safe::inline(room)),
        )
    };
    client.join(room).await.map_err(|e| refused(&e))?;
    let key = name_key(room);
    loop {
        let Some(ev) = client.next_event().await else {
            return Err(CliError::lost(ErrorCode::PeerLost, "the connection ended"));
        };
        match &ev {
            // The default room's list comes first, after welcome: not the answer, unless
            // the default room is the one asked for.
            ClientEvent::RoomEntered {
                room: r, members, ..
            } if name_key(r) == key => {
                let members = members.clone();
                show(out, &ev);
                return Ok(members);
            }
            ClientEvent::Notice {
                code: code @ (ErrorCode::RoomRefused | ErrorCode::LimitExceeded),
                text,
            } => return Err(refused(&format!("{text} ({})", code.name()))),
            ClientEvent::Closed { code, reason, .. } => return Err(CliError::lost(*code, reason)),
            _ => {}
        }
    }
}

pub async fn say(args: SayArgs, out: &mut Out) -> Result<(), CliError> {
    if let Some(room) = &args.room {
        let text = message(&args)?;
        // Which `--server` answered: errors name it.
        let mut at = 0;
        let client = connect(&args.conn, &mut ClientConfig::default(), true, out, &mut at).await?;
        if let Err(e) = enter_room(&client, room, out).await {
            client.close().await;
            return Err(e);
        }
        let server = args.conn.server.0[at].to_string();
        client
            .say_in(room, &text)
            .await
            .map_err(|e| CliError::from_runtime(e, &server))?;
        // Leaving is answered after the server routed our line (a refusal of it arrives
        // first), and is what `say --room` promises: join, say, leave.
        client
            .leave(room)
            .await
            .map_err(|e| CliError::from_runtime(e, &server))?;
        loop {
            match client.next_event().await {
                None => return Err(CliError::lost(ErrorCode::PeerLost, "the connection ended")),
                Some(ClientEvent::RoomExited { .. }) => break,
                Some(ClientEvent::Notice {
                    code: ErrorCode::NotMember,
                    text,
                }) => {
                    client.close().await;
                    return Err(CliError::new(Exit::Other, format!("not said: {text}")));
                }
                Some(ClientEvent::Closed { code, reason, .. }) => {
                    return Err(CliError::lost(code, &reason))
                }
                Some(_) => {}
            }
        }
        crate::view::said_in(out, client.name(), room, &text);
        client.close().await;
        return Ok(());
    }
    let to = args.to.clone().unwrap_or_default();
    not_to_self(&args.conn.name, &to, "send a message to")?;
    let text = message(&args)?;
    // Which `--server` answered: errors name it.
    let mut at = 0;
    let client = connect(&args.conn, &mut ClientConfig::default(), true, out, &mut at).await?;
    client
        .say_to(&to, &text)
        .await
        .map_err(|e| CliError::from_runtime(e, &args.conn.server.0[at].to_string()))?;
    // The list request is answered after the server routed our text, so an unknown
    // addressee's error arrives first.
    client
        .request_list()
        .await
        .map_err(|e| CliError::from_runtime(e, &args.conn.server.0[at].to_string()))?;
    loop {
        let Some(ev) = client.next_event().await else {
            return Err(CliError::lost(ErrorCode::PeerLost, "the connection ended"));
        };
        match ev {
            ClientEvent::PeerList(_) => break,
            ClientEvent::Notice {
                code: ErrorCode::UnknownPeer,
                ..
            } => {
                client.close().await;
                return Err(CliError::new(
                    Exit::UnknownPeer,
                    format!("{to} is not online"),
                ));
            }
            ClientEvent::Closed { code, reason, .. } => return Err(CliError::lost(code, &reason)),
            _ => {}
        }
    }
    crate::view::said(out, client.name(), &to, &text);
    client.close().await;
    Ok(())
}

/// The message of `say`: its words, or standard input for `-`.
fn message(args: &SayArgs) -> Result<String, CliError> {
    let text = if args.text == ["-"] {
        read_message(std::io::stdin().lock())?
    } else {
        args.text.join(" ")
    };
    // Nothing to read: a blank line in everyone's chat is never what was meant.
    if text.trim().is_empty() {
        return Err(CliError::new(Exit::Usage, "the message is empty"));
    }
    Ok(text)
}

/// The longest message `say -` reads: every client can take a frame of this size, and an
/// endless input must not fill the memory.
const MAX_MESSAGE: usize = MIN_MAX_FRAME as usize;

/// The message of `say -`: all of `input`, without its final line breaks; several lines are
/// fine. Nothing at all is a usage error, so is more than [`MAX_MESSAGE`] bytes.
fn read_message(input: impl Read) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            CliError::new(
                Exit::File,
                format!("cannot read standard input: {}", io_reason(&e)),
            )
        })?;
    if bytes.len() > MAX_MESSAGE {
        return Err(CliError::new(
            Exit::Usage,
            format!("the message on standard input is longer than {MAX_MESSAGE} bytes"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::new(Exit::Usage, "the message on standard input is not UTF-8"))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "the message on standard input is empty",
        ));
    }
    Ok(text.to_string())
}

/// Whether every address `addr` (`host:port`) resolves to is a loopback address.
fn only_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().is_ok_and(|mut all| {
        let mut any = false;
        let loopback = all.all(|a| {
            any = true;
            a.ip().to_canonical().is_loopback()
        });
        any && loopback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_from_standard_input() {
        let read = |s: &[u8]| read_message(s).map_err(|e| (e.code, e.message));
        assert_eq!(read(b"hello\n").unwrap(), "hello");
        assert_eq!(read(b"one\r\ntwo\n\n").unwrap(), "one\r\ntwo");
        assert_eq!(read(b"no newline").unwrap(), "no newline");
        for empty in [&b""[..], b"\n", b"\r\n\n"] {
            assert_eq!(read(empty).unwrap_err().0, Exit::Usage);
        }
        assert_eq!(read(b"\xff\n").unwrap_err().0, Exit::Usage);
        let long = vec![b'a'; MAX_MESSAGE + 1];
        assert_eq!(read(&long).unwrap_err().0, Exit::Usage);
        assert_eq!(read(&long[1..]).unwrap().len(), MAX_MESSAGE);
    }

    #[test]
    fn oneself_by_any_spelling() {
        assert!(not_to_self("alice", "bob", "x").is_ok());
        assert!(not_to_self("alice", "", "x").is_ok());
        for me in ["alice", "ALICE", "\u{ff41}lice"] {
            let e = not_to_self("alice", me, "send files to").unwrap_err();
            assert_eq!(e.code, Exit::Usage);
            assert!(e.message.contains("your own name"), "{}", e.message);
        }
    }
}
