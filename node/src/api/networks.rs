//! `/networks`: the swarm's overlay networks (create, list, inspect, remove, prune), and
//! the node's own `host` and `none`, in the Engine API's shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use ipnet::Ipv4Net;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::error::ApiError;
use super::filters::{Filters, FiltersQuery};
use super::time::rfc3339;
use crate::daemon::Node as Daemon;
use crate::manager::allocator;
use crate::manager::objects::network::{NetworkSpec, OPT_ENCRYPTED};
use crate::manager::objects::{Network, Node, Service, Task};
use crate::manager::store::{Action, Meta};
use crate::manager::{ca, Manager};

type Result<T> = std::result::Result<T, ApiError>;

/// The node's own networks: a container on `host` shares the node's, one on `none` has
/// only loopback. There is no `bridge`: covey's containers are on `none` unless a
/// service puts them on an overlay.
const LOCAL: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// The option that shows a network's VXLAN id, as Docker names it.
const VXLAN_ID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";

pub async fn list(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<FiltersQuery>,
) -> Result<Json<Vec<Value>>> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &["id", "name", "driver", "scope", "label", "type", "dangling"],
    )?;
    let mut out: Vec<Value> = LOCAL.iter().map(|(n, d)| local_json(n, d)).collect();
    // A worker knows only its own networks, as Docker's do.
    if let Ok(manager) = daemon.swarm.manager().await {
        let services = manager.store.list::<Service>()?;
        let peers = Peers::read(&manager)?;
        let mut networks = manager.store.list::<Network>()?;
        networks.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        out.extend(networks.iter().map(|n| {
            let mut v = network_json(n, &peers);
            v["dangling"] = json!(users(n, &services).is_empty());
            v
        }));
    }
    out.retain(|v| {
        let s = |k: &str| v[k].as_str().unwrap_or_default();
        let labels: BTreeMap<String, String> =
            serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
        let builtin = LOCAL.iter().any(|(n, _)| *n == s("Name")) || v["Ingress"] == true;
        filters.any("id", |f| s("Id").starts_with(f))
            && filters.any("name", |f| s("Name").contains(f))
            && filters.any("driver", |f| s("Driver") == f)
            && filters.any("scope", |f| s("Scope") == f)
            && filters.labels(&labels)
            && filters.any("type", |f| (f == "builtin") == builtin)
            && filters.any("dangling", |f| {
                (f == "true" || f == "1") == (v["dangling"] == true && !builtin)
            })
    });
    for v in &mut out {
        if let Some(o) = v.as_object_mut() {
            o.remove("dangling");
        }
    }
    Ok(Json(out))
}

pub async fn inspect(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    if let Some((name, driver)) = LOCAL.iter().find(|(n, _)| *n == id || local_id(n) == id) {
        return Ok(Json(local_json(name, driver)));
    }
    let manager = super::lookup::manager(&daemon).await?;
    let network = find(&manager, &id)?;
    Ok(Json(network_json(&network, &Peers::read(&manager)?)))
}

pub async fn create(
    State(daemon): State<Arc<Daemon>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    let spec: NetworkSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network config: {e}")))?;
    let manager = super::lookup::manager(&daemon).await?;
    let existing = manager.store.list::<Network>()?;
    let spec = validate(spec, &existing)?;
    let network = Network {
        id: ca::new_id(),
        meta: Meta::default(),
        spec,
        allocation: None,
    };
    manager
        .store
        .propose(vec![Action::create(&network)?])
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": network.id, "Warning": ""})),
    ))
}

pub async fn remove(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if LOCAL.iter().any(|(n, _)| *n == id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{id} is a pre-defined network and cannot be removed"),
        ));
    }
    let manager = super::lookup::manager(&daemon).await?;
    let network = find(&manager, &id)?;
    let services = manager.store.list::<Service>()?;
    if let Some(user) = users(&network, &services).first() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("network {} is in use by service {user}", network.spec.name),
        ));
    }
    manager
        .store
        .propose(vec![Action::delete::<Network>(&network.id)])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(State(daemon): State<Arc<Daemon>>) -> Result<Json<Value>> {
    let manager = super::lookup::manager(&daemon).await?;
    let services = manager.store.list::<Service>()?;
    let unused: Vec<Network> = manager
        .store
        .list::<Network>()?
        .into_iter()
        .filter(|n| !n.spec.ingress && users(n, &services).is_empty())
        .collect();
    if !unused.is_empty() {
        let actions = unused
            .iter()
            .map(|n| Action::delete::<Network>(&n.id))
            .collect();
        manager.store.propose(actions).await?;
    }
    let names: Vec<&str> = unused.iter().map(|n| n.spec.name.as_str()).collect();
    Ok(Json(json!({ "NetworksDeleted": names })))
}

/// A network by id, name or unique id prefix.
pub(super) fn find(manager: &Manager, key: &str) -> Result<Network> {
    super::lookup::find(manager, "network", key, |n: &Network, k| n.spec.name == k)
}

/// The services on `network`, by name: those that name it, and, for `ingress`, those that
/// publish a port through the routing mesh.
fn users(network: &Network, services: &[Service]) -> Vec<String> {
    services
        .iter()
        .filter(|s| {
            s.spec
                .task_template
                .networks
                .iter()
                .any(|a| a.target == network.id)
                || (network.spec.ingress && s.spec.uses_ingress())
        })
        .map(|s| s.spec.name.clone())
        .collect()
}

