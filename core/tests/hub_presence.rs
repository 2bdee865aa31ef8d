//! The default room's joins and departures told in batches (`HubConfig::presence_interval`):
//! nothing is told before the interval unless something else goes to the member first, and
//! then the news comes first; a newcomer's welcome lists everyone and it hears nothing it
//! already knows.

mod sim;

use std::time::Duration;

use bytes::Bytes;
use sim::HubNet;
use tidings_core::hub::HubConfig;
use tidings_core::session::Event;
use tidings_core::transfer::TransferEvent;
use tidings_core::wire::{FrameDecoder, Message, PresenceKind, DEFAULT_MAX_FRAME};

const INTERVAL: Duration = Duration::from_millis(100);

fn batched() -> HubNet {
    let mut config = HubConfig {
        presence_interval: INTERVAL,
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    HubNet::new(config, 5)
}

/// What `name` heard, as short strings in order: `+ann`, `-ann`, `text ann: hi`, `offer ann`.
fn heard(net: &mut HubNet, name: &str) -> Vec<String> {
    net.client(name)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Presence {
                kind: PresenceKind::Joined,
                name,
            } => Some(format!("+{name}")),
            Event::Presence {
                kind: PresenceKind::Left,
                name,
            } => Some(format!("-{name}")),
            Event::Text { peer, text, .. } => Some(format!("text {peer}: {text}")),
            Event::Transfer(TransferEvent::Offered(o)) => Some(format!("offer {}", o.peer)),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_wait_for_the_interval_then_each_member_hears_those_after_its_own() {
    let mut net = batched();
    for name in ["ann", "bob", "cy", "dee"] {
        net.join(name);
    }
    // Each welcome listed everyone present, the newcomer last.
    assert_eq!(net.online_seen_by(3).len(), 4);
    for name in ["ann", "bob", "cy", "dee"] {
        assert!(heard(&mut net, name).is_empty(), "{name} heard early");
    }
    net.advance(INTERVAL);
    assert_eq!(heard(&mut net, "ann"), ["+bob", "+cy", "+dee"]);
    assert_eq!(heard(&mut net, "bob"), ["+cy", "+dee"]);
    assert_eq!(heard(&mut net, "cy"), ["+dee"]);
    assert!(heard(&mut net, "dee").is_empty(), "nothing about itself");
    // A departure waits too, and is told once.
    let dee = net.idx("dee");
    net.clients[dee]
        .session
        .goodbye(tidings_core::ErrorCode::Normal, "bye");
    net.settle();
    assert_eq!(heard(&mut net, "ann"), ["+bob", "+cy", "+dee"]);
    net.advance(INTERVAL);
    assert_eq!(heard(&mut net, "ann"), ["+bob", "+cy", "+dee", "-dee"]);
    net.advance(INTERVAL * 3);
    assert_eq!(heard(&mut net, "cy"), ["+dee", "-dee"]);
}

/// The frames a raw connection received after the preamble, as short strings in order.
fn raw_heard(net: &HubNet, conn: tidings_core::hub::ConnId) -> Vec<String> {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    decoder.push(&net.raw_out[&conn][8..]);
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        out.push(match Message::decode(frame).unwrap() {
            Message::Welcome(w) => format!("welcome {}", w.online.len()),
            Message::Presence { kind, name } => match kind {
                PresenceKind::Joined => format!("+{name}"),
                PresenceKind::Left => format!("-{name}"),
            },
            Message::Text { peer, text, .. } => format!("text {peer}: {text}"),
            Message::Offer(o) => format!("offer {}", o.peer),
            other => other.name().to_string(),
        });
    }
    out
}

#[test]
fn a_batch_is_due_an_interval_after_its_first_item_not_its_last() {
    let mut net = batched();
    let start = net.now;
    net.join("ann");
    net.advance(INTERVAL / 2);
    net.join("bob");
    assert_eq!(net.hub.poll_timeout(), Some(start + INTERVAL));
    net.advance(INTERVAL / 2);
    assert_eq!(heard(&mut net, "ann"), ["+bob"]);
    assert_eq!(
        net.hub.poll_timeout().map(|t| t > net.now + INTERVAL),
        Some(true)
    );
}

#[test]
fn a_line_or_an_offer_comes_after_the_news_of_its_sender() {
    let mut net = batched();
    let bob = net.raw_hello("bob", 0, DEFAULT_MAX_FRAME);
    net.join("ann");
    // Within the interval: ann's line reaches bob, ann's arrival first.
    let ann = net.idx("ann");
    net.clients[ann].session.send_text("bob", "psst").unwrap();
    net.settle();
    assert_eq!(
        raw_heard(&net, bob),
        ["welcome 1", "+ann", "text ann: psst"]
    );
    // And a file offered by a newcomer at once.
    net.join("cy");
    net.offer("cy", "bob", "a.txt", Bytes::from_static(b"hello"));
    let want = ["welcome 1", "+ann", "text ann: psst", "+cy", "offer cy"];
    assert_eq!(raw_heard(&net, bob), want);
    // What bob heard early is not told again when the interval ends.
    net.advance(INTERVAL);
    assert_eq!(raw_heard(&net, bob), want);
    assert_eq!(heard(&mut net, "ann"), ["+cy"]);
}

#[test]
fn a_batch_told_to_everyone_is_held_once_and_costs_nobody_the_chat_budget() {
    // A budget far below the members × the batch: counted once per member, this batch of
    // 150 arrivals (about 1.5 KiB) told to 200 members would be 200 KiB and disconnect
    // most of them as slow consumers.
    let mut config = HubConfig {
        presence_interval: INTERVAL,
        chat_budget: 64 << 10,
        ..HubConfig::default()
    };
    config.session.max_queued_output = 64 << 10;
    config.session.transfer = sim::hub::test_transfers();
    let mut net = HubNet::new(config, 9);
    for i in 0..50 {
        net.join(&format!("early{i}"));
    }
    net.advance(INTERVAL);
    for i in 0..150 {
        net.join(&format!("late{i:03}"));
    }
    net.advance(INTERVAL);
    assert_eq!(net.hub.peer_count(), 200, "nobody was dropped");
    for i in 0..200 {
        assert_eq!(net.online_seen_by(i).len(), 200, "{}", net.clients[i].name);
    }
    assert!(net.hub.chat_queued() <= 64 << 10);
}
