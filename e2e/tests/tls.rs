//! TLS on the one port: native clients over `tls://`, certificate errors a user can act on,
//! plaintext on a TLS port and TLS on a plaintext port refused clearly, hostile handshakes
//! closing only their own connection, and a certificate reloaded without a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tidings_e2e::smol_client::*;
use tidings_e2e::{
    assert_same_file, for_both_servers, make_file, std_client, temp_dir, ClientConfig, ClientEvent,
    Error, ErrorCode, ServerConfig, ServerKind, TestServer, WebConfig, PAGE, PATIENCE,
};
use tidings_host::tls::{ClientTls, SelfSigned, Tls, TlsClientConfig, TlsServerConfig};
use tidings_host::ServerEvent;

for_both_servers! {
    native: [
        native_clients_chat_and_send_a_file_over_tls,
        a_plaintext_client_on_a_tls_port_is_told_to_use_tls,
        a_tls_client_on_a_plaintext_port_is_told_the_server_refused_tls,
        certificate_errors_say_what_is_wrong,
        hostile_handshakes_close_only_their_connection,
        a_key_update_flood_costs_only_its_connection,
        a_reloaded_certificate_serves_new_connections,
        plaintext_is_served_beside_tls_when_allowed,
        the_blocking_client_talks_to_the_async_client_over_tls,
        the_blocking_client_says_what_is_wrong_with_tls,
    ],
    web: [
        the_page_and_a_json_websocket_over_tls,
    ],
}

/// A private CA and a certificate for `localhost` and 127.0.0.1.
fn certificates() -> SelfSigned {
    SelfSigned::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap()
}

fn tls_server(kind: ServerKind, certs: &SelfSigned) -> (TestServer, TlsServerConfig) {
    tls_server_with(kind, certs, false, WebConfig::default())
}

fn tls_server_with(
    kind: ServerKind,
    certs: &SelfSigned,
    allow_plaintext: bool,
    web: WebConfig,
) -> (TestServer, TlsServerConfig) {
    let tls =
        TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap();
    let config = ServerConfig {
        tls: Some(tls.clone()),
        allow_plaintext,
        ..ServerConfig::default()
    };
    (TestServer::start_with(kind, config, web), tls)
}

/// A client config trusting `ca_pem` and expecting the certificate to name `name`.
fn trusting(ca_pem: &str, name: &str) -> ClientConfig {
    ClientConfig {
        tls: Some(ClientTls {
            config: TlsClientConfig::from_ca_pem(ca_pem.as_bytes()).unwrap(),
            server_name: name.into(),
        }),
        ..ClientConfig::default()
    }
}

fn native_clients_chat_and_send_a_file_over_tls(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let src = temp_dir();
    let dst = temp_dir();
    let path = src.path().join("over-tls.bin");
    make_file(&path, 8 << 20);
    smol::block_on(async {
        let client = |name: &'static str, config: ClientConfig| {
            tidings_smol::Client::connect(server.addr, name, config)
        };
        let alice = client("alice", trusting(&certs.ca_pem, "localhost"))
            .await
            .unwrap();
        let mut receiving = trusting(&certs.ca_pem, "127.0.0.1");
        receiving.download_dir = Some(dst.path().to_path_buf());
        receiving.accept_files = true;
        let bob = client("bob", receiving).await.unwrap();
        wait_for(&alice, |e| *e == ClientEvent::Joined("bob".into())).await;
        alice.say_to("bob", "hello over TLS").await.unwrap();
        let ev = wait_for(&bob, |e| matches!(e, ClientEvent::Text { .. })).await;
        assert!(matches!(ev, ClientEvent::Text { ref text, ref from, .. }
            if text == "hello over TLS" && from == "alice"));
        bob.say("and back").await.unwrap();
        wait_for(
            &alice,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "and back"),
        )
        .await;
        alice.send_file("bob", &path).await.unwrap();
        let got = received(&bob).await;
        assert_same_file(&got, &path);
        wait_for(&alice, |e| matches!(e, ClientEvent::Sent { .. })).await;
    });
}

fn a_plaintext_client_on_a_tls_port_is_told_to_use_tls(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let err = smol::block_on(tidings_smol::Client::connect(
        server.addr,
        "plain",
        ClientConfig::default(),
    ))
    .unwrap_err();
    let code = match &err {
        Error::Handshake { code, .. } | Error::Refused { code, .. } => *code,
        other => panic!("expected a refusal with tls-required, got {other:?}"),
    };
    assert_eq!(code, ErrorCode::TlsRequired, "{err}");
    // The operator hears of it.
    let ev = server.wait_event(|e| matches!(e, ServerEvent::TlsFailed { .. }));
    assert!(
        matches!(ev, ServerEvent::TlsFailed { ref reason, .. } if reason.contains("plaintext")),
        "{ev:?}"
    );
    // An HTTP client is answered 400 with the reason.
    let mut http = TcpStream::connect(server.addr).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("this port speaks TLS"), "{answer}");
    // And the TLS clients are served all along.
    smol::block_on(async {
        let c =
            tidings_smol::Client::connect(server.addr, "tls", trusting(&certs.ca_pem, "localhost"))
                .await
                .unwrap();
        c.close().await;
    });
}

