//! The engine's legacy flavours (feature `legacy`): each one shows the old behaviour it stands
//! for on the smallest store that shows it, and today's engine (no flavour) does not.

#![cfg(feature = "legacy")]

mod support;

use support::*;
use swarmalloc::legacy::Flavour;
use swarmalloc::*;

fn restore(objects: &[Object], flavour: Option<Flavour>) -> Allocator {
    let (alloc, _) = Allocator::restore_legacy(ClusterConfig::default(), objects.iter().map(Object::as_ref), flavour)
        .expect("valid config");
    alloc
}

/// The address a new standalone container gets on `network` right after a restore.
fn next_address(alloc: &Allocator, network: &str) -> String {
    let mut tx = alloc.begin();
    tx.allocate_task(&container("new", network, "n1", None), None).expect("allocates");
    let proposal = tx.finish();
    let task = proposal.updates().iter().find_map(|o| if let Object::Task(t) = o { Some(t) } else { None });
    let t = task.expect("a task update");
    t.networks[0].addresses[0].to_string()
}

fn differs_from_restore(alloc: &Allocator, store: &[Object]) -> bool {
    let (restored, _) = Allocator::restore(ClusterConfig::default(), store.iter().map(Object::as_ref)).expect("config");
    alloc.diff(&restored).is_some()
}

#[test]
fn flavours_have_names_and_parse_back() {
    for flavour in Flavour::ALL {
        assert_eq!(flavour.name().parse::<Flavour>(), Ok(flavour));
        assert_eq!(flavour.name().to_lowercase().parse::<Flavour>(), Ok(flavour));
    }
    let error = "B7".parse::<Flavour>().expect_err("no B7 flavour");
    assert!(error.contains("expected one of B1, B2, B3, B4, B5, B6, B8, B11, flag-init"), "{error}");
}

#[test]
fn b2_a_restored_vip_is_handed_to_the_next_task() {
    let store = [
        Object::from(allocated("n", "10.0.0.0/24", 4096)),
        Object::from(with_vip(service("s", &["n"]), "n", "10.0.0.2/24")),
    ];
    assert_eq!(next_address(&restore(&store, None), "n"), "10.0.0.3/24");
    let old = restore(&store, Some(Flavour::B2));
    assert_eq!(next_address(&old, "n"), "10.0.0.2/24", "the VIP was not re-reserved");
    assert!(differs_from_restore(&old, &store));
    // The service itself still counts as allocated: it re-requests its VIP while it is free.
    let Object::Service(s) = &store[1] else { unreachable!() };
    assert_eq!(old.begin().allocate_service(s), Ok(Outcome::Unchanged));
}

#[test]
fn b8_a_restored_dynamic_port_is_handed_to_the_next_service() {
    let dynamic = port("web", Protocol::Tcp, 80, 0, PublishMode::Ingress);
    let mut s1 = with_ports(service("s1", &[]), vec![dynamic.clone()]);
    s1.endpoint = Some(Endpoint {
        spec: s1.spec.endpoint.clone().expect("an endpoint spec"),
        ports: vec![port("web", Protocol::Tcp, 80, 30000, PublishMode::Ingress)],
        virtual_ips: Vec::new(),
    });
    let s1 = with_vip(s1, "ing", "10.0.0.2/24");
    let s2 = with_ports(service("s2", &[]), vec![dynamic]);
    let mut ingress = allocated("ing", "10.0.0.0/24", 4096);
    ingress.spec.ingress = true;
    let published = |alloc: &Allocator| {
        let mut tx = alloc.begin();
        tx.allocate_service(&s2).expect("allocates");
        let proposal = tx.finish();
        let service = proposal.updates().iter().find_map(|o| if let Object::Service(s) = o { Some(s) } else { None });
        let s = service.expect("a service update");
        s.endpoint.as_ref().expect("an endpoint").ports[0].published_port
    };
    let store = [Object::from(ingress), Object::from(s1.clone())];
    assert_eq!(published(&restore(&store, None)), 30001);
    let old = restore(&store, Some(Flavour::B8));
    assert_eq!(published(&old), 30000, "the dynamic port was not re-reserved");
    assert_eq!(old.begin().allocate_service(&s1), Ok(Outcome::Unchanged), "s1 re-requests its own port");
}

