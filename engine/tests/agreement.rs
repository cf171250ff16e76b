//! Where the engine follows what a real SwarmKit (dockerd 20.10) stores and does, one test (or a
//! few) per point of issue 15, named `pNN_...` after the point. What a real swarm showed is quoted
//! in the tests; where the engine differs on purpose, ARCHITECTURE.md's "Design decisions that
//! differ from SwarmKit" says so and the test pins the engine's side. The last tests port the
//! restart cases of SwarmKit's `manager/allocator/allocator_test.go` that these points touch.

mod support;

use std::collections::BTreeMap;

use support::*;
use swarmalloc::*;

fn ok(errors: Vec<ObjectError>) {
    assert!(errors.is_empty(), "allocation errors: {errors:#?}");
}

fn error_of(errors: &[ObjectError], id: &ObjectId) -> AllocError {
    errors.iter().find(|e| &e.object == id).unwrap_or_else(|| panic!("no error for {id} in {errors:#?}")).error.clone()
}

/// A network as SwarmKit stores it: IPAM configs (subnet, gateway) in order, the IPAM driver
/// `default`, and the overlay driver state with the VXLAN id list.
fn stored_network(id: &str, configs: &[(&str, &str)], vnis: &str) -> Network {
    let mut n = network(id);
    n.ipam = Some(Ipam {
        driver: DEFAULT_IPAM_DRIVER.into(),
        configs: configs
            .iter()
            .map(|(subnet, gateway)| IpamConfig {
                subnet: Some(subnet.parse().unwrap()),
                range: None,
                gateway: Some(gateway.parse().unwrap()),
            })
            .collect(),
        ..Default::default()
    });
    let options = BTreeMap::from([(VXLAN_ID_LIST_OPTION.to_string(), vnis.to_string())]);
    n.driver_state = Some(DriverConfig { name: "overlay".into(), options });
    n
}

/// A committed service with an endpoint as stored (spec copied, ports and VIPs as given).
fn stored_service(mut s: Service, ports: Vec<PortConfig>, vips: &[(&str, &str)]) -> Service {
    s.endpoint = Some(Endpoint {
        spec: s.spec.endpoint.clone().unwrap_or_default(),
        ports,
        virtual_ips: vips
            .iter()
            .map(|(network, addr)| VirtualIp { network_id: (*network).into(), addr: addr.parse().unwrap() })
            .collect(),
    });
    s
}

/// A pass over the restored store proposes nothing.
fn settled(w: &mut World) {
    let before = w.store.clone();
    ok(w.pass());
    assert_eq!(w.store, before, "a pass over the restored store changed it");
}

// ---------------------------------------------------------------------------------------------
// 1, 14, 20: dual stack

/// What a real swarm stored for `docker network create -d overlay --ipv6 --subnet fd00:1::/64
/// --subnet 10.50.0.0/24 ds` (IPAM configs in this order, one VXLAN id per config, 4096 being the
/// ingress's), a VIP-mode service on it (its VIP IPv6 only) and its three tasks (one IPv4 address
/// each): restore finds nothing, queues nothing, and a pass leaves all of it as it is.
#[test]
fn p01_a_dual_stack_network_as_swarmkit_stores_it_restores_clean() {
    let ds = stored_network("ds", &[("10.50.0.0/24", "10.50.0.1"), ("fd00:1::/64", "fd00:1::1")], "4097,4098");
    let mut ingress = allocated("ingress", "10.0.0.0/24", 4096);
    ingress.spec.ingress = true;
    let s = stored_service(service("s", &["ds"]), Vec::new(), &[("ds", "fd00:1::2/64")]);
    let mut objects = vec![Object::from(ingress), Object::from(ds), Object::from(s)];
    for (i, addr) in ["10.50.0.2/24", "10.50.0.3/24", "10.50.0.4/24"].iter().enumerate() {
        let mut t = running(&format!("t{i}"), vec![attached("ds", &[addr])]);
        t.service_id = Some("s".into());
        t.spec.networks = vec!["ds".into()];
        objects.push(Object::from(t));
    }
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert!(report.queue.is_empty(), "{:?}", report.queue);
    assert!(w.alloc.is_network_allocated(&"ds".into()));
    settled(&mut w);
}

