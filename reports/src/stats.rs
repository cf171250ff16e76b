//! Fixed-point ratios (parts per million, so sums do not depend on the order seeds are read
//! in) and rounding for the JSON. The latency histogram and checked sums are the simulator's
//! (`swarmalloc_sim::histogram`), which records them.

pub use swarmalloc_sim::histogram::{Histogram, Overflow, add, bucket_width};

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
