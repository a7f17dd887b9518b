//! The updater, after swarmkit's `orchestrator/update`: how a service's slots move to a
//! new spec. Shared by the replicated and global orchestrators (a global service's slot
//! is a node), it also settles each slot's live tasks and refills empty ones.
//!
//! An update goes in batches of `Parallelism` slots (0: all). A slot is in flight from
//! when its old task is told to stop (stop-first) or its new task made (start-first)
//! until the new task is done: running (healthy: a task with a health check is
//! `starting` until one passes) on a node that is up, for `Monitor`. The next batch
//! begins only once no slot is in flight and `Delay` has passed since the last one was
//! done; a slot emptied for any other reason (a node down) is in flight too, so an update
//! never has more than `Parallelism` slots down on its account. A task of the update
//! that ends before it is done is a failure; past `MaxFailureRatio` of the update's
//! tasks, `FailureAction` applies.
//!
//! What this keeps between rounds is only in the leader's memory, and safe to lose: when
//! it saw each of the update's tasks running. A new leader sees them running from its
//! first round, so it waits one `Monitor` (and `Delay`) more, no less; a task that failed
//! before it was seen done counts as a failure, and a new leader has seen none done.
//! Which tasks belong to the update is read from the store: tasks of the current spec
//! made at or after the update's `StartedAt` (both the managers' clocks).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::{new_task, Plan, World};
use crate::manager::objects::update::{FailureAction, UpdateOrder, UpdateState, UpdateStatus};
use crate::manager::objects::{Service, Task, TaskState};

/// One slot of a service: a replica number, or a node of a global service.
pub(super) struct Slot<'a> {
    pub key: u64,
    /// Its live tasks (those on nodes that are down excepted).
    pub holders: Vec<&'a Task>,
    /// A task of an older spec in it was told to stop and has not yet: a stop-first
    /// replacement waits for it, so the two never run at once.
    pub stopping: bool,
    /// A new task's slot number and node (preset for a global service); none when none
    /// can be made there (a global service's node that takes no new tasks).
    pub makes: Option<(u64, &'a str)>,
}

#[derive(Default)]
pub struct Updater {
    /// When this leader first saw each of an update's tasks running.
    running_since: HashMap<String, Instant>,
    /// The update's tasks that ran their monitoring period out: their ending later is
    /// no failure of the update.
    passed: HashSet<String>,
    /// When a round is next due for a monitoring period or a delay to end.
    next: Option<Instant>,
}

/// What an update's tasks came to, counted from the store.
struct Progress<'a> {
    updated: usize,
    failed: Option<&'a Task>,
    failures: usize,
}

