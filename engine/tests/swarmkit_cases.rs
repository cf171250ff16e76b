//! The cases of SwarmKit's own allocator test suites, as tests of this engine.
//!
//! Source: moby/swarmkit at the `bump_20.10` branch (what Docker 20.10 embeds; master only where
//! a test exists there alone, marked "master"), `manager/allocator/{allocator_test.go,
//! allocator_linux_test.go, network_test.go}`, `manager/allocator/cnmallocator/{networkallocator_test.go,
//! portallocator_test.go}`, `manager/controlapi/{network_test.go,service_test.go}` for the
//! refusals the allocator relies on, and moby/libnetwork (`ipam`, `drivers/overlay/ovmanager`)
//! where it defines what SwarmKit's allocator does. Each test names the SwarmKit test and
//! sub-case it comes from. Expectations are SwarmKit's (which object gets what, what is refused,
//! what is kept on update), through the engine's API: a refused allocation is an `AllocError`
//! (SwarmKit logs it and retries, or the control API refuses the spec: `InvalidSpec`), "already
//! allocated" is `Outcome::Unchanged`, a new leader is `Allocator::restore` of the store.
//! Where SwarmKit's answer depends on Go map order, the property is asserted, not the value.
//! Where the engine differs on purpose (ARCHITECTURE.md), the comment names the difference and
//! the engine's answer is asserted.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use support::*;
use swarmalloc::*;

fn ok(errors: Vec<ObjectError>) {
    assert!(errors.is_empty(), "allocation errors: {errors:#?}");
}

fn error_of(errors: &[ObjectError], id: &ObjectId) -> AllocError {
    errors.iter().find(|e| &e.object == id).unwrap_or_else(|| panic!("no error for {id} in {errors:#?}")).error.clone()
}

fn no_error_for(errors: &[ObjectError], id: &ObjectId) {
    assert!(errors.iter().all(|e| &e.object != id), "unexpected error for {id}: {errors:#?}");
}

/// The ingress network as an earlier leader committed it.
fn allocated_ingress(id: &str, subnet: &str, vni: u32) -> Network {
    let mut n = allocated(id, subnet, vni);
    n.spec.ingress = true;
    n
}

/// A network as SwarmKit's restore tests store it: the subnet and its first address as gateway
/// in `IPAM`, and the given driver state (SwarmKit's tests often store an empty `DriverState`).
fn stored_ipam(id: &str, subnet: &str, driver_state: Option<DriverConfig>) -> Network {
    let mut n = allocated(id, subnet, 0);
    n.driver_state = driver_state;
    n
}

fn tcp(name: &str, target: u16, published: u16) -> PortConfig {
    port(name, Protocol::Tcp, target, published, PublishMode::Ingress)
}

fn udp(name: &str, target: u16, published: u16) -> PortConfig {
    port(name, Protocol::Udp, target, published, PublishMode::Ingress)
}

fn host(name: &str, protocol: Protocol, target: u16, published: u16) -> PortConfig {
    port(name, protocol, target, published, PublishMode::Host)
}

/// A service's published ports as (protocol, target, published), in stored order; none when
/// it has no endpoint.
fn ports_of(w: &World, service: &str) -> Vec<(Protocol, u16, u16)> {
    let endpoint = w.service(service).endpoint.as_ref();
    endpoint.map_or(Vec::new(), |e| e.ports.iter().map(|p| (p.protocol, p.target_port, p.published_port)).collect())
}

/// A service's VIPs as (network, address), in stored order; none when it has no endpoint.
fn vips_of(w: &World, service: &str) -> Vec<(String, String)> {
    let endpoint = w.service(service).endpoint.as_ref();
    endpoint
        .map_or(Vec::new(), |e| e.virtual_ips.iter().map(|v| (v.network_id.to_string(), v.addr.to_string())).collect())
}

fn attachment_networks(w: &World, task: &str) -> Vec<String> {
    w.task(task).networks.iter().map(|a| a.network_id.to_string()).collect()
}

fn subnet_contains(subnet: &str, addr: &str) -> bool {
    let subnet: IpNet = subnet.parse().expect("a subnet");
    let addr: IpNet = addr.parse().expect("an address with prefix");
    subnet.contains(&addr.addr()) && addr.prefix_len() == subnet.prefix_len()
}

fn overlaps(a: &str, b: &str) -> bool {
    let (a, b): (IpNet, IpNet) = (a.parse().expect("a subnet"), b.parse().expect("a subnet"));
    a.contains(&b) || b.contains(&a)
}

// =============================================================================================
// cnmallocator/networkallocator_test.go

/// TestNetworkDoubleAllocate: a network is allocated once; asking again allocates nothing
/// (SwarmKit's "network already allocated" error; here `Unchanged`, with no second claim).
#[test]
fn network_double_allocate() {
    let mut w = World::new();
    w.put(network("testID"));
    assert_eq!(w.allocate(&net_id("testID")), Ok(Outcome::Updated));
    let first = w.network("testID").clone();
    assert_eq!(w.allocate(&net_id("testID")), Ok(Outcome::Unchanged));
    assert_eq!(w.network("testID"), &first);
    // Twice in one transaction: one update.
    let mut w = World::new();
    w.put(network("testID"));
    let n = w.network("testID").clone();
    let mut tx = w.alloc.begin();
    assert_eq!(tx.allocate_network(&n), Ok(Outcome::Updated));
    assert_eq!(tx.allocate_network(&n), Ok(Outcome::Unchanged));
    assert_eq!(tx.finish().len(), 1);
}

/// TestAllocateEmptyConfig: a network without IPAM config gets exactly one config with a subnet,
/// a gateway and no range; a second allocator given the allocated networks in the other order
/// gives each the same subnet and gateway (here: restore keeps them and queues nothing).
#[test]
fn allocate_empty_config() {
    let mut w = World::new();
    w.put(network("testID1"));
    w.put(network("testID2"));
    ok(w.pass());
    for id in ["testID1", "testID2"] {
        let ipam = w.network(id).ipam.clone().expect("allocated");
        assert_eq!(ipam.configs.len(), 1, "{id}");
        assert_eq!(ipam.configs[0].range, None, "{id}");
        assert!(ipam.configs[0].subnet.is_some() && ipam.configs[0].gateway.is_some(), "{id}");
    }
    assert!(!overlaps(&w.subnets("testID1")[0], &w.subnets("testID2")[0]));
    let reversed: Vec<Object> = w.store.values().rev().cloned().collect();
    let (again, report) = World::restored(ClusterConfig::default(), reversed);
    assert!(report.findings.is_empty() && report.queue.is_empty(), "{report:#?}");
    for id in ["testID1", "testID2"] {
        assert_eq!(again.subnets(id), w.subnets(id));
        assert_eq!(again.gateways(id), w.gateways(id));
    }
}

/// TestAllocateWithOneSubnet: the spec's subnet is used as given, without a range; the gateway
/// is the first address (libnetwork's serial "gateway" request).
#[test]
fn allocate_with_one_subnet() {
    let mut w = World::new();
    w.put(with_subnets(network("testID"), &["192.168.1.0/24"]));
    ok(w.pass());
    let configs = w.network("testID").ipam.clone().unwrap().configs;
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].range, None);
    assert_eq!(w.subnets("testID"), ["192.168.1.0/24"]);
    assert_eq!(w.gateways("testID"), ["192.168.1.1"]);
}

/// TestAllocateWithOneSubnetGateway: the spec's gateway is kept.
#[test]
fn allocate_with_one_subnet_gateway() {
    let mut w = World::new();
    w.put(with_config(network("testID"), "192.168.1.0/24", None, Some("192.168.1.1")));
    ok(w.pass());
    assert_eq!(w.subnets("testID"), ["192.168.1.0/24"]);
    assert_eq!(w.gateways("testID"), ["192.168.1.1"]);
    assert_eq!(w.network("testID").ipam.clone().unwrap().configs[0].range, None);
}

/// TestAllocateWithOneSubnetInvalidGateway: a gateway outside the subnet is refused (the
/// control API refuses it too: TestValidateIPAMConfiguration), for good.
#[test]
fn allocate_with_one_subnet_invalid_gateway() {
    let mut w = World::new();
    w.put(with_config(network("testID"), "192.168.1.0/24", None, Some("192.168.2.1")));
    let error = error_of(&w.pass(), &net_id("testID"));
    assert!(matches!(error, AllocError::InvalidSpec { .. }) && error.to_string().contains("192.168.2.1"), "{error}");
    assert!(!w.network("testID").is_allocated());
}

/// TestAllocateWithTwoSubnetsNoGateway: two subnets, in config order, each with a gateway.
#[test]
fn allocate_with_two_subnets_no_gateway() {
    let mut w = World::new();
    w.put(with_subnets(network("testID"), &["192.168.1.0/24", "192.168.2.0/24"]));
    ok(w.pass());
    assert_eq!(w.subnets("testID"), ["192.168.1.0/24", "192.168.2.0/24"]);
    assert_eq!(w.gateways("testID"), ["192.168.1.1", "192.168.2.1"]);
    assert!(w.network("testID").ipam.clone().unwrap().configs.iter().all(|c| c.range.is_none()));
}

/// TestAllocateWithTwoSubnetsNoGateway, then a task and a VIP on that network: SwarmKit walks the
/// network's pools in Go map order and takes one address from the first with room, so which
/// subnet is random; the property is one address, inside one of the subnets. (The engine fills
/// the subnets in config order: ARCHITECTURE.md, deterministic rules.)
#[test]
fn two_subnets_one_address_per_task_and_vip() {
    let mut w = World::new();
    w.put(with_subnets(network("testID"), &["192.168.1.0/24", "192.168.2.0/24"]));
    w.put(service("s", &["testID"]));
    let mut t = task("t", Some("s"));
    t.spec.networks = vec!["testID".into()]; // as the orchestrator copies the service's task spec
    w.put(t);
    ok(w.pass());
    let inside = |addr: &str| ["192.168.1.0/24", "192.168.2.0/24"].iter().any(|s| subnet_contains(s, addr));
    let vip = w.vip("s", "testID").unwrap();
    assert!(inside(&vip), "{vip}");
    let addrs = w.addrs("t", "testID");
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(inside(&addrs[0]) && addrs[0] != vip, "{addrs:?}");
}

/// TestFree: a freed network's subnet and gateway can be allocated again.
#[test]
fn free() {
    let mut w = World::new();
    let spec = with_config(network("testID"), "192.168.1.0/24", None, Some("192.168.1.1"));
    w.put(spec.clone());
    ok(w.pass());
    w.delete(net_id("testID"));
    w.put(spec);
    ok(w.pass());
    assert_eq!(w.subnets("testID"), ["192.168.1.0/24"]);
    assert_eq!(w.gateways("testID"), ["192.168.1.1"]);
}

