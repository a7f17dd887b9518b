//! The dispatcher's task half: each node's assignments (a long poll, answered when they
//! change) and the status nodes report back, as swarmkit's `Assignments` and
//! `UpdateTaskStatus`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use super::Dispatcher;
use crate::manager::objects::service::{ConfigFile, FileReference};
use crate::manager::objects::task::TaskFile;
use crate::manager::objects::{Config, Secret, Task, TaskState};
use crate::manager::rpc::StatusUpdate;
use crate::manager::store::{Action, Error, ErrorKind, Kind};

/// How long an assignments call waits for a change before it answers with the same set:
/// well within the agent's call timeout, so a quiet node still hears from its manager.
pub const LONG_POLL: Duration = Duration::from_secs(15);

impl Dispatcher {
    /// The tasks `node_id` should know of, once they differ from the set named `known`
    /// (or after [`LONG_POLL`]), with the digest of the set.
    pub async fn assignments(
        &self,
        node_id: &str,
        known: Option<&str>,
    ) -> Result<(String, Vec<Task>), Error> {
        self.long_poll(
            known,
            |c| c.kind == Kind::Task && c.value["node_id"].as_str() == Some(node_id),
            || {
                let tasks = self.tasks_of(node_id)?;
                Ok((digest(&tasks), tasks))
            },
        )
        .await
    }

    /// A node's tasks: all assigned to it, but those that ended and are not wanted again
    /// (their containers can go). Not a global task that names its node but has not yet
    /// passed the allocator (its addresses) and the scheduler's check.
    fn tasks_of(&self, node_id: &str) -> Result<Vec<Task>, Error> {
        let mut tasks: Vec<Task> = self
            .store
            .list::<Task>()?
            .into_iter()
            .filter(|t| {
                t.node_id == node_id
                    && t.status.state >= TaskState::Assigned
                    && !(t.status.state.is_terminal() && t.desired_state > TaskState::Running)
            })
            .collect();
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
        let uses = |f: fn(&Task) -> bool| tasks.iter().any(f);
        let (configs, secrets) = (
            uses(|t| !t.spec.container_spec.configs.is_empty()),
            uses(|t| !t.spec.container_spec.secrets.is_empty()),
        );
        if configs {
            let configs = self.store.list::<Config>()?;
            for t in &mut tasks {
                t.configs = given_files(&t.spec.container_spec.configs, |id| {
                    let c = configs.iter().find(|c| c.id == id)?;
                    Some(c.spec.data.clone())
                });
            }
        }
        if secrets {
            let secrets = self.store.list::<Secret>()?;
            for t in &mut tasks {
                t.secrets = given_files(&t.spec.container_spec.secrets, |id| {
                    self.open_secret(secrets.iter().find(|s| s.id == id)?)
                });
            }
        }
        Ok(tasks)
    }

    /// A secret's data in the clear, for a node's assignments; none (logged) if it does
    /// not open, and the task then runs without it rather than with wrong data.
    fn open_secret(&self, secret: &Secret) -> Option<Vec<u8>> {
        let Some(key) = &self.data_key else {
            tracing::error!(secret = %secret.spec.annotations.name, "no cluster data key here to open secrets with");
            return None;
        };
        match secret.open(key) {
            Ok(data) => Some(data),
            Err(e) => {
                tracing::error!(secret = %secret.spec.annotations.name, "opening the secret: {e}");
                None
            }
        }
    }

    /// Records what `node_id` says of its tasks. A node speaks for its own tasks only, and
    /// a task's observed state only moves forward; anything else is dropped.
    pub async fn update_status(
        &self,
        node_id: &str,
        updates: &[StatusUpdate],
    ) -> Result<(), Error> {
        // The orchestrator may write the same tasks meanwhile: read again and retry.
        for _ in 0..5 {
            let mut actions = Vec::new();
            for update in updates {
                let Some(mut task) = self.store.get::<Task>(&update.task_id)? else {
                    continue;
                };
                if task.node_id != node_id
                    || update.status.state < task.status.state
                    || update.status == task.status
                {
                    continue;
                }
                task.status = update.status.clone();
                actions.push(Action::update(&task)?);
            }
            match self.store.propose(actions).await {
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                other => return other,
            }
        }
        Err(Error::Unavailable(format!(
            "the tasks of node {node_id} keep changing; try again"
        )))
    }
}

/// Names a set of tasks at their versions.
fn digest(tasks: &[Task]) -> String {
    let mut hasher = DefaultHasher::new();
    for task in tasks {
        task.id.hash(&mut hasher);
        task.meta.version.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// The configs or secrets a task's spec names, with their data (`data` of an id), as
/// files in its container. One that is gone is left out (the API refuses to remove one in
/// use).
fn given_files<R: FileReference>(
    refs: &[R],
    data: impl Fn(&str) -> Option<Vec<u8>>,
) -> Vec<TaskFile> {
    refs.iter()
        .filter_map(|r| {
            let file: &ConfigFile = r.file().as_ref()?;
            Some(TaskFile {
                id: r.id().to_string(),
                target: file.name.clone(),
                uid: file.uid.parse().unwrap_or(0),
                gid: file.gid.parse().unwrap_or(0),
                mode: if file.mode == 0 { 0o444 } else { file.mode },
                data: data(r.id())?,
            })
        })
        .collect()
}
