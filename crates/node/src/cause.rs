//! An error with its whole `source()` chain on one line, for logs and status pages.
//!
//! `tracing`'s `%e` shows only the outermost message ("scheduler set-up"); the operator needs
//! the innermost too ("could not run `nft …`: is `nft` installed? …"). Must not: allocate per
//! frame or be used on the data path.

use std::error::Error;

/// `outer: inner: innermost`, each message once (a wrapper that already repeats its
/// source's text is not repeated).
#[must_use]
pub fn cause_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("scheduler set-up")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("could not run `nft -f -`: is `nft` installed?")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Outer(Inner(io));
        assert_eq!(
            cause_chain(&e),
            "scheduler set-up: could not run `nft -f -`: is `nft` installed?: No such file or directory"
        );
    }
}