/// TestAllocateTaskFree: a task on two networks gets one address in each subnet; a second
/// allocator sees the same addresses whatever the order it meets the tasks in; freeing a task
/// frees its addresses, and a later task gets addresses in the subnets again.
#[test]
fn allocate_task_free() {
    let mut w = World::new();
    w.put(with_config(attachable("testID1"), "192.168.1.0/24", None, Some("192.168.1.1")));
    w.put(with_config(attachable("testID2"), "192.168.2.0/24", None, Some("192.168.2.1")));
    for id in ["task1", "task2"] {
        let mut t = task(id, None);
        t.spec.networks = vec!["testID1".into(), "testID2".into()];
        w.put(t);
    }
    ok(w.pass());
    for id in ["task1", "task2"] {
        let (a1, a2) = (w.addrs(id, "testID1"), w.addrs(id, "testID2"));
        assert_eq!((a1.len(), a2.len()), (1, 1), "{id}");
        assert!(subnet_contains("192.168.1.0/24", &a1[0]) && subnet_contains("192.168.2.0/24", &a2[0]), "{id}");
    }
    assert_ne!(w.addrs("task1", "testID1"), w.addrs("task2", "testID1"));
    let reversed: Vec<Object> = w.store.values().rev().cloned().collect();
    let (again, report) = World::restored(ClusterConfig::default(), reversed);
    assert!(report.findings.is_empty() && report.queue.is_empty(), "{report:#?}");
    for id in ["task1", "task2"] {
        for net in ["testID1", "testID2"] {
            assert_eq!(
                again.holder(net, w.addrs(id, net)[0].split('/').next().unwrap()),
                Some(Holder::Task(id.into()))
            );
        }
    }
    // DeallocateTask: the task ends and is removed; its addresses are free.
    let freed: Vec<String> = ["testID1", "testID2"].iter().map(|n| w.addrs("task1", n)[0].clone()).collect();
    w.delete(task_id("task1"));
    for (net, addr) in ["testID1", "testID2"].iter().zip(&freed) {
        assert_eq!(w.holder(net, addr.split('/').next().unwrap()), None);
    }
    // "Try allocation after free": a new task is allocated in both subnets.
    let mut t = task("task3", None);
    t.spec.networks = vec!["testID1".into(), "testID2".into()];
    w.put(t);
    ok(w.pass());
    assert!(subnet_contains("192.168.1.0/24", &w.addrs("task3", "testID1")[0]));
    assert!(subnet_contains("192.168.2.0/24", &w.addrs("task3", "testID2")[0]));
}

/// TestAllocateService: a service with two dynamic ports and one network gets two published
/// ports in 30000..=32767 and a VIP in the network's subnet; the endpoint records the spec.
/// The ports are ingress-mode (the default), so the full allocator also gives the ingress a VIP
/// (`allocateService`), and without an ingress network waits ("ingress network is missing").
#[test]
fn allocate_service() {
    let mut w = World::new();
    w.put(network("testID"));
    let s = with_ports(service("testID1", &["testID"]), vec![tcp("http", 80, 0), tcp("https", 443, 0)]);
    w.put(s.clone());
    let error = error_of(&w.pass(), &svc_id("testID1"));
    assert!(error.is_retryable() && error.to_string().contains("ingress"), "{error}");
    w.put(ingress("ingress"));
    ok(w.pass());
    let ports = ports_of(&w, "testID1");
    assert_eq!(ports.len(), 2);
    assert!(ports.iter().all(|(_, _, p)| (30000..=32767).contains(p)), "{ports:?}");
    assert_ne!(ports[0].2, ports[1].2);
    let subnet = w.subnets("testID")[0].clone();
    let vip = w.vip("testID1", "testID").expect("a VIP on the network");
    assert!(subnet_contains(&subnet, &vip), "{vip} in {subnet}");
    assert_eq!(w.vip_networks("testID1").len(), 2, "the network's VIP and the ingress VIP");
    assert_eq!(w.service("testID1").endpoint.as_ref().unwrap().spec, s.spec.endpoint.unwrap());
}

/// TestAllocateServiceUserDefinedPorts: the same number published on TCP and UDP is two ports.
#[test]
fn allocate_service_user_defined_ports() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("testID1", &[]), vec![tcp("some_tcp", 1234, 1234), udp("some_udp", 1234, 1234)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234), (Protocol::Udp, 1234, 1234)]);
}

/// TestAllocateServiceConflictingUserDefinedPorts (cnmallocator and the master suite): two ports
/// publishing TCP 1234 are refused and the service is not written; once the user changes the
/// second to 1235 the service is allocated with both. (The control API refuses such a spec
/// too: TestValidateEndpointSpec.)
#[test]
fn allocate_service_conflicting_user_defined_ports() {
    let mut w = World::new();
    w.put(allocated_ingress("ingress-nw-id", "10.0.0.0/24", 4096));
    w.put(with_ports(service("testID1", &[]), vec![tcp("some_tcp", 1234, 1234), tcp("some_other_tcp", 1234, 1234)]));
    let error = error_of(&w.pass(), &svc_id("testID1"));
    assert!(matches!(error, AllocError::InvalidSpec { .. }) && error.to_string().contains("1234"), "{error}");
    assert_eq!(w.service("testID1").endpoint, None, "the service is not updated");
    let mut s = w.service("testID1").clone();
    let ports = &mut s.spec.endpoint.as_mut().unwrap().ports;
    ports[1].target_port = 1235;
    ports[1].published_port = 1235;
    w.put(s);
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234), (Protocol::Tcp, 1235, 1235)]);
}

/// TestDeallocateServiceAllocate (cnmallocator, and the master suite's version where one store
/// transaction deletes testID1 and creates testID2 with the same port): the port of a deleted
/// service is free for the next one, which also gets its ingress VIP.
#[test]
fn deallocate_service_allocate() {
    let new_svc = |id: &str| with_ports(service(id, &[]), vec![tcp("some_tcp", 1234, 1234)]);
    let mut w = World::new();
    w.put(allocated_ingress("ingress-nw-id", "10.0.0.0/24", 4096));
    w.put(new_svc("testID1"));
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234)]);
    assert_eq!(w.vip_networks("testID1"), ["ingress-nw-id"]);
    w.delete(svc_id("testID1"));
    w.put(new_svc("testID2"));
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID2"), [(Protocol::Tcp, 1234, 1234)]);
    assert_eq!(w.vip_networks("testID2"), ["ingress-nw-id"]);
}

/// TestDeallocateServiceAllocateIngressMode: the same with an explicit ingress-mode port: one
/// port and one (ingress) VIP, freed with the service, allocated again for the next one.
#[test]
fn deallocate_service_allocate_ingress_mode() {
    let mut w = World::new();
    w.put(ingress("testNetID1"));
    let s =
        with_ports(service("testID1", &[]), vec![port("some_tcp", Protocol::Tcp, 1234, 1234, PublishMode::Ingress)]);
    w.put(s.clone());
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234)]);
    assert_eq!(w.vip_networks("testID1"), ["testNetID1"]);
    let vip = w.vip("testID1", "testNetID1").unwrap();
    w.delete(svc_id("testID1"));
    assert_eq!(w.holder("testNetID1", vip.split('/').next().unwrap()), None, "the VIP is freed with the service");
    w.put(s);
    ok(w.pass());
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234)]);
    assert_eq!(w.vip_networks("testID1"), ["testNetID1"]);
}

/// TestServiceUpdate: a second allocator allocating the already allocated service keeps its
/// dynamic port (here: restore claims it and the service is unchanged); changing that port to a
/// fixed 1235 publishes 1234 and 1235.
#[test]
fn service_update() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("testID1", &[]), vec![tcp("some_tcp", 1234, 1234), tcp("some_other_tcp", 1235, 0)]));
    ok(w.pass());
    let ports = ports_of(&w, "testID1");
    assert_eq!(ports[0], (Protocol::Tcp, 1234, 1234));
    assert_ne!(ports[1].2, 0);
    let allocated_port = ports[1].2;
    let report = w.restore();
    assert!(report.is_clean() && report.queue.is_empty(), "{report:#?}");
    assert_eq!(w.allocate(&svc_id("testID1")), Ok(Outcome::Unchanged));
    assert_eq!(ports_of(&w, "testID1")[1].2, allocated_port);
    let mut s = w.service("testID1").clone();
    s.spec.endpoint.as_mut().unwrap().ports[1].published_port = 1235;
    w.put(s);
    assert_eq!(w.allocate(&svc_id("testID1")), Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "testID1"), [(Protocol::Tcp, 1234, 1234), (Protocol::Tcp, 1235, 1235)]);
}

/// TestServiceNetworkUpdate: a VIP per network of the spec, following network additions and
/// removals; a VIP whose network stays keeps its address (SwarmKit re-requests it).
#[test]
fn service_network_update() {
    let mut w = World::new();
    w.put(network("testID1"));
    w.put(network("testID2"));
    let mut s = service("testID1", &["testID1"]);
    s.spec.endpoint = Some(EndpointSpec { mode: ResolutionMode::Vip, ports: Vec::new() });
    w.put(s);
    ok(w.pass());
    assert_eq!(w.vip_networks("testID1"), ["testID1"]);
    let kept = w.vip("testID1", "testID1").unwrap();
    let update = |w: &mut World, networks: &[&str]| {
        let mut s = w.service("testID1").clone();
        s.spec.task_networks = networks.iter().map(|n| NetworkAttachmentConfig::to(*n)).collect();
        w.put(s);
        assert_eq!(w.allocate(&svc_id("testID1")), Ok(Outcome::Updated), "{networks:?}");
        assert_eq!(w.allocate(&svc_id("testID1")), Ok(Outcome::Unchanged), "{networks:?}");
    };
    update(&mut w, &["testID1", "testID2"]);
    assert_eq!(w.vip_networks("testID1"), ["testID1", "testID2"]);
    assert_eq!(w.vip("testID1", "testID1").unwrap(), kept);
    update(&mut w, &["testID1"]);
    assert_eq!(w.vip_networks("testID1"), ["testID1"]);
    assert_eq!(w.vip("testID1", "testID1").unwrap(), kept);
    update(&mut w, &[]);
    assert_eq!(vips_of(&w, "testID1"), []);
    update(&mut w, &["testID2"]);
    assert_eq!(w.vip_networks("testID1"), ["testID2"]);
}

// =============================================================================================
// cnmallocator/portallocator_test.go

/// Allocates `old` for service "s" (with an allocated ingress), then updates its spec ports to
/// `new` and allocates again; returns the world and the second outcome.
fn port_update(old: Vec<PortConfig>, new: Vec<PortConfig>) -> (World, Result<Outcome, AllocError>) {
    let mut w = World::new();
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("s", &[]), old));
    ok(w.pass());
    let mut s = w.service("s").clone();
    s.spec.endpoint.get_or_insert_with(EndpointSpec::default).ports = new;
    w.put(s);
    let outcome = w.allocate(&svc_id("s"));
    (w, outcome)
}

/// Published port by (name, protocol, target), for sticky-port checks independent of order.
fn published_by_key(w: &World, service: &str) -> BTreeMap<(String, Protocol, u16), u16> {
    let endpoint = w.service(service).endpoint.as_ref();
    endpoint.map_or(BTreeMap::new(), |e| {
        e.ports.iter().map(|p| ((p.name.clone(), p.protocol, p.target_port), p.published_port)).collect()
    })
}

