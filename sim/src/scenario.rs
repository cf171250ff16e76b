//! What a run simulates: the cluster shape, the workload (user operations over time), the fault
//! space a seed draws from, and which checkers run. Built-in scenarios stand in until scenario
//! files exist; a file format only has to produce a [`Scenario`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use swarmalloc::{
    ClusterConfig, EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachmentConfig, NetworkId, NetworkSpec, Node,
    Object, PortConfig, Protocol, PublishMode, ResolutionMode, Service, ServiceId, ServiceSpec, Task, TaskState,
};
use swarmalloc::{NodeId, TaskId};

use crate::faults::FaultSpace;
use crate::rng::{Draw, SimRng};
use crate::store::Origin;

/// A user request, as the control API receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientOp {
    CreateNetwork {
        id: NetworkId,
        spec: NetworkSpec,
    },
    RemoveNetwork {
        id: NetworkId,
    },
    CreateService {
        id: ServiceId,
        spec: ServiceSpec,
    },
    UpdateService {
        id: ServiceId,
        spec: ServiceSpec,
    },
    RemoveService {
        id: ServiceId,
    },
    /// A standalone container joins an attachable network on a node: a task without a service
    /// (`ResourceAllocator.AttachNetwork`), optionally asking for an exact address.
    AttachNetwork {
        task: TaskId,
        network: NetworkId,
        node: NodeId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<IpAddr>,
    },
    /// The container leaves: its attachment task is told to stop (then reaped).
    DetachNetwork {
        task: TaskId,
    },
    /// `docker service scale`: the stored spec with another replica count.
    ScaleService {
        id: ServiceId,
        replicas: u64,
    },
    /// `docker node update --availability drain`: no new tasks; its tasks are moved elsewhere.
    DrainNode {
        node: NodeId,
    },
    /// `docker node rm --force`: the node object goes; its containers may still run (SwarmKit's B6).
    RemoveNode {
        node: NodeId,
    },
}

/// A user request and when the client sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedOp {
    pub at_ms: u64,
    pub op: ClientOp,
}

/// Parameters of the seeded workload generator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    pub networks: u32,
    pub services: u32,
    pub replicas_min: u64,
    pub replicas_max: u64,
    /// Scale, update and remove operations after the services exist.
    pub changes: u32,
    /// Every operation is sent before this simulated time.
    pub ops_until_ms: u64,
    /// How often each kind of change is drawn.
    #[serde(default)]
    pub weights: Weights,
}

/// Relative weights of the generator's changes (a change that is impossible at that point, such
/// as a detach with nothing attached, falls through to a service change or removal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub scale: u32,
    pub change_networks: u32,
    pub change_ports: u32,
    pub remove_service: u32,
    pub attach: u32,
    pub detach: u32,
    pub remove_network: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            scale: 45,
            change_networks: 15,
            change_ports: 10,
            remove_service: 10,
            attach: 8,
            detach: 5,
            remove_network: 7,
        }
    }
}

impl Weights {
    fn total(&self) -> u64 {
        [
            self.scale,
            self.change_networks,
            self.change_ports,
            self.remove_service,
            self.attach,
            self.detach,
            self.remove_network,
        ]
        .iter()
        .map(|w| u64::from(*w))
        .sum()
    }
}

/// A step of a scenario: something that happens at a simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at_ms: u64,
    pub action: Action,
}

/// Which node a fault hits: the current leader (resolved when the fault fires) or a node by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Leader,
    Node(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Leader => f.write_str("leader"),
            Target::Node(n) => f.write_str(n),
        }
    }
}

/// Message faults a scenario can turn on for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFault {
    Loss,
    Delay,
    Duplication,
}

/// What a step does: a user request, a task failure, or a fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A user request through the control API.
    Client(ClientOp),
    /// The container of a task exits by itself (its status becomes FAILED): the task `task`, or
    /// the running task of `service` in `slot`.
    FailTask { task: Option<TaskId>, service: Option<ServiceId>, slot: u64 },
    /// Cut a node off the network; it heals after `for_ms` (or at a `heal` step).
    Partition { node: Target, for_ms: Option<u64> },
    /// Reconnect one node, or every node.
    Heal { node: Option<Target> },
    /// Kill a node; it restarts with its disk after `restart_after_ms` (or at a `restart` step).
    Kill { node: Target, restart_after_ms: Option<u64> },
    /// Restart a killed node now (or kill and restart a running one).
    Restart { node: Target },
    /// Restart only the leader's allocator: it restores from the applied store.
    RestartAllocator,
    /// The next allocator batch of more than `after` transactions stops after `after` of them
    /// (the leader isolates itself for `for_ms`).
    CutBatch { after: u64, for_ms: u64 },
    /// The next proposal (of `origin`, or any) commits without its proposer knowing: the
    /// proposer isolates itself right after proposing, for `for_ms`. `skip` matching proposals
    /// at or after the step's time go first (decompile writes it when a random fault hit a
    /// later chunk of a proposal split in the same millisecond).
    AmbiguousProposal {
        origin: Option<Origin>,
        for_ms: u64,
        #[serde(default)]
        skip: u64,
    },
    /// The next proposal (of `origin`, or any) never reaches raft; the proposer times out.
    /// `skip` as for `AmbiguousProposal`.
    DropProposal {
        origin: Option<Origin>,
        #[serde(default)]
        skip: u64,
    },
    /// Lose, delay or duplicate each message with probability `rate`, for `for_ms`.
    Messages { fault: MessageFault, rate: f64, for_ms: u64 },
    /// Every message to or from `node` takes `extra_ms` longer, for `for_ms`.
    SlowNode { node: Target, extra_ms: u64, for_ms: u64 },
}

