//! One test per allocation rule of docs/swarmkit.md sections 1 and 2, and per design principle.
//! Each test drives the engine through the committed-store world of `support`, which checks after
//! every step that the engine equals a fresh restore of the store.

mod support;

use ipnet::Ipv4Net;
use support::*;
use swarmalloc::*;

fn ok(errors: Vec<ObjectError>) {
    assert!(errors.is_empty(), "allocation errors: {errors:#?}");
}

fn error_of(errors: &[ObjectError], id: &ObjectId) -> AllocError {
    errors.iter().find(|e| &e.object == id).unwrap_or_else(|| panic!("no error for {id} in {errors:#?}")).error.clone()
}

// ---------------------------------------------------------------------------------------------
// 2.1 Subnets

#[test]
fn default_pool_is_cut_into_24s_in_address_order() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(network("b"));
    ok(w.pass());
    assert_eq!(w.subnets("a"), ["10.0.0.0/24"]);
    assert_eq!(w.subnets("b"), ["10.0.1.0/24"]);
}

#[test]
fn several_default_bases_and_a_subnet_size() {
    let config = ClusterConfig {
        default_address_pools: vec!["10.10.0.0/25".parse().unwrap(), "192.168.0.0/24".parse().unwrap()],
        subnet_size: 26,
        ..Default::default()
    };
    let mut w = World::with_config(config);
    for id in ["a", "b", "c"] {
        w.put(network(id));
    }
    ok(w.pass());
    assert_eq!(w.subnets("a"), ["10.10.0.0/26"]);
    assert_eq!(w.subnets("b"), ["10.10.0.64/26"]);
    assert_eq!(w.subnets("c"), ["192.168.0.0/26"]);
}

#[test]
fn default_pool_exhaustion_is_retryable_and_names_the_pool() {
    let config = ClusterConfig {
        default_address_pools: vec!["10.10.0.0/25".parse().unwrap()],
        subnet_size: 26,
        ..Default::default()
    };
    let mut w = World::with_config(config);
    for id in ["a", "b", "c"] {
        w.put(network(id));
    }
    let errors = w.pass();
    let error = error_of(&errors, &net_id("c"));
    assert!(matches!(error, AllocError::Exhausted { .. }) && error.is_retryable(), "{error}");
    assert!(error.to_string().contains("/26"), "{error}");
    // Freeing a network makes room: the retry succeeds.
    w.delete(net_id("a"));
    ok(w.pass());
    assert_eq!(w.subnets("c"), ["10.10.0.0/26"]);
}

#[test]
fn a_freed_default_subnet_is_not_reused_at_once_even_after_failover() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(network("b"));
    ok(w.pass());
    w.delete(net_id("a"));
    w.restore();
    w.put(network("c"));
    ok(w.pass());
    assert_eq!(w.subnets("c"), ["10.0.2.0/24"], "the cursor continues after the highest subnet in use");
}

#[test]
fn explicit_subnets_refuse_overlap_both_ways() {
    let mut w = World::new();
    w.put(network("a"));
    ok(w.pass());
    w.put(with_subnets(network("wide"), &["10.0.0.0/16"]));
    w.put(with_subnets(network("narrow"), &["10.0.0.128/25"]));
    let errors = w.pass();
    for id in ["wide", "narrow"] {
        let error = error_of(&errors, &net_id(id));
        assert!(matches!(error, AllocError::InUse { .. }), "{error}");
        assert!(error.to_string().contains("10.0.0.0/24"), "names the subnet in the way: {error}");
    }
    w.put(with_subnets(network("apart"), &["10.1.0.0/16"]));
    let errors = w.pass();
    assert_eq!(w.subnets("apart"), ["10.1.0.0/16"]);
    assert_eq!(errors.len(), 2);
}

#[test]
fn default_subnets_skip_explicit_ones() {
    let mut w = World::new();
    w.put(with_subnets(network("a"), &["10.0.0.0/23"]));
    ok(w.pass());
    w.put(network("b"));
    ok(w.pass());
    assert_eq!(w.subnets("b"), ["10.0.2.0/24"]);
}