/// TestReconcilePortConfigs: what a service keeps of its allocated ports when its spec changes.
#[test]
fn reconcile_port_configs() {
    // Case 1: no endpoint yet: the spec's port.
    let (w, outcome) = port_update(vec![], vec![tcp("test1", 10000, 10000)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "s"), [(Protocol::Tcp, 10000, 10000)]);
    // Case 2: a port added next to an allocated one: both.
    let (w, outcome) =
        port_update(vec![tcp("test1", 10000, 10000)], vec![tcp("test1", 10000, 10000), tcp("test2", 10001, 10001)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "s"), [(Protocol::Tcp, 10000, 10000), (Protocol::Tcp, 10001, 10001)]);
    // Case 3: the old port config (test2, target 10001) published 10000; the new one (test1,
    // target 10000) publishes 10000 too: the service gets it, the old config is gone.
    let (w, outcome) = port_update(vec![tcp("test2", 10001, 10000)], vec![tcp("test1", 10000, 10000)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(published_by_key(&w, "s"), BTreeMap::from([(("test1".into(), Protocol::Tcp, 10000), 10000)]));
    // Case 4: two dynamic ports whose allocated states are stored in the other order: each keeps
    // its own number (SwarmKit lists them in spec order; the numbers are what matter).
    let (w, _) = port_update(
        vec![tcp("test2", 10001, 0), tcp("test1", 10000, 0)],
        vec![tcp("test1", 10000, 0), tcp("test2", 10001, 0)],
    );
    let mut before = World::new();
    before.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    before.put(with_ports(service("s", &[]), vec![tcp("test2", 10001, 0), tcp("test1", 10000, 0)]));
    ok(before.pass());
    assert_eq!(published_by_key(&w, "s"), published_by_key(&before, "s"));
    assert_eq!(published_by_key(&w, "s").len(), 2);
}

/// TestAllocateServicePorts: dropping the endpoint spec frees the service's ports (case 1);
/// changing the published port publishes the new one (case 2); a second service asking for a
/// port the first holds is refused (case 3).
#[test]
fn allocate_service_ports() {
    // Case 1: `Spec.Endpoint` nil while the endpoint holds 10000: nothing is kept.
    let mut w = World::new();
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("a", &[]), vec![tcp("test1", 10000, 10000)]));
    ok(w.pass());
    let mut s = w.service("a").clone();
    s.spec.endpoint = None;
    w.put(s);
    ok(w.pass());
    assert_eq!(ports_of(&w, "a"), []);
    w.put(with_ports(service("b", &[]), vec![tcp("test1", 10000, 10000)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "b"), [(Protocol::Tcp, 10000, 10000)], "10000 was freed");
    // Case 2: 10000 -> 10001.
    let (mut w, outcome) = port_update(vec![tcp("test1", 10000, 10000)], vec![tcp("test1", 10000, 10001)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "s"), [(Protocol::Tcp, 10000, 10001)]);
    // Case 3: another service with the same spec: 10001 is in use.
    w.put(with_ports(service("other", &[]), vec![tcp("test1", 10000, 10001)]));
    let error = error_of(&w.pass(), &svc_id("other"));
    assert!(matches!(&error, AllocError::InUse { holder, .. } if holder.contains('s')), "{error}");
}

/// TestHostPublishPortsNeedUpdate: host-mode ports are not reserved, but a change to them is an
/// update of the service's endpoint; an unchanged one is not.
#[test]
fn host_publish_ports_need_update() {
    struct Case {
        name: &'static str,
        old: Vec<PortConfig>,
        new: Vec<PortConfig>,
        updated: bool,
    }
    let cases = [
        Case { name: "NonHostModePort", old: vec![], new: vec![tcp("test1", 10000, 10000)], updated: true },
        Case {
            name: "PublishModeDifferent",
            old: vec![tcp("test1", 10000, 10000)],
            new: vec![host("test1", Protocol::Tcp, 10000, 10000)],
            updated: true,
        },
        Case {
            name: "NothingChanged",
            old: vec![host("test1", Protocol::Tcp, 10000, 10000)],
            new: vec![host("test1", Protocol::Tcp, 10000, 10000)],
            updated: false,
        },
        Case {
            name: "PublishPortNotSpecified",
            old: vec![host("test4", Protocol::Udp, 99, 0)],
            new: vec![host("test4", Protocol::Udp, 99, 0)],
            updated: false,
        },
        Case {
            name: "OnePublishPortSpecifiedButDone (to do)",
            old: vec![host("test5", Protocol::Udp, 99, 0), host("test5", Protocol::Tcp, 99, 0)],
            new: vec![host("test5", Protocol::Udp, 99, 0), host("test5", Protocol::Tcp, 99, 30099)],
            updated: true,
        },
        Case {
            name: "OnePublishPortSpecifiedButDone (done)",
            old: vec![host("test6", Protocol::Udp, 99, 0), host("test6", Protocol::Tcp, 99, 30099)],
            new: vec![host("test6", Protocol::Udp, 99, 0), host("test6", Protocol::Tcp, 99, 30099)],
            updated: false,
        },
    ];
    for case in cases {
        let (w, outcome) = port_update(case.old, case.new.clone());
        let expected = if case.updated { Outcome::Updated } else { Outcome::Unchanged };
        assert_eq!(outcome, Ok(expected), "{}", case.name);
        let endpoint = w.service("s").endpoint.clone().unwrap_or_default();
        let key = |p: &PortConfig| (p.name.clone(), p.protocol, p.target_port, p.published_port, p.publish_mode);
        let stored: BTreeSet<_> = endpoint.ports.iter().map(key).collect();
        let wanted: BTreeSet<_> = case.new.iter().map(key).collect();
        assert_eq!(stored, wanted, "{}: the endpoint follows the spec", case.name);
    }
    // PublishModeDifferent: the ingress port is released when it becomes a host port.
    let (mut w, _) = port_update(vec![tcp("test1", 10000, 10000)], vec![host("test1", Protocol::Tcp, 10000, 10000)]);
    w.put(with_ports(service("other", &[]), vec![tcp("x", 80, 10000)]));
    ok(w.pass());
    // Host-mode ports are never reserved: 30099 stays free for dynamic ingress ports.
    let mut w = World::with_config(ClusterConfig {
        dynamic_port_range: Range { min: 30099, max: 30100 },
        ..Default::default()
    });
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("h", &[]), vec![host("test6", Protocol::Tcp, 99, 30099)]));
    w.put(with_ports(service("i", &[]), vec![tcp("dyn", 80, 0)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "i"), [(Protocol::Tcp, 80, 30099)]);
}

/// A restored store with an allocated ingress and service "s" whose spec ports are `spec`
/// (`None`: no endpoint spec) and whose stored endpoint is `stored` (`None`: no endpoint). A
/// stored endpoint with an ingress-mode port has the ingress VIP the service would have.
fn restored_ports(spec: Option<Vec<PortConfig>>, stored: Option<Vec<PortConfig>>) -> World {
    let mut s = service("s", &[]);
    s.spec.endpoint = spec.map(|ports| EndpointSpec { mode: ResolutionMode::Vip, ports });
    s.endpoint = stored.map(|ports| {
        let ingress = ports.iter().any(|p| p.publish_mode == PublishMode::Ingress);
        Endpoint {
            spec: s.spec.endpoint.clone().unwrap_or_default(),
            virtual_ips: if ingress {
                vec![VirtualIp { network_id: "ingress".into(), addr: "10.0.0.2/24".parse().unwrap() }]
            } else {
                Vec::new()
            },
            ports,
        }
    });
    let objects = vec![Object::Network(allocated_ingress("ingress", "10.0.0.0/24", 4096)), Object::Service(s)];
    World::restored(ClusterConfig::default(), objects).0
}

type Ports = Vec<PortConfig>;

/// TestIsPortsAllocated: whether a stored service's ports are allocated as its spec asks
/// (`Unchanged`) or must be allocated again (`Updated`), case by case.
#[test]
fn is_ports_allocated() {
    // (sub-case, spec ports, stored ports, allocated)
    let cases: Vec<(&str, Option<Ports>, Option<Ports>, bool)> = vec![
        ("NilSpec", Some(vec![tcp("test1", 10000, 10000)]), None, false),
        ("NilEndpoint", None, Some(vec![tcp("test2", 10001, 10000)]), false),
        (
            "DifferentLengths",
            Some(vec![tcp("test1", 10000, 10000), tcp("test2", 10001, 10001)]),
            Some(vec![tcp("test2", 10001, 10000)]),
            false,
        ),
        ("DifferentTargetPort", Some(vec![tcp("test1", 10001, 10000)]), Some(vec![tcp("test1", 10000, 10000)]), false),
        (
            "DifferentPublishedPort",
            Some(vec![tcp("test1", 10000, 10001)]),
            Some(vec![tcp("test1", 10000, 10000)]),
            false,
        ),
        ("NotYetAssignedPublishedPort", Some(vec![tcp("test1", 10000, 0)]), Some(vec![tcp("test1", 10000, 0)]), false),
        ("NonzeroPublishedPort", Some(vec![tcp("test1", 10000, 10000)]), Some(vec![tcp("test1", 10000, 10000)]), true),
        (
            "AlreadyAssignedPublishedPort",
            Some(vec![tcp("test1", 10000, 0)]),
            Some(vec![tcp("test1", 10000, 10000)]),
            true,
        ),
        (
            "MultiplePublishedPort",
            Some(vec![tcp("", 80, 5000), tcp("", 80, 5001), tcp("", 80, 0), tcp("", 80, 0)]),
            Some(vec![tcp("", 80, 5000), tcp("", 80, 5001), tcp("", 80, 30000), tcp("", 80, 30001)]),
            true,
        ),
        (
            "DifferentTargetPortHostMode",
            Some(vec![host("", Protocol::Tcp, 99, 0)]),
            Some(vec![host("", Protocol::Tcp, 77, 0)]),
            false,
        ),
    ];
    for (name, spec, stored, allocated) in cases {
        let mut w = restored_ports(spec.clone(), stored.clone());
        let expected = if allocated { Outcome::Unchanged } else { Outcome::Updated };
        assert_eq!(w.allocate(&svc_id("s")), Ok(expected), "{name}");
        if allocated {
            assert_eq!(ports_of(&w, "s").len(), stored.unwrap().len(), "{name}");
        }
        // Allocated now, whatever it was.
        assert_eq!(w.allocate(&svc_id("s")), Ok(Outcome::Unchanged), "{name}: allocated after one pass");
        let published = ports_of(&w, "s");
        let spec = spec.unwrap_or_default();
        assert_eq!(published.len(), spec.len(), "{name}");
        for p in spec.iter().filter(|p| p.published_port != 0) {
            assert!(
                published.contains(&(p.protocol, p.target_port, p.published_port)),
                "{name}: {p:?} in {published:?}"
            );
        }
    }
}

