//! §7 transfers and §10 relaying, seen from both ends of a relay through the server; §9's
//! relay window; §6.7.1's last frame with file data queued.

use sha2::{Digest as _, Sha256};

use super::{
    case, closes_with, describe, fatal_after, non_fatal_error, unanswered, Case, Ctx, Needs,
    Outcome, Pass,
};
use crate::client::{Check, Client};
use crate::fail;
use crate::wire::{code, code_name, frame, Message, Offer};

pub(super) static CASES: &[Case] = &[
    case(
        "6.7-error-last-with-data-queued",
        "a fatal error is the last frame: queued file data is dropped",
        Some(4),
        Needs::Stream,
        error_last,
    ),
    case(
        "7.1-offer-wrong-parity",
        "a client's offer with an odd id is malformed",
        None,
        Needs::Stream,
        wrong_parity,
    ),
    case(
        "7.1-offer-id-in-use",
        "an offer reusing a running transfer's id is malformed",
        None,
        Needs::Stream,
        id_in_use,
    ),
    case(
        "7.1-offer-reuses-ended-id",
        "an offer reusing an ended id starts a new transfer",
        Some(7),
        Needs::Stream,
        reuses_ended_id,
    ),
    case(
        "7.3-accept-past-size",
        "an accept past the size is chunk-out-of-range",
        None,
        Needs::Stream,
        accept_past_size,
    ),
    case(
        "7.3-second-accept",
        "a second accept is unexpected-message",
        None,
        Needs::Stream,
        second_accept,
    ),
    case(
        "7.3-credit-before-accept",
        "credit before accept is unexpected-message",
        None,
        Needs::Stream,
        credit_before_accept,
    ),
    case(
        "7.3-chunk-to-sender",
        "a chunk for a transfer the server sends is unexpected-message",
        None,
        Needs::Stream,
        chunk_to_sender,
    ),
    case(
        "7.4-credit-respected",
        "the server sends a receiver no byte beyond the credit it granted",
        None,
        Needs::Stream,
        credit_respected,
    ),
    case(
        "7.4-chunk-out-of-range",
        "a chunk at the wrong offset is chunk-out-of-range",
        None,
        Needs::Stream,
        chunk_out_of_range,
    ),
    case(
        "7.4-done-before-accept",
        "done before accept is chunk-out-of-range",
        Some(7),
        Needs::Stream,
        done_before_accept,
    ),
    case(
        "7.4-credit-keepalive",
        "a relay awaiting the verdict sends its sender credit 0 keepalives",
        Some(5),
        Needs::Stream,
        credit_keepalive,
    ),
    case(
        "7.4-credit-exceeded",
        "a chunk beyond the credit the relay granted is credit-exceeded",
        None,
        Needs::Stream,
        credit_exceeded,
    ),
    case(
        "7.4-last-grant",
        "a relay whose window is smaller than the file grants the rest",
        Some(5),
        Needs::Stream,
        last_grant,
    ),
    case(
        "7.4-accept-to-receiver",
        "an accept for a transfer the server receives is unexpected-message",
        None,
        Needs::Stream,
        accept_to_receiver,
    ),
    case(
        "7.6-unknown-transfer",
        "a frame for an id never used: error unknown-transfer, not fatal",
        None,
        Needs::Stream,
        unknown_transfer,
    ),
    case(
        "7.6-tombstone-ignored",
        "a frame for a transfer just ended is ignored",
        None,
        Needs::Stream,
        tombstone_ignored,
    ),
    case(
        "7.8-relayed-name-reduced",
        "a relayed name is reduced as a path; `..` is bad-file-name",
        None,
        Needs::Stream,
        name_reduced,
    ),
    case(
        "8-unknown-code-relayed",
        "an unknown code in a reject reaches the sender with its number",
        None,
        Needs::Stream,
        unknown_code_relayed,
    ),
    case(
        "9-relay-window",
        "the relay's initial credit (its receive window)",
        Some(2),
        Needs::Stream,
        relay_window,
    ),
    case(
        "10-relay-cancel-forwarded",
        "the receiver's cancel ends the sender's hop with the same code",
        None,
        Needs::Stream,
        cancel_forwarded,
    ),
    case(
        "10-relay-peer-lost",
        "the receiver gone before answering: the sender gets reject peer-lost",
        None,
        Needs::Stream,
        relay_peer_lost,
    ),
    case(
        "10-offer-to-server",
        "an offer to the server participant is accepted, or rejected storage-failed",
        None,
        Needs::Stream,
        offer_to_server,
    ),
    case(
        "10-relay-offer",
        "a relayed offer: an odd id, the sender stamped, size, name and media type kept",
        None,
        Needs::Stream,
        relay_offer,
    ),
    case(
        "10-relay-digest",
        "a relayed file arrives whole, in order, with the sender's digest; complete goes back",
        None,
        Needs::Stream,
        relay_digest,
    ),
    case(
        "10-relay-failed-forwarded",
        "the receiver's failed reaches the sender with its code",
        None,
        Needs::Stream,
        failed_forwarded,
    ),
    case(
        "10-relay-resume-credit",
        "a resuming accept reaches the sender with its offset and credit granted at once",
        Some(1),
        Needs::Stream,
        resume_credit,
    ),
    case(
        "10-relay-unknown-peer",
        "an offer to a name nobody has: reject unknown-peer",
        None,
        Needs::Stream,
        relay_unknown_peer,
    ),
    case(
        "10-relay-bad-name-before-peer",
        "an unusable name to nobody: bad-file-name decides first",
        Some(8),
        Needs::Stream,
        bad_name_before_peer,
    ),
    case(
        "10-relayed-extension",
        "the sender learns the relayed id from a relayed (0x80) frame",
        None,
        Needs::Stream,
        relayed_extension,
    ),
];

