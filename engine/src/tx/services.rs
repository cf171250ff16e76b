//! Services: VIPs per network and published ingress ports, kept across updates that keep them.

use super::{Outcome, Tx, Undo};
use crate::error::AllocError;
use crate::ids::{NetworkId, ServiceId};
use crate::index::{Holder, Pool};
use crate::objects::{
    DriverScope, Endpoint, Object, PortConfig, Protocol, PublishMode, ResolutionMode, Service, VirtualIp,
};

impl Tx<'_> {
    /// Allocates a service's VIPs and ingress ports, keeping what it already holds that its spec
    /// still wants (VIPs per kept network, dynamic ports by name/protocol/target), taking the new
    /// before the old is released (the release happens when the update is committed).
    pub fn allocate_service(&mut self, service: &Service) -> Result<Outcome, AllocError> {
        if self.contains_service(&service.id) || needs_nothing(service) {
            return Ok(Outcome::Unchanged);
        }
        let endpoint = self.atomically(|tx| tx.plan_service(service, true))?.expect("planning with take=true");
        if service.endpoint.as_ref().is_some_and(|old| same_endpoint(old, &endpoint)) {
            return Ok(Outcome::Unchanged);
        }
        let mut updated = service.clone();
        updated.endpoint = Some(endpoint);
        self.service_current.insert(service.id.clone(), (service.version, true));
        self.push(Object::Service(updated));
        Ok(Outcome::Updated)
    }

    /// Computes the endpoint the service should have. With `take == false` nothing is taken and
    /// `None` means "something new would have to be allocated".
    pub(super) fn plan_service(&mut self, service: &Service, take: bool) -> Result<Option<Endpoint>, AllocError> {
        let id = &service.id;
        let spec = &service.spec;
        let endpoint_spec = spec.endpoint.clone().unwrap_or_default();
        let mode = endpoint_spec.mode;
        validate_ports(id, &endpoint_spec.ports)?;
        if mode == ResolutionMode::Dnsrr && spec.needs_ingress() {
            return Err(AllocError::invalid(format!(
                "service {id} publishes ports in ingress mode with DNSRR resolution; use VIP or host-mode ports"
            )));
        }
        let Some(virtual_ips) = self.plan_vips(service, take)? else { return Ok(None) };
        let Some(ports) = self.plan_ports(service, &endpoint_spec.ports, take)? else { return Ok(None) };
        Ok(Some(Endpoint { spec: endpoint_spec, ports, virtual_ips }))
    }

    /// The service's VIPs: ingress first (when it publishes an ingress port), then its networks in
    /// order, once each, overlay and global scope only; none in DNSRR mode. A VIP it holds on a
    /// network it keeps is kept. With `take == false` nothing is taken and `None` means "a new
    /// address would have to be taken".
    fn plan_vips(&mut self, service: &Service, take: bool) -> Result<Option<Vec<VirtualIp>>, AllocError> {
        let (id, spec) = (&service.id, &service.spec);
        let mut vips = Vec::new();
        if spec.resolution_mode() != ResolutionMode::Vip {
            return Ok(Some(vips));
        }
        let holder = Holder::Vip(id.clone());
        let old = service.endpoint.as_ref();
        let mut wanted: Vec<NetworkId> = Vec::new();
        if spec.needs_ingress() {
            let ingress = self.ingress().cloned().ok_or_else(|| AllocError::needs("the ingress network"))?;
            wanted.push(ingress);
        }
        for config in spec.attachment_configs() {
            let target = &config.target;
            let view = self.net(target).ok_or_else(|| AllocError::needs(format!("network {target}")))?;
            if Some(target) == self.ingress() && self.state.networks.get(target).is_some_and(|e| e.ingress) {
                return Err(AllocError::invalid(format!(
                    "service {id} lists the ingress network {target}; it is added when ports are published"
                )));
            }
            if view.scope != DriverScope::NodeLocal && !wanted.contains(target) {
                wanted.push(target.clone());
            }
        }
        for network in wanted {
            if self.net(&network).and_then(|n| n.alloc).is_none() {
                return Err(AllocError::needs(format!("network {network}")));
            }
            let kept = old
                .into_iter()
                .flat_map(|e| &e.virtual_ips)
                .find(|vip| vip.network_id == network && self.holds(&network, vip.addr.addr(), &holder))
                .map(|vip| vip.addr);
            #[cfg(feature = "legacy")]
            let kept = match kept {
                Some(addr) => Some(addr),
                None => old
                    .into_iter()
                    .flat_map(|e| &e.virtual_ips)
                    .find(|vip| {
                        vip.network_id == network
                            && self.legacy_rerequest(crate::legacy::Flavour::B2, self.unheld(&network, vip.addr.addr()))
                    })
                    .map(|vip| vip.addr),
            }
            .map(|addr| {
                if take && !self.holds(&network, addr.addr(), &holder) {
                    self.take_exact(&network, addr.addr(), &holder).map(|_| addr)
                } else {
                    Ok(addr)
                }
            })
            .transpose()?;
            let addr = match kept {
                Some(addr) => addr,
                None if !take => return Ok(None),
                None => self.take_new(&network, self.vip_family(&network), &holder)?,
            };
            vips.push(VirtualIp { network_id: network, addr });
        }
        Ok(Some(vips))
    }

    /// The service's published ports, in the spec's order: user-chosen ingress ports taken,
    /// dynamic ones keeping the numbers they had (same name, protocol and target), then fresh
    /// numbers. With `take == false` nothing is taken and `None` means "something new".
    fn plan_ports(
        &mut self,
        service: &Service,
        spec_ports: &[PortConfig],
        take: bool,
    ) -> Result<Option<Vec<PortConfig>>, AllocError> {
        let id = &service.id;
        // Ports in the spec's order, as SwarmKit writes them when it first allocates a service
        // (a reallocation with as many ports writes host-mode and fixed ones first; stored
        // endpoints are compared regardless of order).
        let mut ports = spec_ports.to_vec();
        let fixed_numbers: Vec<(Protocol, u16)> = ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
            .map(|p| (p.protocol, p.published_port))
            .collect();
        for &(protocol, number) in &fixed_numbers {
            if !self.holds_port(id, protocol, number) {
                if !take {
                    return Ok(None);
                }
                self.take_port(id, protocol, number)?;
            }
        }
        let dynamic: Vec<usize> = (0..ports.len())
            .filter(|&i| ports[i].publish_mode == PublishMode::Ingress && ports[i].published_port == 0)
            .collect();
        if !self.plan_dynamic_ports(service, &mut ports, &dynamic, &fixed_numbers, take)? {
            return Ok(None);
        }
        Ok(Some(ports))
    }

    /// Numbers for the dynamic ingress ports (`dynamic`, indexes into `ports`): first every one
    /// that keeps its old number (same name, protocol and target), then fresh numbers for the
    /// others. With `take == false` nothing is taken and false means "a fresh number is needed".
    fn plan_dynamic_ports(
        &mut self,
        service: &Service,
        ports: &mut [PortConfig],
        dynamic: &[usize],
        fixed_numbers: &[(Protocol, u16)],
        take: bool,
    ) -> Result<bool, AllocError> {
        let id = &service.id;
        let old = service.endpoint.as_ref();
        let old_ports = old.map_or(&[][..], |e| &e.ports);
        let old_spec_ports = old.map_or(&[][..], |e| &e.spec.ports);
        let fixed = |protocol: Protocol, number: u16| fixed_numbers.contains(&(protocol, number));
        // The old endpoint's dynamic ports: its published ingress ports that no old fixed spec
        // port explains, matched one to one, so that each is kept by at most one new port.
        let mut old_dynamic: Vec<&PortConfig> =
            old_ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0).collect();
        for spec in old_spec_ports.iter().filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0) {
            if let Some(i) =
                old_dynamic.iter().position(|p| same_port(p, spec) && p.published_port == spec.published_port)
            {
                old_dynamic.remove(i);
            }
        }
        // First every dynamic port that keeps its old number (same name, protocol and target),
        // then fresh numbers for the others.
        let mut fresh = Vec::new();
        for &k in dynamic {
            let port = &mut ports[k];
            let sticky = old_dynamic.iter().position(|old| {
                let held = self.holds_port(id, port.protocol, old.published_port);
                #[cfg(feature = "legacy")]
                let held = held
                    || self.legacy_rerequest(
                        crate::legacy::Flavour::B8,
                        !self.state.ports.contains_key(&(port.protocol, old.published_port))
                            && !self.ports.contains_key(&(port.protocol, old.published_port)),
                    );
                same_port(old, port) && held && !fixed(port.protocol, old.published_port)
            });
            #[cfg(feature = "legacy")]
            if let Some(i) = sticky
                && take
                && !self.holds_port(id, port.protocol, old_dynamic[i].published_port)
            {
                self.take_port(id, port.protocol, old_dynamic[i].published_port)?;
            }
            match sticky {
                Some(i) => port.published_port = old_dynamic.remove(i).published_port,
                None if !take => return Ok(false),
                None => fresh.push(k),
            }
        }
        for k in fresh {
            let protocol = ports[k].protocol;
            ports[k].published_port = match self.take_dynamic_port(id, protocol) {
                Ok(number) => number,
                // A full range: an old dynamic number this service holds and no port keeps is its
                // own to reuse (SwarmKit frees a service's ports before it allocates them again).
                Err(error @ AllocError::Exhausted { .. }) => {
                    let own = old_dynamic.iter().position(|old| {
                        old.protocol == protocol
                            && !fixed(protocol, old.published_port)
                            && self.holds_port(id, protocol, old.published_port)
                    });
                    match own {
                        Some(i) => old_dynamic.remove(i).published_port,
                        None => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            };
        }
        Ok(true)
    }

    pub(super) fn vip_family(&self, network: &NetworkId) -> bool {
        // A VIP takes one address: IPv4 when the network has an IPv4 subnet.
        self.net(network).and_then(|n| n.alloc).is_some_and(|a| a.pools.iter().all(Pool::is_v6))
    }

    pub(super) fn holds_port(&self, service: &ServiceId, protocol: Protocol, port: u16) -> bool {
        let committed = self.state.ports.get(&(protocol, port)).is_some_and(|c| c.holder() == service);
        let taken = self.ports.get(&(protocol, port));
        (committed && taken.is_none_or(|s| s == service)) || taken == Some(service)
    }

    pub(super) fn take_port(&mut self, service: &ServiceId, protocol: Protocol, port: u16) -> Result<(), AllocError> {
        let what = || format!("published port {protocol}/{port}");
        if let Some(claims) = self.state.ports.get(&(protocol, port))
            && claims.holder() != service
        {
            return Err(AllocError::in_use(what(), format!("service {}", claims.holder())));
        }
        match self.ports.get(&(protocol, port)) {
            Some(owner) if owner == service => Ok(()),
            Some(owner) => Err(AllocError::in_use(what(), format!("service {owner}"))),
            None => {
                self.ports.insert((protocol, port), service.clone());
                self.undo.push(Undo::Port(protocol, port));
                Ok(())
            }
        }
    }

    /// The first free port after the highest published port in the dynamic range, wrapping.
    pub(super) fn take_dynamic_port(&mut self, service: &ServiceId, protocol: Protocol) -> Result<u16, AllocError> {
        let range = self.config().dynamic_port_range;
        let highest = self
            .state
            .ports
            .range((protocol, range.min)..=(protocol, range.max))
            .next_back()
            .map(|(k, _)| k.1)
            .max(self.ports.range((protocol, range.min)..=(protocol, range.max)).next_back().map(|(k, _)| k.1));
        let start = match highest {
            Some(h) if h < range.max => h + 1,
            _ => range.min,
        };
        let free =
            |p: &u16| !self.state.ports.contains_key(&(protocol, *p)) && !self.ports.contains_key(&(protocol, *p));
        let port = (start..=range.max)
            .chain(range.min..start)
            .find(free)
            .ok_or_else(|| AllocError::exhausted(format!("dynamic {protocol} ports {}..={}", range.min, range.max)))?;
        self.take_port(service, protocol, port)?;
        Ok(port)
    }

    /// True when the service is allocated as its spec asks (tasks need this). A service whose
    /// spec is invalid makes its tasks wait (retryable) rather than fail for good.
    pub(super) fn service_is_current(&mut self, service: &Service) -> Result<bool, AllocError> {
        if let Some((version, current)) = self.service_current.get(&service.id)
            && *version == service.version
        {
            return Ok(*current);
        }
        let current = match self.plan_service(service, false) {
            _ if needs_nothing(service) => true,
            Ok(Some(endpoint)) => service.endpoint.as_ref().is_some_and(|old| same_endpoint(old, &endpoint)),
            Ok(None) => false,
            Err(e) if e.is_retryable() => false,
            // The task is fine; its service must be fixed first, which a retry then picks up.
            Err(e) => return Err(AllocError::needs(format!("service {} ({e})", service.id))),
        };
        self.service_current.insert(service.id.clone(), (service.version, current));
        Ok(current)
    }
}

