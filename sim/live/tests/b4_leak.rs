//! SwarmKit's B4 on a real swarm: a service on two networks is removed and at once one of its
//! networks too, while its tasks are still stopping. Deallocating those tasks fails on the
//! missing network, and their addresses on the other network are never given back in the
//! manager's memory, although nothing in the store holds them any more: a new service filling
//! that network leaves tasks in NEW. The check (restore of the store) must report exactly those
//! tasks and say what the next pass would give them; a restart of the manager (its allocator
//! restores from the store) must do exactly that.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use swarmalloc_live::harness::{SwarmOptions, swarm_for_test};
use swarmalloc_live::ops::specs::{overlay, service, with_subnets};
use swarmalloc_live::ops::{Op, Placement, apply};
use swarmalloc_reports::{Outcomes, ProblemKind};

#[test]
fn addresses_leaked_by_a_network_removed_under_stopping_tasks_are_reported_and_restored() {
    let Some(mut swarm) = swarm_for_test("the real B4 leak", &SwarmOptions::default()) else { return };
    // A /29: the gateway takes .1, five addresses (.2 to .6) are left for VIPs and tasks.
    let steps = [
        Op::CreateNetwork(overlay("other")),
        Op::CreateNetwork(with_subnets(overlay("small"), &[("10.70.0.0/29", None, None)])),
        Op::CreateService { spec: service("old", &["other", "small"], 2), placement: Placement::Running },
    ];
    for op in &steps {
        swarm.block_on(apply(swarm.docker(), op)).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    let running = |state: &swarmalloc_live::state::RealState| {
        state.tasks.iter().filter(|t| t.pointer("/Status/State").and_then(Value::as_str) == Some("running")).count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while running(&swarm.state().unwrap()) < 2 {
        assert!(std::time::Instant::now() < deadline, "the tasks of `old` never ran");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Their containers ignore SIGTERM (sleep as init), so they take their 10 s grace period to stop.
    swarm.block_on(apply(swarm.docker(), &Op::RemoveService { name: "old".into() })).unwrap();
    swarm.block_on(apply(swarm.docker(), &Op::RemoveNetwork { name: "other".into() })).unwrap();
    let settled = swarm.settle(Duration::from_secs(120)).expect("the old tasks stop and are reaped");
    assert!(settled.tasks.is_empty(), "no task is left in the store: {:?}", settled.tasks);

    let new = service("new", &["small"], 4);
    swarm.block_on(apply(swarm.docker(), &Op::CreateService { spec: new, placement: Placement::Constrained })).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let state = swarm.state().unwrap();
    let stuck: BTreeSet<String> = state
        .tasks
        .iter()
        .filter(|t| t.pointer("/Status/State").and_then(Value::as_str) == Some("new"))
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect();
    assert!(!stuck.is_empty(), "the leak left no task in NEW: the real manager no longer has B4?");

    let report = state.check().expect("the state reads");
    let reported: BTreeSet<String> = report
        .problems
        .iter()
        .filter_map(|p| match &p.kind {
            ProblemKind::TaskStuckInNew { task, .. } => Some(task.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reported, stuck, "the check reports exactly the tasks in NEW:\n{}", report.to_text());
    assert_eq!(report.problems.len(), stuck.len(), "and nothing else:\n{}", report.to_text());
    let predicted: BTreeSet<IpNet> = report
        .problems
        .iter()
        .flat_map(|p| &p.actions)
        .flat_map(|a| match &a.outcome {
            Outcomes::Allocated { changes } => changes.clone(),
            other => panic!("the next pass would allocate each stuck task, the check says {other:?}"),
        })
        .flat_map(|change| change.split([' ', ',']).filter_map(|w| w.parse::<IpNet>().ok()).collect::<Vec<_>>())
        .collect();
    assert_eq!(predicted.len(), stuck.len(), "one predicted address per stuck task: {predicted:?}");

    swarm.restart().expect("a graceful restart");
    let after = swarm.settle(Duration::from_secs(120)).expect("the stuck tasks are allocated after the restart");
    let given: BTreeSet<IpNet> = after
        .tasks
        .iter()
        .filter(|t| stuck.contains(t["ID"].as_str().unwrap()))
        .flat_map(|t| t["NetworksAttachments"].as_array().cloned().unwrap_or_default())
        .flat_map(|a| a["Addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(given, predicted, "the restarted manager gives the stuck tasks the addresses the check predicted");
    let report = after.check().unwrap();
    assert!(report.problems.is_empty(), "and the state checks clean:\n{}", report.to_text());
    let list = |a: &BTreeSet<IpNet>| a.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        std::io::stderr(),
        "the real B4 leak: {} tasks stuck in NEW; the check predicted {}; the restarted manager gave {}",
        stuck.len(),
        list(&predicted),
        list(&given)
    );
}