const MEDIA: &str = "application/octet-stream";
/// The chunk size the cases send: well under any frame limit.
const PIECE: usize = 16 << 10;

fn offer(id: u64, peer: &str, size: u64, name: &str) -> Message {
    Message::Offer(Offer {
        id,
        peer: peer.into(),
        size,
        name: name.into(),
        media_type: MEDIA.into(),
    })
}

/// A file's bytes: varied enough that a lost or moved byte changes the digest.
fn content(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// Two clients, the first offering the second a file through the server.
struct Relay {
    a: Client,
    b: Client,
    /// The relayed offer as the receiver got it.
    offered: Offer,
}

fn relay(ctx: &mut Ctx, size: u64, name: &str) -> Check<Relay> {
    let (mut a, _) = ctx.join("sender")?;
    let (mut b, _) = ctx.join("receiver")?;
    a.send(&offer(0, &b.label.clone(), size, name))?;
    let from = a.label.clone();
    let offered = b.expect("the relayed offer", |m| match m {
        Message::Offer(o) if o.peer == from => Some(o.clone()),
        _ => None,
    })?;
    Ok(Relay { a, b, offered })
}

impl Relay {
    fn b_id(&self) -> u64 {
        self.offered.id
    }

    /// The receiver accepts at `offset` granting `credit`; the accept the sender gets for
    /// its offer 0: offset and credit (§10 rule 2).
    fn accept(&mut self, offset: u64, credit: u32) -> Check<(u64, u32)> {
        let id = self.b_id();
        self.b.send(&Message::Accept { id, offset, credit })?;
        self.a
            .expect("the accept passed back (§10 rule 2)", |m| match m {
                Message::Accept {
                    id: 0,
                    offset,
                    credit,
                } => Some((*offset, *credit)),
                _ => None,
            })
    }

    /// The sender sends `data` from `at` as far as `credit` reaches; where it stopped.
    fn send_chunks(&mut self, data: &[u8], mut at: usize, credit: u64) -> Check<usize> {
        let end = data.len().min(at.saturating_add(credit as usize));
        while at < end {
            let n = PIECE.min(end - at);
            let chunk = data[at..at + n].to_vec();
            self.a.send(&Message::Chunk {
                id: 0,
                offset: at as u64,
                data: chunk,
            })?;
            at += n;
        }
        Ok(at)
    }

    /// The sender sends `data` from `offset`, within the credit it was granted and the
    /// credit it gets, then `done`.
    fn send_file(&mut self, data: &[u8], offset: u64, credit: u64) -> Check {
        let mut at = self.send_chunks(data, offset as usize, credit)?;
        while at < data.len() {
            let more = self.a.expect("more credit", |m| match m {
                Message::Credit { id: 0, bytes } => Some(u64::from(*bytes)),
                _ => None,
            })?;
            at = self.send_chunks(data, at, more)?;
        }
        let sha256 = Sha256::digest(data).into();
        self.a.send(&Message::Done { id: 0, sha256 })
    }

    /// Chunks for the receiver until it holds `until` bytes of a `size`-byte file, checked
    /// to arrive in order (§7.3 rule 3) and before `done` (§10 rule 4).
    fn receive_chunks(&mut self, got: &mut Vec<u8>, until: usize, size: usize) -> Check {
        let id = self.b_id();
        while got.len() < until {
            let next = self.b.expect("file data", |m| match m {
                Message::Chunk {
                    id: i,
                    offset,
                    data,
                } if *i == id => Some(Some((*offset, data.clone()))),
                Message::Done { id: i, .. } if *i == id => Some(None),
                _ => None,
            })?;
            let Some((offset, data)) = next else {
                fail!(
                    "done after {} of {size} bytes (§10 rule 4: after every byte)",
                    got.len()
                );
            };
            if offset != got.len() as u64 || got.len() + data.len() > size {
                fail!(
                    "a relayed chunk at {offset} (+{}) where {} was next (§7.4 rule 3)",
                    data.len(),
                    got.len()
                );
            }
            got.extend_from_slice(&data);
        }
        Ok(())
    }

    /// What the receiver gets after accepting everything: the bytes, in order, and the
    /// digest.
    fn receive_file(&mut self, size: usize) -> Check<(Vec<u8>, [u8; 32])> {
        let mut got = Vec::new();
        self.receive_chunks(&mut got, size, size)?;
        let id = self.b_id();
        let digest = self.b.expect("done", |m| match m {
            Message::Done { id: i, sha256 } if *i == id => Some(*sha256),
            _ => None,
        })?;
        Ok((got, digest))
    }

    /// The receiver rejects the relayed offer with `code`; the code the sender's reject
    /// carries (§10 rule 2).
    fn rejected(&mut self, code: u16) -> Check<u16> {
        let id = self.b_id();
        let reason = "not this one".into();
        self.b.send(&Message::Reject { id, code, reason })?;
        self.a
            .expect("the reject passed back (§10 rule 2)", |m| match m {
                Message::Reject { id: 0, code, .. } => Some(*code),
                _ => None,
            })
    }

    /// The sender's verdict for its offer 0.
    fn verdict(&mut self) -> Check<Message> {
        self.a
            .expect("the verdict passed back (§10 rule 4)", |m| match m {
                Message::Complete { id: 0 } | Message::Failed { id: 0, .. } => Some(m.clone()),
                _ => None,
            })
    }
}

fn error_last(ctx: &mut Ctx) -> Outcome {
    let size = 1 << 20;
    let mut r = relay(ctx, size, "queued.bin")?;
    let (_, credit) = r.accept(0, size as u32)?;
    let data = content(size as usize);
    // Enough chunks in flight that some are still queued when the error is decided.
    r.send_chunks(&data, 0, credit.into())?;
    r.b.expect("the first chunk", |m| {
        matches!(m, Message::Chunk { .. }).then_some(())
    })?;
    r.b.send_raw(&frame(0x7E, b""))?;
    closes_with(
        &mut r.b,
        "error",
        code::UNKNOWN_TYPE,
        "§6.7.2, DECISIONS.md point 4",
    )?;
    Ok(Pass::Ok)
}

fn wrong_parity(ctx: &mut Ctx) -> Outcome {
    let nobody = ctx.name("anyone");
    fatal_after(
        ctx,
        &offer(1, &nobody, 10, "odd.bin").encode(),
        code::MALFORMED,
        "§7.1: clients offer even ids",
    )
}

fn id_in_use(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 10, "once.bin")?;
    let b = r.b.label.clone();
    r.a.send(&offer(0, &b, 10, "twice.bin"))?;
    closes_with(
        &mut r.a,
        "error",
        code::MALFORMED,
        "§7.1: an id naming a running transfer",
    )?;
    Ok(Pass::Ok)
}