fn a_tls_client_on_a_plaintext_port_is_told_the_server_refused_tls(kind: ServerKind) {
    let certs = certificates();
    let server = TestServer::start(kind, ServerConfig::default());
    let err = smol::block_on(tidings_smol::Client::connect(
        server.addr,
        "alice",
        trusting(&certs.ca_pem, "localhost"),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("handshake_failure")),
        "{err}"
    );
    // The plaintext clients are still served.
    smol::block_on(async { connect(server.addr, "plain").await.close().await });
}

fn certificate_errors_say_what_is_wrong(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let connect = |config: ClientConfig| {
        smol::block_on(tidings_smol::Client::connect(server.addr, "alice", config)).unwrap_err()
    };
    // A CA we do not trust.
    let other = certificates();
    let err = connect(trusting(&other.ca_pem, "localhost"));
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("do not trust")),
        "{err}"
    );
    // A name the certificate does not carry.
    let err = connect(trusting(&certs.ca_pem, "elsewhere.example"));
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("another name")),
        "{err}"
    );
    // An expired certificate.
    let expired = expired_certificate();
    let (old, _) = tls_server(kind, &expired);
    let err = smol::block_on(tidings_smol::Client::connect(
        old.addr,
        "alice",
        trusting(&expired.ca_pem, "localhost"),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("expired")),
        "{err}"
    );
    // The server served none of them and is still up.
    smol::block_on(async {
        let c =
            tidings_smol::Client::connect(server.addr, "bob", trusting(&certs.ca_pem, "localhost"))
                .await
                .unwrap();
        assert_eq!(c.online_at_join(), ["bob"]);
    });
}

