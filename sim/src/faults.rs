//! Fault injection: the fault kinds, the space a scenario allows, the per-seed choice of kinds
//! and rates (swarm testing), and the nemesis that injects node-level faults and heals them.
//! Message and proposal faults are drawn where messages are sent and proposals made, from the
//! same plan. Every draw comes from madsim's seeded RNG; every injection is traced.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rng::Draw;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Isolate the current leader for a while, then heal.
    LeaderPartition,
    /// Kill any node (manager or worker) and restart it later with its disk.
    KillRestart,
    /// Restart only the leader's allocator: it restores from the applied store.
    AllocatorRestart,
    MessageLoss,
    /// Delay messages (which also reorders them).
    MessageDelay,
    MessageDuplication,
    /// A proposal never reaches raft; the proposer times out (outcome unknown).
    DroppedProposal,
    /// The leader isolates itself right after proposing: the entry may commit without it knowing.
    AmbiguousCommit,
    /// The leader isolates itself after k of the n transactions of an allocator batch landed.
    BatchCut,
    /// One follower's links get slow for a while.
    SlowFollower,
    /// One worker is cut off for a while; its containers keep running, and after the
    /// dispatcher's node-down period its tasks are ORPHANED (SwarmKit's B6 situation).
    WorkerPartition,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::LeaderPartition,
        FaultKind::KillRestart,
        FaultKind::AllocatorRestart,
        FaultKind::MessageLoss,
        FaultKind::MessageDelay,
        FaultKind::MessageDuplication,
        FaultKind::DroppedProposal,
        FaultKind::AmbiguousCommit,
        FaultKind::BatchCut,
        FaultKind::SlowFollower,
        FaultKind::WorkerPartition,
    ];

    /// The range a seed draws this kind's rate from. Node-level kinds are events per simulated
    /// second; the others are a probability per message, per proposal or per batch.
    fn rate_range(self) -> (f64, f64) {
        match self {
            FaultKind::LeaderPartition => (1.0 / 20.0, 1.0 / 6.0),
            FaultKind::KillRestart => (1.0 / 25.0, 1.0 / 8.0),
            FaultKind::AllocatorRestart => (1.0 / 20.0, 1.0 / 5.0),
            FaultKind::SlowFollower => (1.0 / 20.0, 1.0 / 6.0),
            FaultKind::WorkerPartition => (1.0 / 20.0, 1.0 / 6.0),
            FaultKind::MessageLoss => (0.001, 0.05),
            FaultKind::MessageDelay => (0.01, 0.3),
            FaultKind::MessageDuplication => (0.001, 0.05),
            FaultKind::DroppedProposal => (0.01, 0.1),
            FaultKind::AmbiguousCommit => (0.005, 0.05),
            FaultKind::BatchCut => (0.1, 0.5),
        }
    }

    pub fn is_node_event(self) -> bool {
        matches!(
            self,
            FaultKind::LeaderPartition
                | FaultKind::KillRestart
                | FaultKind::AllocatorRestart
                | FaultKind::SlowFollower
                | FaultKind::WorkerPartition
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// The faults a scenario allows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpace {
    pub kinds: Vec<FaultKind>,
    /// Swarm testing: each seed turns each allowed kind on with probability 1/2 (at least one).
    pub swarm: bool,
    /// Fixed rates for some kinds instead of the seed's draw (node-level kinds: events per
    /// simulated second; the others: a probability per message, proposal or batch).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rates: BTreeMap<FaultKind, f64>,
}

impl FaultSpace {
    pub fn all() -> FaultSpace {
        FaultSpace { kinds: FaultKind::ALL.to_vec(), swarm: true, rates: BTreeMap::new() }
    }

    pub fn none() -> FaultSpace {
        FaultSpace { kinds: Vec::new(), swarm: false, rates: BTreeMap::new() }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (i, kind) in self.kinds.iter().enumerate() {
            if self.kinds[..i].contains(kind) {
                return Err(format!("faults.kinds[{i}] = {kind}: listed twice"));
            }
        }
        for (kind, rate) in &self.rates {
            if !self.kinds.contains(kind) {
                return Err(format!("faults.rates.{kind}: expected a kind listed in faults.kinds"));
            }
            let max = if kind.is_node_event() { 10.0 } else { 1.0 };
            if !(*rate > 0.0 && *rate <= max) {
                let what = if kind.is_node_event() {
                    "events per second, above 0 and at most 10"
                } else {
                    "a probability above 0 and at most 1"
                };
                return Err(format!("faults.rates.{kind} = {rate}: expected {what}"));
            }
        }
        Ok(())
    }

    /// This seed's choice of kinds and rates, and of the batch size (with swarm testing, the
    /// scenario's `batch_max` or a quarter or a twentieth of it, so that batches split and cut).
    pub fn choose(&self, rng: &mut impl Draw, batch_max: usize) -> FaultPlan {
        let mut rates = BTreeMap::new();
        for kind in &self.kinds {
            let on = !self.swarm || rng.chance(0.5);
            let (lo, hi) = kind.rate_range();
            let drawn = rng.between(lo, hi);
            let rate = self.rates.get(kind).copied().unwrap_or(drawn);
            if on {
                rates.insert(*kind, rate);
            }
        }
        if self.swarm && rates.is_empty() && !self.kinds.is_empty() {
            let kind = self.kinds[rng.index(self.kinds.len())];
            let (lo, hi) = kind.rate_range();
            let drawn = rng.between(lo, hi);
            rates.insert(kind, self.rates.get(&kind).copied().unwrap_or(drawn));
        }
        let batch_max =
            if self.swarm { [batch_max, batch_max / 4, batch_max / 20][rng.index(3)].max(1) } else { batch_max.max(1) };
        FaultPlan { rates, batch_max }
    }
}

/// The faults one seed injects, with their rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub rates: BTreeMap<FaultKind, f64>,
    /// Most changes per store transaction in this run.
    pub batch_max: usize,
}

