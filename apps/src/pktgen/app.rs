//! [`Pktgen`]: the generator as an [`engine::App`], and [`PktgenHandle`], its results seen from
//! another thread.
//!
//! * **TX** ([`App::produce`], once per lcore iteration): `n = min(TX staging room, rate
//!   grant, frames left)` frames are allocated in bulk straight into the TX staging
//!   ([`Ctx::emit_new`]) and written by the [`FrameBuilder`] (or copied from the replayed pcap)
//!   with sequence numbers `0, 1, 2, …` and the iteration's time as TX timestamp. Before the
//!   first frame, the UMEM frame capacity is checked once against the longest frame; if it is
//!   too small, nothing is sent and `tx_oversize` says why (no panic on the hot path).
//! * **RX** ([`App::process`]): every received frame goes to [`RxStats`] (roles `rx`, `txrx`)
//!   and, when capturing, into the [`CaptureRing`]; then the whole burst is dropped as
//!   [`DropReason::Consumed`]. In role `tx`, received frames are only counted (`rx_ignored`).
//! * **Done** ([`App::is_done`]): `tx` when the count is sent or the duration is over; `txrx`
//!   that plus `linger` of receiving; `rx` never (stop it from outside).
//! * **Off the hot path**: the capture ring is written to its pcap from [`App::on_timer`]
//!   (every 50 ms) and [`App::finish`]; [`App::report`] publishes counters and copies the
//!   receiver's state into the shared [`PktgenHandle`] (no allocation: same-shaped tables, the
//!   histogram copied in place). After `Lcore::run` returns, the handle holds the final state.
//!
//! Nothing on the TX or RX path allocates, logs or makes a syscall.

use std::fs::File;
use std::io::BufWriter;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use engine::{App, Batch, Ctx, DropReason, Ingress, Instant, TxPort, Verdict};

use crate::params::ParamErrors;
use crate::registry::{AppHandle, AppKind, BuildCtx, Handled};

use super::build::FrameBuilder;
use super::pcap::{read_frames, CaptureRing, PcapSink};
use super::rate::TokenBucket;
use super::rx::{RxStats, RxSummary};
use super::spec::{PktgenSpec, Role, MAX_FRAME_LEN};

/// Smallest depth of the rate limiter in frames (one TX staging of the default burst, 2 × 64).
pub const RATE_DEPTH_FRAMES: usize = 128;
/// Time the rate limiter's depth covers at least: a stall shorter than this (the kernel's
/// softirq work for a veth peer running on the sending core, a scheduler tick) is caught up
/// afterwards, so the long-run rate stays exact; longer stalls give up their credit. Measured
/// on veth: with a 128-frame depth only, 100 kpps with a receiver on the same core came out at
/// 95 kpps (stalls of a few ms); with 5 ms it is exact.
pub const RATE_DEPTH_TIME: Duration = Duration::from_millis(5);

/// Depth in frames for `rate`: at least [`RATE_DEPTH_FRAMES`], at least [`RATE_DEPTH_TIME`] of
/// traffic at the rate (frames of `len` bytes).
fn rate_depth(rate: super::spec::Rate, len: usize) -> usize {
    use super::spec::{Rate, L1_OVERHEAD, L2_OVERHEAD};
    let fps = match rate {
        Rate::Pps(r) => r,
        Rate::L1Mbps(m) => m * 1e6 / ((len + L1_OVERHEAD) * 8) as f64,
        Rate::L2Mbps(m) => m * 1e6 / ((len + L2_OVERHEAD) * 8) as f64,
        Rate::Percent { pct, link_mbps } => pct / 100.0 * link_mbps * 1e6 / ((len + L1_OVERHEAD) * 8) as f64,
        Rate::Max => 0.0,
    };
    let t = (fps * RATE_DEPTH_TIME.as_secs_f64()).ceil();
    if t.is_finite() && t > RATE_DEPTH_FRAMES as f64 {
        (t as usize).min(1 << 20)
    } else {
        RATE_DEPTH_FRAMES
    }
}
/// Period of capture flushes to the file.
pub const CAPTURE_FLUSH: Duration = Duration::from_millis(50);

/// TX counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TxCounters {
    /// Frames built and staged for transmission.
    pub pkts: u64,
    /// Their bytes (without FCS).
    pub bytes: u64,
    /// Frames the rate allowed but the pool could not supply.
    pub pool_empty: u64,
    /// 1 when the longest frame does not fit a UMEM frame (nothing was sent).
    pub oversize: u64,
}

/// Capture counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureCounters {
    /// Frames put in the ring.
    pub captured: u64,
    /// Frames not captured: the ring was full (the file writer fell behind).
    pub missed: u64,
    /// Frames written to the file.
    pub written: u64,
    /// Write errors (writing stops at the first).
    pub errors: u64,
}