impl Action {
    /// A fault (anything but a user request or a task failure).
    pub fn is_fault(&self) -> bool {
        !matches!(self, Action::Client(_) | Action::FailTask { .. })
    }

    /// Faults the nemesis injects at its next step.
    pub fn is_node_fault(&self) -> bool {
        matches!(
            self,
            Action::Partition { .. }
                | Action::Heal { .. }
                | Action::Kill { .. }
                | Action::Restart { .. }
                | Action::RestartAllocator
                | Action::SlowNode { .. }
        )
    }

    /// Faults consumed by the next proposal made at or after their time.
    pub fn is_proposal_fault(&self) -> bool {
        matches!(self, Action::CutBatch { .. } | Action::AmbiguousProposal { .. } | Action::DropProposal { .. })
    }
}

/// A check on the end state, evaluated on the leader's store after the end checks pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assertion {
    /// Exactly `count` tasks of the service are RUNNING.
    Running { service: ServiceId, count: u64 },
    /// The service's live tasks have pairwise distinct addresses on every network.
    DistinctAddresses { service: ServiceId },
    /// From the first applied entry at or after `since_ms` where the service holds VIPs, every
    /// later applied state and the end state show the same VIPs.
    VipUnchangedSince { service: ServiceId, since_ms: u64 },
    /// No live task is in this state.
    NoTaskIn { state: TaskState },
    /// The network exists and its stored allocation has this subnet (or any, when `None`).
    NetworkAllocated { network: NetworkId, subnet: Option<IpNet> },
    /// Nothing in the store still names this network.
    NetworkGone { network: NetworkId },
    /// The service's VIPs are on exactly these networks (none: no VIP at all).
    VipNetworks { service: ServiceId, networks: Vec<NetworkId> },
}

/// Where the user operations come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Generated from the seed.
    Generated(Generator),
    /// An explicit list (scenario files, benchmarks).
    Scripted(Vec<TimedOp>),
}

/// Which checkers run, and how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Store invariants after every applied entry on every replica.
    pub per_entry: bool,
    /// After every allocator batch, engine == an engine fed every committed change; when the
    /// allocator is quiet (at most every 5 s), engine == restore(store). Always at leader
    /// changes and at the end.
    pub engine_after_batch: bool,
    /// The checkers whose breaches fail the run ([`Checker::name`]s); empty means all of them.
    /// The breaches of the others are traced only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkers: Vec<String>,
}

/// Every checker, as violations and scenario files name them (`Checker::name`). `Panic` is a
/// panic inside the run; `Custom` names checkers a test plants (`RunOptions::hooks`), whose
/// breaches carry their own names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Checker {
    ReplicasIdentical,
    DuplicateLiveAddress,
    AddressFreedWhileInUse,
    OverlappingSubnets,
    VxlanIdsUnique,
    IngressPortsUnique,
    AddressesInPool,
    Liveness,
    StableAllocations,
    EngineEqualsCommitted,
    EngineEqualsRestore,
    LivenessTasksLeaveNew,
    DeletedObjectsHoldNothing,
    LivenessQuiescence,
    Assertion,
    Panic,
    Custom,
}

