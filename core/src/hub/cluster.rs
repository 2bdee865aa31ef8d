//! The hub as one node of a cluster (see [`crate::cluster`]): claims of names, the users of
//! other nodes in the default room, lines and private messages to and from them, and the
//! liveness of the other nodes.
//!
//! What spans the cluster: names (claimed in the broker's store before `welcome`), the
//! default room's members and its chat, and private messages. Other rooms, the server's own
//! participant and file transfers stay on each node: an offer to a user of another node is
//! refused with `unknown-peer` and a reason that says so.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::rooms::News;
use super::{ConnId, Hub, HubEvent};
use crate::cluster::{
    claim_key, room_subject, user_subject, Change, ClaimOutcome, ClusterConfig, ClusterInput,
    ClusterOutput, NodeMessage, Said, NODES_SUBJECT,
};
use crate::name::{name_key, validate_name};
use crate::session::Login;
use crate::wire::{MemberKind, Utf8};
use crate::ErrorCode;

/// Encoded names per roster part: well under any broker's payload limit.
const ROSTER_PART: usize = 256 * 1024;

/// How long hellos are gathered before this node answers them with one roster (after a
/// broker restart every node says hello at once).
const ROSTER_GATHER: Duration = Duration::from_millis(20);

/// Another node, as this one knows it.
#[derive(Debug)]
struct Node {
    last_heard: Instant,
    /// The last presence counter applied.
    seq: u64,
    /// Some of its news were missed (or it was first heard by other than its roster): its
    /// users are not all known until its next roster. Asked again at every `Alive` until
    /// then, since asking is limited to once an interval.
    stale: bool,
    /// Its users, by key, as it says (one may be shadowed: listed here but not known as a
    /// remote user, while a user of this node or of another holds the name during a
    /// partition).
    users: HashMap<String, Utf8>,
}

/// A user of another node.
#[derive(Debug)]
struct Remote {
    name: Utf8,
    node: Utf8,
}

/// The cluster state of a hub (`HubConfig::cluster`).
#[derive(Debug)]
pub(super) struct Cluster {
    config: ClusterConfig,
    node: Utf8,
    out: VecDeque<ClusterOutput>,
    /// Presence messages published.
    seq: u64,
    /// Joins and departures of this node's users not yet published.
    pending: Vec<Change>,
    nodes: HashMap<Utf8, Node>,
    /// Name key → a user of another node.
    remote: HashMap<String, Remote>,
    /// Hellos waiting for their claim → the name and the login that came before it.
    claiming: HashMap<ConnId, (Utf8, Option<Login>)>,
    /// The keys of the names in `claiming` whose connection is still open → it: a second
    /// hello for one of them is refused at once (it would otherwise pass unclaimed and
    /// unjudged).
    claiming_keys: HashMap<String, ConnId>,
    /// Connections holding a claim → its key.
    claims: HashMap<ConnId, String>,
    /// This node's users (registered connections); the default room's subject is heard while
    /// there is one.
    local: usize,
    next_alive: Instant,
    /// When this node last asked the others for their rosters (at most once an interval).
    asked: Option<Instant>,
    link_up: bool,
    /// This node said it is gone (it shuts down): it publishes nothing more.
    stopped: bool,
    /// The default room's subject, made once (every line to the room is published on it).
    default_subject: Option<String>,
    /// When this node answers the hellos heard since the last roster it published.
    roster_due: Option<Instant>,
}

impl Cluster {
    pub(super) fn new(config: ClusterConfig, now: Instant) -> Cluster {
        let node = Utf8::from(config.node.as_str());
        let mut out = VecDeque::new();
        out.push_back(ClusterOutput::Subscribe(NODES_SUBJECT.to_owned()));
        Cluster {
            node,
            out,
            seq: 0,
            pending: Vec::new(),
            nodes: HashMap::new(),
            remote: HashMap::new(),
            claiming: HashMap::new(),
            claiming_keys: HashMap::new(),
            claims: HashMap::new(),
            local: 0,
            next_alive: now,
            asked: None,
            link_up: true,
            stopped: false,
            default_subject: None,
            roster_due: None,
            config,
        }
    }

    /// When the node must next say it lives, answer hellos or check the others.
    pub(super) fn deadline(&self) -> Instant {
        let expiry = self.nodes.values().map(|n| n.last_heard).min();
        let expiry = expiry.map(|t| t + self.config.node_timeout);
        [expiry, self.roster_due]
            .into_iter()
            .flatten()
            .fold(self.next_alive, Instant::min)
    }
}

