//! Fuzz body for the hub driven by many peers at once.

use core::time::Duration;
use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};

use crate::hub::{ConnId, Hub, HubConfig, HubEvent};
use crate::wire::{
    FrameDecoder, Hello, Message, Offer, Preamble, Secret, DEFAULT_MAX_FRAME, PREAMBLE_LEN,
};

/// Peers one input drives at most.
const PEERS: usize = 6;
/// Names the peers pick from: a few collide (case and look-alikes), one is the server's.
const NAMES: [&str; 6] = ["ann", "ANN", "bob", "аnn", "tidings", "cy"];

#[derive(Arbitrary, Debug)]
enum Op {
    /// A new connection (up to [`PEERS`]).
    Connect,
    /// Preamble and `hello` with one of [`NAMES`].
    Join(u8, u8),
    /// Raw bytes from a peer.
    Bytes(u8, Vec<u8>),
    /// A frame of any type with an arbitrary body.
    Frame(u8, u8, Vec<u8>),
    /// A well-formed message from a peer to another (by index) or to everyone.
    Text(u8, Option<u8>, String),
    ListRequest(u8),
    Offer(u8, u8, u32, u32),
    Accept(u8, u32, u32),
    Chunk(u8, u32, u32, Vec<u8>),
    Credit(u8, u32, u32),
    Done(u8, u32, [u8; 32]),
    Cancel(u8, u32),
    /// The peer's stream ends.
    Eof(u8),
    /// The runtime gives up on the socket.
    Remove(u8),
    /// Time passes (milliseconds ×16) and due timers fire.
    Advance(u16),
    /// A peer stops reading for a while (its output is not drained this round).
    Stall(u8),
    /// A `login` from a peer (method, secret), before or after its hello.
    Login(u8, u8, String),
    /// With accounts: the driver's verdict on a waiting hello (by index): allow, or refuse
    /// with `auth-failed` or `auth-required`.
    Verdict(u8, u8),
    /// Room requests from a peer that asked for rooms in its hello: join, leave, say in,
    /// list (by the first number) one of [`ROOMS`].
    Room(u8, u8, u8, String),
}

/// Room names the fuzzer uses: some spell one room, one is not a name.
const ROOMS: [&str; 5] = ["lobby", "red", "RЕD", "blue", ".bad"];

/// One peer's view of what the hub sent it.
struct Peer {
    conn: ConnId,
    received: FrameDecoder,
    preamble_seen: bool,
    stalled: bool,
    gone: bool,
    /// Its hello waits for a verdict: no `welcome` may reach it.
    verifying: bool,
}

