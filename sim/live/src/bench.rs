//! The real manager's allocation throughput, for `allocsim bench --real`: how long a real
//! SwarmKit manager takes from `docker service create --replicas N` (tasks constrained to no
//! node, so that none runs) until every task is PENDING, the figure the simulator's throughput
//! run gives in simulated time.
//!
//! Each run gets a fresh one-manager swarm from the harness (it holds the machine's swarm lock
//! for that run only, so others can take turns between runs) and mirrors the simulator's
//! throughput scenario (`Scenario::throughput`): one overlay network with a /15 subnet and one
//! service of N replicas on it.
//!
//! The times come from the manager's own clock, read back from the tasks: a task's `CreatedAt`
//! (the orchestrator set it) and its status timestamp. The allocator stamps the move to PENDING;
//! SwarmKit's scheduler stamps it again when it first finds no node for the task (later passes
//! change nothing and write nothing), which is after the allocator's commit by the scheduler's
//! commit debounce (50 ms) and its pass: the end of a run is late by that much. Polling for the
//! end is coarser: the task list is read at most once a second (listing 5,000 tasks costs the
//! manager most of a second), so the poll only says when to stop looking.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{ObjectVersion, Task, TaskState};
use bollard::query_parameters::{InspectServiceOptions, ListTasksOptionsBuilder};

use crate::harness::{HarnessError, Swarm, SwarmOptions};
use crate::ops::{Op, Placement, apply, specs};

/// The network and service names of a run (as in the simulator's throughput scenario).
pub const NETWORK: &str = "big";
pub const SERVICE: &str = "web";
/// The network's subnet: room for 131,070 tasks, as in the simulator's throughput scenario.
pub const SUBNET: &str = "10.128.0.0/15";
/// How often the task list is read while waiting.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Harness(#[from] HarnessError),
    #[error("reading the tasks' times: {0}")]
    Timestamps(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// One run on a real manager. Durations are measured on the manager's clock (this machine's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealThroughput {
    pub tasks: u64,
    /// From just before the create request to the last task's status timestamp (see the module
    /// docs for the scheduler's part in it).
    pub create_to_pending: Duration,
    /// From the first task's creation to the last task's status timestamp: the interval the
    /// simulator's figure covers (first task created .. last task PENDING).
    pub first_task_to_pending: Duration,
    /// From just before the create request to the last task's creation (the orchestrator's part).
    pub create_to_last_created: Duration,
    /// Wall time until a poll saw every task PENDING (an upper bound, poll granularity included).
    pub observed: Duration,
    /// Task list reads it took.
    pub polls: u32,
    /// Raft entries the manager committed from the service's creation to the last task write
    /// (a stored object's version is the raft index of the transaction that wrote it last).
    pub entries: u64,
}

/// One run on a fresh swarm of this process's own: starts it (waiting for the machine's swarm
/// lock), measures, and removes it again (the lock is released when this returns).
pub fn measure(tasks: u64, options: &SwarmOptions, timeout: Duration) -> Result<RealThroughput> {
    let swarm = Swarm::start(options)?;
    measure_on(&swarm, tasks, timeout)
}

/// One run on `swarm`, which must not have a network [`NETWORK`] or a service [`SERVICE`] yet.
pub fn measure_on(swarm: &Swarm, tasks: u64, timeout: Duration) -> Result<RealThroughput> {
    let network = specs::with_subnets(specs::overlay(NETWORK), &[(SUBNET, None, None)]);
    swarm
        .block_on(apply(swarm.docker(), &Op::CreateNetwork(network)))
        .map_err(HarnessError::api(format!("creating network {NETWORK}")))?;
    let service =
        Op::CreateService { spec: specs::service(SERVICE, &[NETWORK], tasks), placement: Placement::Constrained };
    let asked = SystemTime::now();
    let started = Instant::now();
    swarm
        .block_on(apply(swarm.docker(), &service))
        .map_err(HarnessError::api(format!("creating service {SERVICE}")))?;
    let mut polls = 0;
    let filters = HashMap::from([("service", vec![SERVICE])]);
    let list = ListTasksOptionsBuilder::default().filters(&filters).build();
    let all = swarm.wait_for(
        &format!("{tasks} tasks of service {SERVICE} to be PENDING"),
        timeout,
        POLL_EVERY,
        async |docker| {
            polls += 1;
            let listed = docker.list_tasks(Some(list.clone())).await.map_err(|e| e.to_string())?;
            let pending = listed.iter().filter(|t| state(t) == Some(TaskState::PENDING)).count() as u64;
            if pending >= tasks {
                Ok(Some(listed))
            } else {
                // Not a failure: the progress, quoted if the wait times out.
                Err(format!("{} tasks, {pending} PENDING", listed.len()))
            }
        },
    )?;
    let observed = started.elapsed();
    let times = Timestamps::of(&all).map_err(BenchError::Timestamps)?;
    let service = swarm
        .block_on(swarm.docker().inspect_service(SERVICE, None::<InspectServiceOptions>))
        .map_err(HarnessError::api(format!("inspecting service {SERVICE}")))?;
    let index = |version: Option<&ObjectVersion>| version.and_then(|v| v.index).unwrap_or(0);
    let last_write = all.iter().map(|t| index(t.version.as_ref())).max().unwrap_or(0);
    let entries = last_write.saturating_sub(index(service.version.as_ref()));
    let since = |from: SystemTime, to: SystemTime| to.duration_since(from).unwrap_or_default();
    Ok(RealThroughput {
        tasks,
        create_to_pending: since(asked, times.last_pending),
        first_task_to_pending: since(times.first_created, times.last_pending),
        create_to_last_created: since(asked, times.last_created),
        observed,
        polls,
        entries,
    })
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

/// The first and last creation and the last PENDING timestamp of a run's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timestamps {
    first_created: SystemTime,
    last_created: SystemTime,
    last_pending: SystemTime,
}

