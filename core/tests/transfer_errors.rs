//! Transfers that do not complete: cancel, reject, timeouts, hostile file names, protocol
//! violations with their codes, huge sizes and digest mismatches.

mod sim;

use bytes::Bytes;
use sim::transfer::{
    checked_pair, ended, ended_on_client, ended_on_server, offered, pair, run, secs, stalls_after,
    Host, Pattern, Source,
};
use sim::Pair;
use tidings_core::session::{Closed, Event};
use tidings_core::transfer::{TransferConfig, MAX_BASE_NAME};
use tidings_core::wire::{Message, Offer, Utf8};
use tidings_core::ErrorCode;

fn manual() -> Host {
    Host::manual()
}

/// The client offers a 10-byte file.
fn offer_ten_bytes(net: &mut Pair, c: &mut Host) -> u64 {
    c.offer_mem(&mut net.client, "f", &Bytes::from_static(b"0123456789"))
}

fn raw_offer(id: u64, name: &str, size: u64) -> Message {
    Message::Offer(Offer {
        id,
        peer: Utf8::from(""),
        size,
        name: Utf8::from(name),
        media_type: Utf8::from(""),
    })
}

fn ended_with(h: &Host, id: u64, code: ErrorCode, by_peer: bool) {
    match h.outcome(id) {
        Some(Err(f)) => assert_eq!((f.code, f.by_peer), (code, by_peer), "{f:?}"),
        other => panic!("transfer {id}: {other:?}"),
    }
}

fn peer_errors(h: &Host) -> Vec<ErrorCode> {
    h.other
        .iter()
        .filter_map(|e| match e {
            Event::PeerError { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn closed(h: &Host) -> Option<&Closed> {
    h.other.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c),
        _ => None,
    })
}

fn mid_transfer(seed: u64) -> (Pair, Host, Host, u64) {
    let tc = TransferConfig {
        chunk_size: 8 << 10,
        window: 32 << 10,
        ..TransferConfig::default()
    };
    let (mut net, mut c, mut s, p) = checked_pair(tc, seed);

    let id = c.offer(&mut net.client, "f", 1 << 20, Source::Pattern(p));
    run(&mut net, &mut c, &mut s, secs(60), |_, _, s| {
        s.written(id) >= 100_000
    });
    (net, c, s, id)
}

#[test]
fn sender_cancels_mid_transfer() {
    let (mut net, mut c, mut s, id) = mid_transfer(1);
    net.client
        .cancel_transfer(id, ErrorCode::Cancelled, "changed my mind")
        .unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_server(id));
    ended_with(&c, id, ErrorCode::Cancelled, false);
    ended_with(&s, id, ErrorCode::Cancelled, true);
    let f = s.failure(id);
    assert_eq!(f.reason, "changed my mind");
    net.advance(secs(1));
    c.poll(&mut net.client, net.now);
    s.poll(&mut net.server, net.now);
    // Chunks in flight at the cancel are dropped silently; the connection stays up.
    assert!(peer_errors(&c).is_empty() && peer_errors(&s).is_empty());
    assert!(net.client.is_open() && net.server.is_open());
    assert_eq!(c.finished.len(), 1);
    assert!(net
        .client
        .cancel_transfer(id, ErrorCode::Cancelled, "again")
        .is_err());
}

#[test]
fn late_answers_for_a_transfer_that_just_ended_are_ignored() {
    let (mut net, mut c, mut s, id) = mid_transfer(3);
    net.server
        .cancel_transfer(id, ErrorCode::Cancelled, "no room")
        .unwrap();
    // A write that was under way when the transfer ended is reported anyway.
    assert_eq!(net.server.data_written(id, 1500), Ok(()));
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
    // So is a read the sender was answering when the cancel came in.
    let late = Bytes::from_static(b"late");
    assert_eq!(net.client.provide_data(id, 0, late), Ok(()));
    // A transfer that never was is still an error.
    assert!(net.server.data_written(id + 1000, 1).is_err());
    assert!(net.client.provide_data(id + 1000, 0, Bytes::new()).is_err());
    assert!(net.client.is_open() && net.server.is_open());
}