impl Hub {
    // ----- the driver's side -------------------------------------------------------------

    /// The next thing to do with the broker (always `None` without
    /// [`super::HubConfig::cluster`]). Poll it after every input, like [`Hub::poll_ready`].
    pub fn poll_cluster(&mut self) -> Option<ClusterOutput> {
        self.cluster.as_mut()?.out.pop_front()
    }

    /// A message the broker delivered on a subject this node hears. One that does not
    /// decode, or that this node sent, is dropped.
    pub fn handle_cluster(&mut self, now: Instant, payload: Bytes) {
        self.now = now;
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let Ok(msg) = NodeMessage::decode(payload) else {
            return;
        };
        if *msg.node() == cluster.node || !names_valid(&msg) {
            return;
        }
        self.on_node_message(now, msg);
        self.run();
    }

    /// The outcome of a [`ClusterOutput::Claim`]. A connection that closed meanwhile has a
    /// claim it got released. Returns whether the connection still waited for it.
    pub fn claimed(&mut self, conn: ConnId, outcome: ClaimOutcome) -> bool {
        let Some(cluster) = self.cluster.as_mut() else {
            return false;
        };
        let Some((name, login)) = cluster.claiming.remove(&conn) else {
            return false;
        };
        let key = name_key(&name);
        if cluster.claiming_keys.get(&key) == Some(&conn) {
            cluster.claiming_keys.remove(&key);
        }
        let open = self
            .conns
            .get(&conn)
            .is_some_and(|c| !c.session.is_closed());
        if !open {
            // Released, unless a newer hello here claims or holds the name by now (the
            // driver hands the claim on to it).
            let key_hex = claim_key(&name);
            let newer = cluster.claiming_keys.contains_key(&key)
                || cluster.claims.values().any(|k| *k == key_hex);
            if outcome == ClaimOutcome::Held && !newer {
                cluster
                    .out
                    .push_back(ClusterOutput::Release { key: key_hex });
            }
            return false;
        }
        let (code, reason) = match outcome {
            ClaimOutcome::Held => {
                cluster.claims.insert(conn, claim_key(&name));
                if self.config.accounts {
                    self.verifying.insert(conn, name.clone());
                    self.emit(HubEvent::Verify { conn, name, login });
                } else {
                    self.admit(conn, name);
                }
                self.touch(conn);
                self.run();
                return true;
            }
            ClaimOutcome::Taken => (
                ErrorCode::NameTaken,
                format!("the name {name} is taken on another server of this cluster"),
            ),
            ClaimOutcome::Unavailable => (
                ErrorCode::ServerFull,
                "this server cannot reach its cluster to claim your name: try another server"
                    .to_owned(),
            ),
        };
        self.refuse_hello(conn, name, code, &reason);
        self.touch(conn);
        self.run();
        true
    }

