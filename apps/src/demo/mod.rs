//! `xskd demo`: an app on a throw-away topology of veth pairs in network namespaces, driven by
//! stock clients, end to end, in one command: it builds the topology, runs `xskd run` on a
//! generated config (the path a user takes), checks what arrived, prints figures and PASS or
//! FAIL, and tears everything down — also on failure (guards own the child and the topology).
//!
//! * [`relay`]: `--app relay` (the default): kernel UDP both ways through a mac-mode relay.
//! * [`l4lb`]: `--app l4lb`: clients → VIP → three backends through the NAT load balancer.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

pub mod l4lb;
pub mod relay;

pub use relay::demo_config;

/// `xskd demo` options.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Ethernet frame size in bytes, without FCS (60..=1514).
    #[arg(long, default_value_t = 60)]
    pub size: usize,
    /// Datagrams per second per direction (0: as fast as the kernel sends).
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Relay mode used in the DUT (mac, or macswap/io to see the kernel drop misaddressed frames).
    #[arg(long, default_value = "mac")]
    pub mode: String,
    /// XDP attach mode: native | generic | auto.
    #[arg(long, default_value = "auto")]
    pub xdp_mode: String,
    /// UMEM pages: 2M | 1G | none.
    #[arg(long, default_value = "2M")]
    pub hugepages: String,
    /// CPU for the engine's lcore (default: the last CPU).
    #[arg(long)]
    pub lcore: Option<usize>,
    /// Path of the xskd binary to run in the DUT (default: this executable).
    #[arg(long)]
    pub xskd: Option<PathBuf>,
    /// Which app to demonstrate: relay | l4lb.
    #[arg(long, default_value = "relay")]
    pub app: String,
}

/// Runs the demo of `--app`; `Ok(true)` on PASS.
pub fn run(a: &DemoArgs) -> Result<bool> {
    match a.app.as_str() {
        "relay" => relay::run(a),
        "l4lb" => l4lb::run(a),
        other => bail!("no demo for app '{other}' (relay, l4lb)"),
    }
}

pub(crate) fn ncpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// An `xskd run` child in a network namespace, started on a config and waited for until it is
/// ready; killed and reaped on drop if it was not stopped (a failing demo or test leaves
/// nothing running). The one place demos, tests and benchmarks start and stop the engine.
#[derive(Debug)]
pub struct EngineChild {
    child: Option<Child>,
    /// The JSON report the run writes when it ends.
    pub json: PathBuf,
}

impl EngineChild {
    /// Starts `exe run --config CONFIG --json JSON --ready-file READY ARGS…` in `ns` and waits
    /// up to `timeout` for the ready file.
    pub fn start(
        ns: &nic::netns::Netns,
        exe: &Path,
        config: &Path,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<EngineChild> {
        let json = dir.join("report.json");
        let ready = dir.join("ready");
        let _ = std::fs::remove_file(&ready);
        let s = |p: &Path| p.to_string_lossy().to_string();
        let (exe, config, json_s, ready_s) = (s(exe), s(config), s(&json), s(&ready));
        let mut argv = vec![exe.as_str(), "run", "--config", &config, "--json", &json_s, "--ready-file", &ready_s];
        argv.extend_from_slice(args);
        let child = ns.spawn(&argv).context("starting xskd run")?;
        let mut e = EngineChild { child: Some(child), json };
        let t0 = Instant::now();
        while !ready.exists() {
            if let Some(st) = e.child.as_mut().expect("running").try_wait()? {
                e.child = None;
                bail!("xskd exited before it was ready ({st})");
            }
            if t0.elapsed() > timeout {
                bail!("xskd was not ready after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(e)
    }

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, then waits up to `timeout` for it to exit; returns its exit status and its JSON
    /// report (after a clean exit).
    pub fn stop(&mut self, timeout: Duration) -> Result<(std::process::ExitStatus, Option<serde_json::Value>)> {
        let mut c = self.child.take().ok_or_else(|| anyhow::anyhow!("xskd is not running"))?;
        nic::sys::kill(c.id(), libc::SIGTERM).context("stopping xskd")?;
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = c.try_wait()? {
                break st;
            }
            if t0.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                bail!("xskd did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let report = std::fs::read_to_string(&self.json).ok().and_then(|t| serde_json::from_str(&t).ok());
        Ok((st, report))
    }

    /// SIGKILL (no cleanup by xskd), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nic::sys::kill(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for EngineChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes a scratch directory on drop.
pub(crate) struct DirGuard(pub(crate) PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
