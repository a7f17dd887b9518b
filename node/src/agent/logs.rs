//! The agent's side of `service logs`: it learns from the leader's log broker which of
//! its tasks' logs are wanted (a long poll) and publishes their lines, following them
//! while asked to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Managers;
use crate::containers::logs::{self, ReadOptions, Stream};
use crate::containers::Containers;
use crate::manager::dispatcher::tasks::LONG_POLL;
use crate::manager::rpc::{LogMessage, LogSubscription, Request, Response};

/// Lines per publish call: well under the transport's bound on a request.
const LINES_PER_CALL: usize = 500;
/// How often followed logs are read again.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

pub async fn serve(managers: Managers, containers: Arc<Containers>) {
    let mut serving: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        serving.retain(|_, task| !task.is_finished());
        let request = Request::LogSubscriptions {
            active: serving.keys().copied().collect(),
        };
        let reply = managers
            .call_leader(&request, LONG_POLL + Duration::from_secs(10))
            .await;
        let Ok(Response::LogSubscriptions { subscriptions }) = reply else {
            tracing::debug!("agent: log subscriptions: {reply:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let wanted: Vec<u64> = subscriptions.iter().map(|s| s.id).collect();
        serving.retain(|id, task| {
            let keep = wanted.contains(id);
            if !keep {
                task.abort();
            }
            keep
        });
        for sub in subscriptions {
            if !serving.contains_key(&sub.id) {
                let id = sub.id;
                let task = tokio::spawn(publish(managers.clone(), containers.clone(), sub));
                serving.insert(id, task);
            }
        }
    }
}

/// Sends what the subscription asks of this node's tasks, then, following, what they
/// print next, until the subscriber leaves.
async fn publish(managers: Managers, containers: Arc<Containers>, sub: LogSubscription) {
    let all = ReadOptions {
        stdout: sub.stdout,
        stderr: sub.stderr,
        timestamps: sub.timestamps,
        tail: None,
    };
    // Per task: its log file and how many of its lines were sent.
    let mut sources: Vec<(String, Option<std::path::PathBuf>, usize)> = Vec::new();
    let mut batch = Vec::new();
    for (task_id, container) in &sub.tasks {
        let path = containers
            .get(container)
            .ok()
            .map(|c| c.log_path().to_path_buf());
        let mut sent = 0;
        if let Some(path) = &path {
            // Read once: the whole log counts what was sent, its tail is what is sent.
            let lines = logs::read(path, &all);
            sent = lines.len();
            let skip = sub.tail.map_or(0, |n| sent.saturating_sub(n));
            for (stream, line) in lines.into_iter().skip(skip) {
                batch.push(message(task_id, stream, line));
            }
        }
        sources.push((task_id.clone(), path, sent));
    }
    if !send(&managers, sub.id, &mut batch, !sub.follow).await || !sub.follow {
        return;
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        for (task_id, path, sent) in &mut sources {
            let Some(path) = path else { continue };
            let lines = logs::read(path, &all);
            for (stream, line) in lines.iter().skip(*sent) {
                batch.push(message(task_id, *stream, line.clone()));
            }
            *sent = lines.len().max(*sent);
        }
        if !batch.is_empty() && !send(&managers, sub.id, &mut batch, false).await {
            return;
        }
    }
}

fn message(task_id: &str, stream: Stream, line: String) -> LogMessage {
    LogMessage {
        task_id: task_id.to_string(),
        stderr: stream == Stream::Stderr,
        line,
    }
}

/// Publishes `batch` (emptying it) in bounded calls; false once the subscription is gone.
async fn send(
    managers: &Managers,
    subscription: u64,
    batch: &mut Vec<LogMessage>,
    done: bool,
) -> bool {
    let mut lines = std::mem::take(batch);
    loop {
        let rest = lines.split_off(lines.len().min(LINES_PER_CALL));
        let last = rest.is_empty();
        let request = Request::PublishLogs {
            subscription,
            messages: lines,
            done: done && last,
        };
        match managers
            .call_leader(&request, Duration::from_secs(10))
            .await
        {
            Ok(Response::Done) => {}
            other => {
                tracing::debug!("agent: publishing logs: {other:?}");
                return false;
            }
        }
        if last {
            return true;
        }
        lines = rest;
    }
}
