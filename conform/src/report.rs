//! Verdicts in Autobahn's terms, and the report: text, JSON, JUnit XML.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

/// A case's verdict (the Autobahn testsuite's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The server kept every rule the case looks at.
    Ok,
    /// The server kept the MUSTs but not a SHOULD.
    NonStrict,
    /// The server broke a MUST (or the runner could not reach it).
    Failed,
    /// The server does not offer what the case needs.
    Unimplemented,
    /// The case reports what it saw without judging.
    Informational,
}

impl Verdict {
    /// The verdict as printed: `OK`, `NON-STRICT`, `FAILED`, `UNIMPLEMENTED`, `INFORMATIONAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Failed => "FAILED",
            Verdict::Unimplemented => "UNIMPLEMENTED",
            Verdict::Informational => "INFORMATIONAL",
        }
    }

    /// Every verdict, in the order the summary counts them.
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::NonStrict,
        Verdict::Failed,
        Verdict::Unimplemented,
        Verdict::Informational,
    ];
}

/// What one case came to.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's id (`4.3-frame-too-large`).
    pub id: &'static str,
    /// What the case checks.
    pub title: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for anything but OK.
    pub detail: String,
    /// How long it took.
    pub duration: Duration,
    /// Every byte sent and received, for a FAILED case (empty otherwise).
    pub transcript: Vec<String>,
}

impl CaseResult {
    /// The result as a JSON object: id, title, verdict, detail, duration, transcript.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict.as_str(),
            "detail": self.detail,
            "duration_ms": self.duration.as_millis() as u64,
            "transcript": self.transcript,
        })
    }
}

/// The results of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The server, as given.
    pub target: String,
    /// One per case run, in order.
    pub results: Vec<CaseResult>,
    /// Cases left out because the URL's carriage cannot run them, with why.
    pub not_run: Vec<(&'static str, &'static str)>,
}

impl Report {
    /// How many cases came to `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Whether any case FAILED: the run fails.
    pub fn failed(&self) -> bool {
        self.count(Verdict::Failed) > 0
    }

    /// `52 cases against URL: 50 OK, 1 NON-STRICT, …`, and the cases not run and why.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = Verdict::ALL
            .iter()
            .map(|v| format!("{} {}", self.count(*v), v.as_str()))
            .collect();
        let n = self.results.len();
        let cases = if n == 1 { "case" } else { "cases" };
        let mut s = format!("{n} {cases} against {}: {}", self.target, counts.join(", "));
        let mut why: Vec<&str> = self.not_run.iter().map(|(_, why)| *why).collect();
        why.sort_unstable();
        why.dedup();
        if !why.is_empty() {
            let _ = write!(s, "; {} not run ({})", self.not_run.len(), why.join("; "));
        }
        s
    }

    /// One line for `result`: id, verdict, detail.
    pub fn line(result: &CaseResult) -> String {
        let mut s = format!("{:<42} {:<13}", result.id, result.verdict.as_str());
        if !result.detail.is_empty() {
            let _ = write!(s, " {}", result.detail);
        }
        s.trim_end().to_string()
    }

    /// The whole report as text: a line per case, the summary, then the transcripts.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for r in &self.results {
            let _ = writeln!(s, "{}", Report::line(r));
        }
        let _ = writeln!(s, "\n{}", self.summary());
        s + &self.transcripts()
    }

    /// The transcript of every FAILED case, each under a heading that says why.
    pub fn transcripts(&self) -> String {
        let mut s = String::new();
        for r in self.results.iter().filter(|r| r.verdict == Verdict::Failed) {
            let _ = writeln!(s, "\n--- {} FAILED: {}", r.id, r.detail);
            for line in &r.transcript {
                let _ = writeln!(s, "    {line}");
            }
        }
        s
    }

    /// How many cases came to each verdict, as a JSON object.
    pub fn counts(&self) -> serde_json::Value {
        let counts: serde_json::Map<_, _> = Verdict::ALL
            .iter()
            .map(|v| (v.as_str().to_string(), json!(self.count(*v))))
            .collect();
        serde_json::Value::Object(counts)
    }

    /// The report as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let cases: Vec<_> = self.results.iter().map(CaseResult::json).collect();
        let not_run: Vec<_> = self
            .not_run
            .iter()
            .map(|(id, why)| json!({"id": id, "why": why}))
            .collect();
        json!({
            "target": self.target,
            "cases": cases,
            "summary": self.counts(),
            "not_run": not_run,
        })
    }

    /// The report as JUnit XML: FAILED is a failure (with the transcript), UNIMPLEMENTED
    /// skipped, NON-STRICT and INFORMATIONAL pass with their detail as output.
    pub fn junit(&self) -> String {
        let total: f64 = self.results.iter().map(|r| r.duration.as_secs_f64()).sum();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuite name=\"tidings-conform\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{total:.3}\">",
            self.results.len(),
            self.count(Verdict::Failed),
            self.count(Verdict::Unimplemented)
        );
        let _ = writeln!(
            s,
            "  <properties><property name=\"target\" value=\"{}\"/></properties>",
            xml(&self.target)
        );
        for r in &self.results {
            let section = r.id.split('-').next().unwrap_or(r.id);
            let _ = write!(
                s,
                "  <testcase classname=\"spec.{}\" name=\"{}\" time=\"{:.3}\">",
                xml(section),
                xml(r.id),
                r.duration.as_secs_f64()
            );
            match r.verdict {
                Verdict::Ok => {}
                Verdict::Failed => {
                    let _ = write!(
                        s,
                        "\n    <failure message=\"{}\">{}</failure>\n  ",
                        xml(&r.detail),
                        xml(&r.transcript.join("\n"))
                    );
                }
                Verdict::Unimplemented => {
                    let _ = write!(s, "\n    <skipped message=\"{}\"/>\n  ", xml(&r.detail));
                }
                Verdict::NonStrict | Verdict::Informational => {
                    let _ = write!(
                        s,
                        "\n    <system-out>{}: {}</system-out>\n  ",
                        r.verdict.as_str(),
                        xml(&r.detail)
                    );
                }
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("</testsuite>\n");
        s
    }
}

/// `text` escaped for XML text and attributes; characters XML 1.0 cannot hold are escaped
/// as `\u{…}` (a server's text is hostile input).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_control_characters() {
        assert_eq!(xml("a<b>&\"\u{1b}"), "a&lt;b&gt;&amp;&quot;\\u{1b}");
    }
}
