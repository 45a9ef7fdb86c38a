//! Per-lcore counters and their publication.
//!
//! The hot path increments plain integers in an lcore-owned, cache-line-aligned
//! [`LcoreCounters`]; nothing is shared per packet. Every publication period (default 100 ms,
//! checked once per loop iteration against the loop clock) the lcore copies its counters, its
//! ports' counters, the kernel's XDP statistics (a syscall, at most once per second) and its
//! apps' reports into a [`LcoreSnapshot`] behind a mutex it only `try_lock`s — a reader can
//! delay a publication, never the data path. Readers (the daemon's once-per-second line, the
//! final summary, metrics) compute rates from two snapshots.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nic::pool::CacheStats;
use nic::{PortCounters, XdpStatistics};

use crate::app::DropCounters;

/// Buckets of the burst-size histogram: 0, 1, 2–3, 4–7, …, 128–255, ≥256.
pub const BURST_BUCKETS: usize = 10;

/// Histogram bucket of a burst of `n` frames.
#[inline]
pub fn burst_bucket(n: usize) -> usize {
    ((usize::BITS - n.leading_zeros()) as usize).min(BURST_BUCKETS - 1)
}

/// Label of a histogram bucket ("0", "1", "2-3", …, "256+").
pub fn bucket_label(b: usize) -> String {
    match b {
        0 => "0".into(),
        1 => "1".into(),
        b if b == BURST_BUCKETS - 1 => format!("{}+", 1 << (b - 1)),
        b => format!("{}-{}", 1 << (b - 1), (1 << b) - 1),
    }
}

/// Counters of one lcore (owned by it; plain `+=` on the hot path).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[repr(align(64))]
pub struct LcoreCounters {
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations in which no frame was received, sent or produced.
    pub idle_iterations: u64,
    /// RX bursts that returned no frame (per queue poll).
    pub empty_polls: u64,
    /// Frames received on all queues.
    pub rx_frames: u64,
    /// Frames posted to TX rings of local ports.
    pub tx_frames: u64,
    /// Frames handed to other lcores.
    pub handoff_out: u64,
    /// Frames taken from other lcores.
    pub handoff_in: u64,
    /// Times the lcore slept in `poll()` (idle = "poll").
    pub sleeps: u64,
    /// Drops by reason.
    pub drops: DropCounters,
    /// Burst-size histogram of RX polls (see [`burst_bucket`]).
    pub burst_hist: [u64; BURST_BUCKETS],
    /// Loop gaps (time between the starts of two iterations) by length, see [`STALL_BOUNDS`]:
    /// how often the lcore did not look at its rings for that long (preemption, a long
    /// syscall, softirq work on its core). A ring of N slots at R frames/s overflows after a gap
    /// of N / R.
    pub stalls: [u64; STALL_BUCKETS],
    /// Longest loop gap seen, nanoseconds.
    pub max_gap_ns: u64,
}

/// Lower bounds of the loop-gap buckets of [`LcoreCounters::stalls`]: ≥ 50 µs, ≥ 200 µs,
/// ≥ 1 ms, ≥ 5 ms. Shorter gaps are not counted.
pub const STALL_BOUNDS: [Duration; STALL_BUCKETS] =
    [Duration::from_micros(50), Duration::from_micros(200), Duration::from_millis(1), Duration::from_millis(5)];
/// Number of loop-gap buckets.
pub const STALL_BUCKETS: usize = 4;

impl LcoreCounters {
    /// Records a loop gap.
    #[inline]
    pub fn note_gap(&mut self, gap: Duration) {
        let ns = gap.as_nanos() as u64;
        if ns < STALL_BOUNDS[0].as_nanos() as u64 {
            return;
        }
        self.max_gap_ns = self.max_gap_ns.max(ns);
        let b = STALL_BOUNDS.iter().rposition(|&b| gap >= b).unwrap_or(0);
        self.stalls[b] += 1;
    }
}

/// Label of a loop-gap bucket (">=50us", …).
pub fn stall_label(b: usize) -> String {
    let d = STALL_BOUNDS[b];
    if d >= Duration::from_millis(1) {
        format!(">={}ms", d.as_millis())
    } else {
        format!(">={}us", d.as_micros())
    }
}

