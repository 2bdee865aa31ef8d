//! Several hubs, each one node of a cluster, joined by an in-memory broker: subjects heard by
//! interest, a store of name claims renewed while their node lives and expiring after
//! [`CLAIM_TTL`] otherwise, and faults chosen by the seed (lost, repeated and late messages),
//! or by the test (a node cut off from the broker, a crashed node).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::cluster::{ClaimOutcome, ClusterConfig, ClusterOutput};
use tidings_core::hub::HubConfig;

use super::hub::HubNet;
use super::Rng;

/// How long a claim outlives the last renewal of its node.
pub const CLAIM_TTL: Duration = Duration::from_secs(15);

/// What the broker does wrong, per message, in parts per thousand.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub lose: u64,
    pub repeat: u64,
    /// Held back until the next round (after messages published later).
    pub delay: u64,
}

pub struct ClusterNet {
    pub nodes: Vec<HubNet>,
    /// Subjects each node hears.
    pub heard: Vec<BTreeSet<String>>,
    /// Claim key → (node, last renewal): the store.
    pub claims: BTreeMap<String, (usize, Instant)>,
    /// The claims each node's driver believes it holds.
    pub held: Vec<BTreeSet<String>>,
    /// Reaches the broker.
    pub linked: Vec<bool>,
    /// Crashed: neither runs nor reaches anything.
    pub crashed: Vec<bool>,
    pub faults: Faults,
    rng: Rng,
    late: VecDeque<(usize, Bytes)>,
    /// Claims asked and not answered yet (answered a round later, so that a node has claims
    /// in flight while its clients come and go): (node, connection, key).
    asked: VecDeque<(usize, u64, String)>,
    /// Every payload published, by node, for checks.
    pub published: Vec<usize>,
}