#[test]
fn subnets_with_host_bits_are_invalid() {
    let mut w = World::new();
    w.put(with_subnets(network("a"), &["10.5.0.7/24"]));
    let error = error_of(&w.pass(), &net_id("a"));
    assert!(!error.is_retryable() && error.to_string().contains("10.5.0.7/24"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// 2.2 Gateways and reserved addresses, 2.3 assignment

#[test]
fn gateway_is_the_first_usable_address_unless_given() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(with_config(network("b"), "10.9.0.0/24", None, Some("10.9.0.254")));
    ok(w.pass());
    assert_eq!(w.gateways("a"), ["10.0.0.1"]);
    assert_eq!(w.gateways("b"), ["10.9.0.254"]);
    assert_eq!(w.holder("b", "10.9.0.254"), Some(Holder::Gateway("b".into())));
}

#[test]
fn a_gateway_on_a_reserved_address_is_invalid() {
    let mut w = World::new();
    w.put(with_config(network("a"), "10.9.0.0/24", None, Some("10.9.0.255")));
    let error = error_of(&w.pass(), &net_id("a"));
    assert!(!error.is_retryable() && error.to_string().contains("broadcast"), "{error}");
}

#[test]
fn tasks_get_serial_addresses_after_the_gateway() {
    let mut w = World::new();
    w.put(attachable("a"));
    w.put(node("n1"));
    for id in ["t1", "t2", "t3"] {
        w.put(container(id, "a", "n1", None));
    }
    ok(w.pass());
    assert_eq!(w.addrs("t1", "a"), ["10.0.0.2/24"]);
    assert_eq!(w.addrs("t2", "a"), ["10.0.0.3/24"]);
    assert_eq!(w.addrs("t3", "a"), ["10.0.0.4/24"]);
    assert_eq!(w.state("t1"), TaskState::Pending);
    assert_eq!(w.task("t1").status.message, PENDING_MESSAGE);
}

#[test]
fn a_24_holds_253_addresses() {
    let mut w = World::new();
    w.put(attachable("a"));
    for i in 0..254 {
        w.put(container(&format!("t{i:03}"), "a", "n1", None));
    }
    let errors = w.pass();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(matches!(errors[0].error, AllocError::Exhausted { .. }), "{}", errors[0].error);
    assert_eq!(w.addrs("t252", "a"), ["10.0.0.254/24"]);
}

#[test]
fn ranges_limit_where_addresses_are_picked() {
    let mut w = World::new();
    w.put(with_config(attachable("a"), "10.7.0.0/24", Some("10.7.0.128/26"), None));
    w.put(container("t1", "a", "n1", None));
    ok(w.pass());
    // The gateway is drawn from the range, as libnetwork's serial request on the child pool.
    assert_eq!(w.gateways("a"), ["10.7.0.128"]);
    assert_eq!(w.addrs("t1", "a"), ["10.7.0.129/24"]);
}

/// libnetwork reserves the first and last address of every IPv4 subnet whatever its size, so a
/// /31 and a /32 have no address for the gateway: refused, and their tasks wait.
#[test]
fn slash_31_and_slash_32_cannot_be_allocated() {
    let mut w = World::new();
    w.put(with_subnets(attachable("p31"), &["10.8.0.0/31"]));
    w.put(with_subnets(attachable("p32"), &["10.8.1.0/32"]));
    w.put(container("t1", "p31", "n1", None));
    let errors = w.pass();
    for id in ["p31", "p32"] {
        let refused = error_of(&errors, &net_id(id));
        assert!(
            matches!(refused, AllocError::InvalidSpec { .. }) && refused.to_string().contains("no usable address"),
            "{refused}"
        );
        assert!(!w.network(id).is_allocated());
    }
    assert!(matches!(error_of(&errors, &task_id("t1")), AllocError::DependencyNotAllocated { .. }));
}

#[test]
fn multi_subnet_networks_fill_in_config_order() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.6.1.0/29", "10.6.0.0/29"]));
    for i in 0..8 {
        w.put(container(&format!("t{i}"), "a", "n1", None));
    }
    ok(w.pass());
    // The first /29 has 5 addresses after its gateway, then the second subnet is used.
    assert_eq!(w.addrs("t4", "a"), ["10.6.1.6/29"]);
    assert_eq!(w.addrs("t5", "a"), ["10.6.0.2/29"]);
    assert_eq!(w.network("a").ipam.as_ref().unwrap().configs.len(), 2);
}

#[test]
fn requested_addresses_are_reserved_exactly() {
    let mut w = World::new();
    w.put(attachable("a"));
    w.put(container("t1", "a", "n1", Some("10.0.0.77")));
    w.put(container("t2", "a", "n1", Some("10.0.0.77")));
    w.put(container("t3", "a", "n1", Some("10.99.0.1")));
    let errors = w.pass();
    assert_eq!(w.addrs("t1", "a"), ["10.0.0.77/24"]);
    let in_use = error_of(&errors, &task_id("t2"));
    assert!(matches!(&in_use, AllocError::InUse { holder, .. } if holder == "task t1"), "{in_use}");
    let outside = error_of(&errors, &task_id("t3"));
    assert!(!outside.is_retryable() && outside.to_string().contains("10.99.0.1"), "{outside}");
}

// ---------------------------------------------------------------------------------------------
// 2.4 IPv6

#[test]
fn dual_stack_attachments_get_one_address_per_family() {
    let mut w = World::new();
    w.put(with_subnets(attachable("ds"), &["10.4.0.0/24", "fd00:1::/64"]));
    w.put(container("t1", "ds", "n1", None));
    ok(w.pass());
    assert_eq!(w.gateways("ds"), ["10.4.0.1", "fd00:1::1"]);
    assert_eq!(w.addrs("t1", "ds"), ["10.4.0.2/24", "fd00:1::2/64"]);
    assert_eq!(w.vnis("ds"), "4096,4097", "one VXLAN id per IPAM config, whatever its family");
}

#[test]
fn ipv6_only_networks_work_and_get_a_vxlan_id() {
    let mut w = World::new();
    w.put(with_subnets(network("v6"), &["fd00:2::/120"]));
    w.put(service("s", &["v6"]));
    ok(w.pass());
    assert_eq!(w.vnis("v6"), "4096", "SwarmKit hands every IPAM config to the overlay driver");
    assert_eq!(w.vip("s", "v6").as_deref(), Some("fd00:2::2/120"));
}

// ---------------------------------------------------------------------------------------------
// 2.5 VXLAN ids

fn with_weave() -> ClusterConfig {
    ClusterConfig { network_plugins: vec!["weave".into()], ..Default::default() }
}

#[test]
fn vxlan_ids_are_serial_from_4096_one_per_ipam_config() {
    let mut w = World::with_config(with_weave());
    w.put(network("a"));
    w.put(with_subnets(network("b"), &["10.20.0.0/24", "10.21.0.0/24", "fd00:21::/64"]));
    w.put(with_driver(network("remote"), "weave"));
    ok(w.pass());
    assert_eq!(w.vnis("a"), "4096");
    assert_eq!(w.vnis("b"), "4097,4098,4099");
    assert_eq!(w.vnis("remote"), "", "only the overlay driver gets VXLAN ids");
    assert_eq!(w.subnets("remote"), ["10.0.1.0/24"], "global remote drivers still get subnets");
}

#[test]
fn pinned_vxlan_ids_are_honoured_and_clash_as_in_use() {
    let mut w = World::new();
    w.put(with_vnis(network("a"), "5000"));
    w.put(with_vnis(network("b"), "5000"));
    w.put(with_vnis(network("c"), "0,2"));
    let errors = w.pass();
    assert_eq!(w.vnis("a"), "5000");
    let clash = error_of(&errors, &net_id("b"));
    assert!(matches!(clash, AllocError::InUse { .. }) && clash.to_string().contains("5000"), "{clash}");
    // As SwarmKit's overlay driver reads the list: 0 pins nothing (an id is drawn) and the ids
    // after the one config's are ignored.
    assert!(errors.iter().all(|e| e.object != net_id("c")), "{errors:?}");
    assert_eq!(w.vnis("c"), "5001");
    // One pinned id per config, the rest ignored; missing ones fresh.
    w.put(with_vnis(with_subnets(network("d"), &["10.30.0.0/24", "10.31.0.0/24"]), "6000"));
    w.put(with_vnis(network("e"), "7000,7001"));
    ok(w.pass().into_iter().filter(|e| e.object != net_id("b")).collect());
    assert_eq!(w.vnis("d"), "6000,6001", "automatic ids continue after the highest in use");
    assert_eq!(w.vnis("e"), "7000");
}

// ---------------------------------------------------------------------------------------------
// 1.2 Kinds of network

#[test]
fn exactly_one_ingress_network() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(ingress("second"));
    let errors = w.pass();
    assert_eq!(w.subnets("ingress"), ["10.0.0.0/24"]);
    let second = error_of(&errors, &net_id("second"));
    assert!(matches!(second, AllocError::InUse { .. }), "{second}");
    let mut bad = ingress("attachable-ingress");
    bad.spec.attachable = true;
    w.delete(net_id("second"));
    w.put(bad);
    assert!(!error_of(&w.pass(), &net_id("attachable-ingress")).is_retryable());
    w.put(with_driver(ingress("bridge-ingress"), "bridge"));
    assert!(!error_of(&w.pass(), &net_id("bridge-ingress")).is_retryable());
}

