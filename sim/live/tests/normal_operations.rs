//! Normal operations on a real swarm leave a state that `allocsim check` finds CLEAN: after every
//! operation (once the swarm has settled) the state is gathered through the API and checked with
//! the check library, as `allocsim check` would.

use std::time::Duration;

use swarmalloc::Protocol;
use swarmalloc_live::harness::{Swarm, SwarmOptions, swarm_for_test};
use swarmalloc_live::ops::specs::{attachable, dnsrr, overlay, publish, service, with_subnets};
use swarmalloc_live::ops::{Op, Placement, apply};

const SETTLE: Duration = Duration::from_secs(120);

/// One stage of a test.
enum Stage {
    /// Apply, wait until the swarm settles, check.
    Op(Op),
    /// Apply, then at once kill -9 the manager and start it again; settle and check.
    CrashDuring(Op),
}

fn create(spec: swarmalloc::ServiceSpec) -> Stage {
    Stage::Op(Op::CreateService { spec, placement: Placement::Constrained })
}

/// Runs the steps, checking after each; fails listing every step whose state was not CLEAN.
fn run_checked(swarm: &mut Swarm, steps: Vec<Stage>) {
    let mut failures = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        let what = match &step {
            Stage::Op(op) => op.to_string(),
            Stage::CrashDuring(op) => format!("{op}, then at once kill -9 and restart"),
        };
        match step {
            Stage::Op(op) => {
                swarm.block_on(apply(swarm.docker(), &op)).unwrap_or_else(|e| panic!("step {i}: {what}: {e}"))
            }
            Stage::CrashDuring(op) => {
                swarm.block_on(apply(swarm.docker(), &op)).unwrap_or_else(|e| panic!("step {i}: {what}: {e}"));
                swarm.crash_restart().unwrap_or_else(|e| panic!("step {i}: {what}: {e}"));
            }
        }
        let state = swarm.settle(SETTLE).unwrap_or_else(|e| panic!("step {i}: {what}: {e}"));
        let report = state.check().unwrap_or_else(|e| panic!("step {i}: {what}: the gathered state: {e}"));
        if !report.problems.is_empty() {
            failures.push(format!("after step {i} ({what}):\n{}", report.to_text()));
        }
    }
    assert!(failures.is_empty(), "the check found problems:\n{}", failures.join("\n"));
}