impl Updater {
    /// Settles `slots` (their duplicates, the old tasks of updated slots, the empty ones)
    /// and moves the next batch to the service's spec. `tasks` are all the service's.
    pub(super) fn reconcile(
        &mut self,
        world: &World,
        service: &Service,
        tasks: &[&Task],
        mut slots: Vec<Slot<'_>>,
        plan: &mut Plan,
        now: Instant,
    ) {
        let mut status = service.update_status.clone();
        let rollback = status.as_ref().is_some_and(|s| s.state.is_rollback());
        let policy = service.spec.update_policy(rollback);
        let started = status.as_ref().map_or(u64::MAX, |s| s.started_at);
        let current = |t: &Task| t.spec_version == service.spec_version;
        let of_update = |t: &Task| current(t) && t.meta.created_at >= started;

        // Which of the update's tasks are done, seen from here.
        for task in tasks.iter().filter(|t| of_update(t)) {
            if task.status.state == TaskState::Running && world.node_keeps_tasks(&task.node_id) {
                let since = *self.running_since.entry(task.id.clone()).or_insert(now);
                if now >= since + policy.monitor {
                    self.passed.insert(task.id.clone());
                } else {
                    self.wake(since + policy.monitor);
                }
            }
        }
        let done = |t: &Task| {
            t.status.state == TaskState::Running && (!of_update(t) || self.passed.contains(&t.id))
        };

        let mut in_flight = 0;
        let mut pending = Vec::new();
        slots.sort_by_key(|s| s.key);
        for slot in &slots {
            let (new, old): (Vec<&Task>, Vec<&Task>) =
                slot.holders.iter().copied().partition(|t| current(t));
            match furthest_along(&new) {
                Some(best) => {
                    stop_all_but(&new, best, plan);
                    if best.status.state == TaskState::Running {
                        stop_all_but(&old, best, plan);
                    } else if !old.is_empty() && policy.order == UpdateOrder::StopFirst {
                        // Old and new live in one slot with stop-first: a node came
                        // back after its task was replaced. The furthest along stays.
                        if let Some(keep) = furthest_along(&slot.holders) {
                            stop_all_but(&slot.holders, keep, plan);
                            if !current(keep) {
                                if let Some(makes) = slot.makes {
                                    pending.push((makes, keep));
                                }
                                continue;
                            }
                        }
                    }
                    // A task that ended is no more in flight: it failed, and is the
                    // restart policy's (and the failure action's) to handle.
                    if !done(best) && !best.status.state.is_terminal() {
                        in_flight += 1;
                    }
                }
                None if old.is_empty() => {
                    let Some((number, node)) = slot.makes else {
                        continue;
                    };
                    in_flight += 1;
                    if !slot.stopping || policy.order == UpdateOrder::StartFirst {
                        plan.create(new_task(service, number, node));
                    }
                }
                None => {
                    if let Some(keep) = furthest_along(&old) {
                        stop_all_but(&old, keep, plan);
                        if let Some(makes) = slot.makes {
                            pending.push((makes, keep));
                        }
                    }
                }
            }
        }

        let progress = progress(tasks, &of_update, &self.passed);
        let now_secs = world.clock;
        match status.as_ref().map(|s| s.state) {
            Some(state) if state.is_paused() => {}
            Some(state) if state.is_active() => {
                if let Some(failed) = progress.failed.filter(|_| {
                    progress.failures as f64 / progress.updated.max(1) as f64
                        > policy.max_failure_ratio
                }) {
                    // A rollback that fails pauses: there is nothing further back to go
                    // to (the API refuses that action in a `RollbackConfig`).
                    let action = match policy.failure_action {
                        FailureAction::Rollback if rollback => FailureAction::Pause,
                        action => action,
                    };
                    match action {
                        FailureAction::Continue => {}
                        FailureAction::Pause => {
                            let (state, what) = if rollback {
                                (UpdateState::RollbackPaused, "rollback")
                            } else {
                                (UpdateState::Paused, "update")
                            };
                            let message = format!(
                                "{what} paused due to failure or early termination of task {}",
                                failed.id
                            );
                            tracing::warn!(service = %service.spec.name, "{message}");
                            set_status(plan, service, state, status.as_ref(), now_secs, message);
                            return;
                        }
                        FailureAction::Rollback => {
                            roll_back(plan, service, failed, now_secs);
                            return;
                        }
                    }
                }
                if pending.is_empty() && in_flight == 0 {
                    let (state, message) = if rollback {
                        (UpdateState::RollbackCompleted, "rollback completed")
                    } else {
                        (UpdateState::Completed, "update completed")
                    };
                    tracing::info!(service = %service.spec.name, "{message}");
                    set_status(plan, service, state, status.as_ref(), now_secs, message);
                    return;
                }
            }
            // Tasks of an older spec with no update under way (cleared by a `service
            // update` that changed nothing they run, to resume a paused one): one starts.
            _ if !pending.is_empty() => {
                let fresh =
                    UpdateStatus::new(UpdateState::Updating, now_secs, "update in progress");
                status = Some(fresh.clone());
                let mut updated = service.clone();
                updated.update_status = Some(fresh);
                plan.update_service(updated);
            }
            _ => return,
        }
        if status.as_ref().is_some_and(|s| s.state.is_paused()) || in_flight > 0 {
            return;
        }
        // The next batch, once `Delay` has passed since the last was done.
        let last_done = tasks
            .iter()
            .filter(|t| of_update(t) && self.passed.contains(&t.id))
            .filter_map(|t| self.running_since.get(&t.id))
            .max()
            .map(|since| *since + policy.monitor);
        if let Some(ready) = last_done.map(|d| d + policy.delay).filter(|r| *r > now) {
            self.wake(ready);
            return;
        }
        let batch = match policy.parallelism {
            0 => pending.len(),
            n => n as usize,
        };
        for ((number, node), old) in pending.into_iter().take(batch) {
            match policy.order {
                UpdateOrder::StopFirst => plan.set_desired(old, TaskState::Shutdown),
                UpdateOrder::StartFirst => plan.create(new_task(service, number, node)),
            }
        }
    }

