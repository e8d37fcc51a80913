//! `pentaflow check`: validate a configuration without starting anything.

use std::path::Path;
use std::process::ExitCode;

/// Loads and validates `path`; prints every problem (file:line: key: what) on failure.
pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    match pentaflow_config::load(path) {
        Ok(config) => {
            let backends: usize = config.services.iter().map(|s| s.backends.len()).sum();
            let array = match &config.array {
                Some(a) => format!("mode {}, {} node(s)", a.mode.as_str(), a.nodes.len()),
                None => "mode none: no [array]".to_owned(),
            };
            println!(
                "{}: ok ({} service(s), {} back-end(s)); {array}",
                path.display(),
                config.services.len(),
                backends
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            // The cause (e.g. the operating system's error for an unreadable file), if any.
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            Ok(ExitCode::from(2))
        }
    }
}
