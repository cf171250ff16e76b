//! The observer's view of one run, shared by every simulated node: the trace, the first
//! violation, what the checkers need to see across nodes (running containers, per-index store
//! digests, values that must stay stable), the fault plan, run metrics and series.
//!
//! Architecture invariant: nodes write observations here but never read another node's state
//! from it to make a decision; only the nemesis and the message layer read fault settings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use swarmalloc::{ServiceId, TaskId, VirtualIp};

use crate::check::{Breach, ContainerAddrs, Inherited, Stability, assertion_key, vips_changed, vips_of};
use crate::faults::{FaultKind, FaultPlan};
use crate::result::{Metrics, Violation};
use crate::rng::SimRng;
use crate::scenario::Checker;
use crate::scenario::{Action, Assertion, MessageFault, Scenario, Step};
use crate::series::Recorder;
use crate::store::{Origin, Store};
use crate::trace::Trace;

/// An extra checker run on every replica after every applied entry (tests plant broken ones).
pub type StoreHook = Arc<dyn Fn(&Store) -> Option<Breach> + Send + Sync>;

/// Settings the message layer reads on every send.
#[derive(Clone, Debug, Default)]
pub struct LinkFaults {
    pub loss: f64,
    pub delay: f64,
    pub duplication: f64,
    /// Extra latency on every message to or from a node, until a time.
    pub slow: BTreeMap<String, (Duration, Duration)>,
}

/// The shared world of one run.
pub struct World {
    start: madsim::time::Instant,
    pub scenario: Arc<Scenario>,
    pub plan: FaultPlan,
    pub trace: Trace,
    pub violation: Option<Violation>,
    /// Highest raft index applied by any replica: that replica holds the newest committed state.
    pub frontier: u64,
    /// Store digest at each applied index, with the replica that first reached it.
    pub digests: BTreeMap<u64, (u64, String)>,
    /// Containers running on each worker.
    pub containers: BTreeMap<String, BTreeMap<TaskId, ContainerAddrs>>,
    pub stable: Stability,
    /// Store conflicts of the scenario's initial state, let be until the end.
    pub inherited: Inherited,
    pub metrics: Metrics,
    /// Simulated-time series for the sweep report.
    pub series: Recorder,
    pub links: LinkFaults,
    /// Faults are on (cleared when the run heals everything).
    pub faults_active: bool,
    /// The nemesis asks the leader to restart its allocator.
    pub allocator_restart: bool,
    /// (term, raft id) of the newest leader a manager reported.
    pub leader: Option<(u64, u64)>,
    /// Set by the driver when the end checks should run; answered by the leader.
    pub final_requested: bool,
    pub final_done: bool,
    pub hooks: Vec<StoreHook>,
    /// Nodes cut off from the network until a simulated time (the nemesis heals them).
    pub isolated: BTreeMap<String, Duration>,
    /// madsim's id of every node, by name.
    pub node_ids: BTreeMap<String, madsim::task::NodeId>,
    /// Recently decoded raft entries by index, with the hash of their bytes.
    pub decoded: BTreeMap<u64, (u64, Arc<crate::store::Txn>)>,
    /// The run is over (a violation, or a throughput run reached its goal).
    pub stop: bool,
    /// Scripted faults and task failures still to come, and the random fault decisions made.
    pub script: Script,
    /// VIPs of services sampled for `vip_unchanged_since` assertions, by (service, time).
    pub vip_samples: BTreeMap<(ServiceId, u64), Vec<VirtualIp>>,
}

/// Fault decisions: scripted steps not yet consumed, the random streams they are drawn from
/// otherwise, and the record of every random decision (which `allocsim decompile` turns into
/// explicit steps). Each kind of decision has its own stream, so replacing the random decisions
/// by the same scripted ones leaves every other draw of the run unchanged.
pub struct Script {
    /// Proposal faults (dropped, ambiguous, batch cut), consumed by the next proposal or batch
    /// at or after their time.
    pub proposal_faults: Vec<Step>,
    /// Task failures, consumed by the agent running the task at its next tick at or after their time.
    pub task_failures: Vec<Step>,
    /// Message faults on for a while: (fault, rate, from, until) in simulated ms.
    pub message_windows: Vec<(MessageFault, f64, u64, u64)>,
    /// Draws of the random proposal faults.
    pub proposal_rng: SimRng,
    /// Draws of the random task failures.
    pub failure_rng: SimRng,
    /// Containers exit by themselves at random while faults are on (random faults only).
    pub random_task_failures: bool,
    /// Every random fault decision made, as the step that makes it explicitly.
    pub decisions: Vec<Step>,
    /// Per fault check and origin: the millisecond of the last proposal checked, and how many
    /// were checked in it (see [`Script::proposal_ordinal`]).
    proposal_counts: BTreeMap<(ProposalSite, Origin), (u64, u64)>,
}

