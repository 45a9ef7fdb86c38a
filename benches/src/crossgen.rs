//! Generator cross-check: how fast the skb-path generators (netsniff-ng `trafgen`, a kernel UDP
//! `sendmmsg` sender) really put frames onto a veth, measured at the **receiver** with the
//! kernel's own counters, so the harness never grades a generator by its own claims.
//!
//! ```text
//! gen [g0] ──veth──▶ [d0] dut        (d1/s0 of the topology stay idle)
//!  CPU gen_cpu: the generator (pinned)
//!  d0: XdpSink (native, counts + drops); its NAPI in softirq on the generator's core, or in a
//!      kthread pinned to rx_cpu (threaded NAPI)
//! ```
//!
//! Owns: the two generators as reusable pieces ([`run_generator`], also used by
//! [`crate::kfwd`]), the trafgen config ([`trafgen_config`]), the count comparison
//! ([`rel_diff`], [`MAX_REL_DIFF`]) and one cross-check trial ([`trial`]).
//!
//! Guarantees:
//! * Every trial builds a fresh [`Topology`] (unique names) and removes it on every path.
//! * trafgen runs bounded in time under coreutils `timeout` (SIGINT to its whole process group at
//!   the deadline, SIGKILL 5 s later, even if this process dies meanwhile). The root
//!   namespace's `net.core.wmem_default`/`wmem_max`, which trafgen needs raised (platform.md §3),
//!   are raised only while it runs and restored by a guard, also on failure.
//! * The reported rate is the receiver's kernel count (`rx_packets` of d0) over the receiver's
//!   active window; the generator's claim, the XDP sink's count and the kernel count are all
//!   reported, with their relative differences.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nic::netns::{format_mac, Topology};
use nic::xdp_tools::{AttachMode, SinkAction, XdpSink};

use crate::kernel::{link_stats, sample_while, threaded_napi, LinkStats, WmemRaised, TRAFGEN_WMEM};
use crate::run::{cpu_busy, cpu_times};
use crate::sample::steady;

/// Largest relative difference between a generator's claimed count and the receiver's kernel
/// count that the cross-check accepts (0.1 %).
pub const MAX_REL_DIFF: f64 = 1e-3;

/// Relative difference `|claimed − counted| / claimed` between what a generator says it sent and
/// what the receiver's kernel counted (1.0 when it claims nothing but something arrived, 0.0 when
/// both are zero).
pub fn rel_diff(claimed: u64, counted: u64) -> f64 {
    if claimed == 0 {
        return if counted == 0 { 0.0 } else { 1.0 };
    }
    claimed.abs_diff(counted) as f64 / claimed as f64
}

/// Which generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum GenKind {
    /// netsniff-ng `trafgen` (AF_PACKET TX_RING, qdisc bypass), one process.
    Trafgen,
    /// A UDP socket sending with `sendmmsg` in batches of [`SENDMMSG_BATCH`].
    Sendmmsg,
    /// `xskd pktgen`, AF_XDP engine (copy mode on veth).
    XskdXsk,
    /// `xskd pktgen --engine live` (BPF_PROG_RUN live frames; needs an XDP receiver).
    XskdLive,
}

static XSKD_BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Sets the `xskd` binary the `Xskd*` generators run (once; later calls are ignored).
pub fn set_xskd_binary(p: std::path::PathBuf) {
    let _ = XSKD_BIN.set(p);
}

impl GenKind {
    /// Short label.
    pub fn label(&self) -> &'static str {
        match self {
            GenKind::Trafgen => "trafgen",
            GenKind::Sendmmsg => "sendmmsg",
            GenKind::XskdXsk => "xskd pktgen (AF_XDP)",
            GenKind::XskdLive => "xskd pktgen (live frames)",
        }
    }
}

/// Frames per `sendmmsg` call.
pub const SENDMMSG_BATCH: usize = 64;

