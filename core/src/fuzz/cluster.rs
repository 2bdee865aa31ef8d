//! Fuzz body for the messages between the nodes of a cluster.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::{ClusterConfig, NodeMessage};
use crate::hub::{Hub, HubConfig};

/// Decodes the fuzzer's bytes as one node message: one that decodes must encode back to the
/// same bytes. Then feeds the bytes, cut into messages by the length bytes they start with,
/// to a hub that is a node of a cluster, moving its clock between them: whatever the broker
/// delivers, the hub never panics and its outputs stay consistent.
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
    let mut rest = whole;
    let mut at = now;
    while let Some((&len, _)) = rest.split_first() {
        let len = usize::from(len).min(rest.len() - 1);
        let piece = rest.slice(1..1 + len);
        rest = rest.slice(1 + len..);
        at += Duration::from_millis(len as u64 * 37);
        hub.handle_cluster(at, piece);
        hub.handle_timeout(at);
        while hub.poll_cluster().is_some() {}
        while hub.poll_event().is_some() {}
        assert!(hub.remote_peer_count() <= hub.who().len());
    }
}
