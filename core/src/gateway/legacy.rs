//! The plain chat dialect of the original Qt WebSocket clients: bare text is for everyone,
//! `{"dst": NAME, "msg": TEXT}` is for one peer, and what arrives is
//! `{"src": FROM, "dst": TO-or-"", "msg": TEXT}`. The server's own lines (presence, who is
//! online, why the connection ends) come in the same shape from the server participant.

use serde_json::Value;

use crate::json::ObjectWriter;
use crate::wire::{PresenceKind, Utf8};
use crate::ErrorCode;

/// What a legacy client's text message asks for: `(addressee, text)`, the addressee empty
/// for everyone.
///
/// A JSON object with a string `msg` is a message to its `dst` (a string; absent or empty
/// means everyone); its `src` is ignored, because the hub stamps the sender itself. Any other
/// text, JSON or not, is sent to everyone as it is.
pub(super) fn parse_client_text(text: &str) -> (Utf8, Utf8) {
    // Only something that looks like an object is worth a parse; chat lines rarely are.
    if text.trim_start().starts_with('{') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
            if let Some(Value::String(msg)) = map.get("msg") {
                let dst = match map.get("dst") {
                    Some(Value::String(dst)) => dst.trim(),
                    _ => "",
                };
                return (Utf8::from(dst), Utf8::from(msg.as_str()));
            }
        }
    }
    (Utf8::EMPTY, Utf8::from(text))
}

/// `{"src": src, "dst": dst, "msg": msg}`, the shape the Qt clients read.
pub(super) fn render(src: &str, dst: &str, msg: &str) -> String {
    let mut out = String::with_capacity(src.len() + dst.len() + msg.len() + 32);
    ObjectWriter::new(&mut out)
        .str("src", src)
        .str("dst", dst)
        .str("msg", msg)
        .finish();
    out
}

/// The line that tells a legacy client someone came or went (its room's or, without a
/// room, the default room's): `NAME joined` or `NAME left`, from the server.
pub(super) fn presence_line(server: &str, kind: PresenceKind, name: &str) -> String {
    let verb = match kind {
        PresenceKind::Joined => "joined",
        PresenceKind::Left => "left",
    };
    render(server, "", &format!("{name} {verb}"))
}

/// The `msg` that tells a legacy client who is online when it joins (spec §12.4):
/// `online (N): NAME, NAME, …`, everyone in `welcome` (the client itself included), in the
/// server's order. The same words as the operator console's `/who`.
pub(super) fn online_line(online: &[Utf8]) -> String {
    let mut msg = format!("online ({}): ", online.len());
    for (i, name) in online.iter().enumerate() {
        if i > 0 {
            msg.push_str(", ");
        }
        msg.push_str(name);
    }
    msg
}

/// The `msg` that tells a legacy client why its connection ends, sent just before the close
/// (spec §12.4): `KIND: CODE-NAME: REASON`, where `kind` is the message that ended it
/// (`refused`, `goodbye`, `error`); `: REASON` is left out when the reason is empty.
pub(super) fn farewell_line(kind: &str, code: ErrorCode, reason: &str) -> String {
    if reason.is_empty() {
        format!("{kind}: {}", code.name())
    } else {
        format!("{kind}: {}: {reason}", code.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_text_and_objects() {
        assert_eq!(
            parse_client_text("hi all"),
            (Utf8::EMPTY, Utf8::from("hi all"))
        );
        let (dst, msg) = parse_client_text(r#"{"src":"mallory","dst":"bob","msg":"psst"}"#);
        assert_eq!((dst.as_str(), msg.as_str()), ("bob", "psst"));
        let (dst, msg) = parse_client_text(r#"{"msg":"to all"}"#);
        assert_eq!((dst.as_str(), msg.as_str()), ("", "to all"));
        // An object without a string `msg` is just text.
        let odd = r#"{"dst":"bob","msg":3}"#;
        assert_eq!(parse_client_text(odd), (Utf8::EMPTY, Utf8::from(odd)));
        assert_eq!(
            render("a", "", "x\"y"),
            r#"{"src":"a","dst":"","msg":"x\"y"}"#
        );
    }

    #[test]
    fn online_and_farewell_lines() {
        let online = [Utf8::from("alice"), Utf8::from("Bob K")];
        assert_eq!(online_line(&online), "online (2): alice, Bob K");
        assert_eq!(online_line(&online[..1]), "online (1): alice");
        assert_eq!(
            farewell_line("refused", ErrorCode::NameTaken, "the name alice is taken"),
            "refused: name-taken: the name alice is taken"
        );
        assert_eq!(
            farewell_line("goodbye", ErrorCode::Kicked, ""),
            "goodbye: kicked"
        );
    }
}
