//! The simulated-time series of one run, which its result line carries for the sweep report
//! (`allocsim report`): tasks moved NEW -> PENDING per simulated second, the NEW -> PENDING
//! latency histogram, leader terms, fault windows, the restore at each leader change, and pool
//! usage at the end. [`Series`] and its parts are the one definition, written here and read by
//! `swarmalloc_reports`; their meanings are the result-line schema in `reports/README.md`.
//! [`Recorder`] records them during a run.
//!
//! Architecture invariant: recording draws no random number and writes no trace line, so it
//! cannot change a run or its trace hash. Everything is in simulated milliseconds.
//! Bounds: one throughput entry per simulated second; each list holds at most `LIST_MAX`
//! entries (later ones are only counted in `dropped`); the histogram holds at most 16 + 8 per
//! power of two buckets; the creation times of tasks still in NEW are forgotten at the end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use swarmalloc::{Allocator, TaskId};

use crate::faults::FaultKind;
pub use crate::histogram::Histogram;

/// Most entries kept in each list of a run's series.
pub const LIST_MAX: usize = 200;

/// Width of a throughput bucket.
pub const THROUGHPUT_BUCKET_MS: u64 = 1_000;

/// What every throughput figure in simulated time must say next to it: the simulator charges
/// network latency and raft ticks, but no CPU, disk sync or store time, so its figures compare
/// runs of the simulator with each other, not with a real manager (`allocsim bench --real`
/// measures one; docs/performance.md has the gap).
pub const THROUGHPUT_IS_RELATIVE: &str = "simulated time, relative only: the simulator charges network latency and \
raft ticks but no CPU, disk or store time, so a real manager is several times slower (docs/performance.md, \
`allocsim bench --real`)";

/// Simulated-time series of one run, as its result line carries it. All times in simulated
/// milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// Width of each `pending` bucket.
    pub bucket_ms: u64,
    /// Tasks moved NEW -> PENDING in each bucket, from time 0; trailing empty buckets omitted.
    pub pending: Vec<u64>,
    /// NEW -> PENDING latency of every task that made the move (creation applied to PENDING applied).
    pub latency: Histogram,
    /// Who led when: a term ends when its leader steps down or is killed, or a newer leader starts.
    pub leaders: Vec<LeaderTerm>,
    /// Faults while they were on (a dropped proposal or an allocator restart is an instant).
    pub faults: Vec<FaultWindow>,
    /// The allocator's restore at each leader change.
    pub restores: Vec<Restore>,
    /// Every subnet of every allocated network, as the leader's engine sees it at the end checks.
    pub pools: Vec<PoolSample>,
    /// Entries left out of the lists above because one reached the simulator's cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderTerm {
    pub term: u64,
    pub node: String,
    pub start_ms: u64,
    /// `None` only while the term is open; every term is closed at the end of the run.
    pub end_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The fault kind's name (`leader_partition`, `message_loss`, ...).
    pub kind: String,
    /// The node the fault hit; `None` for message faults, which hit every link.
    pub node: Option<String>,
    pub start_ms: u64,
    /// `None` only while the fault is on; every window is closed at the end of the run.
    pub end_ms: Option<u64>,
}

/// A new leader's first restore: from becoming leader (`leader_ms`) to the restore, after which
/// the allocator's first pass runs in the same tick (`restored_ms`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    pub term: u64,
    pub node: String,
    pub leader_ms: u64,
    pub restored_ms: u64,
    /// Objects in the applied store the engine was restored from.
    pub objects: u64,
    /// Objects restore queued for the first pass.
    pub queued: u64,
    /// Conflicts restore found in stored state.
    pub findings: u64,
}

impl Restore {
    pub fn duration_ms(&self) -> u64 {
        self.restored_ms.saturating_sub(self.leader_ms)
    }
}

/// One subnet's use at the end. Counts saturate at `u64::MAX` (an IPv6 subnet can be larger).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSample {
    pub network: String,
    pub subnet: String,
    /// Addresses new picks are drawn from.
    pub capacity: u64,
    /// Addresses with a live holder.
    pub live: u64,
    /// Addresses quarantined by terminal tasks still in the store.
    pub retired: u64,
    /// The longest run of consecutive free addresses.
    pub largest_free_run: u64,
}

impl PoolSample {
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.live).saturating_sub(self.retired)
    }
}

/// Records one run's `Series`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorder {
    series: Series,
    /// Creation time of every task still waiting in NEW.
    created: BTreeMap<TaskId, u64>,
}

