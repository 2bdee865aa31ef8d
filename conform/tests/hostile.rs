//! The runner is a client of possibly broken servers: whatever a server sends — garbage,
//! lies about lengths, silence, a broken WebSocket handshake — every case ends with a
//! verdict, in bounded time and memory, and none of them by a panic of the runner.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tidings_conform::wire::{frame, PREAMBLE};
use tidings_conform::{Options, Report, Runner, Verdict};

/// What the hostile server answers its `n`th connection with, after reading what came.
fn answer(n: usize) -> Vec<u8> {
    let mut preamble = PREAMBLE.to_vec();
    let mut with = |bytes: &[u8]| {
        preamble.extend_from_slice(bytes);
        preamble.clone()
    };
    match n % 8 {
        0 => Vec::new(),
        1 => garbage(n, 4096),
        // A frame claiming 4 GiB: refused on its length, never allocated for.
        2 => with(&[0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
        // A welcome whose names are not UTF-8 and whose list count lies.
        3 => with(&frame(0x02, &[2, 0xFF, 0xFE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        4 => with(&frame(0x22, &[0xFF, 0xFF, 0xFF, 0xFF])),
        // A preamble cut short, then a wrong version.
        5 => PREAMBLE[..5].to_vec(),
        6 => {
            let mut v2 = PREAMBLE;
            v2[7] = 9;
            v2.to_vec()
        }
        // An HTTP answer where a WebSocket handshake or a preamble was due.
        _ => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff"
            .to_vec(),
    }
}

fn garbage(seed: usize, len: usize) -> Vec<u8> {
    let mut x = seed as u64 | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A server that answers each connection with one of the answers above, then holds the
/// connection until the client leaves.
fn hostile_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || serve(&mut conn, n));
        }
    });
    port
}

fn serve(conn: &mut TcpStream, n: usize) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 4096];
    let _ = conn.read(&mut buf);
    let _ = conn.write_all(&answer(n));
    if n % 3 == 0 {
        return; // closed at once
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}

fn run(url: &str) -> Report {
    let mut options = Options::new(url.parse().unwrap());
    options.timeout = Duration::from_millis(150);
    options.handshake_timeout = Some(Duration::from_millis(100));
    options.max_wait = Duration::from_millis(200);
    Runner::new(options).unwrap().run(|_| {})
}

#[track_caller]
fn survived(report: &Report) {
    assert!(
        report.failed(),
        "a hostile server cannot pass: {}",
        report.summary()
    );
    for r in &report.results {
        assert!(
            !r.detail.contains("runner itself failed"),
            "{}: {}",
            r.id,
            r.detail
        );
        assert!(
            r.duration < Duration::from_secs(5),
            "{} took {:?}",
            r.id,
            r.duration
        );
    }
    // The report of hostile bytes is itself well-formed.
    assert!(report.junit().ends_with("</testsuite>\n"));
    serde_json::to_string(&report.json()).unwrap();
}

#[test]
fn a_hostile_native_server_fails_cases_without_breaking_the_runner() {
    let report = run(&format!("tcp://127.0.0.1:{}", hostile_server()));
    survived(&report);
    assert!(report.count(Verdict::Failed) > report.results.len() / 2);
}

#[test]
fn a_hostile_websocket_server_fails_cases_without_breaking_the_runner() {
    survived(&run(&format!("ws://127.0.0.1:{}/ws", hostile_server())));
}