fn reuses_ended_id(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 10, "first.bin")?;
    r.rejected(code::REJECTED)?;
    let b = r.b.label.clone();
    r.a.send(&offer(0, &b, 20, "second.bin"))?;
    let from = r.a.label.clone();
    r.b.expect("the second offer", |m| match m {
        Message::Offer(o) if o.peer == from && o.name == "second.bin" => Some(()),
        _ => None,
    })?;
    let what = "an offer reusing an ended id";
    unanswered(&r.a.sync()?, what, "§7.1, DECISIONS.md point 7")?;
    Ok(Pass::Ok)
}

fn credit_respected(ctx: &mut Ctx) -> Outcome {
    let size = 64 << 10;
    let granted = 1024;
    let mut r = relay(ctx, size, "credit.bin")?;
    let (_, credit) = r.accept(0, granted)?;
    let data = content(size as usize);
    r.send_chunks(&data, 0, credit.into())?;
    let first = r.b.expect("the first chunk", |m| match m {
        Message::Chunk { data, .. } => Some(data.len()),
        _ => None,
    })?;
    // What the server sends beyond the grant comes at once; watch a moment for it.
    let more: usize =
        r.b.during(ctx.quiet)?
            .iter()
            .map(|m| match m {
                Message::Chunk { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
    if first + more > granted as usize {
        fail!("the server sent {} bytes to a receiver that granted {granted} (§7.3 rule 2, §10 rule 3)", first + more);
    }
    Ok(Pass::Ok)
}

fn chunk_out_of_range(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "range.bin")?;
    r.accept(0, 100)?;
    r.a.send(&Message::Chunk {
        id: 0,
        offset: 5,
        data: vec![1; 10],
    })?;
    closes_with(&mut r.a, "error", code::CHUNK_OUT_OF_RANGE, "§7.4 rule 3")?;
    Ok(Pass::Ok)
}

fn done_before_accept(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "early.bin")?;
    r.a.send(&Message::Done {
        id: 0,
        sha256: [0; 32],
    })?;
    closes_with(
        &mut r.a,
        "error",
        code::CHUNK_OUT_OF_RANGE,
        "§7.4 rule 5, DECISIONS.md point 7",
    )?;
    Ok(Pass::Ok)
}

fn credit_keepalive(ctx: &mut Ctx) -> Outcome {
    let size = 4096;
    let mut r = relay(ctx, size as u64, "slow-verdict.bin")?;
    let id = r.b_id();
    let (_, credit) = r.accept(0, size as u32)?;
    let data = content(size);
    r.send_file(&data, 0, credit.into())?;
    r.receive_file(size)?;
    // The receiver holds its verdict past one keepalive interval, min(stall / 4, 1 s).
    let wait = std::time::Duration::from_millis(1500);
    let seen = Client::during_all(&mut [&mut r.a, &mut r.b], wait)?;
    let kept_alive = seen[0]
        .iter()
        .any(|m| matches!(m, Message::Credit { id: 0, bytes: 0 }));
    r.b.send(&Message::Complete { id })?;
    match r.verdict()? {
        Message::Complete { .. } => {}
        other => fail!(
            "the receiver's complete reached the sender as {:?} (§10 rule 4)",
            describe(&[other])
        ),
    }
    if !kept_alive {
        return Ok(Pass::NonStrict(format!(
            "no credit 0 keepalive while the relay awaited the verdict for {wait:?} (§7.4 rule 4, §10 rule 7: SHOULD)"
        )));
    }
    Ok(Pass::Ok)
}

fn unknown_transfer(ctx: &mut Ctx) -> Outcome {
    let (mut c, _) = ctx.join("stray")?;
    c.send(&Message::Credit {
        id: 4242,
        bytes: 10,
    })?;
    non_fatal_error(
        &mut c,
        code::UNKNOWN_TRANSFER,
        "§7.6: credit for an id never used",
    )?;
    Ok(Pass::Ok)
}

fn name_reduced(ctx: &mut Ctx) -> Outcome {
    let r = relay(ctx, 10, "a/.git/HEAD")?;
    if r.offered.name != "a/_git/HEAD" {
        fail!(
            "the name a/.git/HEAD was relayed as {:?}, not a/_git/HEAD (§7.8 Folders, §10 rule 1)",
            r.offered.name
        );
    }
    let (mut a, b) = (r.a, r.b);
    a.send(&offer(2, &b.label, 10, "../x"))?;
    let got = a.expect("the reject of ../x", |m| match m {
        Message::Reject { id: 2, code, .. } => Some(*code),
        _ => None,
    })?;
    if got != code::BAD_FILE_NAME {
        fail!("an offer named ../x was rejected with {} ({got}), expected bad-file-name (36) (§7.8, §10 rule 1)", code_name(got));
    }
    Ok(Pass::Ok)
}

fn relay_window(ctx: &mut Ctx) -> Outcome {
    let size = 1 << 30;
    let mut r = relay(ctx, size, "huge.bin")?;
    let (_, credit) = r.accept(0, 1 << 20)?;
    r.a.send(&Message::Cancel {
        id: 0,
        code: code::CANCELLED,
        reason: "only looking".into(),
    })?;
    if credit == 0 {
        fail!("the relay granted no credit in its accept (§10 rule 2: min(window, size - offset))");
    }
    Ok(Pass::Informational(format!(
        "the relay's receive window is {credit} bytes (§9 default: 8 MiB = 8388608)"
    )))
}

fn relay_offer(ctx: &mut Ctx) -> Outcome {
    let r = relay(ctx, 12345, "photo.jpg")?;
    let Offer {
        id,
        peer,
        size,
        name,
        media_type: media,
    } = &r.offered;
    if id % 2 == 0 {
        fail!("the server offered with the even id {id} (§7.1: a server offers with odd ids)");
    }
    if *peer != r.a.label || *size != 12345 || name != "photo.jpg" || media != MEDIA {
        fail!(
            "the relayed offer is ({peer:?}, {size}, {name:?}, {media:?}), expected ({:?}, 12345, \"photo.jpg\", {MEDIA:?}) (§10 rule 1)",
            r.a.label
        );
    }
    Ok(Pass::Ok)
}

/// A whole relay of `size` bytes up to the receiver's digest check; returns the relay.
fn relayed_file(ctx: &mut Ctx, size: usize) -> Check<(Relay, bool)> {
    let mut r = relay(ctx, size as u64, "whole.bin")?;
    let (offset, credit) = r.accept(0, size as u32)?;
    if offset != 0 {
        fail!("an accept at 0 reached the sender at {offset} (§10 rule 2: the same offset)");
    }
    let data = content(size);
    r.send_file(&data, 0, credit.into())?;
    let (got, digest) = r.receive_file(size)?;
    let same = got == data && digest == <[u8; 32]>::from(Sha256::digest(&data));
    Ok((r, same))
}

fn relay_digest(ctx: &mut Ctx) -> Outcome {
    let (mut r, same) = relayed_file(ctx, 200_000)?;
    if !same {
        fail!("the relayed bytes or the forwarded digest differ from what was sent (§10 rule 4)");
    }
    let id = r.b_id();
    r.b.send(&Message::Complete { id })?;
    match r.verdict()? {
        Message::Complete { .. } => Ok(Pass::Ok),
        other => fail!(
            "complete reached the sender as {:?} (§10 rule 4)",
            describe(&[other])
        ),
    }
}

fn failed_forwarded(ctx: &mut Ctx) -> Outcome {
    let (mut r, _) = relayed_file(ctx, 5000)?;
    let id = r.b_id();
    r.b.send(&Message::Failed {
        id,
        code: code::DIGEST_MISMATCH,
        reason: "pretend".into(),
    })?;
    match r.verdict()? {
        Message::Failed {
            code: code::DIGEST_MISMATCH,
            ..
        } => Ok(Pass::Ok),
        other => fail!(
            "failed digest-mismatch reached the sender as {:?} (§10 rule 4: the same code)",
            describe(&[other])
        ),
    }
}

fn resume_credit(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 10_000, "resumed.bin")?;
    // A resuming receiver: credit 0 now, granted after hashing its prefix (§7.4 rule 2).
    let (offset, credit) = r.accept(4000, 0)?;
    if offset != 4000 {
        fail!("an accept at 4000 reached the sender at {offset} (§10 rule 2: the same offset)");
    }
    if credit == 0 {
        fail!("the relay passed on the accept with credit 0 (§10 rule 2, DECISIONS.md point 1: a relay grants at once)");
    }
    Ok(Pass::Ok)
}

