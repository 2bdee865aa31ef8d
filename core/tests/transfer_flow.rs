//! File transfers end to end over the simulated pair: large files with random chunking and
//! delays, tiny credit windows, chat beside file data, fairness, slow receivers and resume
//! after a dropped connection.

mod sim;

use std::time::Duration;

use bytes::Bytes;
use sim::transfer::{
    checked_pair, ended, ended_on_client, ended_on_server, offered, pair, run, secs, stalls_after,
    Host, Pattern, Sink, Source,
};
use sim::{sha256, Rng};
use tidings_core::session::Event;
use tidings_core::transfer::{Direction, Mode, TransferConfig, TransferEvent};
use tidings_core::ErrorCode;

const MIB: u64 = 1 << 20;

fn tiny() -> TransferConfig {
    TransferConfig {
        chunk_size: 4 << 10,
        window: 8 << 10,
        read_ahead: 8 << 10,
        ..TransferConfig::default()
    }
}

fn random_bytes(seed: u64, len: usize) -> Bytes {
    let mut rng = Rng::new(seed);
    Bytes::from((0..len).map(|_| rng.next() as u8).collect::<Vec<_>>())
}

#[test]
fn small_file_arrives_with_its_digest_verified() {
    let mut net = pair(TransferConfig::default(), 1);
    net.to_server.max_piece = 777;
    let file = random_bytes(1, 300_000);
    let (mut c, mut s) = (Host::default(), Host::accepting(None));
    let id = c.offer_mem(&mut net.client, "notes.txt", &file);
    run(&mut net, &mut c, &mut s, secs(60), ended_on_client(id));
    let digest = sha256(&file);
    assert_eq!(c.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.sinks[&id].stored.as_deref(), Some(&file[..]));
    assert_eq!(s.offers[0].name, "notes.txt");
    assert_eq!(s.offers[0].size, 300_000);
    assert_eq!(s.offers[0].media_type, "application/octet-stream");
    assert_eq!(c.accepted, vec![(id, 0)]);
}

#[test]
fn empty_file_completes() {
    let mut net = pair(TransferConfig::default(), 2);
    let (mut c, mut s) = (Host::default(), Host::accepting(None));
    let id = c.offer(&mut net.client, "empty", 0, Source::Mem(Bytes::new()));
    run(&mut net, &mut c, &mut s, secs(5), ended(id));
    let digest = sha256(b"");
    assert_eq!(c.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.outcome(id), Some(&Ok(digest)));
}

/// 100 MiB of synthetic bytes, random split points and latency; chat goes out every 10 MiB
/// and must overtake the file data queued before it.
#[test]
fn hundred_mib_arrive_identical_and_chat_overtakes_file_data() {
    let size = 100 * MIB;
    let tc = TransferConfig::default();
    let bound = (tc.window + tc.read_ahead) as u64;
    let mut net = pair(tc, 3);
    net.to_server.max_piece = 200_000;
    net.to_server.delay = Duration::from_millis(3);
    net.to_client.delay = Duration::from_millis(2);
    let pattern = Pattern::new(3);
    let (mut c, mut s) = (Host::default(), Host::accepting(Some(pattern.clone())));
    let id = c.offer_pattern(&mut net.client, "big.bin", size, &pattern);
    let mut sent_at = Vec::new();
    for k in 1..10u64 {
        run(&mut net, &mut c, &mut s, secs(600), |_, _, s| {
            s.written(id) >= k * 10 * MIB
        });
        sent_at.push(s.written(id));
        net.client.send_text("", &format!("at {k}0 MiB")).unwrap();
    }
    run(&mut net, &mut c, &mut s, secs(600), ended(id));
    let digest = pattern.digest(size);
    assert_eq!(s.outcome(id), Some(&Ok(digest)));
    assert_eq!(c.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.written(id), size);
    assert_eq!(s.texts.len(), 9);
    for ((text, written, ended), sent) in s.texts.iter().zip(&sent_at) {
        assert_eq!(*ended, 0, "{text} arrived after the transfer ended");
        // Only the file data already queued or in flight may go before it.
        assert!(
            written - sent <= bound,
            "{text}: {} bytes went first",
            written - sent
        );
    }
    check_progress(&s, id, size, tc_interval());
    check_progress(&c, id, size, tc_interval());
}

