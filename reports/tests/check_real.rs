//! The check on states of a real dockerd 20.10 swarm (`tests/dumps/real/`, made by `make.sh`
//! there through the Docker Engine API): what normal operations leave checks CLEAN, a state
//! where tasks are really stuck reports exactly those tasks, and the check reads what the gather
//! adds to `docker inspect` (node load balancers from network inspects, `gather.json`, the
//! attachment tasks of standalone containers) without false alarms. Tests that edit a fixture do
//! it in memory, on the JSON the API gave.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use swarmalloc::{Holder, NodeId, ObjectId, TaskId};
use swarmalloc_reports::{CheckReport, Outcomes, ProblemKind, check_dump, check_path, load_texts};

fn real(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dumps/real").join(name)
}

#[track_caller]
fn read(name: &str) -> CheckReport {
    check_path(&real(name)).unwrap_or_else(|e| panic!("real/{name} is readable, but: {e}"))
}

/// The JSON files of fixture `name`, by file name.
fn files(name: &str) -> BTreeMap<String, Value> {
    let dir = real(name);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            out.insert(name, serde_json::from_str(&text).unwrap());
        }
    }
    out
}

/// Checks the (edited) files, as `allocsim check` of a directory holding them would.
#[track_caller]
fn check_files(files: &BTreeMap<String, Value>) -> CheckReport {
    let texts: Vec<(PathBuf, String)> =
        files.iter().map(|(name, value)| (PathBuf::from(name), serde_json::to_string_pretty(value).unwrap())).collect();
    let dump = load_texts(&texts).unwrap_or_else(|e| panic!("the edited dump is readable, but: {e}"));
    check_dump(&dump, "edited").unwrap()
}

fn array<'a>(files: &'a mut BTreeMap<String, Value>, file: &str) -> &'a mut Vec<Value> {
    files.get_mut(file).and_then(Value::as_array_mut).unwrap_or_else(|| panic!("{file} is an array"))
}

/// The network named `name` in networks.json.
fn network<'a>(files: &'a mut BTreeMap<String, Value>, name: &str) -> &'a mut Value {
    array(files, "networks.json").iter_mut().find(|n| n["Name"] == name).unwrap_or_else(|| panic!("network {name}"))
}

/// The tasks of service `service` (by its name), sorted by slot.
fn tasks_of(files: &BTreeMap<String, Value>, service: &str) -> Vec<Value> {
    let id =
        files["services.json"].as_array().unwrap().iter().find(|s| s["Spec"]["Name"] == service).unwrap()["ID"].clone();
    let mut tasks: Vec<Value> =
        files["tasks.json"].as_array().unwrap().iter().filter(|t| t["ServiceID"] == id).cloned().collect();
    tasks.sort_by_key(|t| t["Slot"].as_u64());
    tasks
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("a string: {value}"))
}

fn kinds(report: &CheckReport) -> BTreeMap<&'static str, usize> {
    report.kinds()
}

// --- States of normal operations --------------------------------------------------------------

/// The states of normal operations on a real swarm that check CLEAN with this engine.
const REAL_CLEAN: &[&str] = &[
    "default_pools",
    "explicit_subnets",
    "two_subnets",
    "dual_stack",
    "dnsrr_and_ports",
    "attachable",
    "scaled_up",
    "scaled_down",
    "network_add_rm",
    "service_rm_in_progress",
    "service_rm",
    "network_rm",
    "custom_pool",
    "crash_scale_up",
    "crash_removal",
    "b4_network_rm_in_progress",
    "b4_after_restart",
];

#[test]
fn normal_operations_on_a_real_swarm_check_clean() {
    let mut dirty = Vec::new();
    for name in REAL_CLEAN {
        let report = read(name);
        assert!(report.config.from.is_some(), "real/{name}: the gather shows the address pools");
        if !report.problems.is_empty() {
            dirty.push(format!("real/{name}:\n{}", report.to_text()));
        }
    }
    assert!(dirty.is_empty(), "{}", dirty.join("\n"));
}

/// A swarm initialised with `--default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length
/// 26`: the check's dry pass takes fresh subnets from the cluster's pools, not SwarmKit's defaults.
#[test]
fn the_custom_default_pool_is_read_from_the_swarm() {
    let report = read("custom_pool");
    assert_eq!(report.config.default_address_pools, ["10.20.0.0/16"]);
    assert_eq!(report.config.subnet_size, 26);
    assert!(report.config_line().starts_with("default address pools 10.20.0.0/16, subnet size /26 (from "));
}