#[test]
fn receiver_cancels_mid_transfer_and_the_connection_carries_on() {
    let (mut net, mut c, mut s, id) = mid_transfer(2);
    net.server
        .cancel_transfer(id, ErrorCode::Cancelled, "disk nearly full")
        .unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
    ended_with(&s, id, ErrorCode::Cancelled, false);
    ended_with(&c, id, ErrorCode::Cancelled, true);
    // Another transfer on the same connection works.
    let file = Bytes::from_static(b"after the cancel");
    let id2 = c.offer_mem(&mut net.client, "g", &file);
    s.expect = None;
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id2));
    assert!(matches!(c.outcome(id2), Some(Ok(_))));
    assert_eq!(s.sinks[&id2].stored.as_deref(), Some(&file[..]));
    assert!(peer_errors(&c).is_empty() && peer_errors(&s).is_empty());
}

#[test]
fn offer_cancelled_before_it_is_answered() {
    let mut net = pair(TransferConfig::default(), 3);
    let (mut c, mut s) = (Host::default(), manual());
    let id = offer_ten_bytes(&mut net, &mut c);
    run(&mut net, &mut c, &mut s, secs(5), offered);
    net.client
        .cancel_transfer(id, ErrorCode::Cancelled, "oops")
        .unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_server(id));
    ended_with(&s, id, ErrorCode::Cancelled, true);
    assert!(net.server.accept_offer(id, 0).is_err());
}

#[test]
fn reject_tells_the_sender_why() {
    let mut net = pair(TransferConfig::default(), 4);
    let (mut c, mut s) = (Host::default(), manual());
    let id = offer_ten_bytes(&mut net, &mut c);
    run(&mut net, &mut c, &mut s, secs(5), offered);
    net.server
        .reject_offer(id, ErrorCode::Rejected, "no thanks")
        .unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
    ended_with(&c, id, ErrorCode::Rejected, true);
    ended_with(&s, id, ErrorCode::Rejected, false);
    let f = c.failure(id);
    assert_eq!(f.reason, "no thanks");
    assert!(
        c.reads.is_empty() && c.read_end.is_empty(),
        "nothing was read"
    );
    assert!(net
        .server
        .reject_offer(id, ErrorCode::Rejected, "twice")
        .is_err());
}

#[test]
fn reject_after_accept_is_refused() {
    let (mut net, _, _, id) = mid_transfer(5);
    assert!(net
        .server
        .reject_offer(id, ErrorCode::Rejected, "late")
        .is_err());
}

#[test]
fn unanswered_offer_times_out_on_both_sides() {
    let tc = TransferConfig {
        offer_timeout: secs(20),
        ..TransferConfig::default()
    };
    let mut net = pair(tc, 6);
    let (mut c, mut s) = (Host::default(), manual());
    let start = net.now;
    let id = offer_ten_bytes(&mut net, &mut c);
    run(&mut net, &mut c, &mut s, secs(19), offered);
    net.advance(secs(19));
    c.poll(&mut net.client, net.now);
    assert!(c.finished.is_empty(), "timed out early");
    run(&mut net, &mut c, &mut s, secs(5), ended(id));
    assert_eq!(
        c.outcome(id).unwrap().as_ref().unwrap_err().code,
        ErrorCode::TransferTimeout
    );
    assert_eq!(
        s.outcome(id).unwrap().as_ref().unwrap_err().code,
        ErrorCode::TransferTimeout
    );
    assert!(net.now - start < secs(22));
    assert!(net.client.is_open() && net.server.is_open());
}

#[test]
fn stalled_transfer_times_out() {
    let tc = TransferConfig {
        chunk_size: 8 << 10,
        window: 32 << 10,
        ..stalls_after(secs(5))
    };
    let (mut net, mut c, mut s, p) = checked_pair(tc, 7);

    let id = c.offer(&mut net.client, "f", 1 << 20, Source::Pattern(p));
    run(&mut net, &mut c, &mut s, secs(60), |_, _, s| {
        s.written(id) > 0
    });
    // The receiver's disk stops answering: credit stops, bytes stop.
    s.hold = true;
    let start = net.now;
    run(&mut net, &mut c, &mut s, secs(20), ended(id));
    assert_eq!(
        c.outcome(id).unwrap().as_ref().unwrap_err().code,
        ErrorCode::TransferTimeout
    );
    assert_eq!(
        s.outcome(id).unwrap().as_ref().unwrap_err().code,
        ErrorCode::TransferTimeout
    );
    let took = net.now - start;
    assert!(took >= secs(4) && took <= secs(6), "{took:?}");
    assert!(
        net.client.is_open() && net.server.is_open(),
        "heartbeats kept the session"
    );
}

