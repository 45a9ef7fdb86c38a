//! Turning per-second samples into numbers: drop the ramp (first and last sample), take the
//! median of the rest; across repetitions report the median and the min–max.

/// Median of a slice (NaN for an empty one).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Steady-state value of one run: per-second samples without the first and last (ramp up and
/// down), median of the rest. Falls back to all samples when there are fewer than 3.
pub fn steady(samples: &[f64]) -> f64 {
    if samples.len() >= 3 {
        median(&samples[1..samples.len() - 1])
    } else {
        median(samples)
    }
}

/// Median and range of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Repetitions.
    pub n: usize,
}

impl Summary {
    /// Summarises repetitions.
    pub fn of(v: &[f64]) -> Summary {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Summary { median: median(v), min, max, n: v.len() }
    }

    /// "12.345 (12.001–12.600)" with `prec` decimals.
    pub fn fmt(&self, prec: usize) -> String {
        format!("{:.p$} ({:.p$}–{:.p$})", self.median, self.min, self.max, p = prec)
    }

    /// A ratio: "1.23× (1.10–1.40)".
    pub fn fmt_ratio(&self) -> String {
        format!("{:.2}× ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_steady_state() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        // Ramp samples at both ends are ignored.
        assert_eq!(steady(&[0.1, 10.0, 11.0, 9.0, 0.2]), 10.0);
        assert_eq!(steady(&[5.0, 7.0]), 6.0);
        let s = Summary::of(&[1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(s.fmt(1), "2.0 (1.0–3.0)");
        assert_eq!(s.fmt_ratio(), "2.00× (1.00–3.00)");
    }
}