/// A CA and a `localhost` certificate that expired yesterday.
fn expired_certificate() -> SelfSigned {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(30);
    leaf.not_after = now - time::Duration::days(1);
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    SelfSigned {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn hostile_handshakes_close_only_their_connection(kind: ServerKind) {
    let certs = certificates();
    let web = WebConfig {
        head_timeout: Duration::from_millis(500),
        ..WebConfig::default()
    };
    let (server, _) = tls_server_with(kind, &certs, false, web);
    smol::block_on(async {
        let alice = tidings_smol::Client::connect(
            server.addr,
            "alice",
            trusting(&certs.ca_pem, "localhost"),
        )
        .await
        .unwrap();
        // A handshake that stalls: a record header, then nothing. Closed by the timeout.
        let mut stalled = TcpStream::connect(server.addr).unwrap();
        stalled.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).unwrap();
        assert_closed(&mut stalled);
        // A ClientHello of hundreds of KiB: records of handshake data far beyond any hello.
        let mut huge = TcpStream::connect(server.addr).unwrap();
        let mut hello = vec![0x01, 0x04, 0x00, 0x00]; // client_hello of 256 KiB
        hello.resize(300 << 10, 0x41);
        let mut sent = Ok(());
        for chunk in hello.chunks(16 << 10) {
            let mut record = vec![0x16, 0x03, 0x01];
            record.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            record.extend_from_slice(chunk);
            sent = huge.write_all(&record);
            if sent.is_err() {
                break;
            }
        }
        // Either the server closed while we wrote, or it closes now.
        if sent.is_ok() {
            assert_closed(&mut huge);
        }
        // A truncated record: a header announcing more than ever comes, then the end.
        let mut truncated = TcpStream::connect(server.addr).unwrap();
        truncated
            .write_all(&[0x16, 0x03, 0x01, 0x10, 0x00, 0x01])
            .unwrap();
        truncated.shutdown(std::net::Shutdown::Write).unwrap();
        assert_closed(&mut truncated);
        // Garbage after a TLS first byte.
        let mut garbage = TcpStream::connect(server.addr).unwrap();
        garbage.write_all(&[0x16; 64]).unwrap();
        assert_closed(&mut garbage);
        // Alice never noticed.
        alice.say("still here").await.unwrap();
        let bob =
            tidings_smol::Client::connect(server.addr, "bob", trusting(&certs.ca_pem, "localhost"))
                .await
                .unwrap();
        assert_eq!(bob.online_at_join(), ["alice", "bob"]);
    });
}

/// Reads until the server closes `stream` (an alert first is fine), within the patience.
fn assert_closed(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

fn a_reloaded_certificate_serves_new_connections(kind: ServerKind) {
    let first = certificates();
    let (server, tls) = tls_server(kind, &first);
    let connect = |ca: &str| {
        smol::block_on(tidings_smol::Client::connect(
            server.addr,
            "c",
            trusting(ca, "localhost"),
        ))
    };
    let old = connect(&first.ca_pem).unwrap();
    let second = certificates();
    // A bad new file keeps the old certificate.
    let err = tls
        .reload(second.cert_pem.as_bytes(), first.key_pem.as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("certificate and key"), "{err}");
    assert!(tls.reload(b"not pem", second.key_pem.as_bytes()).is_err());
    smol::block_on(old.close());
    connect(&first.ca_pem).unwrap();
    // A good one serves the connections that start after it.
    tls.reload(second.cert_pem.as_bytes(), second.key_pem.as_bytes())
        .unwrap();
    let err = connect(&first.ca_pem).unwrap_err();
    assert!(matches!(&err, Error::Tls(_)), "{err}");
    connect(&second.ca_pem).unwrap();
}

fn plaintext_is_served_beside_tls_when_allowed(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server_with(kind, &certs, true, WebConfig::default());
    smol::block_on(async {
        let plain = connect(server.addr, "plain").await;
        let tls =
            tidings_smol::Client::connect(server.addr, "tls", trusting(&certs.ca_pem, "localhost"))
                .await
                .unwrap();
        tls.say_to("plain", "across").await.unwrap();
        wait_for(
            &plain,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "across"),
        )
        .await;
    });
}

/// As `interop.rs` does in plaintext: the blocking client (`tidings_std::Client`) and the
/// async one, both over TLS, chat both ways and send a file each way.
fn the_blocking_client_talks_to_the_async_client_over_tls(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let src = temp_dir();
    let path = src.path().join("to-blocking.bin");
    make_file(&path, 4 << 20);
    let back = src.path().join("to-async.bin");
    make_file(&back, 3 << 20);
    let (dst, back_dst) = (temp_dir(), temp_dir());
    let mut receiving = trusting(&certs.ca_pem, "localhost");
    receiving.download_dir = Some(dst.path().to_path_buf());
    receiving.accept_files = true;
    let blocking = tidings_std::Client::connect(server.addr, "blocking", receiving).unwrap();
    smol::block_on(async {
        let mut config = trusting(&certs.ca_pem, "127.0.0.1");
        config.download_dir = Some(back_dst.path().to_path_buf());
        config.accept_files = true;
        let asynch = tidings_smol::Client::connect(server.addr, "async", config)
            .await
            .unwrap();
        asynch.say("hello blocking").await.unwrap();
        let ev = std_client::wait(&blocking, |e| matches!(e, ClientEvent::Text { .. }));
        assert!(matches!(ev, ClientEvent::Text { ref from, ref text, .. }
            if from == "async" && text == "hello blocking"));
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
    // A goodbye over TLS: the server sees the blocking client leave, and serves on.
    blocking.close();
    let c =
        tidings_std::Client::connect(server.addr, "again", trusting(&certs.ca_pem, "localhost"))
            .unwrap();
    assert!(c.online_at_join().contains(&"again".to_string()));
    c.close();
}

/// The blocking client's TLS errors are the async one's: [`Error::Tls`] saying what is
/// wrong, within the handshake timeout.
fn the_blocking_client_says_what_is_wrong_with_tls(kind: ServerKind) {
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let connect = |addr, config| tidings_std::Client::connect(addr, "alice", config).unwrap_err();
    let err = connect(server.addr, trusting(&certificates().ca_pem, "localhost"));
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("do not trust")),
        "{err}"
    );
    let err = connect(server.addr, trusting(&certs.ca_pem, "elsewhere.example"));
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("another name")),
        "{err}"
    );
    // Plaintext on the TLS port: told to use TLS.
    let err = connect(server.addr, ClientConfig::default());
    let code = match &err {
        Error::Handshake { code, .. } | Error::Refused { code, .. } => *code,
        other => panic!("expected a refusal with tls-required, got {other:?}"),
    };
    assert_eq!(code, ErrorCode::TlsRequired, "{err}");
    // TLS on a plaintext port: the server refused the handshake.
    let plain = TestServer::start(kind, ServerConfig::default());
    let err = connect(plain.addr, trusting(&certs.ca_pem, "localhost"));
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("handshake_failure")),
        "{err}"
    );
    // A port that accepts and never answers: the handshake timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = trusting(&certs.ca_pem, "localhost");
    config.session.handshake_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = connect(silent.local_addr().unwrap(), config);
    assert!(
        matches!(&err, Error::Tls(why) if why.contains("did not finish")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // None of it troubled the server.
    let c = tidings_std::Client::connect(server.addr, "bob", trusting(&certs.ca_pem, "localhost"))
        .unwrap();
    assert_eq!(c.online_at_join(), ["bob"]);
}

/// A blocking TLS client connection made by hand with the glue (`https://`, `wss://`).
struct TlsOver {
    tcp: TcpStream,
    tls: Tls,
}

impl TlsOver {
    /// Connects to `addr` trusting `ca_pem`, handshake done.
    fn connect(addr: std::net::SocketAddr, ca_pem: &str) -> TlsOver {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let config = TlsClientConfig::from_ca_pem(ca_pem.as_bytes()).unwrap();
        let mut tls = Tls::connect(&config, "localhost").unwrap();
        tls.handshake(&mut tcp).unwrap();
        TlsOver { tcp, tls }
    }
}

impl Read for TlsOver {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tls.read(&mut self.tcp, buf)
    }
}