#[test]
fn the_legacy_ingress_label_marks_the_ingress() {
    let mut n = network("old");
    n.spec.name = "ingress".into();
    n.spec.labels.insert(INTERNAL_NETWORK_LABEL.into(), "true".into());
    let mut w = World::new();
    w.put(n);
    ok(w.pass());
    assert_eq!(w.alloc.ingress().map(NetworkId::as_str), Some("old"));
}

#[test]
fn node_local_networks_get_no_addresses_vips_or_lb() {
    let mut w = World::new();
    w.put(with_driver(network("br"), "bridge"));
    w.put(service("s", &["br"]));
    let mut t = w.task_of("t1", "s");
    t.node_id = Some("n1".into());
    w.put(t);
    w.put(node("n1"));
    ok(w.settle());
    let br = w.network("br");
    assert_eq!(br.driver_state.as_ref().unwrap().name, "bridge");
    assert_eq!(br.ipam.as_ref().unwrap().configs, vec![], "an empty but present IPAM");
    assert!(w.vip_networks("s").is_empty());
    assert_eq!(w.task("t1").networks.len(), 1);
    assert!(w.addrs("t1", "br").is_empty());
    w.assign("t1", "n1");
    ok(w.settle());
    assert!(w.node("n1").attachments.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2.6 VIPs

#[test]
fn vips_per_network_plus_ingress_when_a_port_is_published() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(network("b"));
    w.put(with_ports(service("s", &["a", "b", "a"]), vec![port("web", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.vip_networks("s"), ["ingress", "a", "b"]);
    assert_eq!(w.vip("s", "a").as_deref(), Some("10.0.1.2/24"));
}

#[test]
fn dnsrr_services_get_no_vips_and_switching_frees_them() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(service("s", &["a"]));
    ok(w.pass());
    assert_eq!(w.holder("a", "10.0.0.2"), Some(Holder::Vip("s".into())));
    w.put(dnsrr(w.service("s").clone()));
    ok(w.pass());
    assert!(w.vip_networks("s").is_empty());
    assert_eq!(w.holder("a", "10.0.0.2"), None);
}

#[test]
fn vips_are_kept_across_updates_that_keep_the_network() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(network("b"));
    w.put(network("c"));
    w.put(service("s", &["a", "b"]));
    ok(w.pass());
    let (vip_a, vip_b) = (w.vip("s", "a"), w.vip("s", "b"));
    let mut s = w.service("s").clone();
    s.spec.task_networks = vec!["a".into(), "c".into()];
    w.put(s);
    ok(w.pass());
    assert_eq!(w.vip("s", "a"), vip_a);
    assert_eq!(w.vip("s", "b"), None);
    assert!(w.vip("s", "c").is_some());
    let b_addr = vip_b.unwrap().split('/').next().unwrap().to_string();
    assert_eq!(w.holder("b", &b_addr), None, "the VIP on the dropped network is freed");
}

#[test]
fn the_ingress_vip_goes_with_the_last_ingress_port() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("s", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.vip_networks("s"), ["ingress"]);
    w.put(with_ports(w.service("s").clone(), vec![]));
    ok(w.pass());
    assert!(w.vip_networks("s").is_empty());
    assert_eq!(w.holder("ingress", "10.0.0.2"), None, "no leaked ingress VIP (swarmkit#2161)");
}

#[test]
fn services_cannot_list_the_ingress_network() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(service("s", &["ingress"]));
    assert!(!error_of(&w.pass(), &svc_id("s")).is_retryable());
}