fn tc_interval() -> Duration {
    TransferConfig::default().progress_interval
}

/// Progress reports are monotone, at least `interval` apart except for the final one, end
/// at the size, and carry a rate once time has passed.
fn check_progress(h: &Host, id: u64, size: u64, interval: Duration) {
    let reports: Vec<_> = h.progress.iter().filter(|(_, p)| p.id == id).collect();
    assert!(reports.len() >= 2, "too few progress reports");
    for w in reports.windows(2) {
        let ((t0, a), (t1, b)) = (w[0], w[1]);
        assert!(b.done >= a.done, "progress went back");
        assert!(
            b.done == size || *t1 - *t0 >= interval,
            "reports closer than {interval:?}"
        );
    }
    let (_, last) = reports.last().unwrap();
    assert_eq!((last.done, last.total), (size, size));
    assert!(
        reports.iter().any(|(_, p)| p.bytes_per_sec > 0),
        "no rate reported"
    );
}

/// A few MiB through an 8 KiB window in 4 KiB chunks with pieces of 1..3000 bytes.
#[test]
fn tiny_window_and_random_pieces_deliver_the_same_bytes() {
    for seed in 10..13 {
        let mut net = pair(tiny(), seed);
        net.to_server.max_piece = 3000;
        net.to_client.max_piece = 7;
        net.to_server.delay = Duration::from_micros(300);
        let pattern = Pattern::new(seed);
        let size = 3 * MIB + seed;
        let (mut c, mut s) = (Host::default(), Host::accepting(Some(pattern.clone())));
        let id = c.offer_pattern(&mut net.client, "f", size, &pattern);
        run(&mut net, &mut c, &mut s, secs(600), |_, c, s| {
            // The sender never asks for bytes beyond the receiver's window.
            let ahead = c.read_end.get(&id).copied().unwrap_or(0);
            assert!(
                ahead <= s.written(id) + 8192,
                "read {ahead} with {} written",
                s.written(id)
            );
            c.outcome(id).is_some() && s.outcome(id).is_some()
        });
        assert_eq!(s.outcome(id), Some(&Ok(pattern.digest(size))));
        assert!(net.client.is_open() && net.server.is_open());
    }
}

/// A receiver whose disk takes one write per 10 ms holds the sender to its pace: the sender
/// never reads more than a window ahead of what is written.
#[test]
fn slow_receiver_slows_the_sender() {
    let tc = TransferConfig {
        chunk_size: 16 << 10,
        window: 64 << 10,
        ..TransferConfig::default()
    };
    let (mut net, mut c, mut s, pattern) = checked_pair(tc, 4);
    let size = 2 * MIB;

    s.write_pace = Some((1, Duration::from_millis(10)));
    let id = c.offer_pattern(&mut net.client, "slow", size, &pattern);
    let start = net.now;
    let mut max_ahead = 0;
    run(&mut net, &mut c, &mut s, secs(600), |_, c, s| {
        let ahead = c.read_end.get(&id).copied().unwrap_or(0) - s.written(id);
        max_ahead = max_ahead.max(ahead);
        c.outcome(id).is_some() && s.outcome(id).is_some()
    });
    assert_eq!(s.outcome(id), Some(&Ok(pattern.digest(size))));
    assert!(max_ahead <= 64 << 10, "sender ran {max_ahead} bytes ahead");
    // 128 chunks of 16 KiB at one per 10 ms: the pace of the disk, not of the link.
    assert!(
        net.now - start >= Duration::from_millis(1270),
        "{:?}",
        net.now - start
    );
}

