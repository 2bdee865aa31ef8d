//! The hub with accounts on: a hello waits in the verifying state for the driver's verdict
//! (spec §6.2). Real sessions on both ends, bytes moved by hand, virtual time.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tidings_core::hub::{ConnId, Hub, HubConfig, HubEvent};
use tidings_core::session::{Closed, Config, Event, Login, Session};
use tidings_core::wire::{login_method, Hello, Message, Preamble, Secret, MIN_MAX_FRAME};
use tidings_core::ErrorCode;

struct Net {
    hub: Hub,
    now: Instant,
    clients: Vec<(ConnId, Session)>,
}

impl Net {
    fn new(accounts: bool) -> Net {
        let now = Instant::now();
        let config = HubConfig {
            accounts,
            ..HubConfig::default()
        };
        Net {
            hub: Hub::new(config, now),
            now,
            clients: Vec::new(),
        }
    }

    /// A client asking for `name`, with `password` if any; returns its index.
    fn connect(&mut self, name: &str, password: Option<&str>) -> usize {
        let conn = self.hub.connect(self.now);
        let session = match password {
            Some(p) => Session::client_with_password(Config::default(), name, p, self.now),
            None => Session::client(Config::default(), name, self.now)
                .map_err(tidings_core::session::SendError::BadName),
        }
        .unwrap();
        self.clients.push((conn, session));
        self.pump();
        self.clients.len() - 1
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (conn, s) in &mut self.clients {
                while let Some(b) = s.poll_transmit() {
                    self.hub.handle_input(self.now, *conn, &b);
                    moved = true;
                }
            }
            while self.hub.poll_ready().is_some() {}
            for (conn, s) in &mut self.clients {
                while let Some(b) = self.hub.poll_transmit(*conn) {
                    s.handle_input(self.now, &b);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// The hub's events so far.
    fn events(&mut self) -> Vec<HubEvent> {
        std::iter::from_fn(|| self.hub.poll_event()).collect()
    }

    /// The one `Verify` among the events so far.
    fn verify(&mut self) -> (ConnId, String, Option<Login>) {
        let mut found = None;
        for ev in self.events() {
            if let HubEvent::Verify { conn, name, login } = ev {
                assert!(found.is_none(), "one Verify expected");
                found = Some((conn, name.to_string(), login));
            }
        }
        found.expect("a Verify event")
    }

    fn client_events(&mut self, i: usize) -> Vec<Event> {
        let s = &mut self.clients[i].1;
        std::iter::from_fn(|| s.poll_event()).collect()
    }
}

fn refused_with(events: &[Event]) -> Option<(ErrorCode, String)> {
    events.iter().find_map(|e| match e {
        Event::Closed(Closed::Peer { code, reason }) => Some((*code, reason.to_string())),
        _ => None,
    })
}

#[test]
fn no_welcome_before_the_verdict_then_allow_admits() {
    let mut net = Net::new(true);
    let a = net.connect("alice", Some("correct horse"));
    let (conn, name, login) = net.verify();
    assert_eq!(conn, net.clients[a].0);
    assert_eq!(name, "alice");
    let login = login.expect("the login travels with the verify event");
    assert_eq!(login.method, login_method::PASSWORD);
    assert_eq!(login.secret.expose(), "correct horse");
    // Never in Debug output.
    assert!(!format!("{login:?}").contains("correct horse"));
    assert!(net.client_events(a).is_empty(), "no welcome yet");
    assert!(
        !net.hub.wants_input(conn),
        "nothing more is read while verifying"
    );
    assert_eq!(net.hub.peer_count(), 0);
    assert_eq!(net.hub.verifying_count(), 1);

    assert!(net.hub.allow(conn));
    net.pump();
    let evs = net.client_events(a);
    assert!(
        matches!(&evs[..], [Event::Connected(w)] if w.name == "alice"),
        "{evs:?}"
    );
    assert!(net.hub.wants_input(conn));
    assert_eq!(net.hub.peer_count(), 1);
    assert_eq!(net.hub.verifying_count(), 0);
    assert!(!net.hub.allow(conn), "a second verdict does nothing");
}

#[test]
fn deny_refuses_with_the_drivers_code_and_reason() {
    let mut net = Net::new(true);
    let a = net.connect("alice", None);
    let (conn, _, login) = net.verify();
    assert!(login.is_none());
    assert!(net
        .hub
        .deny(conn, ErrorCode::AuthRequired, "alice is a registered name"));
    net.pump();
    let evs = net.client_events(a);
    assert_eq!(
        refused_with(&evs),
        Some((ErrorCode::AuthRequired, "alice is a registered name".into()))
    );
    assert!(net.events().iter().any(|e| matches!(
        e,
        HubEvent::Refused {
            code: ErrorCode::AuthRequired,
            ..
        }
    )));
    assert!(net.hub.is_finished(conn));
    for code in [ErrorCode::AuthFailed, ErrorCode::AuthInsecure] {
        let i = net.connect("bob", Some("pw"));
        let (conn, _, _) = net.verify();
        net.hub.deny(conn, code, "no");
        net.pump();
        let evs = net.client_events(i);
        assert_eq!(refused_with(&evs).map(|r| r.0), Some(code));
        assert!(code.is_fatal());
    }
}

#[test]
fn the_handshake_timeout_runs_while_verifying_and_a_late_verdict_is_ignored() {
    let mut net = Net::new(true);
    let a = net.connect("alice", Some("pw"));
    let (conn, _, _) = net.verify();
    let timeout = HubConfig::default().session.handshake_timeout;
    // The hub's clock only: the client's own handshake timeout is the same.
    net.now += timeout + Duration::from_millis(1);
    net.hub.handle_timeout(net.now);
    net.pump();
    let evs = net.client_events(a);
    let closed = evs.iter().find_map(|e| match e {
        Event::Closed(Closed::Peer { code, .. }) => Some(*code),
        _ => None,
    });
    assert_eq!(closed, Some(ErrorCode::HeartbeatTimeout), "{evs:?}");
    assert_eq!(net.hub.verifying_count(), 0);
    assert!(!net.hub.allow(conn), "the verdict came too late");
    assert_eq!(net.hub.peer_count(), 0);
}

#[test]
fn name_taken_is_checked_when_the_verdict_arrives() {
    let mut net = Net::new(true);
    let a = net.connect("alice", Some("pw"));
    let (first, _, _) = net.verify();
    let b = net.connect("ALICE", Some("pw"));
    let (second, _, _) = net.verify();
    assert!(net.hub.allow(first));
    assert!(net.hub.allow(second));
    net.pump();
    assert!(matches!(&net.client_events(a)[..], [Event::Connected(_)]));
    let evs = net.client_events(b);
    assert_eq!(refused_with(&evs).map(|r| r.0), Some(ErrorCode::NameTaken));
    assert_eq!(net.hub.peer_count(), 1);
}

#[test]
fn an_invalid_name_is_refused_at_once_without_asking() {
    let mut net = Net::new(true);
    let conn = net.hub.connect(net.now);
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
    Message::Hello(Hello {
        name: "no spaces".into(),
        capabilities: 0,
        max_frame: MIN_MAX_FRAME,
    })
    .encode(&mut wire);
    net.hub.handle_input(net.now, conn, &wire);
    let evs = net.events();
    assert!(!evs.iter().any(|e| matches!(e, HubEvent::Verify { .. })));
    assert!(evs.iter().any(|e| matches!(
        e,
        HubEvent::Refused {
            code: ErrorCode::NameInvalid,
            ..
        }
    )));
}

/// Raw frames from a client that sends `msgs` after its preamble; the hub's answer.
fn raw(net: &mut Net, msgs: &[Message]) -> (ConnId, Vec<Message>) {
    let conn = net.hub.connect(net.now);
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&Preamble::CURRENT.to_bytes());
    for m in msgs {
        m.encode(&mut wire);
    }
    net.hub.handle_input(net.now, conn, &wire);
    (conn, answer(net, conn))
}

fn answer(net: &mut Net, conn: ConnId) -> Vec<Message> {
    while net.hub.poll_ready().is_some() {}
    let mut out = BytesMut::new();
    while let Some(b) = net.hub.poll_transmit(conn) {
        out.extend_from_slice(&b);
    }
    let mut dec = tidings_core::wire::FrameDecoder::new(1 << 20);
    let preamble = Preamble::CURRENT.to_bytes();
    dec.push(out.strip_prefix(&preamble[..]).unwrap_or(&out));
    std::iter::from_fn(|| dec.next_frame().unwrap())
        .map(|f| Message::decode(f).unwrap())
        .collect()
}

fn login(secret: &str) -> Message {
    Message::Login {
        method: login_method::PASSWORD,
        secret: Secret::new(secret),
    }
}

fn hello(name: &str) -> Message {
    Message::Hello(Hello {
        name: name.into(),
        capabilities: 0,
        max_frame: MIN_MAX_FRAME,
    })
}

fn error_code(msgs: &[Message]) -> Option<ErrorCode> {
    msgs.iter().find_map(|m| match m {
        Message::Error { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn login_after_hello_or_twice_is_unexpected_message() {
    for accounts in [false, true] {
        let mut net = Net::new(accounts);
        let (_, out) = raw(&mut net, &[login("a"), login("b"), hello("alice")]);
        assert_eq!(
            error_code(&out),
            Some(ErrorCode::UnexpectedMessage),
            "{out:?}"
        );
        assert_eq!(net.hub.verifying_count(), 0);

        // After hello: the client had to wait for welcome (or the verdict), so the session
        // fails before any answer, and the hub forgets the connection.
        let mut net = Net::new(accounts);
        let (_, out) = raw(&mut net, &[hello("alice"), login("a")]);
        assert!(!matches!(out.first(), Some(Message::Welcome(_))), "{out:?}");
        assert_eq!(
            error_code(&out),
            Some(ErrorCode::UnexpectedMessage),
            "{out:?}"
        );
        assert_eq!(net.hub.verifying_count(), 0);
        assert_eq!(net.hub.peer_count(), 0);
    }
}

#[test]
fn without_accounts_a_login_is_read_and_ignored() {
    let mut net = Net::new(false);
    let a = net.connect("alice", Some("anything"));
    let evs = net.client_events(a);
    assert!(matches!(&evs[..], [Event::Connected(_)]), "{evs:?}");
    assert!(!net
        .events()
        .iter()
        .any(|e| matches!(e, HubEvent::Verify { .. })));
}

#[test]
fn a_secret_over_1024_bytes_is_malformed() {
    let mut net = Net::new(true);
    let (_, out) = raw(&mut net, &[login(&"x".repeat(1025)), hello("alice")]);
    assert_eq!(error_code(&out), Some(ErrorCode::Malformed), "{out:?}");
    let mut net = Net::new(true);
    let (_, out) = raw(&mut net, &[login(&"x".repeat(1024)), hello("alice")]);
    assert!(out.is_empty(), "1024 bytes are fine: {out:?}");
    assert!(
        Session::client_with_password(Config::default(), "a", &"x".repeat(1025), net.now).is_err()
    );
}

#[test]
fn nothing_is_read_while_verifying_and_a_message_sent_early_is_unexpected() {
    let mut net = Net::new(true);
    let (conn, out) = raw(
        &mut net,
        &[
            login("pw"),
            hello("bob"),
            Message::Text {
                peer: "".into(),
                private: false,
                text: "early".into(),
            },
        ],
    );
    // The client must wait for welcome (spec §6.2), as without accounts.
    assert_eq!(
        error_code(&out),
        Some(ErrorCode::UnexpectedMessage),
        "{out:?}"
    );
    assert!(!net.hub.allow(conn), "it closed: no verdict applies");
}
