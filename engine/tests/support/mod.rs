//! Test world: an in-memory committed store plus the engine mirroring it, and object builders.
//! Every write goes through `commit` so that the store, not the engine, is the truth; `World::
//! consistent` checks after each step that the engine equals a fresh restore of the store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use swarmalloc::*;

pub struct World {
    pub alloc: Allocator,
    pub store: BTreeMap<ObjectId, Object>,
    next_version: u64,
}

impl World {
    pub fn new() -> World {
        World::with_config(ClusterConfig::default())
    }

    pub fn with_config(config: ClusterConfig) -> World {
        World { alloc: Allocator::new(config).expect("valid config"), store: BTreeMap::new(), next_version: 1 }
    }

    /// A world whose store starts with `objects` as committed state, then restored.
    pub fn restored(config: ClusterConfig, objects: Vec<Object>) -> (World, RestoreReport) {
        let mut world = World::with_config(config);
        for object in objects {
            world.store.insert(object.id(), object);
        }
        let report = world.restore();
        (world, report)
    }

    /// A failover: the engine is rebuilt from the store.
    pub fn restore(&mut self) -> RestoreReport {
        let (alloc, report) =
            Allocator::restore(self.alloc.config().clone(), self.store.values().map(Object::as_ref)).expect("config");
        self.alloc = alloc;
        report
    }

    /// Commits a write by anyone (user, orchestrator, agent) and mirrors it into the engine.
    pub fn put(&mut self, object: impl Into<Object>) {
        let mut object = object.into();
        object.set_version(Version(self.next_version));
        self.next_version += 1;
        self.alloc.observe(object.as_ref());
        self.store.insert(object.id(), object);
        self.consistent();
    }

    pub fn delete(&mut self, id: ObjectId) {
        assert!(self.store.remove(&id).is_some(), "deleting {id}, which is not in the store");
        self.alloc.observe_deleted(&id);
        self.consistent();
    }

    /// Commits a proposal's updates into the store and the engine.
    pub fn commit(&mut self, proposal: &Proposal) {
        self.commit_prefix(proposal, proposal.len());
    }

    pub fn commit_prefix(&mut self, proposal: &Proposal, landed: usize) {
        for object in &proposal.updates()[..landed] {
            let mut object = object.clone();
            object.set_version(Version(self.next_version));
            self.store.insert(object.id(), object);
        }
        self.next_version += 1;
        self.alloc.commit_prefix(proposal, landed);
        self.consistent();
    }

    /// Allocates one object on its own and commits the result.
    pub fn allocate(&mut self, id: &ObjectId) -> Result<Outcome, AllocError> {
        let object = self.store.get(id).unwrap_or_else(|| panic!("{id} is not in the store")).clone();
        let mut tx = self.alloc.begin();
        let outcome = match &object {
            Object::Network(n) => tx.allocate_network(n),
            Object::Service(s) => tx.allocate_service(s),
            Object::Task(t) => {
                let service = t.service_id.as_ref().and_then(|s| self.service_opt(s.as_str()));
                tx.allocate_task(t, service)
            }
            Object::Node(n) => tx.allocate_node(n),
        };
        let proposal = tx.finish();
        if outcome.is_ok() {
            self.commit(&proposal);
        }
        outcome
    }

    /// One allocation pass over the whole store, in dependency order, committed at once.
    /// Returns the errors, by object.
    pub fn pass(&mut self) -> Vec<ObjectError> {
        let proposal_and_errors = {
            let mut tx = self.alloc.begin();
            let mut errors = Vec::new();
            let mut record = |id: ObjectId, result: Result<Outcome, AllocError>| {
                if let Err(error) = result {
                    errors.push(ObjectError { object: id, error });
                }
            };
            // The ingress first, as SwarmKit's init does, then everything in id order.
            let mut objects: Vec<&Object> = self.store.values().collect();
            objects.sort_by_key(|o| !matches!(o, Object::Network(n) if n.is_ingress()));
            for object in &objects {
                if let Object::Network(n) = object {
                    record(object.id(), tx.allocate_network(n));
                }
            }
            for object in &objects {
                if let Object::Service(s) = object {
                    record(object.id(), tx.allocate_service(s));
                }
            }
            for object in &objects {
                if let Object::Task(t) = object {
                    let service = t.service_id.as_ref().and_then(|s| self.service_opt(s.as_str()));
                    record(object.id(), tx.allocate_task(t, service));
                }
            }
            for object in &objects {
                if let Object::Node(n) = object {
                    record(object.id(), tx.allocate_node(n));
                }
            }
            (tx.finish(), errors)
        };
        let (proposal, errors) = proposal_and_errors;
        self.commit(&proposal);
        errors
    }

