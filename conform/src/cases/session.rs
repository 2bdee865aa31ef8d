//! §6.6 heartbeats, §6.7 closing, §6.8 session states.

use std::time::{Duration, Instant};

use super::{
    case, describe, fatal_after, hello, unanswered, waitable, Case, Ctx, Needs, Outcome, Pass,
};
use crate::client::{Fail, Got};
use crate::fail;
use crate::wire::{code, Message, MIN_MAX_FRAME};

pub(super) static CASES: &[Case] = &[
    case(
        "6.6-ping-answered",
        "a ping is answered with a pong carrying its nonce",
        None,
        Needs::Stream,
        ping_answered,
    ),
    case(
        "6.6-unsolicited-pong",
        "an unsolicited pong is ignored",
        None,
        Needs::Stream,
        unsolicited_pong,
    ),
    case(
        "6.6-server-pings",
        "a server with nothing to send pings within its announced interval",
        None,
        Needs::Stream,
        server_pings,
    ),
    case(
        "6.6-heartbeat-timeout",
        "a client silent for the announced timeout gets error heartbeat-timeout",
        None,
        Needs::Stream,
        heartbeat_timeout,
    ),
    case(
        "6.7-goodbye-ends",
        "after the client's goodbye the server closes without a reply",
        None,
        Needs::Stream,
        goodbye_ends,
    ),
    case(
        "6.7-fatal-error-received",
        "after the client's fatal error the server closes without a reply",
        None,
        Needs::Stream,
        fatal_error_received,
    ),
    case(
        "6.7-non-fatal-error",
        "a non-fatal error (and an unknown code) from the client leaves the session open",
        None,
        Needs::Stream,
        non_fatal_error,
    ),
    case(
        "6.8-hello-twice",
        "a second hello is unexpected-message",
        None,
        Needs::Stream,
        hello_twice,
    ),
];

fn ping_answered(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("pinger")?;
    // `sync` waits for the pong with our nonce: another nonce would not count.
    c.sync()?;
    Ok(Pass::Ok)
}

fn unsolicited_pong(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("ponger")?;
    c.send(&Message::Pong { nonce: 42 })?;
    unanswered(&c.sync()?, "an unsolicited pong", "§6.6.1 rule 2: ignored")?;
    Ok(Pass::Ok)
}

/// An announced number of milliseconds.
fn ms(announced: u32) -> Duration {
    Duration::from_millis(announced.into())
}

fn server_pings(ctx: &mut Ctx) -> Outcome {
    let (mut c, w) = ctx.join("idle")?;
    let interval = match waitable(ctx, "heartbeat interval", ms(w.heartbeat_ms)) {
        Ok(interval) => interval,
        Err(pass) => return Ok(pass),
    };
    let deadline = Instant::now() + interval + ctx.run.timeout;
    loop {
        match c.poll_until(deadline)? {
            Got::Message(Message::Ping { .. }) => return Ok(Pass::Ok),
            Got::Message(_) => {}
            Got::Closed => fail!("the server closed an idle client that answers pings (§6.6.1)"),
            Got::Nothing => fail!(
                "no ping within the announced interval of {} ms (§6.6.1 rule 1)",
                w.heartbeat_ms
            ),
        }
    }
}

fn heartbeat_timeout(ctx: &mut Ctx) -> Outcome {
    let (mut c, w) = ctx.join("mute")?;
    let timeout = match waitable(ctx, "heartbeat timeout", ms(w.timeout_ms)) {
        Ok(timeout) => timeout,
        Err(pass) => return Ok(pass),
    };
    c.answer_pings = false;
    let deadline = Instant::now() + timeout + ctx.run.timeout;
    let mut got = Vec::new();
    loop {
        match c.poll_until(deadline)? {
            Got::Message(m) => got.push(m),
            Got::Closed => break,
            Got::Nothing => fail!(
                "a silent client was still connected {} ms after its last byte (§6.6.1 rule 3)",
                w.timeout_ms
            ),
        }
    }
    match got
        .iter()
        .rev()
        .find(|m| !matches!(m, Message::Ping { .. }))
    {
        Some(Message::Error {
            code: code::HEARTBEAT_TIMEOUT,
            ..
        }) => Ok(Pass::Ok),
        _ => fail!(
            "a silent client was closed after {:?}, not error heartbeat-timeout (§6.6.2)",
            describe(&got)
        ),
    }
}

/// The client sends `message` and the server closes without a word in reply.
fn closed_without_reply(ctx: &mut Ctx, message: Message, rule: &str) -> Outcome {
    let (mut c, _) = ctx.join(message.name())?;
    c.send(&message)?;
    let after = c.until_closed()?;
    unanswered(&after, message.name(), rule)?;
    Ok(Pass::Ok)
}

fn goodbye_ends(ctx: &mut Ctx) -> Outcome {
    let goodbye = Message::Goodbye {
        code: code::NORMAL,
        reason: "bye".into(),
    };
    closed_without_reply(ctx, goodbye, "§6.7.1: nothing in reply")
}

fn fatal_error_received(ctx: &mut Ctx) -> Outcome {
    let error = Message::Error {
        code: code::MALFORMED,
        text: "giving up".into(),
    };
    closed_without_reply(ctx, error, "§6.7.2: closes without replying")
}

fn non_fatal_error(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("grumbler")?;
    for code in [code::UNKNOWN_PEER, 999] {
        c.send(&Message::Error {
            code,
            text: "just so you know".into(),
        })?;
        let what = format!("a non-fatal error {code}");
        let before = c.sync().map_err(|f| {
            Fail(format!(
                "after {what} the session did not go on (§6.5, §8): {}",
                f.0
            ))
        })?;
        unanswered(&before, &what, "§6.7.2")?;
    }
    Ok(Pass::Ok)
}

fn hello_twice(ctx: &mut Ctx) -> Outcome {
    let again = hello(&ctx.name("again"), MIN_MAX_FRAME).encode();
    fatal_after(
        ctx,
        &again,
        code::UNEXPECTED_MESSAGE,
        "§6.8.3: hello in OPEN",
    )
}