impl ClusterNet {
    /// `n` nodes called `n0`, `n1` … with `config` (its cluster settings filled in).
    pub fn new(n: usize, config: &HubConfig, seed: u64) -> ClusterNet {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut config = config.clone();
                let cluster = config.cluster.take().unwrap_or_default();
                config.cluster = Some(ClusterConfig {
                    node: format!("n{i}"),
                    ..cluster
                });
                HubNet::new_at(config, seed + i as u64, now)
            })
            .collect();
        let mut net = ClusterNet {
            nodes,
            heard: vec![BTreeSet::new(); n],
            claims: BTreeMap::new(),
            held: vec![BTreeSet::new(); n],
            linked: vec![true; n],
            crashed: vec![false; n],
            faults: Faults::default(),
            rng: Rng::new(seed),
            late: VecDeque::new(),
            asked: VecDeque::new(),
            published: vec![0; n],
        };
        net.settle();
        net
    }

    pub fn now(&self) -> Instant {
        self.nodes[0].now
    }

    /// Connects a client of `node` asking for `name`; returns its index in that node.
    pub fn join(&mut self, node: usize, name: &str) -> usize {
        let i = self.nodes[node].join(name);
        self.settle();
        i
    }

    /// Runs every node and the broker until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            for (i, net) in self.nodes.iter_mut().enumerate() {
                if !self.crashed[i] {
                    net.settle();
                }
            }
            if !self.broker_round() {
                return;
            }
        }
        panic!("the cluster does not settle");
    }

    /// Advances every node's clock by `d` in steps of at most 50 ms, renewing the claims of
    /// linked live nodes and expiring the others.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now() + d;
        while self.now() < end {
            let step = (end - self.now()).min(Duration::from_millis(50));
            for (i, net) in self.nodes.iter_mut().enumerate() {
                if self.crashed[i] {
                    net.now += step;
                } else {
                    net.advance(step);
                }
            }
            let now = self.now();
            self.claims
                .retain(|_, (_, renewed)| now < *renewed + CLAIM_TTL);
            self.renew(now);
            self.settle();
        }
    }

    /// What each linked live node's driver does with the claims it holds: renews them,
    /// claims again one that expired, and reports one another node took meanwhile.
    fn renew(&mut self, now: Instant) {
        for node in 0..self.nodes.len() {
            if !self.linked[node] || self.crashed[node] {
                continue;
            }
            let held: Vec<String> = self.held[node].iter().cloned().collect();
            for key in held {
                match self.claims.get_mut(&key) {
                    Some((owner, renewed)) if *owner == node => *renewed = now,
                    Some(_) => {
                        self.held[node].remove(&key);
                        self.nodes[node].hub.claim_lost(&key);
                    }
                    None => {
                        self.claims.insert(key, (node, now));
                    }
                }
            }
        }
    }

    /// Cuts `node` off from the broker (or links it again), telling its hub as a driver would.
    pub fn link(&mut self, node: usize, up: bool) {
        self.linked[node] = up;
        let now = self.now();
        self.nodes[node].hub.cluster_link(now, up);
        self.settle();
    }

    /// `node` dies: it runs no more and its users' connections are gone with it.
    pub fn crash(&mut self, node: usize) {
        self.crashed[node] = true;
        self.settle();
    }

    /// The store answers the claims asked in the last round (some later still, as the seed
    /// says), creating each only if absent.
    fn answer_claims(&mut self) -> bool {
        let asked: Vec<_> = self.asked.drain(..).collect();
        let moved = !asked.is_empty();
        for (i, conn, key) in asked {
            if self.crashed[i] {
                continue;
            }
            if self.rng.below(1000) < self.faults.delay {
                self.asked.push_back((i, conn, key));
                continue;
            }
            let now = self.now();
            let outcome = if !self.linked[i] {
                ClaimOutcome::Unavailable
            } else {
                match self.claims.entry(key) {
                    // The driver takes over a claim the store has under its own node's name.
                    std::collections::btree_map::Entry::Occupied(mut o) if o.get().0 == i => {
                        o.get_mut().1 = now;
                        self.held[i].insert(o.key().clone());
                        ClaimOutcome::Held
                    }
                    std::collections::btree_map::Entry::Occupied(_) => ClaimOutcome::Taken,
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        self.held[i].insert(slot.key().clone());
                        slot.insert((i, now));
                        ClaimOutcome::Held
                    }
                }
            };
            self.nodes[i].hub.claimed(conn, outcome);
        }
        moved
    }

    /// One pass over every node's outputs. Whether anything moved.
    fn broker_round(&mut self) -> bool {
        let mut moved = self.answer_claims();
        let mut deliveries: Vec<(usize, Bytes)> = self.late.drain(..).collect();
        for i in 0..self.nodes.len() {
            if self.crashed[i] {
                continue;
            }
            while let Some(out) = self.nodes[i].hub.poll_cluster() {
                moved = true;
                match out {
                    ClusterOutput::Subscribe(subject) => {
                        self.heard[i].insert(subject);
                    }
                    ClusterOutput::Unsubscribe(subject) => {
                        self.heard[i].remove(&subject);
                    }
                    ClusterOutput::Claim { conn, key, .. } => {
                        self.asked.push_back((i, conn, key));
                    }
                    ClusterOutput::Release { key } => {
                        self.held[i].remove(&key);
                        // A release while cut off does not reach the store: the claim expires.
                        if self.linked[i]
                            && self.claims.get(&key).is_some_and(|(owner, _)| *owner == i)
                        {
                            self.claims.remove(&key);
                        }
                    }
                    ClusterOutput::Publish { subject, payload } => {
                        self.published[i] += 1;
                        if !self.linked[i] {
                            continue;
                        }
                        for j in 0..self.nodes.len() {
                            if self.crashed[j]
                                || !self.linked[j]
                                || !self.heard[j].contains(&subject)
                            {
                                continue;
                            }
                            let f = self.faults;
                            if self.rng.below(1000) < f.lose {
                                continue;
                            }
                            let copies = 1 + usize::from(self.rng.below(1000) < f.repeat);
                            for _ in 0..copies {
                                if self.rng.below(1000) < f.delay {
                                    self.late.push_back((j, payload.clone()));
                                } else {
                                    deliveries.push((j, payload.clone()));
                                }
                            }
                        }
                    }
                }
            }
        }
        for (j, payload) in deliveries {
            moved = true;
            let now = self.nodes[j].now;
            self.nodes[j].hub.handle_cluster(now, payload);
        }
        moved |= !self.late.is_empty();
        moved
    }
}
