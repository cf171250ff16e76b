//! The check on the committed dumps under `tests/dumps/`: each dump is written by hand in the
//! Docker Engine API's shapes (or the store snapshot's) with exactly one kind of problem planted,
//! and the check must find exactly those problems. Then the error messages of malformed input.

use std::net::IpAddr;
use std::path::PathBuf;

use swarmalloc::{Holder, NetworkId, ObjectId, Protocol, ServiceId, TaskId, TaskState};
use swarmalloc_reports::{Action, CheckReport, InputError, ProblemKind, SCHEMA, Status, check_path};

fn dump(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dumps").join(name)
}

fn read(name: &str) -> CheckReport {
    match check_path(&dump(name)) {
        Ok(report) => report,
        Err(e) => panic!("{name} is readable, but: {e}"),
    }
}

/// What the dry pass does with an object, without the engine's exact picks.
#[derive(Debug, PartialEq, Eq)]
enum Does {
    NotQueued(ObjectId),
    Allocates(ObjectId),
    Fails(ObjectId),
}

/// Checks dump `name` and asserts it finds exactly `expected`, each acted on as `actions` says.
#[track_caller]
fn check(name: &str, expected: &[(ProblemKind, Vec<Does>)]) -> CheckReport {
    let report = read(name);
    let found: Vec<(ProblemKind, Vec<Does>)> = report
        .problems
        .iter()
        .map(|p| {
            let does = p
                .actions
                .iter()
                .map(|a| match a {
                    Action::NotQueued { object } => Does::NotQueued(object.clone()),
                    Action::Allocated { object, .. } | Action::Unchanged { object } => Does::Allocates(object.clone()),
                    Action::Fails { object, .. } => Does::Fails(object.clone()),
                })
                .collect();
            (p.kind.clone(), does)
        })
        .collect();
    assert_eq!(found, expected, "dump {name}; the report:\n{}", report.to_text());
    let status = if expected.is_empty() { Status::Clean } else { Status::ProblemsFound };
    assert_eq!(Status::of(&Ok(report.clone())), status);
    report
}

fn net(id: &str) -> NetworkId {
    NetworkId::new(id)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn task(id: &str) -> ObjectId {
    ObjectId::Task(TaskId::new(id))
}

const BACKEND: &str = "backendnet0000000000000000";
const TASK_1: &str = "dbtask1aaaaaaaaaaaaaaaaaaa";
const TASK_2: &str = "dbtask2aaaaaaaaaaaaaaaaaaa";

#[test]
fn clean_cluster_directory() {
    let report = check("clean", &[]);
    assert_eq!(report.queue, vec![]);
    assert_eq!(
        (report.objects.networks, report.objects.services, report.objects.tasks, report.objects.nodes),
        (2, 2, 4, 1)
    );
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.place.rsplit('/').next().unwrap_or("")).collect();
    assert_eq!(
        skipped,
        ["networks.json: [2]", "nodes.json: [1]"],
        "the local bridge network and the node without LB attachments"
    );
    assert!(report.to_text().ends_with("CLEAN: no problems\n"), "{}", report.to_text());
}

#[test]
fn duplicate_address_between_two_tasks() {
    let report = check(
        "duplicate_address.json",
        &[(
            ProblemKind::DuplicateAddress {
                network: net(BACKEND),
                address: ip("10.0.1.5"),
                kept: Holder::Task(TaskId::new(TASK_1)),
                lost: vec![Holder::Task(TaskId::new(TASK_2))],
            },
            vec![Does::Allocates(task(TASK_2))],
        )],
    );
    assert_eq!(report.queue, vec![task(TASK_2)]);
}

#[test]
fn task_address_outside_its_subnet() {
    check(
        "address_outside_subnet.json",
        &[(
            ProblemKind::AddressOutsideSubnet {
                network: net(BACKEND),
                address: ip("10.0.2.9"),
                holder: Holder::Task(TaskId::new(TASK_2)),
            },
            vec![Does::Allocates(task(TASK_2))],
        )],
    );
}

#[test]
fn task_address_on_the_broadcast_address() {
    check(
        "broadcast_address.json",
        &[(
            ProblemKind::ReservedAddress {
                network: net(BACKEND),
                address: ip("10.0.1.255"),
                holder: Holder::Task(TaskId::new(TASK_2)),
                reserved: "broadcast address".into(),
            },
            vec![Does::Allocates(task(TASK_2))],
        )],
    );
}