/// The final (or latest published) results of one pktgen instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PktgenReport {
    /// Role.
    pub role: &'static str,
    /// Stream id of the frames sent.
    pub stream: u16,
    /// What was sent.
    pub tx: TxCounters,
    /// What was received (roles `rx` and `txrx`).
    pub rx: Option<RxSummary>,
    /// Frames received in role `tx` (counted, not parsed).
    pub rx_ignored: u64,
    /// Capture, when configured.
    pub capture: Option<CaptureCounters>,
    /// Engine-clock time (ns) of the first TX iteration.
    pub tx_start_ns: Option<u64>,
    /// Engine-clock time (ns) when sending ended (count sent or duration over).
    pub tx_end_ns: Option<u64>,
}

/// Where the frames come from.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per app, built once, never moved on the hot path
enum Source {
    Synth(FrameBuilder),
    Replay { frames: Box<[Box<[u8]>]>, next: u64 },
}

impl Source {
    fn max_len(&self) -> usize {
        match self {
            Source::Synth(b) => b.max_len(),
            Source::Replay { frames, .. } => frames.iter().map(|f| f.len()).max().unwrap_or(0),
        }
    }

    #[inline]
    fn len_at(&self, i: usize) -> usize {
        match self {
            Source::Synth(b) => b.len_at(i),
            Source::Replay { frames, next } => frames[((next + i as u64) % frames.len() as u64) as usize].len(),
        }
    }

    #[inline]
    fn build(&mut self, buf: &mut [u8], seq: u64, ts: u64) -> usize {
        match self {
            Source::Synth(b) => b.build(buf, seq, ts),
            Source::Replay { frames, next } => {
                let f = &frames[(*next % frames.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                *next += 1;
                f.len()
            }
        }
    }
}

#[derive(Debug)]
struct Capture {
    ring: CaptureRing,
    sink: Option<PcapSink<BufWriter<File>>>,
    next_flush: Instant,
    /// Wall-clock ns at the engine clock's epoch (set at the first flush), so the file has
    /// real timestamps.
    ts_offset: Option<u64>,
    written: u64,
    errors: u64,
}

impl Capture {
    fn flush(&mut self, now: Instant) {
        let Some(sink) = &mut self.sink else {
            // Writing failed before: keep the ring from filling forever.
            let _ = self.ring.drain(|_, _, _| Ok::<(), ()>(()));
            return;
        };
        let off = *self.ts_offset.get_or_insert_with(|| {
            let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            wall.saturating_sub(now.as_nanos())
        });
        if sink.write_ring(&mut self.ring, off).is_err() {
            self.errors += 1;
            self.sink = None;
        } else {
            self.written = sink.written();
        }
    }

    fn counters(&self) -> CaptureCounters {
        CaptureCounters {
            captured: self.ring.captured(),
            missed: self.ring.missed(),
            written: self.written,
            errors: self.errors,
        }
    }
}

/// What [`App::report`] publishes for the handle.
#[derive(Debug)]
struct Shared {
    report: PktgenReport,
    rx: Option<RxStats>,
}

/// Results of a [`Pktgen`] from another thread: updated whenever the lcore publishes its
/// statistics, and final once `Lcore::run` has returned.
#[derive(Debug, Clone)]
pub struct PktgenHandle(Arc<Mutex<Shared>>);

impl PktgenHandle {
    /// The latest published results.
    pub fn report(&self) -> PktgenReport {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = g.report.clone();
        r.rx = g.rx.as_ref().map(RxStats::summary);
        r
    }

    /// The latest published latency histogram (ns), for roles that receive.
    pub fn latency_histogram(&self) -> Option<Histogram<u64>> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.rx.as_ref().map(|r| r.histogram().clone())
    }
}

/// The pktgen app for one queue. See the module docs.
#[derive(Debug)]
pub struct Pktgen {
    role: Role,
    stream: u16,
    to: TxPort,
    source: Option<Source>,
    bucket: TokenBucket,
    count: Option<u64>,
    duration: Option<Duration>,
    linger: Duration,
    started: Option<Instant>,
    now: Instant,
    tx_end: Option<Instant>,
    capacity_checked: bool,
    seq: u64,
    tx: TxCounters,
    rx: Option<RxStats>,
    rx_ignored: u64,
    capture: Option<Capture>,
    shared: Arc<Mutex<Shared>>,
}

impl Pktgen {
    /// Builds the app: validates `spec`, reads the pcap to replay, creates the capture file.
    /// Frames go to `to`; `src_mac` is used when the spec has none.
    pub fn new(spec: &PktgenSpec, to: TxPort, src_mac: [u8; 6]) -> Result<Pktgen, String> {
        spec.validate().map_err(|e| e.to_string())?;
        let source = match (spec.role.sends(), &spec.pcap) {
            (false, _) => None,
            (true, Some(p)) => Some(Source::Replay { frames: read_frames(p, MAX_FRAME_LEN)?.into(), next: 0 }),
            (true, None) => {
                let dst = spec.dst_mac.ok_or("dst_mac: required to send synthesised frames")?;
                Some(Source::Synth(FrameBuilder::new(spec, spec.src_mac.unwrap_or(src_mac), dst)))
            }
        };
        let max_len = source.as_ref().map_or(60, Source::max_len);
        let rx = spec.role.receives().then(|| RxStats::new(spec.max_streams));
        let capture = match &spec.capture {
            Some(path) => Some(Capture {
                ring: CaptureRing::new(spec.capture_frames, spec.capture_snaplen),
                sink: Some(PcapSink::create(path, spec.capture_snaplen)?),
                next_flush: Instant::ZERO,
                ts_offset: None,
                written: 0,
                errors: 0,
            }),
            None => None,
        };
        let report = PktgenReport {
            role: match spec.role {
                Role::Tx => "tx",
                Role::Rx => "rx",
                Role::TxRx => "txrx",
            },
            stream: spec.stream,
            ..Default::default()
        };
        let shared = Shared { report, rx: rx.clone() };
        Ok(Pktgen {
            role: spec.role,
            stream: spec.stream,
            to,
            source,
            bucket: TokenBucket::new(spec.rate, rate_depth(spec.rate, max_len), max_len),
            count: spec.count,
            duration: spec.duration,
            linger: spec.linger,
            started: None,
            now: Instant::ZERO,
            tx_end: None,
            capacity_checked: false,
            seq: 0,
            tx: TxCounters::default(),
            rx,
            rx_ignored: 0,
            capture,
            shared: Arc::new(Mutex::new(shared)),
        })
    }

