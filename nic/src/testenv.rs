//! Whether a test that needs root or an external tool runs, is skipped, or fails: one mechanism
//! for the root tests of every crate of the workspace.
//!
//! Owns: the list of tests skipped by this process, and its report at exit.
//!
//! Guarantees:
//! * [`require_root`] / [`require_tool`] return `true` when the test can run. When it cannot:
//!   - with `XSKD_REQUIRE_ROOT=1` in the environment (`.ci/run` sets it) they **panic**, naming
//!     the test and what is missing, so the test fails instead of passing silently;
//!   - otherwise they print `SKIPPED (needs root): <test>` (or `(needs <tool>)`), record the
//!     test, and return `false` (the test returns early).
//! * A process that skipped anything prints, when it exits (after libtest's own
//!   `test result:` line, so a plain `cargo test` shows it), how many of its tests were skipped
//!   and which, plus the running total over every test binary of the same `cargo test`
//!   invocation. The total is kept in a file in the temporary directory keyed by the parent
//!   process (cargo) id and start time, one line per skipped test.
//! * [`require_root!`](crate::require_root) / [`require_tool!`](crate::require_tool) do the
//!   same with the calling function's path as the test name, and return from it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_ENV: &str = "XSKD_REQUIRE_ROOT";

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();
/// A skip could not be appended to the run file (the run total would be short).
static UNRECORDED: AtomicBool = AtomicBool::new(false);

/// Whether the effective user is root (what namespaces, XDP and AF_XDP need here).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `tool` is an executable file in one of the `PATH` directories.
pub fn have_tool(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .any(|p| std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether skips must fail (`XSKD_REQUIRE_ROOT=1`).
pub fn skips_fail() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// `true` when `test` can run as root; otherwise skips or fails it (see the module docs).
pub fn require_root(test: &str) -> bool {
    is_root() || skip(test, "root")
}

/// `true` when `tool` is in `PATH`; otherwise skips or fails `test` (see the module docs).
pub fn require_tool(test: &str, tool: &str) -> bool {
    have_tool(tool) || skip(test, tool)
}

fn skip(test: &str, what: &str) -> bool {
    if skips_fail() {
        panic!("{test}: needs {what}, and {REQUIRE_ENV}=1 forbids skipping it (run as root with {what} installed)");
    }
    let line = format!("SKIPPED (needs {what}): {test}");
    eprintln!("{line}");
    let recorded = run_file().is_some_and(|path| {
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{line}")).is_ok()
    });
    if !recorded {
        UNRECORDED.store(true, Ordering::Relaxed);
    }
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    // SAFETY: `report_at_exit` is an `extern "C" fn()` that does not unwind (it catches
    // nothing that can panic: it only formats and writes); atexit only stores the pointer.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(report_at_exit);
    });
    false
}

/// The file where every test binary of one `cargo test` run appends its skips:
/// `$TMPDIR/xskd-skipped-<cargo pid>-<cargo start time>`.
fn run_file() -> Option<std::path::PathBuf> {
    let ppid = std::os::unix::process::parent_id();
    let stat = std::fs::read_to_string(format!("/proc/{ppid}/stat")).ok()?;
    // Field 22 (start time) counted after the command name, which may contain spaces.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.to_string();
    Some(std::env::temp_dir().join(format!("xskd-skipped-{ppid}-{start}")))
}

/// Lines recorded in this `cargo test` run so far (all binaries).
pub fn skipped_in_run() -> usize {
    run_file().and_then(|p| std::fs::read_to_string(p).ok()).map_or(0, |s| s.lines().count())
}

extern "C" fn report_at_exit() {
    let list = match SKIPPED.lock() {
        Ok(l) => l.clone(),
        Err(e) => e.into_inner().clone(),
    };
    if list.is_empty() {
        return;
    }
    let exe = std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut msg = format!(
        "\nxskd: {} test(s) of {} SKIPPED, not run (set {REQUIRE_ENV}=1 to make skips fail):\n",
        list.len(),
        exe.as_deref().unwrap_or("this binary")
    );
    for l in &list {
        msg.push_str("  ");
        msg.push_str(l);
        msg.push('\n');
    }
    match run_file() {
        Some(p) if !UNRECORDED.load(Ordering::Relaxed) => msg.push_str(&format!(
            "xskd: {} test(s) skipped so far in this cargo run (listed in {})\n\n",
            skipped_in_run(),
            p.display()
        )),
        _ => msg.push_str("xskd: could not record the skips for the run total (temporary directory not writable)\n\n"),
    }
    // Raw write: std's stderr machinery may already be torn down at exit.
    // SAFETY: the buffer is valid for its length; fd 2 stays open until the process ends.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// The path of the function this macro is used in (`crate::module::function`).
#[macro_export]
macro_rules! fn_path {
    () => {{
        fn here() {}
        let n = ::std::any::type_name_of_val(&here);
        &n[..n.len() - "::here".len()]
    }};
}

/// Returns from the calling test unless it runs as root (see [`testenv`](crate::testenv)).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::testenv::require_root($crate::fn_path!()) {
            return;
        }
    };
}

/// Returns from the calling test unless `tool` is in `PATH` (see [`testenv`](crate::testenv)).
#[macro_export]
macro_rules! require_tool {
    ($tool:expr) => {
        if !$crate::testenv::require_tool($crate::fn_path!(), $tool) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fn_path_names_the_calling_function() {
        assert_eq!(crate::fn_path!(), "nic::testenv::tests::fn_path_names_the_calling_function");
    }

    #[test]
    fn tools_are_found_in_path_only() {
        assert!(have_tool("sh"), "/bin/sh is on every machine");
        assert!(!have_tool("no-such-tool-xskd"));
    }
}