/// A hub with up to six peers fed arbitrary bytes, well-formed messages naming one another
/// (chat, lists, offers, chunks, credit, digests, cancels), stream ends, removals, stalls and timer
/// firings. It must never panic; whatever it sends any peer must be the server preamble then
/// whole, decodable frames; every `text` it delivers must carry a sender that is registered
/// or the server itself (no spoofing); relayed data must stay within the relay budget, and
/// queued chat output within the chat budget. The first byte turns accounts on (logins, hellos
/// held for the driver's verdict): then no `welcome` may reach a peer before its verdict.
/// `start` is the driver's clock reading: time, as everywhere in core, comes from the caller.
pub fn hub(data: &[u8], start: Instant) {
    let mut u = Unstructured::new(data);
    let mut now = start;
    let accounts = u.arbitrary::<bool>().unwrap_or(false);
    let mut config = HubConfig {
        accounts,
        relay_budget: 1 << 20,
        message_rate: 50,
        message_burst: 20,
        ..HubConfig::default()
    };
    // Windows small enough that several relays compete for the budget.
    config.session.transfer.window = 256 << 10;
    // Chat output bounds small enough that stalled peers reach them: two peers' worth.
    config.session.max_queued_output = 64 << 10;
    config.chat_budget = 128 << 10;
    // The budget is never below one window (a relay could not start otherwise).
    let budget = config
        .relay_budget
        .max(config.session.transfer.window as usize);
    let mut hub = Hub::new(config, now);
    let mut peers: Vec<Peer> = Vec::new();
    // Connections whose hello waits for a verdict, in the order they were asked about.
    let mut waiting: Vec<ConnId> = Vec::new();
    while !u.is_empty() {
        let Ok(op) = u.arbitrary::<Op>() else { break };
        let pick = |i: u8, peers: &[Peer]| (!peers.is_empty()).then(|| i as usize % peers.len());
        let mut wire = BytesMut::new();
        let from = match op {
            Op::Connect => {
                if peers.len() < PEERS {
                    peers.push(Peer {
                        conn: hub.connect(now),
                        received: FrameDecoder::new(DEFAULT_MAX_FRAME),
                        preamble_seen: false,
                        stalled: false,
                        gone: false,
                        verifying: false,
                    });
                }
                None
            }
            Op::Join(p, n) => {
                wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
                Message::Hello(Hello {
                    name: NAMES[n as usize % NAMES.len()].into(),
                    // Half the peers speak rooms (protocol 1.1).
                    capabilities: if n & 0x80 == 0 {
                        0
                    } else {
                        crate::wire::capability::ALL
                    },
                    max_frame: DEFAULT_MAX_FRAME,
                })
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Bytes(p, b) => {
                wire.extend_from_slice(&b);
                pick(p, &peers)
            }
            Op::Frame(p, ty, body) => {
                wire.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
                wire.extend_from_slice(&[ty]);
                wire.extend_from_slice(&body);
                pick(p, &peers)
            }
            Op::Text(p, to, text) => {
                let peer = to.map_or("", |t| NAMES[t as usize % NAMES.len()]);
                Message::Text {
                    peer: peer.into(),
                    private: false,
                    text: text.as_str().into(),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::ListRequest(p) => {
                Message::ListRequest.encode(&mut wire);
                pick(p, &peers)
            }
            Op::Offer(p, to, id, size) => {
                Message::Offer(Offer {
                    id: u64::from(id % 8),
                    peer: NAMES[to as usize % NAMES.len()].into(),
                    size: u64::from(size % (1 << 20)),
                    name: "f.bin".into(),
                    media_type: "".into(),
                })
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Accept(p, id, credit) => {
                Message::Accept {
                    id: u64::from(id % 8),
                    offset: 0,
                    credit: credit % (4 << 20),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Chunk(p, id, offset, data) => {
                Message::Chunk {
                    id: u64::from(id % 8),
                    offset: u64::from(offset % (1 << 20)),
                    data: Bytes::from(data),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Credit(p, id, n) => {
                Message::Credit {
                    id: u64::from(id % 8),
                    bytes: n % (4 << 20),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Done(p, id, digest) => {
                Message::Done {
                    id: u64::from(id % 8),
                    digest,
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Cancel(p, id) => {
                Message::Cancel {
                    id: u64::from(id % 8),
                    code: crate::ErrorCode::Cancelled,
                    reason: "".into(),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Eof(p) => {
                if let Some(i) = pick(p, &peers) {
                    if !peers[i].gone {
                        hub.handle_eof(now, peers[i].conn);
                    }
                }
                None
            }
            Op::Remove(p) => {
                if let Some(i) = pick(p, &peers) {
                    if !peers[i].gone {
                        hub.remove(peers[i].conn);
                        peers[i].gone = true;
                    }
                }
                None
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms) * 16);
                hub.handle_timeout(now);
                None
            }
            Op::Stall(p) => {
                if let Some(i) = pick(p, &peers) {
                    peers[i].stalled = !peers[i].stalled;
                }
                None
            }
            Op::Login(p, method, secret) => {
                Message::Login {
                    method,
                    secret: Secret::new(&secret),
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Room(p, what, r, text) => {
                let room: crate::wire::Utf8 = ROOMS[r as usize % ROOMS.len()].into();
                match what % 4 {
                    0 => Message::Join { room },
                    1 => Message::Leave { room },
                    2 => Message::RoomText {
                        room,
                        peer: "".into(),
                        text: text.as_str().into(),
                    },
                    _ => Message::RoomListRequest,
                }
                .encode(&mut wire);
                pick(p, &peers)
            }
            Op::Verdict(i, choice) => {
                if !waiting.is_empty() {
                    let conn = waiting.remove(i as usize % waiting.len());
                    if let Some(p) = peers.iter_mut().find(|p| p.conn == conn) {
                        p.verifying = false;
                    }
                    match choice % 3 {
                        0 => hub.allow(conn),
                        1 => hub.deny(conn, crate::ErrorCode::AuthFailed, "no"),
                        _ => hub.deny(conn, crate::ErrorCode::AuthRequired, "log in"),
                    };
                }
                None
            }
        };
        if let Some(i) = from {
            // A runtime reads only while the hub wants input; a paused peer's bytes wait.
            if !peers[i].gone && hub.wants_input(peers[i].conn) {
                hub.handle_input(now, peers[i].conn, &wire);
            }
        }
        drain(&mut hub, &mut peers, &mut waiting);
        assert!(
            hub.relay_committed() <= budget,
            "relay budget exceeded: {} > {budget}",
            hub.relay_committed()
        );
        assert!(
            hub.chat_queued() <= 128 << 10,
            "chat budget exceeded: {}",
            hub.chat_queued()
        );
    }
}

/// Takes what the hub queued for each reading peer and checks it frame by frame.
fn drain(hub: &mut Hub, peers: &mut [Peer], waiting: &mut Vec<ConnId>) {
    while hub.poll_ready().is_some() {}
    while let Some(ev) = hub.poll_event() {
        if let HubEvent::Verify { conn, .. } = ev {
            assert!(
                hub.config().accounts,
                "asked for a verdict without accounts"
            );
            if let Some(p) = peers.iter_mut().find(|p| p.conn == conn) {
                p.verifying = true;
            }
            waiting.push(conn);
        }
    }
    for p in peers.iter_mut().filter(|p| !p.gone && !p.stalled) {
        while let Some(bytes) = hub.poll_transmit(p.conn) {
            p.received.push(&bytes);
        }
        if !p.preamble_seen {
            match p.received.take_prefix(PREAMBLE_LEN) {
                Some(pre) => {
                    assert_eq!(&pre[..], &Preamble::CURRENT.to_bytes(), "server preamble");
                    p.preamble_seen = true;
                }
                None => continue,
            }
        }
        while let Some(frame) = p.received.next_frame().expect("hub frames fit the limit") {
            let msg = Message::decode(frame).expect("hub frames decode");
            assert!(
                !(p.verifying && matches!(msg, Message::Welcome(_))),
                "a welcome before the verdict"
            );
            if let Message::Text { peer, .. } | Message::RoomText { peer, .. } = &msg {
                let sender = peer.as_str();
                assert!(
                    sender == hub.name() || NAMES.contains(&sender),
                    "a text stamped with a sender nobody could be: {sender:?}"
                );
            }
        }
        if hub.is_finished(p.conn) {
            hub.remove(p.conn);
            p.gone = true;
        }
    }
}