/// States that check CLEAN except for objects an engine point of issue 15 is about; each
/// fixture names the point and the objects. When the point lands this test fails: move the
/// fixture to `REAL_CLEAN`.
const REAL_WAITING: &[(&str, &str, &[&str])] = &[];

#[test]
fn states_that_wait_on_an_engine_point_have_problems_only_there() {
    for (name, point, objects) in REAL_WAITING {
        let report = read(name);
        assert!(!report.problems.is_empty(), "real/{name} checks CLEAN: {point} has landed; move {name} to REAL_CLEAN");
        let names: BTreeSet<String> = report
            .problems
            .iter()
            .flat_map(|p| p.objects.iter())
            .map(|n| swarmalloc_reports::show(&n.object, &n.name))
            .collect();
        for shown in &names {
            assert!(
                objects.iter().any(|o| shown.starts_with(o)),
                "real/{name}: {shown} is named by a problem, but only {objects:?} wait on {point}:\n{}",
                report.to_text()
            );
        }
    }
}

// --- Really stuck tasks -------------------------------------------------------------------------

/// The NEW tasks of a fixture whose desired state is running.
fn new_tasks(name: &str) -> BTreeSet<TaskId> {
    files(name)["tasks.json"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["Status"]["State"] == "new" && t["DesiredState"] == "running")
        .map(|t| TaskId::new(text(&t["ID"])))
        .collect()
}

/// Service crowd asks for 70 replicas on a /26 (61 addresses, one of them its VIP): 10 tasks
/// stay NEW. The check names exactly those, and says the next pass fails them for want of an
/// address and retries.
#[test]
fn tasks_stuck_on_an_exhausted_network_are_reported_exactly() {
    let stuck = new_tasks("exhausted");
    assert_eq!(stuck.len(), 10, "the fixture has 10 tasks in NEW");
    let report = read("exhausted");
    assert_eq!(kinds(&report), BTreeMap::from([("task_stuck_in_new", 10)]), "{}", report.to_text());
    let mut reported = BTreeSet::new();
    for problem in &report.problems {
        let ProblemKind::TaskStuckInNew { task, .. } = &problem.kind else { unreachable!() };
        reported.insert(task.clone());
        let [action] = problem.actions.as_slice() else { panic!("one action: {problem:?}") };
        match &action.outcome {
            Outcomes::Fails { error, retryable: true } => assert!(error.contains("exhausted"), "{error}"),
            other => panic!("the next pass fails for want of an address and retries, not {other:?}"),
        }
        assert!(problem.message.starts_with("task crowd."), "{}", problem.message);
    }
    assert_eq!(reported, stuck);
}

/// The address each stuck task would get, from the dry pass's words ("set the address on
/// network small (ID) from none to 10.60.0.3/28").
fn predicted_addresses(report: &CheckReport) -> BTreeMap<TaskId, String> {
    let mut out = BTreeMap::new();
    for problem in &report.problems {
        let ProblemKind::TaskStuckInNew { task, .. } = &problem.kind else { continue };
        let [action] = problem.actions.as_slice() else { panic!("one action: {problem:?}") };
        let Outcomes::Allocated { changes } = &action.outcome else { panic!("allocated: {action:?}") };
        let set = changes.iter().find(|c| c.starts_with("set the address on network small")).expect("an address");
        let (_, to) = set.rsplit_once(" from none to ").expect("a fresh address");
        assert!(changes.contains(&"move it from new to pending".to_string()), "{changes:?}");
        out.insert(task.clone(), to.to_string());
    }
    out
}

/// Issue 16's real B4 leak. Service leaky on networks other and small was removed, and network
/// other at once while its tasks were stopping: SwarmKit's allocator never freed their three
/// addresses on small in its memory, so service fill (12 replicas and a VIP on small's 13
/// addresses) left 3 tasks in NEW. The store has those addresses free: the check reports exactly
/// the 3 tasks and says the next pass gives each an address and moves it on. After a restart of
/// the manager (b4_after_restart) each got the address the check named, and the state is CLEAN.
#[test]
fn the_real_b4_leak_is_reported_and_a_restart_does_what_the_check_said() {
    let stuck = new_tasks("b4_leak");
    assert_eq!(stuck.len(), 3, "the fixture has the leak's 3 tasks in NEW");
    let before = read("b4_leak");
    assert_eq!(kinds(&before), BTreeMap::from([("task_stuck_in_new", 3)]), "{}", before.to_text());
    let predicted = predicted_addresses(&before);
    assert_eq!(predicted.keys().cloned().collect::<BTreeSet<_>>(), stuck);

    let after = read("b4_after_restart");
    assert!(after.problems.is_empty(), "{}", after.to_text());
    let files = files("b4_after_restart");
    for (task, address) in &predicted {
        let stored = files["tasks.json"].as_array().unwrap().iter().find(|t| t["ID"] == task.as_str()).unwrap();
        assert_eq!(stored["Status"]["State"], "pending", "{task} moved on after the restart");
        let attachments = stored["NetworksAttachments"].as_array().unwrap();
        let small = attachments.iter().find(|a| a["Network"]["Spec"]["Name"] == "small").unwrap();
        assert_eq!(small["Addresses"], json!([address]), "{task}: the restarted manager gave what the check said");
    }
}

