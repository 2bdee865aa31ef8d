//! Files relayed through the hub between two clients, simulated: integrity end to end,
//! bounded memory in the hub, slow receivers, resume, and either side going away.

mod sim;

use std::time::Duration;

use sim::{sha256, HubNet};
use tidings_core::hub::HubConfig;
use tidings_core::session::Config;
use tidings_core::transfer::TransferConfig;
use tidings_core::ErrorCode;

const WINDOW: usize = 1 << 20;

fn pair(seed: u64) -> HubNet {
    let mut net = HubNet::with_defaults(seed);
    net.join("alice");
    net.join("bob");
    net
}

#[test]
fn a_relayed_file_of_several_mib_arrives_intact_and_the_hub_holds_at_most_a_window() {
    let mut net = pair(1);
    let file = net.rng.bytes((5 << 20) + 12_345);
    let sent = net.offer("alice", "bob", "movie.bin", file.clone());
    let offer = net.client("bob").offers.last().cloned().unwrap();
    assert_eq!(
        (offer.peer.as_str(), offer.name.as_str(), offer.size),
        ("alice", "movie.bin", file.len() as u64)
    );
    assert_eq!(net.hub.relay_count(), 1);
    let got = net.accept("bob", Vec::new());
    net.settle();
    let digest = sha256(&file);
    assert_eq!(net.client("bob").finished.get(&got), Some(&Ok(digest)));
    assert_eq!(net.client("alice").finished.get(&sent), Some(&Ok(digest)));
    assert_eq!(net.client("bob").receiving[&got], file.to_vec());
    // The high-water mark is kept by the hub at every push, not only between steps.
    let peak = net.hub.relay_buffered_peak();
    assert!(peak > 0 && peak <= WINDOW, "peak {peak}");
    assert_eq!(net.hub.relay_count(), 0);
    assert_eq!(net.hub.relay_buffered(), 0);
}

#[test]
fn a_slow_receiver_slows_the_sender_and_the_hub_stays_within_the_window() {
    let mut net = pair(2);
    let file = net.rng.bytes(4 << 20);
    let bob_conn = net.client("bob").conn;
    net.client("bob").write_rate = Some(32 << 10);
    net.offer("alice", "bob", "slow.bin", file.clone());
    let got = net.accept("bob", Vec::new());
    let mut steps = 0;
    while !net.client("bob").finished.contains_key(&got) {
        net.tick();
        net.advance(Duration::from_millis(1));
        steps += 1;
        assert!(net.hub.relay_buffered_max() <= WINDOW);
        // The receiver's connection holds at most the read-ahead of file data, plus one chunk.
        assert!(net.hub.queued_output(bob_conn) <= (256 << 10) + (65 << 10));
        assert!(steps < 10_000, "stalled");
    }
    // 4 MiB at 32 KiB per step cannot be faster than 128 steps: the receiver set the pace.
    assert!(steps >= 120, "{steps} steps");
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("bob").receiving[&got], file.to_vec());
    // The hub's queue filled up to the window while bob was slow, but no further.
    assert!(net.max_relay_seen > WINDOW / 2, "{}", net.max_relay_seen);
    assert!(net.hub.relay_buffered_peak() <= WINDOW);
}

#[test]
fn the_window_bound_follows_the_hubs_transfer_settings() {
    let window = 128 << 10;
    let config = HubConfig {
        session: Config {
            transfer: TransferConfig {
                window: window as u32,
                chunk_size: 16 << 10,
                ..TransferConfig::default()
            },
            ..Config::default()
        },
        ..HubConfig::default()
    };
    let mut net = HubNet::new(config, 3);
    net.join("alice");
    net.join("bob");
    net.client("bob").write_rate = Some(8 << 10);
    let file = net.rng.bytes(2 << 20);
    net.offer("alice", "bob", "f", file.clone());
    let got = net.accept("bob", Vec::new());
    while !net.client("bob").finished.contains_key(&got) {
        net.tick();
        net.advance(Duration::from_millis(1));
    }
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    let peak = net.hub.relay_buffered_peak();
    assert!(
        peak > window / 2 && peak <= window,
        "peak {peak}, window {window}"
    );
}

