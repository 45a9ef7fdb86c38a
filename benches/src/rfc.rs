//! The RFC 2544-style tier: zero-loss throughput, forwarded rate at maximum offered load and
//! latency, for every device under test on the identical veth topology, with `xskd pktgen` as
//! the tester.
//!
//! ```text
//! tester [g0] ⇄ [d0] dut [d1] ⇄ [s0] tester
//!  CPU0: xskd pktgen (TX on g0, RX on s0: one process, one clock, so one-way latency is
//!        measured) and d0's receive work (a veth's receive runs on the sending core)
//!  CPU1: the DUT's forwarding core (xskd, testpmd), or its RPS/NAPI work (kernel, XDP)
//! ```
//!
//! Per (system, frame size): the DUT is started once; a trial at maximum offered load gives
//! the tester's ceiling and the forwarded rate there; a binary search (loss ≤ `max_loss`, one
//! trial of `trial_secs` per step) gives the zero-loss rate; trials at 10%, 50% and 90% of it
//! give latency. Loss is counted by the tester from sequence numbers (sent − received after a
//! linger), and the DUT is stopped and the topology torn down afterwards, also on error.
//!
//! The tester is copy-mode AF_XDP on veth (about 1 Mpps with d0's receive on the same core):
//! when a system forwards everything the tester can send, its zero-loss rate is reported as
//! tester-bound, not as the system's capacity. Tier 2 (live frames) shows the capacities.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nic::netns::{format_mac, End, Netns, VethConfig, VethPair};
use nic::xdp_tools::{AttachMode, XdpForward};
use serde::Serialize;

use crate::kernel::set_rps;
use crate::rfc2544::{zero_loss_search, SearchResult};
use crate::run::Background;
use crate::veth::{start_testpmd, start_xskd_run, strings, RelayDut};

/// A device under test of this tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum System {
    /// xskd relay, io mode.
    XskdIo,
    /// xskd relay, macswap mode.
    XskdMacswap,
    /// dpdk-testpmd (AF_XDP PMD), io.
    TestpmdIo,
    /// dpdk-testpmd (AF_XDP PMD), macswap.
    TestpmdMacswap,
    /// Kernel IPv4 forwarding, RPS steering d0's receive to the forwarding CPU.
    Kernel,
    /// In-kernel XDP redirect d0 → d1 (our own program), d0's NAPI in a kthread on the
    /// forwarding CPU.
    Xdp,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 6] =
        [System::XskdIo, System::XskdMacswap, System::TestpmdIo, System::TestpmdMacswap, System::Kernel, System::Xdp];

    /// Label for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            System::XskdIo => "xskd relay io",
            System::XskdMacswap => "xskd relay macswap",
            System::TestpmdIo => "dpdk-testpmd io",
            System::TestpmdMacswap => "dpdk-testpmd macswap",
            System::Kernel => "kernel forwarding (RPS)",
            System::Xdp => "XDP redirect (ceiling)",
        }
    }

    /// Parses a label key (`xskd-io`, `xskd-macswap`, `testpmd-io`, `testpmd-macswap`,
    /// `kernel`, `xdp`).
    pub fn parse(s: &str) -> Option<System> {
        Some(match s {
            "xskd-io" => System::XskdIo,
            "xskd-macswap" => System::XskdMacswap,
            "testpmd-io" => System::TestpmdIo,
            "testpmd-macswap" => System::TestpmdMacswap,
            "kernel" => System::Kernel,
            "xdp" => System::Xdp,
            _ => return None,
        })
    }
}

/// A frame size of this tier: fixed (no FCS) or IMIX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Size {
    /// Fixed frame length without FCS.
    Fixed(usize),
    /// 7:4:1 of 64/594/1518 on the wire.
    Imix,
}

impl Size {
    /// "64 B", "IMIX", ... (wire sizes, with FCS).
    pub fn label(self) -> String {
        match self {
            Size::Fixed(n) => format!("{} B", n + 4),
            Size::Imix => "IMIX".to_string(),
        }
    }

