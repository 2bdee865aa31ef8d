//! What the tests of the `tidings` binary share: the binary, its processes and their output
//! lines, and files to send.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
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
