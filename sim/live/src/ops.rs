//! User operations on a real swarm, through the Docker Engine API: the vocabulary the real-swarm
//! tests, the differential and `allocsim live` share. Objects are named by their Docker names
//! (the API resolves a network's name in a service's network list); specs are the engine's types,
//! so one spec can go to the engine and to the real swarm alike.
//!
//! Services run no container unless asked ([`Placement::Constrained`]): a constraint no node
//! satisfies leaves their tasks PENDING with their network allocation, which is all the allocator
//! does, and a 2-core machine takes thousands of them.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use bollard::Docker;
use bollard::models;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, UpdateServiceOptionsBuilder,
};
use swarmalloc::{NetworkSpec, Protocol, PublishMode, ResolutionMode, ServiceSpec};

use crate::harness::IMAGE;

/// The constraint no node satisfies.
pub const NO_NODE: &str = "node.labels.none==1";

/// Whether a service's tasks run containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Constrained to no node: tasks stay PENDING (allocated, never run).
    #[default]
    Constrained,
    /// Run on this node: `sleep` as the container's init ignores SIGTERM, so stopping a task
    /// takes its grace period (10 s), the window in which SwarmKit's B4 happens.
    Running,
}

/// One user operation on a real swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    CreateNetwork(NetworkSpec),
    RemoveNetwork {
        name: String,
    },
    /// A service; its `task_networks` (and `networks`) targets are network names.
    CreateService {
        spec: ServiceSpec,
        placement: Placement,
    },
    /// The stored service gets this spec (same name), as `docker service update` does.
    UpdateService {
        spec: ServiceSpec,
        placement: Placement,
    },
    ScaleService {
        name: String,
        replicas: u64,
    },
    RemoveService {
        name: String,
    },
    /// `docker run -d --network NETWORK [--ip ADDRESS] --name NAME`: a standalone container on an
    /// attachable network (SwarmKit gives it a network-attachment task).
    RunContainer {
        name: String,
        network: String,
        address: Option<IpAddr>,
    },
    /// `docker rm -f NAME`.
    RemoveContainer {
        name: String,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let networks = |spec: &ServiceSpec| -> String {
            let names: Vec<&str> = spec.attachment_configs().iter().map(|a| a.target.as_str()).collect();
            names.join(",")
        };
        match self {
            Op::CreateNetwork(spec) => {
                write!(f, "network create {}", spec.name)?;
                for config in spec.ipam.iter().flat_map(|i| &i.configs) {
                    if let Some(subnet) = config.subnet {
                        write!(f, " --subnet {subnet}")?;
                    }
                    if let Some(range) = config.range {
                        write!(f, " --ip-range {range}")?;
                    }
                    if let Some(gateway) = config.gateway {
                        write!(f, " --gateway {gateway}")?;
                    }
                }
                if spec.attachable {
                    write!(f, " --attachable")?;
                }
                Ok(())
            }
            Op::RemoveNetwork { name } => write!(f, "network rm {name}"),
            Op::CreateService { spec, .. } | Op::UpdateService { spec, .. } => {
                let verb = if matches!(self, Op::CreateService { .. }) { "create" } else { "update" };
                write!(f, "service {verb} {} --replicas {} --network {}", spec.name, spec.replicas, networks(spec))?;
                if spec.resolution_mode() == ResolutionMode::Dnsrr {
                    write!(f, " --endpoint-mode dnsrr")?;
                }
                for port in spec.ports() {
                    let mode = if port.publish_mode == PublishMode::Host { ",mode=host" } else { "" };
                    write!(f, " -p {}:{}/{}{mode}", port.published_port, port.target_port, port.protocol)?;
                }
                Ok(())
            }
            Op::ScaleService { name, replicas } => write!(f, "service scale {name}={replicas}"),
            Op::RemoveService { name } => write!(f, "service rm {name}"),
            Op::RunContainer { name, network, address } => {
                write!(f, "run --network {network} --name {name}")?;
                match address {
                    Some(address) => write!(f, " --ip {address}"),
                    None => Ok(()),
                }
            }
            Op::RemoveContainer { name } => write!(f, "rm -f {name}"),
        }
    }
}