/// b4_network_rm_in_progress is the B4 leak's start, gathered right after `docker network rm
/// other`: leaky's three tasks (service removed, desired state remove) still run with addresses
/// on small and other, and other is gone from the store (the node's copy is named in
/// gather.json). Normal operations, so no problem: each task is skipped with why, named by its
/// container (`leaky.1`; its service is gone), and the skipped line foretells the leak: the
/// addresses it names on small are exactly those the check later predicts for fill's stuck tasks.
/// A task meant to run on a missing network stays a problem.
#[test]
fn tasks_leaving_a_removed_network_are_no_problem_and_the_leak_is_foretold() {
    let report = read("b4_network_rm_in_progress");
    assert!(report.problems.is_empty(), "{}", report.to_text());
    let leaving: Vec<&str> =
        report.skipped.iter().map(|s| s.reason.as_str()).filter(|r| r.contains("on its way out")).collect();
    assert_eq!(leaving.len(), 3, "{:#?}", report.skipped);
    let mut foretold = BTreeSet::new();
    for reason in &leaving {
        assert!(reason.starts_with("task leaky."), "{reason}");
        assert!(reason.contains(", whose desired state is remove, has an attachment to network other ("), "{reason}");
        let (_, leak) = reason.split_once("(docs/swarmkit.md, B4): ").expect("the leak foretold");
        let (address, rest) = leak.split_once(" on network small (").expect("its address on small");
        assert!(rest.ends_with("will stay taken there until the next leader change"), "{rest}");
        foretold.insert(address.to_string());
    }
    let predicted: BTreeSet<String> = predicted_addresses(&read("b4_leak")).into_values().collect();
    assert_eq!(foretold, predicted);

    let mut files = files("b4_network_rm_in_progress");
    array(&mut files, "tasks.json")[0]["DesiredState"] = json!("running");
    let report = check_files(&files);
    assert_eq!(kinds(&report), BTreeMap::from([("missing_network", 1)]), "{}", report.to_text());
}

// --- Node load balancers ------------------------------------------------------------------------

/// default_pools: node vm answered the gather; app's task runs there, on networks front and back,
/// so its load balancers there are the `lb-front` and `lb-back` endpoints of their inspects.
fn node_id(files: &BTreeMap<String, Value>) -> NodeId {
    NodeId::new(text(&files["nodes.json"][0]["ID"]))
}

/// A load balancer the network inspect shows is checked like any holder: planted on the address
/// of a task of web, it keeps the address (it ranks before a live task) and the task loses it.
#[test]
fn a_node_load_balancer_shown_by_a_network_inspect_is_checked() {
    let mut files = files("default_pools");
    let node = node_id(&files);
    let web1 = tasks_of(&files, "web")[0].clone();
    let address = text(&web1["NetworksAttachments"][0]["Addresses"][0]).to_string();
    network(&mut files, "front")["Containers"]["lb-front"]["IPv4Address"] = json!(address);
    let report = check_files(&files);
    let [problem] = report.problems.as_slice() else { panic!("one problem:\n{}", report.to_text()) };
    let ProblemKind::DuplicateAddress { kept, lost, .. } = &problem.kind else { panic!("{problem:?}") };
    assert_eq!(kept, &Holder::NodeLb(node));
    assert_eq!(lost, &[Holder::Task(TaskId::new(text(&web1["ID"])))]);
    assert!(problem.message.contains("the load balancer of node "), "{}", problem.message);
}

/// The node's load balancer on a network is unknown when that network's inspect does not show
/// it (the network's endpoints there were not gathered): the next pass would add one there, which
/// the store may well hold already, so the check says so in `skipped`, not as a problem.
#[test]
fn a_load_balancer_the_inspects_do_not_show_is_skipped_not_reported() {
    let mut files = files("default_pools");
    network(&mut files, "back")["Containers"].as_object_mut().unwrap().remove("lb-back");
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        skipped.iter().any(|r| r.contains("its load-balancer addresses on network ")
            && r.contains("network back (")
            && r.contains("are not shown by the network inspects of the node that answered")),
        "{skipped:#?}"
    );
}

