//! [`Pair`]: two sessions, a client and a server, joined by a simulated link each way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::session::{Config, Event, Session};
use tidings_core::wire::Utf8;

use super::Rng;

/// How bytes travel in one direction.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Largest piece delivered at once (random split points up to this size).
    pub max_piece: usize,
    /// Latency of every piece.
    pub delay: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            max_piece: 64 << 10,
            delay: Duration::ZERO,
        }
    }
}

/// Bytes in flight in one direction: (delivery time, bytes).
#[derive(Debug, Default)]
struct Wire {
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    cut: bool,
}

/// Two sessions joined by a simulated link, with virtual time.
pub struct Pair {
    pub now: Instant,
    pub client: Session,
    pub server: Session,
    pub to_server: LinkConfig,
    pub to_client: LinkConfig,
    c2s: Wire,
    s2c: Wire,
    pub rng: Rng,
}

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Pair {
    /// A client named `name` and a server, not yet connected.
    pub fn new(client: Config, server: Config, name: &str, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Session::client(client, name, now).unwrap(),
            server: Session::server(server, now),
            to_server: LinkConfig::default(),
            to_client: LinkConfig::default(),
            c2s: Wire::default(),
            s2c: Wire::default(),
            rng: Rng::new(seed),
        }
    }

    /// A connected pair: hello answered with welcome; the `Connected` event consumed.
    pub fn connected(client: Config, server: Config, seed: u64) -> Pair {
        let mut net = Pair::new(client, server, "alice", seed);
        net.settle();
        match net.server.poll_event() {
            Some(Event::Hello(h)) => net
                .server
                .accept_hello(h.name.clone(), Utf8::from("server"), vec![h.name])
                .unwrap(),
            other => panic!("expected hello, got {other:?}"),
        }
        net.settle();
        assert!(matches!(net.client.poll_event(), Some(Event::Connected(_))));
        net
    }

    pub fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Stops delivering bytes in both directions (a dropped connection); each side then
    /// sees end of stream.
    pub fn cut(&mut self) {
        self.c2s.cut = true;
        self.s2c.cut = true;
        self.c2s.in_flight.clear();
        self.s2c.in_flight.clear();
        let now = self.now;
        self.client.handle_eof(now);
        self.server.handle_eof(now);
    }

    /// Moves every transmit onto the wires and delivers what is due at `now`, until nothing
    /// moves. Events stay queued in the sessions.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            moved |= collect(
                &mut self.client,
                &mut self.c2s,
                &self.to_server,
                self.now,
                &mut self.rng,
            );
            moved |= collect(
                &mut self.server,
                &mut self.s2c,
                &self.to_client,
                self.now,
                &mut self.rng,
            );
            moved |= deliver(&mut self.c2s, &mut self.server, self.now);
            moved |= deliver(&mut self.s2c, &mut self.client, self.now);
            if !moved {
                return;
            }
        }
    }

    /// The earliest of the sessions' deadlines and the wires' deliveries.
    pub fn next_time(&self) -> Option<Instant> {
        [
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.c2s.in_flight.front().map(|p| p.0),
            self.s2c.in_flight.front().map(|p| p.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances virtual time to `t`, firing timers and deliveries in order on the way.
    /// Events stay queued.
    pub fn run_until(&mut self, t: Instant) {
        self.settle();
        while let Some(next) = self.next_time().filter(|&n| n <= t && n > self.now) {
            self.now = next;
            self.client.handle_timeout(next);
            self.server.handle_timeout(next);
            self.settle();
        }
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.settle();
    }

    /// Advances virtual time by `d`.
    pub fn advance(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Drains the events of one side.
    pub fn events(&mut self, side: Side) -> Vec<Event> {
        let s = self.session(side);
        std::iter::from_fn(|| s.poll_event()).collect()
    }
}

fn collect(
    s: &mut Session,
    wire: &mut Wire,
    link: &LinkConfig,
    now: Instant,
    rng: &mut Rng,
) -> bool {
    let mut moved = false;
    while let Some(bytes) = s.poll_transmit() {
        moved = true;
        if wire.cut {
            continue;
        }
        for piece in rng.split(&bytes, link.max_piece) {
            wire.in_flight.push_back((now + link.delay, piece));
        }
    }
    moved
}

fn deliver(wire: &mut Wire, to: &mut Session, now: Instant) -> bool {
    let mut moved = false;
    while wire.in_flight.front().is_some_and(|p| p.0 <= now) && to.wants_input() {
        let (_, bytes) = wire.in_flight.pop_front().unwrap();
        to.handle_input(now, &bytes);
        moved = true;
    }
    moved
}

/// Serves a sender's reads from an in-memory "file".
pub fn serve_reads(events: &[Event], s: &mut Session, file: &Bytes) {
    for ev in events {
        if let Event::Transfer(tidings_core::transfer::TransferEvent::Read { id, offset, len }) = ev
        {
            let at = *offset as usize;
            s.provide_data(*id, *offset, file.slice(at..at + len))
                .unwrap();
        }
    }
}