    /// A handle on the results, for another thread (take it before the app moves into its
    /// lcore).
    pub fn handle(&self) -> PktgenHandle {
        PktgenHandle(self.shared.clone())
    }

    /// The TX target.
    pub fn tx_port(&self) -> TxPort {
        self.to
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// TX counters so far.
    pub fn tx_counters(&self) -> TxCounters {
        self.tx
    }

    /// The receiver's statistics (roles `rx` and `txrx`).
    pub fn rx_stats(&self) -> Option<&RxStats> {
        self.rx.as_ref()
    }

    /// The longest frame this instance sends (0 for role `rx`).
    pub fn max_frame_len(&self) -> usize {
        self.source.as_ref().map_or(0, Source::max_len)
    }

    /// Everything so far, directly from the app (for drivers that step the lcore themselves).
    pub fn report_now(&self) -> PktgenReport {
        let g = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        PktgenReport {
            role: g.report.role,
            stream: self.stream,
            tx: self.tx,
            rx: self.rx.as_ref().map(RxStats::summary),
            rx_ignored: self.rx_ignored,
            capture: self.capture.as_ref().map(Capture::counters),
            tx_start_ns: self.started.map(|t| t.as_nanos()),
            tx_end_ns: self.tx_end.map(|t| t.as_nanos()),
        }
    }

    /// Whether sending is over (count sent, duration elapsed, or it could not start).
    pub fn tx_finished(&self) -> bool {
        self.tx_end.is_some()
    }

    fn end_tx(&mut self, now: Instant) {
        if self.tx_end.is_none() {
            self.tx_end = Some(now);
        }
    }
}

impl AppKind for PktgenSpec {
    type App = Pktgen;

    fn parse(t: &toml::Table) -> Result<PktgenSpec, ParamErrors> {
        PktgenSpec::parse(t)
    }

    fn port_refs(&self) -> Vec<(&'static str, String)> {
        match &self.peer {
            Some(p) if self.role.sends() => vec![("peer", p.clone())],
            _ => Vec::new(),
        }
    }

    /// A pktgen shard works on its first queue: it receives there and, without `peer`, sends
    /// there too.
    fn build(&self, cx: &BuildCtx<'_>) -> Result<Pktgen, String> {
        let own = cx.first();
        if !self.role.sends() {
            return Pktgen::new(self, own.tx, [0; 6]);
        }
        let peer = self.peer.as_deref().unwrap_or(&own.port_name);
        let to = cx.tx_of(peer, "pktgen peer")?;
        let src = match self.src_mac {
            Some(m) => m,
            None if self.pcap.is_none() => {
                (cx.mac_of)(peer).ok_or_else(|| format!("cannot read the MAC address of port '{peer}'; set src_mac"))?
            }
            None => [0; 6],
        };
        Pktgen::new(self, to, src)
    }
}

impl Handled for Pktgen {
    fn handle(&self) -> Option<AppHandle> {
        Some(AppHandle::Pktgen(Pktgen::handle(self)))
    }
}

impl<'u> App<'u> for Pktgen {
    #[inline]
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, _from: Ingress, batch: &mut Batch<'u>) {
        let now = cx.now;
        match &mut self.rx {
            Some(rx) => {
                for f in batch.frames() {
                    rx.on_frame(now, f.data());
                    if let Some(c) = &mut self.capture {
                        c.ring.push(now.as_nanos(), f.data());
                    }
                }
            }
            None => self.rx_ignored += batch.len() as u64,
        }
        batch.set_all(Verdict::Drop(DropReason::Consumed));
    }