#[test]
fn a_spec_change_that_touches_no_network_mode_or_port_reallocates_nothing() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(service("s", &["a"]));
    ok(w.pass());
    let mut s = w.service("s").clone();
    s.spec.replicas = 7;
    w.put(s);
    let before = w.store.clone();
    assert_eq!(w.allocate(&svc_id("s")), Ok(Outcome::Unchanged));
    assert_eq!(w.store, before);
}

// ---------------------------------------------------------------------------------------------
// 2.9 Ports

#[test]
fn published_ports_in_spec_order_with_dynamic_numbers_per_protocol() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    let ports = vec![
        port("dyn-tcp", Protocol::Tcp, 80, 0, PublishMode::Ingress),
        port("fixed", Protocol::Tcp, 443, 8443, PublishMode::Ingress),
        port("dyn-udp", Protocol::Udp, 53, 0, PublishMode::Ingress),
        port("host", Protocol::Tcp, 22, 2222, PublishMode::Host),
    ];
    w.put(with_ports(service("s", &[]), ports));
    ok(w.pass());
    // The spec's order, as SwarmKit's first allocation writes it (a real swarm stored a service
    // created with `-p 8080:80 -p mode=host,...,published=9000 -p 82 -p 8081:83` in that order).
    assert_eq!(
        w.published("s"),
        [("dyn-tcp".into(), 30000), ("fixed".into(), 8443), ("dyn-udp".into(), 30000), ("host".into(), 2222)]
    );
    // Host-mode ports are not reserved: another service may use 2222 on the routing mesh.
    w.put(with_ports(service("t", &[]), vec![port("", Protocol::Tcp, 22, 2222, PublishMode::Ingress)]));
    ok(w.pass());
}