#[test]
fn a_relayed_transfer_resumes_from_a_kept_partial_file() {
    let mut net = pair(4);
    let file = net.rng.bytes(3 << 20);
    // First attempt: bob stops half-way (cancels) and keeps what he wrote.
    net.client("bob").write_rate = Some(64 << 10);
    let first = net.offer("alice", "bob", "big.iso", file.clone());
    let got = net.accept("bob", Vec::new());
    while net.client("bob").receiving[&got].len() < (3 << 20) / 2 {
        net.tick();
    }
    net.client("bob")
        .session
        .cancel_transfer(got, ErrorCode::Cancelled, "later")
        .unwrap();
    net.settle();
    let failure = net.failure("alice", first);
    assert_eq!(failure.code, ErrorCode::Cancelled);
    assert_eq!(net.hub.relay_count(), 0);
    // Keep only what was reported written, as a real receiver's disk would hold.
    let bob = net.client("bob");
    let unwritten: u64 = bob.unwritten.drain(..).map(|(_, n)| n).sum();
    let mut kept = bob.receiving[&got].clone();
    kept.truncate(kept.len() - unwritten as usize);
    let kept_len = kept.len();
    assert!(kept_len > 0 && kept_len < file.len());
    assert_eq!(&kept[..], &file[..kept_len]);
    bob.write_rate = None;

    // Second attempt: bob accepts from the end of his partial file.
    let second = net.offer("alice", "bob", "big.iso", file.clone());
    let got = net.accept("bob", kept);
    net.settle();
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").finished[&second], Ok(sha256(&file)));
    assert_eq!(net.client("bob").receiving[&got], file.to_vec());
}

#[test]
fn a_corrupted_resume_fails_with_digest_mismatch_on_both_ends() {
    let mut net = pair(5);
    let file = net.rng.bytes(300_000);
    let mut kept = file[..100_000].to_vec();
    kept[500] ^= 0xFF; // bob's partial file went bad on disk
    let sent = net.offer("alice", "bob", "f", file.clone());
    let got = net.accept("bob", kept);
    net.settle();
    let code = |r: &Result<_, tidings_core::transfer::TransferFailure>| r.clone().unwrap_err().code;
    assert_eq!(
        code(&net.client("bob").finished[&got]),
        ErrorCode::DigestMismatch
    );
    assert_eq!(
        code(&net.client("alice").finished[&sent]),
        ErrorCode::DigestMismatch
    );
}

#[test]
fn the_sender_vanishing_mid_relay_fails_the_receiver_with_peer_lost() {
    let mut net = pair(6);
    let file = net.rng.bytes(4 << 20);
    net.client("bob").write_rate = Some(64 << 10);
    net.offer("alice", "bob", "f", file);
    let got = net.accept("bob", Vec::new());
    for _ in 0..5 {
        net.tick();
    }
    assert!(!net.client("bob").finished.contains_key(&got));
    // Alice's machine disappears: the hub sees end of stream.
    let alice_conn = net.client("alice").conn;
    net.client("alice").frozen = true;
    net.hub.handle_eof(net.now, alice_conn);
    net.settle();
    let failure = net.failure("bob", got);
    assert_eq!(failure.code, ErrorCode::PeerLost);
    assert!(failure.by_peer);
    assert_eq!(net.hub.relay_count(), 0);
    assert_eq!(net.hub.relay_buffered(), 0);
    assert!(net.client("bob").session.is_open(), "bob stays connected");
}

#[test]
fn the_receiver_vanishing_mid_relay_fails_the_sender_with_peer_lost() {
    let mut net = pair(7);
    let file = net.rng.bytes(4 << 20);
    net.client("bob").write_rate = Some(64 << 10);
    let sent = net.offer("alice", "bob", "f", file);
    net.accept("bob", Vec::new());
    net.tick();
    net.client("bob").frozen = true;
    // Bob is silent: after the heartbeat timeout the hub drops him.
    net.advance(Duration::from_secs(31));
    let failure = net.failure("alice", sent);
    assert_eq!(failure.code, ErrorCode::PeerLost);
    assert_eq!(net.hub.relay_count(), 0);
    assert!(net.client("alice").session.is_open());
}