/// Offers each of `names` raw (ids `first`, `first + 2` …) and returns the name the
/// receiving side reported for each, `None` where it rejected the offer.
fn offered_names(
    net: &mut Pair,
    s: &mut Host,
    first: u64,
    names: &[&str],
    size: u64,
) -> Vec<Option<String>> {
    for (i, name) in names.iter().enumerate() {
        net.client
            .send(&raw_offer(first + 2 * i as u64, name, size))
            .unwrap();
    }
    net.settle();
    s.poll(&mut net.server, net.now);
    assert!(net.server.is_open());
    (0..names.len() as u64)
        .map(|i| {
            s.offers
                .iter()
                .find(|o| o.id == first + 2 * i)
                .map(|o| o.name.clone())
        })
        .collect()
}

#[test]
fn hostile_names_are_reduced_or_rejected_by_the_receiver() {
    let cases: &[(&str, Option<&str>)] = &[
        ("../../etc/passwd", Some("passwd")),
        ("..\\..\\Windows\\system.ini", Some("system.ini")),
        ("/absolute/path.txt", Some("path.txt")),
        ("C:\\evil.exe", Some("evil.exe")),
        ("C:evil.exe", Some("evil.exe")),
        ("a\0b.txt", Some("a_b.txt")),
        ("bell\u{7}\nnewline\r.txt", Some("bell__newline_.txt")),
        ("..", None),
        (".", None),
        ("dir/", None),
        ("", None),
        (".hidden", Some("_hidden")),
        ("CON", Some("_CON")),
        ("trailing dots...", Some("trailing dots")),
    ];
    // A receiver that keeps no folders: the version 1 rule, the last component only.
    let flat = TransferConfig {
        max_path_depth: 0,
        ..TransferConfig::default()
    };
    let mut net = pair(flat, 8);
    let mut s = manual();
    let long = "x".repeat(1000) + ".txt";
    let absurd = "y".repeat(5000);
    let mut all: Vec<(String, Option<String>)> = cases
        .iter()
        .map(|(n, w)| (n.to_string(), w.map(str::to_string)))
        .collect();
    all.push((long, Some("x".repeat(MAX_BASE_NAME - 4) + ".txt")));
    all.push((absurd, None));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let got = offered_names(&mut net, &mut s, 1000, &names, 5);
    for ((name, want), got) in all.iter().zip(got) {
        assert_eq!(&got, want, "{name:?}");
    }
    // Rejected offers were answered with `reject` (bad-file-name): the raw client, which
    // has no such transfers, answers each with a non-fatal unknown-transfer error.
    let rejected = all.iter().filter(|(_, w)| w.is_none()).count();
    net.settle();
    s.poll(&mut net.server, net.now);
    assert_eq!(peer_errors(&s), vec![ErrorCode::UnknownTransfer; rejected]);
    // The sending side refuses to offer names that reduce to nothing, and reduces the rest.
    assert!(net.client.offer_file("", "..", 1, "").is_err());
    let id = net
        .client
        .offer_file("", "../secret/key.pem", 1, "")
        .unwrap();
    net.settle();
    s.poll(&mut net.server, net.now);
    assert_eq!(
        s.offers.last().map(|o| (o.id, o.name.as_str())),
        Some((id, "key.pem"))
    );
}

#[test]
fn a_receiver_that_keeps_folders_reduces_each_component_and_refuses_escapes() {
    let cases: &[(&str, Option<&str>)] = &[
        ("photos/2024/a.jpg", Some("photos/2024/a.jpg")),
        ("photos\\b.jpg", Some("photos/b.jpg")),
        ("./x//y/./z", Some("x/y/z")),
        ("empty/", Some("empty/")),
        ("a/.git/HEAD", Some("a/_git/HEAD")),
        ("../x", None),
        ("a/../../x", None),
        ("/etc/x", None),
        ("C:\\x", None),
        ("d/d/d/f", None),
    ];
    let tc = TransferConfig {
        max_path_depth: 3,
        ..TransferConfig::default()
    };
    let mut net = pair(tc, 10);
    let mut s = manual();
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let got = offered_names(&mut net, &mut s, 2000, &names, 0);
    for ((name, want), got) in cases.iter().zip(got) {
        assert_eq!(got.as_deref(), *want, "{name:?}");
    }
    // The sending side reduces its own path the same way and refuses an escape.
    assert!(net.client.offer_file("", "a/../../x", 1, "").is_err());
    let id = net.client.offer_file("", "dir/sub/f.txt", 1, "").unwrap();
    net.settle();
    s.poll(&mut net.server, net.now);
    assert_eq!(
        s.offers.last().map(|o| (o.id, o.name.as_str())),
        Some((id, "dir/sub/f.txt"))
    );
}

