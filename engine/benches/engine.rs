//! Engine benchmarks (issue 2): task attachments on one /16, restore of a large store, and the
//! dynamic port range filled and emptied; and (issue 5) the `engine_ops` fuzz target's own work
//! per input, without libFuzzer. Figures and the machine are in the README.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use swarmalloc::*;

fn network(id: &str, subnet: Option<&str>, ingress: bool) -> Network {
    let configs = subnet.map(|s| IpamConfig { subnet: Some(s.parse().unwrap()), ..Default::default() });
    Network {
        id: id.into(),
        version: Version(1),
        spec: NetworkSpec {
            name: id.into(),
            ingress,
            ipam: Some(Ipam { driver: String::new(), configs: configs.into_iter().collect(), ..Default::default() }),
            ..Default::default()
        },
        driver_state: None,
        ipam: None,
    }
}

fn task(id: String, service: Option<&str>, network: Option<&str>) -> Task {
    Task {
        id: TaskId::new(id),
        version: Version(1),
        service_id: service.map(ServiceId::from),
        node_id: None,
        slot: 0,
        spec: TaskSpec { networks: network.into_iter().map(NetworkAttachmentConfig::from).collect() },
        status: TaskStatus::default(),
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    }
}

/// Allocates `objects` in one transaction and commits; returns the updated objects.
fn allocate_all(alloc: &mut Allocator, objects: &[Object], services: &[Service]) -> Vec<Object> {
    let services: std::collections::BTreeMap<&ServiceId, &Service> = services.iter().map(|s| (&s.id, s)).collect();
    let proposal = {
        let mut tx = alloc.begin();
        for object in objects {
            match object {
                Object::Network(n) => tx.allocate_network(n).unwrap(),
                Object::Service(s) => tx.allocate_service(s).unwrap(),
                Object::Task(t) => {
                    let service = t.service_id.as_ref().and_then(|id| services.get(id).copied());
                    tx.allocate_task(t, service).unwrap()
                }
                Object::Node(n) => tx.allocate_node(n).unwrap(),
            };
        }
        tx.finish()
    };
    alloc.commit(&proposal);
    proposal.into_updates()
}

