//! Property test: any interleaving of offers, answers (resumes included), reads, writes,
//! byte deliveries of random sizes each way, time steps, cancels, chat and (rarely) a dropped
//! connection keeps the transfer invariants, and once everything is let through every
//! transfer ends on both sides.
//!
//! Invariants checked after every step:
//! * no chunk is ever transmitted beyond the credit its receiver has transmitted (checked by
//!   decoding both byte streams), and no session closes or reports a protocol error;
//! * `Data` arrives in order, without gaps, with the sender's bytes;
//! * progress is monotone and never beyond the size;
//! * a transfer ends once per side, and nothing is reported for it afterwards;
//! * `Finished(Ok)` on a receiver only with every byte written and the file's SHA-256.

mod sim;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use sim::{Pair, Rng};
use tidings_core::session::{Event, Session};
use tidings_core::transfer::{Direction, TransferConfig, TransferEvent};
use tidings_core::wire::{FrameDecoder, Message, MAX_FRAME_CEILING};
use tidings_core::ErrorCode;

#[derive(Debug, Clone)]
enum Op {
    Offer {
        side: usize,
        size: usize,
    },
    Answer {
        side: usize,
        pick: usize,
        resume: u8,
        reject: bool,
    },
    Reads {
        side: usize,
        n: usize,
    },
    Writes {
        side: usize,
        n: usize,
    },
    Deliver {
        dir: usize,
        n: usize,
    },
    Advance {
        ms: u64,
    },
    Cancel {
        side: usize,
        pick: usize,
    },
    Text {
        side: usize,
    },
    /// The connection drops: both sides see the end of the stream; bytes in flight are lost.
    Cut,
}

/// Empty, tiny and small files.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 2 => 1..100usize, 4 => 100..40_000usize]
}

/// The kept fraction of a file, in 255ths: none, all, or anything between.
fn resume() -> impl Strategy<Value = u8> {
    prop_oneof![2 => Just(0u8), 1 => Just(255u8), 2 => any::<u8>()]
}

fn op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    prop_oneof![
        10 => (side.clone(), size()).prop_map(|(side, size)| Op::Offer { side, size }),
        20 => (side.clone(), any::<usize>(), resume(), prop::bool::weighted(0.15))
            .prop_map(|(side, pick, resume, reject)| Op::Answer { side, pick, resume, reject }),
        40 => (side.clone(), 1..8usize).prop_map(|(side, n)| Op::Reads { side, n }),
        40 => (side.clone(), 1..8usize).prop_map(|(side, n)| Op::Writes { side, n }),
        60 => (0..2usize, 1..20_000usize).prop_map(|(dir, n)| Op::Deliver { dir, n }),
        10 => (0..200u64).prop_map(|ms| Op::Advance { ms }),
        10 => (side.clone(), any::<usize>()).prop_map(|(side, pick)| Op::Cancel { side, pick }),
        10 => side.prop_map(|side| Op::Text { side }),
        // Rare, so that most cases run to the end on one connection.
        1 => Just(Op::Cut),
    ]
}

/// One direction of the connection: bytes in flight and a decoder mirroring the stream (the
/// preambles were exchanged by `pair`, so the mirror sees frames only).
struct Wire {
    bytes: VecDeque<u8>,
    mirror: FrameDecoder,
}

/// The application at one end.
#[derive(Default)]
struct App {
    offers: Vec<(u64, u64)>,
    reads: VecDeque<(u64, u64, usize)>,
    writes: VecDeque<(u64, u64, Bytes)>,
    sinks: HashMap<u64, Vec<u8>>,
    next_data: HashMap<u64, u64>,
    progress: HashMap<u64, u64>,
    finished: HashMap<u64, Result<[u8; 32], ErrorCode>>,
    cancelled: HashSet<u64>,
    texts: usize,
    /// Transfers this side knows of (offered by it, or offers it saw).
    known: HashSet<u64>,
}

