//! Task status, from the executors to the leader's dispatcher: the latest status of each
//! task, sent in batches and kept until the leader took it, so a status reached while no
//! manager is reachable is reported when one is.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::Managers;
use crate::manager::objects::TaskStatus;
use crate::manager::rpc::{Request, Response, StatusUpdate};

#[derive(Default)]
pub struct Reporter {
    pending: Mutex<BTreeMap<String, TaskStatus>>,
    wake: Notify,
}

impl Reporter {
    /// Queues `status` for `task_id`, in place of any not yet sent.
    pub fn report(&self, task_id: &str, status: TaskStatus) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(task_id.to_string(), status);
        }
        self.wake.notify_one();
    }

    /// Sends what is queued, until the agent stops.
    pub async fn run(&self, managers: Managers) {
        loop {
            self.wake.notified().await;
            loop {
                let batch: Vec<StatusUpdate> = match self.pending.lock() {
                    Ok(mut pending) => std::mem::take(&mut *pending)
                        .into_iter()
                        .map(|(task_id, status)| StatusUpdate { task_id, status })
                        .collect(),
                    Err(_) => return,
                };
                if batch.is_empty() {
                    break;
                }
                let request = Request::TaskStatus {
                    updates: batch.clone(),
                };
                match managers
                    .call_leader(&request, Duration::from_secs(10))
                    .await
                {
                    Ok(Response::Done) => continue,
                    outcome => {
                        tracing::debug!("agent: reporting task status: {outcome:?}");
                        self.requeue(batch);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    /// Puts back what was not taken, unless a newer status came meanwhile.
    fn requeue(&self, batch: Vec<StatusUpdate>) {
        if let Ok(mut pending) = self.pending.lock() {
            for update in batch {
                pending.entry(update.task_id).or_insert(update.status);
            }
        }
    }
}