/// Where a proposal meets the proposal faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProposalSite {
    /// Before it reaches raft: dropped or not.
    Drop,
    /// Once raft has it: ambiguous or not.
    Ambiguous,
}

impl Script {
    pub fn new(scenario: &Scenario, plan: &FaultPlan, proposal_seed: u64, failure_seed: u64) -> Script {
        // In time order (file order at equal times): the earliest due one is taken first.
        let pick = |f: fn(&Action) -> bool| -> Vec<Step> {
            let mut steps: Vec<Step> = scenario.steps.iter().filter(|s| f(&s.action)).cloned().collect();
            steps.sort_by_key(|s| s.at_ms);
            steps
        };
        let message_windows = scenario
            .steps
            .iter()
            .filter_map(|s| match s.action {
                Action::Messages { fault, rate, for_ms } => Some((fault, rate, s.at_ms, s.at_ms + for_ms)),
                _ => None,
            })
            .collect();
        Script {
            proposal_faults: pick(Action::is_proposal_fault),
            task_failures: pick(|a| matches!(a, Action::FailTask { .. })),
            message_windows,
            proposal_rng: SimRng::new(proposal_seed),
            failure_rng: SimRng::new(failure_seed),
            random_task_failures: !plan.rates.is_empty(),
            decisions: Vec::new(),
            proposal_counts: BTreeMap::new(),
        }
    }

    /// Takes the first scripted proposal fault due at `now_ms` that `accept` takes and that has
    /// no proposals left to skip; every other due one that `accept` takes and still skips some
    /// counts this proposal as skipped.
    pub fn take_proposal_fault(&mut self, now_ms: u64, accept: impl Fn(&Action) -> bool) -> Option<Action> {
        let mut taken = None;
        for (i, step) in self.proposal_faults.iter_mut().enumerate() {
            if step.at_ms > now_ms || !accept(&step.action) {
                continue;
            }
            match &mut step.action {
                Action::DropProposal { skip, .. } | Action::AmbiguousProposal { skip, .. } if *skip > 0 => *skip -= 1,
                _ if taken.is_none() => taken = Some(i),
                _ => {}
            }
        }
        taken.map(|i| self.proposal_faults.remove(i).action)
    }

    /// How many proposals of `origin` reached the fault check `site` earlier in this same
    /// millisecond (and counts this one): what a decompiled step must skip to hit this one.
    pub fn proposal_ordinal(&mut self, site: ProposalSite, origin: Origin, now_ms: u64) -> u64 {
        let (at_ms, count) = self.proposal_counts.entry((site, origin)).or_insert((now_ms, 0));
        if *at_ms != now_ms {
            *at_ms = now_ms;
            *count = 0;
        }
        *count += 1;
        *count - 1
    }
}

/// The handle every node holds.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<World>>);

