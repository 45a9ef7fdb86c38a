//! RFC 2544 §26.1-style throughput search: the highest offered rate at which the device under
//! test loses no more than a tolerated fraction of frames, found by binary search.
//!
//! Owns the search ([`zero_loss_search`]) and its record ([`SearchResult`], [`Step`]); it is
//! generic over how a trial is run (a closure that offers a rate and returns frames sent and
//! received), so any generator/DUT/sink combination can use it.
//!
//! Procedure and guarantees:
//! * The first rate tried is `hi`; if it passes, that is the result. Otherwise the search halves
//!   the bracket `[lo, hi]`: a passing rate becomes the new `lo`, a failing one the new `hi`,
//!   until `hi − lo < resolution`. If no rate passed, `lo` itself is tried once more at the end,
//!   so the result tells "capacity below `lo`" (`best_pps == None`) from "at least `lo`".
//! * A trial passes when its loss is ≤ `max_loss` (RFC 2544 asks for zero loss; a small
//!   tolerance such as 1e-4 absorbs counter skew at the edges of a trial). A rate passes when
//!   at least `need` of `of` trials pass ([`Trials`]): `Trials::all(n)` is the classic "every
//!   repetition", `Trials::at_least(2, 3)` tolerates one trial spoiled by an event outside the
//!   DUT's control (on a VM: a multi-millisecond vCPU stall that overflows any 2048-slot ring),
//!   the idea of the "exceed ratio" in FD.io CSIT's MLRsearch. Trials stop as soon as the
//!   verdict is known (two passes or two failures out of three).
//! * Loss is `(sent − received) / sent`, clamped at 0 when more arrived than were sent (the raw
//!   counts are kept in the step); a trial that sent nothing is an error.
//! * Every trial is recorded in order ([`SearchResult::steps`]); errors from a trial abort the
//!   search and are returned with the rate that failed.

use anyhow::{bail, Context, Result};

/// How many trials a rate gets and how many of them must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Trials {
    /// Trials at most.
    pub of: usize,
    /// Passing trials needed.
    pub need: usize,
}

impl Trials {
    /// Every one of `n` trials must pass.
    pub fn all(n: usize) -> Trials {
        Trials { of: n, need: n }
    }

    /// At least `need` of `of` trials must pass.
    pub fn at_least(need: usize, of: usize) -> Trials {
        Trials { of, need }
    }
}

/// One trial of the search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Step {
    /// Offered rate (frames/s).
    pub rate_pps: f64,
    /// Repetition index at this rate (0-based).
    pub trial: usize,
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// `(sent − received) / sent`, at least 0.
    pub loss: f64,
    /// `loss ≤ max_loss`.
    pub pass: bool,
}

/// Outcome of a search.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResult {
    /// Highest rate at which every repetition passed (`None`: not even `lo`).
    pub best_pps: Option<f64>,
    /// Final bracket: highest passing rate seen (or the initial `lo`) …
    pub lo: f64,
    /// … and lowest failing rate seen (or the initial `hi`).
    pub hi: f64,
    /// Resolution asked for (frames/s).
    pub resolution: f64,
    /// Loss tolerance.
    pub max_loss: f64,
    /// Trials per rate and how many must pass.
    pub trials: Trials,
    /// Every trial, in order.
    pub steps: Vec<Step>,
}

/// Loss of one trial: `(sent − received) / sent`, clamped at 0.
pub fn loss(sent: u64, received: u64) -> f64 {
    if sent == 0 {
        return 1.0;
    }
    sent.saturating_sub(received) as f64 / sent as f64
}