#[test]
fn too_many_offers_are_rejected_with_limit_exceeded() {
    let tc = TransferConfig {
        max_active: 2,
        ..TransferConfig::default()
    };
    let mut net = pair(tc, 9);
    let (mut c, mut s) = (Host::default(), manual());
    let ids: Vec<u64> = (0..2)
        .map(|i| {
            c.offer(
                &mut net.client,
                &format!("f{i}"),
                1,
                Source::Mem(Bytes::from_static(b"x")),
            )
        })
        .collect();
    assert!(
        net.client.offer_file("", "third", 1, "").is_err(),
        "local limit"
    );
    net.client.send(&raw_offer(40, "third", 1)).unwrap();
    run(&mut net, &mut c, &mut s, secs(5), |_, _, s| {
        s.offers.len() == 2
    });
    net.settle();
    s.poll(&mut net.server, net.now);
    assert_eq!(s.offers.iter().map(|o| o.id).collect::<Vec<_>>(), ids);
    assert!(net.server.is_open());
}

/// A raw client that offers id 0 (size `size`) and has it accepted by the server, with the
/// given window; returns the pair with the server's host.
fn raw_accepted(size: u64, window: u32, seed: u64) -> (Pair, Host, Host) {
    let tc = TransferConfig {
        window,
        ..TransferConfig::default()
    };
    let mut net = pair(tc, seed);
    let (mut c, mut s) = (manual(), Host::accepting(None));
    net.client.send(&raw_offer(0, "raw", size)).unwrap();
    run(&mut net, &mut c, &mut s, secs(5), offered);
    (net, c, s)
}

fn chunk(id: u64, offset: u64, len: usize) -> Message {
    Message::Chunk {
        id,
        offset,
        data: Bytes::from(vec![b'z'; len]),
    }
}

/// Sends `msg` from the raw client and returns how each side closed (if it did).
fn violate(net: &mut Pair, c: &mut Host, s: &mut Host, msg: Message) -> Option<Closed> {
    net.client.send(&msg).unwrap();
    net.settle();
    net.settle();
    c.poll(&mut net.client, net.now);
    s.poll(&mut net.server, net.now);
    let server = closed(s).cloned();
    if let Some(Closed::Local { code, .. }) = &server {
        // The peer was told the same code.
        assert!(matches!(closed(c), Some(Closed::Peer { code: c2, .. }) if c2 == code));
    }
    server
}

#[test]
fn chunk_at_the_wrong_offset_is_chunk_out_of_range() {
    let (mut net, mut c, mut s) = raw_accepted(100, 1 << 20, 10);
    let got = violate(&mut net, &mut c, &mut s, chunk(0, 5, 10));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::ChunkOutOfRange));
    // The server's transfer failed with the same code.
    ended_with(&s, 0, ErrorCode::ChunkOutOfRange, false);
}

#[test]
fn chunk_beyond_the_size_is_chunk_out_of_range() {
    let (mut net, mut c, mut s) = raw_accepted(100, 1 << 20, 11);
    violate(&mut net, &mut c, &mut s, chunk(0, 0, 60));
    assert!(net.server.is_open());
    let got = violate(&mut net, &mut c, &mut s, chunk(0, 60, 41));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::ChunkOutOfRange));
    assert_eq!(s.written(0), 60);
}

#[test]
fn chunk_whose_end_overflows_is_chunk_out_of_range() {
    let (mut net, mut c, mut s) = raw_accepted(u64::MAX, 1 << 20, 12);
    let got = violate(&mut net, &mut c, &mut s, chunk(0, u64::MAX - 3, 10));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::ChunkOutOfRange));
}

#[test]
fn chunk_beyond_credit_is_credit_exceeded() {
    let (mut net, mut c, mut s) = raw_accepted(100_000, 8 << 10, 13);
    s.hold = true; // nothing written, so no credit comes back
    violate(&mut net, &mut c, &mut s, chunk(0, 0, 8 << 10));
    assert!(net.server.is_open(), "exactly the window is fine");
    let got = violate(&mut net, &mut c, &mut s, chunk(0, 8 << 10, 1));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::CreditExceeded));
}

#[test]
fn chunk_before_accept_is_chunk_out_of_range() {
    let mut net = pair(TransferConfig::default(), 14);
    let (mut c, mut s) = (manual(), manual());
    net.client.send(&raw_offer(0, "raw", 100)).unwrap();
    let got = violate(&mut net, &mut c, &mut s, chunk(0, 0, 10));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::ChunkOutOfRange));
}

