//! `pentaflow`: the binary. It only parses the command line and wires the parts together —
//! configuration, the proxy data plane, the admin API — so every feature lives in a crate named
//! after it (see the workspace README).

mod cli;

/// mimalloc instead of glibc malloc: a proxy allocates and frees many small, short-lived
/// buffers (headers, bodies, futures) per request, where glibc's malloc showed up at ~5% of a
/// profile under load; mimalloc's thread-local free lists make those cheap. Measured in
/// BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
