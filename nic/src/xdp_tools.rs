//! In-kernel measuring instruments: the live-frames generator [`LiveGen`], the counting sink
//! [`XdpSink`] and the forwarder [`XdpForward`], all from `nic/bpf/xskd_tools.bpf.c`.
//!
//! Owns: one loaded BPF object per instrument and, for the sink and the forwarder, their XDP
//! attachment (a bpf_link that the kernel removes when the process goes away, and that `Drop`
//! detaches).
//!
//! Guarantees and limits:
//! * [`LiveGen`] transmits with `BPF_PROG_RUN` + `BPF_F_TEST_XDP_LIVE_FRAMES` (the method of
//!   xdp-trafficgen): the kernel builds xdp_frames from a template and the program returns
//!   `XDP_TX`, which on a veth puts the frames into the peer's ring without an skb. This feeds
//!   **only XDP and AF_XDP receivers**: a peer that passes them to the stack drops almost all of
//!   them, and the peer must have an XDP program attached at all (veth needs its NAPI). The
//!   count it reports is what the program saw; frames the peer refused (ring full) show in the
//!   peer's counters (`ethtool -S`: `xdp_xmit_errors`), so measure at the receiver.
//! * [`XdpSink`] counts every frame it sees (packets and bytes, per CPU, summed on read) and
//!   drops or passes it; it is the receiving side's independent counter.
//! * [`XdpForward`] redirects every frame of one interface to another through a DEVMAP: the
//!   in-kernel XDP forwarding ceiling.
//! * Errors name the interface and what failed.

use std::fmt;
use std::time::{Duration, Instant};

use aya::maps::{DevMap, MapData, PerCpuArray};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

/// The compiled instruments object, built by `nic/build.rs`.
pub static TOOLS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xskd_tools.bpf.o"));

/// An instrument error: what, on which interface, and the cause chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    /// Interface concerned.
    pub iface: String,
    /// What was being done.
    pub what: &'static str,
    /// The cause.
    pub detail: String,
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.iface, self.what, self.detail)
    }
}

impl std::error::Error for ToolError {}

fn err(iface: &str, what: &'static str, e: impl std::error::Error) -> ToolError {
    let mut detail = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cur = c.source();
    }
    ToolError { iface: iface.to_string(), what, detail }
}

fn ifindex(iface: &str) -> Result<u32, ToolError> {
    crate::sys::if_nametoindex(iface).map_err(|e| err(iface, "resolve interface", e))
}

