//! `/configs` and `/secrets` (create, list, inspect, update labels, remove), in the Engine
//! API's shapes. The two are alike, so one set of handlers serves both through [`Blob`];
//! they differ in that a secret's data is sealed under the cluster data key before it is
//! proposed and is never shown again.

use std::collections::BTreeMap;
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
use crate::manager::objects::config::{Annotations, MAX_CONFIG_SIZE};
use crate::manager::objects::{Config, ConfigSpec, Secret, Service};
use crate::manager::store::{Action, Meta, Object};
use crate::manager::{ca, Manager};

type Result<T> = std::result::Result<T, ApiError>;

/// What `/configs` and `/secrets` serve: named data whose labels alone change once made.
pub trait Blob: Object {
    /// "config" or "secret", in messages.
    const NOUN: &'static str;
    fn annotations(&self) -> &Annotations;
    fn annotations_mut(&mut self) -> &mut Annotations;
    /// The data as inspect shows it (base64), if it is shown.
    fn shown_data(&self) -> Option<String>;
    /// Whether `service`'s tasks are given the object `id`.
    fn used_by(service: &Service, id: &str) -> bool;
    /// Whether an update may carry `data`: the data the object holds, if it can tell.
    fn same_data(&self, data: &[u8]) -> bool;
    fn make(
        manager: &Manager,
        annotations: Annotations,
        req: SpecRequest,
        data: Vec<u8>,
    ) -> Result<Self>;

    fn name(&self) -> &str {
        &self.annotations().name
    }
}

impl Blob for Config {
    const NOUN: &'static str = "config";
    fn annotations(&self) -> &Annotations {
        &self.spec.annotations
    }
    fn annotations_mut(&mut self) -> &mut Annotations {
        &mut self.spec.annotations
    }
    fn shown_data(&self) -> Option<String> {
        Some(base64::engine::general_purpose::STANDARD.encode(&self.spec.data))
    }
    fn used_by(service: &Service, id: &str) -> bool {
        let spec = &service.spec.task_template.container_spec;
        spec.configs.iter().any(|r| r.config_id == id)
    }
    fn same_data(&self, data: &[u8]) -> bool {
        self.spec.data == data
    }
    fn make(
        _: &Manager,
        annotations: Annotations,
        req: SpecRequest,
        data: Vec<u8>,
    ) -> Result<Self> {
        if req.templating.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(ApiError::bad_request(
                "config templating is not supported by covey",
            ));
        }
        Ok(Config {
            id: ca::new_id(),
            meta: Meta::default(),
            spec: ConfigSpec { annotations, data },
        })
    }
}

impl Blob for Secret {
    const NOUN: &'static str = "secret";
    fn annotations(&self) -> &Annotations {
        &self.spec.annotations
    }
    fn annotations_mut(&mut self) -> &mut Annotations {
        &mut self.spec.annotations
    }
    /// Never, as Docker's.
    fn shown_data(&self) -> Option<String> {
        None
    }
    fn used_by(service: &Service, id: &str) -> bool {
        let spec = &service.spec.task_template.container_spec;
        spec.secrets.iter().any(|r| r.secret_id == id)
    }
    /// A secret's data is never compared (that would open it): any is refused, as Swarm.
    fn same_data(&self, _: &[u8]) -> bool {
        false
    }
    fn make(
        manager: &Manager,
        annotations: Annotations,
        req: SpecRequest,
        data: Vec<u8>,
    ) -> Result<Self> {
        for (field, value) in [("Driver", &req.driver), ("Templating", &req.templating)] {
            if value.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_request(format!(
                    "{field} for secrets is not supported by covey"
                )));
            }
        }
        let key = manager.data_key.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this manager has no cluster data key to seal secrets with (its swarm was made before covey had secrets)",
            )
        })?;
        Secret::seal(ca::new_id(), annotations, &data, key)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

/// The Engine API's `ConfigSpec` or `SecretSpec` as a request carries it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpecRequest {
    name: String,
    labels: Option<BTreeMap<String, String>>,
    data: Option<String>,
    templating: Option<Value>,
    driver: Option<Value>,
}

