//! Messages between simulated nodes and the faulty link layer they travel through: madsim's
//! network (partitions are clogged links there) plus loss, delay (hence reordering),
//! duplication and slow links drawn from the seed's fault plan.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use madsim::net::Endpoint;
use swarmalloc::{NetworkId, NodeId, TaskId, TaskState};

use crate::faults::FaultKind;
use crate::rng::{Draw, sim};
use crate::scenario::ClientOp;
use crate::world::Shared;

pub const PORT: u16 = 7000;
pub const TAG: u64 = 1;

/// What the leader tells a worker about one of its tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub task: TaskId,
    pub service: Option<swarmalloc::ServiceId>,
    pub slot: u64,
    pub desired: TaskState,
    pub addrs: Vec<(NetworkId, IpNet)>,
}

#[derive(Clone, Debug)]
pub enum Msg {
    Raft(Box<raft::eraftpb::Message>),
    Control {
        req: u64,
        op: ClientOp,
    },
    ControlReply {
        req: u64,
        result: Result<(), String>,
    },
    /// The full set of a worker's tasks (tasks missing from it must stop), stamped with the
    /// sender's (raft term, sequence) so that a late, reordered set is ignored.
    Assignments {
        stamp: (u64, u64),
        tasks: Vec<Assignment>,
    },
    /// A worker's heartbeat with the state of every task it runs.
    Status {
        node: NodeId,
        tasks: Vec<(TaskId, TaskState)>,
    },
}

/// The simulated IP of manager `i` (1-based), worker `i`, and client `i`.
pub fn manager_ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, i as u8))
}

pub fn worker_ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 2, i as u8))
}

pub fn client_ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 3, i as u8))
}

pub fn addr(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, PORT)
}

/// Node name from its IP (for fault lookups and the trace).
pub fn name_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            match o[2] {
                1 => format!("m{}", o[3]),
                2 => format!("w{}", o[3]),
                _ => format!("c{}", o[3]),
            }
        }
        IpAddr::V6(_) => "?".to_string(),
    }
}

/// A node's sending side: applies link faults, then hands the message to madsim's network.
#[derive(Clone)]
pub struct Link {
    pub ep: Arc<Endpoint>,
    pub me: String,
    pub world: Shared,
}

impl Link {
    pub async fn bind(ip: IpAddr, me: String, world: Shared) -> Link {
        let ep = Endpoint::bind(addr(ip)).await.expect("bind the simulated endpoint");
        Link { ep: Arc::new(ep), me, world }
    }

    pub async fn send(&self, to: SocketAddr, msg: Msg) {
        let (loss, delay, dup, slow) = {
            let mut w = self.world.lock();
            w.metrics.messages_sent += 1;
            let now = w.now();
            let dest = name_of(to.ip());
            let slow = [&self.me, &dest]
                .iter()
                .filter_map(|n| w.links.slow.get(*n))
                .filter(|(until, _)| *until > now)
                .map(|(_, extra)| *extra)
                .max();
            (
                w.rate(FaultKind::MessageLoss),
                w.rate(FaultKind::MessageDelay),
                w.rate(FaultKind::MessageDuplication),
                slow,
            )
        };
        let mut rng = sim();
        if rng.chance(loss) {
            return;
        }
        let copies = if rng.chance(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let mut wait = slow.unwrap_or_default();
            if rng.chance(delay) {
                wait += Duration::from_millis(rng.range(5, 300));
            }
            if wait.is_zero() {
                let _ = self.ep.send_to_raw(to, TAG, Box::new(msg.clone())).await;
            } else {
                let ep = self.ep.clone();
                let msg = msg.clone();
                madsim::task::spawn(async move {
                    madsim::time::sleep(wait).await;
                    let _ = ep.send_to_raw(to, TAG, Box::new(msg)).await;
                });
            }
        }
    }

    /// Receives messages forever, forwarding them to `sink`.
    pub fn spawn_receiver(&self, sink: tokio::sync::mpsc::UnboundedSender<(Msg, SocketAddr)>) {
        let ep = self.ep.clone();
        madsim::task::spawn(async move {
            loop {
                let Ok((payload, from)) = ep.recv_from_raw(TAG).await else { return };
                if let Ok(msg) = payload.downcast::<Msg>()
                    && sink.send((*msg, from)).is_err()
                {
                    return;
                }
            }
        });
    }
}
