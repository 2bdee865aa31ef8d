//! spec/CONFORMANCE.md and the runner's cases cannot drift apart: every case id the table
//! names is a case, every case is in the table, and the table's list of DECISIONS.md points
//! is the cases' own.

use std::collections::BTreeSet;

fn table() -> String {
    let path = format!("{}/../spec/CONFORMANCE.md", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `word` has the shape of a case id: a section number, `-`, a name.
fn is_case_id(word: &str) -> bool {
    let Some((section, name)) = word.split_once('-') else {
        return false;
    };
    !section.is_empty()
        && section
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// Every `code span` in `text` that looks like a case id.
fn case_ids(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| is_case_id(w))
        .map(String::from)
        .collect()
}

#[test]
fn every_case_is_in_the_table_and_every_id_in_the_table_is_a_case() {
    let named = case_ids(&table());
    let cases: BTreeSet<String> = tidings_conform::cases().map(|c| c.id.to_string()).collect();
    let missing: Vec<_> = cases.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&cases).collect();
    assert!(
        missing.is_empty(),
        "cases missing from spec/CONFORMANCE.md: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "ids in spec/CONFORMANCE.md that are no case: {unknown:?}"
    );
}

#[test]
fn the_decisions_table_lists_the_cases_that_pin_each_decision() {
    let text = table();
    let decisions = text
        .split("## The decisions of DECISIONS.md")
        .nth(1)
        .expect("the table of decisions");
    for point in 1..=8u8 {
        let row = decisions
            .lines()
            .find(|l| l.starts_with(&format!("| {point} |")))
            .unwrap_or_else(|| panic!("no row for decision {point}"));
        let listed = case_ids(row);
        let pinned: BTreeSet<String> = tidings_conform::cases()
            .filter(|c| c.decision == Some(point))
            .map(|c| c.id.to_string())
            .collect();
        assert!(!pinned.is_empty(), "decision {point} has no case");
        assert_eq!(listed, pinned, "decision {point}");
    }
}

#[test]
fn case_ids_are_unique_and_named_by_a_section() {
    let mut seen = BTreeSet::new();
    for case in tidings_conform::cases() {
        assert!(is_case_id(case.id), "{} is not SECTION-name", case.id);
        assert!(seen.insert(case.id), "{} twice", case.id);
    }
}
