//! The liveness checkers at the end of a run, after the faults healed: no live NEW task that
//! one allocation pass could move on, and nothing reserved for a deleted object.

use swarmalloc::{Allocator, Outcome, TaskState};

use super::breach::Breach;
use crate::scenario::Checker;
use crate::scenario::Checks;
use crate::store::Store;

/// PENDING (their dependencies can be met), and reservations of objects no longer in the store.
/// Checkers that `checks` turns off are skipped.
pub fn check_end(engine: &Allocator, store: &Store, checks: &Checks) -> Result<(), Breach> {
    let (fresh, _) = Allocator::restore(store.config(), store.objects())
        .map_err(|e| Breach::new(Checker::Liveness, vec![], format!("restore failed: {e}")))?;
    let mut tx = fresh.begin();
    for network in store.networks.values() {
        let _ = tx.allocate_network(network);
    }
    for service in store.services.values() {
        let _ = tx.allocate_service(service);
    }
    let mut stuck = Vec::new();
    for task in
        store.tasks.values().filter(|t| t.status.state == TaskState::New && t.desired_state <= TaskState::Running)
    {
        let service = task.service_id.as_ref().and_then(|id| store.services.get(id));
        if task.service_id.is_some() && service.is_none() {
            continue;
        }
        if let Ok(Outcome::Updated) = tx.allocate_task(task, service) {
            stuck.push(format!("task {}", task.id));
        }
    }
    if !stuck.is_empty() && checks.enabled(Checker::LivenessTasksLeaveNew.name()) {
        let n = stuck.len();
        stuck.truncate(10);
        return Err(Breach::new(
            Checker::LivenessTasksLeaveNew,
            stuck,
            format!("{n} live NEW tasks whose dependencies can be met are still NEW after the faults healed"),
        ));
    }
    if !checks.enabled(Checker::DeletedObjectsHoldNothing.name()) {
        return Ok(());
    }
    // A node attachment on a deleted network must be gone: the node's next update drops it
    // whatever else it needs (node attachments are allocated per network).
    for node in store.nodes.values() {
        let Some(a) = node.attachments.iter().find(|a| !store.networks.contains_key(&a.network_id)) else { continue };
        return Err(Breach::new(
            Checker::DeletedObjectsHoldNothing,
            vec![format!("node {}", node.id), format!("network {}", a.network_id)],
            format!("node {} still has a load-balancer attachment on deleted network {}", node.id, a.network_id),
        ));
    }
    for claimed in engine.claimed_addresses() {
        let holders = std::iter::once(&claimed.holder).chain(&claimed.losers);
        for holder in holders {
            if store.get(&holder.object()).is_none() {
                return Err(Breach::new(
                    Checker::DeletedObjectsHoldNothing,
                    vec![holder.to_string()],
                    format!(
                        "address {} on network {} is still reserved for {holder}, which was deleted",
                        claimed.address, claimed.network
                    ),
                ));
            }
        }
    }
    Ok(())
}