/// Docker's node API never shows a node's load-balancer attachments: a node other than the one
/// that answered the network inspects (a worker here), and every node when no inspect shows its
/// endpoints (plain `docker network inspect` output gathered elsewhere, or none), is skipped
/// with that reason, never reported.
#[test]
fn nodes_whose_load_balancers_are_not_shown_are_skipped_with_the_reason() {
    let mut files = files("default_pools");
    let mut worker = files["nodes.json"][0].clone();
    worker["ID"] = json!("worker00000000000000000001");
    worker["Description"]["Hostname"] = json!("w1");
    worker["Spec"]["Role"] = json!("worker");
    worker.as_object_mut().unwrap().remove("ManagerStatus");
    array(&mut files, "nodes.json").push(worker);
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    let reason = "node w1 (worker00000000000000000001): Docker's node API does not show its load-balancer attachments, \
                  so they are not checked";
    assert!(report.skipped.iter().any(|s| s.reason == reason), "{:#?}", report.skipped);
    assert_eq!(report.objects.nodes, 1, "the worker is not checked");

    // No endpoints in any inspect: not even the node that answered is checked.
    for network in array(&mut files, "networks.json") {
        network["Containers"] = Value::Null;
    }
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    assert_eq!(report.objects.nodes, 0);
    // Without `docker info` the check does not know which node answered.
    let mut files = self::files("default_pools");
    files.remove("swarm.json");
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    assert_eq!(report.objects.nodes, 0);
    assert!(report.config.from.is_none());
}

// --- gather.json --------------------------------------------------------------------------------

/// During a removal `GET /networks` can list the answering node's own copy of a network already
/// gone from the store; the gather names it in `gather.json` and the check leaves it out. Here
/// the gone copy holds the subnet and VXLAN id that SwarmKit, having freed them, gave network
/// back: read as a network of the store it would be a false overlap.
#[test]
fn a_network_the_manifest_names_gone_from_the_store_is_left_out() {
    let mut files = files("default_pools");
    let mut gone = network(&mut files, "back").clone();
    gone["Id"] = json!("gonenet0000000000000000001");
    gone["Name"] = json!("old");
    gone["Containers"] = json!({});
    array(&mut files, "networks.json").push(gone);
    let without_manifest = {
        let mut files = files.clone();
        files.remove("gather.json");
        check_files(&files)
    };
    assert!(kinds(&without_manifest).contains_key("overlapping_subnet"), "{}", without_manifest.to_text());

    files.get_mut("gather.json").unwrap()["not_in_store"] =
        json!([{"id": "gonenet0000000000000000001", "name": "old"}]);
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    assert_eq!(report.objects.networks, without_manifest.objects.networks - 1);
    let skipped = report.skipped.iter().find(|s| s.reason.contains("gonenet0000000000000000001")).expect("skipped");
    assert_eq!(skipped.place, "networks.json: [6]");
    assert_eq!(
        skipped.reason,
        "network old (gonenet0000000000000000001) is gone from the swarm store: only the node that answered still had \
         it (a removal still in progress there)"
    );

    // Named in the manifest only (the gather left the copy out of networks.json): said where.
    array(&mut files, "networks.json").pop();
    let report = check_files(&files);
    assert!(report.problems.is_empty(), "{}", report.to_text());
    assert!(report.skipped.iter().any(|s| s.place == "gather.json" && s.reason.contains("network old (")));
}

/// A manifest of another gather version is one unreadable object, named with its schema; the
/// rest of the dump is checked.
#[test]
fn a_manifest_of_another_version_is_refused_by_its_schema() {
    let mut files = files("default_pools");
    files.insert(
        "gather.json".into(),
        json!({"schema": "swarmalloc-gather/9", "source": "x", "not_in_store": [], "new_field": 1}),
    );
    let report = check_files(&files);
    assert_eq!(kinds(&report), BTreeMap::from([("unreadable_object", 1)]), "{}", report.to_text());
    assert_eq!(
        report.problems[0].message,
        "gather.json: the top level: the gather manifest cannot be read at schema: a gather manifest of schema \
         \"swarmalloc-gather/9\": this check reads \"swarmalloc-gather/1\" (it was gathered by another version of \
         allocsim)"
    );
    assert_eq!(report.objects.services, 2);
}

// --- Standalone containers on attachable networks -----------------------------------------------

