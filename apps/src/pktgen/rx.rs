//! [`RxStats`]: what the receiving side of pktgen measures — per-stream loss, reordering and
//! duplication from the signature's sequence numbers, and one-way latency from its timestamp.
//!
//! Every frame goes through [`RxStats::on_frame`]: Ethernet [+ one VLAN tag] / IPv4 (not a
//! fragment) or IPv6 / UDP or TCP / signature, parsed with `engine::wire`'s checked views. A
//! frame without a signature (truncated, another protocol, no magic) counts as `foreign`;
//! nothing panics on any input. Checksums are not verified (the NIC or the kernel did, or did
//! not, already).
//!
//! TCP segments are also counted as such (`tcp`, with or without a signature). A bare segment
//! (pktgen's 60-byte SYN has no payload) has no room for a signature, so it is counted — frames,
//! bytes, `tcp` — and is `foreign` for the sequence accounting: loss of bare segments is the
//! sender's count minus `tcp`, not a per-stream window.
//!
//! # Sequence accounting, per stream
//!
//! A stream's sequence numbers start at 0 (start the receiver before the sender). The receiver
//! keeps `next` (one past the highest sequence number seen) and a bitmap of the last
//! [`WINDOW`] sequence numbers `[next − WINDOW, next)`. A frame with sequence `s`:
//!
//! * `s ≥ next`: in order (a gap before it is not yet loss); the window slides to `s + 1`, and
//!   every number that slides out of it without having arrived is **lost**;
//! * `s` in the window, not seen: **reordered** (it arrived after a later one) and received;
//! * `s` in the window, seen: **duplicated**;
//! * `s < next − WINDOW`: **late** — its fate was already decided (counted lost if it had not
//!   arrived); it is counted, not received.
//!
//! `lost` in a [`RxSummary`] is final: the gaps still open in the window count too, so it
//! equals `next − received` per stream. During a run, gaps inside the window may still fill.
//!
//! # Latency
//!
//! `now − tx_ts` in ns, where `now` is the receiving lcore's loop time; meaningful when the
//! sender's lcore shares the [`engine::Clock`] ([`engine::LcoreOptions::clock`]). Compact
//! signatures give it modulo 2³² ns. A full timestamp later than `now` (different clocks) is
//! counted as `ts_future` and not recorded. Values go into a pre-allocated
//! [`hdrhistogram::Histogram`] (1 ns .. 10 s, 3 significant digits); larger ones saturate.
//!
//! # Cost
//!
//! Nothing here allocates after [`RxStats::new`]: streams live in a fixed table
//! (`max_streams`, linear lookup with a last-hit shortcut), the histogram has fixed bounds.

use hdrhistogram::Histogram;
use serde::Serialize;

use engine::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
use engine::Instant;

use super::build::Signature;

/// Sequence numbers tracked behind the highest one seen, per stream.
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;
/// Highest latency the histogram resolves (larger values saturate): 10 s.
pub const LATENCY_MAX_NS: u64 = 10_000_000_000;

/// What one sequence number turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// At or past the highest seen so far.
    InOrder,
    /// Filled a gap.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Older than the window.
    Late,
}

/// Sequence tracking of one stream. See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct SeqWindow {
    next: u64,
    /// Bit `x % WINDOW` for sequence `x` in `[next − WINDOW, next)`; starts all ones (the
    /// virtual numbers below 0 count as received, so they are never lost).
    bits: [u64; WORDS],
    received: u64,
    lost: u64,
    reordered: u64,
    duplicated: u64,
    late: u64,
}

impl Default for SeqWindow {
    fn default() -> Self {
        SeqWindow::new()
    }
}

impl SeqWindow {
    /// A stream that has seen nothing.
    pub const fn new() -> SeqWindow {
        SeqWindow { next: 0, bits: [u64::MAX; WORDS], received: 0, lost: 0, reordered: 0, duplicated: 0, late: 0 }
    }