/// TestAllocate (portallocator): a user-chosen port in the dynamic range is taken from the
/// dynamic space too, so it is refused to a second service and never handed out as a dynamic
/// port; a port outside the range is refused to a second service as well.
#[test]
fn port_space_allocate() {
    let mut w = World::with_config(ClusterConfig {
        dynamic_port_range: Range { min: 30000, max: 30001 },
        ..Default::default()
    });
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("a", &[]), vec![tcp("test1", 30000, 30000)]));
    ok(w.pass());
    w.put(with_ports(service("b", &[]), vec![tcp("test1", 30000, 30000)]));
    w.put(with_ports(service("c", &[]), vec![tcp("test2", 30000, 10000)]));
    let errors = w.pass();
    assert!(matches!(error_of(&errors, &svc_id("b")), AllocError::InUse { .. }));
    no_error_for(&errors, &svc_id("c"));
    w.put(with_ports(service("d", &[]), vec![tcp("test3", 30000, 10000)]));
    w.put(with_ports(service("e", &[]), vec![tcp("dyn", 80, 0)]));
    let errors = w.pass();
    assert!(matches!(error_of(&errors, &svc_id("d")), AllocError::InUse { .. }));
    assert_eq!(ports_of(&w, "e"), [(Protocol::Tcp, 80, 30001)], "30000 is not a free dynamic port");
}

// =============================================================================================
// network_test.go, allocator_linux_test.go

