//! One simulation run, from a scenario and a seed to a verdict: builds the madsim runtime and
//! nodes (managers, workers, clients), draws the fault plan and the workload, runs the nemesis
//! until the faults heal, asks the leader for the end checks, and collects the result.
//!
//! Architecture invariant: a run is a function of (scenario, seed, hooks). Each run gets a
//! fresh OS thread and a fresh runtime, so no thread-local or global state leaks between seeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use madsim::runtime::{Handle, Runtime};
use serde_json::json;

use crate::agent::{self, AgentDisk};
use crate::check::Breach;
use crate::client;
use crate::faults::{FaultKind, FaultPlan, fault_duration};
use crate::manager::{self, ManagerDisk};
use crate::net::{client_ip, manager_ip, worker_ip};
use crate::result::{Metrics, RunResult, Violation};
use crate::rng::{Draw, SimRng, sim};
use crate::scenario::Checker;
use crate::scenario::{Action, MessageFault, Scenario, Step, Target, TimedOp};
use crate::world::{Script, Shared, StoreHook, World};

/// Extra knobs of a run that are not part of the scenario.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Extra per-entry checkers (tests plant deliberately broken ones).
    pub hooks: Vec<StoreHook>,
    /// Keep the whole trace in memory (for `--trace` and determinism diffs), not only a tail.
    pub keep_trace: bool,
    /// Keep the user requests sent and the random fault decisions made (for decompile).
    pub keep_decisions: bool,
}

const TRACE_TAIL: usize = 200;
const NEMESIS_STEP: Duration = Duration::from_millis(100);
/// How long the end checks may wait for a quiet leader.
const FINAL_GRACE: Duration = Duration::from_secs(20);

/// Runs one seed on a fresh thread.
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunResult {
    let scenario = Arc::new(scenario.clone());
    let options = options.clone();
    let wall = Instant::now();
    let thread = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || run_here(scenario, seed, options))
        .expect("spawn a run thread");
    let mut result = thread.join().expect("run threads catch their panics");
    result.wall_ms = wall.elapsed().as_millis() as u64;
    result
}

fn run_here(scenario: Arc<Scenario>, seed: u64, options: RunOptions) -> RunResult {
    let name = scenario.name.clone();
    let legacy = scenario.legacy_flavour().map(|f| f.to_string());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(drive(scenario, seed, options))
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let violation = Violation {
                checker: "panic".into(),
                objects: Vec::new(),
                detail: message,
                t_ms: 0,
                raft_index: 0,
                node: "?".into(),
            };
            RunResult {
                scenario: name,
                legacy,
                seed,
                faults: FaultPlan::default(),
                violation: Some(violation),
                trace_hash: "panic".into(),
                trace_lines: 0,
                sim_ms: 0,
                wall_ms: 0,
                metrics: Metrics::default(),
                series: None,
                trace_tail: Vec::new(),
                trace: Vec::new(),
                decisions: Vec::new(),
                ops: Vec::new(),
                real: None,
            }
        }
    }
}

