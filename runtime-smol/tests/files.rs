//! File transfers end to end over real sockets: relayed A → B, the server's inbox, the server
//! sending, resume after the receiver was killed, and storage failures.

mod common;

use std::time::Duration;

use common::*;
use tidings_smol::{ClientEvent, Direction, ErrorCode, ServerConfig, ServerEvent};

/// Size of the relayed file: 200 MiB (about 15 s in a debug build, 1–2 s in release);
/// `TIDINGS_SMALL=1` sends 24 MiB for quick local runs.
fn relay_size() -> usize {
    if std::env::var_os("TIDINGS_SMALL").is_some() {
        24 << 20
    } else {
        200 << 20
    }
}

#[test]
fn a_file_goes_from_a_to_b_byte_identical_with_progress() {
    let server = TestServer::start(ServerConfig::default());
    let src = TempDir::new();
    let dst = TempDir::new();
    let len = relay_size();
    let path = src.path().join("big.bin");
    make_file(&path, len);
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        let started = std::time::Instant::now();
        let id = a.send_file("b", &path).await.unwrap();
        let b_events = collect_until(&b, |e| matches!(e, ClientEvent::Received { .. })).await;
        let a_events = collect_until(&a, |e| {
            matches!(
                e,
                ClientEvent::Sent { .. } | ClientEvent::TransferFailed { .. }
            )
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} MiB relayed in {secs:.2} s ({:.0} MiB/s)",
            len >> 20,
            (len >> 20) as f64 / secs
        );
        assert!(matches!(a_events.last(), Some(ClientEvent::Sent { id: i, .. }) if *i == id));
        let progress: Vec<_> = b_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Progress(p) => Some(p.done),
                _ => None,
            })
            .collect();
        assert!(!progress.is_empty(), "the receiver saw progress");
        assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*progress.last().unwrap(), len as u64);
        let Some(ClientEvent::Received { path: got, .. }) = b_events.last() else {
            unreachable!()
        };
        assert_eq!(got, &dst.path().join("big.bin"));
        assert!(std::fs::read(got).unwrap() == std::fs::read(&path).unwrap());
        assert!(!dst.path().join("big.bin.part").exists());
    });
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let server = TestServer::start(ServerConfig::default());
    let src = TempDir::new();
    let dst = TempDir::new();
    let path = src.path().join("note.txt");
    std::fs::write(&path, b"new content").unwrap();
    std::fs::write(dst.path().join("note.txt"), b"precious").unwrap();
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        a.send_file("b", &path).await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Received { .. })).await;
        let ClientEvent::Received { path: got, .. } = ev else {
            unreachable!()
        };
        assert_eq!(got, dst.path().join("note (1).txt"));
        assert_eq!(
            std::fs::read(dst.path().join("note.txt")).unwrap(),
            b"precious"
        );
        assert_eq!(std::fs::read(got).unwrap(), b"new content");
    });
}

#[test]
fn the_servers_inbox_receives_a_file() {
    let inbox = TempDir::new();
    let server = TestServer::start(ServerConfig {
        inbox: Some(inbox.path().to_path_buf()),
        ..ServerConfig::default()
    });
    let src = TempDir::new();
    let path = src.path().join("report.pdf");
    make_file(&path, 3 << 20);
    let events = server.handle.events();
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        a.send_file("", &path).await.unwrap();
        wait_for(&a, |e| matches!(e, ClientEvent::Sent { .. })).await;
        let received = loop {
            if let ServerEvent::Received { path, peer, .. } = events.recv().await.unwrap() {
                assert_eq!(peer, "a");
                break path;
            }
        };
        assert_eq!(received, inbox.path().join("report.pdf"));
        assert!(std::fs::read(received).unwrap() == std::fs::read(&path).unwrap());
    });
}

#[test]
fn the_server_sends_a_file_to_a_client() {
    let server = TestServer::start(ServerConfig::default());
    let src = TempDir::new();
    let dst = TempDir::new();
    let path = src.path().join("motd.txt");
    make_file(&path, 1 << 20);
    let events = server.handle.events();
    smol::block_on(async {
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        server.handle.send_file("b", &path).await.unwrap();
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Received { .. })).await;
        let ClientEvent::Received { path: got, .. } = ev else {
            unreachable!()
        };
        assert!(std::fs::read(got).unwrap() == std::fs::read(&path).unwrap());
        loop {
            if let ServerEvent::Sent { peer, .. } = events.recv().await.unwrap() {
                assert_eq!(peer, "b");
                break;
            }
        }
        // An unknown receiver is refused at once.
        let err = server.handle.send_file("nobody", &path).await.unwrap_err();
        assert!(err.to_string().contains("nobody"), "{err}");
    });
}

