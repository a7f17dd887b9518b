//! A task: one slot of a service on one node, as swarmkit's `Task`. Orchestrators make
//! tasks and set their desired state, the scheduler sets their node, and the node's agent
//! reports their observed state, which only moves forward.

use serde::{Deserialize, Serialize};

use super::network::Attachment;
use super::service::{Endpoint, TaskSpec};
use crate::manager::store::{object, Kind, Meta};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub meta: Meta,
    pub service_id: String,
    /// The replica number (1-based) of a replicated service; 0 for global ones, whose
    /// tasks are told apart by node.
    pub slot: u64,
    /// Empty until the scheduler places the task (preset for global services).
    #[serde(default)]
    pub node_id: String,
    /// The service's spec version the task was made from.
    pub spec_version: u64,
    pub spec: TaskSpec,
    /// Copied from the service: the agent names containers after it.
    pub service_name: String,
    /// Made by a job: it runs to completion, and is not restarted once complete.
    #[serde(default)]
    pub job: bool,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    /// The task's addresses on its networks, set by the allocator before it is scheduled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Attachment>,
    /// The service's endpoint when the task was allocated (its published ports).
    #[serde(default)]
    pub endpoint: Endpoint,
    /// The configs the task's container is given, with their data: filled in by the
    /// dispatcher in a node's assignments (so that the node keeps them for a restart with
    /// no manager), never in the store, which holds each config once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<TaskFile>,
    /// The secrets the task's container is given, in the clear: as `configs`, filled in
    /// only in a node's assignments, which travel over mutual TLS. The store holds them
    /// sealed; the node seals them again with its own key before it saves its tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<TaskFile>,
}

/// A config or secret as a file in a task's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFile {
    /// The config's or secret's id (`config_id` in files saved before secrets).
    #[serde(alias = "config_id")]
    pub id: String,
    /// Absolute, in the container.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    #[serde(with = "super::config::base64_bytes")]
    pub data: Vec<u8>,
}

object!(Task, Kind::Task);

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskStatus {
    pub state: TaskState,
    /// Seconds since the epoch, by the clock of whoever set the state.
    pub timestamp: u64,
    /// What happened, as `service ps` shows it ("started", "no suitable node ...").
    #[serde(default)]
    pub message: String,
    /// Why the task failed or was rejected.
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub container_id: String,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub exit_code: i32,
}

/// Swarm's task states, in order: a task's observed state only moves up.
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// The task's container has ended, or will never run.
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_lowercase()))
            .map_err(|_| format!("invalid task state {s:?}"))
    }
}

impl Task {
    /// The task's name as Swarm shows it: `web.2` for a replica, `web.<node>` for a
    /// global task.
    pub fn name(&self) -> String {
        if self.slot > 0 {
            format!("{}.{}", self.service_name, self.slot)
        } else {
            format!("{}.{}", self.service_name, self.node_id)
        }
    }

    /// Whether the task counts towards its slot: not told to stop, and not ended.
    pub fn is_live(&self) -> bool {
        self.desired_state <= TaskState::Running && !self.status.state.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_as_swarms() {
        assert!(TaskState::Pending < TaskState::Assigned);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(TaskState::Failed.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        assert_eq!("Running".parse::<TaskState>(), Ok(TaskState::Running));
        assert!("sideways".parse::<TaskState>().is_err());
    }
}
