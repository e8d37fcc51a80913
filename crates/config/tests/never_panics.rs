//! `parse` never panics: not on arbitrary text, not on mutations of the example.

use pentaflow_config::{example, parse, tls_example, Source};
use proptest::prelude::*;

fn label() -> Source {
    Source::Inline("prop".into())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text, label());
    }

    #[test]
    fn arbitrary_toml_shaped_text_never_panics(text in "[\\[\\]a-z_.= \"0-9:\n#,{}-]{0,200}") {
        let _ = parse(&text, label());
    }

    /// Replace a byte range of an example with arbitrary text: hits every key and table.
    #[test]
    fn mutated_example_never_panics(
        tls in any::<bool>(),
        at in 0usize..4000,
        cut in 0usize..40,
        insert in "[\\PC\n]{0,12}",
    ) {
        let ex = if tls { tls_example() } else { example() };
        let mut start = at.min(ex.len());
        while !ex.is_char_boundary(start) { start -= 1; }
        let mut end = (start + cut).min(ex.len());
        while !ex.is_char_boundary(end) { end -= 1; }
        let text = format!("{}{}{}", &ex[..start], insert, &ex[end..]);
        if let Err(err) = parse(&text, label()) {
            // Every error renders, and every validation problem points inside the text.
            let _ = err.to_string();
            let lines = text.lines().count().max(1) + 1;
            for p in err.problems() {
                prop_assert!(p.line >= 1 && p.line <= lines, "{p:?}");
            }
        }
    }

    /// Replace one value (after an `=`) with another value-like token.
    #[test]
    fn example_with_one_value_swapped_never_panics(
        tls in any::<bool>(),
        which in 0usize..80,
        value in prop_oneof![
            Just("0".to_owned()), Just("-1".to_owned()), Just("99999999999".to_owned()),
            Just("\"\"".to_owned()), Just("\"0s\"".to_owned()), Just("true".to_owned()),
            Just("[]".to_owned()), Just("{}".to_owned()), Just("1.5".to_owned()),
            "\"[ -~]{0,10}\"",
        ],
    ) {
        let ex = if tls { tls_example() } else { example() };
        let mut n = 0;
        let text: String = ex
            .lines()
            .map(|line| match line.split_once('=') {
                Some((k, _)) if !line.trim_start().starts_with('#') => {
                    n += 1;
                    if n == which { format!("{k}= {value}") } else { line.to_owned() }
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let _ = parse(&text, label());
    }
}
