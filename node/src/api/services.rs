//! `/services` and `/tasks`: create, list, inspect, update and remove services, and list
//! their tasks, in the Engine API's shapes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::filters::Filters;
use super::time::rfc3339;
use crate::daemon::Node as Daemon;
use crate::manager::objects::service::{EndpointMode, FileReference, Platform, PublishMode};
use crate::manager::objects::update::{UpdateState, UpdateStatus};
use crate::manager::objects::{
    Config, Node, Secret, Service, ServiceMode, ServiceSpec, Task, TaskState,
};
use crate::manager::store::{now_secs, Action, Meta};
use crate::manager::{ca, Manager};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    filters: Option<String>,
    status: Option<bool>,
}

pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Value>>> {
    let manager = super::lookup::manager(&daemon).await?;
    let filters = Filters::parse(q.filters.as_deref(), &["id", "name", "label", "mode"])?;
    let tasks = counted_tasks(&manager)?;
    let mut services: Vec<Service> = manager
        .store
        .list::<Service>()?
        .into_iter()
        .filter(|s| {
            filters.any("id", |v| s.id.starts_with(v))
                && filters.any("name", |v| s.spec.name.starts_with(v))
                && filters.any("mode", |v| {
                    v == if s.spec.mode.is_global() {
                        "global"
                    } else {
                        "replicated"
                    }
                })
                && filters.labels(&s.spec.labels)
        })
        .collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let with_status = q.status.unwrap_or(false);
    Ok(Json(
        services
            .iter()
            .map(|s| service_json(s, with_status.then_some(tasks.as_slice())))
            .collect(),
    ))
}

/// A service by id, name or unique id prefix, as the docker CLI lets users name it.
pub(super) fn find(manager: &Manager, name: &str) -> Result<Service> {
    super::lookup::find(manager, "service", name, |s: &Service, key| {
        s.spec.name == key
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct InspectQuery {
    insert_defaults: Option<bool>,
}

pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(_q): Query<InspectQuery>,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    let service = find(&manager, &id)?;
    let tasks = counted_tasks(&manager)?;
    Ok(Json(service_json(&service, Some(&tasks))))
}

/// The tasks a service's status counts (see `counted_tasks`).
fn counted_tasks(manager: &Manager) -> Result<Vec<Task>> {
    let tasks = manager.store.list::<Task>()?;
    let nodes = manager.store.list::<Node>()?;
    Ok(
        crate::manager::objects::service::counted_tasks(&tasks, &nodes)
            .into_iter()
            .cloned()
            .collect(),
    )
}

pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    let manager = super::lookup::manager(&daemon).await?;
    let mut spec = parse_spec(&body)?;
    if spec.name.is_empty() {
        spec.name = generated_name(&manager)?;
    }
    validate(&spec)?;
    attach(&manager, &mut spec, "")?;
    if manager
        .store
        .list::<Service>()?
        .iter()
        .any(|s| s.spec.name == spec.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("service {} already exists", spec.name),
        ));
    }
    let mut warnings = Vec::new();
    if spec.task_template.placement.platforms.is_empty() {
        record_platforms(&daemon, &mut spec, &mut warnings).await;
    }
    let service = Service {
        id: ca::new_id(),
        meta: Meta::default(),
        spec,
        previous_spec: None,
        previous_spec_version: None,
        update_status: None,
        spec_version: 1,
        endpoint: Default::default(),
    };
    manager
        .store
        .propose(vec![Action::create(&service)?])
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"ID": service.id, "Warnings": warnings})),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UpdateQuery {
    version: Option<u64>,
    /// `previous`: back to the spec before the last update (`service rollback`).
    rollback: Option<String>,
}

