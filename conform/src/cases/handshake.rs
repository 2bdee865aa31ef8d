//! §3 the preamble, §6.1 names, §6.2 the handshake, §6.6.4 the handshake timeout.

use std::time::{Duration, Instant};

use super::{case, closes_with, hello, refuses_early, welcomed, Case, Ctx, Needs, Outcome, Pass};
use crate::client::{Check, Client, Fail, Got};
use crate::fail;
use crate::wire::{code, Message, MIN_MAX_FRAME, PREAMBLE};

pub(super) static CASES: &[Case] = &[
    case(
        "2.4-split-reads",
        "the handshake and a text sent one byte per write are understood",
        None,
        Needs::Stream,
        split_reads,
    ),
    case(
        "3.3-server-waits-for-preamble",
        "the server sends nothing before the client's whole preamble",
        None,
        Needs::Stream,
        waits_for_preamble,
    ),
    case(
        "3.3-server-preamble",
        "the server answers with its preamble, version 1, then welcome",
        None,
        Needs::Stream,
        server_preamble,
    ),
    case(
        "3.4-bad-magic",
        "a wrong magic byte: the server's preamble, then error bad-preamble, then close",
        Some(3),
        Needs::Stream,
        bad_magic,
    ),
    case(
        "3.4-unsupported-version",
        "version 2: the server's preamble (version 1), error unsupported-version, close",
        None,
        Needs::Stream,
        unsupported_version,
    ),
    case(
        "3.4-truncated-preamble",
        "a stream ending inside the preamble: preamble and goodbye truncated",
        None,
        Needs::HalfClose,
        truncated_preamble,
    ),
    case(
        "3.4-silent-eof",
        "a stream ending before any byte: nothing is sent",
        None,
        Needs::Stream,
        silent_eof,
    ),
    case(
        "6.1-name-invalid",
        "names that break §6.1 are refused with name-invalid",
        None,
        Needs::Stream,
        name_invalid,
    ),
    case(
        "6.1-name-taken-lookalike",
        "a name whose key is online (case, full-width, Cyrillic) is name-taken",
        None,
        Needs::Stream,
        name_taken,
    ),
    case(
        "6.1-server-name-reserved",
        "the server participant's name, in any case, is name-taken",
        None,
        Needs::Stream,
        server_name_reserved,
    ),
    case(
        "6.2-welcome",
        "welcome: the name as registered, limits in range, the client last online",
        None,
        Needs::Stream,
        welcome,
    ),
    case(
        "6.2-hello-max-frame-too-small",
        "hello with max_frame below 1 MiB is malformed",
        None,
        Needs::Stream,
        small_max_frame,
    ),
    case(
        "6.2-nothing-before-hello",
        "a text before hello is unexpected-message",
        None,
        Needs::Stream,
        text_before_hello,
    ),
    case(
        "6.2-login-before-hello",
        "a login before hello: a server without accounts ignores it, one with accounts judges it",
        None,
        Needs::Stream,
        login_before_hello,
    ),
    case(
        "6.2-login-twice",
        "a second login before hello is unexpected-message",
        None,
        Needs::Stream,
        login_twice,
    ),
    case(
        "6.2-login-after-hello",
        "a login after the handshake is unexpected-message",
        None,
        Needs::Stream,
        login_after_hello,
    ),
    case(
        "6.6.3-ping-before-hello",
        "a ping before the handshake is unexpected-message",
        None,
        Needs::Stream,
        ping_before_hello,
    ),
    case(
        "6.6.4-handshake-timeout",
        "preamble only: after the handshake timeout, preamble and error heartbeat-timeout",
        Some(6),
        Needs::Stream,
        handshake_timeout,
    ),
    case(
        "6.6.4-handshake-timeout-silent",
        "not one byte: after the handshake timeout, closed without a word",
        Some(6),
        Needs::Stream,
        handshake_timeout_silent,
    ),
];