async fn drive(scenario: Arc<Scenario>, seed: u64, options: RunOptions) -> RunResult {
    let handle = Handle::current();
    // One stream per kind of decision, always drawn in the same order whatever the scenario, so
    // that making some decisions explicit (decompile) leaves every other draw unchanged.
    let mut rng = sim();
    let streams: [u64; 5] = std::array::from_fn(|_| rng.next_u64());
    let [plan_seed, workload_seed, nemesis_seed, proposal_seed, failure_seed] = streams;
    let plan = scenario.faults.choose(&mut SimRng::new(plan_seed), scenario.batch_max);
    let ops = scenario.client_ops(&mut SimRng::new(workload_seed));
    let keep = if options.keep_trace { usize::MAX } else { TRACE_TAIL * 4 };
    let script = Script::new(&scenario, &plan, proposal_seed, failure_seed);
    let world = Shared::new(scenario.clone(), plan.clone(), script, options.hooks.clone(), keep);
    {
        let mut w = world.lock();
        w.faults_active = scenario.faults_until_ms > 0
            && (!plan.rates.is_empty() || scenario.steps.iter().any(|s| s.action.is_fault()));
        record_message_windows(&mut w, &plan, scenario.faults_until_ms);
        w.record(
            "sim",
            "run_start",
            json!({ "seed": seed, "scenario": scenario.name, "faults": plan.to_string(), "ops": ops.len() }),
        );
    }
    let voters: Vec<u64> = (1..=u64::from(scenario.managers)).collect();
    let mut nodes: Vec<(String, madsim::task::NodeId)> = Vec::new();
    for i in 1..=u64::from(scenario.managers) {
        let disk = Arc::new(ManagerDisk::new(voters.clone()));
        let w = world.clone();
        let node = handle
            .create_node()
            .name(format!("m{i}"))
            .ip(manager_ip(i))
            .init(move || manager::run(i, disk.clone(), w.clone()))
            .build();
        nodes.push((format!("m{i}"), node.id()));
    }
    for i in 1..=u64::from(scenario.workers) {
        let disk = Arc::new(AgentDisk::default());
        let w = world.clone();
        let managers = scenario.managers;
        let node = handle
            .create_node()
            .name(format!("w{i}"))
            .ip(worker_ip(i))
            .init(move || agent::run(i, managers, disk.clone(), w.clone()))
            .build();
        nodes.push((format!("w{i}"), node.id()));
    }
    let mut client_ids: Vec<madsim::task::NodeId> = Vec::new();
    for i in 1..=u64::from(scenario.clients) {
        let w = world.clone();
        let managers = scenario.managers;
        let clients = u64::from(scenario.clients);
        let mine: Vec<(u64, TimedOp)> = ops
            .iter()
            .enumerate()
            .map(|(req, op)| (req as u64, op.clone()))
            .filter(|(req, _)| req % clients == i - 1)
            .collect();
        let client = handle
            .create_node()
            .name(format!("c{i}"))
            .ip(client_ip(i))
            .init(move || client::run(i, mine.clone(), managers, w.clone()))
            .build();
        client_ids.push(client.id());
    }
    world.lock().node_ids = nodes.iter().cloned().collect();
    nemesis(&handle, &world, &scenario, &plan, &nodes, nemesis_seed).await;
    finish(&world, &scenario).await;
    let result = {
        let mut w = world.lock();
        let end_ms = w.now_ms();
        w.series.finish(end_ms);
        RunResult {
            scenario: scenario.name.clone(),
            legacy: scenario.legacy_flavour().map(|f| f.to_string()),
            seed,
            faults: plan,
            violation: w.violation.clone(),
            trace_hash: format!("{:016x}", w.trace.hash()),
            trace_lines: w.trace.count(),
            sim_ms: w.now_ms(),
            wall_ms: 0,
            metrics: w.metrics.clone(),
            series: Some(w.series.series().clone()),
            trace_tail: if w.violation.is_some() { w.trace.tail(TRACE_TAIL) } else { Vec::new() },
            trace: if options.keep_trace { w.trace.lines().map(|(_, l)| l.to_string()).collect() } else { Vec::new() },
            decisions: if options.keep_decisions { w.script.decisions.clone() } else { Vec::new() },
            ops: if options.keep_decisions { ops } else { Vec::new() },
            real: None,
        }
    };
    // madsim drops no task that is still pending when `block_on` returns, and pending tasks keep
    // each other alive (one waits on a channel whose sender another holds), so each run would
    // leak its nodes' whole state. A killed node's tasks are woken and dropped on the executor's
    // next turn.
    for id in nodes.iter().map(|(_, id)| *id).chain(client_ids) {
        handle.kill(id);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
    result
}

/// Injects node-level faults until `faults_until_ms` (scripted steps when due, then the plan's
/// random ones), heals what is due, then heals everything.
async fn nemesis(
    handle: &Handle,
    world: &Shared,
    scenario: &Scenario,
    plan: &FaultPlan,
    nodes: &[(String, madsim::task::NodeId)],
    seed: u64,
) {
    let mut nemesis = Nemesis {
        handle,
        net: madsim::net::NetSim::current(),
        ids: nodes.iter().cloned().collect(),
        killed: BTreeMap::new(),
        managers: scenario.managers,
    };
    let faults_until = Duration::from_millis(scenario.faults_until_ms);
    let duration = Duration::from_millis(scenario.duration_ms);
    let mut scripted: Vec<Step> = scenario.steps.iter().filter(|s| s.action.is_node_fault()).cloned().collect();
    // A file may list steps in any order; they fire in time order (file order at equal times).
    scripted.sort_by_key(|s| s.at_ms);
    let mut healed = false;
    let mut rng = SimRng::new(seed);
    loop {
        madsim::time::sleep(NEMESIS_STEP).await;
        let mut w = world.lock();
        let now = w.now();
        if w.stopped() || now >= duration {
            return;
        }
        nemesis.heal_due(&mut w, now);
        if now >= faults_until {
            if !healed {
                healed = true;
                nemesis.heal_all(&mut w);
            }
            continue;
        }
        let due = scripted.iter().take_while(|s| Duration::from_millis(s.at_ms) <= now).count();
        for step in scripted.drain(..due) {
            nemesis.inject(&mut w, &step.action, now, faults_until);
        }
        for kind in FaultKind::ALL.into_iter().filter(|k| k.is_node_event()) {
            let rate = plan.rate(kind) * NEMESIS_STEP.as_secs_f64();
            if !rng.chance(rate) {
                continue;
            }
            let action = match kind {
                FaultKind::LeaderPartition => {
                    Action::Partition { node: Target::Leader, for_ms: Some(duration_ms(&mut rng, kind)) }
                }
                FaultKind::KillRestart => {
                    let alive: Vec<&String> =
                        nodes.iter().map(|(n, _)| n).filter(|n| !nemesis.killed.contains_key(*n)).collect();
                    let name = alive[rng.index(alive.len())].clone();
                    // Keep a majority of managers alive most of the time: a kill of the last
                    // quorum member waits for the next draw.
                    if !nemesis.may_kill(&name) {
                        continue;
                    }
                    Action::Kill { node: Target::Node(name), restart_after_ms: Some(duration_ms(&mut rng, kind)) }
                }
                FaultKind::AllocatorRestart => Action::RestartAllocator,
                FaultKind::WorkerPartition => {
                    let reachable: Vec<&String> = nodes
                        .iter()
                        .map(|(n, _)| n)
                        .filter(|n| {
                            n.starts_with('w') && !nemesis.killed.contains_key(*n) && !w.isolated.contains_key(*n)
                        })
                        .collect();
                    if reachable.is_empty() {
                        continue;
                    }
                    let name = reachable[rng.index(reachable.len())].clone();
                    Action::Partition { node: Target::Node(name), for_ms: Some(duration_ms(&mut rng, kind)) }
                }
                FaultKind::SlowFollower => {
                    let leader = w.leader.map(|(_, id)| format!("m{id}"));
                    let followers: Vec<String> = (1..=scenario.managers)
                        .map(|i| format!("m{i}"))
                        .filter(|n| Some(n) != leader.as_ref())
                        .collect();
                    if followers.is_empty() {
                        continue;
                    }
                    let name = followers[rng.index(followers.len())].clone();
                    let for_ms = duration_ms(&mut rng, kind);
                    let extra_ms = rng.range(50, 400);
                    Action::SlowNode { node: Target::Node(name), extra_ms, for_ms }
                }
                _ => continue,
            };
            if nemesis.inject(&mut w, &action, now, faults_until) {
                w.decided(action);
            }
        }
    }
}

/// Message faults hit every link while they are on: the plan's for the whole fault period, the
/// scenario's scripted ones for their window.
fn record_message_windows(w: &mut World, plan: &FaultPlan, faults_until_ms: u64) {
    if !w.faults_active {
        return;
    }
    for kind in [FaultKind::MessageLoss, FaultKind::MessageDelay, FaultKind::MessageDuplication] {
        if plan.rate(kind) > 0.0 {
            w.series.fault_started(kind, None, 0, Some(faults_until_ms));
        }
    }
    let scripted: Vec<(FaultKind, u64, u64)> = w
        .script
        .message_windows
        .iter()
        .map(|(fault, _, from, until)| {
            let kind = match fault {
                MessageFault::Loss => FaultKind::MessageLoss,
                MessageFault::Delay => FaultKind::MessageDelay,
                MessageFault::Duplication => FaultKind::MessageDuplication,
            };
            (kind, *from, (*until).min(faults_until_ms))
        })
        .collect();
    for (kind, from, until) in scripted {
        w.series.fault_started(kind, None, from, Some(until));
    }
}

/// Faults that cut a node off the network until it is healed (or restarted).
const ISOLATIONS: [FaultKind; 3] = [FaultKind::LeaderPartition, FaultKind::AmbiguousCommit, FaultKind::BatchCut];

fn duration_ms(rng: &mut SimRng, kind: FaultKind) -> u64 {
    fault_duration(rng, kind).as_millis() as u64
}

/// The nemesis's view of the cluster: which nodes it killed and until when.
struct Nemesis<'a> {
    handle: &'a Handle,
    net: Arc<madsim::net::NetSim>,
    ids: BTreeMap<String, madsim::task::NodeId>,
    killed: BTreeMap<String, Duration>,
    managers: u8,
}

