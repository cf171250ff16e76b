//! Properties the `scenario_parse` and `sim` fuzz targets wrap; `tests/fuzz.rs` replays their
//! committed inputs (seed corpora and crash regressions) through the same functions, so a crash
//! file found by the fuzzer is a stable test as soon as it is copied into the repository.
//!
//! - [`check_scenario_bytes`]: any bytes as a scenario file give a scenario or a clear error
//!   (never a panic), and a parsed scenario written back out parses to the same scenario.
//! - [`check_sim_bytes`] (feature `arbitrary`): a [`SmallScenario`] decoded from the bytes is
//!   lowered to a short, small [`Scenario`](crate::Scenario) and run with every checker on; any
//!   violation fails.

use crate::scenario_file::{ScenarioError, parse, to_toml};

/// The file name parse errors report for fuzz input.
const FUZZ_FILE: &str = "fuzz-input.toml";

/// The `scenario_parse` property over raw bytes. Bytes that are not UTF-8 pass: `load` refuses
/// them before parsing ("cannot read the scenario file"), so they never reach [`parse`].
pub fn check_scenario_bytes(data: &[u8]) -> Result<(), String> {
    match std::str::from_utf8(data) {
        Ok(text) => check_scenario_text(text),
        Err(_) => Ok(()),
    }
}

/// A scenario or a clear error; a parsed scenario survives writing and parsing again, and
/// writing it again gives the same text.
pub fn check_scenario_text(text: &str) -> Result<(), String> {
    let scenario = match parse(FUZZ_FILE, text) {
        Ok(scenario) => scenario,
        Err(error) => return check_error(text, &error),
    };
    let written = to_toml(&scenario).map_err(|e| format!("a parsed scenario cannot be written back: {e}"))?;
    let again = parse(FUZZ_FILE, &written)
        .map_err(|e| format!("the written scenario does not parse: {e}\n--- written\n{written}"))?;
    if again != scenario {
        return Err(format!(
            "the written scenario parses to another scenario\n--- written\n{written}\n--- parsed first\n\
             {scenario:#?}\n--- parsed from the written text\n{again:#?}"
        ));
    }
    let rewritten = to_toml(&again).map_err(|e| format!("the reparsed scenario cannot be written: {e}"))?;
    if rewritten != written {
        return Err(format!("writing is not stable\n--- first\n{written}\n--- second\n{rewritten}"));
    }
    Ok(())
}

/// A clear error names the file, says something, and points inside the text when it has a
/// position.
fn check_error(text: &str, error: &ScenarioError) -> Result<(), String> {
    if error.file != FUZZ_FILE {
        return Err(format!("the error names file {:?}, not {FUZZ_FILE:?}: {error}", error.file));
    }
    if error.message.trim().is_empty() {
        return Err(format!("the error has no message: {error:?}"));
    }
    let lines = text.split('\n').count();
    if error.line > lines || (error.line > 0 && error.column == 0) {
        return Err(format!(
            "the error points at line {} column {} of a {lines}-line text: {error}",
            error.line, error.column
        ));
    }
    Ok(())
}

#[cfg(feature = "arbitrary")]
pub use small::{SmallScenario, check_sim_bytes};

#[cfg(feature = "arbitrary")]
mod small {
    //! A small scenario as `arbitrary` input: a cluster shape, a madsim seed, and a schedule of
    //! user requests, task failures and faults, every number chosen modulo a few options so that
    //! any bytes give a valid scenario.

    use arbitrary::{Arbitrary, Unstructured};
    use swarmalloc::{
        EndpointSpec, Ipam, IpamConfig, NetworkAttachmentConfig, NetworkId, NetworkSpec, NodeId, PortConfig, Protocol,
        PublishMode, ResolutionMode, ServiceId, ServiceSpec, TaskId,
    };

    use crate::faults::FaultSpace;
    use crate::result::RunResult;
    use crate::run::{RunOptions, run};
    use crate::scenario::{Action, Checks, ClientOp, MessageFault, Scenario, Step, Target, Workload};
    use crate::scenario_file::to_toml;
    use crate::store::Origin;