    #[inline]
    fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
        let now = cx.now;
        self.now = now;
        if self.tx_end.is_some() {
            return;
        }
        let Some(src) = &self.source else { return };
        let start = *self.started.get_or_insert(now);
        if !self.capacity_checked {
            self.capacity_checked = true;
            let u = cx.pool.umem();
            if src.max_len() > (u.frame_size() - u.data_offset()) as usize {
                self.tx.oversize = 1;
                self.end_tx(now);
                return;
            }
        }
        if self.duration.is_some_and(|d| now - start >= d) {
            self.end_tx(now);
            return;
        }
        let left = self.count.map_or(usize::MAX, |c| usize::try_from(c - self.tx.pkts).unwrap_or(usize::MAX));
        let want = cx.tx_room(self.to).min(left);
        if want == 0 {
            return;
        }
        let n = self.bucket.grant(now, want, |i| src.len_at(i));
        if n == 0 {
            return;
        }
        let Pktgen { source: Some(src), seq, tx, bucket, to, .. } = self else { return };
        let ts = now.as_nanos();
        let got = cx.emit_new(*to, n, |_, f| {
            let len = src.build(f.buf_mut(), *seq, ts);
            f.set_len(len);
            *seq += 1;
            tx.bytes += len as u64;
        });
        tx.pkts += got as u64;
        if got < n {
            tx.pool_empty += (n - got) as u64;
            bucket.give_back(n - got, |i| src.len_at(i));
        }
        if self.count.is_some_and(|c| self.tx.pkts >= c) {
            self.end_tx(now);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.capture.as_ref().map(|c| c.next_flush)
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, 'u>) {
        if let Some(c) = &mut self.capture {
            c.flush(cx.now);
            c.next_flush = cx.now + CAPTURE_FLUSH;
        }
    }

    fn is_done(&self) -> bool {
        match self.role {
            Role::Rx => false,
            Role::Tx => self.tx_end.is_some(),
            Role::TxRx => self.tx_end.is_some_and(|e| self.now - e >= self.linger),
        }
    }

    fn finish(&mut self) {
        let now = self.now;
        if let Some(c) = &mut self.capture {
            c.flush(now);
            if let Some(sink) = c.sink.take() {
                if sink.finish().is_err() {
                    c.errors += 1;
                }
            }
        }
    }

    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        if self.role.sends() {
            out.push(("tx_pkts", self.tx.pkts));
            out.push(("tx_bytes", self.tx.bytes));
            out.push(("tx_pool_empty", self.tx.pool_empty));
            if self.tx.oversize > 0 {
                out.push(("tx_oversize", self.tx.oversize));
            }
        }
        match &self.rx {
            Some(rx) => {
                let (received, lost, reordered, dup, late) = rx.totals();
                let h = rx.histogram();
                out.push(("rx_pkts", rx.frames()));
                out.push(("rx_received", received));
                out.push(("rx_lost", lost));
                out.push(("rx_reordered", reordered));
                out.push(("rx_dup", dup));
                out.push(("rx_late", late));
                out.push(("rx_foreign", rx.foreign()));
                if !h.is_empty() {
                    out.push(("rx_lat_min_ns", h.min()));
                    out.push(("rx_lat_p50_ns", h.value_at_quantile(0.5)));
                    out.push(("rx_lat_p99_ns", h.value_at_quantile(0.99)));
                    out.push(("rx_lat_max_ns", h.max()));
                }
            }
            None => out.push(("rx_ignored", self.rx_ignored)),
        }
        if let Some(c) = &self.capture {
            let cc = c.counters();
            out.push(("capture_frames", cc.captured));
            out.push(("capture_missed", cc.missed));
            out.push(("capture_errors", cc.errors));
        }
        if let Ok(mut g) = self.shared.lock() {
            let g = &mut *g;
            g.report.tx = self.tx;
            g.report.rx_ignored = self.rx_ignored;
            g.report.tx_start_ns = self.started.map(|t| t.as_nanos());
            g.report.tx_end_ns = self.tx_end.map(|t| t.as_nanos());
            g.report.capture = self.capture.as_ref().map(Capture::counters);
            if let (Some(dst), Some(src)) = (&mut g.rx, &self.rx) {
                dst.copy_from(src);
            }
        }
    }
}
