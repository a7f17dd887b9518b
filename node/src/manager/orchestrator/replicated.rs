//! The replicated orchestrator: exactly one live task in each of a service's slots
//! 1..=replicas, replacing tasks that ended or that sit on nodes gone down or drained,
//! and, through the updater, those of an older spec; and its job form, which runs tasks
//! to completion.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use super::restart::{Supervisor, Verdict};
use super::update::Slot;
use super::{new_task, Orchestrator, Plan, World};
use crate::manager::objects::{Service, Task, TaskState};

/// Frees the slots of tasks that should not go on: on a node drained or gone, ended and
/// of an older spec, or ended and due for replacement. A task on a node that is Down
/// keeps its desired state but not its slot: if the node comes back with it still running
/// while its replacement waits for a node, it is the replacement that goes (no restart
/// for a device that was only cut off). Returns the tasks that hold their slot, those of
/// older specs included: the updater replaces them.
pub(super) fn holders<'a>(
    world: &World,
    service: &Service,
    tasks: &[&'a Task],
    by_slot: impl Fn(&Task) -> u64,
    restarts: &mut Supervisor,
    plan: &mut Plan,
    now: Instant,
) -> Vec<&'a Task> {
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        slots.entry(by_slot(task)).or_default().push(task);
    }
    let mut holders = Vec::new();
    for task in tasks.iter().copied() {
        if task.desired_state > TaskState::Running {
            continue;
        }
        let placed = !task.node_id.is_empty();
        if placed && world.node_is_down(&task.node_id) {
            continue;
        }
        let placed_away = placed && !world.node_keeps_tasks(&task.node_id);
        let old_spec = task.spec_version != service.spec_version;
        if placed_away || (old_spec && task.status.state.is_terminal()) {
            plan.set_desired(task, TaskState::Shutdown);
            continue;
        }
        if task.status.state.is_terminal() {
            let slot = slots.get(&by_slot(task)).map(Vec::as_slice).unwrap_or(&[]);
            match restarts.ended(service, task, slot, now) {
                Verdict::Replace => {
                    crate::metrics::task_restarted(&service.spec.name);
                    plan.set_desired(task, TaskState::Shutdown);
                    continue;
                }
                Verdict::Wait | Verdict::Never => {}
            }
        }
        holders.push(task);
    }
    holders
}

/// The slots where a task of an older spec was told to stop and still runs on a node
/// that is up: a stop-first update waits for it before it starts the new one.
pub(super) fn stopping(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    by_slot: impl Fn(&Task) -> u64,
) -> HashSet<u64> {
    tasks
        .iter()
        .filter(|t| {
            t.spec_version != service.spec_version
                && t.desired_state > TaskState::Running
                && !t.status.state.is_terminal()
                && world.node_keeps_tasks(&t.node_id)
        })
        .map(|t| by_slot(t))
        .collect()
}

pub(super) fn reconcile(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    replicas: u64,
    orchestrator: &mut Orchestrator,
    plan: &mut Plan,
    now: Instant,
) {
    let slot_of = |t: &Task| t.slot;
    let holders = holders(
        world,
        service,
        tasks,
        slot_of,
        &mut orchestrator.restarts,
        plan,
        now,
    );
    let stopping = stopping(world, service, tasks, slot_of);
    let mut by_slot: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for task in holders {
        by_slot.entry(task.slot).or_default().push(task);
    }
    let slots = (1..=replicas)
        .map(|slot| Slot {
            key: slot,
            holders: by_slot.remove(&slot).unwrap_or_default(),
            stopping: stopping.contains(&slot),
            makes: Some((slot, "")),
        })
        .collect();
    // What is left is past the replica count: scaled down.
    for task in by_slot.into_values().flatten() {
        plan.set_desired(task, TaskState::Shutdown);
    }
    orchestrator
        .updater
        .reconcile(world, service, tasks, slots, plan, now);
}

/// A replicated job: runs `total` completions, at most `max_concurrent` at a time. A
/// task that completed keeps its slot for good.
#[allow(clippy::too_many_arguments)]
pub(super) fn reconcile_job(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    max_concurrent: u64,
    total: u64,
    restarts: &mut Supervisor,
    plan: &mut Plan,
    now: Instant,
) {
    let mut holders = holders(world, service, tasks, |t| t.slot, restarts, plan, now);
    // A new spec is a new run of the job: its older tasks stop, all at once.
    holders.retain(|t| {
        let current = t.spec_version == service.spec_version;
        if !current {
            plan.set_desired(t, TaskState::Shutdown);
        }
        current
    });
    let completed = holders
        .iter()
        .filter(|t| t.status.state == TaskState::Complete)
        .count() as u64;
    let active = holders.len() as u64 - completed;
    let taken: std::collections::HashSet<u64> = holders.iter().map(|t| t.slot).collect();
    let wanted = (total.saturating_sub(completed)).min(max_concurrent);
    let mut free = (1..).filter(|s| !taken.contains(s));
    for _ in active..wanted {
        if let Some(slot) = free.next() {
            plan.create(new_task(service, slot, ""));
        }
    }
}
