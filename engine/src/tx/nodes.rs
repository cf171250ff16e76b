//! Nodes: one load-balancer attachment per network the node needs, each network on its own.

use std::collections::BTreeMap;

use super::{Outcome, Tx};
use crate::error::AllocError;
use crate::ids::NetworkId;
use crate::index::Holder;
use crate::objects::{NetworkAttachment, Node, Object};

impl Tx<'_> {
    /// Gives a node one load-balancer attachment per network it needs (ingress, plus the overlay
    /// networks of its live tasks), keeping the ones it has as they are (with their aliases and
    /// driver options, in their order; new ones follow); attachments it no longer needs are
    /// dropped, which releases them when the update is committed. Each network is all or
    /// nothing on its own, as in SwarmKit: a network that cannot serve the node (its pools are
    /// full) is skipped, the node keeping what it had there, and the others are allocated. The
    /// error then names the first network skipped; the update of the others is in the proposal.
    pub fn allocate_node(&mut self, node: &Node) -> Result<Outcome, AllocError> {
        if self.contains_node(&node.id) {
            return Ok(Outcome::Unchanged);
        }
        let holder = Holder::NodeLb(node.id.clone());
        let mut wanted = self.state.node_wanted_networks(&node.id);
        if let Some(ingress) = self.ingress_allocated()
            && !wanted.contains(&ingress)
        {
            wanted.insert(0, ingress);
        }
        // The usual case, without building anything: the node has exactly one intact attachment
        // on each network it needs (what the loop below would keep, unchanged).
        let unchanged = node.attachments.len() == wanted.len()
            && node.attachments.iter().enumerate().all(|(i, a)| {
                wanted.contains(&a.network_id)
                    && !node.attachments[..i].iter().any(|b| b.network_id == a.network_id)
                    && !a.addresses.is_empty()
                    && self
                        .net(&a.network_id)
                        .and_then(|n| n.alloc)
                        .is_some_and(|alloc| self.intact(alloc, &a.network_id, &a.addresses, &holder))
            });
        if unchanged {
            return Ok(Outcome::Unchanged);
        }
        let order = attachment_order(node, wanted);
        let mut attachments = Vec::with_capacity(order.len());
        let mut skipped = None;
        for (network, existing) in order {
            let result = self.atomically(|tx| match existing.filter(|a| !a.addresses.is_empty()) {
                Some(a) => Ok(tx.repair(&network, &a.addresses, &holder)?.unwrap_or_else(|| a.addresses.clone())),
                None => tx.attach(&network, &[], &holder),
            });
            match (result, existing) {
                (Ok(addresses), Some(a)) => attachments.push(NetworkAttachment { addresses, ..a.clone() }),
                (Ok(addresses), None) => attachments.push(NetworkAttachment {
                    network_id: network,
                    addresses,
                    aliases: Vec::new(),
                    driver_attachment_opts: BTreeMap::new(),
                }),
                (Err(error), existing) => {
                    attachments.extend(existing.cloned());
                    skipped.get_or_insert(error);
                }
            }
        }
        let outcome = if attachments == node.attachments {
            Outcome::Unchanged
        } else {
            let mut updated = node.clone();
            updated.attachments = attachments;
            self.push(Object::Node(updated));
            Outcome::Updated
        };
        match skipped {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }
}

/// The networks a node's attachments are written for, with its attachment there if it has one:
/// those it keeps, in their order, then those it needs and lacks, in `wanted`'s order.
fn attachment_order(node: &Node, wanted: Vec<NetworkId>) -> Vec<(NetworkId, Option<&NetworkAttachment>)> {
    let mut order: Vec<(NetworkId, Option<&NetworkAttachment>)> = Vec::with_capacity(wanted.len());
    for a in &node.attachments {
        if wanted.contains(&a.network_id) && !order.iter().any(|(n, _)| *n == a.network_id) {
            order.push((a.network_id.clone(), Some(a)));
        }
    }
    for network in wanted {
        if !order.iter().any(|(n, _)| *n == network) {
            order.push((network, None));
        }
    }
    order
}