fn split_reads(ctx: &mut Ctx) -> Outcome {
    let (mut b, _) = ctx.join("whole")?;
    let name = ctx.name("bytewise");
    let mut a = ctx.connect(&name)?;
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend(hello(&name, MIN_MAX_FRAME).encode());
    for byte in &bytes {
        a.send_raw(std::slice::from_ref(byte))?;
    }
    let (mut a, _) = welcomed(a)?;
    let said = format!("one byte at a time from {name}");
    let text = Message::Text {
        peer: b.label.clone(),
        private: false,
        text: said.clone(),
    };
    for byte in text.encode() {
        a.send_raw(&[byte])?;
    }
    b.expect("the text sent byte by byte", |m| match m {
        Message::Text { text, .. } if *text == said => Some(()),
        _ => None,
    })?;
    Ok(Pass::Ok)
}

fn waits_for_preamble(ctx: &mut Ctx) -> Outcome {
    let name = ctx.name("early");
    let mut c = ctx.connect(&name)?;
    c.send_raw(&PREAMBLE[..7])?;
    let early = c.during(ctx.quiet)?;
    if c.received > 0 {
        fail!(
            "the server sent {} bytes ({:?}) before our preamble was complete (§3.3 item 2)",
            c.received,
            super::describe(&early)
        );
    }
    c.send_raw(&PREAMBLE[7..])?;
    c.send(&hello(&name, MIN_MAX_FRAME))?;
    welcomed(c)?;
    Ok(Pass::Ok)
}

fn server_preamble(ctx: &mut Ctx) -> Outcome {
    // The client reads the preamble strictly before any frame: a wrong byte fails there.
    let (c, _) = ctx.join("pre")?;
    if c.received < PREAMBLE.len() {
        fail!("no preamble before welcome (§3.3 item 2)");
    }
    Ok(Pass::Ok)
}

fn bad_magic(ctx: &mut Ctx) -> Outcome {
    let mut c = ctx.connect("bad-magic")?;
    // Four bytes, the last one wrong: the server must answer on it, not wait for eight.
    c.send_raw(&[0x89, b'T', b'D', b'X'])?;
    refuses_early(&mut c, code::BAD_PREAMBLE, "§3.4, DECISIONS.md point 3")?;
    Ok(Pass::Ok)
}

fn unsupported_version(ctx: &mut Ctx) -> Outcome {
    let mut c = ctx.connect("version-2")?;
    let mut preamble = PREAMBLE;
    preamble[7] = 2;
    c.send_raw(&preamble)?;
    c.send(&hello("v2", MIN_MAX_FRAME))?;
    refuses_early(&mut c, code::UNSUPPORTED_VERSION, "§3.4")?;
    Ok(Pass::Ok)
}

fn truncated_preamble(ctx: &mut Ctx) -> Outcome {
    let mut c = ctx.connect("half-preamble")?;
    c.send_raw(&PREAMBLE[..4])?;
    c.finish()?;
    closes_with(&mut c, "goodbye", code::TRUNCATED, "§3.4, §6.7.3")?;
    if c.received < PREAMBLE.len() {
        fail!("goodbye truncated came without the server's preamble (§3.4)");
    }
    Ok(Pass::Ok)
}

fn silent_eof(ctx: &mut Ctx) -> Outcome {
    let mut c = ctx.connect("silent")?;
    c.finish()?;
    let got = c.until_closed()?;
    if c.received > 0 {
        fail!(
            "the server sent {} bytes ({:?}) to a stream that ended before any byte (§3.4)",
            c.received,
            super::describe(&got)
        );
    }
    Ok(Pass::Ok)
}

/// The server refuses `name` with `refused` `want` and closes (§6.1, §6.2).
fn refused(ctx: &mut Ctx, name: &str, want: u16) -> Check<()> {
    let mut c = ctx.hello_as(name, MIN_MAX_FRAME)?;
    match c.next(&format!("refused for {name:?}"))? {
        Message::Refused { code, .. } if code == want => {}
        other => fail!(
            "hello as {name:?}: got {:?}, expected refused {} (§6.1)",
            super::describe(&[other]),
            crate::wire::code_name(want)
        ),
    }
    let after = c.until_closed()?;
    if !after.is_empty() {
        fail!(
            "after refused for {name:?}, the server sent {:?} (§6.2: it closes)",
            super::describe(&after)
        );
    }
    Ok(())
}

