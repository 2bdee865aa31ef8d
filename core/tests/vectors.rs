//! Runs the conformance vectors of spec/vectors/ against the codec and the session.
//!
//! The vectors are produced by an independent Python implementation of the spec
//! (spec/vectors/generate.py); these tests check that the Rust code produces and accepts the
//! same bytes. Every input is fed three ways — whole, one byte at a time, and in random pieces
//! from fixed seeds — and each way must give exactly the expected outcome.

mod sim;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};
use sim::Rng;
use tidings_core::session::{Closed, Config, Event, RoomEvent, RoomRequest, Session};
use tidings_core::transfer::{Direction, TransferEvent};
use tidings_core::wire::{
    login_method, FrameDecoder, Hello, MemberKind, Message, Offer, PresenceKind, RoomInfo, Secret,
    Utf8, Welcome, DEFAULT_MAX_FRAME, HEADER_LEN, PREAMBLE_LEN,
};
use tidings_core::ErrorCode;

const MESSAGES: &str = include_str!("../../spec/vectors/messages.json");
const ERRORS: &str = include_str!("../../spec/vectors/errors.json");
const SESSION: &str = include_str!("../../spec/vectors/session.json");

/// Seeds of the random-split runs: fixed, so a failure replays.
const SEEDS: [u64; 4] = [1, 7, 42, 0x5eed];

/// How an input is cut into the pieces handed to the code under test.
#[derive(Debug, Clone, Copy)]
enum Split {
    Whole,
    Bytewise,
    Random(u64),
}

fn splits() -> Vec<Split> {
    let mut v = vec![Split::Whole, Split::Bytewise];
    v.extend(SEEDS.iter().map(|&s| Split::Random(s)));
    v
}

fn pieces(bytes: &[u8], split: Split, rng: &mut Option<Rng>) -> Vec<Vec<u8>> {
    match split {
        Split::Whole => vec![bytes.to_vec()],
        Split::Bytewise => bytes.chunks(1).map(<[u8]>::to_vec).collect(),
        Split::Random(seed) => {
            let rng = rng.get_or_insert_with(|| Rng::new(seed));
            // Pieces up to the whole input, so some runs cut only once or twice.
            rng.split(bytes, bytes.len().max(1))
        }
    }
}

fn load(text: &str) -> Value {
    let doc: Value = serde_json::from_str(text).expect("vector file is valid JSON");
    assert_eq!(doc["protocol_version"], 1);
    doc
}

