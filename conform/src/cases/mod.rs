//! The cases: each a script of one or more clients against the server, named by the section
//! of spec/PROTOCOL.md whose MUST it checks (spec/CONFORMANCE.md maps every MUST to them).

mod chat;
mod frames;
mod handshake;
mod rooms;
mod session;
mod transfer;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{Carriage, Check, Client, Fail, Transcript};
use crate::fail;
use crate::link::{Stream, Target};
use crate::wire::{self, Message, Welcome, MIN_MAX_FRAME};
use crate::ws;

/// How a case that passed passed (a failure is a [`Fail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Every MUST and SHOULD the case looks at was kept.
    Ok,
    /// The MUSTs were kept, a SHOULD (or a choice the spec recommends against) was not.
    NonStrict(String),
    /// The case observes without judging (a default the server may choose).
    Informational(String),
    /// The server does not offer what the case needs (an optional feature, a timeout too long
    /// to wait for).
    Unimplemented(String),
}

/// What a case came to.
pub type Outcome = Check<Pass>;

/// What a case needs of the server's carriage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A native byte stream: TCP, TLS, or binary WebSocket messages.
    Stream,
    /// The JSON mode: a `ws://` or `wss://` URL.
    Json,
    /// A byte stream the client can end and still read the answer: TCP or TLS. Over
    /// WebSocket the end of the stream is a close, which the server answers with its own at
    /// once, so what it would send after the end cannot be seen.
    HalfClose,
    /// A port that speaks TLS: a `tls://` or `wss://` URL.
    Tls,
}

/// One scripted case.
pub struct Case {
    /// `SECTION-what`, e.g. `4.3-frame-too-large`.
    pub id: &'static str,
    /// What it checks, in a line.
    pub title: &'static str,
    /// The point of spec/DECISIONS.md it pins, if any.
    pub decision: Option<u8>,
    /// The carriage it needs.
    pub needs: Needs,
    run: fn(&mut Ctx) -> Outcome,
}

impl Case {
    /// The spec section the case is named after: its id up to the first `-`.
    pub fn section(&self) -> &'static str {
        self.id.split('-').next().unwrap_or(self.id)
    }

    /// The group a spawned server is started for: the section's first number.
    pub fn group(&self) -> &'static str {
        self.section().split('.').next().unwrap_or(self.id)
    }

    /// Runs the case in `ctx`.
    pub(crate) fn run(&self, ctx: &mut Ctx) -> Outcome {
        (self.run)(ctx)
    }
}

/// A case's entry in [`CASES`].
const fn case(
    id: &'static str,
    title: &'static str,
    decision: Option<u8>,
    needs: Needs,
    run: fn(&mut Ctx) -> Outcome,
) -> Case {
    Case {
        id,
        title,
        decision,
        needs,
        run,
    }
}

/// Every case, in the order of the spec's sections (within a section, as written).
pub fn all() -> impl Iterator<Item = &'static Case> {
    let mut every: Vec<&'static Case> = [
        handshake::CASES,
        frames::CASES,
        chat::CASES,
        rooms::CASES,
        session::CASES,
        transfer::CASES,
        websocket::CASES,
    ]
    .into_iter()
    .flatten()
    .collect();
    every.sort_by_key(|c| section_number(c.section()));
    every.into_iter()
}

/// `6.6.4` as `[6, 6, 4]`, so that 10 comes after 9.
fn section_number(section: &str) -> Vec<u32> {
    section
        .split('.')
        .map(|n| n.parse().unwrap_or(u32::MAX))
        .collect()
}

/// What every case of a run shares: where the server is and how long to wait.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    /// The server.
    pub target: &'a Target,
    /// Its address.
    pub addr: SocketAddr,
    /// TLS settings, for `tls://` and `wss://`.
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
    /// How long any one expectation waits.
    pub timeout: Duration,
    /// The server's handshake timeout, when the operator told it (it is not announced).
    pub handshake_timeout: Option<Duration>,
    /// The longest a case waits for a timer of the server.
    pub max_wait: Duration,
}

/// What one case runs with: the run's settings, its clients' names, its transcript.
pub struct Ctx<'a> {
    /// The run's settings.
    pub run: Settings<'a>,
    /// How long a case watches for something that must not come.
    pub quiet: Duration,
    /// Makes names unique within a run.
    names: &'a mut u32,
    /// Makes names unique across runs on one server.
    tag: u32,
    /// Every byte of the case.
    pub log: Transcript,
}

