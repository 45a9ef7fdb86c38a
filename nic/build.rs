//! Build script of `nic`: compiles the XDP program `bpf/xskd.bpf.c` with clang into
//! `$OUT_DIR/xskd.bpf.o`, which `src/xdp.rs` embeds with `include_bytes!`.
//!
//! Needs `clang` (or the compiler named by `$CLANG`) and Debian's `libbpf-dev` for
//! `<bpf/bpf_helpers.h>`; `<linux/bpf.h>` needs the multiarch include directory for `<asm/types.h>`,
//! which `clang -target bpf` does not search by itself.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SRC: &str = "bpf/xskd.bpf.c";
const HINT: &str = "install the BPF toolchain with `apt-get install clang libbpf-dev` \
                    (or point $CLANG at a clang that supports -target bpf)";

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let out = out_dir.join("xskd.bpf.o");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => panic!(
            "nic/build.rs: no Debian multiarch include directory known for target arch `{other}`; \
             add it to the match in nic/build.rs"
        ),
    };
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join(SRC);

    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg(format!("-I/usr/include/{multiarch}"))
        .output();
    match output {
        Err(e) => panic!("nic/build.rs: could not run `{clang}` to compile {SRC}: {e}; {HINT}"),
        Ok(o) if !o.status.success() => panic!(
            "nic/build.rs: `{clang}` failed to compile {SRC} ({}):\n{}\n{HINT}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(o) => {
            // Compiler warnings would be invisible otherwise (cargo hides build-script output).
            for line in String::from_utf8_lossy(&o.stderr).lines() {
                println!("cargo:warning={line}");
            }
        }
    }
}
