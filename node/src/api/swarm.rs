//! `/swarm`: init, join, leave, inspect and update, in the Engine API's shapes.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::time::rfc3339;
use crate::daemon::Node;
use crate::manager::ca::{JoinToken, RootCa};
use crate::manager::objects::{Cluster, ClusterSpec};
use crate::manager::store::Action;
use crate::swarm::{lock, InitOptions, JoinOptions};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitRequest {
    listen_addr: String,
    advertise_addr: String,
    force_new_cluster: bool,
    spec: Option<Value>,
}

pub async fn init(
    State(node): State<Arc<Node>>,
    Json(req): Json<InitRequest>,
) -> Result<Json<String>> {
    let spec = match &req.spec {
        Some(spec) => Some(spec_from_docker(spec, ClusterSpec::default())?),
        None => None,
    };
    let id = node
        .swarm
        .init(InitOptions {
            listen_addr: Some(req.listen_addr).filter(|s| !s.is_empty()),
            advertise_addr: Some(req.advertise_addr).filter(|s| !s.is_empty()),
            force_new_cluster: req.force_new_cluster,
            spec,
        })
        .await
        .map_err(ApiError::swarm)?;
    Ok(Json(id))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinRequest {
    listen_addr: String,
    advertise_addr: String,
    remote_addrs: Vec<String>,
    join_token: String,
}

pub async fn join(State(node): State<Arc<Node>>, Json(req): Json<JoinRequest>) -> Result<()> {
    node.swarm
        .join(JoinOptions {
            token: req.join_token,
            remote_addrs: req.remote_addrs,
            listen_addr: Some(req.listen_addr).filter(|s| !s.is_empty()),
            advertise_addr: Some(req.advertise_addr).filter(|s| !s.is_empty()),
        })
        .await
        .map_err(ApiError::swarm)
}

pub async fn leave(
    State(node): State<Arc<Node>>,
    Query(q): Query<super::filters::ForceQuery>,
) -> Result<()> {
    node.swarm.leave(q.force()).await.map_err(ApiError::swarm)
}

pub async fn inspect(State(node): State<Arc<Node>>) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&node).await?;
    let cluster = manager.cluster()?;
    let mut value = cluster_json(&cluster);
    // covey's own, beside the join tokens (clients that do not know it ignore it).
    value["DashboardToken"] = json!(cluster.dashboard_token);
    Ok(Json(value))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateQuery {
    version: Option<u64>,
    rotate_worker_token: Option<bool>,
    rotate_manager_token: Option<bool>,
    rotate_manager_unlock_key: Option<bool>,
    /// covey's own: a new dashboard token; browsers logged in with the old one are out.
    rotate_dashboard_token: Option<bool>,
}

pub async fn update(
    State(node): State<Arc<Node>>,
    Query(q): Query<UpdateQuery>,
    Json(spec): Json<Value>,
) -> Result<()> {
    let manager = super::lookup::manager(&node).await?;
    let mut cluster = manager.cluster()?;
    if let Some(version) = q.version {
        cluster.meta.version = version;
    }
    cluster.spec = spec_from_docker(&spec, cluster.spec.clone())?;
    let rotate_unlock_key = q.rotate_manager_unlock_key.unwrap_or(false);
    if rotate_unlock_key && !cluster.spec.autolock_managers {
        return Err(ApiError::bad_request(
            "cannot rotate the unlock key: autolock is not turned on",
        ));
    }
    cluster.unlock_key = match (&cluster.unlock_key, cluster.spec.autolock_managers) {
        (_, false) => None,
        (Some(key), true) if !rotate_unlock_key => Some(key.clone()),
        (_, true) => Some(lock::format_unlock_key(&lock::new_unlock_key().map_err(
            |e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        )?)),
    };
    if q.rotate_worker_token.unwrap_or(false) || q.rotate_manager_token.unwrap_or(false) {
        let root = RootCa::from_pem(&cluster.ca_cert_pem, None)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if q.rotate_worker_token.unwrap_or(false) {
            cluster.join_tokens.worker = JoinToken::generate(&root).to_string();
        }
        if q.rotate_manager_token.unwrap_or(false) {
            cluster.join_tokens.manager = JoinToken::generate(&root).to_string();
        }
    }
    if q.rotate_dashboard_token.unwrap_or(false) {
        cluster.dashboard_token = crate::manager::ca::new_dashboard_token();
    }
    manager
        .store
        .propose(vec![Action::update(&cluster)?])
        .await?;
    Ok(())
}

