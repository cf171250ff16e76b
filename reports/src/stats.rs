//! Small statistics over simulated-time values: the log-linear millisecond histogram the
//! simulator writes (merged across seeds, percentiles as bucket upper bounds), fixed-point
//! ratios (parts per million, so sums do not depend on the order seeds are read in), and
//! rounding for the JSON.

use serde::{Deserialize, Serialize};

/// The simulator's NEW -> PENDING latency histogram (`sim/src/series.rs`): one bucket per
/// millisecond below 16 ms, then eight per power of two, each named by its lowest value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    pub count: u64,
    pub sum_ms: u64,
    pub max_ms: u64,
    /// `[low_ms, count]` per non-empty bucket, by `low_ms`.
    pub buckets: Vec<(u64, u64)>,
}

/// The width of the bucket whose lowest value is `low`.
pub fn bucket_width(low: u64) -> u64 {
    if low < 16 { 1 } else { 1 << (63 - low.leading_zeros() - 3) }
}

/// The lowest value of the bucket holding `ms` (the simulator's rule).
pub fn bucket_low(ms: u64) -> u64 {
    if ms < 16 {
        return ms;
    }
    let shift = 63 - ms.leading_zeros() - 3;
    (ms >> shift) << shift
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        self.merge(&Histogram { count: 1, sum_ms: ms, max_ms: ms, buckets: vec![(bucket_low(ms), 1)] });
    }

    /// Adds another histogram's counts (order-independent).
    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
        for &(low, n) in &other.buckets {
            match self.buckets.binary_search_by_key(&low, |(l, _)| *l) {
                Ok(i) => self.buckets[i].1 += n,
                Err(i) => self.buckets.insert(i, (low, n)),
            }
        }
    }

    /// The `q`-quantile (0 < q <= 1) as the upper bound of the bucket holding it, never above
    /// the exact maximum: at most one bucket width (12.5% from 16 ms on) above the true value.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for &(low, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some((low + bucket_width(low) - 1).min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| round(self.sum_ms as f64 / self.count as f64, 1))
    }

    /// Whether the buckets are sorted, non-empty, at bucket boundaries and add up to `count`.
    pub fn problem(&self) -> Option<String> {
        let mut total = 0u64;
        let mut previous: Option<u64> = None;
        for &(low, n) in &self.buckets {
            if bucket_low(low) != low {
                return Some(format!("bucket {low} is not a bucket boundary"));
            }
            if previous.is_some_and(|p| p >= low) {
                return Some(format!("bucket {low} is out of order"));
            }
            if n == 0 {
                return Some(format!("bucket {low} is empty"));
            }
            previous = Some(low);
            total += n;
        }
        (total != self.count).then(|| format!("the buckets add up to {total}, not count {}", self.count))
    }
}

/// One million: ratios are summed as parts per million.
pub const PPM: u64 = 1_000_000;

/// `part / whole` in parts per million (0 when `whole` is 0).
pub fn ppm(part: u64, whole: u64) -> u64 {
    if whole == 0 { 0 } else { ((part as u128 * PPM as u128) / whole as u128) as u64 }
}

/// `x` rounded to `digits` decimals, for stable, readable JSON.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_match_the_simulator_rule() {
        for ms in [0, 1, 15, 16, 17, 31, 32, 100, 1_000, 65_535, 1 << 40] {
            let low = bucket_low(ms);
            assert!(low <= ms && ms < low + bucket_width(low), "{ms} in [{low}, +{})", bucket_width(low));
            assert_eq!(bucket_low(low + bucket_width(low)), low + bucket_width(low), "the next bucket starts there");
        }
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds_capped_by_the_max() {
        let mut h = Histogram::default();
        for ms in [3, 3, 3, 100, 1_000] {
            h.record(ms);
        }
        assert_eq!(h.quantile_ms(0.5), Some(3));
        assert_eq!(h.quantile_ms(0.8), Some(103), "100 lies in [96, 104)");
        assert_eq!(h.quantile_ms(0.99), Some(1_000), "capped by the exact max");
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
        assert_eq!(h.problem(), None);
    }

    #[test]
    fn merging_is_order_independent() {
        let a = Histogram { count: 2, sum_ms: 40, max_ms: 30, buckets: vec![(10, 1), (30, 1)] };
        let b = Histogram { count: 1, sum_ms: 10, max_ms: 10, buckets: vec![(10, 1)] };
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(&b);
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.buckets, [(10, 2), (30, 1)]);
    }

    #[test]
    fn malformed_histograms_are_named() {
        let h = Histogram { count: 3, sum_ms: 0, max_ms: 0, buckets: vec![(17, 1)] };
        assert_eq!(h.problem().as_deref(), Some("bucket 17 is not a bucket boundary"));
        let h = Histogram { count: 3, sum_ms: 0, max_ms: 0, buckets: vec![(16, 1)] };
        assert_eq!(h.problem().as_deref(), Some("the buckets add up to 1, not count 3"));
    }
}