/// An offer to a name nobody has is rejected with `want` (§10 rule 1).
fn rejected_offer(ctx: &mut Ctx, name: &str, want: u16) -> Outcome {
    let (mut a, _) = ctx.join("hopeful")?;
    let nobody = ctx.name("nobody");
    a.send(&offer(0, &nobody, 10, name))?;
    let got = a.expect("the reject", |m| match m {
        Message::Reject { id: 0, code, .. } => Some(*code),
        _ => None,
    })?;
    if got != want {
        fail!(
            "an offer of {name:?} to nobody was rejected with {} ({got}), expected {} ({want}) (§10 rule 1)",
            code_name(got),
            code_name(want)
        );
    }
    Ok(Pass::Ok)
}

fn relay_unknown_peer(ctx: &mut Ctx) -> Outcome {
    rejected_offer(ctx, "fine.txt", code::UNKNOWN_PEER)
}

fn bad_name_before_peer(ctx: &mut Ctx) -> Outcome {
    rejected_offer(ctx, "..", code::BAD_FILE_NAME)
}

fn relayed_extension(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 10, "numbered.bin")?;
    let (id, b) = (r.b_id(), r.b.label.clone());
    r.b.send(&Message::Accept {
        id,
        offset: 0,
        credit: 10,
    })?;
    let mut relayed = None;
    r.a.expect("the accept", |m| match m {
        Message::Accept { id: 0, .. } => Some(()),
        Message::Extension { kind: 0x80, body } => {
            relayed = Some(body.clone());
            None
        }
        _ => None,
    })?;
    let Some(body) = relayed else {
        return Ok(Pass::NonStrict(
            "no relayed (0x80) frame before the receiver's answer (§10 rule 8: SHOULD)".into(),
        ));
    };
    let mut expected = 0u64.to_be_bytes().to_vec();
    expected.push(b.len() as u8);
    expected.extend_from_slice(b.as_bytes());
    expected.extend_from_slice(&id.to_be_bytes());
    if body != expected {
        fail!("the relayed frame does not say offer 0 reaches {b:?} as {id} (§10 rule 8)");
    }
    Ok(Pass::Ok)
}

