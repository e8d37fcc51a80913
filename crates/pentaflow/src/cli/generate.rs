//! `pentaflow generate --out DIR` (hidden): the man pages and shell completions, generated
//! from the clap definitions of [`super::Cli`] so they never drift from `--help`. The Debian
//! package build (`scripts/build-deb`) runs it.
//!
//! Owns: file names and the list of shells. Must not: hand-write any text of its own.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

/// Writes `pentaflow.1` and one `pentaflow-VERB.1` per command, and the bash, zsh and fish
/// completions (`pentaflow.bash`, `_pentaflow`, `pentaflow.fish`), into `out`.
pub(crate) fn run(out: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let command = super::Cli::command();
    clap_mangen::generate_to(command.clone(), out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, "pentaflow", out).with_context(|| {
            format!(
                "cannot write the {shell} completions into {}",
                out.display()
            )
        })?;
    }
    Ok(ExitCode::SUCCESS)
}
