//! Random draws. Inside a run every draw comes from madsim's seeded RNG ([`sim`]), directly or
//! through a [`SimRng`] seeded from it; nothing else in the simulator draws random numbers.

/// Draw helpers shared by both sources.
pub trait Draw {
    fn next_u64(&mut self) -> u64;

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn index(&mut self, len: usize) -> usize {
        self.range(0, len as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// A small seedable generator (splitmix64): the workload generator's source, seeded from madsim.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }
}

impl Draw for SimRng {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// madsim's seeded RNG, for draws made while the simulation runs.
pub struct Sim;

impl Draw for Sim {
    fn next_u64(&mut self) -> u64 {
        use madsim::rand::RngCore;
        madsim::rand::thread_rng().next_u64()
    }
}

/// One draw from madsim's RNG.
pub fn sim() -> Sim {
    Sim
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_in_bounds_and_repeat_per_seed() {
        let mut a = SimRng::new(1);
        let mut b = SimRng::new(1);
        for _ in 0..1000 {
            let x = a.range(5, 9);
            assert!((5..9).contains(&x));
            assert_eq!(x, b.range(5, 9));
        }
        assert_eq!(a.range(3, 3), 3);
        assert!(!a.chance(0.0));
    }
}