#[test]
fn chunk_for_an_unknown_transfer_is_a_non_fatal_error() {
    let (mut net, mut c, mut s) = raw_accepted(100, 1 << 20, 15);
    assert_eq!(violate(&mut net, &mut c, &mut s, chunk(98, 0, 10)), None);
    assert_eq!(
        violate(
            &mut net,
            &mut c,
            &mut s,
            Message::Done {
                id: 77,
                digest: [0; 32]
            }
        ),
        None
    );
    assert!(net.client.is_open() && net.server.is_open());
    let errors = peer_errors(&c);
    // The first error is the raw client's own answer to the server's accept; then ours.
    assert_eq!(
        errors
            .iter()
            .filter(|&&e| e == ErrorCode::UnknownTransfer)
            .count(),
        2
    );
}

#[test]
fn offer_with_the_wrong_parity_is_malformed() {
    let mut net = pair(TransferConfig::default(), 16);
    let (mut c, mut s) = (manual(), manual());
    let got = violate(&mut net, &mut c, &mut s, raw_offer(1, "odd", 1));
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::Malformed));
}

#[test]
fn hand_built_done_with_a_wrong_digest_fails_with_digest_mismatch() {
    let (mut net, mut c, mut s) = raw_accepted(10, 1 << 20, 17);
    net.client.send(&chunk(0, 0, 10)).unwrap();
    let done = Message::Done {
        id: 0,
        digest: [0xAB; 32],
    };
    assert_eq!(violate(&mut net, &mut c, &mut s, done), None);
    ended_with(&s, 0, ErrorCode::DigestMismatch, false);
    assert_eq!(s.written(0), 10);
    assert!(net.server.is_open());
}

#[test]
fn done_before_every_byte_is_chunk_out_of_range() {
    let (mut net, mut c, mut s) = raw_accepted(10, 1 << 20, 18);
    net.client.send(&chunk(0, 0, 9)).unwrap();
    let got = violate(
        &mut net,
        &mut c,
        &mut s,
        Message::Done {
            id: 0,
            digest: [0; 32],
        },
    );
    assert_eq!(got.map(|c| c.code()), Some(ErrorCode::ChunkOutOfRange));
}

/// One byte of file data flipped on the wire: the receiver's digest catches it.
#[test]
fn corruption_on_the_wire_is_a_digest_mismatch_on_both_sides() {
    let mut net = pair(TransferConfig::default(), 19);
    let p = Pattern::new(19);
    let (mut c, mut s) = (Host::default(), Host::accepting(None));
    let size = 300_000;
    let id = c.offer_pattern(&mut net.client, "f", size, &p);
    // Pump by hand so that we can touch the bytes: flip one byte of the second big piece
    // (a chunk's payload: payloads of 1 KiB and more travel as their own pieces).
    let now = net.now;
    let mut big = 0;
    for _ in 0..1000 {
        c.poll(&mut net.client, now);
        s.poll(&mut net.server, now);
        let mut moved = false;
        while let Some(b) = net.client.poll_transmit() {
            moved = true;
            let mut v = b.to_vec();
            if v.len() >= 1024 {
                big += 1;
                if big == 2 {
                    v[100] ^= 0x20;
                }
            }
            net.server.handle_input(now, &v);
        }
        while let Some(b) = net.server.poll_transmit() {
            moved = true;
            net.client.handle_input(now, &b);
        }
        if !moved && c.outcome(id).is_some() && s.outcome(id).is_some() {
            break;
        }
    }
    ended_with(&s, id, ErrorCode::DigestMismatch, false);
    ended_with(&c, id, ErrorCode::DigestMismatch, true);
    assert_eq!(
        s.written(id),
        size,
        "every byte was written before the verdict"
    );
    assert!(net.client.is_open() && net.server.is_open());
}