/// TestUpdatePortsInHostPublishMode: a host-mode port changed from 15000 to 10000 is rewritten
/// in the endpoint's ports and in its copy of the spec.
#[test]
fn update_ports_in_host_publish_mode() {
    let (w, outcome) = port_update(vec![host("", Protocol::Tcp, 80, 15000)], vec![host("", Protocol::Tcp, 80, 10000)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    let endpoint = w.service("s").endpoint.clone().unwrap();
    assert_eq!(endpoint.ports.len(), 1);
    assert_eq!(endpoint.ports[0].published_port, 10000);
    assert_eq!(endpoint.spec.ports[0].published_port, 10000);
}

/// TestIPAMNotNil: node-local networks (the predefined bridge, a swarm macvlan network) are
/// allocated without subnets but with a non-nil IPAM and the driver's name, next to the ingress.
#[test]
fn ipam_not_nil() {
    let mut w = World::new();
    w.put(ingress("ingress-nw-id"));
    let mut p = with_driver(network("one_unIque_id"), "bridge");
    p.spec.labels.insert(PREDEFINED_NETWORK_LABEL.into(), "true".into());
    w.put(p);
    w.put(with_driver(network("another_unIque_id"), "macvlan"));
    ok(w.pass());
    assert!(w.network("ingress-nw-id").is_allocated());
    for (id, driver) in [("one_unIque_id", "bridge"), ("another_unIque_id", "macvlan")] {
        let n = w.network(id);
        assert!(n.ipam.is_some(), "{id}");
        assert!(n.ipam.as_ref().unwrap().configs.is_empty(), "{id}: no subnets for a node-local network");
        assert_eq!(n.driver_state.as_ref().unwrap().name, driver);
    }
}

// =============================================================================================
// allocator_test.go (bump_20.10; the master suite's copies where they differ)

/// The objects TestAllocator puts in the store before the allocator starts.
fn test_allocator_store() -> World {
    let mut w = World::new();
    w.put(ingress("ingress-nw-id"));
    w.put(network("testID1"));
    let mut s1 = with_ports(service("testServiceID1", &["testID1"]), vec![tcp("portName", 8000, 8001)]);
    s1.spec.endpoint.as_mut().unwrap().mode = ResolutionMode::Vip;
    w.put(s1);
    // A task with its attachment already built and no service; its desired state is unset (NEW).
    let mut t1 = task("testTaskID1", None);
    t1.desired_state = TaskState::New;
    t1.networks = vec![attached("testID1", &[])];
    w.put(t1);
    w.put(task("testTaskIDPreInit", Some("testServiceID1")));
    // The predefined node-local network with a DNSRR service and a task.
    let mut p = with_driver(network("one_unIque_id"), "bridge");
    p.spec.labels.insert(PREDEFINED_NETWORK_LABEL.into(), "true".into());
    w.put(p);
    w.put(dnsrr(service("predServiceID1", &["one_unIque_id"])));
    let mut tp1 = task("predTaskID1", None);
    tp1.networks = vec![attached("one_unIque_id", &[])];
    w.put(tp1);
    // A swarm-scope node-local (macvlan) network with a DNSRR service and a task.
    w.put(with_driver(network("another_unIque_id"), "macvlan"));
    w.put(dnsrr(service("predServiceID2", &["another_unIque_id"])));
    let mut tp2 = task("predTaskID2", None);
    tp2.networks = vec![attached("another_unIque_id", &[])];
    w.put(tp2);
    w
}

/// What TestAllocator's `isValidNetwork` checks: one config, a subnet, a gateway, no range.
fn is_valid_network(w: &World, id: &str) {
    let ipam = w.network(id).ipam.clone().unwrap_or_else(|| panic!("{id} not allocated"));
    assert_eq!(ipam.configs.len(), 1, "{id}");
    assert_eq!(ipam.configs[0].range, None, "{id}");
    assert!(ipam.configs[0].subnet.is_some() && ipam.configs[0].gateway.is_some(), "{id}");
}

/// What TestAllocator's `isValidTask` checks: PENDING, one address on its first attachment, and
/// a copy of its service's endpoint.
fn is_valid_task(w: &World, id: &str) {
    let t = w.task(id);
    assert_eq!(t.status.state, TaskState::Pending, "{id}");
    if let Some(first) = t.networks.first() {
        assert_eq!(first.addresses.len(), 1, "{id}: {:?}", t.networks);
    }
    if let Some(service) = t.service_id.as_ref().and_then(|s| w.store.get(&svc_id(s.as_str()))) {
        let Object::Service(service) = service else { unreachable!() };
        assert_eq!(t.endpoint, service.endpoint, "{id}");
    }
}

/// TestAllocator, objects present at start: the networks are allocated, both tasks are PENDING
/// with valid attachments (the service task's first one on the ingress), the service publishes
/// 8001 with a VIP on the ingress and on its network, and nothing is allocated for the node-local
/// networks: their tasks keep their attachments without addresses, their DNSRR services get no
/// VIP.
#[test]
fn allocator_objects_present_at_start() {
    let mut w = test_allocator_store();
    ok(w.settle());
    is_valid_network(&w, "ingress-nw-id");
    is_valid_network(&w, "testID1");
    is_valid_task(&w, "testTaskID1");
    is_valid_task(&w, "testTaskIDPreInit");
    // Which networks follow the ingress for this task is issue 15 point 11 (its own spec names
    // none; SwarmKit falls back to the service's deprecated `Spec.Networks` only).
    assert_eq!(attachment_networks(&w, "testTaskIDPreInit")[0], "ingress-nw-id");
    assert_eq!(ports_of(&w, "testServiceID1"), [(Protocol::Tcp, 8000, 8001)]);
    assert_eq!(w.vip_networks("testServiceID1"), ["ingress-nw-id", "testID1"]);
    for (t, n) in [("predTaskID1", "one_unIque_id"), ("predTaskID2", "another_unIque_id")] {
        assert_eq!(attachment_networks(&w, t), [n]);
        assert!(w.addrs(t, n).is_empty(), "no address on node-local network {n}");
    }
    for s in ["predServiceID1", "predServiceID2"] {
        assert_eq!(vips_of(&w, s), [], "{s}");
    }
}

/// TestAllocator, objects created later: a network; a service whose networks are in the
/// deprecated `Spec.Networks` (with an empty endpoint spec) gets its VIP there and its task gets
/// the attachment from it; a task's own `Spec.Networks` win over the service's; a task without
/// networks or service goes PENDING; deleting the service frees its VIP.
#[test]
fn allocator_objects_created_later() {
    let mut w = test_allocator_store();
    ok(w.settle());
    w.put(network("testID2"));
    ok(w.pass());
    is_valid_network(&w, "testID2");
    let mut s2 = service("testServiceID2", &[]);
    s2.spec.networks = vec!["testID2".into()];
    s2.spec.endpoint = Some(EndpointSpec::default());
    w.put(s2);
    ok(w.pass());
    assert_eq!(w.vip_networks("testServiceID2"), ["testID2"]);
    w.put(task("testTaskID2", Some("testServiceID2")));
    ok(w.pass());
    is_valid_task(&w, "testTaskID2");
    assert_eq!(attachment_networks(&w, "testTaskID2"), ["testID2"]);
    let mut t5 = task("testTaskID5", Some("testServiceID2"));
    t5.spec.networks = vec!["testID2".into()];
    w.put(t5);
    ok(w.pass());
    is_valid_task(&w, "testTaskID5");
    assert_eq!(attachment_networks(&w, "testTaskID5"), ["testID2"]);
    let vip = w.vip("testServiceID2", "testID2").unwrap();
    w.delete(svc_id("testServiceID2"));
    assert_eq!(w.holder("testID2", vip.split('/').next().unwrap()), None);
    w.put(task("testTaskID4", None));
    ok(w.pass());
    is_valid_task(&w, "testTaskID4");
    assert!(w.task("testTaskID4").networks.is_empty());
}

/// TestAllocator: an update of an allocated network or task that changes nothing the allocator
/// owns is not followed by an allocator write (`watchNetwork`/`watchTask` expect a timeout).
#[test]
fn allocator_unchanged_updates_are_not_rewritten() {
    let mut w = test_allocator_store();
    ok(w.settle());
    let n = w.network("testID1").clone();
    w.put(n);
    assert_eq!(w.allocate(&net_id("testID1")), Ok(Outcome::Unchanged));
    let t = w.task("testTaskIDPreInit").clone();
    w.put(t);
    assert_eq!(w.allocate(&task_id("testTaskIDPreInit")), Ok(Outcome::Unchanged));
    let before = w.store.clone();
    ok(w.pass());
    assert_eq!(w.store, before);
}

/// TestAllocator: "updating service which is already allocated with no endpointSpec": the
/// service is rewritten without its published port and ingress VIP, and keeps a VIP on its
/// network.
#[test]
fn allocator_service_loses_its_endpoint_spec() {
    let mut w = test_allocator_store();
    ok(w.settle());
    let mut s = w.service("testServiceID1").clone();
    s.spec.endpoint = None;
    w.put(s);
    assert_eq!(w.allocate(&svc_id("testServiceID1")), Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "testServiceID1"), []);
    assert_eq!(w.vip_networks("testServiceID1"), ["testID1"]);
    w.put(with_ports(service("other", &[]), vec![tcp("", 80, 8001)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "other"), [(Protocol::Tcp, 80, 8001)], "8001 was freed");
}

/// TestAllocator: two networks pinning VXLAN id 328 (below the automatic range): the first gets
/// it, the second is not allocated and a task attached to it waits; deleting the first lets the
/// second and then its task be allocated.
#[test]
fn allocator_conflicting_vxlan_ids() {
    let mut w = test_allocator_store();
    ok(w.settle());
    w.put(with_vnis(network("testID4"), "328"));
    ok(w.pass());
    is_valid_network(&w, "testID4");
    assert_eq!(w.vnis("testID4"), "328");
    w.put(with_vnis(network("testID5"), "328"));
    let error = error_of(&w.pass(), &net_id("testID5"));
    assert!(matches!(error, AllocError::InUse { .. }) && error.to_string().contains("328"), "{error}");
    assert!(!w.network("testID5").is_allocated());
    let mut t6 = task("testTaskID6", None);
    t6.networks = vec![attached("testID5", &[])];
    w.put(t6);
    let errors = w.pass();
    assert!(error_of(&errors, &task_id("testTaskID6")).is_retryable());
    assert_eq!(w.state("testTaskID6"), TaskState::New);
    w.delete(net_id("testID4"));
    ok(w.settle());
    is_valid_network(&w, "testID5");
    assert_eq!(w.vnis("testID5"), "328");
    is_valid_task(&w, "testTaskID6");
}

/// TestAllocator: two services publishing 8080 (plus a host-mode port): the second is not
/// allocated and its task waits; deleting the first lets both be allocated.
#[test]
fn allocator_conflicting_ports() {
    let mut w = test_allocator_store();
    ok(w.settle());
    let ports = vec![tcp("http", 80, 8080), host("http", Protocol::Tcp, 80, 0)];
    w.put(with_ports(service("testServiceID3", &[]), ports.clone()));
    ok(w.pass());
    w.put(with_ports(service("testServiceID4", &[]), ports));
    let error = error_of(&w.pass(), &svc_id("testServiceID4"));
    assert!(matches!(error, AllocError::InUse { .. }) && error.to_string().contains("8080"), "{error}");
    assert_eq!(w.service("testServiceID4").endpoint, None);
    w.put(task("testTaskID7", Some("testServiceID4")));
    assert!(error_of(&w.pass(), &task_id("testTaskID7")).is_retryable());
    assert_eq!(w.state("testTaskID7"), TaskState::New);
    w.delete(svc_id("testServiceID3"));
    ok(w.settle());
    assert_eq!(ports_of(&w, "testServiceID4"), [(Protocol::Tcp, 80, 8080), (Protocol::Tcp, 80, 0)]);
    is_valid_task(&w, "testTaskID7");
}

/// The network TestNoDuplicateIPs and its neighbours store: IPAM with the subnet and gateway,
/// and an empty (non-nil) driver state.
fn empty_driver_state() -> Option<DriverConfig> {
    Some(DriverConfig::default())
}

/// TestNoDuplicateIPs: a new allocator (leader) is started after each new task; every task gets
/// an address no other task has. Here with networks stored fully allocated: the test's own
/// store (IPAM plus an empty driver state) depends on issue 15 point 2.
#[test]
fn no_duplicate_ips() {
    let mut w = World::new();
    w.put(allocated_ingress("ingress-nw-id", "10.0.0.0/24", 4096));
    w.put(allocated("testID1", "10.1.0.0/24", 4097));
    w.put(with_ports(service("testServiceID1", &["testID1"]), vec![tcp("portName", 8000, 8001)]));
    no_duplicate_ips_run(w);
}

fn no_duplicate_ips_run(mut w: World) {
    let reps = 100;
    let mut assigned: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..reps {
        // Descending ids, as the SwarmKit test numbers them.
        let id = format!("testTaskID{}", reps - i);
        w.put(task(&id, Some("testServiceID1")));
        w.restore();
        ok(w.settle());
        assert_eq!(w.subnets("testID1"), ["10.1.0.0/24"], "the network keeps its stored subnet");
        assert_eq!(w.subnets("ingress-nw-id"), ["10.0.0.0/24"]);
        // SwarmKit checks the first attachment (the ingress: the task names no networks of its
        // own); whatever others the task has must be unique as well.
        let attachments = w.task(&id).networks.clone();
        assert_eq!(attachments.first().map(|a| a.network_id.as_str()), Some("ingress-nw-id"), "{id}");
        for a in attachments {
            assert_eq!(a.addresses.len(), 1, "{id} on {}", a.network_id);
            let key = format!("{} {}", a.network_id, a.addresses[0]);
            if let Some(other) = assigned.insert(key, id.clone()) {
                panic!("task {id} assigned duplicate IP {:?}, previously assigned to task {other}", a.addresses);
            }
        }
    }
}

/// TestAllocatorRestoreForDuplicateIPs: three services with VIPs stored on the ingress (stored
/// with its IPAM and no driver state) and a NEW task each: after a restart the VIPs are kept
/// and no task gets an address a VIP or another task has.
#[test]
fn allocator_restore_for_duplicate_ips() {
    let mut objects = Vec::new();
    let mut ingress = stored_ipam("ingress-nw-id", "10.0.0.0/24", None);
    ingress.spec.ingress = true;
    objects.push(Object::Network(ingress));
    for i in 0..3u16 {
        let ports = vec![tcp("", 8000, 8001 + i)];
        let mut s = with_ports(service(&format!("testServiceID{i}"), &[]), ports.clone());
        s.spec.endpoint.as_mut().unwrap().mode = ResolutionMode::Vip;
        s.endpoint = Some(Endpoint { spec: s.spec.endpoint.clone().unwrap(), ports, virtual_ips: Vec::new() });
        let s = with_vip(s, "ingress-nw-id", &format!("10.0.0.{}/24", 2 + i));
        objects.push(Object::Service(s));
        objects.push(Object::Task(task(&format!("testTaskID{i}"), Some(&format!("testServiceID{i}")))));
    }
    let (mut w, _) = World::restored(ClusterConfig::default(), objects);
    ok(w.settle());
    assert_eq!(w.subnets("ingress-nw-id"), ["10.0.0.0/24"]);
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let vip = w.vip(&format!("testServiceID{i}"), "ingress-nw-id").unwrap();
        assert_eq!(vip, format!("10.0.0.{}/24", 2 + i), "the stored VIP is kept");
        assert!(seen.insert(vip));
    }
    for i in 0..3 {
        let id = format!("testTaskID{i}");
        let addrs = w.addrs(&id, "ingress-nw-id");
        assert_eq!(addrs.len(), 1);
        assert!(seen.insert(addrs[0].clone()), "task {id} has {}, which a VIP or another task has", addrs[0]);
    }
}

/// TestAllocatorRestartNoEndpointSpec: services without an endpoint spec whose stored endpoint
/// has a VIP (`Spec: {Mode: VIP}`) keep it and are not changed; their NEW tasks get other
/// addresses. SwarmKit's tasks get .3, .5, .7 (its IPAM restarts at the lowest free address);
/// the engine continues after the highest address in use (ARCHITECTURE.md, reuse delay: "SwarmKit's
/// in-memory cursor restarted at the lowest free address"), so .7, .8, .9.
#[test]
fn allocator_restart_no_endpoint_spec() {
    allocator_restart_no_endpoint_spec_with(allocated("overlay1", "10.0.0.0/24", 4096));
}

/// TestAllocatorRestartNoEndpointSpec with its own stored network: IPAM plus an empty driver
/// state. (Issue 15 point 2.)
#[test]
fn allocator_restart_no_endpoint_spec_with_empty_driver_state() {
    allocator_restart_no_endpoint_spec_with(stored_ipam("overlay1", "10.0.0.0/24", empty_driver_state()));
}

fn allocator_restart_no_endpoint_spec_with(net: Network) {
    let mut objects = vec![Object::Network(net)];
    for i in 0..3u16 {
        let mut s = service(&format!("testServiceID{i}"), &["overlay1"]);
        s.endpoint = Some(Endpoint {
            spec: EndpointSpec { mode: ResolutionMode::Vip, ports: Vec::new() },
            ..Default::default()
        });
        objects.push(Object::Service(with_vip(s, "overlay1", &format!("10.0.0.{}/24", 2 + 2 * i))));
        let mut t = task(&format!("testTaskID{i}"), Some(&format!("testServiceID{i}")));
        t.networks = vec![attached("overlay1", &[])];
        objects.push(Object::Task(t));
    }
    let services: Vec<Object> = objects.iter().filter(|o| matches!(o, Object::Service(_))).cloned().collect();
    let (mut w, _) = World::restored(ClusterConfig::default(), objects);
    ok(w.settle());
    for s in services {
        assert_eq!(w.store.get(&s.id()).map(|o| o.version()), Some(s.version()), "{} is not changed", s.id());
    }
    let expected =
        [("testServiceID0", "10.0.0.2/24"), ("testServiceID1", "10.0.0.4/24"), ("testServiceID2", "10.0.0.6/24")];
    for (s, vip) in expected {
        assert_eq!(w.vip(s, "overlay1").as_deref(), Some(vip));
    }
    for (i, addr) in ["10.0.0.7/24", "10.0.0.8/24", "10.0.0.9/24"].iter().enumerate() {
        assert_eq!(w.addrs(&format!("testTaskID{i}"), "overlay1"), [*addr]);
    }
}

/// The networks of a node's load-balancer attachments, as a set, each with one address.
fn lb_networks(w: &World, node: &str) -> BTreeSet<String> {
    let attachments = &w.node(node).attachments;
    for a in attachments {
        assert_eq!(a.addresses.len(), 1, "{node} on {}", a.network_id);
    }
    attachments.iter().map(|a| a.network_id.to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// TestNodeAllocator: a node gets a load-balancer address on the ingress and on the overlay
/// networks of its tasks, one per network however many tasks use it; a new network or another
/// node's task changes nothing; the attachment goes with the node's last task on the network;
/// deleting a node leaves the others alone; node-local networks get none.
#[test]
fn node_allocator() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("overlayID1"));
    w.put(network("overlayIDUnused"));
    w.put(node("nodeID1"));
    ok(w.settle());
    let on = |id: &str, node: &str, net: &str| {
        let mut t = task(id, None);
        t.node_id = Some(node.into());
        t.spec.networks = vec![net.into()];
        t
    };
    w.put(on("task1", "nodeID1", "overlayID1"));
    ok(w.settle());
    is_valid_task(&w, "task1");
    is_valid_network(&w, "overlayIDUnused");
    assert_eq!(lb_networks(&w, "nodeID1"), set(&["ingress", "overlayID1"]));
    w.put(node("nodeID2"));
    ok(w.settle());
    assert_eq!(lb_networks(&w, "nodeID2"), set(&["ingress"]));
    let (n1, n2) = (w.node("nodeID1").clone(), w.node("nodeID2").clone());
    w.put(network("overlayID2"));
    ok(w.settle());
    assert_eq!((w.node("nodeID1"), w.node("nodeID2")), (&n1, &n2), "a new network changes no node");
    w.put(on("task2", "nodeID2", "overlayID2"));
    ok(w.settle());
    assert_eq!(lb_networks(&w, "nodeID2"), set(&["ingress", "overlayID2"]));
    assert_eq!(w.node("nodeID1"), &n1);
    w.put(on("task3", "nodeID1", "overlayID1"));
    ok(w.settle());
    let n2 = w.node("nodeID2").clone();
    assert_eq!((w.node("nodeID1"), w.node("nodeID2")), (&n1, &n2), "a second task on overlayID1 changes nothing");
    w.delete(task_id("task1"));
    ok(w.settle());
    assert_eq!((w.node("nodeID1"), w.node("nodeID2")), (&n1, &n2), "task3 still needs overlayID1");
    w.delete(task_id("task2"));
    ok(w.settle());
    assert_eq!(lb_networks(&w, "nodeID2"), set(&["ingress"]));
    assert_eq!(w.node("nodeID1"), &n1);
    w.delete(node_id("nodeID2"));
    ok(w.settle());
    assert_eq!(w.node("nodeID1"), &n1);
    let mut p = with_driver(network("bridge"), "bridge");
    p.spec.labels.insert(PREDEFINED_NETWORK_LABEL.into(), "true".into());
    w.put(p);
    ok(w.settle());
    assert_eq!(w.node("nodeID1"), &n1, "no load-balancer address on a node-local network");
}

/// TestNodeAttachmentOnLeadershipChange: a task allocated while unassigned is assigned to a node
/// between two leaders; the new leader gives the node an attachment on the task's network.
#[test]
fn node_attachment_on_leadership_change() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("net2"));
    w.put(node("node1"));
    let mut task1 = task("task1", None);
    task1.node_id = Some("node1".into());
    w.put(task1);
    let mut task2 = task("task2", None);
    task2.spec.networks = vec!["net2".into()];
    w.put(task2);
    ok(w.settle());
    assert_eq!(lb_networks(&w, "node1"), set(&["ingress"]));
    assert_eq!(w.task("task2").networks.len(), 1);
    // The allocator stops; the scheduler assigns task2 to node1 (its state stays PENDING).
    let mut t = w.task("task2").clone();
    t.node_id = Some("node1".into());
    w.store.insert(task_id("task2"), Object::Task(t));
    let report = w.restore();
    assert!(report.queue.contains(&node_id("node1")), "{report:#?}");
    ok(w.settle());
    assert_eq!(lb_networks(&w, "node1"), set(&["ingress", "net2"]));
}

