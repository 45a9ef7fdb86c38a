//! [`TokenBucket`]: the generator's pacing, sans-I/O (time comes in as an argument).
//!
//! The bucket holds credit in frames (packet rates) or bits (L1/L2 bit rates); each call to
//! [`TokenBucket::grant`] first adds `elapsed × rate`, capped at the bucket's depth, then
//! grants as many of the next frames as the credit pays for. Guarantees:
//!
//! * **Exact long-run rate.** Credit is kept in integers of `10⁻¹²` units (a unit is a frame
//!   or a bit; the rate is rounded to 0.001 units/s once, at construction), so fractional
//!   credit carries over between calls and nothing drifts, whatever the call period.
//! * **Smooth at the batch level.** The depth caps what accumulates while the generator could
//!   not send (a stall, a full TX ring): after a stall it sends at most `depth` worth at once
//!   instead of catching up at line rate. The app sizes the depth to 5 ms of traffic (at least
//!   two TX stagings), so a stall longer than `depth / rate` gives up its credit.
//! * `Rate::Max` grants everything asked for.
//!
//! Bit rates count what the wire carries: L1 counts `len + 24` bytes per frame (FCS, preamble
//! and SFD, inter-frame gap), L2 counts `len + 4` (FCS). Frame sizes come from the caller, one
//! per granted frame, so mixed sizes (IMIX, random, pcap replay) are paced exactly.

use engine::Instant;

use super::spec::{Rate, L1_OVERHEAD, L2_OVERHEAD};

/// What a unit of credit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// One frame.
    Frames,
    /// One bit of the frame plus its FCS, preamble and inter-frame gap.
    L1Bits,
    /// One bit of the frame plus its FCS.
    L2Bits,
}

impl Unit {
    /// Units one frame of `len` bytes (without FCS) costs.
    #[inline]
    pub fn cost(self, len: usize) -> u64 {
        match self {
            Unit::Frames => 1,
            Unit::L1Bits => (len + L1_OVERHEAD) as u64 * 8,
            Unit::L2Bits => (len + L2_OVERHEAD) as u64 * 8,
        }
    }
}

/// Credit per unit: 1000 (the rate is kept in milli-units per second) × 10⁹ (ns per second).
const SCALE: u128 = 1_000 * 1_000_000_000;