    /// Forgets tasks that are gone; when a round is next due for this updater.
    pub fn end_round(&mut self, tasks: &[Task]) -> Option<Instant> {
        if !self.running_since.is_empty() || !self.passed.is_empty() {
            let ids: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
            self.running_since.retain(|id, _| ids.contains(id.as_str()));
            self.passed.retain(|id| ids.contains(id.as_str()));
        }
        self.next.take()
    }

    fn wake(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }
}

/// The update's tasks, and those of them that ended before they were done.
fn progress<'a>(
    tasks: &[&'a Task],
    of_update: &impl Fn(&Task) -> bool,
    passed: &HashSet<String>,
) -> Progress<'a> {
    let mut p = Progress {
        updated: 0,
        failed: None,
        failures: 0,
    };
    for task in tasks.iter().copied().filter(|t| of_update(t)) {
        p.updated += 1;
        // A task that failed, whatever it was told since (the restart supervisor tells
        // it to stop once it replaces it); one that ended otherwise, only while still
        // wanted running, not stopped by the orchestrators.
        let ended_early = match task.status.state {
            TaskState::Failed | TaskState::Rejected => true,
            TaskState::Complete | TaskState::Shutdown | TaskState::Orphaned => {
                task.desired_state <= TaskState::Running
            }
            _ => false,
        };
        if ended_early && !passed.contains(&task.id) {
            p.failures += 1;
            p.failed = Some(task);
        }
    }
    p
}

/// The task of `tasks` furthest along (the newest of equals), which a slot keeps.
fn furthest_along<'a>(tasks: &[&'a Task]) -> Option<&'a Task> {
    tasks
        .iter()
        .copied()
        .max_by_key(|t| (t.status.state.min(TaskState::Running), t.meta.created_at))
}

fn stop_all_but(tasks: &[&Task], keep: &Task, plan: &mut Plan) {
    for task in tasks.iter().filter(|t| t.id != keep.id) {
        plan.set_desired(task, TaskState::Shutdown);
    }
}

fn set_status(
    plan: &mut Plan,
    service: &Service,
    state: UpdateState,
    old: Option<&UpdateStatus>,
    now: u64,
    message: impl Into<String>,
) {
    let mut status = UpdateStatus::new(state, old.map_or(now, |s| s.started_at), message);
    if matches!(
        state,
        UpdateState::Completed | UpdateState::RollbackCompleted
    ) {
        status.completed_at = Some(now);
    }
    let mut updated = service.clone();
    updated.update_status = Some(status);
    plan.update_service(updated);
}

/// The update failed: its previous spec becomes the spec again, rolled out after
/// `RollbackConfig`. With no previous spec to go back to, it pauses.
fn roll_back(plan: &mut Plan, service: &Service, failed: &Task, now: u64) {
    let mut updated = service.clone();
    let Some(previous) = updated.previous_spec.take() else {
        let status = UpdateStatus::new(
            UpdateState::Paused,
            now,
            format!(
                "update paused due to failure or early termination of task {}: no previous spec to roll back to",
                failed.id
            ),
        );
        updated.update_status = Some(status);
        plan.update_service(updated);
        return;
    };
    let message = format!(
        "update rolled back due to failure or early termination of task {}",
        failed.id
    );
    tracing::warn!(service = %service.spec.name, "{message}");
    let changed = previous.task_template != updated.spec.task_template;
    updated.spec_version = match updated.previous_spec_version.take() {
        Some(v) if changed => v,
        _ => service.next_spec_version(changed),
    };
    updated.spec = previous;
    updated.update_status = Some(UpdateStatus::new(
        UpdateState::RollbackStarted,
        now,
        message,
    ));
    plan.update_service(updated);
}
