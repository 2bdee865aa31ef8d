//! Fuzz body for the messages between the nodes of a cluster.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::{ClusterConfig, NodeMessage, Said};
use crate::hub::{Hub, HubConfig};
use crate::wire::Utf8;

/// Names a hostile broker might put in node messages: valid ones, look-alikes of each other,
/// this node's and the server's, and ones no node would send (empty, spaced, too long, control
/// characters).
const NAMES: [&str; 10] = [
    "ann",
    "ANN",
    "bob",
    "node",
    "server",
    "lobby",
    "",
    "a b",
    "a\u{7}",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// Decodes the fuzzer's bytes as one node message: one that decodes must encode back to the
/// same bytes. Then reads the bytes as a script of node messages built from a few names
/// (valid, look-alike, the node's own, the server's, invalid), with sequence numbers and
/// clock steps from the input, and feeds them to a hub that is a node: whatever the broker
/// delivers, the hub never panics, and it never lists a name twice or a name it would not
/// admit.
pub fn node_message(data: &[u8], now: Instant) {
    let whole = Bytes::copy_from_slice(data);
    if let Ok(msg) = NodeMessage::decode(whole.clone()) {
        assert_eq!(msg.encode(), whole, "re-encoding changed the message");
    }
    let config = HubConfig {
        presence_interval: Duration::from_millis(100),
        cluster: Some(ClusterConfig::default()),
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config, now);
    let mut at = now;
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let name = |b: u8| Utf8::from(NAMES[usize::from(b) % NAMES.len()]);
    while let (Some(kind), Some(a), Some(b)) = (next(), next(), next()) {
        let node = Utf8::from(["n1", "n2", "node", "a b"][usize::from(a >> 6)]);
        let seq = u64::from(b % 8);
        let msg = match kind % 7 {
            0 => NodeMessage::Alive {
                node,
                seq,
                members: u32::from(b),
            },
            1 => NodeMessage::Hello { node },
            2 => NodeMessage::Roster {
                node,
                seq,
                first: b & 1 == 0,
                names: (0..a % 5).map(|i| name(b.wrapping_add(i))).collect(),
            },
            3 => NodeMessage::Presence {
                node,
                seq,
                changes: (0..a % 4)
                    .map(|i| (b >> i & 1 == 0, name(a.wrapping_add(i))))
                    .collect(),
            },
            4 => NodeMessage::Gone { node },
            5 => NodeMessage::Say {
                node,
                room: name(a),
                from: name(b),
                said: Said::Text("hi".into()),
            },
            _ => NodeMessage::Private {
                node,
                to: name(a),
                from: name(b),
                said: Said::Text("hi".into()),
            },
        };
        at += Duration::from_millis(u64::from(kind >> 3) * 97);
        hub.handle_cluster(at, msg.encode());
        hub.handle_timeout(at);
        while hub.poll_cluster().is_some() {}
        while hub.poll_event().is_some() {}
        let who = hub.who();
        let mut keys: Vec<String> = who.iter().map(|n| crate::name::name_key(n)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), who.len(), "a name listed twice: {who:?}");
        assert!(who.iter().all(|n| crate::name::validate_name(n).is_ok()));
        assert!(who.iter().all(|n| crate::name::name_key(n) != "server"));
    }
}
