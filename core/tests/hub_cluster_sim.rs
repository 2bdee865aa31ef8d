//! A cluster under faults, deterministic from a seed: three hubs joined by the in-memory
//! broker of `sim::cluster`, which loses, repeats and holds back messages at rates the seed
//! picks, while clients join, talk, message each other privately and leave, nodes are cut
//! off from the broker and linked again, and one may crash. Checked throughout: nobody gets
//! a private message meant for someone else, and no line arrives under another sender's
//! name. Checked once the faults stop and the timeouts have passed: each name is held by one
//! client at most, and every node lists exactly the users of the live nodes.
//!
//! A failing seed is printed; `TIDINGS_SEED=N cargo test -p tidings-core --test
//! hub_cluster_sim` runs that one alone.

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use sim::cluster::{ClusterNet, Faults, CLAIM_TTL};
use sim::Rng;
use tidings_core::hub::HubConfig;
use tidings_core::name::name_key;
use tidings_core::session::Event;

const NODES: usize = 3;
const NAMES: [&str; 8] = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"];
const STEPS: usize = 80;

fn config() -> HubConfig {
    let mut config = HubConfig {
        presence_interval: Duration::from_millis(100),
        ..HubConfig::default()
    };
    config.session.transfer = sim::hub::test_transfers();
    config
}

/// Clients of `node` that were welcomed and are still connected, with their index.
fn live(net: &ClusterNet, node: usize) -> Vec<(usize, String)> {
    if net.crashed[node] {
        return Vec::new();
    }
    net.nodes[node]
        .clients
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.closed().is_none()
                && c.session.is_open()
                && c.events.iter().any(|e| matches!(e, Event::Connected(_)))
        })
        .map(|(i, c)| (i, c.name.clone()))
        .collect()
}

/// Every line heard so far: stamped with its true sender, and private ones only by their
/// addressee. Lines are `from:NAME to:NAME n:K` (`to:*` for everyone).
fn check_lines(net: &ClusterNet, seed: u64) {
    for node in &net.nodes {
        for c in &node.clients {
            for e in &c.events {
                let Event::Text {
                    peer,
                    private,
                    text,
                } = e
                else {
                    continue;
                };
                let Some(rest) = text.strip_prefix("from:") else {
                    continue; // the server's own notices
                };
                let mut fields = rest.split(' ');
                let from = fields.next().unwrap();
                let to = fields.next().unwrap().strip_prefix("to:").unwrap();
                assert_eq!(
                    peer.as_str(),
                    from,
                    "seed {seed}: spoofed sender in {text:?}"
                );
                if *private {
                    assert_eq!(
                        name_key(to),
                        name_key(&c.name),
                        "seed {seed}: {} got {text:?}",
                        c.name
                    );
                } else {
                    assert_eq!(to, "*", "seed {seed}: private line {text:?} told to all");
                }
            }
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut net = ClusterNet::new(NODES, &config(), seed);
    net.faults = Faults {
        lose: rng.below(50),
        repeat: rng.below(50),
        delay: rng.below(100),
    };
    let mut said = 0u64;
    for _ in 0..STEPS {
        let node = rng.below(NODES as u64) as usize;
        let people = live(&net, node);
        match rng.below(10) {
            0..=2 if !net.crashed[node] => {
                let name = NAMES[rng.below(NAMES.len() as u64) as usize];
                net.join(node, name);
            }
            3 | 4 if !people.is_empty() => {
                let (i, me) = &people[rng.below(people.len() as u64) as usize];
                said += 1;
                let private = rng.below(2) == 0;
                let to = if private {
                    NAMES[rng.below(NAMES.len() as u64) as usize]
                } else {
                    "*"
                };
                let text = format!("from:{me} to:{to} n:{said}");
                let peer = if private { to } else { "" };
                let _ = net.nodes[node].clients[*i].session.send_text(peer, &text);
                net.settle();
            }
            5 if !people.is_empty() => {
                let (i, _) = &people[rng.below(people.len() as u64) as usize];
                net.nodes[node].clients[*i]
                    .session
                    .goodbye(tidings_core::ErrorCode::Normal, "bye");
                net.settle();
            }
            6 if !net.crashed[node] => {
                let up = !net.linked[node];
                net.link(node, up);
            }
            // One crash at most, and never the last node.
            7 if !net.crashed.iter().any(|&c| c) && rng.below(4) == 0 => net.crash(node),
            _ => net.advance(Duration::from_millis(10 + rng.below(2000))),
        }
        check_lines(&net, seed);
    }

    // Faults stop, every live node is linked, and every timeout passes.
    net.faults = Faults::default();
    for node in 0..NODES {
        if !net.crashed[node] && !net.linked[node] {
            net.link(node, true);
        }
    }
    net.advance(Duration::from_secs(12) + CLAIM_TTL);
    check_lines(&net, seed);

    let everyone: Vec<String> = (0..NODES)
        .flat_map(|n| live(&net, n))
        .map(|(_, name)| name)
        .collect();
    let unique: BTreeSet<String> = everyone.iter().map(|n| name_key(n)).collect();
    let by_node: Vec<Vec<(usize, String)>> = (0..NODES).map(|n| live(&net, n)).collect();
    assert_eq!(
        unique.len(),
        everyone.len(),
        "seed {seed}: a name held twice: {by_node:?}, store {:?}, held {:?}, crashed {:?}, linked {:?}",
        net.claims.keys().collect::<Vec<_>>(),
        net.held,
        net.crashed,
        net.linked
    );
    let mut expected: Vec<String> = everyone.clone();
    expected.sort_by_key(|n| name_key(n));
    for node in 0..NODES {
        if net.crashed[node] {
            continue;
        }
        let who: Vec<String> = net.nodes[node]
            .hub
            .who()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            who, expected,
            "seed {seed}: node {node} lists the wrong users"
        );
    }
}

#[test]
fn a_cluster_under_lost_repeated_and_late_messages_cuts_and_a_crash_stays_right() {
    if let Some(seed) = std::env::var("TIDINGS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    for seed in 1..=200 {
        run(seed);
    }
}
