//! The global orchestrator: one task of the service on every node that can take it
//! (not down, not drained or paused for new tasks, matching the constraints), updated
//! node by node as the updater's slots; for a global job, one completion on each.

use std::collections::HashMap;
use std::time::Instant;

use super::replicated::{holders, stopping};
use super::update::Slot;
use super::{new_task, Orchestrator, Plan, World};
use crate::manager::objects::{Availability, Node, NodeState, Service, Task, TaskState};
use crate::manager::scheduler;

pub(super) fn reconcile(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    orchestrator: &mut Orchestrator,
    plan: &mut Plan,
    now: Instant,
) {
    // A global task's slot is its node: the node's place among the sorted ids, so that
    // an update goes through the nodes in one order.
    let mut ids: Vec<&str> = world.nodes.keys().map(String::as_str).collect();
    ids.sort_unstable();
    let node_keys: HashMap<&str, u64> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u64 + 1))
        .collect();
    let key = |t: &Task| node_keys.get(t.node_id.as_str()).copied().unwrap_or(0);
    let holders = holders(
        world,
        service,
        tasks,
        key,
        &mut orchestrator.restarts,
        plan,
        now,
    );
    let stopping = stopping(world, service, tasks, key);
    let mut on_node: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in holders {
        on_node.entry(task.node_id.as_str()).or_default().push(task);
    }
    let template = &service.spec.task_template;
    let mut slots = Vec::new();
    for id in ids {
        let Some(node) = world.nodes.get(id) else {
            continue;
        };
        let held = on_node.remove(id).unwrap_or_default();
        if !scheduler::constraints_match(&template.placement.constraints, node) {
            for task in held {
                plan.set_desired(task, TaskState::Shutdown);
            }
            continue;
        }
        let takes_new =
            node.status.state != NodeState::Down && node.spec.availability == Availability::Active;
        if service.spec.mode.is_job() {
            job_on(service, tasks, node, held, takes_new, plan);
            continue;
        }
        if held.is_empty() && !takes_new {
            continue;
        }
        slots.push(Slot {
            key: node_keys.get(id).copied().unwrap_or(0),
            holders: held,
            stopping: stopping.contains(&node_keys.get(id).copied().unwrap_or(0)),
            makes: takes_new.then_some((0, id)),
        });
    }
    orchestrator
        .updater
        .reconcile(world, service, tasks, slots, plan, now);
    // Tasks on nodes that left the swarm.
    for task in on_node.into_values().flatten() {
        plan.set_desired(task, TaskState::Shutdown);
    }
}

/// A global job on one node: runs once per spec; a new spec is a new run, so its older
/// tasks stop at once.
fn job_on(
    service: &Service,
    tasks: &[&Task],
    node: &Node,
    held: Vec<&Task>,
    takes_new: bool,
    plan: &mut Plan,
) {
    let mut current = Vec::new();
    for task in held {
        if task.spec_version == service.spec_version {
            current.push(task);
        } else {
            plan.set_desired(task, TaskState::Shutdown);
        }
    }
    if !current.is_empty() {
        // One per node: any more (two leaders' rounds crossed) stop.
        for task in &current[1..] {
            plan.set_desired(task, TaskState::Shutdown);
        }
        return;
    }
    // A completed task of this spec is the end.
    let done = tasks.iter().any(|t| {
        t.node_id == node.id
            && t.spec_version == service.spec_version
            && t.status.state == TaskState::Complete
    });
    if takes_new && !done {
        plan.create(new_task(service, 0, &node.id));
    }
}
