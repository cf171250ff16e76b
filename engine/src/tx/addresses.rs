//! Addresses: exact takes, new picks after the pool's reuse cursor, one address per family per
//! attachment, and repairs of addresses a holder lost.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Tx, Undo};
use crate::error::AllocError;
use crate::ids::NetworkId;
use crate::index::{Claims, Holder, NetAlloc, Placement, Pool, ip_to_u128};

impl Tx<'_> {
    /// Takes a specific address for `holder`, which must be usable and not held by anyone else
    /// (a retired task's quarantined address may be taken explicitly).
    pub(super) fn take_exact(&mut self, network: &NetworkId, ip: IpAddr, holder: &Holder) -> Result<IpNet, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        let pool = match alloc.place(ip) {
            Placement::Usable(i) => &alloc.pools[i],
            Placement::Reserved(what) => {
                return Err(AllocError::invalid(format!("address {ip} is the {what} of network {network}")));
            }
            Placement::OutOfRange => {
                return Err(AllocError::invalid(format!("address {ip} is outside every subnet of network {network}")));
            }
        };
        let value = ip_to_u128(ip);
        let with_prefix = pool.with_prefix(value);
        if let Some(claims) = pool.slots.get(&value) {
            let owner = claims.holder();
            if owner != holder && !self.state.reusable(claims) {
                return Err(AllocError::in_use(format!("address {ip} on network {network}"), owner.to_string()));
            }
        }
        if let Some(owner) = self.addrs.get(network).and_then(|t| t.get(&value)) {
            if owner != holder {
                return Err(AllocError::in_use(format!("address {ip} on network {network}"), owner.to_string()));
            }
            return Ok(with_prefix);
        }
        self.take_addr(network, value, holder);
        Ok(with_prefix)
    }

    /// Picks a new address of one family: pools in config order, the first with room; inside a
    /// pool, the reuse-delay rule (ARCHITECTURE.md): the first free address after the pool's
    /// cursor, wrapping; retired tasks' addresses only when nothing else is free. The cursor is
    /// the last address this transaction handed out there, else the stored one, else (a store
    /// SwarmKit wrote, or a pool nothing was handed out from yet) the highest address any
    /// committed object references in the pick range.
    pub(super) fn take_new(&mut self, network: &NetworkId, v6: bool, holder: &Holder) -> Result<IpNet, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        let empty = Taken::default();
        let taken = self.addrs.get(network).unwrap_or(&empty);
        let moved = self.cursors.get(network);
        let mut found = None;
        for (i, pool) in alloc.pools.iter().enumerate().filter(|(_, p)| p.is_v6() == v6) {
            // Addresses taken by request do not move the cursor (nor do they in libnetwork).
            let cursor = match moved.and_then(|m| m[i]) {
                Some(last) => Some(last),
                None => pool.last.or_else(|| pool.highest_claim()),
            };
            #[cfg(feature = "legacy")]
            let cursor = self.legacy_cursor(network, i, pool, taken).unwrap_or(cursor);
            if let Some(value) = pick_in_pool(pool, taken, cursor, |claims| self.state.reusable(claims)) {
                found = Some((i, pool.with_prefix(value)));
                break;
            }
        }
        let pools = alloc.pools.len();
        let Some((pool, addr)) = found else {
            let family = if v6 { 6 } else { 4 };
            let subnets: Vec<String> =
                alloc.pools.iter().filter(|p| p.is_v6() == v6).map(|p| p.subnet.to_string()).collect();
            if subnets.is_empty() {
                return Err(AllocError::invalid(format!("{} has no IPv{family} subnet", self.network_label(network))));
            }
            return Err(AllocError::exhausted(format!(
                "IPv{family} addresses of {} in {}",
                self.network_label(network),
                subnets.join(", ")
            )));
        };
        let value = ip_to_u128(addr.addr());
        self.take_addr(network, value, holder);
        self.move_cursor(network, pool, pools, value);
        Ok(addr)
    }

    /// Records that `value` is the last address this transaction handed out from a pool.
    pub(super) fn move_cursor(&mut self, network: &NetworkId, pool: usize, pools: usize, value: u128) {
        let cursors = self.cursors.entry(network.clone()).or_insert_with(|| vec![None; pools]);
        let previous = cursors[pool].replace(value);
        self.undo.push(Undo::Cursor(network.clone(), pool, previous));
    }

    /// Records that this transaction took `value` on `network` for `holder`.
    pub(super) fn take_addr(&mut self, network: &NetworkId, value: u128, holder: &Holder) {
        match self.addrs.get_mut(network) {
            Some(taken) => taken.insert(value, holder.clone()),
            None => {
                let mut taken = Taken::default();
                taken.insert(value, holder.clone());
                self.addrs.insert(network.clone(), taken);
            }
        }
        self.undo.push(Undo::Addr(network.clone(), value));
    }

    /// Legacy flavours run without the stored cursor (the old allocator kept its cursors in
    /// memory), with the cursor the engine derived before it had one: the highest address
    /// referenced in the pick range, committed or taken in this transaction. B6: the old IPAM's
    /// serial cursor itself: the last address this engine picked in the pool since its restore,
    /// or none (the lowest free address comes next).
    #[cfg(feature = "legacy")]
    pub(super) fn legacy_cursor(
        &self,
        network: &NetworkId,
        i: usize,
        pool: &Pool,
        taken: &Taken,
    ) -> Option<Option<u128>> {
        self.state.mode.flavour?;
        if !self.state.mode.is(crate::legacy::Flavour::B6) {
            return Some(pool.highest_claim().max(taken.last_in(pool.pick.0, pool.pick.1)));
        }
        let moved = self.cursors.get(network).and_then(|m| m[i]);
        Some(moved.or_else(|| self.state.mode.cursors.get(&(network.clone(), i)).copied()))
    }

    /// Addresses for one attachment: one per address family the network has, requested ones
    /// exactly. (SwarmKit gives one address from a random pool; a dual-stack task lost a family.)
    pub(super) fn attach(
        &mut self,
        network: &NetworkId,
        requested: &[IpAddr],
        holder: &Holder,
    ) -> Result<Vec<IpNet>, AllocError> {
        let alloc =
            self.net(network).and_then(|n| n.alloc).ok_or_else(|| AllocError::needs(format!("network {network}")))?;
        // Address families in the order their first subnet appears (at most two).
        let mut families = [None::<bool>; 2];
        for pool in &alloc.pools {
            if !families.contains(&Some(pool.is_v6())) {
                families[families[0].is_some() as usize] = Some(pool.is_v6());
            }
        }
        for (i, ip) in requested.iter().enumerate() {
            if requested[..i].iter().any(|other| other.is_ipv6() == ip.is_ipv6()) {
                return Err(AllocError::invalid(format!(
                    "more than one IPv{} address requested on network {network}",
                    if ip.is_ipv6() { 6 } else { 4 }
                )));
            }
            if !families.contains(&Some(ip.is_ipv6())) {
                return Err(AllocError::invalid(format!("address {ip} is outside every subnet of network {network}")));
            }
        }
        let mut addrs = Vec::with_capacity(families.iter().flatten().count());
        for v6 in families.into_iter().flatten() {
            let addr = match requested.iter().find(|ip| ip.is_ipv6() == v6) {
                Some(ip) => self.take_exact(network, *ip, holder)?,
                None => self.take_new(network, v6, holder)?,
            };
            addrs.push(addr);
        }
        Ok(addrs)
    }

    /// True when `holder` holds `ip` on `network` in committed state and nothing in this
    /// transaction took it from them. Takes nothing.
    pub(super) fn holds(&self, network: &NetworkId, ip: IpAddr, holder: &Holder) -> bool {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return false };
        let Placement::Usable(p) = alloc.place(ip) else { return false };
        let value = ip_to_u128(ip);
        alloc.pools[p].slots.get(&value).is_some_and(|c| c.holder() == holder)
            && self.addrs.get(network).and_then(|t| t.get(&value)).is_none_or(|h| h == holder)
    }

    /// B2 (legacy): nobody holds `ip` on `network`, in committed state or in this transaction.
    #[cfg(feature = "legacy")]
    pub(super) fn unheld(&self, network: &NetworkId, ip: IpAddr) -> bool {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return false };
        let Placement::Usable(p) = alloc.place(ip) else { return false };
        let value = ip_to_u128(ip);
        !alloc.pools[p].slots.contains_key(&value) && self.addrs.get(network).is_none_or(|t| !t.contains_key(&value))
    }

    /// Keeps `addrs` where `holder` still holds them (with their subnet's prefix length), replaces
    /// lost or out-of-range ones with fresh addresses of the same family. None: nothing changed.
    pub(super) fn repair(
        &mut self,
        network: &NetworkId,
        addrs: &[IpNet],
        holder: &Holder,
    ) -> Result<Option<Vec<IpNet>>, AllocError> {
        let Some(alloc) = self.net(network).and_then(|n| n.alloc) else { return Ok(None) };
        if self.intact(alloc, network, addrs, holder) {
            return Ok(None);
        }
        let families = (alloc.pools.iter().any(|p| !p.is_v6()), alloc.pools.iter().any(|p| p.is_v6()));
        let mut repaired = addrs.to_vec();
        let mut lost = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            if !self.holds(network, addr.addr(), holder) {
                lost.push(i);
            } else if let Placement::Usable(p) = alloc.place(addr.addr()) {
                // Still held, but stored with another prefix (its network was allocated afresh):
                // the same address with its subnet's prefix length.
                repaired[i] = alloc.pools[p].with_prefix(ip_to_u128(addr.addr()));
            }
        }
        let mut dropped = Vec::new();
        for i in lost {
            let v6 = addrs[i].addr().is_ipv6();
            if if v6 { families.1 } else { families.0 } {
                repaired[i] = self.take_new(network, v6, holder)?;
            } else {
                // The network has no subnet of this family (its allocation was made afresh): the
                // attachment keeps the families the network has.
                dropped.push(i);
            }
        }
        for i in dropped.into_iter().rev() {
            repaired.remove(i);
        }
        if repaired.is_empty() {
            repaired = self.attach(network, &[], holder)?;
        }
        Ok((repaired != addrs).then_some(repaired))
    }

    /// True when [`Tx::repair`] would change nothing: `holder` still holds every address, each
    /// stored with its subnet's prefix length. Takes nothing.
    pub(super) fn intact(&self, alloc: &NetAlloc, network: &NetworkId, addrs: &[IpNet], holder: &Holder) -> bool {
        addrs.iter().all(|addr| match alloc.place(addr.addr()) {
            Placement::Usable(p) => {
                alloc.pools[p].with_prefix(ip_to_u128(addr.addr())) == *addr && self.holds(network, addr.addr(), holder)
            }
            _ => false,
        })
    }
}