#[test]
fn overlapping_subnets_between_two_networks() {
    let report = check(
        "overlapping_subnets.json",
        &[(
            ProblemKind::OverlappingSubnet {
                network: net("bbbbackendnet0000000000000"),
                subnet: "10.0.0.0/16".into(),
                other_network: net("aaafrontendnet000000000000"),
                other_subnet: "10.0.1.0/24".into(),
            },
            vec![Does::Allocates(ObjectId::Network(net("bbbbackendnet0000000000000")))],
        )],
    );
    let Action::Allocated { changes, .. } = &report.problems[0].actions[0] else { unreachable!("asserted above") };
    assert!(changes[0].starts_with("set the subnets from 10.0.0.0/16 to "), "{changes:?}");
}

#[test]
fn duplicate_vxlan_id() {
    let report = check(
        "duplicate_vxlan_id.json",
        &[(
            ProblemKind::DuplicateVxlanId {
                network: net("bbbbackendnet0000000000000"),
                vxlan_id: 4097,
                other_network: net("aaafrontendnet000000000000"),
            },
            vec![Does::Allocates(ObjectId::Network(net("bbbbackendnet0000000000000")))],
        )],
    );
    let Action::Allocated { changes, .. } = &report.problems[0].actions[0] else { unreachable!("asserted above") };
    assert!(changes[0].starts_with("set the VXLAN ids from 4097 to "), "{changes:?}");
}

#[test]
fn duplicate_ingress_published_port() {
    let lost = ServiceId::new("bbbapisvc00000000000000000");
    check(
        "duplicate_port.json",
        &[(
            ProblemKind::DuplicatePort {
                protocol: Protocol::Tcp,
                port: 8080,
                kept: ServiceId::new("aaawebsvc00000000000000000"),
                lost: vec![lost.clone()],
            },
            // It asks for 8080 exactly: it cannot get it while the winner holds it.
            vec![Does::Fails(ObjectId::Service(lost))],
        )],
    );
}

#[test]
fn vip_on_a_missing_network() {
    let service = ServiceId::new("cachesvc000000000000000000");
    check(
        "vip_missing_network.json",
        &[(
            ProblemKind::MissingNetwork {
                network: net("gonenet0000000000000000000"),
                holder: Holder::Vip(service.clone()),
            },
            vec![Does::Fails(ObjectId::Service(service))],
        )],
    );
}

#[test]
fn task_stuck_in_new() {
    let report = check(
        "task_stuck_in_new.json",
        &[(
            ProblemKind::TaskStuckInNew {
                task: TaskId::new(TASK_1),
                service: Some(ServiceId::new("dbsvc000000000000000000000")),
                desired_state: TaskState::Running,
            },
            vec![Does::Allocates(task(TASK_1))],
        )],
    );
    let Action::Allocated { changes, .. } = &report.problems[0].actions[0] else { unreachable!("asserted above") };
    assert_eq!(changes.last().map(String::as_str), Some("move it from new to pending"), "{changes:?}");
}

#[test]
fn store_snapshot_vip_and_task_share_an_address() {
    check(
        "snapshot.json",
        &[(
            ProblemKind::DuplicateAddress {
                network: net(BACKEND),
                address: ip("10.0.1.2"),
                kept: Holder::Vip(ServiceId::new("dbsvc000000000000000000000")),
                lost: vec![Holder::Task(TaskId::new(TASK_1))],
            },
            vec![Does::Allocates(task(TASK_1))],
        )],
    );
}

#[test]
fn json_is_versioned_and_stable() {
    let first = read("duplicate_address.json").to_json();
    assert_eq!(first, read("duplicate_address.json").to_json());
    let value: serde_json::Value = serde_json::from_str(&first).expect("to_json writes JSON");
    assert_eq!(value["schema"], SCHEMA);
    assert_eq!(value["verdict"], "problems");
    assert_eq!(value["problems"][0]["kind"], "duplicate_address");
    assert_eq!(value["problems"][0]["actions"][0]["outcome"], "allocated");
    assert_eq!(value["queue"][0], serde_json::json!({"kind": "task", "id": TASK_2}));
}