/// `GET /swarm/unlockkey`: the key that unlocks a restarted manager, empty if the swarm
/// is not autolocked.
pub async fn unlock_key(State(node): State<Arc<Node>>) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&node).await?;
    let cluster = manager.cluster()?;
    Ok(Json(
        json!({"UnlockKey": cluster.unlock_key.unwrap_or_default()}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct UnlockRequest {
    unlock_key: String,
}

/// `POST /swarm/unlock`.
pub async fn unlock(State(node): State<Arc<Node>>, Json(req): Json<UnlockRequest>) -> Result<()> {
    node.swarm.unlock(&req.unlock_key).await.map_err(|e| {
        let status = match e.downcast_ref::<lock::LockError>() {
            Some(lock::LockError::WrongKey | lock::LockError::BadKey(_)) => StatusCode::BAD_REQUEST,
            _ if e.to_string() == "swarm is not locked" => StatusCode::CONFLICT,
            _ => return ApiError::swarm(e),
        };
        ApiError::new(status, format!("{e:#}"))
    })
}

const NANOS: u64 = 1_000_000_000;

/// Docker's ClusterSpec onto ours: what covey has a place for; bad values refused.
fn spec_from_docker(spec: &Value, mut ours: ClusterSpec) -> Result<ClusterSpec> {
    if let Some(on) = spec["EncryptionConfig"]["AutoLockManagers"].as_bool() {
        ours.autolock_managers = on;
    }
    if let Some(name) = spec["Name"].as_str().filter(|n| !n.is_empty()) {
        ours.name = name.to_string();
    }
    if let Some(labels) = spec["Labels"].as_object() {
        ours.labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
    }
    if let Some(period) = spec["Dispatcher"]["HeartbeatPeriod"]
        .as_u64()
        .filter(|p| *p > 0)
    {
        if period < NANOS {
            return Err(ApiError::bad_request(
                "invalid dispatcher heartbeat period: it must be at least 1s",
            ));
        }
        ours.heartbeat_period_secs = period / NANOS;
    }
    if let Some(expiry) = spec["CAConfig"]["NodeCertExpiry"]
        .as_u64()
        .filter(|e| *e > 0)
    {
        if expiry < 3600 * NANOS {
            return Err(ApiError::bad_request(
                "invalid certificate expiry: it must be at least 1h",
            ));
        }
        ours.node_cert_expiry_secs = expiry / NANOS;
    }
    if let Some(n) = spec["Orchestration"]["TaskHistoryRetentionLimit"].as_u64() {
        ours.task_history_retention_limit = n;
    }
    if let Some(n) = spec["Raft"]["SnapshotInterval"].as_u64().filter(|n| *n > 0) {
        ours.snapshot_interval = n;
    }
    Ok(ours)
}

pub fn cluster_json(cluster: &Cluster) -> Value {
    let spec = &cluster.spec;
    json!({
        "ID": cluster.id,
        "Version": {"Index": cluster.meta.version},
        "CreatedAt": rfc3339(cluster.meta.created_at),
        "UpdatedAt": rfc3339(cluster.meta.updated_at),
        "Spec": {
            "Name": spec.name,
            "Labels": spec.labels,
            "Orchestration": {"TaskHistoryRetentionLimit": spec.task_history_retention_limit},
            "Raft": {
                "SnapshotInterval": spec.snapshot_interval,
                "KeepOldSnapshots": 0,
                "LogEntriesForSlowFollowers": 500,
                "ElectionTick": 30,
                "HeartbeatTick": 3
            },
            "Dispatcher": {"HeartbeatPeriod": spec.heartbeat_period_secs * NANOS},
            "CAConfig": {"NodeCertExpiry": spec.node_cert_expiry_secs * NANOS},
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": spec.autolock_managers}
        },
        "TLSInfo": {"TrustRoot": cluster.ca_cert_pem},
        "RootRotationInProgress": false,
        "DataPathPort": 4789,
        "JoinTokens": {"Worker": cluster.join_tokens.worker, "Manager": cluster.join_tokens.manager}
    })
}
