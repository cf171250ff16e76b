//! A manager node: a raft-rs node over the faulty link layer, its raft log and hard state on a
//! simulated disk that survives kill and restart, the store replica it applies committed
//! entries to (with the per-entry checkers), and, while it leads, the leader's duties:
//! control API, dispatcher, orchestrator, reaper, scheduler, and the allocator loop.
//!
//! - `mod.rs` (here): the node, raft's ready loop, and noticing a role change.
//! - `apply.rs`: applying committed entries and the per-entry checkers.
//! - `propose.rs`: proposing a transaction, with the proposal faults (drop, ambiguous commit).
//! - `leader.rs`: the leader's state and duties, and the end-of-run checks.
//! - `allocator.rs`: the allocator loop in a leader: restore, passes, batches, batch cuts.
//!
//! Architecture invariant: everything a leader does lives in [`Leader`], which is dropped the
//! moment raft says this node no longer leads; a new leader starts from the applied store.

mod allocator;
mod apply;
mod leader;
mod propose;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::prelude::{ConfState, Entry, Message};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use serde_json::json;

use crate::check;
use crate::net::{Link, Msg, addr, manager_ip};
use crate::rng::{Draw, sim};
use crate::scenario::Scenario;
use crate::store::Store;
use crate::world::Shared;
use leader::Leader;

pub const TICK: Duration = Duration::from_millis(100);
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(3);
const WORKER_TIMEOUT: Duration = Duration::from_secs(3);
/// A worker silent this long is down: its tasks are ORPHANED (SwarmKit's `nodeDownPeriod`).
const NODE_DOWN: Duration = Duration::from_secs(5);
/// Terminal tasks kept per slot before the reaper deletes older ones.
const TASK_HISTORY: usize = 1;
/// Most tasks the orchestrator creates in one pass.
const CREATE_MAX: usize = 10_000;
/// How often a quiet leader compares its engine with restore(applied store).
const QUIET_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Decoded entries kept for the other replicas.
const DECODED_MAX: usize = 4_096;

/// What survives a manager's kill and restart: the raft log and hard state.
pub struct ManagerDisk {
    pub storage: MemStorage,
    incarnation: AtomicU64,
}

impl ManagerDisk {
    pub fn new(voters: Vec<u64>) -> ManagerDisk {
        ManagerDisk {
            storage: MemStorage::new_with_conf_state(ConfState::from((voters, vec![]))),
            incarnation: AtomicU64::new(0),
        }
    }
}

pub struct Manager {
    id: u64,
    name: String,
    incarnation: u64,
    raw: RawNode<MemStorage>,
    disk: Arc<ManagerDisk>,
    store: Store,
    world: Shared,
    scenario: Arc<Scenario>,
    outbox: Vec<(SocketAddr, Msg)>,
    seq: u64,
    leader: Option<Leader>,
    /// Isolate this node after the next flush (ambiguous commit, batch cut), for this long.
    isolate: Option<Duration>,
    /// Most changes per transaction in this run (the seed's choice).
    batch_max: usize,
}