/// Addresses one transaction took on one network, sorted. Picks mostly ascend, so an insert is
/// usually a push; lookups are binary searches. Kept over a `BTreeMap` because it pays for a
/// large proposal: criterion `attach_50k_on_a_16/propose` (docs/performance.md).
#[derive(Default)]
pub(super) struct Taken(Vec<(u128, Holder)>);

impl Taken {
    pub(super) fn position(&self, value: u128) -> Result<usize, usize> {
        match self.0.last() {
            Some((last, _)) if *last < value => Err(self.0.len()),
            _ => self.0.binary_search_by_key(&value, |(v, _)| *v),
        }
    }

    pub(super) fn get(&self, value: &u128) -> Option<&Holder> {
        self.position(*value).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn contains_key(&self, value: &u128) -> bool {
        self.position(*value).is_ok()
    }

    pub(super) fn insert(&mut self, value: u128, holder: Holder) {
        match self.position(value) {
            Ok(i) => self.0[i].1 = holder,
            Err(i) => self.0.insert(i, (value, holder)),
        }
    }

    pub(super) fn remove(&mut self, value: &u128) {
        if let Ok(i) = self.position(*value) {
            self.0.remove(i);
        }
    }

    /// The highest taken address in `lo..=hi` (legacy flavours derive their cursor from it).
    #[cfg(feature = "legacy")]
    pub(super) fn last_in(&self, lo: u128, hi: u128) -> Option<u128> {
        self.range(lo, hi).last().map(|(v, _)| *v)
    }

    /// The taken addresses in `lo..=hi`.
    pub(super) fn range(&self, lo: u128, hi: u128) -> &[(u128, Holder)] {
        let start = self.0.partition_point(|(v, _)| *v < lo);
        let end = self.0.partition_point(|(v, _)| *v <= hi);
        &self.0[start..end.max(start)]
    }
}

/// The reuse-delay rule inside one pool (see [`Tx::take_new`]): the first address after
/// `cursor` (the highest address referenced in the pick range), wrapping; then the first
/// `reusable` retired address.
fn pick_in_pool(
    pool: &Pool,
    taken: &Taken,
    cursor: Option<u128>,
    reusable: impl Fn(&Claims<Holder>) -> bool,
) -> Option<u128> {
    let (lo, hi) = pool.pick;
    let start = match cursor {
        Some(c) if c < hi => c + 1,
        _ => lo,
    };
    if !pool.slots.contains_key(&start) && !taken.contains_key(&start) {
        return Some(start);
    }
    let free = |from: u128, to: u128| first_unclaimed(pool, taken, from, to);
    if let Some(value) = free(start, hi).or_else(|| if start > lo { free(lo, start - 1) } else { None }) {
        return Some(value);
    }
    let retired =
        |(value, claims): (&u128, &Claims<Holder>)| (reusable(claims) && !taken.contains_key(value)).then_some(*value);
    pool.slots.range(start..=hi).find_map(retired).or_else(|| pool.slots.range(lo..start).find_map(retired))
}

/// The first address in `from..=to` that no committed object and no earlier update references.
fn first_unclaimed(pool: &Pool, taken: &Taken, from: u128, to: u128) -> Option<u128> {
    let mut committed = pool.slots.range(from..=to).map(|(k, _)| *k).peekable();
    let mut pending = taken.range(from, to).iter().map(|(k, _)| *k).peekable();
    let mut candidate = from;
    loop {
        let next = match (committed.peek(), pending.peek()) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        };
        match next {
            Some(occupied) if occupied == candidate => {
                while committed.next_if_eq(&occupied).is_some() {}
                while pending.next_if_eq(&occupied).is_some() {}
                if candidate == to {
                    return None;
                }
                candidate += 1;
            }
            _ => return Some(candidate),
        }
    }
}
