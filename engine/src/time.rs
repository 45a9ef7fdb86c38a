//! Time for the poll loop and for sans-I/O protocol code.
//!
//! [`Instant`] is a plain nanosecond count since a [`Clock`]'s epoch: `Copy`, totally ordered,
//! and constructible in tests (`Instant::from_nanos`), so protocol code that takes `now` as an
//! argument is deterministic under test. [`Clock`] reads the CPU's time-stamp counter (constant
//! and non-stop on the machines we target; checked at calibration) and converts with a
//! fixed-point multiplier calibrated against `std::time::Instant`, so one read costs a few
//! nanoseconds — cheap enough for once per loop iteration.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time: nanoseconds since the clock's epoch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A TSC-based monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    c0: u64,
    /// Nanoseconds per cycle in 32.32 fixed point.
    mult: u64,
    t0: std::time::Instant,
}

impl Clock {
    /// Calibrates against the system clock for about 20 ms.
    pub fn new() -> Clock {
        let t0 = std::time::Instant::now();
        let c0 = nic::sys::cycles();
        std::thread::sleep(Duration::from_millis(20));
        let (c1, t1) = (nic::sys::cycles(), std::time::Instant::now());
        let ns = (t1 - t0).as_nanos() as u64;
        let cycles = c1.saturating_sub(c0).max(1);
        Clock { c0, mult: (ns << 32) / cycles, t0 }
    }

    /// Now.
    #[inline]
    pub fn now(&self) -> Instant {
        let d = nic::sys::cycles().saturating_sub(self.c0) as u128;
        Instant(((d * self.mult as u128) >> 32) as u64)
    }

    /// Converts to a `std::time::Instant` (for reports).
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.t0 + Duration::from_nanos(t.0)
    }

    /// The CPU cycle rate the calibration found, in Hz.
    pub fn cycles_per_second(&self) -> f64 {
        (1u128 << 32) as f64 / self.mult as f64 * 1e9
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_tracks_the_system_clock() {
        let c = Clock::new();
        let a = c.now();
        let s = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let b = c.now();
        let real = s.elapsed().as_nanos() as f64;
        let ours = (b - a).as_nanos() as f64;
        assert!((ours / real - 1.0).abs() < 0.1, "clock drifts: ours {ours} real {real}");
        assert!(c.cycles_per_second() > 1e8);
    }

    #[test]
    fn instant_arithmetic() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(3)).as_nanos(), 8_000_000);
        assert_eq!(t - Instant::from_millis(2), Duration::from_millis(3));
        assert_eq!(Instant::from_millis(2) - t, Duration::ZERO);
    }
}
