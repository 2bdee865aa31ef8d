//! Several `tidings serve --cluster` processes and one real `nats-server` (JetStream on), all
//! on 127.0.0.1 free ports: names, presence, chat and private messages across servers, and
//! the faults an operator meets — a server killed mid-chat, NATS restarted, a server cut off
//! from NATS, a server stopped for 10 s.
//!
//! `nats-server` comes from `nats/install-server` (or `TIDINGS_NATS_SERVER`). Without it
//! these tests say so and pass, unless `TIDINGS_REQUIRE_NATS` is set (as `.ci/run` does).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{serve, Proc, BIN};

/// The `nats-server` binary, if installed.
fn nats_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TIDINGS_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats/.venv/bin/nats-server");
    if installed.exists() {
        return Some(installed);
    }
    assert!(
        std::env::var_os("TIDINGS_REQUIRE_NATS").is_none(),
        "no nats-server: run nats/install-server"
    );
    eprintln!("skipped: no nats-server (run nats/install-server)");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` on a free port, its JetStream store in a temporary folder; killed on
/// drop.
struct Nats {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    /// `--tlscert` and `--tlskey`, for a NATS server that speaks only TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Nats {
    fn start() -> Option<Nats> {
        Nats::start_with(None)
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Option<Nats> {
        let mut nats = Nats {
            binary: nats_binary()?,
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
            child: None,
            tls,
        };
        nats.run();
        Some(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and store) and waits until it accepts.
    fn run(&mut self) {
        let mut cmd = Command::new(&self.binary);
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
        }
        let child = cmd
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster server: `tidings --json serve --cluster …` on a free port.
fn node(url: &str, name: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--cluster", url, "--node", name];
    args.extend_from_slice(extra);
    let (p, addr) = serve(&args);
    (p, addr)
}

/// A chat as `name`, and the names its welcome listed.
fn chat(name: &str, servers: &str) -> (Proc, Vec<String>) {
    let p = Proc::spawn(&["--json", "chat", "--name", name, "--server", servers]);
    let welcome = p.expect_event("connected");
    let online = welcome["online"].as_array().unwrap();
    let online = online
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    (p, online)
}

fn say(name: &str, server: &str, rest: &[&str]) -> std::process::Output {
    let mut args = vec!["say", "--name", name, "--server", server];
    args.extend_from_slice(rest);
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Waits until `who` heard that `name` joined the default room.
fn sees_join(who: &Proc, name: &str) {
    who.expect(|v| v["event"] == "joined" && v["name"] == name);
}

/// Waits until `who` knows every one of `names` is online: listed in its welcome
/// (`listed`), or heard joining since (news from other servers comes a moment later, so a
/// welcome may miss who arrived elsewhere just before).
fn knows(who: &Proc, listed: &[String], names: &[&str]) {
    let mut missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !listed.iter().any(|l| l == n))
        .collect();
    while !missing.is_empty() {
        let v = who.expect(|v| v["event"] == "joined");
        missing.retain(|n| v["name"] != *n);
    }
}

#[test]
fn three_servers_share_names_presence_chat_and_private_messages() {
    let Some(nats) = Nats::start() else { return };
    let (_a, a) = node(&nats.url(), "a", &[]);
    let (_b, b) = node(&nats.url(), "b", &[]);
    let (mut c_proc, c) = node(&nats.url(), "c", &["--console"]);
    let (ann, _) = chat("ann", &a);
    let (bob, listed) = chat("bob", &b);
    // bob knows of ann, who is on another server; ann hears of bob.
    knows(&bob, &listed, &["ann", "bob"]);
    sees_join(&ann, "bob");
    // c knows them too before anyone there talks to them.
    let (dee, listed) = chat("dee", &c);
    knows(&dee, &listed, &["ann", "bob"]);

    let o = say("cy", &c, &["hello, everyone"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for who in [&ann, &bob] {
        let v = who.expect_event("text");
        assert_eq!(
            (&v["from"], &v["text"]),
            (&"cy".into(), &"hello, everyone".into())
        );
    }
    let o = say("cy", &c, &["--to", "ann", "psst"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = ann.expect_event("text");
    assert_eq!((&v["private"], &v["text"]), (&true.into(), &"psst".into()));

    // The operator of c sees the other servers and their users.
    c_proc.type_line("/nodes");
    let v = c_proc.expect_event("nodes");
    assert_eq!(
        v["nodes"],
        serde_json::json!([{"node": "a", "users": 1}, {"node": "b", "users": 1}])
    );

    // ann's name is taken on every server, whatever its case.
    let o = say("ANN", &c, &["me too"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("taken"));
}

#[test]
fn servers_reach_nats_over_tls_trusting_its_authority() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["cert", "--name", "localhost", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tls = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let Some(nats) = Nats::start_with(Some(tls)) else {
        return;
    };
    let url = format!("tls://localhost:{}", nats.port);
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    // Without the authority, the server does not start: NATS's certificate is not trusted.
    let o = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--cluster", &url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_a, a) = node(&url, "a", &["--cluster-ca", ca]);
    let (_b, b) = node(&url, "b", &["--cluster-ca", ca]);
    let (ann, _) = chat("ann", &a);
    // Once b knows ann (her arrival crosses in the next batch of news), b can reach her.
    let (bob, listed) = chat("bob", &b);
    knows(&bob, &listed, &["ann"]);
    let o = say("cy", &b, &["--to", "ann", "over TLS"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = ann.expect(|v| v["event"] == "text" && v["private"] == true);
    assert_eq!(v["text"], "over TLS");
}

#[test]
fn a_server_killed_mid_chat_its_users_are_back_on_another_under_their_names() {
    let Some(nats) = Nats::start() else { return };
    let (a_proc, a) = node(&nats.url(), "a", &[]);
    let (_b, b) = node(&nats.url(), "b", &[]);
    let (bob, _) = chat("bob", &b);
    let (ann, _) = chat("ann", &format!("{a},{b}"));
    sees_join(&bob, "ann");
    let killed = Instant::now();
    drop(a_proc); // SIGKILL: no goodbye, its claims left to expire
                  // ann's chat reconnects to b, refused while her claim lives, then back under her name.
    let v = ann.expect(|v| v["event"] == "connected");
    assert_eq!(v["name"], "ann");
    let back = killed.elapsed();
    assert!(back < Duration::from_secs(30), "back after {back:?}");
    bob.expect(|v| v["event"] == "text" || (v["event"] == "joined" && v["name"] == "ann"));
    let o = say("cy", &b, &["--to", "ann", "welcome back"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = ann.expect(|v| v["event"] == "text" && v["private"] == true);
    assert_eq!(v["text"], "welcome back");
    eprintln!("ann was back {back:?} after her server was killed");
}

#[test]
fn nats_restarting_is_told_to_users_and_chat_resumes() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let (_a, a) = node(&nats.url(), "a", &[]);
    let (_b, b) = node(&nats.url(), "b", &[]);
    let (ann, _) = chat("ann", &a);
    let (bob, _) = chat("bob", &b);
    sees_join(&ann, "bob");
    nats.kill();
    let v = ann.expect_event("text");
    assert!(v["text"].as_str().unwrap().contains("lost its link"), "{v}");
    nats.run();
    let v = ann.expect_event("text");
    assert!(v["text"].as_str().unwrap().contains("linked"), "{v}");
    // Chat goes across again once both servers are back (bob's server may reconnect a
    // little after ann's: the line is said until it arrives).
    let mut bob = bob;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        bob.type_line("are you there?");
        let heard = ann.lines.recv_timeout(Duration::from_secs(1));
        if heard.is_ok_and(|l| l.contains("are you there?")) {
            break;
        }
        assert!(Instant::now() < deadline, "chat never resumed");
    }
}

/// A TCP relay between one server and NATS that the test can cut and restore.
struct Cable {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Cable {
    fn to(target: u16) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: refused while cut
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut open = open2.lock().unwrap();
                open.push(inbound.try_clone().unwrap());
                open.push(outbound.try_clone().unwrap());
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Cable { port, cut, open }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

#[test]
fn a_server_cut_off_from_nats_tells_its_users_and_the_others_let_them_go() {
    let Some(nats) = Nats::start() else { return };
    let cable = Cable::to(nats.port);
    let (_a, a) = node(&nats.url(), "a", &["--node-timeout-secs", "3"]);
    let (_c, c) = node(&cable.url(), "c", &["--node-timeout-secs", "3"]);
    let (ann, _) = chat("ann", &a);
    let (dee, _) = chat("dee", &c);
    sees_join(&ann, "dee");
    cable.set_cut(true);
    let v = dee.expect_event("text");
    assert!(v["text"].as_str().unwrap().contains("lost its link"), "{v}");
    // The other server stops hearing c: dee leaves ann's list.
    ann.expect(|v| v["event"] == "left" && v["name"] == "dee");
    cable.set_cut(false);
    dee.expect(|v| v["event"] == "text" && v["text"].as_str().unwrap().contains("linked"));
    sees_join(&ann, "dee");
}

#[test]
fn a_server_stopped_for_ten_seconds_does_not_slow_the_others() {
    let Some(nats) = Nats::start() else { return };
    let (_a, a) = node(&nats.url(), "a", &[]);
    let (_b, b) = node(&nats.url(), "b", &[]);
    let (c_proc, c) = node(&nats.url(), "c", &[]);
    let (ann, _) = chat("ann", &a);
    let (mut bob, listed) = chat("bob", &b);
    let (cy, _) = chat("cy", &c);
    knows(&ann, &[], &["bob", "cy"]);
    knows(&bob, &listed, &["ann", "cy"]);
    let pid = c_proc.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let stopped = Instant::now();
    // While c sleeps, a and b talk: every line arrives, before c wakes.
    for i in 0..20 {
        let line = format!("line {i}");
        bob.type_line(&line);
        let v = ann.expect_event("text");
        assert_eq!(v["text"], line);
    }
    let talked = stopped.elapsed();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(talked));
    signal("-CONT");
    assert!(
        talked < Duration::from_secs(10),
        "a and b waited for c: {talked:?}"
    );
    // c catches up and is still part of the chat.
    bob.type_line("welcome back, c");
    cy.expect(|v| v["event"] == "text" && v["text"] == "welcome back, c");
    eprintln!("20 lines between a and b took {talked:?} while c was stopped");
}

#[test]
fn a_server_stopped_gracefully_frees_its_names_at_once() {
    let Some(nats) = Nats::start() else { return };
    let (a_proc, a) = node(&nats.url(), "a", &[]);
    let (b_proc, b) = node(&nats.url(), "b", &[]);
    let (ann, _) = chat("ann", &a);
    b_proc.expect(|v| v["event"] == "joined" || v["event"] == "node-up");
    let pid = a_proc.child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    // a says goodbye to ann, tells the others it is gone and releases her name, then exits.
    ann.expect(|v| v["event"] == "closed" || v["event"] == "reconnecting");
    let status = a_proc.wait();
    assert!(status.success(), "{status:?}");
    b_proc.expect(|v| v["event"] == "node-gone" && v["node"] == "a");
    // Her name is free on b at once, not a claim's lifetime later.
    let o = say("ann", &b, &["back already"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