impl<'a> Ctx<'a> {
    /// A context for one case; `names` counts the clients of the run, `tag` tells the run
    /// from others on the same server.
    pub fn new(run: Settings<'a>, names: &'a mut u32, tag: u32) -> Ctx<'a> {
        Ctx {
            run,
            quiet: (run.timeout / 4).max(Duration::from_millis(100)),
            names,
            tag,
            log: Transcript::new(),
        }
    }

    /// A name no other client of this run has: `base`, the run's tag and a number (digits
    /// only, so that every spelling of `base` keeps the key of §6.1 apart).
    pub fn name(&mut self, base: &str) -> String {
        *self.names += 1;
        format!("{base}{}x{}", self.tag, self.names)
    }

    /// A connection that has sent nothing yet, carried as the URL says (binary WebSocket
    /// messages for `ws://`).
    pub fn connect(&mut self, label: &str) -> Check<Client> {
        let carriage = match self.run.target.ws_path {
            Some(_) => Carriage::WsBinary,
            None => Carriage::Native,
        };
        self.open(label, carriage)
    }

    /// A native connection in plaintext to the same port, whatever the URL says.
    pub fn connect_plain(&mut self, label: &str) -> Check<Client> {
        let (addr, host, timeout) = (self.run.addr, &self.run.target.host, self.run.timeout);
        let stream = Stream::connect(addr, host, None, b"", timeout).map_err(Fail)?;
        Ok(Client::new(
            label,
            stream,
            Carriage::Native,
            timeout,
            self.log.clone(),
        ))
    }

    /// A connection in the JSON mode (§12.3); the case must need [`Needs::Json`].
    pub fn connect_json(&mut self, label: &str) -> Check<Client> {
        self.open(label, Carriage::WsJson)
    }

    fn open(&mut self, label: &str, carriage: Carriage) -> Check<Client> {
        let alpn: &[u8] = match carriage {
            Carriage::Native => b"tidings/1",
            _ => b"http/1.1",
        };
        let mut stream = Stream::connect(
            self.run.addr,
            &self.run.target.host,
            self.run.tls,
            alpn,
            self.run.timeout,
        )
        .map_err(Fail)?;
        if let Some(path) = &self.run.target.ws_path {
            let host = match self.run.target.port {
                Some(port) => format!("{}:{port}", self.run.target.host),
                None => self.run.target.host.clone(),
            };
            *self.names += 1;
            let nonce = (u128::from(self.tag) << 64 | u128::from(*self.names)).to_be_bytes();
            let (request, accept) = ws::request(&host, path, nonce);
            self.log.note(
                label,
                "→",
                &String::from_utf8_lossy(&request).replace("\r\n", " | "),
            );
            use std::io::Write as _;
            let _ = stream.tcp().set_read_timeout(Some(self.run.timeout));
            stream
                .write_all(&request)
                .map_err(|e| Fail(format!("{label}: the WebSocket request: {e}")))?;
            ws::check_response(&mut stream, &accept)
                .map_err(|why| Fail(format!("{label}: {why}")))?;
            self.log.note(label, "←", "101 Switching Protocols");
        }
        Ok(Client::new(
            label,
            stream,
            carriage,
            self.run.timeout,
            self.log.clone(),
        ))
    }

    /// A client that sent its preamble and `hello` as `name` (whatever it is), without
    /// waiting for an answer.
    pub fn hello_as(&mut self, name: &str, max_frame: u32) -> Check<Client> {
        let mut c = self.connect(name)?;
        c.preamble()?;
        c.send(&hello(name, max_frame))?;
        Ok(c)
    }

    /// A client registered under a fresh name made from `base`, with the welcome.
    pub fn join(&mut self, base: &str) -> Check<(Client, Welcome)> {
        let name = self.name(base);
        let c = self.hello_as(&name, MIN_MAX_FRAME)?;
        welcomed(c)
    }

    /// [`Ctx::join`] in the JSON mode.
    pub fn join_json(&mut self, base: &str) -> Check<(Client, Welcome)> {
        let name = self.name(base);
        let mut c = self.connect_json(&name)?;
        c.send(&hello(&name, MIN_MAX_FRAME))?;
        welcomed(c)
    }
}

/// A `hello` for `name` with capabilities for files and blobs: a 1.0 client (the room cases
/// announce rooms themselves).
pub fn hello(name: &str, max_frame: u32) -> Message {
    Message::Hello {
        name: name.to_string(),
        capabilities: 3,
        max_frame,
    }
}

