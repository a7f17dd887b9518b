//! What the dashboard page shows, read from this manager's store and event bus: the
//! nodes, the services with their current tasks, recent failures and events. Its own
//! JSON, made for the page, not the Engine API's.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::events::{Event, Events};
use crate::manager::objects::service::counted_tasks;
use crate::manager::objects::{Node, Service, Task, TaskState};
use crate::manager::store::Error;
use crate::manager::Manager;
use crate::swarm::BOARD_LABEL;

/// Events the page starts with; it adds live ones as they come.
const RECENT_EVENTS: usize = 50;
/// Failed tasks listed, newest first.
const RECENT_FAILURES: usize = 20;

#[derive(Serialize)]
pub struct Overview {
    /// The manager serving the page.
    pub manager: String,
    pub nodes: Vec<NodeView>,
    pub services: Vec<ServiceView>,
    pub failures: Vec<TaskView>,
    pub events: Vec<EventView>,
}

#[derive(Serialize)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub leader: bool,
    pub state: &'static str,
    pub message: String,
    pub availability: &'static str,
    pub addr: String,
    pub platform: String,
    /// The board the node found itself to be (its `covey.board` engine label).
    pub board: Option<String>,
    /// The node's labels (`node update --label-add`).
    pub labels: BTreeMap<String, String>,
    /// The daemon's own labels (`covey daemon --label`), the board's aside.
    pub engine_labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    pub mode: &'static str,
    pub image: String,
    pub desired: usize,
    pub running: usize,
    /// The tasks that should run (those ended and due for a restart included).
    pub tasks: Vec<TaskView>,
}

#[derive(Serialize)]
pub struct TaskView {
    pub id: String,
    pub name: String,
    pub service: String,
    pub node_id: String,
    pub node: String,
    pub state: &'static str,
    pub desired: &'static str,
    pub message: String,
    pub error: String,
    pub exit_code: i32,
    /// When the state was set, in seconds since the epoch.
    pub since: u64,
}

#[derive(Serialize)]
pub struct EventView {
    /// Milliseconds since the epoch, as JavaScript's `Date` takes them.
    pub time: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub action: &'static str,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            time: e.time_nano / 1_000_000,
            kind: e.kind.as_str(),
            action: e.action,
            actor: e.actor.clone(),
            attributes: e.attributes.clone(),
        }
    }
}

/// Only the swarm's events: a manager's own containers and images are not the fleet's.
pub fn shown(event: &Event) -> bool {
    event.kind.scope() == "swarm"
}

pub fn read(manager: &Manager, events: &Events) -> Result<Overview, Error> {
    let nodes = manager.store.list::<Node>()?;
    let services = manager.store.list::<Service>()?;
    let tasks = manager.store.list::<Task>()?;
    let counted = counted_tasks(&tasks, &nodes);
    let leader = manager.raft.status().leader;
    let hostnames: HashMap<&str, &str> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.description.hostname.as_str()))
        .collect();
    let task_view = |t: &Task| TaskView {
        id: t.id.clone(),
        name: t.name(),
        service: t.service_name.clone(),
        node_id: t.node_id.clone(),
        node: hostnames.get(t.node_id.as_str()).unwrap_or(&"").to_string(),
        state: t.status.state.as_str(),
        desired: t.desired_state.as_str(),
        message: t.status.message.clone(),
        error: t.status.err.clone(),
        exit_code: t.status.exit_code,
        since: t.status.timestamp,
    };
    let mut node_views: Vec<NodeView> = nodes
        .iter()
        .map(|n| NodeView {
            id: n.id.clone(),
            hostname: n.description.hostname.clone(),
            role: n.role.to_string(),
            leader: leader != 0
                && n.manager_status
                    .as_ref()
                    .is_some_and(|m| m.raft_id == leader),
            state: n.status.state.as_str(),
            message: n.status.message.clone(),
            availability: n.spec.availability.as_str(),
            addr: n.status.addr.clone(),
            platform: format!("{}/{}", n.description.os, n.description.architecture),
            board: n.description.engine_labels.get(BOARD_LABEL).cloned(),
            labels: n.spec.labels.clone(),
            engine_labels: n
                .description
                .engine_labels
                .iter()
                .filter(|(k, _)| *k != BOARD_LABEL)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect();
    node_views.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
    let mut service_views: Vec<ServiceView> = services
        .iter()
        .map(|s| {
            let counts = s.task_counts(counted.iter().copied());
            let mut current: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.service_id == s.id && t.desired_state <= TaskState::Running)
                .collect();
            current.sort_by_key(|t| (t.slot, hostnames.get(t.node_id.as_str()).copied()));
            ServiceView {
                id: s.id.clone(),
                name: s.spec.name.clone(),
                mode: s.spec.mode.name(),
                image: s.spec.task_template.container_spec.image.clone(),
                desired: counts.desired,
                running: counts.running,
                tasks: current.into_iter().map(task_view).collect(),
            }
        })
        .collect();
    service_views.sort_by(|a, b| a.name.cmp(&b.name));
    let mut failed: Vec<&Task> = tasks
        .iter()
        .filter(|t| matches!(t.status.state, TaskState::Failed | TaskState::Rejected))
        .collect();
    failed.sort_by_key(|t| std::cmp::Reverse(t.status.timestamp));
    let (history, _) = events.subscribe();
    let mut recent: Vec<EventView> = history
        .iter()
        .rev()
        .filter(|e| shown(e))
        .take(RECENT_EVENTS)
        .map(|e| EventView::from(e.as_ref()))
        .collect();
    recent.reverse();
    Ok(Overview {
        manager: hostnames
            .get(manager.node_id.as_str())
            .unwrap_or(&"")
            .to_string(),
        nodes: node_views,
        services: service_views,
        failures: failed
            .into_iter()
            .take(RECENT_FAILURES)
            .map(task_view)
            .collect(),
        events: recent,
    })
}