/// `SO_SNDBUF` of the UDP sender. A veth drops frames silently (counted only in the sender's
/// `tx_dropped`) when its peer's 256-entry ring is full, and a UDP socket gets no other
/// backpressure than its send buffer. With the default buffer (212992, doubled by the kernel) more
/// than 256 small skbs can be in flight, and on this VM half of a 60 B run was dropped that way
/// while `sendmmsg` reported every frame sent. 65536 (131072 effective) keeps the in-flight skbs
/// well under the ring size (no drops at 60 or 1514 B; 131072 already dropped at 60 B), so
/// the sender blocks instead and its count is what the receiver gets.
pub const SENDMMSG_SNDBUF: i32 = 65536;

/// How much to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Amount {
    /// Exactly this many frames.
    Count(u64),
    /// As many as possible for this long.
    For(Duration),
}

/// A generator run: what, how big, how much, where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenSpec {
    /// Generator.
    pub kind: GenKind,
    /// Frame length without FCS (60 = "64-byte frames"), 60..=1514.
    pub len: usize,
    /// Count or duration.
    pub amount: Amount,
    /// CPU the generator is pinned to.
    pub cpu: usize,
}

/// What a generator claims.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenReport {
    /// Frames the generator says it sent.
    pub claimed: u64,
    /// Wall time of the generator (trafgen: the whole process, including setup).
    pub elapsed_s: f64,
    /// sendmmsg: calls that failed outright (errno); trafgen: 0.
    pub failed_calls: u64,
    /// trafgen's stdout+stderr tail (empty for sendmmsg).
    pub output: String,
}

/// trafgen config for one IPv4/UDP frame 198.18.0.1:9 → 198.19.0.1:9 of `len` bytes (no FCS)
/// from `src` to `dst`. trafgen fills in the IPv4 length/checksum and UDP length/checksum.
pub fn trafgen_config(dst: [u8; 6], src: [u8; 6], len: usize) -> String {
    format!(
        "{{ eth(da={}, sa={}, type=0x0800), ipv4(saddr=198.18.0.1, daddr=198.19.0.1, ttl=64, proto=17), \
         udp(sport=9, dport=9), fill(0x00, {}) }}\n",
        format_mac(&dst),
        format_mac(&src),
        len - 42
    )
}

/// "N packets outgoing" from trafgen's exit summary.
pub fn parse_trafgen_outgoing(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == 3 && w[1] == "packets" && w[2] == "outgoing").then(|| w[0].parse().ok()).flatten()
    })
}

/// Removes a scratch file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn check_len(len: usize) -> Result<()> {
    if !(60..=1514).contains(&len) {
        bail!("frame length {len}: must be 60..=1514 (no FCS, MTU 1500)");
    }
    Ok(())
}

fn run_trafgen(topo: &Topology, spec: &GenSpec, dst: [u8; 6]) -> Result<GenReport> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cfg = TempFile(std::env::temp_dir().join(format!("xskd-trafgen-{}-{n}.cfg", std::process::id())));
    std::fs::write(&cfg.0, trafgen_config(dst, topo.gen_mac(), spec.len))?;
    let ns = topo.generator().name().to_string();
    let cpu = spec.cpu.to_string();
    let cfgp = cfg.0.to_string_lossy().to_string();
    // trafgen forks a worker and only the worker sends; a SIGINT to the parent alone leaves the
    // worker running (seen with RPS on the receiver). coreutils `timeout` runs it in its own
    // process group and signals the whole group: SIGINT at the limit (trafgen prints its
    // summary), SIGKILL 5 s later. It also bounds trafgen if this process dies.
    let limit = match spec.amount {
        // Generous: trafgen does ≥ 0.3 Mpps here; a stalled trafgen is cut off and reported.
        Amount::Count(c) => Duration::from_secs_f64(10.0 + c as f64 / 100_000.0),
        Amount::For(d) => d,
    };
    let secs = format!("{:.3}", limit.as_secs_f64());
    let mut argv: Vec<String> = [
        "ip",
        "netns",
        "exec",
        &ns,
        "timeout",
        "-s",
        "INT",
        "-k",
        "5",
        &secs,
        "taskset",
        "-c",
        &cpu,
        "trafgen",
        "--no-sock-mem",
        "-P1",
        "-o",
        Topology::GEN_IF,
        "-i",
        &cfgp,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Amount::Count(c) = spec.amount {
        argv.extend(["-n".to_string(), c.to_string()]);
    }
    let _wmem = WmemRaised::raise(TRAFGEN_WMEM, Duration::from_secs(120))?;
    // Backstop only: `timeout` ends it first.
    let ran = crate::run::bounded(&argv, limit + Duration::from_secs(8)).context("running trafgen")?;
    let text = format!("{}{}", ran.stdout, ran.stderr);
    let tail: String = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    let claimed = parse_trafgen_outgoing(&text)
        .with_context(|| format!("trafgen printed no 'packets outgoing' (exit {:?}):\n{tail}", ran.code))?;
    if let Amount::Count(c) = spec.amount {
        if claimed != c {
            bail!("trafgen sent {claimed} of {c} frames (stalled?):\n{tail}");
        }
    }
    Ok(GenReport { claimed, elapsed_s: ran.elapsed.as_secs_f64(), failed_calls: 0, output: tail })
}