/// The manager's main loop: runs until the world stops.
pub async fn run(id: u64, disk: Arc<ManagerDisk>, world: Shared) {
    let name = format!("m{id}");
    let link = Link::bind(manager_ip(id), name.clone(), world.clone()).await;
    let (sink, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    link.spawn_receiver(sink);
    let mut manager = Manager::new(id, disk, world.clone());
    let tick = Duration::from_millis(world.lock().scenario.raft.tick_ms);
    let mut next_tick = madsim::time::Instant::now() + tick;
    loop {
        if world.lock().stopped() {
            return;
        }
        tokio::select! {
            biased;
            got = inbox.recv() => {
                let Some((msg, from)) = got else { return };
                manager.on_message(msg, from);
            }
            _ = madsim::time::sleep_until(next_tick) => {
                next_tick += tick;
                manager.on_tick();
            }
        }
        manager.process();
        manager.flush(&link).await;
    }
}

impl Manager {
    fn new(id: u64, disk: Arc<ManagerDisk>, world: Shared) -> Manager {
        let incarnation = disk.incarnation.fetch_add(1, Ordering::Relaxed);
        let raft_settings = world.lock().scenario.raft;
        let config = raft::Config {
            id,
            election_tick: raft_settings.election_ticks,
            heartbeat_tick: raft_settings.heartbeat_ticks,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            applied: 0,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, disk.storage.clone(), &logger).expect("valid raft config");
        let (scenario, batch_max) = {
            let w = world.lock();
            (w.scenario.clone(), w.plan.batch_max)
        };
        let name = format!("m{id}");
        world.lock().record(&name, "manager_start", json!({ "incarnation": incarnation }));
        let mut manager = Manager {
            id,
            name,
            incarnation,
            raw,
            disk,
            store: Store::default(),
            world,
            scenario,
            outbox: Vec::new(),
            seq: 0,
            leader: None,
            isolate: None,
            batch_max,
        };
        manager.fix_election_timeout(true);
        manager
    }

    /// raft-rs draws its randomized election timeout from a non-deterministic RNG; redraw it
    /// from madsim's whenever raft has just reset it (toolchain.md).
    fn fix_election_timeout(&mut self, force: bool) {
        if force || self.raw.raft.election_elapsed == 0 {
            let ticks = self.scenario.raft.election_ticks as u64;
            let timeout = sim().range(ticks, 2 * ticks) as usize;
            self.raw.raft.set_randomized_election_timeout(timeout);
        }
    }

    fn now(&self) -> Duration {
        self.world.lock().now()
    }

    fn on_message(&mut self, msg: Msg, from: SocketAddr) {
        match msg {
            Msg::Raft(m) => {
                let _ = self.raw.step(*m);
                self.fix_election_timeout(false);
            }
            Msg::Control { req, op } => {
                let Some(leader) = &mut self.leader else { return };
                match leader.control_seen.get(&req) {
                    None => {
                        leader.control_seen.insert(req, None);
                        leader.control.push((from, req, op));
                    }
                    Some(Some(result)) => self.outbox.push((from, Msg::ControlReply { req, result: result.clone() })),
                    Some(None) => {}
                }
            }
            Msg::Status { node, tasks } => {
                let now = self.now();
                if let Some(leader) = &mut self.leader {
                    leader.last_seen.insert(node.clone(), now);
                    leader.status.insert(node, tasks);
                }
            }
            Msg::ControlReply { .. } | Msg::Assignments { .. } => {}
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        self.fix_election_timeout(false);
        self.process();
        self.duties();
    }

    /// Drains raft's ready state: sends, persists, applies; then notices role changes.
    fn process(&mut self) {
        while self.raw.has_ready() {
            let mut committed: Vec<Entry> = Vec::new();
            let mut ready = self.raw.ready();
            self.send_raft(ready.take_messages());
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                self.disk.storage.wl().apply_snapshot(snapshot).expect("snapshots are never made");
            }
            committed.extend(ready.take_committed_entries());
            if !ready.entries().is_empty() {
                self.disk.storage.wl().append(ready.entries()).expect("append to the simulated disk");
            }
            if let Some(hs) = ready.hs() {
                self.disk.storage.wl().set_hardstate(hs.clone());
            }
            self.send_raft(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.disk.storage.wl().mut_hard_state().set_commit(commit);
            }
            self.send_raft(light.take_messages());
            committed.extend(light.take_committed_entries());
            self.raw.advance_apply();
            for entry in committed {
                self.apply(entry);
            }
            self.notice_role();
        }
        self.notice_role();
    }

    fn send_raft(&mut self, messages: Vec<Message>) {
        for m in messages {
            self.outbox.push((addr(manager_ip(m.to)), Msg::Raft(Box::new(m))));
        }
    }

    async fn flush(&mut self, link: &Link) {
        for (to, msg) in std::mem::take(&mut self.outbox) {
            link.send(to, msg).await;
        }
        if let Some(duration) = self.isolate.take() {
            let mut w = self.world.lock();
            if let Some(id) = w.node_ids.get(&self.name).copied() {
                madsim::net::NetSim::current().clog_node(id);
                let until = w.now() + duration;
                w.isolated.insert(self.name.clone(), until);
            }
        }
    }

    fn notice_role(&mut self) {
        let leading = self.raw.raft.state == StateRole::Leader;
        if leading && self.leader.is_none() {
            let term = self.raw.raft.term;
            let mut w = self.world.lock();
            w.metrics.leader_changes += 1;
            if w.leader.is_none_or(|(t, _)| t < term) {
                w.leader = Some((term, self.id));
            }
            let since = w.now();
            w.series.leader_started(term, &self.name, since.as_millis() as u64);
            w.record(&self.name, "leader", json!({ "term": term }));
            drop(w);
            self.leader = Some(Leader::new(self.raw.raft.raft_log.last_index(), since));
        } else if !leading && let Some(mut leader) = self.leader.take() {
            // A leader change: the engine must equal restore(applied store) before it is dropped.
            let result = leader.alloc.as_mut().map(|alloc| {
                alloc.settle(&self.store);
                check::check_engine(alloc.engine(), &self.store)
            });
            let mut w = self.world.lock();
            let now_ms = w.now_ms();
            w.series.leader_ended(Some(&self.name), now_ms);
            w.record(&self.name, "step_down", json!({ "term": self.raw.raft.term, "applied": self.store.applied }));
            if let Some(Err(breach)) = result {
                w.violate(breach, &self.name, self.store.applied);
            }
        }
    }
}