    /// Mean wire size (with FCS), for the x axis of plots.
    pub fn wire_bytes(self) -> usize {
        match self {
            Size::Fixed(n) => n + 4,
            Size::Imix => (7 * 64 + 4 * 594 + 1518) / 12,
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Size::Fixed(n) => vec!["--size".into(), n.to_string()],
            Size::Imix => vec!["--imix".into()],
        }
    }
}

/// Options of the tier.
#[derive(Debug, Clone)]
pub struct RfcOpts {
    /// Seconds per search/latency trial.
    pub trial_secs: f64,
    /// Seconds of the maximum-load trial.
    pub max_secs: f64,
    /// Loss allowed for "zero loss" (RFC 2544 says 0; 1e-4 = 0.01%).
    pub max_loss: f64,
    /// Trials per rate of the search and how many must pass.
    pub trials: crate::rfc2544::Trials,
    /// Search resolution as a fraction of the tester's maximum rate.
    pub resolution: f64,
    /// Tester CPU (also d0's receive).
    pub tester_cpu: usize,
    /// DUT forwarding CPU.
    pub fwd_cpu: usize,
    /// DUT main/control CPU.
    pub main_cpu: usize,
    /// Burst of both engines.
    pub burst: u32,
    /// Idle mode of the xskd DUT's lcore (`spin`, `poll`, `busy-poll`).
    pub xskd_idle: String,
    /// RX ring size of the AF_XDP DUTs' ports (None: each system's default, 2048): xskd's
    /// `rx_ring` (fill ring twice that), testpmd's `--rxd`/`--txd`.
    pub rx_ring: Option<u32>,
    /// The xskd binary.
    pub xskd: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
}

/// One tester run.
#[derive(Debug, Clone, Serialize)]
pub struct Shot {
    /// Offered rate asked for (None = maximum).
    pub rate_pps: Option<f64>,
    /// Frames sent.
    pub sent: u64,
    /// Frames received back.
    pub received: u64,
    /// Frames the DUT forwarded that the tester's own receiving socket dropped (its RX ring
    /// full; kernel `XDP_STATISTICS` of that socket). Not the DUT's loss.
    pub tester_drops: u64,
    /// Achieved offered rate.
    pub offered_pps: f64,
    /// Received frames per second of sending time.
    pub fwd_pps: f64,
    /// Loss ratio of the DUT: (sent − received − tester_drops) / sent.
    pub loss: f64,
    /// Latency summary from the tester (ns): p50, p90, p99, p99.9, max.
    pub latency: Option<serde_json::Value>,
    /// Latency CDF points (ns, fraction).
    pub latency_cdf: Vec<(u64, f64)>,
    /// The tester's receive counters as it reported them (`rx` of its JSON without the
    /// latency histogram): lost, reordered, duplicated, frames not its own…, to see where
    /// a trial's loss went.
    pub tester_rx: serde_json::Value,
}

/// Everything measured for one (system, size).
#[derive(Debug, Clone, Serialize)]
pub struct RfcResult {
    /// The system.
    pub system: System,
    /// Label.
    pub label: String,
    /// The size.
    pub size: Size,
    /// The maximum-load trial.
    pub max_load: Shot,
    /// The zero-loss search (its rates are the rates the tester was asked for).
    pub search: SearchResult,
    /// The zero-loss throughput: the median rate the tester actually offered in the passing
    /// trials at the search's best rate. On veth a DUT can push back on the tester (a full
    /// veth ring makes the tester's TX wait), so the tester may offer less than it was asked;
    /// RFC 2544 counts what was offered.
    pub zero_loss_pps: Option<f64>,
    /// Whether the zero-loss rate is the tester's ceiling (within the resolution).
    pub tester_bound: bool,
    /// Latency trials at 10%, 50%, 90% of the zero-loss rate.
    pub latency: Vec<(f64, Shot)>,
}

