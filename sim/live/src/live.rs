//! `allocsim live`: a scenario on a real swarm. The scenario runs once in the simulator at the
//! seed to learn what it does (`swarmalloc_sim::shrink::decompile`: the seed's user requests and
//! faults as explicit steps); then its user steps and the faults a one-manager swarm can take (a
//! manager crash and restart, a graceful restart) run in order on a real swarm: the swarm the
//! harness starts or, when asked, the one `--host`/`DOCKER_HOST` names. After every step, once
//! the swarm has settled, the state is gathered and checked with the simulator's store checkers
//! and `allocsim check`'s restore; at the end also with the end checks and the scenario's
//! assertions. Steps a real swarm cannot take are listed as skipped with the reason, never
//! dropped silently. The outcome is a result line like the simulator's, labelled `NAME [real]`,
//! so that `allocsim report` shows the real run beside the scenario's simulated ones.
//!
//! Steps run as fast as the swarm settles, in the scenario's order: their simulated times are
//! not waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarmalloc::{Allocator, NetworkAttachmentConfig, NetworkId, ServiceId, ServiceSpec};
use swarmalloc_reports::{Outcomes, ProblemKind};
use swarmalloc_sim::check::{Inherited, check_assertions, check_end, check_store};
use swarmalloc_sim::result::{RealRun, SkippedStep};
use swarmalloc_sim::scenario::{Action, Assertion, Checker, ClientOp, Scenario, Target};
use swarmalloc_sim::shrink::decompile;
use swarmalloc_sim::{Metrics, RunOptions, RunResult, SummaryLine, Violation};

use crate::Endpoint;
use crate::connection::Connection;
use crate::differential::store_of;
use crate::harness::{HarnessError, Swarm, SwarmOptions};
use crate::ops::{Op, Placement, apply};
use crate::state::RealState;

/// Which swarm `allocsim live` runs on.
#[derive(Clone, Debug)]
pub enum Where {
    /// A swarm the harness starts and removes (it waits for the machine's swarm lock).
    Own(SwarmOptions),
    /// A running swarm manager (`--host`/`DOCKER_HOST`): the objects the scenario creates stay
    /// behind, and faults are skipped (the process is not ours to kill).
    Existing(Endpoint),
}

#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// The seed of the scenario's random part (default: the scenario's own, else 0).
    pub seed: Option<u64>,
    pub target: Where,
    /// Run the services' tasks in containers on the manager (small scenarios): `running`
    /// assertions can then hold. Otherwise tasks are constrained to no node and stay PENDING.
    pub run_tasks: bool,
    /// How long a step may take to settle. A step whose tasks wait (a full pool) is checked once
    /// nothing has changed for [`QUIET`].
    pub settle: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            seed: None,
            target: Where::Own(SwarmOptions::default()),
            run_tasks: false,
            settle: Duration::from_secs(120),
        }
    }
}

/// How long nothing may change before an unsettled swarm (tasks waiting for a full pool) is
/// checked as it is.
pub const QUIET: Duration = Duration::from_secs(5);

/// What became of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The real swarm refused it (the simulator may have accepted it).
    Refused(String),
    /// A real swarm cannot take it; why.
    Skipped(String),
}

/// One step as it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The scenario's time of the step.
    pub at_ms: u64,
    pub what: String,
    pub outcome: Outcome,
}

impl fmt::Display for StepRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format!("{}.{:03}s", self.at_ms / 1000, self.at_ms % 1000);
        match &self.outcome {
            Outcome::Done => write!(f, "{at:>9}  {}", self.what),
            Outcome::Refused(why) => write!(f, "{at:>9}  {}: refused by the real swarm: {why}", self.what),
            Outcome::Skipped(why) => write!(f, "{at:>9}  {}: SKIPPED: {why}", self.what),
        }
    }
}

/// A live run's outcome: the result line and summary line `allocsim report` reads, and every
/// step with what became of it.
#[derive(Clone, Debug)]
pub struct LiveRun {
    pub result: RunResult,
    pub summary: SummaryLine,
    pub steps: Vec<StepRecord>,
    /// The daemon's version.
    pub daemon: String,
}

