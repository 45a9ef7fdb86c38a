//! In-kernel XDP ceilings on veth: how many frames per second the kernel itself forwards
//! (`XDP_REDIRECT` through a DEVMAP, d0 → d1) or drops (`XDP_DROP` on d0) when fed by the
//! live-frames generator — the upper bound any AF_XDP design on this machine is measured
//! against (platform.md §4).
//!
//! ```text
//! forward: gen [g0] ══▶ [d0] dut: XdpForward d0→d1 [d1] ══▶ [s0] sink: XdpSink (drop)
//! drop:    gen [g0] ══▶ [d0] dut: XdpSink (drop)
//!  CPU gen_cpu: LiveGen on g0, flat out
//!  d0's NAPI: in a kthread pinned to napi_cpu (threaded NAPI), or in softirq on the generator's
//!  core; for forward, s0's NAPI runs wherever d1 transmits (d0's NAPI context)
//! ```
//!
//! Owns one ceiling trial ([`trial`]) on a fresh [`Topology`]. The sink on s0 is attached
//! before the forwarder (d1 can transmit xdp_frames only when its peer has an XDP program), and
//! threaded NAPI is switched on only after d0 has its program (NAPI must be enabled first).
//! Everything lives in the trial's namespaces and goes away with them (Drop).
//!
//! Caveat (seen with `perf record` on this VM): live frames live in pages of the generator's
//! page_pool on the generator's CPU. With d0's NAPI in a kthread on another CPU, every frame is
//! freed there and its page goes back to that pool across CPUs through a spinlock-protected
//! ring, which then dominates the receiving core's profile (`page_pool_put_unrefed_netmem`,
//! `queued_spin_lock_slowpath`). So the threaded-NAPI numbers include that cross-CPU recycling,
//! which a NIC's own page pool would not pay, and they are very sensitive to other load on that
//! core.
//!
//! Counting is at the receiving end: the sink's per-second counts give the rate (median without
//! first and last second). Beside it: the generator's claim, what the program on d0 saw, the
//! kernel's `rx_packets` of d0 (and s0), and veth's `xdp_xmit_errors` (frames refused because a
//! ring was full) on g0 and d1.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nic::netns::Topology;
use nic::xdp_tools::{AttachMode, LiveGen, LiveReport, LiveRun, SinkAction, XdpForward, XdpSink};

use crate::kernel::{ethtool_stats, link_stats, sample_while, stats_delta, threaded_napi, LinkStats};
use crate::run::{cpu_busy, cpu_times};
use crate::sample::steady;
use crate::veth::udp4_frame;

/// Which ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Ceiling {
    /// `XdpForward` d0 → d1 (native), counted by an XDP sink on s0.
    Forward,
    /// `XdpSink` drop on d0 (native).
    Drop,
}

/// Options of one ceiling trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeilOpts {
    /// Forward or drop.
    pub ceiling: Ceiling,
    /// Frame length without FCS.
    pub len: usize,
    /// Seconds of traffic.
    pub secs: u64,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// CPU of d0's NAPI kthread (threaded NAPI); `None`: softirq on the generator's core.
    pub napi_cpu: Option<usize>,
}

/// What one ceiling trial measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CeilTrial {
    /// Forward or drop.
    pub ceiling: Ceiling,
    /// Frame length (no FCS).
    pub len: usize,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// d0's NAPI kthread CPU (`None`: softirq on the generator's core).
    pub napi_cpu: Option<usize>,
    /// Per-second rates at the counting sink (s0 for forward, d0 for drop), frames/s.
    pub samples: Vec<f64>,
    /// Steady rate (median without first and last sample), Mpps.
    pub mpps: f64,
    /// Frames the generator sent (its claim).
    pub sent: u64,
    /// Generator's offered rate, Mpps.
    pub offered_mpps: f64,
    /// Frames the XDP program on d0 saw (forwarder's or sink's count).
    pub dut_seen: u64,
    /// Frames the counting sink counted (equals `dut_seen` for drop).
    pub received: u64,
    /// `1 − received / sent`.
    pub loss: f64,
    /// Kernel counters of d0 over the trial.
    pub d0: LinkStats,
    /// Kernel counters of s0 over the trial (forward only).
    pub s0: Option<LinkStats>,
    /// veth `xdp_xmit` counters over the trial: `g0.*` (generator → d0 ring) and, for forward,
    /// `d1.*` (redirect → s0 ring); errors are frames refused by a full ring.
    pub xdp_xmit: BTreeMap<String, u64>,
    /// Busy share of each CPU over the trial.
    pub cpu_busy: Vec<f64>,
    /// Pids of d0's NAPI kthreads.
    pub napi_threads: Vec<u32>,
}

