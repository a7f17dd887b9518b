//! The replicated orchestrator: exactly one live task in each of a service's slots
//! 1..=replicas, replacing tasks that ended, that sit on nodes gone down or drained, or
//! that run an older spec; and its job form, which runs tasks to completion.

use std::collections::BTreeMap;
use std::time::Instant;

use super::restart::{Supervisor, Verdict};
use super::{new_task, Plan, World};
use crate::manager::objects::{Service, Task, TaskState};

/// Frees the slots of tasks that should not go on: on a node drained or gone, from an
/// older spec (a few at a time), or ended and due for replacement. A task on a node that is Down keeps
/// its desired state but not its slot: if the node comes back with it still running
/// while its replacement waits for a node, it is the replacement that goes (no restart
/// for a device that was only cut off). Returns the tasks that hold their slot.
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
    let mut outdated = Vec::new();
    for task in tasks.iter().copied() {
        if task.desired_state > TaskState::Running {
            continue;
        }
        let placed = !task.node_id.is_empty();
        if placed && world.node_is_down(&task.node_id) {
            continue;
        }
        let placed_away = placed && !world.node_keeps_tasks(&task.node_id);
        let old_spec = task.spec_version < service.spec_version;
        if placed_away || (old_spec && task.status.state.is_terminal()) {
            plan.set_desired(task, TaskState::Shutdown);
            continue;
        }
        if old_spec {
            outdated.push(task);
            continue;
        }
        if task.status.state.is_terminal() {
            let slot = slots.get(&by_slot(task)).map(Vec::as_slice).unwrap_or(&[]);
            match restarts.ended(service, task, slot, now) {
                Verdict::Replace => {
                    plan.set_desired(task, TaskState::Shutdown);
                    continue;
                }
                Verdict::Wait | Verdict::Never => {}
            }
        }
        holders.push(task);
    }
    // A new spec replaces running tasks a few at a time (`UpdateConfig.Parallelism`,
    // Swarm's default 1; 0 for all at once), each batch once the last one runs: an update
    // never takes down more than that. The others keep their slots meanwhile.
    let parallelism = update_parallelism(service);
    let starting = holders
        .iter()
        .filter(|t| t.status.state < TaskState::Running)
        .count();
    let budget = if parallelism == 0 {
        outdated.len()
    } else {
        parallelism.saturating_sub(starting)
    };
    outdated.sort_by_key(|t| by_slot(t));
    for (i, task) in outdated.into_iter().enumerate() {
        if i < budget {
            plan.set_desired(task, TaskState::Shutdown);
        } else {
            holders.push(task);
        }
    }
    holders
}

/// How many tasks an update replaces at once: the spec's `UpdateConfig.Parallelism`.
fn update_parallelism(service: &Service) -> usize {
    service
        .spec
        .extra
        .get("UpdateConfig")
        .and_then(|c| c.get("Parallelism"))
        .and_then(|p| p.as_u64())
        .map_or(1, |p| p as usize)
}

pub(super) fn reconcile(
    world: &World,
    service: &Service,
    tasks: &[&Task],
    replicas: u64,
    restarts: &mut Supervisor,
    plan: &mut Plan,
    now: Instant,
) {
    let holders = holders(world, service, tasks, |t| t.slot, restarts, plan, now);
    let mut by_slot: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for task in holders {
        by_slot.entry(task.slot).or_default().push(task);
    }
    for (slot, mut held) in by_slot.iter().map(|(s, h)| (*s, h.clone())) {
        if slot > replicas || slot == 0 {
            for task in held {
                plan.set_desired(task, TaskState::Shutdown);
            }
            continue;
        }
        // Two live tasks in one slot (a node came back after its tasks were replaced,
        // or two leaders' rounds crossed): keep the one furthest along, the newest of
        // equals.
        held.sort_by_key(|t| (t.status.state.min(TaskState::Running), t.meta.created_at));
        held.pop();
        for task in held {
            plan.set_desired(task, TaskState::Shutdown);
        }
    }
    for slot in 1..=replicas {
        if !by_slot.contains_key(&slot) {
            plan.create(new_task(service, slot, ""));
        }
    }
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
    let holders = holders(world, service, tasks, |t| t.slot, restarts, plan, now);
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
