//! The tidings conformance runner: scripted multi-client cases against a running tidings
//! server — connect A and B, A sends X, B must receive Y within T, or the server must answer
//! error Z and close — each named by the section of `spec/PROTOCOL.md` it checks, with a
//! verdict in the Autobahn testsuite's terms ([`Verdict`]).
//!
//! The runner judges the bytes by its own strict reading of the spec: its own codec
//! ([`wire`], [`json`]), WebSocket client ([`ws`]) and TLS setup ([`link`]), and no tidings
//! crate, so that a mistake the server shares with `tidings-core` cannot hide. It is a client
//! of possibly broken servers: every read is bounded in time and size, and nothing a server
//! sends can make it panic.
//!
//! ```no_run
//! use tidings_conform::{Options, Runner, Verdict};
//!
//! let options = Options::new("tcp://127.0.0.1:9988".parse().unwrap());
//! let runner = Runner::new(options).unwrap();
//! let report = runner.run(|result| println!("{}", tidings_conform::Report::line(result)));
//! println!("{}", report.summary());
//! assert_eq!(report.count(Verdict::Failed), 0);
//! ```
//!
//! `spec/CONFORMANCE.md` maps every MUST of the spec to the cases that check it, or says why
//! no client can see it kept; a test keeps it and [`cases`] in step.

#![warn(missing_docs)]

mod cases;
pub mod client;
pub mod json;
pub mod link;
mod report;
mod spawn;
pub mod wire;
pub mod ws;

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cases::{Case, Needs, Pass};
pub use link::Target;
pub use report::{CaseResult, Report, Verdict};

/// Every case the runner has, in the order of the spec.
pub fn cases() -> impl Iterator<Item = &'static Case> {
    cases::all()
}

/// What to run, against what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The CA to trust for `tls://` and `wss://` (else the system's).
    pub ca: Option<PathBuf>,
    /// How long each expectation waits (default 2 s).
    pub timeout: Duration,
    /// Globs of case ids to run (`4.*`, `6.3-*`); empty: every case.
    pub cases: Vec<String>,
    /// A command that starts a server on `{port}`: run once per case group, on a free
    /// 127.0.0.1 port, so that cases which exhaust limits do not poison each other.
    pub spawn: Option<String>,
    /// The server's handshake timeout, which it does not announce: the cases of §6.6.4 run
    /// only when it is given. For a client that sends nothing, a server that tells visitors
    /// apart by their first bytes waits its door's timeout instead (§12.0); `tidings serve
    /// --handshake-timeout-ms` sets both.
    pub handshake_timeout: Option<Duration>,
    /// The longest a case waits for a timer the server announced or was told (default 5 s):
    /// heartbeats beyond it are reported INFORMATIONAL, not waited for.
    pub max_wait: Duration,
}

