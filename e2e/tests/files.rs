//! File transfers end to end over real sockets, against both servers: relayed A → B, the
//! server's inbox, the server sending, resume after the receiver was killed, storage
//! failures, a stalled receiver.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidings_e2e::smol_client::*;
use tidings_e2e::{
    assert_same_file, for_both_servers, make_file, std_client, temp_dir, ClientEvent, Direction,
    ErrorCode, ServerConfig, ServerEvent, ServerKind, TestServer, PATIENCE,
};

for_both_servers! {
    native: [
        a_file_goes_from_a_to_b_byte_identical_with_progress,
        an_existing_file_is_never_overwritten,
        the_servers_inbox_receives_a_file,
        the_server_sends_a_file_to_a_client,
        a_killed_receiver_resumes_from_its_partial_file,
        an_unwritable_download_folder_fails_the_transfer_with_a_reason,
        a_missing_file_fails_before_anything_is_sent,
        a_stalled_receiver_stalls_the_sender_instead_of_filling_the_server,
        a_file_through_the_server_and_into_its_inbox_with_the_blocking_client,
        a_rejected_offer_fails_the_sender_and_writes_nothing,
        a_cancelled_transfer_ends_on_both_sides_and_the_sender_goes_on,
    ],
}

/// A `kind` server that stores files sent to it in `inbox`.
fn server_with_inbox(kind: ServerKind, inbox: &Path) -> TestServer {
    let config = ServerConfig {
        inbox: Some(inbox.to_path_buf()),
        ..ServerConfig::default()
    };
    TestServer::start(kind, config)
}

/// Waits for the server to have stored a file from `peer` and returns where.
fn stored_in_inbox(server: &TestServer, peer: &str) -> PathBuf {
    match server.wait_event(|e| matches!(e, ServerEvent::Received { .. })) {
        ServerEvent::Received {
            path, peer: from, ..
        } => {
            assert_eq!(from, peer);
            path
        }
        _ => unreachable!(),
    }
}

/// Size of the relayed file: 200 MiB (about 15 s in a debug build, 1–2 s in release);
/// `TIDINGS_SMALL=1` sends 24 MiB for quick local runs.
fn relay_size() -> usize {
    if std::env::var_os("TIDINGS_SMALL").is_some() {
        24 << 20
    } else {
        200 << 20
    }
}

fn a_file_goes_from_a_to_b_byte_identical_with_progress(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
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
        assert_same_file(got, &path);
        assert!(!dst.path().join("big.bin.part").exists());
    });
}

fn an_existing_file_is_never_overwritten(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
    let path = src.path().join("note.txt");
    std::fs::write(&path, b"new content").unwrap();
    std::fs::write(dst.path().join("note.txt"), b"precious").unwrap();
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        a.send_file("b", &path).await.unwrap();
        let got = received(&b).await;
        assert_eq!(got, dst.path().join("note (1).txt"));
        assert_eq!(
            std::fs::read(dst.path().join("note.txt")).unwrap(),
            b"precious"
        );
        assert_eq!(std::fs::read(got).unwrap(), b"new content");
    });
}

fn the_servers_inbox_receives_a_file(kind: ServerKind) {
    let inbox = temp_dir();
    let server = server_with_inbox(kind, inbox.path());
    let src = temp_dir();
    let path = src.path().join("report.pdf");
    make_file(&path, 3 << 20);
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        a.send_file("", &path).await.unwrap();
        wait_for(&a, |e| matches!(e, ClientEvent::Sent { .. })).await;
        let received = stored_in_inbox(&server, "a");
        assert_eq!(received, inbox.path().join("report.pdf"));
        assert_same_file(&received, &path);
    });
}

fn the_server_sends_a_file_to_a_client(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
    let path = src.path().join("motd.txt");
    make_file(&path, 1 << 20);
    smol::block_on(async {
        let b = connect_receiver(server.addr, "b", dst.path().to_path_buf()).await;
        server.send_file("b", &path).unwrap();
        let got = received(&b).await;
        assert_same_file(&got, &path);
        let ServerEvent::Sent { peer, .. } =
            server.wait_event(|e| matches!(e, ServerEvent::Sent { .. }))
        else {
            unreachable!()
        };
        assert_eq!(peer, "b");
        // An unknown receiver is refused at once.
        let err = server.send_file("nobody", &path).unwrap_err();
        assert!(err.to_string().contains("nobody"), "{err}");
    });
}

fn a_killed_receiver_resumes_from_its_partial_file(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
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
        // Progress counts bytes received; their writes to the partial file follow on the
        // disk thread, later under load. Kill only once a MiB is on the disk (nothing
        // announces a write, so the file is looked at).
        let part = dst.path().join("movie.bin.part");
        let deadline = Instant::now() + PATIENCE;
        while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
            assert!(
                Instant::now() < deadline,
                "the first MiB never reached the disk"
            );
            smol::Timer::after(Duration::from_millis(5)).await;
        }
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
        let got = received(&b).await;
        assert_same_file(&got, &path);
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::Started { .. })).await;
        assert!(matches!(ev, ClientEvent::Started { offset, .. } if offset == kept));
    });
}

