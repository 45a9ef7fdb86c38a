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

use anyhow::{bail, Result};
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

/// Kills and reaps the engine if the demo bails out early.
pub(crate) struct ChildGuard(pub(crate) Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn ncpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub(crate) fn wait_ready(ready: &Path, child: &mut Child, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if ready.exists() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("xskd exited before it was ready ({st})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("xskd was not ready after {timeout:?}")
}

/// Removes a scratch directory on drop.
pub(crate) struct DirGuard(pub(crate) PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