    #[inline]
    fn bit(&self, x: u64) -> bool {
        let i = (x % WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    #[inline]
    fn set(&mut self, x: u64, on: bool) {
        let i = (x % WINDOW) as usize;
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Records sequence number `s`.
    #[inline]
    pub fn record(&mut self, s: u64) -> SeqEvent {
        if s >= self.next {
            self.slide_to(s.saturating_add(1));
            self.set(s, true);
            self.received += 1;
            return SeqEvent::InOrder;
        }
        if self.next - s > WINDOW {
            self.late += 1;
            return SeqEvent::Late;
        }
        if self.bit(s) {
            self.duplicated += 1;
            return SeqEvent::Duplicate;
        }
        self.set(s, true);
        self.received += 1;
        self.reordered += 1;
        SeqEvent::Reordered
    }

    /// Slides the window so that it ends at `new_next`, counting what leaves it unreceived.
    #[inline]
    fn slide_to(&mut self, new_next: u64) {
        let d = new_next - self.next;
        if d >= WINDOW {
            let zeros: u64 = self.bits.iter().map(|w| u64::from(w.count_zeros())).sum();
            // Numbers in [next, new_next − WINDOW) never even entered the window.
            self.lost += zeros + (d - WINDOW);
            self.bits = [0; WORDS];
        } else {
            for x in self.next..new_next {
                if !self.bit(x) {
                    self.lost += 1;
                }
                self.set(x, false);
            }
        }
        self.next = new_next;
    }

    /// The full sequence number of a compact signature's low 32 bits: the one nearest to
    /// `next`. None if that would be below 0.
    #[inline]
    pub fn extend32(&self, low: u32) -> Option<u64> {
        let diff = i64::from(low.wrapping_sub(self.next as u32) as i32);
        u64::try_from(i128::from(self.next) + i128::from(diff)).ok()
    }

    /// One past the highest sequence number seen.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Distinct sequence numbers received (in order or reordered, not late).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Lost so far, final: numbers that left the window unreceived plus the gaps still open
    /// in it (`next − received`).
    pub fn lost(&self) -> u64 {
        let open: u64 = self.bits.iter().map(|w| u64::from(w.count_zeros())).sum();
        self.lost + open
    }

    /// Lost for certain (slid out of the window unreceived); [`Self::lost`] adds the open gaps.
    pub fn lost_confirmed(&self) -> u64 {
        self.lost
    }

    /// Received after a higher sequence number.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Received more than once (within the window).
    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    /// Arrived after leaving the window.
    pub fn late(&self) -> u64 {
        self.late
    }
}

/// Latency percentiles in ns (all zero when nothing was measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest (saturated at [`LATENCY_MAX_NS`]).
    pub max_ns: u64,
}

impl LatencySummary {
    /// Percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        }
    }
}

/// One stream's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// Stream id.
    pub stream: u16,
    /// Distinct sequence numbers received.
    pub received: u64,
    /// Lost (final).
    pub lost: u64,
    /// Reordered.
    pub reordered: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Late (older than the window).
    pub late: u64,
    /// One past the highest sequence number seen (the number of frames the sender sent, if the
    /// last one arrived).
    pub next_seq: u64,
}

/// Everything the receiver measured. Serialises to JSON with these field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RxSummary {
    /// Frames seen.
    pub frames: u64,
    /// Their bytes (without FCS).
    pub bytes: u64,
    /// Frames with a signature.
    pub signed: u64,
    /// Frames without one.
    pub foreign: u64,
    /// TCP segments (signed or not: a bare SYN cannot carry a signature).
    pub tcp: u64,
    /// Signed frames of streams beyond the table's capacity (not tracked).
    pub stream_overflow: u64,
    /// Signed frames whose full timestamp was later than the receive time.
    pub ts_future: u64,
    /// Sum over streams.
    pub received: u64,
    /// Sum over streams.
    pub lost: u64,
    /// Sum over streams.
    pub reordered: u64,
    /// Sum over streams.
    pub duplicated: u64,
    /// Sum over streams.
    pub late: u64,
    /// Per stream, in order of first arrival.
    pub streams: Vec<StreamSummary>,
    /// One-way latency over every signed frame.
    pub latency: LatencySummary,
}

/// Receiver statistics. See the module docs.
#[derive(Debug, Clone)]
pub struct RxStats {
    ids: Box<[u16]>,
    windows: Box<[SeqWindow]>,
    used: usize,
    last_hit: usize,
    frames: u64,
    bytes: u64,
    signed: u64,
    foreign: u64,
    tcp: u64,
    stream_overflow: u64,
    ts_future: u64,
    hist: Histogram<u64>,
}