    /// Passes until nothing changes (node attachments follow task changes).
    pub fn settle(&mut self) -> Vec<ObjectError> {
        for _ in 0..4 {
            let before = self.store.clone();
            let errors = self.pass();
            if self.store == before {
                return errors;
            }
        }
        panic!("allocation did not settle in 4 passes");
    }

    /// The engine equals a fresh restore of the store, in store order and in reverse order.
    pub fn consistent(&self) {
        let config = self.alloc.config().clone();
        let (forward, _) = Allocator::restore(config.clone(), self.store.values().map(Object::as_ref)).unwrap();
        if let Some(diff) = self.alloc.diff(&forward) {
            panic!("engine differs from restore of the committed store:\n{diff}");
        }
        let (backward, _) = Allocator::restore(config, self.store.values().rev().map(Object::as_ref)).unwrap();
        if let Some(diff) = forward.diff(&backward) {
            panic!("restore depends on input order:\n{diff}");
        }
    }

    pub fn network(&self, id: &str) -> &Network {
        match self.store.get(&ObjectId::Network(id.into())) {
            Some(Object::Network(n)) => n,
            _ => panic!("no network {id}"),
        }
    }

    pub fn service(&self, id: &str) -> &Service {
        self.service_opt(id).unwrap_or_else(|| panic!("no service {id}"))
    }

    fn service_opt(&self, id: &str) -> Option<&Service> {
        match self.store.get(&ObjectId::Service(id.into())) {
            Some(Object::Service(s)) => Some(s),
            _ => None,
        }
    }

    pub fn task(&self, id: &str) -> &Task {
        match self.store.get(&ObjectId::Task(id.into())) {
            Some(Object::Task(t)) => t,
            _ => panic!("no task {id}"),
        }
    }

    pub fn node(&self, id: &str) -> &Node {
        match self.store.get(&ObjectId::Node(id.into())) {
            Some(Object::Node(n)) => n,
            _ => panic!("no node {id}"),
        }
    }

    /// The subnets written into a network, in config order, as strings.
    pub fn subnets(&self, id: &str) -> Vec<String> {
        let ipam = self.network(id).ipam.as_ref().unwrap_or_else(|| panic!("network {id} is not allocated"));
        ipam.configs.iter().map(|c| c.subnet.expect("allocated config has a subnet").to_string()).collect()
    }

    pub fn gateways(&self, id: &str) -> Vec<String> {
        let ipam = self.network(id).ipam.as_ref().unwrap_or_else(|| panic!("network {id} is not allocated"));
        ipam.configs.iter().map(|c| c.gateway.expect("allocated config has a gateway").to_string()).collect()
    }

    pub fn vnis(&self, id: &str) -> String {
        let state = self.network(id).driver_state.as_ref().unwrap_or_else(|| panic!("network {id} not allocated"));
        state.options.get(VXLAN_ID_LIST_OPTION).cloned().unwrap_or_default()
    }

    /// A task's addresses on a network, as strings.
    pub fn addrs(&self, task: &str, network: &str) -> Vec<String> {
        attachment_addrs(&self.task(task).networks, network)
    }

    pub fn node_addrs(&self, node: &str, network: &str) -> Vec<String> {
        attachment_addrs(&self.node(node).attachments, network)
    }

