//! Lowering a parsed file to the runtime [`Scenario`], and raising a scenario back to the
//! file model for writing. Errors say which step or key and what was expected; `parse` locates
//! them in the text.

use swarmalloc::{DriverConfig, EndpointSpec, Ipam, IpamConfig, NetworkId, NetworkSpec, ServiceId, ServiceSpec};

use super::model::*;
use crate::faults::FaultSpace;
use crate::scenario::{Action, Assertion, Checks, ClientOp, Generator, MessageFault, Scenario, Step, Target, Workload};

// ------------------------------------------------------------------------------------------------
// Lowering (file -> scenario) and raising (scenario -> file).

type LowerError = (Option<usize>, String);

impl FileModel {
    pub(super) fn lower(self) -> Result<Scenario, LowerError> {
        let c = self.cluster;
        let (workload, faults) = match self.random {
            Some(r) => (
                r.workload.map(|g| Generator {
                    networks: g.networks,
                    services: g.services,
                    replicas_min: g.replicas_min,
                    replicas_max: g.replicas_max,
                    changes: g.changes,
                    ops_until_ms: g.ops_until.0,
                    weights: g.weights,
                }),
                r.faults.map(|f| FaultSpace { kinds: f.kinds, swarm: f.swarm, rates: f.rates }),
            ),
            None => (None, None),
        };
        let mut steps = Vec::with_capacity(self.step.len());
        for (i, step) in self.step.into_iter().enumerate() {
            steps.push(step.into_inner().lower().map_err(|e| (Some(i), e))?);
        }
        let assertions = self
            .expect
            .asserts
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.lower().map_err(|e| (None, format!("expect.assert[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scenario {
            name: self.name,
            description: self.description,
            raft: self.raft,
            config: self.config,
            initial: self.initial,
            steps,
            assertions,
            seed: self.seed,
            managers: c.managers,
            workers: c.workers,
            clients: c.clients,
            duration_ms: c.duration.0,
            faults_until_ms: c.faults_until.map_or(0, |d| d.0),
            batch_max: c.batch_max,
            workload: workload.map_or(Workload::Scripted(Vec::new()), Workload::Generated),
            faults: faults.unwrap_or_else(FaultSpace::none),
            checks: Checks {
                per_entry: self.expect.per_entry,
                engine_after_batch: self.expect.engine_after_batch,
                checkers: self.expect.checkers,
            },
            stop_when_all_pending: c.stop_when_all_pending,
            #[cfg(feature = "legacy")]
            legacy: self.legacy,
        })
    }

    pub(super) fn raise(s: &Scenario) -> Result<FileModel, String> {
        let workload = match &s.workload {
            Workload::Generated(g) => Some(GeneratorFile {
                networks: g.networks,
                services: g.services,
                replicas_min: g.replicas_min,
                replicas_max: g.replicas_max,
                changes: g.changes,
                ops_until: Dur(g.ops_until_ms),
                weights: g.weights,
            }),
            Workload::Scripted(ops) if ops.is_empty() => None,
            Workload::Scripted(_) => {
                return Err("a scripted workload is written as steps: move its operations into `steps`".into());
            }
        };
        let faults = (!s.faults.kinds.is_empty() || s.faults.swarm || !s.faults.rates.is_empty()).then(|| FaultsFile {
            kinds: s.faults.kinds.clone(),
            swarm: s.faults.swarm,
            rates: s.faults.rates.clone(),
        });
        let random = (workload.is_some() || faults.is_some()).then_some(RandomFile { workload, faults });
        let step = s
            .steps
            .iter()
            .map(|st| StepFile::raise(st).map(|f| toml::Spanned::new(0..0, f)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileModel {
            name: s.name.clone(),
            description: s.description.clone(),
            seed: s.seed,
            cluster: ClusterFile {
                managers: s.managers,
                workers: s.workers,
                clients: s.clients,
                duration: Dur(s.duration_ms),
                faults_until: (s.faults_until_ms > 0).then_some(Dur(s.faults_until_ms)),
                batch_max: s.batch_max,
                stop_when_all_pending: s.stop_when_all_pending,
            },
            raft: s.raft,
            config: s.config.clone(),
            random,
            expect: ExpectFile {
                checkers: s.checks.checkers.clone(),
                per_entry: s.checks.per_entry,
                engine_after_batch: s.checks.engine_after_batch,
                asserts: s.assertions.iter().map(AssertFile::raise).collect(),
            },
            initial: s.initial.clone(),
            step,
            #[cfg(feature = "legacy")]
            legacy: s.legacy,
        })
    }
}

fn target(name: String) -> Target {
    if name == "leader" { Target::Leader } else { Target::Node(name) }
}

fn target_name(t: &Target) -> String {
    t.to_string()
}

impl StepFile {
    pub(super) fn lower(mut self) -> Result<Step, String> {
        let at_ms = self.at.ok_or("missing key `at`: expected when the step happens, such as \"2s\"")?.0;
        let mut actions = self.client_actions();
        actions.extend(self.fault_actions()?);
        match actions.len() {
            1 => Ok(Step { at_ms, action: actions.remove(0).1 }),
            0 => Err(format!("a step needs one action key; expected one of {}", ACTION_KEYS.join(", "))),
            _ => {
                let keys: Vec<&str> = actions.iter().map(|(k, _)| *k).collect();
                Err(format!("a step has one action, found {}: split it into several steps", keys.join(" and ")))
            }
        }
    }

    /// The user requests among the step's keys, with their keys, in the file model's order.
    fn client_actions(&mut self) -> Vec<(&'static str, Action)> {
        let mut actions: Vec<(&'static str, Action)> = Vec::new();
        let mut add = |key: &'static str, action: Option<Action>| {
            if let Some(a) = action {
                actions.push((key, a));
            }
        };
        add("create_network", self.create_network.take().map(|n| Action::Client(n.lower_create())));
        add("remove_network", self.remove_network.take().map(|id| Action::Client(ClientOp::RemoveNetwork { id })));
        add(
            "create_service",
            self.create_service.take().map(|d| {
                let (id, spec) = d.lower();
                Action::Client(ClientOp::CreateService { id, spec })
            }),
        );
        add(
            "update_service",
            self.update_service.take().map(|d| {
                let (id, spec) = d.lower();
                Action::Client(ClientOp::UpdateService { id, spec })
            }),
        );
        add("remove_service", self.remove_service.take().map(|id| Action::Client(ClientOp::RemoveService { id })));
        add(
            "scale",
            self.scale.take().map(|s| Action::Client(ClientOp::ScaleService { id: s.service, replicas: s.replicas })),
        );
        add(
            "attach",
            self.attach.take().map(|a| {
                Action::Client(ClientOp::AttachNetwork {
                    task: a.task,
                    network: a.network,
                    node: a.node,
                    address: a.address,
                })
            }),
        );
        add("detach", self.detach.take().map(|task| Action::Client(ClientOp::DetachNetwork { task })));
        add("drain_node", self.drain_node.take().map(|node| Action::Client(ClientOp::DrainNode { node })));
        add("remove_node", self.remove_node.take().map(|node| Action::Client(ClientOp::RemoveNode { node })));
        actions
    }

    /// The faults among the step's keys (a failed task too), with their keys, in the file model's order.
    fn fault_actions(&mut self) -> Result<Vec<(&'static str, Action)>, String> {
        let mut actions: Vec<(&'static str, Action)> = Vec::new();
        let mut add = |key: &'static str, action: Option<Action>| {
            if let Some(a) = action {
                actions.push((key, a));
            }
        };
        add(
            "fail_task",
            self.fail_task.take().map(|f| Action::FailTask { task: f.task, service: f.service, slot: f.slot }),
        );
        add(
            "partition",
            self.partition.take().map(|p| Action::Partition { node: target(p.node), for_ms: p.for_.map(|d| d.0) }),
        );
        add("heal", self.heal.take().map(|n| Action::Heal { node: (n != "all").then(|| target(n)) }));
        add(
            "kill",
            self.kill
                .take()
                .map(|k| Action::Kill { node: target(k.node), restart_after_ms: k.restart_after.map(|d| d.0) }),
        );
        add("restart", self.restart.take().map(|n| Action::Restart { node: target(n) }));
        let restart_allocator = match self.restart_allocator {
            Some(false) => return Err("restart_allocator = false: expected true (or leave the key out)".into()),
            Some(true) => Some(Action::RestartAllocator),
            None => None,
        };
        add("restart_allocator", restart_allocator);
        add("cut_batch", self.cut_batch.take().map(|c| Action::CutBatch { after: c.after, for_ms: c.for_.0 }));
        add(
            "ambiguous_proposal",
            self.ambiguous_proposal.take().map(|a| Action::AmbiguousProposal {
                origin: a.origin,
                for_ms: a.for_.0,
                skip: a.skip,
            }),
        );
        add(
            "drop_proposal",
            self.drop_proposal.take().map(|d| Action::DropProposal { origin: d.origin, skip: d.skip }),
        );
        for (key, fault, def) in [
            ("drop_messages", MessageFault::Loss, self.drop_messages.take()),
            ("delay_messages", MessageFault::Delay, self.delay_messages.take()),
            ("duplicate_messages", MessageFault::Duplication, self.duplicate_messages.take()),
        ] {
            add(key, def.map(|m| Action::Messages { fault, rate: m.rate, for_ms: m.for_.0 }));
        }
        add(
            "slow_node",
            self.slow_node.take().map(|s| Action::SlowNode {
                node: target(s.node),
                extra_ms: s.extra.0,
                for_ms: s.for_.0,
            }),
        );
        Ok(actions)
    }

    pub(super) fn raise(step: &Step) -> Result<StepFile, String> {
        let mut f = StepFile { at: Some(Dur(step.at_ms)), ..Default::default() };
        match &step.action {
            Action::Client(op) => match op {
                ClientOp::CreateNetwork { id, spec } => f.create_network = Some(NetworkDef::raise(id, spec)),
                ClientOp::RemoveNetwork { id } => f.remove_network = Some(id.clone()),
                ClientOp::CreateService { id, spec } => f.create_service = Some(ServiceDef::raise(id, spec)),
                ClientOp::UpdateService { id, spec } => f.update_service = Some(ServiceDef::raise(id, spec)),
                ClientOp::RemoveService { id } => f.remove_service = Some(id.clone()),
                ClientOp::ScaleService { id, replicas } => {
                    f.scale = Some(ScaleDef { service: id.clone(), replicas: *replicas })
                }
                ClientOp::AttachNetwork { task, network, node, address } => {
                    f.attach = Some(AttachDef {
                        task: task.clone(),
                        network: network.clone(),
                        node: node.clone(),
                        address: *address,
                    })
                }
                ClientOp::DetachNetwork { task } => f.detach = Some(task.clone()),
                ClientOp::DrainNode { node } => f.drain_node = Some(node.clone()),
                ClientOp::RemoveNode { node } => f.remove_node = Some(node.clone()),
            },
            Action::FailTask { task, service, slot } => {
                f.fail_task = Some(FailDef { task: task.clone(), service: service.clone(), slot: *slot })
            }
            Action::Partition { node, for_ms } => {
                f.partition = Some(PartitionDef { node: target_name(node), for_: for_ms.map(Dur) })
            }
            Action::Heal { node } => f.heal = Some(node.as_ref().map_or("all".to_string(), target_name)),
            Action::Kill { node, restart_after_ms } => {
                f.kill = Some(KillDef { node: target_name(node), restart_after: restart_after_ms.map(Dur) })
            }
            Action::Restart { node } => f.restart = Some(target_name(node)),
            Action::RestartAllocator => f.restart_allocator = Some(true),
            Action::CutBatch { after, for_ms } => f.cut_batch = Some(CutDef { after: *after, for_: Dur(*for_ms) }),
            Action::AmbiguousProposal { origin, for_ms, skip } => {
                f.ambiguous_proposal = Some(AmbiguousDef { origin: *origin, for_: Dur(*for_ms), skip: *skip })
            }
            Action::DropProposal { origin, skip } => f.drop_proposal = Some(DropDef { origin: *origin, skip: *skip }),
            Action::Messages { fault, rate, for_ms } => {
                let def = Some(MessagesDef { rate: *rate, for_: Dur(*for_ms) });
                match fault {
                    MessageFault::Loss => f.drop_messages = def,
                    MessageFault::Delay => f.delay_messages = def,
                    MessageFault::Duplication => f.duplicate_messages = def,
                }
            }
            Action::SlowNode { node, extra_ms, for_ms } => {
                f.slow_node = Some(SlowDef { node: target_name(node), extra: Dur(*extra_ms), for_: Dur(*for_ms) })
            }
        }
        Ok(f)
    }
}

/// Every action key a step can have.
pub const ACTION_KEYS: [&str; 23] = [
    "create_network",
    "remove_network",
    "create_service",
    "update_service",
    "remove_service",
    "scale",
    "attach",
    "detach",
    "drain_node",
    "remove_node",
    "fail_task",
    "partition",
    "heal",
    "kill",
    "restart",
    "restart_allocator",
    "cut_batch",
    "ambiguous_proposal",
    "drop_proposal",
    "drop_messages",
    "delay_messages",
    "duplicate_messages",
    "slow_node",
];

impl NetworkDef {
    pub(super) fn lower_create(self) -> ClientOp {
        let ipam = if self.subnet.is_some() || self.gateway.is_some() {
            let config = IpamConfig { subnet: self.subnet, gateway: self.gateway, ..Default::default() };
            Some(Ipam { driver: self.ipam_driver, configs: vec![config], ..Default::default() })
        } else if let Some(configs) = self.ipam {
            Some(Ipam { driver: self.ipam_driver, configs, ..Default::default() })
        } else if !self.ipam_driver.is_empty() {
            Some(Ipam { driver: self.ipam_driver, ..Default::default() })
        } else {
            None
        };
        let driver = match (self.driver, self.driver_options.is_empty()) {
            (None, true) => None,
            (name, _) => Some(DriverConfig { name: name.unwrap_or_default(), options: self.driver_options }),
        };
        let spec = NetworkSpec {
            name: self.name.unwrap_or_else(|| self.id.to_string()),
            labels: self.labels,
            driver,
            ipam,
            ingress: self.ingress,
            attachable: self.attachable,
        };
        ClientOp::CreateNetwork { id: self.id, spec }
    }

    pub(super) fn raise(id: &NetworkId, spec: &NetworkSpec) -> NetworkDef {
        let mut def = NetworkDef {
            id: id.clone(),
            name: (spec.name != id.as_str()).then(|| spec.name.clone()),
            driver: spec.driver.as_ref().map(|d| d.name.clone()),
            driver_options: spec.driver.as_ref().map(|d| d.options.clone()).unwrap_or_default(),
            subnet: None,
            gateway: None,
            ipam: None,
            ipam_driver: String::new(),
            attachable: spec.attachable,
            ingress: spec.ingress,
            labels: spec.labels.clone(),
        };
        if let Some(ipam) = &spec.ipam {
            def.ipam_driver = ipam.driver.clone();
            match ipam.configs.as_slice() {
                [one] if one.range.is_none() && (one.subnet.is_some() || one.gateway.is_some()) => {
                    def.subnet = one.subnet;
                    def.gateway = one.gateway;
                }
                configs if !configs.is_empty() || ipam.driver.is_empty() => def.ipam = Some(configs.to_vec()),
                _ => {}
            }
        }
        def
    }
}

impl ServiceDef {
    pub(super) fn lower(self) -> (ServiceId, ServiceSpec) {
        let endpoint = (self.mode.is_some() || !self.ports.is_empty()).then(|| EndpointSpec {
            mode: self.mode.unwrap_or_default(),
            ports: self.ports.into_iter().map(|p| p.0).collect(),
        });
        let spec = ServiceSpec {
            name: self.name.unwrap_or_else(|| self.id.to_string()),
            replicas: self.replicas,
            task_networks: self.networks.into_iter().map(|n| n.0).collect(),
            networks: self.service_networks.into_iter().map(|n| n.0).collect(),
            endpoint,
        };
        (self.id, spec)
    }

    pub(super) fn raise(id: &ServiceId, spec: &ServiceSpec) -> ServiceDef {
        ServiceDef {
            id: id.clone(),
            name: (spec.name != id.as_str()).then(|| spec.name.clone()),
            replicas: spec.replicas,
            networks: spec.task_networks.iter().cloned().map(NetRef).collect(),
            service_networks: spec.networks.iter().cloned().map(NetRef).collect(),
            mode: spec.endpoint.as_ref().map(|e| e.mode),
            ports: spec.endpoint.iter().flat_map(|e| e.ports.iter().cloned().map(PortDef)).collect(),
        }
    }
}

impl AssertFile {
    pub(super) fn lower(self) -> Result<Assertion, String> {
        let service = || self.service.clone().ok_or("expected `service` with this check");
        let network = || self.network.clone().ok_or("expected `network` with this check");
        let checks = [
            self.running.is_some(),
            self.distinct_addresses.is_some(),
            self.vip_unchanged_since.is_some(),
            self.no_task_in.is_some(),
            self.allocated.is_some() || self.subnet.is_some(),
            self.gone.is_some(),
            self.vip_networks.is_some(),
        ];
        if checks.iter().filter(|c| **c).count() != 1 {
            return Err("expected exactly one of `running`, `distinct_addresses`, `vip_unchanged_since`, \
                        `no_task_in`, `allocated`/`subnet`, `gone`, `vip_networks`"
                .into());
        }
        // The keys that name what a check is about: each check takes its own and no other.
        let about_service = self.running.is_some()
            || self.distinct_addresses.is_some()
            || self.vip_unchanged_since.is_some()
            || self.vip_networks.is_some();
        let about_network = self.allocated.is_some() || self.subnet.is_some() || self.gone.is_some();
        if self.service.is_some() && !about_service {
            return Err("`service` does not go with this check: expected it only with `running`, \
                        `distinct_addresses`, `vip_unchanged_since` or `vip_networks`"
                .into());
        }
        if self.network.is_some() && !about_network {
            return Err(
                "`network` does not go with this check: expected it only with `allocated`/`subnet` or `gone`".into()
            );
        }
        if let Some(networks) = self.vip_networks.clone() {
            return Ok(Assertion::VipNetworks { service: service()?, networks });
        }
        if let Some(count) = self.running {
            return Ok(Assertion::Running { service: service()?, count });
        }
        if let Some(flag) = self.distinct_addresses {
            if !flag {
                return Err("distinct_addresses = false: expected true".into());
            }
            return Ok(Assertion::DistinctAddresses { service: service()? });
        }
        if let Some(since) = self.vip_unchanged_since {
            return Ok(Assertion::VipUnchangedSince { service: service()?, since_ms: since.0 });
        }
        if let Some(state) = self.no_task_in {
            return Ok(Assertion::NoTaskIn { state });
        }
        if let Some(flag) = self.gone {
            if !flag {
                return Err("gone = false: expected true".into());
            }
            return Ok(Assertion::NetworkGone { network: network()? });
        }
        if self.allocated == Some(false) {
            return Err("allocated = false: expected true".into());
        }
        Ok(Assertion::NetworkAllocated { network: network()?, subnet: self.subnet })
    }

    pub(super) fn raise(a: &Assertion) -> AssertFile {
        let mut f = AssertFile::default();
        match a {
            Assertion::Running { service, count } => {
                f.service = Some(service.clone());
                f.running = Some(*count);
            }
            Assertion::DistinctAddresses { service } => {
                f.service = Some(service.clone());
                f.distinct_addresses = Some(true);
            }
            Assertion::VipUnchangedSince { service, since_ms } => {
                f.service = Some(service.clone());
                f.vip_unchanged_since = Some(Dur(*since_ms));
            }
            Assertion::NoTaskIn { state } => f.no_task_in = Some(*state),
            Assertion::NetworkAllocated { network, subnet } => {
                f.network = Some(network.clone());
                f.allocated = Some(true);
                f.subnet = *subnet;
            }
            Assertion::NetworkGone { network } => {
                f.network = Some(network.clone());
                f.gone = Some(true);
            }
            Assertion::VipNetworks { service, networks } => {
                f.service = Some(service.clone());
                f.vip_networks = Some(networks.clone());
            }
        }
        f
    }
}
