//! `tidings chat`: interactive chat with transfers, reconnecting with backoff.

use std::io::BufRead;
use std::time::Duration;

use async_channel::Receiver;
use futures_lite::future;
use serde_json::json;
use tidings_smol::{Client, ClientConfig, ClientEvent, ErrorCode};

use crate::exit::{CliError, Exit};
use crate::out::Out;
use crate::simple::connect;
use crate::view::show;
use crate::ChatArgs;

const HELP: &str = "commands: TEXT (to everyone) | /msg NAME TEXT | /who | /send NAME PATH | \
                    /accept ID | /reject ID | /quit";

/// How a connected stretch ended.
enum Outcome {
    Quit,
    Lost(String),
    Final(CliError),
}

pub async fn run(args: ChatArgs, out: &mut Out) -> Result<(), CliError> {
    // A missing folder is created; one that cannot be written fails each accepted offer
    // with the reason.
    let _ = std::fs::create_dir_all(&args.download_dir);
    let lines = stdin_lines();
    let config = ClientConfig {
        download_dir: Some(args.download_dir.clone()),
        accept_files: args.accept_files,
        ..ClientConfig::default()
    };
    let mut first = true;
    let mut backoff = Duration::from_millis(500);
    loop {
        let client = match connect(&args.conn, config.clone(), out).await {
            Ok(c) => c,
            Err(e) if first => return Err(e),
            Err(e) => {
                out.event(
                    "reconnecting",
                    format_args!(
                        "{}; retrying in {:.1} s",
                        crate::safe::inline(&e.message),
                        backoff.as_secs_f64()
                    ),
                    || json!({"error": e.message, "retry_in_ms": backoff.as_millis() as u64}),
                );
                async_io::Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        first = false;
        backoff = Duration::from_millis(500);
        match session(&client, &lines, out, args.accept_files).await {
            Outcome::Quit => {
                client.close().await;
                return Ok(());
            }
            Outcome::Final(e) => return Err(e),
            Outcome::Lost(why) => {
                tracing::info!(why = %crate::safe::inline(&why), "connection lost");
                out.event(
                    "reconnecting",
                    format_args!(
                        "connection lost ({}); reconnecting in {:.1} s",
                        crate::safe::inline(&why),
                        backoff.as_secs_f64()
                    ),
                    || json!({"error": why, "retry_in_ms": backoff.as_millis() as u64}),
                );
                async_io::Timer::after(backoff).await;
            }
        }
    }
}

enum Input {
    Line(Option<String>),
    Event(Option<ClientEvent>),
}

async fn session(
    client: &Client,
    lines: &Receiver<String>,
    out: &mut Out,
    accept_files: bool,
) -> Outcome {
    loop {
        let input = future::or(async { Input::Line(lines.recv().await.ok()) }, async {
            Input::Event(client.next_event().await)
        })
        .await;
        match input {
            Input::Line(None) => return Outcome::Quit,
            Input::Line(Some(line)) => {
                if let Some(outcome) = command(client, line.trim(), out).await {
                    return outcome;
                }
            }
            Input::Event(None) => return Outcome::Lost("the connection ended".into()),
            Input::Event(Some(ev)) => {
                show(out, &ev);
                if let (ClientEvent::Offered { id, .. }, false) = (&ev, accept_files) {
                    out.event(
                        "hint",
                        format_args!("type /accept {id} or /reject {id}"),
                        || json!({"id": id}),
                    );
                }
                if let ClientEvent::Closed { code, reason, .. } = ev {
                    return match code {
                        ErrorCode::Kicked => Outcome::Final(CliError::new(
                            Exit::ConnectionLost,
                            format!("removed by the server: {reason}"),
                        )),
                        _ => Outcome::Lost(format!("{}: {reason}", code.name())),
                    };
                }
            }
        }
    }
}

async fn command(client: &Client, line: &str, out: &mut Out) -> Option<Outcome> {
    if line.is_empty() {
        return None;
    }
    let mut words = line.splitn(3, ' ');
    let result = match (words.next()?, words.next(), words.next()) {
        ("/quit", None, None) => return Some(Outcome::Quit),
        ("/who", None, None) => client.request_list().await,
        ("/msg" | "/send", Some(name), Some(_)) if crate::simple::is_self(client.name(), name) => {
            let message = format!("{name} is you: /msg and /send need someone else");
            out.event(
                "error",
                format_args!("error: {}", crate::safe::inline(&message)),
                || json!({"message": message}),
            );
            return None;
        }
        ("/msg", Some(name), Some(text)) => {
            let sent = client.say_to(name, text).await;
            if sent.is_ok() {
                crate::view::said(out, client.name(), name, text);
            }
            sent
        }
        ("/send", Some(name), Some(path)) => client.send_file(name, path).await.map(drop),
        ("/accept", Some(id), None) => match id.parse() {
            Ok(id) => client.accept(id).await,
            Err(_) => return usage(out),
        },
        ("/reject", Some(id), None) => match id.parse() {
            Ok(id) => client.reject(id).await,
            Err(_) => return usage(out),
        },
        (cmd, ..) if cmd.starts_with('/') => return usage(out),
        _ => {
            let sent = client.say(line).await;
            if sent.is_ok() {
                crate::view::said(out, client.name(), "", line);
            }
            sent
        }
    };
    if let Err(e) = result {
        out.event(
            "error",
            format_args!("error: {}", crate::safe::inline(&e.to_string())),
            || json!({"message": e.to_string()}),
        );
    }
    None
}

fn usage(out: &mut Out) -> Option<Outcome> {
    out.event("help", HELP, || json!({"help": HELP}));
    None
}

/// Lines of standard input, read on a thread of their own; the channel closes at the end.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = async_channel::bounded(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send_blocking(line).is_err() {
                break;
            }
        }
    });
    rx
}