impl FaultPlan {
    pub fn rate(&self, kind: FaultKind) -> f64 {
        self.rates.get(&kind).copied().unwrap_or(0.0)
    }

    /// Each fault kind that is on, in words: "leader partitions about every 7 s", "1.2% of
    /// messages lost".
    pub fn in_words(&self) -> Vec<String> {
        self.rates.iter().map(|(kind, rate)| kind.in_words(*rate)).collect()
    }
}

impl FaultKind {
    /// This kind at `rate` (events per simulated second, or a probability), in words.
    pub fn in_words(self, rate: f64) -> String {
        let every = |what: &str| format!("{what} about every {:.0} s", 1.0 / rate.max(1e-9));
        let share = |what: &str| format!("{:.1}% of {what}", rate * 100.0);
        match self {
            FaultKind::LeaderPartition => every("the leader cut off"),
            FaultKind::KillRestart => every("a node killed and restarted"),
            FaultKind::AllocatorRestart => every("the leader's allocator restarted"),
            FaultKind::SlowFollower => every("a follower's links slowed"),
            FaultKind::WorkerPartition => every("a worker cut off"),
            FaultKind::MessageLoss => share("messages lost"),
            FaultKind::MessageDelay => share("messages delayed (reordered)"),
            FaultKind::MessageDuplication => share("messages duplicated"),
            FaultKind::DroppedProposal => share("proposals dropped before raft"),
            FaultKind::AmbiguousCommit => share("proposals left ambiguous (the leader cut off right after)"),
            FaultKind::BatchCut => share("allocator batches cut part way"),
        }
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch_max={} ", self.batch_max)?;
        if self.rates.is_empty() {
            return f.write_str("faults=none");
        }
        let parts: Vec<String> = self
            .rates
            .iter()
            .map(|(k, r)| if k.is_node_event() { format!("{k}=1/{:.0}s", 1.0 / r) } else { format!("{k}={r:.3}") })
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// How long a node-level fault lasts before it heals.
pub fn fault_duration(rng: &mut impl Draw, kind: FaultKind) -> Duration {
    let ms = match kind {
        FaultKind::LeaderPartition => rng.range(1_000, 5_000),
        FaultKind::KillRestart => rng.range(500, 5_000),
        FaultKind::SlowFollower => rng.range(2_000, 8_000),
        FaultKind::WorkerPartition => rng.range(2_000, 10_000),
        FaultKind::AmbiguousCommit | FaultKind::BatchCut => rng.range(1_500, 4_000),
        _ => 0,
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn swarm_testing_turns_kinds_on_and_off_per_seed() {
        let space = FaultSpace::all();
        let plans: Vec<FaultPlan> = (0..20).map(|s| space.choose(&mut SimRng::new(s), 200)).collect();
        assert!(plans.iter().all(|p| !p.rates.is_empty()));
        assert!(plans.iter().any(|p| p.rates.len() < FaultKind::ALL.len()));
        let distinct: std::collections::BTreeSet<Vec<FaultKind>> =
            plans.iter().map(|p| p.rates.keys().copied().collect()).collect();
        assert!(distinct.len() > 5, "only {} distinct choices", distinct.len());
        let sizes: std::collections::BTreeSet<usize> = plans.iter().map(|p| p.batch_max).collect();
        assert_eq!(sizes, [10, 50, 200].into());
        assert_eq!(FaultSpace::none().choose(&mut SimRng::new(1), 200).to_string(), "batch_max=200 faults=none");
    }

    #[test]
    fn listing_a_kind_twice_is_refused() {
        let space =
            FaultSpace { kinds: vec![FaultKind::BatchCut, FaultKind::BatchCut], swarm: true, rates: BTreeMap::new() };
        assert_eq!(space.validate(), Err("faults.kinds[1] = batch_cut: listed twice".to_string()));
    }

    #[test]
    fn a_fixed_rate_holds_when_swarm_testing_falls_back_to_one_kind() {
        let rates: BTreeMap<FaultKind, f64> = [(FaultKind::MessageLoss, 0.5), (FaultKind::BatchCut, 0.75)].into();
        let space = FaultSpace { kinds: vec![FaultKind::MessageLoss, FaultKind::BatchCut], swarm: true, rates };
        let mut fallbacks = 0;
        for seed in 0..200 {
            let plan = space.choose(&mut SimRng::new(seed), 100);
            // Every kind that is on has its fixed rate, whether the coin or the fallback chose it.
            for (kind, rate) in &plan.rates {
                assert_eq!(Some(rate), space.rates.get(kind), "seed {seed}: {plan}");
            }
            fallbacks += usize::from(plan.rates.len() == 1);
        }
        assert!(fallbacks > 0, "no seed in 0..200 turned only one kind on");
    }
}