/// What the store must never hold, refused naming what was wrong; the spec as stored.
fn validate(mut spec: NetworkSpec, existing: &[Network]) -> Result<NetworkSpec> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if spec.name.is_empty() {
        return bad("network name is required".into());
    }
    super::lookup::check_name("network", &spec.name, 63)?;
    if LOCAL.iter().any(|(n, _)| *n == spec.name)
        || existing.iter().any(|n| n.spec.name == spec.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("network with name {} already exists", spec.name),
        ));
    }
    match spec.driver.as_str() {
        "" | "overlay" => spec.driver = "overlay".into(),
        other => {
            return bad(format!(
                "network driver {other:?} is not supported by covey: swarm networks use the overlay driver (-d overlay)"
            ))
        }
    }
    if let Some(scope) = spec.extra.get("Scope").and_then(Value::as_str) {
        if !scope.is_empty() && scope != "swarm" {
            return bad(format!(
                "network scope {scope:?} is not supported by covey: overlay networks are swarm-scoped"
            ));
        }
    }
    for unsupported in ["EnableIPv6", "ConfigOnly"] {
        if spec.extra.get(unsupported) == Some(&Value::Bool(true)) {
            return bad(format!("{unsupported} is not supported by covey"));
        }
    }
    if spec
        .extra
        .get("ConfigFrom")
        .and_then(|c| c["Network"].as_str())
        .is_some_and(|n| !n.is_empty())
    {
        return bad("ConfigFrom is not supported by covey".into());
    }
    if spec.ingress && existing.iter().any(|n| n.spec.ingress) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ingress network already present",
        ));
    }
    if spec.options.contains_key(VXLAN_ID_LIST) {
        return bad(format!(
            "option {VXLAN_ID_LIST} is not supported by covey: VXLAN ids are allocated"
        ));
    }
    if let Some(v) = spec.options.get(OPT_ENCRYPTED) {
        if !matches!(v.as_str(), "" | "true") {
            return bad(format!("invalid value {v:?} for option encrypted"));
        }
    }
    match spec.ipam.driver.as_str() {
        "" | "default" => spec.ipam.driver = "default".into(),
        other => return bad(format!("IPAM driver {other:?} is not supported by covey")),
    }
    if spec.ipam.config.len() > 1 {
        return bad("only one IPAM config (one IPv4 subnet) is supported by covey".into());
    }
    if let Some(config) = spec.ipam.config.first_mut() {
        let subnet: Ipv4Net = config.subnet.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid subnet {:?}: expected an IPv4 CIDR such as 10.10.0.0/24",
                config.subnet
            ))
        })?;
        if subnet.prefix_len() > 29 {
            return bad(format!(
                "invalid subnet {subnet}: at most /29, so that it holds tasks"
            ));
        }
        let subnet = subnet.trunc();
        config.subnet = subnet.to_string();
        if !config.gateway.is_empty() {
            let gateway: std::net::Ipv4Addr = config.gateway.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gateway {:?}", config.gateway))
            })?;
            if !subnet.hosts().any(|h| h == gateway) {
                return bad(format!("gateway {gateway} is not in subnet {subnet}"));
            }
        }
        if !config.ip_range.is_empty() {
            return bad("--ip-range is not supported by covey".into());
        }
        let taken = existing.iter().find_map(|n| {
            let s = n
                .allocation
                .as_ref()
                .map(|a| a.subnet)
                .or_else(|| allocator::requested_subnet(n))?;
            allocator::overlaps(&s, &subnet).then(|| (n.spec.name.clone(), s))
        });
        if let Some((name, s)) = taken {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("invalid pool request: subnet {subnet} overlaps {s} of network {name}"),
            ));
        }
    } else if spec.ipam.config.is_empty() && !spec.ipam.options.is_empty() {
        return bad("IPAM options are not supported by covey".into());
    }
    Ok(spec)
}

/// The nodes each network has tasks on, for inspect's `Peers`.
struct Peers {
    by_network: BTreeMap<String, Vec<Value>>,
}

impl Peers {
    fn read(manager: &Manager) -> Result<Peers> {
        let nodes: BTreeMap<String, Node> = manager
            .store
            .list::<Node>()?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        let mut sets: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for task in manager.store.list::<Task>()? {
            if task.status.state.is_terminal() || task.node_id.is_empty() {
                continue;
            }
            for a in &task.networks {
                sets.entry(a.network_id.clone())
                    .or_default()
                    .insert(task.node_id.clone());
            }
        }
        let by_network = sets
            .into_iter()
            .map(|(net, ids)| {
                let peers = ids
                    .iter()
                    .filter_map(|id| nodes.get(id))
                    .map(|n| json!({"Name": n.description.hostname, "IP": n.status.addr}))
                    .collect();
                (net, peers)
            })
            .collect();
        Ok(Peers { by_network })
    }
}

fn network_json(n: &Network, peers: &Peers) -> Value {
    let mut options = n.spec.options.clone();
    let mut config = json!([]);
    if let Some(a) = &n.allocation {
        options.insert(VXLAN_ID_LIST.into(), a.vni.to_string());
        config = json!([{"Subnet": a.subnet.to_string(), "Gateway": a.gateway.to_string()}]);
    }
    let mut v = json!({
        "Name": n.spec.name,
        "Id": n.id,
        "Created": rfc3339(n.meta.created_at),
        "Scope": "swarm",
        "Driver": n.spec.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": n.spec.ipam.driver, "Options": null, "Config": config},
        "Internal": n.spec.internal,
        "Attachable": n.spec.attachable,
        "Ingress": n.spec.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": options,
        "Labels": n.spec.labels,
    });
    if let Some(p) = peers.by_network.get(&n.id) {
        v["Peers"] = json!(p);
    }
    v
}

/// A stable id for a node's own networks, in Docker's 64-hex form.
fn local_id(name: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("covey-network-{name}")))
}

fn local_json(name: &str, driver: &str) -> Value {
    json!({
        "Name": name,
        "Id": local_id(name),
        "Created": rfc3339(0),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}