#[test]
fn default_explicit_and_two_subnet_networks_with_services_and_containers_check_clean() {
    let Some(mut swarm) = swarm_for_test("networks and containers", &SwarmOptions::default()) else { return };
    let steps = vec![
        Stage::Op(Op::CreateNetwork(overlay("plain"))),
        // An ip-range with the gateway at the top of it.
        Stage::Op(Op::CreateNetwork(with_subnets(
            overlay("explicit"),
            &[("10.11.0.0/24", Some("10.11.0.128/25"), Some("10.11.0.254"))],
        ))),
        Stage::Op(Op::CreateNetwork(with_subnets(
            overlay("two"),
            &[("10.12.0.0/24", None, None), ("10.12.1.0/24", None, Some("10.12.1.1"))],
        ))),
        Stage::Op(Op::CreateNetwork(with_subnets(attachable("shared"), &[("10.60.0.0/24", None, None)]))),
        create(service("vip", &["plain", "explicit", "two"], 5)),
        Stage::Op(Op::RunContainer { name: "c1".into(), network: "shared".into(), address: None }),
        Stage::Op(Op::RunContainer {
            name: "c2".into(),
            network: "shared".into(),
            address: Some("10.60.0.77".parse().unwrap()),
        }),
        create(service("on-shared", &["shared", "plain"], 2)),
        Stage::Op(Op::RemoveContainer { name: "c1".into() }),
        Stage::Op(Op::ScaleService { name: "vip".into(), replicas: 9 }),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn dual_stack_networks_check_clean() {
    let Some(mut swarm) = swarm_for_test("dual stack", &SwarmOptions::default()) else { return };
    let steps = vec![
        Stage::Op(Op::CreateNetwork(with_subnets(
            overlay("dual"),
            &[("fd00:1::/64", None, None), ("10.50.0.0/24", None, None)],
        ))),
        create(service("dual-vip", &["dual"], 4)),
        Stage::Op(Op::ScaleService { name: "dual-vip".into(), replicas: 8 }),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn dnsrr_services_with_and_without_ports_check_clean() {
    let Some(mut swarm) = swarm_for_test("DNSRR services", &SwarmOptions::default()) else { return };
    let steps = vec![
        Stage::Op(Op::CreateNetwork(overlay("plain"))),
        create(dnsrr(service("dns", &["plain"], 3))),
        // DNSRR publishes in host mode only.
        create(publish(dnsrr(service("dns-host-port", &["plain"], 2)), 8090, 90, Protocol::Tcp, true)),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn fixed_dynamic_and_host_mode_published_ports_check_clean() {
    let Some(mut swarm) = swarm_for_test("published ports", &SwarmOptions::default()) else { return };
    let ports = publish(
        publish(publish(service("ports", &["plain"], 2), 0, 80, Protocol::Tcp, false), 8081, 81, Protocol::Tcp, false),
        8082,
        82,
        Protocol::Udp,
        true,
    );
    let steps = vec![
        Stage::Op(Op::CreateNetwork(overlay("plain"))),
        create(ports),
        create(publish(service("ingress-only", &[], 2), 0, 443, Protocol::Tcp, false)),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn scaling_to_hundreds_and_back_and_changing_networks_check_clean() {
    let Some(mut swarm) = swarm_for_test("scaling and network changes", &SwarmOptions::default()) else { return };
    let steps = vec![
        // A default /24 holds 252 tasks beside a VIP; a few hundred need bigger subnets.
        Stage::Op(Op::CreateNetwork(with_subnets(overlay("front"), &[("10.30.0.0/22", None, None)]))),
        Stage::Op(Op::CreateNetwork(with_subnets(overlay("back"), &[("10.31.0.0/23", None, None)]))),
        create(service("web", &["front", "back"], 3)),
        Stage::Op(Op::ScaleService { name: "web".into(), replicas: 300 }),
        Stage::Op(Op::ScaleService { name: "web".into(), replicas: 4 }),
        // --network-add, then --network-rm.
        Stage::Op(Op::CreateNetwork(overlay("extra"))),
        Stage::Op(Op::UpdateService {
            spec: service("web", &["front", "back", "extra"], 4),
            placement: Placement::Constrained,
        }),
        Stage::Op(Op::UpdateService {
            spec: service("web", &["front", "extra"], 4),
            placement: Placement::Constrained,
        }),
        Stage::Op(Op::RemoveNetwork { name: "back".into() }),
        Stage::Op(Op::RemoveService { name: "web".into() }),
        Stage::Op(Op::RemoveNetwork { name: "front".into() }),
        Stage::Op(Op::RemoveNetwork { name: "extra".into() }),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn a_swarm_with_a_custom_default_address_pool_checks_clean() {
    let options = SwarmOptions {
        default_addr_pool: vec!["10.20.0.0/16".into(), "192.168.128.0/20".into()],
        subnet_size: Some(26),
        ..SwarmOptions::default()
    };
    let Some(mut swarm) = swarm_for_test("custom default address pool", &options) else { return };
    let steps = vec![
        Stage::Op(Op::CreateNetwork(overlay("a"))),
        Stage::Op(Op::CreateNetwork(overlay("b"))),
        create(publish(service("s", &["a", "b"], 10), 0, 80, Protocol::Tcp, false)),
        Stage::Op(Op::ScaleService { name: "s".into(), replicas: 40 }),
    ];
    run_checked(&mut swarm, steps);
}

#[test]
fn a_manager_crash_in_the_middle_of_a_scale_up_and_of_a_removal_checks_clean() {
    let Some(mut swarm) = swarm_for_test("crash during scale-up and removal", &SwarmOptions::default()) else { return };
    let steps = vec![
        Stage::Op(Op::CreateNetwork(with_subnets(overlay("a"), &[("10.32.0.0/22", None, None)]))),
        Stage::Op(Op::CreateNetwork(with_subnets(overlay("b"), &[("10.33.0.0/22", None, None)]))),
        create(service("web", &["a", "b"], 2)),
        Stage::CrashDuring(Op::ScaleService { name: "web".into(), replicas: 400 }),
        create(service("other", &["b"], 50)),
        Stage::CrashDuring(Op::RemoveService { name: "web".into() }),
        Stage::Op(Op::ScaleService { name: "other".into(), replicas: 100 }),
    ];
    run_checked(&mut swarm, steps);
}