/// tester [g0, s0] and dut [d0, d1].
struct Tester {
    links: Vec<VethPair>,
    tester: Netns,
    dut: Netns,
    /// g0, d0, d1, s0.
    macs: [[u8; 6]; 4],
}

impl Tester {
    fn new() -> Result<Tester> {
        let tester = Netns::new("e2r-t")?;
        let dut = Netns::new("e2r-d")?;
        let cfg = |a: &str, b: &str| VethConfig {
            addr_a: Some(a.to_string()),
            addr_b: Some(b.to_string()),
            disable_ipv6: true,
            ..VethConfig::default()
        };
        let l1 = VethPair::new(&tester, "g0", &dut, "d0", &cfg("198.18.0.1/24", "198.18.0.2/24"))?;
        let l2 = VethPair::new(&dut, "d1", &tester, "s0", &cfg("198.19.0.2/24", "198.19.0.1/24"))?;
        let macs = [l1.mac(End::A)?, l1.mac(End::B)?, l2.mac(End::A)?, l2.mac(End::B)?];
        let neigh = |ip: &str, mac: [u8; 6], dev: &str| {
            dut.ip(&["neigh", "replace", ip, "lladdr", &format_mac(&mac), "dev", dev, "nud", "permanent"])
        };
        neigh("198.19.0.1", macs[3], "d1")?;
        neigh("198.18.0.1", macs[0], "d0")?;
        Ok(Tester { links: vec![l1, l2], tester, dut, macs })
    }
}

impl Drop for Tester {
    fn drop(&mut self) {
        self.links.clear();
    }
}

/// What keeps a DUT running; dropping it stops it.
struct Dut {
    proc: Option<Background>,
    _fwd: Option<XdpForward>,
}

impl Drop for Dut {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            let _ = p.stop(libc::SIGINT, Duration::from_secs(8));
        }
    }
}

fn start_dut(sys: System, t: &Tester, o: &RfcOpts, secs: f64) -> Result<Dut> {
    let ns = t.dut.name().to_string();
    match sys {
        System::XskdIo | System::XskdMacswap => {
            let mode = if sys == System::XskdIo { "io" } else { "macswap" };
            let cfg = RelayDut {
                mode,
                fwd: o.fwd_cpu,
                burst: o.burst,
                secs,
                sink_mac: t.macs[3],
                gen_mac: t.macs[0],
                idle: &o.xskd_idle,
                rx_ring: o.rx_ring,
            }
            .toml();
            let b = start_xskd_run(&o.xskd, &ns, o.main_cpu, &cfg, &o.dir, "rfc-xskd")?;
            Ok(Dut { proc: Some(b), _fwd: None })
        }
        System::TestpmdIo | System::TestpmdMacswap => {
            let mode = if sys == System::TestpmdIo { "io" } else { "macswap" };
            let b = start_testpmd(
                &ns,
                o.main_cpu,
                o.fwd_cpu,
                &["d0", "d1"],
                mode,
                o.burst,
                &o.rx_ring.map(|n| vec![format!("--rxd={n}"), format!("--txd={n}")]).unwrap_or_default(),
                &o.dir,
                "rfc-testpmd",
                || Ok(false),
            )?;
            Ok(Dut { proc: Some(b), _fwd: None })
        }
        System::Kernel => {
            t.dut.sysctl("net/ipv4/ip_forward", "1")?;
            for dev in ["all", "default", "d0", "d1"] {
                t.dut.sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
            }
            set_rps(&t.dut, "d0", 1u64 << o.fwd_cpu)?;
            Ok(Dut { proc: None, _fwd: None })
        }
        System::Xdp => {
            // d1 can transmit xdp_frames only while s0 runs XDP: the tester's receiver attaches
            // there when each trial starts, before it sends.
            let fwd = t
                .dut
                .run_in(|| XdpForward::attach("d0", "d1", AttachMode::Native).map_err(std::io::Error::other))
                .context("attaching the XDP forwarder d0 -> d1")?;
            crate::kernel::threaded_napi(&t.dut, "d0", o.fwd_cpu)?;
            Ok(Dut { proc: None, _fwd: Some(fwd) })
        }
    }
}