    /// The broker was lost (`false`) or reached again (`true`). While it is lost, users of
    /// this node are told that the others are out of reach (and the others' users leave
    /// their lists at the node timeout); when it is back, the nodes exchange rosters again.
    pub fn cluster_link(&mut self, now: Instant, up: bool) {
        self.now = now;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.link_up == up {
            return;
        }
        cluster.link_up = up;
        self.emit(HubEvent::ClusterLink { up });
        let text = if up {
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.asked = None;
            }
            self.cluster_ask(now);
            "this server is linked to the other servers of its cluster again"
        } else {
            "this server lost its link to the other servers of its cluster: users on them \
             are out of reach until it is back"
        };
        self.say_to_default(&Utf8::from(text));
        self.run();
    }

    /// One input from the broker, as [`Hub::handle_cluster`], [`Hub::claimed`] or
    /// [`Hub::cluster_link`].
    pub fn cluster_input(&mut self, now: Instant, input: ClusterInput) {
        match input {
            ClusterInput::Message(payload) => self.handle_cluster(now, payload),
            ClusterInput::Claimed { conn, outcome } => {
                self.now = now;
                self.claimed(conn, outcome);
            }
            ClusterInput::Link(up) => self.cluster_link(now, up),
            ClusterInput::Lost(key) => {
                self.now = now;
                self.claim_lost(&key);
            }
        }
    }

    /// The claim `key` was lost to another node (this one was cut off from the broker for
    /// longer than a claim lives, and someone took the name elsewhere): its holder here is
    /// disconnected with `name-taken`, so the name is never held twice. Returns whether a
    /// holder was found.
    pub fn claim_lost(&mut self, key: &str) -> bool {
        let Some(cluster) = self.cluster.as_mut() else {
            return false;
        };
        let Some(conn) = cluster
            .claims
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(&c, _)| c)
        else {
            return false;
        };
        // Not released when it closes: the claim is another node's now.
        cluster.claims.remove(&conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            let reason = "your name was taken on another server of this cluster while this \
                          one was cut off from it";
            c.session.goodbye(ErrorCode::NameTaken, reason);
        }
        self.touch(conn);
        self.run();
        true
    }

    /// Users online on other nodes.
    pub fn remote_peer_count(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.remote.len())
    }

    /// The other nodes this one hears, with their users' count, sorted by name.
    pub fn cluster_nodes(&self) -> Vec<(Utf8, usize)> {
        let Some(cluster) = self.cluster.as_ref() else {
            return Vec::new();
        };
        let mut nodes: Vec<_> = cluster
            .nodes
            .iter()
            .map(|(name, n)| (name.clone(), n.users.len()))
            .collect();
        nodes.sort();
        nodes
    }

    // ----- hooks of the rest of the hub --------------------------------------------------

    /// A valid hello in a cluster: claimed in the broker first (unless this node already
    /// knows the name is taken, which `admit` then says).
    pub(super) fn cluster_hello(&mut self, id: ConnId, name: Utf8, login: Option<Login>) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let key = name_key(&name);
        if self.names.contains_key(&key) || cluster.remote.contains_key(&key) || self.shutting_down
        {
            // Refused by `admit` (taken, or shutting down), as without a cluster.
            self.admit(id, name);
            return;
        }
        if cluster.claiming_keys.contains_key(&key) {
            let reason = format!("the name {name} is taken");
            self.refuse_hello(id, name, ErrorCode::NameTaken, &reason);
            return;
        }
        let claim_key = claim_key(&name);
        cluster.claiming_keys.insert(key, id);
        cluster.claiming.insert(id, (name.clone(), login));
        cluster.out.push_back(ClusterOutput::Claim {
            conn: id,
            name,
            key: claim_key,
        });
    }

    /// Refuses `id`'s hello for `name` with `code` and `reason`.
    fn refuse_hello(&mut self, id: ConnId, name: Utf8, code: ErrorCode, reason: &str) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.session.refuse(code, reason);
        }
        self.emit(HubEvent::Refused {
            conn: id,
            name,
            code,
        });
    }

    /// A connection closed: its claim, if it held one, is released; a claim it still waits
    /// for no longer keeps its name from another hello (its answer is released when it
    /// comes, see [`Hub::claimed`]).
    pub(super) fn cluster_closed(&mut self, id: ConnId) {
        if let Some(cluster) = self.cluster.as_mut() {
            if let Some(key) = cluster.claims.remove(&id) {
                cluster.out.push_back(ClusterOutput::Release { key });
            }
            if let Some((name, _)) = cluster.claiming.get(&id) {
                let key = name_key(name);
                if cluster.claiming_keys.get(&key) == Some(&id) {
                    cluster.claiming_keys.remove(&key);
                }
            }
        }
    }

    /// `name` joined (`true`) or left this node: the other nodes hear of it with the next
    /// batch of presence, and its private messages come here while it is on.
    pub(super) fn cluster_presence(&mut self, name: &Utf8, joined: bool) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let user = user_subject(&name_key(name));
        let room = room_subject(&self.rooms.default_key);
        if joined {
            cluster.local += 1;
            if cluster.local == 1 {
                cluster.out.push_back(ClusterOutput::Subscribe(room));
            }
            cluster.out.push_back(ClusterOutput::Subscribe(user));
        } else {
            cluster.local -= 1;
            cluster.out.push_back(ClusterOutput::Unsubscribe(user));
            if cluster.local == 0 {
                cluster.out.push_back(ClusterOutput::Unsubscribe(room));
            }
        }
        cluster.pending.push((joined, name.clone()));
    }

    /// Publishes the presence changes gathered since the last batch.
    pub(super) fn cluster_flush(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.pending.is_empty() {
            return;
        }
        cluster.seq += 1;
        let msg = NodeMessage::Presence {
            node: cluster.node.clone(),
            seq: cluster.seq,
            changes: std::mem::take(&mut cluster.pending),
        };
        cluster.publish(NODES_SUBJECT.to_owned(), &msg);
    }

    /// A line said in the default room by `id` (called `from`), for the other nodes; one too
    /// large for the broker gets its sender an error.
    pub(super) fn cluster_say(&mut self, id: ConnId, from: &Utf8, said: &Said) {
        if self.cluster.is_none() {
            return;
        }
        // Published even while no user of another node is known: one may have joined a
        // moment ago (the broker drops what no node hears).
        self.cluster_flush();
        let room = Utf8::from(self.default_room());
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let subject = cluster
            .default_subject
            .get_or_insert_with(|| room_subject(&self.rooms.default_key))
            .clone();
        let msg = NodeMessage::Say {
            node: cluster.node.clone(),
            room,
            from: from.clone(),
            said: said.clone(),
        };
        if !cluster.publish(subject, &msg) {
            let text = "the message is too large to reach the other servers".to_owned();
            self.error_to(id, ErrorCode::LimitExceeded, text);
        }
    }

    /// Whether `name` is a user of another node.
    pub(super) fn is_remote(&self, name: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.remote.contains_key(&name_key(name)))
    }

    /// A private message from `id` (called `from`) to `to`, a user of another node; one too
    /// large for the broker gets its sender an error.
    pub(super) fn cluster_private(&mut self, id: ConnId, to: &Utf8, from: &Utf8, said: &Said) {
        self.cluster_flush();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let msg = NodeMessage::Private {
            node: cluster.node.clone(),
            to: to.clone(),
            from: from.clone(),
            said: said.clone(),
        };
        if !cluster.publish(user_subject(&name_key(to)), &msg) {
            let text = format!("the message is too large to reach {to}'s server");
            self.error_to(id, ErrorCode::LimitExceeded, text);
        }
    }

    /// Adds the names of other nodes' users to `names` (a list of this node's users, sorted
    /// by key) and keeps it sorted, for `who` and the default room's members.
    pub(super) fn add_remote_names(&self, names: &mut Vec<Utf8>) {
        let Some(cluster) = self.cluster.as_ref().filter(|c| !c.remote.is_empty()) else {
            return;
        };
        names.extend(cluster.remote.values().map(|r| r.name.clone()));
        names.sort_by_cached_key(|name| name_key(name));
    }

    /// Says this node lives, and lets go of nodes not heard from for too long.
    pub(super) fn cluster_timeout(&mut self, now: Instant) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.roster_due.is_some_and(|t| t <= now) {
            cluster.roster_due = None;
            self.cluster_publish_roster();
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if now >= cluster.next_alive {
            cluster.next_alive = now + cluster.config.alive_interval;
            let msg = NodeMessage::Alive {
                node: cluster.node.clone(),
                seq: cluster.seq,
                members: u32::try_from(cluster.local).unwrap_or(u32::MAX),
            };
            // Pending presence first: the counter it carries must be published.
            self.cluster_flush();
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.publish(NODES_SUBJECT.to_owned(), &msg);
            }
        }
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let timeout = cluster.config.node_timeout;
        let dead: Vec<Utf8> = cluster
            .nodes
            .iter()
            .filter(|(_, n)| now >= n.last_heard + timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for node in dead {
            self.node_gone(&node);
        }
    }

    /// This node stops: the others let its users go at once rather than at the node timeout.
    pub(super) fn cluster_gone(&mut self) {
        self.cluster_flush();
        if let Some(cluster) = self.cluster.as_mut() {
            let msg = NodeMessage::Gone {
                node: cluster.node.clone(),
            };
            cluster.publish(NODES_SUBJECT.to_owned(), &msg);
            cluster.stopped = true;
        }
    }

    /// When [`Hub::handle_timeout`] must run for the cluster.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        self.cluster.as_ref().map(|c| c.deadline())
    }

    // ----- what other nodes say ----------------------------------------------------------

    fn on_node_message(&mut self, now: Instant, msg: NodeMessage) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let node = msg.node().clone();
        if let NodeMessage::Gone { .. } = msg {
            self.node_gone(&node);
            return;
        }
        let known = cluster.nodes.contains_key(&node);
        if !known && cluster.nodes.len() >= cluster.config.max_nodes {
            return;
        }
        let entry = cluster.nodes.entry(node.clone()).or_insert_with(|| Node {
            last_heard: now,
            seq: 0,
            stale: true,
            users: HashMap::new(),
        });
        entry.last_heard = now;
        let seq_known = entry.seq;
        let stale = entry.stale;
        if !known {
            self.emit(HubEvent::Node {
                node: node.clone(),
                up: true,
            });
        }
        match msg {
            // Its roster follows its hello; it wants ours (one answer to the hellos of a
            // short while).
            NodeMessage::Hello { .. } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.roster_due.get_or_insert(now + ROSTER_GATHER);
                }
            }
            // A node never heard of, or one whose news were partly lost (or that started
            // again under the same name): everyone's rosters again.
            NodeMessage::Alive { seq, .. } => {
                if stale || seq != seq_known {
                    self.cluster_ask(now);
                }
            }
            NodeMessage::Roster {
                seq, first, names, ..
            } => self.on_roster(&node, seq, first, names),
            NodeMessage::Presence { seq, changes, .. } => {
                if known && seq <= seq_known {
                    return;
                }
                let missed = seq != seq_known + 1;
                if let Some(n) = self.cluster.as_mut().and_then(|c| c.nodes.get_mut(&node)) {
                    n.seq = seq;
                    n.stale |= missed;
                }
                if missed {
                    // Something was missed: apply what came, and ask for the whole list.
                    self.cluster_ask(now);
                }
                for (joined, name) in changes {
                    if joined {
                        self.remote_joined(&node, name);
                    } else {
                        self.remote_left(&node, &name);
                    }
                }
            }
            NodeMessage::Say {
                room, from, said, ..
            } => self.on_remote_say(&room, from, said),
            NodeMessage::Private { to, from, said, .. } => {
                // Only to a user of this node, and never spoken for one of its users.
                if self.names.contains_key(&name_key(&from)) || self.is_server_name(&from) {
                    return;
                }
                if let Ok(target) = self.lookup(&to) {
                    let _ = self.deliver(target, &said.message(&from, true));
                }
            }
            NodeMessage::Gone { .. } => {}
        }
    }

    /// Says hello and tells this node's roster: every other node answers with its own, so
    /// whatever was missed is known again. At most once an alive interval.
    pub(super) fn cluster_ask(&mut self, now: Instant) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster
            .asked
            .is_some_and(|t| now < t + cluster.config.alive_interval)
        {
            return;
        }
        cluster.asked = Some(now);
        let msg = NodeMessage::Hello {
            node: cluster.node.clone(),
        };
        cluster.publish(NODES_SUBJECT.to_owned(), &msg);
        self.cluster_publish_roster();
    }

    fn on_roster(&mut self, node: &Utf8, seq: u64, first: bool, names: Vec<Utf8>) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let Some(n) = cluster.nodes.get_mut(node) else {
            return;
        };
        if first {
            // The list replaces what was known: who is not on it left.
            n.seq = seq;
            n.stale = false;
            let keys: HashSet<String> = names.iter().map(|s| name_key(s)).collect();
            let gone: Vec<Utf8> = n
                .users
                .iter()
                .filter(|(k, _)| !keys.contains(*k))
                .map(|(_, name)| name.clone())
                .collect();
            for name in gone {
                self.remote_left(node, &name);
            }
        }
        for name in names {
            self.remote_joined(node, name);
        }
    }

    /// `name` is on `node`. Known to this node's users unless the name is held here or by
    /// another node already (then it stays shadowed until that holder leaves).
    fn remote_joined(&mut self, node: &Utf8, name: Utf8) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let key = name_key(&name);
        let Some(n) = cluster.nodes.get_mut(node) else {
            return;
        };
        if n.users.len() >= self.config.max_peers && !n.users.contains_key(&key) {
            return;
        }
        n.users.insert(key.clone(), name.clone());
        // This server's own participant's name is never another's user here (another node
        // may have named its participant otherwise).
        if self.names.contains_key(&key)
            || cluster.remote.contains_key(&key)
            || self.is_server_name(&name)
        {
            return;
        }
        self.remote_known(key, name, node.clone());
    }

    /// Lists `name` of `node` among the default room's members, and tells them.
    fn remote_known(&mut self, key: String, name: Utf8, node: Utf8) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.remote.insert(
            key,
            Remote {
                name: name.clone(),
                node,
            },
        );
        self.rooms.default_members.insert(&name);
        let news = News::Member {
            kind: MemberKind::Joined,
            name: &name,
        };
        let default = self.rooms.default_key.clone();
        self.tell_room(&default, &news, None);
    }

    /// `name` of `node` left.
    fn remote_left(&mut self, node: &Utf8, name: &Utf8) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let key = name_key(name);
        if let Some(n) = cluster.nodes.get_mut(node) {
            n.users.remove(&key);
        }
        if cluster.remote.get(&key).map_or(true, |r| r.node != *node) {
            return;
        }
        let Some(remote) = cluster.remote.remove(&key) else {
            return;
        };
        self.rooms.default_members.remove(&remote.name);
        let news = News::Member {
            kind: MemberKind::Left,
            name: &remote.name,
        };
        let default = self.rooms.default_key.clone();
        self.tell_room(&default, &news, None);
        self.unshadow(&key);
    }

    /// The holder of `key` left: a node that lists a user of that name (shadowed meanwhile)
    /// makes it known.
    pub(super) fn unshadow(&mut self, key: &str) {
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        if self.names.contains_key(key)
            || cluster.remote.contains_key(key)
            || self.is_server_name(key)
        {
            return;
        }
        let shadowed = cluster
            .nodes
            .iter()
            .find_map(|(node, n)| n.users.get(key).map(|name| (node.clone(), name.clone())));
        if let Some((node, name)) = shadowed {
            self.remote_known(key.to_owned(), name, node);
        }
    }

    /// `node` stopped or went silent: its users leave.
    fn node_gone(&mut self, node: &Utf8) {
        let Some(n) = self.cluster.as_ref().and_then(|c| c.nodes.get(node)) else {
            return;
        };
        let names: Vec<Utf8> = n.users.values().cloned().collect();
        for name in names {
            self.remote_left(node, &name);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.nodes.remove(node);
        }
        self.emit(HubEvent::Node {
            node: node.clone(),
            up: false,
        });
    }

    fn on_remote_say(&mut self, room: &Utf8, from: Utf8, said: Said) {
        let key = name_key(room);
        // Only the default room spans the cluster. The broker is trusted with the sender's
        // name (its node stamped it), but never to speak for a user of this node. A sender
        // not yet known is let through: subjects are heard by separate subscriptions, so a
        // line may overtake the news of its sender's arrival.
        if !self.rooms.is_default(&key)
            || self.names.contains_key(&name_key(&from))
            || self.is_server_name(&from)
        {
            return;
        }
        let default = self.rooms.default_key.clone();
        self.tell_room(&default, &said.news(&from), None);
        self.emit(said.event(from, false));
    }

    /// This node's users, as a roster in parts, for the other nodes.
    fn cluster_publish_roster(&mut self) {
        self.cluster_flush();
        let names: Vec<Utf8> = self
            .names
            .values()
            .filter_map(|&c| self.peer_name(c).cloned())
            .collect();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let mut part = Vec::new();
        let mut size = 0;
        let mut first = true;
        for name in names {
            size += name.len() + 1;
            part.push(name);
            if size >= ROSTER_PART {
                let names = std::mem::take(&mut part);
                cluster.roster_part(first, names);
                first = false;
                size = 0;
            }
        }
        if first || !part.is_empty() {
            cluster.roster_part(first, part);
        }
    }
}