#[test]
fn a_killed_receiver_resumes_from_its_partial_file() {
    let server = TestServer::start(ServerConfig::default());
    let src = TempDir::new();
    let dst = TempDir::new();
    // Far larger than what can be in flight (two 8 MiB windows and socket buffers), so the
    // kill always lands mid-transfer however fast the machine is.
    let len = 64 << 20;
    let path = src.path().join("movie.bin");
    make_file(&path, len);
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        a.send_file("b", &path).await.unwrap();
        wait_for(
            &b,
            |e| matches!(e, ClientEvent::Progress(p) if p.done >= 1 << 20),
        )
        .await;
        b.abort().await; // killed: no goodbye
        let failed = wait_for(&a, |e| matches!(e, ClientEvent::TransferFailed { .. })).await;
        let ClientEvent::TransferFailed { code, .. } = failed else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::PeerLost);
        let kept = std::fs::metadata(dst.path().join("movie.bin.part"))
            .unwrap()
            .len();
        assert!(kept >= 1 << 20 && kept < len as u64, "kept {kept}");

        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        a.send_file("b", &path).await.unwrap();
        let started = wait_for(&b, |e| matches!(e, ClientEvent::Started { .. })).await;
        let ClientEvent::Started {
            offset, direction, ..
        } = started
        else {
            unreachable!()
        };
        assert_eq!((offset, direction), (kept, Direction::Receive));
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::Received { .. })).await;
        let ClientEvent::Received { path: got, .. } = ev else {
            unreachable!()
        };
        assert!(std::fs::read(got).unwrap() == std::fs::read(&path).unwrap());
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::Started { .. })).await;
        assert!(matches!(ev, ClientEvent::Started { offset, .. } if offset == kept));
    });
}

#[test]
fn an_unwritable_download_folder_fails_the_transfer_with_a_reason() {
    let server = TestServer::start(ServerConfig::default());
    let src = TempDir::new();
    let path = src.path().join("x.bin");
    std::fs::write(&path, b"data").unwrap();
    // A regular file where the folder should be: even root cannot write into it.
    let not_a_dir = src.path().join("not-a-dir");
    std::fs::write(&not_a_dir, b"").unwrap();
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", not_a_dir.clone()).await;
        a.send_file("b", &path).await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::TransferFailed { .. })).await;
        let ClientEvent::TransferFailed {
            reason, by_peer, ..
        } = ev
        else {
            unreachable!()
        };
        assert!(by_peer);
        assert!(reason.contains("cannot write"), "{reason}");
        let ev = wait_for(&b, |e| matches!(e, ClientEvent::TransferFailed { .. })).await;
        assert!(matches!(
            ev,
            ClientEvent::TransferFailed {
                code: ErrorCode::StorageFailed,
                ..
            }
        ));
        let _ = Duration::ZERO;
    });
}

#[test]
fn a_missing_file_fails_before_anything_is_sent() {
    let server = TestServer::start(ServerConfig::default());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let err = a
            .send_file("b", "/definitely/not/here.bin")
            .await
            .unwrap_err();
        assert!(matches!(err, tidings_smol::Error::File { .. }), "{err}");
    });
}

/// A receiver that accepts and then never reads again must not make the server buffer the
/// file: the sender stalls after a few windows, and fails once the receiver is declared dead.
#[test]
fn a_stalled_receiver_stalls_the_sender_instead_of_filling_the_server() {
    use std::io::{Read, Write};
    use std::time::Instant;
    use tidings_core::session::{Config, Event, Session};
    use tidings_core::transfer::TransferEvent;

    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(500);
    config.hub.session.heartbeat_timeout = Duration::from_secs(2);
    let server = TestServer::start(config);
    let src = TempDir::new();
    let len = 64 << 20;
    let path = src.path().join("flood.bin");
    make_file(&path, len);

    // The stalled receiver, driven by hand until it has accepted.
    let mut b = Session::client(Config::default(), "b", Instant::now()).unwrap();
    let mut raw = std::net::TcpStream::connect(server.addr).unwrap();
    let flush = |s: &mut Session, raw: &mut std::net::TcpStream| {
        while let Some(bytes) = s.poll_transmit() {
            raw.write_all(&bytes).unwrap();
        }
    };
    flush(&mut b, &mut raw);
    let mut buf = vec![0u8; 4096];
    let mut read_until = |b: &mut Session,
                          raw: &mut std::net::TcpStream,
                          pred: &mut dyn FnMut(&Event) -> bool| loop {
        while let Some(ev) = b.poll_event() {
            if pred(&ev) {
                return ev;
            }
        }
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        b.handle_input(Instant::now(), &buf[..n]);
        flush(b, raw);
    };
    read_until(&mut b, &mut raw, &mut |e| matches!(e, Event::Connected(_)));

    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        a.send_file("b", &path).await.unwrap();
        let offered = read_until(&mut b, &mut raw, &mut |e| {
            matches!(e, Event::Transfer(TransferEvent::Offered(_)))
        });
        let Event::Transfer(TransferEvent::Offered(offer)) = offered else {
            unreachable!()
        };
        b.accept_offer(offer.id, 0).unwrap();
        flush(&mut b, &mut raw);
        // From here on b never reads again.
        let mut sent = 0;
        let failed = wait_for(&a, |e| {
            if let ClientEvent::Progress(p) = e {
                sent = sent.max(p.done);
            }
            matches!(e, ClientEvent::TransferFailed { .. })
        })
        .await;
        assert!(
            matches!(
                failed,
                ClientEvent::TransferFailed {
                    code: ErrorCode::PeerLost,
                    ..
                }
            ),
            "{failed:?}"
        );
        eprintln!(
            "the sender got {} KiB out before the receiver was declared dead",
            sent >> 10
        );
        assert!(
            sent < 20 << 20,
            "{sent} bytes left the sender for a receiver that reads nothing"
        );
    });
    drop(raw);
}
