//! §6.3 routing and stamping, §6.4 presence and the online list, §6.9 order.

use super::{case, non_fatal_error, Case, Ctx, Needs, Outcome, Pass};
use crate::client::{Check, Client};
use crate::fail;
use crate::wire::{code, Message, MIN_MAX_FRAME};

pub(super) static CASES: &[Case] = &[
    case(
        "6.3-sender-stamped",
        "text and blob reach others stamped with the sender's name; a broadcast is not echoed",
        None,
        Needs::Stream,
        sender_stamped,
    ),
    case(
        "6.3-private-routing",
        "a private text reaches its addressee alone, private = 1",
        None,
        Needs::Stream,
        private_routing,
    ),
    case(
        "6.3-text-to-self",
        "a text to oneself comes back, private",
        Some(8),
        Needs::Stream,
        text_to_self,
    ),
    case(
        "6.3-private-bit-ignored",
        "the private bit of a client's broadcast decides nothing",
        None,
        Needs::Stream,
        private_bit_ignored,
    ),
    case(
        "6.3-unknown-peer",
        "a text to a name nobody has: error unknown-peer, the connection stays open",
        None,
        Needs::Stream,
        unknown_peer,
    ),
    case(
        "6.3-limit-exceeded",
        "a text too large for its addressee's frame limit: error limit-exceeded",
        None,
        Needs::Stream,
        limit_exceeded,
    ),
    case(
        "6.4-presence",
        "others get presence joined and left; nobody gets presence about itself",
        None,
        Needs::Stream,
        presence,
    ),
    case(
        "6.4-online-order",
        "welcome.online and peer-list in key order, the new client last",
        Some(8),
        Needs::Stream,
        online_order,
    ),
    case(
        "6.9-order-kept",
        "one sender's texts to one recipient arrive in the order sent",
        None,
        Needs::Stream,
        order_kept,
    ),
];

fn text(peer: &str, text: &str) -> Message {
    Message::Text {
        peer: peer.into(),
        private: false,
        text: text.into(),
    }
}

/// The first text whose content is `want`: its sender and private flag.
fn text_from(c: &mut Client, want: &str) -> Check<(String, bool)> {
    c.expect(&format!("the text {want:?}"), |m| match m {
        Message::Text {
            peer,
            private,
            text,
        } if text == want => Some((peer.clone(), *private)),
        _ => None,
    })
}

/// Every text `c` gets up to the one saying `marker`, and up to a round trip after it.
fn texts_through(c: &mut Client, marker: &str) -> Check<Vec<String>> {
    let mut seen = Vec::new();
    c.expect(&format!("the text {marker:?}"), |m| match m {
        Message::Text { text, .. } if text == marker => Some(()),
        Message::Text { text, .. } => {
            seen.push(text.clone());
            None
        }
        _ => None,
    })?;
    for m in c.sync()? {
        if let Message::Text { text, .. } = m {
            seen.push(text);
        }
    }
    Ok(seen)
}

fn sender_stamped(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("stamper")?;
    let (mut b, _) = ctx.join("reader")?;
    let said = format!("hello from {}", a.label);
    a.send(&text("", &said))?;
    let (from, private) = text_from(&mut b, &said)?;
    if from != a.label || private {
        fail!("a broadcast from {:?} reached {:?} as from {from:?}, private {private} (§6.3: the server stamps the sender)", a.label, b.label);
    }
    let blob = Message::Blob {
        peer: String::new(),
        private: false,
        media_type: "text/plain".into(),
        data: said.clone().into_bytes(),
    };
    a.send(&blob)?;
    let from = b.expect("the blob", |m| match m {
        Message::Blob { peer, data, .. } if *data == said.as_bytes() => Some(peer.clone()),
        _ => None,
    })?;
    if from != a.label {
        fail!("a blob from {:?} arrived as from {from:?} (§6.3)", a.label);
    }
    let echoed = a.sync()?;
    if echoed
        .iter()
        .any(|m| matches!(m, Message::Text { text, .. } if *text == said))
    {
        fail!(
            "{:?} got its own broadcast back (§6.3: a broadcast never comes back)",
            a.label
        );
    }
    Ok(Pass::Ok)
}

fn private_routing(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("teller")?;
    let (mut b, _) = ctx.join("told")?;
    let (mut c, _) = ctx.join("bystander")?;
    let secret = format!("for {} only", b.label);
    a.send(&text(&b.label, &secret))?;
    let (from, private) = text_from(&mut b, &secret)?;
    if from != a.label || !private {
        fail!("a private text reached its addressee as from {from:?}, private {private} (§6.3)");
    }
    // The marker follows the secret on every connection the secret could have taken.
    let marker = format!("everyone, after {}", b.label);
    a.send(&text("", &marker))?;
    text_from(&mut b, &marker)?;
    let overheard = texts_through(&mut c, &marker)?;
    if overheard.contains(&secret) {
        fail!(
            "{:?} received the private text meant for {:?} (§6.3: to that client only)",
            c.label,
            b.label
        );
    }
    Ok(Pass::Ok)
}

