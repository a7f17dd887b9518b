//! What a node must know of the cluster's networks, beyond its own tasks: which other
//! nodes share each of its networks (its VXLAN peers), its own end of the routing mesh,
//! and where each published port leads. Made by the leader's dispatcher, sent to each
//! node as a long poll, as libnetwork's gossip would carry it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::manager::objects::service::Protocol;
use crate::manager::objects::Attachment;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkMap {
    /// For each network the node is on, the underlay addresses of the other nodes on it.
    pub peers: Vec<Peers>,
    /// This node's address on `ingress`.
    pub ingress: Option<Attachment>,
    /// The routing mesh's ports.
    pub published: Vec<Published>,
    /// The services on the node's networks (`ingress` aside), for names and virtual IPs.
    pub services: Vec<ServiceRecord>,
}

/// A service as its names resolve: to its virtual IP on each network, or (DNS round
/// robin, and `tasks.NAME`) to its running tasks' addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub name: String,
    /// Other names on a network (`--network name=N,alias=A`).
    pub aliases: Vec<NetName>,
    /// Empty in DNS round-robin mode.
    pub vips: Vec<NetAddr>,
    /// Each running task's addresses.
    pub tasks: Vec<Vec<NetAddr>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetAddr {
    pub network: String,
    pub addr: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetName {
    pub network: String,
    pub name: String,
}

/// The other nodes on one network, and how its frames travel between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peers {
    pub vni: u32,
    /// Over QUIC (`network::tunnel`) rather than kernel VXLAN: the network is encrypted,
    /// or a node on it has no VXLAN. The same on every node of the network.
    #[serde(default)]
    pub quic: bool,
    pub nodes: Vec<PeerNode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerNode {
    pub id: String,
    /// Its underlay address.
    pub addr: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Published {
    pub protocol: Protocol,
    pub port: u32,
    pub target_port: u32,
    /// The `ingress` addresses of the service's running tasks.
    pub backends: Vec<Ipv4Addr>,
}