/// TestServiceUpdatePort (master suite): a dynamic port changed to a fixed 1235 publishes 1235.
#[test]
fn service_update_port() {
    let (w, outcome) = port_update(
        vec![tcp("some_tcp", 1234, 1234), tcp("some_other_tcp", 1235, 0)],
        vec![tcp("some_tcp", 1234, 1234), tcp("some_other_tcp", 1235, 1235)],
    );
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "s"), [(Protocol::Tcp, 1234, 1234), (Protocol::Tcp, 1235, 1235)]);
}

/// TestServicePortAllocationIsRepeatable (master suite): two fresh clusters with the same store
/// allocate the same ports.
#[test]
fn service_port_allocation_is_repeatable() {
    let alloc = || {
        let mut w = World::new();
        w.put(allocated_ingress("ingress-nw-id", "10.0.0.0/24", 4096));
        w.put(with_ports(service("testID1", &[]), vec![tcp("some_tcp", 1234, 1234), tcp("some_other_tcp", 1235, 0)]));
        ok(w.pass());
        w.service("testID1").endpoint.clone().unwrap().ports
    };
    let first = alloc();
    assert_eq!(first.len(), 2);
    assert_eq!(first, alloc());
}

/// TestAllocatorRestoreForUnallocatedNetwork with the allocated networks stored complete: the
/// test's own store (IPAM with an empty or no driver state) depends on issue 15 point 2. The
/// services keep their VIPs, their tasks get .5, .6, .7 on testID1 after the ingress
/// attachment, and the unallocated network (whose id sorts first) gets a subnet of its own.
#[test]
fn allocator_restore_for_unallocated_network_stored_complete() {
    let mut objects = vec![
        Object::Network(allocated_ingress("ingress-nw-id", "10.0.0.0/24", 4096)),
        Object::Network(allocated("testID1", "10.1.0.0/24", 4097)),
        Object::Network(network("testID0")),
    ];
    for i in 0..3u16 {
        let ports = vec![tcp("", 8000, 8001 + i)];
        let mut s = with_ports(service(&format!("testServiceID{i}"), &["testID1"]), ports.clone());
        s.endpoint = Some(Endpoint { spec: s.spec.endpoint.clone().unwrap(), ports, virtual_ips: Vec::new() });
        let s = with_vip(s, "ingress-nw-id", &format!("10.0.0.{}/24", 2 + i));
        objects.push(Object::Service(with_vip(s, "testID1", &format!("10.1.0.{}/24", 2 + i))));
        let mut t = task(&format!("testTaskID{i}"), Some(&format!("testServiceID{i}")));
        t.spec.networks = vec!["testID1".into()];
        objects.push(Object::Task(t));
    }
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{report:#?}");
    ok(w.settle());
    let fresh = w.subnets("testID0")[0].clone();
    assert!(!overlaps(&fresh, "10.0.0.0/24") && !overlaps(&fresh, "10.1.0.0/24"), "{fresh}");
    for i in 0..3 {
        assert_eq!(w.vip(&format!("testServiceID{i}"), "testID1"), Some(format!("10.1.0.{}/24", 2 + i)));
        assert_eq!(w.vip(&format!("testServiceID{i}"), "ingress-nw-id"), Some(format!("10.0.0.{}/24", 2 + i)));
        let t = format!("testTaskID{i}");
        assert_eq!(attachment_networks(&w, &t), ["ingress-nw-id", "testID1"]);
        assert_eq!(w.addrs(&t, "testID1"), [format!("10.1.0.{}/24", 5 + i)]);
    }
}

// =============================================================================================
// controlapi: the refusals the allocator relies on (network_test.go, service_test.go)

/// TestValidateIPAMConfiguration: a range or gateway outside the subnet is refused for good;
/// inside it is accepted.
#[test]
fn validate_ipam_configuration() {
    let cases = [
        (Some("192.169.1.0/24"), None, false),
        (Some("192.168.1.0/24"), None, true),
        (Some("192.168.1.0/24"), Some("192.169.1.1"), false),
        (Some("192.168.1.0/24"), Some("192.168.1.1"), true),
    ];
    for (range, gateway, valid) in cases {
        let mut w = World::new();
        w.put(with_config(network("n"), "192.168.0.0/16", range, gateway));
        let errors = w.pass();
        if valid {
            ok(errors);
            assert_eq!(w.subnets("n"), ["192.168.0.0/16"]);
        } else {
            let error = error_of(&errors, &net_id("n"));
            assert!(matches!(error, AllocError::InvalidSpec { .. }), "{range:?} {gateway:?}: {error}");
        }
    }
}

/// validateNetworkSpec (exercised by TestCreateNetwork): an ingress network must use the
/// overlay driver and cannot be attachable; CreateNetwork refuses a second ingress.
#[test]
fn validate_network_spec_ingress() {
    let mut w = World::new();
    w.put(with_driver(ingress("bridge-ingress"), "bridge"));
    let mut attachable_ingress = ingress("attachable-ingress");
    attachable_ingress.spec.attachable = true;
    w.put(attachable_ingress);
    let errors = w.pass();
    for id in ["bridge-ingress", "attachable-ingress"] {
        let error = error_of(&errors, &net_id(id));
        assert!(matches!(error, AllocError::InvalidSpec { .. }), "{id}: {error}");
    }
    w.delete(net_id("bridge-ingress"));
    w.delete(net_id("attachable-ingress"));
    w.put(with_driver(ingress("ingress"), "overlay"));
    ok(w.pass());
    w.put(ingress("second"));
    assert!(matches!(error_of(&w.pass(), &net_id("second")), AllocError::InUse { .. }));
}

/// TestValidateEndpointSpec: ingress-mode ports with DNSRR and two ports publishing the same
/// number and protocol are refused; the same number on TCP and UDP, and several dynamic ports,
/// are accepted (each dynamic port drawn in its protocol's space).
#[test]
fn validate_endpoint_spec() {
    let mut w = World::new();
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    // endPointSpec1: DNSRR with an (ingress-mode) port.
    w.put(dnsrr(with_ports(service("spec1", &[]), vec![tcp("http", 80, 0)])));
    // endPointSpec2: two ports, two numbers.
    w.put(with_ports(service("spec2", &[]), vec![tcp("http", 81, 8001), tcp("http", 80, 8000)]));
    // endPointSpec3: 8001 twice.
    w.put(with_ports(service("spec3", &[]), vec![tcp("http", 81, 8101), tcp("http", 80, 8101)]));
    // endPointSpec4: 8002 on TCP and on UDP.
    w.put(with_ports(service("spec4", &[]), vec![tcp("dns", 53, 8002), udp("dns", 53, 8002)]));
    // endPointSpec5: three dynamic ports.
    w.put(with_ports(service("spec5", &[]), vec![tcp("http", 80, 0), udp("dns", 53, 0), tcp("dns", 53, 0)]));
    let errors = w.pass();
    for id in ["spec1", "spec3"] {
        assert!(matches!(error_of(&errors, &svc_id(id)), AllocError::InvalidSpec { .. }), "{id}");
    }
    for id in ["spec2", "spec4", "spec5"] {
        no_error_for(&errors, &svc_id(id));
    }
    assert_eq!(ports_of(&w, "spec4"), [(Protocol::Tcp, 53, 8002), (Protocol::Udp, 53, 8002)]);
    // dockerd 20.10.24, `-p 80 -p 53/udp -p 53/tcp`: 30000/tcp, 30000/udp, 30001/tcp.
    assert_eq!(
        ports_of(&w, "spec5"),
        [(Protocol::Tcp, 80, 30000), (Protocol::Udp, 53, 30000), (Protocol::Tcp, 53, 30001)]
    );
}

/// TestCreateService, the port and network refusals: a second service publishing TCP 9000 does
/// not get it (the control API refuses it; the allocator would too); services without published
/// numbers, or with the same number on another protocol, or the same host-mode port, coexist;
/// a service cannot list the ingress network.
#[test]
fn create_service_port_conflicts() {
    let mut w = World::new();
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("name2", &[]), vec![tcp("", 9000, 9000)]));
    ok(w.pass());
    w.put(with_ports(service("name3", &[]), vec![tcp("", 9000, 9000)]));
    w.put(with_ports(service("name4", &[]), vec![tcp("", 9000, 0)]));
    w.put(with_ports(service("name5", &[]), vec![tcp("", 9001, 0)]));
    w.put(with_ports(service("name6", &[]), vec![tcp("", 9100, 9100)]));
    w.put(with_ports(service("name7", &[]), vec![udp("", 9100, 9100)]));
    w.put(with_ports(service("name8", &[]), vec![host("", Protocol::Tcp, 9101, 9101)]));
    w.put(with_ports(service("name9", &[]), vec![host("", Protocol::Tcp, 9101, 9101)]));
    w.put(service("name14", &["ingress"]));
    let errors = w.pass();
    assert!(matches!(error_of(&errors, &svc_id("name3")), AllocError::InUse { .. }));
    assert!(matches!(error_of(&errors, &svc_id("name14")), AllocError::InvalidSpec { .. }));
    for id in ["name4", "name5", "name6", "name7", "name8", "name9"] {
        no_error_for(&errors, &svc_id(id));
    }
    assert_ne!(ports_of(&w, "name4")[0].2, ports_of(&w, "name5")[0].2);
    assert_eq!(ports_of(&w, "name9"), [(Protocol::Tcp, 9101, 9101)]);
}

