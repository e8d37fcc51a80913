//! `pentaflow`: the binary. It only parses the command line and wires the parts together —
//! configuration, the proxy data plane, the admin API — so every feature lives in a crate named
//! after it (see the workspace README).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pentaflow: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