    pub fn vip(&self, service: &str, network: &str) -> Option<String> {
        let endpoint = self.service(service).endpoint.as_ref()?;
        endpoint.virtual_ips.iter().find(|v| v.network_id.as_str() == network).map(|v| v.addr.to_string())
    }

    pub fn vip_networks(&self, service: &str) -> Vec<String> {
        let endpoint = self.service(service).endpoint.as_ref().expect("service allocated");
        endpoint.virtual_ips.iter().map(|v| v.network_id.to_string()).collect()
    }

    pub fn published(&self, service: &str) -> Vec<(String, u16)> {
        let endpoint = self.service(service).endpoint.as_ref().expect("service allocated");
        endpoint.ports.iter().map(|p| (p.name.clone(), p.published_port)).collect()
    }

    pub fn state(&self, task: &str) -> TaskState {
        self.task(task).status.state
    }

    /// Moves a task to a new status, as an agent's report would.
    pub fn set_state(&mut self, task: &str, state: TaskState) {
        let mut t = self.task(task).clone();
        t.status.state = state;
        self.put(t);
    }

    pub fn assign(&mut self, task: &str, node: &str) {
        let mut t = self.task(task).clone();
        t.node_id = Some(node.into());
        t.status.state = TaskState::Running;
        self.put(t);
    }

    /// A NEW task of a stored service, with the service's `task_networks` copied into its spec
    /// as SwarmKit's orchestrator copies the task template.
    pub fn task_of(&self, id: &str, service: &str) -> Task {
        let mut t = task(id, Some(service));
        t.spec.networks = self.service(service).spec.task_networks.clone();
        t
    }

    pub fn holder(&self, network: &str, addr: &str) -> Option<Holder> {
        let ip: IpAddr = addr.parse().expect("an IP address");
        self.alloc.holder(&network.into(), ip).cloned()
    }
}

fn attachment_addrs(attachments: &[NetworkAttachment], network: &str) -> Vec<String> {
    attachments
        .iter()
        .find(|a| a.network_id.as_str() == network)
        .map(|a| a.addresses.iter().map(IpNet::to_string).collect())
        .unwrap_or_default()
}

// -------------------------------------------------------------------------------------------
// Builders

pub fn network(id: &str) -> Network {
    Network {
        id: id.into(),
        version: Version(0),
        spec: NetworkSpec { name: id.to_string(), ..Default::default() },
        driver_state: None,
        ipam: None,
    }
}

pub fn with_subnets(mut network: Network, subnets: &[&str]) -> Network {
    let configs = subnets
        .iter()
        .map(|s| IpamConfig { subnet: Some(s.parse().expect("a subnet")), ..Default::default() })
        .collect();
    network.spec.ipam = Some(Ipam { driver: String::new(), options: BTreeMap::new(), configs });
    network
}

pub fn with_config(mut network: Network, subnet: &str, range: Option<&str>, gateway: Option<&str>) -> Network {
    let config = IpamConfig {
        subnet: Some(subnet.parse().expect("a subnet")),
        range: range.map(|r| r.parse().expect("a range")),
        gateway: gateway.map(|g| g.parse().expect("a gateway")),
    };
    network.spec.ipam.get_or_insert_with(Ipam::default).configs.push(config);
    network
}

pub fn with_driver(mut network: Network, driver: &str) -> Network {
    network.spec.driver = Some(DriverConfig { name: driver.to_string(), options: BTreeMap::new() });
    network
}

pub fn with_vnis(mut network: Network, vnis: &str) -> Network {
    let driver =
        network.spec.driver.get_or_insert_with(|| DriverConfig { name: "overlay".into(), options: BTreeMap::new() });
    driver.options.insert(VXLAN_ID_LIST_OPTION.to_string(), vnis.to_string());
    network
}

pub fn ingress(id: &str) -> Network {
    let mut n = network(id);
    n.spec.ingress = true;
    n
}

pub fn attachable(id: &str) -> Network {
    let mut n = network(id);
    n.spec.attachable = true;
    n
}

