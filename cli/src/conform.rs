//! `tidings conform URL`: the conformance runner (tidings-conform) against any server. Only
//! arguments and output live here; the cases and their judgement are in `conform/`.

use std::time::Duration;

use tidings_conform::{Options, Report, Runner, Target};

use crate::exit::{io_reason, CliError, Exit};
use crate::out::Out;
use crate::safe::inline;
use crate::ConformArgs;

pub fn run(args: ConformArgs, out: &Out) -> Result<(), CliError> {
    let usage = |e: String| CliError::new(Exit::Usage, e);
    let target: Target = args.url.parse().map_err(usage)?;
    let options = Options {
        target,
        ca: args.ca,
        timeout: Duration::from_millis(args.timeout_ms),
        cases: args
            .cases
            .iter()
            .flat_map(|g| g.split(','))
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
        spawn: args.spawn,
        handshake_timeout: args.handshake_timeout_ms.map(Duration::from_millis),
        max_wait: Duration::from_millis(args.max_wait_ms),
    };
    let runner = Runner::new(options).map_err(usage)?;
    let report = runner.run(|result| {
        // Verdict lines are for people as they come; --json has one event per case.
        if out.is_json() {
            out.event("case", "", || result.json());
        } else {
            println!("{}", inline(&Report::line(result)));
        }
    });
    if out.is_json() {
        out.event(
            "summary",
            "",
            || serde_json::json!({"target": report.target, "summary": report.counts()}),
        );
    } else {
        println!("\n{}", inline(&report.summary()));
        print!("{}", report.transcripts());
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit()).map_err(|e| {
            CliError::new(
                Exit::File,
                format!("cannot write {}: {}", path.display(), io_reason(&e)),
            )
        })?;
    }
    match report.count(tidings_conform::Verdict::Failed) {
        0 => Ok(()),
        n => Err(CliError::new(
            Exit::Other,
            format!("{n} of {} cases FAILED", report.results.len()),
        )),
    }
}
