//! Hostile input on the server's port, against both servers, while well-behaved clients
//! keep chatting: bytes that are no protocol, frames larger than allowed, handshakes that
//! never finish, visitors that stay silent or trickle in a request head.

use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tidings_core::wire::{Message, Preamble};
use tidings_e2e::smol_client::{connect, wait_for};
use tidings_e2e::{
    close_code, closed_without_answer, for_both_servers, in_time, web_with_page, ClientEvent,
    ErrorCode, RawNative, ServerConfig, ServerKind, TestServer,
};
use tidings_smol::Client;

for_both_servers! {
    native: [
        bytes_that_are_neither_native_nor_http_get_a_native_error,
        an_oversize_frame_is_refused_before_and_after_hello_while_others_chat,
        unfinished_native_handshakes_are_cut_off_while_others_chat,
    ],
    web: [
        silent_and_unfinished_visitors_are_dropped_while_others_chat,
    ],
}

/// `from` says `text` to everyone and `to` hears it.
async fn heard(from: &Client, to: &Client, text: &str) {
    from.say(text).await.unwrap();
    let ev = wait_for(to, |e| matches!(e, ClientEvent::Text { .. })).await;
    assert!(
        matches!(ev, ClientEvent::Text { text: ref t, .. } if t == text),
        "{ev:?}"
    );
}

fn silent_and_unfinished_visitors_are_dropped_while_others_chat(kind: ServerKind) {
    let timeout = Duration::from_millis(300);
    let server = TestServer::start_with(kind, ServerConfig::default(), web_with_page(timeout));
    smol::block_on(async {
        let started = Instant::now();
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let mut half_method = TcpStream::connect(server.addr).await.unwrap();
        half_method.write_all(b"OPTI").await.unwrap();
        let mut half_head = TcpStream::connect(server.addr).await.unwrap();
        half_head
            .write_all(b"GET / HTTP/1.1\r\nHost:")
            .await
            .unwrap();
        // One byte at a time, each well within the timeout, never finishing: the deadline is
        // for the whole head, not per read.
        let mut trickle = TcpStream::connect(server.addr).await.unwrap();
        trickle.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();

        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        heard(&alice, &bob, "still here").await;

        let trickled = async {
            for _ in 0..40 {
                if trickle.write_all(b"X").await.is_err() {
                    break;
                }
                async_io::Timer::after(Duration::from_millis(50)).await;
            }
            (closed_without_answer(&mut trickle).await, started.elapsed())
        };
        let others = async {
            for (what, stream) in [
                ("silent", &mut silent),
                ("half a method", &mut half_method),
                ("half a head", &mut half_head),
            ] {
                assert!(closed_without_answer(stream).await, "{what} got an answer");
            }
            assert!(started.elapsed() >= timeout);
        };
        let ((unanswered, closed_after), ()) = future::zip(trickled, others).await;
        assert!(unanswered, "the trickle got an answer");
        // Cut off by the deadline, well before it stopped trickling (40 × 50 ms).
        assert!(
            closed_after < Duration::from_millis(1500),
            "{closed_after:?}"
        );

        heard(&bob, &alice, "and still chatting").await;
    });
}

fn bytes_that_are_neither_native_nor_http_get_a_native_error(kind: ServerKind) {
    let server = TestServer::with_page(kind);
    smol::block_on(async {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"hello?\r\n").await.unwrap();
        let mut answer = Vec::new();
        in_time(stream.read_to_end(&mut answer)).await.unwrap();
        // The native preamble, then an error frame naming the problem.
        assert!(answer.starts_with(&[0x89, b'T', b'D', b'G']), "{answer:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("tidings magic"), "{text}");
    });
}

fn an_oversize_frame_is_refused_before_and_after_hello_while_others_chat(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    // A frame header announcing 2^32-1 bytes, far beyond the limit.
    let huge = [0xff, 0xff, 0xff, 0xff, 0x10];
    smol::block_on(async {
        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        // Before hello.
        let mut early = RawNative::connect(server.addr);
        early.send_bytes(&Preamble::CURRENT.to_bytes());
        early.send_bytes(&huge);
        // After hello.
        let mut late = RawNative::join(server.addr, "mallory");
        late.send_bytes(&huge);
        heard(&alice, &bob, "during").await;
        let msgs = early.until_closed();
        assert_eq!(
            close_code(&msgs),
            Some(ErrorCode::FrameTooLarge),
            "{msgs:?}"
        );
        let msgs = late.until_closed();
        assert_eq!(
            close_code(&msgs),
            Some(ErrorCode::FrameTooLarge),
            "{msgs:?}"
        );
        heard(&bob, &alice, "after").await;
        assert_eq!(server.who(), ["alice", "bob"]);
    });
}

fn unfinished_native_handshakes_are_cut_off_while_others_chat(kind: ServerKind) {
    let mut config = ServerConfig::default();
    config.hub.session.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(kind, config);
    smol::block_on(async {
        let alice = connect(server.addr, "alice").await;
        let bob = connect(server.addr, "bob").await;
        let started = Instant::now();
        let mut part_preamble = RawNative::connect(server.addr);
        part_preamble.send_bytes(&Preamble::CURRENT.to_bytes()[..3]);
        let mut no_hello = RawNative::connect(server.addr);
        no_hello.send_bytes(&Preamble::CURRENT.to_bytes());
        let mut half_hello = RawNative::connect(server.addr);
        half_hello.send_bytes(&Preamble::CURRENT.to_bytes());
        let mut hello = bytes::BytesMut::new();
        Message::Hello(tidings_core::wire::Hello {
            name: "slow".into(),
            capabilities: 0,
            max_frame: tidings_core::wire::DEFAULT_MAX_FRAME,
        })
        .encode(&mut hello);
        half_hello.send_bytes(&hello[..hello.len() / 2]);
        heard(&alice, &bob, "meanwhile").await;
        for (what, raw) in [
            ("inside the preamble", part_preamble),
            ("before hello", no_hello),
            ("inside hello", half_hello),
        ] {
            let msgs = raw.until_closed();
            assert_eq!(
                close_code(&msgs),
                Some(ErrorCode::HeartbeatTimeout),
                "{what}: {msgs:?}"
            );
        }
        // Cut off by their deadline, not by the test's patience.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        heard(&bob, &alice, "still here").await;
    });
}
