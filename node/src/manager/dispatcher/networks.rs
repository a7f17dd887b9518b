//! The dispatcher's network half: each node's [`NetworkMap`] as a long poll, answered
//! when it changes, as libnetwork's gossip would tell a node of its peers and endpoints.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use super::Dispatcher;
use crate::manager::objects::service::PublishMode;
use crate::manager::objects::Attachment;
use crate::manager::objects::{Node, NodeState, Service, Task, TaskState};
use crate::manager::store::{Error, Kind};
use crate::network::map::{
    NetAddr, NetName, NetworkMap, PeerNode, Peers, Published, ServiceRecord,
};

impl Dispatcher {
    /// `node_id`'s network map, once it differs from the one named `known` (or after
    /// [`super::tasks::LONG_POLL`]), with its digest.
    pub async fn network_map(
        &self,
        node_id: &str,
        known: Option<&str>,
    ) -> Result<(String, NetworkMap), Error> {
        self.long_poll(
            known,
            |c| {
                matches!(
                    c.kind,
                    Kind::Task | Kind::Node | Kind::Service | Kind::Network
                )
            },
            || {
                let map = map_for(
                    node_id,
                    &self.store.list::<Node>()?,
                    &self.store.list::<Service>()?,
                    &self.store.list::<Task>()?,
                );
                Ok((digest(&map), map))
            },
        )
        .await
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
    let mut encrypted: BTreeSet<u32> = BTreeSet::new();
    for t in tasks.iter().filter(live) {
        for a in &t.networks {
            members.entry(a.vni).or_default().insert(&t.node_id);
            if a.encrypted {
                encrypted.insert(a.vni);
            }
        }
    }
    let no_vxlan: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| !n.description.vxlan)
        .map(|n| n.id.as_str())
        .collect();
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
            // One path for the whole network, so every node of it agrees.
            let quic = encrypted.contains(&vni) || m.iter().any(|n| no_vxlan.contains(n));
            let mut others: Vec<PeerNode> = m
                .into_iter()
                .filter(|n| *n != node_id)
                .filter_map(|n| {
                    Some(PeerNode {
                        id: n.to_string(),
                        addr: *addr.get(n)?,
                    })
                })
                .collect();
            others.sort_by_key(|p| p.addr);
            Peers {
                vni,
                quic,
                nodes: others,
            }
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
    let services = records(node_id, services, tasks.iter().filter(live));
    NetworkMap {
        peers,
        ingress,
        published,
        services,
    }
}

/// The services on `node_id`'s networks (those of its live tasks, `ingress` aside), with
/// their virtual IPs and running tasks' addresses on those networks.
fn records<'a>(
    node_id: &str,
    services: &[Service],
    live: impl Iterator<Item = &'a Task> + Clone,
) -> Vec<ServiceRecord> {
    let mine: BTreeSet<&str> = live
        .clone()
        .filter(|t| t.node_id == node_id)
        .flat_map(|t| t.networks.iter())
        .filter(|a| !a.ingress)
        .map(|a| a.network_id.as_str())
        .collect();
    let on_mine = |a: &&Attachment| mine.contains(a.network_id.as_str());
    let mut out = Vec::new();
    for s in services {
        let vips: Vec<NetAddr> = s
            .endpoint
            .virtual_ips
            .iter()
            .filter(|v| mine.contains(v.network_id.as_str()))
            .map(|v| NetAddr {
                network: v.network_id.clone(),
                addr: v.addr.addr(),
            })
            .collect();
        let mut running: Vec<Vec<NetAddr>> = live
            .clone()
            .filter(|t| t.service_id == s.id && t.status.state == TaskState::Running)
            .map(|t| {
                t.networks
                    .iter()
                    .filter(on_mine)
                    .map(|a| NetAddr {
                        network: a.network_id.clone(),
                        addr: a.address.addr(),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|addrs| !addrs.is_empty())
            .collect();
        running.sort_by(|a, b| a[0].addr.cmp(&b[0].addr));
        let aliases: Vec<NetName> = s
            .spec
            .task_template
            .networks
            .iter()
            .filter(|n| mine.contains(n.target.as_str()))
            .flat_map(|n| {
                n.aliases.iter().map(|alias| NetName {
                    network: n.target.clone(),
                    name: alias.clone(),
                })
            })
            .collect();
        let on_my_networks = s
            .spec
            .task_template
            .networks
            .iter()
            .any(|n| mine.contains(n.target.as_str()));
        if on_my_networks || !vips.is_empty() || !running.is_empty() {
            out.push(ServiceRecord {
                name: s.spec.name.clone(),
                aliases,
                vips,
                tasks: running,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn digest(map: &NetworkMap) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    map.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
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
            previous_spec_version: None,
            update_status: None,
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
            previous_spec_version: None,
            update_status: None,
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
            .map(|p| (p.vni, p.nodes.iter().map(|n| n.addr.to_string()).collect()))
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
        assert!(map.peers.iter().all(|p| !p.quic));
        // A node on no network of the service's still gets the mesh.
        let map_b = map_for("b", &nodes, &[], &tasks);
        assert_eq!(map_b.peers.len(), 2);
        assert_eq!(map_b.peers[0].nodes[0].id, "a");
    }

    #[test]
    fn a_network_goes_over_quic_when_encrypted_or_when_a_node_of_it_has_no_vxlan() {
        let mut nodes = vec![
            node("a", "192.168.1.1", "10.0.0.2"),
            node("b", "192.168.1.2", "10.0.0.3"),
            node("c", "192.168.1.3", "10.0.0.4"),
        ];
        nodes[2].description.vxlan = false;
        let mut secret = attachment(4099, "10.2.0.5", false);
        secret.encrypted = true;
        let tasks = vec![
            task(
                "t1",
                "a",
                TaskState::Running,
                vec![attachment(4098, "10.1.0.5", false), secret.clone()],
            ),
            task(
                "t2",
                "b",
                TaskState::Running,
                vec![attachment(4098, "10.1.0.6", false), secret],
            ),
        ];
        let map = map_for("a", &nodes, &[], &tasks);
        let quic: Vec<(u32, bool)> = map.peers.iter().map(|p| (p.vni, p.quic)).collect();
        // The mesh reaches node c, which has no VXLAN; 4098 is on a and b only.
        assert_eq!(quic, [(4097, true), (4098, false), (4099, true)]);
    }
}
