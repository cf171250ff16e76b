//! Who holds a resource that several committed objects claim: the claimant ranked lowest
//! ([`Holder`]'s order for addresses, the lowest service id for ports), and for subnets and VXLAN
//! ids the network ranked first (the ingress, then by id; `State::resolve_networks`).

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;

use super::State;
use super::ip::ip_to_u128;
use crate::ids::{NetworkId, NodeId, ServiceId, TaskId};
use crate::objects::ObjectId;

/// Who claims an address. The derived order is the precedence when two claim the same address:
/// the lowest holds it, the others lose (gateway, then VIPs, node LB, live tasks, then retired).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Holder {
    Gateway(NetworkId),
    Vip(ServiceId),
    NodeLb(NodeId),
    Task(TaskId),
    /// A terminal task still in the store: its address is quarantined (the reuse delay).
    Retired(TaskId),
}

impl Holder {
    pub fn is_retired(&self) -> bool {
        matches!(self, Holder::Retired(_))
    }

    /// The store object behind the claim.
    pub fn object(&self) -> ObjectId {
        match self {
            Holder::Gateway(id) => ObjectId::Network(id.clone()),
            Holder::Vip(id) => ObjectId::Service(id.clone()),
            Holder::NodeLb(id) => ObjectId::Node(id.clone()),
            Holder::Task(id) | Holder::Retired(id) => ObjectId::Task(id.clone()),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Gateway(id) => write!(f, "gateway of network {id}"),
            Holder::Vip(id) => write!(f, "VIP of service {id}"),
            Holder::NodeLb(id) => write!(f, "load balancer of node {id}"),
            Holder::Task(id) => write!(f, "task {id}"),
            Holder::Retired(id) => write!(f, "retired task {id}"),
        }
    }
}

/// The claimants of one resource: `first` holds it, `rest` (sorted, usually empty) lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claims<H> {
    first: H,
    rest: Vec<H>,
}

impl<H: Ord + Clone> Claims<H> {
    pub(super) fn new(holder: H) -> Self {
        Claims { first: holder, rest: Vec::new() }
    }

    pub(crate) fn holder(&self) -> &H {
        &self.first
    }

    pub(crate) fn losers(&self) -> &[H] {
        &self.rest
    }

    pub(super) fn add(&mut self, holder: H) {
        if holder == self.first {
            return;
        }
        let holder = if holder < self.first { std::mem::replace(&mut self.first, holder) } else { holder };
        if let Err(at) = self.rest.binary_search(&holder) {
            self.rest.insert(at, holder);
        }
    }

    /// Removes `holder`; returns true when nobody claims the resource any more.
    pub(super) fn remove(&mut self, holder: &H) -> bool {
        if *holder == self.first {
            if self.rest.is_empty() {
                return true;
            }
            self.first = self.rest.remove(0);
        } else if let Ok(at) = self.rest.binary_search(holder) {
            self.rest.remove(at);
        }
        false
    }
}

pub(super) fn claim<K: Ord, H: Ord + Clone>(map: &mut BTreeMap<K, Claims<H>>, key: K, holder: H) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Claims::new(holder));
        }
        std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(holder),
    }
}

pub(crate) fn unclaim<K: Ord, H: Ord + Clone>(map: &mut BTreeMap<K, Claims<H>>, key: K, holder: &H) {
    if let std::collections::btree_map::Entry::Occupied(mut e) = map.entry(key)
        && e.get_mut().remove(holder)
    {
        e.remove();
    }
}

pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// A subnet in the overlap index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubnetEntry {
    pub(crate) subnet: IpNet,
    pub(crate) network: NetworkId,
    pub(crate) from_default: bool,
}

/// A winning subnet that overlaps `subnet`, if any. Winning subnets never overlap each other, so
/// the only one that can contain `subnet` is its predecessor by first address.
pub(crate) fn find_overlap<'a>(
    subnets: &'a BTreeMap<(bool, u128), SubnetEntry>,
    subnet: &IpNet,
) -> Option<(IpNet, &'a NetworkId)> {
    let v6 = matches!(subnet, IpNet::V6(_));
    let lo = ip_to_u128(subnet.network());
    let hi = ip_to_u128(subnet.broadcast());
    if let Some((_, entry)) = subnets.range(..=(v6, lo)).next_back()
        && entry.subnet.contains(subnet)
        && matches!(entry.subnet, IpNet::V6(_)) == v6
    {
        return Some((entry.subnet, &entry.network));
    }
    subnets.range((v6, lo)..=(v6, hi)).next().map(|(_, entry)| (entry.subnet, &entry.network))
}

impl State {
    /// Decides which networks hold their stored subnets and VXLAN ids: in rank order (ingress
    /// first, then by id), a network keeps its allocation unless a subnet overlaps or a VXLAN id
    /// equals one of a network ranked before it. The result depends only on the set of networks.
    pub(super) fn resolve_networks(&mut self) {
        self.subnets.clear();
        self.vnis.clear();
        let mut ingress_allocated = None;
        let mut ingress_any = None;
        // Rank order: ingress networks first, then the rest, each by id (the map's order), so
        // no id is sorted, cloned or looked up again.
        for ingress_pass in [true, false] {
            for (id, entry) in self.networks.iter_mut().filter(|(_, e)| e.ingress == ingress_pass) {
                if entry.ingress && ingress_any.is_none() {
                    ingress_any = Some(id.clone());
                }
                let Some(Ok(alloc)) = &mut entry.alloc else { continue };
                alloc.conflict = None;
                for pool in &alloc.pools {
                    if let Some((other, owner)) = find_overlap(&self.subnets, &pool.subnet) {
                        alloc.conflict = Some(format!("subnet {} overlaps {other} of network {owner}", pool.subnet));
                        break;
                    }
                }
                if alloc.conflict.is_none()
                    && let Some((vni, owner)) = alloc.vnis.iter().find_map(|v| self.vnis.get(v).map(|o| (*v, o)))
                {
                    alloc.conflict = Some(format!("VXLAN id {vni} is held by network {owner}"));
                }
                if alloc.conflict.is_some() {
                    continue;
                }
                for pool in &alloc.pools {
                    let key = (pool.is_v6(), ip_to_u128(pool.subnet.network()));
                    let entry =
                        SubnetEntry { subnet: pool.subnet, network: id.clone(), from_default: pool.from_default };
                    self.subnets.insert(key, entry);
                }
                for vni in &alloc.vnis {
                    self.vnis.insert(*vni, id.clone());
                }
                if entry.ingress && ingress_allocated.is_none() {
                    ingress_allocated = Some(id.clone());
                }
            }
        }
        self.ingress = ingress_allocated.or(ingress_any);
    }

    /// Whether a claimed address may be handed out again: only when every claimant is a retired
    /// task whose agent reported it stopped (not one the manager ORPHANED).
    pub(crate) fn reusable(&self, claims: &Claims<Holder>) -> bool {
        std::iter::once(claims.holder()).chain(claims.losers()).all(|holder| match holder {
            Holder::Retired(task) => self.tasks.get(task).is_none_or(|entry| !entry.orphaned),
            _ => false,
        })
    }
}