impl Checker {
    pub const ALL: [Checker; 17] = [
        Checker::ReplicasIdentical,
        Checker::DuplicateLiveAddress,
        Checker::AddressFreedWhileInUse,
        Checker::OverlappingSubnets,
        Checker::VxlanIdsUnique,
        Checker::IngressPortsUnique,
        Checker::AddressesInPool,
        Checker::Liveness,
        Checker::StableAllocations,
        Checker::EngineEqualsCommitted,
        Checker::EngineEqualsRestore,
        Checker::LivenessTasksLeaveNew,
        Checker::DeletedObjectsHoldNothing,
        Checker::LivenessQuiescence,
        Checker::Assertion,
        Checker::Panic,
        Checker::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Checker::ReplicasIdentical => "replicas_identical",
            Checker::DuplicateLiveAddress => "duplicate_live_address",
            Checker::AddressFreedWhileInUse => "address_freed_while_in_use",
            Checker::OverlappingSubnets => "overlapping_subnets",
            Checker::VxlanIdsUnique => "vxlan_ids_unique",
            Checker::IngressPortsUnique => "ingress_ports_unique",
            Checker::AddressesInPool => "addresses_in_pool",
            Checker::Liveness => "liveness",
            Checker::StableAllocations => "stable_allocations",
            Checker::EngineEqualsCommitted => "engine_equals_committed",
            Checker::EngineEqualsRestore => "engine_equals_restore",
            Checker::LivenessTasksLeaveNew => "liveness_tasks_leave_new",
            Checker::DeletedObjectsHoldNothing => "deleted_objects_hold_nothing",
            Checker::LivenessQuiescence => "liveness_quiescence",
            Checker::Assertion => "assertion",
            Checker::Panic => "panic",
            Checker::Custom => "custom",
        }
    }

    pub fn from_name(name: &str) -> Option<Checker> {
        Checker::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every checker's name, in [`Checker::ALL`]'s order.
    pub fn names() -> Vec<&'static str> {
        Checker::ALL.map(Checker::name).to_vec()
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every checker on, after every entry and every batch.
impl Default for Checks {
    fn default() -> Checks {
        Checks { per_entry: true, engine_after_batch: true, checkers: Vec::new() }
    }
}

impl Checks {
    /// Whether a breach of `checker` (a [`Checker`]'s name, or a planted checker's) fails the run.
    pub fn enabled(&self, checker: &str) -> bool {
        self.checkers.is_empty() || checker == Checker::Panic.name() || self.checkers.iter().any(|c| c == checker)
    }
}

/// Raft timing of the managers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    /// One raft tick (and one round of leader duties).
    pub tick_ms: u64,
    /// Ticks without a heartbeat before a follower starts an election (randomized up to twice).
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
}

impl Default for RaftSettings {
    fn default() -> RaftSettings {
        RaftSettings { tick_ms: 100, election_ticks: 10, heartbeat_ticks: 2 }
    }
}

/// Objects committed before the run starts (after the cluster's own bootstrap objects), as
/// stored: with or without allocations, consistent or not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitialState {
    pub networks: Vec<Network>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    pub nodes: Vec<Node>,
}

impl InitialState {
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.services.is_empty() && self.tasks.is_empty() && self.nodes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.networks.len() + self.services.len() + self.tasks.len() + self.nodes.len()
    }

    /// Every object, networks first.
    pub fn objects(&self) -> Vec<Object> {
        let networks = self.networks.iter().cloned().map(Object::Network);
        let services = self.services.iter().cloned().map(Object::Service);
        let tasks = self.tasks.iter().cloned().map(Object::Task);
        networks.chain(services).chain(tasks).chain(self.nodes.iter().cloned().map(Object::Node)).collect()
    }
}

/// Everything a run needs besides the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// What the scenario reproduces and where it comes from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub raft: RaftSettings,
    /// The cluster object's allocator settings.
    #[serde(default)]
    pub config: ClusterConfig,
    #[serde(default, skip_serializing_if = "InitialState::is_empty")]
    pub initial: InitialState,
    /// Scripted user requests, task failures and faults, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Checks on the end state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<Assertion>,
    /// The seed `run` and `replay` use when none is given: decompile and shrink write the
    /// failing seed here, so the file alone replays the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// 1 to 7.
    pub managers: u8,
    pub workers: u8,
    /// Users sending requests concurrently; the operations are dealt out round robin, so two
    /// requests can pass the control API's checks against the same store (SwarmKit's B8).
    pub clients: u8,
    /// Simulated run time.
    pub duration_ms: u64,
    /// Faults are injected before this time; then everything heals (the liveness window follows).
    pub faults_until_ms: u64,
    /// Most changes in one store transaction; larger batches are split.
    pub batch_max: usize,
    pub workload: Workload,
    pub faults: FaultSpace,
    pub checks: Checks,
    /// End the run as soon as every task is PENDING or later (throughput runs).
    pub stop_when_all_pending: bool,
    /// One old allocator behaviour to turn on (docs/legacy-flavours.md); legacy builds only.
    #[cfg(feature = "legacy")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<swarmalloc::legacy::Flavour>,
}

/// A legacy flavour as a command line names it (`--legacy FLAVOUR`): the engine's flavour in a
/// build with the `legacy` feature.
#[cfg(feature = "legacy")]
pub use swarmalloc::legacy::Flavour as LegacyFlavour;

/// In a build without the `legacy` feature, a flavour is a type with no values: parsing one is
/// always refused (`--legacy` exits 2 with [`LEGACY_HINT`]), so callers
/// need no feature of their own.
#[cfg(not(feature = "legacy"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyFlavour {}

#[cfg(not(feature = "legacy"))]
impl std::str::FromStr for LegacyFlavour {
    type Err = String;

    fn from_str(_: &str) -> Result<LegacyFlavour, String> {
        Err(format!("this allocsim has no legacy flavours{}", LEGACY_HINT))
    }
}

