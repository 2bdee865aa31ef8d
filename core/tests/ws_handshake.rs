//! The opening handshake, both roles: good requests and responses, and each bad case with
//! the status (server) or error (client) it gets. Heads are fed whole, byte by byte and at
//! random split points.

mod sim;

use sim::ws::{chunks, Split, SPLITS};
use tidings_core::ws::{
    accept_key, sniff_http, ClientHandshake, ClientRequest, HttpRequestHead, RequestError,
    RequestReader, ResponseError, Sniff, DEFAULT_MAX_HEADER_BYTES, TIDINGS_SUBPROTOCOL,
};

const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn request(extra: &str) -> String {
    format!(
        "GET /chat?room=lobby HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         {extra}\r\n"
    )
}

/// Parses a request head fed according to `split`; also returns the bytes after the head.
fn read_head(
    bytes: &[u8],
    limit: usize,
    split: Split,
) -> (Result<Option<HttpRequestHead>, RequestError>, Vec<u8>) {
    let mut reader = RequestReader::new(limit);
    let mut result = Ok(None);
    for chunk in chunks(bytes, split) {
        match reader.feed(chunk) {
            Ok(None) => {}
            other => {
                if result == Ok(None) {
                    result = other;
                }
                if result.is_err() {
                    break;
                }
            }
        }
    }
    (result, reader.take_remaining().to_vec())
}

/// Parses `bytes` every way; all must agree.
fn parse_all_ways(bytes: &[u8]) -> Result<HttpRequestHead, RequestError> {
    let (first, _) = read_head(bytes, DEFAULT_MAX_HEADER_BYTES, Split::Whole);
    for split in SPLITS {
        assert_eq!(
            read_head(bytes, DEFAULT_MAX_HEADER_BYTES, split).0,
            first,
            "{split:?}"
        );
    }
    first.map(|head| head.expect("complete head"))
}

/// The RFC's example request with the first `from` replaced by `to`.
fn edited(from: &str, to: &str) -> String {
    request("").replacen(from, to, 1)
}

fn refused(req: &str) -> RequestError {
    let head = parse_all_ways(req.as_bytes()).expect("parses as HTTP");
    head.accept_websocket(&[TIDINGS_SUBPROTOCOL])
        .expect_err("refused")
}

fn response_text(err: RequestError) -> String {
    String::from_utf8(err.response().to_vec()).unwrap()
}

#[test]
fn rfc_example_accept_key() {
    assert_eq!(accept_key(RFC_KEY.as_bytes()), RFC_ACCEPT);
}

#[test]
fn good_upgrade_request() {
    let head = parse_all_ways(request("Origin: http://example.com\r\n").as_bytes()).unwrap();
    assert_eq!(head.method(), "GET");
    assert_eq!(head.target(), "/chat?room=lobby");
    assert_eq!(head.path(), "/chat");
    assert_eq!(head.query(), Some("room=lobby"));
    assert_eq!(head.host(), Some("server.example.com"));
    assert_eq!(head.origin(), Some("http://example.com"));
    assert_eq!(head.http_minor_version(), 1);
    assert!(head.is_websocket_upgrade());
    let accepted = head.accept_websocket(&[TIDINGS_SUBPROTOCOL]).unwrap();
    assert_eq!(accepted.protocol, None);
    assert_eq!(
        &accepted.response[..],
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
        )
        .as_bytes()
    );
}

#[test]
fn header_names_and_tokens_ignore_case_and_lists() {
    let req = format!(
        "GET / HTTP/1.1\r\nhost: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\
         sec-websocket-key: {RFC_KEY}\r\nsec-websocket-version: 13\r\n\r\n"
    );
    let head = parse_all_ways(req.as_bytes()).unwrap();
    assert!(head.is_websocket_upgrade());
    assert!(head.accept_websocket(&[]).is_ok());
}

