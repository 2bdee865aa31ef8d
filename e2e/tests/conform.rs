//! The conformance runner (tidings-conform) against the real servers: both pass clean, over
//! native TCP, WebSocket, TLS and WebSocket over TLS; and behind each fault of
//! `tidings_e2e::faults` the runner reports FAILED on the case about that rule, while cases
//! about other rules still pass.
//! Real sockets throughout; the runner's own timeouts bound every wait.

use std::time::Duration;

use tidings_conform::{Options, Report, Runner, Verdict};
use tidings_e2e::faults::{Fault, FaultyServer};
use tidings_e2e::{for_both_servers, ServerConfig, ServerKind, TestServer, WebConfig};
use tidings_host::tls::{SelfSigned, TlsServerConfig};

/// The handshake timeout the servers are given, told to the runner (it is not announced).
const HANDSHAKE: Duration = Duration::from_millis(1000);

/// The settings of [`server`] with `tls` on the port.
fn config(tls: Option<TlsServerConfig>) -> (ServerConfig, WebConfig) {
    let mut config = ServerConfig {
        tls,
        ..ServerConfig::default()
    };
    config.hub.session.heartbeat_interval = Duration::from_millis(1000);
    config.hub.session.heartbeat_timeout = Duration::from_millis(3000);
    config.hub.session.handshake_timeout = HANDSHAKE;
    let web = WebConfig {
        head_timeout: HANDSHAKE,
        ..WebConfig::default()
    };
    (config, web)
}

/// A server whose timers are short enough for the runner to watch them expire (within its
/// 5 s `max_wait`), yet long enough that a client busy elsewhere in a case under a loaded
/// test run is not declared dead: the handshake timeout is the door's too, as `tidings serve
/// --handshake-timeout-ms` sets both.
fn server(kind: ServerKind) -> TestServer {
    let (config, web) = config(None);
    TestServer::start_with(kind, config, web)
}

/// Runs the cases matching `globs` (all when empty) against `url`.
fn run(url: &str, globs: &[&str]) -> Report {
    run_with(Options::new(url.parse().unwrap()), globs)
}

fn run_with(mut options: Options, globs: &[&str]) -> Report {
    options.cases = globs.iter().map(|g| g.to_string()).collect();
    options.handshake_timeout = Some(HANDSHAKE);
    Runner::new(options).unwrap().run(|_| {})
}

/// The ids of the cases that came to `verdict`.
fn with(report: &Report, verdict: Verdict) -> Vec<&'static str> {
    report
        .results
        .iter()
        .filter(|r| r.verdict == verdict)
        .map(|r| r.id)
        .collect()
}

#[track_caller]
fn assert_clean(report: &Report) {
    assert!(!report.failed(), "{}", report.text());
    // Every SHOULD is kept too: a NON-STRICT verdict would have to be listed here.
    assert_eq!(
        with(report, Verdict::NonStrict),
        Vec::<&str>::new(),
        "{}",
        report.text()
    );
    // The servers speak rooms: every room case runs and passes, none is UNIMPLEMENTED.
    let rooms: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.id.starts_with("6.10-"))
        .map(|r| (r.id, r.verdict))
        .collect();
    assert_eq!(rooms.len(), 7, "{}", report.text());
    assert!(
        rooms.iter().all(|(_, v)| *v == Verdict::Ok),
        "{rooms:?}: {}",
        report.text()
    );
    // Only the cases that report a choice the spec leaves to the server are informational.
    assert_eq!(
        with(report, Verdict::Informational),
        ["9-relay-window", "10-offer-to-server"],
        "{}",
        report.text()
    );
}

fn passes_clean_over_tcp(kind: ServerKind) {
    let server = server(kind);
    let report = run(&format!("tcp://{}", server.addr), &[]);
    assert_clean(&report);
    assert!(report.results.len() >= 70, "{}", report.summary());
}

fn passes_clean_over_websocket(kind: ServerKind) {
    let server = server(kind);
    let report = run(&format!("ws://{}/ws", server.addr), &[]);
    assert_clean(&report);
    assert!(report.results.iter().any(|r| r.id.starts_with("12.3-")));
}

