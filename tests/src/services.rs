//! What tests of services share: a swarm with a registry holding busybox, and reading
//! back where a service's tasks run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::Net;
use crate::swarm::{eventually, Swarm};
use crate::Registry;

/// A swarm of `nodes` (node 1 the manager, the others workers, 1 s heartbeats) and a
/// registry on its switch holding busybox; the image reference to use.
pub fn swarm(prefix: &str, nodes: usize) -> (Swarm, Registry, String) {
    swarm_of(prefix, nodes, nodes)
}

/// As [`swarm`], with only the first `joined` of the `nodes` in the swarm yet.
pub fn swarm_of(prefix: &str, nodes: usize, joined: usize) -> (Swarm, Registry, String) {
    swarm_with(prefix, nodes, joined, |_| Vec::new())
}

/// As [`swarm_of`], with more daemon arguments for each node `i` (1-based).
pub fn swarm_with(
    prefix: &str,
    nodes: usize,
    joined: usize,
    extra: impl Fn(usize) -> Vec<String>,
) -> (Swarm, Registry, String) {
    // The registry's port is chosen before the daemons start, so they can trust it.
    let port = crate::free_port();
    let swarm = Swarm::start_with_each(prefix, nodes, |net: &Net, i| {
        let mut args = vec![
            "--insecure-registry".into(),
            format!("{}:{port}", net.switch_ip()),
        ];
        args.extend(extra(i));
        args
    });
    let registry = Registry::start_on_port(prefix, &swarm.net, port).expect("starting a registry");
    let image = registry
        .push("busybox", "busybox")
        .expect("pushing busybox");
    swarm.init();
    for i in 2..=joined {
        swarm.join(i, "worker", 1);
    }
    eventually("every node ready", Duration::from_secs(30), || {
        let nodes_ready = swarm
            .nodes(1)?
            .iter()
            .filter(|n| n["Status"]["State"] == "ready")
            .count();
        (nodes_ready == joined).then_some(())
    });
    (swarm, registry, image)
}

/// Makes service `name` on node 1: `replicas` of busybox `sleep 1d`, stopped at once
/// (sleep, as PID 1, ignores SIGTERM: no need to wait Swarm's 10 s to kill it). `service
/// create` waits for them to converge; its output.
pub fn sleepers(swarm: &Swarm, image: &str, name: &str, replicas: usize) -> String {
    let replicas = replicas.to_string();
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "--name",
        name,
        "--replicas",
        &replicas,
        "--stop-grace-period",
        "1s",
        image,
        "sleep",
        "1d",
    ])
}

/// The service's tasks as `docker service ps` sees them (JSON).
pub fn tasks(swarm: &Swarm, service: &str) -> Vec<Value> {
    let out = swarm
        .node(1)
        .covey(&["service", "ps", "--format", "json", service]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Node ids of the service's running tasks that should run, one per task; not those on
/// nodes that are down, whose state is only what the node last said.
pub fn running_on(swarm: &Swarm, service: &str) -> Vec<String> {
    let down: Vec<String> = swarm
        .nodes(1)
        .unwrap_or_default()
        .iter()
        .filter(|n| n["Status"]["State"] == "down")
        .filter_map(|n| n["ID"].as_str().map(str::to_string))
        .collect();
    tasks(swarm, service)
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .filter_map(|t| t["NodeID"].as_str().map(str::to_string))
        .filter(|n| !down.contains(n))
        .collect()
}

/// Waits until `n` tasks of the service run; returns how many run on each node.
pub fn wait_running(swarm: &Swarm, service: &str, n: usize) -> BTreeMap<String, usize> {
    eventually(
        &format!("{n} running tasks of {service}"),
        Duration::from_secs(60),
        || {
            let on = running_on(swarm, service);
            (on.len() == n).then(|| {
                let mut count = BTreeMap::new();
                for node in on {
                    *count.entry(node).or_insert(0) += 1;
                }
                count
            })
        },
    )
}

/// The names of node `i`'s containers (running ones, or all).
pub fn container_names(swarm: &Swarm, i: usize, all: bool) -> Vec<String> {
    let mut args = vec!["container", "ls", "--format", "json"];
    if all {
        args.push("-a");
    }
    let list: Vec<Value> = serde_json::from_str(&swarm.node(i).covey_ok(&args)).unwrap_or_default();
    list.iter()
        .filter_map(|c| c["Names"][0].as_str())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect()
}

/// The task containers running on node `i` whose names start with `prefix.`.
pub fn containers_on(swarm: &Swarm, i: usize, prefix: &str) -> Vec<String> {
    container_names(swarm, i, false)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}.")))
        .collect()
}

/// The pid of `container` on node `i` ("0" once it has ended).
pub fn pid_of(swarm: &Swarm, i: usize, container: &str) -> String {
    let out = swarm.node(i).covey_ok(&["container", "inspect", container]);
    let v: Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["State"]["Pid"].to_string()
}

/// A power cut on node `i`: its daemon, its runtime helpers and the processes `pids` (its
/// containers') are killed at once; returns when all are dead, with the pids killed.
pub fn power_cut(swarm: &mut Swarm, i: usize, pids: Vec<String>) -> Vec<String> {
    let daemon = swarm.daemons[i - 1]
        .pid()
        .expect("a running daemon")
        .to_string();
    let helpers = std::process::Command::new("pgrep")
        .args(["-P", &daemon])
        .output()
        .expect("pgrep");
    swarm.daemons[i - 1].crash();
    let mut victims = pids;
    victims.extend(
        String::from_utf8_lossy(&helpers.stdout)
            .split_whitespace()
            .map(str::to_string),
    );
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .args(&victims)
        .status();
    eventually(
        &format!("node {i}'s processes dead"),
        Duration::from_secs(10),
        || {
            let alive = std::process::Command::new("kill")
                .arg("-0")
                .args(&victims)
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            (!alive).then_some(())
        },
    );
    victims
}