// =============================================================================================
// libnetwork: drivers/overlay/ovmanager and ipam, where they decide what SwarmKit stores

/// ovmanager TestNetworkAllocateFree: one VXLAN id per subnet; freeing the network frees them.
#[test]
fn ovmanager_network_allocate_free() {
    let mut w = World::new();
    w.put(with_subnets(network("testnetwork"), &["10.1.1.0/24", "10.1.2.0/24"]));
    ok(w.pass());
    let vnis = w.vnis("testnetwork");
    assert_eq!(vnis.split(',').count(), 2, "{vnis}");
    w.delete(net_id("testnetwork"));
    w.put(with_vnis(with_subnets(network("again"), &["10.1.1.0/24", "10.1.2.0/24"]), &vnis));
    ok(w.pass());
    assert_eq!(w.vnis("again"), vnis);
}

/// ipam TestRequestReleaseAddressFromSubPool: addresses come from the range only, every address
/// of the range that is a host of the subnet included (its first and last); then the range is
/// exhausted. dockerd 20.10.24: `--subnet 10.2.0.0/16 --ip-range 10.2.2.0/30 --gateway 10.2.0.1`
/// and five replicas: VIP 10.2.2.0, tasks 10.2.2.1-3, two tasks "could not find an available IP".
#[test]
fn ipam_request_release_address_from_sub_pool() {
    let mut w = World::new();
    w.put(with_config(attachable("nr"), "10.2.0.0/16", Some("10.2.2.0/30"), Some("10.2.0.1")));
    w.put(service("sr", &["nr"]));
    for i in 1..=5 {
        let mut t = task(&format!("t{i}"), Some("sr"));
        t.spec.networks = vec!["nr".into()]; // as the orchestrator copies the service's task spec
        w.put(t);
    }
    let errors = w.pass();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    taken.insert(w.vip("sr", "nr").unwrap());
    for i in 1..=5 {
        let id = format!("t{i}");
        if w.state(&id) == TaskState::Pending {
            assert!(taken.insert(w.addrs(&id, "nr")[0].clone()));
        } else {
            assert!(matches!(error_of(&errors, &task_id(&id)), AllocError::Exhausted { .. }), "{id}");
        }
    }
    assert_eq!(taken, set(&["10.2.2.0/16", "10.2.2.1/16", "10.2.2.2/16", "10.2.2.3/16"]));
    // Releasing one makes exactly that one available again, to one of the two waiting tasks.
    let holder = (1..=5).map(|i| format!("t{i}")).find(|t| w.addrs(t, "nr") == ["10.2.2.2/16"]).unwrap();
    w.delete(task_id(&holder));
    let errors = w.pass();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let waiting: Vec<String> = (1..=5).map(|i| format!("t{i}")).filter(|t| *t != holder).collect();
    let got: Vec<Vec<String>> =
        waiting.iter().filter(|t| w.state(t) == TaskState::Pending).map(|t| w.addrs(t, "nr")).collect();
    assert!(got.contains(&vec!["10.2.2.2/16".to_string()]), "{got:?}");
}

/// ipam TestRequest: inside a subnet larger than /24, addresses ending in .255 and .0 are hosts
/// like any other ("192.168.0.0/16", 256 requests: the last is 192.168.1.0).
#[test]
fn ipam_request_crosses_dot_zero_in_a_large_subnet() {
    let mut w = World::new();
    w.put(with_config(attachable("big"), "192.168.0.0/16", Some("192.168.0.0/23"), None));
    for i in 0..256 {
        w.put(container(&format!("t{i:03}"), "big", "n1", None));
    }
    ok(w.pass());
    // The gateway took 192.168.0.1; the tasks 192.168.0.2 ..= 192.168.1.1.
    assert_eq!(w.addrs("t253", "big"), ["192.168.0.255/16"]);
    assert_eq!(w.addrs("t254", "big"), ["192.168.1.0/16"]);
    assert_eq!(w.addrs("t255", "big"), ["192.168.1.1/16"]);
}

/// ipam TestGetSameAddress and TestRequestSyntaxCheck: an address already taken is refused; an
/// address outside the subnet is refused (SwarmKit retries it forever with "could not find an
/// available IP"; here it is invalid for good).
#[test]
fn ipam_get_same_address_and_foreign_address() {
    let mut w = World::new();
    w.put(with_subnets(attachable("giallo"), &["192.168.100.0/24"]));
    w.put(container("t1", "giallo", "n1", Some("192.168.100.250")));
    ok(w.pass());
    assert_eq!(w.addrs("t1", "giallo"), ["192.168.100.250/24"]);
    w.put(container("t2", "giallo", "n1", Some("192.168.100.250")));
    w.put(container("t3", "giallo", "n1", Some("172.17.0.23")));
    let errors = w.pass();
    assert!(matches!(error_of(&errors, &task_id("t2")), AllocError::InUse { .. }));
    assert!(!error_of(&errors, &task_id("t3")).is_retryable());
    assert_eq!(w.state("t2"), TaskState::New);
}

/// ipam TestOverlappingRequests: a subnet overlapping an allocated one in any way (equal,
/// inside, containing, IPv4 or IPv6) is refused; a disjoint one is allocated.
#[test]
fn ipam_overlapping_requests() {
    let cases = [
        ("10.0.0.0/8", "11.0.0.0/8", true),
        ("74.0.0.0/7", "9.111.99.72/30", true),
        ("110.192.0.0/10", "16.0.0.0/10", true),
        ("10.0.0.0/8", "10.0.0.0/8", false),
        ("0.0.0.0/1", "16.182.0.0/15", false),
        ("16.0.0.0/4", "17.11.66.0/23", false),
        ("0.0.0.0/1", "0.0.0.0/0", false),
        ("64.0.0.0/6", "64.0.0.0/3", false),
        ("112.0.0.0/6", "112.0.0.0/4", false),
        ("96.0.0.0/3", "0.0.0.0/1", false),
        ("192.0.0.0/2", "128.0.0.0/1", false),
        ("95.0.0.0/8", "92.0.0.0/6", false),
        ("10.0.0.0/8", "8.0.0.0/6", false),
        ("25.173.144.0/20", "0.0.0.0/0", false),
        ("::/0", "f656:3484:c878:a05:e540:a6ed:4d70:3740/123", false),
        ("8000::/1", "8fe8:e7c4:5779::/49", false),
        ("f000::/4", "ffc7:6000::/19", false),
        ("::/2", "::/0", false),
        ("::/3", "::/1", false),
        ("::/6", "::/5", false),
        ("c000::/2", "8000::/1", false),
        ("7c00::/6", "::/1", false),
        ("cf80::/9", "c000::/4", false),
        ("ff77:93f8::/29", "::/0", false),
        ("9287:2e20:5134:fab6:9061:a0c6:bfe3:9400/119", "8000::/1", false),
        ("3ea1:bfa9:8691:d1c6:8c46:519b:db6d:e700/120", "3000::/4", false),
    ];
    for (environment, subnet, allowed) in cases {
        let mut w = World::new();
        w.put(with_subnets(network("env"), &[environment]));
        ok(w.pass());
        w.put(with_subnets(network("req"), &[subnet]));
        let errors = w.pass();
        if allowed {
            ok(errors);
        } else {
            let error = error_of(&errors, &net_id("req"));
            assert!(matches!(error, AllocError::InUse { .. }), "{environment} then {subnet}: {error}");
        }
    }
}

// =============================================================================================
// SwarmKit's allocator code where no test of its own pins the behaviour

/// `cnmNetworkAllocator.allocateVIP` returns early for a node-local network, so SwarmKit stores a
/// VIP-mode service's entry for it with an empty address (dockerd 20.10.24: a service on a swarm
/// macvlan network shows `VirtualIPs: [{"NetworkID": "..."}]`). Listed difference
/// (ARCHITECTURE.md): "Node-local networks get no VIP entry at all". The overlay network's VIP
/// is unaffected.
#[test]
fn vip_mode_service_on_a_node_local_network() {
    let mut w = World::new();
    w.put(with_driver(network("swarm-macvlan"), "macvlan"));
    w.put(network("overlay"));
    w.put(service("s", &["swarm-macvlan", "overlay"]));
    ok(w.pass());
    assert_eq!(w.vip_networks("s"), ["overlay"]);
}

/// `reconcilePortConfigs`: a dynamic port is kept only by a port config with the same name,
/// protocol and target; one with a new name gets a number of its own (SwarmKit frees the old
/// number first, then draws serially: the next one).
#[test]
fn a_renamed_dynamic_port_is_drawn_again() {
    let (w, outcome) = port_update(vec![tcp("web", 80, 0)], vec![tcp("www", 80, 0)]);
    assert_eq!(outcome, Ok(Outcome::Updated));
    assert_eq!(ports_of(&w, "s"), [(Protocol::Tcp, 80, 30001)]);
    // The old number is free again.
    let mut w = w;
    w.put(with_ports(service("other", &[]), vec![tcp("", 80, 30000)]));
    ok(w.pass());
}

/// `getNodeNetworks` counts only tasks up to RUNNING, and `doTaskAlloc` re-allocates the node when
/// one of its tasks stops: a node's attachment on a network goes when its last task there ends,
/// even while the task is still in the store.
#[test]
fn node_attachment_goes_when_its_last_task_ends() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("net"));
    w.put(node("node1"));
    let mut t = task("task1", None);
    t.node_id = Some("node1".into());
    t.spec.networks = vec!["net".into()];
    w.put(t);
    ok(w.settle());
    assert_eq!(lb_networks(&w, "node1"), set(&["ingress", "net"]));
    w.set_state("task1", TaskState::Failed);
    ok(w.settle());
    assert_eq!(lb_networks(&w, "node1"), set(&["ingress"]));
}

/// `doNetworkAlloc` on EventDeleteNetwork calls `deallocateNodeAttachments`: deleting the ingress
/// network takes its attachment off every node.
#[test]
fn deleting_the_ingress_takes_it_off_the_nodes() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(node("node1"));
    w.put(node("node2"));
    ok(w.settle());
    assert_eq!(lb_networks(&w, "node1"), set(&["ingress"]));
    w.delete(net_id("ingress"));
    ok(w.settle());
    for n in ["node1", "node2"] {
        assert!(w.node(n).attachments.is_empty(), "{n}: {:?}", w.node(n).attachments);
    }
}

