//! The application side of file transfers in tests: in-memory "files", a driver that answers
//! reads and performs writes (immediately or at a limited pace), and a loop that runs a
//! simulated pair until a condition holds.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Pair;
use bytes::Bytes;
use tidings_core::session::{Config, Event, Session};
use tidings_core::transfer::{
    Digest, Direction, IncomingOffer, Progress, TransferConfig, TransferEvent, TransferFailure,
    TransferId,
};

/// Length of the synthetic pattern: a prime, so chunk boundaries drift across its repeats.
pub const PATTERN_LEN: usize = 1_048_573;

/// Deterministic synthetic file content of any size: byte `i` is `pattern[i % PATTERN_LEN]`.
/// Only the pattern is kept in memory, so a 100 MiB (or 2^63-byte) file costs 1 MiB.
#[derive(Clone)]
pub struct Pattern(Bytes);

impl Pattern {
    /// A pattern of pseudo-random bytes from `seed`.
    pub fn new(seed: u64) -> Pattern {
        let mut rng = super::Rng::new(seed);
        let mut v = Vec::with_capacity(PATTERN_LEN + 8);
        while v.len() < PATTERN_LEN {
            v.extend_from_slice(&rng.next().to_le_bytes());
        }
        v.truncate(PATTERN_LEN);
        Pattern(Bytes::from(v))
    }

    /// The file bytes at `offset..offset + len` (zero-copy when they do not wrap).
    pub fn read(&self, offset: u64, len: usize) -> Bytes {
        let at = (offset % PATTERN_LEN as u64) as usize;
        if at + len <= PATTERN_LEN {
            return self.0.slice(at..at + len);
        }
        let mut v = Vec::with_capacity(len);
        let mut at = at;
        while v.len() < len {
            let n = (len - v.len()).min(PATTERN_LEN - at);
            v.extend_from_slice(&self.0[at..at + n]);
            at = 0;
        }
        Bytes::from(v)
    }

    /// Whether `data` equals the file bytes at `offset`.
    pub fn matches(&self, offset: u64, data: &[u8]) -> bool {
        let mut at = (offset % PATTERN_LEN as u64) as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let n = rest.len().min(PATTERN_LEN - at);
            if rest[..n] != self.0[at..at + n] {
                return false;
            }
            rest = &rest[n..];
            at = 0;
        }
        true
    }

    /// The SHA-256 of the first `size` bytes of the file.
    pub fn digest(&self, size: u64) -> Digest {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        let mut off = 0;
        while off < size {
            let n = (size - off).min(1 << 20) as usize;
            h.update(self.read(off, n));
            off += n as u64;
        }
        h.finalize().into()
    }
}

/// A file a host sends.
#[derive(Clone)]
pub enum Source {
    /// Synthetic content.
    Pattern(Pattern),
    /// Literal bytes.
    Mem(Bytes),
}

impl Source {
    fn read(&self, offset: u64, len: usize) -> Bytes {
        match self {
            Source::Pattern(p) => p.read(offset, len),
            Source::Mem(b) => b.slice(offset as usize..offset as usize + len),
        }
    }
}

/// A file a host receives into.
#[derive(Default)]
pub struct Sink {
    /// Bytes written so far (the offset of the next write).
    pub len: u64,
    /// Every byte written, if kept (small files and resume tests).
    pub stored: Option<Vec<u8>>,
    /// Content every write is compared with, if any.
    pub expect: Option<Pattern>,
    /// Bytes flipped on their way to the disk: (file offset, xor mask). For corruption tests.
    pub corrupt: Option<(u64, u8)>,
}

impl Sink {
    /// A sink that keeps the bytes.
    pub fn stored() -> Sink {
        Sink {
            stored: Some(Vec::new()),
            ..Sink::default()
        }
    }

    /// A sink holding `kept`, a partial (or whole) file kept from an earlier attempt.
    pub fn kept(kept: Vec<u8>) -> Sink {
        Sink {
            len: kept.len() as u64,
            stored: Some(kept),
            ..Sink::default()
        }
    }

