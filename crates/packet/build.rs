//! Compiles the XDP scheduler (`bpf/scheduler.bpf.c`) for the BPF target with clang, into
//! `$OUT_DIR/scheduler.bpf.o`, which `src/xdp.rs` embeds.
//!
//! Why C and clang rather than Rust: the BPF side in Rust (aya-ebpf) needs a nightly
//! toolchain and a bpf-linker matching rustc's LLVM, neither of which this project relies on;
//! Debian's clang compiles the program on the stable toolchain's machines. A missing clang or
//! missing libbpf headers stop the build with the Debian package to install (`scripts/install-deps`
//! installs both); `PENTAFLOW_CLANG` names another clang.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The libbpf header every BPF program includes (`SEC`, map definitions, helpers).
const BPF_HELPERS: &str = "/usr/include/bpf/bpf_helpers.h";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let src = manifest.join("bpf/scheduler.bpf.c");
    let header = manifest.join("bpf/scheduler.h");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=PENTAFLOW_CLANG");

    let clang = env::var("PENTAFLOW_CLANG").unwrap_or_else(|_| "clang".to_owned());
    if !Path::new(BPF_HELPERS).exists() {
        fail(&format!(
            "{BPF_HELPERS} not found: the XDP scheduler needs libbpf's headers \
             (Debian: `apt-get install libbpf-dev`, or run scripts/install-deps)"
        ));
    }
    // <linux/types.h> includes <asm/types.h>, which Debian keeps under the multiarch triplet.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    let multiarch = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    let object = out_dir.join("scheduler.bpf.o");
    let output = Command::new(&clang)
        .args([
            "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-mcpu=v3",
        ])
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&object)
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{clang}` not found: the XDP scheduler is compiled with clang for the BPF target \
             (Debian: `apt-get install clang llvm libbpf-dev`, or run scripts/install-deps)"
        )),
        Err(e) => fail(&format!("could not run `{clang}`: {e}")),
        Ok(out) if !out.status.success() => fail(&format!(
            "`{clang}` failed to compile {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Ok(_) => {}
    }
}

/// Stops the build with `message` (cargo shows a build script's stderr on failure).
fn fail(message: &str) -> ! {
    eprintln!("error: pentaflow-packet: {message}");
    std::process::exit(1);
}