impl Shared {
    pub fn new(
        scenario: Arc<Scenario>,
        plan: FaultPlan,
        script: Script,
        hooks: Vec<StoreHook>,
        trace_keep: usize,
    ) -> Shared {
        Shared(Arc::new(Mutex::new(World {
            start: madsim::time::Instant::now(),
            scenario,
            plan,
            trace: Trace::new(trace_keep),
            violation: None,
            frontier: 0,
            digests: BTreeMap::new(),
            containers: BTreeMap::new(),
            stable: Default::default(),
            inherited: Default::default(),
            metrics: Metrics::default(),
            series: Recorder::new(),
            links: LinkFaults::default(),
            faults_active: false,
            allocator_restart: false,
            leader: None,
            final_requested: false,
            final_done: false,
            hooks,
            isolated: BTreeMap::new(),
            node_ids: BTreeMap::new(),
            decoded: BTreeMap::new(),
            stop: false,
            script,
            vip_samples: BTreeMap::new(),
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl World {
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn record(&mut self, node: &str, ev: &str, data: Value) {
        let t = self.now_ms();
        self.trace.record(t, node, ev, data);
    }

    /// Samples the VIPs that `vip_unchanged_since` assertions compare against, at the first
    /// applied entry at or after each assertion's time.
    pub fn sample_vips(&mut self, store: &Store, raft_index: u64, node: &str) {
        let now = self.now_ms();
        let scenario = self.scenario.clone();
        for (i, assertion) in scenario.assertions.iter().enumerate() {
            let Assertion::VipUnchangedSince { service, since_ms } = assertion else { continue };
            if *since_ms > now {
                continue;
            }
            let vips = vips_of(store, service);
            if vips.is_empty() {
                // Not allocated yet, or deleted: the end check compares the end state.
                continue;
            }
            let key = (service.clone(), *since_ms);
            match self.vip_samples.get(&key) {
                None => {
                    self.vip_samples.insert(key, vips);
                }
                Some(first) if *first != vips => {
                    let detail = format!("{}: {}", assertion_key(i), vips_changed(service, *since_ms, first, &vips));
                    self.violate(
                        Breach::new(Checker::Assertion, vec![format!("service {service}")], detail),
                        node,
                        raft_index,
                    );
                }
                Some(_) => {}
            }
        }
    }

    /// Records the first violation (later ones are ignored: the run stops at the first). Returns
    /// whether the run stops: false for a breach of a checker the scenario turned off, so that
    /// the caller goes on with its other checks.
    pub fn violate(&mut self, breach: Breach, node: &str, raft_index: u64) -> bool {
        if self.violation.is_some() {
            return true;
        }
        if !self.scenario.checks.enabled(breach.name()) {
            let data = json!({ "checker": breach.name(), "detail": breach.detail });
            self.record(node, "finding_ignored", data);
            return false;
        }
        let violation = Violation {
            checker: breach.name().to_string(),
            objects: breach.objects,
            detail: breach.detail,
            t_ms: self.now_ms(),
            raft_index,
            node: node.to_string(),
        };
        self.record(node, "violation", serde_json::to_value(&violation).unwrap_or(Value::Null));
        self.violation = Some(violation);
        self.stop = true;
        true
    }

    pub fn stopped(&self) -> bool {
        self.stop
    }

    /// The rate of `kind` while faults are active, else 0: the fault plan's, or a scripted
    /// message fault's while its window is open, whichever is higher.
    pub fn rate(&self, kind: FaultKind) -> f64 {
        if !self.faults_active {
            return 0.0;
        }
        let message = match kind {
            FaultKind::MessageLoss => Some(MessageFault::Loss),
            FaultKind::MessageDelay => Some(MessageFault::Delay),
            FaultKind::MessageDuplication => Some(MessageFault::Duplication),
            _ => None,
        };
        let now = self.now_ms();
        let scripted = self
            .script
            .message_windows
            .iter()
            .filter(|(fault, _, from, until)| Some(*fault) == message && *from <= now && now < *until)
            .map(|(_, rate, _, _)| *rate)
            .fold(0.0, f64::max);
        self.plan.rate(kind).max(scripted)
    }

    /// Records a random fault decision as the explicit step that would make it.
    pub fn decided(&mut self, action: Action) {
        let at_ms = self.now_ms();
        self.script.decisions.push(Step { at_ms, action });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(at_ms: u64, skip: u64) -> Step {
        Step { at_ms, action: Action::DropProposal { origin: Some(Origin::Allocator), skip } }
    }

    #[test]
    fn a_proposal_fault_lets_skip_matching_proposals_pass_first_whatever_took_them() {
        let mut scenario = Scenario::smoke();
        scenario.steps = vec![drop(1_000, 2), drop(1_000, 0), drop(5_000, 0)];
        let mut script = Script::new(&scenario, &FaultPlan::default(), 1, 2);
        let is_drop = |a: &Action| matches!(a, Action::DropProposal { .. });
        // Not due yet: nothing is taken or counted.
        assert_eq!(script.take_proposal_fault(999, is_drop), None);
        // The first proposal takes the step that skips none; the other counts it as skipped.
        assert_eq!(script.take_proposal_fault(1_000, is_drop).map(|a| is_drop(&a)), Some(true));
        assert_eq!(script.proposal_faults.len(), 2);
        assert_eq!(script.take_proposal_fault(1_000, is_drop), None);
        // The third matching proposal is the one the skipping step waited for.
        assert_eq!(script.take_proposal_fault(1_000, is_drop), Some(drop(1_000, 0).action));
        assert_eq!(script.proposal_faults, vec![drop(5_000, 0)]);
    }

    #[test]
    fn the_ordinal_counts_proposals_of_one_origin_and_check_within_one_millisecond() {
        let mut script = Script::new(&Scenario::smoke(), &FaultPlan::default(), 1, 2);
        let mut ordinal = |site, origin, ms| script.proposal_ordinal(site, origin, ms);
        assert_eq!(ordinal(ProposalSite::Drop, Origin::Allocator, 10), 0);
        assert_eq!(ordinal(ProposalSite::Drop, Origin::Allocator, 10), 1);
        assert_eq!(ordinal(ProposalSite::Drop, Origin::Scheduler, 10), 0);
        assert_eq!(ordinal(ProposalSite::Ambiguous, Origin::Allocator, 10), 0);
        assert_eq!(ordinal(ProposalSite::Drop, Origin::Allocator, 11), 0);
    }
}
