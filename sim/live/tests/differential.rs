//! The differential on a real swarm: fixed sequences and a seeded random one, applied to the
//! real swarm and to the engine; see `swarmalloc_live::differential`.

use std::io::Write as _;

use swarmalloc::{ClusterConfig, Protocol};
use swarmalloc_live::differential::{DiffStep, listed_differences, random_steps, run};
use swarmalloc_live::harness::{SwarmOptions, swarm_for_test};
use swarmalloc_live::ops::specs::{attachable, dnsrr, overlay, publish, service, with_subnets};
use swarmalloc_live::ops::{Op, Placement};

fn architecture() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ARCHITECTURE.md");
    listed_differences(&std::fs::read_to_string(path).expect("ARCHITECTURE.md"))
}

fn create(spec: swarmalloc::ServiceSpec) -> DiffStep {
    DiffStep::Op(Op::CreateService { spec, placement: Placement::Constrained })
}

fn op(op: Op) -> DiffStep {
    DiffStep::Op(op)
}

/// Runs the steps; prints every tolerated difference by name; fails on any other mismatch.
fn differential(test: &str, steps: Vec<DiffStep>) {
    if let Some(failure) = differential_failure(test, &steps) {
        panic!("{}", failure.message);
    }
}

/// The first step whose comparison found a mismatch no listed difference explains.
struct Failure {
    step: usize,
    message: String,
}

/// Runs the steps; prints every tolerated difference by name and every mismatch; the first
/// step with a mismatch (the engine starts each step from the real state, so the steps up to it
/// are the shortest prefix that shows it in this run).
fn differential_failure(test: &str, steps: &[DiffStep]) -> Option<Failure> {
    let mut swarm = swarm_for_test(test, &SwarmOptions::default())?;
    let outcomes =
        run(&mut swarm, &ClusterConfig::default(), steps, &architecture()).unwrap_or_else(|e| panic!("{test}: {e}"));
    let mut err = std::io::stderr();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Some(refused) = &outcome.refused {
            let _ = writeln!(err, "{test}: step {i} ({}): the real swarm refused: {refused}", steps[i]);
        }
        for t in &outcome.tolerated {
            let _ = writeln!(err, "{test}: step {i} ({}): tolerated ({}): {}", steps[i], t.name, t.mismatch);
        }
        for m in &outcome.mismatches {
            let _ = writeln!(err, "{test}: step {i} ({}): MISMATCH {m}", steps[i]);
        }
    }
    let step = outcomes.iter().position(|o| !o.mismatches.is_empty())?;
    let prefix: Vec<String> = steps[..=step].iter().enumerate().map(|(k, s)| format!("  {k}: {s}")).collect();
    let mismatches: Vec<String> = outcomes[step].mismatches.iter().map(|m| format!("  {m}")).collect();
    let message = format!(
        "{test}: the real swarm and the engine differ after step {step}; the steps:\n{}\nthe differences:\n{}",
        prefix.join("\n"),
        mismatches.join("\n")
    );
    Some(Failure { step, message })
}

#[test]
fn growing_networks_services_ports_and_containers_allocate_as_swarmkit() {
    differential(
        "differential: growth",
        vec![
            op(Op::CreateNetwork(overlay("a"))),
            op(Op::CreateNetwork(with_subnets(
                overlay("b"),
                &[("10.11.0.0/24", Some("10.11.0.128/25"), Some("10.11.0.254"))],
            ))),
            create(service("s1", &["a", "b"], 3)),
            create(publish(
                publish(service("s2", &["a"], 2), 0, 80, Protocol::Tcp, false),
                8081,
                81,
                Protocol::Udp,
                false,
            )),
            create(dnsrr(service("s3", &["a", "b"], 2))),
            op(Op::ScaleService { name: "s1".into(), replicas: 7 }),
            op(Op::CreateNetwork(attachable("att"))),
            op(Op::RunContainer { name: "c1".into(), network: "att".into(), address: None }),
            create(publish(service("s4", &["att", "a"], 4), 0, 90, Protocol::Tcp, false)),
            op(Op::ScaleService { name: "s2".into(), replicas: 6 }),
            op(Op::CreateNetwork(overlay("c"))),
            create(service("s5", &["c", "b"], 5)),
        ],
    );
}

#[test]
fn the_default_gateway_of_an_ip_range_is_its_first_address() {
    differential(
        "differential: ip-range without a gateway",
        vec![
            op(Op::CreateNetwork(with_subnets(overlay("b"), &[("10.11.0.0/24", Some("10.11.0.128/25"), None)]))),
            create(service("s1", &["b"], 3)),
        ],
    );
}

