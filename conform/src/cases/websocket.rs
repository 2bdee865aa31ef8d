//! §12 carrying tidings: TLS on the one port (§12.0), the choice of mode (§12.1) and the
//! JSON mode (§12.3). Every JSON text from the server is read strictly (every member, `code_name` beside `code`).

use super::{case, closes_with, non_fatal_error, Case, Ctx, Needs, Outcome, Pass};
use crate::client::Client;
use crate::fail;
use crate::wire::{code, code_name, Message};
use crate::ws::Opcode;

pub(super) static CASES: &[Case] = &[
    case(
        "12.0-tls-required",
        "a plaintext client on the TLS port: preamble, error tls-required, close",
        None,
        Needs::Tls,
        tls_required,
    ),
    case(
        "12.1-mode-fixed",
        "a binary message on a JSON-mode connection closes it with 1003",
        None,
        Needs::Json,
        mode_fixed,
    ),
    case(
        "12.3-json-handshake",
        "hello as JSON is answered with a complete JSON welcome",
        None,
        Needs::Json,
        json_handshake,
    ),
    case(
        "12.3-json-chat",
        "texts, pings and errors as JSON, stamped and with code names",
        None,
        Needs::Json,
        json_chat,
    ),
    case(
        "12.3-json-malformed",
        "a member the type does not have: error malformed, close 1008",
        None,
        Needs::Json,
        json_malformed,
    ),
    case(
        "12.3-json-unknown-type",
        "a type not in the registry: error unknown-type, close 1008",
        None,
        Needs::Json,
        json_unknown_type,
    ),
];

/// The WebSocket close code the server ended `c` with.
fn close_code(c: &Client) -> Option<u16> {
    c.ws_close.as_ref().map(|(code, _)| *code)
}

fn tls_required(ctx: &mut Ctx) -> Outcome {
    let name = ctx.name("plain");
    let mut c = ctx.connect_plain(&name)?;
    c.preamble()?;
    c.send(&super::hello(&name, crate::wire::MIN_MAX_FRAME))?;
    // The client checks the server's preamble before any frame.
    match c.next("error tls-required")? {
        Message::Welcome(_) => Ok(Pass::Informational(
            "the TLS port serves plaintext clients too (its operator allowed it)".into(),
        )),
        Message::Error {
            code: code::TLS_REQUIRED,
            ..
        } => {
            let after = c.until_closed()?;
            if !after.is_empty() {
                fail!(
                    "frames after error tls-required: {:?} (§6.7.2)",
                    super::describe(&after)
                );
            }
            Ok(Pass::Ok)
        }
        other => fail!(
            "a plaintext client on the TLS port got {:?}, not error tls-required (§12.0)",
            super::describe(&[other])
        ),
    }
}

fn mode_fixed(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join_json("mixer")?;
    c.send_ws(Opcode::Binary, &Message::Ping { nonce: 1 }.encode())?;
    c.until_closed()?;
    match close_code(&c) {
        Some(1003) => Ok(Pass::Ok),
        other => {
            fail!("a binary message in the JSON mode ended with close {other:?}, not 1003 (§12.1)")
        }
    }
}

fn json_handshake(ctx: &mut Ctx) -> Outcome {
    // The client decodes the welcome strictly: a missing or extra member fails it there.
    let (_c, w) = ctx.join_json("jason")?;
    if w.online.last() != Some(&w.name) {
        fail!(
            "the JSON welcome's online {:?} does not end with {:?} (§6.2)",
            w.online,
            w.name
        );
    }
    Ok(Pass::Ok)
}

fn json_chat(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join_json("jsa")?;
    let (mut b, _) = ctx.join_json("jsb")?;
    let said = format!("json from {}", a.label);
    // `private` may be left out on input (§12.3).
    a.send_text(&format!(
        r#"{{"type":"text","peer":"","text":{}}}"#,
        serde_json::json!(said)
    ))?;
    let from = b.expect("the JSON text", |m| match m {
        Message::Text {
            peer,
            text,
            private: false,
        } if *text == said => Some(peer.clone()),
        _ => None,
    })?;
    if from != a.label {
        fail!(
            "a JSON text from {:?} arrived as from {from:?} (§6.3)",
            a.label
        );
    }
    b.sync()?;
    let nobody = ctx.name("nobody");
    a.send(&Message::Text {
        peer: nobody,
        private: false,
        text: "?".into(),
    })?;
    non_fatal_error(
        &mut a,
        code::UNKNOWN_PEER,
        "§6.3, §12.3: a JSON text to nobody",
    )?;
    Ok(Pass::Ok)
}

/// `text` from a joined JSON client is refused with `want`: the error, then close 1008.
fn refused_text(ctx: &mut Ctx, text: &str, want: u16) -> Outcome {
    let (mut c, _) = ctx.join_json("strict")?;
    c.send_text(text)?;
    closes_with(&mut c, "error", want, "§12.3 strict parsing")?;
    match close_code(&c) {
        Some(1008) => Ok(Pass::Ok),
        other => fail!(
            "after error {} the WebSocket closed with {other:?}, not 1008 (§12.3)",
            code_name(want)
        ),
    }
}

fn json_malformed(ctx: &mut Ctx) -> Outcome {
    refused_text(
        ctx,
        r#"{"type":"ping","nonce":1,"extra":true}"#,
        code::MALFORMED,
    )
}

fn json_unknown_type(ctx: &mut Ctx) -> Outcome {
    refused_text(ctx, r#"{"type":"shout","text":"hi"}"#, code::UNKNOWN_TYPE)
}
