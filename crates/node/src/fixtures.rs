//! Configurations the unit tests of this crate share.

use pentaflow_config::ArrayConfig;

/// The `[array]` of `tests/fixtures/two-node-array.toml` (the shape `pentaflow lab up` writes).
pub(crate) fn two_node_array() -> ArrayConfig {
    let text = two_node_text();
    let source = pentaflow_config::Source::Inline("two-node array".into());
    pentaflow_config::parse(text, source)
        .ok()
        .and_then(|c| c.array)
        .unwrap_or_else(|| panic!("{text}"))
}

/// Its text.
pub(crate) fn two_node_text() -> &'static str {
    include_str!("../tests/fixtures/two-node-array.toml")
}