#[test]
fn a_rejected_offer_reaches_the_sender() {
    let mut net = pair(8);
    let sent = net.offer("alice", "bob", "f", bytes::Bytes::from_static(b"hello"));
    let offer = net.client("bob").offers.pop().unwrap();
    net.client("bob")
        .session
        .reject_offer(offer.id, ErrorCode::Rejected, "no thanks")
        .unwrap();
    net.settle();
    net.assert_failed("alice", sent, ErrorCode::Rejected, "no thanks");
    assert_eq!(net.hub.relay_count(), 0);
}

#[test]
fn the_sender_cancelling_reaches_the_receiver() {
    let mut net = pair(9);
    let file = net.rng.bytes(2 << 20);
    net.client("bob").write_rate = Some(64 << 10);
    let sent = net.offer("alice", "bob", "f", file);
    let got = net.accept("bob", Vec::new());
    net.tick();
    net.client("alice")
        .session
        .cancel_transfer(sent, ErrorCode::Cancelled, "oops")
        .unwrap();
    net.settle();
    net.assert_failed("bob", got, ErrorCode::Cancelled, "oops");
}

#[test]
fn an_offer_to_someone_offline_is_rejected_with_unknown_peer() {
    let mut net = pair(10);
    let sent = net.offer("alice", "carol", "f", bytes::Bytes::from_static(b"x"));
    let failure = net.failure("alice", sent);
    assert_eq!(failure.code, ErrorCode::UnknownPeer);
    assert_eq!(net.hub.relay_count(), 0);
}

#[test]
fn several_relays_at_once_in_both_directions() {
    let mut net = HubNet::with_defaults(11);
    for n in ["a", "b", "c"] {
        net.join(n);
    }
    let files: Vec<_> = (0..4).map(|i| net.rng.bytes(700_000 + i * 1000)).collect();
    let plan = [("a", "b"), ("b", "a"), ("c", "a"), ("a", "c")];
    let mut sent = Vec::new();
    for (i, (from, to)) in plan.iter().enumerate() {
        sent.push(net.offer(from, to, &format!("f{i}"), files[i].clone()));
    }
    let mut got = Vec::new();
    for (_, to) in plan {
        // Offers arrive in order; accept the oldest waiting one.
        let c = net.client(to);
        let offer = c.offers.remove(0);
        c.receiving.insert(offer.id, Vec::new());
        c.session.accept_offer(offer.id, 0).unwrap();
        got.push((to, offer));
    }
    net.settle();
    for (i, (to, offer)) in got.iter().enumerate() {
        let size = offer.size as usize;
        let file = files.iter().find(|f| f.len() == size).unwrap();
        assert_eq!(
            net.client(to).finished[&offer.id],
            Ok(sha256(file)),
            "relay {i}"
        );
        assert_eq!(net.client(to).receiving[&offer.id], file.to_vec());
    }
    for (i, (from, _)) in plan.iter().enumerate() {
        assert!(net.client(from).finished[&sent[i]].is_ok());
    }
    assert!(net.hub.relay_buffered_peak() <= WINDOW);
}