/// What a sink does with a frame after counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkAction {
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS` (the stack gets it).
    Pass,
}

/// Where to attach an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) mode.
    Native,
    /// Generic (skb) mode.
    Generic,
}

impl AttachMode {
    fn aya(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// Packets and bytes counted by a sink or forwarder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames.
    pub packets: u64,
    /// Bytes (frame lengths, no FCS).
    pub bytes: u64,
}

impl Counts {
    /// Difference to an earlier reading.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

fn load(iface: &str, prog: &str, mut loader: EbpfLoader<'_>) -> Result<Ebpf, ToolError> {
    let mut ebpf = loader.load(TOOLS_OBJECT).map_err(|e| err(iface, "load BPF object", e))?;
    let p: &mut Xdp = ebpf
        .program_mut(prog)
        .ok_or_else(|| ToolError { iface: iface.into(), what: "find program", detail: prog.into() })?
        .try_into()
        .map_err(|e| err(iface, "program type", e))?;
    p.load().map_err(|e| err(iface, "load program", e))?;
    Ok(ebpf)
}

fn attach(ebpf: &mut Ebpf, iface: &str, prog: &str, mode: AttachMode) -> Result<(), ToolError> {
    let idx = ifindex(iface)?;
    let p: &mut Xdp = ebpf.program_mut(prog).expect("loaded above").try_into().expect("checked above");
    p.attach_to_if_index(idx, mode.aya()).map_err(|e| err(iface, "attach XDP program", e))?;
    Ok(())
}

fn read_counts(ebpf: &Ebpf, iface: &str) -> Result<Counts, ToolError> {
    let map = ebpf.map("sink_stats").ok_or_else(|| ToolError {
        iface: iface.into(),
        what: "find map",
        detail: "sink_stats".into(),
    })?;
    let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(|e| err(iface, "map type", e))?;
    let p = arr.get(&0, 0).map_err(|e| err(iface, "read counters", e))?.iter().sum();
    let b = arr.get(&1, 0).map_err(|e| err(iface, "read counters", e))?.iter().sum();
    Ok(Counts { packets: p, bytes: b })
}

/// A counting XDP sink attached to one interface (detached on drop).
pub struct XdpSink {
    iface: String,
    ebpf: Ebpf,
}

impl fmt::Debug for XdpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSink").field("iface", &self.iface).finish()
    }
}

impl XdpSink {
    /// Loads the sink and attaches it to `iface` (calling thread's namespace): every frame is
    /// counted and gets `action`.
    pub fn attach(iface: &str, mode: AttachMode, action: SinkAction) -> Result<XdpSink, ToolError> {
        XdpSink::load_and_attach(iface, mode, action, false)
    }

    /// Like [`XdpSink::attach`], but only untagged IPv4 and IPv6 frames are counted and get
    /// `action`; everything else (ARP) is passed to the stack uncounted, so the host behind
    /// `iface` keeps answering ARP while its IP traffic is sunk.
    pub fn attach_ip_only(iface: &str, mode: AttachMode, action: SinkAction) -> Result<XdpSink, ToolError> {
        XdpSink::load_and_attach(iface, mode, action, true)
    }

    fn load_and_attach(iface: &str, mode: AttachMode, action: SinkAction, only_ip: bool) -> Result<XdpSink, ToolError> {
        let act: u32 = match action {
            SinkAction::Drop => 1,
            SinkAction::Pass => 2,
        };
        let only_ip = u32::from(only_ip);
        let mut loader = EbpfLoader::new();
        loader.override_global("sink_action", &act, true);
        loader.override_global("sink_only_ip", &only_ip, true);
        let mut ebpf = load(iface, "xskd_sink", loader)?;
        attach(&mut ebpf, iface, "xskd_sink", mode)?;
        Ok(XdpSink { iface: iface.to_string(), ebpf })
    }

    /// Frames and bytes counted so far.
    pub fn counts(&self) -> Result<Counts, ToolError> {
        read_counts(&self.ebpf, &self.iface)
    }
}

/// An XDP forwarder: every frame of `from` goes out of `to` (detached on drop).
pub struct XdpForward {
    iface: String,
    ebpf: Ebpf,
}

impl fmt::Debug for XdpForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpForward").field("iface", &self.iface).finish()
    }
}

impl XdpForward {
    /// Loads the forwarder, points its DEVMAP at `to` and attaches it to `from`. `to` must be
    /// able to transmit xdp_frames (a veth whose peer has an XDP program, or a NIC driver with
    /// `ndo_xdp_xmit`).
    pub fn attach(from: &str, to: &str, mode: AttachMode) -> Result<XdpForward, ToolError> {
        XdpForward::attach_lossy(from, to, mode, 0)
    }

    /// Like [`Self::attach`], but drops every `drop_every`-th frame (the Nth, 2Nth, …; 0 = none):
    /// a deterministic lossy link for checking a receiver's loss accounting.
    pub fn attach_lossy(from: &str, to: &str, mode: AttachMode, drop_every: u32) -> Result<XdpForward, ToolError> {
        let to_idx = ifindex(to)?;
        let mut loader = EbpfLoader::new();
        loader.override_global("fwd_drop_every", &drop_every, true);
        let mut ebpf = load(from, "xskd_fwd", loader)?;
        {
            let map = ebpf.map_mut("fwd_ports").ok_or_else(|| ToolError {
                iface: from.into(),
                what: "find map",
                detail: "fwd_ports".into(),
            })?;
            let mut dm: DevMap<&mut MapData> = DevMap::try_from(map).map_err(|e| err(from, "map type", e))?;
            dm.set(0, to_idx, None, 0).map_err(|e| err(to, "set DEVMAP entry", e))?;
        }
        attach(&mut ebpf, from, "xskd_fwd", mode)?;
        Ok(XdpForward { iface: from.to_string(), ebpf })
    }

    /// Frames and bytes seen (and redirected or dropped) so far.
    pub fn counts(&self) -> Result<Counts, ToolError> {
        read_counts(&self.ebpf, &self.iface)
    }

    /// Frames dropped on purpose ([`Self::attach_lossy`]).
    pub fn dropped(&self) -> Result<u64, ToolError> {
        let map = self.ebpf.map("fwd_dropped").ok_or_else(|| ToolError {
            iface: self.iface.clone(),
            what: "find map",
            detail: "fwd_dropped".into(),
        })?;
        let arr: aya::maps::Array<&MapData, u64> =
            aya::maps::Array::try_from(map).map_err(|e| err(&self.iface, "map type", e))?;
        arr.get(&1, 0).map_err(|e| err(&self.iface, "read counter", e))
    }
}

/// How [`LiveGen::run`] paces itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveRun {
    /// Frames to send at most (`None`: until `duration`).
    pub count: Option<u64>,
    /// Time to run at most.
    pub duration: Duration,
    /// Target rate in frames per second (`None`: as fast as possible).
    pub rate_pps: Option<f64>,
    /// Frames per `BPF_PROG_RUN` batch inside the kernel (xdp-trafficgen uses 64).
    pub batch: u32,
}

/// What a [`LiveGen::run`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveReport {
    /// Frames asked for (sum of the repeat counts of the calls).
    pub sent: u64,
    /// Frames the program itself counted (should equal `sent`).
    pub seen: u64,
    /// Elapsed time.
    pub elapsed: Duration,
    /// Number of `BPF_PROG_RUN` calls.
    pub calls: u64,
}

impl LiveReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The live-frames generator on one interface. Runs in the calling thread (pin it first).
pub struct LiveGen {
    iface: String,
    ifindex: u32,
    ebpf: Ebpf,
}

impl fmt::Debug for LiveGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveGen").field("iface", &self.iface).field("ifindex", &self.ifindex).finish()
    }
}

/// `struct xdp_md` as `BPF_PROG_RUN` takes it for its context: data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex (six u32).
fn xdp_md(len: u32, ifindex: u32, queue: u32) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[4..8].copy_from_slice(&len.to_ne_bytes());
    b[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    b[16..20].copy_from_slice(&queue.to_ne_bytes());
    b
}

impl LiveGen {
    /// Loads the generator for `iface` (calling thread's namespace). With `vary_sport` > 1,
    /// the UDP source port of an untagged IPv4/UDP template cycles through
    /// `sport_base .. sport_base + vary_sport` (that many flows).
    pub fn new(iface: &str, vary_sport: u16, sport_base: u16) -> Result<LiveGen, ToolError> {
        let ifindex = ifindex(iface)?;
        let mut loader = EbpfLoader::new();
        loader.override_global("vary_sport", &vary_sport, true).override_global("sport_base", &sport_base, true);
        let ebpf = load(iface, "xskd_tx", loader)?;
        Ok(LiveGen { iface: iface.to_string(), ifindex, ebpf })
    }

    /// Frames the program has seen so far (all CPUs).
    pub fn seen(&self) -> Result<u64, ToolError> {
        let map = self.ebpf.map("tx_seen").ok_or_else(|| ToolError {
            iface: self.iface.clone(),
            what: "find map",
            detail: "tx_seen".into(),
        })?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| err(&self.iface, "map type", e))?;
        Ok(arr.get(&0, 0).map_err(|e| err(&self.iface, "read counter", e))?.iter().sum())
    }

    /// Sends `repeat` copies of `frame` in one `BPF_PROG_RUN` call.
    pub fn send(&self, frame: &[u8], repeat: u32, batch: u32) -> Result<(), ToolError> {
        let len = u32::try_from(frame.len()).map_err(|_| ToolError {
            iface: self.iface.clone(),
            what: "frame",
            detail: "too long".into(),
        })?;
        let ctx = xdp_md(len, self.ifindex, 0);
        let p: &Xdp = self.ebpf.program("xskd_tx").expect("loaded").try_into().expect("xdp");
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(batch),
            ..TestRunOptions::default()
        };
        p.test_run(opts).map_err(|e| err(&self.iface, "BPF_PROG_RUN live frames", e))?;
        Ok(())
    }

    /// Sends `frame` repeatedly as `run` says; `stop` is polled between calls.
    pub fn run(&self, frame: &[u8], run: &LiveRun, stop: &dyn Fn() -> bool) -> Result<LiveReport, ToolError> {
        let t0 = Instant::now();
        let seen0 = self.seen()?;
        let mut sent = 0u64;
        let mut calls = 0u64;
        // Every call has a fixed cost of tens of milliseconds on this kernel (page-pool setup
        // and teardown of the live-frames run), whatever the repeat count: measured 28 ms for
        // 64 and for 10 000 frames. So calls are large: about 100 ms of the target rate, or up
        // to 2^21 frames flat out, trimmed to what the remaining time allows at the rate seen
        // so far. Pacing is therefore smooth only at the 100 ms scale; say so to users.
        let mut chunk_max: u64 = match run.rate_pps {
            Some(r) => ((r / 10.0).ceil() as u64).clamp(1, 1 << 21),
            None => 1 << 16,
        };
        loop {
            let now = t0.elapsed();
            if now >= run.duration || stop() {
                break;
            }
            let left = run.count.map_or(u64::MAX, |c| c - sent);
            if left == 0 {
                break;
            }
            let mut n = chunk_max.min(left);
            if let Some(r) = run.rate_pps {
                let due = (r * now.as_secs_f64()).ceil() as u64;
                if due <= sent {
                    let wait = (sent + chunk_max) as f64 / r - now.as_secs_f64();
                    std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.0, 0.1)));
                    continue;
                }
                let end_due = (r * run.duration.as_secs_f64()) as u64;
                n = n.min(end_due.saturating_sub(sent).max(1));
            } else if sent > 0 {
                // Flat out: grow the chunk while keeping within the time left.
                let rate = sent as f64 / now.as_secs_f64().max(1e-6);
                let fit = (rate * (run.duration - now).as_secs_f64()) as u64;
                chunk_max = (chunk_max * 2).min(1 << 21);
                n = n.min(fit.max(1));
            }
            self.send(frame, n as u32, run.batch)?;
            sent += n;
            calls += 1;
        }
        let elapsed = t0.elapsed();
        let seen = self.seen()?.saturating_sub(seen0);
        Ok(LiveReport { sent, seen, elapsed, calls })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_elf_with_the_three_programs() {
        assert_eq!(&TOOLS_OBJECT[..4], b"\x7fELF");
        for name in ["xskd_tx", "xskd_sink", "xskd_fwd"] {
            assert!(TOOLS_OBJECT.windows(name.len()).any(|w| w == name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn xdp_md_layout() {
        let b = xdp_md(60, 7, 1);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 0);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 60);
        assert_eq!(u32::from_ne_bytes(b[12..16].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 1);
    }
}
