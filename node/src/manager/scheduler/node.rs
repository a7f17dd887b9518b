//! What the scheduler keeps of each node: the fields its filters read, normalised once,
//! and what the node's live tasks already hold (swarmkit's `NodeInfo`).

use std::collections::BTreeMap;

use super::platform::{normalize_arch, normalize_os};
use crate::manager::ca::Role;
use crate::manager::objects::{Availability, Node, NodeState};

#[derive(Debug, Clone)]
pub(super) struct NodeInfo {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub os: String,
    pub arch: String,
    pub labels: BTreeMap<String, String>,
    /// The daemon's labels (`covey.board` among them), for `engine.labels.*`.
    pub engine_labels: BTreeMap<String, String>,
    /// Ready and active: may take new tasks.
    pub open: bool,
    /// What the node has minus what its live tasks reserve; below zero if overcommitted.
    pub free_cpus: i64,
    pub free_memory: i64,
    /// Live tasks of every service on the node.
    pub tasks: u32,
}

impl NodeInfo {
    pub(super) fn new(node: &Node) -> NodeInfo {
        let d = &node.description;
        NodeInfo {
            id: node.id.clone(),
            hostname: d.hostname.clone(),
            role: node.role,
            os: normalize_os(&d.os),
            arch: normalize_arch(&d.architecture),
            labels: node.spec.labels.clone(),
            engine_labels: d.engine_labels.clone(),
            open: node.status.state == NodeState::Ready
                && node.spec.availability == Availability::Active,
            free_cpus: d.nano_cpus,
            free_memory: d.memory_bytes,
            tasks: 0,
        }
    }
}
