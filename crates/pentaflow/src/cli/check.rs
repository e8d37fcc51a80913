//! `pentaflow check`: validate a configuration without starting anything.

use std::path::Path;
use std::process::ExitCode;

/// Loads and validates `path`; prints every problem (file:line: key: what) on failure.
pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    match pentaflow_config::load(path) {
        Ok(config) => {
            let backends: usize = config.services.iter().map(|s| s.backends.len()).sum();
            println!(
                "{}: ok ({} service(s), {} back-end(s))",
                path.display(),
                config.services.len(),
                backends
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