pub fn service(id: &str, networks: &[&str]) -> Service {
    Service {
        id: id.into(),
        version: Version(0),
        spec: ServiceSpec {
            name: id.to_string(),
            replicas: 1,
            task_networks: networks.iter().map(|n| NetworkAttachmentConfig::to(*n)).collect(),
            ..Default::default()
        },
        endpoint: None,
    }
}

pub fn dnsrr(mut service: Service) -> Service {
    service.spec.endpoint.get_or_insert_with(EndpointSpec::default).mode = ResolutionMode::Dnsrr;
    service
}

pub fn port(name: &str, protocol: Protocol, target: u16, published: u16, mode: PublishMode) -> PortConfig {
    PortConfig { name: name.to_string(), protocol, target_port: target, published_port: published, publish_mode: mode }
}

pub fn with_ports(mut service: Service, ports: Vec<PortConfig>) -> Service {
    service.spec.endpoint.get_or_insert_with(EndpointSpec::default).ports = ports;
    service
}

pub fn task(id: &str, service: Option<&str>) -> Task {
    Task {
        id: id.into(),
        version: Version(0),
        service_id: service.map(ServiceId::from),
        node_id: None,
        slot: 0,
        spec: TaskSpec::default(),
        status: TaskStatus::default(),
        desired_state: TaskState::Running,
        networks: Vec::new(),
        endpoint: None,
    }
}

/// A standalone container's task on an attachable network, optionally with a requested address.
pub fn container(id: &str, network: &str, node: &str, address: Option<&str>) -> Task {
    let mut t = task(id, None);
    t.node_id = Some(node.into());
    let mut config = NetworkAttachmentConfig::to(network);
    config.addresses = address.map(|a| a.parse().expect("an address")).into_iter().collect();
    t.spec.networks.push(config);
    t
}

pub fn node(id: &str) -> Node {
    Node { id: id.into(), version: Version(0), spec: NodeSpec::default(), attachments: Vec::new() }
}

pub fn net_id(id: &str) -> ObjectId {
    ObjectId::Network(id.into())
}

pub fn svc_id(id: &str) -> ObjectId {
    ObjectId::Service(id.into())
}

pub fn task_id(id: &str) -> ObjectId {
    ObjectId::Task(id.into())
}

pub fn node_id(id: &str) -> ObjectId {
    ObjectId::Node(id.into())
}

/// A committed task attachment with given addresses, for restore-time setups.
pub fn attached(network: &str, addrs: &[&str]) -> NetworkAttachment {
    NetworkAttachment {
        network_id: network.into(),
        addresses: addrs.iter().map(|a| a.parse().expect("an address with prefix")).collect(),
        aliases: Vec::new(),
        driver_attachment_opts: BTreeMap::new(),
    }
}

/// A network as committed by an earlier leader: its subnet, gateway (the first host) and VXLAN id.
pub fn allocated(id: &str, subnet: &str, vni: u32) -> Network {
    let subnet: IpNet = subnet.parse().expect("a subnet");
    let gateway = subnet.hosts().next().expect("a host");
    let mut n = network(id);
    n.ipam = Some(Ipam {
        driver: DEFAULT_IPAM_DRIVER.into(),
        options: BTreeMap::new(),
        configs: vec![IpamConfig { subnet: Some(subnet), range: None, gateway: Some(gateway) }],
    });
    let options = BTreeMap::from([(VXLAN_ID_LIST_OPTION.to_string(), vni.to_string())]);
    n.driver_state = Some(DriverConfig { name: "overlay".into(), options });
    n
}

/// A RUNNING task on node n1 with committed attachments.
pub fn running(id: &str, attachments: Vec<NetworkAttachment>) -> Task {
    let mut t = task(id, None);
    t.status.state = TaskState::Running;
    t.node_id = Some("n1".into());
    t.networks = attachments;
    t
}

/// A service with a committed VIP on `network`.
pub fn with_vip(mut s: Service, network: &str, addr: &str) -> Service {
    let endpoint = s.endpoint.get_or_insert_with(Endpoint::default);
    endpoint.virtual_ips.push(VirtualIp { network_id: network.into(), addr: addr.parse().expect("an address") });
    s
}
