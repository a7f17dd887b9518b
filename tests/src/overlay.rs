//! What tests of overlay networks share: where a service's tasks are on a network, and
//! HTTP requests from a task's container or from a node.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::services::{containers_on, tasks};
use crate::stdout;
use crate::swarm::{eventually, Swarm};

/// The address of each running task of `service` on the network called `network`.
pub fn addresses(swarm: &Swarm, service: &str, network: &str) -> Vec<String> {
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

/// The virtual IP of `service` on the network called `network`.
pub fn vip_of(swarm: &Swarm, service: &str, network: &str) -> String {
    let net: Value =
        serde_json::from_str(&swarm.node(1).covey_ok(&["network", "inspect", network])).unwrap();
    let svc: Value =
        serde_json::from_str(&swarm.node(1).covey_ok(&["service", "inspect", service])).unwrap();
    svc[0]["Endpoint"]["VirtualIPs"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["NetworkID"] == net[0]["Id"]))
        .and_then(|v| v["Addr"].as_str())
        .and_then(|a| a.split('/').next())
        .expect("a VIP")
        .to_string()
}

/// The container of `service`'s task on node `i`.
pub fn container_of(swarm: &Swarm, i: usize, service: &str) -> String {
    eventually(
        &format!("a container of {service} on node {i}"),
        Duration::from_secs(30),
        || containers_on(swarm, i, service).into_iter().next(),
    )
}

/// An HTTP GET of `/` at `addr:port` with busybox `nc` (Debian's static busybox `wget`
/// crashes resolving), from inside `container` on node `i`: the body, or None.
pub fn fetch_from(
    swarm: &Swarm,
    i: usize,
    container: &str,
    addr: &str,
    port: u16,
) -> Option<String> {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}");
    let out = swarm
        .node(i)
        .docker(&["exec", container, "sh", "-c", &script]);
    body(out)
}

/// The same from node `i`'s own namespace (outside any container).
pub fn fetch_on_node(swarm: &Swarm, i: usize, addr: &str, port: u16) -> Option<String> {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {addr} {port}");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    body(swarm.net.exec(i, &mut cmd).ok()?)
}

/// The body of a successful HTTP answer.
pub fn body(out: std::process::Output) -> Option<String> {
    let text = stdout(&out);
    let ok = text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200");
    if !out.status.success() || !ok {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// A web server answering with its own hostname (the task's container id).
pub const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";
