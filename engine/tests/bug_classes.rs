//! SwarmKit's allocator bug classes B1..B12 (docs/swarmkit.md section 4), each replayed against
//! the engine alone as the spec's sequence, plus restore's handling of inconsistent stored state
//! (principle 1: typed findings, a deterministic winner, losers queued, no silent double owner).

mod support;

use support::*;
use swarmalloc::*;

fn ok(errors: Vec<ObjectError>) {
    assert!(errors.is_empty(), "allocation errors: {errors:#?}");
}

#[test]
fn b1_restore_then_allocate_never_hands_out_a_stored_address() {
    // T1 RUNNING holds .2, T2 is NEW; "a-new" sorts before "t1", so id order would serve it first.
    let objects = vec![
        Object::from(allocated("n", "10.0.0.0/24", 4096)),
        Object::from(running("t1", vec![attached("n", &["10.0.0.2/24"])])),
        Object::from(container("a-new", "n", "n1", None)),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.queue, [task_id("a-new")]);
    ok(w.pass());
    assert_eq!(w.addrs("a-new", "n"), ["10.0.0.3/24"]);
    assert_eq!(w.holder("n", "10.0.0.2"), Some(Holder::Task("t1".into())));
}

#[test]
fn b2_vips_are_restored() {
    let mut svc = service("s", &["n"]);
    svc.endpoint = Some(Endpoint::default());
    let svc = with_vip(svc, "n", "10.0.0.2/24");
    let objects = vec![
        Object::from(allocated("n", "10.0.0.0/24", 4096)),
        Object::from(svc),
        // The variant without an endpoint spec (swarmkit#2505).
        Object::from(with_vip(service("bare", &["n"]), "n", "10.0.0.3/24")),
        Object::from(container("t", "n", "n1", None)),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(w.holder("n", "10.0.0.2"), Some(Holder::Vip("s".into())));
    assert_eq!(w.holder("n", "10.0.0.3"), Some(Holder::Vip("bare".into())));
    ok(w.pass());
    assert_eq!(w.addrs("t", "n"), ["10.0.0.4/24"]);
    assert_eq!(w.vip("s", "n").as_deref(), Some("10.0.0.2/24"), "the VIP survives re-allocation");
}

#[test]
fn b3_a_new_network_never_takes_an_unrestored_networks_subnet_or_vni() {
    // N1 is allocated; N0 (created just before the crash) sorts first by id.
    for objects in [
        vec![Object::from(network("n0")), Object::from(allocated("n1", "10.0.0.0/24", 4096))],
        vec![Object::from(allocated("n1", "10.0.0.0/24", 4096)), Object::from(network("n0"))],
    ] {
        let (mut w, _) = World::restored(ClusterConfig::default(), objects);
        ok(w.pass());
        assert_eq!(w.subnets("n0"), ["10.0.1.0/24"]);
        assert_eq!(w.vnis("n0"), "4097");
        assert_eq!(w.subnets("n1"), ["10.0.0.0/24"]);
    }
}

#[test]
fn b4_a_tasks_addresses_are_freed_even_when_one_of_its_networks_is_gone() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(network("stack"));
    w.put(with_ports(service("s", &["stack"]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    w.put(w.task_of("t1", "s"));
    ok(w.pass());
    let on_ingress = w.addrs("t1", "ingress")[0].split('/').next().unwrap().to_string();
    assert_eq!(w.holder("ingress", &on_ingress), Some(Holder::Task("t1".into())));
    // `service rm`, then `network rm stack` (allowed: the task is no longer desired running).
    w.delete(svc_id("s"));
    w.delete(net_id("stack"));
    w.set_state("t1", TaskState::Shutdown);
    assert_eq!(w.holder("ingress", &on_ingress), Some(Holder::Retired("t1".into())));
    w.delete(task_id("t1"));
    assert_eq!(w.holder("ingress", &on_ingress), None, "no leak (moby#37338)");
}

#[test]
fn b5_delete_racing_an_uncommitted_allocation_leaks_nothing_and_frees_nothing_twice() {
    let mut w = World::new();
    w.put(attachable("a"));
    w.allocate(&net_id("a")).unwrap();
    w.put(container("t1", "a", "n1", None));
    let proposal = {
        let mut tx = w.alloc.begin();
        tx.allocate_task(w.task("t1"), None).unwrap();
        tx.finish()
    };
    // The delete commits first; the allocation's commit then fails (not found) and is dropped.
    w.delete(task_id("t1"));
    drop(proposal);
    assert!(w.alloc.claimed_addresses().iter().all(|c| c.holder == Holder::Gateway("a".into())));
    // The reverse: a task deleted after its allocation committed, then a stale second delete.
    w.put(container("t2", "a", "n1", None));
    ok(w.pass());
    w.delete(task_id("t2"));
    w.put(container("t3", "a", "n1", None));
    ok(w.pass());
    let t3 = w.addrs("t3", "a")[0].split('/').next().unwrap().to_string();
    w.alloc.observe_deleted(&task_id("t2"));
    assert_eq!(w.holder("a", &t3), Some(Holder::Task("t3".into())), "a stale free cannot free someone else");
}

#[test]
fn b6_a_stopped_tasks_address_is_quarantined_across_failover() {
    let mut w = World::new();
    w.put(attachable("a"));
    for id in ["t1", "t2"] {
        w.put(container(id, "a", "n1", None));
    }
    ok(w.pass());
    // The status says SHUTDOWN, but the container may still run on an unreachable node.
    w.set_state("t1", TaskState::Shutdown);
    w.restore();
    w.put(container("t3", "a", "n1", None));
    ok(w.pass());
    assert_eq!(w.addrs("t3", "a"), ["10.0.0.4/24"], "not .2: a new leader does not reuse it at once");
    assert_eq!(w.holder("a", "10.0.0.2"), Some(Holder::Retired("t1".into())));
}

#[test]
fn b6_an_orphaned_tasks_address_is_never_handed_out_even_when_the_pool_is_full() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.9.0.0/29"]));
    // Gateway .1; .2 to .6 for five containers.
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        w.put(container(id, "a", "n1", None));
    }
    ok(w.pass());
    assert_eq!(w.addrs("t1", "a"), ["10.9.0.2/29"]);
    // The agent reported t1 stopped; the manager orphaned t2 (its node is down: it may still run).
    w.set_state("t1", TaskState::Shutdown);
    w.set_state("t2", TaskState::Orphaned);
    w.put(container("t6", "a", "n1", None));
    w.put(container("t7", "a", "n1", None));
    let errors = w.pass();
    assert_eq!(w.addrs("t6", "a"), ["10.9.0.2/29"], "a stopped task's address, once nothing else is free");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(errors[0].error, AllocError::Exhausted { .. }), "{errors:?}");
    assert_eq!(w.holder("a", "10.9.0.3"), Some(Holder::Retired("t2".into())), "the orphan keeps its address");
    // Asking for the orphan's address explicitly is refused too.
    w.put(container("t8", "a", "n1", Some("10.9.0.3")));
    let errors = w.pass();
    assert!(errors.iter().any(|e| matches!(e.error, AllocError::InUse { .. })), "{errors:?}");
}

