//! The blocking client and the thread-per-connection server end to end, over real sockets.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tidings_core::session::{Config, Session};
use tidings_std::{
    Client, ClientConfig, ClientEvent, Error, ErrorCode, Server, ServerConfig, ServerEvent,
};

mod common;

use common::start;

fn wait(client: &Client, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let ev = client
            .next_event_timeout(Duration::from_secs(60))
            .expect("an event within 60 s");
        if pred(&ev) {
            return ev;
        }
    }
}

fn receiver(addr: SocketAddr, name: &str, dir: &Path) -> Client {
    Client::connect(
        addr,
        name,
        ClientConfig {
            download_dir: Some(dir.to_path_buf()),
            accept_files: true,
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

fn pseudo_random_file(path: &Path, len: usize) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

#[test]
fn chat_private_and_presence() {
    let server = start(ServerConfig::default());
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let b = Client::connect(server.addr, "b", ClientConfig::default()).unwrap();
    let c = Client::connect(server.addr, "c", ClientConfig::default()).unwrap();
    assert_eq!(c.online_at_join(), ["a", "b", "c"]);
    wait(&a, |e| *e == ClientEvent::Joined("c".into()));
    a.say_to("b", "secret").unwrap();
    a.say("public").unwrap();
    let ev = wait(&b, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(matches!(ev, ClientEvent::Text { private: true, ref text, .. } if text == "secret"));
    let ev = wait(&c, |e| matches!(e, ClientEvent::Text { .. }));
    assert!(matches!(ev, ClientEvent::Text { private: false, ref text, .. } if text == "public"));
    b.close();
    wait(&a, |e| *e == ClientEvent::Left("b".into()));
    a.request_list().unwrap();
    let ev = wait(&a, |e| matches!(e, ClientEvent::PeerList(_)));
    assert_eq!(ev, ClientEvent::PeerList(vec!["a".into(), "c".into()]));
    let joined =
        std::iter::from_fn(|| server.handle.next_event_timeout(Duration::from_millis(200)))
            .filter(|e| matches!(e, ServerEvent::Joined { .. }))
            .count();
    assert_eq!(joined, 3);
}

#[test]
fn a_file_through_the_std_server_and_into_its_inbox() {
    let inbox = tempfile::tempdir().unwrap();
    let server = start(ServerConfig {
        inbox: Some(inbox.path().to_path_buf()),
        ..ServerConfig::default()
    });
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("data.bin");
    pseudo_random_file(&path, 8 << 20);
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let b = receiver(server.addr, "b", dst.path());
    a.send_file("b", &path).unwrap();
    let ev = wait(&b, |e| matches!(e, ClientEvent::Received { .. }));
    let ClientEvent::Received { path: got, .. } = ev else {
        unreachable!()
    };
    assert!(std::fs::read(&got).unwrap() == std::fs::read(&path).unwrap());
    wait(&a, |e| matches!(e, ClientEvent::Sent { .. }));
    a.send_file("", &path).unwrap();
    wait(&a, |e| matches!(e, ClientEvent::Sent { .. }));
    // The sender hears of the verified digest; the inbox's rename follows on the server.
    let stored = loop {
        match server.handle.next_event_timeout(Duration::from_secs(60)) {
            Some(ServerEvent::Received { path, peer, .. }) => {
                assert_eq!(peer, "a");
                break path;
            }
            Some(_) => continue,
            None => panic!("no inbox event"),
        }
    };
    assert_eq!(stored, inbox.path().join("data.bin"));
    assert!(std::fs::read(stored).unwrap() == std::fs::read(&path).unwrap());
    // And back from the server to b: b already has data.bin, so it gets data (1).bin.
    server.handle.send_file("b", &path).unwrap();
    let ev = wait(&b, |e| matches!(e, ClientEvent::Received { .. }));
    let ClientEvent::Received { path: got, .. } = ev else {
        unreachable!()
    };
    assert_eq!(got, dst.path().join("data (1).bin"));
}

#[test]
fn name_taken_dead_clients_and_port_in_use() {
    let mut config = ServerConfig::default();
    config.hub.session.heartbeat_interval = Duration::from_millis(50);
    config.hub.session.heartbeat_timeout = Duration::from_millis(300);
    let server = start(config);
    let err = Server::bind(server.addr, ServerConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Bind { .. }));
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");

    let mut ghost = Session::client(Config::default(), "ghost", Instant::now()).unwrap();
    let mut raw = std::net::TcpStream::connect(server.addr).unwrap();
    while let Some(b) = ghost.poll_transmit() {
        raw.write_all(&b).unwrap();
    }
    // Wait for the ghost's welcome, so that it is registered before `a` joins; from then on
    // it never answers, so the server must declare it dead.
    let mut buf = [0u8; 4096];
    while !ghost.is_open() {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the ghost before welcoming it");
        ghost.handle_input(Instant::now(), &buf[..n]);
    }
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    assert!(a.online_at_join().contains(&"ghost".to_string()));
    let err = Client::connect(server.addr, "ghost", ClientConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "{err}"
    );
    wait(&a, |e| *e == ClientEvent::Left("ghost".into()));
    let again = Client::connect(server.addr, "ghost", ClientConfig::default()).unwrap();
    assert_eq!(again.name(), "ghost");
    drop(raw);
}

#[test]
fn a_banned_name_is_kicked_and_refused_until_the_ban_ends() {
    let server = start(ServerConfig::default());
    let a = Client::connect(server.addr, "a", ClientConfig::default()).unwrap();
    let b = Client::connect(server.addr, "b", ClientConfig::default()).unwrap();
    let banned_at = Instant::now();
    server
        .handle
        .ban("B", Duration::from_millis(600), "cool off");
    match wait(&b, |e| matches!(e, ClientEvent::Closed { .. })) {
        ClientEvent::Closed { code, reason, .. } => {
            assert_eq!((code, reason.as_str()), (ErrorCode::Kicked, "cool off"))
        }
        _ => unreachable!(),
    }
    wait(&a, |e| *e == ClientEvent::Left("b".into()));
    // The ban ends after 600 ms: until then every attempt is refused (a look-alike too),
    // after it the name is free.
    let mut refusals = 0;
    let back = loop {
        let name = if refusals % 2 == 0 { "b" } else { "\u{ff42}" };
        match Client::connect(server.addr, name, ClientConfig::default()) {
            Ok(c) => break c,
            Err(Error::Refused { code, reason }) => {
                assert_eq!(code, ErrorCode::Kicked, "{reason}");
                assert!(reason.contains("banned"), "{reason}");
                assert!(
                    banned_at.elapsed() < Duration::from_secs(30),
                    "never lifted"
                );
                refusals += 1;
                // Pacing only: the end of a ban has no event to wait for.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(banned_at.elapsed() >= Duration::from_millis(600));
    assert!(refusals >= 2, "{refusals}");
    assert!(
        server.handle.who().len() == 2,
        "{:?}",
        back.online_at_join()
    );
    server.handle.ban("c", Duration::from_secs(60), "");
    assert!(server.handle.unban("C"));
}
