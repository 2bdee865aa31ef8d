//! Runs every fuzz body in the normal suite: each past finding in `fuzz/regressions/TARGET/`
//! (a regression test per file) and a few thousand deterministic random inputs, so the
//! bodies can never rot between fuzzing campaigns.

mod sim;

use std::path::Path;
use std::time::Instant;

use sim::Rng;
use tidings_core::fuzz;

type Body = fn(&[u8]);

const BODIES: [(&str, Body); 9] = [
    ("native_frames", fuzz::native_frames),
    ("message_roundtrip", fuzz::message_roundtrip),
    ("session", |d| fuzz::session(d, Instant::now())),
    ("transfer_pair", |d| fuzz::transfer_pair(d, Instant::now())),
    ("ws_frames", |d| fuzz::ws_frames(d, Instant::now())),
    ("http_handshake", fuzz::http_handshake),
    ("json", |d| fuzz::json(d, Instant::now())),
    ("hub", |d| fuzz::hub(d, Instant::now())),
    ("node_message", |d| fuzz::node_message(d, Instant::now())),
];

#[test]
fn past_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for (name, body) in BODIES {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            body(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    // The folder exists in the repo; an empty replay would mean the path broke.
    assert!(root.is_dir(), "missing {}", root.display());
    eprintln!("replayed {replayed} past findings");
}

#[test]
fn bodies_survive_random_inputs() {
    let mut rng = Rng::new(0x7d6);
    for (name, body) in BODIES {
        for round in 0..2000 {
            let len = rng.below(if round % 10 == 0 { 4096 } else { 256 }) as usize;
            let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            body(&input);
        }
        eprintln!("{name}: 2000 random inputs");
    }
}