/// A relay whose receiver sends `answer` (with the relayed id) and must be closed with the
/// fatal `error` `code`.
fn receiver_violates(
    ctx: &mut Ctx,
    answer: impl Fn(u64) -> Vec<Message>,
    code: u16,
    rule: &str,
) -> Outcome {
    let mut r = relay(ctx, 100, "strict.bin")?;
    for m in answer(r.b_id()) {
        r.b.send(&m)?;
    }
    closes_with(&mut r.b, "error", code, rule)?;
    Ok(Pass::Ok)
}

fn accept_past_size(ctx: &mut Ctx) -> Outcome {
    let accept = |id| {
        vec![Message::Accept {
            id,
            offset: 101,
            credit: 0,
        }]
    };
    receiver_violates(ctx, accept, code::CHUNK_OUT_OF_RANGE, "§7.3 rule 1")
}

fn second_accept(ctx: &mut Ctx) -> Outcome {
    let twice = |id| {
        vec![
            Message::Accept {
                id,
                offset: 0,
                credit: 100
            };
            2
        ]
    };
    receiver_violates(ctx, twice, code::UNEXPECTED_MESSAGE, "§7.3 rule 1")
}

fn credit_before_accept(ctx: &mut Ctx) -> Outcome {
    let credit = |id| vec![Message::Credit { id, bytes: 100 }];
    receiver_violates(ctx, credit, code::UNEXPECTED_MESSAGE, "§7.3 rule 1")
}

