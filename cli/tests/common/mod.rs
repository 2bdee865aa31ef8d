//! What the tests of the `tidings` binary share: the binary, its processes and their output
//! lines, and files to send.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};

use serde_json::Value;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
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

/// A child process whose stdout lines are collected on a thread; killed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdin(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, lines) = spawn_with_lines(&mut cmd, Some);
        let stdin = child.stdin.take();
        Proc {
            child,
            lines,
            stdin,
        }
    }

    /// The next JSON event for which `pred` holds (others are skipped), within 60 s. A
    /// timeout names the caller's line.
    #[track_caller]
    pub fn expect(&self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("an output line within 60 s");
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["time"].is_string(), "every event has a time: {line}");
            if pred(&v) {
                return v;
            }
        }
    }

    #[track_caller]
    pub fn expect_event(&self, kind: &str) -> Value {
        self.expect(|v| v["event"] == kind)
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the exit and returns the status with standard error.
    pub fn child_output(mut self) -> Output {
        self.stdin.take();
        let status = self.child.wait().unwrap();
        let mut err = Vec::new();
        std::io::Read::read_to_end(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: err,
        }
    }

    /// [`Proc::child_output`], failing the test (and killing the process) if it has not
    /// exited within `limit`.
    pub fn output_within(mut self, limit: Duration) -> Output {
        let deadline = std::time::Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child_output()
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        self.stdin.take();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tidings --json serve` on a free port; returns it with its address.
pub fn serve(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--json", "serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let p = Proc::spawn(&args);
    let v = p.expect_event("listening");
    let addr = v["addr"].as_str().unwrap().to_string();
    (p, addr)
}
