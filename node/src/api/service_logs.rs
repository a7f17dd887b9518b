//! `GET /services/{id}/logs`: the logs of a service's tasks, gathered from the nodes
//! that ran them through the leader's log broker, as a multiplexed stream. With
//! `details`, each line starts with the task's labels, which the docker CLI turns into
//! its `web.1.<task>@node | ` prefix.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::containers::{async_stream, read_options, yes, LogsQuery, MULTIPLEXED};
use super::error::ApiError;
use super::services::{find, find_task};
use crate::agent::executor::container_name;
use crate::containers::logs::{self, Stream};
use crate::daemon::Node as Daemon;
use crate::manager::ca::Role;
use crate::manager::logbroker::{LogEvent, Subscribed};
use crate::manager::objects::Task;
use crate::manager::rpc::{LogSubscription, RemoteLogs, Request, Response as Reply};
use crate::manager::Manager;
use crate::transport::Transport;

/// How long a non-following request waits for nodes that do not answer (down, cut off).
const SILENT_NODES: Duration = Duration::from_secs(15);

pub async fn logs(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    gather(&daemon, &id, None, q).await
}

/// `GET /tasks/{id}/logs`: one task's, the same way.
pub async fn task_logs(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let manager = super::lookup::manager(&daemon).await?;
    let task = find_task(&manager, &id)?;
    gather(&daemon, &task.service_id, Some(&task.id), q).await
}

/// The logs of service `id`'s tasks (only `task`, if given).
async fn gather(
    daemon: &Daemon,
    id: &str,
    task: Option<&str>,
    q: LogsQuery,
) -> Result<Response, ApiError> {
    let manager = super::lookup::manager(daemon).await?;
    let service = find(&manager, id)?;
    let opts = read_options(&q)?;
    // Tasks that got as far as a container, grouped by the node that has it.
    let tasks: Vec<Task> = manager
        .store
        .list::<Task>()?
        .into_iter()
        .filter(|t| {
            t.service_id == service.id
                && task.is_none_or(|only| t.id == only)
                && !t.node_id.is_empty()
                && !t.status.container_id.is_empty()
        })
        .collect();
    let mut by_node: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut details: HashMap<String, String> = HashMap::new();
    for task in &tasks {
        by_node
            .entry(task.node_id.clone())
            .or_default()
            .push((task.id.clone(), container_name(task)));
        details.insert(
            task.id.clone(),
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={}",
                task.node_id, service.id, task.id
            ),
        );
    }
    let follow = yes(&q.follow);
    let with_details = yes(&q.details);
    let nodes = by_node.len();
    let template = LogSubscription {
        id: 0,
        tasks: Vec::new(),
        follow,
        tail: opts.tail,
        timestamps: opts.timestamps,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let mut source = Source::open(&manager, by_node, template).await?;
    let frames = async_stream(move |tx| async move {
        let mut done = 0;
        let deadline = tokio::time::Instant::now() + SILENT_NODES;
        while follow || done < nodes {
            let event = if follow {
                source.next().await
            } else {
                match tokio::time::timeout_at(deadline, source.next()).await {
                    Ok(event) => event,
                    Err(_) => return,
                }
            };
            match event {
                Some(LogEvent::Lines(lines)) => {
                    for m in lines {
                        let stream = if m.stderr {
                            Stream::Stderr
                        } else {
                            Stream::Stdout
                        };
                        let text = match details.get(&m.task_id).filter(|_| with_details) {
                            Some(d) => format!("{d} {}", m.line),
                            None => m.line,
                        };
                        if tx.send(logs::frame(stream, text.as_bytes())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(LogEvent::NodeDone(_)) => done += 1,
                None => return,
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, MULTIPLEXED)],
        Body::from_stream(frames),
    )
        .into_response())
}

/// Where a request's log lines come from: this manager's broker if it leads, else the
/// leader's, fetched over the transport.
enum Source {
    Local(Subscribed),
    Remote(Remote),
}

struct Remote {
    transport: Transport,
    leader: SocketAddr,
    id: u64,
    pending: VecDeque<LogEvent>,
}

/// How long one fetch from the leader may take (it waits up to 5 s for lines).
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

impl Source {
    async fn open(
        manager: &Manager,
        tasks: HashMap<String, Vec<(String, String)>>,
        template: LogSubscription,
    ) -> Result<Source, ApiError> {
        if manager.raft.status().is_leader {
            return Ok(Source::Local(manager.logs.subscribe(tasks, template)));
        }
        let unavailable = |why: String| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("service logs: the leader could not be asked: {why}"),
            )
        };
        let leader: SocketAddr = manager
            .raft
            .leader()
            .and_then(|m| m.addr.parse().ok())
            .ok_or_else(|| unavailable("no leader known".into()))?;
        let mut remote = Remote {
            transport: manager.transport.clone(),
            leader,
            id: 0,
            pending: VecDeque::new(),
        };
        match remote.call(RemoteLogs::Subscribe { tasks, template }).await {
            Ok(Reply::LogEvents { id, .. }) => {
                remote.id = id;
                Ok(Source::Remote(remote))
            }
            other => Err(unavailable(format!("{other:?}"))),
        }
    }

    async fn next(&mut self) -> Option<LogEvent> {
        match self {
            Source::Local(subscribed) => subscribed.events.recv().await,
            Source::Remote(remote) => loop {
                if let Some(event) = remote.pending.pop_front() {
                    return Some(event);
                }
                let Ok(Reply::LogEvents {
                    lines,
                    done,
                    closed,
                    ..
                }) = remote.call(RemoteLogs::Fetch { id: remote.id }).await
                else {
                    return None;
                };
                if !lines.is_empty() {
                    remote.pending.push_back(LogEvent::Lines(lines));
                }
                remote
                    .pending
                    .extend(done.into_iter().map(LogEvent::NodeDone));
                if closed && remote.pending.is_empty() {
                    return None;
                }
            },
        }
    }
}

impl Remote {
    async fn call(&self, request: RemoteLogs) -> Result<Reply, String> {
        call_leader(&self.transport, self.leader, request).await
    }
}

async fn call_leader(
    transport: &Transport,
    leader: SocketAddr,
    request: RemoteLogs,
) -> Result<Reply, String> {
    let body = serde_json::to_vec(&Request::RemoteLogs(request)).map_err(|e| e.to_string())?;
    let reply = transport
        .call(leader, Role::Manager.server_name(), body, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&reply).map_err(|e| e.to_string())
}

impl Drop for Remote {
    /// The client went: the leader's subscription goes too (else it lapses unfetched).
    fn drop(&mut self) {
        let (transport, leader, id) = (self.transport.clone(), self.leader, self.id);
        tokio::spawn(async move {
            let _ = call_leader(&transport, leader, RemoteLogs::Cancel { id }).await;
        });
    }
}
