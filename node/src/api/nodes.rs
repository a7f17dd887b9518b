//! `/nodes`: list, inspect, update and remove, in the Engine API's shapes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::time::rfc3339;
use crate::daemon::Node as Daemon;
use crate::manager::ca::Role;
use crate::manager::objects::{Availability, Node, NodeState};
use crate::manager::raft::RaftStatus;
use crate::manager::store::Action;
use crate::manager::Manager;

type Result<T> = std::result::Result<T, ApiError>;

pub async fn list(State(daemon): State<Arc<Daemon>>) -> Result<Json<Vec<Value>>> {
    let manager = super::lookup::manager(&daemon).await?;
    let status = manager.raft.status();
    let mut nodes = manager.store.list::<Node>()?;
    nodes.sort_by(|a, b| {
        a.description
            .hostname
            .cmp(&b.description.hostname)
            .then(a.id.cmp(&b.id))
    });
    Ok(Json(nodes.iter().map(|n| node_json(n, &status)).collect()))
}

/// A node by id, unique id prefix, name or hostname, as the docker CLI lets users name it.
fn find(manager: &Manager, name: &str) -> Result<Node> {
    super::lookup::find(manager, "node", name, |n: &Node, key| {
        n.spec.name == key || n.description.hostname == key
    })
}

pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    let node = find(&manager, &id)?;
    Ok(Json(node_json(&node, &manager.raft.status())))
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeSpecRequest {
    name: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    role: Option<String>,
    availability: Option<String>,
}

pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
    Json(spec): Json<NodeSpecRequest>,
) -> Result<()> {
    let manager = super::lookup::manager(&daemon).await?;
    let mut node = find(&manager, &id)?;
    if let Some(version) = q.version {
        node.meta.version = version;
    }
    if let Some(availability) = spec.availability {
        node.spec.availability = availability
            .parse::<Availability>()
            .map_err(ApiError::bad_request)?;
    }
    if let Some(role) = spec.role {
        let role = match role.as_str() {
            "manager" => Role::Manager,
            "worker" => Role::Worker,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid role {other:?}: expected manager or worker"
                )))
            }
        };
        if role == Role::Worker && node.spec.desired_role == Role::Manager {
            check_demotion(&manager, &node)?;
        }
        node.spec.desired_role = role;
    }
    if let Some(labels) = spec.labels {
        node.spec.labels = labels;
    }
    if let Some(name) = spec.name {
        node.spec.name = name;
    }
    manager.store.propose(vec![Action::update(&node)?]).await?;
    Ok(())
}

/// Swarm's checks before a demotion: never the last manager, never below quorum.
fn check_demotion(manager: &Manager, node: &Node) -> Result<()> {
    let managers = manager
        .store
        .list::<Node>()?
        .iter()
        .filter(|n| n.spec.desired_role == Role::Manager)
        .count();
    if managers <= 1 {
        return Err(ApiError::bad_request(
            "attempting to demote the last manager of the swarm",
        ));
    }
    let status = manager.raft.status();
    let Some(ms) = &node.manager_status else {
        return Ok(());
    };
    let voters = status.voters.len();
    let reachable = status
        .voters
        .iter()
        .filter(|v| **v != ms.raft_id && !status.unreachable.contains(v))
        .count();
    if status.voters.contains(&ms.raft_id) && reachable < (voters - 1) / 2 + 1 {
        return Err(ApiError::bad_request(format!(
            "can't demote node {}: the swarm would lose quorum ({reachable} of {} remaining managers reachable)",
            node.id,
            voters - 1
        )));
    }
    Ok(())
}

pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<super::filters::ForceQuery>,
) -> Result<()> {
    let manager = super::lookup::manager(&daemon).await?;
    let node = find(&manager, &id)?;
    let force = q.force();
    if node.manager_status.is_some() {
        return Err(ApiError::bad_request(format!(
            "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
            node.id
        )));
    }
    if node.status.state != NodeState::Down && !force {
        return Err(ApiError::bad_request(format!(
            "node {} is not down and can't be removed",
            node.id
        )));
    }
    manager
        .store
        .propose(vec![Action::delete::<Node>(&node.id)])
        .await?;
    Ok(())
}

pub fn node_json(node: &Node, raft: &RaftStatus) -> Value {
    let d = &node.description;
    let mut value = json!({
        "ID": node.id,
        "Version": {"Index": node.meta.version},
        "CreatedAt": rfc3339(node.meta.created_at),
        "UpdatedAt": rfc3339(node.meta.updated_at),
        "Spec": {
            "Name": node.spec.name,
            "Labels": node.spec.labels,
            "Role": node.spec.desired_role.to_string(),
            "Availability": node.spec.availability.as_str(),
        },
        "Description": {
            "Hostname": d.hostname,
            "Platform": {"Architecture": d.architecture, "OS": d.os},
            "Resources": {"NanoCPUs": d.nano_cpus, "MemoryBytes": d.memory_bytes},
            "Engine": {"EngineVersion": d.engine_version, "Labels": d.engine_labels, "Plugins": []},
        },
        "Status": {
            "State": node.status.state.as_str(),
            "Message": node.status.message,
            "Addr": node.status.addr,
        },
    });
    if let Some(ms) = &node.manager_status {
        let leader = raft.leader == ms.raft_id;
        let reachable = leader
            || ms.raft_id == raft.id
            || !(raft.unreachable.contains(&ms.raft_id)
                || !raft.voters.contains(&ms.raft_id)
                || node.status.state == NodeState::Down);
        value["ManagerStatus"] = json!({
            "Leader": leader,
            "Reachability": if reachable { "reachable" } else { "unreachable" },
            "Addr": ms.addr,
        });
    }
    value
}