fn chunk_to_sender(ctx: &mut Ctx) -> Outcome {
    let chunk = |id| {
        vec![
            Message::Accept {
                id,
                offset: 0,
                credit: 100,
            },
            Message::Chunk {
                id,
                offset: 0,
                data: vec![0; 10],
            },
        ]
    };
    receiver_violates(ctx, chunk, code::UNEXPECTED_MESSAGE, "§7.3 rule 6")
}

fn accept_to_receiver(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "mine.bin")?;
    r.a.send(&Message::Accept {
        id: 0,
        offset: 0,
        credit: 100,
    })?;
    closes_with(&mut r.a, "error", code::UNEXPECTED_MESSAGE, "§7.4 rule 6")?;
    Ok(Pass::Ok)
}

fn tombstone_ignored(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "gone.bin")?;
    r.rejected(code::REJECTED)?;
    // A chunk that crossed the reject on the wire.
    let data = vec![0; 10];
    r.a.send(&Message::Chunk {
        id: 0,
        offset: 0,
        data,
    })?;
    let what = "a chunk for a transfer just rejected";
    unanswered(&r.a.sync()?, what, "§7.6: tombstones are ignored")?;
    Ok(Pass::Ok)
}

fn unknown_code_relayed(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "odd-code.bin")?;
    let got = r.rejected(999)?;
    if got != 999 {
        fail!("a reject with the unknown code 999 reached the sender as {got} (§8: keep its number; §10 rule 2)");
    }
    Ok(Pass::Ok)
}