/// Three files up and two down at once: each advances before any finishes, and all arrive.
#[test]
fn transfers_in_both_directions_share_the_connection() {
    let tc = TransferConfig {
        chunk_size: 8 << 10,
        window: 32 << 10,
        read_ahead: 32 << 10,
        ..TransferConfig::default()
    };
    let mut net = pair(tc, 5);
    net.to_server.delay = Duration::from_millis(1);
    net.to_client.delay = Duration::from_millis(1);
    let pattern = Pattern::new(5);
    let size = MIB;
    let mut c = Host::accepting(Some(pattern.clone()));
    let mut s = Host::accepting(Some(pattern.clone()));
    let up: Vec<u64> = (0..3)
        .map(|i| c.offer_pattern(&mut net.client, &format!("up{i}"), size, &pattern))
        .collect();
    let down: Vec<u64> = (0..2)
        .map(|i| s.offer_pattern(&mut net.server, &format!("down{i}"), size, &pattern))
        .collect();
    run(&mut net, &mut c, &mut s, secs(600), |_, c, s| {
        !c.finished.is_empty() || !s.finished.is_empty()
    });
    for &id in &up {
        assert!(
            s.written(id) >= size / 4,
            "upload {id} starved: {}",
            s.written(id)
        );
    }
    for &id in &down {
        assert!(
            c.written(id) >= size / 4,
            "download {id} starved: {}",
            c.written(id)
        );
    }
    run(&mut net, &mut c, &mut s, secs(600), |_, c, s| {
        c.finished.len() == 5 && s.finished.len() == 5
    });
    let digest = pattern.digest(size);
    for h in [&c, &s] {
        assert!(
            h.finished.iter().all(|(_, _, r)| r == &Ok(digest)),
            "{:?}",
            h.finished
        );
    }
    assert_eq!(up, vec![0, 2, 4], "client ids are even");
    assert_eq!(down, vec![1, 3], "server ids are odd");
}

/// The connection drops at a random point; on a new connection the receiver accepts at the
/// length it wrote, and the file comes out identical with a verified digest.
#[test]
fn resume_after_a_dropped_connection_gives_the_identical_file() {
    for seed in 20..25u64 {
        let file = random_bytes(seed, 3_000_000 + seed as usize);
        let mut rng = Rng::new(seed);
        let cut_at = 1 + rng.below(file.len() as u64 - 1);
        let mut net = pair(tiny_but_faster(), seed);
        net.to_server.max_piece = 5000;
        let (mut c, mut s) = (Host::default(), Host::accepting(None));
        let id = c.offer_mem(&mut net.client, "movie.mkv", &file);
        run(&mut net, &mut c, &mut s, secs(600), |_, _, s| {
            s.written(id) >= cut_at
        });
        net.cut();
        let now = net.now;
        c.poll(&mut net.client, now);
        s.poll(&mut net.server, now);
        for h in [&c, &s] {
            let f = h.failure(id);
            assert_eq!(f.code, ErrorCode::PeerLost);
        }
        let kept = s.sinks.remove(&id).unwrap();
        let offset = kept.len;
        assert!(offset >= cut_at && offset < file.len() as u64);

        // A new connection: the same file offered again, the kept part resumed.
        let mut net = pair(tiny_but_faster(), seed + 100);
        net.to_client.max_piece = 3;
        let mut c2 = Host::default();
        let mut s2 = Host::manual();
        let id2 = c2.offer_mem(&mut net.client, "movie.mkv", &file);
        run(&mut net, &mut c2, &mut s2, secs(60), offered);
        s2.sinks.insert(id2, kept);
        net.server.accept_offer(id2, offset).unwrap();
        run(&mut net, &mut c2, &mut s2, secs(600), ended(id2));
        let digest = sha256(&file);
        assert_eq!(s2.outcome(id2), Some(&Ok(digest)), "seed {seed}");
        assert_eq!(c2.outcome(id2), Some(&Ok(digest)));
        assert_eq!(c2.accepted, vec![(id2, offset)]);
        assert_eq!(s2.sinks[&id2].stored.as_deref(), Some(&file[..]));
        // Only the missing part travelled; the prefix was read once on each side, for the hash.
        let first = s2.progress.iter().find(|(_, p)| p.id == id2).unwrap().1;
        assert!(first.done > offset);
        assert_eq!(c2.read_end[&id2], file.len() as u64);
        assert_eq!(
            s2.read_end.get(&id2).copied(),
            (offset > 0).then_some(offset)
        );
    }
}

fn tiny_but_faster() -> TransferConfig {
    TransferConfig {
        chunk_size: 16 << 10,
        window: 40 << 10,
        read_ahead: 32 << 10,
        ..TransferConfig::default()
    }
}

