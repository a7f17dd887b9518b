//! The dispatcher's network half: each node's [`NetworkMap`] as a long poll, answered
//! when it changes, as libnetwork's gossip would tell a node of its peers and endpoints.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use tokio::sync::broadcast::error::RecvError;

use super::tasks::LONG_POLL;
use super::Dispatcher;
use crate::manager::objects::service::PublishMode;
use crate::manager::objects::{Node, NodeState, Service, Task, TaskState};
use crate::manager::store::{Error, Kind};
use crate::network::map::{NetworkMap, Peers, Published};

impl Dispatcher {
    /// `node_id`'s network map, once it differs from the one named `known` (or after
    /// [`LONG_POLL`]), with its digest.
    pub async fn network_map(
        &self,
        node_id: &str,
        known: Option<&str>,
    ) -> Result<(String, NetworkMap), Error> {
        let mut events = self.store.watch();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let map = map_for(
                node_id,
                &self.store.list::<Node>()?,
                &self.store.list::<Service>()?,
                &self.store.list::<Task>()?,
            );
            let digest = digest(&map);
            if known != Some(digest.as_str()) {
                return Ok((digest, map));
            }
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => return Ok((digest, map)),
                    Ok(Ok(event)) => {
                        if event.reset
                            || event.changes.iter().any(|c| {
                                matches!(
                                    c.kind,
                                    Kind::Task | Kind::Node | Kind::Service | Kind::Network
                                )
                            })
                        {
                            break;
                        }
                    }
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(Error::Unavailable("the store is closing".into()))
                    }
                }
            }
        }
    }
}

/// What `node_id` must know: for each network it is on, the other nodes on it (every node
/// up is on `ingress`); its ingress address; and the running tasks behind each published
/// port.
pub fn map_for(node_id: &str, nodes: &[Node], services: &[Service], tasks: &[Task]) -> NetworkMap {
    let down: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.status.state == NodeState::Down)
        .map(|n| n.id.as_str())
        .collect();
    let live = |t: &&Task| {
        !t.node_id.is_empty()
            && !t.status.state.is_terminal()
            && t.desired_state <= TaskState::Running
            && !down.contains(t.node_id.as_str())
    };
    let mut members: HashMap<u32, BTreeSet<&str>> = HashMap::new();
    for t in tasks.iter().filter(live) {
        for a in &t.networks {
            members.entry(a.vni).or_default().insert(&t.node_id);
        }
    }
    let ingress = nodes
        .iter()
        .find(|n| n.id == node_id)
        .and_then(|n| n.attachments.iter().find(|a| a.ingress).cloned());
    if let Some(ingress) = &ingress {
        let on_mesh = members.entry(ingress.vni).or_default();
        for n in nodes.iter().filter(|n| !down.contains(n.id.as_str())) {
            if n.attachments.iter().any(|a| a.ingress) {
                on_mesh.insert(&n.id);
            }
        }
    }
    let addr: HashMap<&str, Ipv4Addr> = nodes
        .iter()
        .filter_map(|n| Some((n.id.as_str(), n.status.addr.parse().ok()?)))
        .collect();
    let mut peers: Vec<Peers> = members
        .into_iter()
        .filter(|(_, m)| m.contains(node_id))
        .map(|(vni, m)| {
            let mut others: Vec<Ipv4Addr> = m
                .into_iter()
                .filter(|n| *n != node_id)
                .filter_map(|n| addr.get(n).copied())
                .collect();
            others.sort();
            others.dedup();
            Peers { vni, nodes: others }
        })
        .collect();
    peers.sort_by_key(|p| p.vni);
    let mut published = Vec::new();
    if ingress.is_some() {
        for s in services {
            let mut backends: Vec<Ipv4Addr> = tasks
                .iter()
                .filter(live)
                .filter(|t| t.service_id == s.id && t.status.state == TaskState::Running)
                .filter_map(|t| t.networks.iter().find(|a| a.ingress))
                .map(|a| a.address.addr())
                .collect();
            backends.sort();
            for p in s
                .endpoint
                .ports
                .iter()
                .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
            {
                published.push(Published {
                    protocol: p.protocol,
                    port: p.published_port,
                    target_port: p.target_port,
                    backends: backends.clone(),
                });
            }
        }
        published.sort_by_key(|p| (p.port, p.protocol.as_str()));
    }
    NetworkMap {
        peers,
        ingress,
        published,
    }
}

