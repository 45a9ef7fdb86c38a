//! Kernel IPv4 forwarding baseline: the Linux stack forwards from d0 to d1 in the DUT namespace,
//! fed by an skb-path generator (trafgen or UDP `sendmmsg`; live-frames traffic cannot be
//! passed into the stack, platform.md §3) and counted by an XDP sink on s0.
//!
//! ```text
//! gen [g0] ──▶ [d0] dut: ip_forward=1 [d1] ──▶ [s0] sink: XdpSink (native, drop)
//!  CPU gen_cpu: generator (and g0→d0 veth_xmit / netif_rx)
//!  CPU fwd_cpu: d0's receive + IP forward + d1 xmit + s0's XDP drop, steered there by RPS
//!               (rps_cpus of d0 rx-0); without it everything runs on the generator's core
//! ```
//!
//! Owns one forwarding trial ([`trial`]) on a fresh [`Topology`] with `ip_forward=1`, reverse
//! path filtering off in the DUT namespace, and a check that the static neighbour of the sink
//! is in place on d1 (the topology installs it). All of that lives in namespaces the trial
//! created and disappears with them; the only root-namespace change is trafgen's wmem sysctls,
//! restored by [`crate::kernel::WmemRaised`].
//!
//! The forwarded rate is the sink's per-second count (median without first and last second);
//! loss is `1 − sink / generator claim`, with the kernel counters of d0, d1 and s0 and the
//! system's softnet backlog drops beside it to show where frames went.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use nic::netns::{Topology, TopologyConfig};
use nic::xdp_tools::{AttachMode, SinkAction, XdpSink};

use crate::crossgen::{run_generator, Amount, GenKind, GenReport, GenSpec};
use crate::kernel::{link_stats, ns_exec, sample_while, set_rps, softnet_dropped, LinkStats};
use crate::run::{cpu_busy, cpu_times};
use crate::sample::steady;

/// Options of one kernel-forwarding trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KfwdOpts {
    /// Generator (trafgen or sendmmsg).
    pub gen: GenKind,
    /// Frame length without FCS (60..=1514).
    pub len: usize,
    /// Seconds of traffic.
    pub secs: u64,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// CPU that receives and forwards (RPS on d0); `None`: no RPS, all on the generator's core.
    pub fwd_cpu: Option<usize>,
}

/// What one kernel-forwarding trial measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KfwdTrial {
    /// Generator label.
    pub generator: String,
    /// Frame length (no FCS).
    pub len: usize,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// Forwarding CPU (`None`: same as the generator).
    pub fwd_cpu: Option<usize>,
    /// Per-second forwarded rates counted at the sink (frames/s).
    pub samples: Vec<f64>,
    /// Steady forwarded rate (median of samples without first and last), Mpps.
    pub fwd_mpps: f64,
    /// The generator's own account.
    pub gen: GenReport,
    /// Frames the sink counted.
    pub received: u64,
    /// `1 − received / claimed`.
    pub loss: f64,
    /// Kernel counters of d0 (DUT ingress) over the trial.
    pub d0: LinkStats,
    /// Kernel counters of d1 (DUT egress).
    pub d1: LinkStats,
    /// Kernel counters of s0 (sink).
    pub s0: LinkStats,
    /// softnet backlog drops over the trial, all CPUs (system-wide: RPS backlog overflow).
    pub softnet_dropped: u64,
    /// Busy share of each CPU over the trial.
    pub cpu_busy: Vec<f64>,
}

/// One kernel-forwarding trial on a fresh topology.
pub fn trial(o: &KfwdOpts) -> Result<KfwdTrial> {
    let cfg = TopologyConfig { dut_ip_forward: true, ..TopologyConfig::default() };
    let topo = Topology::with_config("xkf", &cfg).context("building the topology (needs root)")?;
    let dut = topo.dut();
    // Reverse-path filtering would not drop 198.18.0.1 arriving on d0 (its own subnet), but new
    // namespaces inherit the init namespace's conf/all, so make it explicit.
    for dev in ["all", "default", Topology::DUT_GEN_IF, Topology::DUT_SINK_IF] {
        dut.sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
    }
    let neigh = ns_exec(dut, &["ip", "neigh", "show", &Topology::SINK_ADDR.to_string(), "dev", Topology::DUT_SINK_IF])?;
    if !neigh.contains("PERMANENT") {
        bail!("no static neighbour for the sink on d1: {neigh:?}");
    }
    let fwd = ns_exec(dut, &["cat", "/proc/sys/net/ipv4/ip_forward"])?;
    if fwd.trim() != "1" {
        bail!("ip_forward is {fwd:?} in the DUT namespace");
    }
    let sink = topo
        .sink()
        .run_in(|| {
            XdpSink::attach(Topology::SINK_IF, AttachMode::Native, SinkAction::Drop).map_err(std::io::Error::other)
        })
        .context("attaching the XDP sink on s0")?;
    if let Some(c) = o.fwd_cpu {
        set_rps(dut, Topology::DUT_GEN_IF, 1u64 << c)?;
    }
    let spec = GenSpec { kind: o.gen, len: o.len, amount: Amount::For(Duration::from_secs(o.secs)), cpu: o.gen_cpu };
    let read = |ns: &nic::netns::Netns, dev: &str| link_stats(ns, dev);
    let (d0a, d1a, s0a) =
        (read(dut, Topology::DUT_GEN_IF)?, read(dut, Topology::DUT_SINK_IF)?, read(topo.sink(), Topology::SINK_IF)?);
    let sn0 = softnet_dropped();
    let c0 = cpu_times();
    let (gen, trace) = sample_while(
        Duration::from_millis(10),
        Duration::from_millis(300),
        || Ok(sink.counts()?.packets),
        || run_generator(&topo, &spec, topo.dut_gen_mac()),
    )?;
    let c1 = cpu_times();
    let softnet = softnet_dropped().saturating_sub(sn0);
    let d0 = read(dut, Topology::DUT_GEN_IF)?.since(&d0a);
    let d1 = read(dut, Topology::DUT_SINK_IF)?.since(&d1a);
    let s0 = read(topo.sink(), Topology::SINK_IF)?.since(&s0a);
    let received = trace.total();
    if received == 0 {
        bail!("{} {} B: nothing was forwarded to the sink (d0 {d0:?}, d1 {d1:?})", o.gen.label(), o.len);
    }
    let samples = trace.per_second();
    Ok(KfwdTrial {
        generator: o.gen.label().to_string(),
        len: o.len,
        gen_cpu: o.gen_cpu,
        fwd_cpu: o.fwd_cpu,
        fwd_mpps: steady(&samples) / 1e6,
        samples,
        loss: 1.0 - received as f64 / gen.claimed.max(1) as f64,
        gen,
        received,
        d0,
        d1,
        s0,
        softnet_dropped: softnet,
        cpu_busy: cpu_busy(&c0, &c1),
    })
}