#[test]
fn text_names_each_problem_and_the_verdict() {
    let text = read("duplicate_port.json").to_text();
    let expected_lines = [
        "1. [duplicate_port] port tcp/8080 published by service aaawebsvc00000000000000000 and also by bbbapisvc00000000000000000",
        "   - service bbbapisvc00000000000000000: queued; the next pass would fail (published port tcp/8080 is already in use by service aaawebsvc00000000000000000) and retry on every pass",
        "PROBLEMS: 1 found (1 duplicate_port)",
    ];
    for line in expected_lines {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
}

#[test]
fn second_ingress_network() {
    check(
        "extra_ingress.json",
        &[(
            ProblemKind::ExtraIngress {
                kept: net("aaaingressnet0000000000000"),
                ignored: net("bbbingressnet0000000000000"),
            },
            vec![Does::NotQueued(ObjectId::Network(net("bbbingressnet0000000000000")))],
        )],
    );
}

#[test]
fn invalid_stored_network_and_its_task() {
    check(
        "invalid_stored_network.json",
        &[
            (
                ProblemKind::InvalidStoredNetwork {
                    network: net(BACKEND),
                    reason: "ipam.configs[0]: gateway 10.0.2.1 is outside subnet 10.0.1.0/24".into(),
                },
                vec![Does::Allocates(ObjectId::Network(net(BACKEND)))],
            ),
            (
                ProblemKind::UnallocatedNetwork { network: net(BACKEND), holder: Holder::Task(TaskId::new(TASK_1)) },
                vec![Does::Allocates(task(TASK_1))],
            ),
        ],
    );
}

#[test]
fn holders_on_a_network_that_lost_its_subnet() {
    // The task on the losing network holds 10.0.1.5 from 10.0.0.0/16, which overlaps the task on
    // the winner with the same address: restore reports it and the next pass, which allocates the
    // network afresh first, gives it an address in the new subnet.
    check(
        "lost_network_holders.json",
        &[
            (
                ProblemKind::OverlappingSubnet {
                    network: net("bbbbackendnet0000000000000"),
                    subnet: "10.0.0.0/16".into(),
                    other_network: net("aaafrontendnet000000000000"),
                    other_subnet: "10.0.1.0/24".into(),
                },
                vec![Does::Allocates(ObjectId::Network(net("bbbbackendnet0000000000000")))],
            ),
            (
                ProblemKind::UnallocatedNetwork {
                    network: net("bbbbackendnet0000000000000"),
                    holder: Holder::Task(TaskId::new(TASK_1)),
                },
                vec![Does::Allocates(task(TASK_1))],
            ),
        ],
    );
}

#[test]
fn files_merge_by_id_and_the_newer_version_wins() {
    // Version 20 of the service has the task's address as its VIP; version 24 does not.
    let report = check("merged", &[]);
    assert_eq!((report.objects.networks, report.objects.services, report.objects.tasks), (1, 1, 1));
    let [older] = report.skipped.as_slice() else { panic!("one older copy: {:?}", report.skipped) };
    assert!(older.place.ends_with("/1-networks-and-db.json: (document 2)[0]"), "{older:?}");
    assert!(older.reason.starts_with("an older copy of service dbsvc000000000000000000000; "), "{older:?}");
    assert!(older.reason.ends_with("/2-db-again.json: [0] is newer"), "{older:?}");
}

#[test]
fn stale_attachments_of_a_task_and_a_node_on_a_missing_network() {
    let gone = net("gonenet0000000000000000000");
    let node = swarmalloc::NodeId::new("node1xxxxxxxxxxxxxxxxxxxxx");
    let report = check(
        "attachment_missing_network.json",
        &[
            (
                ProblemKind::MissingNetwork { network: gone.clone(), holder: Holder::Task(TaskId::new(TASK_1)) },
                // A running task is not allocated again: its stale attachment stays until it stops.
                vec![Does::NotQueued(task(TASK_1))],
            ),
            (
                ProblemKind::MissingNetwork { network: gone, holder: Holder::NodeLb(node.clone()) },
                vec![Does::Allocates(ObjectId::Node(node))],
            ),
        ],
    );
    let Action::Allocated { changes, .. } = &report.problems[1].actions[0] else { unreachable!("asserted above") };
    assert_eq!(
        changes,
        &["set the load-balancer address on network gonenet0000000000000000000 from 10.0.7.4/24 to none"]
    );
}

#[test]
fn task_address_on_the_network_address() {
    check(
        "network_address.json",
        &[(
            ProblemKind::ReservedAddress {
                network: net(BACKEND),
                address: ip("10.0.1.0"),
                holder: Holder::Task(TaskId::new(TASK_2)),
                reserved: "network address".into(),
            },
            vec![Does::Allocates(task(TASK_2))],
        )],
    );
}

#[test]
fn task_address_on_the_gateway() {
    check(
        "gateway_address.json",
        &[(
            ProblemKind::DuplicateAddress {
                network: net(BACKEND),
                address: ip("10.0.1.1"),
                kept: Holder::Gateway(net(BACKEND)),
                lost: vec![Holder::Task(TaskId::new(TASK_2))],
            },
            vec![Does::Allocates(task(TASK_2))],
        )],
    );
}

#[test]
fn clean_single_file_and_clean_snapshot() {
    let report = check("clean_single_file.json", &[]);
    assert_eq!(
        (report.objects.networks, report.objects.services, report.objects.tasks, report.objects.nodes),
        (2, 2, 4, 1),
        "the same cluster as clean/, as the arrays `>>` appends to one file"
    );
    assert_eq!(report.skipped.len(), 2);
    let report = check("clean_snapshot.json", &[]);
    assert_eq!(report.queue, vec![]);
}

/// Every kind of problem issue 6 names has a committed dump that plants it, and every problem
/// found in any dump says what a fresh restore would do with at least one object.
#[test]
fn the_dumps_cover_every_problem_kind_the_issue_names() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dump(""))
        .expect("tests/dumps")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "malformed"))
        .collect();
    entries.sort();
    for path in entries {
        let report = check_path(&path).unwrap_or_else(|e| panic!("{} is readable, but: {e}", path.display()));
        for problem in &report.problems {
            assert!(
                !problem.actions.is_empty(),
                "{}: {} says nothing about a restore",
                path.display(),
                problem.message
            );
            kinds.insert(swarmalloc_reports::kind_name(&problem.kind));
        }
    }
    let named = [
        "duplicate_address",
        "address_outside_subnet",
        "reserved_address",
        "overlapping_subnet",
        "duplicate_vxlan_id",
        "duplicate_port",
        "missing_network",
        "task_stuck_in_new",
    ];
    for kind in named {
        assert!(kinds.contains(kind), "no committed dump plants {kind}; found {kinds:?}");
    }
}