/// Binary search for the highest rate in `[lo, hi]` (frames/s) with loss ≤ `max_loss` in at
/// least `trials.need` of `trials.of` trials, to within `resolution`. `trial(rate)` runs one trial at `rate` and
/// returns `(sent, received)`.
pub fn zero_loss_search(
    lo: f64,
    hi: f64,
    resolution: f64,
    max_loss: f64,
    trials: Trials,
    mut trial: impl FnMut(f64) -> Result<(u64, u64)>,
) -> Result<SearchResult> {
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && hi > lo) {
        bail!("rate bracket [{lo}, {hi}]: need 0 ≤ lo < hi");
    }
    if !(resolution.is_finite() && resolution > 0.0) {
        bail!("resolution {resolution}: need > 0");
    }
    if !(0.0..1.0).contains(&max_loss) {
        bail!("max_loss {max_loss}: need 0 ≤ max_loss < 1");
    }
    if trials.need == 0 || trials.need > trials.of {
        bail!("trials: need {} of {}: need 1 ≤ need ≤ of", trials.need, trials.of);
    }
    let mut steps = Vec::new();
    let mut run = |rate: f64, steps: &mut Vec<Step>| -> Result<bool> {
        let (mut passed, mut failed) = (0, 0);
        for t in 0..trials.of {
            let (sent, received) = trial(rate).with_context(|| format!("trial {t} at {rate:.0} pps"))?;
            if sent == 0 {
                bail!("trial {t} at {rate:.0} pps sent nothing");
            }
            let l = loss(sent, received);
            let pass = l <= max_loss;
            steps.push(Step { rate_pps: rate, trial: t, sent, received, loss: l, pass });
            if pass {
                passed += 1;
            } else {
                failed += 1;
            }
            if passed >= trials.need {
                return Ok(true);
            }
            if failed > trials.of - trials.need {
                return Ok(false);
            }
        }
        Ok(passed >= trials.need)
    };
    let (mut l, mut h) = (lo, hi);
    let mut best = None;
    if run(hi, &mut steps)? {
        best = Some(hi);
        l = hi;
    } else {
        while h - l >= resolution {
            let mid = (l + h) / 2.0;
            if run(mid, &mut steps)? {
                best = Some(mid);
                l = mid;
            } else {
                h = mid;
            }
        }
        if best.is_none() && lo > 0.0 && run(lo, &mut steps)? {
            best = Some(lo);
        }
    }
    Ok(SearchResult { best_pps: best, lo: l, hi: h, resolution, max_loss, trials, steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    /// A DUT that forwards up to `cap` frames/s (± `jitter` relative) for one second, and loses
    /// a tiny random fraction (< `floor`) even below capacity.
    fn dut(cap: f64, jitter: f64, floor: f64, seed: u64) -> impl FnMut(f64) -> Result<(u64, u64)> {
        let mut rng = Lcg(seed);
        move |rate| {
            let sent = rate.round() as u64;
            let c = cap * (1.0 + jitter * rng.next());
            let through = (rate.min(c) * (1.0 - floor * (rng.next() + 1.0) / 2.0)).floor() as u64;
            Ok((sent, through.min(sent)))
        }
    }

    #[test]
    fn finds_the_capacity_within_resolution() {
        let cap = 1.234e6;
        for (seed, trials) in [(1, 1), (7, 3), (42, 2)] {
            let r = zero_loss_search(1e5, 10e6, 1000.0, 1e-4, Trials::all(trials), dut(cap, 2e-5, 5e-5, seed)).unwrap();
            let best = r.best_pps.expect("some rate passes");
            assert!((best - cap).abs() < r.resolution, "seed {seed}: best {best}");
            assert!(r.hi - r.lo < r.resolution);
            assert_eq!(r.steps[0].rate_pps, 10e6);
            assert!(!r.steps[0].pass);
            // The answer is a rate that was tried and passed in every repetition.
            let at_best: Vec<&Step> = r.steps.iter().filter(|s| s.rate_pps == best).collect();
            assert_eq!(at_best.len(), trials);
            assert!(at_best.iter().all(|s| s.pass));
            // Binary search: about log2((hi - lo) / resolution) rates.
            let rates = r.steps.iter().filter(|s| s.trial == 0).count();
            assert!((14..=16).contains(&rates), "{rates} rates");
        }
    }

    #[test]
    fn passing_hi_ends_at_once_and_nothing_passing_is_reported() {
        let r = zero_loss_search(1e5, 1e6, 1000.0, 1e-4, Trials::all(2), dut(5e6, 0.0, 0.0, 3)).unwrap();
        assert_eq!(r.best_pps, Some(1e6));
        assert_eq!(r.steps.len(), 2);
        // Capacity below lo: every rate fails, lo included.
        let r = zero_loss_search(1e5, 1e6, 1000.0, 1e-4, Trials::all(1), dut(5e4, 0.0, 0.0, 3)).unwrap();
        assert_eq!(r.best_pps, None);
        assert_eq!(r.steps.last().unwrap().rate_pps, 1e5);
        assert!(r.steps.iter().all(|s| !s.pass));
    }

    #[test]
    fn zero_tolerance_and_errors() {
        // With max_loss 0 the floor loss makes every rate fail.
        let r = zero_loss_search(1e5, 1e6, 1e4, 0.0, Trials::all(1), dut(5e6, 0.0, 1e-3, 9)).unwrap();
        assert_eq!(r.best_pps, None);
        assert!(zero_loss_search(1e6, 1e5, 1.0, 1e-4, Trials::all(1), |_| Ok((1, 1))).is_err());
        assert!(zero_loss_search(0.0, 1e5, 0.0, 1e-4, Trials::all(1), |_| Ok((1, 1))).is_err());
        assert!(zero_loss_search(0.0, 1e5, 1.0, 1.5, Trials::all(1), |_| Ok((1, 1))).is_err());
        assert!(zero_loss_search(0.0, 1e5, 1.0, 1e-4, Trials::all(0), |_| Ok((1, 1))).is_err());
        assert!(zero_loss_search(0.0, 1e5, 1.0, 1e-4, Trials::all(1), |_| Ok((0, 0))).is_err());
        let e = zero_loss_search(0.0, 1e5, 1.0, 1e-4, Trials::all(1), |_| bail!("generator died")).unwrap_err();
        assert!(format!("{e:#}").contains("generator died"));
        assert!(zero_loss_search(0.0, 1e5, 1.0, 1e-4, Trials::at_least(3, 2), |_| Ok((1, 1))).is_err());
        assert_eq!(loss(100, 90), 0.1);
        assert_eq!(loss(100, 120), 0.0);
    }

    /// A DUT with capacity `cap` whose every `period`-th trial (counted over the whole search)
    /// is spoiled by a stall outside its control: 1% loss whatever the rate.
    fn stalling_dut(cap: f64, period: u64) -> impl FnMut(f64) -> Result<(u64, u64)> {
        let mut n = 0u64;
        move |rate| {
            n += 1;
            let sent = rate.round() as u64;
            let through = rate.min(cap).floor() as u64;
            let through = if n.is_multiple_of(period) { through - sent / 100 } else { through };
            Ok((sent, through.min(sent)))
        }
    }

    #[test]
    fn two_of_three_tolerates_one_spoiled_trial_and_stops_early() {
        let cap = 4.5e5;
        // Every rate needs all of one trial: the stall at trial 3 marks a rate below capacity as
        // failing and the search ends far below it.
        let r = zero_loss_search(2e4, 1e6, 1e4, 1e-4, Trials::all(1), stalling_dut(cap, 3)).unwrap();
        assert!(r.best_pps.unwrap_or(0.0) < cap - r.resolution, "{:?}", r.best_pps);
        // Two of three: the spoiled trial is outvoted and the capacity is found.
        let r = zero_loss_search(2e4, 1e6, 1e4, 1e-4, Trials::at_least(2, 3), stalling_dut(cap, 3)).unwrap();
        let best = r.best_pps.unwrap();
        assert!(best <= cap && cap - best < r.resolution, "best {best}");
        assert_eq!(r.trials, Trials::at_least(2, 3));
        // Verdicts stop early: a rate has 2 trials (pass-pass, fail-fail) or 3 (split).
        let mut i = 0;
        while i < r.steps.len() {
            let rate = r.steps[i].rate_pps;
            let k = r.steps[i..].iter().take_while(|s| s.rate_pps == rate).count();
            let passes = r.steps[i..i + k].iter().filter(|s| s.pass).count();
            assert!(
                k == 2 && (passes == 0 || passes == 2) || k == 3 && (1..=2).contains(&passes),
                "{:?}",
                &r.steps[i..i + k]
            );
            i += k;
        }
    }
}