fn name_invalid(ctx: &mut Ctx) -> Outcome {
    let tag = ctx.name("");
    let long = "n".repeat(33);
    for name in [
        format!(".dot{tag}"),
        format!("-dash{tag}"),
        format!("zero\u{200B}width{tag}"),
        format!("sp ace{tag}"),
        format!("filler\u{3164}{tag}"),
        long,
        String::new(),
    ] {
        refused(ctx, &name, code::NAME_INVALID)?;
    }
    Ok(Pass::Ok)
}

fn name_taken(ctx: &mut Ctx) -> Outcome {
    let (_alice, w) = ctx.join("alice")?;
    let suffix = w.name.trim_start_matches("alice").to_string();
    for lookalike in [
        format!("ALICE{suffix}"),
        format!("\u{0430}lice{suffix}"), // Cyrillic а
        format!("\u{FF21}lice{suffix}"), // full-width Ａ
    ] {
        refused(ctx, &lookalike, code::NAME_TAKEN)?;
    }
    Ok(Pass::Ok)
}

fn server_name_reserved(ctx: &mut Ctx) -> Outcome {
    let (_c, w) = ctx.join("probe")?;
    if w.server.is_empty() {
        return Ok(Pass::Unimplemented(
            "the server participant has no name to reserve".into(),
        ));
    }
    refused(ctx, &w.server.to_uppercase(), code::NAME_TAKEN)?;
    Ok(Pass::Ok)
}

fn welcome(ctx: &mut Ctx) -> Outcome {
    let (_c, w) = ctx.join("welcomed")?;
    if w.heartbeat_ms == 0 || w.timeout_ms == 0 {
        fail!(
            "welcome: heartbeat_ms {} and timeout_ms {} must be at least 1 (§6.2)",
            w.heartbeat_ms,
            w.timeout_ms
        );
    }
    if w.max_frame < MIN_MAX_FRAME {
        fail!("welcome: max_frame {} is below 1 MiB (§4.2)", w.max_frame);
    }
    if w.online.last() != Some(&w.name) {
        fail!(
            "welcome.online {:?} does not end with the new client {:?} (§6.2)",
            w.online,
            w.name
        );
    }
    if w.online.contains(&w.server) {
        fail!(
            "welcome.online lists the server participant {:?} (§6.2)",
            w.server
        );
    }
    if w.timeout_ms < 2 * w.heartbeat_ms {
        return Ok(Pass::NonStrict(format!(
            "timeout_ms {} is less than twice heartbeat_ms {} (§6.6.1: SHOULD be at least twice)",
            w.timeout_ms, w.heartbeat_ms
        )));
    }
    Ok(Pass::Ok)
}

fn small_max_frame(ctx: &mut Ctx) -> Outcome {
    let name = ctx.name("small");
    let mut c = ctx.hello_as(&name, MIN_MAX_FRAME - 1)?;
    refuses_early(&mut c, code::MALFORMED, "§4.2, §6.2")?;
    Ok(Pass::Ok)
}

/// A message where only `hello` may come: `unexpected-message` (§6.8.3).
fn before_hello(ctx: &mut Ctx, message: Message) -> Outcome {
    let mut c = ctx.connect(message.name())?;
    c.preamble()?;
    c.send(&message)?;
    refuses_early(&mut c, code::UNEXPECTED_MESSAGE, "§6.2, §6.8.3")?;
    Ok(Pass::Ok)
}

/// A `login` with a password nobody registered.
fn login() -> Message {
    Message::Login {
        method: 1,
        secret: "not anybody's password".into(),
    }
}