/// Random sizes (empty files included), speeds and disruptions: every relay ends on both
/// sides, consistently, and the hub keeps nothing afterwards.
#[test]
fn random_relays_end_consistently_on_both_sides() {
    for seed in 1..=30u64 {
        let mut net = pair(1000 + seed);
        let size = match seed % 5 {
            0 => 0,
            1 => net.rng.below(1000) as usize,
            _ => net.rng.below(3 << 20) as usize,
        };
        let file = net.rng.bytes(size);
        if seed % 2 == 0 {
            let rate = 1 + net.rng.below(128 << 10);
            net.client("bob").write_rate = Some(rate);
        }
        let sent = net.offer("alice", "bob", "r.bin", file.clone());
        let got = net.accept("bob", Vec::new());
        // 0: undisturbed; 1: alice cancels; 2: bob cancels; 3: alice vanishes; 4: bob vanishes.
        let disruption = net.rng.below(5);
        let at = net.rng.below(40);
        for tick in 0..100_000u64 {
            let done = net.client("alice").finished.contains_key(&sent)
                && net.client("bob").finished.contains_key(&got);
            if done {
                break;
            }
            if tick == at {
                match disruption {
                    1 => {
                        let _ = net.client("alice").session.cancel_transfer(
                            sent,
                            ErrorCode::Cancelled,
                            "a",
                        );
                    }
                    2 => {
                        let _ = net.client("bob").session.cancel_transfer(
                            got,
                            ErrorCode::Cancelled,
                            "b",
                        );
                    }
                    3 | 4 => {
                        let who = if disruption == 3 { "alice" } else { "bob" };
                        let c = net.client(who);
                        c.frozen = true;
                        // Its session is gone with the machine: record the loss for it.
                        let id = if who == "alice" { sent } else { got };
                        c.finished.entry(id).or_insert_with(|| {
                            Err(tidings_core::transfer::TransferFailure {
                                code: ErrorCode::PeerLost,
                                reason: "vanished".into(),
                                by_peer: false,
                            })
                        });
                        let conn = c.conn;
                        net.hub.handle_eof(net.now, conn);
                    }
                    _ => {}
                }
            }
            net.tick();
            net.advance(Duration::from_millis(1));
            assert!(tick < 99_999, "seed {seed}: stuck");
        }
        let a = net.client("alice").finished[&sent].clone();
        let b = net.client("bob").finished[&got].clone();
        assert_eq!(a.is_ok(), b.is_ok(), "seed {seed}: {a:?} vs {b:?}");
        if let Ok(d) = b {
            assert_eq!(d, sha256(&file), "seed {seed}");
            assert_eq!(
                net.client("bob").receiving[&got],
                file.to_vec(),
                "seed {seed}"
            );
        } else if disruption == 3 {
            assert_eq!(b.unwrap_err().code, ErrorCode::PeerLost, "seed {seed}");
        } else if disruption == 4 {
            assert_eq!(a.unwrap_err().code, ErrorCode::PeerLost, "seed {seed}");
        }
        assert_eq!(net.hub.relay_count(), 0, "seed {seed}");
        assert_eq!(net.hub.relay_buffered(), 0, "seed {seed}");
        assert!(net.hub.relay_buffered_peak() <= WINDOW, "seed {seed}");
    }
}

#[test]
fn a_receiver_with_too_many_transfers_makes_further_offers_fail_with_limit_exceeded() {
    let mut net = HubNet::with_defaults(12);
    for n in ["a", "c", "bob"] {
        net.join(n);
    }
    let mut sent = Vec::new();
    for i in 0..20 {
        for from in ["a", "c"] {
            let id = net.offer(
                from,
                "bob",
                &format!("{from}{i}"),
                bytes::Bytes::from_static(b"x"),
            );
            sent.push((from, id));
        }
    }
    // Bob's connection carries at most 32 transfers (the session default): 8 offers fail.
    let limited = sent
        .iter()
        .filter(|(from, id)| {
            matches!(net.client(from).finished.get(id),
                Some(Err(f)) if f.code == ErrorCode::LimitExceeded)
        })
        .count();
    assert_eq!(limited, 8);
    assert_eq!(net.client("bob").offers.len(), 32);
    assert_eq!(net.hub.relay_count(), 32);
}

#[test]
fn hostile_bytes_close_only_their_own_connection() {
    let mut net = pair(13);
    for i in 0..40u64 {
        let conn = net.raw_connect();
        let len = 1 + net.rng.below(3000) as usize;
        let garbage = net.rng.bytes(len);
        if i % 2 == 0 {
            // Some start properly and turn hostile after the hello.
            let hello = tidings_core::wire::Message::Hello(tidings_core::wire::Hello {
                name: format!("h{i}").as_str().into(),
                capabilities: 0,
                max_frame: tidings_core::wire::DEFAULT_MAX_FRAME,
            });
            net.raw_send(conn, true, &[hello]);
        }
        net.hub.handle_input(net.now, conn, &garbage);
        net.settle();
        net.hub.handle_eof(net.now, conn);
        net.settle();
        assert!(net.hub.is_finished(conn), "hostile connection {i} ends");
    }
    assert_eq!(net.hub.who().len(), 2);
    net.client("alice")
        .session
        .send_text("bob", "still here")
        .unwrap();
    net.settle();
    assert_eq!(net.client("bob").texts().last().unwrap().2, "still here");
}