    /// Simulated run time: faults and requests in the first `FAULTS_UNTIL_MS`, then everything
    /// heals and the allocator has the rest to settle before the end checks.
    pub const DURATION_MS: u64 = 8_000;
    pub const FAULTS_UNTIL_MS: u64 = 5_000;
    /// Steps happen from 0.5 s (a leader is usually elected by then) in 100 ms slots.
    const FIRST_STEP_MS: u64 = 500;
    const STEP_SLOTS: u64 = (FAULTS_UNTIL_MS - FIRST_STEP_MS) / 100;
    /// The most steps a scenario takes from its input.
    pub const STEPS_MAX: usize = 16;
    /// The most scripted proposal faults (dropped, ambiguous, cut) a scenario keeps. Each costs
    /// the allocator up to a proposal timeout (3 s) before it retries, and scripted ones stay
    /// armed after `FAULTS_UNTIL_MS`: nine drops at one instant (found by the `sim` target,
    /// `fuzz/regressions/sim/`) outlast the 20 s the liveness checker allows after the end.
    pub const PROPOSAL_FAULTS_MAX: usize = 3;

    /// Explicit subnets: two small ones that run out, one that overlaps the first, a /30 with a
    /// single usable address after the gateway; `None` takes a default subnet.
    const SUBNETS: [Option<&str>; 6] =
        [None, None, Some("10.20.0.0/28"), Some("10.20.0.16/28"), Some("10.20.0.0/24"), Some("192.168.7.0/30")];
    /// Published ports: dynamic, fixed (two services may ask for the same one), UDP, host mode.
    const PORTS: [(u16, u16, Protocol, PublishMode); 4] = [
        (0, 80, Protocol::Tcp, PublishMode::Ingress),
        (8080, 80, Protocol::Tcp, PublishMode::Ingress),
        (8081, 81, Protocol::Udp, PublishMode::Ingress),
        (9000, 80, Protocol::Tcp, PublishMode::Host),
    ];

    #[derive(Clone, Debug, Arbitrary)]
    pub struct SmallScenario {
        pub seed: u64,
        /// 1, 2 or 3 managers.
        pub managers: u8,
        /// 1 or 2 workers.
        pub workers: u8,
        /// 1 or 2 clients.
        pub clients: u8,
        /// 1, 2, 3 or 200 changes per allocator transaction.
        pub batch_max: u8,
        pub steps: Vec<SmallStep>,
    }

    #[derive(Clone, Debug, Arbitrary)]
    pub struct SmallStep {
        /// 100 ms slot after `FIRST_STEP_MS`.
        pub at: u8,
        pub action: SmallAction,
    }

    /// Networks, services and containers are named by creation order (`net-0`, `svc-0`,
    /// `ctr-0`); a `u8` that names one is taken modulo how many were created before.
    #[derive(Clone, Debug, Arbitrary)]
    pub enum SmallAction {
        CreateNetwork {
            subnet: u8,
            attachable: bool,
        },
        RemoveNetwork(u8),
        CreateService {
            networks: Vec<u8>,
            replicas: u8,
            ports: Vec<u8>,
            dnsrr: bool,
        },
        UpdateService {
            service: u8,
            networks: Vec<u8>,
            replicas: u8,
            ports: Vec<u8>,
            dnsrr: bool,
        },
        Scale {
            service: u8,
            replicas: u8,
        },
        RemoveService(u8),
        Attach {
            network: u8,
            node: u8,
            address: Option<u8>,
        },
        Detach(u8),
        FailTask {
            service: u8,
            slot: u8,
        },
        /// `node` 0 is the current leader, then m1.., w1...
        Partition {
            node: u8,
            for_slots: u8,
        },
        Heal,
        Kill {
            node: u8,
            restart_after_slots: u8,
        },
        Restart {
            node: u8,
        },
        RestartAllocator,
        CutBatch {
            after: u8,
            for_slots: u8,
        },
        AmbiguousProposal {
            for_slots: u8,
        },
        DropProposal {
            allocator_only: bool,
        },
        Messages {
            fault: u8,
            percent: u8,
            for_slots: u8,
        },
        SlowNode {
            node: u8,
            extra_slots: u8,
            for_slots: u8,
        },
    }

    /// The `sim` fuzz target's property over raw bytes.
    pub fn check_sim_bytes(data: &[u8]) -> Result<(), String> {
        let Ok(small) = SmallScenario::arbitrary_take_rest(Unstructured::new(data)) else { return Ok(()) };
        small.check()
    }

    impl SmallScenario {
        /// Runs the scenario; an invalid lowering is an error.
        pub fn run(&self) -> Result<RunResult, String> {
            let scenario = self.scenario();
            scenario.validate().map_err(|e| format!("the lowered scenario is invalid: {e}\n{scenario:#?}"))?;
            Ok(run(&scenario, self.seed, &RunOptions::default()))
        }

