//! A swarm of three managers, each dockerd in its own network namespace: a real leader change
//! after a partition of the leader and after a crash of the leader, with the state checked CLEAN
//! through whichever manager leads. Prints what it cost (time, memory).

use std::io::Write as _;
use std::time::{Duration, Instant};

use swarmalloc_live::harness::{Swarm, SwarmOptions, cluster_for_test};
use swarmalloc_live::ops::specs::{overlay, service};
use swarmalloc_live::ops::{Op, Placement, apply};

const SETTLE: Duration = Duration::from_secs(120);

/// The leader all running managers that are not cut off agree on, once it is not `not`; fails
/// after two minutes.
fn leader(swarm: &Swarm, not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match swarm.leader() {
            Some(i) if Some(i) != not => return i,
            seen if Instant::now() > deadline => panic!("no agreed leader other than {not:?} in 2 minutes: {seen:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Waits until every running manager that is not cut off names `expected` as the leader (a
/// healed or restarted manager follows the new one only once it has heard of its term).
fn all_follow(swarm: &Swarm, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while swarm.leader() != Some(expected) {
        assert!(Instant::now() < deadline, "the managers do not all follow manager {expected} after 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies `op` through manager `i`, waits until it settles there and checks the state CLEAN.
fn step(swarm: &Swarm, i: usize, op: &Op, services: &[&str]) {
    let conn = swarm.manager(i);
    conn.block_on(apply(conn.docker(), op)).unwrap_or_else(|e| panic!("{op} on manager {i}: {e}"));
    check(swarm, i, &op.to_string(), services);
}

/// Checks through manager `i` that the state is CLEAN and holds exactly `services` (so that a
/// manager answering from a stale store cannot pass).
fn check(swarm: &Swarm, i: usize, what: &str, services: &[&str]) {
    let conn = swarm.manager(i);
    let state = conn.settle(SETTLE).unwrap_or_else(|e| panic!("after {what}: {e}"));
    let report = state.check().unwrap_or_else(|e| panic!("after {what}: {e}"));
    assert!(report.problems.is_empty(), "after {what}, through manager {i}:\n{}", report.to_text());
    let listed = conn
        .block_on(conn.docker().list_services(None::<bollard::query_parameters::ListServicesOptions>))
        .unwrap_or_else(|e| panic!("after {what}: listing the services through manager {i}: {e}"));
    let mut names: Vec<String> = listed.into_iter().filter_map(|s| s.spec?.name).collect();
    names.sort();
    assert_eq!(names, services, "after {what}, the services manager {i} shows");
}

/// The resident memory of every process named `dockerd` or `containerd` under the swarm's
/// directory, in MB.
fn resident_mb(swarm: &Swarm) -> u64 {
    let dir = swarm.dir().to_str().unwrap().to_string();
    let mut kb = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&dir) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        kb += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    kb / 1024
}

#[test]
fn three_managers_change_leader_on_a_partition_and_a_crash_and_stay_clean() {
    let started = Instant::now();
    let Some(mut swarm) = cluster_for_test("three managers", 3, &SwarmOptions::default()) else { return };
    let formed = started.elapsed();
    let first = leader(&swarm, None);
    step(&swarm, first, &Op::CreateNetwork(overlay("a")), &[]);
    let web = Op::CreateService { spec: service("web", &["a"], 20), placement: Placement::Constrained };
    step(&swarm, first, &web, &["web"]);
    let memory = resident_mb(&swarm);

    let cut = Instant::now();
    swarm.partition(first).unwrap();
    let second = leader(&swarm, Some(first));
    let elected = cut.elapsed();
    step(&swarm, second, &Op::ScaleService { name: "web".into(), replicas: 60 }, &["web"]);
    let api = Op::CreateService { spec: service("api", &["a"], 10), placement: Placement::Constrained };
    step(&swarm, second, &api, &["api", "web"]);
    swarm.heal(first).unwrap();
    // The old leader follows the new one and sees what was done while it was cut off.
    all_follow(&swarm, second);
    check(&swarm, first, "the heal of the old leader", &["api", "web"]);

    let crashed = Instant::now();
    swarm.crash_manager(second).unwrap();
    let third = leader(&swarm, Some(second));
    let elected_after_crash = crashed.elapsed();
    step(&swarm, third, &Op::ScaleService { name: "api".into(), replicas: 30 }, &["api", "web"]);
    swarm.start_manager(second).unwrap();
    all_follow(&swarm, third);
    check(&swarm, second, "the restart of the crashed leader", &["api", "web"]);
    let dir = swarm.dir().to_path_buf();
    drop(swarm);
    assert!(!dir.exists(), "{} was removed", dir.display());
    let namespaces = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout;
    let ours = format!("sa{}x", std::process::id());
    assert!(!String::from_utf8_lossy(&namespaces).contains(&ours), "the cluster's network namespaces were deleted");
    let _ = writeln!(
        std::io::stderr(),
        "three managers: formed in {:.1} s; {memory} MB resident (3 dockerd, 3 containerd); a new leader {:.1} s \
         after the leader's partition, {:.1} s after its crash; the whole test {:.0} s",
        formed.as_secs_f64(),
        elected.as_secs_f64(),
        elected_after_crash.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