/// Applies one operation; the Docker API's error when it refuses.
pub async fn apply(docker: &Docker, op: &Op) -> Result<(), bollard::errors::Error> {
    match op {
        Op::CreateNetwork(spec) => docker.create_network(network_request(spec)).await.map(drop),
        Op::RemoveNetwork { name } => docker.remove_network(name).await,
        Op::CreateService { spec, placement } => {
            docker.create_service(service_spec(spec, *placement), None).await.map(drop)
        }
        Op::UpdateService { spec, placement } => {
            update_service(docker, &spec.name, |_| service_spec(spec, *placement)).await
        }
        Op::ScaleService { name, replicas } => {
            update_service(docker, name, |mut current| {
                current.mode = Some(replicated(*replicas));
                current
            })
            .await
        }
        Op::RemoveService { name } => docker.delete_service(name).await,
        Op::RunContainer { name, network, address } => {
            let endpoint = models::EndpointSettings {
                ipam_config: address.map(|a| match a {
                    IpAddr::V4(v4) => {
                        models::EndpointIpamConfig { ipv4_address: Some(v4.to_string()), ..Default::default() }
                    }
                    IpAddr::V6(v6) => {
                        models::EndpointIpamConfig { ipv6_address: Some(v6.to_string()), ..Default::default() }
                    }
                }),
                ..Default::default()
            };
            let body = models::ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(vec!["sh".into(), "-c".into(), "trap 'exit 0' TERM; sleep 1000000 & wait".into()]),
                host_config: Some(models::HostConfig { network_mode: Some(network.clone()), ..Default::default() }),
                networking_config: Some(models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
                }),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::default().name(name).build();
            docker.create_container(Some(options), body).await?;
            docker.start_container(name, None::<bollard::query_parameters::StartContainerOptions>).await
        }
        Op::RemoveContainer { name } => {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(name, Some(options)).await
        }
    }
}

