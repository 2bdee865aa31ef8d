//! The two clients (the blocking `tidings_std::Client` and the async `tidings_smol::Client`)
//! side by side on each server: chat both ways, a file each way, the operator's whisper.

use tidings_e2e::smol_client::*;
use tidings_e2e::{
    assert_same_file, for_both_servers, make_file, std_client, temp_dir, ClientEvent, ServerConfig,
    ServerKind, TestServer,
};

for_both_servers! {
    native: [
        the_blocking_client_talks_to_the_async_client,
        async_clients_chat_send_a_file_and_hear_the_operator,
    ],
}

fn the_blocking_client_talks_to_the_async_client(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let dst = temp_dir();
    let src = temp_dir();
    let path = src.path().join("doc.bin");
    make_file(&path, 2 << 20);
    let back = src.path().join("back.bin");
    make_file(&back, 3 << 20);
    let back_dst = temp_dir();
    let blocking = std_client::connect_receiver(server.addr, "blocking", dst.path());
    smol::block_on(async {
        let asynch = connect_receiver(server.addr, "async", back_dst.path().to_path_buf()).await;
        asynch.say("hello blocking").await.unwrap();
        let ev = std_client::wait(&blocking, |e| matches!(e, ClientEvent::Text { .. }));
        assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "async"));
        blocking.say_to("async", "hello async").unwrap();
        let ev = wait_for(&asynch, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Text { private: true, ref text, .. } if text == "hello async")
        );
        asynch.send_file("blocking", &path).await.unwrap();
        let got = std_client::received(&blocking);
        assert_same_file(&got, &path);
        wait_for(&asynch, |e| matches!(e, ClientEvent::Sent { .. })).await;
        // And the other way.
        blocking.send_file("async", &back).unwrap();
        let got = received(&asynch).await;
        assert_same_file(&got, &back);
        std_client::wait(&blocking, |e| matches!(e, ClientEvent::Sent { .. }));
    });
    blocking.close();
}

fn async_clients_chat_send_a_file_and_hear_the_operator(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let dst = temp_dir();
    let src = temp_dir();
    let path = src.path().join("doc.bin");
    make_file(&path, 2 << 20);
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        wait_for(&a, |e| *e == ClientEvent::Joined("b".into())).await;
        a.say("hi b").await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(ev, ClientEvent::Text { ref from, .. } if from == "a"));
        server.say(Some("a"), "from the operator").unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(
            matches!(ev, ClientEvent::Text { ref from, private: true, .. } if from == "server")
        );
        a.send_file("b", &path).await.unwrap();
        let got = received(&b).await;
        assert_same_file(&got, &path);
        assert_eq!(server.who(), ["a", "b"]);
    });
    server.stop();
}