#[test]
fn networks_services_ports_and_scaling_allocate_as_swarmkit() {
    differential(
        "differential: networks, services, ports, scaling",
        vec![
            op(Op::CreateNetwork(overlay("a"))),
            op(Op::CreateNetwork(with_subnets(
                overlay("b"),
                &[("10.11.0.0/24", Some("10.11.0.128/25"), Some("10.11.0.254"))],
            ))),
            op(Op::CreateNetwork(with_subnets(
                overlay("two"),
                &[("10.12.0.0/24", None, None), ("10.12.1.0/24", None, None)],
            ))),
            create(service("s1", &["a", "b"], 3)),
            create(publish(
                publish(service("s2", &["a"], 2), 0, 80, Protocol::Tcp, false),
                8081,
                81,
                Protocol::Tcp,
                false,
            )),
            create(dnsrr(service("s3", &["a", "two"], 2))),
            op(Op::ScaleService { name: "s1".into(), replicas: 6 }),
            op(Op::ScaleService { name: "s1".into(), replicas: 2 }),
            op(Op::ScaleService { name: "s1".into(), replicas: 5 }),
            op(Op::CreateNetwork(overlay("c"))),
            op(Op::UpdateService { spec: service("s1", &["a", "b", "c"], 5), placement: Placement::Constrained }),
            op(Op::UpdateService { spec: service("s1", &["b", "c"], 5), placement: Placement::Constrained }),
            op(Op::RemoveService { name: "s2".into() }),
            create(publish(service("s4", &["c"], 1), 0, 90, Protocol::Udp, false)),
            op(Op::RemoveService { name: "s3".into() }),
            op(Op::RemoveNetwork { name: "two".into() }),
            op(Op::CreateNetwork(overlay("d"))),
            op(Op::CreateNetwork(attachable("att"))),
            op(Op::RunContainer { name: "c1".into(), network: "att".into(), address: None }),
            create(service("s5", &["att", "d"], 3)),
        ],
    );
}

/// `SWARMALLOC_DIFF_SEED` and `SWARMALLOC_DIFF_STEPS` choose another sequence (default: seed 1,
/// 200 steps).
#[test]
fn a_seeded_random_sequence_allocates_as_swarmkit() {
    let number = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: expected a number")))
    };
    let seed = number("SWARMALLOC_DIFF_SEED", 1);
    let len = number("SWARMALLOC_DIFF_STEPS", 200) as usize;
    let steps = random_steps(seed, len);
    let test = format!("differential: random sequence, seed {seed}");
    let Some(failure) = differential_failure(&test, &steps) else { return };
    // The real swarm's choices are partly random (which task a scale-down removes, which subnet
    // a multi-subnet network gives), so say whether a fresh swarm running the prefix repeats it.
    let prefix = &steps[..=failure.step];
    let again = differential_failure(&format!("{test}, replaying its first {} steps", prefix.len()), prefix);
    let repeated = match again {
        Some(_) => "a fresh swarm running only these steps differs again",
        None => "a fresh swarm running only these steps did not differ",
    };
    panic!(
        "{}\nseed {seed}: the first {} steps show it ({repeated}); replay with SWARMALLOC_DIFF_SEED={seed} SWARMALLOC_DIFF_STEPS={}",
        failure.message,
        prefix.len(),
        prefix.len()
    );
}

#[test]
fn allocation_after_restarts_as_swarmkit() {
    differential(
        "differential: after restarts",
        vec![
            op(Op::CreateNetwork(overlay("a"))),
            create(publish(service("s1", &["a"], 4), 0, 80, Protocol::Tcp, false)),
            op(Op::ScaleService { name: "s1".into(), replicas: 2 }),
            DiffStep::Restart,
            op(Op::ScaleService { name: "s1".into(), replicas: 5 }),
            op(Op::CreateNetwork(overlay("b"))),
            op(Op::RemoveNetwork { name: "b".into() }),
            DiffStep::CrashRestart,
            op(Op::CreateNetwork(overlay("c"))),
            create(publish(service("s2", &["a", "c"], 3), 0, 81, Protocol::Tcp, false)),
            op(Op::RemoveService { name: "s1".into() }),
            DiffStep::CrashRestart,
            create(publish(service("s3", &["a"], 3), 0, 82, Protocol::Tcp, false)),
        ],
    );
}

/// The differential can fail: an engine whose dynamic ports start elsewhere than SwarmKit's
/// (31000 instead of 30000) is caught on the first service that publishes a dynamic port, and
/// on nothing else.
#[test]
fn an_engine_configured_unlike_the_swarm_is_caught() {
    let Some(mut swarm) = swarm_for_test("differential: a planted difference", &SwarmOptions::default()) else {
        return;
    };
    let mut config = ClusterConfig::default();
    config.dynamic_port_range.min = 31000;
    let steps = vec![
        op(Op::CreateNetwork(overlay("a"))),
        create(service("quiet", &["a"], 2)),
        create(publish(service("web", &["a"], 2), 0, 80, Protocol::Tcp, false)),
    ];
    let outcomes = run(&mut swarm, &config, &steps, &architecture()).expect("the steps run");
    let found: Vec<Vec<String>> =
        outcomes.iter().map(|o| o.mismatches.iter().map(|m| m.mismatch.to_string()).collect()).collect();
    assert_eq!(
        found,
        vec![vec![], vec![], vec!["service web: published ports: real 30000:80/tcp, engine 31000:80/tcp".to_string()]]
    );
}