/// New networks get one VXLAN id per IPAM config too, whatever its family.
#[test]
fn p01_new_networks_get_one_vxlan_id_per_ipam_config() {
    let mut w = World::new();
    w.put(with_subnets(network("ds"), &["fd00:1::/64", "10.50.0.0/24"]));
    w.put(with_subnets(network("v6"), &["fd00:2::/64"]));
    ok(w.pass());
    assert_eq!(w.vnis("ds"), "4096,4097");
    assert_eq!(w.vnis("v6"), "4098");
    assert!(w.restore().is_clean());
}

/// Point 20: a VIP takes one address, IPv4 when the network has an IPv4 subnet (whatever the
/// config order), IPv6 on an IPv6-only network; a stored IPv6 VIP on a dual-stack network (what
/// SwarmKit may give) is kept as it is. Tasks get one address per family.
#[test]
fn p20_a_dual_stack_vip_is_ipv4_and_a_stored_ipv6_vip_is_kept() {
    let mut w = World::new();
    w.put(with_subnets(network("v6first"), &["fd00:3::/64", "10.60.0.0/24"]));
    w.put(with_subnets(network("v4first"), &["10.61.0.0/24", "fd00:4::/64"]));
    w.put(with_subnets(network("v6only"), &["fd00:5::/64"]));
    w.put(service("s", &["v6first", "v4first", "v6only"]));
    ok(w.pass());
    assert_eq!(w.vip("s", "v6first").as_deref(), Some("10.60.0.2/24"));
    assert_eq!(w.vip("s", "v4first").as_deref(), Some("10.61.0.2/24"));
    assert_eq!(w.vip("s", "v6only").as_deref(), Some("fd00:5::2/64"));
    let mut ipv6 = stored_service(service("kept", &["v4first"]), Vec::new(), &[("v4first", "fd00:4::9/64")]);
    ipv6.version = Version(0);
    w.put(ipv6);
    let report = w.restore();
    assert!(report.is_clean() && report.queue.is_empty(), "{report:?}");
    settled(&mut w);
    assert_eq!(w.vip("kept", "v4first").as_deref(), Some("fd00:4::9/64"));
}