pub async fn list<T: Blob>(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<FiltersQuery>,
) -> Result<Json<Vec<Value>>> {
    let manager = super::lookup::manager(&daemon).await?;
    let filters = Filters::parse(q.filters.as_deref(), &["id", "name", "names", "label"])?;
    let mut all: Vec<T> = manager
        .store
        .list::<T>()?
        .into_iter()
        .filter(|c| {
            filters.any("id", |v| c.id().starts_with(v))
                && filters.any("name", |v| c.name().starts_with(v))
                && filters.any("names", |v| c.name() == v)
                && filters.labels(&c.annotations().labels)
        })
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Json(all.iter().map(to_json).collect()))
}

pub async fn inspect<T: Blob>(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    Ok(Json(to_json(&find::<T>(&manager, &id)?)))
}

pub async fn create<T: Blob>(
    State(daemon): State<Arc<Daemon>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    let noun = T::NOUN;
    let manager = super::lookup::manager(&daemon).await?;
    let mut req: SpecRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid {noun} spec: {e}")))?;
    super::lookup::check_name(noun, &req.name, 64)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(req.data.take().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("invalid {noun} data (base64): {e}")))?;
    if data.is_empty() || data.len() > MAX_CONFIG_SIZE {
        return Err(ApiError::bad_request(format!(
            "{noun} data must be larger than 0 and less than {MAX_CONFIG_SIZE} bytes"
        )));
    }
    if manager
        .store
        .list::<T>()?
        .iter()
        .any(|c| c.name() == req.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{noun} {} already exists", req.name),
        ));
    }
    let annotations = Annotations {
        name: std::mem::take(&mut req.name),
        labels: req.labels.take().unwrap_or_default(),
    };
    let made = T::make(&manager, annotations, req, data)?;
    manager.store.propose(vec![Action::create(&made)?]).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ID": made.id() }))))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UpdateQuery {
    version: Option<u64>,
}

/// Only labels change: the name and data are what tasks were given.
pub async fn update<T: Blob>(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<UpdateQuery>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let noun = T::NOUN;
    let manager = super::lookup::manager(&daemon).await?;
    let mut found = find::<T>(&manager, &id)?;
    if q.version != Some(found.meta().version) {
        return Err(ApiError::bad_request(format!(
            "update out of sequence: {noun} {} is at version {}",
            found.name(),
            found.meta().version
        )));
    }
    let req: SpecRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid {noun} spec: {e}")))?;
    let data = req
        .data
        .map(|d| base64::engine::general_purpose::STANDARD.decode(d))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid {noun} data (base64): {e}")))?;
    if (!req.name.is_empty() && req.name != found.name())
        || data.is_some_and(|d| !found.same_data(&d))
    {
        return Err(ApiError::bad_request("only updates to Labels are allowed"));
    }
    found.annotations_mut().labels = req.labels.unwrap_or_default();
    manager.store.propose(vec![Action::update(&found)?]).await?;
    Ok(StatusCode::OK)
}

pub async fn remove<T: Blob>(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let manager = super::lookup::manager(&daemon).await?;
    let found = find::<T>(&manager, &id)?;
    let users: Vec<String> = manager
        .store
        .list::<Service>()?
        .into_iter()
        .filter(|s| T::used_by(s, found.id()))
        .map(|s| s.spec.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} '{}' is in use by the following service: {}",
                T::NOUN,
                found.name(),
                users.join(", ")
            ),
        ));
    }
    manager
        .store
        .propose(vec![Action::delete::<T>(found.id())])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn find<T: Blob>(manager: &Manager, key: &str) -> Result<T> {
    super::lookup::find(manager, T::NOUN, key, |c: &T, k| c.name() == k)
}

fn to_json<T: Blob>(c: &T) -> Value {
    let meta = c.meta();
    let mut spec = json!({ "Name": c.name(), "Labels": c.annotations().labels });
    if let Some(data) = c.shown_data() {
        spec["Data"] = json!(data);
    }
    json!({
        "ID": c.id(),
        "Version": {"Index": meta.version},
        "CreatedAt": rfc3339(meta.created_at),
        "UpdatedAt": rfc3339(meta.updated_at),
        "Spec": spec,
    })
}
