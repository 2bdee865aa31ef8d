//! The blocking client of tidings-std against this crate's server, and this crate's client
//! against tidings-std's thread-per-connection server.

mod common;

use std::time::Duration;

use common::*;
use tidings_smol::{ClientEvent, ServerConfig};

fn std_wait(
    client: &tidings_std::Client,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    loop {
        let ev = client
            .next_event_timeout(Duration::from_secs(60))
            .expect("an event within 60 s");
        if pred(&ev) {
            return ev;
        }
    }
}

#[test]
fn std_client_talks_to_smol_server() {
    let server = TestServer::start(ServerConfig::default());
    let dst = TempDir::new();
    let src = TempDir::new();
    let path = src.path().join("doc.bin");
    make_file(&path, 2 << 20);
    let blocking = tidings_std::Client::connect(
        server.addr,
        "blocking",
        tidings_std::ClientConfig {
            download_dir: Some(dst.path().to_path_buf()),
            accept_files: true,
            ..Default::default()
        },
    )
    .unwrap();
    smol::block_on(async {
        let asynch = connect(server.addr, "async").await;
        asynch.say("hello blocking").await.unwrap();
        let ev = std_wait(&blocking, |e| matches!(e, ClientEvent::Text { .. }));
        assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "async"));
        blocking.say_to("async", "hello async").unwrap();
        let ev = wait_for(&asynch, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Text { private: true, ref text, .. } if text == "hello async")
        );
        asynch.send_file("blocking", &path).await.unwrap();
        let ev = std_wait(&blocking, |e| matches!(e, ClientEvent::Received { .. }));
        let ClientEvent::Received { path: got, .. } = ev else {
            unreachable!()
        };
        assert!(std::fs::read(got).unwrap() == std::fs::read(&path).unwrap());
        wait_for(&asynch, |e| matches!(e, ClientEvent::Sent { .. })).await;
    });
    blocking.close();
}

#[test]
fn smol_client_talks_to_std_server() {
    let server = tidings_std::Server::bind("127.0.0.1:0", ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let dst = TempDir::new();
    let src = TempDir::new();
    let path = src.path().join("doc.bin");
    make_file(&path, 2 << 20);
    smol::block_on(async {
        let a = connect(addr, "a").await;
        let b = connect_receiver(addr, "b", dst.path().to_path_buf()).await;
        wait_for(&a, |e| *e == ClientEvent::Joined("b".into())).await;
        a.say("hi b").await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "a"));
        handle.say(Some("a"), "from the operator").unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Text { ref from, private: true, .. } if from == "server")
        );
        a.send_file("b", &path).await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Received { .. })).await;
        let ClientEvent::Received { path: got, .. } = ev else {
            unreachable!()
        };
        assert!(std::fs::read(got).unwrap() == std::fs::read(&path).unwrap());
        assert_eq!(handle.who(), ["a", "b"]);
    });
    handle.shutdown("done");
    thread.join().unwrap();
}