    /// A sink that compares every write with `p` and keeps nothing.
    pub fn checked(p: &Pattern) -> Sink {
        Sink {
            expect: Some(p.clone()),
            ..Sink::default()
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        assert_eq!(offset, self.len, "writes arrive in order, without gaps");
        if let Some(p) = &self.expect {
            assert!(p.matches(offset, data), "wrong bytes at {offset}");
        }
        if let Some(v) = &mut self.stored {
            v.extend_from_slice(data);
        }
        self.len += data.len() as u64;
    }

    fn read(&self, offset: u64, len: usize) -> Bytes {
        let v = self.stored.as_ref().expect("only stored sinks resume");
        Bytes::copy_from_slice(&v[offset as usize..offset as usize + len])
    }
}

/// How a host answers offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Leave offers for the test to answer.
    Manual,
    /// Accept at once from offset 0 (or from the length of an existing sink with that id),
    /// into a sink made by [`Host::new_sink`].
    Accept,
}

/// The application at one end: it serves reads, performs writes and records what happened.
pub struct Host {
    /// Files being sent, by transfer id.
    pub sources: HashMap<TransferId, Source>,
    /// Files being received, by transfer id.
    pub sinks: HashMap<TransferId, Sink>,
    /// The content new sinks compare with (`None`: new sinks store their bytes).
    pub expect: Option<Pattern>,
    /// How offers are answered.
    pub answer: Answer,
    /// Offers received.
    pub offers: Vec<IncomingOffer>,
    /// Accepted notices: (id, offset).
    pub accepted: Vec<(TransferId, u64)>,
    /// Ended transfers, in order.
    pub finished: Vec<(TransferId, Direction, Result<Digest, TransferFailure>)>,
    /// Every progress report with the virtual time it was seen, in order.
    pub progress: Vec<(Instant, Progress)>,
    /// Chat texts received: (text, bytes written into all sinks, transfers ended) at arrival.
    pub texts: Vec<(String, u64, usize)>,
    /// The end of the furthest read asked for, per transfer.
    pub read_end: HashMap<TransferId, u64>,
    /// Every other event, in order.
    pub other: Vec<Event>,
    /// Reads asked for and not yet answered.
    pub reads: VecDeque<(TransferId, u64, usize)>,
    /// Received data not yet written.
    pub writes: VecDeque<(TransferId, u64, Bytes)>,
    /// At most this many writes per `write_every` of virtual time (a slow disk); `None`:
    /// every write at once.
    pub write_pace: Option<(usize, Duration)>,
    /// When the next paced write may happen.
    pub next_write: Option<Instant>,
    /// Don't perform reads and writes (the test does them by hand).
    pub hold: bool,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            sources: HashMap::new(),
            sinks: HashMap::new(),
            expect: None,
            answer: Answer::Accept,
            offers: Vec::new(),
            accepted: Vec::new(),
            finished: Vec::new(),
            progress: Vec::new(),
            texts: Vec::new(),
            read_end: HashMap::new(),
            other: Vec::new(),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            write_pace: None,
            next_write: None,
            hold: false,
        }
    }
}

impl Host {
    /// A host that accepts every offer into sinks checked against `expect` (or stored).
    pub fn accepting(expect: Option<Pattern>) -> Host {
        Host {
            expect,
            ..Host::default()
        }
    }

    /// A host that leaves offers for the test to answer.
    pub fn manual() -> Host {
        Host {
            answer: Answer::Manual,
            ..Host::default()
        }
    }

    fn new_sink(&self) -> Sink {
        match &self.expect {
            Some(p) => Sink::checked(p),
            None => Sink::stored(),
        }
    }

    /// Offers `source` to the peer and remembers it.
    pub fn offer(&mut self, s: &mut Session, name: &str, size: u64, source: Source) -> TransferId {
        let id = s
            .offer_file("", name, size, "application/octet-stream")
            .unwrap();
        self.sources.insert(id, source);
        id
    }