fn attachments_on_a_16(c: &mut Criterion) {
    const TASKS: usize = 50_000;
    let mut alloc = Allocator::new(ClusterConfig::default()).unwrap();
    allocate_all(&mut alloc, &[Object::Network(network("big", Some("10.128.0.0/16"), false))], &[]);
    let tasks: Vec<Task> = (0..TASKS).map(|i| task(format!("t{i:06}"), None, Some("big"))).collect();

    let mut group = c.benchmark_group("attach_50k_on_a_16");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.bench_function("propose", |b| {
        b.iter(|| {
            let mut tx = alloc.begin();
            for t in &tasks {
                tx.allocate_task(t, None).unwrap();
            }
            black_box(tx.finish())
        })
    });
    group.bench_function("propose_and_commit", |b| {
        b.iter_batched(
            || alloc.clone(),
            |mut fresh| {
                let proposal = {
                    let mut tx = fresh.begin();
                    for t in &tasks {
                        tx.allocate_task(t, None).unwrap();
                    }
                    tx.finish()
                };
                fresh.commit(&proposal);
                fresh
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// 1,000 networks, 10,000 services (one VIP each), 100,000 running tasks on 100 nodes.
fn large_store() -> Vec<Object> {
    let mut alloc = Allocator::new(ClusterConfig::default()).unwrap();
    let networks: Vec<Object> =
        (0..1_000).map(|i| Object::Network(network(&format!("net{i:04}"), None, false))).collect();
    let mut store = allocate_all(&mut alloc, &networks, &[]);
    let services: Vec<Object> = (0..10_000)
        .map(|i| {
            let net = format!("net{:04}", i / 10);
            Object::Service(Service {
                id: ServiceId::new(format!("svc{i:05}")),
                version: Version(1),
                spec: ServiceSpec {
                    name: format!("svc{i:05}"),
                    replicas: 10,
                    task_networks: vec![NetworkAttachmentConfig::from(net.as_str())],
                    ..Default::default()
                },
                endpoint: None,
            })
        })
        .collect();
    let services = allocate_all(&mut alloc, &services, &[]);
    let service_objects: Vec<Service> =
        services.iter().filter_map(|o| if let Object::Service(s) = o { Some(s.clone()) } else { None }).collect();
    let tasks: Vec<Object> = (0..100_000)
        .map(|i| Object::Task(task(format!("task{i:06}"), Some(service_objects[i / 10].id.as_str()), None)))
        .collect();
    let tasks = allocate_all(&mut alloc, &tasks, &service_objects);
    store.extend(services);
    store.extend(tasks.into_iter().enumerate().map(|(i, t)| {
        let Object::Task(mut t) = t else { unreachable!() };
        t.status.state = TaskState::Running;
        t.node_id = Some(NodeId::new(format!("node{:03}", i % 100)));
        Object::Task(t)
    }));
    store
}

fn restore_large_store(c: &mut Criterion) {
    let store = large_store();
    let mut group = c.benchmark_group("restore_100k_tasks_10k_services_1k_networks");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("restore", |b| {
        b.iter(|| {
            let (alloc, report) =
                Allocator::restore(ClusterConfig::default(), store.iter().map(Object::as_ref)).unwrap();
            assert!(report.is_clean());
            black_box(alloc)
        })
    });
    group.finish();
}

fn dynamic_ports_fill_and_free(c: &mut Criterion) {
    let config = ClusterConfig::default();
    let range = config.dynamic_port_range;
    let count = (range.max - range.min + 1) as usize;
    let mut alloc = Allocator::new(config).unwrap();
    allocate_all(&mut alloc, &[Object::Network(network("ingress", Some("10.255.0.0/20"), true))], &[]);
    let services: Vec<Service> = (0..count)
        .map(|i| Service {
            id: ServiceId::new(format!("svc{i:05}")),
            version: Version(1),
            spec: ServiceSpec {
                name: format!("svc{i:05}"),
                endpoint: Some(EndpointSpec {
                    mode: ResolutionMode::Vip,
                    ports: vec![PortConfig {
                        name: String::new(),
                        protocol: Protocol::Tcp,
                        target_port: 80,
                        published_port: 0,
                        publish_mode: PublishMode::Ingress,
                    }],
                }),
                ..Default::default()
            },
            endpoint: None,
        })
        .collect();
    let mut group = c.benchmark_group("dynamic_ports_fill_then_free");
    group.throughput(Throughput::Elements(count as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.bench_function("one_service_per_commit", |b| {
        b.iter_batched(
            || alloc.clone(),
            |mut fresh| {
                for s in &services {
                    let proposal = {
                        let mut tx = fresh.begin();
                        tx.allocate_service(s).unwrap();
                        tx.finish()
                    };
                    fresh.commit(&proposal);
                }
                let mut tx = fresh.begin();
                let full = Service { id: ServiceId::from("one-too-many"), ..services[0].clone() };
                assert!(matches!(tx.allocate_service(&full), Err(AllocError::Exhausted { .. })));
                drop(tx);
                for s in &services {
                    fresh.observe_deleted(&ObjectId::Service(s.id.clone()));
                }
                fresh
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The `engine_ops` fuzz target's property over its committed seed corpus: what one execution
/// costs before libFuzzer's own bookkeeping (README, Fuzzing).
fn engine_ops_seed_corpus(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus-seed/engine_ops");
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.expect("readable directory").path()).expect("readable file"))
        .collect();
    inputs.sort();
    let mut group = c.benchmark_group("engine_ops_seed_corpus");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.bench_function("check_ops_bytes", |b| {
        b.iter(|| {
            for input in &inputs {
                swarmalloc_testing::check_ops_bytes(black_box(input)).expect("the seed corpus passes");
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    attachments_on_a_16,
    restore_large_store,
    dynamic_ports_fill_and_free,
    engine_ops_seed_corpus
);
criterion_main!(benches);