#[test]
fn a_published_port_in_use_fails_the_whole_service() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("s1", &[]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    ok(w.pass());
    w.put(network("a"));
    ok(w.pass());
    let ports = vec![
        port("", Protocol::Tcp, 81, 0, PublishMode::Ingress),
        port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress),
    ];
    w.put(with_ports(service("s2", &["a"]), ports));
    let error = error_of(&w.pass(), &svc_id("s2"));
    assert!(matches!(&error, AllocError::InUse { holder, .. } if holder == "service s1"), "{error}");
    assert!(error.to_string().contains("tcp/8080"), "{error}");
    assert!(w.service("s2").endpoint.is_none());
    assert_eq!(w.holder("a", "10.0.1.2"), None, "all or nothing: no VIP kept");
    // The same port on another protocol is fine.
    w.put(with_ports(service("s3", &[]), vec![port("", Protocol::Udp, 80, 8080, PublishMode::Ingress)]));
    assert!(w.pass().iter().all(|e| e.object != svc_id("s3")));
}

#[test]
fn dynamic_ports_are_sticky_across_updates() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("other", &[]), vec![port("", Protocol::Tcp, 1, 0, PublishMode::Ingress)]));
    w.put(with_ports(service("s", &[]), vec![port("web", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    let web = w.published("s")[0].1;
    let ports = vec![
        port("admin", Protocol::Tcp, 9000, 0, PublishMode::Ingress),
        port("web", Protocol::Tcp, 80, 0, PublishMode::Ingress),
    ];
    w.put(with_ports(w.service("s").clone(), ports));
    ok(w.pass());
    let published = w.published("s");
    assert_eq!(published[1], ("web".into(), web), "the existing dynamic port is kept");
    assert_eq!(published[0].1, web + 1, "the new one continues after the highest port in use");
}

#[test]
fn ingress_ports_with_dnsrr_are_invalid() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(dnsrr(with_ports(service("s", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)])));
    assert!(!error_of(&w.pass(), &svc_id("s")).is_retryable());
    // Host-mode ports with DNSRR are fine.
    w.put(dnsrr(with_ports(service("s", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Host)])));
    ok(w.pass());
}

