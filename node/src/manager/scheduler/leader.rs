//! The scheduler's round on the leader: every task waiting for a node (`pending`: the
//! allocator has given it its addresses) is given one (or, for a global task, its node is
//! checked), and those that fit nowhere say why.

use super::Scheduler;
use crate::manager::objects::{Node, Task, TaskState, TaskStatus};
use crate::manager::store::{now_secs, Action, Error, Store};

/// `nodes` as the round's orchestrators saw them: a node that came back since is left
/// to the next round, whose orchestrators see it first (and may have tasks to drop).
pub async fn round(store: &Store, nodes: &[Node]) -> Result<(), Error> {
    let tasks = store.list::<Task>()?;
    let waiting: Vec<Task> = tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running && t.status.state == TaskState::Pending)
        .cloned()
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    // Only tasks already placed hold room on their nodes; the waiting ones are placed below.
    let placed: Vec<Task> = tasks
        .into_iter()
        .filter(|t| t.status.state >= TaskState::Assigned)
        .collect();
    let mut scheduler = Scheduler::new(nodes, &placed);
    let (preset, unplaced): (Vec<Task>, Vec<Task>) =
        waiting.into_iter().partition(|t| !t.node_id.is_empty());
    let mut decisions: Vec<(Task, Result<String, String>)> = Vec::new();
    for task in preset {
        let node = task.node_id.clone();
        let decision = scheduler.check(&task, &node).map(|()| node);
        decisions.push((task, decision));
    }
    let placed = scheduler.place_all(&unplaced);
    let mut by_id: std::collections::HashMap<String, Task> =
        unplaced.into_iter().map(|t| (t.id.clone(), t)).collect();
    for (id, decision) in placed {
        if let Some(task) = by_id.remove(&id) {
            decisions.push((task, decision));
        }
    }
    let mut actions = Vec::new();
    for (mut task, decision) in decisions {
        match decision {
            Ok(node) => {
                task.node_id = node;
                task.status = TaskStatus {
                    state: TaskState::Assigned,
                    timestamp: now_secs(),
                    message: "scheduler assigned task to node".into(),
                    ..Default::default()
                };
            }
            Err(why) => {
                if task.status.state == TaskState::Pending && task.status.err == why {
                    continue;
                }
                task.status = TaskStatus {
                    state: TaskState::Pending,
                    timestamp: now_secs(),
                    message: "pending task scheduling".into(),
                    err: why,
                    ..Default::default()
                };
            }
        }
        actions.push(Action::update(&task)?);
    }
    crate::manager::propose_chunked(store, actions).await
}