#[test]
fn subprotocol_negotiation() {
    let pick = |offer: &str| {
        let head = parse_all_ways(request(offer).as_bytes()).unwrap();
        let offered: Vec<String> = head.websocket_protocols().map(str::to_owned).collect();
        let accepted = head
            .accept_websocket(&[TIDINGS_SUBPROTOCOL, "other"])
            .unwrap();
        (offered, accepted)
    };
    let (offered, accepted) = pick("Sec-WebSocket-Protocol: chat, tidings.v1\r\n");
    assert_eq!(offered, ["chat", "tidings.v1"]);
    assert_eq!(accepted.protocol.as_deref(), Some("tidings.v1"));
    assert!(std::str::from_utf8(&accepted.response)
        .unwrap()
        .contains("\r\nSec-WebSocket-Protocol: tidings.v1\r\n"));
    // Several header lines form one list; the client's order wins.
    let (_, accepted) =
        pick("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: other, tidings.v1\r\n");
    assert_eq!(accepted.protocol.as_deref(), Some("other"));
    // No overlap: accepted without a protocol; the client decides.
    let (_, accepted) = pick("Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(accepted.protocol, None);
    assert!(!std::str::from_utf8(&accepted.response)
        .unwrap()
        .contains("Sec-WebSocket-Protocol"));
}

#[test]
fn plain_get_is_not_an_upgrade() {
    let head =
        parse_all_ways(b"GET /?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/html\r\n\r\n")
            .unwrap();
    assert!(!head.is_websocket_upgrade());
    assert_eq!((head.path(), head.query()), ("/", Some("x=1")));
    assert_eq!(head.header("accept"), Some("text/html"));
    assert_eq!(head.headers().count(), 2);
    // Bare LF line endings are tolerated.
    let head = parse_all_ways(b"GET /index.html HTTP/1.0\nHost: h\n\n").unwrap();
    assert_eq!(head.path(), "/index.html");
    assert_eq!(head.http_minor_version(), 0);
}

#[test]
fn bytes_after_the_head_are_kept() {
    let mut bytes = request("").into_bytes();
    bytes.extend_from_slice(b"\x81\x85early frame");
    for split in SPLITS {
        let (head, rest) = read_head(&bytes, DEFAULT_MAX_HEADER_BYTES, split);
        assert!(head.unwrap().is_some());
        assert_eq!(rest, b"\x81\x85early frame", "{split:?}");
    }
}

#[test]
fn bad_requests_get_their_status() {
    use RequestError as E;
    let cases: Vec<(String, RequestError, u16)> = vec![
        (edited("GET", "POST"), E::MethodNotAllowed, 405),
        (edited("HTTP/1.1", "HTTP/1.0"), E::HttpVersion, 400),
        (edited("Host: server.example.com\r\n", ""), E::Host, 400),
        (request("Host: again\r\n"), E::Host, 400),
        (edited("Upgrade: websocket\r\n", ""), E::NotUpgrade, 400),
        (
            edited("Upgrade: websocket", "Upgrade: h2c"),
            E::NotUpgrade,
            400,
        ),
        (
            edited("Connection: Upgrade", "Connection: keep-alive"),
            E::ConnectionNotUpgrade,
            400,
        ),
        (
            edited("Sec-WebSocket-Version: 13\r\n", ""),
            E::UnsupportedVersion,
            426,
        ),
        (
            edited("Version: 13", "Version: 8"),
            E::UnsupportedVersion,
            426,
        ),
        (
            request("Sec-WebSocket-Version: 8\r\n"),
            E::UnsupportedVersion,
            426,
        ),
        (
            edited(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
            E::BadKey,
            400,
        ),
        (edited(RFC_KEY, "not base64 at all!!!!!!!"), E::BadKey, 400),
        (
            // base64 of 15 bytes
            edited(RFC_KEY, "AAAAAAAAAAAAAAAAAAAA"),
            E::BadKey,
            400,
        ),
        (
            // base64 of 17 bytes
            edited(RFC_KEY, "AAAAAAAAAAAAAAAAAAAAAAA="),
            E::BadKey,
            400,
        ),
        (
            request(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n")),
            E::BadKey,
            400,
        ),
    ];
    for (req, err, status) in cases {
        assert_eq!(refused(&req), err, "{req}");
        assert_eq!(err.status(), status);
        let response = response_text(err);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{response}"
        );
        assert!(response.contains("\r\nConnection: close\r\n"));
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
    assert!(response_text(RequestError::UnsupportedVersion)
        .contains("\r\nSec-WebSocket-Version: 13\r\n"));
    assert!(response_text(RequestError::MethodNotAllowed).contains("\r\nAllow: GET\r\n"));
}

#[test]
fn malformed_heads_are_400() {
    for bytes in [
        &b"GET\r\n\r\n"[..],
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    ] {
        let err = parse_all_ways(bytes).unwrap_err();
        assert_eq!(
            err,
            RequestError::Malformed,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn oversized_heads_are_431_as_soon_as_they_pass_the_limit() {
    let filler = format!("X-Filler: {}\r\n", "a".repeat(200));
    let big = request(&filler.repeat(50)); // ~10 KiB, over the 8 KiB default
    for split in SPLITS {
        assert_eq!(
            read_head(big.as_bytes(), DEFAULT_MAX_HEADER_BYTES, split).0,
            Err(RequestError::HeadTooLarge)
        );
    }
    // Fed byte by byte, the error comes with byte limit + 1, long before the head ends.
    let limit = 100;
    let mut reader = RequestReader::new(limit);
    let bytes = big.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        match reader.feed(std::slice::from_ref(byte)) {
            Ok(None) => assert!(i < limit),
            Err(RequestError::HeadTooLarge) => {
                assert_eq!(i, limit);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A head of exactly the limit is fine.
    let req = request("");
    assert!(read_head(req.as_bytes(), req.len(), Split::Bytewise)
        .0
        .unwrap()
        .is_some());
    assert_eq!(
        read_head(req.as_bytes(), req.len() - 1, Split::Whole).0,
        Err(RequestError::HeadTooLarge)
    );
    assert_eq!(RequestError::HeadTooLarge.status(), 431);
}

#[test]
fn too_many_headers_is_431() {
    let many: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let err = parse_all_ways(request(&many).as_bytes()).unwrap_err();
    assert_eq!(err, RequestError::TooManyHeaders);
    assert_eq!(err.status(), 431);
}

#[test]
fn sniffing_http_on_a_shared_port() {
    assert_eq!(sniff_http(b"GET / HTTP/1.1"), Sniff::Http);
    assert_eq!(sniff_http(b"OPTIONS * HTTP/1.1"), Sniff::Http);
    assert_eq!(sniff_http(b""), Sniff::NeedMore);
    assert_eq!(sniff_http(b"G"), Sniff::NeedMore);
    assert_eq!(sniff_http(b"GET"), Sniff::NeedMore);
    assert_eq!(sniff_http(b"GETX"), Sniff::NotHttp);
    assert_eq!(sniff_http(b"get / "), Sniff::NotHttp);
    assert_eq!(sniff_http(&[0x00, 0x01]), Sniff::NotHttp);
}

// ---- client role ---------------------------------------------------------------------------

const KEY: [u8; 16] = *b"the sample nonce";

fn client(protocols: &'static [&'static str]) -> (ClientHandshake, String) {
    let req = ClientRequest {
        host: "server.example.com",
        path: "/chat",
        key: KEY,
        protocols,
        origin: Some("http://example.com"),
    };
    let (hs, bytes) = ClientHandshake::new(&req, DEFAULT_MAX_HEADER_BYTES).unwrap();
    (hs, String::from_utf8(bytes.to_vec()).unwrap())
}

fn response(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n{extra}\r\n"
    )
}

fn client_result(
    protocols: &'static [&'static str],
    resp: &str,
    split: Split,
) -> Result<Option<tidings_core::ws::ClientAccepted>, ResponseError> {
    let (mut hs, _) = client(protocols);
    let mut result = Ok(None);
    for chunk in chunks(resp.as_bytes(), split) {
        result = hs.feed(chunk);
        if !matches!(result, Ok(None)) {
            break;
        }
    }
    result
}

#[test]
fn client_request_is_well_formed() {
    let (_, req) = client(&["tidings.v1", "chat"]);
    assert_eq!(
        req,
        format!(
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: tidings.v1, chat\r\nOrigin: http://example.com\r\n\r\n"
        )
    );
    // And our own server accepts it.
    let head = parse_all_ways(req.as_bytes()).unwrap();
    let accepted = head.accept_websocket(&[TIDINGS_SUBPROTOCOL]).unwrap();
    assert_eq!(accepted.protocol.as_deref(), Some(TIDINGS_SUBPROTOCOL));
}

#[test]
fn client_accepts_a_good_response() {
    for split in SPLITS {
        let ok = client_result(&[], &response(""), split).unwrap().unwrap();
        assert_eq!(ok.protocol, None);
        let ok = client_result(
            &["chat", "tidings.v1"],
            &response("Sec-WebSocket-Protocol: tidings.v1\r\n"),
            split,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("tidings.v1"));
    }
    // Case-insensitive names and token lists.
    let resp = format!(
        "HTTP/1.1 101 OK\r\nupgrade: WEBSOCKET\r\nconnection: keep-alive, upgrade\r\n\
         sec-websocket-accept: {RFC_ACCEPT}\r\n\r\n"
    );
    assert!(client_result(&[], &resp, Split::Whole).unwrap().is_some());
}

#[test]
fn client_rejects_bad_responses() {
    let cases: Vec<(&'static [&'static str], String, ResponseError)> = vec![
        (
            &[],
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into(),
            ResponseError::Status(200),
        ),
        (
            &[],
            response("").replacen("Upgrade: websocket\r\n", "", 1),
            ResponseError::NotUpgrade,
        ),
        (
            &[],
            response("").replacen("Connection: Upgrade", "Connection: close", 1),
            ResponseError::ConnectionNotUpgrade,
        ),
        (
            &[],
            response("").replacen(RFC_ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1),
            ResponseError::BadAccept,
        ),
        (
            &[],
            response("").replacen(&format!("Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n"), "", 1),
            ResponseError::BadAccept,
        ),
        (
            &["tidings.v1"],
            response("Sec-WebSocket-Protocol: chat\r\n"),
            ResponseError::UnrequestedProtocol("chat".into()),
        ),
        (
            &[],
            response("Sec-WebSocket-Protocol: tidings.v1\r\n"),
            ResponseError::UnrequestedProtocol("tidings.v1".into()),
        ),
        (
            &[],
            response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            ResponseError::UnrequestedExtension,
        ),
        (&[], "HTTP/1.1 abc\r\n\r\n".into(), ResponseError::Malformed),
    ];
    for (protocols, resp, err) in cases {
        for split in SPLITS {
            assert_eq!(
                client_result(protocols, &resp, split),
                Err(err.clone()),
                "{resp}"
            );
        }
    }
    let huge = response(&format!("X-Filler: {}\r\n", "a".repeat(9000)));
    assert_eq!(
        client_result(&[], &huge, Split::Random(3)),
        Err(ResponseError::HeadTooLarge)
    );
}

#[test]
fn client_keeps_frames_sent_right_after_the_response() {
    let (mut hs, _) = client(&[]);
    let mut bytes = response("").into_bytes();
    bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    assert!(hs.feed(&bytes).unwrap().is_some());
    hs.feed(&[0x81]).unwrap();
    assert_eq!(&hs.take_remaining()[..], &[0x81, 0x02, b'h', b'i', 0x81]);
}

#[test]
fn client_refuses_fields_that_would_break_the_request() {
    let base = ClientRequest {
        host: "h",
        path: "/",
        key: KEY,
        protocols: &[],
        origin: None,
    };
    let bad = [
        (
            ClientRequest {
                host: "h\r\nX-Evil: 1",
                ..base
            },
            "host",
        ),
        (ClientRequest { host: "", ..base }, "host"),
        (
            ClientRequest {
                path: "/a b",
                ..base
            },
            "path",
        ),
        (
            ClientRequest {
                path: "relative",
                ..base
            },
            "path",
        ),
        (
            ClientRequest {
                origin: Some("o\n"),
                ..base
            },
            "origin",
        ),
        (
            ClientRequest {
                protocols: &["a,b"],
                ..base
            },
            "protocol",
        ),
        (
            ClientRequest {
                protocols: &[""],
                ..base
            },
            "protocol",
        ),
    ];
    for (req, field) in bad {
        assert_eq!(
            ClientHandshake::new(&req, 8192).unwrap_err(),
            ResponseError::InvalidRequest(field)
        );
    }
}
