//! Exhaustive tests over tiny inputs: every split of a /29 between tasks and VIPs, what /29 to
//! /32 (and a small IPv6 subnet) hold, every allocate/free interleaving of a few services over a
//! three-port dynamic range, every allocate/retire/delete sequence on a /29 for the reuse-delay
//! rule, and every order of a small set of committed objects for restore.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::{
    ADDRESS_CURSOR_OPTION, AllocError, Allocator, ClusterConfig, EndpointSpec, Ipam, IpamConfig, Network,
    NetworkAttachment, NetworkAttachmentConfig, NetworkId, NetworkSpec, Node, NodeId, Object, ObjectId, Outcome,
    PortConfig, Proposal, Protocol, PublishMode, Range, ResolutionMode, Service, ServiceId, ServiceSpec, Task, TaskId,
    TaskSpec, TaskState, TaskStatus, Tx, VXLAN_ID_LIST_OPTION, Version, VirtualIp,
};

// ------------------------------------------------------------------------------------------------
// A committed store with the engine mirroring it.

#[derive(Clone)]
struct World {
    config: ClusterConfig,
    engine: Allocator,
    store: BTreeMap<ObjectId, Object>,
    store_index: u64,
}

impl World {
    fn new(config: ClusterConfig) -> World {
        World { engine: Allocator::new(config.clone()).unwrap(), config, store: BTreeMap::new(), store_index: 0 }
    }

    /// A committed write by someone other than the allocator.
    fn write(&mut self, object: Object) {
        let object = self.versioned(object);
        self.engine.observe(object.as_ref());
        self.store.insert(object.id(), object);
    }

    fn delete(&mut self, id: &ObjectId) {
        self.store.remove(id);
        self.engine.observe_deleted(id);
    }

    fn versioned(&mut self, mut object: Object) -> Object {
        self.store_index += 1;
        let version = Version(self.store_index);
        match &mut object {
            Object::Network(o) => o.version = version,
            Object::Service(o) => o.version = version,
            Object::Task(o) => o.version = version,
            Object::Node(o) => o.version = version,
        }
        object
    }

    fn get(&self, id: &ObjectId) -> &Object {
        self.store.get(id).unwrap_or_else(|| panic!("{id} is not in the store"))
    }

