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
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peers {
    pub vni: u32,
    pub nodes: Vec<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Published {
    pub protocol: Protocol,
    pub port: u32,
    pub target_port: u32,
    /// The `ingress` addresses of the service's running tasks.
    pub backends: Vec<Ipv4Addr>,
}
