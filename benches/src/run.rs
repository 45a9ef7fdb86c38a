//! Running benchmark participants as child processes: pinned, time-bounded (SIGINT at the
//! deadline, SIGKILL a little later), output captured, and reaped on every path.

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Output of a bounded run.
#[derive(Debug, Clone)]
pub struct Ran {
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `argv` for at most `limit`: SIGINT at the limit (peers print final stats on SIGINT),
/// SIGKILL 5 s later. stdin is /dev/null.
pub fn bounded(argv: &[String], limit: Duration) -> io::Result<Ran> {
    let t0 = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", argv[0])))?;
    let pid = child.id();
    let out_h = child.stdout.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut b = String::new();
            let _ = io::Read::read_to_string(&mut s, &mut b);
            b
        })
    });
    let err_h = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut b = String::new();
            let _ = io::Read::read_to_string(&mut s, &mut b);
            b
        })
    });
    let mut signalled = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let el = t0.elapsed();
        if el >= limit && !signalled {
            let _ = nic::sys::kill(pid, libc::SIGINT);
            signalled = true;
        }
        if el >= limit + Duration::from_secs(5) {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_h.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err_h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Ran { stdout, stderr, code: status.code(), elapsed: t0.elapsed() })
}

/// Whether a program is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file())).unwrap_or(false)
}

/// Number of online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
