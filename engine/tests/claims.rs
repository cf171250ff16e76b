//! Two rules tested directly and exhaustively (issue 15, points 19 and 21), because planted
//! defects in them passed every other test:
//! - who keeps an address that two committed objects claim, for every pair of claimant kinds
//!   (gateway, service VIP, node load balancer, live task, retired task), in restore and in
//!   observe: the lowest-ranked claimant, then the lowest id (ARCHITECTURE.md);
//! - all or nothing per object: an object that fails gives back every resource it took in the
//!   transaction, for each kind of resource (address and its cursor, port, VXLAN id, subnet).

mod support;

use support::*;
use swarmalloc::*;

// ---------------------------------------------------------------------------------------------
// Point 19: who keeps a doubly claimed address

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Gateway,
    Vip,
    NodeLb,
    Task,
    Retired,
}

const KINDS: [Kind; 5] = [Kind::Gateway, Kind::Vip, Kind::NodeLb, Kind::Task, Kind::Retired];

/// The network both claimants are on: 10.9.0.0/24, gateway 10.9.0.1.
fn net() -> Network {
    allocated("n", "10.9.0.0/24", 4096)
}

/// A committed object of `kind` (id `{prefix}`) claiming `address` on network n, and the holder
/// it claims as. A gateway claimant is the network itself (its gateway is the address).
fn claimant(kind: Kind, prefix: &str, address: &str) -> (Object, Holder) {
    let addr = format!("{address}/24");
    match kind {
        Kind::Gateway => (Object::from(net()), Holder::Gateway("n".into())),
        Kind::Vip => (Object::from(with_vip(service(prefix, &["n"]), "n", &addr)), Holder::Vip(prefix.into())),
        Kind::NodeLb => {
            let mut node = node(prefix);
            node.attachments = vec![attached("n", &[&addr])];
            (Object::from(node), Holder::NodeLb(prefix.into()))
        }
        Kind::Task | Kind::Retired => {
            let mut t = running(prefix, vec![attached("n", &[&addr])]);
            if kind == Kind::Retired {
                t.status.state = TaskState::Failed;
                return (Object::from(t), Holder::Retired(prefix.into()));
            }
            (Object::from(t), Holder::Task(prefix.into()))
        }
    }
}

/// Every pair of claimant kinds (two gateways of one network cannot be: one pool has one), with
/// the two ids in both orders, so that the id tie-break is covered for pairs of one kind.
fn pairs() -> Vec<(Kind, &'static str, Kind, &'static str)> {
    let mut out = Vec::new();
    for a in KINDS {
        for b in KINDS {
            if a == Kind::Gateway && b == Kind::Gateway {
                continue;
            }
            out.push((a, "x1", b, "x2"));
            if a == b {
                out.push((a, "x2", b, "x1"));
            }
        }
    }
    out
}

/// The documented precedence: gateway < VIP < node LB < live task < retired task, then by id.
fn expected_holder(a: &Holder, b: &Holder) -> Holder {
    let rank = |h: &Holder| match h {
        Holder::Gateway(_) => 0,
        Holder::Vip(_) => 1,
        Holder::NodeLb(_) => 2,
        Holder::Task(_) => 3,
        Holder::Retired(_) => 4,
    };
    let id = |h: &Holder| h.object().to_string().split(' ').nth(1).unwrap().to_string();
    if (rank(a), id(a)) <= (rank(b), id(b)) { a.clone() } else { b.clone() }
}

/// The store of one pair: the network (unless a claimant is it) and both claimants on one
/// address (the gateway's when one of them is the gateway).
fn pair_store(a: Kind, ida: &str, b: Kind, idb: &str) -> (Vec<Object>, Holder, Holder, std::net::IpAddr) {
    let address = if a == Kind::Gateway || b == Kind::Gateway { "10.9.0.1" } else { "10.9.0.5" };
    let (oa, ha) = claimant(a, ida, address);
    let (ob, hb) = claimant(b, idb, address);
    let mut objects = vec![oa, ob];
    if a != Kind::Gateway && b != Kind::Gateway {
        objects.insert(0, Object::from(net()));
    }
    (objects, ha, hb, address.parse().unwrap())
}

