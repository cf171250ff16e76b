//! The checkers. Each re-derives an invariant from committed state independently of the engine
//! (docs/swarmkit.md section 7), one file per invariant family, as TigerBeetle's
//! `src/testing/cluster/*_checker.zig`:
//!
//! - `store_checker.rs`: unique live addresses per network (counting containers still running),
//!   non-overlapping subnets, unique VXLAN ids and ingress ports, addresses inside their pools;
//! - `stability_checker.rs`: allocations that never change while their object lives;
//! - `engine_checker.rs`: engine == restore(committed store);
//! - `liveness_checker.rs`: the end of a run: tasks leave NEW, deleted objects hold nothing;
//! - `assertion_checker.rs`: the scenario's own assertions;
//! - `breach.rs`: what a checker reports.
//!
//! Identical replicas and engine == committed are checked where the data is (manager/apply.rs,
//! alloc_loop.rs).

mod assertion_checker;
mod breach;
mod engine_checker;
mod liveness_checker;
mod stability_checker;
mod store_checker;

pub(crate) use assertion_checker::{assertion_key, vips_changed, vips_of};
pub use assertion_checker::{assertion_of, check_assertions};
pub use breach::Breach;
pub use engine_checker::check_engine;
pub use liveness_checker::check_end;
pub use stability_checker::Stability;
pub use store_checker::{ContainerAddrs, Inherited, check_store};

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::duties::cluster_objects;
    use crate::scenario::{Checker, Checks};
    use crate::store::{Change, Event, Origin, ProposalId, Store, Txn};
    use swarmalloc::{
        Allocator, DriverConfig, Ipam, IpamConfig, Network, NetworkAttachment, NetworkId, Object, ObjectId, Task,
        TaskId, TaskSpec, TaskState, TaskStatus, VXLAN_ID_LIST_OPTION, Version,
    };

    fn store_with(objects: Vec<Object>) -> Store {
        let mut store = Store::default();
        let mut changes = cluster_objects(&swarmalloc::ClusterConfig::default(), 1, 1);
        changes.extend(objects.into_iter().map(|object| Change::Create { object }));
        let txn = Txn { id: ProposalId { node: 1, incarnation: 0, seq: 1 }, origin: Origin::Control, changes };
        store.apply(1, &txn).expect("applies");
        store
    }

    fn net(id: &str, subnet: &str, vni: &str) -> Object {
        let mut network = Network {
            id: id.into(),
            version: Version(0),
            spec: Default::default(),
            driver_state: Some(DriverConfig {
                name: "overlay".into(),
                options: [(VXLAN_ID_LIST_OPTION.to_string(), vni.to_string())].into(),
            }),
            ipam: Some(Ipam {
                driver: "default".into(),
                options: Default::default(),
                configs: vec![IpamConfig { subnet: Some(subnet.parse().expect("subnet")), ..Default::default() }],
            }),
        };
        network.spec.name = id.into();
        Object::Network(network)
    }

    fn task(id: &str, network: &str, addr: &str, state: TaskState) -> Object {
        Object::Task(Task {
            id: TaskId::from(id),
            version: Version(0),
            service_id: None,
            node_id: None,
            slot: 0,
            spec: TaskSpec::default(),
            status: TaskStatus { state, message: String::new() },
            desired_state: TaskState::Running,
            networks: vec![NetworkAttachment {
                network_id: network.into(),
                addresses: vec![addr.parse().expect("address")],
                aliases: Vec::new(),
                driver_attachment_opts: Default::default(),
            }],
            endpoint: None,
        })
    }

    fn checker(objects: Vec<Object>) -> Option<&'static str> {
        check_store(&store_with(objects), None, &Inherited::default(), &Checks::default()).err().map(|f| f.name())
    }

    #[test]
    fn each_store_invariant_fires_on_its_own_breakage() {
        let ok = vec![
            net("a", "10.0.0.0/24", "4096"),
            net("b", "10.0.1.0/24", "4097"),
            task("t1", "a", "10.0.0.2/24", TaskState::Running),
            task("t2", "a", "10.0.0.3/24", TaskState::Running),
            // A terminal task's address is no live claim.
            task("t3", "a", "10.0.0.2/24", TaskState::Shutdown),
        ];
        assert_eq!(checker(ok), None);
        // A dangling reference to a deleted network collides with nothing.
        assert_eq!(checker(vec![task("t1", "gone", "10.0.0.2/24", TaskState::Running)]), None);
        let cases: Vec<(&str, Vec<Object>)> = vec![
            (
                "duplicate_live_address",
                vec![
                    net("a", "10.0.0.0/24", "4096"),
                    task("t1", "a", "10.0.0.2/24", TaskState::Running),
                    task("t2", "a", "10.0.0.2/24", TaskState::New),
                ],
            ),
            ("overlapping_subnets", vec![net("a", "10.0.0.0/16", "4096"), net("b", "10.0.1.0/24", "4097")]),
            ("vxlan_ids_unique", vec![net("a", "10.0.0.0/24", "4096"), net("b", "10.0.1.0/24", "4096")]),
            (
                "addresses_in_pool",
                vec![net("a", "10.0.0.0/24", "4096"), task("t1", "a", "10.0.0.255/24", TaskState::Running)],
            ),
            (
                "addresses_in_pool",
                vec![net("a", "10.0.0.0/24", "4096"), task("t1", "a", "10.0.9.2/24", TaskState::Running)],
            ),
        ];
        for (expected, objects) in cases {
            assert_eq!(checker(objects), Some(expected));
        }
    }

    #[test]
    fn conflicts_of_the_initial_state_are_let_be_but_not_new_ones() {
        let initial = vec![
            net("a", "10.0.0.0/24", "4096"),
            task("t1", "a", "10.0.0.2/24", TaskState::Running),
            task("t2", "a", "10.0.0.2/24", TaskState::Running),
        ];
        let store = store_with(initial.clone());
        let inherited = Inherited::of(&store);
        assert!(!inherited.is_empty());
        assert_eq!(check_store(&store, None, &inherited, &Checks::default()), Ok(()));
        assert_eq!(
            check_store(&store, None, &Inherited::default(), &Checks::default()).map_err(|f| f.name()),
            Err("duplicate_live_address")
        );
        // A third holder of the same address is a new conflict.
        let mut more = initial;
        more.push(task("t3", "a", "10.0.0.2/24", TaskState::Running));
        let breach = check_store(&store_with(more), None, &inherited, &Checks::default()).expect_err("t3 is new");
        assert!(breach.detail.contains("t3"), "{breach:?}");
    }

    #[test]
    fn a_running_container_keeps_its_address_in_use() {
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), task("t2", "a", "10.0.0.2/24", TaskState::New)]);
        let mut containers = BTreeMap::new();
        let running: BTreeMap<TaskId, ContainerAddrs> =
            [(TaskId::from("t1"), vec![(NetworkId::from("a"), "10.0.0.2/24".parse().expect("address"))])].into();
        containers.insert("w1".to_string(), running);
        let breach = check_store(&store, Some(&containers), &Inherited::default(), &Checks::default())
            .expect_err("t1's container still uses .2");
        assert_eq!(breach.name(), "address_freed_while_in_use");
        // The container of the task that holds the address is no conflict.
        let own: BTreeMap<TaskId, ContainerAddrs> =
            [(TaskId::from("t2"), vec![(NetworkId::from("a"), "10.0.0.2/24".parse().expect("address"))])].into();
        containers.insert("w1".to_string(), own);
        assert_eq!(check_store(&store, Some(&containers), &Inherited::default(), &Checks::default()), Ok(()));
    }

    #[test]
    fn stability_notices_a_changed_subnet_but_not_a_recreated_network() {
        let mut stability = Stability::default();
        let mut store = store_with(vec![net("a", "10.0.0.0/24", "4096")]);
        let put = [Event::Put(ObjectId::Network("a".into()))];
        assert_eq!(stability.observe(&store, &put), Ok(()));
        let Some(Object::Network(moved)) = Some(net("a", "10.0.5.0/24", "4096")) else { unreachable!() };
        store.networks.insert("a".into(), moved);
        let breach = stability.observe(&store, &put).expect_err("the subnet moved");
        assert_eq!(breach.name(), "stable_allocations");
        // In words, not a Debug dump of the checker's tuple.
        assert_eq!(breach.detail, "network a changed its subnets from 10.0.0.0/24 to 10.0.5.0/24 while it exists");
        let mut fresh = Stability::default();
        assert_eq!(fresh.observe(&store, &[Event::Deleted(ObjectId::Network("a".into()))]), Ok(()));
        assert_eq!(fresh.observe(&store, &put), Ok(()));
    }

    #[test]
    fn the_end_check_finds_a_satisfiable_task_left_in_new() {
        let mut stuck = task("t1", "a", "10.0.0.2/24", TaskState::New);
        if let Object::Task(t) = &mut stuck {
            t.networks.clear();
        }
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), stuck]);
        let (engine, _) = Allocator::restore(store.config(), store.objects()).expect("restore");
        let breach = check_end(&engine, &store, &Checks::default()).expect_err("t1 could be PENDING");
        assert_eq!((breach.name(), breach.objects), ("liveness_tasks_leave_new", vec!["task t1".to_string()]));
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096")]);
        let (engine, _) = Allocator::restore(store.config(), store.objects()).expect("restore");
        assert_eq!(check_end(&engine, &store, &Checks::default()), Ok(()));
    }

    fn only(checkers: &[&str]) -> Checks {
        Checks { checkers: checkers.iter().map(|c| c.to_string()).collect(), ..Checks::default() }
    }

    #[test]
    fn a_checker_turned_off_hides_none_of_the_enabled_ones() {
        // Overlapping subnets are scanned before VXLAN ids; both are broken here.
        let store = store_with(vec![net("a", "10.0.0.0/16", "4096"), net("b", "10.0.1.0/24", "4096")]);
        let all = check_store(&store, None, &Inherited::default(), &Checks::default());
        assert_eq!(all.map_err(|f| f.kind()), Err(Checker::OverlappingSubnets));
        let vxlan = check_store(&store, None, &Inherited::default(), &only(&["vxlan_ids_unique"]));
        assert_eq!(vxlan.map_err(|f| f.kind()), Err(Checker::VxlanIdsUnique));
        let neither = check_store(&store, None, &Inherited::default(), &only(&["addresses_in_pool"]));
        assert_eq!(neither, Ok(()));
    }

    #[test]
    fn the_end_check_goes_on_past_a_checker_turned_off() {
        let mut stuck = task("t1", "a", "10.0.0.2/24", TaskState::New);
        if let Object::Task(t) = &mut stuck {
            t.networks.clear();
        }
        let store = store_with(vec![net("a", "10.0.0.0/24", "4096"), stuck.clone()]);
        // An engine restored from a store that also had network b and a task on it, both deleted
        // since: it still reserves their addresses.
        let before = store_with(vec![
            net("a", "10.0.0.0/24", "4096"),
            net("b", "10.0.1.0/24", "4097"),
            task("t9", "b", "10.0.1.2/24", TaskState::Running),
            stuck,
        ]);
        let (engine, _) = Allocator::restore(before.config(), before.objects()).expect("restore");
        let first = check_end(&engine, &store, &Checks::default()).map_err(|f| f.name());
        assert_eq!(first, Err("liveness_tasks_leave_new"));
        let second = check_end(&engine, &store, &only(&["deleted_objects_hold_nothing"])).map_err(|f| f.name());
        assert_eq!(second, Err("deleted_objects_hold_nothing"));
        assert_eq!(check_end(&engine, &store, &only(&["addresses_in_pool"])), Ok(()));
    }
}
