//! The stability checker: allocations that must never change while their object lives.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use swarmalloc::{Endpoint, NetworkId, ObjectId, PublishMode, ServiceId, VXLAN_ID_LIST_OPTION};

use super::breach::{Breach, list, subnets};
use crate::scenario::Checker;
use crate::store::{Event, Store};

/// Allocations that must never change while their object lives: a network's subnets and VXLAN
/// ids, a service's VIP per network, a service's dynamic published ports.
#[derive(Clone, Debug, Default)]
pub struct Stability {
    networks: BTreeMap<NetworkId, (Vec<IpNet>, Option<String>)>,
    vips: BTreeMap<ServiceId, BTreeMap<NetworkId, IpNet>>,
    dynamic_ports: BTreeMap<ServiceId, BTreeMap<(String, swarmalloc::Protocol, u16), u16>>,
}

impl Stability {
    /// Compares the objects an entry wrote with what they had before; forgets deleted objects.
    pub fn observe(&mut self, store: &Store, events: &[Event]) -> Result<(), Breach> {
        for event in events {
            match event {
                Event::Put(ObjectId::Network(id)) => self.network_put(store, id)?,
                Event::Put(ObjectId::Service(id)) => self.service_put(store, id)?,
                Event::Deleted(ObjectId::Network(id)) => drop(self.networks.remove(id)),
                Event::Deleted(ObjectId::Service(id)) => {
                    self.vips.remove(id);
                    self.dynamic_ports.remove(id);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An allocated network keeps its subnets and VXLAN ids.
    fn network_put(&mut self, store: &Store, id: &NetworkId) -> Result<(), Breach> {
        let Some(network) = store.networks.get(id) else { return Ok(()) };
        // Only an allocated network (IPAM and driver state both written, spec 1.1)
        // holds its subnets. One stored without some of its VXLAN ids (one per
        // subnet) keeps its subnets and gets the missing ids once.
        if !network.is_allocated() {
            return Ok(());
        }
        let now = (
            subnets(network),
            network.driver_state.as_ref().and_then(|d| d.options.get(VXLAN_ID_LIST_OPTION).cloned()),
        );
        let complete = |(subnets, vnis): &(Vec<IpNet>, Option<String>)| {
            vnis.as_ref().is_some_and(|list| list.split(',').count() == subnets.len())
        };
        if let Some(before) = self.networks.get(id)
            && *before != now
            && (before.0 != now.0 || complete(before))
        {
            return Err(Breach::new(
                Checker::StableAllocations,
                vec![format!("network {id}")],
                network_changed(id, before, &now),
            ));
        }
        self.networks.insert(id.clone(), now);
        Ok(())
    }

    /// A service keeps its VIP on each network and its dynamic published ports.
    fn service_put(&mut self, store: &Store, id: &ServiceId) -> Result<(), Breach> {
        let Some(service) = store.services.get(id) else { return Ok(()) };
        let Some(endpoint) = &service.endpoint else { return Ok(()) };
        self.vips_put(id, endpoint)?;
        self.dynamic_ports_put(id, endpoint)
    }

    fn vips_put(&mut self, id: &ServiceId, endpoint: &Endpoint) -> Result<(), Breach> {
        let vips: BTreeMap<NetworkId, IpNet> =
            endpoint.virtual_ips.iter().map(|v| (v.network_id.clone(), v.addr)).collect();
        let before = self.vips.entry(id.clone()).or_default();
        for (network, addr) in &vips {
            if let Some(old) = before.get(network)
                && old != addr
            {
                return Err(Breach::new(
                    Checker::StableAllocations,
                    vec![format!("service {id}"), format!("network {network}")],
                    format!("VIP of service {id} on network {network} changed from {old} to {addr}"),
                ));
            }
        }
        *before = vips;
        Ok(())
    }

    fn dynamic_ports_put(&mut self, id: &ServiceId, endpoint: &Endpoint) -> Result<(), Breach> {
        let dynamic: BTreeSet<(String, swarmalloc::Protocol, u16)> = endpoint
            .spec
            .ports
            .iter()
            .filter(|p| p.published_port == 0 && p.publish_mode == PublishMode::Ingress)
            .map(|p| (p.name.clone(), p.protocol, p.target_port))
            .collect();
        let now: BTreeMap<(String, swarmalloc::Protocol, u16), u16> = endpoint
            .ports
            .iter()
            .map(|p| ((p.name.clone(), p.protocol, p.target_port), p.published_port))
            .filter(|(k, _)| dynamic.contains(k))
            .collect();
        let before = self.dynamic_ports.entry(id.clone()).or_default();
        for (key, port) in &now {
            if let Some(old) = before.get(key)
                && old != port
            {
                return Err(Breach::new(
                    Checker::StableAllocations,
                    vec![format!("service {id}")],
                    format!(
                        "the dynamic published port of service {id} for target port {}/{}{} changed from \
                             {old} to {port}",
                        key.2,
                        key.1,
                        if key.0.is_empty() { String::new() } else { format!(" (port {:?})", key.0) }
                    ),
                ));
            }
        }
        *before = now;
        Ok(())
    }
}

/// What changed in an allocated network that must not change: its subnets or its VXLAN ids.
fn network_changed(
    id: &NetworkId,
    before: &(Vec<IpNet>, Option<String>),
    now: &(Vec<IpNet>, Option<String>),
) -> String {
    let vxlan = |ids: &Option<String>| ids.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "none".into());
    let mut changes = Vec::new();
    if before.0 != now.0 {
        changes.push(format!("its subnets from {} to {}", list(&before.0, "none"), list(&now.0, "none")));
    }
    if before.1 != now.1 {
        changes.push(format!("its VXLAN ids from {} to {}", vxlan(&before.1), vxlan(&now.1)));
    }
    format!("network {id} changed {} while it exists", changes.join(" and "))
}
