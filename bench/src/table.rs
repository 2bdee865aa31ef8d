//! The one table: rows, verdicts, and its text and Markdown forms.

use std::fmt::Write as _;

/// Whether a row met its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The target was met.
    Met,
    /// Measured, and the target was missed.
    Missed,
    /// Figures for context only; there is no target.
    Context,
    /// The row could not be measured, with the reason.
    NotMeasured(String),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The `--only` name.
    pub id: &'static str,
    /// What is compared.
    pub what: String,
    /// The tidings figure (median).
    pub tidings: String,
    /// The peer and its figure (median).
    pub peer: String,
    /// tidings ÷ peer, oriented so that more is better for tidings.
    pub ratio: Option<f64>,
    /// The target as text, e.g. `≥ 1.2×`.
    pub target: String,
    /// Met, missed …
    pub verdict: Verdict,
    /// How it was measured: repetitions, cores, every measurement.
    pub notes: String,
}

impl Row {
    /// A row that could not be measured.
    pub fn not_measured(id: &'static str, what: &str, target: &str, why: String) -> Row {
        Row {
            id,
            what: what.to_string(),
            tidings: "—".into(),
            peer: "—".into(),
            ratio: None,
            target: target.to_string(),
            verdict: Verdict::NotMeasured(why),
            notes: String::new(),
        }
    }

    fn verdict_text(&self) -> String {
        match &self.verdict {
            Verdict::Met => "met".into(),
            Verdict::Missed => format!("MISSING the target ({})", self.target),
            Verdict::Context => "context".into(),
            Verdict::NotMeasured(why) => format!("not measured: {why}"),
        }
    }

    fn ratio_text(&self) -> String {
        self.ratio
            .map(|r| format!("{r:.2}×"))
            .unwrap_or_else(|| "—".into())
    }
}

/// The verdict for a ratio where more is better.
pub fn at_least(ratio: f64, target: f64) -> Verdict {
    if ratio >= target {
        Verdict::Met
    } else {
        Verdict::Missed
    }
}

/// The table as Markdown (also what is printed: it reads fine as plain text).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| row | comparison | tidings | peer | ratio | target | verdict |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.what,
            r.tidings,
            r.peer,
            r.ratio_text(),
            r.target,
            r.verdict_text()
        );
    }
    s
}

/// The notes of every row, as a Markdown list.
pub fn notes(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        let _ = writeln!(s, "- **{}**: {}", r.id, r.notes);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_row_says_so_with_its_target() {
        let row = Row {
            id: "x",
            what: "w".into(),
            tidings: "1".into(),
            peer: "2".into(),
            ratio: Some(0.5),
            target: "≥ 1.0×".into(),
            verdict: at_least(0.5, 1.0),
            notes: "n".into(),
        };
        let md = markdown(&[row]);
        assert!(md.contains("| 0.50× |"), "{md}");
        assert!(md.contains("MISSING the target (≥ 1.0×)"), "{md}");
        assert_eq!(at_least(1.2, 1.2), Verdict::Met);
    }
}