#[test]
fn a_service_needing_the_missing_ingress_waits() {
    let mut w = World::new();
    w.put(with_ports(service("s", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    let error = error_of(&w.pass(), &svc_id("s"));
    assert!(matches!(error, AllocError::DependencyNotAllocated { .. }) && error.to_string().contains("ingress"));
    w.put(ingress("ingress"));
    ok(w.pass());
    assert_eq!(w.published("s")[0].1, 30000);
}

// ---------------------------------------------------------------------------------------------
// 2.7 Task attachments

#[test]
fn task_attachments_ingress_first_then_the_tasks_own_networks() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(network("b"));
    w.put(with_ports(service("s", &["a"]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    w.put(w.task_of("t1", "s"));
    let mut own = w.task_of("t2", "s");
    own.spec.networks = vec!["b".into()];
    w.put(own);
    ok(w.pass());
    let networks = |t: &str| w.task(t).networks.iter().map(|a| a.network_id.to_string()).collect::<Vec<_>>();
    assert_eq!(networks("t1"), ["ingress", "a"]);
    assert_eq!(networks("t2"), ["ingress", "b"], "a task's own networks are its attachments");
    assert_eq!(w.task("t1").endpoint, w.service("s").endpoint, "tasks copy the service endpoint");
}

#[test]
fn tasks_wait_for_their_service_and_networks() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(with_subnets(network("b"), &["10.0.0.0/16"]));
    w.put(service("s", &["a", "b"]));
    w.put(w.task_of("t1", "s"));
    w.put(task("orphan", Some("missing")));
    let errors = w.pass();
    for id in ["s", "t1"] {
        let object = if id == "s" { svc_id(id) } else { task_id(id) };
        let error = error_of(&errors, &object);
        assert!(matches!(error, AllocError::DependencyNotAllocated { .. }), "{id}: {error}");
    }
    assert!(matches!(error_of(&errors, &task_id("orphan")), AllocError::DependencyNotAllocated { .. }));
    assert_eq!(w.state("t1"), TaskState::New);
    // The user drops network b from the service; the orchestrator replaces t1 by t2.
    let mut s = w.service("s").clone();
    s.spec.task_networks = vec!["a".into()];
    w.put(s);
    w.delete(task_id("t1"));
    w.delete(net_id("b"));
    w.put(w.task_of("t2", "s"));
    ok(w.pass().into_iter().filter(|e| e.object != task_id("orphan")).collect());
    assert_eq!(w.state("t2"), TaskState::Pending, "no five-minute retry: the next pass allocates it");
}

#[test]
fn task_allocation_is_all_or_nothing() {
    let mut w = World::new();
    w.put(network("big"));
    w.put(with_subnets(network("tiny"), &["10.3.0.0/30"]));
    w.put(service("s", &["big", "tiny"]));
    ok(w.pass());
    w.put(w.task_of("t1", "s"));
    let error = error_of(&w.pass(), &task_id("t1"));
    assert!(matches!(error, AllocError::Exhausted { .. }) && error.to_string().contains("tiny"), "{error}");
    assert_eq!(w.holder("big", "10.0.0.3"), None, "the address taken on big was given back");
    assert_eq!(w.state("t1"), TaskState::New);
}

#[test]
fn tasks_without_networks_go_pending_at_once() {
    let mut w = World::new();
    w.put(service("s", &[]));
    w.put(w.task_of("t1", "s"));
    ok(w.pass());
    assert_eq!(w.state("t1"), TaskState::Pending);
}

#[test]
fn only_new_tasks_desired_to_run_are_allocated() {
    let mut w = World::new();
    w.put(attachable("a"));
    let mut doomed = container("doomed", "a", "n1", None);
    doomed.desired_state = TaskState::Shutdown;
    w.put(doomed);
    let mut done = container("done", "a", "n1", None);
    done.status.state = TaskState::Complete;
    w.put(done);
    ok(w.pass());
    assert_eq!(w.state("doomed"), TaskState::New);
    assert!(w.task("done").networks.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2.8 Node load-balancer attachments

#[test]
fn nodes_get_lb_addresses_for_ingress_and_their_live_tasks_overlay_networks() {
    let mut w = World::with_config(with_weave());
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(with_driver(network("remote"), "weave"));
    w.put(service("s", &["a", "remote"]));
    w.put(w.task_of("t1", "s"));
    w.put(node("n1"));
    w.put(node("n2"));
    ok(w.settle());
    let networks =
        |w: &World, n: &str| w.node(n).attachments.iter().map(|a| a.network_id.to_string()).collect::<Vec<_>>();
    assert_eq!(networks(&w, "n1"), ["ingress"]);
    w.assign("t1", "n1");
    ok(w.settle());
    assert_eq!(networks(&w, "n1"), ["ingress", "a"], "overlay networks only, ingress first");
    assert_eq!(networks(&w, "n2"), ["ingress"]);
    let lb = w.node_addrs("n1", "a");
    w.set_state("t1", TaskState::Shutdown);
    ok(w.settle());
    assert_eq!(networks(&w, "n1"), ["ingress"], "dropped once no live task on the node needs it");
    let lb_ip = lb[0].split('/').next().unwrap().to_string();
    assert_eq!(w.holder("a", &lb_ip), None);
}

// ---------------------------------------------------------------------------------------------
// 2.10 Deallocation

#[test]
fn terminal_tasks_quarantine_their_addresses_until_deleted() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.2.0.0/29"]));
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        w.put(container(id, "a", "n1", None));
    }
    ok(w.pass());
    w.set_state("t1", TaskState::Failed);
    assert_eq!(w.holder("a", "10.2.0.2"), Some(Holder::Retired("t1".into())));
    // The pool is full but for t1's address: under pressure a retired address is reused.
    w.put(container("t6", "a", "n1", None));
    ok(w.pass());
    assert_eq!(w.addrs("t6", "a"), ["10.2.0.2/29"]);
    w.delete(task_id("t1"));
    assert_eq!(w.holder("a", "10.2.0.2"), Some(Holder::Task("t6".into())));
}

#[test]
fn deleting_objects_frees_everything_they_held() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(with_ports(service("s", &["a"]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    w.put(w.task_of("t1", "s"));
    w.put(node("n1"));
    ok(w.settle());
    w.assign("t1", "n1");
    ok(w.settle());
    w.delete(task_id("t1"));
    w.delete(svc_id("s"));
    w.delete(node_id("n1"));
    w.delete(net_id("a"));
    let claimed: Vec<Holder> = w.alloc.claimed_addresses().into_iter().map(|c| c.holder).collect();
    assert_eq!(claimed, [Holder::Gateway("ingress".into())]);
    w.put(with_ports(service("s2", &[]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    w.put(with_vnis(network("b"), "4097"));
    ok(w.pass());
}

// ---------------------------------------------------------------------------------------------
// Design principles

#[test]
fn restore_never_allocates() {
    let objects = vec![
        Object::from(network("a")),
        Object::from(service("s", &["a"])),
        Object::from(task("t1", Some("s"))),
        Object::from(node("n1")),
    ];
    let (w, report) = World::restored(ClusterConfig::default(), objects.clone());
    assert!(w.alloc.claimed_addresses().is_empty());
    assert!(w.alloc.pool_usage().is_empty());
    assert_eq!(report.queue, [net_id("a"), svc_id("s"), task_id("t1")]);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(w.store.values().cloned().collect::<Vec<_>>(), objects);
}

#[test]
fn a_dropped_proposal_leaves_the_engine_byte_identical() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(service("s", &["a"]));
    ok(w.pass());
    w.put(w.task_of("t1", "s"));
    w.put(network("b"));
    let before = format!("{:?}", w.alloc);
    let proposal = {
        let mut tx = w.alloc.begin();
        tx.allocate_network(w.network("b")).unwrap();
        tx.allocate_task(w.task("t1"), Some(w.service("s"))).unwrap();
        tx.finish()
    };
    // Network b, task t1, and network a for its address cursor (t1 took an address there).
    assert_eq!(proposal.len(), 3);
    drop(proposal);
    assert_eq!(format!("{:?}", w.alloc), before);
}

#[test]
fn proposals_are_in_dependency_order_and_a_prefix_commit_stays_consistent() {
    let mut w = World::new();
    let mut t1 = task("t1", Some("s"));
    t1.spec.networks = vec!["a".into()];
    w.put(t1);
    w.put(service("s", &["a"]));
    w.put(network("a"));
    let proposal = {
        let mut tx = w.alloc.begin();
        tx.allocate_network(w.network("a")).unwrap();
        tx.allocate_service(w.service("s")).unwrap();
        tx.allocate_task(w.task("t1"), Some(w.service("s"))).unwrap();
        tx.finish()
    };
    let kinds: Vec<&str> = proposal
        .updates()
        .iter()
        .map(|o| match o {
            Object::Network(_) => "network",
            Object::Service(_) => "service",
            Object::Task(_) => "task",
            Object::Node(_) => "node",
        })
        .collect();
    assert_eq!(kinds, ["network", "service", "task"]);
    w.commit_prefix(&proposal, 2);
    assert_eq!(w.state("t1"), TaskState::New);
    ok(w.pass());
    assert_eq!(w.state("t1"), TaskState::Pending);
}

#[test]
fn two_objects_of_one_proposal_never_share_a_resource() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("a"));
    w.put(network("b"));
    for id in ["s1", "s2"] {
        w.put(with_ports(service(id, &["a"]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    }
    ok(w.pass());
    assert_ne!(w.subnets("a"), w.subnets("b"));
    assert_ne!(w.vnis("a"), w.vnis("b"));
    assert_ne!(w.vip("s1", "a"), w.vip("s2", "a"));
    assert_ne!(w.published("s1"), w.published("s2"));
}

#[test]
fn invalid_configs_name_the_field() {
    let cases: Vec<(ClusterConfig, &str)> = vec![
        (ClusterConfig { default_address_pools: vec![], ..Default::default() }, "default_address_pools"),
        (ClusterConfig { subnet_size: 4, ..Default::default() }, "subnet_size"),
        (
            ClusterConfig {
                default_address_pools: vec!["10.0.0.0/8".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
                ..Default::default()
            },
            "default_address_pools[1]",
        ),
        (ClusterConfig { dynamic_port_range: Range { min: 5, max: 4 }, ..Default::default() }, "dynamic_port_range"),
        (ClusterConfig { vxlan_id_range: Range { min: 1, max: 1 << 24 }, ..Default::default() }, "vxlan_id_range"),
        (
            ClusterConfig {
                default_address_pools: vec![Ipv4Net::new([10, 0, 0, 1].into(), 8).unwrap()],
                ..Default::default()
            },
            "default_address_pools[0]",
        ),
    ];
    for (config, field) in cases {
        let error = Allocator::new(config).expect_err(field);
        assert!(error.to_string().contains(field) && !error.is_retryable(), "{field}: {error}");
    }
}

#[test]
fn new_resources_are_taken_before_old_ones_are_freed() {
    let config = ClusterConfig { dynamic_port_range: Range { min: 30000, max: 30001 }, ..Default::default() };
    let mut w = World::with_config(config);
    w.put(ingress("ingress"));
    w.put(with_ports(service("s", &[]), vec![port("a", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("s"), [("a".into(), 30000)]);
    // Port "a" is replaced by "b": "b" is picked while 30000 is still held, and 30000 is released
    // only when the update commits.
    w.put(with_ports(w.service("s").clone(), vec![port("b", Protocol::Tcp, 81, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("s"), [("b".into(), 30001)]);
    w.put(with_ports(service("t", &[]), vec![port("", Protocol::Tcp, 82, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("t")[0].1, 30000, "released by the committed update");
}

#[test]
fn nothing_grows_with_churn() {
    let mut w = World::new();
    let empty = w.alloc.clone();
    for round in 0..50 {
        w.put(ingress("ingress"));
        w.put(network("a"));
        w.put(with_ports(service("s", &["a"]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
        w.put(node("n1"));
        for i in 0..3 {
            w.put(task(&format!("t{i}"), Some("s")));
        }
        ok(w.settle());
        w.assign("t0", "n1");
        ok(w.settle());
        w.set_state("t1", TaskState::Failed);
        for i in 0..3 {
            w.delete(task_id(&format!("t{i}")));
        }
        w.delete(svc_id("s"));
        w.delete(node_id("n1"));
        w.delete(net_id("a"));
        w.delete(net_id("ingress"));
        assert_eq!(w.alloc, empty, "round {round} left state behind");
    }
}

#[test]
fn tasks_of_an_invalid_service_wait_for_it_to_be_fixed() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    let dup = |p| port("", Protocol::Tcp, p, 8080, PublishMode::Ingress);
    w.put(with_ports(service("s", &[]), vec![dup(80), dup(81)]));
    w.put(w.task_of("t", "s"));
    let errors = w.pass();
    assert!(!error_of(&errors, &svc_id("s")).is_retryable());
    let waiting = error_of(&errors, &task_id("t"));
    assert!(waiting.is_retryable() && waiting.to_string().contains("service s"), "{waiting}");
    w.put(with_ports(w.service("s").clone(), vec![dup(80)]));
    ok(w.pass());
    assert_eq!(w.state("t"), TaskState::Pending);
}

#[test]
fn pool_usage_counts_live_and_retired_addresses_and_the_longest_free_run() {
    let mut w = World::new();
    w.put(with_subnets(network("a"), &["10.5.0.0/28"]));
    w.put(dnsrr(service("s", &["a"])));
    for t in ["t1", "t2", "t3", "t4"] {
        w.put(w.task_of(t, "s"));
    }
    ok(w.pass());
    assert_eq!(w.addrs("t4", "a"), ["10.5.0.5/28"]);
    w.delete(task_id("t2"));
    w.set_state("t3", TaskState::Failed);
    let [usage] = w.alloc.pool_usage().try_into().expect("one pool");
    // Pick range .1 to .14: the gateway .1, t1 .2, t4 .5 live; t3 .4 retired; free .3 and .6 to .14.
    assert_eq!((usage.capacity, usage.live, usage.retired, usage.largest_free_run), (14, 3, 1, 9));
    w.delete(task_id("t4"));
    let [usage] = w.alloc.pool_usage().try_into().expect("one pool");
    assert_eq!(usage.largest_free_run, 10, "a free run reaching the top of the range");
}

/// Errors name a network by its id and its name.
#[test]
fn exhausted_errors_name_the_network_by_id_and_name() {
    let mut w = World::new();
    let mut front = with_subnets(attachable("n1a"), &["10.9.0.0/30"]);
    front.spec.name = "front".into();
    w.put(front);
    w.put(container("t1", "n1a", "n1", None));
    w.put(container("t2", "n1a", "n1", None));
    let errors = w.pass();
    let full = error_of(&errors, &task_id("t2"));
    assert_eq!(full.to_string(), "IPv4 addresses of network n1a (front) in 10.9.0.0/30 exhausted");
}
