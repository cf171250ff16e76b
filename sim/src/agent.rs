//! A worker node's agent: starts the tasks the leader assigns, reports their state, and stops
//! them when told or when they disappear from its assignments. A container keeps its data-plane
//! addresses (registered in the world for the checkers) until it has really stopped, so an
//! address freed while a container still uses it is detectable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use swarmalloc::{NodeId, ServiceId, TaskId, TaskState};

use crate::check::ContainerAddrs;
use crate::manager::TICK;
use crate::net::{Assignment, Link, Msg, addr, manager_ip, worker_ip};
use crate::rng::{Draw, sim};
use crate::scenario::{Action, Step};
use crate::world::Shared;

/// Per running task, per tick, while faults are on: the container exits by itself.
const TASK_FAILURE_PER_TICK: f64 = 0.000_25;
const REPORT_EVERY_TICKS: u64 = 5;

/// What survives a worker's restart: the tasks whose containers it had started, and the tasks
/// it has run to the end (never started again, whatever a late message says).
#[derive(Default)]
pub struct AgentDisk {
    started: Mutex<BTreeSet<TaskId>>,
    finished: Mutex<BTreeSet<TaskId>>,
}

struct Local {
    /// The task's service and slot (scripted failures name them).
    service: Option<ServiceId>,
    slot: u64,
    state: TaskState,
    desired: TaskState,
    addrs: ContainerAddrs,
    /// When the start (or stop) in progress completes.
    due: Option<Duration>,
}

struct Agent {
    name: String,
    node: NodeId,
    disk: Arc<AgentDisk>,
    world: Shared,
    tasks: BTreeMap<TaskId, Local>,
    /// Newest assignment set applied.
    stamp: (u64, u64),
}