impl Write for TlsOver {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tls
            .write_vectored(&mut self.tcp, &[std::io::IoSlice::new(buf)])
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tls.flush(&mut self.tcp)
    }
}

/// Every door is a door inside TLS: the page over `https://` (ending with a TLS goodbye,
/// not a truncated stream) and the JSON WebSocket over `wss://`, chatting with a native
/// client over `tls://`.
fn the_page_and_a_json_websocket_over_tls(kind: ServerKind) {
    let certs = certificates();
    let web = tidings_e2e::web_with_page(Duration::from_secs(10));
    let (server, _) = tls_server_with(kind, &certs, false, web);
    let mut https = TlsOver::connect(server.addr, &certs.ca_pem);
    https
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    https.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(answer.ends_with(PAGE), "{text}");

    use tungstenite::client::IntoClientRequest;
    let mut request = "wss://localhost/ws".into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tidings_core::ws::TIDINGS_SUBPROTOCOL.parse().unwrap(),
    );
    let stream = TlsOver::connect(server.addr, &certs.ca_pem);
    let (mut ws, _) = tungstenite::client::client(request, stream).unwrap();
    let hello = r#"{"type":"hello","name":"web","capabilities":0,"max_frame":1048576}"#;
    ws.send(tungstenite::Message::text(hello)).unwrap();
    next_text(&mut ws, r#""type":"welcome""#);
    smol::block_on(async {
        let native = tidings_smol::Client::connect(
            server.addr,
            "native",
            trusting(&certs.ca_pem, "localhost"),
        )
        .await
        .unwrap();
        let hi = r#"{"type":"text","peer":"native","text":"over wss"}"#;
        ws.send(tungstenite::Message::text(hi)).unwrap();
        wait_for(
            &native,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "over wss"),
        )
        .await;
        native.say_to("web", "over tls").await.unwrap();
        next_text(&mut ws, "over tls");
    });
    ws.close(None).unwrap();
}

/// The next text message containing `needle` (others are skipped).
fn next_text(ws: &mut tungstenite::WebSocket<TlsOver>, needle: &str) -> String {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) if t.as_str().contains(needle) => {
                return t.as_str().to_string()
            }
            tungstenite::Message::Text(_)
            | tungstenite::Message::Ping(_)
            | tungstenite::Message::Pong(_) => {}
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

/// A TLS 1.3 client that asks for new keys tens of thousands of times in a row (each
/// `key_update` is answered with one of the server's own): the server stays up, answers or
/// closes that connection, and the others chat on.
fn a_key_update_flood_costs_only_its_connection(kind: ServerKind) {
    use rustls::pki_types::pem::PemObject as _;
    let certs = certificates();
    let (server, _) = tls_server(kind, &certs);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(certs.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)] // ring, as tidings-host uses.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    smol::block_on(async {
        let config = |name| {
            tidings_smol::Client::connect(server.addr, name, trusting(&certs.ca_pem, "localhost"))
        };
        let alice = config("alice").await.unwrap();
        let bob = config("bob").await.unwrap();
        // The flood, written without reading the server's answers.
        sock.set_nonblocking(true).unwrap();
        let mut sent = 0;
        'flood: for _ in 0..50_000 {
            if conn.refresh_traffic_keys().is_err() {
                break;
            }
            while conn.wants_write() {
                match conn.write_tls(&mut sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break 'flood,
                    Err(_) => break 'flood,
                }
            }
            sent += 1;
        }
        assert!(sent > 100, "only {sent} key updates went out");
        alice.say_to("bob", "still here").await.unwrap();
        wait_for(
            &bob,
            |e| matches!(e, ClientEvent::Text { text, .. } if text == "still here"),
        )
        .await;
        let carol = config("carol").await.unwrap();
        assert_eq!(carol.online_at_join(), ["alice", "bob", "carol"]);
    });
}
