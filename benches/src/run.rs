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

/// A participant running in the background with stdout/stderr going to files; reaped on drop.
#[derive(Debug)]
pub struct Background {
    child: Option<std::process::Child>,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Background {
    /// Spawns `argv` with output to `dir/tag.{out,err}`.
    pub fn spawn(argv: &[String], dir: &std::path::Path, tag: &str) -> io::Result<Background> {
        let out = dir.join(format!("{tag}.out"));
        let err = dir.join(format!("{tag}.err"));
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", argv[0])))?;
        Ok(Background { child: Some(child), out, err })
    }

    /// Process id (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Whether it has exited already.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Sends `sig`, waits up to `grace`, then SIGKILL; returns (stdout, stderr, exit code).
    pub fn stop(mut self, sig: i32, grace: Duration) -> (String, String, Option<i32>) {
        let mut code = None;
        if let Some(mut c) = self.child.take() {
            let _ = nic::sys::kill(c.id(), sig);
            let t0 = Instant::now();
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    code = st.code();
                    break;
                }
                if t0.elapsed() > grace {
                    let _ = c.kill();
                    code = c.wait().ok().and_then(|s| s.code());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (self.stdout(), std::fs::read_to_string(&self.err).unwrap_or_default(), code)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Busy jiffies and total jiffies per CPU from /proc/stat.
pub fn cpu_times() -> Vec<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(|b| b.is_ascii_digit()))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            let total: u64 = v.iter().take(8).sum();
            (total - idle, total)
        })
        .collect()
}

/// Busy share per CPU between two `cpu_times` snapshots.
pub fn cpu_busy(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let t = y.1.saturating_sub(x.1) as f64;
            if t > 0.0 {
                y.0.saturating_sub(x.0) as f64 / t
            } else {
                0.0
            }
        })
        .collect()
}

/// Installs the Debian packages among `pkgs` that are missing (the harness runs as root on a
/// Debian machine; the peers come from Debian: dpdk-dev, librte-net-af-xdp23, netsniff-ng, …).
pub fn ensure_packages(pkgs: &[&str]) -> io::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("e2e: installing {}", missing.join(" "));
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let st = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("apt-get install {} failed", missing.join(" "))))
    }
}