fn run_sendmmsg(topo: &Topology, spec: &GenSpec) -> Result<GenReport> {
    let payload = vec![0u8; spec.len - 42];
    let r = topo.generator().run_in(|| {
        nic::sys::pin_current_thread(spec.cpu)?;
        let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
        sock.connect((Topology::SINK_ADDR, 9))?;
        let fd = sock.as_fd();
        nic::sys::set_int_sockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, SENDMMSG_SNDBUF)?;
        let t0 = Instant::now();
        let (mut sent, mut failed) = (0u64, 0u64);
        let (limit, deadline) = match spec.amount {
            Amount::Count(c) => (c, t0 + Duration::from_secs_f64(10.0 + c as f64 / 100_000.0)),
            Amount::For(d) => (u64::MAX, t0 + d),
        };
        while sent < limit {
            if Instant::now() >= deadline {
                break;
            }
            let want = (limit - sent).min(SENDMMSG_BATCH as u64) as usize;
            match nic::sys::send_repeated(fd, &payload, want) {
                Ok(k) => sent += k as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == std::io::ErrorKind::Interrupted => {
                    failed += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(GenReport {
            claimed: sent,
            elapsed_s: t0.elapsed().as_secs_f64(),
            failed_calls: failed,
            output: String::new(),
        })
    })?;
    if let Amount::Count(c) = spec.amount {
        if r.claimed != c {
            bail!("sendmmsg sent {} of {c} frames before its deadline", r.claimed);
        }
    }
    Ok(r)
}

/// Runs one generator in the topology's gen namespace, pinned to `spec.cpu`, sending IPv4/UDP
/// 198.18.0.1 → 198.19.0.1 frames of `spec.len` bytes out of g0. trafgen addresses its frames to
/// `dst` (the MAC of the next hop); the UDP sender goes through routing and the neighbour table
/// (the topology has static neighbours), so it needs no MAC. In count mode it is an error if
/// fewer than asked were sent.
pub fn run_generator(topo: &Topology, spec: &GenSpec, dst: [u8; 6]) -> Result<GenReport> {
    check_len(spec.len)?;
    match spec.kind {
        GenKind::Trafgen => run_trafgen(topo, spec, dst),
        GenKind::Sendmmsg => run_sendmmsg(topo, spec),
        GenKind::XskdXsk | GenKind::XskdLive => run_xskd(topo, spec, dst),
    }
}

fn run_xskd(topo: &Topology, spec: &GenSpec, dst: [u8; 6]) -> Result<GenReport> {
    let bin = XSKD_BIN.get().context("crossgen::set_xskd_binary was not called")?;
    let mut argv: Vec<String> = [
        "ip",
        "netns",
        "exec",
        topo.generator().name(),
        &bin.to_string_lossy(),
        "pktgen",
        "--iface",
        Topology::GEN_IF,
        "--dst-mac",
        &nic::netns::format_mac(&dst),
        "--size",
        &spec.len.to_string(),
        "--lcore",
        &spec.cpu.to_string(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if spec.kind == GenKind::XskdLive {
        argv.extend(["--engine".to_string(), "live".to_string()]);
    }
    let limit = match spec.amount {
        Amount::Count(c) => {
            argv.extend(["--count".to_string(), c.to_string()]);
            Duration::from_secs_f64(20.0 + c as f64 / 100_000.0)
        }
        Amount::For(d) => {
            argv.extend(["--duration".to_string(), format!("{:.3}", d.as_secs_f64())]);
            d + Duration::from_secs(20)
        }
    };
    let ran = crate::run::bounded(&argv, limit).context("running xskd pktgen")?;
    let v: serde_json::Value = serde_json::from_str(&ran.stdout)
        .with_context(|| format!("xskd pktgen output (exit {:?}): {} {}", ran.code, ran.stdout, ran.stderr))?;
    let claimed = v["tx_pkts"].as_u64().context("tx_pkts")?;
    if let Amount::Count(c) = spec.amount {
        if claimed != c {
            bail!("xskd pktgen sent {claimed} of {c} frames");
        }
    }
    Ok(GenReport { claimed, elapsed_s: v["tx_secs"].as_f64().unwrap_or(0.0), failed_calls: 0, output: String::new() })
}

/// Options of one cross-check trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossOpts {
    /// The generator run (pinned to `gen.cpu`).
    pub gen: GenSpec,
    /// CPU for d0's NAPI kthread (threaded NAPI); `None`: receive in softirq on the generator's
    /// core (the veth default).
    pub rx_cpu: Option<usize>,
}

/// What one cross-check trial measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrossTrial {
    /// Generator label.
    pub generator: String,
    /// Frame length (no FCS).
    pub len: usize,
    /// Requested amount.
    pub amount: Amount,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// CPU of the receiver's NAPI kthread (`None`: softirq on the generator's core).
    pub rx_cpu: Option<usize>,
    /// The generator's own account.
    pub gen: GenReport,
    /// Kernel counters of d0 over the trial (receiver).
    pub kernel_rx: LinkStats,
    /// Kernel counters of g0 over the trial (sender). A veth counts in `tx_dropped` every frame
    /// the peer's full ring refused; trafgen (AF_PACKET TX_RING) sends those again later, a UDP
    /// socket loses them, so only for the latter is it a loss.
    pub kernel_tx: LinkStats,
    /// Frames the XDP sink on d0 counted.
    pub sink_rx: u64,
    /// Receiver's active window (s): first to last frame, from 10 ms samples of the sink.
    pub window_s: f64,
    /// Receive rate: d0's kernel `rx_packets` over the active window (frames/s).
    pub pps: f64,
    /// Per-second receive rates (sink).
    pub samples: Vec<f64>,
    /// Median of `samples` without first and last, when there are at least 3.
    pub steady_pps: Option<f64>,
    /// [`rel_diff`] of the generator's claim vs d0's kernel `rx_packets`.
    pub claimed_vs_kernel: f64,
    /// [`rel_diff`] of d0's kernel `rx_packets` vs the sink's count.
    pub kernel_vs_sink: f64,
    /// Busy share of each CPU over the trial.
    pub cpu_busy: Vec<f64>,
    /// Pids of d0's NAPI kthreads (threaded NAPI).
    pub napi_threads: Vec<u32>,
}

impl CrossTrial {
    /// Ok when the generator's claim, the kernel's receive count and the sink all agree within
    /// [`MAX_REL_DIFF`] and something arrived.
    pub fn check(&self) -> Result<()> {
        if self.kernel_rx.rx_packets == 0 || self.sink_rx == 0 {
            bail!(
                "{} {} B: nothing received (kernel {}, sink {})",
                self.generator,
                self.len,
                self.kernel_rx.rx_packets,
                self.sink_rx
            );
        }
        if self.claimed_vs_kernel > MAX_REL_DIFF {
            bail!(
                "{} {} B: claimed {} vs kernel rx_packets {} differ by {:.4}% (> {}%)",
                self.generator,
                self.len,
                self.gen.claimed,
                self.kernel_rx.rx_packets,
                self.claimed_vs_kernel * 100.0,
                MAX_REL_DIFF * 100.0
            );
        }
        if self.kernel_vs_sink > MAX_REL_DIFF {
            bail!(
                "{} {} B: kernel rx_packets {} vs sink {}",
                self.generator,
                self.len,
                self.kernel_rx.rx_packets,
                self.sink_rx
            );
        }
        Ok(())
    }
}

/// One cross-check trial on a fresh topology: XDP sink on d0 (NAPI on `rx_cpu` or in softirq on
/// the generator's core), the generator on g0, counts compared afterwards.
pub fn trial(o: &CrossOpts) -> Result<CrossTrial> {
    check_len(o.gen.len)?;
    let topo = Topology::new("xcg").context("building the topology (needs root)")?;
    let sink = topo
        .dut()
        .run_in(|| {
            XdpSink::attach(Topology::DUT_GEN_IF, AttachMode::Native, SinkAction::Drop).map_err(std::io::Error::other)
        })
        .context("attaching the XDP sink on d0")?;
    let napi_threads = match o.rx_cpu {
        Some(c) => threaded_napi(topo.dut(), Topology::DUT_GEN_IF, c)?,
        None => Vec::new(),
    };
    let k0 = link_stats(topo.dut(), Topology::DUT_GEN_IF)?;
    let t0 = link_stats(topo.generator(), Topology::GEN_IF)?;
    let c0 = cpu_times();
    let (gen, trace) = sample_while(
        Duration::from_millis(10),
        Duration::from_millis(200),
        || Ok(sink.counts()?.packets),
        || run_generator(&topo, &o.gen, topo.dut_gen_mac()),
    )?;
    let c1 = cpu_times();
    let kernel_rx = link_stats(topo.dut(), Topology::DUT_GEN_IF)?.since(&k0);
    let kernel_tx = link_stats(topo.generator(), Topology::GEN_IF)?.since(&t0);
    let sink_rx = trace.total();
    let window_s = trace.active_window().unwrap_or(0.0);
    let samples = trace.per_second();
    Ok(CrossTrial {
        generator: o.gen.kind.label().to_string(),
        len: o.gen.len,
        amount: o.gen.amount,
        gen_cpu: o.gen.cpu,
        rx_cpu: o.rx_cpu,
        claimed_vs_kernel: rel_diff(gen.claimed, kernel_rx.rx_packets),
        kernel_vs_sink: rel_diff(kernel_rx.rx_packets, sink_rx),
        gen,
        pps: if window_s > 0.0 { kernel_rx.rx_packets as f64 / window_s } else { 0.0 },
        kernel_rx,
        kernel_tx,
        sink_rx,
        window_s,
        steady_pps: (samples.len() >= 3).then(|| steady(&samples)),
        samples,
        cpu_busy: cpu_busy(&c0, &c1),
        napi_threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_difference() {
        assert_eq!(rel_diff(1000, 1000), 0.0);
        assert_eq!(rel_diff(1000, 999), 0.001);
        assert_eq!(rel_diff(1000, 1001), 0.001);
        assert_eq!(rel_diff(0, 0), 0.0);
        assert_eq!(rel_diff(0, 5), 1.0);
        assert!(rel_diff(1_000_000, 999_001) < MAX_REL_DIFF);
    }

    #[test]
    fn trafgen_config_and_summary() {
        let c = trafgen_config([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 60);
        assert!(c.contains("eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01, type=0x0800)"), "{c}");
        assert!(c.contains("fill(0x00, 18)"));
        assert!(trafgen_config([0; 6], [0; 6], 1514).contains("fill(0x00, 1472)"));
        let out = "Running! Hang up with ^C!\n\n\n        1000 packets outgoing\n       60000 bytes outgoing\n           0 sec, 5965 usec on CPU0 (1000 packets)\n";
        assert_eq!(parse_trafgen_outgoing(out), Some(1000));
        assert_eq!(parse_trafgen_outgoing("nothing"), None);
    }
}