/// A resumed transfer whose kept prefix differs from the sender's file fails the digest.
#[test]
fn resume_with_a_changed_prefix_fails_the_digest() {
    let file = random_bytes(30, 500_000);
    let mut kept = file[..200_000].to_vec();
    kept[12_345] ^= 1;
    let mut net = pair(tiny_but_faster(), 30);
    let mut c = Host::default();
    let mut s = Host::manual();
    let id = c.offer_mem(&mut net.client, "x", &file);
    run(&mut net, &mut c, &mut s, secs(60), offered);
    s.sinks.insert(id, Sink::kept(kept));
    net.server.accept_offer(id, 200_000).unwrap();
    run(&mut net, &mut c, &mut s, secs(600), ended(id));
    let r = s.failure(id);
    assert_eq!((r.code, r.by_peer), (ErrorCode::DigestMismatch, false));
    assert!(r.reason.contains("SHA-256"), "{}", r.reason);
    let r = c.failure(id);
    assert_eq!((r.code, r.by_peer), (ErrorCode::DigestMismatch, true));
    assert!(
        net.client.is_open() && net.server.is_open(),
        "a mismatch is not fatal"
    );
}

/// A resumed side that takes long to hash its kept prefix (a slow disk) keeps the other side,
/// which is done with its own prefix and waits, alive: no stall timeout although no file byte
/// moves for longer than it. Tried with the slow disk on each side.
#[test]
fn slow_prefix_hashing_does_not_trip_the_stall_timer() {
    for slow_sender in [true, false] {
        let tc = TransferConfig {
            chunk_size: 16 << 10,
            ..stalls_after(secs(2))
        };
        let file = random_bytes(31, 1_000_000);
        let mut net = pair(tc, 31);
        let mut c = Host::default();
        let mut s = Host::manual();
        let id = c.offer_mem(&mut net.client, "x", &file);
        run(&mut net, &mut c, &mut s, secs(60), offered);
        let offset = 900_000;
        s.sinks
            .insert(id, Sink::kept(file[..offset as usize].to_vec()));
        net.server.accept_offer(id, offset).unwrap();
        // The slow side reads its 900 kB prefix at 16 KiB per 100 ms: about 5.5 s, far beyond
        // the 2 s stall timeout; the other side reads at once.
        let start = net.now;
        let (slow, fast) = if slow_sender {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        slow.hold = true;
        let mut rounds = 0;
        while slow.read_end.get(&id) != Some(&offset) || !slow.reads.is_empty() {
            net.advance(Duration::from_millis(100));
            let now = net.now;
            let (slow_session, fast_session) = if slow_sender {
                (&mut net.client, &mut net.server)
            } else {
                (&mut net.server, &mut net.client)
            };
            fast.poll(fast_session, now);
            slow.poll(slow_session, now);
            if let Some((id, off, len)) = slow.reads.pop_front() {
                let data = Bytes::copy_from_slice(&file[off as usize..off as usize + len]);
                slow_session.provide_data(id, off, data).unwrap();
            }
            rounds += 1;
            assert!(rounds < 200, "the prefix was not read");
            assert!(fast.finished.is_empty(), "{:?}", fast.finished);
        }
        assert!(net.now - start > secs(4));
        c.hold = false;
        s.hold = false;
        run(&mut net, &mut c, &mut s, secs(60), ended(id));
        let digest = sha256(&file);
        assert_eq!(
            s.outcome(id),
            Some(&Ok(digest)),
            "slow sender: {slow_sender}"
        );
        assert_eq!(s.sinks[&id].stored.as_deref(), Some(&file[..]));
    }
}

/// The server can offer to the client too, and the receiver sees who offered.
#[test]
fn server_offers_to_the_client() {
    let mut net = pair(TransferConfig::default(), 6);
    let file = random_bytes(6, 70_000);
    let (mut c, mut s) = (Host::accepting(None), Host::default());
    let id = s.offer_mem(&mut net.server, "motd.txt", &file);
    assert_eq!(id % 2, 1);
    run(&mut net, &mut c, &mut s, secs(60), ended(id));
    assert!(matches!(c.outcome(id), Some(Ok(_))));
    assert_eq!(c.sinks[&id].stored.as_deref(), Some(&file[..]));
    assert_eq!(c.finished[0].1, Direction::Receive);
    assert_eq!(s.finished[0].1, Direction::Send);
    assert!(c
        .other
        .iter()
        .all(|e| !matches!(e, Event::PeerError { .. })));
}

/// A disk so slow that freeing half the window takes longer than the stall timeout: the
/// receiver's keepalive credit keeps the sender from giving up while bytes still move.
#[test]
fn very_slow_disk_does_not_trip_the_senders_stall_timer() {
    let tc = TransferConfig {
        chunk_size: 16 << 10,
        window: 256 << 10,
        ..stalls_after(secs(5))
    };
    let (mut net, mut c, mut s, pattern) = checked_pair(tc, 40);
    let size = 512 << 10;

    s.write_pace = Some((1, secs(3)));
    let id = c.offer_pattern(&mut net.client, "slow", size, &pattern);
    let start = net.now;
    run(&mut net, &mut c, &mut s, secs(300), ended(id));
    assert_eq!(c.outcome(id), Some(&Ok(pattern.digest(size))));
    assert!(net.now - start >= secs(90), "{:?}", net.now - start);
}

/// The receiver kept the whole file: nothing travels but the digests. The sender needs no
/// credit, so its `done` may arrive while the receiver still hashes its copy.
#[test]
fn resume_of_a_complete_file_only_compares_digests() {
    for receiver_slow in [false, true] {
        let file = random_bytes(50, 100_000);
        let mut net = pair(tiny_but_faster(), 50);
        let mut c = Host::default();
        let mut s = Host::manual();
        let id = c.offer_mem(&mut net.client, "x", &file);
        run(&mut net, &mut c, &mut s, secs(60), offered);
        s.sinks.insert(id, Sink::kept(file.to_vec()));
        net.server.accept_offer(id, file.len() as u64).unwrap();
        s.hold = receiver_slow;
        run(&mut net, &mut c, &mut s, secs(60), |_, c, s| {
            // Held: wait until the sender read everything (its `done` is out) and the
            // receiver was asked for its copy.
            !c.read_end.is_empty() && c.reads.is_empty() && (!s.hold || !s.reads.is_empty())
        });
        s.hold = false;
        run(&mut net, &mut c, &mut s, secs(60), ended(id));
        let digest = sha256(&file);
        assert_eq!(
            s.outcome(id),
            Some(&Ok(digest)),
            "receiver slow: {receiver_slow}"
        );
        assert_eq!(c.outcome(id), Some(&Ok(digest)));
        assert_eq!(s.sinks[&id].stored.as_deref(), Some(&file[..]));
        assert!(s.writes.is_empty() && s.sinks[&id].len == file.len() as u64);
    }
}

/// A driver that takes one transmit, lets the application queue chat, and only then takes
/// the rest must not split a chunk frame: its payload follows its head.
#[test]
fn chat_queued_between_transmits_never_splits_a_chunk() {
    let mut net = pair(TransferConfig::default(), 51);
    let file = random_bytes(51, 200_000);
    let (mut c, mut s) = (Host::default(), Host::accepting(None));
    let id = c.offer_mem(&mut net.client, "x", &file);
    run(&mut net, &mut c, &mut s, secs(5), |_, c, _| {
        !c.accepted.is_empty()
    });
    let now = net.now;
    let mut texts = 0;
    for _ in 0..200 {
        c.poll(&mut net.client, now);
        // One transmit at a time, with a chat line queued after each.
        if let Some(b) = net.client.poll_transmit() {
            net.server.handle_input(now, &b);
            net.client.send_text("", "between").unwrap();
            texts += 1;
        }
        net.settle();
        s.poll(&mut net.server, now);
        if s.outcome(id).is_some() {
            break;
        }
    }
    net.settle();
    s.poll(&mut net.server, now);
    assert!(net.server.is_open(), "{:?}", s.other);
    assert!(matches!(s.outcome(id), Some(Ok(_))));
    assert_eq!(s.sinks[&id].stored.as_deref(), Some(&file[..]));
    assert_eq!(s.texts.len(), texts);
}

/// A relaying end (the hub's side towards the receiver) that waits for bytes from the other
/// connection — say the original sender hashes a long prefix — keeps the receiver alive
/// with empty chunks and does not time out itself; once bytes and the sender's digest come,
/// the transfer completes.
#[test]
fn relay_end_waiting_for_bytes_keeps_the_receiver_alive() {
    let mut net = pair(stalls_after(secs(5)), 60);
    let file = random_bytes(60, 200_000);
    let size = file.len() as u64;
    let (mut c, mut s) = (Host::accepting(None), Host::default());
    let id = net
        .server
        .offer("", "relayed.bin", size, "", Mode::Relay)
        .unwrap();
    s.sources.insert(id, Source::Mem(file.clone()));
    s.hold = true;
    let start = net.now;
    while net.now - start < secs(20) {
        net.advance(Duration::from_millis(500));
        let now = net.now;
        c.poll(&mut net.client, now);
        s.poll(&mut net.server, now);
    }
    assert!(
        c.finished.is_empty() && s.finished.is_empty(),
        "{:?}",
        c.finished
    );
    assert!(!s.reads.is_empty(), "the relay end was asked for bytes");
    s.hold = false;
    run(&mut net, &mut c, &mut s, secs(60), |_, c, _| {
        c.written(id) == size
    });
    let digest = sha256(&file);
    net.server.relay_done(id, digest).unwrap();
    run(&mut net, &mut c, &mut s, secs(60), ended(id));
    assert_eq!(c.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.outcome(id), Some(&Ok(digest)));
    assert_eq!(c.sinks[&id].stored.as_deref(), Some(&file[..]));
}

/// A relaying end whose receiver stops granting credit does time out.
#[test]
fn relay_end_blocked_on_credit_times_out() {
    let tc = TransferConfig {
        window: 64 << 10,
        ..stalls_after(secs(5))
    };
    let mut net = pair(tc, 61);
    let p = Pattern::new(61);
    let (mut c, mut s) = (Host::accepting(Some(p.clone())), Host::default());
    let id = net
        .server
        .offer("", "relayed.bin", 1 << 20, "", Mode::Relay)
        .unwrap();
    s.sources.insert(id, Source::Pattern(p));
    run(&mut net, &mut c, &mut s, secs(5), |_, c, _| {
        c.written(id) > 0
    });
    c.hold = true;
    let start = net.now;
    run(&mut net, &mut c, &mut s, secs(20), ended_on_server(id));
    let f = s.failure(id);
    assert_eq!(f.code, ErrorCode::TransferTimeout);
    assert!(net.now - start <= secs(6));
}

/// A relaying receiver (the hub's side towards the sender) that has every byte waits for
/// the far verdict as long as it takes, then passes it back.
#[test]
fn relay_receiver_waits_for_the_far_verdict_without_a_stall_timeout() {
    let mut net = pair(stalls_after(secs(5)), 62);
    let file = random_bytes(62, 100_000);
    let mut c = Host::default();
    let mut s = Host::manual();
    let id = c.offer_mem(&mut net.client, "x", &file);
    run(&mut net, &mut c, &mut s, secs(5), offered);
    s.sinks.insert(id, Sink::stored());
    net.server.accept_with(id, 0, Mode::Relay).unwrap();
    run(&mut net, &mut c, &mut s, secs(5), |_, _, s| {
        s.other
            .iter()
            .any(|e| matches!(e, Event::Transfer(TransferEvent::SenderDone { .. })))
    });
    let digest = sha256(&file);
    let Some(Event::Transfer(TransferEvent::SenderDone { digest: theirs, .. })) = s.other.last()
    else {
        panic!()
    };
    assert_eq!(*theirs, digest);
    // The far receiver takes a while (heartbeats keep the session).
    net.advance(secs(20));
    s.poll(&mut net.server, net.now);
    assert!(s.finished.is_empty(), "{:?}", s.finished);
    net.server.relay_outcome(id, Ok(digest)).unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
    assert_eq!(c.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.outcome(id), Some(&Ok(digest)));
    assert_eq!(s.sinks[&id].stored.as_deref(), Some(&file[..]));
}