fn cancel_forwarded(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100_000, "stopped.bin")?;
    let id = r.b_id();
    r.accept(0, 1000)?;
    r.b.send(&Message::Cancel {
        id,
        code: code::CANCELLED,
        reason: "changed my mind".into(),
    })?;
    let got = r.a.expect("the cancel passed on", |m| match m {
        Message::Cancel { id: 0, code, .. } => Some(*code),
        _ => None,
    })?;
    if got != code::CANCELLED {
        fail!(
            "the receiver's cancel cancelled (37) reached the sender as {} ({got}) (§10 rule 5)",
            code_name(got)
        );
    }
    Ok(Pass::Ok)
}

fn relay_peer_lost(ctx: &mut Ctx) -> Outcome {
    let mut r = relay(ctx, 100, "orphan.bin")?;
    r.b.finish()?;
    let got =
        r.a.expect("the reject for the lost receiver", |m| match m {
            Message::Reject { id: 0, code, .. } | Message::Cancel { id: 0, code, .. } => {
                Some((m.name(), *code))
            }
            _ => None,
        })?;
    if got != ("reject", code::PEER_LOST) {
        fail!(
            "the receiver left before answering; the sender got {} {} (§10 rule 5: reject peer-lost)",
            got.0,
            code_name(got.1)
        );
    }
    Ok(Pass::Ok)
}