    /// Offers `size` bytes of `pattern` to the peer.
    pub fn offer_pattern(
        &mut self,
        s: &mut Session,
        name: &str,
        size: u64,
        pattern: &Pattern,
    ) -> TransferId {
        self.offer(s, name, size, Source::Pattern(pattern.clone()))
    }

    /// Offers the in-memory `file` to the peer.
    pub fn offer_mem(&mut self, s: &mut Session, name: &str, file: &Bytes) -> TransferId {
        self.offer(s, name, file.len() as u64, Source::Mem(file.clone()))
    }

    /// Why transfer `id` failed; panics if it did not end, or ended well.
    pub fn failure(&self, id: TransferId) -> &TransferFailure {
        match self.outcome(id) {
            Some(Err(f)) => f,
            other => panic!("transfer {id} did not fail: {other:?}"),
        }
    }

    /// The outcome of transfer `id`, if it ended.
    pub fn outcome(&self, id: TransferId) -> Option<&Result<Digest, TransferFailure>> {
        self.finished
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, _, r)| r)
    }

    /// Receiver-side bytes written for `id`.
    pub fn written(&self, id: TransferId) -> u64 {
        self.sinks.get(&id).map_or(0, |s| s.len)
    }

    /// Drains the session's events and does the due reads and writes. Returns whether
    /// anything happened.
    pub fn poll(&mut self, s: &mut Session, now: Instant) -> bool {
        let mut happened = false;
        loop {
            let mut moved = false;
            while let Some(ev) = s.poll_event() {
                moved = true;
                self.record(s, ev, now);
            }
            if !self.hold {
                moved |= self.do_reads(s);
                moved |= self.do_writes(s, now);
            }
            if !moved {
                return happened;
            }
            happened = true;
        }
    }

    /// When a paced write becomes due, if one waits.
    pub fn wake_time(&self) -> Option<Instant> {
        if self.hold || self.writes.is_empty() {
            return None;
        }
        self.next_write
    }

    fn record(&mut self, s: &mut Session, ev: Event, now: Instant) {
        let ev = match ev {
            Event::Transfer(ev) => ev,
            Event::Text { text, .. } => {
                let written = self.sinks.values().map(|s| s.len).sum();
                self.texts
                    .push((text.to_string(), written, self.finished.len()));
                return;
            }
            other => {
                self.other.push(other);
                return;
            }
        };
        match ev {
            TransferEvent::Offered(offer) => {
                if self.answer == Answer::Accept {
                    let sink = self
                        .sinks
                        .remove(&offer.id)
                        .unwrap_or_else(|| self.new_sink());
                    s.accept_offer(offer.id, sink.len).unwrap();
                    self.sinks.insert(offer.id, sink);
                }
                self.offers.push(offer);
            }
            TransferEvent::Accepted { id, offset } => self.accepted.push((id, offset)),
            TransferEvent::Read { id, offset, len } => {
                let end = self.read_end.entry(id).or_default();
                *end = (*end).max(offset + len as u64);
                self.reads.push_back((id, offset, len));
            }
            TransferEvent::Data { id, offset, data } => self.writes.push_back((id, offset, data)),
            TransferEvent::Progress(p) => self.progress.push((now, p)),
            TransferEvent::Relayed { .. } => {}
            TransferEvent::Finished {
                id,
                direction,
                result,
            } => {
                // Reads for an ended transfer are moot; writes already received still land.
                self.reads.retain(|r| r.0 != id);
                self.finished.push((id, direction, result));
            }
            other @ TransferEvent::SenderDone { .. } => self.other.push(Event::Transfer(other)),
        }
    }

    fn do_reads(&mut self, s: &mut Session) -> bool {
        let mut moved = false;
        while let Some((id, offset, len)) = self.reads.pop_front() {
            moved = true;
            let data = match (self.sources.get(&id), self.sinks.get(&id)) {
                (Some(src), _) => src.read(offset, len),
                (None, Some(sink)) => sink.read(offset, len),
                _ => panic!("read for unknown transfer {id}"),
            };
            s.provide_data(id, offset, data).unwrap();
        }
        moved
    }

    fn do_writes(&mut self, s: &mut Session, now: Instant) -> bool {
        let mut budget = usize::MAX;
        if let Some((n, every)) = self.write_pace {
            match self.next_write {
                Some(t) if t > now => return false,
                _ if self.writes.is_empty() => return false,
                _ => {
                    budget = n;
                    self.next_write = Some(now + every);
                }
            }
        }
        let mut moved = false;
        while budget > 0 {
            let Some((id, offset, data)) = self.writes.pop_front() else {
                break;
            };
            budget -= 1;
            moved = true;
            let sink = self.sinks.entry(id).or_default();
            match sink.corrupt {
                Some((at, mask)) if at >= offset && at < offset + data.len() as u64 => {
                    let mut v = data.to_vec();
                    v[(at - offset) as usize] ^= mask;
                    sink.write(offset, &v);
                }
                _ => sink.write(offset, &data),
            }
            // The transfer may have ended meanwhile (cancelled, peer lost): that is fine.
            let _ = s.data_written(id, data.len() as u64);
        }
        moved
    }
}