/// Point 14: one address per family per attachment; two requested addresses of one family are
/// refused as an invalid spec (SwarmKit would hand out one of them).
#[test]
fn p14_two_requested_addresses_of_one_family_are_refused() {
    let mut w = World::new();
    w.put(with_subnets(attachable("ds"), &["10.62.0.0/24", "fd00:6::/64"]));
    let mut t = container("t1", "ds", "n1", Some("10.62.0.5"));
    t.spec.networks[0].addresses.push("10.62.0.6".parse().unwrap());
    w.put(t);
    let error = error_of(&w.pass(), &task_id("t1"));
    assert!(!error.is_retryable() && error.to_string().contains("more than one IPv4"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// 2: a stored IPAM without (complete) driver state

fn without_driver_state(mut n: Network) -> Network {
    n.driver_state = None;
    n
}

fn holders_on(network: &str, base: &str) -> Vec<Object> {
    let s = stored_service(service("s", &[network]), Vec::new(), &[(network, &format!("{base}.2/24"))]);
    let mut t = running("t1", vec![attached(network, &[&format!("{base}.3/24")])]);
    t.service_id = Some("s".into());
    t.spec.networks = vec![network.into()];
    vec![Object::from(s), Object::from(t)]
}

/// A network stored with its IPAM but no driver state (or an empty one, as SwarmKit's own tests
/// store `DriverState: &api.Driver{}`) keeps its subnets and gateways: only its VXLAN id is
/// allocated, and the VIP and task addresses on it stay where they are.
#[test]
fn p02_a_network_stored_without_driver_state_keeps_its_subnets() {
    for (case, stored, vnis) in [
        // Network 0first (allocated first, by id) takes the first fresh VXLAN id.
        ("no driver state", without_driver_state(allocated("a", "10.70.0.0/24", 4100)), "4097"),
        (
            "an empty driver state",
            {
                let mut n = allocated("a", "10.70.0.0/24", 4100);
                n.driver_state = Some(DriverConfig::default());
                n.ipam.as_mut().unwrap().driver = String::new();
                n
            },
            "4097",
        ),
        (
            "fewer VXLAN ids than configs",
            stored_network("a", &[("10.70.0.0/24", "10.70.0.1"), ("fd00:7::/64", "fd00:7::1")], "4100"),
            "4100,4102",
        ),
    ] {
        let mut objects = vec![Object::from(stored)];
        objects.extend(holders_on("a", "10.70.0"));
        // A network with a smaller id and no allocation must not take the stored subnet.
        objects.push(Object::from(network("0first")));
        let config =
            ClusterConfig { default_address_pools: vec!["10.70.0.0/23".parse().unwrap()], ..Default::default() };
        let (mut w, report) = World::restored(config, objects);
        assert!(report.is_clean(), "{case}: {:#?}", report.findings);
        assert!(report.queue.contains(&net_id("a")), "{case}: {:?}", report.queue);
        ok(w.pass());
        assert_eq!(w.subnets("a")[0], "10.70.0.0/24", "{case}");
        assert_eq!(w.gateways("a")[0], "10.70.0.1", "{case}");
        assert_eq!(w.vnis("a"), vnis, "{case}: only the missing VXLAN ids are allocated");
        assert_eq!(w.vip("s", "a").as_deref(), Some("10.70.0.2/24"), "{case}");
        assert_eq!(w.addrs("t1", "a"), ["10.70.0.3/24"], "{case}");
        assert_eq!(w.subnets("0first"), ["10.70.1.0/24"], "{case}");
        assert!(w.restore().is_clean(), "{case}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3: driver names

#[test]
fn p03_unknown_or_empty_driver_names_are_invalid_specs() {
    let mut w = World::new();
    w.put(with_driver(network("empty"), ""));
    w.put(with_driver(network("upper"), "Overlay"));
    w.put(with_driver(network("plugin"), "weave"));
    let mut ipam = network("ipam");
    ipam.spec.ipam = Some(Ipam { driver: "DEFAULT".into(), ..Default::default() });
    w.put(ipam);
    let errors = w.pass();
    for (id, value) in
        [("empty", "without a name"), ("upper", "\"Overlay\""), ("plugin", "\"weave\""), ("ipam", "\"DEFAULT\"")]
    {
        let error = error_of(&errors, &net_id(id));
        assert!(matches!(error, AllocError::InvalidSpec { .. }), "{id}: {error}");
        assert!(error.to_string().contains(value), "{id} names {value}: {error}");
    }
    // An installed plugin is known.
    let config = ClusterConfig { network_plugins: vec!["weave".into()], ..Default::default() };
    let mut w = World::with_config(config);
    w.put(with_driver(network("plugin"), "weave"));
    ok(w.pass());
}

#[test]
fn p03_the_ipam_driver_the_spec_names_is_recorded() {
    let config = ClusterConfig { ipam_plugins: vec!["infoblox".into()], ..Default::default() };
    let mut w = World::with_config(config);
    let mut n = network("a");
    n.spec.ipam = Some(Ipam { driver: "infoblox".into(), ..Default::default() });
    w.put(n);
    w.put(network("b"));
    ok(w.pass());
    assert_eq!(w.network("a").ipam.as_ref().unwrap().driver, "infoblox");
    assert_eq!(w.network("b").ipam.as_ref().unwrap().driver, "default");
}

#[test]
fn p03_a_stored_network_naming_an_unknown_ipam_driver_is_a_finding() {
    let mut n = allocated("a", "10.0.0.0/24", 4096);
    n.ipam.as_mut().unwrap().driver = "gone".into();
    let (_, report) = World::restored(ClusterConfig::default(), vec![Object::from(n)]);
    assert!(
        matches!(&report.findings[..], [Finding::InvalidStoredNetwork { reason, .. }] if reason.contains("\"gone\"")),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.queue, [net_id("a")]);
}

// ---------------------------------------------------------------------------------------------
// 4: the ingress first

/// Whatever its id, the ingress comes first in restore's queue, so a pass in queue order gives
/// it the first default subnet, as SwarmKit's init does.
#[test]
fn p04_the_ingress_comes_first_in_restores_queue_whatever_its_id() {
    let objects = vec![Object::from(network("aaa")), Object::from(ingress("zzz")), Object::from(network("mmm"))];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert_eq!(report.queue, [net_id("zzz"), net_id("aaa"), net_id("mmm")]);
    let proposal = {
        let mut tx = w.alloc.begin();
        for id in &report.queue {
            let Object::Network(n) = &w.store[id] else { unreachable!() };
            tx.allocate_network(n).unwrap();
        }
        tx.finish()
    };
    w.commit(&proposal);
    assert_eq!(w.subnets("zzz"), ["10.0.0.0/24"]);
    assert_eq!(w.subnets("aaa"), ["10.0.1.0/24"]);
}

// ---------------------------------------------------------------------------------------------
// 5: services that need no endpoint

/// A real swarm stores no endpoint for a DNSRR service without ports, with networks or without,
/// nor for a VIP service without networks and ports (`docker service inspect` shows
/// `"Endpoint": {"Spec": {}}`): SwarmKit's `IsServiceAllocated` holds for them.
#[test]
fn p05_services_that_need_no_endpoint_are_left_as_they_are() {
    let objects = vec![
        Object::from(allocated("back", "10.0.0.0/24", 4096)),
        Object::from(dnsrr(service("dns", &[]))),
        Object::from(dnsrr(service("dnsnet", &["back"]))),
        Object::from(service("plain", &[])),
        Object::from(task("t1", Some("dns"))),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert_eq!(report.queue, [task_id("t1")], "only the NEW task");
    ok(w.pass());
    for s in ["dns", "dnsnet", "plain"] {
        assert!(w.service(s).endpoint.is_none(), "{s}");
    }
    assert_eq!(w.state("t1"), TaskState::Pending);
    assert!(w.task("t1").endpoint.is_none());
    // Adding a port makes an endpoint; removing it again leaves one that holds nothing.
    let mut s = w.service("plain").clone();
    s.spec.endpoint = Some(EndpointSpec {
        mode: ResolutionMode::Vip,
        ports: vec![port("", Protocol::Tcp, 80, 9000, PublishMode::Host)],
    });
    w.put(s);
    ok(w.pass());
    assert_eq!(w.published("plain"), [(String::new(), 9000)]);
    let mut s = w.service("plain").clone();
    s.spec.endpoint = None;
    w.put(s);
    ok(w.pass());
    let endpoint = w.service("plain").endpoint.clone().expect("rewritten");
    assert!(endpoint.ports.is_empty() && endpoint.virtual_ips.is_empty());
    settled(&mut w);
}

// ---------------------------------------------------------------------------------------------
// 6 and 11: a task's networks

/// Point 6: a task whose spec names a network that is not in the store waits in NEW with a
/// retryable error naming it, and gets the network once it exists.
#[test]
fn p06_a_task_naming_a_network_not_in_the_store_waits_for_it() {
    let mut w = World::new();
    w.put(network("a"));
    let mut t = container("t1", "a", "n1", None);
    t.spec.networks.push("later".into());
    w.put(t);
    let errors = w.pass();
    let error = error_of(&errors, &task_id("t1"));
    assert!(
        matches!(&error, AllocError::DependencyNotAllocated { needed } if needed.contains("later"))
            && error.is_retryable(),
        "{error}"
    );
    assert_eq!(w.state("t1"), TaskState::New);
    assert!(w.holder("a", "10.0.0.2").is_none(), "nothing taken for it");
    w.put(network("later"));
    ok(w.pass());
    assert_eq!(w.state("t1"), TaskState::Pending);
    assert_eq!(w.addrs("t1", "later"), ["10.0.1.2/24"]);
}

/// Point 11, as SwarmKit's `taskCreateNetworkAttachments`: a task whose own spec names no
/// networks falls back to the service's deprecated `networks` only, never to `task_networks`
/// (which the orchestrator copies into every task it creates).
#[test]
fn p11_a_task_without_networks_of_its_own_falls_back_to_the_deprecated_field_only() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(network("old"));
    w.put(service("s", &["a"]));
    let mut deprecated = service("d", &[]);
    deprecated.spec.networks = vec!["old".into()];
    w.put(deprecated);
    w.put(task("t1", Some("s")));
    w.put(task("t2", Some("d")));
    ok(w.pass());
    assert!(w.task("t1").networks.is_empty(), "no attachment from the service's task_networks");
    assert_eq!(w.addrs("t2", "old"), ["10.0.1.3/24"], "the deprecated field is the fallback");
    assert_eq!(w.vip_networks("s"), ["a"], "VIPs still follow task_networks (serviceNetworks)");
}

// ---------------------------------------------------------------------------------------------
// 7 and 8: published ports

/// SwarmKit writes a service's ports in the spec's order when it first allocates it, and host-mode
/// and fixed ports first when it reallocates one with as many ports; the ingress VIP may come
/// after the others. Either way the service is allocated as it is.
#[test]
fn p07_ports_and_vips_stored_in_another_order_are_allocated_as_they_are() {
    let mut ingress = allocated("ingress", "10.0.0.0/24", 4096);
    ingress.spec.ingress = true;
    let spec_ports = vec![
        port("", Protocol::Tcp, 82, 0, PublishMode::Ingress),
        port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress),
        port("", Protocol::Tcp, 81, 9000, PublishMode::Host),
    ];
    let stored_ports = vec![
        port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress),
        port("", Protocol::Tcp, 81, 9000, PublishMode::Host),
        port("", Protocol::Tcp, 82, 30000, PublishMode::Ingress),
    ];
    let s = stored_service(
        with_ports(service("s", &["a"]), spec_ports),
        stored_ports,
        &[("a", "10.1.0.2/24"), ("ingress", "10.0.0.2/24")],
    );
    let objects = vec![Object::from(ingress), Object::from(allocated("a", "10.1.0.0/24", 4097)), Object::from(s)];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean() && report.queue.is_empty(), "{report:?}");
    settled(&mut w);
}

/// A service that replaces its dynamic port by another (a new name) while the range is full
/// keeps its own published number: SwarmKit frees a service's ports before allocating again.
#[test]
fn p08_a_new_dynamic_port_in_a_full_range_takes_the_services_own_old_number() {
    let config = ClusterConfig { dynamic_port_range: Range { min: 30000, max: 30001 }, ..Default::default() };
    let mut w = World::with_config(config);
    w.put(ingress("ingress"));
    w.put(with_ports(service("a", &[]), vec![port("web", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    w.put(with_ports(service("b", &[]), vec![port("web", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("a"), [("web".into(), 30000)]);
    let mut a = w.service("a").clone();
    a.spec.endpoint.as_mut().unwrap().ports = vec![port("api", Protocol::Tcp, 80, 0, PublishMode::Ingress)];
    w.put(a);
    ok(w.pass());
    assert_eq!(w.published("a"), [("api".into(), 30000)], "the number never leaves the service");
}

// ---------------------------------------------------------------------------------------------
// 9 and 13: node load-balancer attachments

/// SwarmKit keeps a node's existing attachment object as it is (aliases, driver options) and
/// only fills in its addresses.
#[test]
fn p09_node_lb_attachments_keep_their_driver_options_and_aliases() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(node("n1"));
    ok(w.settle());
    let mut n = w.node("n1").clone();
    n.attachments[0].driver_attachment_opts.insert("com.example.opt".into(), "1".into());
    n.attachments[0].aliases.push("lb".into());
    w.put(n);
    // A task on the node makes the node need network a: the node is rewritten.
    let mut t = container("t1", "a", "n1", None);
    t.status.state = TaskState::New;
    w.put(t);
    ok(w.settle());
    w.assign("t1", "n1");
    ok(w.settle());
    let node = w.node("n1");
    let networks: Vec<&str> = node.attachments.iter().map(|a| a.network_id.as_str()).collect();
    assert_eq!(networks, ["ingress", "a"]);
    assert_eq!(node.attachments[0].driver_attachment_opts.get("com.example.opt").map(String::as_str), Some("1"));
    assert_eq!(node.attachments[0].aliases, ["lb"]);
}

/// One exhausted network does not keep a node from its attachments on the other networks, nor
/// keep its stale ones: SwarmKit skips only the full network.
#[test]
fn p13_an_exhausted_network_does_not_keep_a_node_from_its_other_attachments() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    // The /30 has one address after its gateway: c1 takes it, none is left for n1's LB.
    w.put(with_subnets(attachable("full"), &["10.80.0.0/30"]));
    w.put(attachable("roomy"));
    w.put(attachable("stale"));
    w.put(node("n1"));
    for (id, net) in [("c1", "full"), ("c2", "roomy"), ("c3", "stale")] {
        w.put(container(id, net, "n1", None));
    }
    let networks = |w: &World| w.node("n1").attachments.iter().map(|a| a.network_id.to_string()).collect::<Vec<_>>();
    let errors = w.settle();
    let error = error_of(&errors, &node_id("n1"));
    assert!(matches!(error, AllocError::Exhausted { .. }) && error.to_string().contains("full"), "{error}");
    assert_eq!(networks(&w), ["ingress", "roomy", "stale"], "every network but the full one is served");
    w.set_state("c3", TaskState::Complete);
    let errors = w.settle();
    assert!(errors.iter().all(|e| e.object == node_id("n1")), "{errors:#?}");
    assert_eq!(networks(&w), ["ingress", "roomy"], "the stale attachment is dropped all the same");
}

// ---------------------------------------------------------------------------------------------
// 10: addresses on node-local networks

/// The engine copies a requested address onto an attachment to a node-local network (the node
/// allocates there): such an address is no restore finding and does not queue the task.
#[test]
fn p10_an_address_on_a_node_local_attachment_is_no_finding() {
    let mut w = World::new();
    w.put(with_driver(attachable("br"), "bridge"));
    w.put(container("t1", "br", "n1", Some("192.168.9.9")));
    ok(w.pass());
    assert_eq!(w.addrs("t1", "br"), ["192.168.9.9/32"]);
    w.assign("t1", "n1");
    let report = w.restore();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert!(report.queue.is_empty(), "{:?}", report.queue);
}

// ---------------------------------------------------------------------------------------------
// 12: the reuse delay, with the cursor in the network's stored state

fn scale(w: &mut World, service: &str, replicas: usize) {
    let live: Vec<String> = w
        .store
        .values()
        .filter_map(|o| match o {
            Object::Task(t) if t.service_id.as_ref().is_some_and(|s| s.as_str() == service) => Some(t.id.to_string()),
            _ => None,
        })
        .collect();
    for id in live.iter().skip(replicas) {
        w.delete(task_id(id));
    }
    for i in live.len()..replicas {
        let id = format!("{service}.{i}.{}", w.store.len());
        w.put(w.task_of(&id, service));
    }
    ok(w.pass());
}

fn addresses_of(w: &World, service: &str, network: &str) -> Vec<String> {
    let mut out: Vec<String> = w
        .store
        .values()
        .filter_map(|o| match o {
            Object::Task(t) if t.service_id.as_ref().is_some_and(|s| s.as_str() == service) => {
                Some(w.addrs(t.id.as_str(), network))
            }
            _ => None,
        })
        .flatten()
        .collect();
    out.sort();
    out
}

/// With a gateway at the top of the range (`--subnet 10.11.0.0/24 --ip-range 10.11.0.128/25
/// --gateway 10.11.0.254`), a service scaled 5 -> 3 -> 6 does not get its two freed addresses
/// back (the real allocator moved on); the same after a failover between the steps.
#[test]
fn p12_a_gateway_on_top_does_not_defeat_the_reuse_delay() {
    for failover in [false, true] {
        let mut w = World::new();
        w.put(with_config(network("top"), "10.11.0.0/24", Some("10.11.0.128/25"), Some("10.11.0.254")));
        w.put(service("s", &["top"]));
        ok(w.pass());
        assert_eq!(w.vip("s", "top").as_deref(), Some("10.11.0.128/24"));
        scale(&mut w, "s", 5);
        let five = addresses_of(&w, "s", "top");
        assert_eq!(five, ["10.11.0.129/24", "10.11.0.130/24", "10.11.0.131/24", "10.11.0.132/24", "10.11.0.133/24"]);
        scale(&mut w, "s", 3);
        if failover {
            assert!(w.restore().is_clean());
        }
        scale(&mut w, "s", 6);
        let six = addresses_of(&w, "s", "top");
        assert_eq!(
            six,
            [
                "10.11.0.129/24",
                "10.11.0.130/24",
                "10.11.0.131/24",
                "10.11.0.134/24",
                "10.11.0.135/24",
                "10.11.0.136/24"
            ],
            "failover {failover}"
        );
    }
}

/// Deleting the holder of the highest address handed out does not make that address the next
/// pick (the known limit of a cursor derived from the highest claim).
#[test]
fn p12_a_deleted_highest_holder_is_not_the_next_pick() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.12.0.0/24"]));
    for id in ["t1", "t2", "t3"] {
        w.put(container(id, "a", "n1", None));
    }
    ok(w.pass());
    assert_eq!(w.addrs("t3", "a"), ["10.12.0.4/24"]);
    w.delete(task_id("t3"));
    w.restore();
    w.put(container("t4", "a", "n1", None));
    ok(w.pass());
    assert_eq!(w.addrs("t4", "a"), ["10.12.0.5/24"]);
}

/// The cursor lives in the network's stored state: it is what restore of the store reads, on
/// every manager and in any order (`World` compares the engine with restores after each step),
/// and a dropped proposal or a prefix without the network leaves it where it was.
#[test]
fn p12_the_cursor_is_stored_with_the_network_and_only_committed_writes_move_it() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.13.0.0/24"]));
    ok(w.pass());
    assert!(!w.network("a").ipam.as_ref().unwrap().options.contains_key(ADDRESS_CURSOR_OPTION));
    w.put(container("t1", "a", "n1", None));
    w.put(container("t2", "a", "n1", None));
    ok(w.pass());
    assert_eq!(w.network("a").ipam.as_ref().unwrap().options[ADDRESS_CURSOR_OPTION], "10.13.0.3");
    w.put(container("t3", "a", "n1", None));
    let proposal = {
        let mut tx = w.alloc.begin();
        tx.allocate_task(w.task("t3"), None).unwrap();
        tx.finish()
    };
    assert!(matches!(&proposal.updates()[0], Object::Network(n) if n.id.as_str() == "a"), "the network first");
    drop(proposal);
    w.commit_prefix(
        &{
            let mut tx = w.alloc.begin();
            tx.allocate_task(w.task("t3"), None).unwrap();
            tx.finish()
        },
        1,
    );
    // The network landed (cursor .4), the task did not: the next pick moves on to .5.
    assert_eq!(w.network("a").ipam.as_ref().unwrap().options[ADDRESS_CURSOR_OPTION], "10.13.0.4");
    ok(w.pass());
    assert_eq!(w.addrs("t3", "a"), ["10.13.0.5/24"]);
}

// ---------------------------------------------------------------------------------------------
// SwarmKit's own restart cases (manager/allocator/allocator_test.go)

/// `TestAllocatorRestartNoEndpointSpec`: a network stored with an empty IPAM driver and an empty
/// driver state, three services with a VIP each (.2, .4, .6) and a NEW task each. SwarmKit keeps
/// the network's subnet and the VIPs; its restarted IPAM then hands the tasks the lowest free
/// addresses (.3, .5, .7). The engine keeps the same, and continues after the highest address
/// referenced instead (.7, .8, .9: ARCHITECTURE.md, the reuse delay survives failover).
#[test]
fn swarmkit_restart_no_endpoint_spec() {
    let mut n = network("overlay1");
    n.ipam = Some(Ipam {
        configs: vec![IpamConfig {
            subnet: Some("10.0.0.0/24".parse().unwrap()),
            range: None,
            gateway: Some("10.0.0.1".parse().unwrap()),
        }],
        ..Default::default()
    });
    n.driver_state = Some(DriverConfig::default());
    let mut objects = vec![Object::from(n)];
    for i in 0..3 {
        let mut s = service(&format!("testServiceID{i}"), &["overlay1"]);
        s.endpoint = Some(Endpoint {
            spec: EndpointSpec { mode: ResolutionMode::Vip, ports: Vec::new() },
            ports: Vec::new(),
            virtual_ips: vec![VirtualIp {
                network_id: "overlay1".into(),
                addr: format!("10.0.0.{}/24", 2 + 2 * i).parse().unwrap(),
            }],
        });
        objects.push(Object::from(s));
        let mut t = task(&format!("testTaskID{i}"), Some(&format!("testServiceID{i}")));
        t.spec.networks = vec!["overlay1".into()];
        objects.push(Object::from(t));
    }
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{:#?}", report.findings);
    ok(w.settle());
    assert_eq!(w.subnets("overlay1"), ["10.0.0.0/24"]);
    for i in 0..3 {
        assert_eq!(w.vip(&format!("testServiceID{i}"), "overlay1"), Some(format!("10.0.0.{}/24", 2 + 2 * i)));
        assert_eq!(w.addrs(&format!("testTaskID{i}"), "overlay1"), [format!("10.0.0.{}/24", 7 + i)]);
    }
}

/// `TestAllocatorRestoreForUnallocatedNetwork`: the ingress is stored with its IPAM but no driver
/// state, network testID1 with an empty driver state, and testID0 (looked at first by id) not at
/// all; three services hold VIPs on both and fixed ports (their stored endpoint has no spec copy).
/// Every stored subnet and VIP is kept, testID0 gets a subnet of its own, and the tasks get the
/// next addresses (.5, .6, .7), as in SwarmKit.
#[test]
fn swarmkit_restore_for_unallocated_network() {
    let stored = |id: &str, subnet: &str, gateway: &str| {
        let mut n = network(id);
        n.ipam = Some(Ipam {
            configs: vec![IpamConfig {
                subnet: Some(subnet.parse().unwrap()),
                range: None,
                gateway: Some(gateway.parse().unwrap()),
            }],
            ..Default::default()
        });
        n
    };
    let mut ingress_network = stored("ingress-nw-id", "10.0.0.0/24", "10.0.0.1");
    ingress_network.spec.ingress = true;
    let mut n1 = stored("testID1", "10.1.0.0/24", "10.1.0.1");
    n1.driver_state = Some(DriverConfig::default());
    let mut objects = vec![Object::from(ingress_network), Object::from(n1), Object::from(network("testID0"))];
    for i in 0..3u16 {
        let published = port("", Protocol::Tcp, 8000, 8001 + i, PublishMode::Ingress);
        let mut s = with_ports(service(&format!("testServiceID{i}"), &["testID1"]), vec![published.clone()]);
        s.endpoint = Some(Endpoint {
            spec: EndpointSpec::default(),
            ports: vec![published],
            virtual_ips: vec![
                VirtualIp { network_id: "ingress-nw-id".into(), addr: format!("10.0.0.{}/24", 2 + i).parse().unwrap() },
                VirtualIp { network_id: "testID1".into(), addr: format!("10.1.0.{}/24", 2 + i).parse().unwrap() },
            ],
        });
        objects.push(Object::from(s));
        let mut t = task(&format!("testTaskID{i}"), Some(&format!("testServiceID{i}")));
        t.spec.networks = vec!["testID1".into()];
        objects.push(Object::from(t));
    }
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{:#?}", report.findings);
    ok(w.settle());
    assert_eq!(w.subnets("ingress-nw-id"), ["10.0.0.0/24"]);
    assert_eq!(w.subnets("testID1"), ["10.1.0.0/24"]);
    // The engine's rule for default subnets: the first after the highest one in use (SwarmKit's
    // restarted pool allocator would give the lowest free, 10.0.1.0/24; its test does not look).
    assert_eq!(w.subnets("testID0"), ["10.1.1.0/24"]);
    for i in 0..3 {
        let s = format!("testServiceID{i}");
        assert_eq!(w.vip(&s, "ingress-nw-id"), Some(format!("10.0.0.{}/24", 2 + i)));
        assert_eq!(w.vip(&s, "testID1"), Some(format!("10.1.0.{}/24", 2 + i)));
        assert_eq!(w.addrs(&format!("testTaskID{i}"), "testID1"), [format!("10.1.0.{}/24", 5 + i)]);
    }
}
