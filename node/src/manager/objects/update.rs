//! How a service's tasks are replaced when its spec changes: the Engine API's
//! `UpdateConfig` (also its `RollbackConfig`), and the `UpdateStatus` the leader's
//! updater keeps, as swarmkit's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::service::Nanos;

/// The Engine API's `UpdateConfig` (and `RollbackConfig`). A field left out takes
/// Swarm's default, so a spec reads back as it was sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfig {
    /// Tasks replaced at once; 0: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    /// Between one batch done and the next begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// How long a new task must run before it counts as updated; failing within it is
    /// a failure of the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Nanos>,
    /// The share of updated tasks that may fail before `FailureAction` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
}

/// Swarm's default monitoring period, for updates and rollbacks alike.
pub const DEFAULT_MONITOR: Nanos = 5_000_000_000;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop updating; a later `service update` resumes.
    #[default]
    Pause,
    Continue,
    /// Put the previous spec back (updates only).
    Rollback,
}

impl FailureAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// The old task stops before its replacement starts.
    #[default]
    StopFirst,
    /// The replacement runs before the old task stops.
    StartFirst,
}

impl UpdateOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
    }
}

/// An [`UpdateConfig`] with Swarm's defaults filled in: what the updater acts on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdatePolicy {
    /// 0: all at once.
    pub parallelism: u64,
    pub delay: Duration,
    pub failure_action: FailureAction,
    pub monitor: Duration,
    pub max_failure_ratio: f64,
    pub order: UpdateOrder,
}

fn duration(nanos: Option<Nanos>, default: Nanos) -> Duration {
    Duration::from_nanos(nanos.unwrap_or(default).max(0) as u64)
}

impl UpdateConfig {
    pub fn policy(config: Option<&UpdateConfig>) -> UpdatePolicy {
        let c = config.cloned().unwrap_or_default();
        UpdatePolicy {
            parallelism: c.parallelism.unwrap_or(1),
            delay: duration(c.delay, 0),
            failure_action: c.failure_action.unwrap_or_default(),
            monitor: duration(c.monitor, DEFAULT_MONITOR),
            max_failure_ratio: c.max_failure_ratio.unwrap_or(0.0),
            order: c.order.unwrap_or_default(),
        }
    }

    /// What a spec must not hold; `name` is the field (`UpdateConfig`, `RollbackConfig`),
    /// named in the error.
    pub fn check(&self, name: &str) -> Result<(), String> {
        for (field, value) in [("Delay", self.delay), ("Monitor", self.monitor)] {
            if value.is_some_and(|v| v < 0) {
                return Err(format!("invalid {name}: {field} cannot be negative"));
            }
        }
        if let Some(ratio) = self.max_failure_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!(
                    "invalid {name}: MaxFailureRatio must be between 0 and 1, not {ratio}"
                ));
            }
        }
        if name == "RollbackConfig" && self.failure_action == Some(FailureAction::Rollback) {
            return Err(format!(
                "invalid {name}: FailureAction must be pause or continue: a rollback cannot roll back"
            ));
        }
        Ok(())
    }
}

/// Where a service's update stands (swarmkit's `UpdateStatus`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// Seconds since the epoch, by the clock of the manager that set them.
    pub started_at: u64,
    #[serde(default)]
    pub completed_at: Option<u64>,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }

    /// An update or rollback is under way: tasks are being replaced.
    pub fn is_active(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }

    pub fn is_paused(self) -> bool {
        matches!(self, UpdateState::Paused | UpdateState::RollbackPaused)
    }

    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

impl UpdateStatus {
    pub fn new(state: UpdateState, now: u64, message: impl Into<String>) -> UpdateStatus {
        UpdateStatus {
            state,
            started_at: now,
            completed_at: None,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_as_docker_sends_them_and_default_as_swarm() {
        let sent = serde_json::json!({
            "Parallelism": 2, "Delay": 1_000_000_000i64, "FailureAction": "rollback",
            "Monitor": 2_000_000_000i64, "MaxFailureRatio": 0.5, "Order": "start-first"
        });
        let c: UpdateConfig = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            sent,
            "reads back as sent"
        );
        let p = UpdateConfig::policy(Some(&c));
        assert_eq!(p.parallelism, 2);
        assert_eq!(p.failure_action, FailureAction::Rollback);
        assert_eq!(p.order, UpdateOrder::StartFirst);
        assert_eq!(p.monitor, Duration::from_secs(2));
        let d = UpdateConfig::policy(None);
        assert_eq!(
            (d.parallelism, d.failure_action, d.order, d.monitor),
            (
                1,
                FailureAction::Pause,
                UpdateOrder::StopFirst,
                Duration::from_secs(5)
            )
        );
        assert!(
            serde_json::from_value::<UpdateConfig>(serde_json::json!({"Order": "sideways"}))
                .is_err()
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let c = UpdateConfig {
            max_failure_ratio: Some(1.5),
            ..Default::default()
        };
        let e = c.check("UpdateConfig").unwrap_err();
        assert!(
            e.contains("UpdateConfig") && e.contains("MaxFailureRatio"),
            "{e}"
        );
        let c = UpdateConfig {
            delay: Some(-1),
            ..Default::default()
        };
        assert!(c.check("RollbackConfig").unwrap_err().contains("Delay"));
        let c = UpdateConfig {
            failure_action: Some(FailureAction::Rollback),
            ..Default::default()
        };
        assert!(c.check("UpdateConfig").is_ok());
        assert!(c.check("RollbackConfig").is_err());
    }
}