pub async fn update(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<UpdateQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    let mut service = find(&manager, &id)?;
    let version = q.version.ok_or_else(|| {
        ApiError::bad_request("invalid service version: the version parameter is required")
    })?;
    if version != service.meta.version {
        return Err(ApiError::bad_request(format!(
            "update out of sequence: service {} is at version {}, not {version}",
            service.spec.name, service.meta.version
        )));
    }
    let rollback = match q.rollback.as_deref() {
        None | Some("") => false,
        Some("previous") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid rollback {other:?}: expected previous"
            )))
        }
    };
    let mut spec = if rollback {
        service.previous_spec.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "service {} does not have a previous spec",
                service.spec.name
            ))
        })?
    } else {
        parse_spec(&body)?
    };
    if spec.name.is_empty() {
        spec.name = service.spec.name.clone();
    }
    if spec.name != service.spec.name {
        return Err(ApiError::bad_request("renaming services is not supported"));
    }
    validate(&spec)?;
    attach(&manager, &mut spec, &service.id)?;
    if std::mem::discriminant(&spec.mode) != std::mem::discriminant(&service.spec.mode) {
        return Err(ApiError::bad_request("service mode change is not allowed"));
    }
    // A new image offers its own platforms, unless the client said which (the docker CLI
    // does; covey's sends back the old ones).
    let old = &service.spec.task_template;
    let mut warnings = Vec::new();
    if !rollback
        && spec.task_template.container_spec.image != old.container_spec.image
        && spec.task_template.placement.platforms == old.placement.platforms
    {
        spec.task_template.placement.platforms.clear();
        record_platforms(&daemon, &mut spec, &mut warnings).await;
    }
    let changed = spec.task_template != service.spec.task_template;
    let now = now_secs();
    let version = if rollback {
        // Back to the earlier spec's own version: its tasks still running are up to
        // date, only those of the update are replaced.
        service
            .previous_spec_version
            .filter(|_| changed)
            .unwrap_or_else(|| service.next_spec_version(changed))
    } else {
        service.next_spec_version(changed)
    };
    service.update_status = if spec.mode.is_job() {
        // A job's new spec is a new run, not a rolling update: no updater follows it.
        None
    } else if rollback {
        Some(UpdateStatus::new(
            UpdateState::RollbackStarted,
            now,
            "manually requested rollback",
        ))
    } else if changed {
        Some(UpdateStatus::new(
            UpdateState::Updating,
            now,
            "update in progress",
        ))
    } else {
        // As Swarm: the status is cleared; should tasks of an older spec remain (a
        // paused update), the updater starts again on them.
        None
    };
    service.previous_spec = Some(std::mem::replace(&mut service.spec, spec));
    service.previous_spec_version = Some(std::mem::replace(&mut service.spec_version, version));
    manager
        .store
        .propose(vec![Action::update(&service)?])
        .await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

/// Records the platforms the service's image offers, so that the scheduler places its
/// tasks only where they can run. An image the registry does not answer for is a warning,
/// not an error: nodes may reach a registry this manager cannot.
async fn record_platforms(daemon: &Daemon, spec: &mut ServiceSpec, warnings: &mut Vec<String>) {
    let image = spec.task_template.container_spec.image.clone();
    let resolved = match image.parse::<covey_images::reference::Reference>() {
        Ok(reference) => tokio::time::timeout(
            std::time::Duration::from_secs(10),
            daemon.images.resolve(&reference, None),
        )
        .await
        .map_err(|_| "the registry did not answer within 10 s".to_string())
        .and_then(|r| r.map_err(|e| e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    match resolved {
        Ok(resolved) => {
            spec.task_template.placement.platforms = resolved
                .platforms
                .into_iter()
                .map(|p| Platform {
                    architecture: p.architecture,
                    os: p.os,
                })
                .collect();
        }
        Err(e) => warnings.push(format!(
            "image {image} could not be accessed on a registry to record its platforms ({e}): its tasks may be placed on nodes that cannot run it"
        )),
    }
}

pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let manager = super::lookup::manager(&daemon).await?;
    let service = find(&manager, &id)?;
    manager
        .store
        .propose(vec![Action::delete::<Service>(&service.id)])
        .await?;
    Ok(StatusCode::OK)
}

/// A spec from a client; a field of the wrong shape is named by its path
/// (`UpdateConfig.Order: unknown variant ...`).
fn parse_spec(body: &[u8]) -> Result<ServiceSpec> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("invalid service spec: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid service spec: {path}: {inner}"))
        }
    })
}