#[test]
fn p19_the_lowest_ranked_claimant_keeps_a_doubly_claimed_address_in_restore() {
    for (a, ida, b, idb) in pairs() {
        let (objects, ha, hb, address) = pair_store(a, ida, b, idb);
        let kept = expected_holder(&ha, &hb);
        let lost = if kept == ha { hb.clone() } else { ha.clone() };
        for order in [objects.clone(), objects.iter().rev().cloned().collect()] {
            let (alloc, report) =
                Allocator::restore(ClusterConfig::default(), order.iter().map(Object::as_ref)).unwrap();
            let context = format!("{a:?} {ida} vs {b:?} {idb}");
            assert_eq!(alloc.holder(&"n".into(), address), Some(&kept), "{context}");
            let claim = alloc.claimed_addresses().into_iter().find(|c| c.address.addr() == address).unwrap();
            assert_eq!(claim.losers, std::slice::from_ref(&lost), "{context}");
            // A retired loser is no conflict (its address is only quarantined); a live one is
            // reported, and queued when it is a task.
            let duplicate = report.findings.iter().find_map(|f| match f {
                Finding::DuplicateAddress { kept, lost, .. } => Some((kept.clone(), lost.clone())),
                _ => None,
            });
            if lost.is_retired() {
                assert_eq!(duplicate, None, "{context}");
            } else {
                assert_eq!(duplicate, Some((kept.clone(), vec![lost.clone()])), "{context}");
            }
            if let Holder::Task(id) = &lost {
                assert!(report.queue.contains(&ObjectId::Task(id.clone())), "{context}: {:?}", report.queue);
            }
        }
    }
}