#[test]
fn a_crawling_receiver_keeps_both_hops_alive_past_the_stall_timeout() {
    let mut net = pair(14);
    let file = net.rng.bytes(3 << 20);
    net.client("bob").write_rate = Some(64 << 10);
    let sent = net.offer("alice", "bob", "f", file.clone());
    let got = net.accept("bob", Vec::new());
    for _ in 0..5 {
        net.tick();
    }
    // Bob's disk crawls at 1 KiB/s for 100 s (the stall timeout is 60 s, and the hub's queue
    // is full all along): keepalive credits keep both hops alive.
    net.client("bob").write_rate = Some(1024);
    for _ in 0..100 {
        net.advance(Duration::from_secs(1));
        net.tick();
    }
    let (b, a) = (
        net.client("bob").finished.get(&got).cloned(),
        net.client("alice").finished.get(&sent).cloned(),
    );
    assert!(b.is_none(), "nothing ended: bob {b:?} alice {a:?}");
    assert!(!net.client("alice").finished.contains_key(&sent));
    assert!(net.hub.relay_buffered_peak() <= WINDOW);
    net.client("bob").write_rate = None;
    net.tick();
    net.settle();
    assert_eq!(net.client("bob").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
}

#[test]
fn a_relay_whose_receiver_never_answers_the_offer_times_out_on_both_hops() {
    let mut net = pair(15);
    let sent = net.offer("alice", "bob", "f", bytes::Bytes::from_static(b"data"));
    // Bob never answers: the offer timeout (120 s) ends it, and alice hears of it.
    net.advance(Duration::from_secs(125));
    let failure = net.failure("alice", sent);
    assert_eq!(failure.code, ErrorCode::TransferTimeout);
    assert_eq!(net.hub.relay_count(), 0);
}

#[test]
fn a_client_can_relay_a_file_to_itself() {
    let mut net = pair(16);
    let file = net.rng.bytes(300_000);
    let sent = net.offer("alice", "ALICE", "me.bin", file.clone());
    let offer = net.client("alice").offers.last().cloned().unwrap();
    assert_eq!(offer.peer, "alice");
    let got = net.accept("alice", Vec::new());
    net.settle();
    assert_eq!(net.client("alice").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
    assert_eq!(net.client("alice").receiving[&got], file.to_vec());
}

#[test]
fn every_offer_the_server_makes_has_one_server_wide_number_told_to_its_sender() {
    use tidings_core::session::Event;
    use tidings_core::transfer::TransferEvent;
    let mut net = pair(21);
    net.join("carol");
    let file = net.rng.bytes(100);
    let mut sent = Vec::new();
    for (from, to) in [("alice", "bob"), ("bob", "alice"), ("carol", "alice")] {
        sent.push((from, to, net.offer(from, to, "f.bin", file.clone())));
        if from == "bob" {
            // The server's own participant offers between relays: the same counter.
            let own = net.hub.offer_file("carol", "own.bin", 1, "").unwrap();
            assert_eq!(own.id, 5);
            net.settle();
        }
    }
    let offered = |net: &mut HubNet, who: &str| -> Vec<(String, u64)> {
        let c = net.client(who);
        c.offers
            .iter()
            .map(|o| (o.peer.to_string(), o.id))
            .collect()
    };
    assert_eq!(offered(&mut net, "bob"), vec![("alice".to_string(), 1)]);
    assert_eq!(
        offered(&mut net, "alice"),
        vec![("bob".to_string(), 3), ("carol".to_string(), 7)]
    );
    assert_eq!(offered(&mut net, "carol"), vec![(String::new(), 5)]);
    // Each sender was told the number its receiver sees.
    for (from, to, id) in sent {
        let told: Vec<(String, u64)> = net
            .client(from)
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Transfer(TransferEvent::Relayed {
                    id: i,
                    peer,
                    relay_id,
                }) if *i == id => Some((peer.to_string(), *relay_id)),
                _ => None,
            })
            .collect();
        let at_receiver = offered(&mut net, to)
            .into_iter()
            .find(|(p, _)| p == from)
            .map(|(_, n)| (to.to_string(), n));
        assert_eq!(
            told,
            at_receiver.into_iter().collect::<Vec<_>>(),
            "{from} → {to}"
        );
    }
}
