//! The skip mechanism of `nic::testenv`, checked from outside: this binary re-runs itself with
//! one test that needs a tool nobody has, and one that needs root run as user `nobody`, each
//! once as a plain run (the test passes, and its stderr and the exit report say it was SKIPPED)
//! and once with `XSKD_REQUIRE_ROOT=1` (the test fails, naming what is missing).

use std::process::Command;

const CHILD_ENV: &str = "XSKD_TESTENV_CHILD";
const TOOL: &str = "no-such-tool-xskd";

#[test]
fn child_needs_a_missing_tool() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful when started by the tests below
    }
    nic::require_tool!(TOOL);
    panic!("ran although {TOOL} is missing");
}

#[test]
fn child_needs_root() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    nic::require_root!();
    assert!(nic::testenv::is_root());
}

/// Runs one child test in a fresh process (as `nobody` when `drop_root`); returns (success,
/// stdout and stderr).
fn run_child(test: &str, require: bool, drop_root: bool) -> (bool, String) {
    let tmp = std::env::temp_dir().join(format!("xskd-testenv-{}-{test}-{require}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    // Writable by `nobody` too, like /tmp.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).expect("chmod");
    let mut exe = std::env::current_exe().expect("exe");
    if drop_root {
        // `nobody` may not reach the build directory (a checkout under /root): run a copy.
        let copy = tmp.join("testenv-child");
        std::fs::copy(&exe, &copy).expect("copy the test binary");
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        exe = copy;
    }
    let mut cmd = if drop_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["--exact", test, "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("TMPDIR", &tmp)
        .env_remove(nic::testenv::REQUIRE_ENV);
    if require {
        cmd.env(nic::testenv::REQUIRE_ENV, "1");
    }
    let out = cmd.output().expect("run child");
    let _ = std::fs::remove_dir_all(&tmp);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn check(test: &str, what: &str, drop_root: bool) {
    let (ok, out) = run_child(test, false, drop_root);
    assert!(ok, "a plain run passes the skipped test:\n{out}");
    assert!(out.contains(&format!("SKIPPED (needs {what}): testenv::{test}")), "the skip is printed:\n{out}");
    assert!(out.contains("xskd: 1 test(s) of testenv"), "the exit report counts it:\n{out}");
    assert!(out.contains("xskd: 1 test(s) skipped so far in this cargo run"), "and the run total:\n{out}");

    let (ok, out) = run_child(test, true, drop_root);
    assert!(!ok, "XSKD_REQUIRE_ROOT=1 turns the skip into a failure:\n{out}");
    assert!(
        out.contains(&format!("testenv::{test}: needs {what}, and XSKD_REQUIRE_ROOT=1 forbids")),
        "the failure names the test and what is missing:\n{out}"
    );
}

#[test]
fn a_missing_tool_skips_loudly_and_fails_when_required() {
    check("child_needs_a_missing_tool", TOOL, false);
}

#[test]
fn no_root_skips_loudly_and_fails_when_required() {
    let drop_root = nic::testenv::is_root();
    if drop_root && !nic::testenv::require_tool(nic::fn_path!(), "setpriv") {
        return;
    }
    check("child_needs_root", "root", drop_root);
}