fn text_to_self(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("mirror")?;
    let note = format!("note to {}", a.label);
    a.send(&text(&a.label.clone(), &note))?;
    let (from, private) = text_from(&mut a, &note)?;
    if from != a.label || !private {
        fail!("a text to oneself came back as from {from:?}, private {private} (§6.3, DECISIONS.md point 8)");
    }
    Ok(Pass::Ok)
}

fn private_bit_ignored(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("flagger")?;
    let (mut b, _) = ctx.join("flagged")?;
    let said = format!("flagged broadcast from {}", a.label);
    a.send(&Message::Text {
        peer: String::new(),
        private: true,
        text: said.clone(),
    })?;
    let (_, private) = text_from(&mut b, &said)?;
    if private {
        fail!("a broadcast sent with the private bit arrived private (§6.3: the server sets the flag)");
    }
    Ok(Pass::Ok)
}

fn unknown_peer(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("lonely")?;
    let nobody = ctx.name("nobody");
    a.send(&text(&nobody, "hello?"))?;
    non_fatal_error(&mut a, code::UNKNOWN_PEER, "§6.3: a text to nobody")?;
    Ok(Pass::Ok)
}

fn limit_exceeded(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("a-rather-long-sender")?;
    let (mut c, _) = ctx.join("c")?;
    // a's frame is exactly 1 MiB; stamped with a's longer name it no longer fits c's limit.
    let fill = MIN_MAX_FRAME as usize - 2 - c.label.len();
    a.send(&Message::Text {
        peer: c.label.clone(),
        private: false,
        text: "y".repeat(fill),
    })?;
    non_fatal_error(
        &mut a,
        code::LIMIT_EXCEEDED,
        "§6.3: too large for its addressee",
    )?;
    let reached = c.sync()?;
    if reached
        .iter()
        .any(|m| matches!(m, Message::Text { text, .. } if text.len() == fill))
    {
        fail!("the text too large for {:?} reached it anyway (§4.2: a sender MUST NOT exceed the peer's limit)", c.label);
    }
    Ok(Pass::Ok)
}

fn presence(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("watcher")?;
    let (mut b, _) = ctx.join("comer")?;
    let who = b.label.clone();
    a.expect(&format!("presence joined {who}"), |m| match m {
        Message::Presence { joined: true, name } if *name == who => Some(()),
        _ => None,
    })?;
    let about_self = b.sync()?;
    if about_self
        .iter()
        .any(|m| matches!(m, Message::Presence { name, .. } if *name == who))
    {
        fail!("{who:?} received presence about itself (§6.4)");
    }
    b.send(&Message::Goodbye {
        code: code::NORMAL,
        reason: "bye".into(),
    })?;
    a.expect(&format!("presence left {who}"), |m| match m {
        Message::Presence {
            joined: false,
            name,
        } if *name == who => Some(()),
        _ => None,
    })?;
    Ok(Pass::Ok)
}

fn online_order(ctx: &mut Ctx) -> Outcome {
    // Joined out of order, one in upper case: the key order is amy, Bob, zed.
    let mut kept = Vec::new();
    for base in ["zed", "Bob", "amy"] {
        kept.push(ctx.join(base)?);
    }
    let ours: Vec<String> = kept.iter().map(|(c, _)| c.label.clone()).collect();
    let mut sorted = ours.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    let (mut newcomer, w) = ctx.join("new")?;
    let me = newcomer.label.clone();
    let mine = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|n| ours.contains(n) || **n == me)
            .cloned()
            .collect()
    };
    let online = mine(&w.online);
    let mut expected = sorted.clone();
    expected.push(newcomer.label.clone());
    if online.last() != Some(&me) || online.len() != expected.len() {
        fail!(
            "welcome.online (ours) is {online:?}: everyone online with the new client last (§6.2)"
        );
    }
    newcomer.send(&Message::ListRequest)?;
    let listed = newcomer.expect("peer-list", |m| match m {
        Message::PeerList { names } => Some(names.clone()),
        _ => None,
    })?;
    let listed = mine(&listed);
    let mut everyone = expected.clone();
    everyone.sort_by_key(|n| n.to_lowercase());
    if listed.len() != everyone.len() {
        fail!("peer-list (ours) is {listed:?}: every registered client, the asker included (§6.4)");
    }
    if online != expected || listed != everyone {
        return Ok(Pass::NonStrict(format!(
            "not in key order: welcome.online {online:?}, peer-list {listed:?} (§6.4 SHOULD, DECISIONS.md point 8)"
        )));
    }
    Ok(Pass::Ok)
}

fn order_kept(ctx: &mut Ctx) -> Outcome {
    let (mut a, _) = ctx.join("speaker")?;
    let (mut b, _) = ctx.join("listener")?;
    let sent: Vec<String> = ["one", "two", "three", "four"]
        .iter()
        .map(|w| format!("{w} of {}", a.label))
        .collect();
    for s in &sent {
        a.send(&text(&b.label.clone(), s))?;
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        got.push(b.expect("the next text", |m| match m {
            Message::Text { text, .. } if sent.contains(text) => Some(text.clone()),
            _ => None,
        })?);
    }
    if got != sent {
        fail!("texts arrived as {got:?}, sent as {sent:?} (§6.9: within a queue order is kept)");
    }
    Ok(Pass::Ok)
}