/// The network-attachment tasks of `docker run --network att` containers c1 and c2.
fn attachment_tasks(files: &BTreeMap<String, Value>) -> Vec<Value> {
    let mut tasks: Vec<Value> = files["tasks.json"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["Spec"]["Runtime"] == "attachment")
        .cloned()
        .collect();
    tasks.sort_by_key(|t| t["ID"].as_str().map(str::to_string));
    tasks
}

/// A standalone container's attachment task claims its address like any task (a service task
/// planted on it is reported) and is named by its container, as `docker ps` names it when the
/// network inspect lists the container, else by the container id's first 12 digits.
#[test]
fn attachment_tasks_claim_their_addresses_and_are_named_by_their_containers() {
    let mut files = files("attachable");
    let attachments = attachment_tasks(&files);
    assert_eq!(attachments.len(), 2, "c1 and c2");
    let container = |t: &Value| text(&t["Spec"]["NetworkAttachmentSpec"]["ContainerID"]).to_string();
    let names: BTreeMap<String, String> = network(&mut files, "att")["Containers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, e)| (id.clone(), text(&e["Name"]).to_string()))
        .collect();
    let first = &attachments[0];
    let first_name = &names[&container(first)];
    assert!(first_name == "c1" || first_name == "c2");
    let address = first["NetworksAttachments"][0]["Addresses"][0].clone();
    let attsvc = tasks_of(&files, "attsvc")[0]["ID"].clone();
    for task in array(&mut files, "tasks.json") {
        if task["ID"] == attsvc {
            task["NetworksAttachments"][0]["Addresses"][0] = address.clone();
        }
    }
    let report = check_files(&files);
    let [problem] = report.problems.as_slice() else { panic!("one problem:\n{}", report.to_text()) };
    let ProblemKind::DuplicateAddress { kept, lost, .. } = &problem.kind else { panic!("{problem:?}") };
    let holders: BTreeSet<ObjectId> = std::iter::once(kept).chain(lost).map(Holder::object).collect();
    let expected: BTreeSet<ObjectId> =
        [text(&first["ID"]), text(&attsvc)].into_iter().map(|t| ObjectId::Task(TaskId::new(t))).collect();
    assert_eq!(holders, expected);
    let shown = format!("task attachment of container {first_name} ({})", text(&first["ID"]));
    assert!(problem.message.contains(&shown), "{} does not name {shown}", problem.message);

    // Without the network's endpoints, the container id stands for its name.
    network(&mut files, "att")["Containers"] = Value::Null;
    let report = check_files(&files);
    let short: String = container(first).chars().take(12).collect();
    let shown = format!("task attachment of container {short} ({})", text(&first["ID"]));
    assert!(report.problems[0].message.contains(&shown), "{}", report.problems[0].message);
}

// --- The page ----------------------------------------------------------------------------------

/// The page groups problems by kind and states each kind's rule once (ten stuck tasks, one
/// rule), links each queued object to the problem that explains it, and folds what was skipped.
#[test]
fn the_page_states_a_rule_once_per_kind_and_explains_the_queue() {
    let report = read("exhausted");
    let html = report.to_html();
    let rule = &report.problems[0].rule;
    assert_eq!(html.matches(rule.as_str()).count(), 1, "the rule once");
    assert_eq!(html.matches("<div class=\"card fail\"").count(), 10);
    for n in 1..=10 {
        assert!(html.contains(&format!("<a href=\"#problem-{n}\">{n}</a>")), "queue entry of problem {n}");
    }
    assert!(html.contains("<details>\n<summary>4 things the check did not read or judge, and why</summary>"));
    assert!(!html.contains("<td class=\"place\"><code>/"), "places are shown inside the checked directory");
}

/// A CLEAN state whose queue holds only a node the check cannot judge says so where the queue
/// is, and opens the skipped entry that says why.
#[test]
fn a_clean_page_points_from_the_queue_to_the_skipped_reason() {
    let html = read("default_pools").to_html();
    assert!(html.contains("<strong>CLEAN</strong>"));
    assert!(html.contains(": not judged, see <a href=\"#skipped\">Skipped</a></li>"), "{html}");
    assert!(html.contains("<details open>"));
    assert!(html.contains("except what restore's queue below names and the check cannot judge"));
}

// --- Helpers' own sanity ------------------------------------------------------------------------

#[test]
fn every_fixture_directory_is_listed_by_a_test() {
    let listed: BTreeSet<&str> = REAL_CLEAN
        .iter()
        .copied()
        .chain(REAL_WAITING.iter().map(|(name, _, _)| *name))
        .chain(["exhausted", "b4_leak"])
        .collect();
    let dir = real("");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(on_disk, listed, "reports/tests/dumps/real/ and the lists of this file");
    assert!(Path::new(&dir.join("make.sh")).is_file());
}