/// What the store must never hold: a spec no node could run, named so the user can fix it.
fn validate(spec: &ServiceSpec) -> Result<()> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    super::lookup::check_name("service", &spec.name, 63)?;
    let task = &spec.task_template;
    let image = &task.container_spec.image;
    if image.is_empty() {
        return bad("invalid ContainerSpec: image reference must be provided".into());
    }
    if let Err(e) = image.parse::<covey_images::reference::Reference>() {
        return bad(format!("invalid image reference {image:?}: {e}"));
    }
    if let Err(e) = crate::manager::scheduler::validate_constraints(&task.placement.constraints) {
        return bad(e);
    }
    // Volumes are made by the nodes that mount them: here only their names are checked.
    let volume = |name: &str| {
        crate::volumes::check_name(name)
            .map(|()| std::path::PathBuf::new())
            .map_err(|e| e.to_string())
    };
    if let Err(e) = crate::agent::executor::container_config(task, &volume) {
        return bad(format!("invalid ContainerSpec: {e}"));
    }
    if spec.mode.is_job()
        && task.restart_condition() == crate::manager::objects::service::RestartCondition::Any
        && task
            .restart_policy
            .as_ref()
            .is_some_and(|p| p.condition.is_some())
    {
        return bad("invalid RestartPolicy: restart condition any is not allowed for jobs".into());
    }
    for (name, config) in [
        ("UpdateConfig", &spec.update_config),
        ("RollbackConfig", &spec.rollback_config),
    ] {
        if let Some(Err(e)) = config.as_ref().map(|c| c.check(name)) {
            return bad(e);
        }
    }
    if let Some(pref) = task
        .placement
        .preferences
        .iter()
        .filter_map(|p| p.spread.as_ref())
        .find(|s| {
            !s.spread_descriptor.starts_with("node.labels.")
                && !s.spread_descriptor.starts_with("engine.labels.")
        })
    {
        return bad(format!(
            "invalid placement preference spread={}: only node.labels.* can be spread over",
            pref.spread_descriptor
        ));
    }
    Ok(())
}

/// Resolves the networks `spec` names to their ids (`host` stays: the node's own), and
/// checks its published ports against the other services' (`own`: the service updated).
fn attach(manager: &Manager, spec: &mut ServiceSpec, own: &str) -> Result<()> {
    for attachment in &mut spec.task_template.networks {
        if attachment.target == "host" {
            continue;
        }
        let network = super::networks::find(manager, &attachment.target)?;
        if network.spec.ingress {
            return Err(ApiError::bad_request(format!(
                "service cannot be explicitly attached to the ingress network {:?}",
                network.spec.name
            )));
        }
        attachment.target = network.id;
    }
    let mut seen = std::collections::HashSet::new();
    for port in spec.ports() {
        if port.target_port == 0 || port.target_port > 65535 || port.published_port > 65535 {
            return Err(ApiError::bad_request(format!(
                "invalid port {}:{}: ports are 1-65535",
                port.published_port, port.target_port
            )));
        }
        if port.publish_mode == PublishMode::Ingress && spec.endpoint_mode() == EndpointMode::Dnsrr
        {
            return Err(ApiError::bad_request(
                "port published with ingress mode can't be used with dnsrr mode",
            ));
        }
        if port.published_port != 0 && !seen.insert((port.protocol, port.published_port)) {
            return Err(ApiError::bad_request(format!(
                "duplicate published port {}/{}",
                port.published_port,
                port.protocol.as_str()
            )));
        }
    }
    if spec
        .task_template
        .networks
        .iter()
        .any(|n| n.target == "host")
        && spec.uses_ingress()
    {
        return Err(ApiError::bad_request(
            "a service on the host network cannot publish ports through the routing mesh: use mode=host",
        ));
    }
    let cs = &mut spec.task_template.container_spec;
    let configs = manager.store.list::<Config>()?.into_iter();
    let configs = configs.map(|c| (c.id, c.spec.annotations.name));
    resolve_files("config", &mut cs.configs, configs, "/")?;
    let secrets = manager.store.list::<Secret>()?.into_iter();
    let secrets = secrets.map(|s| (s.id, s.spec.annotations.name));
    resolve_files("secret", &mut cs.secrets, secrets, "/run/secrets/")?;
    let mut taken = crate::manager::allocator::Ports::default();
    for other in manager.store.list::<Service>()? {
        if other.id != own {
            taken.reserve(&other.spec.name, &other.endpoint.ports);
            taken.reserve(&other.spec.name, other.spec.ports());
        }
    }
    for port in spec
        .ports()
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
    {
        if let Some(owner) = taken.owner(&spec.name, port) {
            return Err(ApiError::bad_request(format!(
                "port '{}' is already in use by service '{owner}' as an ingress port",
                port.published_port
            )));
        }
    }
    Ok(())
}

