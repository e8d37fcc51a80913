//! What the validation tests expect of a refused text: its problems, and exactly one at a given
//! line and key. Shared by every test module under `validate` (tests only).

use crate::{parse, ConfigError, Problem, Source};

/// Every problem of `text`, which must be well-formed TOML but invalid.
pub(super) fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Source::Inline("test".into())) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}\n--- text:\n{text}"),
    }
}

/// 1-based line where the first occurrence of `needle` (which may span lines) starts.
#[track_caller]
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    text[..at].matches('\n').count() + 1
}

/// `text` has exactly one problem, on the line where `needle` starts, at `key`, whose message
/// contains `says`.
#[track_caller]
pub(super) fn only_problem(text: &str, needle: &str, key: &str, says: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let p = &found[0];
    assert_eq!(
        (p.key.as_str(), p.line),
        (key, line_of(text, needle)),
        "{p:?}"
    );
    assert!(p.message.contains(says), "{:?} lacks {says:?}", p.message);
}
