//! `/volumes` (create, list, inspect, remove, prune): this node's named volumes, in the
//! Engine API's shapes. A volume in use by a container (running or not) stays.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::filters::{Filters, FiltersQuery};
use crate::containers::Containers;
use crate::daemon::Node as Daemon;
use crate::volumes::{Volume, VolumeError};

type Result<T> = std::result::Result<T, ApiError>;

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        let status = match e {
            VolumeError::NotFound(_) => StatusCode::NOT_FOUND,
            VolumeError::InvalidName(_) | VolumeError::Driver(_) | VolumeError::Option(_) => {
                StatusCode::BAD_REQUEST
            }
            VolumeError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn volume_json(v: &Volume) -> Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Scope": "local",
        "Options": {},
    })
}

/// The containers (ids) whose mounts use `v`.
fn users(containers: &Containers, v: &Volume) -> Vec<String> {
    containers
        .list(true)
        .into_iter()
        .filter(|c| {
            c.config.mounts.iter().any(|m| {
                matches!(m, covey_runtime::Mount::Bind { source, .. } if *source == v.mountpoint)
            })
        })
        .map(|c| c.id)
        .collect()
}

pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<FiltersQuery>,
) -> Result<Json<Value>> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &["name", "label", "dangling", "driver"],
    )?;
    let volumes: Vec<Value> = daemon
        .volumes
        .list()?
        .iter()
        .filter(|v| {
            filters.any("name", |f| v.name.contains(f))
                && filters.any("driver", |f| f == "local")
                && filters.labels(&v.labels)
                && filters.any("dangling", |f| {
                    let dangling = users(&daemon.containers, v).is_empty();
                    matches!((f, dangling), ("true" | "1", true) | ("false" | "0", false))
                })
        })
        .map(volume_json)
        .collect();
    Ok(Json(json!({ "Volumes": volumes, "Warnings": [] })))
}

pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(volume_json(&daemon.volumes.get(&name)?)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>)> {
    // No name: an anonymous volume, named as Docker names them.
    let name = match body.name.as_str() {
        "" => crate::volumes::anonymous_name(),
        n => n.to_string(),
    };
    let v = daemon.volumes.create(
        &name,
        &body.driver,
        &body.driver_opts.unwrap_or_default(),
        body.labels.unwrap_or_default(),
    )?;
    Ok((StatusCode::CREATED, Json(volume_json(&v))))
}

pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(q): Query<super::filters::ForceQuery>,
) -> Result<StatusCode> {
    let v = match daemon.volumes.get(&name) {
        Err(VolumeError::NotFound(_)) if q.force() => return Ok(StatusCode::NO_CONTENT),
        other => other?,
    };
    let users = users(&daemon.containers, &v);
    if !users.is_empty() {
        let short: Vec<&str> = users.iter().map(|id| &id[..id.len().min(12)]).collect();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("remove {name}: volume is in use - [{}]", short.join(", ")),
        ));
    }
    daemon.volumes.remove(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the volumes no container uses. Like Docker since API 1.42, only anonymous ones
/// unless `all=true` is among the filters.
pub async fn prune(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<FiltersQuery>,
) -> Result<Json<Value>> {
    let filters = Filters::parse(q.filters.as_deref(), &["label", "all"])?;
    let all = filters.is_true("all");
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for v in daemon.volumes.list()? {
        let anonymous = v.name.len() == 64 && v.name.chars().all(|c| c.is_ascii_hexdigit());
        if (!all && !anonymous) || !filters.labels(&v.labels) {
            continue;
        }
        if !users(&daemon.containers, &v).is_empty() {
            continue;
        }
        reclaimed += dir_size(&v.mountpoint);
        daemon.volumes.remove(&v.name)?;
        deleted.push(v.name);
    }
    Ok(Json(
        json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