impl RxStats {
    /// Statistics for up to `max_streams` streams (at least one), with every table and the
    /// latency histogram allocated here.
    pub fn new(max_streams: usize) -> RxStats {
        let n = max_streams.max(1);
        RxStats {
            ids: vec![0; n].into_boxed_slice(),
            windows: vec![SeqWindow::new(); n].into_boxed_slice(),
            used: 0,
            last_hit: 0,
            frames: 0,
            bytes: 0,
            signed: 0,
            foreign: 0,
            tcp: 0,
            stream_overflow: 0,
            ts_future: 0,
            hist: Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("constant histogram bounds are valid"),
        }
    }

    /// Accounts one received frame at time `now`.
    #[inline]
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        self.frames += 1;
        self.bytes += frame.len() as u64;
        let Some((proto, payload)) = l4_payload(frame) else {
            self.foreign += 1;
            return;
        };
        if proto == IpProtocol::TCP {
            self.tcp += 1;
        }
        match Signature::parse(payload) {
            Some(sig) => self.on_signature(now, &sig),
            None => self.foreign += 1,
        }
    }

    /// Accounts one signature received at `now` (what [`Self::on_frame`] does after parsing).
    #[inline]
    pub fn on_signature(&mut self, now: Instant, sig: &Signature) {
        self.signed += 1;
        let Some(w) = self.stream(sig.stream) else {
            self.stream_overflow += 1;
            return;
        };
        let now = now.as_nanos();
        let latency = if sig.is_compact() {
            match w.extend32(sig.seq as u32) {
                Some(s) => {
                    w.record(s);
                }
                // Extends below 0: older than anything this stream can still place.
                None => w.late += 1,
            }
            Some(u64::from((now as u32).wrapping_sub(sig.tx_ts as u32)))
        } else {
            w.record(sig.seq);
            now.checked_sub(sig.tx_ts)
        };
        match latency {
            Some(l) => self.hist.saturating_record(l),
            None => self.ts_future += 1,
        }
    }

    /// The window of `id`, added if new and there is room.
    #[inline]
    fn stream(&mut self, id: u16) -> Option<&mut SeqWindow> {
        let i = if self.used > 0 && self.ids[self.last_hit] == id {
            self.last_hit
        } else if let Some(i) = self.ids[..self.used].iter().position(|&x| x == id) {
            i
        } else if self.used < self.ids.len() {
            self.ids[self.used] = id;
            self.used += 1;
            self.used - 1
        } else {
            return None;
        };
        self.last_hit = i;
        Some(&mut self.windows[i])
    }

    /// Frames seen.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames without a signature.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// TCP segments.
    pub fn tcp(&self) -> u64 {
        self.tcp
    }

    /// The latency histogram (ns).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// The window of stream `id`, if it has been seen.
    pub fn window(&self, id: u16) -> Option<&SeqWindow> {
        self.ids[..self.used].iter().position(|&x| x == id).map(|i| &self.windows[i])
    }

    /// Totals over streams: (received, lost, reordered, duplicated, late).
    pub fn totals(&self) -> (u64, u64, u64, u64, u64) {
        self.windows[..self.used].iter().fold((0, 0, 0, 0, 0), |t, w| {
            (t.0 + w.received, t.1 + w.lost(), t.2 + w.reordered, t.3 + w.duplicated, t.4 + w.late)
        })
    }

    /// Everything measured so far, `lost` final (see the module docs). Allocates (off the
    /// hot path).
    pub fn summary(&self) -> RxSummary {
        let (received, lost, reordered, duplicated, late) = self.totals();
        RxSummary {
            frames: self.frames,
            bytes: self.bytes,
            signed: self.signed,
            foreign: self.foreign,
            tcp: self.tcp,
            stream_overflow: self.stream_overflow,
            ts_future: self.ts_future,
            received,
            lost,
            reordered,
            duplicated,
            late,
            streams: self.ids[..self.used]
                .iter()
                .zip(self.windows.iter())
                .map(|(&stream, w)| StreamSummary {
                    stream,
                    received: w.received,
                    lost: w.lost(),
                    reordered: w.reordered,
                    duplicated: w.duplicated,
                    late: w.late,
                    next_seq: w.next,
                })
                .collect(),
            latency: LatencySummary::of(&self.hist),
        }
    }

    /// Makes `self` a copy of `other` without allocating when both were created with the same
    /// `max_streams` (used to publish a snapshot off the hot path).
    pub fn copy_from(&mut self, other: &RxStats) {
        if self.ids.len() == other.ids.len() {
            self.ids.copy_from_slice(&other.ids);
            self.windows.copy_from_slice(&other.windows);
        } else {
            self.ids = other.ids.clone();
            self.windows = other.windows.clone();
        }
        self.used = other.used;
        self.last_hit = other.last_hit;
        self.frames = other.frames;
        self.bytes = other.bytes;
        self.signed = other.signed;
        self.foreign = other.foreign;
        self.tcp = other.tcp;
        self.stream_overflow = other.stream_overflow;
        self.ts_future = other.ts_future;
        // Same bounds: `add` into an empty histogram is one memory copy.
        self.hist.reset();
        if self.hist.add(&other.hist).is_err() {
            self.hist.clone_from(&other.hist);
        }
    }
}