// Malformed input: every error names the file, where in it, and what was expected.

#[track_caller]
fn unreadable(name: &str) -> (InputError, String) {
    let path = dump(&format!("malformed/{name}"));
    let result = check_path(&path);
    assert_eq!(Status::of(&result), Status::Unreadable);
    assert_eq!(Status::Unreadable.code(), 2);
    let error = result.expect_err("malformed input");
    let text = error.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    let rest = text[path.display().to_string().len()..].to_string();
    (error, rest)
}

#[test]
fn bad_json_gives_line_and_column() {
    let (error, text) = unreadable("bad_json.json");
    assert!(matches!(error, InputError::Syntax { line: 5, column: 5, .. }), "{error:?}");
    assert_eq!(text, ": line 5 column 5, in [0]: invalid JSON: key must be a string");
}

#[test]
fn wrong_type_names_the_path() {
    let (error, text) = unreadable("wrong_type.json");
    assert_eq!(text, ": at [1].Spec.TaskTemplate.Networks[0].Target: expected a string, found the number 42");
    assert!(matches!(error, InputError::Field { .. }), "{error:?}");
}

#[test]
fn bad_address_names_the_path_and_the_form() {
    let (_, text) = unreadable("bad_address.json");
    assert_eq!(
        text,
        ": at [0].NetworksAttachments[0].Addresses[0]: expected an address such as \"10.0.0.5/24\" or \"10.0.0.5\", found the string \"10.0.1.300/24\""
    );
}

#[test]
fn unknown_task_state_lists_the_states() {
    let (_, text) = unreadable("bad_state.json");
    assert!(text.starts_with(": at [0].Status.State: expected one of \"new\", \"pending\", "), "{text}");
    assert!(text.ends_with(", found the string \"sleeping\""), "{text}");
}

#[test]
fn object_of_no_known_kind() {
    let (_, text) = unreadable("unknown_object.json");
    assert!(text.starts_with(": at [0]: an object that is no Docker network"), "{text}");
}

#[test]
fn snapshot_type_error_gives_position_and_path() {
    let (error, text) = unreadable("snapshot_wrong_type.json");
    assert!(matches!(&error, InputError::Typed { path, .. } if path == "tasks[1].status.state"), "{error:?}");
    assert!(text.starts_with(": line 10 column "), "{text}");
    assert!(text.contains(", at tasks[1].status.state: "), "{text}");
}

#[test]
fn snapshot_invalid_config_names_the_field() {
    let (_, text) = unreadable("snapshot_bad_config.json");
    assert!(text.starts_with(": at config: invalid spec: cluster config subnet_size = 40"), "{text}");
}

#[test]
fn empty_and_scalar_files() {
    assert_eq!(unreadable("empty.json").1, ": at the top level: the file holds no JSON value");
    assert_eq!(
        unreadable("scalar.json").1,
        ": at the top level: expected an array of Docker objects, one Docker object, or a store snapshot, found the string \"networks\""
    );
}

#[test]
fn missing_path() {
    let (error, _) = unreadable("no_such_file.json");
    assert!(matches!(error, InputError::Io { .. }), "{error:?}");
}

#[test]
fn two_different_copies_of_one_version() {
    let path = dump("malformed/conflict");
    let result = check_path(&path);
    assert_eq!(Status::of(&result), Status::Unreadable);
    let text = result.expect_err("conflicting copies").to_string();
    let expected = format!(
        "service dbsvc000000000000000000000 appears twice with the same version but different contents: \
         {dir}/a.json: (document 2)[0] and {dir}/b.json: (document 2)[0]",
        dir = path.display()
    );
    assert_eq!(text, expected);
}