enum Counter {
    Fwd(XdpForward, XdpSink),
    Drop(XdpSink),
}

fn xmit_stats(topo: &Topology, forward: bool) -> Result<BTreeMap<String, u64>> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in ethtool_stats(topo.generator(), Topology::GEN_IF)? {
        m.insert(format!("g0.{k}"), v);
    }
    if forward {
        for (k, v) in ethtool_stats(topo.dut(), Topology::DUT_SINK_IF)? {
            m.insert(format!("d1.{k}"), v);
        }
    }
    Ok(m)
}

/// One ceiling trial on a fresh topology.
pub fn trial(o: &CeilOpts) -> Result<CeilTrial> {
    let topo = Topology::new("xce").context("building the topology (needs root)")?;
    let native = |ns: &nic::netns::Netns, dev: &'static str| {
        ns.run_in(|| XdpSink::attach(dev, AttachMode::Native, SinkAction::Drop).map_err(std::io::Error::other))
            .with_context(|| format!("attaching the XDP sink on {dev}"))
    };
    let counter = match o.ceiling {
        Ceiling::Forward => {
            // The sink first: d1 can transmit xdp_frames only when s0 has an XDP program.
            let sink = native(topo.sink(), Topology::SINK_IF)?;
            let fwd = topo
                .dut()
                .run_in(|| {
                    XdpForward::attach(Topology::DUT_GEN_IF, Topology::DUT_SINK_IF, AttachMode::Native)
                        .map_err(std::io::Error::other)
                })
                .context("attaching the XDP forwarder d0 → d1")?;
            Counter::Fwd(fwd, sink)
        }
        Ceiling::Drop => Counter::Drop(native(topo.dut(), Topology::DUT_GEN_IF)?),
    };
    let napi_threads = match o.napi_cpu {
        Some(c) => threaded_napi(topo.dut(), Topology::DUT_GEN_IF, c)?,
        None => Vec::new(),
    };
    let forward = o.ceiling == Ceiling::Forward;
    let frame = udp4_frame(topo.dut_gen_mac(), topo.gen_mac(), o.len);
    let seen = || -> Result<u64> {
        Ok(match &counter {
            Counter::Fwd(f, _) => f.counts()?.packets,
            Counter::Drop(s) => s.counts()?.packets,
        })
    };
    let rcvd = || -> Result<u64> {
        Ok(match &counter {
            Counter::Fwd(_, s) | Counter::Drop(s) => s.counts()?.packets,
        })
    };
    let d0a = link_stats(topo.dut(), Topology::DUT_GEN_IF)?;
    let s0a = if forward { Some(link_stats(topo.sink(), Topology::SINK_IF)?) } else { None };
    let x0 = xmit_stats(&topo, forward)?;
    let seen0 = seen()?;
    let run = LiveRun { count: None, duration: Duration::from_secs(o.secs), rate_pps: None, batch: 64 };
    let c0 = cpu_times();
    let (rep, trace): (LiveReport, _) =
        sample_while(Duration::from_millis(10), Duration::from_millis(200), rcvd, || {
            topo.generator()
                .run_in(|| {
                    nic::sys::pin_current_thread(o.gen_cpu)?;
                    let g = LiveGen::new(Topology::GEN_IF, 0, 0).map_err(std::io::Error::other)?;
                    g.run(&frame, &run, &|| false).map_err(std::io::Error::other)
                })
                .context("live-frames generator")
        })?;
    let c1 = cpu_times();
    let dut_seen = seen()?.saturating_sub(seen0);
    let d0 = link_stats(topo.dut(), Topology::DUT_GEN_IF)?.since(&d0a);
    let s0 = match s0a {
        Some(a) => Some(link_stats(topo.sink(), Topology::SINK_IF)?.since(&a)),
        None => None,
    };
    let xdp_xmit = stats_delta(&x0, &xmit_stats(&topo, forward)?, "xdp_xmit");
    let received = trace.total();
    if received == 0 {
        bail!("{:?} ceiling: nothing counted at the sink (generator sent {})", o.ceiling, rep.sent);
    }
    let samples = trace.per_second();
    Ok(CeilTrial {
        ceiling: o.ceiling,
        len: o.len,
        gen_cpu: o.gen_cpu,
        napi_cpu: o.napi_cpu,
        mpps: steady(&samples) / 1e6,
        samples,
        sent: rep.sent,
        offered_mpps: rep.pps() / 1e6,
        dut_seen,
        received,
        loss: 1.0 - received as f64 / rep.sent.max(1) as f64,
        d0,
        s0,
        xdp_xmit,
        cpu_busy: cpu_busy(&c0, &c1),
        napi_threads,
    })
}