/// Sizes up to 2^64 - 1 are offered, accepted, moved and cancelled without allocating by size.
#[test]
fn huge_sizes_work_without_allocating_by_size() {
    for size in [1u64 << 63, u64::MAX] {
        let mut net = pair(TransferConfig::default(), 20);
        let p = Pattern::new(20);
        let (mut c, mut s) = (Host::default(), Host::accepting(Some(p.clone())));
        let id = c.offer(&mut net.client, "huge.img", size, Source::Pattern(p));
        run(&mut net, &mut c, &mut s, secs(60), |_, _, s| {
            s.written(id) >= 3 << 20
        });
        assert_eq!(s.offers[0].size, size);
        let (_, last) = s.progress.last().unwrap();
        assert_eq!(last.total, size);
        assert!(last.done > 0 && s.written(id) >= 3 << 20);
        net.server
            .cancel_transfer(id, ErrorCode::Cancelled, "enough")
            .unwrap();
        run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
        ended_with(&c, id, ErrorCode::Cancelled, true);
        assert!(net.client.is_open());
    }
    // A resume offset beyond the size is refused locally; at the size it is accepted.
    let mut net = pair(TransferConfig::default(), 21);
    let (mut c, mut s) = (manual(), manual());
    net.client.send(&raw_offer(0, "raw", 1 << 63)).unwrap();
    run(&mut net, &mut c, &mut s, secs(5), offered);
    assert!(net.server.accept_offer(0, (1 << 63) + 1).is_err());
}

#[test]
fn receiver_cancelling_an_unanswered_offer_ends_it_on_both_sides() {
    let mut net = pair(TransferConfig::default(), 22);
    let (mut c, mut s) = (Host::default(), manual());
    let p = Pattern::new(22);
    let id = c.offer(&mut net.client, "f", 1000, Source::Pattern(p));
    run(&mut net, &mut c, &mut s, secs(5), offered);
    net.server
        .cancel_transfer(id, ErrorCode::Cancelled, "x")
        .unwrap();
    run(&mut net, &mut c, &mut s, secs(5), ended_on_client(id));
    // Cancelling an unanswered offer from the receiver's side is a reject on the wire.
    ended_with(&c, id, ErrorCode::Cancelled, true);
    ended_with(&s, id, ErrorCode::Cancelled, false);
    assert!(c.accepted.is_empty() && c.read_end.is_empty());
}

/// The peer vanishes without closing (no bytes either way): the heartbeat timeout ends the
/// session and with it the transfer, with a reason, on each side; what was written stays.
#[test]
fn silent_peer_mid_transfer_ends_it_with_the_heartbeat_timeout() {
    let (mut net, mut c, mut s, id) = mid_transfer(30);
    net.to_server.delay = secs(3600);
    net.to_client.delay = secs(3600);
    let written = s.written(id);
    run(&mut net, &mut c, &mut s, secs(40), ended(id));
    for h in [&c, &s] {
        let f = h.failure(id);
        assert_eq!(f.code, ErrorCode::HeartbeatTimeout);
        assert!(!f.reason.is_empty());
        assert!(matches!(
            closed(h),
            Some(Closed::Local {
                code: ErrorCode::HeartbeatTimeout,
                ..
            })
        ));
    }
    assert!(
        s.written(id) >= written,
        "what was written is kept for a resume"
    );
}

#[test]
fn offers_name_their_addressee_and_check_it() {
    let mut net = pair(TransferConfig::default(), 31);
    let mut s = manual();
    let id = net
        .client
        .offer_file("bob", "a.txt", 3, "text/plain")
        .unwrap();
    net.settle();
    s.poll(&mut net.server, net.now);
    let o = &s.offers[0];
    assert_eq!(
        (o.id, o.peer.as_str(), o.name.as_str()),
        (id, "bob", "a.txt")
    );
    assert_eq!((o.size, o.media_type.as_str()), (3, "text/plain"));
    assert!(net
        .client
        .offer_file("not a name!", "a.txt", 3, "")
        .is_err());
    assert!(net
        .client
        .offer_file("", "a.txt", 3, &"m".repeat(256))
        .is_err());
}

#[test]
fn numbered_offers_keep_the_parity_and_increase() {
    use tidings_core::transfer::Mode;
    let mut net = pair(TransferConfig::default(), 11);
    let server = &mut net.server;
    let mut offer = |id| server.offer_numbered(id, "", "f", 1, "", Mode::Local);
    assert_eq!(offer(Some(7)).unwrap(), 7);
    // Below the next id, or the client's parity: refused, nothing sent.
    assert!(offer(Some(5)).is_err());
    assert!(offer(Some(7)).is_err());
    assert!(offer(Some(10)).is_err());
    // The session's own numbering goes on above the chosen id.
    assert_eq!(offer(None).unwrap(), 9);
    assert_eq!(offer(Some(101)).unwrap(), 101);
    // The last id of the space is never handed out twice.
    assert!(offer(Some(u64::MAX)).is_err());
    assert_eq!(offer(None).unwrap(), 103);
}