/// The signature of an Ethernet [+VLAN] / IPv4-or-IPv6 / UDP-or-TCP frame, if it has one.
#[inline]
pub fn signature_of(frame: &[u8]) -> Option<Signature> {
    Signature::parse(l4_payload(frame)?.1)
}

/// The transport protocol (UDP or TCP) and payload of an Ethernet [+VLAN] / IPv4 (not a
/// fragment) or IPv6 frame; None for anything else or anything truncated.
#[inline]
pub fn l4_payload(frame: &[u8]) -> Option<(IpProtocol, &[u8])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ethertype = eth.l3_info().ok()?.ethertype;
    let l3 = eth.into_l3_payload().ok()?;
    let (proto, seg) = match ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            if ip.is_fragment() {
                return None;
            }
            (ip.protocol(), ip.into_payload())
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            (ip.next_header(), ip.into_payload())
        }
        _ => return None,
    };
    match proto {
        IpProtocol::UDP => Some((proto, UdpPacket::new_checked(seg).ok()?.into_payload())),
        IpProtocol::TCP => Some((proto, TcpPacket::new_checked(seg).ok()?.into_payload())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktgen::build::{FrameBuilder, FLAG_COMPACT};
    use crate::pktgen::spec::{FrameSize, PktgenSpec};
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn window(seqs: impl IntoIterator<Item = u64>) -> SeqWindow {
        let mut w = SeqWindow::new();
        for s in seqs {
            w.record(s);
        }
        w
    }

    fn counts(w: &SeqWindow) -> (u64, u64, u64, u64, u64) {
        (w.received(), w.lost(), w.reordered(), w.duplicated(), w.late())
    }

    #[test]
    fn gaps_reorders_and_duplicates_are_counted_exactly() {
        let w = window([0, 1, 2, 5, 3, 4, 4, 9, 0]);
        // received 0 1 2 5 3 4 9; reordered 3 4; duplicates 4 and 0; lost 6 7 8.
        assert_eq!(counts(&w), (7, 3, 2, 2, 0));
        assert_eq!(w.next(), 10);
        assert_eq!(w.lost_confirmed(), 0, "the gap is still inside the window");
        // A gap filled later is not loss.
        assert_eq!(counts(&window([1, 0])), (2, 0, 1, 0, 0));
        // Nothing received before the first one: counted lost (sequences start at 0).
        assert_eq!(counts(&window([3, 4])), (2, 3, 0, 0, 0));
        assert_eq!(counts(&SeqWindow::new()), (0, 0, 0, 0, 0));
    }

    #[test]
    fn the_window_wraps_and_old_arrivals_are_late() {
        // In order through many windows: nothing lost.
        let w = window(0..3 * WINDOW + 17);
        assert_eq!(counts(&w), (3 * WINDOW + 17, 0, 0, 0, 0));
        // A gap that slides out of the window is confirmed lost; an arrival after that is late.
        let w = window([0, 5000, 1]);
        assert_eq!(counts(&w), (2, 4999, 0, 0, 1));
        assert_eq!(w.lost_confirmed(), 5000 - WINDOW);
        // The oldest number still in the window can be placed; one older cannot.
        let w = window([0, WINDOW, 1]);
        assert_eq!(counts(&w), (3, WINDOW - 2, 1, 0, 0));
        let w = window([0, WINDOW + 1, 1]);
        assert_eq!(counts(&w), (2, WINDOW, 0, 0, 1));
        // Exactly one window ahead, and far ahead.
        assert_eq!(counts(&window([0, WINDOW + 1, 2 * WINDOW + 2])).1, 2 * WINDOW);
        assert_eq!(counts(&window([u64::MAX - 1])).0, 1, "no overflow at the top");
    }

    #[test]
    fn dropping_every_nth_gives_exactly_the_expected_loss() {
        // The last frame arrives: loss after the last arrival cannot be seen by sequence
        // numbers alone (the sender's count tells).
        for n in [2u64, 10, 100, 4096, 5000] {
            let seqs = 0..=100_000u64;
            let dropped = seqs.clone().filter(|i| i % n == n - 1).count() as u64;
            assert_eq!(dropped, 100_001 / n);
            let w = window(seqs.filter(|i| i % n != n - 1));
            assert_eq!(w.lost(), dropped, "every {n}th");
            assert_eq!(w.received(), 100_001 - dropped);
            assert_eq!((w.reordered(), w.duplicated(), w.late()), (0, 0, 0));
        }
    }

    #[test]
    fn compact_numbers_extend_across_the_32_bit_wrap() {
        let mut w = SeqWindow::new();
        assert_eq!(w.extend32(7), Some(7));
        assert_eq!(w.extend32(u32::MAX), None);
        w.record(u64::from(u32::MAX) - 1);
        assert_eq!(w.extend32(u32::MAX), Some(u64::from(u32::MAX)));
        assert_eq!(w.extend32(3), Some(1 << 32 | 3), "wrapped");
        assert_eq!(w.extend32(u32::MAX - 10), Some(u64::from(u32::MAX) - 10), "a little older");
    }

    fn frames(spec: &PktgenSpec, n: u64, ts: impl Fn(u64) -> u64) -> Vec<Vec<u8>> {
        let mut b = FrameBuilder::new(spec, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut buf = vec![0u8; b.max_len()];
        (0..n)
            .map(|i| {
                let len = b.build(&mut buf, i, ts(i));
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn frames_from_the_builder_are_tracked_and_foreign_ones_counted() {
        let mut spec = PktgenSpec { dst_mac: Some([2; 6]), stream: 3, ..Default::default() };
        let mut rx = RxStats::new(4);
        // 60-byte IPv4 (compact signature) then 200-byte IPv6 with VLAN (full), as two streams.
        for (i, f) in frames(&spec, 1000, |i| i * 1000).iter().enumerate() {
            rx.on_frame(Instant::from_nanos(i as u64 * 1000 + 500), f);
        }
        spec.stream = 4;
        spec.ipv6 = true;
        spec.vlan = Some(7);
        spec.src_ip.start = "2001:2::1".parse().unwrap();
        spec.dst_ip.start = "2001:2::2".parse().unwrap();
        spec.size = FrameSize::Fixed(200);
        for (i, f) in frames(&spec, 500, |i| i * 1000).iter().enumerate() {
            if i % 10 != 0 {
                rx.on_frame(Instant::from_nanos(i as u64 * 1000 + 2500), f);
            }
        }
        // Foreign: garbage, an ARP-sized frame, a truncated signed frame, a UDP frame without
        // the magic.
        let good = &frames(&spec, 1, |_| 0)[0];
        let mut nomagic = good.clone();
        nomagic[18 + 40 + 8] ^= 0xff;
        for f in [&[0u8; 3][..], &[0xffu8; 42][..], &good[..good.len() - 1], &nomagic[..]] {
            rx.on_frame(Instant::ZERO, f);
        }
        let s = rx.summary();
        assert_eq!(s.frames, 1000 + 450 + 4);
        assert_eq!(s.signed, 1450);
        assert_eq!(s.foreign, 4);
        assert_eq!((s.received, s.lost, s.reordered, s.duplicated, s.late), (1450, 50, 0, 0, 0));
        assert_eq!(s.streams.len(), 2);
        assert_eq!(s.streams[0], StreamSummary { stream: 3, received: 1000, next_seq: 1000, ..Default::default() });
        assert_eq!(s.streams[1].lost, 50);
        assert_eq!(s.streams[1].next_seq, 500);
        assert_eq!(s.latency.count, 1450);
        assert_eq!(s.latency.min_ns, 500);
        assert_eq!(s.latency.p50_ns, 500);
        let max = s.latency.max_ns;
        assert!((2498..=2502).contains(&max), "{max}");
        assert!(serde_json::to_string(&s).unwrap().contains("\"p999_ns\""));
    }

    #[test]
    fn tcp_segments_are_counted_and_tracked_when_they_carry_a_signature() {
        use crate::pktgen::spec::Proto;
        let mut spec = PktgenSpec { dst_mac: Some([2; 6]), proto: Proto::Tcp, stream: 5, ..Default::default() };
        let mut rx = RxStats::new(4);
        // 300 bare 60-byte SYNs (no room for a signature), then 200 SYNs of 128 bytes that carry one.
        for f in &frames(&spec, 300, |_| 0) {
            rx.on_frame(Instant::from_nanos(10), f);
        }
        spec.size = FrameSize::Fixed(128);
        for f in &frames(&spec, 200, |i| i) {
            rx.on_frame(Instant::from_nanos(1000), f);
        }
        // And 10 UDP frames of another stream.
        let udp = PktgenSpec { dst_mac: Some([2; 6]), stream: 6, ..Default::default() };
        for f in &frames(&udp, 10, |_| 0) {
            rx.on_frame(Instant::from_nanos(10), f);
        }
        let s = rx.summary();
        assert_eq!((s.frames, s.tcp, s.signed, s.foreign), (510, 500, 210, 300));
        assert_eq!(s.bytes, 300 * 60 + 200 * 128 + 10 * 60);
        assert_eq!((s.received, s.lost), (210, 0));
        assert_eq!(s.streams[0], StreamSummary { stream: 5, received: 200, next_seq: 200, ..Default::default() });
        assert_eq!(rx.tcp(), 500);
    }

    #[test]
    fn latency_edge_cases_and_stream_overflow() {
        let mut rx = RxStats::new(1);
        let sig = |stream, seq, tx_ts, flags| Signature { stream, flags, seq, tx_ts };
        rx.on_signature(Instant::from_nanos(100), &sig(1, 0, 200, 0));
        assert_eq!(rx.summary().ts_future, 1, "a timestamp from the future is not recorded");
        // Compact: modulo 2^32 ns.
        rx.on_signature(Instant::from_nanos((1 << 32) + 5), &sig(1, 1, u64::from(u32::MAX), FLAG_COMPACT));
        rx.on_signature(Instant::from_nanos(100 * LATENCY_MAX_NS), &sig(1, 2, 0, 0));
        rx.on_signature(Instant::ZERO, &sig(2, 0, 0, 0));
        let s = rx.summary();
        assert_eq!(s.stream_overflow, 1);
        assert_eq!(s.latency.count, 2);
        assert_eq!(s.latency.min_ns, 6);
        assert!(s.latency.max_ns >= LATENCY_MAX_NS && s.latency.max_ns < LATENCY_MAX_NS + LATENCY_MAX_NS / 100);
        assert_eq!(s.received, 3);
        let mut copy = RxStats::new(1);
        copy.copy_from(&rx);
        assert_eq!(copy.summary(), s);
    }

    proptest! {
        /// Against a set-based model: any mix of in-order runs, jumps, shuffles and repeats.
        #[test]
        fn matches_a_reference_model(ops in proptest::collection::vec((0u8..4, 0u64..6000), 1..400)) {
            let mut w = SeqWindow::new();
            let mut seen = HashSet::new();
            let (mut next, mut received, mut reordered, mut dup, mut late) = (0u64, 0u64, 0u64, 0u64, 0u64);
            let mut hi = 0u64;
            for (kind, x) in ops {
                let s = match kind {
                    0 => hi + 1,
                    1 => hi + x,
                    2 => hi.saturating_sub(x),
                    _ => x,
                };
                hi = hi.max(s);
                let ev = w.record(s);
                let expect = if s >= next {
                    next = s + 1;
                    seen.insert(s);
                    received += 1;
                    SeqEvent::InOrder
                } else if next - s > WINDOW {
                    late += 1;
                    SeqEvent::Late
                } else if !seen.insert(s) {
                    dup += 1;
                    SeqEvent::Duplicate
                } else {
                    received += 1;
                    reordered += 1;
                    SeqEvent::Reordered
                };
                prop_assert_eq!(ev, expect);
            }
            prop_assert_eq!(counts(&w), (received, next - received, reordered, dup, late));
        }
    }
}
