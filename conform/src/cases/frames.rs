//! §4 frames and §5 the type registry, as the server receives them.

use super::{case, closes_with, fatal_after, Case, Ctx, Needs, Outcome, Pass};
use crate::fail;
use crate::wire::{code, frame, Message, MIN_MAX_FRAME};

pub(super) static CASES: &[Case] = &[
    case(
        "5-reserved-capabilities",
        "reserved capability bits in hello are ignored",
        None,
        Needs::Stream,
        reserved_capabilities,
    ),
    case(
        "4.2-limit-inclusive",
        "a body of exactly 1 MiB is accepted and delivered",
        None,
        Needs::Stream,
        limit_inclusive,
    ),
    case(
        "4.3-frame-too-large",
        "a length over the limit is frame-too-large on its 4 bytes alone",
        None,
        Needs::Stream,
        frame_too_large,
    ),
    case(
        "4.3-unknown-type",
        "a type in 0x00-0x7F not in the registry is unknown-type",
        None,
        Needs::Stream,
        unknown_type,
    ),
    case(
        "4.3-unknown-type-truncated",
        "a stream ending inside an unknown-type frame is truncated",
        Some(7),
        Needs::HalfClose,
        unknown_type_truncated,
    ),
    case(
        "4.3-extension-ignored",
        "a type in 0x80-0xFF is ignored; the session goes on",
        None,
        Needs::Stream,
        extension_ignored,
    ),
    case(
        "4.3-truncated",
        "a stream ending inside a frame: goodbye truncated",
        None,
        Needs::HalfClose,
        truncated,
    ),
    case(
        "4.3-trailing-bytes",
        "bytes after the last field are malformed",
        None,
        Needs::Stream,
        trailing_bytes,
    ),
    case(
        "4.3-short-body",
        "a field running past the body is malformed",
        None,
        Needs::Stream,
        short_body,
    ),
    case(
        "4.3-undefined-flags",
        "an undefined flags bit is malformed",
        None,
        Needs::Stream,
        undefined_flags,
    ),
    case(
        "4.3-invalid-utf8",
        "a text field that is not UTF-8 is invalid-utf8",
        None,
        Needs::Stream,
        invalid_utf8,
    ),
    case(
        "4.3-first-field-decides",
        "peer not UTF-8 and flags undefined: invalid-utf8, peer comes first",
        None,
        Needs::Stream,
        first_field_decides,
    ),
    case(
        "5-wrong-direction",
        "a server-to-client message from a client is unexpected-message",
        None,
        Needs::Stream,
        wrong_direction,
    ),
];

fn limit_inclusive(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("big")?;
    // The receiver announces the ceiling, so the stamped frame fits it whatever a's name.
    let name = ctx.name("wide");
    let mut b = ctx.hello_as(&name, 16 << 20)?;
    b.set_frame_limit(16 << 20);
    let (mut b, _) = super::welcomed(b)?;
    // peer "" (1 byte), flags (1 byte), and text up to exactly 1 MiB of body.
    let text = "x".repeat(MIN_MAX_FRAME as usize - 2);
    a.send(&Message::Text {
        peer: String::new(),
        private: false,
        text: text.clone(),
    })?;
    let from = a.label.clone();
    let got = b.expect("the 1 MiB text", |m| match m {
        Message::Text { peer, text: t, .. } if *peer == from => Some(t.len()),
        _ => None,
    })?;
    if got != text.len() {
        fail!(
            "the 1 MiB text arrived with {got} bytes, not {}",
            text.len()
        );
    }
    Ok(Pass::Ok)
}

fn frame_too_large(ctx: &mut Ctx) -> Outcome {
    // The header alone, and a type byte: no body follows, so only the length can decide.
    let mut header = (MIN_MAX_FRAME + 1).to_be_bytes().to_vec();
    header.push(0x10);
    fatal_after(
        ctx,
        &header,
        code::FRAME_TOO_LARGE,
        "§4.3: checked on the 4 length bytes",
    )
}

fn unknown_type(ctx: &mut Ctx) -> Outcome {
    fatal_after(ctx, &frame(0x7E, b""), code::UNKNOWN_TYPE, "§4.3")
}

fn unknown_type_truncated(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("cut")?;
    let mut partial = frame(0x7E, &[0u8; 10]);
    partial.truncate(8);
    c.send_raw(&partial)?;
    c.finish()?;
    closes_with(
        &mut c,
        "goodbye",
        code::TRUNCATED,
        "§4.3, DECISIONS.md point 7",
    )?;
    Ok(Pass::Ok)
}

fn extension_ignored(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("ext")?;
    c.send_raw(&frame(0x9A, b"anything at all"))?;
    super::unanswered(&c.sync()?, "an extension frame", "§4.3: ignored")?;
    Ok(Pass::Ok)
}

fn truncated(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("trunc")?;
    let mut partial = Message::Ping { nonce: 7 }.encode();
    partial.truncate(6);
    c.send_raw(&partial)?;
    c.finish()?;
    closes_with(&mut c, "goodbye", code::TRUNCATED, "§4.3, §6.7.3")?;
    Ok(Pass::Ok)
}

fn trailing_bytes(ctx: &mut Ctx) -> Outcome {
    fatal_after(
        ctx,
        &frame(0x21, b"?"),
        code::MALFORMED,
        "§4.3, §6.4: list-request is empty",
    )
}

fn short_body(ctx: &mut Ctx) -> Outcome {
    fatal_after(
        ctx,
        &frame(0x30, &[0, 0, 0, 1]),
        code::MALFORMED,
        "§4.3: a ping's nonce is 8 bytes",
    )
}

fn undefined_flags(ctx: &mut Ctx) -> Outcome {
    fatal_after(
        ctx,
        &frame(0x10, &[0, 0x02, b'h', b'i']),
        code::MALFORMED,
        "§4.3, §6.3",
    )
}

fn invalid_utf8(ctx: &mut Ctx) -> Outcome {
    fatal_after(
        ctx,
        &frame(0x10, &[0, 0, 0xFF, 0xFE]),
        code::INVALID_UTF8,
        "§4.3",
    )
}

fn first_field_decides(ctx: &mut Ctx) -> Outcome {
    fatal_after(
        ctx,
        &frame(0x10, &[1, 0xFF, 0x02, b'x']),
        code::INVALID_UTF8,
        "§4.3: the first field that fails decides",
    )
}

fn wrong_direction(ctx: &mut Ctx) -> Outcome {
    let presence = Message::Presence {
        joined: true,
        name: "ghost".into(),
    };
    fatal_after(
        ctx,
        &presence.encode(),
        code::UNEXPECTED_MESSAGE,
        "§5: direction is normative",
    )
}

fn reserved_capabilities(ctx: &mut Ctx) -> Outcome {
    let name = ctx.name("caps");
    let mut c = ctx.connect(&name)?;
    c.preamble()?;
    c.send(&Message::Hello {
        name,
        capabilities: u32::MAX,
        max_frame: MIN_MAX_FRAME,
    })?;
    super::welcomed(c)?;
    Ok(Pass::Ok)
}