/// Over TLS, native and WebSocket, with the CA of `SelfSigned` in a file for `--ca`.
fn passes_clean_over_tls(kind: ServerKind) {
    let certs = SelfSigned::generate(&["localhost".into()]).unwrap();
    let tls = TlsServerConfig::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes());
    let (config, web) = config(Some(tls.unwrap()));
    let server = TestServer::start_with(kind, config, web);
    let dir = tidings_e2e::temp_dir();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let port = server.addr.port();
    for url in [
        format!("tls://localhost:{port}"),
        format!("wss://localhost:{port}/ws"),
    ] {
        let mut options = Options::new(url.parse().unwrap());
        options.ca = Some(ca.clone());
        let report = run_with(options, &[]);
        assert!(!report.failed(), "{}", report.text());
        assert_eq!(with(&report, Verdict::NonStrict), Vec::<&str>::new());
        let tls_case = report.results.iter().find(|r| r.id == "12.0-tls-required");
        assert_eq!(tls_case.map(|r| r.verdict), Some(Verdict::Ok), "{url}");
    }
}

for_both_servers! {
    native: [passes_clean_over_tcp, passes_clean_over_tls],
    web: [passes_clean_over_websocket],
}

/// Cases about rules none of the faults touches: they must still pass behind every fault.
const UNRELATED: [&str; 3] = ["3.3-server-preamble", "6.6-ping-answered", "10-relay-offer"];

/// Behind `fault`, the runner reports `case` FAILED and the unrelated cases OK.
#[track_caller]
fn caught(fault: Fault, case: &str) {
    let upstream = server(ServerKind::Smol);
    let broken = FaultyServer::start(upstream.addr, fault);
    let mut globs = UNRELATED.to_vec();
    globs.push(case);
    let report = run(&format!("tcp://{}", broken.addr), &globs);
    assert_eq!(
        with(&report, Verdict::Failed),
        [case],
        "{fault:?}: {}",
        report.text()
    );
    let failed = report.results.iter().find(|r| r.id == case).unwrap();
    assert!(
        !failed.transcript.is_empty(),
        "a FAILED case shows its bytes"
    );
    assert_eq!(
        with(&report, Verdict::Ok).len(),
        UNRELATED.len(),
        "{}",
        report.text()
    );
}

#[test]
fn a_server_that_stamps_the_wrong_sender_fails_6_3_sender_stamped() {
    caught(Fault::StampsWrongSender, "6.3-sender-stamped");
}

#[test]
fn a_server_without_a_frame_limit_fails_4_3_frame_too_large() {
    caught(Fault::NoFrameLimit, "4.3-frame-too-large");
}

#[test]
fn a_server_that_ignores_credit_fails_7_4_credit_respected() {
    caught(Fault::IgnoresCredit, "7.4-credit-respected");
}

#[test]
fn a_server_with_wrong_error_codes_fails_6_3_unknown_peer() {
    caught(Fault::WrongErrorCode, "6.3-unknown-peer");
}

#[test]
fn a_server_that_reorders_texts_fails_6_9_order_kept() {
    caught(Fault::ReordersTexts, "6.9-order-kept");
}

#[test]
fn a_server_that_leaks_private_texts_fails_6_3_private_routing() {
    caught(Fault::LeaksPrivate, "6.3-private-routing");
}

#[test]
fn a_server_that_leaks_room_text_fails_6_10_room_text_routing() {
    caught(Fault::LeaksRooms, "6.10-room-text-routing");
}

/// A server without rooms is a 1.0 server, not a broken one: every room case says
/// UNIMPLEMENTED, none FAILED, and the other cases still pass.
#[test]
fn a_server_without_rooms_leaves_the_room_cases_unimplemented() {
    let upstream = server(ServerKind::Smol);
    let plain = FaultyServer::start(upstream.addr, Fault::NoRooms);
    let mut globs = UNRELATED.to_vec();
    globs.push("6.10-*");
    let report = run(&format!("tcp://{}", plain.addr), &globs);
    assert!(!report.failed(), "{}", report.text());
    let unimplemented = with(&report, Verdict::Unimplemented);
    assert_eq!(unimplemented.len(), 7, "{}", report.text());
    assert!(unimplemented.iter().all(|id| id.starts_with("6.10-")));
    assert_eq!(with(&report, Verdict::Ok).len(), UNRELATED.len());
}

/// The other cases a fault breaks, beyond the one named after it, are reported too: a
/// wrong error code fails every case that expects a code.
#[test]
fn every_case_that_expects_an_error_code_catches_wrong_codes() {
    let upstream = server(ServerKind::Smol);
    let broken = FaultyServer::start(upstream.addr, Fault::WrongErrorCode);
    let report = run(&format!("tcp://{}", broken.addr), &["4.3-*", "6.1-name-*"]);
    let failed = with(&report, Verdict::Failed);
    for id in [
        "4.3-frame-too-large",
        "4.3-unknown-type",
        "4.3-invalid-utf8",
        "6.1-name-invalid",
    ] {
        assert!(failed.contains(&id), "{id} not FAILED: {}", report.text());
    }
}