fn login_before_hello(ctx: &mut Ctx) -> Outcome {
    let name = ctx.name("login");
    let mut c = ctx.connect(&name)?;
    c.preamble()?;
    c.send(&login())?;
    c.send(&hello(&name, MIN_MAX_FRAME))?;
    match c.next("welcome or refused")? {
        Message::Welcome(_) => Ok(Pass::Ok),
        Message::Refused { code, .. }
            if [code::AUTH_REQUIRED, code::AUTH_FAILED, code::AUTH_INSECURE].contains(&code) =>
        {
            Ok(Pass::Informational(format!(
                "the server has accounts: a login for an unregistered name is refused {}",
                crate::wire::code_name(code)
            )))
        }
        other => fail!(
            "a login before hello was answered with {} {:?}, not welcome or an auth-* \
             refusal (§6.2: a server without accounts reads a login and ignores it)",
            other.name(),
            other.code().map(crate::wire::code_name)
        ),
    }
}

fn login_twice(ctx: &mut Ctx) -> Outcome {
    let mut c = ctx.connect("twice")?;
    c.preamble()?;
    c.send(&login())?;
    c.send(&login())?;
    refuses_early(&mut c, code::UNEXPECTED_MESSAGE, "§6.2: a second login")?;
    Ok(Pass::Ok)
}

fn login_after_hello(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("late")?;
    c.send(&login())?;
    closes_with(
        &mut c,
        "error",
        code::UNEXPECTED_MESSAGE,
        "§6.2: a login after hello",
    )?;
    Ok(Pass::Ok)
}

fn text_before_hello(ctx: &mut Ctx) -> Outcome {
    let text = Message::Text {
        peer: String::new(),
        private: false,
        text: "too soon".into(),
    };
    before_hello(ctx, text)
}

fn ping_before_hello(ctx: &mut Ctx) -> Outcome {
    before_hello(ctx, Message::Ping { nonce: 1 })
}

/// The handshake timeout the operator gave, or why the case cannot run.
fn known_timeout(ctx: &Ctx) -> Result<Duration, Pass> {
    let told = ctx.run.handshake_timeout.ok_or_else(|| {
        Pass::Informational(
            "not observed: the handshake timeout is not announced; pass --handshake-timeout-ms"
                .into(),
        )
    })?;
    super::waitable(ctx, "handshake timeout", told)
}

/// Waits up to the handshake timeout and the expectation timeout beyond it for the close.
fn after_timeout(c: &mut Client, timeout: Duration, slack: Duration) -> Check<Vec<Message>> {
    let deadline = Instant::now() + timeout + slack;
    let mut got = Vec::new();
    loop {
        match c.poll_until(deadline)? {
            Got::Message(m) => got.push(m),
            Got::Closed => return Ok(got),
            Got::Nothing => {
                return Err(Fail(format!(
                    "the server kept the connection open past its handshake timeout {timeout:?} (§6.6.4)"
                )))
            }
        }
    }
}

fn handshake_timeout(ctx: &mut Ctx) -> Outcome {
    let timeout = match known_timeout(ctx) {
        Ok(t) => t,
        Err(pass) => return Ok(pass),
    };
    let mut c = ctx.connect("stalling")?;
    c.preamble()?;
    let got = after_timeout(&mut c, timeout, ctx.run.timeout)?;
    match got.as_slice() {
        [Message::Error { code: code::HEARTBEAT_TIMEOUT, .. }] if c.received > PREAMBLE.len() => Ok(Pass::Ok),
        _ => fail!(
            "after the handshake timeout the server sent {:?}; expected its preamble and error heartbeat-timeout (§6.6.4)",
            super::describe(&got)
        ),
    }
}

fn handshake_timeout_silent(ctx: &mut Ctx) -> Outcome {
    let timeout = match known_timeout(ctx) {
        Ok(t) => t,
        Err(pass) => return Ok(pass),
    };
    let mut c = ctx.connect("mute")?;
    let got = after_timeout(&mut c, timeout, ctx.run.timeout)?;
    if c.received > 0 {
        fail!(
            "the server answered a client that sent not one byte with {} bytes ({:?}) (§6.6.4, DECISIONS.md point 6)",
            c.received,
            super::describe(&got)
        );
    }
    Ok(Pass::Ok)
}