#[cfg(not(feature = "legacy"))]
impl std::fmt::Display for LegacyFlavour {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl Scenario {
    pub const BUILT_IN: [&'static str; 3] = ["default", "smoke", "throughput"];

    /// The legacy flavour this scenario runs, if any (always `None` without the feature).
    pub fn legacy_flavour(&self) -> Option<LegacyFlavour> {
        #[cfg(feature = "legacy")]
        return self.legacy;
        #[cfg(not(feature = "legacy"))]
        None
    }

    /// Runs this scenario with `flavour` (a command line's `--legacy`); `None` keeps the file's.
    pub fn set_legacy(&mut self, flavour: Option<LegacyFlavour>) {
        #[cfg(feature = "legacy")]
        if flavour.is_some() {
            self.legacy = flavour;
        }
        #[cfg(not(feature = "legacy"))]
        if let Some(flavour) = flavour {
            match flavour {}
        }
    }

    /// The scenario's name, with the legacy flavour it runs: `default [legacy B3]`.
    pub fn label(&self) -> String {
        label(&self.name, self.legacy_flavour().map(|f| f.to_string()).as_deref(), false)
    }

    /// A built-in scenario by name.
    pub fn built_in(name: &str) -> Option<Scenario> {
        match name {
            "default" => Some(Scenario::default_workload()),
            "smoke" => Some(Scenario::smoke()),
            "throughput" => Some(Scenario::throughput(50_000)),
            _ => None,
        }
    }

    /// 3 managers, 5 workers, about 20 services and 200 tasks, 60 simulated seconds, faults on.
    pub fn default_workload() -> Scenario {
        Scenario {
            name: "default".into(),
            description: String::new(),
            raft: RaftSettings::default(),
            config: ClusterConfig::default(),
            initial: InitialState::default(),
            steps: Vec::new(),
            assertions: Vec::new(),
            seed: None,
            managers: 3,
            workers: 5,
            clients: 2,
            duration_ms: 60_000,
            faults_until_ms: 40_000,
            batch_max: 200,
            workload: Workload::Generated(Generator {
                networks: 6,
                services: 20,
                replicas_min: 5,
                replicas_max: 15,
                changes: 25,
                ops_until_ms: 35_000,
                weights: Weights::default(),
            }),
            faults: FaultSpace::all(),
            checks: Checks::default(),
            stop_when_all_pending: false,
            #[cfg(feature = "legacy")]
            legacy: None,
        }
    }

    /// A smaller, shorter default for tests: the same machinery, a third of the work.
    pub fn smoke() -> Scenario {
        Scenario {
            name: "smoke".into(),
            duration_ms: 30_000,
            faults_until_ms: 18_000,
            batch_max: 200,
            workload: Workload::Generated(Generator {
                networks: 3,
                services: 6,
                replicas_min: 2,
                replicas_max: 8,
                changes: 10,
                ops_until_ms: 15_000,
                weights: Weights::default(),
            }),
            ..Scenario::default_workload()
        }
    }

    /// Fault-free allocation throughput: one service of `tasks` replicas on a /16, no workers
    /// (nothing gets scheduled), per-entry checkers off; the run stops when every task is PENDING.
    pub fn throughput(tasks: u64) -> Scenario {
        let net = NetworkId::from("net-big");
        let spec = NetworkSpec {
            name: "big".into(),
            ipam: Some(Ipam {
                driver: String::new(),
                options: Default::default(),
                configs: vec![IpamConfig {
                    subnet: Some("10.128.0.0/15".parse().expect("valid")),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let service = ServiceSpec {
            name: "web".into(),
            replicas: tasks,
            task_networks: vec![NetworkAttachmentConfig::to(net.clone())],
            ..Default::default()
        };
        Scenario {
            name: format!("throughput-{tasks}"),
            description: String::new(),
            raft: RaftSettings::default(),
            config: ClusterConfig::default(),
            initial: InitialState::default(),
            steps: Vec::new(),
            assertions: Vec::new(),
            seed: None,
            managers: 3,
            workers: 0,
            clients: 1,
            duration_ms: 600_000,
            faults_until_ms: 0,
            batch_max: 200,
            workload: Workload::Scripted(vec![
                TimedOp { at_ms: 3_000, op: ClientOp::CreateNetwork { id: net, spec } },
                TimedOp { at_ms: 3_000, op: ClientOp::CreateService { id: "svc-web".into(), spec: service } },
            ]),
            faults: FaultSpace::none(),
            checks: Checks { per_entry: false, engine_after_batch: false, checkers: Vec::new() },
            stop_when_all_pending: true,
            #[cfg(feature = "legacy")]
            legacy: None,
        }
    }

    /// Checks the fields a scenario file could get wrong; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_ms > MAX_DURATION_MS {
            return Err(format!("duration_ms = {}ms: expected at most 1 hour", self.duration_ms));
        }
        if !(1..=7).contains(&self.managers) {
            return Err(format!("managers = {}: expected 1 to 7", self.managers));
        }
        if self.workers > 50 {
            return Err(format!("workers = {}: expected at most 50", self.workers));
        }
        if !(1..=8).contains(&self.clients) {
            return Err(format!("clients = {}: expected 1 to 8", self.clients));
        }
        if self.batch_max == 0 {
            return Err("batch_max = 0: expected at least 1".into());
        }
        if self.faults_until_ms > self.duration_ms {
            return Err(format!(
                "faults_until_ms = {}ms: expected at most duration_ms = {}ms",
                self.faults_until_ms, self.duration_ms
            ));
        }
        if let Workload::Generated(g) = &self.workload {
            let counts = [
                ("networks", u64::from(g.networks), MAX_GENERATED_NETWORKS),
                ("services", u64::from(g.services), MAX_GENERATED_SERVICES),
                ("changes", u64::from(g.changes), MAX_GENERATED_CHANGES),
                ("replicas_max", g.replicas_max, MAX_REPLICAS),
            ];
            for (key, value, max) in counts {
                if value > max {
                    return Err(format!("workload.{key} = {value}: expected at most {max}"));
                }
            }
            if g.replicas_min > g.replicas_max {
                return Err(format!(
                    "workload.replicas_min = {}: expected at most replicas_max = {}",
                    g.replicas_min, g.replicas_max
                ));
            }
            if g.ops_until_ms > self.duration_ms {
                return Err(format!(
                    "workload.ops_until_ms = {}ms: expected at most duration_ms = {}ms",
                    g.ops_until_ms, self.duration_ms
                ));
            }
        }
        self.faults.validate()?;
        self.validate_extra()
    }
}

/// Upper bounds of what a scenario may ask for: beyond them a run would take hours or exhaust
/// memory (or overflow), so validation refuses them with the key and the bound.
const MAX_DURATION_MS: u64 = 3_600_000;
const MAX_REPLICAS: u64 = 200_000;
const MAX_GENERATED_NETWORKS: u64 = 1_000;
const MAX_GENERATED_SERVICES: u64 = 10_000;
const MAX_GENERATED_CHANGES: u64 = 100_000;
const MAX_ELECTION_TICKS: usize = 1_000;

impl Scenario {
    /// Every user request of the run in send order: the workload's and the scripted steps',
    /// merged by time (the workload's first at equal times).
    pub fn client_ops(&self, rng: &mut SimRng) -> Vec<TimedOp> {
        let mut ops = self.workload.expand(rng, self.workers);
        ops.extend(self.steps.iter().filter_map(|s| match &s.action {
            Action::Client(op) => Some(TimedOp { at_ms: s.at_ms, op: op.clone() }),
            _ => None,
        }));
        ops.sort_by_key(|o| o.at_ms);
        ops
    }

    /// Node names of the cluster: managers m1.., workers w1...
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.managers).map(|i| format!("m{i}")).chain((1..=self.workers).map(|i| format!("w{i}"))).collect()
    }

    /// The checks of the newer fields (steps, assertions, initial state, settings), in the
    /// order their errors are reported.
    fn validate_extra(&self) -> Result<(), String> {
        self.validate_settings()?;
        let nodes = self.node_names();
        for (i, step) in self.steps.iter().enumerate() {
            self.validate_step(i, step, &nodes)?;
        }
        self.validate_initial_and_checks()
    }

    /// `[config]` and `[raft]`.
    fn validate_settings(&self) -> Result<(), String> {
        self.config.validate().map_err(|e| match e {
            // "cluster config FIELD = VALUE: expected ..." names the field inside [config].
            swarmalloc::AllocError::InvalidSpec { what } => {
                format!("config.{}", what.strip_prefix("cluster config ").unwrap_or(&what))
            }
            other => format!("config: {other}"),
        })?;
        if self.raft.tick_ms == 0 || self.raft.tick_ms > 1_000 {
            return Err(format!("raft.tick_ms = {}: expected 1 to 1000", self.raft.tick_ms));
        }
        if self.raft.election_ticks > MAX_ELECTION_TICKS {
            return Err(format!(
                "raft.election_ticks = {}: expected at most {MAX_ELECTION_TICKS}",
                self.raft.election_ticks
            ));
        }
        if self.raft.heartbeat_ticks == 0 || self.raft.election_ticks <= self.raft.heartbeat_ticks {
            return Err(format!(
                "raft.election_ticks = {}: expected more than heartbeat_ticks = {} (at least 1)",
                self.raft.election_ticks, self.raft.heartbeat_ticks
            ));
        }
        Ok(())
    }

    /// One scripted step: its time, its target node, its fault windows, its replicas.
    fn validate_step(&self, i: usize, step: &Step, nodes: &[String]) -> Result<(), String> {
        let known = |t: &Target| match t {
            Target::Leader => true,
            Target::Node(n) => nodes.contains(n),
        };
        let at = step.at_ms;
        if at > self.duration_ms {
            return Err(format!("steps[{i}].at = {at}ms: expected at most duration = {}ms", self.duration_ms));
        }
        if step.action.is_fault() && at >= self.faults_until_ms {
            return Err(format!(
                "steps[{i}].at = {at}ms: a fault must come before faults_until = {}ms (everything heals then)",
                self.faults_until_ms
            ));
        }
        let target = match &step.action {
            Action::Partition { node, .. }
            | Action::Kill { node, .. }
            | Action::Restart { node }
            | Action::SlowNode { node, .. } => Some(node),
            Action::Heal { node } => node.as_ref(),
            _ => None,
        };
        if let Some(t) = target.filter(|t| !known(t)) {
            return Err(format!("steps[{i}].node = \"{t}\": expected \"leader\" or one of {}", nodes.join(", ")));
        }
        // Fault windows end within the run (and their ends never overflow).
        let windows: &[(&str, Option<u64>)] = match &step.action {
            Action::Partition { for_ms, .. } => &[("for", *for_ms)],
            Action::Kill { restart_after_ms, .. } => &[("restart_after", *restart_after_ms)],
            Action::CutBatch { for_ms, .. }
            | Action::AmbiguousProposal { for_ms, .. }
            | Action::Messages { for_ms, .. } => &[("for", Some(*for_ms))],
            Action::SlowNode { extra_ms, for_ms, .. } => &[("extra", Some(*extra_ms)), ("for", Some(*for_ms))],
            _ => &[],
        };
        for (key, ms) in windows {
            if let Some(ms) = ms.filter(|ms| *ms > self.duration_ms) {
                return Err(format!("steps[{i}].{key} = {ms}ms: expected at most duration = {}ms", self.duration_ms));
            }
        }
        let replicas = match &step.action {
            Action::Client(ClientOp::CreateService { spec, .. } | ClientOp::UpdateService { spec, .. }) => {
                Some(spec.replicas)
            }
            Action::Client(ClientOp::ScaleService { replicas, .. }) => Some(*replicas),
            _ => None,
        };
        if let Some(replicas) = replicas.filter(|r| *r > MAX_REPLICAS) {
            return Err(format!("steps[{i}].replicas = {replicas}: expected at most {MAX_REPLICAS}"));
        }
        self.validate_action(i, &step.action, nodes)
    }

    /// What a step's action asks for beyond its timing: a probability, a task to fail, a known node.
    fn validate_action(&self, i: usize, action: &Action, nodes: &[String]) -> Result<(), String> {
        match action {
            Action::Messages { rate, .. } if !(0.0..=1.0).contains(rate) => {
                return Err(format!("steps[{i}].rate = {rate}: expected a probability from 0 to 1"));
            }
            Action::FailTask { task: None, service: None, .. } => {
                return Err(format!("steps[{i}].fail_task: expected a task, or a service and a slot"));
            }
            Action::FailTask { task: Some(_), service: Some(_), .. } => {
                return Err(format!("steps[{i}].fail_task: expected a task, or a service and a slot, not both"));
            }
            Action::FailTask { task: None, service: Some(_), slot: 0 } => {
                return Err(format!("steps[{i}].fail_task.slot = 0: expected a slot of the service, from 1"));
            }
            Action::Client(ClientOp::AttachNetwork { node, .. })
            | Action::Client(ClientOp::DrainNode { node })
            | Action::Client(ClientOp::RemoveNode { node })
                if !nodes.contains(&node.to_string()) && !self.initial.nodes.iter().any(|n| &n.id == node) =>
            {
                return Err(format!("steps[{i}].node = \"{node}\": expected one of {}", nodes.join(", ")));
            }
            _ => {}
        }
        Ok(())
    }

    /// The initial state, the checkers and the assertions.
    fn validate_initial_and_checks(&self) -> Result<(), String> {
        for (i, service) in self.initial.services.iter().enumerate() {
            if service.spec.replicas > MAX_REPLICAS {
                return Err(format!(
                    "initial.services[{i}].replicas = {}: expected at most {MAX_REPLICAS}",
                    service.spec.replicas
                ));
            }
        }
        for (i, checker) in self.checks.checkers.iter().enumerate() {
            if Checker::from_name(checker).is_none() {
                return Err(format!(
                    "checks.checkers[{i}] = {checker:?}: expected one of {}",
                    Checker::names().join(", ")
                ));
            }
        }
        for (i, a) in self.assertions.iter().enumerate() {
            if let Assertion::VipUnchangedSince { since_ms, .. } = a
                && *since_ms > self.duration_ms
            {
                return Err(format!("assertions[{i}].since = {since_ms}ms: expected at most duration"));
            }
        }
        let initial = [
            ("networks", self.initial.networks.iter().map(|n| n.id.to_string()).collect::<Vec<_>>()),
            ("services", self.initial.services.iter().map(|s| s.id.to_string()).collect()),
            ("tasks", self.initial.tasks.iter().map(|t| t.id.to_string()).collect()),
            ("nodes", self.initial.nodes.iter().map(|n| n.id.to_string()).collect()),
        ];
        for (kind, ids) in initial {
            let mut seen = std::collections::BTreeMap::new();
            for (i, id) in ids.iter().enumerate() {
                if let Some(first) = seen.insert(id, i) {
                    return Err(format!(
                        "initial.{kind}[{i}].id = \"{id}\": listed twice (also initial.{kind}[{first}])"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Workload {
    /// The operations in send order.
    pub fn expand(&self, rng: &mut SimRng, workers: u8) -> Vec<TimedOp> {
        match self {
            Workload::Scripted(ops) => {
                let mut ops = ops.clone();
                ops.sort_by_key(|o| o.at_ms);
                ops
            }
            Workload::Generated(g) => generate(g, rng, workers),
        }
    }
}

/// The seeded workload: networks (default and explicit subnets), services with networks, VIPs or
/// DNSRR, static and dynamic ingress ports; then scale, network and port updates, removals of
/// services and of networks (some refused because still in use), standalone containers attaching
/// to attachable networks (some asking for an exact address) and leaving again.
fn generate(g: &Generator, rng: &mut SimRng, workers: u8) -> Vec<TimedOp> {
    let mut ops = Vec::new();
    let create_until = g.ops_until_ms / 2;
    let mut t = 1_000;
    let step = |rng: &mut SimRng, until: u64, n: u32| {
        let mean = until.saturating_sub(1_000) / u64::from(n.max(1));
        rng.range(mean / 2, mean.max(1) * 3 / 2 + 1)
    };
    let mut made = Made::default();
    for i in 0..g.networks {
        let id = NetworkId::new(format!("net-{i:02}"));
        let (spec, prefix) = random_network(rng, i);
        if spec.attachable {
            made.attachable.push((id.clone(), prefix));
        }
        ops.push(TimedOp { at_ms: t, op: ClientOp::CreateNetwork { id: id.clone(), spec } });
        made.networks.push(id);
        t += rng.range(50, 400);
    }
    for i in 0..g.services {
        let id = ServiceId::new(format!("svc-{i:02}"));
        let spec = ServiceSpec {
            name: format!("svc{i}"),
            replicas: rng.range(g.replicas_min, g.replicas_max + 1),
            task_networks: pick_networks(rng, &made.networks),
            networks: Vec::new(),
            endpoint: pick_endpoint(rng, i),
        };
        ops.push(TimedOp { at_ms: t, op: ClientOp::CreateService { id: id.clone(), spec: spec.clone() } });
        made.services.push((id, spec));
        t += step(rng, create_until, g.services);
    }
    for _ in 0..g.changes {
        t += step(rng, g.ops_until_ms - create_until, g.changes);
        let t = t.min(g.ops_until_ms);
        if let Some(op) = random_change(g, rng, workers, &mut made) {
            ops.push(TimedOp { at_ms: t, op });
        }
    }
    ops.sort_by_key(|o| o.at_ms);
    ops
}

/// What the seeded workload has created so far, for its changes to pick from.
#[derive(Default)]
struct Made {
    networks: Vec<NetworkId>,
    /// Attachable networks, with their explicit subnet's first three octets and a range of
    /// host numbers inside it, if they have one.
    attachable: Vec<(NetworkId, Option<ExplicitSubnet>)>,
    attached: Vec<TaskId>,
    attach_count: usize,
    services: Vec<(ServiceId, ServiceSpec)>,
}

/// The `i`th network: a default or explicit subnet, attachable or not.
fn random_network(rng: &mut SimRng, i: u32) -> (NetworkSpec, Option<ExplicitSubnet>) {
    let mut prefix = None;
    let ipam = if rng.chance(0.3) {
        // An explicit subnet far from the default pool's first /24s; some are small enough
        // to run out (a /28 holds 13 task addresses), which exercises exhaustion and reuse.
        let base = format!("172.{}.{}", 20 + rng.range(0, 8), rng.range(0, 250));
        let (subnet, hosts) = match rng.range(0, 20) {
            0..12 => (format!("{base}.0/24"), (200, 250)),
            12..17 => (format!("{base}.32/27"), (50, 62)),
            _ => (format!("{base}.16/28"), (25, 30)),
        };
        prefix = Some((base, hosts));
        Some(Ipam {
            driver: String::new(),
            options: Default::default(),
            configs: vec![IpamConfig { subnet: Some(subnet.parse().expect("valid")), ..Default::default() }],
        })
    } else {
        None
    };
    let spec = NetworkSpec { name: format!("net{i}"), ipam, attachable: rng.chance(0.4), ..Default::default() };
    (spec, prefix)
}

/// One change after the creations, drawn by the generator's weights; `None` when it drew the
/// removal of a network and there is none.
fn random_change(g: &Generator, rng: &mut SimRng, workers: u8, made: &mut Made) -> Option<ClientOp> {
    // Thresholds in the order scale, networks, ports, remove service, attach, detach,
    // remove network (the default weights give 45, 60, 70, 80, 88, 93 out of 100).
    let w = &g.weights;
    let total = w.total().max(1);
    let at = |n: u32| u64::from(n);
    let scale_to = at(w.scale);
    let networks_to = scale_to + at(w.change_networks);
    let ports_to = networks_to + at(w.change_ports);
    let remove_to = ports_to + at(w.remove_service);
    let attach_to = remove_to + at(w.attach);
    let detach_to = attach_to + at(w.detach);
    let roll = rng.range(0, total);
    if (remove_to..attach_to).contains(&roll) && workers > 0 && !made.attachable.is_empty() {
        let (network, prefix) = made.attachable[rng.index(made.attachable.len())].clone();
        let address = match prefix {
            Some((base, (lo, hi))) if rng.chance(0.5) => {
                Some(format!("{base}.{}", rng.range(lo, hi + 1)).parse().expect("valid"))
            }
            _ => None,
        };
        let task = TaskId::new(format!("attach-{:02}", made.attach_count));
        made.attach_count += 1;
        let node = NodeId::new(format!("w{}", rng.range(1, u64::from(workers) + 1)));
        made.attached.push(task.clone());
        return Some(ClientOp::AttachNetwork { task, network, node, address });
    }
    if (attach_to..detach_to).contains(&roll) && !made.attached.is_empty() {
        let task = made.attached.remove(rng.index(made.attached.len()));
        return Some(ClientOp::DetachNetwork { task });
    }
    if made.services.is_empty() || roll >= detach_to {
        // Refused while a service or live task uses it; that refusal is part of the test.
        return made
            .networks
            .get(rng.index(made.networks.len()))
            .map(|net| ClientOp::RemoveNetwork { id: net.clone() });
    }
    let k = rng.index(made.services.len());
    let (id, spec) = made.services[k].clone();
    let op = if roll < scale_to {
        let mut spec = spec;
        spec.replicas = rng.range(g.replicas_min.saturating_sub(2), g.replicas_max + 3);
        made.services[k].1 = spec.clone();
        ClientOp::UpdateService { id, spec }
    } else if roll < networks_to {
        let mut spec = spec;
        spec.task_networks = pick_networks(rng, &made.networks);
        made.services[k].1 = spec.clone();
        ClientOp::UpdateService { id, spec }
    } else if roll < ports_to {
        let mut spec = spec;
        spec.endpoint = pick_endpoint(rng, k as u32 + 100);
        made.services[k].1 = spec.clone();
        ClientOp::UpdateService { id, spec }
    } else {
        made.services.remove(k);
        ClientOp::RemoveService { id }
    };
    Some(op)
}

/// An explicit subnet's first three octets and the range of host numbers requests pick from.
type ExplicitSubnet = (String, (u64, u64));

fn pick_networks(rng: &mut SimRng, networks: &[NetworkId]) -> Vec<NetworkAttachmentConfig> {
    let count = rng.range(0, 3).min(networks.len() as u64);
    let mut picked: Vec<NetworkAttachmentConfig> = Vec::new();
    for _ in 0..count {
        let net = &networks[rng.index(networks.len())];
        if !picked.iter().any(|p| &p.target == net) {
            picked.push(NetworkAttachmentConfig::to(net.clone()));
        }
    }
    picked
}

fn pick_endpoint(rng: &mut SimRng, salt: u32) -> Option<EndpointSpec> {
    let roll = rng.range(0, 10);
    if roll < 3 {
        return None;
    }
    if roll == 3 {
        return Some(EndpointSpec { mode: ResolutionMode::Dnsrr, ports: Vec::new() });
    }
    let mut ports = Vec::new();
    for j in 0..rng.range(1, 3) {
        // Static ports collide now and then across services: the control API must refuse those.
        let published_port = if rng.chance(0.5) { 8000 + rng.range(0, 40) as u16 } else { 0 };
        ports.push(PortConfig {
            name: format!("p{salt}-{j}"),
            protocol: if rng.chance(0.8) { Protocol::Tcp } else { Protocol::Udp },
            target_port: 80 + j as u16,
            published_port,
            publish_mode: if rng.chance(0.9) { PublishMode::Ingress } else { PublishMode::Host },
        });
    }
    Some(EndpointSpec { mode: ResolutionMode::Vip, ports })
}

/// Why a build refuses the `legacy` key and `--legacy`.
pub const LEGACY_HINT: &str = "; legacy flavours exist only in builds with the `legacy` feature \
     (cargo build --release -p allocsim --features legacy)";

/// The name a scenario's results go by: `NAME`, `NAME [legacy FLAVOUR]` for a run with a legacy
/// flavour, `NAME [real]` for a run on a real swarm (the sweep's lines, the report's rows).
pub fn label(scenario: &str, legacy: Option<&str>, real: bool) -> String {
    match (legacy, real) {
        (Some(flavour), _) => format!("{scenario} [legacy {flavour}]"),
        (None, true) => format!("{scenario} [real]"),
        (None, false) => scenario.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_scenarios_are_valid() {
        for name in Scenario::BUILT_IN {
            let scenario = Scenario::built_in(name).expect("built in");
            assert_eq!(scenario.validate(), Ok(()), "{name}");
        }
        assert_eq!(Scenario::built_in("nope"), None);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Scenario { managers: 9, ..Scenario::default_workload() };
        assert_eq!(bad.validate(), Err("managers = 9: expected 1 to 7".to_string()));
        let bad = Scenario { faults_until_ms: 100_000, ..Scenario::default_workload() };
        assert!(bad.validate().is_err_and(|e| e.starts_with("faults_until_ms = 100000")));
    }

    #[test]
    fn the_generated_workload_is_a_function_of_the_seed() {
        let Workload::Generated(g) = Scenario::default_workload().workload else { panic!("generated") };
        let a = generate(&g, &mut SimRng::new(7), 5);
        let b = generate(&g, &mut SimRng::new(7), 5);
        let c = generate(&g, &mut SimRng::new(8), 5);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let creates = a.iter().filter(|o| matches!(o.op, ClientOp::CreateService { .. })).count();
        assert_eq!(creates, 20);
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
}