/// What one (port, queue) looked like at publication time.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// "port:queue".
    pub name: String,
    /// Port counters.
    pub port: PortCounters,
    /// Kernel XDP statistics (AF_XDP ports; refreshed at most once per second).
    pub xdp: Option<XdpStatistics>,
    /// Name of the app instance that owns the queue.
    pub app: String,
}

/// What one app shard reported at publication time.
#[derive(Debug, Clone, Default)]
pub struct AppSnapshot {
    /// Instance name.
    pub name: String,
    /// App counters, as (name, value).
    pub counters: Vec<(&'static str, u64)>,
}

/// A published copy of an lcore's state.
#[derive(Debug, Clone, Default)]
pub struct LcoreSnapshot {
    /// Lcore name.
    pub name: String,
    /// CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Time since the loop started.
    pub elapsed: Duration,
    /// Loop counters.
    pub counters: LcoreCounters,
    /// Frame cache counters.
    pub cache: CacheStats,
    /// Per-queue state.
    pub queues: Vec<QueueSnapshot>,
    /// Per-app-shard state.
    pub apps: Vec<AppSnapshot>,
    /// Whether the loop is still running.
    pub running: bool,
    /// Configured burst size.
    pub burst: usize,
}

/// Shared handle to an lcore's published snapshot.
pub type SharedSnapshot = Arc<Mutex<LcoreSnapshot>>;

impl LcoreSnapshot {
    /// Port counters summed over the lcore's queues.
    pub fn port_totals(&self) -> PortCounters {
        let mut t = PortCounters::default();
        for q in &self.queues {
            let p = &q.port;
            t.rx_packets += p.rx_packets;
            t.rx_bytes += p.rx_bytes;
            t.tx_packets += p.tx_packets;
            t.tx_bytes += p.tx_bytes;
            t.tx_kicks += p.tx_kicks;
            t.tx_kicks_busy += p.tx_kicks_busy;
            t.tx_kick_errors += p.tx_kick_errors;
            t.rx_wakeups += p.rx_wakeups;
            t.rx_wakeup_errors += p.rx_wakeup_errors;
            t.fill_posted += p.fill_posted;
            t.fill_short += p.fill_short;
            t.comp_reaped += p.comp_reaped;
            t.rx_invalid_descs += p.rx_invalid_descs;
            t.rx_empty_polls += p.rx_empty_polls;
        }
        t
    }
}

/// Rates between two snapshots of the same lcore.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Seconds between the snapshots.
    pub secs: f64,
    /// Received frames per second.
    pub rx_pps: f64,
    /// Transmitted frames per second.
    pub tx_pps: f64,
    /// Received bits per second (L2, no FCS).
    pub rx_bps: f64,
    /// Transmitted bits per second.
    pub tx_bps: f64,
    /// Share of RX polls that returned nothing.
    pub empty_poll_ratio: f64,
    /// Share of loop iterations that did nothing.
    pub idle_ratio: f64,
}

