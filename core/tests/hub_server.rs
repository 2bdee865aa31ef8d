//! The server's own participant, simulated: its inbox, files it sends, and its commands on
//! handles that are not its own.

mod sim;

use bytes::Bytes;
use sim::{sha256, HubNet};
use tidings_core::hub::{FileHandle, HubConfig, HubError, HubEvent};
use tidings_core::transfer::TransferEvent;
use tidings_core::ErrorCode;

fn with_inbox(seed: u64) -> HubNet {
    let mut net = HubNet::new(
        HubConfig {
            inbox: true,
            ..HubConfig::default()
        },
        seed,
    );
    net.op.accept_offers = true;
    net
}

#[test]
fn a_client_sends_a_file_into_the_servers_inbox() {
    let mut net = with_inbox(1);
    net.join("alice");
    let file = net.rng.bytes(2_500_000);
    let sent = net.offer("alice", "", "report.pdf", file.clone());
    let offered = net.op.events.iter().find_map(|e| match e {
        HubEvent::Transfer {
            handle,
            peer,
            event: TransferEvent::Offered(o),
        } => Some((*handle, peer.to_string(), o.name.clone(), o.size)),
        _ => None,
    });
    let (h, peer, name, size) = offered.expect("the operator saw the offer");
    assert_eq!(
        (peer.as_str(), name.as_str(), size),
        ("alice", "report.pdf", file.len() as u64)
    );
    assert_eq!(net.op.finished[&h], Ok(sha256(&file)));
    assert_eq!(net.op.inbox[&h], file.to_vec());
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
    // The handle is spent once finished.
    assert_eq!(
        net.hub.cancel_transfer(h, "x"),
        Err(HubError::NoSuchTransfer)
    );
}

#[test]
fn an_offer_addressed_to_the_server_by_name_also_reaches_the_inbox() {
    let mut net = with_inbox(2);
    net.join("alice");
    let file = Bytes::from_static(b"by name");
    let sent = net.offer("alice", "Server", "note.txt", file.clone());
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
    assert_eq!(net.op.inbox.values().next().unwrap(), &file.to_vec());
}

#[test]
fn without_an_inbox_offers_to_the_server_are_rejected_with_storage_failed() {
    let mut net = HubNet::with_defaults(3);
    net.join("alice");
    let sent = net.offer("alice", "", "f", Bytes::from_static(b"data"));
    let failure = net.failure("alice", sent);
    assert_eq!(failure.code, ErrorCode::StorageFailed);
    assert!(!net.op.saw(|e| matches!(e, HubEvent::Transfer { .. })));
}

#[test]
fn the_operator_can_reject_an_offer() {
    let mut net = with_inbox(4);
    net.op.accept_offers = false;
    net.join("alice");
    let sent = net.offer("alice", "", "f", Bytes::from_static(b"data"));
    let h = net
        .op
        .events
        .iter()
        .find_map(|e| match e {
            HubEvent::Transfer { handle, .. } => Some(*handle),
            _ => None,
        })
        .unwrap();
    net.hub.reject_offer(h, "not today").unwrap();
    net.settle();
    net.assert_failed("alice", sent, ErrorCode::Rejected, "not today");
}

#[test]
fn the_server_sends_a_file_to_a_client() {
    let mut net = HubNet::with_defaults(5);
    net.join("alice");
    let file = net.rng.bytes(3_000_000);
    let h = net
        .hub
        .offer_file(
            "ALICE",
            "motd.bin",
            file.len() as u64,
            "application/octet-stream",
        )
        .unwrap();
    net.op.sending.insert(h, file.clone());
    net.settle();
    let offer = net.client("alice").offers.last().cloned().unwrap();
    // The server offers under an empty peer: it is the server itself.
    assert_eq!((offer.peer.as_str(), offer.name.as_str()), ("", "motd.bin"));
    let got = net.accept("alice", Vec::new());
    net.settle();
    assert_eq!(net.client("alice").finished[&got], Ok(sha256(&file)));
    assert_eq!(net.client("alice").receiving[&got], file.to_vec());
    assert_eq!(net.op.finished[&h], Ok(sha256(&file)));
    let accepted = net.op.saw(|e| {
        matches!(e, HubEvent::Transfer { handle, peer, event: TransferEvent::Accepted { offset: 0, .. } }
            if *handle == h && peer == "alice")
    });
    assert!(accepted);
}

#[test]
fn the_server_offering_to_someone_offline_is_an_error() {
    let mut net = HubNet::with_defaults(6);
    assert_eq!(
        net.hub.offer_file("ghost", "f", 1, ""),
        Err(HubError::UnknownPeer("ghost".into()))
    );
}

#[test]
fn the_server_transfer_fails_when_its_client_leaves() {
    let mut net = HubNet::with_defaults(7);
    net.join("alice");
    let file = net.rng.bytes(2 << 20);
    let h = net
        .hub
        .offer_file("alice", "f", file.len() as u64, "")
        .unwrap();
    net.op.sending.insert(h, file);
    net.settle();
    net.client("alice").write_rate = Some(1);
    net.accept("alice", Vec::new());
    net.client("alice")
        .session
        .goodbye(ErrorCode::Normal, "bye");
    net.settle();
    assert!(net.op.finished[&h].is_err());
}

#[test]
fn commands_on_handles_that_are_not_the_servers_are_refused() {
    let mut net = HubNet::with_defaults(8);
    net.join("alice");
    net.join("bob");
    net.offer("alice", "bob", "f", Bytes::from_static(b"relayed"));
    assert_eq!(net.hub.relay_count(), 1);
    // The relay's ends exist on both connections, but they are not the operator's to touch.
    for conn in [net.client("alice").conn, net.client("bob").conn] {
        for id in 0..4 {
            let h = FileHandle { conn, id };
            assert_eq!(
                net.hub.cancel_transfer(h, "no"),
                Err(HubError::NoSuchTransfer)
            );
            assert_eq!(
                net.hub.provide_data(h, 0, Bytes::from_static(b"x")),
                Err(HubError::NoSuchTransfer)
            );
        }
    }
    assert_eq!(net.hub.relay_count(), 1);
}

#[test]
fn the_inbox_resumes_a_kept_partial_file() {
    let mut net = with_inbox(9);
    net.op.accept_offers = false;
    net.join("alice");
    let file = net.rng.bytes(1_500_000);
    let sent = net.offer("alice", "", "big.bin", file.clone());
    let h = net
        .op
        .events
        .iter()
        .find_map(|e| match e {
            HubEvent::Transfer {
                handle,
                event: TransferEvent::Offered(_),
                ..
            } => Some(*handle),
            _ => None,
        })
        .unwrap();
    // The server kept 600 000 bytes from an earlier attempt.
    net.op.inbox.insert(h, file[..600_000].to_vec());
    net.hub.accept_offer(h, 600_000).unwrap();
    net.settle();
    assert_eq!(net.op.finished[&h], Ok(sha256(&file)));
    assert_eq!(net.op.inbox[&h], file.to_vec());
    assert_eq!(net.client("alice").finished[&sent], Ok(sha256(&file)));
    // Alice was asked only for the rest.
    let resumed = net.client("alice").events.iter().any(|e| {
        matches!(
            e,
            tidings_core::session::Event::Transfer(TransferEvent::Accepted {
                offset: 600_000,
                ..
            })
        )
    });
    assert!(resumed);
}