#[test]
fn b4_a_task_on_a_deleted_network_keeps_its_other_addresses() {
    let t = running("t", vec![attached("a", &["10.0.0.2/24"]), attached("b", &["10.0.1.2/24"])]);
    let store = [
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(allocated("b", "10.0.1.0/24", 4097)),
        Object::from(t),
    ];
    for flavour in [None, Some(Flavour::B4)] {
        let mut alloc = restore(&store, flavour);
        alloc.observe_deleted(&net_id("a"));
        alloc.observe_deleted(&task_id("t"));
        let leaked = alloc.holder(&"b".into(), "10.0.1.2".parse().unwrap()).cloned();
        let expected = flavour.map(|_| Holder::Task("t".into()));
        assert_eq!(leaked, expected, "{flavour:?}");
        assert_eq!(differs_from_restore(&alloc, &store[1..2]), flavour.is_some());
    }
}

#[test]
fn b6_a_stopped_tasks_address_goes_to_the_next_leaders_first_task() {
    let mut t1 = running("t1", vec![attached("a", &["10.0.0.2/24"])]);
    let t2 = running("t2", vec![attached("a", &["10.0.0.3/24"])]);
    t1.status.state = TaskState::Shutdown;
    let store = [Object::from(allocated("a", "10.0.0.0/24", 4096)), Object::from(t1), Object::from(t2)];
    assert_eq!(next_address(&restore(&store, None), "a"), "10.0.0.4/24");
    let old = restore(&store, Some(Flavour::B6));
    assert_eq!(next_address(&old, "a"), "10.0.0.2/24", "freed on status, picked first by a new leader");
    assert!(differs_from_restore(&old, &store));
    // Within one engine's life the serial cursor moves on: .2, then .4 (not .2 again).
    let mut old = old;
    let proposal = {
        let mut tx = old.begin();
        tx.allocate_task(&container("x", "a", "n1", None), None).expect("allocates");
        tx.finish()
    };
    old.commit(&proposal);
    assert_eq!(next_address(&old, "a"), "10.0.0.4/24");
}

#[test]
fn flag_init_rewrites_every_live_task() {
    let mut done = running("done", vec![attached("a", &["10.0.0.3/24"])]);
    done.status.state = TaskState::Complete;
    let store = [
        Object::from(allocated("a", "10.0.0.0/24", 4096)),
        Object::from(running("live", vec![attached("a", &["10.0.0.2/24"])])),
        Object::from(done),
    ];
    let alloc = restore(&store, Some(Flavour::FlagInit));
    let mut tx = alloc.begin();
    for object in &store {
        if let Object::Task(t) = object {
            tx.rewrite(t);
        }
    }
    let ids: Vec<ObjectId> = tx.finish().updates().iter().map(Object::id).collect();
    assert_eq!(ids, [task_id("live")]);
}

#[test]
fn without_a_flavour_the_legacy_restore_is_restore() {
    let store = [
        Object::from(allocated("n", "10.0.0.0/24", 4096)),
        Object::from(with_vip(service("s", &["n"]), "n", "10.0.0.2/24")),
        Object::from(running("t", vec![attached("n", &["10.0.0.3/24"])])),
    ];
    let (restored, report) = Allocator::restore(ClusterConfig::default(), store.iter().map(Object::as_ref)).unwrap();
    let (legacy, legacy_report) =
        Allocator::restore_legacy(ClusterConfig::default(), store.iter().map(Object::as_ref), None).unwrap();
    assert_eq!(legacy.diff(&restored), None);
    assert_eq!(legacy_report, report);
    assert_eq!(legacy.flavour(), None);
}