/// A token bucket. See the module docs.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// None: unlimited.
    unit: Option<Unit>,
    /// Milli-units per second.
    rate_milli: u128,
    /// Credit, in units × [`SCALE`].
    credit: u128,
    /// Cap on the credit, same scale.
    depth: u128,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket for `rate` whose depth is `depth_frames` frames of `depth_frame_len` bytes (at
    /// least one such frame). It starts empty: the first frame goes out one frame time after the
    /// first call.
    pub fn new(rate: Rate, depth_frames: usize, depth_frame_len: usize) -> TokenBucket {
        let (unit, per_s) = match rate {
            Rate::Pps(r) => (Unit::Frames, r),
            Rate::L1Mbps(m) => (Unit::L1Bits, m * 1e6),
            Rate::L2Mbps(m) => (Unit::L2Bits, m * 1e6),
            Rate::Percent { pct, link_mbps } => (Unit::L1Bits, pct / 100.0 * link_mbps * 1e6),
            Rate::Max => return TokenBucket::unlimited(),
        };
        let rate_milli = if per_s.is_finite() && per_s > 0.0 { (per_s * 1000.0).round() as u128 } else { 0 };
        let depth = u128::from(unit.cost(depth_frame_len)) * depth_frames.max(1) as u128 * SCALE;
        TokenBucket { unit: Some(unit), rate_milli, credit: 0, depth, last: None }
    }

    /// A bucket that grants everything.
    pub fn unlimited() -> TokenBucket {
        TokenBucket { unit: None, rate_milli: 0, credit: 0, depth: 0, last: None }
    }

    /// The unit (None when unlimited).
    pub fn unit(&self) -> Option<Unit> {
        self.unit
    }

    /// Grants up to `want` frames at time `now`; `len_of(i)` is the length of the `i`-th frame
    /// from now (only called for bit rates). Time that runs backwards adds nothing.
    #[inline]
    pub fn grant(&mut self, now: Instant, want: usize, mut len_of: impl FnMut(usize) -> usize) -> usize {
        let Some(unit) = self.unit else { return want };
        match self.last {
            Some(last) if now > last => {
                let dt = u128::from(now.as_nanos() - last.as_nanos());
                self.credit = (self.credit + dt * self.rate_milli).min(self.depth);
                self.last = Some(now);
            }
            Some(_) => {}
            None => self.last = Some(now),
        }
        if unit == Unit::Frames {
            let n = ((self.credit / SCALE) as usize).min(want);
            self.credit -= n as u128 * SCALE;
            return n;
        }
        let mut n = 0;
        while n < want {
            let c = u128::from(unit.cost(len_of(n))) * SCALE;
            if self.credit < c {
                break;
            }
            self.credit -= c;
            n += 1;
        }
        n
    }

    /// Returns the credit of `n` granted frames that could not be sent (`len_of(i)`: the length
    /// of the `i`-th of them), so the long-run rate stays exact.
    pub fn give_back(&mut self, n: usize, mut len_of: impl FnMut(usize) -> usize) {
        let Some(unit) = self.unit else { return };
        let back: u128 = (0..n).map(|i| u128::from(unit.cost(len_of(i)))).sum::<u128>() * SCALE;
        self.credit = (self.credit + back).min(self.depth.max(back));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktgen::spec::IMIX_PATTERN;

    /// Runs `bucket` for `secs` simulated seconds in steps of `step_ns`, asking for as much as
    /// it can; returns (frames, units) granted.
    fn run(b: &mut TokenBucket, secs: u64, step_ns: u64, sizes: &[usize]) -> (u64, u128) {
        let unit = b.unit().unwrap();
        let (mut frames, mut units) = (0u64, 0u128);
        let end = secs * 1_000_000_000;
        let mut t = 0;
        while t <= end {
            let base = frames as usize;
            let n = b.grant(Instant::from_nanos(t), usize::MAX, |i| sizes[(base + i) % sizes.len()]);
            for i in 0..n {
                units += u128::from(unit.cost(sizes[(base + i) % sizes.len()]));
            }
            frames += n as u64;
            t += step_ns;
        }
        (frames, units)
    }

    fn within(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= want * tol
    }

    #[test]
    fn one_second_at_every_step_size_is_within_a_thousandth() {
        let imix: Vec<usize> = IMIX_PATTERN.iter().map(|&n| n as usize).collect();
        let cases: [(Rate, &[usize], f64); 6] = [
            (Rate::Pps(1_000_000.0), &[60], 1e6),
            (Rate::Pps(12_345.6), &[60], 12_345.6),
            (Rate::L1Mbps(1000.0), &[60], 1e9),
            (Rate::L1Mbps(2500.0), &imix, 2.5e9),
            (Rate::L2Mbps(500.0), &imix, 5e8),
            (Rate::Percent { pct: 10.0, link_mbps: 10_000.0 }, &[1514], 1e9),
        ];
        for (rate, sizes, units_per_s) in cases {
            for step_ns in [1_000u64, 10_000, 100_000, 1_000_000] {
                // Depth: room for two steps' worth, so the test measures the rate, not the cap.
                let frames_per_step = units_per_s * step_ns as f64
                    / 1e9
                    / TokenBucket::new(rate, 1, sizes[0]).unit().unwrap().cost(*sizes.iter().min().unwrap()) as f64;
                let depth = (2.0 * frames_per_step).ceil() as usize + 64;
                let mut b = TokenBucket::new(rate, depth, *sizes.iter().max().unwrap());
                let (frames, units) = run(&mut b, 1, step_ns, sizes);
                assert!(
                    within(units as f64, units_per_s, 1e-3),
                    "{rate:?} step {step_ns} ns: {units} units ({frames} frames), want {units_per_s}"
                );
            }
        }
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        // 3 frames per second polled every millisecond for 1000 s: each call earns 0.003 frames.
        let mut b = TokenBucket::new(Rate::Pps(3.0), 4, 60);
        let (frames, _) = run(&mut b, 1000, 1_000_000, &[60]);
        assert_eq!(frames, 3000);
        // 1 Gbit/s L1 with 60-byte frames is 1 488 095.238 frames/s: over 10 s, exactly the
        // floor of the credit (steps of 8 µs end exactly at 10 s).
        let mut b = TokenBucket::new(Rate::L1Mbps(1000.0), 64, 60);
        let (frames, _) = run(&mut b, 10, 8_000, &[60]);
        assert_eq!(frames, 14_880_952);
    }

    #[test]
    fn depth_caps_the_burst_after_a_stall_and_max_grants_everything() {
        let mut b = TokenBucket::new(Rate::Pps(1e6), 64, 60);
        assert_eq!(b.grant(Instant::from_nanos(0), 1000, |_| 60), 0, "starts empty");
        assert_eq!(b.grant(Instant::from_millis(1000), 1000, |_| 60), 64, "one second idle: one depth");
        assert_eq!(b.grant(Instant::from_millis(1000), 1000, |_| 60), 0);
        assert_eq!(b.grant(Instant::from_nanos(1_000_010_000), 1000, |_| 60), 10);
        // Time going backwards adds nothing and does not panic.
        assert_eq!(b.grant(Instant::from_millis(5), 1000, |_| 60), 0);
        let mut m = TokenBucket::new(Rate::Max, 1, 60);
        assert_eq!(m.grant(Instant::ZERO, 123, |_| unreachable!()), 123);
        assert!(m.unit().is_none());
    }

    #[test]
    fn bit_rates_pay_per_frame_size_and_give_back_restores_credit() {
        // 8 Mbit/s L2: one 996-byte frame (1000 with FCS) costs 8000 bits = 1 ms.
        let mut b = TokenBucket::new(Rate::L2Mbps(8.0), 10, 996);
        b.grant(Instant::ZERO, 10, |_| 996);
        assert_eq!(b.grant(Instant::from_millis(3), 10, |_| 996), 3);
        assert_eq!(b.grant(Instant::from_millis(4), 10, |i| if i == 0 { 1996 } else { 996 }), 0, "2 ms frame");
        assert_eq!(b.grant(Instant::from_millis(5), 10, |i| if i == 0 { 1996 } else { 996 }), 1);
        b.give_back(1, |_| 1996);
        assert_eq!(b.grant(Instant::from_millis(5), 10, |_| 996), 2);
        assert_eq!(Unit::L1Bits.cost(60), 672);
        assert_eq!(Unit::L2Bits.cost(60), 512);
    }
}