fn vectors(doc: &Value) -> &Vec<Value> {
    doc["vectors"].as_array().expect("a vectors array")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn s(v: &Value) -> Utf8 {
    Utf8::from(v.as_str().expect("a string field"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().expect("an unsigned number field")
}

fn n32(v: &Value) -> u32 {
    u32::try_from(n(v)).expect("a u32 field")
}

fn code(v: &Value) -> ErrorCode {
    ErrorCode::from_u16(u16::try_from(n(&v["code"])).expect("a u16 code"))
}

fn bin(v: &Value) -> Bytes {
    Bytes::from(unhex(v.as_str().expect("a hex field")))
}

fn names(v: &Value) -> Vec<Utf8> {
    v.as_array()
        .expect("a list of names")
        .iter()
        .map(s)
        .collect()
}

/// Builds the message a vector describes, field by field.
fn message_from_json(m: &Value) -> Message {
    let id = || n(&m["id"]);
    let reason = || s(&m["reason"]);
    match m["type"].as_str().expect("a type") {
        "hello" => Message::Hello(Hello {
            name: s(&m["name"]),
            capabilities: n32(&m["capabilities"]),
            max_frame: n32(&m["max_frame"]),
        }),
        "welcome" => Message::Welcome(Welcome {
            name: s(&m["name"]),
            server: s(&m["server"]),
            heartbeat_ms: n32(&m["heartbeat_ms"]),
            timeout_ms: n32(&m["timeout_ms"]),
            max_frame: n32(&m["max_frame"]),
            capabilities: n32(&m["capabilities"]),
            online: names(&m["online"]),
        }),
        "refused" => Message::Refused {
            code: code(m),
            reason: reason(),
        },
        "token" => Message::Token {
            token: Secret::new(s(&m["token"]).as_str()),
        },
        "login" => Message::Login {
            method: match &m["method"] {
                Value::String(name) if name == "password" => login_method::PASSWORD,
                Value::String(name) if name == "token" => login_method::TOKEN,
                other => u8::try_from(n(other)).expect("a u8 method"),
            },
            secret: Secret::new(s(&m["secret"]).as_str()),
        },
        "text" => Message::Text {
            peer: s(&m["peer"]),
            private: m["private"].as_bool().expect("a bool"),
            text: s(&m["text"]),
        },
        "blob" => Message::Blob {
            peer: s(&m["peer"]),
            private: m["private"].as_bool().expect("a bool"),
            media_type: s(&m["media_type"]),
            data: bin(&m["data"]),
        },
        "presence" => Message::Presence {
            kind: match m["kind"].as_str() {
                Some("joined") => PresenceKind::Joined,
                Some("left") => PresenceKind::Left,
                other => panic!("presence kind {other:?}"),
            },
            name: s(&m["name"]),
        },
        "room-text" => Message::RoomText {
            room: s(&m["room"]),
            peer: s(&m["peer"]),
            text: s(&m["text"]),
        },
        "join" => Message::Join {
            room: s(&m["room"]),
        },
        "leave" => Message::Leave {
            room: s(&m["room"]),
        },
        "member" => Message::Member {
            kind: match m["kind"].as_str() {
                Some("joined") => MemberKind::Joined,
                Some("left") => MemberKind::Left,
                Some("removed") => MemberKind::Removed,
                other => panic!("member kind {other:?}"),
            },
            room: s(&m["room"]),
            name: s(&m["name"]),
        },
        "room-members" => Message::RoomMembers {
            room: s(&m["room"]),
            names: names(&m["names"]),
        },
        "room-list-request" => Message::RoomListRequest,
        "room-list" => Message::RoomList {
            rooms: m["rooms"]
                .as_array()
                .expect("a list of rooms")
                .iter()
                .map(|r| RoomInfo {
                    name: s(&r["name"]),
                    members: n32(&r["members"]),
                })
                .collect(),
        },
        "list-request" => Message::ListRequest,
        "peer-list" => Message::PeerList {
            names: names(&m["names"]),
        },
        "ping" => Message::Ping {
            nonce: n(&m["nonce"]),
        },
        "pong" => Message::Pong {
            nonce: n(&m["nonce"]),
        },
        "error" => Message::Error {
            code: code(m),
            text: s(&m["text"]),
        },
        "goodbye" => Message::Goodbye {
            code: code(m),
            reason: reason(),
        },
        "offer" => Message::Offer(Offer {
            id: id(),
            peer: s(&m["peer"]),
            size: n(&m["size"]),
            name: s(&m["name"]),
            media_type: s(&m["media_type"]),
        }),
        "accept" => Message::Accept {
            id: id(),
            offset: n(&m["offset"]),
            credit: n32(&m["credit"]),
        },
        "reject" => Message::Reject {
            id: id(),
            code: code(m),
            reason: reason(),
        },
        "chunk" => Message::Chunk {
            id: id(),
            offset: n(&m["offset"]),
            data: bin(&m["data"]),
        },
        "credit" => Message::Credit {
            id: id(),
            bytes: n32(&m["bytes"]),
        },
        "done" => Message::Done {
            id: id(),
            digest: unhex(m["sha256"].as_str().expect("hex"))
                .try_into()
                .expect("32 bytes"),
        },
        "cancel" => Message::Cancel {
            id: id(),
            code: code(m),
            reason: reason(),
        },
        "complete" => Message::Complete { id: id() },
        "failed" => Message::Failed {
            id: id(),
            code: code(m),
            reason: reason(),
        },
        "extension" => Message::Extension {
            kind: u8::try_from(n(&m["kind"])).expect("a type byte"),
            body: bin(&m["body"]),
        },
        other => panic!("unknown message type {other}"),
    }
}

// ----- messages.json ------------------------------------------------------------------------

#[test]
fn message_vectors_encode_exactly() {
    let doc = load(MESSAGES);
    for v in vectors(&doc) {
        let msg = message_from_json(&v["message"]);
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(
            hex(&out),
            v["hex"].as_str().unwrap(),
            "encode {}",
            v["name"]
        );
        assert_eq!(msg.encoded_len(), out.len(), "encoded_len {}", v["name"]);
        let ty = v["message"]["type"].as_str().unwrap();
        assert_eq!(msg.name(), ty, "name {}", v["name"]);
        // The split encoding (large payloads by reference) gives the same bytes.
        let mut head = BytesMut::new();
        let tail = msg.encode_split(&mut head, 0);
        head.extend_from_slice(tail.as_deref().unwrap_or_default());
        assert_eq!(head, out, "encode_split {}", v["name"]);
    }
}

#[test]
fn message_vectors_decode_whole_bytewise_and_split() {
    let doc = load(MESSAGES);
    let mut runs = 0;
    for v in vectors(&doc) {
        let want = message_from_json(&v["message"]);
        let wire = unhex(v["hex"].as_str().unwrap());
        for split in splits() {
            let mut rng = None;
            let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
            let mut got = Vec::new();
            for piece in pieces(&wire, split, &mut rng) {
                dec.push(&piece);
                while let Some(frame) = dec.next_frame().expect("a valid frame") {
                    got.push(Message::decode(frame).expect("a valid message"));
                }
            }
            assert_eq!(got, vec![want.clone()], "{} {split:?}", v["name"]);
            assert_eq!(dec.buffered(), 0);
            assert_eq!(dec.finish(), Ok(()));
            runs += 1;
        }
    }
    assert!(runs >= 50 * 6);
}

#[test]
fn all_message_vectors_back_to_back_in_one_stream() {
    let doc = load(MESSAGES);
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for v in vectors(&doc) {
        stream.extend(unhex(v["hex"].as_str().unwrap()));
        want.push(message_from_json(&v["message"]));
    }
    for split in splits() {
        let mut rng = None;
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for piece in pieces(&stream, split, &mut rng) {
            dec.push(&piece);
            while let Some(frame) = dec.next_frame().unwrap() {
                got.push(Message::decode(frame).unwrap());
            }
        }
        assert_eq!(got, want, "{split:?}");
    }
}

#[test]
fn every_message_type_has_a_vector() {
    let doc = load(MESSAGES);
    let types: std::collections::HashSet<&str> = vectors(&doc)
        .iter()
        .map(|v| v["message"]["type"].as_str().unwrap())
        .collect();
    for t in [
        "hello",
        "welcome",
        "refused",
        "login",
        "token",
        "text",
        "blob",
        "presence",
        "list-request",
        "peer-list",
        "ping",
        "pong",
        "error",
        "goodbye",
        "offer",
        "accept",
        "reject",
        "chunk",
        "credit",
        "done",
        "cancel",
        "complete",
        "failed",
        "extension",
    ] {
        assert!(types.contains(t), "no vector for {t}");
    }
}

// ----- errors.json --------------------------------------------------------------------------

/// Feeds an error vector and returns (whole frames decoded before the error, the error code).
fn run_error_vector(v: &Value, split: Split) -> (u64, Option<ErrorCode>) {
    let wire = unhex(v["hex"].as_str().unwrap());
    let max = n32(&v["max_frame"]);
    let mut rng = None;
    let mut dec = FrameDecoder::new(max);
    let mut frames = 0;
    for piece in pieces(&wire, split, &mut rng) {
        dec.push(&piece);
        loop {
            match dec.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => match Message::decode(frame) {
                    Ok(_) => frames += 1,
                    Err(e) => return (frames, Some(e.code)),
                },
                Err(e) => return (frames, Some(e.code)),
            }
            assert!(dec.buffered() <= max as usize + HEADER_LEN);
        }
    }
    if v["eof"].as_bool().unwrap() {
        if let Err(e) = dec.finish() {
            return (frames, Some(e.code));
        }
    }
    (frames, None)
}

#[test]
fn error_vectors_whole_bytewise_and_split() {
    let doc = load(ERRORS);
    for v in vectors(&doc) {
        let want = code(&v["error"]);
        assert_eq!(
            want.name(),
            v["error"]["code_name"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        for split in splits() {
            let got = run_error_vector(v, split);
            assert_eq!(
                got,
                (n(&v["frames_before"]), Some(want)),
                "{} {split:?}",
                v["name"]
            );
            assert!(
                want.is_fatal(),
                "{}: decoding errors always end the connection",
                v["name"]
            );
        }
    }
}

#[test]
fn error_code_names_match_the_spec_table() {
    // The generator's table of names and numbers, repeated through the vectors.
    let doc = load(SESSION);
    let mut seen = 0;
    for v in vectors(&doc) {
        if let Some(c) = v["expect"]["closed"].as_object() {
            let code = ErrorCode::from_u16(n(&c["code"]) as u16);
            assert_eq!(code.name(), c["code_name"].as_str().unwrap());
            seen += 1;
        }
    }
    assert!(seen > 20);
}

// ----- session.json -------------------------------------------------------------------------

/// What a session did during a vector: its bytes, its events and how it closed.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    reply: Vec<u8>,
    events: Vec<Value>,
    closed: Option<Value>,
}

fn code_json(code: ErrorCode) -> (Value, Value) {
    (json!(code.to_u16()), json!(code.name()))
}

fn with_code(mut obj: Map<String, Value>, c: ErrorCode) -> Value {
    let (num, name) = code_json(c);
    obj.insert("code".into(), num);
    obj.insert("code_name".into(), name);
    Value::Object(obj)
}

/// An event in the vectors' notation; `None` for progress reports, which depend on timing
/// and are not part of the protocol.
fn event_json(ev: Event) -> Option<Value> {
    Some(match ev {
        Event::Hello(h) => json!({"event": "hello", "name": h.name.as_str(),
            "capabilities": h.capabilities, "max_frame": h.max_frame}),
        Event::Token(t) => json!({"event": "token", "token": t.expose()}),
        Event::Connected(w) => json!({"event": "connected", "name": w.name.as_str(),
            "server": w.server.as_str(),
            "online": w.online.iter().map(|n| n.as_str()).collect::<Vec<_>>()}),
        Event::Text {
            peer,
            private,
            text,
        } => json!({"event": "text", "peer": peer.as_str(),
            "private": private, "text": text.as_str()}),
        Event::Blob {
            peer,
            private,
            media_type,
            data,
        } => json!({"event": "blob",
            "peer": peer.as_str(), "private": private, "media_type": media_type.as_str(),
            "data": hex(&data)}),
        Event::Presence { kind, name } => json!({"event": "presence",
            "kind": if kind == PresenceKind::Joined { "joined" } else { "left" },
            "name": name.as_str()}),
        Event::PeerList(names) => json!({"event": "peer-list",
            "names": names.iter().map(|n| n.as_str()).collect::<Vec<_>>()}),
        Event::PeerListRequested => json!({"event": "list-request"}),
        Event::RoomRequest(r) => match r {
            RoomRequest::Join(room) => json!({"event": "join", "room": room.as_str()}),
            RoomRequest::Leave(room) => json!({"event": "leave", "room": room.as_str()}),
            RoomRequest::Text { room, text } => {
                json!({"event": "room-text", "room": room.as_str(), "text": text.as_str()})
            }
            RoomRequest::List => json!({"event": "room-list-request"}),
        },
        Event::Room(r) => match r {
            RoomEvent::Text { room, peer, text } => json!({"event": "room-text",
                "room": room.as_str(), "peer": peer.as_str(), "text": text.as_str()}),
            RoomEvent::Member { kind, room, name } => json!({"event": "member",
                "kind": kind.name(), "room": room.as_str(), "name": name.as_str()}),
            RoomEvent::Members { room, names } => json!({"event": "room-members",
                "room": room.as_str(),
                "names": names.iter().map(|n| n.as_str()).collect::<Vec<_>>()}),
            RoomEvent::List(rooms) => json!({"event": "room-list",
                "rooms": rooms.iter().map(|r| json!({"name": r.name.as_str(),
                    "members": r.members})).collect::<Vec<_>>()}),
        },
        Event::PeerError { code, .. } => {
            let obj = json!({"event": "peer-error"});
            with_code(obj.as_object().unwrap().clone(), code)
        }
        Event::Transfer(t) => match t {
            TransferEvent::Offered(o) => json!({"event": "offered", "id": o.id,
                "peer": o.peer.as_str(), "name": o.name, "size": o.size,
                "media_type": o.media_type.as_str()}),
            TransferEvent::Accepted { id, offset } => {
                json!({"event": "accepted", "id": id, "offset": offset})
            }
            TransferEvent::Read { id, offset, len } => {
                json!({"event": "read", "id": id, "offset": offset, "len": len})
            }
            TransferEvent::Data { id, offset, data } => {
                json!({"event": "data", "id": id, "offset": offset, "data": hex(&data)})
            }
            TransferEvent::Progress(_) => return None,
            TransferEvent::Relayed { id, peer, relay_id } => {
                json!({"event": "relayed", "id": id, "peer": peer.as_str(), "relay_id": relay_id})
            }
            TransferEvent::SenderDone { id, digest } => {
                json!({"event": "sender-done", "id": id, "sha256": hex(&digest)})
            }
            TransferEvent::Finished {
                id,
                direction,
                result,
            } => {
                let dir = match direction {
                    Direction::Send => "send",
                    Direction::Receive => "receive",
                };
                match result {
                    Ok(d) => json!({"event": "finished", "id": id, "direction": dir,
                        "ok": true, "sha256": hex(&d)}),
                    Err(f) => {
                        let obj = json!({"event": "finished", "id": id, "direction": dir,
                            "ok": false});
                        with_code(obj.as_object().unwrap().clone(), f.code)
                    }
                }
            }
        },
        Event::Closed(_) => unreachable!("closed is reported separately"),
    })
}

fn closed_json(c: &Closed) -> Value {
    let by = match c {
        Closed::Local { .. } => "local",
        Closed::Peer { .. } => "peer",
        Closed::StreamEnded => "stream",
    };
    with_code(json!({"by": by}).as_object().unwrap().clone(), c.code())
}

/// Drives one session through vector steps, polling every output after every input as the
/// calling contract requires.
struct Driver {
    session: Session,
    start: Instant,
    now: Instant,
    out: Outcome,
    /// The connection takes no bytes (a `write_blocked` step): output stays queued.
    write_blocked: bool,
}

impl Driver {
    fn new(role: &str, config: Config) -> Driver {
        let start = Instant::now();
        let session = match role {
            "server" => Session::server(config, start),
            "client" => Session::client(config, "alice", start).unwrap(),
            other => panic!("role {other}"),
        };
        let mut d = Driver {
            session,
            start,
            now: start,
            out: Outcome::default(),
            write_blocked: false,
        };
        // A client's own preamble and hello are not part of any vector's reply.
        d.drain();
        d.out = Outcome::default();
        d
    }

    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = (!self.write_blocked)
                .then(|| self.session.poll_transmit())
                .flatten()
            {
                self.out.reply.extend_from_slice(&b);
                moved = true;
            }
            while let Some(ev) = self.session.poll_event() {
                moved = true;
                match ev {
                    Event::Closed(c) => {
                        assert!(self.out.closed.is_none(), "closed twice");
                        self.out.closed = Some(closed_json(&c));
                    }
                    ev => {
                        assert!(self.out.closed.is_none(), "event after closed: {ev:?}");
                        self.out.events.extend(event_json(ev));
                    }
                }
            }
            if !moved {
                break;
            }
        }
        // Drained: a deadline of `now` would mean work was left behind.
        if let Some(t) = self.session.poll_timeout() {
            assert!(
                t > self.now || self.session.is_closed() || self.write_blocked,
                "work left after draining"
            );
        }
    }

    fn step(&mut self, step: &Value, split: Split, rng: &mut Option<Rng>) {
        if let Some(h) = step.get("input") {
            for piece in pieces(&unhex(h.as_str().unwrap()), split, rng) {
                self.session.handle_input(self.now, &piece);
                self.drain();
            }
        } else if step.get("eof").is_some() {
            self.session.handle_eof(self.now);
            self.drain();
        } else if let Some(ms) = step.get("timer_ms") {
            self.now = self.start + Duration::from_millis(n(ms));
            self.session.handle_timeout(self.now);
            self.drain();
        } else if let Some(c) = step.get("command") {
            self.command(c.as_str().unwrap(), step);
            self.drain();
        } else if let Some(blocked) = step.get("write_blocked") {
            self.write_blocked = blocked.as_bool().unwrap();
            self.drain();
        } else {
            panic!("unknown step {step}");
        }
    }

    fn command(&mut self, name: &str, a: &Value) {
        let s = &mut self.session;
        let str_of = |k: &str| a[k].as_str().unwrap().to_string();
        let result = match name {
            "accept_hello" => s.accept_hello(s_(&a["name"]), s_(&a["server"]), names(&a["online"])),
            "refuse" => {
                s.refuse(code(a), &str_of("reason"));
                Ok(())
            }
            "goodbye" => {
                s.goodbye(code(a), &str_of("reason"));
                Ok(())
            }
            "accept" => s.accept_offer(n(&a["id"]), n(&a["offset"])),
            "reject" => s.reject_offer(n(&a["id"]), code(a), &str_of("reason")),
            "cancel" => s.cancel_transfer(n(&a["id"]), code(a), &str_of("reason")),
            "written" => s.data_written(n(&a["id"]), n(&a["len"])),
            "provide" => s.provide_data(n(&a["id"]), n(&a["offset"]), bin(&a["data"])),
            "send_text" => s.send_text(&str_of("to"), &str_of("text")),
            "join" => s.join(&str_of("room")),
            "leave" => s.leave(&str_of("room")),
            "send_room_text" => s.send_room_text(&str_of("room"), &str_of("text")),
            "request_room_list" => s.request_room_list(),
            "offer" => s
                .offer_file(
                    &str_of("to"),
                    &str_of("name"),
                    n(&a["size"]),
                    &str_of("media_type"),
                )
                .map(|_| ()),
            other => panic!("unknown command {other}"),
        };
        result.unwrap_or_else(|e| panic!("command {name} failed: {e}"));
    }
}

fn s_(v: &Value) -> Utf8 {
    s(v)
}

/// The session settings a vector asks for; everything else keeps the defaults of spec §9.
fn config_of(v: &Value) -> Config {
    let mut cfg = Config::default();
    let Some(c) = v.get("config").and_then(Value::as_object) else {
        return cfg;
    };
    for (key, value) in c {
        match key.as_str() {
            "window" => cfg.transfer.window = n32(value),
            "max_active" => cfg.transfer.max_active = n(value) as usize,
            "offer_timeout_ms" => cfg.transfer.offer_timeout = Duration::from_millis(n(value)),
            "stall_timeout_ms" => cfg.transfer.stall_timeout = Duration::from_millis(n(value)),
            "max_path_depth" => cfg.transfer.max_path_depth = n(value) as usize,
            "capabilities" => cfg.capabilities = n32(value),
            other => panic!("unknown config key {other}"),
        }
    }
    cfg
}

fn run_session_vector(doc: &Value, v: &Value, split: Split) -> Outcome {
    let mut d = Driver::new(v["role"].as_str().unwrap(), config_of(v));
    if let Some(setup) = v["setup"].as_str() {
        let setup = &doc["setups"][setup];
        for step in setup["steps"].as_array().unwrap() {
            d.step(step, Split::Whole, &mut None);
        }
        assert!(d.out.closed.is_none(), "setup closed the session");
        d.out = Outcome::default();
    }
    let mut rng = None;
    for step in v["steps"].as_array().unwrap() {
        d.step(step, split, &mut rng);
    }
    d.out
}

/// Cuts a reply into the preamble and whole frames.
fn reply_items(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    if bytes.first() == Some(&0x89) {
        items.push(bytes[..PREAMBLE_LEN].to_vec());
        bytes = &bytes[PREAMBLE_LEN..];
    }
    while !bytes.is_empty() {
        assert!(bytes.len() >= HEADER_LEN, "a partial frame in the reply");
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        items.push(bytes[..HEADER_LEN + len].to_vec());
        bytes = &bytes[HEADER_LEN + len..];
    }
    items
}

fn check_reply(name: &Value, got: &[u8], want: &[Value]) {
    let items = reply_items(got);
    assert_eq!(
        items.len(),
        want.len(),
        "{name}: reply {} vs {want:?}",
        hex(got)
    );
    for (item, w) in items.iter().zip(want) {
        if let Some(h) = w.get("hex") {
            assert_eq!(hex(item), h.as_str().unwrap(), "{name}: {}", w["what"]);
        } else {
            let ty = n(&w["type"]) as u8;
            let prefix = unhex(w["prefix"].as_str().unwrap());
            assert!(
                item.len() >= HEADER_LEN,
                "{name}: the preamble where a frame was expected"
            );
            assert_eq!(item[4], ty, "{name}: frame type of {}", hex(item));
            assert!(
                item[HEADER_LEN..].starts_with(&prefix),
                "{name}: {} does not start with {}",
                hex(item),
                hex(&prefix)
            );
        }
    }
}

#[test]
fn session_vectors_whole_bytewise_and_split() {
    let doc = load(SESSION);
    let mut count = 0;
    for v in vectors(&doc) {
        let expect = &v["expect"];
        let mut first: Option<Outcome> = None;
        for split in splits() {
            let got = run_session_vector(&doc, v, split);
            check_reply(&v["name"], &got.reply, expect["reply"].as_array().unwrap());
            assert_eq!(
                Value::Array(got.events.clone()),
                expect["events"],
                "{} {split:?}: events",
                v["name"]
            );
            assert_eq!(
                got.closed.clone().unwrap_or(Value::Null),
                expect["closed"],
                "{} {split:?}: closed",
                v["name"]
            );
            // Every way of cutting gives identical bytes, not only matching ones.
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "{} {split:?} differs from whole", v["name"]),
            }
        }
        count += 1;
    }
    assert!(count >= 80);
}