#[test]
fn b6_node_lb_addresses_are_released_only_when_the_node_update_commits() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(service("s", &["a"]));
    w.put(w.task_of("t1", "s"));
    w.put(node("n1"));
    ok(w.settle());
    w.assign("t1", "n1");
    ok(w.settle());
    let lb = w.node_addrs("n1", "a")[0].split('/').next().unwrap().to_string();
    w.set_state("t1", TaskState::Complete);
    // Until the node's update (dropping the attachment) commits, the address stays held.
    assert_eq!(w.holder("a", &lb), Some(Holder::NodeLb("n1".into())));
    ok(w.settle());
    assert_eq!(w.holder("a", &lb), None);
}

#[test]
fn b7_nothing_stays_in_new_once_its_dependencies_are_met() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("s1", &[]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    ok(w.pass());
    w.put(with_ports(service("s2", &[]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    w.put(w.task_of("blocked", "s2"));
    w.put(service("plain", &[]));
    w.put(w.task_of("no-networks", "plain"));
    let errors = w.pass();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.error.is_retryable()));
    assert_eq!(w.state("no-networks"), TaskState::Pending);
    w.delete(svc_id("s1"));
    ok(w.pass());
    assert_eq!(w.state("blocked"), TaskState::Pending, "retried on the next pass, not in five minutes");
}

#[test]
fn b8_dynamic_ports_survive_failover_and_concurrent_creates_have_one_winner() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    w.put(with_ports(service("s1", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("s1")[0].1, 30000);
    w.restore();
    w.put(with_ports(service("s2", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    ok(w.pass());
    assert_eq!(w.published("s2")[0].1, 30001, "30000 was re-reserved on restore (moby#29247)");
    // S3 and S4 both ask for 8080 in one pass; the leader restarts in between.
    for id in ["s3", "s4"] {
        w.put(with_ports(service(id, &[]), vec![port("", Protocol::Tcp, 80, 8080, PublishMode::Ingress)]));
    }
    w.allocate(&svc_id("s3")).unwrap();
    w.restore();
    let errors = w.pass();
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0].error, AllocError::InUse { holder, .. } if holder == "service s3"));
}

#[test]
fn b9_ingress_rules() {
    let mut w = World::new();
    w.put(with_ports(service("s", &[]), vec![port("", Protocol::Tcp, 80, 0, PublishMode::Ingress)]));
    w.put(w.task_of("t", "s"));
    let errors = w.pass();
    assert!(errors.iter().all(|e| matches!(e.error, AllocError::DependencyNotAllocated { .. })), "{errors:#?}");
    w.put(ingress("ingress"));
    w.put(ingress("ingress-2"));
    let errors = w.pass();
    assert_eq!(errors.len(), 1, "only the second ingress fails: {errors:#?}");
    assert_eq!(w.state("t"), TaskState::Pending);
    assert_eq!(w.addrs("t", "ingress").len(), 1);
}

#[test]
fn b10_odd_stored_state_never_panics() {
    // A node attached to a missing network and to one without addresses; a task on a missing network.
    let mut n = node("n1");
    n.attachments = vec![attached("gone", &["10.9.0.2/24"]), attached("a", &[])];
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(n),
        Object::from(running("t1", vec![attached("gone", &["10.9.0.3/24"]), attached("a", &["10.0.0.2/24"])])),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    let dangling = report.findings.iter().filter(|f| matches!(f, Finding::UnallocatedNetwork { .. })).count();
    assert_eq!(dangling, 2, "{:#?}", report.findings);
    ok(w.settle());
    let networks: Vec<&str> = w.node("n1").attachments.iter().map(|a| a.network_id.as_str()).collect();
    assert_eq!(networks, ["a"]);
    assert_eq!(w.node_addrs("n1", "a"), ["10.0.0.3/24"]);
}

#[test]
fn b11_a_cut_batch_leaves_nothing_uncommitted_behind() {
    let mut w = World::new();
    w.put(network("a"));
    w.put(service("s", &["a"]));
    w.put(w.task_of("t1", "s"));
    let proposal = {
        let mut tx = w.alloc.begin();
        tx.allocate_network(w.network("a")).unwrap();
        tx.allocate_service(w.service("s")).unwrap();
        tx.allocate_task(w.task("t1"), Some(w.service("s"))).unwrap();
        tx.finish()
    };
    // Nothing of an uncommitted proposal is visible: a second transaction picks the same subnet.
    let again = {
        let mut tx = w.alloc.begin();
        tx.allocate_network(w.network("a")).unwrap();
        tx.finish()
    };
    let allocation = |p: &Proposal| match &p.updates()[0] {
        Object::Network(n) => (n.ipam.as_ref().map(|i| i.configs.clone()), n.driver_state.clone()),
        other => panic!("the network comes first, not {other:?}"),
    };
    assert_eq!(allocation(&again), allocation(&proposal));
    // Only the network's transaction commits before the leader is lost.
    w.commit_prefix(&proposal, 1);
    w.restore();
    assert_eq!(w.subnets("a"), ["10.0.0.0/24"]);
    assert!(w.service("s").endpoint.is_none());
    ok(w.pass());
    assert_eq!(w.state("t1"), TaskState::Pending);
    // The network landed with its address cursor at .3 (the VIP took .2 and the task .3 in that
    // proposal): the next pass moves on instead of handing the lost picks out again at once.
    assert_eq!(w.vip("s", "a").as_deref(), Some("10.0.0.4/24"));
    assert_eq!(w.addrs("t1", "a"), ["10.0.0.5/24"], "the VIP took .4 in the same pass, in the same subnet");
}

#[test]
fn b12_same_store_same_answers_whatever_the_restore_order() {
    let base = [
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(with_subnets(attachable("multi"), &["10.5.1.0/28", "10.5.0.0/28"])),
        Object::from(running("t1", vec![attached("a", &["10.0.0.7/24"])])),
        Object::from(container("t2", "a", "n1", None)),
        Object::from(container("t3", "multi", "n1", None)),
        Object::from(network("b")),
    ];
    let mut proposals = Vec::new();
    for order in [vec![0, 1, 2, 3, 4, 5], vec![5, 4, 3, 2, 1, 0], vec![3, 0, 5, 1, 4, 2]] {
        let objects: Vec<Object> = order.iter().map(|&i| base[i].clone()).collect();
        let (mut w, _) = World::restored(ClusterConfig::default(), objects);
        ok(w.pass());
        proposals.push(w.store.clone());
    }
    assert_eq!(proposals[0], proposals[1]);
    assert_eq!(proposals[0], proposals[2]);
    let Object::Task(t3) = &proposals[0][&task_id("t3")] else { unreachable!() };
    assert_eq!(t3.networks[0].addresses[0].to_string(), "10.5.1.2/28", "config order, not map order");
}

// ---------------------------------------------------------------------------------------------
// Restore with inconsistent stored state

#[test]
fn duplicate_addresses_keep_one_owner_and_reallocate_the_losers() {
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(running("t2", vec![attached("a", &["10.0.0.2/24"])])),
        Object::from(running("t1", vec![attached("a", &["10.0.0.2/24"])])),
        Object::from(with_vip(service("s", &["a"]), "a", "10.0.0.3/24")),
        Object::from(running("t3", vec![attached("a", &["10.0.0.3/24"])])),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    let duplicates: Vec<(String, Holder, Vec<Holder>)> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::DuplicateAddress { address, kept, lost, .. } => {
                Some((address.to_string(), kept.clone(), lost.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        duplicates,
        [
            ("10.0.0.2".into(), Holder::Task("t1".into()), vec![Holder::Task("t2".into())]),
            ("10.0.0.3".into(), Holder::Vip("s".into()), vec![Holder::Task("t3".into())]),
        ]
    );
    assert!(report.queue.contains(&task_id("t2")) && report.queue.contains(&task_id("t3")));
    assert!(!report.queue.contains(&task_id("t1")));
    ok(w.pass());
    assert_eq!(w.addrs("t1", "a"), ["10.0.0.2/24"]);
    assert_eq!(w.addrs("t2", "a"), ["10.0.0.4/24"]);
    assert_eq!(w.addrs("t3", "a"), ["10.0.0.5/24"]);
    assert!(w.alloc.findings().is_empty(), "{:#?}", w.alloc.findings());
}

#[test]
fn overlapping_subnets_and_duplicate_vnis_keep_the_first_ranked_network() {
    let objects = vec![
        Object::from(allocated("b", "10.0.0.0/16", 4100)),
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(allocated("c", "10.9.0.0/24", 4096)),
        Object::from({
            let mut i = allocated("z-ingress", "10.9.0.0/24", 4200);
            i.spec.ingress = true;
            i
        }),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    let conflicts: Vec<String> = report
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::NetworkConflict { network, .. } => Some(network.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(conflicts, ["b", "c"], "the ingress ranks first, then ids: {:#?}", report.findings);
    assert_eq!(report.queue, [net_id("b"), net_id("c")]);
    ok(w.pass());
    // Their specs left the subnet to the default pools, so the cursor continues after the highest
    // default subnet in use, the ingress's 10.9.0.0/24.
    assert_eq!(w.subnets("b"), ["10.9.1.0/24"]);
    assert_eq!(w.subnets("c"), ["10.9.2.0/24"]);
    assert_eq!((w.vnis("b"), w.vnis("c")), ("4201".to_string(), "4202".to_string()));
    assert!(w.alloc.findings().is_empty(), "{:#?}", w.alloc.findings());
}

#[test]
fn duplicate_ports_keep_the_lowest_service() {
    let ingress_net = {
        let mut i = allocated("ingress", "10.0.0.0/24", 4096);
        i.spec.ingress = true;
        i
    };
    let published = |id: &str, spec_published: u16| {
        let spec_port = port("", Protocol::Tcp, 80, spec_published, PublishMode::Ingress);
        let mut s = with_ports(service(id, &[]), vec![spec_port.clone()]);
        let mut runtime = spec_port;
        runtime.published_port = 30000;
        s.endpoint =
            Some(Endpoint { spec: s.spec.endpoint.clone().unwrap(), ports: vec![runtime], virtual_ips: vec![] });
        s
    };
    let objects =
        vec![Object::from(ingress_net), Object::from(published("s2", 0)), Object::from(published("s1", 30000))];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.findings.contains(&Finding::DuplicatePort {
        protocol: Protocol::Tcp,
        port: 30000,
        kept: "s1".into(),
        lost: vec!["s2".into()],
    }));
    ok(w.pass());
    assert_eq!(w.published("s1")[0].1, 30000);
    assert_eq!(w.published("s2")[0].1, 30001, "the loser's dynamic port is re-picked");
}

#[test]
fn addresses_out_of_range_or_reserved_are_reported_and_replaced() {
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(running("outside", vec![attached("a", &["10.1.0.9/24"])])),
        Object::from(running("broadcast", vec![attached("a", &["10.0.0.255/24"])])),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(report.findings.iter().any(|f| matches!(f, Finding::AddressOutsideSubnets { .. })));
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::ReservedAddress { reserved, .. } if reserved == "broadcast address"))
    );
    ok(w.pass());
    assert_eq!(w.addrs("broadcast", "a"), ["10.0.0.2/24"]);
    assert_eq!(w.addrs("outside", "a"), ["10.0.0.3/24"]);
}

#[test]
fn an_unusable_stored_network_is_reallocated() {
    let mut bad = allocated("a", "10.0.0.0/24", 4096);
    bad.ipam.as_mut().unwrap().configs[0].gateway = Some("10.7.7.7".parse().unwrap());
    let (mut w, report) = World::restored(ClusterConfig::default(), vec![Object::from(bad)]);
    assert!(
        matches!(&report.findings[..], [Finding::InvalidStoredNetwork { reason, .. }] if reason.contains("10.7.7.7"))
    );
    ok(w.pass());
    assert_eq!(w.gateways("a"), ["10.0.0.1"]);
}

#[test]
fn a_service_that_lost_its_vip_takes_exactly_one_new_address() {
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(with_vip(service("s1", &["a"]), "a", "10.0.0.2/24")),
        Object::from(with_vip(service("s2", &["a"]), "a", "10.0.0.2/24")),
        Object::from(container("t", "a", "n1", None)),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert_eq!(report.queue, [svc_id("s2"), task_id("t")]);
    ok(w.pass());
    assert_eq!(w.vip("s1", "a").as_deref(), Some("10.0.0.2/24"));
    assert_eq!(w.vip("s2", "a").as_deref(), Some("10.0.0.3/24"));
    assert_eq!(w.addrs("t", "a"), ["10.0.0.4/24"], "nothing was taken and thrown away in between");
}

#[test]
fn holders_on_a_network_that_lost_its_subnet_are_fixed_in_the_same_pass() {
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(allocated("b", "10.0.0.0/16", 4097)),
        Object::from(running("ta", vec![attached("a", &["10.0.0.5/24"])])),
        Object::from(running("tb", vec![attached("b", &["10.0.1.5/16"])])),
        Object::from(running("outside", vec![attached("a", &["10.1.0.9/24"])])),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert!(
        report
            .findings
            .contains(&Finding::UnallocatedNetwork { network: "b".into(), holder: Holder::Task("tb".into()) })
    );
    assert!(
        report.findings.contains(&Finding::AddressOutsideSubnets {
            network: "a".into(),
            address: "10.1.0.9/24".parse().unwrap(),
            holder: Holder::Task("outside".into()),
        }),
        "the stored prefix length is kept: {:#?}",
        report.findings
    );
    assert_eq!(report.queue, [net_id("b"), task_id("outside"), task_id("tb")]);
    ok(w.pass());
    assert_eq!(w.subnets("b"), ["10.0.1.0/24"]);
    assert_eq!(w.addrs("tb", "b"), ["10.0.1.5/24"], "the old address lies in the new subnet: kept");
    assert!(w.alloc.findings().is_empty(), "one pass fixes everything: {:#?}", w.alloc.findings());
}

/// A held address of a family the network no longer has (its allocation was made afresh from an
/// IPv4 default subnet) is dropped from the attachment, not "repaired" with an address the network
/// cannot give; the error for a family a network lacks names it by id and name.
#[test]
fn a_lost_address_of_a_family_the_network_lacks_is_dropped() {
    let objects = vec![
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(running("dual", vec![attached("a", &["10.0.0.6/24", "fd00::6/64"])])),
    ];
    let (mut w, report) = World::restored(ClusterConfig::default(), objects);
    assert_eq!(report.queue, [task_id("dual")]);
    ok(w.pass());
    assert_eq!(w.addrs("dual", "a"), ["10.0.0.6/24"]);
    assert!(w.alloc.findings().is_empty(), "{:#?}", w.alloc.findings());
}