/// Checks each config or secret (`what`) the tasks are given: it exists among `known`
/// (id, name) by id, else by name, as a file (`File`; credential specs are not
/// supported), with a numeric owner. Stores it by id, its target absolute: a relative one
/// (by default its name) is under `dir`, as Swarm puts configs under `/` and secrets
/// under `/run/secrets/`.
fn resolve_files<R: FileReference>(
    what: &str,
    refs: &mut [R],
    known: impl Iterator<Item = (String, String)>,
    dir: &str,
) -> Result<()> {
    let known: Vec<(String, String)> = known.collect();
    for r in refs {
        let (id, name, file) = r.parts();
        let (found_id, found_name) = known
            .iter()
            .find(|(i, _)| i == id)
            .or_else(|| known.iter().find(|(_, n)| n == name))
            .ok_or_else(|| {
                let name = if name.is_empty() { &*id } else { &*name };
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found: {name}"))
            })?;
        *id = found_id.clone();
        *name = found_name.clone();
        let Some(file) = file.as_mut() else {
            return Err(ApiError::bad_request(format!(
                "{what} {name}: only {what}s given as files are supported by covey"
            )));
        };
        if file.name.is_empty() {
            file.name = name.clone();
        }
        if !file.name.starts_with('/') {
            file.name = format!("{dir}{}", file.name);
        }
        for (field, n) in [("UID", &file.uid), ("GID", &file.gid)] {
            if !n.is_empty() && n.parse::<u32>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "{what} {name}: invalid {field} {n:?}: a number is expected"
                )));
            }
        }
    }
    Ok(())
}

/// Docker's form of a generated name (adjective_surname), unique among services.
fn generated_name(manager: &Manager) -> Result<String> {
    let taken: Vec<String> = manager
        .store
        .list::<Service>()?
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    Ok(crate::containers::names::generate(|n| {
        taken.iter().any(|t| t == n)
    }))
}

/// The Engine API's `Endpoint`: the spec, and what the allocator gave.
fn endpoint_json(service: &Service) -> Value {
    let spec = service.spec.endpoint_spec.clone().unwrap_or_default();
    let mut value = json!({"Spec": spec});
    value["Spec"]["Mode"] = json!(service.spec.endpoint_mode());
    if !service.endpoint.ports.is_empty() {
        value["Ports"] = json!(service.endpoint.ports);
    }
    if !service.endpoint.virtual_ips.is_empty() {
        value["VirtualIPs"] = json!(service.endpoint.virtual_ips);
    }
    value
}

fn service_json(service: &Service, tasks: Option<&[Task]>) -> Value {
    let mut value = json!({
        "ID": service.id,
        "Version": {"Index": service.meta.version},
        "CreatedAt": rfc3339(service.meta.created_at),
        "UpdatedAt": rfc3339(service.meta.updated_at),
        "Spec": service.spec,
        "Endpoint": endpoint_json(service),
    });
    if let Some(previous) = &service.previous_spec {
        value["PreviousSpec"] = json!(previous);
    }
    if let Some(status) = &service.update_status {
        value["UpdateStatus"] = update_status_json(status);
    }
    if let Some(tasks) = tasks {
        let counts = service.task_counts(tasks);
        value["ServiceStatus"] = json!({
            "RunningTasks": counts.running,
            "DesiredTasks": counts.desired,
            "CompletedTasks": counts.completed,
        });
        if let ServiceMode::ReplicatedJob { .. } = &service.spec.mode {
            value["JobStatus"] = json!({
                "JobIteration": {"Index": service.spec_version},
                "LastExecution": rfc3339(service.meta.updated_at),
            });
        }
    }
    value
}

/// The Engine API's `UpdateStatus`.
fn update_status_json(status: &UpdateStatus) -> Value {
    let mut value = json!({
        "State": status.state.as_str(),
        "StartedAt": rfc3339(status.started_at),
        "Message": status.message,
    });
    if let Some(at) = status.completed_at {
        value["CompletedAt"] = json!(rfc3339(at));
    }
    value
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TasksQuery {
    filters: Option<String>,
}

pub async fn tasks(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<TasksQuery>,
) -> Result<Json<Vec<Value>>> {
    let manager = super::lookup::manager(&daemon).await?;
    let filters = Filters::parse(
        q.filters.as_deref(),
        &[
            "id",
            "name",
            "service",
            "node",
            "desired-state",
            "label",
            "_up-to-date",
        ],
    )?;
    let services = manager.store.list::<Service>()?;
    let nodes = manager.store.list::<Node>()?;
    let service_matches = |task: &Task, v: &str| {
        task.service_id == v
            || task.service_name == v
            || (v.len() >= 3 && task.service_id.starts_with(v))
    };
    let node_matches = |task: &Task, v: &str| {
        task.node_id == v
            || nodes
                .iter()
                .any(|n| n.id == task.node_id && (n.description.hostname == v || n.spec.name == v))
            || (v == "self" && task.node_id == manager.node_id)
    };
    for wanted in ["service"] {
        // A filter naming a service that does not exist is the user's error, as dockerd says.
        if !filters.any(wanted, |v| {
            services
                .iter()
                .any(|s| s.id == v || s.spec.name == v || s.id.starts_with(v))
        }) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "service not found in the filters given",
            ));
        }
    }
    let up_to_date = |task: &Task| {
        services
            .iter()
            .any(|s| s.id == task.service_id && s.spec_version == task.spec_version)
    };
    let desired_ok = |task: &Task, v: &str| match v.parse::<TaskState>() {
        Ok(state) => task.desired_state == state,
        Err(_) => false,
    };
    let mut tasks: Vec<Task> = manager
        .store
        .list::<Task>()?
        .into_iter()
        .filter(|t| {
            filters.any("id", |v| t.id.starts_with(v))
                && filters.any("name", |v| t.name() == v)
                && filters.any("service", |v| service_matches(t, v))
                && filters.any("node", |v| node_matches(t, v))
                && filters.any("desired-state", |v| desired_ok(t, v))
                && filters.labels(&t.spec.container_spec.labels)
                // The docker CLI's own filter, while it follows an update: tasks of the
                // service's current spec.
                && filters.any("_up-to-date", |v| v != "true" || up_to_date(t))
        })
        .collect();
    tasks.sort_by(|a, b| {
        (
            a.service_name.as_str(),
            a.slot,
            a.node_id.as_str(),
            b.meta.created_at,
        )
            .cmp(&(
                b.service_name.as_str(),
                b.slot,
                b.node_id.as_str(),
                a.meta.created_at,
            ))
    });
    Ok(Json(tasks.iter().map(task_json).collect()))
}