struct World {
    now: Instant,
    s: [Session; 2],
    wires: [Wire; 2], // 0: client -> server, 1: server -> client
    apps: [App; 2],
    files: HashMap<u64, Bytes>,
    /// Per (direction of the chunks, id): the credit end transmitted by the receiver.
    credit_end: HashMap<(usize, u64), u64>,
    texts_sent: [usize; 2],
    /// Whether the connection was cut.
    cut: bool,
    rng: Rng,
}

impl World {
    fn new(tc: TransferConfig, seed: u64) -> World {
        let Pair {
            now,
            client,
            server,
            ..
        } = sim::transfer::pair(tc, seed);
        let wire = || Wire {
            bytes: VecDeque::new(),
            mirror: FrameDecoder::new(MAX_FRAME_CEILING),
        };
        World {
            now,
            s: [client, server],
            wires: [wire(), wire()],
            apps: [App::default(), App::default()],
            files: HashMap::new(),
            credit_end: HashMap::new(),
            texts_sent: [0; 2],
            cut: false,
            rng: Rng::new(seed),
        }
    }

    /// Moves transmits onto the wires (checking them) and drains and checks events.
    fn sync(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..2 {
            for side in 0..2 {
                while let Some(b) = self.s[side].poll_transmit() {
                    self.mirror(side, &b)?;
                    self.wires[side].bytes.extend(b.iter());
                }
                while let Some(ev) = self.s[side].poll_event() {
                    self.event(side, ev)?;
                }
            }
        }
        Ok(())
    }

