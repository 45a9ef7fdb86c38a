//! Build script of `nic`: compiles the XDP programs `bpf/xskd.bpf.c` (the engine's steering
//! program) and `bpf/xskd_tools.bpf.c` (generator, sink and forwarder used by pktgen and the
//! benchmarks) with clang into `$OUT_DIR/*.bpf.o`, which `src/xdp.rs` and `src/xdp_tools.rs`
//! embed with `include_bytes!`.
//!
//! Needs `clang` (or the compiler named by `$CLANG`) and Debian's `libbpf-dev` for
//! `<bpf/bpf_helpers.h>`; `<linux/bpf.h>` needs the multiarch include directory for `<asm/types.h>`,
//! which `clang -target bpf` does not search by itself.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SRCS: &[&str] = &["xskd", "xskd_tools"];
const HINT: &str = "install the BPF toolchain with `apt-get install clang libbpf-dev` \
                    (or point $CLANG at a clang that supports -target bpf)";

fn main() {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
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
    for name in SRCS {
        compile(&clang, multiarch, &out_dir, name);
    }
}

fn compile(clang: &str, multiarch: &str, out_dir: &std::path::Path, name: &str) {
    let rel = format!("bpf/{name}.bpf.c");
    println!("cargo:rerun-if-changed={rel}");
    let out = out_dir.join(format!("{name}.bpf.o"));
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join(&rel);

    let output = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg(format!("-I/usr/include/{multiarch}"))
        .output();
    match output {
        Err(e) => panic!("nic/build.rs: could not run `{clang}` to compile {rel}: {e}; {HINT}"),
        Ok(o) if !o.status.success() => panic!(
            "nic/build.rs: `{clang}` failed to compile {rel} ({}):\n{}\n{HINT}",
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
