use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manager::ca::Role;
use crate::manager::store::{object, Kind, Meta};

/// A node of the cluster, as swarmkit's `Node`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub meta: Meta,
    /// What the node should be: set by users (`node update`, `promote`, `demote`).
    pub spec: NodeSpec,
    /// The role in the node's current certificate.
    pub role: Role,
    pub description: NodeDescription,
    pub status: NodeStatus,
    /// Set while the node is a Raft member.
    pub manager_status: Option<ManagerStatus>,
    /// The node's own addresses on networks, given by the allocator: its end of the
    /// routing mesh on `ingress`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<super::network::Attachment>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeSpec {
    #[serde(default)]
    pub name: String,
    pub desired_role: Role,
    pub availability: Availability,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

impl std::str::FromStr for Availability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Availability::Active),
            "pause" => Ok(Availability::Pause),
            "drain" => Ok(Availability::Drain),
            other => Err(format!(
                "invalid availability {other:?}: expected active, pause or drain"
            )),
        }
    }
}

/// What a node says of itself when it registers.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeDescription {
    pub hostname: String,
    pub os: String,
    pub architecture: String,
    pub engine_version: String,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// Whether its kernel has VXLAN for overlay networks (else they reach it over QUIC).
    #[serde(default = "yes")]
    pub vxlan: bool,
    /// The daemon's labels (Docker's engine labels), `covey.board` among them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engine_labels: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub state: NodeState,
    #[serde(default)]
    pub message: String,
    /// The address the node's heartbeats come from.
    #[serde(default)]
    pub addr: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Unknown,
    Down,
    Ready,
    Disconnected,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

/// A manager's place in Raft. Leadership and reachability change without a write, so
/// they are read from Raft when asked, not stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManagerStatus {
    pub raft_id: u64,
    /// The address other managers reach this one on (its advertise address).
    pub addr: String,
}

object!(Node, Kind::Node);

impl Node {
    /// A ready, active worker named `id` (host `host-<id>`, linux/x86_64, 4 CPUs and
    /// 8 GiB), for tests of what reads nodes.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> Node {
        Node {
            id: id.into(),
            meta: Meta::default(),
            spec: NodeSpec {
                name: String::new(),
                desired_role: Role::Worker,
                availability: Availability::Active,
                labels: BTreeMap::new(),
            },
            role: Role::Worker,
            description: NodeDescription {
                hostname: format!("host-{id}"),
                os: "linux".into(),
                architecture: "x86_64".into(),
                engine_version: String::new(),
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 << 30,
                vxlan: true,
                engine_labels: BTreeMap::new(),
            },
            status: NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: String::new(),
            },
            manager_status: None,
            attachments: Vec::new(),
        }
    }
}