        /// Runs the scenario with every checker on; any violation is an error that says how to
        /// replay it.
        pub fn check(&self) -> Result<(), String> {
            let scenario = self.scenario();
            match self.run()?.violation {
                None => Ok(()),
                Some(violation) => {
                    let file = to_toml(&scenario).unwrap_or_else(|e| format!("(cannot write the scenario: {e})"));
                    Err(format!(
                        "seed {}: checker {} fired: {}\nobjects: {:?}, at {} ms, raft index {}, node {}\n\
                         replay: save the scenario below as x.toml and run `allocsim replay x.toml`\n\
                         --- scenario\n{file}",
                        self.seed,
                        violation.checker,
                        violation.detail,
                        violation.objects,
                        violation.t_ms,
                        violation.raft_index,
                        violation.node,
                    ))
                }
            }
        }

        /// The scenario: the cluster, then the steps in time order, every checker on, no random
        /// workload and no random faults (the schedule is the input).
        pub fn scenario(&self) -> Scenario {
            let managers = 1 + self.managers % 3;
            let workers = 1 + self.workers % 2;
            let mut names = Names { managers, workers, networks: 0, services: 0, containers: 0 };
            let mut steps: Vec<Step> = self
                .steps
                .iter()
                .take(STEPS_MAX)
                .map(|s| Step {
                    at_ms: FIRST_STEP_MS + u64::from(s.at) % STEP_SLOTS * 100,
                    action: names.lower(&s.action),
                })
                .collect();
            // Names are given in input order; the run sorts by time (stable: equal times keep
            // input order), so a step may name something created later. The control API
            // refuses those, as it would a user's.
            steps.sort_by_key(|s| s.at_ms);
            let mut proposal_faults = 0;
            steps.retain(|s| {
                proposal_faults += usize::from(s.action.is_proposal_fault());
                !s.action.is_proposal_fault() || proposal_faults <= PROPOSAL_FAULTS_MAX
            });
            Scenario {
                name: "fuzz-small".into(),
                description: String::new(),
                raft: Default::default(),
                config: Default::default(),
                initial: Default::default(),
                steps,
                assertions: Vec::new(),
                seed: Some(self.seed),
                managers,
                workers,
                clients: 1 + self.clients % 2,
                duration_ms: DURATION_MS,
                faults_until_ms: FAULTS_UNTIL_MS,
                batch_max: [1, 2, 3, 200][usize::from(self.batch_max % 4)],
                workload: Workload::Scripted(Vec::new()),
                faults: FaultSpace::none(),
                checks: Checks { per_entry: true, engine_after_batch: true, checkers: Vec::new() },
                stop_when_all_pending: false,
                #[cfg(feature = "legacy")]
                legacy: None,
            }
        }
    }

    struct Names {
        managers: u8,
        workers: u8,
        networks: u8,
        services: u8,
        containers: u8,
    }

    fn slots(n: u8) -> u64 {
        100 * (1 + u64::from(n % 30))
    }

    impl Names {
        fn network(&self, i: u8) -> NetworkId {
            NetworkId::new(format!("net-{}", i % self.networks.max(1)))
        }

        fn service(&self, i: u8) -> ServiceId {
            ServiceId::new(format!("svc-{}", i % self.services.max(1)))
        }

        fn worker(&self, i: u8) -> NodeId {
            NodeId::new(format!("w{}", 1 + i % self.workers))
        }

        /// 0: the leader, then every manager and worker.
        fn target(&self, i: u8) -> Target {
            let n = i % (1 + self.managers + self.workers);
            match n {
                0 => Target::Leader,
                n if n <= self.managers => Target::Node(format!("m{n}")),
                n => Target::Node(format!("w{}", n - self.managers)),
            }
        }

        fn spec(&self, name: &str, networks: &[u8], replicas: u8, ports: &[u8], dnsrr: bool) -> ServiceSpec {
            let mut task_networks: Vec<NetworkAttachmentConfig> = Vec::new();
            if self.networks > 0 {
                for n in networks.iter().take(2) {
                    let target = self.network(*n);
                    if !task_networks.iter().any(|c| c.target == target) {
                        task_networks.push(NetworkAttachmentConfig::to(target));
                    }
                }
            }
            let ports = ports
                .iter()
                .take(2)
                .map(|p| {
                    let (published_port, target_port, protocol, publish_mode) = PORTS[usize::from(p % 4)];
                    PortConfig { name: String::new(), protocol, target_port, published_port, publish_mode }
                })
                .collect();
            let mode = if dnsrr { ResolutionMode::Dnsrr } else { ResolutionMode::Vip };
            ServiceSpec {
                name: name.into(),
                replicas: u64::from(replicas % 4),
                task_networks,
                networks: Vec::new(),
                endpoint: Some(EndpointSpec { mode, ports }),
            }
        }

