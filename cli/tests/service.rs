//! `tidings serve` run as a service: settings from a config file (flags win), logs to a file
//! or the journal. Real processes, real sockets on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// `tidings --json serve ARGS`, its standard output read line by line; killed on drop.
struct Server {
    child: Child,
    lines: Receiver<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("--json")
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    /// The next event of this kind (others are skipped), within 60 s.
    fn expect(&self, kind: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {kind} event within 60 s"));
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["event"] == kind {
                return v;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A failed run's standard error: exactly one line.
fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(text.lines().count(), 1, "not one line: {text}");
    text
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("tidings.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_config_file_sets_address_name_limits_and_log_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tidings.log");
    // Appending: what an earlier run wrote stays.
    std::fs::write(&log, "an earlier run\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\nname = \"lobby\"\nmax_per_address = 1\n\
             log_file = {:?}\n",
            log.to_str().unwrap()
        ),
    );
    // `--name` on the command line wins over the file's `name`.
    let server = Server::start(&["--config", &config, "--name", "hall"]);
    let listening = server.expect("listening");
    assert_eq!(listening["name"], "hall");
    let addr = listening["addr"].as_str().unwrap().to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // A join, logged at info (the level of a log file) ...
    let said = run(&["say", "--name", "alice", "--server", &addr, "hello"]);
    assert!(said.status.success(), "{said:?}");
    server.expect("joined");
    // ... and the file's limit of one connection per address, with its refusal logged.
    let _held = TcpStream::connect(&addr).unwrap();
    let _second = TcpStream::connect(&addr).unwrap();
    let refused = server.expect("connection-refused");
    assert_eq!(refused["limit"], "peraddress", "{refused}");

    // Each event is logged before it is printed, so the file has both lines by now.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an earlier run\n"), "{text}");
    assert!(text.contains("listening"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("joined") && l.contains("alice")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("connection refused")),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colours in a file: {text:?}");
}

#[test]
fn an_unknown_key_names_itself_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "name = \"lobby\"\nmax_conections = 5\n");
    let o = run(&["serve", "--config", &config]);
    assert_eq!(o.status.code(), Some(2));
    let err = one_line_error(&o);
    assert!(
        err.contains("tidings.toml") && err.contains("line 2") && err.contains("max_conections"),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_its_key_and_a_missing_file_is_a_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "message_rate = \"fast\"\n");
    let o = run(&["serve", "--config", &config]);
    assert_eq!(o.status.code(), Some(2));
    let err = one_line_error(&o);
    assert!(err.contains("line 1: message_rate:"), "{err}");

    let missing = dir.path().join("absent.toml");
    let o = run(&["serve", "--config", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5));
    let err = one_line_error(&o);
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn the_journal_and_a_log_file_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("x.log");
    let log = log.to_str().unwrap();
    // On the command line clap refuses the pair; flags replace both of the file's keys.
    let o = run(&["serve", "--log", "journald", "--log-file", log]);
    assert_eq!(o.status.code(), Some(2));
    let config = write_config(
        dir.path(),
        &format!("log = \"journald\"\nlog_file = {log:?}\n"),
    );
    let o = run(&["serve", "--config", &config, "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = one_line_error(&o);
    assert!(err.contains("journal") && err.contains("log_file"), "{err}");
}

#[test]
fn journald_without_a_journal_is_a_clear_error() {
    if Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("a journal is running here: nothing to check");
        return;
    }
    let o = run(&["serve", "--log", "journald", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = one_line_error(&o);
    assert!(err.contains("systemd journal"), "{err}");
}