#[test]
fn every_vector_file_has_unique_names_and_enough_vectors() {
    let mut total = 0;
    for text in [MESSAGES, ERRORS, SESSION, HUB, LEGACY] {
        let doc = load(text);
        let vs = vectors(&doc);
        let mut names: Vec<_> = vs.iter().map(|v| v["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(
            before,
            names.len(),
            "duplicate vector names in {}",
            doc["kind"]
        );
        total += before;
    }
    assert!(total >= 70);
}

/// The committed JSON is exactly what the independent generator produces from the spec, so
/// an edited vector (or an edited generator whose output was not committed) fails here.
#[test]
fn vector_files_are_what_the_generator_produces() {
    sim::check_generated("generate.py");
}

// ----- hub.json -----------------------------------------------------------------------------

const HUB: &str = include_str!("../../spec/vectors/hub.json");

/// Runs a hub vector: a default hub, connections opened in the order the steps name them,
/// every byte the hub sends collected per connection.
fn run_hub_vector(v: &Value, split: Split) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::collections::{BTreeMap, HashMap};
    use tidings_core::hub::{ConnId, Hub, HubConfig};

    let now = Instant::now();
    let mut hub = Hub::new(HubConfig::default(), now);
    let mut conns: HashMap<String, ConnId> = HashMap::new();
    let mut labels: HashMap<ConnId, String> = HashMap::new();
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut rng = None;

    let pump = |hub: &mut Hub,
                out: &mut BTreeMap<String, Vec<u8>>,
                labels: &HashMap<ConnId, String>| loop {
        let mut moved = false;
        while let Some(conn) = hub.poll_ready() {
            while let Some(bytes) = hub.poll_transmit(conn) {
                out.entry(labels[&conn].clone())
                    .or_default()
                    .extend_from_slice(&bytes);
                moved = true;
            }
            if hub.is_finished(conn) {
                hub.remove(conn);
            }
        }
        while hub.poll_event().is_some() {
            moved = true;
        }
        if !moved {
            break;
        }
    };

    for step in v["steps"].as_array().unwrap() {
        let label = step["conn"].as_str().unwrap().to_string();
        let conn = *conns.entry(label.clone()).or_insert_with(|| {
            let id = hub.connect(now);
            labels.insert(id, label.clone());
            out.entry(label.clone()).or_default();
            id
        });
        if let Some(h) = step.get("input") {
            for piece in pieces(&unhex(h.as_str().unwrap()), split, &mut rng) {
                hub.handle_input(now, conn, &piece);
                pump(&mut hub, &mut out, &labels);
            }
        } else if step.get("eof").is_some() {
            hub.handle_eof(now, conn);
            pump(&mut hub, &mut out, &labels);
        } else {
            panic!("unknown hub step {step}");
        }
    }
    out
}

