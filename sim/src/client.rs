//! The user: sends the workload's operations to the managers in time order, retrying until the
//! leader answers, and records every answer in the trace.

use std::time::Duration;

use serde_json::json;

use crate::net::{Link, Msg, addr, client_ip, manager_ip};
use crate::scenario::TimedOp;
use crate::world::Shared;

const REPLY_TIMEOUT: Duration = Duration::from_millis(1_500);
const ATTEMPTS_MAX: u32 = 40;

/// Client `i` sends `ops`, each with its request id (unique across clients).
pub async fn run(i: u64, ops: Vec<(u64, TimedOp)>, managers: u8, world: Shared) {
    let name = format!("c{i}");
    let link = Link::bind(client_ip(i), name.clone(), world.clone()).await;
    let (sink, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    link.spawn_receiver(sink);
    let start = madsim::time::Instant::now();
    for (req, op) in ops {
        madsim::time::sleep_until(start + Duration::from_millis(op.at_ms)).await;
        let mut answer = None;
        for attempt in 0..ATTEMPTS_MAX {
            if world.lock().stopped() {
                return;
            }
            for m in 1..=u64::from(managers) {
                link.send(addr(manager_ip(m)), Msg::Control { req, op: op.op.clone() }).await;
            }
            let deadline = madsim::time::Instant::now() + REPLY_TIMEOUT;
            loop {
                tokio::select! {
                    biased;
                    got = inbox.recv() => match got {
                        Some((Msg::ControlReply { req: r, result }, _)) if r == req => {
                            answer = Some((attempt, result));
                            break;
                        }
                        Some(_) => {}
                        None => return,
                    },
                    _ = madsim::time::sleep_until(deadline) => break,
                }
            }
            if answer.is_some() {
                break;
            }
        }
        let mut w = world.lock();
        match answer {
            Some((attempt, result)) => w.record(
                &name,
                "op",
                json!({ "req": req, "op": op.op, "attempts": attempt + 1, "error": result.err() }),
            ),
            None => w.record(&name, "op_unanswered", json!({ "req": req, "op": op.op })),
        }
    }
}