impl Options {
    /// Every case against `target`, with the default timeouts.
    pub fn new(target: Target) -> Options {
        Options {
            target,
            ca: None,
            timeout: Duration::from_secs(2),
            cases: Vec::new(),
            spawn: None,
            handshake_timeout: None,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// A run of the selected cases against one server.
///
/// ```no_run
/// use tidings_conform::{Options, Runner};
///
/// let mut options = Options::new("ws://127.0.0.1:9988/ws".parse().unwrap());
/// options.cases = vec!["6.3-*".into(), "12.*".into()];
/// let report = Runner::new(options).unwrap().run(|_| {});
/// std::fs::write("conform.xml", report.junit()).unwrap();
/// assert!(!report.failed(), "{}", report.text());
/// ```
pub struct Runner {
    options: Options,
    tls: Option<Arc<rustls::ClientConfig>>,
    selected: Vec<&'static Case>,
    not_run: Vec<(&'static str, &'static str)>,
}

impl Runner {
    /// Checks the options: TLS settings readable, every glob matching a case, a port given
    /// (or `--spawn`).
    pub fn new(options: Options) -> Result<Runner, String> {
        if options.target.port.is_none() && options.spawn.is_none() {
            return Err(format!(
                "{} has no port (only --spawn chooses one)",
                options.target
            ));
        }
        let tls = match options.target.tls {
            true => Some(link::tls_config(options.ca.as_deref())?),
            false => None,
        };
        for glob in &options.cases {
            if !cases::all().any(|c| matches(glob, c.id)) {
                return Err(format!("--cases {glob:?} matches no case"));
            }
        }
        let wanted =
            |c: &Case| options.cases.is_empty() || options.cases.iter().any(|g| matches(g, c.id));
        let ws = options.target.ws_path.is_some();
        let mut selected = Vec::new();
        let mut not_run = Vec::new();
        for case in cases::all().filter(|c| wanted(c)) {
            match (case.needs, ws) {
                (Needs::Json, false) => not_run.push((case.id, "the JSON mode needs a ws:// URL")),
                (Needs::Tls, _) if !options.target.tls => {
                    not_run.push((case.id, "a TLS case needs a tls:// or wss:// URL"))
                }
                (Needs::HalfClose, true) => {
                    not_run.push((case.id, "a WebSocket cannot end its stream and still read"))
                }
                _ => selected.push(case),
            }
        }
        Ok(Runner {
            options,
            tls,
            selected,
            not_run,
        })
    }

    /// The cases this run will run, in order.
    pub fn selected(&self) -> &[&'static Case] {
        &self.selected
    }

    /// Runs every selected case, calling `each` with each result as it comes.
    pub fn run(&self, mut each: impl FnMut(&CaseResult)) -> Report {
        let mut results = Vec::new();
        let mut names = 0u32;
        let tag = run_tag();
        // With --spawn, a fresh server for each run of cases of one group; else one server.
        let groups: Vec<&[&'static Case]> = match self.options.spawn {
            Some(_) => self
                .selected
                .chunk_by(|a, b| a.group() == b.group())
                .collect(),
            None => vec![&self.selected[..]],
        };
        for group in groups {
            let server = match &self.options.spawn {
                Some(command) => {
                    spawn::Server::start(command, self.options.timeout.max(Duration::from_secs(10)))
                        .map(|s| {
                            let port = s.port;
                            (Some(s), port)
                        })
                }
                None => Ok((None, self.options.target.port.unwrap_or_default())),
            };
            let addr = server
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|(_, port)| link::resolve(&self.options.target.host, *port));
            for &case in group {
                let result = match &addr {
                    Ok(addr) => self.run_case(case, *addr, &mut names, tag),
                    Err(why) => CaseResult {
                        id: case.id,
                        title: case.title,
                        verdict: Verdict::Failed,
                        detail: format!("no server to test: {why}"),
                        duration: Duration::ZERO,
                        transcript: Vec::new(),
                    },
                };
                each(&result);
                results.push(result);
            }
            drop(server);
        }
        Report {
            target: self.options.target.to_string(),
            results,
            not_run: self.not_run.clone(),
        }
    }

    fn run_case(
        &self,
        case: &'static Case,
        addr: SocketAddr,
        names: &mut u32,
        tag: u32,
    ) -> CaseResult {
        let settings = cases::Settings {
            target: &self.options.target,
            addr,
            tls: self.tls.as_ref(),
            timeout: self.options.timeout,
            handshake_timeout: self.options.handshake_timeout,
            max_wait: self.options.max_wait,
        };
        let mut ctx = cases::Ctx::new(settings, names, tag);
        let log = ctx.log.clone();
        let start = Instant::now();
        // A runner bug must not end the run: the case fails, the next one runs.
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| case.run(&mut ctx))).unwrap_or_else(|_| {
                Err(client::Fail(
                    "the runner itself failed (a bug in the runner)".into(),
                ))
            });
        let (verdict, detail) = match outcome {
            Ok(Pass::Ok) => (Verdict::Ok, String::new()),
            Ok(Pass::NonStrict(why)) => (Verdict::NonStrict, why),
            Ok(Pass::Informational(what)) => (Verdict::Informational, what),
            Ok(Pass::Unimplemented(why)) => (Verdict::Unimplemented, why),
            Err(client::Fail(why)) => (Verdict::Failed, why),
        };
        CaseResult {
            id: case.id,
            title: case.title,
            verdict,
            detail,
            duration: start.elapsed(),
            transcript: if verdict == Verdict::Failed {
                log.lines()
            } else {
                Vec::new()
            },
        }
    }
}

/// A number that keeps this run's client names apart from another run's on the same server.
fn run_tag() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 10_000
}

/// Whether the case id `id` matches `glob` (`*` any run of characters, `?` one).
pub fn matches(glob: &str, id: &str) -> bool {
    fn go(g: &[char], s: &[char]) -> bool {
        match g.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let (g, s): (Vec<char>, Vec<char>) = (glob.chars().collect(), id.chars().collect());
    go(&g, &s)
}