/// idm TestAllocate / TestAllocateSerial ("GetSpecificID(56)" outside the set fails, a set id
/// cannot be taken twice) as ovmanager takes pinned VXLAN ids: an id above 2^24-1, or the same id
/// pinned for two subnets, leaves the network unallocated. dockerd 20.10.24: `-o
/// ...vxlanid_list=16777216` ("Requested id does not belong to the set") and two subnets with
/// `6000,6000` ("requested bit is already allocated") are stored but never allocated.
#[test]
fn idm_pinned_vxlan_ids_outside_the_set_or_twice() {
    let mut w = World::new();
    w.put(with_vnis(network("zbig"), "16777216"));
    w.put(with_vnis(with_subnets(network("zdup"), &["10.30.0.0/24", "10.30.1.0/24"]), "6000,6000"));
    let errors = w.pass();
    for id in ["zbig", "zdup"] {
        assert!(errors.iter().any(|e| e.object == net_id(id)), "{id} was allocated");
        assert!(!w.network(id).is_allocated(), "{id}");
    }
}

/// TestAllocateWithInvalidSubnet: `1.1.1.1/32` cannot be allocated: libnetwork's IPAM reserves
/// the network and broadcast ordinals of every IPv4 pool (`insertBitMask`), which leaves a /32
/// and a /31 no address for the gateway. dockerd 20.10.24 agrees: `docker network create -d
/// overlay --subnet 10.8.1.0/32` (and `10.8.0.0/31`) is stored but never allocated ("failed
/// allocating pools and gateway IP ...: No available addresses on this pool"), and its tasks
/// stay NEW. Retryable there (the network sits in the unallocated queue).
#[test]
fn allocate_with_invalid_subnet() {
    for subnet in ["1.1.1.1/32", "10.8.0.0/31"] {
        let mut w = World::new();
        w.put(with_subnets(network("testID"), &[subnet]));
        let errors = w.pass();
        assert!(
            errors.iter().any(|e| e.object == net_id("testID")),
            "{subnet} was allocated: {:?}",
            w.network("testID")
        );
        assert!(!w.network("testID").is_allocated(), "{subnet}");
    }
}

/// SwarmKit's `allocatePools` asks libnetwork for the gateway with a plain (serial) request on
/// the network's pool, which for a network with a range (a child pool) is drawn from the range
/// (`getAddress` -> `SetAnyInRange`), not from the whole subnet. dockerd 20.10.24: `--subnet
/// 10.7.0.0/24 --ip-range 10.7.0.128/26` gets gateway 10.7.0.128, and the first VIP 10.7.0.129.
#[test]
fn ipam_gateway_of_a_network_with_a_range() {
    let mut w = World::new();
    w.put(with_config(network("nrange"), "10.7.0.0/24", Some("10.7.0.128/26"), None));
    w.put(service("srange", &["nrange"]));
    ok(w.pass());
    assert_eq!(w.gateways("nrange"), ["10.7.0.128"]);
    assert_eq!(w.vip("srange", "nrange").as_deref(), Some("10.7.0.129/24"));
}

/// ovmanager TestNetworkAllocateUserDefinedVNIs: more pinned VXLAN ids than subnets: the network
/// gets exactly one per subnet, the first ones ("No more, no less, even if we passed more
/// vnis"). dockerd 20.10.24: `--subnet 10.9.1.0/24 -o ...vxlanid_list=5000,5001,5002` is stored
/// with `vxlanid_list: "5000"`.
#[test]
fn ovmanager_network_allocate_user_defined_vnis() {
    let mut w = World::new();
    w.put(with_vnis(with_subnets(network("testnetwork"), &["10.1.1.0/24", "10.1.2.0/24"]), "4096,4097,4098"));
    ok(w.pass());
    assert_eq!(w.vnis("testnetwork"), "4096,4097");
    // The third id was not taken.
    w.put(with_vnis(network("other"), "4098"));
    ok(w.pass());
    assert_eq!(w.vnis("other"), "4098");
}

/// ovmanager `NetworkAllocate`: fewer pinned VXLAN ids than subnets: the missing ones are drawn
/// as for an unpinned network. dockerd 20.10.24: `--subnet 10.9.2.0/24 --subnet 10.9.3.0/24 -o
/// ...vxlanid_list=5010` is stored with `vxlanid_list: "5010,4098"`.
#[test]
fn ovmanager_fewer_pinned_vnis_than_subnets() {
    let mut w = World::new();
    w.put(with_vnis(with_subnets(network("testnetwork"), &["10.1.1.0/24", "10.1.2.0/24"]), "5010"));
    ok(w.pass());
    let vnis = w.vnis("testnetwork");
    let vnis: Vec<&str> = vnis.split(',').collect();
    assert_eq!(vnis.len(), 2);
    assert_eq!(vnis[0], "5010");
    assert_ne!(vnis[1], "5010");
}

/// TestIPAMNotNil, on what is stored: cnmallocator's `Allocate` writes a node-local network's
/// driver state with the driver's name only (`&api.Driver{Name: d.name}`) and its IPAM as
/// `&api.IPAMOptions{Driver: &api.Driver{}}`: an IPAM driver without a name and no configs.
/// dockerd 20.10.24, `docker network create -d macvlan --scope swarm -o parent=lo mv`: inspect
/// shows `Options: null` and `IPAM: {"Driver": "", "Config": []}`.
#[test]
fn node_local_network_allocation_as_swarmkit_stores_it() {
    let mut w = World::new();
    let mut n = with_driver(network("another_unIque_id"), "macvlan");
    n.spec.driver.as_mut().unwrap().options.insert("parent".into(), "eth0".into());
    w.put(n);
    ok(w.pass());
    let n = w.network("another_unIque_id");
    assert_eq!(n.driver_state, Some(DriverConfig { name: "macvlan".into(), options: BTreeMap::new() }));
    assert_eq!(n.ipam, Some(Ipam::default()), "an IPAM driver without a name, no configs");
}

/// ovmanager `NetworkAllocate` reads a pinned VXLAN id list with `strings.Split(val, ",")` and
/// `strconv.Atoi` per item, and an id of 0 means "draw one" (`obtainVxlanID`). dockerd 20.10.24:
/// `-o ...vxlanid_list=0` is allocated with a drawn id (4097); an empty list ("invalid vxlan id
/// value \"\"") and `6001, 6002` ("invalid vxlan id value \" 6002\"") are never allocated.
#[test]
fn ovmanager_pinned_vxlan_id_lists_as_parsed_there() {
    let mut w = World::new();
    w.put(with_vnis(network("z0"), "0"));
    w.put(with_vnis(network("zempty"), ""));
    w.put(with_vnis(with_subnets(network("zspace"), &["10.31.0.0/24", "10.31.1.0/24"]), "6001, 6002"));
    let errors = w.pass();
    no_error_for(&errors, &net_id("z0"));
    assert_eq!(w.vnis("z0"), "4096");
    for id in ["zempty", "zspace"] {
        assert!(errors.iter().any(|e| e.object == net_id(id)), "{id} was allocated");
        assert!(!w.network(id).is_allocated(), "{id}");
    }
}

/// TestAllocator updates an allocated service to `Spec.Endpoint = nil`. SwarmKit's
/// `allocateService` then frees the whole endpoint (`DeallocateService`) and draws the network's
/// VIP again after the serial cursor: dockerd 20.10.24, a service update through the API without
/// `EndpointSpec`, moved the VIP from 10.0.1.2 to 10.0.1.4. The engine keeps a VIP while its
/// network is wanted, across every update, so that connections to it survive (ARCHITECTURE.md,
/// "Design decisions that differ from SwarmKit"; docs/engine.md).
#[test]
fn allocator_service_loses_its_endpoint_spec_keeps_its_vip() {
    let mut w = test_allocator_store();
    ok(w.settle());
    let old = w.vip("testServiceID1", "testID1").unwrap();
    let mut s = w.service("testServiceID1").clone();
    s.spec.endpoint = None;
    w.put(s);
    assert_eq!(w.allocate(&svc_id("testServiceID1")), Ok(Outcome::Updated));
    let new = w.vip("testServiceID1", "testID1").expect("a VIP on testID1");
    assert_eq!(new, old, "the engine keeps the VIP (SwarmKit draws it again)");
}

/// ipam TestPoolAllocationReuse: libnetwork's default-pool search starts after the last subnet it
/// gave (`predefinedStartIndices`), so networks created and removed one after the other get every
/// default subnet once before any comes back; dockerd 20.10.24: networks a, b, c created and
/// removed in turn got 10.0.1.0/24, 10.0.2.0/24, 10.0.3.0/24. The engine differs on purpose
/// (ARCHITECTURE.md, docs/engine.md): the next default subnet follows the highest one in use, and
/// nothing in the store remembers a deleted network's, so the freed subnet comes back at once.
#[test]
fn ipam_pool_allocation_reuse() {
    let config = ClusterConfig {
        default_address_pools: vec!["10.10.0.0/22".parse().unwrap()],
        subnet_size: 24,
        ..Default::default()
    };
    let mut w = World::with_config(config);
    for i in 0..4 {
        let id = format!("n{i}");
        w.put(network(&id));
        ok(w.pass());
        assert_eq!(w.subnets(&id), ["10.10.0.0/24"], "the freed subnet is the next pick (SwarmKit moves on)");
        w.delete(net_id(&id));
    }
    // While one is in use, the next follows it.
    w.put(network("kept"));
    w.put(network("next"));
    ok(w.pass());
    assert_eq!(w.subnets("kept"), ["10.10.0.0/24"]);
    assert_eq!(w.subnets("next"), ["10.10.1.0/24"]);
}

/// idm TestAllocateSerial ("i.Release(50)" then GetID gives 53) as ovmanager draws VXLAN ids
/// (`GetIDInRange(vxlanIDStart, vxlanIDEnd, true)`); dockerd 20.10.24: the same networks a, b, c
/// got 4097, 4098, 4099. The engine (a listed difference) draws after the highest id in use: a
/// deleted network's id is the next one drawn.
#[test]
fn idm_allocate_serial_vxlan_ids() {
    let mut w = World::new();
    w.put(network("a"));
    ok(w.pass());
    assert_eq!(w.vnis("a"), "4096");
    w.delete(net_id("a"));
    w.put(network("b"));
    ok(w.pass());
    assert_eq!(w.vnis("b"), "4096", "the freed id is drawn again (SwarmKit: 4097)");
}

/// idm TestAllocateSerial as the port allocator draws dynamic ports (`dynamicPortSpace.GetID(true)`);
/// dockerd 20.10.24: service p1 `-p 80` got 30000; removed, then p2 `-p 80` got 30001. The engine
/// (a listed difference) draws after the highest port in use: p1's port comes back.
#[test]
fn idm_allocate_serial_dynamic_ports() {
    let mut w = World::new();
    w.put(allocated_ingress("ingress", "10.0.0.0/24", 4096));
    w.put(with_ports(service("p1", &[]), vec![tcp("", 80, 0)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "p1"), [(Protocol::Tcp, 80, 30000)]);
    w.delete(svc_id("p1"));
    w.put(with_ports(service("p2", &[]), vec![tcp("", 80, 0)]));
    ok(w.pass());
    assert_eq!(ports_of(&w, "p2"), [(Protocol::Tcp, 80, 30000)], "the freed port is drawn again (SwarmKit: 30001)");
}