impl Timestamps {
    /// `Err` names the task and field that is missing or not RFC 3339.
    fn of(tasks: &[Task]) -> std::result::Result<Timestamps, String> {
        let mut created = Vec::with_capacity(tasks.len());
        let mut pending = Vec::with_capacity(tasks.len());
        for task in tasks {
            let id = task.id.as_deref().unwrap_or("?");
            let parse = |field: &str, text: Option<&String>| {
                let text = text.ok_or_else(|| format!("task {id} has no {field}"))?;
                humantime::parse_rfc3339(text).map_err(|e| format!("task {id}'s {field} {text:?}: {e}"))
            };
            created.push(parse("CreatedAt", task.created_at.as_ref())?);
            pending.push(parse("Status.Timestamp", task.status.as_ref().and_then(|s| s.timestamp.as_ref()))?);
        }
        match (created.iter().min(), created.iter().max(), pending.iter().max()) {
            (Some(&first_created), Some(&last_created), Some(&last_pending)) => {
                Ok(Timestamps { first_created, last_created, last_pending })
            }
            _ => Err("no tasks".into()),
        }
    }
}

/// The median of some durations (the mean of the middle two for an even count); zero for none.
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::TaskStatus;

    use super::*;

    fn task(id: &str, created: &str, pending: &str) -> Task {
        Task {
            id: Some(id.into()),
            created_at: Some(created.into()),
            status: Some(TaskStatus {
                timestamp: Some(pending.into()),
                state: Some(TaskState::PENDING),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn timestamps_take_the_first_creation_and_the_last_pending_at_nanosecond_precision() {
        let tasks = [
            task("a", "2026-12-07T16:00:00.200000000Z", "2026-12-07T16:00:01.000000001Z"),
            task("b", "2026-12-07T16:00:00.100000000Z", "2026-12-07T16:00:02.5Z"),
            task("c", "2026-12-07T16:00:00.300000000Z", "2026-12-07T16:00:00.9Z"),
        ];
        let t = Timestamps::of(&tasks).unwrap();
        let at = |s: &str| humantime::parse_rfc3339(s).unwrap();
        assert_eq!(t.first_created, at("2026-12-07T16:00:00.1Z"));
        assert_eq!(t.last_created, at("2026-12-07T16:00:00.3Z"));
        assert_eq!(t.last_pending, at("2026-12-07T16:00:02.5Z"));
        assert_eq!(t.last_pending.duration_since(t.first_created).unwrap(), Duration::from_millis(2400));
    }

    #[test]
    fn a_missing_or_malformed_timestamp_names_the_task_and_field() {
        let mut bad = task("x1", "2026-12-07T16:00:00Z", "yesterday");
        assert!(Timestamps::of(&[bad.clone()]).unwrap_err().starts_with("task x1's Status.Timestamp \"yesterday\""));
        bad.created_at = None;
        assert_eq!(Timestamps::of(&[bad]).unwrap_err(), "task x1 has no CreatedAt");
        assert_eq!(Timestamps::of(&[]).unwrap_err(), "no tasks");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(30), ms(10), ms(20)]), ms(20));
        assert_eq!(median(&[ms(40), ms(10), ms(20), ms(30)]), ms(25));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
