//! The log-linear millisecond histogram a run records (its NEW -> PENDING latency) and the
//! sweep report merges across seeds (percentiles as bucket upper bounds), and the checked sum
//! both use.

use serde::{Deserialize, Serialize};

/// A log-linear histogram of milliseconds (a run's NEW -> PENDING latency, recorded by
/// `series::Recorder`): one bucket per millisecond below 16 ms, then eight per power of two (at
/// most 12.5% wide), each named by its lowest value; its width is 1 below 16 and
/// `2^(floor(log2 low) - 3)` from 16 on.
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
    /// A histogram of the one value `ms`.
    pub fn one(ms: u64) -> Histogram {
        Histogram { count: 1, sum_ms: ms, max_ms: ms, buckets: vec![(bucket_low(ms), 1)] }
    }

    /// Adds one value (the simulator's recording). Panics when `count` or `sum_ms` would pass
    /// `u64::MAX`, which one run cannot reach; histograms read from files are added with `merge`.
    pub fn record(&mut self, ms: u64) {
        if let Err(overflow) = self.merge(&Histogram::one(ms)) {
            panic!("a histogram of one run overflowed its {}", overflow.field);
        }
    }

    /// Adds another histogram's counts (order-independent). `Err` names the sum that would pass
    /// `u64::MAX`; `self` is then partly updated and should be discarded.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), Overflow> {
        add(&mut self.count, other.count, "count")?;
        add(&mut self.sum_ms, other.sum_ms, "sum_ms")?;
        self.max_ms = self.max_ms.max(other.max_ms);
        for &(low, n) in &other.buckets {
            match self.buckets.binary_search_by_key(&low, |(l, _)| *l) {
                Ok(i) => add(&mut self.buckets[i].1, n, "buckets")?,
                Err(i) => self.buckets.insert(i, (low, n)),
            }
        }
        Ok(())
    }

    /// The `q`-quantile (0 < q <= 1) as the upper bound of the bucket holding it, never above
    /// the exact maximum: at most one bucket width (12.5% from 16 ms on) above the true value.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for &(low, n) in &self.buckets {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return Some(low.saturating_add(bucket_width(low) - 1).min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.sum_ms as f64 / self.count as f64 * 10.0).round() / 10.0)
    }

    /// Whether the buckets are sorted, non-empty, at bucket boundaries, not above `max_ms`, and
    /// add up to `count`.
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
            if low > self.max_ms {
                return Some(format!("bucket {low} is above max_ms {}", self.max_ms));
            }
            if n == 0 {
                return Some(format!("bucket {low} is empty"));
            }
            previous = Some(low);
            let Some(sum) = total.checked_add(n) else {
                return Some(format!("the bucket counts add up to more than {}", u64::MAX));
            };
            total = sum;
        }
        (total != self.count).then(|| format!("the buckets add up to {total}, not count {}", self.count))
    }
}

/// A sum that would pass `u64::MAX`: `field` names what was summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    pub field: String,
}

/// `total += value`, or the `Overflow` naming `field` when the sum does not fit in a u64.
pub fn add(total: &mut u64, value: u64, field: &str) -> Result<(), Overflow> {
    *total = total.checked_add(value).ok_or_else(|| Overflow { field: field.to_string() })?;
    Ok(())
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
    fn buckets_are_exact_below_16_then_eight_per_power_of_two() {
        let lows: Vec<u64> = [0, 15, 16, 17, 18, 31, 32, 35, 36, 1000, 1023, 1024].map(bucket_low).into();
        assert_eq!(lows, [0, 15, 16, 16, 18, 30, 32, 32, 36, 960, 960, 1024]);
        let mut h = Histogram::default();
        for ms in [5, 1000, 5, 17, 1023] {
            h.record(ms);
        }
        assert_eq!(h, Histogram { count: 5, sum_ms: 2050, max_ms: 1023, buckets: vec![(5, 2), (16, 1), (960, 2)] });
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
        ab.merge(&b).expect("small counts");
        ba.merge(&a).expect("small counts");
        assert_eq!(ab, ba);
        assert_eq!(ab.buckets, [(10, 2), (30, 1)]);
    }

    #[test]
    fn malformed_histograms_are_named() {
        let h = Histogram { count: 3, sum_ms: 0, max_ms: 20, buckets: vec![(17, 1)] };
        assert_eq!(h.problem().as_deref(), Some("bucket 17 is not a bucket boundary"));
        let h = Histogram { count: 3, sum_ms: 0, max_ms: 20, buckets: vec![(16, 1)] };
        assert_eq!(h.problem().as_deref(), Some("the buckets add up to 1, not count 3"));
        let h = Histogram { count: 1, sum_ms: 0, max_ms: 20, buckets: vec![(24, 1)] };
        assert_eq!(h.problem().as_deref(), Some("bucket 24 is above max_ms 20"));
        let h = Histogram { count: 2, sum_ms: 0, max_ms: 20, buckets: vec![(1, u64::MAX), (2, 1)] };
        assert_eq!(h.problem().as_deref(), Some("the bucket counts add up to more than 18446744073709551615"));
    }

    #[test]
    fn extreme_values_neither_panic_nor_wrap() {
        let top = bucket_low(u64::MAX);
        let h = Histogram { count: u64::MAX, sum_ms: u64::MAX, max_ms: u64::MAX, buckets: vec![(top, u64::MAX)] };
        assert_eq!(h.problem(), None);
        assert_eq!(h.quantile_ms(0.5), Some(u64::MAX), "the top bucket ends at u64::MAX");
        let mut sum = h.clone();
        assert_eq!(sum.merge(&Histogram::one(1)), Err(Overflow { field: "count".into() }));
        let mut sum = Histogram { count: 1, sum_ms: u64::MAX, max_ms: 9, buckets: vec![(9, 1)] };
        assert_eq!(sum.merge(&Histogram::one(1)), Err(Overflow { field: "sum_ms".into() }));
    }
}
