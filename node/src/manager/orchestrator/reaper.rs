//! The task reaper, after swarmkit's `taskreaper`: keeps a few ended tasks per slot as
//! history (`service ps` shows them) and deletes the rest; removes the tasks of services
//! that are gone, once their nodes have stopped them.

use std::collections::HashMap;

use super::{Plan, World};
use crate::manager::objects::{Task, TaskState};

/// Deletes the ended tasks of one service past the history limit, oldest first, per slot
/// (per node for global services).
pub(super) fn prune_history(world: &World, tasks: &[&Task], plan: &mut Plan) {
    let mut slots: HashMap<(u64, &str), Vec<&Task>> = HashMap::new();
    for task in tasks {
        let key = if task.slot > 0 {
            (task.slot, "")
        } else {
            (0, task.node_id.as_str())
        };
        slots.entry(key).or_default().push(task);
    }
    for (_, mut slot) in slots {
        // A task told to stop before it was placed has nothing to stop: it goes at once.
        for task in &slot {
            if task.node_id.is_empty() && plan.desired(task) > TaskState::Running {
                plan.delete(task);
            }
        }
        slot.retain(|t| !t.node_id.is_empty());
        slot.retain(|t| {
            plan.desired(t) > TaskState::Running
                && (t.status.state.is_terminal() || !world.nodes.contains_key(&t.node_id))
        });
        if slot.len() <= world.history {
            continue;
        }
        slot.sort_by_key(|t| (t.meta.created_at, t.meta.version));
        let excess = slot.len() - world.history;
        for task in &slot[..excess] {
            plan.delete(task);
        }
    }
}

/// Tasks of services that are gone: told to go, and deleted once stopped (or never
/// placed, or on a node that is gone or down).
pub(super) fn reap(world: &World, orphans: HashMap<&str, Vec<&Task>>, plan: &mut Plan) {
    for task in orphans.into_values().flatten() {
        let stopped = task.status.state.is_terminal()
            || task.node_id.is_empty()
            || !world.node_keeps_tasks(&task.node_id);
        if stopped {
            plan.delete(task);
        } else {
            plan.set_desired(task, TaskState::Remove);
        }
    }
}