    fn mirror(&mut self, from: usize, b: &[u8]) -> Result<(), TestCaseError> {
        let w = &mut self.wires[from];
        w.mirror.push(b);
        while let Some(frame) = w.mirror.next_frame().map_err(|e| fail(format!("{e:?}")))? {
            let msg = Message::decode(frame).map_err(|e| fail(format!("{e:?}")))?;
            match msg {
                Message::Accept { id, offset, credit } => {
                    // Chunks flow the other way.
                    self.credit_end
                        .insert((1 - from, id), offset + credit as u64);
                }
                Message::Credit { id, bytes } => {
                    *self.credit_end.entry((1 - from, id)).or_default() += bytes as u64;
                }
                Message::Chunk { id, offset, data } => {
                    let end = offset + data.len() as u64;
                    let allowed = self.credit_end.get(&(from, id)).copied().unwrap_or(0);
                    prop_assert!(
                        end <= allowed,
                        "chunk of {id} to {end} beyond credit {allowed}"
                    );
                }
                Message::Error { code, text } => {
                    return Err(fail(format!("side {from} sent error {code:?}: {text}")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn event(&mut self, side: usize, ev: Event) -> Result<(), TestCaseError> {
        let app = &mut self.apps[side];
        let ev = match ev {
            Event::Transfer(ev) => ev,
            Event::Text { .. } => {
                app.texts += 1;
                return Ok(());
            }
            Event::Closed(_) if self.cut => return Ok(()),
            other => return Err(fail(format!("side {side}: unexpected {other:?}"))),
        };
        let id = ev.id();
        prop_assert!(
            !app.finished.contains_key(&id),
            "side {side}: {ev:?} after the end"
        );
        let file = self.files[&id].clone();
        match ev {
            TransferEvent::Offered(o) => {
                prop_assert_eq!(o.size, file.len() as u64);
                app.offers.push((o.id, o.size));
                app.known.insert(o.id);
            }
            TransferEvent::Accepted { .. }
            | TransferEvent::SenderDone { .. }
            | TransferEvent::Relayed { .. } => {}
            TransferEvent::Read { id, offset, len } => {
                prop_assert!(len > 0 && offset + len as u64 <= file.len() as u64);
                app.reads.push_back((id, offset, len));
            }
            TransferEvent::Data { id, offset, data } => {
                let next = app.next_data.entry(id).or_default();
                prop_assert_eq!(offset, *next, "data out of order");
                *next += data.len() as u64;
                let at = offset as usize;
                prop_assert!(
                    data[..] == file[at..at + data.len()],
                    "wrong bytes at {}",
                    at
                );
                app.writes.push_back((id, offset, data));
            }
            TransferEvent::Progress(p) => {
                let last = app.progress.entry(id).or_default();
                prop_assert!(
                    p.done >= *last && p.done <= p.total,
                    "progress {p:?} after {last}"
                );
                prop_assert_eq!(p.total, file.len() as u64);
                *last = p.done;
            }
            TransferEvent::Finished {
                id,
                direction,
                result,
            } => {
                app.reads.retain(|r| r.0 != id);
                app.offers.retain(|o| o.0 != id);
                let digest: [u8; 32] = Sha256::digest(&file).into();
                if let Ok(d) = &result {
                    prop_assert_eq!(*d, digest);
                    if direction == Direction::Receive {
                        prop_assert!(app.sinks[&id] == file[..], "finished without every byte");
                    }
                }
                app.finished.insert(id, result.map_err(|f| f.code));
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Offer { side, size } => {
                let mut v = vec![0u8; size];
                v.iter_mut().for_each(|b| *b = self.rng.next() as u8);
                if let Ok(id) = self.s[side].offer_file("", "f.bin", size as u64, "") {
                    self.files.insert(id, Bytes::from(v));
                    self.apps[side].known.insert(id);
                }
            }
            Op::Answer {
                side,
                pick,
                resume,
                reject,
            } => {
                let app = &mut self.apps[side];
                if app.offers.is_empty() {
                    return Ok(());
                }
                let (id, size) = app.offers.remove(pick % app.offers.len());
                if reject {
                    self.s[side]
                        .reject_offer(id, ErrorCode::Rejected, "no")
                        .map_err(|e| fail(format!("{e}")))?;
                    return Ok(());
                }
                // Resume from a correct kept prefix of a random length.
                let offset = size * resume as u64 / 255;
                app.sinks
                    .insert(id, self.files[&id][..offset as usize].to_vec());
                app.next_data.insert(id, offset);
                self.s[side]
                    .accept_offer(id, offset)
                    .map_err(|e| fail(format!("{e}")))?;
            }
            Op::Reads { side, n } => {
                for _ in 0..n {
                    let Some((id, offset, len)) = self.apps[side].reads.pop_front() else {
                        break;
                    };
                    let bytes = match self.apps[side].sinks.get(&id) {
                        // A receiver reads its kept prefix.
                        Some(sink) => Bytes::copy_from_slice(&sink[offset as usize..][..len]),
                        None => self.files[&id].slice(offset as usize..offset as usize + len),
                    };
                    let r = self.s[side].provide_data(id, offset, bytes);
                    prop_assert!(r.is_ok(), "provide {id}@{offset}: {r:?}");
                }
            }
            Op::Writes { side, n } => {
                for _ in 0..n {
                    let Some((id, _, data)) = self.apps[side].writes.pop_front() else {
                        break;
                    };
                    self.apps[side]
                        .sinks
                        .get_mut(&id)
                        .unwrap()
                        .extend_from_slice(&data);
                    let r = self.s[side].data_written(id, data.len() as u64);
                    let ended = self.apps[side].finished.contains_key(&id);
                    prop_assert!(r.is_ok() || ended, "write ack {id}: {r:?}");
                }
            }
            Op::Deliver { dir, n } => {
                let w = &mut self.wires[dir];
                let n = n.min(w.bytes.len());
                let piece: Vec<u8> = w.bytes.drain(..n).collect();
                self.s[1 - dir].handle_input(self.now, &piece);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                for s in &mut self.s {
                    s.handle_timeout(self.now);
                }
            }
            Op::Cancel { side, pick } => {
                let mut live: Vec<u64> = self
                    .files
                    .keys()
                    .copied()
                    .filter(|id| !self.apps[side].finished.contains_key(id))
                    .collect();
                live.sort_unstable();
                if live.is_empty() {
                    return Ok(());
                }
                let id = live[pick % live.len()];
                if self.s[side]
                    .cancel_transfer(id, ErrorCode::Cancelled, "test")
                    .is_ok()
                {
                    self.apps[0].cancelled.insert(id);
                    self.apps[1].cancelled.insert(id);
                }
            }
            Op::Text { side } => {
                let sent = self.s[side].send_text("", "hi");
                prop_assert!(sent.is_ok() || self.cut, "{:?}", sent);
                self.texts_sent[side] += 1;
            }
            Op::Cut => {
                self.cut = true;
                for w in &mut self.wires {
                    w.bytes.clear();
                }
                for s in &mut self.s {
                    s.handle_eof(self.now);
                }
            }
        }
        self.sync()
    }

    /// Lets everything through until every transfer ended on both sides.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..100_000 {
            // Without a cut every offer reaches its receiver; with one, only what each side
            // knew of must end there.
            let all_done = self.apps.iter().all(|a| {
                a.known.iter().all(|id| a.finished.contains_key(id))
                    && (self.cut || self.files.keys().all(|id| a.finished.contains_key(id)))
            });
            if all_done && self.wires.iter().all(|w| w.bytes.is_empty()) {
                return Ok(());
            }
            for side in 0..2 {
                let pending = self.apps[side].offers.len();
                for _ in 0..pending {
                    self.apply(&Op::Answer {
                        side,
                        pick: 0,
                        resume: 0,
                        reject: false,
                    })?;
                }
                self.apply(&Op::Reads { side, n: 64 })?;
                self.apply(&Op::Writes { side, n: 64 })?;
                self.apply(&Op::Deliver {
                    dir: side,
                    n: 1 << 20,
                })?;
            }
            self.apply(&Op::Advance { ms: 1 })?;
        }
        Err(fail("transfers did not end".into()))
    }
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_keeps_the_transfer_invariants(
        seed in 1..u64::MAX,
        chunk_size in 1..3000u32,
        window in 1..10_000u32,
        read_ahead in 1..8000u32,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let tc = TransferConfig { chunk_size, window, read_ahead, ..TransferConfig::default() };
        let mut w = World::new(tc, seed);
        for op in &ops {
            w.apply(op)?;
        }
        w.drain()?;
        for id in w.files.keys() {
            let none = Err(ErrorCode::PeerLost); // the offer was lost in the cut
            let a = w.apps[0].finished.get(id).unwrap_or(&none);
            let b = w.apps[1].finished.get(id).unwrap_or(&none);
            if w.cut {
                // Every transfer ended on both sides (checked by `drain`); one that was
                // not done failed with `peer-lost` (a verdict may have been lost on the way).
                for (a, b) in [(a, b), (b, a)] {
                    if let Err(code) = a {
                        let was_cancelled = w.apps[0].cancelled.contains(id);
                        prop_assert!(
                            *code == ErrorCode::PeerLost || was_cancelled || *code == ErrorCode::Rejected,
                            "{:?} / {:?}", a, b
                        );
                    }
                }
            } else if !w.apps[0].cancelled.contains(id) {
                // Not cancelled: both ends agree; rejected offers are the only other failure.
                match (a, b) {
                    (Ok(x), Ok(y)) => prop_assert_eq!(x, y),
                    (Err(x), Err(y)) => {
                        prop_assert_eq!(x, y);
                        prop_assert_eq!(*x, ErrorCode::Rejected);
                    }
                    _ => prop_assert!(false, "ends disagree on {}: {:?} {:?}", id, a, b),
                }
            }
        }
        if !w.cut {
            prop_assert_eq!(w.apps[1].texts, w.texts_sent[0]);
            prop_assert_eq!(w.apps[0].texts, w.texts_sent[1]);
            prop_assert!(w.s[0].is_open() && w.s[1].is_open());
        }
    }
}
