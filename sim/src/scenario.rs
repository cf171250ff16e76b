//! What a run simulates: the cluster shape, the workload (user operations over time), the fault
//! space a seed draws from, and which checkers run. Built-in scenarios stand in until scenario
//! files exist; a file format only has to produce a [`Scenario`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use swarmalloc::{
    EndpointSpec, Ipam, IpamConfig, NetworkAttachmentConfig, NetworkId, NetworkSpec, PortConfig, Protocol, PublishMode,
    ResolutionMode, ServiceId, ServiceSpec,
};
use swarmalloc::{NodeId, TaskId};

use crate::faults::FaultSpace;
use crate::rng::{Draw, SimRng};

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
}

/// Everything a run needs besides the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
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
}

impl Scenario {
    pub const BUILT_IN: [&'static str; 3] = ["default", "smoke", "throughput"];

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
            }),
            faults: FaultSpace::all(),
            checks: Checks { per_entry: true, engine_after_batch: true },
            stop_when_all_pending: false,
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
            checks: Checks { per_entry: false, engine_after_batch: false },
            stop_when_all_pending: true,
        }
    }

    /// Checks the fields a scenario file could get wrong; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
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
                "faults_until_ms = {}: expected at most duration_ms = {}",
                self.faults_until_ms, self.duration_ms
            ));
        }
        if let Workload::Generated(g) = &self.workload {
            if g.replicas_min > g.replicas_max {
                return Err(format!(
                    "workload.replicas_min = {}: expected at most replicas_max = {}",
                    g.replicas_min, g.replicas_max
                ));
            }
            if g.ops_until_ms > self.duration_ms {
                return Err(format!("workload.ops_until_ms = {}: expected at most duration_ms", g.ops_until_ms));
            }
        }
        self.faults.validate()
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
    let mut networks: Vec<NetworkId> = Vec::new();
    // Attachable networks, with their explicit subnet's first three octets and a range of
    // host numbers inside it, if they have one.
    let mut attachable: Vec<(NetworkId, Option<ExplicitSubnet>)> = Vec::new();
    let mut attached: Vec<TaskId> = Vec::new();
    let mut attach_count = 0;
    for i in 0..g.networks {
        let id = NetworkId::new(format!("net-{i:02}"));
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
                configs: vec![IpamConfig { subnet: Some(subnet.parse().expect("valid")), ..Default::default() }],
            })
        } else {
            None
        };
        let spec = NetworkSpec { name: format!("net{i}"), ipam, attachable: rng.chance(0.4), ..Default::default() };
        if spec.attachable {
            attachable.push((id.clone(), prefix));
        }
        ops.push(TimedOp { at_ms: t, op: ClientOp::CreateNetwork { id: id.clone(), spec } });
        networks.push(id);
        t += rng.range(50, 400);
    }
    let mut services: Vec<(ServiceId, ServiceSpec)> = Vec::new();
    for i in 0..g.services {
        let id = ServiceId::new(format!("svc-{i:02}"));
        let spec = ServiceSpec {
            name: format!("svc{i}"),
            replicas: rng.range(g.replicas_min, g.replicas_max + 1),
            task_networks: pick_networks(rng, &networks),
            networks: Vec::new(),
            endpoint: pick_endpoint(rng, i),
        };
        ops.push(TimedOp { at_ms: t, op: ClientOp::CreateService { id: id.clone(), spec: spec.clone() } });
        services.push((id, spec));
        t += step(rng, create_until, g.services);
    }
    for _ in 0..g.changes {
        t += step(rng, g.ops_until_ms - create_until, g.changes);
        let t = t.min(g.ops_until_ms);
        let roll = rng.range(0, 100);
        if (80..88).contains(&roll) && workers > 0 && !attachable.is_empty() {
            let (network, prefix) = attachable[rng.index(attachable.len())].clone();
            let address = match prefix {
                Some((base, (lo, hi))) if rng.chance(0.5) => {
                    Some(format!("{base}.{}", rng.range(lo, hi + 1)).parse().expect("valid"))
                }
                _ => None,
            };
            let task = TaskId::new(format!("attach-{attach_count:02}"));
            attach_count += 1;
            let node = NodeId::new(format!("w{}", rng.range(1, u64::from(workers) + 1)));
            attached.push(task.clone());
            ops.push(TimedOp { at_ms: t, op: ClientOp::AttachNetwork { task, network, node, address } });
            continue;
        }
        if (88..93).contains(&roll) && !attached.is_empty() {
            let task = attached.remove(rng.index(attached.len()));
            ops.push(TimedOp { at_ms: t, op: ClientOp::DetachNetwork { task } });
            continue;
        }
        if services.is_empty() || roll >= 93 {
            if let Some(net) = networks.get(rng.index(networks.len())) {
                // Refused while a service or live task uses it; that refusal is part of the test.
                ops.push(TimedOp { at_ms: t, op: ClientOp::RemoveNetwork { id: net.clone() } });
            }
            continue;
        }
        let k = rng.index(services.len());
        let (id, spec) = services[k].clone();
        let op = if roll < 45 {
            let mut spec = spec;
            spec.replicas = rng.range(g.replicas_min.saturating_sub(2), g.replicas_max + 3);
            services[k].1 = spec.clone();
            ClientOp::UpdateService { id, spec }
        } else if roll < 60 {
            let mut spec = spec;
            spec.task_networks = pick_networks(rng, &networks);
            services[k].1 = spec.clone();
            ClientOp::UpdateService { id, spec }
        } else if roll < 70 {
            let mut spec = spec;
            spec.endpoint = pick_endpoint(rng, k as u32 + 100);
            services[k].1 = spec.clone();
            ClientOp::UpdateService { id, spec }
        } else {
            services.remove(k);
            ClientOp::RemoveService { id }
        };
        ops.push(TimedOp { at_ms: t, op });
    }
    ops.sort_by_key(|o| o.at_ms);
    ops
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
