//! `tidings-bench`: tidings against the programs and crates a user would pick instead, in
//! one command and one table.
//!
//! ```text
//! bench/install-peers                                  # socat, iperf3, mosquitto, nats-server
//! cargo run --release -p tidings-bench                 # every row; writes bench/RESULTS.md
//! cargo run --release -p tidings-bench -- --quick      # smaller, fewer repetitions
//! cargo run --release -p tidings-bench -- --only fanout
//! ```
//!
//! Servers run on CPU 0 and everything that loads them on CPU 1 (taskset). The load
//! generator is this binary started again as `tidings-bench load …`, so it never shares a
//! process with the server it measures.

mod load;
mod machine;
mod procs;
mod rows;
mod stats;
mod table;

use std::path::PathBuf;

use rows::servers::Ctx;

/// Where the hand-written part of RESULTS.md starts; everything from it on is kept.
const HAND_WRITTEN: &str = "<!-- Written by hand from here on; tidings-bench keeps it. -->";

const USAGE: &str = "usage: tidings-bench [--quick] [--only ROW[,ROW…]] [--out FILE]
rows: relay, decode, ws-decode, fanout-nats, fanout, latency-nats, latency, idle,
      idle-tls, ws-broadcast, ws-broadcast-tls, logins
A full run (no --only, no --quick) writes bench/RESULTS.md unless --out says otherwise.";

struct Options {
    quick: bool,
    only: Vec<String>,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        only: Vec::new(),
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--only" => o.only.extend(
                it.next()
                    .ok_or("--only needs a row name")?
                    .split(',')
                    .map(str::to_string),
            ),
            "--out" => o.out = Some(it.next().ok_or("--out needs a file")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    for name in &o.only {
        if !rows::GROUPS.iter().any(|(n, _)| n == name) {
            return Err(format!("no row {name:?}\n{USAGE}"));
        }
    }
    if o.out.is_none() && o.only.is_empty() && !o.quick {
        o.out = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md"));
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ws-server") {
        let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let tls = match (args.get(2), args.get(3)) {
            (Some(cert), Some(key)) => Some((cert.as_str(), key.as_str())),
            _ => None,
        };
        if let Err(e) = rows::ws_server::main(port, tls) {
            eprintln!("tidings-bench ws-server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("load") {
        if let Err(e) = load::main(&args[1..]) {
            eprintln!("tidings-bench load: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(opts) {
        eprintln!("tidings-bench: {e}");
        std::process::exit(1);
    }
}

fn run(opts: Options) -> Result<(), String> {
    for program in ["taskset", "socat", "iperf3", "mosquitto", "nats-server"] {
        if !procs::have(program) {
            return Err(format!("{program} is missing: run bench/install-peers"));
        }
    }
    let fds = procs::raise_fd_limit();
    let tmp = std::env::temp_dir().join(format!("tidings-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let ctx = Ctx {
        tidings: procs::tidings_bin()?,
        me: procs::self_exe()?,
        tmp: tmp.clone(),
        quick: opts.quick,
    };
    let started = machine::now_utc();
    let load_before = machine::load_average();
    let mut all = Vec::new();
    for (name, group) in rows::GROUPS {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("tidings-bench: {name} …");
        let began = std::time::Instant::now();
        let rows = group(&ctx);
        eprintln!(
            "tidings-bench: {name} took {:.0} s",
            began.elapsed().as_secs_f64()
        );
        for r in &rows {
            eprint!(
                "{}",
                table::markdown(std::slice::from_ref(r))
                    .lines()
                    .nth(2)
                    .unwrap_or("")
            );
            eprintln!();
        }
        all.extend(rows);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let load_after = machine::load_average();
    let md = table::markdown(&all);
    println!("{md}");
    if let Some(out) = opts.out {
        let mut cmdline = String::from("cargo run --release -p tidings-bench");
        if opts.quick {
            cmdline.push_str(" -- --quick");
        }
        let doc = format!(
            "# tidings against its peers\n\n\
             Produced by `{cmdline}` (after `bench/install-peers`), started {started}.\n\n\
             Machine: {}. Open-file limit raised to {fds}. Load average (1, 5, 15 min) \
             {load_before} at the start and {load_after} at the end: the machine is shared \
             with other jobs, which widens tails (p99) most.\n\n\
             Peers: {}; crates tokio-util 0.7 (LengthDelimitedCodec), tungstenite 0.24, \
             tokio-tungstenite 0.26 (a broadcast server in this crate, `tidings-bench ws-server`).\n\n\
             Cores: every server (tidings serve, mosquitto, the iperf3 server) is pinned \
             to CPU 0 with taskset; every load generator and client to CPU 1; the in-memory \
             decode rows run in the bench process on CPU 1. The file relay rows pin nothing \
             (relay, sender and receiver share both cores; see their notes). The load generator is this bench binary in another process \
             (`tidings-bench load …`), the same code for both sides of a row. Only \
             127.0.0.1, on free ports. Each figure is the median of the repetitions named \
             in the notes, the two sides alternated (A, B, A, B …). Ratios are oriented so \
             that more is better for tidings.\n\n\
             {md}\n## How each row was measured\n\n{}\n\
             Reproduce one row: `cargo run --release -p tidings-bench -- --only ROW` \
             (`--quick` for a fast, smaller run).\n",
            machine::describe(),
            machine::peers(),
            table::notes(&all)
        );
        // The analysis written by hand (profiles, what each optimisation bought) follows a
        // marker and survives a new run.
        let kept = std::fs::read_to_string(&out)
            .ok()
            .and_then(|old| old.find(HAND_WRITTEN).map(|i| old[i..].to_string()))
            .unwrap_or_default();
        let doc = if kept.is_empty() {
            doc
        } else {
            format!(
                "{doc}
{kept}"
            )
        };
        std::fs::write(&out, doc).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("tidings-bench: wrote {}", out.display());
    }
    Ok(())
}