/// One tester run at `rate` (None = max) for `secs`.
fn shot(t: &Tester, o: &RfcOpts, size: Size, rate: Option<f64>, secs: f64) -> Result<Shot> {
    let mut argv = strings(&[
        "ip",
        "netns",
        "exec",
        t.tester.name(),
        &o.xskd.to_string_lossy(),
        "pktgen",
        "--iface",
        "g0",
        "--rx-iface",
        "s0",
        "--dst-mac",
        &format_mac(&t.macs[1]),
        "--duration",
        &format!("{secs:.2}"),
        "--lcore",
        &o.tester_cpu.to_string(),
        "--xdp-mode",
        "native",
        "--burst",
        &o.burst.to_string(),
        "--json",
    ]);
    argv.extend(size.args());
    if let Some(r) = rate {
        argv.push("--rate-pps".into());
        argv.push(format!("{r:.0}"));
    }
    let r = crate::run::bounded(&argv, Duration::from_secs_f64(secs + 20.0))?;
    if r.code != Some(0) {
        bail!("xskd pktgen failed ({:?}): {}", r.code, r.stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | "));
    }
    let v: serde_json::Value = serde_json::from_str(&r.stdout).with_context(|| format!("pktgen JSON: {}", r.stdout))?;
    let sent = v["tx_pkts"].as_u64().unwrap_or(0);
    let received = v["rx_pkts"].as_u64().unwrap_or(0);
    let tester_drops = v["rx_socket_drops"].as_u64().unwrap_or(0);
    let tx_secs = v["tx_secs"].as_f64().unwrap_or(secs);
    let cdf = v["latency_cdf"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| Some((p[0].as_u64()?, p[1].as_f64()?))).collect())
        .unwrap_or_default();
    Ok(Shot {
        rate_pps: rate,
        sent,
        received,
        tester_drops,
        offered_pps: sent as f64 / tx_secs,
        fwd_pps: (received + tester_drops) as f64 / tx_secs,
        loss: crate::rfc2544::loss(sent, received + tester_drops),
        latency: v["rx"].get("latency").cloned(),
        latency_cdf: cdf,
        tester_rx: match &v["rx"] {
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter().filter(|(k, _)| !k.starts_with("latency")).map(|(k, x)| (k.clone(), x.clone())).collect(),
            ),
            _ => serde_json::Value::Null,
        },
    })
}

/// Runs the whole measurement for one (system, size) on a fresh topology.
pub fn measure(sys: System, size: Size, o: &RfcOpts) -> Result<RfcResult> {
    let t = Tester::new().context("building the tester topology (needs root)")?;
    // Long enough for every trial; stopped when `dut` drops.
    let dut = start_dut(sys, &t, o, 3600.0)?;
    let max_load = shot(&t, o, size, None, o.max_secs)?;
    let hi = max_load.offered_pps;
    let res = (hi * o.resolution).max(1000.0);
    let mut offered = Vec::new();
    let search = zero_loss_search(hi * 0.05, hi, res, o.max_loss, o.trials, |rate| {
        let s = shot(&t, o, size, Some(rate), o.trial_secs)?;
        offered.push(s.offered_pps);
        Ok((s.sent, s.received + s.tester_drops))
    })?;
    let zero_loss_pps = achieved_at_best(&search, &offered);
    let best = search.best_pps.unwrap_or(0.0);
    let tester_bound = zero_loss_pps.unwrap_or(0.0) >= hi - 2.0 * res;
    let mut latency = Vec::new();
    if best > 0.0 {
        for f in [0.1, 0.5, 0.9] {
            latency.push((f, shot(&t, o, size, Some(best * f), o.trial_secs)?));
        }
    }
    drop(dut);
    Ok(RfcResult {
        system: sys,
        label: sys.label().to_string(),
        size,
        max_load,
        search,
        zero_loss_pps,
        tester_bound,
        latency,
    })
}

