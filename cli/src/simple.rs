//! The one-shot commands `recv` and `say` (`send` is in `send.rs`).

use tidings_smol::{Client, ClientConfig, ClientEvent, ErrorCode};

use crate::exit::{CliError, Exit};
use crate::out::Out;
use crate::view::show;
use crate::{Conn, RecvArgs, SayArgs};

/// Connects and shows the welcome.
pub async fn connect(conn: &Conn, config: ClientConfig, out: &mut Out) -> Result<Client, CliError> {
    let addr = crate::shown_addr(&conn.server);
    tracing::debug!(server = %addr, name = %conn.name, "connecting");
    let client = Client::connect(conn.server.as_str(), &conn.name, config)
        .await
        .map_err(|e| CliError::from_runtime(e, &addr))?;
    tracing::debug!(peer = %client.peer_addr(), "connected");
    show(
        out,
        &ClientEvent::Connected {
            name: client.name().to_string(),
            server: client.server_name().to_string(),
            online: client.online_at_join().to_vec(),
        },
    );
    Ok(client)
}

pub fn lost(code: ErrorCode, reason: &str) -> CliError {
    CliError::new(
        Exit::ConnectionLost,
        format!("the connection closed ({}): {reason}", code.name()),
    )
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
    let client = connect(&args.conn, config, out).await?;
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
            ClientEvent::Closed { code, reason, .. } => return Err(lost(code, &reason)),
            _ => {}
        }
    }
    Err(lost(ErrorCode::PeerLost, "the connection ended"))
}

pub async fn say(args: SayArgs, out: &mut Out) -> Result<(), CliError> {
    let client = connect(&args.conn, ClientConfig::default(), out).await?;
    let text = args.text.join(" ");
    let to = args.to.clone().unwrap_or_default();
    client
        .say_to(&to, &text)
        .await
        .map_err(|e| CliError::from_runtime(e, &args.conn.server))?;
    // The list request is answered after the server routed our text, so an unknown
    // addressee's error arrives first.
    client
        .request_list()
        .await
        .map_err(|e| CliError::from_runtime(e, &args.conn.server))?;
    loop {
        let Some(ev) = client.next_event().await else {
            return Err(lost(ErrorCode::PeerLost, "the connection ended"));
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
            ClientEvent::Closed { code, reason, .. } => return Err(lost(code, &reason)),
            _ => {}
        }
    }
    crate::view::said(out, client.name(), &to, &text);
    client.close().await;
    Ok(())
}