        fn lower(&mut self, action: &SmallAction) -> Action {
            match action {
                SmallAction::CreateNetwork { subnet, attachable } => {
                    let id = NetworkId::new(format!("net-{}", self.networks));
                    self.networks += 1;
                    let ipam = SUBNETS[usize::from(subnet % 6)].map(|s| Ipam {
                        driver: String::new(),
                        options: Default::default(),
                        configs: vec![IpamConfig { subnet: Some(s.parse().expect("valid")), ..Default::default() }],
                    });
                    let spec =
                        NetworkSpec { name: id.to_string(), ipam, attachable: *attachable, ..Default::default() };
                    Action::Client(ClientOp::CreateNetwork { id, spec })
                }
                SmallAction::RemoveNetwork(n) => Action::Client(ClientOp::RemoveNetwork { id: self.network(*n) }),
                SmallAction::CreateService { networks, replicas, ports, dnsrr } => {
                    let id = ServiceId::new(format!("svc-{}", self.services));
                    self.services += 1;
                    let spec = self.spec(id.as_str(), networks, *replicas, ports, *dnsrr);
                    Action::Client(ClientOp::CreateService { id, spec })
                }
                SmallAction::UpdateService { service, networks, replicas, ports, dnsrr } => {
                    let id = self.service(*service);
                    let spec = self.spec(id.as_str(), networks, *replicas, ports, *dnsrr);
                    Action::Client(ClientOp::UpdateService { id, spec })
                }
                SmallAction::Scale { service, replicas } => Action::Client(ClientOp::ScaleService {
                    id: self.service(*service),
                    replicas: u64::from(replicas % 5),
                }),
                SmallAction::RemoveService(s) => Action::Client(ClientOp::RemoveService { id: self.service(*s) }),
                SmallAction::Attach { network, node, address } => {
                    let task = TaskId::new(format!("ctr-{}", self.containers));
                    self.containers += 1;
                    // An exact address inside the explicit subnets (or a default one), sometimes taken.
                    let address = address.map(|a| format!("10.20.0.{}", 1 + a % 20).parse().expect("valid"));
                    Action::Client(ClientOp::AttachNetwork {
                        task,
                        network: self.network(*network),
                        node: self.worker(*node),
                        address,
                    })
                }
                SmallAction::Detach(c) => Action::Client(ClientOp::DetachNetwork {
                    task: TaskId::new(format!("ctr-{}", c % self.containers.max(1))),
                }),
                SmallAction::FailTask { service, slot } => Action::FailTask {
                    task: None,
                    service: Some(self.service(*service)),
                    slot: u64::from(1 + slot % 3),
                },
                SmallAction::Partition { node, for_slots } => {
                    Action::Partition { node: self.target(*node), for_ms: Some(slots(*for_slots)) }
                }
                SmallAction::Heal => Action::Heal { node: None },
                SmallAction::Kill { node, restart_after_slots } => {
                    Action::Kill { node: self.target(*node), restart_after_ms: Some(slots(*restart_after_slots)) }
                }
                SmallAction::Restart { node } => Action::Restart { node: self.target(*node) },
                SmallAction::RestartAllocator => Action::RestartAllocator,
                SmallAction::CutBatch { after, for_slots } => {
                    Action::CutBatch { after: u64::from(1 + after % 4), for_ms: slots(*for_slots) }
                }
                SmallAction::AmbiguousProposal { for_slots } => {
                    Action::AmbiguousProposal { origin: Some(Origin::Allocator), for_ms: slots(*for_slots), skip: 0 }
                }
                SmallAction::DropProposal { allocator_only } => {
                    Action::DropProposal { origin: allocator_only.then_some(Origin::Allocator), skip: 0 }
                }
                SmallAction::Messages { fault, percent, for_slots } => Action::Messages {
                    fault: [MessageFault::Loss, MessageFault::Delay, MessageFault::Duplication][usize::from(fault % 3)],
                    rate: f64::from(1 + percent % 30) / 100.0,
                    for_ms: slots(*for_slots),
                },
                SmallAction::SlowNode { node, extra_slots, for_slots } => Action::SlowNode {
                    node: self.target(*node),
                    extra_ms: slots(*extra_slots),
                    for_ms: slots(*for_slots),
                },
            }
        }
    }
}