/// Median of the rates actually offered (`offered[i]` belongs to `search.steps[i]`) in the
/// passing trials at the search's best rate.
pub fn achieved_at_best(search: &SearchResult, offered: &[f64]) -> Option<f64> {
    let best = search.best_pps?;
    let v: Vec<f64> =
        search.steps.iter().zip(offered).filter(|(s, _)| s.pass && s.rate_pps == best).map(|(_, &o)| o).collect();
    (!v.is_empty()).then(|| crate::sample::median(&v))
}

/// Whether everything this tier runs is installed.
pub fn check_tools(systems: &[System]) -> Result<()> {
    if systems.iter().any(|s| matches!(s, System::TestpmdIo | System::TestpmdMacswap))
        && !crate::run::have("dpdk-testpmd")
    {
        bail!("dpdk-testpmd not found: apt-get install dpdk-dev librte-net-af-xdp23");
    }
    if !Path::new("/dev/hugepages").exists() {
        bail!("no hugetlbfs at /dev/hugepages: run ./hugepages.sh");
    }
    Ok(())
}

/// Trials at one fixed offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct LadderPoint {
    /// The system.
    pub system: System,
    /// The size.
    pub size: Size,
    /// Offered rate asked for (frames/s).
    pub rate_pps: f64,
    /// Every trial (sent, received, loss).
    pub shots: Vec<Shot>,
}

impl LadderPoint {
    /// Trials with loss ≤ `max_loss`.
    pub fn passes(&self, max_loss: f64) -> usize {
        self.shots.iter().filter(|s| s.loss <= max_loss).count()
    }
}

/// The loss ladder: for each rate, `n` trials of `o.trial_secs` on one DUT instance and a fresh
/// topology per (system, rate). Where the zero-loss search gives one number decided by a few
/// trials, this gives the fraction of trials that were loss-free at each rate, which separates
/// "the DUT cannot carry this rate" (every trial loses) from "an event outside the DUT spoiled
/// some trials" (a few lose).
pub fn ladder(sys: System, size: Size, rate: f64, n: usize, o: &RfcOpts) -> Result<LadderPoint> {
    let t = Tester::new().context("building the tester topology (needs root)")?;
    let dut = start_dut(sys, &t, o, 3600.0)?;
    let mut shots = Vec::with_capacity(n);
    for _ in 0..n {
        shots.push(shot(&t, o, size, Some(rate), o.trial_secs)?);
    }
    drop(dut);
    Ok(LadderPoint { system: sys, size, rate_pps: rate, shots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc2544::{zero_loss_search, Trials};

    /// A DUT that forwards everything, on a path that makes the tester's TX wait above
    /// 600 kpps (as a full veth ring does): the zero-loss rate is what was offered, not asked.
    #[test]
    fn zero_loss_rate_is_what_the_tester_offered() {
        let mut offered = Vec::new();
        let s = zero_loss_search(50_000.0, 1_000_000.0, 10_000.0, 1e-4, Trials::at_least(2, 3), |rate| {
            let achieved = rate.min(600_000.0);
            offered.push(achieved);
            // Loss above 700 kpps asked (a fixed fraction of what was sent).
            let sent = achieved as u64;
            Ok((sent, if rate > 700_000.0 { sent - sent / 100 } else { sent }))
        })
        .unwrap();
        let best = s.best_pps.unwrap();
        assert!(best > 690_000.0 && best <= 700_000.0, "{best}");
        assert_eq!(achieved_at_best(&s, &offered), Some(600_000.0));
        // No passing rate: none.
        let mut offered = Vec::new();
        let s = zero_loss_search(50_000.0, 100_000.0, 10_000.0, 1e-4, Trials::all(1), |rate| {
            offered.push(rate);
            Ok((1000, 0))
        })
        .unwrap();
        assert_eq!(achieved_at_best(&s, &offered), None);
    }
}