/// Whether every name a node message carries (the node's, users', rooms') follows the rules
/// of names (spec §6.1), as the sending node checked them: one that does not came from
/// something other than a node, and is dropped whole.
fn names_valid(msg: &NodeMessage) -> bool {
    let ok = |name: &Utf8| validate_name(name).is_ok();
    ok(msg.node())
        && match msg {
            NodeMessage::Alive { .. } | NodeMessage::Hello { .. } | NodeMessage::Gone { .. } => {
                true
            }
            NodeMessage::Roster { names, .. } => names.iter().all(ok),
            NodeMessage::Presence { changes, .. } => changes.iter().all(|(_, name)| ok(name)),
            NodeMessage::Say { room, from, .. } => ok(room) && ok(from),
            NodeMessage::Private { to, from, .. } => ok(to) && ok(from),
        }
}

impl Cluster {
    fn roster_part(&mut self, first: bool, names: Vec<Utf8>) {
        let msg = NodeMessage::Roster {
            node: self.node.clone(),
            seq: self.seq,
            first,
            names,
        };
        self.publish(NODES_SUBJECT.to_owned(), &msg);
    }

    /// Publishes `msg` on `subject` (nothing once this node said it is gone). Whether it
    /// could go: false when it is larger than the broker takes (a presence batch that large
    /// is made good by the rosters a missed number asks for).
    fn publish(&mut self, subject: String, msg: &NodeMessage) -> bool {
        let payload = msg.encode();
        if payload.len() > self.config.max_message {
            return false;
        }
        if self.stopped {
            return true;
        }
        self.out
            .push_back(ClusterOutput::Publish { subject, payload });
        true
    }
}
