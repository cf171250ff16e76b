//! Questions asked of the index (who holds an address, which networks a node needs, every claim
//! for checkers), and the bulk lookups restore uses over large stores.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

use super::ip::ip_to_u128;
use super::pools::{NetEntry, Placement};
use super::ranking::{Claims, Holder};
use super::{State, TaskEntry};
use crate::ids::{NetworkId, NodeId, TaskId};
use crate::objects::DriverScope;

/// From how many networks restore looks them up by hash ([`NetworkLookup`], and the findings):
/// below it, the ordered map is as fast.
pub(crate) const NETWORKS_HASHED_FROM: usize = 32;

/// Networks by id for many lookups in a row: by hash when there are many (string comparisons
/// down an ordered map dominated restore), else the map itself. Lookups only.
pub(crate) enum NetworkLookup<'a, T> {
    Map(&'a mut BTreeMap<NetworkId, T>),
    Hashed(HashMap<&'a NetworkId, &'a mut T, BuildHasherDefault<Fnv>>),
}

impl<'a, T> NetworkLookup<'a, T> {
    pub(crate) fn new(map: &'a mut BTreeMap<NetworkId, T>) -> Self {
        if map.len() < NETWORKS_HASHED_FROM {
            return NetworkLookup::Map(map);
        }
        NetworkLookup::Hashed(map.iter_mut().collect())
    }

    pub(crate) fn get_mut(&mut self, id: &NetworkId) -> Option<&mut T> {
        match self {
            NetworkLookup::Map(map) => map.get_mut(id),
            NetworkLookup::Hashed(map) => map.get_mut(id).map(|entry| &mut **entry),
        }
    }
}

/// FNV-1a: a fast hash for short string ids, in sets and maps that are only asked membership.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// `node_needs` of many tasks at once (restore): each distinct node and network id is hashed
/// once to a number and sorted once, instead of an ordered-map search by string per task. The
/// counts are those [`State::count_needs`] makes task by task.
pub(super) fn node_needs_of(tasks: &[(TaskId, TaskEntry)]) -> BTreeMap<NodeId, BTreeMap<NetworkId, u32>> {
    type Numbering<'a, K> = HashMap<&'a K, u32, BuildHasherDefault<Fnv>>;
    pub(super) fn number<'a, K: Eq + std::hash::Hash>(
        ids: &mut Numbering<'a, K>,
        list: &mut Vec<&'a K>,
        id: &'a K,
    ) -> u32 {
        *ids.entry(id).or_insert_with(|| {
            list.push(id);
            (list.len() - 1) as u32
        })
    }
    /// rank[number] = position of the id in sorted order (the ids are distinct).
    pub(super) fn ranks<K: Ord>(list: &[&K]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..list.len() as u32).collect();
        order.sort_unstable_by(|a, b| list[*a as usize].cmp(list[*b as usize]));
        let mut rank = vec![0; list.len()];
        for (r, number) in order.into_iter().enumerate() {
            rank[number as usize] = r as u32;
        }
        rank
    }
    let (mut node_ids, mut nodes) = (Numbering::<NodeId>::default(), Vec::new());
    let (mut network_ids, mut networks) = (Numbering::<NetworkId>::default(), Vec::new());
    let mut pairs = Vec::new();
    for (_, entry) in tasks {
        let (false, Some(node)) = (entry.retired, &entry.node) else { continue };
        let node = number(&mut node_ids, &mut nodes, node);
        for network in distinct_networks(&entry.addrs) {
            pairs.push((node, number(&mut network_ids, &mut networks, network)));
        }
    }
    let (node_rank, network_rank) = (ranks(&nodes), ranks(&networks));
    let mut node_at = vec![0; nodes.len()];
    for (number, rank) in node_rank.iter().enumerate() {
        node_at[*rank as usize] = number;
    }
    let mut network_at = vec![0; networks.len()];
    for (number, rank) in network_rank.iter().enumerate() {
        network_at[*rank as usize] = number;
    }
    let mut ranked: Vec<(u32, u32)> =
        pairs.into_iter().map(|(n, k)| (node_rank[n as usize], network_rank[k as usize])).collect();
    ranked.sort_unstable();
    let mut out = BTreeMap::new();
    for per_node in ranked.chunk_by(|a, b| a.0 == b.0) {
        let needs: BTreeMap<NetworkId, u32> = per_node
            .chunk_by(|a, b| a.1 == b.1)
            .map(|same| (networks[network_at[same[0].1 as usize]].clone(), same.len() as u32))
            .collect();
        out.insert(nodes[node_at[per_node[0].0 as usize]].clone(), needs);
    }
    out
}

pub(super) fn distinct_networks(addrs: &[(NetworkId, IpNet)]) -> impl Iterator<Item = &NetworkId> {
    addrs.iter().enumerate().filter(|(i, (n, _))| !addrs[..*i].iter().any(|(m, _)| m == n)).map(|(_, (n, _))| n)
}

/// Every address claimed on every network, with its claimants: for checkers and reports.
pub(crate) fn claimed_addresses(state: &State) -> Vec<(NetworkId, IpNet, Holder, Vec<Holder>)> {
    let mut out = Vec::new();
    for (id, entry) in &state.networks {
        let Some(Ok(alloc)) = &entry.alloc else { continue };
        for pool in &alloc.pools {
            for (value, claims) in &pool.slots {
                out.push((id.clone(), pool.with_prefix(*value), claims.holder().clone(), claims.losers().to_vec()));
            }
        }
    }
    out
}

impl State {
    /// Every address that committed holders reference on `network`, whether or not it has pools
    /// that contain them. This scans all holders: it runs only when a network's allocation changes.
    pub(crate) fn references(&self, network: &NetworkId) -> Vec<(IpAddr, Holder)> {
        let mut refs = Vec::new();
        for (id, entry) in &self.services {
            refs.extend(
                entry.vips.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), Holder::Vip(id.clone()))),
            );
        }
        for (id, entry) in &self.tasks {
            let holder = entry.holder(id);
            refs.extend(entry.addrs.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), holder.clone())));
        }
        for (id, addrs) in &self.nodes {
            refs.extend(
                addrs.iter().filter(|(n, _)| n == network).map(|(_, ip)| (ip.addr(), Holder::NodeLb(id.clone()))),
            );
        }
        refs
    }

    /// Who holds `ip` on `network`, if anyone.
    pub(crate) fn holder_of(&self, network: &NetworkId, ip: IpAddr) -> Option<&Holder> {
        let alloc = self.networks.get(network)?.alloc.as_ref()?.as_ref().ok()?;
        let Placement::Usable(i) = alloc.place(ip) else { return None };
        alloc.pools[i].slots.get(&ip_to_u128(ip)).map(Claims::holder)
    }

    /// The networks a node needs a load-balancer address on: the ingress plus every allocated
    /// `overlay` network that a live task on the node is attached to, sorted by id, ingress first.
    pub(crate) fn node_wanted_networks(&self, node: &NodeId) -> Vec<NetworkId> {
        let mut wanted = Vec::new();
        if let Some(ingress) = &self.ingress
            && self.networks.get(ingress).and_then(NetEntry::usable_alloc).is_some()
        {
            wanted.push(ingress.clone());
        }
        for network in self.node_needs.get(node).into_iter().flat_map(BTreeMap::keys) {
            let Some(entry) = self.networks.get(network) else { continue };
            if entry.scope == DriverScope::Overlay && entry.usable_alloc().is_some() && !wanted.contains(network) {
                wanted.push(network.clone());
            }
        }
        wanted
    }
}