pub async fn task(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    Ok(Json(task_json(&find_task(&manager, &id)?)))
}

/// A task by id or unique id prefix.
pub(super) fn find_task(manager: &Manager, id: &str) -> Result<Task> {
    super::lookup::find(manager, "task", id, |_: &Task, _| false)
}

fn task_json(task: &Task) -> Value {
    let s = &task.status;
    let mut status = json!({
        "Timestamp": rfc3339(s.timestamp),
        "State": s.state.as_str(),
        "Message": s.message,
        "PortStatus": {},
    });
    if !s.err.is_empty() {
        status["Err"] = json!(s.err);
    }
    if !s.container_id.is_empty() {
        status["ContainerStatus"] = json!({
            "ContainerID": s.container_id,
            "PID": s.pid,
            "ExitCode": s.exit_code,
        });
    }
    let mut value = json!({
        "ID": task.id,
        "Version": {"Index": task.meta.version},
        "CreatedAt": rfc3339(task.meta.created_at),
        "UpdatedAt": rfc3339(task.meta.updated_at),
        // Swarm's tasks carry their containers' labels (`stack ps` filters on them).
        "Labels": task.spec.container_spec.labels,
        "Spec": task.spec,
        "ServiceID": task.service_id,
        "Status": status,
        "DesiredState": task.desired_state.as_str(),
    });
    if task.slot > 0 {
        value["Slot"] = json!(task.slot);
    }
    if !task.networks.is_empty() {
        let attachments: Vec<Value> = task
            .networks
            .iter()
            .map(|a| {
                json!({
                    "Network": {
                        "ID": a.network_id,
                        "Spec": {"Name": a.name, "Ingress": a.ingress, "DriverConfiguration": {"Name": "overlay"}},
                        "DriverState": {"Name": "overlay", "Options": {"com.docker.network.driver.overlay.vxlanid_list": a.vni.to_string()}},
                        "IPAMOptions": {"Driver": {"Name": "default"}, "Configs": [{"Subnet": a.subnet.to_string(), "Gateway": a.gateway.to_string()}]},
                    },
                    "Addresses": [a.address.to_string()],
                })
            })
            .collect();
        value["NetworksAttachments"] = json!(attachments);
    }
    if !task.node_id.is_empty() {
        value["NodeID"] = json!(task.node_id);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_field_is_named_by_its_path() {
        let err = |body: &str| parse_spec(body.as_bytes()).map(|_| ()).unwrap_err().message;
        let e = err(r#"{"Name": "web", "RollbackConfig": {"Order": "sideways"}}"#);
        assert!(
            e.starts_with("invalid service spec: RollbackConfig.Order: unknown variant `sideways`"),
            "{e}"
        );
        let e = err(r#"{"Name": "web", "UpdateConfig": {"Parallelism": -1}}"#);
        assert!(e.contains("UpdateConfig.Parallelism"), "{e}");
        assert!(err("[").starts_with("invalid service spec: "));
        let mut spec = parse_spec(
            br#"{"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}"#,
        )
        .expect("a spec");
        spec.update_config = Some(crate::manager::objects::update::UpdateConfig {
            monitor: Some(-1),
            ..Default::default()
        });
        let e = validate(&spec).unwrap_err().message;
        assert_eq!(e, "invalid UpdateConfig: Monitor cannot be negative");
    }
}
