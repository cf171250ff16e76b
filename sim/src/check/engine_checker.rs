//! The engine checker: the leader's engine equals restore(committed store).

use swarmalloc::Allocator;

use super::breach::Breach;
use crate::scenario::Checker;
use crate::store::Store;

pub fn check_engine(engine: &Allocator, store: &Store) -> Result<(), Breach> {
    let (restored, _) = Allocator::restore(store.config(), store.objects())
        .map_err(|e| Breach::new(Checker::EngineEqualsRestore, vec![], format!("restore failed: {e}")))?;
    match engine.diff(&restored) {
        None => Ok(()),
        Some(diff) => Err(Breach::new(
            Checker::EngineEqualsRestore,
            vec![],
            format!("engine differs from restore(committed store) at index {}: {diff}", store.applied),
        )),
    }
}