    /// Runs `f` in one transaction; commits the proposal when it succeeds, drops it otherwise.
    fn allocate(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>, &Self) -> Result<Outcome, AllocError>,
    ) -> Result<Outcome, AllocError> {
        let mut tx = self.engine.begin();
        let result = f(&mut tx, self);
        let proposal = tx.finish();
        if result.is_ok() {
            self.commit(&proposal);
        }
        result
    }

    fn commit(&mut self, proposal: &Proposal) {
        self.engine.commit(proposal);
        for object in proposal.updates() {
            let object = self.versioned(object.clone());
            self.store.insert(object.id(), object);
        }
    }

    fn allocate_network(&mut self, id: &str) -> Result<Outcome, AllocError> {
        let id = ObjectId::Network(NetworkId::new(id));
        self.allocate(|tx, w| match w.get(&id) {
            Object::Network(n) => tx.allocate_network(n),
            _ => unreachable!(),
        })
    }

    fn allocate_service(&mut self, id: &str) -> Result<Outcome, AllocError> {
        let id = ObjectId::Service(ServiceId::new(id));
        self.allocate(|tx, w| match w.get(&id) {
            Object::Service(s) => tx.allocate_service(s),
            _ => unreachable!(),
        })
    }

    fn allocate_task(&mut self, id: &str) -> Result<Outcome, AllocError> {
        let id = ObjectId::Task(TaskId::new(id));
        self.allocate(|tx, w| match w.get(&id) {
            Object::Task(t) => {
                let service = t.service_id.as_ref().map(|s| match w.get(&ObjectId::Service(s.clone())) {
                    Object::Service(s) => s,
                    _ => unreachable!(),
                });
                tx.allocate_task(t, service)
            }
            _ => unreachable!(),
        })
    }

    fn task(&self, id: &str) -> &Task {
        match self.get(&ObjectId::Task(TaskId::new(id))) {
            Object::Task(t) => t,
            _ => unreachable!(),
        }
    }

    fn service(&self, id: &str) -> &Service {
        match self.get(&ObjectId::Service(ServiceId::new(id))) {
            Object::Service(s) => s,
            _ => unreachable!(),
        }
    }

    fn restored(&self, objects: impl IntoIterator<Item = ObjectId>) -> Allocator {
        let objects: Vec<&Object> = objects.into_iter().map(|id| self.get(&id)).collect();
        Allocator::restore(self.config.clone(), objects.into_iter().map(Object::as_ref)).unwrap().0
    }

    /// The engine equals a fresh restore of the store, in store order and reversed.
    fn assert_restore_equal(&self, context: &str) {
        let ids: Vec<ObjectId> = self.store.keys().cloned().collect();
        for order in [ids.clone(), ids.iter().rev().cloned().collect()] {
            let restored = self.restored(order);
            if let Some(diff) = self.engine.diff(&restored) {
                panic!("{context}: engine != restore(store)\n{diff}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Object builders

fn network(id: &str, subnets: &[(&str, Option<&str>)]) -> Object {
    Object::Network(Network {
        id: NetworkId::new(id),
        version: Version(0),
        spec: NetworkSpec {
            name: id.to_string(),
            ipam: Some(Ipam {
                driver: String::new(),
                options: Default::default(),
                configs: subnets
                    .iter()
                    .map(|(subnet, gateway)| IpamConfig {
                        subnet: Some(subnet.parse().unwrap()),
                        range: None,
                        gateway: gateway.map(|g| g.parse().unwrap()),
                    })
                    .collect(),
            }),
            attachable: true,
            ..NetworkSpec::default()
        },
        driver_state: None,
        ipam: None,
    })
}

/// A standalone container's task on an attachable network (no service).
fn attach_task(id: &str, network: &str) -> Object {
    Object::Task(Task {
        id: TaskId::new(id),
        version: Version(0),
        service_id: None,
        node_id: Some(NodeId::new("node")),
        slot: 0,
        spec: TaskSpec { networks: vec![NetworkAttachmentConfig::to(network)] },
        status: TaskStatus { state: TaskState::New, message: String::new() },
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    })
}

fn service(id: &str, networks: &[&str], ports: Vec<PortConfig>) -> Object {
    Object::Service(Service {
        id: ServiceId::new(id),
        version: Version(0),
        spec: ServiceSpec {
            name: id.to_string(),
            replicas: 1,
            task_networks: networks.iter().map(|n| NetworkAttachmentConfig::to(*n)).collect(),
            endpoint: Some(EndpointSpec { mode: ResolutionMode::Vip, ports }),
            ..ServiceSpec::default()
        },
        endpoint: None,
    })
}

fn tcp(target_port: u16, published_port: u16) -> PortConfig {
    PortConfig {
        name: String::new(),
        protocol: Protocol::Tcp,
        target_port,
        published_port,
        publish_mode: PublishMode::Ingress,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn task_addresses(task: &Task) -> Vec<IpNet> {
    task.networks.iter().flat_map(|a| a.addresses.clone()).collect()
}

fn assert_exhausted<T: std::fmt::Debug>(result: Result<T, AllocError>, naming: &str, context: &str) {
    match result {
        Err(error @ AllocError::Exhausted { .. }) => {
            assert!(error.is_retryable(), "{context}: exhausted must be retryable");
            assert!(error.to_string().contains(naming), "{context}: error {error} does not name {naming}");
        }
        other => panic!("{context}: expected an Exhausted error naming {naming}, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// Tiny subnets

/// A /29 has 8 addresses: network, gateway (.1), broadcast, and 5 for tasks and VIPs together.
/// Every split of six requests between tasks and VIPs, one request per committed pass: the first
/// five succeed with distinct addresses .2 to .6, the sixth fails as exhausted, naming the network.
#[test]
fn slash29_holds_exactly_five_tasks_and_vips() {
    for kinds in 0u32..(1 << 6) {
        let context = format!("kinds {kinds:06b} (1 = VIP)");
        let mut world = World::new(ClusterConfig::default());
        world.write(network("n29", &[("192.168.0.0/29", None)]));
        world.allocate_network("n29").unwrap();
        let mut addresses = BTreeSet::new();
        for i in 0..6 {
            let id = format!("x{i}");
            let vip = kinds & (1 << i) != 0;
            let result = if vip {
                world.write(service(&id, &["n29"], Vec::new()));
                world.allocate_service(&id)
            } else {
                world.write(attach_task(&id, "n29"));
                world.allocate_task(&id)
            };
            if result.is_ok() && vip {
                let vips = &world.service(&id).endpoint.as_ref().unwrap().virtual_ips;
                assert_eq!(vips.len(), 1, "{context}: one VIP");
                addresses.insert(vips[0].addr);
            } else if result.is_ok() {
                let task = world.task(&id);
                assert_eq!(task.status.state, TaskState::Pending, "{context}: task {id}");
                addresses.extend(task_addresses(task));
            }
            if i < 5 {
                assert_eq!(result, Ok(Outcome::Updated), "{context}: request {i}");
            } else {
                assert_exhausted(result, "n29", &context);
            }
            world.assert_restore_equal(&context);
        }
        let expected: BTreeSet<IpNet> = (2..=6).map(|h| format!("192.168.0.{h}/29").parse().unwrap()).collect();
        assert_eq!(addresses, expected, "{context}");
    }
}

/// The same split inside one transaction: the sixth request fails, the five others are proposed.
#[test]
fn slash29_one_transaction_holds_exactly_five() {
    for kinds in 0u32..(1 << 6) {
        let context = format!("kinds {kinds:06b} (1 = VIP)");
        let mut world = World::new(ClusterConfig::default());
        world.write(network("n29", &[("192.168.0.0/29", None)]));
        world.allocate_network("n29").unwrap();
        for i in 0..6 {
            let id = format!("x{i}");
            world.write(if kinds & (1 << i) != 0 {
                service(&id, &["n29"], Vec::new())
            } else {
                attach_task(&id, "n29")
            });
        }
        let mut tx = world.engine.begin();
        for i in 0..6 {
            let id = format!("x{i}");
            let result = match world.get(&if kinds & (1 << i) != 0 {
                ObjectId::Service(ServiceId::new(&id))
            } else {
                ObjectId::Task(TaskId::new(&id))
            }) {
                Object::Service(s) => tx.allocate_service(s),
                Object::Task(t) => tx.allocate_task(t, None),
                _ => unreachable!(),
            };
            if i < 5 {
                assert_eq!(result, Ok(Outcome::Updated), "{context}: request {i}");
            } else {
                assert_exhausted(result, "n29", &context);
            }
        }
        let proposal = tx.finish();
        let allocated = proposal.updates().iter().filter(|o| !matches!(o, Object::Network(_))).count();
        assert_eq!(allocated, 5, "{context}");
        world.commit(&proposal);
        world.assert_restore_equal(&context);
        let held: BTreeSet<IpAddr> = world
            .engine
            .claimed_addresses()
            .into_iter()
            .filter(|c| c.network.as_str() == "n29")
            .map(|c| c.address.addr())
            .collect();
        let expected: BTreeSet<IpAddr> = (1..=6).map(|h| ip(&format!("192.168.0.{h}"))).collect();
        assert_eq!(held, expected, "{context}: gateway plus five");
    }
}

struct TinySubnet {
    subnet: &'static str,
    range: Option<&'static str>,
    gateway: Option<&'static str>,
    /// None: the subnet has no address left and the network is never allocated.
    expected_gateway: Option<&'static str>,
    /// Every address tasks get, in pick order, before the pool is exhausted.
    expected_tasks: &'static [&'static str],
}

/// What /29, /30, /31, /32 (and IPv6 /125, /127, /128, a /29 with an explicit gateway, a /28 with a
/// range) hold. Every subnet reserves its first address and every IPv4 one its last, so an IPv4
/// /31 or /32 and an IPv6 /128 cannot be allocated (docs/swarmkit.md section 2.2); the gateway is
/// the first address of the range (or subnet) unless the config names one.
#[test]
fn tiny_subnets_hold_what_the_spec_says() {
    let plain = |subnet, expected_gateway, expected_tasks| TinySubnet {
        subnet,
        range: None,
        gateway: None,
        expected_gateway,
        expected_tasks,
    };
    let table = [
        plain(
            "192.168.0.0/29",
            Some("192.168.0.1"),
            &["192.168.0.2", "192.168.0.3", "192.168.0.4", "192.168.0.5", "192.168.0.6"],
        ),
        TinySubnet {
            subnet: "192.168.0.0/29",
            range: None,
            gateway: Some("192.168.0.6"),
            expected_gateway: Some("192.168.0.6"),
            expected_tasks: &["192.168.0.1", "192.168.0.2", "192.168.0.3", "192.168.0.4", "192.168.0.5"],
        },
        TinySubnet {
            subnet: "192.168.0.0/28",
            range: Some("192.168.0.8/30"),
            gateway: None,
            expected_gateway: Some("192.168.0.8"),
            expected_tasks: &["192.168.0.9", "192.168.0.10", "192.168.0.11"],
        },
        plain("192.168.0.0/30", Some("192.168.0.1"), &["192.168.0.2"]),
        plain("192.168.0.0/31", None, &[]),
        plain("192.168.0.0/32", None, &[]),
        plain("fd00::/125", Some("fd00::1"), &["fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7"]),
        plain("fd00::/127", Some("fd00::1"), &[]),
        plain("fd00::/128", None, &[]),
    ];
    for case in table {
        check_tiny_subnet(&case);
    }
}

fn check_tiny_subnet(case: &TinySubnet) {
    let context = format!("subnet {} range {:?} gateway {:?}", case.subnet, case.range, case.gateway);
    let subnet: IpNet = case.subnet.parse().unwrap();
    let mut world = World::new(ClusterConfig::default());
    let mut tiny = network("tiny", &[(case.subnet, case.gateway)]);
    if let (Some(range), Object::Network(n)) = (case.range, &mut tiny) {
        n.spec.ipam.as_mut().unwrap().configs[0].range = Some(range.parse().unwrap());
    }
    world.write(tiny);
    let Some(expected_gateway) = case.expected_gateway else {
        let refused = world.allocate_network("tiny");
        assert!(
            matches!(&refused, Err(AllocError::InvalidSpec { what }) if what.contains(case.subnet)),
            "{context}: {refused:?}"
        );
        world.assert_restore_equal(&context);
        return;
    };
    assert_eq!(world.allocate_network("tiny"), Ok(Outcome::Updated), "{context}");
    let Object::Network(allocated) = world.get(&ObjectId::Network(NetworkId::new("tiny"))) else { unreachable!() };
    let configs = &allocated.ipam.as_ref().unwrap().configs;
    assert_eq!(configs.len(), 1, "{context}");
    assert_eq!(configs[0].gateway, Some(ip(expected_gateway)), "{context}: gateway");
    let mut got = Vec::new();
    for i in 0..=case.expected_tasks.len() {
        let id = format!("t{i}");
        world.write(attach_task(&id, "tiny"));
        let result = world.allocate_task(&id);
        if i < case.expected_tasks.len() {
            assert_eq!(result, Ok(Outcome::Updated), "{context}: task {i}");
            let addresses = task_addresses(world.task(&id));
            assert_eq!(addresses.len(), 1, "{context}: one address per family");
            assert_eq!(addresses[0].prefix_len(), subnet.prefix_len(), "{context}: stored with the subnet's prefix");
            got.push(addresses[0].addr());
        } else {
            assert_exhausted(result, "tiny", &context);
            world.delete(&ObjectId::Task(TaskId::new(&id)));
        }
        world.assert_restore_equal(&context);
    }
    let expected: Vec<IpAddr> = case.expected_tasks.iter().map(|s| ip(s)).collect();
    assert_eq!(got, expected, "{context}");
}

/// Two IPv4 subnets fill in config order: the /30's one address, then the /29's five; the next
/// request is exhausted and the error names both subnets.
#[test]
fn two_subnets_fill_in_config_order() {
    let mut world = World::new(ClusterConfig::default());
    world.write(network("two", &[("192.168.4.0/30", None), ("192.168.5.0/29", None)]));
    world.allocate_network("two").unwrap();
    let mut got = Vec::new();
    for i in 0..7 {
        let id = format!("t{i}");
        world.write(attach_task(&id, "two"));
        let result = world.allocate_task(&id);
        if i < 6 {
            assert_eq!(result, Ok(Outcome::Updated), "task {i}");
            got.extend(task_addresses(world.task(&id)).iter().map(|a| a.to_string()));
        } else {
            assert_exhausted(result.clone(), "192.168.4.0/30", "seventh task");
            assert_exhausted(result, "192.168.5.0/29", "seventh task");
        }
        world.assert_restore_equal(&format!("task {i}"));
    }
    let expected =
        ["192.168.4.2/30", "192.168.5.2/29", "192.168.5.3/29", "192.168.5.4/29", "192.168.5.5/29", "192.168.5.6/29"];
    assert_eq!(got, expected);
}

/// A dual-stack /29 + /125: every task gets one address of each family; when the IPv4 side runs
/// out (after five) the task fails as a whole and its IPv6 address is not taken either.
#[test]
fn dual_stack_tasks_get_one_address_per_family_all_or_nothing() {
    let mut world = World::new(ClusterConfig::default());
    world.write(network("dual", &[("192.168.6.0/29", None), ("fd00:6::/125", None)]));
    world.allocate_network("dual").unwrap();
    for i in 0..6 {
        let id = format!("t{i}");
        world.write(attach_task(&id, "dual"));
        let result = world.allocate_task(&id);
        if i < 5 {
            assert_eq!(result, Ok(Outcome::Updated), "task {i}");
            let addresses = task_addresses(world.task(&id));
            let expected: Vec<IpNet> = vec![
                format!("192.168.6.{}/29", i + 2).parse().unwrap(),
                format!("fd00:6::{}/125", i + 2).parse().unwrap(),
            ];
            assert_eq!(addresses, expected, "task {i}");
        } else {
            assert_exhausted(result, "IPv4 addresses of network dual", "sixth task");
        }
        world.assert_restore_equal(&format!("task {i}"));
    }
    let v6_held = world.engine.claimed_addresses().iter().filter(|c| c.address.addr().is_ipv6()).count();
    assert_eq!(v6_held, 6, "gateway fd00:6::1 plus five tasks; the failed task took nothing");
}

// ------------------------------------------------------------------------------------------------
// Dynamic ports: every allocate/free interleaving over a three-port range

const PORT_MIN: u16 = 30000;
const PORT_MAX: u16 = 30002;
/// Services s0..s2 ask for one dynamic TCP port each; s3 asks for TCP 30001 (inside the range).
const PORT_SERVICES: usize = 4;
const PORT_FIXED: u16 = 30001;
const PORT_DEPTH: usize = 8;

fn port_config() -> ClusterConfig {
    ClusterConfig { dynamic_port_range: Range { min: PORT_MIN, max: PORT_MAX }, ..ClusterConfig::default() }
}

fn port_service(i: usize) -> Object {
    let published = if i == PORT_SERVICES - 1 { PORT_FIXED } else { 0 };
    service(&format!("s{i}"), &[], vec![tcp(80, published)])
}

/// A world with an allocated ingress network (ingress-mode ports need one; each service also
/// gets a VIP on it).
fn port_world() -> World {
    let mut world = World::new(port_config());
    world.write(ingress_network());
    world.allocate_network("ingress").unwrap();
    world
}

fn ingress_network() -> Object {
    let Object::Network(mut ingress) = network("ingress", &[]) else { unreachable!() };
    ingress.spec.ingress = true;
    ingress.spec.attachable = false;
    ingress.spec.ipam = None;
    Object::Network(ingress)
}

/// The published TCP ports held by committed services.
fn held_ports(world: &World) -> BTreeMap<u16, String> {
    let mut held = BTreeMap::new();
    for object in world.store.values() {
        let Object::Service(s) = object else { continue };
        for port in s.endpoint.iter().flat_map(|e| &e.ports) {
            if let Some(other) = held.insert(port.published_port, s.id.to_string()) {
                panic!("port {} held by {other} and {}", port.published_port, s.id);
            }
        }
    }
    held
}

/// The documented pick: the first free port after the highest one in use in the range, wrapping.
fn expected_dynamic_pick(held: &BTreeMap<u16, String>) -> Option<u16> {
    let start = match held.range(PORT_MIN..=PORT_MAX).next_back() {
        Some((h, _)) if *h < PORT_MAX => h + 1,
        _ => PORT_MIN,
    };
    (start..=PORT_MAX).chain(PORT_MIN..start).find(|p| !held.contains_key(p))
}

/// The port a probe service would get now (a proposal that is dropped).
fn probe_port(engine: &Allocator) -> Result<u16, AllocError> {
    let Object::Service(probe) = port_service(0) else { unreachable!() };
    let probe = Service { id: ServiceId::new("probe"), ..probe };
    let mut tx = engine.begin();
    tx.allocate_service(&probe)?;
    let proposal = tx.finish();
    let service = proposal.updates().iter().find_map(|o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    Ok(service.expect("the probe service is updated").endpoint.as_ref().unwrap().ports[0].published_port)
}

#[test]
fn dynamic_ports_every_interleaving() {
    // Breadth first, so that each state is expanded at its smallest depth. Ports are a function
    // of the store: states with the same services and ports behave the same.
    let mut queue = VecDeque::from([(port_world(), 0usize)]);
    let mut seen = BTreeSet::new();
    while let Some((world, depth)) = queue.pop_front() {
        let key: Vec<(String, Vec<u16>)> = world
            .store
            .values()
            .filter_map(|o| match o {
                Object::Service(s) => Some((
                    s.id.to_string(),
                    s.endpoint.iter().flat_map(|e| &e.ports).map(|p| p.published_port).collect(),
                )),
                _ => None,
            })
            .collect();
        if depth > PORT_DEPTH || !seen.insert(key.clone()) {
            continue;
        }
        queue.extend(expand_ports(&world, &key).into_iter().map(|next| (next, depth + 1)));
    }
    assert!(seen.len() > 100, "explored {} states", seen.len());
}

/// Checks one state and returns its successors: allocate or delete each service.
fn expand_ports(world: &World, key: &[(String, Vec<u16>)]) -> Vec<World> {
    let mut out = Vec::new();
    let context = format!("state {key:?}");
    world.assert_restore_equal(&context);
    let held = held_ports(world);
    // Restore gives the same next pick as the engine that made the state.
    let restored = world.restored(world.store.keys().cloned().collect::<Vec<_>>().into_iter().rev());
    assert_eq!(probe_port(&world.engine), probe_port(&restored), "{context}: next pick after restore");

    for i in 0..PORT_SERVICES {
        // Allocate service i (creating it first if needed).
        let mut next = world.clone();
        let id = format!("s{i}");
        let present = next.store.contains_key(&ObjectId::Service(ServiceId::new(&id)));
        let allocated = present && next.service(&id).endpoint.is_some();
        if !present {
            next.write(port_service(i));
        }
        let result = next.allocate_service(&id);
        let context = format!("{context}: allocate {id}");
        if allocated {
            assert_eq!(result, Ok(Outcome::Unchanged), "{context}: already allocated");
        } else if i == PORT_SERVICES - 1 {
            match held.get(&PORT_FIXED) {
                None => assert_eq!(result, Ok(Outcome::Updated), "{context}"),
                Some(owner) => match &result {
                    Err(error @ AllocError::InUse { what, holder }) => {
                        assert!(error.is_retryable(), "{context}");
                        assert!(what.contains("tcp/30001") && holder.contains(owner), "{context}: {error}");
                    }
                    other => panic!("{context}: expected InUse by {owner}, got {other:?}"),
                },
            }
        } else {
            match expected_dynamic_pick(&held) {
                Some(port) => {
                    assert_eq!(result, Ok(Outcome::Updated), "{context}");
                    let got = next.service(&id).endpoint.as_ref().unwrap().ports[0].published_port;
                    assert_eq!(got, port, "{context}: documented pick");
                }
                None => assert_exhausted(result, "30000..=30002", &context),
            }
        }
        out.push(next);

        // Free service i (delete it).
        if present {
            let mut next = world.clone();
            next.delete(&ObjectId::Service(ServiceId::new(&id)));
            out.push(next);
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// The reuse-delay rule on a /29

const REUSE_DEPTH: usize = 9;

/// What the last step freed, and the pool's cursor just before it.
#[derive(Clone, Debug)]
struct Freed {
    address: IpAddr,
    cursor_before: IpAddr,
}

/// The next address a probe task would get (a proposal that is dropped).
fn probe_address(engine: &Allocator) -> Result<IpAddr, AllocError> {
    let Object::Task(probe) = attach_task("probe", "n29") else { unreachable!() };
    let mut tx = engine.begin();
    tx.allocate_task(&probe, None)?;
    let proposal = tx.finish();
    let task = proposal.updates().iter().find_map(|o| match o {
        Object::Task(t) => Some(t),
        _ => None,
    });
    Ok(task_addresses(task.expect("the probe task is updated"))[0].addr())
}

/// Addresses referenced by tasks in the store: true for live, false for retired.
fn referenced(world: &World) -> BTreeMap<IpAddr, bool> {
    let mut out = BTreeMap::new();
    for object in world.store.values() {
        let Object::Task(t) = object else { continue };
        for addr in task_addresses(t) {
            out.insert(addr.addr(), t.status.state.is_live());
        }
    }
    out
}

/// The address cursor n29 stores, if any.
fn stored_cursor(world: &World) -> Option<IpAddr> {
    let Object::Network(n) = world.get(&ObjectId::Network(NetworkId::new("n29"))) else { unreachable!() };
    n.ipam.as_ref()?.options.get(ADDRESS_CURSOR_OPTION)?.parse().ok()
}

#[test]
fn reuse_delay_every_sequence_on_slash29() {
    reuse_delay_every_sequence(None);
}

/// A gateway at the top of the range is the highest address referenced forever: a cursor derived
/// from the highest claim would hand freed addresses out at once (issue 15, point 12).
#[test]
fn reuse_delay_every_sequence_on_slash29_with_the_gateway_on_top() {
    reuse_delay_every_sequence(Some("192.168.0.6"));
}

fn reuse_delay_every_sequence(gateway: Option<&str>) {
    let mut world = World::new(ClusterConfig::default());
    world.write(network("n29", &[("192.168.0.0/29", gateway)]));
    world.allocate_network("n29").unwrap();
    let gateway = ip(gateway.unwrap_or("192.168.0.1"));
    // Breadth first over (addresses referenced, stored cursor, what was just freed).
    let mut queue = VecDeque::from([(world, None, 0usize)]);
    let mut seen = BTreeSet::new();
    let mut next_id = 0u32;
    while let Some((world, freed, depth)) = queue.pop_front() {
        let refs = referenced(&world);
        let key = (refs.iter().map(|(a, l)| (*a, *l)).collect::<Vec<_>>(), stored_cursor(&world), format!("{freed:?}"));
        if depth > REUSE_DEPTH || !seen.insert(key) {
            continue;
        }
        let next = expand_reuse(&world, gateway, &refs, freed, &mut next_id);
        queue.extend(next.into_iter().map(|(w, f)| (w, f, depth + 1)));
    }
    assert!(seen.len() > 100, "explored {} states", seen.len());
}

/// Checks one state and returns its successors: allocate a task, retire or delete each task.
fn expand_reuse(
    world: &World,
    gateway: IpAddr,
    refs: &BTreeMap<IpAddr, bool>,
    freed: Option<Freed>,
    next_id: &mut u32,
) -> Vec<(World, Option<Freed>)> {
    let mut out = Vec::new();
    let context = format!("tasks {refs:?}, cursor {:?}, after {freed:?}", stored_cursor(world));
    world.assert_restore_equal(&context);

    // The next pick, and the same from engines restored in two orders.
    let pick = probe_address(&world.engine);
    let ids: Vec<ObjectId> = world.store.keys().cloned().collect();
    for order in [ids.clone(), ids.iter().rev().cloned().collect()] {
        assert_eq!(probe_address(&world.restored(order)), pick, "{context}: next pick after restore");
    }

    // The documented rule: first address after the stored cursor (the last one handed out; before
    // any, the highest referenced one, gateway included), wrapping; a retired task's address
    // only when nothing else is free.
    let usable: Vec<IpAddr> = (1..=6).map(|h| ip(&format!("192.168.0.{h}"))).collect();
    let cursor = stored_cursor(world).unwrap_or_else(|| refs.keys().copied().max().unwrap_or(gateway).max(gateway));
    let after = usable.iter().position(|a| *a == cursor).unwrap() + 1;
    let scan: Vec<IpAddr> = usable[after..].iter().chain(&usable[..after]).copied().collect();
    let free = scan.iter().copied().find(|a| *a != gateway && !refs.contains_key(a));
    let retired = scan.iter().copied().find(|a| refs.get(a) == Some(&false));
    match free.or(retired) {
        Some(expected) => assert_eq!(pick, Ok(expected), "{context}: documented pick"),
        None => assert_exhausted(pick.clone(), "n29", &context),
    }

    // The reuse delay: a freed address is not the next pick while another free address comes
    // before it in the scan from the cursor as it was before the free (until the scan wraps),
    // whether its holder was retired or deleted.
    if let Some(freed) = &freed {
        let after = usable.iter().position(|a| *a == freed.cursor_before).unwrap() + 1;
        let scan_before: Vec<IpAddr> = usable[after..].iter().chain(&usable[..after]).copied().collect();
        let ahead =
            scan_before.iter().take_while(|a| **a != freed.address).any(|a| *a != gateway && !refs.contains_key(a));
        if ahead {
            assert_ne!(pick, Ok(freed.address), "{context}: freed address handed out again before the scan wrapped");
        }
    }

    // Allocate one more task.
    if pick.is_ok() {
        let mut next = world.clone();
        *next_id += 1;
        let id = format!("t{next_id:03}");
        next.write(attach_task(&id, "n29"));
        assert_eq!(next.allocate_task(&id), Ok(Outcome::Updated), "{context}: allocate");
        out.push((next, None));
    }
    let tasks: Vec<Task> = world
        .store
        .values()
        .filter_map(|o| match o {
            Object::Task(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let cursor_before = cursor;
    for task in tasks {
        let Some(address) = task_addresses(&task).first().map(IpNet::addr) else { continue };
        // Retire a live task (it went terminal; its address stays quarantined).
        if task.status.state.is_live() {
            let mut next = world.clone();
            let mut retired = task.clone();
            retired.status = TaskStatus { state: TaskState::Failed, message: "exited".into() };
            next.write(Object::Task(retired));
            out.push((next, Some(Freed { address, cursor_before })));
        }
        // Delete the task (live or retired).
        let mut next = world.clone();
        next.delete(&ObjectId::Task(task.id.clone()));
        let freed = Freed { address, cursor_before };
        out.push((next, Some(freed)));
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Restore order

/// Heap's algorithm: calls `f` with every permutation of `items`.
fn permutations<T: Clone>(items: &mut [T], f: &mut impl FnMut(&[T])) {
    fn heap<T: Clone>(k: usize, items: &mut [T], f: &mut impl FnMut(&[T])) {
        if k <= 1 {
            f(items);
            return;
        }
        heap(k - 1, items, f);
        for i in 0..k - 1 {
            if k.is_multiple_of(2) {
                items.swap(i, k - 1)
            } else {
                items.swap(0, k - 1)
            }
            heap(k - 1, items, f);
        }
    }
    let n = items.len();
    heap(n, items, f);
}

/// A clean committed state built by real allocation: two networks, a service with a VIP and a
/// dynamic port, two tasks (one retired), a node with LB attachments.
fn clean_objects() -> (ClusterConfig, Vec<Object>) {
    let mut world = World::new(ClusterConfig::default());
    world.write(network("na", &[("10.1.0.0/29", None)]));
    world.write(ingress_network());
    world.allocate_network("ingress").unwrap();
    world.allocate_network("na").unwrap();
    world.write(service("svc", &["na"], vec![tcp(80, 0)]));
    world.allocate_service("svc").unwrap();
    for id in ["t1", "t2"] {
        // A service task: its spec names the service's networks (the orchestrator's copy).
        let Object::Task(mut task) = attach_task(id, "na") else { unreachable!() };
        task.service_id = Some(ServiceId::new("svc"));
        world.write(Object::Task(task));
        world.allocate_task(id).unwrap();
    }
    let mut t2 = world.task("t2").clone();
    t2.status = TaskStatus { state: TaskState::Complete, message: String::new() };
    world.write(Object::Task(t2));
    world.write(Object::Node(Node {
        id: NodeId::new("node"),
        version: Version(0),
        spec: Default::default(),
        attachments: Vec::new(),
    }));
    world
        .allocate(|tx, w| match w.get(&ObjectId::Node(NodeId::new("node"))) {
            Object::Node(n) => tx.allocate_node(n),
            _ => unreachable!(),
        })
        .unwrap();
    let Object::Node(node) = world.get(&ObjectId::Node(NodeId::new("node"))) else { unreachable!() };
    assert_eq!(node.attachments.len(), 2, "LB on ingress and na");
    (world.config.clone(), world.store.into_values().collect())
}

fn allocated_network(id: &str, subnet: &str, vni: u32, ingress: bool) -> Object {
    let Object::Network(mut n) = network(id, &[(subnet, None)]) else { unreachable!() };
    let subnet: IpNet = subnet.parse().unwrap();
    let gateway = match subnet {
        IpNet::V4(v4) => IpAddr::V4((u32::from(v4.network()) + 1).into()),
        IpNet::V6(_) => unreachable!(),
    };
    n.spec.ingress = ingress;
    n.ipam = Some(Ipam {
        driver: "default".into(),
        options: Default::default(),
        configs: vec![IpamConfig { subnet: Some(subnet), range: None, gateway: Some(gateway) }],
    });
    n.driver_state = Some(swarmalloc::DriverConfig {
        name: "overlay".into(),
        options: [(VXLAN_ID_LIST_OPTION.to_string(), vni.to_string())].into(),
    });
    Object::Network(n)
}

fn holding_task(id: &str, network: &str, address: &str, state: TaskState) -> Object {
    let Object::Task(mut t) = attach_task(id, network) else { unreachable!() };
    t.status.state = state;
    t.networks = vec![NetworkAttachment {
        network_id: NetworkId::new(network),
        addresses: vec![address.parse().unwrap()],
        aliases: Vec::new(),
        driver_attachment_opts: BTreeMap::new(),
    }];
    Object::Task(t)
}

/// A committed state full of conflicts (as a buggy old allocator could leave it): overlapping
/// subnets, a VXLAN id held twice, a port published twice, a VIP and a task on one address, a
/// live and a retired task on one address.
fn conflicting_objects() -> (ClusterConfig, Vec<Object>) {
    let mut svc1 = match service("s1", &["na"], vec![tcp(80, 30000)]) {
        Object::Service(s) => s,
        _ => unreachable!(),
    };
    svc1.endpoint = Some(swarmalloc::Endpoint {
        spec: svc1.spec.endpoint.clone().unwrap(),
        ports: vec![tcp(80, 30000)],
        virtual_ips: vec![VirtualIp { network_id: NetworkId::new("na"), addr: "10.0.0.3/24".parse().unwrap() }],
    });
    let mut svc2 = match service("s2", &[], vec![tcp(81, 30000)]) {
        Object::Service(s) => s,
        _ => unreachable!(),
    };
    svc2.endpoint = Some(swarmalloc::Endpoint {
        spec: svc2.spec.endpoint.clone().unwrap(),
        ports: vec![tcp(81, 30000)],
        virtual_ips: Vec::new(),
    });
    let objects = vec![
        allocated_network("na", "10.0.0.0/24", 4096, false),
        allocated_network("nb", "10.0.0.0/25", 4096, false),
        Object::Service(svc1),
        Object::Service(svc2),
        holding_task("t1", "na", "10.0.0.3/24", TaskState::Running),
        holding_task("t2", "na", "10.0.0.4/24", TaskState::Running),
        holding_task("t3", "na", "10.0.0.4/24", TaskState::Shutdown),
    ];
    (ClusterConfig::default(), objects)
}

/// For every order of the objects: restore builds the same engine, the same report and the same
/// next allocation pass; observing the objects one by one into an empty engine builds it too.
fn check_every_order(config: ClusterConfig, objects: Vec<Object>, expect_findings: bool) {
    let (reference, report) = Allocator::restore(config.clone(), objects.iter().map(Object::as_ref)).unwrap();
    assert_eq!(!report.findings.is_empty(), expect_findings, "findings: {:?}", report.findings);
    let pass = |engine: &Allocator, objects: &[Object]| -> Proposal {
        let mut tx = engine.begin();
        let mut sorted: Vec<&Object> = objects.iter().collect();
        sorted.sort_by_key(|o| o.id());
        let services: BTreeMap<ServiceId, &Service> = sorted
            .iter()
            .filter_map(|o| match o {
                Object::Service(s) => Some((s.id.clone(), s)),
                _ => None,
            })
            .collect();
        for object in &sorted {
            let _ = match object {
                Object::Network(n) => tx.allocate_network(n),
                Object::Service(s) => tx.allocate_service(s),
                Object::Task(t) => tx.allocate_task(t, t.service_id.as_ref().and_then(|id| services.get(id).copied())),
                Object::Node(n) => tx.allocate_node(n),
            };
        }
        tx.finish()
    };
    let reference_pass = pass(&reference, &objects);
    let mut indices: Vec<usize> = (0..objects.len()).collect();
    let mut count = 0usize;
    permutations(&mut indices, &mut |order| {
        count += 1;
        let ordered: Vec<&Object> = order.iter().map(|i| &objects[*i]).collect();
        let (restored, restored_report) =
            Allocator::restore(config.clone(), ordered.iter().map(|o| o.as_ref())).unwrap();
        if let Some(diff) = reference.diff(&restored) {
            panic!("order {order:?}: restore differs\n{diff}");
        }
        assert_eq!(restored_report, report, "order {order:?}: report");
        let mut observed = Allocator::new(config.clone()).unwrap();
        for object in &ordered {
            observed.observe(object.as_ref());
        }
        if let Some(diff) = reference.diff(&observed) {
            panic!("order {order:?}: observing one by one differs from restore\n{diff}");
        }
        assert_eq!(pass(&restored, &objects), reference_pass, "order {order:?}: next pass");
    });
    let factorial: usize = (1..=objects.len()).product();
    assert_eq!(count, factorial);
}

#[test]
fn restore_is_independent_of_order_clean_state() {
    let (config, objects) = clean_objects();
    assert_eq!(objects.len(), 6);
    check_every_order(config, objects, false);
}

#[test]
fn restore_is_independent_of_order_with_conflicts() {
    let (config, objects) = conflicting_objects();
    check_every_order(config, objects, true);
}
