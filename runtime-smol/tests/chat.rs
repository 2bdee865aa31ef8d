//! Chat end to end over real sockets: broadcast, private, presence, the peer list.

mod common;

use common::*;
use tidings_smol::{ClientEvent, ServerConfig};

#[test]
fn two_clients_chat() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        assert_eq!(bob.online_at_join(), ["alice", "bob"]);
        wait_for(&alice, |e| *e == ClientEvent::Joined("bob".into())).await;
        alice.say("hello bob").await.unwrap();
        let ev = wait_for(&bob, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert_eq!(
            ev,
            ClientEvent::Text {
                from: "alice".into(),
                private: false,
                text: "hello bob".into()
            }
        );
        bob.close().await;
        wait_for(&alice, |e| *e == ClientEvent::Left("bob".into())).await;
    });
    server.stop();
}