fn an_unwritable_download_folder_fails_the_transfer_with_a_reason(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
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

fn a_missing_file_fails_before_anything_is_sent(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
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
fn a_stalled_receiver_stalls_the_sender_instead_of_filling_the_server(kind: ServerKind) {
    use std::io::{Read, Write};
    use std::time::Instant;
    use tidings_core::session::{Config, Event, Session};
    use tidings_core::transfer::TransferEvent;

    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(500);
    config.hub.session.heartbeat_timeout = Duration::from_secs(2);
    let server = TestServer::start(kind, config);
    let src = temp_dir();
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

fn a_file_through_the_server_and_into_its_inbox_with_the_blocking_client(kind: ServerKind) {
    let inbox = temp_dir();
    let server = server_with_inbox(kind, inbox.path());
    let src = temp_dir();
    let dst = temp_dir();
    let path = src.path().join("data.bin");
    make_file(&path, 8 << 20);
    let a = std_client::connect(server.addr, "a");
    let b = std_client::connect_receiver(server.addr, "b", dst.path());
    a.send_file("b", &path).unwrap();
    let got = std_client::received(&b);
    assert_same_file(&got, &path);
    std_client::wait(&a, |e| matches!(e, ClientEvent::Sent { .. }));
    a.send_file("", &path).unwrap();
    std_client::wait(&a, |e| matches!(e, ClientEvent::Sent { .. }));
    // The sender hears of the verified digest; the inbox's rename follows on the server.
    let stored = stored_in_inbox(&server, "a");
    assert_eq!(stored, inbox.path().join("data.bin"));
    assert_same_file(&stored, &path);
    // And back from the server to b: b already has data.bin, so it gets data (1).bin.
    server.send_file("b", &path).unwrap();
    let got = std_client::received(&b);
    assert_eq!(got, dst.path().join("data (1).bin"));
}

/// The blocking client offers, the async client (asked for each file) rejects.
fn a_rejected_offer_fails_the_sender_and_writes_nothing(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
    let path = src.path().join("unwanted.bin");
    make_file(&path, 1 << 20);
    let a = std_client::connect(server.addr, "a");
    smol::block_on(async {
        let b = tidings_smol::Client::connect(
            server.addr,
            "b",
            tidings_e2e::ClientConfig {
                download_dir: Some(dst.path().to_path_buf()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let sent_id = a.send_file("b", &path).unwrap();
        let ClientEvent::Offered { id, name, size, .. } =
            wait_for(&b, |e| matches!(e, ClientEvent::Offered { .. })).await
        else {
            unreachable!()
        };
        assert_eq!((name.as_str(), size), ("unwanted.bin", 1 << 20));
        b.reject(id).await.unwrap();
        let failed = std_client::wait(&a, |e| matches!(e, ClientEvent::TransferFailed { .. }));
        let ClientEvent::TransferFailed {
            id: failed_id,
            direction,
            code,
            by_peer,
            ..
        } = failed
        else {
            unreachable!()
        };
        assert_eq!(
            (failed_id, direction, code, by_peer),
            (sent_id, Direction::Send, ErrorCode::Rejected, true)
        );
        // Nothing was written, and both still talk.
        assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);
        b.say_to("a", "no thanks").await.unwrap();
        let ev = std_client::wait(&a, |e| matches!(e, ClientEvent::Text { .. }));
        assert!(matches!(ev, ClientEvent::Text { ref text, .. } if text == "no thanks"));
    });
}

/// The async client sends a large file and cancels it midway; the blocking client receives.
fn a_cancelled_transfer_ends_on_both_sides_and_the_sender_goes_on(kind: ServerKind) {
    let server = TestServer::start(kind, ServerConfig::default());
    let src = temp_dir();
    let dst = temp_dir();
    // Far more than can be in flight, so the cancel lands mid-transfer.
    let len = 64 << 20;
    let path = src.path().join("long.bin");
    make_file(&path, len);
    let small = src.path().join("short.txt");
    std::fs::write(&small, b"after the cancel").unwrap();
    let b = std_client::connect_receiver(server.addr, "b", dst.path());
    smol::block_on(async {
        let a = connect(server.addr, "a").await;
        let id = a.send_file("b", &path).await.unwrap();
        std_client::wait(
            &b,
            |e| matches!(e, ClientEvent::Progress(p) if p.done >= 1 << 20),
        );
        a.cancel(id).await.unwrap();
        let ev = wait_for(&a, |e| matches!(e, ClientEvent::TransferFailed { .. })).await;
        assert!(
            matches!(ev, ClientEvent::TransferFailed { id: i, code: ErrorCode::Cancelled, by_peer: false, .. } if i == id),
            "{ev:?}"
        );
        let ev = std_client::wait(&b, |e| {
            matches!(
                e,
                ClientEvent::TransferFailed { .. } | ClientEvent::Received { .. }
            )
        });
        assert!(
            matches!(
                ev,
                ClientEvent::TransferFailed {
                    code: ErrorCode::Cancelled,
                    by_peer: true,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert!(!dst.path().join("long.bin").exists());
        // The connection goes on: the next file arrives whole.
        a.send_file("b", &small).await.unwrap();
        let got = std_client::received(&b);
        assert_eq!(std::fs::read(got).unwrap(), b"after the cancel");
    });
}