/// Rejects port lists SwarmKit's control API would reject.
fn validate_ports(service: &ServiceId, ports: &[PortConfig]) -> Result<(), AllocError> {
    for (i, port) in ports.iter().enumerate() {
        if port.target_port == 0 {
            return Err(AllocError::invalid(format!("service {service} ports[{i}] has target port 0")));
        }
        if port.published_port == 0 {
            continue;
        }
        if let Some(j) = ports[..i]
            .iter()
            .position(|other| other.protocol == port.protocol && other.published_port == port.published_port)
        {
            return Err(AllocError::invalid(format!(
                "service {service} ports[{i}] publishes {}/{} already published by ports[{j}]",
                port.protocol, port.published_port
            )));
        }
    }
    Ok(())
}

/// A service that needs no endpoint (no network, no published port) and holds nothing: it is
/// allocated as it is, with no endpoint written, as SwarmKit leaves it (`IsServiceAllocated`).
fn needs_nothing(service: &Service) -> bool {
    !service.spec.needs_endpoint()
        && service.endpoint.as_ref().is_none_or(|e| e.virtual_ips.is_empty() && e.ports.is_empty())
}

/// Whether a stored endpoint is the planned one, comparing VIPs and published ports by what they
/// are, not by position: SwarmKit writes host-mode and fixed ports first and appends the ingress
/// VIP after the others when ports are added later.
fn same_endpoint(stored: &Endpoint, planned: &Endpoint) -> bool {
    fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
        let mut items = items.to_vec();
        items.sort();
        items
    }
    stored.spec == planned.spec
        && stored.ports.len() == planned.ports.len()
        && stored.virtual_ips.len() == planned.virtual_ips.len()
        && (stored.ports == planned.ports || sorted(&stored.ports) == sorted(&planned.ports))
        && (stored.virtual_ips == planned.virtual_ips || sorted(&stored.virtual_ips) == sorted(&planned.virtual_ips))
}

fn same_port(a: &PortConfig, b: &PortConfig) -> bool {
    a.name == b.name && a.protocol == b.protocol && a.target_port == b.target_port
}