#[test]
fn hub_vectors_whole_bytewise_and_split() {
    let doc = load(HUB);
    let mut count = 0;
    for v in vectors(&doc) {
        let expect = v["expect"].as_object().unwrap();
        let mut first = None;
        for split in splits() {
            let got = run_hub_vector(v, split);
            let got_conns: Vec<&String> = got.keys().collect();
            let want_conns: Vec<&String> = expect.keys().collect();
            assert_eq!(got_conns, want_conns, "{}: connections", v["name"]);
            for (conn, want) in expect {
                let name = json!(format!(
                    "{} {split:?} conn {conn}",
                    v["name"].as_str().unwrap()
                ));
                check_reply(&name, &got[conn], want.as_array().unwrap());
            }
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "{} {split:?} differs from whole", v["name"]),
            }
        }
        count += 1;
    }
    assert!(count >= 20);
}

// ----- legacy.json --------------------------------------------------------------------------

const LEGACY: &str = include_str!("../../spec/vectors/legacy.json");

/// What a legacy vector's gateway sent: every byte toward the server, and every message
/// toward the client (texts parsed as JSON, the close as `{"close", "reason"}`).
fn run_legacy_vector(v: &Value, split: Split) -> (Vec<u8>, Vec<Value>) {
    use tidings_core::gateway::{Gateway, GatewayMode, WsMessage};
    use tidings_core::ws::{Utf8Bytes, WsEvent};

    let now = Instant::now();
    let name = v["client"].as_str().unwrap().to_string();
    let server = v["server_name"].as_str().unwrap_or("");
    let mut gw = Gateway::for_hub(
        GatewayMode::Legacy { name, room: None },
        DEFAULT_MAX_FRAME,
        server,
        now,
    );
    let mut to_server = Vec::new();
    let mut to_client = Vec::new();
    let mut rng = None;
    let mut drain = |gw: &mut Gateway| {
        while let Some(b) = gw.poll_native() {
            to_server.extend_from_slice(&b);
        }
        while let Some(m) = gw.poll_ws() {
            to_client.push(match m {
                WsMessage::Text(t) => json!({"text": serde_json::from_str::<Value>(&t).unwrap()}),
                WsMessage::Close { code, reason } => {
                    json!({"close": code.0, "reason": reason})
                }
                other => panic!("{}: unexpected {other:?}", v["name"]),
            });
        }
    };
    drain(&mut gw);
    for step in v["steps"].as_array().unwrap() {
        if let Some(h) = step["native"].as_str() {
            for piece in pieces(&unhex(h), split, &mut rng) {
                gw.handle_native(now, Bytes::from(piece));
                drain(&mut gw);
            }
        } else if let Some(text) = step["ws_text"].as_str() {
            gw.handle_ws_event(now, WsEvent::Text(Utf8Bytes::from(text.to_string())));
        } else if step["native_eof"] == true {
            gw.handle_native_eof();
        } else {
            panic!("{}: unknown step {step}", v["name"]);
        }
        drain(&mut gw);
    }
    (to_server, to_client)
}

#[test]
fn legacy_vectors_whole_bytewise_and_split() {
    let doc = load(LEGACY);
    let mut count = 0;
    for v in vectors(&doc) {
        for split in splits() {
            let (to_server, to_client) = run_legacy_vector(v, split);
            assert_eq!(
                hex(&to_server),
                v["expect"]["to_server"].as_str().unwrap(),
                "{} {split:?}: bytes to the server",
                v["name"]
            );
            assert_eq!(
                Value::Array(to_client),
                v["expect"]["to_client"],
                "{} {split:?}: messages to the client",
                v["name"]
            );
        }
        count += 1;
    }
    assert!(count >= 10);
}