/// Waits for the answer to a `hello`: the welcome must be the first message (§6.2).
pub fn welcomed(mut c: Client) -> Check<(Client, Welcome)> {
    match c.next("welcome")? {
        Message::Welcome(w) => {
            if w.name != c.label {
                fail!(
                    "welcome names the client {:?}, it registered as {:?} (§6.2)",
                    w.name,
                    c.label
                );
            }
            Ok((c, w))
        }
        other => fail!(
            "{}: the first message after hello is {} {:?}, not welcome (§6.2)",
            c.label,
            other.name(),
            other.code().map(wire::code_name)
        ),
    }
}

/// The server closes `c` after an `error` (or `goodbye`, `refused`) with `code`, sending
/// nothing after it (§6.7.2: the error is the last frame).
pub fn closes_with(c: &mut Client, kind: &str, code: u16, rule: &str) -> Check {
    let got = c.until_closed()?;
    let position = got
        .iter()
        .position(|m| m.name() == kind && m.code().is_some())
        .ok_or_else(|| {
            Fail(format!(
                "{}: the server closed without {kind} {} ({rule}); it sent {:?}",
                c.label,
                wire::code_name(code),
                describe(&got)
            ))
        })?;
    let sent = got[position].code().unwrap_or_default();
    if sent != code {
        fail!(
            "{}: {kind} {} ({sent}), expected {} ({code}) ({rule})",
            c.label,
            wire::code_name(sent),
            wire::code_name(code)
        );
    }
    if position + 1 != got.len() {
        fail!(
            "{}: frames after the closing {kind}: {:?} (§6.7.1: it is the last frame)",
            c.label,
            describe(&got[position + 1..])
        );
    }
    Ok(())
}

/// A server answers a client not yet joined: its preamble, then `error` `code`, then it
/// closes (§3.3, §3.4, §6.7.2).
pub fn refuses_early(c: &mut Client, code: u16, rule: &str) -> Check {
    closes_with(c, "error", code, rule)?;
    if c.received < wire::PREAMBLE.len() {
        fail!(
            "{}: the server answered without its preamble (§3.3 item 2)",
            c.label
        );
    }
    Ok(())
}

/// The server answers `c` with the non-fatal `error` `want`, and the session goes on: a
/// round trip through it still works.
pub fn non_fatal_error(c: &mut Client, want: u16, rule: &str) -> Check {
    let name = wire::code_name(want);
    let got = c.expect(&format!("error {name}"), |m| match m {
        Message::Error { code, .. } => Some(*code),
        _ => None,
    })?;
    if got != want {
        fail!(
            "{}: error {} ({got}), expected {name} ({want}) ({rule})",
            c.label,
            wire::code_name(got)
        );
    }
    c.sync().map_err(|f| {
        Fail(format!(
            "the session did not go on after {name} ({rule}): {}",
            f.0
        ))
    })?;
    Ok(())
}

/// Fails when `got`, what the server sent after `what`, holds an `error` or a `goodbye`.
pub fn unanswered(got: &[Message], what: &str, rule: &str) -> Check {
    match got
        .iter()
        .find(|m| matches!(m, Message::Error { .. } | Message::Goodbye { .. }))
    {
        Some(m) => fail!(
            "{what} was answered with {:?} ({rule})",
            describe(std::slice::from_ref(m))
        ),
        None => Ok(()),
    }
}

/// A server timer a case may wait for: `Err` with the INFORMATIONAL verdict when it is
/// longer than `--max-wait-ms`.
pub fn waitable(ctx: &Ctx, what: &str, timer: Duration) -> Result<Duration, Pass> {
    if timer <= ctx.run.max_wait {
        return Ok(timer);
    }
    Err(Pass::Informational(format!(
        "not observed: the {what} of {timer:?} is longer than --max-wait-ms ({:?})",
        ctx.run.max_wait
    )))
}

/// Messages in a reason: type and code.
pub fn describe(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m.code() {
            Some(code) => format!("{} {}", m.name(), wire::code_name(code)),
            None => m.name().to_string(),
        })
        .collect()
}

/// Sends `bytes` on a joined client and expects the fatal `error` `code` and the close.
pub fn fatal_after(ctx: &mut Ctx, bytes: &[u8], code: u16, rule: &str) -> Outcome {
    let (mut c, _) = ctx.join("v")?;
    c.send_raw(bytes)?;
    closes_with(&mut c, "error", code, rule)?;
    Ok(Pass::Ok)
}