impl Rates {
    /// Rates from `prev` to `cur`.
    pub fn between(prev: &LcoreSnapshot, cur: &LcoreSnapshot) -> Rates {
        let secs = cur.elapsed.saturating_sub(prev.elapsed).as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        let (p, c) = (prev.port_totals(), cur.port_totals());
        let d = |a: u64, b: u64| b.saturating_sub(a) as f64;
        let polls =
            cur.counters.burst_hist.iter().sum::<u64>() as f64 - prev.counters.burst_hist.iter().sum::<u64>() as f64;
        let iters = d(prev.counters.iterations, cur.counters.iterations);
        Rates {
            secs,
            rx_pps: d(p.rx_packets, c.rx_packets) / secs,
            tx_pps: d(p.tx_packets, c.tx_packets) / secs,
            rx_bps: d(p.rx_bytes, c.rx_bytes) * 8.0 / secs,
            tx_bps: d(p.tx_bytes, c.tx_bytes) * 8.0 / secs,
            empty_poll_ratio: if polls > 0.0 {
                d(prev.counters.empty_polls, cur.counters.empty_polls) / polls
            } else {
                0.0
            },
            idle_ratio: if iters > 0.0 {
                d(prev.counters.idle_iterations, cur.counters.idle_iterations) / iters
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2() {
        assert_eq!(burst_bucket(0), 0);
        assert_eq!(burst_bucket(1), 1);
        assert_eq!(burst_bucket(2), 2);
        assert_eq!(burst_bucket(3), 2);
        assert_eq!(burst_bucket(64), 7);
        assert_eq!(burst_bucket(127), 7);
        assert_eq!(burst_bucket(256), 9);
        assert_eq!(burst_bucket(10_000), 9);
        assert_eq!(bucket_label(0), "0");
        assert_eq!(bucket_label(3), "4-7");
        assert_eq!(bucket_label(9), "256+");
    }

    /// Each lcore's counters start on a cache line and cover whole lines, so neighbours (in an
    /// array, or fields next to them) never share a line with them.
    #[test]
    fn counters_own_whole_cache_lines() {
        let v = [LcoreCounters::default(), LcoreCounters::default()];
        let (a, b) = (&v[0] as *const LcoreCounters as usize, &v[1] as *const LcoreCounters as usize);
        let size = std::mem::size_of::<LcoreCounters>();
        assert_eq!(a % 64, 0, "starts on a line");
        assert_eq!(size % 64, 0, "covers whole lines");
        assert!((a + size - 1) / 64 < b / 64, "the last line of one is not the first of the next");
    }

    #[test]
    fn port_totals_sum_every_counter_over_the_queues() {
        // Distinct values per field and queue, written out field by field: a field that
        // port_totals forgets, or a new field, shows up here (no `..Default::default()`).
        let q = |k: u64| PortCounters {
            rx_packets: k,
            rx_bytes: 2 * k,
            tx_packets: 3 * k,
            tx_bytes: 4 * k,
            tx_kicks: 5 * k,
            tx_kicks_busy: 6 * k,
            tx_kick_errors: 7 * k,
            rx_wakeups: 8 * k,
            rx_wakeup_errors: 9 * k,
            fill_posted: 10 * k,
            fill_short: 11 * k,
            comp_reaped: 12 * k,
            rx_invalid_descs: 13 * k,
            rx_empty_polls: 14 * k,
        };
        let mut snap = LcoreSnapshot::default();
        for k in [1, 100] {
            snap.queues.push(QueueSnapshot { port: q(k), ..QueueSnapshot::default() });
        }
        assert_eq!(snap.port_totals(), q(101));
    }

    #[test]
    fn rates_from_two_snapshots() {
        let mut a = LcoreSnapshot::default();
        a.queues.push(QueueSnapshot::default());
        let mut b = a.clone();
        b.elapsed = Duration::from_secs(2);
        b.queues[0].port.rx_packets = 2_000_000;
        b.queues[0].port.rx_bytes = 128_000_000;
        b.counters.burst_hist[7] = 100;
        b.counters.burst_hist[0] = 100;
        b.counters.empty_polls = 100;
        b.queues[0].port.tx_packets = 1_000_000;
        b.queues[0].port.tx_bytes = 64_000_000;
        b.counters.iterations = 400;
        b.counters.idle_iterations = 100;
        let r = Rates::between(&a, &b);
        assert_eq!(r.secs, 2.0);
        assert_eq!(r.rx_pps, 1e6);
        assert_eq!(r.rx_bps, 512e6);
        assert_eq!(r.tx_pps, 0.5e6);
        assert_eq!(r.tx_bps, 256e6);
        assert_eq!(r.empty_poll_ratio, 0.5);
        assert_eq!(r.idle_ratio, 0.25);
    }

    #[test]
    fn loop_gaps_land_in_their_buckets_and_the_max_is_kept() {
        let mut c = LcoreCounters::default();
        for us in [1, 49, 50, 199, 200, 999, 1000, 4999, 5000, 60_000] {
            c.note_gap(Duration::from_micros(us));
        }
        assert_eq!(c.stalls, [2, 2, 2, 2]);
        assert_eq!(c.max_gap_ns, 60_000_000);
        let labels: Vec<String> = (0..STALL_BUCKETS).map(stall_label).collect();
        assert_eq!(labels, [">=50us", ">=200us", ">=1ms", ">=5ms"]);
    }
}