fn push_capped<T>(list: &mut Vec<T>, dropped: &mut u64, item: T) {
    if list.len() < LIST_MAX {
        list.push(item);
    } else {
        *dropped += 1;
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { series: Series { bucket_ms: THROUGHPUT_BUCKET_MS, ..Series::default() }, created: BTreeMap::new() }
    }

    /// The series recorded so far.
    pub fn series(&self) -> &Series {
        &self.series
    }

    pub fn task_created(&mut self, task: &TaskId, now_ms: u64) {
        self.created.insert(task.clone(), now_ms);
    }

    pub fn task_pending(&mut self, task: &TaskId, now_ms: u64) {
        let bucket = (now_ms / self.series.bucket_ms) as usize;
        if self.series.pending.len() <= bucket {
            self.series.pending.resize(bucket + 1, 0);
        }
        self.series.pending[bucket] += 1;
        if let Some(created) = self.created.remove(task) {
            self.series.latency.record(now_ms.saturating_sub(created));
        }
    }

    /// A new leader: every open term ends now.
    pub fn leader_started(&mut self, term: u64, node: &str, now_ms: u64) {
        self.leader_ended(None, now_ms);
        let entry = LeaderTerm { term, node: node.to_string(), start_ms: now_ms, end_ms: None };
        push_capped(&mut self.series.leaders, &mut self.series.dropped, entry);
    }

    /// The open term of `node` (of anyone, when `None`) ends now.
    pub fn leader_ended(&mut self, node: Option<&str>, now_ms: u64) {
        for term in self.series.leaders.iter_mut().filter(|t| t.end_ms.is_none() && node.is_none_or(|n| n == t.node)) {
            term.end_ms = Some(now_ms);
        }
    }

    /// A fault starts now; `end_ms` when its end is known already (an instant, a slow link).
    pub fn fault_started(&mut self, kind: FaultKind, node: Option<&str>, start_ms: u64, end_ms: Option<u64>) {
        let window = FaultWindow { kind: kind.to_string(), node: node.map(str::to_string), start_ms, end_ms };
        push_capped(&mut self.series.faults, &mut self.series.dropped, window);
    }

    /// The open faults of these kinds on `node` end now.
    pub fn faults_ended(&mut self, node: &str, kinds: &[FaultKind], now_ms: u64) {
        let kinds: Vec<String> = kinds.iter().map(FaultKind::to_string).collect();
        let open =
            |w: &&mut FaultWindow| w.end_ms.is_none() && w.node.as_deref() == Some(node) && kinds.contains(&w.kind);
        for window in self.series.faults.iter_mut().filter(open) {
            window.end_ms = Some(now_ms);
        }
    }

    /// Everything heals now: open windows close, and windows planned to end later end now.
    pub fn all_faults_ended(&mut self, now_ms: u64) {
        for window in &mut self.series.faults {
            window.end_ms = Some(window.end_ms.map_or(now_ms, |end| end.min(now_ms)));
        }
    }

    pub fn restored(&mut self, restore: Restore) {
        push_capped(&mut self.series.restores, &mut self.series.dropped, restore);
    }

    /// Pool usage of every allocated network, from the leader's engine (sampled once, at the
    /// end checks).
    pub fn sample_pools(&mut self, engine: &Allocator) {
        let clamp = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
        let pools = engine.pool_usage().into_iter().map(|p| PoolSample {
            network: p.network.to_string(),
            subnet: p.subnet.to_string(),
            capacity: clamp(p.capacity),
            live: clamp(p.live),
            retired: clamp(p.retired),
            largest_free_run: clamp(p.largest_free_run),
        });
        self.keep_pools(pools);
    }

    /// Keeps the first `LIST_MAX` pool samples and counts the rest in `dropped`.
    fn keep_pools(&mut self, pools: impl IntoIterator<Item = PoolSample>) {
        self.series.pools.clear();
        for pool in pools {
            push_capped(&mut self.series.pools, &mut self.series.dropped, pool);
        }
    }

    /// The end of the run: open terms and faults end now; the recording state is dropped.
    pub fn finish(&mut self, now_ms: u64) {
        self.leader_ended(None, now_ms);
        self.all_faults_ended(now_ms);
        self.created = BTreeMap::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_buckets_and_latency_come_from_creation_and_pending_times() {
        let mut r = Recorder::new();
        r.task_created(&TaskId::new("a"), 100);
        r.task_created(&TaskId::new("b"), 200);
        r.task_pending(&TaskId::new("a"), 150);
        r.task_pending(&TaskId::new("b"), 2_500);
        r.task_pending(&TaskId::new("unknown"), 2_600);
        let s = r.series();
        assert_eq!(s.pending, [1, 0, 2]);
        assert_eq!((s.latency.count, s.latency.max_ms, s.latency.sum_ms), (2, 2_300, 2_350));
    }

    #[test]
    fn terms_and_faults_close_when_replaced_ended_or_healed() {
        let mut r = Recorder::new();
        r.leader_started(2, "m1", 100);
        r.leader_started(3, "m2", 400);
        r.leader_ended(Some("m2"), 900);
        r.leader_started(4, "m3", 1_000);
        r.fault_started(FaultKind::LeaderPartition, Some("m1"), 50, None);
        r.fault_started(FaultKind::KillRestart, Some("w1"), 60, None);
        r.fault_started(FaultKind::SlowFollower, Some("m3"), 70, Some(5_000));
        r.faults_ended("m1", &[FaultKind::LeaderPartition], 300);
        r.all_faults_ended(2_000);
        r.finish(3_000);
        let s = r.series();
        let ends: Vec<Option<u64>> = s.leaders.iter().map(|t| t.end_ms).collect();
        assert_eq!(ends, [Some(400), Some(900), Some(3_000)]);
        let ends: Vec<Option<u64>> = s.faults.iter().map(|w| w.end_ms).collect();
        assert_eq!(ends, [Some(300), Some(2_000), Some(2_000)]);
    }

    #[test]
    fn lists_are_capped_and_the_rest_counted() {
        let mut r = Recorder::new();
        for i in 0..LIST_MAX as u64 + 3 {
            r.fault_started(FaultKind::DroppedProposal, Some("m1"), i, Some(i));
        }
        let s = r.series();
        assert_eq!((s.faults.len(), s.dropped), (LIST_MAX, 3));
    }

    #[test]
    fn pool_samples_past_the_cap_are_counted() {
        let mut r = Recorder::new();
        let pool = |i: u64| PoolSample {
            network: format!("n{i}"),
            subnet: format!("10.{i}.0.0/24"),
            capacity: 254,
            live: 1,
            retired: 0,
            largest_free_run: 253,
        };
        r.keep_pools((0..LIST_MAX as u64 + 2).map(pool));
        let s = r.series();
        assert_eq!((s.pools.len(), s.pools.last().map(|p| p.network.as_str()), s.dropped), (LIST_MAX, Some("n199"), 2));
    }
}