/// `docker network create` of an engine network spec. A spec with an IPv6 subnet enables IPv6,
/// as `--ipv6` does (the store keeps that flag nowhere the allocator reads).
pub fn network_request(spec: &NetworkSpec) -> models::NetworkCreateRequest {
    let configs: Vec<models::IpamConfig> = spec
        .ipam
        .iter()
        .flat_map(|ipam| &ipam.configs)
        .map(|c| models::IpamConfig {
            subnet: c.subnet.map(|s| s.to_string()),
            ip_range: c.range.map(|r| r.to_string()),
            gateway: c.gateway.map(|g| g.to_string()),
            auxiliary_addresses: None,
        })
        .collect();
    let ipv6 = spec.ipam.iter().flat_map(|i| &i.configs).any(|c| c.subnet.is_some_and(|s| s.addr().is_ipv6()));
    let driver = spec.driver.as_ref();
    models::NetworkCreateRequest {
        name: spec.name.clone(),
        driver: Some(driver.map_or(swarmalloc::DEFAULT_DRIVER, |d| d.name.as_str()).to_string()),
        scope: Some("swarm".into()),
        attachable: Some(spec.attachable),
        ingress: Some(spec.ingress),
        ipam: Some(models::Ipam {
            driver: spec.ipam.as_ref().map(|i| i.driver.clone()).filter(|d| !d.is_empty()),
            config: (!configs.is_empty()).then_some(configs),
            options: None,
        }),
        enable_ipv6: ipv6.then_some(true),
        options: driver.map(|d| d.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        labels: (!spec.labels.is_empty()).then(|| spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        ..Default::default()
    }
}

fn replicated(replicas: u64) -> models::ServiceSpecMode {
    models::ServiceSpecMode {
        replicated: Some(models::ServiceSpecModeReplicated { replicas: Some(replicas as i64) }),
        ..Default::default()
    }
}

/// `docker service create` of an engine service spec (network targets are names).
pub fn service_spec(spec: &ServiceSpec, placement: Placement) -> models::ServiceSpec {
    let attach = |configs: &[swarmalloc::NetworkAttachmentConfig]| -> Option<Vec<models::NetworkAttachmentConfig>> {
        (!configs.is_empty()).then(|| {
            configs
                .iter()
                .map(|c| models::NetworkAttachmentConfig {
                    target: Some(c.target.to_string()),
                    aliases: (!c.aliases.is_empty()).then(|| c.aliases.clone()),
                    driver_opts: (!c.driver_attachment_opts.is_empty())
                        .then(|| c.driver_attachment_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                })
                .collect()
        })
    };
    let endpoint_spec = spec.endpoint.as_ref().map(|e| models::EndpointSpec {
        mode: Some(match e.mode {
            ResolutionMode::Vip => models::EndpointSpecModeEnum::VIP,
            ResolutionMode::Dnsrr => models::EndpointSpecModeEnum::DNSRR,
        }),
        ports: (!e.ports.is_empty()).then(|| {
            e.ports
                .iter()
                .map(|p| models::EndpointPortConfig {
                    name: (!p.name.is_empty()).then(|| p.name.clone()),
                    protocol: Some(match p.protocol {
                        Protocol::Tcp => models::EndpointPortConfigProtocolEnum::TCP,
                        Protocol::Udp => models::EndpointPortConfigProtocolEnum::UDP,
                        Protocol::Sctp => models::EndpointPortConfigProtocolEnum::SCTP,
                    }),
                    target_port: Some(p.target_port.into()),
                    published_port: (p.published_port != 0).then_some(p.published_port.into()),
                    publish_mode: Some(match p.publish_mode {
                        PublishMode::Ingress => models::EndpointPortConfigPublishModeEnum::INGRESS,
                        PublishMode::Host => models::EndpointPortConfigPublishModeEnum::HOST,
                    }),
                })
                .collect()
        }),
    });
    models::ServiceSpec {
        name: Some(spec.name.clone()),
        task_template: Some(models::TaskSpec {
            container_spec: Some(models::TaskSpecContainerSpec {
                image: Some(IMAGE.into()),
                command: Some(vec!["sleep".into(), "1000000".into()]),
                ..Default::default()
            }),
            placement: (placement == Placement::Constrained)
                .then(|| models::TaskSpecPlacement { constraints: Some(vec![NO_NODE.into()]), ..Default::default() }),
            networks: attach(&spec.task_networks),
            ..Default::default()
        }),
        mode: Some(replicated(spec.replicas)),
        // Constrained tasks never run, and a rolling update waits for each new task to run
        // before it replaces the next one: replace them all at once, or an update never ends.
        update_config: (placement == Placement::Constrained)
            .then(|| models::ServiceSpecUpdateConfig { parallelism: Some(0), ..Default::default() }),
        networks: attach(&spec.networks),
        endpoint_spec,
        ..Default::default()
    }
}

/// Reads the stored service, changes its spec, writes it back at the version read.
async fn update_service(
    docker: &Docker,
    name: &str,
    change: impl FnOnce(models::ServiceSpec) -> models::ServiceSpec,
) -> Result<(), bollard::errors::Error> {
    let current = docker.inspect_service(name, None::<bollard::query_parameters::InspectServiceOptions>).await?;
    let version = current.version.and_then(|v| v.index).unwrap_or(0);
    let spec = change(current.spec.unwrap_or_default());
    let options = UpdateServiceOptionsBuilder::default().version(version as i32).build();
    docker.update_service(name, spec, options, None).await.map(drop)
}

/// Spec builders for tests and tools: the engine's specs as `docker` flags would make them.
pub mod specs {
    use swarmalloc::{
        EndpointSpec, Ipam, IpamConfig, NetworkAttachmentConfig, NetworkSpec, PortConfig, Protocol, PublishMode,
        ResolutionMode, ServiceSpec,
    };

    /// `docker network create -d overlay NAME` (subnets from the default pools).
    pub fn overlay(name: &str) -> NetworkSpec {
        NetworkSpec { name: name.into(), ..Default::default() }
    }

    /// `--attachable`.
    pub fn attachable(name: &str) -> NetworkSpec {
        NetworkSpec { attachable: true, ..overlay(name) }
    }

    /// One `--subnet` (with `--ip-range` and `--gateway` when given) per entry, in order.
    pub fn with_subnets(mut spec: NetworkSpec, configs: &[(&str, Option<&str>, Option<&str>)]) -> NetworkSpec {
        let configs = configs
            .iter()
            .map(|(subnet, range, gateway)| IpamConfig {
                subnet: Some(subnet.parse().expect("a subnet in CIDR form")),
                range: range.map(|r| r.parse().expect("an ip range in CIDR form")),
                gateway: gateway.map(|g| g.parse().expect("a gateway address")),
            })
            .collect();
        spec.ipam = Some(Ipam { driver: String::new(), options: Default::default(), configs });
        spec
    }

    /// `docker service create --name NAME --replicas N --network A --network B ...`.
    pub fn service(name: &str, networks: &[&str], replicas: u64) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            replicas,
            task_networks: networks.iter().map(|n| NetworkAttachmentConfig::to(*n)).collect(),
            ..Default::default()
        }
    }

    /// `--endpoint-mode dnsrr`.
    pub fn dnsrr(mut spec: ServiceSpec) -> ServiceSpec {
        spec.endpoint.get_or_insert_with(EndpointSpec::default).mode = ResolutionMode::Dnsrr;
        spec
    }

    /// `-p PUBLISHED:TARGET/PROTOCOL[,mode=host]` (published 0: a dynamic port).
    pub fn publish(mut spec: ServiceSpec, published: u16, target: u16, protocol: Protocol, host: bool) -> ServiceSpec {
        let publish_mode = if host { PublishMode::Host } else { PublishMode::Ingress };
        let port =
            PortConfig { name: String::new(), protocol, target_port: target, published_port: published, publish_mode };
        spec.endpoint.get_or_insert_with(EndpointSpec::default).ports.push(port);
        spec
    }
}
