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
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agent::{self, AgentDisk};
use crate::client;
use crate::faults::{FaultKind, FaultPlan, fault_duration};
use crate::manager::{self, ManagerDisk};
use crate::net::{client_ip, manager_ip, worker_ip};
use crate::rng::{Draw, SimRng, sim};
use crate::scenario::{Scenario, TimedOp};
use crate::world::{Finding, Metrics, Shared, StoreHook, Violation};

/// Extra knobs of a run that are not part of the scenario.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Extra per-entry checkers (tests plant deliberately broken ones).
    pub hooks: Vec<StoreHook>,
    /// Keep the whole trace in memory (for `--trace` and determinism diffs), not only a tail.
    pub keep_trace: bool,
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub faults: FaultPlan,
    pub violation: Option<Violation>,
    pub trace_hash: String,
    pub trace_lines: u64,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub trace_tail: Vec<String>,
    /// The whole trace when `keep_trace` was set.
    #[serde(skip)]
    pub trace: Vec<String>,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
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
                seed,
                faults: FaultPlan::default(),
                violation: Some(violation),
                trace_hash: "panic".into(),
                trace_lines: 0,
                sim_ms: 0,
                wall_ms: 0,
                metrics: Metrics::default(),
                trace_tail: Vec::new(),
                trace: Vec::new(),
            }
        }
    }
}

async fn drive(scenario: Arc<Scenario>, seed: u64, options: RunOptions) -> RunResult {
    let handle = Handle::current();
    let mut rng = sim();
    let plan = scenario.faults.choose(&mut rng, scenario.batch_max);
    let ops = scenario.workload.expand(&mut SimRng::new(rng.next_u64()), scenario.workers);
    let keep = if options.keep_trace { usize::MAX } else { TRACE_TAIL * 4 };
    let world = Shared::new(scenario.clone(), plan.clone(), options.hooks.clone(), keep);
    {
        let mut w = world.lock();
        w.faults_active = !plan.rates.is_empty() && scenario.faults_until_ms > 0;
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
        handle
            .create_node()
            .name(format!("c{i}"))
            .ip(client_ip(i))
            .init(move || client::run(i, mine.clone(), managers, w.clone()))
            .build();
    }
    world.lock().node_ids = nodes.iter().cloned().collect();
    nemesis(&handle, &world, &scenario, &plan, &nodes).await;
    finish(&world, &scenario).await;
    let w = world.lock();
    RunResult {
        scenario: scenario.name.clone(),
        seed,
        faults: plan,
        violation: w.violation.clone(),
        trace_hash: format!("{:016x}", w.trace.hash()),
        trace_lines: w.trace.count(),
        sim_ms: w.now_ms(),
        wall_ms: 0,
        metrics: w.metrics.clone(),
        trace_tail: w.trace.tail(TRACE_TAIL),
        trace: if options.keep_trace { w.trace.lines().map(|(_, l)| l.to_string()).collect() } else { Vec::new() },
    }
}

