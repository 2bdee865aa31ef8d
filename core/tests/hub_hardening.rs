//! Hub hardening, simulated with virtual time: the message-rate limit, look-alike names, the
//! total relay-memory budget, stalled relays and the server name's validation.

mod sim;

use std::time::Duration;

use sim::{sha256, HubNet};
use tidings_core::hub::{Hub, HubConfig, HubConfigError};
use tidings_core::session::Closed;
use tidings_core::ErrorCode;

fn limited(rate: u32, burst: u32, grace: Duration) -> HubNet {
    let mut config = HubConfig {
        message_rate: rate,
        message_burst: burst,
        rate_limit_grace: grace,
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    HubNet::new(config, 7)
}

/// Broadcasts `n` numbered texts from `who` in one go.
fn flood(net: &mut HubNet, who: &str, n: usize) {
    for i in 0..n {
        net.client(who)
            .session
            .send_text("", &format!("m{i}"))
            .unwrap();
    }
    net.settle();
}

fn texts_from(net: &mut HubNet, to: &str, from: &str) -> usize {
    net.client(to)
        .texts()
        .iter()
        .filter(|(peer, _, _)| peer == from)
        .count()
}

fn closed_code(net: &mut HubNet, who: &str) -> Option<ErrorCode> {
    net.client(who).closed().map(|c| match c {
        Closed::Local { code, .. } | Closed::Peer { code, .. } => *code,
        Closed::StreamEnded => ErrorCode::PeerLost,
    })
}

// ----- message rate -------------------------------------------------------------------------

#[test]
fn a_flooding_client_is_slowed_to_its_rate_while_others_flow() {
    let mut net = limited(100, 200, Duration::from_secs(60));
    net.join("mallory");
    net.join("alice");
    net.join("bob");
    let mallory = net.client("mallory").conn;
    flood(&mut net, "mallory", 3000);
    // The burst goes through at once; then the hub stops taking mallory's messages.
    let first = texts_from(&mut net, "bob", "mallory");
    assert_eq!(first, 200, "only the burst is relayed at once");
    assert!(!net.hub.wants_input(mallory), "a paused client is not read");
    // Alice, within her rate, is not held up by mallory's backlog.
    net.client("alice")
        .session
        .send_text("", "still here")
        .unwrap();
    net.settle();
    assert!(net
        .client("bob")
        .texts()
        .iter()
        .any(|t| t.2 == "still here"));
    // Over 5 virtual seconds mallory gets 100 a second, give or take one resume step.
    net.advance(Duration::from_secs(5));
    let later = texts_from(&mut net, "bob", "mallory");
    assert!((680..=720).contains(&later), "{later} after 5 s at 100/s");
    assert!(closed_code(&mut net, "mallory").is_none());
    // Messages keep their order and none is lost: the rest arrives in time.
    net.advance(Duration::from_secs(30));
    let got: Vec<String> = net
        .client("bob")
        .texts()
        .into_iter()
        .filter(|t| t.0 == "mallory")
        .map(|t| t.2)
        .collect();
    assert_eq!(got.len(), 3000, "{:?}", net.client("mallory").closed());
    assert!(got.iter().enumerate().all(|(i, t)| *t == format!("m{i}")));
    assert!(net.hub.wants_input(mallory));
}

#[test]
fn a_client_that_keeps_flooding_is_disconnected_with_rate_limited() {
    let mut net = limited(100, 100, Duration::from_secs(3));
    net.join("mallory");
    net.join("bob");
    // More than the grace period's worth of backlog: 3 s at 100/s drains 300 at most.
    flood(&mut net, "mallory", 2000);
    net.advance(Duration::from_secs(2));
    assert!(closed_code(&mut net, "mallory").is_none(), "slowed first");
    net.advance(Duration::from_secs(2));
    assert_eq!(
        closed_code(&mut net, "mallory"),
        Some(ErrorCode::RateLimited)
    );
    // Bob saw at most the burst plus the rate over the grace, then mallory leave.
    let seen = texts_from(&mut net, "bob", "mallory");
    assert!(seen <= 100 + 3 * 100 + 10, "{seen}");
    assert!(net
        .client("bob")
        .presence()
        .contains(&(false, "mallory".into())));
    // Bob is unaffected.
    assert!(closed_code(&mut net, "bob").is_none());
    assert_eq!(net.hub.peer_count(), 1);
}

#[test]
fn a_client_at_its_rate_is_never_slowed() {
    let mut net = limited(20, 20, Duration::from_secs(1));
    net.join("alice");
    net.join("bob");
    let alice = net.client("alice").conn;
    // 19 messages a second for 30 s, and a full burst once.
    flood(&mut net, "alice", 20);
    for _ in 0..30 {
        net.advance(Duration::from_secs(1));
        flood(&mut net, "alice", 19);
        assert!(net.hub.wants_input(alice));
    }
    net.settle();
    assert_eq!(texts_from(&mut net, "bob", "alice"), 20 + 30 * 19);
    assert!(closed_code(&mut net, "alice").is_none());
}

#[test]
fn a_runtime_that_reads_a_paused_client_anyway_gets_it_disconnected() {
    let mut net = limited(10, 10, Duration::from_secs(60));
    net.join("bob");
    let raw = net.raw_hello("mallory", 3, 1 << 20);
    let text = |i: usize| tidings_core::wire::Message::Text {
        peer: sim::u(""),
        private: false,
        text: sim::u(&format!("{i:0>100}")),
    };
    let burst: Vec<_> = (0..20).map(text).collect();
    net.raw_send(raw, false, &burst);
    assert!(!net.hub.wants_input(raw));
    // The driver ignores `wants_input` and keeps feeding 2 MiB of texts.
    let more: Vec<_> = (0..20_000).map(text).collect();
    net.raw_send(raw, false, &more);
    assert!(!net.hub.wants_input(raw));
    let out = &net.raw_out[&raw];
    // The last frame the hub sent is a goodbye with rate-limited (type 0x3F, code 14).
    let goodbye = out.windows(3).rposition(|w| w == [0x3F, 0x00, 14]);
    assert!(goodbye.is_some(), "no goodbye rate-limited");
    assert!(texts_from(&mut net, "bob", "mallory") <= 20);
}

#[test]
fn file_data_does_not_count_against_the_message_rate() {
    let mut net = limited(1, 1, Duration::from_secs(1));
    net.join("alice");
    net.join("bob");
    let file = net.rng.bytes(6 << 20);
    let sent = net.offer("alice", "bob", "big.bin", file.clone());
    let got = net.accept("bob", Vec::new());
    // The offer took the only token (alice is paused for a second); the 6 MiB of chunks
    // after it take none.
    net.advance(Duration::from_secs(2));
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
}

#[test]
fn a_zero_rate_turns_the_limit_off() {
    let mut net = limited(0, 1, Duration::from_millis(1));
    net.join("alice");
    net.join("bob");
    flood(&mut net, "alice", 5000);
    net.settle();
    assert_eq!(texts_from(&mut net, "bob", "alice"), 5000);
}

// ----- names ----------------------------------------------------------------------------------

#[test]
fn look_alike_names_cannot_impersonate_a_client_or_the_server() {
    let mut net = HubNet::with_defaults(3);
    net.join("alice");
    for (i, fake) in [
        "Ａlice",
        "\u{430}lice",
        "ALICE",
        "\u{1D41A}lice",
        "ѕеrvеr",
        "ＳＥＲＶＥＲ",
        "ꜱᴇʀᴠᴇʀ",
    ]
    .into_iter()
    .enumerate()
    {
        let raw = net.raw_hello(fake, 3, 1 << 20);
        // refused (0x03) with name-taken (10).
        let out = &net.raw_out[&raw];
        assert!(
            out.windows(3).any(|w| w == [0x03, 0x00, 10]),
            "{i}: {fake:?} was not refused with name-taken"
        );
    }
    for bad in ["alice\u{200B}", "\u{3164}", "al\u{200D}ice"] {
        let raw = net.raw_hello(bad, 3, 1 << 20);
        let out = &net.raw_out[&raw];
        assert!(
            out.windows(3).any(|w| w == [0x03, 0x00, 11]),
            "{bad:?} was not refused with name-invalid"
        );
    }
    assert_eq!(net.hub.peer_count(), 1);
    // Addressing goes by the same key: text to a look-alike reaches alice.
    net.join("bob");
    net.client("bob")
        .session
        .send_text("ａｌｉｃｅ", "hi")
        .unwrap();
    net.settle();
    assert!(net
        .client("alice")
        .texts()
        .contains(&("bob".into(), true, "hi".into())));
}

#[test]
fn an_invalid_server_name_is_refused_at_construction() {
    let now = std::time::Instant::now();
    for bad in [
        "",
        "my server",
        "-server",
        "x".repeat(33).as_str(),
        "srv\u{200B}",
    ] {
        let config = HubConfig {
            server_name: bad.into(),
            ..HubConfig::default()
        };
        assert!(
            matches!(
                Hub::try_new(config.clone(), now),
                Err(HubConfigError::ServerName(_))
            ),
            "{bad:?}"
        );
        let panic = std::panic::catch_unwind(|| Hub::new(config, now));
        assert!(panic.is_err(), "{bad:?}");
    }
    let good = HubConfig {
        server_name: "Lobby-1".into(),
        ..HubConfig::default()
    };
    assert_eq!(Hub::try_new(good, now).unwrap().name(), "Lobby-1");
}

// ----- relay budget -------------------------------------------------------------------------

#[test]
fn many_relays_share_the_relay_budget_and_all_complete() {
    // 1 MiB windows (the test transfer settings), a budget of three windows, twelve relays
    // of 3 MiB at once between six pairs in both directions, receivers writing slowly.
    const BUDGET: usize = 3 << 20;
    let mut config = HubConfig {
        relay_budget: BUDGET,
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    let mut net = HubNet::new(config, 11);
    let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    for n in &names {
        net.join(n);
    }
    let mut expected = Vec::new();
    for i in 0..12 {
        let (from, to) = (&names[i], &names[(i + 1) % 12]);
        let file = net.rng.bytes((3 << 20) + i * 1000);
        let sent = net.offer(from, to, &format!("f{i}"), file.clone());
        expected.push((from.clone(), sent, to.clone(), file));
    }
    for n in &names {
        net.client(n).write_rate = Some(256 << 10);
    }
    let mut got = Vec::new();
    let mut waited = false;
    for (_, _, to, _) in &expected {
        got.push(net.accept(to, Vec::new()));
        waited |= net.hub.relay_waiting() > 0;
    }
    for step in 0..2_000 {
        waited |= net.hub.relay_waiting() > 0;
        assert!(net.hub.relay_committed() <= BUDGET, "step {step}");
        if net.hub.relay_count() == 0 {
            break;
        }
        net.tick();
        net.advance(Duration::from_millis(10));
    }
    assert_eq!(net.hub.relay_count(), 0, "every relay ended");
    for ((from, sent, to, file), got) in expected.iter().zip(&got) {
        let digest = sha256(file);
        assert_eq!(net.client(to).finished[got], Ok(digest), "{from} -> {to}");
        assert_eq!(
            net.client(from).finished[sent],
            Ok(digest),
            "{from} -> {to}"
        );
        assert_eq!(net.client(to).receiving[got], file.to_vec());
    }
    // The budget held at every step of the simulation, not only between ticks, and it was
    // actually the limit: relays waited to start, and the hub used most of it.
    assert!(net.max_relay_committed_seen <= BUDGET);
    assert!(net.max_relay_total_seen <= BUDGET);
    assert!(waited, "no relay ever waited for the budget");
    assert!(
        net.max_relay_total_seen > BUDGET / 2,
        "{} held at most",
        net.max_relay_total_seen
    );
    assert_eq!(net.hub.relay_committed(), 0);
}

#[test]
fn without_pressure_the_budget_changes_nothing() {
    let mut net = HubNet::with_defaults(12);
    net.join("alice");
    net.join("bob");
    let file = net.rng.bytes(5 << 20);
    let sent = net.offer("alice", "bob", "f", file.clone());
    let got = net.accept("bob", Vec::new());
    assert_eq!(net.hub.relay_waiting(), 0);
    net.settle();
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
    assert!(net.max_relay_committed_seen <= 1 << 20);
}

// ----- a relay that stops moving ------------------------------------------------------------

#[test]
fn a_sender_that_stops_mid_relay_fails_both_hops_at_the_stall_timeout() {
    use tidings_core::wire::{Message, Offer};
    let mut config = HubConfig::default();
    config.session.transfer = sim::hub::test_transfers();
    config.session.transfer.stall_timeout = Duration::from_secs(5);
    let mut net = HubNet::new(config, 13);
    net.join("bob");
    // Alice is a raw connection: she offers, gets credit, sends 128 KiB, then nothing more
    // (her connection stays up; her heartbeat timeout is 30 s).
    let alice = net.raw_connect();
    let hello = sim::hello("alice", 3, 1 << 20);
    let offer = Message::Offer(Offer {
        id: 0,
        peer: sim::u("bob"),
        size: 1 << 20,
        name: sim::u("stuck.bin"),
        media_type: sim::u(""),
    });
    net.raw_send(alice, true, &[hello]);
    net.raw_send(alice, false, &[offer]);
    let got = net.accept("bob", Vec::new());
    let chunks: Vec<Message> = (0..2u64)
        .map(|i| Message::Chunk {
            id: 0,
            offset: i * (64 << 10),
            data: bytes::Bytes::from(vec![7u8; 64 << 10]),
        })
        .collect();
    net.raw_send(alice, false, &chunks);
    assert_eq!(net.client("bob").receiving[&got].len(), 128 << 10);
    net.advance(Duration::from_secs(4));
    assert!(!net.client("bob").finished.contains_key(&got), "too early");
    net.advance(Duration::from_secs(2));
    let failure = net.failure("bob", got);
    assert_eq!(failure.code, ErrorCode::TransferTimeout, "{failure:?}");
    // Alice was told too: a `cancel` (0x46) for id 0 with transfer-timeout (39).
    let mut cancel = vec![0x46];
    cancel.extend_from_slice(&0u64.to_be_bytes());
    cancel.extend_from_slice(&39u16.to_be_bytes());
    let out = &net.raw_out[&alice];
    assert!(
        out.windows(cancel.len()).any(|w| w == cancel),
        "no cancel to alice"
    );
    assert_eq!(net.hub.relay_count(), 0);
    assert_eq!(net.hub.relay_committed(), 0);
    // Both connections stay up: only the transfer ended.
    assert_eq!(net.hub.peer_count(), 2);
}

#[test]
fn a_paused_connection_is_woken_when_it_may_be_read_again() {
    use bytes::BytesMut;
    use std::time::Instant;
    use tidings_core::hub::HubEvent;
    use tidings_core::wire::{Message, Preamble};
    let t0 = Instant::now();
    let config = HubConfig {
        message_rate: 10,
        message_burst: 5,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config, t0);
    let conn = hub.connect(t0);
    let mut b = BytesMut::new();
    b.extend_from_slice(&Preamble::CURRENT.to_bytes());
    sim::hello("mallory", 3, 1 << 20).encode(&mut b);
    hub.handle_input(t0, conn, &b);
    // (The texts only after the hello was answered: before, they would be out of order.)
    let mut b = BytesMut::new();
    for i in 0..20 {
        Message::Text {
            peer: sim::u(""),
            private: false,
            text: sim::u(&format!("t{i}")),
        }
        .encode(&mut b);
    }
    hub.handle_input(t0, conn, &b);
    let texts = |hub: &mut Hub| {
        let mut n = 0;
        while let Some(ev) = hub.poll_event() {
            n += usize::from(matches!(ev, HubEvent::Text { .. }));
        }
        n
    };
    while hub.poll_ready().is_some() {}
    while hub.poll_transmit(conn).is_some() {}
    assert_eq!(texts(&mut hub), 5, "the burst");
    assert!(!hub.wants_input(conn));
    // The pause ends when one token (a tenth of a second at 10/s) is back.
    let t = hub.poll_timeout().unwrap();
    assert!(
        t > t0 && t <= t0 + Duration::from_millis(101),
        "{:?}",
        t - t0
    );
    hub.handle_timeout(t);
    let mut woken = false;
    while let Some(c) = hub.poll_ready() {
        woken |= c == conn;
    }
    assert!(woken, "the reader was not woken when the pause ended");
    assert_eq!(texts(&mut hub), 1);
    // One second later, ten more have been taken in all, never more than the rate.
    let (mut now, mut more) = (t, 0);
    while now < t + Duration::from_secs(1) {
        now = hub.poll_timeout().unwrap();
        assert!(now > t0, "a timer in the past");
        hub.handle_timeout(now);
        while hub.poll_ready().is_some() {}
        while hub.poll_transmit(conn).is_some() {}
        more += texts(&mut hub);
    }
    assert!((9..=11).contains(&more), "{more}");
}