fn digest(map: &NetworkMap) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    map.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::network::Attachment;
    use crate::manager::objects::service::{Endpoint, PortConfig};
    use crate::manager::objects::{ServiceSpec, TaskStatus};
    use crate::manager::store::Meta;

    fn attachment(vni: u32, addr: &str, ingress: bool) -> Attachment {
        Attachment {
            network_id: format!("net{vni}"),
            name: format!("net{vni}"),
            vni,
            subnet: "10.0.0.0/16".parse().unwrap(),
            gateway: "10.0.0.1".parse().unwrap(),
            ingress,
            encrypted: false,
            address: format!("{addr}/16").parse().unwrap(),
            aliases: Vec::new(),
        }
    }

    fn node(id: &str, ip: &str, ingress: &str) -> Node {
        let mut n = Node::for_tests(id);
        n.status.addr = ip.into();
        n.attachments = vec![attachment(4097, ingress, true)];
        n
    }

    fn task(id: &str, node: &str, state: TaskState, nets: Vec<Attachment>) -> Task {
        let svc = Service {
            id: "web".into(),
            meta: Meta::default(),
            spec: ServiceSpec::default(),
            previous_spec: None,
            spec_version: 1,
            endpoint: Endpoint::default(),
        };
        let mut t = crate::manager::orchestrator::new_task(&svc, 1, node);
        t.id = id.into();
        t.status = TaskStatus {
            state,
            ..Default::default()
        };
        t.networks = nets;
        t
    }

    #[test]
    fn peers_are_the_other_live_nodes_and_ports_lead_to_running_tasks() {
        let mut nodes = vec![
            node("a", "192.168.1.1", "10.0.0.2"),
            node("b", "192.168.1.2", "10.0.0.3"),
            node("c", "192.168.1.3", "10.0.0.4"),
        ];
        nodes[2].status.state = NodeState::Down;
        let mut web = Service {
            id: "web".into(),
            meta: Meta::default(),
            spec: ServiceSpec::default(),
            previous_spec: None,
            spec_version: 1,
            endpoint: Endpoint::default(),
        };
        web.endpoint.ports = vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        }];
        let tasks = vec![
            task(
                "t1",
                "b",
                TaskState::Running,
                vec![
                    attachment(4098, "10.1.0.5", false),
                    attachment(4097, "10.0.0.9", true),
                ],
            ),
            task(
                "t2",
                "c",
                TaskState::Running,
                vec![
                    attachment(4098, "10.1.0.6", false),
                    attachment(4097, "10.0.0.10", true),
                ],
            ),
            task(
                "t3",
                "a",
                TaskState::Starting,
                vec![
                    attachment(4098, "10.1.0.7", false),
                    attachment(4097, "10.0.0.11", true),
                ],
            ),
        ];
        let map = map_for("a", &nodes, &[web], &tasks);
        let peers: Vec<(u32, Vec<String>)> = map
            .peers
            .iter()
            .map(|p| (p.vni, p.nodes.iter().map(|n| n.to_string()).collect()))
            .collect();
        // Node c is Down: not a peer, and its task is no backend.
        assert_eq!(
            peers,
            [
                (4097, vec!["192.168.1.2".to_string()]),
                (4098, vec!["192.168.1.2".to_string()])
            ]
        );
        assert_eq!(map.ingress.unwrap().address.to_string(), "10.0.0.2/16");
        // Only the running task serves the port; the starting one does not yet.
        assert_eq!(map.published.len(), 1);
        assert_eq!(
            map.published[0].backends,
            ["10.0.0.9".parse::<Ipv4Addr>().unwrap()]
        );
        // A node on no network of the service's still gets the mesh.
        let map_b = map_for("b", &nodes, &[], &tasks);
        assert_eq!(map_b.peers.len(), 2);
    }
}
