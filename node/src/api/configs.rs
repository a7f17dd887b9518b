//! `/configs` (create, list, inspect, update labels, remove) and `/secrets`, in the Engine
//! API's shapes. Secrets wait for the store's encryption at rest: covey holds none, so
//! their list is empty and creating one says why it is refused.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::filters::{Filters, FiltersQuery};
use super::time::rfc3339;
use crate::daemon::Node as Daemon;
use crate::manager::objects::config::MAX_CONFIG_SIZE;
use crate::manager::objects::{Config, ConfigSpec, Service};
use crate::manager::store::{Action, Meta};
use crate::manager::{ca, Manager};

type Result<T> = std::result::Result<T, ApiError>;

/// The Engine API's `ConfigSpec` as a request carries it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SpecRequest {
    name: String,
    labels: Option<std::collections::BTreeMap<String, String>>,
    data: Option<String>,
    templating: Option<Value>,
}

pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<FiltersQuery>,
) -> Result<Json<Vec<Value>>> {
    let manager = super::lookup::manager(&daemon).await?;
    let filters = Filters::parse(q.filters.as_deref(), &["id", "name", "names", "label"])?;
    let mut configs: Vec<Config> = manager
        .store
        .list::<Config>()?
        .into_iter()
        .filter(|c| {
            filters.any("id", |v| c.id.starts_with(v))
                && filters.any("name", |v| c.spec.name.starts_with(v))
                && filters.any("names", |v| c.spec.name == v)
                && filters.labels(&c.spec.labels)
        })
        .collect();
    configs.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(Json(configs.iter().map(config_json).collect()))
}

pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    Ok(Json(config_json(&find(&manager, &id)?)))
}

pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    let manager = super::lookup::manager(&daemon).await?;
    let req: SpecRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid config spec: {e}")))?;
    if req.templating.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(ApiError::bad_request(
            "config templating is not supported by covey",
        ));
    }
    super::lookup::check_name("config", &req.name, 64)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(req.data.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("invalid config data (base64): {e}")))?;
    if data.is_empty() || data.len() > MAX_CONFIG_SIZE {
        return Err(ApiError::bad_request(format!(
            "config data must be larger than 0 and less than {MAX_CONFIG_SIZE} bytes"
        )));
    }
    if manager
        .store
        .list::<Config>()?
        .iter()
        .any(|c| c.spec.name == req.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("config {} already exists", req.name),
        ));
    }
    let config = Config {
        id: ca::new_id(),
        meta: Meta::default(),
        spec: ConfigSpec {
            name: req.name,
            labels: req.labels.unwrap_or_default(),
            data,
        },
    };
    manager
        .store
        .propose(vec![Action::create(&config)?])
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "ID": config.id }))))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UpdateQuery {
    version: Option<u64>,
}

/// Only labels change: a config's name and data are what tasks were given.
pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<UpdateQuery>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let manager = super::lookup::manager(&daemon).await?;
    let mut config = find(&manager, &id)?;
    if q.version != Some(config.meta.version) {
        return Err(ApiError::bad_request(format!(
            "update out of sequence: config {} is at version {}",
            config.spec.name, config.meta.version
        )));
    }
    let req: SpecRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid config spec: {e}")))?;
    let data = req
        .data
        .map(|d| base64::engine::general_purpose::STANDARD.decode(d))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid config data (base64): {e}")))?;
    if (!req.name.is_empty() && req.name != config.spec.name)
        || data.is_some_and(|d| d != config.spec.data)
    {
        return Err(ApiError::bad_request("only updates to Labels are allowed"));
    }
    config.spec.labels = req.labels.unwrap_or_default();
    manager
        .store
        .propose(vec![Action::update(&config)?])
        .await?;
    Ok(StatusCode::OK)
}

pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let manager = super::lookup::manager(&daemon).await?;
    let config = find(&manager, &id)?;
    let users: Vec<String> = manager
        .store
        .list::<Service>()?
        .into_iter()
        .filter(|s| references(s, &config.id))
        .map(|s| s.spec.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "config '{}' is in use by the following service: {}",
                config.spec.name,
                users.join(", ")
            ),
        ));
    }
    manager
        .store
        .propose(vec![Action::delete::<Config>(&config.id)])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `service` gives its tasks config `id`.
fn references(service: &Service, id: &str) -> bool {
    service
        .spec
        .task_template
        .container_spec
        .configs
        .iter()
        .any(|r| r.config_id == id)
}

fn find(manager: &Manager, key: &str) -> Result<Config> {
    super::lookup::find(manager, "config", key, |c: &Config, k| c.spec.name == k)
}

fn config_json(c: &Config) -> Value {
    json!({
        "ID": c.id,
        "Version": {"Index": c.meta.version},
        "CreatedAt": rfc3339(c.meta.created_at),
        "UpdatedAt": rfc3339(c.meta.updated_at),
        "Spec": {
            "Name": c.spec.name,
            "Labels": c.spec.labels,
            "Data": base64::engine::general_purpose::STANDARD.encode(&c.spec.data),
        },
    })
}

/// covey holds no secrets yet: the list is empty (as `stack rm` needs to see).
pub async fn list_secrets(State(daemon): State<Arc<Daemon>>) -> Result<Json<Vec<Value>>> {
    super::lookup::manager(&daemon).await?;
    Ok(Json(Vec::new()))
}

pub async fn secrets_unsupported() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "secrets are not supported by covey yet: they wait for the store's encryption at rest",
    )
}
