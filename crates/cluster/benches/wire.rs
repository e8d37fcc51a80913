//! Placeholder until the wire bench is written.
fn main() {}
