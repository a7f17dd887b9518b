//! The global orchestrator: one task of the service on every node that can take it
//! (not down, not drained or paused for new tasks, matching the constraints); for a
//! global job, one completion on each.

use std::collections::HashMap;
use std::time::Instant;

use super::replicated::holders;
use super::restart::Supervisor;
use super::{new_task, Plan, World};
use crate::manager::objects::{Availability, NodeState, Service, Task, TaskState};
use crate::manager::scheduler;

pub(super) fn reconcile(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    restarts: &mut Supervisor,
    plan: &mut Plan,
    now: Instant,
) {
    // A global task's slot is its node: hash the node id into the slot key.
    let mut node_keys: HashMap<&str, u64> = HashMap::new();
    for (i, node) in world.nodes.keys().enumerate() {
        node_keys.insert(node, i as u64 + 1);
    }
    let key = |t: &Task| node_keys.get(t.node_id.as_str()).copied().unwrap_or(0);
    let holders = holders(world, service, tasks, key, restarts, plan, now);
    let mut on_node: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in holders {
        on_node.entry(task.node_id.as_str()).or_default().push(task);
    }
    let template = &service.spec.task_template;
    for node in world.nodes.values() {
        let held = on_node.remove(node.id.as_str()).unwrap_or_default();
        let fits = scheduler::constraints_match(&template.placement.constraints, node);
        if !fits {
            for task in held {
                plan.set_desired(task, TaskState::Shutdown);
            }
            continue;
        }
        if !held.is_empty() {
            // One per node: any more (two leaders' rounds crossed) stop.
            for task in &held[1..] {
                plan.set_desired(task, TaskState::Shutdown);
            }
            continue;
        }
        let takes_new =
            node.status.state != NodeState::Down && node.spec.availability == Availability::Active;
        // A global job runs once per node: a completed task of this spec is the end.
        let done = service.spec.mode.is_job()
            && tasks.iter().any(|t| {
                t.node_id == node.id
                    && t.spec_version == service.spec_version
                    && t.status.state == TaskState::Complete
            });
        if takes_new && !done {
            plan.create(new_task(service, 0, &node.id));
        }
    }
    // Tasks on nodes that left the swarm.
    for task in on_node.into_values().flatten() {
        plan.set_desired(task, TaskState::Shutdown);
    }
}