impl LiveRun {
    /// The run in words: the steps, what was skipped, the verdict.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} [real] seed {} on dockerd {}: {} steps, {} done, {} refused, {} skipped\n",
            self.result.scenario,
            self.result.seed,
            self.daemon,
            self.steps.len(),
            self.steps.iter().filter(|s| s.outcome == Outcome::Done).count(),
            self.steps.iter().filter(|s| matches!(s.outcome, Outcome::Refused(_))).count(),
            self.steps.iter().filter(|s| matches!(s.outcome, Outcome::Skipped(_))).count(),
        );
        for step in &self.steps {
            out += &format!("  {step}\n");
        }
        let listed: BTreeSet<(u64, &str)> = self.steps.iter().map(|s| (s.at_ms, s.what.as_str())).collect();
        for other in self.result.real.iter().flat_map(|r| &r.skipped) {
            if !listed.contains(&(other.at_ms, other.action.as_str())) {
                out += &format!("  {}: SKIPPED: {}\n", other.action, other.reason);
            }
        }
        out += "checked after every step that ran: the store checkers (addresses, subnets, VXLAN ids, ports) and \
                `allocsim check`; at the end: liveness, deleted objects, the assertions not skipped\n";
        match &self.result.violation {
            None => {
                out += &format!(
                    "PASS: every check held after every step and at the end ({:.1} s)\n",
                    self.result.wall_ms as f64 / 1000.0
                )
            }
            Some(v) => out += &format!("FAIL: {v}\n"),
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Harness(#[from] HarnessError),
    #[error("{0}")]
    Gather(#[from] crate::gather::GatherError),
    #[error("the real swarm's state: {0}")]
    State(#[from] swarmalloc_reports::InputError),
    #[error("the real swarm's state: {0}")]
    Store(String),
}

/// The swarm a run works on.
enum Real {
    Own(Swarm),
    Existing(Connection),
}

impl Real {
    fn conn(&self) -> &Connection {
        match self {
            Real::Own(swarm) => swarm,
            Real::Existing(conn) => conn,
        }
    }
}

/// Scenario ids to the Docker names the real swarm knows the objects by (the scenario's ids are
/// its own; a real swarm makes its own ids).
#[derive(Default)]
struct Names {
    networks: BTreeMap<NetworkId, String>,
    services: BTreeMap<ServiceId, String>,
    /// Real ids of the networks created so far, by scenario id (a removed network keeps its entry).
    network_ids: BTreeMap<NetworkId, String>,
}

impl Names {
    fn network(&self, id: &NetworkId) -> String {
        self.networks.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    fn service(&self, id: &ServiceId) -> String {
        self.services.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// `spec` with its network targets named as the real swarm knows them.
    fn service_spec(&self, spec: &ServiceSpec) -> ServiceSpec {
        let rename = |configs: &[NetworkAttachmentConfig]| -> Vec<NetworkAttachmentConfig> {
            configs
                .iter()
                .map(|c| NetworkAttachmentConfig { target: NetworkId::new(self.network(&c.target)), ..c.clone() })
                .collect()
        };
        ServiceSpec { task_networks: rename(&spec.task_networks), networks: rename(&spec.networks), ..spec.clone() }
    }
}

/// What a real swarm does with a user request: the operation, or why it cannot take it.
fn translate(op: &ClientOp, names: &mut Names, placement: Placement) -> Result<Op, String> {
    Ok(match op {
        ClientOp::CreateNetwork { id, spec } => {
            let driver = spec.driver.as_ref().map_or(swarmalloc::DEFAULT_DRIVER, |d| d.name.as_str());
            if driver != swarmalloc::DEFAULT_DRIVER {
                return Err(format!(
                    "a swarm network with driver {driver:?}: the real swarm is given overlay networks only"
                ));
            }
            names.networks.insert(id.clone(), spec.name.clone());
            Op::CreateNetwork(spec.clone())
        }
        ClientOp::RemoveNetwork { id } => Op::RemoveNetwork { name: names.network(id) },
        ClientOp::CreateService { id, spec } => {
            names.services.insert(id.clone(), spec.name.clone());
            Op::CreateService { spec: names.service_spec(spec), placement }
        }
        ClientOp::UpdateService { id, spec } => {
            let mut spec = names.service_spec(spec);
            spec.name = names.service(id);
            Op::UpdateService { spec, placement }
        }
        ClientOp::ScaleService { id, replicas } => Op::ScaleService { name: names.service(id), replicas: *replicas },
        ClientOp::RemoveService { id } => Op::RemoveService { name: names.service(id) },
        ClientOp::AttachNetwork { task, network, node: _, address } => {
            Op::RunContainer { name: container_name(task.as_str()), network: names.network(network), address: *address }
        }
        ClientOp::DetachNetwork { task } => Op::RemoveContainer { name: container_name(task.as_str()) },
        ClientOp::DrainNode { node } => {
            return Err(format!(
                "drain node {node}: the real swarm has one node, the manager, whose tasks run nowhere else"
            ));
        }
        ClientOp::RemoveNode { node } => {
            return Err(format!("remove node {node}: the real swarm has one node, the manager"));
        }
    })
}

/// A container name Docker accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) for a scenario's task id.
fn container_name(task: &str) -> String {
    let name: String =
        task.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
    if name.starts_with(|c: char| c.is_ascii_alphanumeric()) { name } else { format!("c{name}") }
}

/// The fault's effect on a one-manager swarm, or why it cannot take it.
enum Fault {
    /// kill -9, started again at once (`restart`) or at a later `restart` step.
    Crash { restart: bool },
    /// Start a crashed manager again (or crash a running one and start it).
    Restart,
    /// Stop and start dockerd: the allocator restores from the store, as after an allocator restart.
    Graceful,
}

fn is_manager(target: &Target, managers: u8) -> bool {
    match target {
        Target::Leader => true,
        Target::Node(name) => {
            name.strip_prefix('m').and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| (1..=managers).contains(&n))
        }
    }
}

fn fault(action: &Action, managers: u8) -> Result<Fault, String> {
    let one = "the real swarm has one manager";
    match action {
        Action::Kill { node, restart_after_ms } if is_manager(node, managers) => {
            Ok(Fault::Crash { restart: restart_after_ms.is_some() })
        }
        Action::Restart { node } if is_manager(node, managers) => Ok(Fault::Restart),
        Action::Kill { node, .. } | Action::Restart { node } => {
            Err(format!("node {node} is a worker, and the real swarm has one node, its manager"))
        }
        Action::RestartAllocator => Ok(Fault::Graceful),
        Action::Partition { node, .. } => Err(format!("a partition of {node} needs several nodes ({one})")),
        Action::Heal { .. } => Err(format!("nothing is partitioned ({one})")),
        Action::FailTask { .. } => {
            Err("a task's container exiting by itself: the real tasks are not the simulator's agents".into())
        }
        Action::CutBatch { .. } => Err("cutting an allocator batch needs control of raft proposals".into()),
        Action::AmbiguousProposal { .. } => Err("an ambiguous commit needs control of raft proposals".into()),
        Action::DropProposal { .. } => Err("dropping a proposal needs control of raft proposals".into()),
        Action::Messages { .. } => Err("message faults between managers need several managers".into()),
        Action::SlowNode { .. } => Err("a slow node needs control of the network between nodes".into()),
        Action::Client(_) => Err("not a fault".into()),
    }
}

/// What the real state breaks: the first finding of the checks, as a violation.
fn check(state: &RealState, scenario: &Scenario, at_ms: u64, what: &str) -> Result<Option<Violation>, LiveError> {
    let violation = |checker: &str, objects: Vec<String>, detail: String| Violation {
        checker: checker.to_string(),
        objects,
        detail: format!("after `{what}`: {detail}"),
        t_ms: at_ms,
        raft_index: 0,
        node: "the real manager".into(),
    };
    let store = store_of(&scenario.config, state.objects()?).map_err(LiveError::Store)?;
    if let Err(f) = check_store(&store, None, &Inherited::default(), &scenario.checks) {
        return Ok(Some(violation(f.checker, f.objects, f.detail)));
    }
    let report = state.check()?;
    // An object the next pass still could not allocate (a task in NEW or a service without its
    // VIP while their pool is full) is waiting, as the simulator's liveness check has it; one the
    // next pass would allocate is stuck, and any other problem is one.
    let waiting = |p: &swarmalloc_reports::Problem| {
        matches!(p.kind, ProblemKind::TaskStuckInNew { .. } | ProblemKind::NeedsAllocation { .. })
            && !p.actions.is_empty()
            && p.actions.iter().all(|a| matches!(a.outcome, Outcomes::Fails { retryable: true, .. }))
    };
    if let Some(problem) = report.problems.iter().find(|p| !waiting(p)) {
        let objects = problem.actions.iter().map(|a| a.object.to_string()).collect();
        let actions: Vec<String> = problem.actions.iter().map(|a| a.to_text()).collect();
        let detail = format!("{} ({})", problem.message, actions.join("; "));
        return Ok(Some(violation("allocsim_check", objects, detail)));
    }
    Ok(None)
}

/// Settles, or waits until nothing has changed for [`QUIET`] (tasks waiting for a full pool).
fn settled(conn: &Connection, timeout: Duration) -> Result<RealState, LiveError> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<(Vec<(String, u64)>, Instant)> = None;
    loop {
        let state = conn.state()?;
        let signature = state.signature();
        let now = Instant::now();
        let unchanged_since = match &last {
            Some((s, since)) if *s == signature => *since,
            _ => now,
        };
        let unchanged = now.duration_since(unchanged_since);
        if (state.unsettled().is_none() && unchanged >= Duration::from_millis(250)) || unchanged >= QUIET {
            return Ok(state);
        }
        if now > deadline {
            return Err(LiveError::Harness(HarnessError::Timeout {
                what: "the swarm to settle".into(),
                seconds: timeout.as_secs(),
                last: state.unsettled().unwrap_or_else(|| "objects still changing".into()),
            }));
        }
        last = Some((signature, unchanged_since));
        std::thread::sleep(Duration::from_millis(if state.tasks.len() >= 1000 { 1000 } else { 250 }));
    }
}

/// The scenario's assertions with the ids the real swarm gave; those a real run cannot judge are
/// returned apart with the reason.
fn assertions(
    scenario: &Scenario,
    names: &Names,
    state: &RealState,
    run_tasks: bool,
) -> (Vec<Assertion>, Vec<SkippedStep>) {
    let service_id = |id: &ServiceId| -> ServiceId {
        let name = names.service(id);
        let real =
            state.services.iter().find(|s| s.pointer("/Spec/Name").and_then(Value::as_str) == Some(name.as_str()));
        ServiceId::new(real.and_then(|s| s.get("ID")).and_then(Value::as_str).unwrap_or(id.as_str()))
    };
    let network_id =
        |id: &NetworkId| -> NetworkId { names.network_ids.get(id).map_or_else(|| id.clone(), NetworkId::new) };
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for (i, assertion) in scenario.assertions.iter().enumerate() {
        let skip = |reason: &str| SkippedStep {
            at_ms: scenario.duration_ms,
            action: format!("expect.assert[{i}]"),
            reason: reason.into(),
        };
        match assertion {
            Assertion::Running { .. } if !run_tasks => {
                skipped.push(skip("the real run's tasks are constrained to no node and never run (try --run-tasks)"))
            }
            Assertion::VipUnchangedSince { .. } => skipped.push(skip(
                "VIPs are sampled at raft entries in the simulator; a real run reads the state between steps",
            )),
            Assertion::Running { service, count } => {
                kept.push(Assertion::Running { service: service_id(service), count: *count })
            }
            Assertion::DistinctAddresses { service } => {
                kept.push(Assertion::DistinctAddresses { service: service_id(service) })
            }
            Assertion::NoTaskIn { state } => kept.push(Assertion::NoTaskIn { state: *state }),
            Assertion::NetworkAllocated { network, subnet } => {
                kept.push(Assertion::NetworkAllocated { network: network_id(network), subnet: *subnet })
            }
            Assertion::NetworkGone { network } => kept.push(Assertion::NetworkGone { network: network_id(network) }),
            Assertion::VipNetworks { service, networks } => kept.push(Assertion::VipNetworks {
                service: service_id(service),
                networks: networks.iter().map(network_id).collect(),
            }),
        }
    }
    (kept, skipped)
}

/// Runs `scenario` on a real swarm. Errs when the swarm cannot be started or read (exit 2);
/// a check that fails is the result's violation.
pub fn run_live(scenario: &Scenario, options: &LiveOptions) -> Result<LiveRun, LiveError> {
    let wall = Instant::now();
    let seed = options.seed.or(scenario.seed).unwrap_or(0);
    let (explicit, _) = decompile(scenario, seed, &RunOptions::default());
    let placement = if options.run_tasks { Placement::Running } else { Placement::Constrained };
    let mut records: Vec<StepRecord> = Vec::new();
    let mut setup_skipped: Vec<SkippedStep> = Vec::new();
    let defaults = swarmalloc::ClusterConfig::default();
    let mut real = match &options.target {
        Where::Own(swarm_options) => {
            let mut swarm_options = swarm_options.clone();
            if scenario.config.default_address_pools != defaults.default_address_pools
                || scenario.config.subnet_size != defaults.subnet_size
            {
                swarm_options.default_addr_pool =
                    scenario.config.default_address_pools.iter().map(|p| p.to_string()).collect();
                swarm_options.subnet_size = Some(u32::from(scenario.config.subnet_size));
            }
            Real::Own(Swarm::start(&swarm_options)?)
        }
        Where::Existing(endpoint) => {
            if scenario.config.default_address_pools != defaults.default_address_pools
                || scenario.config.subnet_size != defaults.subnet_size
            {
                setup_skipped.push(SkippedStep {
                    at_ms: 0,
                    action: "config.default_address_pools".into(),
                    reason: "the swarm at --host was initialised with its own pools".into(),
                });
            }
            Real::Existing(Connection::open(endpoint.clone())?)
        }
    };
    if scenario.config.dynamic_port_range != defaults.dynamic_port_range {
        setup_skipped.push(SkippedStep {
            at_ms: 0,
            action: "config.dynamic_port_range".into(),
            reason: "a real swarm's dynamic ports are 30000-32767".into(),
        });
    }
    if scenario.config.vxlan_id_range != defaults.vxlan_id_range {
        setup_skipped.push(SkippedStep {
            at_ms: 0,
            action: "config.vxlan_id_range".into(),
            reason: "a real swarm's VXLAN ids start at 4096".into(),
        });
    }
    let daemon = real.conn().block_on(real.conn().docker().version()).ok().and_then(|v| v.version).unwrap_or_default();
    let mut names = Names::default();
    // The initial state: its networks and services are created from their specs; what the store
    // held besides (allocations, tasks, nodes) cannot be written into a real store.
    let mut steps: Vec<(u64, Action)> = Vec::new();
    for network in &scenario.initial.networks {
        if network.ipam.is_some() || network.driver_state.is_some() {
            setup_skipped.push(SkippedStep {
                at_ms: 0,
                action: format!("initial network {}: its stored allocation", network.id),
                reason: "a real store takes no hand-written allocation; the real allocator allocates it afresh".into(),
            });
        }
        if network.is_ingress() || network.spec.labels.contains_key(swarmalloc::PREDEFINED_NETWORK_LABEL) {
            continue;
        }
        steps.push((0, Action::Client(ClientOp::CreateNetwork { id: network.id.clone(), spec: network.spec.clone() })));
    }
    for service in &scenario.initial.services {
        if service.endpoint.is_some() {
            setup_skipped.push(SkippedStep {
                at_ms: 0,
                action: format!("initial service {}: its stored endpoint", service.id),
                reason: "a real store takes no hand-written allocation; the real allocator allocates it afresh".into(),
            });
        }
        steps.push((0, Action::Client(ClientOp::CreateService { id: service.id.clone(), spec: service.spec.clone() })));
    }
    for (kind, count) in [("tasks", scenario.initial.tasks.len()), ("nodes", scenario.initial.nodes.len())] {
        if count > 0 {
            setup_skipped.push(SkippedStep {
                at_ms: 0,
                action: format!("initial {kind} ({count})"),
                reason: format!("a real swarm makes its own {kind}"),
            });
        }
    }
    steps.extend(explicit.steps.iter().map(|s| (s.at_ms, s.action.clone())));

    let mut violation: Option<Violation> = None;
    let mut crashed = false;
    let mut metrics = Metrics::default();
    let mut tasks_seen: BTreeSet<String> = BTreeSet::new();
    let mut last_state: Option<RealState> = None;
    for (at_ms, action) in steps {
        let (what, outcome) = match &action {
            Action::Client(op) => {
                let what = client_words(op);
                match translate(op, &mut names, placement) {
                    Err(reason) => (what, Outcome::Skipped(reason)),
                    Ok(_) if crashed => {
                        (what, Outcome::Skipped("the manager is down (killed, waiting for its restart step)".into()))
                    }
                    Ok(op) => match real.conn().block_on(apply(real.conn().docker(), &op)) {
                        Ok(()) => {
                            if let Op::CreateService { spec, .. } = &op {
                                metrics.services_created += u64::from(!spec.name.is_empty());
                            }
                            (what, Outcome::Done)
                        }
                        Err(e) => (what, Outcome::Refused(e.to_string())),
                    },
                }
            }
            other => {
                let what = fault_words(other);
                match (&real, fault(other, scenario.managers)) {
                    (_, Err(reason)) => (what, Outcome::Skipped(reason)),
                    (Real::Existing(_), Ok(_)) => {
                        (what, Outcome::Skipped("the swarm at --host is not this run's to kill or restart".into()))
                    }
                    (Real::Own(_), Ok(f)) => {
                        let Real::Own(swarm) = &mut real else { unreachable!("matched above") };
                        let done = match f {
                            Fault::Crash { restart } => {
                                let r = if restart { swarm.crash_restart() } else { swarm.crash() };
                                crashed = !restart;
                                r
                            }
                            Fault::Restart => {
                                let r = if crashed { swarm.start_again() } else { swarm.crash_restart() };
                                crashed = false;
                                r
                            }
                            Fault::Graceful => swarm.restart(),
                        };
                        done?;
                        metrics.faults_injected += 1;
                        metrics.leader_changes += 1;
                        metrics.allocator_restores += 1;
                        (what, Outcome::Done)
                    }
                }
            }
        };
        let ran = outcome == Outcome::Done;
        records.push(StepRecord { at_ms, what: what.clone(), outcome });
        if !ran || crashed {
            continue;
        }
        let state = match settled(real.conn(), options.settle) {
            Ok(state) => state,
            Err(LiveError::Harness(HarnessError::Timeout { last, .. })) => {
                violation.get_or_insert(Violation {
                    checker: Checker::Liveness.name().into(),
                    objects: Vec::new(),
                    detail: format!(
                        "after `{what}` the real swarm did not settle in {} s: {last}",
                        options.settle.as_secs()
                    ),
                    t_ms: at_ms,
                    raft_index: 0,
                    node: "the real manager".into(),
                });
                real.conn().state()?
            }
            Err(e) => return Err(e),
        };
        if let Action::Client(ClientOp::CreateNetwork { id, spec }) = &action
            && let Some(real_id) = state
                .networks
                .iter()
                .find(|n| n.get("Name").and_then(Value::as_str) == Some(spec.name.as_str()))
                .and_then(|n| n.get("Id").and_then(Value::as_str))
        {
            names.network_ids.insert(id.clone(), real_id.to_string());
        }
        tasks_seen.extend(state.tasks.iter().filter_map(|t| t.get("ID").and_then(Value::as_str)).map(str::to_string));
        if violation.is_none() {
            violation = check(&state, scenario, at_ms, &what)?;
        }
        last_state = Some(state);
    }
    if crashed && let Real::Own(swarm) = &mut real {
        swarm.start_again()?;
        last_state = None;
    }
    let mut state = match last_state {
        Some(state) => state,
        None => settled(real.conn(), options.settle)?,
    };
    if options.run_tasks {
        // The end checks judge running tasks: wait until those that should run do.
        let deadline = Instant::now() + options.settle;
        while let Some(task) = state.tasks.iter().find(|t| {
            t.get("DesiredState").and_then(Value::as_str) == Some("running")
                && t.pointer("/Status/State").and_then(Value::as_str) != Some("running")
        }) {
            if Instant::now() > deadline {
                let id = task.get("ID").and_then(Value::as_str).unwrap_or_default().to_string();
                violation.get_or_insert(Violation {
                    checker: Checker::Liveness.name().into(),
                    objects: vec![format!("task {id}")],
                    detail: format!("at the end, task {id} did not reach RUNNING in {} s", options.settle.as_secs()),
                    t_ms: scenario.duration_ms,
                    raft_index: 0,
                    node: "the real manager".into(),
                });
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            state = real.conn().state()?;
        }
    }
    let (kept, skipped_assertions) = assertions(scenario, &names, &state, options.run_tasks);
    if violation.is_none() {
        let store = store_of(&scenario.config, state.objects()?).map_err(LiveError::Store)?;
        let (engine, _) =
            Allocator::restore(store.config(), store.objects()).expect("the scenario's config was validated");
        let end = check_end(&engine, &store, &scenario.checks)
            .and_then(|()| check_assertions(&kept, &store, &BTreeMap::new()));
        if let Err(f) = end {
            violation = Some(Violation {
                checker: f.checker.to_string(),
                objects: f.objects,
                detail: format!("at the end: {}", f.detail),
                t_ms: scenario.duration_ms,
                raft_index: 0,
                node: "the real manager".into(),
            });
        }
    }
    metrics.tasks_created = tasks_seen.len() as u64;
    metrics.tasks_pending = state
        .tasks
        .iter()
        .filter(|t| t.pointer("/Status/State").and_then(Value::as_str).is_some_and(|s| s != "new"))
        .count() as u64;
    let mut skipped = setup_skipped;
    skipped.extend(records.iter().filter_map(|r| match &r.outcome {
        Outcome::Skipped(reason) => {
            Some(SkippedStep { at_ms: r.at_ms, action: r.what.clone(), reason: reason.clone() })
        }
        _ => None,
    }));
    skipped.extend(skipped_assertions);
    let steps_run = records.iter().filter(|r| !matches!(r.outcome, Outcome::Skipped(_))).count();
    let wall_ms = wall.elapsed().as_millis() as u64;
    let passed = violation.is_none();
    let result = RunResult {
        scenario: scenario.name.clone(),
        legacy: None,
        seed,
        faults: Default::default(),
        violation,
        trace_hash: String::new(),
        trace_lines: 0,
        sim_ms: 0,
        wall_ms,
        metrics,
        series: None,
        trace_tail: Vec::new(),
        trace: Vec::new(),
        decisions: Vec::new(),
        ops: Vec::new(),
        real: Some(RealRun { daemon: daemon.clone(), steps: steps_run as u64, skipped }),
    };
    let summary = SummaryLine {
        summary: format!("{} [real]: {}", scenario.name, if passed { "passed" } else { "FAILED" }),
        scenario: scenario.name.clone(),
        legacy: None,
        seeds: 1,
        failed: u64::from(!passed),
        seconds: wall_ms as f64 / 1000.0,
        failing_seeds: if passed { Vec::new() } else { vec![seed] },
        jobs: Some(1),
        interrupted: false,
        real: true,
    };
    Ok(LiveRun { result, summary, steps: records, daemon })
}

/// A user request in `docker`'s words with the scenario's ids.
fn client_words(op: &ClientOp) -> String {
    match op {
        ClientOp::CreateNetwork { id, .. } => format!("network create {id}"),
        ClientOp::RemoveNetwork { id } => format!("network rm {id}"),
        ClientOp::CreateService { id, spec } => format!("service create {id} --replicas {}", spec.replicas),
        ClientOp::UpdateService { id, spec } => format!("service update {id} (replicas {})", spec.replicas),
        ClientOp::RemoveService { id } => format!("service rm {id}"),
        ClientOp::AttachNetwork { task, network, address, .. } => match address {
            Some(address) => format!("run --network {network} --ip {address} (task {task})"),
            None => format!("run --network {network} (task {task})"),
        },
        ClientOp::DetachNetwork { task } => format!("rm -f the container of task {task}"),
        ClientOp::ScaleService { id, replicas } => format!("service scale {id}={replicas}"),
        ClientOp::DrainNode { node } => format!("node update --availability drain {node}"),
        ClientOp::RemoveNode { node } => format!("node rm --force {node}"),
    }
}

/// A fault in words.
fn fault_words(action: &Action) -> String {
    let ms = |ms: &u64| format!("{}.{:03}s", ms / 1000, ms % 1000);
    match action {
        Action::Client(op) => client_words(op),
        Action::FailTask { task, service, slot } => match (task, service) {
            (Some(task), _) => format!("task {task} fails"),
            (None, Some(service)) => format!("the task of service {service} in slot {slot} fails"),
            (None, None) => format!("the task in slot {slot} fails"),
        },
        Action::Partition { node, for_ms } => match for_ms {
            Some(for_ms) => format!("partition {node} for {}", ms(for_ms)),
            None => format!("partition {node}"),
        },
        Action::Heal { node: Some(node) } => format!("heal {node}"),
        Action::Heal { node: None } => "heal every node".into(),
        Action::Kill { node, restart_after_ms: Some(after) } => format!("kill {node}, restart after {}", ms(after)),
        Action::Kill { node, restart_after_ms: None } => format!("kill {node}"),
        Action::Restart { node } => format!("restart {node}"),
        Action::RestartAllocator => "restart the leader's allocator".into(),
        Action::CutBatch { after, .. } => format!("cut the next allocator batch after {after} transactions"),
        Action::AmbiguousProposal { .. } => "an ambiguous commit".into(),
        Action::DropProposal { .. } => "a dropped proposal".into(),
        Action::Messages { fault, rate, for_ms } => {
            format!("message {fault:?} at rate {rate} for {}", ms(for_ms)).to_lowercase()
        }
        Action::SlowNode { node, extra_ms, for_ms } => format!("slow {node} by {extra_ms} ms for {}", ms(for_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_requests_name_the_objects_as_the_real_swarm_knows_them() {
        let mut names = Names::default();
        let spec = swarmalloc::NetworkSpec { name: "front".into(), ..Default::default() };
        let created =
            translate(&ClientOp::CreateNetwork { id: "net-1".into(), spec }, &mut names, Placement::Constrained);
        assert!(matches!(created, Ok(Op::CreateNetwork(s)) if s.name == "front"));
        let service = ServiceSpec {
            name: "web".into(),
            replicas: 2,
            task_networks: vec![NetworkAttachmentConfig::to("net-1"), NetworkAttachmentConfig::to("ingress")],
            ..Default::default()
        };
        let op = translate(
            &ClientOp::CreateService { id: "svc-1".into(), spec: service },
            &mut names,
            Placement::Constrained,
        );
        let Ok(Op::CreateService { spec, .. }) = op else { panic!("{op:?}") };
        let targets: Vec<&str> = spec.task_networks.iter().map(|a| a.target.as_str()).collect();
        assert_eq!(targets, ["front", "ingress"]);
        let scale =
            translate(&ClientOp::ScaleService { id: "svc-1".into(), replicas: 5 }, &mut names, Placement::Constrained);
        assert_eq!(scale, Ok(Op::ScaleService { name: "web".into(), replicas: 5 }));
        let drain = translate(&ClientOp::DrainNode { node: "w1".into() }, &mut names, Placement::Constrained);
        assert!(drain.unwrap_err().contains("one node"));
        let attach =
            ClientOp::AttachNetwork { task: "att/1".into(), network: "net-1".into(), node: "w1".into(), address: None };
        assert_eq!(
            translate(&attach, &mut names, Placement::Constrained),
            Ok(Op::RunContainer { name: "att-1".into(), network: "front".into(), address: None })
        );
    }

    #[test]
    fn a_one_manager_swarm_takes_manager_crashes_and_restarts_only() {
        let manager = Target::Node("m2".into());
        assert!(matches!(
            fault(&Action::Kill { node: manager.clone(), restart_after_ms: Some(10) }, 3),
            Ok(Fault::Crash { restart: true })
        ));
        assert!(matches!(
            fault(&Action::Kill { node: Target::Leader, restart_after_ms: None }, 3),
            Ok(Fault::Crash { restart: false })
        ));
        assert!(matches!(fault(&Action::Restart { node: manager }, 3), Ok(Fault::Restart)));
        assert!(matches!(fault(&Action::RestartAllocator, 3), Ok(Fault::Graceful)));
        assert!(fault(&Action::Kill { node: Target::Node("w1".into()), restart_after_ms: None }, 3).is_err());
        // m4 is not a manager of a three-manager scenario.
        assert!(fault(&Action::Kill { node: Target::Node("m4".into()), restart_after_ms: None }, 3).is_err());
        for action in [
            Action::Partition { node: Target::Leader, for_ms: Some(1) },
            Action::CutBatch { after: 1, for_ms: 1 },
            Action::DropProposal { origin: None, skip: 0 },
        ] {
            assert!(fault(&action, 3).is_err(), "{action:?}");
        }
    }
}