/// Injects node-level faults until `faults_until_ms`, heals what is due, then heals everything.
async fn nemesis(
    handle: &Handle,
    world: &Shared,
    scenario: &Scenario,
    plan: &FaultPlan,
    nodes: &[(String, madsim::task::NodeId)],
) {
    let net = madsim::net::NetSim::current();
    let ids: BTreeMap<String, madsim::task::NodeId> = nodes.iter().cloned().collect();
    let mut killed: BTreeMap<String, Duration> = BTreeMap::new();
    let faults_until = Duration::from_millis(scenario.faults_until_ms);
    let duration = Duration::from_millis(scenario.duration_ms);
    let mut healed = false;
    let mut rng = sim();
    loop {
        madsim::time::sleep(NEMESIS_STEP).await;
        let mut w = world.lock();
        let now = w.now();
        if w.stopped() || now >= duration {
            return;
        }
        // Heal what is due.
        let due: Vec<String> = w.isolated.iter().filter(|(_, until)| **until <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            w.isolated.remove(&name);
            if !killed.contains_key(&name) {
                net.unclog_node(ids[&name]);
            }
            w.record("nemesis", "heal", json!({ "kind": "partition", "node": name }));
        }
        let due: Vec<String> = killed.iter().filter(|(_, until)| **until <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            killed.remove(&name);
            net.unclog_node(ids[&name]);
            w.isolated.remove(&name);
            handle.restart(ids[&name]);
            w.record("nemesis", "restart", json!({ "node": name }));
        }
        if now >= faults_until {
            if !healed {
                healed = true;
                w.faults_active = false;
                w.links.slow.clear();
                for (name, id) in nodes {
                    net.unclog_node(*id);
                    if killed.remove(name).is_some() {
                        handle.restart(*id);
                    }
                }
                w.isolated.clear();
                w.record("nemesis", "heal_all", json!({}));
            }
            continue;
        }
        for kind in FaultKind::ALL.into_iter().filter(|k| k.is_node_event()) {
            let rate = plan.rate(kind) * NEMESIS_STEP.as_secs_f64();
            if !rng.chance(rate) {
                continue;
            }
            let leader = w.leader.map(|(_, id)| format!("m{id}"));
            match kind {
                FaultKind::LeaderPartition => {
                    let Some(leader) = leader.filter(|l| !killed.contains_key(l) && !w.isolated.contains_key(l)) else {
                        continue;
                    };
                    let until = now + fault_duration(&mut rng, kind);
                    net.clog_node(ids[&leader]);
                    w.isolated.insert(leader.clone(), until);
                    w.record(
                        "nemesis",
                        "fault",
                        json!({ "kind": kind, "node": leader, "until_ms": until.as_millis() as u64 }),
                    );
                }
                FaultKind::KillRestart => {
                    let alive: Vec<&String> =
                        nodes.iter().map(|(n, _)| n).filter(|n| !killed.contains_key(*n)).collect();
                    let managers_down = killed.keys().filter(|n| n.starts_with('m')).count();
                    let name = alive[rng.index(alive.len())].clone();
                    // Keep a majority of managers alive most of the time: a kill of the last
                    // quorum member waits for the next draw.
                    if name.starts_with('m') && (managers_down + 1) * 2 > usize::from(scenario.managers) {
                        continue;
                    }
                    let until = now + fault_duration(&mut rng, kind);
                    handle.kill(ids[&name]);
                    w.containers.remove(&name);
                    killed.insert(name.clone(), until);
                    w.record(
                        "nemesis",
                        "fault",
                        json!({ "kind": kind, "node": name, "until_ms": until.as_millis() as u64 }),
                    );
                }
                FaultKind::AllocatorRestart => {
                    w.allocator_restart = true;
                    w.record("nemesis", "fault", json!({ "kind": kind, "node": leader }));
                }
                FaultKind::SlowFollower => {
                    let followers: Vec<String> = (1..=scenario.managers)
                        .map(|i| format!("m{i}"))
                        .filter(|n| Some(n) != leader.as_ref())
                        .collect();
                    if followers.is_empty() {
                        continue;
                    }
                    let name = followers[rng.index(followers.len())].clone();
                    let until = now + fault_duration(&mut rng, kind);
                    let extra = Duration::from_millis(rng.range(50, 400));
                    w.links.slow.insert(name.clone(), (until, extra));
                    w.record(
                        "nemesis",
                        "fault",
                        json!({ "kind": kind, "node": name, "extra_ms": extra.as_millis() as u64, "until_ms": until.as_millis() as u64 }),
                    );
                }
                _ => continue,
            }
            w.metrics.faults_injected += 1;
        }
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
        let finding = Finding::new(
            "liveness_quiescence",
            vec![leader],
            format!("no leader reached a quiet allocator within {}s after the end", FINAL_GRACE.as_secs()),
        );
        let frontier = w.frontier;
        w.violate(finding, "sim", frontier);
    }
    w.stop = true;
}
