//! Overlay networks and the routing mesh on a swarm of real daemons, each node in its own
//! network namespace: tasks on one overlay reach each other across nodes, tasks on another
//! overlay cannot, and a published port answers on every node.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use covey_tests::services::*;
use covey_tests::swarm::{eventually, Swarm};
use covey_tests::{stderr, stdout};
use serde_json::Value;

/// The address of each running task of `service` on the network called `network`.
fn addresses(swarm: &Swarm, service: &str, network: &str) -> Vec<String> {
    tasks(swarm, service)
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .filter_map(|t| t["ID"].as_str().map(str::to_string))
        .filter_map(|id| {
            let task: Value =
                serde_json::from_slice(&swarm.node(1).docker(&["inspect", &id]).stdout).ok()?;
            task[0]["NetworksAttachments"]
                .as_array()?
                .iter()
                .find(|a| a["Network"]["Spec"]["Name"] == network)
                .and_then(|a| a["Addresses"][0].as_str())
                .and_then(|a| a.split('/').next())
                .map(str::to_string)
        })
        .collect()
}

/// The container of `service`'s task on node `i`.
fn container_of(swarm: &Swarm, i: usize, service: &str) -> String {
    eventually(
        &format!("a container of {service} on node {i}"),
        Duration::from_secs(30),
        || containers_on(swarm, i, service).into_iter().next(),
    )
}

/// An HTTP GET of `/` at `addr:port` with busybox `nc` (Debian's static busybox `wget`
/// crashes resolving), from inside `container` on node `i`: the body, or None.
fn fetch_from(swarm: &Swarm, i: usize, container: &str, addr: &str, port: u16) -> Option<String> {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}");
    let out = swarm
        .node(i)
        .docker(&["exec", container, "sh", "-c", &script]);
    body(out)
}

/// The same from node `i`'s own namespace (outside any container).
fn fetch_on_node(swarm: &Swarm, i: usize, addr: &str, port: u16) -> Option<String> {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {addr} {port}");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    body(swarm.net.exec(i, &mut cmd).ok()?)
}

/// The body of a successful HTTP answer.
fn body(out: std::process::Output) -> Option<String> {
    let text = stdout(&out);
    if !out.status.success() || !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// A web server answering with its own hostname (the task's container id).
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn overlays_connect_tasks_across_nodes_and_the_mesh_answers_everywhere() {
    let (swarm, _registry, image) = swarm("ovl", 3);
    let node1 = swarm.node(1);
    node1.covey_ok(&["network", "create", "-d", "overlay", "backend"]);
    node1.covey_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.99.0.0/24",
        "other",
    ]);

    // Two web tasks on the workers, published through the mesh; clients on the manager.
    node1.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--network",
        "backend",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--constraint",
        "node.role==worker",
        "-p",
        "8080:80",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    for (name, network) in [("client", "backend"), ("outsider", "other")] {
        node1.covey_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--constraint",
            "node.role==manager",
            &image,
            "sleep",
            "1d",
        ]);
    }
    wait_running(&swarm, "web", 2);
    wait_running(&swarm, "client", 1);
    wait_running(&swarm, "outsider", 1);
    let ls = node1.covey_ok(&["service", "ls"]);
    assert!(ls.contains("*:8080->80/tcp"), "{ls}");

    // Across nodes on one overlay: the client on node 1 reaches both web tasks.
    let webs = addresses(&swarm, "web", "backend");
    assert_eq!(webs.len(), 2, "{webs:?}");
    assert!(webs.iter().all(|a| a.starts_with("10.0.")), "{webs:?}");
    let client = container_of(&swarm, 1, "client");
    let mut hosts = BTreeSet::new();
    for web in &webs {
        let got = eventually(
            &format!("the client reaching {web}"),
            Duration::from_secs(20),
            || fetch_from(&swarm, 1, &client, web, 80),
        );
        hosts.insert(got);
    }
    assert_eq!(hosts.len(), 2, "two tasks answered: {hosts:?}");

    // Another overlay is another network: no route from it to backend's tasks.
    let outsider = container_of(&swarm, 1, "outsider");
    let out_addr = addresses(&swarm, "outsider", "other");
    assert!(out_addr[0].starts_with("10.99.0."), "{out_addr:?}");
    assert_eq!(
        fetch_from(&swarm, 1, &outsider, &webs[0], 80),
        None,
        "a task on another overlay reached backend"
    );

    // The routing mesh: node 1 runs no web task, yet answers on 8080, from both tasks.
    let node1_ip = swarm.net.node_ip(1).to_string();
    let mut seen = BTreeSet::new();
    eventually(
        "the mesh answering on node 1 from both tasks",
        Duration::from_secs(30),
        || {
            if let Some(host) = fetch_on_node(&swarm, 2, &node1_ip, 8080) {
                seen.insert(host);
            }
            (seen == hosts).then_some(())
        },
    );
    // Every node answers, also one that runs a task.
    for i in 2..=3 {
        let ip = swarm.net.node_ip(i).to_string();
        let got = eventually("the mesh on a worker", Duration::from_secs(20), || {
            fetch_on_node(&swarm, 1, &ip, 8080)
        });
        assert!(hosts.contains(&got), "{got} is not one of {hosts:?}");
    }

    // A network in use cannot go; once its services have, it can.
    let err = node1.covey_err(&["network", "rm", "backend"]);
    assert!(
        err.contains("network backend is in use by service"),
        "{err}"
    );
    node1.covey_ok(&["service", "rm", "web", "client"]);
    eventually("the mesh dropping 8080", Duration::from_secs(30), || {
        fetch_on_node(&swarm, 2, &node1_ip, 8080)
            .is_none()
            .then_some(())
    });
    eventually("backend removed", Duration::from_secs(30), || {
        let out = node1.covey(&["network", "rm", "backend"]);
        out.status.success().then_some(()).or_else(|| {
            eprintln!("{}", stderr(&out));
            None
        })
    });
}
