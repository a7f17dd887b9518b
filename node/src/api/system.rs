//! `/_ping` and `/version`: how clients find covey and negotiate the API version.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, PRAGMA};
use axum::response::IntoResponse;
use axum::Json;

use super::{API_VERSION, MIN_API_VERSION};
use crate::daemon::Node;

pub async fn ping() -> impl IntoResponse {
    let mut h = HeaderMap::new();
    let mut set = |k: &'static str, v: &'static str| {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    };
    set("api-version", API_VERSION);
    set("ostype", "linux");
    set("docker-experimental", "false");
    set("swarm", "inactive");
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    (h, "OK")
}

pub async fn version(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let arch = node.images.default_platform().architecture.clone();
    let kernel = kernel_version();
    Json(serde_json::json!({
        "Platform": { "Name": "covey" },
        "Components": [{
            "Name": "Engine",
            "Version": crate::VERSION,
            "Details": { "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch, "KernelVersion": kernel }
        }],
        "Version": crate::VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

/// `/info`: the node, and its place in a swarm (the docker CLI reads `Swarm` to know
/// whether this node is a manager and which node it is). What the kernel's cgroups allow
/// is said, so that `docker info` warns only of limits covey cannot set.
pub async fn info(State(node): State<Arc<Node>>) -> impl IntoResponse {
    use crate::containers::Status;
    // Whether the node has VXLAN is not one of `info`'s fields; its resources are the
    // machine's, before the board's reservation.
    let d = crate::swarm::describe(true, &Default::default());
    let swarm = swarm_info(&node).await;
    let containers = node.containers.list(true);
    let count = |s: Status| containers.iter().filter(|c| c.status == s).count();
    let cgroups = std::path::Path::new(covey_runtime::cgroups::ROOT);
    let controllers = covey_runtime::cgroups::available(cgroups);
    let has = |c: &str| controllers.iter().any(|a| a == c);
    let driver = match node.images.snapshot_mode() {
        covey_images::SnapshotMode::Copy => "copy",
        _ => "overlay",
    };
    let kernel = kernel_version();
    Json(serde_json::json!({
        "ID": swarm["NodeID"],
        "Containers": containers.len(),
        "ContainersRunning": count(Status::Running),
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - count(Status::Running),
        "Images": node.images.list().len(),
        "Driver": driver,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": covey_runtime::cgroups::version(cgroups).to_string(),
        "MemoryLimit": has("memory"),
        "CpuCfsPeriod": has("cpu"),
        "CpuCfsQuota": has("cpu"),
        "CPUShares": has("cpu"),
        "PidsLimit": has("pids"),
        "Name": d.hostname,
        "ServerVersion": crate::VERSION,
        "KernelVersion": kernel,
        "OSType": "linux",
        "OperatingSystem": "linux",
        "Architecture": d.architecture,
        "NCPU": d.nano_cpus / 1_000_000_000,
        "MemTotal": d.memory_bytes,
        "DockerRootDir": node.config.data_root,
        "Labels": node
            .swarm
            .profile()
            .engine_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        "Swarm": swarm,
    }))
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn swarm_info(node: &Node) -> serde_json::Value {
    use crate::manager::objects::Node as SwarmNode;
    let active = node
        .swarm
        .with_active(|a| a.map(|a| (a.state.clone(), a.manager.clone())))
        .await;
    let Some((state, manager)) = active else {
        let local = if node.swarm.is_locked().await {
            "locked"
        } else {
            "inactive"
        };
        return serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": local, "ControlAvailable": false, "Error": "", "RemoteManagers": null});
    };
    let remote: Vec<_> = state
        .managers
        .iter()
        .map(|addr| serde_json::json!({"NodeID": "", "Addr": addr}))
        .collect();
    let mut info = serde_json::json!({
        "NodeID": state.node_id,
        "NodeAddr": crate::swarm::host_of(&state.advertise_addr),
        "LocalNodeState": "active",
        "ControlAvailable": manager.is_some(),
        "Error": "",
        "RemoteManagers": remote,
    });
    if let Some(manager) = manager {
        if let Ok(nodes) = manager.store.list::<SwarmNode>() {
            info["Nodes"] = nodes.len().into();
            info["Managers"] = nodes
                .iter()
                .filter(|n| n.manager_status.is_some())
                .count()
                .into();
        }
        if let Ok(cluster) = manager.cluster() {
            let mut cluster = super::swarm::cluster_json(&cluster);
            // /info is readable by anyone on the socket: tokens stay in /swarm.
            if let Some(c) = cluster.as_object_mut() {
                c.remove("JoinTokens");
            }
            info["Cluster"] = cluster;
        }
    }
    info
}
