//! What the tests of the `tidings` binary share: the binary, its processes and their output
//! lines, and files to send.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The `tidings` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// Spawns `cmd` with its standard output piped (standard input and error as `cmd` sets
/// them). A thread reads the output: each line, turned into a `T` by `line`, arrives on the
/// receiver (a line for which `line` gives `None` is skipped), until the output ends or the
/// receiver is dropped.
pub fn spawn_with_lines<T: Send + 'static>(
    cmd: &mut Command,
    line: fn(String) -> Option<T>,
) -> (Child, Receiver<T>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for text in BufReader::new(stdout).lines() {
            let Ok(text) = text else { break };
            let Some(item) = line(text) else { continue };
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// The first of `lines` for which `pred` holds (others are dropped), within `patience`.
#[track_caller]
pub fn expect_line<T>(
    lines: &Receiver<T>,
    patience: Duration,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let end = Instant::now() + patience;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(v) if pred(&v) => return v,
            Ok(_) => {}
            Err(_) => panic!("no such output line within {patience:?}"),
        }
    }
}

/// Writes a file of `len` pseudo-random bytes drawn from `seed` at `path`.
pub fn make_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

/// Asserts that `output` (standard output and error of one command) holds nothing a terminal
/// would obey and no forged event line (one that starts `[20:17:0`, the time the hostile
/// strings of the tests forge), and that it shows `needles` (escaped or not).
#[track_caller]
pub fn assert_harmless(what: &str, output: &str, needles: &[&str]) {
    for c in output.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} printed {c:?}:\n{output}");
    }
    for line in output.lines() {
        assert!(
            !line.starts_with("[20:17:0"),
            "{what} forged a line:\n{output}"
        );
    }
    for needle in needles {
        assert!(
            output.contains(needle),
            "{what} lacks {needle:?}:\n{output}"
        );
    }
}

/// A fake server on a free port for one client: after the client's first bytes it sends
/// the preamble and `messages`, then waits until the client hangs up. Its address, and the
/// thread to join.
pub fn fake_server(
    messages: Vec<tidings_core::wire::Message>,
) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = [0u8; 64];
        let _ = s.read(&mut hello).unwrap();
        let preamble = tidings_core::wire::Preamble::CURRENT.to_bytes();
        let mut out = bytes::BytesMut::from(&preamble[..]);
        for msg in messages {
            msg.encode(&mut out);
        }
        s.write_all(&out).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    });
    (addr, fake)
}
