//! The restart supervisor: whether and when a task that ended is replaced, per its
//! service's restart policy (condition, delay, attempts within a window), after
//! swarmkit's `orchestrator/restart`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::manager::objects::service::RestartCondition;
use crate::manager::objects::{Service, Task, TaskState};
use crate::manager::store::now_secs;

/// What becomes of a task that ended while it was wanted running.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Replace it now: its slot is free.
    Replace,
    /// Replace it once its restart delay has passed: its slot stays taken till then.
    Wait,
    /// Leave it ended: the policy says no more.
    Never,
}

#[derive(Default)]
pub struct Supervisor {
    /// When the replacement of each ended task is due, from when this leader saw it end.
    due: HashMap<String, Instant>,
}

impl Supervisor {
    /// `task` ended while desired running; `slot` is every task of its slot (its history
    /// included).
    pub fn ended(
        &mut self,
        service: &Service,
        task: &Task,
        slot: &[&Task],
        now: Instant,
    ) -> Verdict {
        if !should_restart(service, task, slot) {
            self.due.remove(&task.id);
            return Verdict::Never;
        }
        let due = *self
            .due
            .entry(task.id.clone())
            .or_insert_with(|| now + task.spec.restart_delay());
        if now >= due {
            self.due.remove(&task.id);
            Verdict::Replace
        } else {
            Verdict::Wait
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Drops timers of tasks that are gone or were replaced by someone else.
    pub fn forget_missing(&mut self, tasks: &[Task]) {
        if self.due.is_empty() {
            return;
        }
        let ended: std::collections::HashSet<&str> = tasks
            .iter()
            .filter(|t| t.desired_state <= TaskState::Running && t.status.state.is_terminal())
            .map(|t| t.id.as_str())
            .collect();
        self.due.retain(|id, _| ended.contains(id.as_str()));
    }
}

fn should_restart(service: &Service, task: &Task, slot: &[&Task]) -> bool {
    let spec = &service.spec.task_template;
    let failed = matches!(task.status.state, TaskState::Failed | TaskState::Rejected);
    let job = service.spec.mode.is_job();
    let restart = match spec.restart_condition() {
        RestartCondition::None => false,
        RestartCondition::OnFailure => failed,
        // A job that completed is done, whatever its policy says.
        RestartCondition::Any => failed || !job,
    };
    if !restart {
        return false;
    }
    let Some(policy) = &spec.restart_policy else {
        return true;
    };
    let max = policy.max_attempts.unwrap_or(0);
    if max == 0 {
        return true;
    }
    let window = policy.window.unwrap_or(0).max(0) as u64;
    let since = if window > 0 {
        now_secs().saturating_sub(Duration::from_nanos(window).as_secs())
    } else {
        0
    };
    let earlier = slot
        .iter()
        .filter(|t| {
            t.id != task.id
                && t.spec_version == task.spec_version
                && t.status.state.is_terminal()
                && t.status.timestamp >= since
        })
        .count() as u64;
    earlier < max
}