impl Nemesis<'_> {
    fn may_kill(&self, name: &str) -> bool {
        let managers_down = self.killed.keys().filter(|n| n.starts_with('m')).count();
        !name.starts_with('m') || (managers_down + 1) * 2 <= usize::from(self.managers)
    }

    fn resolve(&self, w: &World, target: &Target) -> Option<String> {
        match target {
            Target::Leader => w.leader.map(|(_, id)| format!("m{id}")),
            Target::Node(name) => Some(name.clone()),
        }
    }

    fn heal_due(&mut self, w: &mut World, now: Duration) {
        let due: Vec<String> = w.isolated.iter().filter(|(_, until)| **until <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            self.heal(w, &name);
        }
        let due: Vec<String> = self.killed.iter().filter(|(_, until)| **until <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            self.restart(w, &name);
        }
    }

    fn heal(&mut self, w: &mut World, name: &str) {
        let now_ms = w.now_ms();
        w.series.faults_ended(name, &ISOLATIONS, now_ms);
        w.isolated.remove(name);
        if !self.killed.contains_key(name) {
            self.net.unclog_node(self.ids[name]);
        }
        w.record("nemesis", "heal", json!({ "kind": "partition", "node": name }));
    }

    fn restart(&mut self, w: &mut World, name: &str) {
        let now_ms = w.now_ms();
        w.series.faults_ended(name, &ISOLATIONS, now_ms);
        w.series.faults_ended(name, &[FaultKind::KillRestart], now_ms);
        self.killed.remove(name);
        self.net.unclog_node(self.ids[name]);
        w.isolated.remove(name);
        self.handle.restart(self.ids[name]);
        w.record("nemesis", "restart", json!({ "node": name }));
    }

    fn heal_all(&mut self, w: &mut World) {
        w.faults_active = false;
        // A scripted proposal fault still waiting for its proposal expires with the others.
        let expired = std::mem::take(&mut w.script.proposal_faults);
        if !expired.is_empty() {
            let at_ms: Vec<u64> = expired.iter().map(|s| s.at_ms).collect();
            w.record("nemesis", "proposal_faults_expired", json!({ "at_ms": at_ms }));
        }
        let now_ms = w.now_ms();
        w.series.all_faults_ended(now_ms);
        w.links.slow.clear();
        for (name, id) in &self.ids {
            self.net.unclog_node(*id);
            if self.killed.remove(name).is_some() {
                self.handle.restart(*id);
            }
        }
        w.isolated.clear();
        w.record("nemesis", "heal_all", json!({}));
    }

    /// Injects one node-level fault; false when it cannot apply now (the target is down or
    /// unknown), which is traced.
    fn inject(&mut self, w: &mut World, action: &Action, now: Duration, faults_until: Duration) -> bool {
        let until = |ms: Option<u64>| ms.map_or(faults_until, |ms| now + Duration::from_millis(ms));
        let skipped = |w: &mut World, why: &str| {
            let data = json!({ "action": action, "why": why });
            w.record("nemesis", "fault_skipped", data);
            false
        };
        let injected = match action {
            Action::Partition { node, for_ms } => {
                let Some(name) = self.resolve(w, node) else { return skipped(w, "no leader") };
                if self.killed.contains_key(&name) || w.isolated.contains_key(&name) {
                    return skipped(w, "already down");
                }
                let until = until(*for_ms);
                self.net.clog_node(self.ids[&name]);
                w.isolated.insert(name.clone(), until);
                let kind = if name.starts_with('w') { FaultKind::WorkerPartition } else { FaultKind::LeaderPartition };
                w.series.fault_started(kind, Some(&name), now.as_millis() as u64, None);
                json!({ "kind": kind, "node": name, "until_ms": until.as_millis() as u64 })
            }
            Action::Heal { node: Some(node) } => {
                let Some(name) = self.resolve(w, node) else { return skipped(w, "no leader") };
                self.heal(w, &name);
                return true;
            }
            Action::Heal { node: None } => {
                let isolated: Vec<String> = w.isolated.keys().cloned().collect();
                for name in isolated {
                    self.heal(w, &name);
                }
                return true;
            }
            Action::Kill { node, restart_after_ms } => {
                let Some(name) = self.resolve(w, node) else { return skipped(w, "no leader") };
                if self.killed.contains_key(&name) {
                    return skipped(w, "already down");
                }
                let until = until(*restart_after_ms);
                self.handle.kill(self.ids[&name]);
                w.containers.remove(&name);
                self.killed.insert(name.clone(), until);
                let now_ms = now.as_millis() as u64;
                w.series.fault_started(FaultKind::KillRestart, Some(&name), now_ms, None);
                w.series.leader_ended(Some(&name), now_ms);
                json!({ "kind": FaultKind::KillRestart, "node": name, "until_ms": until.as_millis() as u64 })
            }
            Action::Restart { node } => {
                let Some(name) = self.resolve(w, node) else { return skipped(w, "no leader") };
                if !self.killed.contains_key(&name) {
                    self.handle.kill(self.ids[&name]);
                    w.containers.remove(&name);
                    let now_ms = now.as_millis() as u64;
                    w.series.fault_started(FaultKind::KillRestart, Some(&name), now_ms, None);
                    w.series.leader_ended(Some(&name), now_ms);
                }
                self.restart(w, &name);
                return true;
            }
            Action::RestartAllocator => {
                w.allocator_restart = true;
                let leader = w.leader.map(|(_, id)| format!("m{id}"));
                let now_ms = now.as_millis() as u64;
                w.series.fault_started(FaultKind::AllocatorRestart, leader.as_deref(), now_ms, Some(now_ms));
                json!({ "kind": FaultKind::AllocatorRestart, "node": leader })
            }
            Action::SlowNode { node, extra_ms, for_ms } => {
                let Some(name) = self.resolve(w, node) else { return skipped(w, "no leader") };
                let until = now + Duration::from_millis(*for_ms);
                w.links.slow.insert(name.clone(), (until, Duration::from_millis(*extra_ms)));
                let (start_ms, end_ms) = (now.as_millis() as u64, until.as_millis() as u64);
                w.series.fault_started(FaultKind::SlowFollower, Some(&name), start_ms, Some(end_ms));
                json!({ "kind": FaultKind::SlowFollower, "node": name, "extra_ms": extra_ms, "until_ms": until.as_millis() as u64 })
            }
            _ => return false,
        };
        w.record("nemesis", "fault", injected);
        w.metrics.faults_injected += 1;
        true
    }
}

/// Asks the leader for the end checks and waits for them (or reports that nobody answered).
async fn finish(world: &Shared, scenario: &Scenario) {
    {
        let mut w = world.lock();
        if w.stopped() {
            return;
        }
        w.final_requested = true;
        w.record("sim", "final_requested", json!({}));
    }
    let deadline = madsim::time::Instant::now() + FINAL_GRACE;
    while madsim::time::Instant::now() < deadline {
        madsim::time::sleep(NEMESIS_STEP).await;
        let w = world.lock();
        if w.final_done || w.stopped() {
            break;
        }
    }
    let mut w = world.lock();
    if !w.final_done && w.violation.is_none() && !scenario.stop_when_all_pending {
        let leader = w.leader.map(|(term, id)| format!("m{id} (term {term})")).unwrap_or_else(|| "none".into());
        let breach = Breach::new(
            Checker::LivenessQuiescence,
            vec![leader],
            format!("no leader reached a quiet allocator within {}s after the end", FINAL_GRACE.as_secs()),
        );
        let frontier = w.frontier;
        w.violate(breach, "sim", frontier);
    }
    w.stop = true;
}