#[test]
fn p19_the_lowest_ranked_claimant_keeps_a_doubly_claimed_address_in_observe() {
    for (a, ida, b, idb) in pairs() {
        let (objects, ha, hb, address) = pair_store(a, ida, b, idb);
        let kept = expected_holder(&ha, &hb);
        let lost = if kept == ha { hb.clone() } else { ha.clone() };
        let context = format!("{a:?} {ida} vs {b:?} {idb}");
        let (restored, _) = Allocator::restore(ClusterConfig::default(), objects.iter().map(Object::as_ref)).unwrap();
        for order in [objects.clone(), objects.iter().rev().cloned().collect::<Vec<_>>()] {
            let mut alloc = Allocator::new(ClusterConfig::default()).unwrap();
            // The network first (claims on an unknown network are not kept), then the others.
            if !order.iter().any(|o| matches!(o, Object::Network(_))) {
                alloc.observe(ObjectRef::Network(&net()));
            }
            let mut sorted = order.clone();
            sorted.sort_by_key(|o| !matches!(o, Object::Network(_)));
            for object in &sorted {
                alloc.observe(object.as_ref());
            }
            assert_eq!(alloc.holder(&"n".into(), address), Some(&kept), "{context}");
            assert_eq!(alloc.diff(&restored), None, "{context}");
            // The holder goes: the other claimant holds the address.
            let mut without = alloc.clone();
            without.observe_deleted(&kept.object());
            let expected = if matches!(kept, Holder::Gateway(_)) { None } else { Some(&lost) };
            assert_eq!(without.holder(&"n".into(), address), expected, "{context}: after the holder is deleted");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Point 21: all or nothing per object, for each kind of resource

/// A task fails on its second network after taking an address (and moving the cursor) on the
/// first: the next task of the transaction gets that very address.
#[test]
fn p21_a_failed_task_gives_back_the_address_it_took() {
    let mut w = World::new();
    w.put(with_subnets(attachable("a"), &["10.20.0.0/24"]));
    w.put(with_subnets(attachable("tiny"), &["10.21.0.0/30"]));
    w.put(container("holder", "tiny", "n1", None));
    ok(w.pass());
    let mut failing = container("t1", "a", "n1", None);
    failing.spec.networks.push("tiny".into());
    let second = container("t2", "a", "n1", None);
    let mut tx = w.alloc.begin();
    let error = tx.allocate_task(&failing, None).expect_err("tiny is full");
    assert!(matches!(error, AllocError::Exhausted { .. }), "{error}");
    assert_eq!(tx.allocate_task(&second, None), Ok(Outcome::Updated));
    let proposal = tx.finish();
    let t2 = proposal.updates().iter().find_map(|o| match o {
        Object::Task(t) => Some(t),
        _ => None,
    });
    assert_eq!(t2.unwrap().networks[0].addresses[0].to_string(), "10.20.0.2/24");
    let cursor = proposal.updates().iter().find_map(|o| match o {
        Object::Network(n) if n.id.as_str() == "a" => n.ipam.as_ref()?.options.get(ADDRESS_CURSOR_OPTION).cloned(),
        _ => None,
    });
    assert_eq!(cursor.as_deref(), Some("10.20.0.2"), "the failed task's cursor move is undone too");
    assert!(!proposal.updates().iter().any(|o| o.id() == task_id("t1")));
}

/// A service update fails on its second fixed port after taking the first (its ingress VIP is
/// kept, so the port is the first thing it takes): another service gets that port.
#[test]
fn p21_a_failed_service_gives_back_the_port_it_took() {
    let mut w = World::new();
    w.put(ingress("ingress"));
    let fixed = |n: u16| port("", Protocol::Tcp, 80, n, PublishMode::Ingress);
    w.put(with_ports(service("s1", &[]), vec![fixed(9000)]));
    w.put(with_ports(service("s2", &[]), vec![fixed(8081)]));
    w.put(with_ports(service("s3", &[]), vec![fixed(9001)]));
    ok(w.pass());
    let mut s1 = w.service("s1").clone();
    s1.spec.endpoint.as_mut().unwrap().ports =
        vec![fixed(8080), port("", Protocol::Tcp, 81, 8081, PublishMode::Ingress)];
    let mut s3 = w.service("s3").clone();
    s3.spec.endpoint.as_mut().unwrap().ports = vec![fixed(8080)];
    let mut tx = w.alloc.begin();
    let error = tx.allocate_service(&s1).expect_err("8081 is s2's");
    assert!(matches!(error, AllocError::InUse { .. }), "{error}");
    assert_eq!(tx.allocate_service(&s3), Ok(Outcome::Updated), "8080 was given back");
}

/// A stored network without driver state is completed with two pinned VXLAN ids (its subnets
/// are stored already, so the ids are the first things it takes); the second is in use, so it
/// fails, and another network pinning the first gets it.
#[test]
fn p21_a_failed_network_gives_back_the_vxlan_id_it_took() {
    let mut partial = allocated("p", "10.30.0.0/24", 4096);
    partial.ipam.as_mut().unwrap().configs.push(IpamConfig {
        subnet: Some("10.31.0.0/24".parse().unwrap()),
        range: None,
        gateway: Some("10.31.0.1".parse().unwrap()),
    });
    partial.driver_state = None;
    let partial = with_vnis(partial, "4200,4201");
    let (w, report) = World::restored(
        ClusterConfig::default(),
        vec![Object::from(partial.clone()), Object::from(allocated("holder", "10.40.0.0/24", 4201))],
    );
    assert!(report.queue.contains(&net_id("p")), "{report:?}");
    let mut tx = w.alloc.begin();
    let error = tx.allocate_network(&partial).expect_err("4201 is held");
    assert!(matches!(error, AllocError::InUse { .. }) && error.to_string().contains("4201"), "{error}");
    assert_eq!(tx.allocate_network(&with_vnis(network("other"), "4200")), Ok(Outcome::Updated), "4200 was given back");
}

/// A network fails on its second subnet after taking the first: another network gets the first.
#[test]
fn p21_a_failed_network_gives_back_the_subnet_it_took() {
    let mut w = World::new();
    w.put(with_subnets(network("held"), &["10.51.0.0/24"]));
    ok(w.pass());
    let mut tx = w.alloc.begin();
    let error =
        tx.allocate_network(&with_subnets(network("two"), &["10.50.0.0/24", "10.51.0.0/25"])).expect_err("overlap");
    assert!(matches!(error, AllocError::InUse { .. }), "{error}");
    assert_eq!(tx.allocate_network(&with_subnets(network("one"), &["10.50.0.0/24"])), Ok(Outcome::Updated));
}

// ---------------------------------------------------------------------------------------------
// The ingress first: who keeps a subnet or VXLAN id that two committed networks claim

/// The network conflicts of an engine, by network id.
fn conflicted(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter_map(|f| match f {
            Finding::NetworkConflict { network, .. } => Some(network.to_string()),
            _ => None,
        })
        .collect()
}

/// An ingress whose id sorts last against a network of a lower id, sharing a subnet (`a`) or a
/// VXLAN id (`b`): the ingress keeps both, in restore (either order) and when it is observed
/// after the others were committed. A planted defect ranking the ingress last passed every
/// other engine test; it loses the ingress's allocation to a user network.
#[test]
fn the_ingress_keeps_a_doubly_claimed_subnet_or_vxlan_id_whatever_its_id() {
    let mut z = allocated("z-ingress", "10.9.0.0/24", 4200);
    z.spec.ingress = true;
    let a = allocated("a", "10.9.0.0/24", 4300);
    let b = allocated("b", "10.8.0.0/24", 4200);
    let objects = vec![Object::from(a.clone()), Object::from(b.clone()), Object::from(z.clone())];
    for order in [objects.clone(), objects.iter().rev().cloned().collect()] {
        let (alloc, report) = Allocator::restore(ClusterConfig::default(), order.iter().map(Object::as_ref)).unwrap();
        assert_eq!(conflicted(&report.findings), ["a", "b"], "{:#?}", report.findings);
        assert!(alloc.is_network_allocated(&"z-ingress".into()));
        assert!(!alloc.is_network_allocated(&"a".into()) && !alloc.is_network_allocated(&"b".into()));
        assert_eq!(alloc.ingress(), Some(&"z-ingress".into()));
        assert_eq!(report.queue, [net_id("a"), net_id("b")]);
    }
    let (mut alloc, _) =
        Allocator::restore(ClusterConfig::default(), [Object::from(a), Object::from(b)].iter().map(Object::as_ref))
            .unwrap();
    alloc.observe((&z).into());
    assert_eq!(conflicted(&alloc.findings()), ["a", "b"], "{:#?}", alloc.findings());
    assert!(alloc.is_network_allocated(&"z-ingress".into()));
}

fn ok(errors: Vec<ObjectError>) {
    assert!(errors.is_empty(), "allocation errors: {errors:#?}");
}
