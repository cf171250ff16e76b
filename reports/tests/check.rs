//! The check on the committed dumps under `tests/dumps/`: each dump is written by hand in the
//! Docker Engine API's shapes (or the store snapshot's) with exactly one kind of problem planted,
//! and the check must find exactly those problems. Then the error messages of malformed input.

use std::net::IpAddr;
use std::path::PathBuf;

use swarmalloc::{Holder, NetworkId, ObjectId, Protocol, ServiceId, TaskId, TaskState};
use swarmalloc_reports::{CheckReport, InputError, Kind, Outcomes, ProblemKind, SCHEMA, Status, check_path};

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
                .map(|a| match &a.outcome {
                    Outcomes::NotQueued => Does::NotQueued(a.object.clone()),
                    Outcomes::Allocated { .. } | Outcomes::Unchanged => Does::Allocates(a.object.clone()),
                    Outcomes::Fails { .. } => Does::Fails(a.object.clone()),
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
    let queue: Vec<ObjectId> = report.queue.iter().map(|n| n.object.clone()).collect();
    assert_eq!(queue, vec![task(TASK_2)]);
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
    let Outcomes::Allocated { changes } = &report.problems[0].actions[0].outcome else {
        unreachable!("asserted above")
    };
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
    let Outcomes::Allocated { changes } = &report.problems[0].actions[0].outcome else {
        unreachable!("asserted above")
    };
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
    let Outcomes::Allocated { changes } = &report.problems[0].actions[0].outcome else {
        unreachable!("asserted above")
    };
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
    assert_eq!(value["queue"][0], serde_json::json!({"kind": "task", "id": TASK_2, "name": "db.2"}));
    let problem = &value["problems"][0];
    assert_eq!(problem["objects"][2], serde_json::json!({"kind": "task", "id": TASK_2, "name": "db.2"}));
    assert_eq!(problem["actions"][0]["name"], "db.2");
    assert!(problem["message"].as_str().unwrap().contains("task db.2 (dbtask2aaaaaaaaaaaaaaaaaaa)"), "{problem}");
}

#[test]
fn text_names_each_problem_and_the_verdict() {
    let text = read("duplicate_port.json").to_text();
    let expected_lines = [
        "1. [duplicate_port] port tcp/8080 is published by service web (aaawebsvc00000000000000000) and also by service api (bbbapisvc00000000000000000)",
        "   restore: restore gives tcp/8080 to service web (aaawebsvc00000000000000000) only; service api (bbbapisvc00000000000000000) loses it",
        "   - service api (bbbapisvc00000000000000000): queued; the next pass would fail (published port tcp/8080 is already in use by service aaawebsvc00000000000000000) and retry on every pass",
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
    let Outcomes::Allocated { changes } = &report.problems[1].actions[0].outcome else {
        unreachable!("asserted above")
    };
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
        .filter(|p| p.file_name().is_some_and(|n| n != "malformed" && n != "real"))
        .collect();
    entries.sort();
    for path in entries {
        let report = check_path(&path).unwrap_or_else(|e| panic!("{} is readable, but: {e}", path.display()));
        for problem in &report.problems {
            assert!(
                !problem.actions.is_empty() || problem.kind_name() == "unreadable_object",
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

/// One malformed object: the check reports it (file, object, JSON path, what was expected) as an
/// `unreadable_object` problem, checks everything else, and exits 1, not 2.
#[track_caller]
fn malformed_object(name: &str) -> (ProblemKind, String, CheckReport) {
    let path = dump(&format!("malformed/{name}"));
    let report = check_path(&path).unwrap_or_else(|e| panic!("{name}: one bad object refuses the dump: {e}"));
    assert_eq!(report.status(), Status::ProblemsFound);
    let bad: Vec<_> = report.problems.iter().filter(|p| p.kind_name() == "unreadable_object").collect();
    let [problem] = bad.as_slice() else { panic!("one unreadable object in {name}:\n{}", report.to_text()) };
    assert_eq!(report.objects.unreadable, 1);
    assert!(problem.actions.is_empty());
    let message = problem.message.strip_prefix(&path.display().to_string()).expect("names the file").to_string();
    (problem.kind.clone(), message, report)
}

#[test]
fn wrong_type_is_one_problem_and_the_rest_is_checked() {
    let (kind, message, report) = malformed_object("wrong_type.json");
    assert_eq!(
        message,
        ": [1]: service api (apisvc00000000000000000000) cannot be read at Spec.TaskTemplate.Networks[0].Target: \
         invalid type: integer `42`, expected a string"
    );
    let ProblemKind::UnreadableObject { at, object_kind, id, .. } = kind else { unreachable!("filtered above") };
    assert_eq!(at, "Spec.TaskTemplate.Networks[0].Target");
    assert_eq!(object_kind, Some(Kind::Service));
    assert_eq!(id.as_deref(), Some("apisvc00000000000000000000"));
    assert_eq!(report.objects.services, 1, "the other service is read and checked");
}

#[test]
fn bad_address_names_the_path_and_the_form() {
    let (_, message, _) = malformed_object("bad_address.json");
    assert_eq!(
        message,
        ": [0]: task dbtask1aaaaaaaaaaaaaaaaaaa cannot be read at NetworksAttachments[0].Addresses[0]: invalid value: \
         string \"10.0.1.300/24\", expected an address such as \"10.0.0.5/24\" or \"10.0.0.5\""
    );
}

#[test]
fn unknown_task_state_lists_the_states() {
    let (_, message, _) = malformed_object("bad_state.json");
    assert!(message.contains(" cannot be read at Status.State: invalid value: string \"sleeping\", expected one of \"new\", \"pending\", "), "{message}");
    assert!(message.ends_with(", \"remove\", \"orphaned\""), "{message}");
}

#[test]
fn object_of_no_known_kind() {
    let (_, message, _) = malformed_object("unknown_object.json");
    assert!(message.starts_with(": [0]: object cfg000000000000000000000000 (of no known kind) cannot be read: an object that is no Docker network"), "{message}");
}

#[test]
fn snapshot_type_error_names_the_object_and_path() {
    let (_, message, report) = malformed_object("snapshot_wrong_type.json");
    assert_eq!(
        message,
        ": tasks[1]: task dbtask2aaaaaaaaaaaaaaaaaaa cannot be read at status.state: invalid type: integer `512`, \
         expected string or map"
    );
    assert_eq!(report.objects.tasks, 1, "the other task is read");
}

/// A malformed network is named where its holders point at it: not "missing", but unreadable.
#[test]
fn holders_of_an_unreadable_network_say_where_it_is() {
    let report = read("malformed_network.json");
    let texts: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(texts.len(), 2, "{}", report.to_text());
    assert!(texts[0].starts_with("task db.1 (dbtask1aaaaaaaaaaaaaaaaaaa) has an attachment to network backendnet0000000000000000, which the check could not read ("), "{}", texts[0]);
    assert!(texts[0].ends_with("/malformed_network.json: [0])"), "{}", texts[0]);
    assert!(
        texts[1].contains("network backend (backendnet0000000000000000) cannot be read at IPAM.Config[0].Subnet: "),
        "{}",
        texts[1]
    );
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

/// Point 18 of issue 15: a network that overlaps a kept subnet and repeats a kept VXLAN id is
/// reported for both, where restore's finding names the first conflict only.
#[test]
fn network_that_overlaps_and_repeats_a_vxlan_id_is_reported_for_both() {
    let loser = net("bbbbackendnet0000000000000");
    let winner = net("aaafrontendnet000000000000");
    let allocates = || vec![Does::Allocates(ObjectId::Network(loser.clone()))];
    let report = check(
        "overlap_and_vxlan_id.json",
        &[
            (
                ProblemKind::OverlappingSubnet {
                    network: loser.clone(),
                    subnet: "10.0.0.0/16".into(),
                    other_network: winner.clone(),
                    other_subnet: "10.0.1.0/24".into(),
                },
                allocates(),
            ),
            (
                ProblemKind::DuplicateVxlanId { network: loser.clone(), vxlan_id: 4097, other_network: winner.clone() },
                allocates(),
            ),
        ],
    );
    assert_eq!(
        report.problems[1].message,
        "network <b>backend</b> (bbbbackendnet0000000000000) has VXLAN id 4097, which network frontend \
         (aaafrontendnet000000000000) has too"
    );
}

/// The page is an askama template: every value from the dump is escaped (this network's name is
/// `<b>backend</b>`), and the page names objects as the text does.
#[test]
fn page_escapes_what_the_dump_says_and_names_objects() {
    let html = read("overlap_and_vxlan_id.json").to_html();
    assert!(!html.contains("<b>backend</b>"), "unescaped name in the page");
    assert!(
        html.contains("network &#60;b&#62;backend&#60;/b&#62; (bbbbackendnet0000000000000)")
            || html.contains("network &lt;b&gt;backend&lt;/b&gt; (bbbbackendnet0000000000000)"),
        "{html}"
    );
    assert!(html.find("id=\"verdict\"") < html.find("id=\"problems\""));
    assert!(html.contains("<strong>Restore:</strong> restore keeps 10.0.1.0/24 for network frontend"), "{html}");
}

/// Issue 15 point 5: Docker shows a service without a stored endpoint as `"Endpoint": {"Spec":
/// {}}`; that is no endpoint, not an empty one.
#[test]
fn an_empty_endpoint_spec_is_no_endpoint() {
    let report = read("malformed_network.json");
    assert!(!report.problems.iter().any(|p| p.message.contains("service db ")), "{}", report.to_text());
}