fn offer_to_server(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("donor")?;
    a.send(&offer(0, "", 10, "gift.txt"))?;
    let answer = a.expect("the server participant's answer", |m| match m {
        Message::Accept { id: 0, .. } | Message::Reject { id: 0, .. } => Some(m.clone()),
        _ => None,
    })?;
    match answer {
        Message::Accept { .. } => {
            a.send(&Message::Cancel { id: 0, code: code::CANCELLED, reason: "only asking".into() })?;
            Ok(Pass::Informational("the server participant takes files".into()))
        }
        Message::Reject { code: code::STORAGE_FAILED, .. } => Ok(Pass::Informational(
            "the server participant takes no files (reject storage-failed)".into(),
        )),
        other => fail!("an offer to the server participant was answered {:?} (§10 rule 6: storage-failed when it takes no files)", describe(&[other])),
    }
}

/// The largest relay window the last-grant case moves through the server.
const MOST_WINDOW: u32 = 32 << 20;

/// The relay's receive window, from an offer larger than any window; `Err` with the verdict
/// when it is too large to move through the server in a case.
fn relay_window_of(ctx: &mut Ctx) -> Result<u32, Outcome> {
    let mut probe = relay(ctx, 1 << 40, "probe.bin").map_err(Err)?;
    let (_, window) = probe.accept(0, u32::MAX).map_err(Err)?;
    let reason = "only measuring".into();
    let cancel = Message::Cancel {
        id: 0,
        code: code::CANCELLED,
        reason,
    };
    probe.a.send(&cancel).map_err(Err)?;
    if window == 0 || window > MOST_WINDOW {
        return Err(Ok(Pass::Informational(format!(
            "not observed: a relay window of {window} bytes (more than {MOST_WINDOW} is not moved)"
        ))));
    }
    Ok(window)
}

fn last_grant(ctx: &mut Ctx) -> Outcome {
    let window = match relay_window_of(ctx) {
        Ok(window) => window,
        Err(outcome) => return outcome,
    };
    // One window and a bit: once the window has been passed on, the rest is the last grant.
    let size = window as usize + PIECE * 4;
    let mut r = relay(ctx, size as u64, "beyond-the-window.bin")?;
    let (_, credit) = r.accept(0, size as u32)?;
    let data = content(size);
    let mut at = r.send_chunks(&data, 0, credit.into())?;
    let mut got = Vec::new();
    r.receive_chunks(&mut got, at, size)?;
    while at < size {
        let more =
            r.a.expect("the last grant (§7.4 rule 4: MUST)", |m| match m {
                Message::Credit { id: 0, bytes } if *bytes > 0 => Some(u64::from(*bytes)),
                _ => None,
            })?;
        at = r.send_chunks(&data, at, more)?;
    }
    r.receive_chunks(&mut got, size, size)?;
    if got != data {
        fail!("the bytes relayed beyond the window differ from those sent (§10 rule 4)");
    }
    Ok(Pass::Ok)
}

fn credit_exceeded(ctx: &mut Ctx) -> Outcome {
    let window = match relay_window_of(ctx) {
        Ok(window) => window,
        Err(outcome) => return outcome,
    };
    let size = window as usize + PIECE * 4;
    let mut r = relay(ctx, size as u64, "too-much.bin")?;
    // The receiver takes 1 KiB: whatever the relay returns meanwhile is less than a chunk.
    let (_, credit) = r.accept(0, 1024)?;
    let data = content(size);
    let at = r.send_chunks(&data, 0, credit.into())?;
    r.send_chunks(&data, at, PIECE as u64)?;
    closes_with(&mut r.a, "error", code::CREDIT_EXCEEDED, "§7.4 rule 3")?;
    Ok(Pass::Ok)
}