/// A connected pair whose transfers use `tc` on both sides.
pub fn pair(tc: TransferConfig, seed: u64) -> Pair {
    let cfg = Config {
        transfer: tc,
        ..Config::default()
    };
    Pair::connected(cfg.clone(), cfg, seed)
}

/// Runs the pair with its two hosts until `done` holds, advancing virtual time only when
/// nothing else can happen. Panics after `limit` of virtual time or if the pair is stuck.
pub fn run(
    net: &mut Pair,
    client: &mut Host,
    server: &mut Host,
    limit: Duration,
    mut done: impl FnMut(&Pair, &Host, &Host) -> bool,
) {
    let end = net.now + limit;
    loop {
        net.settle();
        let now = net.now;
        let a = client.poll(&mut net.client, now);
        let b = server.poll(&mut net.server, now);
        if done(net, client, server) {
            return;
        }
        if a || b {
            continue;
        }
        let next = [net.next_time(), client.wake_time(), server.wake_time()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t > net.now => {
                assert!(t <= end, "the condition did not hold within {limit:?}");
                net.run_until(t);
            }
            _ => panic!("the pair is stuck: nothing can happen and the condition does not hold"),
        }
    }
}

/// `n` seconds of virtual time.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A condition for [`run`]: transfer `id` ended on both sides.
pub fn ended(id: TransferId) -> impl FnMut(&Pair, &Host, &Host) -> bool {
    move |_, c, s| c.outcome(id).is_some() && s.outcome(id).is_some()
}

/// A condition for [`run`]: the server's application received an offer.
pub fn offered(_: &Pair, _: &Host, s: &Host) -> bool {
    !s.offers.is_empty()
}

/// A condition for [`run`]: transfer `id` ended on the client.
pub fn ended_on_client(id: TransferId) -> impl FnMut(&Pair, &Host, &Host) -> bool {
    move |_, c, _| c.outcome(id).is_some()
}

/// A condition for [`run`]: transfer `id` ended on the server.
pub fn ended_on_server(id: TransferId) -> impl FnMut(&Pair, &Host, &Host) -> bool {
    move |_, _, s| s.outcome(id).is_some()
}

/// Default transfer settings but for the stall timeout.
pub fn stalls_after(stall_timeout: Duration) -> TransferConfig {
    TransferConfig {
        stall_timeout,
        ..TransferConfig::default()
    }
}

/// A connected pair whose server accepts every offer into sinks checked against the pattern
/// of `seed`: `(net, client, server, pattern)`.
pub fn checked_pair(tc: TransferConfig, seed: u64) -> (Pair, Host, Host, Pattern) {
    let pattern = Pattern::new(seed);
    let server = Host::accepting(Some(pattern.clone()));
    (pair(tc, seed), Host::default(), server, pattern)
}