pub async fn run(i: u64, managers: u8, disk: Arc<AgentDisk>, world: Shared) {
    let name = format!("w{i}");
    let link = Link::bind(worker_ip(i), name.clone(), world.clone()).await;
    let (sink, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    link.spawn_receiver(sink);
    let mut agent = Agent {
        name: name.clone(),
        node: NodeId::new(&name),
        disk,
        world: world.clone(),
        tasks: BTreeMap::new(),
        stamp: (0, 0),
    };
    agent.recover();
    let mut next_tick = madsim::time::Instant::now() + TICK;
    let mut ticks = 0u64;
    loop {
        if world.lock().stopped() {
            return;
        }
        tokio::select! {
            biased;
            got = inbox.recv() => {
                let Some((msg, _)) = got else { return };
                if let Msg::Assignments { stamp, tasks } = msg
                    && stamp > agent.stamp
                {
                    agent.stamp = stamp;
                    agent.reconcile(tasks);
                }
            }
            _ = madsim::time::sleep_until(next_tick) => {
                next_tick += TICK;
                ticks += 1;
                agent.progress();
                if ticks.is_multiple_of(REPORT_EVERY_TICKS) {
                    let report: Vec<(TaskId, TaskState)> = agent.tasks.iter().map(|(id, l)| (id.clone(), l.state)).collect();
                    for m in 1..=u64::from(managers) {
                        let msg = Msg::Status { node: agent.node.clone(), tasks: report.clone() };
                        link.send(addr(manager_ip(m)), msg).await;
                    }
                }
            }
        }
    }
}

impl Agent {
    fn now(&self) -> Duration {
        self.world.lock().now()
    }

    /// After a restart: every container this worker had started died with it.
    fn recover(&mut self) {
        let started = std::mem::take(&mut *self.disk.started.lock().unwrap_or_else(|p| p.into_inner()));
        if !started.is_empty() {
            self.world.lock().record(&self.name, "agent_recover", json!({ "dead_containers": started.len() }));
        }
        self.disk.finished.lock().unwrap_or_else(|p| p.into_inner()).extend(started.iter().cloned());
        for id in started {
            let local = Local {
                service: None,
                slot: 0,
                state: TaskState::Failed,
                desired: TaskState::Running,
                addrs: Vec::new(),
                due: None,
            };
            self.tasks.insert(id, local);
        }
    }

    fn reconcile(&mut self, assignments: Vec<Assignment>) {
        let now = self.now();
        let listed: BTreeSet<TaskId> = assignments.iter().map(|a| a.task.clone()).collect();
        let finished = self.disk.finished.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for a in assignments {
            if finished.contains(&a.task) && !self.tasks.contains_key(&a.task) {
                continue;
            }
            match self.tasks.get_mut(&a.task) {
                Some(local) => local.desired = a.desired,
                None => {
                    let (state, due) = if a.desired <= TaskState::Running {
                        (TaskState::Accepted, Some(now + Duration::from_millis(sim().range(100, 500))))
                    } else {
                        (TaskState::Shutdown, None)
                    };
                    let local =
                        Local { service: a.service, slot: a.slot, state, desired: a.desired, addrs: a.addrs, due };
                    self.tasks.insert(a.task, local);
                }
            }
        }
        // Tasks no longer assigned: stop what runs, forget what already ended.
        let mut forget = Vec::new();
        for (id, local) in &mut self.tasks {
            if listed.contains(id) {
                continue;
            }
            if local.state.is_live() {
                local.desired = TaskState::Shutdown;
            } else {
                forget.push(id.clone());
            }
        }
        for id in forget {
            self.tasks.remove(&id);
        }
    }

    fn progress(&mut self) {
        let now = self.now();
        let mut world = self.world.lock();
        let w = &mut *world;
        let failure = if w.faults_active && w.script.random_task_failures { TASK_FAILURE_PER_TICK } else { 0.0 };
        let now_ms = w.now_ms();
        let mut started = Vec::new();
        let mut stopped = Vec::new();
        for (id, local) in &mut self.tasks {
            match local.state {
                TaskState::Running if local.desired > TaskState::Running => match local.due {
                    None => local.due = Some(now + Duration::from_millis(sim().range(100, 2_000))),
                    Some(due) if due <= now => {
                        local.state = TaskState::Shutdown;
                        local.due = None;
                        stopped.push(id.clone());
                    }
                    Some(_) => {}
                },
                TaskState::Running => {
                    let scripted = w.script.task_failures.iter().position(|step| {
                        step.at_ms <= now_ms
                            && matches!(&step.action, Action::FailTask { task, service, slot }
                                if task.as_ref() == Some(id)
                                    || (service.is_some() && *service == local.service && *slot == local.slot))
                    });
                    let exited = match scripted {
                        Some(i) => {
                            w.script.task_failures.remove(i);
                            true
                        }
                        None => {
                            let exited = w.script.failure_rng.chance(failure);
                            if exited {
                                let action = Action::FailTask { task: Some(id.clone()), service: None, slot: 0 };
                                w.script.decisions.push(Step { at_ms: now_ms, action });
                            }
                            exited
                        }
                    };
                    if exited {
                        local.state = TaskState::Failed;
                        stopped.push(id.clone());
                    }
                }
                state if state.is_live() => {
                    if local.desired > TaskState::Running {
                        local.state = TaskState::Shutdown;
                        local.due = None;
                    } else if local.due.is_some_and(|d| d <= now) {
                        local.state = TaskState::Running;
                        local.due = None;
                        started.push((id.clone(), local.addrs.clone()));
                    }
                }
                _ => {}
            }
        }
        if started.is_empty() && stopped.is_empty() {
            return;
        }
        let mut disk = self.disk.started.lock().unwrap_or_else(|p| p.into_inner());
        let w = &mut *world;
        let running = w.containers.entry(self.name.clone()).or_default();
        for (id, addrs) in started {
            disk.insert(id.clone());
            running.insert(id, addrs);
        }
        let mut finished = self.disk.finished.lock().unwrap_or_else(|p| p.into_inner());
        for id in stopped {
            disk.remove(&id);
            running.remove(&id);
            finished.insert(id);
        }
    }
}
